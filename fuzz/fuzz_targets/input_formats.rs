//! Other captures' messages (Canal flat messages, Maxwell, Debezium with and without schemas)
//! and the automatic choice between them: events or an error, never a panic; every event
//! decoded encodes into a change event the sink reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_formats::Format;

fuzz_target!(|data: &[u8]| {
    for format in [
        Format::Canal,
        Format::Maxwell,
        Format::Debezium,
        Format::Sluice,
    ] {
        if let Ok(events) = sluice_formats::decode(format, data) {
            for e in events {
                let mut bytes = Vec::new();
                e.encode_into(&mut bytes);
                sluice_event::ChangeEvent::decode(&bytes).unwrap_or_else(|err| {
                    panic!("{format:?} gave an event that does not read back: {err}")
                });
            }
        }
    }
    let _ = sluice_formats::debezium_with_key(Some(data), data);
});
