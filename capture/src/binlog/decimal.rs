//! MySQL's binary DECIMAL format, decoded to exact text with the declared scale.

use super::cursor::{Cursor, Malformed};

const DIG_PER_DEC: usize = 9;
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// Bytes a DECIMAL(precision, scale) value takes in a row.
pub fn decimal_size(precision: u8, scale: u8) -> usize {
    let intg = usize::from(precision - scale.min(precision));
    let frac = usize::from(scale);
    (intg / DIG_PER_DEC) * 4
        + DIG2BYTES[intg % DIG_PER_DEC]
        + (frac / DIG_PER_DEC) * 4
        + DIG2BYTES[frac % DIG_PER_DEC]
}

/// Reads one DECIMAL(precision, scale) value as text, e.g. `-12.30`.
pub fn read_decimal(c: &mut Cursor<'_>, precision: u8, scale: u8) -> Result<String, Malformed> {
    let mut out = Vec::with_capacity(usize::from(precision) + 3);
    write_decimal(c, precision, scale, &mut out)?;
    // Only ASCII digits, `-` and `.` were written.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Most characters a DECIMAL's text can have: 65 digits, a point, a sign, and the zeros of
/// digit groups that a corrupt declaration could add (precision and scale are each at most
/// 255 in the metadata byte).
const MAX_TEXT: usize = 2 * 255 + 2 * DIG_PER_DEC + 2;

/// Appends one DECIMAL(precision, scale) value as text, e.g. `-12.30`, to `out`; nothing is
/// appended when the bytes are not a valid value.
pub fn write_decimal(
    c: &mut Cursor<'_>,
    precision: u8,
    scale: u8,
    out: &mut Vec<u8>,
) -> Result<(), Malformed> {
    let size = decimal_size(precision, scale);
    let raw = c.take(size)?;
    if raw.is_empty() {
        return Err(Malformed::new("empty DECIMAL value"));
    }
    let negative = raw[0] & 0x80 == 0;
    // DECIMAL(65, 30), the largest, takes 30 bytes: no allocation for the copy.
    let mut small = [0u8; 32];
    let mut large = Vec::new();
    let bytes: &mut [u8] = if raw.len() <= small.len() {
        small[..raw.len()].copy_from_slice(raw);
        &mut small[..raw.len()]
    } else {
        large.extend_from_slice(raw);
        &mut large
    };
    bytes[0] ^= 0x80;
    if negative {
        for b in bytes.iter_mut() {
            *b = !*b;
        }
    }
    let intg = usize::from(precision - scale.min(precision));
    let frac = usize::from(scale);
    let mut d = Cursor::new(bytes);
    // The digits, written into a buffer on the stack: the integer part first.
    let mut text = Digits {
        buf: [0; MAX_TEXT],
        len: 0,
    };
    let lead = intg % DIG_PER_DEC;
    if lead > 0 {
        push_group(&mut text, &mut d, DIG2BYTES[lead], lead)?;
    }
    for _ in 0..intg / DIG_PER_DEC {
        push_group(&mut text, &mut d, 4, DIG_PER_DEC)?;
    }
    let int_len = text.len;
    let zeros = text.buf[..int_len]
        .iter()
        .take_while(|b| **b == b'0')
        .count();
    if frac > 0 {
        text.push(b'.');
        for _ in 0..frac / DIG_PER_DEC {
            push_group(&mut text, &mut d, 4, DIG_PER_DEC)?;
        }
        let tail = frac % DIG_PER_DEC;
        if tail > 0 {
            push_group(&mut text, &mut d, DIG2BYTES[tail], tail)?;
        }
    }
    // Leading zeros go, but one digit stays before the point.
    let digits = if zeros == int_len {
        &text.buf[int_len..text.len]
    } else {
        &text.buf[zeros..text.len]
    };
    // MySQL never writes negative zero, but corrupt bytes could; keep the text a valid number.
    if negative && digits.iter().any(|b| (b'1'..=b'9').contains(b)) {
        out.push(b'-');
    }
    if zeros == int_len {
        out.push(b'0');
    }
    out.extend_from_slice(digits);
    Ok(())
}

/// Decimal text under construction.
struct Digits {
    buf: [u8; MAX_TEXT],
    len: usize,
}

impl Digits {
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }
}

fn push_group(
    out: &mut Digits,
    d: &mut Cursor<'_>,
    bytes: usize,
    digits: usize,
) -> Result<(), Malformed> {
    let v = d.uint_be(bytes)?;
    if v >= 10u64.pow(digits as u32) {
        return Err(Malformed::new(format!(
            "DECIMAL digit group {v} has more than {digits} digits"
        )));
    }
    // Zero-padded to `digits` without going through fmt (this runs for every DECIMAL cell).
    let mut buf = [b'0'; DIG_PER_DEC];
    let mut n = v;
    for slot in buf[..digits].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    for &b in &buf[..digits] {
        out.push(b);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes decimal text the way MySQL's decimal2bin does, for round-trip tests.
    pub(crate) fn encode(text: &str, precision: u8, scale: u8) -> Vec<u8> {
        let negative = text.starts_with('-');
        let t = text.trim_start_matches('-');
        let (i, f) = t.split_once('.').unwrap_or((t, ""));
        let intg = usize::from(precision - scale);
        let frac = usize::from(scale);
        let i = format!("{i:0>intg$}");
        let f = format!("{f:0<frac$}");
        let mut out = Vec::new();
        let mut groups: Vec<(&str, usize)> = Vec::new();
        let lead = intg % 9;
        if lead > 0 {
            groups.push((&i[..lead], DIG2BYTES[lead]));
        }
        for g in 0..intg / 9 {
            groups.push((&i[lead + g * 9..lead + g * 9 + 9], 4));
        }
        for g in 0..frac / 9 {
            groups.push((&f[g * 9..g * 9 + 9], 4));
        }
        if frac % 9 > 0 {
            groups.push((&f[frac / 9 * 9..], DIG2BYTES[frac % 9]));
        }
        for (digits, n) in groups {
            let v: u64 = digits.parse().unwrap();
            out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
        }
        if negative {
            for b in out.iter_mut() {
                *b = !*b;
            }
        }
        out[0] ^= 0x80;
        out
    }

    #[test]
    fn known_bytes() {
        // DECIMAL(14,4) 1234567890.1234 from the MySQL source comments.
        let bytes = [0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2];
        assert_eq!(
            read_decimal(&mut Cursor::new(&bytes), 14, 4).unwrap(),
            "1234567890.1234"
        );
        let mut neg = bytes;
        for b in neg.iter_mut() {
            *b = !*b;
        }
        assert_eq!(
            read_decimal(&mut Cursor::new(&neg), 14, 4).unwrap(),
            "-1234567890.1234"
        );
    }

    #[test]
    fn round_trips() {
        let cases = [
            ("12.30", 10, 2),
            ("-0.01", 10, 2),
            ("0.00", 10, 2),
            ("0", 5, 0),
            (
                "99999999999999999999999999999999999.999999999999999999999999999999",
                65,
                30,
            ),
            (
                "-99999999999999999999999999999999999999999999999999999999999999999",
                65,
                0,
            ),
            ("1.5", 2, 1),
            ("-123456789.987654321", 18, 9),
        ];
        for (text, p, s) in cases {
            let bytes = encode(text, p, s);
            assert_eq!(bytes.len(), decimal_size(p, s), "{text}");
            assert_eq!(read_decimal(&mut Cursor::new(&bytes), p, s).unwrap(), text);
        }
    }

    #[test]
    fn bad_digits_are_errors() {
        assert!(read_decimal(&mut Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0xff]), 9, 0).is_err());
        assert!(read_decimal(&mut Cursor::new(&[0x80]), 10, 2).is_err());
    }
}
