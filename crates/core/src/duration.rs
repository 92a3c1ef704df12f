//! Durations as people type them (`1h`, `90m`, `1h30m`) and as Azure writes them (`PT1H30M`).

use chrono::Duration;

/// An error that says what a valid duration looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration: use a form such as 30m, 1h, 1h30m or PT1H30M")]
pub struct DurationError(pub String);

/// Parses `1h`, `45m`, `1h30m`, `90s`, `2d`, or ISO 8601 (`PT1H`, `P1D`, `P1DT2H`).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(text.chars().take(64).collect());
    let t = text.trim();
    if t.is_empty() || t.len() > 32 {
        return Err(err());
    }
    let upper = t.to_ascii_uppercase();
    let (date, time) = if let Some(rest) = upper.strip_prefix('P') {
        match rest.split_once('T') {
            Some((d, t)) if !t.is_empty() => (d.to_string(), t.to_string()),
            Some(_) => return Err(err()),
            None => (rest.to_string(), String::new()),
        }
    } else {
        // Human form: days may lead, the rest is time.
        match upper.find('D') {
            Some(i) => (upper[..=i].to_string(), upper[i + 1..].to_string()),
            None => (String::new(), upper.clone()),
        }
    };
    let mut total: i64 = 0;
    let mut any = false;
    for (part, units) in [
        (date.as_str(), &[('D', 86_400i64), ('W', 604_800)][..]),
        (time.as_str(), &[('H', 3600), ('M', 60), ('S', 1)][..]),
    ] {
        let mut number = String::new();
        let mut last_rank = usize::MAX;
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let rank = units.iter().position(|(u, _)| *u == c).ok_or_else(err)?;
            // Units must come largest first, each once: "30m1h" is a typo, not 90 minutes.
            if number.is_empty() || (last_rank != usize::MAX && rank <= last_rank) {
                return Err(err());
            }
            last_rank = rank;
            let n: i64 = number.parse().map_err(|_| err())?;
            total = n
                .checked_mul(units[rank].1)
                .and_then(|s| total.checked_add(s))
                .ok_or_else(err)?;
            number.clear();
            any = true;
        }
        if !number.is_empty() {
            return Err(err());
        }
    }
    // Zero is no duration for an activation or a JIT window (found by fuzzing: "0H").
    if !any || total == 0 || total > 366 * 86_400 {
        return Err(err());
    }
    Ok(Duration::seconds(total))
}

/// The ISO 8601 form ARM expects (`PT1H30M`, `P1D`).
pub fn to_iso(d: Duration) -> String {
    let mut secs = d.num_seconds().max(0);
    let days = secs / 86_400;
    secs %= 86_400;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::from("P");
    if days > 0 {
        out += &format!("{days}D");
    }
    if h + m + s > 0 || days == 0 {
        out.push('T');
        if h > 0 {
            out += &format!("{h}H");
        }
        if m > 0 {
            out += &format!("{m}M");
        }
        if s > 0 || h + m == 0 {
            out += &format!("{s}S");
        }
    }
    out
}

/// A short human form: `1h 30m`, `45m`, `2d 3h`, `40s`.
pub fn human(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let parts: Vec<String> = [(days, "d"), (h, "h"), (m, "m")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        format!("{s}s")
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let table = [
            ("1h", 3600),
            ("90m", 5400),
            ("1h30m", 5400),
            ("45s", 45),
            ("2d", 172_800),
            ("1d12h", 129_600),
            ("PT1H", 3600),
            ("pt30m", 1800),
            ("P1D", 86_400),
            ("P1DT2H", 93_600),
            (" 8h ", 28_800),
        ];
        for (text, secs) in table {
            assert_eq!(parse(text), Ok(Duration::seconds(secs)), "{text}");
        }
    }

    #[test]
    fn refuses_everything_else_without_panicking() {
        for bad in [
            "",
            "h",
            "1",
            "1x",
            "-1h",
            "30m1h",
            "1h1h",
            "PT",
            "P",
            "1.5h",
            "P1Y",
            "99999999999999999999h",
            "400d",
            "１h",
            "1h 30m",
            // Zero is refused (found by fuzzing).
            "0h",
            "0H  ",
            "PT0S",
            "0d0h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn property_every_duration_round_trips_through_iso() {
        // Every whole number of seconds up to a year, sampled with a stride that hits all
        // combinations of days, hours, minutes and seconds.
        let mut secs = 1i64;
        while secs < 366 * 86_400 {
            let d = Duration::seconds(secs);
            assert_eq!(parse(&to_iso(d)), Ok(d), "{}", to_iso(d));
            secs += 7_919;
        }
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human(Duration::seconds(5400)), "1h 30m");
        assert_eq!(human(Duration::seconds(40)), "40s");
        assert_eq!(to_iso(Duration::hours(3)), "PT3H");
    }
}
