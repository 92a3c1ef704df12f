//! Desktop notifications with actions, behind one trait over each platform's own service:
//!
//! - Linux and the BSDs: a freedesktop notification server through notify-rust, which reports
//!   the action clicked (`default` for the notification itself);
//! - Windows: a toast with buttons through tauri-winrt-notification (notify-rust's Windows
//!   backend, which drops actions), whose activation names the button;
//! - macOS: the notification centre through mac-notification-sys, with the actions in the
//!   notification's drop-down; it answers the label chosen, mapped back to the action here.
//!
//! What each platform is given is decided by the pure functions below, tested on any machine.

use std::sync::Arc;

use jumpgate_core::launch::Os;
use jumpgate_core::tray::Notice;

/// The action reported when the notification itself is clicked.
pub const DEFAULT: &str = "default";

/// Windows shows at most five buttons on a toast.
const WINDOWS_BUTTONS: usize = 5;

/// Called with the action chosen, from whichever thread the platform reports it on.
pub type Chosen = Arc<dyn Fn(&str) + Send + Sync>;

/// A notification service.
pub trait Notifier: Send + Sync {
    /// Shows `notice`. Where the platform reports clicks, `chosen` gets the action's id, or
    /// [`DEFAULT`] for a click on the notification. May block until the notification is gone,
    /// so it is called on a thread of its own.
    fn show(&self, notice: &Notice, chosen: Chosen) -> Result<(), String>;
}

/// The body as the platform's server gets it: markup escaped where freedesktop servers render
/// it (a justification's `<a href=…>` stays text) and in a Windows toast, which is an XML
/// document built from the text (an `'` or `<` in a role's name would break it, or add
/// elements of its own); plain text on macOS.
pub fn shown_body(body: &str, os: Os) -> String {
    match os {
        Os::Linux | Os::Windows => jumpgate_core::text::markup(body),
        Os::MacOs => jumpgate_core::text::block(body).into_owned(),
    }
}

/// The title as the platform's server gets it: one line, escaped as the body is (dunst and
/// others render markup in the summary too).
pub fn shown_title(title: &str, os: Os) -> String {
    let line = jumpgate_core::text::line(title);
    match os {
        Os::Linux | Os::Windows => jumpgate_core::text::markup(&line),
        Os::MacOs => line.into_owned(),
    }
}

/// The buttons a platform shows, as `(action id, label)`. Freedesktop servers take the
/// notification's own click as the `default` action; Windows and macOS report it by
/// themselves. Windows takes at most five buttons, and its toast is XML: each button's id is
/// its position (mapped back by [`action_for_id`]), so no name reaches an attribute, and its
/// label is escaped.
pub fn buttons(notice: &Notice, os: Os) -> Vec<(String, String)> {
    let actions = notice.actions.iter().map(|a| {
        (
            a.id.clone(),
            jumpgate_core::text::line(&a.label).into_owned(),
        )
    });
    match os {
        Os::Linux => std::iter::once((DEFAULT.to_string(), "Open".to_string()))
            .chain(actions)
            .collect(),
        Os::Windows => actions
            .take(WINDOWS_BUTTONS)
            .enumerate()
            .map(|(i, (_, label))| (i.to_string(), jumpgate_core::text::markup(&label)))
            .collect(),
        Os::MacOs => actions.collect(),
    }
}

/// The action behind a button id Windows reports (its position), if the notice has it.
#[cfg_attr(not(windows), allow(dead_code))]
pub fn action_for_id<'a>(notice: &'a Notice, id: &str) -> Option<&'a str> {
    let i: usize = id.parse().ok()?;
    (i < WINDOWS_BUTTONS)
        .then(|| notice.actions.get(i))
        .flatten()
        .map(|a| a.id.as_str())
}

/// The action behind a label macOS reports, if the notice has one with that label.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub fn action_for_label<'a>(notice: &'a Notice, label: &str) -> Option<&'a str> {
    buttons(notice, Os::MacOs)
        .iter()
        .position(|(_, l)| l == label)
        .map(|i| notice.actions[i].id.as_str())
}

/// This platform's notification service. `app_id` is the app's identifier, which Windows
/// and macOS show notifications under.
pub struct System {
    pub app_id: String,
}

impl Notifier for System {
    fn show(&self, notice: &Notice, chosen: Chosen) -> Result<(), String> {
        platform::show(&self.app_id, notice, chosen)
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
mod platform {
    use super::*;

    pub fn show(_app_id: &str, notice: &Notice, chosen: Chosen) -> Result<(), String> {
        let mut n = notify_rust::Notification::new();
        n.appname("Jumpgate")
            .summary(&shown_title(&notice.title, Os::Linux))
            .body(&shown_body(&notice.body, Os::Linux));
        for (id, label) in buttons(notice, Os::Linux) {
            n.action(&id, &label);
        }
        if notice.urgent {
            n.urgency(notify_rust::Urgency::Critical);
        }
        let handle = n.show().map_err(|e| e.to_string())?;
        // The server's id, so a notification in the desktop can be told from another.
        tracing::info!(
            "notification {} shown: opens {}",
            handle.id(),
            jumpgate_core::text::log(&notice.opens)
        );
        handle.wait_for_action(|action| chosen(action));
        Ok(())
    }
}

#[cfg(windows)]
mod platform {
    use super::*;
    use tauri_winrt_notification::{Scenario, Toast};

    pub fn show(app_id: &str, notice: &Notice, chosen: Chosen) -> Result<(), String> {
        let mut toast = Toast::new(app_id)
            .title(&shown_title(&notice.title, Os::Windows))
            .text1(&shown_body(&notice.body, Os::Windows));
        if notice.urgent {
            toast = toast.scenario(Scenario::Reminder);
        }
        for (id, label) in buttons(notice, Os::Windows) {
            toast = toast.add_button(&label, &id);
        }
        let notice = notice.clone();
        toast
            .on_activated(move |action| {
                match action.as_deref() {
                    None => chosen(DEFAULT),
                    Some(id) => {
                        if let Some(action) = action_for_id(&notice, id) {
                            chosen(action);
                        }
                    }
                }
                Ok(())
            })
            .show()
            .map_err(|e| e.to_string())
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::*;
    use mac_notification_sys::{MainButton, Notification, NotificationResponse};

    pub fn show(app_id: &str, notice: &Notice, chosen: Chosen) -> Result<(), String> {
        // Set once per process; a second call answers an error that changes nothing.
        let _ = mac_notification_sys::set_application(app_id);
        let labels: Vec<String> = buttons(notice, Os::MacOs)
            .into_iter()
            .map(|(_, label)| label)
            .collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let mut options = Notification::new();
        options.wait_for_click(true);
        if !labels.is_empty() {
            options.main_button(MainButton::DropdownActions("Actions", &labels));
        }
        let body = shown_body(&notice.body, Os::MacOs);
        let title = shown_title(&notice.title, Os::MacOs);
        let response = mac_notification_sys::send_notification(&title, None, &body, Some(&options))
            .map_err(|e| e.to_string())?;
        match response {
            NotificationResponse::Click => chosen(DEFAULT),
            NotificationResponse::ActionButton(label) => {
                if let Some(id) = action_for_label(notice, &label) {
                    chosen(id);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jumpgate_core::tray::Action;

    fn notice(actions: usize) -> Notice {
        Notice {
            title: "Access to jumpbox-win-01 ends in 10 minutes".into(),
            body: "<b>bold</b>".into(),
            actions: (0..actions)
                .map(|i| Action {
                    id: format!("a{i}"),
                    label: format!("Action {i}\u{202E}"),
                })
                .collect(),
            opens: "active".into(),
            urgent: false,
        }
    }

    #[test]
    fn each_platform_gets_the_buttons_it_can_show() {
        let n = notice(7);
        let linux = buttons(&n, Os::Linux);
        assert_eq!(linux[0], (DEFAULT.to_string(), "Open".to_string()));
        assert_eq!(linux.len(), 8);
        assert_eq!(buttons(&n, Os::Windows).len(), WINDOWS_BUTTONS);
        assert_eq!(buttons(&n, Os::MacOs).len(), 7);
        // Labels are single clean lines on every platform.
        for os in [Os::Linux, Os::Windows, Os::MacOs] {
            assert!(buttons(&n, os)
                .iter()
                .all(|(_, l)| !l.chars().any(jumpgate_core::text::is_hostile)));
        }
    }

    #[test]
    fn a_label_macos_reports_maps_back_to_its_action() {
        let n = notice(3);
        let (_, label) = &buttons(&n, Os::MacOs)[2];
        assert_eq!(action_for_label(&n, label), Some("a2"));
        assert_eq!(action_for_label(&n, "Action 9"), None);
    }

    #[test]
    fn markup_is_escaped_where_it_is_rendered_or_parsed() {
        assert_eq!(shown_body("<b>x</b>", Os::Linux), "&lt;b&gt;x&lt;/b&gt;");
        assert_eq!(shown_body("<b>x</b>", Os::Windows), "&lt;b&gt;x&lt;/b&gt;");
        assert_eq!(shown_body("<b>x</b>", Os::MacOs), "<b>x</b>");
        assert_eq!(
            shown_title("Operator's <i>JIT</i>\nends", Os::Linux),
            "Operator&#39;s &lt;i&gt;JIT&lt;/i&gt; ends"
        );
        assert_eq!(shown_title("a\nb", Os::MacOs), "a b");
    }

    /// A toast is XML: a role named `Operator's JIT` must not end an attribute, and a crafted
    /// name must not add a button of its own (one that opens any URI).
    #[test]
    fn a_toast_carries_no_name_in_its_markup() {
        let n = Notice {
            title: "Operator's JIT ends in 10 minutes".into(),
            body: "Extend it now.".into(),
            actions: vec![
                Action {
                    id: "extend:Operator's JIT@/subscriptions/x".into(),
                    label: "Extend".into(),
                },
                Action {
                    id: "x' /><action content='Open' activationType='protocol' arguments='https://evil.example".into(),
                    label: "Go\"/><action content=\"Open".into(),
                },
            ],
            opens: "active".into(),
            urgent: false,
        };
        let shown = buttons(&n, Os::Windows);
        assert_eq!(shown[0].0, "0");
        assert_eq!(shown[1].0, "1");
        for (id, label) in &shown {
            assert!(id.chars().all(|c| c.is_ascii_digit()), "{id}");
            assert!(!label.contains(['<', '>', '"', '\'']), "{label}");
        }
        assert_eq!(
            action_for_id(&n, "0"),
            Some("extend:Operator's JIT@/subscriptions/x")
        );
        assert_eq!(action_for_id(&n, "2"), None);
        assert_eq!(action_for_id(&n, "extend:x"), None);
        let title = shown_title(&n.title, Os::Windows);
        assert!(!title.contains('\''), "{title}");
    }
}
