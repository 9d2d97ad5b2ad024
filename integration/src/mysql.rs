//! Connections to MariaDB/MySQL and the statements the tests share: databases of their own, the
//! binlog position a capture starts from.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// A connection to the shared test server ([`crate::mysql_url`]).
pub async fn conn() -> Conn {
    conn_to(&crate::mysql_url()).await
}

/// A connection to the server at `url`.
pub async fn conn_to(url: &str) -> Conn {
    let opts = mysql_async::Opts::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    Conn::new(opts)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Creates database `db` and in it each of `tables`, given as `name (columns...)` after
/// `CREATE TABLE db.`.
pub async fn create_database(c: &mut Conn, db: &str, tables: &[&str]) {
    let tables = tables.iter().map(|t| format!("CREATE TABLE {db}.{t}"));
    exec_all(
        c,
        std::iter::once(format!("CREATE DATABASE {db}")).chain(tables),
    )
    .await;
}

/// Runs `statements` in order.
pub async fn exec_all<S: AsRef<str>>(c: &mut Conn, statements: impl IntoIterator<Item = S>) {
    for sql in statements {
        let sql = sql.as_ref();
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Creates user `user`@`%` with `password` and grants it `grants` (`"SELECT, REPLICATION
/// SLAVE"`) on `*.*`.
pub async fn create_user(c: &mut Conn, user: &str, password: &str, grants: &str) {
    exec_all(
        c,
        [
            format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"),
            format!("GRANT {grants} ON *.* TO '{user}'@'%'"),
        ],
    )
    .await;
}

/// The end of the server's binlog, `(file, position)` from `SHOW MASTER STATUS`: where a capture
/// starts to see only what is written after now.
pub async fn binlog_end(c: &mut Conn) -> (String, u64) {
    let row: mysql_async::Row = c
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap_or_else(|e| panic!("SHOW MASTER STATUS: {e}"))
        .expect("SHOW MASTER STATUS returned no row: binlog is off");
    (
        row.get(0).expect("the binlog file"),
        row.get(1).expect("the binlog position"),
    )
}
