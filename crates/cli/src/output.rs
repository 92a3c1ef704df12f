//! How results and failures are shown: text for people, JSON for scripts, progress on stderr.

use jumpgate_core::explain::{Explanation, Kind};
use serde::Serialize;

/// Why a command failed, with the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    pub explanation: Explanation,
    pub timed_out: bool,
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        if self.timed_out {
            return 4;
        }
        match self.explanation.kind {
            Kind::Denied | Kind::Policy => 3,
            _ => 1,
        }
    }

    pub fn new(kind: Kind, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            explanation: Explanation {
                kind,
                code: code.into(),
                message: message.into(),
            },
            timed_out: false,
        }
    }

    pub fn timeout(message: impl Into<String>) -> Failure {
        Failure {
            timed_out: true,
            ..Failure::new(Kind::Other, "timed_out", message)
        }
    }
}

impl From<jumpgate_azure::Error> for Failure {
    fn from(e: jumpgate_azure::Error) -> Failure {
        let timed_out = matches!(e, jumpgate_azure::Error::TimedOut(_));
        Failure {
            explanation: e.explain(),
            timed_out,
        }
    }
}

impl From<jumpgate_core::config::ConfigError> for Failure {
    fn from(e: jumpgate_core::config::ConfigError) -> Failure {
        Failure::new(Kind::Other, "config", e.to_string())
    }
}

pub type Outcome<T = ()> = Result<T, Failure>;

/// Writes a line to stdout. A reader that went away (a closed pipe) is not our failure, and
/// never a panic.
pub fn line(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn line_err(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{text}");
}

pub fn fail(json: bool, f: &Failure) {
    if json {
        let body = serde_json::json!({"error": {"kind": f.explanation.kind, "code": f.explanation.code, "message": f.explanation.message}});
        line(&body.to_string());
    } else {
        line_err(&format!("jumpgate: {}", f.explanation.message));
    }
}

/// Prints a result: `text` for people, the value itself as JSON.
pub fn show<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        line(&serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
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
