//! Every parser of user or service input in jumpgate-core, on arbitrary bytes: none may
//! panic, and what they accept must hold up.
#![no_main]

use jumpgate_core::{admin, config, deeplink, duration, explain, ip, policy};
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
    for link in [text.to_string(), format!("jumpgate://connect?{text}")] {
        if let Ok(l) = deeplink::parse(&link) {
            // What a link may prefill stays inside its limits.
            assert!(l.justification.is_none_or(|j| j.chars().count() <= deeplink::MAX_JUSTIFICATION && !j.chars().any(char::is_control)));
            assert!(l.port.is_none_or(|p| p > 0));
            assert!(!l.vm.is_empty() && !l.vm.contains(".."));
        }
    }
    let _ = admin::parse_port(text);
    if let Ok(prefix) = admin::check_source(text) {
        assert!(prefix == "*" || prefix.split('/').next().is_some_and(|a| a.parse::<std::net::Ipv4Addr>().is_ok()));
    }
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
