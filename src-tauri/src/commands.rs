//! The IPC commands the popover may call (granted one by one in `capabilities/`). Each
//! answers the whole [`AppState`], so the popover re-renders from one value.

use jumpgate_azure::arm;
use jumpgate_azure::signin;
use jumpgate_core::explain::{Failure, Kind};
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

/// What a failed command tells the popover: a kind it can switch on, a stable code, and a
/// message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    Other(Detail),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
            | CommandError::Other(d) => d,
        }
    }

    fn not_available(code: &str, message: impl Into<String>) -> CommandError {
        CommandError::NotAvailable(Detail {
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
        .map_err(|e| {
            CommandError::Other(Detail {
                code: "engine_stopped".into(),
                message: format!("the engine stopped: {e}"),
            })
        })?
}

/// The state as the engine knows it now.
pub async fn snapshot(engine: Arc<Engine>, demo: bool) -> CommandResult<AppState> {
    on_engine(move || async move {
        let account = engine.session.current().await?.map(|t| t.account.upn);
        let targets = match &account {
            None => Vec::new(),
            Some(_) => {
                let sub = engine.subscription().await?;
                arm::targets(&engine.arm, &sub)
                    .await?
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
pub async fn app_state(ctx: State<'_, AppCtx>) -> CommandResult<AppState> {
    snapshot(ctx.engine.clone(), ctx.demo.is_some()).await
}

/// Demo mode only: sign in as one of the demo tenant's users, without a browser.
#[tauri::command]
pub async fn sign_in_demo(ctx: State<'_, AppCtx>, upn: String) -> CommandResult<AppState> {
    if ctx.demo.is_none() {
        return Err(CommandError::not_available(
            "not_demo",
            "demo sign-in exists only in demo mode (jumpgate-tray --demo)",
        ));
    }
    if !crate::demo::USERS.contains(&upn.as_str()) {
        return Err(CommandError::not_available(
            "not_a_demo_user",
            format!("'{upn}' is not a user of the demo tenant"),
        ));
    }
    let engine = ctx.engine.clone();
    on_engine(move || async move {
        let tokens = signin::demo(&engine.authority(), &upn).await?;
        engine.session.store().save(&tokens).await?;
        engine.session.forget_cached().await;
        Ok(())
    })
    .await?;
    snapshot(ctx.engine.clone(), true).await
}

#[tauri::command]
pub async fn sign_out(ctx: State<'_, AppCtx>) -> CommandResult<AppState> {
    let engine = ctx.engine.clone();
    on_engine(move || async move { Ok(engine.session.sign_out().await?) }).await?;
    snapshot(ctx.engine.clone(), ctx.demo.is_some()).await
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
}
