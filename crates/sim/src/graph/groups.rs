//! Microsoft Graph v1.0 for PIM for Groups: eligibility and assignment schedule instances,
//! assignment schedule requests (`selfActivate`, `selfDeactivate`), their approvals, the
//! groups' role management policies, and `GET /groups/{id}`.
//!
//! PIM for Entra roles (`roleManagement/directory`, [`super::directory`]) runs on the same
//! engine, as PIM's own does: the handlers here serve both [`Surface`]s, and only the paths,
//! the names of fields and the shapes of the answers differ.
//!
//! Shapes follow Microsoft's v1.0 metadata and API reference (transcribed in
//! `specs/graph/privilegedAccessGroup.json`, which also checks every request body before a
//! handler runs): enum values in camelCase as the metadata names them, `status` strings in
//! PascalCase, and Graph's error body. Permissions are the token's `scp`, by Graph's real names.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::{authenticate_caller, denied, error, has_any, page, parse_filter, GraphCaller, Params};
use crate::clock::arm_time;
use crate::duration;
use crate::server::{Shared, Sim};
use crate::state::{
    new_guid, parse_time, stable_guid, GroupActivation, GroupPolicy, GroupRequest, GroupStage,
    World, DIRECTORY_ROLE, PENDING,
};

/// Which of Graph's two PIM surfaces a call came through. Items of one are invisible
/// through the other.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Surface {
    /// `identityGovernance/privilegedAccess/group`.
    Groups,
    /// `roleManagement/directory`: Entra roles, tenant-wide.
    Directory,
}

impl Surface {
    /// Whether an item with this `access` belongs to the surface.
    fn holds(self, access: &str) -> bool {
        (access == DIRECTORY_ROLE) == (self == Surface::Directory)
    }

    /// The property that names what is asked for: `groupId`, or `roleDefinitionId`.
    fn target_property(self) -> &'static str {
        match self {
            Surface::Groups => "groupId",
            Surface::Directory => "roleDefinitionId",
        }
    }

    /// The path under `/v1.0/` of the surface's collections (`assignmentScheduleRequests`,
    /// …), as the OData context names them.
    fn collection(self, name: &str) -> String {
        match self {
            Surface::Groups => format!("identityGovernance/privilegedAccess/group/{name}"),
            Surface::Directory => format!("roleManagement/directory/role{}", upper_first(name)),
        }
    }
}

fn upper_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

const PREFIX: &str = "/v1.0/identityGovernance/privilegedAccess/group/";

/// Reading eligibilities: the scopes Graph's 403 lists, least privileged first.
const READ_ELIGIBILITY: [&str; 4] = [
    "PrivilegedEligibilitySchedule.Read.AzureADGroup",
    "PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup",
    "PrivilegedAccess.Read.AzureADGroup",
    "PrivilegedAccess.ReadWrite.AzureADGroup",
];
/// Reading assignments, requests and approvals.
const READ_ASSIGNMENTS: [&str; 4] = [
    "PrivilegedAssignmentSchedule.Read.AzureADGroup",
    "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup",
    "PrivilegedAccess.Read.AzureADGroup",
    "PrivilegedAccess.ReadWrite.AzureADGroup",
];
/// Creating and cancelling requests, and deciding approvals.
const WRITE_ASSIGNMENTS: [&str; 2] = [
    "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup",
    "PrivilegedAccess.ReadWrite.AzureADGroup",
];
/// Reading a group's role management policies.
const READ_POLICIES: [&str; 2] = [
    "RoleManagementPolicy.Read.AzureADGroup",
    "RoleManagementPolicy.ReadWrite.AzureADGroup",
];
/// Reading a group.
const READ_GROUPS: [&str; 6] = [
    "GroupMember.Read.All",
    "Group.ReadBasic.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Directory roles that read every group's PIM items (the docs' readers of groups).
const GROUP_READERS: [&str; 3] = [
    "Global Administrator",
    "Global Reader",
    "User Administrator",
];
const MAX_TEXT: usize = 1024;

/// A Graph error to answer with; it is rendered, with the simulator's clock in its
/// `innerError`, when the handler returns.
pub(super) struct Failure {
    status: StatusCode,
    code: String,
    message: String,
}

impl Failure {
    pub(super) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub(super) fn render(self, sim: &Sim) -> Response {
        error(sim, self.status, &self.code, self.message)
    }
}

/// Graph's 403 for a token without the permission an operation needs: `UnknownError`, with
/// PIM's own error as a JSON string in the message, listing every scope that would do.
fn scope_not_granted(wanted: &[&str]) -> Failure {
    let inner = json!({
        "errorCode": "PermissionScopeNotGranted",
        "message": format!("Authorization failed due to missing permission scope {}.", wanted.join(",")),
        "instanceAnnotations": [],
    });
    Failure::new(StatusCode::FORBIDDEN, "UnknownError", inner.to_string())
}

pub(super) fn bad_request(code: &str, message: impl Into<String>) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, code, message)
}

fn not_found(what: &str, id: &str) -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The {what} '{id}' was not found."),
    )
}

fn forbidden(message: &str) -> Failure {
    Failure::new(StatusCode::FORBIDDEN, "Forbidden", message)
}

/// `The following policy rules failed: ["JustificationRule"]`, as PIM words it.
fn policy_failure(failed: &[&str]) -> Failure {
    let list = failed
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(",");
    bad_request(
        "RoleAssignmentRequestPolicyValidationFailed",
        format!("The following policy rules failed: [{list}]"),
    )
}

/// Decodes `%XX` escapes in a path segment; anything else is kept as it is.
pub(super) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(value as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `on` value of a `filterByCurrentUser(on='…')` segment.
fn current_user_on(segment: &str) -> Option<String> {
    let lower = segment.to_ascii_lowercase();
    let inner = lower
        .strip_prefix("filterbycurrentuser(")?
        .strip_suffix(')')?;
    let value = inner
        .trim()
        .strip_prefix("on")?
        .trim_start()
        .strip_prefix('=')?;
    Some(value.trim().trim_matches('\'').to_string())
}

/// The two collections of instances.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Eligibility,
    Assignment,
}

/// Whose requests `filterByCurrentUser` answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    Principal,
    CreatedBy,
    Approver,
}

/// An operation under `identityGovernance/privilegedAccess/group`.
enum Op {
    Instances(Kind, bool),
    Requests(Option<On>),
    CreateRequest,
    Request(String),
    Cancel(String),
    Approvals,
    Approval(String),
    Stages(String),
    Stage(String, String),
    Decide(String, String),
}

impl Op {
    fn scopes(&self, surface: Surface) -> &'static [&'static str] {
        let directory = surface == Surface::Directory;
        match self {
            Op::Instances(Kind::Eligibility, _) if directory => &super::directory::READ_ELIGIBILITY,
            Op::Instances(Kind::Eligibility, _) => &READ_ELIGIBILITY,
            Op::CreateRequest | Op::Cancel(_) | Op::Decide(..) if directory => {
                &super::directory::WRITE_ASSIGNMENTS
            }
            Op::CreateRequest | Op::Cancel(_) | Op::Decide(..) => &WRITE_ASSIGNMENTS,
            _ if directory => &super::directory::READ_ASSIGNMENTS,
            _ => &READ_ASSIGNMENTS,
        }
    }
}

fn parse_op(method: &Method, segs: &[String]) -> Result<Op, Failure> {
    let is = |s: &String, literal: &str| s.eq_ignore_ascii_case(literal);
    let on = |segment: &String, allowed: &[(&str, On)]| -> Option<Result<On, Failure>> {
        let value = current_user_on(segment)?;
        Some(
            allowed
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&value))
                .map(|(_, on)| *on)
                .ok_or_else(|| {
                    bad_request(
                        "BadRequest",
                        format!("Requested value '{value}' was not found."),
                    )
                }),
        )
    };
    let principal = [("principal", On::Principal)];
    let get = *method == Method::GET;
    let op = match segs {
        [c] if get && is(c, "eligibilityScheduleInstances") => {
            Some(Op::Instances(Kind::Eligibility, false))
        }
        [c] if get && is(c, "assignmentScheduleInstances") => {
            Some(Op::Instances(Kind::Assignment, false))
        }
        [c, f] if get && is(c, "eligibilityScheduleInstances") && current_user_on(f).is_some() => {
            on(f, &principal)
                .map(|r| r.map(|_| Op::Instances(Kind::Eligibility, true)))
                .transpose()?
        }
        [c, f] if get && is(c, "assignmentScheduleInstances") && current_user_on(f).is_some() => {
            on(f, &principal)
                .map(|r| r.map(|_| Op::Instances(Kind::Assignment, true)))
                .transpose()?
        }
        [c] if is(c, "assignmentScheduleRequests") && get => Some(Op::Requests(None)),
        [c] if is(c, "assignmentScheduleRequests") && *method == Method::POST => {
            Some(Op::CreateRequest)
        }
        [c, f] if get && is(c, "assignmentScheduleRequests") && current_user_on(f).is_some() => on(
            f,
            &[
                ("principal", On::Principal),
                ("createdBy", On::CreatedBy),
                ("approver", On::Approver),
            ],
        )
        .map(|r| r.map(|on| Op::Requests(Some(on))))
        .transpose()?,
        [c, id] if get && is(c, "assignmentScheduleRequests") => Some(Op::Request(id.clone())),
        [c, id, a]
            if *method == Method::POST
                && is(c, "assignmentScheduleRequests")
                && is(a, "cancel") =>
        {
            Some(Op::Cancel(id.clone()))
        }
        [c, f] if get && is(c, "assignmentApprovals") && current_user_on(f).is_some() => {
            on(f, &[("approver", On::Approver)])
                .map(|r| r.map(|_| Op::Approvals))
                .transpose()?
        }
        [c, id] if get && is(c, "assignmentApprovals") => Some(Op::Approval(id.clone())),
        [c, id, st] if get && is(c, "assignmentApprovals") && is(st, "stages") => {
            Some(Op::Stages(id.clone()))
        }
        [c, id, st, stage] if is(c, "assignmentApprovals") && is(st, "stages") => match *method {
            Method::GET => Some(Op::Stage(id.clone(), stage.clone())),
            Method::PATCH => Some(Op::Decide(id.clone(), stage.clone())),
            _ => None,
        },
        _ => None,
    };
    op.ok_or_else(|| {
        let known = matches!(
            segs.first().map(|s| s.to_ascii_lowercase()).as_deref(),
            Some(
                "eligibilityscheduleinstances"
                    | "assignmentscheduleinstances"
                    | "assignmentschedulerequests"
                    | "assignmentapprovals"
            )
        ) && segs.len() <= 4;
        if known {
            Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                format!("The HTTP method '{method}' is not allowed for this resource."),
            )
        } else {
            bad_request(
                "BadRequest",
                format!(
                    "Resource not found for the segment '{}'.",
                    segs.last().map(String::as_str).unwrap_or("")
                ),
            )
        }
    })
}

/// What every handler of a request needs.
struct Cx<'a> {
    sim: &'a Sim,
    uri: &'a Uri,
    params: &'a Params,
    caller: &'a GraphCaller,
    now: DateTime<Utc>,
    surface: Surface,
    /// `v1.0`, or `beta` (PIM for Entra roles' approvals exist only there).
    version: &'static str,
}

impl Cx<'_> {
    fn me(&self) -> &str {
        &self.caller.user.oid
    }

    fn context(&self, what: &str) -> String {
        format!("{}/{}/$metadata#{what}", self.sim.base_url, self.version)
    }

    /// The `eq` clauses of `$filter` joined by `and`, each on one of `allowed`.
    fn clauses(&self, allowed: &[&'static str]) -> Result<Vec<(&'static str, String)>, Failure> {
        let Some(filter) = self.params.get("$filter") else {
            return Ok(Vec::new());
        };
        let lower = filter.to_ascii_lowercase();
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let end = lower[start..].find(" and ").map(|i| start + i);
            let clause = &filter[start..end.unwrap_or(filter.len())];
            match parse_filter(clause, allowed) {
                Some(parsed) => out.push(parsed),
                None => {
                    return Err(bad_request(
                        "Request_UnsupportedQuery",
                        format!(
                            "Unsupported or invalid query filter clause specified: '{filter}'."
                        ),
                    ))
                }
            }
            match end {
                Some(e) => start = e + 5,
                None => return Ok(out),
            }
        }
    }

    /// Whether `$expand=group` (or, for a directory role, `roleDefinition`) asks for what the
    /// item is about; anything else it might ask is refused.
    fn expand_group(&self) -> Result<bool, Failure> {
        let navigation = match self.surface {
            Surface::Groups => "group",
            Surface::Directory => "roleDefinition",
        };
        match self.params.get("$expand").map(|e| e.trim()) {
            None | Some("") => Ok(false),
            Some(e) if e.eq_ignore_ascii_case(navigation) => Ok(true),
            Some(other) => Err(bad_request("BadRequest",
                format!("Parsing OData Select and Expand failed: Could not find a property named '{other}' that can be expanded."),
            )),
        }
    }
}

fn matches_clauses(clauses: &[(&str, String)], field: impl Fn(&str) -> String) -> bool {
    clauses
        .iter()
        .all(|(property, value)| field(property).eq_ignore_ascii_case(value))
}

/// `GET /v1.0/groups/{id}`.
pub async fn get_group(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let world = sim.world();
    let caller = match authenticate_caller(&sim, &world, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if !has_any(&caller.scopes, &READ_GROUPS) {
        return denied(&sim);
    }
    match world.groups.iter().find(|g| g.id.eq_ignore_ascii_case(&id)) {
        Some(_) => {
            let mut body = group_json(&world, &id);
            body["@odata.context"] = json!(format!("{}/v1.0/$metadata#groups/$entity", sim.base_url));
            Json(body).into_response()
        }
        None => Failure::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        )
        .render(&sim),
    }
}

/// A group as `GET /groups/{id}` and `$expand=group` show it; `null` for an unknown id.
fn group_json(world: &World, id: &str) -> Value {
    match world.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id)) {
        Some(g) => json!({
            "id": g.id,
            "displayName": g.name,
            "description": g.description,
            "securityEnabled": true,
            "mailEnabled": false,
            "isAssignableToRole": false,
        }),
        None => Value::Null,
    }
}

/// Whether the caller may read PIM for Groups items of `group` for `principal`: their own,
/// those of a group they are a member or owner of or eligible for, and any with a directory
/// role that reads every group.
fn may_read(world: &World, me: &str, group: &str, principal: &str) -> bool {
    let mine = |p: &String| p.eq_ignore_ascii_case(me);
    if super::directory::is_role(group) {
        return principal.eq_ignore_ascii_case(me) || super::directory::reads_roles(world, me);
    }
    principal.eq_ignore_ascii_case(me)
        || world
            .group(group)
            .is_some_and(|g| g.members.iter().any(mine) || g.owners.iter().any(mine))
        || world
            .group_eligibilities
            .iter()
            .any(|e| e.group.eq_ignore_ascii_case(group) && mine(&e.principal))
        || world.user_by_oid(me).is_some_and(|u| {
            u.directory_roles
                .iter()
                .any(|r| GROUP_READERS.contains(&r.as_str()))
        })
}

/// `…/identityGovernance/privilegedAccess/group/…`: every PIM for Groups operation.
pub async fn pim(
    State(sim): State<Shared>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    let segs: Vec<String> = uri
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .split('/')
        .map(percent_decode)
        .collect();
    let call = Call {
        surface: Surface::Groups,
        version: "v1.0",
        method,
        headers,
        uri,
        params,
        body,
    };
    serve(&sim, call, &segs)
}

/// One call to either surface, its path segments named as PIM for Groups names them.
pub(super) struct Call {
    pub surface: Surface,
    pub version: &'static str,
    pub method: Method,
    pub headers: HeaderMap,
    pub uri: Uri,
    pub params: Params,
    pub body: Bytes,
}

pub(super) fn serve(sim: &Sim, call: Call, segs: &[String]) -> Response {
    let Call {
        surface,
        version,
        method,
        headers,
        uri,
        params,
        body,
    } = call;
    let now = sim.clock.now();
    let mut world = sim.world();
    let caller = match authenticate_caller(sim, &world, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let op = match parse_op(&method, segs) {
        Ok(op) => op,
        Err(f) => return f.render(sim),
    };
    let scopes = op.scopes(surface);
    if !has_any(&caller.scopes, scopes) {
        world.record(
            now,
            "graph.scope_not_granted",
            json!({"upn": caller.user.upn, "path": uri.path(), "needs": scopes}),
        );
        return scope_not_granted(scopes).render(sim);
    }
    // Request bodies are checked against the Graph excerpt before any handler runs.
    if let Err(refusal) = crate::schema::validate_graph_request(method.as_str(), uri.path(), &body)
    {
        world.record(
            now,
            "request.invalid",
            json!({
                "method": method.as_str(),
                "path": uri.path(),
                "operation": refusal.operation,
                "code": "BadRequest",
                "message": refusal.message,
                "errors": refusal.errors,
            }),
        );
        return bad_request("BadRequest", refusal.message).render(sim);
    }
    let cx = Cx {
        sim,
        uri: &uri,
        params: &params,
        caller: &caller,
        now,
        surface,
        version,
    };
    let answer = match op {
        Op::Instances(kind, mine) => instances(&cx, &world, kind, mine),
        Op::Requests(on) => list_requests(&cx, &world, on),
        Op::CreateRequest => create_request(&cx, &mut world, &body),
        Op::Request(id) => get_request(&cx, &world, &id),
        Op::Cancel(id) => cancel(&cx, &mut world, &id),
        Op::Approvals => approvals(&cx, &world),
        Op::Approval(id) => approval(&cx, &world, &id, None),
        Op::Stages(id) => approval(&cx, &world, &id, Some(None)),
        Op::Stage(id, stage) => approval(&cx, &world, &id, Some(Some(stage))),
        Op::Decide(id, stage) => decide(&cx, &mut world, &id, &stage, &body),
    };
    answer.unwrap_or_else(|f| f.render(sim))
}

type Answer = Result<Response, Failure>;

fn eligibility_json(world: &World, e: &crate::state::GroupEligibility, expand: bool) -> Value {
    if super::directory::is_role(&e.group) {
        return super::directory::eligibility_json(e, expand);
    }
    let mut v = json!({
        "@odata.type": "#microsoft.graph.privilegedAccessGroupEligibilityScheduleInstance",
        "id": e.id,
        "startDateTime": arm_time(e.start),
        "endDateTime": e.end.map(arm_time),
        "accessId": e.access,
        "principalId": e.principal,
        "groupId": e.group,
        "memberType": "direct",
        "eligibilityScheduleId": e.schedule_id,
    });
    if expand {
        v["group"] = group_json(world, &e.group);
    }
    v
}

/// One active membership or ownership: standing (`assigned`, no times) or activated.
struct Active {
    group: String,
    access: String,
    principal: String,
    json: Value,
}

fn active_assignments(world: &World, expand: bool) -> Vec<Active> {
    let mut out = Vec::new();
    for g in &world.groups {
        for (access, principals) in [("member", &g.members), ("owner", &g.owners)] {
            for p in principals {
                let id = format!(
                    "{}_{access}_{}",
                    g.id,
                    stable_guid(&format!("standing:{}:{access}:{p}", g.id))
                );
                out.push(Active {
                    group: g.id.clone(),
                    access: access.into(),
                    principal: p.clone(),
                    json: json!({
                        "@odata.type": "#microsoft.graph.privilegedAccessGroupAssignmentScheduleInstance",
                        "id": id,
                        "startDateTime": null,
                        "endDateTime": null,
                        "accessId": access,
                        "principalId": p,
                        "groupId": g.id,
                        "memberType": "direct",
                        "assignmentType": "assigned",
                        "assignmentScheduleId": id,
                    }),
                });
            }
        }
    }
    for (group, principal, json) in super::directory::standing(world) {
        out.push(Active {
            group,
            access: DIRECTORY_ROLE.into(),
            principal,
            json,
        });
    }
    for a in &world.group_activations {
        out.push(Active {
            group: a.group.clone(),
            access: a.access.clone(),
            principal: a.principal.clone(),
            json: activation_json(a),
        });
    }
    if expand {
        for item in &mut out {
            if item.access == DIRECTORY_ROLE {
                item.json["roleDefinition"] = super::directory::definition_json(&item.group);
            } else {
                item.json["group"] = group_json(world, &item.group);
            }
        }
    }
    out
}

fn activation_json(a: &GroupActivation) -> Value {
    if a.access == DIRECTORY_ROLE {
        return super::directory::activation_json(a);
    }
    json!({
        "@odata.type": "#microsoft.graph.privilegedAccessGroupAssignmentScheduleInstance",
        "id": a.id,
        "startDateTime": arm_time(a.start),
        "endDateTime": arm_time(a.end),
        "accessId": a.access,
        "principalId": a.principal,
        "groupId": a.group,
        "memberType": "direct",
        "assignmentType": "activated",
        "assignmentScheduleId": a.schedule_id,
    })
}

/// A plain list (not `filterByCurrentUser`) must be scoped by a `$filter` on `groupId` or
/// `principalId`, as Graph requires.
fn scoped_by_group_or_principal(
    cx: &Cx,
    clauses: &[(&'static str, String)],
) -> Result<(), Failure> {
    let target = cx.surface.target_property();
    if clauses
        .iter()
        .any(|(p, _)| *p == target || *p == "principalId")
    {
        return Ok(());
    }
    Err(bad_request(
        "BadRequest",
        format!("The request must be scoped with a $filter on principalId or {target} (eq)."),
    ))
}

/// The eligibility or assignment schedule instances: the caller's own
/// (`filterByCurrentUser(on='principal')`), or, with the `$filter` on `groupId` or
/// `principalId` the plain list requires, those the caller may read.
fn instances(cx: &Cx, world: &World, kind: Kind, mine: bool) -> Answer {
    let expand = cx.expand_group()?;
    let clauses = cx.clauses(match cx.surface {
        Surface::Groups => &["groupId", "principalId", "accessId"],
        Surface::Directory => &["roleDefinitionId", "principalId", "directoryScopeId"],
    })?;
    if !mine {
        scoped_by_group_or_principal(cx, &clauses)?;
    }
    let me = cx.me();
    let keep = |group: &str, access: &str, principal: &str| {
        let field = |p: &str| match p {
            "groupId" | "roleDefinitionId" => group.to_string(),
            "principalId" => principal.to_string(),
            "directoryScopeId" => "/".to_string(),
            _ => access.to_string(),
        };
        cx.surface.holds(access)
            && matches_clauses(&clauses, field)
            && if mine {
                principal.eq_ignore_ascii_case(me)
            } else {
                may_read(world, me, group, principal)
            }
    };
    let (items, context): (Vec<Value>, String) = match kind {
        Kind::Eligibility => (
            world
                .group_eligibilities
                .iter()
                .filter(|e| e.end.is_none_or(|end| cx.now < end))
                .filter(|e| keep(&e.group, &e.access, &e.principal))
                .map(|e| eligibility_json(world, e, expand))
                .collect(),
            match (mine, cx.surface) {
                (true, Surface::Groups) => {
                    "Collection(privilegedAccessGroupEligibilityScheduleInstance)".to_string()
                }
                (true, Surface::Directory) => {
                    "Collection(unifiedRoleEligibilityScheduleInstance)".to_string()
                }
                (false, surface) => surface.collection("eligibilityScheduleInstances"),
            },
        ),
        Kind::Assignment => (
            active_assignments(world, expand)
                .into_iter()
                .filter(|a| keep(&a.group, &a.access, &a.principal))
                .map(|a| a.json)
                .collect(),
            match (mine, cx.surface) {
                (true, Surface::Groups) => {
                    "Collection(privilegedAccessGroupAssignmentScheduleInstance)".to_string()
                }
                (true, Surface::Directory) => {
                    "Collection(unifiedRoleAssignmentScheduleInstance)".to_string()
                }
                (false, surface) => surface.collection("assignmentScheduleInstances"),
            },
        ),
    };
    Ok(page(
        cx.sim,
        cx.uri,
        cx.params,
        world.tenant.page_size,
        &context,
        items,
    ))
}

fn request_json(world: &World, r: &GroupRequest, expand: bool) -> Value {
    let creator = world.user_by_oid(&r.created_by);
    let mut v = json!({
        "@odata.type": "#microsoft.graph.privilegedAccessGroupAssignmentScheduleRequest",
        "id": r.id,
        "status": r.status,
        "completedDateTime": r.completed.map(arm_time),
        "createdDateTime": arm_time(r.created),
        "approvalId": r.stage.as_ref().map(|_| r.id.clone()),
        "customData": r.custom_data,
        "createdBy": {"user": {"id": r.created_by, "displayName": creator.map(|u| u.name.clone())}},
        "action": r.action,
        "isValidationOnly": false,
        "justification": r.justification,
        "scheduleInfo": {
            "startDateTime": arm_time(r.start.unwrap_or(r.created)),
            "recurrence": null,
            "expiration": r.expiration,
        },
        "ticketInfo": {"ticketNumber": r.ticket_number, "ticketSystem": r.ticket_system},
        "principalId": r.principal,
        "targetScheduleId": r.target_schedule_id,
    });
    if r.access == DIRECTORY_ROLE {
        super::directory::request_fields(&mut v, r, expand);
        return v;
    }
    v["accessId"] = json!(r.access);
    v["groupId"] = json!(r.group);
    if expand {
        v["group"] = group_json(world, &r.group);
    }
    v
}

/// Whether the caller is to decide a request: an approver of its open stage who neither asked
/// for it nor benefits from it.
fn assigned_to(r: &GroupRequest, me: &str) -> bool {
    r.stage.as_ref().is_some_and(|s| {
        s.approvers.iter().any(|a| a.eq_ignore_ascii_case(me))
            && !r.principal.eq_ignore_ascii_case(me)
            && !r.created_by.eq_ignore_ascii_case(me)
    })
}

fn awaits(r: &GroupRequest, me: &str) -> bool {
    r.status == PENDING
        && r.stage.as_ref().is_some_and(|s| s.status == "InProgress")
        && assigned_to(r, me)
}

/// Whether the caller may read a request: their own, one they created or may decide, or one
/// of a group they may read.
fn involved(world: &World, r: &GroupRequest, me: &str) -> bool {
    r.created_by.eq_ignore_ascii_case(me)
        || r.stage
            .as_ref()
            .is_some_and(|s| s.approvers.iter().any(|a| a.eq_ignore_ascii_case(me)))
        || may_read(world, me, &r.group, &r.principal)
}

fn list_requests(cx: &Cx, world: &World, on: Option<On>) -> Answer {
    let expand = cx.expand_group()?;
    let clauses = cx.clauses(match cx.surface {
        Surface::Groups => &["status", "groupId", "principalId", "accessId"],
        Surface::Directory => &[
            "status",
            "roleDefinitionId",
            "principalId",
            "directoryScopeId",
        ],
    })?;
    if on.is_none() {
        scoped_by_group_or_principal(cx, &clauses)?;
    }
    let me = cx.me();
    let items = world
        .group_requests
        .iter()
        .filter(|r| cx.surface.holds(&r.access))
        .filter(|r| match on {
            Some(On::Principal) => r.principal.eq_ignore_ascii_case(me),
            Some(On::CreatedBy) => r.created_by.eq_ignore_ascii_case(me),
            Some(On::Approver) => awaits(r, me),
            None => involved(world, r, me),
        })
        .filter(|r| {
            matches_clauses(&clauses, |p| match p {
                "status" => r.status.clone(),
                "groupId" | "roleDefinitionId" => r.group.clone(),
                "principalId" => r.principal.clone(),
                "directoryScopeId" => "/".into(),
                _ => r.access.clone(),
            })
        })
        .map(|r| request_json(world, r, expand))
        .collect();
    let context = match (on.is_some(), cx.surface) {
        (true, Surface::Groups) => {
            "Collection(privilegedAccessGroupAssignmentScheduleRequest)".to_string()
        }
        (true, Surface::Directory) => {
            "Collection(unifiedRoleAssignmentScheduleRequest)".to_string()
        }
        (false, surface) => surface.collection("assignmentScheduleRequests"),
    };
    Ok(page(
        cx.sim,
        cx.uri,
        cx.params,
        world.tenant.page_size,
        &context,
        items,
    ))
}

fn find_request<'w>(cx: &Cx, world: &'w World, id: &str) -> Result<&'w GroupRequest, Failure> {
    world
        .group_requests
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(id) && cx.surface.holds(&r.access))
        .ok_or_else(|| not_found("request", id))
}

fn get_request(cx: &Cx, world: &World, id: &str) -> Answer {
    let expand = cx.expand_group()?;
    let r = find_request(cx, world, id)?;
    if !involved(world, r, cx.me()) {
        return Err(forbidden("Attempted to perform an unauthorized operation."));
    }
    let mut body = request_json(world, r, expand);
    body["@odata.context"] = json!(cx.context(&format!(
        "{}/$entity",
        cx.surface.collection("assignmentScheduleRequests")
    )));
    Ok(Json(body).into_response())
}

/// The expiration a request asks for, with Graph's three keys, and the length it gives.
struct Expiration {
    json: Value,
    length: Option<Duration>,
}

fn expiration_of(cx: &Cx, body: &Value) -> Result<Expiration, Failure> {
    let schedule = &body["scheduleInfo"];
    let start = match schedule["startDateTime"].as_str() {
        Some(text) => time(text).ok_or_else(|| {
            bad_request("BadRequest",
                format!("Cannot convert the literal '{text}' to the expected type 'Edm.DateTimeOffset'."),
            )
        })?,
        None => cx.now,
    };
    let expiration = &schedule["expiration"];
    let kind = expiration["type"].as_str().map(|t| {
        [
            "notSpecified",
            "noExpiration",
            "afterDateTime",
            "afterDuration",
        ]
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(t))
        .unwrap_or("notSpecified")
    });
    let duration_text = expiration["duration"].as_str();
    let end_text = expiration["endDateTime"].as_str();
    let length = match kind {
        Some("afterDuration") => match duration_text {
            Some(d) => Some(duration::parse(d).ok_or_else(|| {
                bad_request(
                    "BadRequest",
                    format!(
                        "Cannot convert the literal '{d}' to the expected type 'Edm.Duration'."
                    ),
                )
            })?),
            None => None,
        },
        Some("afterDateTime") => match end_text {
            Some(e) => {
                let end = time(e).ok_or_else(|| {
                    bad_request("BadRequest",
                        format!("Cannot convert the literal '{e}' to the expected type 'Edm.DateTimeOffset'."),
                    )
                })?;
                Some(end - start)
            }
            None => None,
        },
        _ => None,
    };
    Ok(Expiration {
        json: json!({
            "type": kind,
            "endDateTime": end_text,
            "duration": duration_text,
        }),
        length,
    })
}

/// An RFC 3339 time, or one without an offset (taken as UTC), as Graph accepts them.
fn time(text: &str) -> Option<DateTime<Utc>> {
    parse_time(text).or_else(|| {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc())
    })
}

/// The policy rules an activation fails, by the names PIM reports.
fn failed_rules(
    policy: &GroupPolicy,
    length: Option<Duration>,
    body: &Value,
    mfa: bool,
) -> Vec<&'static str> {
    let mut failed = Vec::new();
    let max = duration::parse(&policy.max_duration);
    match (length, max) {
        (Some(d), _) if d <= Duration::zero() => failed.push("ExpirationRule"),
        (Some(d), Some(max)) if d > max => failed.push("ExpirationRule"),
        // The expiration rule requires one: an activation without it fails the rule.
        (None, _) => failed.push("ExpirationRule"),
        _ => {}
    }
    let blank = |v: &Value| v.as_str().is_none_or(|t| t.trim().is_empty());
    if policy.justification_required && blank(&body["justification"]) {
        failed.push("JustificationRule");
    }
    if policy.ticket_required && blank(&body["ticketInfo"]["ticketNumber"]) {
        failed.push("TicketingRule");
    }
    if policy.mfa_required && !mfa {
        failed.push("MfaRule");
    }
    failed
}

fn created_response(cx: &Cx, world: &World, r: &GroupRequest, validation_only: bool) -> Response {
    let mut body = request_json(world, r, false);
    body["isValidationOnly"] = json!(validation_only);
    body["@odata.context"] = json!(cx.context(&format!(
        "{}/$entity",
        cx.surface.collection("assignmentScheduleRequests")
    )));
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `POST …/assignmentScheduleRequests`: `selfActivate` or `selfDeactivate`, checked in the
/// order the contract gives (the schema has checked the body's shape).
fn create_request(cx: &Cx, world: &mut World, raw: &[u8]) -> Answer {
    let body: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let text = |key: &str| body[key].as_str().map(str::to_string);
    let action = text("action").unwrap_or_default();
    let action = ["selfActivate", "selfDeactivate"]
        .into_iter()
        .find(|a| a.eq_ignore_ascii_case(&action))
        .ok_or_else(|| {
            bad_request("InvalidRoleAssignmentRequest",
                format!("The role assignment request is invalid: the action '{action}' is not served; use selfActivate or selfDeactivate."),
            )
        })?;
    let (group, access) = match cx.surface {
        Surface::Groups => (
            text("groupId").unwrap_or_default().to_ascii_lowercase(),
            text("accessId").unwrap_or_default().to_ascii_lowercase(),
        ),
        Surface::Directory => (
            super::directory::requested_role(&body)?,
            DIRECTORY_ROLE.to_string(),
        ),
    };
    let principal = text("principalId").unwrap_or_default().to_ascii_lowercase();
    let justification = text("justification");
    if justification.as_ref().is_some_and(|j| j.len() > MAX_TEXT) {
        return Err(bad_request(
            "BadRequest",
            format!("The justification is longer than {MAX_TEXT} characters."),
        ));
    }
    let expiration = expiration_of(cx, &body)?;
    let me = cx.me().to_string();
    if principal != me {
        return Err(forbidden("Attempted to perform an unauthorized operation."));
    }
    let validation_only = body["isValidationOnly"].as_bool().unwrap_or(false);
    let same = |g: &str, a: &str, p: &str| {
        g.eq_ignore_ascii_case(&group)
            && a.eq_ignore_ascii_case(&access)
            && p.eq_ignore_ascii_case(&me)
    };
    let now = cx.now;
    let mut request = GroupRequest {
        id: new_guid(),
        group: group.clone(),
        access: access.clone(),
        principal: me.clone(),
        created_by: me.clone(),
        action: action.into(),
        status: String::new(),
        justification,
        ticket_number: body["ticketInfo"]["ticketNumber"]
            .as_str()
            .map(str::to_string),
        ticket_system: body["ticketInfo"]["ticketSystem"]
            .as_str()
            .map(str::to_string),
        custom_data: text("customData"),
        expiration: expiration.json,
        duration: expiration.length,
        created: now,
        completed: None,
        start: None,
        stage: None,
        target_schedule_id: None,
        eligibility: None,
    };
    if action == "selfDeactivate" {
        let Some(index) = world
            .group_activations
            .iter()
            .position(|a| !a.deactivated && same(&a.group, &a.access, &a.principal))
        else {
            return Err(bad_request(
                "RoleAssignmentDoesNotExist",
                "The Role assignment does not exist.",
            ));
        };
        let min = world.tenant.min_activation_secs;
        if now < world.group_activations[index].start + Duration::seconds(min as i64) {
            return Err(bad_request(
                "ActiveDurationTooShort",
                crate::error::active_duration_too_short(min),
            ));
        }
        request.status = "Revoked".into();
        request.completed = Some(now);
        request.start = Some(now);
        request.target_schedule_id = Some(world.group_activations[index].schedule_id.clone());
        if validation_only {
            return Ok(created_response(cx, world, &request, true));
        }
        let linger = Duration::seconds(world.tenant.deactivation_linger_secs as i64);
        if linger > Duration::zero() {
            // The ended membership lingers (still in tokens and lists, and in the way of a
            // new activation) until `World::tick` sees its shortened end pass.
            let a = &mut world.group_activations[index];
            a.deactivated = true;
            a.end = a.end.min(now + linger);
        } else {
            world.group_activations.remove(index);
        }
        world.record(
            now,
            "graph.group_request_provisioned",
            json!({"request": request.id, "action": action, "group": group, "access": access, "principal": me, "status": "Revoked"}),
        );
        world.group_requests.push(request.clone());
        return Ok(created_response(cx, world, &request, false));
    }
    let eligibility = world
        .group_eligibilities
        .iter()
        .find(|e| same(&e.group, &e.access, &e.principal) && e.end.is_none_or(|end| now < end))
        .map(|e| e.schedule_id.clone());
    let Some(eligibility) = eligibility else {
        return Err(policy_failure(&["EligibilityRule"]));
    };
    let standing = match cx.surface {
        Surface::Directory => super::directory::holds_standing(world, &me, &group),
        Surface::Groups => world.group(&group).is_some_and(|g| {
            let list = if access == "owner" {
                &g.owners
            } else {
                &g.members
            };
            list.iter().any(|m| m.eq_ignore_ascii_case(&me))
        }),
    };
    let active = world
        .group_activations
        .iter()
        .any(|a| same(&a.group, &a.access, &a.principal));
    if standing || active {
        return Err(bad_request(
            "RoleAssignmentExists",
            "The Role assignment already exists.",
        ));
    }
    let policy = world.group_policy(&group, &access);
    let failed = failed_rules(&policy, expiration.length, &body, cx.caller.mfa);
    if !failed.is_empty() {
        return Err(policy_failure(&failed));
    }
    let pending = world
        .group_requests
        .iter()
        .any(|r| r.status == PENDING && same(&r.group, &r.access, &r.principal));
    if pending {
        return Err(bad_request(
            "RoleAssignmentRequestExists",
            "A pending request already exists for this principal, group and access.",
        ));
    }
    request.eligibility = Some(eligibility);
    if policy.approval_required {
        request.status = PENDING.into();
        request.stage = Some(GroupStage {
            approvers: policy.approvers.clone(),
            status: "InProgress".into(),
            review_result: "NotReviewed".into(),
            reviewed_by: None,
            reviewed_at: None,
            justification: String::new(),
            approver_justification_required: policy.approver_justification_required,
            expires: now + World::stage_timeout(&policy),
        });
    } else {
        request.status = "Granted".into();
    }
    if validation_only {
        return Ok(created_response(cx, world, &request, true));
    }
    world.group_requests.push(request.clone());
    if policy.approval_required {
        world.record(
            now,
            "graph.group_request_pending",
            json!({"request": request.id, "group": group, "access": access, "principal": me}),
        );
    } else {
        provision(world, &request.id, now);
    }
    let stored = world
        .group_requests
        .iter()
        .find(|r| r.id == request.id)
        .cloned()
        .unwrap_or(request);
    Ok(created_response(cx, world, &stored, false))
}

/// Carries out an approved (or approval-free) activation: the membership runs for its
/// duration from now.
fn provision(world: &mut World, id: &str, now: DateTime<Utc>) {
    let Some(index) = world.group_requests.iter().position(|r| r.id == id) else {
        return;
    };
    let r = world.group_requests[index].clone();
    let policy = world.group_policy(&r.group, &r.access);
    let length = r
        .duration
        .or_else(|| duration::parse(&policy.max_duration))
        .unwrap_or_else(|| Duration::hours(8));
    let schedule = format!("{}_{}_{}", r.group, r.access, r.id);
    world.group_activations.push(GroupActivation {
        id: format!("{}_{}_{}", r.group, r.access, new_guid()),
        schedule_id: schedule.clone(),
        request: r.id.clone(),
        group: r.group.clone(),
        access: r.access.clone(),
        principal: r.principal.clone(),
        start: now,
        end: now + length,
        eligibility: r.eligibility.clone(),
        deactivated: false,
        initiate_refused: false,
    });
    let req = &mut world.group_requests[index];
    req.status = "Provisioned".into();
    req.completed = Some(now);
    req.start = Some(now);
    req.target_schedule_id = Some(schedule);
    world.record(
        now,
        "graph.group_request_provisioned",
        json!({"request": r.id, "action": r.action, "group": r.group, "access": r.access, "principal": r.principal, "status": "Provisioned", "end": arm_time(now + length)}),
    );
}

/// `POST …/assignmentScheduleRequests/{id}/cancel`: 204 for the requester's pending request.
fn cancel(cx: &Cx, world: &mut World, id: &str) -> Answer {
    let r = find_request(cx, world, id)?.clone();
    if !r.created_by.eq_ignore_ascii_case(cx.me()) {
        return Err(forbidden("Attempted to perform an unauthorized operation."));
    }
    if r.status != PENDING {
        return Err(bad_request(
            "BadRequest",
            format!(
                "Only a request pending approval can be canceled; this one is '{}'.",
                r.status
            ),
        ));
    }
    if let Some(req) = world.group_requests.iter_mut().find(|q| q.id == r.id) {
        req.status = "Canceled".into();
        req.completed = Some(cx.now);
        if let Some(stage) = req.stage.as_mut() {
            stage.status = "Completed".into();
        }
    }
    world.record(
        cx.now,
        "graph.group_request_canceled",
        json!({"request": r.id}),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn stage_json(world: &World, r: &GroupRequest, me: &str) -> Value {
    let Some(stage) = r.stage.as_ref() else {
        return Value::Null;
    };
    let reviewer = stage.reviewed_by.as_ref().map(|oid| {
        let user = world.user_by_oid(oid);
        json!({
            "id": oid,
            "displayName": user.map(|u| u.name.clone()),
            "userPrincipalName": user.map(|u| u.upn.clone()),
        })
    });
    json!({
        "id": r.id,
        "displayName": null,
        "reviewedDateTime": stage.reviewed_at.map(arm_time),
        "reviewResult": stage.review_result,
        "status": stage.status,
        "assignedToMe": assigned_to(r, me),
        "justification": stage.justification,
        "reviewedBy": reviewer,
    })
}

/// An approval: its one stage, or for a directory role (beta) its one step, which has the
/// same properties.
fn approval_json(world: &World, r: &GroupRequest, me: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.approval",
        "id": r.id,
        steps_name(r): [stage_json(world, r, me)],
    })
}

fn steps_name(r: &GroupRequest) -> &'static str {
    if r.access == DIRECTORY_ROLE {
        "steps"
    } else {
        "stages"
    }
}

/// `assignmentApprovals/filterByCurrentUser(on='approver')`: what waits for the caller.
fn approvals(cx: &Cx, world: &World) -> Answer {
    let me = cx.me();
    let items = world
        .group_requests
        .iter()
        .filter(|r| cx.surface.holds(&r.access) && awaits(r, me))
        .map(|r| approval_json(world, r, me))
        .collect();
    Ok(page(
        cx.sim,
        cx.uri,
        cx.params,
        world.tenant.page_size,
        "Collection(approval)",
        items,
    ))
}

/// The approval (whose id is the request's) if it exists and the caller takes part in it.
fn find_approval<'w>(cx: &Cx, world: &'w World, id: &str) -> Result<&'w GroupRequest, Failure> {
    let r = world
        .group_requests
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(id) && r.stage.is_some() && cx.surface.holds(&r.access))
        .ok_or_else(|| not_found("approval", id))?;
    let me = cx.me();
    let part = r.principal.eq_ignore_ascii_case(me)
        || r.created_by.eq_ignore_ascii_case(me)
        || r.stage
            .as_ref()
            .is_some_and(|s| s.approvers.iter().any(|a| a.eq_ignore_ascii_case(me)));
    if !part {
        return Err(forbidden("Attempted to perform an unauthorized operation."));
    }
    Ok(r)
}

/// `assignmentApprovals/{id}` (`stage: None`), `…/stages` (`Some(None)`) and
/// `…/stages/{stageId}` (`Some(Some(id))`).
fn approval(cx: &Cx, world: &World, id: &str, stage: Option<Option<String>>) -> Answer {
    let r = find_approval(cx, world, id)?;
    let me = cx.me();
    let approvals = cx.surface.collection("assignmentApprovals");
    let steps = steps_name(r);
    let body = match stage {
        None => {
            let mut body = approval_json(world, r, me);
            body["@odata.context"] = json!(cx.context(&format!("{approvals}/$entity")));
            body
        }
        Some(None) => json!({
            "@odata.context": cx.context(&format!("{approvals}('{}')/{steps}", r.id)),
            "value": [stage_json(world, r, me)],
        }),
        Some(Some(stage_id)) => {
            if !stage_id.eq_ignore_ascii_case(&r.id) {
                return Err(not_found("approval stage", &stage_id));
            }
            let mut body = stage_json(world, r, me);
            body["@odata.context"] =
                json!(cx.context(&format!("{approvals}('{}')/{steps}/$entity", r.id)));
            body
        }
    };
    Ok(Json(body).into_response())
}

/// `PATCH …/assignmentApprovals/{id}/stages/{stageId}`: the approver's decision, 204.
fn decide(cx: &Cx, world: &mut World, id: &str, stage_id: &str, raw: &[u8]) -> Answer {
    let r = world
        .group_requests
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(id) && r.stage.is_some() && cx.surface.holds(&r.access))
        .cloned()
        .ok_or_else(|| not_found("approval", id))?;
    if !stage_id.eq_ignore_ascii_case(&r.id) {
        return Err(not_found("approval stage", stage_id));
    }
    let me = cx.me().to_string();
    let Some(stage) = r.stage.clone() else {
        return Err(not_found("approval", id));
    };
    if r.principal.eq_ignore_ascii_case(&me) || r.created_by.eq_ignore_ascii_case(&me) {
        return Err(forbidden("Request doesn't allow Self-Approval"));
    }
    if !stage.approvers.iter().any(|a| a.eq_ignore_ascii_case(&me)) {
        return Err(forbidden("Attempted to perform an unauthorized operation."));
    }
    let body: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let result = body["reviewResult"].as_str().unwrap_or("");
    let approve = if result.eq_ignore_ascii_case("Approve") {
        true
    } else if result.eq_ignore_ascii_case("Deny") {
        false
    } else {
        return Err(bad_request(
            "BadRequest",
            format!("The reviewResult '{result}' is not valid: use Approve or Deny."),
        ));
    };
    let justification = body["justification"].as_str().unwrap_or("").to_string();
    if justification.len() > MAX_TEXT {
        return Err(bad_request(
            "BadRequest",
            format!("The justification is longer than {MAX_TEXT} characters."),
        ));
    }
    if stage.status != "InProgress" || r.status != PENDING {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "The approval stage is no longer open: it is '{}' with result '{}'.",
                stage.status, stage.review_result
            ),
        ));
    }
    if stage.approver_justification_required && justification.trim().is_empty() {
        return Err(bad_request(
            "JustificationRequired",
            "The policy requires the approver to give a justification.",
        ));
    }
    let now = cx.now;
    if let Some(req) = world.group_requests.iter_mut().find(|q| q.id == r.id) {
        if let Some(s) = req.stage.as_mut() {
            s.status = "Completed".into();
            s.review_result = if approve { "Approved" } else { "Denied" }.into();
            s.reviewed_by = Some(me.clone());
            s.reviewed_at = Some(now);
            s.justification = justification;
        }
        if !approve {
            req.status = "Denied".into();
            req.completed = Some(now);
        }
    }
    world.record(
        now,
        "graph.group_approval_decided",
        json!({"request": r.id, "result": if approve { "Approve" } else { "Deny" }, "approver": cx.caller.user.upn}),
    );
    if approve {
        provision(world, &r.id, now);
    } else {
        world.record(now, "graph.group_request_denied", json!({"request": r.id}));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1.0/policies/roleManagementPolicies` and `…/roleManagementPolicyAssignments`, for
/// groups (`scopeType eq 'Group'`).
pub async fn policies(
    State(sim): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Query(params): Query<Params>,
    Path(rest): Path<String>,
) -> Response {
    let world = sim.world();
    let caller = match authenticate_caller(&sim, &world, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let cx = Cx {
        sim: &sim,
        uri: &uri,
        params: &params,
        caller: &caller,
        now: sim.clock.now(),
        surface: Surface::Groups,
        version: "v1.0",
    };
    list_policies(&cx, &world, &rest).unwrap_or_else(|f| f.render(&sim))
}

fn list_policies(cx: &Cx, world: &World, rest: &str) -> Answer {
    let assignments = if rest.eq_ignore_ascii_case("roleManagementPolicyAssignments") {
        true
    } else if rest.eq_ignore_ascii_case("roleManagementPolicies") {
        false
    } else {
        return Err(bad_request(
            "BadRequest",
            format!("Resource not found for the segment '{rest}'."),
        ));
    };
    let allowed: &[&'static str] = if assignments {
        &["scopeId", "scopeType", "roleDefinitionId"]
    } else {
        &["scopeId", "scopeType"]
    };
    let clauses = cx.clauses(allowed)?;
    let value = |name: &str| {
        clauses
            .iter()
            .find(|(p, _)| *p == name)
            .map(|(_, v)| v.clone())
    };
    let (Some(scope_id), Some(scope_type)) = (value("scopeId"), value("scopeType")) else {
        return Err(bad_request(
            "BadRequest",
            "The request must be scoped with a $filter on scopeId and scopeType (eq).",
        ));
    };
    let surface = if scope_type.eq_ignore_ascii_case("Group") {
        Surface::Groups
    } else if scope_type.eq_ignore_ascii_case("DirectoryRole") {
        Surface::Directory
    } else {
        return Err(bad_request(
            "Request_UnsupportedQuery",
            format!("The scopeType '{scope_type}' is not served here: use 'Group' (PIM for Groups) or 'DirectoryRole' (PIM for Entra roles)."),
        ));
    };
    let needs: &[&str] = match surface {
        Surface::Groups => &READ_POLICIES,
        Surface::Directory => &super::directory::READ_POLICIES,
    };
    if !has_any(&cx.caller.scopes, needs) {
        return Err(scope_not_granted(needs));
    }
    let expand = cx
        .params
        .get("$expand")
        .map(|e| e.replace(' ', "").to_ascii_lowercase());
    let (with_policy, with_rules) = match (assignments, expand.as_deref()) {
        (_, None | Some("")) => (false, false),
        (true, Some("policy")) => (true, false),
        (true, Some("policy($expand=rules)")) => (true, true),
        (false, Some("rules" | "effectiverules")) => (false, true),
        (_, Some(other)) => {
            return Err(bad_request(
                "BadRequest",
                format!(
                    "Parsing OData Select and Expand failed: '{other}' cannot be expanded here."
                ),
            ))
        }
    };
    let role = value("roleDefinitionId").map(|r| r.to_ascii_lowercase());
    // What the scope holds policies for, as (scope id, scope type, role definition id, the
    // PIM item's target and access): each built-in role tenant-wide, or a group's two
    // relationships.
    let targets: Vec<(String, &str, &str, String, &str)> =
        if surface == Surface::Directory && scope_id == "/" {
            crate::tenant::DIRECTORY_ROLES
                .iter()
                .map(|(_, id)| {
                    (
                        "/".into(),
                        "DirectoryRole",
                        *id,
                        id.to_string(),
                        DIRECTORY_ROLE,
                    )
                })
                .collect()
        } else {
            world
                .groups
                .iter()
                .find(|g| g.id.eq_ignore_ascii_case(&scope_id))
                .map(|g| {
                    crate::state::GROUP_ACCESS
                        .iter()
                        .map(|access| (g.id.clone(), "Group", *access, g.id.clone(), *access))
                        .collect()
                })
                .unwrap_or_default()
        };
    let mut items = Vec::new();
    for (scope, scope_type, role_id, target, access) in targets {
        if role.as_deref().is_some_and(|r| r != role_id) {
            continue;
        }
        let policy = world.group_policy(&target, access);
        let policy_json = policy_json(
            world,
            &policy,
            with_rules,
            expand.as_deref() == Some("effectiverules"),
        );
        if assignments {
            let mut item = json!({
                "id": format!("{}_{role_id}", policy.id),
                "policyId": policy.id,
                "scopeId": scope,
                "scopeType": scope_type,
                "roleDefinitionId": role_id,
            });
            if with_policy {
                item["policy"] = policy_json;
            }
            items.push(item);
        } else {
            items.push(policy_json);
        }
    }
    let context = if assignments {
        "policies/roleManagementPolicyAssignments"
    } else {
        "policies/roleManagementPolicies"
    };
    Ok(page(
        cx.sim,
        cx.uri,
        cx.params,
        world.tenant.page_size,
        context,
        items,
    ))
}

fn policy_json(world: &World, p: &GroupPolicy, with_rules: bool, effective: bool) -> Value {
    let directory = p.access == DIRECTORY_ROLE;
    let mut v = json!({
        "id": p.id,
        "displayName": if directory { "DirectoryRole" } else { "Group" },
        "description": if directory { "DirectoryRole" } else { "Group" },
        "isOrganizationDefault": false,
        "scopeId": if directory { "/" } else { p.group.as_str() },
        "scopeType": if directory { "DirectoryRole" } else { "Group" },
        "lastModifiedDateTime": null,
        "lastModifiedBy": {"displayName": null, "id": null},
    });
    if with_rules {
        v[if effective { "effectiveRules" } else { "rules" }] = json!(rules_json(world, p));
    }
    v
}

fn target(caller: &str, level: &str) -> Value {
    json!({"caller": caller, "operations": ["all"], "level": level, "inheritableSettings": [], "enforcedSettings": []})
}

fn notification(id: &str, recipient: &str, caller: &str, level: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyNotificationRule",
        "id": id,
        "notificationType": "Email",
        "recipientType": recipient,
        "notificationLevel": "All",
        "isDefaultRecipientsEnabled": true,
        "notificationRecipients": [],
        "target": target(caller, level),
    })
}

/// The seventeen rules of a group's policy, with their fixed ids; the end-user activation
/// rules carry the policy's settings, the others Microsoft's defaults.
fn rules_json(world: &World, p: &GroupPolicy) -> Vec<Value> {
    const EXPIRATION: &str = "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule";
    const ENABLEMENT: &str = "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule";
    let approvers: Vec<Value> = p
        .approvers
        .iter()
        .map(|oid| {
            json!({
                "@odata.type": "#microsoft.graph.singleUser",
                "userId": oid,
                "description": world.user_by_oid(oid).map(|u| u.name.clone()),
            })
        })
        .collect();
    let mut enabled = Vec::new();
    if p.mfa_required {
        enabled.push("MultiFactorAuthentication");
    }
    if p.justification_required {
        enabled.push("Justification");
    }
    if p.ticket_required {
        enabled.push("Ticketing");
    }
    vec![
        json!({"@odata.type": EXPIRATION, "id": "Expiration_Admin_Eligibility", "isExpirationRequired": true, "maximumDuration": "P365D", "target": target("Admin", "Eligibility")}),
        json!({"@odata.type": ENABLEMENT, "id": "Enablement_Admin_Eligibility", "enabledRules": [], "target": target("Admin", "Eligibility")}),
        notification(
            "Notification_Admin_Admin_Eligibility",
            "Admin",
            "Admin",
            "Eligibility",
        ),
        notification(
            "Notification_Requestor_Admin_Eligibility",
            "Requestor",
            "Admin",
            "Eligibility",
        ),
        notification(
            "Notification_Approver_Admin_Eligibility",
            "Approver",
            "Admin",
            "Eligibility",
        ),
        json!({"@odata.type": EXPIRATION, "id": "Expiration_Admin_Assignment", "isExpirationRequired": true, "maximumDuration": "P180D", "target": target("Admin", "Assignment")}),
        json!({"@odata.type": ENABLEMENT, "id": "Enablement_Admin_Assignment", "enabledRules": ["Justification"], "target": target("Admin", "Assignment")}),
        notification(
            "Notification_Admin_Admin_Assignment",
            "Admin",
            "Admin",
            "Assignment",
        ),
        notification(
            "Notification_Requestor_Admin_Assignment",
            "Requestor",
            "Admin",
            "Assignment",
        ),
        notification(
            "Notification_Approver_Admin_Assignment",
            "Approver",
            "Admin",
            "Assignment",
        ),
        json!({
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule",
            "id": "Approval_EndUser_Assignment",
            "target": target("EndUser", "Assignment"),
            "setting": {
                "isApprovalRequired": p.approval_required,
                "isApprovalRequiredForExtension": false,
                "isRequestorJustificationRequired": p.justification_required,
                "approvalMode": if p.approval_required { "SingleStage" } else { "NoApproval" },
                "approvalStages": [{
                    "approvalStageTimeOutInDays": p.timeout_days,
                    "isApproverJustificationRequired": p.approver_justification_required,
                    "escalationTimeInMinutes": 0,
                    "isEscalationEnabled": false,
                    "primaryApprovers": approvers,
                    "escalationApprovers": [],
                }],
            },
        }),
        json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyAuthenticationContextRule", "id": "AuthenticationContext_EndUser_Assignment", "isEnabled": false, "claimValue": null, "target": target("EndUser", "Assignment")}),
        json!({"@odata.type": ENABLEMENT, "id": "Enablement_EndUser_Assignment", "enabledRules": enabled, "target": target("EndUser", "Assignment")}),
        json!({"@odata.type": EXPIRATION, "id": "Expiration_EndUser_Assignment", "isExpirationRequired": true, "maximumDuration": p.max_duration, "target": target("EndUser", "Assignment")}),
        notification(
            "Notification_Admin_EndUser_Assignment",
            "Admin",
            "EndUser",
            "Assignment",
        ),
        notification(
            "Notification_Requestor_EndUser_Assignment",
            "Requestor",
            "EndUser",
            "Assignment",
        ),
        notification(
            "Notification_Approver_EndUser_Assignment",
            "Approver",
            "EndUser",
            "Assignment",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_decoded_and_functions_parsed() {
        assert_eq!(
            percent_decode("filterByCurrentUser(on=%27principal%27)"),
            "filterByCurrentUser(on='principal')"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(
            current_user_on("filterByCurrentUser(on='approver')").as_deref(),
            Some("approver")
        );
        assert_eq!(
            current_user_on("FilterByCurrentUser( on = 'principal' )").as_deref(),
            Some("principal")
        );
        assert_eq!(current_user_on("filterByCurrentUser"), None);
        assert_eq!(
            current_user_on("6aacaee8-4089-4048-9510-3119367fc943"),
            None
        );
    }

    #[test]
    fn policy_rules_name_every_failure() {
        let mut policy = GroupPolicy::default_for("g", "member");
        policy.ticket_required = true;
        policy.mfa_required = true;
        let body = json!({"justification": " ", "ticketInfo": {"ticketNumber": ""}});
        assert_eq!(
            failed_rules(&policy, Some(Duration::hours(9)), &body, false),
            [
                "ExpirationRule",
                "JustificationRule",
                "TicketingRule",
                "MfaRule"
            ]
        );
        let good = json!({"justification": "INC-1", "ticketInfo": {"ticketNumber": "T-1"}});
        assert!(failed_rules(&policy, Some(Duration::hours(8)), &good, true).is_empty());
        assert_eq!(failed_rules(&policy, None, &good, true), ["ExpirationRule"]);
        assert_eq!(
            failed_rules(&policy, Some(Duration::zero()), &good, true),
            ["ExpirationRule"]
        );
    }
}
