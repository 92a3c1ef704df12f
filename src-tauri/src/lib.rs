//! The tray app: the engine and its watcher behind a tray icon, a popover window and
//! desktop notifications. What the tray shows is decided in `jumpgate_core::tray`; this
//! crate wires it to Tauri.

#[cfg(test)]
mod bindings;
mod commands;
mod demo;
mod firstrun;
mod notify;
mod platform;
mod popover;
mod remembered;
mod tray;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use jumpgate_azure::engine::Engine;
use jumpgate_core::config;
use tauri::Manager as _;
use tauri_plugin_deep_link::DeepLinkExt as _;

/// What the app runs on: an engine per tenant, the one the popover works in, and the
/// embedded simulator in demo mode.
pub struct AppCtx {
    /// Every tenant's engine, by name, `[azure]`'s (`default`) first; only that one when the
    /// configuration names no `[[tenants]]`. Each has its own sign-in, state and watcher.
    pub tenants: Vec<(String, Arc<Engine>)>,
    /// The tenant the popover shows and acts in: an index into `tenants`.
    current: std::sync::atomic::AtomicUsize,
    pub demo: Option<demo::Demo>,
}

impl AppCtx {
    /// The app on one engine (`[azure]`'s tenant alone).
    pub fn new(engine: Arc<Engine>, demo: Option<demo::Demo>) -> AppCtx {
        AppCtx {
            tenants: vec![(config::DEFAULT_TENANT.to_string(), engine)],
            current: std::sync::atomic::AtomicUsize::new(0),
            demo,
        }
    }

    /// The app on every tenant `config` names, each on an engine of its own.
    pub fn for_tenants(
        config: config::Config,
        demo: Option<demo::Demo>,
    ) -> Result<AppCtx, StartError> {
        let mut tenants = Vec::new();
        for name in config.tenant_names() {
            let one = config.for_tenant(&name).map_err(StartError::Usage)?;
            tenants.push((name, Arc::new(Engine::new(one)?)));
        }
        Ok(AppCtx {
            tenants,
            current: std::sync::atomic::AtomicUsize::new(0),
            demo,
        })
    }

    /// The engine of the tenant the popover works in.
    pub fn engine(&self) -> Arc<Engine> {
        let i = self.current.load(std::sync::atomic::Ordering::SeqCst);
        self.tenants
            .get(i)
            .or_else(|| self.tenants.first())
            .map(|(_, e)| e.clone())
            .expect("an app runs on at least one engine")
    }

    /// The name of the tenant the popover works in.
    pub fn tenant(&self) -> String {
        let i = self.current.load(std::sync::atomic::Ordering::SeqCst);
        self.tenants
            .get(i)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| config::DEFAULT_TENANT.to_string())
    }

    /// The tenants' names, when there is more than one to choose from.
    pub fn tenant_names(&self) -> Vec<String> {
        if self.tenants.len() < 2 {
            return Vec::new();
        }
        self.tenants.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Makes `name` the tenant the popover works in; false for a name it does not know.
    pub fn switch(&self, name: &str) -> bool {
        match self
            .tenants
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                self.current.store(i, std::sync::atomic::Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

/// Why the app could not start; it is printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Usage(String),
    /// A `jumpgate://` link that came with other arguments ([`link_alone`]).
    #[error("{0}")]
    Link(String),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    State(#[from] jumpgate_azure::Error),
    #[error("the demo simulator did not start: {0}")]
    Simulator(String),
    #[error("cannot write the demo's files in {path}: {source}")]
    Files {
        path: String,
        source: std::io::Error,
    },
}

/// How the app was started.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub demo: bool,
    pub config: Option<PathBuf>,
    /// A `jumpgate://` link to open: checked when it is opened (prefilled, never submitted).
    pub link: Option<String>,
    /// A link came with other arguments: none of them was read, and the popover says so.
    pub refused_link: bool,
}

/// Reads `--demo` and `--config PATH`; anything else is an error that says what is accepted.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, StartError> {
    let usage = |m: &str| StartError::Usage(m.to_string());
    let args: Vec<String> = args.into_iter().collect();
    if let Some(link) = link_alone(&args)? {
        return Ok(Options {
            link: Some(link),
            ..Options::default()
        });
    }
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--demo" if !cfg!(feature = "demo") => return Err(usage(demo::NOT_BUILT)),
            "--demo" => options.demo = true,
            "--config" => {
                let path = args.next().ok_or_else(|| usage("--config needs a path"))?;
                options.config = Some(PathBuf::from(path));
            }
            link if link.starts_with("jumpgate://") => options.link = Some(link.to_string()),
            other => {
                return Err(StartError::Usage(format!(
                    "unknown argument '{other}': jumpgate-tray takes --demo, --config PATH or a jumpgate:// link"
                )))
            }
        }
    }
    if options.demo && options.config.is_some() {
        return Err(usage("--demo runs its own simulator: leave out --config"));
    }
    Ok(options)
}

/// Whether `arg` is a `jumpgate://` link (the scheme in any case, as URLs allow).
fn is_link(arg: &str) -> bool {
    arg.get(..LINK_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(LINK_PREFIX))
}

const LINK_PREFIX: &str = "jumpgate://";

/// A launch that carries a `jumpgate://` link carries nothing else: the link, or none.
/// Windows starts the app for a link as `"exe" "%1"`, so a link with a quote in it can add
/// arguments of its own (`jumpgate://connect?vm=a" --config "\\host\share\c.toml`): reading
/// such a path would hand the user's NetNTLM hash to the host, and its configuration would
/// take effect. Anything beside a link is therefore refused, link and all, before any of it
/// is read.
pub fn link_alone(args: &[String]) -> Result<Option<String>, StartError> {
    if !args.iter().any(|a| is_link(a)) {
        return Ok(None);
    }
    match args {
        [link] if link.starts_with(LINK_PREFIX) => Ok(Some(link.clone())),
        [link] => Err(StartError::Link(format!(
            "a link must start with {LINK_PREFIX} in lower case: {}",
            jumpgate_core::text::log(link)
        ))),
        _ => Err(StartError::Link(format!(
            "a jumpgate:// link is opened on its own, and this launch carried {} arguments: nothing was read or opened. If a link in a web page or an email started this, its text was crafted to add arguments; ask whoever sent it for a new link",
            args.len()
        ))),
    }
}

/// WebKitGTK settings for a small popover, unless the user chose otherwise: no OpenGL in the
/// app process (GTK would load libLLVM to probe it, 26 MB for a form that does not need a
/// GPU) and no DMA-BUF renderer (about 100 ms less to open the popover). Measured in README.
/// Under WebDriver the defaults stay: WebKit's snapshots, which screenshots use, hang with
/// either setting.
fn lean_webkit() {
    if tray::automation() {
        return;
    }
    for (name, value) in [
        ("GDK_GL", "disable"),
        ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
    ] {
        if std::env::var_os(name).is_none() {
            // Before any thread starts: nothing else reads the environment yet.
            std::env::set_var(name, value);
        }
    }
}

/// The app's Tauri context: its configuration, capabilities and the popover's files.
fn context() -> tauri::Context<tauri::Wry> {
    tauri::generate_context!()
}

pub fn main() -> ExitCode {
    if !jumpgate_core::TEST_HOOKS {
        // Tauri lets a WebDriver drive the webview when this is set, in any build. Before any
        // thread starts: nothing else reads the environment yet.
        std::env::remove_var("TAURI_WEBVIEW_AUTOMATION");
    }
    lean_webkit();
    let filter = std::env::var("JUMPGATE_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some(popover::ARG) {
        return popover::run_helper(context(), args.next().as_deref());
    }
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        // The app starts as if with no arguments (a running one takes the launch over), and
        // says the link was refused: a person who clicked it sees why nothing opened.
        Err(StartError::Link(why)) => {
            tracing::warn!("{}", jumpgate_core::text::log(&why));
            Options {
                refused_link: true,
                ..Options::default()
            }
        }
        Err(e) => {
            eprintln!("jumpgate-tray: {e}");
            return ExitCode::from(2);
        }
    };
    // The configuration is read, and a broken one said, before any window system starts:
    // it needs none, and a desktop session that is not there yet cannot hide the message.
    let first = firstrun::FirstRun::from_env(&options);
    let config = match (&first, options.demo) {
        (None, false) => match config::load_from_env(options.config.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("jumpgate-tray: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    jumpgate_azure::init_tls();
    let app = match build(options, first, config).build(context()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("jumpgate-tray: {e}");
            return ExitCode::from(1);
        }
    };
    // A tray app outlives its windows: closing the popover must not end it. Quit (an exit
    // with a code) does.
    app.run(|_, event| {
        if let tauri::RunEvent::ExitRequested {
            code: None, api, ..
        } = event
        {
            api.prevent_exit();
        }
    });
    ExitCode::SUCCESS
}

/// The engine, on `config` (read by the caller), on the configuration found as the CLI
/// finds it, or on the embedded simulator.
pub async fn start(
    options: &Options,
    config: Option<config::Config>,
) -> Result<AppCtx, StartError> {
    #[cfg(feature = "demo")]
    if options.demo {
        let data = dirs::data_local_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("jumpgate")
            .join("demo");
        let demo = demo::Demo::start(&data).await?;
        tracing::info!(
            "demo mode: the simulator listens on {}; its client configuration is {} (use it with jumpgate --config to act as another user)",
            demo.url(),
            demo.config_path.display()
        );
        let config = config::load(&demo.config_path)?;
        return Ok(AppCtx::new(Arc::new(Engine::new(config)?), Some(demo)));
    }
    let config = match config {
        Some(c) => c,
        None => config::load_from_env(options.config.as_deref())?,
    };
    AppCtx::for_tenants(config, None)
}

/// The Tauri app: one instance (a second launch hands its arguments to the first and exits,
/// before anything of its own starts), then the engine, the tray and the watcher.
/// `first`: the first run to set up instead; `config`: the configuration `main` read.
pub fn build(
    options: Options,
    first: Option<firstrun::FirstRun>,
    config: Option<config::Config>,
) -> tauri::Builder<tauri::Wry> {
    // Started at login, the app starts as it was started now: the demo stays the demo.
    let at_login = options.demo.then(|| vec!["--demo"]);
    tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            second_launch(app, argv.into_iter().skip(1))
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            at_login,
        ))
        .invoke_handler(handler())
        .manage(tray::Intents::default())
        .manage(tray::LastRead::default())
        .manage(commands::SignInFlow::default())
        .manage(popover::Helper::default())
        .manage(commands::Prefetch::default())
        .setup(move |app| {
            popover::forward_events(app.handle());
            // SIGTERM (a logout), SIGHUP and Ctrl-C end the app as Quit does.
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                jumpgate_azure::watch::stop_signal().await;
                handle.exit(0);
            });
            // Links reach a running app as a second launch on Linux and Windows (above), and
            // as an event on macOS.
            let handle = app.handle().clone();
            app.deep_link().on_open_url(move |event| {
                for url in event.urls() {
                    tray::open_link(&handle, url.as_str());
                }
            });
            // Off the main thread: it may run xdg-mime, and the tray should not wait for it.
            let handle = app.handle().clone();
            let _ = std::thread::Builder::new()
                .name("jumpgate-scheme".into())
                .spawn(move || match platform::register_scheme(&handle) {
                    Ok(true) => tracing::info!("jumpgate:// links open this app"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!("jumpgate:// links are not registered: {e}"),
                });
            if let Some(first) = first {
                // Nothing to start the engine on yet: the popover asks for a work email, and
                // the engine, tray and watcher start once the configuration is written.
                tracing::info!(
                    "first run: no configuration yet; the popover sets one up ({})",
                    first.user.display()
                );
                app.manage(first);
                if let Err(e) = tray::show_popover(app.handle(), tray::Intent::view("open")) {
                    tracing::warn!("cannot open the popover: {e}");
                }
                return Ok(());
            }
            // Tauri turns a setup error into a panic: say what is wrong and exit instead.
            let ctx = match tauri::async_runtime::block_on(start(&options, config)) {
                Ok(ctx) => ctx,
                Err(e) => {
                    eprintln!("jumpgate-tray: {e}");
                    std::process::exit(2);
                }
            };
            let engines = ctx.tenants.clone();
            let demo = ctx.demo.is_some();
            app.manage(ctx);
            run_engines(app.handle(), &engines, demo);
            if tray::automation() {
                // A WebDriver session drives the first webview the app creates: create it now.
                if let Err(e) = tray::show_popover(app.handle(), tray::Intent::view("open")) {
                    tracing::warn!("cannot open the popover: {e}");
                }
            }
            if let Some(link) = &options.link {
                tray::open_link(app.handle(), link);
            }
            if options.refused_link {
                tray::refuse_link(app.handle());
            }
            Ok(())
        })
}

/// What runs on the engine: its events to the popover, the tray icon and the watcher. At
/// start, or once the first run has written the configuration.
/// Runs on the main thread, where GTK wants the tray icon made.
pub fn run_engine<R: tauri::Runtime>(app: &tauri::AppHandle<R>, engine: Arc<Engine>, demo: bool) {
    run_engines(app, &[(config::DEFAULT_TENANT.to_string(), engine)], demo);
}

/// [`run_engine`] for every tenant: each engine's events reach the popover, and each has a
/// watcher, whose notifications name their tenant when there is more than one.
pub fn run_engines<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    engines: &[(String, Arc<Engine>)],
    demo: bool,
) {
    for (_, engine) in engines {
        commands::forward_engine_events(app.clone(), engine);
    }
    // Tauri's mock runtime, which the IPC tests run on, has no GTK to make a tray icon with.
    if !cfg!(test) {
        if let Err(e) = tray::install(app) {
            // No tray host: the app still runs, and a second launch opens the popover.
            tracing::warn!("no tray icon: {e}");
        }
    }
    let named = engines.len() > 1;
    for (name, engine) in engines {
        tray::watch(
            app.clone(),
            engine.clone(),
            demo,
            named.then(|| name.clone()),
        );
    }
}

/// Every command of [`commands::NAMES`].
fn handler<R: tauri::Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        commands::app_state,
        commands::sign_in_demo,
        commands::sign_in,
        commands::cancel_sign_in,
        commands::sign_out,
        commands::connect,
        commands::check_connect,
        commands::extend,
        commands::end_role,
        commands::ways,
        commands::activate,
        commands::approvals,
        commands::decide,
        commands::history,
        commands::export_history,
        commands::diagnose,
        commands::set_start_at_login,
        commands::remember_target,
        tray::take_intent,
        tray::popover_ready,
        tray::close_popover,
        firstrun::discover_tenant,
        firstrun::write_first_config,
        commands::switch_tenant,
    ]
}

/// Another launch (a second click, or the desktop opening a jumpgate:// link): its link is
/// checked and opens the Connect form; without one, the popover comes forward.
/// A link that came with other arguments is refused as [`link_alone`] says, and the popover
/// says so.
fn second_launch(app: &tauri::AppHandle, args: impl Iterator<Item = String>) {
    let args: Vec<String> = args.collect();
    match link_alone(&args) {
        Ok(Some(link)) => tray::open_link(app, &link),
        Ok(None) => {
            if let Err(e) = tray::show_popover(app, tray::Intent::view("open")) {
                tracing::warn!("cannot open the popover: {e}");
            }
        }
        Err(e) => {
            tracing::warn!("{}", jumpgate_core::text::log(&e.to_string()));
            tray::refuse_link(app);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Options, StartError> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments_are_demo_or_a_configuration() {
        assert_eq!(args(&[]).ok(), Some(Options::default()));
        if cfg!(feature = "demo") {
            assert_eq!(args(&["--demo"]).map(|o| o.demo).ok(), Some(true));
        } else {
            let refused = args(&["--demo"]).expect_err("no demo in this build");
            assert!(refused.to_string().contains("no demo mode"), "{refused}");
        }
        assert_eq!(
            args(&["--config", "/etc/j.toml"]).map(|o| o.config).ok(),
            Some(Some(PathBuf::from("/etc/j.toml")))
        );
        assert!(args(&["--config"]).is_err());
        assert!(args(&["--demo", "--config", "x"]).is_err());
        // Links are checked when opened, by the running app (see tray::open_link).
        assert_eq!(
            args(&["jumpgate://connect?vm=../etc"])
                .ok()
                .and_then(|o| o.link),
            Some("jumpgate://connect?vm=../etc".to_string())
        );
        assert!(args(&["--frobnicate"])
            .expect_err("unknown")
            .to_string()
            .contains("--config PATH or a jumpgate:// link"));
    }

    #[test]
    fn a_link_comes_alone_or_is_refused_with_what_came_with_it() {
        // Windows runs `"exe" "%1"`: a quote in the link splits it into arguments.
        let crafted = [
            "jumpgate://connect?vm=a",
            "--config",
            r"\\attacker\s\c.toml",
        ];
        let refused = args(&crafted).expect_err("a link with --config");
        assert!(
            refused.to_string().contains("opened on its own"),
            "{refused}"
        );
        // Whatever the order, and with --demo too.
        for a in [
            &["--config", "c.toml", "jumpgate://connect?vm=a"][..],
            &["jumpgate://connect?vm=a", "--demo"],
            &["jumpgate://connect?vm=a", "jumpgate://connect?vm=b"],
            &["JUMPGATE://connect?vm=a", "--config", "c.toml"],
        ] {
            assert!(args(a).is_err(), "{a:?}");
        }
        let upper = args(&["JUMPGATE://connect?vm=a"]).expect_err("upper case");
        assert!(upper.to_string().contains("lower case"), "{upper}");
        assert_eq!(
            link_alone(&["jumpgate://connect?vm=a".to_string()]).ok(),
            Some(Some("jumpgate://connect?vm=a".to_string()))
        );
        assert_eq!(link_alone(&["--demo".to_string()]).ok(), Some(None));
    }
}

#[cfg(test)]
mod ipc_tests {
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{get_ipc_response, mock_builder, INVOKE_KEY};
    use tauri::webview::InvokeRequest;
    use tauri::WebviewWindowBuilder;

    use super::*;

    fn request(cmd: &str, body: serde_json::Value) -> InvokeRequest {
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().expect("url"),
            body: InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        }
    }

    /// The engine on a configuration in `dir` (tokens in a file there, under their own
    /// keychain service name), with `extra` TOML tables after `[azure]`. The state folder is
    /// one of its own: the engine refuses one others may read.
    fn engine_in(dir: &std::path::Path, extra: &str, keyring_service: &str) -> AppCtx {
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[azure]\ntenant_id = \"t\"\nclient_id = \"c\"\n{extra}[storage]\nstate_dir = \"{}\"\nallow_file_fallback = true\nkeyring_service = \"{keyring_service}\"\n",
                dir.join("state").display()
            ),
        )
        .expect("config");
        tauri::async_runtime::block_on(start(
            &Options {
                demo: false,
                config: Some(config),
                link: None,
                refused_link: false,
            },
            None,
        ))
        .expect("engine")
    }

    /// The app's handler and capabilities on Tauri's mock runtime, with its popover window.
    fn mock_app(
        ctx: AppCtx,
    ) -> (
        tauri::App<tauri::test::MockRuntime>,
        tauri::WebviewWindow<tauri::test::MockRuntime>,
    ) {
        let app = mock_builder()
            .manage(ctx)
            .manage(tray::Intents::default())
            .manage(commands::SignInFlow::default())
            .invoke_handler(handler())
            .build(tauri::generate_context!())
            .expect("app");
        let popover = WebviewWindowBuilder::new(&app, "popover", Default::default())
            .build()
            .expect("popover");
        (app, popover)
    }

    /// Start at login goes through tauri-plugin-autostart: on Linux an XDG autostart entry
    /// that starts the app as it was started (the demo with `--demo`), removed when turned
    /// off.
    #[test]
    fn start_at_login_goes_through_the_autostart_plugin() {
        let dir = tempfile::tempdir().expect("dir");
        // The plugin writes to $HOME/.config/autostart.
        std::env::set_var("HOME", dir.path());
        let app = mock_builder()
            .plugin(tauri_plugin_autostart::init(
                tauri_plugin_autostart::MacosLauncher::LaunchAgent,
                Some(vec!["--demo"]),
            ))
            .build(tauri::generate_context!())
            .expect("app");
        let handle = app.handle();
        assert!(!platform::starts_at_login(handle));
        platform::set_start_at_login(handle, true).expect("on");
        assert!(platform::starts_at_login(handle));
        let entry = dir.path().join(".config/autostart/Jumpgate.desktop");
        let text = std::fs::read_to_string(&entry).expect("an autostart entry");
        assert!(text.contains("--demo"), "{text}");
        platform::set_start_at_login(handle, false).expect("off");
        assert!(!entry.exists() && !platform::starts_at_login(handle));
        // Off twice is not an error.
        platform::set_start_at_login(handle, false).expect("off again");
    }

    /// The app's real configuration and capabilities on Tauri's mock runtime: the popover may
    /// call its commands, another window may not, and errors carry their kind.
    #[test]
    fn reliability_18_only_the_popover_may_call_the_commands() {
        let dir = tempfile::tempdir().expect("dir");
        let ctx = engine_in(dir.path(), "", "jumpgate-ipc-test");
        let (app, popover) = mock_app(ctx);
        let other = WebviewWindowBuilder::new(&app, "other", Default::default())
            .build()
            .expect("other window");

        // Outside demo mode, demo sign-in is refused with a kind the UI can switch on.
        let refused = get_ipc_response(
            &popover,
            request(
                "sign_in_demo",
                serde_json::json!({"upn": "alice@contoso.example"}),
            ),
        )
        .expect_err("not in demo mode");
        assert_eq!(refused["kind"], "not_available", "{refused}");
        assert_eq!(refused["data"]["code"], "not_demo");

        // Another window is not granted the commands at all.
        let denied = get_ipc_response(
            &other,
            request(
                "sign_in_demo",
                serde_json::json!({"upn": "alice@contoso.example"}),
            ),
        )
        .expect_err("not granted");
        assert!(denied.to_string().contains("not allowed"), "{denied}");

        // Every command of the list is granted and handled: an answer or an error about its
        // arguments or the sign-in, never "not allowed" or "not found". (`sign_in` would open
        // a browser.)
        for name in crate::commands::NAMES.iter().filter(|n| **n != "sign_in") {
            let answer = get_ipc_response(&popover, request(name, serde_json::json!({})));
            if let Err(e) = answer {
                let text = e.to_string();
                assert!(
                    !text.contains("not allowed") && !text.contains("not found"),
                    "{name}: {text}"
                );
            }
        }
    }

    /// `connect`, `extend` and `decide` hold their input to the CLI's rules (`core::input`),
    /// whoever calls them: an oversized or control-character justification, a bidi override,
    /// a bad VM or ticket is refused with the `invalid` kind before anything is sent.
    #[test]
    fn reliability_22_ipc_commands_check_their_input() {
        let dir = tempfile::tempdir().expect("dir");
        let ctx = engine_in(dir.path(), "", "jumpgate-ipc-input-test");
        let (_app, popover) = mock_app(ctx);
        let long = "x".repeat(jumpgate_core::input::MAX_JUSTIFICATION + 1);
        let form = |vm: &str, justification: &str, ticket: Option<&str>| {
            serde_json::json!({"form": {"vm": vm, "port": 3389, "duration": "PT1H",
                "justification": justification, "ticket": ticket, "launch": false}})
        };
        let cases = [
            (
                "connect",
                form("jumpbox-win-01", &long, None),
                "bad_justification",
            ),
            (
                "connect",
                form("jumpbox-win-01", "ok\u{1b}[2J", None),
                "bad_justification",
            ),
            (
                "connect",
                form("jumpbox-win-01", "evil\u{202E}txt", None),
                "bad_justification",
            ),
            (
                "connect",
                form("jumpbox-win-01", "  ", None),
                "justification_required",
            ),
            ("connect", form("../etc", "Patch night", None), "bad_vm"),
            (
                "connect",
                form("jumpbox-win-01", "Patch night", Some("SNOW:1\u{1b}2")),
                "bad_ticket",
            ),
            (
                "extend",
                serde_json::json!({"what": {"type": "port", "vm": "jumpbox-win-01", "port": 3389},
                    "duration": "PT1H", "justification": long, "confirmed": false}),
                "bad_justification",
            ),
            (
                "extend",
                serde_json::json!({"what": {"type": "role", "role": "JIT\nRequester"},
                    "duration": "PT1H", "justification": "more time", "confirmed": false}),
                "bad_input",
            ),
            (
                "end_role",
                serde_json::json!({"role": "JIT\u{202E}Requester", "justification": "done"}),
                "bad_input",
            ),
            (
                "end_role",
                serde_json::json!({"role": "JIT Requester", "justification": "done\u{1b}[2J"}),
                "bad_justification",
            ),
            ("ways", serde_json::json!({"vmId": "../etc"}), "bad_vm"),
            (
                "activate",
                serde_json::json!({"role": "group:JIT\nOperators", "duration": "PT1H", "justification": "Patch night"}),
                "bad_input",
            ),
            (
                "activate",
                serde_json::json!({"role": "JIT Operators", "duration": "PT1H", "justification": "  "}),
                "justification_required",
            ),
            (
                "decide",
                serde_json::json!({"request": "r1", "approve": true, "justification": "ok\u{7}"}),
                "bad_justification",
            ),
            (
                "decide",
                serde_json::json!({"request": "r1", "approve": true, "justification": long}),
                "bad_justification",
            ),
        ];
        for (name, body, code) in cases {
            let refused = get_ipc_response(&popover, request(name, body.clone()))
                .expect_err(&format!("{name} {body}"));
            assert_eq!(refused["kind"], "invalid", "{name} {body}: {refused}");
            assert_eq!(refused["data"]["code"], code, "{name} {body}: {refused}");
        }
    }

    /// `check_connect` answers the Connect form's problems from the backend's rules and the
    /// configured refuse list (the popover holds none of them), and `connect` refuses what
    /// the form showed, before anything is sent.
    #[test]
    fn issue_14_the_form_is_checked_by_the_backend() {
        let dir = tempfile::tempdir().expect("dir");
        let ctx = engine_in(
            dir.path(),
            "[justification]\nrefuse = [\"Routine work\"]\n",
            "jumpgate-ipc-form-test",
        );
        let (_app, popover) = mock_app(ctx);
        let check = |duration: &str, justification: &str, ticket: &str| {
            let body = serde_json::json!({"form": {"port": 22, "duration": duration,
                "justification": justification, "ticket": ticket,
                "ports": [{"number": 3389, "max_minutes": 180}, {"number": 22, "max_minutes": 60}]}});
            get_ipc_response(&popover, request("check_connect", body))
                .expect("answered")
                .deserialize::<serde_json::Value>()
                .expect("json")
        };
        assert_eq!(check("30m", "Patch night", ""), serde_json::json!([]));
        let answer = check("2h", "routine WORK", "SNOW:");
        let fields: Vec<(&str, &str)> = answer
            .as_array()
            .expect("a list")
            .iter()
            .map(|p| {
                (
                    p["field"].as_str().unwrap_or(""),
                    p["rule"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            fields,
            [
                ("duration", "JitDuration"),
                ("justification", "JustificationRule"),
                ("ticket", "Ticket")
            ],
            "{answer}"
        );
        assert_eq!(
            answer[1]["message"],
            "'routine WORK' is too vague for your organisation: say what you will do and why."
        );
        // BAU is not on this organisation's list: the answer follows the configuration.
        assert_eq!(check("30m", "BAU", ""), serde_json::json!([]));

        let refused = get_ipc_response(
            &popover,
            request(
                "connect",
                serde_json::json!({"form": {"vm": "jumpbox-win-01", "port": 3389, "duration": "PT1H",
                    "justification": "Routine work", "ticket": null, "launch": false}}),
            ),
        )
        .expect_err("too vague");
        assert_eq!(refused["kind"], "policy", "{refused}");
        assert_eq!(refused["data"]["code"], "JustificationRule", "{refused}");
        assert!(
            refused["data"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("too vague")),
            "{refused}"
        );
    }

    /// A popover in its helper process gets, through [`popover::dispatch`], the answers
    /// the app's own handler gives a webview in process: the same values, the same refusals
    /// with their kinds, for every command; a name outside the list is refused.
    #[test]
    fn issue_14_the_popover_process_gets_the_answers_the_app_gives_in_process() {
        let dir = tempfile::tempdir().expect("dir");
        let ctx = engine_in(
            dir.path(),
            "[justification]\nrefuse = [\"Routine work\"]\n",
            "jumpgate-ipc-dispatch-test",
        );
        let (app, popover) = mock_app(ctx);
        let handle = app.handle().clone();
        let draft = serde_json::json!({"form": {"port": 22, "duration": "2h",
            "justification": "routine work", "ticket": "SNOW:",
            "ports": [{"number": 22, "max_minutes": 60}]}});
        let form = |justification: &str| {
            serde_json::json!({"form": {"vm": "jumpbox-win-01", "port": 3389, "duration": "PT1H",
                "justification": justification, "ticket": null, "launch": false}})
        };
        let cases = [
            ("app_state", serde_json::json!({})),
            ("check_connect", draft),
            ("connect", form("Routine work")),
            ("connect", form("evil\u{202E}txt")),
            (
                "sign_in_demo",
                serde_json::json!({"upn": "alice@contoso.example"}),
            ),
            ("sign_out", serde_json::json!({})),
            (
                "decide",
                serde_json::json!({"request": "r1", "approve": true, "justification": "ok\u{7}"}),
            ),
            (
                "extend",
                serde_json::json!({"what": {"type": "role", "role": "JIT\nRequester"},
                    "duration": "PT1H", "justification": "more time", "confirmed": false}),
            ),
            ("history", serde_json::json!({"query": ""})),
            ("approvals", serde_json::json!({})),
            (
                "remember_target",
                serde_json::json!({"vmId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a", "what": "favourite"}),
            ),
            (
                "remember_target",
                serde_json::json!({"vmId": "jumpbox\u{1b}[2J", "what": "connected"}),
            ),
            ("cancel_sign_in", serde_json::json!({})),
            (
                "discover_tenant",
                serde_json::json!({"email": "a@b.example", "authority": "https://x.example"}),
            ),
        ];
        for (name, body) in cases {
            // The state says when it was read: the one moment that differs.
            let timeless = |mut v: serde_json::Value| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("now");
                }
                v
            };
            let own = get_ipc_response(&popover, request(name, body.clone()))
                .map(|b| timeless(b.deserialize::<serde_json::Value>().expect("json")));
            let other =
                tauri::async_runtime::block_on(popover::dispatch(&handle, name, body.clone()))
                    .map(timeless)
                    .map_err(|e| serde_json::to_value(e).expect("json"));
            assert_eq!(own, other, "{name} {body}");
        }
        // An export is a new file each time (never over another): the same contents.
        let export = serde_json::json!({"query": "", "format": "csv"});
        let own = get_ipc_response(&popover, request("export_history", export.clone()))
            .expect("exported")
            .deserialize::<String>()
            .expect("a path");
        let other =
            tauri::async_runtime::block_on(popover::dispatch(&handle, "export_history", export))
                .expect("exported");
        let other = other.as_str().expect("a path");
        assert_ne!(own, other);
        assert_eq!(
            std::fs::read(&own).expect("one file"),
            std::fs::read(other).expect("the other")
        );
        // Every command is handled (`sign_in` would open a browser): an answer or a refusal
        // of its arguments or state, never "not found".
        for name in crate::commands::NAMES.iter().filter(|n| **n != "sign_in") {
            let answer = tauri::async_runtime::block_on(popover::dispatch(
                &handle,
                name,
                serde_json::json!({}),
            ));
            if let Err(e) = answer {
                assert!(!e.to_string().contains("not found"), "{name}: {e}");
            }
        }
        let unknown = tauri::async_runtime::block_on(popover::dispatch(
            &handle,
            "plugin:shell|open",
            serde_json::json!({}),
        ))
        .expect_err("not a command");
        assert!(unknown.to_string().contains("not found"), "{unknown}");
        assert!(
            matches!(unknown, commands::CommandError::NotAvailable(_)),
            "a kind the page can switch on: {unknown:?}"
        );
    }

    /// The helper's IPC handler, on the app's capabilities: another window is refused before
    /// anything is sent; the popover's own `take_intent` is answered in the helper; any other
    /// command goes to the app as one line, with the page's argument names, and the app's
    /// reply settles the page's promise.
    #[test]
    fn issue_14_the_helper_sends_commands_to_the_app_and_answers_with_its_replies() {
        use std::io::Write;
        use std::sync::{Arc, Mutex};

        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .map_err(|_| std::io::Error::other("poisoned"))?
                    .extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let written = Arc::new(Mutex::new(Vec::<u8>::new()));
        let pending: popover::Pending<tauri::test::MockRuntime> = Arc::default();
        let out: popover::Out = Arc::new(Mutex::new(Box::new(Shared(written.clone()))));
        let app = mock_builder()
            .manage(tray::Intents::default())
            .invoke_handler(popover::handler(pending.clone(), out.clone()))
            .build(tauri::generate_context!())
            .expect("app");
        let window = WebviewWindowBuilder::new(&app, "popover", Default::default())
            .build()
            .expect("popover");
        let other = WebviewWindowBuilder::new(&app, "other", Default::default())
            .build()
            .expect("other window");
        let decide = serde_json::json!({"request": "r1", "approve": true, "justification": "ok"});

        let denied =
            get_ipc_response(&other, request("decide", decide.clone())).expect_err("not granted");
        assert!(denied.to_string().contains("not allowed"), "{denied}");
        tray::set_pending(app.handle(), tray::Intent::view("history"));
        let intent = get_ipc_response(&window, request("take_intent", serde_json::json!({})))
            .expect("its own")
            .deserialize::<serde_json::Value>()
            .expect("json");
        assert_eq!(intent["view"], "history");
        assert!(written.lock().expect("lock").is_empty(), "nothing sent yet");

        // The app, played by a thread: it reads the call and refuses it.
        let app_side = {
            let (written, pending, out, handle) = (
                written.clone(),
                pending.clone(),
                out.clone(),
                app.handle().clone(),
            );
            std::thread::spawn(move || {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                let line = loop {
                    let text = String::from_utf8_lossy(&written.lock().expect("lock")).to_string();
                    if let Some((line, _)) = text.split_once('\n') {
                        break line.to_string();
                    }
                    assert!(std::time::Instant::now() < deadline, "no call");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                };
                let call: popover::FromPopover = serde_json::from_str(&line).expect("a call");
                let popover::FromPopover::Call { id, cmd, args } = call else {
                    panic!("{line}");
                };
                let opened = Arc::new(std::sync::atomic::AtomicBool::new(true));
                popover::on_message(
                    &handle,
                    &pending,
                    &out,
                    &opened,
                    popover::ToPopover::Reply {
                        id,
                        ok: false,
                        value: serde_json::json!({"kind": "invalid",
                            "data": {"code": "bad_justification", "message": "m"}}),
                    },
                );
                (cmd, args)
            })
        };
        let refused = get_ipc_response(&window, request("decide", decide.clone()))
            .expect_err("the app's refusal");
        assert_eq!(refused["data"]["code"], "bad_justification", "{refused}");
        let (cmd, args) = app_side.join().expect("the app's side");
        assert_eq!((cmd.as_str(), args), ("decide", decide));
        assert!(pending.lock().expect("lock").is_empty());
    }

    /// The state read while a new popover's window is made answers its first `app_state`,
    /// once; a refresh in between forgets it.
    #[test]
    fn issue_14_the_state_read_ahead_answers_once_and_a_refresh_forgets_it() {
        let dir = tempfile::tempdir().expect("dir");
        let ctx = engine_in(dir.path(), "", "jumpgate-ipc-prefetch-test");
        let app = mock_builder()
            .manage(ctx)
            .manage(commands::Prefetch::default())
            .build(tauri::generate_context!())
            .expect("app");
        let handle = app.handle().clone();
        let taken =
            || tauri::async_runtime::block_on(app.state::<commands::Prefetch>().take()).is_some();
        commands::Prefetch::start(&handle);
        assert!(taken());
        assert!(!taken(), "taken once");
        commands::Prefetch::start(&handle);
        tauri::async_runtime::block_on(tray::refresh(&handle)).expect("refreshed");
        assert!(!taken(), "forgotten at the refresh");
    }

    /// Signed in against a real (in-process) simulator, every command the popover reads
    /// answers without a token, a refresh token or a code in it (RELIABILITY #7).
    #[test]
    fn reliability_7_no_token_in_any_ipc_answer() {
        jumpgate_azure::init_tls();
        let dir = tempfile::tempdir().expect("dir");
        let sim = tauri::async_runtime::block_on(
            jumpgate_sim::SimBuilder::new("demo").control(true).start(),
        )
        .expect("simulator");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "{}\n[storage]\nstate_dir = \"{}\"\nallow_file_fallback = true\nkeyring_service = \"jumpgate-ipc-canary-{}\"\n",
                sim.client_config().to_toml(),
                dir.path().join("state").display(),
                std::process::id()
            ),
        )
        .expect("config");
        let ctx = tauri::async_runtime::block_on(start(
            &Options {
                demo: false,
                config: Some(config),
                link: None,
                refused_link: false,
            },
            None,
        ))
        .expect("engine");
        let engine = ctx.engine();
        let tokens = tauri::async_runtime::block_on(async {
            let t =
                jumpgate_azure::signin::demo(&engine.authority(), "alice@contoso.example", None)
                    .await
                    .expect("sign-in");
            engine.session.store().save(&t).await.expect("save");
            // Something in flight and in the journal, so the answers have content.
            let role = engine.jit_role().await.expect("eligible");
            engine
                .send_activation(&role, chrono::Duration::hours(1), "Patch night", None)
                .await
                .expect("activation");
            t
        });
        let (_app, popover) = mock_app(ctx);
        let secrets: Vec<&str> = [
            Some(tokens.access_token.as_str()),
            tokens.refresh_token.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let calls = [
            ("app_state", serde_json::json!({})),
            ("approvals", serde_json::json!({})),
            ("history", serde_json::json!({"query": ""})),
            (
                "diagnose",
                serde_json::json!({"vm": "jumpbox-win-01", "port": 3389}),
            ),
            ("take_intent", serde_json::json!({})),
        ];
        for (name, body) in calls {
            let answer = match get_ipc_response(&popover, request(name, body)) {
                Ok(b) => b.deserialize::<serde_json::Value>().expect("json"),
                Err(e) => e,
            };
            let text = answer.to_string();
            assert!(
                text.len() > 2 || matches!(name, "take_intent" | "approvals"),
                "{name}: {text}"
            );
            for secret in &secrets {
                // A JWT's signature part is enough to recognise it.
                let tail = &secret[secret.len().saturating_sub(24)..];
                assert!(!text.contains(tail), "{name} answered a token: {text}");
            }
        }
        let state = get_ipc_response(&popover, request("app_state", serde_json::json!({})))
            .expect("state")
            .deserialize::<serde_json::Value>()
            .expect("json");
        assert_eq!(state["signed_in_as"], "alice@contoso.example");
        assert_eq!(state["pending"][0]["role"], "JIT Requester", "{state}");
        assert!(
            state["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "{state}"
        );
    }

    /// Started with no configuration: the state says so, the first-run commands hold their
    /// input to `core::firstrun`, and a valid form writes the configuration (0600, once) and
    /// starts the engine, which answers the signed-out state.
    #[test]
    fn the_first_run_writes_the_configuration_and_starts_the_engine() {
        jumpgate_azure::init_tls();
        let dir = tempfile::tempdir().expect("dir");
        let sim = tauri::async_runtime::block_on(
            jumpgate_sim::SimBuilder::new("demo").control(true).start(),
        )
        .expect("simulator");
        // The organisation's file: the simulator's endpoints, no tenant or client.
        let settings: String = sim
            .client_config()
            .to_toml()
            .lines()
            .filter(|l| !l.starts_with("tenant_id") && !l.starts_with("client_id"))
            .map(|l| format!("{l}\n"))
            .collect();
        let system = dir.path().join("system.toml");
        std::fs::write(
            &system,
            format!(
                "{settings}\n[storage]\nstate_dir = \"{}\"\nallow_file_fallback = true\nkeyring_service = \"jumpgate-first-run-{}\"\n",
                dir.path().join("state").display(),
                std::process::id()
            ),
        )
        .expect("system file");
        let user = dir.path().join("home").join("config.toml");
        let first = firstrun::FirstRun::needed(Some(user.clone()), None, Some(system))
            .expect("a first run");
        let app = mock_builder()
            .manage(first)
            .manage(tray::Intents::default())
            .manage(tray::LastRead::default())
            .manage(commands::SignInFlow::default())
            .invoke_handler(handler())
            .build(tauri::generate_context!())
            .expect("app");
        let popover = WebviewWindowBuilder::new(&app, "popover", Default::default())
            .build()
            .expect("popover");
        let call = |name: &str, body: serde_json::Value| {
            get_ipc_response(&popover, request(name, body))
                .map(|b| b.deserialize::<serde_json::Value>().expect("json"))
        };
        let not_yet = call("app_state", serde_json::json!({})).expect_err("not set up");
        assert_eq!(not_yet["data"]["code"], "first_run", "{not_yet}");

        let url = sim.url().to_string();
        let client = "4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51";
        let tenant = "7b3f6c1e-2a4d-4e8b-9f10-5c6d7e8f9a01";
        let form = |email: &str, authority: &str, tenant: &str, client: &str| {
            serde_json::json!({"email": email, "authority": authority, "tenantId": tenant,
                "signIn": {"type": "app", "client_id": client}})
        };
        let refused = [
            (form("alice", &url, tenant, client), "bad_email"),
            (
                form("alice@contoso.example\n[x]", &url, tenant, client),
                "bad_email",
            ),
            (
                form(
                    "alice@contoso.example",
                    "http://evil.example",
                    tenant,
                    client,
                ),
                "bad_authority",
            ),
            (
                form("alice@contoso.example", &url, "common", client),
                "bad_tenant_id",
            ),
            (
                form("alice@contoso.example", &url, tenant, "x\"\n[network]"),
                "bad_client_id",
            ),
        ];
        for (body, code) in refused {
            let e = call("write_first_config", body.clone()).expect_err(&body.to_string());
            assert_eq!(e["kind"], "invalid", "{body}: {e}");
            assert_eq!(e["data"]["code"], code, "{body}: {e}");
        }
        let unknown = call(
            "discover_tenant",
            serde_json::json!({"email": "alice@fabrikam.example", "authority": url}),
        )
        .expect_err("unknown domain");
        assert_eq!(unknown["data"]["code"], "unknown_domain", "{unknown}");
        assert!(!user.exists(), "nothing is written before a valid form");

        let found = call(
            "discover_tenant",
            serde_json::json!({"email": "Alice@Contoso.example", "authority": url}),
        )
        .expect("discovered");
        assert_eq!(found["tenant_id"], tenant);
        assert_eq!(found["domain"], "contoso.example");
        assert_eq!(found["config_path"], user.display().to_string());
        let state = call(
            "write_first_config",
            form("alice@contoso.example", &url, tenant, client),
        )
        .expect("written");
        assert_eq!(state["signed_in_as"], serde_json::Value::Null, "{state}");
        assert_eq!(state["azure_cli"], false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&user)
                .expect("written")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(call("app_state", serde_json::json!({})).is_ok());
        let again = call(
            "write_first_config",
            form("alice@contoso.example", &url, tenant, client),
        )
        .expect_err("only once");
        assert_eq!(again["data"]["code"], "configured", "{again}");
    }
}
