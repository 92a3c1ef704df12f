//! A simulator and a `jumpgate` configuration per test, and helpers to drive them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const ALICE: &str = "alice@contoso.example";
pub const BOB: &str = "bob@contoso.example";
/// The `jumpgate` binary under test.
pub fn jumpgate() -> PathBuf {
    jumpgate_tests::bin("jumpgate")
}

fn sim_binary() -> PathBuf {
    jumpgate_tests::bin("jumpgate-sim")
}

/// Fails early, with the fix, when no Secret Service runs. (Windows' Credential Manager and
/// macOS's Keychain are always there.)
#[cfg(not(all(unix, not(target_os = "macos"))))]
fn require_keychain() {}

/// Fails early, with the fix, when no Secret Service runs.
#[cfg(all(unix, not(target_os = "macos")))]
fn require_keychain() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "these tests keep tokens in the OS keychain: run them through `bash scripts/test.sh`, which starts gnome-keyring in a private D-Bus session"
    );
    keychain_answers();
}

#[cfg(all(unix, not(target_os = "macos")))]
/// Waits (up to 10 s) until the Secret Service answers a search: gnome-keyring's daemon,
/// which the session's bus starts again after one of the tests' deliberate kills, may still
/// be starting, and a test begun meanwhile would fail at its first sign-in.
fn keychain_answers() {
    let started = Instant::now();
    loop {
        let answered = Command::new("secret-tool")
            .args(["search", "service", "jumpgate-keychain-probe"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            // `search` exits 1 when nothing matches, and with an error when no service answers
            // (or the collection is locked, which prompts instead of answering).
            .is_ok_and(|s| s.code() == Some(0) || s.code() == Some(1));
        if answered {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the OS keychain (gnome-keyring's Secret Service) does not answer: is the daemon running and unlocked?"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `jumpgate-sim` and a scratch directory for clients of it.
pub struct Sim {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    config: String,
    pub http: reqwest::Client,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One user's `jumpgate`: its own config, keychain entry and state directory.
pub struct User {
    pub upn: String,
    pub config: PathBuf,
    pub state: PathBuf,
    pub service: String,
    /// The system-wide file (`JUMPGATE_SYSTEM_CONFIG`) laid under `config`, if any.
    pub system_config: Option<PathBuf>,
}

impl Sim {
    pub fn start(tenant: &str, propagation_delay: u64) -> Sim {
        require_keychain();
        jumpgate_azure::init_tls();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("sim.toml");
        let mut child = Command::new(sim_binary())
            .args([
                "serve",
                "--tenant",
                tenant,
                "--control",
                "--propagation-delay",
                &propagation_delay.to_string(),
                "--write-config",
            ])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start jumpgate-sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let url = line
            .trim()
            .strip_prefix("jumpgate-sim listening on ")
            .expect("ready line")
            .to_string();
        let config = std::fs::read_to_string(&config).expect("config");
        Sim {
            child,
            url,
            dir,
            config,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    /// A configuration for `upn`, with its own keychain service and state directory, whose
    /// clients are stand-ins that record how they were started.
    pub fn user(&self, upn: &str) -> User {
        // The account's local part as the user name to connect as; a guest's
        // (`erin_fabrikam.example#EXT#`) loses what a user name may not hold.
        let name: String = upn
            .split('@')
            .next()
            .unwrap_or(upn)
            .split('#')
            .next()
            .unwrap_or_default()
            .to_string();
        // The clients are copies of one stand-in (tests/stand_in.rs), which records how it
        // was started in `rdp-launches` and `ssh-launches` in this directory. On Windows the
        // RDP client is the platform's own `mstsc`, found on the PATH `command` sets.
        let stand_in = |as_name: &str| {
            let path = self
                .dir
                .path()
                .join(format!("{as_name}{}", std::env::consts::EXE_SUFFIX));
            if !path.exists() {
                std::fs::copy(jumpgate_tests::bin("jumpgate-stand-in"), &path)
                    .expect("stand-in client");
                chmod_x(&path);
            }
            path
        };
        let fake_ssh = stand_in("fake-ssh");
        let rdp = if cfg!(windows) {
            stand_in("mstsc");
            String::new()
        } else {
            format!("rdp_command = \"{}\"\n", stand_in("fake-rdp").display())
        };
        self.user_with_launch(
            upn,
            &format!(
                "{rdp}ssh_command = {}\nusername = \"{name}\"",
                toml::Value::String(fake_ssh.display().to_string())
            ),
        )
    }

    /// A configuration for `upn` whose `[launch]` table holds `launch` (TOML lines).
    pub fn user_with_launch(&self, upn: &str, launch: &str) -> User {
        let name = upn.split('@').next().unwrap_or(upn);
        let service = format!("jumpgate-test-{}", uuid::Uuid::new_v4().simple());
        let state = self.dir.path().join(format!("state-{name}"));
        let config = self.dir.path().join(format!("{name}.toml"));
        let text = format!(
            "{}\n[storage]\nkeyring_service = \"{service}\"\nstate_dir = {}\n\n[launch]\n{launch}\n",
            self.config,
            toml::Value::String(state.display().to_string()),
        );
        std::fs::write(&config, text).expect("write config");
        User {
            upn: upn.into(),
            config,
            state,
            service,
            system_config: None,
        }
    }

    /// The bearer token of this run's control API, from the configuration it wrote.
    pub fn control_token(&self) -> &str {
        self.config
            .lines()
            .find_map(|l| l.strip_prefix("control_token = \""))
            .and_then(|rest| rest.split('"').next())
            .expect("control_token in the simulator's configuration")
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/_sim{path}", self.url))
            .bearer_auth(self.control_token())
            .json(&body)
            .send()
            .await
            .expect("control");
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().await.expect("json")
    }

    pub async fn events(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/_sim/events", self.url))
            .bearer_auth(self.control_token())
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("json")
    }

    /// Where the JIT gate listens for `vm` (by name) and `port`: the VM's public IP, or the
    /// firewall's mapped port (for the real servers of `servers.rs`).
    #[cfg(target_os = "linux")]
    pub async fn gate_address(&self, vm: &str, port: u16) -> String {
        let gate: Value = self
            .http
            .get(format!("{}/_sim/gate", self.url))
            .bearer_auth(self.control_token())
            .send()
            .await
            .expect("gate")
            .json()
            .await
            .expect("json");
        let suffix = format!("/virtualmachines/{}", vm.to_ascii_lowercase());
        gate.as_array()
            .expect("the gate's endpoints")
            .iter()
            .find(|e| e["port"] == port && e["vm"].as_str().is_some_and(|v| v.ends_with(&suffix)))
            .and_then(|e| e["address"].as_str())
            .unwrap_or_else(|| panic!("the gate does not listen for {vm}:{port}: {gate}"))
            .to_string()
    }

    pub async fn advance(&self, seconds: i64) {
        self.control("/clock/advance", json!({"seconds": seconds}))
            .await;
    }

    /// Every request the simulator refused for its shape (`request.invalid`): none may be.
    pub async fn refused_for_shape(&self) -> Vec<Value> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e["kind"] == "request.invalid")
            .collect()
    }

    /// An ARM read as `upn`, with a token the control API mints, for what a test checks
    /// behind the client's back (a policy's request history, say).
    pub async fn arm_get_as(&self, upn: &str, path: &str) -> Value {
        let token = self.control("/token", json!({"upn": upn})).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("arm");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    /// Requests the simulator saw with this method whose path contains `needle`.
    pub async fn requests_seen(&self, method: &str, needle: &str) -> usize {
        self.events()
            .await
            .iter()
            .filter(|e| {
                e["kind"] == "request"
                    && e["method"] == method
                    && e["path"].as_str().is_some_and(|p| p.contains(needle))
            })
            .count()
    }

    /// Plays the person at the other device for a `signin --device-code` running as
    /// `child`: reads the code it prints, enters it for `upn`, and returns how it ended.
    /// The stories that sign in with a device code run on Unix only.
    #[cfg(unix)]
    pub async fn enter_device_code(&self, mut child: Child, upn: &str) -> Output {
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the device-code prompt");
        let code = line
            .split("enter the code ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("a user code in {line:?}"))
            .to_string();
        self.control("/device", json!({"user_code": code, "upn": upn}))
            .await;
        child.wait_with_output().expect("signin")
    }

    /// Signs `user` in with the real browser flow: `jumpgate signin --no-open` prints the
    /// authorize URL; this test plays the browser on the simulator's sign-in page and follows
    /// the redirect to jumpgate's loopback listener.
    pub async fn sign_in(&self, user: &User) {
        self.sign_in_with(user, &[]).await;
    }

    /// [`Sim::sign_in`] with more `signin` arguments (`--claims`, `--mfa`).
    pub async fn sign_in_with(&self, user: &User, extra: &[&str]) {
        self.sign_in_after(user, &[], extra).await;
    }

    /// [`Sim::sign_in`] to the tenant profile `tenant` of `user`'s configuration (which
    /// [`Sim::tenant_profile`] wrote for this simulator).
    pub async fn sign_in_to(&self, user: &User, tenant: &str) {
        self.sign_in_after(user, &["--tenant", tenant], &[]).await;
    }

    /// This simulator's tenant as a `[[tenants]]` entry named `name`, to add to a
    /// configuration another simulator wrote: its `[azure]` keys, under the name.
    pub fn tenant_profile(&self, name: &str) -> String {
        jumpgate_tests::tenant_entry(&self.config, name)
    }

    async fn sign_in_after(&self, user: &User, before: &[&str], extra: &[&str]) {
        let mut args = before.to_vec();
        args.extend_from_slice(&["signin", "--no-open", "--user", &user.upn]);
        args.extend_from_slice(extra);
        let mut child = user.spawn(&args);
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut url = String::new();
        stdout.read_line(&mut url).expect("authorize URL");
        let url = url::Url::parse(url.trim()).expect("authorize URL");
        let page = self
            .http
            .get(url.clone())
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        assert!(
            page.contains(&user.upn),
            "the sign-in page offers {}",
            user.upn
        );
        let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        form.push(("upn".into(), user.upn.clone()));
        let mut action = url.clone();
        action.set_query(None);
        let redirect = self
            .http
            .post(action)
            .form(&form)
            .send()
            .await
            .expect("submit");
        let location = redirect.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        assert!(location.starts_with("http://localhost:"), "{location}");
        let landed = self.http.get(&location).send().await.expect("loopback");
        assert_eq!(landed.status(), 200);
        let status = child.wait().expect("signin");
        assert!(status.success(), "signin failed");
    }
}

pub fn chmod_x(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // Windows runs a file by its extension.
    #[cfg(windows)]
    let _ = path;
}

/// Starts a process. Under Wine, process creation now and then fails with
/// ERROR_INTERNAL_ERROR (1359) before the program runs at all: that start is tried again, up
/// to three times. Anything else, and everywhere else, is returned as it is.
fn started<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 1;
    loop {
        match start() {
            Err(e) if cfg!(windows) && e.raw_os_error() == Some(1359) && tries < 3 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

impl User {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(jumpgate());
        c.arg("--config").arg(&self.config).args(args);
        // Windows' RDP client, `mstsc`, is the stand-in beside the configuration.
        #[cfg(windows)]
        if let Some(dir) = self.config.parent() {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let dirs = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&path));
            c.env("PATH", std::env::join_paths(dirs).expect("PATH"));
        }
        if let Some(system) = &self.system_config {
            c.env("JUMPGATE_SYSTEM_CONFIG", system);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        started(|| self.command(args).output()).expect("run jumpgate")
    }

    /// Runs, and fails the test if it has not ended within `limit` (ending it first), so a
    /// command that should have refused to start cannot hang the suite.
    pub fn run_for(&self, args: &[&str], limit: Duration) -> Output {
        let mut child = self.spawn(args);
        let started = Instant::now();
        while child.try_wait().expect("wait for jumpgate").is_none() {
            if started.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().expect("jumpgate's output");
                panic!(
                    "jumpgate {args:?} still ran after {limit:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("jumpgate's output")
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        started(|| {
            self.command(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .expect("spawn jumpgate")
    }

    /// Runs and returns stdout parsed as JSON, failing with stderr when it exits non-zero.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "jumpgate {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits for `f` to hold, checking every 100 ms.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> F,
) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Connects from `source` and reports whether the gate let the connection through.
pub async fn gate_admits(addr: &str, source: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("source"))
        .expect("bind");
    let Ok(mut s) = socket.connect(addr.parse().expect("addr")).await else {
        return false;
    };
    let request: [u8; 19] = [3, 0, 0, 19, 14, 0xE0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0];
    if s.write_all(&request).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 32];
    matches!(tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await, Ok(Ok(n)) if n > 5 && buf[5] == 0xD0)
}

/// bob's inbox, once a request has arrived in it.
pub async fn wait_for_inbox(bob: &User) -> Value {
    wait_for_inbox_of(bob, 1).await.swap_remove(0)
}

/// Approves the first request in `approver`'s inbox and returns it.
pub async fn approve_next(approver: &User) -> Value {
    let item = wait_for_inbox(approver).await;
    let out = approver.run(&[
        "approve",
        item["id"].as_str().expect("id"),
        "--justification",
        "Go ahead",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    item
}

/// bob's inbox, once it holds `count` requests.
pub async fn wait_for_inbox_of(bob: &User, count: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let inbox = bob.json(&["approvals"]);
        let items = inbox.as_array().cloned().unwrap_or_default();
        if items.len() >= count {
            return items;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the approver's inbox never held {count} requests: {inbox:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `user` activates the JIT Requester role for `duration`, `approver` approves, and the
/// role is in effect when this returns.
pub async fn activate_approved(user: &User, approver: &User, duration: &str) {
    let activate = user.spawn(&[
        "activate",
        "JIT Requester",
        "--justification",
        "Maintenance window",
        "--duration",
        duration,
        "--wait=5m",
    ]);
    let item = wait_for_inbox(approver).await;
    let approved = approver.run(&[
        "approve",
        item["id"].as_str().expect("id"),
        "--justification",
        "ok",
    ]);
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let out = activate.wait_with_output().expect("activate");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("in effect"),
        "{}",
        text(&out.stderr)
    );
}

impl User {
    /// Adds lines to this user's configuration (a `[watch]` section, say).
    pub fn configure(&self, extra: &str) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.config)
            .expect("config");
        writeln!(f, "\n{extra}").expect("write config");
    }

    /// `jumpgate --json watch`, with its events read as they are printed.
    pub fn watch(&self, extra: &[&str]) -> Watching {
        let mut args = vec!["--json", "watch"];
        args.extend_from_slice(extra);
        let saved = self.state.join("watch.json");
        let looked_before = seen_until(&saved);
        let mut child = self.spawn(&args);
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (progress_tx, progress) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if progress_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("watch printed a line that is not JSON ({e}): {line}")
                });
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Watching {
            child,
            rx,
            seen: Vec::new(),
            taken: std::collections::BTreeMap::new(),
            progress,
            said: Vec::new(),
            saved,
            looked_before,
        }
    }
}

/// When the last look a watcher finished was, as its `watch.json` says (ARM's clock).
fn seen_until(saved: &Path) -> Option<String> {
    let bytes = std::fs::read(saved).ok()?;
    let saved: Value = serde_json::from_slice(&bytes).ok()?;
    saved["seen_until"].as_str().map(str::to_owned)
}

/// A running `jumpgate watch` and every event it has printed so far.
pub struct Watching {
    pub child: Child,
    rx: std::sync::mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
    /// How many events of each name `expect` has handed out.
    taken: std::collections::BTreeMap<String, usize>,
    progress: std::sync::mpsc::Receiver<String>,
    /// Every progress line printed on stderr so far (gathered by `expect_said` and `said_so`).
    pub said: Vec<String>,
    /// Its `watch.json`, and the last look recorded there before it started.
    saved: PathBuf,
    looked_before: Option<String>,
}

impl Watching {
    /// Waits for the next event named `name` that no earlier `expect` has handed out,
    /// keeping every event printed meanwhile. Counting what was handed out, rather than
    /// what happened to be read before the call, keeps two events printed together
    /// from being taken as one.
    pub fn expect(&mut self, name: &str, limit: Duration) -> Value {
        let start = Instant::now();
        let already = self.taken.get(name).copied().unwrap_or(0);
        loop {
            self.drain();
            if let Some(e) = self.seen.iter().filter(|e| e["event"] == name).nth(already) {
                let e = e.clone();
                self.taken.insert(name.to_owned(), already + 1);
                return e;
            }
            let left = limit
                .checked_sub(start.elapsed())
                .unwrap_or_else(|| panic!("no {name} within {limit:?}; seen: {:#?}", self.seen));
            if let Ok(e) = self.rx.recv_timeout(left.min(Duration::from_millis(200))) {
                self.seen.push(e);
            }
        }
    }

    /// Waits until this watcher has finished its first look (what it reads, it has read),
    /// keeping what it prints meanwhile.
    pub fn first_look(&mut self) {
        let start = Instant::now();
        loop {
            let now = seen_until(&self.saved);
            if now.is_some() && now != self.looked_before {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the watcher finished no look within 30 s; seen: {:#?}; said: {:#?}",
                self.seen,
                self.said
            );
            self.settle(Duration::from_millis(100));
        }
    }

    /// Waits until this watcher's `watch.json` holds `needle` (it tracks a request, say),
    /// keeping what it prints meanwhile.
    pub fn saved(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let saved = std::fs::read_to_string(&self.saved).unwrap_or_default();
            if saved.contains(needle) {
                return saved;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the watcher's state never held {needle:?} within 30 s: {saved}"
            );
            self.settle(Duration::from_millis(100));
        }
    }

    /// Collects what arrives during `quiet`.
    /// Waits until the watcher has finished a whole look after this moment (its
    /// `watch.json`'s look moves on), keeping what it prints meanwhile: whatever that look
    /// would announce again has been announced by then.
    pub fn next_look(&mut self) {
        let saved = self.saved.clone();
        self.next_look_at(&saved);
    }

    /// [`Watching::next_look`] of the watcher whose state is `saved` (another tenant's, in
    /// `tenants/NAME/watch.json`).
    pub fn next_look_at(&mut self, saved: &Path) {
        let before = seen_until(saved);
        let start = Instant::now();
        while seen_until(saved) == before {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the watcher finished no look within 30 s ({})",
                saved.display()
            );
            self.settle(Duration::from_millis(100));
        }
    }

    pub fn settle(&mut self, quiet: Duration) {
        let start = Instant::now();
        while start.elapsed() < quiet {
            if let Ok(e) = self.rx.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(e);
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.seen.push(e);
        }
    }

    /// Waits for a progress line (stderr) containing `needle`, returning it.
    pub fn expect_said(&mut self, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            while let Ok(line) = self.progress.try_recv() {
                self.said.push(line);
            }
            if let Some(line) = self.said.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(
                start.elapsed() < limit,
                "nothing saying {needle:?} within {limit:?}; said: {:#?}",
                self.said
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The progress lines printed so far that contain `needle`.
    pub fn said_so(&mut self, needle: &str) -> usize {
        while let Ok(line) = self.progress.try_recv() {
            self.said.push(line);
        }
        self.said.iter().filter(|l| l.contains(needle)).count()
    }

    pub fn count(&self, name: &str) -> usize {
        self.seen.iter().filter(|e| e["event"] == name).count()
    }

    /// Stops the watcher the hard way (SIGKILL), as a crash would.
    pub fn kill(mut self) -> Vec<Value> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.drain();
        std::mem::take(&mut self.seen)
    }
}

/// A watcher no longer needed is asked to stop (SIGTERM, which it handles as a logout) and
/// killed only if it has not within 5 s: a SIGKILL in the middle of a Secret Service call
/// can crash gnome-keyring's daemon, and the next test would meet a keychain without its
/// sign-ins. [`Watching::kill`] is the crash on purpose.
impl Drop for Watching {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Windows has no SIGTERM: the watcher is ended at once.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The usernames of a keychain service's entries, read from the Secret Service.
#[cfg(target_os = "linux")]
pub fn keychain_entries(service: &str) -> Vec<String> {
    let out = Command::new("secret-tool")
        .args(["search", "--all", "service", service])
        .output()
        .expect("secret-tool (libsecret-tools)");
    let listing = format!("{}{}", text(&out.stdout), text(&out.stderr));
    listing
        .lines()
        .filter_map(|l| l.strip_prefix("attribute.username = ").map(str::to_string))
        .collect()
}

#[cfg(target_os = "linux")]
pub fn keychain_secret(service: &str, user: &str) -> String {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", service, "username", user])
        .output()
        .expect("secret-tool");
    text(&out.stdout)
}

/// The access and refresh tokens `user` has in the keychain: canaries that no output and
/// no file may contain.
#[cfg(target_os = "linux")]
pub fn stored_tokens(user: &User) -> Vec<String> {
    let mut entries = keychain_entries(&user.service);
    entries.sort();
    let stored: String = entries
        .iter()
        .filter(|e| e.contains('#'))
        .map(|e| keychain_secret(&user.service, e))
        .collect();
    let tokens: Value = serde_json::from_str(&stored).expect("the stored token set");
    ["access_token", "refresh_token"]
        .iter()
        .map(|k| tokens[k].as_str().expect("token").to_string())
        .collect()
}

/// Every file under `dir`.
#[cfg(target_os = "linux")]
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// No canary in `outputs` or in any file under `dir`.
#[cfg(target_os = "linux")]
pub fn assert_no_token_leaked(canaries: &[String], outputs: &str, dir: &Path) {
    let mut files = String::new();
    for entry in walk(dir) {
        files += &String::from_utf8_lossy(&std::fs::read(entry).unwrap_or_default());
    }
    for canary in canaries {
        assert!(canary.len() > 20);
        assert!(!outputs.contains(canary.as_str()), "a token was printed");
        assert!(
            !files.contains(canary.as_str()),
            "a token was written to disk"
        );
    }
}
