//! What mapped rows mean in SQL: pure, so every case is a unit test.
//!
//! One item becomes one or two [`Op`]s (an UPDATE that moved its key also removes the old key);
//! [`plan`] turns the ops of consecutive items for one table into multi-row statements: the last
//! op per key wins, deletes first, then upserts, each a single statement per column set.
//! The replica table's description is in `table`, values in `value`, ops in `op`, statements in
//! `plan` and their literal form in `statement`.

mod op;
mod plan;
mod statement;
mod table;
mod value;

pub use op::{ops, Op, OpKind};
pub use plan::{plan, MAX_STATEMENT_BYTES};
pub use statement::Statement;
pub use table::{quote, ColumnKind, TableMeta};
pub use value::{bind, Bound, SqlValue};

use super::config::MysqlRule;

#[cfg(test)]
mod tests;
