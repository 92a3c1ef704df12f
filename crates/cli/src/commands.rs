//! The commands. Each one loads what it needs, calls the engine, and shows the result.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use jumpgate_azure::arm;
use jumpgate_azure::engine::{self, ConnectRequest};
use jumpgate_azure::signin::{self, BrowserOptions};
use jumpgate_core::config::ProfileAskError;
use jumpgate_core::duration::{human, parse as parse_duration};
use jumpgate_core::explain::Kind;
use jumpgate_core::policy;
use serde::Serialize;
use serde_json::json;

use crate::context::Ctx;
use crate::output::{progress, show, Failure, Outcome};
use crate::{
    ActivateArgs, AuditAction, Cli, Command, ConnectArgs, DeactivateArgs, DecideArgs, DoctorArgs,
    ExtendArgs, HistoryArgs, HistoryFormat, OpenArgs, SigninArgs, WatchArgs,
};
use jumpgate_azure::launch;
use jumpgate_azure::watch::Watcher;
use jumpgate_core::events::Elevation;

/// Runs a command; `Ok` holds the exit code (0, or the code of the command `run` ran).
pub async fn run(cli: Cli) -> Outcome<u8> {
    if let Command::Doctor(a) = cli.command {
        return doctor(cli.config.as_deref(), cli.json, cli.tenant.as_deref(), a)
            .await
            .map(|()| 0);
    }
    if let Command::Init(a) = cli.command {
        if cli.tenant.is_some() {
            return Err(usage(
                "init writes [azure], the default tenant: add another tenant as a [[tenants]] entry in the configuration instead of --tenant",
            ));
        }
        return crate::init::run(cli.config.as_deref(), cli.json, a)
            .await
            .map(|()| 0);
    }
    let ctx = Ctx::load(cli.config.as_deref(), cli.json, cli.tenant.as_deref())?;
    // Engine events become progress lines on stderr; the printer ends when the engine does.
    let mut events = ctx.subscribe();
    let printer = tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(e) => crate::output::event(&e),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
    let outcome = dispatch(&ctx, cli.command, cli.tenant.is_some()).await;
    drop(ctx);
    let _ = printer.await;
    outcome
}

/// Text a person passes on to others (justifications, tickets) held to the same rules as
/// the tray and links (`core::input`): bounded, one line, no controls or bidi formatting.
fn check_input(command: &Command) -> Outcome {
    use jumpgate_core::input;
    let text = |field: &'static str, value: &str| {
        input::text(field, value, input::MAX_JUSTIFICATION)
            .map(|_| ())
            .map_err(|e| usage(format!("the {e}")))
    };
    let ticket = |t: &Option<String>| match t.as_deref().and_then(|t| t.split_once(':')) {
        Some((system, number)) => input::ticket(system, number)
            .map(|_| ())
            .map_err(|e| usage(format!("the {e}"))),
        None => Ok(()),
    };
    match command {
        Command::Activate(a) => {
            text("justification", &a.justification)?;
            ticket(&a.ticket)
        }
        Command::Connect(a) => {
            text("justification", &a.justification)?;
            ticket(&a.ticket)
        }
        Command::Run(a) => {
            if let Some(j) = &a.justification {
                text("justification", j)?;
            }
            ticket(&a.ticket)
        }
        Command::Open(a) => text("justification", &a.justification),
        Command::Extend(a) => text("justification", &a.justification),
        Command::Deactivate(a) => text("justification", &a.justification),
        Command::Approve(a) | Command::Deny(a) => text("justification", &a.justification),
        _ => Ok(()),
    }
}

/// Runs `command` on `ctx`; `chosen_tenant`: `--tenant` named the tenant.
async fn dispatch(ctx: &Ctx, command: Command, chosen_tenant: bool) -> Outcome<u8> {
    check_input(&command)?;
    let done = match command {
        Command::Run(a) => return run_profile(ctx, a).await,
        Command::Signin(a) => signin(ctx, a).await,
        Command::Signout => {
            ctx.engine.sign_out().await?;
            show(ctx.json, &json!({"signed_out": true}), || {
                "Signed out: the stored sign-in is deleted.".into()
            });
            Ok(())
        }
        Command::Whoami => whoami(ctx).await,
        Command::Ip => ip(ctx).await,
        Command::Roles { active, vm: None } => roles(ctx, active).await,
        Command::Roles { vm: Some(vm), .. } => ways(ctx, &vm).await,
        Command::Activate(a) => activate(ctx, a).await,
        Command::Deactivate(a) => deactivate(ctx, a).await,
        Command::Requests => requests(ctx).await,
        Command::Cancel { id } => cancel(ctx, &id).await,
        Command::Approvals => approvals(ctx).await,
        Command::Approve(a) => decide(ctx, a, true).await,
        Command::Deny(a) => decide(ctx, a, false).await,
        Command::Targets => targets(ctx).await,
        Command::Open(a) => open(ctx, a).await,
        Command::Connect(a) => connect(ctx, a).await,
        Command::Status => status(ctx, !chosen_tenant).await,
        Command::Extend(a) => extend(ctx, a).await,
        Command::History(a) => history(ctx, a),
        Command::Audit {
            action: AuditAction::Verify,
        } => audit_verify(ctx),
        Command::Watch(a) => watch(ctx, a, !chosen_tenant).await,
        Command::Admin { action } => crate::admin::run(ctx, action).await,
        // Handled in `run`: they must work without a readable configuration.
        Command::Doctor(a) => doctor(None, ctx.json, None, a).await,
        Command::Init(a) => crate::init::run(None, ctx.json, a).await,
    };
    done.map(|()| 0)
}

/// The checklist, in order; exits 1 when a step fails. `--bundle` also writes the report,
/// which holds no token, refresh token or code, for the help desk.
async fn doctor(
    config: Option<&std::path::Path>,
    json: bool,
    tenant: Option<&str>,
    a: DoctorArgs,
) -> Outcome {
    use jumpgate_azure::doctor::{self, Check, Status};
    let mut checks = Vec::new();
    let ctx = match Ctx::load(config, json, tenant) {
        Ok(ctx) => {
            checks.push(doctor::config_check(&ctx.config));
            Some(ctx)
        }
        Err(f) => {
            checks.push(Check::fail(
                "config",
                "Configuration readable",
                f.explanation.message.clone(),
                "Ask the help desk for the company configuration file and save it as ~/.config/jumpgate/config.toml (or pass --config PATH).",
            ));
            for (step, title) in doctor::STEPS {
                checks.push(Check::skip(step, title, "needs a configuration"));
            }
            None
        }
    };
    if let Some(ctx) = &ctx {
        if !json {
            progress("checking, step by step…");
        }
        checks.extend(doctor::checklist(&ctx.engine, a.vm.as_deref(), a.port).await);
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let report = doctor::report(
        ctx.as_ref().map(|c| &c.engine),
        a.vm.as_deref(),
        a.port,
        &checks,
    )
    .await;
    if let Some(path) = &a.bundle {
        write_bundle(path, &report)?;
    }
    show(json, &report, || {
        let mut out = String::new();
        for c in &checks {
            let mark = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            out.push_str(&format!("{mark}  {}: {}\n", c.title, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("      → {fix}\n"));
            }
        }
        if let Some(ctx) = &ctx {
            out.push_str(&doctor::config_sources_text(&ctx.config.origin));
        }
        out.push_str(&if failed == 0 {
            "All checks passed.".to_string()
        } else {
            format!("{failed} check(s) failed: fix the first one above, then run doctor again.")
        });
        if let Some(path) = &a.bundle {
            out.push_str(&format!(
                "\nSupport bundle written to {} (no tokens in it).",
                path.display()
            ));
        }
        out
    });
    if failed == 0 {
        Ok(())
    } else {
        // Already explained line by line: exit 1 without repeating it.
        Err(Failure::new(Kind::Other, "doctor_failed", ""))
    }
}

/// Writes the support bundle, readable only by the user.
fn write_bundle(path: &std::path::Path, report: &serde_json::Value) -> Outcome {
    jumpgate_azure::private::write_atomic(
        path,
        serde_json::to_string_pretty(report)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(|e| {
        usage(format!(
            "cannot write the support bundle to {}: {e}",
            path.display()
        ))
    })
}

/// Runs the watcher until interrupted.
async fn watch(ctx: &Ctx, a: WatchArgs, all_tenants: bool) -> Outcome {
    if all_tenants && !ctx.whole.tenants.is_empty() {
        return watch_tenants(ctx, a).await;
    }
    let mut watcher = Watcher::open(&ctx.engine, a.approver)?;
    if !ctx.json {
        progress(&format!(
            "watching as {} (Ctrl-C or SIGTERM to stop)",
            ctx.account()
                .await
                .map(|a| a.upn)
                .unwrap_or_else(|_| "nobody: not signed in".into())
        ));
    }
    let json = ctx.json;
    let clock = ctx.arm.clock.clone();
    let mut sink = move |e: &jumpgate_core::events::WatchEvent| {
        crate::output::watch_event(json, clock.now(), None, e)
    };
    tokio::select! {
        () = watcher.run(&mut sink) => Ok(()),
        () = jumpgate_azure::watch::stop_signal() => Ok(()),
    }
}

/// `watch` with `[[tenants]]` and no `--tenant`: every tenant watched at once, each by a
/// watcher on an engine of its own (its own sign-in and state), each line naming its tenant.
async fn watch_tenants(ctx: &Ctx, a: WatchArgs) -> Outcome {
    let mut engines = Vec::new();
    for name in ctx.whole.tenant_names() {
        let config = ctx.whole.for_tenant(&name).map_err(usage)?;
        let engine = engine::Engine::new(config)?;
        // Each tenant's progress goes to stderr, named.
        let mut events = engine.subscribe();
        let label = name.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(jumpgate_core::events::EngineEvent::Progress { message }) => {
                        progress(&format!("{label}: {message}"))
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        });
        engines.push((name, engine));
    }
    let mut watchers = Vec::new();
    for (name, engine) in &engines {
        let watcher = Watcher::open(engine, a.approver)?;
        if !ctx.json {
            let who = engine
                .account()
                .await
                .map(|a| a.upn)
                .unwrap_or_else(|_| "nobody: not signed in".into());
            progress(&format!("watching {name} as {who}"));
        }
        watchers.push((name.clone(), engine.arm.clock.clone(), watcher));
    }
    if !ctx.json {
        progress("Ctrl-C or SIGTERM to stop");
    }
    let json = ctx.json;
    let runs = watchers
        .into_iter()
        .map(|(name, clock, mut watcher)| async move {
            let mut sink = move |e: &jumpgate_core::events::WatchEvent| {
                crate::output::watch_event(json, clock.now(), Some(&name), e)
            };
            watcher.run(&mut sink).await
        });
    tokio::select! {
        _ = futures::future::join_all(runs) => Ok(()),
        () = jumpgate_azure::watch::stop_signal() => Ok(()),
    }
}

/// A field someone else wrote (a name, a justification, a server's message), as one plain
/// line of text output (RELIABILITY #22).
pub(crate) fn one(text: &str) -> std::borrow::Cow<'_, str> {
    jumpgate_core::text::line(text)
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::usage(message)
}

pub(crate) fn duration_arg(text: &str) -> Outcome<Duration> {
    parse_duration(text).map_err(|e| usage(e.to_string()))
}

/// `--since`: a date (midnight UTC) or an RFC 3339 time.
pub(crate) fn since_arg(text: Option<&str>) -> Outcome<Option<DateTime<Utc>>> {
    let Some(t) = text else {
        return Ok(None);
    };
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map(Some)
        .map_err(|_| usage(format!("--since takes a date such as 2026-11-01 or a time such as 2026-11-01T09:00:00Z, not '{t}'")))
}

async fn signin(ctx: &Ctx, a: SigninArgs) -> Outcome {
    let tokens = sign_in(ctx, a).await?;
    let account = tokens.account.clone();
    show(
        ctx.json,
        &json!({"upn": account.upn, "name": account.name, "tenant_id": account.tid, "object_id": account.oid}),
        || format!("Signed in as {} ({}).", account.upn, account.name),
    );
    Ok(())
}

/// Signs in as `a` asks (or as the configuration's `azure.sign_in` says, when it names no
/// way) and keeps the tokens in the keychain; `jumpgate init` signs in through this too.
pub(crate) async fn sign_in(ctx: &Ctx, a: SigninArgs) -> Outcome<jumpgate_azure::tokens::TokenSet> {
    let claims = match (&a.claims, a.mfa) {
        (Some(c), _) => Some(jumpgate_core::explain::parse_claims(c).map_err(usage)?),
        (None, true) => Some(jumpgate_core::explain::MFA_CLAIMS.to_string()),
        (None, false) => None,
    };
    let configured_cli = !a.browser
        && !a.device_code
        && ctx.config.azure.sign_in == jumpgate_core::config::SignIn::AzureCli;
    let tokens = if a.azure_cli || configured_cli {
        signin::azure_cli(&ctx.authority()).await?
    } else if a.device_code {
        signin::device_code(&ctx.authority(), claims.as_deref(), |uri, code, expires| {
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
        browser_sign_in(ctx, a.user.clone(), claims, a.no_open, timeout).await?
    };
    ctx.engine.keep_sign_in(&tokens).await?;
    Ok(tokens)
}

/// Signs in through the system browser (or a printed URL).
async fn browser_sign_in(
    ctx: &Ctx,
    login_hint: Option<String>,
    claims: Option<String>,
    no_open: bool,
    timeout: StdDuration,
) -> Outcome<jumpgate_azure::tokens::TokenSet> {
    let on_url: Box<dyn FnOnce(&str) + Send> = Box::new(move |url: &str| {
        if no_open || !launch::open_browser(url) {
            crate::output::line(url);
            progress("open the URL above in your browser to sign in; waiting for the sign-in");
        } else {
            progress("your browser is open at the sign-in page; waiting for the sign-in");
        }
    });
    Ok(signin::browser(
        &ctx.authority(),
        BrowserOptions {
            login_hint,
            silent: false,
            claims,
            on_url,
            timeout,
        },
    )
    .await?)
}

/// Whether a person is at the terminal, who can finish a browser sign-in now.
fn interactive(ctx: &Ctx) -> bool {
    use std::io::IsTerminal as _;
    !ctx.json && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// After a call refused for want of a stronger sign-in (MFA, an authentication context):
/// at a terminal, signs in again asking for those claims, so the caller can retry once;
/// otherwise the refusal stands, and its message says which `jumpgate signin` to run.
async fn step_up(ctx: &Ctx, refused: Failure) -> Outcome {
    let Some(claims) = refused.claims.clone().filter(|_| interactive(ctx)) else {
        return Err(refused);
    };
    progress("the role needs a stronger sign-in; signing in again with what it asks for");
    let hint = ctx.account().await.ok().map(|a| a.upn);
    let tokens =
        browser_sign_in(ctx, hint, Some(claims), false, StdDuration::from_secs(300)).await?;
    ctx.engine.keep_sign_in(&tokens).await?;
    progress("signed in again; sending the same request once more");
    Ok(())
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

async fn ip(ctx: &Ctx) -> Outcome {
    let d = ctx.detect_ip().await?;
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
    kind: Elevation,
    role: String,
    scope: String,
    scope_name: String,
    role_definition_id: String,
    policy: policy::ActivationPolicy,
    summary: String,
}

/// What a role or group is, in a list: "JIT Requester  at /subscriptions/…", "JIT Operators
/// (group membership)" or "Global Reader  (Entra role)".
fn elevation_line(kind: Elevation, name: &str, scope: &str) -> String {
    match kind {
        Elevation::Role => format!("{}  at {}", one(name), one(scope)),
        Elevation::Group => format!("{}  (group membership)", one(name)),
        Elevation::EntraRole => format!("{}  (Entra role)", one(name)),
    }
}

/// What was asked for, in a sentence: "Reader at /subscriptions/…", "membership of JIT
/// Operators", "Entra role Global Reader".
fn elevation_words(kind: Elevation, name: &str, scope: &str) -> String {
    match kind {
        Elevation::Role => format!("{} at {}", one(name), one(scope)),
        Elevation::Group => format!("membership of {}", one(name)),
        Elevation::EntraRole => format!("Entra role {}", one(name)),
    }
}

async fn roles(ctx: &Ctx, active: bool) -> Outcome {
    if active {
        let list: Vec<arm::Active> = ctx
            .active()
            .await?
            .into_iter()
            .filter(|a| a.principal_type != "Group")
            .collect();
        let now = ctx.arm.clock.now();
        show(ctx.json, &list, || {
            if list.is_empty() {
                return "Nothing is active for you: no role and no group membership.".into();
            }
            list.iter()
                .map(|r| {
                    let left = r
                        .end
                        .map(|e| format!("{} left", human(e - now)))
                        .unwrap_or_else(|| "standing".into());
                    format!(
                        "{:<40} {:<10} ({left})",
                        elevation_line(r.kind, &r.role, &r.scope),
                        r.assignment_type
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        return Ok(());
    }
    let eligible = ctx.eligibilities().await?;
    let mut views = Vec::new();
    for e in eligible {
        let policy = ctx.activation_policy(&e).await?;
        views.push(RoleView {
            kind: e.kind,
            summary: policy.summary(),
            role: e.role,
            scope: e.scope,
            scope_name: e.scope_name,
            role_definition_id: e.role_definition_id,
            policy,
        });
    }
    let note = ctx.groups_note();
    if let (Some(n), true) = (&note, ctx.json) {
        progress(n);
    }
    show(ctx.json, &views, || {
        let mut text = if views.is_empty() {
            "You are eligible for no PIM role and no group membership.".to_string()
        } else {
            views
                .iter()
                .map(|v| {
                    format!(
                        "{}\n  {}",
                        elevation_line(v.kind, &v.role, &v.scope),
                        one(&v.summary)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        if let Some(n) = &note {
            text.push_str(&format!("\n(Note: {n}.)"));
        }
        text
    });
    Ok(())
}

#[derive(Serialize)]
struct WayView {
    kind: Elevation,
    /// What to give `connect --via`.
    via: String,
    label: String,
    role: Option<String>,
    scope: Option<String>,
    certain: bool,
    wildcard: bool,
}

/// The ways to a VM, best first.
async fn ways(ctx: &Ctx, vm: &str) -> Outcome {
    let vm_id = match ctx.locate(vm).await? {
        engine::Located::Target(t) => t.vm_id,
        engine::Located::Unreadable { vm_id } => vm_id,
    };
    let views: Vec<WayView> = ctx
        .ways_to(&vm_id)
        .await?
        .iter()
        .map(|w| WayView {
            kind: w.elevation.kind,
            via: engine::via_name(w),
            label: w.label(),
            role: w.role.clone(),
            scope: w.scope.clone(),
            certain: w.certain,
            wildcard: w.breadth.is_some_and(|b| b.wildcard),
        })
        .collect();
    show(ctx.json, &views, || {
        if views.is_empty() {
            return format!(
                "Nothing you are eligible for opens JIT on {}: ask your admin for the JIT requester role there, or for membership of a group that holds it.",
                one(vm)
            );
        }
        views
            .iter()
            .map(|v| {
                format!(
                    "{}\n  connect --via '{}'{}{}",
                    one(&v.label),
                    one(&v.via),
                    if v.certain {
                        ""
                    } else {
                        "  (may reach it: not known until active)"
                    },
                    if v.wildcard {
                        "  (grants much more than JIT)"
                    } else {
                        ""
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
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

async fn activate(ctx: &Ctx, a: ActivateArgs) -> Outcome {
    let duration = duration_arg(&a.duration)?;
    let ticket = parse_ticket(a.ticket.as_deref())?;
    let wait = a.wait.as_deref().map(duration_arg).transpose()?;
    let eligible = engine::pick_role(ctx.eligibilities().await?, &a.role, a.scope.as_deref())?;
    let activate =
        || ctx.activate_and_wait(&eligible, duration, &a.justification, ticket.as_ref(), wait);
    let done = match activate().await {
        // The request's name was kept: the retry is the same request, sent once more.
        Err(f) if f.claims.is_some() => {
            step_up(ctx, f).await?;
            activate().await?
        }
        other => other?,
    };
    match done {
        None => show(
            ctx.json,
            &json!({"role": eligible.role, "kind": eligible.kind, "status": "AlreadyActive"}),
            || format!("{} is already active.", eligible.role),
        ),
        Some(request) => show(ctx.json, &request, || {
            format!("{} {} ({})", request.role, request.status, request.name)
        }),
    }
    Ok(())
}

/// `jumpgate run PROFILE [-- COMMAND…]`: the profile's roles and groups side by side, each
/// reported on its own (one refused undoes none of the others); then its jump box; then the
/// command, whose exit code becomes ours.
async fn run_profile(ctx: &Ctx, a: crate::RunArgs) -> Outcome<u8> {
    let profile = ctx
        .config
        .profiles
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(&a.profile))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = ctx.config.profiles.iter().map(|p| p.name.as_str()).collect();
            usage(format!(
                "There is no profile named '{}' in the configuration{}. A profile is a [[profiles]] entry: see README.",
                a.profile,
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (there are: {})", known.join(", "))
                }
            ))
        })?;
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let asked = profile
        .ask(&today, a.justification.as_deref(), a.ticket.as_deref())
        .map_err(|e| match e {
            ProfileAskError::NoJustification(_) => usage(format!("{e}, or pass --justification.")),
            other => usage(other.to_string()),
        })?;
    let (justification, duration, ticket) = (asked.justification, asked.duration, asked.ticket);
    let ticket_text = ticket.as_ref().map(|(s, n)| format!("{s}:{n}"));
    let timeout = duration_arg(&a.timeout)?;

    if !profile.activate.is_empty() {
        let mut members = ctx
            .activate_set(
                &profile.activate,
                duration,
                &justification,
                ticket.as_ref(),
                timeout,
            )
            .await?;
        // Those whose policy asks for a stronger sign-in: one sign-in for each kind asked
        // for, then each once more (the same requests: their names were kept). One that
        // cannot step up (not at a terminal) stays refused, and is reported with the rest.
        let mut stepped: Vec<String> = Vec::new();
        for m in &mut members {
            let (Some(e), Err(f)) = (&m.eligible, &m.outcome) else {
                continue;
            };
            let Some(claims) = f.claims.clone() else {
                continue;
            };
            if !stepped.contains(&claims) {
                if let Err(refused) = step_up(ctx, f.clone()).await {
                    m.outcome = Err(refused);
                    continue;
                }
                stepped.push(claims);
            }
            m.outcome = ctx
                .activate_and_wait(e, duration, &justification, ticket.as_ref(), Some(timeout))
                .await;
        }
        let mut active = Vec::new();
        let mut refused = Vec::new();
        for m in members {
            match m.outcome {
                Ok(done) => {
                    let role = m.eligible.map_or(m.wanted, |e| e.role);
                    // One sent showed its own progress; one already active says so here.
                    if done.is_none() {
                        ctx.progress(&format!("{role} was already active"));
                    }
                    active.push(role);
                }
                Err(f) => {
                    ctx.progress(&format!("{}: {}", m.wanted, f.explanation.message));
                    refused.push((m.wanted, f));
                }
            }
        }
        if let Some((_, first)) = refused.first() {
            let names: Vec<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
            let mut skipped = Vec::new();
            if profile.vm.is_some() {
                skipped.push("the jump box was not opened");
            }
            if !a.command.is_empty() {
                skipped.push("the command was not run");
            }
            let mut f = first.clone();
            f.explanation.message = format!(
                "{} of {} activations of profile '{}' did not succeed ({}); {}.{}",
                refused.len(),
                profile.activate.len(),
                profile.name,
                names.join(", "),
                if active.is_empty() {
                    "none is active".to_string()
                } else {
                    format!("these are active and stay so: {}", active.join(", "))
                },
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(" So {}.", skipped.join(" and "))
                }
            );
            return Err(f);
        }
    }

    if let Some(vm) = &profile.vm {
        let launch = profile.launch.unwrap_or(true) && !a.no_launch && a.command.is_empty();
        connect(
            ctx,
            ConnectArgs {
                vm: vm.clone(),
                port: profile.port,
                duration: Some(profile.duration.clone().unwrap_or_else(|| "1h".into())),
                justification: justification.clone(),
                ticket: ticket_text,
                no_launch: !launch,
                timeout: a.timeout.clone(),
                allow_broad_role: false,
                via: None,
                allow_wide_source: false,
            },
        )
        .await?;
    } else if a.command.is_empty() {
        show(
            ctx.json,
            &json!({"profile": profile.name, "active": profile.activate.iter().map(|w| w.name()).collect::<Vec<_>>()}),
            || format!("Profile {}: everything it names is active.", profile.name),
        );
    }

    let Some((program, args)) = a.command.split_first() else {
        return Ok(0);
    };
    ctx.progress(&format!("access is in effect; running {program}"));
    // Progress is printed as it is received: let it all be out before the command's own.
    let started = std::time::Instant::now();
    while ctx.backlog() > 0 && started.elapsed() < StdDuration::from_secs(1) {
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    let (command, args) = (program.clone(), args.to_vec());
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&command).args(&args).status()
    })
    .await
    .map_err(|e| Failure::new(Kind::Other, "command", e.to_string()))?
    .map_err(|e| {
        usage(format!(
            "Access is in effect, but {program} could not be started: {e}. Check the command after --."
        ))
    })?;
    Ok(exit_code_of(status))
}

/// The code to exit with for a command that ended with `status`: its own exit code, or, for
/// one a signal ended, 128 plus the signal, as shells report it.
fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return u8::try_from(128 + signal).unwrap_or(255);
        }
    }
    status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1))
}

/// Ends a role or group membership before its time.
async fn deactivate(ctx: &Ctx, a: DeactivateArgs) -> Outcome {
    let request = ctx.end_role(&a.role, &a.justification).await?;
    show(
        ctx.json,
        &json!({"ended": request.role, "kind": request.kind, "status": request.status, "request": request.name}),
        || {
            format!(
                "Ended {} ({}). PIM removes it within seconds; ports it opened stay open until their own end.",
                request.role, request.status
            )
        },
    );
    Ok(())
}

async fn requests(ctx: &Ctx) -> Outcome {
    let list = ctx.my_requests().await?;
    show(ctx.json, &list, || {
        if list.is_empty() {
            return "You have no PIM requests.".into();
        }
        list.iter()
            .map(|r| {
                format!(
                    "{}  {:<16} {:<24} {}  {}",
                    one(&r.name),
                    one(&r.status),
                    one(&r.role),
                    one(&r.duration.clone().unwrap_or_default()),
                    one(&r.justification.clone().unwrap_or_default())
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn cancel(ctx: &Ctx, id: &str) -> Outcome {
    let list = ctx.my_requests().await?;
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
    match r.kind {
        Elevation::Role => arm::cancel_request(&ctx.arm, &r.scope, &r.name).await?,
        Elevation::Group => jumpgate_azure::groups::cancel_request(&ctx.graph, &r.name).await?,
        Elevation::EntraRole => {
            jumpgate_azure::directory::cancel_request(&ctx.graph_roles, &r.name).await?
        }
    }
    show(ctx.json, &json!({"canceled": r.name}), || {
        format!("Cancelled the request for {}.", r.role)
    });
    Ok(())
}

#[derive(Serialize)]
struct ApprovalView {
    kind: Elevation,
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
    let list = ctx.approvals().await?;
    let views: Vec<ApprovalView> = list
        .iter()
        .map(|p| ApprovalView {
            kind: p.request.kind,
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
                    "{}\n  {} asks for {} for {}\n  justification: {}{}\n  waiting {}",
                    one(&v.id),
                    one(&v.requester),
                    elevation_words(v.kind, &v.role, &v.scope),
                    v.duration
                        .as_deref()
                        .map(|d| parse_duration(d)
                            .map(human)
                            .unwrap_or_else(|_| d.to_string()))
                        .unwrap_or_default(),
                    one(v.justification.as_deref().unwrap_or("(none)")),
                    v.ticket
                        .as_deref()
                        .map(|t| format!("\n  ticket: {}", one(t)))
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
    let list = ctx.approvals().await?;
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
    ctx.decide(pending, approve, &a.justification).await?;
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

#[derive(Serialize)]
struct TargetView {
    vm: String,
    vm_id: String,
    address: Option<String>,
    firewall_ip: Option<String>,
    ports: Vec<policy::JitPortRule>,
    access: Vec<arm::Grant>,
}

async fn targets(ctx: &Ctx) -> Outcome {
    let now = ctx.arm.clock.now();
    let found = ctx.targets().await?;
    // The JSON answer stays a list (empty here); people get what they could reach.
    if found.is_empty() && !ctx.json {
        return reachable(ctx).await;
    }
    let mut views = Vec::new();
    for t in found {
        let address = arm::public_address(&ctx.arm, &t.vm_id).await.ok().flatten();
        views.push(TargetView {
            access: engine::open_grants(&t, now),
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

/// When no jump box can be read (no standing access): what the person could reach, and how.
async fn reachable(ctx: &Ctx) -> Outcome {
    let r = ctx.reachable().await?;
    show(ctx.json, &r, || {
        let mut out = vec!["You can read no jump box's JIT policy yet: they appear once a role or group membership that reaches them is active.".to_string()];
        if r.ways.is_empty() {
            out.push("You are eligible for no PIM role and no group membership: ask your admin for the JIT requester role, or for membership of a group that holds it.".into());
        } else {
            out.push("You may activate:".into());
            for w in &r.ways {
                let what = match w.kind {
                    Elevation::Role => format!("role {}", one(&w.name)),
                    Elevation::Group => format!("membership of group {}", one(&w.name)),
                    Elevation::EntraRole => format!("Entra role {}", one(&w.name)),
                };
                let at = if w.scopes.is_empty() {
                    "what it reaches shows once it has been active".to_string()
                } else {
                    format!(
                        "at {}",
                        w.scopes
                            .iter()
                            .map(|s| one(&s.name).into_owned())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                out.push(format!("  {what}, {at}\n    {}", one(&w.activate)));
            }
            out.push("Activating one reveals the jump boxes it reaches (then run jumpgate targets again), or connect does it all: jumpgate connect <VM resource id>.".into());
        }
        if !r.recent.is_empty() {
            out.push("Jump boxes you could read before (not checked now):".into());
            for t in r.recent.iter().take(10) {
                out.push(format!("  {}  {}", one(&t.vm), one(&t.vm_id)));
            }
        }
        if let Some(n) = &r.groups_note {
            out.push(format!("(Note: {n}.)"));
        }
        out.join("\n")
    });
    Ok(())
}

async fn open(ctx: &Ctx, a: OpenArgs) -> Outcome {
    let duration = duration_arg(&a.duration)?;
    let target = ctx.find_target(&a.vm).await?;
    let port = engine::preflight(&target, a.port, duration)?;
    let source = ctx
        .source_for(&target, port, &a.ip, a.allow_wide_source)
        .await?
        .prefix;
    let fresh_until = ctx.fresh_grant_until().await;
    let (fresh, grant) = ctx
        .open_port_after_grant(
            &target,
            port,
            duration,
            &source,
            &a.justification,
            fresh_until,
        )
        .await?;
    let ep = ctx.endpoint(&fresh, port).await?;
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

async fn connect(ctx: &Ctx, a: ConnectArgs) -> Outcome {
    let profile = ctx
        .config
        .profiles
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(&a.vm))
        .cloned();
    let vm = match &profile {
        None => a.vm.clone(),
        Some(p) => p.vm.clone().ok_or_else(|| {
            usage(format!(
                "Profile '{}' names no jump box, only roles and groups: run jumpgate run {} to activate them.",
                p.name, p.name
            ))
        })?,
    };
    let request = ConnectRequest {
        vm,
        port: a.port.or(profile.as_ref().and_then(|p| p.port)),
        duration: duration_arg(
            a.duration
                .as_deref()
                .or(profile.as_ref().and_then(|p| p.duration.as_deref()))
                .unwrap_or("1h"),
        )?,
        justification: a.justification.clone(),
        ticket: parse_ticket(a.ticket.as_deref())?,
        timeout: duration_arg(&a.timeout)?,
        allow_broad_role: a.allow_broad_role,
        allow_wide_source: a.allow_wide_source,
        via: a.via.clone(),
    };
    let user = profile.as_ref().and_then(|p| p.username.clone()).or(ctx
        .config
        .launch
        .username
        .clone());
    let mut connected = match ctx.connect(&request).await {
        Err(f) if f.claims.is_some() => {
            step_up(ctx, f).await?;
            ctx.connect(&request).await?
        }
        other => other?,
    };
    if !a.no_launch {
        ctx.launch_client(&mut connected, user.as_deref(), false)
            .await?;
    }
    let address = format!("{}:{}", connected.endpoint.host, connected.endpoint.port);
    show(
        ctx.json,
        &json!({"vm": connected.vm, "vm_id": connected.vm_id, "port": connected.port, "connect_to": address, "steps": connected.steps}),
        || {
            format!(
                "Connected: {} port {} at {address}.",
                connected.vm, connected.port
            )
        },
    );
    // The RDP client's .rdp file is removed when the client exits: wait for that
    // (RELIABILITY #19), as ssh is waited for.
    if jumpgate_azure::launch::launches_running() {
        progress("the RDP client is running; its connection file is removed when it closes");
    }
    tokio::task::spawn_blocking(jumpgate_azure::launch::finish_launches)
        .await
        .ok();
    Ok(())
}

#[derive(Serialize)]
struct StatusView {
    roles: Vec<arm::Active>,
    ports: Vec<PortView>,
    now: DateTime<Utc>,
    /// With `[[tenants]]` configured and no `--tenant`: every tenant's status, this one's
    /// first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tenants: Vec<TenantStatus>,
}

/// One tenant's part of `status`.
#[derive(Serialize)]
struct TenantStatus {
    tenant: String,
    /// Who is signed in there; `None` when no one is.
    account: Option<String>,
    roles: Vec<arm::Active>,
    ports: Vec<PortView>,
    /// Why it could not be read, when it could not.
    error: Option<String>,
}

#[derive(Serialize, Clone)]
struct PortView {
    vm: String,
    #[serde(flatten)]
    grant: arm::Grant,
}

/// What is active for the person signed in to `engine`'s tenant: PIM activations and their
/// own open ports.
async fn active_access(
    engine: &engine::Engine,
) -> Outcome<(
    jumpgate_azure::tokens::Account,
    Vec<arm::Active>,
    Vec<PortView>,
)> {
    let account = engine.account().await?;
    let (roles, targets) = tokio::join!(engine.active(), engine.targets());
    let now = engine.arm.clock.now();
    let roles: Vec<arm::Active> = roles?
        .into_iter()
        .filter(|r| r.assignment_type == "Activated" && r.principal_type != "Group")
        .collect();
    let ports: Vec<PortView> = targets?
        .iter()
        .flat_map(|t| {
            engine::open_grants(t, now)
                .into_iter()
                .filter(|g| account.is(&g.requestor))
                .map(|g| PortView {
                    vm: t.vm.clone(),
                    grant: g,
                })
        })
        .collect();
    Ok((account, roles, ports))
}

/// Every other tenant's status, for `status` without `--tenant`: each read side by side
/// with an engine of its own; one nobody is signed in to says so.
async fn other_tenants(ctx: &Ctx) -> Vec<TenantStatus> {
    let others: Vec<String> = ctx
        .whole
        .tenant_names()
        .into_iter()
        .filter(|n| !n.eq_ignore_ascii_case(ctx.config.tenant_name()))
        .collect();
    let reads = others.into_iter().map(|name| async move {
        let read = async {
            let config = ctx.whole.for_tenant(&name).map_err(Failure::usage)?;
            let engine = engine::Engine::new(config)?;
            if engine.session.current().await?.is_none() {
                return Ok(None);
            }
            active_access(&engine).await.map(Some)
        };
        match read.await {
            Ok(Some((account, roles, ports))) => TenantStatus {
                tenant: name,
                account: Some(account.upn),
                roles,
                ports,
                error: None,
            },
            Ok(None) => TenantStatus {
                tenant: name,
                account: None,
                roles: Vec::new(),
                ports: Vec::new(),
                error: None,
            },
            Err(f) => TenantStatus {
                tenant: name,
                account: None,
                roles: Vec::new(),
                ports: Vec::new(),
                error: Some(f.explanation.message),
            },
        }
    });
    futures::future::join_all(reads).await
}

/// One line per active role and open port.
fn access_lines(roles: &[arm::Active], ports: &[PortView], now: DateTime<Utc>) -> Vec<String> {
    let mut lines = Vec::new();
    for r in roles {
        lines.push(format!(
            "{}: {} left",
            match r.kind {
                Elevation::Role => format!("role {} at {}", one(&r.role), one(&r.scope)),
                kind => elevation_words(kind, &r.role, &r.scope),
            },
            r.end.map(|e| human(e - now)).unwrap_or_default()
        ));
    }
    for p in ports {
        lines.push(format!(
            "port {} of {} open for {}: {} left",
            p.grant.port,
            one(&p.vm),
            one(&p.grant.source),
            p.grant.end.map(|e| human(e - now)).unwrap_or_default()
        ));
    }
    lines
}

async fn status(ctx: &Ctx, all_tenants: bool) -> Outcome {
    let current = active_access(&ctx.engine).await;
    let now = ctx.arm.clock.now();
    let mut tenants = Vec::new();
    let (roles, ports) = if all_tenants && !ctx.whole.tenants.is_empty() {
        // Every tenant is shown, this one too when nobody is signed in to it.
        let here = match current {
            Ok((account, roles, ports)) => TenantStatus {
                tenant: ctx.config.tenant_name().to_string(),
                account: Some(account.upn),
                roles,
                ports,
                error: None,
            },
            Err(f) => {
                let signed_out = ctx.session.current().await.ok().flatten().is_none()
                    && f.explanation.kind == Kind::SignIn;
                TenantStatus {
                    tenant: ctx.config.tenant_name().to_string(),
                    account: None,
                    roles: Vec::new(),
                    ports: Vec::new(),
                    error: (!signed_out).then_some(f.explanation.message),
                }
            }
        };
        let both = (here.roles.clone(), here.ports.clone());
        tenants = other_tenants(ctx).await;
        tenants.insert(0, here);
        both
    } else {
        let (_, roles, ports) = current?;
        (roles, ports)
    };
    let view = StatusView {
        roles,
        ports,
        now,
        tenants,
    };
    show(ctx.json, &view, || {
        let nothing = "No active roles and no open ports.";
        if view.tenants.is_empty() {
            let lines = access_lines(&view.roles, &view.ports, now);
            return if lines.is_empty() {
                nothing.into()
            } else {
                lines.join("\n")
            };
        }
        let mut out = Vec::new();
        for t in &view.tenants {
            let name = one(&t.tenant);
            match (&t.account, &t.error) {
                (_, Some(why)) => {
                    out.push(format!("Tenant {name}: could not be read: {}", one(why)))
                }
                (None, None) => out.push(format!(
                    "Tenant {name}: not signed in (jumpgate --tenant {name} signin)"
                )),
                (Some(upn), None) => {
                    out.push(format!("Tenant {name} ({}):", one(upn)));
                    let lines = access_lines(&t.roles, &t.ports, now);
                    if lines.is_empty() {
                        out.push(format!("  {nothing}"));
                    }
                    out.extend(lines.into_iter().map(|l| format!("  {l}")));
                }
            }
        }
        out.join("\n")
    });
    Ok(())
}

async fn extend(ctx: &Ctx, a: ExtendArgs) -> Outcome {
    let duration = duration_arg(&a.duration)?;
    let is_vm = match ctx.find_target(&a.target).await {
        Ok(_) => true,
        Err(f) if f.explanation.code == "no_target" => false,
        Err(f) => return Err(f),
    };
    if is_vm {
        let (target, grant) = ctx
            .extend_port(&a.target, a.port, duration, &a.justification)
            .await?;
        let until = grant
            .end
            .map(|e| {
                e.with_timezone(&chrono::Local)
                    .format("%H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        show(
            ctx.json,
            &json!({"extended": "jit", "how": "new_initiate", "vm": target.vm, "port": grant.port, "source": grant.source, "end": grant.end}),
            || {
                format!("Extended port {} of {} for {} until {until}, with a new JIT request (the previous rule is replaced).", grant.port, target.vm, grant.source)
            },
        );
    } else {
        let plan = ctx
            .renewal_plan(&a.target, duration, &a.justification)
            .await?;
        if let Some(what) = plan.consequences() {
            confirm(ctx, &what, a.yes)?;
        }
        let (request, how) = ctx.renew(&plan, duration, &a.justification).await?;
        show(
            ctx.json,
            &json!({"extended": "role", "kind": request.kind, "how": how, "role": request.role, "status": request.status, "request": request.name}),
            || how.describe(&request, duration),
        );
    }
    Ok(())
}

/// Asks the person at the terminal to confirm `what`; without a terminal, `--yes` must say
/// so. Nothing has been changed when it refuses.
fn confirm(ctx: &Ctx, what: &str, yes: bool) -> Outcome {
    if yes {
        return Ok(());
    }
    if !interactive(ctx) {
        return Err(usage(format!(
            "{what} Nothing was changed: run it again with --yes to go ahead."
        )));
    }
    crate::output::line(what);
    eprint!("Go ahead? [y/N] ");
    let mut answer = String::new();
    let read = std::io::stdin().read_line(&mut answer);
    if read.is_ok() && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure::new(
            Kind::Other,
            "not_confirmed",
            "Nothing was changed.",
        ))
    }
}

fn journal_entries(ctx: &Ctx) -> Outcome<Vec<jumpgate_core::audit::Entry>> {
    ctx.journal
        .read()
        .map_err(|e| Failure::new(Kind::Other, "audit_broken", e.to_string()))
}

fn history(ctx: &Ctx, a: HistoryArgs) -> Outcome {
    let since = since_arg(a.since.as_deref())?;
    let entries: Vec<_> = journal_entries(ctx)?
        .into_iter()
        .filter(|e| since.is_none_or(|s| e.time >= s))
        .collect();
    let cell = |o: &Option<String>| o.clone().unwrap_or_default();
    match a.format {
        HistoryFormat::Json => {
            crate::output::json_line(&serde_json::to_string_pretty(&entries).unwrap_or_default())
        }
        HistoryFormat::Csv => crate::output::line(jumpgate_core::audit::csv(&entries).trim_end()),
        HistoryFormat::Table => {
            if entries.is_empty() {
                crate::output::line("The audit journal is empty.");
            }
            for e in &entries {
                let r = &e.record;
                let what = [
                    cell(&r.vm),
                    r.port.map(|p| format!("port {p}")).unwrap_or_default(),
                    cell(&r.role),
                ]
                .into_iter()
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
                crate::output::line(&format!(
                    "{:>4}  {}  {:<24} {:<16} {what}  {}{}",
                    e.seq,
                    e.time
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S"),
                    one(&r.who),
                    one(&r.what),
                    one(&r.outcome),
                    r.justification
                        .as_deref()
                        .map(|j| format!("  \"{}\"", one(j)))
                        .unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

/// Exit 0 when the chain holds, torn lines and a lagging head included (each reported);
/// 1 when it breaks, naming the line.
fn audit_verify(ctx: &Ctx) -> Outcome {
    let v = ctx
        .journal
        .check()
        .map_err(|e| Failure::new(Kind::Other, "audit_broken", e.to_string()))?;
    show(
        ctx.json,
        &json!({
            "intact": true,
            "entries": v.entries.len(),
            "torn_lines": v.torn,
            "head_behind": v.head_behind,
            "path": ctx.journal.path(),
        }),
        || {
            let mut text = format!(
                "The audit journal is intact: {} entries in {}.",
                v.entries.len(),
                ctx.journal.path().display()
            );
            for line in &v.torn {
                text += &format!("\nLine {line} is a torn write (an append cut off by a crash or a power cut): it holds no entry, and the entries after it chain past it.");
            }
            if v.head_behind > 0 {
                text += &format!("\nThe recorded head lags the journal by {} entries (a process stopped before recording them); the next entry brings it forward.", v.head_behind);
            }
            text
        },
    );
    Ok(())
}
