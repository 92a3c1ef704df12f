//! PIM for Azure resources (`Microsoft.Authorization`, api-version 2020-10-01): eligibility
//! and assignment schedule instances, schedule requests, and role management policies.

use axum::http::Method;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::{created, is_guid, ok, page, principal_info, role_info, scope_info, ArmResult, Call};
use crate::clock::arm_time;
use crate::duration;
use crate::error::ArmError;
use crate::state::{
    new_guid, Approval, ApprovalStage, AssignmentOrigin, Eligibility, RoleAssignment, RolePolicy,
    ScheduleRequest, World, PENDING,
};

/// A parsed `$filter` for PIM lists.
#[derive(Debug, PartialEq)]
pub(super) enum Filter {
    None,
    AsTarget,
    AsRequestor,
    AsApprover,
    AtScope,
    Principal(String),
    RoleDefinition(String),
}

pub(super) fn parse_filter(text: Option<&str>) -> Result<Filter, ArmError> {
    let Some(text) = text.map(str::trim) else {
        return Ok(Filter::None);
    };
    let lower = text.to_ascii_lowercase();
    let quoted = |t: &str| -> Option<String> {
        let start = t.find('\'')?;
        let end = t.rfind('\'')?;
        (end > start).then(|| t[start + 1..end].to_string())
    };
    match lower.as_str() {
        "astarget()" => return Ok(Filter::AsTarget),
        "asrequestor()" => return Ok(Filter::AsRequestor),
        "asapprover()" => return Ok(Filter::AsApprover),
        "atscope()" => return Ok(Filter::AtScope),
        _ => {}
    }
    if lower.starts_with("assignedto(") || lower.starts_with("principalid eq") {
        if let Some(id) = quoted(text) {
            return Ok(Filter::Principal(id.to_ascii_lowercase()));
        }
    }
    if lower.starts_with("roledefinitionid eq") {
        if let Some(id) = quoted(text) {
            return Ok(Filter::RoleDefinition(id));
        }
    }
    Err(ArmError::bad_request(
        "BadRequest",
        format!("The filter '{text}' is not supported. Supported filters are asTarget(), asRequestor(), asApprover(), atScope(), assignedTo('id') and principalId eq 'id'."),
    ))
}

/// The role definition id an item names when read at `view`: the form of the item's own
/// scope, or, with the tenant's `root_lists_tenant_role_ids`, the form of the scope it is read
/// at (the tenant form at `/`).
pub(super) fn listed_role_id(world: &World, view: &str, item_scope: &str, role: &str) -> String {
    if world.tenant.root_lists_tenant_role_ids {
        world.role_definition_id(view, role)
    } else {
        world.role_definition_id(item_scope, role)
    }
}

/// `expandedProperties.roleDefinition`, naming the role as [`listed_role_id`] does.
fn listed_role_info(world: &World, view: &str, item_scope: &str, role: &str) -> Value {
    let mut info = role_info(world, item_scope, role);
    info["id"] = json!(listed_role_id(world, view, item_scope, role));
    info
}

/// Lists that show only the caller's own items need no permission; others need `read`.
pub(super) fn check_list(
    call: &Call,
    world: &World,
    filter: &Filter,
    resource: &str,
    scope: &str,
) -> Result<(), ArmError> {
    match filter {
        Filter::AsTarget | Filter::AsRequestor | Filter::AsApprover => Ok(()),
        Filter::Principal(id) if *id == call.caller.oid => Ok(()),
        _ => call.require(
            world,
            &format!("Microsoft.Authorization/{resource}/read"),
            scope,
        ),
    }
}

fn principal_matches(filter: &Filter, call: &Call, principal: &str) -> bool {
    match filter {
        Filter::AsTarget => call.caller.is(principal),
        Filter::Principal(id) => principal.eq_ignore_ascii_case(id),
        _ => true,
    }
}

/// An eligibility schedule instance, as read at `view`.
pub fn eligibility_json(world: &World, e: &Eligibility, view: &str) -> Value {
    let schedule_id = format!(
        "{}/providers/Microsoft.Authorization/RoleEligibilitySchedules/{}",
        e.scope.trim_end_matches('/'),
        e.schedule_id
    );
    json!({
        "id": format!("{}/providers/Microsoft.Authorization/RoleEligibilityScheduleInstances/{}", e.scope.trim_end_matches('/'), e.instance_id),
        "name": e.instance_id,
        "type": "Microsoft.Authorization/RoleEligibilityScheduleInstances",
        "properties": {
            "scope": e.scope,
            "roleDefinitionId": listed_role_id(world, view, &e.scope, &e.role),
            "principalId": e.principal,
            "principalType": "User",
            "status": "Provisioned",
            "roleEligibilityScheduleId": schedule_id,
            "startDateTime": arm_time(e.start),
            "endDateTime": e.end.map(arm_time),
            "memberType": "Direct",
            "createdOn": arm_time(e.created_on),
            "condition": null,
            "conditionVersion": null,
            "expandedProperties": {
                "scope": scope_info(world, &e.scope),
                "roleDefinition": listed_role_info(world, view, &e.scope, &e.role),
                "principal": principal_info(world, &e.principal),
            }
        }
    })
}

pub fn eligibility_instances(
    call: &Call,
    scope: &str,
    name: Option<&str>,
    not_allowed: impl Fn() -> ArmError,
) -> ArmResult {
    if call.method != Method::GET {
        return Err(not_allowed());
    }
    let now = call.sim.clock.now();
    let world = call.sim.world();
    let live = |e: &&Eligibility| e.end.is_none_or(|end| now < end);
    if let Some(name) = name {
        let e = world
            .eligibilities
            .iter()
            .filter(live)
            .find(|e| e.instance_id.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                ArmError::not_found(
                    "RoleEligibilityScheduleInstanceNotFound",
                    format!("The role eligibility schedule instance '{name}' was not found."),
                )
            })?;
        if !e.principal.eq_ignore_ascii_case(&call.caller.oid) {
            call.require(
                &world,
                "Microsoft.Authorization/roleEligibilityScheduleInstances/read",
                scope,
            )?;
        }
        return Ok(ok(eligibility_json(&world, e, scope)));
    }
    let filter = parse_filter(call.filter())?;
    check_list(
        call,
        &world,
        &filter,
        "roleEligibilityScheduleInstances",
        scope,
    )?;
    let items = world
        .eligibilities
        .iter()
        .filter(live)
        .filter(|e| {
            world.in_scope(scope, &e.scope) && principal_matches(&filter, call, &e.principal)
        })
        .map(|e| eligibility_json(&world, e, scope))
        .collect();
    page(call, &world, "roleEligibilityScheduleInstances", items)
}

/// Whether the caller holds `ra` through one of the groups its token names: ARM lists such an
/// assignment for the caller with `memberType: Group`.
fn held_through_group(call: &Call, ra: &RoleAssignment) -> bool {
    ra.principal_type == "Group"
        && !ra.principal.eq_ignore_ascii_case(&call.caller.oid)
        && call.caller.is(&ra.principal)
}

/// An assignment schedule instance, as read at `view`. `inherited` marks one the caller holds
/// through a group (`memberType: Group`).
pub fn assignment_instance_json(
    world: &World,
    ra: &RoleAssignment,
    view: &str,
    inherited: bool,
) -> Value {
    let scope = ra.scope.trim_end_matches('/');
    let (instance, schedule, linked, assignment_type, end) = match &ra.origin {
        AssignmentOrigin::Standing => (ra.guid.clone(), ra.guid.clone(), None, "Assigned", None),
        AssignmentOrigin::Activated {
            schedule_id,
            instance_id,
            linked_eligibility,
            end,
            ..
        } => (
            instance_id.clone(),
            schedule_id.clone(),
            linked_eligibility.clone(),
            "Activated",
            Some(*end),
        ),
    };
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/RoleAssignmentScheduleInstances/{instance}"),
        "name": instance,
        "type": "Microsoft.Authorization/RoleAssignmentScheduleInstances",
        "properties": {
            "scope": ra.scope,
            "roleDefinitionId": listed_role_id(world, view, &ra.scope, &ra.role),
            "principalId": ra.principal,
            "principalType": ra.principal_type,
            "roleAssignmentScheduleId": format!("{scope}/providers/Microsoft.Authorization/RoleAssignmentSchedules/{schedule}"),
            "originRoleAssignmentId": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}", ra.guid),
            "status": "Provisioned",
            "startDateTime": arm_time(ra.created_on),
            "endDateTime": end.map(arm_time),
            "linkedRoleEligibilityScheduleId": linked,
            "linkedRoleEligibilityScheduleInstanceId": null,
            "assignmentType": assignment_type,
            "memberType": if inherited { "Group" } else { "Direct" },
            "createdOn": arm_time(ra.created_on),
            "condition": null,
            "conditionVersion": null,
            "expandedProperties": {
                "scope": scope_info(world, &ra.scope),
                "roleDefinition": listed_role_info(world, view, &ra.scope, &ra.role),
                "principal": principal_info(world, &ra.principal),
            }
        }
    })
}

pub fn assignment_instances(
    call: &Call,
    scope: &str,
    name: Option<&str>,
    not_allowed: impl Fn() -> ArmError,
) -> ArmResult {
    if call.method != Method::GET {
        return Err(not_allowed());
    }
    let world = call.sim.world();
    let instance_name = |ra: &RoleAssignment| match &ra.origin {
        AssignmentOrigin::Standing => ra.guid.clone(),
        AssignmentOrigin::Activated { instance_id, .. } => instance_id.clone(),
    };
    if let Some(name) = name {
        let ra = world
            .role_assignments
            .iter()
            .find(|ra| instance_name(ra).eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                ArmError::not_found(
                    "RoleAssignmentScheduleInstanceNotFound",
                    format!("The role assignment schedule instance '{name}' was not found."),
                )
            })?;
        if !call.caller.is(&ra.principal) {
            call.require(
                &world,
                "Microsoft.Authorization/roleAssignmentScheduleInstances/read",
                scope,
            )?;
        }
        let inherited = held_through_group(call, ra);
        return Ok(ok(assignment_instance_json(&world, ra, scope, inherited)));
    }
    let filter = parse_filter(call.filter())?;
    check_list(
        call,
        &world,
        &filter,
        "roleAssignmentScheduleInstances",
        scope,
    )?;
    let items = world
        .role_assignments
        .iter()
        .filter(|ra| {
            world.in_scope(scope, &ra.scope) && principal_matches(&filter, call, &ra.principal)
        })
        .map(|ra| {
            let inherited = filter == Filter::AsTarget && held_through_group(call, ra);
            assignment_instance_json(&world, ra, scope, inherited)
        })
        .collect();
    page(call, &world, "roleAssignmentScheduleInstances", items)
}

/// A role assignment schedule request, as read at `view`.
pub fn request_json(world: &World, r: &ScheduleRequest, view: &str) -> Value {
    let scope = r.scope.trim_end_matches('/');
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/RoleAssignmentScheduleRequests/{}", r.name),
        "name": r.name,
        "type": "Microsoft.Authorization/RoleAssignmentScheduleRequests",
        "properties": {
            "scope": r.scope,
            "roleDefinitionId": listed_role_id(world, view, &r.scope, &r.role),
            "principalId": r.principal,
            "principalType": "User",
            "requestType": r.request_type,
            "status": r.status,
            "approvalId": r.approval_id.as_ref().map(|a| format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{a}")),
            "targetRoleAssignmentScheduleId": r.target_schedule_id,
            "targetRoleAssignmentScheduleInstanceId": r.target_instance_id,
            "linkedRoleEligibilityScheduleId": r.linked_eligibility,
            "scheduleInfo": r.schedule_info,
            "ticketInfo": {"ticketNumber": r.ticket_number, "ticketSystem": r.ticket_system},
            "justification": r.justification,
            "requestorId": r.requestor,
            "createdOn": arm_time(r.created_on),
            "condition": r.condition,
            "conditionVersion": r.condition_version,
            "expandedProperties": {
                "scope": scope_info(world, &r.scope),
                "roleDefinition": listed_role_info(world, view, &r.scope, &r.role),
                "principal": principal_info(world, &r.principal),
            }
        }
    })
}

/// Whether `oid` is an approver of a still-open stage of this request.
pub fn is_pending_approver(world: &World, r: &ScheduleRequest, oid: &str) -> bool {
    r.status == PENDING
        && world.approvals.iter().any(|a| {
            Some(&a.guid) == r.approval_id.as_ref()
                && a.stages.iter().any(|s| {
                    s.review_result == "NotReviewed"
                        && s.approvers.iter().any(|x| x.eq_ignore_ascii_case(oid))
                })
        })
}

pub fn schedule_requests(
    call: &Call,
    scope: &str,
    name: Option<&str>,
    rest: &[String],
    not_allowed: impl Fn() -> ArmError,
) -> ArmResult {
    match (name, rest, &call.method) {
        (None, [], &Method::GET) => list_requests(call, scope),
        (Some(name), [], &Method::GET) => get_request(call, scope, name),
        (Some(name), [], &Method::PUT) => put_request(call, scope, name),
        (Some(name), [action], &Method::POST) if action.eq_ignore_ascii_case("cancel") => {
            cancel_request(call, name)
        }
        (Some(name), [action], &Method::POST) if action.eq_ignore_ascii_case("validate") => {
            validate_request(call, scope, name)
        }
        _ => Err(not_allowed()),
    }
}

fn list_requests(call: &Call, scope: &str) -> ArmResult {
    let world = call.sim.world();
    let filter = parse_filter(call.filter())?;
    check_list(
        call,
        &world,
        &filter,
        "roleAssignmentScheduleRequests",
        scope,
    )?;
    let me = &call.caller.oid;
    let items = world
        .requests
        .iter()
        .filter(|r| world.in_scope(scope, &r.scope))
        .filter(|r| match &filter {
            Filter::AsTarget => r.principal.eq_ignore_ascii_case(me),
            Filter::AsRequestor => r.requestor.eq_ignore_ascii_case(me),
            Filter::AsApprover => is_pending_approver(&world, r, me),
            Filter::Principal(id) => r.principal.eq_ignore_ascii_case(id),
            _ => true,
        })
        .map(|r| request_json(&world, r, scope))
        .collect();
    page(call, &world, "roleAssignmentScheduleRequests", items)
}

fn get_request(call: &Call, scope: &str, name: &str) -> ArmResult {
    let world = call.sim.world();
    let r = world
        .requests
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| request_not_found(name))?;
    let me = &call.caller.oid;
    let own = r.principal.eq_ignore_ascii_case(me) || r.requestor.eq_ignore_ascii_case(me);
    let approver = world.approvals.iter().any(|a| {
        Some(&a.guid) == r.approval_id.as_ref()
            && a.stages
                .iter()
                .any(|s| s.approvers.iter().any(|x| x.eq_ignore_ascii_case(me)))
    });
    if !own && !approver {
        call.require(
            &world,
            "Microsoft.Authorization/roleAssignmentScheduleRequests/read",
            scope,
        )?;
    }
    Ok(ok(request_json(&world, r, scope)))
}

fn request_not_found(name: &str) -> ArmError {
    ArmError::not_found(
        "RoleAssignmentScheduleRequestNotFound",
        format!("The role assignment schedule request '{name}' was not found."),
    )
}

fn cancel_request(call: &Call, name: &str) -> ArmResult {
    let now = call.sim.clock.now();
    let mut world = call.sim.world();
    let me = call.caller.oid.clone();
    let r = world
        .requests
        .iter_mut()
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| request_not_found(name))?;
    if !r.requestor.eq_ignore_ascii_case(&me) {
        return Err(ArmError::authorization_failed(
            &call.caller.upn,
            &me,
            "Microsoft.Authorization/roleAssignmentScheduleRequests/cancel/action",
            &r.scope,
        ));
    }
    if r.status != PENDING {
        return Err(ArmError::bad_request(
            "RoleAssignmentScheduleRequestNotCancellable",
            format!(
                "Only a pending request can be cancelled; this one is '{}'.",
                r.status
            ),
        ));
    }
    r.status = "Canceled".into();
    let approval = r.approval_id.clone();
    for a in world
        .approvals
        .iter_mut()
        .filter(|a| Some(&a.guid) == approval.as_ref())
    {
        for s in &mut a.stages {
            s.status = "Completed".into();
        }
    }
    world.record(now, "pim.request_canceled", json!({"request": name}));
    // The spec declares 200 with no body.
    Ok(axum::response::IntoResponse::into_response(
        axum::http::StatusCode::OK,
    ))
}

/// A schedule request body, checked.
pub(super) struct RequestBody {
    pub(super) role: String,
    pub(super) principal: String,
    pub(super) request_type: String,
    pub(super) schedule_info: Value,
    pub(super) start: DateTime<Utc>,
    pub(super) duration: Option<Duration>,
    pub(super) end: Option<DateTime<Utc>>,
    pub(super) justification: Option<String>,
    pub(super) ticket_number: Option<String>,
    pub(super) ticket_system: Option<String>,
    pub(super) condition: Option<String>,
    pub(super) condition_version: Option<String>,
    pub(super) linked_eligibility: Option<String>,
    pub(super) target_schedule: Option<String>,
}

const REQUEST_TYPES: [&str; 9] = [
    "AdminAssign",
    "AdminRemove",
    "AdminUpdate",
    "AdminExtend",
    "AdminRenew",
    "SelfActivate",
    "SelfDeactivate",
    "SelfExtend",
    "SelfRenew",
];
const MAX_TEXT: usize = 1024;

pub(super) fn parse_request_body(call: &Call, world: &World) -> Result<RequestBody, ArmError> {
    let body = call.json()?;
    let p = body
        .get("properties")
        .filter(|p| p.is_object())
        .ok_or_else(|| ArmError::invalid_content("'properties' is required"))?;
    let text = |key: &str| p.get(key).and_then(Value::as_str).map(str::to_string);
    let required = |key: &str| {
        text(key)
            .ok_or_else(|| ArmError::invalid_content(format!("'properties.{key}' is required")))
    };
    let role_id = required("roleDefinitionId")?;
    let principal = required("principalId")?.to_ascii_lowercase();
    let request_type = required("requestType")?;
    let request_type = REQUEST_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(&request_type))
        .ok_or_else(|| {
            ArmError::invalid_content(format!(
                "requestType '{request_type}' is not one of {}",
                REQUEST_TYPES.join(", ")
            ))
        })?
        .to_string();
    let role = world.role_guid(&role_id).ok_or_else(|| {
        ArmError::bad_request(
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{role_id}' does not exist."),
        )
    })?;
    if world.user_by_oid(&principal).is_none() {
        return Err(ArmError::bad_request(
            "PrincipalNotFound",
            format!(
                "Principal {principal} does not exist in the directory {}.",
                world.tenant.id
            ),
        ));
    }
    let now = call.sim.clock.now();
    let schedule_info = p.get("scheduleInfo").cloned().unwrap_or(Value::Null);
    let start = match schedule_info.get("startDateTime").and_then(Value::as_str) {
        Some(s) => crate::state::parse_time(s).ok_or_else(|| {
            ArmError::invalid_content(format!("startDateTime '{s}' is not an ISO 8601 time"))
        })?,
        None => now,
    };
    let expiration = schedule_info
        .get("expiration")
        .cloned()
        .unwrap_or(Value::Null);
    let kind = expiration
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("AfterDuration");
    let (duration, end) = match kind {
        "AfterDuration" => match expiration.get("duration").and_then(Value::as_str) {
            Some(d) => {
                let d = duration::parse(d).ok_or_else(|| {
                    ArmError::invalid_content(format!(
                        "expiration duration '{d}' is not an ISO 8601 duration such as PT8H"
                    ))
                })?;
                (Some(d), Some(start + d))
            }
            None => (None, None),
        },
        "AfterDateTime" => {
            let end_text = expiration
                .get("endDateTime")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ArmError::invalid_content("expiration type AfterDateTime needs endDateTime")
                })?;
            let end = crate::state::parse_time(end_text).ok_or_else(|| {
                ArmError::invalid_content(format!(
                    "endDateTime '{end_text}' is not an ISO 8601 time"
                ))
            })?;
            (Some(end - start), Some(end))
        }
        "NoExpiration" => (None, None),
        other => {
            return Err(ArmError::invalid_content(format!(
                "expiration type '{other}' is not AfterDuration, AfterDateTime or NoExpiration"
            )))
        }
    };
    let ticket = p.get("ticketInfo").cloned().unwrap_or(Value::Null);
    let justification = text("justification");
    if justification.as_ref().is_some_and(|j| j.len() > MAX_TEXT) {
        return Err(ArmError::invalid_content(format!(
            "justification is longer than {MAX_TEXT} characters"
        )));
    }
    Ok(RequestBody {
        role,
        principal,
        request_type,
        schedule_info: if schedule_info.is_null() {
            json!({"startDateTime": arm_time(start), "expiration": {"type": kind, "endDateTime": null, "duration": duration.map(duration::format)}})
        } else {
            schedule_info
        },
        start,
        duration,
        end,
        justification,
        ticket_number: ticket
            .get("ticketNumber")
            .and_then(Value::as_str)
            .map(str::to_string),
        ticket_system: ticket
            .get("ticketSystem")
            .and_then(Value::as_str)
            .map(str::to_string),
        condition: text("condition"),
        condition_version: text("conditionVersion"),
        linked_eligibility: text("linkedRoleEligibilityScheduleId"),
        target_schedule: text("targetRoleAssignmentScheduleId"),
    })
}

/// The policy rules an end-user activation fails, by the names PIM reports.
fn failed_rules(world: &World, call: &Call, scope: &str, body: &RequestBody) -> Vec<&'static str> {
    let Some(policy) = world.policy_for(&body.role, scope) else {
        return Vec::new();
    };
    let rules = policy.activation_rules();
    let mut failed = Vec::new();
    match (body.duration, rules.max_duration) {
        (Some(d), Some(max)) if d > max => failed.push("ExpirationRule"),
        (Some(d), _) if d <= Duration::zero() => failed.push("ExpirationRule"),
        (None, _)
            if rules.expiration_required
                && body.schedule_info["expiration"]["type"] == "NoExpiration" =>
        {
            failed.push("ExpirationRule")
        }
        _ => {}
    }
    if rules.justification_required
        && body
            .justification
            .as_deref()
            .is_none_or(|j| j.trim().is_empty())
    {
        failed.push("JustificationRule");
    }
    if rules.ticket_required
        && body
            .ticket_number
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        failed.push("TicketingRule");
    }
    if rules.mfa_required && !call.caller.mfa {
        failed.push("MfaRule");
    }
    failed
}

/// Percent-encodes as JavaScript's `encodeURIComponent` does, which is how PIM writes the
/// claims challenge into its error message.
fn uri_component(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An activation whose policy asks for a Conditional Access authentication context, by a
/// token whose `acrs` claim lacks it, fails with the claims challenge to sign in again with.
fn check_authentication_context(
    world: &World,
    call: &Call,
    scope: &str,
    role: &str,
) -> Result<(), ArmError> {
    let Some(policy) = world.policy_for(role, scope) else {
        return Ok(());
    };
    let Some(context) = policy.activation_rules().authentication_context else {
        return Ok(());
    };
    if call.caller.acrs.iter().any(|a| a == &context) {
        return Ok(());
    }
    let challenge = format!(
        "{{\"access_token\":{{\"acrs\":{{\"essential\":true, \"value\":\"{context}\"}}}}}}"
    );
    Err(ArmError::bad_request(
        "RoleAssignmentRequestAcrsValidationFailed",
        format!("&claims={}", uri_component(&challenge)),
    ))
}

fn policy_failure(failed: &[&str]) -> ArmError {
    let list = failed
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(",");
    ArmError::bad_request(
        "RoleAssignmentRequestPolicyValidationFailed",
        format!("The following policy rules failed: [{list}]"),
    )
}

fn validate_request(call: &Call, scope: &str, name: &str) -> ArmResult {
    let world = call.sim.world();
    let body = parse_request_body(call, &world)?;
    check_authentication_context(&world, call, scope, &body.role)?;
    let failed = failed_rules(&world, call, scope, &body);
    if !failed.is_empty() {
        return Err(policy_failure(&failed));
    }
    let approval = world
        .policy_for(&body.role, scope)
        .is_some_and(|p| p.activation_rules().approval_required);
    let r = new_request(
        call,
        scope,
        name,
        body,
        if approval {
            "PendingEvaluation"
        } else {
            "Accepted"
        },
    );
    Ok(ok(request_json(&world, &r, scope)))
}

fn new_request(
    call: &Call,
    scope: &str,
    name: &str,
    body: RequestBody,
    status: &str,
) -> ScheduleRequest {
    ScheduleRequest {
        name: name.to_ascii_lowercase(),
        scope: scope.to_string(),
        role: body.role,
        principal: body.principal,
        requestor: call.caller.oid.clone(),
        request_type: body.request_type,
        status: status.into(),
        approval_id: None,
        schedule_info: body.schedule_info,
        start: body.start,
        duration: body.duration,
        end: body.end,
        justification: body.justification,
        ticket_number: body.ticket_number,
        ticket_system: body.ticket_system,
        created_on: call.sim.clock.now(),
        condition: body.condition,
        condition_version: body.condition_version,
        linked_eligibility: body.linked_eligibility,
        target_schedule_id: body.target_schedule,
        target_instance_id: None,
    }
}

fn put_request(call: &Call, scope: &str, name: &str) -> ArmResult {
    if !is_guid(name) {
        return Err(ArmError::bad_request(
            "InvalidRoleAssignmentScheduleRequestName",
            format!("The role assignment schedule request name '{name}' is not valid: it must be a GUID."),
        ));
    }
    let now = call.sim.clock.now();
    let mut world = call.sim.world();
    if world
        .requests
        .iter()
        .any(|r| r.name.eq_ignore_ascii_case(name))
    {
        return Err(ArmError::bad_request(
            "RoleAssignmentRequestExists",
            format!("The role assignment request with ID '{name}' already exists."),
        ));
    }
    let body = parse_request_body(call, &world)?;
    let me = call.caller.oid.clone();
    if body.request_type.starts_with("Self") && !body.principal.eq_ignore_ascii_case(&me) {
        return Err(ArmError::authorization_failed(
            &call.caller.upn,
            &me,
            "Microsoft.Authorization/roleAssignmentScheduleRequests/write",
            scope,
        ));
    }
    if body.request_type.starts_with("Admin") {
        call.require(
            &world,
            "Microsoft.Authorization/roleAssignments/write",
            scope,
        )?;
    }
    let existing = world.role_assignments.iter().position(|ra| {
        ra.principal.eq_ignore_ascii_case(&body.principal)
            && ra.role.eq_ignore_ascii_case(&body.role)
            && crate::rbac::normalize_scope(&ra.scope).eq_ignore_ascii_case(scope)
    });
    match body.request_type.as_str() {
        "SelfActivate" | "AdminAssign" => {
            if existing.is_some() {
                return Err(ArmError::bad_request(
                    "RoleAssignmentExists",
                    "The Role assignment already exists.",
                ));
            }
            let duplicate = world.requests.iter().any(|r| {
                r.status == PENDING
                    && r.principal.eq_ignore_ascii_case(&body.principal)
                    && r.role.eq_ignore_ascii_case(&body.role)
                    && r.scope.eq_ignore_ascii_case(scope)
            });
            if duplicate {
                return Err(ArmError::bad_request(
                    "RoleAssignmentRequestExists",
                    "A pending role assignment request already exists for this principal, role and scope.",
                ));
            }
        }
        "SelfDeactivate" | "SelfExtend" | "SelfRenew" | "AdminRemove" | "AdminUpdate"
        | "AdminExtend" | "AdminRenew"
            if existing.is_none() =>
        {
            return Err(ArmError::bad_request(
                "RoleAssignmentDoesNotExist",
                "The role assignment that the request refers to does not exist.",
            ));
        }
        _ => {}
    }
    if let (Some(i), "SelfDeactivate") = (existing, body.request_type.as_str()) {
        // PIM refuses to end an activation in its first minutes.
        let ra = &world.role_assignments[i];
        let min = Duration::seconds(world.tenant.min_activation_secs as i64);
        let activated = matches!(ra.origin, AssignmentOrigin::Activated { .. });
        if activated && now < ra.created_on + min {
            return Err(ArmError::bad_request(
                "ActiveDurationTooShort",
                crate::error::active_duration_too_short(world.tenant.min_activation_secs),
            ));
        }
    }
    let self_service = body.request_type.starts_with("Self");
    let eligibility = if body.request_type == "SelfActivate" {
        let found = world
            .eligibilities
            .iter()
            .find(|e| {
                e.principal.eq_ignore_ascii_case(&body.principal)
                    && e.role.eq_ignore_ascii_case(&body.role)
                    && world.scope_contains(&e.scope, scope)
                    && e.end.is_none_or(|end| now < end)
            })
            .map(|e| e.schedule_id.clone());
        if found.is_none() {
            return Err(policy_failure(&["EligibilityRule"]));
        }
        found
    } else {
        None
    };
    if matches!(
        body.request_type.as_str(),
        "SelfActivate" | "SelfExtend" | "SelfRenew"
    ) {
        check_authentication_context(&world, call, scope, &body.role)?;
        let failed = failed_rules(&world, call, scope, &body);
        if !failed.is_empty() {
            return Err(policy_failure(&failed));
        }
    }
    let rules = world
        .policy_for(&body.role, scope)
        .map(RolePolicy::activation_rules)
        .unwrap_or_default();
    let needs_approval = match body.request_type.as_str() {
        "SelfActivate" => rules.approval_required,
        "SelfExtend" | "SelfRenew" => rules.approval_required_for_extension,
        _ => false,
    };
    let default_duration = rules.max_duration;
    let mut request = new_request(
        call,
        scope,
        name,
        body,
        if needs_approval { PENDING } else { "Accepted" },
    );
    if self_service && request.duration.is_none() && request.request_type != "SelfDeactivate" {
        request.duration = default_duration;
        request.end = default_duration.map(|d| request.start + d);
    }
    if request.linked_eligibility.is_none() {
        request.linked_eligibility = eligibility;
    }
    if needs_approval {
        let approval = Approval {
            guid: new_guid(),
            request: request.name.clone(),
            created_on: now,
            expires: now + Duration::days(rules.stage_timeout_days.max(1)),
            stages: vec![ApprovalStage {
                guid: new_guid(),
                name: new_guid(),
                display_name: "Approval stage 1".into(),
                approvers: rules
                    .approvers
                    .iter()
                    .map(|a| a.to_ascii_lowercase())
                    .collect(),
                status: "InProgress".into(),
                review_result: "NotReviewed".into(),
                reviewed_by: None,
                reviewed_at: None,
                justification: String::new(),
                approver_justification_required: rules.approver_justification_required,
            }],
        };
        request.approval_id = Some(approval.guid.clone());
        world.approvals.push(approval);
        world.record(now, "pim.request_pending", json!({"request": request.name, "principal": request.principal, "role": request.role, "scope": request.scope}));
        world.requests.push(request.clone());
    } else {
        world.requests.push(request.clone());
        provision(&mut world, &request.name, now);
    }
    let r = world
        .requests
        .iter()
        .find(|r| r.name == request.name)
        .cloned()
        .unwrap_or(request);
    Ok(created(request_json(&world, &r, scope)))
}

/// Carries out an approved (or approval-free) request: creates, extends or removes the
/// role assignment it asks for.
pub fn provision(world: &mut World, name: &str, now: DateTime<Utc>) {
    let Some(index) = world.requests.iter().position(|r| r.name == name) else {
        return;
    };
    let r = world.requests[index].clone();
    let delay = Duration::seconds(world.tenant.propagation_delay_secs as i64);
    let matches = |ra: &RoleAssignment| {
        ra.principal.eq_ignore_ascii_case(&r.principal)
            && ra.role.eq_ignore_ascii_case(&r.role)
            && crate::rbac::normalize_scope(&ra.scope).eq_ignore_ascii_case(&r.scope)
    };
    let status = match r.request_type.as_str() {
        "SelfActivate" | "AdminAssign" => {
            // An activation runs for its duration from the moment it is provisioned.
            let end = r.duration.map(|d| now + d);
            let schedule_id = crate::state::new_guid();
            let instance_id = crate::state::new_guid();
            let origin = match end {
                Some(end) => AssignmentOrigin::Activated {
                    request: r.name.clone(),
                    schedule_id: schedule_id.clone(),
                    instance_id: instance_id.clone(),
                    linked_eligibility: r.linked_eligibility.clone(),
                    end,
                    effective_at: now + delay,
                },
                None => AssignmentOrigin::Standing,
            };
            world.role_assignments.push(RoleAssignment {
                guid: crate::state::new_guid(),
                scope: r.scope.clone(),
                role: r.role.clone(),
                principal: r.principal.clone(),
                principal_type: "User".into(),
                created_on: now,
                origin,
                initiate_refused: false,
            });
            let req = &mut world.requests[index];
            req.target_schedule_id = Some(schedule_id);
            req.target_instance_id = Some(instance_id);
            "Provisioned"
        }
        "SelfDeactivate" | "AdminRemove" => {
            let linger = Duration::seconds(world.tenant.deactivation_linger_secs as i64);
            if r.request_type == "SelfDeactivate" && linger > Duration::zero() {
                // A deactivated activation lingers (listed, granting, and in the way of a new
                // activation) until `World::tick` sees its shortened end pass.
                for ra in world.role_assignments.iter_mut().filter(|ra| matches(ra)) {
                    if let AssignmentOrigin::Activated { end, .. } = &mut ra.origin {
                        *end = (*end).min(now + linger);
                    }
                }
                world.role_assignments.retain(|ra| {
                    !matches(ra) || matches!(ra.origin, AssignmentOrigin::Activated { .. })
                });
                world.record(
                    now,
                    "pim.assignment_lingering",
                    json!({"principal": r.principal, "role": r.role, "scope": r.scope, "until": arm_time(now + linger)}),
                );
            } else {
                world.role_assignments.retain(|ra| !matches(ra));
            }
            "Revoked"
        }
        _ => {
            let new_end = r.end.or_else(|| r.duration.map(|d| now + d));
            for ra in world.role_assignments.iter_mut().filter(|ra| matches(ra)) {
                if let (AssignmentOrigin::Activated { end, .. }, Some(new_end)) =
                    (&mut ra.origin, new_end)
                {
                    *end = new_end;
                }
            }
            "Provisioned"
        }
    };
    world.requests[index].status = status.into();
    world.record(
        now,
        "pim.request_provisioned",
        json!({"request": r.name, "type": r.request_type, "principal": r.principal, "role": r.role, "scope": r.scope, "status": status}),
    );
}

fn policy_json(world: &World, p: &RolePolicy) -> Value {
    let scope = p.scope.trim_end_matches('/');
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleManagementPolicies/{}", p.guid),
        "name": p.guid,
        "type": "Microsoft.Authorization/RoleManagementPolicies",
        "properties": {
            "scope": p.scope,
            "displayName": null,
            "description": null,
            "isOrganizationDefault": false,
            "lastModifiedDateTime": arm_time(p.last_modified),
            "lastModifiedBy": {"id": p.last_modified_by, "displayName": p.last_modified_by.as_ref().and_then(|o| world.user_by_oid(o)).map(|u| u.name.clone()).unwrap_or_else(|| "Admin".into()), "type": null, "email": null},
            "rules": p.rules,
            "effectiveRules": p.rules,
            "policyProperties": {"scope": scope_info(world, &p.scope)},
        }
    })
}

fn policy_assignment_json(world: &World, p: &RolePolicy) -> Value {
    let scope = p.scope.trim_end_matches('/');
    let policy_id = format!(
        "{scope}/providers/Microsoft.Authorization/roleManagementPolicies/{}",
        p.guid
    );
    let name = format!("{}_{}", p.guid, p.role);
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignment/{name}"),
        "name": name,
        "type": "Microsoft.Authorization/RoleManagementPolicyAssignment",
        "properties": {
            "scope": p.scope,
            "roleDefinitionId": world.role_definition_id(&p.scope, &p.role),
            "policyId": policy_id,
            "effectiveRules": p.rules,
            "policyAssignmentProperties": {
                "scope": scope_info(world, &p.scope),
                "roleDefinition": role_info(world, &p.scope, &p.role),
                "policy": {
                    "id": policy_id,
                    "lastModifiedBy": {"id": null, "displayName": "Admin", "type": null, "email": null},
                    "lastModifiedDateTime": arm_time(p.last_modified),
                }
            }
        }
    })
}

pub fn policies(
    call: &Call,
    scope: &str,
    name: Option<&str>,
    not_allowed: impl Fn() -> ArmError,
) -> ArmResult {
    if call.method == Method::PATCH {
        return match name {
            Some(name) => patch_policy(call, scope, name),
            None => Err(not_allowed()),
        };
    }
    if call.method != Method::GET {
        return Err(not_allowed());
    }
    const READ: &str = "Microsoft.Authorization/roleManagementPolicies/read";
    let world = call.sim.world();
    match name {
        Some(name) => {
            let p = world
                .policies
                .iter()
                .find(|p| p.guid.eq_ignore_ascii_case(name) && world.in_scope(scope, &p.scope));
            match p {
                Some(p) if may_read_policy(call, &world, READ, scope, p) => {
                    Ok(ok(policy_json(&world, p)))
                }
                _ => {
                    call.require(&world, READ, scope)?;
                    Err(ArmError::not_found(
                        "RoleManagementPolicyNotFound",
                        format!("The role management policy '{name}' was not found."),
                    ))
                }
            }
        }
        None => {
            let items: Vec<Value> = world
                .policies
                .iter()
                .filter(|p| world.in_scope(scope, &p.scope))
                .filter(|p| may_read_policy(call, &world, READ, scope, p))
                .map(|p| policy_json(&world, p))
                .collect();
            if items.is_empty() {
                call.require(&world, READ, scope)?;
            }
            page(call, &world, "roleManagementPolicies", items)
        }
    }
}

/// Whether the caller may read policy `p` in a request at `scope`: with the `read` action
/// there, or, as PIM shows an eligible user the settings of the role they may activate, when
/// eligible for its role at or below its scope (see the README).
fn may_read_policy(call: &Call, world: &World, action: &str, scope: &str, p: &RolePolicy) -> bool {
    let now = call.sim.clock.now();
    world.is_permitted_any(&call.caller.principals, action, scope, now)
        || world.is_eligible(&call.caller.oid, &p.role, &p.scope, now)
}

pub fn policy_assignments(
    call: &Call,
    scope: &str,
    name: Option<&str>,
    not_allowed: impl Fn() -> ArmError,
) -> ArmResult {
    if call.method != Method::GET {
        return Err(not_allowed());
    }
    const READ: &str = "Microsoft.Authorization/roleManagementPolicyAssignments/read";
    let world = call.sim.world();
    if let Some(name) = name {
        let p = world
            .policies
            .iter()
            .find(|p| format!("{}_{}", p.guid, p.role).eq_ignore_ascii_case(name));
        return match p {
            Some(p) if may_read_policy(call, &world, READ, scope, p) => {
                Ok(ok(policy_assignment_json(&world, p)))
            }
            _ => {
                call.require(&world, READ, scope)?;
                Err(ArmError::not_found(
                    "RoleManagementPolicyAssignmentNotFound",
                    format!("The role management policy assignment '{name}' was not found."),
                ))
            }
        };
    }
    let filter = match call.filter() {
        Some(_) => parse_filter(call.filter())?,
        None => Filter::None,
    };
    if let Filter::RoleDefinition(wanted) = &filter {
        // Every role has a policy at every scope where it can be assigned: the one asked for
        // is that scope's own, made with Azure's defaults the first time it is looked at.
        let mut world = world;
        let here = crate::rbac::normalize_scope(scope);
        let now = call.sim.clock.now();
        let role = wanted
            .rsplit('/')
            .next()
            .unwrap_or(wanted)
            .to_ascii_lowercase();
        // Eligible here: the user could activate the role at this scope.
        let eligible_here = world.eligibilities.iter().any(|e| {
            e.principal.eq_ignore_ascii_case(&call.caller.oid)
                && e.role.eq_ignore_ascii_case(&role)
                && e.end.is_none_or(|end| now < end)
                && world.scope_contains(&e.scope, &here)
        });
        if !eligible_here {
            call.require(&world, READ, scope)?;
        }
        // The filter compares whole ids, as the assignments name them here: a role named in
        // another scope's form (the tenant form at a subscription, say) matches nothing.
        let named_here = world.role(&role).is_some()
            && world
                .role_definition_id(&here, &role)
                .eq_ignore_ascii_case(wanted);
        let exact = |p: &RolePolicy| {
            p.role.eq_ignore_ascii_case(&role)
                && crate::rbac::normalize_scope(&p.scope).eq_ignore_ascii_case(&here)
        };
        let assignable = world.role(&role).is_some_and(|rd| {
            rd.assignable_scopes
                .iter()
                .any(|s| world.scope_contains(s, &here))
        });
        if named_here && assignable && !world.policies.iter().any(exact) {
            world.policies.push(RolePolicy {
                guid: new_guid(),
                scope: here.clone(),
                role: role.clone(),
                rules: crate::state::policy_rules(
                    false,
                    Vec::new(),
                    true,
                    1,
                    &["Justification"],
                    "PT8H",
                ),
                last_modified: now,
                last_modified_by: None,
            });
        }
        let items = world
            .policies
            .iter()
            .filter(|p| named_here && exact(p))
            .map(|p| policy_assignment_json(&world, p))
            .collect();
        return page(call, &world, "roleManagementPolicyAssignments", items);
    }
    let items: Vec<Value> = world
        .policies
        .iter()
        .filter(|p| world.in_scope(scope, &p.scope))
        .filter(|p| may_read_policy(call, &world, READ, scope, p))
        .map(|p| policy_assignment_json(&world, p))
        .collect();
    if items.is_empty() {
        call.require(&world, READ, scope)?;
    }
    page(call, &world, "roleManagementPolicyAssignments", items)
}

/// The rule types a policy may hold, and what each must carry.
const RULE_TYPES: [&str; 5] = [
    "RoleManagementPolicyApprovalRule",
    "RoleManagementPolicyAuthenticationContextRule",
    "RoleManagementPolicyEnablementRule",
    "RoleManagementPolicyExpirationRule",
    "RoleManagementPolicyNotificationRule",
];

/// Checks one rule of a PATCH: its id and type, and the values the simulator acts on.
fn check_rule(world: &World, rule: &Value) -> Result<(), ArmError> {
    let invalid = |m: String| ArmError::bad_request("InvalidRoleManagementPolicyRule", m);
    let id = rule["id"]
        .as_str()
        .ok_or_else(|| invalid("every rule needs an 'id'".into()))?;
    let kind = rule["ruleType"].as_str().unwrap_or("");
    if !RULE_TYPES.contains(&kind) {
        return Err(invalid(format!(
            "rule '{id}' has ruleType '{kind}', which is not one of {}",
            RULE_TYPES.join(", ")
        )));
    }
    match kind {
        "RoleManagementPolicyExpirationRule" => {
            if let Some(d) = rule.get("maximumDuration").filter(|d| !d.is_null()) {
                let ok = d
                    .as_str()
                    .and_then(duration::parse)
                    .is_some_and(|d| d > Duration::zero());
                if !ok {
                    return Err(invalid(format!("rule '{id}': maximumDuration {d} is not a positive ISO 8601 duration such as PT8H")));
                }
            }
        }
        "RoleManagementPolicyEnablementRule" => {
            for r in rule["enabledRules"].as_array().into_iter().flatten() {
                let known = ["MultiFactorAuthentication", "Justification", "Ticketing"];
                if !r.as_str().is_some_and(|r| known.contains(&r)) {
                    return Err(invalid(format!(
                        "rule '{id}': enabledRules holds {r}, not one of {}",
                        known.join(", ")
                    )));
                }
            }
        }
        "RoleManagementPolicyApprovalRule" => {
            for stage in rule["setting"]["approvalStages"]
                .as_array()
                .into_iter()
                .flatten()
            {
                for a in stage["primaryApprovers"].as_array().into_iter().flatten() {
                    let id_ok = a["id"]
                        .as_str()
                        .is_some_and(|oid| world.user_by_oid(&oid.to_ascii_lowercase()).is_some());
                    if !id_ok {
                        return Err(ArmError::bad_request(
                            "PrincipalNotFound",
                            format!(
                                "Approver {} does not exist in the directory {}.",
                                a["id"], world.tenant.id
                            ),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// PATCH of a policy: the rules sent replace the rules with the same id; the others stay.
fn patch_policy(call: &Call, scope: &str, name: &str) -> ArmResult {
    let now = call.sim.clock.now();
    let mut world = call.sim.world();
    call.require(
        &world,
        "Microsoft.Authorization/roleManagementPolicies/write",
        scope,
    )?;
    let index = world
        .policies
        .iter()
        .position(|p| p.guid.eq_ignore_ascii_case(name) && world.in_scope(scope, &p.scope))
        .ok_or_else(|| {
            ArmError::not_found(
                "RoleManagementPolicyNotFound",
                format!("The role management policy '{name}' was not found."),
            )
        })?;
    let body = call.json()?;
    let rules = body["properties"]["rules"]
        .as_array()
        .cloned()
        .ok_or_else(|| {
            ArmError::invalid_content("'properties.rules' is required: the rules to change")
        })?;
    for rule in &rules {
        check_rule(&world, rule)?;
    }
    let caller = call.caller.oid.clone();
    let policy = &mut world.policies[index];
    for rule in rules {
        match policy.rules.iter_mut().find(|r| r["id"] == rule["id"]) {
            Some(existing) => *existing = rule,
            None => policy.rules.push(rule),
        }
    }
    policy.last_modified = now;
    policy.last_modified_by = Some(caller);
    let p = policy.clone();
    world.record(
        now,
        "pim.policy_updated",
        json!({"policy": p.guid, "role": p.role, "scope": p.scope}),
    );
    Ok(ok(policy_json(&world, &p)))
}
