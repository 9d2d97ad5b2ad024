//! TABLE_MAP events: which table a rows event is about, its column types and, with
//! `binlog_row_metadata=FULL`, column names, signedness, charsets, ENUM/SET names and the primary key.

use super::cursor::{Cursor, Malformed};
use super::fixed_bin::FixedBin;
use std::sync::Arc;

/// MySQL column type codes as they appear in TABLE_MAP events.
pub mod ty {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// How a column's bytes are laid out in a rows event and what they mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    Tiny,
    Short,
    Int24,
    Long,
    LongLong,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Year,
    Date,
    /// TIME2 (MySQL 5.6+ and MariaDB's default format).
    Time {
        fsp: u8,
    },
    /// Pre-5.6 TIME: 3 bytes, HHMMSS as an integer.
    TimeOld,
    DateTime {
        fsp: u8,
    },
    /// Pre-5.6 DATETIME: 8 bytes, YYYYMMDDhhmmss as an integer.
    DateTimeOld,
    Timestamp {
        fsp: u8,
    },
    TimestampOld,
    /// VARCHAR/VARBINARY: a 1- or 2-byte length, then the bytes.
    VarString {
        len_bytes: u8,
    },
    /// CHAR/BINARY: a 1- or 2-byte length, then the bytes; `max_len` is the declared size in
    /// bytes (BINARY values lose their trailing zero bytes in the binlog and get them back).
    FixedString {
        len_bytes: u8,
        max_len: u16,
    },
    /// TEXT/BLOB: a 1..4-byte length, then the bytes.
    Blob {
        len_bytes: u8,
    },
    /// MySQL's binary JSON.
    Json {
        len_bytes: u8,
    },
    Geometry {
        len_bytes: u8,
    },
    /// ENUM stored as a 1- or 2-byte index.
    Enum {
        pack: u8,
    },
    /// SET stored as a 1..8-byte bitmap.
    Set {
        pack: u8,
    },
    /// BIT(n) stored big-endian in `bytes` bytes.
    Bit {
        bytes: u8,
    },
    Null,
}

impl ColumnKind {
    /// Columns that carry a signedness bit in the SIGNEDNESS metadata.
    fn is_numeric(&self) -> bool {
        matches!(
            self,
            ColumnKind::Tiny
                | ColumnKind::Short
                | ColumnKind::Int24
                | ColumnKind::Long
                | ColumnKind::LongLong
                | ColumnKind::Float
                | ColumnKind::Double
                | ColumnKind::Decimal { .. }
        )
    }

    /// Columns that carry a collation in the DEFAULT_CHARSET / COLUMN_CHARSET metadata.
    fn is_character(&self) -> bool {
        matches!(
            self,
            ColumnKind::VarString { .. } | ColumnKind::FixedString { .. } | ColumnKind::Blob { .. }
        )
    }
}

/// How text bytes of a column are turned into a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    /// MySQL's latin1 (which is Windows-1252).
    Latin1,
    /// The binary charset: bytes, published as base64.
    Binary,
}

impl Charset {
    /// The charset of a MySQL/MariaDB collation id.
    pub fn from_collation(id: u64) -> Charset {
        match id {
            63 => Charset::Binary,
            5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Charset::Latin1,
            // utf8mb3/utf8mb4/ascii collations; other charsets are decoded as UTF-8 with
            // replacement characters (docs/capture.md lists the supported charsets).
            _ => Charset::Utf8,
        }
    }
}

/// One column of a mapped table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    pub unsigned: bool,
    pub charset: Charset,
    /// ENUM or SET member names, in declaration order.
    pub members: Vec<String>,
    /// MariaDB stores JSON as LONGTEXT; such columns are parsed as JSON text.
    pub json_text: bool,
    /// MariaDB's UUID, INET4 and INET6 are BINARY in the binlog; published as their text.
    pub fixed_bin: Option<FixedBin>,
}

/// A decoded TABLE_MAP event.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMap {
    pub table_id: u64,
    pub database: String,
    pub table: String,
    pub columns: Vec<Column>,
    /// Indices of the primary-key columns, in key order.
    pub pk: Vec<usize>,
    /// Column names and signedness came from the event (binlog_row_metadata=FULL).
    pub full_metadata: bool,
    /// Primary-key column names, in key order (cached for events).
    pub pk_names: Arc<Vec<String>>,
}

/// Optional metadata field types (MySQL `Table_map_log_event::Optional_metadata_field_type`).
mod opt {
    pub const SIGNEDNESS: u8 = 1;
    pub const DEFAULT_CHARSET: u8 = 2;
    pub const COLUMN_CHARSET: u8 = 3;
    pub const COLUMN_NAME: u8 = 4;
    pub const SET_STR_VALUE: u8 = 5;
    pub const ENUM_STR_VALUE: u8 = 6;
    pub const SIMPLE_PRIMARY_KEY: u8 = 8;
    pub const PRIMARY_KEY_WITH_PREFIX: u8 = 9;
}

impl TableMap {
    /// Parses the body of a TABLE_MAP event (after the common header, checksum removed).
    /// `table_id_len` is 6 unless the FORMAT_DESCRIPTION says the post-header is 6 bytes long.
    pub fn parse(data: &[u8], table_id_len: usize) -> Result<TableMap, Malformed> {
        let mut c = Cursor::new(data);
        let table_id = c.uint_le(table_id_len)?;
        let _flags = c.u16()?;
        let db_len = usize::from(c.u8()?);
        let database = lossy(c.take(db_len)?);
        c.u8()?;
        let table_len = usize::from(c.u8()?);
        let table = lossy(c.take(table_len)?);
        c.u8()?;
        let count = c.lenenc_len()?;
        let types = c.take(count)?;
        let meta = c.lenenc_bytes()?;
        let _nullable = c.take(count.div_ceil(8))?;
        let mut m = Cursor::new(meta);
        let mut columns = Vec::with_capacity(count);
        for (i, t) in types.iter().enumerate() {
            let kind = column_kind(*t, &mut m)
                .map_err(|e| Malformed::new(format!("column {i} of {database}.{table}: {e}")))?;
            columns.push(Column {
                name: format!("col{}", i + 1),
                kind,
                unsigned: false,
                charset: Charset::Utf8,
                members: Vec::new(),
                json_text: false,
                fixed_bin: None,
            });
        }
        let mut map = TableMap {
            table_id,
            database,
            table,
            columns,
            pk: Vec::new(),
            full_metadata: false,
            pk_names: Arc::new(Vec::new()),
        };
        map.apply_optional_metadata(c.rest()).map_err(|e| {
            Malformed::new(format!(
                "optional metadata of {}.{}: {e}",
                map.database, map.table
            ))
        })?;
        map.refresh_pk_names();
        Ok(map)
    }

    /// Recomputes [`TableMap::pk_names`] after names or the key changed.
    pub fn refresh_pk_names(&mut self) {
        let names = self
            .pk
            .iter()
            .filter_map(|i| self.columns.get(*i).map(|c| c.name.clone()))
            .collect();
        self.pk_names = Arc::new(names);
    }

    fn apply_optional_metadata(&mut self, bytes: &[u8]) -> Result<(), Malformed> {
        let mut c = Cursor::new(bytes);
        let mut names_seen = false;
        let mut signedness_seen = false;
        while !c.is_empty() {
            let field = c.u8()?;
            let value = c.lenenc_bytes()?;
            let mut v = Cursor::new(value);
            match field {
                opt::SIGNEDNESS => {
                    signedness_seen = true;
                    for (n, col) in self
                        .columns
                        .iter_mut()
                        .filter(|c| c.kind.is_numeric())
                        .enumerate()
                    {
                        // Most significant bit first.
                        let byte = value.get(n / 8).copied().unwrap_or(0);
                        col.unsigned = byte & (0x80 >> (n % 8)) != 0;
                    }
                }
                opt::DEFAULT_CHARSET => {
                    let default = Charset::from_collation(v.lenenc()?);
                    let character: Vec<usize> = self.indices(ColumnKind::is_character);
                    for i in &character {
                        self.columns[*i].charset = default;
                    }
                    while !v.is_empty() {
                        let nth = v.lenenc()?;
                        let coll = v.lenenc()?;
                        if let Some(i) = usize::try_from(nth).ok().and_then(|n| character.get(n)) {
                            self.columns[*i].charset = Charset::from_collation(coll);
                        }
                    }
                }
                opt::COLUMN_CHARSET => {
                    for i in self.indices(ColumnKind::is_character) {
                        self.columns[i].charset = Charset::from_collation(v.lenenc()?);
                    }
                }
                opt::COLUMN_NAME => {
                    names_seen = true;
                    for col in self.columns.iter_mut() {
                        col.name = lossy(v.lenenc_bytes()?);
                    }
                }
                opt::SET_STR_VALUE | opt::ENUM_STR_VALUE => {
                    let want_set = field == opt::SET_STR_VALUE;
                    for col in self.columns.iter_mut() {
                        let is = match col.kind {
                            ColumnKind::Set { .. } => want_set,
                            ColumnKind::Enum { .. } => !want_set,
                            _ => false,
                        };
                        if !is {
                            continue;
                        }
                        let n = v.lenenc_len()?;
                        let mut members = Vec::with_capacity(n);
                        for _ in 0..n {
                            members.push(lossy(v.lenenc_bytes()?));
                        }
                        col.members = members;
                    }
                }
                opt::SIMPLE_PRIMARY_KEY => {
                    self.pk.clear();
                    while !v.is_empty() {
                        self.pk.push(self.column_index(v.lenenc()?)?);
                    }
                }
                opt::PRIMARY_KEY_WITH_PREFIX => {
                    self.pk.clear();
                    while !v.is_empty() {
                        let i = self.column_index(v.lenenc()?)?;
                        let _prefix = v.lenenc()?;
                        self.pk.push(i);
                    }
                }
                // ENUM/SET charsets, geometry types, visibility: member names already arrive
                // as text, so nothing else changes how a row is decoded.
                _ => {}
            }
        }
        self.full_metadata = names_seen && (signedness_seen || !self.has_numeric());
        Ok(())
    }

    fn has_numeric(&self) -> bool {
        self.columns.iter().any(|c| c.kind.is_numeric())
    }

    fn indices(&self, pred: fn(&ColumnKind) -> bool) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| pred(&c.kind))
            .map(|(i, _)| i)
            .collect()
    }

    fn column_index(&self, i: u64) -> Result<usize, Malformed> {
        usize::try_from(i)
            .ok()
            .filter(|i| *i < self.columns.len())
            .ok_or_else(|| {
                Malformed::new(format!(
                    "primary key names column {i} of a {}-column table",
                    self.columns.len()
                ))
            })
    }
}

fn column_kind(t: u8, m: &mut Cursor<'_>) -> Result<ColumnKind, Malformed> {
    use ty::*;
    Ok(match t {
        TINY => ColumnKind::Tiny,
        SHORT => ColumnKind::Short,
        INT24 => ColumnKind::Int24,
        LONG => ColumnKind::Long,
        LONGLONG => ColumnKind::LongLong,
        FLOAT => {
            m.u8()?;
            ColumnKind::Float
        }
        DOUBLE => {
            m.u8()?;
            ColumnKind::Double
        }
        NEWDECIMAL => {
            let precision = m.u8()?;
            let scale = m.u8()?;
            if precision == 0 || precision > 65 || scale > 30 || scale > precision {
                return Err(Malformed::new(format!(
                    "DECIMAL({precision},{scale}) is not a valid decimal type"
                )));
            }
            ColumnKind::Decimal { precision, scale }
        }
        YEAR => ColumnKind::Year,
        DATE | NEWDATE => ColumnKind::Date,
        TIME => ColumnKind::TimeOld,
        DATETIME => ColumnKind::DateTimeOld,
        TIMESTAMP => ColumnKind::TimestampOld,
        TIME2 => ColumnKind::Time { fsp: fsp(m)? },
        DATETIME2 => ColumnKind::DateTime { fsp: fsp(m)? },
        TIMESTAMP2 => ColumnKind::Timestamp { fsp: fsp(m)? },
        VARCHAR | VAR_STRING => {
            let max = m.u16()?;
            ColumnKind::VarString {
                len_bytes: if max < 256 { 1 } else { 2 },
            }
        }
        BIT => {
            let bits = m.u8()?;
            let bytes = m.u8()?;
            // Metadata no server writes (255 bytes and some bits) overflowed here (found by
            // fuzzing).
            let total = bytes.checked_add(u8::from(bits > 0)).ok_or_else(|| {
                Malformed::new(format!(
                    "BIT column metadata claims {bytes} bytes and {bits} bits"
                ))
            })?;
            ColumnKind::Bit { bytes: total }
        }
        BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB => ColumnKind::Blob {
            len_bytes: pack_len(m)?,
        },
        JSON => ColumnKind::Json {
            len_bytes: pack_len(m)?,
        },
        GEOMETRY => ColumnKind::Geometry {
            len_bytes: pack_len(m)?,
        },
        STRING | ENUM | SET => {
            let b0 = m.u8()?;
            let b1 = m.u8()?;
            // MySQL packs the real type and a max length over 255 into these two bytes.
            let (real, max_len) = if b0 & 0x30 != 0x30 {
                (
                    b0 | 0x30,
                    u16::from(b1) | (u16::from((b0 & 0x30) ^ 0x30) << 4),
                )
            } else {
                (b0, u16::from(b1))
            };
            match real {
                ENUM => ColumnKind::Enum {
                    pack: b1.clamp(1, 2),
                },
                SET => ColumnKind::Set {
                    pack: b1.clamp(1, 8),
                },
                _ => ColumnKind::FixedString {
                    len_bytes: if max_len < 256 { 1 } else { 2 },
                    max_len,
                },
            }
        }
        NULL => ColumnKind::Null,
        other => {
            return Err(Malformed::new(format!(
                "column type {other} is not supported"
            )))
        }
    })
}

fn fsp(m: &mut Cursor<'_>) -> Result<u8, Malformed> {
    let f = m.u8()?;
    if f > 6 {
        return Err(Malformed::new(format!(
            "fractional precision {f} is over 6"
        )));
    }
    Ok(f)
}

fn pack_len(m: &mut Cursor<'_>) -> Result<u8, Malformed> {
    let n = m.u8()?;
    if !(1..=4).contains(&n) {
        return Err(Malformed::new(format!("length size {n} is not 1..4")));
    }
    Ok(n)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds TABLE_MAP bytes for tests: (type, metadata bytes) per column plus optional metadata.
    pub(crate) fn table_map_bytes(
        db: &str,
        table: &str,
        cols: &[(u8, &[u8])],
        optional: &[(u8, Vec<u8>)],
    ) -> Vec<u8> {
        let mut b = vec![42, 0, 0, 0, 0, 0, 1, 0];
        b.push(db.len() as u8);
        b.extend_from_slice(db.as_bytes());
        b.push(0);
        b.push(table.len() as u8);
        b.extend_from_slice(table.as_bytes());
        b.push(0);
        b.push(cols.len() as u8);
        b.extend(cols.iter().map(|c| c.0));
        let meta: Vec<u8> = cols.iter().flat_map(|c| c.1.iter().copied()).collect();
        b.push(meta.len() as u8);
        b.extend_from_slice(&meta);
        b.extend(std::iter::repeat_n(0xff, cols.len().div_ceil(8)));
        for (t, v) in optional {
            b.push(*t);
            b.push(v.len() as u8);
            b.extend_from_slice(v);
        }
        b
    }

    pub(crate) fn names(names: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in names {
            v.push(n.len() as u8);
            v.extend_from_slice(n.as_bytes());
        }
        v
    }

    #[test]
    fn full_metadata() {
        let bytes = table_map_bytes(
            "shop",
            "orders",
            &[
                (ty::LONG, &[]),
                (ty::VARCHAR, &[0x2c, 0x01]),
                (ty::NEWDECIMAL, &[10, 2]),
                (ty::STRING, &[ty::ENUM, 1]),
                (ty::BLOB, &[2]),
                (ty::DATETIME2, &[3]),
            ],
            &[
                (opt::SIGNEDNESS, vec![0b1000_0000]),
                (opt::DEFAULT_CHARSET, vec![45, 1, 8]),
                (
                    opt::COLUMN_NAME,
                    names(&["id", "name", "amount", "status", "note", "at"]),
                ),
                (
                    opt::ENUM_STR_VALUE,
                    vec![2, 3, b'n', b'e', b'w', 4, b'p', b'a', b'i', b'd'],
                ),
                (opt::SIMPLE_PRIMARY_KEY, vec![0]),
            ],
        );
        let t = TableMap::parse(&bytes, 6).unwrap();
        assert_eq!(
            (t.table_id, t.database.as_str(), t.table.as_str()),
            (42, "shop", "orders")
        );
        assert!(t.full_metadata);
        assert_eq!(t.pk, vec![0]);
        assert_eq!(*t.pk_names, vec!["id".to_owned()]);
        assert!(t.columns[0].unsigned);
        assert!(!t.columns[2].unsigned);
        assert_eq!(t.columns[1].kind, ColumnKind::VarString { len_bytes: 2 });
        assert_eq!(t.columns[1].charset, Charset::Utf8);
        assert_eq!(t.columns[4].charset, Charset::Latin1);
        assert_eq!(t.columns[3].members, vec!["new", "paid"]);
        assert_eq!(t.columns[5].kind, ColumnKind::DateTime { fsp: 3 });
        assert_eq!(t.columns[5].name, "at");
    }

    #[test]
    fn truncated_metadata_is_an_error() {
        let bytes = table_map_bytes("d", "t", &[(ty::VARCHAR, &[10])], &[]);
        assert!(TableMap::parse(&bytes, 6).is_err());
        let bytes = table_map_bytes(
            "d",
            "t",
            &[(ty::LONG, &[])],
            &[(opt::COLUMN_NAME, vec![9, b'a'])],
        );
        assert!(TableMap::parse(&bytes, 6).is_err());
    }
}
