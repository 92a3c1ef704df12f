//! Activations of Azure roles and of group memberships alike: sending one through its
//! policy's pre-flight check (an Azure role's request name on disk first), waiting for the
//! approver and for the role to take effect, renewing and ending one within PIM's timing
//! rules (nothing ends in its first five minutes; an ended assignment lingers a little).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use jumpgate_core::audit::Record;
use jumpgate_core::duration::{human, to_iso};
use jumpgate_core::events::{Elevation, EngineEvent};
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::phase::{self, RequestPhase};
use jumpgate_core::policy::{self, ActivationPolicy};

use super::*;
use crate::arm::{self, Activation, Active, Eligible, Request};
use crate::directory;
use crate::groups::{self, Membership};
use crate::pending;

/// How long a renewal waits for PIM to remove the ended assignment before it activates anew.
pub const RENEW_WAIT_SECS: i64 = 90;

/// One entry of a profile's `activate`, and what became of it.
#[derive(Debug)]
pub struct SetMember {
    /// The entry as the profile names it.
    pub wanted: String,
    /// What it named, when it named something the user is eligible for.
    pub eligible: Option<Eligible>,
    /// `Ok(None)`: it was already active.
    pub outcome: Result<Option<Request>, Failure>,
}

impl Engine {
    /// Sends one activation and, with `wait`, follows it through approval and effect (at
    /// most that long), with progress. `Ok(None)`: it was already active. A refusal that
    /// asks for a stronger sign-in (`claims`) comes back as it is: after that sign-in, the
    /// same call sends the same request once more (its name was kept).
    pub async fn activate_and_wait(
        &self,
        eligible: &Eligible,
        duration: Duration,
        justification: &str,
        ticket: Option<&(String, String)>,
        wait: Option<Duration>,
    ) -> Result<Option<Request>, Failure> {
        let request = match self
            .send_activation(eligible, duration, justification, ticket)
            .await
        {
            Err(f) if f.explanation.code == "RoleAssignmentExists" => return Ok(None),
            other => other?,
        };
        self.progress(&format!(
            "requested {} for {}: {}",
            match eligible.kind {
                Elevation::Role => format!("{} at {}", eligible.role, eligible.scope_name),
                Elevation::Group => format!("membership of {}", eligible.role),
                Elevation::EntraRole => format!("Entra role {}", eligible.role),
            },
            human(duration),
            request.status
        ));
        let account = self.account().await?;
        let forget = || {
            if eligible.kind == Elevation::Role {
                pending::done(
                    &self.state_dir,
                    &account.oid,
                    &eligible.role_definition_id,
                    &eligible.scope,
                );
            }
        };
        let request = match wait {
            None => request,
            Some(timeout) => {
                let outcome = self.await_decision(request, timeout).await;
                if !outcome.as_ref().is_err_and(|f| f.timed_out) {
                    forget();
                }
                let request = outcome?;
                self.progress(&format!(
                    "{} approved; waiting for it to take effect",
                    eligible.role
                ));
                match eligible.kind {
                    Elevation::Role => {
                        if let Some(action) = self.probe_action(eligible).await {
                            self.await_effect(&eligible.scope, &action, timeout, false)
                                .await?;
                        }
                    }
                    // ARM sees a new membership only in a token issued after it.
                    Elevation::Group => self.renew_for_membership().await?,
                    // An Entra role is in effect once provisioned; it opens nothing in ARM.
                    Elevation::EntraRole => {}
                }
                self.progress(&format!("{} is active and in effect", eligible.role));
                request
            }
        };
        if RequestPhase::of(&request.status).is_final() {
            forget();
        }
        Ok(Some(request))
    }

    /// Activates every entry of a profile side by side, each followed through approval and
    /// effect (at most `wait`), and says what became of each, in the profile's order. One
    /// refused undoes none of the others.
    pub async fn activate_set(
        &self,
        wanted: &[jumpgate_core::config::ProfileActivation],
        duration: Duration,
        justification: &str,
        ticket: Option<&(String, String)>,
        wait: Duration,
    ) -> Result<Vec<SetMember>, Failure> {
        let eligible = self.eligibilities().await?;
        let runs = wanted.iter().map(|w| {
            let picked = super::pick_role(eligible.clone(), w.name(), w.scope());
            async move {
                let wanted = w.name().to_string();
                match picked {
                    Err(f) => SetMember {
                        wanted,
                        eligible: None,
                        outcome: Err(f),
                    },
                    Ok(e) => {
                        let outcome = self
                            .activate_and_wait(&e, duration, justification, ticket, Some(wait))
                            .await;
                        SetMember {
                            wanted,
                            eligible: Some(e),
                            outcome,
                        }
                    }
                }
            }
        });
        Ok(futures::future::join_all(runs).await)
    }
    /// The activation policy of what `e` names: an Azure role's at its scope (ARM), a group
    /// membership's (Microsoft Graph).
    pub async fn activation_policy(&self, e: &Eligible) -> Result<ActivationPolicy, Failure> {
        Ok(match e.kind {
            Elevation::Role => {
                arm::activation_policy(&self.arm, &e.scope, &e.role_definition_id).await?
            }
            Elevation::Group => {
                groups::activation_policy(&self.graph, &e.scope, &e.role_definition_id).await?
            }
            Elevation::EntraRole => {
                directory::activation_policy(&self.graph_roles, &e.role_definition_id).await?
            }
        })
    }

    /// Sends (or re-sends, after a crash) an activation and returns the request as PIM has it.
    pub async fn send_activation(
        &self,
        e: &Eligible,
        duration: Duration,
        justification: &str,
        ticket: Option<&(String, String)>,
    ) -> Result<Request, Failure> {
        let policy = self.activation_policy(e).await?;
        self.check_activation(
            &policy,
            duration,
            justification,
            ticket.map(|t| t.1.as_str()),
        )?;
        let (request, sent) = match e.kind {
            Elevation::Role => self.send_role(e, duration, justification, ticket).await?,
            Elevation::Group | Elevation::EntraRole => {
                self.send_membership(e, duration, justification, ticket)
                    .await?
            }
        };
        // A request resumed from an earlier run was journaled when it was sent.
        if sent {
            self.audit(Record {
                what: "role_requested".into(),
                role: Some(e.role.clone()),
                duration: Some(to_iso(duration)),
                justification: Some(justification.to_string()),
                outcome: request.status.clone(),
                ..Record::default()
            })
            .await;
        }
        Ok(request)
    }

    /// An Azure role's activation: a PUT to a GUID recorded on disk first, so a retry or a
    /// run after a crash is the same request (RELIABILITY #10). Says whether it was sent
    /// now, or found from an earlier run.
    async fn send_role(
        &self,
        e: &Eligible,
        duration: Duration,
        justification: &str,
        ticket: Option<&(String, String)>,
    ) -> Result<(Request, bool), Failure> {
        let account = self.account().await?;
        let (name, reused) = pending::name_for(
            &self.state_dir,
            &account.oid,
            &e.role_definition_id,
            &e.scope,
        )
        .map_err(|err| self.unrecorded(err))?;
        if reused {
            self.progress(&format!("resuming request {name} from an earlier run"));
            if let Ok(existing) = arm::get_request(&self.arm, &e.scope, &name).await {
                if self.still_open(&existing) {
                    return Ok((existing, false));
                }
                // That one ended (denied, cancelled, lapsed): this is a new activation.
                pending::done(
                    &self.state_dir,
                    &account.oid,
                    &e.role_definition_id,
                    &e.scope,
                );
                return Box::pin(self.send_role(e, duration, justification, ticket)).await;
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
        let forget = || {
            pending::done(
                &self.state_dir,
                &account.oid,
                &e.role_definition_id,
                &e.scope,
            )
        };
        match arm::put_request(&self.arm, &activation).await {
            Ok(r) => Ok((r, true)),
            // Our own earlier PUT got through before the answer was lost.
            Err(err) if err.arm_code() == Some("RoleAssignmentRequestExists") => {
                match arm::get_request(&self.arm, &e.scope, &name).await {
                    Ok(r) => Ok((r, false)),
                    Err(_) => {
                        forget();
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
                    None => forget(),
                }
                Err(failure)
            }
        }
    }

    /// A group membership's (or an Entra role's) activation. Graph names the request itself
    /// (a POST), so what stands in for the recorded name is the person's own open request for
    /// the group or role: one still waiting, or approved and running, is the one to use, after
    /// a crash or a lost answer alike.
    async fn send_membership(
        &self,
        e: &Eligible,
        duration: Duration,
        justification: &str,
        ticket: Option<&(String, String)>,
    ) -> Result<(Request, bool), Failure> {
        let account = self.account().await?;
        if let Some(existing) = self.open_membership_request(e, None).await? {
            self.progress(&format!(
                "resuming your request {} for {} from an earlier run",
                existing.name, e.role
            ));
            return Ok((existing, false));
        }
        let iso = to_iso(duration);
        let membership = Membership {
            target: match e.kind {
                Elevation::EntraRole => &e.role_definition_id,
                _ => &e.scope,
            },
            principal: &account.oid,
            access: &e.role_definition_id,
            action: "selfActivate",
            duration_iso: Some(&iso),
            justification,
            ticket: ticket.map(|(s, n)| (s.as_str(), n.as_str())),
        };
        let sent_at = self.arm.clock.now();
        match self.graph_post(e.kind, &membership, sent_at).await {
            Ok(r) => Ok((r, true)),
            Err(crate::Error::Unreachable { .. }) => {
                // The POST may have arrived: look before sending another.
                self.progress("the answer to the request was lost; checking whether it arrived");
                match self.open_membership_request(e, Some(sent_at)).await? {
                    Some(r) => Ok((r, true)),
                    None => {
                        self.progress("it did not arrive; sending it again");
                        let r = self.graph_post(e.kind, &membership, sent_at).await?;
                        Ok((r, true))
                    }
                }
            }
            Err(err) if err.arm_code() == Some("RoleAssignmentRequestExists") => self
                .open_membership_request(e, None)
                .await?
                .map(|r| (r, false))
                .ok_or_else(|| err.into()),
            Err(err) => {
                let failure: Failure = err.into();
                if let Some(claims) = &failure.claims {
                    self.remember_step_up(claims);
                }
                Err(failure)
            }
        }
    }

    /// Sends a request to the Graph API of `kind` (PIM for Groups, or for Entra roles).
    async fn graph_post(
        &self,
        kind: Elevation,
        m: &Membership<'_>,
        now: DateTime<Utc>,
    ) -> Result<Request, crate::Error> {
        match kind {
            Elevation::EntraRole => directory::post_request(&self.graph_roles, m, now).await,
            _ => groups::post_request(&self.graph, m, now).await,
        }
    }

    /// The person's own activation request for this group or Entra role that is still open
    /// (waiting, or approved and not lapsed), newest first; made since `since` when given.
    /// One made before the last end of the same membership or role (a deactivation, an
    /// administrator's removal) is over, whatever its own status says.
    async fn open_membership_request(
        &self,
        e: &Eligible,
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<Request>, Failure> {
        let mine = match e.kind {
            Elevation::EntraRole => directory::my_requests(&self.graph_roles).await?,
            _ => groups::my_requests(&self.graph).await?,
        };
        let same = |r: &Request| {
            r.scope.eq_ignore_ascii_case(&e.scope)
                && r.role_definition_id
                    .eq_ignore_ascii_case(&e.role_definition_id)
        };
        let ended = mine
            .iter()
            .filter(|r| {
                same(r)
                    && ["SelfDeactivate", "AdminRemove"]
                        .iter()
                        .any(|t| r.request_type.eq_ignore_ascii_case(t))
            })
            .filter_map(|r| r.created)
            .max();
        let mut mine: Vec<Request> = mine
            .into_iter()
            .filter(|r| {
                same(r)
                    && r.request_type.eq_ignore_ascii_case("SelfActivate")
                    && since
                        .is_none_or(|t| r.created.is_some_and(|c| c >= t - Duration::seconds(5)))
                    && ended.is_none_or(|end| r.created.is_some_and(|c| c > end))
                    && self.still_open(r)
            })
            .collect();
        mine.sort_by_key(|r| std::cmp::Reverse(r.created));
        Ok(mine.into_iter().next())
    }

    /// Whether a request still stands: waiting for a decision, or approved with its time not
    /// yet up.
    fn still_open(&self, r: &Request) -> bool {
        let phase = RequestPhase::of(&r.status);
        let lapsed = r
            .created
            .zip(
                r.duration
                    .as_deref()
                    .and_then(|d| jumpgate_core::duration::parse(d).ok()),
            )
            .is_some_and(|(created, d)| created + d <= self.arm.clock.now());
        !phase.is_final() || (phase == RequestPhase::Approved && !lapsed)
    }

    fn unrecorded(&self, err: std::io::Error) -> Failure {
        Failure::new(
            Kind::Other,
            "state",
            format!(
                "cannot record the request in {}: {err}. Nothing was sent: free some space or make the folder writable, then try again.",
                self.state_dir.display()
            ),
        )
    }

    /// Polls a request until it is approved or ends otherwise. Prints each change and, while
    /// nothing changes, how long it has waited.
    pub async fn await_decision(
        &self,
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
            request = self
                .request(request.kind, &request.scope, &request.name)
                .await?;
            if request.status != last_status {
                self.progress(&format!("request is now {}", request.status));
                last_status = request.status.clone();
            }
        }
    }

    /// Takes a new ARM access token after a group membership began or ended: ARM decides
    /// group-based access from the `groups` claim of the token presented, which holds the
    /// memberships of the moment it was issued.
    pub async fn renew_for_membership(&self) -> Result<(), Failure> {
        self.progress(
            "taking a new sign-in token, which carries your group memberships as they are now",
        );
        self.session.force_refresh().await?;
        Ok(())
    }

    /// Waits until `action` passes RBAC at `scope`: the permissions ARM reports there include
    /// it. After a group membership (`membership`), a new token is taken every 20 s while it
    /// does not, in case the membership reached the directory after the last one.
    pub async fn await_effect(
        &self,
        scope: &str,
        action: &str,
        timeout: Duration,
        membership: bool,
    ) -> Result<(), Failure> {
        let started = Utc::now();
        let mut renewed = Utc::now();
        loop {
            let perms = arm::permissions(&self.arm, scope).await?;
            if policy::permits(&perms, action) {
                return Ok(());
            }
            let waited = Utc::now() - started;
            if waited > timeout {
                return Err(Failure::timeout(format!("The activation was approved but had not taken effect after {}: try again in a few minutes.", human(waited))));
            }
            if membership && Utc::now() - renewed >= Duration::seconds(20) {
                self.renew_for_membership().await?;
                renewed = Utc::now();
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
        policy: &ActivationPolicy,
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

    /// My activation of a role or group (by name, role definition id or group id) in force,
    /// if any.
    pub async fn active_elevation(&self, name: &str) -> Result<Option<Active>, Failure> {
        let (kind, bare) = Elevation::split_name(name);
        Ok(self.active().await?.into_iter().find(|a| {
            a.assignment_type == "Activated"
                && a.principal_type != "Group"
                && kind.is_none_or(|k| k == a.kind)
                && (a.role.eq_ignore_ascii_case(bare)
                    || arm::leaf(&a.role_definition_id).eq_ignore_ascii_case(bare)
                    || (a.kind == Elevation::Group && a.scope.eq_ignore_ascii_case(bare)))
        }))
    }

    /// What renewing `name` for `duration` would do, for the person to see before anything
    /// changes: the activation in force (if any; renewing it ends it first), the eligibility
    /// and its policy. Everything that would refuse it is checked here, before the person is
    /// asked to confirm: the activation's first five minutes (with the time it may be ended)
    /// and the policy's rules.
    pub async fn renewal_plan(
        &self,
        name: &str,
        duration: Duration,
        justification: &str,
    ) -> Result<RenewalPlan, Failure> {
        let current = self.active_elevation(name).await?;
        let eligible = pick_role(
            self.eligibilities().await?,
            name,
            current.as_ref().map(|c| c.scope.as_str()),
        )
        .map_err(|_| {
            Failure::new(
                Kind::NotFound,
                "not_eligible",
                format!("You are not eligible for {name}: see jumpgate roles."),
            )
        })?;
        if let Some(active) = &current {
            self.may_end(active)?;
        }
        let policy = self.activation_policy(&eligible).await?;
        self.check_activation(&policy, duration, justification, None)?;
        Ok(RenewalPlan {
            current,
            eligible,
            policy,
        })
    }

    /// Refuses, before anything is sent, to end an activation in its first five minutes
    /// (PIM answers `ActiveDurationTooShort`), saying when it may be ended.
    pub fn may_end(&self, active: &Active) -> Result<(), Failure> {
        let now = self.arm.clock.now();
        match active.start.and_then(|s| policy::may_end_at(s, now)) {
            None => Ok(()),
            Some(from) => Err(Failure::new(
                Kind::Policy,
                "ActiveDurationTooShort",
                format!(
                    "Not sent: PIM lets no one end an activation in its first {} minutes. {} was activated at {}; it may be ended from {} (in {}). Nothing was changed.",
                    policy::MIN_ACTIVE.num_minutes(),
                    active.role,
                    local_time(active.start.unwrap_or(now)),
                    local_time(from),
                    human(from - now)
                ),
            )),
        }
    }

    /// Renews a role or group membership as `plan` says. PIM lets no holder extend an
    /// activation (`SelfExtend` is for assignments near their end, which admins grant), so it
    /// is activated anew through its policy, approval included: at once when it has ended;
    /// after ending the current activation, and waiting until PIM has removed it, when it is
    /// still on (the JIT ports it opened stay open until their own end times).
    pub async fn renew(
        &self,
        plan: &RenewalPlan,
        duration: Duration,
        justification: &str,
    ) -> Result<(Request, Renewal), Failure> {
        // Checked before the current activation is ended, so a request the policy would
        // refuse leaves it as it was.
        self.check_activation(&plan.policy, duration, justification, None)?;
        let how = match &plan.current {
            None => Renewal::NewActivation,
            Some(active) => {
                self.may_end(active)?;
                let ended = self.deactivate(active, justification).await?;
                self.audit(Record {
                    what: "role_ended".into(),
                    role: Some(active.role.clone()),
                    justification: Some(justification.to_string()),
                    outcome: format!("{} (to activate it anew)", ended.status),
                    ..Record::default()
                })
                .await;
                self.await_removed(active).await?;
                Renewal::Reactivated
            }
        };
        let request = self
            .activate_despite_lingering(&plan.eligible, duration, justification)
            .await?;
        self.publish(EngineEvent::RequestStatus {
            request: request.name.clone(),
            role: plan.eligible.role.clone(),
            status: request.status.clone(),
        });
        Ok((request, how))
    }

    /// Waits, within [`RENEW_WAIT_SECS`], until PIM no longer lists an ended activation: an
    /// ended assignment lingers for a few seconds, and an activation sent meanwhile is
    /// refused (`RoleAssignmentExists`).
    async fn await_removed(&self, ended: &Active) -> Result<(), Failure> {
        let started = Utc::now();
        let mut said = false;
        loop {
            let still = self.active().await?.into_iter().any(|a| {
                a.kind == ended.kind
                    && a.principal_type != "Group"
                    && a.scope.eq_ignore_ascii_case(&ended.scope)
                    && arm::leaf(&a.role_definition_id)
                        .eq_ignore_ascii_case(arm::leaf(&ended.role_definition_id))
            });
            if !still {
                return Ok(());
            }
            let waited = Utc::now() - started;
            if waited > Duration::seconds(RENEW_WAIT_SECS) {
                // Activating is still worth a try: a refusal is retried below.
                self.progress(&format!(
                    "PIM still lists {} after {}; activating it anew anyway",
                    ended.role,
                    human(waited)
                ));
                return Ok(());
            }
            if !said || waited.num_seconds() % 10 == 0 {
                self.progress(&format!(
                    "waiting for PIM to remove the ended {} before activating it anew ({} so far)",
                    ended.role,
                    human(waited)
                ));
                said = true;
            }
            tokio::time::sleep(StdDuration::from_secs(1)).await;
        }
    }

    /// An activation that PIM may refuse for a little while after the same one ended
    /// (`RoleAssignmentExists` while the old assignment lingers): retried with backoff
    /// within [`RENEW_WAIT_SECS`], with progress.
    async fn activate_despite_lingering(
        &self,
        e: &Eligible,
        duration: Duration,
        justification: &str,
    ) -> Result<Request, Failure> {
        let started = Utc::now();
        let mut wait = StdDuration::from_secs(2);
        loop {
            match self.send_activation(e, duration, justification, None).await {
                Err(f)
                    if f.explanation.code == "RoleAssignmentExists"
                        && Utc::now() - started < Duration::seconds(RENEW_WAIT_SECS) =>
                {
                    self.progress(&format!(
                        "PIM still holds the ended {}; asking again in {}s",
                        e.role,
                        wait.as_secs()
                    ));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(StdDuration::from_secs(15));
                }
                Err(f) if f.explanation.code == "RoleAssignmentExists" => {
                    return Err(Failure::new(
                        Kind::Conflict,
                        "RoleAssignmentExists",
                        format!("{} was ended, but PIM still holds it after {}s, so it could not be activated anew. Activate it with jumpgate activate in a minute: until then you hold no {} (open ports stay open).", e.role, RENEW_WAIT_SECS, e.role),
                    ))
                }
                other => return other,
            }
        }
    }

    /// Sends the deactivation of an activation in force: a `SelfDeactivate` request for an
    /// Azure role (to a new GUID), a `selfDeactivate` for a group membership. The role's
    /// recorded activation request is forgotten with it: the next activation is a new one,
    /// not that approved request resumed.
    async fn deactivate(&self, active: &Active, justification: &str) -> Result<Request, Failure> {
        let account = self.account().await?;
        Ok(match active.kind {
            Elevation::Role => {
                let name = uuid::Uuid::new_v4().to_string();
                let ended = arm::put_request(
                    &self.arm,
                    &Activation {
                        scope: &active.scope,
                        name: &name,
                        principal: &account.oid,
                        role_definition_id: &active.role_definition_id,
                        eligibility_schedule_id: None,
                        request_type: "SelfDeactivate",
                        duration_iso: None,
                        justification,
                        ticket: None,
                    },
                )
                .await?;
                pending::done(
                    &self.state_dir,
                    &account.oid,
                    &active.role_definition_id,
                    &active.scope,
                );
                ended
            }
            Elevation::Group | Elevation::EntraRole => {
                self.graph_post(
                    active.kind,
                    &Membership {
                        target: match active.kind {
                            Elevation::EntraRole => &active.role_definition_id,
                            _ => &active.scope,
                        },
                        principal: &account.oid,
                        access: &active.role_definition_id,
                        action: "selfDeactivate",
                        duration_iso: None,
                        justification,
                        ticket: None,
                    },
                    self.arm.clock.now(),
                )
                .await?
            }
        })
    }

    /// Ends an active role or group membership before its time. Refused before anything is
    /// sent in its first five minutes. JIT port rules have no such request: they close at
    /// their end time.
    pub async fn end_role(&self, name: &str, justification: &str) -> Result<Request, Failure> {
        let current = self.active_elevation(name).await?.ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "not_active",
                format!("{name} is not active for you: there is nothing to end."),
            )
        })?;
        self.may_end(&current)?;
        let request = self.deactivate(&current, justification).await?;
        self.audit(Record {
            what: "role_ended".into(),
            role: Some(current.role.clone()),
            justification: Some(justification.to_string()),
            outcome: request.status.clone(),
            ..Record::default()
        })
        .await;
        if current.kind == Elevation::Group {
            // The token in hand still names the group, and ARM would go on honouring it
            // until it expires: access given up should end now.
            self.renew_for_membership().await?;
        }
        Ok(request)
    }
}

/// What a renewal would do, for the person to confirm (see [`Engine::renewal_plan`]).
#[derive(Debug, Clone, Serialize)]
pub struct RenewalPlan {
    /// The activation in force, which renewing ends first; `None` when it has ended.
    pub current: Option<Active>,
    pub eligible: Eligible,
    pub policy: ActivationPolicy,
}

impl RenewalPlan {
    /// What follows, in words, when renewing ends the activation in force; `None` when
    /// nothing is in force (renewing is then a plain activation).
    pub fn consequences(&self) -> Option<String> {
        let current = self.current.as_ref()?;
        let approval = if self.policy.approval_required {
            let names: Vec<&str> = self
                .policy
                .approvers
                .iter()
                .map(|(_, n)| n.as_str())
                .collect();
            format!(
                " The approver{} ({}) {} asked again, and until they approve you hold no {}; ports it opened stay open until their own end.",
                if names.len() == 1 { "" } else { "s" },
                if names.is_empty() { "as the policy names them".to_string() } else { names.join(", ") },
                if names.len() == 1 { "is" } else { "are" },
                current.role
            )
        } else {
            " No approval is needed, so it is active again within moments; ports it opened stay open.".to_string()
        };
        Some(format!(
            "PIM lets no one extend an activation: renewing ends {} now and activates it anew.{approval}",
            current.role
        ))
    }
}

fn local_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%H:%M:%S")
        .to_string()
}
