//! The real `jumpgate-tray --demo` in a throwaway desktop (run the tests through
//! `scripts/test.sh`, which provides Xvfb, D-Bus, dunst and gnome-keyring): it starts the
//! embedded simulator, writes a client configuration the CLI can use, stays up, and quits on
//! SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TRAY: &str = env!("CARGO_BIN_EXE_jumpgate-tray");

fn jumpgate() -> std::path::PathBuf {
    std::path::Path::new(TRAY).with_file_name("jumpgate")
}

#[test]
fn demo_mode_runs_the_simulator_and_hands_its_configuration_to_the_cli() {
    if std::env::var_os("DISPLAY").is_none() {
        panic!(
            "this test runs the real app: run it through `bash scripts/test.sh`, which starts Xvfb"
        );
    }
    let home = tempfile::tempdir().expect("home");
    let mut app = Command::new(TRAY)
        .arg("--demo")
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .env("JUMPGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jumpgate-tray");
    let stderr = app.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let line = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30).saturating_sub(started.elapsed()))
            .expect("the demo's configuration line within 30 s");
        if line.contains("its client configuration is") {
            break line;
        }
    };
    let config = line
        .split("its client configuration is ")
        .nth(1)
        .and_then(|rest| rest.split(" (").next())
        .expect("a path")
        .to_string();
    assert!(
        config.starts_with(home.path().to_str().expect("home")),
        "{config}"
    );
    let text = std::fs::read_to_string(&config).expect("the demo configuration");
    assert!(
        text.contains("[simulator]") && text.contains("keyring_service = \"jumpgate-demo\""),
        "{text}"
    );

    // The CLI can use the demo's simulator through that file.
    let whoami = Command::new(jumpgate())
        .args(["--config", &config, "whoami"])
        .output()
        .expect("jumpgate whoami");
    assert_eq!(whoami.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&whoami.stderr).contains("not signed in"));
    let ip = Command::new(jumpgate())
        .args(["--config", &config, "--json", "ip"])
        .output()
        .expect("jumpgate ip");
    assert!(
        ip.status.success(),
        "{}",
        String::from_utf8_lossy(&ip.stderr)
    );

    // It stays up, and SIGTERM ends it.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        app.try_wait().expect("status").is_none(),
        "the app exited on its own"
    );
    let _ = Command::new("kill").arg(app.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.try_wait().expect("status").is_none() {
        assert!(Instant::now() < deadline, "the app did not quit on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}
