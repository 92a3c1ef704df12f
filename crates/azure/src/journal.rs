//! The audit journal on disk: `audit.jsonl` in the state directory, appended under an
//! exclusive file lock and synced, with `audit.head` naming the last entry so a truncation
//! shows. The format and its verification are `jumpgate_core::audit`.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use jumpgate_core::audit::{self, Broken, Entry, Head, Record};

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

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Appends a record, chained to the last entry, and syncs it to disk before returning.
    pub fn append(&self, record: Record, now: DateTime<Utc>) -> Result<Entry, JournalError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        // Two jumpgate processes must not chain onto the same entry.
        file.lock().map_err(|e| self.io(e))?;
        let last = last_entry(&mut file).map_err(|e| self.io(e))?;
        let entry = audit::next(last.as_ref(), record, now);
        let line =
            serde_json::to_string(&entry).map_err(|e| self.io(std::io::Error::other(e)))? + "\n";
        file.write_all(line.as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| self.io(e))?;
        let head = serde_json::to_string(&Head {
            seq: entry.seq,
            entry_hash: entry.entry_hash.clone(),
        })
        .unwrap_or_default();
        let tmp = self.head.with_extension("tmp");
        std::fs::write(&tmp, head)
            .and_then(|_| std::fs::rename(&tmp, &self.head))
            .map_err(|e| self.io(e))?;
        Ok(entry)
    }

    /// Every entry, after checking the whole chain and the head.
    pub fn read(&self) -> Result<Vec<Entry>, JournalError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(self.io(e)),
        };
        let head: Option<Head> = std::fs::read_to_string(&self.head)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        Ok(audit::verify(&text, head.as_ref())?)
    }
}

/// The last complete entry of the file, read from its end.
fn last_entry(file: &mut std::fs::File) -> std::io::Result<Option<Entry>> {
    let len = file.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail)?;
    Ok(tail
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Entry>(l).ok()))
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
}
