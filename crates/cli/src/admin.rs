//! `jumpgate admin …`: the set-up an admin does once, and the reports they read later.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use jumpgate_azure::admin::{self, EligibleRequest, PortSpec};
use jumpgate_azure::apps;
use jumpgate_core::admin as decide;
use serde::Serialize;
use serde_json::json;

use crate::commands::{duration_arg, since_arg};
use crate::context::Ctx;
use crate::output::{line, show, Failure, Outcome};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// JIT VM access policies.
    Jit {
        #[command(subcommand)]
        action: JitCommand,
    },
    /// Custom roles.
    Role {
        #[command(subcommand)]
        action: RoleCommand,
    },
    /// PIM eligibility and activation policy.
    Pim {
        #[command(subcommand)]
        action: PimCommand,
    },
    /// Who requested what, why, who approved, and the outcome (PIM and JIT).
    Audit(AuditArgs),
    /// Eligible assignments with their last activation; unused ones are flagged for removal.
    Review(ReviewArgs),
    /// Jumpgate's app registration in Microsoft Entra ID.
    App {
        #[command(subcommand)]
        action: AppCommand,
    },
}

#[derive(Subcommand)]
pub enum AppCommand {
    /// Register Jumpgate as a public client app in Entra ID (Microsoft Graph, as an Entra
    /// Application Administrator) and print the configuration to deploy to laptops.
    Create(AppCreateArgs),
}

#[derive(Args)]
pub struct AppCreateArgs {
    /// The app registration's display name.
    #[arg(long, default_value = jumpgate_core::appreg::DEFAULT_NAME, conflicts_with = "reuse")]
    name: String,
    /// Also ask for Microsoft Graph's User.ReadBasic.All (delegated), which the admin
    /// commands use to look users up by name.
    #[arg(long)]
    graph_read_users: bool,
    /// Leave out the Microsoft Graph permissions PIM for Groups needs (for an organisation
    /// that grants access through Azure roles only); the printed configuration then says
    /// [access] groups = false.
    #[arg(long)]
    no_groups: bool,
    /// Leave out the Microsoft Graph permissions PIM for Microsoft Entra roles needs; the
    /// printed configuration then says [access] entra_roles = false.
    #[arg(long)]
    no_entra_roles: bool,
    /// Allow public client flows, so that people may sign in with a device code. Off by
    /// default: an app that allows them is a pre-consented client for device-code phishing.
    #[arg(long)]
    device_code: bool,
    /// Adopt the existing registration with this application (client) id instead of
    /// registering one: only once it is checked to be yours (you are an owner) and as
    /// Jumpgate makes it (no secrets, certificates, web or SPA redirect URIs, the same public
    /// client settings and permissions); then finish it (service principal) and print its
    /// configuration. Never a name: anyone may register an app of any name.
    #[arg(long, value_name = "CLIENT_ID")]
    reuse: Option<String>,
    /// Also write the configuration to FILE (never over an existing file).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum JitCommand {
    /// Add or update port rules in the VM's JIT policy, keeping every other rule.
    Enable(JitEnableArgs),
    /// The JIT policies (of one VM).
    Show { vm: Option<String> },
    /// Remove a port (or every port) of a VM from its JIT policy.
    Disable {
        vm: String,
        #[arg(long)]
        port: Option<u16>,
    },
}

#[derive(Args)]
pub struct JitEnableArgs {
    /// The VM's name or resource id.
    vm: String,
    /// A port and protocol, such as 3389/tcp; repeat for several.
    #[arg(long = "port", required = true, value_name = "PORT[/tcp|udp|*]")]
    ports: Vec<String>,
    /// The longest access a request may get (5 minutes to 1 day), such as PT3H.
    #[arg(long, default_value = "PT3H")]
    max: String,
    /// Allowed source: `*` (the requester's address) or an IPv4 address or block; repeat.
    #[arg(long = "source", value_name = "PREFIX")]
    sources: Vec<String>,
}

#[derive(Subcommand)]
pub enum RoleCommand {
    /// Create (or update) the least-privilege role that may request JIT access.
    CreateJitRequester {
        /// Where the role may be assigned: /subscriptions/<id>[/resourceGroups/<name>].
        #[arg(long)]
        scope: String,
        #[arg(long, default_value = "JIT Requester")]
        name: String,
        /// Show the role definition instead of sending it.
        #[arg(long)]
        print: bool,
    },
}

#[derive(Subcommand)]
pub enum PimCommand {
    /// Make a user eligible for a role at a scope, and set how activations are approved.
    MakeEligible(MakeEligibleArgs),
}

#[derive(Args)]
pub struct MakeEligibleArgs {
    /// The role's name (or role definition id).
    #[arg(long)]
    role: String,
    /// The user: user principal name or object id.
    #[arg(long, value_name = "UPN|OBJECT_ID")]
    principal: String,
    /// /subscriptions/<id>[/resourceGroups/<name>].
    #[arg(long)]
    scope: String,
    /// Who approves activations; repeat for several. Without one, no approval is required.
    #[arg(long = "approver", value_name = "UPN")]
    approvers: Vec<String>,
    /// The longest activation, such as PT8H.
    #[arg(long)]
    max: Option<String>,
    /// Activations must give a justification.
    #[arg(long)]
    require_justification: bool,
    /// Activations must give a ticket.
    #[arg(long)]
    require_ticket: bool,
    /// How long the eligibility lasts.
    #[arg(long, default_value = "P365D")]
    eligible_for: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Args)]
pub struct AuditArgs {
    /// The scope (the subscription by default).
    #[arg(long)]
    scope: Option<String>,
    /// Only from this date (YYYY-MM-DD) or time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
pub struct ReviewArgs {
    #[arg(long)]
    scope: Option<String>,
    /// Flag eligibilities not activated within this long.
    #[arg(long, default_value = "90d")]
    unused_for: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub async fn run(ctx: &Ctx, command: AdminCommand) -> Outcome {
    match command {
        AdminCommand::Jit { action } => jit(ctx, action).await,
        AdminCommand::Role {
            action: RoleCommand::CreateJitRequester { scope, name, print },
        } => role(ctx, &scope, &name, print).await,
        AdminCommand::Pim {
            action: PimCommand::MakeEligible(a),
        } => make_eligible(ctx, a).await,
        AdminCommand::Audit(a) => audit(ctx, a).await,
        AdminCommand::Review(a) => review(ctx, a).await,
        AdminCommand::App {
            action: AppCommand::Create(a),
        } => app_create(ctx, a).await,
    }
}

#[derive(Serialize)]
struct AppCreated {
    #[serde(flatten)]
    registration: apps::AppRegistration,
    /// The configuration to deploy as /etc/jumpgate/config.toml.
    config: String,
    written_to: Option<PathBuf>,
}

async fn app_create(ctx: &Ctx, a: AppCreateArgs) -> Outcome {
    // Refuse an existing file before anything is registered, so a rerun does not register
    // and then fail.
    if let Some(out) = &a.out {
        if out.symlink_metadata().is_ok() {
            return Err(usage(format!(
                "{} exists: Jumpgate never writes over a file; choose another --out or move it away",
                out.display()
            )));
        }
    }
    let options = jumpgate_core::appreg::Options {
        graph_read_users: a.graph_read_users,
        groups: !a.no_groups,
        entra_roles: !a.no_entra_roles,
        device_code: a.device_code,
    };
    let request = apps::CreateRequest {
        name: a.name,
        options,
        reuse: a.reuse,
    };
    let registration = apps::create(ctx, &request).await?;
    let config = jumpgate_core::appreg::deployable_config(
        &ctx.config,
        &registration.name,
        &registration.client_id,
        options,
    );
    if let Some(out) = &a.out {
        write_new(out, &config)?;
    }
    let created = AppCreated {
        registration,
        config,
        written_to: a.out,
    };
    show(ctx.json, &created, || {
        let r = &created.registration;
        let what = match (r.created, r.service_principal_created) {
            (true, _) => "Created the app registration",
            (false, true) => "Adopted the existing app registration (service principal created)",
            (false, false) => "Adopted the existing app registration, service principal included",
        };
        let written = created
            .written_to
            .as_ref()
            .map(|p| format!("\nWritten to {}.", p.display()))
            .unwrap_or_default();
        // Names from the directory, each already one line (`appreg::owner_name`).
        let owners = match r.owners.as_slice() {
            [] => "none".to_string(),
            some => some.join("; "),
        };
        let device_code = if r.device_code {
            "Device-code sign-in is allowed (public client flows): block the device code flow with Conditional Access for everyone who does not need it."
        } else {
            "Device-code sign-in is off (no public client flows): people sign in through the browser."
        };
        format!(
            "{what} '{}': client id {}.\nOwners: {owners}.\n{device_code}\nDeploy this as /etc/jumpgate/config.toml (owned by root, not writable by others); users then run jumpgate signin.{written}\n\n{}",
            jumpgate_core::text::line(&r.name),
            r.client_id,
            created.config.trim_end()
        )
    });
    Ok(())
}

/// Writes `text` to a new file at `path` (mode 0644: a configuration others read), never
/// over an existing one.
fn write_new(path: &Path, text: &str) -> Outcome {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o644);
    }
    let cannot = |e: std::io::Error| {
        usage(format!(
            "cannot write the configuration to {}: {e} (the app registration is made: run again with --reuse and its client id, and another --out)",
            path.display()
        ))
    };
    let mut file = options.open(path).map_err(cannot)?;
    file.write_all(text.as_bytes()).map_err(cannot)?;
    file.sync_all().map_err(cannot)
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::usage(message)
}

async fn jit(ctx: &Ctx, action: JitCommand) -> Outcome {
    match action {
        JitCommand::Enable(a) => {
            let ports = a
                .ports
                .iter()
                .map(|p| {
                    decide::parse_port(p)
                        .map(|(number, protocol)| PortSpec { number, protocol })
                        .map_err(|e| usage(e.0))
                })
                .collect::<Outcome<Vec<_>>>()?;
            let max = duration_arg(&a.max)?;
            let change = admin::jit_enable(ctx, &a.vm, &ports, max, &a.sources).await?;
            show(ctx.json, &change, || {
                let rules: Vec<String> = change
                    .ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{} for at most {} from {}",
                            p["number"],
                            p["protocol"].as_str().unwrap_or(""),
                            p["maxRequestAccessDuration"].as_str().unwrap_or(""),
                            p.get("allowedSourceAddressPrefix")
                                .or(p.get("allowedSourceAddressPrefixes"))
                                .map(|v| v.to_string().replace('"', ""))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                format!(
                    "JIT {} on {}: {} (policy {}).",
                    if change.created { "enabled" } else { "updated" },
                    change.vm,
                    rules.join("; "),
                    change.policy
                )
            });
        }
        JitCommand::Show { vm } => {
            let policies = admin::jit_show(ctx, vm.as_deref()).await?;
            show(ctx.json, &policies, || {
                let mut out = Vec::new();
                for p in &policies {
                    out.push(p["id"].as_str().unwrap_or("").to_string());
                    for v in p["properties"]["virtualMachines"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let name = v["id"]
                            .as_str()
                            .unwrap_or("")
                            .rsplit('/')
                            .next()
                            .unwrap_or("");
                        for port in v["ports"].as_array().into_iter().flatten() {
                            out.push(format!(
                                "  {name}  {}/{}  max {}  from {}",
                                port["number"],
                                port["protocol"].as_str().unwrap_or(""),
                                port["maxRequestAccessDuration"].as_str().unwrap_or(""),
                                port.get("allowedSourceAddressPrefix")
                                    .or(port.get("allowedSourceAddressPrefixes"))
                                    .map(|v| v.to_string().replace('"', ""))
                                    .unwrap_or_default()
                            ));
                        }
                    }
                }
                if out.is_empty() {
                    "No JIT policy.".into()
                } else {
                    out.join("\n")
                }
            });
        }
        JitCommand::Disable { vm, port } => {
            let change = admin::jit_disable(ctx, &vm, port).await?;
            show(
                ctx.json,
                &json!({"vm": change.vm, "policy": change.policy, "port": port, "disabled": true}),
                || {
                    format!(
                        "JIT disabled for {}{}.",
                        change.vm,
                        port.map(|p| format!(" port {p}")).unwrap_or_default()
                    )
                },
            );
        }
    }
    Ok(())
}

async fn role(ctx: &Ctx, scope: &str, name: &str, print: bool) -> Outcome {
    let scope = admin::check_scope(scope)?;
    if print {
        line(
            &serde_json::to_string_pretty(&decide::requester_role(name, &scope))
                .unwrap_or_default(),
        );
        return Ok(());
    }
    let change = admin::create_requester_role(ctx, &scope, name).await?;
    show(ctx.json, &change, || {
        format!(
            "Role '{}' {} at {scope}, with exactly the {} JIT requester actions: {}",
            change.name,
            if change.created { "created" } else { "updated" },
            decide::JIT_REQUESTER_ACTIONS.len(),
            change.id
        )
    });
    Ok(())
}

async fn make_eligible(ctx: &Ctx, a: MakeEligibleArgs) -> Outcome {
    let request = EligibleRequest {
        role: a.role,
        principal: a.principal,
        scope: a.scope,
        approvers: a.approvers,
        max: a.max.as_deref().map(duration_arg).transpose()?,
        require_justification: a.require_justification,
        require_ticket: a.require_ticket,
        eligible_for: duration_arg(&a.eligible_for)?,
    };
    let done = admin::make_eligible(ctx, &request).await?;
    show(ctx.json, &done, || {
        format!(
            "{} is {}eligible for {} at {}{}.\nEffective activation rules: {}",
            done.principal.upn,
            if done.already_eligible {
                "already "
            } else {
                "now "
            },
            done.role,
            done.scope,
            done.eligible_until
                .map(|u| format!(" until {}", u.format("%Y-%m-%d")))
                .unwrap_or_default(),
            done.policy.summary()
        )
    });
    Ok(())
}

async fn scope_or_subscription(ctx: &Ctx, scope: Option<String>) -> Outcome<String> {
    match scope {
        Some(s) => Ok(s),
        None => Ok(format!("/subscriptions/{}", ctx.subscription().await?)),
    }
}

fn report<T: Serialize>(format: Format, rows: &[T], table: impl FnOnce() -> String) {
    match format {
        Format::Json => {
            crate::output::json_line(&serde_json::to_string_pretty(rows).unwrap_or_default())
        }
        Format::Csv => {
            let text = decide::csv(rows);
            if !text.is_empty() {
                line(text.trim_end());
            }
        }
        Format::Table => line(&table()),
    }
}

async fn audit(ctx: &Ctx, a: AuditArgs) -> Outcome {
    let since = since_arg(a.since.as_deref())?;
    let scope = scope_or_subscription(ctx, a.scope).await?;
    let rows = admin::audit(ctx, &scope, since).await?;
    let format = if ctx.json { Format::Json } else { a.format };
    report(format, &rows, || {
        if rows.is_empty() {
            return "Nothing was requested at this scope.".into();
        }
        rows.iter()
            .map(|r| {
                format!(
                    "{}  {}  {}  {}  \"{}\"  {}  {}{}",
                    r.time
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default(),
                    r.source,
                    r.who,
                    r.what,
                    r.justification,
                    r.duration,
                    r.decision,
                    if r.approver.is_empty() {
                        String::new()
                    } else {
                        format!(" by {}", r.approver)
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn review(ctx: &Ctx, a: ReviewArgs) -> Outcome {
    let window = duration_arg(&a.unused_for)?;
    let scope = scope_or_subscription(ctx, a.scope).await?;
    let rows = admin::review(ctx, &scope, window).await?;
    let format = if ctx.json { Format::Json } else { a.format };
    report(format, &rows, || {
        if rows.is_empty() {
            return "No eligible assignments at this scope.".into();
        }
        rows.iter()
            .map(|r| {
                format!(
                    "{}  {}  {}  {}  {}",
                    if r.remove_candidate {
                        "REMOVE?"
                    } else {
                        "keep   "
                    },
                    r.principal,
                    r.role,
                    r.scope,
                    r.reason
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
