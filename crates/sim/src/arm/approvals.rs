//! PIM approvals (`roleAssignmentApprovals`, api-version 2021-01-01-preview): what waits for
//! the caller's decision, and the decision itself on a stage.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{list, ok, page, ArmResult, Call};
use crate::clock::arm_time;
use crate::error::ArmError;
use crate::state::{Approval, ApprovalStage, World, PENDING};

fn stage_json(world: &World, approval: &Approval, stage: &ApprovalStage, me: &str) -> Value {
    let reviewer = stage
        .reviewed_by
        .as_ref()
        .and_then(|oid| world.user_by_oid(oid));
    json!({
        // The stage is addressed by the last segment of its id; its name is another GUID, as
        // in the official GetRoleAssignmentApprovals example.
        "id": format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{}/stages/{}", approval.guid, stage.guid),
        "name": stage.name,
        "type": "Microsoft.Authorization/roleAssignmentApprovals/stages",
        "properties": {
            "displayName": stage.display_name,
            "status": stage.status,
            "assignedToMe": stage.approvers.iter().any(|a| a.eq_ignore_ascii_case(me)),
            "reviewedBy": reviewer.map(|u| json!({
                "principalId": u.oid,
                "principalType": "user",
                "principalName": u.name,
                "userPrincipalName": u.upn,
            })),
            "reviewedDateTime": stage.reviewed_at.map(arm_time),
            "reviewResult": stage.review_result,
            "justification": stage.justification,
        }
    })
}

fn approval_json(world: &World, approval: &Approval, me: &str) -> Value {
    json!({
        "id": format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{}", approval.guid),
        "name": approval.guid,
        "type": "Microsoft.Authorization/roleAssignmentApprovals",
        "properties": {
            "stages": approval.stages.iter().map(|s| stage_json(world, approval, s, me)).collect::<Vec<_>>(),
        }
    })
}

/// Who may read an approval: its approvers, the request's principal and requestor, and an
/// admin who may read the request at its scope (for the audit).
fn involved(world: &World, approval: &Approval, call: &Call) -> bool {
    let me = call.caller.oid.as_str();
    let principals = &call.caller.principals;
    let now = call.sim.clock.now();
    approval
        .stages
        .iter()
        .any(|s| s.approvers.iter().any(|a| a.eq_ignore_ascii_case(me)))
        || world.requests.iter().any(|r| {
            r.name == approval.request
                && (r.requestor.eq_ignore_ascii_case(me)
                    || r.principal.eq_ignore_ascii_case(me)
                    || world.is_permitted_any(
                        principals,
                        "Microsoft.Authorization/roleAssignmentScheduleRequests/read",
                        &r.scope,
                        now,
                    ))
        })
}

fn not_found(id: &str) -> ArmError {
    ArmError::not_found(
        "RoleAssignmentApprovalNotFound",
        format!("The role assignment approval '{id}' was not found."),
    )
}

pub fn handle(
    call: &Call,
    approval_id: Option<&str>,
    rest: &[String],
    not_allowed: impl Fn() -> ArmError,
) -> ArmResult {
    let me = call.caller.oid.clone();
    match (approval_id, rest) {
        (None, []) if call.method == Method::GET => {
            let world = call.sim.world();
            let filter = call.filter().unwrap_or("asApprover()").to_ascii_lowercase();
            let items = world
                .approvals
                .iter()
                .filter(|a| match filter.as_str() {
                    "asapprover()" => a.stages.iter().any(|s| {
                        s.review_result == "NotReviewed"
                            && s.status == "InProgress"
                            && s.approvers.iter().any(|x| x.eq_ignore_ascii_case(&me))
                    }),
                    "ascreatedby()" | "astarget()" => world.requests.iter().any(|r| {
                        r.name == a.request
                            && (r.requestor.eq_ignore_ascii_case(&me)
                                || r.principal.eq_ignore_ascii_case(&me))
                    }),
                    _ => false,
                })
                .map(|a| approval_json(&world, a, &me))
                .collect::<Vec<_>>();
            if !matches!(
                filter.as_str(),
                "asapprover()" | "ascreatedby()" | "astarget()"
            ) {
                return Err(ArmError::bad_request(
                    "BadRequest",
                    "The filter is not supported. Use asApprover(), asCreatedBy() or asTarget().",
                ));
            }
            page(call, &world, "roleAssignmentApprovals", items)
        }
        (Some(id), []) if call.method == Method::GET => {
            let world = call.sim.world();
            let approval = world
                .approvals
                .iter()
                .find(|a| a.guid.eq_ignore_ascii_case(id))
                .ok_or_else(|| not_found(id))?;
            if !involved(&world, approval, call) {
                return Err(not_found(id));
            }
            Ok(ok(approval_json(&world, approval, &me)))
        }
        (Some(id), [stages])
            if stages.eq_ignore_ascii_case("stages") && call.method == Method::GET =>
        {
            let world = call.sim.world();
            let approval = world
                .approvals
                .iter()
                .find(|a| a.guid.eq_ignore_ascii_case(id))
                .ok_or_else(|| not_found(id))?;
            if !involved(&world, approval, call) {
                return Err(not_found(id));
            }
            Ok(list(
                approval
                    .stages
                    .iter()
                    .map(|s| stage_json(&world, approval, s, &me))
                    .collect(),
            ))
        }
        (Some(id), [stages, stage_id]) if stages.eq_ignore_ascii_case("stages") => {
            match call.method {
                Method::GET => {
                    let world = call.sim.world();
                    let approval = world
                        .approvals
                        .iter()
                        .find(|a| a.guid.eq_ignore_ascii_case(id))
                        .ok_or_else(|| not_found(id))?;
                    let stage = approval
                        .stages
                        .iter()
                        .find(|s| s.guid.eq_ignore_ascii_case(stage_id))
                        .ok_or_else(|| not_found(stage_id))?;
                    if !involved(&world, approval, call) {
                        return Err(not_found(id));
                    }
                    Ok(ok(stage_json(&world, approval, stage, &me)))
                }
                Method::PUT | Method::PATCH => decide(call, id, stage_id),
                _ => Err(not_allowed()),
            }
        }
        _ => Err(not_allowed()),
    }
}

/// Records an approver's decision on a stage and carries out the request when approved.
fn decide(call: &Call, approval_id: &str, stage_id: &str) -> ArmResult {
    // The spec's body is the stage's properties themselves (`RoleAssignmentApprovalStepProperties`);
    // the schema check has refused the wrapped form its examples show.
    let props = call.json()?;
    if props.get("reviewResult").is_none() {
        return Err(ArmError::invalid_content(
            "give reviewResult (Approve or Deny) and a justification",
        ));
    }
    let result = props
        .get("reviewResult")
        .and_then(Value::as_str)
        .unwrap_or("");
    let result = match result {
        r if r.eq_ignore_ascii_case("Approve") => "Approve",
        r if r.eq_ignore_ascii_case("Deny") => "Deny",
        other => {
            return Err(ArmError::invalid_content(format!(
                "reviewResult '{other}' must be Approve or Deny"
            )))
        }
    };
    let justification = props
        .get("justification")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if justification.len() > 1024 {
        return Err(ArmError::invalid_content(
            "justification is longer than 1024 characters",
        ));
    }
    let now = call.sim.clock.now();
    let me = call.caller.oid.clone();
    let mut world = call.sim.world();
    let Some(a_index) = world
        .approvals
        .iter()
        .position(|a| a.guid.eq_ignore_ascii_case(approval_id))
    else {
        return Err(not_found(approval_id));
    };
    let request_name = world.approvals[a_index].request.clone();
    let request = world
        .requests
        .iter()
        .find(|r| r.name == request_name)
        .cloned();
    let Some(s_index) = world.approvals[a_index]
        .stages
        .iter()
        .position(|s| s.guid.eq_ignore_ascii_case(stage_id))
    else {
        return Err(not_found(stage_id));
    };
    let stage = world.approvals[a_index].stages[s_index].clone();
    if !stage.approvers.iter().any(|a| a.eq_ignore_ascii_case(&me)) {
        return Err(ArmError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!("The client '{}' with object id '{me}' is not an approver of approval '{approval_id}'.", call.caller.upn),
        ));
    }
    if request.as_ref().is_some_and(|r| {
        r.requestor.eq_ignore_ascii_case(&me) || r.principal.eq_ignore_ascii_case(&me)
    }) {
        return Err(ArmError::new(
            StatusCode::FORBIDDEN,
            "SelfApprovalNotAllowed",
            "An approver cannot approve or deny their own request.",
        ));
    }
    if stage.review_result != "NotReviewed"
        || stage.status != "InProgress"
        || request.as_ref().is_none_or(|r| r.status != PENDING)
    {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "ApprovalStageAlreadyCompleted",
            format!(
                "This approval stage is no longer open: it is '{}' with result '{}'.",
                stage.status, stage.review_result
            ),
        ));
    }
    if stage.approver_justification_required && justification.trim().is_empty() {
        return Err(ArmError::bad_request(
            "JustificationRequired",
            "The role's policy requires the approver to give a justification.",
        ));
    }
    {
        let s = &mut world.approvals[a_index].stages[s_index];
        s.status = "Completed".into();
        s.review_result = result.into();
        s.reviewed_by = Some(me.clone());
        s.reviewed_at = Some(now);
        s.justification = justification.clone();
    }
    world.record(now, "pim.approval_decided", json!({"approval": approval_id, "request": request_name, "result": result, "approver": call.caller.upn}));
    if result == "Approve" {
        crate::arm::provision(&mut world, &request_name, now);
    } else if let Some(r) = world.requests.iter_mut().find(|r| r.name == request_name) {
        r.status = "Denied".into();
    }
    let approval = world.approvals[a_index].clone();
    let stage = approval.stages[s_index].clone();
    Ok(ok(stage_json(&world, &approval, &stage, &me)))
}
