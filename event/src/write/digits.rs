//! Decimal digits without `fmt`: integers, and the zero-padded parts of dates and times.

/// `YYYY-MM-DD`, each part zero-padded to its width (wider values are written in full).
pub(super) fn date(out: &mut Vec<u8>, year: u32, month: u32, day: u32) {
    if year < 10_000 && month < 100 && day < 100 {
        let ([y0, y1], [y2, y3]) = (pair(year / 100), pair(year));
        let ([m0, m1], [d0, d1]) = (pair(month), pair(day));
        out.extend_from_slice(&[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1]);
        return;
    }
    padded(out, year, 4);
    out.push(b'-');
    padded(out, month, 2);
    out.push(b'-');
    padded(out, day, 2);
}

/// `HH:MM:SS`; hours may have three digits (TIME).
pub(super) fn clock(out: &mut Vec<u8>, hours: u32, minutes: u8, seconds: u8) {
    let (minutes, seconds) = (u32::from(minutes), u32::from(seconds));
    if hours < 100 && minutes < 100 && seconds < 100 {
        let ([h0, h1], [m0, m1], [s0, s1]) = (pair(hours), pair(minutes), pair(seconds));
        out.extend_from_slice(&[h0, h1, b':', m0, m1, b':', s0, s1]);
        return;
    }
    padded(out, hours, 2);
    out.push(b':');
    padded(out, minutes, 2);
    out.push(b':');
    padded(out, seconds, 2);
}

/// `.` and `fsp` digits of `micros`, truncated as MySQL stores them; nothing for fsp 0.
pub(super) fn fraction(out: &mut Vec<u8>, micros: u32, fsp: u8) {
    if fsp == 0 {
        return;
    }
    let m = micros.min(999_999);
    let ([a, b], [c, d], [e, f]) = (pair(m / 10_000), pair(m / 100), pair(m));
    append_prefix(out, &[b'.', a, b, c, d, e, f], 1 + usize::from(fsp.min(6)));
}

/// The two digits of `v % 100`.
fn pair(v: u32) -> [u8; 2] {
    let i = (v % 100) as usize * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

/// `v` in decimal, left-padded with zeros to at least `width` (at most 10) digits.
pub(super) fn padded(out: &mut Vec<u8>, v: u32, width: usize) {
    let digits = v.checked_ilog10().unwrap_or(0) as usize + 1;
    let len = digits.max(width).min(10);
    let mut buf = [b'0'; 10];
    let mut n = v;
    for slot in buf[..len].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    append_prefix(out, &buf, len);
}

/// Appends the first `len` bytes of `buf`: a copy of the whole, fixed-size buffer, then cut
/// back. Copying a variable number of bytes is a call to `memcpy`, which for a few digits
/// cost more than the digits (about a tenth of the capture's `tail`).
fn append_prefix<const N: usize>(out: &mut Vec<u8>, buf: &[u8; N], len: usize) {
    let start = out.len();
    out.extend_from_slice(buf);
    out.truncate(start + len);
}

/// "00" to "99", for writing two digits per division.
static PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// An unsigned integer in decimal.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    let digits = v.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut buf = [0u8; 20];
    let mut i = digits;
    let mut n = v;
    // Four digits per division: `seq` and the two times, 13-19 digits each, are in every event.
    while n >= 10_000 {
        let rem = (n % 10_000) as u32;
        n /= 10_000;
        i -= 4;
        let ([a, b], [c, d]) = (pair(rem / 100), pair(rem));
        buf[i..i + 4].copy_from_slice(&[a, b, c, d]);
    }
    let n = n as u32;
    if n >= 100 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&pair(n));
    }
    let top = if n >= 100 { n / 100 } else { n };
    if top >= 10 {
        buf[..2].copy_from_slice(&pair(top));
    } else {
        buf[0] = b'0' + top as u8;
    }
    append_prefix(out, &buf, digits);
}

/// A signed integer in decimal (also the text of the `sluice-seq` header).
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}
