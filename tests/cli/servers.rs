//! Real servers behind the JIT gate: OpenSSH's `sshd` as `jumpbox-linux-01` and `xrdp` as
//! `jumpbox-win-01`, each run from a throwaway folder on a loopback port of its own and put
//! behind the gate as the VM's `backend` in a copy of the `demo` tenant. The real `jumpgate
//! connect` launches the real `ssh` and `xfreerdp`, which must get through once bob has
//! approved, and neither before the approval nor after the rule's end.
//!
//! The servers need Debian's `openssh-server` and `xrdp` (`scripts/test.sh` installs them);
//! without them these tests fail and say so. Nothing is installed or started as a service.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

const SSHD: &str = "/usr/sbin/sshd";
const XRDP: &str = "/usr/sbin/xrdp";

/// Fails with what to install when `program` is missing.
fn require(program: &str, package: &str) {
    let found = if program.contains('/') {
        Path::new(program).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
    };
    assert!(
        found,
        "{program} is missing: install {package} (apt-get install -y {package}, or run bash scripts/test.sh --install)"
    );
}

/// A loopback port nobody listens on at the moment of asking.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        text(&out.stderr)
    );
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    text(&out.stdout).trim().to_string()
}

/// Runs `command` to its end, killing it past `limit` (a client that hangs fails the test
/// instead of stalling the suite).
fn finish(mut command: Command, limit: Duration) -> ExitStatus {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the client");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server this test started, in a process group of its own, and what it logged. Dropping it
/// (at the test's end, or when an assertion panics) kills the whole group.
struct Server {
    name: &'static str,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    log_file: Option<PathBuf>,
}

impl Server {
    /// Starts `command`, keeps every line it writes on stdout and stderr (and in `log_file`,
    /// for a server that buffers its console output), and waits for a line containing `ready`.
    fn start(
        name: &'static str,
        mut command: Command,
        log_file: Option<PathBuf>,
        ready: &str,
    ) -> Server {
        use std::os::unix::process::CommandExt as _;
        let mut child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        let mut server = Server {
            name,
            child,
            log,
            log_file,
        };
        let start = Instant::now();
        while !server.logged(ready) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{name} ended at start ({status}): {:#?}", server.lines());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{name} did not start: {:#?}",
                server.lines()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn lines(&self) -> Vec<String> {
        let mut lines = self.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(file) = &self.log_file {
            let logged = std::fs::read(file).unwrap_or_default();
            lines.extend(text(&logged).lines().map(str::to_string));
        }
        lines
    }

    fn logged(&self, needle: &str) -> bool {
        self.count(needle) > 0
    }

    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The group holds the listener and any per-connection process it forked.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{} logged:\n{}", self.name, self.lines().join("\n"));
        }
    }
}

/// A copy of the `demo` tenant in which admitted connections to `vm` go to `backend`.
fn demo_with_backend(dir: &Path, vm: &str, backend: &str) -> PathBuf {
    let mut tenant: toml::Table =
        toml::from_str(include_str!("../../crates/sim/tenants/demo.toml")).expect("demo.toml");
    let entry = tenant["vms"]
        .as_array_mut()
        .expect("vms")
        .iter_mut()
        .filter_map(|v| v.as_table_mut())
        .find(|v| v["name"].as_str() == Some(vm))
        .unwrap_or_else(|| panic!("the demo tenant has no VM {vm}"));
    entry.insert("backend".into(), backend.into());
    let path = dir.join("tenant.toml");
    std::fs::write(&path, toml::to_string(&tenant).expect("TOML")).expect("write the tenant");
    path
}

/// How often the gate admitted or refused a connection to `vm`.
async fn gate_events(sim: &Sim, kind: &str, vm: &str) -> usize {
    let suffix = format!("/virtualmachines/{}", vm.to_ascii_lowercase());
    sim.events()
        .await
        .iter()
        .filter(|e| e["kind"] == kind && e["vm"].as_str().is_some_and(|v| v.ends_with(&suffix)))
        .count()
}

/// `alice` runs `jumpgate --json connect VM` (which launches her client), bob approves once
/// the request is in his inbox, and `before` runs meanwhile; the connect's JSON comes back.
async fn connect_once_approved(alice: &User, bob: &User, vm: &str, before: impl FnOnce()) -> Value {
    let connect = alice
        .command(&[
            "--json",
            "connect",
            vm,
            "--justification",
            "Maintenance window",
            "--duration",
            "1h",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jumpgate");
    let item = wait_for_inbox(bob).await;
    before();
    let approved = bob.run(&[
        "approve",
        item["id"].as_str().expect("id"),
        "--justification",
        "ok",
    ]);
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let out = connect.wait_with_output().expect("connect");
    assert!(
        out.status.success(),
        "connect failed: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("client launched"),
        "{}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("connect's JSON")
}

/// OpenSSH's sshd from a throwaway folder: its own configuration, host key, authorized key and
/// PID file, in the foreground (`-D`), logging to stderr (`-e`), as the current user.
fn start_sshd(dir: &Path, user: &str) -> (Server, u16) {
    require(SSHD, "openssh-server");
    require("ssh", "openssh-client");
    require("ssh-keygen", "openssh-client");
    let key = |name: &str| {
        let path = dir.join(name);
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                name,
                "-f",
                path.to_str().expect("path"),
            ],
        );
        path
    };
    let host_key = key("host_key");
    let client_key = key("client_key");
    std::fs::copy(
        client_key.with_extension("pub"),
        dir.join("authorized_keys"),
    )
    .expect("authorized_keys");
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1:{port}\n\
             HostKey {host}\n\
             PidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\n\
             AllowUsers {user}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             PermitRootLogin prohibit-password\n\
             StrictModes no\n\
             LogLevel VERBOSE\n",
            host = host_key.display(),
            dir = dir.display(),
        ),
    )
    .expect("sshd_config");
    // As root, sshd separates privileges into an empty directory compiled in as /run/sshd,
    // which the system service would create on start.
    if user == "root" {
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
    }
    let mut command = Command::new(SSHD);
    command.args(["-D", "-e", "-f"]).arg(&config);
    let server = Server::start("sshd", command, None, &format!("port {port}"));
    (server, port)
}

/// The ssh client's configuration: the throwaway key, the server's host key pinned under the
/// VM's name, no prompt, and a remote command that leaves `ran` behind with the connection's
/// addresses as sshd saw them.
fn ssh_client_config(dir: &Path) -> PathBuf {
    let host_key = std::fs::read_to_string(dir.join("host_key.pub")).expect("host key");
    let mut fields = host_key.split_whitespace();
    let (kind, blob) = (fields.next().expect("type"), fields.next().expect("key"));
    std::fs::write(
        dir.join("known_hosts"),
        format!("jumpbox-linux-01 {kind} {blob}\n"),
    )
    .expect("known_hosts");
    let path = dir.join("ssh_config");
    std::fs::write(
        &path,
        format!(
            "Host *\n\
             \x20 IdentityFile {dir}/client_key\n\
             \x20 IdentitiesOnly yes\n\
             \x20 HostKeyAlias jumpbox-linux-01\n\
             \x20 UserKnownHostsFile {dir}/known_hosts\n\
             \x20 GlobalKnownHostsFile /dev/null\n\
             \x20 StrictHostKeyChecking yes\n\
             \x20 BatchMode yes\n\
             \x20 ConnectTimeout 10\n\
             \x20 LogLevel ERROR\n\
             \x20 RemoteCommand echo \"$SSH_CONNECTION\" > {dir}/ran\n",
            dir = dir.display()
        ),
    )
    .expect("ssh_config");
    path
}

/// The real ssh, straight at `address` (`host:port`), as `user`.
fn ssh_direct(config: &Path, address: &str, user: &str) -> ExitStatus {
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let mut ssh = Command::new("ssh");
    ssh.arg("-F")
        .arg(config)
        .args(["-p", port, "--", &format!("{user}@{host}")]);
    finish(ssh, Duration::from_secs(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_ssh_reaches_a_real_sshd_only_while_the_rule_is_initiated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let me = current_user();
    let (sshd, sshd_port) = start_sshd(dir.path(), &me);
    let ssh_config = ssh_client_config(dir.path());
    let tenant = demo_with_backend(
        dir.path(),
        "jumpbox-linux-01",
        &format!("127.0.0.1:{sshd_port}"),
    );
    let sim = Sim::start(tenant.to_str().expect("path"), 0);
    let alice = sim.user_with_launch(
        ALICE,
        &format!(
            "ssh_command = \"ssh -F {}\"\nusername = \"{me}\"",
            ssh_config.display()
        ),
    );
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let ran = dir.path().join("ran");
    let accepted = format!("Accepted publickey for {me} from 127.0.0.1");

    // Before bob approves, the gate closes the connection before sshd hears of it.
    let gate = sim.gate_address("jumpbox-linux-01", 22).await;
    let result = connect_once_approved(&alice, &bob, "jumpbox-linux-01", || {
        let status = ssh_direct(&ssh_config, &gate, &me);
        assert_eq!(
            status.code(),
            Some(255),
            "ssh before the approval: {status}"
        );
        assert_eq!(sshd.count("Connection from"), 0, "{:#?}", sshd.lines());
    })
    .await;
    assert!(gate_events(&sim, "gate.refused", "jumpbox-linux-01").await >= 1);

    // Once approved, `connect` ran the real ssh, which logged in with the key and ran the
    // command on the real sshd, whose host key it checked.
    assert_eq!(result["connect_to"], gate.as_str());
    assert_eq!(sshd.count(&accepted), 1, "{:#?}", sshd.lines());
    let connection = std::fs::read_to_string(&ran).expect("the remote command ran");
    assert!(
        connection.trim_end().ends_with(&format!(" {sshd_port}")),
        "{connection}"
    );
    assert!(gate_events(&sim, "gate.admitted", "jumpbox-linux-01").await >= 1);

    // The same client gets in again while the rule holds: the refusal was the gate's.
    std::fs::remove_file(&ran).expect("rm ran");
    assert!(ssh_direct(&ssh_config, &gate, &me).success());
    assert!(ran.exists());
    assert_eq!(sshd.count(&accepted), 2);

    // Past the rule's end the gate closes again, and sshd hears of nothing more.
    sim.advance(3601).await;
    std::fs::remove_file(&ran).expect("rm ran");
    let refused = gate_events(&sim, "gate.refused", "jumpbox-linux-01").await;
    let status = ssh_direct(&ssh_config, &gate, &me);
    assert_eq!(
        status.code(),
        Some(255),
        "ssh after the rule's end: {status}"
    );
    assert!(!ran.exists());
    assert_eq!(sshd.count(&accepted), 2, "{:#?}", sshd.lines());
    assert_eq!(
        gate_events(&sim, "gate.refused", "jumpbox-linux-01").await,
        refused + 1
    );
}

/// xrdp 0.9 from a throwaway folder: its own xrdp.ini (`--config`), port, certificate and key
/// and log file, in the foreground (`--nodaemon`), TLS only.
fn start_xrdp(dir: &Path) -> (Server, u16, String) {
    require(XRDP, "xrdp");
    require("openssl", "openssl");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=jumpbox-win-01",
            "-keyout",
            key.to_str().expect("path"),
            "-out",
            cert.to_str().expect("path"),
        ],
    );
    let fingerprint = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl x509");
    // "sha256 Fingerprint=AB:CD:…", which FreeRDP takes in lower case.
    let fingerprint = text(&fingerprint.stdout)
        .trim()
        .rsplit_once('=')
        .expect("a fingerprint")
        .1
        .to_ascii_lowercase();
    let port = free_port();
    let config = dir.join("xrdp.ini");
    std::fs::write(
        &config,
        format!(
            "[Globals]\n\
             ini_version=1\n\
             fork=false\n\
             port=tcp://127.0.0.1:{port}\n\
             security_layer=tls\n\
             crypt_level=high\n\
             certificate={cert}\n\
             key_file={key}\n\
             ssl_protocols=TLSv1.2, TLSv1.3\n\
             allow_channels=true\n\
             max_bpp=32\n\
             [Logging]\n\
             LogFile={dir}/xrdp.log\n\
             LogLevel=DEBUG\n\
             EnableSyslog=false\n\
             EnableConsole=false\n\
             [Xorg]\n\
             name=Xorg\n\
             lib=libxup.so\n\
             username=ask\n\
             password=ask\n\
             ip=127.0.0.1\n\
             port=-1\n\
             code=20\n",
            cert = cert.display(),
            key = key.display(),
            dir = dir.display(),
        ),
    )
    .expect("xrdp.ini");
    let mut command = Command::new(XRDP);
    command.arg("--nodaemon").arg("--config").arg(&config);
    // xrdp buffers its console output when it is not a terminal: its log file is read.
    let server = Server::start(
        "xrdp",
        command,
        Some(dir.join("xrdp.log")),
        &format!("listening to port {port} on 127.0.0.1"),
    );
    (server, port, fingerprint)
}

/// The xfreerdp arguments that make it connect, authenticate as far as the server lets it
/// (`/auth-only`) and end: TLS only, and only with the throwaway certificate.
fn xfreerdp_args(fingerprint: &str) -> Vec<String> {
    vec![
        "/auth-only".into(),
        "/sec:tls".into(),
        // FreeRDP wants one for /auth-only; xrdp checks none before a desktop session starts
        // (see the RDP test).
        "/p:not-checked".into(),
        format!("/cert:fingerprint:sha256:{fingerprint}"),
    ]
}

/// The real xfreerdp, straight at `address` (`host:port`).
fn xfreerdp_direct(dir: &Path, fingerprint: &str, address: &str) -> ExitStatus {
    let mut xfreerdp = Command::new("xfreerdp");
    xfreerdp
        .env("HOME", dir.join("home"))
        .arg(format!("/v:{address}"))
        .arg("/u:alice")
        .args(xfreerdp_args(fingerprint));
    finish(xfreerdp, Duration::from_secs(30))
}

/// What xrdp proves here: xrdp 0.9 has no NLA (CredSSP) and checks a password only when it
/// starts a desktop session through xrdp-sesman and PAM, which this test does not run. So
/// `xfreerdp /auth-only /sec:tls` exits 0 once the whole RDP connection sequence has run with
/// the real server through the gate: X.224 negotiation selecting TLS, the TLS handshake with
/// the throwaway certificate (pinned by fingerprint), MCS connect, attach and channel joins,
/// the Client Info PDU with the user name from the .rdp file `connect` wrote, and the
/// capability exchange. xrdp's log shows each of those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_xfreerdp_reaches_a_real_xrdp_only_while_the_rule_is_initiated() {
    require("xfreerdp", "freerdp2-x11");
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "xfreerdp needs an X display even with /auth-only: run the tests through scripts/desktop-session.sh (bash scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("home")).expect("home");
    let (xrdp, xrdp_port, fingerprint) = start_xrdp(dir.path());
    // The client `connect` launches: the real xfreerdp on the .rdp file it generated (the last
    // argument), whose exit status is kept since `connect` does not wait for an RDP client's.
    let client = dir.path().join("rdp-client");
    std::fs::write(
        &client,
        format!(
            "#!/bin/sh\nfor file; do :; done\nHOME={home} xfreerdp \"$file\" {args} </dev/null >{dir}/xfreerdp.log 2>&1\necho $? > {dir}/xfreerdp.status\n",
            home = dir.path().join("home").display(),
            args = xfreerdp_args(&fingerprint).join(" "),
            dir = dir.path().display(),
        ),
    )
    .expect("rdp client");
    chmod_x(&client);
    let tenant = demo_with_backend(
        dir.path(),
        "jumpbox-win-01",
        &format!("127.0.0.1:{xrdp_port}"),
    );
    let sim = Sim::start(tenant.to_str().expect("path"), 0);
    let alice = sim.user_with_launch(
        ALICE,
        &format!(
            "rdp_command = \"{}\"\nusername = \"alice\"",
            client.display()
        ),
    );
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let received = "connection received from 127.0.0.1";
    let tls = "TLS connection established from 127.0.0.1";

    // Before bob approves, the gate closes the connection before xrdp hears of it.
    let gate = sim.gate_address("jumpbox-win-01", 3389).await;
    let result = connect_once_approved(&alice, &bob, "jumpbox-win-01", || {
        let status = xfreerdp_direct(dir.path(), &fingerprint, &gate);
        assert!(!status.success(), "xfreerdp before the approval: {status}");
        assert_eq!(xrdp.count(received), 0, "{:#?}", xrdp.lines());
    })
    .await;
    assert!(gate_events(&sim, "gate.refused", "jumpbox-win-01").await >= 1);
    assert_eq!(result["connect_to"], gate.as_str());

    // Once approved, `connect` launched the real xfreerdp on its .rdp file, and it ran the
    // connection sequence with xrdp to its end.
    let status = std::fs::read_to_string(dir.path().join("xfreerdp.status"))
        .expect("the RDP client ran to its end");
    let client_log = std::fs::read_to_string(dir.path().join("xfreerdp.log")).unwrap_or_default();
    assert_eq!(status.trim(), "0", "xfreerdp failed:\n{client_log}");
    for step in [
        "Security protocol: configured [SSL], requested [SSL",
        tls,
        "[MCS Connection Sequence (TLS)] completed",
        "Client supplied username: alice",
        "xrdp_caps_process_pointer",
    ] {
        assert!(
            xrdp.logged(step),
            "xrdp did not log {step:?}: {:#?}",
            xrdp.lines()
        );
    }
    assert_eq!(xrdp.count(tls), 1);
    assert!(gate_events(&sim, "gate.admitted", "jumpbox-win-01").await >= 1);

    // Past the rule's end the gate closes again, and xrdp hears of nothing more.
    sim.advance(3601).await;
    let heard = xrdp.count(received);
    let refused = gate_events(&sim, "gate.refused", "jumpbox-win-01").await;
    let status = xfreerdp_direct(dir.path(), &fingerprint, &gate);
    assert!(!status.success(), "xfreerdp after the rule's end: {status}");
    assert_eq!(xrdp.count(received), heard, "{:#?}", xrdp.lines());
    assert_eq!(xrdp.count(tls), 1);
    assert_eq!(
        gate_events(&sim, "gate.refused", "jumpbox-win-01").await,
        refused + 1
    );
}
