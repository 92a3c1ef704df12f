//! `jumpgate admin`: the set-up story on the `empty` tenant, and each command's errors.

use serde_json::Value;

use crate::support::*;

const DAVE: &str = "dave@contoso.example";
const SUB: &str = "/subscriptions/1c9d3f2a-6e4b-4a8c-b7d5-2f0e1a3b4c5d";
const RG: &str = "/subscriptions/1c9d3f2a-6e4b-4a8c-b7d5-2f0e1a3b4c5d/resourceGroups/rg-jumpboxes";

/// `admin pim make-eligible` for the JIT Requester role at the resource group, as `principal`,
/// with more flags.
fn make_eligible<'a>(principal: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "admin",
        "pim",
        "make-eligible",
        "--role",
        "JIT Requester",
        "--principal",
        principal,
        "--scope",
        RG,
    ];
    args.extend_from_slice(extra);
    args
}

fn fails(user: &User, args: &[&str], code: i32, needle: &str) {
    let out = user.run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains(needle),
        "{args:?} should say '{needle}': {}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dave_sets_up_jit_from_nothing_and_alice_connects() {
    let sim = Sim::start("empty", 0);
    let dave = sim.user(DAVE);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    for u in [&dave, &alice, &bob] {
        sim.sign_in(u).await;
    }
    // Nothing is set up: alice cannot connect.
    let out = alice.run(&[
        "connect",
        "jumpbox-win-01",
        "--justification",
        "x",
        "--no-launch",
    ]);
    assert_ne!(out.status.code(), Some(0));

    // 1. JIT on both jump boxes; a second port keeps the first and the other VM's rules.
    let win = dave.json(&[
        "admin",
        "jit",
        "enable",
        "jumpbox-win-01",
        "--port",
        "3389/tcp",
        "--max",
        "PT3H",
    ]);
    assert_eq!(win["created"], true, "{win}");
    let linux = dave.json(&[
        "admin",
        "jit",
        "enable",
        "jumpbox-linux-01",
        "--port",
        "22",
        "--max",
        "PT1H",
        "--source",
        "*",
    ]);
    assert_eq!(
        linux["created"], false,
        "the resource group's policy is reused: {linux}"
    );
    dave.json(&[
        "admin",
        "jit",
        "enable",
        "jumpbox-win-01",
        "--port",
        "5986/tcp",
        "--max",
        "PT30M",
    ]);
    let shown = dave.json(&["admin", "jit", "show"]);
    let vms = shown[0]["properties"]["virtualMachines"]
        .as_array()
        .expect("vms");
    assert_eq!(vms.len(), 2, "{shown:#}");
    let ports: Vec<u64> = vms
        .iter()
        .flat_map(|v| v["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["number"].as_u64())
        .collect();
    assert_eq!(ports, [3389, 5986, 22]);
    dave.json(&[
        "admin",
        "jit",
        "disable",
        "jumpbox-win-01",
        "--port",
        "5986",
    ]);
    assert_eq!(
        dave.json(&["admin", "jit", "show", "jumpbox-win-01"])[0]["properties"]["virtualMachines"]
            [0]["ports"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // 2. The requester role, idempotently.
    let printed = dave.run(&[
        "admin",
        "role",
        "create-jit-requester",
        "--scope",
        SUB,
        "--print",
    ]);
    let printed: Value = serde_json::from_slice(&printed.stdout).expect("role JSON");
    assert_eq!(
        printed["properties"]["permissions"][0]["actions"]
            .as_array()
            .map(Vec::len),
        Some(7),
        "BRIEF.md's five, and the policies' and the NIC's own reads"
    );
    let role = dave.json(&["admin", "role", "create-jit-requester", "--scope", SUB]);
    assert_eq!(role["created"], true, "{role}");
    let again = dave.json(&["admin", "role", "create-jit-requester", "--scope", SUB]);
    assert_eq!(again["created"], false);
    assert_eq!(again["id"], role["id"], "updated, not duplicated");

    // 3. alice eligible, bob approves, justification required, at most 8 hours.
    let eligible = dave.json(&make_eligible(
        ALICE,
        &[
            "--approver",
            BOB,
            "--max",
            "PT8H",
            "--require-justification",
        ],
    ));
    assert_eq!(eligible["already_eligible"], false, "{eligible:#}");
    assert_eq!(eligible["policy"]["approval_required"], true);
    assert_eq!(eligible["policy"]["max_duration"], "PT8H");
    assert_eq!(eligible["policy"]["justification_required"], true);
    assert!(
        eligible["policy"]["approvers"]
            .to_string()
            .contains("Bob Brandt"),
        "{eligible:#}"
    );
    let text_out = dave.run(&make_eligible(
        ALICE,
        &[
            "--approver",
            BOB,
            "--max",
            "PT8H",
            "--require-justification",
        ],
    ));
    assert!(
        text(&text_out.stdout).contains("already eligible"),
        "{}",
        text(&text_out.stdout)
    );
    assert!(
        text(&text_out.stdout).contains("Effective activation rules"),
        "{}",
        text(&text_out.stdout)
    );

    // 4. alice connects exactly as in the demo tenant.
    let connect = alice.spawn(&[
        "--json",
        "connect",
        "jumpbox-win-01",
        "--justification",
        "Rotate the certificates",
        "--no-launch",
    ]);
    let item = wait_for_inbox(&bob).await;
    assert_eq!(item["justification"], "Rotate the certificates");
    let out = bob.run(&[
        "approve",
        item["id"].as_str().expect("id"),
        "--justification",
        "Go ahead",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = connect.wait_with_output().expect("connect");
    assert!(out.status.success(), "connect: {}", text(&out.stderr));
    let connected: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let addr = connected["connect_to"]
        .as_str()
        .expect("address")
        .to_string();
    assert!(gate_admits(&addr, "127.0.0.1").await);
    assert!(!gate_admits(&addr, "127.0.0.2").await);

    // 5. The audit shows her request, its justification, bob's approval and the grant.
    let rows = dave.json(&["admin", "audit", "--scope", SUB, "--format", "json"]);
    let rows = rows.as_array().expect("rows");
    let pim = rows
        .iter()
        .find(|r| r["source"] == "pim")
        .expect("a PIM row");
    assert_eq!(pim["who"], ALICE);
    assert_eq!(pim["what"], "JIT Requester");
    assert_eq!(pim["justification"], "Rotate the certificates");
    assert_eq!(pim["approver"], BOB);
    assert!(
        pim["decision"]
            .as_str()
            .is_some_and(|d| d.starts_with("approved: Go ahead")),
        "{pim}"
    );
    let jit = rows
        .iter()
        .find(|r| r["source"] == "jit")
        .expect("a JIT row");
    assert_eq!(jit["who"], ALICE);
    assert_eq!(jit["what"], "jumpbox-win-01 port 3389");
    assert!(
        jit["decision"]
            .as_str()
            .is_some_and(|d| d.starts_with("granted for 127.0.0.1")),
        "{jit}"
    );
    let csv = dave.run(&["admin", "audit", "--scope", SUB, "--format", "csv"]);
    assert!(
        text(&csv.stdout).starts_with("time,source,who,what"),
        "{}",
        text(&csv.stdout)
    );

    // The review: alice used her eligibility just now.
    let review = dave.json(&["admin", "review", "--scope", RG, "--unused-for", "90d"]);
    assert_eq!(review[0]["principal"], ALICE);
    assert_eq!(review[0]["remove_candidate"], false, "{review:#}");
    sim.advance(100 * 86_400).await;
    let later = dave.json(&["admin", "review", "--scope", RG, "--unused-for", "90d"]);
    assert_eq!(later[0]["remove_candidate"], true, "{later:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_refuse_non_admins_and_bad_input_before_sending() {
    let sim = Sim::start("empty", 0);
    let dave = sim.user(DAVE);
    let alice = sim.user(ALICE);
    sim.sign_in(&dave).await;
    sim.sign_in(&alice).await;

    // A non-admin caller: ARM refuses each command.
    let denied = "you do not hold a role that allows this";
    fails(
        &alice,
        &[
            "admin",
            "jit",
            "enable",
            "jumpbox-win-01",
            "--port",
            "3389",
            "--max",
            "PT1H",
        ],
        3,
        denied,
    );
    fails(
        &alice,
        &["admin", "role", "create-jit-requester", "--scope", RG],
        3,
        denied,
    );
    dave.json(&["admin", "role", "create-jit-requester", "--scope", SUB]);
    fails(&alice, &make_eligible(ALICE, &[]), 3, denied);
    fails(&alice, &["admin", "audit", "--scope", SUB], 3, denied);
    fails(&alice, &["admin", "review", "--scope", SUB], 3, denied);
    dave.json(&[
        "admin",
        "jit",
        "enable",
        "jumpbox-win-01",
        "--port",
        "3389",
        "--max",
        "PT1H",
    ]);
    fails(
        &alice,
        &["admin", "jit", "disable", "jumpbox-win-01"],
        3,
        denied,
    );

    let writes = || async { sim.requests_seen("PUT", "jitNetworkAccessPolicies").await };
    let before = writes().await;
    // A bad prefix, a duration over a day, a bad port, an unknown VM: refused before anything
    // is sent.
    for (vm, port, max, source, needle) in [
        (
            "jumpbox-win-01",
            "3389",
            "PT1H",
            "10.0.0.300",
            "not a source JIT accepts",
        ),
        (
            "jumpbox-win-01",
            "3389",
            "PT1H",
            "203.0.113.7/24",
            "203.0.113.0/24",
        ),
        (
            "jumpbox-win-01",
            "3389",
            "P2D",
            "*",
            "between 5 minutes and 1 day",
        ),
        (
            "jumpbox-win-01",
            "3389",
            "PT1M",
            "*",
            "between 5 minutes and 1 day",
        ),
        ("jumpbox-win-01", "rdp", "PT1H", "*", "not a port"),
        (
            "jumpbox-nope",
            "3389",
            "PT1H",
            "*",
            "No VM named 'jumpbox-nope'",
        ),
    ] {
        let args = [
            "admin", "jit", "enable", vm, "--port", port, "--max", max, "--source", source,
        ];
        fails(&dave, &args, 1, needle);
    }
    assert_eq!(writes().await, before);
    fails(
        &dave,
        &[
            "admin",
            "role",
            "create-jit-requester",
            "--scope",
            "/subscriptions/not-a-guid",
        ],
        1,
        "is not a scope",
    );

    // An unknown principal or approver, or a bad maximum: nothing is sent.
    let eligibility_puts = sim
        .requests_seen("PUT", "roleEligibilityScheduleRequests")
        .await;
    fails(
        &dave,
        &make_eligible("mallory@contoso.example", &[]),
        1,
        "No user 'mallory@contoso.example' in the directory",
    );
    fails(
        &dave,
        &make_eligible(ALICE, &["--approver", "nobody@contoso.example"]),
        1,
        "No user 'nobody@contoso.example'",
    );
    fails(
        &dave,
        &make_eligible(ALICE, &["--approver", ALICE]),
        1,
        "cannot approve their own",
    );
    fails(
        &dave,
        &make_eligible(ALICE, &["--max", "P2D"]),
        1,
        "--max must be between",
    );
    fails(
        &dave,
        &[
            "admin",
            "pim",
            "make-eligible",
            "--role",
            "No Such Role",
            "--principal",
            ALICE,
            "--scope",
            RG,
        ],
        1,
        "No role named 'No Such Role'",
    );
    assert_eq!(
        sim.requests_seen("PUT", "roleEligibilityScheduleRequests")
            .await,
        eligibility_puts
    );
    fails(
        &dave,
        &["admin", "audit", "--since", "last week"],
        1,
        "--since takes a date",
    );
    fails(
        &dave,
        &["admin", "review", "--unused-for", "soon"],
        1,
        "not a duration",
    );
}
