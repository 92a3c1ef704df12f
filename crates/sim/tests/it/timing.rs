//! PIM's timing rules for Azure roles, as the `enterprise` tenant turns them on: no
//! deactivation in an activation's first five minutes, a deactivated assignment that lingers
//! for eight seconds, and a first JIT initiate refused once in the minute after an activation
//! takes effect. `demo` has none of them.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

fn legacy() -> String {
    format!("/subscriptions/{LEGACY_SUB}")
}

/// alice's request for Contributor on the Legacy subscription (no approval there).
async fn contributor(sim: &Sim, request_type: &str) -> Reply {
    sim.arm(
        Some(ALICE),
        Method::PUT,
        &format!(
            "{}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version={PIM}",
            legacy(),
            uuid::Uuid::new_v4()
        ),
        Some(json!({"properties": {
            "principalId": sim.oid(ALICE),
            "roleDefinitionId": format!("{}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}", legacy()),
            "requestType": request_type,
            "justification": "legacy patching",
            "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT1H"}}}})),
    )
    .await
}

async fn active_contributor(sim: &Sim) -> Vec<Value> {
    let token = sim.token(ALICE).await;
    sim.all_items(
        &token,
        &format!("/providers/Microsoft.Authorization/roleAssignmentScheduleInstances?api-version={PIM}&$filter=asTarget()"),
    )
    .await
    .into_iter()
    .filter(|i| i["properties"]["scope"] == legacy())
    .collect()
}

fn legacy_vm() -> String {
    format!("{}/resourceGroups/rg-legacy/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01?api-version=2024-03-01", legacy())
}

#[tokio::test]
async fn a_deactivation_waits_five_minutes_and_the_assignment_then_lingers() {
    let sim = enterprise().await;
    let activated = contributor(&sim, "SelfActivate").await;
    assert_eq!(
        activated.body["properties"]["status"], "Provisioned",
        "{}",
        activated.body
    );
    let too_soon = contributor(&sim, "SelfDeactivate").await;
    assert_eq!(
        (too_soon.status, too_soon.code()),
        (StatusCode::BAD_REQUEST, "ActiveDurationTooShort"),
        "{}",
        too_soon.body
    );
    assert_eq!(
        too_soon.message(),
        "The Active duration is too short. Miniumum Required is 5 minutes."
    );
    sim.advance(299).await;
    assert_eq!(
        contributor(&sim, "SelfDeactivate").await.code(),
        "ActiveDurationTooShort"
    );
    sim.advance(2).await;
    let ended = contributor(&sim, "SelfDeactivate").await;
    assert_eq!(ended.status, StatusCode::CREATED, "{}", ended.body);
    assert_eq!(ended.body["properties"]["status"], "Revoked");
    // For eight seconds the assignment is still listed, still grants, and refuses a new
    // activation of the same role at the same scope.
    assert_eq!(active_contributor(&sim).await.len(), 1);
    assert_eq!(
        sim.get(ALICE, &legacy_vm()).await.status,
        StatusCode::OK,
        "still granting"
    );
    let again = contributor(&sim, "SelfActivate").await;
    assert_eq!(
        (again.status, again.code(), again.message()),
        (
            StatusCode::BAD_REQUEST,
            "RoleAssignmentExists",
            "The Role assignment already exists."
        )
    );
    assert_eq!(sim.events_of("pim.assignment_lingering").await.len(), 1);
    sim.advance(9).await;
    assert!(active_contributor(&sim).await.is_empty());
    assert_eq!(
        sim.get(ALICE, &legacy_vm()).await.status,
        StatusCode::FORBIDDEN
    );
    let anew = contributor(&sim, "SelfActivate").await;
    assert_eq!(anew.status, StatusCode::CREATED, "{}", anew.body);
}

#[tokio::test]
async fn without_timing_rules_a_deactivation_is_immediate() {
    let sim = demo().await;
    sim.activate_approved(ALICE, "PT1H", "brief").await;
    let body = json!({"properties": {
        "principalId": sim.oid(ALICE),
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{JIT_REQUESTER}"),
        "requestType": "SelfDeactivate"}});
    let ended = sim
        .arm(Some(ALICE), Method::PUT, &format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version={PIM}", uuid::Uuid::new_v4()), Some(body))
        .await;
    assert_eq!(ended.status, StatusCode::CREATED, "{}", ended.body);
    let again = sim.activate(ALICE, "PT1H", Some("again")).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
}

#[tokio::test]
async fn the_first_initiate_after_an_activation_takes_effect_is_refused_once() {
    let sim = enterprise().await;
    let initiate = |upn: &'static str| {
        let sim = &sim;
        async move {
            let end = sim.now().await + chrono::Duration::minutes(30);
            let rg = format!("{}/resourceGroups/rg-legacy", legacy());
            sim.arm(
                Some(upn),
                Method::POST,
                &format!("{rg}/providers/Microsoft.Security/locations/northeurope/jitNetworkAccessPolicies/default/initiate?api-version={JIT}"),
                Some(json!({"virtualMachines": [{
                    "id": format!("{rg}/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01"),
                    "ports": [{"number": 3389, "endTimeUtc": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}]}]})),
            )
            .await
        }
    };
    // dave's standing Owner is long known to ARM: never refused.
    assert_eq!(initiate(DAVE).await.status, StatusCode::ACCEPTED);
    contributor(&sim, "SelfActivate").await;
    let early = initiate(ALICE).await;
    assert_eq!(
        early.status,
        StatusCode::FORBIDDEN,
        "not in effect yet: {}",
        early.body
    );
    assert!(
        sim.events_of("jit.initiate_refused_cache").await.is_empty(),
        "before it takes effect the refusal is RBAC's own"
    );
    sim.advance(10).await;
    let first = initiate(ALICE).await;
    assert_eq!(
        (first.status, first.code()),
        (StatusCode::FORBIDDEN, "AuthorizationFailed"),
        "{}",
        first.body
    );
    assert_eq!(
        first.message(),
        format!(
            "The client '{ALICE}' with object id '{}' does not have authorization to perform action 'Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action' over scope '{}/resourceGroups/rg-legacy/providers/Microsoft.Security/locations/northeurope/jitNetworkAccessPolicies/default' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            sim.oid(ALICE),
            legacy()
        )
    );
    let refused = sim.events_of("jit.initiate_refused_cache").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["requestor"], ALICE);
    let second = initiate(ALICE).await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.body);
    assert_eq!(initiate(ALICE).await.status, StatusCode::ACCEPTED);
    assert_eq!(
        sim.events_of("jit.initiate_refused_cache").await.len(),
        1,
        "once per activation"
    );
}

#[tokio::test]
async fn after_the_window_the_first_initiate_goes_through() {
    let sim = enterprise().await;
    contributor(&sim, "SelfActivate").await;
    sim.advance(10 + 60).await;
    let end = sim.now().await + chrono::Duration::minutes(30);
    let rg = format!("{}/resourceGroups/rg-legacy", legacy());
    let reply = sim
        .arm(
            Some(ALICE),
            Method::POST,
            &format!("{rg}/providers/Microsoft.Security/locations/northeurope/jitNetworkAccessPolicies/default/initiate?api-version={JIT}"),
            Some(json!({"virtualMachines": [{
                "id": format!("{rg}/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01"),
                "ports": [{"number": 3389, "endTimeUtc": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}]}]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert!(sim.events_of("jit.initiate_refused_cache").await.is_empty());
}
