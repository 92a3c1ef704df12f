//! The whole alice → bob → JIT → gate story, walked with a plain HTTP client.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::*;

/// Signs `upn` in through the real authorize redirect (with the control API standing in for a
/// browser session) and redeems the code with PKCE. Returns the token response.
pub async fn sign_in(sim: &Sim, upn: &str) -> Value {
    let config = sim.handle.client_config();
    let (verifier, challenge) = pkce();
    let redirect = "http://127.0.0.1:53117/";
    let state = uuid::Uuid::new_v4().to_string();
    let authorize = sim
        .http
        .get(sim.url(&format!("/{}/oauth2/v2.0/authorize", config.tenant_id)))
        .query(&[
            ("client_id", config.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("response_mode", "query"),
            (
                "scope",
                "https://management.azure.com/.default openid profile offline_access",
            ),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", upn),
            ("prompt", "none"),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        authorize.status(),
        StatusCode::SEE_OTHER,
        "authorize redirects"
    );
    let location = authorize.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let url = url::Url::parse(&location).expect("redirect URL");
    assert!(location.starts_with(redirect), "{location}");
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        query.get("state"),
        Some(&state),
        "state comes back unchanged"
    );
    let code = query.get("code").expect("code in redirect");
    let token = sim
        .http
        .post(sim.url(&format!("/{}/oauth2/v2.0/token", config.tenant_id)))
        .form(&[
            ("client_id", config.client_id.as_str()),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
            (
                "scope",
                "https://management.azure.com/.default openid profile offline_access",
            ),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(token.status(), StatusCode::OK);
    token.json().await.expect("token JSON")
}

#[tokio::test]
async fn alice_gets_approved_and_the_gate_opens_for_her_only_until_expiry() {
    let sim = demo().await;
    let tokens = sign_in(&sim, ALICE).await;
    let alice = tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let c = claims(&alice);
    assert_eq!(c["upn"], ALICE);
    assert_eq!(c["tid"], sim.handle.tenant_id());
    assert!(c["exp"].as_i64().expect("exp") > chrono::Utc::now().timestamp());
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());

    // Eligible roles, listed at the tenant root as PIM tools do.
    let eligible = sim
        .arm_as(Some(&alice), Method::GET, &format!("/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()"), None)
        .await;
    assert_eq!(eligible.status, StatusCode::OK);
    let eligibility = &eligible.body["value"][0]["properties"];
    assert_eq!(
        eligibility["expandedProperties"]["roleDefinition"]["displayName"],
        "JIT Requester"
    );
    let scope = eligibility["scope"].as_str().expect("scope").to_string();

    // The policy says approval is required.
    let policies = sim
        .arm_as(Some(&alice), Method::GET, &format!("{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignments?api-version={PIM}"), None)
        .await;
    let rules = policies.body["value"][0]["properties"]["effectiveRules"]
        .as_array()
        .expect("rules")
        .clone();
    let approval_rule = rules
        .iter()
        .find(|r| r["id"] == "Approval_EndUser_Assignment")
        .expect("approval rule");
    assert_eq!(approval_rule["setting"]["isApprovalRequired"], true);

    // Before activation alice can see the policy but not initiate.
    let denied = sim
        .initiate(ALICE, "jumpbox-win-01", 3389, 60, Some("127.0.0.1"))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "AuthorizationFailed");

    let request = sim
        .activate(ALICE, "PT1H", Some("Patch the jump box, INC-4711"))
        .await;
    assert_eq!(request.status, StatusCode::CREATED, "{}", request.body);
    assert_eq!(request.body["properties"]["status"], "PendingApproval");
    let approval_id = request.body["properties"]["approvalId"]
        .as_str()
        .expect("approvalId")
        .to_string();
    let request_name = request.body["name"].as_str().expect("name").to_string();

    // bob sees it waiting for him, with the details he needs to decide.
    let inbox = sim.get(BOB, "/providers/Microsoft.Authorization/roleAssignmentApprovals?api-version=2021-01-01-preview&$filter=asApprover()").await;
    assert_eq!(inbox.body["value"].as_array().expect("list").len(), 1);
    assert_eq!(
        inbox.body["value"][0]["properties"]["stages"][0]["properties"]["assignedToMe"],
        true
    );
    let waiting = sim.get(BOB, &format!("/providers/Microsoft.Authorization/roleAssignmentScheduleRequests?api-version={PIM}&$filter=asApprover()")).await;
    let item = &waiting.body["value"][0]["properties"];
    assert_eq!(item["justification"], "Patch the jump box, INC-4711");
    assert_eq!(item["expandedProperties"]["principal"]["email"], ALICE);
    assert!(item["approvalId"]
        .as_str()
        .expect("approvalId")
        .ends_with(approval_id.rsplit('/').next().expect("guid")));

    let decision = sim.decide(BOB, &approval_id, "Approve", "Go ahead").await;
    assert_eq!(decision.status, StatusCode::OK, "{}", decision.body);
    assert_eq!(decision.body["properties"]["reviewResult"], "Approve");
    assert_eq!(
        decision.body["properties"]["reviewedBy"]["userPrincipalName"],
        BOB
    );

    let status = sim.get(ALICE, &format!("{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{request_name}?api-version={PIM}")).await;
    assert_eq!(status.body["properties"]["status"], "Provisioned");
    let active = sim.get(ALICE, &format!("/providers/Microsoft.Authorization/roleAssignmentScheduleInstances?api-version={PIM}&$filter=asTarget()")).await;
    assert!(active.body["value"]
        .as_array()
        .expect("list")
        .iter()
        .any(|i| i["properties"]["assignmentType"] == "Activated"));

    // Now alice can open RDP for her own address only.
    let opened = sim
        .initiate(ALICE, "jumpbox-win-01", 3389, 60, Some("127.0.0.1"))
        .await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    assert_eq!(opened.body["requestor"], ALICE);
    let policy = sim
        .get(ALICE, &format!("{}?api-version={JIT}", sim.policy_path()))
        .await;
    let last = policy.body["properties"]["requests"]
        .as_array()
        .expect("requests")
        .last()
        .cloned()
        .expect("a request");
    assert_eq!(
        last["virtualMachines"][0]["ports"][0]["status"],
        "Initiated"
    );

    let gate = sim.gate_address("jumpbox-win-01", 3389).await;
    assert!(
        gate_admits(gate, "127.0.0.1".parse().expect("ip"), true).await,
        "alice's address is let through"
    );
    assert!(
        !gate_admits(gate, "127.0.0.2".parse().expect("ip"), true).await,
        "another address is refused"
    );

    // When the simulator's clock passes the end time, the rule expires and the gate closes.
    sim.advance(61 * 60).await;
    let policy = sim
        .get(ALICE, &format!("{}?api-version={JIT}", sim.policy_path()))
        .await;
    let last = policy.body["properties"]["requests"]
        .as_array()
        .expect("requests")
        .last()
        .cloned()
        .expect("a request");
    assert_eq!(last["virtualMachines"][0]["ports"][0]["status"], "Revoked");
    assert_eq!(
        last["virtualMachines"][0]["ports"][0]["statusReason"],
        "Expired"
    );
    assert!(
        !gate_admits(gate, "127.0.0.1".parse().expect("ip"), true).await,
        "the gate closes at endTimeUtc"
    );

    let kinds: Vec<String> = sim
        .events()
        .await
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .filter(|k| k != "request")
        .collect();
    let order = [
        "entra.signed_in",
        "pim.request_pending",
        "pim.approval_decided",
        "pim.request_provisioned",
        "jit.initiated",
        "gate.admitted",
        "gate.refused",
        "jit.expired",
    ];
    let mut at = 0;
    for wanted in order {
        let found = kinds[at..]
            .iter()
            .position(|k| k == wanted)
            .unwrap_or_else(|| panic!("{wanted} missing after position {at} in {kinds:?}"));
        at += found + 1;
    }
}
