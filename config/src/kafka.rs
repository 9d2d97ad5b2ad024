//! What librdkafka says about a broker connection, as errors that name the `[kafka]` setting to
//! fix.
//!
//! librdkafka retries a failed login or TLS handshake forever: a request made meanwhile only
//! times out, and the reason goes to the client's log and error callbacks. [`KafkaWatch`] is a
//! client context that keeps that reason, [`KafkaConfig::classify`](crate::KafkaConfig::classify)
//! decides whether it is one that only the config can fix, and [`watched`] runs a request until
//! it succeeds, such a reason turns up, or its time is over. This file holds the error; the
//! decision is in `classify`, the context and [`watched`] in `watch`.

mod classify;
pub(crate) mod kerberos;
mod watch;

pub use watch::{watched, KafkaFailure, KafkaWatch};

use std::fmt;

/// A Kafka connection problem that retrying cannot fix: the message names the `[kafka]` setting
/// to change. It never contains a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaSecurityError {
    /// The broker refused the SASL user name or password.
    SaslLogin {
        broker: String,
        user: String,
        mechanism: String,
    },
    /// The broker does not offer the configured SASL mechanism.
    SaslMechanism {
        broker: String,
        mechanism: String,
        /// librdkafka's text, which lists the mechanisms the broker offers.
        detail: String,
    },
    /// The broker's certificate is not signed by a CA this client trusts.
    UntrustedBroker {
        broker: String,
        /// `ssl_ca_location`, or `None` for the system's CAs.
        ca: Option<String>,
        detail: String,
    },
    /// The broker refused the connection because of the client certificate (mTLS): none was
    /// sent, or it is not one the broker trusts.
    ClientCertificate {
        broker: String,
        /// `ssl_certificate_location`, or `None` when no certificate is configured.
        certificate: Option<String>,
        /// The TLS alert the broker sent, e.g. `bad certificate`.
        alert: String,
    },
    /// TLS to a listener that speaks plaintext.
    PlaintextListener { broker: String, protocol: String },
    /// A CA, certificate or key file that librdkafka could not load.
    File {
        /// The config key, e.g. `ssl_key_location`.
        key: &'static str,
        path: String,
        /// What is wrong with the file and what to do, in words.
        problem: String,
        /// librdkafka's (OpenSSL's) text.
        detail: String,
    },
    /// A Kerberos (SASL/GSSAPI) login that cannot succeed as configured.
    Kerberos {
        /// The config key to change, e.g. `sasl_kerberos_principal`.
        key: &'static str,
        /// What is wrong and what to do, in words, naming the setting.
        problem: String,
        /// kinit's or librdkafka's text.
        detail: String,
    },
}

impl fmt::Display for KafkaSecurityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KafkaSecurityError::SaslLogin {
                broker,
                user,
                mechanism,
            } => write!(
                f,
                "Kafka at {broker} rejected the SASL login of user {user} ({mechanism}): check kafka.sasl_username and kafka.sasl_password"
            ),
            KafkaSecurityError::SaslMechanism {
                broker,
                mechanism,
                detail,
            } => write!(
                f,
                "Kafka at {broker} does not offer the SASL mechanism {mechanism} ({detail}): set kafka.sasl_mechanism to one it offers"
            ),
            KafkaSecurityError::UntrustedBroker {
                broker,
                ca: Some(ca),
                detail,
            } => write!(
                f,
                "the TLS certificate of {broker} is not signed by a CA in kafka.ssl_ca_location ({ca}): {detail}; point ssl_ca_location at the CA that signed the brokers' certificates (if it does, check that the certificate is current and names {host})",
                host = host_of(broker)
            ),
            KafkaSecurityError::UntrustedBroker {
                broker,
                ca: None,
                detail,
            } => write!(
                f,
                "the TLS certificate of {broker} is not signed by a CA the system trusts, and kafka.ssl_ca_location is not set: {detail}; set ssl_ca_location to the PEM file of the CA that signed the brokers' certificates"
            ),
            KafkaSecurityError::ClientCertificate {
                broker,
                certificate: None,
                alert,
            } => write!(
                f,
                "Kafka at {broker} requires a client certificate (TLS alert: {alert}): set kafka.ssl_certificate_location and kafka.ssl_key_location to the PEM certificate and key of this client"
            ),
            KafkaSecurityError::ClientCertificate {
                broker,
                certificate: Some(cert),
                alert,
            } => write!(
                f,
                "Kafka at {broker} refused the client certificate in kafka.ssl_certificate_location ({cert}) (TLS alert: {alert}): use a current certificate signed by a CA the brokers trust, with its key in kafka.ssl_key_location"
            ),
            KafkaSecurityError::PlaintextListener { broker, protocol } => write!(
                f,
                "{broker} is a plaintext listener, but kafka.security_protocol is \"{protocol}\": list the brokers' TLS listener in kafka.brokers, or set security_protocol = \"plaintext\""
            ),
            KafkaSecurityError::File {
                key,
                path,
                problem,
                detail,
            } => write!(f, "kafka.{key} ({path}) {problem} ({detail})"),
            KafkaSecurityError::Kerberos {
                key: _,
                problem,
                detail,
            } => write!(f, "Kerberos login to Kafka failed: {problem} ({detail})"),
        }
    }
}

impl std::error::Error for KafkaSecurityError {}

/// `host` of `host:port`.
fn host_of(broker: &str) -> &str {
    broker.rsplit_once(':').map_or(broker, |(host, _)| host)
}

#[cfg(test)]
mod tests;
