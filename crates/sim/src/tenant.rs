//! Tenant fixtures: the TOML files that describe who and what a simulated tenant holds.
//!
//! A fixture names users by UPN and roles by name, so it reads like an org chart; the
//! [`crate::state::World`] built from it holds the ids that Azure would use. Three fixtures are
//! built in: `demo` (see `tenants/demo.toml`), `empty`, the same people and machines with
//! nothing set up for JIT, and `enterprise`, as messy as a large company's tenant.
//!
//! Scopes, and the `subscription` of VMs and JIT policies, may name subscriptions by their
//! place in the fixture: `{sub}` or `{sub1}` is the first, `{sub2}` the second, and so on.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::Deserialize;

/// An error in a tenant fixture, phrased so the author knows which entry to fix.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read tenant fixture {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("tenant fixture {path} is not valid TOML for a tenant: {message}")]
    Parse { path: String, message: String },
    #[error("tenant fixture {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("unknown built-in tenant '{0}': use 'demo', 'empty', 'enterprise', 'fabrikam', or a path to a .toml fixture")]
    UnknownBuiltin(String),
}

pub const DEMO: &str = include_str!("../tenants/demo.toml");
pub const EMPTY: &str = include_str!("../tenants/empty.toml");
pub const ENTERPRISE: &str = include_str!("../tenants/enterprise.toml");
pub const FABRIKAM: &str = include_str!("../tenants/fabrikam.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub tenant: TenantInfo,
    pub subscriptions: Vec<SubscriptionFixture>,
    #[serde(default)]
    pub users: Vec<UserFixture>,
    #[serde(default)]
    pub vms: Vec<VmFixture>,
    #[serde(default)]
    pub role_definitions: Vec<RoleDefinitionFixture>,
    #[serde(default)]
    pub role_assignments: Vec<RoleAssignmentFixture>,
    #[serde(default)]
    pub eligibilities: Vec<EligibilityFixture>,
    #[serde(default)]
    pub role_policies: Vec<RolePolicyFixture>,
    #[serde(default)]
    pub jit_policies: Vec<JitPolicyFixture>,
    /// Management groups under the tenant root group, which always exists.
    #[serde(default)]
    pub management_groups: Vec<ManagementGroupFixture>,
    /// Entra security groups, with their standing and PIM-eligible members and owners.
    #[serde(default)]
    pub groups: Vec<GroupFixture>,
    /// PIM for Groups activation policies; a group without one has Microsoft's defaults.
    #[serde(default)]
    pub group_policies: Vec<GroupPolicyFixture>,
    /// App registrations besides the tenant's own Jumpgate app, as their owners left them.
    #[serde(default)]
    pub applications: Vec<ApplicationFixture>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantInfo {
    pub id: String,
    pub domain: String,
    pub display_name: String,
    /// The public client id the authorize and token endpoints accept.
    pub client_id: String,
    /// Seconds between a PIM activation being provisioned and it passing RBAC checks.
    #[serde(default)]
    pub propagation_delay_secs: u64,
    /// The `interval` the device-code endpoint announces, in seconds.
    #[serde(default = "default_device_interval")]
    pub device_code_interval_secs: u64,
    /// Lifetime of access tokens, in seconds.
    #[serde(default = "default_token_lifetime")]
    pub access_token_lifetime_secs: u64,
    /// The address JIT uses as its Azure Firewall when a VM's port cannot be bound directly.
    #[serde(default = "default_firewall")]
    pub firewall_ip: Ipv4Addr,
    /// The most items an ARM list answers in one page; the rest follow through `nextLink`.
    /// Unset: every list is one page, without `nextLink`.
    #[serde(default)]
    pub page_size: Option<usize>,
    /// The lists (by collection name, such as `roleEligibilityScheduleInstances`) whose first
    /// page is empty but carries a `nextLink`, as some of ARM's do.
    #[serde(default)]
    pub empty_first_page: Vec<String>,
    /// The address the IP echo reports and ARM sees callers at from the start, as a NAT
    /// would show a laptop to the internet; the JIT gate sees loopback peers at it too.
    /// Unset: the real source address. `POST /_sim/ip` changes it.
    #[serde(default)]
    pub public_ip: Option<Ipv4Addr>,
    /// Seconds on the simulator's clock between a JIT initiate and its rules taking effect
    /// (`Initiating`, then `Initiated`). 0: at once.
    #[serde(default)]
    pub jit_activation_delay_secs: u64,
    /// The app registration's redirect URIs. Loopback ones (`http://localhost`,
    /// `http://127.0.0.1`) match any port; the path must match (none stands for `/`).
    #[serde(default = "default_redirect_uris")]
    pub redirect_uris: Vec<String>,
    /// Which Microsoft Graph permissions an admin consented to for the tenant's own app:
    /// `true` (all it asks for), `false` (none) or a list of permission names. A Graph scope
    /// outside the consent gets AADSTS65001. This is the TOML key `graph_consented`.
    #[serde(rename = "graph_consented", default)]
    pub graph_consent: GraphConsent,
    /// Whether any Microsoft Graph consent was given. Set from `graph_consented` when the
    /// fixture is parsed; setting it to `false` withdraws every Graph permission.
    #[serde(skip_deserializing, default = "yes")]
    pub graph_consented: bool,
    /// The app registration's display name, as Entra's consent errors name it.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Seconds after an activation is provisioned during which its self-deactivation is
    /// refused with `ActiveDurationTooShort`. 0: never.
    #[serde(default)]
    pub min_activation_secs: u64,
    /// Seconds a deactivated assignment or group membership stays (listed, granting, and
    /// refusing a new activation with `RoleAssignmentExists`) before it is gone. 0: at once.
    #[serde(default)]
    pub deactivation_linger_secs: u64,
    /// Seconds after an activation takes effect during which the first JIT initiate that only
    /// it permits is refused with 403, once per activation. 0: never.
    #[serde(default)]
    pub first_initiate_refused_secs: u64,
    /// The most groups an access token names in its `groups` claim; a user in more gets the
    /// overage claim instead.
    #[serde(default = "default_groups_claim_limit")]
    pub groups_claim_limit: usize,
    /// Seconds after an application is created during which Graph refuses a service principal
    /// for it, as Entra does while the new application replicates. 0: never.
    #[serde(default)]
    pub app_replication_secs: u64,
    /// Entra's "Users can register applications": members without a directory role that
    /// registers apps may register them, and become their first owner. Entra's default is on;
    /// the simulator's is off, as in the many organisations that turn it off.
    #[serde(default)]
    pub users_can_register_apps: bool,
    /// Whether PIM instance and request lists read at the tenant root `/` name role
    /// definitions by their tenant form (`/providers/Microsoft.Authorization/roleDefinitions/…`).
    #[serde(default)]
    pub root_lists_tenant_role_ids: bool,
    /// The newest api-version each resource provider has deployed where this tenant's
    /// resources live, by namespace (`"Microsoft.Compute" = "2024-07-01"`): a sovereign cloud
    /// or a region lags behind the specs, and refuses a newer version with
    /// `NoRegisteredProviderFound`. Unset: every version the specs declare.
    #[serde(default)]
    pub deployed_api_versions: std::collections::BTreeMap<String, String>,
}

/// The Microsoft Graph consent given to the tenant's own app: every permission it asks for,
/// none, or the permissions named.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum GraphConsent {
    All(bool),
    Only(Vec<String>),
}

impl Default for GraphConsent {
    fn default() -> GraphConsent {
        GraphConsent::All(true)
    }
}

impl GraphConsent {
    /// Whether any Graph permission was consented.
    pub fn any(&self) -> bool {
        match self {
            GraphConsent::All(all) => *all,
            GraphConsent::Only(list) => !list.is_empty(),
        }
    }
}

fn default_groups_claim_limit() -> usize {
    200
}

fn default_redirect_uris() -> Vec<String> {
    vec!["http://localhost".into(), "http://127.0.0.1".into()]
}
fn default_app_name() -> String {
    "Jumpgate".into()
}

fn default_device_interval() -> u64 {
    5
}
fn default_token_lifetime() -> u64 {
    3600
}
fn default_firewall() -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 9)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionFixture {
    pub id: String,
    pub display_name: String,
    #[serde(default = "default_location")]
    pub location: String,
}

fn default_location() -> String {
    "westeurope".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFixture {
    pub upn: String,
    pub name: String,
    pub oid: String,
    #[serde(default)]
    pub title: String,
    /// Whether sign-ins by this user carry the `mfa` authentication method.
    #[serde(default = "yes")]
    pub mfa: bool,
    /// A B2B guest: the UPN is the `…#EXT#@` one and `email` is the home address.
    #[serde(default)]
    pub guest: bool,
    /// The user's mail address; the UPN when omitted.
    #[serde(default)]
    pub email: Option<String>,
    /// Microsoft Entra directory roles the user holds, by their names
    /// (`Application Administrator`, `Cloud Application Administrator`, `Global Administrator`,
    /// …); see [`DIRECTORY_ROLES`].
    #[serde(default)]
    pub directory_roles: Vec<String>,
    /// Microsoft Entra directory roles the user may activate through PIM (tenant-wide,
    /// directory scope `/`), by their names; see [`DIRECTORY_ROLES`].
    #[serde(default)]
    pub eligible_directory_roles: Vec<String>,
}

/// The Entra built-in directory roles a fixture may give users, with their template ids
/// (which are also their role definition ids in every tenant). Application, Cloud Application
/// and Global Administrators may register applications in a tenant where users may not
/// (Microsoft's "least privileged roles by task"), and are not made owners of what they
/// register; an Application Developer may too, and becomes the first owner.
pub const DIRECTORY_ROLES: [(&str, &str); 9] = [
    (
        "Application Administrator",
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    ),
    (
        "Cloud Application Administrator",
        "158c047a-c907-4556-b7ef-446551a6b5f7",
    ),
    (
        "Global Administrator",
        "62e90394-69f5-4237-9190-012177145e10",
    ),
    ("Global Reader", "f2ef992c-3afb-46b9-b7cf-a126ee74c451"),
    ("User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1"),
    (
        "Application Developer",
        "cf1c38e5-3621-4004-a7cb-879624dced7c",
    ),
    ("Security Reader", "5d6b6bb7-de71-4623-b4af-96380a352509"),
    (
        "Security Administrator",
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
    ),
    (
        "Privileged Role Administrator",
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
    ),
];

/// A built-in directory role by its name or its id, as (name, id).
pub fn directory_role(key: &str) -> Option<(&'static str, &'static str)> {
    DIRECTORY_ROLES
        .iter()
        .find(|(name, id)| name.eq_ignore_ascii_case(key) || id.eq_ignore_ascii_case(key))
        .copied()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OsType {
    Windows,
    Linux,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmFixture {
    pub name: String,
    pub resource_group: String,
    /// The subscription id (or `{subN}`); the first subscription when omitted.
    #[serde(default)]
    pub subscription: Option<String>,
    pub os: OsType,
    /// The VM's public IP address. The JIT gate listens here, so it is a loopback address.
    pub public_ip: Ipv4Addr,
    pub private_ip: Ipv4Addr,
    #[serde(default = "default_size")]
    pub size: String,
    /// A real local service (`host:port`) that admitted connections are forwarded to instead
    /// of the built-in banner.
    #[serde(default)]
    pub backend: Option<String>,
    /// Put this VM behind the simulated Azure Firewall even when its ports could be bound.
    #[serde(default)]
    pub behind_firewall: bool,
}

fn default_size() -> String {
    "Standard_B2s".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDefinitionFixture {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type", default = "custom_role")]
    pub role_type: String,
    #[serde(default)]
    pub assignable_scopes: Vec<String>,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
}

fn custom_role() -> String {
    "CustomRole".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignmentFixture {
    /// A UPN or a user's object id, or a group's name or object id.
    pub principal: String,
    /// A role name or a role definition GUID.
    pub role: String,
    pub scope: String,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilityFixture {
    pub principal: String,
    pub role: String,
    pub scope: String,
    /// How long the eligibility lasts from the simulator's start (ISO 8601).
    #[serde(default = "default_eligibility")]
    pub duration: String,
    /// The eligibility schedule id; generated when omitted.
    #[serde(default)]
    pub schedule_id: Option<String>,
    /// The eligibility schedule instance name; generated when omitted.
    #[serde(default)]
    pub instance_id: Option<String>,
}

pub(crate) fn default_eligibility() -> String {
    "P365D".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolePolicyFixture {
    pub role: String,
    pub scope: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub approval_required: bool,
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default)]
    pub approver_justification_required: bool,
    #[serde(default)]
    pub justification_required: bool,
    #[serde(default)]
    pub ticket_required: bool,
    #[serde(default)]
    pub mfa_required: bool,
    #[serde(default = "default_max")]
    pub max_duration: String,
    #[serde(default = "default_stage_timeout")]
    pub approval_timeout_days: u32,
    /// A Conditional Access authentication context (such as `c1`) the activation requires:
    /// the `AuthenticationContext_EndUser_Assignment` rule, enabled with this `claimValue`.
    #[serde(default)]
    pub authentication_context: Option<String>,
}

fn default_max() -> String {
    "PT8H".into()
}
fn default_stage_timeout() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitPolicyFixture {
    pub name: String,
    pub resource_group: String,
    #[serde(default)]
    pub subscription: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    pub vms: Vec<JitVmFixture>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitVmFixture {
    pub name: String,
    pub ports: Vec<JitPortFixture>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitPortFixture {
    pub number: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
    #[serde(default = "star")]
    pub allowed_source: String,
    /// Several allowed sources (`allowedSourceAddressPrefixes`); replaces `allowed_source`.
    #[serde(default)]
    pub allowed_sources: Option<Vec<String>>,
    pub max: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementGroupFixture {
    /// The management group's id, as its scope names it.
    pub name: String,
    pub display_name: String,
    /// The parent management group's name; the tenant root group when omitted.
    #[serde(default)]
    pub parent: Option<String>,
    /// The subscriptions directly under it, as `{subN}` or ids.
    #[serde(default)]
    pub subscriptions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFixture {
    /// The display name, by which role assignments and policies name the group.
    pub name: String,
    /// The object id.
    pub id: String,
    #[serde(default)]
    pub description: String,
    /// Standing members, by UPN.
    #[serde(default)]
    pub members: Vec<String>,
    /// Standing owners, by UPN.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Users eligible for membership through PIM for Groups, by UPN.
    #[serde(default)]
    pub eligible_members: Vec<String>,
    /// Users eligible for ownership through PIM for Groups, by UPN.
    #[serde(default)]
    pub eligible_owners: Vec<String>,
    /// How long the eligibilities last from the simulator's start (ISO 8601).
    #[serde(default = "default_eligibility")]
    pub eligibility_duration: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPolicyFixture {
    /// The group's name or object id; empty for a directory role's policy.
    #[serde(default)]
    pub group: String,
    /// A directory role's name (PIM for Entra roles), instead of a group.
    #[serde(default)]
    pub role: Option<String>,
    /// `member` or `owner`.
    #[serde(default = "member")]
    pub access: String,
    #[serde(default)]
    pub approval_required: bool,
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default)]
    pub approver_justification_required: bool,
    #[serde(default)]
    pub justification_required: bool,
    #[serde(default)]
    pub ticket_required: bool,
    #[serde(default)]
    pub mfa_required: bool,
    #[serde(default = "default_max")]
    pub max_duration: String,
    #[serde(default = "default_stage_timeout")]
    pub approval_timeout_days: u32,
}

fn member() -> String {
    "member".into()
}

/// An app registration someone made in the tenant (Microsoft Graph's `application`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationFixture {
    /// The display name.
    pub name: String,
    /// The client id, a GUID.
    pub app_id: String,
    /// Its owners: UPNs or users' object ids.
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default = "my_org")]
    pub sign_in_audience: String,
    /// `publicClient.redirectUris`, the mobile and desktop platform's.
    #[serde(default)]
    pub public_client_redirect_uris: Vec<String>,
    /// `web.redirectUris`.
    #[serde(default)]
    pub web_redirect_uris: Vec<String>,
    /// `spa.redirectUris`.
    #[serde(default)]
    pub spa_redirect_uris: Vec<String>,
    /// `isFallbackPublicClient`: public client flows (device code) allowed.
    #[serde(default)]
    pub fallback_public_client: bool,
    /// Delegated permissions it asks for, by name (`user_impersonation`, `User.Read`, …).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Client secrets (`passwordCredentials`).
    #[serde(default)]
    pub secrets: Vec<CredentialFixture>,
    /// Certificates (`keyCredentials`).
    #[serde(default)]
    pub certificates: Vec<CredentialFixture>,
    /// Whether its service principal exists, so that people can sign in to it.
    #[serde(default)]
    pub service_principal: bool,
}

fn my_org() -> String {
    "AzureADMyOrg".into()
}

/// A client secret or certificate of an app registration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialFixture {
    pub display_name: String,
    /// When it expires (RFC 3339).
    pub expires: String,
}

fn tcp() -> String {
    "TCP".into()
}
fn star() -> String {
    "*".into()
}

impl Fixture {
    /// Loads `demo`, `empty`, `enterprise`, `fabrikam`, or a path to a TOML fixture.
    pub fn load(name_or_path: &str) -> Result<Fixture, FixtureError> {
        match name_or_path {
            "demo" => Fixture::parse("demo", DEMO),
            "empty" => Fixture::parse("empty", EMPTY),
            "enterprise" => Fixture::parse("enterprise", ENTERPRISE),
            "fabrikam" => Fixture::parse("fabrikam", FABRIKAM),
            other if other.ends_with(".toml") || Path::new(other).exists() => {
                let text = std::fs::read_to_string(other).map_err(|source| FixtureError::Read {
                    path: other.into(),
                    source,
                })?;
                Fixture::parse(other, &text)
            }
            other => Err(FixtureError::UnknownBuiltin(other.into())),
        }
    }

    pub fn parse(path: &str, text: &str) -> Result<Fixture, FixtureError> {
        let mut fixture: Fixture = toml::from_str(text).map_err(|e| FixtureError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        fixture.tenant.graph_consented = fixture.tenant.graph_consent.any();
        if fixture.subscriptions.is_empty() {
            return Err(FixtureError::Invalid {
                path: path.into(),
                message: "it needs at least one [[subscriptions]] entry".into(),
            });
        }
        if fixture.tenant.page_size == Some(0) {
            return Err(FixtureError::Invalid {
                path: path.into(),
                message: "tenant.page_size must be at least 1 (leave it out for one page)".into(),
            });
        }
        for user in &fixture.users {
            if let Some(role) = user
                .directory_roles
                .iter()
                .chain(&user.eligible_directory_roles)
                .find(|r| !DIRECTORY_ROLES.iter().any(|(name, _)| name == r))
            {
                return Err(FixtureError::Invalid {
                    path: path.into(),
                    message: format!(
                        "user {} holds directory role {role:?}, which is none of {}",
                        user.upn,
                        DIRECTORY_ROLES.map(|(name, _)| name).join(", ")
                    ),
                });
            }
        }
        for uri in &fixture.tenant.redirect_uris {
            if url::Url::parse(uri).is_err() {
                return Err(FixtureError::Invalid {
                    path: path.into(),
                    message: format!("tenant.redirect_uris holds {uri:?}, which is not a URL"),
                });
            }
        }
        Ok(fixture)
    }
}
