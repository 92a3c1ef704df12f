//! Entra ID sign-in: PKCE, state, refresh-token rotation, device code, revocation.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::story::sign_in;
use crate::support::*;

struct Authorize<'a> {
    sim: &'a Sim,
}

impl Authorize<'_> {
    fn base(&self) -> (String, String) {
        let c = self.sim.handle.client_config();
        (c.tenant_id, c.client_id)
    }

    async fn get(&self, extra: &[(&str, &str)]) -> reqwest::Response {
        let (tenant, client) = self.base();
        let (_, challenge) = pkce();
        let mut query: Vec<(&str, String)> = vec![
            ("client_id", client),
            ("response_type", "code".into()),
            ("redirect_uri", "http://127.0.0.1:41000/".into()),
            (
                "scope",
                "https://management.azure.com/.default offline_access".into(),
            ),
            ("state", "s1".into()),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256".into()),
        ];
        for (k, v) in extra {
            query.retain(|(key, _)| key != k);
            if !v.is_empty() {
                query.push((k, v.to_string()));
            }
        }
        self.sim
            .http
            .get(self.sim.url(&format!("/{tenant}/oauth2/v2.0/authorize")))
            .query(&query)
            .send()
            .await
            .expect("authorize")
    }
}

async fn token(sim: &Sim, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let c = sim.handle.client_config();
    let mut fields: Vec<(&str, &str)> = vec![("client_id", &c.client_id)];
    fields.extend_from_slice(form);
    let response = sim
        .http
        .post(sim.url(&format!("/{}/oauth2/v2.0/token", c.tenant_id)))
        .form(&fields)
        .send()
        .await
        .expect("token");
    (response.status(), response.json().await.expect("JSON"))
}

#[tokio::test]
async fn the_sign_in_page_offers_every_user_and_redirects_with_code_and_state() {
    let sim = demo().await;
    let page = Authorize { sim: &sim }.get(&[("login_hint", ALICE)]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    for upn in [ALICE, BOB, CAROL, DAVE] {
        assert!(html.contains(upn), "{upn} offered");
    }
    // Submitting the form the page shows completes the sign-in.
    let c = sim.handle.client_config();
    let (_, challenge) = pkce();
    let submitted = sim
        .http
        .post(sim.url(&format!("/{}/oauth2/v2.0/authorize", c.tenant_id)))
        .form(&[
            ("client_id", c.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost:41000/"),
            ("scope", "https://management.azure.com/.default"),
            ("state", "xyz"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("upn", BOB),
        ])
        .send()
        .await
        .expect("submit");
    let location = submitted.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        location.starts_with("http://localhost:41000/?code="),
        "{location}"
    );
    assert!(location.ends_with("&state=xyz"), "{location}");
}

#[tokio::test]
async fn authorize_rejects_bad_clients_redirects_and_pkce() {
    let sim = demo().await;
    let a = Authorize { sim: &sim };
    // Unknown client and non-loopback redirect: an error page, never a redirect.
    let r = a
        .get(&[("client_id", "00000000-0000-0000-0000-000000000000")])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("text").contains("AADSTS700016"));
    let r = a.get(&[("redirect_uri", "https://evil.example/cb")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("text").contains("AADSTS50011"));
    // Missing PKCE or the plain method: reported through the redirect.
    for extra in [
        vec![("code_challenge", "")],
        vec![("code_challenge_method", "plain")],
    ] {
        let r = a.get(&extra).await;
        let location = r.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        assert!(location.contains("error=invalid_request"), "{location}");
        assert!(location.contains("state=s1"), "{location}");
    }
    // prompt=none for an unknown user cannot sign in silently.
    let r = a
        .get(&[
            ("prompt", "none"),
            ("login_hint", "mallory@contoso.example"),
        ])
        .await;
    assert!(r.headers()["location"]
        .to_str()
        .expect("location")
        .contains("error=login_required"));
}

#[tokio::test]
async fn silent_sign_in_needs_the_control_api() {
    let sim = start(jumpgate_sim::SimBuilder::new("demo")).await;
    let r = Authorize { sim: &sim }
        .get(&[("prompt", "none"), ("login_hint", ALICE)])
        .await;
    assert!(r.headers()["location"]
        .to_str()
        .expect("location")
        .contains("error=login_required"));
    // Without --control there is no /_sim/ API: the path is just an unknown ARM path, and ARM
    // asks for authentication before anything else.
    let control = sim
        .http
        .post(sim.url("/_sim/token"))
        .json(&json!({"upn": ALICE}))
        .send()
        .await
        .expect("call");
    assert_eq!(control.status(), StatusCode::UNAUTHORIZED);
}

/// RELIABILITY #30: a web page in the same browser as a `--demo` tray cannot mint tokens:
/// every control call needs the run's bearer token, and its body must be JSON.
#[tokio::test]
async fn reliability_30_the_control_api_needs_its_token_and_json() {
    let sim = demo().await;
    let token = sim.control_token().to_string();
    assert!(token.len() >= 32, "a long random token");
    let other = demo().await;
    assert_ne!(other.control_token(), token, "one token per run");
    let body = json!({"upn": ALICE}).to_string();
    let call = |auth: Option<String>, content_type: &'static str| {
        let mut r = sim
            .http
            .post(sim.url("/_sim/token"))
            .header("content-type", content_type)
            .body(body.clone());
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    for auth in [
        None,
        Some("Bearer".to_string()),
        Some("Bearer wrong".to_string()),
        Some(format!("Bearer {token}x")),
        Some(format!("Basic {token}")),
        Some(format!("Bearer {}", other.control_token())),
    ] {
        let r = call(auth.clone(), "application/json").await.expect("call");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let error: Value = r.json().await.expect("a JSON error");
        assert!(error["error"]
            .as_str()
            .expect("message")
            .contains("control_token"));
    }
    // A reading call is refused without the token too.
    let events = sim
        .http
        .get(sim.url("/_sim/events"))
        .send()
        .await
        .expect("call");
    assert_eq!(events.status(), StatusCode::UNAUTHORIZED);
    // What a form or a no-cors fetch can send without a preflight is refused.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "",
    ] {
        let r = call(Some(format!("Bearer {token}")), content_type)
            .await
            .expect("call");
        assert_eq!(
            r.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        let error: Value = r.json().await.expect("a JSON error");
        assert!(error["error"]
            .as_str()
            .expect("message")
            .contains("application/json"));
    }
    let minted = call(
        Some(format!("Bearer {token}")),
        "application/json; charset=utf-8",
    )
    .await
    .expect("call");
    assert_eq!(minted.status(), StatusCode::OK);
    let minted: Value = minted.json().await.expect("JSON");
    assert!(minted["access_token"].as_str().is_some());
}

async fn code_for(sim: &Sim, challenge: &str) -> String {
    let r = Authorize { sim }
        .get(&[
            ("prompt", "none"),
            ("login_hint", ALICE),
            ("code_challenge", challenge),
        ])
        .await;
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let url = url::Url::parse(&location).expect("url");
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code")
}

#[tokio::test]
async fn reliability_03_pkce_s256_is_verified_and_codes_are_single_use() {
    let sim = demo().await;
    let (verifier, challenge) = pkce();
    let code = code_for(&sim, &challenge).await;
    let redirect = "http://127.0.0.1:41000/";
    let (other_verifier, _) = pkce();
    let (status, body) = token(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &other_verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"][0], 501481);
    let (status, body) = token(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", "short"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, body) = token(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let (status, body) = token(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error_codes"][0].as_i64()),
        (StatusCode::BAD_REQUEST, Some(54005))
    );
    // Entra's error JSON shape.
    for key in [
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
    ] {
        assert!(body.get(key).is_some(), "{key} in {body}");
    }
}

#[tokio::test]
async fn reliability_05_refresh_tokens_rotate_and_a_reused_one_is_refused() {
    let sim = demo().await;
    let first = sign_in(&sim, ALICE).await;
    let rt1 = first["refresh_token"].as_str().expect("rt").to_string();
    let (status, second) = token(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            (
                "scope",
                "https://management.azure.com/.default offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rt2 = second["refresh_token"]
        .as_str()
        .expect("new rt")
        .to_string();
    assert_ne!(rt1, rt2, "the refresh token rotates");
    let (status, reused) = token(
        &sim,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reused["error"], "invalid_grant");
    let (status, _) = token(
        &sim,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn reliability_06_revocation_gives_invalid_grant_50173_and_401() {
    let sim = demo().await;
    let tokens = sign_in(&sim, ALICE).await;
    let access = tokens["access_token"].as_str().expect("at");
    let path = format!("/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()");
    assert_eq!(
        sim.arm_as(Some(access), reqwest::Method::GET, &path, None)
            .await
            .status,
        StatusCode::OK
    );
    sim.control("/revoke", json!({"upn": ALICE})).await;
    let (status, body) = token(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("rt"),
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"][0], 50173);
    let after = sim
        .arm_as(Some(access), reqwest::Method::GET, &path, None)
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert!(after.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn reliability_04_device_code_pends_slows_down_completes_and_expires() {
    let sim = demo().await;
    let c = sim.handle.client_config();
    let start = |sim: &Sim| {
        let c = c.clone();
        let http = sim.http.clone();
        let url = sim.url(&format!("/{}/oauth2/v2.0/devicecode", c.tenant_id));
        async move {
            http.post(url)
                .form(&[
                    ("client_id", c.client_id.as_str()),
                    (
                        "scope",
                        "https://management.azure.com/.default offline_access",
                    ),
                ])
                .send()
                .await
                .expect("devicecode")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };
    let grant = start(&sim).await;
    assert_eq!(grant["interval"], 5);
    assert_eq!(grant["expires_in"], 900);
    assert!(grant["verification_uri"]
        .as_str()
        .expect("uri")
        .ends_with("/devicelogin"));
    let device_code = grant["device_code"]
        .as_str()
        .expect("device code")
        .to_string();
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code.as_str()),
    ];
    let poll = || token(&sim, &form);
    let (_, first) = poll().await;
    assert_eq!(first["error"], "authorization_pending");
    let (_, second) = poll().await;
    assert_eq!(
        second["error"], "slow_down",
        "polling faster than the interval"
    );
    sim.control(
        "/device",
        json!({"user_code": grant["user_code"], "upn": CAROL}),
    )
    .await;
    sim.advance(11).await;
    let (status, done) = poll().await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        claims(done["access_token"].as_str().expect("at"))["upn"],
        CAROL
    );

    let late = start(&sim).await;
    sim.advance(901).await;
    let (_, expired) = token(
        &sim,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", late["device_code"].as_str().expect("dc")),
        ],
    )
    .await;
    assert_eq!(expired["error"], "expired_token");
}

#[tokio::test]
async fn the_device_login_page_completes_a_sign_in() {
    let sim = demo().await;
    let c = sim.handle.client_config();
    let grant: Value = sim
        .http
        .post(sim.url(&format!("/{}/oauth2/v2.0/devicecode", c.tenant_id)))
        .form(&[
            ("client_id", c.client_id.as_str()),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await
        .expect("devicecode")
        .json()
        .await
        .expect("JSON");
    let page = sim
        .http
        .get(sim.url("/devicelogin"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Enter code"));
    let code = grant["user_code"].as_str().expect("code");
    let done = sim
        .http
        .post(sim.url("/devicelogin"))
        .form(&[("user_code", code), ("upn", DAVE)])
        .send()
        .await
        .expect("submit");
    assert_eq!(done.status(), StatusCode::OK);
    let (status, body) = token(
        &sim,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", grant["device_code"].as_str().expect("dc")),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn metadata_and_keys_describe_the_tenant() {
    let sim = demo().await;
    let c = sim.handle.client_config();
    for tenant in [c.tenant_id.as_str(), "contoso.example", "organizations"] {
        let meta: Value = sim
            .http
            .get(sim.url(&format!("/{tenant}/v2.0/.well-known/openid-configuration")))
            .send()
            .await
            .expect("meta")
            .json()
            .await
            .expect("JSON");
        assert!(meta["token_endpoint"]
            .as_str()
            .expect("token endpoint")
            .ends_with("/oauth2/v2.0/token"));
        let jwks: Value = sim
            .http
            .get(meta["jwks_uri"].as_str().expect("jwks uri"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("JSON");
        assert_eq!(jwks["keys"][0]["kty"], "RSA");
    }
    let unknown = sim
        .http
        .get(sim.url("/fabrikam.example/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .expect("meta");
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let (status, body) = token(&sim, &[("grant_type", "password")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn without_rotation_a_refresh_answers_no_refresh_token_and_the_old_one_stays_valid() {
    let sim = demo().await;
    let first = sign_in(&sim, ALICE).await;
    let rt = first["refresh_token"].as_str().expect("rt").to_string();
    let off = sim
        .control("/entra", json!({"rotate_refresh_tokens": false}))
        .await;
    assert_eq!(off, json!({"rotate_refresh_tokens": false}));
    for _ in 0..2 {
        let (status, answer) = token(
            &sim,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(answer["access_token"].is_string());
        assert!(answer.get("refresh_token").is_none(), "{answer}");
    }
    sim.control("/entra", json!({"rotate_refresh_tokens": true}))
        .await;
    let (status, rotated) = token(
        &sim,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(rotated["refresh_token"].is_string());
    let (status, reused) = token(
        &sim,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(
        (status, reused["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(sim.events_of("entra.settings_changed").await.len(), 2);
    // The control call takes only what it knows.
    let bad = sim
        .http
        .post(sim.url("/_sim/entra"))
        .bearer_auth(sim.control_token())
        .json(&json!({"rotate": false}))
        .send()
        .await
        .expect("control");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
