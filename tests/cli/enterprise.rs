//! The `enterprise` tenant: five subscriptions, lists in pages of two (some first pages
//! empty), two VMs named `jumpbox-win-01`, several eligibilities for alice (the narrow JIT
//! Requester, Security Admin and Contributor with wildcards, Owner behind an authentication
//! context, JIT Requester behind MFA), no standing role for her, a range-only JIT policy,
//! asynchronous JIT, RS256 tokens, `http://localhost` as the only registered redirect, no
//! consent for Microsoft Graph, and a guest. Every story runs the real binaries against it, and
//! the simulator's request-schema check must refuse none of the requests they send.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const JUMP_BOXES: &str = "/subscriptions/9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93";
const WIN01: &str = "/subscriptions/9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01";
const LEGACY_WIN01: &str = "/subscriptions/2f6a8c0e-4b3d-4c5e-9a7b-8c9d0e1f2a34/resourceGroups/rg-legacy/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01";
const FINANCE_REPORTS: &str =
    "/subscriptions/5e8a1f3b-7c2d-4b9e-a6f0-3d4c5b6a7e82/resourceGroups/rg-finance-reports";
const SECURE: &str =
    "/subscriptions/9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93/resourceGroups/rg-jumpboxes-secure";
const DAVE: &str = "dave@contoso.example";
const ERIN: &str = "erin_fabrikam.example#EXT#@contoso.example";

/// Where the simulator's gate listens for a VM port (its own address, or the firewall's
/// mapped port when simulators running side by side hold the address).
async fn gate_address(sim: &Sim, vm_id: &str, port: u16) -> String {
    let gate: Value = sim
        .http
        .get(format!("{}/_sim/gate", sim.url))
        .bearer_auth(sim.control_token())
        .send()
        .await
        .expect("gate")
        .json()
        .await
        .expect("json");
    let entry = gate
        .as_array()
        .expect("listeners")
        .iter()
        .find(|g| {
            g["vm"]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(vm_id))
                && g["port"] == port
        })
        .unwrap_or_else(|| panic!("no listener for {vm_id}:{port} in {gate}"));
    entry["address"].as_str().expect("address").to_string()
}

/// The names of the activation requests PUT so far, in order.
async fn activation_puts(sim: &Sim) -> Vec<String> {
    sim.events()
        .await
        .iter()
        .filter(|e| e["kind"] == "request" && e["method"] == "PUT")
        .filter_map(|e| e["path"].as_str())
        .filter_map(|p| p.split("/roleAssignmentScheduleRequests/").nth(1))
        .map(|name| name.split('?').next().unwrap_or(name).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_alice_connects_to_the_right_vm_through_pages_a_range_and_async_jit() {
    let sim = Sim::start("enterprise", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;

    // With no role active she can read no JIT policy: a bare name finds nothing, and the
    // refusal says to name the VM by its resource id.
    let out = alice.run(&[
        "connect",
        "jumpbox-win-01",
        "--justification",
        "Patch KB5031",
        "--no-launch",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("resource id"),
        "{}",
        text(&out.stderr)
    );

    let connect = alice.spawn(&[
        "--json",
        "connect",
        WIN01,
        "--justification",
        "Patch KB5031",
        "--duration",
        "1h",
        "--no-launch",
        "--timeout",
        "3m",
        "--allow-wide-source",
    ]);
    // bob's inbox answers an empty first page: the approval is on a later one.
    let item = wait_for_inbox(&bob).await;
    assert_eq!(item["role"], "JIT Requester");
    let before = sim.requests_seen("GET", "roleAssignmentApprovals").await;
    let again = bob.json(&["approvals"]);
    assert_eq!(again.as_array().map(Vec::len), Some(1));
    assert!(
        sim.requests_seen("GET", "roleAssignmentApprovals").await - before >= 2,
        "one look at the inbox reads past its empty first page"
    );
    let approved = bob.run(&[
        "approve",
        item["id"].as_str().expect("id"),
        "--justification",
        "ok",
    ]);
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let out = connect.wait_with_output().expect("connect");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let done: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(done["vm_id"], WIN01, "the VM asked for, not its namesake");
    // The policy allows two ranges only: the request asks for the one holding her address.
    assert!(
        stderr.contains("84.17.40.23 lies in the allowed range 84.17.32.0/20"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Initiating"),
        "asynchronous JIT shown as progress: {stderr}"
    );
    let opened = done["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == "open_port")
        .expect("open_port step");
    assert!(
        opened["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("3389 for 84.17.32.0/20")),
        "{opened}"
    );

    // Without her consent, a range wider than a /24 is not opened: refused before anything
    // is sent, naming the range and how many addresses it holds.
    let initiated = sim.requests_seen("POST", "initiate").await;
    let refused = alice.run(&["open", WIN01, "--justification", "Patch KB5031"]);
    assert!(!refused.status.success());
    let why = text(&refused.stderr);
    assert!(
        why.contains("84.17.32.0/20")
            && why.contains("4096 addresses")
            && why.contains("--allow-wide-source"),
        "{why}"
    );
    assert_eq!(sim.requests_seen("POST", "initiate").await, initiated);

    // The role was chosen by the VM's scope and least privilege: JIT Requester on the
    // resource group, not Security Admin on the subscription nor Contributor elsewhere.
    let requests = alice.json(&["requests"]);
    let roles: Vec<(&str, &str)> = requests
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| {
            (
                r["role"].as_str().unwrap_or(""),
                r["scope"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [(
            "JIT Requester",
            format!("{JUMP_BOXES}/resourceGroups/rg-jumpboxes").as_str()
        )]
    );

    // The gate admits her public address (the NAT the simulator models) to this VM only.
    let address = done["connect_to"].as_str().expect("connect_to");
    assert!(gate_admits(address, "127.0.0.1").await);
    assert!(
        !gate_admits(&gate_address(&sim, LEGACY_WIN01, 3389).await, "127.0.0.1").await,
        "the namesake stays shut"
    );
    let journal = alice.json(&["history", "--format", "json"]);
    assert!(
        journal
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["what"] == "port_opened"
                && e["vm"] == WIN01
                && e["source_ip"] == "84.17.32.0/20"),
        "the journal names the VM by resource id: {journal:#}"
    );
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_a_name_two_vms_share_is_refused_with_both_ids() {
    let sim = Sim::start("enterprise", 0);
    let dave = sim.user(DAVE);
    sim.sign_in(&dave).await;
    // dave may read every subscription: the name matches two VMs.
    let out = dave.run(&["open", "jumpbox-win-01", "--justification", "Maintenance"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(WIN01) && stderr.contains(LEGACY_WIN01),
        "{stderr}"
    );
    let targets = dave.json(&["targets"]);
    let ids: Vec<&str> = targets
        .as_array()
        .expect("targets")
        .iter()
        .filter_map(|t| t["vm_id"].as_str())
        .collect();
    assert!(
        ids.contains(&WIN01) && ids.contains(&LEGACY_WIN01),
        "every subscription, every page: {ids:?}"
    );
    assert_eq!(
        sim.requests_seen("POST", "/initiate").await,
        0,
        "no port opened"
    );
    // By resource id, the one he means.
    let out = dave.run(&[
        "--json",
        "open",
        LEGACY_WIN01,
        "--justification",
        "Maintenance",
        "--duration",
        "30m",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let opened: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(opened["vm"], "jumpbox-win-01");
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_step_up_signs_in_with_the_claim_and_sends_the_same_request_again() {
    let sim = Sim::start("enterprise", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let roles = alice.json(&["roles"]);
    let owner = roles
        .as_array()
        .expect("roles")
        .iter()
        .find(|r| r["role"] == "Owner")
        .expect("Owner eligibility");
    assert_eq!(owner["policy"]["auth_context"], "c1", "{owner:#}");
    let listed = text(&alice.run(&["roles"]).stdout);
    assert!(
        listed.contains("authentication context c1 required"),
        "{listed}"
    );

    // JIT Requester behind MFA on the secure resource group: the refusal asks for MFA.
    let mfa = [
        "activate",
        "JIT Requester",
        "--scope",
        SECURE,
        "--justification",
        "Audit",
        "--duration",
        "30m",
    ];
    let out = alice.run(&mfa);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("signin --mfa"),
        "{}",
        text(&out.stderr)
    );
    sim.sign_in_with(&alice, &["--mfa"]).await;
    let out = alice.run(&mfa);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Owner needs authentication context c1: Azure's refusal names the claim.
    let activate = [
        "--json",
        "activate",
        "Owner",
        "--scope",
        FINANCE_REPORTS,
        "--justification",
        "Quarter close",
        "--duration",
        "30m",
    ];
    let out = alice.run(&activate);
    assert!(!out.status.success());
    let refusal: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("a JSON error: {}", text(&out.stdout)));
    let claims = refusal["error"]["claims"]
        .as_str()
        .unwrap_or_else(|| panic!("claims in {refusal}"));
    assert_eq!(
        claims,
        r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#
    );
    let before = activation_puts(&sim).await;
    let first = before[before.len() - 1..].to_vec();

    // A sign-in that asks for the claim; then the same request (same name) succeeds.
    sim.sign_in_with(&alice, &["--claims", claims]).await;
    let again = alice.json(&activate[1..]);
    assert_eq!(again["role"], "Owner");
    let puts = activation_puts(&sim).await;
    assert_eq!(
        puts[before.len() - 1..],
        [first[0].clone(), first[0].clone()],
        "retried with the same request name"
    );
    assert_eq!(again["name"], first[0].as_str());

    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_the_watcher_announces_every_decision() {
    let sim = Sim::start("enterprise", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    alice.configure("[watch]\npending_poll_ms = 1000");
    let mut watch = alice.watch(&[]);
    let scope = format!("{JUMP_BOXES}/resourceGroups/rg-jumpboxes");
    let ask = [
        "activate",
        "JIT Requester",
        "--scope",
        scope.as_str(),
        "--justification",
        "Night shift",
        "--duration",
        "1h",
    ];
    assert!(alice.run(&ask).status.success());
    let item = wait_for_inbox(&bob).await;
    let denied = bob.run(&[
        "deny",
        item["id"].as_str().expect("id"),
        "--justification",
        "Not tonight",
    ]);
    assert!(denied.status.success(), "{}", text(&denied.stderr));
    let event = watch.expect("request_denied", Duration::from_secs(30));
    assert_eq!(event["justification"], "Not tonight", "{event}");

    assert!(alice.run(&ask).status.success());
    let item = wait_for_inbox(&bob).await;
    let approved = bob.run(&[
        "approve",
        item["id"].as_str().expect("id"),
        "--justification",
        "Go ahead",
    ]);
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let event = watch.expect("request_approved", Duration::from_secs(30));
    assert_eq!(event["justification"], "Go ahead", "{event}");
    watch.settle(Duration::from_secs(2));
    assert_eq!(watch.count("request_denied"), 1);
    assert_eq!(watch.count("request_approved"), 1);

    // Extending the active role is a new activation through its policy, said plainly. Not
    // in its first five minutes, which PIM refuses: nothing is sent then.
    let extend = [
        "extend",
        "JIT Requester",
        "--justification",
        "Longer night",
        "--duration",
        "1h",
    ];
    let puts = activation_puts(&sim).await.len();
    let early = alice.run(&extend);
    assert!(!early.status.success());
    assert!(
        text(&early.stderr).contains("first 5 minutes"),
        "{}",
        text(&early.stderr)
    );
    sim.advance(301).await;
    // Without a terminal to ask at, ending the role to renew it needs --yes.
    let unconfirmed = alice.run(&extend);
    assert!(!unconfirmed.status.success());
    let said = text(&unconfirmed.stderr);
    assert!(
        said.contains("until they approve you hold no JIT Requester") && said.contains("--yes"),
        "{said}"
    );
    assert_eq!(activation_puts(&sim).await.len(), puts, "nothing was sent");
    let mut confirmed = extend.to_vec();
    confirmed.push("--yes");
    let out = alice.run(&confirmed);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        text(&out.stdout).contains("PIM does not let you extend an activation"),
        "{}",
        text(&out.stdout)
    );
    // The ended assignment lingers a few seconds: the new activation waited for it to go,
    // rather than being refused as already active and leaving her with no role.
    assert!(
        stderr.contains("waiting for PIM to remove the ended JIT Requester")
            || stderr.contains("PIM still holds the ended JIT Requester"),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains("PendingApproval"),
        "a new request, waiting for bob: {}",
        text(&out.stdout)
    );
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_erin_the_guest_signs_in_and_sees_her_name() {
    let sim = Sim::start("enterprise", 0);
    let erin = sim.user(ERIN);
    sim.sign_in(&erin).await;
    let me = erin.json(&["whoami"]);
    // A guest's token has neither `upn` nor `preferred_username`: `unique_name` stands in.
    assert_eq!(me["upn"], "erin@fabrikam.example", "{me}");
    assert!(
        me["name"].as_str().is_some_and(|n| n.starts_with("Erin")),
        "{me}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_graph_without_consent_explains_itself_and_keeps_the_sign_in() {
    let sim = Sim::start("enterprise", 0);
    let dave = sim.user(DAVE);
    sim.sign_in(&dave).await;
    let out = dave.run(&[
        "admin",
        "pim",
        "make-eligible",
        "--role",
        "JIT Requester",
        "--principal",
        "carol@contoso.example",
        "--scope",
        SECURE,
        "--require-justification",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not consented") && stderr.contains("sign-in is kept"),
        "{stderr}"
    );
    assert!(
        dave.run(&["whoami"]).status.success(),
        "the ARM sign-in survives"
    );

    // By object id the change goes through, and the policy's MFA requirement stays.
    let carol = "ca201000-0000-4000-8000-000000000003";
    let out = dave.run(&[
        "--json",
        "admin",
        "pim",
        "make-eligible",
        "--role",
        "JIT Requester",
        "--principal",
        carol,
        "--scope",
        SECURE,
        "--require-justification",
        "--max",
        "PT1H",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(made["policy"]["mfa_required"], true, "MFA kept: {made:#}");
    assert_eq!(made["policy"]["max_duration"], "PT1H", "{made:#}");
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

/// A role an administrator makes her eligible for while she watches is announced once, and
/// the many she could already activate are not announced at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_a_new_eligibility_is_announced_once() {
    let sim = Sim::start("enterprise", 0);
    let dave = sim.user(DAVE);
    let alice = sim.user(ALICE);
    sim.sign_in(&dave).await;
    sim.sign_in(&alice).await;
    alice.configure("[watch]\neligibility_check_secs = 1\n");
    let mut watching = alice.watch(&[]);
    watching.first_look();
    // What she may activate now is recorded before anything changes.
    watching.saved("\"eligible\": [");

    // By object id: the tenant's Graph has not consented to the admin commands' lookup.
    let out = dave.run(&[
        "admin",
        "pim",
        "make-eligible",
        "--role",
        "JIT Requester",
        "--principal",
        "a11ce000-0000-4000-8000-000000000001",
        "--scope",
        JUMP_BOXES,
        "--require-justification",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let added = watching.expect("eligibility_added", Duration::from_secs(30));
    assert_eq!(
        (added["kind"].as_str(), added["role"].as_str()),
        (Some("role"), Some("JIT Requester")),
        "{added:#}"
    );
    watching.settle(Duration::from_secs(3));
    let before = watching.kill();

    // Started again, it repeats nothing.
    let mut watching = alice.watch(&[]);
    watching.first_look();
    watching.settle(Duration::from_secs(3));
    let after = watching.kill();
    let added: Vec<&Value> = before
        .iter()
        .chain(&after)
        .filter(|e| e["event"] == "eligibility_added")
        .collect();
    assert_eq!(added.len(), 1, "{added:#?}");
}
