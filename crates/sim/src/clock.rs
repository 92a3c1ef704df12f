//! The simulator's own clock.
//!
//! Every expiry in the simulator (tokens, PIM assignments, JIT rules, device codes) is measured
//! against this clock, and every HTTP response carries it in its `Date` header, as ARM's do.
//! Tests move it forward with `POST /_sim/clock/advance` instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// Wall-clock time shifted by an offset that only ever grows.
#[derive(Debug, Default)]
pub struct SimClock {
    offset_ms: AtomicI64,
}

impl SimClock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the clock forward. Negative values are refused by the caller: time in the
    /// simulator, as in Azure, does not run backwards.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }

    /// The `Date` header value for this instant (RFC 7231 IMF-fixdate).
    pub fn http_date(&self) -> String {
        let now: std::time::SystemTime = self.now().into();
        httpdate::fmt_http_date(now)
    }
}

/// Formats an instant the way ARM does in JSON bodies: RFC 3339 UTC with a `Z` suffix.
pub fn arm_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_and_the_date_header() {
        let clock = SimClock::default();
        let before = clock.now();
        clock.advance(Duration::hours(2));
        let after = clock.now();
        assert!(after - before >= Duration::hours(2));
        let parsed = httpdate::parse_http_date(&clock.http_date()).expect("valid http date");
        let parsed: DateTime<Utc> = parsed.into();
        assert!((parsed - after).num_seconds().abs() <= 1);
    }
}
