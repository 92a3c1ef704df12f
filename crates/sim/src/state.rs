//! Everything the simulated tenant holds, and the rules that tie it together.
//!
//! [`World`] is plain data behind one mutex. Handlers lock it, read or change it, and unlock
//! before any await. Time always comes in as an argument (`now`), from [`crate::clock`].

use std::collections::HashMap;
use std::net::Ipv4Addr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::duration;
use crate::rbac::{normalize_scope, role_grants};
use crate::tenant::{Fixture, FixtureError, OsType, TenantInfo};

mod apps;
mod directory;

pub use apps::SIGN_IN_AUDIENCES;
pub use directory::management_group_name;

pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub display_name: String,
    pub location: String,
}

#[derive(Debug, Clone)]
pub struct User {
    pub upn: String,
    pub name: String,
    pub oid: String,
    pub mfa: bool,
    /// A B2B guest, whose tokens name them by `email` rather than by UPN.
    pub guest: bool,
    pub email: String,
    /// Entra directory roles by name (`Application Administrator`, …).
    pub directory_roles: Vec<String>,
}

impl User {
    /// Whether the user's directory role manages every app registration
    /// (`microsoft.directory/applications/create`, owners, credentials): Application
    /// Administrator, Cloud Application Administrator, Global Administrator. Microsoft's roles
    /// reference: users in these roles "are not added as owners when creating new application
    /// registrations".
    pub fn manages_apps(&self) -> bool {
        self.directory_roles.iter().any(|r| {
            matches!(
                r.as_str(),
                "Application Administrator"
                    | "Cloud Application Administrator"
                    | "Global Administrator"
            )
        })
    }
}

/// How a user may register an application, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registering {
    /// `applications/create`, an admin role: not made an owner.
    AsAdmin,
    /// `applications/createAsOwner` (an Application Developer, or any member where users may
    /// register applications): made the first owner.
    AsOwner,
}

/// An app registration (Microsoft Graph's `application`), as far as the simulator models it.
#[derive(Debug, Clone)]
pub struct Application {
    /// The object id.
    pub id: String,
    /// The client id.
    pub app_id: String,
    pub display_name: String,
    pub sign_in_audience: String,
    /// `publicClient.redirectUris`: the mobile and desktop platform's redirect URIs.
    pub redirect_uris: Vec<String>,
    /// `web.redirectUris`.
    pub web_redirect_uris: Vec<String>,
    /// `spa.redirectUris`.
    pub spa_redirect_uris: Vec<String>,
    /// `isFallbackPublicClient`: public client flows (device code) allowed.
    pub fallback_public_client: bool,
    /// `requiredResourceAccess`: resource app id, then each permission's id and type.
    pub required_resource_access: Vec<(String, Vec<(String, String)>)>,
    /// `owners`: the object ids of the users (or service principals) that own it.
    pub owners: Vec<String>,
    /// `passwordCredentials`: client secrets, served without their text.
    pub password_credentials: Vec<Credential>,
    /// `keyCredentials`: certificates, served without their key.
    pub key_credentials: Vec<Credential>,
    pub created: DateTime<Utc>,
    /// The tenant's own pre-registered app: its Graph consent follows `graph_consented`.
    pub built_in: bool,
}

/// A client secret or a certificate of an application.
#[derive(Debug, Clone)]
pub struct Credential {
    pub key_id: String,
    pub display_name: String,
    /// A secret's first three characters, as Graph's `hint`; a certificate's thumbprint.
    pub hint: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A service principal (an enterprise application): an app's presence in the tenant, which
/// users need to sign in to it.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    pub created: DateTime<Utc>,
}

/// Azure Service Management (ARM), as a resource application.
pub const ARM_APP_ID: &str = "797f4846-ba00-4fd7-ba43-dac1f8f63013";
/// Microsoft Graph, as a resource application.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// The delegated permissions (scopes) the simulator knows, by resource app id, value and
/// permission id, as Microsoft publishes them.
pub const KNOWN_SCOPES: [(&str, &str, &str); 23] = [
    (
        ARM_APP_ID,
        "user_impersonation",
        "41094075-9dad-400e-a0bd-54e686782033",
    ),
    (
        GRAPH_APP_ID,
        "User.Read",
        "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
    ),
    (
        GRAPH_APP_ID,
        "User.ReadBasic.All",
        "b340eb25-3456-403f-be2f-af7a0d370277",
    ),
    (
        GRAPH_APP_ID,
        "Application.ReadWrite.All",
        "bdfbf15f-ee85-4955-8675-146e8e5296b5",
    ),
    (
        GRAPH_APP_ID,
        "PrivilegedEligibilitySchedule.Read.AzureADGroup",
        "8f44f93d-ecef-46ae-a9bf-338508d44d6b",
    ),
    (
        GRAPH_APP_ID,
        "PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup",
        "ba974594-d163-484e-ba39-c330d5897667",
    ),
    (
        GRAPH_APP_ID,
        "PrivilegedAssignmentSchedule.Read.AzureADGroup",
        "02a32cc4-7ab5-4b58-879a-0586e0f7c495",
    ),
    (
        GRAPH_APP_ID,
        "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup",
        "06dbc45d-6708-4ef0-a797-f797ee68bf4b",
    ),
    (
        GRAPH_APP_ID,
        "RoleManagementPolicy.Read.AzureADGroup",
        "7e26fdff-9cb1-4e56-bede-211fe0e420e8",
    ),
    (
        GRAPH_APP_ID,
        "RoleManagementPolicy.ReadWrite.AzureADGroup",
        "0da165c7-3f15-4236-b733-c0b0f6abe41d",
    ),
    (
        GRAPH_APP_ID,
        "PrivilegedAccess.Read.AzureADGroup",
        "d329c81c-20ad-4772-abf9-3f6fdb7e5988",
    ),
    (
        GRAPH_APP_ID,
        "PrivilegedAccess.ReadWrite.AzureADGroup",
        "32531c59-1f32-461f-b8df-6f8a3b89f73b",
    ),
    (
        GRAPH_APP_ID,
        "Group.Read.All",
        "5f8c59db-677d-491f-a6b8-5f174b11ec1d",
    ),
    (
        GRAPH_APP_ID,
        "GroupMember.Read.All",
        "bc024368-1153-4739-b217-4326f2e966d0",
    ),
    (
        GRAPH_APP_ID,
        "Directory.Read.All",
        "06da0dbc-49e2-44d2-8312-53f166ab848a",
    ),
    (
        GRAPH_APP_ID,
        "RoleEligibilitySchedule.Read.Directory",
        "eb0788c2-6d4e-4658-8c9e-c0fb8053f03d",
    ),
    (
        GRAPH_APP_ID,
        "RoleEligibilitySchedule.ReadWrite.Directory",
        "62ade113-f8e0-4bf9-a6ba-5acb31db32fd",
    ),
    (
        GRAPH_APP_ID,
        "RoleAssignmentSchedule.Read.Directory",
        "344a729c-0285-42c6-9014-f12b9b8d6129",
    ),
    (
        GRAPH_APP_ID,
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "8c026be3-8e26-4774-9372-8d5d6f21daff",
    ),
    (
        GRAPH_APP_ID,
        "RoleManagementPolicy.Read.Directory",
        "3de2cdbe-0ff5-47d5-bdee-7f45b4749ead",
    ),
    (
        GRAPH_APP_ID,
        "RoleManagementPolicy.ReadWrite.Directory",
        "1ff1be21-34eb-448c-9ac9-ce1f506b2a68",
    ),
    (
        GRAPH_APP_ID,
        "RoleManagement.Read.Directory",
        "741c54c3-0c1e-44a1-818b-3f97ab4e8c83",
    ),
    (
        GRAPH_APP_ID,
        "RoleManagement.ReadWrite.Directory",
        "d01b97e9-cbc0-49fe-810a-750afd5527a3",
    ),
];

/// The Microsoft Graph permissions the tenant's own app asks for: looking users up, PIM for
/// Groups and PIM for Entra roles (reading eligibilities and policies, activating).
pub const OWN_APP_GRAPH_PERMISSIONS: [&str; 7] = [
    "User.ReadBasic.All",
    "PrivilegedEligibilitySchedule.Read.AzureADGroup",
    "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup",
    "RoleManagementPolicy.Read.AzureADGroup",
    "RoleEligibilitySchedule.Read.Directory",
    "RoleAssignmentSchedule.ReadWrite.Directory",
    "RoleManagementPolicy.Read.Directory",
];

/// The id of a known delegated permission of `resource`, by its name.
pub fn scope_id(resource: &str, name: &str) -> Option<&'static str> {
    KNOWN_SCOPES
        .iter()
        .find(|(r, value, _)| r.eq_ignore_ascii_case(resource) && value.eq_ignore_ascii_case(name))
        .map(|(_, _, id)| *id)
}

/// The name of a known delegated permission of `resource`, by its id.
pub fn scope_name(resource: &str, id: &str) -> Option<&'static str> {
    KNOWN_SCOPES
        .iter()
        .find(|(r, _, known)| r.eq_ignore_ascii_case(resource) && known.eq_ignore_ascii_case(id))
        .map(|(_, value, _)| *value)
}

/// What a sign-in proved beyond the password, because a `claims` request asked for it: the
/// authentication contexts met (`acrs`) and multi-factor authentication (`amr` has `mfa`).
/// It travels with the authorization code and the refresh tokens of that sign-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepUp {
    pub acrs: Vec<String>,
    pub mfa: bool,
}

impl StepUp {
    /// Whether this sign-in already satisfies what `wanted` asks for.
    pub fn covers(&self, wanted: &StepUp) -> bool {
        (!wanted.mfa || self.mfa) && wanted.acrs.iter().all(|a| self.acrs.contains(a))
    }
}

#[derive(Debug, Clone)]
pub struct Vm {
    pub name: String,
    pub subscription: String,
    pub resource_group: String,
    pub location: String,
    pub os: OsType,
    pub public_ip: Ipv4Addr,
    pub private_ip: Ipv4Addr,
    pub size: String,
    pub backend: Option<String>,
    pub behind_firewall: bool,
    pub vm_id: String,
}

impl Vm {
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
            self.subscription, self.resource_group, self.name
        )
    }
    pub fn nic_name(&self) -> String {
        format!("{}-nic", self.name)
    }
    pub fn pip_name(&self) -> String {
        format!("{}-pip", self.name)
    }
    pub fn rg_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.subscription, self.resource_group
        )
    }
}

#[derive(Debug, Clone)]
pub struct RoleDefinition {
    pub guid: String,
    pub name: String,
    pub description: String,
    pub role_type: String,
    pub assignable_scopes: Vec<String>,
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
    pub created_on: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub enum AssignmentOrigin {
    /// A standing assignment, as made in the portal or by `roleAssignments` PUT.
    Standing,
    /// Made by an approved or auto-approved PIM activation.
    Activated {
        request: String,
        schedule_id: String,
        instance_id: String,
        linked_eligibility: Option<String>,
        end: DateTime<Utc>,
        /// When the assignment starts passing RBAC checks (the propagation delay).
        effective_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone)]
pub struct RoleAssignment {
    pub guid: String,
    pub scope: String,
    pub role: String,
    pub principal: String,
    /// `User` or `Group`, as ARM's `principalType` names the principal's kind.
    pub principal_type: String,
    pub created_on: DateTime<Utc>,
    pub origin: AssignmentOrigin,
    /// Whether this activation has already had its first JIT initiate refused (see the
    /// tenant's `first_initiate_refused_secs`).
    pub initiate_refused: bool,
}

impl RoleAssignment {
    pub fn end(&self) -> Option<DateTime<Utc>> {
        match &self.origin {
            AssignmentOrigin::Standing => None,
            AssignmentOrigin::Activated { end, .. } => Some(*end),
        }
    }

    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.end().is_none_or(|end| now < end)
    }

    /// Whether RBAC checks honour it yet.
    pub fn is_effective(&self, now: DateTime<Utc>) -> bool {
        match &self.origin {
            AssignmentOrigin::Standing => true,
            AssignmentOrigin::Activated {
                end, effective_at, ..
            } => now >= *effective_at && now < *end,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Eligibility {
    pub schedule_id: String,
    pub instance_id: String,
    pub scope: String,
    pub role: String,
    pub principal: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub created_on: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct RolePolicy {
    pub guid: String,
    pub scope: String,
    pub role: String,
    pub rules: Vec<Value>,
    pub last_modified: DateTime<Utc>,
    pub last_modified_by: Option<String>,
}

/// What a role management policy asks of an end user's activation.
#[derive(Debug, Clone, Default)]
pub struct ActivationRules {
    pub approval_required: bool,
    pub approval_required_for_extension: bool,
    pub approvers: Vec<String>,
    pub approver_justification_required: bool,
    pub stage_timeout_days: i64,
    pub justification_required: bool,
    pub ticket_required: bool,
    pub mfa_required: bool,
    pub expiration_required: bool,
    pub max_duration: Option<Duration>,
    /// The Conditional Access authentication context the activation must be made with.
    pub authentication_context: Option<String>,
}

impl RolePolicy {
    fn rule(&self, id: &str) -> Option<&Value> {
        self.rules.iter().find(|r| r["id"] == id)
    }

    pub fn activation_rules(&self) -> ActivationRules {
        let mut out = ActivationRules::default();
        if let Some(rule) = self.rule("Approval_EndUser_Assignment") {
            let setting = &rule["setting"];
            out.approval_required = setting["isApprovalRequired"].as_bool().unwrap_or(false);
            out.approval_required_for_extension = setting["isApprovalRequiredForExtension"]
                .as_bool()
                .unwrap_or(false);
            if let Some(stage) = setting["approvalStages"].get(0) {
                out.approver_justification_required = stage["isApproverJustificationRequired"]
                    .as_bool()
                    .unwrap_or(false);
                out.stage_timeout_days = stage["approvalStageTimeOutInDays"].as_i64().unwrap_or(1);
                out.approvers = stage["primaryApprovers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["id"].as_str().map(str::to_string))
                    .collect();
            }
        }
        if let Some(rule) = self.rule("Enablement_EndUser_Assignment") {
            let enabled: Vec<&str> = rule["enabledRules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.justification_required = enabled.contains(&"Justification");
            out.ticket_required = enabled.contains(&"Ticketing");
            out.mfa_required = enabled.contains(&"MultiFactorAuthentication");
        }
        if let Some(rule) = self.rule("Expiration_EndUser_Assignment") {
            out.expiration_required = rule["isExpirationRequired"].as_bool().unwrap_or(true);
            out.max_duration = rule["maximumDuration"].as_str().and_then(duration::parse);
        }
        if let Some(rule) = self.rule("AuthenticationContext_EndUser_Assignment") {
            if rule["isEnabled"].as_bool().unwrap_or(false) {
                out.authentication_context = rule["claimValue"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                    .map(str::to_string);
            }
        }
        out
    }
}

/// A management group below the tenant root group.
#[derive(Debug, Clone)]
pub struct ManagementGroup {
    pub name: String,
    pub display_name: String,
    /// The parent's name; `None` for a child of the tenant root group.
    pub parent: Option<String>,
    /// Ids of the subscriptions directly under it.
    pub subscriptions: Vec<String>,
}

/// An Entra security group and its standing membership.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Object ids of standing members.
    pub members: Vec<String>,
    /// Object ids of standing owners.
    pub owners: Vec<String>,
}

/// The two relationships PIM for Groups governs.
pub const GROUP_ACCESS: [&str; 2] = ["member", "owner"];

/// The `access` of a PIM item that is a Microsoft Entra directory role's (Graph's
/// `roleManagement/directory`) rather than a group's: PIM runs both on one engine, with the
/// same schedules, requests, approvals and policies, so the simulator keeps them in the same
/// lists. In such an item, `group` holds the role definition's id; the directory scope is
/// always the tenant (`/`).
pub const DIRECTORY_ROLE: &str = "directoryRole";

/// A principal's eligibility, through PIM for Groups, for membership or ownership of a group
/// (or, with `access` [`DIRECTORY_ROLE`], for a directory role).
#[derive(Debug, Clone)]
pub struct GroupEligibility {
    /// The eligibility schedule instance's id.
    pub id: String,
    pub schedule_id: String,
    pub group: String,
    /// `member` or `owner`.
    pub access: String,
    pub principal: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

/// A membership or ownership activated through PIM for Groups.
#[derive(Debug, Clone)]
pub struct GroupActivation {
    /// The assignment schedule instance's id.
    pub id: String,
    pub schedule_id: String,
    /// The request that created it.
    pub request: String,
    pub group: String,
    pub access: String,
    pub principal: String,
    /// When it was provisioned: its start, and when it takes effect.
    pub start: DateTime<Utc>,
    /// When it ends (or, once deactivated, when its lingering ends).
    pub end: DateTime<Utc>,
    pub eligibility: Option<String>,
    /// Set by a provisioned `selfDeactivate`: it lingers until `end`.
    pub deactivated: bool,
    /// Whether it has already had its first JIT initiate refused.
    pub initiate_refused: bool,
}

/// The single approval stage of a PIM for Groups request. As Microsoft's example shows, the
/// approval's id and the stage's id are both the request's id.
#[derive(Debug, Clone)]
pub struct GroupStage {
    pub approvers: Vec<String>,
    /// `InProgress`, `Completed` or `Expired`.
    pub status: String,
    /// `NotReviewed`, `Approved` or `Denied`.
    pub review_result: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub justification: String,
    pub approver_justification_required: bool,
    pub expires: DateTime<Utc>,
}

/// A PIM for Groups assignment schedule request (`selfActivate` or `selfDeactivate`).
#[derive(Debug, Clone)]
pub struct GroupRequest {
    pub id: String,
    pub group: String,
    pub access: String,
    pub principal: String,
    pub created_by: String,
    pub action: String,
    pub status: String,
    pub justification: Option<String>,
    pub ticket_number: Option<String>,
    pub ticket_system: Option<String>,
    pub custom_data: Option<String>,
    /// The expiration as asked: `type`, and `duration` or `endDateTime`.
    pub expiration: Value,
    /// How long the membership lasts once provisioned.
    pub duration: Option<Duration>,
    pub created: DateTime<Utc>,
    pub completed: Option<DateTime<Utc>>,
    /// When the membership it asks for starts (its provisioning), once provisioned.
    pub start: Option<DateTime<Utc>>,
    pub stage: Option<GroupStage>,
    pub target_schedule_id: Option<String>,
    pub eligibility: Option<String>,
}

/// A PIM for Groups activation policy for one group and one relationship.
#[derive(Debug, Clone)]
pub struct GroupPolicy {
    /// `Group_{groupId}_{guid}`, as Graph names group policies.
    pub id: String,
    pub group: String,
    pub access: String,
    pub approval_required: bool,
    /// Approvers' object ids.
    pub approvers: Vec<String>,
    pub approver_justification_required: bool,
    pub justification_required: bool,
    pub ticket_required: bool,
    pub mfa_required: bool,
    pub max_duration: String,
    pub timeout_days: u32,
}

impl GroupPolicy {
    /// Microsoft's defaults for a group no one has configured: no approval, a justification,
    /// at most eight hours.
    pub fn default_for(group: &str, access: &str) -> GroupPolicy {
        let guid = stable_guid(&format!("group-policy:{group}:{access}"));
        GroupPolicy {
            // Graph names a directory role's policy `DirectoryRole_{tenant}_{guid}`; the
            // tenant is left out here, as a policy's id is only ever echoed back.
            id: if access == DIRECTORY_ROLE {
                format!("DirectoryRole_{guid}")
            } else {
                format!("Group_{group}_{guid}")
            },
            group: group.to_string(),
            access: access.to_string(),
            approval_required: false,
            approvers: Vec::new(),
            approver_justification_required: true,
            justification_required: true,
            ticket_required: false,
            mfa_required: false,
            max_duration: "PT8H".into(),
            timeout_days: 1,
        }
    }
}

/// A PIM role assignment schedule request.
#[derive(Debug, Clone)]
pub struct ScheduleRequest {
    pub name: String,
    pub scope: String,
    pub role: String,
    pub principal: String,
    pub requestor: String,
    pub request_type: String,
    pub status: String,
    pub approval_id: Option<String>,
    pub schedule_info: Value,
    pub start: DateTime<Utc>,
    pub duration: Option<Duration>,
    pub end: Option<DateTime<Utc>>,
    pub justification: Option<String>,
    pub ticket_number: Option<String>,
    pub ticket_system: Option<String>,
    pub created_on: DateTime<Utc>,
    pub condition: Option<String>,
    pub condition_version: Option<String>,
    pub linked_eligibility: Option<String>,
    pub target_schedule_id: Option<String>,
    pub target_instance_id: Option<String>,
}

pub const PENDING: &str = "PendingApproval";

/// An admin's request to make a principal eligible (or no longer eligible) for a role. It is
/// carried out at once, so it is kept as the answer it gave.
#[derive(Debug, Clone)]
pub struct EligibilityRequest {
    pub name: String,
    pub scope: String,
    pub principal: String,
    pub requestor: String,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct ApprovalStage {
    /// The last segment of the stage's id, by which it is addressed.
    pub guid: String,
    /// The stage's `name`, which is not its id's last segment.
    pub name: String,
    pub display_name: String,
    pub approvers: Vec<String>,
    pub status: String,
    pub review_result: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub justification: String,
    pub approver_justification_required: bool,
}

#[derive(Debug, Clone)]
pub struct Approval {
    pub guid: String,
    pub request: String,
    pub created_on: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    pub stages: Vec<ApprovalStage>,
}

/// The two ways a JIT port rule may name its allowed sources.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SourcePrefixes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefixes: Option<Vec<String>>,
}

impl SourcePrefixes {
    pub fn all(&self) -> Vec<String> {
        let mut out: Vec<String> = self.allowed_source_address_prefix.iter().cloned().collect();
        out.extend(
            self.allowed_source_address_prefixes
                .iter()
                .flatten()
                .cloned(),
        );
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitPortRule {
    pub number: i64,
    pub protocol: String,
    #[serde(flatten)]
    pub sources: SourcePrefixes,
    pub max_request_access_duration: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitVm {
    pub id: String,
    pub ports: Vec<JitPortRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitRequestPort {
    pub number: i64,
    #[serde(flatten)]
    pub sources: SourcePrefixes,
    pub end_time_utc: String,
    pub status: String,
    pub status_reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapped_port: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitRequestVm {
    pub id: String,
    pub ports: Vec<JitRequestPort>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitRequest {
    pub virtual_machines: Vec<JitRequestVm>,
    pub start_time_utc: String,
    pub requestor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

/// A VM's resource id and a port number.
pub type VmPort = (String, i64);

#[derive(Debug, Clone)]
pub struct JitPolicy {
    pub name: String,
    pub subscription: String,
    pub resource_group: String,
    pub location: String,
    pub kind: String,
    pub vms: Vec<JitVm>,
    pub requests: Vec<JitRequest>,
}

impl JitPolicy {
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Security/locations/{}/jitNetworkAccessPolicies/{}",
            self.subscription, self.resource_group, self.location, self.name
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id(),
            "name": self.name,
            "type": "Microsoft.Security/locations/jitNetworkAccessPolicies",
            "kind": self.kind,
            "location": self.location,
            "properties": {
                "virtualMachines": self.vms,
                "requests": self.requests,
                "provisioningState": "Succeeded",
            }
        })
    }

    /// Puts the rules of requests initiated at least `delay` ago into effect (`Initiating`
    /// becomes `Initiated`), and revokes what each of them supersedes. Returns the rules that
    /// took effect and those revoked, as `(vm, port)`.
    pub fn apply_initiated(
        &mut self,
        now: DateTime<Utc>,
        delay: Duration,
    ) -> (Vec<VmPort>, Vec<VmPort>) {
        let mut applied = Vec::new();
        let mut revoked = Vec::new();
        for i in 0..self.requests.len() {
            let due = parse_time(&self.requests[i].start_time_utc)
                .is_none_or(|start| start + delay <= now);
            if !due {
                continue;
            }
            let mut any = false;
            for vm in &mut self.requests[i].virtual_machines {
                for port in &mut vm.ports {
                    if port.status == "Initiating" {
                        port.status = "Initiated".into();
                        applied.push((vm.id.clone(), port.number));
                        any = true;
                    }
                }
            }
            if any {
                revoked.extend(self.revoke_superseded(i));
            }
        }
        (applied, revoked)
    }

    /// A newer request for a VM port revokes the rules the same requestor's older requests
    /// opened for it; another person's rule on that port stays until its own end, as each
    /// request keeps its own NSG rule.
    pub fn revoke_superseded(&mut self, newer: usize) -> Vec<VmPort> {
        let Some(newer_request) = self.requests.get(newer).cloned() else {
            return Vec::new();
        };
        let mut revoked = Vec::new();
        for old in &mut self.requests[..newer] {
            if !old.requestor.eq_ignore_ascii_case(&newer_request.requestor) {
                continue;
            }
            for vm in &mut old.virtual_machines {
                for port in &mut vm.ports {
                    let superseded = newer_request.virtual_machines.iter().any(|n| {
                        n.id.eq_ignore_ascii_case(&vm.id)
                            && n.ports.iter().any(|p| p.number == port.number)
                    });
                    if superseded && (port.status == "Initiated" || port.status == "Initiating") {
                        port.status = "Revoked".into();
                        port.status_reason = "NewerRequestInitiated".into();
                        revoked.push((vm.id.clone(), port.number));
                    }
                }
            }
        }
        revoked
    }

    /// Marks rules whose end time has passed as revoked for expiry, as JIT does.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<(String, i64)> {
        let mut expired = Vec::new();
        for request in &mut self.requests {
            for vm in &mut request.virtual_machines {
                for port in &mut vm.ports {
                    if (port.status == "Initiated" || port.status == "Initiating")
                        && parse_time(&port.end_time_utc).is_some_and(|end| end <= now)
                    {
                        port.status = "Revoked".into();
                        port.status_reason = "Expired".into();
                        expired.push((vm.id.clone(), port.number));
                    }
                }
            }
        }
        expired
    }
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub oid: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub expires: DateTime<Utc>,
    pub redeemed: bool,
    pub step_up: StepUp,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub oid: String,
    pub scope: String,
    pub client_id: String,
    /// Set when the token was exchanged for a new one: using it again is refused.
    pub rotated: bool,
    pub revoked: bool,
    /// What the sign-in this token came from proved; its tokens carry it on.
    pub step_up: StepUp,
}

#[derive(Debug, Clone)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub expires: DateTime<Utc>,
    pub interval: i64,
    pub last_poll: Option<DateTime<Utc>>,
    pub signed_in: Option<String>,
    pub declined: bool,
    pub redeemed: bool,
    pub step_up: StepUp,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub seq: u64,
    pub time: String,
    pub kind: String,
    #[serde(flatten)]
    pub detail: serde_json::Map<String, Value>,
}

#[derive(Debug)]
pub struct World {
    pub tenant: TenantInfo,
    pub subscriptions: Vec<Subscription>,
    pub users: Vec<User>,
    pub vms: Vec<Vm>,
    pub role_definitions: Vec<RoleDefinition>,
    pub role_assignments: Vec<RoleAssignment>,
    pub eligibilities: Vec<Eligibility>,
    pub policies: Vec<RolePolicy>,
    pub requests: Vec<ScheduleRequest>,
    pub eligibility_requests: Vec<EligibilityRequest>,
    pub approvals: Vec<Approval>,
    pub jit_policies: Vec<JitPolicy>,
    pub auth_codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub device_codes: Vec<DeviceCode>,
    /// Access-token ids (`uti`) that were revoked.
    pub revoked_tokens: std::collections::HashSet<String>,
    /// Access-token ids issued to each user, so that revoking a user revokes them all.
    pub issued_tokens: HashMap<String, Vec<String>>,
    pub ip_override: Option<Ipv4Addr>,
    /// App registrations, the tenant's own Jumpgate app first.
    pub applications: Vec<Application>,
    pub service_principals: Vec<ServicePrincipal>,
    pub management_groups: Vec<ManagementGroup>,
    pub groups: Vec<Group>,
    pub group_eligibilities: Vec<GroupEligibility>,
    pub group_activations: Vec<GroupActivation>,
    pub group_requests: Vec<GroupRequest>,
    pub group_policies: Vec<GroupPolicy>,
    /// Whether a refresh-token grant answers with a new refresh token (rotating the one sent);
    /// `POST /_sim/entra` turns it off and on.
    pub rotate_refresh_tokens: bool,
    pub events: Vec<Event>,
    next_seq: u64,
}

/// Keeps the event log bounded on a long-running demo.
const MAX_EVENTS: usize = 200_000;

impl World {
    pub fn from_fixture(fixture: &Fixture, now: DateTime<Utc>) -> Result<World, FixtureError> {
        let invalid = |message: String| FixtureError::Invalid {
            path: fixture.tenant.domain.clone(),
            message,
        };
        let sub0 = fixture.subscriptions[0].id.clone();
        let subs = |text: &str| expand_subscriptions(text, fixture);
        let expand = |scope: &str| normalize_scope(&subs(scope));
        let subscriptions: Vec<Subscription> = fixture
            .subscriptions
            .iter()
            .map(|s| Subscription {
                id: s.id.clone(),
                display_name: s.display_name.clone(),
                location: s.location.clone(),
            })
            .collect();
        let users: Vec<User> = fixture
            .users
            .iter()
            .map(|u| User {
                upn: u.upn.clone(),
                name: u.name.clone(),
                oid: u.oid.to_ascii_lowercase(),
                mfa: u.mfa,
                guest: u.guest,
                email: u.email.clone().unwrap_or_else(|| u.upn.clone()),
                directory_roles: u.directory_roles.clone(),
            })
            .collect();
        // The tenant's own Jumpgate registration, as an admin made it once.
        let own_app = Application {
            id: stable_guid(&format!("application:{}", fixture.tenant.client_id)),
            app_id: fixture.tenant.client_id.to_ascii_lowercase(),
            display_name: fixture.tenant.app_name.clone(),
            sign_in_audience: "AzureADMyOrg".into(),
            redirect_uris: fixture.tenant.redirect_uris.clone(),
            web_redirect_uris: Vec::new(),
            spa_redirect_uris: Vec::new(),
            fallback_public_client: true,
            required_resource_access: vec![
                (
                    ARM_APP_ID.into(),
                    vec![(KNOWN_SCOPES[0].2.into(), "Scope".into())],
                ),
                (
                    GRAPH_APP_ID.into(),
                    OWN_APP_GRAPH_PERMISSIONS
                        .iter()
                        .filter_map(|name| scope_id(GRAPH_APP_ID, name))
                        .map(|id| (id.to_string(), "Scope".to_string()))
                        .collect(),
                ),
            ],
            // Made long ago by an admin role, which Entra does not make an owner.
            owners: Vec::new(),
            password_credentials: Vec::new(),
            key_credentials: Vec::new(),
            created: now,
            built_in: true,
        };
        let own_sp = ServicePrincipal {
            id: stable_guid(&format!("servicePrincipal:{}", fixture.tenant.client_id)),
            app_id: own_app.app_id.clone(),
            display_name: own_app.display_name.clone(),
            created: now,
        };
        let mut world = World {
            tenant: fixture.tenant.clone(),
            subscriptions,
            users,
            vms: Vec::new(),
            role_definitions: builtin_roles(now),
            role_assignments: Vec::new(),
            eligibilities: Vec::new(),
            policies: Vec::new(),
            requests: Vec::new(),
            eligibility_requests: Vec::new(),
            approvals: Vec::new(),
            jit_policies: Vec::new(),
            auth_codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            device_codes: Vec::new(),
            revoked_tokens: Default::default(),
            issued_tokens: HashMap::new(),
            ip_override: fixture.tenant.public_ip,
            applications: vec![own_app],
            service_principals: vec![own_sp],
            management_groups: Vec::new(),
            groups: Vec::new(),
            group_eligibilities: Vec::new(),
            group_activations: Vec::new(),
            group_requests: Vec::new(),
            group_policies: Vec::new(),
            rotate_refresh_tokens: true,
            events: Vec::new(),
            next_seq: 0,
        };
        world.load_management_groups(fixture)?;
        world.load_applications(fixture, now)?;
        world.load_groups(fixture, now)?;
        world.load_directory_role_eligibilities(fixture, now)?;
        world.load_group_policies(fixture)?;
        for vm in &fixture.vms {
            let subscription = vm
                .subscription
                .as_deref()
                .map(subs)
                .unwrap_or_else(|| sub0.clone());
            let location = world
                .subscriptions
                .iter()
                .find(|s| s.id == subscription)
                .map(|s| s.location.clone())
                .ok_or_else(|| {
                    invalid(format!(
                        "VM {} names unknown subscription {subscription}",
                        vm.name
                    ))
                })?;
            if !vm.public_ip.is_loopback() {
                return Err(invalid(format!(
                    "VM {}: public_ip {} must be a loopback address (127.x.y.z), because the JIT gate listens there",
                    vm.name, vm.public_ip
                )));
            }
            world.vms.push(Vm {
                name: vm.name.clone(),
                subscription,
                resource_group: vm.resource_group.clone(),
                location,
                os: vm.os,
                public_ip: vm.public_ip,
                private_ip: vm.private_ip,
                size: vm.size.clone(),
                backend: vm.backend.clone(),
                behind_firewall: vm.behind_firewall,
                // Seeded by name, as before; a VM sharing its name with another is seeded by
                // its place too, so the two get different vmIds.
                vm_id: if fixture
                    .vms
                    .iter()
                    .filter(|v| v.name.eq_ignore_ascii_case(&vm.name))
                    .count()
                    > 1
                {
                    stable_guid(&format!(
                        "vm:{}:{}:{}",
                        vm.subscription.as_deref().unwrap_or(""),
                        vm.resource_group,
                        vm.name
                    ))
                } else {
                    stable_guid(&format!("vm:{}", vm.name))
                },
            });
        }
        for rd in &fixture.role_definitions {
            world.role_definitions.push(RoleDefinition {
                guid: rd.id.to_ascii_lowercase(),
                name: rd.name.clone(),
                description: rd.description.clone(),
                role_type: rd.role_type.clone(),
                assignable_scopes: rd.assignable_scopes.iter().map(|s| expand(s)).collect(),
                actions: rd.actions.clone(),
                not_actions: rd.not_actions.clone(),
                data_actions: Vec::new(),
                not_data_actions: Vec::new(),
                created_on: now,
            });
        }
        for ra in &fixture.role_assignments {
            let (principal, principal_type) =
                world.directory_object(&ra.principal).ok_or_else(|| {
                    invalid(format!(
                        "role assignment names unknown principal {}",
                        ra.principal
                    ))
                })?;
            let role = world.role_guid(&ra.role).ok_or_else(|| {
                invalid(format!("role assignment names unknown role {}", ra.role))
            })?;
            world.role_assignments.push(RoleAssignment {
                guid: ra.id.clone().unwrap_or_else(new_guid),
                scope: expand(&ra.scope),
                role,
                principal,
                principal_type: principal_type.into(),
                created_on: now,
                origin: AssignmentOrigin::Standing,
                initiate_refused: false,
            });
        }
        for el in &fixture.eligibilities {
            let principal = world.principal_id(&el.principal).ok_or_else(|| {
                invalid(format!(
                    "eligibility names unknown principal {}",
                    el.principal
                ))
            })?;
            let role = world
                .role_guid(&el.role)
                .ok_or_else(|| invalid(format!("eligibility names unknown role {}", el.role)))?;
            let length = duration::parse(&el.duration).ok_or_else(|| {
                invalid(format!(
                    "eligibility duration {:?} is not ISO 8601",
                    el.duration
                ))
            })?;
            world.eligibilities.push(Eligibility {
                schedule_id: el.schedule_id.clone().unwrap_or_else(new_guid),
                instance_id: el.instance_id.clone().unwrap_or_else(new_guid),
                scope: expand(&el.scope),
                role,
                principal,
                start: now,
                end: Some(now + length),
                created_on: now,
            });
        }
        for p in &fixture.role_policies {
            let role = world
                .role_guid(&p.role)
                .ok_or_else(|| invalid(format!("role policy names unknown role {}", p.role)))?;
            if duration::parse(&p.max_duration).is_none() {
                return Err(invalid(format!(
                    "role policy max_duration {:?} is not ISO 8601",
                    p.max_duration
                )));
            }
            let mut approvers = Vec::new();
            for a in &p.approvers {
                let user = world
                    .user(a)
                    .ok_or_else(|| invalid(format!("role policy names unknown approver {a}")))?;
                approvers.push(json!({"id": user.oid, "description": user.name, "isBackup": false, "userType": "User"}));
            }
            let mut enabled = Vec::new();
            if p.mfa_required {
                enabled.push("MultiFactorAuthentication");
            }
            if p.justification_required {
                enabled.push("Justification");
            }
            if p.ticket_required {
                enabled.push("Ticketing");
            }
            let scope = expand(&p.scope);
            let mut rules = policy_rules(
                p.approval_required,
                approvers,
                p.approver_justification_required,
                p.approval_timeout_days,
                &enabled,
                &p.max_duration,
            );
            if let Some(context) = &p.authentication_context {
                rules.push(authentication_context_rule(true, context));
            }
            world.policies.push(RolePolicy {
                guid: p.id.clone().unwrap_or_else(new_guid),
                rules,
                scope,
                role,
                last_modified: now,
                last_modified_by: None,
            });
        }
        for jp in &fixture.jit_policies {
            let subscription = jp
                .subscription
                .as_deref()
                .map(subs)
                .unwrap_or_else(|| sub0.clone());
            let location = jp.location.clone().unwrap_or_else(|| {
                world
                    .subscriptions
                    .iter()
                    .find(|s| s.id == subscription)
                    .map(|s| s.location.clone())
                    .unwrap_or_else(default_location)
            });
            let mut vms = Vec::new();
            for v in &jp.vms {
                // The VM of that name in the policy's resource group; VMs elsewhere may share
                // its name.
                let named = |vm: &&Vm| vm.name.eq_ignore_ascii_case(&v.name);
                let vm = world
                    .vms
                    .iter()
                    .filter(named)
                    .find(|vm| {
                        vm.subscription.eq_ignore_ascii_case(&subscription)
                            && vm.resource_group.eq_ignore_ascii_case(&jp.resource_group)
                    })
                    .or_else(|| world.vms.iter().find(named))
                    .ok_or_else(|| {
                        invalid(format!(
                            "JIT policy {} names unknown VM {}",
                            jp.name, v.name
                        ))
                    })?;
                let mut ports = Vec::new();
                for port in &v.ports {
                    if duration::parse(&port.max).is_none() {
                        return Err(invalid(format!(
                            "JIT port {} max {:?} is not ISO 8601",
                            port.number, port.max
                        )));
                    }
                    let sources = match &port.allowed_sources {
                        Some(list) => SourcePrefixes {
                            allowed_source_address_prefix: None,
                            allowed_source_address_prefixes: Some(list.clone()),
                        },
                        None => SourcePrefixes {
                            allowed_source_address_prefix: Some(port.allowed_source.clone()),
                            allowed_source_address_prefixes: None,
                        },
                    };
                    for source in sources.all() {
                        if crate::arm::Prefix::parse(&source).is_none() {
                            return Err(invalid(format!(
                                "JIT port {} source {source:?} is not *, an IPv4 address or an IPv4 CIDR block",
                                port.number
                            )));
                        }
                    }
                    ports.push(JitPortRule {
                        number: i64::from(port.number),
                        protocol: port.protocol.clone(),
                        sources,
                        max_request_access_duration: port.max.clone(),
                    });
                }
                vms.push(JitVm {
                    id: vm.id(),
                    ports,
                    public_ip_address: None,
                });
            }
            world.jit_policies.push(JitPolicy {
                name: jp.name.clone(),
                subscription,
                resource_group: jp.resource_group.clone(),
                location,
                kind: "Basic".into(),
                vms,
                requests: Vec::new(),
            });
        }
        Ok(world)
    }

    pub fn record(&mut self, now: DateTime<Utc>, kind: &str, detail: Value) {
        self.next_seq += 1;
        let detail = match detail {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        self.events.push(Event {
            seq: self.next_seq,
            time: crate::clock::arm_time(now),
            kind: kind.into(),
            detail,
        });
        if self.events.len() > MAX_EVENTS {
            let excess = self.events.len() - MAX_EVENTS;
            self.events.drain(..excess);
        }
    }

    /// A user by UPN or object id, case-insensitively.
    pub fn user(&self, key: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.upn.eq_ignore_ascii_case(key) || u.oid.eq_ignore_ascii_case(key))
    }

    pub fn user_by_oid(&self, oid: &str) -> Option<&User> {
        self.users.iter().find(|u| u.oid.eq_ignore_ascii_case(oid))
    }

    /// The app registration users can sign in to with `client_id`: one whose service principal
    /// exists in the tenant.
    pub fn client(&self, client_id: &str) -> Option<&Application> {
        let app = self
            .applications
            .iter()
            .find(|a| a.app_id.eq_ignore_ascii_case(client_id))?;
        self.service_principals
            .iter()
            .any(|sp| sp.app_id.eq_ignore_ascii_case(&app.app_id))
            .then_some(app)
    }

    /// Whether `principal` holds a live eligibility for `role` whose scope lies at or above
    /// `scope`, or below it.
    pub fn is_eligible(
        &self,
        principal: &str,
        role: &str,
        scope: &str,
        now: DateTime<Utc>,
    ) -> bool {
        self.eligibilities.iter().any(|e| {
            e.principal.eq_ignore_ascii_case(principal)
                && e.role.eq_ignore_ascii_case(role)
                && e.end.is_none_or(|end| now < end)
                && self.in_scope(scope, &e.scope)
        })
    }

    fn principal_id(&self, key: &str) -> Option<String> {
        self.user(key).map(|u| u.oid.clone())
    }

    /// A role definition's GUID from its name, GUID or full id.
    pub fn role_guid(&self, key: &str) -> Option<String> {
        let tail = key.rsplit('/').next().unwrap_or(key);
        self.role_definitions
            .iter()
            .find(|r| r.guid.eq_ignore_ascii_case(tail) || r.name.eq_ignore_ascii_case(key))
            .map(|r| r.guid.clone())
    }

    pub fn role(&self, guid: &str) -> Option<&RoleDefinition> {
        self.role_definitions
            .iter()
            .find(|r| r.guid.eq_ignore_ascii_case(guid))
    }

    pub fn subscription_of(&self, scope: &str) -> Option<&Subscription> {
        let scope = normalize_scope(scope).to_ascii_lowercase();
        self.subscriptions.iter().find(|s| {
            let sub = format!("/subscriptions/{}", s.id.to_ascii_lowercase());
            scope == sub || scope.starts_with(&format!("{sub}/"))
        })
    }

    /// The id ARM gives a role definition seen from `scope`.
    pub fn role_definition_id(&self, scope: &str, guid: &str) -> String {
        match self.subscription_of(scope) {
            Some(sub) => format!(
                "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
                sub.id
            ),
            None => format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
        }
    }

    /// Whether `principal` may perform `action` on `resource` right now.
    pub fn is_permitted(
        &self,
        principal: &str,
        action: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> bool {
        self.is_permitted_any(&[principal.to_string()], action, resource, now)
    }

    /// Whether any of `principals` (a caller's object id and groups) may perform `action` on
    /// `resource` right now.
    pub fn is_permitted_any(
        &self,
        principals: &[String],
        action: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> bool {
        !self.granting(principals, action, resource, now).is_empty()
    }

    /// The effective assignments of `principals` that grant `action` on `resource`.
    pub fn granting(
        &self,
        principals: &[String],
        action: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> Vec<&RoleAssignment> {
        self.role_assignments
            .iter()
            .filter(|ra| {
                principals
                    .iter()
                    .any(|p| ra.principal.eq_ignore_ascii_case(p))
                    && ra.is_effective(now)
                    && self.scope_contains(&ra.scope, resource)
                    && self
                        .role(&ra.role)
                        .is_some_and(|rd| role_grants(&rd.actions, &rd.not_actions, action))
            })
            .collect()
    }

    /// The actions and not-actions of every effective assignment that applies to `resource`,
    /// one entry per assignment, as the `permissions` endpoint reports them.
    pub fn permissions(&self, principal: &str, resource: &str, now: DateTime<Utc>) -> Vec<Value> {
        self.permissions_any(&[principal.to_string()], resource, now)
    }

    /// [`World::permissions`] for a caller with several principals (its groups).
    pub fn permissions_any(
        &self,
        principals: &[String],
        resource: &str,
        now: DateTime<Utc>,
    ) -> Vec<Value> {
        self.role_assignments
            .iter()
            .filter(|ra| {
                principals
                    .iter()
                    .any(|p| ra.principal.eq_ignore_ascii_case(p))
                    && ra.is_effective(now)
                    && self.scope_contains(&ra.scope, resource)
            })
            .filter_map(|ra| self.role(&ra.role))
            .map(|rd| {
                json!({
                    "actions": rd.actions,
                    "notActions": rd.not_actions,
                    "dataActions": rd.data_actions,
                    "notDataActions": rd.not_data_actions,
                })
            })
            .collect()
    }

    /// The policy that governs `role` at `scope`: the one assigned at the nearest scope at or
    /// above it (management groups included), or the organisation default when none is.
    pub fn policy_for(&self, role: &str, scope: &str) -> Option<&RolePolicy> {
        let ancestors = self.scope_ancestors(scope);
        self.policies
            .iter()
            .filter(|p| p.role.eq_ignore_ascii_case(role))
            .filter_map(|p| {
                let at = normalize_scope(&p.scope);
                ancestors
                    .iter()
                    .position(|a| a.eq_ignore_ascii_case(&at))
                    .map(|depth| (depth, p))
            })
            .min_by_key(|(depth, _)| *depth)
            .map(|(_, p)| p)
    }

    /// Lazily applies everything the clock decides: JIT rules taking effect or expiring,
    /// ended activations and timed-out approvals. Called before every read and write.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        let delay = Duration::seconds(self.tenant.jit_activation_delay_secs as i64);
        let mut applied = Vec::new();
        let mut superseded = Vec::new();
        let mut expired = Vec::new();
        for policy in &mut self.jit_policies {
            let (a, r) = policy.apply_initiated(now, delay);
            applied.extend(a);
            superseded.extend(r);
            expired.extend(policy.expire(now));
        }
        for (vm, port) in superseded {
            self.record(
                now,
                "jit.revoked",
                json!({"vm": vm, "port": port, "reason": "NewerRequestInitiated"}),
            );
        }
        for (vm, port) in applied {
            self.record(now, "jit.initiated", json!({"vm": vm, "port": port}));
        }
        for (vm, port) in expired {
            self.record(now, "jit.expired", json!({"vm": vm, "port": port}));
        }
        let ended: Vec<RoleAssignment> = self
            .role_assignments
            .iter()
            .filter(|ra| !ra.is_live(now))
            .cloned()
            .collect();
        self.role_assignments.retain(|ra| ra.is_live(now));
        for ra in ended {
            self.record(
                now,
                "pim.assignment_expired",
                json!({"principal": ra.principal, "role": ra.role, "scope": ra.scope}),
            );
        }
        let mut timed_out = Vec::new();
        for approval in &mut self.approvals {
            if now >= approval.expires {
                for stage in &mut approval.stages {
                    if stage.review_result == "NotReviewed" && stage.status != "Expired" {
                        stage.status = "Expired".into();
                        timed_out.push(approval.request.clone());
                    }
                }
            }
        }
        for name in timed_out {
            if let Some(req) = self
                .requests
                .iter_mut()
                .find(|r| r.name == name && r.status == PENDING)
            {
                req.status = "TimedOut".into();
                let request = req.name.clone();
                self.record(now, "pim.request_timed_out", json!({"request": request}));
            }
        }
        self.tick_groups(now);
    }

    /// Revokes every refresh and access token of a user, as a password reset or an admin's
    /// "revoke sessions" does.
    pub fn revoke_user(&mut self, oid: &str) {
        for rt in self.refresh_tokens.values_mut() {
            if rt.oid.eq_ignore_ascii_case(oid) {
                rt.revoked = true;
            }
        }
        if let Some(ids) = self.issued_tokens.get(oid) {
            self.revoked_tokens.extend(ids.iter().cloned());
        }
    }
}

fn default_location() -> String {
    "westeurope".into()
}

/// Replaces `{sub}` and `{subN}` (1-based) with the fixture's subscription ids.
fn expand_subscriptions(text: &str, fixture: &Fixture) -> String {
    let mut out = text.replace("{sub}", &fixture.subscriptions[0].id);
    for (i, s) in fixture.subscriptions.iter().enumerate() {
        out = out.replace(&format!("{{sub{}}}", i + 1), &s.id);
    }
    out
}

/// The `AuthenticationContext_EndUser_Assignment` rule: activation needs a token whose
/// `acrs` claim holds `claim_value`.
pub fn authentication_context_rule(enabled: bool, claim_value: &str) -> Value {
    json!({
        "id": "AuthenticationContext_EndUser_Assignment",
        "ruleType": "RoleManagementPolicyAuthenticationContextRule",
        "target": {"caller": "EndUser", "operations": ["All"], "level": "Assignment",
                   "targetObjects": null, "inheritableSettings": null, "enforcedSettings": null},
        "isEnabled": enabled,
        "claimValue": claim_value,
    })
}

pub fn new_guid() -> String {
    Uuid::new_v4().to_string()
}

/// A GUID that is the same on every run for the same input, for ids that fixtures imply.
pub fn stable_guid(seed: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The rule set of a role management policy, in the shape ARM returns.
pub fn policy_rules(
    approval_required: bool,
    approvers: Vec<Value>,
    approver_justification_required: bool,
    timeout_days: u32,
    enabled: &[&str],
    max_duration: &str,
) -> Vec<Value> {
    let target = |caller: &str, level: &str| {
        json!({"caller": caller, "operations": ["All"], "level": level,
               "targetObjects": null, "inheritableSettings": null, "enforcedSettings": null})
    };
    vec![
        json!({
            "id": "Approval_EndUser_Assignment",
            "ruleType": "RoleManagementPolicyApprovalRule",
            "target": target("EndUser", "Assignment"),
            "setting": {
                "isApprovalRequired": approval_required,
                "isApprovalRequiredForExtension": false,
                "isRequestorJustificationRequired": enabled.contains(&"Justification"),
                "approvalMode": if approval_required { "SingleStage" } else { "NoApproval" },
                "approvalStages": [{
                    "approvalStageTimeOutInDays": timeout_days,
                    "isApproverJustificationRequired": approver_justification_required,
                    "escalationTimeInMinutes": 0,
                    "primaryApprovers": approvers,
                    "isEscalationEnabled": false,
                    "escalationApprovers": null
                }]
            }
        }),
        json!({
            "id": "Enablement_EndUser_Assignment",
            "ruleType": "RoleManagementPolicyEnablementRule",
            "target": target("EndUser", "Assignment"),
            "enabledRules": enabled,
        }),
        json!({
            "id": "Expiration_EndUser_Assignment",
            "ruleType": "RoleManagementPolicyExpirationRule",
            "target": target("EndUser", "Assignment"),
            "isExpirationRequired": true,
            "maximumDuration": max_duration,
        }),
        json!({
            "id": "Expiration_Admin_Eligibility",
            "ruleType": "RoleManagementPolicyExpirationRule",
            "target": target("Admin", "Eligibility"),
            "isExpirationRequired": false,
            "maximumDuration": "P365D",
        }),
        json!({
            "id": "Notification_Approver_EndUser_Assignment",
            "ruleType": "RoleManagementPolicyNotificationRule",
            "target": target("EndUser", "Assignment"),
            "notificationType": "Email",
            "recipientType": "Approver",
            "notificationLevel": "All",
            "notificationRecipients": null,
            "isDefaultRecipientsEnabled": true
        }),
    ]
}

fn builtin_roles(now: DateTime<Utc>) -> Vec<RoleDefinition> {
    let role =
        |guid: &str, name: &str, description: &str, actions: &[&str], not_actions: &[&str]| {
            RoleDefinition {
                guid: guid.into(),
                name: name.into(),
                description: description.into(),
                role_type: "BuiltInRole".into(),
                assignable_scopes: vec!["/".into()],
                actions: actions.iter().map(|s| s.to_string()).collect(),
                not_actions: not_actions.iter().map(|s| s.to_string()).collect(),
                data_actions: Vec::new(),
                not_data_actions: Vec::new(),
                created_on: now,
            }
        };
    vec![
        role(OWNER, "Owner", "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.", &["*"], &[]),
        role(
            CONTRIBUTOR,
            "Contributor",
            "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
            &["*"],
            &["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write", "Microsoft.Authorization/elevateAccess/Action"],
        ),
        role(READER, "Reader", "View all resources, but does not allow you to make any changes.", &["*/read"], &[]),
    ]
}
