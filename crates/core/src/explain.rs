//! Every Azure and Entra error Jumpgate knows, as a message that says what to do.
//! Unknown codes are shown verbatim with the service's own message.

use serde::Serialize;

/// What kind of failure, so callers can pick an exit code or an icon without matching text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Sign in again (interactively).
    SignIn,
    /// Refused: not allowed, or denied by an approver.
    Denied,
    /// The request breaks a policy rule.
    Policy,
    /// Azure is throttling or unavailable; it was retried and gave up.
    Unavailable,
    NotFound,
    /// Already done, or in flight.
    Conflict,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub kind: Kind,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Explains an ARM error from its HTTP status, error code and message.
pub fn arm(status: u16, code: &str, message: &str) -> Explanation {
    let (kind, text) = match code {
        "AuthorizationFailed" => (
            Kind::Denied,
            "Azure refused: you do not hold a role that allows this here. If a PIM role grants it, activate that role first (jumpgate roles), and if you just did, wait a minute for it to take effect.".to_string(),
        ),
        "RoleAssignmentRequestPolicyValidationFailed" => {
            let rules = bracketed(message);
            let advice: Vec<&str> = rules
                .iter()
                .map(|r| match r.as_str() {
                    "ExpirationRule" => "ask for a shorter duration (jumpgate roles shows the maximum)",
                    "JustificationRule" => "give a justification with --justification",
                    "TicketingRule" => "give a ticket with --ticket SYSTEM:NUMBER",
                    "MfaRule" => "sign in again with multi-factor authentication (jumpgate signin --mfa)",
                    "EligibilityRule" => "you are not eligible for this role at this scope: ask your admin",
                    _ => "check the role's policy with jumpgate roles",
                })
                .collect();
            (Kind::Policy, format!("The role's policy refused the request ({}): {}.", rules.join(", "), advice.join("; ")))
        }
        "RoleAssignmentRequestAcrsValidationFailed" => (
            Kind::SignIn,
            match step_up_claims(code, message) {
                Some(claims) => format!("The role needs a stronger sign-in (a Conditional Access authentication context): run jumpgate signin --claims '{claims}', then try again."),
                None => "The role needs a stronger sign-in (a Conditional Access authentication context): run jumpgate signin again.".into(),
            },
        ),
        "RoleAssignmentExists" => (Kind::Conflict, "The role is already active for you: nothing to activate.".into()),
        "RoleAssignmentRequestExists" => (Kind::Conflict, "A request for this role is already pending: see jumpgate requests.".into()),
        "ActiveDurationTooShort" => (Kind::Policy, "A role cannot be deactivated within 5 minutes of activation: try again shortly.".into()),
        "InvalidAuthenticationToken" | "ExpiredAuthenticationToken" | "AuthenticationFailed" | "InvalidAuthenticationTokenAudience" => {
            (Kind::SignIn, "Azure did not accept your sign-in: run jumpgate signin.".into())
        }
        "TooManyRequests" => (Kind::Unavailable, "Azure is throttling requests and Jumpgate gave up waiting: try again in a few minutes.".into()),
        "ServiceUnavailable" | "InternalServerError" | "GatewayTimeout" => {
            (Kind::Unavailable, "Azure is unavailable right now and retries did not help: try again in a few minutes.".into())
        }
        "SelfApprovalNotAllowed" => (Kind::Denied, "You cannot approve or deny your own request.".into()),
        "ApprovalStageAlreadyCompleted" => (Kind::Conflict, "This request was already decided.".into()),
        "SubscriptionNotFound" => (Kind::NotFound, "Azure does not know this subscription, or you cannot see it: check azure.subscription_id.".into()),
        _ if message.contains("not a subset of policy") => (
            Kind::Policy,
            format!("JIT refused the request because it is outside the VM's policy (port, source address or duration): {message}"),
        ),
        _ if status == 404 => (Kind::NotFound, format!("Not found: {message}")),
        _ if status == 403 => (Kind::Denied, format!("Azure refused ({code}): {message}")),
        _ if status == 409 => (Kind::Conflict, format!("{code}: {message}")),
        _ => (Kind::Other, if code.is_empty() { format!("Azure answered HTTP {status}: {message}") } else { format!("{code}: {message}") }),
    };
    Explanation {
        kind,
        code: code.to_string(),
        message: text,
    }
}

/// The claims request that asks Entra for multi-factor authentication in the access token.
/// PIM's `MfaRule` comes with no claims challenge of its own *(an assumption: Entra's claims
/// request for `amr`, as MSAL sends it for step-up)*.
pub const MFA_CLAIMS: &str = r#"{"access_token":{"amr":{"essential":true,"values":["mfa"]}}}"#;

/// Reads a claims request given by a person or a challenge: a JSON object, or the base64
/// of one (as a `WWW-Authenticate` claims challenge carries it). Answers it as compact JSON.
pub fn parse_claims(text: &str) -> Result<String, String> {
    use base64::Engine as _;
    let t = text.trim();
    let json = if t.starts_with('{') {
        t.to_string()
    } else {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(t)
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.trim_end_matches('='))
            })
            .map_err(|_| "the claims are neither JSON nor base64 of JSON".to_string())?;
        String::from_utf8(bytes).map_err(|_| "the claims are not text".to_string())?
    };
    let value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("the claims are not valid JSON: {e}"))?;
    if !value.is_object() || json.len() > 4096 {
        return Err("the claims must be one JSON object, such as {\"access_token\":{\"acrs\":{\"essential\":true,\"value\":\"c1\"}}}".into());
    }
    Ok(value.to_string())
}

/// The claims a new sign-in must ask for after an activation refused for want of them:
/// `RoleAssignmentRequestAcrsValidationFailed` carries its challenge in the message as
/// `&claims=<URL-encoded JSON>` (sometimes wrapped in an outer error whose message is a JSON
/// document), and a policy failure naming `MfaRule` asks for MFA. `None` for anything else,
/// and for a challenge that is not a JSON object.
pub fn step_up_claims(code: &str, message: &str) -> Option<String> {
    let acrs = code == "RoleAssignmentRequestAcrsValidationFailed"
        || message.contains("RoleAssignmentRequestAcrsValidationFailed");
    if acrs {
        let start = message.find("claims=")? + "claims=".len();
        let raw = &message[start..];
        let decoded = if raw.starts_with('{') {
            // Written out: the JSON object, up to its closing brace.
            let mut depth = 0usize;
            let end = raw.char_indices().find_map(|(i, c)| {
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                (depth == 0).then_some(i + 1)
            })?;
            raw[..end].replace("\\\"", "\"")
        } else {
            // URL-encoded: up to the end of the query fragment or of a quoted string.
            let end = raw
                .find(|c: char| c == '&' || c == '"' || c == '\\' || c.is_whitespace())
                .unwrap_or(raw.len());
            url::form_urlencoded::parse(format!("c={}", &raw[..end]).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())?
        };
        let value: serde_json::Value = serde_json::from_str(decoded.trim()).ok()?;
        return value.is_object().then(|| value.to_string());
    }
    let mfa = code == "RoleAssignmentRequestPolicyValidationFailed"
        && bracketed(message).iter().any(|r| r == "MfaRule");
    mfa.then(|| MFA_CLAIMS.to_string())
}

/// Explains an OAuth error from Entra's token endpoint.
pub fn entra(error: &str, description: &str) -> Explanation {
    let aadsts = description.split(':').next().unwrap_or("").trim();
    let (kind, text) = match error {
        // Consent is the organisation's to give; signing in again does not change it, and
        // the sign-in itself stays good.
        _ if aadsts == "AADSTS65001" => (
            Kind::Denied,
            "Your organisation has not consented to a Microsoft Graph permission Jumpgate asked for (User.ReadBasic.All for admin commands; the PIM for Groups permissions for groups): ask an admin to grant consent for the app (jumpgate admin app create lists them). Your sign-in is kept.".to_string(),
        ),
        // A device code asked of an app without public client flows, which Entra takes for a
        // confidential client: `admin app create` leaves them off unless asked.
        _ if aadsts == "AADSTS7000218" => (
            Kind::Denied,
            "This app registration does not allow device-code sign-in (its public client flows are off): sign in through the browser with jumpgate signin, or ask your admin to allow public client flows for the app (jumpgate admin app create --device-code makes one that does).".to_string(),
        ),
        "invalid_grant" | "interaction_required" | "login_required" | "consent_required" => (
            Kind::SignIn,
            match aadsts {
                "AADSTS50173" => "Your sign-in was revoked (a password change or an admin): run jumpgate signin.".to_string(),
                "AADSTS700082" | "AADSTS70008" => "Your sign-in expired after a long time unused: run jumpgate signin.".into(),
                "AADSTS70043" => "Your organisation requires you to sign in again: run jumpgate signin.".into(),
                "AADSTS50076" | "AADSTS50079" => "Multi-factor authentication is required: run jumpgate signin.".into(),
                _ => "Your sign-in is no longer valid: run jumpgate signin.".into(),
            },
        ),
        "access_denied" | "authorization_declined" => (Kind::Denied, "The sign-in was declined.".into()),
        "expired_token" => (Kind::SignIn, "The device code expired before the sign-in finished: run jumpgate signin --device-code again.".into()),
        "unauthorized_client" | "invalid_client" => (
            Kind::Other,
            "Entra ID does not know Jumpgate's client id in this tenant: check azure.client_id and azure.tenant_id, or ask your admin to register the app.".into(),
        ),
        "invalid_scope" => (Kind::Other, format!("Entra ID refused the requested scope: {description}")),
        "temporarily_unavailable" => (Kind::Unavailable, "Entra ID is temporarily unavailable: try again shortly.".into()),
        _ => (Kind::Other, format!("{error}: {description}")),
    };
    Explanation {
        kind,
        code: error.to_string(),
        message: text,
    }
}

/// The quoted names inside `[...]` of a PIM policy failure message.
fn bracketed(message: &str) -> Vec<String> {
    let Some(start) = message.find('[') else {
        return Vec::new();
    };
    let Some(end) = message[start..].find(']') else {
        return Vec::new();
    };
    message[start + 1..start + end]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_up_claims_come_from_the_refusal() {
        let want = r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#;
        let acrs = "RoleAssignmentRequestAcrsValidationFailed";
        let check = |code: &str, message: &str, expected: Option<&str>| {
            assert_eq!(
                step_up_claims(code, message).as_deref(),
                expected,
                "{code}: {message}"
            );
        };
        // As Azure sends it: the challenge URL-encoded after `&claims=`.
        check(
            acrs,
            "&claims=%7B%22access_token%22%3A%7B%22acrs%22%3A%7B%22essential%22%3Atrue%2C%20%22value%22%3A%22c1%22%7D%7D%7D",
            Some(want),
        );
        // Written out, as PowerShell shows it.
        check(
            acrs,
            r#"&claims={"access_token":{"acrs":{"essential":true, "value":"c1"}}}"#,
            Some(want),
        );
        // Wrapped in an outer error whose message is a JSON document.
        check(
            "UnknownError",
            r#"{"errorCode":"RoleAssignmentRequestAcrsValidationFailed","message":"&claims=%7B%22access_token%22%3A%7B%22acrs%22%3A%7B%22essential%22%3Atrue%2C%20%22value%22%3A%22c1%22%7D%7D%7D"}"#,
            Some(want),
        );
        check(
            "RoleAssignmentRequestPolicyValidationFailed",
            r#"The following policy rules failed: ["MfaRule"]"#,
            Some(MFA_CLAIMS),
        );
        check(
            "RoleAssignmentRequestPolicyValidationFailed",
            r#"The following policy rules failed: ["JustificationRule"]"#,
            None,
        );
        check(acrs, "no challenge here", None);
        check(acrs, "&claims=%7Bnot json", None);
        check(acrs, "&claims=[1,2]", None);
        check("AuthorizationFailed", "&claims=%7B%7D", None);
        assert_eq!(parse_claims("e30=").as_deref(), Ok("{}"));
        assert_eq!(
            parse_claims(r#" {"access_token": {"amr": {"values": ["mfa"]}}} "#).as_deref(),
            Ok(r#"{"access_token":{"amr":{"values":["mfa"]}}}"#)
        );
        for bad in ["", "[1]", "not base64 !", "bm90IGpzb24=", "{\"a\":"] {
            assert!(parse_claims(bad).is_err(), "{bad}");
        }
        assert!(arm(400, acrs, "&claims=%7B%22access_token%22%3A%7B%7D%7D")
            .message
            .contains("--claims"));
    }

    #[test]
    fn known_codes_say_what_to_do() {
        let table = [
            (
                403,
                "AuthorizationFailed",
                "x",
                Kind::Denied,
                "activate that role",
            ),
            (
                400,
                "RoleAssignmentRequestPolicyValidationFailed",
                "The following policy rules failed: [\"ExpirationRule\",\"JustificationRule\"]",
                Kind::Policy,
                "shorter duration",
            ),
            (
                400,
                "RoleAssignmentRequestPolicyValidationFailed",
                "The following policy rules failed: [\"MfaRule\"]",
                Kind::Policy,
                "multi-factor",
            ),
            (
                400,
                "BadRequest",
                "The given access request is not a subset of policy 'p'.",
                Kind::Policy,
                "outside the VM's policy",
            ),
            (429, "TooManyRequests", "", Kind::Unavailable, "throttling"),
            (
                401,
                "ExpiredAuthenticationToken",
                "",
                Kind::SignIn,
                "jumpgate signin",
            ),
        ];
        for (status, code, message, kind, phrase) in table {
            let e = arm(status, code, message);
            assert_eq!(e.kind, kind, "{code}");
            assert!(e.message.contains(phrase), "{code}: {}", e.message);
        }
    }

    #[test]
    fn a_device_code_for_an_app_without_public_client_flows_says_what_to_do() {
        let e = entra(
            "invalid_client",
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
        assert_eq!(e.kind, Kind::Denied);
        assert!(e.message.contains("device-code sign-in"), "{}", e.message);
        assert!(e.message.contains("jumpgate signin"), "{}", e.message);
    }

    #[test]
    fn unknown_codes_are_shown_verbatim() {
        let e = arm(400, "SomethingNew", "The service said this.");
        assert_eq!(e.kind, Kind::Other);
        assert_eq!(e.message, "SomethingNew: The service said this.");
        assert_eq!(
            entra("weird_error", "AADSTS1: text").message,
            "weird_error: AADSTS1: text"
        );
    }

    #[test]
    fn reliability_06_entra_sign_in_errors_ask_for_one_interactive_sign_in() {
        for (error, description) in [
            ("invalid_grant", "AADSTS50173: revoked"),
            ("invalid_grant", "AADSTS700082: inactive"),
            ("interaction_required", "AADSTS50076: mfa"),
            ("invalid_grant", "AADSTS70043: frequency"),
        ] {
            let e = entra(error, description);
            assert_eq!(e.kind, Kind::SignIn, "{description}");
            assert!(e.message.contains("jumpgate signin"));
        }
    }
}

/// Why an engine operation stopped: what happened in words a user can act on, and whether it
/// was a wait that ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub explanation: Explanation,
    pub timed_out: bool,
    /// The claims a new interactive sign-in must ask for before the refused call can
    /// succeed (MFA or a Conditional Access authentication context), as a JSON object.
    pub claims: Option<String>,
}

impl Failure {
    pub fn new(kind: Kind, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            explanation: Explanation {
                kind,
                code: code.into(),
                message: message.into(),
            },
            timed_out: false,
            claims: None,
        }
    }

    pub fn timeout(message: impl Into<String>) -> Failure {
        Failure {
            timed_out: true,
            ..Failure::new(Kind::Other, "timed_out", message)
        }
    }

    /// A request the user got wrong (an unknown role, a malformed ticket).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Other, "usage", message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.explanation.message)
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Failure {
        Failure::new(Kind::Other, "config", e.to_string())
    }
}
