//! `jumpgate admin app create`: the public client app registration for Jumpgate, made once
//! by an Entra admin through Microsoft Graph v1.0 (`applications`, the admin added as its
//! owner, then the `servicePrincipals` entry users sign in to), or an existing one adopted by
//! its client id once it passes every check. What is sent, and what an adoptable registration
//! looks like, is decided in `jumpgate_core::appreg`; this module talks to Graph, with a
//! delegated `Application.ReadWrite.All` and `Directory.Read.All` token from the admin's
//! sign-in.

use jumpgate_core::appreg;
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::text;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::arm::{enc, s};
use crate::engine::Engine;
use crate::http::{read_capped, ARM_CAP, MAX_PAGES};

/// An app registration, as `app create` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct AppRegistration {
    /// The client id (`appId`).
    pub client_id: String,
    /// The application's object id.
    pub object_id: String,
    pub name: String,
    /// Whether this run created the application (false with `--reuse`).
    pub created: bool,
    /// Whether this run created its service principal.
    pub service_principal_created: bool,
    /// Its owners as Graph lists them, each made one line ("Name <upn>").
    pub owners: Vec<String>,
    /// Whether it allows public client flows, so device-code sign-in.
    pub device_code: bool,
}

/// What the admin asked for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The name of a new registration (not used with `reuse`).
    pub name: String,
    pub options: appreg::Options,
    /// Adopt the registration with this client id (a GUID), once it passes every check of
    /// `appreg::reuse_problems`, instead of registering one.
    pub reuse: Option<String>,
}

/// The Graph answer: status and JSON body (`Null` when it is not JSON).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn error_code(&self) -> String {
        text::line(&s(&self.body, "/error/code"))
            .chars()
            .take(100)
            .collect()
    }
    fn error_message(&self) -> String {
        text::line(&s(&self.body, "/error/message"))
            .chars()
            .take(300)
            .collect()
    }
}

struct Graph<'a> {
    engine: &'a Engine,
    token: String,
}

impl Graph<'_> {
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, Failure> {
        let mut request = crate::http::client()
            .request(method, url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            Failure::new(
                Kind::Unavailable,
                "graph_unreachable",
                format!(
                    "cannot reach Microsoft Graph at {}: {}",
                    self.engine.config.graph(),
                    text::line(&e.to_string())
                ),
            )
        })?;
        let status = response.status().as_u16();
        // Lists of applications are larger than a user: read them with ARM's cap.
        let bytes = read_capped(response, ARM_CAP, "Microsoft Graph").await?;
        Ok(Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// Every item of a Graph list, following `@odata.nextLink` on the configured Graph
    /// origin only (the link is sent the token), for at most [`MAX_PAGES`] pages.
    async fn list(&self, path_and_query: &str, what: &str) -> Result<Vec<Value>, Failure> {
        let mut url = format!("{}{path_and_query}", self.engine.config.graph());
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.call(Method::GET, &url, None).await?;
            if answer.status != 200 {
                return Err(refused(&answer, what));
            }
            items.extend(answer.body["value"].as_array().cloned().unwrap_or_default());
            match answer.body["@odata.nextLink"].as_str() {
                Some(next) => url = graph_link(self.engine.config.graph(), next)?,
                None => return Ok(items),
            }
        }
        Err(Failure::new(
            Kind::Unavailable,
            "graph_paging",
            format!("Microsoft Graph kept linking to more pages while {what}: stopped after {MAX_PAGES}."),
        ))
    }
}

/// A next-page link, when it points at the configured Graph endpoint `base` (same scheme,
/// host and port, no userinfo, under its path's `/v1.0/`): it is sent the token.
fn graph_link(base: &str, link: &str) -> Result<String, Failure> {
    let refuse = || {
        Failure::new(
            Kind::Other,
            "graph_next_link",
            "Microsoft Graph answered a next page outside the configured Graph endpoint; it was not followed.",
        )
    };
    let base = url::Url::parse(base).map_err(|_| refuse())?;
    let url = url::Url::parse(link).map_err(|_| refuse())?;
    let prefix = base.path().trim_end_matches('/');
    let same = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
        && url
            .path()
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with("/v1.0/"));
    if same {
        Ok(url.to_string())
    } else {
        Err(refuse())
    }
}

/// Graph's refusal of `what` as a failure that says what to do.
fn refused(answer: &Answer, what: &str) -> Failure {
    let code = answer.error_code();
    let detail = match answer.error_message() {
        m if m.is_empty() => code.clone(),
        m => format!("{code}: {m}"),
    };
    match answer.status {
        401 => Failure::new(
            Kind::SignIn,
            "graph_token",
            format!("Microsoft Graph refused the sign-in while {what} ({detail}): run jumpgate signin and try again."),
        ),
        403 => Failure::new(
            Kind::Denied,
            "Authorization_RequestDenied",
            format!(
                "Microsoft Graph refused {what} ({detail}). Registering an application needs the Entra role Application Administrator, Cloud Application Administrator or Global Administrator, and a sign-in that may use the delegated permissions {} and {}: sign in as such an admin, or ask one to run jumpgate admin app create.",
                appreg::WRITE_PERMISSION,
                appreg::OWNER_PERMISSION
            ),
        ),
        404 => Failure::new(
            Kind::NotFound,
            "graph_not_found",
            format!("Microsoft Graph found nothing while {what} ({detail})."),
        ),
        429 | 503 | 504 => Failure::new(
            Kind::Unavailable,
            "graph_busy",
            format!("Microsoft Graph is busy ({}) while {what}: try again in a minute.", answer.status),
        ),
        400..=499 => Failure::new(
            Kind::Other,
            "graph_bad_request",
            format!("Microsoft Graph refused the request while {what} (HTTP {}, {detail})", answer.status),
        ),
        _ => Failure::new(
            Kind::Unavailable,
            "graph_error",
            format!("Microsoft Graph answered HTTP {} while {what}: try again later.", answer.status),
        ),
    }
}

fn existing_names(apps: &[Value]) -> String {
    apps.iter()
        .map(|a| text::line(&s(a, "/appId")).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A GUID from a Graph answer or a token, before it becomes part of a URL or a body.
fn guid(value: &str, what: &str) -> Result<String, Failure> {
    uuid::Uuid::parse_str(value)
        .map(|u| u.to_string())
        .map_err(|_| {
            Failure::new(
                Kind::Other,
                "graph_unexpected",
                format!("{what} is not a GUID; nothing more was sent."),
            )
        })
}

/// What `create` does: register a new app of this name, or adopt the one with this client id.
enum Plan<'a> {
    Register(&'a str),
    Adopt(String),
}

/// Creates the app registration, makes the signed-in admin its owner and creates its service
/// principal; or, with `reuse`, adopts the registration of that client id once it passes
/// every check (nothing is changed otherwise) and finishes it. A registration of the same
/// name is refused, naming the client ids: a rerun never leaves duplicates behind, and a name
/// is never enough to adopt one, since anyone in the tenant may register any name.
pub async fn create(engine: &Engine, request: &CreateRequest) -> Result<AppRegistration, Failure> {
    // Checked before anything is asked of Entra or Graph.
    let plan = match &request.reuse {
        Some(id) => Plan::Adopt(appreg::check_client_id(id).map_err(Failure::usage)?),
        None => Plan::Register(appreg::check_name(&request.name).map_err(Failure::usage)?),
    };
    let scope = format!(
        "{} {}",
        engine.config.graph_scope(appreg::WRITE_PERMISSION),
        engine.config.graph_scope(appreg::OWNER_PERMISSION)
    );
    let token = engine.session.token_for(&scope).await.map_err(|e| {
        let f: Failure = e.into();
        if f.explanation.kind == Kind::Denied {
            Failure::new(
                Kind::Denied,
                &f.explanation.code,
                format!(
                    "{} Registering Jumpgate needs a sign-in allowed Microsoft Graph's delegated {} and {} permissions: sign in as an Entra admin through a client the tenant has consented them for (see Admin set-up in the README).",
                    f.explanation.message,
                    appreg::WRITE_PERMISSION,
                    appreg::OWNER_PERMISSION
                ),
            )
        } else {
            f
        }
    })?;
    let me = guid(
        &engine.account().await?.oid,
        "The signed-in account's object id",
    )?;
    let graph = Graph { engine, token };
    let (app, owners, created) = match plan {
        Plan::Adopt(client_id) => {
            let (app, owners) = adoptable(&graph, &client_id, &me, request.options).await?;
            (app, owners, false)
        }
        Plan::Register(name) => {
            let app = register(&graph, name, &me, request.options).await?;
            let owners = graph
                .list(
                    &format!(
                        "/v1.0/applications/{}/owners",
                        guid(
                            &s(&app, "/id"),
                            "The application id Microsoft Graph answered"
                        )?
                    ),
                    "reading the new app's owners",
                )
                .await?;
            (app, owners, true)
        }
    };
    let client_id = guid(&s(&app, "/appId"), "The client id Microsoft Graph answered")?;
    let sps = graph
        .list(
            &format!(
                "/v1.0/servicePrincipals?$filter={}&$select=id,appId",
                enc(&format!("appId eq '{client_id}'"))
            ),
            "looking for the app's service principal",
        )
        .await?;
    let mut service_principal_created = false;
    if sps.is_empty() {
        let answer = create_service_principal(engine, &graph, &client_id).await?;
        match answer.status {
            200 | 201 => service_principal_created = true,
            // Made meanwhile (replication, or another admin): it exists, which is the goal.
            409 => {}
            _ => {
                return Err(refused(
                    &answer,
                    &format!("creating the service principal of app {client_id} (run again with --reuse {client_id} to finish it)"),
                ))
            }
        }
    }
    Ok(AppRegistration {
        client_id,
        object_id: text::line(&s(&app, "/id")).into_owned(),
        name: text::line(&s(&app, "/displayName")).into_owned(),
        created,
        service_principal_created,
        owners: owners.iter().map(appreg::owner_name).collect(),
        device_code: app["isFallbackPublicClient"].as_bool().unwrap_or(false),
    })
}

/// Registers a new application named `name`, after making sure no registration has that name,
/// and adds the admin (`me`) as its owner: Entra does not make its admin roles owners of
/// what they register, and `--reuse` adopts only an app its admin owns.
async fn register(
    graph: &Graph<'_>,
    name: &str,
    me: &str,
    options: appreg::Options,
) -> Result<Value, Failure> {
    let base = graph.engine.config.graph();
    let filter = enc(&format!("displayName eq {}", appreg::odata_string(name)));
    // Graph compares names without regard to case: "jumpgate" counts as a duplicate too.
    let existing = graph
        .list(
            &format!("/v1.0/applications?$filter={filter}&$select=id,appId,displayName"),
            "looking for an existing app registration",
        )
        .await?;
    if !existing.is_empty() {
        return Err(Failure::new(
            Kind::Conflict,
            "app_exists",
            format!(
                "An app registration named '{name}' already exists (client id {}). If one is the registration you made for Jumpgate, run again with --reuse and its client id: it is adopted only once it is checked to be yours, with no secrets, certificates or web redirect URIs. Anyone in the tenant may register an app of any name, so do not adopt one you do not know: choose another --name.",
                existing_names(&existing)
            ),
        ));
    }
    let answer = graph
        .call(
            Method::POST,
            &format!("{base}/v1.0/applications"),
            Some(&appreg::application(name, options)),
        )
        .await?;
    if answer.status != 201 && answer.status != 200 {
        return Err(refused(&answer, "creating the app registration"));
    }
    let app = answer.body;
    let object_id = guid(
        &s(&app, "/id"),
        "The application id Microsoft Graph answered",
    )?;
    let client_id = guid(&s(&app, "/appId"), "The client id Microsoft Graph answered")?;
    let added = graph
        .call(
            Method::POST,
            &format!("{base}/v1.0/applications/{object_id}/owners/$ref"),
            Some(&serde_json::json!({ "@odata.id": format!("{base}/v1.0/directoryObjects/{me}") })),
        )
        .await?;
    let already = added.status == 400 && added.error_message().contains("already exist");
    if !matches!(added.status, 200 | 201 | 204) && !already {
        let why = refused(&added, "adding you as the new app's owner");
        return Err(Failure::new(
            why.explanation.kind,
            &why.explanation.code,
            format!(
                "The app registration '{name}' was created (client id {client_id}), but you could not be made its owner: {} Add yourself under Owners in the Entra admin center, then run jumpgate admin app create --reuse {client_id} to finish it.",
                why.explanation.message
            ),
        ));
    }
    Ok(app)
}

/// The registration with `client_id` and its owners, when `appreg::reuse_problems` finds
/// nothing wrong with it for the admin `me`; otherwise every problem, and nothing changed.
async fn adoptable(
    graph: &Graph<'_>,
    client_id: &str,
    me: &str,
    options: appreg::Options,
) -> Result<(Value, Vec<Value>), Failure> {
    let path = format!("/v1.0/applications(appId='{client_id}')");
    let answer = graph
        .call(
            Method::GET,
            &format!("{}{path}", graph.engine.config.graph()),
            None,
        )
        .await?;
    match answer.status {
        200 => {}
        404 => {
            return Err(Failure::new(
                Kind::NotFound,
                "app_not_found",
                format!(
                    "No app registration in this tenant has the client id {client_id}: check the Application (client) ID in the Entra admin center, or leave out --reuse to register a new app."
                ),
            ))
        }
        _ => return Err(refused(&answer, &format!("reading the app registration {client_id}"))),
    }
    let app = answer.body;
    let owners = graph
        .list(
            &format!("{path}/owners"),
            &format!("reading the owners of app {client_id}"),
        )
        .await?;
    let problems = appreg::reuse_problems(&app, &owners, me, options);
    if problems.is_empty() {
        return Ok((app, owners));
    }
    Err(Failure::new(
        Kind::Denied,
        "app_not_adoptable",
        appreg::refusal(&s(&app, "/displayName"), client_id, &problems),
    ))
}

/// How long a new application may take to reach every Entra replica, within which its
/// service principal is refused as naming no application (Azure CLI waits up to 3 minutes;
/// seconds are usual).
const REPLICATION_BUDGET_SECS: u64 = 120;

/// Whether Graph refused a service principal because its application has not replicated yet
/// (400 `Request_BadRequest`, "does not reference a valid application object", detail
/// `NoBackingApplicationObject`).
fn not_replicated_yet(answer: &Answer) -> bool {
    answer.status == 400
        && (answer
            .error_message()
            .contains("does not reference a valid application object")
            || answer
                .body
                .to_string()
                .contains("NoBackingApplicationObject"))
}

/// Creates the app's service principal, waiting, with progress, while Entra replicates a new
/// application.
async fn create_service_principal(
    engine: &Engine,
    graph: &Graph<'_>,
    client_id: &str,
) -> Result<Answer, Failure> {
    let started = std::time::Instant::now();
    let mut wait = std::time::Duration::from_secs(2);
    loop {
        let answer = graph
            .call(
                Method::POST,
                &format!("{}/v1.0/servicePrincipals", engine.config.graph()),
                Some(&serde_json::json!({ "appId": client_id })),
            )
            .await?;
        if !not_replicated_yet(&answer)
            || started.elapsed() + wait > std::time::Duration::from_secs(REPLICATION_BUDGET_SECS)
        {
            return Ok(answer);
        }
        engine.publish(jumpgate_core::events::EngineEvent::Progress {
            message: format!(
                "Entra is still replicating the new application; creating its service principal again in {}s",
                wait.as_secs()
            ),
        });
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(15));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_followed_on_the_graph_origin_only() {
        let base = "https://graph.microsoft.com";
        let ok = "https://graph.microsoft.com/v1.0/applications?$skiptoken=x";
        assert_eq!(graph_link(base, ok).as_deref().ok(), Some(ok));
        assert!(graph_link(
            "http://127.0.0.1:4000/",
            "http://127.0.0.1:4000/v1.0/servicePrincipals?$top=2"
        )
        .is_ok());
        for bad in [
            "https://evil.example/v1.0/applications",
            "http://graph.microsoft.com/v1.0/applications",
            "https://graph.microsoft.com:8443/v1.0/applications",
            "https://user@graph.microsoft.com/v1.0/applications",
            "https://graph.microsoft.com/beta/applications",
            "https://graph.microsoft.com.evil.example/v1.0/applications",
            "/v1.0/applications",
        ] {
            assert!(graph_link(base, bad).is_err(), "{bad}");
        }
    }
}
