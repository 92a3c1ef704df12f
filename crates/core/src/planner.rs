//! The reminder planner (RELIABILITY #14). Pure: deadlines, lead times, what was already
//! announced and `now` go in; what is due now and when to look again come out.
//!
//! Deadlines are wall-clock instants (in ARM's time), never timer durations: a laptop that
//! slept through a reminder gets it at once on wake, and one that slept past the end gets
//! "expired" instead of a stale reminder.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Something that ends: an active role or an open port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    /// Stable identity, such as `role:<scope>:<role id>` or `port:<vm id>:3389`.
    pub key: String,
    pub end: DateTime<Utc>,
}

/// What is due now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Due {
    Reminder {
        key: String,
        lead_minutes: u32,
        end: DateTime<Utc>,
    },
    Expired {
        key: String,
        end: DateTime<Utc>,
    },
}

impl Due {
    /// The announcement's identity, so it is made once, across restarts too.
    pub fn id(&self) -> String {
        match self {
            Due::Reminder {
                key,
                lead_minutes,
                end,
            } => format!("{key}@{}-{lead_minutes}m", end.timestamp()),
            Due::Expired { key, end } => format!("{key}@{}-expired", end.timestamp()),
        }
    }
}

/// The longest the watcher sleeps, so a missed wake-up (suspend) is caught within this.
pub const MAX_SLEEP_SECS: i64 = 30;

/// What is due at `now`, and when to look next. Announcement ids in `announced` are not
/// repeated; when several lead times have passed unannounced, only the nearest to the end is
/// due (one timely reminder, not a burst of stale ones).
pub fn plan(
    now: DateTime<Utc>,
    deadlines: &[Deadline],
    leads_minutes: &[u32],
    announced: &BTreeSet<String>,
) -> (Vec<Due>, DateTime<Utc>) {
    let mut leads: Vec<u32> = leads_minutes.to_vec();
    leads.sort_unstable();
    leads.dedup();
    let mut due = Vec::new();
    let mut wake = now + Duration::seconds(MAX_SLEEP_SECS);
    for d in deadlines {
        if now >= d.end {
            let expired = Due::Expired {
                key: d.key.clone(),
                end: d.end,
            };
            if !announced.contains(&expired.id()) {
                due.push(expired);
            }
            continue;
        }
        // The smallest lead whose moment has passed is the one to announce now.
        if let Some(&lead) = leads
            .iter()
            .find(|&&l| now >= d.end - Duration::minutes(i64::from(l)))
        {
            let reminder = Due::Reminder {
                key: d.key.clone(),
                lead_minutes: lead,
                end: d.end,
            };
            if !announced.contains(&reminder.id()) {
                due.push(reminder);
            }
        }
        let next = leads
            .iter()
            .map(|&l| d.end - Duration::minutes(i64::from(l)))
            .chain(std::iter::once(d.end))
            .filter(|t| *t > now)
            .min();
        if let Some(t) = next {
            wake = wake.min(t);
        }
    }
    (due, wake)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + min * 60, 0).expect("time")
    }

    fn run(
        now: DateTime<Utc>,
        deadlines: &[Deadline],
        announced: &mut BTreeSet<String>,
    ) -> (Vec<Due>, DateTime<Utc>) {
        let (due, wake) = plan(now, deadlines, &[15, 5], announced);
        announced.extend(due.iter().map(Due::id));
        (due, wake)
    }

    #[test]
    fn reliability_14_reminders_fire_at_each_lead_then_expiry_once_each() {
        let port = [Deadline {
            key: "port:vm:3389".into(),
            end: t(60),
        }];
        let mut seen = BTreeSet::new();
        let (due, wake) = run(t(0), &port, &mut seen);
        assert!(due.is_empty());
        assert_eq!(wake, t(0) + Duration::seconds(30), "never sleeps past 30 s");
        let (due, _) = run(t(45), &port, &mut seen);
        assert_eq!(
            due,
            [Due::Reminder {
                key: "port:vm:3389".into(),
                lead_minutes: 15,
                end: t(60)
            }]
        );
        assert!(run(t(46), &port, &mut seen).0.is_empty(), "announced once");
        let (due, _) = run(t(55), &port, &mut seen);
        assert!(matches!(
            due.as_slice(),
            [Due::Reminder {
                lead_minutes: 5,
                ..
            }]
        ));
        let (due, _) = run(t(60), &port, &mut seen);
        assert!(matches!(due.as_slice(), [Due::Expired { .. }]));
        assert!(run(t(61), &port, &mut seen).0.is_empty());
    }

    #[test]
    fn reliability_14_a_clock_that_jumps_over_deadlines_fires_what_is_due_at_once() {
        let role = [Deadline {
            key: "role:r".into(),
            end: t(60),
        }];
        // Asleep from minute 0 to minute 57: the 5-minute reminder is due, not the 15.
        let mut seen = BTreeSet::new();
        let (due, _) = run(t(57), &role, &mut seen);
        assert_eq!(
            due,
            [Due::Reminder {
                key: "role:r".into(),
                lead_minutes: 5,
                end: t(60)
            }]
        );
        // Asleep past the end: only "expired".
        let mut seen = BTreeSet::new();
        let (due, _) = run(t(90), &role, &mut seen);
        assert!(matches!(due.as_slice(), [Due::Expired { .. }]));
    }

    #[test]
    fn the_next_wake_is_the_nearest_moment_and_an_extension_is_new() {
        let two = [
            Deadline {
                key: "a".into(),
                end: t(60),
            },
            Deadline {
                key: "b".into(),
                end: t(50) + Duration::seconds(10),
            },
        ];
        let (_, wake) = plan(
            t(34) + Duration::seconds(50),
            &two,
            &[15, 5],
            &BTreeSet::new(),
        );
        assert_eq!(wake, t(35) + Duration::seconds(10), "b's 15-minute mark");
        // Extending moves the end: its reminders are new announcements.
        let mut seen = BTreeSet::new();
        run(
            t(45),
            &[Deadline {
                key: "a".into(),
                end: t(60),
            }],
            &mut seen,
        );
        let (due, _) = run(
            t(105),
            &[Deadline {
                key: "a".into(),
                end: t(120),
            }],
            &mut seen,
        );
        assert_eq!(due.len(), 1, "the extended grant reminds again");
    }
}
