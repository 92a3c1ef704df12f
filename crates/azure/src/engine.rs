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

/// How a role was renewed, named by the PIM request type used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Renewal {
    /// The activation was extended in place.
    #[serde(rename = "SelfExtend")]
    SelfExtend,
    /// It had ended, so it was activated anew.
    #[serde(rename = "SelfActivate")]
    NewActivation,
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
}

/// Where `connect` got to: the port is open and reachable.
#[derive(Debug, Clone, Serialize)]
pub struct Connected {
    pub vm: String,
    pub port: u16,
    pub endpoint: Endpoint,
    pub steps: Vec<StepRecord>,
}

pub struct Engine {
    pub config: Config,
    pub session: Arc<Session>,
    pub arm: Arm,
    pub state_dir: PathBuf,
    pub journal: Journal,
    events: broadcast::Sender<EngineEvent>,
}

impl Engine {
    pub fn new(config: Config) -> Engine {
        let state_dir = config
            .storage
            .state_dir
            .clone()
            .or_else(|| dirs::data_local_dir().map(|d| d.join("jumpgate")))
            .unwrap_or_else(|| PathBuf::from(".jumpgate"));
        let fallback = config
            .storage
            .allow_file_fallback
            .then(|| state_dir.join("tokens.json"));
        let store = TokenStore::new(
            &config.storage.keyring_service,
            &config.azure.tenant_id,
            fallback,
        );
        let authority = Authority {
            base: config.authority(),
            client_id: config.azure.client_id.clone(),
        };
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
        Engine {
            journal: Journal::new(&state_dir),
            config,
            session,
            arm,
            state_dir,
            events,
        }
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    pub fn publish(&self, event: EngineEvent) {
        let _ = self.events.send(event);
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
        Authority {
            base: self.config.authority(),
            client_id: self.config.azure.client_id.clone(),
        }
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

    /// The configured subscription, or the first one the user can see.
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
                    "cannot record the request in {}: {err}",
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
        let v = self
            .arm
            .get(&format!(
                "/providers/Microsoft.Authorization/roleAssignmentApprovals/{id}/stages?api-version={}",
                arm::APPROVALS
            ))
            .await
            .ok()?;
        v["value"].as_array()?.iter().find_map(|s| {
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

    pub async fn find_target(&self, vm: &str) -> Result<Target, Failure> {
        let sub = self.subscription().await?;
        let list = arm::targets(&self.arm, &sub).await?;
        let names: Vec<String> = list.iter().map(|t| t.vm.clone()).collect();
        list.into_iter()
            .find(|t| t.vm.eq_ignore_ascii_case(vm) || t.vm_id.eq_ignore_ascii_case(vm))
            .ok_or_else(|| {
                Failure::new(
                    Kind::NotFound,
                    "no_target",
                    format!(
                        "No JIT policy covers a VM named '{vm}'. Known: {}.",
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    ),
                )
            })
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
        for attempt in 0..20 {
            let fresh = arm::refresh_target(&self.arm, target).await?;
            if let Some(g) = ours(&fresh).filter(|g| g.status == "Initiated") {
                self.audit(Record {
                    what: what.into(),
                    vm: Some(fresh.vm.clone()),
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
            if attempt == 0 {
                self.progress("waiting for JIT to confirm the rule");
            }
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        }
        Err(Failure::timeout("JIT accepted the request but the rule did not show as Initiated within 10s: check jumpgate targets."))
    }

    pub async fn source_ip(&self, ip: &str) -> Result<String, Failure> {
        if ip == "auto" {
            let d = self.detect_ip().await?;
            self.progress(&format!(
                "public IP {} (agreed: {})",
                d.ip,
                d.agreed.join(", ")
            ));
            return Ok(d.ip.to_string());
        }
        jumpgate_core::ip::parse_public_ipv4(ip, self.config.network.allow_loopback_ip)
            .map(|a| a.to_string())
            .map_err(|e| Failure::usage(e.to_string()))
    }

    pub async fn detect_ip(&self) -> Result<crate::ip::Detected, Failure> {
        Ok(crate::ip::detect(
            &self.config.network.ip_echo_urls,
            self.config.network.allow_loopback_ip,
        )
        .await?)
    }

    /// The eligible role whose definition grants JIT initiate.
    pub async fn jit_role(&self) -> Result<Eligible, Failure> {
        for e in arm::eligible_roles(&self.arm).await? {
            let v = self.role_definition(&e).await?;
            let perms = v["properties"]["permissions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if policy::permits(&perms, JIT_INITIATE) {
                return Ok(e);
            }
        }
        Err(Failure::new(Kind::Denied, "no_jit_role", "You cannot open JIT access and no PIM role you are eligible for grants it: ask your admin for the JIT requester role."))
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

    /// An approver's decision on a request waiting for them, recorded in the journal.
    pub async fn decide(
        &self,
        pending: &arm::Pending,
        approve: bool,
        justification: &str,
    ) -> Result<(), Failure> {
        arm::decide(&self.arm, pending, approve, justification).await?;
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

    /// Renews an active PIM role with `SelfExtend`, checked against the policy first.
    pub async fn extend_role(
        &self,
        role: &str,
        duration: Duration,
        justification: &str,
    ) -> Result<(Request, Renewal), Failure> {
        let account = self.account().await?;
        let Some(current) = self.active_role(role).await? else {
            // It has ended (or never started): nothing to extend, so a new activation, with
            // its approval if the policy asks for one.
            let e = pick_role(arm::eligible_roles(&self.arm).await?, role, None).map_err(|_| {
                Failure::new(
                    Kind::NotFound,
                    "not_active",
                    format!("{role} is not active for you and you are not eligible for it: see jumpgate roles."),
                )
            })?;
            let request = self
                .send_activation(&e, duration, justification, None)
                .await?;
            return Ok((request, Renewal::NewActivation));
        };
        let policy =
            arm::activation_policy(&self.arm, &current.scope, &current.role_definition_id).await?;
        self.check_activation(&policy, duration, justification, None)?;
        let iso = to_iso(duration);
        let request = self
            .change_activation(
                &account.oid,
                &current,
                "SelfExtend",
                Some(&iso),
                justification,
            )
            .await?;
        self.publish(EngineEvent::RequestStatus {
            request: request.name.clone(),
            role: current.role.clone(),
            status: request.status.clone(),
        });
        self.audit(Record {
            what: "role_extended".into(),
            role: Some(current.role.clone()),
            duration: Some(iso.clone()),
            justification: Some(justification.to_string()),
            outcome: request.status.clone(),
            ..Record::default()
        })
        .await;
        Ok((request, Renewal::SelfExtend))
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
        });
        self.audit(Record {
            what: "client_launched".into(),
            vm: Some(connected.vm.clone()),
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
        let target = self.find_target(&req.vm).await?;
        let port = default_port(&target, req.port)?;
        // Check port and duration against the JIT policy before anything is sent; the source
        // is checked once it is known.
        if let Err(v) = policy::check_jit(&target.ports, port, req.duration, "*") {
            if v.rule != "JitSource" {
                return Err(Failure::new(
                    Kind::Policy,
                    v.rule,
                    format!("Not sent: {}.", v.message),
                ));
            }
        }
        let account = self.account().await?;
        let mut steps: Vec<StepRecord> = Vec::new();
        let record = |steps: &mut Vec<StepRecord>, step: Step, detail: String| {
            let at = Utc::now();
            self.publish(EngineEvent::Step {
                step,
                detail: detail.clone(),
                at,
            });
            steps.push(StepRecord { step, at, detail });
        };
        let (mut machine, mut action) = Connect::start(Utc::now(), req.timeout, false);
        let mut role: Option<Eligible> = None;
        let mut request: Option<Request> = None;
        let mut source = String::new();
        let mut current = target.clone();
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
                    let perms = arm::permissions(&self.arm, &target.resource_group()).await?;
                    let ok = policy::permits(&perms, JIT_INITIATE);
                    record(
                        &mut steps,
                        step,
                        if ok {
                            "JIT initiate is permitted".into()
                        } else {
                            "JIT initiate needs a PIM role".into()
                        },
                    );
                    Observation::Access(ok)
                }
                Step::RequestRole => {
                    let e = self.jit_role().await?;
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
                    let perms = arm::permissions(&self.arm, &target.resource_group()).await?;
                    let ok = policy::permits(&perms, JIT_INITIATE);
                    if ok {
                        record(&mut steps, step, String::new());
                    }
                    Observation::InEffect(ok)
                }
                Step::DetectIp => {
                    source = self.source_ip("auto").await?;
                    record(&mut steps, step, source.clone());
                    Observation::IpDetected
                }
                Step::OpenPort => {
                    let (fresh, grant) = self
                        .open_port(
                            &current,
                            port,
                            req.duration,
                            &source,
                            &req.justification,
                            "port_opened",
                        )
                        .await?;
                    current = fresh;
                    endpoint = Some(self.endpoint(&current, port).await?);
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
                    let ok = probe(e, port).await;
                    if ok {
                        record(&mut steps, step, format!("{}:{}", e.host, e.port));
                    }
                    Observation::Reachable(ok)
                }
                Step::Launch => break,
            };
            action = machine.on(Utc::now(), seen);
        }
        let endpoint =
            endpoint.ok_or_else(|| Failure::new(Kind::Other, "internal", "no endpoint"))?;
        Ok(Connected {
            vm: current.vm,
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
