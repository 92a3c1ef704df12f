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
/// lines off the end is noticed too. It is written after the entry, so a process stopped in
/// between leaves a head that lags the journal: that is a crash, not tampering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub entry_hash: String,
}

/// A journal whose chain holds, and what crashes left in it (RELIABILITY #21).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    pub entries: Vec<Entry>,
    /// Lines (counted from 1) holding a torn write: the beginning of an entry whose append
    /// was cut off (a power cut, a kill mid-write). No entry is lost with it: the entries
    /// after it chain onto the last intact entry before it.
    pub torn: Vec<usize>,
    /// How many entries the head lags behind the journal: a process stopped between writing
    /// an entry and recording it as the head. The next append brings it forward.
    pub head_behind: u64,
}

/// Checks every line and the head; returns the entries when the chain holds.
pub fn verify(text: &str, head: Option<&Head>) -> Result<Vec<Entry>, Broken> {
    check(text, head).map(|v| v.entries)
}

/// Checks every line and the head (RELIABILITY #20, #21).
///
/// - Every complete line must be the entry that follows the last intact one: the next `seq`,
///   the previous `entry_hash`, its own hash right. Anything else is an edit, a deletion or a
///   reordering, reported at its line.
/// - A torn line is one that is the beginning of a JSON object and stops short (JSON that
///   ends early, or an empty line): what an append cut off mid-write leaves. It holds no
///   entry and is reported in [`Verified::torn`], wherever it is: the appends after it start
///   on a fresh line and chain onto the last intact entry, so it loses nothing. If the
///   entries after it do not chain onto that entry (the torn line had been a whole entry that
///   was cut later), the chain breaks at the next entry and that is reported. A line that is
///   malformed in any other way is an edit.
/// - The head may lag the journal (a crash between the entry and the head) but must name an
///   entry of the chain; a head beyond the last intact entry means entries were cut off.
pub fn check(text: &str, head: Option<&Head>) -> Result<Verified, Broken> {
    let mut out = Verified::default();
    // The line of the last intact entry: a head beyond it is reported on the line after.
    let mut last_line = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let entry: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) if e.is_eof() => {
                out.torn.push(n);
                continue;
            }
            Err(e) => {
                return Err(Broken {
                    line: n,
                    reason: format!("not a journal entry ({e}); it was edited"),
                })
            }
        };
        let (want_seq, want_prev) = match out.entries.last() {
            Some(p) => (p.seq + 1, p.entry_hash.as_str()),
            None => (1, GENESIS),
        };
        let after_torn = out.torn.last() == Some(&(n - 1));
        if entry.seq != want_seq {
            let reason = if after_torn {
                format!(
                    "sequence number {} where {want_seq} belongs: line {} was a whole entry that was cut off",
                    entry.seq,
                    n - 1
                )
            } else {
                format!(
                    "sequence number {} where {want_seq} belongs: entries were removed or reordered",
                    entry.seq
                )
            };
            return Err(Broken { line: n, reason });
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
        out.entries.push(entry);
        last_line = n;
    }
    if let Some(head) = head {
        let last = out.entries.last().map(|e| e.seq).unwrap_or(0);
        if head.seq > last {
            return Err(Broken {
                line: last_line + 1,
                reason: format!("the journal ends at entry {last} but entry {} was written: it was truncated or rewritten", head.seq),
            });
        }
        let named = match head.seq {
            0 => GENESIS,
            s => out
                .entries
                .get(usize::try_from(s - 1).unwrap_or(usize::MAX))
                .map(|e| e.entry_hash.as_str())
                .unwrap_or_default(),
        };
        if named != head.entry_hash {
            return Err(Broken {
                line: last_line,
                reason: format!(
                    "the recorded head names another entry {}: the journal was rewritten",
                    head.seq
                ),
            });
        }
        out.head_behind = last - head.seq;
    }
    Ok(out)
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

    fn head_of(e: &Entry) -> Head {
        Head {
            seq: e.seq,
            entry_hash: e.entry_hash.clone(),
        }
    }

    #[test]
    fn reliability_21_a_head_that_lags_a_valid_chain_is_a_crash_not_tampering() {
        let (text, _) = journal(4);
        let entries = verify(&text, None).expect("intact");
        let lagging = check(&text, Some(&head_of(&entries[1]))).expect("lagging head");
        assert_eq!((lagging.entries.len(), lagging.head_behind), (4, 2));
        let empty = Head {
            seq: 0,
            entry_hash: GENESIS.into(),
        };
        assert_eq!(
            check(&text, Some(&empty)).expect("no head yet").head_behind,
            4
        );
        // A head that names an entry the journal holds differently was not written by us.
        let mut forged = head_of(&entries[1]);
        forged.entry_hash = entries[2].entry_hash.clone();
        let e = check(&text, Some(&forged)).expect_err("forged head");
        assert!(e.reason.contains("rewritten"), "{e}");
        // A head ahead of the journal is still a truncation.
        let lines: Vec<&str> = text.lines().collect();
        let e = check(&(lines[..2].join("\n") + "\n"), Some(&head_of(&entries[3])))
            .expect_err("truncated");
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("truncated"), "{e}");
    }

    #[test]
    fn reliability_21_a_torn_last_line_is_reported_and_the_chain_before_it_holds() {
        let (text, head) = journal(4);
        let entries = verify(&text, None).expect("intact");
        let (line, _) = journal(5);
        let fifth = line.lines().nth(4).expect("fifth");
        // Killed halfway through appending the fifth entry: the head still names the fourth.
        for cut in [1, fifth.len() / 2, fifth.len() - 1] {
            let torn = format!("{text}{}", &fifth[..cut]);
            let v = check(&torn, Some(&head)).expect("torn last line");
            assert_eq!(
                (v.entries.len(), v.torn.clone()),
                (4, vec![5]),
                "cut at {cut}"
            );
        }
        // A torn line that was a whole entry the head had recorded is a truncation.
        let cut_fourth = &text[..text.len() - 30];
        let e = check(cut_fourth, Some(&head)).expect_err("cut");
        assert_eq!(e.line, 4);
        assert_eq!(
            check(cut_fourth, Some(&head_of(&entries[2])))
                .expect("lags")
                .torn,
            [4]
        );
    }

    #[test]
    fn reliability_21_a_torn_line_in_the_middle_loses_nothing_when_the_chain_continues_past_it() {
        // Four entries, a torn fifth, then the next append on a fresh line chained to the
        // fourth: the torn line is reported and every entry verifies.
        let (text, _) = journal(4);
        let entries = verify(&text, None).expect("intact");
        let (five, _) = journal(5);
        let fifth = five.lines().nth(4).expect("fifth");
        let at = DateTime::from_timestamp(1_900_000_000, 0).expect("time");
        let next_entry = next(
            entries.last(),
            Record {
                who: "bob@contoso.example".into(),
                what: "approval_decided".into(),
                outcome: "Approved".into(),
                ..Record::default()
            },
            at,
        );
        let recovered = format!(
            "{text}{}\n{}\n",
            &fifth[..fifth.len() / 2],
            serde_json::to_string(&next_entry).expect("json")
        );
        let v = check(&recovered, Some(&head_of(&next_entry))).expect("recovered");
        assert_eq!(v.torn, [5]);
        assert_eq!(
            v.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(v.head_behind, 0);

        // A whole entry in the middle cut short afterwards: the next entry chains onto the
        // lost one, and the break is reported there.
        let lines: Vec<&str> = five.lines().collect();
        let (six, head6) = journal(6);
        let sixth = six.lines().nth(5).expect("sixth");
        let cut = format!(
            "{}\n{}\n{sixth}\n",
            lines[..4].join("\n"),
            &lines[4][..lines[4].len() / 2]
        );
        let e = check(&cut, Some(&head6)).expect_err("lost entry");
        assert_eq!(e.line, 6);
        assert!(e.reason.contains("line 5 was a whole entry"), "{e}");

        // A line broken other than by stopping short is an edit, not a tear.
        let edited = text.replacen("\"seq\":2", "\"seq\":2}", 1);
        let e = check(&edited, None).expect_err("edit");
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("edited"), "{e}");
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
