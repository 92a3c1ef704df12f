//! Jumpgate's domain and engine: the pieces that decide, with no IO and no clock reads.
//!
//! - [`config`]: the one TOML configuration and where it is looked up; [`firstrun`]: the
//!   configuration a first run writes from a work email;
//! - [`duration`] and [`ip`]: strict parsers for what users and services hand us;
//! - [`policy`]: PIM and JIT pre-flight checks, so a request that would be refused is never
//!   sent;
//! - [`explain`]: every Azure and Entra error code Jumpgate knows, as a message that says
//!   what to do;
//! - [`text`]: text from servers and other people made harmless for a terminal, a
//!   notification or a log; [`input`]: the one set of rules for text a person sends on;
//! - [`phase`]: the request state machine and the adaptive polling plan, both pure: `now`
//!   and observations go in, decisions come out.
//!
//! Architecture invariant: this crate never depends on `tauri`, never does network IO, and
//! never reads the clock; callers pass `now`.

/// Whether this build obeys the environment variables the tests steer it with
/// (`JUMPGATE_SYSTEM_CONFIG`, `JUMPGATE_FAILPOINT`, `TAURI_WEBVIEW_AUTOMATION`): debug builds
/// with the `test-hooks` feature, which the CLI and the app turn on by default. A release
/// build, and a package built without the demo, obeys none of them: a variable set by
/// whoever can set a user's environment cannot point a shipped app at another system
/// configuration, crash it on purpose, or open its webview to a WebDriver.
pub const TEST_HOOKS: bool = cfg!(all(debug_assertions, feature = "test-hooks"));

/// The test hook `name` from the environment, where [`TEST_HOOKS`] allows it.
pub fn test_hook(name: &str) -> Option<std::ffi::OsString> {
    if TEST_HOOKS {
        std::env::var_os(name)
    } else {
        None
    }
}

pub mod admin;
pub mod appreg;
pub mod audit;
pub mod config;
pub mod deeplink;
pub mod duration;
pub mod events;
pub mod explain;
pub mod firstrun;
pub mod input;
pub mod ip;
pub mod launch;
pub mod phase;
pub mod planner;
pub mod policy;
pub mod text;
pub mod tray;
pub mod trust;
pub mod watch;

#[cfg(test)]
mod tests {
    /// Run in both builds: `cargo test --workspace` (the CLI turns the hooks on) and
    /// `cargo test -p jumpgate-core` alone (off, as in a package), which scripts/test.sh runs
    /// too.
    #[test]
    fn test_hooks_are_read_only_in_builds_that_have_them() {
        std::env::set_var("JUMPGATE_HOOK_PROBE", "1");
        assert_eq!(
            super::test_hook("JUMPGATE_HOOK_PROBE").is_some(),
            super::TEST_HOOKS
        );
        println!("test hooks in this build: {}", super::TEST_HOOKS);
    }
}
