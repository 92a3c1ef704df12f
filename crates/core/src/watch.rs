//! When the watcher looks at what (RELIABILITY #14). Pure: `now` (wall clock), how long the
//! loop meant to sleep, what is going on and when each thing was last looked at go in; what to
//! look at now and when to wake next come out.
//!
//! Everything is measured in wall-clock time, so a laptop that slept through its timers is
//! noticed on the first wake after resume (the wall clock moved much further than the loop
//! slept) and everything is looked at again at once.

use chrono::{DateTime, Duration, Utc};

use crate::config::WatchConfig;
use crate::planner::MAX_SLEEP_SECS;

/// How often each thing is looked at.
#[derive(Debug, Clone)]
pub struct Cadence {
    /// A request waiting for a decision.
    pub pending: Duration,
    /// An approver's inbox.
    pub approvals: Duration,
    /// Everything, while access is open or a request is pending.
    pub busy_refresh: Duration,
    /// Everything, when nothing is open or pending.
    pub idle_refresh: Duration,
    /// The public IP, while a port is open.
    pub ip: Duration,
    /// Local checks: the session while signed out, the journal for other processes' changes.
    pub local: Duration,
    /// Whether the user approves requests, read from the role management policies they can
    /// see: at the first look, then this rarely (policies change seldom, and a decision made
    /// meanwhile turns the inbox on by itself).
    pub approver_check: Duration,
    /// What the user may activate, to announce eligibilities that are new.
    pub eligibility: Duration,
}

impl Cadence {
    pub fn from_config(c: &WatchConfig) -> Cadence {
        let ms = |v: u64| Duration::milliseconds(i64::try_from(v).unwrap_or(i64::MAX / 2));
        let secs = |v: u64| Duration::seconds(i64::try_from(v).unwrap_or(86_400));
        Cadence {
            pending: ms(c.pending_poll_ms),
            approvals: ms(c.approvals_poll_ms),
            busy_refresh: secs(c.open_refresh_secs),
            idle_refresh: secs(c.idle_refresh_secs),
            ip: secs(c.ip_check_secs),
            local: Duration::seconds(2),
            approver_check: Duration::hours(APPROVER_CHECK_HOURS),
            eligibility: secs(c.eligibility_check_secs.max(1)),
        }
    }
}

/// How often the policies are read to find out whether the user approves requests.
pub const APPROVER_CHECK_HOURS: i64 = 24;

/// What is going on.
#[derive(Debug, Clone, Default)]
pub struct Situation {
    pub signed_in: bool,
    /// A request of mine waits for a decision.
    pub pending: bool,
    /// I decide requests: my inbox is polled on its own cadence.
    pub approver: bool,
    /// A role or port of mine is open.
    pub open: bool,
}

/// When each thing was last looked at (wall clock), and when the loop last woke.
#[derive(Debug, Clone, Default)]
pub struct Last {
    pub refresh: Option<DateTime<Utc>>,
    pub pending: Option<DateTime<Utc>>,
    pub approvals: Option<DateTime<Utc>>,
    pub ip: Option<DateTime<Utc>>,
    pub approver_check: Option<DateTime<Utc>>,
    pub eligibility: Option<DateTime<Utc>>,
    pub awake: Option<DateTime<Utc>>,
}

/// What to look at now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Work {
    pub refresh: bool,
    pub pending: bool,
    pub approvals: bool,
    pub ip: bool,
    /// Read the policies the user can see for their name among the approvers.
    pub approver_check: bool,
    /// Read what the user may activate, for what is new.
    pub eligibility: bool,
    /// The wall clock jumped: the machine was suspended, or its clock was set.
    pub resumed: bool,
}

/// How far the wall clock may run ahead of the loop's own sleep before it counts as a resume.
const JUMP_SECS: i64 = 10;

/// What is due at `now`, and when to wake next (never more than 30 s away). `slept` is how
/// long the loop asked to sleep before this wake.
pub fn schedule(
    now: DateTime<Utc>,
    slept: Duration,
    last: &Last,
    s: &Situation,
    c: &Cadence,
) -> (Work, DateTime<Utc>) {
    let resumed = last.awake.is_some_and(|a| {
        let moved = now - a;
        moved > slept + Duration::seconds(JUMP_SECS) || moved < -Duration::seconds(JUMP_SECS)
    });
    let mut wake = now + Duration::seconds(MAX_SLEEP_SECS).min(c.local);
    let mut due = |enabled: bool, at: Option<DateTime<Utc>>, every: Duration| -> bool {
        if !enabled {
            return false;
        }
        match at {
            // A clock set backwards leaves "last" in the future: look now.
            Some(t) if t <= now && now - t < every && !resumed => {
                wake = wake.min(t + every);
                false
            }
            _ => {
                wake = wake.min(now + every);
                true
            }
        }
    };
    let refresh_every = if !s.signed_in {
        c.local
    } else if s.open || s.pending {
        c.busy_refresh
    } else {
        c.idle_refresh
    };
    let work = Work {
        refresh: due(true, last.refresh, refresh_every),
        pending: due(s.signed_in && s.pending, last.pending, c.pending),
        approvals: due(s.signed_in && s.approver, last.approvals, c.approvals),
        ip: due(s.signed_in && s.open, last.ip, c.ip),
        approver_check: due(s.signed_in, last.approver_check, c.approver_check),
        eligibility: due(s.signed_in, last.eligibility, c.eligibility),
        resumed,
    };
    (work, wake)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
    }

    fn cadence() -> Cadence {
        Cadence::from_config(&WatchConfig::default())
    }

    fn signed_in() -> Situation {
        Situation {
            signed_in: true,
            ..Situation::default()
        }
    }

    /// Runs the loop as the watcher does, with an injected clock, and counts the looks.
    fn simulate(s: &Situation, seconds: i64) -> (usize, usize, usize) {
        let (refreshes, pending, approvals, ..) = simulate_all(s, seconds);
        (refreshes, pending, approvals)
    }

    /// [`simulate`], with the approver checks counted too.
    fn simulate_all(s: &Situation, seconds: i64) -> (usize, usize, usize, usize, usize) {
        let c = cadence();
        let mut last = Last::default();
        let mut now = t(0);
        let (mut refreshes, mut pending, mut approvals, mut checks) = (0, 0, 0, 0);
        let mut eligibility = 0;
        let mut slept = Duration::zero();
        while now < t(seconds) {
            let (work, wake) = schedule(now, slept, &last, s, &c);
            if work.refresh {
                refreshes += 1;
                last.refresh = Some(now);
            }
            if work.pending {
                pending += 1;
                last.pending = Some(now);
            }
            if work.approvals {
                approvals += 1;
                last.approvals = Some(now);
            }
            if work.approver_check {
                checks += 1;
                last.approver_check = Some(now);
            }
            if work.eligibility {
                eligibility += 1;
                last.eligibility = Some(now);
            }
            last.awake = Some(now);
            assert!(wake > now && wake - now <= Duration::seconds(30));
            slept = wake - now;
            now = wake;
        }
        (refreshes, pending, approvals, checks, eligibility)
    }

    #[test]
    fn the_policies_are_read_for_approvers_at_the_first_look_then_once_a_day() {
        // One hour: at the start only. A day and a bit: twice. Signed out: never.
        assert_eq!(simulate_all(&signed_in(), 3600).3, 1);
        assert_eq!(simulate_all(&signed_in(), 25 * 3600).3, 2);
        assert_eq!(simulate_all(&Situation::default(), 3600).3, 0);
        // Due at the first wake, with the first refresh.
        let (work, _) = schedule(
            t(0),
            Duration::zero(),
            &Last::default(),
            &signed_in(),
            &cadence(),
        );
        assert!(work.approver_check && work.refresh, "{work:?}");
    }

    #[test]
    fn what_may_be_activated_is_read_at_the_first_look_then_hourly() {
        assert_eq!(simulate_all(&signed_in(), 30).4, 1);
        assert_eq!(simulate_all(&signed_in(), 3 * 3600 + 60).4, 4);
        assert_eq!(simulate_all(&Situation::default(), 3600).4, 0);
    }

    #[test]
    fn idle_looks_rarely_and_pending_often_but_within_arm_budgets() {
        // One hour idle: a refresh every 5 minutes (each is 3 reads: under 60 an hour).
        let (refreshes, pending, approvals) = simulate(&signed_in(), 3600);
        assert_eq!((refreshes, pending, approvals), (12, 0, 0));
        // One hour with a request pending: one read every 2.2 s at most.
        let busy = Situation {
            pending: true,
            ..signed_in()
        };
        let (refreshes, pending, _) = simulate(&busy, 3600);
        assert_eq!(refreshes, 30);
        assert!((1600..=1640).contains(&pending), "{pending}");
        // An approver's inbox every 4 s.
        let approver = Situation {
            approver: true,
            ..signed_in()
        };
        let (_, _, approvals) = simulate(&approver, 3600);
        assert_eq!(approvals, 900);
    }

    #[test]
    fn reliability_14_a_suspend_makes_everything_due_at_once() {
        let c = cadence();
        let s = Situation {
            open: true,
            ..signed_in()
        };
        let last = Last {
            refresh: Some(t(0)),
            ip: Some(t(0)),
            approver_check: Some(t(0)),
            eligibility: Some(t(0)),
            awake: Some(t(0)),
            ..Last::default()
        };
        // Two seconds later, as planned: nothing due.
        let (work, _) = schedule(t(2), Duration::seconds(2), &last, &s, &c);
        assert_eq!(work, Work::default());
        // The loop asked for 2 s but the wall clock moved 3 hours: the laptop slept.
        let (work, wake) = schedule(t(3 * 3600), Duration::seconds(2), &last, &s, &c);
        assert!(work.resumed && work.refresh && work.ip, "{work:?}");
        assert!(wake <= t(3 * 3600 + 30));
        // A clock set backwards is a jump too.
        let (work, _) = schedule(t(-600), Duration::seconds(2), &last, &s, &c);
        assert!(work.resumed && work.refresh);
    }

    #[test]
    fn signed_out_checks_locally_and_never_polls_arm_work() {
        let c = cadence();
        let s = Situation {
            signed_in: false,
            pending: true,
            approver: true,
            open: true,
        };
        let last = Last {
            refresh: Some(t(0)),
            awake: Some(t(0)),
            ..Last::default()
        };
        let (work, wake) = schedule(t(1), Duration::seconds(1), &last, &s, &c);
        assert!(!work.pending && !work.approvals && !work.ip && !work.refresh);
        assert_eq!(wake, t(2));
        let (work, _) = schedule(t(2), Duration::seconds(1), &last, &s, &c);
        assert!(work.refresh);
    }
}
