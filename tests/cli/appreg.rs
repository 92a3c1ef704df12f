//! `jumpgate admin app create`: dave registers Jumpgate in the `empty` tenant through
//! Microsoft Graph, the configuration it prints is deployed, and alice signs in with it; an
//! existing registration is adopted only by its client id, once it is dave's and as Jumpgate
//! makes it, never the "Jumpgate" an ordinary member of the `enterprise` tenant registered first.

use serde_json::Value;

use crate::support::*;

const DAVE: &str = "dave@contoso.example";
#[cfg(unix)]
const DAVE_OID: &str = "da7e0000-0000-4000-8000-000000000004";
/// The `enterprise` tenant's squatted "Jumpgate", registered by grace.
const SQUATTED: &str = "7c3e9b1a-5d2f-4e8a-9b6c-2a1f0e9d8c71";

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

/// A Microsoft Graph token for `upn` from the control API, for what a test reads behind the
/// client's back.
async fn graph_token(sim: &Sim, upn: &str) -> String {
    sim.control(
        "/token",
        serde_json::json!({"upn": upn, "resource": "graph", "scope": "Application.ReadWrite.All Directory.Read.All"}),
    )
    .await["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// A Graph read as dave (an application, or its owners).
async fn graph_get(sim: &Sim, path: &str) -> Value {
    let token = graph_token(sim, DAVE).await;
    let r = sim
        .http
        .get(format!("{}{path}", sim.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("graph");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("JSON")
}

/// Every request that changed something in Microsoft Graph so far.
async fn graph_writes(sim: &Sim) -> Vec<Value> {
    sim.events()
        .await
        .into_iter()
        .filter(|e| {
            e["kind"] == "request"
                && e["method"] != "GET"
                && e["path"].as_str().is_some_and(|p| p.starts_with("/v1.0/"))
        })
        .collect()
}

fn client_id_of(user: &User) -> String {
    std::fs::read_to_string(&user.config)
        .expect("config")
        .lines()
        .find_map(|l| l.strip_prefix("client_id = \""))
        .map(|r| r.trim_end_matches('"').to_string())
        .expect("client id")
}

// The laptop's configuration is a system file the test writes, which counts only when it is
// root's: on Windows (under Wine) a test's files are the user's, and it is ignored.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dave_registers_jumpgate_and_alice_signs_in_with_the_printed_config() {
    let sim = Sim::start("empty", 0);
    let dave = sim.user(DAVE);
    let alice = sim.user(ALICE);
    for u in [&dave, &alice] {
        sim.sign_in(u).await;
    }
    let own_client = client_id_of(&dave);

    // The tenant already holds an app named "Jumpgate" (the one everyone signs in with so
    // far): the default name is refused, naming its client id; adopting it takes that id.
    let said = refused(
        &dave,
        &["admin", "app", "create"],
        1,
        &[
            "already exists",
            &own_client,
            "--reuse and its client id",
            "do not adopt one you do not know",
        ],
    );
    assert!(!said.contains("--reuse to"), "never adopt by name: {said}");

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
    assert_eq!(created["device_code"], false, "{created}");
    let client_id = created["client_id"]
        .as_str()
        .expect("client id")
        .to_string();
    assert!(uuid::Uuid::parse_str(&client_id).is_ok(), "{created}");
    assert_ne!(client_id, own_client);
    // dave's admin role did not make him an owner; he was added, and is shown.
    assert_eq!(
        created["owners"],
        serde_json::json!(["Dave Diaz <dave@contoso.example>"]),
        "{created}"
    );
    let owners = graph_get(
        &sim,
        &format!("/v1.0/applications(appId='{client_id}')/owners"),
    )
    .await;
    assert_eq!(owners["value"][0]["id"], DAVE_OID, "{owners}");
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
    assert!(written.contains("Device-code sign-in is off"), "{written}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&deployed)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

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
            "--reuse",
            &client_id,
            "--graph-read-users",
            "--out",
            deployed.to_str().expect("path"),
        ],
        1,
        &["never writes over"],
    );
    // dave's own app is adopted by its client id, and its owners shown.
    let reused = dave.json(&[
        "admin",
        "app",
        "create",
        "--reuse",
        &client_id,
        "--graph-read-users",
    ]);
    assert_eq!(
        (
            reused["created"].clone(),
            reused["service_principal_created"].clone(),
            reused["client_id"].clone(),
            reused["owners"].clone(),
        ),
        (
            Value::Bool(false),
            Value::Bool(false),
            Value::String(client_id.clone()),
            serde_json::json!(["Dave Diaz <dave@contoso.example>"]),
        ),
        "{reused}"
    );
    let out = dave.run(&[
        "admin",
        "app",
        "create",
        "--reuse",
        &client_id,
        "--graph-read-users",
    ]);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        shown.contains("Owners: Dave Diaz <dave@contoso.example>."),
        "{shown}"
    );
    // Without --graph-read-users its permissions are not what this run would make.
    let writes = graph_writes(&sim).await.len();
    refused(
        &dave,
        &["admin", "app", "create", "--reuse", &client_id],
        3,
        &[
            "not adopted",
            "nothing was changed",
            "User.ReadBasic.All",
            "--graph-read-users",
        ],
    );
    assert_eq!(
        graph_writes(&sim).await.len(),
        writes,
        "nothing was changed"
    );
    let registered = graph_writes(&sim)
        .await
        .iter()
        .filter(|e| e["method"] == "POST" && e["path"] == "/v1.0/applications")
        .count();
    assert_eq!(registered, 1, "one registration so far");

    // In text: what was made, who owns it, whether device codes work, where it goes, and the
    // file itself.
    let out = dave.run(&["admin", "app", "create", "--name", "Jumpgate Text"]);
    let shown = text(&out.stdout);
    eprintln!("{shown}");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        shown.starts_with("Created the app registration 'Jumpgate Text': client id "),
        "{shown}"
    );
    assert!(
        shown.contains("\nOwners: Dave Diaz <dave@contoso.example>.\n"),
        "{shown}"
    );
    assert!(shown.contains("Device-code sign-in is off"), "{shown}");
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
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

// The laptop's configuration is a system file the test writes, which counts only when it is
// root's: on Windows (under Wine) a test's files are the user's, and it is ignored.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_sign_in_is_allowed_only_when_the_admin_asks_for_it() {
    let sim = Sim::start("empty", 0);
    let dave = sim.user(DAVE);
    sim.sign_in(&dave).await;
    let default = dave.json(&["admin", "app", "create", "--name", "Jumpgate Browser"]);
    let device = dave.json(&[
        "admin",
        "app",
        "create",
        "--name",
        "Jumpgate Kiosk",
        "--device-code",
    ]);
    for (made, fallback) in [(&default, false), (&device, true)] {
        let client_id = made["client_id"].as_str().expect("client id");
        let app = graph_get(&sim, &format!("/v1.0/applications(appId='{client_id}')")).await;
        assert_eq!(app["isFallbackPublicClient"], fallback, "{app}");
        assert_eq!(made["device_code"], fallback, "{made}");
    }
    let config = device["config"].as_str().expect("config");
    assert!(
        config.contains("Device-code sign-in (jumpgate signin --device-code) is allowed"),
        "{config}"
    );
    assert!(config.contains("Conditional Access"), "{config}");
    // An adopted app keeps to what this run asks: the kiosk's public client flows need
    // --device-code, and the browser app's absence of them refuses --device-code.
    let kiosk = device["client_id"].as_str().expect("client id");
    refused(
        &dave,
        &["admin", "app", "create", "--reuse", kiosk],
        3,
        &["public_client_flows", "--device-code"],
    );
    assert_eq!(
        dave.json(&["admin", "app", "create", "--reuse", kiosk, "--device-code"])["device_code"],
        true
    );

    // A laptop deployed with the browser app cannot use a device code, and is told why.
    let deploy = |made: &Value, name: &str| {
        let path = sim.dir.path().join(name);
        std::fs::write(&path, made["config"].as_str().expect("config")).expect("deploy");
        let mut laptop = sim.user(ALICE);
        laptop.system_config = Some(path);
        laptop
    };
    let browser_laptop = deploy(&default, "browser.toml");
    refused(
        &browser_laptop,
        &["signin", "--device-code"],
        3,
        &["does not allow device-code sign-in", "jumpgate signin"],
    );
    // One deployed with the kiosk app signs in with a device code.
    let kiosk_laptop = deploy(&device, "kiosk.toml");
    let child = kiosk_laptop.spawn(&["signin", "--device-code"]);
    let out = sim.enter_device_code(child, ALICE).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The laptop's [azure] is the kiosk app's (managed), so that is what the code signed in to.
    assert_eq!(kiosk_laptop.json(&["whoami"])["upn"], ALICE);
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_the_admin_does_not_own_is_not_adopted() {
    let sim = Sim::start("empty", 0);
    let dave = sim.user(DAVE);
    sim.sign_in(&dave).await;
    // The tenant's own app is set up as Jumpgate sets one up with these options, but nobody
    // owns it: that alone refuses it.
    let own_client = client_id_of(&dave);
    let writes = graph_writes(&sim).await.len();
    let said = refused(
        &dave,
        &[
            "admin",
            "app",
            "create",
            "--reuse",
            &own_client,
            "--graph-read-users",
            "--device-code",
        ],
        3,
        &[
            &own_client,
            "not adopted",
            "nothing was changed",
            "- owner:",
            "no owners",
        ],
    );
    assert_eq!(
        said.matches("\n- ").count(),
        1,
        "the one failed check: {said}"
    );
    assert_eq!(
        graph_writes(&sim).await.len(),
        writes,
        "nothing was changed"
    );
    // A client id that names nothing.
    refused(
        &dave,
        &[
            "admin",
            "app",
            "create",
            "--reuse",
            "00000000-0000-4000-8000-00000000abcd",
        ],
        1,
        &[
            "No app registration",
            "00000000-0000-4000-8000-00000000abcd",
        ],
    );
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}

/// The `enterprise` tenant, where an admin has also consented the Graph permissions
/// `admin app create` signs in with, as for Microsoft Graph Command Line Tools in a real
/// tenant; and grace's display name as hostile as a directory's can be.
fn enterprise_for_app_admins(dir: &std::path::Path) -> std::path::PathBuf {
    let fixture = include_str!("../../crates/sim/tenants/enterprise.toml");
    let consent = "graph_consented = [\n";
    let name = "name = \"Grace Gruber\"";
    assert!(fixture.contains(consent) && fixture.contains(name));
    let fixture = fixture
        .replacen(
            consent,
            "graph_consented = [\n  \"Application.ReadWrite.All\",\n  \"Directory.Read.All\",\n",
            1,
        )
        .replacen(name, "name = \"Grace\\u001b[2J\\u202e Gruber\"", 1);
    let path = dir.join("enterprise-app-admins.toml");
    std::fs::write(&path, fixture).expect("fixture");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jumpgate_an_ordinary_member_registered_first_is_refused_with_every_reason() {
    let fixtures = tempfile::tempdir().expect("tempdir");
    let tenant = enterprise_for_app_admins(fixtures.path());
    let sim = Sim::start(tenant.to_str().expect("path"), 0);
    let dave = sim.user(DAVE);
    sim.sign_in(&dave).await;
    let own_client = client_id_of(&dave);

    // Two registrations are named "Jumpgate": the hint names both and adopts neither.
    refused(
        &dave,
        &["admin", "app", "create"],
        1,
        &[
            "already exists",
            &own_client,
            SQUATTED,
            "--reuse and its client id",
        ],
    );
    // A name is never enough, whatever the case.
    for name in ["jumpgate", "Jumpgate"] {
        refused(
            &dave,
            &["admin", "app", "create", "--reuse", name],
            1,
            &["--reuse takes the application (client) id", "not a name"],
        );
    }

    // By its client id, grace's app is checked and refused, every reason named.
    let before = graph_writes(&sim).await.len();
    let said = refused(
        &dave,
        &["admin", "app", "create", "--reuse", SQUATTED],
        3,
        &[
            SQUATTED,
            "not adopted",
            "nothing was changed",
            "- secrets:",
            "client secret",
            "'ci'",
            "- certificates:",
            "CN=jumpgate-tools",
            "- web_redirect_uris:",
            "https://signin.jumpgate-tools.example/callback",
            "- public_client_flows:",
            "- permissions:",
            "Microsoft Graph permission 06da0dbc-49e2-44d2-8312-53f166ab848a",
            "- owner:",
            "you are not among its owners",
            "Gruber <grace@contoso.example>",
            "do not adopt it",
        ],
    );
    eprintln!("{said}");
    // The owner's name came from the directory: shown inert.
    assert!(
        !said.contains('\u{1b}') && !said.contains('\u{202e}'),
        "{said:?}"
    );
    // Nothing changed: no write to Graph, no service principal, grace still the only owner.
    assert_eq!(
        graph_writes(&sim).await.len(),
        before,
        "nothing was changed"
    );
    let sps = graph_get(
        &sim,
        &format!("/v1.0/servicePrincipals?$filter=appId eq '{SQUATTED}'"),
    )
    .await;
    assert_eq!(sps["value"], serde_json::json!([]), "{sps}");
    let owners = graph_get(
        &sim,
        &format!("/v1.0/applications(appId='{SQUATTED}')/owners"),
    )
    .await;
    assert_eq!(
        owners["value"].as_array().map(Vec::len),
        Some(1),
        "{owners}"
    );
    assert_eq!(
        owners["value"][0]["userPrincipalName"],
        "grace@contoso.example"
    );
    // Even asking for device code and the directory permission Jumpgate never asks for, the
    // credentials, the web redirect and the ownership still refuse it.
    refused(
        &dave,
        &[
            "admin",
            "app",
            "create",
            "--reuse",
            SQUATTED,
            "--device-code",
        ],
        3,
        &["- secrets:", "- web_redirect_uris:", "- owner:"],
    );
    assert_eq!(
        graph_writes(&sim).await.len(),
        before,
        "nothing was changed"
    );
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
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
async fn registrations_of_one_name_are_found_across_pages_and_adopted_by_client_id_only() {
    let fixtures = tempfile::tempdir().expect("tempdir");
    let tenant = paged_empty_tenant(fixtures.path());
    let sim = Sim::start(tenant.to_str().expect("path"), 0);
    // Three registrations named alike (Graph allows it), made behind Jumpgate's back.
    let token = graph_token(&sim, DAVE).await;
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
        &["admin", "app", "create", "--name", "jumpgate twins"],
        1,
        &needles,
    );
    assert!(
        sim.requests_seen("GET", "/v1.0/applications").await >= 2,
        "two pages read"
    );
    refused(
        &dave,
        &["admin", "app", "create", "--reuse", "jumpgate twins"],
        1,
        &["application (client) id", "not a name"],
    );
    // One of them by its id: made by an admin role behind Jumpgate's back, nobody owns it,
    // and it is no public client.
    refused(
        &dave,
        &["admin", "app", "create", "--reuse", &ids[1]],
        3,
        &[
            &ids[1],
            "no owners",
            "- sign_in_audience:",
            "- permissions:",
        ],
    );
    assert_eq!(
        sim.requests_seen("POST", "/v1.0/servicePrincipals").await,
        0
    );
    // --reuse names an app by id, so --name has no place beside it.
    refused(
        &dave,
        &[
            "admin",
            "app",
            "create",
            "--name",
            "Jumpgate Twins",
            "--reuse",
            &ids[0],
        ],
        2,
        &["--name", "--reuse"],
    );
    assert_eq!(sim.refused_for_shape().await, Vec::<Value>::new());
}
