//! Microsoft Graph's PIM for Entra roles in the `enterprise` tenant: alice may activate
//! Global Reader on her own word and Security Reader with bob's approval. Eligibilities,
//! requests (checked against the transcription before a handler runs), the directory's
//! policies, beta's approvals, and what the two PIM surfaces keep from each other.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

const V1: &str = "graph/roleManagementDirectory.json";
const BETA: &str = "graph/roleManagementDirectoryBeta.json";

fn activation(sim: &Sim, role: &str, action: &str) -> Value {
    json!({
        "action": action,
        "principalId": sim.oid(ALICE),
        "roleDefinitionId": role,
        "directoryScopeId": "/",
        "justification": "Quarterly access review",
        "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "PT2H"}},
        "ticketInfo": {"ticketNumber": "CHG-12", "ticketSystem": "ServiceNow"},
    })
}

async fn ask(sim: &Sim, token: &str, body: Value) -> Reply {
    sim.graph(
        Some(token),
        Method::POST,
        &format!("{ROLES_PATH}/roleAssignmentScheduleRequests"),
        Some(body),
    )
    .await
}

async fn get(sim: &Sim, token: &str, path: &str) -> Reply {
    let reply = sim.graph(Some(token), Method::GET, path, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    reply
}

#[tokio::test]
async fn alice_activates_global_reader_and_security_reader_with_bobs_approval() {
    let sim = enterprise().await;
    let alice = sim.graph_token(ALICE, PIM_ROLES).await;

    // Her two eligibilities, tenant-wide, with their definitions; no group among them.
    let eligible = get(
        &sim,
        &alice,
        &format!("{ROLES_PATH}/roleEligibilityScheduleInstances/filterByCurrentUser(on='principal')?$expand=roleDefinition"),
    )
    .await;
    assert_graph_shape_in(
        V1,
        "unifiedRoleEligibilityScheduleInstanceCollectionResponse",
        &eligible.body,
    );
    let mut names: Vec<&str> = eligible.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|e| {
            assert_eq!(e["directoryScopeId"], "/");
            e["roleDefinition"]["displayName"].as_str().unwrap_or("")
        })
        .collect();
    names.sort();
    assert_eq!(names, ["Global Reader", "Security Reader"]);

    // The directory's policy for Security Reader names bob.
    let policy = get(
        &sim,
        &alice,
        &format!("/v1.0/policies/roleManagementPolicyAssignments?$filter=scopeId eq '/' and scopeType eq 'DirectoryRole' and roleDefinitionId eq '{SECURITY_READER}'&$expand=policy($expand=rules)"),
    )
    .await;
    assert_graph_shape(
        "unifiedRoleManagementPolicyAssignmentCollectionResponse",
        &policy.body,
    );
    let rules = policy.body["value"][0]["policy"]["rules"]
        .as_array()
        .expect("rules");
    let approval = rules
        .iter()
        .find(|r| r["id"] == "Approval_EndUser_Assignment")
        .expect("approval rule");
    assert_eq!(approval["setting"]["isApprovalRequired"], true);
    assert_eq!(
        approval["setting"]["approvalStages"][0]["primaryApprovers"][0]["userId"],
        sim.oid(BOB)
    );

    // Global Reader: granted at once.
    let reader = ask(
        &sim,
        &alice,
        activation(&sim, GLOBAL_READER, "selfActivate"),
    )
    .await;
    assert_eq!(reader.status, StatusCode::CREATED, "{}", reader.body);
    assert_graph_shape_in(V1, "unifiedRoleAssignmentScheduleRequest", &reader.body);
    assert_eq!(reader.body["status"], "Provisioned");
    assert_eq!(reader.body["roleDefinitionId"], GLOBAL_READER);

    // Security Reader: refused without MFA (PIM's MfaRule), then, with it, waits for bob,
    // who finds it in beta's approvals (not in v1.0's).
    let without = ask(
        &sim,
        &alice,
        activation(&sim, SECURITY_READER, "selfActivate"),
    )
    .await;
    assert_eq!(
        without.code(),
        "RoleAssignmentRequestPolicyValidationFailed",
        "{}",
        without.body
    );
    assert!(
        without.body.to_string().contains("MfaRule"),
        "{}",
        without.body
    );
    let with_mfa = sim
        .control(
            "/token",
            json!({"upn": ALICE, "resource": "graph", "scope": PIM_ROLES, "mfa": true}),
        )
        .await["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let security = ask(
        &sim,
        &with_mfa,
        activation(&sim, SECURITY_READER, "selfActivate"),
    )
    .await;
    assert_eq!(security.status, StatusCode::CREATED, "{}", security.body);
    assert_eq!(security.body["status"], "PendingApproval");
    let id = security.body["approvalId"].as_str().expect("approvalId");
    let bob = sim.graph_token(BOB, PIM_ROLES).await;
    let inbox = get(
        &sim,
        &bob,
        "/beta/roleManagement/directory/roleAssignmentApprovals/filterByCurrentUser(on='approver')",
    )
    .await;
    assert_graph_shape_in(BETA, "approvalCollectionResponse", &inbox.body);
    assert_eq!(inbox.body["value"][0]["id"], id);
    let step = &inbox.body["value"][0]["steps"][0];
    assert_eq!(step["assignedToMe"], true);
    assert_eq!(step["reviewResult"], "NotReviewed");
    let v1 = sim
        .graph(
            Some(&bob),
            Method::GET,
            &format!("{ROLES_PATH}/roleAssignmentApprovals/filterByCurrentUser(on='approver')"),
            None,
        )
        .await;
    assert_eq!(v1.status, StatusCode::BAD_REQUEST, "{}", v1.body);
    // The PIM for Groups inbox does not show it either.
    let groups = get(
        &sim,
        &sim.graph_token(BOB, PIM_GROUPS).await,
        &format!("{PIM_GROUP_PATH}/assignmentApprovals/filterByCurrentUser(on='approver')"),
    )
    .await;
    assert_eq!(groups.body["value"], json!([]), "{}", groups.body);

    // A decision with a body the transcription does not declare is refused before it counts.
    let step_path =
        format!("/beta/roleManagement/directory/roleAssignmentApprovals/{id}/steps/{id}");
    let odd = sim
        .graph(
            Some(&bob),
            Method::PATCH,
            &step_path,
            Some(json!({"reviewResult": "Approve", "justification": "ok", "approved": true})),
        )
        .await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST, "{}", odd.body);
    let decided = sim
        .graph(
            Some(&bob),
            Method::PATCH,
            &step_path,
            Some(json!({"reviewResult": "Approve", "justification": "audit week"})),
        )
        .await;
    assert_eq!(decided.status, StatusCode::NO_CONTENT, "{}", decided.body);
    let step = get(&sim, &bob, &step_path).await;
    assert_graph_shape_in(BETA, "approvalStep", &step.body);
    assert_eq!(step.body["reviewResult"], "Approved");
    assert_eq!(step.body["reviewedBy"]["id"], sim.oid(BOB));

    // Both are now active for her, as role assignment schedule instances.
    let active = get(
        &sim,
        &alice,
        &format!("{ROLES_PATH}/roleAssignmentScheduleInstances/filterByCurrentUser(on='principal')?$expand=roleDefinition"),
    )
    .await;
    assert_graph_shape_in(
        V1,
        "unifiedRoleAssignmentScheduleInstanceCollectionResponse",
        &active.body,
    );
    let mut active_names: Vec<&str> = active.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|a| {
            assert_eq!(a["assignmentType"], "Activated");
            a["roleDefinition"]["displayName"].as_str().unwrap_or("")
        })
        .collect();
    active_names.sort();
    assert_eq!(active_names, ["Global Reader", "Security Reader"]);

    // Her requests list both; a second activation of an active role is refused.
    let mine = get(
        &sim,
        &alice,
        &format!("{ROLES_PATH}/roleAssignmentScheduleRequests/filterByCurrentUser(on='principal')"),
    )
    .await;
    assert_graph_shape_in(
        V1,
        "unifiedRoleAssignmentScheduleRequestCollectionResponse",
        &mine.body,
    );
    assert_eq!(mine.body["value"].as_array().map(Vec::len), Some(2));
    let again = ask(
        &sim,
        &alice,
        activation(&sim, GLOBAL_READER, "selfActivate"),
    )
    .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::BAD_REQUEST, "RoleAssignmentExists"),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn requests_for_roles_are_checked_as_pim_checks_them() {
    let sim = enterprise().await;
    let alice = sim.graph_token(ALICE, PIM_ROLES).await;
    // No justification: the policy's rule fails.
    let mut body = activation(&sim, GLOBAL_READER, "selfActivate");
    body.as_object_mut()
        .expect("object")
        .remove("justification");
    let refused = ask(&sim, &alice, body).await;
    assert_eq!(
        refused.code(),
        "RoleAssignmentRequestPolicyValidationFailed",
        "{}",
        refused.body
    );
    assert!(refused.body.to_string().contains("JustificationRule"));
    // A role she is not eligible for.
    let admin = ask(
        &sim,
        &alice,
        activation(&sim, "62e90394-69f5-4237-9190-012177145e10", "selfActivate"),
    )
    .await;
    assert!(
        admin.body.to_string().contains("EligibilityRule"),
        "{}",
        admin.body
    );
    // Another scope than the tenant, and a field the transcription does not declare.
    let mut scoped = activation(&sim, GLOBAL_READER, "selfActivate");
    scoped["directoryScopeId"] = json!("/administrativeUnits/x");
    assert_eq!(
        ask(&sim, &alice, scoped).await.status,
        StatusCode::BAD_REQUEST
    );
    let mut odd = activation(&sim, GLOBAL_READER, "selfActivate");
    odd["groupId"] = json!(OPERATORS);
    let odd = ask(&sim, &alice, odd).await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST, "{}", odd.body);
    assert_eq!(
        sim.events_of("request.invalid").await.len(),
        1,
        "the transcription refused the undeclared groupId"
    );
    // Without the directory permissions, Graph names the ones that would do.
    let groups_only = sim.graph_token(ALICE, PIM_GROUPS).await;
    let denied = sim
        .graph(
            Some(&groups_only),
            Method::GET,
            &format!(
                "{ROLES_PATH}/roleEligibilityScheduleInstances/filterByCurrentUser(on='principal')"
            ),
            None,
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    assert!(denied
        .body
        .to_string()
        .contains("RoleEligibilitySchedule.Read.Directory"));
}
