//! The app registration `jumpgate admin app create` makes in Microsoft Entra ID, and the
//! configuration file it hands the organisation for every laptop. Pure: the body sent to
//! Microsoft Graph and the TOML text are decided here; `jumpgate_azure::apps` sends them.

use serde_json::{json, Value};

use crate::config::Config;

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
/// The Graph permission the creation itself needs, delegated.
pub const WRITE_PERMISSION: &str = "Application.ReadWrite.All";
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

/// The body of `POST /v1.0/applications`: a single-tenant public client with the loopback
/// redirect, public client flows on (device code), and the delegated permissions Jumpgate
/// asks for: ARM's `user_impersonation`; with `groups` the PIM for Groups permissions
/// ([`GRAPH_GROUP_PERMISSIONS`]); with `graph_read_users` Graph's `User.ReadBasic.All` for the
/// admin commands.
pub fn application(name: &str, graph_read_users: bool, groups: bool) -> Value {
    let mut access = vec![json!({
        "resourceAppId": ARM_APP_ID,
        "resourceAccess": [{"id": ARM_USER_IMPERSONATION, "type": "Scope"}],
    })];
    let mut graph: Vec<Value> = Vec::new();
    if groups {
        graph.extend(
            GRAPH_GROUP_PERMISSIONS
                .iter()
                .map(|(_, id)| json!({"id": id, "type": "Scope"})),
        );
    }
    if graph_read_users {
        graph.push(json!({"id": GRAPH_USER_READ_BASIC_ALL, "type": "Scope"}));
    }
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
        "isFallbackPublicClient": true,
        "requiredResourceAccess": access,
    })
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The configuration to deploy as `/etc/jumpgate/config.toml` for the new app: the tenant,
/// the client id, and the endpoints and audiences of `admin` that differ from Azure's public
/// cloud (a sovereign cloud, or the simulator). `[azure]` is managed, so a user's own file
/// cannot point Jumpgate at another app or tenant.
/// Registered without the PIM for Groups permissions (`groups` false), it also says
/// `[access] groups = false`, so no laptop asks Graph for what was not granted.
pub fn deployable_config(admin: &Config, app_name: &str, client_id: &str, groups: bool) -> String {
    let azure = &admin.azure;
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
        String::new(),
        "[azure]".to_string(),
        format!("tenant_id = {}", quoted(&azure.tenant_id)),
        format!("client_id = {}", quoted(client_id)),
    ];
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
    if !groups {
        lines.extend([
            String::new(),
            "[access]".to_string(),
            "groups = false".to_string(),
        ]);
    }
    lines.extend([
        String::new(),
        "[managed]".to_string(),
        "keys = [\"azure\"]".to_string(),
        String::new(),
    ]);
    lines.join("\n")
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
            Some((PathBuf::from("/etc/jumpgate/config.toml"), system, None)),
        )
        .expect("merged")
    }

    #[test]
    fn the_body_is_a_single_tenant_public_client_with_the_loopback_redirect() {
        let body = application("Jumpgate", false, false);
        assert_eq!(body["signInAudience"], "AzureADMyOrg");
        assert_eq!(
            body["publicClient"]["redirectUris"],
            json!(["http://localhost"])
        );
        assert_eq!(body["isFallbackPublicClient"], true);
        assert_eq!(
            body["requiredResourceAccess"],
            json!([{"resourceAppId": ARM_APP_ID, "resourceAccess": [{"id": ARM_USER_IMPERSONATION, "type": "Scope"}]}])
        );
        let with_graph = application("Jumpgate", true, false);
        assert_eq!(
            with_graph["requiredResourceAccess"][1]["resourceAppId"],
            GRAPH_APP_ID
        );
        assert_eq!(
            with_graph["requiredResourceAccess"][1]["resourceAccess"][0]["id"],
            GRAPH_USER_READ_BASIC_ALL
        );
        // PIM for Groups: its three permissions, on the one Graph entry.
        let groups = application("Jumpgate", true, true);
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
        let text = deployable_config(&admin(""), "Jumpgate", "new-client", true);
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
        let text = deployable_config(&a, "Jump \"gate\"\\", "c-2", true);
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
        let text = deployable_config(&a, "x\n[azure]\nclient_id = \"evil\"", "c-3", false);
        assert_eq!(deployed(&text, "").azure.client_id, "c-3");
    }
}
