//! MariaDB's fixed-size binary types, UUID (10.7+), INET4 (10.10+) and INET6 (10.5+), as the
//! text SELECT prints. The binlog carries them as BINARY(16)/BINARY(4) without their trailing
//! zero bytes; only information_schema knows the column's type.

use std::fmt::Write as _;

/// A MariaDB type whose binlog value is bytes and whose published value is its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedBin {
    Uuid,
    Inet4,
    Inet6,
}

impl FixedBin {
    /// From information_schema's `DATA_TYPE`.
    pub fn of(data_type: &str) -> Option<FixedBin> {
        match data_type.to_ascii_lowercase().as_str() {
            "uuid" => Some(FixedBin::Uuid),
            "inet4" => Some(FixedBin::Inet4),
            "inet6" => Some(FixedBin::Inet6),
            _ => None,
        }
    }

    /// The value's size in bytes.
    fn len(self) -> usize {
        match self {
            FixedBin::Uuid | FixedBin::Inet6 => 16,
            FixedBin::Inet4 => 4,
        }
    }

    /// The text of a stored value, `None` when `stored` is longer than the type (not a value
    /// of it). Bytes the binlog left off the end are zeros.
    pub fn text(self, stored: &[u8]) -> Option<String> {
        if stored.len() > self.len() {
            return None;
        }
        let mut b = [0u8; 16];
        b[..stored.len()].copy_from_slice(stored);
        Some(match self {
            FixedBin::Uuid => uuid(&b),
            FixedBin::Inet4 => dotted(&b[..4]),
            FixedBin::Inet6 => inet6(&b),
        })
    }
}

/// `550e8400-e29b-41d4-a716-446655440000`: MariaDB 10.11 logs a UUID's bytes in text order.
fn uuid(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn dotted(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

/// The text MariaDB prints: RFC 5952's lower-case hex with the first longest run of zero groups
/// as `::`, except that MariaDB shortens a single zero group too (`1::2:3:4:5:6:7`), and the
/// last 32 bits dotted for IPv4-compatible (`::1.2.3.4`) and IPv4-mapped (`::ffff:1.2.3.4`)
/// addresses (but `::` and `::1` stay as they are).
fn inet6(b: &[u8; 16]) -> String {
    let words: Vec<u16> = b
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]))
        .collect();
    // (start, length) of the first longest run of zero groups.
    let mut best: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < 8 {
        if words[i] != 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < 8 && words[i] == 0 {
            i += 1;
        }
        let len = i - start;
        if best.is_none_or(|(_, l)| len > l) {
            best = Some((start, len));
        }
    }
    let ipv4 = matches!(best, Some((0, 6))) || (matches!(best, Some((0, 5))) && words[5] == 0xffff);
    let mut s = String::with_capacity(39);
    let mut i = 0;
    while i < 8 {
        if let Some((start, len)) = best.filter(|(start, _)| *start == i) {
            s.push_str("::");
            i = start + len;
            continue;
        }
        if !s.is_empty() && !s.ends_with(':') {
            s.push(':');
        }
        if i == 6 && ipv4 {
            s.push_str(&dotted(&b[12..]));
            break;
        }
        let _ = write!(s, "{:x}", words[i]);
        i += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Stored bytes (as the binlog has them, trailing zeros dropped) and the text MariaDB
    /// 10.11's SELECT shows for them.
    #[test]
    fn text_as_select_prints_it() {
        let cases = [
            (
                FixedBin::Uuid,
                "550e8400e29b41d4a7164466554400",
                "550e8400-e29b-41d4-a716-446655440000",
            ),
            (
                FixedBin::Uuid,
                "112233445566178899aabbccddeeff",
                "11223344-5566-1788-99aa-bbccddeeff00",
            ),
            (FixedBin::Uuid, "", "00000000-0000-0000-0000-000000000000"),
            (FixedBin::Uuid, "01", "01000000-0000-0000-0000-000000000000"),
            (FixedBin::Inet4, "c0a80001", "192.168.0.1"),
            (FixedBin::Inet4, "0a", "10.0.0.0"),
            (FixedBin::Inet4, "", "0.0.0.0"),
            (FixedBin::Inet4, "ffffffff", "255.255.255.255"),
            (FixedBin::Inet6, "", "::"),
            (FixedBin::Inet6, "00000000000000000000000000000001", "::1"),
            (
                FixedBin::Inet6,
                "00000000000000000000ffff01020304",
                "::ffff:1.2.3.4",
            ),
            (
                FixedBin::Inet6,
                "00000000000000000000ffff",
                "::ffff:0.0.0.0",
            ),
            (
                FixedBin::Inet6,
                "00000000000000000000ffff00000001",
                "::ffff:0.0.0.1",
            ),
            (
                FixedBin::Inet6,
                "00000000000000000000000001020304",
                "::1.2.3.4",
            ),
            (FixedBin::Inet6, "0000000000000000000000000001", "::0.1.0.0"),
            (FixedBin::Inet6, "000000000000000000000000000001", "::100"),
            (
                FixedBin::Inet6,
                "20010db8000000000000ff0000428329",
                "2001:db8::ff00:42:8329",
            ),
            (
                FixedBin::Inet6,
                "00010000000000010000000000000001",
                "1:0:0:1::1",
            ),
            (FixedBin::Inet6, "0001", "1::"),
            (FixedBin::Inet6, "fe800000000000000001", "fe80::1:0:0:0"),
            (
                FixedBin::Inet6,
                "00010000000200030004000500060007",
                "1::2:3:4:5:6:7",
            ),
            (
                FixedBin::Inet6,
                "00010002000300040005000600070000",
                "1:2:3:4:5:6:7::",
            ),
            (
                FixedBin::Inet6,
                "00010000000200000003000000040000",
                "1::2:0:3:0:4:0",
            ),
            (
                FixedBin::Inet6,
                "00000000000000000000000000010001",
                "::0.1.0.1",
            ),
            (FixedBin::Inet6, "0000000000000000000000010000", "::1:0:0"),
            (
                FixedBin::Inet6,
                "00000000000000000000fffe00010001",
                "::fffe:1:1",
            ),
            (FixedBin::Inet6, "ffff", "ffff::"),
        ];
        for (t, stored, text) in cases {
            assert_eq!(t.text(&hex(stored)).as_deref(), Some(text), "{stored}");
        }
        assert_eq!(FixedBin::Inet4.text(&[1, 2, 3, 4, 5]), None);
        assert_eq!(FixedBin::of("INET6"), Some(FixedBin::Inet6));
        assert_eq!(FixedBin::of("binary"), None);
    }
}
