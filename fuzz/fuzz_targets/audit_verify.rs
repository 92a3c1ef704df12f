//! The audit journal's verifier on arbitrary journals: it never panics, and whatever it
//! accepts is a chain it could have written.
#![no_main]

use jumpgate_core::audit;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(entries) = audit::verify(text, None) {
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1);
        }
    }
});
