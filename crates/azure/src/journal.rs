//! The audit journal on disk: `audit.jsonl` in the state directory, appended under an
//! exclusive file lock and synced, with `audit.head` naming the last entry so a truncation
//! shows. The format and its verification are `jumpgate_core::audit`.
//!
//! Crash consistency (RELIABILITY #21): the entry is written and synced before the head, so
//! a process stopped in between leaves a head that lags, which verifies. Every append starts
//! on a fresh line, so an append cut off mid-write leaves a torn line of its own that the
//! next entry does not depend on. Readers take a shared lock, so they never see an entry
//! without its head or half of a line being written.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use jumpgate_core::audit::{self, Broken, Entry, Head, Record, Verified};

use crate::failpoint;

#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    head: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the audit journal {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Broken(#[from] Broken),
}

impl Journal {
    pub fn new(dir: &std::path::Path) -> Journal {
        Journal {
            path: dir.join("audit.jsonl"),
            head: dir.join("audit.head"),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The journal's length in bytes (0 when there is none): where the next entry will start.
    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// The entries appended after the journal was `at` bytes long (all of them when it is
    /// shorter now), unchecked: only what was appended is read, for a quick look, not for
    /// trust. A line that does not parse (cut off at `at`, torn) is skipped.
    pub fn appended_since(&self, at: u64) -> Vec<Entry> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let from = if at <= len { at } else { 0 };
        let mut added = Vec::new();
        if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut added).is_err() {
            return Vec::new();
        }
        added
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<Entry>(line).ok())
            .collect()
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Appends a record, chained to the last intact entry, and syncs it to disk before
    /// returning; then records it as the head.
    pub fn append(&self, record: Record, now: DateTime<Utc>) -> Result<Entry, JournalError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        // 0600, and never through a symlink someone left in its place.
        let mut file = crate::private::open_append(&self.path).map_err(|e| self.io(e))?;
        // Two jumpgate processes must not chain onto the same entry.
        file.lock().map_err(|e| self.io(e))?;
        let (last, fresh_line) = last_entry(&mut file).map_err(|e| self.io(e))?;
        let entry = audit::next(last.as_ref(), record, now);
        let mut bytes = Vec::new();
        if !fresh_line {
            // The last append was cut off: its torn line stays a line of its own.
            bytes.push(b'\n');
        }
        bytes.extend(
            serde_json::to_string(&entry)
                .map_err(|e| self.io(std::io::Error::other(e)))?
                .as_bytes(),
        );
        bytes.push(b'\n');
        failpoint::hit("journal:before-write");
        if failpoint::is_armed("journal:mid-line") {
            let _ = file.write_all(&bytes[..bytes.len() / 2]);
            std::process::abort();
        }
        file.write_all(&bytes).map_err(|e| self.io(e))?;
        failpoint::hit("journal:after-write");
        file.sync_all().map_err(|e| self.io(e))?;
        failpoint::hit("journal:after-sync");
        let head = serde_json::to_string(&Head {
            seq: entry.seq,
            entry_hash: entry.entry_hash.clone(),
        })
        .unwrap_or_default();
        // A temporary file of a unique name, created 0600 with O_EXCL: not a fixed name that
        // a symlink could stand in for.
        crate::private::write_atomic(&self.head, head.as_bytes()).map_err(|e| self.io(e))?;
        failpoint::hit("journal:after-head");
        Ok(entry)
    }

    /// Every entry, after checking the whole chain and the head.
    pub fn read(&self) -> Result<Vec<Entry>, JournalError> {
        Ok(self.check()?.entries)
    }

    /// The whole chain and the head checked, with what crashes left in it (torn lines, a
    /// lagging head). Read under a shared lock, so no append is seen half done.
    pub fn check(&self) -> Result<Verified, JournalError> {
        let mut file = loop {
            match std::fs::File::open(&self.path) {
                Ok(f) => break f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // No journal, and a head says whether one was lost. The head is read
                    // with no lock to take, so a first append may have made both since the
                    // open: then the journal is read after all.
                    let head = self.read_head();
                    if !self.path.exists() {
                        return Ok(audit::check("", head.as_ref())?);
                    }
                }
                Err(e) => return Err(self.io(e)),
            }
        };
        file.lock_shared().map_err(|e| self.io(e))?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| self.io(e))?;
        let head = self.read_head();
        drop(file);
        Ok(audit::check(&text, head.as_ref())?)
    }

    fn read_head(&self) -> Option<Head> {
        std::fs::read_to_string(&self.head)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    }
}

/// The last complete entry of the file, read from its end, and whether the file ends a line
/// (an empty file does).
fn last_entry(file: &mut std::fs::File) -> std::io::Result<(Option<Entry>, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let fresh_line = tail.last().is_none_or(|b| *b == b'\n');
    let last = String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Entry>(l).ok());
    Ok((last, fresh_line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_chain_and_verify_across_instances() {
        let dir = tempfile::tempdir().expect("dir");
        let now = Utc::now();
        for i in 0..3 {
            // A new Journal each time, as a new process would make.
            let j = Journal::new(dir.path());
            j.append(
                Record {
                    who: "a".into(),
                    what: "port_opened".into(),
                    port: Some(22),
                    outcome: format!("ok {i}"),
                    ..Record::default()
                },
                now,
            )
            .expect("append");
        }
        let entries = Journal::new(dir.path()).read().expect("intact");
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn what_was_appended_after_a_length_is_read_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let j = Journal::new(dir.path());
        assert_eq!(j.size(), 0);
        assert!(j.appended_since(0).is_empty());
        j.append(record(1), Utc::now()).expect("append");
        let at = j.size();
        j.append(record(2), Utc::now()).expect("append");
        let seqs = |entries: Vec<Entry>| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(j.appended_since(at)), [2]);
        assert_eq!(seqs(j.appended_since(0)), [1, 2]);
        // From inside a line: the cut line is skipped, the next read whole.
        assert_eq!(seqs(j.appended_since(at - 5)), [2]);
        // Longer than the journal is now (it was replaced): all of it.
        assert_eq!(seqs(j.appended_since(j.size() + 100)), [1, 2]);
    }

    /// RELIABILITY #24: the journal is written 0600 and never through a symlink, and its head
    /// through a temporary file of a unique name.
    #[cfg(unix)]
    #[test]
    fn the_journal_is_private_and_follows_no_symlink() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let j = Journal::new(dir.path());
        j.append(record(1), Utc::now()).expect("append");
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(j.path()), 0o600);
        assert_eq!(mode(&dir.path().join("audit.head")), 0o600);
        // Someone puts a symlink where the journal was: nothing is written through it.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "theirs").expect("file");
        std::fs::remove_file(j.path()).expect("rm");
        std::os::unix::fs::symlink(&elsewhere, j.path()).expect("symlink");
        assert!(j.append(record(2), Utc::now()).is_err());
        assert_eq!(std::fs::read_to_string(&elsewhere).expect("read"), "theirs");
        // The head's old fixed temporary name, as a symlink, is not written through either.
        let other = tempfile::tempdir().expect("dir");
        let k = Journal::new(other.path());
        let victim = other.path().join("victim");
        std::fs::write(&victim, "theirs").expect("file");
        std::os::unix::fs::symlink(&victim, other.path().join("audit.tmp")).expect("symlink");
        k.append(record(1), Utc::now()).expect("append");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "theirs");
    }

    fn record(i: usize) -> Record {
        Record {
            who: "alice@contoso.example".into(),
            what: "port_opened".into(),
            port: Some(3389),
            outcome: format!("ok {i}"),
            ..Record::default()
        }
    }

    #[test]
    fn reliability_21_an_append_after_a_torn_line_starts_a_fresh_line_and_chains_past_it() {
        let dir = tempfile::tempdir().expect("dir");
        let j = Journal::new(dir.path());
        j.append(record(1), Utc::now()).expect("append");
        // A power cut in the middle of the second append.
        let whole = std::fs::read_to_string(j.path()).expect("journal");
        let fragment = &whole[..whole.len() / 2];
        std::fs::OpenOptions::new()
            .append(true)
            .open(j.path())
            .and_then(|mut f| f.write_all(fragment.as_bytes()))
            .expect("tear");
        let torn = j.check().expect("a torn last line verifies");
        assert_eq!((torn.entries.len(), torn.torn.clone()), (1, vec![2]));
        let next = j
            .append(record(2), Utc::now())
            .expect("append after the tear");
        assert_eq!(next.seq, 2, "chained onto the last intact entry");
        let text = std::fs::read_to_string(j.path()).expect("journal");
        assert_eq!(
            text.lines().nth(1),
            Some(fragment),
            "the torn line stays its own"
        );
        let v = j.check().expect("recovered");
        assert_eq!((v.entries.len(), v.torn, v.head_behind), (2, vec![2], 0));
    }

    /// A reader looping while a writer appends never sees an entry without its head (or the
    /// other way round): both are read under the lock the writer holds.
    #[test]
    fn reliability_21_a_reader_racing_a_writer_never_sees_a_false_alarm() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            let j = Journal::new(&path);
            for i in 0..300 {
                j.append(record(i), Utc::now()).expect("append");
            }
        });
        let j = Journal::new(dir.path());
        let mut reads = 0;
        while !writer.is_finished() {
            let v = j
                .check()
                .unwrap_or_else(|e| panic!("false alarm after {reads} reads: {e}"));
            assert!(v.torn.is_empty(), "a half-written line was read: {v:?}");
            assert_eq!(v.head_behind, 0, "an entry was read without its head");
            reads += 1;
        }
        writer.join().expect("writer");
        assert_eq!(j.read().expect("intact").len(), 300);
        assert!(reads > 0);
    }
}
