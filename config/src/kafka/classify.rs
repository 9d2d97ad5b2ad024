//! The one decision of which librdkafka reports are definite, and the parsing of their text.

use super::KafkaSecurityError;
use crate::common::{SaslMechanism, SecurityProtocol};
use crate::KafkaConfig;

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
        if let Some(e) = self.classify_kerberos(report) {
            return Some(e);
        }
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

    /// A failed Kerberos login: librdkafka's kinit (`SASLREFRESH`) or the GSSAPI exchange.
    fn classify_kerberos(&self, report: &str) -> Option<KafkaSecurityError> {
        if self.sasl_mechanism != Some(SaslMechanism::Gssapi) {
            return None;
        }
        if let Some(exit) = after(report, "Kerberos ticket refresh failed: ") {
            // `<the kinit command>: exited with code 1`
            let exit = exit.rsplit_once(": ").map_or(exit, |(_, e)| e);
            return Some(self.kerberos_failure(&format!("librdkafka's kinit {exit}")));
        }
        let gssapi = after(report, "GSSAPI Error: ").map(strip_timing)?;
        if let Some(service) = after(gssapi, "(Server ")
            .and_then(|s| s.split_once(" not found in Kerberos database"))
            .map(|(s, _)| s)
        {
            return Some(self.unknown_service(
                &broker_of(report).unwrap_or_else(|| self.brokers.join(",")),
                service,
                gssapi,
            ));
        }
        Some(self.kerberos_failure(gssapi))
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
