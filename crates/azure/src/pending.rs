//! PIM activation requests in flight, kept on disk (RELIABILITY #10, #16).
//!
//! An activation is a PUT to a GUID Jumpgate chooses. The GUID is written here, and synced,
//! before the PUT is sent; a retry or a restart after a crash reuses it, so Azure sees the
//! same request again instead of a duplicate.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingActivation {
    pub name: String,
    pub scope: String,
    pub role_definition_id: String,
    pub principal: String,
    pub created: String,
}

fn file(dir: &Path, principal: &str, role: &str, scope: &str) -> PathBuf {
    // One record per principal, role and scope; the key is a hash so any scope makes a
    // valid file name. The role is keyed by its GUID: ARM writes a role definition's id in
    // more than one form (under a subscription, or at the tenant).
    let role = role.rsplit('/').next().unwrap_or(role);
    let key = format!(
        "{principal}|{}|{}",
        role.to_ascii_lowercase(),
        scope.trim_end_matches('/').to_ascii_lowercase()
    );
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    dir.join("pending").join(format!("{hash:016x}.json"))
}

/// The request name to use: the one recorded for this role and scope, or a new one,
/// recorded before it is returned.
pub fn name_for(
    dir: &Path,
    principal: &str,
    role: &str,
    scope: &str,
) -> std::io::Result<(String, bool)> {
    let path = file(dir, principal, role, scope);
    if let Some(existing) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<PendingActivation>(&t).ok())
    {
        return Ok((existing.name, true));
    }
    let record = PendingActivation {
        name: uuid::Uuid::new_v4().to_string(),
        scope: scope.into(),
        role_definition_id: role.into(),
        principal: principal.into(),
        created: chrono::Utc::now().to_rfc3339(),
    };
    crate::private::ensure_dir(path.parent().unwrap_or(dir))?;
    crate::private::write_atomic(
        &path,
        serde_json::to_string(&record)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok((record.name, false))
}

/// Forgets the record once the request has reached a final state.
pub fn done(dir: &Path, principal: &str, role: &str, scope: &str) {
    let _ = std::fs::remove_file(file(dir, principal, role, scope));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reliability_10_the_name_is_recorded_before_use_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let (first, reused) =
            name_for(dir.path(), "p", "/roles/r", "/subscriptions/s").expect("name");
        assert!(!reused);
        let (again, reused) =
            name_for(dir.path(), "p", "/roles/r", "/subscriptions/s").expect("name");
        assert!(reused);
        assert_eq!(first, again);
        let (other, _) =
            name_for(dir.path(), "p", "/roles/r", "/subscriptions/other").expect("name");
        assert_ne!(first, other);
        done(dir.path(), "p", "/roles/r", "/subscriptions/s");
        assert_ne!(
            name_for(dir.path(), "p", "/roles/r", "/subscriptions/s")
                .expect("name")
                .0,
            first
        );
    }
}
