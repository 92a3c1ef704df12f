//! The fault matrix: the real `jumpgate` against the real simulator through the faults that
//! production meets. For every fault the same things must hold: no request is sent twice, the
//! audit journal verifies and lost nothing, no token reaches the disk or the output, and what
//! the user reads says what to do. README.md prints the matrix.

use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

/// What every row of the matrix checks, after its fault.
struct Invariants<'a> {
    sim: &'a Sim,
    user: &'a User,
    outputs: String,
}

impl<'a> Invariants<'a> {
    fn new(sim: &'a Sim, user: &'a User) -> Invariants<'a> {
        Invariants {
            sim,
            user,
            outputs: String::new(),
        }
    }

    /// Runs `jumpgate`, keeping what it printed for the token check.
    fn run(&mut self, args: &[&str]) -> Output {
        let out = self.user.run(args);
        self.keep(&out);
        out
    }

    fn keep(&mut self, out: &Output) {
        self.outputs += &text(&out.stdout);
        self.outputs += &text(&out.stderr);
    }

    /// No request twice: PIM activations by distinct name, JIT requests that Azure accepted.
    async fn check(&self, activations: usize, jit_requests: usize) {
        let events = self.sim.events().await;
        let mut names: Vec<&str> = events
            .iter()
            .filter(|e| e["kind"] == "request" && e["method"] == "PUT" && e["status"] == 201)
            .filter_map(|e| e["path"].as_str())
            .filter_map(|p| p.split("/roleAssignmentScheduleRequests/").nth(1))
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), activations, "PIM activations: {names:?}");
        let accepted = events
            .iter()
            .filter(|e| e["kind"] == "request" && e["method"] == "POST" && e["status"] == 202)
            .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/initiate")))
            .count();
        assert_eq!(accepted, jit_requests, "JIT requests accepted");
        let verify = self.user.run(&["audit", "verify"]);
        assert!(
            verify.status.success(),
            "the journal verifies: {}",
            text(&verify.stdout) + &text(&verify.stderr)
        );
        assert_no_token_leaked(
            &stored_tokens(self.user),
            &self.outputs,
            self.sim.dir.path(),
        );
    }
}

/// Says what to do: the failure names a command to run or a thing to try or ask for.
fn says_what_to_do(out: &Output) {
    let stderr = text(&out.stderr);
    assert!(
        ["run ", "try ", "ask ", "sign in", "check ", "set "]
            .iter()
            .any(|verb| stderr.to_lowercase().contains(verb)),
        "a failure that says what to do: {stderr}"
    );
}

/// alice, signed in, with the JIT role active (bob approved it) and nothing open yet.
async fn alice_with_role(sim: &Sim) -> (User, User) {
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    activate_approved(&alice, &bob, "2h").await;
    (alice, bob)
}

const OPEN: [&str; 6] = [
    "open",
    "jumpbox-win-01",
    "--duration",
    "30m",
    "--justification",
    "Patch night",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_a_429_storm() {
    let sim = Sim::start("demo", 0);
    let (alice, _bob) = alice_with_role(&sim).await;
    let mut m = Invariants::new(&sim, &alice);
    sim.control("/faults", json!({"path": "Microsoft\\.Security|Microsoft\\.Authorization", "status": 429, "retry_after": 1, "count": 6})).await;
    let out = m.run(&OPEN);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("throttling"),
        "the wait is said: {}",
        text(&out.stderr)
    );
    m.check(1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_503_with_retry_after() {
    let sim = Sim::start("demo", 0);
    let (alice, _bob) = alice_with_role(&sim).await;
    let mut m = Invariants::new(&sim, &alice);
    sim.control(
        "/faults",
        json!({"path": "/initiate", "status": 503, "retry_after": 1, "count": 2}),
    )
    .await;
    let out = m.run(&OPEN);
    assert!(out.status.success(), "{}", text(&out.stderr));
    m.check(1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_dropped_connections() {
    let sim = Sim::start("demo", 0);
    let (alice, _bob) = alice_with_role(&sim).await;
    let mut m = Invariants::new(&sim, &alice);
    // A dropped read is repeated; a dropped initiate is checked in the history first.
    sim.control(
        "/faults",
        json!({"path": "roleAssignmentScheduleInstances", "drop": true, "count": 2}),
    )
    .await;
    let out = m.run(&["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    sim.control(
        "/faults",
        json!({"path": "/initiate", "drop": true, "count": 1}),
    )
    .await;
    let out = m.run(&OPEN);
    assert!(out.status.success(), "{}", text(&out.stderr));
    m.check(1, 1).await;
}

/// `connect` stopped by `signal` once the simulator has seen `step`, then run again.
async fn stopped_at(signal: &str, step: &str) {
    let sim = Sim::start("demo", 3);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let mut m = Invariants::new(&sim, &alice);
    let connect = [
        "connect",
        "jumpbox-win-01",
        "--justification",
        "Patch night",
        "--duration",
        "30m",
        "--no-launch",
        "--timeout",
        "2m",
    ];
    let first = alice.spawn(&connect);
    let pid = first.id().to_string();
    let seen = |method: &'static str, path: &'static str| {
        let sim = &sim;
        move || async move { sim.requests_seen(method, path).await >= 1 }
    };
    match step {
        "role requested" => {
            eventually(
                step,
                Duration::from_secs(30),
                seen("PUT", "roleAssignmentScheduleRequests"),
            )
            .await
        }
        "approved" => {
            let item = wait_for_inbox(&bob).await;
            assert!(bob
                .run(&[
                    "approve",
                    item["id"].as_str().expect("id"),
                    "--justification",
                    "ok"
                ])
                .status
                .success());
            // The role waits for its propagation delay: stopped while waiting for effect.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        "port requested" => {
            // Reading the policy back is slowed, so the stop lands between sending the JIT
            // request and confirming it.
            sim.control("/faults", json!({"path": "jitNetworkAccessPolicies/default$", "latency_ms": 1500, "count": 20})).await;
            let item = wait_for_inbox(&bob).await;
            assert!(bob
                .run(&[
                    "approve",
                    item["id"].as_str().expect("id"),
                    "--justification",
                    "ok"
                ])
                .status
                .success());
            eventually(step, Duration::from_secs(30), seen("POST", "/initiate")).await;
        }
        other => panic!("no step {other}"),
    }
    let status = std::process::Command::new("kill")
        .args(["-s", signal, &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let stopped = first.wait_with_output().expect("stopped");
    m.keep(&stopped);
    assert!(
        !stopped.status.success(),
        "{signal} at {step} stopped it: {:?} {}",
        stopped.status,
        text(&stopped.stderr)
    );

    let cleared = sim
        .http
        .delete(format!("{}/_sim/faults", sim.url))
        .bearer_auth(sim.control_token())
        .send()
        .await
        .expect("clear faults");
    assert!(cleared.status().is_success());

    // Run again: the same request resumes, nothing is sent twice.
    let again = alice.spawn(&connect);
    if step == "role requested" {
        let item = wait_for_inbox(&bob).await;
        assert!(bob
            .run(&[
                "approve",
                item["id"].as_str().expect("id"),
                "--justification",
                "ok"
            ])
            .status
            .success());
    }
    let out = again.wait_with_output().expect("connect");
    m.keep(&out);
    assert!(
        out.status.success(),
        "after {signal} at {step}: {}",
        text(&out.stderr)
    );
    if step == "port requested" {
        assert!(
            text(&out.stderr).contains("an earlier run already asked JIT"),
            "the stopped run's JIT request is used, not repeated: {}",
            text(&out.stderr)
        );
    }
    m.check(1, 1).await;
    let mine = alice.json(&["requests"]);
    assert_eq!(
        mine.as_array().map(Vec::len),
        Some(1),
        "one PIM request: {mine}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_sigkill_at_every_step_of_connect() {
    for step in ["role requested", "approved", "port requested"] {
        stopped_at("KILL", step).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_sigterm_at_every_step_of_connect() {
    for step in ["role requested", "approved", "port requested"] {
        stopped_at("TERM", step).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_clock_jumps_forwards_and_backwards() {
    let sim = Sim::start("demo", 0);
    let (alice, _bob) = alice_with_role(&sim).await;
    let mut m = Invariants::new(&sim, &alice);
    assert!(m.run(&OPEN).status.success());
    // The laptop's clock off by two hours either way: time left is ARM's, not the laptop's.
    for skew in ["-2h", "+2h"] {
        let out = alice
            .command(&["--json", "status"])
            .env("FAKETIME", skew)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env(
                "LD_PRELOAD",
                "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            )
            .output()
            .expect("status");
        m.keep(&out);
        assert!(out.status.success(), "{skew}: {}", text(&out.stderr));
        let status: Value = serde_json::from_slice(&out.stdout).expect("json");
        let end = status["ports"][0]["end"].as_str().expect("an open port");
        let now = status["now"].as_str().expect("now");
        let left = chrono::DateTime::parse_from_rfc3339(end).expect("end")
            - chrono::DateTime::parse_from_rfc3339(now).expect("now");
        assert!(
            (25..=30).contains(&left.num_minutes()),
            "with the laptop {skew}, {left} left of 30 minutes"
        );
    }
    // ARM's clock itself jumps past the end: the port is gone, and nothing breaks.
    sim.advance(2 * 3600).await;
    let out = m.run(&["--json", "status"]);
    let status: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status["ports"], json!([]));
    m.check(1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_an_ip_change() {
    let sim = Sim::start("demo", 0);
    let (alice, _bob) = alice_with_role(&sim).await;
    let mut m = Invariants::new(&sim, &alice);
    assert!(m.run(&OPEN).status.success());
    sim.control("/ip", json!({"ip": "127.0.0.77"})).await;
    let doctor = m.run(&["doctor", "jumpbox-win-01"]);
    assert!(!doctor.status.success());
    assert!(
        text(&doctor.stdout).contains("127.0.0.77"),
        "doctor names the new address: {}",
        text(&doctor.stdout)
    );
    // Opening again asks for the new address: one more request, on purpose.
    let out = m.run(&[
        "--json",
        "open",
        "jumpbox-win-01",
        "--duration",
        "30m",
        "--justification",
        "Patch night",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let opened: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(opened["source"], "127.0.0.77");
    m.check(1, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_a_revoked_token() {
    let sim = Sim::start("demo", 0);
    let (alice, _bob) = alice_with_role(&sim).await;
    let canaries = stored_tokens(&alice);
    sim.control("/revoke", json!({"upn": ALICE})).await;
    sim.advance(3600).await;
    let out = alice.run(&OPEN);
    assert_eq!(out.status.code(), Some(1));
    says_what_to_do(&out);
    assert!(text(&out.stderr).contains("jumpgate signin"));
    assert_eq!(
        sim.requests_seen("POST", "/initiate").await,
        0,
        "nothing sent without a sign-in"
    );
    assert!(alice.run(&["audit", "verify"]).status.success());
    assert_no_token_leaked(
        &canaries,
        &(text(&out.stdout) + &text(&out.stderr)),
        sim.dir.path(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_no_keychain() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let out = alice
        .command(&["status"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    says_what_to_do(&out);
    assert!(
        text(&out.stderr).contains("keychain"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        walk(&alice.state)
            .iter()
            .all(|f| !f.to_string_lossy().contains("token")),
        "no token file without allow_file_fallback"
    );
}

/// A tmpfs of `size` mounted on `dir` (this needs root, as the test machines run).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root, as scripts/test.sh runs on the test machines: {}",
            text(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    fn remount(&self, how: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(&self.0)
            .output()
            .expect("remount");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_a_full_disk() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let disk = Tmpfs::mount(&alice.state, "256k");
    sim.sign_in(&alice).await;
    let mut m = Invariants::new(&sim, &alice);
    // Fill what is left.
    let filler = alice.state.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 512 * 1024]);
    let activate = [
        "activate",
        "JIT Requester",
        "--justification",
        "Patch night",
    ];
    let out = m.run(&activate);
    assert!(!out.status.success());
    says_what_to_do(&out);
    assert!(
        text(&out.stderr).to_lowercase().contains("space"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        0,
        "nothing is sent that could not be recorded first"
    );
    // With room again, the same command goes through, once.
    std::fs::remove_file(&filler).expect("free the disk");
    let out = m.run(&activate);
    assert!(out.status.success(), "{}", text(&out.stderr));
    m.check(1, 0).await;
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_a_read_only_state_directory() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let disk = Tmpfs::mount(&alice.state, "1m");
    sim.sign_in(&alice).await;
    let mut m = Invariants::new(&sim, &alice);
    assert!(m.run(&["roles"]).status.success());
    disk.remount("ro");
    let out = m.run(&[
        "activate",
        "JIT Requester",
        "--justification",
        "Patch night",
    ]);
    assert!(!out.status.success());
    says_what_to_do(&out);
    assert!(
        text(&out.stderr).contains(&alice.state.display().to_string()),
        "names the folder: {}",
        text(&out.stderr)
    );
    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        0
    );
    // Writable again, everything goes on: one request, and a journal that verifies.
    disk.remount("rw");
    let out = m.run(&[
        "activate",
        "JIT Requester",
        "--justification",
        "Patch night",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    m.check(1, 0).await;
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_a_torn_journal_line() {
    let sim = Sim::start("demo", 0);
    let (alice, _bob) = alice_with_role(&sim).await;
    let mut m = Invariants::new(&sim, &alice);
    // Power lost in the middle of an append: half a line at the end.
    let journal = alice.state.join("audit.jsonl");
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .expect("journal");
    f.write_all(br#"{"seq":99,"time":"2026-11-30T"#)
        .expect("torn");
    drop(f);
    let verify = m.run(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "a torn last line is reported, not tampering: {}",
        text(&verify.stdout) + &text(&verify.stderr)
    );
    assert!(
        (text(&verify.stdout) + &text(&verify.stderr)).contains("torn"),
        "{}",
        text(&verify.stdout)
    );
    // The next append starts on a line of its own, and the chain goes on.
    assert!(m.run(&OPEN).status.success());
    m.check(1, 1).await;
    let history = alice.json(&["history", "--format", "json"]);
    assert_eq!(
        history
            .as_array()
            .and_then(|h| h.last())
            .map(|e| e["what"].clone()),
        Some(json!("port_opened"))
    );
}
