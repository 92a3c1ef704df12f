//! Access the way large organisations grant it, in the `enterprise` tenant: PIM for Groups
//! (frank is only an eligible member of "JIT Operators", which holds JIT Requester on
//! `rg-jumpboxes`; alice is that and directly eligible), a management group (henry is
//! eligible at `mg-jumpbox-estate`), a guest (erin), and PIM's timing rules (nothing ends in
//! its first five minutes, an ended assignment lingers, the first initiate after a grant is
//! refused while ARM's caches catch up). Every story runs the real binaries against the
//! simulator, and no request may be refused for its shape.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const FRANK: &str = "frank@contoso.example";
const HENRY: &str = "henry@contoso.example";
const ERIN: &str = "erin_fabrikam.example#EXT#@contoso.example";
const GROUP: &str = "JIT Operators";
const GROUP_ID: &str = "9a7e0000-0000-4000-8000-00000000c0de";
const RG: &str = "/subscriptions/9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93/resourceGroups/rg-jumpboxes";
const WIN01: &str = "/subscriptions/9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01";
const LINUX01: &str = "/subscriptions/9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-linux-01";
const MG: &str = "/providers/Microsoft.Management/managementGroups/mg-jumpbox-estate";

/// The events of a kind the simulator recorded.
async fn events_of(sim: &Sim, kind: &str) -> Vec<Value> {
    sim.events()
        .await
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// `connect` as the tests run it: JSON, no client, bounded waits, an hour unless `extra`
/// says otherwise.
fn connect_args<'a>(vm: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--json",
        "connect",
        vm,
        "--justification",
        "Patch night",
        "--no-launch",
        "--timeout",
        "3m",
    ];
    args.extend_from_slice(extra);
    args
}

fn step<'v>(connected: &'v Value, name: &str) -> &'v Value {
    connected["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step in {connected:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_frank_reaches_the_jump_box_through_his_group() {
    let sim = Sim::start("enterprise", 0);
    let frank = sim.user(FRANK);
    let bob = sim.user(BOB);
    sim.sign_in(&frank).await;
    sim.sign_in(&bob).await;

    // roles: the group, beside no Azure role at all, with its policy read from Graph.
    let roles = frank.json(&["roles"]);
    let listed = roles.as_array().expect("roles");
    assert_eq!(listed.len(), 1, "{roles:#}");
    assert_eq!(listed[0]["kind"], "group");
    assert_eq!(listed[0]["role"], GROUP);
    assert_eq!(listed[0]["scope"], GROUP_ID);
    assert_eq!(listed[0]["policy"]["approval_required"], true, "{roles:#}");
    let text_roles = text(&frank.run(&["roles"]).stdout);
    assert!(
        text_roles.contains("JIT Operators  (group membership)")
            && text_roles.contains("approval by"),
        "{text_roles}"
    );

    // With no standing role, targets says what he could reach rather than nothing.
    let targets = text(&frank.run(&["targets"]).stdout);
    assert!(
        targets.contains("membership of group JIT Operators")
            && targets.contains("jumpgate activate group:'JIT Operators'"),
        "{targets}"
    );

    frank.configure("[watch]\npending_poll_ms = 1000");
    let mut watch = frank.watch(&[]);
    watch.first_look();
    let connect = frank.spawn(&connect_args(WIN01, &["--allow-wide-source"]));
    let item = approve_next(&bob).await;
    assert_eq!(item["kind"], "group", "{item}");
    assert_eq!(item["role"], GROUP);
    assert!(
        item["requester"]
            .as_str()
            .is_some_and(|r| r.to_ascii_lowercase().contains("frank")),
        "bob sees who asks: {item}"
    );
    let out = connect.wait_with_output().expect("connect");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let done: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(done["vm_id"], WIN01);
    assert!(
        step(&done, "request_role")["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("member of JIT Operators")),
        "{done:#}"
    );
    // ARM decides from the token's groups claim: a new token was taken after approval.
    assert!(stderr.contains("taking a new sign-in token"), "{stderr}");
    let issued: Vec<Value> = events_of(&sim, "entra.token_issued")
        .await
        .into_iter()
        .filter(|e| e["upn"] == FRANK)
        .collect();
    assert!(
        issued.len() >= 2,
        "a token issued after the membership: {issued:#?}"
    );
    // The first initiate after the grant was refused while ARM's caches caught up, and
    // sent again with a new token.
    assert!(stderr.contains("caches lag behind a new grant"), "{stderr}");
    assert!(!events_of(&sim, "jit.initiate_refused_cache")
        .await
        .is_empty());
    assert!(
        gate_admits(done["connect_to"].as_str().expect("address"), "127.0.0.1").await,
        "the port is open for him"
    );

    // The watcher announced the approval once.
    let approved = watch.expect("request_approved", Duration::from_secs(30));
    assert_eq!(approved["role"], GROUP, "{approved}");
    watch.settle(Duration::from_secs(2));
    assert_eq!(watch.count("request_approved"), 1);

    // The membership cannot be ended in its first five minutes: refused before anything is
    // sent, with when it can be.
    let posts = || async {
        sim.requests_seen("POST", "privilegedAccess/group/assignmentScheduleRequests")
            .await
    };
    let before = posts().await;
    let early = frank.run(&["deactivate", GROUP]);
    assert!(!early.status.success());
    let said = text(&early.stderr);
    assert!(
        said.contains("first 5 minutes") && said.contains("Nothing was changed"),
        "{said}"
    );
    assert_eq!(early.status.code(), Some(3), "a policy refusal");
    assert_eq!(posts().await, before, "nothing was sent");
    sim.advance(301).await;
    let ended = frank.run(&["deactivate", GROUP]);
    assert!(ended.status.success(), "{}", text(&ended.stderr));
    assert_eq!(posts().await, before + 1);
    sim.advance(10).await;
    let active = frank.json(&["roles", "--active"]);
    assert_eq!(active, serde_json::json!([]), "the membership ended");
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
    drop(watch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_alice_chooses_between_her_role_and_the_group() {
    let sim = Sim::start("enterprise", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;

    // Before the group has been active, what it holds cannot be read by her: the direct role
    // is the way, and the group one that may reach it.
    let ways = alice.json(&["roles", "--for", WIN01]);
    let first = &ways.as_array().expect("ways")[0];
    assert_eq!(
        (first["kind"].as_str(), first["certain"].as_bool()),
        (Some("role"), Some(true)),
        "{ways:#}"
    );
    assert!(
        ways.as_array()
            .expect("ways")
            .iter()
            .any(|w| w["kind"] == "group" && w["certain"] == false),
        "{ways:#}"
    );

    // She activates the membership; once it is in force ARM lists what the group holds,
    // and Jumpgate learns it.
    let activate = alice.spawn(&[
        "activate",
        &format!("group:{GROUP}"),
        "--justification",
        "Night shift",
        "--duration",
        "10m",
        "--wait=3m",
    ]);
    approve_next(&bob).await;
    let out = activate.wait_with_output().expect("activate");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = alice.json(&["status"]);
    assert!(
        status["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["kind"] == "group" && r["role"] == GROUP),
        "{status:#}"
    );
    let ways = alice.json(&["roles", "--for", WIN01]);
    let group = ways
        .as_array()
        .expect("ways")
        .iter()
        .find(|w| w["kind"] == "group")
        .expect("the group's way");
    assert_eq!(group["certain"], true, "{ways:#}");
    assert_eq!(group["role"], "JIT Requester");
    assert_eq!(
        group["scope"].as_str().map(str::to_ascii_lowercase),
        Some(RG.to_ascii_lowercase())
    );

    // Past the membership's end and her token's hour (ARM goes on honouring a membership
    // its token names), she holds nothing again; what the group holds stays known.
    sim.advance(3700).await;

    // Both reach the jump box alike: she is asked to choose, and told how.
    let out = alice.run(&connect_args(WIN01, &["--allow-wide-source"]));
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let refusal: Value = serde_json::from_slice(&out.stdout).expect("a JSON error");
    assert_eq!(refusal["error"]["code"], "choose_way", "{refusal}");
    let said = refusal["error"]["message"].as_str().unwrap_or_default();
    assert!(
        said.contains("Several ways reach jumpbox-win-01 alike")
            && said.contains("--via 'JIT Requester'")
            && said.contains("--via 'group:JIT Operators'"),
        "{said}"
    );
    let puts = sim
        .requests_seen("PUT", "roleAssignmentScheduleRequests")
        .await;
    let connect = alice.spawn(&connect_args(
        WIN01,
        &["--via", "group:JIT Operators", "--allow-wide-source"],
    ));
    let item = approve_next(&bob).await;
    assert_eq!(item["kind"], "group", "{item}");
    let out = connect.wait_with_output().expect("connect");
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The choice is remembered: the next time, the group again, unasked.
    sim.advance(3700).await;
    let connect = alice.spawn(&connect_args(WIN01, &["--allow-wide-source"]));
    let item = approve_next(&bob).await;
    assert_eq!(item["kind"], "group", "the remembered way: {item}");
    let out = connect.wait_with_output().expect("connect");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        puts,
        "no Azure role was requested"
    );
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_henry_reaches_the_jump_box_through_a_management_group() {
    let sim = Sim::start("enterprise", 0);
    let henry = sim.user(HENRY);
    sim.sign_in(&henry).await;
    let roles = henry.json(&["roles"]);
    assert_eq!(roles[0]["scope"], MG, "{roles:#}");

    let out = henry.run(&connect_args(LINUX01, &[]));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let done: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(done["vm_id"], LINUX01);
    // Activated at the management group, and confirmed in effect at the VM's group.
    let puts: Vec<String> = sim
        .events()
        .await
        .iter()
        .filter(|e| e["kind"] == "request" && e["method"] == "PUT")
        .filter_map(|e| e["path"].as_str().map(str::to_string))
        .filter(|p| p.contains("roleAssignmentScheduleRequests"))
        .collect();
    assert_eq!(puts.len(), 1, "{puts:#?}");
    assert!(puts[0].starts_with(MG), "{}", puts[0]);
    assert!(
        sim.requests_seen(
            "GET",
            "rg-jumpboxes/providers/Microsoft.Authorization/permissions"
        )
        .await
            >= 1
    );
    assert_eq!(step(&done, "await_effect")["step"], "await_effect");
    // Reachable means the gate answered with the SSH banner for his address.
    assert_eq!(step(&done, "await_reachable")["step"], "await_reachable");
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_erin_the_guest_connects_is_reminded_extends_and_resumes() {
    let sim = Sim::start("enterprise", 0);
    let erin = sim.user(ERIN);
    let bob = sim.user(BOB);
    sim.sign_in(&erin).await;
    sim.sign_in(&bob).await;
    erin.configure("[watch]\npending_poll_ms = 1000\nopen_refresh_secs = 2");
    let mut watch = erin.watch(&[]);
    watch.first_look();

    let connect = erin.spawn(&connect_args(LINUX01, &["--duration", "30m"]));
    approve_next(&bob).await;
    let out = connect.wait_with_output().expect("connect");
    assert!(out.status.success(), "{}", text(&out.stderr));

    // ARM recorded her by the directory's UPN; she knows the rule is hers.
    let policy: Value = sim
        .arm_get_as(
            "dave@contoso.example",
            &format!("{RG}/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default?api-version=2020-01-01"),
        )
        .await;
    let requestor = policy["properties"]["requests"][0]["requestor"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(requestor, ERIN, "{policy:#}");
    let status = erin.json(&["status"]);
    assert_eq!(
        status["ports"].as_array().map(Vec::len),
        Some(1),
        "{status:#}"
    );

    // Reminders before the end: for her role, and for her port.
    sim.advance(16 * 60).await;
    let reminders: Vec<Value> = (0..2)
        .map(|_| watch.expect("expiry_reminder", Duration::from_secs(30)))
        .collect();
    assert!(
        reminders.iter().any(|r| r["access"]["type"] == "port"
            && r["access"]["vm_id"]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(LINUX01))),
        "{reminders:#?}"
    );

    // extend finds her open port (a new JIT request for it).
    let extended = erin.run(&[
        "extend",
        LINUX01,
        "--duration",
        "30m",
        "--justification",
        "More time",
    ]);
    assert!(extended.status.success(), "{}", text(&extended.stderr));

    // A connect killed after it asked JIT, run again: the earlier request is used, not a
    // second one. (An hour: longer than what is open, so the first run must ask.)
    let initiates = || async { sim.requests_seen("POST", "/initiate").await };
    let before = initiates().await;
    let mut killed = erin.spawn(&connect_args(LINUX01, &[]));
    eventually(
        "the connect to ask JIT",
        Duration::from_secs(60),
        || async { initiates().await > before },
    )
    .await;
    let _ = killed.kill();
    let _ = killed.wait();
    let again = erin.run(&connect_args(LINUX01, &[]));
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("an earlier run already asked JIT"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(initiates().await, before + 1, "no duplicate request");
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
    drop(watch);
}
