//! The admin workflow's endpoints on the `empty` tenant: a custom role, its PIM policy, an
//! eligibility, and the Graph user lookup; only dave (Owner) may change anything.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

const ROLE: &str = "6b1f3c2d-4e5a-4b6c-8d7e-9f0a1b2c3d4e";

async fn empty() -> Sim {
    start(
        jumpgate_sim::SimBuilder::new("empty")
            .control(true)
            .propagation_delay(0),
    )
    .await
}

fn role_path() -> String {
    format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE}?api-version=2022-04-01")
}

fn role_body() -> Value {
    json!({"properties": {"roleName": "JIT Requester", "description": "JIT", "type": "CustomRole",
        "assignableScopes": [format!("/subscriptions/{SUB}")],
        "permissions": [{"actions": [
            "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
            "Microsoft.Security/locations/jitNetworkAccessPolicies/read",
            "Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
            "Microsoft.Compute/virtualMachines/read",
            "Microsoft.Network/networkInterfaces/read",
            "Microsoft.Network/networkInterfaces/*/read",
            "Microsoft.Network/publicIPAddresses/read"], "notActions": [], "dataActions": [], "notDataActions": []}]}})
}

fn eligibility(principal: &str) -> Value {
    json!({"properties": {
        "principalId": principal,
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE}"),
        "requestType": "AdminAssign",
        "justification": "Jump box access",
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "P365D"}}}})
}

fn eligibility_path() -> String {
    format!(
        "{RG}/providers/Microsoft.Authorization/roleEligibilityScheduleRequests/{}?api-version={PIM}",
        uuid::Uuid::new_v4()
    )
}

#[tokio::test]
async fn dave_sets_up_jit_access_and_alice_may_not() {
    let sim = empty().await;
    // The empty tenant has no custom role, no eligibility and no JIT policy.
    let eligible = sim
        .get(ALICE, &format!("/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()"))
        .await;
    assert_eq!(eligible.body["value"], json!([]));

    // The role: alice may not create it, dave may.
    let denied = sim
        .arm(Some(ALICE), Method::PUT, &role_path(), Some(role_body()))
        .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.code(), "AuthorizationFailed");
    let created = sim
        .arm(Some(DAVE), Method::PUT, &role_path(), Some(role_body()))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);

    // Its policy at the resource group exists as soon as it is asked for, with defaults.
    let filter = format!("roleDefinitionId eq '/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE}'");
    let assignments = sim
        .get(DAVE, &format!("{RG}/providers/Microsoft.Authorization/roleManagementPolicyAssignments?api-version={PIM}&$filter={}", urlencoding(&filter)))
        .await;
    assert_eq!(assignments.status, 200, "{}", assignments.body);
    let items = assignments.body["value"].as_array().expect("list");
    assert_eq!(items.len(), 1, "{}", assignments.body);
    let policy_id = items[0]["properties"]["policyId"]
        .as_str()
        .expect("policy")
        .to_string();
    let patch = |rules: Value| json!({"properties": {"rules": rules}});
    let target = json!({"caller": "EndUser", "operations": ["All"], "level": "Assignment"});
    let approval = json!({"id": "Approval_EndUser_Assignment", "ruleType": "RoleManagementPolicyApprovalRule", "target": target,
        "setting": {"isApprovalRequired": true, "isApprovalRequiredForExtension": false, "isRequestorJustificationRequired": true,
            "approvalMode": "SingleStage", "approvalStages": [{"approvalStageTimeOutInDays": 1, "isApproverJustificationRequired": true,
            "escalationTimeInMinutes": 0, "isEscalationEnabled": false,
            "primaryApprovers": [{"id": sim.oid(BOB), "description": "Bob Brandt", "isBackup": false, "userType": "User"}]}]}});
    let expiry = json!({"id": "Expiration_EndUser_Assignment", "ruleType": "RoleManagementPolicyExpirationRule", "target": target,
        "isExpirationRequired": true, "maximumDuration": "PT4H"});
    let policy_url = format!("{policy_id}?api-version={PIM}");
    let denied = sim
        .arm(
            Some(ALICE),
            Method::PATCH,
            &policy_url,
            Some(patch(json!([approval]))),
        )
        .await;
    assert_eq!(denied.status, 403);
    let mut stranger = approval.clone();
    stranger["setting"]["approvalStages"][0]["primaryApprovers"][0]["id"] =
        json!("00000000-0000-4000-8000-00000000dead");
    let refused = sim
        .arm(
            Some(DAVE),
            Method::PATCH,
            &policy_url,
            Some(patch(json!([stranger]))),
        )
        .await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (400, "PrincipalNotFound"),
        "{}",
        refused.body
    );
    let mut endless = expiry.clone();
    endless["maximumDuration"] = json!("eight hours");
    let refused = sim
        .arm(
            Some(DAVE),
            Method::PATCH,
            &policy_url,
            Some(patch(json!([endless]))),
        )
        .await;
    assert_eq!(
        refused.code(),
        "InvalidRoleManagementPolicyRule",
        "{}",
        refused.body
    );
    let patched = sim
        .arm(
            Some(DAVE),
            Method::PATCH,
            &policy_url,
            Some(patch(json!([approval, expiry]))),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let rules = patched.body["properties"]["rules"]
        .as_array()
        .expect("rules");
    let max = rules
        .iter()
        .find(|r| r["id"] == "Expiration_EndUser_Assignment")
        .expect("expiry");
    assert_eq!(max["maximumDuration"], "PT4H");
    assert!(
        rules
            .iter()
            .any(|r| r["id"] == "Enablement_EndUser_Assignment"),
        "rules not sent are kept"
    );

    // The eligibility: alice may not grant it, an unknown principal is refused, dave may.
    let denied = sim
        .arm(
            Some(ALICE),
            Method::PUT,
            &eligibility_path(),
            Some(eligibility(sim.oid(ALICE))),
        )
        .await;
    assert_eq!(denied.status, 403);
    let unknown = sim
        .arm(
            Some(DAVE),
            Method::PUT,
            &eligibility_path(),
            Some(eligibility("00000000-0000-4000-8000-00000000dead")),
        )
        .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.code()),
        (400, "PrincipalNotFound")
    );
    let path = eligibility_path();
    let granted = sim
        .arm(
            Some(DAVE),
            Method::PUT,
            &path,
            Some(eligibility(sim.oid(ALICE))),
        )
        .await;
    assert_eq!(granted.status, 201, "{}", granted.body);
    assert_eq!(granted.body["properties"]["status"], "Provisioned");
    let again = sim
        .arm(
            Some(DAVE),
            Method::PUT,
            &eligibility_path(),
            Some(eligibility(sim.oid(ALICE))),
        )
        .await;
    assert_eq!(again.code(), "RoleAssignmentExists");
    let read = sim.get(DAVE, &path).await;
    assert_eq!(read.body["properties"]["principalId"], sim.oid(ALICE));
    let listed = sim
        .get(DAVE, &format!("{RG}/providers/Microsoft.Authorization/roleEligibilityScheduleRequests?api-version={PIM}&$filter=atScope()"))
        .await;
    assert_eq!(listed.body["value"].as_array().map(Vec::len), Some(1));

    // alice is now eligible, and her activation follows dave's policy.
    let eligible = sim
        .get(ALICE, &format!("/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()"))
        .await;
    assert_eq!(
        eligible.body["value"][0]["properties"]["expandedProperties"]["roleDefinition"]
            ["displayName"],
        "JIT Requester"
    );
    let schedule = eligible.body["value"][0]["properties"]["roleEligibilityScheduleId"]
        .as_str()
        .expect("schedule")
        .to_string();
    let activate = |duration: &str| {
        json!({"properties": {
        "principalId": sim.oid(ALICE),
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE}"),
        "requestType": "SelfActivate", "justification": "Patch night", "linkedRoleEligibilityScheduleId": schedule,
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": duration}}}})
    };
    let too_long = sim
        .arm(Some(ALICE), Method::PUT, &format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version={PIM}", uuid::Uuid::new_v4()), Some(activate("PT5H")))
        .await;
    assert_eq!(
        too_long.code(),
        "RoleAssignmentRequestPolicyValidationFailed"
    );
    let pending = sim
        .arm(Some(ALICE), Method::PUT, &format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version={PIM}", uuid::Uuid::new_v4()), Some(activate("PT2H")))
        .await;
    assert_eq!(
        pending.body["properties"]["status"], "PendingApproval",
        "{}",
        pending.body
    );
}

#[tokio::test]
async fn graph_finds_users_by_name_or_id_with_a_graph_token_only() {
    let sim = empty().await;
    let graph = sim
        .control("/token", json!({"upn": DAVE, "resource": "graph"}))
        .await;
    let token = graph["access_token"].as_str().expect("token");
    let get = |key: &str, token: &str| {
        let request = sim
            .http
            .get(sim.url(&format!("/v1.0/users/{key}")))
            .bearer_auth(token.to_string());
        async move {
            let r = request.send().await.expect("graph");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (status, alice) = get(ALICE, token).await;
    assert_eq!(status, 200);
    assert_eq!(alice["id"], sim.oid(ALICE));
    assert_eq!(alice["userPrincipalName"], ALICE);
    let (status, by_id) = get(sim.oid(BOB), token).await;
    assert_eq!(
        (status, by_id["userPrincipalName"].as_str()),
        (200, Some(BOB))
    );
    let (status, missing) = get("mallory@contoso.example", token).await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("Request_ResourceNotFound"))
    );
    let arm = sim.token(DAVE).await;
    let (status, _) = get(ALICE, &arm).await;
    assert_eq!(status, 401, "an ARM token is not a Graph token");
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
