//! Unit tests of the JSON writer: the same bytes as `serde_json` for events, cells and keys.

use super::digits::{clock, date, fraction, padded};
use super::*;

#[test]
fn strings_escape_like_serde_json() {
    for s in [
        "",
        "plain",
        "q\"b\\",
        "\u{0}\u{1f}\u{7f}\n\r\t\u{8}\u{c}",
        "naïve 🌊",
        "\u{2028}",
        "0123456789abcdef\"0123456789\\abcdef\u{1}",
        "ünïcødé text that is longer than eight bytes, with \t a tab",
    ] {
        let mut out = Vec::new();
        write_str(&mut out, s);
        assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
    }
}

#[test]
fn every_ascii_byte_at_every_offset_of_a_word() {
    for b in 0u8..128 {
        for at in 0..17 {
            let mut s = "abcdefghijklmnopq".to_owned().into_bytes();
            s[at] = b;
            let s = String::from_utf8(s).unwrap();
            let mut out = Vec::new();
            write_str(&mut out, &s);
            assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
        }
    }
}

#[test]
fn numbers_dates_and_times_like_fmt() {
    let mut values: Vec<u64> = vec![0, u64::MAX];
    for p in 0..20 {
        let t = 10u64.pow(p);
        values.extend([t - 1, t, t + 1, t.wrapping_mul(5) + 7]);
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        values.push(x >> (x % 64));
    }
    for v in values {
        let mut out = b"[".to_vec();
        write_u64(&mut out, v);
        assert_eq!(out, format!("[{v}").into_bytes());
    }
    for (y, m, d) in [
        (0, 0, 0),
        (2026, 11, 22),
        (9999, 12, 31),
        (10_000, 1, 1),
        (7, 100, 5),
    ] {
        let mut out = Vec::new();
        date(&mut out, y, m, d);
        assert_eq!(out, format!("{y:04}-{m:02}-{d:02}").into_bytes());
    }
    for (h, m, s) in [
        (0, 0, 0),
        (23, 59, 59),
        (99, 1, 2),
        (838, 59, 59),
        (100, 0, 0),
    ] {
        let mut out = Vec::new();
        clock(&mut out, h, m, s);
        assert_eq!(out, format!("{h:02}:{m:02}:{s:02}").into_bytes());
    }
    for (us, fsp, want) in [
        (123_456, 3, ".123"),
        (5, 6, ".000005"),
        (999_999, 1, ".9"),
        (120_000, 2, ".12"),
        (7, 0, ""),
    ] {
        let mut out = Vec::new();
        fraction(&mut out, us, fsp);
        assert_eq!(out, want.as_bytes());
    }
}

#[test]
fn integers() {
    for v in [
        0i64,
        1,
        -1,
        9,
        10,
        99,
        100,
        101,
        999,
        i64::MIN,
        i64::MAX,
        1_234_567,
    ] {
        let mut out = Vec::new();
        write_i64(&mut out, v);
        assert_eq!(out, v.to_string().into_bytes());
    }
    for v in [u64::MAX, 10u64.pow(19), 10u64.pow(19) - 1] {
        let mut out = b"x".to_vec();
        write_u64(&mut out, v);
        assert_eq!(out, format!("x{v}").into_bytes());
    }
    for (v, width, want) in [
        (7, 2, "07"),
        (0, 4, "0000"),
        (12345, 2, "12345"),
        (u32::MAX, 6, "4294967295"),
        (3, 6, "000003"),
    ] {
        let mut out = Vec::new();
        padded(&mut out, v, width);
        assert_eq!(out, want.as_bytes());
    }
}
