//! What Jumpgate learns about how the person reaches the jump boxes, kept between runs in
//! `access.json` in the state folder (0600, replaced whole under a lock):
//!
//! - the Azure roles each of their groups holds, as ARM showed them while the membership was
//!   active (a group's role assignments cannot be read by someone who is only eligible for
//!   it, so what was seen is all there is until the next activation);
//! - the way they chose for a jump box when several reach it;
//! - the jump boxes they could read before, for the times they can read none (a requester
//!   with no standing access sees no policy until a role is active).
//!
//! A missing or broken file is nothing learned; nothing here is needed for correctness, only
//! for choosing well and for saying what the person could reach.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const FILE: &str = "access.json";
const LOCK: &str = "access.lock";
/// Jump boxes remembered as seen: more than any person uses.
const MAX_SEEN: usize = 50;
/// Groups whose roles are remembered.
const MAX_GROUPS: usize = 200;

/// An Azure role a group holds, and where.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRole {
    pub role: String,
    pub role_definition_id: String,
    pub scope: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRoles {
    pub name: String,
    pub roles: Vec<HeldRole>,
    pub seen: Option<DateTime<Utc>>,
}

/// A jump box the person could read once.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenTarget {
    pub vm: String,
    pub vm_id: String,
    pub seen: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// By group object id, lower case.
    #[serde(default)]
    pub groups: BTreeMap<String, GroupRoles>,
    /// The way chosen for a jump box (a [`crate::engine::Way`]'s key), by VM resource id,
    /// lower case.
    #[serde(default)]
    pub chosen: BTreeMap<String, String>,
    /// Newest first.
    #[serde(default)]
    pub seen_targets: Vec<SeenTarget>,
}

impl Learned {
    /// Records what a group was seen to hold, replacing what was known of it.
    pub fn group_holds(
        &mut self,
        group_id: &str,
        name: &str,
        roles: Vec<HeldRole>,
        now: DateTime<Utc>,
    ) {
        self.groups.insert(
            group_id.to_ascii_lowercase(),
            GroupRoles {
                name: name.to_string(),
                roles,
                seen: Some(now),
            },
        );
        while self.groups.len() > MAX_GROUPS {
            let oldest = self
                .groups
                .iter()
                .min_by_key(|(_, g)| g.seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.groups.remove(&k),
                None => break,
            };
        }
    }

    pub fn roles_of(&self, group_id: &str) -> Option<&GroupRoles> {
        self.groups.get(&group_id.to_ascii_lowercase())
    }

    pub fn choose(&mut self, vm_id: &str, way: &str) {
        self.chosen
            .insert(vm_id.to_ascii_lowercase(), way.to_string());
    }

    pub fn chosen_for(&self, vm_id: &str) -> Option<&str> {
        self.chosen
            .get(&vm_id.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Records jump boxes read now, newest first, each once. One seen within the hour keeps
    /// its place, so reading the same list again changes nothing.
    pub fn saw(&mut self, targets: impl IntoIterator<Item = (String, String)>, now: DateTime<Utc>) {
        for (vm, vm_id) in targets {
            let fresh = self.seen_targets.iter().any(|t| {
                t.vm_id.eq_ignore_ascii_case(&vm_id) && now - t.seen < chrono::Duration::hours(1)
            });
            if fresh {
                continue;
            }
            self.seen_targets
                .retain(|t| !t.vm_id.eq_ignore_ascii_case(&vm_id));
            self.seen_targets.insert(
                0,
                SeenTarget {
                    vm,
                    vm_id,
                    seen: now,
                },
            );
        }
        self.seen_targets.truncate(MAX_SEEN);
    }
}

/// What was learned in `dir`.
pub fn read(dir: &Path) -> Learned {
    std::fs::read(dir.join(FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Learned>(&b).ok())
        .unwrap_or_default()
}

/// Changes what was learned, under the folder's lock, so two processes (the tray, a terminal)
/// never lose each other's changes.
pub fn update(dir: &Path, change: impl FnOnce(&mut Learned)) -> std::io::Result<()> {
    let lock = crate::private::open_lock(&dir.join(LOCK))?;
    lock.lock()?;
    let mut learned = read(dir);
    let before = learned.clone();
    change(&mut learned);
    if learned != before {
        let bytes = serde_json::to_vec_pretty(&learned).map_err(std::io::Error::other)?;
        crate::private::write_atomic(&dir.join(FILE), &bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
    }

    #[test]
    fn learns_keeps_and_bounds() {
        let dir = tempfile::tempdir().expect("dir");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .expect("private");
        }
        update(dir.path(), |l| {
            l.group_holds(
                "9A7E",
                "JIT Operators",
                vec![HeldRole {
                    role: "JIT Requester".into(),
                    role_definition_id: "/r/2e5b".into(),
                    scope: "/subscriptions/s/resourceGroups/rg".into(),
                }],
                at(0),
            );
            l.choose("/subscriptions/S/x", "group:9a7e");
            l.saw(
                (0..60).map(|i| (format!("vm{i}"), format!("/subscriptions/s/vm{i}"))),
                at(1),
            );
            // Seen again within the hour: nothing moves.
            l.saw(
                [("vm15".to_string(), "/subscriptions/S/VM15".to_string())],
                at(2),
            );
            assert_eq!(l.seen_targets[0].vm, "vm59");
            l.saw(
                [("vm15".to_string(), "/subscriptions/S/VM15".to_string())],
                at(3 * 3600),
            );
        })
        .expect("update");
        let l = read(dir.path());
        assert_eq!(l.roles_of("9a7e").map(|g| g.roles.len()), Some(1));
        assert_eq!(l.chosen_for("/subscriptions/s/X"), Some("group:9a7e"));
        assert_eq!(l.seen_targets.len(), MAX_SEEN);
        assert_eq!(l.seen_targets[0].vm_id, "/subscriptions/S/VM15");
        assert_eq!(
            l.seen_targets
                .iter()
                .filter(|t| t.vm_id.eq_ignore_ascii_case("/subscriptions/s/vm15"))
                .count(),
            1
        );
        // A broken file is nothing learned, and is replaced by the next change.
        std::fs::write(dir.path().join(FILE), b"{not json").expect("write");
        assert_eq!(read(dir.path()), Learned::default());
    }
}
