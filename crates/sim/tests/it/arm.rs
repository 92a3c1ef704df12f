//! ARM plumbing: authentication, api-version, RBAC, bad input, faults and the clock.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

fn eligible_path() -> String {
    format!("/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()")
}

#[tokio::test]
async fn missing_invalid_and_expired_tokens_get_401_with_a_challenge() {
    let sim = demo().await;
    let path = eligible_path();
    let anonymous = sim.arm(None, Method::GET, &path, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.code(), "AuthenticationFailed");
    assert!(anonymous.headers["www-authenticate"]
        .to_str()
        .expect("header")
        .starts_with("Bearer authorization_uri="));

    // An unsigned ("alg": "none") token claiming to be alice.
    let b64 = |v: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(json!({"upn": ALICE, "oid": sim.oid(ALICE)}))
    );
    let forged = sim.arm_as(Some(&unsigned), Method::GET, &path, None).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.code(), "InvalidAuthenticationToken");

    let token = sim.token(ALICE).await;
    sim.advance(3601).await;
    let expired = sim.arm_as(Some(&token), Method::GET, &path, None).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.code(), "ExpiredAuthenticationToken");
    assert!(expired.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_token_for_another_resource_is_refused() {
    let sim = demo().await;
    let c = sim.handle.client_config();
    let (verifier, challenge) = pkce();
    let r = sim
        .http
        .get(sim.url(&format!("/{}/oauth2/v2.0/authorize", c.tenant_id)))
        .query(&[
            ("client_id", c.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "http://127.0.0.1:1/"),
            ("scope", "openid profile"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("prompt", "none"),
            ("login_hint", ALICE),
        ])
        .send()
        .await
        .expect("authorize");
    let location =
        url::Url::parse(r.headers()["location"].to_str().expect("location")).expect("url");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("code")
        .1
        .into_owned();
    let tokens: serde_json::Value = sim
        .http
        .post(sim.url(&format!("/{}/oauth2/v2.0/token", c.tenant_id)))
        .form(&[
            ("client_id", c.client_id.as_str()),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:1/"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("JSON");
    let graph = tokens["access_token"].as_str().expect("token");
    let reply = sim
        .arm_as(Some(graph), Method::GET, &eligible_path(), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "InvalidAuthenticationTokenAudience");
}

#[tokio::test]
async fn api_version_is_required_and_checked() {
    let sim = demo().await;
    let missing = sim.get(ALICE, "/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?$filter=asTarget()").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.code(), "MissingApiVersionParameter");
    let wrong = sim.get(ALICE, "/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2099-01-01&$filter=asTarget()").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.code(), "InvalidApiVersionParameter");
    assert!(
        wrong.message().contains("2020-10-01"),
        "names the supported versions: {}",
        wrong.message()
    );
    // Each provider has its own versions.
    for (path, good, bad) in [
        (format!("/subscriptions/{SUB}/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01"), "2024-07-01", "2020-01-01"),
        (format!("/subscriptions/{SUB}/resourceGroups/rg-jumpboxes/providers/Microsoft.Network/publicIPAddresses/jumpbox-win-01-pip"), "2025-07-01", "2024-03-01"),
        (format!("/subscriptions/{SUB}/providers/Microsoft.Security/jitNetworkAccessPolicies"), "2020-01-01", "2015-06-01-preview"),
    ] {
        assert_eq!(sim.get(ALICE, &format!("{path}?api-version={good}")).await.status, StatusCode::OK, "{path} {good}");
        assert_eq!(sim.get(ALICE, &format!("{path}?api-version={bad}")).await.code(), "InvalidApiVersionParameter", "{path} {bad}");
    }
}

#[tokio::test]
async fn rbac_uses_active_assignments_with_wildcards() {
    let sim = demo().await;
    let vm = format!("/subscriptions/{SUB}/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01?api-version=2025-11-01");
    // Reader (*/read) at the resource group lets alice and bob read the VM.
    assert_eq!(sim.get(ALICE, &vm).await.status, StatusCode::OK);
    // Reader cannot write JIT policies; Owner (*) can.
    let policy = sim
        .get(DAVE, &format!("{}?api-version={JIT}", sim.policy_path()))
        .await
        .body;
    let body = json!({"kind": "Basic", "properties": {"virtualMachines": policy["properties"]["virtualMachines"]}});
    let as_carol = sim
        .arm(
            Some(CAROL),
            Method::PUT,
            &format!("{}?api-version={JIT}", sim.policy_path()),
            Some(body.clone()),
        )
        .await;
    assert_eq!(as_carol.status, StatusCode::FORBIDDEN);
    assert_eq!(as_carol.code(), "AuthorizationFailed");
    assert!(as_carol
        .message()
        .contains("Microsoft.Security/locations/jitNetworkAccessPolicies/write"));
    let as_dave = sim
        .arm(
            Some(DAVE),
            Method::PUT,
            &format!("{}?api-version={JIT}", sim.policy_path()),
            Some(body),
        )
        .await;
    assert_eq!(as_dave.status, StatusCode::OK, "{}", as_dave.body);
    // The permissions endpoint reports what alice holds there.
    let perms = sim
        .get(
            ALICE,
            &format!("{RG}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"),
        )
        .await;
    assert_eq!(perms.body["value"][0]["actions"][0], "*/read");
}

#[tokio::test]
async fn reliability_13_bad_input_gets_arm_errors_and_never_crashes_the_server() {
    let sim = demo().await;
    let token = sim.token(ALICE).await;
    let put = |body: reqwest::Body| {
        sim.http
            .put(sim.url(&format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version={PIM}", uuid::Uuid::new_v4())))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let malformed = put("{\"properties\": ".into()).await.expect("call");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = malformed.json().await.expect("ARM error JSON");
    assert_eq!(body["error"]["code"], "InvalidRequestContent");
    let oversized = put(vec![b' '; 2 * 1024 * 1024].into()).await.expect("call");
    assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = oversized.json().await.expect("ARM error JSON");
    assert_eq!(body["error"]["code"], "RequestEntityTooLarge");
    let wrong_types = sim
        .arm(
            Some(ALICE),
            Method::POST,
            &format!("{}/initiate?api-version={JIT}", sim.policy_path()),
            Some(json!({"virtualMachines": [{"id": 5, "ports": "x"}]})),
        )
        .await;
    assert_eq!(wrong_types.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_types.code(), "InvalidRequestContent");
    for path in [
        "/nowhere?api-version=1",
        "/subscriptions/x/providers/Microsoft.Fake/things?api-version=1",
        "/providers/Microsoft.Authorization/unknownThings?api-version=2020-10-01",
    ] {
        let unknown = sim.get(ALICE, path).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!unknown.code().is_empty(), "{path} has an ARM error code");
    }
    // Still serving.
    assert_eq!(
        sim.get(ALICE, &eligible_path()).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reliability_09_injected_faults_throttle_with_retry_after_fail_delay_and_drop() {
    let sim = demo().await;
    sim.control("/faults", json!({"path": "roleEligibilityScheduleInstances", "status": 429, "retry_after": 7, "count": 2})).await;
    for _ in 0..2 {
        let throttled = sim.get(ALICE, &eligible_path()).await;
        assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(throttled.headers["retry-after"], "7");
        assert_eq!(throttled.code(), "TooManyRequests");
    }
    assert_eq!(
        sim.get(ALICE, &eligible_path()).await.status,
        StatusCode::OK,
        "only the next N requests"
    );

    sim.control(
        "/faults",
        json!({"path": "roleEligibility", "status": 503, "retry_after": 1}),
    )
    .await;
    assert_eq!(
        sim.get(ALICE, &eligible_path()).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    sim.control("/faults", json!({"path": "roleEligibility", "status": 502}))
        .await;
    let gateway = sim.get(ALICE, &eligible_path()).await;
    assert_eq!(gateway.status, StatusCode::BAD_GATEWAY);
    assert!(
        gateway.body.is_null(),
        "a gateway answers with HTML, not JSON"
    );

    sim.control(
        "/faults",
        json!({"path": "roleEligibility", "latency_ms": 300}),
    )
    .await;
    let started = Instant::now();
    assert_eq!(
        sim.get(ALICE, &eligible_path()).await.status,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    sim.control("/faults", json!({"path": "roleEligibility", "drop": true}))
        .await;
    let token = sim.token(ALICE).await;
    let dropped = sim
        .http
        .get(sim.url(&eligible_path()))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(
        dropped.is_err(),
        "the connection is closed without an answer"
    );
    assert_eq!(
        sim.get(ALICE, &eligible_path()).await.status,
        StatusCode::OK
    );

    let bad = sim
        .http
        .post(sim.url("/_sim/faults"))
        .bearer_auth(sim.control_token())
        .json(&json!({"path": "(", "status": 500}))
        .send()
        .await
        .expect("call");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_response_carries_the_simulator_clock_in_its_date_header() {
    let sim = demo().await;
    let date = |r: &Reply| -> chrono::DateTime<chrono::Utc> {
        httpdate::parse_http_date(r.headers["date"].to_str().expect("date"))
            .expect("http date")
            .into()
    };
    let before = date(&sim.get(ALICE, &eligible_path()).await);
    sim.advance(2 * 3600).await;
    let unauthenticated = sim.arm(None, Method::GET, &eligible_path(), None).await;
    let after = date(&unauthenticated);
    assert!(
        after - before >= chrono::Duration::hours(2),
        "{before} -> {after}"
    );
    let echo = sim.http.get(sim.url("/ip")).send().await.expect("ip");
    let echoed: chrono::DateTime<chrono::Utc> =
        httpdate::parse_http_date(echo.headers()["date"].to_str().expect("date"))
            .expect("date")
            .into();
    assert!(echoed - before >= chrono::Duration::hours(2));
    let refused = sim
        .http
        .post(sim.url("/_sim/clock/advance"))
        .bearer_auth(sim.control_token())
        .json(&json!({"seconds": -5}))
        .send()
        .await
        .expect("call");
    assert_eq!(
        refused.status(),
        StatusCode::BAD_REQUEST,
        "time does not run backwards"
    );
}

#[tokio::test]
async fn ip_echo_services_report_the_source_or_the_controlled_address() {
    let sim = demo().await;
    let plain = sim
        .http
        .get(sim.url("/ip"))
        .send()
        .await
        .expect("ip")
        .text()
        .await
        .expect("text");
    assert_eq!(plain, "127.0.0.1");
    let trace = sim
        .http
        .get(sim.url("/cdn-cgi/trace"))
        .send()
        .await
        .expect("trace")
        .text()
        .await
        .expect("text");
    assert!(trace.lines().any(|l| l == "ip=127.0.0.1"), "{trace}");
    assert!(trace.lines().any(|l| l.starts_with("ts=")));
    sim.control("/ip", json!({"ip": "203.0.113.9"})).await;
    assert_eq!(
        sim.http
            .get(sim.url("/ip"))
            .send()
            .await
            .expect("ip")
            .text()
            .await
            .expect("text"),
        "203.0.113.9"
    );
    sim.control("/ip", json!({"ip": null})).await;
    assert_eq!(
        sim.http
            .get(sim.url("/ip"))
            .send()
            .await
            .expect("ip")
            .text()
            .await
            .expect("text"),
        "127.0.0.1"
    );
    let bad = sim
        .http
        .post(sim.url("/_sim/ip"))
        .bearer_auth(sim.control_token())
        .json(&json!({"ip": "::1"}))
        .send()
        .await
        .expect("call");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn subscriptions_and_vm_addresses_can_be_discovered() {
    let sim = demo().await;
    let subs = sim
        .get(ALICE, "/subscriptions?api-version=2022-12-01")
        .await;
    assert_eq!(subs.body["value"][0]["subscriptionId"], SUB);
    let vm = sim.get(ALICE, &format!("{RG}/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01?api-version=2025-11-01")).await;
    let nic_id = vm.body["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
        .as_str()
        .expect("nic id")
        .to_string();
    let nic = sim
        .get(ALICE, &format!("{nic_id}?api-version=2025-07-01"))
        .await;
    let pip_id = nic.body["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]
        ["id"]
        .as_str()
        .expect("pip id")
        .to_string();
    let pip = sim
        .get(ALICE, &format!("{pip_id}?api-version=2024-07-01"))
        .await;
    assert_eq!(pip.body["properties"]["ipAddress"], "127.0.0.10");
}
