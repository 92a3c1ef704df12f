//! Finding a tenant from a work email's domain, for the first run: Entra's OpenID discovery
//! document for the domain (`core::firstrun` says where to ask and what the answer means).
//! The authority is checked as every endpoint is (RELIABILITY #23), redirects are not
//! followed, and the answer is read with the token endpoint's cap (RELIABILITY #25).

use jumpgate_core::firstrun::{self, FirstRunError};

use crate::error::Error;

/// Why discovery found no tenant.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The answer (or the input) says what is wrong: an unknown domain, a personal account.
    #[error(transparent)]
    Refused(#[from] FirstRunError),
    /// The authority could not be reached or read.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// The tenant id of the organisation behind `domain` (checked by `firstrun::domain_of`), as
/// the authority at `authority` (checked by `firstrun::authority`) answers.
pub async fn tenant_of(authority: &str, domain: &str) -> Result<String, DiscoveryError> {
    let authority = firstrun::authority(authority)?;
    let url = firstrun::discovery_url(&authority, domain);
    let response = crate::http::client()
        .get(&url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| Error::Unreachable {
            what: format!("Entra ID at {authority}"),
            detail: e.without_url().to_string(),
        })?;
    let status = response.status();
    let body = crate::http::read_capped(response, crate::http::TOKEN_CAP, "Entra ID").await?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        return Err(firstrun::discovery_refused(domain, status.as_u16(), &text).into());
    }
    let document: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| FirstRunError::BadDiscovery {
            domain: domain.to_string(),
            why: format!("it is not JSON ({e})"),
        })?;
    Ok(firstrun::tenant_from_discovery(
        &authority, domain, &document,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testserver::{lying_response, response, serve};

    const TENANT: &str = "7b3f6c1e-2a4d-4e8b-9f10-5c6d7e8f9a01";

    async fn server() -> String {
        // The server's own address goes into its answers, as Entra's does.
        let base = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
        let seen = base.clone();
        let url = serve(move |path| {
            let base = seen.get().cloned().unwrap_or_default();
            match path {
                "/contoso.example/v2.0/.well-known/openid-configuration" => {
                    let body = format!(
                        r#"{{"issuer":"{base}/{TENANT}/v2.0","token_endpoint":"{base}/{TENANT}/oauth2/v2.0/token"}}"#
                    );
                    response("200 OK", &[], body.as_bytes())
                }
                "/moved.example/v2.0/.well-known/openid-configuration" => response(
                    "302 Found",
                    &[("Location", "https://evil.example/")],
                    b"",
                ),
                "/huge.example/v2.0/.well-known/openid-configuration" => {
                    lying_response("200 OK", 1 << 30, b"{}")
                }
                "/html.example/v2.0/.well-known/openid-configuration" => {
                    response("200 OK", &[], b"<html>hello</html>")
                }
                _ => response(
                    "400 Bad Request",
                    &[],
                    br#"{"error":"invalid_tenant","error_description":"AADSTS90002: Tenant 'x' not found.","error_codes":[90002]}"#,
                ),
            }
        })
        .await;
        base.set(url.clone()).expect("once");
        url
    }

    #[tokio::test]
    async fn the_tenant_is_found_from_the_domain() {
        let base = server().await;
        assert_eq!(
            tenant_of(&base, "contoso.example").await.expect("tenant"),
            TENANT
        );
    }

    #[tokio::test]
    async fn unknown_domains_redirects_and_oversized_answers_are_refused() {
        let base = server().await;
        let code = |e: DiscoveryError| match e {
            DiscoveryError::Refused(r) => r.code().to_string(),
            DiscoveryError::Failed(f) => f.to_string(),
        };
        let unknown = tenant_of(&base, "nope.example").await.expect_err("unknown");
        assert_eq!(code(unknown), "unknown_domain");
        let moved = tenant_of(&base, "moved.example").await.expect_err("moved");
        assert_eq!(code(moved), "bad_discovery");
        let huge = tenant_of(&base, "huge.example").await.expect_err("huge");
        assert!(code(huge).contains("larger than 64 KiB"));
        let html = tenant_of(&base, "html.example").await.expect_err("html");
        assert_eq!(code(html), "bad_discovery");
        let bad = tenant_of("http://evil.example", "contoso.example")
            .await
            .expect_err("http");
        assert_eq!(code(bad), "bad_authority");
    }
}
