//! What the popover remembers for the person on this machine: their favourite jump boxes
//! and the ones they connected to last. The app keeps it in its state folder
//! (`popover.json`, 0600, replaced whole under a lock), not in the webview's storage: the
//! popover's process, and its WebKit, end each time it closes.

use std::path::Path;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

const FILE: &str = "popover.json";
/// How many recently connected jump boxes come first.
pub const KEEP_RECENT: usize = 3;
/// More favourites than any list of jump boxes needs; the oldest go first.
pub const MAX_FAVOURITES: usize = 200;
/// An ARM resource id is at most a few hundred characters.
const MAX_ID: usize = 1024;

/// Favourites in the order they were starred; recent ones newest first. ARM resource ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Remembered {
    pub favourites: Vec<String>,
    pub recent: Vec<String>,
}

/// What to remember about a jump box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Remember {
    Favourite,
    Unfavourite,
    Connected,
}

/// Whether `id` can be a VM's ARM resource id: what the popover sends is checked, and what
/// the file holds is read through the same check.
pub fn plausible(id: &str) -> bool {
    id.starts_with('/') && id.len() <= MAX_ID && !id.chars().any(char::is_control)
}

impl Remembered {
    fn cleaned(mut self) -> Remembered {
        /// Plausible ids only, each once (ARM ids compare without case).
        fn once_each(list: &mut Vec<String>) {
            let mut seen = std::collections::HashSet::new();
            list.retain(|v| plausible(v) && seen.insert(v.to_ascii_lowercase()));
        }
        once_each(&mut self.favourites);
        let excess = self.favourites.len().saturating_sub(MAX_FAVOURITES);
        self.favourites.drain(..excess);
        once_each(&mut self.recent);
        self.recent.truncate(KEEP_RECENT);
        self
    }

    fn apply(&mut self, vm_id: &str, what: Remember) {
        let same = |v: &String| v.eq_ignore_ascii_case(vm_id);
        match what {
            Remember::Favourite => {
                if !self.favourites.iter().any(same) {
                    self.favourites.push(vm_id.to_string());
                }
            }
            Remember::Unfavourite => self.favourites.retain(|v| !same(v)),
            Remember::Connected => {
                self.recent.retain(|v| !same(v));
                self.recent.insert(0, vm_id.to_string());
            }
        }
    }
}

/// What is remembered in `dir`; a missing, unreadable or broken file is nothing remembered.
pub fn read(dir: &Path) -> Remembered {
    std::fs::read(dir.join(FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Remembered>(&b).ok())
        .unwrap_or_default()
        .cleaned()
}

/// Remembers `what` about `vm_id` and answers all that is remembered now. Two popovers (or
/// a popover and another app on the same folder) changing it at once both count.
pub fn remember(dir: &Path, vm_id: &str, what: Remember) -> std::io::Result<Remembered> {
    if !plausible(vm_id) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "that is not a jump box's resource id",
        ));
    }
    let lock = jumpgate_azure::private::open_lock(&dir.join("popover.lock"))?;
    lock.lock()?;
    let mut remembered = read(dir);
    remembered.apply(vm_id, what);
    let remembered = remembered.cleaned();
    let bytes = serde_json::to_vec_pretty(&remembered).map_err(std::io::Error::other)?;
    jumpgate_azure::private::write_atomic(&dir.join(FILE), &bytes)?;
    Ok(remembered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a";
    const B: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/b";

    fn vm(n: usize) -> String {
        format!(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}"
        )
    }

    #[test]
    fn favourites_and_recent_ones_outlive_the_popover() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(read(dir.path()), Remembered::default());
        remember(dir.path(), A, Remember::Favourite).expect("starred");
        remember(dir.path(), B, Remember::Favourite).expect("starred");
        // Starring twice, in another case, keeps one.
        remember(dir.path(), &A.to_uppercase(), Remember::Favourite).expect("again");
        let now = remember(dir.path(), A, Remember::Unfavourite).expect("unstarred");
        assert_eq!(now.favourites, vec![B.to_string()]);
        for n in 0..5 {
            remember(dir.path(), &vm(n), Remember::Connected).expect("connected");
        }
        remember(dir.path(), &vm(2), Remember::Connected).expect("again");
        let read_back = read(dir.path());
        assert_eq!(read_back.recent, vec![vm(2), vm(4), vm(3)]);
        assert_eq!(read_back.favourites, vec![B.to_string()]);
    }

    #[test]
    fn what_is_not_a_resource_id_is_refused_and_never_read() {
        let dir = tempfile::tempdir().expect("dir");
        for bad in [
            "",
            "jumpbox",
            "/a\u{1b}[2J",
            &format!("/{}", "x".repeat(2000)),
        ] {
            let e = remember(dir.path(), bad, Remember::Favourite).expect_err(bad);
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        }
        assert!(!dir.path().join(FILE).exists(), "nothing was written");
        // A file written by hand, or by something else, is read through the same checks.
        std::fs::write(
            dir.path().join(FILE),
            serde_json::json!({"favourites": [A, "nope", "/x\u{7}", A], "recent": [1, 2]})
                .to_string(),
        )
        .expect("write");
        assert_eq!(
            read(dir.path()),
            Remembered::default(),
            "a wrong type reads as nothing"
        );
        std::fs::write(
            dir.path().join(FILE),
            serde_json::json!({"favourites": [A, "nope", "/x\u{7}", A], "recent": []}).to_string(),
        )
        .expect("write");
        assert_eq!(read(dir.path()).favourites, vec![A.to_string()]);
        std::fs::write(dir.path().join(FILE), "{not json").expect("write");
        assert_eq!(read(dir.path()), Remembered::default());
    }

    #[test]
    fn favourites_are_capped_oldest_first() {
        let dir = tempfile::tempdir().expect("dir");
        let mut last = Remembered::default();
        for n in 0..MAX_FAVOURITES + 2 {
            last = remember(dir.path(), &vm(n), Remember::Favourite).expect("starred");
        }
        assert_eq!(last.favourites.len(), MAX_FAVOURITES);
        assert_eq!(last.favourites[0], vm(2));
    }

    #[cfg(unix)]
    #[test]
    fn only_the_user_can_read_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        remember(dir.path(), A, Remember::Connected).expect("remembered");
        let mode = std::fs::metadata(dir.path().join(FILE))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}
