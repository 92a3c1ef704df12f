//! The audit journal's format (RELIABILITY #20): append-only JSON lines, each carrying its
//! sequence number, UTC time, the previous entry's hash and its own, SHA-256 over the
//! canonical entry. An edit, a reordering, a deletion or a truncation breaks the chain, and
//! [`verify`] names the first entry where it breaks. Pure: the caller reads and writes the file.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the journal records it. Never a token.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Who did it (UPN).
    pub who: String,
    /// What: `role_requested`, `role_approved`, `role_denied`, `approval_decided`,
    /// `port_opened`, `port_extended`, `role_extended`, `client_launched`, …
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    pub outcome: String,
}

/// One line of the journal.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub time: DateTime<Utc>,
    pub prev_hash: String,
    #[serde(flatten)]
    pub record: Record,
    pub entry_hash: String,
}

/// The part of an entry its hash covers, in a fixed field order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    time: &'a DateTime<Utc>,
    prev_hash: &'a str,
    #[serde(flatten)]
    record: &'a Record,
}

fn hash(seq: u64, time: &DateTime<Utc>, prev_hash: &str, record: &Record) -> String {
    let canonical = serde_json::to_string(&Canonical {
        seq,
        time,
        prev_hash,
        record,
    })
    .unwrap_or_default();
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entry that follows `previous` (or starts the journal).
pub fn next(previous: Option<&Entry>, record: Record, now: DateTime<Utc>) -> Entry {
    let (seq, prev_hash) = match previous {
        Some(p) => (p.seq + 1, p.entry_hash.clone()),
        None => (1, GENESIS.to_string()),
    };
    let entry_hash = hash(seq, &now, &prev_hash, &record);
    Entry {
        seq,
        time: now,
        prev_hash,
        record,
        entry_hash,
    }
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit journal is broken at line {line}: {reason}")]
pub struct Broken {
    pub line: usize,
    pub reason: String,
}

/// The last entry's sequence number and hash, kept beside the journal so that cutting whole
/// lines off the end is noticed too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub entry_hash: String,
}

/// Checks every line and the head; returns the entries when the chain holds.
pub fn verify(text: &str, head: Option<&Head>) -> Result<Vec<Entry>, Broken> {
    let mut entries: Vec<Entry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let entry: Entry = serde_json::from_str(line).map_err(|e| Broken {
            line: n,
            reason: format!("not a journal entry ({e}); it was edited or cut off"),
        })?;
        let (want_seq, want_prev) = match entries.last() {
            Some(p) => (p.seq + 1, p.entry_hash.as_str()),
            None => (1, GENESIS),
        };
        if entry.seq != want_seq {
            return Err(Broken { line: n, reason: format!("sequence number {} where {want_seq} belongs: entries were removed or reordered", entry.seq) });
        }
        if entry.prev_hash != want_prev {
            return Err(Broken {
                line: n,
                reason: "it does not follow the entry before it: entries were removed or reordered"
                    .into(),
            });
        }
        if hash(entry.seq, &entry.time, &entry.prev_hash, &entry.record) != entry.entry_hash {
            return Err(Broken {
                line: n,
                reason: format!("entry {} was edited after it was written", entry.seq),
            });
        }
        entries.push(entry);
    }
    if let Some(head) = head {
        let last = entries
            .last()
            .map(|e| (e.seq, e.entry_hash.as_str()))
            .unwrap_or((0, GENESIS));
        if last != (head.seq, head.entry_hash.as_str()) {
            return Err(Broken {
                line: entries.len() + 1,
                reason: format!("the journal ends at entry {} but entry {} was written: it was truncated or rewritten", last.0, head.seq),
            });
        }
    }
    Ok(entries)
}

/// Whether an entry matches a filter: every word of `query` appears, ignoring case, in one
/// of its fields. An empty query matches everything.
pub fn matches(e: &Entry, query: &str) -> bool {
    let r = &e.record;
    let fields = [
        Some(r.who.as_str()),
        Some(r.what.as_str()),
        r.vm.as_deref(),
        r.role.as_deref(),
        r.source_ip.as_deref(),
        r.justification.as_deref(),
        Some(r.outcome.as_str()),
    ];
    let haystack = fields
        .iter()
        .flatten()
        .map(|f| f.to_lowercase())
        .collect::<Vec<_>>()
        .join("\n")
        + &r.port.map(|p| format!("\n{p}")).unwrap_or_default();
    query
        .split_whitespace()
        .all(|w| haystack.contains(&w.to_lowercase()))
}

/// The journal as CSV: a header, then one quoted line per entry. A cell a spreadsheet would
/// run as a formula (`=`, `+`, `-`, `@`) is prefixed with `'`.
pub fn csv(entries: &[Entry]) -> String {
    let cell = |v: &str| {
        let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{v}")
        } else {
            v.to_string()
        };
        format!("\"{}\"", v.replace('"', "\"\""))
    };
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    let mut out =
        String::from("seq,time,who,what,vm,port,role,source_ip,duration,justification,outcome\n");
    for e in entries {
        let r = &e.record;
        let fields = [
            e.seq.to_string(),
            e.time.to_rfc3339(),
            r.who.clone(),
            r.what.clone(),
            opt(&r.vm),
            r.port.map(|p| p.to_string()).unwrap_or_default(),
            opt(&r.role),
            opt(&r.source_ip),
            opt(&r.duration),
            opt(&r.justification),
            r.outcome.clone(),
        ];
        out += &fields.iter().map(|f| cell(f)).collect::<Vec<_>>().join(",");
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(n: usize) -> (String, Head) {
        let mut last: Option<Entry> = None;
        let mut text = String::new();
        for i in 0..n {
            let at = DateTime::from_timestamp(1_800_000_000 + i as i64, 0).expect("time");
            let e = next(
                last.as_ref(),
                Record {
                    who: "alice@contoso.example".into(),
                    what: "port_opened".into(),
                    port: Some(3389),
                    outcome: "ok".into(),
                    ..Record::default()
                },
                at,
            );
            text += &serde_json::to_string(&e).expect("json");
            text.push('\n');
            last = Some(e);
        }
        let last = last.expect("entries");
        (
            text,
            Head {
                seq: last.seq,
                entry_hash: last.entry_hash,
            },
        )
    }

    #[test]
    fn reliability_20_an_intact_chain_verifies() {
        let (text, head) = journal(4);
        assert_eq!(verify(&text, Some(&head)).expect("intact").len(), 4);
        assert_eq!(verify("", None).expect("empty").len(), 0);
    }

    #[test]
    fn reliability_20_edits_deletions_swaps_and_truncations_are_caught() {
        let (text, head) = journal(4);
        let lines: Vec<&str> = text.lines().collect();
        let edited = text.replacen("3389", "3390", 1);
        assert_eq!(verify(&edited, Some(&head)).expect_err("edit").line, 1);
        let deleted = [lines[0], lines[2], lines[3]].join("\n");
        assert_eq!(verify(&deleted, Some(&head)).expect_err("delete").line, 2);
        let swapped = [lines[0], lines[2], lines[1], lines[3]].join("\n");
        assert_eq!(verify(&swapped, Some(&head)).expect_err("swap").line, 2);
        let cut_mid_line = &text[..text.len() - 20];
        assert_eq!(verify(cut_mid_line, Some(&head)).expect_err("cut").line, 4);
        let dropped_last = lines[..3].join("\n");
        assert_eq!(
            verify(&dropped_last, Some(&head))
                .expect_err("truncate")
                .line,
            4
        );
    }

    #[test]
    fn history_filters_by_every_word_and_exports_csv_safe_for_spreadsheets() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let e = next(
            None,
            Record {
                who: "alice@contoso.example".into(),
                what: "port_opened".into(),
                vm: Some("jumpbox-win-01".into()),
                port: Some(3389),
                justification: Some("=HYPERLINK(\"x\") \"quoted\"".into()),
                outcome: "Succeeded".into(),
                ..Record::default()
            },
            t,
        );
        assert!(matches(&e, ""));
        assert!(matches(&e, "ALICE win-01"));
        assert!(matches(&e, "3389 port_opened"));
        assert!(!matches(&e, "alice bob"));
        let text = csv(std::slice::from_ref(&e));
        let line = text.lines().nth(1).expect("a row");
        assert!(line.starts_with("\"1\","), "{line}");
        assert!(
            line.contains("\"'=HYPERLINK(\"\"x\"\") \"\"quoted\"\"\""),
            "{line}"
        );
    }
}
