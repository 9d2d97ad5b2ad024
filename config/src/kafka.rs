//! What librdkafka says about a broker connection, as errors that name the `[kafka]` setting to
//! fix.
//!
//! librdkafka retries a failed login or TLS handshake forever: a request made meanwhile only
//! times out, and the reason goes to the client's log and error callbacks. [`KafkaWatch`] is a
//! client context that keeps that reason, [`KafkaConfig::classify`] decides whether it is one
//! that only the config can fix, and [`watched`] runs a request until it succeeds, such a reason
//! turns up, or its time is over.

use crate::common::SecurityProtocol;
use crate::KafkaConfig;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, KafkaResult};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        }
    }
}

impl std::error::Error for KafkaSecurityError {}

impl KafkaConfig {
    /// The one place that decides which librdkafka reports are definite: `Some` when `report` (a
    /// log line or error of a client made from this section, or the text of a client creation
    /// error) says a setting is wrong, so retrying cannot help; `None` for everything else
    /// (a broker that is down or slow), which callers retry as before.
    pub fn classify(&self, report: &str) -> Option<KafkaSecurityError> {
        if let Some(e) = self.classify_file(report) {
            return Some(e);
        }
        let broker = || broker_of(report).unwrap_or_else(|| self.brokers.join(","));
        if report.contains("SASL authentication error") {
            return Some(KafkaSecurityError::SaslLogin {
                broker: broker(),
                user: self.sasl_username.clone().unwrap_or_default(),
                mechanism: self.mechanism_name(),
            });
        }
        if report.contains("Unsupported SASL mechanism") {
            return Some(KafkaSecurityError::SaslMechanism {
                broker: broker(),
                mechanism: self.mechanism_name(),
                detail: after(report, "Unsupported SASL mechanism: ")
                    .map(strip_timing)
                    .unwrap_or("unsupported")
                    .to_owned(),
            });
        }
        if report.contains("certificate verify failed") {
            return Some(KafkaSecurityError::UntrustedBroker {
                broker: broker(),
                ca: self.property("ssl.ca.location"),
                detail: "certificate verify failed".to_owned(),
            });
        }
        if let Some(alert) = certificate_alert(report) {
            return Some(KafkaSecurityError::ClientCertificate {
                broker: broker(),
                certificate: self.property("ssl.certificate.location"),
                alert,
            });
        }
        if report.contains("connecting to a PLAINTEXT broker listener") {
            return Some(KafkaSecurityError::PlaintextListener {
                broker: broker(),
                protocol: self.protocol_name().to_owned(),
            });
        }
        None
    }

    /// A client creation error about a TLS file: librdkafka loads them when the client is made.
    fn classify_file(&self, report: &str) -> Option<KafkaSecurityError> {
        let files = [
            ("ssl.ca.location", "ssl_ca_location", "CA certificate"),
            (
                "ssl.certificate.location",
                "ssl_certificate_location",
                "client certificate",
            ),
            ("ssl.key.location", "ssl_key_location", "private key"),
        ];
        let (property, key, what) = files
            .into_iter()
            .find(|(property, _, _)| report.contains(&format!("{property} failed")))?;
        let detail = after(report, &format!("{property} failed: "))
            .unwrap_or(report)
            .trim()
            .to_owned();
        let problem = if detail.contains("key values mismatch") {
            format!(
                "is not the key of the certificate in kafka.ssl_certificate_location ({}): give the key that belongs to that certificate",
                self.property("ssl.certificate.location").unwrap_or_default()
            )
        } else if detail.contains("system lib") || detail.contains("No such file") {
            format!("cannot be read: check that the {what} file exists there and is readable")
        } else if key == "ssl_key_location" {
            "cannot be loaded as a PEM private key: if it is encrypted, set kafka.ssl_key_password to its password (missing or wrong now)".to_owned()
        } else {
            format!("cannot be loaded: give a PEM file with the {what}")
        };
        Some(KafkaSecurityError::File {
            key,
            path: self.property(property).unwrap_or_default(),
            problem,
            detail,
        })
    }

    /// A non-secret librdkafka property as this section sets it (`options` win, as in the
    /// client).
    fn property(&self, name: &str) -> Option<String> {
        debug_assert!(!name.contains("password"));
        self.client_properties()
            .into_iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    fn mechanism_name(&self) -> String {
        self.property("sasl.mechanism")
            .unwrap_or_else(|| "GSSAPI".to_owned())
    }

    fn protocol_name(&self) -> &'static str {
        match self.security_protocol {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }
}

/// A client context that keeps the first definite connection problem librdkafka reports (see
/// [`KafkaConfig::classify`]) and logs everything as the default context does. Clones share
/// what they saw, so one can go to the client and one stay with the caller.
///
/// librdkafka's reports reach a context only while the client is polled: a producer's or
/// consumer's own thread does that, a `BaseConsumer` must be polled by its caller ([`watched`]).
#[derive(Clone)]
pub struct KafkaWatch {
    inner: Arc<Inner>,
}

struct Inner {
    kafka: KafkaConfig,
    seen: Mutex<Option<KafkaSecurityError>>,
}

impl KafkaWatch {
    /// A watch for clients made from `kafka`.
    pub fn new(kafka: &KafkaConfig) -> KafkaWatch {
        KafkaWatch {
            inner: Arc::new(Inner {
                kafka: kafka.clone(),
                seen: Mutex::new(None),
            }),
        }
    }

    /// The first definite problem reported so far.
    pub fn failure(&self) -> Option<KafkaSecurityError> {
        self.lock().clone()
    }

    /// `error` as the definite problem it is, if it is one (a client that could not be created
    /// because of a TLS file), else `error` itself.
    pub fn explain(&self, error: KafkaError) -> KafkaFailure {
        match self.inner.kafka.classify(&error.to_string()) {
            Some(e) => KafkaFailure::Settings(e),
            None => KafkaFailure::Request(error),
        }
    }

    fn observe(&self, report: &str) {
        let mut seen = self.lock();
        if seen.is_none() {
            *seen = self.inner.kafka.classify(report);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<KafkaSecurityError>> {
        // Only an `Option` is kept under the lock: a panic cannot leave it half-written.
        self.inner.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for KafkaWatch {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // The failed connection is logged (`FAIL`) before the error callback runs, which may
        // run only on a later poll.
        if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        ) {
            self.observe(log_message);
        }
        DefaultClientContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.observe(reason);
        DefaultClientContext.error(error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for KafkaWatch {}

/// Why a [`watched`] request failed.
#[derive(Debug)]
pub enum KafkaFailure {
    /// A setting is wrong (definite).
    Settings(KafkaSecurityError),
    /// The request failed or timed out for another reason (the broker may be down or slow).
    Request(KafkaError),
}

/// Longest single attempt of a [`watched`] request: how soon a definite problem is noticed.
const SLICE: Duration = Duration::from_millis(500);

/// Runs the blocking librdkafka `request` (given the time it may take) again and again within
/// `within`, until it succeeds or `watch` has seen a definite problem; `serve` polls the client
/// so its reports reach `watch` (a no-op for clients with a thread of their own).
pub fn watched<T>(
    watch: &KafkaWatch,
    within: Duration,
    mut serve: impl FnMut(),
    mut request: impl FnMut(Duration) -> KafkaResult<T>,
) -> Result<T, KafkaFailure> {
    let deadline = Instant::now() + within;
    loop {
        let started = Instant::now();
        let slice = deadline.saturating_duration_since(started).min(SLICE);
        let error = match request(slice) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        serve();
        if let Some(e) = watch.failure() {
            return Err(KafkaFailure::Settings(e));
        }
        if Instant::now() >= deadline {
            return Err(KafkaFailure::Request(error));
        }
        // An error that came back at once is not retried in a busy loop.
        if started.elapsed() < SLICE / 5 {
            std::thread::sleep(SLICE / 5);
        }
    }
}

/// The broker a librdkafka report is about: `sasl_ssl://127.0.0.1:9093/bootstrap: SASL ...`
/// (an error) or `[thrd:...]: ssl://host:9094/1: ...` (a log line) gives `127.0.0.1:9093`.
fn broker_of(report: &str) -> Option<String> {
    let text = match report.strip_prefix("[thrd:") {
        Some(rest) => rest.split_once("]: ")?.1,
        None => report,
    };
    let name = text.split_once(": ")?.0;
    let name = name.split_once("://").map_or(name, |(_, rest)| rest);
    let name = name.split_once('/').map_or(name, |(addr, _)| addr);
    name.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        .then(|| name.to_owned())
}

/// `host` of `host:port`.
fn host_of(broker: &str) -> &str {
    broker.rsplit_once(':').map_or(broker, |(host, _)| host)
}

/// The TLS alert a broker sent about the client's certificate: OpenSSL reports it as
/// `...:sslv3 alert bad certificate: SSL alert number 42` (or `tlsv13 alert certificate
/// required`, `tlsv1 alert unknown ca`).
fn certificate_alert(report: &str) -> Option<String> {
    let (_, rest) = report.split_once(" alert ")?;
    let alert = rest.split(':').next()?.trim();
    (alert.contains("certificate") || alert == "unknown ca").then(|| alert.to_owned())
}

/// The text after `marker` in `report`.
fn after<'a>(report: &'a str, marker: &str) -> Option<&'a str> {
    report.find(marker).map(|i| &report[i + marker.len()..])
}

/// Drops librdkafka's ` (after 301ms in state AUTH_HANDSHAKE)` from the end of a report.
fn strip_timing(text: &str) -> &str {
    match text.rfind(" (after ") {
        Some(i) => &text[..i],
        None => text,
    }
    .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(extra: &str) -> KafkaConfig {
        #[derive(serde::Deserialize)]
        struct File {
            kafka: KafkaConfig,
        }
        let text = format!("[kafka]\nbrokers = [\"127.0.0.1:9093\"]\n{extra}");
        toml::from_str::<File>(&text).unwrap().kafka
    }

    fn sasl_ssl() -> KafkaConfig {
        kafka("security_protocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"sluice\"\nsasl_password = \"hunter2\"\nssl_ca_location = \"/etc/kafka/ca.pem\"\n")
    }

    fn mtls(with_cert: bool) -> KafkaConfig {
        let cert = if with_cert {
            "ssl_certificate_location = \"/etc/kafka/client.pem\"\nssl_key_location = \"/etc/kafka/client.key\"\n"
        } else {
            ""
        };
        kafka(&format!(
            "security_protocol = \"ssl\"\nssl_ca_location = \"/etc/kafka/ca.pem\"\n{cert}"
        ))
    }

    // The texts below are what librdkafka 2.12 (rdkafka-sys 4.10) reported against Apache
    // Kafka 4.3, as error callbacks and as `FAIL` log lines.
    #[test]
    fn a_wrong_password_names_the_user_and_the_settings() {
        let error = "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 360ms in state AUTH_REQ)";
        let log = format!("[thrd:sasl_ssl://127.0.0.1:9093/bootstrap]: {error}");
        for report in [error, log.as_str()] {
            let e = sasl_ssl().classify(report).unwrap();
            assert_eq!(
                e.to_string(),
                "Kafka at 127.0.0.1:9093 rejected the SASL login of user sluice (SCRAM-SHA-512): check kafka.sasl_username and kafka.sasl_password"
            );
        }
    }

    #[test]
    fn an_unsupported_mechanism_lists_what_the_broker_offers() {
        let report = "sasl_ssl://127.0.0.1:9093/bootstrap: SASL PLAIN mechanism handshake failed: Broker: Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512 (after 301ms in state AUTH_HANDSHAKE)";
        let k = kafka("security_protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\nsasl_password = \"p\"\n");
        assert_eq!(
            k.classify(report).unwrap().to_string(),
            "Kafka at 127.0.0.1:9093 does not offer the SASL mechanism PLAIN (broker's supported mechanisms: SCRAM-SHA-512): set kafka.sasl_mechanism to one it offers"
        );
    }

    #[test]
    fn an_untrusted_broker_certificate_names_the_ca_file() {
        let report = "sasl_ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 20ms in state SSL_HANDSHAKE)";
        assert_eq!(
            sasl_ssl().classify(report).unwrap().to_string(),
            "the TLS certificate of 127.0.0.1:9093 is not signed by a CA in kafka.ssl_ca_location (/etc/kafka/ca.pem): certificate verify failed; point ssl_ca_location at the CA that signed the brokers' certificates (if it does, check that the certificate is current and names 127.0.0.1)"
        );
        let system = kafka("security_protocol = \"ssl\"\n");
        assert_eq!(
            system.classify(report).unwrap().to_string(),
            "the TLS certificate of 127.0.0.1:9093 is not signed by a CA the system trusts, and kafka.ssl_ca_location is not set: certificate verify failed; set ssl_ca_location to the PEM file of the CA that signed the brokers' certificates"
        );
    }

    #[test]
    fn a_refused_client_certificate_names_the_certificate_settings() {
        let report = "ssl://127.0.0.1:9094/bootstrap: Receive failed: error:0A000412:SSL routines::sslv3 alert bad certificate: SSL alert number 42 (after 0ms in state APIVERSION_QUERY)";
        assert_eq!(
            mtls(false).classify(report).unwrap().to_string(),
            "Kafka at 127.0.0.1:9094 requires a client certificate (TLS alert: bad certificate): set kafka.ssl_certificate_location and kafka.ssl_key_location to the PEM certificate and key of this client"
        );
        assert_eq!(
            mtls(true).classify(report).unwrap().to_string(),
            "Kafka at 127.0.0.1:9094 refused the client certificate in kafka.ssl_certificate_location (/etc/kafka/client.pem) (TLS alert: bad certificate): use a current certificate signed by a CA the brokers trust, with its key in kafka.ssl_key_location"
        );
        let tls13 = "ssl://h:9094/1: SSL transport error: error:0A00045C:SSL routines::tlsv13 alert certificate required: SSL alert number 116";
        assert!(matches!(
            mtls(false).classify(tls13),
            Some(KafkaSecurityError::ClientCertificate { alert, broker, .. }) if alert == "certificate required" && broker == "h:9094"
        ));
    }

    #[test]
    fn tls_to_a_plaintext_listener_names_the_protocol() {
        let report = "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: Disconnected: SSL connection closed by peer: connecting to a PLAINTEXT broker listener? (after 4ms in state SSL_HANDSHAKE)";
        assert_eq!(
            mtls(false).classify(report).unwrap().to_string(),
            "127.0.0.1:9092 is a plaintext listener, but kafka.security_protocol is \"ssl\": list the brokers' TLS listener in kafka.brokers, or set security_protocol = \"plaintext\""
        );
    }

    #[test]
    fn files_librdkafka_cannot_load_are_named_with_their_key() {
        let cases = [
            (
                "Client creation error: ssl.ca.location failed: error:05880002:x509 certificate routines::system lib",
                "kafka.ssl_ca_location (/etc/kafka/ca.pem) cannot be read: check that the CA certificate file exists there and is readable (error:05880002:x509 certificate routines::system lib)",
            ),
            (
                "Client creation error: ssl.certificate.location failed: error:0A080002:SSL routines::system lib",
                "kafka.ssl_certificate_location (/etc/kafka/client.pem) cannot be read: check that the client certificate file exists there and is readable (error:0A080002:SSL routines::system lib)",
            ),
            (
                "Client creation error: ssl.key.location failed: error:05800074:x509 certificate routines::key values mismatch",
                "kafka.ssl_key_location (/etc/kafka/client.key) is not the key of the certificate in kafka.ssl_certificate_location (/etc/kafka/client.pem): give the key that belongs to that certificate (error:05800074:x509 certificate routines::key values mismatch)",
            ),
            (
                "Client creation error: ssl.key.location failed: error:0A080009:SSL routines::PEM lib",
                "kafka.ssl_key_location (/etc/kafka/client.key) cannot be loaded as a PEM private key: if it is encrypted, set kafka.ssl_key_password to its password (missing or wrong now) (error:0A080009:SSL routines::PEM lib)",
            ),
        ];
        for (report, want) in cases {
            assert_eq!(mtls(true).classify(report).unwrap().to_string(), want);
        }
    }

    #[test]
    fn a_broker_that_is_down_is_not_definite() {
        for report in [
            "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)",
            "1/1 brokers are down",
            "sasl_ssl://127.0.0.1:9093/bootstrap: Disconnected (after 10ms in state UP)",
            "Local: Timed out",
        ] {
            assert_eq!(sasl_ssl().classify(report), None, "{report}");
        }
    }

    #[test]
    fn no_message_contains_the_password() {
        let k = sasl_ssl();
        let reports = [
            "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed",
            "sasl_ssl://127.0.0.1:9093/bootstrap: Broker: Unsupported SASL mechanism: x",
            "sasl_ssl://127.0.0.1:9093/bootstrap: certificate verify failed",
            "Client creation error: ssl.key.location failed: PEM lib",
        ];
        for r in reports {
            let text = format!("{}", k.classify(r).unwrap());
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn a_watch_keeps_the_first_definite_report() {
        let watch = KafkaWatch::new(&sasl_ssl());
        let shared = watch.clone();
        watch.log(
            RDKafkaLogLevel::Error,
            "FAIL",
            "127.0.0.1:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: Connection refused",
        );
        assert_eq!(shared.failure(), None);
        watch.log(RDKafkaLogLevel::Debug, "SASL", "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: debug lines are not reports");
        assert_eq!(shared.failure(), None);
        watch.error(
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::Authentication),
            "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed",
        );
        watch.error(
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::Authentication),
            "sasl_ssl://127.0.0.1:9093/bootstrap: certificate verify failed",
        );
        assert!(matches!(
            shared.failure(),
            Some(KafkaSecurityError::SaslLogin { .. })
        ));
    }

    #[test]
    fn watched_stops_at_a_definite_report_or_the_deadline() {
        let watch = KafkaWatch::new(&sasl_ssl());
        let mut calls = 0;
        let r: Result<(), _> = watched(
            &watch,
            Duration::from_secs(30),
            || {
                watch.error(
                    KafkaError::Global(rdkafka::types::RDKafkaErrorCode::Authentication),
                    "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: x",
                )
            },
            |_| {
                calls += 1;
                Err(KafkaError::MetadataFetch(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ))
            },
        );
        assert!(matches!(r, Err(KafkaFailure::Settings(_))), "{r:?}");
        assert_eq!(calls, 1);

        let quiet = KafkaWatch::new(&sasl_ssl());
        let r: Result<(), _> = watched(
            &quiet,
            Duration::from_millis(300),
            || {},
            |_| {
                Err(KafkaError::MetadataFetch(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ))
            },
        );
        assert!(matches!(r, Err(KafkaFailure::Request(_))), "{r:?}");
    }
}
