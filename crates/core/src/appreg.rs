//! The app registration `jumpgate admin app create` makes in Microsoft Entra ID, the checks
//! an existing one must pass before it is adopted (`--reuse`), and the configuration file it
//! hands the organisation for every laptop. Pure: the body sent to Microsoft Graph, the
//! verdict on what Graph answered and the TOML text are decided here; `jumpgate_azure::apps`
//! sends and reads them.

use serde_json::{json, Value};

use crate::config::Config;
use crate::text;

/// Azure Service Management (ARM), as a resource application.
pub const ARM_APP_ID: &str = "797f4846-ba00-4fd7-ba43-dac1f8f63013";
/// ARM's delegated `user_impersonation` permission.
pub const ARM_USER_IMPERSONATION: &str = "41094075-9dad-400e-a0bd-54e686782033";
/// Microsoft Graph, as a resource application.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Graph's delegated `User.ReadBasic.All`, which the admin commands use to look users up.
pub const GRAPH_USER_READ_BASIC_ALL: &str = "b340eb25-3456-403f-be2f-af7a0d370277";
/// The delegated Graph permissions PIM for Groups needs (names and ids as Microsoft
/// publishes them): reading eligible memberships, requesting, cancelling and approving
/// memberships, and reading the groups' activation policies. Each needs admin consent.
pub const GRAPH_GROUP_PERMISSIONS: [(&str, &str); 3] = [
    (
        "PrivilegedEligibilitySchedule.Read.AzureADGroup",
        "8f44f93d-ecef-46ae-a9bf-338508d44d6b",
    ),
    (
        "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup",
        "06dbc45d-6708-4ef0-a797-f797ee68bf4b",
    ),
    (
        "RoleManagementPolicy.Read.AzureADGroup",
        "7e26fdff-9cb1-4e56-bede-211fe0e420e8",
    ),
];
/// The delegated Graph permissions PIM for Microsoft Entra roles needs: reading eligible
/// directory roles, requesting, cancelling and approving their activations, and reading
/// their activation policies. Each needs admin consent.
pub const GRAPH_DIRECTORY_PERMISSIONS: [(&str, &str); 3] = [
    (
        "RoleEligibilitySchedule.Read.Directory",
        "eb0788c2-6d4e-4658-8c9e-c0fb8053f03d",
    ),
    (
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "8c026be3-8e26-4774-9372-8d5d6f21daff",
    ),
    (
        "RoleManagementPolicy.Read.Directory",
        "3de2cdbe-0ff5-47d5-bdee-7f45b4749ead",
    ),
];
/// The Graph permission the creation itself needs, delegated.
pub const WRITE_PERMISSION: &str = "Application.ReadWrite.All";
/// The Graph permission that, beside [`WRITE_PERMISSION`], lets the admin add themselves as
/// the new app's owner (`POST /applications/{id}/owners/$ref`): Entra's admin roles are not
/// made owners of what they register.
pub const OWNER_PERMISSION: &str = "Directory.Read.All";
/// The loopback redirect URI to register. Jumpgate's browser sign-in redirects to
/// `http://localhost:PORT/` on an ephemeral port; Entra ignores the port of a `localhost`
/// redirect URI on a public client, and a registered URI without a path stands for `/`.
pub const REDIRECT_URI: &str = "http://localhost";
/// The name the registration gets without `--name`.
pub const DEFAULT_NAME: &str = "Jumpgate";
/// Graph's longest `displayName` is 256; a shorter cap keeps lists readable.
pub const MAX_NAME: usize = 120;

/// The display name to register, trimmed: one line, not empty, at most [`MAX_NAME`].
pub fn check_name(name: &str) -> Result<&str, String> {
    let name = crate::input::text("--name", name, MAX_NAME).map_err(|e| e.to_string())?;
    if name.is_empty() {
        return Err("--name is empty: give the app registration a name, such as Jumpgate".into());
    }
    Ok(name)
}

/// `name` as an OData string literal for `$filter` (quotes doubled).
pub fn odata_string(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

/// What the admin asked the registration to allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Graph's `User.ReadBasic.All`, for the admin commands.
    pub graph_read_users: bool,
    /// The PIM for Groups permissions.
    pub groups: bool,
    /// The PIM for Entra roles permissions.
    pub entra_roles: bool,
    /// Public client flows (`isFallbackPublicClient`), which device-code sign-in needs.
    pub device_code: bool,
}

/// The delegated permissions the registration asks for, as (resource app id, permission id).
fn permissions(options: Options) -> Vec<(&'static str, &'static str)> {
    let mut wanted = vec![(ARM_APP_ID, ARM_USER_IMPERSONATION)];
    if options.groups {
        wanted.extend(
            GRAPH_GROUP_PERMISSIONS
                .iter()
                .map(|(_, id)| (GRAPH_APP_ID, *id)),
        );
    }
    if options.entra_roles {
        wanted.extend(
            GRAPH_DIRECTORY_PERMISSIONS
                .iter()
                .map(|(_, id)| (GRAPH_APP_ID, *id)),
        );
    }
    if options.graph_read_users {
        wanted.push((GRAPH_APP_ID, GRAPH_USER_READ_BASIC_ALL));
    }
    wanted
}

/// The body of `POST /v1.0/applications`: a single-tenant public client with the loopback
/// redirect and the delegated permissions Jumpgate asks for: ARM's `user_impersonation`;
/// with `groups` the PIM for Groups permissions ([`GRAPH_GROUP_PERMISSIONS`]); with
/// `entra_roles` PIM for Entra roles' ([`GRAPH_DIRECTORY_PERMISSIONS`]); with
/// `graph_read_users` Graph's `User.ReadBasic.All` for the admin commands. Public client
/// flows (device code) only with `device_code`: an app that allows them is a pre-consented
/// client for a device-code phishing page.
pub fn application(name: &str, options: Options) -> Value {
    let mut access = vec![json!({
        "resourceAppId": ARM_APP_ID,
        "resourceAccess": [{"id": ARM_USER_IMPERSONATION, "type": "Scope"}],
    })];
    let graph: Vec<Value> = permissions(options)
        .into_iter()
        .filter(|(resource, _)| *resource == GRAPH_APP_ID)
        .map(|(_, id)| json!({"id": id, "type": "Scope"}))
        .collect();
    if !graph.is_empty() {
        access.push(json!({
            "resourceAppId": GRAPH_APP_ID,
            "resourceAccess": graph,
        }));
    }
    json!({
        "displayName": name,
        "signInAudience": "AzureADMyOrg",
        "publicClient": {"redirectUris": [REDIRECT_URI]},
        "isFallbackPublicClient": options.device_code,
        "requiredResourceAccess": access,
    })
}

/// The client id `--reuse` names: a GUID, never a name, since anyone in the tenant may have
/// registered an app of any name.
pub fn check_client_id(value: &str) -> Result<String, String> {
    let value = value.trim();
    match uuid::Uuid::parse_str(value) {
        Ok(id) => Ok(id.to_string()),
        Err(_) => Err(format!(
            "--reuse takes the application (client) id of a registration you own, a GUID such as 00000000-0000-0000-0000-000000000000, not a name ('{}'): anyone in the tenant may register an app of any name. Find the id this command printed when it made the app, or in the Entra admin center under App registrations (check its Owners first).",
            text::line(&value.chars().take(80).collect::<String>())
        )),
    }
}

/// One check an existing registration failed before `--reuse` would adopt it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A stable name for the check (`secrets`, `owner`, …).
    pub check: &'static str,
    /// What is wrong and what to do, in one sentence; text from Graph made one line.
    pub message: String,
}

impl Problem {
    fn new(check: &'static str, message: String) -> Problem {
        Problem { check, message }
    }
}

/// At most `max` characters of one line of `s`.
fn short(s: &str, max: usize) -> String {
    let s = text::line(s);
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s.into_owned()
    }
}

/// An owner as Graph lists it (a `directoryObject`), for people: "Name <upn>", or for a
/// service principal "Name (service principal)", or its object id when Graph did not say
/// more. Every part is text from the directory, made one short line.
pub fn owner_name(owner: &Value) -> String {
    let field = |key: &str| {
        owner[key]
            .as_str()
            .map(|v| short(v, 120))
            .filter(|v| !v.is_empty())
    };
    let id = field("id").unwrap_or_else(|| "(no id)".into());
    let service_principal = owner["@odata.type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("#microsoft.graph.servicePrincipal"));
    match (field("displayName"), field("userPrincipalName")) {
        _ if service_principal => format!(
            "{} (service principal {id})",
            field("displayName").unwrap_or_else(|| "unnamed".into())
        ),
        (Some(name), Some(upn)) => format!("{name} <{upn}>"),
        (Some(name), None) => format!("{name} ({id})"),
        (None, Some(upn)) => upn,
        (None, None) => format!("object {id}"),
    }
}

/// The name of a delegated permission Jumpgate knows, or the ids Graph answered.
fn permission_name(resource: &str, id: &str, kind: &str) -> String {
    let known = [(
        ARM_APP_ID,
        ARM_USER_IMPERSONATION,
        "Azure Service Management user_impersonation",
    )]
    .into_iter()
    .chain(
        GRAPH_GROUP_PERMISSIONS
            .iter()
            .chain(&GRAPH_DIRECTORY_PERMISSIONS)
            .map(|(name, id)| (GRAPH_APP_ID, *id, *name)),
    )
    .chain([(
        GRAPH_APP_ID,
        GRAPH_USER_READ_BASIC_ALL,
        "User.ReadBasic.All",
    )])
    .find(|(r, i, _)| r.eq_ignore_ascii_case(resource) && i.eq_ignore_ascii_case(id))
    .map(|(_, _, name)| name.to_string());
    let what = match known {
        Some(name) if kind == "Scope" => return name,
        Some(name) => name,
        None if resource.eq_ignore_ascii_case(GRAPH_APP_ID) => {
            format!("Microsoft Graph permission {}", short(id, 40))
        }
        None => format!("{} of resource {}", short(id, 40), short(resource, 40)),
    };
    if kind.eq_ignore_ascii_case("Role") {
        format!("{what} (an application permission)")
    } else {
        what
    }
}

/// Whether a public client redirect URI sends the sign-in to this computer only: `http` to
/// `localhost`, `127.0.0.1` or `[::1]`, without userinfo, query or fragment.
fn loopback(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
            && u.username().is_empty()
            && u.password().is_none()
            && u.query().is_none()
            && u.fragment().is_none()
    })
}

/// The strings of a Graph string array at `pointer` (missing or null: none).
fn strings(app: &Value, pointer: &str) -> Vec<String> {
    app.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn listed(items: &[String]) -> String {
    let shown: Vec<String> = items.iter().take(5).map(|i| short(i, 100)).collect();
    let more = items.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Every reason the registration `app` (as `GET /applications(appId='…')` answers it), owned by
/// `owners` (as `…/owners` lists them), may not be adopted by the admin whose object id is `me`
/// for a Jumpgate that allows `options`: credentials, redirect URIs other than the public
/// client's loopback, public client settings and permissions other than those Jumpgate
/// registers, and an admin who is not among its owners. Empty: it is Jumpgate's, as this
/// command would have made it, and the admin's.
pub fn reuse_problems(app: &Value, owners: &[Value], me: &str, options: Options) -> Vec<Problem> {
    let mut problems = Vec::new();
    let secrets: Vec<String> = app["passwordCredentials"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let name = c["displayName"].as_str().unwrap_or("");
                    let hint = c["hint"].as_str().unwrap_or("");
                    format!("'{}' ({hint}…)", short(name, 60))
                })
                .collect()
        })
        .unwrap_or_default();
    if !secrets.is_empty() {
        problems.push(Problem::new(
            "secrets",
            format!(
                "it has {} client secret(s) ({}): whoever holds one can act as the app, and Jumpgate's app is a public client with none. Delete them under Certificates & secrets, or register a new app.",
                secrets.len(),
                listed(&secrets)
            ),
        ));
    }
    let certificates: Vec<String> = app["keyCredentials"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| format!("'{}'", short(c["displayName"].as_str().unwrap_or(""), 60)))
                .collect()
        })
        .unwrap_or_default();
    if !certificates.is_empty() {
        problems.push(Problem::new(
            "certificates",
            format!(
                "it has {} certificate(s) ({}): whoever holds the key can act as the app. Delete them under Certificates & secrets, or register a new app.",
                certificates.len(),
                listed(&certificates)
            ),
        ));
    }
    for (check, pointer, platform) in [
        ("web_redirect_uris", "/web/redirectUris", "Web"),
        (
            "spa_redirect_uris",
            "/spa/redirectUris",
            "Single-page application",
        ),
    ] {
        let uris = strings(app, pointer);
        if !uris.is_empty() {
            problems.push(Problem::new(
                check,
                format!(
                    "it sends sign-ins to {platform} redirect URIs ({}), where an authorization code can be taken. Remove the {platform} platform under Authentication, or register a new app.",
                    listed(&uris)
                ),
            ));
        }
    }
    let public = strings(app, "/publicClient/redirectUris");
    let elsewhere: Vec<String> = public.iter().filter(|u| !loopback(u)).cloned().collect();
    if !elsewhere.is_empty() {
        problems.push(Problem::new(
            "public_client_redirect_uris",
            format!(
                "its mobile and desktop redirect URIs include {}, which are not this computer's loopback: a sign-in could be sent there. Keep only {REDIRECT_URI} under Authentication, or register a new app.",
                listed(&elsewhere)
            ),
        ));
    }
    let has_localhost = public.iter().any(|u| {
        url::Url::parse(u).is_ok_and(|u| {
            u.scheme() == "http"
                && u.host_str() == Some("localhost")
                && matches!(u.path(), "" | "/")
        })
    });
    if !has_localhost {
        problems.push(Problem::new(
            "public_client_redirect_uris",
            format!(
                "it lacks the redirect URI {REDIRECT_URI} on the mobile and desktop platform, which Jumpgate's browser sign-in returns to. Add it under Authentication."
            ),
        ));
    }
    let fallback = app["isFallbackPublicClient"].as_bool().unwrap_or(false);
    match (fallback, options.device_code) {
        (true, false) => problems.push(Problem::new(
            "public_client_flows",
            "it allows public client flows (device code), which makes it a pre-consented app for device-code phishing. Turn off \"Allow public client flows\" under Authentication, or pass --device-code if the organisation needs device-code sign-in.".into(),
        )),
        (false, true) => problems.push(Problem::new(
            "public_client_flows",
            "it does not allow public client flows, which --device-code asks for. Turn on \"Allow public client flows\" under Authentication, or leave out --device-code.".into(),
        )),
        _ => {}
    }
    let audience = app["signInAudience"].as_str().unwrap_or("");
    if audience != "AzureADMyOrg" {
        problems.push(Problem::new(
            "sign_in_audience",
            format!(
                "it lets accounts outside this organisation sign in (signInAudience '{}'). Set Supported account types to this organisational directory only (AzureADMyOrg), or register a new app.",
                short(audience, 60)
            ),
        ));
    }
    let wanted = permissions(options);
    let mut asked: Vec<(String, String, String)> = Vec::new();
    for entry in app["requiredResourceAccess"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let resource = entry["resourceAppId"]
            .as_str()
            .unwrap_or("")
            .to_ascii_lowercase();
        for access in entry["resourceAccess"].as_array().into_iter().flatten() {
            asked.push((
                resource.clone(),
                access["id"].as_str().unwrap_or("").to_ascii_lowercase(),
                access["type"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    let extra: Vec<String> = asked
        .iter()
        .filter(|(r, id, kind)| {
            kind != "Scope" || !wanted.iter().any(|(wr, wid)| wr == r && wid == id)
        })
        .map(|(r, id, kind)| permission_name(r, id, kind))
        .collect();
    if !extra.is_empty() {
        let read_users = extra.iter().any(|p| p == "User.ReadBasic.All");
        problems.push(Problem::new(
            "permissions",
            format!(
                "it asks for {}, which Jumpgate does not (with these options): an admin's consent would grant them. Remove them under API permissions{}, or register a new app.",
                listed(&extra),
                if read_users { " (or pass --graph-read-users if you want User.ReadBasic.All)" } else { "" }
            ),
        ));
    }
    let missing: Vec<&(&str, &str)> = wanted
        .iter()
        .filter(|(wr, wid)| {
            !asked
                .iter()
                .any(|(r, id, kind)| kind == "Scope" && r == wr && id == wid)
        })
        .collect();
    let groups_missing = missing
        .iter()
        .any(|(_, id)| GRAPH_GROUP_PERMISSIONS.iter().any(|(_, g)| g == id));
    let roles_missing = missing
        .iter()
        .any(|(_, id)| GRAPH_DIRECTORY_PERMISSIONS.iter().any(|(_, g)| g == id));
    let missing: Vec<String> = missing
        .iter()
        .map(|(r, id)| permission_name(r, id, "Scope"))
        .collect();
    if !missing.is_empty() {
        problems.push(Problem::new(
            "permissions",
            format!(
                "it lacks {}, which Jumpgate needs. Add them under API permissions (delegated){}.",
                listed(&missing),
                match (groups_missing, roles_missing) {
                    (true, true) => ", or pass --no-groups and --no-entra-roles if the organisation uses neither PIM for Groups nor PIM for Entra roles",
                    (true, false) => ", or pass --no-groups if the organisation grants access through Azure roles only",
                    (false, true) => ", or pass --no-entra-roles if no one is to activate Entra roles through Jumpgate",
                    (false, false) => "",
                }
            ),
        ));
    }
    let mine = owners.iter().any(|o| {
        o["id"]
            .as_str()
            .is_some_and(|id| id.eq_ignore_ascii_case(me))
    });
    if !mine {
        let names: Vec<String> = owners.iter().map(owner_name).collect();
        problems.push(Problem::new(
            "owner",
            if names.is_empty() {
                "it has no owners, so nobody answers for it: an admin who knows where it came from should add you as an owner under Owners, or register a new app.".into()
            } else {
                format!(
                    "you are not among its owners ({}): make sure it is the organisation's, then ask one of them to add you under Owners, or register a new app.",
                    listed(&names)
                )
            },
        ));
    }
    problems
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The configuration to deploy as `/etc/jumpgate/config.toml` for the new app: the tenant,
/// the client id, and the endpoints and audiences of `admin` that differ from Azure's public
/// cloud (a sovereign cloud, or the simulator). `[azure]` is managed, so a user's own file
/// cannot point Jumpgate at another app or tenant.
/// Registered without the PIM for Groups permissions (`groups` false), it also says
/// `[access] groups = false`, and without PIM for Entra roles' `entra_roles = false`, so no
/// laptop asks Graph for what was not granted. Whether
/// device-code sign-in works with the app (`options.device_code`) is said in a comment, with
/// what the admin does about it.
pub fn deployable_config(
    admin: &Config,
    app_name: &str,
    client_id: &str,
    options: Options,
) -> String {
    let azure = &admin.azure;
    let device_code: &[&str] = if options.device_code {
        &[
            "# Device-code sign-in (jumpgate signin --device-code) is allowed: the app allows public",
            "# client flows. Block the device code flow with a Conditional Access policy",
            "# (Authentication flows) for everyone who does not need it.",
        ]
    } else {
        &[
            "# Device-code sign-in is off: the app does not allow public client flows, so people",
            "# sign in through the browser. Where someone must use a device code, turn on \"Allow",
            "# public client flows\" for the app and limit it with Conditional Access.",
        ]
    };
    let mut lines = vec![
        format!(
            "# Jumpgate for the app registration {} (client id {client_id}).",
            quoted(&crate::text::line(app_name))
        ),
        "# Deploy as /etc/jumpgate/config.toml, owned by root and not writable by others."
            .to_string(),
        "# Users may add their own settings in ~/.config/jumpgate/config.toml; [azure] stays"
            .to_string(),
        "# as set here.".to_string(),
    ];
    lines.extend(device_code.iter().map(|l| l.to_string()));
    lines.extend([
        String::new(),
        "[azure]".to_string(),
        format!("tenant_id = {}", quoted(&azure.tenant_id)),
        format!("client_id = {}", quoted(client_id)),
    ]);
    let endpoints = [
        (
            "authority_host",
            azure.authority_host.as_str(),
            "https://login.microsoftonline.com",
        ),
        (
            "arm_endpoint",
            azure.arm_endpoint.as_str(),
            "https://management.azure.com",
        ),
        (
            "graph_endpoint",
            azure.graph_endpoint.as_str(),
            "https://graph.microsoft.com",
        ),
    ];
    for (key, value, default) in endpoints {
        if value.trim_end_matches('/') != default {
            lines.push(format!("{key} = {}", quoted(value)));
        }
    }
    for (key, value) in [
        ("arm_audience", &azure.arm_audience),
        ("graph_audience", &azure.graph_audience),
    ] {
        if let Some(v) = value {
            lines.push(format!("{key} = {}", quoted(v)));
        }
    }
    if let Some(sub) = &azure.subscription_id {
        lines.push(format!("subscription_id = {}", quoted(sub)));
    }
    if !options.groups || !options.entra_roles {
        lines.extend([String::new(), "[access]".to_string()]);
        if !options.groups {
            lines.push("groups = false".to_string());
        }
        if !options.entra_roles {
            lines.push("entra_roles = false".to_string());
        }
    }
    lines.extend([
        String::new(),
        "[managed]".to_string(),
        "keys = [\"azure\"]".to_string(),
        String::new(),
    ]);
    lines.join("\n")
}

/// Why `--reuse` left the registration `name` (`client_id`) alone: every problem on a line of
/// its own, and what to do. An app that is not the admin's may be someone else's trap, so its
/// settings are not to be fixed and adopted; the admin's own may be.
pub fn refusal(name: &str, client_id: &str, problems: &[Problem]) -> String {
    let reasons: Vec<String> = problems
        .iter()
        .map(|p| format!("- {}: {}", p.check, p.message))
        .collect();
    let next = if problems.iter().any(|p| p.check == "owner") {
        "If you do not know who made it and why, do not adopt it: leave out --reuse to register a new app (with another --name while this one is taken), and have the app reviewed or deleted."
            .to_string()
    } else {
        format!("Fix each of these in the Entra admin center (App registrations, {client_id}) and run again, or leave out --reuse to register a new app.")
    };
    format!(
        "The app registration '{}' (client id {client_id}) was not adopted, and nothing was changed:\n{}\n{next}",
        short(name, 120),
        reasons.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn admin(extra: &str) -> Config {
        Config::parse(
            "admin.toml",
            &format!("[azure]\ntenant_id = \"t-1\"\nclient_id = \"old\"\n{extra}"),
        )
        .expect("config")
    }

    /// The written file, as the system file under a user's file that tries to point
    /// elsewhere.
    fn deployed(text: &str, user: &str) -> Config {
        let system: toml::Value = toml::from_str(text).expect("deployable TOML");
        let user: toml::Value = toml::from_str(user).expect("user TOML");
        crate::config::merge(
            Some((PathBuf::from("user.toml"), user)),
            Some((PathBuf::from("/etc/jumpgate/config.toml"), system)),
        )
        .expect("merged")
    }

    const ALL: Options = Options {
        graph_read_users: true,
        groups: true,
        entra_roles: true,
        device_code: false,
    };

    #[test]
    fn the_body_is_a_single_tenant_public_client_with_the_loopback_redirect() {
        let body = application("Jumpgate", Options::default());
        assert_eq!(body["signInAudience"], "AzureADMyOrg");
        assert_eq!(
            body["publicClient"]["redirectUris"],
            json!(["http://localhost"])
        );
        // Public client flows (device code) only when asked for.
        assert_eq!(body["isFallbackPublicClient"], false);
        let device_code = Options {
            device_code: true,
            ..Options::default()
        };
        assert_eq!(
            application("Jumpgate", device_code)["isFallbackPublicClient"],
            true
        );
        assert_eq!(
            body["requiredResourceAccess"],
            json!([{"resourceAppId": ARM_APP_ID, "resourceAccess": [{"id": ARM_USER_IMPERSONATION, "type": "Scope"}]}])
        );
        let with_graph = application(
            "Jumpgate",
            Options {
                graph_read_users: true,
                ..Options::default()
            },
        );
        assert_eq!(
            with_graph["requiredResourceAccess"][1]["resourceAppId"],
            GRAPH_APP_ID
        );
        assert_eq!(
            with_graph["requiredResourceAccess"][1]["resourceAccess"][0]["id"],
            GRAPH_USER_READ_BASIC_ALL
        );
        // PIM for Groups and for Entra roles: three permissions each, on the one Graph entry.
        let groups = application("Jumpgate", ALL);
        let graph = &groups["requiredResourceAccess"][1];
        assert_eq!(graph["resourceAppId"], GRAPH_APP_ID);
        let ids: Vec<&str> = graph["resourceAccess"]
            .as_array()
            .expect("access")
            .iter()
            .filter_map(|a| a["id"].as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "8f44f93d-ecef-46ae-a9bf-338508d44d6b",
                "06dbc45d-6708-4ef0-a797-f797ee68bf4b",
                "7e26fdff-9cb1-4e56-bede-211fe0e420e8",
                "eb0788c2-6d4e-4658-8c9e-c0fb8053f03d",
                "8c026be3-8e26-4774-9372-8d5d6f21daff",
                "3de2cdbe-0ff5-47d5-bdee-7f45b4749ead",
                GRAPH_USER_READ_BASIC_ALL
            ]
        );
    }

    #[test]
    fn names_are_one_short_line_and_quotes_are_doubled_for_odata() {
        assert_eq!(check_name("  Jumpgate  "), Ok("Jumpgate"));
        assert!(check_name("").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name("a\u{202e}b").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME + 1)).is_err());
        assert_eq!(odata_string("O'Brien's"), "'O''Brien''s'");
    }

    #[test]
    fn the_public_cloud_config_names_only_tenant_and_client_and_manages_azure() {
        let text = deployable_config(&admin(""), "Jumpgate", "new-client", ALL);
        assert!(text.contains("Device-code sign-in is off"), "{text}");
        assert!(!text.contains("authority_host"), "{text}");
        assert!(!text.contains("arm_endpoint"), "{text}");
        let c = deployed(
            &text,
            "[azure]\ntenant_id = \"evil\"\nclient_id = \"evil\"\n",
        );
        assert_eq!(c.azure.tenant_id, "t-1");
        assert_eq!(c.azure.client_id, "new-client");
        assert_eq!(c.origin.managed, vec!["azure".to_string()]);
    }

    #[test]
    fn other_clouds_keep_their_endpoints_and_audiences_and_names_are_escaped() {
        let a = admin(
            "authority_host = \"http://127.0.0.1:4000\"\narm_endpoint = \"http://127.0.0.1:4000\"\ngraph_endpoint = \"http://127.0.0.1:4000\"\narm_audience = \"https://management.azure.com\"\ngraph_audience = \"https://graph.microsoft.com\"\n",
        );
        let text = deployable_config(&a, "Jump \"gate\"\\", "c-2", ALL);
        let c = deployed(&text, "");
        assert_eq!(c.azure.arm_endpoint, "http://127.0.0.1:4000");
        assert_eq!(c.azure.graph_endpoint, "http://127.0.0.1:4000");
        assert_eq!(c.azure.authority_host, "http://127.0.0.1:4000");
        assert_eq!(
            c.azure.arm_audience.as_deref(),
            Some("https://management.azure.com")
        );
        assert_eq!(
            c.azure.graph_audience.as_deref(),
            Some("https://graph.microsoft.com")
        );
        assert_eq!(c.azure.client_id, "c-2");
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.contains("Jump \"gate\"\\")),
            "{text}"
        );
        // A name from the server with a line break stays inside its comment line.
        let text = deployable_config(
            &a,
            "x\n[azure]\nclient_id = \"evil\"",
            "c-3",
            Options::default(),
        );
        assert_eq!(deployed(&text, "").azure.client_id, "c-3");
    }

    #[test]
    fn a_configuration_for_device_code_says_how_to_contain_it() {
        let on = Options {
            device_code: true,
            ..ALL
        };
        let text = deployable_config(&admin(""), "Jumpgate", "c", on);
        assert!(text.contains("Device-code sign-in (jumpgate signin --device-code) is allowed"));
        assert!(text.contains("Conditional Access"), "{text}");
        assert_eq!(deployed(&text, "").azure.client_id, "c");
    }

    #[test]
    fn reuse_takes_a_client_id_never_a_name() {
        let id = "7c3e9b1a-5d2f-4e8a-9b6c-2a1f0e9d8c71";
        assert_eq!(
            check_client_id(&format!(" {} ", id.to_uppercase())),
            Ok(id.into())
        );
        for name in ["jumpgate", "Jumpgate Laptops", ""] {
            let e = check_client_id(name).expect_err(name);
            assert!(
                e.contains("application (client) id") && e.contains("not a name"),
                "{e}"
            );
        }
        // A name from a terminal comes back inert.
        assert!(!check_client_id("a\u{1b}[2Jb")
            .expect_err("name")
            .contains('\u{1b}'));
    }

    const ME: &str = "da7e0000-0000-4000-8000-000000000004";

    /// An application as Graph answers one `app create` made with `options`, owned by ME.
    fn jumpgate(options: Options) -> (Value, Vec<Value>) {
        let mut app = application("Jumpgate", options);
        app["appId"] = json!("7c3e9b1a-5d2f-4e8a-9b6c-2a1f0e9d8c71");
        app["passwordCredentials"] = json!([]);
        app["keyCredentials"] = json!([]);
        app["web"] = json!({"redirectUris": [], "homePageUrl": null});
        app["spa"] = json!({"redirectUris": []});
        let owners = vec![json!({
            "@odata.type": "#microsoft.graph.user",
            "id": ME,
            "displayName": "Dave Diaz",
            "userPrincipalName": "dave@contoso.example",
        })];
        (app, owners)
    }

    fn checks(problems: &[Problem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.check).collect()
    }

    #[test]
    fn an_app_as_jumpgate_makes_it_and_owned_by_the_admin_may_be_reused() {
        for options in [
            ALL,
            Options::default(),
            Options {
                device_code: true,
                ..ALL
            },
        ] {
            let (app, owners) = jumpgate(options);
            assert_eq!(
                reuse_problems(&app, &owners, ME, options),
                vec![],
                "{options:?}"
            );
            // Graph may leave a property out, or answer null, for an empty one.
            let mut sparse = app.clone();
            for key in ["passwordCredentials", "keyCredentials", "web", "spa"] {
                sparse[key] = Value::Null;
            }
            assert_eq!(reuse_problems(&sparse, &owners, ME, options), vec![]);
        }
        // Another loopback form beside http://localhost is this computer too.
        let (mut app, owners) = jumpgate(ALL);
        app["publicClient"]["redirectUris"] = json!(["http://localhost", "http://127.0.0.1:8400/"]);
        assert_eq!(reuse_problems(&app, &owners, ME, ALL), vec![]);
    }

    #[test]
    fn every_failed_check_is_named_with_what_to_do() {
        /// A change to the app or its owners that one check must catch.
        type Change = Box<dyn Fn(&mut Value, &mut Vec<Value>)>;
        let cases: Vec<(&str, Change, &str)> = vec![
            (
                "secrets",
                Box::new(|a, _| {
                    a["passwordCredentials"] = json!([{"displayName": "ci", "hint": "Qx7"}])
                }),
                "Certificates & secrets",
            ),
            (
                "certificates",
                Box::new(|a, _| {
                    a["keyCredentials"] =
                        json!([{"displayName": "CN=x", "type": "AsymmetricX509Cert"}])
                }),
                "Certificates & secrets",
            ),
            (
                "web_redirect_uris",
                Box::new(|a, _| a["web"]["redirectUris"] = json!(["https://evil.example/cb"])),
                "Authentication",
            ),
            (
                "spa_redirect_uris",
                Box::new(|a, _| a["spa"]["redirectUris"] = json!(["https://evil.example/"])),
                "Authentication",
            ),
            (
                "public_client_redirect_uris",
                Box::new(|a, _| {
                    a["publicClient"]["redirectUris"] =
                        json!(["http://localhost", "https://evil.example/", "myapp://auth"])
                }),
                "Keep only http://localhost",
            ),
            (
                "public_client_redirect_uris",
                Box::new(|a, _| a["publicClient"]["redirectUris"] = json!([])),
                "Add it under Authentication",
            ),
            (
                "public_client_flows",
                Box::new(|a, _| a["isFallbackPublicClient"] = json!(true)),
                "--device-code",
            ),
            (
                "sign_in_audience",
                Box::new(|a, _| a["signInAudience"] = json!("AzureADMultipleOrgs")),
                "AzureADMyOrg",
            ),
            (
                "permissions",
                Box::new(|a, _| {
                    a["requiredResourceAccess"][1]["resourceAccess"]
                        .as_array_mut()
                        .expect("graph")
                        .push(
                            json!({"id": "06da0dbc-49e2-44d2-8312-53f166ab848a", "type": "Scope"}),
                        )
                }),
                "consent would grant them",
            ),
            (
                "permissions",
                Box::new(|a, _| {
                    a["requiredResourceAccess"][1]["resourceAccess"]
                        .as_array_mut()
                        .expect("graph")
                        .push(json!({"id": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", "type": "Role"}))
                }),
                "an application permission",
            ),
            (
                "permissions",
                Box::new(|a, _| {
                    a["requiredResourceAccess"]
                        .as_array_mut()
                        .expect("access")
                        .truncate(1)
                }),
                "--no-groups",
            ),
            (
                "owner",
                Box::new(|_, o| o[0]["id"] = json!("96ace000-0000-4000-8000-000000000008")),
                "ask one of them to add you",
            ),
            ("owner", Box::new(|_, o| o.clear()), "no owners"),
        ];
        for (check, change, needle) in cases {
            let (mut app, mut owners) = jumpgate(ALL);
            change(&mut app, &mut owners);
            let problems = reuse_problems(&app, &owners, ME, ALL);
            assert_eq!(checks(&problems), vec![check], "{problems:?}");
            assert!(
                problems[0].message.contains(needle),
                "{check}: {}",
                problems[0].message
            );
        }
        // Asked for device code, an app without public client flows fails too.
        let (app, owners) = jumpgate(ALL);
        let on = Options {
            device_code: true,
            ..ALL
        };
        assert_eq!(
            checks(&reuse_problems(&app, &owners, ME, on)),
            vec!["public_client_flows"]
        );
        // Registered with User.ReadBasic.All, reused without --graph-read-users.
        let without = Options {
            graph_read_users: false,
            ..ALL
        };
        let problems = reuse_problems(&app, &owners, ME, without);
        assert_eq!(checks(&problems), vec!["permissions"]);
        assert!(
            problems[0].message.contains("User.ReadBasic.All"),
            "{problems:?}"
        );
        assert!(
            problems[0].message.contains("--graph-read-users"),
            "{problems:?}"
        );
    }

    #[test]
    fn owners_from_the_directory_are_shown_as_inert_lines() {
        let hostile = json!({
            "@odata.type": "#microsoft.graph.user",
            "id": "96ace000-0000-4000-8000-000000000008",
            "displayName": "Grace\u{1b}[2J\u{202e} Gruber\nroot",
            "userPrincipalName": "grace@contoso.example",
        });
        let shown = owner_name(&hostile);
        assert!(shown.starts_with("Grace"), "{shown}");
        assert!(shown.ends_with(" <grace@contoso.example>"), "{shown}");
        assert!(
            !shown.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{shown:?}"
        );
        // Without permission to read users, Graph gives only the id.
        let bare =
            json!({"@odata.type": "#microsoft.graph.user", "id": "x-1", "displayName": null});
        assert_eq!(owner_name(&bare), "object x-1");
        let sp = json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": "s-1", "displayName": "Deployer"});
        assert_eq!(owner_name(&sp), "Deployer (service principal s-1)");
        // A long name is cut.
        let long = json!({"id": "x", "displayName": "n".repeat(500), "userPrincipalName": "u@x"});
        assert!(owner_name(&long).chars().count() < 140);
        // The owner check's message lists them, inert too.
        let (app, _) = jumpgate(ALL);
        let problems = reuse_problems(&app, &[hostile], ME, ALL);
        assert!(!problems[0].message.contains('\u{1b}'), "{problems:?}");
    }

    #[test]
    fn a_refusal_names_each_problem_and_never_advises_fixing_someone_elses_app() {
        let (mut app, owners) = jumpgate(ALL);
        app["web"]["redirectUris"] = json!(["https://evil.example/cb"]);
        let mine = refusal(
            "Jumpgate\u{1b}[2J",
            "c-1",
            &reuse_problems(&app, &owners, ME, ALL),
        );
        assert!(mine.starts_with("The app registration 'Jumpgate[2J' (client id c-1) was not adopted, and nothing was changed:\n- web_redirect_uris: "), "{mine}");
        assert!(
            mine.ends_with("and run again, or leave out --reuse to register a new app."),
            "{mine}"
        );
        let theirs = refusal("Jumpgate", "c-1", &reuse_problems(&app, &[], ME, ALL));
        assert_eq!(theirs.matches("\n- ").count(), 2, "{theirs}");
        assert!(theirs.contains("do not adopt it"), "{theirs}");
        assert!(!theirs.contains("Fix each"), "{theirs}");
    }
}
