//! What the admin commands send, decided without IO: JIT port rules and their checks, the
//! least-privilege requester role, the PIM policy rules for an eligibility, and the audit
//! and access-review reports built from what ARM returned.

use std::net::Ipv4Addr;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::duration::{human, to_iso};

/// Exactly the actions a JIT requester needs: the five of BRIEF.md (initiate, read the
/// policies, read the VM and its address), with the policies' and the NIC's own reads named
/// too. A wildcard segment (`…/*/read`) does not stand for its own absence, so
/// `jitNetworkAccessPolicies/*/read` alone does not read the policies themselves, nor
/// `networkInterfaces/*/read` the NIC.
pub const JIT_REQUESTER_ACTIONS: [&str; 7] = [
    "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
    "Microsoft.Security/locations/jitNetworkAccessPolicies/read",
    "Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Network/networkInterfaces/read",
    "Microsoft.Network/networkInterfaces/*/read",
    "Microsoft.Network/publicIPAddresses/read",
];

/// The shortest and longest access a JIT port rule may allow.
pub const JIT_MIN: Duration = Duration::minutes(5);
pub const JIT_MAX: Duration = Duration::days(1);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// `3389/tcp`, `22`, `53/udp`, `8080/*`: a port and its protocol (TCP when not given).
pub fn parse_port(text: &str) -> Result<(u16, String), Invalid> {
    let (number, protocol) = text.trim().split_once('/').unwrap_or((text.trim(), "tcp"));
    let number: u16 = number
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Invalid(format!("'{text}' is not a port: give a number from 1 to 65535, optionally with /tcp, /udp or /*")))?;
    let protocol = match protocol.to_ascii_lowercase().as_str() {
        "tcp" => "TCP",
        "udp" => "UDP",
        "*" | "any" => "*",
        other => {
            return Err(Invalid(format!(
                "'{other}' is not a protocol: use tcp, udp or *"
            )))
        }
    };
    Ok((number, protocol.to_string()))
}

/// A JIT rule's maximum access must lie between 5 minutes and 1 day.
pub fn check_max(max: Duration) -> Result<(), Invalid> {
    if max < JIT_MIN || max > JIT_MAX {
        return Err(Invalid(format!(
            "a JIT rule allows between 5 minutes and 1 day of access, not {} ({})",
            human(max),
            to_iso(max)
        )));
    }
    Ok(())
}

/// A source JIT accepts: `*`, an IPv4 address, or an IPv4 CIDR block.
pub fn check_source(prefix: &str) -> Result<String, Invalid> {
    let p = prefix.trim();
    if p == "*" {
        return Ok(p.into());
    }
    let bad = || {
        Invalid(format!(
            "'{prefix}' is not a source JIT accepts: use *, an IPv4 address such as 203.0.113.7, or a block such as 203.0.113.0/24"
        ))
    };
    let (address, bits) = match p.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (p, None),
    };
    let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
    if let Some(bits) = bits {
        let bits: u32 = bits.parse().map_err(|_| bad())?;
        if bits > 32 {
            return Err(bad());
        }
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        if u32::from(address) & !mask != 0 {
            return Err(Invalid(format!(
                "'{prefix}' has host bits set: did you mean {}/{bits}?",
                Ipv4Addr::from(u32::from(address) & mask)
            )));
        }
    }
    Ok(p.into())
}

/// One port rule of a JIT policy, as ARM writes it.
pub fn port_rule(number: u16, protocol: &str, max: Duration, sources: &[String]) -> Value {
    let mut rule = json!({
        "number": number,
        "protocol": protocol,
        "maxRequestAccessDuration": to_iso(max),
    });
    match sources {
        [] => rule["allowedSourceAddressPrefix"] = json!("*"),
        [one] => rule["allowedSourceAddressPrefix"] = json!(one),
        many => rule["allowedSourceAddressPrefixes"] = json!(many),
    }
    rule
}

/// Adds or replaces port rules for a VM in a policy's `virtualMachines`, keeping every other
/// VM and port.
pub fn upsert_ports(vms: &mut Vec<Value>, vm_id: &str, rules: &[Value]) {
    let index = match vms.iter().position(|v| {
        v["id"]
            .as_str()
            .is_some_and(|i| i.eq_ignore_ascii_case(vm_id))
    }) {
        Some(i) => i,
        None => {
            vms.push(json!({"id": vm_id, "ports": []}));
            vms.len() - 1
        }
    };
    let ports = vms[index]["ports"].as_array().cloned().unwrap_or_default();
    let mut kept: Vec<Value> = ports
        .into_iter()
        .filter(|p| !rules.iter().any(|r| r["number"] == p["number"]))
        .collect();
    kept.extend(rules.iter().cloned());
    kept.sort_by_key(|p| p["number"].as_u64());
    vms[index]["ports"] = json!(kept);
}

/// Removes one port (or, without one, every port) of a VM; a VM left without ports leaves
/// the policy. Returns whether anything was removed.
pub fn remove_ports(vms: &mut Vec<Value>, vm_id: &str, port: Option<u16>) -> bool {
    let before = vms.clone();
    for v in vms.iter_mut() {
        if v["id"]
            .as_str()
            .is_some_and(|i| i.eq_ignore_ascii_case(vm_id))
        {
            let ports: Vec<Value> = match port {
                Some(n) => v["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["number"].as_u64() != Some(u64::from(n)))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            v["ports"] = json!(ports);
        }
    }
    vms.retain(|v| v["ports"].as_array().is_some_and(|p| !p.is_empty()));
    *vms != before
}

/// The requester role's definition: exactly [`JIT_REQUESTER_ACTIONS`], assignable at `scope`.
pub fn requester_role(name: &str, scope: &str) -> Value {
    json!({"properties": {
        "roleName": name,
        "description": "Request just-in-time network access to jump boxes, and nothing else. Made by jumpgate admin role create-jit-requester.",
        "type": "CustomRole",
        "permissions": [{
            "actions": JIT_REQUESTER_ACTIONS,
            "notActions": [],
            "dataActions": [],
            "notDataActions": []
        }],
        "assignableScopes": [scope],
    }})
}

/// An approver, by object id and name.
#[derive(Debug, Clone)]
pub struct Approver {
    pub id: String,
    pub name: String,
}

/// What an eligibility's activation policy should ask.
#[derive(Debug, Clone, Default)]
pub struct ActivationSettings {
    pub approvers: Vec<Approver>,
    pub max: Option<Duration>,
    pub require_justification: bool,
    pub require_ticket: bool,
}

/// The end-user activation rules to PATCH: approval (when approvers are given), maximum
/// duration (when given) and what the requester must supply.
pub fn activation_rules(s: &ActivationSettings, current: &[Value]) -> Vec<Value> {
    let target = json!({"caller": "EndUser", "operations": ["All"], "level": "Assignment",
        "targetObjects": null, "inheritableSettings": null, "enforcedSettings": null});
    // Each rule is written over the policy's current rule of the same id, so what the admin
    // did not ask to change (MFA, an authentication context, approval timeouts) stays.
    let existing = |id: &str| current.iter().find(|r| r["id"] == id).cloned();
    let mut enabled: Vec<Value> = existing("Enablement_EndUser_Assignment")
        .and_then(|r| r["enabledRules"].as_array().cloned())
        .unwrap_or_default();
    for (wanted, name) in [
        (s.require_justification, "Justification"),
        (s.require_ticket, "Ticketing"),
    ] {
        if wanted && !enabled.iter().any(|e| e == name) {
            enabled.push(json!(name));
        }
    }
    let mut enablement = existing("Enablement_EndUser_Assignment").unwrap_or_else(|| {
        json!({"id": "Enablement_EndUser_Assignment", "ruleType": "RoleManagementPolicyEnablementRule", "target": target})
    });
    enablement["enabledRules"] = json!(enabled);
    let mut rules = vec![enablement];
    if !s.approvers.is_empty() {
        let approvers: Vec<Value> = s
            .approvers
            .iter()
            .map(|a| json!({"id": a.id, "description": a.name, "isBackup": false, "userType": "User"}))
            .collect();
        let mut approval = existing("Approval_EndUser_Assignment").unwrap_or_else(|| {
            json!({"id": "Approval_EndUser_Assignment", "ruleType": "RoleManagementPolicyApprovalRule", "target": target,
                   "setting": {"isApprovalRequiredForExtension": false, "approvalMode": "SingleStage"}})
        });
        let setting = &mut approval["setting"];
        setting["isApprovalRequired"] = json!(true);
        let asks = setting["isRequestorJustificationRequired"].as_bool() == Some(true);
        setting["isRequestorJustificationRequired"] = json!(asks || s.require_justification);
        let stage = setting["approvalStages"]
            .as_array()
            .and_then(|stages| stages.first().cloned())
            .filter(Value::is_object)
            .unwrap_or_else(|| {
                json!({"approvalStageTimeOutInDays": 1, "isApproverJustificationRequired": true,
                       "escalationTimeInMinutes": 0, "isEscalationEnabled": false, "escalationApprovers": null})
            });
        let mut stage = stage;
        stage["primaryApprovers"] = json!(approvers);
        setting["approvalStages"] = json!([stage]);
        rules.push(approval);
    }
    if let Some(max) = s.max {
        let mut expiration = existing("Expiration_EndUser_Assignment").unwrap_or_else(|| {
            json!({"id": "Expiration_EndUser_Assignment", "ruleType": "RoleManagementPolicyExpirationRule", "target": target})
        });
        expiration["isExpirationRequired"] = json!(true);
        expiration["maximumDuration"] = json!(to_iso(max));
        rules.push(expiration);
    }
    rules
}

/// One line of the admin audit: a PIM request or a JIT request.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub time: Option<DateTime<Utc>>,
    /// `pim` or `jit`.
    pub source: &'static str,
    pub who: String,
    /// The role, or `VM port N`.
    pub what: String,
    pub scope: String,
    pub justification: String,
    pub duration: String,
    pub approver: String,
    pub decision: String,
    pub outcome: String,
}

/// One eligibility in an access review, and whether it is a candidate for removal.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewRow {
    pub principal: String,
    pub role: String,
    pub scope: String,
    pub eligible_since: Option<DateTime<Utc>>,
    pub eligible_until: Option<DateTime<Utc>>,
    pub last_activation: Option<DateTime<Utc>>,
    pub remove_candidate: bool,
    pub reason: String,
}

/// Whether an eligibility went unused for `window` at `now`: never activated and older
/// than the window, or last activated before it.
pub fn unused(
    now: DateTime<Utc>,
    window: Duration,
    since: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
) -> (bool, String) {
    let cutoff = now - window;
    match last {
        Some(t) if t >= cutoff => (false, format!("used {} ago", human(now - t))),
        Some(t) => (
            true,
            format!(
                "last used {} ago, more than {}",
                human(now - t),
                human(window)
            ),
        ),
        None if since.is_some_and(|s| s >= cutoff) => (
            false,
            "never used, but eligible for less than the window".into(),
        ),
        None => (true, format!("never used in {}", human(window))),
    }
}

/// Rows as CSV with a header, every field quoted.
pub fn csv<T: Serialize>(rows: &[T]) -> String {
    let quote = |v: &str| format!("\"{}\"", v.replace('"', "\"\""));
    let values: Vec<serde_json::Map<String, Value>> = rows
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok()?.as_object().cloned())
        .collect();
    let Some(first) = values.first() else {
        return String::new();
    };
    let header: Vec<String> = first.keys().cloned().collect();
    let mut out = header.join(",") + "\n";
    for v in &values {
        let line: Vec<String> = header
            .iter()
            .map(|k| match &v[k] {
                Value::String(s) => quote(s),
                Value::Null => String::new(),
                other => quote(&other.to_string()),
            })
            .collect();
        out += &(line.join(",") + "\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_protocols_durations_and_sources_are_checked() {
        assert_eq!(parse_port("3389/tcp"), Ok((3389, "TCP".into())));
        assert_eq!(parse_port("22"), Ok((22, "TCP".into())));
        assert_eq!(parse_port("53/UDP"), Ok((53, "UDP".into())));
        assert_eq!(parse_port("8080/*"), Ok((8080, "*".into())));
        for bad in ["0", "65536", "rdp", "3389/sctp", ""] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
        assert!(check_max(Duration::minutes(5)).is_ok());
        assert!(check_max(Duration::days(1)).is_ok());
        assert!(check_max(Duration::minutes(4)).is_err());
        let long = check_max(Duration::hours(25)).expect_err("too long");
        assert!(long.0.contains("1 day"), "{long}");
        assert_eq!(check_source("*"), Ok("*".into()));
        assert_eq!(check_source("203.0.113.0/24"), Ok("203.0.113.0/24".into()));
        assert_eq!(check_source("203.0.113.7"), Ok("203.0.113.7".into()));
        for bad in [
            "203.0.113.0/33",
            "10.0.0.300",
            "Internet",
            "::1",
            "203.0.113.7/24",
        ] {
            assert!(check_source(bad).is_err(), "{bad}");
        }
        assert!(check_source("203.0.113.7/24")
            .expect_err("host bits")
            .0
            .contains("203.0.113.0/24"));
    }

    #[test]
    fn upserting_keeps_other_vms_and_ports() {
        let mut vms = vec![
            json!({"id": "/vm/a", "ports": [port_rule(22, "TCP", Duration::hours(1), &[])]}),
            json!({"id": "/vm/b", "ports": [port_rule(3389, "TCP", Duration::hours(3), &[])]}),
        ];
        upsert_ports(
            &mut vms,
            "/VM/A",
            &[
                port_rule(22, "TCP", Duration::hours(2), &["203.0.113.0/24".into()]),
                port_rule(3389, "TCP", Duration::hours(1), &[]),
            ],
        );
        assert_eq!(vms.len(), 2);
        assert_eq!(vms[0]["ports"].as_array().map(Vec::len), Some(2));
        assert_eq!(vms[0]["ports"][0]["maxRequestAccessDuration"], "PT2H");
        assert_eq!(
            vms[0]["ports"][0]["allowedSourceAddressPrefix"],
            "203.0.113.0/24"
        );
        assert_eq!(vms[1]["ports"][0]["number"], 3389);
        upsert_ports(
            &mut vms,
            "/vm/c",
            &[port_rule(
                22,
                "TCP",
                Duration::hours(1),
                &["1.2.3.4".into(), "5.6.7.8".into()],
            )],
        );
        assert_eq!(
            vms[2]["ports"][0]["allowedSourceAddressPrefixes"],
            json!(["1.2.3.4", "5.6.7.8"])
        );
        assert!(remove_ports(&mut vms, "/vm/a", Some(22)));
        assert_eq!(vms[0]["ports"].as_array().map(Vec::len), Some(1));
        assert!(remove_ports(&mut vms, "/vm/a", None));
        assert_eq!(vms.len(), 2);
        assert!(!remove_ports(&mut vms, "/vm/zzz", None));
    }

    #[test]
    fn the_requester_role_names_every_read_it_needs() {
        let role = requester_role("JIT Requester", "/subscriptions/s");
        let actions = role["properties"]["permissions"][0]["actions"]
            .as_array()
            .expect("actions");
        // BRIEF.md's five, and the two reads a wildcard segment does not cover.
        assert_eq!(actions.len(), 7);
        for explicit in [
            "Microsoft.Security/locations/jitNetworkAccessPolicies/read",
            "Microsoft.Network/networkInterfaces/read",
        ] {
            assert!(actions.contains(&json!(explicit)), "{explicit}");
        }
        assert_eq!(
            role["properties"]["assignableScopes"],
            json!(["/subscriptions/s"])
        );
        assert_eq!(
            role["properties"]["permissions"][0]["notActions"],
            json!([])
        );
    }

    #[test]
    fn activation_rules_say_what_was_asked() {
        let rules = activation_rules(
            &ActivationSettings {
                approvers: vec![Approver {
                    id: "b0b".into(),
                    name: "Bob".into(),
                }],
                max: Some(Duration::hours(8)),
                require_justification: true,
                require_ticket: false,
            },
            &[],
        );
        let policy = crate::policy::ActivationPolicy::from_rules(&rules);
        assert!(policy.approval_required);
        assert_eq!(policy.max_duration, Some(Duration::hours(8)));
        assert!(policy.justification_required && !policy.ticket_required);
    }

    #[test]
    fn activation_rules_keep_what_the_policy_already_requires() {
        let target = json!({"caller": "EndUser", "operations": ["All"], "level": "Assignment"});
        let current = vec![
            json!({"id": "Enablement_EndUser_Assignment", "ruleType": "RoleManagementPolicyEnablementRule",
                   "target": target, "enabledRules": ["MultiFactorAuthentication", "Ticketing"]}),
            json!({"id": "Approval_EndUser_Assignment", "ruleType": "RoleManagementPolicyApprovalRule", "target": target,
                   "setting": {"isApprovalRequired": false, "approvalMode": "SingleStage",
                               "approvalStages": [{"approvalStageTimeOutInDays": 3, "isApproverJustificationRequired": true}]}}),
        ];
        let rules = activation_rules(
            &ActivationSettings {
                approvers: vec![Approver {
                    id: "b0b".into(),
                    name: "Bob".into(),
                }],
                max: None,
                require_justification: true,
                require_ticket: false,
            },
            &current,
        );
        let policy = crate::policy::ActivationPolicy::from_rules(&rules);
        assert!(
            policy.mfa_required && policy.ticket_required && policy.justification_required,
            "{policy:?}"
        );
        assert!(policy.approval_required);
        assert_eq!(policy.approvers, [("b0b".to_string(), "Bob".to_string())]);
        assert_eq!(
            rules[1]["setting"]["approvalStages"][0]["approvalStageTimeOutInDays"], 3,
            "the stage's own settings stay"
        );
        assert_eq!(rules.len(), 2, "no expiration rule was asked to change");
    }

    #[test]
    fn unused_eligibilities_are_flagged() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("now");
        let window = Duration::days(90);
        assert!(!unused(now, window, None, Some(now - Duration::days(3))).0);
        assert!(unused(now, window, None, Some(now - Duration::days(100))).0);
        assert!(unused(now, window, Some(now - Duration::days(200)), None).0);
        assert!(!unused(now, window, Some(now - Duration::days(10)), None).0);
    }

    #[test]
    fn csv_quotes_every_field() {
        #[derive(Serialize)]
        struct R {
            a: String,
            b: Option<u32>,
        }
        let text = csv(&[R {
            a: "say \"hi\", ok".into(),
            b: None,
        }]);
        assert_eq!(text, "a,b\n\"say \"\"hi\"\", ok\",\n");
    }
}
