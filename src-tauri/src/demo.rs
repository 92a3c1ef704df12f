//! Demo mode: the simulator runs in-process with the demo tenant and its control API on
//! loopback, and its client configuration is written to the app's data directory, so that
//! `jumpgate --config <that file>` can act as another user in the same demo.
//!
//! The simulator is compiled in only with the `demo` cargo feature (on by default, off in
//! release packages); without it `Demo` has no values and `--demo` is refused.

/// What `--demo` answers in a build without the simulator.
pub const NOT_BUILT: &str =
    "this build of jumpgate-tray has no demo mode (it was built without the `demo` feature); use a development build, or jumpgate-sim with --config";

/// The demo tenant's users, as the sign-in view offers them.
pub const USERS: [&str; 4] = [
    "alice@contoso.example",
    "bob@contoso.example",
    "carol@contoso.example",
    "dave@contoso.example",
];

#[cfg(feature = "demo")]
pub use embedded::Demo;

/// No demo in this build: nothing of this type exists.
#[cfg(not(feature = "demo"))]
pub enum Demo {}

#[cfg(feature = "demo")]
mod embedded {
    use std::path::{Path, PathBuf};

    use jumpgate_sim::{SimBuilder, SimHandle};

    use crate::StartError;

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

    impl Demo {
        pub async fn start(data: &Path) -> Result<Demo, StartError> {
            let sim = SimBuilder::new("demo")
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
            "{}\n[storage]\nkeyring_service = \"{service}\"\nstate_dir = \"{}\"\n\n[watch]\nopen_refresh_secs = 10\nidle_refresh_secs = 60\n",
            sim.client_config().to_toml(),
            data.join("state").display()
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
