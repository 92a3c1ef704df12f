//! `jumpgate-sim serve`: run the simulator until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jumpgate_sim::SimBuilder;

#[derive(Parser)]
#[command(
    name = "jumpgate-sim",
    version,
    about = "A local simulator of the Entra ID and Azure Resource Manager endpoints Jumpgate uses"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the simulated tenant until interrupted.
    Serve {
        /// Address to listen on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// A built-in tenant (demo, empty, enterprise, fabrikam) or a path to a tenant fixture (.toml).
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// Write a Jumpgate client config pointing at this simulator to PATH.
        #[arg(long, value_name = "PATH")]
        write_config: Option<PathBuf>,
        /// Enable the /_sim/ test-control API.
        #[arg(long)]
        control: bool,
        /// Seconds before an activated PIM role passes RBAC checks (overrides the tenant).
        #[arg(long, value_name = "SECONDS")]
        propagation_delay: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JUMPGATE_SIM_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jumpgate-sim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jumpgate-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Serve {
        listen,
        tenant,
        write_config,
        control,
        propagation_delay,
    } = cli.command;
    let mut builder = SimBuilder::new(&tenant).listen(listen).control(control);
    if let Some(secs) = propagation_delay {
        builder = builder.propagation_delay(secs);
    }
    let sim = builder.start().await?;
    // Listening for signals starts before anything says the simulator is ready, so a SIGTERM
    // sent as soon as the ready line is read ends it cleanly instead of killing it.
    let stop = shutdown_signal();
    if let Some(path) = write_config {
        write_atomically(&path, &sim.client_config().to_toml()).map_err(|e| {
            anyhow::anyhow!("cannot write the client config to {}: {e}", path.display())
        })?;
    }
    println!("jumpgate-sim listening on {}", sim.url());
    stop.await;
    sim.stop();
    Ok(())
}

/// Writes through a new temporary file (readable by the user only: the config holds the
/// control token) and a rename, so a reader never sees half a config.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!("toml.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path)
}

/// Ctrl-C or SIGTERM, listened for from the call on (not from the first poll). Elsewhere than
/// Unix there is nothing to register before the first poll, so it reads as a plain `async fn`.
#[cfg_attr(not(unix), allow(clippy::manual_async_fn))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let unix = {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::terminate())
            .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
            .ok()
    };
    async move {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = unix {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
