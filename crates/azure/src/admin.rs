//! The admin workflow: onboard VMs into JIT policies, create the least-privilege requester
//! role, make a user eligible for it with an approver, and report who used access and who
//! holds access unused. What is sent is decided in `jumpgate_core::admin`; this module reads
//! and writes ARM (and looks users up in Microsoft Graph).

use chrono::{DateTime, Duration, Utc};
use jumpgate_core::admin::{self as decide, ActivationSettings, Approver, AuditRow, ReviewRow};
use jumpgate_core::duration::to_iso;
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::policy::ActivationPolicy;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::arm::{self, enc, leaf, s, time, COMPUTE, JIT, PIM};
use crate::engine::Engine;
use crate::http::Repeat;

/// Role definitions and assignments.
pub const ROLES: &str = "2022-04-01";
/// The Graph permission the user lookup needs.
/// The Graph permission the admin commands need, to look users up by name.
pub const GRAPH_PERMISSION: &str = "User.ReadBasic.All";

fn usage(message: impl Into<String>) -> Failure {
    Failure::usage(message)
}

/// A user in the directory.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub id: String,
    pub upn: String,
    pub name: String,
}

/// Looks a user up in Microsoft Graph by UPN or object id.
pub async fn find_user(engine: &Engine, key: &str) -> Result<Principal, Failure> {
    let key = key.trim();
    // A guest's UPN holds `#` (`erin_fabrikam.example#EXT#@contoso.example`): it is
    // percent-encoded below, like everything else in the key.
    if key.is_empty() || key.len() > 256 || key.contains(['/', '?', '\\']) {
        return Err(usage(format!(
            "'{key}' is not a user: give a user principal name (alice@contoso.com) or an object id"
        )));
    }
    let token = match engine
        .session
        .token_for(&engine.config.graph_scope(GRAPH_PERMISSION))
        .await
    {
        Ok(token) => token,
        Err(e) => {
            let refused: Failure = e.into();
            // Without consent to read users, an object id can still be used as given: PIM
            // checks it when the request arrives. A name cannot be looked up.
            if refused.explanation.kind == Kind::Denied && uuid::Uuid::parse_str(key).is_ok() {
                engine.publish(jumpgate_core::events::EngineEvent::Progress {
                    message: format!("Microsoft Graph may not be read (no consent): using the object id {key} as given, unchecked"),
                });
                return Ok(Principal {
                    id: key.to_string(),
                    upn: key.to_string(),
                    name: key.to_string(),
                });
            }
            return Err(refused);
        }
    };
    let url = format!(
        "{}/v1.0/users/{}?$select=id,displayName,userPrincipalName",
        engine.config.graph(),
        enc(key)
    );
    let response = crate::http::client()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| {
            Failure::new(
                Kind::Unavailable,
                "graph_unreachable",
                format!("cannot reach Microsoft Graph to look up '{key}': {e}"),
            )
        })?;
    let status = response.status().as_u16();
    let body: Value =
        match crate::http::read_capped(response, crate::http::TOKEN_CAP, "Microsoft Graph").await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(e) => return Err(e.into()),
        };
    match status {
        200 => Ok(Principal {
            id: s(&body, "/id"),
            upn: s(&body, "/userPrincipalName"),
            name: s(&body, "/displayName"),
        }),
        404 => Err(Failure::new(
            Kind::NotFound,
            "PrincipalNotFound",
            format!("No user '{key}' in the directory: check the name (UPN) or object id."),
        )),
        401 | 403 => Err(Failure::new(
            Kind::Denied,
            "graph_denied",
            format!(
                "Microsoft Graph refused to look up '{key}' ({}): the app needs the User.ReadBasic.All permission, or pass the user's object id.",
                s(&body, "/error/code")
            ),
        )),
        _ => Err(Failure::new(
            Kind::Unavailable,
            "graph_error",
            format!("Microsoft Graph answered {status} looking up '{key}': retry later."),
        )),
    }
}

/// A VM, as the admin commands need it.
#[derive(Debug, Clone, Serialize)]
pub struct Vm {
    pub name: String,
    pub id: String,
    pub location: String,
}

impl Vm {
    fn resource_group(&self) -> String {
        self.id
            .split("/providers/")
            .next()
            .unwrap_or("")
            .to_string()
    }
}

async fn find_vm(engine: &Engine, sub: &str, vm: &str) -> Result<Vm, Failure> {
    let v = engine
        .arm
        .list(&format!(
            "/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines?api-version={COMPUTE}"
        ))
        .await?;
    let all: Vec<Vm> = v
        .iter()
        .map(|x| Vm {
            name: s(x, "/name"),
            id: s(x, "/id"),
            location: s(x, "/location"),
        })
        .collect();
    all.iter()
        .find(|x| x.name.eq_ignore_ascii_case(vm) || x.id.eq_ignore_ascii_case(vm))
        .cloned()
        .ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "no_vm",
                format!(
                    "No VM named '{vm}' in subscription {sub}. Known: {}.",
                    all.iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

async fn jit_policies(engine: &Engine, sub: &str) -> Result<Vec<Value>, Failure> {
    let v = engine
        .arm
        .list(&format!(
            "/subscriptions/{sub}/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version={JIT}"
        ))
        .await?;
    Ok(v)
}

fn covers(policy: &Value, vm_id: &str) -> bool {
    policy["properties"]["virtualMachines"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| s(v, "/id").eq_ignore_ascii_case(vm_id))
}

/// One port to enable.
#[derive(Debug, Clone)]
pub struct PortSpec {
    pub number: u16,
    pub protocol: String,
}

/// What `jit enable` did.
#[derive(Debug, Clone, Serialize)]
pub struct JitChange {
    pub vm: String,
    pub policy: String,
    pub created: bool,
    pub ports: Vec<Value>,
}

/// Adds or updates port rules for a VM: read the policy that covers it (or the resource
/// group's policy in its region), change that VM's rules only, and PUT it back whole.
pub async fn jit_enable(
    engine: &Engine,
    vm: &str,
    ports: &[PortSpec],
    max: Duration,
    sources: &[String],
) -> Result<JitChange, Failure> {
    decide::check_max(max).map_err(|e| usage(e.0))?;
    let sources: Vec<String> = sources
        .iter()
        .map(|p| decide::check_source(p).map_err(|e| usage(e.0)))
        .collect::<Result<_, _>>()?;
    if ports.is_empty() {
        return Err(usage("give at least one --port, such as --port 3389/tcp"));
    }
    let sub = engine.subscription().await?;
    let vm = find_vm(engine, &sub, vm).await?;
    let policies = jit_policies(engine, &sub).await?;
    let existing = policies.iter().find(|p| covers(p, &vm.id)).or_else(|| {
        policies.iter().find(|p| {
            s(p, "/id").to_ascii_lowercase().starts_with(&format!(
                "{}/providers/microsoft.security/locations/{}/",
                vm.resource_group().to_ascii_lowercase(),
                vm.location.to_ascii_lowercase()
            ))
        })
    });
    let (id, mut vms, requests, created) = match existing {
        Some(p) => (
            s(p, "/id"),
            p["properties"]["virtualMachines"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            p["properties"]["requests"].clone(),
            false,
        ),
        None => (
            format!(
                "{}/providers/Microsoft.Security/locations/{}/jitNetworkAccessPolicies/default",
                vm.resource_group(),
                vm.location
            ),
            Vec::new(),
            Value::Null,
            true,
        ),
    };
    let rules: Vec<Value> = ports
        .iter()
        .map(|p| decide::port_rule(p.number, &p.protocol, max, &sources))
        .collect();
    decide::upsert_ports(&mut vms, &vm.id, &rules);
    let mut properties = json!({"virtualMachines": vms});
    if !requests.is_null() {
        properties["requests"] = requests;
    }
    let body = json!({"kind": "Basic", "properties": properties});
    engine
        .arm
        .call(
            Method::PUT,
            &format!("{id}?api-version={JIT}"),
            Some(&body),
            Repeat::Safe,
        )
        .await?;
    Ok(JitChange {
        vm: vm.name,
        policy: id,
        created,
        ports: rules,
    })
}

/// Removes a port (or all of a VM's ports) from the policy covering the VM; a policy left
/// with no VM is deleted.
pub async fn jit_disable(
    engine: &Engine,
    vm: &str,
    port: Option<u16>,
) -> Result<JitChange, Failure> {
    let sub = engine.subscription().await?;
    let vm = find_vm(engine, &sub, vm).await?;
    let policies = jit_policies(engine, &sub).await?;
    let policy = policies.iter().find(|p| covers(p, &vm.id)).ok_or_else(|| {
        Failure::new(
            Kind::NotFound,
            "not_enabled",
            format!("JIT is not enabled on {}: nothing to disable.", vm.name),
        )
    })?;
    let id = s(policy, "/id");
    let mut vms = policy["properties"]["virtualMachines"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !decide::remove_ports(&mut vms, &vm.id, port) {
        return Err(Failure::new(
            Kind::NotFound,
            "not_enabled",
            format!(
                "Port {} of {} is not in its JIT policy: nothing to disable.",
                port.map(|p| p.to_string()).unwrap_or_default(),
                vm.name
            ),
        ));
    }
    if vms.is_empty() {
        engine
            .arm
            .call(
                Method::DELETE,
                &format!("{id}?api-version={JIT}"),
                None,
                Repeat::Safe,
            )
            .await?;
    } else {
        let mut properties = json!({"virtualMachines": vms});
        if !policy["properties"]["requests"].is_null() {
            properties["requests"] = policy["properties"]["requests"].clone();
        }
        engine
            .arm
            .call(
                Method::PUT,
                &format!("{id}?api-version={JIT}"),
                Some(&json!({"kind": "Basic", "properties": properties})),
                Repeat::Safe,
            )
            .await?;
    }
    Ok(JitChange {
        vm: vm.name,
        policy: id,
        created: false,
        ports: Vec::new(),
    })
}

/// The JIT policies of the subscription, optionally only those covering one VM.
pub async fn jit_show(engine: &Engine, vm: Option<&str>) -> Result<Vec<Value>, Failure> {
    let sub = engine.subscription().await?;
    let policies = jit_policies(engine, &sub).await?;
    match vm {
        None => Ok(policies),
        Some(name) => {
            let vm = find_vm(engine, &sub, name).await?;
            Ok(policies.into_iter().filter(|p| covers(p, &vm.id)).collect())
        }
    }
}

/// What `role create-jit-requester` did.
#[derive(Debug, Clone, Serialize)]
pub struct RoleChange {
    pub id: String,
    pub name: String,
    pub created: bool,
}

/// Creates the requester role at `scope`, or updates the role of that name already there.
pub async fn create_requester_role(
    engine: &Engine,
    scope: &str,
    name: &str,
) -> Result<RoleChange, Failure> {
    let scope = check_scope(scope)?;
    let body = decide::requester_role(name, &scope);
    let filter = enc(&format!("roleName eq '{}'", name.replace('\'', "''")));
    let found = engine
        .arm
        .list(&format!(
            "{scope}/providers/Microsoft.Authorization/roleDefinitions?api-version={ROLES}&$filter={filter}"
        ))
        .await?;
    let existing = found
        .into_iter()
        .find(|r| s(r, "/properties/roleName").eq_ignore_ascii_case(name));
    if let Some(r) = &existing {
        if s(r, "/properties/type") != "CustomRole" {
            return Err(Failure::new(
                Kind::Conflict,
                "builtin_role",
                format!("'{name}' is a built-in role: choose another --name."),
            ));
        }
    }
    let guid = existing
        .as_ref()
        .map(|r| s(r, "/name"))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let answer = engine
        .arm
        .call(
            Method::PUT,
            &format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}?api-version={ROLES}"),
            Some(&body),
            Repeat::Safe,
        )
        .await?;
    Ok(RoleChange {
        id: s(&answer.body, "/id"),
        name: name.to_string(),
        created: existing.is_none(),
    })
}

/// A scope as ARM writes it: `/subscriptions/{id}` with an optional resource group.
pub fn check_scope(scope: &str) -> Result<String, Failure> {
    let scope = scope.trim().trim_end_matches('/');
    let parts: Vec<&str> = scope.split('/').collect();
    let guid_ok = |g: &str| uuid::Uuid::parse_str(g).is_ok();
    let ok = match parts.as_slice() {
        ["", "subscriptions", sub] => guid_ok(sub),
        ["", "subscriptions", sub, rg_word, rg] => {
            guid_ok(sub)
                && rg_word.eq_ignore_ascii_case("resourceGroups")
                && !rg.is_empty()
                && rg.len() <= 90
                && rg
                    .chars()
                    .all(|c| c.is_alphanumeric() || "-_.()".contains(c))
        }
        _ => false,
    };
    if ok {
        Ok(scope.to_string())
    } else {
        Err(usage(format!(
            "'{scope}' is not a scope: use /subscriptions/<id> or /subscriptions/<id>/resourceGroups/<name>"
        )))
    }
}

/// What `pim make-eligible` asks for.
#[derive(Debug, Clone)]
pub struct EligibleRequest {
    pub role: String,
    pub principal: String,
    pub scope: String,
    pub approvers: Vec<String>,
    pub max: Option<Duration>,
    pub require_justification: bool,
    pub require_ticket: bool,
    pub eligible_for: Duration,
}

/// What `pim make-eligible` did, and the policy now in force.
#[derive(Debug, Clone, Serialize)]
pub struct Eligibility {
    pub principal: Principal,
    pub role: String,
    pub role_definition_id: String,
    pub scope: String,
    pub already_eligible: bool,
    pub eligible_until: Option<DateTime<Utc>>,
    pub policy: ActivationPolicy,
}

async fn role_id(engine: &Engine, scope: &str, role: &str) -> Result<(String, String), Failure> {
    let filter = enc(&format!("roleName eq '{}'", role.replace('\'', "''")));
    let v = engine
        .arm
        .list(&format!(
            "{scope}/providers/Microsoft.Authorization/roleDefinitions?api-version={ROLES}&$filter={filter}"
        ))
        .await?;
    if let Some(r) = v
        .into_iter()
        .find(|r| s(r, "/properties/roleName").eq_ignore_ascii_case(role))
    {
        return Ok((s(&r, "/id"), s(&r, "/properties/roleName")));
    }
    // A role definition id (or its GUID).
    if uuid::Uuid::parse_str(leaf(role)).is_ok() {
        let v = engine
            .arm
            .get(&format!(
                "{scope}/providers/Microsoft.Authorization/roleDefinitions/{}?api-version={ROLES}",
                leaf(role)
            ))
            .await?;
        return Ok((s(&v, "/id"), s(&v, "/properties/roleName")));
    }
    Err(Failure::new(
        Kind::NotFound,
        "no_role",
        format!("No role named '{role}' is assignable at {scope}: create it first (jumpgate admin role create-jit-requester --scope ...)."),
    ))
}

/// Makes a user eligible for a role at a scope (`AdminAssign`), then sets the role's
/// activation policy there: approvers, maximum duration, justification and ticket.
pub async fn make_eligible(engine: &Engine, req: &EligibleRequest) -> Result<Eligibility, Failure> {
    let scope = check_scope(&req.scope)?;
    if req.eligible_for <= Duration::zero() {
        return Err(usage(
            "--eligible-for must be a positive duration, such as P365D",
        ));
    }
    if let Some(max) = req.max {
        if max < Duration::minutes(30) || max > Duration::hours(24) {
            return Err(usage(
                "--max must be between 30 minutes and 24 hours (PT30M to PT24H), as PIM allows for an activation",
            ));
        }
    }
    let principal = find_user(engine, &req.principal).await?;
    let mut approvers = Vec::new();
    for a in &req.approvers {
        let p = find_user(engine, a).await?;
        if p.id.eq_ignore_ascii_case(&principal.id) {
            return Err(usage(format!(
                "{} cannot approve their own activations: choose another --approver",
                p.upn
            )));
        }
        approvers.push(Approver {
            id: p.id,
            name: p.name,
        });
    }
    let (role_definition_id, role_name) = role_id(engine, &scope, &req.role).await?;
    let body = json!({"properties": {
        "principalId": principal.id,
        "roleDefinitionId": role_definition_id,
        "requestType": "AdminAssign",
        "justification": "Made eligible by jumpgate admin pim make-eligible",
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": to_iso(req.eligible_for)}},
    }});
    let path = format!(
        "{scope}/providers/Microsoft.Authorization/roleEligibilityScheduleRequests/{}?api-version={PIM}",
        uuid::Uuid::new_v4()
    );
    let already = match engine
        .arm
        .call(Method::PUT, &path, Some(&body), Repeat::Safe)
        .await
    {
        Ok(_) => false,
        Err(e) if e.arm_code() == Some("RoleAssignmentExists") => true,
        Err(e) => return Err(e.into()),
    };
    // The role's policy at this scope.
    let filter = enc(&format!("roleDefinitionId eq '{role_definition_id}'"));
    let v = engine
        .arm
        .list(&format!(
            "{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignments?api-version={PIM}&$filter={filter}"
        ))
        .await?;
    let policy_id = v
        .into_iter()
        .find(|a| {
            leaf(&s(a, "/properties/roleDefinitionId")).eq_ignore_ascii_case(leaf(&role_definition_id))
                && s(a, "/properties/scope").eq_ignore_ascii_case(&scope)
        })
        .map(|a| s(&a, "/properties/policyId"))
        .ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "no_policy",
                format!("PIM has no policy for {role_name} at {scope}: open the role in the portal's PIM blade once, then retry."),
            )
        })?;
    // The rules as they are now, so the PATCH changes only what was asked and never drops
    // a requirement already there (MFA, an authentication context).
    let current = engine
        .arm
        .get(&format!("{policy_id}?api-version={PIM}"))
        .await?;
    let current = current["properties"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rules = decide::activation_rules(
        &ActivationSettings {
            approvers,
            max: req.max,
            require_justification: req.require_justification,
            require_ticket: req.require_ticket,
        },
        &current,
    );
    let patched = engine
        .arm
        .call(
            Method::PATCH,
            &format!("{policy_id}?api-version={PIM}"),
            Some(&json!({"properties": {"rules": rules}})),
            Repeat::Safe,
        )
        .await?;
    let effective = patched.body["properties"]["effectiveRules"]
        .as_array()
        .or(patched.body["properties"]["rules"].as_array())
        .cloned()
        .unwrap_or_default();
    // The eligibility as PIM now has it.
    let instances = engine
        .arm
        .list(&format!(
            "{scope}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter={}",
            enc(&format!("principalId eq '{}'", principal.id))
        ))
        .await?;
    let until = instances
        .iter()
        .find(|i| {
            leaf(&s(i, "/properties/roleDefinitionId"))
                .eq_ignore_ascii_case(leaf(&role_definition_id))
        })
        .and_then(|i| time(i, "/properties/endDateTime"));
    Ok(Eligibility {
        principal,
        role: role_name,
        role_definition_id,
        scope,
        already_eligible: already,
        eligible_until: until,
        policy: ActivationPolicy::from_rules(&effective),
    })
}

/// Who requested what, when, why, who decided, and the outcome, at a scope: PIM requests and
/// the JIT policies' request history.
pub async fn audit(
    engine: &Engine,
    scope: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<AuditRow>, Failure> {
    let scope = check_scope(scope)?;
    let mut rows = Vec::new();
    // No $filter: requests at, above and below the scope. atScope() would leave out the
    // resource groups under a subscription.
    let requests = engine
        .arm
        .list(&format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests?api-version={PIM}"
        ))
        .await?;
    for r in requests {
        let request = arm::Request::from_json(&r);
        if since.is_some_and(|t| request.created.is_none_or(|c| c < t)) {
            continue;
        }
        let decision = match &request.approval_id {
            Some(_) => engine.decision(&request).await,
            None => None,
        };
        rows.push(AuditRow {
            time: request.created,
            source: "pim",
            who: request.principal_name.clone(),
            what: request.role.clone(),
            scope: request.scope.clone(),
            justification: request.justification.clone().unwrap_or_default(),
            duration: request.duration.clone().unwrap_or_default(),
            approver: decision
                .as_ref()
                .and_then(|d| d.approver.clone())
                .unwrap_or_default(),
            decision: match (&request.approval_id, &decision) {
                (None, _) => "no approval required".into(),
                (Some(_), Some(d)) => format!(
                    "{}{}",
                    if d.approved { "approved" } else { "denied" },
                    d.justification
                        .as_deref()
                        .map(|j| format!(": {j}"))
                        .unwrap_or_default()
                ),
                (Some(_), None) => "pending".into(),
            },
            outcome: format!("{} ({})", request.status, request.request_type),
        });
    }
    let sub = scope.split('/').nth(2).unwrap_or_default().to_string();
    for p in jit_policies(engine, &sub).await? {
        if !s(&p, "/id")
            .to_ascii_lowercase()
            .starts_with(&scope.to_ascii_lowercase())
        {
            continue;
        }
        for r in p["properties"]["requests"].as_array().into_iter().flatten() {
            let start = time(r, "/startTimeUtc");
            if since.is_some_and(|t| start.is_none_or(|c| c < t)) {
                continue;
            }
            for vm in r["virtualMachines"].as_array().into_iter().flatten() {
                for port in vm["ports"].as_array().into_iter().flatten() {
                    let end = time(port, "/endTimeUtc");
                    let source = s(port, "/allowedSourceAddressPrefix");
                    rows.push(AuditRow {
                        time: start,
                        source: "jit",
                        who: s(r, "/requestor"),
                        what: format!(
                            "{} port {}",
                            leaf(&s(vm, "/id")),
                            port["number"].as_u64().unwrap_or(0)
                        ),
                        scope: s(vm, "/id"),
                        justification: s(r, "/justification"),
                        duration: match (start, end) {
                            (Some(a), Some(b)) => to_iso(b - a),
                            _ => String::new(),
                        },
                        approver: String::new(),
                        decision: format!("granted for {source}"),
                        outcome: format!("{} ({})", s(port, "/status"), s(port, "/statusReason")),
                    });
                }
            }
        }
    }
    rows.sort_by_key(|r| r.time);
    Ok(rows)
}

/// Eligible assignments at a scope with their last activation; those unused within
/// `window` are flagged as candidates for removal.
pub async fn review(
    engine: &Engine,
    scope: &str,
    window: Duration,
) -> Result<Vec<ReviewRow>, Failure> {
    let scope = check_scope(scope)?;
    if window <= Duration::zero() {
        return Err(usage(
            "--unused-for must be a positive duration, such as 90d",
        ));
    }
    // Unfiltered lists: at, above and below the scope.
    let eligible = engine
        .arm
        .list(&format!(
            "{scope}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}"
        ))
        .await?;
    let requests = engine
        .arm
        .list(&format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests?api-version={PIM}"
        ))
        .await?;
    let activations: Vec<arm::Request> = requests
        .iter()
        .map(arm::Request::from_json)
        .filter(|r| {
            matches!(r.request_type.as_str(), "SelfActivate" | "SelfExtend")
                && jumpgate_core::phase::RequestPhase::of(&r.status)
                    == jumpgate_core::phase::RequestPhase::Approved
        })
        .collect();
    let now = engine.arm.clock.now();
    let mut rows = Vec::new();
    for e in eligible {
        let principal = s(&e, "/properties/principalId");
        let role_id = s(&e, "/properties/roleDefinitionId");
        let last = activations
            .iter()
            .filter(|r| {
                r.principal.eq_ignore_ascii_case(&principal)
                    && leaf(&r.role_definition_id).eq_ignore_ascii_case(leaf(&role_id))
            })
            .filter_map(|r| r.created)
            .max();
        let since = time(&e, "/properties/startDateTime");
        let (remove, reason) = decide::unused(now, window, since, last);
        let email = s(&e, "/properties/expandedProperties/principal/email");
        rows.push(ReviewRow {
            principal: if email.is_empty() { principal } else { email },
            role: s(
                &e,
                "/properties/expandedProperties/roleDefinition/displayName",
            ),
            scope: s(&e, "/properties/scope"),
            eligible_since: since,
            eligible_until: time(&e, "/properties/endDateTime"),
            last_activation: last,
            remove_candidate: remove,
            reason,
        });
    }
    Ok(rows)
}
