//! What the engine tells its subscribers (the CLI's progress lines, later the watcher and the
//! tray). One enum carries every push; it is plain data, with no tokens in it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::phase::Step;

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EngineEvent {
    /// Something worth telling while waiting (a retry, a resumed request).
    Progress { message: String },
    /// A step of `connect` completed. `detail` is for people (it may change wording);
    /// decisions read `step` and `skips`, the steps this one made unnecessary (the role's
    /// steps, when access is already there).
    Step {
        step: Step,
        detail: String,
        at: DateTime<Utc>,
        skips: Vec<Step>,
    },
    /// A PIM request changed status.
    RequestStatus {
        request: String,
        role: String,
        status: String,
    },
    /// Something the watcher announces.
    Watch(WatchEvent),
}

/// What PIM activates: an Azure role at a scope, membership of a group through PIM for
/// Groups (the group holding the Azure role), or a Microsoft Entra (directory) role. All are
/// requested, approved, in effect and ended the same way; only the API differs (ARM,
/// Microsoft Graph). Only the first two can open a jump box.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Elevation {
    #[default]
    Role,
    Group,
    EntraRole,
}

impl Elevation {
    /// In words, for a list: "role", "group" or "Entra role".
    pub fn noun(self) -> &'static str {
        match self {
            Elevation::Role => "role",
            Elevation::Group => "group",
            Elevation::EntraRole => "Entra role",
        }
    }

    /// The prefix that names this kind when a person names one (`role:`, `group:`,
    /// `entra:`), and what such a prefix names.
    pub fn prefix(self) -> &'static str {
        match self {
            Elevation::Role => "role",
            Elevation::Group => "group",
            Elevation::EntraRole => "entra",
        }
    }

    /// A name as a person gives it, split into the kind its prefix names (if any) and the
    /// rest: `group:JIT Operators`, `entra:Global Reader`, `Reader`.
    pub fn split_name(name: &str) -> (Option<Elevation>, &str) {
        match name.split_once(':') {
            Some((prefix, rest)) => {
                match [Elevation::Role, Elevation::Group, Elevation::EntraRole]
                    .into_iter()
                    .find(|k| k.prefix().eq_ignore_ascii_case(prefix.trim()))
                {
                    Some(kind) => (Some(kind), rest.trim()),
                    None => (None, name),
                }
            }
            None => (None, name),
        }
    }
}

/// What the watcher announces, once each (across restarts too). The tray turns each into a
/// notification; `jumpgate watch` prints each as a line.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchEvent {
    /// A request of mine was approved.
    RequestApproved {
        request: String,
        role: String,
        scope: String,
        approver: Option<String>,
        justification: Option<String>,
    },
    /// A request of mine was denied.
    RequestDenied {
        request: String,
        role: String,
        scope: String,
        approver: Option<String>,
        justification: Option<String>,
    },
    /// A request waits for my decision as approver.
    ApprovalWaiting {
        request: String,
        approval: String,
        requester: String,
        role: String,
        scope: String,
        justification: Option<String>,
        duration: Option<String>,
        ticket: Option<String>,
    },
    /// Access ends in `lead_minutes`.
    ExpiryReminder {
        access: Access,
        lead_minutes: u32,
        end: DateTime<Utc>,
    },
    /// Access has ended.
    Expired { access: Access, end: DateTime<Utc> },
    /// Access ended before `end`, the time it was granted until: a newer JIT request
    /// replaced the rule, an administrator removed the role, or it was deactivated. `reason`
    /// says which in words; `code` is what ARM said (a JIT rule's `statusReason`, or the
    /// PIM request type that removed the role), when it said anything.
    EndedEarly {
        access: Access,
        end: DateTime<Utc>,
        reason: String,
        code: Option<String>,
    },
    /// A port is open for an address that is no longer mine.
    IpChanged {
        vm: String,
        vm_id: String,
        port: u16,
        old: String,
        new: String,
    },
    /// Sign-in must be repeated before anything else can be watched.
    SignedOut { reason: String },
    /// I may now activate something I could not before: a role at a scope, or membership of
    /// a group. `scope` is where, in words (a group's is its name).
    EligibilityAdded {
        kind: Elevation,
        role: String,
        scope: String,
    },
}

/// Something that ends: an active PIM role or an open JIT port.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Access {
    Role {
        role: String,
        scope: String,
    },
    Port {
        vm: String,
        vm_id: String,
        port: u16,
    },
}

impl Access {
    /// A stable key for the planner and the announced set.
    pub fn key(&self) -> String {
        match self {
            Access::Role { role, scope } => format!("role:{}:{role}", scope.to_ascii_lowercase()),
            Access::Port { vm_id, port, .. } => {
                format!("port:{}:{port}", vm_id.to_ascii_lowercase())
            }
        }
    }

    /// In words: "JIT Requester" or "jumpbox-win-01 port 3389".
    pub fn label(&self) -> String {
        match self {
            Access::Role { role, .. } => role.clone(),
            Access::Port { vm, port, .. } => format!("{vm} port {port}"),
        }
    }
}

impl Access {
    fn clean(&self) -> Access {
        let l = |s: &str| crate::text::line(s).into_owned();
        match self {
            Access::Role { role, scope } => Access::Role {
                role: l(role),
                scope: l(scope),
            },
            Access::Port { vm, vm_id, port } => Access::Port {
                vm: l(vm),
                vm_id: l(vm_id),
                port: *port,
            },
        }
    }
}

impl WatchEvent {
    /// The same event with every text field made one plain line (RELIABILITY #22): names,
    /// justifications and reasons come from servers and other people, and may carry
    /// controls, escape sequences or bidi overrides. What people see is made from this.
    pub fn clean(&self) -> WatchEvent {
        let l = |s: &String| crate::text::line(s).into_owned();
        let o = |s: &Option<String>| s.as_deref().map(|s| crate::text::line(s).into_owned());
        match self {
            WatchEvent::RequestApproved {
                request,
                role,
                scope,
                approver,
                justification,
            } => WatchEvent::RequestApproved {
                request: l(request),
                role: l(role),
                scope: l(scope),
                approver: o(approver),
                justification: o(justification),
            },
            WatchEvent::RequestDenied {
                request,
                role,
                scope,
                approver,
                justification,
            } => WatchEvent::RequestDenied {
                request: l(request),
                role: l(role),
                scope: l(scope),
                approver: o(approver),
                justification: o(justification),
            },
            WatchEvent::ApprovalWaiting {
                request,
                approval,
                requester,
                role,
                scope,
                justification,
                duration,
                ticket,
            } => WatchEvent::ApprovalWaiting {
                request: l(request),
                approval: l(approval),
                requester: l(requester),
                role: l(role),
                scope: l(scope),
                justification: o(justification),
                duration: o(duration),
                ticket: o(ticket),
            },
            WatchEvent::ExpiryReminder {
                access,
                lead_minutes,
                end,
            } => WatchEvent::ExpiryReminder {
                access: access.clean(),
                lead_minutes: *lead_minutes,
                end: *end,
            },
            WatchEvent::Expired { access, end } => WatchEvent::Expired {
                access: access.clean(),
                end: *end,
            },
            WatchEvent::EndedEarly {
                access,
                end,
                reason,
                code,
            } => WatchEvent::EndedEarly {
                access: access.clean(),
                end: *end,
                reason: l(reason),
                code: o(code),
            },
            WatchEvent::IpChanged {
                vm,
                vm_id,
                port,
                old,
                new,
            } => WatchEvent::IpChanged {
                vm: l(vm),
                vm_id: l(vm_id),
                port: *port,
                old: l(old),
                new: l(new),
            },
            WatchEvent::SignedOut { reason } => WatchEvent::SignedOut { reason: l(reason) },
            WatchEvent::EligibilityAdded { kind, role, scope } => WatchEvent::EligibilityAdded {
                kind: *kind,
                role: l(role),
                scope: l(scope),
            },
        }
    }

    /// The event's name, as `watch` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            WatchEvent::RequestApproved { .. } => "request_approved",
            WatchEvent::RequestDenied { .. } => "request_denied",
            WatchEvent::ApprovalWaiting { .. } => "approval_waiting",
            WatchEvent::ExpiryReminder { .. } => "expiry_reminder",
            WatchEvent::Expired { .. } => "expired",
            WatchEvent::EndedEarly { .. } => "ended_early",
            WatchEvent::IpChanged { .. } => "ip_changed",
            WatchEvent::SignedOut { .. } => "signed_out",
            WatchEvent::EligibilityAdded { .. } => "eligibility_added",
        }
    }

    /// One line for people, with every field from others made plain ([`WatchEvent::clean`]).
    pub fn describe(&self) -> String {
        self.clean().describe_clean()
    }

    fn describe_clean(&self) -> String {
        let by = |approver: &Option<String>, justification: &Option<String>| {
            format!(
                "{}{}",
                approver
                    .as_deref()
                    .map(|a| format!(" by {a}"))
                    .unwrap_or_default(),
                justification
                    .as_deref()
                    .map(|j| format!(": \"{j}\""))
                    .unwrap_or_default()
            )
        };
        match self {
            WatchEvent::RequestApproved {
                role,
                approver,
                justification,
                ..
            } => format!("{role} approved{}", by(approver, justification)),
            WatchEvent::RequestDenied {
                role,
                approver,
                justification,
                ..
            } => format!("{role} denied{}", by(approver, justification)),
            WatchEvent::ApprovalWaiting {
                request,
                requester,
                role,
                justification,
                duration,
                ticket,
                ..
            } => format!(
                "{requester} asks for {role}{}{}{}; decide with jumpgate approve|deny {request}",
                duration.as_deref().map(|d| format!(" for {d}")).unwrap_or_default(),
                justification
                    .as_deref()
                    .map(|j| format!(": \"{j}\""))
                    .unwrap_or_default(),
                ticket.as_deref().map(|t| format!(" (ticket {t})")).unwrap_or_default(),
            ),
            WatchEvent::ExpiryReminder {
                access,
                lead_minutes,
                end,
            } => format!(
                "{} ends in {lead_minutes} minutes (at {} UTC); renew with jumpgate extend",
                access.label(),
                end.format("%H:%M")
            ),
            WatchEvent::Expired { access, end } => {
                format!("{} ended at {} UTC", access.label(), end.format("%H:%M"))
            }
            WatchEvent::EndedEarly {
                access, end, reason, ..
            } => format!(
                "{} ended early: {reason} (it was granted until {} UTC)",
                access.label(),
                end.format("%H:%M")
            ),
            WatchEvent::IpChanged {
                vm,
                vm_id,
                port,
                old,
                new,
            } => format!(
                "{vm} port {port} is open for {old}, but your address is now {new}: run jumpgate open {vm_id} --port {port} to re-request it"
            ),
            WatchEvent::SignedOut { reason } => format!("{reason}: run jumpgate signin"),
            WatchEvent::EligibilityAdded {
                kind: Elevation::Group,
                role,
                ..
            } => format!("you may now activate membership of {role}: see jumpgate roles"),
            WatchEvent::EligibilityAdded { role, scope, .. } => {
                format!("you may now activate {role} at {scope}: see jumpgate roles")
            }
        }
    }
}
