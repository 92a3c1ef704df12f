//! Every parser of user or service input in jumpgate-core, on arbitrary bytes: none may
//! panic, and what they accept must hold up.
#![no_main]

use jumpgate_core::{config, duration, explain, ip, policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = duration::parse(text) {
        // Whatever is accepted round-trips through ARM's ISO 8601 form.
        assert_eq!(duration::parse(&duration::to_iso(d)), Ok(d));
        assert!(d.num_seconds() > 0);
    }
    if let Ok(addr) = ip::parse_public_ipv4(text, false) {
        assert!(!addr.is_private() && !addr.is_loopback());
    }
    let _ = config::Config::parse("fuzz.toml", text);
    let _ = explain::arm(400, text, text);
    let _ = explain::entra(text, text);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let rules = value.as_array().cloned().unwrap_or_else(|| vec![value.clone()]);
        let p = policy::ActivationPolicy::from_rules(&rules);
        let _ = p.summary();
        let _ = policy::JitPortRule::from_json(&value);
        let _ = policy::permits(&rules, policy::JIT_INITIATE);
    }
});
