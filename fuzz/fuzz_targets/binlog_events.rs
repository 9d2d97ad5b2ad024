//! A binlog as the capture reads it: a sequence of events, each `[type][length: u16 LE][body]`,
//! TABLE_MAPs registered as the reader does, every other event through `Decoder::handle`.
//! Whatever the bytes, decoding returns an error or outputs; every row output is JSON that the
//! sink's reader accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_capture::binlog::TableMap;
use sluice_capture::checkpoint::Checkpoint;
use sluice_capture::config::FilterConfig;
use sluice_capture::decoder::{Decoder, Header, Output};
use sluice_capture::filter::Filter;

const TABLE_MAP: u8 = 19;

fuzz_target!(|data: &[u8]| {
    let filter = Filter::new(&FilterConfig {
        ddl: true,
        ..FilterConfig::default()
    })
    .expect("the default filter");
    let start = Checkpoint {
        file: "binlog.000001".into(),
        pos: 4,
        ..Checkpoint::default()
    };
    let mut decoder = Decoder::new("fuzz", filter, start);
    let mut rest = data;
    let mut pos = 4u32;
    let mut out = Vec::new();
    while rest.len() >= 3 {
        let kind = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let body = &rest[3..3 + len];
        rest = &rest[3 + len..];
        pos = pos.wrapping_add(19 + len as u32);
        if kind == TABLE_MAP {
            if let Ok(map) = TableMap::parse(body, 6) {
                let _ = decoder.add_table(map);
            }
            continue;
        }
        let h = Header {
            event_type: kind,
            timestamp: 1_700_000_000,
            server_id: 1,
            log_pos: pos,
            event_size: 19 + len as u32,
        };
        if decoder.handle(h, body, 0, &mut out).is_err() {
            break;
        }
    }
    for o in &out {
        let mut value = Vec::new();
        let mut key = Vec::new();
        match o {
            Output::Row(r) => {
                r.write_json(&mut value);
                r.write_key(&mut key);
            }
            Output::Event(e) => e.encode_into(&mut value),
            _ => continue,
        }
        if let Err(e) = sluice_event::ChangeEvent::decode(&value) {
            panic!(
                "the capture wrote an event the sink cannot read: {e}\n{}",
                String::from_utf8_lossy(&value)
            );
        }
        if !key.is_empty() {
            if let Err(e) = sluice_event::decode_key(&key) {
                panic!(
                    "the capture wrote a key the sink cannot read: {e}\n{}",
                    String::from_utf8_lossy(&key)
                );
            }
        }
    }
});
