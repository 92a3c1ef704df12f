//! What the tray shows, decided without IO: the icon and its tooltip from what the watcher
//! knows, the menu, and the notification each watcher event becomes (with its actions).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::duration::human;
use crate::events::{Access, Elevation, WatchEvent};

/// The icon's states, most urgent first when several hold.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Icon {
    SignedOut,
    /// A request waits for my decision as approver.
    ApprovalWaiting,
    /// Access ends within the nearest reminder.
    ExpiringSoon,
    AccessOpen,
    /// A request of mine waits for a decision.
    WaitingForApproval,
    Idle,
}

/// What the watcher knows, as the tray needs it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub signed_in: bool,
    /// Roles I asked for that wait for a decision.
    pub pending: Vec<String>,
    /// What of mine is open, and when it ends (ARM's time).
    pub open: Vec<(Access, DateTime<Utc>)>,
    /// Requests waiting for my decision.
    pub approvals: usize,
}

/// The icon and its tooltip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrayView {
    pub icon: Icon,
    pub tooltip: String,
}

/// The icon and tooltip at `now`; `soon` is how close an end must be to count as expiring.
pub fn view(now: DateTime<Utc>, s: &Snapshot, soon: Duration) -> TrayView {
    let mut open: Vec<&(Access, DateTime<Utc>)> =
        s.open.iter().filter(|(_, end)| *end > now).collect();
    open.sort_by_key(|(_, end)| *end);
    let mut parts = Vec::new();
    for (access, end) in &open {
        parts.push(format!(
            "{} open, {} left",
            access.label(),
            human(*end - now)
        ));
    }
    for role in &s.pending {
        parts.push(format!("{role} waiting for approval"));
    }
    if s.approvals > 0 {
        parts.push(format!(
            "{} request{} waiting for your decision",
            s.approvals,
            if s.approvals == 1 { "" } else { "s" }
        ));
    }
    let icon = if !s.signed_in {
        Icon::SignedOut
    } else if s.approvals > 0 {
        Icon::ApprovalWaiting
    } else if open.first().is_some_and(|(_, end)| *end - now <= soon) {
        Icon::ExpiringSoon
    } else if !open.is_empty() {
        Icon::AccessOpen
    } else if !s.pending.is_empty() {
        Icon::WaitingForApproval
    } else {
        Icon::Idle
    };
    let tooltip = if !s.signed_in {
        "Jumpgate: signed out".to_string()
    } else if parts.is_empty() {
        "Jumpgate: no access open".to_string()
    } else {
        format!("Jumpgate: {}", parts.join("; "))
    };
    TrayView { icon, tooltip }
}

/// A jump box as the menu names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MenuTarget {
    pub vm: String,
    /// What the entry opens: a name may be shared by several VMs, a resource id never is.
    pub vm_id: String,
    pub resource_group: String,
    /// The subscription's display name, or its id where the name is not known.
    pub subscription: String,
}

/// One entry of the tray menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MenuItem {
    Open,
    /// `vm_id` keys the entry; `label` names the VM, with where it is when another jump box
    /// has the same name.
    Connect {
        vm_id: String,
        label: String,
    },
    /// A profile from the configuration: one click asks for all of it.
    RunProfile {
        name: String,
    },
    Approvals {
        count: usize,
    },
    SignIn,
    SignOut,
    StartAtLogin {
        on: bool,
    },
    Quit,
}

impl MenuItem {
    /// A stable id for the menu toolkit.
    pub fn id(&self) -> String {
        match self {
            MenuItem::Open => "open".into(),
            MenuItem::Connect { vm_id, .. } => format!("connect:{vm_id}"),
            MenuItem::RunProfile { name } => format!("profile:{name}"),
            MenuItem::Approvals { .. } => "approvals".into(),
            MenuItem::SignIn => "sign_in".into(),
            MenuItem::SignOut => "sign_out".into(),
            MenuItem::StartAtLogin { .. } => "start_at_login".into(),
            MenuItem::Quit => "quit".into(),
        }
    }

    pub fn label(&self) -> String {
        match self {
            MenuItem::Open => "Open".into(),
            MenuItem::Connect { label, .. } => format!("Connect to {label}"),
            MenuItem::RunProfile { name } => format!("Run {}", crate::text::line(name)),
            MenuItem::Approvals { count } => format!("Approvals ({count})"),
            MenuItem::SignIn => "Sign in".into(),
            MenuItem::SignOut => "Sign out".into(),
            MenuItem::StartAtLogin { on } => {
                format!("Start at login: {}", if *on { "on" } else { "off" })
            }
            MenuItem::Quit => "Quit".into(),
        }
    }
}

/// The menu: Open, a Connect entry per jump box, a Run entry per profile, Approvals (n), Sign in or out, Start at
/// login, Quit. Each Connect entry is keyed by the VM's resource id (RELIABILITY #31); where
/// two jump boxes share a name, their labels add the resource group, and the subscription
/// too when that is shared as well, so no two entries read alike.
pub fn menu(
    s: &Snapshot,
    targets: &[MenuTarget],
    profiles: &[String],
    start_at_login: bool,
) -> Vec<MenuItem> {
    let mut items = vec![MenuItem::Open];
    if s.signed_in {
        items.extend(targets.iter().map(|t| MenuItem::Connect {
            vm_id: t.vm_id.clone(),
            label: menu_label(t, targets),
        }));
        items.extend(
            profiles
                .iter()
                .map(|name| MenuItem::RunProfile { name: name.clone() }),
        );
        items.push(MenuItem::Approvals { count: s.approvals });
        items.push(MenuItem::SignOut);
    } else {
        items.push(MenuItem::SignIn);
    }
    items.push(MenuItem::StartAtLogin { on: start_at_login });
    items.push(MenuItem::Quit);
    items
}

/// How the menu names `t` among `all`: its name alone while no other jump box has it (Azure
/// compares VM names without case), else with its resource group, then its subscription's
/// name, then (display names need not be unique) its subscription's id: the first that no
/// other entry shares. Names from ARM are made one plain line (RELIABILITY #22).
fn menu_label(t: &MenuTarget, all: &[MenuTarget]) -> String {
    let sub_id = |m: &MenuTarget| {
        crate::policy::subscription_of(&m.vm_id)
            .unwrap_or("")
            .to_string()
    };
    let tiers: [&dyn Fn(&MenuTarget) -> String; 4] = [
        &|m| m.vm.clone(),
        &|m| format!("{} ({})", m.vm, m.resource_group),
        &|m| format!("{} ({}, {})", m.vm, m.resource_group, m.subscription),
        &|m| format!("{} ({}, {})", m.vm, m.resource_group, sub_id(m)),
    ];
    let chosen = tiers
        .iter()
        .find(|key| {
            let mine = key(t).to_ascii_lowercase();
            all.iter()
                .filter(|o| key(o).to_ascii_lowercase() == mine)
                .count()
                < 2
        })
        .unwrap_or(&tiers[3]);
    crate::text::line(&chosen(t)).into_owned()
}

/// A notification action: its id (what the app does) and its label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub id: String,
    pub label: String,
}

/// A notification: what it says, its actions, and what the popover opens on a click.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub title: String,
    pub body: String,
    pub actions: Vec<Action>,
    /// The popover view (and item) a click opens.
    pub opens: String,
    pub urgent: bool,
}

fn action(id: String, label: &str) -> Action {
    Action {
        id,
        label: label.into(),
    }
}

/// A notice from one of several tenants' watchers, named for its tenant ("fabrikam: …").
pub fn in_tenant(mut notice: Notice, tenant: &str) -> Notice {
    notice.title = format!("{}: {}", crate::text::line(tenant), notice.title);
    notice
}

/// The notification for a watcher event.
pub fn notice(e: &WatchEvent) -> Notice {
    // Names and justifications come from others: one plain line each (RELIABILITY #22).
    // The tray escapes markup where the notification server renders it.
    let e = &e.clean();
    let by = |approver: &Option<String>| {
        approver
            .as_deref()
            .map(|a| format!(" by {a}"))
            .unwrap_or_default()
    };
    match e {
        WatchEvent::RequestApproved {
            request,
            role,
            approver,
            justification,
            ..
        } => Notice {
            title: "Access approved".into(),
            body: format!(
                "{role} was approved{}{}",
                by(approver),
                justification
                    .as_deref()
                    .map(|j| format!(": {j}"))
                    .unwrap_or_default()
            ),
            actions: vec![action(format!("connect:{request}"), "Connect")],
            opens: format!("targets:{request}"),
            urgent: false,
        },
        WatchEvent::RequestDenied {
            role,
            approver,
            justification,
            request,
            ..
        } => Notice {
            title: format!("{role} denied{}", by(approver)),
            body: justification
                .clone()
                .unwrap_or_else(|| "No reason was given.".into()),
            actions: Vec::new(),
            opens: format!("history:{request}"),
            urgent: true,
        },
        WatchEvent::ApprovalWaiting {
            request,
            requester,
            role,
            duration,
            justification,
            ..
        } => Notice {
            title: format!("{requester} asks for {role}"),
            body: format!(
                "{}{}",
                duration
                    .as_deref()
                    .map(|d| format!("For {d}. "))
                    .unwrap_or_default(),
                justification.clone().unwrap_or_default()
            ),
            actions: vec![
                action(format!("approve:{request}"), "Approve…"),
                action(format!("deny:{request}"), "Deny…"),
            ],
            opens: format!("approvals:{request}"),
            urgent: true,
        },
        WatchEvent::ExpiryReminder {
            access,
            lead_minutes,
            ..
        } => Notice {
            title: format!("{} ends in {lead_minutes} minutes", access.label()),
            body: "Extend it now to keep working.".into(),
            actions: vec![action(format!("extend:{}", access.key()), "Extend")],
            opens: format!("active:{}", access.key()),
            urgent: *lead_minutes <= 5,
        },
        WatchEvent::Expired { access, .. } => Notice {
            title: format!("{} has ended", access.label()),
            body: "Connect again when you need it.".into(),
            actions: Vec::new(),
            opens: "targets".into(),
            urgent: false,
        },
        WatchEvent::EndedEarly { access, reason, .. } => Notice {
            title: format!("{} ended early", access.label()),
            body: format!("{reason}. Connect again when you need it."),
            actions: Vec::new(),
            opens: "targets".into(),
            // Unexpected: the user may be in the middle of a session.
            urgent: true,
        },
        WatchEvent::IpChanged {
            vm,
            vm_id,
            port,
            old,
            new,
        } => Notice {
            title: "Your public IP changed".into(),
            body: format!("{vm} port {port} is open for {old}, but you are now {new}."),
            // The VM by resource id: the re-request must reach this VM, whatever its name.
            actions: vec![action(
                format!("rerequest:{vm_id}:{port}"),
                &format!("Re-request for {new}"),
            )],
            opens: format!("targets:{vm_id}"),
            urgent: true,
        },
        WatchEvent::SignedOut { reason } => Notice {
            title: "Sign in again".into(),
            body: reason.clone(),
            actions: vec![action("sign_in".into(), "Sign in")],
            opens: "sign_in".into(),
            urgent: true,
        },
        WatchEvent::EligibilityAdded { kind, role, scope } => Notice {
            title: match kind {
                Elevation::Role | Elevation::EntraRole => format!("You may now activate {role}"),
                Elevation::Group => format!("You may now join {role}"),
            },
            body: match kind {
                Elevation::Role => format!("At {scope}, through PIM."),
                Elevation::Group => "A group membership, through PIM for Groups.".into(),
                Elevation::EntraRole => "A Microsoft Entra role, through PIM.".into(),
            },
            actions: Vec::new(),
            opens: "targets".into(),
            urgent: false,
        },
    }
}

/// What became of a profile asked for from the tray, as a notification: everything in
/// effect (and the jump box opened, when it names one), or which part was refused and what
/// stays active.
pub fn profile_notice(
    profile: &str,
    active: &[String],
    refused: &[(String, String)],
    opened: Option<&str>,
) -> Notice {
    let l = |s: &str| crate::text::line(s).into_owned();
    let names = |list: &[String]| list.iter().map(|n| l(n)).collect::<Vec<_>>().join(", ");
    match refused.first() {
        None => Notice {
            title: format!("{} is ready", l(profile)),
            body: [
                (!active.is_empty()).then(|| format!("Active: {}.", names(active))),
                opened.map(|o| format!("{} is open for you.", l(o))),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
            actions: Vec::new(),
            opens: "active".into(),
            urgent: false,
        },
        Some((what, why)) => Notice {
            title: format!("{}: not all of it was granted", l(profile)),
            body: format!(
                "{}: {}{}",
                l(what),
                l(why),
                if active.is_empty() {
                    String::new()
                } else {
                    format!(" Active and staying so: {}.", names(active))
                }
            ),
            actions: Vec::new(),
            opens: "active".into(),
            urgent: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + min * 60, 0).expect("time")
    }

    fn port() -> Access {
        Access::Port {
            vm: "jumpbox-win-01".into(),
            vm_id: "/vm/jumpbox-win-01".into(),
            port: 3389,
        }
    }

    #[test]
    fn the_icon_says_the_most_urgent_state_and_the_tooltip_all_of_them() {
        let soon = Duration::minutes(15);
        let mut s = Snapshot::default();
        assert_eq!(view(t(0), &s, soon).icon, Icon::SignedOut);
        s.signed_in = true;
        assert_eq!(
            view(t(0), &s, soon),
            TrayView {
                icon: Icon::Idle,
                tooltip: "Jumpgate: no access open".into()
            }
        );
        s.pending = vec!["JIT Requester".into()];
        assert_eq!(view(t(0), &s, soon).icon, Icon::WaitingForApproval);
        s.open = vec![(port(), t(60))];
        let v = view(t(0), &s, soon);
        assert_eq!(v.icon, Icon::AccessOpen);
        assert_eq!(
            v.tooltip,
            "Jumpgate: jumpbox-win-01 port 3389 open, 1h left; JIT Requester waiting for approval"
        );
        assert_eq!(view(t(50), &s, soon).icon, Icon::ExpiringSoon);
        // Ended access is neither open nor expiring.
        assert_eq!(view(t(61), &s, soon).icon, Icon::WaitingForApproval);
        s.approvals = 2;
        let v = view(t(50), &s, soon);
        assert_eq!(v.icon, Icon::ApprovalWaiting);
        assert!(
            v.tooltip.ends_with("2 requests waiting for your decision"),
            "{}",
            v.tooltip
        );
    }

    const SUB_A: &str = "1c9d3f2a-6e4b-4a8c-b7d5-2f0e1a3b4c5d";
    const SUB_B: &str = "2f6a8c0e-4b3d-4c5e-9a7b-8c9d0e1f2a34";

    fn target(name: &str, sub: &str, sub_name: &str, rg: &str) -> MenuTarget {
        MenuTarget {
            vm: name.into(),
            vm_id: format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"
            ),
            resource_group: rg.into(),
            subscription: sub_name.into(),
        }
    }

    fn signed_in() -> Snapshot {
        Snapshot {
            signed_in: true,
            ..Snapshot::default()
        }
    }

    #[test]
    fn the_menu_has_a_connect_entry_per_jump_box() {
        let targets = vec![
            target("jumpbox-win-01", SUB_A, "Jump Boxes", "rg-jumpboxes"),
            target("jumpbox-linux-01", SUB_A, "Jump Boxes", "rg-jumpboxes"),
        ];
        let profiles = ["Morning checks".to_string()];
        let signed_out = menu(&Snapshot::default(), &targets, &profiles, false);
        let labels: Vec<String> = signed_out.iter().map(MenuItem::label).collect();
        assert_eq!(labels, ["Open", "Sign in", "Start at login: off", "Quit"]);
        let s = Snapshot {
            signed_in: true,
            approvals: 1,
            ..Snapshot::default()
        };
        let labels: Vec<String> = menu(&s, &targets, &profiles, true)
            .iter()
            .map(MenuItem::label)
            .collect();
        assert_eq!(
            labels,
            [
                "Open",
                "Connect to jumpbox-win-01",
                "Connect to jumpbox-linux-01",
                "Run Morning checks",
                "Approvals (1)",
                "Sign out",
                "Start at login: on",
                "Quit"
            ]
        );
        assert_eq!(
            menu(&s, &targets, &profiles, true)[1].id(),
            format!("connect:{}", targets[0].vm_id)
        );
        assert_eq!(
            menu(&s, &targets, &profiles, true)[3].id(),
            "profile:Morning checks"
        );
    }

    /// Two connect entries of the menu: their ids and labels.
    fn connect_entries(targets: &[MenuTarget]) -> Vec<(String, String)> {
        menu(&signed_in(), targets, &[], false)
            .iter()
            .filter(|i| matches!(i, MenuItem::Connect { .. }))
            .map(|i| (i.id(), i.label()))
            .collect()
    }

    #[test]
    fn reliability_31_two_jump_boxes_of_one_name_are_two_entries_keyed_by_resource_id() {
        let targets = vec![
            target(
                "jumpbox-win-01",
                SUB_A,
                "Contoso Jump Boxes",
                "rg-jumpboxes",
            ),
            target(
                "jumpbox-linux-01",
                SUB_A,
                "Contoso Jump Boxes",
                "rg-jumpboxes",
            ),
            // Azure compares VM names without case.
            target("JumpBox-Win-01", SUB_B, "Contoso Legacy", "rg-legacy"),
        ];
        let entries = connect_entries(&targets);
        assert_eq!(
            entries,
            [
                (
                    format!("connect:{}", targets[0].vm_id),
                    "Connect to jumpbox-win-01 (rg-jumpboxes)".to_string()
                ),
                (
                    format!("connect:{}", targets[1].vm_id),
                    "Connect to jumpbox-linux-01".to_string()
                ),
                (
                    format!("connect:{}", targets[2].vm_id),
                    "Connect to JumpBox-Win-01 (rg-legacy)".to_string()
                ),
            ]
        );

        // The same resource group in two subscriptions: the subscription's name tells them
        // apart, or its id when the names are alike too.
        let twins = vec![
            target(
                "jumpbox-win-01",
                SUB_A,
                "Contoso Jump Boxes",
                "rg-jumpboxes",
            ),
            target("jumpbox-win-01", SUB_B, "Contoso Legacy", "rg-jumpboxes"),
        ];
        let labels: Vec<String> = connect_entries(&twins).into_iter().map(|e| e.1).collect();
        assert_eq!(
            labels,
            [
                "Connect to jumpbox-win-01 (rg-jumpboxes, Contoso Jump Boxes)",
                "Connect to jumpbox-win-01 (rg-jumpboxes, Contoso Legacy)"
            ]
        );
        let alike = vec![
            target("jumpbox-win-01", SUB_A, "Contoso", "rg-jumpboxes"),
            target("jumpbox-win-01", SUB_B, "Contoso", "rg-jumpboxes"),
        ];
        let entries = connect_entries(&alike);
        assert_eq!(
            entries[1].1,
            format!("Connect to jumpbox-win-01 (rg-jumpboxes, {SUB_B})")
        );
        assert_ne!(entries[0], entries[1]);
    }

    #[test]
    fn reliability_22_menu_labels_from_arm_are_one_plain_line() {
        let targets = vec![
            target(
                "jumpbox-win-01",
                SUB_A,
                "Evil\u{202E}gnp.exe\nsecond line",
                "rg",
            ),
            target("jumpbox-win-01", SUB_B, "Other", "rg"),
        ];
        for (_, label) in connect_entries(&targets) {
            assert!(!label.chars().any(crate::text::is_hostile), "{label:?}");
            assert!(!label.contains('\n'), "{label:?}");
        }
    }

    #[test]
    fn each_event_becomes_the_notification_the_issue_asks_for() {
        let approved = notice(&WatchEvent::RequestApproved {
            request: "r1".into(),
            role: "JIT Requester".into(),
            scope: "/s".into(),
            approver: Some("bob@contoso.example".into()),
            justification: Some("ok".into()),
        });
        assert_eq!(approved.title, "Access approved");
        assert_eq!(approved.actions[0].label, "Connect");
        let denied = notice(&WatchEvent::RequestDenied {
            request: "r2".into(),
            role: "JIT Requester".into(),
            scope: "/s".into(),
            approver: Some("bob@contoso.example".into()),
            justification: Some("Not during the freeze".into()),
        });
        assert_eq!(denied.body, "Not during the freeze");
        let waiting = notice(&WatchEvent::ApprovalWaiting {
            request: "r3".into(),
            approval: "a3".into(),
            requester: "alice@contoso.example".into(),
            role: "JIT Requester".into(),
            scope: "/s".into(),
            justification: Some("Patch".into()),
            duration: Some("PT1H".into()),
            ticket: None,
        });
        let labels: Vec<&str> = waiting.actions.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels, ["Approve…", "Deny…"]);
        assert_eq!(waiting.opens, "approvals:r3");
        let reminder = notice(&WatchEvent::ExpiryReminder {
            access: port(),
            lead_minutes: 5,
            end: t(5),
        });
        assert_eq!(reminder.actions[0].label, "Extend");
        assert!(notice(&WatchEvent::Expired {
            access: port(),
            end: t(0)
        })
        .actions
        .is_empty());
        let early = notice(&WatchEvent::EndedEarly {
            access: port(),
            end: t(30),
            reason: "a newer request from bob@contoso.example replaced it".into(),
            code: Some("NewerRequestInitiated".into()),
        });
        assert!(early.title.ends_with("ended early"), "{}", early.title);
        assert!(early.body.contains("bob@contoso.example"), "{}", early.body);
        assert!(early.urgent);
        let moved = notice(&WatchEvent::IpChanged {
            vm: "jumpbox-win-01".into(),
            vm_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01".into(),
            port: 3389,
            old: "203.0.113.7".into(),
            new: "198.51.100.4".into(),
        });
        assert_eq!(moved.actions[0].label, "Re-request for 198.51.100.4");
        assert_eq!(
            moved.actions[0].id,
            "rerequest:/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01:3389"
        );
    }

    #[test]
    fn a_profile_run_from_the_tray_says_what_is_ready_or_what_was_refused() {
        let active = vec!["Contributor".to_string(), "JIT Requester".to_string()];
        let ready = profile_notice(
            "Morning checks",
            &active,
            &[],
            Some("jumpbox-linux-01 port 22"),
        );
        assert_eq!(ready.title, "Morning checks is ready");
        assert_eq!(
            ready.body,
            "Active: Contributor, JIT Requester. jumpbox-linux-01 port 22 is open for you."
        );
        assert!(!ready.urgent);
        let refused = vec![(
            "Global\u{202E}Wizard".to_string(),
            "You are not eligible\nfor it".to_string(),
        )];
        let partial = profile_notice("Morning checks", &active[..1], &refused, None);
        assert_eq!(partial.title, "Morning checks: not all of it was granted");
        assert!(
            partial
                .body
                .ends_with("Active and staying so: Contributor."),
            "{}",
            partial.body
        );
        assert!(
            !partial.body.chars().any(crate::text::is_hostile),
            "{:?}",
            partial.body
        );
        assert!(partial.urgent);
    }

    #[test]
    fn reliability_22_notices_and_watch_lines_carry_no_controls_or_bidi() {
        let hostile = "ok\u{1b}[2J\u{1b}]8;;https://evil.example\u{7}x\u{202E}gnp.exe\nFAKE <a href=\"https://evil.example\">y</a>";
        let e = WatchEvent::ApprovalWaiting {
            request: "r1".into(),
            approval: "a1".into(),
            requester: format!("alice\u{202E}{hostile}"),
            role: "JIT\u{1b}[31m Requester".into(),
            scope: "/subscriptions/s".into(),
            justification: Some(hostile.into()),
            duration: Some("PT1H".into()),
            ticket: Some("SNOW:\u{9b}1".into()),
        };
        let n = notice(&e);
        let line = e.describe();
        for shown in [&n.title, &n.body, &line] {
            assert!(!shown.chars().any(crate::text::is_hostile), "{shown:?}");
        }
        assert!(
            line.contains("FAKE <a href"),
            "the text stays, made inert: {line}"
        );
        assert!(n.body.contains("gnp.exe FAKE"), "{}", n.body);
        // A role's or a group's name is chosen by whoever made it.
        for kind in [Elevation::Role, Elevation::Group, Elevation::EntraRole] {
            let e = WatchEvent::EligibilityAdded {
                kind,
                role: format!("Ops\n{hostile}"),
                scope: format!("rg\u{202E}{hostile}"),
            };
            let n = notice(&e);
            let line = e.describe();
            for shown in [&n.title, &n.body, &line] {
                assert!(!shown.chars().any(crate::text::is_hostile), "{shown:?}");
            }
            assert!(n.title.starts_with("You may now"), "{}", n.title);
            assert_eq!(n.opens, "targets");
        }
    }

    #[test]
    fn a_notice_from_another_tenant_is_named_for_it() {
        let n = in_tenant(
            notice(&WatchEvent::SignedOut {
                reason: "revoked".into(),
            }),
            "fabrikam\u{202E}",
        );
        assert!(n.title.starts_with("fabrikam"), "{}", n.title);
        assert!(n.title.ends_with(": Sign in again"), "{}", n.title);
        assert!(
            !n.title.chars().any(crate::text::is_hostile),
            "{:?}",
            n.title
        );
        assert_eq!(n.opens, "sign_in");
    }
}
