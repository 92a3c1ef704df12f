//! The sanitisers for text from others (RELIABILITY #22): whatever goes in, what comes out
//! for a terminal, a notification or a log holds no control or bidi character, markup is
//! escaped even when escaped again, and JSON keeps its value.
#![no_main]

use jumpgate_core::text::{self, is_hostile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let line = text::line(&s);
    assert!(!line.chars().any(is_hostile));
    // Idempotent: cleaning clean text changes nothing.
    assert_eq!(text::line(&line), line);
    let block = text::block(&s);
    assert!(!block.chars().any(|c| c != '\n' && is_hostile(c)));
    for body in [text::markup(&s), text::markup(&text::markup(&s))] {
        assert!(!body.chars().any(|c| c != '\n' && is_hostile(c)));
        assert!(!body.contains('<') && !body.contains('>') && !body.contains('"'));
    }
    let log = text::log(&s);
    assert!(!log.chars().any(is_hostile));
    assert!(!text::log(&log).chars().any(is_hostile));
    let value = serde_json::Value::String(s.to_string());
    let json = serde_json::to_string(&value).unwrap_or_default();
    let safe = text::json(&json);
    assert!(!safe.chars().any(is_hostile));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).ok(), Some(value));
    if let Ok(j) = jumpgate_core::input::justification(&s) {
        assert!(!j.chars().any(is_hostile));
    }
});
