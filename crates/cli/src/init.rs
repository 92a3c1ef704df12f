//! `jumpgate init`: the first run. The work email's domain leads to the tenant (Entra's
//! OpenID discovery), the person picks a way to sign in (the organisation's app registration,
//! or the Azure CLI's `az login`), the configuration is written (0600, never over an existing
//! one without `--force`), and the sign-in follows. What a flag leaves out is asked at a
//! terminal; elsewhere the missing flag is named.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use jumpgate_azure::firstrun::{self as io, DiscoveryError, WriteError};
use jumpgate_core::config::{self, SignIn};
use jumpgate_core::explain::Kind;
use jumpgate_core::firstrun::{self, FirstConfig, FirstRunError, Method};
use serde_json::json;

use crate::context::Ctx;
use crate::output::{progress, show, Failure, Outcome};
use crate::{InitArgs, SigninArgs};

fn refused(e: FirstRunError) -> Failure {
    Failure::new(Kind::Other, e.code(), e.to_string())
}

/// Asks at the terminal (on stderr, so stdout stays the result), or names the flag to pass.
fn ask(question: &str, flag: &str) -> Outcome<String> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "{flag} is missing: pass it (stdin is not a terminal, so jumpgate init cannot ask)"
        )));
    }
    eprint!("{question} ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure::usage(format!("cannot read the answer: {e}")))?;
    if answer.is_empty() {
        return Err(Failure::usage(format!(
            "no answer: pass {flag} instead of answering"
        )));
    }
    Ok(answer.trim().to_string())
}

fn method(a: &InitArgs) -> Outcome<Method> {
    if a.az_cli {
        return Ok(Method::AzureCli);
    }
    if let Some(id) = &a.client_id {
        return Ok(Method::App {
            client_id: firstrun::client_id(id).map_err(refused)?,
        });
    }
    let choice = ask(
        "How do you sign in?\n  1) with your organisation's app registration for Jumpgate (you have its client id)\n  2) with the Azure CLI's az login (no app registration)\nAnswer 1 or 2:",
        "--client-id ID or --az-cli",
    )?;
    match choice.as_str() {
        "1" => {
            let id = ask(
                "The app registration's Application (client) ID:",
                "--client-id",
            )?;
            Ok(Method::App {
                client_id: firstrun::client_id(&id).map_err(refused)?,
            })
        }
        "2" => Ok(Method::AzureCli),
        _ => Err(Failure::usage(
            "answer 1 (an app registration's client id) or 2 (az login)",
        )),
    }
}

pub async fn run(explicit: Option<&Path>, json: bool, a: InitArgs) -> Outcome {
    let path = firstrun::user_file(
        explicit,
        std::env::var_os("JUMPGATE_CONFIG").map(PathBuf::from),
    )
    .ok_or_else(|| {
        Failure::usage("this system has no configuration folder: pass --config PATH to say where the configuration goes")
    })?;
    // Said before anything is asked, so nobody types into a run that cannot finish.
    if path.exists() && !a.force {
        return Err(Failure::new(
            Kind::Conflict,
            "config_exists",
            WriteError::Exists(path).to_string(),
        ));
    }
    let authority = firstrun::authority(&a.authority).map_err(refused)?;
    let email = match &a.email {
        Some(e) => e.clone(),
        None => ask("Your work email:", "--email")?,
    };
    let (email, domain) = firstrun::domain_of(&email).map_err(refused)?;
    let method = method(&a)?;
    let tenant_id = match &a.tenant {
        Some(t) => firstrun::tenant_id(t).map_err(refused)?,
        None => {
            progress(&format!("looking up the organisation behind {domain}"));
            io::tenant_of(&authority, &domain)
                .await
                .map_err(|e| match e {
                    DiscoveryError::Refused(r) => refused(r),
                    DiscoveryError::Failed(f) => f.into(),
                })?
        }
    };
    let first = FirstConfig {
        email: email.clone(),
        domain: domain.clone(),
        tenant_id: tenant_id.clone(),
        method: method.clone(),
        authority,
    };
    let backup = io::write_config(&path, &first.to_toml(), a.force).map_err(|e| match e {
        WriteError::Exists(_) => Failure::new(Kind::Conflict, "config_exists", e.to_string()),
        WriteError::Io { .. } => Failure::new(Kind::Other, "config_write", e.to_string()),
    })?;
    if let Some(b) = &backup {
        progress(&format!(
            "the previous configuration is kept as {}",
            b.display()
        ));
    }
    progress(&format!(
        "wrote {} for {domain} (tenant {tenant_id})",
        path.display()
    ));
    // What was written must load as every other command loads it (with the system file).
    let loaded = config::load_from_env(Some(&path)).map_err(|e| {
        Failure::new(
            Kind::Other,
            "config",
            format!("the configuration was written but does not load: {e}"),
        )
    })?;
    let sign_in = match loaded.azure.sign_in {
        SignIn::App => "app",
        SignIn::AzureCli => "azure_cli",
    };
    let client_id = match &method {
        Method::App { client_id } => Some(client_id.clone()),
        Method::AzureCli => None,
    };
    let signed_in = if a.no_signin {
        None
    } else {
        let ctx = Ctx::load(Some(&path), json, None)?;
        let tokens = crate::commands::sign_in(
            &ctx,
            SigninArgs {
                browser: false,
                device_code: a.device_code,
                azure_cli: method == Method::AzureCli,
                user: Some(email.clone()),
                no_open: a.no_open,
                timeout: "5m".into(),
                claims: None,
                mfa: false,
            },
        )
        .await?;
        Some(tokens.account)
    };
    show(
        json,
        &json!({
            "config": path,
            "domain": domain,
            "tenant_id": tenant_id,
            "sign_in": sign_in,
            "client_id": client_id,
            "signed_in_as": signed_in.as_ref().map(|a| &a.upn),
        }),
        || {
            let how = match &method {
                Method::App { .. } => "your organisation's app registration",
                Method::AzureCli => "the Azure CLI's az login",
            };
            let next = match &signed_in {
                Some(account) => format!(
                    "Signed in as {} ({}). Next: jumpgate targets, then jumpgate connect.",
                    crate::commands::one(&account.upn),
                    crate::commands::one(&account.name)
                ),
                None => "Next: jumpgate signin.".to_string(),
            };
            format!(
                "Jumpgate is set up for {domain} (tenant {tenant_id}), signing in with {how}; the configuration is {}.\n{next}",
                path.display()
            )
        },
    );
    Ok(())
}
