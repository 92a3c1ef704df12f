//! The first run, with no configuration yet: a work email is enough to find the tenant, and
//! a sign-in method (the organisation's app registration, or the Azure CLI's `az login`)
//! completes the configuration. `jumpgate init` and the tray's first-run view both use this;
//! the discovery request itself is made by `jumpgate-azure`.
//!
//! Entra's OpenID discovery answers for a tenant's verified domain as for its id:
//! `GET {authority}/{domain}/v2.0/.well-known/openid-configuration` names the tenant in its
//! `issuer` (`{authority}/{tenant}/v2.0`) and `token_endpoint`
//! (`{authority}/{tenant}/oauth2/v2.0/token`). An unknown domain is refused with AADSTS90002.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::check_endpoint;

/// Azure's public cloud, where sign-ins go unless the configuration says otherwise.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// The tenant Entra answers with for domains of personal Microsoft accounts (outlook.com,
/// hotmail.com): such accounts have no PIM roles or jump boxes.
const CONSUMER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Why the first run cannot go on, with what to do. `code` is stable for the tray's popover.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirstRunError {
    #[error("'{0}' is not a work email address such as alice@contoso.com: {1}")]
    BadEmail(String, &'static str),
    #[error("the client id '{0}' is not a GUID such as 4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51: copy the Application (client) ID from the app registration's Overview page in Entra ID")]
    BadClientId(String),
    #[error("the tenant id '{0}' is not a GUID such as 7b3f6c1e-2a4d-4e8b-9f10-5c6d7e8f9a01: copy the Tenant ID from Entra ID's Overview page")]
    BadTenantId(String),
    #[error("the authority {0}")]
    BadAuthority(String),
    #[error("Entra ID knows no organisation with the domain {0} (AADSTS90002): check the spelling of your work email; if your organisation signs in under another domain, use that email, or ask your IT department for the tenant id and pass it with --tenant")]
    UnknownDomain(String),
    #[error("{0} is a domain of personal Microsoft accounts, which have no PIM roles or jump boxes: use your work email")]
    PersonalAccount(String),
    #[error("the OpenID discovery answer for {domain} cannot be used: {why}")]
    BadDiscovery { domain: String, why: String },
}

impl FirstRunError {
    /// A stable code for the error, which the tray's popover may switch on.
    pub fn code(&self) -> &'static str {
        match self {
            FirstRunError::BadEmail(..) => "bad_email",
            FirstRunError::BadClientId(_) => "bad_client_id",
            FirstRunError::BadTenantId(_) => "bad_tenant_id",
            FirstRunError::BadAuthority(_) => "bad_authority",
            FirstRunError::UnknownDomain(_) => "unknown_domain",
            FirstRunError::PersonalAccount(_) => "personal_account",
            FirstRunError::BadDiscovery { .. } => "bad_discovery",
        }
    }
}

/// Text a person typed, shown back inert and short in an error.
fn shown(text: &str) -> String {
    let mut s: String = text
        .chars()
        .take(80)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if text.chars().count() > 80 {
        s.push('…');
    }
    s
}

/// The email, trimmed and checked, and its domain in lower case. Entra user names are ASCII:
/// a local part of letters, digits and `. _ % + - '`, and a domain of at least two labels
/// (an internationalised domain in its `xn--` form).
pub fn domain_of(email: &str) -> Result<(String, String), FirstRunError> {
    let bad = |why| Err(FirstRunError::BadEmail(shown(email), why));
    let email = email.trim();
    if email.is_empty() {
        return bad("it is empty");
    }
    if email.len() > 256 {
        return bad("it is longer than 256 characters");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad("it has no @");
    };
    if domain.contains('@') {
        return bad("it has more than one @");
    }
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-'".contains(&b));
    if !local_ok {
        return bad("the part before @ may hold only letters, digits and . _ % + - '");
    }
    let domain = domain.to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if labels.len() < 2 || domain.len() > 253 || !labels.iter().all(label_ok) {
        return bad("the part after @ must be a domain such as contoso.com (an internationalised one in its xn-- form)");
    }
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("the part after @ is an address, not a domain");
    }
    Ok((email.to_string(), domain))
}

fn guid(text: &str) -> Option<String> {
    let t = text.trim();
    // Only the hyphenated form Entra shows; `Uuid` would also take braces and URNs.
    let shape = t.len() == 36
        && t.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    shape.then(|| t.to_ascii_lowercase())
}

/// A client id, as Entra's portal shows it: a GUID, in lower case.
pub fn client_id(text: &str) -> Result<String, FirstRunError> {
    guid(text).ok_or_else(|| FirstRunError::BadClientId(shown(text)))
}

/// A tenant id given by hand: a GUID, in lower case.
pub fn tenant_id(text: &str) -> Result<String, FirstRunError> {
    guid(text).ok_or_else(|| FirstRunError::BadTenantId(shown(text)))
}

/// The authority host, checked as every endpoint is (RELIABILITY #23), without a trailing
/// slash or a path: sign-in endpoints live under `{authority}/{tenant}/`.
pub fn authority(text: &str) -> Result<String, FirstRunError> {
    let t = text.trim();
    check_endpoint(t).map_err(FirstRunError::BadAuthority)?;
    let url = url::Url::parse(t).map_err(|e| FirstRunError::BadAuthority(e.to_string()))?;
    if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
        return Err(FirstRunError::BadAuthority(format!(
            "'{}' must be a scheme and host only, such as {DEFAULT_AUTHORITY}",
            shown(t)
        )));
    }
    Ok(t.trim_end_matches('/').to_string())
}

/// Where discovery is asked for `domain` (already checked by [`domain_of`]).
pub fn discovery_url(authority: &str, domain: &str) -> String {
    format!("{authority}/{domain}/v2.0/.well-known/openid-configuration")
}

/// The tenant id from a discovery answer: the first path segment of `issuer` and of
/// `token_endpoint`, which must agree and be a GUID. Both URLs must pass the endpoint rules,
/// and the token endpoint must be on the authority that was asked, where sign-ins will go.
pub fn tenant_from_discovery(
    authority: &str,
    domain: &str,
    document: &Value,
) -> Result<String, FirstRunError> {
    let bad = |why: String| FirstRunError::BadDiscovery {
        domain: domain.to_string(),
        why,
    };
    let segment = |key: &str| -> Result<(url::Url, String), FirstRunError> {
        let text = document[key]
            .as_str()
            .ok_or_else(|| bad(format!("it has no {key}")))?;
        check_endpoint(text).map_err(|why| bad(format!("{key}: {why}")))?;
        let url = url::Url::parse(text).map_err(|e| bad(format!("{key}: {e}")))?;
        let first = url
            .path_segments()
            .and_then(|mut s| s.next())
            .unwrap_or("")
            .to_string();
        let tenant = guid(&first)
            .ok_or_else(|| bad(format!("{key} names no tenant id ('{}')", shown(&first))))?;
        Ok((url, tenant))
    };
    let (_, from_issuer) = segment("issuer")?;
    let (token, from_token) = segment("token_endpoint")?;
    if from_issuer != from_token {
        return Err(bad(format!(
            "issuer names tenant {from_issuer} but token_endpoint names {from_token}"
        )));
    }
    let asked = url::Url::parse(authority).map_err(|e| bad(e.to_string()))?;
    if token.origin() != asked.origin() {
        return Err(bad(format!(
            "its token endpoint is on {}, not on the authority {authority}",
            token.origin().ascii_serialization()
        )));
    }
    if from_issuer == CONSUMER_TENANT {
        return Err(FirstRunError::PersonalAccount(domain.to_string()));
    }
    Ok(from_issuer)
}

/// What a refused discovery means: Entra answers an unknown tenant or domain with
/// AADSTS90002 (`invalid_tenant`; the simulator says `invalid_request` with the same code).
pub fn discovery_refused(domain: &str, status: u16, body: &str) -> FirstRunError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let codes = v["error_codes"].as_array().cloned().unwrap_or_default();
    let unknown = v["error"] == "invalid_tenant"
        || codes.iter().any(|c| c.as_i64() == Some(90002))
        || v["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS90002"));
    if unknown {
        return FirstRunError::UnknownDomain(domain.to_string());
    }
    let said = v["error_description"]
        .as_str()
        .or(v["error"].as_str())
        .map(|s| crate::text::line(s.lines().next().unwrap_or("")).into_owned())
        .unwrap_or_else(|| "no explanation".into());
    FirstRunError::BadDiscovery {
        domain: domain.to_string(),
        why: format!("the authority answered HTTP {status}: {said}"),
    }
}

/// How the person signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// The organisation's app registration for Jumpgate (a public client): browser or
    /// device-code sign-in.
    App { client_id: String },
    /// The Azure CLI's existing `az login`, in the tenant: no app registration needed.
    AzureCli,
}

/// What the first run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstConfig {
    pub email: String,
    pub domain: String,
    pub tenant_id: String,
    pub method: Method,
    /// The authority host, written only when it is not Azure's public cloud.
    pub authority: String,
}

impl FirstConfig {
    /// The configuration file's text: the keys a person would write, with comments. Every
    /// value was checked (GUIDs, a domain, an endpoint), so none needs escaping.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "# Jumpgate's configuration, written by its first run for {}.\n\
             # Every key is described in Jumpgate's README, under Configuration.\n\n\
             [azure]\n\
             tenant_id = \"{}\"   # the organisation behind {}\n",
            self.email, self.tenant_id, self.domain
        );
        match &self.method {
            Method::App { client_id } => out.push_str(&format!(
                "client_id = \"{client_id}\"   # the organisation's app registration for Jumpgate\n"
            )),
            Method::AzureCli => out.push_str(
                "# No app registration: every sign-in reuses the Azure CLI's `az login`, in this tenant.\n\
                 sign_in = \"azure_cli\"\n",
            ),
        }
        if self.authority != DEFAULT_AUTHORITY {
            out.push_str(&format!(
                "authority_host = \"{}\"   # sign-ins go here instead of {DEFAULT_AUTHORITY}\n",
                self.authority
            ));
        }
        out
    }
}

/// The user's configuration file: `--config PATH`, else `JUMPGATE_CONFIG`, else the platform
/// config directory (`~/.config/jumpgate/config.toml`), as [`crate::config::locate_layers`]
/// looks for it.
pub fn user_file(explicit: Option<&Path>, env_user: Option<PathBuf>) -> Option<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or(env_user.filter(|p| !p.as_os_str().is_empty()))
        .or_else(|| dirs::config_dir().map(|d| d.join("jumpgate").join("config.toml")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TENANT: &str = "7b3f6c1e-2a4d-4e8b-9f10-5c6d7e8f9a01";

    #[test]
    fn the_domain_comes_from_a_work_email() {
        let ok = [
            ("alice@contoso.example", "contoso.example"),
            ("  Alice.Anders@Contoso.COM ", "contoso.com"),
            ("o'brien+jit@sub.contoso.co.uk", "sub.contoso.co.uk"),
            ("a@xn--bcher-kva.example", "xn--bcher-kva.example"),
        ];
        for (email, domain) in ok {
            assert_eq!(domain_of(email).expect(email).1, domain, "{email}");
        }
        let bad = [
            ("", "empty"),
            ("alice", "no @"),
            ("alice@", "domain such as"),
            ("@contoso.com", "before @"),
            ("a@b@contoso.com", "more than one @"),
            ("alice@contoso", "domain such as"),
            ("alice@contoso..com", "domain such as"),
            ("alice@-contoso.com", "domain such as"),
            ("alice@contoso.com/evil", "domain such as"),
            ("alice@contoso.com\n[azure]", "domain such as"),
            ("al ice@contoso.com", "before @"),
            ("alice\"@contoso.com", "before @"),
            ("alice@bücher.example", "xn--"),
            ("alice@10.0.0.1", "an address"),
            ("alice@contoso.com?x=1", "domain such as"),
            (".alice@contoso.com", "before @"),
        ];
        for (email, says) in bad {
            let err = domain_of(email).expect_err(email);
            assert_eq!(err.code(), "bad_email");
            assert!(err.to_string().contains(says), "{email}: {err}");
            assert!(!err.to_string().contains('\n'), "{email}: {err}");
        }
        let long = format!("{}@contoso.com", "a".repeat(300));
        assert!(domain_of(&long)
            .expect_err("long")
            .to_string()
            .contains("256"));
    }

    #[test]
    fn ids_are_guids() {
        assert_eq!(
            client_id(" 4F2C9A6E-8B1D-4C3E-A5F7-0D9E8C7B6A51 ").expect("guid"),
            "4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51"
        );
        for bad in [
            "",
            "4f2c9a6e8b1d4c3ea5f70d9e8c7b6a51",
            "{4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51}",
            "4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a5g",
            "4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51\"\nx=1",
            "urn:uuid:4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51",
        ] {
            assert_eq!(client_id(bad).expect_err(bad).code(), "bad_client_id");
            assert_eq!(tenant_id(bad).expect_err(bad).code(), "bad_tenant_id");
        }
    }

    #[test]
    fn the_authority_is_an_endpoint_and_nothing_more() {
        assert_eq!(
            authority("https://login.microsoftonline.com/").expect("ok"),
            DEFAULT_AUTHORITY
        );
        assert_eq!(
            authority("http://127.0.0.1:4000").expect("simulator"),
            "http://127.0.0.1:4000"
        );
        for bad in [
            "http://login.microsoftonline.com",
            "http://127.0.0.1@evil.example",
            "https://login.microsoftonline.com/common",
            "https://login.microsoftonline.com?x=1",
            "login.microsoftonline.com",
        ] {
            assert_eq!(authority(bad).expect_err(bad).code(), "bad_authority");
        }
        assert_eq!(
            discovery_url("http://127.0.0.1:4000", "contoso.example"),
            "http://127.0.0.1:4000/contoso.example/v2.0/.well-known/openid-configuration"
        );
    }

    fn doc(issuer: &str, token: &str) -> Value {
        json!({"issuer": issuer, "token_endpoint": token, "authorization_endpoint": "x"})
    }

    #[test]
    fn the_tenant_comes_from_the_discovery_answer() {
        let azure = doc(
            &format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
            &format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"),
        );
        assert_eq!(
            tenant_from_discovery(DEFAULT_AUTHORITY, "contoso.com", &azure).expect("tenant"),
            TENANT
        );
        let sim = "http://127.0.0.1:4000";
        let local = doc(
            &format!("{sim}/{}/v2.0", TENANT.to_uppercase()),
            &format!("{sim}/{TENANT}/oauth2/v2.0/token"),
        );
        assert_eq!(
            tenant_from_discovery(sim, "contoso.example", &local).expect("tenant"),
            TENANT
        );
    }

    #[test]
    fn a_discovery_answer_that_names_no_tenant_is_refused() {
        let other = "5c6d7e8f-2a4d-4e8b-9f10-7b3f6c1e9a01";
        let good_token = format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
        let cases = [
            (json!({}), "no issuer"),
            (
                json!({"issuer": 5, "token_endpoint": good_token}),
                "no issuer",
            ),
            (
                doc("https://login.microsoftonline.com/common/v2.0", &good_token),
                "names no tenant id",
            ),
            (
                doc(&format!("http://evil.example/{TENANT}/v2.0"), &good_token),
                "https://",
            ),
            (
                doc(
                    &format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
                    &format!("https://login.microsoftonline.com/{other}/oauth2/v2.0/token"),
                ),
                "but token_endpoint names",
            ),
            (
                doc(
                    &format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
                    &format!("https://evil.example/{TENANT}/oauth2/v2.0/token"),
                ),
                "not on the authority",
            ),
            (
                doc(
                    &format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
                    &format!("https://user@login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"),
                ),
                "user name",
            ),
        ];
        for (document, says) in cases {
            let err = tenant_from_discovery(DEFAULT_AUTHORITY, "contoso.com", &document)
                .expect_err(&document.to_string());
            assert_eq!(err.code(), "bad_discovery", "{err}");
            assert!(err.to_string().contains(says), "{document}: {err}");
        }
        let consumer = doc(
            &format!("https://login.microsoftonline.com/{CONSUMER_TENANT}/v2.0"),
            &format!("https://login.microsoftonline.com/{CONSUMER_TENANT}/oauth2/v2.0/token"),
        );
        let err = tenant_from_discovery(DEFAULT_AUTHORITY, "outlook.com", &consumer)
            .expect_err("personal");
        assert_eq!(err.code(), "personal_account");
    }

    #[test]
    fn an_unknown_domain_is_told_apart_from_other_refusals() {
        let entra = r#"{"error":"invalid_tenant","error_description":"AADSTS90002: Tenant 'nope.example' not found.","error_codes":[90002]}"#;
        let sim = r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'nope.example' not found.","error_codes":[90002]}"#;
        for body in [entra, sim] {
            let err = discovery_refused("nope.example", 400, body);
            assert_eq!(err.code(), "unknown_domain");
            assert!(err.to_string().contains("--tenant"), "{err}");
        }
        let other = discovery_refused(
            "contoso.com",
            500,
            "{\"error\":\"server_error\",\"error_description\":\"boom\\u001b[2J\"}",
        );
        assert_eq!(other.code(), "bad_discovery");
        assert!(other.to_string().contains("HTTP 500: boom"), "{other}");
        assert!(!other.to_string().contains('\u{1b}'), "{other}");
        let html = discovery_refused("contoso.com", 502, "<html>bad gateway</html>");
        assert!(html.to_string().contains("no explanation"), "{html}");
    }

    #[test]
    fn the_written_file_is_a_valid_configuration() {
        let app = FirstConfig {
            email: "alice@contoso.example".into(),
            domain: "contoso.example".into(),
            tenant_id: TENANT.into(),
            method: Method::App {
                client_id: "4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51".into(),
            },
            authority: DEFAULT_AUTHORITY.into(),
        };
        let text = app.to_toml();
        let c = crate::config::Config::parse("init.toml", &text).expect(&text);
        assert_eq!(c.azure.tenant_id, TENANT);
        assert_eq!(c.azure.client_id, "4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51");
        assert_eq!(c.azure.sign_in, crate::config::SignIn::App);
        // The default authority is not written: it stays the default.
        assert!(!text.contains("authority_host"), "{text}");
        assert_eq!(c.authority(), format!("{DEFAULT_AUTHORITY}/{TENANT}"));

        let cli = FirstConfig {
            method: Method::AzureCli,
            authority: "http://127.0.0.1:4000".into(),
            ..app
        };
        let text = cli.to_toml();
        let c = crate::config::Config::parse("init.toml", &text).expect(&text);
        assert_eq!(c.azure.sign_in, crate::config::SignIn::AzureCli);
        assert_eq!(c.azure.client_id, "");
        assert_eq!(c.authority(), format!("http://127.0.0.1:4000/{TENANT}"));
    }

    #[test]
    fn the_users_file_is_found_as_the_configuration_is() {
        assert_eq!(
            user_file(Some(Path::new("/x.toml")), Some(PathBuf::from("/env.toml"))),
            Some(PathBuf::from("/x.toml"))
        );
        assert_eq!(
            user_file(None, Some(PathBuf::from("/env.toml"))),
            Some(PathBuf::from("/env.toml"))
        );
        let platform = user_file(None, Some(PathBuf::new())).expect("a config dir");
        assert!(platform.ends_with("jumpgate/config.toml"), "{platform:?}");
    }
}
