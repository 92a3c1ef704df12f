//! Launching the RDP or SSH client (RELIABILITY #19).
//!
//! An RDP connection is described by a generated `.rdp` file: it holds no password, every
//! field is validated (a user name with a newline cannot inject settings), it is written with
//! mode 0600 in a private directory, and it is removed once the client process has exited (on
//! macOS `open -W`, which waits for the app). Nothing on this computer is redirected into the
//! session (clipboard, drives, printers, smart cards, ports, devices, microphone) unless the
//! configuration's `launch.rdp_redirect_*` keys turn it on. No secret is ever put on a command
//! line.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jumpgate_core::config::LaunchConfig;
use jumpgate_core::launch::{self, CommandLine, Os};

pub use crate::engine::Endpoint;

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.chars().count() <= 104
        && !user
            .chars()
            .any(|c| c.is_control() || matches!(c, ':' | ';' | '"'))
}

/// The text of an `.rdp` file for `endpoint`, with the redirections `config` allows, or why it
/// cannot be written.
pub fn rdp_file(
    config: &LaunchConfig,
    endpoint: &Endpoint,
    user: Option<&str>,
) -> Result<String, String> {
    if !valid_host(&endpoint.host) {
        return Err(format!(
            "'{}' is not a host name or address Jumpgate will put in an .rdp file",
            endpoint.host.escape_debug()
        ));
    }
    let mut lines = vec![
        format!("full address:s:{}:{}", endpoint.host, endpoint.port),
        "prompt for credentials:i:1".to_string(),
        "authentication level:i:2".to_string(),
    ];
    let on = |b: bool| u8::from(b);
    let all = |b: bool| if b { "*" } else { "" };
    lines.extend([
        format!("redirectclipboard:i:{}", on(config.rdp_redirect_clipboard)),
        format!("redirectdrives:i:{}", on(config.rdp_redirect_drives)),
        format!("drivestoredirect:s:{}", all(config.rdp_redirect_drives)),
        format!("redirectprinters:i:{}", on(config.rdp_redirect_printers)),
        format!(
            "redirectsmartcards:i:{}",
            on(config.rdp_redirect_smartcards)
        ),
        format!("redirectcomports:i:{}", on(config.rdp_redirect_ports)),
        format!("devicestoredirect:s:{}", all(config.rdp_redirect_devices)),
        format!(
            "usbdevicestoredirect:s:{}",
            all(config.rdp_redirect_devices)
        ),
        format!("audiocapturemode:i:{}", on(config.rdp_redirect_microphone)),
        // Never redirected: security keys and passkeys (a jump box that is not yours could
        // ask this laptop's key to sign for it) and cameras.
        "redirectwebauthn:i:0".to_string(),
        "camerastoredirect:s:".to_string(),
    ]);
    if let Some(user) = user {
        if !valid_user(user) {
            return Err(format!(
                "the user name '{}' holds characters an .rdp file cannot carry safely",
                user.escape_debug()
            ));
        }
        lines.push(format!("username:s:{user}"));
    }
    Ok(lines.join("\r\n") + "\r\n")
}

/// Whether `program` is on the PATH (as `program.exe` too, for Windows).
fn on_path(program: &str) -> bool {
    let names = [program.to_string(), format!("{program}.exe")];
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| names.iter().any(|n| d.join(n).is_file()))
    })
}

/// The client `connect` would start for a port (SSH for 22, RDP otherwise), if it is installed.
pub fn client_for(config: &LaunchConfig, port: u16) -> Result<String, String> {
    let program = if port == 22 {
        config
            .ssh_command
            .split_whitespace()
            .next()
            .ok_or("launch.ssh_command is empty")?
            .to_string()
    } else {
        rdp_command(config, "jumpgate.rdp")?.program
    };
    let found = if program.contains(['/', '\\']) {
        Path::new(&program).is_file()
    } else {
        on_path(&program)
    };
    if found {
        Ok(program)
    } else if port == 22 {
        Err(format!(
            "{program} is not installed: install openssh-client, or set launch.ssh_command"
        ))
    } else {
        Err(format!("{program} is not installed: install freerdp2-x11 (xfreerdp) or remmina, or set launch.rdp_command"))
    }
}

/// The RDP client's command line for `file` on this platform (`jumpgate_core::launch::rdp`).
fn rdp_command(config: &LaunchConfig, file: &str) -> Result<CommandLine, String> {
    launch::rdp(Os::CURRENT, config.rdp_command.as_deref(), file, &on_path)
}

/// Spawns a command line built by `jumpgate_core::launch`, with no shell in between.
fn spawn(line: &CommandLine, stdin: Stdio) -> std::io::Result<Child> {
    let mut command = Command::new(&line.program);
    command.args(&line.args).stdin(stdin);
    #[cfg(windows)]
    if line.new_console {
        use std::os::windows::process::CommandExt as _;
        const CREATE_NEW_CONSOLE: u32 = 0x0000_0010;
        command.creation_flags(CREATE_NEW_CONSOLE);
    }
    command.spawn()
}

fn private_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("jumpgate-{}", uuid::Uuid::new_v4().simple()));
    crate::private::ensure_dir(&dir)?;
    Ok(dir)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// The clean-ups still waiting for an RDP client to exit.
static CLEANUPS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Whether an RDP client this process started is still running.
pub fn launches_running() -> bool {
    CLEANUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|h| !h.is_finished())
}

/// Waits for every RDP client this process started to exit, and so for its `.rdp` file to be
/// removed. The CLI calls it before exiting; the tray lets the clean-ups run on their own.
pub fn finish_launches() {
    let pending = std::mem::take(&mut *CLEANUPS.lock().unwrap_or_else(|e| e.into_inner()));
    for handle in pending {
        let _ = handle.join();
    }
}

/// Writes the `.rdp` file, starts the client, and removes the file once the client has exited
/// (on a thread of its own: [`finish_launches`] waits for it).
pub fn rdp(
    config: &LaunchConfig,
    endpoint: &Endpoint,
    user: Option<&str>,
) -> Result<String, String> {
    let text = rdp_file(config, endpoint, user)?;
    let dir = private_dir()
        .map_err(|e| format!("cannot create a private folder for the .rdp file: {e}"))?;
    let file = dir.join("jumpgate.rdp");
    let started = write_private(&file, &text)
        .map_err(|e| e.to_string())
        .and_then(|_| rdp_command(config, &file.display().to_string()))
        .and_then(|line| {
            spawn(&line, Stdio::null())
                .map(|child| (child, line.program.clone()))
                .map_err(|e| format!("cannot start {}: {e}", line.program))
        });
    match started {
        Ok((mut child, program)) => {
            let cleanup = std::thread::spawn(move || {
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(&dir);
            });
            let mut pending = CLEANUPS.lock().unwrap_or_else(|e| e.into_inner());
            pending.retain(|h| !h.is_finished());
            pending.push(cleanup);
            Ok(program)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

fn settle(mut child: Child, at_most: Duration) {
    let start = Instant::now();
    while start.elapsed() < at_most {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the SSH client in this terminal and waits for it.
pub fn ssh(
    config: &LaunchConfig,
    endpoint: &Endpoint,
    user: Option<&str>,
) -> Result<String, String> {
    let args = ssh_args(endpoint, user)?;
    let line = launch::ssh(&config.ssh_command, &args)?;
    let status = Command::new(&line.program)
        .args(&line.args)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", line.program))?;
    if !status.success() {
        return Err(format!("{} ended with {status}", line.program));
    }
    Ok(line.program)
}

/// Opens a URL in the system browser. Only `https`, or `http` on loopback (the simulator).
pub fn open_browser(url: &str) -> bool {
    // Parsed, not matched by prefix: `http://localhost:1@evil.example/` starts like a
    // loopback address and is not one (RELIABILITY #23).
    if jumpgate_core::config::check_endpoint(url).is_err() {
        return false;
    }
    // The platform's own API (xdg-open and friends, ShellExecute, LaunchServices), never
    // `cmd /c start`, which cuts a URL at its first `&`.
    open::that_detached(url).is_ok()
}

/// The `ssh` arguments for an endpoint: `-p PORT -- [user@]host`, with the user checked.
fn ssh_args(endpoint: &Endpoint, user: Option<&str>) -> Result<Vec<String>, String> {
    if !valid_host(&endpoint.host) {
        return Err(format!(
            "'{}' is not a host name or address",
            endpoint.host.escape_debug()
        ));
    }
    let target = match user {
        Some(u) if valid_user(u) && !u.contains('@') && !u.starts_with('-') => {
            format!("{u}@{}", endpoint.host)
        }
        Some(u) => {
            return Err(format!(
                "the user name '{}' is not valid for ssh",
                u.escape_debug()
            ))
        }
        None => endpoint.host.clone(),
    };
    Ok(vec![
        "-p".into(),
        endpoint.port.to_string(),
        "--".into(),
        target,
    ])
}

/// Starts the SSH client in a terminal window of its own (the tray app has no terminal):
/// `launch.terminal_command`, else the platform's terminal (`jumpgate_core::launch`).
pub fn ssh_in_terminal(
    config: &LaunchConfig,
    endpoint: &Endpoint,
    user: Option<&str>,
) -> Result<String, String> {
    let args = ssh_args(endpoint, user)?;
    let line = launch::ssh_in_terminal(
        Os::CURRENT,
        config.terminal_command.as_deref(),
        &config.ssh_command,
        &args,
        &on_path,
    )?;
    let found = if line.program.contains(['/', '\\']) {
        Path::new(&line.program).is_file()
    } else {
        on_path(&line.program)
    };
    if !found {
        return Err(format!(
            "no terminal to run ssh in: install one ({}) or set launch.terminal_command, or run: {} {}",
            line.program,
            config.ssh_command,
            args.join(" ")
        ));
    }
    let child =
        spawn(&line, Stdio::null()).map_err(|e| format!("cannot start {}: {e}", line.program))?;
    settle(child, Duration::from_millis(500));
    Ok(config
        .ssh_command
        .split_whitespace()
        .next()
        .unwrap_or("ssh")
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reliability_19_rdp_files_hold_no_password_and_refuse_injection() {
        let ep = Endpoint {
            host: "127.0.0.10".into(),
            port: 3389,
        };
        let config = LaunchConfig::default();
        let text = rdp_file(&config, &ep, Some("alice")).expect("valid");
        assert!(text.contains("full address:s:127.0.0.10:3389"));
        assert!(text.contains("username:s:alice"));
        assert!(!text.to_ascii_lowercase().contains("password"));
        // Nothing of this laptop's is handed to the session unless configured.
        for off in [
            "redirectwebauthn:i:0\r\n",
            "camerastoredirect:s:\r\n",
            "redirectclipboard:i:0\r\n",
            "drivestoredirect:s:\r\n",
            "authentication level:i:2\r\n",
        ] {
            assert!(text.contains(off), "{off:?} in {text}");
        }
        assert!(rdp_file(&config, &ep, Some("alice\r\nalternate shell:s:cmd.exe")).is_err());
        assert!(rdp_file(
            &config,
            &Endpoint {
                host: "h\nx".into(),
                port: 1
            },
            None
        )
        .is_err());
    }

    /// Each is refused before anything is started, so no browser opens here.
    #[test]
    fn the_browser_opens_only_what_an_endpoint_may_be() {
        for url in [
            "http://localhost:1@evil.example/",
            "http://127.0.0.1:80@evil.example/authorize",
            "http://localhost.evil.example/",
            "http://evil.example/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pw@login.example/",
            "not a url",
        ] {
            assert!(!open_browser(url), "{url}");
        }
    }

    // The stand-in client is a shell script, and the mode it reports is a Unix one.
    #[cfg(unix)]
    #[test]
    fn reliability_19_the_rdp_file_is_private_and_removed_after_launch() {
        let dir = tempfile::tempdir().expect("dir");
        let seen = dir.path().join("seen");
        // A stand-in client that records the file's mode and contents when it starts.
        let script = dir.path().join("fake-rdp");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nstat -c %a \"$1\" > {0}\ncat \"$1\" >> {0}\n",
                seen.display()
            ),
        )
        .expect("script");
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        let config = LaunchConfig {
            rdp_command: Some(script.display().to_string()),
            ..LaunchConfig::default()
        };
        rdp(
            &config,
            &Endpoint {
                host: "127.0.0.10".into(),
                port: 3389,
            },
            Some("alice"),
        )
        .expect("launch");
        finish_launches();
        let recorded = std::fs::read_to_string(&seen).expect("client ran");
        assert!(recorded.starts_with("600\n"), "{recorded}");
        assert!(recorded.contains("full address:s:127.0.0.10:3389"));
        let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
            .expect("tmp")
            .flatten()
            .filter(|e| e.path().join("jumpgate.rdp").exists())
            .collect();
        assert!(leftovers.is_empty(), "the .rdp file is removed");
    }

    fn lines(text: &str) -> Vec<&str> {
        text.split("\r\n").filter(|l| !l.is_empty()).collect()
    }

    #[test]
    fn reliability_19_nothing_is_redirected_by_default() {
        let ep = Endpoint {
            host: "127.0.0.10".into(),
            port: 3389,
        };
        let text = rdp_file(&LaunchConfig::default(), &ep, None).expect("valid");
        let got = lines(&text);
        for off in [
            "redirectclipboard:i:0",
            "redirectdrives:i:0",
            "drivestoredirect:s:",
            "redirectprinters:i:0",
            "redirectsmartcards:i:0",
            "redirectcomports:i:0",
            "devicestoredirect:s:",
            "usbdevicestoredirect:s:",
            "audiocapturemode:i:0",
        ] {
            assert!(got.contains(&off), "{off} missing from {text}");
        }
        let on: Vec<_> = got
            .iter()
            .filter(|l| {
                (l.starts_with("redirect") || l.starts_with("audio")) && l.ends_with(":i:1")
                    || l.ends_with(":s:*")
            })
            .collect();
        assert!(on.is_empty(), "{on:?}");
        // Every line is one `name:type:value`, and each name appears once.
        let mut names: Vec<&str> = got
            .iter()
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "{text}");
    }

    #[test]
    fn reliability_19_each_redirection_setting_maps_to_its_line() {
        let ep = Endpoint {
            host: "127.0.0.10".into(),
            port: 3389,
        };
        type Set = fn(&mut LaunchConfig);
        let cases: [(Set, &[&str]); 7] = [
            (
                |c| c.rdp_redirect_clipboard = true,
                &["redirectclipboard:i:1"],
            ),
            (
                |c| c.rdp_redirect_drives = true,
                &["redirectdrives:i:1", "drivestoredirect:s:*"],
            ),
            (
                |c| c.rdp_redirect_printers = true,
                &["redirectprinters:i:1"],
            ),
            (
                |c| c.rdp_redirect_smartcards = true,
                &["redirectsmartcards:i:1"],
            ),
            (|c| c.rdp_redirect_ports = true, &["redirectcomports:i:1"]),
            (
                |c| c.rdp_redirect_devices = true,
                &["devicestoredirect:s:*", "usbdevicestoredirect:s:*"],
            ),
            (
                |c| c.rdp_redirect_microphone = true,
                &["audiocapturemode:i:1"],
            ),
        ];
        let base = rdp_file(&LaunchConfig::default(), &ep, None).expect("valid");
        for (set, expected) in cases {
            let mut config = LaunchConfig::default();
            set(&mut config);
            let text = rdp_file(&config, &ep, None).expect("valid");
            let got = lines(&text);
            for line in expected {
                assert!(got.contains(line), "{line} missing from {text}");
            }
            // Only the lines of that one setting changed.
            let changed = got.iter().filter(|l| !lines(&base).contains(l)).count();
            assert_eq!(changed, expected.len(), "{text}");
        }
    }

    #[test]
    fn reliability_19_redirections_are_read_from_the_configuration() {
        let text = "[azure]\ntenant_id = \"t\"\nclient_id = \"c\"\n[launch]\nrdp_redirect_clipboard = true\n";
        let config = jumpgate_core::config::Config::parse("c.toml", text).expect("valid");
        assert!(config.launch.rdp_redirect_clipboard);
        assert!(!config.launch.rdp_redirect_drives);
        // Only booleans: a string cannot smuggle a line into the file.
        let bad = "[azure]\ntenant_id = \"t\"\nclient_id = \"c\"\n[launch]\nrdp_redirect_drives = \"*\\r\\nalternate shell:s:cmd\"\n";
        assert!(jumpgate_core::config::Config::parse("c.toml", bad).is_err());
    }
}
