//! A bounds-checked reader over binlog bytes: every read that would run past the end is an error.

use std::fmt;

/// Why bytes could not be decoded; the caller adds the binlog file and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Malformed {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Malformed(msg.into())
    }
}

/// A position in a byte slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes `start..end` of the whole buffer (empty where the range is not in it).
    pub fn span(&self, start: usize, end: usize) -> &'a [u8] {
        self.buf.get(start..end).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(Malformed(format!(
                "needed {n} bytes at byte {} but only {} remain",
                self.pos,
                self.buf.len() - self.pos
            ))),
        }
    }

    pub fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    /// Little-endian unsigned integer of `n` (1..=8) bytes.
    pub fn uint_le(&mut self, n: usize) -> Result<u64, Malformed> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }

    /// Big-endian unsigned integer of `n` (1..=8) bytes.
    pub fn uint_be(&mut self, n: usize) -> Result<u64, Malformed> {
        let b = self.take(n)?;
        Ok(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }

    pub fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(self.uint_le(2)? as u16)
    }

    pub fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(self.uint_le(4)? as u32)
    }

    /// MySQL length-encoded integer.
    pub fn lenenc(&mut self) -> Result<u64, Malformed> {
        match self.u8()? {
            b @ 0..=0xfa => Ok(u64::from(b)),
            0xfc => self.uint_le(2),
            0xfd => self.uint_le(3),
            0xfe => self.uint_le(8),
            b => Err(Malformed(format!(
                "0x{b:02x} is not a length-encoded integer prefix"
            ))),
        }
    }

    /// A length-encoded integer used as a length, checked against the bytes that remain.
    pub fn lenenc_len(&mut self) -> Result<usize, Malformed> {
        let n = self.lenenc()?;
        let remaining = self.buf.len() - self.pos;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= remaining)
            .ok_or_else(|| {
                Malformed(format!(
                    "length {n} exceeds the {remaining} bytes remaining"
                ))
            })
    }

    /// Length-encoded string bytes.
    pub fn lenenc_bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.lenenc_len()?;
        self.take(n)
    }
}

/// Bit `i` of a little-endian-per-byte bitmap as MySQL writes row bitmaps.
pub fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap
        .get(i / 8)
        .is_some_and(|byte| byte & (1 << (i % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_refuses_to_overrun() {
        let mut c = Cursor::new(&[1, 2, 3, 0xfc, 0x10, 0x00, 7]);
        assert_eq!(c.uint_le(2).unwrap(), 0x0201);
        assert_eq!(c.u8().unwrap(), 3);
        assert_eq!(c.lenenc().unwrap(), 16);
        assert!(c.take(2).is_err());
        assert_eq!(c.u8().unwrap(), 7);
        assert!(c.u8().is_err());
        assert_eq!(Cursor::new(&[1, 2, 3]).uint_be(3).unwrap(), 0x010203);
        assert!(Cursor::new(&[0xfc, 1]).lenenc().is_err());
        assert!(Cursor::new(&[5, 1]).lenenc_bytes().is_err());
    }

    #[test]
    fn bitmap_bits() {
        assert!(bit(&[0b0000_0010], 1));
        assert!(!bit(&[0b0000_0010], 0));
        assert!(!bit(&[0xff], 9));
    }
}
