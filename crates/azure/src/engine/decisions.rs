//! An approver's decisions, and who decided a request and why.

use jumpgate_core::audit::Record;
use jumpgate_core::explain::Failure;

use super::*;
use crate::arm::{self, Request};

impl Engine {
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
        let stages = self
            .arm
            .list(&format!(
                "/providers/Microsoft.Authorization/roleAssignmentApprovals/{id}/stages?api-version={}",
                arm::APPROVALS
            ))
            .await
            .ok()?;
        stages.iter().find_map(|s| {
            let p = &s["properties"];
            let approved = match p["reviewResult"].as_str()? {
                "Approve" => true,
                "Deny" => false,
                _ => return None,
            };
            Some(Decision {
                approved,
                approver: p["reviewedBy"]["userPrincipalName"]
                    .as_str()
                    .map(str::to_string),
                justification: p["justification"].as_str().map(str::to_string),
            })
        })
    }

    /// An approver's decision on a request waiting for them, recorded in the journal. The one
    /// place decisions are sent (the CLI's `approve`/`deny` and the tray's `decide`), so the
    /// one place that remembers this user decides requests (`approver::remember_decision`).
    pub async fn decide(
        &self,
        pending: &arm::Pending,
        approve: bool,
        justification: &str,
    ) -> Result<(), Failure> {
        arm::decide(&self.arm, pending, approve, justification).await?;
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
}
