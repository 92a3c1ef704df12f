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

pub async fn detect(urls: &[String], allow_loopback: bool) -> Result<Detected> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        // Only IPv4 source addresses: a dual-stack laptop must not report its IPv6 address.
        .local_address(Some(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
        .build()
        .unwrap_or_default();
    crate::init_tls();
    let asks = urls.iter().map(|url| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let answer = match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => match r.text().await {
                    Ok(body) if body.len() <= 4096 => {
                        parse_public_ipv4(parse_echo(&body), allow_loopback)
                            .map_err(|e| e.to_string())
                    }
                    Ok(_) => Err("answered with far more than an address".into()),
                    Err(e) => Err(e.to_string()),
                },
                Ok(r) => Err(format!("answered HTTP {}", r.status().as_u16())),
                Err(e) => Err(if e.is_timeout() {
                    "did not answer within 5s".into()
                } else {
                    "could not be reached".into()
                }),
            };
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
}
