//! The tray icon and its menu, the popover window, and the watcher's events as desktop
//! notifications (notify-rust) and as an event to the popover.

use std::sync::Arc;

use jumpgate_azure::engine::Engine;
use jumpgate_azure::watch::Watcher;
use jumpgate_core::events::WatchEvent;
use jumpgate_core::tray::{self, Icon, MenuItem, Snapshot};
use tauri::image::Image;
use tauri::menu::{Menu, MenuItemBuilder};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter as _, Manager as _, WebviewUrl, WebviewWindowBuilder};

pub const TRAY_ID: &str = "jumpgate";
pub const POPOVER: &str = "popover";

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

fn menu(app: &AppHandle, items: &[MenuItem]) -> tauri::Result<Menu<tauri::Wry>> {
    let built = items
        .iter()
        .map(|i| MenuItemBuilder::with_id(i.id(), i.label()).build(app))
        .collect::<tauri::Result<Vec<_>>>()?;
    let refs: Vec<&dyn tauri::menu::IsMenuItem<tauri::Wry>> = built
        .iter()
        .map(|i| i as &dyn tauri::menu::IsMenuItem<tauri::Wry>)
        .collect();
    Menu::with_items(app, &refs)
}

/// Puts the icon in the tray, signed out until the first snapshot says otherwise.
pub fn install(app: &AppHandle) -> tauri::Result<()> {
    let items = tray::menu(&Snapshot::default(), &[], false);
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(icon_png(Icon::SignedOut))?)
        .tooltip("Jumpgate: signed out")
        .menu(&menu(app, &items)?)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    tracing::info!("tray icon ready");
    let app = app.clone();
    tauri::async_runtime::spawn(async move { refresh(&app).await });
    Ok(())
}

fn on_menu(app: &AppHandle, id: &str) {
    match id {
        "quit" => app.exit(0),
        _ => {
            // Open, Sign in, Approvals and Connect all open the popover on their view.
            if let Err(e) = show_popover(app, id) {
                tracing::warn!("cannot open the popover: {e}");
            }
        }
    }
}

/// Shows the popover, creating it when it does not exist, and tells it what to show.
pub fn show_popover(app: &AppHandle, view: &str) -> tauri::Result<()> {
    let window = match app.get_webview_window(POPOVER) {
        Some(w) => w,
        None => WebviewWindowBuilder::new(app, POPOVER, WebviewUrl::App("index.html".into()))
            .title("Jumpgate")
            .inner_size(380.0, 520.0)
            .resizable(false)
            .build()?,
    };
    window.show()?;
    window.set_focus()?;
    window.emit("open_view", view)?;
    Ok(())
}

/// Opens a `jumpgate://` link: checked first (RELIABILITY #18), then the popover shows the
/// Connect form prefilled from it. Nothing is sent until the user clicks Connect there. A
/// link that fails its checks is refused and said so.
pub fn open_link(app: &AppHandle, raw: &str) {
    match jumpgate_core::deeplink::parse(raw) {
        Ok(link) => {
            tracing::info!(
                "link: Connect form for {} prefilled (port {}, nothing sent until Connect is clicked)",
                link.vm,
                link.port.map(|p| p.to_string()).unwrap_or_else(|| "default".into())
            );
            if let Err(e) = show_popover(app, &format!("connect:{}", link.vm)) {
                tracing::warn!("cannot open the popover: {e}");
            }
            let _ = app.emit("prefill_connect", &link);
        }
        Err(e) => {
            tracing::warn!("{e}");
            let _ = show_popover(app, "open");
            let _ = app.emit("link_refused", e.to_string());
        }
    }
}

/// Updates the icon, tooltip and menu from the engine's state now.
pub async fn refresh(app: &AppHandle) {
    let ctx = app.state::<crate::AppCtx>();
    let state = match crate::commands::snapshot(ctx.engine.clone(), ctx.demo.is_some()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot read the state for the tray: {e}");
            return;
        }
    };
    let snapshot = Snapshot {
        signed_in: state.signed_in_as.is_some(),
        ..Snapshot::default()
    };
    if let Some(icon) = app.tray_by_id(TRAY_ID) {
        let items = tray::menu(&snapshot, &state.targets, false);
        let _ = Image::from_bytes(icon_png(state.icon)).map(|i| icon.set_icon(Some(i)));
        let _ = icon.set_tooltip(Some(&state.tooltip));
        if let Ok(m) = menu(app, &items) {
            let _ = icon.set_menu(Some(m));
        }
    }
}

/// Runs the engine's watcher for the app's lifetime: each event becomes a notification and
/// an event to the popover, and the tray is refreshed.
pub fn watch(app: AppHandle, engine: Arc<Engine>) {
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
                let mut watcher = match Watcher::open(&engine, false) {
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
            // Showing a notification is a blocking D-Bus call.
            let shown = event.clone();
            let _ = tauri::async_runtime::spawn_blocking(move || notify(&shown)).await;
            let _ = app.emit("watch", &event);
            refresh(&app).await;
        }
    });
}

/// A desktop notification for a watcher event. Without a notification daemon (no session
/// bus) it is logged instead: the app keeps running.
pub fn notify(event: &WatchEvent) {
    let notice = tray::notice(event);
    let mut n = notify_rust::Notification::new();
    n.appname("Jumpgate")
        .summary(&notice.title)
        .body(&notice.body);
    for a in &notice.actions {
        n.action(&a.id, &a.label);
    }
    if notice.urgent {
        n.urgency(notify_rust::Urgency::Critical);
    }
    if let Err(e) = n.show() {
        tracing::warn!(
            "notification not shown ({e}): {}: {}",
            notice.title,
            notice.body
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
