//! The ARM calls Jumpgate makes, as the specs in `../shared/azure-specs` write them.

use chrono::{DateTime, Utc};
use jumpgate_core::events::Elevation;
use jumpgate_core::policy::{ActivationPolicy, JitPortRule};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::http::{Arm, Repeat};

// The api-versions, each one deployed in every cloud Jumpgate may be pointed at (public Azure,
// US Government, China): a sovereign cloud refuses a version it does not have yet
// (`NoRegisteredProviderFound`), so the newest is not the best. README's "api-versions"
// section gives the reason for each.

/// PIM schedule requests, instances and policies: the only GA version.
pub const PIM: &str = "2020-10-01";
/// PIM approvals: no GA version exists.
pub const APPROVALS: &str = "2021-01-01-preview";
/// JIT network access policies: the only GA version.
pub const JIT: &str = "2020-01-01";
/// The version Azure CLI uses in every cloud.
pub const SUBSCRIPTIONS: &str = "2022-12-01";
/// Two years old, and what multi-cloud tools (Terraform's provider) use for VMs.
pub const COMPUTE: &str = "2024-03-01";
/// NICs and public IPs: what multi-cloud tools use (Terraform's provider, BOSH's CPI).
pub const NETWORK: &str = "2024-05-01";
/// Role definitions, role assignments and permissions: the GA default everywhere.
pub const PERMISSIONS: &str = "2022-04-01";

pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn s(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

pub fn time(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The last path segment of an ARM id.
pub fn leaf(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

pub async fn subscriptions(arm: &Arm) -> Result<Vec<String>> {
    Ok(named_subscriptions(arm)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

/// A subscription as ARM lists it: its id, and the name people know it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    /// `displayName`; empty when ARM gives none.
    pub name: String,
}

/// The subscriptions the user can see, with their display names.
pub async fn named_subscriptions(arm: &Arm) -> Result<Vec<Subscription>> {
    let v = arm
        .list(&format!("/subscriptions?api-version={SUBSCRIPTIONS}"))
        .await?;
    Ok(v.iter()
        .map(|s_| Subscription {
            id: s(s_, "/subscriptionId"),
            name: s(s_, "/displayName"),
        })
        .filter(|sub| !sub.id.is_empty())
        .collect())
}

/// A role the user may activate, or a group whose membership they may activate (PIM for
/// Groups, `kind: Group`: `role` is the group's name, `role_definition_id` the access asked
/// for, `member` or `owner`, and `scope` and `scope_name` the group's id and name), or an
/// Entra role (`kind: EntraRole`: `scope` is the directory scope, `/`).
#[derive(Debug, Clone, Serialize)]
pub struct Eligible {
    pub kind: Elevation,
    pub role: String,
    pub role_definition_id: String,
    pub scope: String,
    pub scope_name: String,
    pub eligibility_schedule_id: String,
    pub eligible_until: Option<DateTime<Utc>>,
}

pub async fn eligible_roles(arm: &Arm) -> Result<Vec<Eligible>> {
    let v = arm.list(&format!("/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()")).await?;
    Ok(v.iter()
        .map(|i| Eligible {
            kind: Elevation::Role,
            role: s(
                i,
                "/properties/expandedProperties/roleDefinition/displayName",
            ),
            role_definition_id: s(i, "/properties/roleDefinitionId"),
            scope: s(i, "/properties/scope"),
            scope_name: s(i, "/properties/expandedProperties/scope/displayName"),
            eligibility_schedule_id: s(i, "/properties/roleEligibilityScheduleId"),
            eligible_until: time(i, "/properties/endDateTime"),
        })
        .collect())
}

/// A role assignment in force for the user, or a group membership (`kind: Group`, named as
/// in [`Eligible`]).
#[derive(Debug, Clone, Serialize)]
pub struct Active {
    pub kind: Elevation,
    pub role: String,
    pub role_definition_id: String,
    pub scope: String,
    /// `Activated` through PIM, `Assigned` standing.
    pub assignment_type: String,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Who holds it: the user (`User`), or a group the user is a member of (`Group`), whose
    /// assignment ARM lists for its members.
    pub principal_type: String,
    pub principal_id: String,
    pub principal_name: String,
}

pub async fn active_roles(arm: &Arm) -> Result<Vec<Active>> {
    let v = arm.list(&format!("/providers/Microsoft.Authorization/roleAssignmentScheduleInstances?api-version={PIM}&$filter=asTarget()")).await?;
    Ok(v.iter()
        .map(|i| Active {
            kind: Elevation::Role,
            role: s(
                i,
                "/properties/expandedProperties/roleDefinition/displayName",
            ),
            role_definition_id: s(i, "/properties/roleDefinitionId"),
            scope: s(i, "/properties/scope"),
            assignment_type: s(i, "/properties/assignmentType"),
            start: time(i, "/properties/startDateTime"),
            end: time(i, "/properties/endDateTime"),
            principal_type: s(i, "/properties/principalType"),
            principal_id: s(i, "/properties/principalId"),
            principal_name: s(i, "/properties/expandedProperties/principal/displayName"),
        })
        .collect())
}

/// The Azure roles a principal (a group) holds at, above or below `scope`, as (role
/// definition id, scope). Reading them needs `Microsoft.Authorization/roleAssignments/read`
/// there, which someone only eligible for the group usually lacks: a 403 is the caller's to
/// weigh.
pub async fn role_assignments_of(
    arm: &Arm,
    scope: &str,
    principal: &str,
) -> Result<Vec<(String, String)>> {
    let filter = enc(&format!("principalId eq '{principal}'"));
    let v = arm
        .list(&format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments?api-version={PERMISSIONS}&$filter={filter}"
        ))
        .await?;
    Ok(v.iter()
        .filter(|a| s(a, "/properties/principalId").eq_ignore_ascii_case(principal))
        .map(|a| {
            (
                s(a, "/properties/roleDefinitionId"),
                s(a, "/properties/scope"),
            )
        })
        .collect())
}

/// The activation policy of a role at a scope. The `roleDefinitionId` filter is not declared
/// in the 2020-10-01 spec and compares whole ids, which ARM writes in more than one form
/// (`/subscriptions/…/roleDefinitions/{guid}`, `/providers/…/roleDefinitions/{guid}`): when
/// the filtered list holds nothing for the role, the whole list is read and matched by the
/// role's GUID. No policy at all is an error, never an empty policy that would let anything
/// through the pre-flight check.
pub async fn activation_policy(
    arm: &Arm,
    scope: &str,
    role_definition_id: &str,
) -> Result<ActivationPolicy> {
    let path = format!(
        "{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignments?api-version={PIM}"
    );
    let filter = enc(&format!("roleDefinitionId eq '{role_definition_id}'"));
    // The role's policy at this scope; failing that, the nearest above it. An unfiltered list
    // also holds the policies of other scopes (a management group's, above), which govern
    // activations there, not here.
    let wanted = scope.trim_end_matches('/').to_ascii_lowercase();
    let matching = |list: Vec<Value>| {
        list.into_iter()
            .filter(|a| {
                leaf(&s(a, "/properties/roleDefinitionId"))
                    .eq_ignore_ascii_case(leaf(role_definition_id))
            })
            .filter_map(|a| {
                let at = s(&a, "/properties/scope")
                    .trim_end_matches('/')
                    .to_ascii_lowercase();
                let here = at.is_empty() || at == wanted;
                let above = wanted.starts_with(&format!("{at}/"));
                (here || above).then_some((here, at.len(), a))
            })
            .max_by_key(|(here, len, _)| (*here, *len))
            .map(|(_, _, a)| a)
    };
    let found = match matching(arm.list(&format!("{path}&$filter={filter}")).await?) {
        Some(a) => Some(a),
        None => matching(arm.list(&path).await?),
    };
    let rules = found
        .and_then(|a| a["properties"]["effectiveRules"].as_array().cloned())
        .ok_or_else(|| Error::Unexpected {
            what: "Azure Resource Manager".into(),
            detail: format!(
                "it gave no activation policy for role {} at {scope}; nothing was sent",
                leaf(role_definition_id)
            ),
        })?;
    Ok(ActivationPolicy::from_rules(&rules))
}

/// A PIM request as Jumpgate shows it: for an Azure role, or for a group's membership
/// (`kind: Group`, named as in [`Eligible`]).
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub kind: Elevation,
    pub name: String,
    pub scope: String,
    pub status: String,
    pub request_type: String,
    pub role: String,
    pub role_definition_id: String,
    pub principal: String,
    pub principal_name: String,
    pub approval_id: Option<String>,
    pub justification: Option<String>,
    pub ticket: Option<String>,
    pub duration: Option<String>,
    pub created: Option<DateTime<Utc>>,
}

impl Request {
    pub fn from_json(v: &Value) -> Request {
        let ticket = {
            let (sys, num) = (
                s(v, "/properties/ticketInfo/ticketSystem"),
                s(v, "/properties/ticketInfo/ticketNumber"),
            );
            match (sys.is_empty(), num.is_empty()) {
                (_, true) => None,
                (true, false) => Some(num),
                (false, false) => Some(format!("{sys}:{num}")),
            }
        };
        Request {
            kind: Elevation::Role,
            name: s(v, "/name"),
            scope: s(v, "/properties/scope"),
            status: s(v, "/properties/status"),
            request_type: s(v, "/properties/requestType"),
            role: s(
                v,
                "/properties/expandedProperties/roleDefinition/displayName",
            ),
            role_definition_id: s(v, "/properties/roleDefinitionId"),
            principal: s(v, "/properties/principalId"),
            principal_name: {
                let email = s(v, "/properties/expandedProperties/principal/email");
                if email.is_empty() {
                    s(v, "/properties/expandedProperties/principal/displayName")
                } else {
                    email
                }
            },
            approval_id: v
                .pointer("/properties/approvalId")
                .and_then(Value::as_str)
                .map(|a| leaf(a).to_string()),
            justification: v
                .pointer("/properties/justification")
                .and_then(Value::as_str)
                .map(str::to_string),
            ticket,
            duration: v
                .pointer("/properties/scheduleInfo/expiration/duration")
                .and_then(Value::as_str)
                .map(str::to_string),
            created: time(v, "/properties/createdOn"),
        }
    }
}

/// What to send for an activation.
pub struct Activation<'a> {
    pub scope: &'a str,
    pub name: &'a str,
    pub principal: &'a str,
    pub role_definition_id: &'a str,
    pub eligibility_schedule_id: Option<&'a str>,
    pub request_type: &'a str,
    pub duration_iso: Option<&'a str>,
    pub justification: &'a str,
    pub ticket: Option<(&'a str, &'a str)>,
}

/// PUT to a client-chosen GUID. Sending it twice is safe: the second answers
/// `RoleAssignmentRequestExists`, and the caller reads the request by name.
pub async fn put_request(arm: &Arm, a: &Activation<'_>) -> Result<Request> {
    let mut props = json!({
        "principalId": a.principal,
        "roleDefinitionId": a.role_definition_id,
        "requestType": a.request_type,
        "justification": a.justification,
    });
    if let Some(d) = a.duration_iso {
        props["scheduleInfo"] = json!({"expiration": {"type": "AfterDuration", "duration": d}});
    }
    if let Some(id) = a.eligibility_schedule_id {
        props["linkedRoleEligibilityScheduleId"] = json!(id);
    }
    if let Some((system, number)) = a.ticket {
        props["ticketInfo"] = json!({"ticketSystem": system, "ticketNumber": number});
    }
    let path = format!(
        "{}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version={PIM}",
        a.scope, a.name
    );
    let answer = arm
        .call(
            Method::PUT,
            &path,
            Some(&json!({"properties": props})),
            Repeat::Safe,
        )
        .await?;
    Ok(Request::from_json(&answer.body))
}

pub async fn get_request(arm: &Arm, scope: &str, name: &str) -> Result<Request> {
    let v = arm.get(&format!("{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}?api-version={PIM}")).await?;
    Ok(Request::from_json(&v))
}

/// `asRequestor()` or `asApprover()`, across everything the user can see.
pub async fn list_requests(arm: &Arm, filter: &str) -> Result<Vec<Request>> {
    let v = arm.list(&format!("/providers/Microsoft.Authorization/roleAssignmentScheduleRequests?api-version={PIM}&$filter={filter}")).await?;
    Ok(v.iter().map(Request::from_json).collect())
}

pub async fn cancel_request(arm: &Arm, scope: &str, name: &str) -> Result<()> {
    let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}/cancel?api-version={PIM}");
    arm.call(Method::POST, &path, None, Repeat::Safe)
        .await
        .map(|_| ())
}

/// A request waiting for the user's decision, joined with its approval. Its kind is the
/// request's.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub approval_id: String,
    pub stage_id: String,
    pub request: Request,
}

/// The approvals with a stage waiting for the user's review, as (approval, stage): one read.
pub async fn approval_inbox(arm: &Arm) -> Result<Vec<(String, String)>> {
    let approvals = arm.list(&format!("/providers/Microsoft.Authorization/roleAssignmentApprovals?api-version={APPROVALS}&$filter=asApprover()")).await?;
    Ok(approvals
        .iter()
        .filter_map(|a| {
            let stage = a["properties"]["stages"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|st| {
                    st["properties"]["assignedToMe"] == true
                        && st["properties"]["reviewResult"] == "NotReviewed"
                })?;
            // The stage URL takes the last segment of the stage's `id`, which can differ
            // from its `name` (the official example has both, and PATCHes the id's).
            Some((s(a, "/name"), leaf(&s(stage, "/id")).to_string()))
        })
        .collect())
}

pub async fn approvals(arm: &Arm) -> Result<Vec<Pending>> {
    let inbox = approval_inbox(arm).await?;
    if inbox.is_empty() {
        return Ok(Vec::new());
    }
    // Approvals carry no requester, role or scope: join them with the requests.
    let requests = list_requests(arm, "asApprover()").await?;
    Ok(inbox
        .into_iter()
        .filter_map(|(id, stage_id)| {
            let request = requests.iter().find(|r| {
                r.approval_id
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(&id))
            })?;
            Some(Pending {
                approval_id: id,
                stage_id,
                request: request.clone(),
            })
        })
        .collect())
}

fn stage_path(pending: &Pending) -> String {
    format!(
        "/providers/Microsoft.Authorization/roleAssignmentApprovals/{}/stages/{}?api-version={APPROVALS}",
        pending.approval_id, pending.stage_id
    )
}

/// Records a decision on the stage assigned to the user. The body is the stage's properties
/// themselves, as the spec's body parameter (`RoleAssignmentApprovalStepProperties`) says; the
/// example's `{"properties": {…}}` wrapping is not what the spec declares.
pub async fn decide(
    arm: &Arm,
    pending: &Pending,
    approve: bool,
    justification: &str,
) -> Result<()> {
    let body = json!({"reviewResult": if approve { "Approve" } else { "Deny" }, "justification": justification});
    arm.call(
        Method::PATCH,
        &stage_path(pending),
        Some(&body),
        Repeat::Safe,
    )
    .await
    .map(|_| ())
}

/// The stage as ARM has it now.
pub async fn approval_stage(arm: &Arm, pending: &Pending) -> Result<Value> {
    arm.get(&stage_path(pending)).await
}

/// A VM with a JIT policy, and what Jumpgate needs to reach it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub vm: String,
    pub vm_id: String,
    pub policy_id: String,
    pub ports: Vec<JitPortRule>,
    /// The firewall address when the VM is behind Azure Firewall.
    pub firewall_ip: Option<String>,
    pub requests: Vec<Value>,
}

impl Target {
    /// The resource group scope of the VM.
    pub fn resource_group(&self) -> String {
        resource_group_of(&self.vm_id).to_string()
    }
}

/// The resource group scope of a resource id: what comes before its `/providers/`.
pub fn resource_group_of(id: &str) -> &str {
    id.split("/providers/").next().unwrap_or("")
}

pub async fn targets(arm: &Arm, subscription: &str) -> Result<Vec<Target>> {
    targets_at(arm, &format!("/subscriptions/{subscription}")).await
}

/// The JIT policies at a scope: a subscription (`JitNetworkAccessPolicies_List`) or a
/// resource group (`…_ListByResourceGroup`).
pub async fn targets_at(arm: &Arm, scope: &str) -> Result<Vec<Target>> {
    let v = arm
        .list(&format!(
            "{scope}/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version={JIT}"
        ))
        .await?;
    Ok(parse_targets(&v))
}

/// The newest rule a JIT policy's history holds for a VM port.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    pub port: u16,
    pub source: String,
    pub status: String,
    /// Why the rule has its status: `UserRequested`, `Expired`, `NewerRequestInitiated`.
    pub status_reason: String,
    pub end: Option<DateTime<Utc>>,
    pub mapped_port: Option<u16>,
    pub requestor: String,
    pub start: Option<DateTime<Utc>>,
}

pub fn latest_grant(target: &Target, port: u16) -> Option<Grant> {
    latest_grant_where(target, port, |_| true)
}

/// The newest rule for a VM port that `wanted` accepts: the person's own, say. On a shared
/// jump box a colleague's newer request must not hide one's own rule.
pub fn latest_grant_where(
    target: &Target,
    port: u16,
    wanted: impl Fn(&Grant) -> bool,
) -> Option<Grant> {
    let mut best: Option<Grant> = None;
    for grant in grants(target, port).into_iter().filter(|g| wanted(g)) {
        if best.as_ref().is_none_or(|b| grant.start >= b.start) {
            best = Some(grant);
        }
    }
    best
}

/// Every rule a JIT policy's history holds for a VM port, oldest request first.
pub fn grants(target: &Target, port: u16) -> Vec<Grant> {
    let mut all = Vec::new();
    for r in &target.requests {
        for vm in r["virtualMachines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| s(v, "/id").eq_ignore_ascii_case(&target.vm_id))
        {
            for p in vm["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["number"].as_u64() == Some(u64::from(port)))
            {
                let mut sources: Vec<String> = p["allowedSourceAddressPrefix"]
                    .as_str()
                    .map(str::to_string)
                    .into_iter()
                    .collect();
                sources.extend(
                    p["allowedSourceAddressPrefixes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str().map(str::to_string)),
                );
                let grant = Grant {
                    port,
                    source: sources.join(","),
                    status: s(p, "/status"),
                    status_reason: s(p, "/statusReason"),
                    end: time(p, "/endTimeUtc"),
                    mapped_port: p["mappedPort"].as_u64().and_then(|m| u16::try_from(m).ok()),
                    requestor: s(r, "/requestor"),
                    start: time(r, "/startTimeUtc"),
                };
                all.push(grant);
            }
        }
    }
    all
}

/// Sends JIT initiate. It is a POST and not idempotent, so it is repeated only when Azure
/// refused it outright (429/503); after a lost answer the caller re-reads the policy.
pub async fn initiate(
    arm: &Arm,
    target: &Target,
    port: u16,
    end: DateTime<Utc>,
    source: &str,
    justification: &str,
) -> Result<Value> {
    let body = json!({
        "virtualMachines": [{"id": target.vm_id, "ports": [{
            "number": port,
            "endTimeUtc": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "allowedSourceAddressPrefix": source,
        }]}],
        "justification": justification,
    });
    let path = format!("{}/initiate?api-version={JIT}", target.policy_id);
    Ok(arm
        .call(Method::POST, &path, Some(&body), Repeat::OnlyIfRefused)
        .await?
        .body)
}

pub async fn refresh_target(arm: &Arm, target: &Target) -> Result<Target> {
    let policy = arm
        .get(&format!("{}?api-version={JIT}", target.policy_id))
        .await?;
    let mut found = parse_targets(&[policy]);
    found.retain(|t| t.vm_id.eq_ignore_ascii_case(&target.vm_id));
    found.pop().ok_or_else(|| Error::Unexpected {
        what: "JIT".into(),
        detail: format!("the policy no longer covers {}", target.vm),
    })
}

pub fn parse_targets(policies: &[Value]) -> Vec<Target> {
    let mut out = Vec::new();
    for policy in policies {
        let policy_id = s(policy, "/id");
        for vm in policy["properties"]["virtualMachines"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let vm_id = s(vm, "/id");
            out.push(Target {
                vm: leaf(&vm_id).to_string(),
                vm_id: vm_id.clone(),
                policy_id: policy_id.clone(),
                ports: vm["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(JitPortRule::from_json)
                    .collect(),
                firewall_ip: vm["publicIpAddress"].as_str().map(str::to_string),
                requests: policy["properties"]["requests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| {
                        r["virtualMachines"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|rv| s(rv, "/id").eq_ignore_ascii_case(&vm_id))
                    })
                    .cloned()
                    .collect(),
            });
        }
    }
    out
}

/// The VM's public IP address, through its NIC.
pub async fn public_address(arm: &Arm, vm_id: &str) -> Result<Option<String>> {
    let vm = arm.get(&format!("{vm_id}?api-version={COMPUTE}")).await?;
    for nic in vm["properties"]["networkProfile"]["networkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let nic = arm
            .get(&format!("{}?api-version={NETWORK}", s(nic, "/id")))
            .await?;
        for cfg in nic["properties"]["ipConfigurations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let pip = s(cfg, "/properties/publicIPAddress/id");
            if pip.is_empty() {
                continue;
            }
            let pip = arm.get(&format!("{pip}?api-version={NETWORK}")).await?;
            let address = s(&pip, "/properties/ipAddress");
            if !address.is_empty() {
                return Ok(Some(address));
            }
        }
    }
    Ok(None)
}

/// The caller's effective permissions on a resource.
pub async fn permissions(arm: &Arm, resource: &str) -> Result<Vec<Value>> {
    arm.list(&format!(
        "{resource}/providers/Microsoft.Authorization/permissions?api-version={PERMISSIONS}"
    ))
    .await
}
