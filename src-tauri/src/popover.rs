//! The popover in a process of its own, so that closing it gives its memory back.
//!
//! WebKit keeps its network process and the libraries it loaded for as long as the process
//! that made a webview lives (tauri#14626): a tray app that once showed its popover in
//! process stays about 75 MB heavier for the rest of the day. So the app (the engine, the
//! watcher, the tray icon and notifications) never makes a webview. The popover is the same
//! binary started with [`ARG`]: a Tauri app with one window and no engine, which the app
//! ends when its window closes, taking WebKit with it.
//!
//! The two speak JSON, one object per line, over the helper's stdin and stdout: pipes only
//! the two of them hold (the helper keeps them from the processes WebKit starts), closed by
//! the system when either ends. The
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
use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
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
    /// Come forward on this intent (the helper answers [`FromPopover::Shown`] with its id).
    Show { id: u64, intent: Intent },
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
    /// The [`ToPopover::Show`] with this id reached a window.
    Shown { id: u64 },
    /// Its window has closed: the app ends the process (see [`run_helper`]).
    Closed,
}

/// How the popover runs (`JUMPGATE_POPOVER`; see README, Measurements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In a helper process; once used, the next one starts ahead (the default).
    Ahead,
    /// In a helper process started when asked (`on-demand`).
    OnDemand,
    /// In the app's process, destroyed on close (`destroy`).
    Destroy,
    /// In the app's process, hidden on close (`hide`): it reopens at once, and its web
    /// process stays.
    Hide,
}

pub fn mode() -> Mode {
    // A measuring switch (scripts/bench/tray.py), for builds with the demo only.
    if !cfg!(feature = "demo") {
        return Mode::Ahead;
    }
    match std::env::var("JUMPGATE_POPOVER").as_deref() {
        Ok("on-demand") => Mode::OnDemand,
        Ok("destroy") => Mode::Destroy,
        Ok("hide") => Mode::Hide,
        _ => Mode::Ahead,
    }
}

/// Whether the popover runs in the app's own process.
pub fn in_process<R: Runtime>(app: &AppHandle<R>) -> bool {
    tray::automation()
        || matches!(mode(), Mode::Destroy | Mode::Hide)
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
    /// Lines for its stdin, written by a thread of their own: a helper that is slow to read
    /// never holds up the thread that sends (the main thread, an event's emitter).
    tx: mpsc::Sender<Vec<u8>>,
    /// The last show sent and not yet acknowledged: if the helper exits without showing it
    /// (it was closing as it was sent), the next helper opens on it.
    unshown: Option<(u64, Intent)>,
    /// Whether it has shown a window: one that never did is not replaced on its own, except
    /// once for one started ahead.
    worked: bool,
    /// Started ahead of a show, rather than for one.
    ahead: bool,
}

static GENERATION: AtomicU64 = AtomicU64::new(0);
static SHOWS: AtomicU64 = AtomicU64::new(0);

/// The longest line either side reads: far more than any answer the popover shows (a
/// longer answer is refused before it is sent); a longer line is skipped whole.
const MAX_LINE: usize = 8 << 20;

/// A line read from a pipe.
enum Line {
    Text(Vec<u8>),
    TooLong,
    End,
}

/// The next line, without its newline, of at most [`MAX_LINE`] bytes.
fn next_line(reader: &mut impl BufRead) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let read = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if read == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Line::Text(buf));
    }
    if buf.len() <= MAX_LINE {
        // The last line, with no newline after it.
        return Ok(Line::Text(buf));
    }
    loop {
        buf.clear();
        let read = reader.by_ref().take(1 << 16).read_until(b'\n', &mut buf)?;
        if read == 0 || buf.last() == Some(&b'\n') {
            return Ok(Line::TooLong);
        }
    }
}

/// Queues a message for the helper; an error when it has stopped reading (it is exiting).
fn send(tx: &mpsc::Sender<Vec<u8>>, message: &ToPopover) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    tx.send(line)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
}

/// Shows the popover in its helper process, which makes its window on the first show and
/// brings it forward on the next ones; one starts if none runs.
pub fn show<R: Runtime>(app: &AppHandle<R>, intent: Intent) -> std::io::Result<()> {
    let helper = app.state::<Helper>();
    let mut slot = helper
        .0
        .lock()
        .map_err(|_| std::io::Error::other("the popover's lock is poisoned"))?;
    let id = SHOWS.fetch_add(1, Ordering::Relaxed) + 1;
    let message = ToPopover::Show {
        id,
        intent: intent.clone(),
    };
    // A new window reads the state first: read it now, while it is being made.
    if !slot.as_ref().is_some_and(|r| r.worked) {
        commands::Prefetch::start(app);
    }
    if let Some(running) = slot.as_mut() {
        if send(&running.tx, &message).is_ok() {
            running.unshown = Some((id, intent));
            return Ok(());
        }
        // It has stopped reading: it is exiting. A new one starts below.
        *slot = None;
    }
    let mut running = start(app, false)?;
    send(&running.tx, &message)?;
    running.unshown = Some((id, intent));
    *slot = Some(running);
    Ok(())
}

/// Starts a helper ahead of the next show, unless that is turned off or one runs: the
/// popover then opens faster by what starting a process costs, and the idle helper is held
/// meanwhile.
pub fn start_ahead<R: Runtime>(app: &AppHandle<R>) {
    if mode() != Mode::Ahead || in_process(app) {
        return;
    }
    let Some(helper) = app.try_state::<Helper>() else {
        return;
    };
    let Ok(mut slot) = helper.inner().0.lock() else {
        return;
    };
    if slot.is_none() {
        match start(app, true) {
            Ok(running) => *slot = Some(running),
            Err(e) => tracing::warn!("cannot start the popover's process ahead: {e}"),
        }
    }
}

/// This binary. On Linux, once a package upgrade has replaced its file, `/proc/self/exe`,
/// which still reaches the one that runs.
fn this_binary() -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    if cfg!(target_os = "linux") && !exe.exists() {
        return Ok("/proc/self/exe".into());
    }
    Ok(exe)
}

fn start<R: Runtime>(app: &AppHandle<R>, ahead: bool) -> std::io::Result<Running> {
    let mut command = Command::new(this_binary()?);
    command
        .args([ARG, env!("CARGO_PKG_VERSION")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt as _;
        // No console window of its own for the helper.
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        command.creation_flags(CREATE_NO_WINDOW);
    }
    let mut child = command.spawn()?;
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed) + 1;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::io::Error::other("the popover's pipes did not open"));
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let writer = std::thread::Builder::new()
        .name("jumpgate-popover-in".into())
        .spawn(move || {
            for line in rx {
                if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = writer {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let handle = app.clone();
    let replies = tx.clone();
    // The child moves into the thread only if it starts: otherwise it is ended here.
    let child = Arc::new(Mutex::new(Some(child)));
    let owned = child.clone();
    let reader = std::thread::Builder::new()
        .name("jumpgate-popover-out".into())
        .spawn(move || {
            let child = owned.lock().ok().and_then(|mut c| c.take());
            if let Some(child) = child {
                serve(handle, child, generation, stdout, replies);
            }
        });
    if let Err(e) = reader {
        if let Some(mut child) = child.lock().ok().and_then(|mut c| c.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        return Err(e);
    }
    Ok(Running {
        generation,
        tx,
        unshown: None,
        worked: false,
        ahead,
    })
}

/// The answer to a call, as a line the helper will read: one too long to read is refused.
fn reply(id: u64, result: Result<Value, CommandError>) -> ToPopover {
    let (ok, value) = match result {
        Ok(v) => (true, v),
        Err(e) => (false, serde_json::to_value(e).unwrap_or(Value::Null)),
    };
    let size = serde_json::to_vec(&value).map_or(usize::MAX, |b| b.len());
    if size > MAX_LINE - 1024 {
        let refused = CommandError::not_available(
            "too_large",
            "That answer is too large for the popover: narrow the search, or export it.",
        );
        return ToPopover::Reply {
            id,
            ok: false,
            value: serde_json::to_value(refused).unwrap_or(Value::Null),
        };
    }
    ToPopover::Reply { id, ok, value }
}

/// Reads the helper's calls until it exits, runs each on the app, and answers it. When a
/// helper that worked has gone, a show it never acknowledged opens a new one; so does a
/// show that reached a helper started ahead that then failed, once.
fn serve<R: Runtime>(
    app: AppHandle<R>,
    mut child: Child,
    generation: u64,
    stdout: std::process::ChildStdout,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let mut reader = std::io::BufReader::new(stdout);
    // Whether the app ended it, once its window had closed.
    let mut ended = false;
    loop {
        let line = match next_line(&mut reader) {
            Ok(Line::Text(line)) => line,
            Ok(Line::TooLong) => {
                tracing::warn!("the popover process wrote a line too long to read");
                continue;
            }
            Ok(Line::End) => break,
            Err(e) => {
                tracing::warn!("cannot read the popover process: {e}");
                let _ = child.kill();
                break;
            }
        };
        match serde_json::from_slice::<FromPopover>(&line) {
            Ok(FromPopover::Call { id, cmd, args }) => {
                let app = app.clone();
                let tx = tx.clone();
                tauri::async_runtime::spawn(async move {
                    let started = std::time::Instant::now();
                    let answer = dispatch(&app, &cmd, args).await;
                    tracing::debug!(
                        "popover call {} answered in {:.1} ms",
                        jumpgate_core::text::log(&cmd),
                        started.elapsed().as_secs_f64() * 1000.0
                    );
                    let _ = send(&tx, &reply(id, answer));
                });
            }
            Ok(FromPopover::Shown { id }) => {
                if let Some(Ok(mut slot)) = app.try_state::<Helper>().map(|h| h.inner().0.lock()) {
                    if let Some(running) = slot.as_mut().filter(|r| r.generation == generation) {
                        running.worked = true;
                        if running.unshown.as_ref().is_some_and(|(u, _)| *u == id) {
                            running.unshown = None;
                        }
                    }
                }
            }
            Ok(FromPopover::Closed) => {
                ended = true;
                let _ = child.kill();
            }
            // Not ours: never echoed, it could be anything.
            Err(_) => tracing::debug!("the popover process wrote a line that is not a message"),
        }
    }
    drop(tx);
    let status = child.wait();
    tracing::info!(
        "popover closed (its process exited{})",
        match status {
            Ok(s) if !s.success() && !ended => format!(", {s}"),
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
    let again = ended.worked || ended.ahead;
    match ended.unshown {
        Some(_) if !again => {
            tracing::warn!(
                "the popover's process ended before it showed its window: see the lines above"
            );
        }
        Some((_, intent)) => {
            let handle = app.clone();
            let _ = app.run_on_main_thread(move || {
                if let Err(e) = tray::show_popover(&handle, intent) {
                    tracing::warn!("cannot open the popover: {e}");
                }
            });
        }
        None if ended.worked => {
            let handle = app.clone();
            let _ = app.run_on_main_thread(move || start_ahead(&handle));
        }
        None => {}
    }
}

/// Sends the app's events on to a popover in a helper process.
pub fn forward_events<R: Runtime>(app: &AppHandle<R>) {
    for name in EVENTS {
        let handle = app.clone();
        app.listen_any(name, move |event| {
            let Ok(payload) = serde_json::from_str::<Value>(event.payload()) else {
                return;
            };
            let tx = handle
                .try_state::<Helper>()
                .and_then(|h| Some(h.inner().0.lock().ok()?.as_ref()?.tx.clone()));
            if let Some(tx) = tx {
                let _ = send(
                    &tx,
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
fn arg<T: serde::de::DeserializeOwned>(
    args: &Value,
    cmd: &str,
    key: &str,
) -> Result<T, CommandError> {
    T::deserialize(args.get(key).unwrap_or(&Value::Null)).map_err(|e| {
        CommandError::invalid(
            "bad_args",
            format!("invalid args `{key}` for command `{cmd}`: {e}"),
        )
    })
}

fn answer<T: Serialize>(result: Result<T, CommandError>) -> Result<Value, CommandError> {
    serde_json::to_value(result?)
        .map_err(|e| CommandError::other("bad_answer", format!("cannot send the answer: {e}")))
}

fn ctx<R: Runtime>(app: &AppHandle<R>) -> Result<tauri::State<'_, AppCtx>, CommandError> {
    app.try_state::<AppCtx>()
        .ok_or_else(CommandError::first_run)
}

/// Runs a command of [`crate::commands::NAMES`] for a popover in a helper process, as the
/// app's IPC handler runs it for a webview of its own, and answers what the page's promise
/// resolves or is rejected with.
pub async fn dispatch<R: Runtime>(
    app: &AppHandle<R>,
    cmd: &str,
    args: Value,
) -> Result<Value, CommandError> {
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
                arg(a, cmd, "confirmed")?,
            )
            .await,
        ),
        "ways" => answer(commands::ways(ctx(app)?, arg(a, cmd, "vmId")?).await),
        "activate" => answer(
            commands::activate(
                app.clone(),
                ctx(app)?,
                arg(a, cmd, "role")?,
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
        "switch_tenant" => {
            answer(commands::switch_tenant(app.clone(), ctx(app)?, arg(a, cmd, "name")?).await)
        }
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
        _ => Err(CommandError::not_available(
            "unknown_command",
            format!("command {cmd} not found"),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// The helper's side.

pub(crate) type Pending<R> = Arc<Mutex<HashMap<u64, InvokeResolver<R>>>>;
/// Where the helper writes its lines to the app.
pub(crate) type Out = Arc<Mutex<Box<dyn Write + Send>>>;

/// The helper's ends of its pipes to the app. On Unix, private copies that no child
/// inherits: fd 0 becomes /dev/null and fd 1 stderr before WebKit starts its processes,
/// which would otherwise hold (and could write to) the app's pipe.
#[cfg(unix)]
fn pipes_to_the_app() -> std::io::Result<(Box<dyn Read + Send>, Box<dyn Write + Send>)> {
    use std::os::fd::AsFd as _;
    // `try_clone_to_owned` duplicates with close-on-exec.
    let input = std::io::stdin().as_fd().try_clone_to_owned()?;
    let output = std::io::stdout().as_fd().try_clone_to_owned()?;
    let null = std::fs::File::open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(std::io::stderr().as_fd())?;
    Ok((
        Box::new(std::fs::File::from(input)),
        Box::new(std::fs::File::from(output)),
    ))
}

#[cfg(not(unix))]
fn pipes_to_the_app() -> std::io::Result<(Box<dyn Read + Send>, Box<dyn Write + Send>)> {
    Ok((Box::new(std::io::stdin()), Box::new(std::io::stdout())))
}

/// The helper process: the popover's window, whose commands go to the app and whose
/// answers and events come back from it. It exits when its window closes, or when the app
/// has gone (its input ends). `version` is the app's: a helper of another version (the app
/// was upgraded while it ran) refuses to start.
pub fn run_helper(
    context: tauri::Context<tauri::Wry>,
    version: Option<&str>,
) -> std::process::ExitCode {
    if version != Some(env!("CARGO_PKG_VERSION")) {
        eprintln!(
            "jumpgate-tray (popover): this is version {}, and the running app is another: quit Jumpgate and start it again",
            env!("CARGO_PKG_VERSION")
        );
        return std::process::ExitCode::from(2);
    }
    tracing::debug!("popover process: started");
    let (input, output) = match pipes_to_the_app() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("jumpgate-tray (popover): cannot take its pipes to the app: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let pending: Pending<tauri::Wry> = Arc::default();
    let out: Out = Arc::new(Mutex::new(output));
    let closing = out.clone();
    let built = tauri::Builder::default()
        .manage(tray::Intents::default())
        .invoke_handler(handler(pending.clone(), out.clone()))
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            tracing::debug!("popover process: set up");
            let handle = app.handle().clone();
            std::thread::Builder::new()
                .name("jumpgate-popover-stdin".into())
                .spawn(move || listen(handle, pending, out, input))?;
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
    // Its window closed: it says so, and the app ends the process, and WebKit with it, at
    // once: there is nothing left to save here, so there is no teardown to wait for.
    app.run(move |handle, event| {
        if let tauri::RunEvent::ExitRequested {
            code: None, api, ..
        } = event
        {
            if write_line(&closing, &FromPopover::Closed).is_ok() {
                api.prevent_exit();
            } else {
                // No app to end it: it ends itself.
                handle.exit(0);
            }
        }
    });
    std::process::ExitCode::SUCCESS
}

/// The helper's IPC handler (after Tauri's check of the window's capabilities): its own
/// window's commands are answered here, the others become calls to the app, answered when
/// its reply comes.
pub(crate) fn handler<R: Runtime>(
    pending: Pending<R>,
    out: Out,
) -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static {
    let next = AtomicU64::new(1);
    move |invoke| {
        let cmd = invoke.message.command().to_string();
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
            invoke.resolver.reject(CommandError::invalid(
                "bad_args",
                format!("invalid args for command `{cmd}`: not JSON"),
            ));
            return true;
        };
        let id = next.fetch_add(1, Ordering::Relaxed);
        let line = FromPopover::Call {
            id,
            cmd,
            args: args.clone(),
        };
        if let Ok(mut calls) = pending.lock() {
            calls.insert(id, invoke.resolver);
        }
        if write_line(&out, &line).is_err() {
            if let Some(resolver) = pending.lock().ok().and_then(|mut c| c.remove(&id)) {
                resolver.reject(CommandError::not_available(
                    "app_gone",
                    "Jumpgate has quit: start it again.",
                ));
            }
        }
        true
    }
}

fn write_line(out: &Mutex<Box<dyn Write + Send>>, message: &FromPopover) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    let mut out = out
        .lock()
        .map_err(|_| std::io::Error::other("the pipe's lock is poisoned"))?;
    out.write_all(&line)?;
    out.flush()
}

/// What the helper does with a message from the app. `opened`: it has made its window.
pub(crate) fn on_message<R: Runtime>(
    app: &AppHandle<R>,
    pending: &Pending<R>,
    out: &Out,
    opened: &Arc<std::sync::atomic::AtomicBool>,
    message: ToPopover,
) {
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
        ToPopover::Show { id, intent } => {
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
                            let _ = write_line(&out, &FromPopover::Shown { id });
                        }
                        Err(e) => tracing::warn!("cannot open the popover: {e}"),
                    }
                }
            });
        }
    }
}

/// Reads the app's messages until its pipe ends, then closes the popover.
fn listen<R: Runtime>(
    app: AppHandle<R>,
    pending: Pending<R>,
    out: Out,
    input: Box<dyn Read + Send>,
) {
    let opened = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut reader = std::io::BufReader::new(input);
    loop {
        let line = match next_line(&mut reader) {
            Ok(Line::Text(line)) => line,
            Ok(Line::TooLong) => {
                tracing::warn!("the popover got a line from the app too long to read");
                continue;
            }
            Ok(Line::End) | Err(_) => break,
        };
        match serde_json::from_slice::<ToPopover>(&line) {
            Ok(message) => on_message(&app, &pending, &out, &opened, message),
            Err(_) => tracing::warn!("the popover got a line from the app that is not a message"),
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
            id: 3,
            intent: Intent::view("approvals"),
        })
        .expect("json");
        let back: ToPopover = serde_json::from_str(&show).expect("a show");
        assert!(matches!(back, ToPopover::Show { id: 3, intent } if intent.view == "approvals"));
    }

    #[test]
    fn lines_are_read_whole_up_to_a_limit_and_longer_ones_skipped() {
        let long = "x".repeat(MAX_LINE + 10);
        let text = format!("one\n{long}\n\u{fffd}-bytes\nlast");
        let mut bytes = text.into_bytes();
        // Not UTF-8: read as bytes, never the end of the pipe.
        bytes[MAX_LINE + 17] = 0xff;
        let mut reader = std::io::BufReader::new(&bytes[..]);
        let mut seen = Vec::new();
        loop {
            match next_line(&mut reader).expect("read") {
                Line::Text(t) => seen.push(String::from_utf8_lossy(&t).len()),
                Line::TooLong => seen.push(usize::MAX),
                Line::End => break,
            }
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[0], 3);
        assert_eq!(seen[1], usize::MAX);
        assert_eq!(seen[3], 4);
    }

    #[test]
    fn an_answer_too_large_to_read_is_refused_before_it_is_sent() {
        let big = Value::String("x".repeat(MAX_LINE));
        match reply(4, Ok(big)) {
            ToPopover::Reply { id, ok, value } => {
                assert_eq!((id, ok), (4, false));
                assert_eq!(value["data"]["code"], "too_large", "{value}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            reply(5, Ok(Value::Bool(true))),
            ToPopover::Reply {
                id: 5,
                ok: true,
                ..
            }
        ));
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
        assert!(matches!(&missing, CommandError::Invalid(d) if d.code == "bad_args"));
        assert!(
            missing
                .to_string()
                .contains("invalid args `upn` for command `sign_in_demo`"),
            "{missing}"
        );
    }
}
