//! `doctor`: the help desk's "why can't I connect?". Each step of the way to a jump box is
//! checked in order, and every failure says what to do next in plain words. A step that
//! cannot be checked because an earlier one failed is skipped, and says so.
//!
//! The report holds no token, refresh token or code, so it can be sent to the help desk.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::ip::{prefix_contains, source_admits};
use jumpgate_core::policy::{self, JIT_INITIATE};
use serde::Serialize;
use serde_json::Value;

use crate::arm::{self, Target};
use crate::engine::{default_port, probe, Engine};

/// The audiences an ARM token may carry.
const ARM_AUDIENCES: [&str; 3] = [
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net/",
];

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// One step of the checklist.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable identifier: `config`, `signed_in`, `token`, `eligible`, `jit_role`,
    /// `jit_policy`, `port`, `public_ip`, `open_rule`, `reachable`, `client`.
    pub step: &'static str,
    pub title: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, when the step failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(step: &'static str, title: &'static str, detail: impl Into<String>) -> Check {
        Check {
            step,
            title,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(
        step: &'static str,
        title: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            step,
            title,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skip(step: &'static str, title: &'static str, detail: impl Into<String>) -> Check {
        Check {
            step,
            title,
            status: Status::Skip,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// The `config` step for a configuration that loaded: it fails when the machine's system file
/// was ignored (RELIABILITY #29), because the organisation's settings then do not apply.
pub fn config_check(config: &jumpgate_core::config::Config) -> Check {
    const TITLE: &str = "Configuration readable";
    let found = format!("tenant {}, {}", config.azure.tenant_id, config.arm());
    match &config.origin.ignored_system {
        None => Check::pass("config", TITLE, found),
        Some(ignored) => Check::fail(
            "config",
            TITLE,
            format!(
                "{found}; the system file {} is ignored: {}",
                ignored.file.display(),
                ignored.why
            ),
            "Ask an administrator to make the system file writable by administrators only, as the detail says; until then the organisation's settings do not apply.",
        ),
    }
}

/// The steps after `config`, with their titles, in order.
pub const STEPS: [(&str, &str); 10] = [
    ("signed_in", "Signed in"),
    ("token", "Token audience and expiry"),
    ("eligible", "Eligible PIM roles"),
    (
        "jit_role",
        "The role that grants JIT is active and in effect",
    ),
    ("jit_policy", "A JIT policy covers the VM"),
    ("port", "The port is in the policy"),
    ("public_ip", "Public IP detected and allowed"),
    ("open_rule", "A JIT rule is open for this IP"),
    ("reachable", "The port answers"),
    ("client", "An RDP/SSH client is installed"),
];

fn title(step: &str) -> &'static str {
    STEPS
        .iter()
        .find(|(s, _)| *s == step)
        .map(|(_, t)| *t)
        .unwrap_or("")
}

/// What the checks found along the way, for the steps after them.
struct Found {
    target: Option<Target>,
    port: Option<u16>,
    ip: Option<String>,
}

/// The checks after `config`: [`run`], then whether the client `connect` would launch for
/// the port is installed.
pub async fn checklist(engine: &Engine, vm: Option<&str>, port: Option<u16>) -> Vec<Check> {
    let mut checks = run(engine, vm, port).await;
    let port = port.unwrap_or_else(|| {
        checks
            .iter()
            .find(|c| c.step == "port" && c.status == Status::Pass)
            .and_then(|c| c.detail.split('/').next()?.parse().ok())
            .unwrap_or(3389)
    });
    let kind = if port == 22 { "SSH" } else { "RDP" };
    checks.push(
        match crate::launch::client_for(&engine.config.launch, port) {
            Ok(program) => Check::pass(
                "client",
                title("client"),
                format!("{kind} client: {program}"),
            ),
            Err(e) => Check::fail("client", title("client"), e.clone(), e),
        },
    );
    checks
}

/// The report `doctor` shows and the support bundle holds: versions, where it pointed, who
/// was signed in, and the checks. No token, refresh token or code is in it.
pub async fn report(
    engine: Option<&Engine>,
    vm: Option<&str>,
    port: Option<u16>,
    checks: &[Check],
) -> Value {
    let account = match engine {
        Some(e) => e.account().await.ok().map(|a| a.upn),
        None => None,
    };
    serde_json::json!({
        "jumpgate": env!("CARGO_PKG_VERSION"),
        "time": Utc::now(),
        "os": std::env::consts::OS,
        "vm": vm,
        "port": port,
        "account": account,
        "arm_endpoint": engine.map(|e| e.config.arm().to_string()),
        "tenant": engine.map(|e| e.config.azure.tenant_id.clone()),
        "config_sources": engine.map(|e| config_sources(&e.config.origin)),
        "passed": !checks.iter().any(|c| c.status == Status::Fail),
        "checks": checks,
    })
}

/// Which file set each key (RELIABILITY #29): `{"user_file", "system_file", "managed",
/// "ignored_system": {"file", "why"}, "keys": {"azure.arm_endpoint": "/etc/jumpgate/config.toml", …}}`.
pub fn config_sources(origin: &jumpgate_core::config::Origin) -> Value {
    use jumpgate_core::config::Source;
    let file = |s: &Source| {
        let path = match s {
            Source::User => &origin.user_file,
            Source::System => &origin.system_file,
        };
        path.as_ref().map(|p| p.display().to_string())
    };
    let keys: serde_json::Map<String, Value> = origin
        .keys
        .iter()
        .map(|(k, s)| (k.clone(), serde_json::json!(file(s))))
        .collect();
    serde_json::json!({
        "user_file": origin.user_file,
        "system_file": origin.system_file,
        "managed": origin.managed,
        "ignored_system": origin.ignored_system,
        "keys": keys,
    })
}

/// The same, as lines for the text report: `  key  ← file (managed)`.
pub fn config_sources_text(origin: &jumpgate_core::config::Origin) -> String {
    use jumpgate_core::config::Source;
    let mut out = String::from("Configuration sources (which file set each key):\n");
    for (key, source) in &origin.keys {
        let path = match source {
            Source::User => &origin.user_file,
            Source::System => &origin.system_file,
        };
        let path = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let managed = origin
            .managed
            .iter()
            .any(|m| key == m || key.starts_with(&format!("{m}.")));
        out.push_str(&format!(
            "  {key}  ← {path}{}\n",
            if managed { " (managed)" } else { "" }
        ));
    }
    if let Some(ignored) = &origin.ignored_system {
        out.push_str(&format!(
            "  The system file {} is ignored, every key of it: {}.\n",
            ignored.file.display(),
            ignored.why
        ));
    }
    out
}

/// Runs the checks from `signed_in` up to `reachable` (the front end adds `config` before and
/// `client` after, as it knows how it launches clients). `vm` is optional: without it, the
/// VM's steps are skipped.
pub async fn run(engine: &Engine, vm: Option<&str>, port: Option<u16>) -> Vec<Check> {
    let mut checks = Vec::new();
    let skip_rest = |checks: &mut Vec<Check>, from: usize, why: &str| {
        for (step, title) in &STEPS[from..STEPS.len() - 1] {
            checks.push(Check::skip(step, title, why));
        }
    };

    // Signed in.
    let account = match engine.session.current().await {
        Ok(Some(t)) => {
            checks.push(Check::pass(
                "signed_in",
                title("signed_in"),
                format!("as {} ({})", t.account.upn, t.account.name),
            ));
            t.account
        }
        Ok(None) => {
            let found = match engine.session.passed_over() {
                Some(why) => format!("the stored sign-in {why}"),
                None => "no sign-in is stored".to_string(),
            };
            checks.push(Check::fail(
                "signed_in",
                title("signed_in"),
                found,
                "Sign in: run jumpgate signin.",
            ));
            skip_rest(&mut checks, 1, "needs a sign-in");
            return checks;
        }
        Err(e) => {
            checks.push(Check::fail(
                "signed_in",
                title("signed_in"),
                format!("the keychain could not be read: {e}"),
                "Unlock your keychain (on Linux: start gnome-keyring or KWallet and log in again), then retry.",
            ));
            skip_rest(&mut checks, 1, "needs a sign-in");
            return checks;
        }
    };

    // Token audience and expiry.
    match engine.session.access_token().await {
        Ok(token) => checks.push(token_check(&token, engine.arm.clock.now())),
        Err(e) => {
            let f = Failure::from(e);
            checks.push(Check::fail(
                "token",
                title("token"),
                f.explanation.message.clone(),
                if f.explanation.kind == Kind::SignIn {
                    "Your sign-in has ended: run jumpgate signin again."
                } else {
                    "Entra ID could not be reached: check your network and retry."
                },
            ));
            skip_rest(&mut checks, 2, "needs a working token");
            return checks;
        }
    }
    if checks.last().is_some_and(|c| c.status == Status::Fail) {
        skip_rest(&mut checks, 2, "needs a working token");
        return checks;
    }

    let mut found = Found {
        target: None,
        port,
        ip: None,
    };
    let arm_failed = |checks: &mut Vec<Check>, step: &'static str, f: &Failure| {
        checks.push(Check::fail(
            step,
            title(step),
            f.explanation.message.clone(),
            match f.explanation.kind {
                Kind::SignIn => "Sign in again: run jumpgate signin.",
                Kind::Unavailable => "Azure is busy or unreachable: wait a minute and retry.",
                Kind::Denied => "You lack a permission Azure needs here: ask your admin.",
                _ => "Retry; if it persists, send the support bundle (jumpgate doctor --bundle FILE) to the help desk.",
            },
        ));
    };

    // Eligible roles.
    let eligible = match arm::eligible_roles(&engine.arm).await {
        Ok(e) if e.is_empty() => {
            checks.push(Check::fail(
                "eligible",
                title("eligible"),
                format!("{} is eligible for no PIM role", account.upn),
                "Ask your admin to make you eligible for the JIT requester role (jumpgate admin pim make-eligible).",
            ));
            Vec::new()
        }
        Ok(e) => {
            checks.push(Check::pass(
                "eligible",
                title("eligible"),
                e.iter()
                    .map(|r| format!("{} at {}", r.role, r.scope_name))
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
            e
        }
        Err(e) => {
            arm_failed(&mut checks, "eligible", &e.into());
            Vec::new()
        }
    };

    // The VM's policy first, so the role is checked where the VM is.
    let target = match vm {
        None => None,
        Some(vm) => match engine.find_target(vm).await {
            Ok(t) => Some(Ok(t)),
            Err(f) => Some(Err(f)),
        },
    };
    let scope = match &target {
        Some(Ok(t)) => Some(t.resource_group()),
        _ => eligible.first().map(|e| e.scope.clone()),
    };

    // The role that grants JIT: active and in effect.
    checks.push(jit_role_check(engine, &eligible, scope.as_deref()).await);

    // The JIT policy and the port.
    match target {
        None => {
            for (step, title) in &STEPS[4..STEPS.len() - 1] {
                checks.push(Check::skip(
                    step,
                    title,
                    "name a VM to check it: jumpgate doctor VM",
                ));
            }
            return checks;
        }
        Some(Err(f)) => {
            let fix = if f.explanation.kind == Kind::NotFound {
                "Check the VM's name (jumpgate targets lists them), or ask your admin to enable JIT on it (jumpgate admin jit enable)."
            } else {
                "Retry; if it persists, ask your admin whether you may read JIT policies."
            };
            checks.push(Check::fail(
                "jit_policy",
                title("jit_policy"),
                f.explanation.message.clone(),
                fix,
            ));
            skip_rest(&mut checks, 5, "needs a JIT policy for the VM");
            return checks;
        }
        Some(Ok(t)) => {
            checks.push(Check::pass(
                "jit_policy",
                title("jit_policy"),
                format!(
                    "{} is in policy {} (ports {})",
                    t.vm,
                    arm::leaf(&t.policy_id),
                    t.ports
                        .iter()
                        .map(|p| p.number.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            found.target = Some(t);
        }
    }
    let Some(target) = found.target.clone() else {
        return checks;
    };
    let port = match default_port(&target, found.port) {
        Ok(p) => p,
        Err(f) => {
            checks.push(Check::fail(
                "port",
                title("port"),
                f.explanation.message,
                "Choose a port with --port.",
            ));
            skip_rest(&mut checks, 6, "needs a port");
            return checks;
        }
    };
    found.port = Some(port);
    let Some(rule) = target.ports.iter().find(|p| p.number == port).cloned() else {
        let allowed: Vec<String> = target.ports.iter().map(|p| p.number.to_string()).collect();
        checks.push(Check::fail(
            "port",
            title("port"),
            format!(
                "port {port} is not in {}'s JIT policy, which allows {}",
                target.vm,
                allowed.join(", ")
            ),
            format!(
                "Use one of the allowed ports (--port {}), or ask your admin to add port {port} to the policy.",
                allowed.first().map(String::as_str).unwrap_or("N")
            ),
        ));
        skip_rest(&mut checks, 6, "needs a port in the policy");
        return checks;
    };
    checks.push(Check::pass(
        "port",
        title("port"),
        format!(
            "{port}/{} for at most {} from {}",
            rule.protocol.to_ascii_lowercase(),
            jumpgate_core::duration::human(rule.max),
            rule.allowed_prefixes.join(", ")
        ),
    ));

    // The public IP: two services agree, and the policy allows it.
    match engine.detect_ip().await {
        Err(f) => checks.push(Check::fail(
            "public_ip",
            title("public_ip"),
            f.explanation.message,
            "Check your internet connection; behind a proxy or VPN that splits traffic, the echo services can disagree. Retry on another network, or pass the address with --ip to jumpgate open.",
        )),
        Ok(d) => {
            let ip = d.ip.to_string();
            let allowed = rule
                .allowed_prefixes
                .iter()
                .any(|p| prefix_contains(p, d.ip));
            if allowed {
                checks.push(Check::pass(
                    "public_ip",
                    title("public_ip"),
                    format!("{ip} (agreed: {})", d.agreed.join(", ")),
                ));
            } else {
                checks.push(Check::fail(
                    "public_ip",
                    title("public_ip"),
                    format!(
                        "your address {ip} is outside what the policy allows for port {port} ({})",
                        rule.allowed_prefixes.join(", ")
                    ),
                    "Connect from an allowed network (the office, or the company VPN), or ask your admin to allow this address.",
                ));
            }
            found.ip = Some(ip);
        }
    }

    // An open rule for this IP: the person's own, which a colleague's on a shared jump box
    // must not hide.
    let now = engine.arm.clock.now();
    let me = engine.account().await.ok();
    let grant = arm::latest_grant_where(&target, port, |g| {
        me.as_ref().is_none_or(|me| me.is(&g.requestor))
    });
    let rule_check = match (&grant, &found.ip) {
        (None, _) => Check::fail(
            "open_rule",
            title("open_rule"),
            format!("you have made no JIT request for {} port {port}", target.vm),
            format!(
                "Open it: jumpgate connect {} (or jumpgate open {} --port {port}).",
                target.vm, target.vm
            ),
        ),
        (Some(g), ip) => {
            let end = g
                .end
                .map(|e| e.format("%H:%M UTC").to_string())
                .unwrap_or_default();
            let open = g.status == "Initiated" && g.end.is_some_and(|e| e > now);
            let covers = ip.as_deref().is_none_or(|ip| source_admits(&g.source, ip));
            if !open {
                Check::fail(
                    "open_rule",
                    title("open_rule"),
                    format!(
                        "the last rule ({} for {}) ended at {end}",
                        g.status, g.source
                    ),
                    format!("Open it again: jumpgate connect {}.", target.vm),
                )
            } else if !covers {
                Check::fail(
                    "open_rule",
                    title("open_rule"),
                    format!(
                        "a rule is open until {end}, but for {}, and your address is now {}",
                        g.source,
                        ip.as_deref().unwrap_or("?")
                    ),
                    format!(
                        "Re-request it for your new address: jumpgate open {} --port {port}.",
                        target.vm
                    ),
                )
            } else {
                Check::pass(
                    "open_rule",
                    title("open_rule"),
                    format!(
                        "open for {} until {end} (requested by {})",
                        g.source, g.requestor
                    ),
                )
            }
        }
    };
    let rule_open = rule_check.status == Status::Pass;
    checks.push(rule_check);

    // The port answers.
    match engine.endpoint(&target, port).await {
        Err(f) => checks.push(Check::fail(
            "reachable",
            title("reachable"),
            f.explanation.message,
            "The VM has no public address Jumpgate can find: ask your admin how it is reached.",
        )),
        Ok(ep) => {
            if probe(&ep, port).await {
                checks.push(Check::pass(
                    "reachable",
                    title("reachable"),
                    format!("{}:{} answers", ep.host, ep.port),
                ));
            } else {
                checks.push(Check::fail(
                    "reachable",
                    title("reachable"),
                    format!("{}:{} does not answer", ep.host, ep.port),
                    if rule_open {
                        "The rule is open but the port does not answer: the VM may be stopped, or a firewall on your side blocks the port, or Azure sees you from another address (a proxy). Try another network, then ask the help desk."
                    } else {
                        "Open a rule for your address first (see above)."
                    },
                ));
            }
        }
    }
    checks
}

/// Reads an access token's claims without trusting them: only to show the audience and
/// expiry. Nothing of the token itself is kept.
fn token_check(token: &str, now: DateTime<Utc>) -> Check {
    let claims: Option<Value> = token.split('.').nth(1).and_then(|p| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p.trim_end_matches('='))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    });
    let Some(claims) = claims else {
        return Check::pass(
            "token",
            title("token"),
            "an access token is present (not a JWT, so its claims are not shown)",
        );
    };
    let aud = claims["aud"].as_str().unwrap_or("");
    let exp = claims["exp"]
        .as_i64()
        .and_then(|e| DateTime::from_timestamp(e, 0));
    if !ARM_AUDIENCES.contains(&aud) {
        return Check::fail(
            "token",
            title("token"),
            format!("the token is for '{aud}', not Azure Resource Manager"),
            "Sign out and in again (jumpgate signout, then jumpgate signin); if it persists, the app registration's API permissions are wrong: tell your admin.",
        );
    }
    match exp {
        Some(e) if e > now => Check::pass(
            "token",
            title("token"),
            format!(
                "for {aud}, valid for {} more",
                jumpgate_core::duration::human(e - now)
            ),
        ),
        _ => Check::fail(
            "token",
            title("token"),
            "the token has expired and could not be renewed",
            "Sign in again: run jumpgate signin.",
        ),
    }
}

/// Whether a role that grants JIT initiate is active and in effect at `scope`.
async fn jit_role_check(engine: &Engine, eligible: &[arm::Eligible], scope: Option<&str>) -> Check {
    let step = "jit_role";
    let in_effect = match scope {
        Some(s) => arm::permissions(&engine.arm, s)
            .await
            .map(|p| policy::permits(&p, JIT_INITIATE))
            .unwrap_or(false),
        None => false,
    };
    let role = match engine.jit_role().await {
        Ok(r) => Some(r),
        Err(_) if in_effect => {
            return Check::pass(
                step,
                title(step),
                "you may open JIT access without a PIM role (standing access)",
            )
        }
        Err(_) if eligible.is_empty() => {
            return Check::skip(step, title(step), "needs an eligible role")
        }
        Err(f) => {
            return Check::fail(
                step,
                title(step),
                f.explanation.message,
                "Ask your admin for the JIT requester role (jumpgate admin role create-jit-requester, then pim make-eligible).",
            )
        }
    };
    let role = role.map(|r| r.role).unwrap_or_default();
    let active = arm::active_roles(&engine.arm)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.role.eq_ignore_ascii_case(&role));
    match (active, in_effect) {
        (Some(a), true) => Check::pass(
            step,
            title(step),
            format!(
                "{role} is active{}",
                a.end
                    .map(|e| format!(
                        " until {} ({} left)",
                        e.format("%H:%M UTC"),
                        jumpgate_core::duration::human(e - engine.arm.clock.now())
                    ))
                    .unwrap_or_default()
            ),
        ),
        (Some(_), false) => Check::fail(
            step,
            title(step),
            format!("{role} is active but Azure does not apply it yet"),
            "Azure can take a few minutes to apply a new role: wait, then run doctor again.",
        ),
        (None, true) => Check::pass(step, title(step), format!("JIT is allowed (through a role other than {role})")),
        (None, false) => Check::fail(
            step,
            title(step),
            format!("{role} is not active"),
            format!("Activate it: jumpgate activate '{role}' --justification '...' (jumpgate connect does this for you)."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_check_reads_audience_and_expiry_only() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("now");
        let token = |claims: &str| {
            format!(
                "e30.{}.c2ln",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
            )
        };
        let ok = token_check(
            &token(r#"{"aud":"https://management.azure.com/","exp":1800003600}"#),
            now,
        );
        assert_eq!(ok.status, Status::Pass);
        assert!(ok.detail.contains("1h"), "{}", ok.detail);
        let graph = token_check(
            &token(r#"{"aud":"https://graph.microsoft.com","exp":1800003600}"#),
            now,
        );
        assert_eq!(graph.status, Status::Fail);
        let old = token_check(
            &token(r#"{"aud":"https://management.azure.com","exp":1799990000}"#),
            now,
        );
        assert_eq!(old.status, Status::Fail);
    }
}
