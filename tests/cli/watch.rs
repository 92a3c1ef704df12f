//! `jumpgate watch`: every event kind in one run, each printed exactly once, and a restart
//! that neither repeats nor misses anything.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const QUICK: &str = "[watch]\nopen_refresh_secs = 1\nip_check_secs = 1\n";

/// alice asks for the role; returns once the request waits for bob.
fn request(alice: &User, justification: &str) {
    let out = alice.run(&[
        "activate",
        "JIT Requester",
        "--justification",
        justification,
        "--duration",
        "1h",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn decide(bob: &User, request: &Value, approve: bool, why: &str) {
    let out = bob.run(&[
        if approve { "approve" } else { "deny" },
        request["request"].as_str().expect("request"),
        "--justification",
        why,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Each announcement once: no two events with the same name and identity.
fn assert_once(events: &[Value]) {
    let mut seen = BTreeSet::new();
    for e in events {
        let mut key = e.clone();
        if let Some(o) = key.as_object_mut() {
            o.remove("at");
        }
        assert!(seen.insert(key.to_string()), "announced twice: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_announces_every_event_once() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    alice.configure(QUICK);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let mut a = alice.watch(&[]);
    let mut b = bob.watch(&["--approver"]);
    let quick = Duration::from_secs(30);

    // A denial, with bob's reason.
    request(&alice, "Rotate the TLS certificate");
    let waiting = b.expect("approval_waiting", quick);
    assert_eq!(waiting["requester"], ALICE);
    assert_eq!(waiting["role"], "JIT Requester");
    assert_eq!(waiting["justification"], "Rotate the TLS certificate");
    assert_eq!(waiting["duration"], "PT1H");
    assert!(waiting["scope"]
        .as_str()
        .expect("scope")
        .ends_with("rg-jumpboxes"));
    decide(&bob, &waiting, false, "Not during the freeze");
    let denied = a.expect("request_denied", quick);
    assert_eq!(denied["approver"], BOB);
    assert_eq!(denied["justification"], "Not during the freeze");

    // An approval.
    request(&alice, "Patch KB5031 on the jump box");
    let waiting = b.expect("approval_waiting", quick);
    assert_eq!(waiting["justification"], "Patch KB5031 on the jump box");
    decide(&bob, &waiting, true, "Approved for the patch window");
    let approved = a.expect("request_approved", quick);
    assert_eq!(approved["approver"], BOB);
    assert_eq!(approved["justification"], "Approved for the patch window");
    assert_eq!(approved["role"], "JIT Requester");

    // A port, then a new public IP while it is open.
    let out = alice.run(&[
        "open",
        "jumpbox-win-01",
        "--duration",
        "1h",
        "--justification",
        "Patch",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    a.settle(Duration::from_secs(2));
    sim.control("/ip", json!({"ip": "127.0.0.77"})).await;
    let moved = a.expect("ip_changed", quick);
    assert_eq!(moved["vm"], "jumpbox-win-01");
    assert_eq!(moved["port"], 3389);
    assert_eq!(moved["new"], "127.0.0.77");
    assert_ne!(moved["old"], "127.0.0.77");

    // Reminders at 15 and 5 minutes, then expiry, for the role and the port alike.
    sim.advance(46 * 60).await;
    let first = a.expect("expiry_reminder", quick);
    let second = a.expect("expiry_reminder", quick);
    for r in [&first, &second] {
        assert_eq!(r["lead_minutes"], 15, "{r}");
    }
    let kinds: BTreeSet<&str> = [&first, &second]
        .iter()
        .filter_map(|r| r["access"]["type"].as_str())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["port", "role"]));
    sim.advance(10 * 60).await;
    for _ in 0..2 {
        let r = a.expect("expiry_reminder", quick);
        assert_eq!(r["lead_minutes"], 5, "{r}");
    }
    sim.advance(5 * 60 + 30).await;
    a.expect("expired", quick);
    a.expect("expired", quick);

    // Nothing more comes, and nothing came twice.
    a.settle(Duration::from_secs(4));
    b.settle(Duration::from_millis(500));
    let alice_events = a.kill();
    let bob_events = b.kill();
    assert_once(&alice_events);
    assert_once(&bob_events);
    let count = |events: &[Value], name: &str| events.iter().filter(|e| e["event"] == name).count();
    assert_eq!(count(&alice_events, "request_denied"), 1);
    assert_eq!(count(&alice_events, "request_approved"), 1);
    assert_eq!(count(&alice_events, "ip_changed"), 1);
    assert_eq!(count(&alice_events, "expiry_reminder"), 4);
    assert_eq!(count(&alice_events, "expired"), 2);
    assert_eq!(count(&bob_events, "approval_waiting"), 2);
    assert_eq!(alice_events.len(), 9, "{alice_events:#?}");

    // The journal has each of them, and its chain holds.
    let history = alice.json(&["history", "--format", "json"]);
    let whats: Vec<&str> = history
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["what"].as_str())
        .collect();
    for what in [
        "request_denied",
        "request_approved",
        "ip_changed",
        "expiry_reminder",
        "expired",
    ] {
        assert!(whats.contains(&what), "{what} missing from {whats:?}");
    }
    assert!(alice.run(&["audit", "verify"]).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_watch_repeats_nothing_and_misses_nothing() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let quick = Duration::from_secs(10);

    let mut a = alice.watch(&[]);
    request(&alice, "First attempt");
    let item = wait_for_inbox(&bob).await;
    let out = bob.run(&[
        "deny",
        item["id"].as_str().expect("id"),
        "--justification",
        "Use a ticket",
    ]);
    assert!(out.status.success());
    a.expect("request_denied", quick);
    request(&alice, "Second attempt, ticket 4711");
    // The watcher has seen the request pending, then dies.
    a.saved("PendingApproval");
    let before = a.kill();

    // bob approves while nobody watches.
    let item = wait_for_inbox(&bob).await;
    let out = bob.run(&[
        "approve",
        item["id"].as_str().expect("id"),
        "--justification",
        "With the ticket, yes",
    ]);
    assert!(out.status.success());

    let mut a = alice.watch(&[]);
    let approved = a.expect("request_approved", quick);
    assert_eq!(approved["justification"], "With the ticket, yes");
    a.settle(Duration::from_secs(3));
    let after = a.kill();
    assert_eq!(
        after
            .iter()
            .filter(|e| e["event"] == "request_denied")
            .count(),
        0,
        "the denial was announced again after the restart: {after:#?}"
    );
    assert_eq!(
        before
            .iter()
            .filter(|e| e["event"] == "request_denied")
            .count(),
        1
    );
    assert_eq!(
        after
            .iter()
            .filter(|e| e["event"] == "request_approved")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_watcher_per_state_directory() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let _first = alice.watch(&[]);
    // It holds the lock once its first look is written.
    let looked = alice.state.join("watch.json");
    let started = std::time::Instant::now();
    while !looked.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the first watcher never finished a look"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = alice.run_for(&["watch"], Duration::from_secs(20));
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("already running"),
        "{}",
        text(&second.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_says_signed_out_once_when_the_sign_in_is_revoked() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    alice.configure("[watch]\nidle_refresh_secs = 1\n");
    sim.sign_in(&alice).await;
    let mut a = alice.watch(&[]);
    a.settle(Duration::from_secs(2));
    revoked_is_announced_once(&sim, &mut a).await;
}

/// Revokes alice's sign-in, and checks her watcher says so once, with a reason.
async fn revoked_is_announced_once(sim: &Sim, a: &mut Watching) {
    sim.control("/revoke", json!({"upn": ALICE})).await;
    // Access tokens outlive a revocation: force the next read to need a refresh.
    sim.advance(2 * 3600).await;
    let out = a.expect("signed_out", Duration::from_secs(15));
    assert!(
        out["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{out}"
    );
    a.settle(Duration::from_secs(3));
    assert_eq!(a.count("signed_out"), 1, "{:#?}", a.seen);
}

/// alice, signed in and watched, signs out on purpose with `jumpgate signout`; returns once
/// her watcher has said it is waiting for a sign-in.
async fn alice_signs_out_while_watched(sim: &Sim) -> (User, Watching) {
    let alice = sim.user(ALICE);
    alice.configure("[watch]\nidle_refresh_secs = 1\n");
    sim.sign_in(&alice).await;
    let mut a = alice.watch(&[]);
    a.first_look();
    let out = alice.run(&["signout"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    a.expect_said(
        "signed out: watching again once you sign in",
        Duration::from_secs(30),
    );
    (alice, a)
}

/// Signing out on purpose is no news to the person who did it: the watcher says so on its
/// progress line, announces nothing, and the journal has the sign-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_on_purpose_is_not_announced() {
    let sim = Sim::start("demo", 0);
    let (alice, mut a) = alice_signs_out_while_watched(&sim).await;
    a.settle(Duration::from_secs(3));
    assert_eq!(a.count("signed_out"), 0, "{:#?}", a.seen);
    let history = alice.json(&["history", "--format", "json"]);
    let signed_out = history
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["what"] == "signed_out" && e["who"] == ALICE)
        .count();
    assert_eq!(signed_out, 1, "{history:#}");
    assert!(alice.run(&["audit", "verify"]).status.success());
}

/// A `signed_out` line someone else writes into the journal, outside its hash chain, is not
/// a sign-out on purpose: a sign-in lost afterwards is still announced. (It clears the sign-in
/// behind the watcher's back with secret-tool.)
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_sign_out_in_the_journal_silences_nothing() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    alice.configure("[watch]\nidle_refresh_secs = 2\n");
    sim.sign_in(&alice).await;
    let mut a = alice.watch(&[]);
    a.first_look();
    // Her sign-in disappears from the keychain, and a line in the journal claims she signed
    // out: the last real entry, made to say signed_out, as the next one.
    let cleared = std::process::Command::new("secret-tool")
        .args(["clear", "service", &alice.service])
        .status()
        .expect("secret-tool");
    assert!(cleared.success());
    let journal = alice.state.join("audit.jsonl");
    let text = std::fs::read_to_string(&journal).expect("journal");
    let mut forged: Value =
        serde_json::from_str(text.lines().last().expect("an entry")).expect("json");
    forged["seq"] = json!(forged["seq"].as_u64().unwrap_or(0) + 1);
    forged["what"] = json!("signed_out");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .expect("open");
    std::io::Write::write_all(&mut file, format!("{forged}\n").as_bytes()).expect("forge");
    let out = a.expect("signed_out", Duration::from_secs(30));
    assert!(
        out["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{out}"
    );
    assert!(!alice.run(&["audit", "verify"]).status.success());
}

/// A sign-out on purpose covers only that sign-in: signed in again, a revoked sign-in is
/// announced as usual, with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sign_out_on_purpose_a_revoked_sign_in_is_still_announced() {
    let sim = Sim::start("demo", 0);
    let (alice, mut a) = alice_signs_out_while_watched(&sim).await;
    sim.sign_in(&alice).await;
    a.expect_said(
        &format!("signed in as {ALICE}: watching again"),
        Duration::from_secs(30),
    );
    revoked_is_announced_once(&sim, &mut a).await;
}

/// Someone signs in as another account in a terminal while the watcher runs: the sign-in is
/// journaled, and the watcher goes on with the new account within seconds, not when the
/// old one's token would have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_from_a_terminal_is_picked_up_by_a_running_watcher() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let mut a = alice.watch(&[]);
    a.first_look();
    let account = |saved: &str| -> String {
        serde_json::from_str::<Value>(saved).expect("watch.json")["account"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let first = account(&a.saved("\"account\""));
    // bob, in alice's terminal: her configuration and keychain entry.
    let bob_here = User {
        upn: BOB.into(),
        config: alice.config.clone(),
        state: alice.state.clone(),
        service: alice.service.clone(),
        system_config: alice.system_config.clone(),
    };
    sim.sign_in(&bob_here).await;
    let started = std::time::Instant::now();
    loop {
        let now =
            account(&std::fs::read_to_string(alice.state.join("watch.json")).unwrap_or_default());
        if !now.is_empty() && now != first {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the watcher still watches the account before"
        );
        a.settle(Duration::from_millis(200));
    }
    let history = alice.json(&["history", "--format", "json"]);
    let signed_in: Vec<&str> = history
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["what"] == "signed_in")
        .filter_map(|e| e["who"].as_str())
        .collect();
    assert_eq!(signed_in, [ALICE, BOB], "{history:#}");
}

/// A throttled poll waits as long as `Retry-After` says before the request is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchers_polls_honour_retry_after() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let mut a = alice.watch(&[]);
    let request = alice.json(&[
        "activate",
        "JIT Requester",
        "--justification",
        "Throttled",
        "--duration",
        "1h",
    ]);
    let name = request["name"].as_str().expect("name").to_string();
    // The watcher tracks the request before its next read is throttled.
    a.saved(&name);
    let path = format!("roleAssignmentScheduleRequests/{name}");
    sim.control(
        "/faults",
        json!({"path": path, "status": 429, "retry_after": 4, "count": 1}),
    )
    .await;
    // The reads of the request, as the simulator saw them: when (its clock, which this test
    // does not move), and whether the fault answered.
    let reads = |events: &[Value]| -> Vec<(chrono::DateTime<chrono::Utc>, bool)> {
        events
            .iter()
            .filter(|e| {
                e["kind"] == "request"
                    && e["method"] == "GET"
                    && e["path"].as_str().is_some_and(|p| p.ends_with(&path))
            })
            .filter_map(|e| {
                let at = chrono::DateTime::parse_from_rfc3339(e["time"].as_str()?).ok()?;
                Some((at.with_timezone(&chrono::Utc), e["fault"] == true))
            })
            .collect()
    };
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let seen = reads(&sim.events().await);
        let throttled = seen.iter().position(|(_, fault)| *fault);
        if let Some(i) = throttled {
            if let Some((again, _)) = seen[i + 1..].iter().find(|(_, fault)| !fault) {
                let gap = *again - seen[i].0;
                assert!(
                    gap >= chrono::Duration::milliseconds(3_900),
                    "read again {gap} after a 429 with Retry-After: 4"
                );
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the watcher never read the request again after the 429");
}

/// ARM refusing the sign-in with a claims challenge is announced once, and the watcher does
/// not keep calling ARM with the refused sign-in: it waits for a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sign_in_is_announced_once_and_not_retried() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    alice.configure("[watch]\nidle_refresh_secs = 1\n");
    sim.sign_in(&alice).await;
    let challenge = r#"Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="e30=""#;
    sim.control(
        "/faults",
        json!({"path": "roleAssignmentScheduleRequests", "status": 401, "code": "InvalidAuthenticationToken", "www_authenticate": challenge, "count": 1000}),
    )
    .await;
    let mut a = alice.watch(&[]);
    a.expect("signed_out", Duration::from_secs(10));
    let calls = sim
        .requests_seen("GET", "roleAssignmentScheduleRequests")
        .await;
    a.settle(Duration::from_secs(5));
    assert_eq!(
        sim.requests_seen("GET", "roleAssignmentScheduleRequests")
            .await,
        calls,
        "the refused sign-in was used again"
    );
    assert_eq!(a.count("signed_out"), 1, "{:#?}", a.seen);
}

/// Someone who never signed in on this machine is not told to sign in "again".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_without_a_sign_in_announces_nothing() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let mut a = alice.watch(&[]);
    a.settle(Duration::from_secs(3));
    assert!(a.seen.is_empty(), "{:#?}", a.seen);
}

/// alice's role (approved by bob) and port, both open for `duration`; returns alice's
/// active role as `status` shows it.
async fn role_and_port(sim: &Sim, alice: &User, bob: &User, duration: &str) -> Value {
    sim.sign_in(alice).await;
    sim.sign_in(bob).await;
    activate_approved(alice, bob, duration).await;
    let out = alice.run(&[
        "open",
        "jumpbox-win-01",
        "--duration",
        duration,
        "--justification",
        "Patch",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = alice.json(&["status"]);
    assert_eq!(
        status["ports"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    status["roles"][0].clone()
}

/// The clock jumps two hours in one step, past the end of both: each is announced as
/// expired, once, and not again after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_14_access_that_ends_while_nobody_looks_is_announced_expired_once() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    alice.configure(QUICK);
    role_and_port(&sim, &alice, &bob, "1h").await;
    let mut a = alice.watch(&[]);
    a.first_look();
    sim.advance(2 * 3600).await;
    let quick = Duration::from_secs(15);
    let first = a.expect("expired", quick);
    let second = a.expect("expired", quick);
    let kinds: BTreeSet<&str> = [&first, &second]
        .iter()
        .filter_map(|r| r["access"]["type"].as_str())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["port", "role"]));
    a.settle(Duration::from_secs(4));
    let seen = a.kill();
    assert_once(&seen);
    let expired = seen.iter().filter(|e| e["event"] == "expired").count();
    assert_eq!(expired, 2, "{seen:#?}");
    assert!(
        !seen.iter().any(|e| e["event"] == "ended_early"),
        "{seen:#?}"
    );
    let mut again = alice.watch(&[]);
    again.settle(Duration::from_secs(4));
    assert!(
        again.seen.is_empty(),
        "repeated after a restart: {:#?}",
        again.seen
    );
}

/// dave, an admin, removes alice's active role: her watcher says it ended early, and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_14_a_role_an_admin_removes_is_announced_as_ended_early() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    alice.configure(QUICK);
    let role = role_and_port(&sim, &alice, &bob, "1h").await;
    let mut a = alice.watch(&[]);
    a.first_look();

    let token = sim
        .control("/token", json!({"upn": "dave@contoso.example"}))
        .await["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let scope = role["scope"].as_str().expect("scope");
    let url = format!(
        "{}{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version=2020-10-01",
        sim.url,
        uuid::Uuid::new_v4()
    );
    let removed = sim
        .http
        .put(url)
        .bearer_auth(token)
        .json(&json!({"properties": {
            "principalId": "a11ce000-0000-4000-8000-000000000001",
            "roleDefinitionId": role["role_definition_id"],
            "requestType": "AdminRemove",
            "justification": "Leaver process",
        }}))
        .send()
        .await
        .expect("AdminRemove");
    assert!(
        removed.status().is_success(),
        "{}",
        removed.text().await.unwrap_or_default()
    );

    let ended = a.expect("ended_early", Duration::from_secs(15));
    assert_eq!(ended["access"]["type"], "role", "{ended}");
    assert_eq!(ended["code"], "AdminRemove", "{ended}");
    assert!(
        ended["reason"]
            .as_str()
            .is_some_and(|r| r.contains("administrator")),
        "{ended}"
    );
    a.settle(Duration::from_secs(4));
    assert_eq!(a.count("ended_early"), 1, "{:#?}", a.seen);
    // The port stays open until its own end: nothing is said about it.
    assert_eq!(a.count("expired"), 0, "{:#?}", a.seen);
    let seen = a.kill();
    let mut again = alice.watch(&[]);
    again.settle(Duration::from_secs(4));
    assert_eq!(
        again.count("ended_early"),
        0,
        "repeated after a restart: {seen:#?} then {:#?}",
        again.seen
    );
}

/// Someone else opens the same port of the same VM: JIT revokes alice's rule with
/// `NewerRequestInitiated`, and her watcher says so, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_14_a_colleagues_request_on_the_same_port_ends_nothing() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    let dave = sim.user("dave@contoso.example");
    alice.configure(QUICK);
    role_and_port(&sim, &alice, &bob, "1h").await;
    sim.sign_in(&dave).await;
    let mut a = alice.watch(&[]);
    a.first_look();
    // dave opens the same port for himself: JIT keeps one rule per request, and his is not
    // the end of hers (a shared jump box).
    let out = dave.run(&[
        "open",
        "jumpbox-win-01",
        "--duration",
        "30m",
        "--justification",
        "Incident 99",
        "--ip",
        "93.184.216.34",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    a.settle(Duration::from_secs(6));
    assert_eq!(a.count("ended_early"), 0, "{:#?}", a.seen);
    let status = alice.json(&["status"]);
    assert_eq!(
        status["ports"].as_array().map(Vec::len),
        Some(1),
        "hers is still open: {status:#}"
    );
}

/// What a watcher prints once when it reads the inbox on its own fast cadence.
const FAST: &str = "checking your approvals every 4 s";

/// The sequence number of the simulator's newest event.
async fn last_seq(sim: &Sim) -> u64 {
    sim.events()
        .await
        .last()
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or(0)
}

/// ARM reads by `upn` among the simulator's events after the one numbered `since`, and those
/// of them that read the approvals inbox.
fn reads_by(events: &[Value], since: u64, upn: &str) -> (usize, usize) {
    let reads: Vec<&Value> = events
        .iter()
        .filter(|e| e["seq"].as_u64().is_some_and(|n| n > since))
        .filter(|e| e["kind"] == "request" && e["method"] == "GET" && e["caller"] == upn)
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| !p.starts_with("/ip") && !p.starts_with("/cdn-cgi"))
        })
        .collect();
    let inbox = reads
        .iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.contains("roleAssignmentApprovals"))
        })
        .count();
    (reads.len(), inbox)
}

/// The role management policy lists `upn` read.
fn policy_reads(events: &[Value], upn: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            e["kind"] == "request"
                && e["caller"] == upn
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("roleManagementPolicyAssignments"))
        })
        .count()
}

/// bob is named as the approver in the policy of the role alice asks for, and may read it
/// (Reader on the resource group): his plain `watch`, without `--approver`, finds that out
/// at its first look, says so once, and announces her request within seconds, not at the
/// next full look five minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_named_in_a_policy_hears_of_requests_within_seconds_unasked() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let mut b = bob.watch(&[]);
    let said = b.expect_said(FAST, Duration::from_secs(10));
    assert!(
        said.contains("you approve requests for JIT Requester"),
        "{said}"
    );

    // Within seconds: its inbox is read every 4 s, where the next full look is 5 minutes
    // away (the limit leaves room for a busy machine, and is far from those 5 minutes).
    request(&alice, "Rotate the TLS certificate");
    let waiting = b.expect("approval_waiting", Duration::from_secs(60));
    assert_eq!(waiting["requester"], ALICE);
    assert_eq!(waiting["role"], "JIT Requester");

    // Said once; the policies were read at the first look only.
    b.settle(Duration::from_secs(5));
    assert_eq!(b.said_so(FAST), 1, "{:#?}", b.said);
    assert_eq!(
        policy_reads(&sim.events().await, BOB),
        1,
        "bob's policies are read once at the start, not at every look"
    );
    let state = std::fs::read_to_string(bob.state.join("watch.json")).expect("state");
    assert!(state.contains("JIT Requester"), "{state}");
}

/// The `demo` tenant without bob's Reader role: he still approves alice's requests, but can
/// read no policy, so only his decisions tell that he approves.
fn demo_without_bobs_reader(dir: &std::path::Path) -> std::path::PathBuf {
    let mut tenant: toml::Table =
        toml::from_str(include_str!("../../crates/sim/tenants/demo.toml")).expect("demo.toml");
    let assignments = tenant["role_assignments"]
        .as_array_mut()
        .expect("role_assignments");
    let before = assignments.len();
    assignments.retain(|a| a.get("principal").and_then(|p| p.as_str()) != Some(BOB));
    assert_eq!(assignments.len(), before - 1, "bob held one role in demo");
    let path = dir.join("tenant.toml");
    std::fs::write(&path, toml::to_string(&tenant).expect("TOML")).expect("write the tenant");
    path
}

/// Someone no readable policy names, who decides a request: the running watcher notices the
/// decision and reads the inbox every 4 s from then on, and so does the next one after a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_who_has_decided_a_request_gets_the_fast_inbox_and_keeps_it() {
    let dir = tempfile::tempdir().expect("dir");
    let tenant = demo_without_bobs_reader(dir.path());
    let sim = Sim::start(tenant.to_str().expect("path"), 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let quick = Duration::from_secs(15);

    let mut b = bob.watch(&[]);
    b.first_look();
    b.settle(Duration::from_secs(1));
    assert_eq!(b.said_so(FAST), 0, "{:#?}", b.said);
    let from = last_seq(&sim).await;
    b.settle(Duration::from_secs(9));
    let (_, inbox) = reads_by(&sim.events().await, from, BOB);
    assert_eq!(
        inbox, 0,
        "bob's inbox was polled before he decided anything"
    );

    // bob denies alice's first request from the command line.
    request(&alice, "First attempt");
    let item = wait_for_inbox(&bob).await;
    let out = bob.run(&[
        "deny",
        item["id"].as_str().expect("id"),
        "--justification",
        "Use a ticket",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = b.expect_said(FAST, Duration::from_secs(10));
    assert!(said.contains("you have decided requests"), "{said}");
    request(&alice, "Second attempt, ticket 4711");
    let waiting = b.expect("approval_waiting", quick);
    assert_eq!(waiting["justification"], "Second attempt, ticket 4711");
    decide(&bob, &waiting, false, "Still no");
    b.kill();

    // A new watcher knows at once.
    let mut b = bob.watch(&[]);
    b.expect_said(FAST, Duration::from_secs(10));
    request(&alice, "Third attempt");
    let waiting = b.expect("approval_waiting", quick);
    assert_eq!(waiting["justification"], "Third attempt");
    assert_eq!(b.said_so(FAST), 1, "{:#?}", b.said);
}

/// carol neither is named in a policy she can read (she reads the whole subscription) nor
/// has decided anything: her watcher keeps the slow cadence, with no inbox polling between
/// its full looks, while bob's, named in the policy, polls his.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_who_neither_approves_nor_decided_keeps_the_slow_cadence() {
    const CAROL: &str = "carol@contoso.example";
    let sim = Sim::start("demo", 0);
    let carol = sim.user(CAROL);
    let bob = sim.user(BOB);
    sim.sign_in(&carol).await;
    sim.sign_in(&bob).await;
    let mut c = carol.watch(&[]);
    let mut b = bob.watch(&[]);
    b.expect_said(FAST, Duration::from_secs(10));
    // Her first look, then the look at the policies that follows it.
    c.first_look();
    let started = std::time::Instant::now();
    while policy_reads(&sim.events().await, CAROL) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "carol's watcher never looked at the policies"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.settle(Duration::from_millis(500));
    assert_eq!(
        policy_reads(&sim.events().await, CAROL),
        1,
        "carol's watcher read the policy where alice is eligible"
    );

    let from = last_seq(&sim).await;
    c.settle(Duration::from_secs(12));
    let events = sim.events().await;
    let (carol_reads, carol_inbox) = reads_by(&events, from, CAROL);
    let (_, bob_inbox) = reads_by(&events, from, BOB);
    assert_eq!(
        (carol_reads, carol_inbox),
        (0, 0),
        "carol's watcher read ARM between its full looks"
    );
    assert!(
        bob_inbox >= 2,
        "bob's inbox was read {bob_inbox} times in 12 s"
    );
    assert_eq!(c.said_so(FAST), 0, "{:#?}", c.said);
    assert_eq!(
        policy_reads(&events, CAROL),
        1,
        "the policies are read once a day"
    );
}
