//! Profiles: `jumpgate run NAME` asks for a named set of access at once: roles and group
//! memberships side by side, then a jump box, then optionally a command.

use serde_json::Value;

use crate::support::*;

const RG_JUMPBOXES: &str =
    "/subscriptions/9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93/resourceGroups/rg-jumpboxes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_run_activates_two_roles_and_a_group_side_by_side_then_opens_the_jump_box() {
    let sim = Sim::start("enterprise", 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    alice.configure(
        &format!(
            "[[profiles]]\nname = \"morning\"\nvm = \"jumpbox-linux-01\"\nduration = \"1h\"\njustification = \"{{profile}} checks on {{date}}\"\nactivate = [\"Contributor\", \"group:JIT Operators\", {{ role = \"JIT Requester\", scope = \"{RG_JUMPBOXES}\" }}]\n"
        ),
    );

    let run = alice.spawn(&["run", "morning", "--timeout", "3m"]);
    // The role and the group both wait for bob at once: neither waited for the other.
    let inbox = wait_for_inbox_of(&bob, 2).await;
    let mut roles: Vec<&str> = inbox.iter().filter_map(|i| i["role"].as_str()).collect();
    roles.sort();
    assert_eq!(roles, ["JIT Operators", "JIT Requester"], "{inbox:#?}");
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    for item in &inbox {
        assert_eq!(
            item["justification"].as_str(),
            Some(format!("morning checks on {today}").as_str()),
            "{item:#}"
        );
        let approved = bob.run(&[
            "approve",
            item["id"].as_str().expect("id"),
            "--justification",
            "ok",
        ]);
        assert!(approved.status.success(), "{}", text(&approved.stderr));
    }
    let out = run.wait_with_output().expect("run");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for role in ["Contributor", "JIT Operators", "JIT Requester"] {
        assert!(
            stderr.contains(&format!("{role} is active and in effect")),
            "{role}: {stderr}"
        );
    }
    // Then the jump box: its port opened for her, and the SSH client started.
    assert!(
        text(&out.stdout).contains("Connected: jumpbox-linux-01 port 22"),
        "{}",
        text(&out.stdout)
    );
    let launched =
        std::fs::read_to_string(sim.dir.path().join("ssh-launches")).expect("the SSH client ran");
    assert!(launched.contains("alice@"), "{launched}");
    let active = alice.json(&["roles", "--active"]);
    for role in ["Contributor", "JIT Operators", "JIT Requester"] {
        assert!(
            active.to_string().contains(role),
            "{role} active: {active:#}"
        );
    }
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

// The commands are shell lines: Windows runs the story above under Wine without them.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_run_then_a_command_exits_with_its_code_and_a_refusal_undoes_nothing() {
    let sim = Sim::start("enterprise", 0);
    let alice = sim.user(ALICE);
    sim.sign_in(&alice).await;
    let marker = sim.dir.path().join("ran");
    alice.configure(
        "[[profiles]]\nname = \"legacy\"\nactivate = [\"Contributor\"]\njustification = \"Legacy estate clean-up\"\n\n[[profiles]]\nname = \"too-much\"\nactivate = [\"Contributor\", \"Global Wizard\"]\njustification = \"More than I may\"\n",
    );

    // The command runs once the role is in effect, and its code is ours.
    let out = alice.run(&["run", "legacy", "--", "sh", "-c", "exit 7"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    let active = stderr
        .find("Contributor is active and in effect")
        .expect(&stderr);
    let ran = stderr.find("running sh").expect(&stderr);
    assert!(active < ran, "{stderr}");

    // One refused activation: the other stays active, she is told which, and the command
    // does not run.
    let out = alice.run(&[
        "run",
        "too-much",
        "--",
        "sh",
        "-c",
        &format!("touch '{}'", marker.display()),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("1 of 2 activations of profile 'too-much' did not succeed (Global Wizard)")
            && stderr.contains("these are active and stay so: Contributor")
            && stderr.contains("So the command was not run."),
        "{stderr}"
    );
    assert!(!marker.exists(), "the command ran");

    // A profile that is not there names those that are.
    let out = alice.run(&["run", "evening"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no profile named 'evening'") && stderr.contains("legacy, too-much"),
        "{stderr}"
    );
}
