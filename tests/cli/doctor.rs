//! `jumpgate doctor`: each check broken in turn is named, with its fix.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

/// The demo tenant, but jumpbox-win-01's RDP rule allows one address only.
fn narrow_tenant(dir: &std::path::Path) -> String {
    let demo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/sim/tenants/demo.toml"
    ))
    .expect("demo tenant");
    let narrowed = demo.replacen(
        "ports = [{ number = 3389, protocol = \"TCP\", allowed_source = \"*\"",
        "ports = [{ number = 3389, protocol = \"TCP\", allowed_source = \"127.0.0.50\"",
        1,
    );
    assert_ne!(
        demo, narrowed,
        "the demo tenant's RDP rule changed: update this test"
    );
    let path = dir.join("narrow.toml");
    std::fs::write(&path, narrowed).expect("tenant");
    path.display().to_string()
}

/// Runs doctor with --json; returns its exit code and the checks by step.
fn doctor(user: &User, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["--json", "doctor"];
    all.extend_from_slice(args);
    let out = user.run(&all);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {}", text(&out.stderr)));
    (out.status.code(), report)
}

fn check<'a>(report: &'a Value, step: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["step"] == step)
        .unwrap_or_else(|| panic!("no {step} in {report:#}"))
}

/// The first failing step, and its fix.
fn first_failure(report: &Value) -> (String, String) {
    let c = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["status"] == "fail")
        .unwrap_or_else(|| panic!("nothing failed: {report:#}"));
    (
        c["step"].as_str().unwrap_or("").into(),
        c["fix"].as_str().unwrap_or("").into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_each_broken_step_and_its_fix() {
    let scratch = tempfile::tempdir().expect("dir");
    let sim = Sim::start(&narrow_tenant(scratch.path()), 0);
    let alice = sim.user(ALICE);
    let bob = sim.user(BOB);
    let carol = sim.user("carol@contoso.example");

    // No configuration at all.
    let out = std::process::Command::new(jumpgate())
        .args(["--config", "/nonexistent/jumpgate.toml", "--json", "doctor"])
        .output()
        .expect("doctor");
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(first_failure(&report).0, "config");

    // Not signed in.
    let (code, report) = doctor(&alice, &["jumpbox-win-01"]);
    assert_eq!(code, Some(1));
    let (step, fix) = first_failure(&report);
    assert_eq!(step, "signed_in");
    assert!(fix.contains("jumpgate signin"), "{fix}");
    assert_eq!(check(&report, "reachable")["status"], "skip");

    // Signed in, but eligible for nothing.
    sim.sign_in(&carol).await;
    let (_, report) = doctor(&carol, &["jumpbox-win-01"]);
    assert_eq!(check(&report, "token")["status"], "pass");
    let (step, fix) = first_failure(&report);
    assert_eq!(step, "eligible");
    assert!(fix.contains("eligible"), "{fix}");

    // Eligible, but the role is not active.
    sim.sign_in(&alice).await;
    sim.sign_in(&bob).await;
    let (_, report) = doctor(&alice, &["jumpbox-win-01"]);
    let (step, fix) = first_failure(&report);
    assert_eq!(step, "jit_role");
    assert!(fix.contains("jumpgate activate"), "{fix}");

    activate_approved(&alice, &bob, "2h").await;

    // A port the policy does not have.
    let (_, report) = doctor(&alice, &["jumpbox-win-01", "--port", "2222"]);
    assert_eq!(check(&report, "jit_role")["status"], "pass");
    let (step, fix) = first_failure(&report);
    assert_eq!(step, "port");
    assert!(fix.contains("--port 3389"), "{fix}");

    // An address outside the policy's prefix.
    let (_, report) = doctor(&alice, &["jumpbox-win-01"]);
    let (step, fix) = first_failure(&report);
    assert_eq!(step, "public_ip");
    assert!(fix.contains("allowed network"), "{fix}");

    // From the allowed address, a rule is opened, but the gate sees another source: the
    // port does not answer.
    sim.control("/ip", json!({"ip": "127.0.0.50"})).await;
    let out = alice.run(&[
        "open",
        "jumpbox-win-01",
        "--duration",
        "30m",
        "--justification",
        "Patch",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, report) = doctor(&alice, &["jumpbox-win-01"]);
    assert_eq!(check(&report, "open_rule")["status"], "pass");
    let (step, fix) = first_failure(&report);
    assert_eq!(step, "reachable");
    assert!(fix.contains("another network"), "{fix}");

    // Everything in order on the Linux box, with a support bundle.
    sim.control("/ip", json!({"ip": null})).await;
    let out = alice.run(&[
        "open",
        "jumpbox-linux-01",
        "--duration",
        "30m",
        "--justification",
        "Patch",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bundle = scratch.path().join("bundle.json");
    let (code, report) = doctor(
        &alice,
        &[
            "jumpbox-linux-01",
            "--bundle",
            bundle.to_str().expect("path"),
        ],
    );
    assert_eq!(code, Some(0), "{report:#}");
    for c in report["checks"].as_array().expect("checks") {
        assert_eq!(c["status"], "pass", "{c}");
    }
    let written: Value =
        serde_json::from_slice(&std::fs::read(&bundle).expect("bundle")).expect("JSON");
    assert_eq!(written["checks"], report["checks"]);
    assert_eq!(written["account"], ALICE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&bundle)
            .expect("bundle")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The rule ends.
    sim.advance(31 * 60).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, report) = doctor(&alice, &["jumpbox-linux-01"]);
    let (step, fix) = first_failure(&report);
    assert_eq!(step, "open_rule");
    assert!(fix.contains("jumpgate connect jumpbox-linux-01"), "{fix}");

    // Text for people: every failure with its fix.
    let out = alice.run(&["doctor", "jumpbox-linux-01"]);
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("FAIL  A JIT rule is open for this IP"),
        "{shown}"
    );
    assert!(shown.contains("→ Open it again"), "{shown}");
}
