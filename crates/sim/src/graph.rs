//! The Microsoft Graph v1.0 calls Jumpgate makes: `GET /v1.0/users/{id | userPrincipalName}`,
//! which turns an admin's "alice@contoso.example" into the object id ARM wants, and the app
//! registration an admin creates once (`applications` and `servicePrincipals`, listed and
//! created; one application read by object id or client id, and its owners, in `apps.rs`).
//! Shapes from Microsoft Graph's v1.0 resources and its error format; the Azure
//! specs do not cover Graph (see the simulator's README for what is assumed).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::clock::arm_time;
use crate::server::{Shared, Sim};
use crate::state::{
    Application, Registering, ServicePrincipal, User, World, KNOWN_SCOPES, SIGN_IN_AUDIENCES,
};

mod apps;
mod directory;
mod groups;

pub use apps::application_item;
pub use directory::pim as pim_directory;
pub use groups::{get_group, pim, policies};

pub(crate) type Params = HashMap<String, String>;

/// Graph's page size for directory objects when the caller gives no `$top`.
const DEFAULT_PAGE: usize = 100;
/// The largest `$top` Graph accepts for directory objects.
const MAX_PAGE: usize = 999;
/// Permissions (`scp`) that may read app registrations and service principals.
const READ_APPS: [&str; 4] = [
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Permissions that may create them.
const WRITE_APPS: [&str; 2] = ["Application.ReadWrite.All", "Directory.ReadWrite.All"];

/// Graph's error body: `{"error": {"code", "message", "innerError": {…}}}`.
pub(crate) fn error_body(sim: &Sim, code: &str, message: impl Into<String>) -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    json!({"error": {
        "code": code,
        "message": message.into(),
        "innerError": {
            "date": arm_time(sim.clock.now()),
            "request-id": request_id,
            "client-request-id": request_id,
        },
    }})
}

pub(crate) fn error(
    sim: &Sim,
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
) -> Response {
    (status, Json(error_body(sim, code, message))).into_response()
}

pub(crate) fn denied(sim: &Sim) -> Response {
    error(
        sim,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

/// A request body Graph refuses with 400: its error code and message.
pub(crate) struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn invalid_value(property: &str, resource: &str) -> Refusal {
        Refusal {
            code: "Request_BadRequest",
            message: format!(
                "Invalid value specified for property '{property}' of resource '{resource}'."
            ),
        }
    }

    /// Graph's answer, recorded as `request.invalid` as ARM's refused bodies are.
    fn answer(self, sim: &Sim, world: &mut World, method: &str, uri: &Uri) -> Response {
        world.record(
            sim.clock.now(),
            "request.invalid",
            json!({
                "method": method,
                "path": uri.path(),
                "code": self.code,
                "message": self.message,
            }),
        );
        error(sim, StatusCode::BAD_REQUEST, self.code, self.message)
    }
}

/// The signed-in user of a valid Microsoft Graph token, with its delegated permissions.
fn authenticate(
    sim: &Sim,
    world: &World,
    headers: &HeaderMap,
) -> Result<(User, Vec<String>), Box<Response>> {
    authenticate_caller(sim, world, headers).map(|c| (c.user, c.scopes))
}

/// The caller of a Microsoft Graph request, as its token names them.
pub(crate) struct GraphCaller {
    pub user: User,
    /// The delegated permissions (`scp`), by name.
    pub scopes: Vec<String>,
    /// Whether the token's `amr` has `mfa`.
    pub mfa: bool,
}

/// The signed-in user of a valid Microsoft Graph token, its permissions and how it signed in.
pub(crate) fn authenticate_caller(
    sim: &Sim,
    world: &World,
    headers: &HeaderMap,
) -> Result<GraphCaller, Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(Box::new(error(
            sim,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        )));
    };
    let claims = crate::entra::verify_graph_token(sim, world, token).map_err(|(_, message)| {
        error(
            sim,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            format!("Access token validation failure: {message}"),
        )
    })?;
    let user = world
        .user_by_oid(claims["oid"].as_str().unwrap_or(""))
        .cloned()
        .ok_or_else(|| {
            error(
                sim,
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token validation failure: the user does not exist in this directory.",
            )
        })?;
    let scopes = claims["scp"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mfa = claims["amr"]
        .as_array()
        .is_some_and(|a| a.iter().any(|m| m == "mfa"));
    Ok(GraphCaller { user, scopes, mfa })
}

pub(crate) fn has_any(scopes: &[String], wanted: &[&str]) -> bool {
    scopes
        .iter()
        .any(|s| wanted.iter().any(|w| w.eq_ignore_ascii_case(s)))
}

pub async fn user(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let world = sim.world();
    if let Err(response) = authenticate(&sim, &world, &headers) {
        return *response;
    }
    let key = key.to_ascii_lowercase();
    let found = world
        .users
        .iter()
        .find(|u| u.oid.eq_ignore_ascii_case(&key) || u.upn.eq_ignore_ascii_case(&key));
    match found {
        Some(u) => Json(json!({
            "@odata.context": format!("{}/v1.0/$metadata#users/$entity", sim.base_url),
            "id": u.oid,
            "displayName": u.name,
            "userPrincipalName": u.upn,
            "mail": u.email,
        }))
        .into_response(),
        None => error(
            &sim,
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
        ),
    }
}

fn application_json(sim: &Sim, app: &Application) -> Value {
    let access: Vec<Value> = app
        .required_resource_access
        .iter()
        .map(|(resource, perms)| {
            json!({
                "resourceAppId": resource,
                "resourceAccess": perms.iter().map(|(id, kind)| json!({"id": id, "type": kind})).collect::<Vec<_>>(),
            })
        })
        .collect();
    // Secrets and certificates as Graph lists them: never the secret's text or the key.
    let secrets: Vec<Value> = app
        .password_credentials
        .iter()
        .map(|c| {
            json!({
                "customKeyIdentifier": null,
                "displayName": c.display_name,
                "endDateTime": arm_time(c.end),
                "hint": c.hint,
                "keyId": c.key_id,
                "secretText": null,
                "startDateTime": arm_time(c.start),
            })
        })
        .collect();
    let certificates: Vec<Value> = app
        .key_credentials
        .iter()
        .map(|c| {
            json!({
                "customKeyIdentifier": c.hint,
                "displayName": c.display_name,
                "endDateTime": arm_time(c.end),
                "key": null,
                "keyId": c.key_id,
                "startDateTime": arm_time(c.start),
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
            })
        })
        .collect();
    json!({
        "id": app.id,
        "appId": app.app_id,
        "displayName": app.display_name,
        "signInAudience": app.sign_in_audience,
        "publicClient": {"redirectUris": app.redirect_uris},
        "web": {
            "redirectUris": app.web_redirect_uris,
            "homePageUrl": null,
            "logoutUrl": null,
            "implicitGrantSettings": {
                "enableIdTokenIssuance": false,
                "enableAccessTokenIssuance": false,
            },
        },
        "spa": {"redirectUris": app.spa_redirect_uris},
        "isFallbackPublicClient": app.fallback_public_client,
        "requiredResourceAccess": access,
        "passwordCredentials": secrets,
        "keyCredentials": certificates,
        "createdDateTime": arm_time(app.created),
        "@odata.id": format!("{}/v1.0/applications/{}", sim.base_url, app.id),
    })
}

fn service_principal_json(sim: &Sim, sp: &ServicePrincipal) -> Value {
    json!({
        "id": sp.id,
        "appId": sp.app_id,
        "displayName": sp.display_name,
        "servicePrincipalType": "Application",
        "accountEnabled": true,
        "@odata.id": format!("{}/v1.0/servicePrincipals/{}", sim.base_url, sp.id),
    })
}

/// A `$filter` the simulator serves on these lists: `property eq 'value'` (a quote inside the
/// value doubled, as OData writes it), for one of `properties`.
pub(crate) fn parse_filter<'a>(filter: &str, properties: &[&'a str]) -> Option<(&'a str, String)> {
    let (property, rest) = filter.trim().split_once(' ')?;
    let property = properties
        .iter()
        .find(|p| p.eq_ignore_ascii_case(property))?;
    let literal = rest.trim_start().strip_prefix("eq")?.trim();
    let inner = literal.strip_prefix('\'')?.strip_suffix('\'')?;
    // Every quote inside must be doubled.
    let mut value = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        value.push(c);
    }
    Some((property, value))
}

/// One page of `items`, as Graph pages directory objects: `$top` items (at most 999; by
/// default 100, or the tenant's `page_size`), and while more follow an `@odata.nextLink` with the request's own query and a
/// `$skiptoken` in place of any earlier one.
pub(crate) fn page(
    sim: &Sim,
    uri: &Uri,
    params: &Params,
    default: Option<usize>,
    context: &str,
    items: Vec<Value>,
) -> Response {
    let size = match params.get("$top") {
        None => default.unwrap_or(DEFAULT_PAGE),
        Some(top) => match top.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return error(
                    sim,
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    format!("Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE} inclusive."),
                )
            }
        },
    };
    // The token names the position, the path and the filter, so that a token from another
    // list, or garbled, is refused rather than answering the wrong page.
    let scope = format!(
        "{}|{}",
        uri.path(),
        params.get("$filter").map(String::as_str).unwrap_or("")
    );
    let start = match params.get("$skiptoken") {
        None => 0,
        Some(token) => {
            let decoded = B64
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|t| {
                    let (n, rest) = t.split_once('|')?;
                    (rest == scope).then(|| n.parse::<usize>().ok()).flatten()
                });
            match decoded {
                Some(n) => n,
                None => {
                    return error(
                        sim,
                        StatusCode::BAD_REQUEST,
                        "Directory_ExpiredPageToken",
                        "The specified page token value has expired and can no longer be included in your request.",
                    )
                }
            }
        }
    };
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(start).take(size).collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/{}/$metadata#{context}",
            sim.base_url,
            if uri.path().starts_with("/beta/") {
                "beta"
            } else {
                "v1.0"
            }
        )),
    );
    let next = start + value.len();
    body.insert("value".into(), Value::Array(value));
    if next < total {
        if let Ok(mut link) = url::Url::parse(&format!("{}{}", sim.base_url, uri.path())) {
            {
                let mut query = link.query_pairs_mut();
                for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
                    if k != "$skiptoken" {
                        query.append_pair(&k, &v);
                    }
                }
                query.append_pair("$skiptoken", &B64.encode(format!("{next}|{scope}")));
            }
            body.insert("@odata.nextLink".into(), json!(link.as_str()));
        }
    }
    Json(Value::Object(body)).into_response()
}

pub(crate) fn unsupported_filter(sim: &Sim, filter: &str) -> Response {
    error(
        sim,
        StatusCode::BAD_REQUEST,
        "Request_UnsupportedQuery",
        format!("Unsupported or invalid query filter clause specified: '{filter}'."),
    )
}

/// A list read of applications or service principals: the caller may read them, and the
/// `$filter` (on `displayName` or `appId`, `eq` only) is one the simulator serves.
fn list_filter(
    sim: &Sim,
    world: &World,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Option<(&'static str, String)>, Box<Response>> {
    let (_, scopes) = authenticate(sim, world, headers)?;
    if !has_any(&scopes, &READ_APPS) {
        return Err(Box::new(denied(sim)));
    }
    match params.get("$filter") {
        None => Ok(None),
        Some(f) => parse_filter(f, &["displayName", "appId"])
            .map(Some)
            .ok_or_else(|| Box::new(unsupported_filter(sim, f))),
    }
}

/// Whether an application or service principal passes a [`list_filter`].
fn matches(filter: &Option<(&str, String)>, display_name: &str, app_id: &str) -> bool {
    match filter {
        Some(("displayName", v)) => display_name.eq_ignore_ascii_case(v),
        Some((_, v)) => app_id.eq_ignore_ascii_case(v),
        None => true,
    }
}

/// `GET /v1.0/applications[?$filter=displayName eq '…' | appId eq '…'][&$top=N]`.
pub async fn list_applications(
    State(sim): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Query(params): Query<Params>,
) -> Response {
    let world = sim.world();
    let filter = match list_filter(&sim, &world, &headers, &params) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let items = world
        .applications
        .iter()
        .filter(|a| matches(&filter, &a.display_name, &a.app_id))
        .map(|a| application_json(&sim, a))
        .collect();
    page(
        &sim,
        &uri,
        &params,
        world.tenant.page_size,
        "applications",
        items,
    )
}

/// `GET /v1.0/servicePrincipals[?$filter=appId eq '…' | displayName eq '…'][&$top=N]`.
pub async fn list_service_principals(
    State(sim): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Query(params): Query<Params>,
) -> Response {
    let world = sim.world();
    let filter = match list_filter(&sim, &world, &headers, &params) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let items = world
        .service_principals
        .iter()
        .filter(|sp| matches(&filter, &sp.display_name, &sp.app_id))
        .map(|sp| service_principal_json(&sim, sp))
        .collect();
    page(
        &sim,
        &uri,
        &params,
        world.tenant.page_size,
        "servicePrincipals",
        items,
    )
}

/// The body as a JSON object, or Graph's refusal of one that is not.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Refusal {
            code: "BadRequest",
            message: "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.".into(),
        }),
    }
}

/// Graph's refusal of a property the simulator does not model (`@odata.` annotations aside).
fn undeclared(map: &Map<String, Value>, declared: &[&str]) -> Result<(), Refusal> {
    match map
        .keys()
        .find(|k| !k.starts_with("@odata.") && !declared.contains(&k.as_str()))
    {
        Some(k) => Err(Refusal {
            code: "BadRequest",
            message: format!(
                "Property '{k}' does not exist as a declared property or extension property."
            ),
        }),
        None => Ok(()),
    }
}

/// A redirect URI Entra accepts on a public client (mobile and desktop) platform: an absolute
/// URI of at most 256 characters without a fragment or wildcard; `http` only for `localhost`
/// and `127.0.0.1`.
fn valid_redirect(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    let http_allowed = matches!(url.host_str(), Some("localhost") | Some("127.0.0.1"));
    uri.len() <= 256
        && !uri.contains('*')
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && match url.scheme() {
            "https" => url.host_str().is_some(),
            "http" => http_allowed,
            "javascript" | "data" | "file" => false,
            _ => true,
        }
}

/// The application the body of `POST /v1.0/applications` describes, or Graph's refusal.
fn application_from(now: DateTime<Utc>, body: &[u8]) -> Result<Application, Refusal> {
    let map = json_object(body)?;
    undeclared(
        &map,
        &[
            "displayName",
            "signInAudience",
            "publicClient",
            "isFallbackPublicClient",
            "requiredResourceAccess",
        ],
    )?;
    let display_name = match map.get("displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 256 => s.clone(),
        _ => return Err(Refusal::invalid_value("displayName", "Application")),
    };
    let sign_in_audience = match map.get("signInAudience") {
        None | Some(Value::Null) => "AzureADandPersonalMicrosoftAccount".to_string(),
        Some(Value::String(s)) if SIGN_IN_AUDIENCES.contains(&s.as_str()) => s.clone(),
        Some(_) => return Err(Refusal::invalid_value("signInAudience", "Application")),
    };
    let redirect_uris = match map.get("publicClient") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(pc)) => {
            undeclared(pc, &["redirectUris"])?;
            let uris = match pc.get("redirectUris") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) if items.len() <= 256 => items
                    .iter()
                    .map(|u| u.as_str().filter(|u| valid_redirect(u)).map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        Refusal::invalid_value("redirectUris", "PublicClientApplication")
                    })?,
                Some(_) => {
                    return Err(Refusal::invalid_value(
                        "redirectUris",
                        "PublicClientApplication",
                    ))
                }
            };
            uris
        }
        Some(_) => return Err(Refusal::invalid_value("publicClient", "Application")),
    };
    let fallback_public_client = match map.get("isFallbackPublicClient") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(Refusal {
                code: "BadRequest",
                message: format!(
                    "Cannot convert the literal '{other}' to the expected type 'Edm.Boolean'."
                ),
            })
        }
    };
    let mut required_resource_access = Vec::new();
    match map.get("requiredResourceAccess") {
        None | Some(Value::Null) => {}
        Some(Value::Array(entries)) => {
            for entry in entries {
                let bad = || Refusal::invalid_value("requiredResourceAccess", "Application");
                let Some(entry) = entry.as_object() else {
                    return Err(bad());
                };
                undeclared(entry, &["resourceAppId", "resourceAccess"])?;
                let resource = entry
                    .get("resourceAppId")
                    .and_then(Value::as_str)
                    .ok_or_else(bad)?
                    .to_ascii_lowercase();
                // Graph refuses a resource that is no application it knows; the simulator
                // knows Azure Service Management and Microsoft Graph.
                if !KNOWN_SCOPES.iter().any(|(r, _, _)| *r == resource) {
                    return Err(Refusal::invalid_value(
                        "resourceAppId",
                        "RequiredResourceAccess",
                    ));
                }
                let mut perms = Vec::new();
                for access in entry
                    .get("resourceAccess")
                    .and_then(Value::as_array)
                    .ok_or_else(bad)?
                {
                    let id = access.get("id").and_then(Value::as_str).unwrap_or("");
                    let kind = access.get("type").and_then(Value::as_str).unwrap_or("");
                    let known = KNOWN_SCOPES
                        .iter()
                        .any(|(r, _, i)| *r == resource && i.eq_ignore_ascii_case(id));
                    if kind != "Scope" || !known {
                        return Err(Refusal::invalid_value(
                            "resourceAccess",
                            "RequiredResourceAccess",
                        ));
                    }
                    perms.push((id.to_ascii_lowercase(), kind.to_string()));
                }
                required_resource_access.push((resource, perms));
            }
        }
        Some(_) => {
            return Err(Refusal::invalid_value(
                "requiredResourceAccess",
                "Application",
            ))
        }
    }
    Ok(Application {
        id: uuid::Uuid::new_v4().to_string(),
        app_id: uuid::Uuid::new_v4().to_string(),
        display_name,
        sign_in_audience,
        redirect_uris,
        web_redirect_uris: Vec::new(),
        spa_redirect_uris: Vec::new(),
        fallback_public_client,
        required_resource_access,
        owners: Vec::new(),
        password_credentials: Vec::new(),
        key_credentials: Vec::new(),
        created: now,
        built_in: false,
    })
}

/// Who may write app registrations: a Graph token with a write permission (403 otherwise),
/// held by a user whose directory role may register applications.
fn writer(sim: &Sim, world: &World, headers: &HeaderMap) -> Result<User, Box<Response>> {
    let (user, scopes) = authenticate(sim, world, headers)?;
    if !has_any(&scopes, &WRITE_APPS) {
        return Err(Box::new(denied(sim)));
    }
    Ok(user)
}

/// `POST /v1.0/applications`: 201 with the new application.
pub async fn create_application(
    State(sim): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let mut world = sim.world();
    let user = match writer(&sim, &world, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let mut app = match application_from(sim.clock.now(), &body) {
        Ok(a) => a,
        Err(refusal) => return refusal.answer(&sim, &mut world, "POST", &uri),
    };
    let Some(registering) = world.registering(&user) else {
        world.record(
            sim.clock.now(),
            "graph.denied",
            json!({"upn": user.upn, "operation": "create application"}),
        );
        return denied(&sim);
    };
    // `createAsOwner` makes the creator the first owner; an admin role's `create` does not.
    if registering == Registering::AsOwner {
        app.owners.push(user.oid.clone());
    }
    world.record(
        sim.clock.now(),
        "graph.application_created",
        json!({
            "upn": user.upn,
            "appId": app.app_id,
            "displayName": app.display_name,
            "owners": app.owners,
        }),
    );
    let mut answer = application_json(&sim, &app);
    answer["@odata.context"] = json!(format!(
        "{}/v1.0/$metadata#applications/$entity",
        sim.base_url
    ));
    let location = format!("{}/v1.0/applications/{}", sim.base_url, app.id);
    world.applications.push(app);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(answer),
    )
        .into_response()
}

/// `POST /v1.0/servicePrincipals {"appId": …}`: 201 with the new service principal.
pub async fn create_service_principal(
    State(sim): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let mut world = sim.world();
    let user = match writer(&sim, &world, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let map = match json_object(&body).and_then(|map| undeclared(&map, &["appId"]).map(|_| map)) {
        Ok(m) => m,
        Err(refusal) => return refusal.answer(&sim, &mut world, "POST", &uri),
    };
    let Some(app_id) = map.get("appId").and_then(Value::as_str) else {
        return Refusal::invalid_value("appId", "ServicePrincipal")
            .answer(&sim, &mut world, "POST", &uri);
    };
    if world.registering(&user).is_none() {
        world.record(
            sim.clock.now(),
            "graph.denied",
            json!({"upn": user.upn, "operation": "create servicePrincipal"}),
        );
        return denied(&sim);
    }
    // A new application is unknown to the replica that creates service principals for a few
    // seconds (the tenant's `app_replication_secs`): Graph answers as if it did not exist.
    let replicated = |a: &Application| {
        a.built_in
            || sim.clock.now()
                >= a.created + chrono::Duration::seconds(world.tenant.app_replication_secs as i64)
    };
    let Some(app) = world
        .applications
        .iter()
        .find(|a| a.app_id.eq_ignore_ascii_case(app_id) && replicated(a))
        .cloned()
    else {
        let message = format!("The appId '{app_id}' of the service principal does not reference a valid application object.");
        let mut body = error_body(&sim, "Request_BadRequest", &message);
        body["error"]["details"] =
            json!([{"code": "NoBackingApplicationObject", "message": message, "target": "appId"}]);
        world.record(
            sim.clock.now(),
            "graph.service_principal_refused",
            json!({"upn": user.upn, "appId": app_id}),
        );
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    if world
        .service_principals
        .iter()
        .any(|sp| sp.app_id.eq_ignore_ascii_case(&app.app_id))
    {
        return error(
            &sim,
            StatusCode::CONFLICT,
            "Request_MultipleObjectsWithSameKeyValue",
            "Another object with the same value for property servicePrincipalNames already exists.",
        );
    }
    let sp = ServicePrincipal {
        id: uuid::Uuid::new_v4().to_string(),
        app_id: app.app_id.clone(),
        display_name: app.display_name.clone(),
        created: sim.clock.now(),
    };
    world.record(
        sim.clock.now(),
        "graph.service_principal_created",
        json!({"upn": user.upn, "appId": sp.app_id}),
    );
    let mut answer = service_principal_json(&sim, &sp);
    answer["@odata.context"] = json!(format!(
        "{}/v1.0/$metadata#servicePrincipals/$entity",
        sim.base_url
    ));
    let location = format!("{}/v1.0/servicePrincipals/{}", sim.base_url, sp.id);
    world.service_principals.push(sp);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(answer),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_odata_equality_with_doubled_quotes() {
        let props = ["displayName", "appId"];
        assert_eq!(
            parse_filter("displayName eq 'Jumpgate'", &props),
            Some(("displayName", "Jumpgate".to_string()))
        );
        assert_eq!(
            parse_filter("displayName eq 'O''Brien''s app'", &props),
            Some(("displayName", "O'Brien's app".to_string()))
        );
        for bad in [
            "displayName eq 'x",
            "displayName eq 'a'b'",
            "displayName ne 'x'",
            "startswith(displayName,'x')",
            "owner eq 'x'",
            "",
        ] {
            assert_eq!(parse_filter(bad, &props), None, "{bad}");
        }
    }

    #[test]
    fn redirect_uris_follow_entras_rules_for_public_clients() {
        for good in [
            "http://localhost",
            "http://localhost:8400/",
            "http://127.0.0.1/callback",
            "https://login.microsoftonline.com/common/oauth2/nativeclient",
            "ms-appx-web://microsoft.aad.brokerplugin/abc",
        ] {
            assert!(valid_redirect(good), "{good}");
        }
        for bad in [
            "not a uri",
            "http://example.com/",
            "https://*.example.com/",
            "https://example.com/#frag",
            "https://user:pw@example.com/",
            "javascript:alert(1)",
            "/relative",
        ] {
            assert!(!valid_redirect(bad), "{bad}");
        }
        assert!(!valid_redirect(&format!(
            "https://example.com/{}",
            "a".repeat(250)
        )));
    }
}
