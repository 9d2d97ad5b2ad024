//! Which MySQL/MariaDB errors are worth retrying.

use super::super::Outcome;
use sqlx::mysql::MySqlDatabaseError;

/// Server error numbers that pass by themselves or once the deployment is fixed: lock conflicts,
/// a server going away or read-only, too many connections, missing rights or tables (the
/// deployment's problem, not the row's: retrying resumes the stream once someone fixes it).
const TRANSIENT: &[u16] = &[
    1040, // too many connections
    1044, // access denied to database
    1045, // access denied for user
    1049, // unknown database
    1053, // server shutdown in progress
    1142, // command denied
    1146, // table doesn't exist
    1152, // aborted connection
    1158, 1159, 1160, 1161, // network read/write errors and timeouts
    1205, // lock wait timeout
    1213, // deadlock
    1290, // --read-only
    1836, // read-only mode
    1927, // connection killed
    1969, // statement timeout (MariaDB max_statement_time)
    2002, 2003, 2006, 2013, 2055, // client: cannot connect, server gone, lost connection
    3024, // MySQL max_execution_time
    4031, // MySQL: disconnected by the server for inactivity
];

/// The one place that decides: deadlocks, lock waits, lost connections, timeouts and pool
/// errors become `Retry`; what the server says about a row (out of range, unknown column, NOT
/// NULL, bad value, too long, duplicate in another unique key, ...) becomes `Reject` with its
/// message.
pub fn classify(err: &sqlx::Error) -> Outcome {
    match err {
        sqlx::Error::Database(db) => {
            let Some(my) = db.try_downcast_ref::<MySqlDatabaseError>() else {
                return Outcome::Retry(format!("mysql: {db}"));
            };
            let number = my.number();
            if TRANSIENT.contains(&number) {
                Outcome::Retry(format!("mysql error {number}: {}", my.message()))
            } else {
                Outcome::Reject(format!(
                    "the replica refused the row: error {number} ({}): {}",
                    my.code().unwrap_or("HY000"),
                    my.message()
                ))
            }
        }
        // Io, Tls, PoolTimedOut, PoolClosed, WorkerCrashed, Protocol...: the connection, not the row.
        other => Outcome::Retry(format!("mysql: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_transient() {
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert!(matches!(classify(&io), Outcome::Retry(_)));
        assert!(matches!(
            classify(&sqlx::Error::PoolTimedOut),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            classify(&sqlx::Error::PoolClosed),
            Outcome::Retry(_)
        ));
    }

    #[test]
    fn transient_numbers() {
        // The numbers the issue names, and the data errors that must not be retried.
        for n in [1213, 1205, 2013, 2006, 1927, 1146] {
            assert!(TRANSIENT.contains(&n), "{n}");
        }
        for n in [1264, 1054, 1048, 1366, 1406, 1062, 1452, 3140, 4025] {
            assert!(!TRANSIENT.contains(&n), "{n}");
        }
    }
}
