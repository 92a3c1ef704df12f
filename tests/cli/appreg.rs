//! `jumpgate admin app create`: dave registers Jumpgate in the `empty` tenant through
//! Microsoft Graph, the configuration it prints is deployed, and alice signs in with it.

use serde_json::Value;

use crate::support::*;

const DAVE: &str = "dave@contoso.example";

fn refused(user: &User, args: &[&str], code: i32, needles: &[&str]) -> String {
    let out = user.run(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?} should say '{needle}': {stderr}"
        );
    }
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dave_registers_jumpgate_and_alice_signs_in_with_the_printed_config() {
    let sim = Sim::start("empty", 0);
    let dave = sim.user(DAVE);
    let alice = sim.user(ALICE);
    for u in [&dave, &alice] {
        sim.sign_in(u).await;
    }
    let own_client = std::fs::read_to_string(&dave.config)
        .expect("config")
        .lines()
        .find_map(|l| l.strip_prefix("client_id = \""))
        .map(|r| r.trim_end_matches('"').to_string())
        .expect("client id");

    // The tenant already holds an app named "Jumpgate" (the one everyone signs in with so
    // far): the default name is refused, naming it.
    refused(
        &dave,
        &["admin", "app", "create"],
        1,
        &["already exists", &own_client, "--reuse"],
    );

    // A new registration, written for deployment.
    let deployed = sim.dir.path().join("system.toml");
    let created = dave.json(&[
        "admin",
        "app",
        "create",
        "--name",
        "Jumpgate Laptops",
        "--graph-read-users",
        "--out",
        deployed.to_str().expect("path"),
    ]);
    assert_eq!(created["created"], true, "{created}");
    assert_eq!(created["service_principal_created"], true, "{created}");
    let client_id = created["client_id"]
        .as_str()
        .expect("client id")
        .to_string();
    assert!(uuid::Uuid::parse_str(&client_id).is_ok(), "{created}");
    assert_ne!(client_id, own_client);
    let written = std::fs::read_to_string(&deployed).expect("written config");
    assert_eq!(written, created["config"].as_str().expect("config"));
    assert!(
        written.contains(&format!("client_id = \"{client_id}\"")),
        "{written}"
    );
    assert!(
        written.contains("[managed]\nkeys = [\"azure\"]"),
        "{written}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&deployed)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    // A rerun registers nothing twice, and never writes over the file.
    refused(
        &dave,
        &["admin", "app", "create", "--name", "Jumpgate Laptops"],
        1,
        &["already exists", &client_id],
    );
    refused(
        &dave,
        &[
            "admin",
            "app",
            "create",
            "--name",
            "Jumpgate Laptops",
            "--reuse",
            "--out",
            deployed.to_str().expect("path"),
        ],
        1,
        &["never writes over"],
    );
    let reused = dave.json(&[
        "admin",
        "app",
        "create",
        "--name",
        "Jumpgate Laptops",
        "--reuse",
    ]);
    assert_eq!(
        (
            reused["created"].clone(),
            reused["service_principal_created"].clone(),
            reused["client_id"].clone()
        ),
        (
            Value::Bool(false),
            Value::Bool(false),
            Value::String(client_id.clone())
        ),
        "{reused}"
    );
    assert_eq!(sim.requests_seen("POST", "/v1.0/applications").await, 1);

    // In text: what was made, where it goes, and the file itself.
    let out = dave.run(&["admin", "app", "create", "--name", "Jumpgate Text"]);
    let shown = text(&out.stdout);
    eprintln!("{shown}");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        shown.starts_with("Created the app registration 'Jumpgate Text': client id "),
        "{shown}"
    );
    assert!(shown.contains("/etc/jumpgate/config.toml"), "{shown}");
    assert!(shown.contains("\n[azure]\ntenant_id = "), "{shown}");
    // Two service principals: one per registration, the text run's included. Each new
    // application took Entra a few seconds to replicate, and its service principal was
    // asked for again meanwhile.
    let posts: Vec<u64> = sim
        .events()
        .await
        .iter()
        .filter(|e| {
            e["kind"] == "request"
                && e["method"] == "POST"
                && e["path"] == "/v1.0/servicePrincipals"
        })
        .filter_map(|e| e["status"].as_u64())
        .collect();
    assert_eq!(posts.iter().filter(|s| **s == 201).count(), 2, "{posts:?}");
    assert!(posts.contains(&400), "refused while replicating: {posts:?}");

    // alice holds no Entra admin role.
    refused(
        &alice,
        &["admin", "app", "create", "--name", "Alice's app"],
        3,
        &["Authorization_RequestDenied", "Application Administrator"],
    );

    // A laptop with the deployed file as its system configuration signs in to the new app,
    // whatever the user's own file says about [azure] (managed).
    let mut laptop = sim.user(ALICE);
    laptop.system_config = Some(deployed.clone());
    sim.sign_in(&laptop).await;
    let events = sim.events().await;
    assert!(
        events.iter().any(|e| e["kind"] == "entra.signed_in"
            && e["upn"] == ALICE
            && e["client_id"] == client_id.as_str()),
        "alice signed in to the new app"
    );
    let who = laptop.json(&["whoami"]);
    assert!(who.to_string().contains(ALICE), "{who}");
    let roles = laptop.run(&["roles"]);
    assert!(
        roles.status.success(),
        "ARM accepts the new app's token: {}",
        text(&roles.stderr)
    );
}

/// The `empty` tenant with Graph lists of two items a page.
fn paged_empty_tenant(dir: &std::path::Path) -> std::path::PathBuf {
    let fixture = include_str!("../../crates/sim/tenants/empty.toml").replacen(
        "[tenant]\n",
        "[tenant]\npage_size = 2\n",
        1,
    );
    let path = dir.join("empty-paged.toml");
    std::fs::write(&path, fixture).expect("fixture");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_of_one_name_are_found_across_pages_and_reuse_will_not_choose() {
    let fixtures = tempfile::tempdir().expect("tempdir");
    let tenant = paged_empty_tenant(fixtures.path());
    let sim = Sim::start(tenant.to_str().expect("path"), 0);
    // Three registrations named alike (Graph allows it), made behind Jumpgate's back.
    let token = sim
        .control(
            "/token",
            serde_json::json!({"upn": DAVE, "resource": "graph", "scope": "Application.ReadWrite.All"}),
        )
        .await["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let created: Value = sim
            .http
            .post(format!("{}/v1.0/applications", sim.url))
            .bearer_auth(&token)
            .json(&serde_json::json!({"displayName": "Jumpgate Twins"}))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("JSON");
        ids.push(created["appId"].as_str().expect("appId").to_string());
    }
    let dave = sim.user(DAVE);
    sim.sign_in(&dave).await;
    let mut needles: Vec<&str> = ids.iter().map(String::as_str).collect();
    needles.push("already exists");
    refused(
        &dave,
        &["admin", "app", "create", "--name", "Jumpgate Twins"],
        1,
        &needles,
    );
    needles.pop();
    needles.push("--reuse cannot choose");
    refused(
        &dave,
        &[
            "admin",
            "app",
            "create",
            "--name",
            "jumpgate twins",
            "--reuse",
        ],
        1,
        &needles,
    );
    assert!(
        sim.requests_seen("GET", "/v1.0/applications").await >= 4,
        "two pages read each time"
    );
    assert_eq!(
        sim.requests_seen("POST", "/v1.0/servicePrincipals").await,
        0
    );
}
