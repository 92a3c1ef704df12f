//! Activations: sending one through its policy's pre-flight check (its name on disk first),
//! waiting for the approver and for the role to take effect, renewing and ending one.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use jumpgate_core::audit::Record;
use jumpgate_core::duration::{human, to_iso};
use jumpgate_core::events::EngineEvent;
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::phase::{self, RequestPhase};
use jumpgate_core::policy::{self};

use super::*;
use crate::arm::{self, Activation, Eligible, Request};
use crate::pending;

impl Engine {
    /// Sends (or re-sends, after a crash) an activation and returns the request as Azure has it.
    pub async fn send_activation(
        &self,
        e: &Eligible,
        duration: Duration,
        justification: &str,
        ticket: Option<&(String, String)>,
    ) -> Result<Request, Failure> {
        let account = self.account().await?;
        let policy = arm::activation_policy(&self.arm, &e.scope, &e.role_definition_id).await?;
        self.check_activation(
            &policy,
            duration,
            justification,
            ticket.map(|t| t.1.as_str()),
        )?;
        let (name, reused) = pending::name_for(
            &self.state_dir,
            &account.oid,
            &e.role_definition_id,
            &e.scope,
        )
        .map_err(|err| {
            Failure::new(
                Kind::Other,
                "state",
                format!(
                    "cannot record the request in {}: {err}. Nothing was sent: free some space or make the folder writable, then try again.",
                    self.state_dir.display()
                ),
            )
        })?;
        if reused {
            self.progress(&format!("resuming request {name} from an earlier run"));
            if let Ok(existing) = arm::get_request(&self.arm, &e.scope, &name).await {
                let phase = RequestPhase::of(&existing.status);
                // An approved activation whose time is up is over, like a denied one.
                let lapsed = existing
                    .created
                    .zip(
                        existing
                            .duration
                            .as_deref()
                            .and_then(|d| jumpgate_core::duration::parse(d).ok()),
                    )
                    .is_some_and(|(created, d)| created + d <= self.arm.clock.now());
                if !phase.is_final() || (phase == RequestPhase::Approved && !lapsed) {
                    return Ok(existing);
                }
                // That one ended (denied, cancelled, lapsed): this is a new activation.
                pending::done(
                    &self.state_dir,
                    &account.oid,
                    &e.role_definition_id,
                    &e.scope,
                );
                return Box::pin(self.send_activation(e, duration, justification, ticket)).await;
            }
        }
        let iso = to_iso(duration);
        let activation = Activation {
            scope: &e.scope,
            name: &name,
            principal: &account.oid,
            role_definition_id: &e.role_definition_id,
            eligibility_schedule_id: Some(&e.eligibility_schedule_id),
            request_type: "SelfActivate",
            duration_iso: Some(&iso),
            justification,
            ticket: ticket.map(|(s, n)| (s.as_str(), n.as_str())),
        };
        match arm::put_request(&self.arm, &activation).await {
            Ok(r) => {
                self.audit(Record {
                    what: "role_requested".into(),
                    role: Some(e.role.clone()),
                    duration: Some(iso.clone()),
                    justification: Some(justification.to_string()),
                    outcome: r.status.clone(),
                    ..Record::default()
                })
                .await;
                Ok(r)
            }
            // Our own earlier PUT got through before the answer was lost.
            Err(err) if err.arm_code() == Some("RoleAssignmentRequestExists") => {
                match arm::get_request(&self.arm, &e.scope, &name).await {
                    Ok(r) => Ok(r),
                    Err(_) => {
                        pending::done(
                            &self.state_dir,
                            &account.oid,
                            &e.role_definition_id,
                            &e.scope,
                        );
                        Err(err.into())
                    }
                }
            }
            Err(err) => {
                let failure: Failure = err.into();
                match &failure.claims {
                    // Refused for want of a stronger sign-in: the name is kept, so the retry
                    // after the step-up is the same request, and the claims are kept for the
                    // sign-in that follows.
                    Some(claims) => self.remember_step_up(claims),
                    None => pending::done(
                        &self.state_dir,
                        &account.oid,
                        &e.role_definition_id,
                        &e.scope,
                    ),
                }
                Err(failure)
            }
        }
    }

    /// Polls a request until it is approved or ends otherwise. Prints each change and, while
    /// nothing changes, how long it has waited.
    pub async fn await_decision(
        &self,
        e: &Eligible,
        mut request: Request,
        timeout: Duration,
    ) -> Result<Request, Failure> {
        let started = Utc::now();
        let mut last_status = request.status.clone();
        let mut last_note = Utc::now();
        loop {
            match RequestPhase::of(&request.status) {
                RequestPhase::Approved => {
                    self.audit(Record {
                        what: "role_approved".into(),
                        role: Some(request.role.clone()),
                        outcome: request.status.clone(),
                        ..Record::default()
                    })
                    .await;
                    return Ok(request);
                }
                RequestPhase::Denied => {
                    let reason = self.denial_reason(&request).await;
                    self.audit(Record {
                        what: "role_denied".into(),
                        role: Some(request.role.clone()),
                        outcome: reason.clone().unwrap_or_else(|| request.status.clone()),
                        ..Record::default()
                    })
                    .await;
                    return Err(Failure::new(
                        Kind::Denied,
                        "denied",
                        format!(
                            "{} was denied{}",
                            request.role,
                            reason.map(|r| format!(": {r}")).unwrap_or_default()
                        ),
                    ));
                }
                RequestPhase::Canceled => {
                    return Err(Failure::new(
                        Kind::Denied,
                        "canceled",
                        format!("The request for {} was cancelled.", request.role),
                    ))
                }
                RequestPhase::Failed => {
                    return Err(Failure::new(
                        Kind::Other,
                        "failed",
                        format!(
                            "The request for {} ended as {}.",
                            request.role, request.status
                        ),
                    ))
                }
                RequestPhase::Pending => {}
            }
            let waited = Utc::now() - started;
            if waited > timeout {
                return Err(Failure::timeout(format!("No decision on {} within {}; it is still {}. Run jumpgate activate again to keep waiting.", request.role, human(timeout), request.status)));
            }
            if Utc::now() - last_note >= Duration::seconds(15) {
                self.progress(&format!(
                    "still waiting for approval ({} so far)",
                    human(waited)
                ));
                last_note = Utc::now();
            }
            tokio::time::sleep(
                phase::poll_interval(waited)
                    .to_std()
                    .unwrap_or(StdDuration::from_secs(2)),
            )
            .await;
            request = arm::get_request(&self.arm, &e.scope, &request.name).await?;
            if request.status != last_status {
                self.progress(&format!("request is now {}", request.status));
                last_status = request.status.clone();
            }
        }
    }

    /// Waits until the role passes RBAC: the permissions ARM reports at its scope include an
    /// action only it grants.
    pub async fn await_effect(
        &self,
        scope: &str,
        action: &str,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let started = Utc::now();
        loop {
            let perms = arm::permissions(&self.arm, scope).await?;
            if policy::permits(&perms, action) {
                return Ok(());
            }
            let waited = Utc::now() - started;
            if waited > timeout {
                return Err(Failure::timeout(format!("The role was approved but had not taken effect after {}: try again in a few minutes.", human(waited))));
            }
            tokio::time::sleep(
                phase::poll_interval(waited)
                    .to_std()
                    .unwrap_or(StdDuration::from_secs(1)),
            )
            .await;
        }
    }

    /// The pre-flight check of an activation against its policy and the organisation's list of
    /// refused justifications, as a failure that names every broken rule.
    pub(super) fn check_activation(
        &self,
        policy: &policy::ActivationPolicy,
        duration: Duration,
        justification: &str,
        ticket: Option<&str>,
    ) -> Result<(), Failure> {
        policy::check_activation(
            policy,
            duration,
            justification,
            ticket,
            &self.config.justification.refuse,
        )
        .map_err(|violations| {
            let text = violations
                .iter()
                .map(|v| v.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            Failure::new(
                Kind::Policy,
                violations[0].rule,
                format!("Not sent: {text}."),
            )
        })
    }

    /// Renews a PIM role before or after it ends. PIM does not let the holder of an
    /// activation extend it (`SelfExtend` is for assignments near their end, which admins
    /// grant), so the role is activated anew through its policy, approval included: at once
    /// when it has ended, and after ending the current activation when it is still on (the
    /// JIT ports it opened stay open until their own end times).
    pub async fn extend_role(
        &self,
        role: &str,
        duration: Duration,
        justification: &str,
    ) -> Result<(Request, Renewal), Failure> {
        let account = self.account().await?;
        let current = self.active_role(role).await?;
        let e = pick_role(
            arm::eligible_roles(&self.arm).await?,
            role,
            current.as_ref().map(|c| c.scope.as_str()),
        )
        .map_err(|_| {
            Failure::new(
                Kind::NotFound,
                "not_eligible",
                format!("You are not eligible for {role}: see jumpgate roles."),
            )
        })?;
        // Checked before the current activation is ended, so a request the policy would
        // refuse leaves the role as it was.
        let policy = arm::activation_policy(&self.arm, &e.scope, &e.role_definition_id).await?;
        self.check_activation(&policy, duration, justification, None)?;
        let how = match &current {
            None => Renewal::NewActivation,
            Some(active) => {
                let ended = self
                    .change_activation(&account.oid, active, "SelfDeactivate", None, justification)
                    .await?;
                self.audit(Record {
                    what: "role_ended".into(),
                    role: Some(active.role.clone()),
                    justification: Some(justification.to_string()),
                    outcome: format!("{} (to activate it anew)", ended.status),
                    ..Record::default()
                })
                .await;
                Renewal::Reactivated
            }
        };
        let request = self
            .send_activation(&e, duration, justification, None)
            .await?;
        self.publish(EngineEvent::RequestStatus {
            request: request.name.clone(),
            role: e.role.clone(),
            status: request.status.clone(),
        });
        Ok((request, how))
    }

    /// A request on an activation in force (`SelfExtend`, `SelfDeactivate`), to a new GUID.
    pub(super) async fn change_activation(
        &self,
        principal: &str,
        current: &arm::Active,
        request_type: &str,
        duration_iso: Option<&str>,
        justification: &str,
    ) -> Result<Request, Failure> {
        let name = uuid::Uuid::new_v4().to_string();
        Ok(arm::put_request(
            &self.arm,
            &Activation {
                scope: &current.scope,
                name: &name,
                principal,
                role_definition_id: &current.role_definition_id,
                eligibility_schedule_id: None,
                request_type,
                duration_iso,
                justification,
                ticket: None,
            },
        )
        .await?)
    }

    /// My activation of a role (by name or role definition id), if one is in force.
    pub(super) async fn active_role(&self, role: &str) -> Result<Option<arm::Active>, Failure> {
        Ok(arm::active_roles(&self.arm).await?.into_iter().find(|a| {
            a.assignment_type == "Activated"
                && (a.role.eq_ignore_ascii_case(role)
                    || arm::leaf(&a.role_definition_id).eq_ignore_ascii_case(role))
        }))
    }

    /// Ends an active PIM role before its time (`SelfDeactivate`). JIT port rules have no
    /// such request: they close at their end time.
    pub async fn end_role(&self, role: &str, justification: &str) -> Result<Request, Failure> {
        let account = self.account().await?;
        let current = self.active_role(role).await?.ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "not_active",
                format!("{role} is not active for you: there is nothing to end."),
            )
        })?;
        let request = self
            .change_activation(
                &account.oid,
                &current,
                "SelfDeactivate",
                None,
                justification,
            )
            .await?;
        self.audit(Record {
            what: "role_ended".into(),
            role: Some(current.role.clone()),
            justification: Some(justification.to_string()),
            outcome: request.status.clone(),
            ..Record::default()
        })
        .await;
        Ok(request)
    }
}
