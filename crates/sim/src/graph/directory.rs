//! Microsoft Graph for PIM for Microsoft Entra roles (`roleManagement/directory`): role
//! eligibility and assignment schedule instances, role assignment schedule requests
//! (`selfActivate`, `selfDeactivate`), and, in beta only, their approvals
//! (`roleAssignmentApprovals/…/steps`). The unified role management policies for the
//! directory (`scopeType eq 'DirectoryRole'`) are served beside the groups' in
//! [`super::groups`].
//!
//! PIM runs these on the same engine as PIM for Groups, and so does the simulator: this
//! module names the paths, the permissions and the shapes (transcribed in
//! `specs/graph/roleManagementDirectory.json` and `roleManagementDirectoryBeta.json`), and
//! hands every call to [`super::groups::serve`]. Every role is tenant-wide: its directory
//! scope is `/`.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::groups::{bad_request, percent_decode, serve, Call, Failure, Surface};
use super::Params;
use crate::clock::arm_time;
use crate::server::Shared;
use crate::state::{stable_guid, GroupActivation, GroupEligibility, GroupRequest, World};
use crate::tenant::{directory_role, DIRECTORY_ROLES};

/// Reading role eligibilities: the scopes Graph's 403 lists, least privileged first.
pub(super) const READ_ELIGIBILITY: [&str; 4] = [
    "RoleEligibilitySchedule.Read.Directory",
    "RoleManagement.Read.Directory",
    "RoleEligibilitySchedule.ReadWrite.Directory",
    "RoleManagement.ReadWrite.Directory",
];
/// Reading role assignments, requests and approvals.
pub(super) const READ_ASSIGNMENTS: [&str; 4] = [
    "RoleAssignmentSchedule.Read.Directory",
    "RoleManagement.Read.Directory",
    "RoleAssignmentSchedule.ReadWrite.Directory",
    "RoleManagement.ReadWrite.Directory",
];
/// Creating and cancelling requests, and deciding approvals.
pub(super) const WRITE_ASSIGNMENTS: [&str; 2] = [
    "RoleAssignmentSchedule.ReadWrite.Directory",
    "RoleManagement.ReadWrite.Directory",
];
/// Reading the directory's role management policies.
pub(super) const READ_POLICIES: [&str; 4] = [
    "RoleManagementPolicy.Read.Directory",
    "RoleManagement.Read.Directory",
    "RoleManagementPolicy.ReadWrite.Directory",
    "RoleManagement.ReadWrite.Directory",
];

/// Directory roles that read everyone's PIM items for Entra roles.
const ROLE_READERS: [&str; 4] = [
    "Global Administrator",
    "Global Reader",
    "Privileged Role Administrator",
    "Security Reader",
];

/// `…/roleManagement/directory/…` under `/v1.0` and `/beta`: every PIM for Entra roles
/// operation. Approvals are beta's only, as they are in Graph; the rest is v1.0's.
pub async fn pim(
    State(sim): State<Shared>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let (version, rest) = match (
        path.strip_prefix("/v1.0/roleManagement/directory/"),
        path.strip_prefix("/beta/roleManagement/directory/"),
    ) {
        (Some(rest), _) => ("v1.0", rest),
        (None, Some(rest)) => ("beta", rest),
        _ => ("v1.0", ""),
    };
    let segs: Vec<String> = rest.split('/').map(percent_decode).collect();
    let segs = match engine_segments(version, &segs) {
        Ok(segs) => segs,
        Err(f) => return f.render(&sim),
    };
    let call = Call {
        surface: Surface::Directory,
        version,
        method,
        headers,
        uri,
        params,
        body,
    };
    serve(&sim, call, &segs)
}

/// The path's segments as the engine names them (`roleAssignmentScheduleRequests` is
/// `assignmentScheduleRequests`, an approval's `steps` its `stages`), or Graph's refusal of
/// a segment this version does not have.
fn engine_segments(version: &str, segs: &[String]) -> Result<Vec<String>, Failure> {
    let unknown = |segment: &str| {
        bad_request(
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    };
    let first = segs.first().map(String::as_str).unwrap_or("");
    let renamed = match first.to_ascii_lowercase().as_str() {
        "roleeligibilityscheduleinstances" if version == "v1.0" => "eligibilityScheduleInstances",
        "roleassignmentscheduleinstances" if version == "v1.0" => "assignmentScheduleInstances",
        "roleassignmentschedulerequests" if version == "v1.0" => "assignmentScheduleRequests",
        "roleassignmentapprovals" if version == "beta" => "assignmentApprovals",
        _ => return Err(unknown(first)),
    };
    let mut out = vec![renamed.to_string()];
    for (i, s) in segs.iter().enumerate().skip(1) {
        if renamed == "assignmentApprovals" && i == 2 {
            if s.eq_ignore_ascii_case("steps") {
                out.push("stages".into());
                continue;
            }
            // An approval has steps here, not stages.
            return Err(unknown(s));
        }
        out.push(s.clone());
    }
    Ok(out)
}

/// Whether a PIM item's target is a directory role (its id one of the built-in roles').
pub(super) fn is_role(target: &str) -> bool {
    DIRECTORY_ROLES
        .iter()
        .any(|(_, id)| id.eq_ignore_ascii_case(target))
}

/// Whether `me` may read other people's PIM items for Entra roles.
pub(super) fn reads_roles(world: &World, me: &str) -> bool {
    world.user_by_oid(me).is_some_and(|u| {
        u.directory_roles
            .iter()
            .any(|r| ROLE_READERS.contains(&r.as_str()))
    })
}

/// Whether `me` holds the role `role` (an id) as a standing assignment.
pub(super) fn holds_standing(world: &World, me: &str, role: &str) -> bool {
    let Some((name, _)) = directory_role(role) else {
        return false;
    };
    world
        .user_by_oid(me)
        .is_some_and(|u| u.directory_roles.iter().any(|r| r == name))
}

/// The role a request body asks for: a built-in role's id, tenant-wide. An app scope, or a
/// directory scope other than the tenant, is not served.
pub(super) fn requested_role(body: &Value) -> Result<String, Failure> {
    let role = body["roleDefinitionId"].as_str().unwrap_or("").trim();
    let directory_scope = body["directoryScopeId"].as_str();
    let app_scope = body["appScopeId"].as_str();
    match (directory_scope, app_scope) {
        (Some("/"), None) => {}
        (None, None) => {
            return Err(bad_request(
                "InvalidRoleAssignmentRequest",
                "The role assignment request is invalid: give directoryScopeId (\"/\" for the tenant) or appScopeId.",
            ))
        }
        _ => {
            return Err(bad_request(
                "InvalidRoleAssignmentRequest",
                "The role assignment request is invalid: only the tenant-wide directory scope \"/\" is served here.",
            ))
        }
    }
    match directory_role(role) {
        Some((_, id)) => Ok(id.to_string()),
        None => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The role definition '{role}' was not found."),
        )),
    }
}

/// A role definition as `$expand=roleDefinition` shows it; `null` for an unknown id.
pub(super) fn definition_json(id: &str) -> Value {
    match directory_role(id) {
        Some((name, id)) => json!({
            "id": id,
            "displayName": name,
            "description": format!("Built-in role: {name}."),
            "isBuiltIn": true,
            "isEnabled": true,
            "templateId": id,
        }),
        None => Value::Null,
    }
}

/// A `unifiedRoleEligibilityScheduleInstance`.
pub(super) fn eligibility_json(e: &GroupEligibility, expand: bool) -> Value {
    let mut v = json!({
        "@odata.type": "#microsoft.graph.unifiedRoleEligibilityScheduleInstance",
        "id": e.id,
        "principalId": e.principal,
        "roleDefinitionId": e.group,
        "directoryScopeId": "/",
        "appScopeId": null,
        "startDateTime": arm_time(e.start),
        "endDateTime": e.end.map(arm_time),
        "memberType": "Direct",
        "roleEligibilityScheduleId": e.schedule_id,
    });
    if expand {
        v["roleDefinition"] = definition_json(&e.group);
    }
    v
}

/// An activated role as a `unifiedRoleAssignmentScheduleInstance`.
pub(super) fn activation_json(a: &GroupActivation) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.unifiedRoleAssignmentScheduleInstance",
        "id": a.id,
        "principalId": a.principal,
        "roleDefinitionId": a.group,
        "directoryScopeId": "/",
        "appScopeId": null,
        "startDateTime": arm_time(a.start),
        "endDateTime": arm_time(a.end),
        "assignmentType": "Activated",
        "memberType": "Direct",
        "roleAssignmentOriginId": a.schedule_id,
        "roleAssignmentScheduleId": a.schedule_id,
    })
}

/// The standing (permanently assigned) directory roles, as (role id, principal, instance).
pub(super) fn standing(world: &World) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for u in &world.users {
        for name in &u.directory_roles {
            let Some((_, role)) = directory_role(name) else {
                continue;
            };
            let id = stable_guid(&format!("standing-role:{role}:{}", u.oid));
            out.push((
                role.to_string(),
                u.oid.clone(),
                json!({
                    "@odata.type": "#microsoft.graph.unifiedRoleAssignmentScheduleInstance",
                    "id": id,
                    "principalId": u.oid,
                    "roleDefinitionId": role,
                    "directoryScopeId": "/",
                    "appScopeId": null,
                    "startDateTime": null,
                    "endDateTime": null,
                    "assignmentType": "Assigned",
                    "memberType": "Direct",
                    "roleAssignmentOriginId": id,
                    "roleAssignmentScheduleId": id,
                }),
            ));
        }
    }
    out
}

/// The fields a `unifiedRoleAssignmentScheduleRequest` has where a group's request has
/// `accessId` and `groupId`.
pub(super) fn request_fields(v: &mut Value, r: &GroupRequest, expand: bool) {
    v["@odata.type"] = json!("#microsoft.graph.unifiedRoleAssignmentScheduleRequest");
    v["roleDefinitionId"] = json!(r.group);
    v["directoryScopeId"] = json!("/");
    v["appScopeId"] = Value::Null;
    if expand {
        v["roleDefinition"] = definition_json(&r.group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_paths_map_onto_the_engine_and_approvals_are_beta_only() {
        let segs = |p: &str| p.split('/').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            engine_segments("v1.0", &segs("roleAssignmentScheduleRequests/abc/cancel"))
                .ok()
                .expect("served"),
            segs("assignmentScheduleRequests/abc/cancel")
        );
        assert_eq!(
            engine_segments("beta", &segs("roleAssignmentApprovals/abc/steps/abc"))
                .ok()
                .expect("served"),
            segs("assignmentApprovals/abc/stages/abc")
        );
        assert!(engine_segments("v1.0", &segs("roleAssignmentApprovals/abc")).is_err());
        assert!(engine_segments("beta", &segs("roleAssignmentApprovals/abc/stages")).is_err());
        assert!(engine_segments("beta", &segs("roleAssignmentScheduleRequests")).is_err());
    }

    #[test]
    fn only_the_tenant_wide_scope_of_a_known_role_is_served() {
        let reader = "f2ef992c-3afb-46b9-b7cf-a126ee74c451";
        let ok = json!({"roleDefinitionId": reader, "directoryScopeId": "/"});
        assert_eq!(requested_role(&ok).ok().as_deref(), Some(reader));
        for bad in [
            json!({"roleDefinitionId": reader}),
            json!({"roleDefinitionId": reader, "directoryScopeId": "/administrativeUnits/x"}),
            json!({"roleDefinitionId": reader, "directoryScopeId": "/", "appScopeId": "/"}),
            json!({"roleDefinitionId": "nope", "directoryScopeId": "/"}),
        ] {
            assert!(requested_role(&bad).is_err(), "{bad}");
        }
    }
}
