//! Public IPv4 detection: ask every configured echo service at once, accept the answer only
//! when at least two agree, and say which did.

use std::net::Ipv4Addr;
use std::time::Duration;

use jumpgate_core::ip::parse_public_ipv4;
use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Detected {
    pub ip: Ipv4Addr,
    /// The services that reported this address.
    pub agreed: Vec<String>,
    /// Services that failed or disagreed, with what they said.
    pub others: Vec<(String, String)>,
}

/// Reads one echo answer: plain text (ipify, icanhazip) or Cloudflare's `key=value` trace.
pub fn parse_echo(body: &str) -> &str {
    body.lines()
        .find_map(|l| l.strip_prefix("ip="))
        .unwrap_or(body)
        .trim()
}

/// Whether an echo service may be asked (RELIABILITY #23), checked at every request, not
/// only when the configuration is read: `https`, or `http` to exactly `127.0.0.1`, `[::1]`
/// or `localhost` (a local test service); never with userinfo.
pub fn echo_url(text: &str) -> std::result::Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("carries a user name or password, which an echo service never needs".into());
    }
    let loopback = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("must be https (http only to 127.0.0.1, [::1] or localhost)".into()),
    }
}

/// Asks one echo service, reading at most [`crate::http::ECHO_CAP`] bytes.
async fn ask(
    http: &reqwest::Client,
    url: &str,
    allow_loopback: bool,
) -> std::result::Result<Ipv4Addr, String> {
    let url = echo_url(url)?;
    let r = http.get(url).send().await.map_err(|e| {
        if e.is_timeout() {
            "did not answer within 5s".to_string()
        } else {
            "could not be reached".to_string()
        }
    })?;
    if r.status().is_redirection() {
        // Never followed: a redirect could lead to http, or to another host.
        return Err(format!(
            "answered with a redirect (HTTP {}), which is not followed",
            r.status().as_u16()
        ));
    }
    if !r.status().is_success() {
        return Err(format!("answered HTTP {}", r.status().as_u16()));
    }
    let body = crate::http::read_capped(r, crate::http::ECHO_CAP, "the echo service")
        .await
        .map_err(|e| match e {
            Error::Unexpected { .. } => {
                "answered with far more than an address (over 4 KiB)".to_string()
            }
            other => other.to_string(),
        })?;
    parse_public_ipv4(parse_echo(&String::from_utf8_lossy(&body)), allow_loopback)
        .map_err(|e| e.to_string())
}

pub async fn detect(urls: &[String], allow_loopback: bool) -> Result<Detected> {
    crate::init_tls();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        // Only IPv4 source addresses: a dual-stack laptop must not report its IPv6 address.
        .local_address(Some(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
        .build()
        // Never a default client instead: it would follow redirects.
        .map_err(|e| Error::Other(format!("cannot set up the IP detection client: {e}")))?;
    let asks = urls.iter().map(|url| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let answer = ask(&http, &url, allow_loopback).await;
            (url, answer)
        }
    });
    let answers = futures::future::join_all(asks).await;
    let mut best: Option<(Ipv4Addr, Vec<String>)> = None;
    for (_, answer) in &answers {
        if let Ok(ip) = answer {
            let agreed: Vec<String> = answers
                .iter()
                .filter(|(_, a)| a.as_ref().ok() == Some(ip))
                .map(|(u, _)| u.clone())
                .collect();
            if best.as_ref().is_none_or(|(_, b)| agreed.len() > b.len()) {
                best = Some((*ip, agreed));
            }
        }
    }
    let others = |ip: Option<Ipv4Addr>| -> Vec<(String, String)> {
        answers
            .iter()
            .filter(|(_, a)| ip.is_none() || a.as_ref().ok() != ip.as_ref())
            .map(|(u, a)| {
                (
                    u.clone(),
                    match a {
                        Ok(ip) => format!("said {ip}"),
                        Err(e) => e.clone(),
                    },
                )
            })
            .collect()
    };
    match best {
        Some((ip, agreed)) if agreed.len() >= 2 => Ok(Detected {
            ip,
            agreed,
            others: others(Some(ip)),
        }),
        _ => {
            let detail: Vec<String> = others(None)
                .into_iter()
                .map(|(u, w)| format!("{u} {w}"))
                .collect();
            Err(Error::Other(format!(
                "could not tell your public IPv4 address: at least two services must agree, and they did not ({}). Check your network or VPN, or pass --ip ADDRESS.",
                detail.join("; ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_echo_formats() {
        assert_eq!(parse_echo("20.1.2.3"), "20.1.2.3");
        assert_eq!(parse_echo("20.1.2.3\n"), "20.1.2.3");
        assert_eq!(parse_echo("fl=1\nh=x\nip=20.1.2.3\nts=1\n"), "20.1.2.3");
    }

    use crate::testserver::{lying_response, response, serve, unsized_response};

    #[test]
    fn reliability_23_echo_urls_are_parsed_and_https_only() {
        for good in [
            "https://api.ipify.org",
            "https://1.1.1.1/cdn-cgi/trace",
            "http://127.0.0.1:8080/ip",
            "http://[::1]:8080/ip",
            "http://localhost:8080/ip",
        ] {
            assert!(echo_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://api.ipify.org",
            "http://127.0.0.1@evil.example/",
            "http://localhost.evil.example/",
            "http://127.0.0.2/",
            "https://user:pw@api.ipify.org/",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
            "127.0.0.1",
            "",
        ] {
            assert!(echo_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn reliability_23_echo_redirects_are_not_followed() {
        // The answer a redirect leads to would agree, if it were followed.
        let target = serve(|_| response("200 OK", &[], b"20.1.2.3")).await;
        let to_other_host = target.replace("127.0.0.1", "localhost");
        let moving = serve(move |_| {
            response(
                "302 Found",
                &[("Location", &format!("{to_other_host}/ip"))],
                b"",
            )
        })
        .await;
        let to_http = serve(|_| {
            response(
                "301 Moved Permanently",
                &[("Location", "http://203.0.113.9/ip")],
                b"",
            )
        })
        .await;
        let err = detect(&[format!("{moving}/ip"), format!("{to_http}/ip")], true)
            .await
            .expect_err("redirects are not answers");
        let text = err.to_string();
        assert!(text.contains("redirect"), "{text}");
        // Sanity: the target itself answers, so the test fails if redirects were followed.
        let ok = detect(&[format!("{target}/a"), format!("{target}/b")], true).await;
        assert_eq!(
            ok.map(|d| d.ip.to_string()).ok().as_deref(),
            Some("20.1.2.3")
        );
    }

    #[tokio::test]
    async fn reliability_23_a_cleartext_echo_url_is_refused_at_request_time() {
        // Not a loopback host: refused before any connection, even if the configuration
        // check was skipped.
        let err = detect(
            &[
                "http://203.0.113.9/".into(),
                "http://localhost.evil.example/".into(),
            ],
            true,
        )
        .await
        .expect_err("refused");
        assert!(err.to_string().contains("must be https"), "{err}");
    }

    #[tokio::test]
    async fn reliability_25_echo_answers_are_capped() {
        let big = vec![b'1'; 64 * 1024];
        let huge_claim = serve(|_| lying_response("200 OK", 1 << 40, b"20.1.2.3")).await;
        let endless = serve(move |_| unsized_response("200 OK", &big)).await;
        let err = detect(&[format!("{huge_claim}/"), format!("{endless}/")], true)
            .await
            .expect_err("too big");
        let text = err.to_string();
        assert_eq!(text.matches("over 4 KiB").count(), 2, "{text}");
    }
}
