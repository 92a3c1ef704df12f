//! The first run: no configuration at all, `jumpgate init` with a work email, a sign-in, and
//! a connection. The simulator's own settings (its ARM address and audiences, its echo
//! services, the loopback jump boxes) come from a system-wide file, as an organisation's
//! would; `init` writes only what a person would: the tenant, the client id, the authority.

use std::io::{BufRead as _, BufReader};
#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::*;

/// The demo tenant's app registration for Jumpgate.
const DEMO_CLIENT: &str = "4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51";
const DEMO_TENANT: &str = "7b3f6c1e-2a4d-4e8b-9f10-5c6d7e8f9a01";

/// A person's account with nothing of Jumpgate's in it yet, and the organisation's system
/// file pointing Jumpgate at the simulator.
struct Fresh {
    home: tempfile::TempDir,
    system: PathBuf,
    path: Option<String>,
}

impl Fresh {
    fn new(sim: &Sim) -> Fresh {
        let home = tempfile::tempdir().expect("home");
        let system = home.path().join("system.toml");
        // The simulator's file without its tenant and client: those are the first run's.
        let settings: String = std::fs::read_to_string(sim.dir.path().join("sim.toml"))
            .expect("sim config")
            .lines()
            .filter(|l| !l.starts_with("tenant_id") && !l.starts_with("client_id"))
            .map(|l| format!("{l}\n"))
            .collect();
        let service = format!("jumpgate-test-{}", uuid::Uuid::new_v4().simple());
        std::fs::write(
            &system,
            format!("{settings}\n[storage]\nkeyring_service = \"{service}\"\n"),
        )
        .expect("system file");
        Fresh {
            home,
            system,
            path: None,
        }
    }

    /// Where the first run must put the user's file.
    fn config(&self) -> PathBuf {
        self.home.path().join(".config/jumpgate/config.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(jumpgate());
        c.args(args);
        self.prepare(&mut c);
        c
    }

    /// This account's environment for a program: its home, no user's file, the system file.
    fn prepare(&self, c: &mut Command) {
        c.env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("XDG_DATA_HOME", self.home.path().join(".local/share"))
            .env_remove("JUMPGATE_CONFIG")
            .env("JUMPGATE_SYSTEM_CONFIG", &self.system)
            .stdin(Stdio::null());
        if let Some(p) = &self.path {
            c.env("PATH", p);
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("jumpgate")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "jumpgate {args:?}: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_from_a_work_email_to_an_open_port() {
    let sim = Sim::start("demo", 0);
    let alice = Fresh::new(&sim);
    // Without a configuration, every command says how to make one.
    let before = alice.run(&["whoami"]);
    assert!(!before.status.success());
    assert!(
        text(&before.stderr).contains("run jumpgate init"),
        "{}",
        text(&before.stderr)
    );

    // init finds the tenant from the email, writes the file, then signs in (the browser
    // played here, as in the other tests).
    let mut init = alice
        .command(&[
            "init",
            "--email",
            ALICE,
            "--client-id",
            DEMO_CLIENT,
            "--authority",
            &sim.url,
            "--no-open",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("init");
    let mut stdout = BufReader::new(init.stdout.take().expect("stdout"));
    let mut url = String::new();
    stdout.read_line(&mut url).expect("authorize URL");
    assert!(
        url.starts_with(&format!("{}/{DEMO_TENANT}/oauth2/v2.0/authorize?", sim.url)),
        "{url}"
    );
    assert!(url.contains("login_hint=alice%40contoso.example"), "{url}");
    play_browser(&sim, url.trim(), ALICE).await;
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("stdout");
    let status = init.wait().expect("init");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut init.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(status.success(), "{stderr}");
    assert!(
        rest.contains("Signed in as alice@contoso.example"),
        "{rest}"
    );
    assert!(
        stderr.contains("looking up the organisation behind contoso.example"),
        "{stderr}"
    );

    // The file holds what a person would write, privately.
    let written = std::fs::read_to_string(alice.config()).expect("the user's file");
    assert!(
        written.contains(&format!("tenant_id = \"{DEMO_TENANT}\"")),
        "{written}"
    );
    assert!(
        written.contains(&format!("client_id = \"{DEMO_CLIENT}\"")),
        "{written}"
    );
    assert!(
        written.contains(&format!("authority_host = \"{}\"", sim.url)),
        "{written}"
    );
    assert!(!written.contains("arm_endpoint") && !written.contains("control_token"));
    #[cfg(unix)]
    assert_eq!(mode(&alice.config()), 0o600);
    assert_eq!(alice.json(&["whoami"])["upn"], ALICE);

    // And she connects as anyone configured by hand does, bob approving.
    let bob = sim.user(BOB);
    sim.sign_in(&bob).await;
    let connect = alice
        .command(&[
            "--json",
            "connect",
            "jumpbox-win-01",
            "--justification",
            "First day on the jump box",
            "--duration",
            "1h",
            "--no-launch",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("connect");
    let item = wait_for_inbox(&bob).await;
    assert_eq!(item["requester"], ALICE);
    let approved = bob.run(&[
        "approve",
        item["id"].as_str().expect("id"),
        "--justification",
        "Welcome",
    ]);
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let out = connect.wait_with_output().expect("connect");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        result["steps"]
            .as_array()
            .expect("steps")
            .last()
            .expect("a step")["step"],
        "await_reachable"
    );
    let addr = result["connect_to"].as_str().expect("address");
    assert!(gate_admits(addr, "127.0.0.1").await, "alice is let through");
}

/// The sign-in page of the simulator, as a person in a browser uses it.
async fn play_browser(sim: &Sim, authorize: &str, upn: &str) {
    let url = url::Url::parse(authorize).expect("URL");
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("upn".into(), upn.into()));
    let mut action = url.clone();
    action.set_query(None);
    let answer = sim
        .http
        .post(action)
        .form(&form)
        .send()
        .await
        .expect("page");
    let location = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(location.starts_with("http://localhost:"), "{location}");
    let landed = sim.http.get(&location).send().await.expect("loopback");
    assert_eq!(landed.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_without_an_app_registration_reuses_az_login() {
    let sim = Sim::start("demo", 0);
    let mut dave = Fresh::new(&sim);
    // A stand-in for the Azure CLI, signed in as dave.
    let token = sim
        .control("/token", serde_json::json!({"upn": "dave@contoso.example"}))
        .await["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let bin = dave.home.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let calls = dave.home.path().join("az-calls");
    let expires = chrono::Utc::now().timestamp() + 3000;
    std::fs::write(bin.join("az"), format!("#!/bin/sh\necho \"$@\" >> {}\necho '{{\"accessToken\": \"{token}\", \"expires_on\": {expires}, \"tokenType\": \"Bearer\"}}'\n", calls.display())).expect("az");
    chmod_x(&bin.join("az"));
    dave.path = Some(format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    ));

    let done = dave.json(&[
        "init",
        "--email",
        "dave@contoso.example",
        "--az-cli",
        "--authority",
        &sim.url,
    ]);
    assert_eq!(done["sign_in"], "azure_cli");
    assert_eq!(done["tenant_id"], DEMO_TENANT);
    assert_eq!(done["signed_in_as"], "dave@contoso.example");
    assert_eq!(done["client_id"], Value::Null);
    let written = std::fs::read_to_string(dave.config()).expect("the user's file");
    assert!(written.contains("sign_in = \"azure_cli\""), "{written}");
    assert!(!written.contains("client_id"), "{written}");
    // az is asked in the tenant the email led to.
    let asked = std::fs::read_to_string(&calls).expect("az was called");
    assert!(
        asked.contains(&format!("--tenant {DEMO_TENANT}")),
        "{asked}"
    );
    assert_eq!(dave.json(&["whoami"])["source"], "azure_cli");
    // A plain signin follows the configuration: az again, no browser.
    assert_eq!(dave.json(&["signin"])["upn"], "dave@contoso.example");
    // The browser needs an app registration, and says so.
    let browser = dave.run(&["signin", "--browser", "--no-open"]);
    assert!(!browser.status.success());
    assert!(
        text(&browser.stderr).contains("names no app registration"),
        "{}",
        text(&browser.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_says_what_to_do_when_it_cannot_go_on() {
    let sim = Sim::start("demo", 0);
    let fresh = Fresh::new(&sim);
    let init = |email: &str, extra: &[&str]| {
        let mut args = vec!["init", "--email", email, "--no-signin"];
        args.extend_from_slice(extra);
        if !extra.contains(&"--authority") {
            args.extend_from_slice(&["--authority", &sim.url]);
        }
        fresh.run(&args)
    };
    let cases: [(&str, &[&str], &str); 5] = [
        (
            "alice@fabrikam.example",
            &["--client-id", DEMO_CLIENT],
            "knows no organisation with the domain fabrikam.example (AADSTS90002)",
        ),
        (
            "alice.contoso.example",
            &["--client-id", DEMO_CLIENT],
            "is not a work email address",
        ),
        (ALICE, &["--client-id", "not-a-guid"], "is not a GUID"),
        // Nobody at a terminal to ask: the missing flag is named.
        (ALICE, &[], "--client-id ID or --az-cli is missing"),
        (
            ALICE,
            &[
                "--client-id",
                DEMO_CLIENT,
                "--authority",
                "http://evil.example",
            ],
            "must be an https:// URL",
        ),
    ];
    for (email, extra, says) in cases {
        let out = init(email, extra);
        assert_eq!(out.status.code(), Some(1), "{email} {extra:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{email} {extra:?}: {}",
            text(&out.stderr)
        );
        assert!(!fresh.config().exists(), "nothing is written on an error");
    }
    let unknown = fresh.run(&[
        "--json",
        "init",
        "--email",
        "bob@fabrikam.example",
        "--az-cli",
        "--authority",
        &sim.url,
        "--no-signin",
    ]);
    let error: Value = serde_json::from_slice(&unknown.stdout).expect("JSON");
    assert_eq!(error["error"]["code"], "unknown_domain");

    // An existing configuration is never replaced unasked; with --force the old one is kept.
    let first = init(ALICE, &["--client-id", DEMO_CLIENT]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let before = std::fs::read_to_string(fresh.config()).expect("config");
    let again = init(ALICE, &["--az-cli"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(fresh.config()).expect("config"),
        before
    );
    let forced = init(ALICE, &["--az-cli", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    let after = std::fs::read_to_string(fresh.config()).expect("config");
    assert!(after.contains("sign_in = \"azure_cli\""), "{after}");
    let mut backup = fresh.config().into_os_string();
    backup.push(".bak");
    assert_eq!(std::fs::read_to_string(backup).expect("backup"), before);
}

/// At a terminal (a pseudo-terminal from `script` here), what the flags leave out is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_init_asks_for_what_is_missing() {
    use std::io::Write as _;
    let sim = Sim::start("demo", 0);
    let fresh = Fresh::new(&sim);
    let line = format!(
        "{} init --authority {} --no-signin",
        jumpgate().display(),
        sim.url
    );
    let mut script = Command::new("script");
    fresh.prepare(&mut script);
    let mut child = script
        .args(["-qefc", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{ALICE}\n1\n{DEMO_CLIENT}\n").as_bytes())
        .expect("answers");
    let out = child.wait_with_output().expect("script");
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    for asked in [
        "Your work email:",
        "Answer 1 or 2:",
        "The app registration's Application (client) ID:",
        "Jumpgate is set up for contoso.example",
    ] {
        assert!(shown.contains(asked), "{asked}: {shown}");
    }
    let written = std::fs::read_to_string(fresh.config()).expect("the user's file");
    assert!(
        written.contains(&format!("client_id = \"{DEMO_CLIENT}\"")),
        "{written}"
    );
}
