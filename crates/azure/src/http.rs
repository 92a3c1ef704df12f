//! The REST client for Azure Resource Manager, and for Microsoft Graph through the same
//! retries, caps and checks.
//!
//! 429 and 503 (and 502/504 and dropped connections, for calls that may be repeated) are
//! retried: exactly as long as `Retry-After` says when it is given (seconds or an HTTP date),
//! otherwise with jittered exponential backoff, all within a total time budget. Other 4xx are
//! never retried. Every response's `Date` header updates the offset to ARM's clock, so
//! deadlines are kept in the server's time even on a laptop with a skewed clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::Rng as _;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::error::{Error, Result};

/// ARM's clock as seen through `Date` headers: local time plus the last measured offset.
#[derive(Debug, Default)]
pub struct ServerClock {
    offset_ms: AtomicI64,
}

impl ServerClock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Records a `Date` header. Dates have one-second resolution, so offsets under a second
    /// are noise and ignored.
    pub fn observe(&self, date: &str) {
        let Ok(server) = httpdate::parse_http_date(date) else {
            return;
        };
        let server: DateTime<Utc> = server.into();
        let offset = (server - Utc::now()).num_milliseconds();
        let offset = if offset.abs() < 1500 { 0 } else { offset };
        self.offset_ms.store(offset, Ordering::Relaxed);
    }
}

/// The most pages one list is read to. ARM's pages hold up to a few hundred items; a list
/// that needs more than this is a server linking in circles.
pub const MAX_PAGES: usize = 500;

/// The largest ARM answer read (RELIABILITY #25). ARM's pages are far smaller; a body past
/// this is a broken or hostile server, and reading it would only fill memory.
pub const ARM_CAP: usize = 4 * 1024 * 1024;
/// The largest answer from Entra's token endpoint or Microsoft Graph.
pub const TOKEN_CAP: usize = 64 * 1024;
/// The largest answer from a public-IP echo service.
pub const ECHO_CAP: usize = 4 * 1024;

/// Reads a response body, at most `cap` bytes: a `Content-Length` past the cap is refused
/// before reading, and a body that runs past it (whatever its header said) is dropped as
/// soon as it does. `what` names the service in the error.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
    what: &str,
) -> Result<Vec<u8>> {
    let too_big = || Error::Unexpected {
        what: what.to_string(),
        detail: format!(
            "its answer is larger than {}; Jumpgate stopped reading it",
            human_size(cap)
        ),
    };
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(too_big());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(Error::Unreachable {
                    what: what.to_string(),
                    detail: format!("the answer broke off ({})", short(&e)),
                })
            }
        }
    }
}

fn human_size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

/// Where to report waits, so long retries are never silent.
pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub budget: StdDuration,
    pub first_backoff: StdDuration,
    pub max_backoff: StdDuration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            budget: StdDuration::from_secs(120),
            first_backoff: StdDuration::from_millis(500),
            max_backoff: StdDuration::from_secs(30),
        }
    }
}

/// Whether a call may be sent again after an ambiguous failure (a dropped connection, a 502):
/// reads and PUTs to a client-chosen name may; a POST such as JIT initiate may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    Safe,
    OnlyIfRefused,
}

/// Supplies bearer tokens; `refresh` is called once after a 401.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    async fn token(&self) -> Result<String>;
    async fn refresh(&self) -> Result<String>;
}

/// The service a client talks to: it decides which paths may be sent, how a list links to
/// its next page, and the name errors give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Azure Resource Manager: paths are ARM ids (`core::policy::arm_id`), pages link
    /// through `nextLink`.
    Arm,
    /// Microsoft Graph v1.0: paths under `/v1.0/` (`core::policy::graph_path`), pages link
    /// through `@odata.nextLink`.
    Graph,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Arm => "Azure Resource Manager",
            Api::Graph => "Microsoft Graph",
        }
    }

    /// What its ids are, for an error about one that is not.
    fn ids(self) -> &'static str {
        match self {
            Api::Arm => "an Azure resource id",
            Api::Graph => "a Microsoft Graph path",
        }
    }

    fn next_link(self) -> &'static str {
        match self {
            Api::Arm => "nextLink",
            Api::Graph => "@odata.nextLink",
        }
    }

    /// Whether a path (its query aside) may become a URL: ids in it come from answers.
    fn admits(self, path: &str) -> bool {
        match self {
            Api::Arm => jumpgate_core::policy::arm_id(path).is_some(),
            Api::Graph => jumpgate_core::policy::graph_path(path).is_some(),
        }
    }
}

#[derive(Clone)]
pub struct Arm {
    http: reqwest::Client,
    base: String,
    tokens: Arc<dyn TokenSource>,
    pub clock: Arc<ServerClock>,
    retry: RetryPolicy,
    notify: Option<Notify>,
    api: Api,
}

/// A successful answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Arm {
    pub fn new(base: &str, tokens: Arc<dyn TokenSource>) -> Arm {
        crate::init_tls();
        Arm {
            http: client(),
            base: base.trim_end_matches('/').to_string(),
            tokens,
            clock: Arc::new(ServerClock::default()),
            retry: RetryPolicy::default(),
            notify: None,
            api: Api::Arm,
        }
    }

    /// A client for Microsoft Graph at `base` (`https://graph.microsoft.com`), with the same
    /// retries, caps and progress as ARM's, sharing ARM's clock.
    pub fn graph(base: &str, tokens: Arc<dyn TokenSource>, arm: &Arm) -> Arm {
        Arm {
            api: Api::Graph,
            base: base.trim_end_matches('/').to_string(),
            tokens,
            clock: arm.clock.clone(),
            notify: arm.notify.clone(),
            http: arm.http.clone(),
            retry: arm.retry,
        }
    }

    pub fn with_notify(mut self, notify: Notify) -> Arm {
        self.notify = Some(notify);
        self
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.call(Method::GET, path, None, Repeat::Safe).await?.body)
    }

    /// Every item of a pageable list: `value` of each page, following `nextLink` to the end.
    /// ARM may answer an empty page that still carries a `nextLink`, so only a missing link
    /// ends the list. A link is followed only on ARM's own origin (it carries the bearer
    /// token), and at most [`MAX_PAGES`] pages are read, so a server that links in circles
    /// gets an error rather than a loop.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut next = path.to_string();
        for _ in 0..MAX_PAGES {
            let page = self.get(&next).await?;
            items.extend(page["value"].as_array().into_iter().flatten().cloned());
            match page[self.api.next_link()]
                .as_str()
                .filter(|l| !l.is_empty())
            {
                None => return Ok(items),
                Some(link) => next = same_origin(&self.base, link, self.api)?,
            }
        }
        Err(Error::Unexpected {
            what: self.api.name().into(),
            detail: format!(
                "the list at {} ran past {MAX_PAGES} pages; stopped rather than guess",
                path.split('?').next().unwrap_or(path)
            ),
        })
    }

    /// Sends one ARM call, retrying what may be retried.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<Answer> {
        // Every path is pasted after the endpoint, and ids in it come from answers: only an
        // id of ARM's shape may become a URL, so none can move the bearer token to another
        // host (`@evil.example`, `//evil.example`) or path (RELIABILITY #26).
        let id = path.split('?').next().unwrap_or(path);
        let service = self.api.name();
        if !self.api.admits(id) {
            tracing::warn!(id = %jumpgate_core::text::log(id), %service, "refused a path that is not the service's");
            return Err(Error::Unexpected {
                what: service.into(),
                detail: format!(
                    "an id in its answer is not {} ('{}'); nothing was sent to it",
                    self.api.ids(),
                    jumpgate_core::text::line(&id.chars().take(120).collect::<String>())
                ),
            });
        }
        let url = format!("{}{}", self.base, path);
        let started = std::time::Instant::now();
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let token = self.tokens.token().await?;
            let mut request = self.http.request(method.clone(), &url).bearer_auth(&token);
            if let Some(b) = body {
                request = request.json(b);
            }
            let outcome = request.send().await;
            let (wait, reason) = match outcome {
                Err(e) => {
                    if repeat == Repeat::OnlyIfRefused {
                        return Err(Error::Unreachable {
                            what: service.into(),
                            detail: format!("{e}; the request may or may not have been received"),
                        });
                    }
                    (None, format!("connection failed ({})", short(&e)))
                }
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    if let Some(date) = headers
                        .get(reqwest::header::DATE)
                        .and_then(|d| d.to_str().ok())
                    {
                        self.clock.observe(date);
                    }
                    // A body past the cap is an error, never a partial read (RELIABILITY #25).
                    let bytes = read_capped(response, ARM_CAP, service).await;
                    let text = match bytes {
                        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                        Err(e @ Error::Unexpected { .. }) => return Err(e),
                        // A connection dropped mid-body reads as empty, as it always did.
                        Err(_) => String::new(),
                    };
                    if status.is_success() {
                        let body = if text.trim().is_empty() {
                            Value::Null
                        } else {
                            serde_json::from_str(&text).unwrap_or(Value::Null)
                        };
                        return Ok(Answer {
                            status: status.as_u16(),
                            body,
                        });
                    }
                    let (code, message) = parse_error(&text);
                    if status == StatusCode::UNAUTHORIZED {
                        if let Some(claims) = claims_challenge(&headers) {
                            // The challenge is base64 JSON; one that is not cannot be asked
                            // for, but it still means a fresh sign-in, not a refresh.
                            return Err(match jumpgate_core::explain::parse_claims(&claims) {
                                Ok(claims) => Error::StepUp { claims },
                                Err(_) => Error::SignInRequired(
                                    "Azure asks for a fresh sign-in: run jumpgate signin.".into(),
                                ),
                            });
                        }
                        if !refreshed {
                            refreshed = true;
                            self.tokens.refresh().await?;
                            continue;
                        }
                        return Err(Error::SignInRequired(
                            "Azure did not accept your sign-in: run jumpgate signin.".into(),
                        ));
                    }
                    let retriable = matches!(status.as_u16(), 429 | 503)
                        || (repeat == Repeat::Safe && matches!(status.as_u16(), 500 | 502 | 504));
                    if !retriable {
                        return Err(Error::Arm {
                            status: status.as_u16(),
                            code,
                            message,
                        });
                    }
                    let wait = retry_after(&headers);
                    let what = if status.as_u16() == 429 {
                        "Azure is throttling requests".to_string()
                    } else {
                        format!("Azure answered {}", status.as_u16())
                    };
                    if wait.is_none() && attempt > 6 {
                        return Err(Error::Arm {
                            status: status.as_u16(),
                            code,
                            message,
                        });
                    }
                    (wait, what)
                }
            };
            let wait = wait.unwrap_or_else(|| backoff(self.retry, attempt));
            if started.elapsed() + wait > self.retry.budget {
                return Err(Error::Unreachable {
                    what: service.into(),
                    detail: format!(
                        "{reason}, and waiting {}s more would exceed the {}s retry budget",
                        wait.as_secs(),
                        self.retry.budget.as_secs()
                    ),
                });
            }
            if let Some(n) = &self.notify {
                n(&format!(
                    "{reason}; retrying in {:.1}s (attempt {attempt})",
                    wait.as_secs_f64()
                ));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// The path of a next-page link, which must point at the service's own origin (it is sent
/// the bearer token): same scheme, host and port, under the configured base path, no userinfo.
fn same_origin(base: &str, link: &str, api: Api) -> Result<String> {
    let refuse = || Error::Unexpected {
        what: api.name().into(),
        detail: format!(
            "a {} points outside the configured endpoint; it was not followed",
            api.next_link()
        ),
    };
    let base = url::Url::parse(base).map_err(|_| refuse())?;
    let url = url::Url::parse(link).map_err(|_| refuse())?;
    if url.scheme() != base.scheme()
        || url.host_str() != base.host_str()
        || url.port_or_known_default() != base.port_or_known_default()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(refuse());
    }
    let prefix = base.path().trim_end_matches('/');
    let Some(rest) = url
        .path()
        .strip_prefix(prefix)
        .filter(|r| r.starts_with('/'))
    else {
        return Err(refuse());
    };
    Ok(match url.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    })
}

fn short(e: &reqwest::Error) -> String {
    let text = e.to_string();
    text.chars().take(120).collect()
}

/// The HTTP client every Jumpgate call uses.
pub fn client() -> reqwest::Client {
    crate::init_tls();
    reqwest::Client::builder()
        .connect_timeout(StdDuration::from_secs(10))
        .timeout(StdDuration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("jumpgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Parses ARM's error body leniently: the standard `{"error": {code, message}}`, a bare
/// `{code, message}`, or anything else (an HTML page from a gateway) as the message.
pub fn parse_error(text: &str) -> (String, String) {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let e = if v.get("error").is_some_and(Value::is_object) {
        &v["error"]
    } else {
        &v
    };
    let code = e["code"].as_str().unwrap_or("").to_string();
    let message = e["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            let plain: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
            if plain.trim().is_empty() {
                "(no details)".into()
            } else {
                plain
            }
        });
    (code, message)
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<StdDuration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(StdDuration::from_secs(secs.min(3600)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    // Relative to the server's own Date when it sent one, so local skew does not matter.
    let now = headers
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or_else(std::time::SystemTime::now);
    Some(
        when.duration_since(now)
            .unwrap_or_default()
            .min(StdDuration::from_secs(3600)),
    )
}

/// The claims of a 401 claims challenge (`error="insufficient_claims", claims="..."`).
fn claims_challenge(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let h = headers
        .get(reqwest::header::WWW_AUTHENTICATE)?
        .to_str()
        .ok()?;
    if !h.contains("insufficient_claims") {
        return None;
    }
    let start = h.find("claims=\"")? + 8;
    let end = h[start..].find('"')? + start;
    Some(h[start..end].to_string())
}

fn backoff(policy: RetryPolicy, attempt: u32) -> StdDuration {
    let base = policy.first_backoff.as_millis() as f64
        * 2f64.powi(attempt.saturating_sub(1).min(10) as i32);
    let capped = base.min(policy.max_backoff.as_millis() as f64);
    let jitter = rand::rng().random_range(0.75..1.25);
    StdDuration::from_millis((capped * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(StdDuration::from_secs(7)));
        h.insert(
            "date",
            HeaderValue::from_static("Sun, 22 Nov 2026 10:00:00 GMT"),
        );
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 22 Nov 2026 10:00:30 GMT"),
        );
        assert_eq!(retry_after(&h), Some(StdDuration::from_secs(30)));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn reliability_12_error_bodies_parse_leniently() {
        assert_eq!(
            parse_error(r#"{"error":{"code":"X","message":"m"}}"#),
            ("X".into(), "m".into())
        );
        assert_eq!(
            parse_error(r#"{"code":"Y","message":"n"}"#),
            ("Y".into(), "n".into())
        );
        let (code, message) = parse_error("<html><h1>502 Bad Gateway</h1></html>");
        assert_eq!(code, "");
        assert!(message.contains("502"));
        assert_eq!(parse_error("").1, "(no details)");
    }

    #[test]
    fn next_links_are_followed_on_arms_own_origin_only() {
        let base = "https://management.azure.com";
        let path = "/subscriptions?api-version=2022-12-01&$skiptoken=abc";
        assert_eq!(
            same_origin(base, &format!("{base}{path}"), Api::Arm)
                .ok()
                .as_deref(),
            Some(path)
        );
        assert_eq!(
            same_origin(
                "http://127.0.0.1:4000/",
                "http://127.0.0.1:4000/x?y=1",
                Api::Arm
            )
            .ok()
            .as_deref(),
            Some("/x?y=1")
        );
        for bad in [
            "https://evil.example/subscriptions",
            "http://management.azure.com/subscriptions",
            "https://management.azure.com:8443/subscriptions",
            "https://user@management.azure.com/subscriptions",
            "https://management.azure.com.evil.example/subscriptions",
            "/subscriptions?relative",
            "not a url",
        ] {
            assert!(same_origin(base, bad, Api::Arm).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let p = RetryPolicy::default();
        assert!(backoff(p, 1) <= StdDuration::from_millis(625));
        assert!(backoff(p, 20) <= StdDuration::from_millis(37_500));
    }

    #[test]
    fn the_server_clock_follows_date_headers() {
        let c = ServerClock::default();
        let ahead = Utc::now() + Duration::hours(2);
        c.observe(&httpdate::fmt_http_date(ahead.into()));
        assert!((c.now() - ahead).num_seconds().abs() <= 2);
    }

    struct Fixed;
    #[async_trait::async_trait]
    impl TokenSource for Fixed {
        async fn token(&self) -> Result<String> {
            Ok("canary-token".into())
        }
        async fn refresh(&self) -> Result<String> {
            Ok("canary-token".into())
        }
    }

    #[tokio::test]
    async fn reliability_25_arm_answers_are_capped() {
        use crate::testserver::{lying_response, response, serve, unsized_response};
        let big = vec![b' '; ARM_CAP + 1];
        let base = serve(move |path| match path {
            "/subscriptions/claims-huge" => lying_response("200 OK", 1 << 40, b"{}"),
            "/subscriptions/unsized" => unsized_response("200 OK", &big),
            "/subscriptions/error-unsized" => unsized_response("400 Bad Request", &big),
            _ => response("200 OK", &[], br#"{"ok":true}"#),
        })
        .await;
        let arm = Arm::new(&base, Arc::new(Fixed));
        assert_eq!(
            arm.get("/subscriptions/fine").await.expect("fine")["ok"],
            true
        );
        for path in [
            "/subscriptions/claims-huge",
            "/subscriptions/unsized",
            "/subscriptions/error-unsized",
        ] {
            let err = arm.get(path).await.expect_err(path).to_string();
            assert!(
                err.contains("Azure Resource Manager") && err.contains("larger than 4 MiB"),
                "{path}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn reliability_25_capped_reads_stop_at_the_cap() {
        use crate::testserver::{serve, unsized_response};
        let base = serve(|_| unsized_response("200 OK", &[b'x'; 5000])).await;
        let read = |cap| {
            let url = base.clone();
            async move {
                let r = client().get(&url).send().await.expect("send");
                read_capped(r, cap, "the test service").await
            }
        };
        assert_eq!(read(5000).await.expect("fits").len(), 5000);
        let err = read(4096).await.expect_err("past the cap").to_string();
        assert_eq!(
            err,
            "unexpected answer from the test service: its answer is larger than 4 KiB; Jumpgate stopped reading it"
        );
    }

    #[tokio::test]
    async fn reliability_26_ids_from_answers_never_send_the_token_elsewhere() {
        use crate::testserver::{response, serve};
        use std::sync::atomic::AtomicUsize;
        let elsewhere = Arc::new(AtomicUsize::new(0));
        let seen = elsewhere.clone();
        let evil = serve(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            response("200 OK", &[], b"{}")
        })
        .await;
        let arm_base = serve(|_| response("200 OK", &[], b"{}")).await;
        let arm = Arm::new(&arm_base, Arc::new(Fixed));
        let evil_host = evil.trim_start_matches("http://");
        for id in [
            format!("@{evil_host}/x"),
            format!("//{evil_host}/x"),
            format!("/subscriptions/s/..//{evil_host}/x"),
            format!("/subscriptions/s/\\\\{evil_host}/x"),
            "/subscriptions/s/%2e%2e/%2e%2e/x".to_string(),
            "https://evil.example/subscriptions/s".to_string(),
        ] {
            let err = arm
                .get(&format!("{id}?api-version=1"))
                .await
                .expect_err(&id)
                .to_string();
            assert!(err.contains("not an Azure resource id"), "{id}: {err}");
        }
        assert_eq!(elsewhere.load(Ordering::SeqCst), 0);
        assert!(arm.get("/subscriptions/s?api-version=1").await.is_ok());
    }
}
