//! The sink's reader of change events: its fast path must agree with serde_json wherever it
//! answers, and a decoded event must encode and decode to itself; keys likewise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_event::ChangeEvent;

fuzz_target!(|data: &[u8]| {
    if let Some(fast) = sluice_event::decode_fast_only(data) {
        match serde_json::from_slice::<ChangeEvent>(data) {
            Ok(slow) => assert_eq!(fast, slow, "the fast path and serde_json disagree"),
            Err(e) => panic!("the fast path read what serde_json rejects: {e}"),
        }
    }
    if let Ok(event) = ChangeEvent::decode(data) {
        let mut again = Vec::new();
        event.encode_into(&mut again);
        let back = ChangeEvent::decode(&again).expect("an encoded event decodes");
        assert_eq!(event, back);
    }
    let _ = sluice_event::decode_key(data);
});
