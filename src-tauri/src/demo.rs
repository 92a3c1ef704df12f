//! Demo mode: the simulator runs in-process with the demo tenant and its control API on
//! loopback, and its client configuration is written to the app's data directory, so that
//! `jumpgate --config <that file>` can act as another user in the same demo.
//!
//! The simulator is compiled in only with the `demo` cargo feature (on by default, off in
//! release packages); without it `Demo` has no values and `--demo` is refused.

/// What `--demo` answers in a build without the simulator.
pub const NOT_BUILT: &str =
    "this build of jumpgate-tray has no demo mode (it was built without the `demo` feature); use a development build, or jumpgate-sim with --config";

/// The built-in demo tenant's users, as the sign-in view offers them.
pub const USERS: [&str; 4] = [
    "alice@contoso.example",
    "bob@contoso.example",
    "carol@contoso.example",
    "dave@contoso.example",
];

/// Which tenant the demo simulates: `demo` unless this names another built-in tenant or a
/// fixture file (`crates/sim/tenants/gallery.toml`, the README's screenshots). Read only by
/// builds with the `demo` feature.
#[cfg_attr(not(feature = "demo"), allow(dead_code))]
pub const TENANT_VAR: &str = "JUMPGATE_DEMO_TENANT";

/// The users of the tenant the demo runs, as the sign-in view offers them.
pub fn users() -> Vec<String> {
    #[cfg(feature = "demo")]
    if let Some(users) = embedded::USERS_OF_TENANT.get() {
        return users.clone();
    }
    USERS.iter().map(|u| u.to_string()).collect()
}

#[cfg(feature = "demo")]
pub use embedded::Demo;

/// No demo in this build: nothing of this type exists.
#[cfg(not(feature = "demo"))]
pub enum Demo {}

#[cfg(feature = "demo")]
mod embedded {
    use std::path::{Path, PathBuf};

    use std::sync::OnceLock;

    use jumpgate_sim::tenant::Fixture;
    use jumpgate_sim::{SimBuilder, SimHandle};

    use crate::StartError;

    /// The running demo tenant's users, once it has started.
    pub(super) static USERS_OF_TENANT: OnceLock<Vec<String>> = OnceLock::new();

    pub struct Demo {
        sim: SimHandle,
        pub config_path: PathBuf,
    }

    /// FNV-1a: a stable short name for a path.
    fn fnv64(text: &str) -> u64 {
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// A profile for the `demo` tenant's people (alice's role needs bob's approval): the tray
    /// menu's "Run Morning checks" activates it and opens the Linux jump box's SSH port.
    const DEMO_PROFILE: &str = "\n[[profiles]]\nname = \"Morning checks\"\nactivate = [\"JIT Requester\"]\nvm = \"jumpbox-linux-01\"\nport = 22\nduration = \"1h\"\njustification = \"{profile} on {date}\"\nlaunch = false\n";

    impl Demo {
        pub async fn start(data: &Path) -> Result<Demo, StartError> {
            let tenant = std::env::var(super::TENANT_VAR)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "demo".into());
            let fixture =
                Fixture::load(&tenant).map_err(|e| StartError::Simulator(e.to_string()))?;
            let _ = USERS_OF_TENANT.set(fixture.users.iter().map(|u| u.upn.clone()).collect());
            let sim = SimBuilder::from_fixture(fixture)
                .control(true)
                .start()
                .await
                .map_err(|e| StartError::Simulator(e.to_string()))?;
            let files = |source: std::io::Error| StartError::Files {
                path: data.display().to_string(),
                source,
            };
            std::fs::create_dir_all(data).map_err(files)?;
            let config_path = data.join("config.toml");
            // A keychain entry per data directory: a demo never touches a real sign-in, nor
            // another demo's.
            let service = format!("jumpgate-demo-{:016x}", fnv64(&data.display().to_string()));
            // The demo's clock is advanced by hand (`/_sim/clock/advance`): with access open the
            // watcher reads every 10 s, so that a reminder follows an advance within seconds.
            let text = format!(
            "{}\n[storage]\nkeyring_service = \"{service}\"\nstate_dir = \"{}\"\n\n[watch]\nopen_refresh_secs = 10\nidle_refresh_secs = 60\n{}",
            sim.client_config().to_toml(),
            data.join("state").display(),
            if tenant == "demo" { DEMO_PROFILE } else { "" }
        );
            // 0600: it holds the control API's token.
            jumpgate_azure::private::write_atomic(&config_path, text.as_bytes()).map_err(files)?;
            Ok(Demo { sim, config_path })
        }

        pub fn url(&self) -> &str {
            self.sim.url()
        }
    }
}
