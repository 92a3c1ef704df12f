//! The one configuration file, and where it is found.
//!
//! Lookup order: `--config PATH`, then `JUMPGATE_CONFIG`, then the platform config directory
//! (`~/.config/jumpgate/config.toml` on Linux), then the system-wide managed file
//! `/etc/jumpgate/config.toml` for enterprise deployment. The same keys point Jumpgate at
//! Azure or at `jumpgate-sim`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration found: pass --config PATH, set JUMPGATE_CONFIG, or create {0}")]
    NotFound(String),
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the configuration {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub azure: AzureConfig,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub reminders: Reminders,
    #[serde(default)]
    pub watch: WatchConfig,
    #[serde(default)]
    pub justification: JustificationConfig,
    #[serde(default)]
    pub launch: LaunchConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub simulator: Option<SimulatorConfig>,
    #[serde(default)]
    pub profiles: Vec<Profile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    pub tenant_id: String,
    pub client_id: String,
    #[serde(default = "default_authority")]
    pub authority_host: String,
    #[serde(default = "default_arm")]
    pub arm_endpoint: String,
    /// Microsoft Graph, where admin commands look users up by name.
    #[serde(default = "default_graph")]
    pub graph_endpoint: String,
    /// The token audience for ARM, when it is not the ARM endpoint itself (the simulator
    /// serves ARM on a local address and accepts Azure's audience). Sovereign clouds need
    /// nothing here: their ARM endpoint is their audience.
    #[serde(default)]
    pub arm_audience: Option<String>,
    /// The token audience for Microsoft Graph, when it is not the Graph endpoint.
    #[serde(default)]
    pub graph_audience: Option<String>,
    /// Look for jump boxes in this subscription only; when omitted, in every subscription
    /// you can see and every one you are eligible for a role in.
    #[serde(default)]
    pub subscription_id: Option<String>,
}

fn default_authority() -> String {
    "https://login.microsoftonline.com".into()
}
fn default_graph() -> String {
    "https://graph.microsoft.com".into()
}
fn default_arm() -> String {
    "https://management.azure.com".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    #[serde(default = "default_echo")]
    pub ip_echo_urls: Vec<String>,
    /// Accept a loopback address as "public": only for the simulator.
    #[serde(default)]
    pub allow_loopback_ip: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            ip_echo_urls: default_echo(),
            allow_loopback_ip: false,
        }
    }
}

fn default_echo() -> Vec<String> {
    vec![
        "https://api.ipify.org".into(),
        "https://1.1.1.1/cdn-cgi/trace".into(),
        "https://checkip.amazonaws.com".into(),
    ]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reminders {
    /// Minutes before expiry at which to remind.
    #[serde(default = "default_leads")]
    pub lead_minutes: Vec<u32>,
}

impl Default for Reminders {
    fn default() -> Self {
        Reminders {
            lead_minutes: default_leads(),
        }
    }
}

fn default_leads() -> Vec<u32> {
    vec![15, 5]
}

/// How often the watcher looks. The defaults keep a watcher with nothing pending under
/// 60 ARM reads an hour and one waiting for a decision under one read every 2 s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Poll the approvals inbox quickly: for managers. It also turns on by itself once a
    /// request has waited for this user's decision.
    #[serde(default)]
    pub approver: bool,
    /// A PIM request waiting for a decision is read this often.
    #[serde(default = "default_pending_ms")]
    pub pending_poll_ms: u64,
    /// An approver's inbox is read this often.
    #[serde(default = "default_approvals_ms")]
    pub approvals_poll_ms: u64,
    /// Everything (requests, roles, ports) is re-read this often while access is open.
    #[serde(default = "default_open_secs")]
    pub open_refresh_secs: u64,
    /// … and this often when nothing is open or pending.
    #[serde(default = "default_idle_secs")]
    pub idle_refresh_secs: u64,
    /// The public IP is checked this often while a port is open for it.
    #[serde(default = "default_ip_secs")]
    pub ip_check_secs: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            approver: false,
            pending_poll_ms: default_pending_ms(),
            approvals_poll_ms: default_approvals_ms(),
            open_refresh_secs: default_open_secs(),
            idle_refresh_secs: default_idle_secs(),
            ip_check_secs: default_ip_secs(),
        }
    }
}

fn default_pending_ms() -> u64 {
    2_200
}
fn default_approvals_ms() -> u64 {
    4_000
}
fn default_open_secs() -> u64 {
    120
}
fn default_idle_secs() -> u64 {
    300
}
fn default_ip_secs() -> u64 {
    60
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JustificationConfig {
    #[serde(default)]
    pub templates: Vec<String>,
    /// Justifications refused as too vague, compared case-insensitively (e.g. "BAU").
    #[serde(default)]
    pub refuse: Vec<String>,
    /// What an approver's decision justification is prefilled with in the tray app.
    #[serde(default)]
    pub approval_templates: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchConfig {
    /// The RDP client to run with the generated `.rdp` file; chosen per platform when unset.
    #[serde(default)]
    pub rdp_command: Option<String>,
    #[serde(default = "default_ssh")]
    pub ssh_command: String,
    /// The user name to connect as, when a profile does not say.
    #[serde(default)]
    pub username: Option<String>,
    /// The terminal the tray app runs `ssh` in (`x-terminal-emulator` when unset); it is
    /// given `-e` and the ssh command.
    #[serde(default)]
    pub terminal_command: Option<String>,
}

impl Default for LaunchConfig {
    fn default() -> Self {
        LaunchConfig {
            rdp_command: None,
            ssh_command: default_ssh(),
            username: None,
            terminal_command: None,
        }
    }
}

fn default_ssh() -> String {
    "ssh".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The OS keychain service name tokens are stored under.
    #[serde(default = "default_service")]
    pub keyring_service: String,
    /// Where pending-request records and the audit journal live; the platform data dir when unset.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Store tokens in a mode-0600 file when no OS keychain is available. Off unless set.
    #[serde(default)]
    pub allow_file_fallback: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            keyring_service: default_service(),
            state_dir: None,
            allow_file_fallback: false,
        }
    }
}

fn default_service() -> String {
    "jumpgate".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    pub control_url: String,
    /// The bearer token the simulator's control API asks for (per run; written by
    /// `jumpgate-sim serve --control --write-config`).
    #[serde(default)]
    pub control_token: Option<String>,
}

/// A named jump box, so `jumpgate connect work` needs no flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub vm: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

impl Config {
    pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.into(),
            message,
        };
        let mut endpoints = vec![
            ("azure.authority_host", self.azure.authority_host.as_str()),
            ("azure.arm_endpoint", self.azure.arm_endpoint.as_str()),
            ("azure.graph_endpoint", self.azure.graph_endpoint.as_str()),
        ];
        endpoints.extend(
            self.network
                .ip_echo_urls
                .iter()
                .map(|u| ("network.ip_echo_urls", u.as_str())),
        );
        if let Some(sim) = &self.simulator {
            endpoints.push(("simulator.control_url", sim.control_url.as_str()));
        }
        for (key, url) in endpoints {
            check_endpoint(url).map_err(|why| invalid(format!("{key}: {why}")))?;
        }
        if self.azure.tenant_id.trim().is_empty() || self.azure.client_id.trim().is_empty() {
            return Err(invalid(
                "azure.tenant_id and azure.client_id are required".into(),
            ));
        }
        if self.network.ip_echo_urls.len() < 2 {
            return Err(invalid("network.ip_echo_urls needs at least two services, so that two can agree on your address".into()));
        }
        if self
            .reminders
            .lead_minutes
            .iter()
            .any(|m| *m == 0 || *m > 24 * 60)
        {
            return Err(invalid(
                "reminders.lead_minutes must be between 1 and 1440".into(),
            ));
        }
        let w = &self.watch;
        if w.pending_poll_ms < 1_000 || w.approvals_poll_ms < 1_000 {
            return Err(invalid("watch.pending_poll_ms and watch.approvals_poll_ms must be at least 1000: ARM throttles faster polling".into()));
        }
        if [w.open_refresh_secs, w.idle_refresh_secs, w.ip_check_secs]
            .iter()
            .any(|s| *s == 0 || *s > 24 * 3600)
        {
            return Err(invalid("watch.open_refresh_secs, watch.idle_refresh_secs and watch.ip_check_secs must be between 1 and 86400".into()));
        }
        Ok(())
    }

    /// The ARM endpoint without a trailing slash.
    pub fn arm(&self) -> &str {
        self.azure.arm_endpoint.trim_end_matches('/')
    }

    /// The scope an ARM token is asked for: the ARM audience's `.default`.
    pub fn arm_scope(&self) -> String {
        let audience = self.azure.arm_audience.as_deref().unwrap_or(self.arm());
        format!("{}/.default", audience.trim_end_matches('/'))
    }

    /// A Microsoft Graph scope, such as `User.ReadBasic.All`, on the Graph audience.
    pub fn graph_scope(&self, permission: &str) -> String {
        let audience = self.azure.graph_audience.as_deref().unwrap_or(self.graph());
        format!("{}/{permission}", audience.trim_end_matches('/'))
    }

    /// The Graph endpoint without a trailing slash.
    pub fn graph(&self) -> &str {
        self.azure.graph_endpoint.trim_end_matches('/')
    }

    /// The authority for this tenant, e.g. `https://login.microsoftonline.com/{tenant}`.
    pub fn authority(&self) -> String {
        format!(
            "{}/{}",
            self.azure.authority_host.trim_end_matches('/'),
            self.azure.tenant_id
        )
    }
}

/// RELIABILITY #23: an endpoint is `https`, or `http` to exactly `127.0.0.1`, `[::1]` or
/// `localhost` (a local simulator), and never carries a user name or password. The URL is
/// parsed, so `http://127.0.0.1@evil.example` (userinfo) and `http://localhost.evil.example`
/// (another host) are both refused.
pub fn check_endpoint(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("'{text}' is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "'{text}' carries a user name or password; remove everything before '@'"
        ));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "'{text}' must be an https:// URL (http:// only to 127.0.0.1, [::1] or localhost, for a local simulator)"
        )),
    }
}

/// Where the configuration comes from, in lookup order. Only existence is checked.
pub fn locate(explicit: Option<&Path>, env: Option<PathBuf>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p);
    }
    let user = dirs::config_dir().map(|d| d.join("jumpgate").join("config.toml"));
    let system = PathBuf::from("/etc/jumpgate/config.toml");
    for candidate in user.iter().chain(std::iter::once(&system)) {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    Err(ConfigError::NotFound(
        user.unwrap_or(system).display().to_string(),
    ))
}

/// Reads and checks the configuration at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    Config::parse(&shown, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[azure]\ntenant_id = \"t\"\nclient_id = \"c\"\n";

    #[test]
    fn defaults_point_at_azure() {
        let c = Config::parse("x", MINIMAL).expect("valid");
        assert_eq!(c.arm(), "https://management.azure.com");
        assert_eq!(c.authority(), "https://login.microsoftonline.com/t");
        assert_eq!(c.reminders.lead_minutes, [15, 5]);
        assert!(!c.network.allow_loopback_ip);
        assert!(!c.watch.approver);
        assert_eq!(c.watch.pending_poll_ms, 2_200);
        assert_eq!(c.arm_scope(), "https://management.azure.com/.default");
        assert_eq!(
            c.graph_scope("User.ReadBasic.All"),
            "https://graph.microsoft.com/User.ReadBasic.All"
        );
    }

    #[test]
    fn scopes_follow_the_configured_cloud() {
        let gov = format!(
            "{MINIMAL}arm_endpoint = \"https://management.usgovcloudapi.net/\"\ngraph_endpoint = \"https://graph.microsoft.us\"\n"
        );
        let c = Config::parse("x", &gov).expect("valid");
        assert_eq!(
            c.arm_scope(),
            "https://management.usgovcloudapi.net/.default"
        );
        assert_eq!(
            c.graph_scope("User.ReadBasic.All"),
            "https://graph.microsoft.us/User.ReadBasic.All"
        );
        let sim = format!(
            "{MINIMAL}arm_endpoint = \"http://127.0.0.1:4000\"\narm_audience = \"https://management.azure.com/\"\n"
        );
        let c = Config::parse("x", &sim).expect("valid");
        assert_eq!(c.arm_scope(), "https://management.azure.com/.default");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            ("[azure]\ntenant_id = \"t\"\n", "client_id"),
            (
                &format!("{MINIMAL}arm_endpoint = \"http://evil.example\"\n"),
                "https://",
            ),
            (
                &format!("{MINIMAL}[network]\nip_echo_urls = [\"https://a.example\"]\n"),
                "at least two",
            ),
            (
                &format!("{MINIMAL}[network]\nip_echo_url = []\n"),
                "unknown field",
            ),
            ("not toml", "not valid"),
            (
                &format!("{MINIMAL}[watch]\npending_poll_ms = 10\n"),
                "at least 1000",
            ),
            (
                &format!("{MINIMAL}[watch]\nidle_refresh_secs = 0\n"),
                "between 1 and 86400",
            ),
        ];
        for (text, expected) in cases {
            let err = Config::parse("c.toml", text).expect_err(text).to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn reliability_23_endpoints_are_parsed_not_prefix_matched() {
        let cases = [
            ("https://management.azure.com", true),
            ("https://management.azure.com/", true),
            ("http://127.0.0.1:4000", true),
            ("http://127.0.0.1", true),
            ("http://[::1]:4000/", true),
            ("http://localhost:4000/x", true),
            ("HTTP://LOCALHOST:4000", true),
            ("http://127.0.0.1@evil.example", false),
            ("http://127.0.0.1:4000@evil.example", false),
            ("http://localhost.evil.example", false),
            ("http://127.0.0.1.evil.example", false),
            ("http://127.0.0.2:4000", false),
            ("http://[::2]:4000", false),
            ("http://evil.example", false),
            ("https://user:pw@management.azure.com", false),
            ("https://user@management.azure.com", false),
            ("ftp://127.0.0.1", false),
            ("file:///etc/passwd", false),
            ("management.azure.com", false),
            ("https://", false),
            ("", false),
        ];
        for (url, ok) in cases {
            assert_eq!(check_endpoint(url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn reliability_23_every_configured_endpoint_is_checked() {
        let bad = "http://localhost.evil.example";
        let files = [
            format!("{MINIMAL}authority_host = \"{bad}\"\n"),
            format!("{MINIMAL}arm_endpoint = \"{bad}\"\n"),
            format!("{MINIMAL}graph_endpoint = \"{bad}\"\n"),
            format!("{MINIMAL}[network]\nip_echo_urls = [\"https://a.example\", \"{bad}\"]\n"),
            format!("{MINIMAL}[simulator]\ncontrol_url = \"{bad}\"\n"),
        ];
        for text in files {
            let err = Config::parse("c.toml", &text).expect_err(&text).to_string();
            assert!(err.contains(bad), "{text}: {err}");
        }
        let good = format!(
            "{MINIMAL}arm_endpoint = \"http://[::1]:4000\"\n[network]\nip_echo_urls = [\"http://127.0.0.1:1/ip\", \"http://localhost:1/ip\"]\n[simulator]\ncontrol_url = \"http://127.0.0.1:4000\"\n"
        );
        Config::parse("c.toml", &good).expect("loopback simulator endpoints are fine");
    }

    #[test]
    fn explicit_path_wins_then_the_environment() {
        let env = Some(PathBuf::from("/from/env.toml"));
        assert_eq!(
            locate(Some(Path::new("/explicit.toml")), env.clone()).expect("path"),
            PathBuf::from("/explicit.toml")
        );
        assert_eq!(
            locate(None, env).expect("path"),
            PathBuf::from("/from/env.toml")
        );
    }
}
