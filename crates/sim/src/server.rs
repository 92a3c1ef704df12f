//! The HTTP server: connection handling, routing, and the cross-cutting middleware that
//! stamps the simulator's `Date` header, applies injected faults and records events.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use regex::Regex;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::clock::SimClock;
use crate::error::ArmError;
use crate::gate::Gate;
use crate::jwt::Signer;
use crate::state::World;
use crate::tenant::{Fixture, FixtureError};

/// Everything a request handler can reach.
pub struct Sim {
    pub clock: SimClock,
    pub world: Mutex<World>,
    pub signer: Signer,
    pub control: bool,
    /// The bearer token every `/_sim/` call must carry: random per run (RELIABILITY #30).
    pub control_token: String,
    pub base_url: String,
    pub faults: Mutex<Vec<Fault>>,
    pub gate: Gate,
}

pub type Shared = Arc<Sim>;

impl Sim {
    /// Locks the world after applying whatever the clock has decided since the last look.
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        let mut world = self
            .world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        world.tick(self.clock.now());
        world
    }

    /// The authority ARM names in its `WWW-Authenticate` challenges.
    pub fn authority(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.base_url)
    }
}

/// A fault injected with `POST /_sim/faults`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub path: Regex,
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    pub latency_ms: u64,
    pub drop: bool,
    pub remaining: u64,
    pub code: Option<String>,
    pub message: Option<String>,
    pub www_authenticate: Option<String>,
}

/// Per-connection facts the handlers need: who is calling from where, and a way to cut the
/// connection without answering (for injected dropped connections).
#[derive(Clone)]
pub struct Conn {
    pub peer: SocketAddr,
    kill: Arc<Notify>,
}

/// The user the ARM layer authenticated, so the middleware can name them in events.
#[derive(Clone, Debug)]
pub struct CallerTag(pub String);

/// Builds and starts a simulator. `SimBuilder::new("demo").start().await`.
#[derive(Debug, Clone)]
pub struct SimBuilder {
    tenant: String,
    fixture: Option<Fixture>,
    listen: SocketAddr,
    control: bool,
    propagation_delay: Option<u64>,
}

impl SimBuilder {
    /// A simulator of a built-in tenant (`demo`, `empty`) or a fixture file path.
    pub fn new(tenant: &str) -> SimBuilder {
        SimBuilder {
            tenant: tenant.into(),
            fixture: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: false,
            propagation_delay: None,
        }
    }

    /// A simulator of a fixture given as TOML text.
    pub fn from_fixture(fixture: Fixture) -> SimBuilder {
        SimBuilder {
            fixture: Some(fixture),
            ..SimBuilder::new("inline")
        }
    }

    pub fn listen(mut self, addr: SocketAddr) -> SimBuilder {
        self.listen = addr;
        self
    }

    /// Enables the `/_sim/` control API.
    pub fn control(mut self, on: bool) -> SimBuilder {
        self.control = on;
        self
    }

    /// Overrides the fixture's PIM propagation delay, in seconds.
    pub fn propagation_delay(mut self, secs: u64) -> SimBuilder {
        self.propagation_delay = Some(secs);
        self
    }

    pub async fn start(self) -> Result<SimHandle, StartError> {
        let mut fixture = match self.fixture {
            Some(f) => f,
            None => Fixture::load(&self.tenant)?,
        };
        if let Some(secs) = self.propagation_delay {
            fixture.tenant.propagation_delay_secs = secs;
        }
        let clock = SimClock::default();
        let world = World::from_fixture(&fixture, clock.now())?;
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: self.listen,
            source,
        })?;
        let base_url = format!("http://{addr}");
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let gate = Gate::new(shutdown_rx.clone());
        let sim = Arc::new(Sim {
            clock,
            world: Mutex::new(world),
            signer: Signer::simulator(),
            control: self.control,
            control_token: crate::entra::random_token(48),
            base_url: base_url.clone(),
            faults: Mutex::new(Vec::new()),
            gate,
        });
        crate::gate::reconcile(&sim);
        let router = router(sim.clone());
        tokio::spawn(serve(listener, router, shutdown_rx));
        Ok(SimHandle {
            sim,
            addr,
            base_url,
            shutdown: shutdown_tx,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    #[error("cannot listen on {addr}: {source} (choose another address with --listen)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running simulator. Dropping it stops the server and the JIT gate.
pub struct SimHandle {
    sim: Shared,
    addr: SocketAddr,
    base_url: String,
    shutdown: watch::Sender<bool>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> &str {
        &self.base_url
    }

    pub fn tenant_id(&self) -> String {
        self.sim.world().tenant.id.clone()
    }

    /// The bearer token the `/_sim/` control API asks for (`Authorization: Bearer …`);
    /// `None` without `control(true)`.
    pub fn control_token(&self) -> Option<&str> {
        self.sim.control.then_some(self.sim.control_token.as_str())
    }

    /// The client configuration that points Jumpgate at this simulator.
    pub fn client_config(&self) -> ClientConfig {
        let world = self.sim.world();
        ClientConfig {
            tenant_id: world.tenant.id.clone(),
            client_id: world.tenant.client_id.clone(),
            base_url: self.base_url.clone(),
            control_token: self.control_token().map(str::to_string),
        }
    }

    /// Stops serving. Also happens on drop.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The values `--write-config` writes.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub base_url: String,
    /// The control API's bearer token, when it is on.
    pub control_token: Option<String>,
}

impl ClientConfig {
    pub fn to_toml(&self) -> String {
        let ClientConfig {
            tenant_id,
            client_id,
            base_url,
            control_token,
        } = self;
        let control_token = match control_token {
            Some(t) => format!(
                "# Every /_sim/ call needs `Authorization: Bearer <control_token>`.\ncontrol_token = \"{t}\"\n"
            ),
            None => String::new(),
        };
        format!(
            r#"# Jumpgate client configuration written by jumpgate-sim.
# Every endpoint points at the simulator. For a real tenant, use
# authority_host = "https://login.microsoftonline.com",
# arm_endpoint = "https://management.azure.com" and
# graph_endpoint = "https://graph.microsoft.com".

[azure]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
authority_host = "{base_url}"   # login endpoints live under /{{tenant}}/oauth2/v2.0/
arm_endpoint = "{base_url}"
graph_endpoint = "{base_url}"     # only admin commands use it, to look users up
# Tokens are asked for Azure's own audiences, as the simulator issues them. Against a real
# cloud leave these out: each endpoint is its own audience.
arm_audience = "https://management.azure.com"
graph_audience = "https://graph.microsoft.com"

[network]
ip_echo_urls = ["{base_url}/ip", "{base_url}/cdn-cgi/trace"]
# The simulator's jump boxes live on loopback addresses, so the address the echo services
# report is a loopback one. Never set this against a real tenant.
allow_loopback_ip = true

[simulator]
control_url = "{base_url}/_sim"
{control_token}"#
        )
    }
}

async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(StdDuration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let kill = Arc::new(Notify::new());
        let conn = Conn {
            peer,
            kill: kill.clone(),
        };
        let router = router.clone();
        let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(conn.clone());
            let mut router = router.clone();
            async move { tower::Service::call(&mut router, req.map(Body::new)).await }
        });
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::select! {
                _ = connection => {}
                // Dropping the connection future closes the socket without an answer.
                _ = kill.notified() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

fn router(sim: Shared) -> Router {
    let mut router = Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(crate::entra::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(crate::entra::jwks))
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(crate::entra::authorize_page).post(crate::entra::authorize_submit),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(crate::entra::token))
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            post(crate::entra::devicecode),
        )
        .route(
            "/devicelogin",
            get(crate::entra::devicelogin_page).post(crate::entra::devicelogin_submit),
        )
        .route("/v1.0/users/{key}", get(crate::graph::user))
        .route(
            "/v1.0/applications",
            get(crate::graph::list_applications).post(crate::graph::create_application),
        )
        // One application by object id, or by client id in Graph's key syntax
        // (`applications(appId='…')`, its own segment), and its owners.
        .route(
            "/v1.0/applications/{*rest}",
            any(crate::graph::application_item),
        )
        .route(
            "/v1.0/applications{key}",
            any(crate::graph::application_item),
        )
        .route(
            "/v1.0/applications{key}/{*rest}",
            any(crate::graph::application_item),
        )
        .route(
            "/v1.0/servicePrincipals",
            get(crate::graph::list_service_principals).post(crate::graph::create_service_principal),
        )
        .route("/v1.0/groups/{id}", get(crate::graph::get_group))
        .route(
            "/v1.0/identityGovernance/privilegedAccess/group/{*rest}",
            any(crate::graph::pim),
        )
        .route(
            "/v1.0/roleManagement/directory/{*rest}",
            any(crate::graph::pim_directory),
        )
        .route(
            "/beta/roleManagement/directory/{*rest}",
            any(crate::graph::pim_directory),
        )
        .route("/v1.0/policies/{rest}", get(crate::graph::policies))
        .route("/ip", get(ip_plain))
        .route("/cdn-cgi/trace", get(ip_trace));
    if sim.control {
        router = router.nest(
            "/_sim",
            crate::control::router().layer(middleware::from_fn_with_state(
                sim.clone(),
                crate::control::guard,
            )),
        );
    }
    router
        .fallback(crate::arm::dispatch)
        .layer(middleware::from_fn_with_state(sim.clone(), cross_cutting))
        .with_state(sim)
}

/// Applies injected faults, stamps the `Date` header and records the request.
async fn cross_cutting(State(sim): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let is_control = path.starts_with("/_sim/") || path == "/_sim";
    if !is_control {
        if let Some(fault) = take_fault(&sim, &path) {
            if fault.latency_ms > 0 {
                tokio::time::sleep(StdDuration::from_millis(fault.latency_ms)).await;
            }
            if fault.drop {
                sim.world().record(
                    sim.clock.now(),
                    "fault.dropped",
                    json!({"method": method.as_str(), "path": path}),
                );
                if let Some(conn) = request.extensions().get::<Conn>() {
                    conn.kill.notify_one();
                }
                std::future::pending::<()>().await;
            }
            if let Some(status) = fault.status.and_then(|s| StatusCode::from_u16(s).ok()) {
                let mut response = fault_response(status, &fault);
                stamp_date(&sim, &mut response);
                sim.world().record(
                    sim.clock.now(),
                    "request",
                    json!({"method": method.as_str(), "path": path, "status": status.as_u16(), "fault": true}),
                );
                return response;
            }
        }
    }
    let mut response = next.run(request).await;
    stamp_date(&sim, &mut response);
    if !is_control {
        let caller = response
            .extensions()
            .get::<CallerTag>()
            .map(|c| c.0.clone());
        sim.world().record(
            sim.clock.now(),
            "request",
            json!({"method": method.as_str(), "path": path, "status": response.status().as_u16(), "caller": caller}),
        );
    }
    response
}

fn stamp_date(sim: &Sim, response: &mut Response) {
    if let Ok(value) = HeaderValue::from_str(&sim.clock.http_date()) {
        response.headers_mut().insert(header::DATE, value);
    }
}

fn take_fault(sim: &Sim, path: &str) -> Option<Fault> {
    let mut faults = sim.faults.lock().unwrap_or_else(|p| p.into_inner());
    let index = faults
        .iter()
        .position(|f| f.remaining > 0 && f.path.is_match(path))?;
    let fault = faults[index].clone();
    faults[index].remaining -= 1;
    if faults[index].remaining == 0 {
        faults.remove(index);
    }
    Some(fault)
}

fn fault_response(status: StatusCode, fault: &Fault) -> Response {
    if status == StatusCode::BAD_GATEWAY && fault.code.is_none() {
        // Gateways answer with HTML, not ARM JSON: clients must cope.
        let mut response =
            (status, "<html><body><h1>502 Bad Gateway</h1></body></html>").into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        if let Some(secs) = fault.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return response;
    }
    let (code, message) = match status.as_u16() {
        429 => (
            "TooManyRequests".to_string(),
            "The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow_00:05:00. For more information, see - https://aka.ms/srpthrottlinglimits".to_string(),
        ),
        s if s >= 500 => ("ServiceUnavailable".to_string(), format!("The simulator injected HTTP {status}.")),
        _ => ("InjectedFault".to_string(), format!("The simulator injected HTTP {status}.")),
    };
    let mut err = ArmError::new(
        status,
        fault.code.as_deref().unwrap_or(&code),
        fault.message.clone().unwrap_or(message),
    );
    err.retry_after = fault.retry_after;
    err.www_authenticate = fault.www_authenticate.clone();
    err.into_response()
}

/// The address the IP echo reports and ARM records as the caller's: the TCP source, unless
/// the control API set another.
pub fn public_address(sim: &Sim, conn: &Conn) -> IpAddr {
    sim.world()
        .ip_override
        .map(IpAddr::V4)
        .unwrap_or_else(|| conn.peer.ip())
}

async fn ip_plain(
    State(sim): State<Shared>,
    axum::Extension(conn): axum::Extension<Conn>,
) -> Response {
    let ip = public_address(&sim, &conn);
    ([(header::CONTENT_TYPE, "text/plain")], ip.to_string()).into_response()
}

async fn ip_trace(
    State(sim): State<Shared>,
    axum::Extension(conn): axum::Extension<Conn>,
    headers: axum::http::HeaderMap,
) -> Response {
    let ip = public_address(&sim, &conn);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let ts = sim.clock.now().timestamp_millis() as f64 / 1000.0;
    let body = format!(
        "fl=0f0\nh={host}\nip={ip}\nts={ts:.3}\nvisit_scheme=http\nuag={agent}\ncolo=SIM\nsliver=none\nhttp=http/1.1\nloc=XX\ntls=off\nsni=off\nwarp=off\ngateway=off\nrbi=off\nkex=none\n"
    );
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}
