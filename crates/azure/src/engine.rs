//! The engine: the operations the CLI, the watcher and the tray share, carried out against
//! Azure with the decisions of `jumpgate-core`. State changes are published on one broadcast
//! channel of [`EngineEvent`]s, which any front end can subscribe to.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use jumpgate_core::audit::Record;
use jumpgate_core::config::Config;
use jumpgate_core::duration::{human, to_iso};
use jumpgate_core::events::EngineEvent;
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::phase::{
    self, Action, Connect, Failure as ConnectFailure, Observation, RequestPhase, Step,
};
use jumpgate_core::policy::{self, JIT_INITIATE};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::arm::{self, Activation, Eligible, Request, Target};
use crate::http::Arm;
use crate::journal::Journal;
use crate::pending;
use crate::session::Session;
use crate::signin::Authority;
use crate::tokens::{Account, TokenStore};

/// Where to connect: a host and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// A completed step of `connect`.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: Step,
    pub at: DateTime<Utc>,
    pub detail: String,
}

/// How a role was renewed. PIM offers its holder no extension of an activation, so both
/// are a new activation through the role's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Renewal {
    /// It had ended, so it was activated anew.
    NewActivation,
    /// It was still on: it was ended (`SelfDeactivate`) and activated anew.
    Reactivated,
}

impl Renewal {
    /// What happened, for people, with the request's status and whether it waits for an
    /// approver.
    pub fn describe(&self, request: &Request, duration: Duration) -> String {
        let waiting = if RequestPhase::of(&request.status) == RequestPhase::Approved {
            "it is active again".to_string()
        } else {
            format!("{}: it is active again once approved", request.status)
        };
        match self {
            Renewal::NewActivation => format!(
                "{} had ended, so it was activated anew for {} through its policy; {waiting}.",
                request.role,
                human(duration)
            ),
            Renewal::Reactivated => format!(
                "PIM does not let you extend an activation, so {} was ended and activated anew for {} through its policy; {waiting}. Ports it opened stay open until their own end.",
                request.role,
                human(duration)
            ),
        }
    }
}

/// An approver's decision on a request.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub approved: bool,
    pub approver: Option<String>,
    pub justification: Option<String>,
}

/// What `connect` is asked to do.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub vm: String,
    pub port: Option<u16>,
    pub duration: Duration,
    pub justification: String,
    pub ticket: Option<(String, String)>,
    /// Bounds each wait: approval, effect, reachability.
    pub timeout: Duration,
    /// The user agreed to activate a role that reaches JIT only through a wildcard
    /// (Contributor, Owner) when no narrower one exists.
    pub allow_broad_role: bool,
}

/// Where `connect` got to: the port is open and reachable.
#[derive(Debug, Clone, Serialize)]
pub struct Connected {
    pub vm: String,
    pub vm_id: String,
    pub port: u16,
    pub endpoint: Endpoint,
    pub steps: Vec<StepRecord>,
}

/// How long JIT may take to apply an initiated rule to the network before Jumpgate gives up
/// waiting, in ARM's seconds.
const JIT_APPLY_BUDGET_SECS: i64 = 60;

/// Where a VM's JIT policy stands for the user.
#[derive(Debug, Clone)]
pub enum Located {
    Target(Target),
    /// Named by resource id, but its policy cannot be read before a role is active.
    Unreadable {
        vm_id: String,
    },
}

/// ARM refused to show something for want of a role (403): what an eligible-only user meets.
fn is_refusal(e: &crate::Error) -> bool {
    matches!(e, crate::Error::Arm { status: 403, .. })
}

/// The journal's word for a sign-out the person asked for ([`Engine::sign_out`]).
pub const SIGNED_OUT: &str = "signed_out";

/// The journal's word for a sign-in kept in the keychain ([`Engine::keep_sign_in`]).
pub const SIGNED_IN: &str = "signed_in";

/// How many resource groups [`Engine::standing_jit`] reads permissions at, at most.
pub const STANDING_CHECK_GROUPS: usize = 5;

/// How long [`Engine::standing_jit`]'s answer holds for one account and the same resource
/// groups, on ARM's clock. A role assigned meanwhile shows within this time.
pub const STANDING_FRESH_MINUTES: i64 = 15;

/// The last answer of [`Engine::standing_jit`]: for whom (object id), at which groups (lower
/// case, sorted), when, and what it was.
type StandingAnswer = (String, Vec<String>, DateTime<Utc>, bool);

#[derive(Debug, Default)]
struct Standing(tokio::sync::Mutex<Option<StandingAnswer>>);

pub struct Engine {
    pub config: Config,
    pub session: Arc<Session>,
    pub arm: Arm,
    pub state_dir: PathBuf,
    pub journal: Journal,
    events: broadcast::Sender<EngineEvent>,
    /// Claims a refused activation asked for (MFA, an authentication context).
    step_up: std::sync::Mutex<Option<String>>,
    /// Whether the policies name the user as an approver, as last read: shared by the
    /// watcher and the tray's snapshot.
    pub approver: crate::approver::Finding,
    standing: Standing,
}

impl Engine {
    /// The engine on `config`, with its state directory created 0700 (or checked to be the
    /// user's own and private: RELIABILITY #24). There is no relative fallback: without a
    /// platform data directory, `storage.state_dir` must say where.
    pub fn new(config: Config) -> Result<Engine, crate::Error> {
        let state_dir = config
            .storage
            .state_dir
            .clone()
            .or_else(|| dirs::data_local_dir().map(|d| d.join("jumpgate")))
            .ok_or_else(|| {
                crate::Error::State(
                    "there is no data directory to keep Jumpgate's state in (is HOME set?); set storage.state_dir in the configuration".into(),
                )
            })?;
        crate::private::ensure_dir(&state_dir).map_err(|e| {
            crate::Error::State(match e.kind() {
                std::io::ErrorKind::PermissionDenied => e.to_string(),
                _ => format!(
                    "cannot use the state directory {}: {e}. Nothing was sent: make it writable by you, free some space, or set storage.state_dir, then try again.",
                    state_dir.display()
                ),
            })
        })?;
        // The journal opens its file with the default mode; created here first, it is 0600.
        drop(
            crate::private::open_append(&state_dir.join("audit.jsonl")).map_err(|e| {
                crate::Error::State(format!(
                    "cannot use the state directory {}: {e}. Nothing was sent: make it writable by you, free some space, or set storage.state_dir, then try again.",
                    state_dir.display()
                ))
            })?,
        );
        let fallback = config
            .storage
            .allow_file_fallback
            .then(|| state_dir.join("tokens.json"));
        let store = TokenStore::new(
            &config.storage.keyring_service,
            &config.azure.tenant_id,
            fallback,
        );
        let authority = Authority::from_config(&config);
        let session = Arc::new(
            Session::new(authority, store).with_renewal_lock(state_dir.join("signin.lock")),
        );
        let (events, _) = broadcast::channel(256);
        let notify = events.clone();
        let arm = Arm::new(config.arm(), session.clone()).with_notify(Arc::new(move |m: &str| {
            let _ = notify.send(EngineEvent::Progress {
                message: m.to_string(),
            });
        }));
        session.follow_clock(arm.clock.clone());
        Ok(Engine {
            journal: Journal::new(&state_dir),
            config,
            session,
            arm,
            state_dir,
            events,
            step_up: std::sync::Mutex::new(None),
            approver: crate::approver::Finding::default(),
            standing: Standing::default(),
        })
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    pub fn publish(&self, event: EngineEvent) {
        let _ = self.events.send(event);
    }

    /// Keeps a new sign-in: in the keychain, in place of what this process held in memory,
    /// and in the journal, so a watcher in another process (the tray's, after `jumpgate
    /// signin` in a terminal) reads it at once instead of going on with the one before.
    pub async fn keep_sign_in(&self, tokens: &crate::tokens::TokenSet) -> Result<(), crate::Error> {
        self.session.store().save(tokens).await?;
        self.session.forget_cached().await;
        let how = match tokens.source {
            crate::tokens::Source::Browser => "in the browser",
            crate::tokens::Source::DeviceCode => "with a device code",
            crate::tokens::Source::AzureCli => "through the Azure CLI",
        };
        self.audit(Record {
            who: tokens.account.upn.clone(),
            what: SIGNED_IN.into(),
            outcome: format!("signed in {how}"),
            ..Record::default()
        })
        .await;
        Ok(())
    }

    /// Signs out: forgets the stored sign-in, and writes that the person did so in the
    /// journal, so a watcher (in this process or another) tells nobody to sign in again.
    pub async fn sign_out(&self) -> Result<(), crate::Error> {
        let who = self
            .session
            .current()
            .await
            .ok()
            .flatten()
            .map(|t| t.account.upn);
        self.session.sign_out().await?;
        if let Some(who) = who {
            self.audit(Record {
                who,
                what: SIGNED_OUT.into(),
                outcome: "signed out by the user".into(),
                ..Record::default()
            })
            .await;
        }
        Ok(())
    }

    /// Records what happened in the audit journal, as the signed-in user unless `who` is set.
    /// A journal that cannot be written is reported, not fatal: the operation already happened.
    pub async fn audit(&self, mut record: Record) {
        if record.who.is_empty() {
            record.who = self
                .session
                .current()
                .await
                .ok()
                .flatten()
                .map(|t| t.account.upn)
                .unwrap_or_default();
        }
        if let Err(e) = self.journal.append(record, self.arm.clock.now()) {
            self.progress(&format!("could not write the audit journal: {e}"));
        }
    }

    fn progress(&self, message: &str) {
        self.publish(EngineEvent::Progress {
            message: message.to_string(),
        });
    }

    pub fn authority(&self) -> Authority {
        Authority::from_config(&self.config)
    }

    /// The signed-in account, or a clear "sign in first".
    pub async fn account(&self) -> Result<Account, Failure> {
        match self.session.current().await? {
            Some(t) => Ok(t.account),
            None => Err(Failure::new(
                Kind::SignIn,
                "sign_in_required",
                "You are not signed in: run jumpgate signin.",
            )),
        }
    }

    /// The configured subscription, or the first one the user can see (the admin commands
    /// work in one subscription).
    pub async fn subscription(&self) -> Result<String, Failure> {
        if let Some(s) = &self.config.azure.subscription_id {
            return Ok(s.clone());
        }
        let subs = arm::subscriptions(&self.arm).await?;
        subs.into_iter().next().ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "no_subscription",
                "You can see no Azure subscription: ask for access, or set azure.subscription_id.",
            )
        })
    }

    /// The subscriptions to look for jump boxes in: the configured one; otherwise every one
    /// the user can see, and every one holding a role they are eligible for or hold, since a
    /// requester sees no subscription before a role is active.
    pub async fn subscriptions(&self) -> Result<Vec<String>, Failure> {
        if let Some(s) = &self.config.azure.subscription_id {
            return Ok(vec![s.clone()]);
        }
        let (visible, eligible, active) = tokio::join!(
            self.visible_subscriptions(),
            arm::eligible_roles(&self.arm),
            arm::active_roles(&self.arm),
        );
        Ok(self.subscriptions_of(visible?, &eligible?, &active?))
    }

    /// The subscriptions the user can see: the configured one, or ARM's list.
    pub async fn visible_subscriptions(&self) -> Result<Vec<String>, Failure> {
        match &self.config.azure.subscription_id {
            Some(s) => Ok(vec![s.clone()]),
            None => Ok(arm::subscriptions(&self.arm).await?),
        }
    }

    /// [`Engine::subscriptions`] from reads made already: the visible subscriptions, and the
    /// user's eligibilities and roles (the tray's snapshot reads them for itself anyway).
    pub fn subscriptions_of(
        &self,
        visible: Vec<String>,
        eligible: &[arm::Eligible],
        active: &[arm::Active],
    ) -> Vec<String> {
        if let Some(s) = &self.config.azure.subscription_id {
            return vec![s.clone()];
        }
        let scopes = eligible
            .iter()
            .map(|e| e.scope.as_str())
            .chain(active.iter().map(|a| a.scope.as_str()));
        let mut subs = visible;
        for scope in scopes {
            if let Some(sub) = policy::subscription_of(scope) {
                if !subs.iter().any(|s| s.eq_ignore_ascii_case(sub)) {
                    subs.push(sub.to_string());
                }
            }
        }
        subs
    }

    /// Every VM with a JIT policy the user can read, across [`Engine::subscriptions`]. A
    /// subscription whose policies the user may not read (yet) is skipped, not an error.
    pub async fn targets(&self) -> Result<Vec<Target>, Failure> {
        let subs = self.subscriptions().await?;
        self.targets_in(&subs).await
    }

    /// Every VM with a JIT policy the user can read in these subscriptions; one the user may
    /// not read (yet) is skipped.
    pub async fn targets_in(&self, subs: &[String]) -> Result<Vec<Target>, Failure> {
        let mut all = Vec::new();
        for sub in subs {
            match arm::targets(&self.arm, sub).await {
                Ok(found) => all.extend(found),
                Err(e) if is_refusal(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(all)
    }

    /// Whether the user could open a port on one of `targets` without a PIM role: ARM's
    /// permissions at their resource groups (the first [`STANDING_CHECK_GROUPS`] distinct
    /// ones, read at once) grant JIT initiate already, as an Owner's do. A group the user may
    /// not read answers no. The answer is kept for [`STANDING_FRESH_MINUTES`] for the same
    /// account `oid` and groups, so a snapshot does not read them again; a failed read is
    /// not kept.
    pub async fn standing_jit(&self, oid: &str, targets: &[Target]) -> Result<bool, Failure> {
        let mut groups: Vec<&str> = Vec::new();
        for t in targets {
            let rg = arm::resource_group_of(&t.vm_id);
            if !groups.iter().any(|g| g.eq_ignore_ascii_case(rg)) {
                groups.push(rg);
            }
        }
        groups.truncate(STANDING_CHECK_GROUPS);
        let mut key: Vec<String> = groups.iter().map(|g| g.to_ascii_lowercase()).collect();
        key.sort();
        // One read at a time: whoever asks meanwhile waits for its answer.
        let mut last = self.standing.0.lock().await;
        let now = self.arm.clock.now();
        if let Some((who, at_groups, at, open)) = last.as_ref() {
            if who.eq_ignore_ascii_case(oid)
                && *at_groups == key
                && now >= *at
                && now - *at < Duration::minutes(STANDING_FRESH_MINUTES)
            {
                return Ok(*open);
            }
        }
        let reads =
            futures::future::join_all(groups.iter().map(|rg| arm::permissions(&self.arm, rg)))
                .await;
        let mut open = false;
        let mut failed = None;
        for read in reads {
            match read {
                Ok(perms) if policy::permits(&perms, JIT_INITIATE) => open = true,
                Ok(_) => {}
                Err(e) if is_refusal(&e) => {}
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        // One group that grants it is enough, whatever another's read did.
        if let (false, Some(e)) = (open, failed) {
            return Err(e.into());
        }
        *last = Some((oid.to_string(), key, now, open));
        Ok(open)
    }

    /// The VM's JIT target, named by resource id or by name. A name that two VMs share is
    /// refused with both ids, so no port is ever opened on a VM the user did not pick. A
    /// resource id whose policy the user may not read yet answers [`Located::Unreadable`].
    pub async fn locate(&self, vm: &str) -> Result<Located, Failure> {
        if vm.starts_with('/') {
            let id = policy::vm_resource_id(vm).ok_or_else(|| {
                Failure::usage(format!(
                    "'{vm}' is not a VM resource id: it looks like /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>"
                ))
            })?;
            let sub = policy::subscription_of(id).unwrap_or_default();
            return match arm::targets(&self.arm, sub).await {
                Ok(found) => found
                    .into_iter()
                    .find(|t| t.vm_id.eq_ignore_ascii_case(id))
                    .map(Located::Target)
                    .ok_or_else(|| {
                        Failure::new(
                            Kind::NotFound,
                            "no_target",
                            format!(
                                "No JIT policy covers {id}: ask an admin to enable JIT for it."
                            ),
                        )
                    }),
                Err(e) if is_refusal(&e) => Ok(Located::Unreadable {
                    vm_id: id.to_string(),
                }),
                Err(e) => Err(e.into()),
            };
        }
        let all = self.targets().await?;
        let matches: Vec<&Target> = all
            .iter()
            .filter(|t| t.vm.eq_ignore_ascii_case(vm))
            .collect();
        match matches.as_slice() {
            [one] => Ok(Located::Target((*one).clone())),
            [] => {
                let mut names: Vec<&str> = all.iter().map(|t| t.vm.as_str()).collect();
                names.dedup();
                Err(Failure::new(
                    Kind::NotFound,
                    "no_target",
                    format!(
                        "No JIT policy you can read covers a VM named '{vm}'. Known: {}. Before a role is active you may be able to read none: name the VM by its resource id (/subscriptions/…/virtualMachines/{vm}).",
                        if names.is_empty() { "none".into() } else { names.join(", ") }
                    ),
                ))
            }
            several => Err(Failure::usage(format!(
                "{} VMs are named '{vm}'; name the one you mean by its resource id: {}",
                several.len(),
                several
                    .iter()
                    .map(|t| t.vm_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// [`Engine::locate`] for a VM whose policy must be readable now.
    pub async fn find_target(&self, vm: &str) -> Result<Target, Failure> {
        match self.locate(vm).await? {
            Located::Target(t) => Ok(t),
            Located::Unreadable { vm_id } => Err(Failure::new(
                Kind::Denied,
                "policy_unreadable",
                format!("You may not read the JIT policy of {vm_id} yet: connect activates the role that allows it, or activate it with jumpgate activate."),
            )),
        }
    }

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

    fn remember_step_up(&self, claims: &str) {
        *self.step_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(claims.to_string());
    }

    /// The claims the last refused activation asked for, which the next interactive sign-in
    /// should carry. Taking them clears them.
    pub fn take_step_up(&self) -> Option<String> {
        self.step_up
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
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

    /// A role's definition, read at the scope the user is eligible at: a user who can read only
    /// a resource group cannot read definitions at the subscription.
    pub async fn role_definition(&self, e: &Eligible) -> Result<serde_json::Value, Failure> {
        Ok(self
            .arm
            .get(&format!(
                "{}/providers/Microsoft.Authorization/roleDefinitions/{}?api-version=2022-04-01",
                e.scope,
                arm::leaf(&e.role_definition_id)
            ))
            .await?)
    }

    /// An action the role grants that we can test for: its first one without a wildcard.
    pub async fn probe_action(&self, e: &Eligible) -> Option<String> {
        let v = self.role_definition(e).await.ok()?;
        v["properties"]["permissions"][0]["actions"]
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str())
            .find(|a| !a.contains('*'))
            .map(str::to_string)
    }

    /// Where to connect for a port: the firewall's mapped port when the VM is behind Azure
    /// Firewall, else the VM's public IP.
    pub async fn endpoint(&self, target: &Target, port: u16) -> Result<Endpoint, Failure> {
        if let (Some(fw), Some(mapped)) = (
            &target.firewall_ip,
            arm::latest_grant(target, port).and_then(|g| g.mapped_port),
        ) {
            return Ok(Endpoint {
                host: fw.clone(),
                port: mapped,
            });
        }
        match arm::public_address(&self.arm, &target.vm_id).await? {
            Some(host) => Ok(Endpoint { host, port }),
            None => Err(Failure::new(
                Kind::NotFound,
                "no_address",
                format!("{} has no public IP address to connect to.", target.vm),
            )),
        }
    }

    /// Opens a port for `source` until `now + duration` (ARM's clock) and confirms the rule is
    /// `Initiated` in the policy's history.
    pub async fn open_port(
        &self,
        target: &Target,
        port: u16,
        duration: Duration,
        source: &str,
        justification: &str,
        what: &str,
    ) -> Result<(Target, arm::Grant), Failure> {
        policy::check_jit(&target.ports, port, duration, source)
            .map_err(|v| Failure::new(Kind::Policy, v.rule, format!("Not sent: {}.", v.message)))?;
        let sent_at = self.arm.clock.now();
        let end = sent_at + duration;
        let ours = |t: &Target| {
            arm::latest_grant(t, port).filter(|g| {
                g.start.is_some_and(|s| s >= sent_at - Duration::seconds(5)) && g.source == source
            })
        };
        if let Err(e) = arm::initiate(&self.arm, target, port, end, source, justification).await {
            if !matches!(e, crate::Error::Unreachable { .. }) {
                return Err(e.into());
            }
            // Initiate is not idempotent: after a lost answer, read the history first, and send
            // again only when the request never arrived.
            self.progress("the answer to the JIT request was lost; checking whether it arrived");
            let fresh = arm::refresh_target(&self.arm, target).await?;
            if ours(&fresh).is_none() {
                self.progress("it did not arrive; sending it again");
                arm::initiate(&self.arm, target, port, end, source, justification).await?;
            }
        }
        self.confirm_rule(target, port, source, sent_at, duration, justification, what)
            .await
    }

    /// Waits until the JIT request for `source` sent at `sent_at` is in force and records it.
    /// JIT answers at once (202) and applies the rule to the network a little later: the
    /// request shows `Initiating` until then. The wait is on ARM's clock, within a budget.
    #[allow(clippy::too_many_arguments)]
    async fn confirm_rule(
        &self,
        target: &Target,
        port: u16,
        source: &str,
        sent_at: DateTime<Utc>,
        duration: Duration,
        justification: &str,
        what: &str,
    ) -> Result<(Target, arm::Grant), Failure> {
        let ours = |t: &Target| {
            arm::latest_grant(t, port).filter(|g| {
                g.start.is_some_and(|s| s >= sent_at - Duration::seconds(5)) && g.source == source
            })
        };
        let mut announced = String::new();
        loop {
            let fresh = arm::refresh_target(&self.arm, target).await?;
            let mine = ours(&fresh);
            if let Some(g) = mine.clone().filter(|g| g.status == "Initiated") {
                self.audit(Record {
                    what: what.into(),
                    vm: Some(fresh.vm_id.clone()),
                    port: Some(port),
                    source_ip: Some(g.source.clone()),
                    duration: Some(to_iso(duration)),
                    justification: Some(justification.to_string()),
                    outcome: g.status.clone(),
                    ..Record::default()
                })
                .await;
                return Ok((fresh, g));
            }
            let status = mine.map(|g| g.status).unwrap_or_default();
            if let phase @ ("Revoked" | "Failed") = status.as_str() {
                return Err(Failure::new(
                    Kind::Other,
                    "jit_not_applied",
                    format!("JIT did not apply the rule ({phase}): try again, or check jumpgate targets."),
                ));
            }
            if status != announced {
                self.progress(&if status.is_empty() {
                    "waiting for JIT to record the request".to_string()
                } else {
                    format!("JIT is applying the rule ({status})")
                });
                announced = status;
            }
            if self.arm.clock.now() - sent_at > Duration::seconds(JIT_APPLY_BUDGET_SECS) {
                return Err(Failure::timeout(format!("JIT accepted the request but the rule was not in force after {JIT_APPLY_BUDGET_SECS}s: check jumpgate targets, and try again.")));
            }
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        }
    }

    /// When the user's own request for this port and source is already in force or being
    /// applied, with about the time asked for left, its start time: it came from an earlier
    /// run (stopped before it could confirm), and sending another would duplicate it.
    async fn reusable_grant(
        &self,
        target: &Target,
        port: u16,
        source: &str,
        me: &str,
        duration: Duration,
    ) -> Result<Option<DateTime<Utc>>, Failure> {
        let fresh = arm::refresh_target(&self.arm, target).await?;
        let now = self.arm.clock.now();
        Ok(arm::latest_grant(&fresh, port)
            .filter(|g| {
                g.source == source
                    && g.requestor.eq_ignore_ascii_case(me)
                    && matches!(g.status.as_str(), "Initiated" | "Initiating")
                    && g.end
                        .is_some_and(|end| end >= now + duration - Duration::minutes(2))
            })
            .and_then(|g| g.start))
    }

    /// The source to ask JIT for on a VM port: the public IP (`auto`: detected, agreed by two
    /// echo services; or as given), or the allowed range that holds it when the policy lists
    /// only ranges (JIT refuses a single address inside one). Said when it is a range.
    pub async fn source_for(
        &self,
        target: &Target,
        port: u16,
        ip: &str,
    ) -> Result<policy::SourceChoice, Failure> {
        let address = if ip == "auto" {
            let d = self.detect_ip().await?;
            self.progress(&format!(
                "public IP {} (agreed: {})",
                d.ip,
                d.agreed.join(", ")
            ));
            d.ip
        } else {
            jumpgate_core::ip::parse_public_ipv4(ip, self.config.network.allow_loopback_ip)
                .map_err(|e| Failure::usage(e.to_string()))?
        };
        let rule = target
            .ports
            .iter()
            .find(|r| r.number == port)
            .ok_or_else(|| {
                Failure::new(
                    Kind::Policy,
                    "JitPort",
                    format!(
                        "Not sent: port {port} is not in the JIT policy of {}.",
                        target.vm
                    ),
                )
            })?;
        let chosen = policy::choose_source(rule, address)
            .map_err(|v| Failure::new(Kind::Policy, v.rule, format!("Not sent: {}.", v.message)))?;
        if chosen.whole_range {
            self.progress(&format!(
                "your address {address} lies in the allowed range {}; JIT accepts only the whole range, so the request asks for it",
                chosen.prefix
            ));
        }
        Ok(chosen)
    }

    pub async fn detect_ip(&self) -> Result<crate::ip::Detected, Failure> {
        Ok(crate::ip::detect(
            &self.config.network.ip_echo_urls,
            self.config.network.allow_loopback_ip,
        )
        .await?)
    }

    /// The role to activate for JIT on a VM (RELIABILITY #28): an eligibility whose scope
    /// contains the VM and whose role grants JIT initiate with the fewest other rights. A
    /// role that reaches JIT only through a wildcard (Contributor, Owner) is chosen only when
    /// nothing narrower exists, and then only when `allow_broad` says the user agreed. A role
    /// definition that cannot be read is skipped, not fatal.
    pub async fn jit_role_for(&self, vm_id: &str, allow_broad: bool) -> Result<Eligible, Failure> {
        let mut ranked: Vec<(policy::Breadth, usize, Eligible)> = Vec::new();
        let mut unreadable: Vec<String> = Vec::new();
        for e in arm::eligible_roles(&self.arm).await? {
            if !policy::scope_contains(&e.scope, vm_id) {
                continue;
            }
            let perms = match self.role_definition(&e).await {
                Ok(v) => v["properties"]["permissions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                Err(_) => {
                    unreadable.push(format!("{} at {}", e.role, e.scope));
                    continue;
                }
            };
            if let Some(b) = policy::breadth(&perms, JIT_INITIATE) {
                // Among equals, the narrower scope.
                let depth = usize::MAX - e.scope.matches('/').count();
                ranked.push((b, depth, e));
            }
        }
        ranked.sort_by_key(|a| (a.0, a.1));
        let Some((breadth, _, best)) = ranked.into_iter().next() else {
            return Err(Failure::new(
                Kind::Denied,
                "no_jit_role",
                format!(
                    "No PIM role you are eligible for at a scope holding {vm_id} grants JIT access: ask your admin for the JIT requester role there.{}",
                    if unreadable.is_empty() {
                        String::new()
                    } else {
                        format!(" (Could not read: {}.)", unreadable.join("; "))
                    }
                ),
            ));
        };
        if breadth.wildcard && !allow_broad {
            return Err(Failure::new(
                Kind::Policy,
                "broad_role",
                format!(
                    "The only role you are eligible for that opens JIT on {} is {} at {}, which grants much more than JIT (it reaches it through a wildcard). Confirm with --allow-broad-role to activate it, or ask your admin for the JIT requester role.",
                    arm::leaf(vm_id),
                    best.role,
                    best.scope
                ),
            ));
        }
        Ok(best)
    }

    /// The eligible role whose definition grants JIT initiate, for a user who has not named a
    /// VM (doctor with no VM): the narrowest, wherever it applies.
    pub async fn jit_role(&self) -> Result<Eligible, Failure> {
        let mut best: Option<(policy::Breadth, Eligible)> = None;
        for e in arm::eligible_roles(&self.arm).await? {
            let Ok(v) = self.role_definition(&e).await else {
                continue;
            };
            let perms = v["properties"]["permissions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(b) = policy::breadth(&perms, JIT_INITIATE) {
                if best.as_ref().is_none_or(|(current, _)| b < *current) {
                    best = Some((b, e));
                }
            }
        }
        best.map(|(_, e)| e).ok_or_else(|| Failure::new(Kind::Denied, "no_jit_role", "You cannot open JIT access and no PIM role you are eligible for grants it: ask your admin for the JIT requester role."))
    }

    /// The pre-flight check of an activation against its policy and the organisation's list of
    /// refused justifications, as a failure that names every broken rule.
    fn check_activation(
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

    /// Renews open access to a VM port before it expires: a new JIT request for the same port
    /// and source, which revokes the old rule (`NewerRequestInitiated`).
    pub async fn extend_port(
        &self,
        vm: &str,
        port: Option<u16>,
        duration: Duration,
        justification: &str,
    ) -> Result<(Target, arm::Grant), Failure> {
        let target = self.find_target(vm).await?;
        let now = self.arm.clock.now();
        let account = self.account().await?;
        let open: Vec<arm::Grant> = open_grants(&target, now)
            .into_iter()
            .filter(|g| g.requestor.eq_ignore_ascii_case(&account.upn))
            .collect();
        let grant = match port {
            Some(p) => open.into_iter().find(|g| g.port == p),
            None => open.into_iter().next(),
        }
        .ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "nothing_open",
                format!(
                    "You have no open access to {} to extend: use jumpgate open or connect.",
                    target.vm
                ),
            )
        })?;
        self.open_port(
            &target,
            grant.port,
            duration,
            &grant.source,
            justification,
            "port_extended",
        )
        .await
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

    /// Starts the client for a connected port (SSH for 22, in this terminal or in a terminal
    /// window of its own; RDP otherwise), tells the event channel and the journal, and adds
    /// the step to `connected`.
    pub async fn launch_client(
        &self,
        connected: &mut Connected,
        user: Option<&str>,
        ssh_in_a_window: bool,
    ) -> Result<(), Failure> {
        let (config, ep) = (&self.config.launch, &connected.endpoint);
        let launched = match (connected.port, ssh_in_a_window) {
            (22, false) => crate::launch::ssh(config, ep, user),
            (22, true) => crate::launch::ssh_in_terminal(config, ep, user),
            _ => crate::launch::rdp(config, ep, user),
        };
        let program = launched.map_err(|m| {
            Failure::new(
                Kind::Other,
                "launch",
                format!(
                    "The port is open and answers at {}:{}, but {m}.",
                    ep.host, ep.port
                ),
            )
        })?;
        let at = Utc::now();
        self.publish(EngineEvent::Step {
            step: Step::Launch,
            detail: program.clone(),
            at,
            skips: Vec::new(),
        });
        self.audit(Record {
            what: "client_launched".into(),
            vm: Some(connected.vm_id.clone()),
            port: Some(connected.port),
            outcome: program.clone(),
            ..Record::default()
        })
        .await;
        connected.steps.push(StepRecord {
            step: Step::Launch,
            at,
            detail: program,
        });
        Ok(())
    }

    /// A request on an activation in force (`SelfExtend`, `SelfDeactivate`), to a new GUID.
    async fn change_activation(
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
    async fn active_role(&self, role: &str) -> Result<Option<arm::Active>, Failure> {
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

    /// The connect chain, up to the port being reachable: the JIT role if it is needed (with
    /// approval and effect), the public IP, the port, and a TCP probe. Each step is published
    /// as it completes. Launching the client is the caller's.
    pub async fn connect(&self, req: &ConnectRequest) -> Result<Connected, Failure> {
        // The VM's policy, when it can be read already: port and duration are checked against
        // it before anything is sent. A requester with no standing role reads it once the
        // role is in effect, and the same checks run then, still before the port is asked for.
        let (vm_id, mut known) = match self.locate(&req.vm).await? {
            Located::Target(t) => (t.vm_id.clone(), Some(t)),
            Located::Unreadable { vm_id } => {
                self.progress(&format!(
                    "the JIT policy of {vm_id} cannot be read before your role is active; it is checked then"
                ));
                (vm_id, None)
            }
        };
        let mut port = match &known {
            Some(t) => Some(preflight(t, req.port, req.duration)?),
            None => None,
        };
        let account = self.account().await?;
        let mut steps: Vec<StepRecord> = Vec::new();
        let record_skipping =
            |steps: &mut Vec<StepRecord>, step: Step, detail: String, skips: Vec<Step>| {
                let at = Utc::now();
                self.publish(EngineEvent::Step {
                    step,
                    detail: detail.clone(),
                    at,
                    skips,
                });
                steps.push(StepRecord { step, at, detail });
            };
        let record = |steps: &mut Vec<StepRecord>, step: Step, detail: String| {
            record_skipping(steps, step, detail, Vec::new())
        };
        let (mut machine, mut action) = Connect::start(Utc::now(), req.timeout, false);
        let mut role: Option<Eligible> = None;
        let mut request: Option<Request> = None;
        let mut source = String::new();
        let mut endpoint: Option<Endpoint> = None;
        let mut waiting_since: Option<(Step, DateTime<Utc>)> = None;
        let mut last_note = Utc::now();
        loop {
            let (step, delay) = match &action {
                Action::Do(step) => (*step, None),
                Action::Wait(step, delay) => (*step, Some(*delay)),
                Action::Done => break,
                Action::Fail(ConnectFailure::TimedOut(step)) => {
                    return Err(Failure::timeout(format!(
                        "Gave up waiting at \"{}\" after {}.",
                        step.label(),
                        human(req.timeout)
                    )))
                }
                Action::Fail(other) => {
                    let (kind, text) = match other {
                        ConnectFailure::Denied => {
                            let reason = match &request {
                                Some(r) => self.denial_reason(r).await,
                                None => None,
                            };
                            self.audit(Record {
                                what: "role_denied".into(),
                                role: role.as_ref().map(|r| r.role.clone()),
                                outcome: reason.clone().unwrap_or_else(|| "Denied".into()),
                                ..Record::default()
                            })
                            .await;
                            (
                                Kind::Denied,
                                format!(
                                    "The role request was denied{}",
                                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                                ),
                            )
                        }
                        ConnectFailure::Canceled => {
                            (Kind::Denied, "The role request was cancelled.".to_string())
                        }
                        _ => (Kind::Other, "The role request failed.".to_string()),
                    };
                    if let Some(r) = &role {
                        pending::done(
                            &self.state_dir,
                            &account.oid,
                            &r.role_definition_id,
                            &r.scope,
                        );
                    }
                    return Err(Failure::new(kind, "connect_failed", text));
                }
            };
            if let Some(d) = delay {
                // Say what is being waited for, and for how long, every 15 s or so.
                let since = match waiting_since {
                    Some((s, t)) if s == step => t,
                    _ => waiting_since.insert((step, Utc::now())).1,
                };
                let waited = Utc::now() - since;
                if waited >= Duration::seconds(15)
                    && Utc::now() - last_note >= Duration::seconds(15)
                {
                    self.progress(&format!(
                        "waiting for {} ({} so far)",
                        waiting_for(step),
                        human(waited)
                    ));
                    last_note = Utc::now();
                }
                tokio::time::sleep(d.to_std().unwrap_or(StdDuration::from_secs(1))).await;
            } else {
                waiting_since = None;
            }
            let seen = match step {
                Step::CheckAccess => {
                    let perms = arm::permissions(&self.arm, arm::resource_group_of(&vm_id)).await?;
                    let ok = policy::permits(&perms, JIT_INITIATE);
                    // With access already, the role's steps are not needed: the event says
                    // so in its `skips`, so that nobody reads it from the detail's words.
                    let (detail, skips) = if ok {
                        ("JIT initiate is permitted", Step::ROLE.to_vec())
                    } else {
                        ("JIT initiate needs a PIM role", Vec::new())
                    };
                    record_skipping(&mut steps, step, detail.into(), skips);
                    Observation::Access(ok)
                }
                Step::RequestRole => {
                    let e = self.jit_role_for(&vm_id, req.allow_broad_role).await?;
                    let sent = self
                        .send_activation(
                            &e,
                            req.duration.max(Duration::minutes(5)),
                            &req.justification,
                            req.ticket.as_ref(),
                        )
                        .await;
                    let r = match sent {
                        Err(f) if f.explanation.code == "RoleAssignmentExists" => {
                            record(&mut steps, step, format!("{} is already active", e.role));
                            role = Some(e);
                            action = machine
                                .on(Utc::now(), Observation::RoleRequested("Provisioned".into()));
                            continue;
                        }
                        other => other?,
                    };
                    record(&mut steps, step, format!("{} ({})", e.role, r.status));
                    let status = r.status.clone();
                    role = Some(e);
                    request = Some(r);
                    Observation::RoleRequested(status)
                }
                Step::AwaitApproval => {
                    let (Some(e), Some(r)) = (&role, &request) else {
                        return Err(Failure::new(
                            Kind::Other,
                            "internal",
                            "no request to wait for",
                        ));
                    };
                    let fresh = arm::get_request(&self.arm, &e.scope, &r.name).await?;
                    if fresh.status != r.status {
                        self.publish(EngineEvent::RequestStatus {
                            request: fresh.name.clone(),
                            role: e.role.clone(),
                            status: fresh.status.clone(),
                        });
                    }
                    if RequestPhase::of(&fresh.status) == RequestPhase::Approved {
                        record(&mut steps, step, fresh.status.clone());
                        self.audit(Record {
                            what: "role_approved".into(),
                            role: Some(e.role.clone()),
                            outcome: fresh.status.clone(),
                            ..Record::default()
                        })
                        .await;
                        pending::done(
                            &self.state_dir,
                            &account.oid,
                            &e.role_definition_id,
                            &e.scope,
                        );
                    }
                    let status = fresh.status.clone();
                    request = Some(fresh);
                    Observation::RequestStatus(status)
                }
                Step::AwaitEffect => {
                    let perms = arm::permissions(&self.arm, arm::resource_group_of(&vm_id)).await?;
                    let ok = policy::permits(&perms, JIT_INITIATE);
                    if ok {
                        record(&mut steps, step, String::new());
                    }
                    Observation::InEffect(ok)
                }
                Step::DetectIp => {
                    let target = match &known {
                        Some(t) => t.clone(),
                        None => {
                            let t = self.find_target(&vm_id).await?;
                            port = Some(preflight(&t, req.port, req.duration)?);
                            known.insert(t).clone()
                        }
                    };
                    let p = port.unwrap_or_default();
                    let chosen = self.source_for(&target, p, "auto").await?;
                    source = chosen.prefix.clone();
                    record(&mut steps, step, source.clone());
                    Observation::IpDetected
                }
                Step::OpenPort => {
                    let (Some(current), Some(port)) = (&known, port) else {
                        return Err(Failure::new(Kind::Other, "internal", "no policy read"));
                    };
                    // A run that was stopped after sending left its request in the policy's
                    // history: it is the one to use, not a second request.
                    let (fresh, grant) = match self
                        .reusable_grant(current, port, &source, &account.upn, req.duration)
                        .await?
                    {
                        Some(earlier) => {
                            self.progress("an earlier run already asked JIT for this port and address; using that request");
                            self.confirm_rule(
                                current,
                                port,
                                &source,
                                earlier,
                                req.duration,
                                &req.justification,
                                "port_opened",
                            )
                            .await?
                        }
                        None => {
                            self.open_port(
                                current,
                                port,
                                req.duration,
                                &source,
                                &req.justification,
                                "port_opened",
                            )
                            .await?
                        }
                    };
                    endpoint = Some(self.endpoint(&fresh, port).await?);
                    known = Some(fresh);
                    let until = grant
                        .end
                        .map(|t| {
                            t.with_timezone(&chrono::Local)
                                .format("%H:%M:%S")
                                .to_string()
                        })
                        .unwrap_or_default();
                    record(
                        &mut steps,
                        step,
                        format!("{port} for {} until {until}", grant.source),
                    );
                    Observation::PortOpened
                }
                Step::AwaitReachable => {
                    let Some(e) = &endpoint else {
                        return Err(Failure::new(Kind::Other, "internal", "no endpoint"));
                    };
                    let ok = probe(e, port.unwrap_or_default()).await;
                    if ok {
                        record(&mut steps, step, format!("{}:{}", e.host, e.port));
                    }
                    Observation::Reachable(ok)
                }
                Step::Launch => break,
            };
            action = machine.on(Utc::now(), seen);
        }
        let (Some(endpoint), Some(target), Some(port)) = (endpoint, known, port) else {
            return Err(Failure::new(Kind::Other, "internal", "no endpoint"));
        };
        Ok(Connected {
            vm: target.vm,
            vm_id: target.vm_id,
            port,
            endpoint,
            steps,
        })
    }
}

/// Whether the service behind a JIT port answers: for RDP (3389) an X.224 Connection Confirm
/// to a Connection Request, for SSH (22) the server's banner, otherwise a TCP connection.
/// A connection that is accepted and then closed at once (a firewall or a gate refusing the
/// source) does not count.
pub async fn probe(ep: &Endpoint, service_port: u16) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = format!("{}:{}", ep.host, ep.port);
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        match service_port {
            22 => {
                let mut banner = [0u8; 4];
                s.read_exact(&mut banner).await.ok()?;
                (&banner == b"SSH-").then_some(())
            }
            3389 => {
                // TPKT + X.224 Connection Request asking for standard RDP security.
                const REQUEST: [u8; 19] =
                    [3, 0, 0, 19, 14, 0xE0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0];
                s.write_all(&REQUEST).await.ok()?;
                let mut answer = [0u8; 6];
                s.read_exact(&mut answer).await.ok()?;
                (answer[0] == 3 && answer[5] & 0xF0 == 0xD0).then_some(())
            }
            _ => Some(()),
        }
    };
    matches!(
        tokio::time::timeout(StdDuration::from_secs(3), attempt).await,
        Ok(Some(()))
    )
}

/// The port to open, checked with the duration against the VM's JIT policy before anything
/// is sent; the source is checked once it is known.
pub fn preflight(target: &Target, port: Option<u16>, duration: Duration) -> Result<u16, Failure> {
    let port = default_port(target, port)?;
    match policy::check_jit(&target.ports, port, duration, "*") {
        Err(v) if v.rule != "JitSource" => Err(Failure::new(
            Kind::Policy,
            v.rule,
            format!("Not sent: {}.", v.message),
        )),
        _ => Ok(port),
    }
}

pub fn default_port(target: &Target, port: Option<u16>) -> Result<u16, Failure> {
    match port {
        Some(p) => Ok(p),
        None => match target.ports.as_slice() {
            [only] => Ok(only.number),
            _ => target
                .ports
                .iter()
                .find(|p| p.number == 3389 || p.number == 22)
                .map(|p| p.number)
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "{} has several JIT ports; choose one with --port",
                        target.vm
                    ))
                }),
        },
    }
}

pub fn pick_role(
    eligible: Vec<Eligible>,
    role: &str,
    scope: Option<&str>,
) -> Result<Eligible, Failure> {
    let matches: Vec<Eligible> = eligible
        .into_iter()
        .filter(|e| {
            e.role.eq_ignore_ascii_case(role)
                || arm::leaf(&e.role_definition_id).eq_ignore_ascii_case(arm::leaf(role))
        })
        .filter(|e| scope.is_none_or(|s| e.scope.eq_ignore_ascii_case(s.trim_end_matches('/'))))
        .collect();
    match matches.len() {
        0 => Err(Failure::new(
            Kind::NotFound,
            "not_eligible",
            format!(
                "You are not eligible for a role named '{role}'{}: see jumpgate roles.",
                scope.map(|s| format!(" at {s}")).unwrap_or_default()
            ),
        )),
        1 => Ok(matches.into_iter().next().expect("one")),
        _ => Err(Failure::usage(format!(
            "You are eligible for '{role}' at several scopes; choose one with --scope: {}",
            matches
                .iter()
                .map(|m| m.scope.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub fn open_grants(target: &Target, now: DateTime<Utc>) -> Vec<arm::Grant> {
    target
        .ports
        .iter()
        .filter_map(|p| arm::latest_grant(target, p.number))
        .filter(|g| g.status == "Initiated" && g.end.is_some_and(|e| e > now))
        .collect()
}

/// What a waiting step waits for, in words.
fn waiting_for(step: Step) -> &'static str {
    match step {
        Step::AwaitApproval => "the approver's decision",
        Step::AwaitEffect => "the role to take effect",
        Step::AwaitReachable => "the port to become reachable",
        _ => "Azure",
    }
}
