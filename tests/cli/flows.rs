//! The stories users live through.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_connects_once_bob_approves_and_access_ends_at_expiry() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    assert_eq!(alice.json(&["whoami"])["upn"], ALICE);

    let connect = alice.spawn(&[
        "--json",
        "connect",
        "jumpbox-win-01",
        "--justification",
        "Patch KB5031 on the jump box",
        "--duration",
        "1h",
        "--no-launch",
    ]);
    let item = wait_for_inbox(&bob).await;
    // bob takes a while: long waits say what they wait for, and for how long.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(item["requester"], ALICE);
    assert_eq!(item["role"], "JIT Requester");
    assert_eq!(item["justification"], "Patch KB5031 on the jump box");
    assert_eq!(item["duration"], "PT1H");
    assert!(item["scope"]
        .as_str()
        .expect("scope")
        .ends_with("rg-jumpboxes"));
    let approved = bob.run(&[
        "approve",
        item["id"].as_str().expect("id"),
        "--justification",
        "Approved for the patch window",
    ]);
    assert!(approved.status.success(), "{}", text(&approved.stderr));

    let out = connect.wait_with_output().expect("connect");
    assert!(
        out.status.success(),
        "connect failed: {}",
        text(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let steps: Vec<&str> = result["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "check_access",
            "request_role",
            "await_approval",
            "await_effect",
            "detect_ip",
            "open_port",
            "await_reachable"
        ]
    );
    let progress = text(&out.stderr);
    assert!(
        progress.contains("waiting for the approver's decision (1"),
        "{progress}"
    );
    assert!(
        progress.contains("role requested")
            && progress.contains("port opened")
            && progress.contains("reachable"),
        "{progress}"
    );

    // The port is open for alice's address only.
    let addr = result["connect_to"].as_str().expect("address").to_string();
    assert!(
        gate_admits(&addr, "127.0.0.1").await,
        "alice is let through"
    );
    assert!(
        !gate_admits(&addr, "127.0.0.2").await,
        "another address is refused"
    );

    let status = alice.json(&["status"]);
    assert_eq!(status["roles"][0]["role"], "JIT Requester");
    assert_eq!(status["ports"][0]["port"], 3389);

    // Past the end time the rule expires and the gate closes.
    sim.advance(3601).await;
    assert!(
        !gate_admits(&addr, "127.0.0.1").await,
        "closed after endTimeUtc"
    );
    assert_eq!(
        alice.json(&["status"])["ports"]
            .as_array()
            .expect("ports")
            .len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_launches_the_rdp_client_with_a_generated_file() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    activate_approved(&alice, &bob, "2h").await;

    let connected = alice.run(&[
        "connect",
        "jumpbox-win-01",
        "--justification",
        "Maintenance window",
    ]);
    assert!(connected.status.success(), "{}", text(&connected.stderr));
    assert!(
        text(&connected.stderr).contains("client launched"),
        "{}",
        text(&connected.stderr)
    );
    let launched =
        std::fs::read_to_string(sim.dir.path().join("rdp-launches")).expect("the RDP client ran");
    assert!(launched.contains("full address:s:"), "{launched}");
    assert!(launched.contains("username:s:alice"), "{launched}");
    // RELIABILITY #19: nothing redirected unless the configuration says so.
    assert!(launched.contains("redirectclipboard:i:0"), "{launched}");
    assert!(!launched.to_ascii_lowercase().contains("password"));

    let ssh = alice.run(&[
        "connect",
        "jumpbox-linux-01",
        "--justification",
        "Maintenance window",
    ]);
    assert!(ssh.status.success(), "{}", text(&ssh.stderr));
    let args =
        std::fs::read_to_string(sim.dir.path().join("ssh-launches")).expect("the SSH client ran");
    // Direct to the VM, or through the firewall address when another simulator holds port 22.
    let direct = args.trim_end().ends_with(" -- alice@127.0.0.11");
    assert!(
        args.starts_with("-p ") && (direct || args.trim_end().ends_with(" -- alice@127.0.0.9")),
        "{args}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_exits_3_with_the_approvers_reason() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let activate = alice.spawn(&[
        "activate",
        "JIT Requester",
        "--justification",
        "Friday deploy",
        "--wait",
    ]);
    let item = wait_for_inbox(&bob).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(bob
        .run(&[
            "deny",
            item["id"].as_str().expect("id"),
            "--justification",
            "Change freeze until Monday"
        ])
        .status
        .success());
    let out = activate.wait_with_output().expect("activate");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Change freeze until Monday"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("still waiting for approval (1"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_outside_the_policy_are_refused_before_sending() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let long = alice.run(&[
        "activate",
        "JIT Requester",
        "--justification",
        "x",
        "--duration",
        "9h",
    ]);
    assert_eq!(long.status.code(), Some(3));
    assert!(
        text(&long.stderr).contains("at most 8h"),
        "{}",
        text(&long.stderr)
    );
    let port = alice.run(&[
        "open",
        "jumpbox-win-01",
        "--port",
        "8080",
        "--justification",
        "x",
    ]);
    assert_eq!(port.status.code(), Some(3));
    assert!(
        text(&port.stderr).contains("port 8080 is not in this VM's JIT policy; it allows 3389"),
        "{}",
        text(&port.stderr)
    );
    let too_long = alice.run(&[
        "open",
        "jumpbox-linux-01",
        "--duration",
        "2h",
        "--justification",
        "x",
    ]);
    assert_eq!(too_long.status.code(), Some(3));
    assert!(
        text(&too_long.stderr).contains("PT1H"),
        "{}",
        text(&too_long.stderr)
    );
    assert_eq!(
        sim.requests_seen("PUT", "roleAssignmentScheduleRequests")
            .await,
        0,
        "no activation was sent"
    );
    assert_eq!(
        sim.requests_seen("POST", "initiate").await,
        0,
        "no JIT request was sent"
    );
    let usage = alice.run(&[
        "activate",
        "JIT Requester",
        "--justification",
        "x",
        "--duration",
        "soon",
    ]);
    assert_eq!(usage.status.code(), Some(1));
    assert!(text(&usage.stderr).contains("use a form such as 30m"));
    let clap = alice.run(&["activate"]);
    assert_eq!(clap.status.code(), Some(2), "usage errors exit 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_ip_targets_and_requests_show_what_users_need() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let roles = alice.json(&["roles"]);
    assert_eq!(roles[0]["role"], "JIT Requester");
    assert_eq!(roles[0]["policy"]["approval_required"], true);
    assert_eq!(roles[0]["policy"]["max_duration"], "PT8H");
    assert_eq!(
        roles[0]["summary"],
        "approval by Bob Brandt, max 8h, justification required"
    );
    let ip = alice.json(&["ip"]);
    assert_eq!(ip["ip"], "127.0.0.1");
    assert_eq!(ip["agreed"].as_array().expect("agreed").len(), 2);
    let targets = alice.json(&["targets"]);
    let win = targets
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["vm"] == "jumpbox-win-01")
        .expect("win");
    assert_eq!(win["address"], "127.0.0.10");
    assert_eq!(win["ports"][0]["number"], 3389);
    assert_eq!(win["ports"][0]["max"], "PT3H");
    let sent = alice.json(&[
        "activate",
        "JIT Requester",
        "--justification",
        "Check logs",
        "--ticket",
        "ServiceNow:INC42",
    ]);
    assert_eq!(sent["status"], "PendingApproval");
    let mine = alice.json(&["requests"]);
    assert_eq!(mine[0]["ticket"], "ServiceNow:INC42");
    let cancelled = alice.run(&["cancel", sent["name"].as_str().expect("name")]);
    assert!(cancelled.status.success(), "{}", text(&cancelled.stderr));
    assert_eq!(alice.json(&["requests"])[0]["status"], "Canceled");
    // IP changes are seen: the echo services now report another address.
    sim.control("/ip", serde_json::json!({"ip": "127.0.0.5"}))
        .await;
    assert_eq!(alice.json(&["ip"])["ip"], "127.0.0.5");
}

// The Azure CLI's stand-in is a shell script.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_04_device_code_and_azure_cli_sign_ins() {
    let sim = Sim::start("demo", 0);
    let carol = sim.user("carol@contoso.example");
    let child = carol.spawn(&["signin", "--device-code"]);
    let out = sim.enter_device_code(child, "carol@contoso.example").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(carol.json(&["whoami"])["upn"], "carol@contoso.example");

    // A stand-in for the Azure CLI that hands out a token the simulator minted for dave.
    let token = sim
        .control("/token", serde_json::json!({"upn": "dave@contoso.example"}))
        .await["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let bin = sim.dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let expires = chrono::Utc::now().timestamp() + 3000;
    let calls = sim.dir.path().join("az-calls");
    std::fs::write(bin.join("az"), format!("#!/bin/sh\necho \"$@\" >> {}\necho '{{\"accessToken\": \"{token}\", \"expires_on\": {expires}, \"tokenType\": \"Bearer\"}}'\n", calls.display())).expect("az");
    chmod_x(&bin.join("az"));
    let dave = sim.user("dave@contoso.example");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = dave
        .command(&["signin", "--azure-cli"])
        .env("PATH", &path)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(dave.json(&["whoami"])["source"], "azure_cli");
    // az is asked for a token in the configured tenant, not its own default one.
    let asked = std::fs::read_to_string(&calls).expect("az was called");
    let tenant = std::fs::read_to_string(&dave.config)
        .expect("config")
        .lines()
        .find_map(|l| {
            l.strip_prefix("tenant_id = \"")
                .map(|t| t.trim_end_matches('"').to_string())
        })
        .expect("tenant_id");
    assert!(asked.contains(&format!("--tenant {tenant}")), "{asked}");
    assert!(dave
        .json(&["targets"])
        .as_array()
        .is_some_and(|t| t.len() == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_renews_a_port_with_a_new_request_and_a_role_with_a_new_activation() {
    let sim = Sim::start("demo", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    activate_approved(&alice, &bob, "2h").await;
    let opened = alice.json(&[
        "open",
        "jumpbox-linux-01",
        "--duration",
        "30m",
        "--justification",
        "Long maintenance",
    ]);
    let first_end = opened["end"].as_str().expect("end").to_string();
    sim.advance(20 * 60).await;

    let port = alice.json(&["extend", "jumpbox-linux-01", "--duration", "1h"]);
    assert_eq!(port["how"], "new_initiate");
    assert!(
        port["end"].as_str().expect("end") > first_end.as_str(),
        "{port}"
    );
    assert!(sim
        .events()
        .await
        .iter()
        .any(|e| e["kind"] == "jit.revoked" && e["reason"] == "NewerRequestInitiated"));

    let role = alice.json(&[
        "extend",
        "JIT Requester",
        "--duration",
        "4h",
        "--justification",
        "The maintenance runs long",
        "--yes",
    ]);
    // PIM offers no extension of an activation: it is ended and activated anew through its
    // policy, so bob approves again.
    assert_eq!(role["how"], "reactivated", "{role}");
    assert_eq!(role["status"], "PendingApproval");
    let again = wait_for_inbox(&bob).await;
    assert_eq!(again["justification"], "The maintenance runs long");
    assert!(bob
        .run(&[
            "approve",
            again["id"].as_str().expect("id"),
            "--justification",
            "ok"
        ])
        .status
        .success());
    sim.advance(6 * 60).await;
    let too_long = alice.run(&[
        "extend",
        "JIT Requester",
        "--duration",
        "9h",
        "--justification",
        "x",
    ]);
    assert_eq!(
        too_long.status.code(),
        Some(3),
        "refused before sending: {}",
        text(&too_long.stderr)
    );
    let nothing = alice.run(&["extend", "jumpbox-win-01"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        text(&nothing.stderr).contains("no open access"),
        "{}",
        text(&nothing.stderr)
    );

    // Once the role has ended, "extend" activates it anew, through bob's approval again.
    sim.advance(5 * 3600).await;
    let renewed = alice.json(&[
        "extend",
        "JIT Requester",
        "--duration",
        "1h",
        "--justification",
        "Back for the second half",
    ]);
    assert_eq!(renewed["how"], "new_activation", "{renewed}");
    assert_eq!(renewed["status"], "PendingApproval");
    assert_eq!(
        wait_for_inbox(&bob).await["justification"],
        "Back for the second half"
    );
}
