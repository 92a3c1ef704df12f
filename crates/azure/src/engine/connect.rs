//! `connect`: the whole chain as the popover's timeline shows it, and launching the client.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use jumpgate_core::audit::Record;
use jumpgate_core::duration::human;
use jumpgate_core::events::EngineEvent;
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::phase::{
    Action, Connect, Failure as ConnectFailure, Observation, RequestPhase, Step,
};
use jumpgate_core::policy::{self, JIT_INITIATE};

use super::*;
use crate::arm::{self, Eligible, Request};
use crate::pending;

impl Engine {
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
                        .reusable_grant(current, port, &source, &account, req.duration)
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

/// What a waiting step waits for, in words.
pub(super) fn waiting_for(step: Step) -> &'static str {
    match step {
        Step::AwaitApproval => "the approver's decision",
        Step::AwaitEffect => "the role to take effect",
        Step::AwaitReachable => "the port to become reachable",
        _ => "Azure",
    }
}
