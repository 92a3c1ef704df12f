//! The `.deb` as a person installs it: `dpkg -i` puts the app and the CLI on the machine, the
//! installed app starts its demo under Xvfb and shows its tray icon, the desktop knows it as
//! the handler of `jumpgate://` links, and `dpkg -r` takes all of that away again.
//!
//! `bash scripts/test.sh` builds the package first (`scripts/package.sh`, a debug build with
//! the demo) and runs this as root in its throwaway desktop with a tray host. It installs the
//! package into the machine that runs it, so it is meant for test machines.
// Linux only: it needs dpkg and a Linux desktop.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PACKAGE: &str = "jumpgate";
const DESKTOP_FILE: &str = "/usr/share/applications/Jumpgate.desktop";

/// The `.deb` that `scripts/package.sh` built beside the workspace's binaries.
fn deb() -> PathBuf {
    let tray = jumpgate_tests::bin("jumpgate-tray");
    let dir = tray
        .parent()
        .expect("target/debug")
        .join("bundle")
        .join("deb");
    let found = std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    found.unwrap_or_else(|| {
        panic!(
            "no .deb in {}: build it with `bash scripts/package.sh` (scripts/test.sh does)",
            dir.display()
        )
    })
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The desktop's default handler of `jumpgate://` links for a user with a fresh home.
fn scheme_handler(home: &Path) -> String {
    let out = Command::new("xdg-mime")
        .args(["query", "default", "x-scheme-handler/jumpgate"])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("XDG_DATA_DIRS")
        .output()
        .expect("xdg-mime (xdg-utils)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The windows of tray icons the tray host holds.
fn tray_icons() -> usize {
    let out = run("xdotool", &["search", "--class", "tray-icon"]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Takes the package off again however the test ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", PACKAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn the_deb_installs_runs_its_demo_registers_links_and_uninstalls_cleanly() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "this test runs the installed app: run it through `bash scripts/test.sh`, which starts Xvfb and a tray host"
    );
    let deb = deb();
    let home = tempfile::tempdir().expect("home");

    let installed = run("dpkg", &["-i", deb.to_str().expect("path")]);
    assert!(
        installed.status.success(),
        "dpkg -i {} (as root, with the dependencies installed): {}",
        deb.display(),
        text(&installed)
    );
    let _guard = Installed;

    // The CLI is on the PATH, and it is the CLI.
    let which = run("sh", &["-c", "command -v jumpgate"]);
    assert_eq!(text(&which).trim(), "/usr/bin/jumpgate", "{}", text(&which));
    let version = run("jumpgate", &["--version"]);
    assert!(
        version.status.success() && text(&version).contains("jumpgate"),
        "{}",
        text(&version)
    );

    // The desktop entry hands links to the app, and the desktop knows it as their handler.
    let entry = std::fs::read_to_string(DESKTOP_FILE).expect("the desktop entry");
    assert!(
        entry.contains("Exec=jumpgate-tray %u")
            && entry.contains("MimeType=x-scheme-handler/jumpgate"),
        "{entry}"
    );
    assert_eq!(scheme_handler(home.path()), "Jumpgate.desktop");

    // The installed app starts its demo and shows its tray icon.
    let before = tray_icons();
    let log = home.path().join("app.log");
    let mut app = Command::new("/usr/bin/jumpgate-tray")
        .arg("--demo")
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env("JUMPGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start the installed jumpgate-tray");
    let started = Instant::now();
    while tray_icons() <= before {
        let status = app.try_wait().expect("status");
        assert!(
            status.is_none() && started.elapsed() < Duration::from_secs(30),
            "no tray icon from the installed app ({status:?}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("tray icon ready"), "{logged}");
    // Installed under /usr, the app leaves link registration to the package.
    assert!(
        !home
            .path()
            .join(".local/share/applications/jumpgate-tray-handler.desktop")
            .exists(),
        "{logged}"
    );
    let _ = app.kill();
    let _ = app.wait();

    // Removing the package removes the app, the CLI and the link handler.
    let removed = run("dpkg", &["-r", PACKAGE]);
    assert!(removed.status.success(), "{}", text(&removed));
    for gone in ["/usr/bin/jumpgate", "/usr/bin/jumpgate-tray", DESKTOP_FILE] {
        assert!(!Path::new(gone).exists(), "{gone} is still there");
    }
    assert_eq!(scheme_handler(home.path()), "");
}
