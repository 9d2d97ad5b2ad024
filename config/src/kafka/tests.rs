//! Unit tests of the Kafka watch: librdkafka reports classified, messages, and `watched`.

use super::*;
use crate::KafkaConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use std::time::Duration;

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

fn kerberos(extra: &str) -> KafkaConfig {
    kafka(&format!(
        "security_protocol = \"sasl_plaintext\"\nsasl_mechanism = \"GSSAPI\"\n{extra}"
    ))
}

// The texts below are what librdkafka 2.12 built with Cyrus SASL 2.1.28 and MIT Kerberos 1.20
// reported against Apache Kafka 4.3, and what MIT kinit 1.20 wrote.
#[test]
fn an_unknown_service_principal_names_the_service_name() {
    let report = "[thrd:sasl_plaintext://localhost:19093/bootstrap]: sasl_plaintext://localhost:19093/bootstrap: Failed to initialize SASL authentication: SASL handshake failed (start (-1)): SASL(-1): generic failure: GSSAPI Error: Unspecified GSS failure.  Minor code may provide more information (Server kafkax/localhost@SLUICE.TEST not found in Kerberos database) (after 1ms in state AUTH_REQ)";
    let e = kerberos("sasl_kerberos_service_name = \"kafkax\"\n")
        .classify(report)
        .unwrap();
    assert!(
        matches!(
            e,
            KafkaSecurityError::Kerberos {
                key: "sasl_kerberos_service_name",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Kerberos login to Kafka failed: the KDC has no principal kafkax/localhost@SLUICE.TEST for the broker at localhost:19093: kafka.sasl_kerberos_service_name (kafkax) must be the first part of the brokers' principals and the broker's host name (as in kafka.brokers and the brokers' advertised listeners) the second (Unspecified GSS failure.  Minor code may provide more information (Server kafkax/localhost@SLUICE.TEST not found in Kerberos database))"
    );
}

#[test]
fn kerberos_reports_are_kerberos_only_with_gssapi() {
    let report =
        "[thrd:main]: Kerberos ticket refresh failed: kinit -t \"k\" -k p: exited with code 1";
    assert_eq!(sasl_ssl().classify(report), None);
    // A keytab that is gone is found before kinit runs.
    let k = kerberos(
        "sasl_kerberos_principal = \"sluice@SLUICE.TEST\"\nsasl_kerberos_keytab = \"/nonexistent/sluice.keytab\"\n",
    );
    let e = k.classify(report).unwrap();
    assert!(
        e.to_string().starts_with("Kerberos login to Kafka failed: kafka.sasl_kerberos_keytab (/nonexistent/sluice.keytab) cannot be read (No such file or directory")
            && e.to_string().ends_with(" (librdkafka's kinit exited with code 1)"),
        "{e}"
    );
}

#[test]
fn kinit_errors_name_the_setting_to_change() {
    let keytab = "/etc/sluice/sluice.keytab";
    let principal = "wrong@SLUICE.TEST";
    let holds = || vec!["sluice@SLUICE.TEST".to_owned()];
    let cases = [
        (
            "kinit: Keytab contains no suitable keys for wrong@SLUICE.TEST while getting initial credentials",
            "sasl_kerberos_principal",
            "the keytab in kafka.sasl_kerberos_keytab (/etc/sluice/sluice.keytab) has no key for kafka.sasl_kerberos_principal (wrong@SLUICE.TEST); it holds sluice@SLUICE.TEST: ",
        ),
        (
            "kinit: Client 'wrong@SLUICE.TEST' not found in Kerberos database while getting initial credentials",
            "sasl_kerberos_principal",
            "the KDC does not know kafka.sasl_kerberos_principal (wrong@SLUICE.TEST): ",
        ),
        (
            "kinit: Cannot contact any KDC for realm 'SLUICE.TEST' while getting initial credentials",
            "sasl_kerberos_principal",
            "no KDC answers for the realm of kafka.sasl_kerberos_principal (wrong@SLUICE.TEST): check that the realm is right, that its `kdc =` in the Kerberos config (",
        ),
        (
            "kinit: Key table file '/etc/sluice/sluice.keytab' not found while getting initial credentials",
            "sasl_kerberos_keytab",
            "kafka.sasl_kerberos_keytab (/etc/sluice/sluice.keytab) does not exist",
        ),
        (
            "kinit: Preauthentication failed while getting initial credentials",
            "sasl_kerberos_keytab",
            "the KDC refused the key of kafka.sasl_kerberos_principal (wrong@SLUICE.TEST) in kafka.sasl_kerberos_keytab (/etc/sluice/sluice.keytab): the keytab is out of date",
        ),
    ];
    for (text, want_key, want) in cases {
        let (key, problem) = kerberos::kinit_problem(principal, keytab, text, holds);
        assert_eq!(key, want_key, "{text}");
        assert!(problem.starts_with(want), "{text}: {problem}");
    }
}

#[test]
fn without_a_keytab_a_failed_exchange_points_at_the_ticket_cache() {
    // Without a keytab the ticket cache is what counts: the report's GSSAPI text is the detail.
    let report = "sasl_plaintext://localhost:19093/bootstrap: Failed to initialize SASL authentication: SASL handshake failed (start (-1)): SASL(-1): generic failure: GSSAPI Error: No credentials were supplied, or the credentials were unavailable or inaccessible (No Kerberos credentials available (default cache: FILE:/tmp/cc5)) (after 0ms in state AUTH_REQ)";
    let e = kerberos("").classify(report).unwrap();
    let KafkaSecurityError::Kerberos { key, detail, .. } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(*key, "sasl_kerberos_keytab");
    assert_eq!(detail, "No credentials were supplied, or the credentials were unavailable or inaccessible (No Kerberos credentials available (default cache: FILE:/tmp/cc5))");
}
