//! The IPC commands the popover may call (granted one by one in `capabilities/`). Each
//! answers the whole [`AppState`], so the popover re-renders from one value.

use jumpgate_azure::arm;
use jumpgate_azure::signin;
use jumpgate_core::tray::{self, Icon, Snapshot};
use serde::Serialize;
use std::sync::Arc;

use jumpgate_azure::engine::Engine;
use tauri::State;

use crate::AppCtx;

/// What the popover shows.
#[derive(Debug, Clone, Serialize)]
pub struct AppState {
    pub signed_in_as: Option<String>,
    pub demo: bool,
    pub demo_users: Vec<String>,
    pub icon: Icon,
    pub tooltip: String,
    pub targets: Vec<String>,
}

/// Runs engine work to completion on a blocking thread of the same runtime. The engine's
/// futures borrow clients in ways rustc cannot prove `Send`, and Tauri's commands must be.
pub async fn on_engine<T, F, Fut>(f: F) -> Result<T, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, String>>,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(f()))
        .await
        .map_err(|e| format!("the engine stopped: {e}"))?
}

/// The state as the engine knows it now.
pub async fn snapshot(engine: Arc<Engine>, demo: bool) -> Result<AppState, String> {
    on_engine(move || async move {
        let account = engine
            .session
            .current()
            .await
            .map_err(|e| e.to_string())?
            .map(|t| t.account.upn);
        let targets = match &account {
            None => Vec::new(),
            Some(_) => {
                let sub = engine.subscription().await.map_err(|f| f.to_string())?;
                arm::targets(&engine.arm, &sub)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|t| t.vm)
                    .collect()
            }
        };
        let view = tray::view(
            engine.arm.clock.now(),
            &Snapshot {
                signed_in: account.is_some(),
                ..Snapshot::default()
            },
            chrono_minutes(15),
        );
        Ok(AppState {
            signed_in_as: account,
            demo,
            demo_users: if demo {
                crate::demo::USERS.iter().map(|u| u.to_string()).collect()
            } else {
                Vec::new()
            },
            icon: view.icon,
            tooltip: view.tooltip,
            targets,
        })
    })
    .await
}

fn chrono_minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

#[tauri::command]
pub async fn app_state(ctx: State<'_, AppCtx>) -> Result<AppState, String> {
    snapshot(ctx.engine.clone(), ctx.demo.is_some()).await
}

/// Demo mode only: sign in as one of the demo tenant's users, without a browser.
#[tauri::command]
pub async fn sign_in_demo(ctx: State<'_, AppCtx>, upn: String) -> Result<AppState, String> {
    if ctx.demo.is_none() {
        return Err("demo sign-in exists only in demo mode (jumpgate-tray --demo)".into());
    }
    if !crate::demo::USERS.contains(&upn.as_str()) {
        return Err(format!("'{upn}' is not a user of the demo tenant"));
    }
    let engine = ctx.engine.clone();
    on_engine(move || async move {
        let tokens = signin::demo(&engine.authority(), &upn)
            .await
            .map_err(|e| e.to_string())?;
        engine
            .session
            .store()
            .save(&tokens)
            .await
            .map_err(|e| e.to_string())?;
        engine.session.forget_cached().await;
        Ok(())
    })
    .await?;
    snapshot(ctx.engine.clone(), true).await
}

#[tauri::command]
pub async fn sign_out(ctx: State<'_, AppCtx>) -> Result<AppState, String> {
    let engine = ctx.engine.clone();
    on_engine(move || async move { engine.session.sign_out().await.map_err(|e| e.to_string()) })
        .await?;
    snapshot(ctx.engine.clone(), ctx.demo.is_some()).await
}
