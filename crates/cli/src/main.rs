//! `jumpgate`: sign in, activate the PIM role that allows JIT, open RDP or SSH for your IP,
//! and connect, from a terminal. The tray app drives the same engine.

mod admin;
mod commands;
mod context;
mod init;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "jumpgate",
    version,
    about = "Reach locked-down jump boxes through Azure PIM and JIT VM access"
)]
pub struct Cli {
    /// Configuration file (also JUMPGATE_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print JSON with stable field names instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Work in this tenant: a [[tenants]] entry's name (`default` is [azure]'s). Given
    /// before the command: jumpgate --tenant fabrikam status.
    #[arg(long, value_name = "NAME")]
    tenant: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// First run: find your organisation from your work email, write the configuration, and
    /// sign in.
    Init(InitArgs),
    /// Sign in to Entra ID (the system browser by default).
    Signin(SigninArgs),
    /// Forget the stored sign-in.
    Signout,
    /// Who is signed in.
    Whoami,
    /// Your public IPv4 address, as at least two echo services agree.
    Ip,
    /// What you may activate through PIM, with their policies: Azure roles, and memberships of
    /// groups that hold Azure roles (PIM for Groups). With --active, what is in force.
    Roles {
        #[arg(long)]
        active: bool,
        /// Only the ways that reach this VM (name or resource id), best first, with the
        /// name to give --via.
        #[arg(long = "for", value_name = "VM", conflicts_with = "active")]
        vm: Option<String>,
    },
    /// Activate an eligible PIM role, or a group membership.
    Activate(ActivateArgs),
    /// End an active PIM role or group membership before its time (not in its first 5
    /// minutes, which PIM refuses).
    Deactivate(DeactivateArgs),
    /// Your PIM requests and their statuses.
    Requests,
    /// Cancel one of your pending PIM requests.
    Cancel { id: String },
    /// Requests waiting for your decision as approver.
    Approvals,
    /// Approve a request waiting for you.
    Approve(DecideArgs),
    /// Deny a request waiting for you.
    Deny(DecideArgs),
    /// VMs with JIT policies, and your access to them.
    Targets,
    /// Open a VM's port for your IP with a JIT request.
    Open(OpenArgs),
    /// The whole chain: activate the role if needed, open the port, wait until reachable, launch.
    Connect(ConnectArgs),
    /// Ask for everything a profile names at once: its roles and groups side by side, then
    /// its jump box; with `-- COMMAND`, run that once access is in effect and exit with its
    /// code.
    Run(RunArgs),
    /// Your active roles and open ports, with time left.
    Status,
    /// The local audit journal: what you requested, approved, opened and launched.
    History(HistoryArgs),
    /// Check the audit journal for edits, reordering and truncation.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Renew before expiry: a VM's open port (a new JIT request for the same port and IP), or a
    /// PIM role or group membership. PIM lets no one extend an activation: the role is ended
    /// and activated anew through its policy (approval included), so confirm with --yes when
    /// not at a terminal.
    Extend(ExtendArgs),
    /// Keep watch in the foreground: one line per event (decisions, requests waiting for you,
    /// expiry reminders, expiry, IP changes, sign-out), each announced once.
    Watch(WatchArgs),
    /// Why can't I connect? Checks every step in order and says what to do about a failure.
    Doctor(DoctorArgs),
    /// Set-up for admins: JIT on VMs, the requester role, PIM eligibility, audit and review.
    Admin {
        #[command(subcommand)]
        action: admin::AdminCommand,
    },
}

#[derive(Args)]
pub struct InitArgs {
    /// Your work email: its domain names your organisation's Entra ID tenant.
    #[arg(long, value_name = "EMAIL")]
    email: Option<String>,
    /// Your organisation's app registration for Jumpgate (its Application (client) ID).
    #[arg(long, value_name = "ID", conflicts_with = "az_cli")]
    client_id: Option<String>,
    /// No app registration: sign in by reusing the Azure CLI's `az login`.
    #[arg(long, alias = "azure-cli")]
    az_cli: bool,
    /// The tenant id, when the email's domain does not lead to it.
    #[arg(long, value_name = "ID")]
    tenant: Option<String>,
    /// Where Entra ID signs people in (another cloud, or a local simulator).
    #[arg(long, value_name = "URL", default_value = jumpgate_core::firstrun::DEFAULT_AUTHORITY)]
    authority: String,
    /// Replace an existing configuration (the old one is kept beside it as .bak).
    #[arg(long)]
    force: bool,
    /// Write the configuration only; sign in later with jumpgate signin.
    #[arg(long)]
    no_signin: bool,
    /// Sign in on another device with a code instead of the browser.
    #[arg(long, conflicts_with = "no_signin")]
    device_code: bool,
    /// Print the sign-in URL instead of opening a browser.
    #[arg(long, conflicts_with = "no_signin")]
    no_open: bool,
}

#[derive(Args)]
pub struct WatchArgs {
    /// Poll the approvals inbox every few seconds (for managers; also switched on by itself
    /// once a request has waited for your decision).
    #[arg(long)]
    approver: bool,
}

#[derive(Args)]
pub struct DoctorArgs {
    /// The VM to check the JIT steps for (name or resource id).
    vm: Option<String>,
    /// The port to check (the VM's RDP or SSH port by default).
    #[arg(long)]
    port: Option<u16>,
    /// Also write a redacted JSON report for the help desk to FILE (no tokens or codes).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Verify the hash chain; names the first broken entry and exits non-zero.
    Verify,
}

#[derive(Args)]
pub struct HistoryArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: HistoryFormat,
    /// Only entries at or after this date (YYYY-MM-DD) or time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum HistoryFormat {
    Table,
    Csv,
    Json,
}

#[derive(Args)]
pub struct ExtendArgs {
    /// A VM with access open to you, or a role's or group's name.
    target: String,
    /// The new duration, from now.
    #[arg(long, default_value = "1h")]
    duration: String,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long, default_value = "Extension of current access")]
    justification: String,
    /// Renew a role or group membership that is still active without asking: it is ended
    /// first, and until the approver approves anew you hold none of it.
    #[arg(long)]
    yes: bool,
}

#[derive(Args)]
pub struct SigninArgs {
    /// Auth code + PKCE through the system browser (the default).
    #[arg(long, conflicts_with_all = ["device_code", "azure_cli"])]
    browser: bool,
    /// Sign in on another device with a code.
    #[arg(long, conflicts_with = "azure_cli")]
    device_code: bool,
    /// Reuse an existing `az login`.
    #[arg(long)]
    azure_cli: bool,
    /// The account to sign in as (login_hint).
    #[arg(long, value_name = "UPN")]
    user: Option<String>,
    /// Print the sign-in URL instead of opening a browser, then wait as usual.
    #[arg(long)]
    no_open: bool,
    /// How long to wait for the browser sign-in.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    timeout: String,
    /// Ask for these claims (a JSON claims request, or Azure's base64 of one): the step-up a
    /// refused activation names, such as an authentication context.
    #[arg(long, value_name = "JSON", conflicts_with = "azure_cli")]
    claims: Option<String>,
    /// Ask for multi-factor authentication in the token (what a role whose policy requires
    /// MFA needs).
    #[arg(long, conflicts_with_all = ["claims", "azure_cli"])]
    mfa: bool,
}

#[derive(Args)]
pub struct ActivateArgs {
    /// The role's, group's or Entra role's name (or a role definition id, or a group id);
    /// role:NAME, group:NAME or entra:NAME when two kinds share a name.
    role: String,
    /// The scope, when you are eligible for the role at more than one.
    #[arg(long)]
    scope: Option<String>,
    #[arg(long)]
    justification: String,
    /// How long the role stays active (1h, 90m, PT2H); the policy's maximum caps it.
    #[arg(long, default_value = "1h")]
    duration: String,
    /// A ticket, as SYSTEM:NUMBER.
    #[arg(long, value_name = "SYSTEM:NUMBER")]
    ticket: Option<String>,
    /// Wait for approval and for the role to take effect (optionally at most TIMEOUT).
    #[arg(long, num_args = 0..=1, default_missing_value = "2h", value_name = "TIMEOUT")]
    wait: Option<String>,
}

#[derive(Args)]
pub struct DeactivateArgs {
    /// The active role's, group's or Entra role's name (role:NAME, group:NAME or entra:NAME
    /// to be plain).
    role: String,
    #[arg(long, default_value = "Done: access no longer needed")]
    justification: String,
}

#[derive(Args)]
pub struct DecideArgs {
    /// The request's id (from jumpgate approvals).
    id: String,
    #[arg(long)]
    justification: String,
}

#[derive(Args)]
pub struct OpenArgs {
    /// The VM's name or resource id.
    vm: String,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long, default_value = "1h")]
    duration: String,
    #[arg(long)]
    justification: String,
    /// The source address to allow: auto (detected) or an IPv4 address.
    #[arg(long, default_value = "auto")]
    ip: String,
    /// Open the port to the whole allowed range when the policy admits your address only
    /// inside one wider than a /24.
    #[arg(long)]
    allow_wide_source: bool,
}

#[derive(Args)]
pub struct RunArgs {
    /// The profile's name, from [[profiles]] in the configuration.
    profile: String,
    /// Instead of the profile's justification.
    #[arg(long)]
    justification: Option<String>,
    /// Instead of the profile's ticket, as SYSTEM:NUMBER.
    #[arg(long, value_name = "SYSTEM:NUMBER")]
    ticket: Option<String>,
    /// Open the profile's jump box without launching the RDP or SSH client.
    #[arg(long)]
    no_launch: bool,
    /// How long to wait for approvals, for access to take effect and for the port.
    #[arg(long, default_value = "2h")]
    timeout: String,
    /// A command to run once access is in effect (after `--`); jumpgate then exits with its
    /// exit code.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Args)]
pub struct ConnectArgs {
    /// The VM's name or resource id, or a profile name from the configuration.
    vm: String,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    duration: Option<String>,
    #[arg(long)]
    justification: String,
    #[arg(long, value_name = "SYSTEM:NUMBER")]
    ticket: Option<String>,
    /// Stop when the port is reachable instead of launching the client.
    #[arg(long)]
    no_launch: bool,
    /// How long to wait for approval, for the role to take effect and for the port.
    #[arg(long, default_value = "2h")]
    timeout: String,
    /// Activate a role that grants JIT only through a wildcard (Contributor, Owner) when you
    /// are eligible for nothing narrower.
    #[arg(long)]
    allow_broad_role: bool,
    /// The way to reach the VM when several do: a role's or a group's name (group:NAME,
    /// role:NAME to be plain). Remembered for the VM.
    #[arg(long, value_name = "ROLE|GROUP")]
    via: Option<String>,
    /// Open the port to the whole allowed range when the policy admits your address only
    /// inside one wider than a /24.
    #[arg(long)]
    allow_wide_source: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("JUMPGATE_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jumpgate: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.json;
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            output::fail(json, &failure);
            ExitCode::from(output::exit_code(&failure))
        }
    }
}
