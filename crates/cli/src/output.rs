//! How results and failures are shown: text for people, JSON for scripts, progress on stderr.

use jumpgate_core::events::EngineEvent;
pub use jumpgate_core::explain::Failure;
use jumpgate_core::explain::Kind;
use serde::Serialize;

/// The exit code for a failure: 3 refused (denied or policy), 4 a wait ran out, 1 otherwise.
pub fn exit_code(f: &Failure) -> u8 {
    if f.timed_out {
        return 4;
    }
    match f.explanation.kind {
        Kind::Denied | Kind::Policy => 3,
        _ => 1,
    }
}

pub type Outcome<T = ()> = Result<T, Failure>;

/// Writes a line to stdout. A reader that went away (a closed pipe) is not our failure, and
/// never a panic. Text holds what servers and other people wrote, so no control character
/// or bidi formatting reaches the terminal raw (RELIABILITY #22): text output keeps only
/// its newlines ([`jumpgate_core::text::block`]); the commands make each field one line.
pub fn line(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{}", jumpgate_core::text::block(text));
}

fn line_err(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{}", jumpgate_core::text::block(text));
}

/// JSON for stdout: the values unchanged, but bidi formatting and C1 controls written as
/// `\uXXXX` escapes (serde escapes C0 controls), so JSON shown in a terminal is inert too.
pub fn json_line(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{}", jumpgate_core::text::json(text));
}

pub fn fail(json: bool, f: &Failure) {
    if f.explanation.message.is_empty() {
        // Already shown in full by the command (doctor's checklist).
        return;
    }
    if json {
        let mut body = serde_json::json!({"error": {"kind": f.explanation.kind, "code": f.explanation.code, "message": f.explanation.message}});
        if let Some(claims) = &f.claims {
            // What `jumpgate signin --claims` must ask for before the call can succeed.
            body["error"]["claims"] = serde_json::json!(claims);
        }
        json_line(&body.to_string());
    } else {
        line_err(&format!("jumpgate: {}", f.explanation.message));
    }
}

/// Prints a result: `text` for people, the value itself as JSON.
pub fn show<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        json_line(&serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
    } else {
        let t = text();
        if !t.is_empty() {
            line(&t);
        }
    }
}

/// A line of progress on stderr, stamped with the local time, so stdout stays clean.
pub fn progress(message: &str) {
    line_err(&format!(
        "[{}] {message}",
        chrono::Local::now().format("%H:%M:%S")
    ));
}

/// How an engine event reads as a progress line.
pub fn event(e: &EngineEvent) {
    match e {
        EngineEvent::Progress { message } => progress(message),
        EngineEvent::Step { step, detail, .. } => progress(&format!(
            "✓ {}{}",
            step.label(),
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        )),
        EngineEvent::RequestStatus { role, status, .. } => {
            progress(&format!("{role}: request is now {status}"))
        }
        // Printed on stdout by `watch` itself, in order and before they are saved.
        EngineEvent::Watch(_) => {}
    }
}

/// One watcher event as a line on stdout: JSON (with `at`, in ARM's time) or text.
pub fn watch_event(
    json: bool,
    at: chrono::DateTime<chrono::Utc>,
    tenant: Option<&str>,
    e: &jumpgate_core::events::WatchEvent,
) {
    if json {
        let mut v = serde_json::to_value(e).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("at".into(), serde_json::json!(at));
            if let Some(t) = tenant {
                o.insert("tenant".into(), serde_json::json!(t));
            }
        }
        json_line(&v.to_string());
    } else {
        line(&format!(
            "[{}] {}{:<16} {}",
            chrono::Local::now().format("%H:%M:%S"),
            tenant.map(|t| format!("{t}: ")).unwrap_or_default(),
            e.name(),
            e.describe()
        ));
    }
}
