//! End to end: the real `jumpgate-tray --demo` in a real webview (WebKitGTK), driven through
//! WebDriver (`tauri-driver` + `WebKitWebDriver`), in the throwaway desktop of
//! `scripts/desktop-session.sh` (Xvfb, D-Bus, dunst, gnome-keyring, trayer). Screenshots of
//! each main view land in `target/test-output/e2e/`.
//!
//! One story, in order: alice signs in, is told a too-long duration next to the field, and
//! connects to jumpbox-win-01; bob approves through
//! ARM; the app shows the access open with a countdown; dunst has shown "Access approved";
//! the simulator's gate admitted alice's address; a clock advance brings the expiry reminder;
//! a link opens the prefilled form; the tray menu's "Connect to jumpbox-win-01" opens the
//! Connect form; alice ends her role early and asks again from a terminal; bob, signed in
//! to the app, sees her request in Approvals and approves it there.
// Linux only: it needs WebKitGTK, WebKitWebDriver, Xvfb, dunst and trayer.
#![cfg(target_os = "linux")]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    approval_waits_for, approve_as, jumpgate, notification_mark, notifications_seen, play_browser,
    sim_url, tray,
};
use serde_json::{json, Value};

/// Fixed ports for this test binary (PLATFORM.md): tauri-driver and WebKitWebDriver, for the
/// first session; the next one takes the next pair.
const FIRST_PORT: u16 = 4444;
/// One app at a time: the app is single-instance on the session bus.
static ONE_APP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn tauri_driver() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let installed = home.join(".cargo/bin/tauri-driver");
    if installed.is_file() {
        return Some(installed);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tauri-driver"))
            .find(|p| p.is_file())
    })
}

/// tauri-driver, the app it starts (through WebKitWebDriver) and a WebDriver session on it.
struct Driven {
    _one: tokio::sync::MutexGuard<'static, ()>,
    driver: Child,
    port: u16,
    http: reqwest::Client,
    session: String,
    home: tempfile::TempDir,
    shots: PathBuf,
}

impl Drop for Driven {
    fn drop(&mut self) {
        let _ = Command::new("pkill").arg("-f").arg(tray()).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // tauri-driver's WebKitWebDriver outlives it when it is killed.
        let _ = Command::new("pkill")
            .args(["-f", &format!("WebKitWebDriver --port={}", self.port + 1)])
            .status();
    }
}

impl Driven {
    async fn start(port: u16, args: &[&str], env: &[(&str, &str)]) -> Driven {
        let one = ONE_APP.lock().await;
        let driver_bin = tauri_driver().expect(
            "tauri-driver is not installed: run `bash scripts/test.sh --install` (cargo install tauri-driver --version '^2' --locked)",
        );
        assert!(
            std::env::var_os("DISPLAY").is_some(),
            "this test drives the real app: run it through `bash scripts/test.sh`"
        );
        let home = tempfile::tempdir().expect("home");
        let log = std::fs::File::create(home.path().join("app.log")).expect("log");
        let driver = Command::new(driver_bin)
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &(port + 1).to_string(),
            ])
            // The app, started by WebKitWebDriver, inherits this: its own home and data.
            .env("HOME", home.path())
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            // E2E_LOG sets another level when a failure needs more (`debug,hyper=info`).
            .env(
                "JUMPGATE_LOG",
                std::env::var("E2E_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tauri-driver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let session = loop {
            let answer = http
                .post(format!("{base}/session"))
                .json(&json!({"capabilities": {"alwaysMatch": {"tauri:options": {
                    "application": tray(),
                    "args": args,
                }}}}))
                .send()
                .await;
            if let Ok(a) = answer {
                let v: Value = a.json().await.unwrap_or_default();
                if let Some(id) = v["value"]["sessionId"].as_str() {
                    break id.to_string();
                }
                panic!("no WebDriver session: {v}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "tauri-driver did not answer on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("../test-output/e2e")
            .components()
            .collect::<PathBuf>();
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Driven {
            _one: one,
            driver,
            port,
            http,
            session,
            home,
            shots,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("app.log")).unwrap_or_default()
    }

    /// The demo's client configuration, as the app logged it.
    async fn demo_config(&self) -> String {
        eventually(
            30,
            || {
                self.log().lines().find_map(|l| {
                    l.split("its client configuration is ")
                        .nth(1)
                        .and_then(|rest| rest.split(" (").next())
                        .map(str::to_string)
                })
            },
            || format!("no demo configuration: {}", self.log()),
        )
        .await
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!(
            "http://127.0.0.1:{}/session/{}{path}",
            self.port, self.session
        );
        let mut request = self.http.request(method, url);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let answer: Value = request
            .send()
            .await
            .expect("WebDriver")
            .json()
            .await
            .expect("json");
        answer["value"].clone()
    }

    /// The element an XPath finds, once it is there (up to `secs`).
    async fn wait_for(&self, xpath: &str, secs: u64) -> String {
        let started = Instant::now();
        loop {
            let v = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "xpath", "value": xpath})),
                )
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_string();
            }
            if started.elapsed() > Duration::from_secs(secs) {
                let text = self.text_of("//body").await;
                let _ = self.screenshot("failure").await;
                panic!(
                    "not found within {secs} s: {xpath}\npage: {text}\napp log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn text_of(&self, xpath: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "xpath", "value": xpath})),
            )
            .await;
        match v[ELEMENT].as_str() {
            Some(id) => self
                .call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
                .await
                .as_str()
                .unwrap_or_default()
                .to_string(),
            None => String::new(),
        }
    }

    async fn script(&self, body: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": body, "args": []})),
        )
        .await
    }

    /// Presses keys in the focused element (WebDriver key codes: Tab, Enter).
    async fn keys(&self, text: &str) {
        let active = self
            .call(reqwest::Method::GET, "/element/active", None)
            .await;
        let id = active[ELEMENT].as_str().unwrap_or_default().to_string();
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, xpath: &str) {
        let id = self.wait_for(xpath, 20).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Whether an element matches now.
    async fn present(&self, xpath: &str) -> bool {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "xpath", "value": xpath})),
            )
            .await;
        v[ELEMENT].as_str().is_some()
    }

    /// Clicks `target` until `then` appears: a click that lands while the view re-renders
    /// (a refresh after the step before) reaches an element that is gone, and is lost.
    async fn click_until(&self, target: &str, then: &str, secs: u64) {
        let started = Instant::now();
        loop {
            if self.present(target).await {
                self.click(target).await;
            }
            let clicked = Instant::now();
            while clicked.elapsed() < Duration::from_secs(3) {
                if self.present(then).await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if started.elapsed() > Duration::from_secs(secs) {
                self.wait_for(then, 0).await;
                return;
            }
        }
    }

    async fn type_into(&self, xpath: &str, text: &str) {
        let id = self.wait_for(xpath, 20).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Launches the app a second time with `link`, as a desktop does when one is clicked:
    /// it hands the link to the running app and exits.
    fn open_link(&self, link: &str) {
        let status = Command::new(tray())
            .arg(link)
            .env("HOME", self.home.path())
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .status()
            .expect("second launch");
        assert!(status.success(), "the second launch with {link} failed");
    }

    /// The value of the form field named `name`.
    async fn field(&self, name: &str) -> Value {
        self.script(&format!(
            "const f = document.querySelector(\"[name='{name}']\"); return f ? f.value : null"
        ))
        .await
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_default();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, &png).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        path
    }
}

fn button(label: &str) -> String {
    format!("//button[normalize-space(.)='{label}' or @aria-label='{label}']")
}

/// The Connect form's submit button.
fn connect_button() -> String {
    "//button[@type='submit' and normalize-space(.)='Connect']".to_string()
}

/// Runs the CLI on the demo's configuration and answers its stdout.
fn cli(config: &str, args: &[&str]) -> String {
    let out = Command::new(jumpgate())
        .args(["--config", config])
        .args(args)
        .output()
        .expect("jumpgate");
    assert!(
        out.status.success(),
        "jumpgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn dunstctl(args: &[&str]) -> String {
    let out = Command::new("dunstctl")
        .args(args)
        .output()
        .expect("dunstctl");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Polls `found` until it answers something, failing with `why` after `secs`.
async fn eventually<T>(
    secs: u64,
    mut found: impl FnMut() -> Option<T>,
    why: impl Fn() -> String,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(secs), "{}", why());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until dunst has shown `what` since `mark`; answers all it showed since then.
/// A simulator of `tenant` writing its client configuration to `config`, once it listens,
/// and the address it listens on.
fn serve_sim(tenant: &str, config: &std::path::Path) -> (Child, String) {
    let mut sim = Command::new(jumpgate_tests::bin("jumpgate-sim"))
        .args(["serve", "--tenant", tenant, "--control", "--write-config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("jumpgate-sim");
    use std::io::BufRead as _;
    let mut ready = String::new();
    std::io::BufReader::new(sim.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("ready line");
    let url = ready
        .trim()
        .strip_prefix("jumpgate-sim listening on ")
        .expect("ready line")
        .to_string();
    (sim, url)
}

async fn wait_notification(mark: i64, what: &str, secs: u64) -> String {
    eventually(
        secs,
        || Some(notifications_seen(mark)).filter(|seen| seen.contains(what)),
        || format!("dunst did not show '{what}': {}", notifications_seen(mark)),
    )
    .await
}

/// Clicks the tray icon (held by trayer at the top right), which opens its menu, and picks
/// an entry by its position with the keyboard, with xdotool.
fn tray_menu_pick(downs: usize) {
    let run = |args: &[&str]| -> String {
        let out = Command::new("xdotool")
            .args(args)
            .output()
            .expect("xdotool");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // The icon trayer embeds: a window of the app's, class "tray-icon …".
    let icons = run(&["search", "--class", "tray-icon"]);
    let window = icons
        .lines()
        .next()
        .expect("no tray icon window: is a tray host (TRAY_HOST=1, trayer) running?")
        .to_string();
    let geometry = run(&["getwindowgeometry", "--shell", &window]);
    let value = |key: &str| -> i64 {
        geometry
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (x, y, w, h) = (value("X"), value("Y"), value("WIDTH"), value("HEIGHT"));
    run(&[
        "mousemove",
        &(x + w / 2).to_string(),
        &(y + h / 2).to_string(),
    ]);
    // The menu's windows are named after the app: wait for them to map before the keys,
    // which would otherwise reach whatever has the focus.
    let menus = || {
        run(&["search", "--onlyvisible", "--name", "^jumpgate-tray$"])
            .lines()
            .count()
    };
    let before = menus();
    run(&["click", "1"]);
    let started = Instant::now();
    while menus() <= before {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the tray menu did not open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..downs {
        run(&["key", "Down"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    run(&["key", "Return"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_connects_bob_approves_and_the_app_follows() {
    jumpgate_azure::init_tls();
    let mark = notification_mark();
    let app = Driven::start(FIRST_PORT, &["--demo"], &[]).await;
    let config = app.demo_config().await;
    let sim = sim_url(&config);

    // alice signs in with the demo's PKCE flow.
    app.click(&button("alice@contoso.example")).await;
    app.wait_for("//*[contains(., 'Signed in as alice@contoso.example')]", 20)
        .await;
    app.wait_for(&button("Connect to jumpbox-win-01"), 20).await;
    app.screenshot("1-targets").await;

    // She connects to jumpbox-win-01: the role waits for bob's approval.
    app.click(&button("Connect to jumpbox-win-01")).await;
    app.type_into("//input[@name='justification']", "Patch night KB5034441")
        .await;
    // The app checks the form as she types, with the policy's rules: too long a duration is
    // said next to the field, and Connect waits until it is fixed.
    app.type_into("//input[@name='duration']", "9h").await;
    app.wait_for(
        "//input[@name='duration' and @aria-invalid='true' and @aria-describedby='connect-duration-problem']",
        10,
    )
    .await;
    let said = app.text_of("//*[@id='connect-duration-problem']").await;
    assert!(
        said.contains("9h is longer than port 3389 allows (at most"),
        "{said}"
    );
    assert!(
        app.present(&format!("{}[@disabled]", connect_button()))
            .await
    );
    app.screenshot("2-connect-problem").await;
    app.type_into("//input[@name='duration']", "1h").await;
    let ready = format!("{}[not(@disabled)]", connect_button());
    app.wait_for(&ready, 10).await;
    assert!(!app.present("//*[@id='connect-duration-problem']").await);
    app.screenshot("2-connect-form").await;
    app.click(&ready).await;
    app.wait_for(
        "//li[@data-step='request_role' and contains(@class,'done')]",
        30,
    )
    .await;
    app.wait_for(
        "//li[@data-step='await_approval' and contains(@class,'waiting')]",
        10,
    )
    .await;
    app.screenshot("3-waiting-for-approval").await;

    // bob approves through ARM; the chain runs on to the client.
    approve_as(&sim, "bob@contoso.example", "Go ahead, e2e").await;
    app.wait_for(
        "//li[@data-step='await_approval' and contains(@class,'done')]",
        30,
    )
    .await;
    app.wait_for(
        "//li[@data-step='open_port' and contains(@class,'done')]",
        60,
    )
    .await;
    app.wait_for(
        "//li[@data-step='await_reachable' and contains(@class,'done')]",
        60,
    )
    .await;
    app.wait_for("//li[@data-step='launch' and contains(@class,'done')]", 30)
        .await;
    app.wait_for("//*[contains(., 'Ready: connect to')]", 10)
        .await;
    app.call(
        reqwest::Method::POST,
        "/execute/sync",
        Some(json!({"script": "document.querySelector('.timeline').scrollIntoView()", "args": []})),
    )
    .await;
    app.screenshot("4-timeline-done").await;

    // dunst showed the approval, with bob's justification.
    let seen = wait_notification(mark, "Access approved", 20).await;
    assert!(seen.contains("Go ahead, e2e"), "{seen}");

    // The simulator's gate let alice's address in.
    let events: Value = sim
        .control(reqwest::Method::GET, "/events")
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let admitted = events
        .as_array()
        .into_iter()
        .flatten()
        .chain(events["events"].as_array().into_iter().flatten())
        .any(|e| e["kind"] == "gate.admitted");
    assert!(admitted, "the gate admitted nobody: {events}");

    // Active access: a countdown for the role and the port.
    app.click(&button("Active")).await;
    app.wait_for("//li[contains(., 'jumpbox-win-01 port 3389')]//span[contains(@class,'countdown') and contains(., 'left')]", 20)
        .await;
    let first = app
        .text_of("//li[contains(., 'JIT Requester')]//span[contains(@class,'countdown')]")
        .await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let later = app
        .text_of("//li[contains(., 'JIT Requester')]//span[contains(@class,'countdown')]")
        .await;
    assert!(
        first.contains("left") && first != later,
        "{first} / {later}"
    );
    app.screenshot("5-active").await;

    // A clock advance to 15 minutes before the end brings the expiry reminder.
    sim.control(reqwest::Method::POST, "/clock/advance")
        .json(&json!({"seconds": 46 * 60}))
        .send()
        .await
        .expect("advance");
    let seen = wait_notification(mark, "ends in 15 minutes", 60).await;
    assert!(seen.contains("Access approved"), "{seen}");

    // She extends the port from the Active view: a new JIT request for her address.
    app.click(&format!(
        "//li[contains(., 'jumpbox-win-01 port 3389')]{}",
        button("Extend")
    ))
    .await;
    app.wait_for(
        "//*[contains(., 'Port 3389 of jumpbox-win-01 is open for') and contains(., 'more')]",
        30,
    )
    .await;

    // A link opens the Connect form prefilled; nothing is sent.
    let status = Command::new(tray())
        .arg("jumpgate://connect?vm=jumpbox-linux-01&port=22&duration=PT30M&justification=Incident%204711")
        .env("HOME", app.home.path())
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .status()
        .expect("second launch");
    assert!(status.success());
    app.wait_for("//*[contains(., 'Filled in from a link')]", 20)
        .await;
    let justification = app
        .call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "return document.querySelector(\"input[name='justification']\").value", "args": []})),
        )
        .await;
    assert_eq!(justification, "Incident 4711");
    app.screenshot("6-link-prefilled").await;

    // The tray menu: Open, then one entry per jump box; the first is jumpbox-win-01.
    app.click(&button("Back to jump boxes")).await;
    // The jump box she connected to comes first (by name it would be second), remembered
    // in the webview's storage.
    app.wait_for(
        "//ul[contains(@class,'targets')]/li[1][@data-vm='jumpbox-win-01']",
        10,
    )
    .await;
    tray_menu_pick(2);
    app.wait_for(
        "//h2[normalize-space(.)='Connect to jumpbox-win-01 in rg-jumpboxes']",
        20,
    )
    .await;
    // The entry names the VM by resource id: a name may be shared by several VMs.
    assert!(
        app.log()
            .lines()
            .any(|l| l.contains("tray menu: connect:/subscriptions/")
                && l.contains("/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01")),
        "{}",
        app.log()
    );
    app.screenshot("7-tray-connect").await;

    // alice ends her role early, and asks again from a terminal.
    app.click(&button("Active")).await;
    app.type_into("//input[@name='extend-justification']", "Done patching")
        .await;
    app.click(&format!(
        "//li[contains(., 'JIT Requester')]{}",
        button("End early")
    ))
    .await;
    app.wait_for("//*[contains(., 'JIT Requester ended')]", 30)
        .await;
    // From a terminal, before the app signs out: the app takes up a sign-in made in a
    // terminal within seconds, so one made after its Sign out would race bob's.
    common::cli_sign_in(&config, "alice@contoso.example").await;
    cli(
        &config,
        &[
            "activate",
            "JIT Requester",
            "--justification",
            "Second patch window",
            "--duration",
            "1h",
        ],
    );
    app.click_until(&button("Sign out"), &button("bob@contoso.example"), 20)
        .await;

    // bob signs in to the app: his inbox shows her request, and he approves it there.
    dunstctl(&["close-all"]);
    // His watcher in the app tells him, at its first look, which may come before the popover
    // says he is signed in: what the app logs is read from before the click.
    let logged_before = app.log().len();
    app.click(&button("bob@contoso.example")).await;
    app.wait_for("//*[contains(., 'Signed in as bob@contoso.example')]", 20)
        .await;
    // Clicking the notification (dunst's default action) opens the popover on her request.
    // dunst clicks the first one it displays, and an urgent one comes first: any other still
    // displayed is closed before, by its id.
    let shown = |log: &str| -> Vec<(String, String)> {
        log.lines()
            .filter_map(|l| {
                l.split_once("notification ")?
                    .1
                    .split_once(" shown: opens ")
            })
            .map(|(id, opens)| (id.to_string(), opens.trim().to_string()))
            .collect()
    };
    let wanted = eventually(
        30,
        || {
            shown(app.log().get(logged_before..).unwrap_or_default())
                .into_iter()
                .find(|(_, opens)| opens.starts_with("approvals"))
                .map(|(id, _)| id)
        },
        || format!("no notification for bob: {}", app.log()),
    )
    .await;
    for (id, _) in shown(app.log().get(logged_before..).unwrap_or_default()) {
        if id != wanted {
            let _ = Command::new("gdbus")
                .args([
                    "call",
                    "--session",
                    "--dest",
                    "org.freedesktop.Notifications",
                    "--object-path",
                    "/org/freedesktop/Notifications",
                    "--method",
                    "org.freedesktop.Notifications.CloseNotification",
                    &id,
                ])
                .output();
        }
    }
    dunstctl(&["action", "0"]);
    eventually(
        10,
        || {
            app.log()
                .contains("notification action default: opening approvals:")
                .then_some(())
        },
        || format!("the notification did not open Approvals: {}", app.log()),
    )
    .await;
    app.wait_for(
        "//li[@data-request and contains(@class,'selected') and contains(., 'alice@contoso.example')]",
        20,
    )
    .await;
    wait_notification(mark, "alice@contoso.example asks for JIT Requester", 30).await;
    app.click("//nav//button[starts-with(normalize-space(.), 'Approvals')]")
        .await;
    app.wait_for(
        "//li[@data-request and contains(., 'alice@contoso.example') and contains(., 'Second patch window')]",
        20,
    )
    .await;
    app.type_into(
        "//input[@name='decision-justification']",
        "Approved in the tray",
    )
    .await;
    app.screenshot("8-approvals").await;
    app.click(&button("Approve")).await;
    app.wait_for(
        "//*[contains(., \"Approved alice@contoso.example's request\")]",
        20,
    )
    .await;
    let token = common::token(&sim, "alice@contoso.example").await;
    let requests: Value = reqwest::Client::new()
        .get(format!("{sim}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests?api-version=2020-10-01&$filter=asRequestor()"))
        .bearer_auth(token)
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    let second = requests["value"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["properties"]["justification"] == "Second patch window")
        .expect("alice's second request");
    assert_ne!(
        second["properties"]["status"], "PendingApproval",
        "{second}"
    );

    // History and Help render from the same engine.
    app.click(&button("History")).await;
    // One line per entry under its day; a click shows the entry's details.
    app.wait_for("//h3[normalize-space(.)='Today']", 20).await;
    let decided = "//li[@data-seq]/button[@aria-expanded and contains(., 'approval decided')]";
    app.click(decided).await;
    app.wait_for(
        "//li[@data-seq][button[@aria-expanded='true' and contains(., 'approval decided')]]/dl[contains(., 'Approved in the tray')]",
        10,
    )
    .await;
    app.screenshot("9-history").await;
    // The exports sit in a small menu.
    app.click("//button[@aria-haspopup='menu' and normalize-space(.)='Export']")
        .await;
    app.click("//*[@role='menu']//button[@role='menuitem' and normalize-space(.)='Export CSV']")
        .await;
    app.wait_for("//*[starts-with(normalize-space(.), 'Saved to ')]", 10)
        .await;
    let saved = app
        .text_of("//*[starts-with(normalize-space(.), 'Saved to ')]")
        .await;
    let csv = std::fs::read_to_string(saved.trim().trim_start_matches("Saved to "))
        .expect("the exported file");
    assert!(
        csv.starts_with("seq,time,who,what") && csv.contains("approval_decided"),
        "{csv}"
    );
    app.click(&button("Help")).await;
    app.click(&button("Run checks")).await;
    app.wait_for(
        "//li[@data-step='signed_in' and contains(@class,'pass')]",
        60,
    )
    .await;
    app.screenshot("10-help").await;

    // Keyboard alone: Tab reaches the History tab, Enter opens it, and the focus shows.
    const TAB: &str = "\u{E004}";
    const ENTER: &str = "\u{E007}";
    app.script("document.activeElement && document.activeElement.blur()")
        .await;
    let mut reached = false;
    for _ in 0..30 {
        app.keys(TAB).await;
        let text = app
            .script(
                "return document.activeElement ? document.activeElement.textContent.trim() : ''",
            )
            .await;
        if text == "History" {
            let outline = app
                .script("return getComputedStyle(document.activeElement).outlineStyle")
                .await;
            assert_ne!(outline, "none", "the focused tab shows no focus ring");
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the History tab");
    app.keys(ENTER).await;
    app.wait_for("//h2[normalize-space(.)='History']", 10).await;

    // Text at 200% (WCAG's resize text): the views reflow, nothing runs off the side.
    app.script("document.documentElement.style.fontSize = '200%'")
        .await;
    for view in ["Jump boxes", "Approvals", "History", "Help"] {
        app.click(&format!("//nav{}", button(view))).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let overflow = app
            .script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            .await;
        assert!(
            overflow.as_i64().unwrap_or(1) <= 1,
            "{view} at 200% runs {overflow} px off the side"
        );
    }
    app.screenshot("11-zoom-200").await;
    drop(app);

    // Dark mode follows the desktop (GTK's dark theme here).
    let dark = Driven::start(
        FIRST_PORT + 2,
        &["--demo"],
        &[("GTK_THEME", "Adwaita:dark")],
    )
    .await;
    dark.wait_for(&button("alice@contoso.example"), 20).await;
    let scheme = dark
        .script("return matchMedia('(prefers-color-scheme: dark)').matches")
        .await;
    assert_eq!(scheme, true, "WebKit did not see the dark theme");
    let background = dark
        .script("return getComputedStyle(document.body).backgroundColor")
        .await;
    assert_eq!(background, "rgb(30, 30, 30)");
    dark.screenshot("12-dark").await;
    // Every main view in the dark, signed in (a fresh demo: its empty states).
    dark.click(&button("alice@contoso.example")).await;
    dark.wait_for("//*[contains(., 'Signed in as alice@contoso.example')]", 20)
        .await;
    for (view, name) in [
        ("Jump boxes", "12-dark-targets"),
        ("Active", "12-dark-active"),
        // alice approves nothing: no Approvals (the gallery shows it in the dark, with five).
        ("History", "12-dark-history"),
        ("Help", "12-dark-help"),
    ] {
        dark.click(&format!("//nav{}", button(view))).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let overflow = dark
            .script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            .await;
        assert!(
            overflow.as_i64().unwrap_or(1) <= 1,
            "{view} runs {overflow} px off the side in the dark"
        );
        dark.screenshot(name).await;
    }
    assert!(
        !dark
            .present("//nav//button[starts-with(normalize-space(.), 'Approvals')]")
            .await,
        "alice, who approves nothing, is offered Approvals"
    );
    dark.click(&format!("//nav{}", button("Jump boxes"))).await;
    dark.click(&button("Connect to jumpbox-win-01")).await;
    dark.wait_for(&connect_button(), 10).await;
    dark.screenshot("12-dark-connect").await;
}

/// The `gallery` tenant's requesters (crates/sim/tenants/gallery.toml), and the manager the
/// gallery signs in as, who approves their requests.
const GALLERY_DOMAIN: &str = "platform-engineering.contoso-europe.example";
const GALLERY_MANAGER: &str = "maximiliane.oberhauser-vandenberg";
const GALLERY_REQUESTS: [(&str, &str, Option<&str>, &str); 5] = [
    (
        "aleksandr.konstantinopoulos",
        "Rotate the AKS break-glass credentials after the quarterly access review",
        Some("ServiceNow:CHG0048213"),
        "PT2H",
    ),
    (
        "siobhan.ni-mhaolchatha",
        "Restore the reporting database from last night's backup before month-end close",
        Some("ServiceNow:INC0091377"),
        "PT1H",
    ),
    (
        "jean-baptiste.de-la-fontaine",
        "Firewall rule review with the network team",
        None,
        "PT30M",
    ),
    (
        "oluwaseun.adebayo-williams",
        "Investigate Defender alert 7f3c9a on the SAP basis jump box and collect the event logs",
        Some("Jira:SECOPS-2291"),
        "PT4H",
    ),
    (
        "priyanka.venkataraman-iyer",
        "Patch Tuesday: install KB5034441 on the finance jump boxes",
        Some("ServiceNow:CHG0048299"),
        "PT3H",
    ),
];
/// The jump box the gallery connects to.
const GALLERY_VM: &str = "jumpbox-windows-server-2022-datacenter-azure-edition-01";

/// `upn` asks for their eligible role through ARM, as the portal would, and the request waits
/// for its approver.
async fn request_as(
    sim: &common::DemoSim,
    upn: &str,
    justification: &str,
    ticket: Option<&str>,
    duration: &str,
) {
    const PIM: &str = "api-version=2020-10-01";
    let http = reqwest::Client::new();
    let token = common::token(sim, upn).await;
    let eligible: Value = http
        .get(format!("{sim}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?{PIM}&$filter=asTarget()"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("eligibilities")
        .json()
        .await
        .expect("json");
    let e = &eligible["value"][0]["properties"];
    let scope = e["scope"].as_str().expect("an eligibility");
    let mut properties = json!({
        "principalId": e["principalId"],
        "roleDefinitionId": e["roleDefinitionId"],
        "requestType": "SelfActivate",
        "justification": justification,
        "linkedRoleEligibilityScheduleId": e["roleEligibilityScheduleId"],
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": duration}},
    });
    if let Some((system, number)) = ticket.and_then(|t| t.split_once(':')) {
        properties["ticketInfo"] = json!({"ticketSystem": system, "ticketNumber": number});
    }
    let answer = http
        .put(format!(
            "{sim}{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?{PIM}",
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(&token)
        .json(&json!({ "properties": properties }))
        .send()
        .await
        .expect("request");
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or_default();
    assert!(status.is_success(), "{upn}'s request: {status} {body}");
    assert_eq!(body["properties"]["status"], "PendingApproval", "{body}");
}

/// What runs off the side, in the page and in the main views (a list of sentences; empty
/// when everything fits). The page must not scroll sideways, and no text may run out of the
/// box it is laid out in unless that box is meant to scroll (`overflow-x: auto | scroll`;
/// form fields scroll their own text). Text cut short with an ellipsis must carry its whole
/// in a `title`. Text only screen readers get (a 1 px clipped box) is not looked at.
const FIT: &str = r#"
const root = document.documentElement;
const problems = [];
if (root.scrollWidth > root.clientWidth) {
  problems.push(`the page scrolls sideways: ${root.scrollWidth} px in ${root.clientWidth} px`);
}
const name = (el) => el.tagName.toLowerCase() + (typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\s+/).join(".") : "");
/** Text a screen reader reads but nobody sees (a 1 px clipped box), or a field's own. */
const unseen = (el) => {
  for (let a = el; a && a !== document.body; a = a.parentElement) {
    if (["SELECT", "TEXTAREA", "OPTION"].includes(a.tagName) || a.closest("svg")) return true;
    if (getComputedStyle(a).position === "absolute" && a.clientWidth <= 1) return true;
  }
  return false;
};
const walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const text = node.textContent.trim().replace(/\s+/g, " ");
  if (!text || unseen(node.parentElement)) continue;
  // The box the text is laid out in: its nearest ancestor that is not inline.
  let box = node.parentElement;
  while (box.parentElement && ["inline", "contents"].includes(getComputedStyle(box).display)) box = box.parentElement;
  if (!box.getClientRects().length) continue;
  const range = document.createRange();
  range.selectNodeContents(node);
  const t = range.getBoundingClientRect();
  if (!t.width) continue;
  const b = box.getBoundingClientRect();
  const left = b.left + box.clientLeft;
  const right = left + box.clientWidth;
  if (t.left >= left - 1 && t.right <= right + 1) continue;
  const cs = getComputedStyle(box);
  if (["auto", "scroll"].includes(cs.overflowX)) continue;
  if (cs.textOverflow === "ellipsis" && cs.overflowX !== "visible") {
    const whole = box.closest("[title]")?.getAttribute("title") || box.getAttribute("aria-label");
    if (!whole) problems.push(`${name(box)} cuts "${text.slice(0, 60)}" short with no title holding the whole`);
    continue;
  }
  problems.push(`${name(box)}: "${text.slice(0, 60)}" runs ${Math.round(Math.max(t.right - right, left - t.left))} px out of its ${Math.round(box.clientWidth)} px box`);
}
return problems;
"#;

/// Shows the page as a person who asked for dark colours or more contrast sees it: the
/// stylesheet's own media rules for those preferences are switched on (and the others off),
/// as a browser's emulation does, since WebDriver cannot set the preference. Rules that
/// test anything else (reduced motion) are left to the browser.
fn emulate(dark: bool, contrast: bool) -> String {
    format!(
        r#"
const DARK = {dark}, CONTRAST = {contrast};
if (!window.__rules) {{
  window.__rules = [];
  for (const sheet of document.styleSheets)
    for (const rule of sheet.cssRules)
      if (rule.type === CSSRule.MEDIA_RULE) window.__rules.push([rule, rule.media.mediaText]);
}}
const holds = (feature) => {{
  const f = feature.trim().replace(/^\(|\)$/g, "").replace(/\s+/g, " ");
  if (f === "prefers-color-scheme: dark") return DARK;
  if (f === "prefers-color-scheme: light") return !DARK;
  if (f === "prefers-contrast: more") return CONTRAST;
  if (f === "forced-colors: active") return false;
  return null;
}};
for (const [rule, text] of window.__rules) {{
  const alternatives = text.split(",").map((alt) => alt.split(/\band\b/).map(holds));
  if (alternatives.some((alt) => alt.includes(null))) continue;
  rule.media.mediaText = alternatives.some((alt) => alt.every(Boolean)) ? "all" : "not all";
}}
const root = document.documentElement;
root.style.colorScheme = DARK ? "dark" : "light";
return getComputedStyle(root).getPropertyValue("--bg").trim();
"#
    )
}

impl Driven {
    /// The problems [`FIT`] finds on the view on screen.
    async fn misfits(&self) -> Vec<String> {
        let found = self.script(FIT).await;
        found
            .as_array()
            .unwrap_or_else(|| panic!("the fit check did not run: {found}"))
            .iter()
            .map(|p| p.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Opens one of the gallery's views and waits until it shows its data.
    async fn show(&self, view: &str) {
        let nav =
            |label: &str| format!("//nav//button[starts-with(normalize-space(.), '{label}')]");
        match view {
            "targets" | "connect" => {
                self.click(&nav("Jump boxes")).await;
                self.wait_for("//ul[contains(@class,'targets') and count(li)=12]", 20)
                    .await;
                if view == "connect" {
                    self.click(&button(&format!("Connect to {GALLERY_VM}")))
                        .await;
                    self.wait_for(&connect_button(), 10).await;
                    self.type_into(
                        "//input[@name='justification']",
                        "Quarterly patching of the platform jump boxes, change CHG0048310",
                    )
                    .await;
                    self.type_into("//input[@name='ticket']", "ServiceNow:CHG0048310")
                        .await;
                    self.wait_for(&format!("{}[not(@disabled)]", connect_button()), 10)
                        .await;
                }
            }
            "active" => {
                self.click(&nav("Active")).await;
                self.wait_for(
                    &format!("//li[contains(., '{GALLERY_VM} port 3389')]//span[contains(@class,'countdown')]"),
                    20,
                )
                .await;
            }
            "approvals" => {
                self.click(&nav("Approvals")).await;
                self.wait_for("//ul[count(li[@data-request])=5]", 20).await;
            }
            "history" => {
                self.click(&nav("History")).await;
                self.wait_for("//li[@data-seq]", 20).await;
            }
            "help" => {
                self.click(&nav("Help")).await;
                self.click(&button("Run checks")).await;
                self.wait_for(
                    "//li[@data-step='signed_in' and contains(@class,'pass')]",
                    60,
                )
                .await;
            }
            other => panic!("no gallery view {other}"),
        }
        // Fonts and the last layout settle; the screenshot shows the top of the view.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.script("document.activeElement && document.activeElement.blur(); document.scrollingElement.scrollTop = 0")
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue #14's fit test and the README's gallery: the demo on an enterprise-sized tenant
/// (`JUMPGATE_DEMO_TENANT`: long UPNs and resource-group names, 12 jump boxes, five requests
/// waiting for the manager signed in), every main view in light, dark and more contrast at
/// 360 × 560, each checked for anything running off the side; then text at 200%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_fits_the_popover_with_enterprise_data() {
    jumpgate_azure::init_tls();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/sim/tenants/gallery.toml")
        .canonicalize()
        .expect("the gallery tenant");
    let fixture = fixture.to_str().expect("a UTF-8 path");
    let app = Driven::start(
        FIRST_PORT + 8,
        &["--demo"],
        &[("JUMPGATE_DEMO_TENANT", fixture)],
    )
    .await;
    let sim = sim_url(&app.demo_config().await);
    let manager = format!("{GALLERY_MANAGER}@{GALLERY_DOMAIN}");

    // Five requests from the manager's people, asked over the last 20 minutes.
    for (n, (user, justification, ticket, duration)) in GALLERY_REQUESTS.iter().enumerate() {
        request_as(
            &sim,
            &format!("{user}@{GALLERY_DOMAIN}"),
            justification,
            *ticket,
            duration,
        )
        .await;
        let minutes = [11, 4, 6, 2, 0][n];
        sim.control(reqwest::Method::POST, "/clock/advance")
            .json(&json!({"seconds": minutes * 60}))
            .send()
            .await
            .expect("advance");
    }

    // The sign-in view offers the tenant's users, long names and all.
    app.wait_for(&button(&manager), 20).await;
    app.click(&button(&manager)).await;
    app.wait_for(&format!("//*[contains(., 'Signed in as {manager}')]"), 20)
        .await;
    app.wait_for(
        "//nav//button[starts-with(normalize-space(.), 'Approvals')]",
        20,
    )
    .await;

    // She opens a jump box herself (her role needs no approval), so Active has something.
    app.show("connect").await;
    app.click("//input[@name='launch']").await;
    app.click(&format!("{}[not(@disabled)]", connect_button()))
        .await;
    app.wait_for(
        "//li[@data-step='await_reachable' and contains(@class,'done')]",
        90,
    )
    .await;

    // A favourite is the app's to keep, not the webview's (the popover's process ends when
    // it closes): a new page shows it starred, and the webview's storage is empty.
    app.show("targets").await;
    let star = app
        .script(
            "const stars = [...document.querySelectorAll('button[aria-label^=\"Favourite \"]')];
             return stars[stars.length - 1].getAttribute('aria-label');",
        )
        .await;
    let star = star.as_str().expect("a star's label").to_string();
    app.click(&format!("//button[@aria-label='{star}']")).await;
    app.wait_for(
        &format!("//button[@aria-label='{star}' and @aria-pressed='true']"),
        10,
    )
    .await;
    app.script("setTimeout(() => location.reload(), 0)").await;
    app.wait_for(
        &format!("//button[@aria-label='{star}' and @aria-pressed='true']"),
        20,
    )
    .await;
    assert_eq!(app.script("return localStorage.length").await, json!(0));

    // The fit check finds what it is for: text wider than its box, and text cut short with
    // no title (probes added to the view for a moment, through the CSSOM the CSP allows).
    app.script(
        "const main = document.querySelector('main');
         const wide = document.createElement('p');
         wide.className = 'fit-probe';
         wide.textContent = 'a-name-with-no-place-to-break-it-that-is-wider-than-the-popover';
         wide.style.whiteSpace = 'nowrap';
         const cut = document.createElement('p');
         cut.className = 'fit-probe';
         cut.textContent = 'a-name-cut-short-with-an-ellipsis-and-nothing-holding-the-whole';
         Object.assign(cut.style, {whiteSpace: 'nowrap', overflow: 'hidden', textOverflow: 'ellipsis'});
         main.append(wide, cut);",
    )
    .await;
    let found = app.misfits().await;
    app.script("document.querySelectorAll('.fit-probe').forEach((p) => p.remove())")
        .await;
    assert!(
        found
            .iter()
            .any(|p| p.contains("a-name-with-no-place") && p.contains("out of its"))
            && found
                .iter()
                .any(|p| p.contains("a-name-cut-short") && p.contains("no title")),
        "the fit check missed its probes: {found:?}"
    );

    const VIEWS: [&str; 6] = [
        "targets",
        "connect",
        "active",
        "approvals",
        "history",
        "help",
    ];
    let mut misfits = Vec::new();
    for (scheme, dark, contrast, bg) in [
        ("light", false, false, "#f4f5f7"),
        ("dark", true, false, "#1e1e1e"),
        ("contrast", false, true, "#ffffff"),
    ] {
        let shown = app.script(&emulate(dark, contrast)).await;
        assert_eq!(shown, bg, "the {scheme} colours did not apply");
        for view in VIEWS {
            app.show(view).await;
            for problem in app.misfits().await {
                misfits.push(format!("{view} ({scheme}): {problem}"));
            }
            app.screenshot(&format!("gallery-{view}-{scheme}")).await;
        }
    }
    assert!(
        misfits.is_empty(),
        "runs off the side at 360 px:
{}",
        misfits.join(
            "
"
        )
    );

    // Text at 200% (WCAG's resize text): every view reflows, and the same check holds.
    app.script(&emulate(false, false)).await;
    app.script("document.documentElement.style.fontSize = '200%'")
        .await;
    for view in VIEWS {
        app.show(view).await;
        for problem in app.misfits().await {
            misfits.push(format!("{view} (200%): {problem}"));
        }
        app.screenshot(&format!("gallery-{view}-200")).await;
    }
    assert!(
        misfits.is_empty(),
        "runs off the side at 200% text:\n{}",
        misfits.join("\n")
    );
}

/// Outside demo mode, against a separately started jumpgate-sim: Sign in hands the
/// authorize URL to the system browser (a stand-in `xdg-open` here, which records it), and
/// the app completes the PKCE flow on its loopback listener once the user has signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_goes_through_the_system_browser() {
    jumpgate_azure::init_tls();
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("config.toml");
    let (mut sim, _) = serve_sim("demo", &config);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[storage]\nstate_dir = \"{}\"\nkeyring_service = \"jumpgate-e2e-browser-{}\"\n",
        dir.path().join("state").display(),
        std::process::id()
    ));
    std::fs::write(&config, text).expect("config");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let opened = dir.path().join("opened-url");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .expect("xdg-open");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config_arg = config.display().to_string();
    let app = Driven::start(
        FIRST_PORT + 4,
        &["--config", &config_arg],
        &[("PATH", &path)],
    )
    .await;

    app.click(&button("Sign in")).await;
    app.wait_for(&button("Cancel"), 10).await;
    let url = eventually(
        20,
        || {
            std::fs::read_to_string(&opened)
                .ok()
                .filter(|u| !u.is_empty())
        },
        || {
            format!(
                "the system browser was never asked to open the sign-in page: {}",
                app.log()
            )
        },
    )
    .await;
    assert!(
        url.contains("code_challenge_method=S256")
            && url.contains("redirect_uri=http%3A%2F%2Flocalhost%3A"),
        "{url}"
    );
    play_browser(&url, "alice@contoso.example").await;
    app.wait_for("//*[contains(., 'Signed in as alice@contoso.example')]", 20)
        .await;
    app.screenshot("13-browser-sign-in").await;
    drop(app);
    let _ = sim.kill();
    let _ = sim.wait();
}

/// The first run: started with no configuration (only the organisation's system file, which
/// points Jumpgate at a separately started jumpgate-sim), the app shows its first-run form;
/// a work email, the authority and the demo tenant's client id set it up, and it goes on to
/// Sign in (through the system browser, a stand-in here) without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_sets_the_app_up_from_a_work_email() {
    jumpgate_azure::init_tls();
    let dir = tempfile::tempdir().expect("dir");
    let sim_config = dir.path().join("sim.toml");
    let (mut sim, url) = serve_sim("demo", &sim_config);
    // The organisation's file: the simulator's endpoints, but no tenant and no client.
    let settings: String = std::fs::read_to_string(&sim_config)
        .expect("config")
        .lines()
        .filter(|l| !l.starts_with("tenant_id") && !l.starts_with("client_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    let system = dir.path().join("system.toml");
    std::fs::write(
        &system,
        format!(
            "{settings}\n[storage]\nstate_dir = \"{}\"\nkeyring_service = \"jumpgate-e2e-first-run-{}\"\n",
            dir.path().join("state").display(),
            std::process::id()
        ),
    )
    .expect("system file");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let opened = dir.path().join("opened-url");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .expect("xdg-open");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let system_arg = system.display().to_string();
    let app = Driven::start(
        FIRST_PORT + 6,
        &[],
        &[("PATH", &path), ("JUMPGATE_SYSTEM_CONFIG", &system_arg)],
    )
    .await;

    app.wait_for("//h2[normalize-space(.)='Set up Jumpgate']", 20)
        .await;
    app.screenshot("14-first-run").await;
    app.type_into("//input[@name='email']", "alice@contoso.example")
        .await;
    app.type_into(
        "//input[@name='client_id']",
        "4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51",
    )
    .await;
    app.click("//summary[contains(., 'Another cloud')]").await;
    app.type_into("//input[@name='authority']", &url).await;
    app.screenshot("15-first-run-filled").await;
    app.click(&button("Save and continue")).await;

    // Set up: the signed-out view, with the tray icon now there.
    app.wait_for(&button("Sign in"), 30).await;
    app.wait_for(
        "//*[contains(., 'Jumpgate is set up for contoso.example')]",
        5,
    )
    .await;
    app.screenshot("16-first-run-done").await;
    let written = app.home.path().join(".config/jumpgate/config.toml");
    let text = std::fs::read_to_string(&written).expect("the configuration");
    assert!(
        text.contains("tenant_id = \"7b3f6c1e-2a4d-4e8b-9f10-5c6d7e8f9a01\"")
            && text.contains("client_id = \"4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51\"")
            && text.contains(&format!("authority_host = \"{url}\"")),
        "{text}"
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&written)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    eventually(
        20,
        || app.log().contains("tray icon ready").then_some(()),
        || format!("no tray icon after the first run: {}", app.log()),
    )
    .await;

    // And on to Sign in, through the system browser.
    app.click(&button("Sign in")).await;
    let authorize = eventually(
        20,
        || {
            std::fs::read_to_string(&opened)
                .ok()
                .filter(|u| !u.is_empty())
        },
        || format!("the system browser was never asked: {}", app.log()),
    )
    .await;
    assert!(
        authorize.starts_with(&format!(
            "{url}/7b3f6c1e-2a4d-4e8b-9f10-5c6d7e8f9a01/oauth2/v2.0/authorize?"
        )),
        "{authorize}"
    );
    play_browser(&authorize, "alice@contoso.example").await;
    app.wait_for("//*[contains(., 'Signed in as alice@contoso.example')]", 30)
        .await;
    app.wait_for("//*[contains(., 'jumpbox-win-01')]", 30).await;
    app.screenshot("17-first-run-signed-in").await;
    drop(app);
    let _ = sim.kill();
    let _ = sim.wait();
}

/// Issue #19: someone with no standing access (frank, in the `enterprise` tenant, only an
/// eligible member of "JIT Operators") is shown what he could reach and how, never an empty
/// list, and can activate the membership from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_without_standing_access_sees_what_they_can_reach() {
    jumpgate_azure::init_tls();
    let app = Driven::start(
        FIRST_PORT + 10,
        &["--demo"],
        &[("JUMPGATE_DEMO_TENANT", "enterprise")],
    )
    .await;
    let sim = sim_url(&app.demo_config().await);
    app.wait_for(&button("frank@contoso.example"), 20).await;
    app.click(&button("frank@contoso.example")).await;
    app.wait_for("//*[contains(., 'Signed in as frank@contoso.example')]", 20)
        .await;
    app.wait_for("//h3[normalize-space(.)='Nothing to connect to yet']", 30)
        .await;
    let card = "//li[@data-way='JIT Operators']";
    app.wait_for(card, 10).await;
    let shown = app.text_of(card).await;
    assert!(shown.contains("group"), "{shown}");
    assert!(
        shown.contains("jumpgate activate group:'JIT Operators'"),
        "the command that activates it: {shown}"
    );
    assert!(
        app.present(&format!("{card}//button[normalize-space(.)='Activate…']"))
            .await,
        "and a button"
    );
    app.screenshot("zero-standing-access").await;

    // The button activates the membership: bob is asked.
    app.click(&format!("{card}//button[normalize-space(.)='Activate…']"))
        .await;
    app.type_into("//input[@name='activate-justification']", "Patch night")
        .await;
    app.click(&format!("{card}//button[@type='submit']")).await;
    app.wait_for("//p[@role='status' and contains(., 'JIT Operators')]", 30)
        .await;
    let token: Value = sim
        .control(reqwest::Method::POST, "/token")
        .json(&json!({"upn": "bob@contoso.example", "resource": "graph",
            "scope": "PrivilegedAssignmentSchedule.Read.AzureADGroup"}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["access_token"].as_str().expect("a Graph token");
    let waiting: Value = reqwest::Client::new()
        .get(format!("{sim}/v1.0/identityGovernance/privilegedAccess/group/assignmentApprovals/filterByCurrentUser(on='approver')"))
        .bearer_auth(token)
        .send()
        .await
        .expect("approvals")
        .json()
        .await
        .expect("json");
    assert_eq!(
        waiting["value"].as_array().map(Vec::len),
        Some(1),
        "bob is asked: {waiting}"
    );
    app.screenshot("zero-standing-access-asked").await;
}

/// Issue #20 (H1): a name two jump boxes share is never resolved to one of them. In the
/// `enterprise` tenant `jumpbox-win-01` is in rg-jumpboxes ("Contoso Jump Boxes") and in
/// rg-legacy ("Contoso Legacy"); dave, Owner of every subscription, reads both. A link naming
/// it fills nothing in until he picks one, and then fills in that one; a link carrying the
/// resource id, and the tray menu's entry, open their VM directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_a_name_two_jump_boxes_share_asks_which_one() {
    const JUMP_BOXES: &str = "/subscriptions/9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01";
    const LEGACY: &str = "/subscriptions/2f6a8c0e-4b3d-4c5e-9a7b-8c9d0e1f2a34/resourceGroups/rg-legacy/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01";
    jumpgate_azure::init_tls();
    let app = Driven::start(
        FIRST_PORT + 12,
        &["--demo"],
        &[("JUMPGATE_DEMO_TENANT", "enterprise")],
    )
    .await;
    app.click(&button("dave@contoso.example")).await;
    app.wait_for("//*[contains(., 'Signed in as dave@contoso.example')]", 20)
        .await;
    // The list says where each is.
    app.wait_for(&button("Connect to jumpbox-win-01 in rg-legacy"), 30)
        .await;
    assert!(
        app.present(&button("Connect to jumpbox-win-01 in rg-jumpboxes"))
            .await
    );

    // A link by name: the popover asks which, and fills nothing in meanwhile.
    app.open_link(
        "jumpgate://connect?vm=jumpbox-win-01&port=3389&duration=PT2H&justification=Patch%20night%20KB5034441",
    );
    app.wait_for("//h2[normalize-space(.)='Which jumpbox-win-01?']", 20)
        .await;
    assert_eq!(app.field("justification").await, Value::Null);
    assert!(!app.present("//*[contains(., 'Filled in')]").await);
    let offered = |id: &str| format!("//ul[contains(@class,'choices')]/li[@data-vm-id='{id}']");
    let jump_boxes = app.text_of(&offered(JUMP_BOXES)).await;
    let legacy = app.text_of(&offered(LEGACY)).await;
    assert!(
        jump_boxes.contains("rg-jumpboxes") && jump_boxes.contains("Contoso Jump Boxes"),
        "{jump_boxes}"
    );
    assert!(
        legacy.contains("rg-legacy") && legacy.contains("Contoso Legacy"),
        "{legacy}"
    );
    let choices = app
        .script("return document.querySelectorAll('ul.choices > li').length")
        .await;
    assert_eq!(choices, 2);
    app.screenshot("same-name-choice").await;

    // Choosing one opens its form, with the link's values, and says where it is.
    app.click(&button(
        "Choose jumpbox-win-01 in rg-legacy, Contoso Legacy",
    ))
    .await;
    app.wait_for(
        "//h2[normalize-space(.)='Connect to jumpbox-win-01 in rg-legacy (Contoso Legacy)']",
        20,
    )
    .await;
    app.wait_for("//*[contains(., 'Filled in from a link')]", 10)
        .await;
    assert_eq!(app.field("justification").await, "Patch night KB5034441");
    assert_eq!(app.field("duration").await, "PT2H");
    assert_eq!(app.field("port").await, "3389");
    app.screenshot("same-name-chosen").await;

    // A link carrying the resource id opens that VM at once.
    app.open_link(&format!(
        "jumpgate://connect?vm={JUMP_BOXES}&port=3389&justification=Incident%204711"
    ));
    app.wait_for(
        "//h2[normalize-space(.)='Connect to jumpbox-win-01 in rg-jumpboxes (Contoso Jump Boxes)']",
        20,
    )
    .await;
    assert_eq!(app.field("justification").await, "Incident 4711");
    assert!(!app.present("//h2[starts-with(., 'Which')]").await);

    // The tray menu has an entry per VM, keyed by its resource id: Open, then the jump boxes
    // as ARM lists them (rg-jumpboxes' two, rg-jumpboxes-secure's, rg-legacy's).
    app.click(&button("Back to jump boxes")).await;
    tray_menu_pick(5);
    app.wait_for(
        "//h2[normalize-space(.)='Connect to jumpbox-win-01 in rg-legacy (Contoso Legacy)']",
        20,
    )
    .await;
    assert!(
        app.log().contains(&format!("tray menu: connect:{LEGACY}")),
        "{}",
        app.log()
    );
    assert_eq!(app.field("justification").await, "");
}

/// The tray menu's "Run Morning checks" (the demo's profile) asks for it all in the
/// background: alice's role, which bob approves, then the Linux jump box's SSH port opened
/// for her address. One notification says it is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_runs_from_the_tray_menu() {
    jumpgate_azure::init_tls();
    let mark = notification_mark();
    let app = Driven::start(FIRST_PORT + 14, &["--demo"], &[]).await;
    let config = app.demo_config().await;
    let sim = sim_url(&config);
    app.click(&button("alice@contoso.example")).await;
    app.wait_for("//*[contains(., 'Signed in as alice@contoso.example')]", 20)
        .await;
    app.wait_for(&button("Connect to jumpbox-win-01"), 20).await;

    // Open, the two jump boxes, then the profile (the first Down selects Open).
    tray_menu_pick(4);
    eventually(
        20,
        || app.log().contains("tray menu: profile:").then_some(()),
        || format!("the menu entry was not picked: {}", app.log()),
    )
    .await;
    approval_waits_for(&sim, "bob@contoso.example", 30).await;
    approve_as(&sim, "bob@contoso.example", "Morning, go ahead").await;
    let seen = wait_notification(mark, "Morning checks is ready", 120).await;
    assert!(
        seen.contains("Active: JIT Requester. jumpbox-linux-01 port 22 is open for you."),
        "{seen}"
    );
    let log = app.log();
    assert!(log.contains("tray menu: profile:Morning checks"), "{log}");
    // The justification is the profile's, with its placeholders filled in.
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let history = cli(&config, &["--json", "history", "--format", "json"]);
    assert!(
        history.contains(&format!("Morning checks on {today}")),
        "{history}"
    );
}

/// Several tenants: the configuration's `[azure]` is Contoso's demo tenant, and a
/// `[[tenants]]` entry names Fabrikam, another simulator, where alice is a guest. She is
/// signed in to Fabrikam only, with Reader active there. The popover opens on `default`
/// (Sign in), and its Tenant choice switches to Fabrikam, where she is signed in, and back;
/// Fabrikam's watcher reminds her before Reader ends, in a notification that names Fabrikam.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_popover_switches_tenant() {
    jumpgate_azure::init_tls();
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("config.toml");
    let fabrikam_config = dir.path().join("fabrikam.toml");
    let (mut contoso, _) = serve_sim("demo", &config);
    let (mut fabrikam, _) = serve_sim("fabrikam", &fabrikam_config);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[storage]\nstate_dir = \"{}\"\nkeyring_service = \"jumpgate-e2e-tenants-{}\"\n\n[watch]\nopen_refresh_secs = 2\n\n{}",
        dir.path().join("state").display(),
        std::process::id(),
        jumpgate_tests::tenant_entry(
            &std::fs::read_to_string(&fabrikam_config).expect("fabrikam's configuration"),
            "fabrikam"
        )
    ));
    std::fs::write(&config, text).expect("config");
    let config_arg = config.display().to_string();

    // alice signs in to Fabrikam, as the guest its directory knows, from a terminal.
    let guest = "alice_contoso.example#EXT#@fabrikam.example";
    let mut child = Command::new(jumpgate())
        .args(["--config", &config_arg, "--tenant", "fabrikam"])
        .args(["signin", "--no-open", "--user", guest])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("signin");
    let mut line = String::new();
    {
        use std::io::BufRead as _;
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("authorize URL");
    }
    play_browser(line.trim(), guest).await;
    assert!(child.wait().expect("signin").success());
    let out = Command::new(jumpgate())
        .args([
            "--config",
            &config_arg,
            "--tenant",
            "fabrikam",
            "activate",
            "Reader",
        ])
        .args([
            "--justification",
            "Month-end checks",
            "--duration",
            "20m",
            "--wait=1m",
        ])
        .output()
        .expect("activate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mark = notification_mark();
    let app = Driven::start(FIRST_PORT + 16, &["--config", &config_arg], &[]).await;
    let choice = "//label[contains(., 'Tenant')]/select";
    app.wait_for(choice, 20).await;
    app.wait_for(&button("Sign in"), 20).await;
    app.click(&format!("{choice}/option[@value='fabrikam']"))
        .await;
    app.wait_for("//*[contains(., 'Signed in as alice@contoso.example')]", 30)
        .await;
    assert!(
        !app.present(&button("Sign in")).await,
        "signed in to Fabrikam"
    );
    app.screenshot("tenant-switched").await;
    app.click(&format!("{choice}/option[@value='default']"))
        .await;
    app.wait_for(&button("Sign in"), 30).await;
    assert!(
        app.log().contains("the popover works in tenant default"),
        "{}",
        app.log()
    );

    // Fabrikam's clock passes Reader's 15-minute mark: its watcher, one of the app's two,
    // says so, and the notification names the tenant.
    let fab = sim_url(&fabrikam_config.display().to_string());
    fab.control(reqwest::Method::POST, "/clock/advance")
        .json(&json!({"seconds": 6 * 60}))
        .send()
        .await
        .expect("advance");
    let seen = wait_notification(mark, "fabrikam: ", 60).await;
    assert!(seen.contains("Reader"), "{seen}");
    drop(app);
    for sim in [&mut contoso, &mut fabrikam] {
        let _ = sim.kill();
        let _ = sim.wait();
    }
}
