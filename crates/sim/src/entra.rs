//! Microsoft Entra ID v2.0 endpoints for a public client: OpenID metadata, JWKS, the
//! authorize page (auth code + PKCE S256), the token endpoint and device-code sign-in.

use std::collections::HashMap;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chrono::Duration;
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clock::arm_time;
use crate::error::OAuthError;
use crate::server::{Shared, Sim};
use crate::state::{AuthCode, DeviceCode, RefreshToken, StepUp, User, World};

/// The resource ARM tokens are issued for, as it appears in `aud`.
pub const ARM_AUDIENCE: &str = "https://management.azure.com/";
const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];
const MAX_FIELD: usize = 8 * 1024;

type Params = HashMap<String, String>;

/// Whether `tenant` in a path names this tenant, as Entra accepts it.
fn tenant_matches(world: &World, tenant: &str) -> bool {
    tenant.eq_ignore_ascii_case(&world.tenant.id)
        || tenant.eq_ignore_ascii_case(&world.tenant.domain)
        || tenant == "organizations"
        || tenant == "common"
}

fn unknown_tenant(sim: &Sim, tenant: &str) -> Response {
    OAuthError::new(
        "invalid_request",
        90002,
        format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
    )
    .at(arm_time(sim.clock.now()))
    .into_response()
}

pub async fn openid_configuration(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
) -> Response {
    let tid = {
        let world = sim.world();
        if !tenant_matches(&world, &tenant) {
            return unknown_tenant(&sim, &tenant);
        }
        world.tenant.id.clone()
    };
    let base = &sim.base_url;
    Json(json!({
        "issuer": format!("{base}/{tid}/v2.0"),
        "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
        "response_modes_supported": ["query"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["none"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid", "upn", "preferred_username", "email", "unique_name", "amr", "acrs", "nonce"],
        "claims_parameter_supported": true,
        "tenant_region_scope": "EU",
    }))
    .into_response()
}

pub async fn jwks(State(sim): State<Shared>, Path(tenant): Path<String>) -> Response {
    if !tenant_matches(&sim.world(), &tenant) {
        return unknown_tenant(&sim, &tenant);
    }
    Json(sim.signer.jwks()).into_response()
}

/// Why an authorize request cannot go on, and whether it may be reported to the client
/// through its redirect URI (only once that URI is known to be registered).
enum AuthorizeFailure {
    Page(StatusCode, String),
    Redirect(String, &'static str, String),
}

/// The redirect URI, when the app registration lists it. Entra compares scheme, host, path
/// and query exactly, and ignores the port of a loopback URI (`http://localhost`,
/// `http://127.0.0.1`), so a native app may listen on any port. A registered URI without a
/// path stands for `/`.
fn registered_redirect(world: &World, client_id: &str, uri: &str) -> Option<url::Url> {
    let url = url::Url::parse(uri).ok()?;
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let matches = |registered: &String| {
        let Ok(r) = url::Url::parse(registered) else {
            return false;
        };
        let loopback =
            r.scheme() == "http" && matches!(r.host_str(), Some("localhost") | Some("127.0.0.1"));
        r.scheme() == url.scheme()
            && r.host_str() == url.host_str()
            && (loopback || r.port_or_known_default() == url.port_or_known_default())
            && r.path() == url.path()
            && r.query() == url.query()
    };
    world
        .client(client_id)?
        .redirect_uris
        .iter()
        .any(matches)
        .then_some(url)
}

fn redirect_mismatch(client_id: &str, uri: &str) -> String {
    format!(
        "The redirect URI '{uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
    )
}

fn unknown_client(world: &World, client_id: &str) -> String {
    format!(
        "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
        world.tenant.display_name
    )
}

/// Whether a scope list asks for Microsoft Graph by name.
fn asks_graph(scope: &str) -> bool {
    scope.split_whitespace().any(|s| {
        let s = s.to_ascii_lowercase();
        s.starts_with("https://graph.microsoft.com/")
            || s.starts_with("00000003-0000-0000-c000-000000000000/")
    })
}

/// Whether the app may be given tokens for `scope`. The tenant's own app: every resource,
/// Microsoft Graph only with `graph_consented`. An app registered through Graph: the
/// resources and delegated permissions its `requiredResourceAccess` lists (consented at first
/// sign-in, as the user's consent prompt would; `.default` stands for all of them).
fn consented(world: &World, client_id: &str, scope: &str) -> bool {
    let Some(app) = world.client(client_id) else {
        return false;
    };
    if app.built_in {
        if !asks_graph(scope) {
            return true;
        }
        return graph_permissions(scope)
            .iter()
            .all(|p| *p == ".default" || own_app_consented(world, p));
    }
    scope
        .split_whitespace()
        .filter(|item| !OIDC_SCOPES.contains(item))
        .all(|item| {
            let Some((resource, permission)) = item.rsplit_once('/') else {
                return false;
            };
            let resource_app = match resource.trim_end_matches('/').to_ascii_lowercase().as_str() {
                "https://management.azure.com" | "https://management.core.windows.net" => {
                    crate::state::ARM_APP_ID
                }
                "https://graph.microsoft.com" => crate::state::GRAPH_APP_ID,
                _ => return false,
            };
            app.required_resource_access
                .iter()
                .filter(|(r, _)| r.eq_ignore_ascii_case(resource_app))
                .flat_map(|(_, access)| access)
                .any(|(id, kind)| {
                    kind == "Scope"
                        && (permission == ".default"
                            || crate::state::KNOWN_SCOPES.iter().any(|(r, value, known)| {
                                *r == resource_app
                                    && value.eq_ignore_ascii_case(permission)
                                    && known.eq_ignore_ascii_case(id)
                            }))
                })
        })
}

/// The Microsoft Graph permissions a scope list names (`.default` among them), by name.
fn graph_permissions(scope: &str) -> Vec<&str> {
    scope
        .split_whitespace()
        .filter_map(|item| {
            let lower = item.to_ascii_lowercase();
            let graph = lower.starts_with("https://graph.microsoft.com/")
                || lower.starts_with("00000003-0000-0000-c000-000000000000/");
            graph.then(|| item.rsplit('/').next().unwrap_or(item))
        })
        .collect()
}

/// Whether an admin consented to the Graph permission `name` for the tenant's own app.
fn own_app_consented(world: &World, name: &str) -> bool {
    if !world.tenant.graph_consented {
        return false;
    }
    match &world.tenant.graph_consent {
        crate::tenant::GraphConsent::All(all) => *all,
        crate::tenant::GraphConsent::Only(list) => {
            list.iter().any(|p| p.eq_ignore_ascii_case(name))
        }
    }
}

/// What a Graph `.default` scope grants the app: the delegated Graph permissions its
/// registration asks for that were consented, as scope URIs.
fn graph_default(world: &World, client_id: &str) -> Vec<String> {
    let Some(app) = world.client(client_id) else {
        return Vec::new();
    };
    app.required_resource_access
        .iter()
        .filter(|(r, _)| r.eq_ignore_ascii_case(crate::state::GRAPH_APP_ID))
        .flat_map(|(_, access)| access)
        .filter(|(_, kind)| kind == "Scope")
        .filter_map(|(id, _)| crate::state::scope_name(crate::state::GRAPH_APP_ID, id))
        .filter(|name| !app.built_in || own_app_consented(world, name))
        .map(|name| format!("{GRAPH_AUDIENCE}/{name}"))
        .collect()
}

fn consent_missing(world: &World, client_id: &str) -> OAuthError {
    let name = world
        .client(client_id)
        .map(|a| a.display_name.clone())
        .unwrap_or_default();
    OAuthError::new(
        "invalid_grant",
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID '{client_id}' named '{name}'. Send an interactive authorization request for this user and resource."
        ),
    )
}

/// What a `claims` request (OpenID Connect Core 5.5) asks of the access token: the
/// authentication contexts in `access_token.acrs` (meeting one means multi-factor sign-in
/// too) and `mfa` in `access_token.amr`. Other requested claims are accepted and ignored.
/// Entra takes the JSON as it is; a base64 form, which some tools pass on, is accepted too.
pub fn parse_claims(text: &str) -> Result<StepUp, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(StepUp::default());
    }
    let parsed: Value = serde_json::from_str(text)
        .ok()
        .or_else(|| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| B64.decode(text.trim_end_matches('=')))
                .ok()?;
            serde_json::from_slice(&bytes).ok()
        })
        .filter(Value::is_object)
        .ok_or("The claims parameter is not a JSON object (OpenID Connect claims request).")?;
    let wanted = |claim: &Value| -> Vec<String> {
        let mut out: Vec<String> = claim["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if let Some(v) = claim["value"].as_str() {
            out.push(v.to_string());
        }
        out
    };
    let token = &parsed["access_token"];
    let acrs = wanted(&token["acrs"]);
    let mfa = !acrs.is_empty() || wanted(&token["amr"]).iter().any(|m| m == "mfa");
    Ok(StepUp { acrs, mfa })
}

fn check_authorize(sim: &Sim, tenant: &str, p: &Params) -> Result<(), AuthorizeFailure> {
    let page = |code: u32, text: String| {
        AuthorizeFailure::Page(StatusCode::BAD_REQUEST, format!("AADSTS{code}: {text}"))
    };
    if p.values().any(|v| v.len() > MAX_FIELD) {
        return Err(page(90015, "A request parameter is too long.".into()));
    }
    let world = sim.world();
    if !tenant_matches(&world, tenant) {
        return Err(page(90002, format!("Tenant '{tenant}' not found.")));
    }
    let client_id = p.get("client_id").map(String::as_str).unwrap_or("");
    if world.client(client_id).is_none() {
        return Err(page(700016, unknown_client(&world, client_id)));
    }
    let redirect = p.get("redirect_uri").map(String::as_str).unwrap_or("");
    if registered_redirect(&world, client_id, redirect).is_none() {
        return Err(page(50011, redirect_mismatch(client_id, redirect)));
    }
    let state = p.get("state").cloned().unwrap_or_default();
    let fail = |error: &'static str, code: u32, text: &str| {
        AuthorizeFailure::Redirect(state.clone(), error, format!("AADSTS{code}: {text}"))
    };
    if p.get("response_type").map(String::as_str) != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            700054,
            "response_type must be 'code'.",
        ));
    }
    match (p.get("code_challenge"), p.get("code_challenge_method").map(String::as_str)) {
        (Some(c), Some("S256")) if c.len() == 43 => {}
        (None, _) => return Err(fail("invalid_request", 9002325, "Proof Key for Code Exchange is required: send code_challenge with code_challenge_method=S256.")),
        _ => return Err(fail("invalid_request", 50148, "The code_challenge must be a 43-character S256 challenge and code_challenge_method must be 'S256'.")),
    }
    let scope = p.get("scope").map(String::as_str).unwrap_or("");
    if let Err(e) = parse_scope(scope) {
        return Err(fail("invalid_scope", 70011, &e));
    }
    if let Err(e) = parse_claims(p.get("claims").map(String::as_str).unwrap_or("")) {
        return Err(fail("invalid_request", 90100, &e));
    }
    if !consented(&world, client_id, scope) {
        let e = consent_missing(&world, client_id);
        return Err(fail("consent_required", 65001, &e.description));
    }
    Ok(())
}

fn failure_response(sim: &Sim, p: &Params, failure: AuthorizeFailure) -> Response {
    match failure {
        AuthorizeFailure::Page(status, text) => (status, Html(error_page(&text))).into_response(),
        AuthorizeFailure::Redirect(state, error, description) => redirect_with(
            sim,
            p,
            &[
                ("error", error),
                ("error_description", &description),
                ("state", &state),
            ],
        ),
    }
}

fn redirect_with(sim: &Sim, p: &Params, pairs: &[(&str, &str)]) -> Response {
    let redirect = p.get("redirect_uri").map(String::as_str).unwrap_or("");
    let client_id = p.get("client_id").map(String::as_str).unwrap_or("");
    let Some(mut url) = registered_redirect(&sim.world(), client_id, redirect) else {
        return (
            StatusCode::BAD_REQUEST,
            Html(error_page("AADSTS50011: invalid redirect URI")),
        )
            .into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            if !v.is_empty() || *k != "state" {
                query.append_pair(k, v);
            }
        }
    }
    Redirect::to(url.as_str()).into_response()
}

pub async fn authorize_page(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    if let Err(failure) = check_authorize(&sim, &tenant, &p) {
        return failure_response(&sim, &p, failure);
    }
    let hint = p.get("login_hint").cloned().unwrap_or_default();
    if p.get("prompt").map(String::as_str) == Some("none") {
        // Without a browser session Entra cannot sign in silently. The control API stands in
        // for a browser that already has one, so scripts can drive the real redirect flow.
        let user = hinted_user(&sim.world(), &hint);
        return match (sim.control, user) {
            (true, Some(user)) => complete_sign_in(&sim, &p, &user),
            _ => redirect_with(
                &sim,
                &p,
                &[
                    ("error", "login_required"),
                    (
                        "error_description",
                        "AADSTS50058: A silent sign-in request was sent but no user is signed in.",
                    ),
                    ("state", p.get("state").map(String::as_str).unwrap_or("")),
                ],
            ),
        };
    }
    let users = sim.world().users.clone();
    Html(sign_in_page(&tenant, &p, &users, &hint)).into_response()
}

pub async fn authorize_submit(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    Form(p): Form<Params>,
) -> Response {
    if let Err(failure) = check_authorize(&sim, &tenant, &p) {
        return failure_response(&sim, &p, failure);
    }
    let state = p.get("state").cloned().unwrap_or_default();
    if p.contains_key("cancel") {
        return redirect_with(
            &sim,
            &p,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "AADSTS65004: User declined to consent to access the app.",
                ),
                ("state", &state),
            ],
        );
    }
    let chosen = p.get("upn").cloned().unwrap_or_default();
    let Some(user) = hinted_user(&sim.world(), &chosen) else {
        return (
            StatusCode::BAD_REQUEST,
            Html(error_page(&format!(
                "AADSTS50034: The user account {chosen} does not exist in this directory."
            ))),
        )
            .into_response();
    };
    complete_sign_in(&sim, &p, &user)
}

/// The user a `login_hint` names: by UPN (a guest's `…#EXT#@` one included), object id, or
/// a guest's home address.
fn hinted_user(world: &World, hint: &str) -> Option<User> {
    world.user(hint).cloned().or_else(|| {
        world
            .users
            .iter()
            .find(|u| u.guest && u.email.eq_ignore_ascii_case(hint))
            .cloned()
    })
}

fn complete_sign_in(sim: &Sim, p: &Params, user: &User) -> Response {
    let code = random_token(64);
    let now = sim.clock.now();
    // The sign-in meets what the claims request asks (the user does the MFA it takes).
    // check_authorize has refused a claims parameter that does not parse.
    let step_up =
        parse_claims(p.get("claims").map(String::as_str).unwrap_or("")).unwrap_or_default();
    {
        let mut world = sim.world();
        world.auth_codes.insert(
            code.clone(),
            AuthCode {
                client_id: p.get("client_id").cloned().unwrap_or_default(),
                redirect_uri: p.get("redirect_uri").cloned().unwrap_or_default(),
                challenge: p.get("code_challenge").cloned().unwrap_or_default(),
                oid: user.oid.clone(),
                scope: p.get("scope").cloned().unwrap_or_default(),
                nonce: p.get("nonce").cloned(),
                expires: now + Duration::minutes(10),
                redeemed: false,
                step_up: step_up.clone(),
            },
        );
        world.record(
            now,
            "entra.signed_in",
            json!({"upn": user.upn, "flow": "authorization_code", "client_id": p.get("client_id"), "acrs": step_up.acrs, "mfa": user.mfa || step_up.mfa}),
        );
    }
    let state = p.get("state").cloned().unwrap_or_default();
    redirect_with(sim, p, &[("code", &code), ("state", &state)])
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}\
h1{font-size:1.4rem}button{display:block;width:100%;text-align:left;margin:.4rem 0;padding:.7rem;font-size:1rem;\
border:1px solid #8a8886;background:#fff;border-radius:4px;cursor:pointer}button.hint{border:2px solid #0067b8}\
button:focus{outline:3px solid #0067b8}.small{color:#605e5c;font-size:.85rem}";

fn sign_in_page(tenant: &str, p: &Params, users: &[User], hint: &str) -> String {
    let hidden: String = p
        .iter()
        .filter(|(k, _)| k.as_str() != "upn")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    let buttons: String = users
        .iter()
        .map(|u| {
            let hinted = u.upn.eq_ignore_ascii_case(hint) || (u.guest && u.email.eq_ignore_ascii_case(hint));
            let class = if hinted { " class=\"hint\"" } else { "" };
            format!(
                "<button type=\"submit\" name=\"upn\" value=\"{}\"{class}>{}<br><span class=\"small\">{}</span></button>",
                html_escape(&u.upn),
                html_escape(&u.name),
                html_escape(&u.upn)
            )
        })
        .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in to your account</title>\
<style>{PAGE_STYLE}</style></head><body><h1>Pick an account</h1>\
<p class=\"small\">jumpgate-sim: a simulated Microsoft Entra ID sign-in for tenant {}.</p>\
<form method=\"post\" action=\"/{}/oauth2/v2.0/authorize\">{hidden}{buttons}\
<button type=\"submit\" name=\"cancel\" value=\"1\">Cancel</button></form></body></html>",
        html_escape(tenant),
        html_escape(tenant)
    )
}

fn error_page(text: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in error</title><style>{PAGE_STYLE}</style></head>\
<body><h1>Sorry, but we're having trouble signing you in.</h1><p>{}</p></body></html>",
        html_escape(text)
    )
}

/// A parsed `scope` parameter: one resource (or none) plus OpenID scopes.
#[derive(Debug, Clone)]
struct Scopes {
    audience: String,
    granted: String,
    openid: bool,
    offline: bool,
}

fn parse_scope(scope: &str) -> Result<Scopes, String> {
    let mut resource: Option<String> = None;
    let mut resource_scopes = Vec::new();
    let mut openid = false;
    let mut offline = false;
    for item in scope.split_whitespace() {
        if OIDC_SCOPES.contains(&item) {
            openid |= item == "openid";
            offline |= item == "offline_access";
            continue;
        }
        let Some((res, _permission)) = item.rsplit_once('/') else {
            return Err(format!("The provided value for the input parameter 'scope' is not valid. The scope {item} is not valid."));
        };
        if !res.starts_with("https://") {
            return Err(format!("The provided value for the input parameter 'scope' is not valid. The scope {item} is not valid."));
        }
        let res = res.trim_end_matches('/');
        let aud = match res {
            "https://management.azure.com" | "https://management.core.windows.net" => {
                ARM_AUDIENCE.to_string()
            }
            other => format!("{other}/"),
        };
        if resource.as_ref().is_some_and(|r| r != &aud) {
            return Err("The provided value for the input parameter 'scope' is not valid. Scopes must all be for one resource.".into());
        }
        resource = Some(aud);
        resource_scopes.push(item.to_string());
    }
    let audience = resource.unwrap_or_else(|| GRAPH_AUDIENCE.to_string());
    let granted = if resource_scopes.is_empty() {
        "User.Read".to_string()
    } else if audience == ARM_AUDIENCE {
        "https://management.azure.com/user_impersonation".to_string()
    } else {
        resource_scopes.join(" ")
    };
    Ok(Scopes {
        audience,
        granted,
        openid,
        offline,
    })
}

pub fn random_token(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

/// Signs an access token for `user` and remembers its id so it can be revoked. `step_up` is
/// what the sign-in proved beyond the user's usual methods.
pub fn access_token(
    sim: &Sim,
    world: &mut World,
    user: &User,
    audience: &str,
    scp: &str,
    client_id: &str,
    step_up: &StepUp,
) -> (String, i64) {
    let now = sim.clock.now();
    let lifetime = world.tenant.access_token_lifetime_secs as i64;
    let uti = random_token(22);
    let amr: Vec<&str> = if user.mfa || step_up.mfa {
        vec!["pwd", "mfa"]
    } else {
        vec!["pwd"]
    };
    let mut claims = json!({
        "aud": audience,
        "iss": format!("{}/{}/v2.0", sim.base_url, world.tenant.id),
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": now.timestamp() + lifetime,
        "oid": user.oid,
        "sub": user.oid,
        "tid": world.tenant.id,
        "upn": user.upn,
        "unique_name": user.upn,
        "name": user.name,
        // Each granted scope by its permission's name, as `scp` carries them.
        "scp": scp
            .split_whitespace()
            .map(|s| s.rsplit('/').next().unwrap_or(s))
            .collect::<Vec<_>>()
            .join(" "),
        "appid": client_id,
        "amr": amr,
        "uti": uti,
        "ver": "1.0",
    });
    if !step_up.acrs.is_empty() {
        claims["acrs"] = json!(step_up.acrs);
    }
    // The groups the user is in as the token is issued; it never changes afterwards. Beyond
    // the limit Entra names none and points to Graph instead (the overage claim).
    let groups = world.member_groups(&user.oid, now);
    if groups.len() > world.tenant.groups_claim_limit {
        claims["_claim_names"] = json!({"groups": "src1"});
        claims["_claim_sources"] = json!({"src1": {"endpoint": format!(
            "{}/v1.0/users/{}/getMemberObjects",
            sim.base_url, user.oid
        )}});
    } else if !groups.is_empty() {
        claims["groups"] = json!(groups);
    }
    if user.guest {
        // Entra names a B2B guest by their home address, and gives no `upn`.
        if let Some(map) = claims.as_object_mut() {
            map.remove("upn");
            map.insert("unique_name".into(), json!(user.email));
            map.insert("email".into(), json!(user.email));
            map.insert(
                "idp".into(),
                json!(format!(
                    "https://sts.windows.net/{}/",
                    crate::state::stable_guid(&format!(
                        "home-tenant:{}",
                        user.email.rsplit('@').next().unwrap_or("")
                    ))
                )),
            );
        }
    }
    world
        .issued_tokens
        .entry(user.oid.clone())
        .or_default()
        .push(uti);
    (sim.signer.sign(&claims), lifetime)
}

fn token_response(
    sim: &Sim,
    world: &mut World,
    user: &User,
    scopes: &Scopes,
    client_id: &str,
    nonce: Option<&str>,
    step_up: &StepUp,
) -> Response {
    let now = sim.clock.now();
    let mut scopes = scopes.clone();
    if scopes.audience.trim_end_matches('/') == GRAPH_AUDIENCE {
        // `.default` stands for every consented permission the app's registration lists.
        let mut granted: Vec<String> = Vec::new();
        for item in scopes.granted.split_whitespace() {
            if item.ends_with("/.default") {
                granted.extend(graph_default(world, client_id));
            } else {
                granted.push(item.to_string());
            }
        }
        granted.dedup();
        scopes.granted = granted.join(" ");
    }
    let scopes = &scopes;
    let (access, lifetime) = access_token(
        sim,
        world,
        user,
        &scopes.audience,
        &scopes.granted,
        client_id,
        step_up,
    );
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scopes.granted,
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    });
    if scopes.offline {
        let rt = format!("0.SIM.{}", random_token(96));
        world.refresh_tokens.insert(
            rt.clone(),
            RefreshToken {
                oid: user.oid.clone(),
                scope: scopes.granted.clone(),
                client_id: client_id.to_string(),
                rotated: false,
                revoked: false,
                step_up: step_up.clone(),
            },
        );
        body["refresh_token"] = json!(rt);
    }
    if scopes.openid {
        let mut claims = json!({
            "aud": client_id,
            "iss": format!("{}/{}/v2.0", sim.base_url, world.tenant.id),
            "iat": now.timestamp(),
            "nbf": now.timestamp(),
            "exp": now.timestamp() + 3600,
            "oid": user.oid,
            "sub": user.oid,
            "tid": world.tenant.id,
            "name": user.name,
            // A guest's home address, as Entra shows guests *(assumption)*.
            "preferred_username": if user.guest { &user.email } else { &user.upn },
            "ver": "2.0",
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        body["id_token"] = json!(sim.signer.sign(&claims));
    }
    world.record(
        now,
        "entra.token_issued",
        json!({"upn": user.upn, "audience": scopes.audience, "acrs": step_up.acrs}),
    );
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("static header"),
    );
    response
}

pub async fn token(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    Form(p): Form<Params>,
) -> Response {
    let now = sim.clock.now();
    let fail = |e: OAuthError| e.at(arm_time(now)).into_response();
    if p.values().any(|v| v.len() > MAX_FIELD) {
        return fail(OAuthError::new(
            "invalid_request",
            90015,
            "A request parameter is too long.",
        ));
    }
    let mut world = sim.world();
    if !tenant_matches(&world, &tenant) {
        drop(world);
        return unknown_tenant(&sim, &tenant);
    }
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    if world.client(&client_id).is_none() {
        let mut e = OAuthError::new(
            "unauthorized_client",
            700016,
            unknown_client(&world, &client_id),
        );
        e.status = StatusCode::BAD_REQUEST;
        return fail(e);
    }
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = p.get("code").cloned().unwrap_or_default();
            let Some(entry) = world.auth_codes.get(&code).cloned() else {
                return fail(OAuthError::new("invalid_grant", 9002313, "Invalid request. The authorization code is malformed or was not issued by this tenant."));
            };
            if entry.redeemed {
                return fail(OAuthError::new("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."));
            }
            if now > entry.expires {
                return fail(OAuthError::new("invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."));
            }
            let redirect = p.get("redirect_uri").map(String::as_str).unwrap_or("");
            if registered_redirect(&world, &client_id, redirect).is_none() {
                return fail(OAuthError::new(
                    "invalid_client",
                    50011,
                    redirect_mismatch(&client_id, redirect),
                ));
            }
            if p.get("redirect_uri") != Some(&entry.redirect_uri) {
                return fail(OAuthError::new(
                    "invalid_grant",
                    50148,
                    "The redirect_uri does not match the one used in the authorization request.",
                ));
            }
            let verifier = p.get("code_verifier").map(String::as_str).unwrap_or("");
            let valid_chars = verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !(43..=128).contains(&verifier.len()) || !valid_chars {
                return fail(OAuthError::new(
                    "invalid_request",
                    501491,
                    "The code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636).",
                ));
            }
            let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
            if challenge != entry.challenge {
                return fail(OAuthError::new("invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request."));
            }
            let scope = p.get("scope").cloned().unwrap_or(entry.scope.clone());
            let scopes = match parse_scope(&scope) {
                Ok(s) => s,
                Err(e) => return fail(OAuthError::new("invalid_scope", 70011, e)),
            };
            if !consented(&world, &client_id, &scope) {
                world.record(
                    now,
                    "entra.consent_required",
                    json!({"oid": entry.oid, "scope": scope}),
                );
                return fail(consent_missing(&world, &client_id));
            }
            if let Some(e) = world.auth_codes.get_mut(&code) {
                e.redeemed = true;
            }
            let Some(user) = world.user_by_oid(&entry.oid).cloned() else {
                return fail(OAuthError::new(
                    "invalid_grant",
                    50034,
                    "The user account does not exist in this directory.",
                ));
            };
            token_response(
                &sim,
                &mut world,
                &user,
                &scopes,
                &client_id,
                entry.nonce.as_deref(),
                &entry.step_up,
            )
        }
        Some("refresh_token") => {
            let rt = p.get("refresh_token").cloned().unwrap_or_default();
            let Some(entry) = world.refresh_tokens.get(&rt).cloned() else {
                return fail(OAuthError::new("invalid_grant", 9002313, "Invalid request. The refresh token is malformed or was not issued by this tenant."));
            };
            if entry.revoked {
                return fail(OAuthError::new("invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password."));
            }
            if entry.rotated {
                world.record(now, "entra.refresh_token_reused", json!({"oid": entry.oid}));
                return fail(OAuthError::new("invalid_grant", 70000, "The provided value for the input parameter 'refresh_token' is not valid: this refresh token was already exchanged for a newer one."));
            }
            if !entry.client_id.eq_ignore_ascii_case(&client_id) {
                return fail(OAuthError::new(
                    "invalid_grant",
                    70000,
                    "The refresh token was issued to a different client.",
                ));
            }
            let scope = p
                .get("scope")
                .cloned()
                .unwrap_or(format!("{} offline_access", entry.scope));
            let mut scopes = match parse_scope(&scope) {
                Ok(s) => s,
                Err(e) => return fail(OAuthError::new("invalid_scope", 70011, e)),
            };
            scopes.offline = true;
            // Failures from here on leave the refresh token as it was: it stays usable.
            if !consented(&world, &client_id, &scope) {
                world.record(
                    now,
                    "entra.consent_required",
                    json!({"oid": entry.oid, "scope": scope}),
                );
                return fail(consent_missing(&world, &client_id));
            }
            let claims = p.get("claims").map(String::as_str).unwrap_or("");
            let wanted = match parse_claims(claims) {
                Ok(w) => w,
                Err(e) => return fail(OAuthError::new("invalid_request", 90100, e)),
            };
            if !entry.step_up.covers(&wanted) {
                // A refresh token cannot prove more than its sign-in did: the user must sign
                // in again, answering the claims challenge.
                world.record(
                    now,
                    "entra.interaction_required",
                    json!({"oid": entry.oid, "claims": claims}),
                );
                let mut e = OAuthError::new("interaction_required", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.");
                e.claims = Some(claims.to_string());
                return fail(e);
            }
            let Some(user) = world.user_by_oid(&entry.oid).cloned() else {
                return fail(OAuthError::new(
                    "invalid_grant",
                    50034,
                    "The user account does not exist in this directory.",
                ));
            };
            // Without rotation the answer carries no refresh token and the one sent stays
            // valid, as RFC 6749 section 6 allows.
            scopes.offline = world.rotate_refresh_tokens;
            if world.rotate_refresh_tokens {
                if let Some(e) = world.refresh_tokens.get_mut(&rt) {
                    e.rotated = true;
                }
            }
            token_response(
                &sim,
                &mut world,
                &user,
                &scopes,
                &client_id,
                None,
                &entry.step_up,
            )
        }
        Some("urn:ietf:params:oauth:grant-type:device_code") => {
            let code = p.get("device_code").cloned().unwrap_or_default();
            let Some(entry) = world
                .device_codes
                .iter_mut()
                .find(|d| d.device_code == code)
            else {
                return fail(OAuthError::new(
                    "bad_verification_code",
                    70000,
                    "The device code was not recognised.",
                ));
            };
            if entry.redeemed {
                return fail(OAuthError::new(
                    "invalid_grant",
                    54005,
                    "The device code was already redeemed.",
                ));
            }
            if now >= entry.expires {
                return fail(OAuthError::new(
                    "expired_token",
                    70020,
                    "The provided device code has expired: start a new sign-in.",
                ));
            }
            if entry.declined {
                return fail(OAuthError::new(
                    "authorization_declined",
                    65004,
                    "The user declined the sign-in.",
                ));
            }
            let too_fast = entry
                .last_poll
                .is_some_and(|last| now - last < Duration::seconds(entry.interval));
            entry.last_poll = Some(now);
            if too_fast {
                entry.interval += 5;
                return fail(OAuthError::new(
                    "slow_down",
                    70016,
                    "The client is polling too often: wait longer between requests.",
                ));
            }
            let Some(oid) = entry.signed_in.clone() else {
                return fail(OAuthError::new(
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                ));
            };
            entry.redeemed = true;
            let scope = entry.scope.clone();
            let step_up = entry.step_up.clone();
            if !consented(&world, &client_id, &scope) {
                world.record(
                    now,
                    "entra.consent_required",
                    json!({"oid": oid, "scope": scope}),
                );
                return fail(consent_missing(&world, &client_id));
            }
            let Some(user) = world.user_by_oid(&oid).cloned() else {
                return fail(OAuthError::new(
                    "invalid_grant",
                    50034,
                    "The user account does not exist in this directory.",
                ));
            };
            let scopes = match parse_scope(&scope) {
                Ok(s) => s,
                Err(e) => return fail(OAuthError::new("invalid_scope", 70011, e)),
            };
            token_response(&sim, &mut world, &user, &scopes, &client_id, None, &step_up)
        }
        other => fail(OAuthError::new(
            "unsupported_grant_type",
            70003,
            format!(
                "The app requested an unsupported grant type '{}'.",
                other.unwrap_or("")
            ),
        )),
    }
}

pub async fn devicecode(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    Form(p): Form<Params>,
) -> Response {
    let now = sim.clock.now();
    let mut world = sim.world();
    if !tenant_matches(&world, &tenant) {
        drop(world);
        return unknown_tenant(&sim, &tenant);
    }
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    let Some(app) = world.client(&client_id) else {
        return OAuthError::new(
            "unauthorized_client",
            700016,
            unknown_client(&world, &client_id),
        )
        .at(arm_time(now))
        .into_response();
    };
    if !app.fallback_public_client {
        // Without "Allow public client flows" Entra takes the app for a confidential client.
        return OAuthError::new(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
        .at(arm_time(now))
        .into_response();
    }
    let scope = p.get("scope").cloned().unwrap_or_default();
    if let Err(e) = parse_scope(&scope) {
        return OAuthError::new("invalid_scope", 70011, e)
            .at(arm_time(now))
            .into_response();
    }
    let step_up = match parse_claims(p.get("claims").map(String::as_str).unwrap_or("")) {
        Ok(s) => s,
        Err(e) => {
            return OAuthError::new("invalid_request", 90100, e)
                .at(arm_time(now))
                .into_response()
        }
    };
    let user_code: String = {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = rand::rng();
        (0..9)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let device_code = random_token(96);
    let interval = world.tenant.device_code_interval_secs as i64;
    world.device_codes.push(DeviceCode {
        device_code: device_code.clone(),
        user_code: user_code.clone(),
        client_id,
        scope,
        expires: now + Duration::seconds(900),
        interval,
        last_poll: None,
        signed_in: None,
        declined: false,
        redeemed: false,
        step_up,
    });
    world.record(
        now,
        "entra.device_code_issued",
        json!({"user_code": user_code}),
    );
    let uri = format!("{}/devicelogin", sim.base_url);
    Json(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": uri,
        "expires_in": 900,
        "interval": interval,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
    }))
    .into_response()
}

/// Completes a pending device-code sign-in as `upn`. Shared by the verification page and the
/// control API.
pub fn complete_device(sim: &Sim, user_code: &str, upn: &str, decline: bool) -> Result<(), String> {
    let now = sim.clock.now();
    let mut world = sim.world();
    let user = hinted_user(&world, upn).ok_or_else(|| format!("unknown user '{upn}'"))?;
    let wanted = user_code.trim().to_ascii_uppercase().replace('-', "");
    let entry = world
        .device_codes
        .iter_mut()
        .find(|d| d.user_code == wanted && now < d.expires && !d.redeemed)
        .ok_or_else(|| format!("no pending device sign-in has the code '{user_code}'"))?;
    if decline {
        entry.declined = true;
    } else {
        entry.signed_in = Some(user.oid.clone());
    }
    world.record(
        now,
        "entra.device_code_completed",
        json!({"upn": user.upn, "declined": decline}),
    );
    Ok(())
}

pub async fn devicelogin_page(State(sim): State<Shared>) -> Response {
    let users = sim.world().users.clone();
    let options: String = users
        .iter()
        .map(|u| format!("<button type=\"submit\" name=\"upn\" value=\"{0}\">{1}<br><span class=\"small\">{0}</span></button>", html_escape(&u.upn), html_escape(&u.name)))
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Enter code</title><style>{PAGE_STYLE}</style></head><body>\
<h1>Enter code</h1><p class=\"small\">Enter the code displayed on your app or device, then pick the account to sign in with.</p>\
<form method=\"post\" action=\"/devicelogin\"><label>Code <input name=\"user_code\" autocomplete=\"off\" required></label>{options}\
<button type=\"submit\" name=\"decline\" value=\"1\">Decline</button></form></body></html>"
    ))
    .into_response()
}

pub async fn devicelogin_submit(State(sim): State<Shared>, Form(p): Form<Params>) -> Response {
    let code = p.get("user_code").cloned().unwrap_or_default();
    let upn = p.get("upn").cloned().unwrap_or_default();
    let decline = p.contains_key("decline");
    let upn = if decline && upn.is_empty() {
        sim.world()
            .users
            .first()
            .map(|u| u.upn.clone())
            .unwrap_or_default()
    } else {
        upn
    };
    match complete_device(&sim, &code, &upn, decline) {
        Ok(()) => Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Done</title><style>{PAGE_STYLE}</style></head><body><h1>{}</h1><p>You may close this window.</p></body></html>",
            if decline { "Sign-in declined" } else { "You have signed in" }
        ))
        .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Html(error_page(&e))).into_response(),
    }
}

/// Claims of a valid ARM access token, or the reason it is not valid.
pub fn verify_access_token(
    sim: &Sim,
    world: &World,
    token: &str,
) -> Result<Value, (&'static str, &'static str)> {
    let arm_audiences = [
        ARM_AUDIENCE,
        "https://management.azure.com",
        "https://management.core.windows.net/",
        "https://management.core.windows.net",
    ];
    verify_for(sim, world, token, &arm_audiences).map_err(|e| {
        if e.0 == "InvalidAuthenticationTokenAudience" {
            (e.0, "The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.azure.com/'.")
        } else {
            e
        }
    })
}

/// Claims of a valid Microsoft Graph access token, or the reason it is not valid.
pub fn verify_graph_token(
    sim: &Sim,
    world: &World,
    token: &str,
) -> Result<Value, (&'static str, &'static str)> {
    verify_for(
        sim,
        world,
        token,
        &[
            GRAPH_AUDIENCE,
            "https://graph.microsoft.com/",
            "00000003-0000-0000-c000-000000000000",
        ],
    )
}

fn verify_for(
    sim: &Sim,
    world: &World,
    token: &str,
    audiences: &[&str],
) -> Result<Value, (&'static str, &'static str)> {
    let claims = sim
        .signer
        .verify(token)
        .map_err(|_| ("InvalidAuthenticationToken", "The access token is invalid."))?;
    let aud = claims["aud"].as_str().unwrap_or("");
    if !audiences.contains(&aud) {
        return Err((
            "InvalidAuthenticationTokenAudience",
            "The access token has been obtained for another audience.",
        ));
    }
    if claims["tid"].as_str() != Some(world.tenant.id.as_str()) {
        return Err(("InvalidAuthenticationTokenTenant", "The access token is from the wrong issuer. It must match the tenant associated with this subscription."));
    }
    // The signing key is the same on every run: a token from another simulator (another
    // base URL) names another issuer.
    if claims["iss"].as_str() != Some(format!("{}/{}/v2.0", sim.base_url, world.tenant.id).as_str())
    {
        return Err(("InvalidAuthenticationTokenTenant", "The access token is from the wrong issuer. It must match the tenant associated with this subscription."));
    }
    let exp = claims["exp"].as_i64().unwrap_or(0);
    if exp <= sim.clock.now().timestamp() {
        return Err((
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
        ));
    }
    if claims["uti"]
        .as_str()
        .is_some_and(|uti| world.revoked_tokens.contains(uti))
    {
        return Err((
            "InvalidAuthenticationToken",
            "The access token has been revoked.",
        ));
    }
    Ok(claims)
}
