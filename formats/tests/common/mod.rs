//! What the format tests share: reading fixtures, and feeding a decoder damaged and random
//! bytes to show it never panics.

use sluice_formats::{decode, Format};
use std::path::PathBuf;

/// The bytes of `tests/fixtures/<dir>/<name>`.
pub fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A small deterministic generator, so a failure names its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Decodes 20,000 inputs as `format`: a quarter random bytes, the rest `messages` with a few
/// bytes changed, cut or repeated. Returning at all is the assertion: nothing panics.
pub fn no_input_panics(format: Format, messages: &[Vec<u8>]) {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000u32 {
        let mut bytes = messages[round as usize % messages.len()].clone();
        if round % 4 == 0 {
            let len = (rng.next() % 64) as usize;
            bytes = (0..len).map(|_| rng.next() as u8).collect();
        } else {
            for _ in 0..=(rng.next() % 4) {
                let at = (rng.next() as usize) % bytes.len().max(1);
                match rng.next() % 3 {
                    0 if !bytes.is_empty() => bytes[at] = b"0-9:.\",{}[] nulx\\"[at % 17],
                    1 => bytes.truncate(at),
                    _ => {
                        let tail = bytes[at..].to_vec();
                        bytes.extend_from_slice(&tail[..tail.len().min(16)]);
                    }
                }
            }
        }
        let _ = decode(format, &bytes);
    }
}
