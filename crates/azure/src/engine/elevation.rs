//! How a person gets access: the one notion every operation shares.
//!
//! PIM activates two kinds of thing, Azure roles (ARM) and group memberships (PIM for Groups,
//! Microsoft Graph), read here side by side into the same types (`kind` tells them apart).
//! A [`Way`] is one of them seen from a jump box: what to activate, and the Azure role it
//! brings there. `connect`, `roles`, the watcher and the tray all start from these lists.

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use jumpgate_core::events::Elevation;
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::policy::{self, Breadth, JIT_INITIATE};
use serde::Serialize;

use super::*;
use crate::access::{self, HeldRole};
use crate::arm::{self, Active, Eligible, Request};
use crate::{directory, groups};

/// How long a refusal of Microsoft Graph (no consent, no permission) keeps group memberships
/// out of the lists before Graph is asked again: the tray's snapshot would otherwise ask
/// every few seconds for what the organisation has not granted.
const GROUPS_REFUSED_MINUTES: i64 = 15;

/// Why group memberships are missing from the lists, and since when (ARM's clock).
#[derive(Debug, Default)]
pub(super) struct GroupsRefused(std::sync::Mutex<Option<(DateTime<Utc>, String)>>);

/// One way to come to open JIT on a VM: what to activate, and the Azure role that then
/// grants JIT there.
#[derive(Debug, Clone, Serialize)]
pub struct Way {
    /// What PIM activates: the eligible role itself, or membership of a group.
    pub elevation: Eligible,
    /// The Azure role that opens JIT once the elevation is in effect: the role itself, or the
    /// role the group holds. `None` for a group whose roles are not known yet.
    pub role: Option<String>,
    pub role_definition_id: Option<String>,
    /// Where that role applies.
    pub scope: Option<String>,
    /// How much the role grants besides JIT (least privilege first, RELIABILITY #28); `None`
    /// when its definition could not be read.
    pub breadth: Option<Breadth>,
    /// Whether the role's scope is known to hold the VM. A management group's subscriptions
    /// cannot be listed before access, nor the roles of a group one is not yet a member of:
    /// such a way only may reach the VM, and comes after every way that does.
    pub certain: bool,
    /// A stable name for choosing it (`--via`, a remembered choice): `role:{guid}@{scope}`
    /// or `group:{object id}`.
    pub key: String,
}

impl Way {
    /// In words: "JIT Requester at rg-jumpboxes", "member of JIT Operators (JIT Requester at
    /// rg-jumpboxes)", "member of JIT Operators (what it grants is not known yet)".
    pub fn label(&self) -> String {
        match self.elevation.kind {
            Elevation::Role => format!(
                "{} at {}",
                self.elevation.role,
                short_scope(&self.elevation.scope)
            ),
            Elevation::Group => match (&self.role, &self.scope) {
                (Some(role), Some(scope)) => format!(
                    "member of {} ({role} at {})",
                    self.elevation.role,
                    short_scope(scope)
                ),
                _ => format!(
                    "member of {} (what it grants is not known until it is active)",
                    self.elevation.role
                ),
            },
            Elevation::EntraRole => format!("Entra role {}", self.elevation.role),
        }
    }

    /// Whether `via`, as a person names a way, names this one: its key, the role's or the
    /// group's name (`group:NAME`, `role:NAME` to be plain), or the group's id.
    pub fn named(&self, via: &str) -> bool {
        let via = via.trim();
        let (kind, name) = Elevation::split_name(via);
        self.key.eq_ignore_ascii_case(via)
            || (kind.is_none_or(|k| k == self.elevation.kind)
                && (self.elevation.role.eq_ignore_ascii_case(name)
                    || self.elevation.scope.eq_ignore_ascii_case(name)))
    }

    /// The order ways are tried in: certain first, then least privileged (an unreadable
    /// definition last), then the narrower scope.
    fn rank(&self) -> (bool, bool, Option<Breadth>, usize) {
        let depth = self
            .scope
            .as_deref()
            .map(|s| usize::MAX - s.matches('/').count())
            .unwrap_or(usize::MAX);
        (!self.certain, self.breadth.is_none(), self.breadth, depth)
    }
}

/// The last part of a scope, as people name it: `rg-jumpboxes`, a subscription's id, a
/// management group's name.
pub fn short_scope(scope: &str) -> &str {
    scope
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(scope)
}

fn is_management_group(scope: &str) -> bool {
    scope
        .to_ascii_lowercase()
        .starts_with("/providers/microsoft.management/managementgroups/")
}

impl Engine {
    /// Every eligibility: Azure roles, group memberships and Entra roles side by side. What
    /// Microsoft Graph cannot tell (not consented, no permission, Graph down) leaves the
    /// Azure roles, with the reason in [`Engine::groups_note`].
    pub async fn eligibilities(&self) -> Result<Vec<Eligible>, Failure> {
        let (roles, groups, entra) = tokio::join!(
            arm::eligible_roles(&self.arm),
            self.group_read(groups::eligible(&self.graph)),
            self.pim_read(Elevation::EntraRole, directory::eligible(&self.graph_roles))
        );
        let mut all = roles?;
        all.extend(groups);
        all.extend(entra);
        Ok(all)
    }

    /// Every eligibility, as [`Engine::eligibilities`], and whether group memberships were
    /// read: `None` for them when groups are switched off or Graph did not answer, so that
    /// their absence is not taken for none.
    pub async fn eligibilities_known(
        &self,
    ) -> Result<(Vec<Eligible>, Option<Vec<Eligible>>, Option<Vec<Eligible>>), Failure> {
        let groups = async {
            if !self.config.access.groups {
                return None;
            }
            groups::eligible(&self.graph).await.ok()
        };
        let entra = async {
            if !self.config.access.entra_roles {
                return None;
            }
            directory::eligible(&self.graph_roles).await.ok()
        };
        let (roles, groups, entra) = tokio::join!(arm::eligible_roles(&self.arm), groups, entra);
        Ok((roles?, groups, entra))
    }

    /// What is in force for the person: Azure role assignments (their own, and those held by
    /// groups they are a member of, as ARM lists them) and group memberships. What a group was
    /// seen to hold is learned for later (`access.json`).
    pub async fn active(&self) -> Result<Vec<Active>, Failure> {
        let (roles, groups, entra) = tokio::join!(
            arm::active_roles(&self.arm),
            self.group_read(groups::active(&self.graph)),
            self.pim_read(Elevation::EntraRole, directory::active(&self.graph_roles))
        );
        let roles = roles?;
        self.learn_group_roles(&roles, &groups);
        let mut all = roles;
        all.extend(groups);
        all.extend(entra);
        Ok(all)
    }

    /// The person's own requests, for roles, group memberships and Entra roles.
    pub async fn my_requests(&self) -> Result<Vec<Request>, Failure> {
        let (roles, groups, entra) = tokio::join!(
            arm::list_requests(&self.arm, "asRequestor()"),
            self.group_read(groups::my_requests(&self.graph)),
            self.pim_read(
                Elevation::EntraRole,
                directory::my_requests(&self.graph_roles)
            )
        );
        let mut all = roles?;
        all.extend(groups);
        all.extend(entra);
        Ok(all)
    }

    /// A request by name, from the API its kind lives in.
    pub async fn request(
        &self,
        kind: Elevation,
        scope: &str,
        name: &str,
    ) -> Result<Request, Failure> {
        Ok(match kind {
            Elevation::Role => arm::get_request(&self.arm, scope, name).await?,
            Elevation::Group => groups::get_request(&self.graph, name).await?,
            Elevation::EntraRole => directory::get_request(&self.graph_roles, name).await?,
        })
    }

    /// Why group memberships or Entra roles are left out of the lists, if they are.
    pub fn groups_note(&self) -> Option<String> {
        let notes: Vec<String> = [Elevation::Group, Elevation::EntraRole]
            .into_iter()
            .filter(|k| self.reads(*k))
            .filter_map(|k| {
                self.refused(k)
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .map(|(_, why)| why.clone())
            })
            .collect();
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    /// Whether Microsoft Graph is asked about this kind at all (`[access]`).
    fn reads(&self, kind: Elevation) -> bool {
        match kind {
            Elevation::Role => true,
            Elevation::Group => self.config.access.groups,
            Elevation::EntraRole => self.config.access.entra_roles,
        }
    }

    fn refused(&self, kind: Elevation) -> &GroupsRefused {
        match kind {
            Elevation::EntraRole => &self.roles_refused,
            _ => &self.groups_refused,
        }
    }

    /// A Graph read for groups (see [`Engine::pim_read`]).
    pub(super) async fn group_read<T>(
        &self,
        read: impl Future<Output = Result<Vec<T>, crate::Error>>,
    ) -> Vec<T> {
        self.pim_read(Elevation::Group, read).await
    }

    /// A Graph read for group memberships or Entra roles: its answer, or nothing when that
    /// kind is switched off or Graph refused lately. A refusal (403, no consent) is
    /// remembered for a while and said once; a Graph that cannot be reached is only said.
    pub(super) async fn pim_read<T>(
        &self,
        kind: Elevation,
        read: impl Future<Output = Result<Vec<T>, crate::Error>>,
    ) -> Vec<T> {
        if !self.reads(kind) {
            return Vec::new();
        }
        let memo = self.refused(kind);
        let now = self.arm.clock.now();
        {
            let refused = memo.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, _)) = refused.as_ref() {
                if now >= *at && now - *at < Duration::minutes(GROUPS_REFUSED_MINUTES) {
                    return Vec::new();
                }
            }
        }
        match read.await {
            Ok(items) => {
                *memo.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
                items
            }
            Err(e) => {
                let denied = matches!(e.kind(), Kind::Denied | Kind::SignIn);
                let why = format!(
                    "{} could not be read: {}",
                    match kind {
                        Elevation::EntraRole => "Entra roles (PIM for Microsoft Entra roles)",
                        _ => "group memberships (PIM for Groups)",
                    },
                    Failure::from(e).explanation.message
                );
                let mut refused = memo.0.lock().unwrap_or_else(|p| p.into_inner());
                let new = refused.as_ref().is_none_or(|(_, w)| *w != why);
                if denied {
                    *refused = Some((now, why.clone()));
                }
                drop(refused);
                // Entra roles are an addition to the way to a jump box: an organisation that
                // has not granted them hears of it in `roles` and `doctor`, not on every run.
                if new && !(denied && kind == Elevation::EntraRole) {
                    self.progress(&why);
                }
                Vec::new()
            }
        }
    }

    /// Keeps what ARM shows groups holding for their members (assignments whose principal is
    /// a group the person is an active member of), so the ways through a group are known
    /// once it has been active.
    fn learn_group_roles(&self, roles: &[Active], groups: &[Active]) {
        let now = self.arm.clock.now();
        let mut held: Vec<(String, String, Vec<HeldRole>)> = Vec::new();
        for r in roles
            .iter()
            .filter(|r| r.principal_type.eq_ignore_ascii_case("Group"))
        {
            let name = groups
                .iter()
                .find(|g| g.scope.eq_ignore_ascii_case(&r.principal_id))
                .map(|g| g.role.clone())
                .unwrap_or_else(|| r.principal_name.clone());
            let role = HeldRole {
                role: r.role.clone(),
                role_definition_id: r.role_definition_id.clone(),
                scope: r.scope.clone(),
            };
            match held
                .iter_mut()
                .find(|(id, _, _)| id.eq_ignore_ascii_case(&r.principal_id))
            {
                Some((_, _, list)) => list.push(role),
                None => held.push((r.principal_id.clone(), name, vec![role])),
            }
        }
        if held.is_empty() {
            return;
        }
        if let Err(e) = access::update(&self.state_dir, |l| {
            for (id, name, list) in held {
                l.group_holds(&id, &name, list, now);
            }
        }) {
            self.progress(&format!("could not note what your groups hold ({e})"));
        }
    }

    /// A role's definition, read at the scope the user is eligible at: a user who can read only
    /// a resource group cannot read definitions at the subscription.
    pub async fn role_definition(&self, e: &Eligible) -> Result<serde_json::Value, Failure> {
        self.role_definition_at(&e.scope, &e.role_definition_id)
            .await
    }

    async fn role_definition_at(
        &self,
        scope: &str,
        role_definition_id: &str,
    ) -> Result<serde_json::Value, Failure> {
        Ok(self
            .arm
            .get(&format!(
                "{scope}/providers/Microsoft.Authorization/roleDefinitions/{}?api-version={}",
                arm::leaf(role_definition_id),
                arm::PERMISSIONS
            ))
            .await?)
    }

    /// How much a role grants besides JIT initiate, if it grants JIT at all; `Err` when its
    /// definition cannot be read.
    async fn jit_breadth(
        &self,
        scope: &str,
        role_definition_id: &str,
    ) -> Result<Option<Breadth>, Failure> {
        let v = self.role_definition_at(scope, role_definition_id).await?;
        let perms = v["properties"]["permissions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(policy::breadth(&perms, JIT_INITIATE))
    }

    /// An action the role grants that we can test for: its first one without a wildcard.
    pub async fn probe_action(&self, e: &Eligible) -> Option<String> {
        let v = self.role_definition(e).await.ok()?;
        v["properties"]["permissions"][0]["actions"]
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str())
            .find(|a| !a.contains('*'))
            .map(str::to_string)
    }

    /// What a group holds that may reach `at` (a VM's resource group): read from ARM's role
    /// assignments where the person may read them, else what was seen while the membership
    /// was active. `None` when neither says.
    async fn group_roles(&self, group: &Eligible, at: &str) -> Option<Vec<HeldRole>> {
        match arm::role_assignments_of(&self.arm, at, &group.scope).await {
            Ok(found) => {
                let mut roles = Vec::new();
                for (role_definition_id, scope) in found {
                    let role = match self.role_definition_at(&scope, &role_definition_id).await {
                        Ok(v) => arm::s(&v, "/properties/roleName"),
                        Err(_) => arm::leaf(&role_definition_id).to_string(),
                    };
                    roles.push(HeldRole {
                        role,
                        role_definition_id,
                        scope,
                    });
                }
                Some(roles)
            }
            Err(_) => access::read(&self.state_dir)
                .roles_of(&group.scope)
                .map(|g| g.roles.clone()),
        }
    }

    /// Every way to open JIT on the VM `vm_id`, best first: eligible Azure roles whose scope
    /// holds it (or may: a management group), and eligible group memberships whose group
    /// holds such a role (or whose roles are not known yet). A role definition that cannot
    /// be read is kept, ranked last, not fatal.
    pub async fn ways_to(&self, vm_id: &str) -> Result<Vec<Way>, Failure> {
        let rg = arm::resource_group_of(vm_id).to_string();
        let mut ways: Vec<Way> = Vec::new();
        for e in self.eligibilities().await? {
            match e.kind {
                // A directory role opens no jump box.
                Elevation::EntraRole => continue,
                Elevation::Role => {
                    let certain = policy::scope_contains(&e.scope, vm_id);
                    if !certain && !is_management_group(&e.scope) {
                        continue;
                    }
                    let breadth = match self.jit_breadth(&e.scope, &e.role_definition_id).await {
                        Ok(None) => continue,
                        Ok(b) => b,
                        Err(_) => None,
                    };
                    ways.push(Way {
                        key: format!("role:{}@{}", arm::leaf(&e.role_definition_id), e.scope)
                            .to_ascii_lowercase(),
                        role: Some(e.role.clone()),
                        role_definition_id: Some(e.role_definition_id.clone()),
                        scope: Some(e.scope.clone()),
                        breadth,
                        certain,
                        elevation: e,
                    });
                }
                Elevation::Group => {
                    let key = format!("group:{}", e.scope).to_ascii_lowercase();
                    let Some(roles) = self.group_roles(&e, &rg).await else {
                        ways.push(Way {
                            key,
                            role: None,
                            role_definition_id: None,
                            scope: None,
                            breadth: None,
                            certain: false,
                            elevation: e,
                        });
                        continue;
                    };
                    // The group's best role here, if it holds one that opens JIT.
                    let mut best: Option<Way> = None;
                    for held in roles {
                        let certain = policy::scope_contains(&held.scope, vm_id);
                        if !certain && !is_management_group(&held.scope) {
                            continue;
                        }
                        let breadth = match self
                            .jit_breadth(&held.scope, &held.role_definition_id)
                            .await
                        {
                            Ok(None) => continue,
                            Ok(b) => b,
                            Err(_) => None,
                        };
                        let way = Way {
                            key: key.clone(),
                            role: Some(held.role),
                            role_definition_id: Some(held.role_definition_id),
                            scope: Some(held.scope),
                            breadth,
                            certain,
                            elevation: e.clone(),
                        };
                        if best.as_ref().is_none_or(|b| way.rank() < b.rank()) {
                            best = Some(way);
                        }
                    }
                    ways.extend(best);
                }
            }
        }
        ways.sort_by_key(Way::rank);
        Ok(ways)
    }

    /// The way to use for JIT on `vm_id`:
    /// - the one `via` names, when given;
    /// - otherwise the best (RELIABILITY #28: least privilege first); when several are best
    ///   alike (a role and a group holding the same role at the same scope), the one chosen
    ///   for this VM before, or the one the configuration's `access.via` names, or else the
    ///   person must choose, and is told how;
    /// - a role that reaches JIT only through a wildcard (Contributor, Owner) only when
    ///   nothing narrower exists and `allow_broad` says the person agreed.
    pub async fn way_for(
        &self,
        vm_id: &str,
        via: Option<&str>,
        allow_broad: bool,
    ) -> Result<Way, Failure> {
        let ways = self.ways_to(vm_id).await?;
        if ways.is_empty() {
            return Err(Failure::new(
                Kind::Denied,
                "no_jit_role",
                format!(
                    "No PIM role or group membership you are eligible for opens JIT on {}: ask your admin for the JIT requester role there, or for membership of a group that holds it.{}",
                    arm::leaf(vm_id),
                    self.groups_note()
                        .map(|n| format!(" (Also: {n}.)"))
                        .unwrap_or_default()
                ),
            ));
        }
        let list = |ways: &[&Way]| {
            ways.iter()
                .map(|w| format!("--via '{}' ({})", via_name(w), w.label()))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let chosen: Way = if let Some(via) = via {
            let named: Vec<&Way> = ways.iter().filter(|w| w.named(via)).collect();
            match named.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(Failure::usage(format!(
                        "No way to {} is named '{via}'. The ways: {}",
                        arm::leaf(vm_id),
                        list(&ways.iter().collect::<Vec<_>>())
                    )))
                }
                several => {
                    return Err(Failure::usage(format!(
                        "'{via}' names several ways to {}: choose one with {}",
                        arm::leaf(vm_id),
                        list(several)
                    )))
                }
            }
        } else {
            let best = ways[0].rank();
            let tied: Vec<&Way> = ways.iter().filter(|w| w.rank() == best).collect::<Vec<_>>();
            let distinct: BTreeSet<&str> = tied.iter().map(|w| w.key.as_str()).collect();
            if distinct.len() == 1 {
                tied[0].clone()
            } else {
                let learned = access::read(&self.state_dir);
                let remembered = learned
                    .chosen_for(vm_id)
                    .and_then(|k| tied.iter().find(|w| w.key == k));
                let configured = self
                    .config
                    .access
                    .via
                    .as_deref()
                    .and_then(|v| tied.iter().find(|w| w.named(v)));
                match remembered.or(configured) {
                    Some(w) => (*w).clone(),
                    None => {
                        return Err(Failure::new(
                            Kind::Conflict,
                            "choose_way",
                            format!(
                                "Several ways reach {} alike: choose one with {} (your choice is remembered).",
                                arm::leaf(vm_id),
                                list(&tied)
                            ),
                        ))
                    }
                }
            }
        };
        if chosen.breadth.is_some_and(|b| b.wildcard) && !allow_broad {
            return Err(Failure::new(
                Kind::Policy,
                "broad_role",
                format!(
                    "The only way you have to open JIT on {} is {}, which grants much more than JIT (it reaches it through a wildcard). Confirm with --allow-broad-role to activate it, or ask your admin for the JIT requester role.",
                    arm::leaf(vm_id),
                    chosen.label()
                ),
            ));
        }
        if ways.len() > 1 && via.is_none() {
            let others: Vec<String> = ways
                .iter()
                .filter(|w| w.key != chosen.key)
                .map(|w| w.label())
                .collect();
            self.progress(&format!(
                "using {}; also possible: {}",
                chosen.label(),
                others.join("; ")
            ));
        }
        Ok(chosen)
    }

    /// Remembers the way the person chose for a VM, for the next time several reach it.
    pub fn remember_way(&self, vm_id: &str, way: &Way) {
        if let Err(e) = access::update(&self.state_dir, |l| l.choose(vm_id, &way.key)) {
            self.progress(&format!("could not remember the way you chose ({e})"));
        }
    }

    /// The eligible role whose definition grants JIT initiate, for a user who has not named a
    /// VM (doctor with no VM): the narrowest, wherever it applies.
    pub async fn jit_role(&self) -> Result<Eligible, Failure> {
        let mut best: Option<(Breadth, Eligible)> = None;
        for e in arm::eligible_roles(&self.arm).await? {
            let Ok(Some(b)) = self.jit_breadth(&e.scope, &e.role_definition_id).await else {
                continue;
            };
            if best.as_ref().is_none_or(|(current, _)| b < *current) {
                best = Some((b, e));
            }
        }
        best.map(|(_, e)| e).ok_or_else(|| Failure::new(Kind::Denied, "no_jit_role", "You cannot open JIT access and no PIM role you are eligible for grants it: ask your admin for the JIT requester role."))
    }
}

/// What a person types for `--via` to name a way: the group's or the role's name, with its
/// kind when a role and a group share it.
pub fn via_name(way: &Way) -> String {
    match way.elevation.kind {
        Elevation::Role => way.elevation.role.clone(),
        kind => format!("{}:{}", kind.prefix(), way.elevation.role),
    }
}

/// The eligibility named `name` (a role's, group's or Entra role's name, or a role
/// definition id, or a group's id), at `scope` when given. A plain name that is both an
/// Azure role's and an Entra role's (Security Reader is both) is the Azure role's, as it was
/// before Entra roles were read: `entra:NAME` names the other.
pub fn pick_role(
    eligible: Vec<Eligible>,
    name: &str,
    scope: Option<&str>,
) -> Result<Eligible, Failure> {
    let (kind, bare) = Elevation::split_name(name);
    let mut matches: Vec<Eligible> = eligible
        .into_iter()
        .filter(|e| kind.is_none_or(|k| k == e.kind))
        .filter(|e| {
            e.role.eq_ignore_ascii_case(bare)
                || match e.kind {
                    Elevation::Role | Elevation::EntraRole => {
                        arm::leaf(&e.role_definition_id).eq_ignore_ascii_case(arm::leaf(bare))
                    }
                    Elevation::Group => e.scope.eq_ignore_ascii_case(bare),
                }
        })
        .filter(|e| {
            scope.is_none_or(|s| {
                e.kind != Elevation::Role || e.scope.eq_ignore_ascii_case(s.trim_end_matches('/'))
            })
        })
        .collect();
    if kind.is_none() && matches.iter().any(|m| m.kind == Elevation::Role) {
        matches.retain(|m| m.kind != Elevation::EntraRole);
    }
    match matches.len() {
        0 => Err(Failure::new(
            Kind::NotFound,
            "not_eligible",
            format!(
                "You are not eligible for a role, group or Entra role named '{name}'{}: see jumpgate roles.",
                scope.map(|s| format!(" at {s}")).unwrap_or_default()
            ),
        )),
        1 => Ok(matches.into_iter().next().expect("one")),
        _ if matches.iter().all(|m| m.kind == Elevation::Role) => Err(Failure::usage(format!(
            "You are eligible for '{name}' at several scopes; choose one with --scope: {}",
            matches
                .iter()
                .map(|m| m.scope.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Err(Failure::usage(format!(
            "'{name}' names more than one kind of thing you are eligible for: say which with role:{name}, group:{name} or entra:{name}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eligible(kind: Elevation, role: &str, scope: &str) -> Eligible {
        Eligible {
            kind,
            role: role.into(),
            role_definition_id: format!("{role}-id"),
            scope: scope.into(),
            scope_name: scope.into(),
            eligibility_schedule_id: String::new(),
            eligible_until: None,
        }
    }

    #[test]
    fn a_name_an_azure_role_and_an_entra_role_share_is_the_azure_roles_unless_prefixed() {
        let both = vec![
            eligible(Elevation::Role, "Security Reader", "/subscriptions/s"),
            eligible(Elevation::EntraRole, "Security Reader", "/"),
            eligible(Elevation::EntraRole, "Global Reader", "/"),
        ];
        let plain = pick_role(both.clone(), "Security Reader", None).expect("one");
        assert_eq!(plain.kind, Elevation::Role);
        let entra = pick_role(both.clone(), "entra:Security Reader", None).expect("one");
        assert_eq!(entra.kind, Elevation::EntraRole);
        // A scope names Azure roles only: it leaves an Entra role alone.
        let global =
            pick_role(both.clone(), "Global Reader", Some("/subscriptions/x")).expect("one");
        assert_eq!(global.kind, Elevation::EntraRole);
        let group = eligible(Elevation::Group, "Security Reader", "g-1");
        let shared = pick_role(vec![both[0].clone(), group], "Security Reader", None)
            .expect_err("a role and a group share it");
        assert!(shared.explanation.message.contains("group:Security Reader"));
        assert!(pick_role(both, "nosuch", None).is_err());
    }
}
