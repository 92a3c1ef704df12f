//! An approver's inbox and decisions, for Azure roles and group memberships alike, and who
//! decided a request and why.

use std::time::Duration as StdDuration;

use jumpgate_core::audit::Record;
use jumpgate_core::events::Elevation;
use jumpgate_core::explain::{Failure, Kind};
use serde_json::Value;

use super::*;
use crate::arm::{self, Pending, Request};
use crate::{directory, groups};

/// How many times a decision's stage is read back before Jumpgate says it is not recorded.
const READ_BACK_TRIES: u32 = 5;

/// A stage's `reviewResult` as a decision: ARM writes `Approve`/`Deny`, Graph `Approved`/
/// `Denied`; `NotReviewed` (or nothing) is no decision yet.
fn review(result: &str) -> Option<bool> {
    match result.to_ascii_lowercase().as_str() {
        "approve" | "approved" => Some(true),
        "deny" | "denied" => Some(false),
        _ => None,
    }
}

/// A stage's decision, read from ARM's shape (under `properties`) or Graph's (flat).
fn stage_decision(stage: &Value) -> Option<Decision> {
    let p = if stage["properties"].is_object() {
        &stage["properties"]
    } else {
        stage
    };
    let approved = review(p["reviewResult"].as_str()?)?;
    let by = &p["reviewedBy"];
    Some(Decision {
        approved,
        approver: ["userPrincipalName", "displayName", "principalName"]
            .iter()
            .find_map(|k| by[*k].as_str().filter(|v| !v.is_empty()))
            .map(str::to_string),
        justification: p["justification"].as_str().map(str::to_string),
    })
}

impl Engine {
    /// The approvals waiting for the person's review, for roles and groups, as (kind,
    /// approval, stage): one read each, for the watcher's quick look.
    pub async fn inbox(&self) -> Result<Vec<(Elevation, String, String)>, Failure> {
        let (roles, groups, entra) = tokio::join!(
            arm::approval_inbox(&self.arm),
            self.group_read(groups::inbox(&self.graph)),
            self.pim_read(Elevation::EntraRole, directory::inbox(&self.graph_roles))
        );
        Ok(roles?
            .into_iter()
            .map(|(a, s)| (Elevation::Role, a, s))
            .chain(groups.into_iter().map(|(a, s)| (Elevation::Group, a, s)))
            .chain(entra.into_iter().map(|(a, s)| (Elevation::EntraRole, a, s)))
            .collect())
    }

    /// The requests waiting for the person's decision, for roles, groups and Entra roles,
    /// each joined with its approval.
    pub async fn approvals(&self) -> Result<Vec<Pending>, Failure> {
        let (roles, groups, entra) = tokio::join!(
            arm::approvals(&self.arm),
            self.group_read(groups::approvals(&self.graph)),
            self.pim_read(
                Elevation::EntraRole,
                directory::approvals(&self.graph_roles)
            )
        );
        let mut all = roles?;
        all.extend(groups);
        all.extend(entra);
        Ok(all)
    }

    pub async fn denial_reason(&self, request: &Request) -> Option<String> {
        let d = self.decision(request).await?;
        (!d.approved).then(|| {
            format!(
                "{} (by {})",
                d.justification.as_deref().unwrap_or("no reason given"),
                d.approver.as_deref().unwrap_or("the approver")
            )
        })
    }

    /// Who decided a request, how and why: read from its approval's stages.
    pub async fn decision(&self, request: &Request) -> Option<Decision> {
        let id = request.approval_id.as_ref()?;
        let stages = match request.kind {
            Elevation::Role => self
                .arm
                .list(&format!(
                    "/providers/Microsoft.Authorization/roleAssignmentApprovals/{id}/stages?api-version={}",
                    arm::APPROVALS
                ))
                .await
                .ok()?,
            Elevation::Group => groups::stages(&self.graph, id).await.ok()?,
            Elevation::EntraRole => directory::stages(&self.graph_roles, id).await.ok()?,
        };
        stages.iter().find_map(stage_decision)
    }

    /// An approver's decision on a request waiting for them, recorded in the journal once the
    /// stage reads back with it. The one place decisions are sent (the CLI's `approve`/`deny`
    /// and the tray's `decide`), so the one place that remembers this user decides requests
    /// (`approver::remember_decision`).
    pub async fn decide(
        &self,
        pending: &Pending,
        approve: bool,
        justification: &str,
    ) -> Result<(), Failure> {
        match pending.request.kind {
            Elevation::Role => arm::decide(&self.arm, pending, approve, justification).await?,
            Elevation::Group => {
                groups::decide(&self.graph, pending, approve, justification).await?
            }
            Elevation::EntraRole => {
                directory::decide(&self.graph_roles, pending, approve, justification).await?
            }
        }
        self.read_back(pending, approve).await?;
        // Remembered before the journal entry, which a running watcher notices: by then it
        // finds this user among those who decide, and reads their inbox every few seconds.
        if let Ok(Some(t)) = self.session.current().await {
            if let Err(e) = crate::approver::remember_decision(
                &self.state_dir,
                &t.account.oid,
                self.arm.clock.now(),
            ) {
                self.progress(&format!(
                    "could not note in {} that you decide requests ({e}); the watcher will read your approvals at its usual pace",
                    self.state_dir.display()
                ));
            }
        }
        self.audit(Record {
            what: "approval_decided".into(),
            role: Some(pending.request.role.clone()),
            duration: pending.request.duration.clone(),
            justification: Some(justification.to_string()),
            outcome: format!(
                "{} the request of {}",
                if approve { "approved" } else { "denied" },
                pending.request.principal_name
            ),
            ..Record::default()
        })
        .await;
        Ok(())
    }

    /// Reads the decided stage back until its `reviewResult` holds the decision: an answer
    /// that accepted the call is not yet proof the decision was recorded.
    async fn read_back(&self, pending: &Pending, approve: bool) -> Result<(), Failure> {
        for attempt in 0..READ_BACK_TRIES {
            let stage = match pending.request.kind {
                Elevation::Role => arm::approval_stage(&self.arm, pending).await?,
                Elevation::Group => groups::stage(&self.graph, pending).await?,
                Elevation::EntraRole => directory::stage(&self.graph_roles, pending).await?,
            };
            match stage_decision(&stage).map(|d| d.approved) {
                Some(recorded) if recorded == approve => return Ok(()),
                Some(_) => {
                    return Err(Failure::new(
                        Kind::Conflict,
                        "decided_otherwise",
                        format!(
                            "The request of {} for {} was decided the other way, by someone else, before yours arrived: see jumpgate history.",
                            pending.request.principal_name, pending.request.role
                        ),
                    ))
                }
                None if attempt + 1 < READ_BACK_TRIES => {
                    tokio::time::sleep(StdDuration::from_secs(1)).await;
                }
                None => {}
            }
        }
        Err(Failure::new(
            Kind::Other,
            "decision_not_recorded",
            format!(
                "Azure accepted your decision on the request of {} for {}, but its approval does not show it: see jumpgate approvals, and decide again if it is still there.",
                pending.request.principal_name, pending.request.role
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stages_read_alike_from_arm_and_graph() {
        let arm = json!({"properties": {"reviewResult": "Approve", "justification": "ok",
            "reviewedBy": {"userPrincipalName": "bob@contoso.example"}}});
        let graph = json!({"reviewResult": "Denied", "justification": "no",
            "reviewedBy": {"id": "b0b", "displayName": "Bob Brandt"}});
        let d = stage_decision(&arm).expect("approved");
        assert!(d.approved);
        assert_eq!(d.approver.as_deref(), Some("bob@contoso.example"));
        let d = stage_decision(&graph).expect("denied");
        assert!(!d.approved);
        assert_eq!(d.approver.as_deref(), Some("Bob Brandt"));
        for pending in [
            json!({"properties": {"reviewResult": "NotReviewed"}}),
            json!({}),
        ] {
            assert!(stage_decision(&pending).is_none());
        }
    }
}
