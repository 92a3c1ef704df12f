//! The request state machine and the polling plan. Both are pure: the caller passes `now`
//! and what it observed, and gets back what to do next. No IO, no clock reads.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Where a PIM request stands, from its open-ended `status` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestPhase {
    Pending,
    Approved,
    Denied,
    Canceled,
    Failed,
}

impl RequestPhase {
    /// Classifies a status. PIM's status is an open enum: anything unknown counts as still
    /// pending, so a new intermediate status never ends a wait early.
    pub fn of(status: &str) -> RequestPhase {
        match status {
            "Provisioned" | "Granted" | "AdminApproved" | "ScheduleCreated" => {
                RequestPhase::Approved
            }
            "Denied" | "AdminDenied" => RequestPhase::Denied,
            "Canceled" | "Revoked" => RequestPhase::Canceled,
            "Failed" | "FailedAsResourceIsLocked" | "TimedOut" | "Invalid" => RequestPhase::Failed,
            _ => RequestPhase::Pending,
        }
    }

    pub fn is_final(self) -> bool {
        self != RequestPhase::Pending
    }
}

/// How often to look, given how long we have been waiting for something to change.
/// Fast at first, when an answer is likeliest to be close, then easing off to once every
/// 10 s; ARM allows 25 reads a second per principal, so this stays far inside it.
pub fn poll_interval(waited: Duration) -> Duration {
    let s = waited.num_seconds();
    Duration::milliseconds(match s {
        i64::MIN..=30 => 1_000,
        31..=300 => 2_000,
        301..=1_800 => 5_000,
        _ => 10_000,
    })
}

/// One step of `connect`, in the order they happen.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    CheckAccess,
    RequestRole,
    AwaitApproval,
    AwaitEffect,
    DetectIp,
    OpenPort,
    AwaitReachable,
    Launch,
}

impl Step {
    /// The steps that activate a role, which access already held makes unnecessary.
    pub const ROLE: [Step; 3] = [Step::RequestRole, Step::AwaitApproval, Step::AwaitEffect];

    pub fn label(self) -> &'static str {
        match self {
            Step::CheckAccess => "check access",
            Step::RequestRole => "role requested",
            Step::AwaitApproval => "approved",
            Step::AwaitEffect => "role in effect",
            Step::DetectIp => "public IP detected",
            Step::OpenPort => "port opened",
            Step::AwaitReachable => "reachable",
            Step::Launch => "client launched",
        }
    }
}

/// What the connect chain saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Whether JIT initiate is permitted now.
    Access(bool),
    /// A role activation was sent and answered with this status.
    RoleRequested(String),
    /// The request's status on a later look.
    RequestStatus(String),
    /// Whether the role passes RBAC yet.
    InEffect(bool),
    IpDetected,
    PortOpened,
    Reachable(bool),
    Launched,
}

/// What the connect chain does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Do(Step),
    /// Look at `step` again after the delay.
    Wait(Step, Duration),
    Done,
    Fail(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Denied,
    Canceled,
    RequestFailed,
    TimedOut(Step),
}

/// The connect chain: activate the role if needed, wait for approval and effect, open the
/// port, wait until it is reachable, launch.
#[derive(Debug, Clone)]
pub struct Connect {
    step: Step,
    since: DateTime<Utc>,
    deadline: Duration,
    launch: bool,
}

impl Connect {
    /// Starts at `now`. `deadline` bounds each wait (approval, effect, reachability).
    pub fn start(now: DateTime<Utc>, deadline: Duration, launch: bool) -> (Connect, Action) {
        (
            Connect {
                step: Step::CheckAccess,
                since: now,
                deadline,
                launch,
            },
            Action::Do(Step::CheckAccess),
        )
    }

    fn go(&mut self, now: DateTime<Utc>, step: Step) -> Action {
        self.step = step;
        self.since = now;
        Action::Do(step)
    }

    fn wait(&self, now: DateTime<Utc>) -> Action {
        let waited = now - self.since;
        if waited >= self.deadline {
            Action::Fail(Failure::TimedOut(self.step))
        } else {
            Action::Wait(self.step, poll_interval(waited))
        }
    }

    pub fn on(&mut self, now: DateTime<Utc>, seen: Observation) -> Action {
        use Observation as O;
        match (self.step, seen) {
            (Step::CheckAccess, O::Access(true)) => self.go(now, Step::DetectIp),
            (Step::CheckAccess, O::Access(false)) => self.go(now, Step::RequestRole),
            (
                Step::RequestRole | Step::AwaitApproval,
                O::RoleRequested(s) | O::RequestStatus(s),
            ) => match RequestPhase::of(&s) {
                RequestPhase::Approved => self.go(now, Step::AwaitEffect),
                RequestPhase::Denied => Action::Fail(Failure::Denied),
                RequestPhase::Canceled => Action::Fail(Failure::Canceled),
                RequestPhase::Failed => Action::Fail(Failure::RequestFailed),
                RequestPhase::Pending => {
                    if self.step == Step::RequestRole {
                        self.step = Step::AwaitApproval;
                        self.since = now;
                    }
                    self.wait(now)
                }
            },
            (Step::AwaitEffect, O::InEffect(true)) => self.go(now, Step::DetectIp),
            (Step::AwaitEffect, O::InEffect(false)) => self.wait(now),
            (Step::DetectIp, O::IpDetected) => self.go(now, Step::OpenPort),
            (Step::OpenPort, O::PortOpened) => self.go(now, Step::AwaitReachable),
            (Step::AwaitReachable, O::Reachable(true)) => {
                if self.launch {
                    self.go(now, Step::Launch)
                } else {
                    Action::Done
                }
            }
            (Step::AwaitReachable, O::Reachable(false)) => self.wait(now),
            (Step::Launch, O::Launched) => Action::Done,
            // An observation that does not belong to the current step changes nothing.
            (step, _) => Action::Do(step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
    }

    #[test]
    fn the_whole_chain_with_approval() {
        let (mut c, first) = Connect::start(t(0), Duration::minutes(30), true);
        assert_eq!(first, Action::Do(Step::CheckAccess));
        assert_eq!(
            c.on(t(1), Observation::Access(false)),
            Action::Do(Step::RequestRole)
        );
        assert_eq!(
            c.on(t(2), Observation::RoleRequested("PendingApproval".into())),
            Action::Wait(Step::AwaitApproval, Duration::seconds(1))
        );
        assert_eq!(
            c.on(t(100), Observation::RequestStatus("PendingApproval".into())),
            Action::Wait(Step::AwaitApproval, Duration::seconds(2))
        );
        assert_eq!(
            c.on(t(101), Observation::RequestStatus("Provisioned".into())),
            Action::Do(Step::AwaitEffect)
        );
        assert_eq!(
            c.on(t(102), Observation::InEffect(false)),
            Action::Wait(Step::AwaitEffect, Duration::seconds(1))
        );
        assert_eq!(
            c.on(t(110), Observation::InEffect(true)),
            Action::Do(Step::DetectIp)
        );
        assert_eq!(
            c.on(t(111), Observation::IpDetected),
            Action::Do(Step::OpenPort)
        );
        assert_eq!(
            c.on(t(112), Observation::PortOpened),
            Action::Do(Step::AwaitReachable)
        );
        assert_eq!(
            c.on(t(113), Observation::Reachable(true)),
            Action::Do(Step::Launch)
        );
        assert_eq!(c.on(t(114), Observation::Launched), Action::Done);
    }

    #[test]
    fn denial_timeouts_and_unknown_statuses() {
        let (mut c, _) = Connect::start(t(0), Duration::minutes(5), false);
        c.on(t(1), Observation::Access(false));
        c.on(t(2), Observation::RoleRequested("PendingApproval".into()));
        assert!(
            matches!(
                c.on(
                    t(3),
                    Observation::RequestStatus("PendingAdminDecision".into())
                ),
                Action::Wait(..)
            ),
            "unknown statuses keep waiting"
        );
        assert_eq!(
            c.on(t(400), Observation::RequestStatus("PendingApproval".into())),
            Action::Fail(Failure::TimedOut(Step::AwaitApproval))
        );
        let (mut d, _) = Connect::start(t(0), Duration::minutes(5), false);
        d.on(t(1), Observation::Access(false));
        assert_eq!(
            d.on(t(2), Observation::RoleRequested("Denied".into())),
            Action::Fail(Failure::Denied)
        );
        let (mut e, _) = Connect::start(t(0), Duration::minutes(5), false);
        assert_eq!(
            e.on(t(1), Observation::Access(true)),
            Action::Do(Step::DetectIp)
        );
        e.on(t(2), Observation::IpDetected);
        e.on(t(3), Observation::PortOpened);
        assert_eq!(
            e.on(t(4), Observation::Reachable(true)),
            Action::Done,
            "no launch asked"
        );
    }

    #[test]
    fn polling_eases_off_but_stays_inside_arm_limits() {
        let mut last = Duration::zero();
        for s in [0, 10, 60, 600, 7200] {
            let i = poll_interval(Duration::seconds(s));
            assert!(i >= last && i >= Duration::seconds(1));
            last = i;
        }
        // One pending request polled for an hour: at most 1800 reads (one per 2 s on average).
        let mut reads = 0;
        let mut waited = Duration::zero();
        while waited < Duration::hours(1) {
            waited += poll_interval(waited);
            reads += 1;
        }
        assert!(reads <= 1800, "{reads}");
    }
}
