//! Every parser of what a server answers (RELIABILITY #13, #25, #26), on arbitrary bytes:
//! ARM error bodies, PIM requests and policies, JIT policies and their targets and grants,
//! token claims and the account in them, step-up claims, echo answers, OpenID discovery
//! answers and refusals. None may panic, any id that would become a URL passes the ARM id
//! check or is refused, and a tenant id from discovery is a GUID.
#![no_main]

use jumpgate_azure::{arm, http, ip, signin};
use jumpgate_core::{explain, firstrun, policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (code, message) = http::parse_error(text);
    let _ = explain::arm(400, &code, &message);
    let _ = explain::step_up_claims(&code, &message);
    if let Ok(claims) = explain::parse_claims(text) {
        // What is accepted is JSON the next sign-in can carry.
        assert!(serde_json::from_str::<serde_json::Value>(&claims).is_ok());
    }
    let _ = firstrun::discovery_refused("contoso.example", 400, text);
    let _ = firstrun::domain_of(text);
    let _ = ip::parse_echo(text);
    let _ = ip::echo_url(text);
    // A token: header.payload.signature, with the payload from the input.
    let _ = signin::claims(text);
    let _ = signin::account_of(text);
    if let Some(id) = policy::arm_id(text) {
        assert!(!id.contains('@') && !id.contains("//") && !id.contains(".."));
        let lower = id.to_ascii_lowercase();
        assert!(lower.starts_with("/subscriptions") || lower.starts_with("/providers"));
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let r = arm::Request::from_json(&value);
        let _ = r.name.len();
        let list = value.as_array().cloned().unwrap_or_else(|| vec![value.clone()]);
        let p = policy::ActivationPolicy::from_rules(&list);
        let _ = p.summary();
        let _ = policy::JitPortRule::from_json(&value);
        if let Ok(tenant) =
            firstrun::tenant_from_discovery(firstrun::DEFAULT_AUTHORITY, "contoso.example", &value)
        {
            assert!(tenant.len() == 36 && tenant.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        }
        for target in arm::parse_targets(&list) {
            let _ = jumpgate_azure::engine::open_grants(&target, chrono::Utc::now());
            let _ = target.resource_group();
        }
    }
});
