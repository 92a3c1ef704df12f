//! The first run: started with no configuration, the app opens the popover on a form (a work
//! email, then the organisation's client id or the Azure CLI's `az login`) instead of
//! exiting. `discover_tenant` finds the tenant from the email's domain; `write_first_config`
//! writes the configuration (0600, never over an existing file), starts the engine, the tray
//! and the watcher as a normal start does, and answers the signed-out state, so the popover
//! goes on to Sign in without a restart. Input is checked by `core::firstrun`, whoever calls.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use jumpgate_azure::engine::Engine;
use jumpgate_azure::firstrun::{self as io, DiscoveryError, WriteError};
use jumpgate_core::config;
use jumpgate_core::firstrun::{self, FirstConfig, FirstRunError, Method};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager as _, Runtime, State};
use ts_rs::TS;

use crate::commands::{AppState, CommandError, CommandResult, Detail};

/// Where the first run writes, and the files the configuration is then read from.
#[derive(Debug)]
pub struct FirstRun {
    /// The user's file: `--config PATH`, `JUMPGATE_CONFIG` or the platform config dir.
    pub user: PathBuf,
    explicit: Option<PathBuf>,
    env_user: Option<PathBuf>,
    env_system: Option<PathBuf>,
    done: AtomicBool,
}

impl FirstRun {
    /// `Some` when there is nothing to start the engine on: no user's file, and no system
    /// file that names the tenant (`config::first_run`).
    pub fn needed(
        explicit: Option<PathBuf>,
        env_user: Option<PathBuf>,
        env_system: Option<PathBuf>,
    ) -> Option<FirstRun> {
        let user = config::first_run(explicit.as_deref(), env_user.clone(), env_system.clone())?;
        Some(FirstRun {
            user,
            explicit,
            env_user,
            env_system,
            done: AtomicBool::new(false),
        })
    }

    /// From the app's options and the environment, as the configuration is looked for.
    pub fn from_env(options: &crate::Options) -> Option<FirstRun> {
        if options.demo {
            return None;
        }
        FirstRun::needed(
            options.config.clone(),
            std::env::var_os("JUMPGATE_CONFIG").map(PathBuf::from),
            jumpgate_core::test_hook("JUMPGATE_SYSTEM_CONFIG").map(PathBuf::from),
        )
    }

    /// Whether the configuration is still to be written.
    pub fn pending(&self) -> bool {
        !self.done.load(Ordering::SeqCst)
    }

    fn load(&self) -> Result<config::Config, config::ConfigError> {
        let layers = config::locate_layers(
            self.explicit.as_deref(),
            self.env_user.clone(),
            self.env_system.clone(),
        )?;
        config::load_layers(&layers)
    }
}

/// Whether the app is still in its first run (the popover stays open when it loses focus,
/// and closing it quits, as there is no tray icon yet).
pub fn pending<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.try_state::<FirstRun>().is_some_and(|f| f.pending())
}

/// The tenant behind an email, as the popover shows it before saving.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Discovered {
    pub email: String,
    pub domain: String,
    pub tenant_id: String,
    /// Where the configuration will be written.
    pub config_path: String,
}

/// How the person signs in, as the first-run form sends it.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignInChoice {
    /// The organisation's app registration for Jumpgate.
    App { client_id: String },
    /// The Azure CLI's `az login`: no app registration.
    AzureCli,
}

fn refused(e: FirstRunError) -> CommandError {
    CommandError::Invalid(Detail {
        code: e.code().into(),
        message: capitalised(&e.to_string()),
    })
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn first_run<'a>(state: &'a Option<State<'_, FirstRun>>) -> CommandResult<&'a FirstRun> {
    match state.as_deref() {
        Some(f) if f.pending() => Ok(f),
        _ => Err(CommandError::NotAvailable(Detail {
            code: "configured".into(),
            message: "Jumpgate is already set up: its configuration is in use.".into(),
        })),
    }
}

/// Finds the organisation (its Entra ID tenant) behind a work email, through the authority's
/// OpenID discovery for the email's domain.
#[tauri::command]
pub async fn discover_tenant<R: Runtime>(
    app: AppHandle<R>,
    email: String,
    authority: String,
) -> CommandResult<Discovered> {
    let state = app.try_state::<FirstRun>();
    let config_path = first_run(&state)?.user.display().to_string();
    let (email, domain) = firstrun::domain_of(&email).map_err(refused)?;
    let authority = firstrun::authority(&authority).map_err(refused)?;
    let tenant_id = {
        let domain = domain.clone();
        crate::commands::on_engine(move || async move {
            io::tenant_of(&authority, &domain)
                .await
                .map_err(|e| match e {
                    DiscoveryError::Refused(r) => refused(r),
                    DiscoveryError::Failed(f) => f.into(),
                })
        })
        .await?
    };
    Ok(Discovered {
        email,
        domain,
        tenant_id,
        config_path,
    })
}

/// Writes the configuration (never over an existing file), then starts the engine, the tray
/// and the watcher on it, and answers the state: signed out, ready for Sign in.
#[tauri::command]
pub async fn write_first_config<R: Runtime>(
    app: AppHandle<R>,
    email: String,
    authority: String,
    tenant_id: String,
    sign_in: SignInChoice,
) -> CommandResult<AppState> {
    let state = app.try_state::<FirstRun>();
    let first = first_run(&state)?;
    let (email, domain) = firstrun::domain_of(&email).map_err(refused)?;
    let authority = firstrun::authority(&authority).map_err(refused)?;
    let tenant_id = firstrun::tenant_id(&tenant_id).map_err(refused)?;
    let method = match sign_in {
        SignInChoice::App { client_id } => Method::App {
            client_id: firstrun::client_id(&client_id).map_err(refused)?,
        },
        SignInChoice::AzureCli => Method::AzureCli,
    };
    let text = FirstConfig {
        email,
        domain,
        tenant_id,
        method,
        authority,
    }
    .to_toml();
    io::write_config(&first.user, &text, false).map_err(|e| match e {
        WriteError::Exists(_) => CommandError::Conflict(Detail {
            code: "config_exists".into(),
            message: format!(
                "{} appeared meanwhile, and Jumpgate leaves it as it is: start Jumpgate again to use it.",
                first.user.display()
            ),
        }),
        WriteError::Io { .. } => CommandError::Other(Detail {
            code: "config_write".into(),
            message: capitalised(&e.to_string()),
        }),
    })?;
    tracing::info!("first run: wrote {}", first.user.display());
    let loaded = first.load().map_err(|e| {
        CommandError::Other(Detail {
            code: "config".into(),
            message: format!("The configuration was written but does not load: {e}"),
        })
    })?;
    let engine = Arc::new(Engine::new(loaded)?);
    first.done.store(true, Ordering::SeqCst);
    app.manage(crate::AppCtx::new(engine.clone(), None));
    let handle = app.clone();
    app.run_on_main_thread(move || crate::run_engine(&handle, engine, false))
        .map_err(|e| {
            CommandError::Other(Detail {
                code: "start".into(),
                message: format!("The configuration is written, but the app could not start on it ({e}): start Jumpgate again."),
            })
        })?;
    crate::tray::refresh(&app).await
}
