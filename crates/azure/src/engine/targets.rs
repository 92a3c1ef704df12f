//! Where the jump boxes are: the subscriptions to look in, the VMs with a JIT policy the
//! person can read, and one VM by resource id or by a name only one VM has.

use chrono::Duration;
use jumpgate_core::events::Elevation;
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::policy::{self, JIT_INITIATE};
use serde::Serialize;

use super::*;
use crate::access::{self, HeldRole, SeenTarget};
use crate::arm::{self, Target};

/// What a person who can read no jump box yet could reach, and how: the usual state of a
/// requester without standing access, whose policies become readable once a role is active.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reachable {
    /// Each role or group membership they may activate.
    pub ways: Vec<Reach>,
    /// Jump boxes they could read before, newest first: not checked now.
    pub recent: Vec<SeenTarget>,
    /// Why group memberships are missing, if they are.
    pub groups_note: Option<String>,
}

/// One role or group membership, where it applies, and how to activate it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize)]
pub struct Reach {
    pub kind: Elevation,
    /// The role's or the group's name.
    pub name: String,
    /// Where it applies: the role's scope; for a group, the scopes of the roles it was seen
    /// to hold (none when not known yet).
    pub scopes: Vec<ScopeName>,
    /// For a group: the Azure roles it was seen to hold, while the membership was active.
    pub holds: Vec<HeldRole>,
    /// The command that activates it.
    pub activate: String,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize)]
pub struct ScopeName {
    pub scope: String,
    /// As people know it: the subscription's or management group's display name, the
    /// resource group's name.
    pub name: String,
}

impl Engine {
    /// The configured subscription, or the first one the user can see (the admin commands
    /// work in one subscription).
    pub async fn subscription(&self) -> Result<String, Failure> {
        if let Some(s) = &self.config.azure.subscription_id {
            return Ok(s.clone());
        }
        let subs = arm::subscriptions(&self.arm).await?;
        subs.into_iter().next().ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "no_subscription",
                "You can see no Azure subscription: ask for access, or set azure.subscription_id.",
            )
        })
    }

    /// The subscriptions to look for jump boxes in: the configured one; otherwise every one
    /// the user can see, and every one holding a role they are eligible for or hold, since a
    /// requester sees no subscription before a role is active.
    pub async fn subscriptions(&self) -> Result<Vec<String>, Failure> {
        if let Some(s) = &self.config.azure.subscription_id {
            return Ok(vec![s.clone()]);
        }
        let (visible, eligible, active) = tokio::join!(
            self.visible_subscriptions(),
            arm::eligible_roles(&self.arm),
            arm::active_roles(&self.arm),
        );
        let visible = visible?.into_iter().map(|s| s.id).collect();
        Ok(self.subscriptions_of(visible, &eligible?, &active?))
    }

    /// The subscriptions the user can see, with their display names: the configured one
    /// (whose name is not read), or ARM's list.
    pub async fn visible_subscriptions(&self) -> Result<Vec<arm::Subscription>, Failure> {
        match &self.config.azure.subscription_id {
            Some(s) => Ok(vec![arm::Subscription {
                id: s.clone(),
                name: String::new(),
            }]),
            None => Ok(arm::named_subscriptions(&self.arm).await?),
        }
    }

    /// [`Engine::subscriptions`] from reads made already: the visible subscriptions, and the
    /// user's eligibilities and roles (the tray's snapshot reads them for itself anyway).
    pub fn subscriptions_of(
        &self,
        visible: Vec<String>,
        eligible: &[arm::Eligible],
        active: &[arm::Active],
    ) -> Vec<String> {
        if let Some(s) = &self.config.azure.subscription_id {
            return vec![s.clone()];
        }
        let scopes = eligible
            .iter()
            .map(|e| e.scope.as_str())
            .chain(active.iter().map(|a| a.scope.as_str()));
        let learned = access::read(&self.state_dir);
        let held: Vec<String> = learned
            .groups
            .values()
            .flat_map(|g| g.roles.iter().map(|r| r.scope.clone()))
            .collect();
        let scopes = scopes.chain(held.iter().map(String::as_str));
        let mut subs = visible;
        for scope in scopes {
            if let Some(sub) = policy::subscription_of(scope) {
                if !subs.iter().any(|s| s.eq_ignore_ascii_case(sub)) {
                    subs.push(sub.to_string());
                }
            }
        }
        subs
    }

    /// Every VM with a JIT policy the user can read, across [`Engine::subscriptions`]. A
    /// subscription whose policies the user may not read (yet) is skipped, not an error.
    pub async fn targets(&self) -> Result<Vec<Target>, Failure> {
        let subs = self.subscriptions().await?;
        self.targets_in(&subs).await
    }

    /// Every VM with a JIT policy the user can read in these subscriptions; one the user may
    /// not read (yet) is skipped.
    /// not read (yet) is skipped. What is read is remembered, so that later, when none can be
    /// read, they can still be named ([`Engine::reachable`]).
    pub async fn targets_in(&self, subs: &[String]) -> Result<Vec<Target>, Failure> {
        let mut all = Vec::new();
        for sub in subs {
            match arm::targets(&self.arm, sub).await {
                Ok(found) => all.extend(found),
                Err(e) if is_refusal(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !all.is_empty() {
            let now = self.arm.clock.now();
            let seen = all.iter().map(|t| (t.vm.clone(), t.vm_id.clone()));
            if let Err(e) = access::update(&self.state_dir, |l| l.saw(seen, now)) {
                self.progress(&format!("could not note the jump boxes seen ({e})"));
            }
        }
        Ok(all)
    }

    /// What the person could reach, and how, when they can read no jump box: each role and
    /// group membership they may activate, where it applies, and the jump boxes seen before.
    pub async fn reachable(&self) -> Result<Reachable, Failure> {
        let learned = access::read(&self.state_dir);
        let mut ways = Vec::new();
        for e in self.eligibilities().await? {
            let quoted = shell_word(&e.role);
            let reach = match e.kind {
                // A directory role opens no jump box.
                Elevation::EntraRole => continue,
                Elevation::Role => Reach {
                    kind: e.kind,
                    activate: format!(
                        "jumpgate activate {quoted} --scope {} --justification '…'",
                        shell_word(&e.scope)
                    ),
                    scopes: vec![ScopeName {
                        name: if e.scope_name.is_empty() {
                            short_scope(&e.scope).to_string()
                        } else {
                            e.scope_name.clone()
                        },
                        scope: e.scope.clone(),
                    }],
                    holds: Vec::new(),
                    name: e.role,
                },
                Elevation::Group => {
                    let holds = learned
                        .roles_of(&e.scope)
                        .map(|g| g.roles.clone())
                        .unwrap_or_default();
                    Reach {
                        kind: e.kind,
                        activate: format!("jumpgate activate group:{quoted} --justification '…'"),
                        scopes: holds
                            .iter()
                            .map(|h| ScopeName {
                                scope: h.scope.clone(),
                                name: short_scope(&h.scope).to_string(),
                            })
                            .collect(),
                        holds,
                        name: e.role,
                    }
                }
            };
            ways.push(reach);
        }
        Ok(Reachable {
            ways,
            recent: learned.seen_targets,
            groups_note: self.groups_note(),
        })
    }

    /// Whether the user could open a port on one of `targets` without a PIM role: ARM's
    /// permissions at their resource groups (the first [`STANDING_CHECK_GROUPS`] distinct
    /// ones, read at once) grant JIT initiate already, as an Owner's do. A group the user may
    /// not read answers no. The answer is kept for [`STANDING_FRESH_MINUTES`] for the same
    /// account `oid` and groups, so a snapshot does not read them again; a failed read is
    /// not kept.
    pub async fn standing_jit(&self, oid: &str, targets: &[Target]) -> Result<bool, Failure> {
        let mut groups: Vec<&str> = Vec::new();
        for t in targets {
            let rg = arm::resource_group_of(&t.vm_id);
            if !groups.iter().any(|g| g.eq_ignore_ascii_case(rg)) {
                groups.push(rg);
            }
        }
        groups.truncate(STANDING_CHECK_GROUPS);
        let mut key: Vec<String> = groups.iter().map(|g| g.to_ascii_lowercase()).collect();
        key.sort();
        // One read at a time: whoever asks meanwhile waits for its answer.
        let mut last = self.standing.0.lock().await;
        let now = self.arm.clock.now();
        if let Some((who, at_groups, at, open)) = last.as_ref() {
            if who.eq_ignore_ascii_case(oid)
                && *at_groups == key
                && now >= *at
                && now - *at < Duration::minutes(STANDING_FRESH_MINUTES)
            {
                return Ok(*open);
            }
        }
        let reads =
            futures::future::join_all(groups.iter().map(|rg| arm::permissions(&self.arm, rg)))
                .await;
        let mut open = false;
        let mut failed = None;
        for read in reads {
            match read {
                Ok(perms) if policy::permits(&perms, JIT_INITIATE) => open = true,
                Ok(_) => {}
                Err(e) if is_refusal(&e) => {}
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        // One group that grants it is enough, whatever another's read did.
        if let (false, Some(e)) = (open, failed) {
            return Err(e.into());
        }
        *last = Some((oid.to_string(), key, now, open));
        Ok(open)
    }

    /// The VM's JIT target, named by resource id or by name. A name that two VMs share is
    /// refused with both ids, so no port is ever opened on a VM the user did not pick. A
    /// resource id whose policy the user may not read yet answers [`Located::Unreadable`].
    pub async fn locate(&self, vm: &str) -> Result<Located, Failure> {
        if vm.starts_with('/') {
            let id = policy::vm_resource_id(vm).ok_or_else(|| {
                Failure::usage(format!(
                    "'{vm}' is not a VM resource id: it looks like /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>"
                ))
            })?;
            // Read at the VM's resource group: a requester whose role holds only there may
            // read nothing at the subscription, and the group's list is the smaller one.
            return match arm::targets_at(&self.arm, arm::resource_group_of(id)).await {
                Ok(found) => found
                    .into_iter()
                    .find(|t| t.vm_id.eq_ignore_ascii_case(id))
                    .map(Located::Target)
                    .ok_or_else(|| {
                        Failure::new(
                            Kind::NotFound,
                            "no_target",
                            format!(
                                "No JIT policy covers {id}: ask an admin to enable JIT for it."
                            ),
                        )
                    }),
                Err(e) if is_refusal(&e) => Ok(Located::Unreadable {
                    vm_id: id.to_string(),
                }),
                Err(e) => Err(e.into()),
            };
        }
        let all = self.targets().await?;
        let matches: Vec<&Target> = all
            .iter()
            .filter(|t| t.vm.eq_ignore_ascii_case(vm))
            .collect();
        match matches.as_slice() {
            [one] => Ok(Located::Target((*one).clone())),
            [] => {
                let mut names: Vec<&str> = all.iter().map(|t| t.vm.as_str()).collect();
                names.dedup();
                Err(Failure::new(
                    Kind::NotFound,
                    "no_target",
                    format!(
                        "No JIT policy you can read covers a VM named '{vm}'. Known: {}. Before a role is active you may be able to read none: name the VM by its resource id (/subscriptions/…/virtualMachines/{vm}).",
                        if names.is_empty() { "none".into() } else { names.join(", ") }
                    ),
                ))
            }
            several => Err(Failure::usage(format!(
                "{} VMs are named '{vm}'; name the one you mean by its resource id: {}",
                several.len(),
                several
                    .iter()
                    .map(|t| t.vm_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// [`Engine::locate`] for a VM whose policy must be readable now.
    pub async fn find_target(&self, vm: &str) -> Result<Target, Failure> {
        match self.locate(vm).await? {
            Located::Target(t) => Ok(t),
            Located::Unreadable { vm_id } => Err(Failure::new(
                Kind::Denied,
                "policy_unreadable",
                format!("You may not read the JIT policy of {vm_id} yet: connect activates the role that allows it, or activate it with jumpgate activate."),
            )),
        }
    }
}

/// A word as a POSIX shell reads it back: bare when it holds only safe characters, otherwise
/// in single quotes (text from a server, quoted for a command the person copies).
fn shell_word(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c));
    if safe {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_for_a_shell() {
        assert_eq!(shell_word("rg-jumpboxes"), "rg-jumpboxes");
        assert_eq!(shell_word("JIT Requester"), "'JIT Requester'");
        assert_eq!(shell_word("Operator's JIT"), "'Operator'\\''s JIT'");
        assert_eq!(shell_word("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(shell_word(""), "''");
    }
}
