//! RELIABILITY.md requirements, each named after its number.

#[cfg(unix)]
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
#[cfg(target_os = "linux")]
use serde_json::Value;

use crate::support::*;

// This and the next two read the Secret Service with secret-tool, or hide it.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_08_tokens_live_chunked_in_the_keychain_and_a_partial_set_is_absent() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let mut entries = keychain_entries(&alice.service);
    entries.sort();
    assert!(
        entries.len() >= 3,
        "a header and at least two chunks: {entries:?}"
    );
    let tenant = entries[0].clone();
    let header = keychain_secret(&alice.service, &tenant);
    // v2:GENERATION:COUNT:SUM, chunks named TENANT#GENERATION.INDEX.
    let generation = header
        .strip_prefix("v2:")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("{header}"))
        .to_string();
    for chunk in entries.iter().filter(|e| e.contains('#')) {
        assert!(keychain_secret(&alice.service, chunk).len() <= 1000);
    }
    // Lose one chunk: the sign-in reads as absent, not as garbage.
    let status = Command::new("secret-tool")
        .args([
            "clear",
            "service",
            &alice.service,
            "username",
            &format!("{tenant}#{generation}.1"),
        ])
        .status()
        .expect("clear");
    assert!(status.success());
    let out = alice.run(&["whoami"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not signed in"),
        "{}",
        text(&out.stderr)
    );
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_08_without_a_keychain_it_says_so_and_uses_a_file_only_when_allowed() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let out = alice
        .command(&["whoami"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no OS keychain"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("allow_file_fallback"));
    let config = std::fs::read_to_string(&alice.config)
        .expect("config")
        .replace("[storage]\n", "[storage]\nallow_file_fallback = true\n");
    std::fs::write(&alice.config, config).expect("write");
    let child = alice
        .command(&["signin", "--device-code"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = sim.enter_device_code(child, ALICE).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = alice.state.join("tokens.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&file)
                .expect("token file")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    assert!(keychain_entries(&alice.service).is_empty());
    // The keychain is back: the file's tokens move into it, and the file goes.
    let out = alice.run(&["whoami"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(ALICE), "{}", text(&out.stdout));
    assert!(
        !file.exists(),
        "the fallback file outlived the keychain's return"
    );
    assert!(
        keychain_entries(&alice.service).len() >= 2,
        "the sign-in moved into the keychain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_09_throttling_waits_as_long_as_retry_after_says() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    sim.control("/faults", json!({"path": "Authorization/roleEligibilityScheduleInstances", "status": 429, "retry_after": 2, "count": 2})).await;
    let started = Instant::now();
    let out = alice.run(&["roles"]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        took >= Duration::from_secs(4),
        "two Retry-After: 2 waits, took {took:?}"
    );
    assert!(
        text(&out.stderr).contains("Azure is throttling requests; retrying in 2.0s"),
        "{}",
        text(&out.stderr)
    );
    sim.control("/faults", json!({"path": "Authorization/roleEligibilityScheduleInstances", "status": 503, "retry_after": 1, "count": 1})).await;
    let out = alice.run(&["roles"]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("Azure answered 503; retrying in 1.0s"));
    // Other 4xx are never retried.
    sim.control(
        "/faults",
        json!({"path": "Authorization/roleEligibilityScheduleInstances", "status": 400, "count": 3}),
    )
    .await;
    let before = sim
        .requests_seen("GET", "Authorization/roleEligibilityScheduleInstances")
        .await;
    let out = alice.run(&["roles"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        sim.requests_seen("GET", "Authorization/roleEligibilityScheduleInstances")
            .await,
        before + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_12_a_gateway_error_page_does_not_crash_anything() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    sim.control(
        "/faults",
        json!({"path": "Authorization/roleEligibilityScheduleInstances", "status": 502, "count": 1}),
    )
    .await;
    let out = alice.run(&["roles"]);
    assert!(
        out.status.success(),
        "a read is retried after a 502: {}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_10_and_16_a_sigkill_during_activate_leaves_no_duplicate() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let mut first = alice.spawn(&[
        "activate",
        "JIT Requester",
        "--justification",
        "Reboot the jump box",
        "--wait",
    ]);
    eventually(
        "the request to reach Azure",
        Duration::from_secs(20),
        || async {
            sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
                .await
                == 1
        },
    )
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    // The restarted command resumes the same request instead of sending a second one.
    let second = alice.spawn(&[
        "activate",
        "JIT Requester",
        "--justification",
        "Reboot the jump box",
        "--wait",
    ]);
    eventually(
        "the restarted command to resume",
        Duration::from_secs(20),
        || async {
            sim.requests_seen("GET", "roleAssignmentScheduleRequests/")
                .await
                >= 1
        },
    )
    .await;
    let mine = alice.json(&["requests"]);
    assert_eq!(
        mine.as_array().expect("list").len(),
        1,
        "exactly one request: {mine}"
    );
    let id = mine[0]["name"].as_str().expect("name").to_string();
    assert!(bob
        .run(&["approve", &id, "--justification", "ok"])
        .status
        .success());
    let out = second.wait_with_output().expect("activate");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("resuming request"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        1,
        "no second PUT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_05_and_06_a_revoked_sign_in_asks_once_to_sign_in_again() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    // ARM's sign-in alone: Microsoft Graph's tokens (groups, Entra roles) would be refreshes too.
    alice.configure("[access]\ngroups = false\nentra_roles = false");
    sim.sign_in(&alice).await;
    // Past the access token's life, jumpgate refreshes and stores the rotated token.
    sim.advance(3600).await;
    assert!(alice.run(&["roles"]).status.success());
    let refreshes = |events: &[serde_json::Value]| {
        events
            .iter()
            .filter(|e| {
                e["kind"] == "request"
                    && e["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/oauth2/v2.0/token"))
            })
            .count()
    };
    assert_eq!(
        refreshes(&sim.events().await),
        2,
        "the code exchange and one refresh"
    );
    assert!(
        sim.events()
            .await
            .iter()
            .all(|e| e["kind"] != "entra.refresh_token_reused"),
        "the old refresh token is never used again"
    );
    sim.control("/revoke", json!({"upn": ALICE})).await;
    sim.advance(3600).await;
    let out = alice.run(&["roles"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("jumpgate signin"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        refreshes(&sim.events().await),
        3,
        "one refresh attempt, no retry loop"
    );
    let again = alice.run(&["whoami"]);
    assert!(
        text(&again.stderr).contains("not signed in"),
        "the dead sign-in was dropped"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_07_no_token_is_written_to_disk_or_printed() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let mut outputs = String::new();
    let bundle = sim.dir.path().join("support-bundle.json");
    for args in [
        vec!["whoami"],
        vec!["--json", "whoami"],
        vec!["roles"],
        vec!["--json", "targets"],
        vec![
            "--json",
            "activate",
            "JIT Requester",
            "--justification",
            "x",
        ],
        vec!["--json", "status"],
        // doctor's report and its support bundle too.
        vec![
            "--json",
            "doctor",
            "jumpbox-win-01",
            "--bundle",
            bundle.to_str().expect("path"),
        ],
        vec!["doctor", "jumpbox-win-01"],
    ] {
        let out = alice
            .command(&args)
            .env("JUMPGATE_LOG", "trace")
            .output()
            .expect("run");
        outputs += &text(&out.stdout);
        outputs += &text(&out.stderr);
    }
    // And the watcher's output and logs, read as they come: a pipe left unread fills up and
    // stops a watcher that logs at trace level.
    let mut watch = alice
        .command(&["--json", "watch"])
        .env("JUMPGATE_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("watch");
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut all = String::new();
            if let Some(mut p) = pipe {
                let _ = std::io::Read::read_to_string(&mut p, &mut all);
            }
            all
        })
    };
    let stdout = drain(watch.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(watch.stderr.take().map(|p| Box::new(p) as _));
    // Until its first look is finished, with everything it logs on the way.
    let started = std::time::Instant::now();
    let looked = || {
        std::fs::read(alice.state.join("watch.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|saved| saved["seen_until"].is_string())
    };
    while !looked() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the watcher finished no look within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = watch.kill();
    let _ = watch.wait();
    outputs += &stdout.join().unwrap_or_default();
    outputs += &stderr.join().unwrap_or_default();
    assert!(bundle.is_file() && alice.state.join("watch.json").is_file());
    // The tokens themselves, read back from the keychain, are the canaries.
    let canaries = stored_tokens(&alice);
    assert_no_token_leaked(&canaries, &outputs, sim.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_01_to_03_loopback_redirect_pkce_s256_and_a_checked_state() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let mut child = alice.spawn(&["signin", "--no-open", "--user", ALICE]);
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("url");
    let url = url::Url::parse(line.trim()).expect("url");
    let redirect = url
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .expect("redirect_uri")
        .1
        .into_owned();
    // The redirect names `localhost`, the loopback URI Entra lets a public client register
    // (any port matches); the listener is on the loopback IP literal, never a wildcard.
    assert!(
        redirect.starts_with("http://localhost:"),
        "the registered loopback URI: {redirect}"
    );
    let on_loopback = redirect.replacen("http://localhost:", "http://127.0.0.1:", 1);
    for forged in ["?code=stolen&state=wrong", "?code=stolen"] {
        let r = sim
            .http
            .get(format!("{on_loopback}{forged}"))
            .send()
            .await
            .expect("callback");
        assert_eq!(r.status(), 400, "{forged}");
    }
    // The real sign-in still completes.
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("upn".into(), ALICE.into()));
    let mut action = url.clone();
    action.set_query(None);
    let location = sim
        .http
        .post(action)
        .form(&form)
        .send()
        .await
        .expect("submit")
        .headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert_eq!(
        sim.http
            .get(&location)
            .send()
            .await
            .expect("loopback")
            .status(),
        200
    );
    assert!(child.wait().expect("signin").success());
    assert_eq!(alice.json(&["whoami"])["upn"], ALICE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_11_a_lost_initiate_is_checked_before_it_is_sent_again() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    activate_approved(&alice, &bob, "1h").await;
    // The connection drops before the simulator sees the request: nothing arrived.
    sim.control(
        "/faults",
        json!({"path": "/initiate$", "drop": true, "count": 1}),
    )
    .await;
    let out = alice.run(&["open", "jumpbox-win-01", "--justification", "Maintenance"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let progress = text(&out.stderr);
    assert!(
        progress.contains("checking whether it arrived") && progress.contains("sending it again"),
        "{progress}"
    );
    let initiated = sim
        .events()
        .await
        .iter()
        .filter(|e| e["kind"] == "jit.initiated")
        .count();
    assert_eq!(initiated, 1, "exactly one rule was opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_runs_out_exits_4_and_says_how_to_go_on() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let out = alice.run(&[
        "activate",
        "JIT Requester",
        "--justification",
        "Nobody will answer",
        "--wait=3s",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Run jumpgate activate again to keep waiting"),
        "{}",
        text(&out.stderr)
    );
    // Running it again resumes the same request rather than sending a second.
    let again = alice.run(&[
        "activate",
        "JIT Requester",
        "--justification",
        "Nobody will answer",
        "--wait=1s",
    ]);
    assert_eq!(again.status.code(), Some(4));
    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_06_a_claims_challenge_or_an_mfa_failure_asks_for_one_sign_in_without_retrying()
{
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    // ARM's sign-in alone: tokens for Microsoft Graph (groups, Entra roles) are asked for beside ARM.
    alice.configure("[access]\ngroups = false\nentra_roles = false");
    sim.sign_in(&alice).await;
    let challenge = r#"Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="e30=""#;
    sim.control("/faults", json!({"path": "Authorization/roleEligibilityScheduleInstances", "status": 401, "code": "InvalidAuthenticationToken", "www_authenticate": challenge, "count": 1})).await;
    let before = sim.requests_seen("POST", "/oauth2/v2.0/token").await;
    let out = alice.run(&["roles"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("run jumpgate signin"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        sim.requests_seen("GET", "Authorization/roleEligibilityScheduleInstances")
            .await,
        1,
        "no retry"
    );
    assert_eq!(
        sim.requests_seen("POST", "/oauth2/v2.0/token").await,
        before,
        "a claims challenge is not a refresh"
    );
    sim.control("/faults", json!({"path": "roleAssignmentScheduleRequests", "status": 400, "code": "RoleAssignmentRequestAcrsValidationFailed", "message": "The role needs authentication context c1.", "count": 1})).await;
    let out = alice.run(&["activate", "JIT Requester", "--justification", "Needs MFA"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("stronger sign-in")
            && text(&out.stderr).contains("jumpgate signin"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        1,
        "no retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_20_the_audit_journal_records_the_story_and_catches_tampering() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    activate_approved(&alice, &bob, "1h").await;
    assert!(alice
        .run(&["open", "jumpbox-win-01", "--justification", "Patch night"])
        .status
        .success());

    let mine = alice.json(&["history", "--format", "json"]);
    let whats: Vec<&str> = mine
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["what"].as_str())
        .collect();
    assert_eq!(
        whats,
        [
            "signed_in",
            "role_requested",
            "role_approved",
            "port_opened"
        ]
    );
    assert_eq!(mine[0]["who"], ALICE);
    let opened = &mine[3];
    assert_eq!(opened["who"], ALICE);
    assert!(
        opened["vm"].as_str().is_some_and(
            |vm| vm.ends_with("/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01")
        ),
        "the VM by resource id: {opened}"
    );
    assert_eq!(opened["port"], 3389);
    assert_eq!(opened["source_ip"], "127.0.0.1");
    assert_eq!(opened["justification"], "Patch night");
    assert_eq!(opened["prev_hash"], mine[2]["entry_hash"]);
    let theirs = bob.json(&["history", "--format", "json"]);
    assert_eq!(theirs[0]["what"], "signed_in");
    assert_eq!(theirs[1]["what"], "approval_decided");
    assert!(theirs[1]["outcome"]
        .as_str()
        .expect("outcome")
        .contains(ALICE));
    let csv = text(&alice.run(&["history", "--format", "csv"]).stdout);
    assert!(
        csv.starts_with(
            "seq,time,who,what,vm,port,role,source_ip,duration,justification,outcome\n"
        ),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 5);
    assert!(alice.run(&["audit", "verify"]).status.success());

    let journal = alice.state.join("audit.jsonl");
    let original = std::fs::read_to_string(&journal).expect("journal");
    std::fs::write(&journal, original.replacen("Patch night", "Patch day", 1)).expect("edit");
    let edited = alice.run(&["audit", "verify"]);
    assert_eq!(edited.status.code(), Some(1));
    assert!(
        text(&edited.stderr).contains("line 4") && text(&edited.stderr).contains("edited"),
        "{}",
        text(&edited.stderr)
    );
    let cut: Vec<&str> = original.lines().take(2).collect();
    std::fs::write(&journal, cut.join("\n") + "\n").expect("truncate");
    let truncated = alice.run(&["audit", "verify"]);
    assert_eq!(truncated.status.code(), Some(1));
    assert!(
        text(&truncated.stderr).contains("truncated"),
        "{}",
        text(&truncated.stderr)
    );
}

/// The watcher and several commands renew the same expired sign-in at once: each rotated
/// refresh token is spent once, so Entra never sees a reuse and nobody is signed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_05_processes_renewing_together_never_reuse_a_refresh_token() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    alice.configure("[watch]\nidle_refresh_secs = 1\n");
    sim.sign_in(&alice).await;
    let mut watch = alice.watch(&[]);
    watch.settle(std::time::Duration::from_secs(2));
    sim.advance(2 * 3600).await;
    let runs: Vec<_> = (0..4).map(|_| alice.spawn(&["roles"])).collect();
    for run in runs {
        let out = run.wait_with_output().expect("roles");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    watch.settle(std::time::Duration::from_secs(3));
    assert_eq!(watch.count("signed_out"), 0, "{:#?}", watch.seen);
    let events = sim.events().await;
    assert!(
        events
            .iter()
            .all(|e| e["kind"] != "entra.refresh_token_reused"),
        "a refresh token was spent twice"
    );
    assert!(alice.run(&["whoami"]).status.success());
}

/// Whether a process ended by `std::process::abort`: SIGABRT on Unix; on Windows the
/// fast-fail status, or 3 where the C runtime's `abort` ends it.
fn aborted(status: std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        status.signal() == Some(6)
    }
    #[cfg(windows)]
    {
        matches!(status.code(), Some(3) | Some(-1073740791))
    }
}

/// `jumpgate audit verify --json`, which must exit 0.
fn verified(user: &User) -> serde_json::Value {
    user.json(&["audit", "verify"])
}

/// A `jumpgate open` killed at each point of its journal append (before the write, halfway
/// through the line, after the write, after the sync, after the head) leaves a journal that
/// verifies, and the next append chains on and verifies too. The line cut off halfway is
/// reported as torn, and stays reported after later appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_21_a_kill_at_every_point_of_an_append_leaves_a_journal_that_verifies() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    activate_approved(&alice, &bob, "1h").await;
    let open = |why: &str| {
        [
            "open",
            "jumpbox-win-01",
            "--duration",
            "30m",
            "--justification",
            why,
        ]
        .map(str::to_string)
    };
    let count = |v: &serde_json::Value| v["entries"].as_u64().expect("entries");
    let mut torn_line = None;
    for point in [
        "before-write",
        "mid-line",
        "after-write",
        "after-sync",
        "after-head",
    ] {
        let before = verified(&alice);
        let args = open(point);
        let out = alice
            .command(&args.each_ref().map(String::as_str))
            .env("JUMPGATE_FAILPOINT", format!("journal:{point}"))
            .output()
            .expect("run jumpgate");
        assert!(
            aborted(out.status),
            "{point}: the failpoint did not abort ({}): {}",
            out.status,
            text(&out.stderr)
        );
        let after = verified(&alice);
        let written = u64::from(!matches!(point, "before-write" | "mid-line"));
        assert_eq!(count(&after), count(&before) + written, "{point}: {after}");
        let lagging = u64::from(matches!(point, "after-write" | "after-sync"));
        assert_eq!(after["head_behind"], lagging, "{point}: {after}");
        if point == "mid-line" {
            let torn = after["torn_lines"].as_array().expect("torn lines");
            assert_eq!(torn.len(), 1, "{after}");
            torn_line = torn[0].as_u64();
            let line = text(&alice.run(&["audit", "verify"]).stdout);
            assert!(line.contains("torn"), "{line}");
        }

        // The next append starts on a fresh line, chains on and brings the head forward.
        let next = alice.run(
            &open(&format!("after {point}"))
                .each_ref()
                .map(String::as_str),
        );
        assert!(next.status.success(), "{point}: {}", text(&next.stderr));
        let again = verified(&alice);
        assert_eq!(count(&again), count(&after) + 1, "{point}: {again}");
        assert_eq!(again["head_behind"], 0, "{point}: {again}");
        assert_eq!(
            again["torn_lines"]
                .as_array()
                .map(|t| t.iter().filter_map(|l| l.as_u64()).collect::<Vec<_>>()),
            Some(torn_line.into_iter().collect()),
            "{point}: {again}"
        );
    }
    let history = alice.json(&["history", "--format", "json"]);
    let seqs: Vec<u64> = history
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

/// The issue's SIGTERM case: a watcher stopped with SIGTERM while it writes entries
/// (reminders, expiry, a new IP) exits cleanly, and the journal it leaves verifies.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_21_a_watcher_stopped_with_sigterm_leaves_a_journal_that_verifies() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    alice.configure("[watch]\nopen_refresh_secs = 1\nip_check_secs = 1\n");
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    activate_approved(&alice, &bob, "1h").await;
    assert!(alice
        .run(&[
            "open",
            "jumpbox-win-01",
            "--duration",
            "1h",
            "--justification",
            "Patch"
        ])
        .status
        .success());
    // Each round moves the clock or the address so the watcher writes, then stops it at
    // a moment that varies from round to round.
    let steps: [(&str, i64); 4] = [
        ("ip", 2),
        ("clock", 46 * 60),
        ("clock", 10 * 60),
        ("clock", 6 * 60),
    ];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for (round, (what, n)) in steps.into_iter().enumerate() {
        let mut w = alice.watch(&[]);
        w.settle(Duration::from_millis(1500));
        match what {
            "ip" => {
                sim.control("/ip", json!({"ip": format!("127.0.0.{}", 70 + n)}))
                    .await;
            }
            _ => sim.advance(n).await,
        }
        let delay = u64::from(seed.rotate_left(round as u32 * 7) % 1500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let _ = Command::new("kill")
            .args(["-TERM", &w.child.id().to_string()])
            .status();
        let started = Instant::now();
        let status = loop {
            if let Some(s) = w.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "round {round}: the watcher ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0), "round {round}: not a clean stop");
        let v = verified(&alice);
        assert_eq!(
            v["intact"], true,
            "round {round} (stopped after {delay} ms): {v}"
        );
    }
    let whats: Vec<String> = alice
        .json(&["history", "--format", "json"])
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["what"].as_str().map(str::to_string))
        .collect();
    assert!(
        whats
            .iter()
            .any(|w| w == "expiry_reminder" || w == "ip_changed"),
        "the watcher wrote nothing: {whats:?}"
    );
}

/// RELIABILITY #22: alice's justification carries terminal escape sequences (a screen clear
/// and an OSC 8 hyperlink), a bidi override and markup. The CLI refuses to send such text;
/// another client (the portal, a script) need not, so it is sent through the engine here.
/// bob's `approvals`, text and JSON, and his `watch --approver` show none of it raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_22_a_hostile_justification_reaches_the_approver_inert() {
    use std::io::BufRead as _;
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let mut watcher = bob.spawn(&["watch", "--approver"]);
    let stdout = watcher.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .split(b'\n')
            .map_while(Result::ok)
        {
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });

    let hostile = "Patch \u{1b}[2J\u{1b}]8;;https://evil.example\u{7}now\u{1b}]8;;\u{7} \u{202E}exe.txt\nFAKE approved by the CISO <a href=\"https://evil.example\">ticket</a>";
    let refused = alice.run(&[
        "activate",
        "JIT Requester",
        "--justification",
        hostile,
        "--duration",
        "1h",
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("control characters"),
        "{}",
        text(&refused.stderr)
    );
    let engine = jumpgate_azure::engine::Engine::new(
        jumpgate_core::config::load(&alice.config).expect("alice's config"),
    )
    .expect("alice's engine");
    let role = engine.jit_role().await.expect("eligible");
    engine
        .send_activation(&role, chrono::Duration::hours(1), hostile, None)
        .await
        .expect("sent as another client would");
    let inbox = wait_for_inbox(&bob).await;
    // JSON keeps the value for scripts.
    assert_eq!(inbox["justification"], hostile.trim());

    let raw = |bytes: &[u8]| {
        let t = text(bytes);
        for bad in ['\u{1b}', '\u{7}', '\u{202E}', '\u{9b}'] {
            assert!(!t.contains(bad), "{bad:?} reached the terminal raw: {t:?}");
        }
        t
    };
    let listing = bob.run(&["approvals"]);
    assert!(listing.status.success(), "{}", text(&listing.stderr));
    let shown = raw(&listing.stdout);
    assert!(
        shown.contains("Patch [2J]8;;https://evil.examplenow]8;; exe.txt FAKE approved"),
        "{shown}"
    );
    // The justification is one line: it cannot forge a line of its own.
    assert!(!shown.lines().any(|l| l.starts_with("FAKE")), "{shown}");
    raw(&bob.run(&["--json", "approvals"]).stdout);

    let start = Instant::now();
    let line = loop {
        let left = Duration::from_secs(30)
            .checked_sub(start.elapsed())
            .expect("no approval_waiting line from watch --approver within 30s");
        if let Ok(l) = rx.recv_timeout(left) {
            if l.contains("approval_waiting") {
                break l;
            }
        }
    };
    let _ = watcher.kill();
    let _ = watcher.wait();
    raw(line.as_bytes());
    assert!(line.contains("exe.txt FAKE approved"), "{line}");
}

/// RELIABILITY #29: keys the system file manages beat the user's file, doctor names the file
/// that set each key, and a system file others can write is ignored whole, which doctor says.
/// (Unix modes; Windows' access lists are judged by `jumpgate_core::trust`'s own tests.)
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_29_managed_settings_win_and_an_unsafe_system_file_is_ignored_whole() {
    use std::os::unix::fs::PermissionsExt as _;
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    alice.configure("[justification]\nrefuse = []");
    let ran = sim.dir.path().join("system-rdp-ran");
    let system_rdp = sim.dir.path().join("system-rdp");
    std::fs::write(&system_rdp, format!("#!/bin/sh\ntouch {}\n", ran.display())).expect("script");
    chmod_x(&system_rdp);
    let system = sim.dir.path().join("system.toml");
    std::fs::write(
        &system,
        format!(
            "[managed]\nkeys = [\"justification.refuse\", \"launch.rdp_command\"]\n\n[justification]\nrefuse = [\"BAU\"]\n\n[launch]\nrdp_command = \"{}\"\n",
            system_rdp.display()
        ),
    )
    .expect("system file");
    std::fs::set_permissions(&system, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = |args: &[&str]| {
        alice
            .command(args)
            .env("JUMPGATE_SYSTEM_CONFIG", &system)
            .output()
            .expect("run jumpgate")
    };

    // The user's `refuse = []` does not lift the organisation's rule: refused before sending.
    let refused = run(&["activate", "JIT Requester", "--justification", "BAU"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("Not sent"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        0
    );

    // doctor says which file set each key.
    let doctor = run(&["--json", "doctor"]);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).expect("JSON");
    let keys = &report["config_sources"]["keys"];
    let system_shown = system.display().to_string();
    let user_shown = alice.config.display().to_string();
    assert_eq!(
        keys["justification.refuse"],
        system_shown.as_str(),
        "{report}"
    );
    assert_eq!(
        keys["launch.rdp_command"],
        system_shown.as_str(),
        "{report}"
    );
    assert_eq!(keys["launch.ssh_command"], user_shown.as_str(), "{report}");
    let text_report = text(&run(&["doctor"]).stdout);
    assert!(
        text_report.contains(&format!("justification.refuse  ← {system_shown} (managed)")),
        "{text_report}"
    );

    // Group-writable: nothing of the file applies, not even the keys it manages, and doctor
    // says so, with the fix. The managed RDP client is never run.
    std::fs::set_permissions(&system, std::fs::Permissions::from_mode(0o664)).expect("chmod");
    let doctor = run(&["--json", "doctor"]);
    assert!(
        !doctor.status.success(),
        "doctor passed with its system file ignored"
    );
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).expect("JSON");
    let sources = &report["config_sources"];
    assert_eq!(
        sources["ignored_system"]["file"],
        system_shown.as_str(),
        "{report}"
    );
    assert!(
        sources["ignored_system"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("chmod go-w")),
        "{report}"
    );
    assert_eq!(sources["system_file"], serde_json::Value::Null, "{report}");
    assert_eq!(
        sources["keys"]["justification.refuse"],
        user_shown.as_str(),
        "{report}"
    );
    assert_eq!(report["checks"][0]["step"], "config", "{report}");
    assert_eq!(report["checks"][0]["status"], "fail", "{report}");
    let text_report = text(&run(&["doctor"]).stdout);
    assert!(
        text_report.contains(&format!("The system file {system_shown} is ignored")),
        "{text_report}"
    );
    activate_approved(&alice, &bob, "2h").await;
    let connect = run(&[
        "connect",
        "jumpbox-win-01",
        "--justification",
        "Maintenance window",
    ]);
    assert!(connect.status.success(), "{}", text(&connect.stderr));
    assert!(!ran.exists(), "the ignored system file's command ran");
    assert!(
        sim.dir.path().join("rdp-launches").exists(),
        "the user's own client did not run"
    );
}

/// RELIABILITY #29: a sign-in is used only with the authority, client and audiences it was
/// made for. Once the configuration names another authority (someone else's file, say), the
/// refresh token is never sent there and the person is asked to sign in; going back finds the
/// sign-in again, untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_29_a_sign_in_goes_only_where_it_was_made_for() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let elsewhere = format!("http://{}", listener.local_addr().expect("addr"));
    let original = std::fs::read_to_string(&alice.config).expect("config");
    let moved: String = original
        .lines()
        .map(|l| {
            if l.starts_with("authority_host") {
                format!("authority_host = \"{elsewhere}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(moved, original, "the configuration names an authority");
    std::fs::write(&alice.config, &moved).expect("config");
    let refused = alice.run(&["targets"]);
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(
        err.contains("was made for the authority") && err.contains("jumpgate signin"),
        "{err}"
    );
    let doctor = text(&alice.run(&["doctor"]).stdout);
    assert!(doctor.contains("was made for the authority"), "{doctor}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "something was sent to the authority the sign-in was not made for"
    );
    std::fs::write(&alice.config, &original).expect("config");
    let back = alice.run(&["targets"]);
    assert!(back.status.success(), "{}", text(&back.stderr));
}

/// RELIABILITY #29 on Windows: the managed system file is found under ProgramData through the
/// known-folder API (a `ProgramData` variable pointing elsewhere changes nothing), its owner
/// and access list are read, and a file the user running Jumpgate made (as Wine makes every
/// file the tests write) is ignored whole, with its owner named and the fix.
#[cfg(windows)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_29_a_program_data_file_a_user_made_is_ignored_whole() {
    /// Removes the folder however the test ends: every other test reads ProgramData too.
    struct Planted(std::path::PathBuf);
    impl Drop for Planted {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let folder = std::path::PathBuf::from("C:\\ProgramData\\Jumpgate");
    assert!(
        !folder.exists(),
        "{} is there before the test",
        folder.display()
    );
    let _planted = Planted(folder.clone());
    std::fs::create_dir_all(&folder).expect("folder");
    let file = folder.join("config.toml");
    std::fs::write(
        &file,
        "[managed]\nkeys = [\"justification.refuse\"]\n\n[justification]\nrefuse = [\"BAU\"]\n",
    )
    .expect("system file");
    let doctor = alice
        .command(&["--json", "doctor"])
        .env("ProgramData", "C:\\nowhere")
        .output()
        .expect("run jumpgate");
    assert!(
        !doctor.status.success(),
        "doctor passed with its system file ignored"
    );
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).expect("JSON");
    let ignored = &report["config_sources"]["ignored_system"];
    assert_eq!(ignored["file"], file.display().to_string(), "{report}");
    let why = ignored["why"].as_str().unwrap_or_default();
    assert!(
        why.contains("rather than Administrators") && why.contains("icacls"),
        "{report}"
    );
    assert_eq!(report["checks"][0]["status"], "fail", "{report}");
    // Nothing of it applies: the justification it would refuse is sent.
    sim.sign_in(&alice).await;
    let sent = alice.run(&["activate", "JIT Requester", "--justification", "BAU"]);
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        1
    );
}
