//! Azure Resource Manager: authentication, `api-version` checks, routing and the shared
//! JSON helpers. Each resource provider lives in its own module.

mod approvals;
mod eligibility;
pub mod jit;
mod paging;
mod pim;
mod resources;

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ArmError;
use crate::rbac::normalize_scope;
use crate::server::{public_address, CallerTag, Conn, Shared, Sim};
use crate::state::World;

pub use jit::Prefix;
pub use paging::page;
pub use pim::provision;

/// ARM's own limit is 4 MB; the simulator refuses more than 1 MiB, which no Jumpgate call
/// comes near.
const MAX_BODY: usize = 1024 * 1024;

/// The authenticated caller of an ARM request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub oid: String,
    pub upn: String,
    pub mfa: bool,
    /// The authentication contexts the token's `acrs` claim says were met.
    pub acrs: Vec<String>,
    /// The object id, then the groups ARM counts the caller in: those of the token's `groups`
    /// claim, or with the overage claim the directory's at the time of the request.
    pub principals: Vec<String>,
}

impl Caller {
    /// Whether `id` is the caller or one of the caller's groups.
    pub fn is(&self, id: &str) -> bool {
        self.principals.iter().any(|p| p.eq_ignore_ascii_case(id))
    }
}

/// One ARM request, authenticated and with its body read.
pub struct Call<'a> {
    pub sim: &'a Shared,
    pub caller: Caller,
    pub method: Method,
    pub query: HashMap<String, String>,
    pub body: Bytes,
    pub source: IpAddr,
    pub api_version: String,
    /// The request's path and raw query, for `nextLink`s.
    pub path: String,
    pub raw_query: String,
}

pub type ArmResult = Result<Response, ArmError>;

impl Call<'_> {
    /// The body as JSON, with ARM's error for content that is not.
    pub fn json(&self) -> Result<Value, ArmError> {
        if self.body.is_empty() {
            return Err(ArmError::invalid_content("the request body is empty"));
        }
        serde_json::from_slice(&self.body).map_err(ArmError::invalid_content)
    }

    pub fn filter(&self) -> Option<&str> {
        self.query.get("$filter").map(String::as_str)
    }

    /// Fails with 403 unless the caller may perform `action` on `scope`.
    pub fn require(&self, world: &World, action: &str, scope: &str) -> Result<(), ArmError> {
        if world.is_permitted_any(&self.caller.principals, action, scope, self.sim.clock.now()) {
            Ok(())
        } else {
            Err(ArmError::authorization_failed(
                &self.caller.upn,
                &self.caller.oid,
                action,
                scope,
            ))
        }
    }
}

/// Where a request goes, parsed from its path.
#[derive(Debug)]
enum Route {
    Subscriptions,
    Subscription(String),
    Authorization {
        scope: String,
        collection: String,
        name: Option<String>,
        rest: Vec<String>,
    },
    Jit {
        sub: String,
        rg: Option<String>,
        location: Option<String>,
        name: Option<String>,
        action: Option<String>,
    },
    VirtualMachines {
        sub: String,
        rg: Option<String>,
        name: Option<String>,
    },
    Network {
        sub: String,
        rg: String,
        kind: String,
        name: Option<String>,
    },
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        if segs.iter().any(|s| s.is_empty()) {
            return None;
        }
        // Authorization paths hang off any scope, so look for the provider from the end.
        if let Some(i) = (0..lower.len().saturating_sub(2))
            .rev()
            .find(|&i| lower[i] == "providers" && lower[i + 1] == "microsoft.authorization")
        {
            return Some(Route::Authorization {
                scope: normalize_scope(&segs[..i].join("/")),
                collection: lower[i + 2].clone(),
                name: segs.get(i + 3).map(|s| s.to_string()),
                rest: segs.iter().skip(i + 4).map(|s| s.to_string()).collect(),
            });
        }
        if lower.first().map(String::as_str) != Some("subscriptions") {
            return None;
        }
        if segs.len() == 1 {
            return Some(Route::Subscriptions);
        }
        let sub = segs.get(1)?.to_string();
        if segs.len() == 2 {
            return Some(Route::Subscription(sub));
        }
        let mut i = 2;
        let mut rg = None;
        if lower[i] == "resourcegroups" {
            rg = Some(segs.get(i + 1)?.to_string());
            i += 2;
        }
        if lower.get(i).map(String::as_str) != Some("providers") {
            return None;
        }
        let provider = lower.get(i + 1)?.as_str();
        let rest: Vec<&str> = segs[i + 2..].to_vec();
        let rest_lower: Vec<&str> = lower[i + 2..].iter().map(String::as_str).collect();
        match (provider, rest_lower.as_slice()) {
            ("microsoft.security", ["jitnetworkaccesspolicies"]) => Some(Route::Jit {
                sub,
                rg,
                location: None,
                name: None,
                action: None,
            }),
            ("microsoft.security", ["locations", _, "jitnetworkaccesspolicies", tail @ ..])
                if tail.len() <= 2 =>
            {
                Some(Route::Jit {
                    sub,
                    rg,
                    location: Some(rest[1].to_string()),
                    name: rest.get(3).map(|s| s.to_string()),
                    action: rest.get(4).map(|s| s.to_string()),
                })
            }
            ("microsoft.compute", ["virtualmachines", tail @ ..]) if tail.len() <= 1 => {
                Some(Route::VirtualMachines {
                    sub,
                    rg,
                    name: rest.get(1).map(|s| s.to_string()),
                })
            }
            (
                "microsoft.network",
                [kind @ ("networkinterfaces" | "publicipaddresses"), tail @ ..],
            ) if tail.len() <= 1 => Some(Route::Network {
                sub,
                rg: rg?,
                kind: kind.to_string(),
                name: rest.get(1).map(|s| s.to_string()),
            }),
            _ => None,
        }
    }

    /// The api-versions this route accepts, from the specs in `../shared/azure-specs`.
    fn api_versions(&self) -> &'static [&'static str] {
        match self {
            Route::Subscriptions | Route::Subscription(_) => &["2022-12-01"],
            Route::Authorization { collection, .. } => match collection.as_str() {
                "roleassignmentapprovals" => &["2021-01-01-preview"],
                "roledefinitions" | "roleassignments" => &["2022-04-01"],
                "permissions" => &["2015-07-01", "2022-04-01", "2022-05-01-preview"],
                _ => &["2020-10-01"],
            },
            Route::Jit { .. } => &["2020-01-01"],
            Route::VirtualMachines { .. } => &[
                "2024-03-01",
                "2024-07-01",
                "2024-11-01",
                "2025-04-01",
                "2025-11-01",
            ],
            Route::Network { .. } => &["2024-05-01", "2024-07-01", "2025-01-01", "2025-07-01"],
        }
    }
}

/// The fallback handler: every path that is not Entra, IP echo or control is ARM.
pub async fn dispatch(State(sim): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let conn = parts.extensions.get::<Conn>().cloned();
    let path = parts.uri.path().to_string();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let authority = sim.authority(&sim.world().tenant.id.clone());

    // Authentication comes first, as in ARM: an anonymous caller learns nothing else.
    let caller = match authenticate(&sim, &parts.headers, &authority) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let tag = CallerTag(caller.upn.clone());
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let mut response = route(
        &sim,
        caller,
        parts.method,
        (&path, raw_query),
        query,
        body,
        conn,
    )
    .await
    .unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(tag);
    response
}

async fn route(
    sim: &Shared,
    caller: Caller,
    method: Method,
    (path, raw_query): (&str, String),
    query: HashMap<String, String>,
    body: Body,
    conn: Option<Conn>,
) -> ArmResult {
    let Some(route) = Route::parse(path) else {
        return Err(ArmError::not_found(
            "InvalidResourceType",
            format!("The resource type could not be found for the path '{path}'."),
        ));
    };
    let api_version = match query.get("api-version") {
        None => {
            return Err(ArmError::bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ))
        }
        Some(v) if !route.api_versions().contains(&v.as_str()) => {
            return Err(ArmError::bad_request(
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{v}' is invalid. The supported versions are '{}'.",
                    route.api_versions().join(",")
                ),
            ))
        }
        Some(v) => v.clone(),
    };
    if let Some(refused) = not_deployed(sim, &route, &api_version) {
        return Err(refused);
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Err(ArmError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("The request content exceeds the maximum size of {MAX_BODY} bytes."),
            ))
        }
    };
    // Every request body is checked against its operation's schema before any handler sees it.
    crate::schema::check_request(sim, &method, path, &body)?;
    let source = conn
        .as_ref()
        .map(|c| public_address(sim, c))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let call = Call {
        sim,
        caller,
        method: method.clone(),
        query,
        body,
        source,
        api_version,
        path: path.to_string(),
        raw_query,
    };
    let not_allowed = || {
        ArmError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The requested method '{method}' is not allowed for path '{path}'."),
        )
    };
    match route {
        Route::Subscriptions if method == Method::GET => resources::list_subscriptions(&call),
        Route::Subscription(sub) if method == Method::GET => resources::get_subscription(&call, &sub),
        Route::Authorization {
            scope,
            collection,
            name,
            rest,
        } => match collection.as_str() {
            "roleeligibilityscheduleinstances" => pim::eligibility_instances(&call, &scope, name.as_deref(), not_allowed),
            "roleassignmentscheduleinstances" => pim::assignment_instances(&call, &scope, name.as_deref(), not_allowed),
            "roleassignmentschedulerequests" => pim::schedule_requests(&call, &scope, name.as_deref(), &rest, not_allowed),
            "roleeligibilityschedulerequests" => eligibility::handle(&call, &scope, name.as_deref(), &rest, not_allowed),
            "rolemanagementpolicies" => pim::policies(&call, &scope, name.as_deref(), not_allowed),
            "rolemanagementpolicyassignments" => pim::policy_assignments(&call, &scope, name.as_deref(), not_allowed),
            "roleassignmentapprovals" => approvals::handle(&call, name.as_deref(), &rest, not_allowed),
            "roledefinitions" => resources::role_definitions(&call, &scope, name.as_deref(), not_allowed),
            "roleassignments" if method == Method::GET && name.is_none() => resources::role_assignments(&call, &scope),
            "roleassignments" => Err(not_allowed()),
            "permissions" if method == Method::GET && name.is_none() => resources::permissions(&call, &scope),
            other => Err(ArmError::not_found(
                "InvalidResourceType",
                format!("The resource type '{other}' could not be found in the namespace 'Microsoft.Authorization' for api version '{}'.", call.api_version),
            )),
        },
        Route::Jit {
            sub,
            rg,
            location,
            name,
            action,
        } => jit::handle(&call, &sub, rg.as_deref(), location.as_deref(), name.as_deref(), action.as_deref(), not_allowed),
        Route::VirtualMachines { sub, rg, name } if method == Method::GET => resources::virtual_machines(&call, &sub, rg.as_deref(), name.as_deref()),
        Route::Network { sub, rg, kind, name } if method == Method::GET => resources::network(&call, &sub, &rg, &kind, name.as_deref()),
        _ => Err(not_allowed()),
    }
}

/// A version the specs declare but the tenant's cloud has not deployed yet (the tenant's
/// `deployed_api_versions`): ARM's `NoRegisteredProviderFound`, naming the versions it has.
fn not_deployed(sim: &Sim, route: &Route, version: &str) -> Option<ArmError> {
    let (namespace, kind) = match route {
        Route::VirtualMachines { .. } => ("Microsoft.Compute", "virtualMachines"),
        Route::Network { kind, .. } => ("Microsoft.Network", kind.as_str()),
        Route::Jit { .. } => ("Microsoft.Security", "locations/jitNetworkAccessPolicies"),
        _ => return None,
    };
    let world = sim.world();
    let newest = world
        .tenant
        .deployed_api_versions
        .iter()
        .find(|(ns, _)| ns.eq_ignore_ascii_case(namespace))
        .map(|(_, v)| v.clone())?;
    drop(world);
    // api-versions are dates, so they compare as text (a `-preview` suffix sorts after).
    if version <= newest.as_str() {
        return None;
    }
    let deployed: Vec<&str> = route
        .api_versions()
        .iter()
        .copied()
        .filter(|v| *v <= newest.as_str())
        .collect();
    Some(ArmError::bad_request(
        "NoRegisteredProviderFound",
        format!(
            "No registered resource provider found for location 'westeurope' and API version '{version}' for type '{kind}'. The supported api-versions are '{}'. The supported locations are 'westeurope, northeurope'.",
            deployed.join(", ")
        ),
    ))
}

fn authenticate(
    sim: &Sim,
    headers: &axum::http::HeaderMap,
    authority: &str,
) -> Result<Caller, ArmError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ArmError::unauthenticated(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            authority,
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(|| {
            ArmError::unauthenticated(
                "AuthenticationFailedInvalidHeader",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                authority,
            )
        })?;
    let world = sim.world();
    let claims = crate::entra::verify_access_token(sim, &world, token.trim())
        .map_err(|(code, message)| ArmError::unauthenticated(code, message, authority))?;
    let oid = claims["oid"].as_str().unwrap_or("").to_ascii_lowercase();
    let user = world.user_by_oid(&oid).ok_or_else(|| {
        ArmError::unauthenticated(
            "InvalidAuthenticationToken",
            "The access token names an unknown principal.",
            authority,
        )
    })?;
    let mfa = claims["amr"]
        .as_array()
        .is_some_and(|a| a.iter().any(|m| m == "mfa"));
    let acrs = claims["acrs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    // Group-based access follows the token: the groups it names were the user's when it was
    // issued. Only a token with the overage claim, which names none, sends ARM to the
    // directory.
    let overage = claims["_claim_names"]["groups"].is_string();
    let principals = if overage {
        world.principals(&oid, sim.clock.now())
    } else {
        let mut out = vec![oid.clone()];
        out.extend(
            claims["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(str::to_ascii_lowercase)),
        );
        out
    };
    Ok(Caller {
        oid,
        upn: user.upn.clone(),
        mfa,
        acrs,
        principals,
    })
}

/// `{"value": [...]}`, the shape of every ARM list.
pub fn list(items: Vec<Value>) -> Response {
    Json(json!({ "value": items })).into_response()
}

pub fn ok(body: Value) -> Response {
    Json(body).into_response()
}

pub fn created(body: Value) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `expandedProperties.scope` for a scope, as PIM returns it.
pub fn scope_info(world: &World, scope: &str) -> Value {
    let normalized = normalize_scope(scope);
    if let Some(name) = crate::state::management_group_name(&normalized) {
        let display = world
            .management_group_display_name(&name)
            .unwrap_or_else(|| name.clone());
        return json!({"id": normalized, "displayName": display, "type": "managementgroup"});
    }
    let segs: Vec<&str> = normalized.trim_matches('/').split('/').collect();
    let (display, kind) = match segs.as_slice() {
        [""] => ("Root".to_string(), "root"),
        ["subscriptions", sub] => (
            world
                .subscriptions
                .iter()
                .find(|s| s.id.eq_ignore_ascii_case(sub))
                .map(|s| s.display_name.clone())
                .unwrap_or_else(|| sub.to_string()),
            "subscription",
        ),
        ["subscriptions", _, "resourceGroups" | "resourcegroups", rg] => {
            (rg.to_string(), "resourcegroup")
        }
        _ => (segs.last().unwrap_or(&"").to_string(), "resource"),
    };
    json!({"id": normalized, "displayName": display, "type": kind})
}

pub fn role_info(world: &World, scope: &str, role: &str) -> Value {
    let rd = world.role(role);
    json!({
        "id": world.role_definition_id(scope, role),
        "displayName": rd.map(|r| r.name.clone()),
        "type": rd.map(|r| r.role_type.clone()),
    })
}

pub fn principal_info(world: &World, oid: &str) -> Value {
    if let Some(group) = world.groups.iter().find(|g| g.id.eq_ignore_ascii_case(oid)) {
        return json!({"id": group.id, "displayName": group.name, "email": null, "type": "Group"});
    }
    let user = world.user_by_oid(oid);
    json!({
        "id": oid,
        "displayName": user.map(|u| u.name.clone()),
        "email": user.map(|u| u.email.clone()),
        "type": "User",
    })
}

pub fn is_guid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok() && text.len() == 36
}
