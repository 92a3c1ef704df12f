//! ISO 8601 durations as ARM uses them (`PT3H`, `PT30M`, `P1D`, `P365D`, `P1DT12H`).
//!
//! Only the day and time designators are accepted: years and months have no fixed length,
//! and neither JIT nor PIM policies use them.

use chrono::Duration;

/// Parses an ISO 8601 duration such as `PT1H30M`. Returns `None` for anything else,
/// including empty designators (`PT`), fractions other than seconds, and overflow.
pub fn parse(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P').or_else(|| text.strip_prefix('p'))?;
    if rest.is_empty() {
        return None;
    }
    let (date, time) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut total_ms: i64 = 0;
    let mut any = false;
    let mut add = |amount: f64, unit_ms: i64| -> Option<()> {
        let ms = amount * unit_ms as f64;
        if !ms.is_finite() || !(0.0..=1e15).contains(&ms) {
            return None;
        }
        total_ms = total_ms.checked_add(ms as i64)?;
        any = true;
        Some(())
    };
    for (number, unit) in components(date)? {
        match unit {
            'D' => add(number.parse::<u32>().ok()? as f64, 86_400_000)?,
            'W' => add(number.parse::<u32>().ok()? as f64, 7 * 86_400_000)?,
            _ => return None,
        }
    }
    if let Some(time) = time {
        let parts = components(time)?;
        if parts.is_empty() {
            return None;
        }
        for (number, unit) in parts {
            match unit {
                'H' => add(number.parse::<u32>().ok()? as f64, 3_600_000)?,
                'M' => add(number.parse::<u32>().ok()? as f64, 60_000)?,
                'S' => add(number.parse::<f64>().ok()?, 1_000)?,
                _ => return None,
            }
        }
    }
    any.then(|| Duration::milliseconds(total_ms))
}

/// Splits `1DT` style text into `(number, designator)` pairs; `None` on stray characters.
fn components(text: &str) -> Option<Vec<(&str, char)>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_ascii_digit() || c == '.' {
            continue;
        }
        let number = &text[start..i];
        if number.is_empty() || !c.is_ascii_alphabetic() {
            return None;
        }
        out.push((number, c.to_ascii_uppercase()));
        start = i + c.len_utf8();
    }
    (start == text.len()).then_some(out)
}

/// Formats a duration in the canonical form ARM returns (`PT3H`, `PT1H30M`, `P1D`).
pub fn format(d: Duration) -> String {
    let mut secs = d.num_seconds().max(0);
    let days = secs / 86_400;
    secs %= 86_400;
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if h > 0 || m > 0 || s > 0 || days == 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if s > 0 || (h == 0 && m == 0) {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_arm_uses() {
        let check = |text: &str, secs: i64| {
            assert_eq!(parse(text), Some(Duration::seconds(secs)), "{text}");
        };
        check("PT3H", 3 * 3600);
        check("PT30M", 1800);
        check("PT1H30M", 5400);
        check("P1D", 86_400);
        check("P365D", 365 * 86_400);
        check("P1DT12H", 36 * 3600);
        check("PT5M", 300);
        check("PT90S", 90);
        check("pt1h", 3600);
    }

    #[test]
    fn rejects_nonsense_without_panicking() {
        for bad in [
            "",
            "P",
            "PT",
            "3H",
            "PTH",
            "PT-1H",
            "P1Y",
            "P1M",
            "PT1X",
            "PT1H2",
            "P1.5D",
            "PT1HM",
            "P99999999999D",
            "PT1e9S",
            "ＰT1H",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["PT3H", "PT1H30M", "P1D", "P1DT2H", "PT5M", "PT0S"] {
            assert_eq!(format(parse(text).expect(text)), text);
        }
    }
}
