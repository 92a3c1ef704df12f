//! A crash switch for tests (RELIABILITY #21): `JUMPGATE_FAILPOINT=journal:mid-line` makes
//! the process abort at that point, as a kill or a power cut would. Without the variable it
//! does nothing; the variable is read once, so a failpoint costs one comparison. Only builds
//! with test hooks read it (`jumpgate_core::TEST_HOOKS`).
//!
//! The points: `journal:before-write`, `journal:mid-line` (half of the entry's bytes
//! written), `journal:after-write`, `journal:after-sync` and `journal:after-head`.

use std::sync::OnceLock;

fn armed() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| {
            jumpgate_core::test_hook("JUMPGATE_FAILPOINT").and_then(|v| v.into_string().ok())
        })
        .as_deref()
}

/// Whether the process is to stop at `point`.
pub fn is_armed(point: &str) -> bool {
    armed() == Some(point)
}

/// Aborts the process when `point` is armed.
pub fn hit(point: &str) {
    if is_armed(point) {
        std::process::abort();
    }
}
