//! The real `jumpgate-tray --demo` in a throwaway desktop (run the tests through
//! `scripts/test.sh`, which provides Xvfb, D-Bus, dunst and gnome-keyring): it starts the
//! embedded simulator, writes a client configuration the CLI can use, stays up, and quits on
//! SIGTERM.
// Linux only: it needs Xvfb, D-Bus, dunst and gnome-keyring.
#![cfg(target_os = "linux")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{cli_sign_in, jumpgate, notification_mark, notifications_seen, sim_url, tray};

/// The running app and where its demo's configuration is.
struct Running {
    app: std::process::Child,
    config: String,
    home: tempfile::TempDir,
    // One app at a time: the app is single-instance on the session bus.
    _one: std::sync::MutexGuard<'static, ()>,
}

static ONE_APP: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Running {
    /// Launches the app again in the same session, as the desktop would (with a link or
    /// without), and checks that the launch handed over and ended well.
    fn launch_again(&self, args: &[&str]) {
        let out = Command::new(tray())
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("XDG_DATA_HOME")
            .output()
            .expect("another launch");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What the app logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("app.log")).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.app.kill();
        let _ = self.app.wait();
    }
}

fn start_demo() -> Running {
    start_demo_without(&[])
}

/// The demo app, with these environment variables removed.
fn start_demo_without(unset: &[&str]) -> Running {
    if std::env::var_os("DISPLAY").is_none() {
        panic!(
            "this test runs the real app: run it through `bash scripts/test.sh`, which starts Xvfb"
        );
    }
    let one = ONE_APP.lock().unwrap_or_else(|p| p.into_inner());
    let home = tempfile::tempdir().expect("home");
    let log = home.path().join("app.log");
    let mut command = Command::new(tray());
    command
        .arg("--demo")
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .env("JUMPGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    for name in unset {
        command.env_remove(name);
    }
    let app = command.spawn().expect("start jumpgate-tray");
    let started = Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text
            .lines()
            .find(|l| l.contains("its client configuration is"))
        {
            break l.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no demo configuration line within 30 s: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
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
    Running {
        app,
        config,
        home,
        _one: one,
    }
}

#[test]
fn demo_mode_runs_the_simulator_and_hands_its_configuration_to_the_cli() {
    let mut running = start_demo();
    let config = running.config.clone();
    let text = std::fs::read_to_string(&config).expect("the demo configuration");
    assert!(
        text.contains("[simulator]") && text.contains("keyring_service = \"jumpgate-demo-"),
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

    // It has registered itself for jumpgate:// links, for this user (tauri-plugin-deep-link,
    // since it does not run from a package under /usr).
    let handler = running
        .home
        .path()
        .join(".local/share/applications/jumpgate-tray-handler.desktop");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handler.exists() {
        assert!(
            Instant::now() < deadline,
            "no link handler: {}",
            running.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let entry = std::fs::read_to_string(&handler).expect("handler");
    assert!(
        entry.contains("MimeType=x-scheme-handler/jumpgate")
            && entry.contains(&format!("Exec=\"{}\" %u", tray().display())),
        "{entry}"
    );
    // And made it the desktop's default for the scheme.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let query = Command::new("xdg-mime")
            .args(["query", "default", "x-scheme-handler/jumpgate"])
            .env("HOME", running.home.path())
            .env_remove("XDG_DATA_HOME")
            .output()
            .expect("xdg-mime (xdg-utils)");
        let answer = String::from_utf8_lossy(&query.stdout);
        if answer.trim() == "jumpgate-tray-handler.desktop" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "xdg-mime answers {answer:?}: {}",
            running.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // It stays up, and SIGTERM ends it.
    std::thread::sleep(Duration::from_secs(2));
    let app = &mut running.app;
    assert!(
        app.try_wait().expect("status").is_none(),
        "the app exited on its own"
    );
    // One connection to the X server: GTK's. A second one is tao's thread reading raw key
    // events, which races the library teardown of every exit and can crash it (the Tauri
    // feature `x11` brings it).
    assert_eq!(
        x_connections(app.id()),
        1,
        "the app holds more than GTK's connection to the X server"
    );
    let _ = Command::new("kill").arg(app.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = app.try_wait().expect("status") {
            break status;
        }
        assert!(Instant::now() < deadline, "the app did not quit on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "SIGTERM ended the app with {status}");
}

/// How many connections the process `pid` holds to the X server: its sockets whose other
/// end is the server's (found with `ss` from iproute2).
fn x_connections(pid: u32) -> usize {
    let mine: std::collections::BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the app's descriptors")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let out = Command::new("ss")
        .args(["-x", "-H"])
        .output()
        .expect("ss (iproute2)");
    assert!(out.status.success(), "ss failed");
    // Netid State Recv-Q Send-Q Local-Address Inode Peer-Address Peer-Inode
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 8 && f[4].contains("/tmp/.X11-unix/X") && mine.contains(f[7]))
        .count()
}

/// alice asks for the role from a terminal, bob approves through ARM, and the app's watcher
/// has dunst show "Access approved" with bob's justification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_notifies_alice_when_bob_approves() {
    jumpgate_azure::init_tls();
    let mark = notification_mark();
    let running = start_demo();
    let config = running.config.clone();
    let sim = sim_url(&config);
    cli_sign_in(&config, "alice@contoso.example").await;
    let out = Command::new(jumpgate())
        .args([
            "--config",
            &config,
            "activate",
            "JIT Requester",
            "--justification",
            "Patch night",
            "--duration",
            "1h",
        ])
        .output()
        .expect("activate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    common::approve_as(&sim, "bob@contoso.example", "Go ahead").await;

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = notifications_seen(mark);
        if seen.contains("Access approved") {
            assert!(seen.contains("Go ahead"), "{seen}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 'Access approved' notification: {seen}\napp log:\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A second launch hands its link to the running app and exits at once, without starting a
/// simulator of its own; a link that fails its checks is refused, and nothing is sent.
#[test]
fn reliability_17_a_second_launch_reaches_the_running_app() {
    let running = start_demo();
    let before = std::fs::read_to_string(&running.config).expect("config");
    let second = |link: &str| {
        let started = Instant::now();
        running.launch_again(&[link]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the second launch lingered"
        );
    };
    second(
        "jumpgate://connect?vm=jumpbox-win-01&port=3389&duration=PT1H&justification=Patch%20night",
    );
    second("jumpgate://connect?vm=..%2F..%2Fetc&port=3389");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = running.log();
        if log.contains("Connect form for jumpbox-win-01 prefilled")
            && log.contains("link was refused")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running app did not get both links: {log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(&running.config).expect("config"),
        before,
        "the second launch started a demo of its own"
    );
    let sim = sim_url(&running.config);
    let log = running.log();
    assert_eq!(
        log.matches("demo mode: the simulator listens").count(),
        1,
        "{log}"
    );
    assert!(!sim.is_empty());
}

/// Without a session bus (no D-Bus: no single-instance name, no keychain, no notifications)
/// the app still starts, puts its icon in the tray and keeps running.
#[test]
fn reliability_17_without_dbus_the_app_still_starts() {
    let mut running = start_demo_without(&["DBUS_SESSION_BUS_ADDRESS"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !running.log().contains("tray icon ready") {
        assert!(Instant::now() < deadline, "no tray icon: {}", running.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        running.app.try_wait().expect("status").is_none(),
        "the app exited: {}",
        running.log()
    );
}

/// Waits until the app's log holds `what` more than `count` times.
fn wait_log(running: &Running, what: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while running.log().matches(what).count() <= count {
        assert!(
            Instant::now() < deadline,
            "no '{what}' in the log: {}",
            running.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The commands of a process and of everything it started, by pid.
fn process_tree(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        found.push((p, comm.trim().to_string()));
        // Each thread lists the children it started.
        let threads = std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten();
        for thread in threads.flatten() {
            let children =
                std::fs::read_to_string(thread.path().join("children")).unwrap_or_default();
            todo.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    found
}

/// The popover runs in a helper process: while it is open, WebKit's processes are the
/// helper's; closing it (Escape) ends the helper, and with it every WebKit process, while
/// the app lives on (a tray app must not quit with its popover). Once used, the next helper
/// starts ahead and waits without a window or a web process; the next launch opens the
/// popover in it, and its page reads the state and its intent through the app.
#[test]
fn closing_the_popover_ends_its_process_and_keeps_the_app_running() {
    let mut running = start_demo();
    let app = running.app.id();
    let helpers = |tree: &[(u32, String)]| -> Vec<u32> {
        tree.iter()
            .filter(|(p, c)| *p != app && c == "jumpgate-tray")
            .map(|(p, _)| *p)
            .collect()
    };
    let webkit =
        |tree: &[(u32, String)]| tree.iter().filter(|(_, c)| c.starts_with("WebKit")).count();
    assert_eq!(
        helpers(&process_tree(app)),
        Vec::<u32>::new(),
        "none before use"
    );
    let mut waiting = None;
    for round in 0..2 {
        running.launch_again(&[]);
        wait_log(&running, "popover interactive", round);
        let open = process_tree(app);
        let shown = helpers(&open);
        assert_eq!(
            shown.len(),
            1,
            "one popover process under the app: {open:?}\n{}",
            running.log()
        );
        if let Some(waiting) = waiting {
            assert_eq!(
                shown,
                vec![waiting],
                "the helper started ahead was not used"
            );
        }
        assert!(webkit(&open) >= 1, "no web process while open: {open:?}");
        let webkit_pids: Vec<u32> = open
            .iter()
            .filter(|(_, c)| c.starts_with("WebKit"))
            .map(|(p, _)| *p)
            .collect();
        // Escape until it closes: a key pressed as the window maps can miss it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while running
            .log()
            .matches("popover closed (its process exited)")
            .count()
            <= round
        {
            assert!(
                Instant::now() < deadline,
                "Escape did not close the popover: {}",
                running.log()
            );
            let windows = Command::new("xdotool")
                .args(["search", "--onlyvisible", "--name", "^Jumpgate$"])
                .output()
                .expect("xdotool");
            for id in String::from_utf8_lossy(&windows.stdout).split_whitespace() {
                let _ = Command::new("xdotool")
                    .args(["windowfocus", "--sync", id, "key", "Escape"])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let closed = loop {
            let tree = process_tree(app);
            let next = helpers(&tree);
            if next.len() == 1 && next != shown {
                break tree;
            }
            assert!(
                Instant::now() < deadline,
                "no helper started ahead: {tree:?}\n{}",
                running.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            running.app.try_wait().expect("status").is_none(),
            "the app quit with its popover: {}",
            running.log()
        );
        assert_eq!(
            webkit(&closed),
            0,
            "WebKit under the app after closing: {closed:?}"
        );
        // Nor anywhere else (a process whose parent ended is adopted by init).
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = webkit_pids
            .iter()
            .find(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        {
            assert!(
                Instant::now() < deadline,
                "WebKit process {left} outlived the popover"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        waiting = helpers(&closed).first().copied();
    }
    let log = running.log();
    assert!(!log.contains("popover got a line"), "{log}");
    assert!(!log.contains("not a message"), "{log}");

    // Quitting the app ends the helper waiting for the next show.
    let waiting = waiting.expect("a helper waits");
    let _ = Command::new("kill")
        .args(["-TERM", &app.to_string()])
        .status();
    let _ = running.app.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{waiting}")).exists() {
        let state = std::fs::read_to_string(format!("/proc/{waiting}/stat")).unwrap_or_default();
        // A zombie that init has not reaped yet has ended.
        if state.split_whitespace().nth(2) == Some("Z") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the helper outlived the app: {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Without a configuration the app opens its first-run form and stays up (no tray icon
/// yet) until it is set up, closed or told to quit.
#[test]
fn without_a_configuration_the_app_opens_its_first_run() {
    let _one = ONE_APP.lock().unwrap_or_else(|p| p.into_inner());
    let home = tempfile::tempdir().expect("home");
    let log = home.path().join("app.log");
    let mut app = Command::new(tray())
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("JUMPGATE_CONFIG")
        .env_remove("JUMPGATE_SYSTEM_CONFIG")
        .env("JUMPGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("jumpgate-tray");
    let started = Instant::now();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    while !read().contains("popover interactive") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the first-run popover did not open: {}",
            read()
        );
        assert!(
            app.try_wait().expect("status").is_none(),
            "exited: {}",
            read()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = read();
    assert!(text.contains("first run: no configuration yet"), "{text}");
    assert!(text.contains(".config/jumpgate/config.toml"), "{text}");
    assert!(!text.contains("tray icon ready"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let _ = Command::new("kill")
        .args(["-TERM", &app.id().to_string()])
        .status();
    let status = app.wait().expect("exit");
    assert_eq!(status.code(), Some(0), "{}", read());
    assert!(
        !home.path().join(".config/jumpgate/config.toml").exists(),
        "nothing is written until the form is saved"
    );
}

/// A configuration that is there but broken is not a first run: the app says what is wrong
/// and exits with 2; it does not panic.
#[test]
fn a_broken_configuration_says_what_is_wrong() {
    let _one = ONE_APP.lock().unwrap_or_else(|p| p.into_inner());
    let home = tempfile::tempdir().expect("home");
    let config = home.path().join("config.toml");
    std::fs::write(&config, "[azure]\ntenant_id = \"t\"\n").expect("config");
    let out = Command::new(tray())
        .arg("--config")
        .arg(&config)
        .env("HOME", home.path())
        .env_remove("JUMPGATE_SYSTEM_CONFIG")
        .output()
        .expect("jumpgate-tray");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("azure.client_id is required"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// An app killed with SIGKILL leaves no stale owner of the single-instance name: the next
/// one starts, and later launches reach it.
#[test]
fn reliability_17_after_a_crash_the_next_app_starts_and_owns_the_session() {
    let mut first = start_demo();
    let _ = Command::new("kill")
        .args(["-9", &first.app.id().to_string()])
        .status();
    let _ = first.app.wait();
    drop(first);
    let second = start_demo();
    wait_log(&second, "tray icon ready", 0);
    second.launch_again(&[]);
    wait_log(&second, "popover interactive", 0);
}
