//! Microsoft Entra (directory) roles through PIM, in the `enterprise` tenant: alice may
//! activate Global Reader on her own word and Security Reader with bob's approval. They are
//! listed beside her Azure roles and groups, activated, approved from bob's inbox, shown in
//! force, and ended, through the real binaries against the simulator; no request may be
//! refused for its shape, and no Azure role is asked for on the way.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// alice's entries of kind `kind` in a list, by name.
fn names_of(list: &Value, kind: &str) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == kind)
        .filter_map(|r| r["role"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_alice_activates_global_reader_and_security_reader_with_bobs_approval() {
    let sim = Sim::start("enterprise", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;

    // Listed beside her Azure roles, each with its policy in words.
    let roles = alice.json(&["roles"]);
    assert_eq!(
        names_of(&roles, "entra_role"),
        ["Global Reader", "Security Reader"],
        "{roles:#}"
    );
    assert!(
        !names_of(&roles, "role").is_empty(),
        "her Azure roles are still there: {roles:#}"
    );
    let plain = alice.run(&["roles"]);
    let said = text(&plain.stdout);
    assert!(said.contains("Global Reader  (Entra role)"), "{said}");

    // Global Reader: granted on her word.
    let out = alice.run(&[
        "activate",
        "entra:Global Reader",
        "--justification",
        "Quarterly access review",
        "--duration",
        "2h",
        "--wait=1m",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Security Reader: behind MFA, which her password-only sign-in lacks, then waiting for
    // bob, whose inbox shows it as an Entra role; her watcher announces his decision.
    let refused = alice.run(&[
        "activate",
        "Security Reader",
        "--justification",
        "Incident INC-88 triage",
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("signin --mfa"),
        "{}",
        text(&refused.stderr)
    );
    sim.sign_in_with(&alice, &["--mfa"]).await;
    alice.configure("[watch]\npending_poll_ms = 1000\nopen_refresh_secs = 2");
    let mut watch = alice.watch(&[]);
    watch.first_look();
    let activate = alice.spawn(&[
        "activate",
        "Security Reader",
        "--justification",
        "Incident INC-88 triage",
        "--duration",
        "1h",
        "--ticket",
        "ServiceNow:INC-88",
        "--wait=3m",
    ]);
    let item = approve_next(&bob).await;
    assert_eq!(
        (item["kind"].as_str(), item["role"].as_str()),
        (Some("entra_role"), Some("Security Reader")),
        "{item:#}"
    );
    assert_eq!(item["justification"], "Incident INC-88 triage", "{item:#}");
    let out = activate.wait_with_output().expect("activate");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let approved = watch.expect("request_approved", Duration::from_secs(30));
    assert_eq!(approved["role"], "Security Reader", "{approved:#}");
    watch.next_look();
    assert_eq!(watch.count("request_approved"), 1);
    drop(watch);

    // Both in force, and in her requests.
    let status = alice.json(&["status"]);
    assert_eq!(
        names_of(&status["roles"], "entra_role"),
        ["Global Reader", "Security Reader"],
        "{status:#}"
    );
    let requests = alice.json(&["requests"]);
    assert_eq!(names_of(&requests, "entra_role").len(), 2, "{requests:#}");

    // Ended after PIM's first five minutes, and gone once its lingering is over.
    sim.advance(301).await;
    let out = alice.run(&[
        "deactivate",
        "entra:Global Reader",
        "--justification",
        "Review done",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    sim.advance(10).await;
    let status = alice.json(&["status"]);
    assert_eq!(
        names_of(&status["roles"], "entra_role"),
        ["Security Reader"],
        "{status:#}"
    );

    // Activated again, it is a new request, not the ended one resumed.
    let out = alice.run(&[
        "activate",
        "entra:Global Reader",
        "--justification",
        "One more look",
        "--wait=1m",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("resuming"),
        "{}",
        text(&out.stderr)
    );
    let status = alice.json(&["status"]);
    assert_eq!(
        names_of(&status["roles"], "entra_role"),
        ["Global Reader", "Security Reader"],
        "{status:#}"
    );

    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        0,
        "no Azure role was requested"
    );
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}
