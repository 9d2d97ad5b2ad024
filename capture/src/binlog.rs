//! Binlog bytes to typed values: TABLE_MAP metadata, rows events, column values, and the
//! MariaDB events mysql_common does not know. Pure functions; errors never panic.

pub mod cursor;
pub mod decimal;
pub mod fixed_bin;
pub mod json_diff;
pub mod jsonb;
pub mod mariadb;
pub mod rows;
pub mod table_map;
pub mod value;

pub use cursor::Malformed;
pub use fixed_bin::FixedBin;
pub use rows::{Columns, Image, Layout, RowsEvent, RowsKind, Side, Slot};
pub use table_map::{Charset, Column, ColumnKind, TableMap};
