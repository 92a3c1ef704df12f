//! The one Microsoft Graph call Jumpgate makes: `GET /v1.0/users/{id | userPrincipalName}`,
//! which turns an admin's "alice@contoso.example" into the object id ARM wants. Shapes from
//! Microsoft Graph's v1.0 `user` resource and its error format; the Azure specs do not cover
//! Graph (see the simulator's README).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::Shared;

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message, "innerError": {"request-id": uuid::Uuid::new_v4().to_string()}}})),
    )
        .into_response()
}

pub async fn user(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.".into(),
        );
    };
    let world = sim.world();
    if let Err((_, message)) = crate::entra::verify_graph_token(&sim, &world, token.trim()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            format!("Access token validation failure: {message}"),
        );
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
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
        ),
    }
}
