//! PIM eligibility requests (`roleEligibilityScheduleRequests`, 2020-10-01): how an admin
//! makes a principal eligible for a role at a scope (`AdminAssign`) or removes that
//! (`AdminRemove`). They are carried out at once (status `Provisioned`), as PIM does for an
//! admin with the right to assign.

use axum::http::Method;
use serde_json::json;

use super::pim::{check_list, parse_filter, parse_request_body, Filter};
use super::{created, is_guid, ok, principal_info, role_info, scope_info, ArmResult, Call};
use crate::clock::arm_time;
use crate::error::ArmError;
use crate::state::{new_guid, Eligibility, EligibilityRequest};

const WRITE: &str = "Microsoft.Authorization/roleEligibilityScheduleRequests/write";
const READ: &str = "Microsoft.Authorization/roleEligibilityScheduleRequests/read";
const ADMIN_TYPES: [&str; 4] = ["AdminAssign", "AdminRemove", "AdminUpdate", "AdminExtend"];

pub fn handle(
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
        _ => Err(not_allowed()),
    }
}

fn not_found(name: &str) -> ArmError {
    ArmError::not_found(
        "RoleEligibilityScheduleRequestNotFound",
        format!("The role eligibility schedule request '{name}' was not found."),
    )
}

fn list_requests(call: &Call, scope: &str) -> ArmResult {
    let world = call.sim.world();
    let filter = parse_filter(call.filter())?;
    check_list(
        call,
        &world,
        &filter,
        "roleEligibilityScheduleRequests",
        scope,
    )?;
    let me = &call.caller.oid;
    let items = world
        .eligibility_requests
        .iter()
        .filter(|r| world.in_scope(scope, &r.scope))
        .filter(|r| match &filter {
            Filter::AsTarget => r.principal.eq_ignore_ascii_case(me),
            Filter::AsRequestor => r.requestor.eq_ignore_ascii_case(me),
            Filter::AsApprover => false,
            Filter::Principal(id) => r.principal.eq_ignore_ascii_case(id),
            // At the scope or above it, as PIM's atScope() means.
            Filter::AtScope => world.scope_contains(&r.scope, scope),
            _ => true,
        })
        .map(|r| r.body.clone())
        .collect();
    super::page(call, &world, "roleEligibilityScheduleRequests", items)
}

fn get_request(call: &Call, scope: &str, name: &str) -> ArmResult {
    let world = call.sim.world();
    let r = world
        .eligibility_requests
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| not_found(name))?;
    let me = &call.caller.oid;
    if !(r.principal.eq_ignore_ascii_case(me) || r.requestor.eq_ignore_ascii_case(me)) {
        call.require(&world, READ, scope)?;
    }
    Ok(ok(r.body.clone()))
}

fn put_request(call: &Call, scope: &str, name: &str) -> ArmResult {
    if !is_guid(name) {
        return Err(ArmError::bad_request(
            "InvalidRoleEligibilityScheduleRequestName",
            format!("The role eligibility schedule request name '{name}' is not valid: it must be a GUID."),
        ));
    }
    let now = call.sim.clock.now();
    let mut world = call.sim.world();
    call.require(&world, WRITE, scope)?;
    if world
        .eligibility_requests
        .iter()
        .any(|r| r.name.eq_ignore_ascii_case(name))
    {
        return Err(ArmError::bad_request(
            "RoleEligibilityScheduleRequestExists",
            format!("The role eligibility schedule request '{name}' already exists."),
        ));
    }
    let body = parse_request_body(call, &world)?;
    if !ADMIN_TYPES.contains(&body.request_type.as_str()) {
        return Err(ArmError::invalid_content(format!(
            "requestType '{}' is not valid for an eligibility request: use one of {}",
            body.request_type,
            ADMIN_TYPES.join(", ")
        )));
    }
    let assignable = world.role(&body.role).is_some_and(|rd| {
        rd.assignable_scopes
            .iter()
            .any(|s| world.scope_contains(s, scope))
    });
    if !assignable {
        return Err(ArmError::bad_request(
            "InvalidRoleDefinitionScope",
            format!(
                "The role definition '{}' is not assignable at scope '{scope}'.",
                body.role
            ),
        ));
    }
    if let Some(d) = body.duration {
        if d <= chrono::Duration::zero() {
            return Err(ArmError::invalid_content(
                "the eligibility's duration must be positive",
            ));
        }
    }
    let same = |e: &Eligibility| {
        e.principal.eq_ignore_ascii_case(&body.principal)
            && e.role.eq_ignore_ascii_case(&body.role)
            && crate::rbac::normalize_scope(&e.scope)
                .eq_ignore_ascii_case(&crate::rbac::normalize_scope(scope))
            && e.end.is_none_or(|end| now < end)
    };
    let schedule_id = match body.request_type.as_str() {
        "AdminAssign" => {
            if world.eligibilities.iter().any(same) {
                return Err(ArmError::bad_request(
                    "RoleAssignmentExists",
                    "The Role assignment already exists.",
                ));
            }
            let e = Eligibility {
                schedule_id: new_guid(),
                instance_id: new_guid(),
                scope: scope.to_string(),
                role: body.role.clone(),
                principal: body.principal.clone(),
                start: body.start,
                end: body.end,
                created_on: now,
            };
            let id = e.schedule_id.clone();
            world.eligibilities.push(e);
            id
        }
        "AdminRemove" => {
            let Some(e) = world.eligibilities.iter().find(|e| same(e)).cloned() else {
                return Err(ArmError::bad_request(
                    "RoleAssignmentDoesNotExist",
                    "The role assignment that you are trying to remove does not exist.",
                ));
            };
            world
                .eligibilities
                .retain(|x| x.schedule_id != e.schedule_id);
            e.schedule_id
        }
        _ => {
            // AdminUpdate and AdminExtend: a new end for the existing eligibility.
            let Some(e) = world.eligibilities.iter_mut().find(|e| same(e)) else {
                return Err(ArmError::bad_request(
                    "RoleAssignmentDoesNotExist",
                    "The role assignment that you are trying to update does not exist.",
                ));
            };
            e.end = body.end;
            e.schedule_id.clone()
        }
    };
    let scope_path = scope.trim_end_matches('/');
    let response = json!({
        "id": format!("{scope_path}/providers/Microsoft.Authorization/RoleEligibilityScheduleRequests/{}", name.to_ascii_lowercase()),
        "name": name.to_ascii_lowercase(),
        "type": "Microsoft.Authorization/RoleEligibilityScheduleRequests",
        "properties": {
            "targetRoleEligibilityScheduleId": schedule_id,
            "targetRoleEligibilityScheduleInstanceId": null,
            "scope": scope,
            "roleDefinitionId": world.role_definition_id(scope, &body.role),
            "principalId": body.principal,
            "principalType": "User",
            "requestType": body.request_type,
            "status": "Provisioned",
            "approvalId": null,
            "scheduleInfo": body.schedule_info,
            "ticketInfo": {"ticketNumber": body.ticket_number, "ticketSystem": body.ticket_system},
            "justification": body.justification,
            "requestorId": call.caller.oid,
            "createdOn": arm_time(now),
            "condition": body.condition,
            "conditionVersion": body.condition_version,
            "expandedProperties": {
                "scope": scope_info(&world, scope),
                "roleDefinition": role_info(&world, scope, &body.role),
                "principal": principal_info(&world, &body.principal),
            }
        }
    });
    world.eligibility_requests.push(EligibilityRequest {
        name: name.to_ascii_lowercase(),
        scope: scope.to_string(),
        principal: body.principal.clone(),
        requestor: call.caller.oid.clone(),
        body: response.clone(),
    });
    world.record(
        now,
        "pim.eligibility_provisioned",
        json!({"request": name, "type": body.request_type, "principal": body.principal, "role": body.role, "scope": scope}),
    );
    Ok(created(response))
}
