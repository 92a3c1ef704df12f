//! `jumpgate admin app create`: the public client app registration for Jumpgate, made once
//! by an Entra admin through Microsoft Graph v1.0 (`applications`, then the
//! `servicePrincipals` entry users sign in to). What is sent is decided in
//! `jumpgate_core::appreg`; this module talks to Graph, with a delegated
//! `Application.ReadWrite.All` token from the admin's sign-in.

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
}

/// What the admin asked for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: String,
    pub graph_read_users: bool,
    /// Ask for the Microsoft Graph permissions PIM for Groups needs.
    pub groups: bool,
    /// Use an existing registration of that name instead of refusing.
    pub reuse: bool,
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
                "Microsoft Graph refused {what} ({detail}). Registering an application needs the Entra role Application Administrator, Cloud Application Administrator or Global Administrator, and a sign-in that may use the delegated permission {}: sign in as such an admin, or ask one to run jumpgate admin app create.",
                appreg::WRITE_PERMISSION
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

/// Creates the app registration and its service principal, or, with `reuse`, finishes an
/// existing one of that name. Refuses a second registration of the same name: a rerun never
/// leaves duplicates behind.
pub async fn create(engine: &Engine, request: &CreateRequest) -> Result<AppRegistration, Failure> {
    let name = appreg::check_name(&request.name).map_err(Failure::usage)?;
    let token = engine
        .session
        .token_for(&engine.config.graph_scope(appreg::WRITE_PERMISSION))
        .await
        .map_err(|e| {
            let f: Failure = e.into();
            if f.explanation.kind == Kind::Denied {
                Failure::new(
                    Kind::Denied,
                    &f.explanation.code,
                    format!(
                        "{} Registering Jumpgate needs a sign-in allowed Microsoft Graph's delegated {} permission: sign in as an Entra admin through a client the tenant has consented it for (see Admin set-up in the README).",
                        f.explanation.message,
                        appreg::WRITE_PERMISSION
                    ),
                )
            } else {
                f
            }
        })?;
    let graph = Graph { engine, token };
    let filter = enc(&format!("displayName eq {}", appreg::odata_string(name)));
    let existing = graph
        .list(
            &format!("/v1.0/applications?$filter={filter}&$select=id,appId,displayName"),
            "looking for an existing app registration",
        )
        .await?;
    // Graph compares names without regard to case: "jumpgate" counts as a duplicate too.
    let (app, created) = match (existing.as_slice(), request.reuse) {
        ([], _) => {
            let answer = graph
                .call(
                    Method::POST,
                    &format!("{}/v1.0/applications", engine.config.graph()),
                    Some(&appreg::application(name, request.graph_read_users, request.groups)),
                )
                .await?;
            if answer.status != 201 && answer.status != 200 {
                return Err(refused(&answer, "creating the app registration"));
            }
            (answer.body, true)
        }
        ([one], true) => (one.clone(), false),
        (many, true) => {
            return Err(Failure::new(
                Kind::Conflict,
                "app_ambiguous",
                format!(
                    "{} app registrations are named '{name}' (client ids {}): --reuse cannot choose; remove the extra ones in the Entra admin center, or choose another --name.",
                    many.len(),
                    existing_names(many)
                ),
            ))
        }
        (some, false) => {
            return Err(Failure::new(
                Kind::Conflict,
                "app_exists",
                format!(
                    "An app registration named '{name}' already exists (client id {}): pass --reuse to finish it and print its configuration, or choose another --name.",
                    existing_names(some)
                ),
            ))
        }
    };
    let client_id = s(&app, "/appId");
    if uuid::Uuid::parse_str(&client_id).is_err() {
        return Err(Failure::new(
            Kind::Other,
            "graph_unexpected",
            "Microsoft Graph answered an application without a valid appId.",
        ));
    }
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
                    &format!("creating the service principal of app {client_id} (run again with --reuse to finish it)"),
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
    })
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
