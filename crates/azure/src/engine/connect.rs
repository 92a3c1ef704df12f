//! `connect`: the whole chain as the popover's timeline shows it (access checked, role or
//! group requested, approved, in effect, public IP, port opened, reachable), and launching the
//! client. [`Engine::connect`] drives `core::phase::Connect`; each step is one method of
//! [`Run`], which holds what the steps learn on the way.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use jumpgate_core::audit::Record;
use jumpgate_core::duration::human;
use jumpgate_core::events::{Elevation, EngineEvent};
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::phase::{
    Action, Connect, Failure as ConnectFailure, Observation, RequestPhase, Step,
};
use jumpgate_core::policy::{self, JIT_INITIATE};

use super::*;
use crate::arm::{self, Request, Target};
use crate::pending;
use crate::tokens::Account;

/// How long after an activation takes effect a refused JIT initiate is put down to ARM's
/// caches (Azure: "If access was recently granted, please refresh your credentials") and
/// tried again with a new token, rather than explained as a refusal.
pub const FRESH_GRANT_WINDOW_SECS: i64 = 300;

impl Engine {
    /// The connect chain, up to the port being reachable. Each step is published as it
    /// completes; launching the client is the caller's.
    pub async fn connect(&self, req: &ConnectRequest) -> Result<Connected, Failure> {
        let mut run = Run::start(self, req).await?;
        let (mut machine, mut action) = Connect::start(Utc::now(), req.timeout, false);
        loop {
            let step = match action {
                Action::Done => break,
                Action::Fail(failure) => return Err(run.failed(failure).await),
                Action::Do(step) => {
                    run.waiting = None;
                    step
                }
                Action::Wait(step, delay) => {
                    run.wait(step, delay).await;
                    step
                }
            };
            let seen = match step {
                Step::CheckAccess => run.check_access().await?,
                Step::RequestRole => run.request_role().await?,
                Step::AwaitApproval => run.await_approval().await?,
                Step::AwaitEffect => run.await_effect().await?,
                Step::DetectIp => run.detect_ip().await?,
                Step::OpenPort => run.open_port().await?,
                Step::AwaitReachable => run.await_reachable().await?,
                Step::Launch => break,
            };
            action = machine.on(Utc::now(), seen);
        }
        run.connected()
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
}

/// One run of `connect`: what its steps have learned so far.
struct Run<'e> {
    engine: &'e Engine,
    req: &'e ConnectRequest,
    account: Account,
    vm_id: String,
    /// The VM's policy, once it can be read: port and duration are checked against it before
    /// anything is sent. A requester with no standing role reads it once the role is in
    /// effect, and the same checks run then, still before the port is asked for.
    target: Option<Target>,
    port: Option<u16>,
    way: Option<Way>,
    request: Option<Request>,
    /// When the activation passed RBAC: a refused initiate soon after is ARM's cache.
    effect_at: Option<DateTime<Utc>>,
    /// When a new token was last taken for a group membership.
    renewed: Option<DateTime<Utc>>,
    source: String,
    endpoint: Option<Endpoint>,
    steps: Vec<StepRecord>,
    /// The step being waited for, since when, and when progress was last said.
    waiting: Option<(Step, DateTime<Utc>)>,
    said: DateTime<Utc>,
}

impl<'e> Run<'e> {
    async fn start(engine: &'e Engine, req: &'e ConnectRequest) -> Result<Run<'e>, Failure> {
        let (vm_id, target) = match engine.locate(&req.vm).await? {
            Located::Target(t) => (t.vm_id.clone(), Some(t)),
            Located::Unreadable { vm_id } => {
                engine.progress(&format!(
                    "the JIT policy of {vm_id} cannot be read before your access is active; it is checked then"
                ));
                (vm_id, None)
            }
        };
        let port = match &target {
            Some(t) => Some(preflight(t, req.port, req.duration)?),
            None => None,
        };
        Ok(Run {
            account: engine.account().await?,
            engine,
            req,
            vm_id,
            target,
            port,
            way: None,
            request: None,
            effect_at: None,
            renewed: None,
            source: String::new(),
            endpoint: None,
            steps: Vec::new(),
            waiting: None,
            said: Utc::now(),
        })
    }

    /// Publishes a completed step and keeps it for the answer.
    fn record(&mut self, step: Step, detail: String, skips: Vec<Step>) {
        let at = Utc::now();
        self.engine.publish(EngineEvent::Step {
            step,
            detail: detail.clone(),
            at,
            skips,
        });
        self.steps.push(StepRecord { step, at, detail });
    }

    /// Sleeps before looking again, saying what is being waited for, and for how long, every
    /// 15 s or so.
    async fn wait(&mut self, step: Step, delay: Duration) {
        let since = match self.waiting {
            Some((s, t)) if s == step => t,
            _ => self.waiting.insert((step, Utc::now())).1,
        };
        let waited = Utc::now() - since;
        if waited >= Duration::seconds(15) && Utc::now() - self.said >= Duration::seconds(15) {
            self.engine.progress(&format!(
                "waiting for {} ({} so far)",
                waiting_for(step),
                human(waited)
            ));
            self.said = Utc::now();
        }
        tokio::time::sleep(delay.to_std().unwrap_or(StdDuration::from_secs(1))).await;
    }

    /// Whether JIT is open to the person already (an Owner, a role active from before): the
    /// role's steps are then skipped, which the event says in `skips`, so nobody reads it
    /// from the detail's words.
    async fn check_access(&mut self) -> Result<Observation, Failure> {
        let ok = self.permitted().await?;
        let (detail, skips) = if ok {
            ("JIT initiate is permitted", Step::ROLE.to_vec())
        } else {
            (
                "JIT initiate needs a PIM role or group membership",
                Vec::new(),
            )
        };
        self.record(Step::CheckAccess, detail.into(), skips);
        Ok(Observation::Access(ok))
    }

    async fn permitted(&self) -> Result<bool, Failure> {
        let perms = arm::permissions(&self.engine.arm, arm::resource_group_of(&self.vm_id)).await?;
        Ok(policy::permits(&perms, JIT_INITIATE))
    }

    /// Activates the way to the VM: the one chosen (`--via`), or the best (a role, or a group
    /// membership whose group holds one).
    async fn request_role(&mut self) -> Result<Observation, Failure> {
        let engine = self.engine;
        let way = engine
            .way_for(
                &self.vm_id,
                self.req.via.as_deref(),
                self.req.allow_broad_role,
            )
            .await?;
        if self.req.via.is_some() {
            engine.remember_way(&self.vm_id, &way);
        }
        let sent = engine
            .send_activation(
                &way.elevation,
                self.req.duration.max(Duration::minutes(5)),
                &self.req.justification,
                self.req.ticket.as_ref(),
            )
            .await;
        let request = match sent {
            Err(f) if f.explanation.code == "RoleAssignmentExists" => {
                self.record(
                    Step::RequestRole,
                    format!("{} is already active", way.elevation.role),
                    Vec::new(),
                );
                self.way = Some(way);
                return Ok(Observation::RoleRequested("Provisioned".into()));
            }
            other => other?,
        };
        let status = request.status.clone();
        self.record(
            Step::RequestRole,
            format!("{} ({status})", way.label()),
            Vec::new(),
        );
        self.request = Some(request);
        self.way = Some(way);
        Ok(Observation::RoleRequested(status))
    }

    async fn await_approval(&mut self) -> Result<Observation, Failure> {
        let (Some(way), Some(r)) = (&self.way, &self.request) else {
            return Err(internal("no request to wait for"));
        };
        let engine = self.engine;
        let role = way.elevation.role.clone();
        let fresh = engine.request(r.kind, &r.scope, &r.name).await?;
        if fresh.status != r.status {
            engine.publish(EngineEvent::RequestStatus {
                request: fresh.name.clone(),
                role: role.clone(),
                status: fresh.status.clone(),
            });
        }
        if RequestPhase::of(&fresh.status) == RequestPhase::Approved {
            self.record(Step::AwaitApproval, fresh.status.clone(), Vec::new());
            engine
                .audit(Record {
                    what: "role_approved".into(),
                    role: Some(role),
                    outcome: fresh.status.clone(),
                    ..Record::default()
                })
                .await;
            self.forget_pending();
        }
        let status = fresh.status.clone();
        self.request = Some(fresh);
        Ok(Observation::RequestStatus(status))
    }

    /// Whether the activation passes RBAC at the VM's resource group yet. A group
    /// membership reaches ARM only in a token issued after it: a new one is taken first, and
    /// every 20 s while it has not.
    async fn await_effect(&mut self) -> Result<Observation, Failure> {
        let membership = self
            .way
            .as_ref()
            .is_some_and(|w| w.elevation.kind == Elevation::Group);
        let now = Utc::now();
        if membership
            && self
                .renewed
                .is_none_or(|t| now - t >= Duration::seconds(20))
        {
            self.engine.renew_for_membership().await?;
            self.renewed = Some(now);
        }
        let ok = self.permitted().await?;
        if ok {
            self.effect_at = Some(self.engine.arm.clock.now());
            self.record(Step::AwaitEffect, String::new(), Vec::new());
        }
        Ok(Observation::InEffect(ok))
    }

    /// The public IP, once the VM's policy is known (read now if it could not be before):
    /// the address, or the allowed range that holds it.
    async fn detect_ip(&mut self) -> Result<Observation, Failure> {
        let target = match &self.target {
            Some(t) => t.clone(),
            None => {
                let t = self.engine.find_target(&self.vm_id).await?;
                self.port = Some(preflight(&t, self.req.port, self.req.duration)?);
                self.target.insert(t).clone()
            }
        };
        let port = self.port.unwrap_or_default();
        let chosen = self
            .engine
            .source_for(&target, port, "auto", self.req.allow_wide_source)
            .await?;
        self.source = chosen.prefix.clone();
        self.record(Step::DetectIp, self.source.clone(), Vec::new());
        Ok(Observation::IpDetected)
    }

    /// Opens the port for the source. A run stopped after sending left its request in the
    /// policy's history: that one is used, not a second.
    async fn open_port(&mut self) -> Result<Observation, Failure> {
        let (Some(current), Some(port)) = (&self.target, self.port) else {
            return Err(internal("no policy read"));
        };
        let engine = self.engine;
        let req = self.req;
        let earlier = engine
            .reusable_grant(current, port, &self.source, &self.account, req.duration)
            .await?;
        let (fresh, grant) = match earlier {
            Some(sent_at) => {
                engine.progress(
                    "an earlier run already asked JIT for this port and address; using that request",
                );
                engine
                    .confirm_rule(
                        current,
                        port,
                        &self.source,
                        sent_at,
                        req.duration,
                        &req.justification,
                        "port_opened",
                    )
                    .await?
            }
            None => {
                // Access this run did not wait for (`activate --wait` or `run` just before,
                // or a membership granted elsewhere) may be as new: its start says so.
                let fresh_until = match self.effect_at {
                    Some(t) => Some(t + Duration::seconds(FRESH_GRANT_WINDOW_SECS)),
                    None => engine.fresh_grant_until().await,
                };
                engine
                    .open_port_after_grant(
                        current,
                        port,
                        req.duration,
                        &self.source,
                        &req.justification,
                        fresh_until,
                    )
                    .await?
            }
        };
        self.endpoint = Some(engine.endpoint(&fresh, port).await?);
        self.target = Some(fresh);
        let until = grant
            .end
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        self.record(
            Step::OpenPort,
            format!("{port} for {} until {until}", grant.source),
            Vec::new(),
        );
        Ok(Observation::PortOpened)
    }

    async fn await_reachable(&mut self) -> Result<Observation, Failure> {
        let Some(e) = self.endpoint.clone() else {
            return Err(internal("no endpoint"));
        };
        let ok = probe(&e, self.port.unwrap_or_default()).await;
        if ok {
            self.record(
                Step::AwaitReachable,
                format!("{}:{}", e.host, e.port),
                Vec::new(),
            );
        }
        Ok(Observation::Reachable(ok))
    }

    /// The request's record on disk, once it reached a final state.
    fn forget_pending(&self) {
        if let Some(way) = &self.way {
            if way.elevation.kind == Elevation::Role {
                pending::done(
                    &self.engine.state_dir,
                    &self.account.oid,
                    &way.elevation.role_definition_id,
                    &way.elevation.scope,
                );
            }
        }
    }

    /// What a failed chain tells the person, with the journal told of a denial.
    async fn failed(&self, failure: ConnectFailure) -> Failure {
        let engine = self.engine;
        let (kind, text) = match failure {
            ConnectFailure::TimedOut(step) => {
                return Failure::timeout(format!(
                    "Gave up waiting at \"{}\" after {}.",
                    step.label(),
                    human(self.req.timeout)
                ))
            }
            ConnectFailure::Denied => {
                let reason = match &self.request {
                    Some(r) => engine.denial_reason(r).await,
                    None => None,
                };
                engine
                    .audit(Record {
                        what: "role_denied".into(),
                        role: self.way.as_ref().map(|w| w.elevation.role.clone()),
                        outcome: reason.clone().unwrap_or_else(|| "Denied".into()),
                        ..Record::default()
                    })
                    .await;
                (
                    Kind::Denied,
                    format!(
                        "The request was denied{}",
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    ),
                )
            }
            ConnectFailure::Canceled => (Kind::Denied, "The request was cancelled.".to_string()),
            _ => (Kind::Other, "The request failed.".to_string()),
        };
        self.forget_pending();
        Failure::new(kind, "connect_failed", text)
    }

    fn connected(self) -> Result<Connected, Failure> {
        let (Some(endpoint), Some(target), Some(port)) = (self.endpoint, self.target, self.port)
        else {
            return Err(internal("no endpoint"));
        };
        Ok(Connected {
            vm: target.vm,
            vm_id: target.vm_id,
            port,
            endpoint,
            steps: self.steps,
        })
    }
}

fn internal(what: &str) -> Failure {
    Failure::new(Kind::Other, "internal", what.to_string())
}

/// What a waiting step waits for, in words.
fn waiting_for(step: Step) -> &'static str {
    match step {
        Step::AwaitApproval => "the approver's decision",
        Step::AwaitEffect => "the access to take effect",
        Step::AwaitReachable => "the port to become reachable",
        _ => "Azure",
    }
}
