//! The IPC commands the popover may call (granted one by one in `capabilities/`). The names
//! are listed once, in [`NAMES`], which the build script, the handler and the TypeScript
//! bindings all follow.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jumpgate_azure::doctor::{self, Check};
use jumpgate_azure::engine::{ConnectRequest, Engine, StepRecord};
use jumpgate_azure::{engine, launch, signin};
use jumpgate_core::audit::{self, Entry};
use jumpgate_core::config::SignIn;
use jumpgate_core::duration::{human, parse as parse_duration};
use jumpgate_core::events::{Access, Elevation, EngineEvent};
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::input;
use jumpgate_core::phase::Step;
use jumpgate_core::policy::{
    check_form, vague_justification, ConnectFormText, FieldProblem, JitPortRule,
};
use jumpgate_core::tray::{self, Icon, Snapshot};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter as _, Manager as _, Runtime, State};
use ts_rs::TS;

use crate::AppCtx;

#[cfg(test)]
include!("../commands.in");

/// What the popover shows; every command that changes something answers it anew.
#[derive(Debug, Clone, Serialize, TS)]
pub struct AppState {
    pub signed_in_as: Option<String>,
    pub demo: bool,
    pub demo_users: Vec<String>,
    pub icon: Icon,
    pub tooltip: String,
    /// ARM's time when this was read: countdowns run from it.
    #[ts(type = "string")]
    pub now: DateTime<Utc>,
    pub targets: Vec<TargetView>,
    /// My active PIM roles.
    pub roles: Vec<RoleView>,
    /// My requests waiting for a decision.
    pub pending: Vec<PendingView>,
    /// Requests waiting for my decision.
    pub approvals: usize,
    /// I decide other people's requests, so the popover shows Approvals: a policy I can read
    /// names me as an approver, I have decided a request on this machine in the last 90 days,
    /// a request waits for me now, or the configuration says so (`[watch] approver`).
    pub approver: bool,
    /// I can ask for access, so the popover offers Connect: I am eligible for a PIM role, or
    /// I may open JIT on a jump box's resource group already (an Owner, say).
    pub can_connect: bool,
    pub justification: Hints,
    /// Favourite and recently connected jump boxes, kept by the app (`remember_target`).
    pub remembered: crate::remembered::Remembered,
    pub start_at_login: bool,
    /// Sign-ins reuse the Azure CLI's `az login` (`sign_in = "azure_cli"`), not a browser.
    pub azure_cli: bool,
    /// Signed in but no jump box can be read (no standing access): what could be reached,
    /// and how. `None` otherwise.
    pub reachable: Option<jumpgate_azure::engine::Reachable>,
    /// The tenant this state is of (`default` is `[azure]`'s).
    pub tenant: String,
    /// Every tenant of the configuration, when there are several to switch between.
    pub tenants: Vec<String>,
}

/// A jump box: its JIT ports and what of mine is open on it. A name may be shared by several
/// VMs; the resource id never is, and the resource group and subscription say which is which.
#[derive(Debug, Clone, Serialize, TS)]
pub struct TargetView {
    pub vm: String,
    pub vm_id: String,
    /// The resource group's name.
    pub resource_group: String,
    /// The subscription's display name, or its id where the name is not known.
    pub subscription: String,
    pub ports: Vec<PortRule>,
    pub open: Vec<OpenPort>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct PortRule {
    pub number: u16,
    /// The policy's longest request, in minutes.
    pub max_minutes: u32,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct OpenPort {
    pub port: u16,
    pub source: String,
    #[ts(type = "string | null")]
    pub end: Option<DateTime<Utc>>,
}

/// An active role, or group membership (`kind: group`: `role` is the group's name, `scope`
/// its id).
#[derive(Debug, Clone, Serialize, TS)]
pub struct RoleView {
    pub kind: Elevation,
    pub role: String,
    pub scope: String,
    /// When it was activated: PIM lets no one end it in its first five minutes.
    #[ts(type = "string | null")]
    pub start: Option<DateTime<Utc>>,
    #[ts(type = "string | null")]
    pub end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct PendingView {
    pub request: String,
    pub role: String,
    pub status: String,
}

/// What the Connect form offers for the justification. What it refuses is the app's to say
/// (`check_connect`), not the popover's.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Hints {
    pub templates: Vec<String>,
    /// My latest justifications, newest first.
    pub recent: Vec<String>,
    /// What an approver's decision is prefilled with.
    pub approval_templates: Vec<String>,
}

/// The Connect form, as submitted.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct ConnectForm {
    pub vm: String,
    pub port: Option<u16>,
    /// ISO 8601 (`PT1H`) or the short form (`1h30m`).
    pub duration: String,
    pub justification: String,
    /// `SYSTEM:NUMBER`, or a number alone.
    pub ticket: Option<String>,
    /// Start the RDP or SSH client once the port answers.
    pub launch: bool,
    /// The way to reach the VM when several do (a [`WayView`]'s `via`); remembered.
    pub via: Option<String>,
    /// The person confirmed opening the port to a source range wider than a /24, after a
    /// refusal coded `confirm_wide_source` that named it.
    #[serde(default)]
    #[ts(optional)]
    pub allow_wide_source: Option<bool>,
}

/// A way to reach a jump box: what to activate, and what it brings there.
#[derive(Debug, Clone, Serialize, TS)]
pub struct WayView {
    pub kind: Elevation,
    /// In words: "JIT Requester at rg-jumpboxes", "member of JIT Operators (…)".
    pub label: String,
    /// What to send back as the form's `via` to use it.
    pub via: String,
    /// Known to reach the VM (not only perhaps: a management group, a group whose roles are
    /// not known yet).
    pub certain: bool,
    /// The one chosen for this VM before.
    pub chosen: bool,
}

/// The Connect form as it stands while the person types, with the ports (and their longest
/// requests) the popover was shown for the VM.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct FormDraft {
    pub port: Option<u16>,
    pub duration: String,
    pub justification: String,
    pub ticket: String,
    /// The VM's JIT ports as the last read showed them; empty when not known yet.
    pub ports: Vec<PortRule>,
}

/// Where Connect got to.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Connected {
    pub vm: String,
    pub port: u16,
    /// `host:port` to connect to.
    pub endpoint: String,
    pub steps: Vec<StepView>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct StepView {
    pub step: Step,
    pub label: String,
    #[ts(type = "string")]
    pub at: DateTime<Utc>,
    pub detail: String,
}

impl From<&StepRecord> for StepView {
    fn from(s: &StepRecord) -> StepView {
        StepView {
            step: s.step,
            label: s.step.label().to_string(),
            at: s.at,
            detail: s.detail.clone(),
        }
    }
}

/// A request waiting for my decision, for a role or a group membership.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ApprovalView {
    pub kind: Elevation,
    pub request: String,
    pub requester: String,
    pub role: String,
    pub scope: String,
    pub justification: Option<String>,
    /// In words ("1 h").
    pub duration: Option<String>,
    pub ticket: Option<String>,
    #[ts(type = "number")]
    pub age_seconds: i64,
}

/// What a renewal did.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Renewed {
    /// In words, for the popover.
    pub message: String,
    pub state: AppState,
}

/// `doctor` for the Help view: the checklist and the support bundle (no token in it).
#[derive(Debug, Clone, Serialize, TS)]
pub struct Diagnosis {
    pub checks: Vec<Check>,
    pub bundle: String,
}

/// What a failed command tells the popover: a kind it can switch on, a stable code, and a
/// message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum CommandError {
    /// Sign in (again).
    SignIn(Detail),
    /// Refused: not allowed, or denied by an approver.
    Denied(Detail),
    /// Against a policy rule.
    Policy(Detail),
    /// Azure or the network is unavailable; try later.
    Unavailable(Detail),
    NotFound(Detail),
    Conflict(Detail),
    /// Not something this mode of the app does (demo sign-in outside demo mode).
    NotAvailable(Detail),
    /// The input cannot be used: the message says what is expected.
    Invalid(Detail),
    Other(Detail),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct Detail {
    pub code: String,
    pub message: String,
}

impl CommandError {
    pub fn detail(&self) -> &Detail {
        match self {
            CommandError::SignIn(d)
            | CommandError::Denied(d)
            | CommandError::Policy(d)
            | CommandError::Unavailable(d)
            | CommandError::NotFound(d)
            | CommandError::Conflict(d)
            | CommandError::NotAvailable(d)
            | CommandError::Invalid(d)
            | CommandError::Other(d) => d,
        }
    }

    pub fn not_available(code: &str, message: impl Into<String>) -> CommandError {
        CommandError::NotAvailable(Detail {
            code: code.into(),
            message: message.into(),
        })
    }

    pub(crate) fn invalid(code: &str, message: impl Into<String>) -> CommandError {
        CommandError::Invalid(Detail {
            code: code.into(),
            message: message.into(),
        })
    }

    /// The refusal of anything that needs the engine before the first run has set it up,
    /// on which the popover shows its first-run form.
    pub(crate) fn first_run() -> CommandError {
        CommandError::not_available(
            "first_run",
            "Jumpgate is not set up yet: enter your work email to find your organisation.",
        )
    }

    pub(crate) fn other(code: &str, message: impl Into<String>) -> CommandError {
        CommandError::Other(Detail {
            code: code.into(),
            message: message.into(),
        })
    }
}

impl From<Failure> for CommandError {
    fn from(f: Failure) -> CommandError {
        let e = f.explanation;
        let detail = Detail {
            code: e.code,
            message: e.message,
        };
        match e.kind {
            Kind::SignIn => CommandError::SignIn(detail),
            Kind::Denied => CommandError::Denied(detail),
            Kind::Policy => CommandError::Policy(detail),
            Kind::Unavailable => CommandError::Unavailable(detail),
            Kind::NotFound => CommandError::NotFound(detail),
            Kind::Conflict => CommandError::Conflict(detail),
            Kind::Other => CommandError::Other(detail),
        }
    }
}

impl From<jumpgate_azure::error::Error> for CommandError {
    fn from(e: jumpgate_azure::error::Error) -> CommandError {
        Failure::from(e).into()
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail().message)
    }
}

pub type CommandResult<T> = Result<T, CommandError>;

/// Runs engine work to completion on a blocking thread of the same runtime. The engine's
/// futures borrow clients in ways rustc cannot prove `Send`, and Tauri's commands must be.
pub async fn on_engine<T, F, Fut>(f: F) -> CommandResult<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = CommandResult<T>>,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(f()))
        .await
        .map_err(|e| CommandError::other("engine_stopped", format!("the engine stopped: {e}")))?
}

fn minutes(d: chrono::Duration) -> u32 {
    u32::try_from(d.num_minutes().max(0)).unwrap_or(u32::MAX)
}

/// The state as the engine knows it now, and what the tray shows for it.
pub async fn snapshot(
    engine: Arc<Engine>,
    demo: bool,
    start_at_login: bool,
) -> CommandResult<(AppState, Snapshot)> {
    on_engine(move || async move {
        let who = engine.session.current().await?.map(|t| t.account);
        let account = who.as_ref().map(|a| a.upn.clone());
        let mut state = AppState {
            signed_in_as: account.clone(),
            demo,
            demo_users: if demo {
                crate::demo::users()
            } else {
                Vec::new()
            },
            icon: Icon::SignedOut,
            tooltip: String::new(),
            now: engine.arm.clock.now(),
            targets: Vec::new(),
            roles: Vec::new(),
            pending: Vec::new(),
            approvals: 0,
            approver: false,
            can_connect: false,
            justification: hints(&engine, account.as_deref()),
            remembered: crate::remembered::read(&engine.state_dir),
            start_at_login,
            azure_cli: engine.config.azure.sign_in == SignIn::AzureCli,
            reachable: None,
            tenant: engine.config.tenant_name().to_string(),
            tenants: Vec::new(),
        };
        let mut snap = Snapshot {
            signed_in: account.is_some(),
            ..Snapshot::default()
        };
        if let Some(signed_in) = &who {
            // The eligibilities and roles read here also say where the jump boxes are, so
            // the targets are looked for without reading them again.
            let (visible, eligible, roles, requests, inbox, approver) = tokio::join!(
                engine.visible_subscriptions(),
                engine.eligibilities(),
                engine.active(),
                engine.my_requests(),
                engine.inbox(),
                is_approver(&engine, &signed_in.oid, engine.arm.clock.now()),
            );
            let (eligible, roles) = (eligible?, roles?);
            let visible = visible?;
            let subs = engine.subscriptions_of(
                visible.iter().map(|s| s.id.clone()).collect(),
                &eligible,
                &roles,
            );
            let targets = engine.targets_in(&subs).await?;
            // Without an eligibility, Connect is offered only when JIT is open to the user
            // already; that costs one permissions read per resource group, only for them,
            // and at most once per STANDING_FRESH_MINUTES.
            // An Entra role opens no jump box.
            state.can_connect = eligible
                .iter()
                .any(|e| e.kind != jumpgate_core::events::Elevation::EntraRole)
                || (!targets.is_empty()
                    && engine
                        .standing_jit(&signed_in.oid, &targets)
                        .await
                        .unwrap_or(false));
            if targets.is_empty() {
                state.reachable = Some(engine.reachable().await?);
            }
            let now = engine.arm.clock.now();
            state.now = now;
            for t in targets {
                let open: Vec<OpenPort> = engine::open_grants(&t, now)
                    .into_iter()
                    .filter(|g| signed_in.is(&g.requestor))
                    .map(|g| OpenPort {
                        port: g.port,
                        source: g.source,
                        end: g.end,
                    })
                    .collect();
                for o in &open {
                    if let Some(end) = o.end {
                        snap.open.push((
                            Access::Port {
                                vm: t.vm.clone(),
                                vm_id: t.vm_id.clone(),
                                port: o.port,
                            },
                            end,
                        ));
                    }
                }
                let sub = jumpgate_core::policy::subscription_of(&t.vm_id).unwrap_or_default();
                let subscription = visible
                    .iter()
                    .find(|s| s.id.eq_ignore_ascii_case(sub) && !s.name.is_empty())
                    .map_or_else(|| sub.to_string(), |s| s.name.clone());
                state.targets.push(TargetView {
                    resource_group: jumpgate_azure::arm::leaf(&t.resource_group()).to_string(),
                    subscription,
                    ports: t
                        .ports
                        .iter()
                        .map(|p| PortRule {
                            number: p.number,
                            max_minutes: minutes(p.max),
                        })
                        .collect(),
                    open,
                    vm: t.vm,
                    vm_id: t.vm_id,
                });
            }
            for r in roles
                .into_iter()
                .filter(|r| r.assignment_type == "Activated" && r.principal_type != "Group")
            {
                if let Some(end) = r.end {
                    snap.open.push((
                        Access::Role {
                            role: r.role.clone(),
                            scope: r.scope.clone(),
                        },
                        end,
                    ));
                }
                state.roles.push(RoleView {
                    kind: r.kind,
                    role: r.role,
                    scope: r.scope,
                    start: r.start,
                    end: r.end,
                });
            }
            state.pending = requests?
                .into_iter()
                .filter(|r| r.status == "PendingApproval")
                .map(|r| PendingView {
                    request: r.name,
                    role: r.role,
                    status: r.status,
                })
                .collect();
            snap.pending = state.pending.iter().map(|p| p.role.clone()).collect();
            // An approver's inbox that cannot be read (no approver rights) is an empty one.
            state.approvals = inbox.map(|i| i.len()).unwrap_or(0);
            snap.approvals = state.approvals;
            state.approver = approver || state.approvals > 0;
        }
        let view = tray::view(state.now, &snap, expiring_soon(&engine));
        state.icon = view.icon;
        state.tooltip = view.tooltip;
        Ok((state, snap))
    })
    .await
}

/// Whether the user (object id `oid`) decides requests, without the inbox: the configuration
/// says so, they decided one on this machine (`decided.json`, no request), or a policy they
/// can read names them. The policies are the engine's shared look (`approver::Finding`): the
/// watcher's, or one read here at most once a day per account; a look that fails counts as no.
async fn is_approver(engine: &Engine, oid: &str, now: DateTime<Utc>) -> bool {
    if engine.config.watch.approver
        || jumpgate_azure::approver::has_decided(&engine.state_dir, oid, now)
    {
        return true;
    }
    let fresh = jumpgate_core::watch::Cadence::from_config(&engine.config.watch).approver_check;
    matches!(
        engine.approver.roles(&engine.arm, oid, now, fresh).await,
        Ok(Some(roles)) if !roles.is_empty()
    )
}

/// How close an end must be for the tray to say "expiring soon": the earliest reminder.
pub fn expiring_soon(engine: &Engine) -> chrono::Duration {
    let lead = engine
        .config
        .reminders
        .lead_minutes
        .iter()
        .max()
        .copied()
        .unwrap_or(15);
    chrono::Duration::minutes(i64::from(lead))
}

/// The configured templates, and my five latest justifications.
fn hints(engine: &Engine, upn: Option<&str>) -> Hints {
    let mut recent: Vec<String> = Vec::new();
    if let (Some(upn), Ok(entries)) = (upn, engine.journal.read()) {
        for e in entries.iter().rev() {
            if !e.record.who.eq_ignore_ascii_case(upn) {
                continue;
            }
            if let Some(j) = &e.record.justification {
                if !j.trim().is_empty() && !recent.contains(j) {
                    recent.push(j.clone());
                }
            }
            if recent.len() == 5 {
                break;
            }
        }
    }
    let j = &engine.config.justification;
    Hints {
        templates: j.templates.clone(),
        recent,
        approval_templates: j.approval_templates.clone(),
    }
}

/// The state read when a new popover was asked for, while its process starts: its page's
/// first `app_state` takes it instead of reading the engine again. A refresh of the tray
/// (after any command, or the watcher's event) forgets it.
#[derive(Default)]
pub struct Prefetch(std::sync::Mutex<Option<PrefetchSlot>>);

type PrefetchSlot = (
    std::time::Instant,
    tokio::sync::watch::Receiver<Option<CommandResult<AppState>>>,
);

impl Prefetch {
    /// How long a prefetched state may wait for the page that asked for it.
    const FRESH: std::time::Duration = std::time::Duration::from_secs(3);

    /// Starts reading the state now.
    pub fn start<R: Runtime>(app: &AppHandle<R>) {
        let (Some(ctx), Some(prefetch)) = (app.try_state::<AppCtx>(), app.try_state::<Prefetch>())
        else {
            return;
        };
        let (tx, rx) = tokio::sync::watch::channel(None);
        if let Ok(mut slot) = prefetch.0.lock() {
            *slot = Some((std::time::Instant::now(), rx));
        }
        let engine = ctx.engine();
        let demo = ctx.demo.is_some();
        let tenants = ctx.tenant_names();
        let start_at_login = crate::platform::starts_at_login(app);
        tauri::async_runtime::spawn(async move {
            let state = snapshot(engine, demo, start_at_login)
                .await
                .map(|(s, _)| AppState { tenants, ..s });
            let _ = tx.send(Some(state));
        });
    }

    /// Forgets a state read earlier: the state has changed since.
    pub fn clear<R: Runtime>(app: &AppHandle<R>) {
        if let Some(Ok(mut slot)) = app.try_state::<Prefetch>().map(|p| p.inner().0.lock()) {
            *slot = None;
        }
    }

    /// The state read since the popover was last asked for, once; `None` when there is
    /// none, or it is too old to show.
    pub(crate) async fn take(&self) -> Option<AppState> {
        let (at, mut rx) = self.0.lock().ok()?.take()?;
        if at.elapsed() > Self::FRESH {
            return None;
        }
        let state = rx.wait_for(Option::is_some).await.ok()?.clone();
        state?.ok()
    }
}

/// The state; before the first run has written a configuration, the `first_run` refusal,
/// on which the popover shows its first-run form.
#[tauri::command]
pub async fn app_state<R: Runtime>(app: AppHandle<R>) -> CommandResult<AppState> {
    if let Some(prefetched) = app.try_state::<Prefetch>() {
        if let Some(state) = prefetched.take().await {
            return Ok(state);
        }
    }
    match app.try_state::<AppCtx>() {
        Some(ctx) => {
            let start_at_login = crate::platform::starts_at_login(&app);
            let (state, _) = snapshot(ctx.engine(), ctx.demo.is_some(), start_at_login).await?;
            Ok(AppState {
                tenants: ctx.tenant_names(),
                ..state
            })
        }
        None => Err(CommandError::first_run()),
    }
}

/// Makes `name` the tenant the popover shows and acts in (each tenant keeps its own sign-in
/// and watcher), and answers its state.
#[tauri::command]
pub async fn switch_tenant<R: Runtime>(
    app: AppHandle<R>,
    ctx: State<'_, AppCtx>,
    name: String,
) -> CommandResult<AppState> {
    if !ctx.switch(&name) {
        return Err(CommandError::Invalid(Detail {
            code: "no_tenant".into(),
            message: format!(
                "There is no tenant '{}' in the configuration.",
                jumpgate_core::text::line(&name)
            ),
        }));
    }
    tracing::info!("the popover works in tenant {}", ctx.tenant());
    crate::tray::refresh(&app).await
}

/// Demo mode only: sign in as one of the demo tenant's users, without a browser.
#[tauri::command]
pub async fn sign_in_demo<R: Runtime>(
    app: AppHandle<R>,
    ctx: State<'_, AppCtx>,
    upn: String,
) -> CommandResult<AppState> {
    if ctx.demo.is_none() {
        return Err(CommandError::not_available(
            "not_demo",
            "demo sign-in exists only in demo mode (jumpgate-tray --demo)",
        ));
    }
    if !crate::demo::users().contains(&upn) {
        return Err(CommandError::not_available(
            "not_a_demo_user",
            format!("'{upn}' is not a user of the demo tenant"),
        ));
    }
    let engine = ctx.engine();
    on_engine(move || async move {
        let claims = engine.take_step_up();
        let tokens = signin::demo(&engine.authority(), &upn, claims.as_deref()).await?;
        adopt(&engine, tokens).await
    })
    .await?;
    crate::tray::refresh(&app).await
}

/// A browser sign-in in progress, which Cancel ends.
#[derive(Default)]
pub struct SignInFlow(std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

/// Signs in with the system browser (authorization code + PKCE on a loopback redirect);
/// never a webview of the app's own. It gives up after 5 minutes, or when cancelled. A
/// configuration with `sign_in = "azure_cli"` reuses `az login` instead.
#[tauri::command]
pub async fn sign_in<R: Runtime>(
    app: AppHandle<R>,
    ctx: State<'_, AppCtx>,
    flow: State<'_, SignInFlow>,
) -> CommandResult<AppState> {
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    if let Ok(mut slot) = flow.0.lock() {
        // A sign-in started again replaces the one before (its listener closes).
        if let Some(previous) = slot.replace(cancel) {
            let _ = previous.send(());
        }
    }
    let engine = ctx.engine();
    on_engine(move || async move {
        let on_url: Box<dyn FnOnce(&str) + Send> = Box::new(|url: &str| {
            if !launch::open_browser(url) {
                tracing::warn!("cannot open the system browser; open this URL to sign in: {url}");
            }
        });
        let authority = engine.authority();
        if engine.config.azure.sign_in == SignIn::AzureCli {
            // No app registration: the Azure CLI's `az login`, in the configured tenant.
            let tokens = signin::azure_cli(&authority).await?;
            return adopt(&engine, tokens).await;
        }
        // After an activation refused for MFA or an authentication context, this is the
        // step-up sign-in: it asks for what the refusal named.
        let claims = engine.take_step_up();
        let signing_in = signin::browser(
            &authority,
            signin::BrowserOptions {
                login_hint: None,
                silent: false,
                claims,
                on_url,
                timeout: std::time::Duration::from_secs(300),
            },
        );
        let tokens = tokio::select! {
            t = signing_in => t?,
            _ = cancelled => {
                return Err(CommandError::not_available(
                    "sign_in_cancelled",
                    "Sign-in cancelled.",
                ))
            }
        };
        adopt(&engine, tokens).await
    })
    .await?;
    crate::tray::refresh(&app).await
}

/// Ends a browser sign-in in progress: its loopback listener closes.
#[tauri::command]
pub fn cancel_sign_in(flow: State<'_, SignInFlow>) {
    if let Some(cancel) = flow.0.lock().ok().and_then(|mut s| s.take()) {
        let _ = cancel.send(());
    }
}

/// Keeps a new sign-in (keychain, memory, journal: `Engine::keep_sign_in`).
async fn adopt(engine: &Engine, tokens: jumpgate_azure::tokens::TokenSet) -> CommandResult<()> {
    Ok(engine.keep_sign_in(&tokens).await?)
}

#[tauri::command]
pub async fn sign_out<R: Runtime>(
    app: AppHandle<R>,
    ctx: State<'_, AppCtx>,
) -> CommandResult<AppState> {
    let engine = ctx.engine();
    on_engine(move || async move { Ok(engine.sign_out().await?) }).await?;
    crate::tray::refresh(&app).await
}

fn parse_ticket(ticket: Option<&str>) -> CommandResult<Option<(String, String)>> {
    let ticket = input::ticket_text(ticket.unwrap_or_default()).map_err(|e| {
        CommandError::invalid(
            "bad_ticket",
            format!("The {e}: give SYSTEM:NUMBER or a number."),
        )
    })?;
    Ok(ticket.map(|(system, number)| (system.to_string(), number.to_string())))
}

/// The same rules as the CLI and the link parser (`core::input`), since the popover's own
/// limits are only HTML: any caller of the IPC command is held to them (RELIABILITY #22).
fn justification_of(text: &str, required: &str) -> CommandResult<String> {
    if text.trim().is_empty() {
        return Err(CommandError::invalid("justification_required", required));
    }
    input::justification(text)
        .map(str::to_string)
        .map_err(|e| CommandError::invalid("bad_justification", format!("The {e}.")))
}

fn vm_of(text: &str) -> CommandResult<String> {
    input::vm(text.trim())
        .map(str::to_string)
        .map_err(|e| CommandError::invalid("bad_vm", format!("The {e}.")))
}

/// A name or id the popover hands back (a role, a request): one line, bounded.
fn name_of(field: &'static str, text: &str) -> CommandResult<String> {
    input::text(field, text, 400)
        .map(str::to_string)
        .map_err(|e| CommandError::invalid("bad_input", format!("The {e}.")))
}

fn duration_of(text: &str) -> CommandResult<chrono::Duration> {
    parse_duration(text.trim()).map_err(|e| CommandError::invalid("bad_duration", e.to_string()))
}

/// The Connect form's problems, one per field at most, as the person types: the rules of
/// `connect` itself (`core::policy::check_form`), with the organisation's refuse list. The
/// ports are the ones the popover was shown, so no keystroke reads ARM; `connect` checks
/// everything again against the policy as it reads it then.
#[tauri::command]
pub fn check_connect(ctx: State<'_, AppCtx>, form: FormDraft) -> Vec<FieldProblem> {
    form_problems(&form, &ctx.engine().config.justification.refuse)
}

fn form_problems(form: &FormDraft, refuse: &[String]) -> Vec<FieldProblem> {
    let rules: Vec<JitPortRule> = form
        .ports
        .iter()
        .map(|p| JitPortRule {
            number: p.number,
            protocol: "*".into(),
            allowed_prefixes: vec!["*".into()],
            max: chrono::Duration::minutes(i64::from(p.max_minutes)),
        })
        .collect();
    let text = ConnectFormText {
        port: form.port,
        duration: &form.duration,
        justification: &form.justification,
        ticket: &form.ticket,
    };
    check_form(&text, (!rules.is_empty()).then_some(&rules[..]), refuse)
}

/// The whole chain for a jump box: the role (and its approval) when needed, the port for this
/// IP, reachability, then the RDP or SSH client. Each step reaches the popover as an `engine`
/// event as it completes; the answer holds them all.
#[tauri::command]
pub async fn connect<R: Runtime>(
    app: AppHandle<R>,
    ctx: State<'_, AppCtx>,
    form: ConnectForm,
) -> CommandResult<Connected> {
    let duration = duration_of(&form.duration)?;
    let justification = justification_of(
        &form.justification,
        "Say why you need access: the justification is required.",
    )?;
    // A vague justification is refused whether or not a role is to be activated, as the form
    // shows it: with the words an activation's pre-flight uses.
    if let Some(v) = vague_justification(&justification, &ctx.engine().config.justification.refuse)
    {
        return Err(CommandError::Policy(Detail {
            code: v.rule.into(),
            message: format!("Not sent: {}.", v.message),
        }));
    }
    let request = ConnectRequest {
        vm: vm_of(&form.vm)?,
        port: form.port,
        duration,
        justification,
        ticket: parse_ticket(form.ticket.as_deref())?,
        timeout: chrono::Duration::minutes(30),
        // A role that reaches JIT only through a wildcard needs the person's say-so, which
        // the popover does not ask for yet: it shows the refusal and its reason.
        allow_broad_role: false,
        via: form.via.as_deref().map(|v| name_of("via", v)).transpose()?,
        allow_wide_source: form.allow_wide_source.unwrap_or(false),
    };
    let engine = ctx.engine();
    let launch_client = form.launch;
    let result = on_engine(move || async move {
        let mut connected = engine.connect(&request).await?;
        if launch_client {
            let user = engine.config.launch.username.clone();
            engine
                .launch_client(&mut connected, user.as_deref(), true)
                .await?;
        }
        Ok(Connected {
            endpoint: format!("{}:{}", connected.endpoint.host, connected.endpoint.port),
            steps: connected.steps.iter().map(StepView::from).collect(),
            vm: connected.vm,
            port: connected.port,
        })
    })
    .await;
    let _ = crate::tray::refresh(&app).await;
    result
}

/// What to renew: a role by name, or a port of a jump box.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Renew {
    Role { role: String },
    Port { vm: String, port: u16 },
}

/// Extend: a role or group membership activated anew (ended first when it is still on,
/// which needs `confirmed`: the approver is asked again and until then it is not held), a
/// port with a new JIT request for this IP.
#[tauri::command]
pub async fn extend<R: Runtime>(
    app: AppHandle<R>,
    ctx: State<'_, AppCtx>,
    what: Renew,
    duration: String,
    justification: String,
    confirmed: bool,
) -> CommandResult<Renewed> {
    let duration = duration_of(&duration)?;
    // Empty is allowed here, as before: the engine says when PIM needs one.
    let justification = input::text("justification", &justification, input::MAX_JUSTIFICATION)
        .map(str::to_string)
        .map_err(|e| CommandError::invalid("bad_justification", format!("The {e}.")))?;
    let what = match what {
        Renew::Role { role } => Renew::Role {
            role: name_of("role", &role)?,
        },
        Renew::Port { vm, port } => Renew::Port {
            vm: vm_of(&vm)?,
            port,
        },
    };
    let engine = ctx.engine();
    let message = on_engine(move || async move {
        Ok(match what {
            Renew::Role { role } => {
                let plan = engine.renewal_plan(&role, duration, &justification).await?;
                if let (Some(what), false) = (plan.consequences(), confirmed) {
                    return Err(CommandError::Conflict(Detail {
                        code: "confirm_renewal".into(),
                        message: what,
                    }));
                }
                let (request, how) = engine.renew(&plan, duration, &justification).await?;
                how.describe(&request, duration)
            }
            Renew::Port { vm, port } => {
                let (target, grant) = engine
                    .extend_port(&vm, Some(port), duration, &justification)
                    .await?;
                format!(
                    "Port {} of {} is open for {} for {} more.",
                    grant.port,
                    target.vm,
                    grant.source,
                    human(duration)
                )
            }
        })
    })
    .await?;
    Ok(Renewed {
        message,
        state: crate::tray::refresh(&app).await?,
    })
}

/// Ends a role or group membership early. JIT has no request that closes a port early.
#[tauri::command]
pub async fn end_role<R: Runtime>(
    app: AppHandle<R>,
    ctx: State<'_, AppCtx>,
    role: String,
    justification: String,
) -> CommandResult<Renewed> {
    let role = name_of("role", &role)?;
    let justification = input::text("justification", &justification, input::MAX_JUSTIFICATION)
        .map(|j| j.trim().to_string())
        .map_err(|e| CommandError::invalid("bad_justification", format!("The {e}.")))?;
    let engine = ctx.engine();
    let message = on_engine(move || async move {
        let request = engine.end_role(&role, &justification).await?;
        Ok(format!("{} ended: {}.", request.role, request.status))
    })
    .await?;
    Ok(Renewed {
        message,
        state: crate::tray::refresh(&app).await?,
    })
}

/// What an activation from the popover did.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Activated {
    pub kind: Elevation,
    pub role: String,
    /// PIM's status: `PendingApproval`, `Provisioned`, …
    pub status: String,
    /// In words, for the popover.
    pub message: String,
    pub state: AppState,
}

/// Activates a role or group membership by name (what the Jump boxes view offers a person
/// who can read no jump box yet): the policy's pre-flight check first, then the request.
/// The watcher announces the decision.
#[tauri::command]
pub async fn activate<R: Runtime>(
    app: AppHandle<R>,
    ctx: State<'_, AppCtx>,
    role: String,
    duration: String,
    justification: String,
) -> CommandResult<Activated> {
    let role = name_of("role", &role)?;
    let duration = duration_of(&duration)?;
    let justification = justification_of(
        &justification,
        "Say why you need access: the justification is required.",
    )?;
    if let Some(v) = vague_justification(&justification, &ctx.engine().config.justification.refuse)
    {
        return Err(CommandError::Policy(Detail {
            code: v.rule.into(),
            message: format!("Not sent: {}.", v.message),
        }));
    }
    let engine = ctx.engine();
    let (kind, name, status) = on_engine(move || async move {
        let e = engine::pick_role(engine.eligibilities().await?, &role, None)?;
        let request = match engine
            .send_activation(&e, duration, &justification, None)
            .await
        {
            Err(f) if f.explanation.code == "RoleAssignmentExists" => {
                return Ok((e.kind, e.role, "Provisioned".to_string()))
            }
            other => other?,
        };
        Ok((e.kind, e.role, request.status))
    })
    .await?;
    let message = if jumpgate_core::phase::RequestPhase::of(&status)
        == jumpgate_core::phase::RequestPhase::Pending
    {
        format!("{name}: asked ({status}). You are told when the approver decides.")
    } else {
        format!("{name} is active: its jump boxes appear once it takes effect.")
    };
    Ok(Activated {
        kind,
        role: name,
        status,
        message,
        state: crate::tray::refresh(&app).await?,
    })
}

/// The ways to reach a jump box, best first, for the Connect form to offer when several do.
#[tauri::command]
pub async fn ways(ctx: State<'_, AppCtx>, vm_id: String) -> CommandResult<Vec<WayView>> {
    let vm_id = vm_of(&vm_id)?;
    let engine = ctx.engine();
    on_engine(move || async move {
        let chosen = jumpgate_azure::access::read(&engine.state_dir)
            .chosen_for(&vm_id)
            .map(str::to_string);
        Ok(engine
            .ways_to(&vm_id)
            .await?
            .into_iter()
            .map(|w| WayView {
                kind: w.elevation.kind,
                label: w.label(),
                via: w.key.clone(),
                certain: w.certain,
                chosen: chosen.as_deref() == Some(w.key.as_str()),
            })
            .collect())
    })
    .await
}

/// The requests waiting for my decision.
#[tauri::command]
pub async fn approvals(ctx: State<'_, AppCtx>) -> CommandResult<Vec<ApprovalView>> {
    let engine = ctx.engine();
    on_engine(move || async move { approval_views(&engine).await }).await
}

async fn approval_views(engine: &Engine) -> CommandResult<Vec<ApprovalView>> {
    let now = engine.arm.clock.now();
    Ok(engine
        .approvals()
        .await?
        .into_iter()
        .map(|p| ApprovalView {
            kind: p.request.kind,
            requester: p.request.principal_name,
            role: p.request.role,
            scope: p.request.scope,
            justification: p.request.justification,
            duration: p
                .request
                .duration
                .map(|d| parse_duration(&d).map(human).unwrap_or(d)),
            ticket: p.request.ticket,
            age_seconds: p
                .request
                .created
                .map(|c| (now - c).num_seconds().max(0))
                .unwrap_or(0),
            request: p.request.name,
        })
        .collect())
}

/// Approves or denies a request; PIM requires a justification either way.
#[tauri::command]
pub async fn decide<R: Runtime>(
    app: AppHandle<R>,
    ctx: State<'_, AppCtx>,
    request: String,
    approve: bool,
    justification: String,
) -> CommandResult<Vec<ApprovalView>> {
    let justification = justification_of(
        &justification,
        "PIM requires a justification for the decision: say why you approve or deny.",
    )?;
    let request = name_of("request", &request)?;
    let engine = ctx.engine();
    let left = on_engine(move || async move {
        let pending = engine
            .approvals()
            .await?
            .into_iter()
            .find(|p| p.request.name.eq_ignore_ascii_case(&request))
            .ok_or_else(|| {
                CommandError::NotFound(Detail {
                    code: "not_found".into(),
                    message: "This request no longer waits for your decision: another approver may have decided, or it was cancelled.".into(),
                })
            })?;
        engine.decide(&pending, approve, &justification).await?;
        approval_views(&engine).await
    })
    .await?;
    let _ = crate::tray::refresh(&app).await;
    Ok(left)
}

/// Remembers a jump box as a favourite (or not any more), or as connected to just now;
/// answers all that is remembered.
#[tauri::command]
pub async fn remember_target(
    ctx: State<'_, AppCtx>,
    vm_id: String,
    what: crate::remembered::Remember,
) -> CommandResult<crate::remembered::Remembered> {
    let dir = ctx.engine().state_dir.clone();
    tokio::task::spawn_blocking(move || crate::remembered::remember(&dir, &vm_id, what))
        .await
        .map_err(|e| CommandError::other("engine_stopped", format!("the engine stopped: {e}")))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => {
                CommandError::invalid("bad_vm", format!("Not remembered: {e}."))
            }
            _ => CommandError::other(
                "state",
                format!(
                    "Cannot remember that in {}: {e}. Check that the folder is yours and writable.",
                    ctx.engine().state_dir.display()
                ),
            ),
        })
}

/// The audit journal, newest first, filtered by words.
#[tauri::command]
pub async fn history(ctx: State<'_, AppCtx>, query: String) -> CommandResult<Vec<Entry>> {
    let mut entries = journal(&ctx.engine(), &query)?;
    entries.reverse();
    Ok(entries)
}

fn journal(engine: &Engine, query: &str) -> CommandResult<Vec<Entry>> {
    let entries = engine
        .journal
        .read()
        .map_err(|e| CommandError::other("audit_broken", e.to_string()))?;
    Ok(entries
        .into_iter()
        .filter(|e| audit::matches(e, query))
        .collect())
}

#[derive(Debug, Clone, Copy, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Csv,
    Json,
}

/// Writes the filtered journal to the Downloads folder (the data folder when there is none)
/// and answers the file's path. An existing file is never overwritten.
#[tauri::command]
pub async fn export_history(
    ctx: State<'_, AppCtx>,
    query: String,
    format: ExportFormat,
) -> CommandResult<String> {
    let entries = journal(&ctx.engine(), &query)?;
    let (text, ext) = match format {
        ExportFormat::Csv => (audit::csv(&entries), "csv"),
        ExportFormat::Json => (
            serde_json::to_string_pretty(&entries)
                .map_err(|e| CommandError::other("export", e.to_string()))?,
            "json",
        ),
    };
    let dir = dirs::download_dir().unwrap_or_else(|| ctx.engine().state_dir.clone());
    let stamp = Utc::now().format("%Y%m%d-%H%M%S");
    let path = crate::platform::write_new(&dir, &format!("jumpgate-history-{stamp}"), ext, &text)
        .map_err(|e| {
        CommandError::other(
            "export",
            format!("cannot write the export in {}: {e}", dir.display()),
        )
    })?;
    Ok(path.display().to_string())
}

/// `doctor` for a target (or none): the checklist, and the redacted report as text.
#[tauri::command]
pub async fn diagnose(
    ctx: State<'_, AppCtx>,
    vm: Option<String>,
    port: Option<u16>,
) -> CommandResult<Diagnosis> {
    let engine = ctx.engine();
    on_engine(move || async move {
        let mut checks = vec![doctor::config_check(&engine.config)];
        let vm = vm.filter(|v| !v.trim().is_empty());
        checks.extend(doctor::checklist(&engine, vm.as_deref(), port).await);
        let report = doctor::report(Some(&engine), vm.as_deref(), port, &checks).await;
        Ok(Diagnosis {
            bundle: serde_json::to_string_pretty(&report)
                .map_err(|e| CommandError::other("bundle", e.to_string()))?,
            checks,
        })
    })
    .await
}

/// Turns starting at login on or off (`tauri-plugin-autostart`).
#[tauri::command]
pub async fn set_start_at_login<R: Runtime>(
    app: AppHandle<R>,
    on: bool,
) -> CommandResult<AppState> {
    crate::platform::set_start_at_login(&app, on).map_err(|e| {
        CommandError::other("autostart", format!("cannot change start at login: {e}"))
    })?;
    crate::tray::refresh(&app).await
}

/// Forwards the engine's progress (the Connect timeline) to the popover as `engine` events.
pub fn forward_engine_events<R: Runtime>(app: AppHandle<R>, engine: &Engine) {
    let mut rx = engine.subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(EngineEvent::Watch(_)) => {}
                Ok(event) => {
                    let _ = app.emit("engine", &event);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_reach_the_popover_with_a_kind_to_switch_on() {
        let e: CommandError = Failure::new(
            Kind::SignIn,
            "sign_in_required",
            "You are not signed in: run jumpgate signin.",
        )
        .into();
        assert_eq!(
            serde_json::to_value(&e).expect("json"),
            serde_json::json!({"kind": "sign_in", "data": {"code": "sign_in_required", "message": "You are not signed in: run jumpgate signin."}})
        );
        let n = CommandError::not_available("not_demo", "demo only");
        assert_eq!(
            serde_json::to_value(&n).expect("json")["kind"],
            "not_available"
        );
    }

    /// The engine on an in-process simulator of `tenant`, tokens in a file of its own.
    async fn engine_on(
        tenant: &str,
        dir: &std::path::Path,
        extra: &str,
    ) -> (jumpgate_sim::SimHandle, Arc<Engine>) {
        jumpgate_azure::init_tls();
        let sim = jumpgate_sim::SimBuilder::new(tenant)
            .control(true)
            .start()
            .await
            .expect("simulator");
        let text = format!(
            "{}\n{extra}[storage]\nstate_dir = \"{}\"\nallow_file_fallback = true\nkeyring_service = \"jumpgate-facts-{}-{}\"\n",
            sim.client_config().to_toml(),
            dir.join("state").display(),
            std::process::id(),
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
        );
        let config =
            jumpgate_core::config::Config::parse("config.toml", &text).expect("configuration");
        (sim, Arc::new(Engine::new(config).expect("engine")))
    }

    async fn sign_in_as(engine: &Engine, upn: &str) {
        let tokens = signin::demo(&engine.authority(), upn, None)
            .await
            .expect("sign-in");
        adopt(engine, tokens).await.expect("adopt");
    }

    /// How many times the simulator was asked for role management policies.
    async fn policy_reads(sim: &jumpgate_sim::SimHandle) -> usize {
        requests_to(sim, "roleManagementPolicyAssignments").await
    }

    /// A POST to the simulator's control API (`/clock/advance`, `/faults`).
    async fn control(
        sim: &jumpgate_sim::SimHandle,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/_sim{path}", sim.url()))
            .bearer_auth(sim.control_token().expect("control"))
            .json(&body)
            .send()
            .await
            .expect("the simulator's control API")
    }

    /// How many requests the simulator saw whose path contains `needle`.
    async fn requests_to(sim: &jumpgate_sim::SimHandle, needle: &str) -> usize {
        let events: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/_sim/events", sim.url()))
            .bearer_auth(sim.control_token().expect("control"))
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("json");
        let all = events
            .as_array()
            .or_else(|| events["events"].as_array())
            .cloned()
            .unwrap_or_default();
        all.iter()
            .filter(|e| {
                e["kind"] == "request" && e["path"].as_str().is_some_and(|p| p.contains(needle))
            })
            .count()
    }

    /// Issue #14: the popover hides what a person cannot use. In the demo tenant alice is
    /// eligible (Connect) and approves nothing; bob is named in the policy (Approvals) and
    /// eligible for nothing; carol only reads; dave is an Owner, so JIT is open to him without
    /// a role. The policies are read once per account, not at every snapshot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn issue_14_the_state_says_which_views_a_person_can_use() {
        let dir = tempfile::tempdir().expect("dir");
        let (sim, engine) = engine_on("demo", dir.path(), "").await;
        let mut seen = Vec::new();
        for upn in [
            "alice@contoso.example",
            "bob@contoso.example",
            "carol@contoso.example",
            "dave@contoso.example",
        ] {
            sign_in_as(&engine, upn).await;
            let (state, _) = snapshot(engine.clone(), false, false).await.expect("state");
            assert_eq!(state.signed_in_as.as_deref(), Some(upn));
            assert!(!state.targets.is_empty(), "{upn} sees the jump boxes");
            seen.push((upn, state.approver, state.can_connect));
        }
        assert_eq!(
            seen,
            [
                ("alice@contoso.example", false, true),
                ("bob@contoso.example", true, false),
                ("carol@contoso.example", false, false),
                ("dave@contoso.example", false, true),
            ]
        );

        // Another snapshot for dave: the look at the policies is remembered, not repeated.
        let before = policy_reads(&sim).await;
        assert!(before > 0, "nobody looked at the policies");
        let (state, _) = snapshot(engine.clone(), false, false).await.expect("state");
        assert!(!state.approver && state.can_connect);
        assert_eq!(
            policy_reads(&sim).await,
            before,
            "the policies were read again"
        );

        // dave's standing access is read once too, and again once it is old.
        let permissions = || requests_to(&sim, "/permissions");
        let read = permissions().await;
        assert!(read > 0, "dave's permissions were never read");
        let (state, _) = snapshot(engine.clone(), false, false).await.expect("state");
        assert!(state.can_connect);
        assert_eq!(permissions().await, read, "the permissions were read again");
        control(
            &sim,
            "/clock/advance",
            serde_json::json!({"seconds": jumpgate_azure::engine::STANDING_FRESH_MINUTES * 60 + 60}),
        )
        .await;
        // The first read after the advance brings ARM's new time; the read follows.
        for _ in 0..2 {
            let (state, _) = snapshot(engine.clone(), false, false).await.expect("state");
            assert!(state.can_connect);
        }
        assert!(permissions().await > read, "old permissions were kept");

        // carol decided a request on this machine: from then on she is an approver too.
        sign_in_as(&engine, "carol@contoso.example").await;
        jumpgate_azure::approver::remember_decision(
            &engine.state_dir,
            "ca201000-0000-4000-8000-000000000003",
            engine.arm.clock.now(),
        )
        .expect("remember");
        let (state, _) = snapshot(engine.clone(), false, false).await.expect("state");
        assert!(state.approver && !state.can_connect, "{state:?}");
    }

    /// A look at the policies that fails counts as "not an approver" and is not repeated at
    /// every snapshot: the next one is an hour later (on ARM's clock).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn issue_14_a_failed_look_at_the_policies_waits_an_hour() {
        let dir = tempfile::tempdir().expect("dir");
        let (sim, engine) = engine_on("demo", dir.path(), "").await;
        sign_in_as(&engine, "bob@contoso.example").await;
        let added = control(
            &sim,
            "/faults",
            serde_json::json!({"path": "roleManagementPolicyAssignments", "status": 400, "count": 1}),
        )
        .await;
        assert!(added.status().is_success());
        let (state, _) = snapshot(engine.clone(), false, false).await.expect("state");
        assert!(!state.approver, "a failed look found an approver");
        let failed = policy_reads(&sim).await;
        let (state, _) = snapshot(engine.clone(), false, false).await.expect("state");
        assert!(!state.approver);
        assert_eq!(
            policy_reads(&sim).await,
            failed,
            "the failed look was repeated at once"
        );
        control(
            &sim,
            "/clock/advance",
            serde_json::json!({"seconds": 61 * 60}),
        )
        .await;
        // The first read after the advance brings ARM's new time; the look follows.
        let mut found = false;
        for _ in 0..2 {
            found = snapshot(engine.clone(), false, false)
                .await
                .expect("state")
                .0
                .approver;
        }
        assert!(found, "the look was not tried again after the hour");
        assert!(policy_reads(&sim).await > failed);
    }

    /// A request waiting for someone makes them an approver at once, and so does the
    /// configuration (`[watch] approver`), with no policy naming them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn issue_14_a_waiting_request_or_the_configuration_makes_an_approver() {
        let dir = tempfile::tempdir().expect("dir");
        let (_sim, engine) = engine_on("demo", dir.path(), "[watch]\napprover = true\n").await;
        sign_in_as(&engine, "alice@contoso.example").await;
        let (state, _) = snapshot(engine.clone(), false, false).await.expect("state");
        assert!(state.approver && state.can_connect, "{state:?}");
    }

    #[test]
    fn tickets_and_durations_are_checked_before_anything_is_sent() {
        assert_eq!(parse_ticket(None).ok(), Some(None));
        assert_eq!(parse_ticket(Some("  ")).ok(), Some(None));
        assert_eq!(
            parse_ticket(Some("ServiceNow:INC42")).ok(),
            Some(Some(("ServiceNow".into(), "INC42".into())))
        );
        assert!(parse_ticket(Some("a\nb")).is_err());
        assert!(duration_of("1h").is_ok());
        assert!(duration_of("PT30M").is_ok());
        let bad = duration_of("soon").expect_err("bad");
        assert!(matches!(bad, CommandError::Invalid(_)), "{bad:?}");
    }
}
