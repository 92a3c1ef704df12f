//! The directory around the resources: management groups above the subscriptions, Entra
//! groups and their PIM for Groups memberships, and the scope containment that both decide.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::{
    expand_subscriptions, stable_guid, Group, GroupEligibility, GroupPolicy, ManagementGroup,
    World, DIRECTORY_ROLE, GROUP_ACCESS,
};
use crate::duration;
use crate::rbac::normalize_scope;
use crate::tenant::{Fixture, FixtureError};

const MG_PREFIX: &str = "/providers/Microsoft.Management/managementGroups/";

/// How deep management groups may nest (Azure allows six levels below the root); anything
/// deeper in a chain is a cycle.
const MAX_DEPTH: usize = 16;

/// The management group a scope names (`/providers/Microsoft.Management/managementGroups/X`),
/// if it names one.
pub fn management_group_name(scope: &str) -> Option<String> {
    let scope = normalize_scope(scope);
    let segs: Vec<&str> = scope.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        [providers, namespace, groups, name]
            if providers.eq_ignore_ascii_case("providers")
                && namespace.eq_ignore_ascii_case("Microsoft.Management")
                && groups.eq_ignore_ascii_case("managementGroups")
                && !name.is_empty() =>
        {
            Some(name.to_string())
        }
        _ => None,
    }
}

/// The scope of a management group.
pub fn management_group_scope(name: &str) -> String {
    format!("{MG_PREFIX}{name}")
}

impl World {
    fn invalid(&self, fixture: &Fixture, message: String) -> FixtureError {
        FixtureError::Invalid {
            path: fixture.tenant.domain.clone(),
            message,
        }
    }

    pub(super) fn load_management_groups(&mut self, fixture: &Fixture) -> Result<(), FixtureError> {
        let root = fixture.tenant.id.clone();
        for mg in &fixture.management_groups {
            if mg.name.trim().is_empty() || mg.name.contains('/') {
                return Err(self.invalid(
                    fixture,
                    format!("management group name {:?} is not a valid id", mg.name),
                ));
            }
            if mg.name.eq_ignore_ascii_case(&root)
                || self
                    .management_groups
                    .iter()
                    .any(|m| m.name.eq_ignore_ascii_case(&mg.name))
            {
                return Err(self.invalid(
                    fixture,
                    format!(
                        "management group {} is defined twice (the tenant root group always exists)",
                        mg.name
                    ),
                ));
            }
            let mut subscriptions = Vec::new();
            for reference in &mg.subscriptions {
                let id = expand_subscriptions(reference, fixture);
                let Some(sub) = self
                    .subscriptions
                    .iter()
                    .find(|s| s.id.eq_ignore_ascii_case(&id))
                else {
                    return Err(self.invalid(
                        fixture,
                        format!(
                            "management group {} names unknown subscription {reference}",
                            mg.name
                        ),
                    ));
                };
                if self
                    .management_groups
                    .iter()
                    .flat_map(|m| &m.subscriptions)
                    .chain(&subscriptions)
                    .any(|s| s.eq_ignore_ascii_case(&sub.id))
                {
                    return Err(self.invalid(
                        fixture,
                        format!("subscription {reference} is placed under two management groups"),
                    ));
                }
                subscriptions.push(sub.id.clone());
            }
            self.management_groups.push(ManagementGroup {
                name: mg.name.clone(),
                display_name: mg.display_name.clone(),
                parent: mg.parent.clone().filter(|p| !p.eq_ignore_ascii_case(&root)),
                subscriptions,
            });
        }
        for mg in &self.management_groups {
            if let Some(parent) = &mg.parent {
                if self.management_group(parent).is_none() {
                    return Err(self.invalid(
                        fixture,
                        format!("management group {} names unknown parent {parent}", mg.name),
                    ));
                }
            }
            let chain = self.management_group_chain(&mg.name);
            if !chain
                .last()
                .is_some_and(|last| last.eq_ignore_ascii_case(&root))
            {
                return Err(self.invalid(
                    fixture,
                    format!(
                        "management group {} does not reach the tenant root group: its parents form a cycle",
                        mg.name
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn load_groups(
        &mut self,
        fixture: &Fixture,
        now: DateTime<Utc>,
    ) -> Result<(), FixtureError> {
        for g in &fixture.groups {
            let id = g.id.to_ascii_lowercase();
            if uuid::Uuid::parse_str(&id).is_err() || id.len() != 36 {
                return Err(self.invalid(
                    fixture,
                    format!("group {} has id {:?}, which is not a GUID", g.name, g.id),
                ));
            }
            let clash =
                self.groups.iter().any(|o| {
                    o.id.eq_ignore_ascii_case(&id) || o.name.eq_ignore_ascii_case(&g.name)
                }) || self.users.iter().any(|u| {
                    u.oid.eq_ignore_ascii_case(&id) || u.upn.eq_ignore_ascii_case(&g.name)
                });
            if clash {
                return Err(self.invalid(
                    fixture,
                    format!(
                        "group {} shares its name or id with another directory object",
                        g.name
                    ),
                ));
            }
            let users = |list: &[String], what: &str| -> Result<Vec<String>, FixtureError> {
                list.iter()
                    .map(|upn| {
                        self.user(upn).map(|u| u.oid.clone()).ok_or_else(|| {
                            self.invalid(
                                fixture,
                                format!("group {} names unknown {what} {upn}", g.name),
                            )
                        })
                    })
                    .collect()
            };
            let members = users(&g.members, "member")?;
            let owners = users(&g.owners, "owner")?;
            let eligible_members = users(&g.eligible_members, "eligible member")?;
            let eligible_owners = users(&g.eligible_owners, "eligible owner")?;
            let length = duration::parse(&g.eligibility_duration).ok_or_else(|| {
                self.invalid(
                    fixture,
                    format!(
                        "group {} eligibility_duration {:?} is not ISO 8601",
                        g.name, g.eligibility_duration
                    ),
                )
            })?;
            for (access, principals) in [("member", eligible_members), ("owner", eligible_owners)] {
                for principal in principals {
                    let seed = format!("group-eligibility:{id}:{access}:{principal}");
                    self.group_eligibilities.push(GroupEligibility {
                        id: format!("{id}_{access}_{}", stable_guid(&format!("{seed}:instance"))),
                        schedule_id: format!("{id}_{access}_{}", stable_guid(&seed)),
                        group: id.clone(),
                        access: access.into(),
                        principal,
                        start: now,
                        end: Some(now + length),
                    });
                }
            }
            self.groups.push(Group {
                id,
                name: g.name.clone(),
                description: g.description.clone(),
                members,
                owners,
            });
        }
        Ok(())
    }

    /// The users' eligibilities for directory roles (PIM for Entra roles), tenant-wide.
    pub(super) fn load_directory_role_eligibilities(
        &mut self,
        fixture: &Fixture,
        now: DateTime<Utc>,
    ) -> Result<(), FixtureError> {
        let length = duration::parse(&crate::tenant::default_eligibility()).unwrap_or_default();
        for u in &fixture.users {
            for role in &u.eligible_directory_roles {
                let (_, id) = crate::tenant::directory_role(role).ok_or_else(|| {
                    self.invalid(fixture, format!("unknown directory role {role}"))
                })?;
                let principal = u.oid.to_ascii_lowercase();
                let seed = format!("role-eligibility:{id}:{principal}");
                self.group_eligibilities.push(GroupEligibility {
                    id: stable_guid(&format!("{seed}:instance")),
                    schedule_id: stable_guid(&seed),
                    group: id.to_string(),
                    access: DIRECTORY_ROLE.into(),
                    principal,
                    start: now,
                    end: Some(now + length),
                });
            }
        }
        Ok(())
    }

    pub(super) fn load_group_policies(&mut self, fixture: &Fixture) -> Result<(), FixtureError> {
        for p in &fixture.group_policies {
            let (group, access) = match &p.role {
                Some(role) if p.group.is_empty() => {
                    let (_, id) = crate::tenant::directory_role(role).ok_or_else(|| {
                        self.invalid(
                            fixture,
                            format!("policy names unknown directory role {role}"),
                        )
                    })?;
                    (id.to_string(), DIRECTORY_ROLE.to_string())
                }
                Some(_) => {
                    return Err(self.invalid(
                        fixture,
                        format!(
                            "policy for group {} also names a role: give one or the other",
                            p.group
                        ),
                    ))
                }
                None => (
                    self.group(&p.group).map(|g| g.id.clone()).ok_or_else(|| {
                        self.invalid(
                            fixture,
                            format!("group policy names unknown group {}", p.group),
                        )
                    })?,
                    p.access.to_ascii_lowercase(),
                ),
            };
            if access != DIRECTORY_ROLE && !GROUP_ACCESS.contains(&access.as_str()) {
                return Err(self.invalid(
                    fixture,
                    format!(
                        "group policy access {:?} is neither member nor owner",
                        p.access
                    ),
                ));
            }
            if self
                .group_policies
                .iter()
                .any(|q| q.group == group && q.access == access)
            {
                return Err(self.invalid(
                    fixture,
                    format!("group {} has two {access} policies", p.group),
                ));
            }
            if duration::parse(&p.max_duration).is_none() {
                return Err(self.invalid(
                    fixture,
                    format!(
                        "group policy max_duration {:?} is not ISO 8601",
                        p.max_duration
                    ),
                ));
            }
            let mut approvers = Vec::new();
            for a in &p.approvers {
                let user = self.user(a).ok_or_else(|| {
                    self.invalid(fixture, format!("group policy names unknown approver {a}"))
                })?;
                approvers.push(user.oid.clone());
            }
            // PIM has no default approvers: approval without any would wait for no one.
            if p.approval_required && approvers.is_empty() {
                return Err(self.invalid(
                    fixture,
                    format!(
                        "policy for {} requires approval but names no approver",
                        p.role.as_deref().unwrap_or(&p.group)
                    ),
                ));
            }
            self.group_policies.push(GroupPolicy {
                approval_required: p.approval_required,
                approvers,
                approver_justification_required: p.approver_justification_required,
                justification_required: p.justification_required,
                ticket_required: p.ticket_required,
                mfa_required: p.mfa_required,
                max_duration: p.max_duration.clone(),
                timeout_days: p.approval_timeout_days.max(1),
                ..GroupPolicy::default_for(&group, &access)
            });
        }
        Ok(())
    }

    pub fn management_group(&self, name: &str) -> Option<&ManagementGroup> {
        self.management_groups
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    }

    /// A management group's display name; the root group's is "Tenant Root Group".
    pub fn management_group_display_name(&self, name: &str) -> Option<String> {
        if name.eq_ignore_ascii_case(&self.tenant.id) {
            return Some("Tenant Root Group".into());
        }
        self.management_group(name).map(|m| m.display_name.clone())
    }

    /// The management groups that hold `name`, itself first and the tenant root group last.
    /// A name the tenant does not know holds only itself.
    pub fn management_group_chain(&self, name: &str) -> Vec<String> {
        let mut chain: Vec<String> = Vec::new();
        let mut current = Some(name.to_string());
        while let Some(n) = current {
            if chain.len() > MAX_DEPTH || chain.iter().any(|c| c.eq_ignore_ascii_case(&n)) {
                break;
            }
            current = if n.eq_ignore_ascii_case(&self.tenant.id) {
                None
            } else {
                self.management_group(&n)
                    .map(|m| m.parent.clone().unwrap_or_else(|| self.tenant.id.clone()))
            };
            chain.push(n);
        }
        chain
    }

    /// The management group a subscription sits directly under: the tenant root group unless
    /// one lists it.
    pub fn subscription_parent(&self, subscription: &str) -> String {
        self.management_groups
            .iter()
            .find(|m| {
                m.subscriptions
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(subscription))
            })
            .map(|m| m.name.clone())
            .unwrap_or_else(|| self.tenant.id.clone())
    }

    /// Every scope that contains `scope`, nearest first: itself, its ancestors by path, the
    /// management groups above its subscription up to the tenant root group, and `/`.
    pub fn scope_ancestors(&self, scope: &str) -> Vec<String> {
        let scope = normalize_scope(scope);
        let mut out = Vec::new();
        if scope == "/" {
            out.push(scope);
            return out;
        }
        if let Some(name) = management_group_name(&scope) {
            out.extend(
                self.management_group_chain(&name)
                    .iter()
                    .map(|n| management_group_scope(n)),
            );
        } else {
            let segs: Vec<&str> = scope.trim_start_matches('/').split('/').collect();
            for i in (1..=segs.len()).rev() {
                out.push(format!("/{}", segs[..i].join("/")));
            }
            if let [first, sub, ..] = segs.as_slice() {
                if !first.eq_ignore_ascii_case("subscriptions") {
                    out.push("/".into());
                    return out;
                }
                let parent = self.subscription_parent(sub);
                out.extend(
                    self.management_group_chain(&parent)
                        .iter()
                        .map(|n| management_group_scope(n)),
                );
            }
        }
        out.push("/".into());
        out
    }

    /// Whether `outer` is `inner` or contains it: by path below a subscription, and through
    /// the management group hierarchy above. `/` and the tenant root group contain everything.
    pub fn scope_contains(&self, outer: &str, inner: &str) -> bool {
        let outer = normalize_scope(outer);
        if outer == "/" {
            return true;
        }
        if management_group_name(&outer).is_some_and(|n| n.eq_ignore_ascii_case(&self.tenant.id)) {
            return normalize_scope(inner) != "/";
        }
        self.scope_ancestors(inner)
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&outer))
    }

    /// Whether an item at `item_scope` belongs in a list taken at `scope`: it applies there
    /// (inherited from above) or lies below it.
    pub fn in_scope(&self, scope: &str, item_scope: &str) -> bool {
        self.scope_contains(scope, item_scope) || self.scope_contains(item_scope, scope)
    }

    /// A user (by UPN or object id) or a group (by name or object id): its object id and
    /// `User` or `Group`.
    pub fn directory_object(&self, key: &str) -> Option<(String, &'static str)> {
        if let Some(user) = self.user(key) {
            return Some((user.oid.clone(), "User"));
        }
        self.group(key).map(|g| (g.id.clone(), "Group"))
    }

    /// A group by object id or display name, case-insensitively.
    pub fn group(&self, key: &str) -> Option<&Group> {
        self.groups
            .iter()
            .find(|g| g.id.eq_ignore_ascii_case(key))
            .or_else(|| {
                self.groups
                    .iter()
                    .find(|g| g.name.eq_ignore_ascii_case(key))
            })
    }

    /// The groups `oid` is a member of at `now`, as a token issued then names them: standing
    /// memberships, and PIM for Groups memberships provisioned and not yet gone (a lingering
    /// one included).
    pub fn member_groups(&self, oid: &str, now: DateTime<Utc>) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| {
                g.members.iter().any(|m| m.eq_ignore_ascii_case(oid))
                    || self.group_activations.iter().any(|a| {
                        a.group == g.id
                            && a.access == "member"
                            && a.principal.eq_ignore_ascii_case(oid)
                            && a.start <= now
                            && now < a.end
                    })
            })
            .map(|g| g.id.clone())
            .collect()
    }

    /// A user's object id followed by the groups the directory says they are in now.
    pub fn principals(&self, oid: &str, now: DateTime<Utc>) -> Vec<String> {
        let mut out = vec![oid.to_ascii_lowercase()];
        out.extend(self.member_groups(oid, now));
        out
    }

    /// The activation policy of a group's membership or ownership: the fixture's, or
    /// Microsoft's defaults.
    pub fn group_policy(&self, group: &str, access: &str) -> GroupPolicy {
        self.group_policies
            .iter()
            .find(|p| p.group.eq_ignore_ascii_case(group) && p.access.eq_ignore_ascii_case(access))
            .cloned()
            .unwrap_or_else(|| GroupPolicy::default_for(&group.to_ascii_lowercase(), access))
    }

    /// Ends what the clock has ended in PIM for Groups: memberships past their end (or their
    /// lingering), and approvals nobody decided in time.
    pub(super) fn tick_groups(&mut self, now: DateTime<Utc>) {
        let ended: Vec<_> = self
            .group_activations
            .iter()
            .filter(|a| now >= a.end)
            .cloned()
            .collect();
        self.group_activations.retain(|a| now < a.end);
        for a in ended {
            self.record(
                now,
                "graph.group_membership_ended",
                json!({"group": a.group, "access": a.access, "principal": a.principal, "request": a.request, "deactivated": a.deactivated}),
            );
        }
        let mut timed_out = Vec::new();
        for r in &mut self.group_requests {
            let Some(stage) = r.stage.as_mut() else {
                continue;
            };
            if r.status == super::PENDING && stage.status == "InProgress" && now >= stage.expires {
                stage.status = "Expired".into();
                r.status = "TimedOut".into();
                r.completed = Some(now);
                timed_out.push(r.id.clone());
            }
        }
        for id in timed_out {
            self.record(now, "graph.group_request_timed_out", json!({"request": id}));
        }
    }

    /// The length of a stage before it expires, from a policy's `approvalStageTimeOutInDays`.
    pub fn stage_timeout(policy: &GroupPolicy) -> Duration {
        Duration::days(i64::from(policy.timeout_days.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::Fixture;

    const TENANT: &str = r#"
[tenant]
id = "11111111-1111-4111-8111-111111111111"
domain = "example.test"
display_name = "Example"
client_id = "22222222-2222-4222-8222-222222222222"

[[subscriptions]]
id = "aaaaaaaa-0000-4000-8000-000000000001"
display_name = "One"

[[subscriptions]]
id = "aaaaaaaa-0000-4000-8000-000000000002"
display_name = "Two"

[[subscriptions]]
id = "aaaaaaaa-0000-4000-8000-000000000003"
display_name = "Three"

[[users]]
upn = "u@example.test"
name = "U"
oid = "33333333-3333-4333-8333-333333333333"

[[management_groups]]
name = "outer"
display_name = "Outer"
subscriptions = ["{sub1}"]

[[management_groups]]
name = "inner"
display_name = "Inner"
parent = "outer"
subscriptions = ["{sub2}"]
"#;

    fn world(text: &str) -> Result<World, FixtureError> {
        let fixture = Fixture::parse("test", text)?;
        World::from_fixture(&fixture, chrono::Utc::now())
    }

    #[test]
    fn management_groups_contain_their_children_and_the_root_contains_all() {
        let w = world(TENANT).expect("fixture");
        let root = management_group_scope("11111111-1111-4111-8111-111111111111");
        let outer = management_group_scope("outer");
        let inner = management_group_scope("inner");
        let sub = |n: u8| format!("/subscriptions/aaaaaaaa-0000-4000-8000-00000000000{n}");
        let rg2 = format!(
            "{}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            sub(2)
        );
        assert!(w.scope_contains(&outer, &rg2), "through the inner group");
        assert!(w.scope_contains(&inner, &rg2));
        assert!(w.scope_contains(&outer, &inner));
        assert!(!w.scope_contains(&inner, &outer));
        assert!(w.scope_contains(&outer, &sub(1)));
        assert!(!w.scope_contains(&inner, &sub(1)));
        assert!(!w.scope_contains(&outer, &sub(3)), "under the root only");
        for scope in [sub(1), sub(3), rg2.clone(), outer.clone()] {
            assert!(w.scope_contains(&root, &scope), "{scope}");
            assert!(w.scope_contains("/", &scope), "{scope}");
        }
        assert!(
            !w.scope_contains(&sub(2), &inner),
            "a subscription is below its group"
        );
        assert!(w.scope_contains(&outer.to_ascii_uppercase(), &rg2.to_ascii_lowercase()));
        assert!(!w.scope_contains(&management_group_scope("unknown"), &sub(1)));
        assert_eq!(
            w.scope_ancestors(&sub(2)),
            [
                sub(2),
                "/subscriptions".to_string(),
                inner,
                outer,
                root,
                "/".to_string()
            ]
        );
        assert!(w.in_scope(&sub(2), &management_group_scope("outer")));
        assert_eq!(
            w.management_group_display_name("11111111-1111-4111-8111-111111111111"),
            Some("Tenant Root Group".to_string())
        );
        assert_eq!(
            management_group_name("/providers/microsoft.management/managementgroups/x/"),
            Some("x".into())
        );
        assert_eq!(management_group_name("/subscriptions/x"), None);
    }

    #[test]
    fn a_bad_hierarchy_is_refused_with_what_to_fix() {
        let cases = [
            (
                "parent = \"outer\"",
                "parent = \"nowhere\"",
                "unknown parent nowhere",
            ),
            (
                "subscriptions = [\"{sub2}\"]",
                "subscriptions = [\"{sub1}\"]",
                "under two management groups",
            ),
            (
                "subscriptions = [\"{sub2}\"]",
                "subscriptions = [\"{sub9}\"]",
                "unknown subscription",
            ),
            ("name = \"inner\"", "name = \"outer\"", "defined twice"),
        ];
        for (from, to, says) in cases {
            let text = TENANT.replacen(from, to, 1);
            let err = world(&text).expect_err(says).to_string();
            assert!(err.contains(says), "{says}: {err}");
        }
        let cycle = TENANT.replacen(
            "display_name = \"Outer\"",
            "display_name = \"Outer\"\nparent = \"inner\"",
            1,
        );
        let err = world(&cycle).expect_err("cycle").to_string();
        assert!(err.contains("cycle"), "{err}");
    }

    #[test]
    fn groups_resolve_by_name_or_id_and_membership_is_taken_now() {
        let text = format!(
            "{TENANT}\n[[groups]]\nname = \"Ops\"\nid = \"44444444-4444-4444-8444-444444444444\"\nmembers = [\"u@example.test\"]\n"
        );
        let w = world(&text).expect("fixture");
        let oid = "33333333-3333-4333-8333-333333333333";
        assert_eq!(
            w.directory_object("ops"),
            Some(("44444444-4444-4444-8444-444444444444".to_string(), "Group"))
        );
        assert_eq!(
            w.directory_object("u@example.test"),
            Some((oid.to_string(), "User"))
        );
        assert_eq!(
            w.principals(oid, chrono::Utc::now()),
            [oid, "44444444-4444-4444-8444-444444444444"]
        );
        let bad = format!("{TENANT}\n[[groups]]\nname = \"Ops\"\nid = \"not-a-guid\"\n");
        assert!(world(&bad).is_err());
        let unknown = format!(
            "{TENANT}\n[[groups]]\nname = \"Ops\"\nid = \"44444444-4444-4444-8444-444444444444\"\neligible_members = [\"x@example.test\"]\n"
        );
        assert!(world(&unknown)
            .expect_err("unknown member")
            .to_string()
            .contains("unknown eligible member x@example.test"));
        let no_approver = format!(
            "{TENANT}\n[[groups]]\nname = \"Ops\"\nid = \"44444444-4444-4444-8444-444444444444\"\n\n[[group_policies]]\ngroup = \"Ops\"\napproval_required = true\n"
        );
        assert!(world(&no_approver)
            .expect_err("no approver")
            .to_string()
            .contains("names no approver"));
    }
}
