//! How a person gets the right to open JIT on a VM: the eligibilities that reach it, and the
//! one to use (least privilege first, RELIABILITY #28).

use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::policy::{self, JIT_INITIATE};

use super::*;
use crate::arm::{self, Eligible};

impl Engine {
    /// The role to activate for JIT on a VM (RELIABILITY #28): an eligibility whose scope
    /// contains the VM and whose role grants JIT initiate with the fewest other rights. A
    /// role that reaches JIT only through a wildcard (Contributor, Owner) is chosen only when
    /// nothing narrower exists, and then only when `allow_broad` says the user agreed. A role
    /// definition that cannot be read is skipped, not fatal.
    pub async fn jit_role_for(&self, vm_id: &str, allow_broad: bool) -> Result<Eligible, Failure> {
        let mut ranked: Vec<(policy::Breadth, usize, Eligible)> = Vec::new();
        let mut unreadable: Vec<String> = Vec::new();
        for e in arm::eligible_roles(&self.arm).await? {
            if !policy::scope_contains(&e.scope, vm_id) {
                continue;
            }
            let perms = match self.role_definition(&e).await {
                Ok(v) => v["properties"]["permissions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                Err(_) => {
                    unreadable.push(format!("{} at {}", e.role, e.scope));
                    continue;
                }
            };
            if let Some(b) = policy::breadth(&perms, JIT_INITIATE) {
                // Among equals, the narrower scope.
                let depth = usize::MAX - e.scope.matches('/').count();
                ranked.push((b, depth, e));
            }
        }
        ranked.sort_by_key(|a| (a.0, a.1));
        let Some((breadth, _, best)) = ranked.into_iter().next() else {
            return Err(Failure::new(
                Kind::Denied,
                "no_jit_role",
                format!(
                    "No PIM role you are eligible for at a scope holding {vm_id} grants JIT access: ask your admin for the JIT requester role there.{}",
                    if unreadable.is_empty() {
                        String::new()
                    } else {
                        format!(" (Could not read: {}.)", unreadable.join("; "))
                    }
                ),
            ));
        };
        if breadth.wildcard && !allow_broad {
            return Err(Failure::new(
                Kind::Policy,
                "broad_role",
                format!(
                    "The only role you are eligible for that opens JIT on {} is {} at {}, which grants much more than JIT (it reaches it through a wildcard). Confirm with --allow-broad-role to activate it, or ask your admin for the JIT requester role.",
                    arm::leaf(vm_id),
                    best.role,
                    best.scope
                ),
            ));
        }
        Ok(best)
    }

    /// The eligible role whose definition grants JIT initiate, for a user who has not named a
    /// VM (doctor with no VM): the narrowest, wherever it applies.
    pub async fn jit_role(&self) -> Result<Eligible, Failure> {
        let mut best: Option<(policy::Breadth, Eligible)> = None;
        for e in arm::eligible_roles(&self.arm).await? {
            let Ok(v) = self.role_definition(&e).await else {
                continue;
            };
            let perms = v["properties"]["permissions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(b) = policy::breadth(&perms, JIT_INITIATE) {
                if best.as_ref().is_none_or(|(current, _)| b < *current) {
                    best = Some((b, e));
                }
            }
        }
        best.map(|(_, e)| e).ok_or_else(|| Failure::new(Kind::Denied, "no_jit_role", "You cannot open JIT access and no PIM role you are eligible for grants it: ask your admin for the JIT requester role."))
    }

    /// A role's definition, read at the scope the user is eligible at: a user who can read only
    /// a resource group cannot read definitions at the subscription.
    pub async fn role_definition(&self, e: &Eligible) -> Result<serde_json::Value, Failure> {
        Ok(self
            .arm
            .get(&format!(
                "{}/providers/Microsoft.Authorization/roleDefinitions/{}?api-version=2022-04-01",
                e.scope,
                arm::leaf(&e.role_definition_id)
            ))
            .await?)
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
}

pub fn pick_role(
    eligible: Vec<Eligible>,
    role: &str,
    scope: Option<&str>,
) -> Result<Eligible, Failure> {
    let matches: Vec<Eligible> = eligible
        .into_iter()
        .filter(|e| {
            e.role.eq_ignore_ascii_case(role)
                || arm::leaf(&e.role_definition_id).eq_ignore_ascii_case(arm::leaf(role))
        })
        .filter(|e| scope.is_none_or(|s| e.scope.eq_ignore_ascii_case(s.trim_end_matches('/'))))
        .collect();
    match matches.len() {
        0 => Err(Failure::new(
            Kind::NotFound,
            "not_eligible",
            format!(
                "You are not eligible for a role named '{role}'{}: see jumpgate roles.",
                scope.map(|s| format!(" at {s}")).unwrap_or_default()
            ),
        )),
        1 => Ok(matches.into_iter().next().expect("one")),
        _ => Err(Failure::usage(format!(
            "You are eligible for '{role}' at several scopes; choose one with --scope: {}",
            matches
                .iter()
                .map(|m| m.scope.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
