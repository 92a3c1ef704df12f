//! Text that others wrote, made harmless for where it is shown (RELIABILITY #22).
//!
//! A justification, a role or VM name, an approver's name or an error message comes from a
//! server or from another person. Shown raw, it can carry terminal escape sequences (which
//! rewrite what the reader sees), bidi overrides (which reorder it, `U+202E`), or markup
//! (which a freedesktop notification server renders: `<a href=…>` becomes a link).
//!
//! - [`line`]: one line for a terminal or any plain display: C0 and C1 controls and bidi
//!   controls removed (tabs, newlines and other line breaks become one space);
//! - [`block`]: the same, but keeping `\n` (text of several lines that we composed);
//! - [`markup`]: [`block`], then `& < > " '` escaped, for a notification body;
//! - [`log`]: for one log line: controls and bidi controls escaped as `\n`, `\u{1b}`, …
//!   (visible, not removed, so the log still says what was sent);
//! - [`json`]: JSON text with bidi controls and line separators written as `\uXXXX` escapes
//!   (serde already escapes C0 controls; C1 ones are escaped here too), so the value is
//!   unchanged for a script and inert in a terminal.
//!
//! Each is pure and cheap when there is nothing to do (it borrows).

use std::borrow::Cow;

/// Bidi formatting characters: the embeddings and overrides (U+202A–U+202E), the isolates
/// (U+2066–U+2069), and the marks (U+200E, U+200F, U+061C).
pub fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// What never reaches a screen raw: C0 and C1 controls (and DEL), bidi formatting, and the
/// Unicode line and paragraph separators.
pub fn is_hostile(c: char) -> bool {
    c.is_control() || is_bidi(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

fn is_break(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

fn clean(s: &str, keep_newline: bool) -> Cow<'_, str> {
    if !s.chars().any(is_hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\n' && keep_newline {
            out.push('\n');
        } else if is_break(c) {
            out.push(' ');
        } else if !is_hostile(c) {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line, safe for a terminal: no controls, no bidi formatting, no line breaks.
pub fn line(s: &str) -> Cow<'_, str> {
    clean(s, false)
}

/// Several lines, safe for a terminal: as [`line`], but `\n` is kept.
pub fn block(s: &str) -> Cow<'_, str> {
    clean(s, true)
}

/// A notification body: [`block`], with the markup characters escaped, so a freedesktop
/// notification server shows `<a href=…>` as text.
pub fn markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in block(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One log line: newlines, controls and bidi formatting escaped (`\n`, `\u{1b}`), so a
/// server's text can neither start a fake log line nor hide in it.
pub fn log(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hostile(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text as serde wrote it, with bidi formatting, line separators and C1 controls
/// written as `\uXXXX` escapes. These characters only occur inside JSON strings, where the
/// escape means the same character: the value a script reads is unchanged.
pub fn json(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        // Outside strings JSON has only space, tab, CR and LF as whitespace: those stay.
        if is_hostile(c) && !matches!(c, '\t' | '\n' | '\r') {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "ok\u{1b}[2J\u{1b}]8;;https://evil.example\u{7}click\u{1b}]8;;\u{7}\u{9b}31m\u{202E}gnp.exe\u{2066}x\u{2069}\u{200F}\u{061C}\r\nline2\u{2028}end";

    #[test]
    fn reliability_22_terminal_lines_carry_no_controls_or_bidi() {
        let cases: &[(&str, &str)] = &[
            ("plain text, ticket 4711", "plain text, ticket 4711"),
            ("café ünïcode → ✓", "café ünïcode → ✓"),
            ("a\u{1b}[31mred\u{1b}[0m", "a[31mred[0m"),
            ("evil\u{202E}txt.exe", "eviltxt.exe"),
            ("iso\u{2066}late\u{2069}d", "isolated"),
            ("marks\u{200E}\u{200F}\u{061C}", "marks"),
            ("two\nlines\r\nhere", "two lines  here"),
            ("tab\there", "tab here"),
            ("c1\u{9b}2Jx\u{85}y", "c12Jx y"),
            ("bell\u{7}", "bell"),
            ("nul\0", "nul"),
            ("del\u{7f}", "del"),
            ("sep\u{2028}para\u{2029}", "sep para "),
        ];
        for (input, want) in cases {
            assert_eq!(line(input), *want, "{input:?}");
        }
        let out = line(HOSTILE);
        assert!(!out.chars().any(is_hostile), "{out:?}");
        assert!(matches!(line("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn reliability_22_blocks_keep_only_newlines() {
        assert_eq!(block("a\nb\u{1b}[2Jc\u{202E}"), "a\nb[2Jc");
        assert_eq!(block("a\r\nb"), "a \nb");
        let out = block(HOSTILE);
        assert!(!out.chars().any(|c| c != '\n' && is_hostile(c)), "{out:?}");
    }

    #[test]
    fn reliability_22_notification_bodies_escape_markup() {
        let cases: &[(&str, &str)] = &[
            (
                "<a href=\"https://evil.example\">update</a>",
                "&lt;a href=&quot;https://evil.example&quot;&gt;update&lt;/a&gt;",
            ),
            ("Tom & Jerry's <b>", "Tom &amp; Jerry&#39;s &lt;b&gt;"),
            ("x\u{202E}y\u{1b}[1m", "xy[1m"),
            ("already &amp;", "already &amp;amp;"),
        ];
        for (input, want) in cases {
            assert_eq!(markup(input), *want, "{input:?}");
        }
        // Escaping twice never lets markup through.
        let twice = markup(&markup("<i>&"));
        assert!(!twice.contains('<') && !twice.contains('>'), "{twice}");
    }

    #[test]
    fn reliability_22_log_lines_escape_breaks_and_controls() {
        let cases: &[(&str, &str)] = &[
            ("fine", "fine"),
            ("a\nfake: entry", "a\\nfake: entry"),
            ("esc\u{1b}[2J", "esc\\u{1b}[2J"),
            ("rlo\u{202E}x", "rlo\\u{202e}x"),
            ("cr\r", "cr\\r"),
        ];
        for (input, want) in cases {
            assert_eq!(log(input), *want, "{input:?}");
        }
        assert!(!log(HOSTILE).chars().any(is_hostile));
    }

    #[test]
    fn reliability_22_json_keeps_the_value_and_escapes_the_rest() {
        let value = serde_json::json!({"justification": HOSTILE, "n": ["é", "\u{85}"]});
        let text = serde_json::to_string_pretty(&value).expect("json");
        let safe = json(&text);
        assert!(
            !safe.chars().any(|c| is_hostile(c) && c != '\n'),
            "{safe:?}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, value);
    }
}
