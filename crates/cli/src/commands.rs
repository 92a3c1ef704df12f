//! The commands. Each one loads what it needs, calls the engine, and shows the result.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use jumpgate_azure::arm::{self, Activation, Eligible, Request, Target};
use jumpgate_azure::signin::{self, BrowserOptions};
use jumpgate_core::duration::{human, parse as parse_duration, to_iso};
use jumpgate_core::explain::Kind;
use jumpgate_core::phase::{
    self, Action, Connect, Failure as ConnectFailure, Observation, RequestPhase, Step,
};
use jumpgate_core::policy::{self, JIT_INITIATE};
use serde::Serialize;
use serde_json::json;

use crate::context::Ctx;
use crate::launch::{self, Endpoint};
use crate::output::{progress, show, Failure, Outcome};
use crate::pending;
use crate::{ActivateArgs, Cli, Command, ConnectArgs, DecideArgs, OpenArgs, SigninArgs};

pub async fn run(cli: Cli) -> Outcome {
    let ctx = Ctx::load(cli.config.as_deref(), cli.json)?;
    match cli.command {
        Command::Signin(a) => signin(&ctx, a).await,
        Command::Signout => {
            ctx.session.sign_out().await?;
            show(ctx.json, &json!({"signed_out": true}), || {
                "Signed out: the stored sign-in is deleted.".into()
            });
            Ok(())
        }
        Command::Whoami => whoami(&ctx).await,
        Command::Ip => ip(&ctx).await,
        Command::Roles { active } => roles(&ctx, active).await,
        Command::Activate(a) => activate(&ctx, a).await,
        Command::Requests => requests(&ctx).await,
        Command::Cancel { id } => cancel(&ctx, &id).await,
        Command::Approvals => approvals(&ctx).await,
        Command::Approve(a) => decide(&ctx, a, true).await,
        Command::Deny(a) => decide(&ctx, a, false).await,
        Command::Targets => targets(&ctx).await,
        Command::Open(a) => open(&ctx, a).await,
        Command::Connect(a) => connect(&ctx, a).await,
        Command::Status => status(&ctx).await,
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::new(Kind::Other, "usage", message)
}

fn duration_arg(text: &str) -> Outcome<Duration> {
    parse_duration(text).map_err(|e| usage(e.to_string()))
}

async fn signin(ctx: &Ctx, a: SigninArgs) -> Outcome {
    let _ = a.browser;
    let tokens = if a.azure_cli {
        signin::azure_cli().await?
    } else if a.device_code {
        signin::device_code(&ctx.authority(), |uri, code, expires| {
            crate::output::line(&format!(
                "To sign in, open {uri} and enter the code {code} (valid for {expires})."
            ));
            progress("waiting for the sign-in on the other device");
        })
        .await?
    } else {
        let timeout = duration_arg(&a.timeout)?
            .to_std()
            .unwrap_or(StdDuration::from_secs(300));
        let no_open = a.no_open;
        let on_url: Box<dyn FnOnce(&str) + Send> = Box::new(move |url: &str| {
            if no_open || !open_browser(url) {
                crate::output::line(url);
                progress("open the URL above in your browser to sign in; waiting for the sign-in");
            } else {
                progress("your browser is open at the sign-in page; waiting for the sign-in");
            }
        });
        signin::browser(
            &ctx.authority(),
            BrowserOptions {
                login_hint: a.user.clone(),
                silent: false,
                on_url,
                timeout,
            },
        )
        .await?
    };
    ctx.session.store().save(&tokens).await?;
    let account = tokens.account.clone();
    show(
        ctx.json,
        &json!({"upn": account.upn, "name": account.name, "tenant_id": account.tid, "object_id": account.oid}),
        || format!("Signed in as {} ({}).", account.upn, account.name),
    );
    Ok(())
}

/// Opens a URL in the system browser. Only `https`, or `http` on loopback (the simulator).
fn open_browser(url: &str) -> bool {
    let allowed = url.starts_with("https://")
        || url.starts_with("http://127.0.0.1:")
        || url.starts_with("http://localhost:");
    if !allowed {
        return false;
    }
    let (program, args): (&str, Vec<&str>) = if cfg!(windows) {
        ("cmd", vec!["/c", "start", ""])
    } else if cfg!(target_os = "macos") {
        ("open", vec![])
    } else {
        ("xdg-open", vec![])
    };
    std::process::Command::new(program)
        .args(args)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

async fn whoami(ctx: &Ctx) -> Outcome {
    let Some(tokens) = ctx.session.current().await? else {
        return Err(Failure::new(
            Kind::SignIn,
            "sign_in_required",
            "You are not signed in: run jumpgate signin.",
        ));
    };
    let a = &tokens.account;
    let expires = DateTime::from_timestamp(tokens.expires_at, 0).unwrap_or_default();
    show(
        ctx.json,
        &json!({"upn": a.upn, "name": a.name, "tenant_id": a.tid, "object_id": a.oid, "source": tokens.source, "access_token_expires": expires, "can_refresh": tokens.refresh_token.is_some()}),
        || {
            format!(
                "{} ({})\ntenant {}\naccess token valid until {}",
                a.upn,
                a.name,
                a.tid,
                expires.with_timezone(&chrono::Local).format("%H:%M:%S")
            )
        },
    );
    Ok(())
}

async fn detect_ip(ctx: &Ctx) -> Outcome<jumpgate_azure::ip::Detected> {
    Ok(jumpgate_azure::ip::detect(
        &ctx.config.network.ip_echo_urls,
        ctx.config.network.allow_loopback_ip,
    )
    .await?)
}

async fn ip(ctx: &Ctx) -> Outcome {
    let d = detect_ip(ctx).await?;
    show(ctx.json, &d, || {
        let mut t = format!("{}\nagreed: {}", d.ip, d.agreed.join(", "));
        for (u, w) in &d.others {
            t += &format!("\nnot counted: {u} {w}");
        }
        t
    });
    Ok(())
}

#[derive(Serialize)]
struct RoleView {
    role: String,
    scope: String,
    scope_name: String,
    role_definition_id: String,
    policy: policy::ActivationPolicy,
    summary: String,
}

async fn roles(ctx: &Ctx, active: bool) -> Outcome {
    if active {
        let list = arm::active_roles(&ctx.arm).await?;
        let now = ctx.arm.clock.now();
        show(ctx.json, &list, || {
            list.iter()
                .map(|r| {
                    let left = r
                        .end
                        .map(|e| format!("{} left", human(e - now)))
                        .unwrap_or_else(|| "standing".into());
                    format!(
                        "{:<24} {:<10} {}  ({left})",
                        r.role, r.assignment_type, r.scope
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        return Ok(());
    }
    let eligible = arm::eligible_roles(&ctx.arm).await?;
    let mut views = Vec::new();
    for e in eligible {
        let policy = arm::activation_policy(&ctx.arm, &e.scope, &e.role_definition_id).await?;
        views.push(RoleView {
            summary: policy.summary(),
            role: e.role,
            scope: e.scope,
            scope_name: e.scope_name,
            role_definition_id: e.role_definition_id,
            policy,
        });
    }
    show(ctx.json, &views, || {
        if views.is_empty() {
            return "You are eligible for no PIM roles.".into();
        }
        views
            .iter()
            .map(|v| format!("{}  at {}\n  {}", v.role, v.scope, v.summary))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

fn pick_role(eligible: Vec<Eligible>, role: &str, scope: Option<&str>) -> Outcome<Eligible> {
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
        _ => Err(usage(format!(
            "You are eligible for '{role}' at several scopes; choose one with --scope: {}",
            matches
                .iter()
                .map(|m| m.scope.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn parse_ticket(ticket: Option<&str>) -> Outcome<Option<(String, String)>> {
    match ticket {
        None => Ok(None),
        Some(t) => match t.split_once(':') {
            Some((sys, num))
                if !sys.trim().is_empty() && !num.trim().is_empty() && t.len() <= 200 =>
            {
                Ok(Some((sys.trim().into(), num.trim().into())))
            }
            _ => Err(usage(format!(
                "--ticket takes SYSTEM:NUMBER, such as ServiceNow:INC0012345, not '{t}'"
            ))),
        },
    }
}

/// Sends (or re-sends, after a crash) an activation and returns the request as Azure has it.
async fn send_activation(
    ctx: &Ctx,
    e: &Eligible,
    duration: Duration,
    justification: &str,
    ticket: Option<&(String, String)>,
) -> Outcome<Request> {
    let account = ctx.account().await?;
    let policy = arm::activation_policy(&ctx.arm, &e.scope, &e.role_definition_id).await?;
    if let Err(violations) = policy::check_activation(
        &policy,
        duration,
        justification,
        ticket.map(|t| t.1.as_str()),
        &ctx.config.justification.refuse,
    ) {
        let text = violations
            .iter()
            .map(|v| v.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Failure::new(
            Kind::Policy,
            violations[0].rule,
            format!("Not sent: {text}."),
        ));
    }
    let (name, reused) = pending::name_for(
        &ctx.state_dir,
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
                ctx.state_dir.display()
            ),
        )
    })?;
    if reused {
        progress(&format!("resuming request {name} from an earlier run"));
        if let Ok(existing) = arm::get_request(&ctx.arm, &e.scope, &name).await {
            if !RequestPhase::of(&existing.status).is_final()
                || RequestPhase::of(&existing.status) == RequestPhase::Approved
            {
                return Ok(existing);
            }
            // That one ended (denied, cancelled): this is a new activation.
            pending::done(
                &ctx.state_dir,
                &account.oid,
                &e.role_definition_id,
                &e.scope,
            );
            return Box::pin(send_activation(ctx, e, duration, justification, ticket)).await;
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
    match arm::put_request(&ctx.arm, &activation).await {
        Ok(r) => Ok(r),
        // Our own earlier PUT got through before the answer was lost.
        Err(err) if err.arm_code() == Some("RoleAssignmentRequestExists") => {
            match arm::get_request(&ctx.arm, &e.scope, &name).await {
                Ok(r) => Ok(r),
                Err(_) => {
                    pending::done(
                        &ctx.state_dir,
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
                &ctx.state_dir,
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
async fn await_decision(
    ctx: &Ctx,
    e: &Eligible,
    mut request: Request,
    timeout: Duration,
) -> Outcome<Request> {
    let started = Utc::now();
    let mut last_status = request.status.clone();
    let mut last_note = Utc::now();
    loop {
        match RequestPhase::of(&request.status) {
            RequestPhase::Approved => return Ok(request),
            RequestPhase::Denied => {
                let reason = denial_reason(ctx, &request).await;
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
            progress(&format!(
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
        request = arm::get_request(&ctx.arm, &e.scope, &request.name).await?;
        if request.status != last_status {
            progress(&format!("request is now {}", request.status));
            last_status = request.status.clone();
        }
    }
}

async fn denial_reason(ctx: &Ctx, request: &Request) -> Option<String> {
    let id = request.approval_id.as_ref()?;
    let v = ctx
        .arm
        .get(&format!(
            "/providers/Microsoft.Authorization/roleAssignmentApprovals/{id}/stages?api-version={}",
            arm::APPROVALS
        ))
        .await
        .ok()?;
    v["value"].as_array()?.iter().find_map(|s| {
        let p = &s["properties"];
        (p["reviewResult"] == "Deny").then(|| {
            let who = p["reviewedBy"]["userPrincipalName"]
                .as_str()
                .unwrap_or("the approver");
            format!(
                "{} (by {who})",
                p["justification"].as_str().unwrap_or("no reason given")
            )
        })
    })
}

/// Waits until the role passes RBAC: the permissions ARM reports at its scope include an
/// action only it grants.
async fn await_effect(ctx: &Ctx, scope: &str, action: &str, timeout: Duration) -> Outcome {
    let started = Utc::now();
    loop {
        let perms = arm::permissions(&ctx.arm, scope).await?;
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
async fn role_definition(ctx: &Ctx, e: &Eligible) -> Outcome<serde_json::Value> {
    Ok(ctx
        .arm
        .get(&format!(
            "{}/providers/Microsoft.Authorization/roleDefinitions/{}?api-version=2022-04-01",
            e.scope,
            arm::leaf(&e.role_definition_id)
        ))
        .await?)
}

/// An action the role grants that we can test for: its first one without a wildcard.
async fn probe_action(ctx: &Ctx, e: &Eligible) -> Option<String> {
    let v = role_definition(ctx, e).await.ok()?;
    v["properties"]["permissions"][0]["actions"]
        .as_array()?
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| !a.contains('*'))
        .map(str::to_string)
}

async fn activate(ctx: &Ctx, a: ActivateArgs) -> Outcome {
    let duration = duration_arg(&a.duration)?;
    let ticket = parse_ticket(a.ticket.as_deref())?;
    let wait = a.wait.as_deref().map(duration_arg).transpose()?;
    let eligible = pick_role(
        arm::eligible_roles(&ctx.arm).await?,
        &a.role,
        a.scope.as_deref(),
    )?;
    let request =
        match send_activation(ctx, &eligible, duration, &a.justification, ticket.as_ref()).await {
            Err(f) if f.explanation.code == "RoleAssignmentExists" => {
                show(
                    ctx.json,
                    &json!({"role": eligible.role, "status": "AlreadyActive"}),
                    || format!("{} is already active.", eligible.role),
                );
                return Ok(());
            }
            other => other?,
        };
    progress(&format!(
        "requested {} at {} for {}: {}",
        eligible.role,
        eligible.scope_name,
        human(duration),
        request.status
    ));
    let account = ctx.account().await?;
    let request = match wait {
        None => request,
        Some(timeout) => {
            let outcome = await_decision(ctx, &eligible, request, timeout).await;
            if !outcome.as_ref().is_err_and(|f| f.timed_out) {
                pending::done(
                    &ctx.state_dir,
                    &account.oid,
                    &eligible.role_definition_id,
                    &eligible.scope,
                );
            }
            let request = outcome?;
            progress("approved; waiting for the role to take effect");
            if let Some(action) = probe_action(ctx, &eligible).await {
                await_effect(ctx, &eligible.scope, &action, timeout).await?;
            }
            progress(&format!("{} is active and in effect", eligible.role));
            request
        }
    };
    if RequestPhase::of(&request.status).is_final() {
        pending::done(
            &ctx.state_dir,
            &account.oid,
            &eligible.role_definition_id,
            &eligible.scope,
        );
    }
    show(ctx.json, &request, || {
        format!("{} {} ({})", request.role, request.status, request.name)
    });
    Ok(())
}

async fn requests(ctx: &Ctx) -> Outcome {
    let list = arm::list_requests(&ctx.arm, "asRequestor()").await?;
    show(ctx.json, &list, || {
        if list.is_empty() {
            return "You have no PIM requests.".into();
        }
        list.iter()
            .map(|r| {
                format!(
                    "{}  {:<16} {:<24} {}  {}",
                    r.name,
                    r.status,
                    r.role,
                    r.duration.clone().unwrap_or_default(),
                    r.justification.clone().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn cancel(ctx: &Ctx, id: &str) -> Outcome {
    let list = arm::list_requests(&ctx.arm, "asRequestor()").await?;
    let r = list
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(id))
        .ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "not_found",
                format!("You have no request {id}: see jumpgate requests."),
            )
        })?;
    arm::cancel_request(&ctx.arm, &r.scope, &r.name).await?;
    show(ctx.json, &json!({"canceled": r.name}), || {
        format!("Cancelled the request for {}.", r.role)
    });
    Ok(())
}

#[derive(Serialize)]
struct ApprovalView {
    id: String,
    approval_id: String,
    requester: String,
    role: String,
    scope: String,
    justification: Option<String>,
    duration: Option<String>,
    ticket: Option<String>,
    age_seconds: i64,
}

async fn approvals(ctx: &Ctx) -> Outcome {
    let now = ctx.arm.clock.now();
    let list = arm::approvals(&ctx.arm).await?;
    let views: Vec<ApprovalView> = list
        .iter()
        .map(|p| ApprovalView {
            id: p.request.name.clone(),
            approval_id: p.approval_id.clone(),
            requester: p.request.principal_name.clone(),
            role: p.request.role.clone(),
            scope: p.request.scope.clone(),
            justification: p.request.justification.clone(),
            duration: p.request.duration.clone(),
            ticket: p.request.ticket.clone(),
            age_seconds: p
                .request
                .created
                .map(|c| (now - c).num_seconds().max(0))
                .unwrap_or(0),
        })
        .collect();
    show(ctx.json, &views, || {
        if views.is_empty() {
            return "Nothing waits for your approval.".into();
        }
        views
            .iter()
            .map(|v| {
                format!(
                    "{}\n  {} asks for {} at {} for {}\n  justification: {}{}\n  waiting {}",
                    v.id,
                    v.requester,
                    v.role,
                    v.scope,
                    v.duration
                        .as_deref()
                        .map(|d| parse_duration(d)
                            .map(human)
                            .unwrap_or_else(|_| d.to_string()))
                        .unwrap_or_default(),
                    v.justification.as_deref().unwrap_or("(none)"),
                    v.ticket
                        .as_deref()
                        .map(|t| format!("\n  ticket: {t}"))
                        .unwrap_or_default(),
                    human(Duration::seconds(v.age_seconds))
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn decide(ctx: &Ctx, a: DecideArgs, approve: bool) -> Outcome {
    if a.justification.trim().is_empty() {
        return Err(usage(
            "PIM requires a justification for the decision: pass --justification",
        ));
    }
    let list = arm::approvals(&ctx.arm).await?;
    let pending = list
        .iter()
        .find(|p| {
            p.request.name.eq_ignore_ascii_case(&a.id) || p.approval_id.eq_ignore_ascii_case(&a.id)
        })
        .ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "not_found",
                format!(
                    "No request {} waits for your decision: see jumpgate approvals.",
                    a.id
                ),
            )
        })?;
    arm::decide(&ctx.arm, pending, approve, &a.justification).await?;
    let verb = if approve { "Approved" } else { "Denied" };
    show(
        ctx.json,
        &json!({"id": pending.request.name, "decision": if approve { "Approve" } else { "Deny" }}),
        || {
            format!(
                "{verb} {}'s request for {}.",
                pending.request.principal_name, pending.request.role
            )
        },
    );
    Ok(())
}

async fn find_target(ctx: &Ctx, vm: &str) -> Outcome<Target> {
    let sub = ctx.subscription().await?;
    let list = arm::targets(&ctx.arm, &sub).await?;
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
async fn endpoint(ctx: &Ctx, target: &Target, port: u16) -> Outcome<Endpoint> {
    if let (Some(fw), Some(mapped)) = (
        &target.firewall_ip,
        arm::latest_grant(target, port).and_then(|g| g.mapped_port),
    ) {
        return Ok(Endpoint {
            host: fw.clone(),
            port: mapped,
        });
    }
    match arm::public_address(&ctx.arm, &target.vm_id).await? {
        Some(host) => Ok(Endpoint { host, port }),
        None => Err(Failure::new(
            Kind::NotFound,
            "no_address",
            format!("{} has no public IP address to connect to.", target.vm),
        )),
    }
}

#[derive(Serialize)]
struct TargetView {
    vm: String,
    vm_id: String,
    address: Option<String>,
    firewall_ip: Option<String>,
    ports: Vec<policy::JitPortRule>,
    access: Vec<arm::Grant>,
}

fn open_grants(target: &Target, now: DateTime<Utc>) -> Vec<arm::Grant> {
    target
        .ports
        .iter()
        .filter_map(|p| arm::latest_grant(target, p.number))
        .filter(|g| g.status == "Initiated" && g.end.is_some_and(|e| e > now))
        .collect()
}

async fn targets(ctx: &Ctx) -> Outcome {
    let sub = ctx.subscription().await?;
    let now = ctx.arm.clock.now();
    let mut views = Vec::new();
    for t in arm::targets(&ctx.arm, &sub).await? {
        let address = arm::public_address(&ctx.arm, &t.vm_id).await.ok().flatten();
        views.push(TargetView {
            access: open_grants(&t, now),
            vm: t.vm,
            vm_id: t.vm_id,
            address,
            firewall_ip: t.firewall_ip,
            ports: t.ports,
        });
    }
    show(ctx.json, &views, || {
        views
            .iter()
            .map(|v| {
                let ports: Vec<String> = v
                    .ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{} (max {}, from {})",
                            p.number,
                            p.protocol,
                            human(p.max),
                            p.allowed_prefixes.join(",")
                        )
                    })
                    .collect();
                let access: Vec<String> = v
                    .access
                    .iter()
                    .map(|g| {
                        format!(
                            "{} open for {} until {}",
                            g.port,
                            g.source,
                            g.end
                                .map(|e| e
                                    .with_timezone(&chrono::Local)
                                    .format("%H:%M")
                                    .to_string())
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                format!(
                    "{}  {}\n  ports: {}\n  access: {}",
                    v.vm,
                    v.firewall_ip
                        .clone()
                        .map(|f| format!("via firewall {f}"))
                        .or(v.address.clone())
                        .unwrap_or_else(|| "no address".into()),
                    ports.join("; "),
                    if access.is_empty() {
                        "none".into()
                    } else {
                        access.join("; ")
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

fn default_port(target: &Target, port: Option<u16>) -> Outcome<u16> {
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
                    usage(format!(
                        "{} has several JIT ports; choose one with --port",
                        target.vm
                    ))
                }),
        },
    }
}

/// Opens a port for `source` until `now + duration` (ARM's clock) and confirms the rule is
/// `Initiated` in the policy's history.
async fn open_port(
    ctx: &Ctx,
    target: &Target,
    port: u16,
    duration: Duration,
    source: &str,
    justification: &str,
) -> Outcome<(Target, arm::Grant)> {
    policy::check_jit(&target.ports, port, duration, source)
        .map_err(|v| Failure::new(Kind::Policy, v.rule, format!("Not sent: {}.", v.message)))?;
    let sent_at = ctx.arm.clock.now();
    let end = sent_at + duration;
    let ours = |t: &Target| {
        arm::latest_grant(t, port).filter(|g| {
            g.start.is_some_and(|s| s >= sent_at - Duration::seconds(5)) && g.source == source
        })
    };
    if let Err(e) = arm::initiate(&ctx.arm, target, port, end, source, justification).await {
        if !matches!(e, jumpgate_azure::Error::Unreachable { .. }) {
            return Err(e.into());
        }
        // Initiate is not idempotent: after a lost answer, read the history first, and send
        // again only when the request never arrived.
        progress("the answer to the JIT request was lost; checking whether it arrived");
        let fresh = arm::refresh_target(&ctx.arm, target).await?;
        if ours(&fresh).is_none() {
            progress("it did not arrive; sending it again");
            arm::initiate(&ctx.arm, target, port, end, source, justification).await?;
        }
    }
    for attempt in 0..20 {
        let fresh = arm::refresh_target(&ctx.arm, target).await?;
        if let Some(g) = ours(&fresh).filter(|g| g.status == "Initiated") {
            return Ok((fresh, g));
        }
        if attempt == 0 {
            progress("waiting for JIT to confirm the rule");
        }
        tokio::time::sleep(StdDuration::from_millis(500)).await;
    }
    Err(Failure::timeout("JIT accepted the request but the rule did not show as Initiated within 10s: check jumpgate targets."))
}

async fn source_ip(ctx: &Ctx, ip: &str) -> Outcome<String> {
    if ip == "auto" {
        let d = detect_ip(ctx).await?;
        progress(&format!(
            "public IP {} (agreed: {})",
            d.ip,
            d.agreed.join(", ")
        ));
        return Ok(d.ip.to_string());
    }
    jumpgate_core::ip::parse_public_ipv4(ip, ctx.config.network.allow_loopback_ip)
        .map(|a| a.to_string())
        .map_err(|e| usage(e.to_string()))
}

async fn open(ctx: &Ctx, a: OpenArgs) -> Outcome {
    let duration = duration_arg(&a.duration)?;
    let target = find_target(ctx, &a.vm).await?;
    let port = default_port(&target, a.port)?;
    let source = source_ip(ctx, &a.ip).await?;
    let (fresh, grant) = open_port(ctx, &target, port, duration, &source, &a.justification).await?;
    let ep = endpoint(ctx, &fresh, port).await?;
    show(
        ctx.json,
        &json!({"vm": fresh.vm, "port": port, "source": grant.source, "end": grant.end, "connect_to": format!("{}:{}", ep.host, ep.port)}),
        || {
            format!(
                "Port {port} of {} is open for {} until {} — connect to {}:{}",
                fresh.vm,
                grant.source,
                grant
                    .end
                    .map(|e| e
                        .with_timezone(&chrono::Local)
                        .format("%H:%M:%S")
                        .to_string())
                    .unwrap_or_default(),
                ep.host,
                ep.port
            )
        },
    );
    Ok(())
}

/// The eligible role whose definition grants JIT initiate.
async fn jit_role(ctx: &Ctx) -> Outcome<Eligible> {
    for e in arm::eligible_roles(&ctx.arm).await? {
        let v = role_definition(ctx, &e).await?;
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

async fn probe(ep: &Endpoint) -> bool {
    let addr = format!("{}:{}", ep.host, ep.port);
    matches!(
        tokio::time::timeout(
            StdDuration::from_secs(2),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}

#[derive(Serialize)]
struct StepRecord {
    step: Step,
    at: DateTime<Utc>,
    detail: String,
}

async fn connect(ctx: &Ctx, a: ConnectArgs) -> Outcome {
    let profile = ctx
        .config
        .profiles
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(&a.vm))
        .cloned();
    let vm = profile
        .as_ref()
        .map(|p| p.vm.clone())
        .unwrap_or(a.vm.clone());
    let duration = duration_arg(
        a.duration
            .as_deref()
            .or(profile.as_ref().and_then(|p| p.duration.as_deref()))
            .unwrap_or("1h"),
    )?;
    let timeout = duration_arg(&a.timeout)?;
    let ticket = parse_ticket(a.ticket.as_deref())?;
    let user = profile.as_ref().and_then(|p| p.username.clone()).or(ctx
        .config
        .launch
        .username
        .clone());
    let target = find_target(ctx, &vm).await?;
    let port = default_port(&target, a.port.or(profile.as_ref().and_then(|p| p.port)))?;
    // Check the request against the JIT policy before anything is sent.
    let probe_source = "*";
    if let Err(v) = policy::check_jit(&target.ports, port, duration, probe_source).or_else(|v| {
        if v.rule == "JitSource" {
            Ok(target.ports[0].clone())
        } else {
            Err(v)
        }
    }) {
        return Err(Failure::new(
            Kind::Policy,
            v.rule,
            format!("Not sent: {}.", v.message),
        ));
    }
    let mut timeline: Vec<StepRecord> = Vec::new();
    let mut record = |step: Step, detail: String| {
        progress(&format!(
            "✓ {}{}",
            step.label(),
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        ));
        timeline.push(StepRecord {
            step,
            at: Utc::now(),
            detail,
        });
    };
    let (mut machine, mut action) = Connect::start(Utc::now(), timeout, !a.no_launch);
    let mut role: Option<Eligible> = None;
    let mut request: Option<Request> = None;
    let mut source = String::new();
    let mut current = target.clone();
    let mut ep: Option<Endpoint> = None;
    let account = ctx.account().await?;
    loop {
        let (step, delay) = match &action {
            Action::Do(step) => (*step, None),
            Action::Wait(step, delay) => (*step, Some(*delay)),
            Action::Done => break,
            Action::Fail(ConnectFailure::TimedOut(step)) => {
                return Err(Failure::timeout(format!(
                    "Gave up waiting at \"{}\" after {}.",
                    step.label(),
                    human(timeout)
                )))
            }
            Action::Fail(other) => {
                let (kind, text) = match other {
                    ConnectFailure::Denied => {
                        let reason = match &request {
                            Some(r) => denial_reason(ctx, r).await,
                            None => None,
                        };
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
                        &ctx.state_dir,
                        &account.oid,
                        &r.role_definition_id,
                        &r.scope,
                    );
                }
                return Err(Failure::new(kind, "connect_failed", text));
            }
        };
        if let Some(d) = delay {
            tokio::time::sleep(d.to_std().unwrap_or(StdDuration::from_secs(1))).await;
        }
        let seen = match step {
            Step::CheckAccess => {
                let perms = arm::permissions(&ctx.arm, &target.resource_group()).await?;
                let ok = policy::permits(&perms, JIT_INITIATE);
                record(
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
                let e = jit_role(ctx).await?;
                let r = match send_activation(
                    ctx,
                    &e,
                    duration.max(Duration::minutes(5)),
                    &a.justification,
                    ticket.as_ref(),
                )
                .await
                {
                    Err(f) if f.explanation.code == "RoleAssignmentExists" => {
                        record(step, format!("{} is already active", e.role));
                        role = Some(e);
                        action = machine
                            .on(Utc::now(), Observation::RoleRequested("Provisioned".into()));
                        continue;
                    }
                    other => other?,
                };
                record(step, format!("{} ({})", e.role, r.status));
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
                let fresh = arm::get_request(&ctx.arm, &e.scope, &r.name).await?;
                if RequestPhase::of(&fresh.status) == RequestPhase::Approved {
                    record(step, fresh.status.clone());
                    pending::done(
                        &ctx.state_dir,
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
                let perms = arm::permissions(&ctx.arm, &target.resource_group()).await?;
                let ok = policy::permits(&perms, JIT_INITIATE);
                if ok {
                    record(step, String::new());
                }
                Observation::InEffect(ok)
            }
            Step::DetectIp => {
                source = source_ip(ctx, "auto").await?;
                record(step, source.clone());
                Observation::IpDetected
            }
            Step::OpenPort => {
                let (fresh, grant) =
                    open_port(ctx, &current, port, duration, &source, &a.justification).await?;
                current = fresh;
                let e = endpoint(ctx, &current, port).await?;
                record(
                    step,
                    format!(
                        "{port} for {} until {}",
                        grant.source,
                        grant
                            .end
                            .map(|t| t
                                .with_timezone(&chrono::Local)
                                .format("%H:%M:%S")
                                .to_string())
                            .unwrap_or_default()
                    ),
                );
                ep = Some(e);
                Observation::PortOpened
            }
            Step::AwaitReachable => {
                let Some(e) = &ep else {
                    return Err(Failure::new(Kind::Other, "internal", "no endpoint"));
                };
                let ok = probe(e).await;
                if ok {
                    record(step, format!("{}:{}", e.host, e.port));
                }
                Observation::Reachable(ok)
            }
            Step::Launch => {
                let Some(e) = &ep else {
                    return Err(Failure::new(Kind::Other, "internal", "no endpoint"));
                };
                let rdp = port != 22;
                let launched = if rdp {
                    launch::rdp(&ctx.config.launch, e, user.as_deref())
                } else {
                    launch::ssh(&ctx.config.launch, e, user.as_deref())
                };
                let program = launched.map_err(|m| Failure::new(Kind::Other, "launch", m))?;
                record(step, program);
                Observation::Launched
            }
        };
        action = machine.on(Utc::now(), seen);
    }
    let ep = ep.map(|e| format!("{}:{}", e.host, e.port));
    show(
        ctx.json,
        &json!({"vm": current.vm, "port": port, "connect_to": ep, "steps": timeline}),
        || {
            format!(
                "Connected: {} port {port} at {}.",
                current.vm,
                ep.clone().unwrap_or_default()
            )
        },
    );
    Ok(())
}

#[derive(Serialize)]
struct StatusView {
    roles: Vec<arm::Active>,
    ports: Vec<PortView>,
    now: DateTime<Utc>,
}

#[derive(Serialize)]
struct PortView {
    vm: String,
    #[serde(flatten)]
    grant: arm::Grant,
}

async fn status(ctx: &Ctx) -> Outcome {
    let account = ctx.account().await?;
    let sub = ctx.subscription().await?;
    let (roles, targets) = tokio::join!(arm::active_roles(&ctx.arm), arm::targets(&ctx.arm, &sub));
    let now = ctx.arm.clock.now();
    let roles: Vec<arm::Active> = roles?
        .into_iter()
        .filter(|r| r.assignment_type == "Activated")
        .collect();
    let ports: Vec<PortView> = targets?
        .iter()
        .flat_map(|t| {
            open_grants(t, now)
                .into_iter()
                .filter(|g| g.requestor.eq_ignore_ascii_case(&account.upn))
                .map(|g| PortView {
                    vm: t.vm.clone(),
                    grant: g,
                })
        })
        .collect();
    let view = StatusView { roles, ports, now };
    show(ctx.json, &view, || {
        let mut lines = Vec::new();
        for r in &view.roles {
            lines.push(format!(
                "role {} at {}: {} left",
                r.role,
                r.scope,
                r.end.map(|e| human(e - now)).unwrap_or_default()
            ));
        }
        for p in &view.ports {
            lines.push(format!(
                "port {} of {} open for {}: {} left",
                p.grant.port,
                p.vm,
                p.grant.source,
                p.grant.end.map(|e| human(e - now)).unwrap_or_default()
            ));
        }
        if lines.is_empty() {
            "No active roles and no open ports.".into()
        } else {
            lines.join("\n")
        }
    });
    Ok(())
}
