//! What the engine tells its subscribers (the CLI's progress lines, later the watcher and the
//! tray). One enum carries every push; it is plain data, with no tokens in it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::phase::Step;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EngineEvent {
    /// Something worth telling while waiting (a retry, a resumed request).
    Progress { message: String },
    /// A step of `connect` completed.
    Step {
        step: Step,
        detail: String,
        at: DateTime<Utc>,
    },
    /// A PIM request changed status.
    RequestStatus {
        request: String,
        role: String,
        status: String,
    },
}
