//! Microsoft Graph app registrations: who may create them, what bodies are refused, paging,
//! and signing in to a newly registered app.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

const ARM_APP: &str = "797f4846-ba00-4fd7-ba43-dac1f8f63013";
const IMPERSONATION: &str = "41094075-9dad-400e-a0bd-54e686782033";
const GRAPH_APP: &str = "00000003-0000-0000-c000-000000000000";
const READ_BASIC: &str = "b340eb25-3456-403f-be2f-af7a0d370277";

fn jumpgate_app(name: &str) -> Value {
    json!({
        "displayName": name,
        "signInAudience": "AzureADMyOrg",
        "publicClient": {"redirectUris": ["http://localhost"]},
        "isFallbackPublicClient": true,
        "requiredResourceAccess": [
            {"resourceAppId": ARM_APP, "resourceAccess": [{"id": IMPERSONATION, "type": "Scope"}]}
        ],
    })
}

impl Sim {
    async fn register(&self, token: &str, body: Value) -> Reply {
        self.graph(Some(token), Method::POST, "/v1.0/applications", Some(body))
            .await
    }
}

fn assert_graph_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{}", r.body);
    assert!(!r.message().is_empty(), "{}", r.body);
    assert!(
        r.body["error"]["innerError"]["request-id"].is_string(),
        "Graph's error shape: {}",
        r.body
    );
}

/// Signs `upn` in to `client_id` silently (the control API stands in for a browser session)
/// and redeems the code at the token endpoint with `scope`.
async fn sign_in_to(
    sim: &Sim,
    client_id: &str,
    redirect: &str,
    scope: &str,
) -> (StatusCode, Value) {
    let c = sim.handle.client_config();
    let (verifier, challenge) = pkce();
    let r = sim
        .http
        .get(sim.url(&format!("/{}/oauth2/v2.0/authorize", c.tenant_id)))
        .query(&[
            ("client_id", client_id),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("scope", scope),
            ("state", "s1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("prompt", "none"),
            ("login_hint", ALICE),
        ])
        .send()
        .await
        .expect("authorize");
    let Some(location) = r.headers().get("location") else {
        let status = r.status();
        return (status, json!({"page": r.text().await.unwrap_or_default()}));
    };
    let url = url::Url::parse(location.to_str().expect("location")).expect("url");
    let Some(code) = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
    else {
        let pairs: serde_json::Map<String, Value> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), json!(v.into_owned())))
            .collect();
        return (StatusCode::FOUND, Value::Object(pairs));
    };
    let response = sim
        .http
        .post(sim.url(&format!("/{}/oauth2/v2.0/token", c.tenant_id)))
        .form(&[
            ("client_id", client_id),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("token");
    (response.status(), response.json().await.expect("JSON"))
}

#[tokio::test]
async fn an_application_administrator_registers_jumpgate_and_users_sign_in_to_it() {
    let sim = demo().await;
    let token = sim.graph_token(DAVE, "Application.ReadWrite.All").await;
    let created = sim.register(&token, jumpgate_app("Jumpgate Laptops")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let app = &created.body;
    let client_id = app["appId"].as_str().expect("appId").to_string();
    assert!(uuid::Uuid::parse_str(&client_id).is_ok());
    assert_ne!(app["id"], app["appId"], "object id and client id differ");
    assert_eq!(app["displayName"], "Jumpgate Laptops");
    assert_eq!(app["signInAudience"], "AzureADMyOrg");
    assert_eq!(
        app["publicClient"]["redirectUris"],
        json!(["http://localhost"])
    );
    assert_eq!(app["isFallbackPublicClient"], true);
    assert_eq!(app["requiredResourceAccess"][0]["resourceAppId"], ARM_APP);
    assert!(app["createdDateTime"].is_string());
    assert!(created.headers["location"]
        .to_str()
        .expect("location")
        .ends_with(app["id"].as_str().expect("id")));

    // Without a service principal nobody can sign in to it.
    let (status, body) = sign_in_to(
        &sim,
        &client_id,
        "http://localhost:41000/",
        "https://management.azure.com/.default offline_access",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["page"].as_str().unwrap_or("").contains("AADSTS700016"),
        "{body}"
    );

    let sp = sim
        .graph(
            Some(&token),
            Method::POST,
            "/v1.0/servicePrincipals",
            Some(json!({"appId": client_id})),
        )
        .await;
    assert_eq!(sp.status, StatusCode::CREATED, "{}", sp.body);
    assert_eq!(sp.body["appId"], client_id.as_str());
    assert_eq!(sp.body["displayName"], "Jumpgate Laptops");
    let again = sim
        .graph(
            Some(&token),
            Method::POST,
            "/v1.0/servicePrincipals",
            Some(json!({"appId": client_id})),
        )
        .await;
    assert_graph_error(
        &again,
        StatusCode::CONFLICT,
        "Request_MultipleObjectsWithSameKeyValue",
    );

    // Any loopback port on the registered http://localhost, path /; tokens name the new app.
    for port in [41000, 52731] {
        let (status, tokens) = sign_in_to(
            &sim,
            &client_id,
            &format!("http://localhost:{port}/"),
            "https://management.azure.com/.default offline_access",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let access = claims(tokens["access_token"].as_str().expect("access token"));
        assert_eq!(access["appid"], client_id.as_str());
        assert_eq!(access["aud"], "https://management.azure.com/");
    }
    // Another path or host is not registered on it.
    for redirect in ["http://localhost:41000/callback", "http://127.0.0.1:41000/"] {
        let (status, body) = sign_in_to(
            &sim,
            &client_id,
            redirect,
            "https://management.azure.com/.default",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{redirect}");
        assert!(
            body["page"].as_str().unwrap_or("").contains("AADSTS50011"),
            "{body}"
        );
    }
    // Graph was not asked for: no consent to it.
    let (_, refused) = sign_in_to(
        &sim,
        &client_id,
        "http://localhost:41000/",
        "https://graph.microsoft.com/User.ReadBasic.All",
    )
    .await;
    assert_eq!(refused["error"], "consent_required", "{refused}");
    assert!(
        refused["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("Jumpgate Laptops"),
        "{refused}"
    );

    // The same with Graph's User.ReadBasic.All listed.
    let mut with_graph = jumpgate_app("Jumpgate Admin");
    with_graph["requiredResourceAccess"]
        .as_array_mut()
        .expect("array")
        .push(json!({"resourceAppId": GRAPH_APP, "resourceAccess": [{"id": READ_BASIC, "type": "Scope"}]}));
    let admin_app = sim.register(&token, with_graph).await;
    let admin_id = admin_app.body["appId"].as_str().expect("appId").to_string();
    sim.graph(
        Some(&token),
        Method::POST,
        "/v1.0/servicePrincipals",
        Some(json!({"appId": admin_id})),
    )
    .await;
    let (status, tokens) = sign_in_to(
        &sim,
        &admin_id,
        "http://localhost:41000/",
        "https://graph.microsoft.com/User.ReadBasic.All offline_access",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        claims(tokens["access_token"].as_str().expect("token"))["scp"],
        "User.ReadBasic.All"
    );

    let events = sim.events().await;
    assert!(events
        .iter()
        .any(|e| e["kind"] == "graph.application_created" && e["appId"] == client_id.as_str()));
    assert!(events
        .iter()
        .any(|e| e["kind"] == "entra.signed_in" && e["client_id"] == client_id.as_str()));
}

#[tokio::test]
async fn only_directory_admins_with_the_write_permission_register_apps() {
    let sim = demo().await;
    let body = jumpgate_app("Jumpgate");
    // A user without an Entra admin role, whatever the token allows.
    let alice = sim.graph_token(ALICE, "Application.ReadWrite.All").await;
    assert_graph_error(
        &sim.register(&alice, body.clone()).await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    // An admin whose token lacks the permission.
    let read_only = sim
        .graph_token(DAVE, "User.ReadBasic.All Application.Read.All")
        .await;
    assert_graph_error(
        &sim.register(&read_only, body.clone()).await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    // Reading needs a read permission; Application.Read.All is one.
    let list = sim
        .graph(Some(&read_only), Method::GET, "/v1.0/applications", None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let users_only = sim.graph_token(DAVE, "User.ReadBasic.All").await;
    let list = sim
        .graph(Some(&users_only), Method::GET, "/v1.0/applications", None)
        .await;
    assert_graph_error(&list, StatusCode::FORBIDDEN, "Authorization_RequestDenied");
    // No token, an ARM token, a garbled one.
    let arm = sim.token(DAVE).await;
    for token in [None, Some(arm.as_str()), Some("garbage")] {
        assert_graph_error(
            &sim.graph(
                token,
                Method::POST,
                "/v1.0/applications",
                Some(body.clone()),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
        );
    }
    // alice may not create a service principal either, even for an existing app.
    let own = sim.handle.client_config().client_id;
    let sp = sim
        .graph(
            Some(&alice),
            Method::POST,
            "/v1.0/servicePrincipals",
            Some(json!({"appId": own})),
        )
        .await;
    assert_graph_error(&sp, StatusCode::FORBIDDEN, "Authorization_RequestDenied");
    // The enterprise tenant's admin is a Cloud Application Administrator.
    let enterprise = start(jumpgate_sim::SimBuilder::new("enterprise").control(true)).await;
    let dave = enterprise
        .graph_token(DAVE, "Application.ReadWrite.All")
        .await;
    assert_eq!(
        enterprise.register(&dave, body.clone()).await.status,
        StatusCode::CREATED
    );
    let carol = enterprise
        .graph_token(CAROL, "Application.ReadWrite.All")
        .await;
    assert_eq!(
        enterprise.register(&carol, body).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn bodies_graph_would_refuse_are_refused_with_400() {
    let sim = demo().await;
    let token = sim.graph_token(DAVE, "Application.ReadWrite.All").await;
    let with = |pointer: &str, value: Value| {
        let mut body = jumpgate_app("Jumpgate");
        *body.pointer_mut(pointer).expect("pointer") = value;
        body
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"signInAudience": "AzureADMyOrg"}),
            "Request_BadRequest",
            "displayName",
        ),
        (
            with("/displayName", json!("  ")),
            "Request_BadRequest",
            "displayName",
        ),
        (
            with("/displayName", json!(42)),
            "Request_BadRequest",
            "displayName",
        ),
        (
            with("/signInAudience", json!("Everyone")),
            "Request_BadRequest",
            "signInAudience",
        ),
        (
            with("/publicClient/redirectUris", json!(["not a uri"])),
            "Request_BadRequest",
            "redirectUris",
        ),
        (
            with("/publicClient/redirectUris", json!(["http://example.com/"])),
            "Request_BadRequest",
            "redirectUris",
        ),
        (
            with(
                "/publicClient/redirectUris",
                json!(["https://example.com/#x"]),
            ),
            "Request_BadRequest",
            "redirectUris",
        ),
        (
            with("/publicClient/redirectUris", json!("http://localhost")),
            "Request_BadRequest",
            "redirectUris",
        ),
        (
            with("/isFallbackPublicClient", json!("yes")),
            "BadRequest",
            "Edm.Boolean",
        ),
        (
            with(
                "/requiredResourceAccess/0/resourceAppId",
                json!("11111111-2222-3333-4444-555555555555"),
            ),
            "Request_BadRequest",
            "resourceAppId",
        ),
        (
            with(
                "/requiredResourceAccess/0/resourceAccess/0/id",
                json!(READ_BASIC),
            ),
            "Request_BadRequest",
            "resourceAccess",
        ),
        (
            with(
                "/requiredResourceAccess/0/resourceAccess/0/type",
                json!("Role"),
            ),
            "Request_BadRequest",
            "resourceAccess",
        ),
        (
            with("/requiredResourceAccess", json!({})),
            "Request_BadRequest",
            "requiredResourceAccess",
        ),
        (
            with("/publicClient", json!({"redirectUris": [], "extra": 1})),
            "BadRequest",
            "extra",
        ),
        (
            json!({"displayName": "x", "web": {"redirectUris": []}}),
            "BadRequest",
            "web",
        ),
        (json!(["displayName"]), "BadRequest", "JSON"),
    ];
    let cases_len = cases.len();
    for (body, code, needle) in cases {
        let r = sim.register(&token, body.clone()).await;
        assert_graph_error(&r, StatusCode::BAD_REQUEST, code);
        assert!(r.message().contains(needle), "{body}: {}", r.body);
    }
    let raw = sim
        .http
        .post(sim.url("/v1.0/applications"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"displayName\": ")
        .send()
        .await
        .expect("post");
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let refused_bodies = cases_len + 1;
    for body in [
        json!({}),
        json!({"appId": 5}),
        json!({"appId": "00000000-0000-0000-0000-000000000001"}),
    ] {
        let r = sim
            .graph(
                Some(&token),
                Method::POST,
                "/v1.0/servicePrincipals",
                Some(body.clone()),
            )
            .await;
        assert_graph_error(&r, StatusCode::BAD_REQUEST, "Request_BadRequest");
    }
    // Each body refused for its shape is recorded, as ARM's are; an appId that names no
    // application is not a malformed body.
    let invalid = sim.events_of("request.invalid").await;
    assert_eq!(invalid.len(), refused_bodies + 2, "{invalid:?}");
    assert!(invalid
        .iter()
        .all(|e| e["method"] == "POST" && e["code"].is_string() && e["message"].is_string()));
    // Nothing was registered.
    let list = sim
        .graph(Some(&token), Method::GET, "/v1.0/applications", None)
        .await;
    assert_eq!(
        list.body["value"].as_array().map(Vec::len),
        Some(1),
        "only the tenant's own app: {}",
        list.body
    );
}

#[tokio::test]
async fn lists_page_with_next_links_and_filter_by_name() {
    let sim = demo().await;
    let token = sim.graph_token(DAVE, "Application.ReadWrite.All").await;
    for name in [
        "Jumpgate Laptops",
        "jumpgate laptops",
        "O'Brien's tool",
        "Other",
    ] {
        assert_eq!(
            sim.register(&token, jumpgate_app(name)).await.status,
            StatusCode::CREATED
        );
    }
    // Five apps with the tenant's own, two a page: three pages, the query kept.
    let mut url = "/v1.0/applications?$top=2&$select=id,appId,displayName".to_string();
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page = sim.graph(Some(&token), Method::GET, &url, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages += 1;
        for app in page.body["value"].as_array().expect("value") {
            names.push(app["displayName"].as_str().expect("name").to_string());
        }
        match page.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(sim.handle.url()), "{next}");
                assert!(
                    next.contains("%24top=2") || next.contains("$top=2"),
                    "{next}"
                );
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 5, "{names:?}");
    // A filter by name, case-insensitive as Graph's, with OData's doubled quotes.
    let filtered = sim
        .graph(
            Some(&token),
            Method::GET,
            "/v1.0/applications?$filter=displayName%20eq%20'JUMPGATE%20LAPTOPS'",
            None,
        )
        .await;
    assert_eq!(
        filtered.body["value"].as_array().map(Vec::len),
        Some(2),
        "{}",
        filtered.body
    );
    let quoted = sim
        .graph(
            Some(&token),
            Method::GET,
            "/v1.0/applications?$filter=displayName%20eq%20'O''Brien''s%20tool'",
            None,
        )
        .await;
    assert_eq!(
        quoted.body["value"][0]["displayName"], "O'Brien's tool",
        "{}",
        quoted.body
    );
    let own = sim.handle.client_config().client_id;
    let sps = sim
        .graph(
            Some(&token),
            Method::GET,
            &format!("/v1.0/servicePrincipals?$filter=appId%20eq%20'{own}'"),
            None,
        )
        .await;
    assert_eq!(sps.body["value"][0]["appId"], own.as_str(), "{}", sps.body);
    // Refusals: an unsupported filter, a garbled or foreign skip token, a bad $top.
    for (query, code) in [
        (
            "$filter=startswith(displayName,'J')",
            "Request_UnsupportedQuery",
        ),
        ("$skiptoken=garbage", "Directory_ExpiredPageToken"),
        ("$top=0", "Request_BadRequest"),
        ("$top=1000", "Request_BadRequest"),
    ] {
        let r = sim
            .graph(
                Some(&token),
                Method::GET,
                &format!("/v1.0/applications?{query}"),
                None,
            )
            .await;
        assert_graph_error(&r, StatusCode::BAD_REQUEST, code);
    }
    let first = sim
        .graph(Some(&token), Method::GET, "/v1.0/applications?$top=1", None)
        .await;
    let next = first.body["@odata.nextLink"].as_str().expect("next link");
    let token_only = next
        .split("%24skiptoken=")
        .nth(1)
        .or_else(|| next.split("$skiptoken=").nth(1))
        .expect("skiptoken");
    let foreign = sim
        .graph(
            Some(&token),
            Method::GET,
            &format!("/v1.0/servicePrincipals?$skiptoken={token_only}"),
            None,
        )
        .await;
    assert_graph_error(
        &foreign,
        StatusCode::BAD_REQUEST,
        "Directory_ExpiredPageToken",
    );
}

#[tokio::test]
async fn device_code_needs_public_client_flows_on() {
    let sim = demo().await;
    let token = sim.graph_token(DAVE, "Application.ReadWrite.All").await;
    let mut body = jumpgate_app("No public flows");
    body["isFallbackPublicClient"] = json!(false);
    let app = sim.register(&token, body).await;
    let client_id = app.body["appId"].as_str().expect("appId").to_string();
    sim.graph(
        Some(&token),
        Method::POST,
        "/v1.0/servicePrincipals",
        Some(json!({"appId": client_id})),
    )
    .await;
    let c = sim.handle.client_config();
    let devicecode = |client: String| {
        let request = sim
            .http
            .post(sim.url(&format!("/{}/oauth2/v2.0/devicecode", c.tenant_id)))
            .form(&[
                ("client_id", client.as_str()),
                ("scope", "https://management.azure.com/.default"),
            ]);
        async move {
            let r = request.send().await.expect("devicecode");
            (r.status(), r.json::<Value>().await.expect("JSON"))
        }
    };
    let (status, refused) = devicecode(client_id).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"], "invalid_client");
    assert!(refused["error_codes"][0] == 7000218, "{refused}");
    let (status, _) = devicecode(jumpgate_app_id(&sim, &token, "Public flows").await).await;
    assert_eq!(status, StatusCode::OK);
}

async fn jumpgate_app_id(sim: &Sim, token: &str, name: &str) -> String {
    let app = sim.register(token, jumpgate_app(name)).await;
    let id = app.body["appId"].as_str().expect("appId").to_string();
    sim.graph(
        Some(token),
        Method::POST,
        "/v1.0/servicePrincipals",
        Some(json!({"appId": id})),
    )
    .await;
    id
}

#[tokio::test]
async fn graph_lists_follow_the_tenants_page_size() {
    // `enterprise` answers two items a page; its Graph is not consented for the tenant's own
    // app, which the control API's tokens do not need.
    let sim = start(jumpgate_sim::SimBuilder::new("enterprise").control(true)).await;
    let token = sim.graph_token(DAVE, "Application.ReadWrite.All").await;
    for _ in 0..3 {
        assert_eq!(
            sim.register(&token, jumpgate_app("Twin")).await.status,
            StatusCode::CREATED
        );
    }
    let first = sim
        .graph(
            Some(&token),
            Method::GET,
            "/v1.0/applications?$filter=displayName%20eq%20'Twin'",
            None,
        )
        .await;
    assert_eq!(
        first.body["value"].as_array().map(Vec::len),
        Some(2),
        "{}",
        first.body
    );
    let next = first.body["@odata.nextLink"].as_str().expect("next link");
    let second = sim.graph(Some(&token), Method::GET, next, None).await;
    assert_eq!(
        second.body["value"].as_array().map(Vec::len),
        Some(1),
        "{}",
        second.body
    );
    assert!(second.body.get("@odata.nextLink").is_none());
    // $top still wins: the tenant's own app, grace's "Jumpgate" and the three twins.
    let all = sim
        .graph(
            Some(&token),
            Method::GET,
            "/v1.0/applications?$top=10",
            None,
        )
        .await;
    assert_eq!(
        all.body["value"].as_array().map(Vec::len),
        Some(5),
        "{}",
        all.body
    );
}

#[tokio::test]
async fn a_new_applications_service_principal_waits_for_replication() {
    // `empty` replicates a new application for 5 s before Graph will make its service principal.
    let sim = start(jumpgate_sim::SimBuilder::new("empty").control(true)).await;
    let token = sim.graph_token(DAVE, "Application.ReadWrite.All").await;
    let app = sim.register(&token, jumpgate_app("Jumpgate")).await;
    assert_eq!(app.status, StatusCode::CREATED, "{}", app.body);
    let app_id = app.body["appId"].as_str().expect("appId").to_string();
    let create = || {
        sim.graph(
            Some(&token),
            Method::POST,
            "/v1.0/servicePrincipals",
            Some(json!({"appId": app_id})),
        )
    };
    let early = create().await;
    assert_graph_error(&early, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let message = format!(
        "The appId '{app_id}' of the service principal does not reference a valid application object."
    );
    assert_eq!(early.message(), message);
    assert_eq!(
        early.body["error"]["details"],
        json!([{"code": "NoBackingApplicationObject", "message": message, "target": "appId"}])
    );
    assert_eq!(
        sim.events_of("graph.service_principal_refused").await.len(),
        1
    );
    sim.advance(4).await;
    assert_eq!(create().await.status, StatusCode::BAD_REQUEST);
    sim.advance(1).await;
    let made = create().await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    // demo replicates at once.
    let demo = demo().await;
    let token = demo.graph_token(DAVE, "Application.ReadWrite.All").await;
    let app = demo.register(&token, jumpgate_app("Jumpgate")).await;
    let made = demo
        .graph(
            Some(&token),
            Method::POST,
            "/v1.0/servicePrincipals",
            Some(json!({"appId": app.body["appId"]})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
}

/// The enterprise tenant's squatted "Jumpgate", registered by grace.
const SQUATTED: &str = "7c3e9b1a-5d2f-4e8a-9b6c-2a1f0e9d8c71";
const GRACE: &str = "grace@contoso.example";
const GRACE_OID: &str = "96ace000-0000-4000-8000-000000000008";
/// What `jumpgate admin app create` asks Graph for: writing applications, and reading the
/// directory to add an owner.
const ADMIN_SCOPES: &str = "Application.ReadWrite.All Directory.Read.All";

#[tokio::test]
async fn an_application_is_read_by_object_id_or_client_id_with_its_credentials() {
    let sim = enterprise().await;
    let token = sim.graph_token(DAVE, "Application.Read.All").await;
    let by_app_id = sim
        .graph(
            Some(&token),
            Method::GET,
            &format!("/v1.0/applications(appId='{SQUATTED}')"),
            None,
        )
        .await;
    assert_eq!(by_app_id.status, StatusCode::OK, "{}", by_app_id.body);
    let app = &by_app_id.body;
    assert_eq!(app["appId"], SQUATTED);
    assert_eq!(app["displayName"], "Jumpgate");
    assert!(app["@odata.context"]
        .as_str()
        .is_some_and(|c| c.ends_with("$metadata#applications/$entity")));
    // Secrets and certificates as Graph lists them: described, never their text or key.
    let secret = &app["passwordCredentials"][0];
    assert_eq!(secret["displayName"], "ci");
    assert_eq!(secret["secretText"], Value::Null);
    assert_eq!(secret["hint"].as_str().map(str::len), Some(3), "{secret}");
    assert!(uuid::Uuid::parse_str(secret["keyId"].as_str().unwrap_or("")).is_ok());
    assert!(secret["endDateTime"]
        .as_str()
        .is_some_and(|t| t.starts_with("2027-06-30T00:00:00")));
    let certificate = &app["keyCredentials"][0];
    assert_eq!(certificate["displayName"], "CN=jumpgate-tools");
    assert_eq!(certificate["type"], "AsymmetricX509Cert");
    assert_eq!(certificate["usage"], "Verify");
    assert_eq!(certificate["key"], Value::Null);
    // Every platform's redirect URIs.
    assert_eq!(
        app["web"]["redirectUris"],
        json!(["https://signin.jumpgate-tools.example/callback"])
    );
    assert_eq!(app["spa"]["redirectUris"], json!([]));
    assert_eq!(
        app["publicClient"]["redirectUris"],
        json!(["http://localhost"])
    );
    assert_eq!(app["isFallbackPublicClient"], true);
    // An app Jumpgate registers has none of them.
    let own = sim
        .graph(
            Some(&token),
            Method::GET,
            &format!(
                "/v1.0/applications(appId='{}')",
                sim.handle.client_config().client_id
            ),
            None,
        )
        .await;
    assert_eq!(own.body["passwordCredentials"], json!([]), "{}", own.body);
    assert_eq!(own.body["keyCredentials"], json!([]));
    assert_eq!(own.body["web"]["redirectUris"], json!([]));

    // The same object by its object id, with the quotes percent-encoded, and in a list
    // filtered by appId.
    let id = app["id"].as_str().expect("id");
    for path in [
        format!("/v1.0/applications/{id}"),
        format!("/v1.0/applications(appId=%27{SQUATTED}%27)"),
    ] {
        let r = sim.graph(Some(&token), Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(r.body["appId"], SQUATTED, "{path}");
        assert_eq!(r.body["passwordCredentials"], app["passwordCredentials"]);
    }
    let listed = sim
        .graph(
            Some(&token),
            Method::GET,
            &format!("/v1.0/applications?$filter=appId eq '{SQUATTED}'"),
            None,
        )
        .await;
    assert_eq!(
        listed.body["value"][0]["keyCredentials"],
        app["keyCredentials"]
    );

    // An id that names nothing, one that is no GUID, a segment Graph does not know, a
    // method it does not serve.
    let unknown = "00000000-0000-4000-8000-00000000abcd";
    for (method, path, status, code) in [
        (
            Method::GET,
            format!("/v1.0/applications(appId='{unknown}')"),
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
        ),
        (
            Method::GET,
            format!("/v1.0/applications/{unknown}/owners"),
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
        ),
        (
            Method::GET,
            "/v1.0/applications(appId='jumpgate')".to_string(),
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        ),
        (
            Method::GET,
            format!("/v1.0/applications/{id}/members"),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
        (
            Method::GET,
            "/v1.0/applications(displayName='Jumpgate')".to_string(),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
        (
            Method::DELETE,
            format!("/v1.0/applications/{id}"),
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
        ),
    ] {
        let r = sim.graph(Some(&token), method, &path, None).await;
        assert_graph_error(&r, status, code);
    }
    // Reading needs a read permission, and a token.
    let users_only = sim.graph_token(DAVE, "User.ReadBasic.All").await;
    let path = format!("/v1.0/applications(appId='{SQUATTED}')");
    assert_graph_error(
        &sim.graph(Some(&users_only), Method::GET, &path, None).await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    assert_graph_error(
        &sim.graph(None, Method::GET, &path, None).await,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    );
}

#[tokio::test]
async fn owners_are_listed_in_pages_and_added_by_reference() {
    let sim = enterprise().await;
    let owners_of = |app_id: &str| format!("/v1.0/applications(appId='{app_id}')/owners");
    // grace owns the squatted app; a caller who may read the directory sees who she is.
    let reader = sim
        .graph_token(DAVE, "Application.Read.All Directory.Read.All")
        .await;
    let owners = sim
        .graph(Some(&reader), Method::GET, &owners_of(SQUATTED), None)
        .await;
    assert_eq!(owners.status, StatusCode::OK, "{}", owners.body);
    assert!(owners.body["@odata.context"]
        .as_str()
        .is_some_and(|c| c.ends_with("$metadata#directoryObjects")));
    assert_eq!(
        owners.body["value"],
        json!([{
            "@odata.type": "#microsoft.graph.user",
            "id": GRACE_OID,
            "displayName": "Grace Gruber",
            "userPrincipalName": GRACE,
            "mail": GRACE,
        }])
    );
    // One who may read applications only gets the owner's type and id.
    let apps_only = sim.graph_token(DAVE, "Application.Read.All").await;
    let limited = sim
        .graph(Some(&apps_only), Method::GET, &owners_of(SQUATTED), None)
        .await;
    assert_eq!(
        limited.body["value"][0]["id"], GRACE_OID,
        "{}",
        limited.body
    );
    assert_eq!(limited.body["value"][0]["displayName"], Value::Null);
    assert_eq!(limited.body["value"][0]["userPrincipalName"], Value::Null);

    // dave, a Cloud Application Administrator, registers an app: his role is not made an
    // owner of it (Microsoft's roles reference), so it has none until he adds himself.
    let admin = sim.graph_token(DAVE, ADMIN_SCOPES).await;
    let created = sim.register(&admin, jumpgate_app("Jumpgate Laptops")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let app_id = created.body["appId"].as_str().expect("appId").to_string();
    let object_id = created.body["id"].as_str().expect("id").to_string();
    let none = sim
        .graph(Some(&admin), Method::GET, &owners_of(&app_id), None)
        .await;
    assert_eq!(none.body["value"], json!([]), "{}", none.body);
    let add = |token: String, path: String, body: Value| {
        let sim = &sim;
        async move {
            sim.graph(Some(&token), Method::POST, &path, Some(body))
                .await
        }
    };
    let reference = |oid: &str| json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{oid}")});
    let by_id = format!("/v1.0/applications/{object_id}/owners/$ref");
    let by_app_id = format!("/v1.0/applications(appId='{app_id}')/owners/$ref");
    // Adding an owner needs Directory.Read.All beside Application.ReadWrite.All.
    let write_only = sim.graph_token(DAVE, "Application.ReadWrite.All").await;
    assert_graph_error(
        &add(write_only, by_id.clone(), reference(sim.oid(DAVE))).await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    let added = add(admin.clone(), by_id.clone(), reference(sim.oid(DAVE))).await;
    assert_eq!(added.status, StatusCode::NO_CONTENT, "{}", added.body);
    assert_graph_error(
        &add(admin.clone(), by_app_id.clone(), reference(sim.oid(DAVE))).await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    for upn in [ALICE, BOB] {
        let r = add(admin.clone(), by_app_id.clone(), reference(sim.oid(upn))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    // Owners come in pages like every Graph list.
    let first = sim
        .graph(
            Some(&admin),
            Method::GET,
            &format!("{}?$top=2", owners_of(&app_id)),
            None,
        )
        .await;
    assert_eq!(first.body["value"].as_array().map(Vec::len), Some(2));
    assert!(first.body["@odata.nextLink"].is_string(), "{}", first.body);
    let all = sim.all_items(&admin, &owners_of(&app_id)).await;
    let ids: Vec<&str> = all.iter().filter_map(|o| o["id"].as_str()).collect();
    assert_eq!(ids, [sim.oid(DAVE), sim.oid(ALICE), sim.oid(BOB)]);
    assert_eq!(sim.events_of("graph.owner_added").await.len(), 3);

    // A body that names no directory object is refused and recorded; an object that does
    // not exist is not found.
    for body in [
        json!({"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/not-a-guid"}),
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/groups/{OPERATORS}")}),
        json!({"id": sim.oid(CAROL)}),
        json!([]),
    ] {
        let r = add(admin.clone(), by_id.clone(), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
    }
    assert_eq!(sim.events_of("request.invalid").await.len(), 4);
    assert_graph_error(
        &add(
            admin.clone(),
            by_id.clone(),
            reference("00000000-0000-4000-8000-00000000abcd"),
        )
        .await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );

    // An ordinary member may not make herself an owner of grace's app; grace, its owner,
    // may add another.
    let alice = sim.graph_token(ALICE, ADMIN_SCOPES).await;
    let squatted = format!("/v1.0/applications(appId='{SQUATTED}')/owners/$ref");
    assert_graph_error(
        &add(alice, squatted.clone(), reference(sim.oid(ALICE))).await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    let grace = sim.graph_token(GRACE, ADMIN_SCOPES).await;
    let r = add(grace, squatted, reference(sim.oid(FRANK))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let after = sim.all_items(&reader, &owners_of(SQUATTED)).await;
    assert_eq!(after.len(), 2);
}

#[tokio::test]
async fn where_members_may_register_apps_the_creator_becomes_the_owner() {
    let sim = enterprise_with(&[(
        "app_replication_secs = 5\n",
        "app_replication_secs = 5\nusers_can_register_apps = true\n",
    )])
    .await;
    let grace = sim.graph_token(GRACE, ADMIN_SCOPES).await;
    let created = sim.register(&grace, jumpgate_app("Grace's tool")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let app_id = created.body["appId"].as_str().expect("appId");
    let owners = sim
        .all_items(
            &grace,
            &format!("/v1.0/applications(appId='{app_id}')/owners"),
        )
        .await;
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["userPrincipalName"], GRACE);
    // An admin's registration still has no owner.
    let dave = sim.graph_token(DAVE, ADMIN_SCOPES).await;
    let created = sim.register(&dave, jumpgate_app("Dave's tool")).await;
    let app_id = created.body["appId"].as_str().expect("appId");
    let owners = sim
        .all_items(
            &dave,
            &format!("/v1.0/applications(appId='{app_id}')/owners"),
        )
        .await;
    assert!(owners.is_empty(), "{owners:?}");
    // Without the setting, grace may register nothing.
    let plain = enterprise().await;
    let grace = plain.graph_token(GRACE, ADMIN_SCOPES).await;
    assert_graph_error(
        &plain.register(&grace, jumpgate_app("Grace's tool")).await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
}

#[test]
fn a_fixtures_applications_are_checked_when_it_loads() {
    let base = jumpgate_sim::tenant::ENTERPRISE;
    let now = chrono::Utc::now();
    let load = |from: &str, to: &str| {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        let fixture =
            jumpgate_sim::tenant::Fixture::parse("enterprise (changed)", &text).expect("parses");
        jumpgate_sim::state::World::from_fixture(&fixture, now).map(|_| ())
    };
    assert!(load("", "").is_ok());
    for (from, to, needle) in [
        (
            "owners = [\"grace@contoso.example\"]",
            "owners = [\"mallory@contoso.example\"]",
            "owner mallory@contoso.example is no user",
        ),
        (
            "app_id = \"7c3e9b1a-5d2f-4e8a-9b6c-2a1f0e9d8c71\"",
            "app_id = \"4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51\"",
            "another application has its app_id",
        ),
        (
            "  \"Directory.Read.All\",\n]",
            "  \"Mail.Read\",\n]",
            "permission Mail.Read",
        ),
        (
            "web_redirect_uris = [\"https://signin.jumpgate-tools.example/callback\"]",
            "web_redirect_uris = [\"not a url\"]",
            "is not a URL",
        ),
        (
            "expires = \"2027-06-30T00:00:00Z\" }]\ncertificates",
            "expires = \"next year\" }]\ncertificates",
            "not RFC 3339",
        ),
    ] {
        let e = load(from, to).expect_err(needle).to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
}
