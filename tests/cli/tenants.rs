//! Several tenants: alice works for Contoso (`enterprise`, where she is a member) and, as a
//! consultant, in Fabrikam (`fabrikam`, where she is a B2B guest). Each tenant is a simulator
//! of its own, and her configuration names Fabrikam in a `[[tenants]]` entry. The keychain
//! holds one sign-in per tenant; `--tenant` chooses one, and `status` and `watch` cover them
//! all.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// alice as Fabrikam's directory names her: a guest.
const ALICE_AT_FABRIKAM: &str = "alice_contoso.example#EXT#@fabrikam.example";

/// The tenant entry of `status --json` named `name`.
fn tenant<'v>(status: &'v Value, name: &str) -> &'v Value {
    status["tenants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["tenant"] == name)
        .unwrap_or_else(|| panic!("no tenant {name} in {status:#}"))
}

fn role_names(list: &Value) -> Vec<&str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["role"].as_str())
        .collect()
}

/// Contoso (`enterprise`) and Fabrikam, each a simulator, and alice: her configuration names
/// Fabrikam as the tenant `fabrikam`, and `guest` is her, with that configuration, as
/// Fabrikam's directory names her.
fn two_tenants() -> (Sim, Sim, User, User) {
    let contoso = Sim::start("enterprise", 0);
    let fabrikam = Sim::start("fabrikam", 0);
    let alice = contoso.user(ALICE);
    alice.configure(&fabrikam.tenant_profile("fabrikam"));
    let guest = User {
        upn: ALICE_AT_FABRIKAM.into(),
        config: alice.config.clone(),
        state: alice.state.clone(),
        service: alice.service.clone(),
        system_config: None,
    };
    (contoso, fabrikam, alice, guest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_alice_holds_sign_ins_in_two_tenants_and_status_shows_both() {
    let (contoso, fabrikam, alice, guest) = two_tenants();

    // One sign-in per tenant, side by side in the keychain.
    contoso.sign_in(&alice).await;
    let status = alice.json(&["status"]);
    assert_eq!(
        tenant(&status, "fabrikam")["account"],
        Value::Null,
        "not signed in to Fabrikam yet: {status:#}"
    );
    fabrikam.sign_in_to(&guest, "fabrikam").await;
    let me = alice.json(&["whoami"]);
    let there = alice.json(&["--tenant", "fabrikam", "whoami"]);
    assert_eq!(me["upn"], ALICE, "{me:#}");
    assert_eq!(
        there["tenant_id"], "5fab71c0-3b2a-4d9e-8c41-2e6d0f7a9b13",
        "{there:#}"
    );
    assert_ne!(me["tenant_id"], there["tenant_id"]);

    // Something active in each.
    let out = alice.run(&[
        "activate",
        "entra:Global Reader",
        "--justification",
        "Quarterly access review",
        "--duration",
        "1h",
        "--wait=1m",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = alice.run(&[
        "--tenant",
        "fabrikam",
        "activate",
        "Reader",
        "--justification",
        "Month-end checks",
        "--duration",
        "2h",
        "--wait=1m",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // status shows both tenants, each with what is active there.
    let status = alice.json(&["status"]);
    let home = tenant(&status, "default");
    assert_eq!(home["account"], ALICE, "{status:#}");
    assert_eq!(role_names(&home["roles"]), ["Global Reader"], "{status:#}");
    let away = tenant(&status, "fabrikam");
    assert!(away["account"].is_string(), "{status:#}");
    assert_eq!(role_names(&away["roles"]), ["Reader"], "{status:#}");
    let said = text(&alice.run(&["status"]).stdout);
    assert!(
        said.contains("Tenant default (alice@contoso.example):")
            && said.contains("Tenant fabrikam (")
            && said.contains("role Reader at /subscriptions/b7e2c9d4"),
        "{said}"
    );
    // --tenant narrows it to one, in the old shape.
    let one = alice.json(&["--tenant", "fabrikam", "status"]);
    assert_eq!(one.get("tenants"), None, "{one:#}");
    assert_eq!(role_names(&one["roles"]), ["Reader"], "{one:#}");

    // Signing out of one leaves the other.
    let out = alice.run(&["--tenant", "fabrikam", "signout"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = alice.json(&["status"]);
    assert_eq!(tenant(&status, "fabrikam")["account"], Value::Null);
    assert_eq!(tenant(&status, "default")["account"], ALICE);

    // Signed out of both, status still answers, for each.
    let out = alice.run(&["signout"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = alice.json(&["status"]);
    assert_eq!(
        tenant(&status, "default")["account"],
        Value::Null,
        "{status:#}"
    );
    assert_eq!(
        tenant(&status, "fabrikam")["account"],
        Value::Null,
        "{status:#}"
    );
    let said = text(&alice.run(&["status"]).stdout);
    assert!(
        said.contains("Tenant default: not signed in")
            && said.contains("Tenant fabrikam: not signed in (jumpgate --tenant fabrikam signin)"),
        "{said}"
    );

    // A tenant the configuration does not name is refused with the ones it does.
    let out = alice.run(&["--tenant", "nosuch", "status"]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("there is no tenant 'nosuch'") && said.contains("default, fabrikam"),
        "{said}"
    );
    assert_eq!(contoso.refused_for_shape().await, Vec::<Value>::new());
    assert_eq!(fabrikam.refused_for_shape().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_one_watch_covers_every_tenant_and_names_each() {
    let (contoso, fabrikam, alice, guest) = two_tenants();
    contoso.sign_in(&alice).await;
    fabrikam.sign_in_to(&guest, "fabrikam").await;
    let out = alice.run(&[
        "--tenant",
        "fabrikam",
        "activate",
        "Reader",
        "--justification",
        "Month-end checks",
        "--duration",
        "20m",
        "--wait=1m",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    alice.configure("[watch]\npending_poll_ms = 1000\nopen_refresh_secs = 2");
    let mut watch = alice.watch(&[]);
    watch.first_look();
    // Fabrikam's clock moves past the 15-minute mark; Contoso's does not.
    fabrikam.advance(6 * 60).await;
    let reminder = watch.expect("expiry_reminder", Duration::from_secs(30));
    assert_eq!(reminder["tenant"], "fabrikam", "{reminder:#}");
    assert_eq!(reminder["access"]["role"], "Reader", "{reminder:#}");
    watch.next_look_at(
        &alice
            .state
            .join("tenants")
            .join("fabrikam")
            .join("watch.json"),
    );
    assert_eq!(watch.count("expiry_reminder"), 1);
}
