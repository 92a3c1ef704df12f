//! Entra ID sign-in for a public client (RELIABILITY #1 to #6).
//!
//! - Browser: auth code + PKCE S256 with a loopback redirect on `127.0.0.1` and an ephemeral
//!   port, through the system browser (never an embedded view). `state` is random, checked and
//!   used once; a callback with a wrong or missing `state` gets HTTP 400 and the wait goes on.
//! - Device code: honours `interval`, backs off on `slow_down`, stops on `expired_token` and
//!   `access_denied` (the `oauth2` crate's RFC 8628 loop).
//! - Azure CLI: reuses `az login` through `azure_identity`.
//! - Refresh: the new refresh token replaces the old one; `invalid_grant` means "sign in
//!   again", never a retry loop.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration as StdDuration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, DeviceAuthorizationUrl, PkceCodeChallenge,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardDeviceAuthorizationResponse,
    TokenResponse as _, TokenUrl,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::tokens::{Account, Binding, Source, TokenSet};

/// Where to sign in, and for what.
#[derive(Debug, Clone)]
pub struct Authority {
    /// `https://login.microsoftonline.com/{tenant}` (or the simulator's).
    pub base: String,
    pub client_id: String,
    /// The tenant id, for sign-ins that go through another tool (`az login`).
    pub tenant: String,
    /// The ARM scope from the configuration (`https://management.azure.com/.default` in
    /// Azure's public cloud), so a sovereign cloud gets its own audience.
    pub arm_scope: String,
    /// The Microsoft Graph audience from the configuration (`https://graph.microsoft.com`).
    pub graph_audience: String,
}

impl Authority {
    pub fn from_config(config: &jumpgate_core::config::Config) -> Authority {
        Authority {
            base: config.authority(),
            client_id: config.azure.client_id.clone(),
            tenant: config.azure.tenant_id.clone(),
            arm_scope: config.arm_scope(),
            graph_audience: config.graph_audience().to_string(),
        }
    }

    /// What a sign-in made here is for: this authority, this client, these audiences.
    pub fn binding(&self) -> Binding {
        Binding {
            authority: self.base.trim_end_matches('/').to_string(),
            client_id: self.client_id.clone(),
            audiences: vec![self.arm_scope.clone(), self.graph_audience.clone()],
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/oauth2/v2.0/{path}", self.base.trim_end_matches('/'))
    }

    /// What every sign-in and renewal asks for: ARM, and a refresh token.
    fn scopes(&self) -> [&str; 4] {
        [&self.arm_scope, "openid", "profile", "offline_access"]
    }
}

/// The HTTP transport `oauth2` drives, on our reqwest client.
type Transport = Box<
    dyn Fn(
            oauth2::HttpRequest,
        ) -> Pin<
            Box<
                dyn Future<Output = std::result::Result<oauth2::HttpResponse, TransportError>>
                    + Send,
            >,
        > + Send
        + Sync,
>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

fn transport() -> Transport {
    let http = crate::http::client();
    Box::new(move |request: oauth2::HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| TransportError(e.to_string()))?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (k, v) in response.headers() {
                builder = builder.header(k, v);
            }
            // Token answers are small; a larger one is refused, not buffered (RELIABILITY #25).
            let bytes = crate::http::read_capped(response, crate::http::TOKEN_CAP, "Entra ID")
                .await
                .map_err(|e| TransportError(e.to_string()))?;
            builder
                .body(bytes)
                .map_err(|e| TransportError(e.to_string()))
        })
    })
}

fn token_error<T: oauth2::ErrorResponseType + std::fmt::Display>(
    e: RequestTokenError<TransportError, oauth2::StandardErrorResponse<T>>,
) -> Error {
    match e {
        RequestTokenError::ServerResponse(r) => Error::Entra {
            error: serde_json::to_value(r.error())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            description: r.error_description().cloned().unwrap_or_default(),
        },
        RequestTokenError::Request(t) => Error::Unreachable {
            what: "Entra ID".into(),
            detail: t.0,
        },
        RequestTokenError::Parse(e, body) => {
            // Entra's error JSON carries fields oauth2 does not model; read `error` ourselves.
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match v["error"].as_str() {
                Some(error) => Error::Entra {
                    error: error.into(),
                    description: v["error_description"].as_str().unwrap_or("").into(),
                },
                None => Error::Unexpected {
                    what: "Entra ID".into(),
                    detail: e.to_string(),
                },
            }
        }
        RequestTokenError::Other(m) => Error::Other(m),
    }
}

/// The claims of a JWT, without checking its signature: the token was just handed to us by
/// the token endpoint over TLS, and ARM checks it on every call.
pub fn claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&B64.decode(payload.trim_end_matches('=')).ok()?).ok()
}

pub fn account_of(access_token: &str) -> Result<Account> {
    let c = claims(access_token).ok_or_else(|| Error::Unexpected {
        what: "Entra ID".into(),
        detail: "the access token is not a JWT".into(),
    })?;
    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
    // Members carry `upn`; v2 tokens `preferred_username`; guests neither, but
    // `unique_name` and `email`.
    let mut names: Vec<String> = Vec::new();
    for name in ["upn", "preferred_username", "unique_name", "email"].map(s) {
        if !name.trim().is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            names.push(name);
        }
    }
    Ok(Account {
        upn: names.first().cloned().unwrap_or_default(),
        oid: s("oid"),
        tid: s("tid"),
        name: s("name"),
        names,
    })
}

fn token_set(
    authority: &Authority,
    response: &BasicTokenResponse,
    source: Source,
    previous_refresh: Option<&str>,
) -> Result<TokenSet> {
    let access = response.access_token().secret().clone();
    let c = claims(&access).unwrap_or(Value::Null);
    let expires_at = c["exp"].as_i64().unwrap_or_else(|| {
        chrono::Utc::now().timestamp()
            + response
                .expires_in()
                .map(|d| d.as_secs() as i64)
                .unwrap_or(3600)
    });
    Ok(TokenSet {
        account: account_of(&access)?,
        access_token: access,
        expires_at,
        refresh_token: response
            .refresh_token()
            .map(|r| r.secret().clone())
            .or(previous_refresh.map(str::to_string)),
        source,
        made_for: Some(authority.binding()),
    })
}

type OAuth = oauth2::Client<
    BasicErrorResponse,
    BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn client(authority: &Authority, redirect: Option<String>) -> Result<OAuth> {
    if authority.client_id.trim().is_empty() {
        // `sign_in = "azure_cli"` configurations have no app registration to sign in with.
        return Err(Error::SignInRequired(
            "This configuration names no app registration (azure.client_id): it signs in through the Azure CLI. Run az login, then jumpgate signin --azure-cli; or add your organisation's client id as azure.client_id.".into(),
        ));
    }
    let bad =
        |e: oauth2::url::ParseError| Error::Other(format!("the authority URL is not valid: {e}"));
    let mut c = BasicClient::new(ClientId::new(authority.client_id.clone()))
        .set_auth_uri(AuthUrl::new(authority.url("authorize")).map_err(bad)?)
        .set_token_uri(TokenUrl::new(authority.url("token")).map_err(bad)?)
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(authority.url("devicecode")).map_err(bad)?,
        );
    if let Some(r) = redirect {
        c = c.set_redirect_uri(RedirectUrl::new(r).map_err(bad)?);
    }
    Ok(c)
}

/// Options for the browser flow.
pub struct BrowserOptions {
    /// The UPN to pre-fill (`login_hint`).
    pub login_hint: Option<String>,
    /// `prompt=none`: sign in silently when the browser already has a session.
    pub silent: bool,
    /// A claims request (JSON) for a step-up: MFA or an authentication context that a
    /// refused call asked for.
    pub claims: Option<String>,
    /// Called with the authorize URL: open it in the system browser, or print it.
    pub on_url: Box<dyn FnOnce(&str) + Send>,
    pub timeout: StdDuration,
}

/// Signs in through the system browser and the loopback redirect.
pub async fn browser(authority: &Authority, options: BrowserOptions) -> Result<TokenSet> {
    let listener = Loopback::bind().await?;
    let port = listener.port;
    // The redirect names `localhost`: the loopback URI a public client can register in Entra
    // is `http://localhost`, matched with any port. The browser may resolve it to either
    // loopback address, so both are listened on.
    let redirect = format!("http://localhost:{port}/");
    let oauth = client(authority, Some(redirect))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = oauth
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for s in authority.scopes() {
        request = request.add_scope(Scope::new(s.into()));
    }
    if let Some(hint) = &options.login_hint {
        request = request.add_extra_param("login_hint", hint.clone());
    }
    if let Some(claims) = &options.claims {
        request = request.add_extra_param("claims", claims.clone());
    }
    if options.silent {
        request = request.add_extra_param("prompt", "none");
    }
    let (url, state) = request.add_extra_param("response_mode", "query").url();
    (options.on_url)(url.as_str());
    let code = tokio::time::timeout(
        options.timeout,
        wait_for_code(&listener, state.secret(), "/"),
    )
    .await
    .map_err(|_| {
        Error::TimedOut(format!(
            "no sign-in arrived within {}s: run jumpgate signin again",
            options.timeout.as_secs()
        ))
    })??;
    let http = transport();
    let response = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .map_err(token_error)?;
    token_set(authority, &response, Source::Browser, None)
}

/// Signs in as `upn` at a simulator started with its control API (the tray's demo mode),
/// without a browser: the same authorization-code + PKCE flow as [`browser`], with
/// `prompt=none` and `login_hint`, the app itself making the two requests a browser would
/// (the authorize URL, then the loopback redirect it answers with). Against Entra,
/// `prompt=none` without a browser session fails with `login_required`.
pub async fn demo(authority: &Authority, upn: &str, claims: Option<&str>) -> Result<TokenSet> {
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let playing = tokio::spawn(async move {
        let url = rx
            .await
            .map_err(|_| "the sign-in did not start".to_string())?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let answer = http.get(&url).send().await.map_err(|e| e.to_string())?;
        let location = answer
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                format!(
                    "the sign-in page answered {} without a redirect: is this a simulator started with --control?",
                    answer.status()
                )
            })?;
        if !location.starts_with("http://localhost:") {
            return Err(format!(
                "the sign-in redirected away from Jumpgate, to {location}"
            ));
        }
        http.get(&location)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    });
    let sign_in = browser(
        authority,
        BrowserOptions {
            login_hint: Some(upn.to_string()),
            silent: true,
            claims: claims.map(str::to_string),
            on_url: Box::new(move |url: &str| {
                let _ = tx.send(url.to_string());
            }),
            timeout: StdDuration::from_secs(15),
        },
    );
    tokio::pin!(sign_in);
    let mut playing = playing;
    let failed = |why: String| {
        Error::Other(format!(
            "demo sign-in as {upn} failed: {why} (it needs the embedded simulator, or jumpgate-sim with --control)"
        ))
    };
    tokio::select! {
        tokens = &mut sign_in => tokens.map_err(|e| failed(e.to_string())),
        played = &mut playing => match played {
            // The redirect reached the listener: the code exchange finishes the sign-in.
            Ok(Ok(())) => sign_in.await.map_err(|e| failed(e.to_string())),
            Ok(Err(why)) => Err(failed(why)),
            Err(e) => Err(failed(e.to_string())),
        },
    }
}

/// How long one connection to the loopback listener may take to send its request: a
/// browser sends it at once, and a slower client must not hold up the sign-in.
const CALLBACK_READ: StdDuration = StdDuration::from_secs(2);

/// Answers loopback callbacks until one on the redirect's `path` carries the right `state`
/// (RELIABILITY #2). Each connection is served on its own task with a short read timeout,
/// so a local process that connects and says nothing cannot stall the sign-in; a request
/// for another path gets 404 and is ignored, and so does one with the wrong `state`, even
/// when it carries `error=`.
async fn wait_for_code(listener: &Loopback, state: &str, path: &str) -> Result<String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<String>>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // A connection that failed before it was accepted; keep listening.
                    continue;
                };
                let tx = tx.clone();
                let (state, path) = (state.to_string(), path.to_string());
                tokio::spawn(async move {
                    if let Some(outcome) = serve_callback(stream, &state, &path).await {
                        let _ = tx.send(outcome).await;
                    }
                });
            }
            Some(outcome) = rx.recv() => return outcome,
        }
    }
}

/// The sign-in redirect's listener: RFC 8252's loopback IP literals with an ephemeral port,
/// never a wildcard address. `localhost`, which the redirect names, resolves to `127.0.0.1`
/// or `::1` as the system says, so both listen on the same port; a machine with no IPv6
/// loopback gets `127.0.0.1` alone.
pub struct Loopback {
    v4: TcpListener,
    v6: Option<TcpListener>,
    pub port: u16,
}

impl Loopback {
    /// Tries a few ephemeral ports: another program may hold the IPv6 one.
    pub async fn bind() -> Result<Loopback> {
        let mut last = None;
        for _ in 0..5 {
            let v4 = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
                Error::Other(format!(
                    "cannot listen on 127.0.0.1 for the sign-in redirect: {e}"
                ))
            })?;
            let port = v4
                .local_addr()
                .map_err(|e| Error::Other(e.to_string()))?
                .port();
            match TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, port)).await {
                Ok(v6) => {
                    return Ok(Loopback {
                        v4,
                        v6: Some(v6),
                        port,
                    })
                }
                Err(e) if no_ipv6_loopback(&e) => return Ok(Loopback { v4, v6: None, port }),
                Err(e) => last = Some(e),
            }
        }
        Err(Error::Other(format!(
            "cannot listen on [::1] beside 127.0.0.1 on one port for the sign-in redirect ({}): the browser may send it to either, as localhost names both. Close what holds the loopback ports, or sign in with --device-code",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// The next connection, on either address.
    async fn accept(&self) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
        match &self.v6 {
            Some(v6) => tokio::select! {
                a = self.v4.accept() => a,
                a = v6.accept() => a,
            },
            None => self.v4.accept().await,
        }
    }
}

/// Whether binding `::1` failed because this machine has no IPv6 loopback (IPv6 disabled),
/// rather than because the port is taken.
fn no_ipv6_loopback(e: &std::io::Error) -> bool {
    // The address family is not supported: EAFNOSUPPORT, or Windows' WSAEAFNOSUPPORT.
    #[cfg(target_os = "linux")]
    const NO_FAMILY: i32 = 97;
    #[cfg(windows)]
    const NO_FAMILY: i32 = 10047;
    #[cfg(not(any(target_os = "linux", windows)))]
    const NO_FAMILY: i32 = 47;
    matches!(
        e.kind(),
        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
    ) || e.raw_os_error() == Some(NO_FAMILY)
}

/// Serves one connection: `Some` when it ends the sign-in (a code, or an error from the
/// authority), `None` when it is answered and ignored.
async fn serve_callback(
    mut stream: tokio::net::TcpStream,
    state: &str,
    path: &str,
) -> Option<Result<String>> {
    let mut buf = Vec::with_capacity(1024);
    let read_head = async {
        let mut chunk = [0u8; 1024];
        while buf.len() < 8192 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    if tokio::time::timeout(CALLBACK_READ, read_head)
        .await
        .is_err()
        && buf.is_empty()
    {
        return None;
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    let Ok(url) = url::Url::parse(&format!("http://127.0.0.1{target}")) else {
        reply(&mut stream, 400, "This is not a sign-in response.").await;
        return None;
    };
    if !target.starts_with('/') || url.path() != path {
        reply(&mut stream, 404, "Nothing here.").await;
        return None;
    }
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if get("state").as_deref() != Some(state) {
        reply(&mut stream, 400, "This sign-in response does not belong to the sign-in Jumpgate started; it was ignored.").await;
        return None;
    }
    if let Some(error) = get("error") {
        reply(
            &mut stream,
            400,
            "The sign-in did not complete. You can close this window and return to Jumpgate.",
        )
        .await;
        return Some(Err(Error::Entra {
            error,
            description: get("error_description").unwrap_or_default(),
        }));
    }
    match get("code") {
        Some(code) => {
            reply(
                &mut stream,
                200,
                "You are signed in to Jumpgate. You can close this window.",
            )
            .await;
            Some(Ok(code))
        }
        None => {
            reply(&mut stream, 400, "The sign-in response carries no code.").await;
            None
        }
    }
}

async fn reply(stream: &mut tokio::net::TcpStream, status: u16, text: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Jumpgate</title></head><body><p>{text}</p></body></html>");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Signs in with a device code. `on_code` shows the user where to go and what to type.
pub async fn device_code(
    authority: &Authority,
    claims: Option<&str>,
    on_code: impl FnOnce(&str, &str, &str),
) -> Result<TokenSet> {
    let oauth = client(authority, None)?;
    let http = transport();
    let mut request = oauth.exchange_device_code();
    for s in authority.scopes() {
        request = request.add_scope(Scope::new(s.into()));
    }
    if let Some(c) = claims {
        request = request.add_extra_param("claims", c.to_string());
    }
    let details: StandardDeviceAuthorizationResponse =
        request.request_async(&http).await.map_err(token_error)?;
    on_code(
        details.verification_uri().as_str(),
        details.user_code().secret(),
        &format!("{}s", details.expires_in().as_secs()),
    );
    let response = oauth
        .exchange_device_access_token(&details)
        .request_async(&http, tokio::time::sleep, None)
        .await
        .map_err(token_error)?;
    token_set(authority, &response, Source::DeviceCode, None)
}

/// Exchanges a refresh token for new tokens; the refresh token rotates.
pub async fn refresh(authority: &Authority, current: &TokenSet) -> Result<TokenSet> {
    let Some(rt) = current.refresh_token.as_deref() else {
        return Err(Error::SignInRequired(
            "Your sign-in cannot be renewed: run jumpgate signin.".into(),
        ));
    };
    let oauth = client(authority, None)?;
    let http = transport();
    let rt = RefreshToken::new(rt.to_string());
    let mut request = oauth.exchange_refresh_token(&rt);
    for s in authority.scopes() {
        request = request.add_scope(Scope::new(s.into()));
    }
    let response = request.request_async(&http).await.map_err(token_error)?;
    // An answer without a refresh token leaves the one sent valid (RFC 6749 section 6: the
    // server "MAY issue a new refresh token"): it is kept, not dropped.
    token_set(
        authority,
        &response,
        current.source,
        current.refresh_token.as_deref(),
    )
}

/// An access token for another resource (Microsoft Graph, say) from the refresh token.
/// The refresh token rotates: the returned set keeps the ARM access token and carries the new
/// refresh token, and must be stored.
pub async fn refresh_for(
    authority: &Authority,
    current: &TokenSet,
    scope: &str,
) -> Result<(TokenSet, String, i64)> {
    if current.source == Source::AzureCli {
        use azure_core::credentials::TokenCredential as _;
        // The Azure CLI's own app may ask Microsoft Graph for `.default` only (a named
        // permission gets AADSTS65002), and the credential sends only the first scope.
        let default = resource_default(scope);
        let token = cli_credential(authority)?
            .get_token(&[default.as_str()], None)
            .await
            .map_err(|e| {
                Error::SignInRequired(format!(
                    "the Azure CLI has no usable sign-in ({}): run az login",
                    first_line(&e.to_string())
                ))
            })?;
        return Ok((
            current.clone(),
            token.token.secret().to_string(),
            token.expires_on.unix_timestamp(),
        ));
    }
    let Some(rt) = current.refresh_token.as_deref() else {
        return Err(Error::SignInRequired(
            "Your sign-in cannot be renewed: run jumpgate signin.".into(),
        ));
    };
    let oauth = client(authority, None)?;
    let http = transport();
    let rt_value = RefreshToken::new(rt.to_string());
    let mut request = oauth.exchange_refresh_token(&rt_value);
    for s in [scope, "openid", "profile", "offline_access"] {
        request = request.add_scope(Scope::new(s.into()));
    }
    let response = request.request_async(&http).await.map_err(token_error)?;
    let access = response.access_token().secret().clone();
    // The token's own `exp`, in the issuer's clock, which expiry is judged by (ARM's); the
    // laptop's clock may be far from it.
    let expires_at = claims(&access)
        .and_then(|c| c["exp"].as_i64())
        .unwrap_or_else(|| {
            chrono::Utc::now().timestamp()
                + response
                    .expires_in()
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(3600)
        });
    let mut kept = current.clone();
    if let Some(new_rt) = response.refresh_token() {
        kept.refresh_token = Some(new_rt.secret().clone());
    }
    Ok((kept, access, expires_at))
}

/// `https://graph.microsoft.com/.default` for `https://graph.microsoft.com/A https://graph.microsoft.com/B`:
/// the resource of the first scope, with every permission the app was given.
fn resource_default(scope: &str) -> String {
    let first = scope.split_whitespace().next().unwrap_or(scope);
    match first.rsplit_once('/') {
        Some((resource, _)) => format!("{resource}/.default"),
        None => first.to_string(),
    }
}

/// The Azure CLI as a credential, in the configured tenant: without it, `az` answers for
/// its own default tenant, which is the wrong one for a guest or a multi-tenant account.
fn cli_credential(
    authority: &Authority,
) -> Result<std::sync::Arc<azure_identity::AzureCliCredential>> {
    azure_identity::AzureCliCredential::new(Some(azure_identity::AzureCliCredentialOptions {
        tenant_id: Some(authority.tenant.clone()).filter(|t| !t.trim().is_empty()),
        ..Default::default()
    }))
    .map_err(|e| Error::Other(e.to_string()))
}

/// Reuses an existing `az login`, in the configured tenant.
pub async fn azure_cli(authority: &Authority) -> Result<TokenSet> {
    use azure_core::credentials::TokenCredential as _;
    let token = cli_credential(authority)?
        .get_token(&[authority.arm_scope.as_str()], None)
        .await
        .map_err(|e| {
            Error::SignInRequired(format!(
                "the Azure CLI has no usable sign-in ({}): run az login, or use jumpgate signin",
                first_line(&e.to_string())
            ))
        })?;
    let access = token.token.secret().to_string();
    Ok(TokenSet {
        account: account_of(&access)?,
        access_token: access,
        expires_at: token.expires_on.unix_timestamp(),
        refresh_token: None,
        source: Source::AzureCli,
        made_for: Some(authority.binding()),
    })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testserver::{lying_response, response, serve, unsized_response};

    async fn post(url: &str) -> std::result::Result<oauth2::HttpResponse, TransportError> {
        let request = oauth2::http::Request::builder()
            .method("POST")
            .uri(url)
            .body(Vec::new())
            .expect("request");
        transport()(request).await
    }

    #[tokio::test]
    async fn reliability_25_token_answers_are_capped() {
        let big = vec![b' '; 64 * 1024 + 1];
        let base = serve(move |path| match path {
            "/huge" => lying_response("200 OK", 1 << 40, b"{}"),
            "/unsized" => unsized_response("200 OK", &big),
            _ => response("200 OK", &[], br#"{"access_token":"x"}"#),
        })
        .await;
        assert_eq!(
            post(&format!("{base}/token")).await.expect("fine").body(),
            br#"{"access_token":"x"}"#
        );
        for path in ["/huge", "/unsized"] {
            let err = post(&format!("{base}{path}")).await.expect_err(path).0;
            assert!(
                err.contains("Entra ID") && err.contains("larger than 64 KiB"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn a_refresh_answer_without_a_refresh_token_keeps_the_one_sent() {
        let claims =
            B64.encode(br#"{"oid":"o","tid":"t","upn":"alice@contoso.example","exp":4102444800}"#);
        let body =
            format!(r#"{{"access_token":"h.{claims}.s","token_type":"Bearer","expires_in":3600}}"#);
        let base = serve(move |_| {
            response(
                "200 OK",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            )
        })
        .await;
        let authority = Authority {
            base,
            client_id: "c".into(),
            tenant: "t".into(),
            arm_scope: "https://management.azure.com/.default".into(),
            graph_audience: "https://graph.microsoft.com".into(),
        };
        let current = TokenSet {
            access_token: "old".into(),
            expires_at: 0,
            refresh_token: Some("the-refresh-token".into()),
            source: Source::Browser,
            account: account_of(&format!("h.{claims}.s")).expect("account"),
            made_for: Some(authority.binding()),
        };
        let renewed = refresh(&authority, &current).await.expect("renewed");
        assert_eq!(renewed.access_token, format!("h.{claims}.s"));
        assert_eq!(renewed.refresh_token.as_deref(), Some("the-refresh-token"));
    }

    #[test]
    fn the_azure_cli_asks_graph_for_default() {
        assert_eq!(
            resource_default("https://graph.microsoft.com/PrivilegedEligibilitySchedule.Read.AzureADGroup https://graph.microsoft.com/RoleManagementPolicy.Read.AzureADGroup"),
            "https://graph.microsoft.com/.default"
        );
        assert_eq!(
            resource_default("https://graph.microsoft.com/User.ReadBasic.All"),
            "https://graph.microsoft.com/.default"
        );
        assert_eq!(
            resource_default("https://graph.microsoft.com/.default"),
            "https://graph.microsoft.com/.default"
        );
    }

    async fn listening() -> (std::sync::Arc<Loopback>, String) {
        let listener = Loopback::bind().await.expect("bind");
        let base = format!("http://127.0.0.1:{}", listener.port);
        (std::sync::Arc::new(listener), base)
    }

    /// `localhost` may be either address: a callback to `[::1]` is served as one to
    /// `127.0.0.1` is.
    #[tokio::test]
    async fn the_redirect_is_heard_on_both_loopback_addresses() {
        let (listener, _) = listening().await;
        if listener.v6.is_none() {
            // No IPv6 loopback on this machine: nothing to reach it on.
            return;
        }
        let port = listener.port;
        let wait = waiting(listener);
        let answer = crate::http::client()
            .get(format!(
                "http://[::1]:{port}/?code=the-code&state=the-state"
            ))
            .send()
            .await
            .expect("a callback to ::1");
        assert_eq!(answer.status(), 200);
        assert_eq!(wait.await.expect("task").expect("code"), "the-code");
    }

    /// A port whose IPv6 side another program holds is not half-used: another port is
    /// taken, both sides listening.
    #[tokio::test]
    async fn a_port_taken_on_ipv6_is_not_used_half() {
        let first = Loopback::bind().await.expect("bind");
        if first.v6.is_none() {
            return;
        }
        let port = first.port;
        drop(first);
        let _squatter = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, port))
            .await
            .expect("hold ::1");
        // Binding again may be handed the same v4 port; it must not settle for v4 alone.
        for _ in 0..20 {
            let l = Loopback::bind().await.expect("bind");
            assert!(l.v6.is_some(), "listening on 127.0.0.1 only");
            assert_ne!(l.port, port);
        }
    }

    fn waiting(listener: std::sync::Arc<Loopback>) -> tokio::task::JoinHandle<Result<String>> {
        tokio::spawn(async move { wait_for_code(&listener, "the-state", "/").await })
    }

    #[tokio::test]
    async fn reliability_02_a_silent_connection_does_not_delay_a_valid_callback() {
        let (listener, base) = listening().await;
        let wait = waiting(listener);
        // A local process connects and sends nothing, and keeps the connection open.
        let silent = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .expect("connect");
        // Made first: loading the TLS roots is not what is timed.
        let client = crate::http::client();
        let started = std::time::Instant::now();
        let answer = client
            .get(format!("{base}/?code=the-code&state=the-state"))
            .send()
            .await
            .expect("callback");
        assert_eq!(answer.status().as_u16(), 200);
        let code = tokio::time::timeout(StdDuration::from_secs(1), wait)
            .await
            .expect("no stall")
            .expect("task");
        assert_eq!(code.expect("code"), "the-code");
        assert!(started.elapsed() < CALLBACK_READ, "{:?}", started.elapsed());
        drop(silent);
    }

    #[tokio::test]
    async fn reliability_02_a_callback_on_another_path_is_ignored() {
        let (listener, base) = listening().await;
        let wait = waiting(listener);
        // The right state, but not the redirect's path: neither an error nor a code counts.
        for path in [
            "/favicon.ico?error=access_denied&state=the-state",
            "/other?code=stolen&state=the-state",
            "//?error=access_denied&state=the-state",
        ] {
            let answer = crate::http::client()
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("answer");
            assert_eq!(answer.status().as_u16(), 404, "{path}");
        }
        // An error with the wrong state is ignored too.
        let wrong = crate::http::client()
            .get(format!("{base}/?error=access_denied&state=nope"))
            .send()
            .await
            .expect("answer");
        assert_eq!(wrong.status().as_u16(), 400);
        assert!(!wait.is_finished());
        let ok = crate::http::client()
            .get(format!("{base}/?code=the-code&state=the-state"))
            .send()
            .await
            .expect("callback");
        assert_eq!(ok.status().as_u16(), 200);
        assert_eq!(wait.await.expect("task").expect("code"), "the-code");
    }

    #[tokio::test]
    async fn reliability_02_an_error_on_the_redirect_path_with_the_state_ends_the_flow() {
        let (listener, base) = listening().await;
        let wait = waiting(listener);
        let _ = crate::http::client()
            .get(format!("{base}/?error=access_denied&state=the-state"))
            .send()
            .await;
        let err = wait.await.expect("task").expect_err("ends");
        assert!(matches!(err, Error::Entra { ref error, .. } if error == "access_denied"));
    }
}
