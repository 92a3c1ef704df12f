//! The tray icon and its menu, the popover window, and the watcher's events as desktop
//! notifications (notify-rust, with their actions) and as events to the popover.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jumpgate_azure::engine::Engine;
use jumpgate_azure::watch::Watcher;
use jumpgate_core::deeplink::ConnectLink;
use jumpgate_core::duration::to_iso;
use jumpgate_core::events::WatchEvent;
use jumpgate_core::tray::{self, Icon, MenuItem, Snapshot};

use crate::commands::AppState;
use serde::{Deserialize, Serialize};
use tauri::image::Image;
use tauri::menu::{Menu, MenuItemBuilder};
use tauri::tray::TrayIconBuilder;
use tauri::{
    AppHandle, Emitter as _, Manager as _, Runtime, State, WebviewUrl, WebviewWindowBuilder,
    WindowEvent,
};
use ts_rs::TS;

pub const TRAY_ID: &str = "jumpgate";
pub const POPOVER: &str = "popover";
const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 560.0;

/// Whether a WebDriver session drives the app (tauri-driver sets this). Builds without test
/// hooks remove the variable at start instead ([`crate::main`]), since Tauri itself would open
/// the webview to automation on it.
pub fn automation() -> bool {
    jumpgate_core::test_hook("TAURI_WEBVIEW_AUTOMATION").is_some_and(|v| v == "true")
}

/// The icon for a state: an RGBA PNG embedded in the binary.
pub fn icon_png(icon: Icon) -> &'static [u8] {
    match icon {
        Icon::SignedOut => include_bytes!("../../icons/tray-signed_out.png"),
        Icon::ApprovalWaiting => include_bytes!("../../icons/tray-approval_waiting.png"),
        Icon::ExpiringSoon => include_bytes!("../../icons/tray-expiring_soon.png"),
        Icon::AccessOpen => include_bytes!("../../icons/tray-access_open.png"),
        Icon::WaitingForApproval => include_bytes!("../../icons/tray-waiting_for_approval.png"),
        Icon::Idle => include_bytes!("../../icons/tray-idle.png"),
    }
}

/// What the popover should show when it opens: a view (`open`, `sign_in`, `targets`,
/// `connect:VM`, `active`, `approvals:REQUEST:approve|deny`, `history`, `help`), a Connect
/// form prefilled from a link, or why a link was refused. The tray's own intents name a VM
/// by resource id; a link may name it by name, and the popover then asks which VM is meant
/// when several have that name, before it fills anything in.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct Intent {
    pub view: String,
    pub prefill: Option<Prefill>,
    pub refused: Option<String>,
}

impl Intent {
    pub fn view(view: impl Into<String>) -> Intent {
        Intent {
            view: view.into(),
            ..Intent::default()
        }
    }
}

/// A Connect form's prefilled values, from a checked `jumpgate://connect` link.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Prefill {
    pub vm: String,
    pub port: Option<u16>,
    /// ISO 8601.
    pub duration: Option<String>,
    pub justification: Option<String>,
}

impl From<ConnectLink> for Prefill {
    fn from(l: ConnectLink) -> Prefill {
        Prefill {
            vm: l.vm,
            port: l.port,
            duration: l.duration.map(to_iso),
            justification: l.justification,
        }
    }
}

/// The intent waiting for a popover that is still loading, and when it was last shown.
#[derive(Default)]
pub struct Intents {
    pending: Mutex<Option<Intent>>,
    shown: Mutex<Option<Instant>>,
}

/// The popover asks, once loaded, what it was opened for.
#[tauri::command]
pub fn take_intent(intents: State<'_, Intents>) -> Option<Intent> {
    intents.pending.lock().ok()?.take()
}

/// The popover has rendered what it was opened for: logs how long that took since it was
/// asked for (what `scripts/bench/tray.sh` reports as opening to interactive).
#[tauri::command]
pub fn popover_ready(intents: State<'_, Intents>) {
    if let Some(shown) = intents.shown.lock().ok().and_then(|mut s| s.take()) {
        tracing::info!(
            "popover interactive in {:.1} ms",
            shown.elapsed().as_secs_f64() * 1000.0
        );
    }
}

/// Closes the popover (Escape, or focus leaving it).
#[tauri::command]
pub fn close_popover<R: Runtime>(app: AppHandle<R>) {
    close(&app);
}

fn close<R: Runtime>(app: &AppHandle<R>) {
    let Some(w) = app.get_webview_window(POPOVER) else {
        return;
    };
    if !w.is_visible().unwrap_or(true) {
        // Hiding it took the focus away: already closed.
        return;
    }
    // Kept hidden under WebDriver, whose session holds the webview.
    let hide = crate::popover::mode() == crate::popover::Mode::Hide || automation();
    let done = if hide { w.hide() } else { w.destroy() };
    match done {
        Ok(()) => tracing::info!(
            "popover closed ({})",
            if hide { "hidden" } else { "destroyed" }
        ),
        Err(e) => tracing::warn!("cannot close the popover: {e}"),
    }
}

fn menu<R: Runtime>(app: &AppHandle<R>, items: &[MenuItem]) -> tauri::Result<Menu<R>> {
    let built = items
        .iter()
        .map(|i| MenuItemBuilder::with_id(i.id(), i.label()).build(app))
        .collect::<tauri::Result<Vec<_>>>()?;
    let refs: Vec<&dyn tauri::menu::IsMenuItem<R>> = built
        .iter()
        .map(|i| i as &dyn tauri::menu::IsMenuItem<R>)
        .collect();
    Menu::with_items(app, &refs)
}

/// Puts the icon in the tray, signed out until the first snapshot says otherwise.
pub fn install<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let items = tray::menu(
        &Snapshot::default(),
        &[],
        &[],
        crate::platform::starts_at_login(app),
    );
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(icon_png(Icon::SignedOut))?)
        .tooltip("Jumpgate: signed out")
        .menu(&menu(app, &items)?)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    tracing::info!("tray icon ready");
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let _ = refresh(&app).await;
        count_down(&app).await;
    });
    Ok(())
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    tracing::info!("tray menu: {id}");
    match id {
        "quit" => app.exit(0),
        "sign_out" => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let engine = app.state::<crate::AppCtx>().engine();
                let out =
                    crate::commands::on_engine(move || async move { Ok(engine.sign_out().await?) })
                        .await;
                if let Err(e) = out {
                    tracing::warn!("cannot sign out: {e}");
                }
                let _ = refresh(&app).await;
            });
        }
        id if id.starts_with("profile:") => {
            let name = id.strip_prefix("profile:").unwrap_or_default().to_string();
            let app = app.clone();
            tauri::async_runtime::spawn(async move { run_profile(&app, &name).await });
        }
        "start_at_login" => {
            let on = !crate::platform::starts_at_login(app);
            if let Err(e) = crate::platform::set_start_at_login(app, on) {
                tracing::warn!("cannot change start at login: {e}");
            }
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let _ = refresh(&app).await;
            });
        }
        _ => {
            // Open, Sign in/out, Approvals and Connect open the popover on their view.
            if let Err(e) = show_popover(app, Intent::view(id)) {
                tracing::warn!("cannot open the popover: {e}");
            }
        }
    }
}

/// Asks for everything a profile names, in the background, as `jumpgate run` does: its roles
/// and groups side by side (each followed through approval, which the watcher announces,
/// and effect), then its jump box, opened for this address and, unless the profile says
/// otherwise, launched. One notification says what came of it. A part whose policy asks for
/// a stronger sign-in is reported: the popover's own forms do that step-up.
async fn run_profile<R: Runtime>(app: &AppHandle<R>, name: &str) {
    // A second click while the first still waits (for an approver, say) sends nothing more.
    static RUNNING: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let started = RUNNING
        .lock()
        .map(|mut r| r.insert(name.to_string()))
        .unwrap_or(false);
    if !started {
        tracing::info!(
            "profile {} is already being asked for",
            jumpgate_core::text::log(name)
        );
        return;
    }
    run_profile_once(app, name).await;
    if let Ok(mut r) = RUNNING.lock() {
        r.remove(name);
    }
}

async fn run_profile_once<R: Runtime>(app: &AppHandle<R>, name: &str) {
    let engine = app.state::<crate::AppCtx>().engine();
    let Some(profile) = engine
        .config
        .profiles
        .iter()
        .find(|p| p.name == name)
        .cloned()
    else {
        tracing::warn!("tray menu: no profile {}", jumpgate_core::text::log(name));
        return;
    };
    let shown = profile.name.clone();
    let outcome =
        crate::commands::on_engine(
            move || async move { Ok(run_profile_on(&engine, &profile).await) },
        )
        .await;
    let notice = match outcome {
        Ok(notice) => notice,
        Err(e) => tray::profile_notice(&shown, &[], &[(shown.clone(), e.to_string())], None),
    };
    tracing::info!(
        "profile {}: {}",
        jumpgate_core::text::log(&shown),
        jumpgate_core::text::log(&notice.title)
    );
    notify_notice(app, notice);
    let _ = refresh(app).await;
}

async fn run_profile_on(
    engine: &jumpgate_azure::engine::Engine,
    profile: &jumpgate_core::config::Profile,
) -> tray::Notice {
    let refused = |what: &str, why: String| {
        tray::profile_notice(&profile.name, &[], &[(what.to_string(), why)], None)
    };
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let (justification, duration, ticket) = match profile.ask(&today, None, None) {
        Ok(a) => (a.justification, a.duration, a.ticket),
        Err(e) => return refused(&profile.name, e.to_string()),
    };
    let timeout = chrono::Duration::hours(2);
    let mut active = Vec::new();
    let mut not_granted = Vec::new();
    if !profile.activate.is_empty() {
        let members = match engine
            .activate_set(
                &profile.activate,
                duration,
                &justification,
                ticket.as_ref(),
                timeout,
            )
            .await
        {
            Ok(m) => m,
            Err(f) => return refused(&profile.name, f.explanation.message),
        };
        for m in members {
            match m.outcome {
                Ok(_) => active.push(m.eligible.map_or(m.wanted, |e| e.role)),
                Err(f) => not_granted.push((m.wanted, f.explanation.message)),
            }
        }
    }
    if !not_granted.is_empty() {
        return tray::profile_notice(&profile.name, &active, &not_granted, None);
    }
    let Some(vm) = &profile.vm else {
        return tray::profile_notice(&profile.name, &active, &[], None);
    };
    let request = jumpgate_azure::engine::ConnectRequest {
        vm: vm.clone(),
        port: profile.port,
        duration,
        justification,
        ticket,
        timeout,
        allow_broad_role: false,
        via: None,
        allow_wide_source: false,
    };
    let opened = async {
        let mut connected = engine.connect(&request).await?;
        if profile.launch.unwrap_or(true) {
            let user = profile
                .username
                .clone()
                .or(engine.config.launch.username.clone());
            engine
                .launch_client(&mut connected, user.as_deref(), true)
                .await?;
        }
        Ok::<_, jumpgate_core::explain::Failure>(format!(
            "{} port {}",
            connected.vm, connected.port
        ))
    }
    .await;
    match opened {
        Ok(what) => tray::profile_notice(&profile.name, &active, &[], Some(&what)),
        Err(f) => tray::profile_notice(
            &profile.name,
            &active,
            &[(vm.clone(), f.explanation.message)],
            None,
        ),
    }
}

/// Shows the popover on an intent: in a helper process of its own (`crate::popover`),
/// which takes its memory with it when it closes, or in this process where that cannot be.
pub fn show_popover<R: Runtime>(app: &AppHandle<R>, intent: Intent) -> tauri::Result<()> {
    if crate::popover::in_process(app) {
        return show_window(app, intent);
    }
    if let Ok(mut shown) = app.state::<Intents>().shown.lock() {
        *shown = Some(Instant::now());
    }
    crate::popover::show(app, intent).map_err(tauri::Error::Io)
}

/// The intent a popover that is still loading takes once its page asks (`take_intent`).
pub fn set_pending<R: Runtime>(app: &AppHandle<R>, intent: Intent) {
    if let Ok(mut pending) = app.state::<Intents>().pending.lock() {
        *pending = Some(intent);
    }
}

/// Shows the popover's window in this process on an intent. A popover that exists is told
/// at once; a new one asks for the intent (`take_intent`) once its page has loaded. It opens
/// at the top right of the screen, where trays usually are, and closes when it loses focus:
/// the window and its web process are destroyed (see README, Measurements).
pub fn show_window<R: Runtime>(app: &AppHandle<R>, intent: Intent) -> tauri::Result<()> {
    let intents = app.state::<Intents>();
    if let Ok(mut shown) = intents.shown.lock() {
        *shown = Some(Instant::now());
    }
    if let Some(window) = app.get_webview_window(POPOVER) {
        window.show()?;
        window.set_focus()?;
        window.emit("intent", &intent)?;
        return Ok(());
    }
    set_pending(app, intent);
    let mut builder = WebviewWindowBuilder::new(app, POPOVER, WebviewUrl::App("index.html".into()))
        .title("Jumpgate")
        .inner_size(WIDTH, HEIGHT)
        .resizable(true)
        .skip_taskbar(true)
        .focused(true);
    if let Some(monitor) = app.primary_monitor()? {
        let scale = monitor.scale_factor();
        let size = monitor.size().to_logical::<f64>(scale);
        builder = builder.position((size.width - WIDTH - 8.0).max(0.0), 32.0);
    }
    let window = builder.build()?;
    let handle = app.clone();
    window.on_window_event(move |event| match event {
        WindowEvent::Focused(false) => close_on_blur(&handle),
        // In the first run there is no tray icon to come back through: closing quits.
        WindowEvent::Destroyed if crate::firstrun::pending(&handle) => {
            tracing::info!("first run: the window was closed before the set-up ended");
            handle.exit(0);
        }
        _ => {}
    });
    Ok(())
}

/// Closes the popover when focus leaves it, unless it was shown a moment ago (the tray
/// menu closing takes focus on some desktops), a WebDriver session drives it, or it holds
/// the first-run form.
fn close_on_blur<R: Runtime>(app: &AppHandle<R>) {
    // The first-run form stays while the person looks up a client id elsewhere.
    if automation() || crate::firstrun::pending(app) {
        return;
    }
    let recent = app
        .state::<Intents>()
        .shown
        .lock()
        .ok()
        .and_then(|s| *s)
        .is_some_and(|t| t.elapsed() < Duration::from_millis(600));
    if !recent {
        close(app);
    }
}

/// What the popover says about a link that failed its checks: fixed, never the link's text.
pub const REFUSED_LINK: &str = "A jumpgate:// link was refused: it is not a Connect link Jumpgate can open safely, so nothing was filled in or sent. Ask whoever sent it for a new link, or connect from here.";

/// Opens a `jumpgate://` link: checked first (RELIABILITY #18), then the popover shows the
/// Connect form prefilled from it. Nothing is sent until the user clicks Connect there. A
/// link that fails its checks is refused and said so.
pub fn open_link<R: Runtime>(app: &AppHandle<R>, raw: &str) {
    let intent = match jumpgate_core::deeplink::parse(raw) {
        Ok(link) => {
            tracing::info!(
                "link: Connect form for {} prefilled (port {}, nothing sent until Connect is clicked)",
                jumpgate_core::text::log(&link.vm),
                link.port.map(|p| p.to_string()).unwrap_or_else(|| "default".into())
            );
            Intent {
                view: format!("connect:{}", link.vm),
                prefill: Some(link.into()),
                refused: None,
            }
        }
        Err(e) => {
            // The reason may quote the link, which anyone can write: it goes to the log,
            // escaped, and the popover shows a fixed message (RELIABILITY #22).
            tracing::warn!("{}", jumpgate_core::text::log(&e.to_string()));
            return refuse_link(app);
        }
    };
    if let Err(e) = show_popover(app, intent) {
        tracing::warn!("cannot open the popover: {e}");
    }
}

/// Shows the popover saying a link was refused, with nothing filled in.
pub fn refuse_link<R: Runtime>(app: &AppHandle<R>) {
    let intent = Intent {
        view: "open".into(),
        prefill: None,
        refused: Some(REFUSED_LINK.into()),
    };
    if let Err(e) = show_popover(app, intent) {
        tracing::warn!("cannot open the popover: {e}");
    }
}

/// What the tray last read, and ARM's clock offset then: the countdown in the tooltip and
/// the switch to "expiring soon" follow from it without reading ARM again.
#[derive(Default)]
pub struct LastRead(Mutex<Option<(Snapshot, chrono::Duration)>>);

/// Every 30 s while something is open, the tooltip's time left and the icon are worked out
/// anew from the last read (no request to ARM).
async fn count_down<R: Runtime>(app: &AppHandle<R>) {
    let soon = crate::commands::expiring_soon(&app.state::<crate::AppCtx>().engine());
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let last = app
            .try_state::<LastRead>()
            .and_then(|l| l.inner().0.lock().ok().and_then(|l| l.clone()));
        let Some((snapshot, offset)) = last.filter(|(s, _)| !s.open.is_empty()) else {
            continue;
        };
        let view = tray::view(chrono::Utc::now() + offset, &snapshot, soon);
        if let Some(icon) = app.tray_by_id(TRAY_ID) {
            let _ = Image::from_bytes(icon_png(view.icon)).map(|i| icon.set_icon(Some(i)));
            let _ = icon.set_tooltip(Some(&view.tooltip));
        }
    }
}

/// Updates the icon, tooltip and menu from the engine's state now, tells an open popover,
/// and answers the state (for a command to return without reading it again).
pub async fn refresh<R: Runtime>(app: &AppHandle<R>) -> crate::commands::CommandResult<AppState> {
    let ctx = app.state::<crate::AppCtx>();
    let (mut state, snapshot) = match crate::commands::snapshot(
        ctx.engine(),
        ctx.demo.is_some(),
        crate::platform::starts_at_login(app),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot read the state for the tray: {e}");
            return Err(e);
        }
    };
    state.tenants = ctx.tenant_names();
    if let Some(icon) = app.tray_by_id(TRAY_ID) {
        let targets: Vec<tray::MenuTarget> = state
            .targets
            .iter()
            .map(|t| tray::MenuTarget {
                vm: t.vm.clone(),
                vm_id: t.vm_id.clone(),
                resource_group: t.resource_group.clone(),
                subscription: t.subscription.clone(),
            })
            .collect();
        let profiles: Vec<String> = ctx
            .engine()
            .config
            .profiles
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let items = tray::menu(&snapshot, &targets, &profiles, state.start_at_login);
        let _ = Image::from_bytes(icon_png(state.icon)).map(|i| icon.set_icon(Some(i)));
        let _ = icon.set_tooltip(Some(&state.tooltip));
        if let Ok(m) = menu(app, &items) {
            let _ = icon.set_menu(Some(m));
        }
    }
    // Anything read for a popover before now is older than this.
    crate::commands::Prefetch::clear(app);
    if let Some(Ok(mut last)) = app.try_state::<LastRead>().map(|l| l.inner().0.lock()) {
        *last = Some((snapshot, state.now - chrono::Utc::now()));
    }
    let _ = app.emit("state", &state);
    Ok(state)
}

/// Runs the engine's watcher for the app's lifetime: each event becomes a notification and
/// an event to the popover, and the tray is refreshed. `approver` polls the approvals inbox
/// from the start (the demo, where anyone may sign in as bob); otherwise the watcher starts
/// polling it once `[watch] approver` says so, a policy the user can read names them as an
/// approver, they have decided a request here, or a request has waited for their decision.
pub fn watch<R: Runtime>(
    app: AppHandle<R>,
    engine: Arc<Engine>,
    approver: bool,
    tenant: Option<String>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<WatchEvent>();
    // The watcher's futures are not `Send`: it runs on a thread of its own.
    let spawned = std::thread::Builder::new()
        .name("jumpgate-watcher".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("the watcher did not start: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                let mut watcher = match Watcher::open(&engine, approver) {
                    Ok(w) => w,
                    Err(f) => {
                        tracing::warn!("the watcher did not start: {}", f.explanation.message);
                        return;
                    }
                };
                let mut sink = move |e: &WatchEvent| {
                    let _ = tx.send(e.clone());
                };
                watcher.run(&mut sink).await;
            });
        });
    if let Err(e) = spawned {
        tracing::warn!("the watcher did not start: {e}");
        return;
    }
    tauri::async_runtime::spawn(async move {
        while let Some(event) = rx.recv().await {
            notify_in(&app, tenant.as_deref(), &event);
            let _ = app.emit("watch", &event);
            let _ = refresh(&app).await;
        }
    });
}

/// What the popover opens for a notification's action (or a click on it).
pub fn intent_for_action(action: &str, opens: &str) -> Option<Intent> {
    let (kind, rest) = action.split_once(':').unwrap_or((action, ""));
    let view = match kind {
        "__closed" => return None,
        "default" => opens.to_string(),
        "connect" => "targets".into(),
        "approve" | "deny" => format!("approvals:{rest}:{kind}"),
        "extend" => format!("active:{rest}"),
        "rerequest" => {
            let (vm, port) = rest.rsplit_once(':')?;
            // Only a resource id: a name may be shared by several VMs (RELIABILITY #31).
            if jumpgate_core::policy::vm_resource_id(vm) != Some(vm) {
                return Some(Intent::view("targets"));
            }
            return Some(Intent {
                view: format!("connect:{vm}"),
                prefill: Some(Prefill {
                    vm: vm.to_string(),
                    port: port.parse().ok(),
                    duration: None,
                    justification: None,
                }),
                refused: None,
            });
        }
        "sign_in" => "sign_in".into(),
        _ => opens.to_string(),
    };
    Some(Intent::view(view))
}

/// A desktop notification for a watcher event, with its actions (`crate::notify`). Where
/// the platform reports which action was clicked, the popover opens on it. Without a
/// notification service (no session bus, say) it is logged instead: the app keeps running.
/// For a watcher of one of several tenants (`tenant`), the notice names its tenant, and its
/// actions open the popover in that tenant.
pub fn notify_in<R: Runtime>(app: &AppHandle<R>, tenant: Option<&str>, event: &WatchEvent) {
    let notice = tray::notice(event);
    match tenant {
        Some(name) => notify_notice_in(app, tray::in_tenant(notice, name), Some(name.to_string())),
        None => notify_notice(app, notice),
    }
}

/// [`notify`] for a notice of the app's own.
fn notify_notice<R: Runtime>(app: &AppHandle<R>, notice: tray::Notice) {
    notify_notice_in(app, notice, None);
}

fn notify_notice_in<R: Runtime>(app: &AppHandle<R>, notice: tray::Notice, tenant: Option<String>) {
    use crate::notify::Notifier as _;
    let notifier = crate::notify::System {
        app_id: app.config().identifier.clone(),
    };
    let handle = app.clone();
    let opens = notice.opens.clone();
    let chosen: crate::notify::Chosen = std::sync::Arc::new(move |action: &str| {
        if let Some(intent) = intent_for_action(action, &opens) {
            if let Some(name) = &tenant {
                handle.state::<crate::AppCtx>().switch(name);
            }
            tracing::info!("notification action {action}: opening {}", intent.view);
            let _ = show_popover(&handle, intent);
        }
    });
    // Showing a notification and waiting for its action are blocking calls.
    let spawned = std::thread::Builder::new()
        .name("jumpgate-notice".into())
        .spawn(move || {
            if let Err(e) = notifier.show(&notice, chosen) {
                tracing::warn!(
                    "notification not shown ({e}): {}: {}",
                    jumpgate_core::text::log(&notice.title),
                    jumpgate_core::text::log(&notice.body)
                );
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("notification not shown: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jumpgate_core::launch::Os;

    #[test]
    fn reliability_22_notification_bodies_from_others_are_inert() {
        let e = WatchEvent::ApprovalWaiting {
            request: "r1".into(),
            approval: "a1".into(),
            requester: "alice".into(),
            role: "JIT Requester".into(),
            scope: "/subscriptions/s".into(),
            justification: Some(
                "see <a href=\"https://evil.example\">the ticket</a>\u{1b}[2J\u{202E}".into(),
            ),
            duration: Some("PT1H".into()),
            ticket: None,
        };
        let body = crate::notify::shown_body(&tray::notice(&e).body, Os::CURRENT);
        assert!(
            !body.chars().any(jumpgate_core::text::is_hostile),
            "{body:?}"
        );
        if Os::CURRENT == Os::Linux {
            assert!(
                !body.contains('<') && body.contains("&lt;a href="),
                "{body}"
            );
        }
    }

    #[test]
    fn every_icon_state_has_an_rgba_png() {
        for icon in [
            Icon::SignedOut,
            Icon::ApprovalWaiting,
            Icon::ExpiringSoon,
            Icon::AccessOpen,
            Icon::WaitingForApproval,
            Icon::Idle,
        ] {
            let image = Image::from_bytes(icon_png(icon)).expect("a PNG");
            assert_eq!((image.width(), image.height()), (32, 32), "{icon:?}");
            assert_eq!(image.rgba().len(), 32 * 32 * 4, "{icon:?} is RGBA");
        }
    }

    #[test]
    fn notification_actions_open_the_popover_on_their_item() {
        let view = |a: &str| intent_for_action(a, "targets:r1").map(|i| i.view);
        assert_eq!(view("default").as_deref(), Some("targets:r1"));
        assert_eq!(view("approve:r2").as_deref(), Some("approvals:r2:approve"));
        assert_eq!(view("deny:r2").as_deref(), Some("approvals:r2:deny"));
        assert_eq!(
            view("extend:port:/vm/x:3389").as_deref(),
            Some("active:port:/vm/x:3389")
        );
        assert_eq!(view("__closed"), None);
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01";
        let re = intent_for_action(&format!("rerequest:{id}:3389"), "").expect("intent");
        assert_eq!(re.view, format!("connect:{id}"));
        let prefill = re.prefill.expect("prefilled");
        assert_eq!((prefill.vm.as_str(), prefill.port), (id, Some(3389)));
        // A re-request names the VM by resource id; a bare name, which several VMs may
        // share, fills nothing in.
        let by_name = intent_for_action("rerequest:jumpbox-win-01:3389", "").expect("intent");
        assert_eq!(by_name.view, "targets");
        assert!(by_name.prefill.is_none());
    }
}
