//! The first run's IO: the tenant behind a work email's domain, from Entra's OpenID discovery
//! document (`core::firstrun` says where to ask and what the answer means), and the
//! configuration file written. The authority is checked as every endpoint is
//! (RELIABILITY #23), redirects are not followed, and the answer is read with the token
//! endpoint's cap (RELIABILITY #25). The file is written whole and 0600, and never over an
//! existing one unless asked (RELIABILITY #24).

use std::path::{Path, PathBuf};

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
            detail: chain(&e),
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

/// An error and its causes in one line ("error sending request: connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// Why the configuration was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{} already exists, and Jumpgate leaves it as it is: pass --force to replace it (the old file is kept as {}.bak)", .0.display(), .0.display())]
    Exists(PathBuf),
    #[error("cannot write the configuration {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes the configuration `text` to `path`: its folder made if missing (0700), the file
/// 0600 and whole (a temporary file renamed or linked into place). An existing file is kept
/// unless `replace`, and then it is first copied to `path.bak`, which is answered.
pub fn write_config(path: &Path, text: &str, replace: bool) -> Result<Option<PathBuf>, WriteError> {
    let io = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
    }
    if !replace {
        return match crate::private::write_new_atomic(path, text.as_bytes()) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(WriteError::Exists(path.to_path_buf()))
            }
            Err(e) => Err(io(e)),
        };
    }
    let backup = match std::fs::read(path) {
        Ok(old) => {
            let mut name = path.as_os_str().to_owned();
            name.push(".bak");
            let backup = PathBuf::from(name);
            crate::private::write_atomic(&backup, &old).map_err(io)?;
            Some(backup)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    crate::private::write_atomic(path, text.as_bytes()).map_err(io)?;
    Ok(backup)
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

    #[test]
    fn reliability_24_the_configuration_is_private_and_never_replaced_unasked() {
        let home = tempfile::tempdir().expect("home");
        let path = home
            .path()
            .join("config")
            .join("jumpgate")
            .join("config.toml");
        assert_eq!(write_config(&path, "first", false).expect("written"), None);
        // Unix modes; on Windows the profile folder's access list keeps files private.
        #[cfg(unix)]
        let mode = |p: &Path| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
        };
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        #[cfg(unix)]
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        let refused = write_config(&path, "second", false).expect_err("exists");
        assert!(refused.to_string().contains("--force"), "{refused}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "first");
        let backup = write_config(&path, "second", true)
            .expect("replaced")
            .expect("backup");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "second");
        assert_eq!(std::fs::read_to_string(&backup).expect("read"), "first");
        #[cfg(unix)]
        assert_eq!(mode(&backup), 0o600);
    }
}
