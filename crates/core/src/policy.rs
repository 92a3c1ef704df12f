//! Pre-flight checks: a PIM activation or a JIT request that its policy would refuse is
//! refused here first, with a message that names the limit.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::duration::{human, to_iso};

/// A rule a request would break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// PIM's name for the rule (`ExpirationRule`, `JustificationRule`, …) or the JIT check.
    pub rule: &'static str,
    pub message: String,
}

/// What a role management policy asks of an end user's activation, read from the policy's
/// effective rules (the `*_EndUser_Assignment` rules).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActivationPolicy {
    pub approval_required: bool,
    /// Approver object ids with their display names where PIM gives them.
    pub approvers: Vec<(String, String)>,
    pub approver_justification_required: bool,
    #[serde(serialize_with = "ser_duration")]
    pub max_duration: Option<Duration>,
    pub justification_required: bool,
    pub ticket_required: bool,
    pub mfa_required: bool,
    /// The Conditional Access authentication context (`c1`, …) the sign-in must carry, from
    /// an enabled `AuthenticationContext_EndUser_Assignment` rule.
    pub auth_context: Option<String>,
}

fn ser_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&to_iso(*d)),
        None => s.serialize_none(),
    }
}

impl ActivationPolicy {
    /// Reads the rules leniently: unknown rule types are skipped, missing fields are off.
    /// ARM names a rule's type in `ruleType` (`RoleManagementPolicyApprovalRule`), Microsoft
    /// Graph in `@odata.type` (`#microsoft.graph.unifiedRoleManagementPolicyApprovalRule`, for
    /// PIM for Groups); Graph names an approver `userId` where ARM says `id`.
    pub fn from_rules(rules: &[Value]) -> ActivationPolicy {
        let mut p = ActivationPolicy::default();
        for rule in rules {
            let end_user =
                rule["target"]["caller"] == "EndUser" && rule["target"]["level"] == "Assignment";
            if !end_user {
                continue;
            }
            let kind = match rule["ruleType"].as_str() {
                Some(t) => t.to_string(),
                None => rule["@odata.type"]
                    .as_str()
                    .and_then(|t| t.strip_prefix("#microsoft.graph.unified"))
                    .unwrap_or("")
                    .to_string(),
            };
            match kind.as_str() {
                "RoleManagementPolicyApprovalRule" => {
                    let s = &rule["setting"];
                    p.approval_required = s["isApprovalRequired"].as_bool().unwrap_or(false);
                    for stage in s["approvalStages"].as_array().into_iter().flatten() {
                        p.approver_justification_required |= stage
                            ["isApproverJustificationRequired"]
                            .as_bool()
                            .unwrap_or(false);
                        for a in stage["primaryApprovers"].as_array().into_iter().flatten() {
                            let id = a["id"]
                                .as_str()
                                .or(a["userId"].as_str())
                                .unwrap_or("")
                                .to_string();
                            let name = a["description"].as_str().unwrap_or(&id).to_string();
                            p.approvers.push((id, name));
                        }
                    }
                }
                "RoleManagementPolicyEnablementRule" => {
                    let enabled: Vec<&str> = rule["enabledRules"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    p.justification_required = enabled.contains(&"Justification");
                    p.ticket_required = enabled.contains(&"Ticketing");
                    p.mfa_required = enabled.contains(&"MultiFactorAuthentication");
                }
                "RoleManagementPolicyExpirationRule" => {
                    p.max_duration = rule["maximumDuration"]
                        .as_str()
                        .and_then(|d| crate::duration::parse(d).ok());
                }
                "RoleManagementPolicyAuthenticationContextRule" => {
                    p.auth_context = rule["claimValue"]
                        .as_str()
                        .filter(|_| rule["isEnabled"].as_bool() == Some(true))
                        .filter(|c| !c.trim().is_empty())
                        .map(str::to_string);
                }
                _ => {}
            }
        }
        p
    }

    /// A one-line summary for `jumpgate roles`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.approval_required {
            let names: Vec<&str> = self.approvers.iter().map(|(_, n)| n.as_str()).collect();
            parts.push(if names.is_empty() {
                "approval required".to_string()
            } else {
                format!("approval by {}", names.join(", "))
            });
        } else {
            parts.push("no approval".into());
        }
        if let Some(max) = self.max_duration {
            parts.push(format!("max {}", human(max)));
        }
        for (on, what) in [
            (self.justification_required, "justification"),
            (self.ticket_required, "ticket"),
            (self.mfa_required, "MFA"),
        ] {
            if on {
                parts.push(format!("{what} required"));
            }
        }
        if let Some(c) = &self.auth_context {
            parts.push(format!("authentication context {c} required"));
        }
        parts.join(", ")
    }
}

/// Whether a policy's effective rules name `oid` (an object id) as someone who decides end
/// users' activations: a `User` among the primary approvers of a stage of an approval rule that
/// asks for approval (of activations, or of their extensions), or among its escalation
/// approvers when escalation is on. Ids compare without regard to case, as GUIDs do. A `Group`
/// is not resolved (the user's memberships are not known without more reads), so an approver
/// only through a group is not found here.
pub fn names_approver(rules: &[Value], oid: &str) -> bool {
    let oid = oid.trim();
    if oid.is_empty() {
        return false;
    }
    let is_me = |set: &Value| {
        set["userType"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("User"))
            && set["id"]
                .as_str()
                .is_some_and(|id| id.trim().eq_ignore_ascii_case(oid))
    };
    rules.iter().any(|rule| {
        let activation =
            rule["target"]["caller"] == "EndUser" && rule["target"]["level"] == "Assignment";
        let setting = &rule["setting"];
        let required = setting["isApprovalRequired"].as_bool() == Some(true)
            || setting["isApprovalRequiredForExtension"].as_bool() == Some(true);
        activation
            && rule["ruleType"] == "RoleManagementPolicyApprovalRule"
            && required
            && setting["approvalStages"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|stage| {
                    let escalation = stage["isEscalationEnabled"].as_bool() == Some(true);
                    let primary = stage["primaryApprovers"].as_array().into_iter().flatten();
                    let escalating = stage["escalationApprovers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|_| escalation);
                    primary.chain(escalating).any(is_me)
                })
    })
}

/// PIM lets no one end an activation within its first five minutes: a deactivation sooner
/// is refused with `ActiveDurationTooShort`.
pub const MIN_ACTIVE: Duration = Duration::minutes(5);

/// When an activation that started at `start` may be ended, if not yet at `now`.
pub fn may_end_at(start: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let from = start + MIN_ACTIVE;
    (now < from).then_some(from)
}

/// Checks an activation against its policy and the organisation's list of refused
/// justifications. Returns every rule broken, not just the first.
pub fn check_activation(
    policy: &ActivationPolicy,
    duration: Duration,
    justification: &str,
    ticket: Option<&str>,
    refused_justifications: &[String],
) -> Result<(), Vec<Violation>> {
    let mut v = Vec::new();
    if let Some(max) = policy.max_duration {
        if duration > max {
            v.push(Violation {
                rule: "ExpirationRule",
                message: format!(
                    "{} is longer than this role allows (at most {}, {}): ask for less",
                    human(duration),
                    human(max),
                    to_iso(max)
                ),
            });
        }
    }
    if duration < Duration::minutes(5) {
        v.push(Violation {
            rule: "ExpirationRule",
            message: "PIM activations last at least 5 minutes".into(),
        });
    }
    let j = justification.trim();
    if policy.justification_required && j.is_empty() {
        v.push(Violation {
            rule: "JustificationRule",
            message: "this role needs a justification: say what you will do, with --justification"
                .into(),
        });
    }
    if let Some(vague) = vague_justification(j, refused_justifications) {
        v.push(vague);
    }
    if j.chars().count() > 500 {
        v.push(Violation {
            rule: "JustificationRule",
            message: "the justification is longer than 500 characters".into(),
        });
    }
    if policy.ticket_required && ticket.is_none_or(|t| t.trim().is_empty()) {
        v.push(Violation {
            rule: "TicketingRule",
            message: "this role needs a ticket: pass --ticket SYSTEM:NUMBER".into(),
        });
    }
    if v.is_empty() {
        Ok(())
    } else {
        Err(v)
    }
}

/// The organisation's refusal of a justification (`justification.refuse`): one it lists,
/// compared trimmed and ignoring case, is too vague. The one place that says so, for
/// activations, the CLI and the tray's Connect form.
pub fn vague_justification(justification: &str, refused: &[String]) -> Option<Violation> {
    let j = justification.trim();
    (!j.is_empty() && refused.iter().any(|r| r.trim().eq_ignore_ascii_case(j))).then(|| Violation {
        rule: "JustificationRule",
        message: format!("'{j}' is too vague for your organisation: say what you will do and why"),
    })
}

/// A field of the Connect form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum FormField {
    Port,
    Duration,
    Justification,
    Ticket,
}

/// What is wrong with one field of the Connect form: the rule broken and a sentence for the
/// person typing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FieldProblem {
    pub field: FormField,
    /// The check that failed (`JitPort`, `JitDuration`, `Duration`, `Justification`,
    /// `JustificationRule`, `Ticket`): for code, not for people.
    pub rule: String,
    pub message: String,
}

/// The Connect form as typed: nothing trimmed or parsed yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectFormText<'a> {
    pub port: Option<u16>,
    pub duration: &'a str,
    pub justification: &'a str,
    /// `SYSTEM:NUMBER` or a number alone; empty is none.
    pub ticket: &'a str,
}

/// A message as a sentence: a capital first letter and a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.trim().chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// Checks the Connect form as the person types, with the rules `connect` itself applies:
/// the duration's syntax ([`crate::duration::parse`]), the port and the duration against the
/// VM's JIT policy where it is known ([`check_jit`], as the engine's pre-flight does; the
/// source is checked once the address is known), the justification ([`crate::input::justification`]
/// and [`vague_justification`]) and the ticket ([`crate::input::ticket_text`]). Answers the
/// first problem of each field, in the form's order; none when the form may be sent.
pub fn check_form(
    form: &ConnectFormText<'_>,
    ports: Option<&[JitPortRule]>,
    refused_justifications: &[String],
) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let mut problem = |field: FormField, rule: &str, message: &str| {
        problems.push(FieldProblem {
            field,
            rule: rule.to_string(),
            message: sentence(message),
        })
    };
    match crate::duration::parse(form.duration) {
        Err(e) => problem(FormField::Duration, "Duration", &e.to_string()),
        Ok(duration) => {
            if let Some(rules) = ports {
                // The engine's pre-flight asks for the policy's only port when none is named.
                let port = form.port.or(match rules {
                    [only] => Some(only.number),
                    _ => None,
                });
                match port {
                    None => problem(FormField::Port, "JitPort", "choose a port"),
                    Some(port) => match check_jit(rules, port, duration, "*") {
                        Err(v) if v.rule == "JitPort" => {
                            problem(FormField::Port, v.rule, &v.message)
                        }
                        Err(v) if v.rule != "JitSource" => {
                            problem(FormField::Duration, v.rule, &v.message)
                        }
                        _ => {}
                    },
                }
            }
        }
    }
    if form.justification.trim().is_empty() {
        problem(
            FormField::Justification,
            "Justification",
            "say why you need access: the justification is required",
        );
    } else {
        match crate::input::justification(form.justification) {
            Err(e) => problem(
                FormField::Justification,
                "Justification",
                &format!("the {e}"),
            ),
            Ok(j) => {
                if let Some(v) = vague_justification(j, refused_justifications) {
                    problem(FormField::Justification, v.rule, &v.message);
                }
            }
        }
    }
    if let Err(e) = crate::input::ticket_text(form.ticket) {
        problem(
            FormField::Ticket,
            "Ticket",
            &format!("the {e}: give SYSTEM:NUMBER or a number"),
        );
    }
    problems
}

/// One port rule of a VM in a JIT policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JitPortRule {
    pub number: u16,
    pub protocol: String,
    pub allowed_prefixes: Vec<String>,
    #[serde(serialize_with = "ser_plain")]
    pub max: Duration,
}

fn ser_plain<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_iso(*d))
}

impl JitPortRule {
    /// Reads a port rule from a policy's `virtualMachines[].ports[]`.
    pub fn from_json(v: &Value) -> Option<JitPortRule> {
        let number = u16::try_from(v["number"].as_u64()?).ok()?;
        let mut prefixes: Vec<String> = v["allowedSourceAddressPrefix"]
            .as_str()
            .map(str::to_string)
            .into_iter()
            .collect();
        prefixes.extend(
            v["allowedSourceAddressPrefixes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_string)),
        );
        Some(JitPortRule {
            number,
            protocol: v["protocol"].as_str().unwrap_or("*").to_string(),
            allowed_prefixes: prefixes,
            max: v["maxRequestAccessDuration"]
                .as_str()
                .and_then(|d| crate::duration::parse(d).ok())
                .unwrap_or(Duration::hours(3)),
        })
    }
}

/// Checks a JIT request against the VM's port rules: the port is in the policy, the duration
/// within its maximum, and the source a prefix the policy allows (any under `*`, otherwise
/// exactly one it lists: JIT refuses a single address inside an allowed block).
pub fn check_jit(
    rules: &[JitPortRule],
    port: u16,
    duration: Duration,
    source: &str,
) -> Result<JitPortRule, Violation> {
    let Some(rule) = rules.iter().find(|r| r.number == port) else {
        let ports: Vec<String> = rules.iter().map(|r| r.number.to_string()).collect();
        return Err(Violation {
            rule: "JitPort",
            message: format!(
                "port {port} is not in this VM's JIT policy; it allows {}",
                if ports.is_empty() {
                    "no ports".into()
                } else {
                    ports.join(", ")
                }
            ),
        });
    };
    if duration > rule.max {
        return Err(Violation {
            rule: "JitDuration",
            message: format!(
                "{} is longer than port {port} allows (at most {}, {}): ask for less",
                human(duration),
                human(rule.max),
                to_iso(rule.max)
            ),
        });
    }
    if duration < Duration::minutes(1) {
        return Err(Violation {
            rule: "JitDuration",
            message: "ask for at least one minute".into(),
        });
    }
    let allowed = rule
        .allowed_prefixes
        .iter()
        .any(|p| p.trim() == "*" || p.trim() == source || p.trim() == format!("{source}/32"));
    if !allowed {
        return Err(Violation {
            rule: "JitSource",
            message: format!(
                "your address {source} is not a source this policy allows for port {port} ({}); connect from an allowed network, or ask an admin to allow it",
                rule.allowed_prefixes.join(", ")
            ),
        });
    }
    Ok(rule.clone())
}

/// The source prefix to ask JIT for, given the policy's rule for the port and the detected
/// public address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceChoice {
    /// What to send as `allowedSourceAddressPrefix`.
    pub prefix: String,
    /// The policy allows only a range that contains the address, so the whole range is
    /// asked for (JIT refuses a single address inside an allowed range).
    pub whole_range: bool,
}

/// The widest source range opened without the requester's explicit consent: a /24, 256
/// addresses. A policy that admits an address only inside a wider range (a /20 is 4096
/// addresses: a whole office, or a provider's block) opens the port to all of them.
pub const WIDE_SOURCE_BITS: u8 = 24;

impl SourceChoice {
    /// How many addresses the source opens the port to, when that is more than a /24's
    /// ([`WIDE_SOURCE_BITS`]): the range needs the requester's consent.
    pub fn wide(&self) -> Option<u64> {
        if !self.whole_range {
            return None;
        }
        let bits: u8 = self.prefix.split_once('/')?.1.parse().ok()?;
        (bits < WIDE_SOURCE_BITS).then(|| 1u64 << (32 - u32::from(bits.min(32))))
    }
}

/// Chooses the source for a JIT request: the address itself where the policy lets the
/// requester choose (`*`) or lists it; otherwise the allowed range that contains it, since
/// JIT accepts only the exact range. An address outside every allowed range is refused.
pub fn choose_source(
    rule: &JitPortRule,
    ip: std::net::Ipv4Addr,
) -> Result<SourceChoice, Violation> {
    let address = ip.to_string();
    let listed = rule.allowed_prefixes.iter().map(|p| p.trim());
    if listed
        .clone()
        .any(|p| p == "*" || p == address || p == format!("{address}/32"))
    {
        return Ok(SourceChoice {
            prefix: address,
            whole_range: false,
        });
    }
    // The narrowest range holding the address, so no more is opened than needed.
    let range = listed
        .filter_map(|p| {
            let (_, bits) = p.split_once('/')?;
            let bits: u8 = bits.parse().ok()?;
            crate::ip::prefix_contains(p, ip).then_some((p, bits))
        })
        .max_by_key(|(_, bits)| *bits);
    match range {
        Some((p, _)) => Ok(SourceChoice {
            prefix: p.to_string(),
            whole_range: true,
        }),
        None => Err(Violation {
            rule: "JitSource",
            message: format!(
                "your address {address} is not inside a source this policy allows for port {} ({}); connect from an allowed network, or ask an admin to allow it",
                rule.number,
                rule.allowed_prefixes.join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod wide_source_tests {
    use super::*;

    fn rule(prefixes: &[&str]) -> JitPortRule {
        JitPortRule {
            number: 3389,
            protocol: "TCP".into(),
            allowed_prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            max: Duration::hours(3),
        }
    }

    #[test]
    fn a_range_wider_than_a_slash_24_needs_consent() {
        let ip = "84.17.40.23".parse().expect("ip");
        let wide = choose_source(&rule(&["84.17.32.0/20", "91.198.174.0/24"]), ip).expect("in");
        assert_eq!(wide.prefix, "84.17.32.0/20");
        assert_eq!(wide.wide(), Some(4096));
        let narrow = choose_source(&rule(&["84.17.40.0/24"]), ip).expect("in");
        assert_eq!(narrow.wide(), None);
        let single = choose_source(&rule(&["*"]), ip).expect("any");
        assert_eq!(single.wide(), None);
        // The narrowest range holding the address is chosen, and it is the one judged.
        let both = choose_source(&rule(&["84.0.0.0/8", "84.17.40.0/25"]), ip).expect("in");
        assert_eq!((both.prefix.as_str(), both.wide()), ("84.17.40.0/25", None));
    }
}

/// Whether an ARM scope (`/`, a subscription, a resource group, a resource) contains a
/// resource id: the scope itself or anything below it, compared case-insensitively by whole
/// path segments. A management group's members cannot be told from ids, so it contains
/// nothing here.
pub fn scope_contains(scope: &str, id: &str) -> bool {
    let scope = scope.trim_end_matches('/').to_ascii_lowercase();
    let id = id.trim_end_matches('/').to_ascii_lowercase();
    if scope.is_empty() {
        return true;
    }
    if scope.starts_with("/providers/microsoft.management/") {
        return false;
    }
    id == scope
        || id
            .strip_prefix(&scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The subscription id of a scope or resource id, if it names one.
pub fn subscription_of(scope: &str) -> Option<&str> {
    let mut parts = scope.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some(s), Some(id)) if s.eq_ignore_ascii_case("subscriptions") && !id.is_empty() => {
            Some(id)
        }
        _ => None,
    }
}

/// `text` if it is a VM's resource id in ARM's shape
/// (`/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}`)
/// and a safe ARM id besides ([`arm_id`], RELIABILITY #26).
pub fn vm_resource_id(text: &str) -> Option<&str> {
    let t = arm_id(text.trim())?;
    let parts: Vec<&str> = t.trim_start_matches('/').split('/').collect();
    let [subs, _, rgs, _, providers, compute, vms, _] = parts.as_slice() else {
        return None;
    };
    let fixed = subs.eq_ignore_ascii_case("subscriptions")
        && rgs.eq_ignore_ascii_case("resourceGroups")
        && providers.eq_ignore_ascii_case("providers")
        && compute.eq_ignore_ascii_case("Microsoft.Compute")
        && vms.eq_ignore_ascii_case("virtualMachines");
    fixed.then_some(t)
}

/// An id from a response, as it may become part of a URL (RELIABILITY #26): ARM's shape,
/// `/subscriptions/…` or `/providers/…`, every segment non-empty and neither `.` nor `..`,
/// and none of what would move the request elsewhere once pasted after the endpoint: `@`
/// (userinfo), a backslash (a slash to URL parsers), `?`, `#`, `%` (an encoded dot or slash), a
/// scheme, whitespace, controls or bidi formatting. `None` means "do not send anything to it".
pub fn arm_id(id: &str) -> Option<&str> {
    let rest = id.strip_prefix('/')?;
    let (first, _) = rest.split_once('/').unwrap_or((rest, ""));
    if !(first.eq_ignore_ascii_case("subscriptions") || first.eq_ignore_ascii_case("providers")) {
        return None;
    }
    if id.len() > 2048
        || id.contains("://")
        || id
            .chars()
            .any(|c| "@\\?#%".contains(c) || c.is_whitespace() || crate::text::is_hostile(c))
    {
        return None;
    }
    let segments_ok = rest
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..");
    segments_ok.then_some(id)
}

/// What Jumpgate reads from Microsoft Graph's beta, as v1.0 lacks it: PIM for Entra roles'
/// approvals.
const GRAPH_BETA_ONLY: &str = "roleManagement/directory/roleAssignmentApprovals";

/// A Microsoft Graph path, as it may become part of a URL (the Graph counterpart of
/// [`arm_id`]): under `/v1.0/` (or, for [`GRAPH_BETA_ONLY`], `/beta/`), every segment non-empty and neither `.` nor `..`, and none of
/// `@`, a backslash, `?`, `#`, `%`, a scheme, whitespace, controls or bidi formatting. A
/// function's parameters (`filterByCurrentUser(on='principal')`) are allowed.
pub fn graph_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1.0/").or_else(|| {
        path.strip_prefix("/beta/")
            .filter(|rest| rest.starts_with(GRAPH_BETA_ONLY))
    })?;
    if path.len() > 2048
        || path.contains("://")
        || path
            .chars()
            .any(|c| "@\\?#%".contains(c) || c.is_whitespace() || crate::text::is_hostile(c))
    {
        return None;
    }
    rest.split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..")
        .then_some(path)
}

/// How much a role grants besides JIT initiate, to choose the least privileged of several
/// that allow it. Lower is narrower: a role that names the action outright comes before one
/// that reaches it through a wildcard (`*`, `Microsoft.Security/*`), then fewer actions,
/// then no data actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Breadth {
    /// JIT initiate is granted only through a wildcard.
    pub wildcard: bool,
    /// Actions granted, counted as written (a wildcard counts once).
    pub actions: usize,
    /// Data actions granted.
    pub data_actions: usize,
}

/// The breadth of a role definition's `permissions`, if it grants `action` at all.
pub fn breadth(permissions: &[Value], action: &str) -> Option<Breadth> {
    if !permits(permissions, action) {
        return None;
    }
    let strings = |k: &str| -> Vec<String> {
        permissions
            .iter()
            .flat_map(|p| p[k].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect()
    };
    let actions = strings("actions");
    Some(Breadth {
        wildcard: !actions.iter().any(|a| a.eq_ignore_ascii_case(action)),
        actions: actions.len(),
        data_actions: strings("dataActions").len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn demo_rules() -> Vec<Value> {
        let target = json!({"caller": "EndUser", "operations": ["All"], "level": "Assignment"});
        vec![
            json!({"id": "Approval_EndUser_Assignment", "ruleType": "RoleManagementPolicyApprovalRule", "target": target,
                   "setting": {"isApprovalRequired": true, "approvalStages": [{"isApproverJustificationRequired": true, "primaryApprovers": [{"id": "b0b", "description": "Bob Brandt"}]}]}}),
            json!({"id": "Enablement_EndUser_Assignment", "ruleType": "RoleManagementPolicyEnablementRule", "target": target, "enabledRules": ["Justification"]}),
            json!({"id": "Expiration_EndUser_Assignment", "ruleType": "RoleManagementPolicyExpirationRule", "target": target, "maximumDuration": "PT8H"}),
            json!({"id": "Expiration_Admin_Eligibility", "ruleType": "RoleManagementPolicyExpirationRule", "target": {"caller": "Admin", "level": "Eligibility"}, "maximumDuration": "P365D"}),
        ]
    }

    /// An approval rule for activations with `stages` as its approval stages.
    fn approval(required: bool, stages: Value) -> Value {
        json!({"id": "Approval_EndUser_Assignment", "ruleType": "RoleManagementPolicyApprovalRule",
               "target": {"caller": "EndUser", "operations": ["All"], "level": "Assignment"},
               "setting": {"isApprovalRequired": required, "approvalStages": stages}})
    }

    fn ports() -> Vec<JitPortRule> {
        [(3389, 3), (22, 1)]
            .into_iter()
            .map(|(number, hours)| JitPortRule {
                number,
                protocol: "*".into(),
                allowed_prefixes: vec!["*".into()],
                max: Duration::hours(hours),
            })
            .collect()
    }

    fn form<'a>(port: u16, duration: &'a str, justification: &'a str) -> ConnectFormText<'a> {
        ConnectFormText {
            port: Some(port),
            duration,
            justification,
            ticket: "",
        }
    }

    fn fields(problems: &[FieldProblem]) -> Vec<(FormField, &str)> {
        problems
            .iter()
            .map(|p| (p.field, p.rule.as_str()))
            .collect()
    }

    #[test]
    fn issue_14_a_good_form_has_no_problem() {
        let refuse = vec!["BAU".to_string()];
        let rules = ports();
        for f in [
            form(3389, "1h", "Patch night KB5034441"),
            form(3389, "PT3H", "Patch night"),
            form(22, "30m", "  Incident 4711  "),
            ConnectFormText {
                ticket: "SNOW:INC1",
                ..form(22, "1h", "Incident")
            },
            ConnectFormText {
                ticket: "4711",
                ..form(22, "1h", "Incident")
            },
        ] {
            assert_eq!(check_form(&f, Some(&rules), &refuse), vec![], "{f:?}");
        }
        // A policy with one port answers for a form that names none, as the engine does.
        let unnamed = ConnectFormText {
            port: None,
            ..form(0, "1h", "Patch night")
        };
        assert_eq!(check_form(&unnamed, Some(&rules[..1]), &refuse), vec![]);
    }

    #[test]
    fn issue_14_each_field_answers_its_first_problem() {
        let refuse = vec!["BAU".to_string(), " n/a ".to_string()];
        let rules = ports();
        let check = |f: ConnectFormText<'_>| check_form(&f, Some(&rules), &refuse);
        // The duration: its syntax, then the port's maximum.
        let p = check(form(3389, "soon", "Patch"));
        assert_eq!(fields(&p), [(FormField::Duration, "Duration")]);
        assert!(p[0].message.contains("use a form such as 30m"), "{p:?}");
        let p = check(form(22, "2h", "Patch"));
        assert_eq!(fields(&p), [(FormField::Duration, "JitDuration")]);
        assert_eq!(
            p[0].message,
            "2h is longer than port 22 allows (at most 1h, PT1H): ask for less."
        );
        // The port: one the policy lists, or none named among several.
        let p = check(form(8080, "1h", "Patch"));
        assert_eq!(fields(&p), [(FormField::Port, "JitPort")]);
        assert!(
            p[0].message
                .starts_with("Port 8080 is not in this VM's JIT policy; it allows 3389, 22"),
            "{p:?}"
        );
        let p = check(ConnectFormText {
            port: None,
            ..form(0, "1h", "Patch")
        });
        assert_eq!(fields(&p), [(FormField::Port, "JitPort")]);
        // The justification: empty, then the input rules, then the refuse list.
        let p = check(form(3389, "1h", "   "));
        assert_eq!(fields(&p), [(FormField::Justification, "Justification")]);
        assert_eq!(
            p[0].message,
            "Say why you need access: the justification is required."
        );
        let long = "x".repeat(crate::input::MAX_JUSTIFICATION + 1);
        let p = check(form(3389, "1h", &long));
        assert_eq!(
            p[0].message,
            "The justification is longer than 500 characters."
        );
        let p = check(form(3389, "1h", "ok\u{202E}txt"));
        assert!(p[0].message.contains("bidi"), "{p:?}");
        let p = check(form(3389, "1h", "bau"));
        assert_eq!(
            fields(&p),
            [(FormField::Justification, "JustificationRule")]
        );
        assert_eq!(
            p[0].message,
            "'bau' is too vague for your organisation: say what you will do and why."
        );
        assert_eq!(
            fields(&check(form(3389, "1h", "N/A"))),
            [(FormField::Justification, "JustificationRule")]
        );
        // The ticket: each part's rules.
        let p = check(ConnectFormText {
            ticket: "SNOW:",
            ..form(3389, "1h", "Patch")
        });
        assert_eq!(fields(&p), [(FormField::Ticket, "Ticket")]);
        assert_eq!(
            p[0].message,
            "The ticket needs a number: give SYSTEM:NUMBER or a number."
        );
        let p = check(ConnectFormText {
            ticket: "SNOW:INC\u{1b}1",
            ..form(3389, "1h", "Patch")
        });
        assert_eq!(fields(&p), [(FormField::Ticket, "Ticket")]);
        // Every field at once: one problem each, in the form's order.
        let long_ticket = "t".repeat(101);
        let p = check(ConnectFormText {
            ticket: &long_ticket,
            ..form(3389, "4h", "BAU")
        });
        assert_eq!(
            fields(&p),
            [
                (FormField::Duration, "JitDuration"),
                (FormField::Justification, "JustificationRule"),
                (FormField::Ticket, "Ticket"),
            ]
        );
    }

    #[test]
    fn issue_14_without_a_known_policy_only_the_text_is_checked() {
        // Before the role is active the policy may be unreadable: the engine checks it then.
        assert_eq!(check_form(&form(8080, "9h", "Patch"), None, &[]), vec![]);
        let p = check_form(&form(8080, "9x", "Patch"), None, &[]);
        assert_eq!(fields(&p), [(FormField::Duration, "Duration")]);
    }

    #[test]
    fn issue_14_the_form_refuses_what_connect_refuses() {
        // The same functions underneath: what the form says of the duration and the port is
        // what the pre-flight says, and its refusal of a vague justification is the one an
        // activation meets.
        let rules = ports();
        let refuse = vec!["BAU".to_string()];
        for (port, duration) in [
            (22, "2h"),
            (3389, "4h"),
            (8080, "1h"),
            (22, "30s"),
            (3389, "3h"),
        ] {
            let d = crate::duration::parse(duration).expect(duration);
            let jit = check_jit(&rules, port, d, "*").err();
            let answer = check_form(&form(port, duration, "Patch"), Some(&rules), &refuse);
            assert_eq!(
                answer.first().map(|p| p.message.clone()),
                jit.map(|v| sentence(&v.message)),
                "{port} {duration}"
            );
        }
        let policy = ActivationPolicy::default();
        for j in ["BAU", " bau ", "Patch night", "BAU and more"] {
            let activation = check_activation(&policy, Duration::hours(1), j, None, &refuse)
                .err()
                .map(|v| sentence(&v[0].message));
            let answer = check_form(&form(3389, "1h", j), Some(&rules), &refuse);
            assert_eq!(
                answer.first().map(|p| p.message.clone()),
                activation,
                "{j:?}"
            );
        }
        // And the syntax of the duration is the parser's.
        let answer = check_form(&form(3389, "1 hour", "Patch"), Some(&rules), &refuse);
        assert_eq!(
            answer[0].message,
            sentence(
                &crate::duration::parse("1 hour")
                    .expect_err("not a duration")
                    .to_string()
            )
        );
    }

    #[test]
    fn finds_the_user_among_the_approvers_of_a_policy() {
        let bob = "b0b00000-0000-4000-8000-000000000002";
        let user = |id: &str| json!({"id": id, "description": "someone", "isBackup": false, "userType": "User"});
        let group = |id: &str| json!({"id": id, "description": "a group", "userType": "Group"});
        let check = |rules: Vec<Value>, oid: &str, expected: bool| {
            assert_eq!(names_approver(&rules, oid), expected, "{oid} in {rules:#?}");
        };
        // Named directly in the only stage, whatever the case of the GUID.
        let one = approval(true, json!([{"primaryApprovers": [user(bob)]}]));
        check(vec![one.clone()], bob, true);
        check(vec![one.clone()], &bob.to_ascii_uppercase(), true);
        check(
            vec![one.clone()],
            "a11ce000-0000-4000-8000-000000000001",
            false,
        );
        check(vec![one.clone()], "", false);
        // In the second of two stages, beside others.
        let two = approval(
            true,
            json!([{"primaryApprovers": [user("x")]}, {"primaryApprovers": [user("y"), user(bob)]}]),
        );
        check(vec![two], bob, true);
        // A group with the same id is not the user, and groups are not resolved.
        check(
            vec![approval(true, json!([{"primaryApprovers": [group(bob)]}]))],
            bob,
            false,
        );
        // No approval asked for: being listed decides nothing.
        check(
            vec![approval(false, json!([{"primaryApprovers": [user(bob)]}]))],
            bob,
            false,
        );
        // Approval of extensions only still brings requests to decide.
        let mut extension = approval(false, json!([{"primaryApprovers": [user(bob)]}]));
        extension["setting"]["isApprovalRequiredForExtension"] = json!(true);
        check(vec![extension], bob, true);
        // Escalation approvers count only while escalation is on.
        let escalation = |on: bool| {
            approval(
                true,
                json!([{"primaryApprovers": [user("x")], "isEscalationEnabled": on, "escalationApprovers": [user(bob)]}]),
            )
        };
        check(vec![escalation(true)], bob, true);
        check(vec![escalation(false)], bob, false);
        // The admin side of a policy, or another rule type, names no approver of activations.
        let mut admin = one.clone();
        admin["target"] = json!({"caller": "Admin", "level": "Eligibility"});
        check(vec![admin], bob, false);
        let mut other = one;
        other["ruleType"] = json!("RoleManagementPolicyNotificationRule");
        check(vec![other], bob, false);
        // The demo tenant's rules, and garbage, leniently.
        check(demo_rules(), "b0b", false);
        check(
            vec![json!(null), json!("text"), json!({"setting": 3})],
            bob,
            false,
        );
        check(
            vec![approval(true, json!({"primaryApprovers": "nope"}))],
            bob,
            false,
        );
    }

    #[test]
    fn reads_the_end_user_rules_only() {
        let p = ActivationPolicy::from_rules(&demo_rules());
        assert!(p.approval_required && p.justification_required && !p.ticket_required);
        assert_eq!(p.max_duration, Some(Duration::hours(8)));
        assert_eq!(
            p.summary(),
            "approval by Bob Brandt, max 8h, justification required"
        );
    }

    #[test]
    fn an_activation_may_be_ended_after_five_minutes() {
        let start = DateTime::parse_from_rfc3339("2026-12-06T09:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let at = |m: i64, s: i64| start + Duration::minutes(m) + Duration::seconds(s);
        assert_eq!(may_end_at(start, at(0, 0)), Some(at(5, 0)));
        assert_eq!(may_end_at(start, at(4, 59)), Some(at(5, 0)));
        assert_eq!(may_end_at(start, at(5, 0)), None);
        assert_eq!(may_end_at(start, at(60, 0)), None);
    }

    #[test]
    fn reads_graph_rules_for_groups_as_arm_rules() {
        let target = json!({"caller": "EndUser", "operations": ["All"], "level": "Assignment"});
        let rules = [
            json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule",
                "id": "Approval_EndUser_Assignment", "target": target,
                "setting": {"isApprovalRequired": true, "approvalStages": [{
                    "isApproverJustificationRequired": true,
                    "primaryApprovers": [{"@odata.type": "#microsoft.graph.singleUser",
                        "userId": "b0b", "description": "Bob Brandt"}]}]}}),
            json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule",
                "id": "Enablement_EndUser_Assignment", "target": target,
                "enabledRules": ["Justification", "Ticketing"]}),
            json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule",
                "id": "Expiration_EndUser_Assignment", "target": target,
                "isExpirationRequired": true, "maximumDuration": "PT4H"}),
            // An admin's rule is not the requester's.
            json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule",
                "id": "Expiration_Admin_Eligibility",
                "target": {"caller": "Admin", "operations": ["All"], "level": "Eligibility"},
                "isExpirationRequired": true, "maximumDuration": "P365D"}),
        ];
        let p = ActivationPolicy::from_rules(&rules);
        assert!(p.approval_required && p.approver_justification_required);
        assert_eq!(
            p.approvers,
            vec![("b0b".to_string(), "Bob Brandt".to_string())]
        );
        assert!(p.justification_required && p.ticket_required && !p.mfa_required);
        assert_eq!(p.max_duration, Some(Duration::hours(4)));
    }

    #[test]
    fn activation_checks_name_every_broken_rule() {
        let p = ActivationPolicy::from_rules(&demo_rules());
        assert!(check_activation(&p, Duration::hours(1), "Patch KB123", None, &[]).is_ok());
        let broken =
            check_activation(&p, Duration::hours(9), " ", None, &[]).expect_err("two rules");
        assert_eq!(
            broken.iter().map(|v| v.rule).collect::<Vec<_>>(),
            ["ExpirationRule", "JustificationRule"]
        );
        assert!(broken[0].message.contains("8h"), "{}", broken[0].message);
        let vague = check_activation(&p, Duration::hours(1), "bau", None, &["BAU".into()])
            .expect_err("vague");
        assert!(vague[0].message.contains("too vague"));
    }

    #[test]
    fn jit_checks_port_duration_and_exact_prefix() {
        let rules = vec![JitPortRule {
            number: 3389,
            protocol: "TCP".into(),
            allowed_prefixes: vec!["*".into()],
            max: Duration::hours(3),
        }];
        assert!(check_jit(&rules, 3389, Duration::hours(1), "20.1.2.3").is_ok());
        assert!(check_jit(&rules, 22, Duration::hours(1), "20.1.2.3")
            .expect_err("port")
            .message
            .contains("allows 3389"));
        assert!(check_jit(&rules, 3389, Duration::hours(4), "20.1.2.3")
            .expect_err("long")
            .message
            .contains("PT3H"));
        let cidr = vec![JitPortRule {
            allowed_prefixes: vec!["20.1.2.0/24".into()],
            ..rules[0].clone()
        }];
        assert!(
            check_jit(&cidr, 3389, Duration::hours(1), "20.1.2.3").is_err(),
            "a single address in the block is refused"
        );
        assert!(check_jit(&cidr, 3389, Duration::hours(1), "20.1.2.0/24").is_ok());
    }

    #[test]
    fn the_source_is_the_address_or_the_range_that_holds_it() {
        let rule = |prefixes: &[&str]| JitPortRule {
            number: 3389,
            protocol: "TCP".into(),
            allowed_prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            max: Duration::hours(3),
        };
        let ip: std::net::Ipv4Addr = "84.17.40.23".parse().expect("ip");
        let check = |prefixes: &[&str], want: Option<(&str, bool)>| {
            let got = choose_source(&rule(prefixes), ip);
            match want {
                Some((prefix, whole_range)) => assert_eq!(
                    got,
                    Ok(SourceChoice {
                        prefix: prefix.into(),
                        whole_range
                    }),
                    "{prefixes:?}"
                ),
                None => assert_eq!(got.expect_err("refused").rule, "JitSource"),
            }
        };
        check(&["*"], Some(("84.17.40.23", false)));
        check(&["84.17.40.23"], Some(("84.17.40.23", false)));
        check(&["84.17.40.23/32"], Some(("84.17.40.23", false)));
        check(
            &["84.17.32.0/20", "91.198.174.0/24"],
            Some(("84.17.32.0/20", true)),
        );
        check(
            &["84.0.0.0/8", "84.17.40.0/24"],
            Some(("84.17.40.0/24", true)),
        );
        check(&["91.198.174.0/24"], None);
        check(&["not a prefix", "84.17.32.0/33"], None);
        // What is chosen passes the pre-flight check that runs before sending.
        let r = rule(&["84.17.32.0/20", "91.198.174.0/24"]);
        let chosen = choose_source(&r, ip).expect("range");
        assert!(check_jit(&[r], 3389, Duration::hours(1), &chosen.prefix).is_ok());
    }

    #[test]
    fn the_narrowest_role_that_grants_jit_ranks_first() {
        let requester = [
            json!({"actions": [JIT_INITIATE, "Microsoft.Security/locations/jitNetworkAccessPolicies/*/read", "Microsoft.Compute/virtualMachines/read"]}),
        ];
        let security = [json!({"actions": ["Microsoft.Security/*", "Microsoft.Compute/*/read"]})];
        let contributor =
            [json!({"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Write"]})];
        let reader = [json!({"actions": ["*/read"]})];
        let b = |p: &[Value]| breadth(p, JIT_INITIATE);
        assert_eq!(b(&reader), None);
        let (r, s, c) = (
            b(&requester).expect("r"),
            b(&security).expect("s"),
            b(&contributor).expect("c"),
        );
        assert!(!r.wildcard && s.wildcard && c.wildcard);
        assert!(r < c && r < s, "{r:?} {s:?} {c:?}");
        assert!(c < s, "one wildcard action is fewer than two");
    }

    #[test]
    fn scopes_contain_what_lies_below_them() {
        let vm = "/subscriptions/S3/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01";
        for (scope, inside) in [
            ("/", true),
            ("/subscriptions/s3", true),
            ("/subscriptions/S3/resourceGroups/RG-JUMPBOXES/", true),
            (
                "/subscriptions/S3/resourceGroups/rg-jumpboxes-secure",
                false,
            ),
            ("/subscriptions/S33", false),
            ("/subscriptions/S4", false),
            (vm, true),
            (
                "/providers/Microsoft.Management/managementGroups/corp",
                false,
            ),
        ] {
            assert_eq!(scope_contains(scope, vm), inside, "{scope}");
        }
        assert_eq!(subscription_of(vm), Some("S3"));
        assert_eq!(subscription_of("/subscriptions/"), None);
        assert_eq!(
            subscription_of("/providers/Microsoft.Management/managementGroups/x"),
            None
        );
        assert_eq!(vm_resource_id(vm), Some(vm));
        for bad in [
            "jumpbox-win-01",
            "/subscriptions/S3/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines",
            "/subscriptions/S3/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/x",
            "/subscriptions/S3/resourceGroups/../providers/Microsoft.Compute/virtualMachines/x",
            "/subscriptions/S3/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x@evil.example",
            "/subscriptions/S3/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x?api-version=1",
            "//evil.example/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x/y",
        ] {
            assert_eq!(vm_resource_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_authentication_context_rule_is_read_when_enabled() {
        let target = json!({"caller": "EndUser", "operations": ["All"], "level": "Assignment"});
        let rule = |enabled: bool| {
            json!({"id": "AuthenticationContext_EndUser_Assignment", "ruleType": "RoleManagementPolicyAuthenticationContextRule",
                   "target": target, "isEnabled": enabled, "claimValue": "c1"})
        };
        let p = ActivationPolicy::from_rules(&[rule(true)]);
        assert_eq!(p.auth_context.as_deref(), Some("c1"));
        assert!(p.summary().contains("authentication context c1 required"));
        assert_eq!(
            ActivationPolicy::from_rules(&[rule(false)]).auth_context,
            None
        );
    }
}

/// Whether the `permissions` answer (a list of `{actions, notActions}`) grants `action`,
/// with Azure's wildcards: `*` matches any run of characters, case-insensitively.
pub fn permits(permissions: &[Value], action: &str) -> bool {
    permissions.iter().any(|p| {
        let list = |k: &str| p[k].as_array().cloned().unwrap_or_default();
        let hit = |v: Vec<Value>| {
            v.iter()
                .filter_map(Value::as_str)
                .any(|pat| glob(&pat.to_ascii_lowercase(), &action.to_ascii_lowercase()))
        };
        hit(list("actions")) && !hit(list("notActions"))
    })
}

fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if i < p.len() && p[i] == t[j] {
            i += 1;
            j += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == b'*' {
        i += 1;
    }
    i == p.len()
}

/// The action JIT initiate needs.
pub const JIT_INITIATE: &str =
    "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action";

#[cfg(test)]
mod permit_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_and_not_actions() {
        let reader = [json!({"actions": ["*/read"], "notActions": []})];
        assert!(!permits(&reader, JIT_INITIATE));
        let requester =
            [json!({"actions": [JIT_INITIATE, "Microsoft.Compute/virtualMachines/read"]})];
        assert!(permits(&requester, JIT_INITIATE));
        let owner_but = [json!({"actions": ["*"], "notActions": ["Microsoft.Security/*"]})];
        assert!(!permits(&owner_but, JIT_INITIATE));
    }

    #[test]
    fn reliability_26_only_arm_shaped_ids_become_urls() {
        let good = [
            "/subscriptions/1c9d3f2a-6e4b-4a8c-b7d5-2f0e1a3b4c5d/resourceGroups/rg-jump/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
            "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            "/subscriptions/s/resourceGroups/rg(1)_x.y/providers/Microsoft.Network/publicIPAddresses/pip-1",
        ];
        for id in good {
            assert_eq!(arm_id(id), Some(id), "{id}");
        }
        let bad = [
            "@evil.example/x",
            "//evil.example/x",
            "/subscriptions/@evil.example/x",
            "/subscriptions//evil.example/x",
            "/subscriptions/s/../../x",
            "/subscriptions/s/./x",
            "/subscriptions/s/%2e%2e/x",
            "/subscriptions/s?x=1",
            "/subscriptions/s#frag",
            "/subscriptions/s/\\evil.example",
            "/subscriptions/s/x y",
            "/subscriptions/s/x\n",
            "/subscriptions/s/x\u{202E}",
            "/subscriptions/s/https://evil.example",
            "https://evil.example/subscriptions/s",
            "subscriptions/s",
            "/tenants/t",
            "/subscriptions/",
            "",
        ];
        for id in bad {
            assert_eq!(arm_id(id), None, "{id:?}");
        }
    }

    #[test]
    fn reliability_26_only_graph_shaped_paths_go_to_graph() {
        for path in [
            "/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances/filterByCurrentUser(on='principal')",
            "/v1.0/identityGovernance/privilegedAccess/group/assignmentApprovals/9a7e0000-0000-4000-8000-00000000c0de/stages/9a7e0000-0000-4000-8000-00000000c0de",
            "/v1.0/groups/9a7e0000-0000-4000-8000-00000000c0de",
            "/beta/roleManagement/directory/roleAssignmentApprovals/filterByCurrentUser(on='approver')",
        ] {
            assert_eq!(graph_path(path), Some(path), "{path}");
        }
        for path in [
            "/v1.0/",
            "/v1.0//evil.example",
            "/v1.0/groups/@evil.example",
            "/v1.0/groups/../../x",
            "/v1.0/groups/%2e%2e",
            "/v1.0/groups/x?y",
            "/v1.0/groups/x y",
            "/v1.0/groups/x\u{202E}",
            "/v1.0/groups/https://evil.example",
            "/beta/groups/x",
            "/beta/roleManagement/directory/roleAssignmentApprovals/../../../groups",
            "/subscriptions/s",
            "v1.0/groups/x",
        ] {
            assert_eq!(graph_path(path), None, "{path:?}");
        }
    }
}
