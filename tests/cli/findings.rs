//! What the review of the groups work found besides, each shown through the real binaries
//! against the simulator: a colleague's request on a shared jump box, a refresh answer
//! without a refresh token, an activation policy that a filtered list does not return, and
//! JIT policies read at the VM's resource group.

use serde_json::{json, Value};

use crate::support::*;

const DAVE: &str = "dave@contoso.example";
const RG: &str = "/subscriptions/9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93/resourceGroups/rg-jumpboxes";
const WIN01: &str = "/subscriptions/9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01";

/// alice's port on a jump box stays hers when dave, a colleague, opens the same port for
/// himself from elsewhere: JIT revokes only a requester's own older rule, and Jumpgate finds
/// her rule by requestor and source, not as the box's newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleagues_request_on_a_shared_jump_box_hides_nothing() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    let dave = sim.user(DAVE);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    sim.sign_in(&dave).await;
    activate_approved(&alice, &bob, "2h").await;
    let opened = alice.json(&[
        "open",
        "jumpbox-linux-01",
        "--duration",
        "30m",
        "--justification",
        "Patch night",
    ]);
    let mine = opened["source"].as_str().expect("source").to_string();

    // dave (an Owner) opens the same port for himself, from another address, later.
    let his = dave.json(&[
        "open",
        "jumpbox-linux-01",
        "--duration",
        "1h",
        "--justification",
        "Backup check",
        "--ip",
        "93.184.216.34",
    ]);
    assert_eq!(his["source"], "93.184.216.34", "{his}");

    let status = alice.json(&["status"]);
    let ports = status["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 1, "{status:#}");
    assert_eq!(ports[0]["source"], mine.as_str());
    assert_eq!(
        ports[0]["status"], "Initiated",
        "hers is still in force: {status:#}"
    );
    let dave_status = dave.json(&["status"]);
    assert_eq!(
        dave_status["ports"][0]["source"], "93.184.216.34",
        "and his is his: {dave_status:#}"
    );
    // (Her watcher takes his request for no end of hers: watch.rs, RELIABILITY #14.)
    assert!(
        !sim.events()
            .await
            .iter()
            .any(|e| e["kind"] == "jit.revoked" && e["reason"] == "NewerRequestInitiated"),
        "nobody's rule was revoked"
    );
}

/// A refresh answer may carry no refresh token (RFC 6749 §6): the one sent stays valid, and
/// the next renewal uses it instead of asking the person to sign in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_answer_without_a_refresh_token_keeps_the_sign_in_renewable() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    sim.control("/entra", json!({"rotate_refresh_tokens": false}))
        .await;
    for _ in 0..2 {
        // Past the access token's hour: each run renews the sign-in.
        sim.advance(3500).await;
        let out = alice.run(&["roles", "--active"]);
        assert!(
            out.status.success(),
            "renewed with the refresh token kept: {}",
            text(&out.stderr)
        );
    }
    let renewals = sim
        .events()
        .await
        .iter()
        .filter(|e| e["kind"] == "entra.token_issued" && e["upn"] == ALICE)
        .count();
    assert!(renewals >= 3, "the sign-in and two renewals: {renewals}");
}

/// The activation policy's filtered list may hold nothing for the role (the filter is not in
/// the spec, and compares whole ids ARM writes in more than one form): Jumpgate reads the
/// whole list and matches by the role's GUID, so the pre-flight check still refuses what the
/// policy would, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_activation_policy_is_found_when_the_filtered_list_is_empty() {
    let sim = Sim::start("enterprise", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let out = alice.run(&[
        "activate",
        "JIT Requester",
        "--scope",
        RG,
        "--justification",
        "Patch night",
        "--duration",
        "9h",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(said.contains("Not sent") && said.contains("8h"), "{said}");
    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        0,
        "nothing was sent"
    );
    let roles = alice.json(&["roles"]);
    let jit = roles
        .as_array()
        .expect("roles")
        .iter()
        .find(|r| {
            r["role"] == "JIT Requester"
                && r["scope"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(RG))
        })
        .expect("JIT Requester at rg-jumpboxes");
    assert_eq!(jit["policy"]["approval_required"], true, "{jit:#}");
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

/// Named by resource id, a VM's JIT policy is read at its resource group, where a requester's
/// role holds, not across the subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_named_by_id_has_its_policy_read_at_its_resource_group() {
    let sim = Sim::start("enterprise", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let out = alice.run(&["roles", "--for", WIN01]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        sim.requests_seen(
            "GET",
            "resourceGroups/rg-jumpboxes/providers/Microsoft.Security/jitNetworkAccessPolicies"
        )
        .await
            >= 1
    );
    assert_eq!(
        sim.requests_seen(
            "GET",
            "9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93/providers/Microsoft.Security/jitNetworkAccessPolicies"
        )
        .await,
        0,
        "not the subscription's list"
    );
}
