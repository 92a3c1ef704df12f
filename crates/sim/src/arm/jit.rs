//! Defender for Cloud just-in-time VM access (`Microsoft.Security/jitNetworkAccessPolicies`,
//! api-version 2020-01-01): policies, and `initiate`, which opens a port for a source prefix
//! until an end time.

use std::net::{IpAddr, Ipv4Addr};

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ok, page, ArmResult, Call};
use crate::clock::arm_time;
use crate::duration;
use crate::error::ArmError;
use crate::state::{
    parse_time, AssignmentOrigin, JitPolicy, JitRequest, JitRequestPort, JitRequestVm, JitVm,
    SourcePrefixes, World,
};

const READ: &str = "Microsoft.Security/locations/jitNetworkAccessPolicies/read";
const WRITE: &str = "Microsoft.Security/locations/jitNetworkAccessPolicies/write";
const DELETE: &str = "Microsoft.Security/locations/jitNetworkAccessPolicies/delete";
const INITIATE: &str = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action";
/// How far past the policy maximum a requested end time may lie, for clocks that differ.
const END_TIME_SLACK_SECS: i64 = 60;

/// An IPv4 address or CIDR block, or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Any,
    Net(Ipv4Addr, u8),
}

impl Prefix {
    pub fn parse(text: &str) -> Option<Prefix> {
        let text = text.trim();
        if text == "*" {
            return Some(Prefix::Any);
        }
        let (ip, len) = match text.split_once('/') {
            Some((ip, len)) => (ip, len.parse::<u8>().ok().filter(|l| *l <= 32)?),
            None => (text, 32),
        };
        Some(Prefix::Net(ip.parse().ok()?, len))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4,
                None => return matches!(self, Prefix::Any),
            },
        };
        match self {
            Prefix::Any => true,
            Prefix::Net(net, len) => {
                let mask = if *len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(*len))
                };
                u32::from(*net) & mask == u32::from(ip) & mask
            }
        }
    }
}

fn policy_matches(
    p: &JitPolicy,
    sub: &str,
    rg: Option<&str>,
    location: Option<&str>,
    name: Option<&str>,
) -> bool {
    p.subscription.eq_ignore_ascii_case(sub)
        && rg.is_none_or(|rg| p.resource_group.eq_ignore_ascii_case(rg))
        && location.is_none_or(|l| p.location.eq_ignore_ascii_case(l))
        && name.is_none_or(|n| p.name.eq_ignore_ascii_case(n))
}

fn not_found(name: &str) -> ArmError {
    ArmError::not_found(
        "ResourceNotFound",
        format!("The Resource 'Microsoft.Security/locations/jitNetworkAccessPolicies/{name}' was not found."),
    )
}

pub fn handle(
    call: &Call,
    sub: &str,
    rg: Option<&str>,
    location: Option<&str>,
    name: Option<&str>,
    action: Option<&str>,
    not_allowed: impl Fn() -> ArmError,
) -> ArmResult {
    match (rg, location, name, action, &call.method) {
        (_, _, None, None, &Method::GET) => list_policies(call, sub, rg, location),
        (Some(rg), Some(location), Some(name), None, &Method::GET) => {
            let world = call.sim.world();
            let p = world
                .jit_policies
                .iter()
                .find(|p| policy_matches(p, sub, Some(rg), Some(location), Some(name)))
                .ok_or_else(|| not_found(name))?;
            call.require(&world, READ, &p.id())?;
            Ok(ok(p.to_json()))
        }
        (Some(rg), Some(location), Some(name), None, &Method::PUT) => {
            put_policy(call, sub, rg, location, name)
        }
        (Some(rg), Some(location), Some(name), None, &Method::DELETE) => {
            delete_policy(call, sub, rg, location, name)
        }
        (Some(rg), Some(location), Some(name), Some(action), &Method::POST)
            if action.eq_ignore_ascii_case("initiate") =>
        {
            initiate(call, sub, rg, location, name)
        }
        _ => Err(not_allowed()),
    }
}

fn list_policies(call: &Call, sub: &str, rg: Option<&str>, location: Option<&str>) -> ArmResult {
    let world = call.sim.world();
    let now = call.sim.clock.now();
    let scope = match rg {
        Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}"),
        None => format!("/subscriptions/{sub}"),
    };
    if !world
        .subscriptions
        .iter()
        .any(|s| s.id.eq_ignore_ascii_case(sub))
    {
        return Err(ArmError::not_found(
            "SubscriptionNotFound",
            format!("The subscription '{sub}' could not be found."),
        ));
    }
    let readable: Vec<Value> = world
        .jit_policies
        .iter()
        .filter(|p| policy_matches(p, sub, rg, location, None))
        .filter(|p| world.is_permitted_any(&call.caller.principals, READ, &p.id(), now))
        .map(JitPolicy::to_json)
        .collect();
    // A caller with no read access anywhere under the scope is refused, as ARM refuses a list
    // at a scope the caller cannot see; one who can read some policies gets those.
    if readable.is_empty() && !world.is_permitted_any(&call.caller.principals, READ, &scope, now) {
        let can_see_below = world
            .role_assignments
            .iter()
            .any(|ra| call.caller.is(&ra.principal) && world.scope_contains(&scope, &ra.scope));
        if !can_see_below {
            return Err(ArmError::authorization_failed(
                &call.caller.upn,
                &call.caller.oid,
                READ,
                &scope,
            ));
        }
    }
    page(call, &world, "jitNetworkAccessPolicies", readable)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyBody {
    #[serde(default)]
    kind: Option<String>,
    properties: PolicyProperties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyProperties {
    virtual_machines: Vec<JitVm>,
    #[serde(default)]
    requests: Vec<JitRequest>,
}

fn validate_prefix(text: &str, what: &str) -> Result<(), ArmError> {
    Prefix::parse(text).map(|_| ()).ok_or_else(|| {
        ArmError::bad_request(
            "InvalidSourceAddressPrefix",
            format!("{what} '{text}' is not valid: use '*', an IPv4 address such as 203.0.113.7, or an IPv4 CIDR block such as 203.0.113.0/24."),
        )
    })
}

fn put_policy(call: &Call, sub: &str, rg: &str, location: &str, name: &str) -> ArmResult {
    let body: PolicyBody =
        serde_json::from_value(call.json()?).map_err(ArmError::invalid_content)?;
    let now = call.sim.clock.now();
    {
        let mut world = call.sim.world();
        if !world
            .subscriptions
            .iter()
            .any(|s| s.id.eq_ignore_ascii_case(sub))
        {
            return Err(ArmError::not_found(
                "SubscriptionNotFound",
                format!("The subscription '{sub}' could not be found."),
            ));
        }
        let probe = JitPolicy {
            name: name.into(),
            subscription: sub.into(),
            resource_group: rg.into(),
            location: location.into(),
            kind: String::new(),
            vms: Vec::new(),
            requests: Vec::new(),
        };
        call.require(&world, WRITE, &probe.id())?;
        if body.properties.virtual_machines.is_empty() {
            return Err(ArmError::bad_request(
                "InvalidJitPolicy",
                "properties.virtualMachines must list at least one VM.",
            ));
        }
        for vm in &body.properties.virtual_machines {
            if !world
                .vms
                .iter()
                .any(|v| v.id().eq_ignore_ascii_case(&vm.id))
                && !vm
                    .id
                    .to_ascii_lowercase()
                    .contains("/providers/microsoft.compute/virtualmachines/")
            {
                return Err(ArmError::bad_request(
                    "InvalidJitPolicy",
                    format!("'{}' is not a virtual machine resource id.", vm.id),
                ));
            }
            if vm.ports.is_empty() {
                return Err(ArmError::bad_request(
                    "InvalidJitPolicy",
                    format!("VM '{}' must list at least one port.", vm.id),
                ));
            }
            for port in &vm.ports {
                if !(0..=65535).contains(&port.number) {
                    return Err(ArmError::bad_request(
                        "InvalidJitPolicy",
                        format!("Port {} is out of range 0-65535.", port.number),
                    ));
                }
                if !["TCP", "UDP", "*"].contains(&port.protocol.to_ascii_uppercase().as_str()) {
                    return Err(ArmError::bad_request(
                        "InvalidJitPolicy",
                        format!("Protocol '{}' must be TCP, UDP or *.", port.protocol),
                    ));
                }
                let max = duration::parse(&port.max_request_access_duration).ok_or_else(|| {
                    ArmError::bad_request("InvalidJitPolicy", format!("maxRequestAccessDuration '{}' is not an ISO 8601 duration such as PT3H.", port.max_request_access_duration))
                })?;
                if max < Duration::minutes(5) || max > Duration::days(1) {
                    return Err(ArmError::bad_request(
                        "InvalidJitPolicy",
                        format!(
                            "maxRequestAccessDuration '{}' must be between PT5M and P1D.",
                            port.max_request_access_duration
                        ),
                    ));
                }
                let sources = port.sources.all();
                if sources.is_empty() {
                    return Err(ArmError::bad_request("InvalidJitPolicy", format!("Port {} needs allowedSourceAddressPrefix or allowedSourceAddressPrefixes.", port.number)));
                }
                for s in &sources {
                    validate_prefix(s, "allowedSourceAddressPrefix")?;
                }
            }
        }
        let existing = world
            .jit_policies
            .iter()
            .position(|p| policy_matches(p, sub, Some(rg), Some(location), Some(name)));
        // A PUT that carries request history stores it, as the official example shows; one
        // that leaves it out (an admin changing rules) keeps the service's record.
        let requests = match existing {
            Some(i) if body.properties.requests.is_empty() => {
                world.jit_policies[i].requests.clone()
            }
            _ => body.properties.requests,
        };
        let mut vms = body.properties.virtual_machines;
        for vm in &mut vms {
            vm.public_ip_address = None;
        }
        let policy = JitPolicy {
            name: name.into(),
            subscription: sub.into(),
            resource_group: rg.into(),
            location: location.into(),
            kind: body.kind.unwrap_or_else(|| "Basic".into()),
            vms,
            requests,
        };
        match existing {
            Some(i) => world.jit_policies[i] = policy,
            None => world.jit_policies.push(policy),
        }
        world.record(
            now,
            "jit.policy_written",
            json!({"policy": name, "by": call.caller.upn}),
        );
    }
    crate::gate::reconcile(call.sim);
    let world = call.sim.world();
    let p = world
        .jit_policies
        .iter()
        .find(|p| policy_matches(p, sub, Some(rg), Some(location), Some(name)))
        .ok_or_else(|| not_found(name))?;
    Ok(ok(p.to_json()))
}

fn delete_policy(call: &Call, sub: &str, rg: &str, location: &str, name: &str) -> ArmResult {
    let now = call.sim.clock.now();
    {
        let mut world = call.sim.world();
        let scope = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{location}/jitNetworkAccessPolicies/{name}");
        call.require(&world, DELETE, &scope)?;
        let before = world.jit_policies.len();
        world
            .jit_policies
            .retain(|p| !policy_matches(p, sub, Some(rg), Some(location), Some(name)));
        if world.jit_policies.len() == before {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        world.record(
            now,
            "jit.policy_deleted",
            json!({"policy": name, "by": call.caller.upn}),
        );
    }
    crate::gate::reconcile(call.sim);
    Ok(StatusCode::OK.into_response())
}

/// One activation an initiate's permission comes from, fresh enough for ARM's cache not to
/// know it yet.
enum Fresh {
    Role(String),
    Group(String),
}

/// ARM's authorization cache: within the tenant's `first_initiate_refused_secs` after an
/// activation takes effect (a role's `effective_at`, a group membership's provisioning), the
/// first initiate whose permission comes only from such activations is refused with Azure's
/// 403, once per activation; the next one goes through.
fn refuse_while_cached(
    call: &Call,
    world: &mut World,
    policy_id: &str,
    now: DateTime<Utc>,
) -> Result<(), ArmError> {
    let window = Duration::seconds(world.tenant.first_initiate_refused_secs as i64);
    if window <= Duration::zero() {
        return Ok(());
    }
    let me = call.caller.oid.as_str();
    let mut fresh = Vec::new();
    for ra in world.granting(&call.caller.principals, INITIATE, policy_id, now) {
        if ra.principal.eq_ignore_ascii_case(me) {
            match ra.origin {
                AssignmentOrigin::Activated { effective_at, .. }
                    if now < effective_at + window && !ra.initiate_refused =>
                {
                    fresh.push(Fresh::Role(ra.guid.clone()));
                }
                // A grant ARM has long known: the cache is no obstacle.
                _ => return Ok(()),
            }
        } else {
            // A group's assignment is as fresh as the caller's membership of the group.
            let standing = world
                .group(&ra.principal)
                .is_some_and(|g| g.members.iter().any(|m| m.eq_ignore_ascii_case(me)));
            let activation = world.group_activations.iter().find(|a| {
                a.group.eq_ignore_ascii_case(&ra.principal)
                    && a.access == "member"
                    && a.principal.eq_ignore_ascii_case(me)
                    && a.start <= now
                    && now < a.end
            });
            match (standing, activation) {
                (false, Some(a)) if now < a.start + window && !a.initiate_refused => {
                    fresh.push(Fresh::Group(a.id.clone()));
                }
                _ => return Ok(()),
            }
        }
    }
    if fresh.is_empty() {
        return Ok(());
    }
    let mut activations = Vec::new();
    for source in &fresh {
        match source {
            Fresh::Role(guid) => {
                for ra in world
                    .role_assignments
                    .iter_mut()
                    .filter(|ra| &ra.guid == guid)
                {
                    ra.initiate_refused = true;
                }
                activations.push(json!({"roleAssignment": guid}));
            }
            Fresh::Group(id) => {
                for a in world.group_activations.iter_mut().filter(|a| &a.id == id) {
                    a.initiate_refused = true;
                }
                activations.push(json!({"groupMembership": id}));
            }
        }
    }
    world.record(
        now,
        "jit.initiate_refused_cache",
        json!({"policy": policy_id, "requestor": call.caller.upn, "activations": activations}),
    );
    Err(ArmError::authorization_failed(
        &call.caller.upn,
        me,
        INITIATE,
        policy_id,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitiateBody {
    virtual_machines: Vec<InitiateVm>,
    #[serde(default)]
    justification: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitiateVm {
    id: String,
    ports: Vec<InitiatePort>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitiatePort {
    number: i64,
    end_time_utc: String,
    #[serde(default)]
    allowed_source_address_prefix: Option<String>,
    #[serde(default)]
    allowed_source_address_prefixes: Option<Vec<String>>,
}

fn initiate(call: &Call, sub: &str, rg: &str, location: &str, name: &str) -> ArmResult {
    let body: InitiateBody =
        serde_json::from_value(call.json()?).map_err(ArmError::invalid_content)?;
    let now = call.sim.clock.now();
    let mut world = call.sim.world();
    let index = world
        .jit_policies
        .iter()
        .position(|p| policy_matches(p, sub, Some(rg), Some(location), Some(name)))
        .ok_or_else(|| not_found(name))?;
    let policy_id = world.jit_policies[index].id();
    call.require(&world, INITIATE, &policy_id)?;
    refuse_while_cached(call, &mut world, &policy_id, now)?;
    if body.justification.as_ref().is_some_and(|j| j.len() > 1024) {
        return Err(ArmError::invalid_content(
            "justification is longer than 1024 characters",
        ));
    }
    if body.virtual_machines.is_empty() || body.virtual_machines.iter().any(|v| v.ports.is_empty())
    {
        return Err(ArmError::invalid_content(
            "virtualMachines and each VM's ports must not be empty",
        ));
    }
    let not_subset = |detail: String| {
        ArmError::bad_request(
            "BadRequest",
            format!("The given access request is not a subset of policy '{policy_id}'. Please make sure that the access request is within the allowed policy properties. ({detail})"),
        )
    };
    // With an activation delay the request is accepted as `Initiating`, and its rules take
    // effect (`Initiated`) when `World::tick` sees the delay has passed.
    let delayed = world.tenant.jit_activation_delay_secs > 0;
    let status = if delayed { "Initiating" } else { "Initiated" };
    let mut granted = Vec::new();
    for vm in &body.virtual_machines {
        let policy_vm = world.jit_policies[index]
            .vms
            .iter()
            .find(|v| v.id.eq_ignore_ascii_case(&vm.id))
            .ok_or_else(|| not_subset(format!("virtual machine '{}' is not in the policy", vm.id)))?
            .clone();
        let mut ports = Vec::new();
        for port in &vm.ports {
            let rule = policy_vm
                .ports
                .iter()
                .find(|r| r.number == port.number)
                .ok_or_else(|| {
                    not_subset(format!(
                        "port {} is not in the policy for this VM",
                        port.number
                    ))
                })?;
            let end = parse_time(&port.end_time_utc).ok_or_else(|| {
                ArmError::invalid_content(format!(
                    "endTimeUtc '{}' is not an ISO 8601 UTC time",
                    port.end_time_utc
                ))
            })?;
            let max = duration::parse(&rule.max_request_access_duration)
                .unwrap_or_else(|| Duration::hours(3));
            if end <= now {
                return Err(not_subset(format!(
                    "endTimeUtc {} is not in the future",
                    port.end_time_utc
                )));
            }
            if end - now > max + Duration::seconds(END_TIME_SLACK_SECS) {
                return Err(not_subset(format!(
                    "port {} allows at most {}, and endTimeUtc is {} away",
                    port.number,
                    rule.max_request_access_duration,
                    duration::format(end - now)
                )));
            }
            let requested: Vec<String> =
                match (
                    &port.allowed_source_address_prefix,
                    &port.allowed_source_address_prefixes,
                ) {
                    (Some(p), None) => vec![p.clone()],
                    (None, Some(ps)) if !ps.is_empty() => ps.clone(),
                    (None, None) => vec![call.source.to_string()],
                    _ => return Err(ArmError::invalid_content(
                        "give allowedSourceAddressPrefix or allowedSourceAddressPrefixes, not both",
                    )),
                };
            let allowed = rule.sources.all();
            for r in &requested {
                validate_prefix(r, "allowedSourceAddressPrefix")?;
                // JIT accepts any prefix under a '*' rule, and otherwise only a prefix the
                // policy lists verbatim: a single address inside an allowed CIDR is refused.
                let ok = allowed
                    .iter()
                    .any(|a| a.trim() == "*" || Prefix::parse(a) == Prefix::parse(r));
                if !ok {
                    return Err(not_subset(format!(
                        "source '{r}' is not one of the prefixes the policy allows for port {}: {}",
                        port.number,
                        allowed.join(", ")
                    )));
                }
            }
            let sources = if requested.len() == 1 && port.allowed_source_address_prefixes.is_none()
            {
                SourcePrefixes {
                    allowed_source_address_prefix: Some(requested[0].clone()),
                    allowed_source_address_prefixes: None,
                }
            } else {
                SourcePrefixes {
                    allowed_source_address_prefix: None,
                    allowed_source_address_prefixes: Some(requested),
                }
            };
            ports.push(JitRequestPort {
                number: port.number,
                sources,
                end_time_utc: arm_time(end),
                status: status.into(),
                status_reason: "UserRequested".into(),
                mapped_port: call
                    .sim
                    .gate
                    .mapped_port(&policy_vm.id, port.number)
                    .map(i64::from),
            });
        }
        granted.push(JitRequestVm {
            id: policy_vm.id.clone(),
            ports,
        });
    }
    let request = JitRequest {
        virtual_machines: granted,
        start_time_utc: arm_time(now),
        requestor: call.caller.upn.clone(),
        justification: body.justification,
    };
    world.jit_policies[index].requests.push(request.clone());
    if !delayed {
        let newest = world.jit_policies[index].requests.len() - 1;
        let revoked = world.jit_policies[index].revoke_superseded(newest);
        for (vm, port) in revoked {
            world.record(
                now,
                "jit.revoked",
                json!({"vm": vm, "port": port, "reason": "NewerRequestInitiated"}),
            );
        }
    }
    for vm in &request.virtual_machines {
        for port in &vm.ports {
            world.record(
                now,
                if delayed {
                    "jit.initiating"
                } else {
                    "jit.initiated"
                },
                json!({"vm": vm.id, "port": port.number, "source": port.sources.all(), "end": port.end_time_utc, "requestor": call.caller.upn}),
            );
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::to_value(&request).unwrap_or(Value::Null)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_contain() {
        let p = Prefix::parse("10.1.0.0/16").expect("valid");
        assert!(p.contains("10.1.200.3".parse().expect("ip")));
        assert!(!p.contains("10.2.0.1".parse().expect("ip")));
        assert!(Prefix::parse("*")
            .expect("any")
            .contains("::1".parse().expect("ip")));
        assert!(Prefix::parse("127.0.0.1")
            .expect("host")
            .contains("::ffff:127.0.0.1".parse().expect("ip")));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0",
            "Internet",
            "::1",
            "1.2.3.4/",
            "1.2.3.4/x",
        ] {
            assert_eq!(Prefix::parse(bad), None, "{bad}");
        }
    }
}
