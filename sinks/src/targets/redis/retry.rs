//! Which Redis errors are worth retrying.

use super::super::Outcome;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// The one place that decides: transient errors (connection, timeout, cluster moving, loading)
/// become `Retry`; everything else the server says about a command (WRONGTYPE, OOM...) `Reject`.
pub fn classify(err: &RedisError) -> Outcome {
    let transient = match err.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => true,
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
        ),
        // Errors the client raises itself about the connection (auth, RESP version) are about
        // the deployment, not the item: retry them so a fixed server resumes the stream.
        ErrorKind::AuthenticationFailed
        | ErrorKind::InvalidClientConfig
        | ErrorKind::RESP3NotSupported => true,
        _ => err.is_timeout() || err.is_connection_dropped() || err.is_connection_refusal(),
    };
    // OOM means the server is full right now, not that the item is wrong.
    let oom = err.code() == Some("OOM");
    if transient || oom {
        Outcome::Retry(format!("redis: {err}"))
    } else {
        Outcome::Reject(format!("redis refused the command: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_is_transient_and_wrongtype_is_not() {
        let io: RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        assert!(matches!(classify(&io), Outcome::Retry(_)));
        let wrong: RedisError = (ErrorKind::UnexpectedReturnType, "WRONGTYPE").into();
        assert!(matches!(classify(&wrong), Outcome::Reject(_)));
    }
}
