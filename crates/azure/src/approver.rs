//! Whether the signed-in user decides other people's requests, so that their watcher reads
//! the approvals inbox every few seconds without being told to (`--approver`). Two signs:
//!
//! - the role management policies the user can read name them as an approver
//!   ([`approved_roles`], a few paged reads, which the watcher makes at its first look and
//!   then once a day);
//! - they have decided a request on this machine before: [`remember_decision`] records it in
//!   `decided.json` in the state directory when a decision is sent, and [`has_decided`] reads
//!   it back (local, no request).
//!
//! Approvers named only through a group are not found by the policies (the user's group
//! memberships would cost more reads); their first decision turns the inbox on.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use jumpgate_core::policy::names_approver;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::arm::{self, s, PIM};
use crate::error::{Error, Result};
use crate::http::Arm;

/// At most this many scopes of the user's own roles are searched for eligibilities.
pub const MAX_ROLE_SCOPES: usize = 10;
/// At most this many scopes with eligibilities have their policies read.
pub const MAX_POLICY_SCOPES: usize = 20;
/// A decision counts for this long: someone who has not decided anything for three months
/// goes back to the slow cadence, unless a policy names them.
pub const DECISION_MEMORY_DAYS: i64 = 90;

const FILE: &str = "decided.json";

/// Refusals that mean "you cannot read this here": the scope is skipped, not the search.
fn unreadable(e: &Error) -> bool {
    matches!(
        e,
        Error::Arm {
            status: 403 | 404,
            ..
        }
    )
}

/// The roles whose activations the user (object id `oid`) approves, by display name, from the
/// policies they may read: the scopes of their own roles are searched for eligibilities (at,
/// above and below each), and the policies at each scope holding one are read, since only an
/// eligibility brings a request to approve. Scopes the user cannot read are skipped; each list
/// is read through its pages, and the scopes are capped ([`MAX_ROLE_SCOPES`],
/// [`MAX_POLICY_SCOPES`]), so the cost stays a few reads.
pub async fn approved_roles(arm: &Arm, oid: &str) -> Result<Vec<String>> {
    let mine = distinct(
        arm::active_roles(arm).await?.into_iter().map(|a| a.scope),
        MAX_ROLE_SCOPES,
    );
    let mut eligible = Vec::new();
    for scope in &mine {
        match arm
            .list(&format!(
                "{scope}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}"
            ))
            .await
        {
            Ok(items) => eligible.extend(items.iter().map(|e| s(e, "/properties/scope"))),
            Err(e) if unreadable(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    let mut roles: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    for scope in distinct(eligible.into_iter(), MAX_POLICY_SCOPES) {
        let assignments = match arm
            .list(&format!(
                "{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignments?api-version={PIM}"
            ))
            .await
        {
            Ok(items) => items,
            Err(e) if unreadable(&e) => continue,
            Err(e) => return Err(e),
        };
        for a in assignments {
            let id = s(&a, "/id").to_ascii_lowercase();
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            if let Some(role) = approved_role(&a, oid) {
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }
    }
    Ok(roles)
}

/// The role a policy assignment's effective rules let `oid` approve, by display name (the
/// last segment of its id when the name is missing).
fn approved_role(assignment: &Value, oid: &str) -> Option<String> {
    let rules = assignment["properties"]["effectiveRules"].as_array()?;
    if !names_approver(rules, oid) {
        return None;
    }
    let name = s(
        assignment,
        "/properties/policyAssignmentProperties/roleDefinition/displayName",
    );
    Some(if name.trim().is_empty() {
        arm::leaf(&s(assignment, "/properties/roleDefinitionId")).to_string()
    } else {
        name
    })
}

/// The first `cap` distinct non-empty scopes, compared without regard to case.
fn distinct(scopes: impl Iterator<Item = String>, cap: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scope in scopes {
        let scope = scope.trim_end_matches('/').to_string();
        if scope.is_empty() || out.iter().any(|o| o.eq_ignore_ascii_case(&scope)) {
            continue;
        }
        if out.len() == cap {
            break;
        }
        out.push(scope);
    }
    out
}

/// The last look at the policies for one account ([`approved_roles`]), kept by the engine so
/// that the watcher and the tray's snapshot share it: the policies are read once per
/// `fresh` (the watcher's daily cadence) and account, not at every look or snapshot.
#[derive(Debug, Default)]
pub struct Finding(tokio::sync::Mutex<Option<Look>>);

#[derive(Debug, Clone)]
struct Look {
    oid: String,
    at: DateTime<Utc>,
    /// `None`: the policies could not be read then.
    roles: Option<Vec<String>>,
}

/// After a failed look, how long before the policies are read again.
pub const RETRY_AFTER_FAILURE_MINUTES: i64 = 60;

impl Finding {
    /// The roles `oid` approves: the last look's, when it was for `oid` and younger than
    /// `fresh`; otherwise read now and kept. `Ok(None)` when a look in the last
    /// [`RETRY_AFTER_FAILURE_MINUTES`] failed (it is not repeated sooner); a read that fails
    /// now is kept as failed and answered as its error. One read at a time: whoever asks
    /// while another reads waits for that answer.
    pub async fn roles(
        &self,
        arm: &Arm,
        oid: &str,
        now: DateTime<Utc>,
        fresh: Duration,
    ) -> Result<Option<Vec<String>>> {
        let mut look = self.0.lock().await;
        if let Some(l) = look.as_ref().filter(|l| l.oid.eq_ignore_ascii_case(oid)) {
            let age = now - l.at;
            match &l.roles {
                Some(roles) if age < fresh => return Ok(Some(roles.clone())),
                None if age < Duration::minutes(RETRY_AFTER_FAILURE_MINUTES) => return Ok(None),
                _ => {}
            }
        }
        let read = approved_roles(arm, oid).await;
        *look = Some(Look {
            oid: oid.to_string(),
            at: now,
            roles: read.as_ref().ok().cloned(),
        });
        read.map(Some)
    }
}

/// Who has decided requests on this machine: object id (lower case) → the last decision.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Decided {
    accounts: BTreeMap<String, DateTime<Utc>>,
}

fn read(dir: &Path) -> Decided {
    std::fs::read(dir.join(FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Records that `oid` decided a request at `at`: `decided.json`, 0600, replaced whole under a
/// lock, so two processes deciding at once both count.
pub fn remember_decision(dir: &Path, oid: &str, at: DateTime<Utc>) -> std::io::Result<()> {
    let oid = oid.trim().to_ascii_lowercase();
    if oid.is_empty() {
        return Ok(());
    }
    let lock = crate::private::open_lock(&dir.join("decided.lock"))?;
    lock.lock()?;
    let mut decided = read(dir);
    decided
        .accounts
        .retain(|_, last| at - *last < Duration::days(DECISION_MEMORY_DAYS));
    decided.accounts.insert(oid, at);
    let bytes = serde_json::to_vec_pretty(&decided).map_err(std::io::Error::other)?;
    crate::private::write_atomic(&dir.join(FILE), &bytes)
}

/// Whether `oid` decided a request on this machine in the last [`DECISION_MEMORY_DAYS`] days
/// before `now`. A missing or unreadable file is "no".
pub fn has_decided(dir: &Path, oid: &str, now: DateTime<Utc>) -> bool {
    let oid = oid.trim().to_ascii_lowercase();
    !oid.is_empty()
        && read(dir)
            .accounts
            .get(&oid)
            .is_some_and(|last| now - *last < Duration::days(DECISION_MEMORY_DAYS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time") + Duration::days(days)
    }

    #[test]
    fn a_decision_is_remembered_per_account_for_three_months() {
        let home = tempfile::tempdir().expect("dir");
        let dir = home.path();
        let bob = "B0B00000-0000-4000-8000-000000000002";
        assert!(!has_decided(dir, bob, t(0)), "nothing recorded yet");
        remember_decision(dir, bob, t(0)).expect("remember");
        assert!(has_decided(dir, &bob.to_ascii_lowercase(), t(1)));
        assert!(!has_decided(
            dir,
            "a11ce000-0000-4000-8000-000000000001",
            t(1)
        ));
        assert!(!has_decided(dir, "", t(1)));
        assert!(!has_decided(dir, bob, t(DECISION_MEMORY_DAYS)));
        // A later decision by someone else forgets bob's old one and keeps its own.
        remember_decision(dir, "dave", t(DECISION_MEMORY_DAYS + 1)).expect("remember");
        let text = std::fs::read_to_string(dir.join(FILE)).expect("file");
        assert!(!text.contains("b0b"), "{text}");
        assert!(has_decided(dir, "dave", t(DECISION_MEMORY_DAYS + 2)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let mode = std::fs::metadata(dir.join(FILE)).expect("meta").mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A garbled file is "no", and the next decision replaces it.
        std::fs::write(dir.join(FILE), "{not json").expect("garble");
        assert!(!has_decided(dir, "dave", t(DECISION_MEMORY_DAYS + 2)));
        remember_decision(dir, "dave", t(DECISION_MEMORY_DAYS + 2)).expect("remember");
        assert!(has_decided(dir, "dave", t(DECISION_MEMORY_DAYS + 3)));
    }

    #[test]
    fn scopes_are_distinct_and_capped() {
        let scopes = [
            "/subscriptions/a",
            "/SUBSCRIPTIONS/A/",
            "",
            "/subscriptions/b",
            "/c",
        ]
        .into_iter()
        .map(str::to_string);
        assert_eq!(
            distinct(scopes.clone(), 10),
            ["/subscriptions/a", "/subscriptions/b", "/c"]
        );
        assert_eq!(distinct(scopes, 1), ["/subscriptions/a"]);
    }

    #[test]
    fn the_role_is_named_from_the_assignment() {
        let bob = "b0b";
        let rules = json!([{"ruleType": "RoleManagementPolicyApprovalRule",
            "target": {"caller": "EndUser", "level": "Assignment"},
            "setting": {"isApprovalRequired": true, "approvalStages": [{"primaryApprovers": [{"id": bob, "userType": "User"}]}]}}]);
        let named = json!({"id": "/x", "properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/r1",
            "effectiveRules": rules, "policyAssignmentProperties": {"roleDefinition": {"displayName": "JIT Requester"}}}});
        assert_eq!(approved_role(&named, bob).as_deref(), Some("JIT Requester"));
        assert_eq!(approved_role(&named, "alice"), None);
        let unnamed = json!({"properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/r1",
            "effectiveRules": rules}});
        assert_eq!(approved_role(&unnamed, bob).as_deref(), Some("r1"));
        assert_eq!(approved_role(&json!({"properties": {}}), bob), None);
    }
}
