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
    c.query_drop(format!("CREATE DATABASE {db}")).await.unwrap();
    for table in tables {
        c.query_drop(format!("CREATE TABLE {db}.{table}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE TABLE {db}.{table}: {e}"));
    }
}

/// The end of the server's binlog, `(file, position)` from `SHOW MASTER STATUS`: where a capture
/// starts to see only what is written after now.
pub async fn binlog_end(c: &mut Conn) -> (String, u64) {
    let row: mysql_async::Row = c
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .expect("SHOW MASTER STATUS returned no row: binlog is off");
    (row.get(0).unwrap(), row.get(1).unwrap())
}
