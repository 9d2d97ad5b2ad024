//! MySQL's binary JSON (JSON columns): an error or a value, never a panic, and the value
//! serialises.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = sluice_capture::binlog::jsonb::decode(data) {
        let _ = serde_json::to_vec(&value);
    }
});
