//! PIM semantics: approval, denial, self-approval, policy rules, duplicates, propagation.

use reqwest::{Method, StatusCode};

use crate::support::*;

#[tokio::test]
async fn denial_records_the_approvers_reason() {
    let sim = demo().await;
    let request = sim.activate(ALICE, "PT2H", Some("Deploy hotfix")).await;
    let approval = request.body["properties"]["approvalId"]
        .as_str()
        .expect("approval")
        .to_string();
    let name = request.body["name"].as_str().expect("name").to_string();
    let denied = sim
        .decide(BOB, &approval, "Deny", "Not during the freeze")
        .await;
    assert_eq!(denied.status, StatusCode::OK, "{}", denied.body);
    let after = sim.get(ALICE, &format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}?api-version={PIM}")).await;
    assert_eq!(after.body["properties"]["status"], "Denied");
    let stage = sim
        .get(ALICE, &format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{}/stages?api-version=2021-01-01-preview", approval.rsplit('/').next().expect("id")))
        .await;
    assert_eq!(
        stage.body["value"][0]["properties"]["justification"],
        "Not during the freeze"
    );
    assert_eq!(stage.body["value"][0]["properties"]["reviewResult"], "Deny");
    // A decided stage cannot be decided again.
    let again = sim
        .decide(BOB, &approval, "Approve", "changed my mind")
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        sim.initiate(ALICE, "jumpbox-win-01", 3389, 30, Some("127.0.0.1"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn only_the_approver_decides_and_never_on_their_own_request() {
    let sim = demo().await;
    let request = sim.activate(ALICE, "PT1H", Some("Maintenance")).await;
    let approval = request.body["properties"]["approvalId"]
        .as_str()
        .expect("approval")
        .to_string();
    // alice is not an approver of her own request; carol is no approver at all.
    let by_alice = sim.decide(ALICE, &approval, "Approve", "me").await;
    assert_eq!(by_alice.status, StatusCode::FORBIDDEN);
    let by_carol = sim.decide(CAROL, &approval, "Approve", "me").await;
    assert!(by_carol.status == StatusCode::FORBIDDEN || by_carol.status == StatusCode::NOT_FOUND);
    // An approver's justification is required by the demo policy.
    let blank = sim.decide(BOB, &approval, "Approve", " ").await;
    assert_eq!(blank.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        sim.decide(BOB, &approval, "Approve", "ok").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_approver_who_requests_for_themselves_cannot_approve_it() {
    // bob is both eligible and the approver in this fixture.
    let fixture = jumpgate_sim::tenant::Fixture::parse(
        "self-approval",
        &jumpgate_sim::tenant::DEMO.replace(
            "[[role_policies]]",
            "[[eligibilities]]\nprincipal = \"bob@contoso.example\"\nrole = \"JIT Requester\"\nscope = \"/subscriptions/{sub}/resourceGroups/rg-jumpboxes\"\n\n[[role_policies]]",
        ),
    )
    .expect("fixture");
    let sim = start(jumpgate_sim::SimBuilder::from_fixture(fixture).control(true)).await;
    let request = sim.activate(BOB, "PT1H", Some("Own access")).await;
    assert_eq!(
        request.body["properties"]["status"], "PendingApproval",
        "{}",
        request.body
    );
    let approval = request.body["properties"]["approvalId"]
        .as_str()
        .expect("approval")
        .to_string();
    let own = sim.decide(BOB, &approval, "Approve", "self").await;
    assert_eq!(own.status, StatusCode::FORBIDDEN);
    assert_eq!(own.code(), "SelfApprovalNotAllowed");
}

#[tokio::test]
async fn policy_rules_are_enforced_and_named() {
    let sim = demo().await;
    let too_long = sim.activate(ALICE, "PT9H", Some("Long job")).await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        too_long.code(),
        "RoleAssignmentRequestPolicyValidationFailed"
    );
    assert!(
        too_long.message().contains("\"ExpirationRule\""),
        "{}",
        too_long.message()
    );
    let no_reason = sim.activate(ALICE, "PT1H", None).await;
    assert_eq!(
        no_reason.code(),
        "RoleAssignmentRequestPolicyValidationFailed"
    );
    assert!(no_reason.message().contains("\"JustificationRule\""));
    let both = sim.activate(ALICE, "P1D", Some("  ")).await;
    assert!(
        both.message().contains("ExpirationRule") && both.message().contains("JustificationRule"),
        "{}",
        both.message()
    );
    let bad_duration = sim.activate(ALICE, "eight hours", Some("x")).await;
    assert_eq!(bad_duration.code(), "InvalidRequestContent");
    // carol is not eligible at all.
    let carol = sim.activate(CAROL, "PT1H", Some("help")).await;
    assert!(
        carol.message().contains("EligibilityRule"),
        "{}",
        carol.body
    );
}

#[tokio::test]
async fn reliability_10_duplicates_are_refused_with_the_codes_clients_treat_as_success() {
    let sim = demo().await;
    let first = sim.activate(ALICE, "PT1H", Some("first")).await;
    let name = first.body["name"].as_str().expect("name").to_string();
    let pending_again = sim.activate(ALICE, "PT1H", Some("second")).await;
    assert_eq!(pending_again.code(), "RoleAssignmentRequestExists");
    // The same request GUID sent again (a retry after a lost answer).
    let body = serde_json::json!({"properties": {
        "principalId": sim.oid(ALICE),
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{JIT_REQUESTER}"),
        "requestType": "SelfActivate",
        "justification": "first",
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT1H"}}}});
    let retry = sim
        .arm(Some(ALICE), Method::PUT, &format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}?api-version={PIM}"), Some(body))
        .await;
    assert_eq!(retry.code(), "RoleAssignmentRequestExists");
    let approval = first.body["properties"]["approvalId"]
        .as_str()
        .expect("approval")
        .to_string();
    sim.decide(BOB, &approval, "Approve", "ok").await;
    let while_active = sim.activate(ALICE, "PT1H", Some("third")).await;
    assert_eq!(while_active.code(), "RoleAssignmentExists");
}

#[tokio::test]
async fn a_pending_request_can_be_cancelled_by_its_requestor() {
    let sim = demo().await;
    let request = sim.activate(ALICE, "PT1H", Some("oops")).await;
    let name = request.body["name"].as_str().expect("name").to_string();
    let path = format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}/cancel?api-version={PIM}");
    assert_eq!(
        sim.arm(Some(BOB), Method::POST, &path, None).await.status,
        StatusCode::FORBIDDEN
    );
    let cancelled = sim.arm(Some(ALICE), Method::POST, &path, None).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    let after = sim.get(ALICE, &format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}?api-version={PIM}")).await;
    assert_eq!(after.body["properties"]["status"], "Canceled");
    let inbox = sim.get(BOB, "/providers/Microsoft.Authorization/roleAssignmentApprovals?api-version=2021-01-01-preview&$filter=asApprover()").await;
    assert_eq!(
        inbox.body["value"].as_array().expect("list").len(),
        0,
        "nothing left to decide"
    );
    assert_eq!(
        sim.arm(Some(ALICE), Method::POST, &path, None).await.status,
        StatusCode::BAD_REQUEST,
        "only pending requests"
    );
    let mine = sim.get(ALICE, &format!("/providers/Microsoft.Authorization/roleAssignmentScheduleRequests?api-version={PIM}&$filter=asRequestor()")).await;
    assert_eq!(mine.body["value"].as_array().expect("list").len(), 1);
}

#[tokio::test]
async fn a_new_assignment_takes_effect_after_the_propagation_delay() {
    let sim = start(
        jumpgate_sim::SimBuilder::new("demo")
            .control(true)
            .propagation_delay(120),
    )
    .await;
    let request = sim.activate(ALICE, "PT1H", Some("delay")).await;
    let approval = request.body["properties"]["approvalId"]
        .as_str()
        .expect("approval")
        .to_string();
    sim.decide(BOB, &approval, "Approve", "ok").await;
    let early = sim
        .initiate(ALICE, "jumpbox-win-01", 3389, 30, Some("127.0.0.1"))
        .await;
    assert_eq!(early.status, StatusCode::FORBIDDEN, "not in effect yet");
    sim.advance(121).await;
    let later = sim
        .initiate(ALICE, "jumpbox-win-01", 3389, 30, Some("127.0.0.1"))
        .await;
    assert_eq!(later.status, StatusCode::ACCEPTED, "{}", later.body);
}

#[tokio::test]
async fn an_activation_ends_at_its_expiration_and_approvals_time_out() {
    let sim = demo().await;
    sim.activate_approved(ALICE, "PT1H", "short").await;
    assert_eq!(
        sim.initiate(ALICE, "jumpbox-linux-01", 22, 30, Some("127.0.0.1"))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    sim.advance(3601).await;
    let active = sim.get(ALICE, &format!("/providers/Microsoft.Authorization/roleAssignmentScheduleInstances?api-version={PIM}&$filter=asTarget()")).await;
    assert!(!active.body["value"]
        .as_array()
        .expect("list")
        .iter()
        .any(|i| i["properties"]["assignmentType"] == "Activated"));
    assert_eq!(
        sim.initiate(ALICE, "jumpbox-linux-01", 22, 30, Some("127.0.0.1"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    let waiting = sim.activate(ALICE, "PT1H", Some("nobody answers")).await;
    let name = waiting.body["name"].as_str().expect("name").to_string();
    sim.advance(86_401).await;
    let after = sim.get(ALICE, &format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}?api-version={PIM}")).await;
    assert_eq!(after.body["properties"]["status"], "TimedOut");
}

#[tokio::test]
async fn self_deactivate_ends_access_early() {
    let sim = demo().await;
    sim.activate_approved(ALICE, "PT1H", "brief").await;
    let body = serde_json::json!({"properties": {
        "principalId": sim.oid(ALICE),
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{JIT_REQUESTER}"),
        "requestType": "SelfDeactivate"}});
    let done = sim
        .arm(Some(ALICE), Method::PUT, &format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version={PIM}", uuid::Uuid::new_v4()), Some(body))
        .await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(done.body["properties"]["status"], "Revoked");
    assert_eq!(
        sim.initiate(ALICE, "jumpbox-win-01", 3389, 30, Some("127.0.0.1"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_decision_wrapped_in_properties_is_refused_as_the_spec_says() {
    let sim = demo().await;
    let request = sim.activate(ALICE, "PT1H", Some("Maintenance")).await;
    let approval = request.body["properties"]["approvalId"]
        .as_str()
        .and_then(|a| a.rsplit('/').next())
        .expect("approval")
        .to_string();
    let read = sim
        .get(BOB, &format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}?api-version=2021-01-01-preview"))
        .await;
    let stage = read.body["properties"]["stages"][0]["id"]
        .as_str()
        .and_then(|id| id.rsplit('/').next())
        .expect("stage")
        .to_string();
    let path = format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}/stages/{stage}?api-version=2021-01-01-preview");
    let wrapped = sim
        .arm(
            Some(BOB),
            Method::PATCH,
            &path,
            Some(serde_json::json!({"properties": {"reviewResult": "Approve", "justification": "ok"}})),
        )
        .await;
    assert_eq!(
        (wrapped.status, wrapped.code()),
        (StatusCode::BAD_REQUEST, "InvalidRequestContent"),
        "{}",
        wrapped.body
    );
    assert!(
        wrapped.message().contains(
            "Could not find member 'properties' on object of type 'RoleAssignmentApprovalStepProperties'."
        ),
        "{}",
        wrapped.message()
    );
    let invalid = sim.events_of("request.invalid").await;
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0]["operation"], "RoleAssignmentApprovalStep_Patch");
    // The stage is still open; the flat body decides it.
    let flat = sim
        .arm(
            Some(BOB),
            Method::PATCH,
            &path,
            Some(serde_json::json!({"reviewResult": "Approve", "justification": "ok"})),
        )
        .await;
    assert_eq!(flat.status, StatusCode::OK, "{}", flat.body);
    assert_eq!(flat.body["properties"]["reviewResult"], "Approve");
}
