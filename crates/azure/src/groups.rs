//! PIM for Groups through Microsoft Graph v1.0 (`identityGovernance/privilegedAccess/group`):
//! the group memberships a person may activate, those in force, their requests, the group's
//! activation policy, and an approver's inbox and decisions. Answers are read into the same
//! types as Azure roles' ([`Eligible`], [`Active`], [`Request`], [`Pending`]) with
//! `kind: Group`, so everything downstream treats a group like a role: `role` is the group's
//! name, `scope` its object id, `role_definition_id` the access asked for (`member`).

use chrono::{DateTime, Utc};
use jumpgate_core::events::Elevation;
use jumpgate_core::policy::ActivationPolicy;
use reqwest::Method;
use serde_json::{json, Value};

use crate::arm::{s, time, Active, Eligible, Pending, Request};
use crate::error::{Error, Result};
use crate::http::{Arm, Repeat};

/// The delegated Microsoft Graph permissions PIM for Groups needs, least privileged for each
/// call: reading eligibilities; reading, requesting, cancelling and approving memberships;
/// reading the groups' activation policies.
pub const PERMISSIONS: [&str; 3] = [
    "PrivilegedEligibilitySchedule.Read.AzureADGroup",
    "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup",
    "RoleManagementPolicy.Read.AzureADGroup",
];

const BASE: &str = "/v1.0/identityGovernance/privilegedAccess/group";

/// The access Jumpgate activates: membership (owners manage a group, which opens nothing).
pub const MEMBER: &str = "member";

/// A query value, percent-encoded with spaces as `%20` (OData reads `+` literally).
pub(crate) fn q(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// An id from an answer, checked before it becomes part of a URL: Graph's object and
/// request ids are GUIDs or `{guid}_{access}_{guid}` strings of letters, digits, `-` and `_`.
pub(crate) fn id(value: &str, what: &str) -> Result<String> {
    let ok = !value.is_empty()
        && value.len() <= 200
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(value.to_string())
    } else {
        Err(Error::Unexpected {
            what: "Microsoft Graph".into(),
            detail: format!(
                "a {what} id in its answer is not an id ('{}'); nothing was sent to it",
                jumpgate_core::text::line(&value.chars().take(80).collect::<String>())
            ),
        })
    }
}

/// The group's display name from an item with `$expand=group`, or its id.
fn group_name(item: &Value) -> String {
    let name = s(item, "/group/displayName");
    if name.trim().is_empty() {
        s(item, "/groupId")
    } else {
        name
    }
}

/// The group memberships the user may activate.
pub async fn eligible(graph: &Arm) -> Result<Vec<Eligible>> {
    let items = graph
        .list(&format!(
            "{BASE}/eligibilityScheduleInstances/filterByCurrentUser(on='principal')?$expand=group"
        ))
        .await?;
    Ok(items
        .iter()
        .map(|i| Eligible {
            kind: Elevation::Group,
            role: group_name(i),
            role_definition_id: s(i, "/accessId"),
            scope: s(i, "/groupId"),
            scope_name: group_name(i),
            eligibility_schedule_id: s(i, "/eligibilityScheduleId"),
            eligible_until: time(i, "/endDateTime"),
        })
        .collect())
}

/// The user's group memberships in force (activated through PIM, or standing).
pub async fn active(graph: &Arm) -> Result<Vec<Active>> {
    let items = graph
        .list(&format!(
            "{BASE}/assignmentScheduleInstances/filterByCurrentUser(on='principal')?$expand=group"
        ))
        .await?;
    Ok(items
        .iter()
        .map(|i| {
            // Graph writes the enum in camelCase, its examples in PascalCase.
            let kind = s(i, "/assignmentType");
            Active {
                kind: Elevation::Group,
                role: group_name(i),
                role_definition_id: s(i, "/accessId"),
                scope: s(i, "/groupId"),
                assignment_type: if kind.eq_ignore_ascii_case("activated") {
                    "Activated".into()
                } else {
                    "Assigned".into()
                },
                start: time(i, "/startDateTime"),
                end: time(i, "/endDateTime"),
                principal_type: "User".into(),
                principal_id: s(i, "/principalId"),
                principal_name: String::new(),
            }
        })
        .collect())
}

/// A Graph `privilegedAccessGroupAssignmentScheduleRequest` as a [`Request`].
pub fn request_from_json(v: &Value) -> Request {
    request_with(
        v,
        Elevation::Group,
        group_name(v),
        s(v, "/accessId"),
        s(v, "/groupId"),
    )
}

/// A Graph PIM request (a group's, or an Entra role's) as a [`Request`], with what it is for
/// read by the caller.
pub(crate) fn request_with(
    v: &Value,
    kind: Elevation,
    role: String,
    role_definition_id: String,
    scope: String,
) -> Request {
    let ticket = {
        let (sys, num) = (
            s(v, "/ticketInfo/ticketSystem"),
            s(v, "/ticketInfo/ticketNumber"),
        );
        match (sys.is_empty(), num.is_empty()) {
            (_, true) => None,
            (true, false) => Some(num),
            (false, false) => Some(format!("{sys}:{num}")),
        }
    };
    // `selfActivate` reads as ARM's `SelfActivate`, so both kinds compare alike.
    let action = s(v, "/action");
    let mut chars = action.chars();
    let request_type = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    let principal_name = ["/principal/userPrincipalName", "/principal/displayName"]
        .iter()
        .map(|p| s(v, p))
        .chain([s(v, "/createdBy/user/displayName")])
        .find(|n| !n.trim().is_empty())
        .unwrap_or_else(|| s(v, "/principalId"));
    Request {
        kind,
        name: s(v, "/id"),
        scope,
        status: s(v, "/status"),
        request_type,
        role,
        role_definition_id,
        principal: s(v, "/principalId"),
        principal_name,
        approval_id: v
            .pointer("/approvalId")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .map(str::to_string),
        justification: v
            .pointer("/justification")
            .and_then(Value::as_str)
            .map(str::to_string),
        ticket,
        duration: v
            .pointer("/scheduleInfo/expiration/duration")
            .and_then(Value::as_str)
            .map(str::to_string),
        created: time(v, "/createdDateTime"),
    }
}

/// The user's own requests for group memberships.
pub async fn my_requests(graph: &Arm) -> Result<Vec<Request>> {
    let items = graph
        .list(&format!(
            "{BASE}/assignmentScheduleRequests/filterByCurrentUser(on='principal')?$expand=group"
        ))
        .await?;
    Ok(items.iter().map(request_from_json).collect())
}

pub async fn get_request(graph: &Arm, request: &str) -> Result<Request> {
    let request = id(request, "request")?;
    let v = graph
        .get(&format!(
            "{BASE}/assignmentScheduleRequests/{request}?$expand=group"
        ))
        .await?;
    Ok(request_from_json(&v))
}

/// What to send for a membership (or, to [`crate::directory`], an Entra role): its
/// activation or its deactivation.
pub struct Membership<'a> {
    /// The group's object id, or the Entra role's definition id.
    pub target: &'a str,
    pub principal: &'a str,
    pub access: &'a str,
    /// `selfActivate` or `selfDeactivate`.
    pub action: &'a str,
    pub duration_iso: Option<&'a str>,
    pub justification: &'a str,
    pub ticket: Option<(&'a str, &'a str)>,
}

/// Creates a request (`POST`). Graph gives it its id, so unlike ARM's PUT it is not
/// idempotent: it is sent again only when refused outright (429/503), and after a lost
/// answer the caller looks for it among its requests before sending another.
pub async fn post_request(graph: &Arm, m: &Membership<'_>, now: DateTime<Utc>) -> Result<Request> {
    let body = json!({
        "accessId": m.access,
        "principalId": m.principal,
        "groupId": id(m.target, "group")?,
        "action": m.action,
        "justification": m.justification,
    });
    let answer = post(
        graph,
        &format!("{BASE}/assignmentScheduleRequests"),
        body,
        m,
        now,
    )
    .await?;
    Ok(request_from_json(&answer))
}

/// POSTs a request with its schedule and ticket; the answer's body.
pub(crate) async fn post(
    graph: &Arm,
    path: &str,
    mut body: Value,
    m: &Membership<'_>,
    now: DateTime<Utc>,
) -> Result<Value> {
    if let Some(d) = m.duration_iso {
        body["scheduleInfo"] = json!({
            "startDateTime": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "expiration": {"type": "afterDuration", "duration": d},
        });
    }
    if let Some((system, number)) = m.ticket {
        body["ticketInfo"] = json!({"ticketSystem": system, "ticketNumber": number});
    }
    Ok(graph
        .call(Method::POST, path, Some(&body), Repeat::OnlyIfRefused)
        .await?
        .body)
}

pub async fn cancel_request(graph: &Arm, request: &str) -> Result<()> {
    let request = id(request, "request")?;
    graph
        .call(
            Method::POST,
            &format!("{BASE}/assignmentScheduleRequests/{request}/cancel"),
            None,
            Repeat::Safe,
        )
        .await
        .map(|_| ())
}

/// The activation policy of a group's membership (`member`) or ownership.
pub async fn activation_policy(graph: &Arm, group: &str, access: &str) -> Result<ActivationPolicy> {
    let filter = format!(
        "scopeId eq '{}' and scopeType eq 'Group' and roleDefinitionId eq '{}'",
        id(group, "group")?,
        id(access, "access")?
    );
    policy_of(
        graph,
        &filter,
        access,
        &format!("the {access} access of group {group}"),
    )
    .await
}

/// The activation policy a `roleManagementPolicyAssignments` filter finds for the role (or
/// access) `role`; `what` names it for an error.
pub(crate) async fn policy_of(
    graph: &Arm,
    filter: &str,
    role: &str,
    what: &str,
) -> Result<ActivationPolicy> {
    let items = graph
        .list(&format!(
            "/v1.0/policies/roleManagementPolicyAssignments?$filter={}&$expand={}",
            q(filter),
            q("policy($expand=rules)")
        ))
        .await?;
    let rules = items
        .iter()
        .find(|a| s(a, "/roleDefinitionId").eq_ignore_ascii_case(role))
        .and_then(|a| a["policy"]["rules"].as_array().cloned())
        .ok_or_else(|| Error::Unexpected {
            what: "Microsoft Graph".into(),
            detail: format!("it gave no activation policy for {what}; nothing was sent"),
        })?;
    Ok(ActivationPolicy::from_rules(&rules))
}

/// The approvals with a stage waiting for the user's review, as (approval, stage): one read.
pub async fn inbox(graph: &Arm) -> Result<Vec<(String, String)>> {
    let approvals = graph
        .list(&format!(
            "{BASE}/assignmentApprovals/filterByCurrentUser(on='approver')"
        ))
        .await?;
    Ok(waiting(&approvals, "stages"))
}

/// Of Graph approvals, those with a stage (`stages`, or beta's `steps`) assigned to the user
/// and not reviewed, as (approval, stage).
pub(crate) fn waiting(approvals: &[Value], stages: &str) -> Vec<(String, String)> {
    approvals
        .iter()
        .filter_map(|a| {
            let stage = a[stages].as_array().into_iter().flatten().find(|st| {
                st["assignedToMe"] == true
                    && st["reviewResult"]
                        .as_str()
                        .is_some_and(|r| r.eq_ignore_ascii_case("NotReviewed"))
            })?;
            Some((s(a, "/id"), s(stage, "/id")))
        })
        .collect()
}

/// The requests waiting for the user's decision, joined with their approvals: approvals
/// carry no requester or group, the requests do (an approval's id is its request's).
pub async fn approvals(graph: &Arm) -> Result<Vec<Pending>> {
    let inbox = inbox(graph).await?;
    if inbox.is_empty() {
        return Ok(Vec::new());
    }
    let requests: Vec<Request> = graph
        .list(&format!(
            "{BASE}/assignmentScheduleRequests/filterByCurrentUser(on='approver')?$expand=group"
        ))
        .await?
        .iter()
        .map(request_from_json)
        .collect();
    Ok(joined(inbox, &requests))
}

/// Approvals waiting for the user, each with its request.
pub(crate) fn joined(inbox: Vec<(String, String)>, requests: &[Request]) -> Vec<Pending> {
    inbox
        .into_iter()
        .filter_map(|(approval, stage_id)| {
            let request = requests.iter().find(|r| {
                r.approval_id
                    .as_deref()
                    .unwrap_or(&r.name)
                    .eq_ignore_ascii_case(&approval)
            })?;
            Some(Pending {
                approval_id: approval,
                stage_id,
                request: request.clone(),
            })
        })
        .collect()
}

fn stage_path(pending: &Pending) -> Result<String> {
    Ok(format!(
        "{BASE}/assignmentApprovals/{}/stages/{}",
        id(&pending.approval_id, "approval")?,
        id(&pending.stage_id, "stage")?
    ))
}

/// Records a decision on the stage assigned to the user (204).
pub async fn decide(
    graph: &Arm,
    pending: &Pending,
    approve: bool,
    justification: &str,
) -> Result<()> {
    patch_decision(graph, &stage_path(pending)?, approve, justification).await
}

/// PATCHes a decision to a stage (or beta's step) at `path`.
pub(crate) async fn patch_decision(
    graph: &Arm,
    path: &str,
    approve: bool,
    justification: &str,
) -> Result<()> {
    let body = json!({"reviewResult": if approve { "Approve" } else { "Deny" }, "justification": justification});
    graph
        .call(Method::PATCH, path, Some(&body), Repeat::Safe)
        .await
        .map(|_| ())
}

/// The stage as Graph has it now: after a decision, its `reviewResult` says whether the
/// decision was recorded.
pub async fn stage(graph: &Arm, pending: &Pending) -> Result<Value> {
    graph.get(&stage_path(pending)?).await
}

/// The stages of a request's approval, for who decided it and why.
pub async fn stages(graph: &Arm, approval: &str) -> Result<Vec<Value>> {
    let approval = id(approval, "approval")?;
    graph
        .list(&format!("{BASE}/assignmentApprovals/{approval}/stages"))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_answers_are_ids() {
        for good in [
            "9a7e0000-0000-4000-8000-00000000c0de",
            "2b5ed229-4072-478d-9504-a047ebd4b07d_member_6aacaee8-4089-4048-9510-3119367fc943",
        ] {
            assert_eq!(id(good, "x").ok().as_deref(), Some(good));
        }
        for bad in ["", "../x", "a/b", "a?b", "a b", "a%2f", "x@evil.example"] {
            assert!(id(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_graph_request_reads_like_an_arm_one() {
        let r = request_from_json(&json!({
            "id": "6aacaee8-4089-4048-9510-3119367fc943",
            "status": "PendingApproval",
            "action": "selfActivate",
            "accessId": "member",
            "principalId": "f2a4",
            "groupId": "9a7e",
            "approvalId": "6aacaee8-4089-4048-9510-3119367fc943",
            "justification": "Patch night",
            "ticketInfo": {"ticketNumber": "INC1", "ticketSystem": "ServiceNow"},
            "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "PT2H"}},
            "createdDateTime": "2026-12-06T07:00:00Z",
            "group": {"displayName": "JIT Operators"},
            "principal": {"userPrincipalName": "frank@contoso.example"}
        }));
        assert_eq!(r.kind, Elevation::Group);
        assert_eq!(
            (r.role.as_str(), r.scope.as_str(), r.request_type.as_str()),
            ("JIT Operators", "9a7e", "SelfActivate")
        );
        assert_eq!(r.principal_name, "frank@contoso.example");
        assert_eq!(r.ticket.as_deref(), Some("ServiceNow:INC1"));
        assert_eq!(r.duration.as_deref(), Some("PT2H"));
        // Without the group expanded, its id stands for its name.
        let bare = request_from_json(&json!({"id": "1", "groupId": "9a7e", "principalId": "p"}));
        assert_eq!(
            (bare.role.as_str(), bare.principal_name.as_str()),
            ("9a7e", "p")
        );
    }

    #[test]
    fn filters_encode_spaces_for_odata() {
        assert_eq!(q("scopeId eq 'g'"), "scopeId%20eq%20%27g%27");
        assert_eq!(q("a+b"), "a%2Bb");
    }
}
