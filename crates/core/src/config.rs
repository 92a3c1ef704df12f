//! The one configuration file, and where it is found.
//!
//! Two files make the configuration (RELIABILITY #29). The user's file is the first found of
//! `--config PATH`, `JUMPGATE_CONFIG`, and the platform config directory
//! (`~/.config/jumpgate/config.toml` on Linux). The system-wide file is
//! `JUMPGATE_SYSTEM_CONFIG`, else the platform's [`system_file`] (`/etc/jumpgate/config.toml` on Linux). The user's file is laid over the
//! system file (tables merge key by key), except for the keys the system file lists under
//! `[managed] keys = [...]`, which always come from the system file. [`merge`] is pure; the
//! reading and `stat` happen in [`load_layers`]. The same keys point Jumpgate at Azure or at
//! `jumpgate-sim`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration found: run jumpgate init to make one from your work email (or pass --config PATH, set JUMPGATE_CONFIG, or create {0})")]
    NotFound(String),
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the configuration {path} is not valid: {message}")]
    Invalid { path: String, message: String },
    #[error("the system configuration is ignored, and you have none of your own: {why}. Until then, run jumpgate init to make your own, or pass --config PATH")]
    Untrusted { why: String },
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
    pub access: AccessConfig,
    #[serde(default)]
    pub launch: LaunchConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub simulator: Option<SimulatorConfig>,
    #[serde(default)]
    pub profiles: Vec<Profile>,
    /// Other tenants the person works in, each with its own sign-in: `[[tenants]]` with a
    /// `name` and the keys of `[azure]`. `[azure]` itself is the tenant named `default`.
    #[serde(default)]
    pub tenants: Vec<TenantProfile>,
    /// The tenant profile this configuration was made for by [`Config::for_tenant`]
    /// (`None`: the `[azure]` one). Not a key.
    #[serde(skip)]
    pub tenant: Option<String>,
    /// Which file set each key, and a system file that was ignored. Not a key.
    #[serde(skip)]
    pub origin: Origin,
}

/// The name `[azure]`'s tenant goes by beside the `[[tenants]]` profiles.
pub const DEFAULT_TENANT: &str = "default";

/// One `[[tenants]]` entry: a name, and the keys `[azure]` takes (tenant, client id or Azure
/// CLI sign-in, endpoints, audiences).
#[derive(Debug, Clone, Serialize)]
pub struct TenantProfile {
    pub name: String,
    #[serde(flatten)]
    pub azure: AzureConfig,
}

impl<'de> Deserialize<'de> for TenantProfile {
    /// `name` taken out, the rest read as `[azure]` is: strictly, an unknown key refused.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(d)?;
        let name = match table.remove("name") {
            Some(toml::Value::String(name)) => name,
            Some(_) => return Err(D::Error::custom("a tenant's name must be a string")),
            None => {
                return Err(D::Error::custom(
                    "each [[tenants]] entry needs a name, such as name = \"fabrikam\"",
                ))
            }
        };
        let azure = toml::Value::Table(table)
            .try_into::<AzureConfig>()
            .map_err(|e| D::Error::custom(format!("tenant '{name}': {e}")))?;
        Ok(TenantProfile { name, azure })
    }
}

/// The file a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    User,
    System,
}

/// Where the effective configuration came from (RELIABILITY #29).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Origin {
    pub user_file: Option<PathBuf>,
    pub system_file: Option<PathBuf>,
    /// The keys (dotted paths, or whole tables) the system file manages.
    pub managed: Vec<String>,
    /// Every key set by a file (dotted path of each leaf value), and which file set it.
    pub keys: BTreeMap<String, Source>,
    /// A system file that exists but was not read, because someone other than the machine's
    /// administrators could have written it ([`crate::trust`]).
    pub ignored_system: Option<Ignored>,
}

/// A system file left out, and why, with the fix.
#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    pub file: PathBuf,
    pub why: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    pub tenant_id: String,
    /// The organisation's app registration for Jumpgate (a public client). Not needed when
    /// `sign_in = "azure_cli"`.
    #[serde(default)]
    pub client_id: String,
    /// How a person signs in: through the app registration (`app`, the default: the
    /// browser or a device code) or by reusing the Azure CLI's `az login` (`azure_cli`).
    #[serde(default)]
    pub sign_in: SignIn,
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

/// How a person signs in, when nothing else is asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignIn {
    /// The organisation's app registration (`client_id`): the system browser, or a device
    /// code.
    #[default]
    App,
    /// The Azure CLI's existing `az login`, in the configured tenant: no app registration.
    AzureCli,
}

fn yes() -> bool {
    true
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
    /// What the user may activate is read this often, to announce what is new.
    #[serde(default = "default_eligibility_secs")]
    pub eligibility_check_secs: u64,
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
            eligibility_check_secs: default_eligibility_secs(),
        }
    }
}

fn default_eligibility_secs() -> u64 {
    3_600
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

/// How people reach the jump boxes: through Azure roles, PIM for Groups memberships, or both.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Read group memberships a person may activate (PIM for Groups, in Microsoft Graph)
    /// beside Azure roles. Off, Graph is never asked.
    #[serde(default = "yes")]
    pub groups: bool,
    /// Read the Microsoft Entra (directory) roles a person may activate (PIM for Entra roles,
    /// in Microsoft Graph) beside Azure roles and groups. Off, Graph is never asked about
    /// them.
    #[serde(default = "yes")]
    pub entra_roles: bool,
    /// When several ways reach a jump box equally (a role and a group holding it), the one to
    /// use: a role's or a group's name. An organisation may set it in the managed file.
    #[serde(default)]
    pub via: Option<String>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            groups: true,
            entra_roles: true,
            via: None,
        }
    }
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
    /// What the RDP session may reach on this computer (RELIABILITY #19). All off unless the
    /// organisation (or the user, where the system file does not manage them) turns them on.
    #[serde(default)]
    pub rdp_redirect_clipboard: bool,
    #[serde(default)]
    pub rdp_redirect_drives: bool,
    #[serde(default)]
    pub rdp_redirect_printers: bool,
    #[serde(default)]
    pub rdp_redirect_smartcards: bool,
    /// Serial (COM) ports.
    #[serde(default)]
    pub rdp_redirect_ports: bool,
    /// USB and other plug-and-play devices.
    #[serde(default)]
    pub rdp_redirect_devices: bool,
    #[serde(default)]
    pub rdp_redirect_microphone: bool,
}

impl Default for LaunchConfig {
    fn default() -> Self {
        LaunchConfig {
            rdp_command: None,
            ssh_command: default_ssh(),
            username: None,
            terminal_command: None,
            rdp_redirect_clipboard: false,
            rdp_redirect_drives: false,
            rdp_redirect_printers: false,
            rdp_redirect_smartcards: false,
            rdp_redirect_ports: false,
            rdp_redirect_devices: false,
            rdp_redirect_microphone: false,
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

/// A named set of access a person asks for together: roles and group memberships to
/// activate side by side, and optionally a jump box to open. `jumpgate run NAME` asks for all
/// of it, and `jumpgate connect NAME` for its jump box alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub vm: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// Roles, groups and Entra roles to activate, as `activate` names them (`role:NAME`,
    /// `group:NAME`, `entra:NAME`),
    /// or a table with the role's scope when it is eligible at several.
    #[serde(default)]
    pub activate: Vec<ProfileActivation>,
    /// The justification sent with every request; `{profile}` and `{date}` (the local date,
    /// YYYY-MM-DD) are filled in.
    #[serde(default)]
    pub justification: Option<String>,
    /// A ticket, as SYSTEM:NUMBER.
    #[serde(default)]
    pub ticket: Option<String>,
    /// Whether `jumpgate run` launches the RDP or SSH client once the jump box is open
    /// (default: yes).
    #[serde(default)]
    pub launch: Option<bool>,
}

/// One role or group a profile activates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a role, group or Entra role name (\"Contributor\", \"group:NAME\", \"entra:NAME\"), or { role = \"NAME\", scope = \"SCOPE\" } and nothing else"
)]
pub enum ProfileActivation {
    Name(String),
    Scoped(ScopedActivation),
}

/// A role at one of the scopes it is eligible at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedActivation {
    pub role: String,
    pub scope: String,
}

impl ProfileActivation {
    pub fn name(&self) -> &str {
        match self {
            ProfileActivation::Name(name) => name,
            ProfileActivation::Scoped(s) => &s.role,
        }
    }

    pub fn scope(&self) -> Option<&str> {
        match self {
            ProfileActivation::Name(_) => None,
            ProfileActivation::Scoped(s) => Some(&s.scope),
        }
    }
}

impl Profile {
    /// The profile's justification with its placeholders filled in.
    pub fn justification_for(&self, date: &str) -> Option<String> {
        self.justification
            .as_ref()
            .map(|j| j.replace("{profile}", &self.name).replace("{date}", date))
    }

    /// What a run of the profile sends with each request, on `today` (YYYY-MM-DD): the
    /// justification (`justification`, else the profile's with its placeholders filled in),
    /// the duration (1h when the profile names none) and the ticket (`ticket`, else the
    /// profile's), each held to the rules a typed one is.
    pub fn ask(
        &self,
        today: &str,
        justification: Option<&str>,
        ticket: Option<&str>,
    ) -> Result<ProfileAsk, ProfileAskError> {
        let invalid = |why: String| ProfileAskError::Invalid {
            profile: self.name.clone(),
            why,
        };
        let refused = |refused| ProfileAskError::Refused {
            profile: self.name.clone(),
            refused,
        };
        let justification = justification
            .map(str::to_string)
            .or_else(|| self.justification_for(today))
            .ok_or_else(|| ProfileAskError::NoJustification(self.name.clone()))?;
        crate::input::justification(&justification).map_err(refused)?;
        let duration = self.duration.as_deref().unwrap_or("1h");
        let duration = crate::duration::parse(duration)
            .map_err(|e| invalid(format!("duration '{duration}': {e}")))?;
        let ticket = match ticket.or(self.ticket.as_deref()) {
            None => None,
            Some(t) => {
                let not_one = || {
                    invalid(format!(
                        "the ticket '{}' is not SYSTEM:NUMBER",
                        t.escape_debug()
                    ))
                };
                let (system, number) = t.split_once(':').ok_or_else(not_one)?;
                let (system, number) = crate::input::ticket(system, number).map_err(refused)?;
                if system.is_empty() || t.len() > 200 {
                    return Err(not_one());
                }
                Some((system.to_string(), number.to_string()))
            }
        };
        Ok(ProfileAsk {
            justification,
            duration,
            ticket,
        })
    }
}

/// What a run of a profile sends with each of its requests ([`Profile::ask`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileAsk {
    pub justification: String,
    pub duration: chrono::Duration,
    pub ticket: Option<(String, String)>,
}

/// Why a profile cannot be run as it stands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileAskError {
    #[error("profile '{0}' has no justification: add justification = \"…\" to it")]
    NoJustification(String),
    #[error("profile '{profile}': the {refused}")]
    Refused {
        profile: String,
        refused: crate::input::Refused,
    },
    #[error("profile '{profile}': {why}")]
    Invalid { profile: String, why: String },
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
        check_azure("azure", &self.azure).map_err(invalid)?;
        for (i, t) in self.tenants.iter().enumerate() {
            check_tenant_name(&t.name).map_err(|why| invalid(format!("tenants[{i}]: {why}")))?;
            if self.tenants[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&t.name))
            {
                return Err(invalid(format!(
                    "tenant '{}' is defined twice: give each a name of its own",
                    t.name
                )));
            }
            let key = format!("tenant '{}'", t.name);
            for (what, url) in [
                ("authority_host", t.azure.authority_host.as_str()),
                ("arm_endpoint", t.azure.arm_endpoint.as_str()),
                ("graph_endpoint", t.azure.graph_endpoint.as_str()),
            ] {
                check_endpoint(url).map_err(|why| invalid(format!("{key}: {what}: {why}")))?;
            }
            check_azure(&key, &t.azure).map_err(invalid)?;
        }
        let usernames = self
            .launch
            .username
            .iter()
            .map(|u| ("launch.username".to_string(), u))
            .chain(self.profiles.iter().filter_map(|p| {
                p.username
                    .as_ref()
                    .map(|u| (format!("profile '{}': username", p.name), u))
            }));
        for (key, name) in usernames {
            crate::input::username(name).map_err(|e| invalid(format!("{key}: {}", e.why)))?;
        }
        for (i, p) in self.profiles.iter().enumerate() {
            if p.name.trim().is_empty() {
                return Err(invalid(format!("profiles[{i}]: name is required")));
            }
            if self.profiles[..i]
                .iter()
                .any(|q| q.name.eq_ignore_ascii_case(&p.name))
            {
                return Err(invalid(format!(
                    "profile '{}' is defined twice: give each a name of its own",
                    p.name
                )));
            }
            if let Some(vm) = &p.vm {
                if vm.trim().is_empty() {
                    return Err(invalid(format!(
                        "profile '{}': vm is empty: name a jump box, or leave vm out",
                        p.name
                    )));
                }
                // `connect NAME` takes a profile's name before a VM's.
                if self
                    .profiles
                    .iter()
                    .any(|q| q.name.eq_ignore_ascii_case(vm))
                {
                    return Err(invalid(format!(
                        "profile '{}': its vm '{vm}' is also a profile's name: name the VM by its resource id",
                        p.name
                    )));
                }
            }
            if let Some(d) = &p.duration {
                crate::duration::parse(d)
                    .map_err(|e| invalid(format!("profile '{}': duration: {e}", p.name)))?;
            }
            for (j, a) in p.activate.iter().enumerate() {
                if a.scope().is_some_and(|s| s.trim().is_empty()) {
                    return Err(invalid(format!(
                        "profile '{}': the scope of {} is empty",
                        p.name,
                        a.name()
                    )));
                }
                let same = |b: &ProfileActivation| {
                    b.name().eq_ignore_ascii_case(a.name())
                        && b.scope().map(str::to_ascii_lowercase)
                            == a.scope().map(str::to_ascii_lowercase)
                };
                if p.activate[..j].iter().any(same) {
                    return Err(invalid(format!(
                        "profile '{}': {} is in activate twice",
                        p.name,
                        a.name()
                    )));
                }
            }
            if p.vm.is_none() && p.activate.is_empty() {
                return Err(invalid(format!(
                    "profile '{}' asks for nothing: give it a vm, roles or groups to activate (activate = [\"NAME\"]), or both",
                    p.name
                )));
            }
            if let Some(a) = p.activate.iter().find(|a| a.name().trim().is_empty()) {
                return Err(invalid(format!(
                    "profile '{}': an entry of activate has no name ({a:?})",
                    p.name
                )));
            }
            let refused =
                |e: crate::input::Refused| invalid(format!("profile '{}': the {e}", p.name));
            if let Some(j) = &p.justification {
                crate::input::justification(j).map_err(refused)?;
            }
            if let Some(t) = &p.ticket {
                let (system, number) = t.split_once(':').ok_or_else(|| {
                    invalid(format!(
                        "profile '{}': the ticket '{}' is not SYSTEM:NUMBER",
                        p.name,
                        t.escape_debug()
                    ))
                })?;
                crate::input::ticket(system, number).map_err(refused)?;
            }
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

    /// Every tenant's name: `default` (`[azure]`) first, then the `[[tenants]]` in order.
    pub fn tenant_names(&self) -> Vec<String> {
        std::iter::once(DEFAULT_TENANT.to_string())
            .chain(self.tenants.iter().map(|t| t.name.clone()))
            .collect()
    }

    /// The name of the tenant this configuration is for.
    pub fn tenant_name(&self) -> &str {
        self.tenant.as_deref().unwrap_or(DEFAULT_TENANT)
    }

    /// This configuration for the tenant `name` (`default` for `[azure]`'s): `[azure]` is
    /// that tenant's, and the engine keeps its state (requests in flight, the watcher's, the
    /// audit journal) in a folder of its own, `tenants/NAME` under the state folder.
    /// Everything else is shared.
    pub fn for_tenant(&self, name: &str) -> Result<Config, String> {
        if name.eq_ignore_ascii_case(DEFAULT_TENANT) {
            let mut config = self.clone();
            if let Some(chosen) = self.tenant.as_ref() {
                return Err(format!(
                    "this configuration is already the tenant '{chosen}''s; choose from the whole file"
                ));
            }
            config.tenant = None;
            return Ok(config);
        }
        let profile = self
            .tenants
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!(
                    "there is no tenant '{}' in the configuration: choose one of {} ([[tenants]] entries name the others)",
                    crate::text::line(name),
                    self.tenant_names().join(", ")
                )
            })?;
        let mut config = self.clone();
        config.azure = profile.azure.clone();
        config.tenant = Some(profile.name.clone());
        Ok(config)
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
        format!("{}/{permission}", self.graph_audience())
    }

    /// The audience Microsoft Graph tokens are asked for, without a trailing slash.
    pub fn graph_audience(&self) -> &str {
        self.azure
            .graph_audience
            .as_deref()
            .unwrap_or(self.graph())
            .trim_end_matches('/')
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

/// What `[azure]` (or a tenant profile, `key`) must hold.
fn check_azure(key: &str, azure: &AzureConfig) -> Result<(), String> {
    if azure.tenant_id.trim().is_empty() {
        return Err(format!("{key}.tenant_id is required"));
    }
    if azure.client_id.trim().is_empty() && azure.sign_in == SignIn::App {
        return Err(format!(
            "{key}.client_id is required (or sign_in = \"azure_cli\" to reuse az login instead of an app registration)"
        ));
    }
    Ok(())
}

/// A tenant profile's name: what `--tenant` takes and a folder is named after, so letters,
/// digits, `.`, `-` and `_` only, at most 64, and not `default`.
pub fn check_tenant_name(name: &str) -> Result<(), String> {
    // Windows drops a trailing dot from a folder's name, and keeps device names for itself.
    let stem = name.split('.').next().unwrap_or(name).to_ascii_lowercase();
    let device = matches!(stem.as_str(), "con" | "prn" | "aux" | "nul")
        || ((stem.starts_with("com") || stem.starts_with("lpt"))
            && stem.len() == 4
            && stem.ends_with(|c: char| c.is_ascii_digit()));
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !device;
    if !ok {
        return Err(format!(
            "the tenant name '{}' is not one: use letters, digits, '.', '-' and '_' (at most 64), such as fabrikam",
            crate::text::line(name)
        ));
    }
    if name.eq_ignore_ascii_case(DEFAULT_TENANT) {
        return Err("'default' is the name of [azure]'s tenant: give this one another".into());
    }
    Ok(())
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

/// This machine's [`system_file`].
fn this_system_file() -> PathBuf {
    #[cfg(windows)]
    let program_data = crate::trust::program_data().map(|p| p.display().to_string());
    #[cfg(not(windows))]
    let program_data: Option<String> = None;
    system_file(crate::launch::Os::CURRENT, program_data.as_deref())
}

/// The two files: the user's (if any) and the system-wide one (if it exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    pub user: Option<PathBuf>,
    pub system: Option<PathBuf>,
}

/// Where an organisation deploys the managed system file on each platform: `/etc/jumpgate/`
/// on Linux, `/Library/Application Support/Jumpgate/` on macOS, and `Jumpgate\` under
/// the ProgramData folder on Windows (`program_data`, from the known-folder API, and
/// `C:\ProgramData` when it cannot say).
pub fn system_file(os: crate::launch::Os, program_data: Option<&str>) -> PathBuf {
    match os {
        crate::launch::Os::Linux => PathBuf::from("/etc/jumpgate/config.toml"),
        crate::launch::Os::MacOs => {
            PathBuf::from("/Library/Application Support/Jumpgate/config.toml")
        }
        crate::launch::Os::Windows => {
            let base = program_data
                .filter(|p| !p.is_empty())
                .unwrap_or("C:\\ProgramData")
                .trim_end_matches('\\');
            PathBuf::from(format!("{base}\\Jumpgate\\config.toml"))
        }
    }
}

/// Finds both files: the user's by `explicit`, then `env_user` (`JUMPGATE_CONFIG`), then the
/// platform config directory; the system file at `env_system` (`JUMPGATE_SYSTEM_CONFIG`) or
/// `/etc/jumpgate/config.toml`. An explicit or environment path is taken even if missing, so
/// reading it says so. Only existence is checked.
pub fn locate_layers(
    explicit: Option<&Path>,
    env_user: Option<PathBuf>,
    env_system: Option<PathBuf>,
) -> Result<Layers, ConfigError> {
    let system = env_system
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(this_system_file);
    let system = system.is_file().then_some(system);
    let platform = dirs::config_dir().map(|d| d.join("jumpgate").join("config.toml"));
    let user = match (explicit, env_user.filter(|p| !p.as_os_str().is_empty())) {
        (Some(p), _) => Some(p.to_path_buf()),
        (None, Some(p)) => Some(p),
        (None, None) => platform.clone().filter(|p| p.is_file()),
    };
    // The system file named as the user's is just the system file.
    let user = user.filter(|u| Some(u) != system.as_ref());
    if user.is_none() && system.is_none() {
        return Err(ConfigError::NotFound(
            platform
                .unwrap_or_else(|| system_file(crate::launch::Os::CURRENT, None))
                .display()
                .to_string(),
        ));
    }
    Ok(Layers { user, system })
}

/// Whether the first run must complete the configuration, and where it writes the user's
/// file: there is no user's file, and no system file names the tenant and a way to sign in
/// (`azure.tenant_id`, and `azure.client_id` or `sign_in = "azure_cli"`). A system file that cannot
/// be read or parsed is left for [`load_layers`] to report.
pub fn first_run(
    explicit: Option<&Path>,
    env_user: Option<PathBuf>,
    env_system: Option<PathBuf>,
) -> Option<PathBuf> {
    let user = crate::firstrun::user_file(explicit, env_user)?;
    if user.exists() {
        return None;
    }
    let system = env_system
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(this_system_file);
    // A system file that is ignored configures nothing, so the first run goes ahead.
    if system.is_file() && crate::trust::system_file(&system).is_ok() {
        let Ok(text) = std::fs::read_to_string(&system) else {
            return None;
        };
        let Ok(doc) = toml::from_str::<toml::Table>(&text) else {
            return None;
        };
        let azure = doc.get("azure");
        let has = |k: &str| azure.and_then(|a| a.get(k)).is_some();
        let az = azure
            .and_then(|a| a.get("sign_in"))
            .and_then(|v| v.as_str())
            == Some("azure_cli");
        if has("tenant_id") && (has("client_id") || az) {
            return None;
        }
    }
    Some(user)
}

/// Reads both files and merges them with [`merge`]. The system file is read only when
/// [`crate::trust::system_file`] trusts it; else it is left out, and `origin` says why.
pub fn load_layers(layers: &Layers) -> Result<Config, ConfigError> {
    let read = |path: &Path| -> Result<toml::Value, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        toml::from_str::<toml::Table>(&text)
            .map(toml::Value::Table)
            .map_err(|e| ConfigError::Invalid {
                path: shown,
                message: e.to_string(),
            })
    };
    let user = match &layers.user {
        Some(p) => Some((p.clone(), read(p)?)),
        None => None,
    };
    let mut ignored = None;
    let system = match &layers.system {
        Some(p) => match crate::trust::system_file(p) {
            Ok(()) => Some((p.clone(), read(p)?)),
            Err(why) => {
                ignored = Some(Ignored {
                    file: p.clone(),
                    why,
                });
                None
            }
        },
        None => None,
    };
    if let (None, Some(ignored)) = (&user, &ignored) {
        return Err(ConfigError::Untrusted {
            why: format!("{} ({})", ignored.why, ignored.file.display()),
        });
    }
    let mut config = merge(user, system)?;
    config.origin.ignored_system = ignored;
    Ok(config)
}

/// The effective configuration from the parsed user and system files (RELIABILITY #29): the
/// user's file over the system file, tables merged key by key, except the keys the system
/// file lists in `[managed] keys`, which come from the system file alone (or take their
/// default when it does not set them). Records which file set each key.
pub fn merge(
    user: Option<(PathBuf, toml::Value)>,
    system: Option<(PathBuf, toml::Value)>,
) -> Result<Config, ConfigError> {
    let shown = |p: &Path| p.display().to_string();
    let invalid = |path: String, message: String| ConfigError::Invalid { path, message };
    let mut origin = Origin::default();
    let mut sys_doc = match system {
        Some((path, doc)) => {
            origin.system_file = Some(path);
            doc
        }
        None => toml::Value::Table(toml::Table::new()),
    };
    let sys_shown = origin.system_file.as_deref().map(shown).unwrap_or_default();
    if let Some(managed) = sys_doc.as_table_mut().and_then(|t| t.remove("managed")) {
        origin.managed = managed_keys(&managed).map_err(|m| invalid(sys_shown.clone(), m))?;
    }
    let mut user_doc = match user {
        Some((path, doc)) => {
            let user_shown = shown(&path);
            origin.user_file = Some(path);
            if doc.get("managed").is_some() {
                return Err(invalid(
                    user_shown,
                    "[managed] belongs in the system-wide file only".into(),
                ));
            }
            doc
        }
        None => toml::Value::Table(toml::Table::new()),
    };
    for key in &origin.managed {
        remove_path(&mut user_doc, key);
    }
    // An organisation that pins its tenant and endpoints is not to be routed around by
    // another tenant of the user's own: with any `azure` key managed, the tenants are the
    // system file's alone.
    if origin
        .managed
        .iter()
        .any(|k| k == "azure" || k.starts_with("azure."))
    {
        remove_path(&mut user_doc, "tenants");
    }
    join_profiles(&sys_doc, &mut user_doc);
    let mut user_leaves = Vec::new();
    leaves(&user_doc, String::new(), &mut user_leaves);
    let mut merged = sys_doc;
    deep_merge(&mut merged, user_doc);
    let mut all = Vec::new();
    leaves(&merged, String::new(), &mut all);
    for key in all {
        let source = if user_leaves.contains(&key) {
            Source::User
        } else {
            Source::System
        };
        origin.keys.insert(key, source);
    }
    let path = match (&origin.user_file, &origin.system_file) {
        (Some(u), Some(s)) => format!("{} over {}", shown(u), shown(s)),
        (Some(p), None) | (None, Some(p)) => shown(p),
        (None, None) => String::new(),
    };
    let mut config: Config = merged.try_into().map_err(|e: toml::de::Error| {
        invalid(path.clone(), e.to_string().trim_end().to_string())
    })?;
    config.check(&path)?;
    config.origin = origin;
    Ok(config)
}

fn managed_keys(value: &toml::Value) -> Result<Vec<String>, String> {
    let keys = value
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("[managed] needs keys = [\"table.key\", ...]")?;
    let extra = value.as_table().map_or(0, |t| t.len());
    if extra != 1 {
        return Err("[managed] holds only keys = [...]".into());
    }
    keys.iter()
        .map(|k| {
            let k = k.as_str().ok_or("managed.keys must be strings")?;
            let ok = !k.is_empty()
                && k.split('.').all(|seg| {
                    !seg.is_empty()
                        && seg
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
            if ok {
                Ok(k.to_string())
            } else {
                Err(format!(
                    "managed.keys: '{}' is not a dotted key such as launch.rdp_command",
                    k.escape_debug()
                ))
            }
        })
        .collect()
}

fn remove_path(doc: &mut toml::Value, dotted: &str) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut at = doc;
    for p in parts {
        match at.get_mut(p) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(t) = at.as_table_mut() {
        t.remove(last);
    }
}

/// Profiles an organisation ships in the system file stay beside a person's own: the two
/// lists are joined, a person's profile replacing the system's of the same name (ignoring
/// case). When `profiles` is managed, the person's list was removed before this.
fn join_profiles(system: &toml::Value, user: &mut toml::Value) {
    let shipped = system.get("profiles").and_then(toml::Value::as_array);
    let own = user.get("profiles").and_then(toml::Value::as_array);
    let (Some(shipped), Some(own)) = (shipped, own) else {
        return;
    };
    let name = |p: &toml::Value| {
        p.get("name")
            .and_then(toml::Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    let mut joined: Vec<toml::Value> = shipped
        .iter()
        .filter(|s| !own.iter().any(|o| name(o) == name(s)))
        .cloned()
        .collect();
    joined.extend(own.iter().cloned());
    if let Some(table) = user.as_table_mut() {
        table.insert("profiles".into(), toml::Value::Array(joined));
    }
}

fn deep_merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn leaves(v: &toml::Value, prefix: String, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, key, out);
            }
        }
        _ => out.push(prefix),
    }
}

/// Finds and reads the configuration as the CLI and the tray do: [`locate_layers`] with
/// `JUMPGATE_CONFIG` and `JUMPGATE_SYSTEM_CONFIG` from the environment, then [`load_layers`].
/// Before the first run (no user's file, no system file naming the tenant) it is
/// [`ConfigError::NotFound`], which says to run `jumpgate init`.
pub fn load_from_env(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    let env_user = std::env::var_os("JUMPGATE_CONFIG").map(PathBuf::from);
    let env_system = crate::test_hook("JUMPGATE_SYSTEM_CONFIG").map(PathBuf::from);
    if let Some(user) = first_run(explicit, env_user.clone(), env_system.clone()) {
        return Err(ConfigError::NotFound(user.display().to_string()));
    }
    let layers = locate_layers(explicit, env_user, env_system)?;
    load_layers(&layers)
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
    fn tenant_profiles_are_named_checked_and_chosen() {
        let text = format!(
            "{MINIMAL}[[tenants]]\nname = \"fabrikam\"\ntenant_id = \"f\"\nsign_in = \"azure_cli\"\narm_endpoint = \"https://management.usgovcloudapi.net\"\n"
        );
        let config = Config::parse("t.toml", &text).expect("parses");
        assert_eq!(config.tenant_names(), ["default", "fabrikam"]);
        assert_eq!(config.tenant_name(), "default");
        let there = config
            .for_tenant("FABRIKAM")
            .expect("by name, ignoring case");
        assert_eq!(there.azure.tenant_id, "f");
        assert_eq!(there.azure.sign_in, SignIn::AzureCli);
        assert_eq!(there.arm(), "https://management.usgovcloudapi.net");
        assert_eq!(there.tenant_name(), "fabrikam");
        assert_eq!(there.profiles.len(), config.profiles.len());
        let home = config.for_tenant("default").expect("[azure]'s");
        assert_eq!(home.azure.tenant_id, "t");
        let unknown = config.for_tenant("nosuch").expect_err("not configured");
        assert!(unknown.contains("default, fabrikam"), "{unknown}");

        for (entry, why) in [
            ("tenant_id = \"f\"\nclient_id = \"c\"", "needs a name"),
            ("name = \"default\"\ntenant_id = \"f\"\nclient_id = \"c\"", "'default' is the name"),
            ("name = \"../x\"\ntenant_id = \"f\"\nclient_id = \"c\"", "is not one"),
            ("name = \"x.\"\ntenant_id = \"f\"\nclient_id = \"c\"", "is not one"),
            ("name = \"nul\"\ntenant_id = \"f\"\nclient_id = \"c\"", "is not one"),
            ("name = \"x\"\ntenant_id = \"f\"", "client_id is required"),
            ("name = \"x\"\ntenant_id = \"f\"\nclient_id = \"c\"\ntennant = 1", "unknown field"),
            ("name = \"x\"\ntenant_id = \"f\"\nclient_id = \"c\"\narm_endpoint = \"http://evil.example\"", "arm_endpoint"),
        ] {
            let text = format!("{MINIMAL}[[tenants]]\n{entry}\n");
            let err = Config::parse("t.toml", &text).expect_err(entry).to_string();
            assert!(err.contains(why), "{entry}: {err}");
        }
        let twice = format!(
            "{MINIMAL}[[tenants]]\nname = \"x\"\ntenant_id = \"f\"\nclient_id = \"c\"\n[[tenants]]\nname = \"X\"\ntenant_id = \"g\"\nclient_id = \"c\"\n"
        );
        let err = Config::parse("t.toml", &twice)
            .expect_err("twice")
            .to_string();
        assert!(err.contains("defined twice"), "{err}");
    }

    #[test]
    fn profiles_name_roles_groups_and_scopes_and_ask_for_something() {
        let text = format!(
            "{MINIMAL}[[profiles]]\nname = \"morning\"\nvm = \"jumpbox-win-01\"\njustification = \"{{profile}} checks {{date}}\"\nticket = \"ServiceNow:CHG1\"\nlaunch = false\nactivate = [\"Contributor\", \"group:JIT Operators\", {{ role = \"JIT Requester\", scope = \"/subscriptions/s/resourceGroups/rg\" }}]\n"
        );
        let config = Config::parse("x", &text).expect("a profile");
        let p = &config.profiles[0];
        assert_eq!(
            p.activate,
            vec![
                ProfileActivation::Name("Contributor".into()),
                ProfileActivation::Name("group:JIT Operators".into()),
                ProfileActivation::Scoped(ScopedActivation {
                    role: "JIT Requester".into(),
                    scope: "/subscriptions/s/resourceGroups/rg".into()
                }),
            ]
        );
        assert_eq!(
            p.activate[2].scope(),
            Some("/subscriptions/s/resourceGroups/rg")
        );
        assert_eq!(
            p.justification_for("2026-12-06").as_deref(),
            Some("morning checks 2026-12-06")
        );
        assert_eq!(p.launch, Some(false));

        let refused = |body: &str| {
            Config::parse("x", &format!("{MINIMAL}{body}"))
                .expect_err(body)
                .to_string()
        };
        let empty = refused("[[profiles]]\nname = \"idle\"\n");
        assert!(empty.contains("profile 'idle' asks for nothing"), "{empty}");
        let twice = refused(
            "[[profiles]]\nname = \"a\"\nvm = \"v\"\n[[profiles]]\nname = \"A\"\nvm = \"w\"\n",
        );
        assert!(twice.contains("defined twice"), "{twice}");
        let hostile =
            refused("[[profiles]]\nname = \"a\"\nvm = \"v\"\njustification = \"ok\\u202e\"\n");
        assert!(
            hostile.contains("profile 'a': the justification"),
            "{hostile}"
        );
        let ticket = refused("[[profiles]]\nname = \"a\"\nvm = \"v\"\nticket = \"CHG1\"\n");
        assert!(ticket.contains("SYSTEM:NUMBER"), "{ticket}");
        let twice =
            refused("[[profiles]]\nname = \"a\"\nactivate = [\"Contributor\", \"contributor\"]\n");
        assert!(
            twice.contains("Contributor is in activate twice")
                || twice.contains("contributor is in activate twice"),
            "{twice}"
        );
        let forever = refused("[[profiles]]\nname = \"a\"\nvm = \"v\"\nduration = \"forever\"\n");
        assert!(forever.contains("profile 'a': duration"), "{forever}");
        let empty_vm = refused("[[profiles]]\nname = \"a\"\nvm = \" \"\n");
        assert!(empty_vm.contains("vm is empty"), "{empty_vm}");
        let shadow = refused(
            "[[profiles]]\nname = \"a\"\nvm = \"b\"\n[[profiles]]\nname = \"b\"\nvm = \"v\"\n",
        );
        assert!(shadow.contains("is also a profile's name"), "{shadow}");
        let unknown = refused(
            "[[profiles]]\nname = \"a\"\nactivate = [{ role = \"R\", scope = \"s\", extra = 1 }]\n",
        );
        assert!(
            unknown.contains("activate") && unknown.contains("{ role = \"NAME\", scope"),
            "{unknown}"
        );
    }

    #[test]
    fn a_profile_asks_with_what_it_says_or_what_is_given_held_to_the_typed_rules() {
        let text = format!(
            "{MINIMAL}[[profiles]]\nname = \"morning\"\nactivate = [\"Contributor\"]\nduration = \"2h\"\njustification = \"{{profile}} on {{date}}\"\nticket = \"SNOW:CHG1\"\n[[profiles]]\nname = \"bare\"\nactivate = [\"Contributor\"]\n"
        );
        let config = Config::parse("x", &text).expect("profiles");
        let (morning, bare) = (&config.profiles[0], &config.profiles[1]);
        let asked = morning.ask("2026-12-06", None, None).expect("asked");
        assert_eq!(asked.justification, "morning on 2026-12-06");
        assert_eq!(asked.duration, chrono::Duration::hours(2));
        assert_eq!(asked.ticket, Some(("SNOW".into(), "CHG1".into())));
        let given = morning
            .ask("2026-12-06", Some("Incident 4711"), Some("Jira:OPS-9"))
            .expect("given");
        assert_eq!(given.justification, "Incident 4711");
        assert_eq!(given.ticket, Some(("Jira".into(), "OPS-9".into())));
        assert_eq!(
            bare.ask("d", None, None),
            Err(ProfileAskError::NoJustification("bare".into()))
        );
        assert_eq!(
            bare.ask("d", Some("ok"), None).expect("1h").duration,
            chrono::Duration::hours(1)
        );
        // A date or a name filled in is held to the rules too.
        let hostile = morning.ask("2026\u{202E}", None, None).expect_err("bidi");
        assert!(
            hostile
                .to_string()
                .contains("profile 'morning': the justification"),
            "{hostile}"
        );
        for bad in ["CHG1", ":CHG1", "SNOW:", &format!("S:{}", "9".repeat(199))] {
            assert!(morning.ask("d", None, Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_user_name_a_shell_would_read_is_refused_at_load() {
        let launch = format!("{MINIMAL}[launch]\nusername = \"me; open -a Calculator\"\n");
        let refused = Config::parse("x", &launch).expect_err("a ; in the user name");
        assert!(refused.to_string().contains("launch.username"), "{refused}");
        let profile = format!(
            "{MINIMAL}[[profiles]]\nname = \"work\"\nvm = \"jumpbox-linux-01\"\nusername = \"-oProxyCommand=x\"\n"
        );
        let refused = Config::parse("x", &profile).expect_err("an option as user name");
        assert!(
            refused.to_string().contains("profile 'work': username"),
            "{refused}"
        );
        let fine = format!("{MINIMAL}[launch]\nusername = \"alice.admin\"\n");
        assert!(Config::parse("x", &fine).is_ok());
    }

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
            ("[azure]\nclient_id = \"c\"\n", "tenant_id"),
            (
                "[azure]\ntenant_id = \"t\"\nsign_in = \"password\"\n",
                "unknown variant",
            ),
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
        let none = Some(PathBuf::from("/no/such/system.toml"));
        let layers = locate_layers(Some(Path::new("/explicit.toml")), env.clone(), none.clone())
            .expect("path");
        assert_eq!(layers.user, Some(PathBuf::from("/explicit.toml")));
        assert_eq!(layers.system, None);
        let layers = locate_layers(None, env, none).expect("path");
        assert_eq!(layers.user, Some(PathBuf::from("/from/env.toml")));
    }

    fn doc(text: &str) -> toml::Value {
        toml::Value::Table(toml::from_str(text).expect("toml"))
    }

    #[test]
    fn each_platform_has_its_system_file() {
        use crate::launch::Os;
        assert_eq!(
            system_file(Os::Linux, None),
            PathBuf::from("/etc/jumpgate/config.toml")
        );
        assert_eq!(
            system_file(Os::MacOs, None),
            PathBuf::from("/Library/Application Support/Jumpgate/config.toml")
        );
        assert_eq!(
            system_file(Os::Windows, None),
            PathBuf::from("C:\\ProgramData\\Jumpgate\\config.toml")
        );
        assert_eq!(
            system_file(Os::Windows, Some("D:\\Data\\")),
            PathBuf::from("D:\\Data\\Jumpgate\\config.toml")
        );
    }

    fn merged(user: &str, system: &str) -> Config {
        merge(
            Some((PathBuf::from("/home/a/config.toml"), doc(user))),
            Some((PathBuf::from("/etc/jumpgate/config.toml"), doc(system))),
        )
        .expect("valid")
    }

    const SYSTEM: &str = "[managed]\nkeys = [\"justification.refuse\", \"launch.rdp_command\"]\n\
        [azure]\ntenant_id = \"corp\"\nclient_id = \"c\"\narm_endpoint = \"https://arm.corp.example\"\n\
        [justification]\nrefuse = [\"BAU\"]\ntemplates = [\"Ticket \"]\n\
        [launch]\nrdp_command = \"/usr/bin/xfreerdp\"\n";

    #[test]
    fn profiles_the_organisation_ships_stay_beside_a_persons_own() {
        let system = format!(
            "{SYSTEM}[[profiles]]\nname = \"estate\"\nvm = \"jumpbox-win-01\"\n[[profiles]]\nname = \"Morning\"\nvm = \"jumpbox-win-01\"\n"
        );
        let c = merged(
            "[[profiles]]\nname = \"morning\"\nvm = \"jumpbox-linux-01\"\n[[profiles]]\nname = \"mine\"\nactivate = [\"Contributor\"]\n",
            &system,
        );
        let names: Vec<(&str, Option<&str>)> = c
            .profiles
            .iter()
            .map(|p| (p.name.as_str(), p.vm.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("estate", Some("jumpbox-win-01")),
                ("morning", Some("jumpbox-linux-01")),
                ("mine", None)
            ]
        );
        // Managed, the organisation's list is the list.
        let managed = system.replace(
            "keys = [\"justification.refuse\",",
            "keys = [\"profiles\", \"justification.refuse\",",
        );
        let c = merged("[[profiles]]\nname = \"mine\"\nvm = \"v\"\n", &managed);
        let names: Vec<&str> = c.profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["estate", "Morning"]);
    }

    #[test]
    fn reliability_29_managed_keys_win_over_the_users_file() {
        let c = merged(
            "[justification]\nrefuse = []\n[launch]\nrdp_command = \"/tmp/evil\"\n",
            SYSTEM,
        );
        assert_eq!(c.justification.refuse, ["BAU"]);
        assert_eq!(c.launch.rdp_command.as_deref(), Some("/usr/bin/xfreerdp"));
        assert_eq!(c.origin.keys["justification.refuse"], Source::System);
        assert_eq!(c.origin.keys["launch.rdp_command"], Source::System);
    }

    #[test]
    fn reliability_29_unmanaged_keys_from_the_user_win_and_tables_merge() {
        let c = merged(
            "[azure]\narm_endpoint = \"https://arm.mine.example\"\n[justification]\ntemplates = [\"Mine\"]\n",
            SYSTEM,
        );
        assert_eq!(c.arm(), "https://arm.mine.example");
        // The rest of [azure] still comes from the system file.
        assert_eq!(c.azure.tenant_id, "corp");
        assert_eq!(c.justification.templates, ["Mine"]);
        assert_eq!(c.origin.keys["azure.arm_endpoint"], Source::User);
        assert_eq!(c.origin.keys["azure.tenant_id"], Source::System);
        assert_eq!(c.origin.keys["justification.templates"], Source::User);
        assert!(!c.origin.keys.contains_key("managed.keys"));
        assert_eq!(
            c.origin.managed,
            ["justification.refuse", "launch.rdp_command"]
        );
    }

    #[test]
    fn reliability_29_a_managed_table_is_managed_whole() {
        let system =
            "[managed]\nkeys = [\"azure\"]\n[azure]\ntenant_id = \"corp\"\nclient_id = \"c\"\n";
        let c = merged(
            "[azure]\ntenant_id = \"x\"\narm_endpoint = \"https://arm.mine.example\"\n[watch]\napprover = true\n",
            system,
        );
        assert_eq!(c.azure.tenant_id, "corp");
        // Managed but unset in the system file: the default, not the user's value.
        assert_eq!(c.arm(), "https://management.azure.com");
        assert!(!c.origin.keys.contains_key("azure.arm_endpoint"));
        assert!(c.watch.approver);
        assert_eq!(c.origin.keys["watch.approver"], Source::User);
        // Nor does a tenant of the user's own go round the managed one; the organisation's
        // tenants stay.
        let user_tenant = "[[tenants]]\nname = \"elsewhere\"\ntenant_id = \"x\"\nclient_id = \"c\"\nauthority_host = \"https://login.evil.example\"\n";
        let c = merged(user_tenant, system);
        assert_eq!(c.tenant_names(), ["default"]);
        let with_own = format!(
            "{system}[[tenants]]\nname = \"lab\"\ntenant_id = \"lab\"\nclient_id = \"c\"\n"
        );
        let c = merged(user_tenant, &with_own);
        assert_eq!(c.tenant_names(), ["default", "lab"]);
        // Unmanaged, the user's tenants are taken.
        let c = merged(user_tenant, MINIMAL);
        assert_eq!(c.tenant_names(), ["default", "elsewhere"]);
    }

    #[test]
    fn reliability_29_one_file_alone_is_used_as_it_is() {
        let user = merge(Some((PathBuf::from("/u.toml"), doc(MINIMAL))), None).expect("valid");
        assert_eq!(user.azure.tenant_id, "t");
        assert_eq!(user.origin.keys["azure.tenant_id"], Source::User);
        let system = merge(None, Some((PathBuf::from("/etc/j.toml"), doc(SYSTEM)))).expect("valid");
        assert_eq!(system.justification.refuse, ["BAU"]);
        assert_eq!(system.origin.keys["azure.tenant_id"], Source::System);
    }

    #[cfg(unix)]
    #[test]
    fn reliability_29_a_system_file_others_could_write_is_ignored_whole() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let system = dir.path().join("system.toml");
        let user = dir.path().join("user.toml");
        std::fs::write(&system, SYSTEM).expect("system");
        std::fs::write(&user, format!("{MINIMAL}[justification]\nrefuse = []\n")).expect("user");
        let layers = Layers {
            user: Some(user.clone()),
            system: Some(system.clone()),
        };
        let mode = |m: u32| {
            std::fs::set_permissions(&system, std::fs::Permissions::from_mode(m)).expect("chmod")
        };
        // Trusted where the tests run as root, as CI's do; else ignored like any other.
        mode(0o644);
        let trusted = crate::trust::system_file(&system).is_ok();
        let c = load_layers(&layers).expect("loads");
        assert_eq!(c.origin.ignored_system.is_none(), trusted);
        if trusted {
            assert_eq!(c.justification.refuse, ["BAU"]);
            assert_eq!(c.origin.system_file.as_ref(), Some(&system));
        }
        // Group-writable: nothing of it applies, not even what it manages.
        mode(0o664);
        let c = load_layers(&layers).expect("loads");
        let ignored = c.origin.ignored_system.as_ref().expect("ignored");
        assert_eq!(ignored.file, system);
        assert!(c.justification.refuse.is_empty());
        assert!(c.origin.managed.is_empty());
        assert_eq!(c.origin.system_file, None);
        assert!(c.launch.rdp_command.is_none());
        assert!(c.origin.keys.values().all(|s| *s == Source::User));
        // Without a file of one's own, the error says why the system file was passed over.
        let alone = Layers {
            user: None,
            system: Some(system.clone()),
        };
        let err = load_layers(&alone)
            .expect_err("nothing trusted")
            .to_string();
        assert!(
            err.contains("ignored") && err.contains("chmod go-w"),
            "{err}"
        );
        // A broken file that is ignored is not even parsed.
        std::fs::write(&system, "not toml").expect("system");
        mode(0o666);
        assert!(load_layers(&layers).is_ok());
    }

    #[test]
    fn reliability_29_managed_lists_are_checked() {
        let bad = [
            "[managed]\nkeys = \"azure\"\n",
            "[managed]\nkeys = [\"a..b\"]\n",
            "[managed]\nkeys = [\"a\\nb\"]\n",
            "[managed]\nkeys = [1]\n",
            "[managed]\nkeys = []\nextra = 1\n",
        ];
        for text in bad {
            let system = format!("{text}{MINIMAL}");
            let err = merge(None, Some((PathBuf::from("/etc/j.toml"), doc(&system))))
                .expect_err(text)
                .to_string();
            assert!(err.contains("managed"), "{text}: {err}");
        }
        let err = merge(
            Some((
                PathBuf::from("/u.toml"),
                doc(&format!("[managed]\nkeys = []\n{MINIMAL}")),
            )),
            None,
        )
        .expect_err("user [managed]")
        .to_string();
        assert!(err.contains("system-wide file only"), "{err}");
    }

    #[test]
    fn the_first_run_is_needed_until_a_file_names_the_tenant() {
        let dir = tempfile::tempdir().expect("dir");
        let user = dir.path().join("config.toml");
        let system = dir.path().join("system.toml");
        let first = || first_run(None, Some(user.clone()), Some(system.clone()));
        // Nothing at all.
        assert_eq!(first(), Some(user.clone()));
        // A system file with the organisation's endpoints but no tenant.
        std::fs::write(
            &system,
            "[azure]\narm_endpoint = \"https://arm.corp.example\"\n",
        )
        .expect("system");
        assert_eq!(first(), Some(user.clone()));
        std::fs::write(&system, "[azure]\ntenant_id = \"t\"\nsign_in = \"app\"\n").expect("system");
        assert_eq!(first(), Some(user.clone()));
        // A system file that names the tenant and a way to sign in is a configuration, when it
        // is trusted: where the tests run as root on Unix. Elsewhere (a Windows file owned by
        // the user running the tests, say) it is ignored, and the first run goes ahead.
        std::fs::write(
            &system,
            "[azure]\ntenant_id = \"t\"\nsign_in = \"azure_cli\"\n",
        )
        .expect("system");
        let configures = if crate::trust::system_file(&system).is_ok() {
            None
        } else {
            Some(user.clone())
        };
        assert_eq!(first(), configures);
        std::fs::write(&system, MINIMAL).expect("system");
        assert_eq!(first(), configures);
        // A broken system file is reported by loading, not mistaken for a first run.
        std::fs::write(&system, "not toml").expect("system");
        assert_eq!(first(), configures);
        std::fs::remove_file(&system).expect("rm");
        // The user's file, whatever it holds, ends the first run.
        std::fs::write(&user, "").expect("user");
        assert_eq!(first(), None);
    }
}
