//! The popover in a process of its own, so that closing it gives its memory back.
//!
//! WebKit keeps its network process and the libraries it loaded for as long as the process
//! that made a webview lives (tauri#14626): a tray app that once showed its popover in
//! process stays about 75 MB heavier for the rest of the day. So the app (the engine, the
//! watcher, the tray icon and notifications) never makes a webview. The popover is the same
//! binary started with [`ARG`]: a Tauri app with one window and no engine, which exits when
//! its window closes, taking WebKit with it.
//!
//! The two speak JSON, one object per line, over the helper's stdin and stdout: pipes only
//! the two of them hold, on every platform, and closed by the system when either ends. The
//! helper's IPC handler sends each command the popover invokes to the app ([`FromPopover::Call`]),
//! which runs it as it would for a webview of its own ([`dispatch`]) and answers
//! ([`ToPopover::Reply`]); the app's events (`state`, `engine`, `watch`) follow as
//! [`ToPopover::Event`]. The helper's capabilities are the app's: it checks every command
//! against them before it is sent, and the app accepts only the commands of
//! [`crate::commands::NAMES`].
//!
//! Once the popover has been used, the next helper starts ahead and waits, without a
//! window, for the next show: the popover opens faster by what starting a process costs.
//!
//! A WebDriver session (which drives the webview of the process it started), the first run
//! (whose window is the app's only one) and `JUMPGATE_POPOVER=hide|destroy` (the benchmark's
//! baselines) keep the popover in process.

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tauri::ipc::{InvokeBody, InvokeResolver};
use tauri::{AppHandle, Emitter as _, Listener as _, Manager as _, Runtime};

use crate::commands::{self, CommandError};
use crate::tray::{self, Intent};
use crate::AppCtx;

/// The argument that starts the binary as the popover's helper process.
pub const ARG: &str = "--popover-process";

/// The events the app forwards to a popover in a helper process.
const EVENTS: [&str; 3] = ["state", "engine", "watch"];

/// From the app to the helper.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToPopover {
    /// Come forward on this intent (the helper answers [`FromPopover::Shown`]).
    Show { intent: Intent },
    /// An event for the popover's page.
    Event { name: String, payload: Value },
    /// The answer to a [`FromPopover::Call`]: `ok` resolves the page's promise with `value`,
    /// otherwise it is rejected with it.
    Reply { id: u64, ok: bool, value: Value },
}

/// From the helper to the app.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromPopover {
    /// The page invoked `cmd` with `args` (the IPC payload, keys as the page sent them).
    Call { id: u64, cmd: String, args: Value },
    /// A [`ToPopover::Show`] reached a window.
    Shown,
}

/// Whether the popover runs in the app's own process.
pub fn in_process<R: Runtime>(app: &AppHandle<R>) -> bool {
    tray::automation()
        || matches!(
            std::env::var("JUMPGATE_POPOVER").as_deref(),
            Ok("hide" | "destroy")
        )
        || crate::firstrun::pending(app)
        || app.get_webview_window(tray::POPOVER).is_some()
}

// ---------------------------------------------------------------------------------------
// The app's side.

/// The running helper, if any.
#[derive(Default)]
pub struct Helper(Mutex<Option<Running>>);

struct Running {
    /// Which start this is: a late exit of an earlier helper must not clear a newer one.
    generation: u64,
    stdin: Arc<Mutex<ChildStdin>>,
    /// A show sent but not yet acknowledged: if the helper exits without showing it (it was
    /// closing as it was sent), the next helper opens on it.
    unshown: Option<Intent>,
    /// Whether it has shown a window: one that never did (it could not start, say) is not
    /// replaced on its own.
    worked: bool,
}

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Whether, once the popover has been used, a helper waits started ahead for the next
/// time it opens: it opens faster by what starting a process costs, and holds that idle
/// process meanwhile (see README, Measurements). `JUMPGATE_POPOVER=on-demand` starts one
/// only when asked.
fn prestart() -> bool {
    std::env::var("JUMPGATE_POPOVER").as_deref() != Ok("on-demand")
}

fn send(stdin: &Mutex<ChildStdin>, message: &ToPopover) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    let mut stdin = stdin
        .lock()
        .map_err(|_| std::io::Error::other("the pipe's lock is poisoned"))?;
    stdin.write_all(&line)?;
    stdin.flush()
}

/// Shows the popover in its helper process, which makes its window on the first show and
/// brings it forward on the next ones; one starts if none runs.
pub fn show<R: Runtime>(app: &AppHandle<R>, intent: Intent) -> std::io::Result<()> {
    let helper = app.state::<Helper>();
    let mut slot = helper
        .0
        .lock()
        .map_err(|_| std::io::Error::other("the popover's lock is poisoned"))?;
    let message = ToPopover::Show {
        intent: intent.clone(),
    };
    // A new window reads the state first: read it now, while it is being made.
    if !slot.as_ref().is_some_and(|r| r.worked) {
        commands::Prefetch::start(app);
    }
    if let Some(running) = slot.as_mut() {
        if send(&running.stdin, &message).is_ok() {
            running.unshown = Some(intent);
            return Ok(());
        }
        // Its stdin is closed: it is exiting. A new one starts below.
        *slot = None;
    }
    let mut running = start(app)?;
    send(&running.stdin, &message)?;
    running.unshown = Some(intent);
    *slot = Some(running);
    Ok(())
}

/// Starts a helper ahead of the next show, unless that is turned off or one runs.
pub fn start_ahead<R: Runtime>(app: &AppHandle<R>) {
    if !prestart() || in_process(app) {
        return;
    }
    let Some(helper) = app.try_state::<Helper>() else {
        return;
    };
    let Ok(mut slot) = helper.inner().0.lock() else {
        return;
    };
    if slot.is_none() {
        match start(app) {
            Ok(running) => *slot = Some(running),
            Err(e) => tracing::warn!("cannot start the popover's process ahead: {e}"),
        }
    }
}

fn start<R: Runtime>(app: &AppHandle<R>) -> std::io::Result<Running> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg(ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed) + 1;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(std::io::Error::other("the popover's pipes did not open"));
    };
    let stdin = Arc::new(Mutex::new(stdin));
    let handle = app.clone();
    let pipe = stdin.clone();
    std::thread::Builder::new()
        .name("jumpgate-popover".into())
        .spawn(move || serve(handle, child, generation, stdout, pipe))?;
    Ok(Running {
        generation,
        stdin,
        unshown: None,
        worked: false,
    })
}

/// Reads the helper's calls until it exits, runs each on the app, and answers it. When a
/// helper that worked has gone, a show it never acknowledged opens a new one.
fn serve<R: Runtime>(
    app: AppHandle<R>,
    mut child: Child,
    generation: u64,
    stdout: std::process::ChildStdout,
    stdin: Arc<Mutex<ChildStdin>>,
) {
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<FromPopover>(&line) {
            Ok(FromPopover::Call { id, cmd, args }) => {
                let app = app.clone();
                let stdin = stdin.clone();
                tauri::async_runtime::spawn(async move {
                    let (ok, value) = match dispatch(&app, &cmd, args).await {
                        Ok(v) => (true, v),
                        Err(e) => (false, e),
                    };
                    let _ = send(&stdin, &ToPopover::Reply { id, ok, value });
                });
            }
            Ok(FromPopover::Shown) => {
                if let Some(Ok(mut slot)) = app.try_state::<Helper>().map(|h| h.inner().0.lock()) {
                    if let Some(running) = slot.as_mut().filter(|r| r.generation == generation) {
                        running.unshown = None;
                        running.worked = true;
                    }
                }
            }
            // Not ours: a library writing to stdout. Never echoed: it could be anything.
            Err(_) => tracing::debug!("the popover process wrote a line that is not a message"),
        }
    }
    let status = child.wait();
    tracing::info!(
        "popover closed (its process exited{})",
        match status {
            Ok(s) if !s.success() => format!(", {s}"),
            Err(e) => format!(", {e}"),
            Ok(_) => String::new(),
        }
    );
    let ended = app.try_state::<Helper>().and_then(|h| {
        let mut slot = h.inner().0.lock().ok()?;
        slot.as_ref().filter(|r| r.generation == generation)?;
        slot.take()
    });
    let Some(ended) = ended else { return };
    if !ended.worked {
        if ended.unshown.is_some() {
            tracing::warn!(
                "the popover's process ended before it showed its window: see the lines above"
            );
        }
        return;
    }
    let handle = app.clone();
    let _ = app.run_on_main_thread(move || match ended.unshown {
        Some(intent) => {
            if let Err(e) = tray::show_popover(&handle, intent) {
                tracing::warn!("cannot open the popover: {e}");
            }
        }
        None => start_ahead(&handle),
    });
}

/// Sends the app's events on to a popover in a helper process.
pub fn forward_events<R: Runtime>(app: &AppHandle<R>) {
    for name in EVENTS {
        let handle = app.clone();
        app.listen_any(name, move |event| {
            let Ok(payload) = serde_json::from_str::<Value>(event.payload()) else {
                return;
            };
            let stdin = handle
                .try_state::<Helper>()
                .and_then(|h| Some(h.inner().0.lock().ok()?.as_ref()?.stdin.clone()));
            if let Some(stdin) = stdin {
                let _ = send(
                    &stdin,
                    &ToPopover::Event {
                        name: name.to_string(),
                        payload,
                    },
                );
            }
        });
    }
}

/// Reads one argument of a command, by the name the page sends it under (camelCase, as
/// Tauri's own handler reads it). A missing key reads as `null`, which only an optional
/// argument accepts.
fn arg<T: serde::de::DeserializeOwned>(args: &Value, cmd: &str, key: &str) -> Result<T, Value> {
    T::deserialize(args.get(key).unwrap_or(&Value::Null))
        .map_err(|e| Value::String(format!("invalid args `{key}` for command `{cmd}`: {e}")))
}

fn answer<T: Serialize>(result: Result<T, CommandError>) -> Result<Value, Value> {
    match result {
        Ok(v) => serde_json::to_value(v).map_err(|e| Value::String(e.to_string())),
        Err(e) => Err(serde_json::to_value(e).unwrap_or(Value::Null)),
    }
}

fn ctx<R: Runtime>(app: &AppHandle<R>) -> Result<tauri::State<'_, AppCtx>, Value> {
    app.try_state::<AppCtx>().ok_or_else(|| {
        serde_json::to_value(CommandError::not_available(
            "first_run",
            "Jumpgate is not set up yet: enter your work email to find your organisation.",
        ))
        .unwrap_or(Value::Null)
    })
}

/// Runs a command of [`crate::commands::NAMES`] for a popover in a helper process, as the
/// app's IPC handler runs it for a webview of its own, and answers what the page's promise
/// resolves or is rejected with.
pub async fn dispatch<R: Runtime>(
    app: &AppHandle<R>,
    cmd: &str,
    args: Value,
) -> Result<Value, Value> {
    let a = &args;
    match cmd {
        "app_state" => answer(commands::app_state(app.clone()).await),
        "sign_in_demo" => {
            answer(commands::sign_in_demo(app.clone(), ctx(app)?, arg(a, cmd, "upn")?).await)
        }
        "sign_in" => answer(commands::sign_in(app.clone(), ctx(app)?, app.state()).await),
        "cancel_sign_in" => {
            commands::cancel_sign_in(app.state());
            Ok(Value::Null)
        }
        "sign_out" => answer(commands::sign_out(app.clone(), ctx(app)?).await),
        "connect" => answer(commands::connect(app.clone(), ctx(app)?, arg(a, cmd, "form")?).await),
        "check_connect" => answer(Ok(commands::check_connect(ctx(app)?, arg(a, cmd, "form")?))),
        "extend" => answer(
            commands::extend(
                app.clone(),
                ctx(app)?,
                arg(a, cmd, "what")?,
                arg(a, cmd, "duration")?,
                arg(a, cmd, "justification")?,
            )
            .await,
        ),
        "end_role" => answer(
            commands::end_role(
                app.clone(),
                ctx(app)?,
                arg(a, cmd, "role")?,
                arg(a, cmd, "justification")?,
            )
            .await,
        ),
        "approvals" => answer(commands::approvals(ctx(app)?).await),
        "decide" => answer(
            commands::decide(
                app.clone(),
                ctx(app)?,
                arg(a, cmd, "request")?,
                arg(a, cmd, "approve")?,
                arg(a, cmd, "justification")?,
            )
            .await,
        ),
        "history" => answer(commands::history(ctx(app)?, arg(a, cmd, "query")?).await),
        "export_history" => answer(
            commands::export_history(ctx(app)?, arg(a, cmd, "query")?, arg(a, cmd, "format")?)
                .await,
        ),
        "diagnose" => {
            answer(commands::diagnose(ctx(app)?, arg(a, cmd, "vm")?, arg(a, cmd, "port")?).await)
        }
        "set_start_at_login" => {
            answer(commands::set_start_at_login(app.clone(), arg(a, cmd, "on")?).await)
        }
        // The helper answers these two from its own window; an in-process popover's
        // intent is the app's.
        "remember_target" => answer(
            commands::remember_target(ctx(app)?, arg(a, cmd, "vmId")?, arg(a, cmd, "what")?).await,
        ),
        "take_intent" => answer(Ok(tray::take_intent(app.state()))),
        "popover_ready" => {
            tray::popover_ready(app.state());
            Ok(Value::Null)
        }
        "close_popover" => Ok(Value::Null),
        "discover_tenant" => answer(
            crate::firstrun::discover_tenant(
                app.clone(),
                arg(a, cmd, "email")?,
                arg(a, cmd, "authority")?,
            )
            .await,
        ),
        "write_first_config" => answer(
            crate::firstrun::write_first_config(
                app.clone(),
                arg(a, cmd, "email")?,
                arg(a, cmd, "authority")?,
                arg(a, cmd, "tenantId")?,
                arg(a, cmd, "signIn")?,
            )
            .await,
        ),
        _ => Err(Value::String(format!("command {cmd} not found"))),
    }
}

// ---------------------------------------------------------------------------------------
// The helper's side.

type Pending<R> = Arc<Mutex<HashMap<u64, InvokeResolver<R>>>>;

/// The helper process: the popover's window, whose commands go to the app over stdout and
/// whose answers and events come back on stdin. It exits when its window closes, or when
/// the app has gone (its stdin ends).
pub fn run_helper(context: tauri::Context<tauri::Wry>) -> std::process::ExitCode {
    tracing::debug!("popover process: started");
    let pending: Pending<tauri::Wry> = Arc::default();
    let next = Arc::new(AtomicU64::new(1));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let calls = pending.clone();
    let writer = out.clone();
    let built = tauri::Builder::default()
        .manage(tray::Intents::default())
        .invoke_handler(move |invoke| {
            let cmd = invoke.message.command().to_string();
            // Its own window's commands, answered here.
            let app = invoke.message.webview().app_handle().clone();
            match cmd.as_str() {
                "close_popover" => {
                    tray::close_popover(app);
                    invoke.resolver.resolve(());
                    return true;
                }
                "take_intent" => {
                    invoke.resolver.resolve(tray::take_intent(app.state()));
                    return true;
                }
                _ => {}
            }
            let InvokeBody::Json(args) = invoke.message.payload() else {
                invoke
                    .resolver
                    .reject(format!("invalid args for command `{cmd}`"));
                return true;
            };
            let id = next.fetch_add(1, Ordering::Relaxed);
            let line = FromPopover::Call {
                id,
                cmd,
                args: args.clone(),
            };
            if let Ok(mut calls) = calls.lock() {
                calls.insert(id, invoke.resolver);
            }
            if write_line(&writer, &line).is_err() {
                if let Some(resolver) = calls.lock().ok().and_then(|mut c| c.remove(&id)) {
                    resolver.reject("Jumpgate has quit: start it again.");
                }
            }
            true
        })
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            tracing::debug!("popover process: set up");
            let handle = app.handle().clone();
            std::thread::Builder::new()
                .name("jumpgate-popover-stdin".into())
                .spawn(move || listen(handle, pending, out))?;
            Ok(())
        })
        .build(context);
    let app = match built {
        Ok(app) => app,
        Err(e) => {
            eprintln!("jumpgate-tray (popover): {e}");
            return std::process::ExitCode::from(1);
        }
    };
    // Its last window closed: the process ends, and WebKit with it.
    app.run(|_, _| {});
    std::process::ExitCode::SUCCESS
}

fn write_line(out: &Mutex<std::io::Stdout>, message: &FromPopover) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    let mut out = out
        .lock()
        .map_err(|_| std::io::Error::other("stdout's lock is poisoned"))?;
    out.write_all(&line)?;
    out.flush()
}

/// Reads the app's messages until its pipe ends, then closes the popover.
fn listen<R: Runtime>(app: AppHandle<R>, pending: Pending<R>, out: Arc<Mutex<std::io::Stdout>>) {
    let opened = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(message) = serde_json::from_str::<ToPopover>(&line) else {
            tracing::warn!("the popover got a line from the app that is not a message");
            continue;
        };
        match message {
            ToPopover::Reply { id, ok, value } => {
                if let Some(resolver) = pending.lock().ok().and_then(|mut p| p.remove(&id)) {
                    if ok {
                        resolver.resolve(value);
                    } else {
                        resolver.reject(value);
                    }
                }
            }
            ToPopover::Event { name, payload } => {
                let _ = app.emit_to(tray::POPOVER, &name, payload);
            }
            ToPopover::Show { intent } => {
                let handle = app.clone();
                let out = out.clone();
                let opened = opened.clone();
                let _ = app.run_on_main_thread(move || {
                    // The first show makes the window. Once it has closed, the process is
                    // ending and shows nothing more: the app starts a new one.
                    let window = handle.get_webview_window(tray::POPOVER).is_some();
                    if window == opened.load(Ordering::Relaxed) {
                        match tray::show_window(&handle, intent) {
                            Ok(()) => {
                                opened.store(true, Ordering::Relaxed);
                                tracing::debug!("popover process: shown");
                                let _ = write_line(&out, &FromPopover::Shown);
                            }
                            Err(e) => tracing::warn!("cannot open the popover: {e}"),
                        }
                    }
                });
            }
        }
    }
    // The app has gone: nothing could answer the popover any more.
    app.exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_each_way() {
        let call: FromPopover = serde_json::from_str(
            r#"{"t":"call","id":7,"cmd":"decide","args":{"request":"r","approve":true}}"#,
        )
        .expect("a call");
        assert!(matches!(call, FromPopover::Call { id: 7, ref cmd, .. } if cmd == "decide"));
        let reply = serde_json::to_string(&ToPopover::Reply {
            id: 7,
            ok: false,
            value: serde_json::json!({"kind": "invalid", "data": {"message": "a\nb"}}),
        })
        .expect("json");
        assert!(!reply.contains('\n'), "{reply}");
        let show = serde_json::to_string(&ToPopover::Show {
            intent: Intent::view("approvals"),
        })
        .expect("json");
        let back: ToPopover = serde_json::from_str(&show).expect("a show");
        assert!(matches!(back, ToPopover::Show { intent } if intent.view == "approvals"));
    }

    #[test]
    fn arguments_are_read_by_their_page_names() {
        let args = serde_json::json!({"tenantId": "t", "port": 22});
        assert_eq!(
            arg::<String>(&args, "write_first_config", "tenantId").ok(),
            Some("t".to_string())
        );
        assert_eq!(arg::<Option<u16>>(&args, "diagnose", "vm").ok(), Some(None));
        let missing = arg::<String>(&args, "sign_in_demo", "upn").expect_err("missing");
        assert!(
            missing
                .as_str()
                .is_some_and(|m| m.contains("invalid args `upn` for command `sign_in_demo`")),
            "{missing}"
        );
    }
}
