//! The test-control API under `/_sim/`, present only with `--control`. It moves the clock,
//! injects faults, changes the reported IP, revokes tokens, completes device sign-ins, mints
//! tokens for any user, and lists what happened.

use std::net::Ipv4Addr;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::arm_time;
use crate::server::{Fault, Shared};

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/token", post(token))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/ip", post(set_ip))
        .route("/revoke", post(revoke))
        .route("/device", post(device))
        .route("/events", get(events))
        .route("/gate", get(gate))
        .route("/entra", post(entra))
}

/// Every control call carries the run's bearer token, and every body is JSON
/// (RELIABILITY #30): a web page can neither guess the token nor send a JSON body without a
/// CORS preflight, which the simulator never grants. 401 or 415, as a JSON error.
pub async fn guard(
    State(sim): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Owned values: a borrow of the request (whose body is not Sync) must not live across
    // the await below.
    let headers = request.headers().clone();
    let header = |name| -> String {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let authorization = header(axum::http::header::AUTHORIZATION);
    let content_type = header(axum::http::header::CONTENT_TYPE);
    let presented = authorization.strip_prefix("Bearer ").unwrap_or("");
    if !same(presented.as_bytes(), sim.control_token.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "the control API needs `Authorization: Bearer <control_token>` (the token is in the written client configuration, [simulator] control_token)"})),
        )
            .into_response();
    }
    let with_body = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::DELETE
    );
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if with_body && media != "application/json" {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(json!({"error": "control API bodies must be sent as Content-Type: application/json"})),
        )
            .into_response();
    }
    next.run(request).await
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

/// Parses a JSON body ourselves so that bad input gets a JSON error, not a plain-text one.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| Box::new(bad(format!("invalid JSON body: {e}"))))
}

#[derive(Deserialize)]
struct Upn {
    upn: String,
}

#[derive(Deserialize)]
struct TokenFor {
    upn: String,
    /// `graph` for a Microsoft Graph token; ARM otherwise.
    #[serde(default)]
    resource: Option<String>,
    /// Authentication contexts the token's `acrs` claim holds, as after a claims challenge.
    #[serde(default)]
    acrs: Vec<String>,
    /// Whether the token's `amr` has `mfa` even if the user's sign-ins do not.
    #[serde(default)]
    mfa: bool,
    /// The delegated permissions (`scp`, space-separated) of a Microsoft Graph token;
    /// `User.ReadBasic.All` when omitted.
    #[serde(default)]
    scope: Option<String>,
}

async fn token(State(sim): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: TokenFor = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let (audience, scp) = match req.resource.as_deref() {
        None | Some("arm") if req.scope.is_none() => {
            (crate::entra::ARM_AUDIENCE, "user_impersonation")
        }
        Some("graph") => (
            "https://graph.microsoft.com",
            req.scope.as_deref().unwrap_or("User.ReadBasic.All"),
        ),
        None | Some("arm") => {
            return bad("scope is for Microsoft Graph tokens: add \"resource\": \"graph\"")
        }
        Some(other) => return bad(format!("resource must be arm or graph, not '{other}'")),
    };
    let mut world = sim.world();
    let Some(user) = world.user(&req.upn).cloned() else {
        return bad(format!("unknown user '{}'", req.upn));
    };
    let client_id = world.tenant.client_id.clone();
    let step_up = crate::state::StepUp {
        mfa: req.mfa || !req.acrs.is_empty(),
        acrs: req.acrs,
    };
    let (access_token, expires_in) =
        crate::entra::access_token(&sim, &mut world, &user, audience, scp, &client_id, &step_up);
    Json(json!({"access_token": access_token, "expires_in": expires_in})).into_response()
}

async fn clock(State(sim): State<Shared>) -> Response {
    Json(json!({"now": arm_time(sim.clock.now())})).into_response()
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance(State(sim): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: Advance = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if !(0..=10 * 365 * 86_400).contains(&req.seconds) {
        return bad("seconds must be between 0 and ten years: the clock only moves forward");
    }
    sim.clock.advance(Duration::seconds(req.seconds));
    let now = sim.clock.now();
    sim.world()
        .record(now, "clock.advanced", json!({"seconds": req.seconds}));
    Json(json!({"now": arm_time(now)})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    path: String,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    latency_ms: u64,
    #[serde(default)]
    drop: bool,
    #[serde(default = "one")]
    count: u64,
    /// The ARM error code and message to answer with, instead of the status's usual one.
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    /// A `WWW-Authenticate` header to send, such as a claims challenge.
    #[serde(default)]
    www_authenticate: Option<String>,
}

fn one() -> u64 {
    1
}

async fn add_fault(State(sim): State<Shared>, body: axum::body::Bytes) -> Response {
    let spec: FaultSpec = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let path = match regex::RegexBuilder::new(&spec.path)
        .size_limit(1 << 20)
        .build()
    {
        Ok(r) => r,
        Err(e) => return bad(format!("path is not a valid regular expression: {e}")),
    };
    if let Some(status) = spec.status {
        if !(400..=599).contains(&status) {
            return bad("status must be an HTTP error status (400-599)");
        }
    }
    if spec.status.is_none() && !spec.drop && spec.latency_ms == 0 {
        return bad("a fault needs a status, drop: true, or a latency_ms");
    }
    if spec.latency_ms > 120_000 {
        return bad("latency_ms is capped at 120000");
    }
    sim.faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Fault {
            path,
            status: spec.status,
            retry_after: spec.retry_after,
            latency_ms: spec.latency_ms,
            drop: spec.drop,
            remaining: spec.count.max(1),
            code: spec.code.clone(),
            message: spec.message.clone(),
            www_authenticate: spec.www_authenticate.clone(),
        });
    sim.world().record(
        sim.clock.now(),
        "fault.added",
        json!({"path": spec.path, "status": spec.status, "count": spec.count}),
    );
    Json(json!({"ok": true})).into_response()
}

async fn clear_faults(State(sim): State<Shared>) -> Response {
    sim.faults.lock().unwrap_or_else(|p| p.into_inner()).clear();
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
struct SetIp {
    ip: Option<String>,
}

async fn set_ip(State(sim): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: SetIp = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let ip = match req.ip.as_deref().map(str::parse::<Ipv4Addr>) {
        None => None,
        Some(Ok(ip)) => Some(ip),
        Some(Err(_)) => {
            return bad("ip must be an IPv4 address, or null to report the real source address")
        }
    };
    let now = sim.clock.now();
    let mut world = sim.world();
    world.ip_override = ip;
    world.record(now, "ip.changed", json!({"ip": ip.map(|i| i.to_string())}));
    Json(json!({"ip": ip.map(|i| i.to_string())})).into_response()
}

async fn revoke(State(sim): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: Upn = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let now = sim.clock.now();
    let mut world = sim.world();
    let Some(user) = world.user(&req.upn).cloned() else {
        return bad(format!("unknown user '{}'", req.upn));
    };
    world.revoke_user(&user.oid);
    world.record(now, "entra.revoked", json!({"upn": user.upn}));
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
struct Device {
    user_code: String,
    upn: String,
    #[serde(default)]
    decline: bool,
}

async fn device(State(sim): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: Device = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    match crate::entra::complete_device(&sim, &req.user_code, &req.upn, req.decline) {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => bad(e),
    }
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn events(State(sim): State<Shared>, Query(q): Query<Since>) -> Response {
    let world = sim.world();
    let events: Vec<Value> = world
        .events
        .iter()
        .filter(|e| e.seq > q.since)
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
    Json(Value::Array(events)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntraSettings {
    /// Whether refresh-token grants answer with a new refresh token (and retire the one
    /// sent), or answer without one (and keep the one sent valid).
    rotate_refresh_tokens: Option<bool>,
}

async fn entra(State(sim): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: EntraSettings = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(rotate) = req.rotate_refresh_tokens else {
        return bad("give rotate_refresh_tokens: true or false");
    };
    let now = sim.clock.now();
    let mut world = sim.world();
    world.rotate_refresh_tokens = rotate;
    world.record(
        now,
        "entra.settings_changed",
        json!({"rotate_refresh_tokens": rotate}),
    );
    Json(json!({"rotate_refresh_tokens": rotate})).into_response()
}

async fn gate(State(sim): State<Shared>) -> Response {
    Json(json!(sim.gate.endpoints())).into_response()
}
