//! App registrations one at a time, addressed as Graph documents it: by object id
//! (`/v1.0/applications/{id}`) or by client id (`/v1.0/applications(appId='{appId}')`); and
//! their owners, listed (`…/owners`, a page of `directoryObject`s) and added
//! (`POST …/owners/$ref`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{
    application_json, authenticate_caller, denied, error, has_any, json_object, page, Params,
    Refusal, READ_APPS,
};
use crate::server::{Shared, Sim};
use crate::state::{Application, World};

/// Permissions that let a `directoryObject` list show a user's properties; with none of them
/// Graph answers only the object's type and id.
const READ_USERS: [&str; 5] = [
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// What the path names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Item,
    Owners,
    AddOwner,
}

/// How the path names the application.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    Id(String),
    AppId(String),
}

/// The key and the target of a path below `/v1.0/applications`, from the route's (decoded)
/// parameters: `key` is what follows `applications` in its own segment (`(appId='…')`), `rest`
/// what follows the next `/`. `Err` holds the segment Graph would not know.
fn parse(key: Option<&str>, rest: Option<&str>) -> Result<(Key, Target), String> {
    let (key, tail) = match key {
        Some(key) => {
            let inner = key
                .strip_prefix('(')
                .and_then(|k| k.strip_suffix(')'))
                .ok_or_else(|| format!("applications{key}"))?;
            let (property, value) = inner
                .split_once('=')
                .ok_or_else(|| format!("applications{key}"))?;
            let value = value
                .trim()
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .ok_or_else(|| format!("applications{key}"))?;
            if !property.trim().eq_ignore_ascii_case("appId") {
                return Err(format!("applications{key}"));
            }
            (Key::AppId(value.to_string()), rest.unwrap_or(""))
        }
        None => {
            let rest = rest.unwrap_or("");
            let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
            (Key::Id(id.to_string()), tail)
        }
    };
    let target = match tail.trim_end_matches('/') {
        "" => Target::Item,
        "owners" => Target::Owners,
        "owners/$ref" => Target::AddOwner,
        other => return Err(other.split('/').next().unwrap_or(other).to_string()),
    };
    Ok((key, target))
}

fn not_found(sim: &Sim, what: &str) -> Response {
    error(
        sim,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!("Resource '{what}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn invalid_id(sim: &Sim, id: &str) -> Response {
    error(
        sim,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
        format!("Invalid object identifier '{id}'."),
    )
}

/// The application the key names: 400 for an identifier that is not a GUID, 404 for one
/// that names no application.
fn find<'w>(sim: &Sim, world: &'w World, key: &Key) -> Result<&'w Application, Box<Response>> {
    let (value, found) = match key {
        Key::Id(id) => (id, world.application(id)),
        Key::AppId(app_id) => (app_id, world.application_by_app_id(app_id)),
    };
    if uuid::Uuid::parse_str(value).is_err() {
        return Err(Box::new(invalid_id(sim, value)));
    }
    found.ok_or_else(|| Box::new(not_found(sim, value)))
}

/// An owner as a `directoryObject`: a user (its properties only for a caller that may read
/// users) or a service principal.
fn owner_json(world: &World, id: &str, read_users: bool) -> Option<Value> {
    if let Some(user) = world.user_by_oid(id) {
        let shown = |v: &str| {
            if read_users {
                json!(v)
            } else {
                Value::Null
            }
        };
        return Some(json!({
            "@odata.type": "#microsoft.graph.user",
            "id": user.oid,
            "displayName": shown(&user.name),
            "userPrincipalName": shown(&user.upn),
            "mail": shown(&user.email),
        }));
    }
    world
        .service_principals
        .iter()
        .find(|sp| sp.id.eq_ignore_ascii_case(id))
        .map(|sp| {
            json!({
                "@odata.type": "#microsoft.graph.servicePrincipal",
                "id": sp.id,
                "appId": sp.app_id,
                "displayName": sp.display_name,
            })
        })
}

/// `GET /v1.0/applications/{id}` and `…(appId='{appId}')`, `GET …/owners`, and
/// `POST …/owners/$ref`.
pub async fn application_item(
    State(sim): State<Shared>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    Path(path): Path<HashMap<String, String>>,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    let mut world = sim.world();
    let caller = match authenticate_caller(&sim, &world, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let (key, target) = match parse(
        path.get("key").map(String::as_str),
        path.get("rest").map(String::as_str),
    ) {
        Ok(parsed) => parsed,
        Err(segment) => {
            return error(
                &sim,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Resource not found for the segment '{segment}'."),
            )
        }
    };
    let allowed = match target {
        Target::Item | Target::Owners => method == Method::GET,
        Target::AddOwner => method == Method::POST,
    };
    if !allowed {
        return error(
            &sim,
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        );
    }
    match target {
        Target::Item | Target::Owners => {
            if !has_any(&caller.scopes, &READ_APPS) {
                return denied(&sim);
            }
            let app = match find(&sim, &world, &key) {
                Ok(a) => a,
                Err(r) => return *r,
            };
            if target == Target::Item {
                let mut answer = application_json(&sim, app);
                answer["@odata.context"] = json!(format!(
                    "{}/v1.0/$metadata#applications/$entity",
                    sim.base_url
                ));
                return Json(answer).into_response();
            }
            let read_users = has_any(&caller.scopes, &READ_USERS);
            let owners = app
                .owners
                .iter()
                .filter_map(|id| owner_json(&world, id, read_users))
                .collect();
            page(
                &sim,
                &uri,
                &params,
                world.tenant.page_size,
                "directoryObjects",
                owners,
            )
        }
        Target::AddOwner => add_owner(&sim, &mut world, &caller, &key, &uri, &body),
    }
}

/// `POST …/owners/$ref {"@odata.id": "…/directoryObjects/{id}"}`: 204. Needs
/// `Application.ReadWrite.All` with `Directory.Read.All`, or `Directory.ReadWrite.All`, and a
/// caller who owns the application or whose directory role manages applications.
fn add_owner(
    sim: &Sim,
    world: &mut World,
    caller: &super::GraphCaller,
    key: &Key,
    uri: &Uri,
    body: &[u8],
) -> Response {
    let scopes = &caller.scopes;
    let may = has_any(scopes, &["Directory.ReadWrite.All"])
        || (has_any(scopes, &["Application.ReadWrite.All"])
            && has_any(scopes, &["Directory.Read.All"]));
    if !may {
        return denied(sim);
    }
    let reference = match reference(body) {
        Ok(id) => id,
        Err(refusal) => return refusal.answer(sim, world, "POST", uri),
    };
    let app = match find(sim, world, key) {
        Ok(a) => a.clone(),
        Err(r) => return *r,
    };
    let user = &caller.user;
    if !user.manages_apps() && !app.owners.iter().any(|o| o.eq_ignore_ascii_case(&user.oid)) {
        world.record(
            sim.clock.now(),
            "graph.denied",
            json!({"upn": user.upn, "operation": "add owner", "appId": app.app_id}),
        );
        return denied(sim);
    }
    let known = world
        .user_by_oid(&reference)
        .map(|u| u.oid.clone())
        .or_else(|| {
            world
                .service_principals
                .iter()
                .find(|sp| sp.id.eq_ignore_ascii_case(&reference))
                .map(|sp| sp.id.clone())
        });
    let Some(owner) = known else {
        return not_found(sim, &reference);
    };
    if app.owners.iter().any(|o| o.eq_ignore_ascii_case(&owner)) {
        return error(
            sim,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: 'owners'.",
        );
    }
    if let Some(stored) = world.applications.iter_mut().find(|a| a.id == app.id) {
        stored.owners.push(owner.clone());
    }
    world.record(
        sim.clock.now(),
        "graph.owner_added",
        json!({"upn": user.upn, "appId": app.app_id, "owner": owner}),
    );
    StatusCode::NO_CONTENT.into_response()
}

/// The object id a `$ref` body names: `{"@odata.id": "…/v1.0/directoryObjects/{id}"}` (or
/// `…/users/{id}`, `…/servicePrincipals/{id}`), and nothing else.
fn reference(body: &[u8]) -> Result<String, Refusal> {
    let map = json_object(body)?;
    if let Some(other) = map.keys().find(|k| k.as_str() != "@odata.id") {
        return Err(Refusal {
            code: "BadRequest",
            message: format!(
                "Property '{other}' does not exist as a declared property or extension property."
            ),
        });
    }
    let invalid = |what: &str| Refusal {
        code: "Request_BadRequest",
        message: format!("Invalid object identifier '{what}'."),
    };
    let Some(link) = map.get("@odata.id").and_then(Value::as_str) else {
        return Err(invalid(""));
    };
    let id = url::Url::parse(link).ok().and_then(|url| {
        let segments: Vec<&str> = url.path_segments()?.collect();
        match segments.as_slice() {
            [.., "v1.0", "directoryObjects" | "users" | "servicePrincipals", id] => {
                uuid::Uuid::parse_str(id).ok().map(|u| u.to_string())
            }
            _ => None,
        }
    });
    id.ok_or_else(|| invalid(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_an_application_by_object_id_or_client_id() {
        assert_eq!(
            parse(None, Some("abc")),
            Ok((Key::Id("abc".into()), Target::Item))
        );
        assert_eq!(
            parse(None, Some("abc/owners")),
            Ok((Key::Id("abc".into()), Target::Owners))
        );
        assert_eq!(
            parse(Some("(appId='x-1')"), Some("owners/$ref")),
            Ok((Key::AppId("x-1".into()), Target::AddOwner))
        );
        assert_eq!(
            parse(Some("(appid = 'x-1')"), None),
            Ok((Key::AppId("x-1".into()), Target::Item))
        );
        for (key, rest) in [
            (Some("(id='x')"), None),
            (Some("(appId=x)"), None),
            (Some("X"), None),
            (None, Some("abc/members")),
        ] {
            assert!(parse(key, rest).is_err(), "{key:?} {rest:?}");
        }
    }

    #[test]
    fn references_name_a_directory_object_by_guid() {
        let id = "a11ce000-0000-4000-8000-000000000001";
        for good in [
            format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}"),
            format!("http://127.0.0.1:4000/v1.0/users/{id}"),
        ] {
            let body = json!({"@odata.id": good}).to_string();
            assert_eq!(reference(body.as_bytes()).ok().as_deref(), Some(id));
        }
        for bad in [
            json!({}),
            json!({"@odata.id": "directoryObjects/x"}),
            json!({"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/not-a-guid"}),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/groups/{id}")}),
            json!({"@odata.id": 7}),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{id}"), "x": 1}),
        ] {
            assert!(reference(bad.to_string().as_bytes()).is_err(), "{bad}");
        }
    }
}
