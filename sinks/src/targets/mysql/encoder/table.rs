//! A replica table as the encoder sees it: its columns, their kinds and its primary key.

use rustc_hash::FxHashMap;
use std::sync::Arc;

/// The columns and primary key of one replica table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMeta {
    pub database: String,
    pub table: String,
    /// In table order, with the server's spelling.
    pub columns: Vec<(String, ColumnKind)>,
    pub primary_key: Vec<String>,
    /// Lower-case name to index in `columns` (MySQL column names ignore case).
    index: FxHashMap<String, usize>,
    /// `columns`' names, shared by every op that writes them.
    shared: Vec<Arc<str>>,
}

impl TableMeta {
    /// A table's description; `columns` in table order.
    pub fn new(
        database: &str,
        table: &str,
        columns: Vec<(String, ColumnKind)>,
        primary_key: Vec<String>,
    ) -> TableMeta {
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (c.to_lowercase(), i))
            .collect();
        let shared = columns.iter().map(|(c, _)| Arc::from(c.as_str())).collect();
        TableMeta {
            database: database.to_owned(),
            table: table.to_owned(),
            columns,
            primary_key,
            index,
            shared,
        }
    }

    /// The column `name` (any case): its server spelling and kind.
    pub fn column(&self, name: &str) -> Option<(&str, ColumnKind)> {
        let i = self.position(name)?;
        self.columns.get(i).map(|(c, k)| (c.as_str(), *k))
    }

    /// The column `name` (any case): its server spelling, shared, and kind.
    pub(super) fn column_shared(&self, name: &str) -> Option<(&Arc<str>, ColumnKind)> {
        let i = self.position(name)?;
        Some((self.shared.get(i)?, self.columns.get(i)?.1))
    }

    fn position(&self, name: &str) -> Option<usize> {
        match self.index.get(name) {
            Some(i) => Some(*i),
            None => self.index.get(&name.to_lowercase()).copied(),
        }
    }

    /// `` `db`.`table` ``
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote(&self.database), quote(&self.table))
    }

    pub(super) fn names(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(c, _)| c.as_str()).collect();
        names.join(", ")
    }
}

/// How a replica column wants its JSON value, from `information_schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// BINARY, VARBINARY, BLOB: the event's base64 is decoded to bytes.
    Binary,
    /// Spatial types: `{"srid","wkb"}` becomes `ST_GeomFromWKB(wkb, srid)`.
    Geometry,
    /// JSON (MySQL's type, or MariaDB's LONGTEXT with a `json_valid` check): JSON text.
    Json,
    /// DATETIME, TIMESTAMP: `2026-11-21T09:15:02Z` becomes `2026-11-21 09:15:02` (UTC session).
    DateTime,
    /// Integer types (a soft-delete flag column gets 1).
    Integer,
    Other,
}

impl ColumnKind {
    /// The kind of an `information_schema.COLUMNS.DATA_TYPE`.
    pub fn from_data_type(data_type: &str) -> ColumnKind {
        match data_type.to_ascii_lowercase().as_str() {
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                ColumnKind::Binary
            }
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => ColumnKind::Geometry,
            "json" => ColumnKind::Json,
            "datetime" | "timestamp" => ColumnKind::DateTime,
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                ColumnKind::Integer
            }
            _ => ColumnKind::Other,
        }
    }
}

/// `` `name` `` with backticks doubled.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
