//! PIM for Microsoft Entra roles through Microsoft Graph (`roleManagement/directory`): the
//! directory roles a person may activate (Global Reader, Security Reader, …), those in
//! force, their requests, each role's activation policy, and an approver's inbox and
//! decisions (Graph has those only in beta). Answers are read into the same types as Azure
//! roles' with `kind: EntraRole`: `role` is the role's name, `role_definition_id` its id, and
//! `scope` the directory scope, always the tenant (`/`).
//!
//! An Entra role opens no jump box: it is activated for itself, never as a way to JIT.

use chrono::{DateTime, Utc};
use jumpgate_core::events::Elevation;
use jumpgate_core::policy::ActivationPolicy;
use reqwest::Method;
use serde_json::{json, Value};

use crate::arm::{s, time, Active, Eligible, Pending, Request};
use crate::error::Result;
use crate::groups::{
    id, joined, patch_decision, policy_of, post, request_with, waiting, Membership,
};
use crate::http::{Arm, Repeat};

/// The delegated Microsoft Graph permissions PIM for Entra roles needs, least privileged for
/// each call: reading eligibilities; reading, requesting, cancelling and approving
/// activations; reading the roles' activation policies.
pub const PERMISSIONS: [&str; 3] = [
    "RoleEligibilitySchedule.Read.Directory",
    "RoleAssignmentSchedule.ReadWrite.Directory",
    "RoleManagementPolicy.Read.Directory",
];

const BASE: &str = "/v1.0/roleManagement/directory";
const APPROVALS: &str = "/beta/roleManagement/directory/roleAssignmentApprovals";

/// The tenant-wide directory scope, the only one Jumpgate activates at.
pub const TENANT: &str = "/";

/// The role's display name from an item with `$expand=roleDefinition`, or its id.
fn role_name(item: &Value) -> String {
    let name = s(item, "/roleDefinition/displayName");
    if name.trim().is_empty() {
        s(item, "/roleDefinitionId")
    } else {
        name
    }
}

/// The directory scope of an item, as a person reads it.
fn scope_name(scope: &str) -> String {
    if scope == TENANT || scope.is_empty() {
        "the directory".into()
    } else {
        scope.to_string()
    }
}

/// The Entra roles the user may activate.
pub async fn eligible(graph: &Arm) -> Result<Vec<Eligible>> {
    let items = graph
        .list(&format!(
            "{BASE}/roleEligibilityScheduleInstances/filterByCurrentUser(on='principal')?$expand=roleDefinition"
        ))
        .await?;
    Ok(items
        .iter()
        .map(|i| {
            let scope = s(i, "/directoryScopeId");
            Eligible {
                kind: Elevation::EntraRole,
                role: role_name(i),
                role_definition_id: s(i, "/roleDefinitionId"),
                scope_name: scope_name(&scope),
                scope,
                eligibility_schedule_id: s(i, "/roleEligibilityScheduleId"),
                eligible_until: time(i, "/endDateTime"),
            }
        })
        .collect())
}

/// The user's Entra roles in force (activated through PIM, or assigned for good).
pub async fn active(graph: &Arm) -> Result<Vec<Active>> {
    let items = graph
        .list(&format!(
            "{BASE}/roleAssignmentScheduleInstances/filterByCurrentUser(on='principal')?$expand=roleDefinition"
        ))
        .await?;
    Ok(items
        .iter()
        .map(|i| Active {
            kind: Elevation::EntraRole,
            role: role_name(i),
            role_definition_id: s(i, "/roleDefinitionId"),
            scope: s(i, "/directoryScopeId"),
            assignment_type: if s(i, "/assignmentType").eq_ignore_ascii_case("activated") {
                "Activated".into()
            } else {
                "Assigned".into()
            },
            start: time(i, "/startDateTime"),
            end: time(i, "/endDateTime"),
            principal_type: "User".into(),
            principal_id: s(i, "/principalId"),
            principal_name: String::new(),
        })
        .collect())
}

/// A Graph `unifiedRoleAssignmentScheduleRequest` as a [`Request`].
pub fn request_from_json(v: &Value) -> Request {
    request_with(
        v,
        Elevation::EntraRole,
        role_name(v),
        s(v, "/roleDefinitionId"),
        s(v, "/directoryScopeId"),
    )
}

/// The user's own requests for Entra roles.
pub async fn my_requests(graph: &Arm) -> Result<Vec<Request>> {
    let items = graph
        .list(&format!(
            "{BASE}/roleAssignmentScheduleRequests/filterByCurrentUser(on='principal')?$expand=roleDefinition"
        ))
        .await?;
    Ok(items.iter().map(request_from_json).collect())
}

pub async fn get_request(graph: &Arm, request: &str) -> Result<Request> {
    let request = id(request, "request")?;
    let v = graph
        .get(&format!(
            "{BASE}/roleAssignmentScheduleRequests/{request}?$expand=roleDefinition"
        ))
        .await?;
    Ok(request_from_json(&v))
}

/// Creates a request (`POST`) for the role `m.target`, tenant-wide; not idempotent, as a
/// group's is not (see [`crate::groups::post_request`]).
pub async fn post_request(graph: &Arm, m: &Membership<'_>, now: DateTime<Utc>) -> Result<Request> {
    let body = json!({
        "action": m.action,
        "principalId": m.principal,
        "roleDefinitionId": id(m.target, "role definition")?,
        "directoryScopeId": TENANT,
        "justification": m.justification,
    });
    let answer = post(
        graph,
        &format!("{BASE}/roleAssignmentScheduleRequests"),
        body,
        m,
        now,
    )
    .await?;
    Ok(request_from_json(&answer))
}

pub async fn cancel_request(graph: &Arm, request: &str) -> Result<()> {
    let request = id(request, "request")?;
    graph
        .call(
            Method::POST,
            &format!("{BASE}/roleAssignmentScheduleRequests/{request}/cancel"),
            None,
            Repeat::Safe,
        )
        .await
        .map(|_| ())
}

/// The activation policy of an Entra role, tenant-wide.
pub async fn activation_policy(graph: &Arm, role: &str) -> Result<ActivationPolicy> {
    let role = id(role, "role definition")?;
    let filter = format!(
        "scopeId eq '{TENANT}' and scopeType eq 'DirectoryRole' and roleDefinitionId eq '{role}'"
    );
    policy_of(graph, &filter, &role, &format!("the Entra role {role}")).await
}

/// The approvals with a step waiting for the user's review, as (approval, step): one read.
pub async fn inbox(graph: &Arm) -> Result<Vec<(String, String)>> {
    let approvals = graph
        .list(&format!(
            "{APPROVALS}/filterByCurrentUser(on='approver')?$expand=steps"
        ))
        .await?;
    Ok(waiting(&approvals, "steps"))
}

/// The requests for Entra roles waiting for the user's decision, with their approvals.
pub async fn approvals(graph: &Arm) -> Result<Vec<Pending>> {
    let inbox = inbox(graph).await?;
    if inbox.is_empty() {
        return Ok(Vec::new());
    }
    let requests: Vec<Request> = graph
        .list(&format!(
            "{BASE}/roleAssignmentScheduleRequests/filterByCurrentUser(on='approver')?$expand=roleDefinition"
        ))
        .await?
        .iter()
        .map(request_from_json)
        .collect();
    Ok(joined(inbox, &requests))
}

fn step_path(pending: &Pending) -> Result<String> {
    Ok(format!(
        "{APPROVALS}/{}/steps/{}",
        id(&pending.approval_id, "approval")?,
        id(&pending.stage_id, "step")?
    ))
}

/// Records a decision on the step assigned to the user (204).
pub async fn decide(
    graph: &Arm,
    pending: &Pending,
    approve: bool,
    justification: &str,
) -> Result<()> {
    patch_decision(graph, &step_path(pending)?, approve, justification).await
}

/// The step as Graph has it now.
pub async fn stage(graph: &Arm, pending: &Pending) -> Result<Value> {
    graph.get(&step_path(pending)?).await
}

/// The steps of a request's approval, for who decided it and why.
pub async fn stages(graph: &Arm, approval: &str) -> Result<Vec<Value>> {
    let approval = id(approval, "approval")?;
    graph.list(&format!("{APPROVALS}/{approval}/steps")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_request_reads_like_an_arm_one() {
        let v = json!({
            "id": "5b1a6d2e-0000-4000-8000-000000000001",
            "status": "PendingApproval",
            "action": "selfActivate",
            "principalId": "a11ce000-0000-4000-8000-000000000001",
            "roleDefinitionId": "5d6b6bb7-de71-4623-b4af-96380a352509",
            "directoryScopeId": "/",
            "approvalId": "5b1a6d2e-0000-4000-8000-000000000001",
            "justification": "audit",
            "ticketInfo": {"ticketNumber": "CHG-1", "ticketSystem": "ServiceNow"},
            "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "PT2H"}},
            "roleDefinition": {"displayName": "Security Reader"},
        });
        let r = request_from_json(&v);
        assert_eq!(r.kind, Elevation::EntraRole);
        assert_eq!(r.role, "Security Reader");
        assert_eq!(r.scope, "/");
        assert_eq!(r.request_type, "SelfActivate");
        assert_eq!(r.ticket.as_deref(), Some("ServiceNow:CHG-1"));
        assert_eq!(r.duration.as_deref(), Some("PT2H"));
        // Without the expansion, the id stands for the name.
        let bare =
            request_from_json(&json!({"roleDefinitionId": "5d6b6bb7-de71-4623-b4af-96380a352509"}));
        assert_eq!(bare.role, "5d6b6bb7-de71-4623-b4af-96380a352509");
    }
}
