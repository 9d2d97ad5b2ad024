//! Sections that both binaries' config files have: `[kafka]`, `[metrics]`, `[log]`.

use crate::{Problems, Secret};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The first part of the brokers' Kerberos principal (`kafka/<host>@REALM`) unless configured.
pub const DEFAULT_KERBEROS_SERVICE_NAME: &str = "kafka";

/// Where `/metrics`, `/healthz` and `/readyz` listen unless configured.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// The Kafka cluster and how to authenticate to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port`.
    pub brokers: Vec<String>,
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[serde(default)]
    pub security_protocol: SecurityProtocol,
    /// SASL mechanism when `security_protocol` is `sasl_*`.
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<String>,
    /// Usually `"${KAFKA_PASSWORD}"`.
    pub sasl_password: Option<Secret>,
    /// GSSAPI: the first part of the brokers' principal (`<name>/<broker host>@REALM`); default
    /// [`DEFAULT_KERBEROS_SERVICE_NAME`].
    pub sasl_kerberos_service_name: Option<String>,
    /// GSSAPI: the principal this client logs in as with `sasl_kerberos_keytab`, e.g.
    /// `sluice@EXAMPLE.COM`. Without both, the ticket cache of an earlier `kinit` is used.
    pub sasl_kerberos_principal: Option<String>,
    /// GSSAPI: the keytab holding the key of `sasl_kerberos_principal`.
    pub sasl_kerberos_keytab: Option<String>,
    /// PEM file of the CA that signed the brokers' certificates (default: the system's CAs).
    pub ssl_ca_location: Option<String>,
    /// PEM file of this client's certificate, for brokers that require one (mTLS).
    pub ssl_certificate_location: Option<String>,
    /// PEM file of the private key of `ssl_certificate_location`.
    pub ssl_key_location: Option<String>,
    /// Password of `ssl_key_location` when the key is encrypted; usually `"${KAFKA_KEY_PASSWORD}"`.
    pub ssl_key_password: Option<Secret>,
    /// Further librdkafka properties, passed through as given (e.g. `"socket.timeout.ms"`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// Kerberos.
    #[serde(rename = "GSSAPI")]
    Gssapi,
}

impl KafkaConfig {
    /// Checks the section; `path` is its key path, e.g. `kafka`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if self.brokers.is_empty() {
            problems.add(
                format!("{path}.brokers"),
                "no brokers given; list at least one, e.g. [\"127.0.0.1:9092\"]",
            );
        }
        for (i, b) in self.brokers.iter().enumerate() {
            if b.rsplit_once(':')
                .and_then(|(_, port)| port.parse::<u16>().ok())
                .is_none()
            {
                problems.add(
                    format!("{path}.brokers[{i}]"),
                    format!("`{b}` is not host:port"),
                );
            }
        }
        let sasl = matches!(
            self.security_protocol,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        );
        let gssapi = self.sasl_mechanism == Some(SaslMechanism::Gssapi);
        if sasl
            && !gssapi
            && (self.sasl_mechanism.is_none()
                || self.sasl_username.is_none()
                || self.sasl_password.is_none())
        {
            problems.add(
                format!("{path}.security_protocol"),
                "SASL needs sasl_mechanism, sasl_username and sasl_password",
            );
        }
        if !sasl && self.sasl_mechanism.is_some() {
            problems.add(
                format!("{path}.sasl_mechanism"),
                "set security_protocol = \"sasl_plaintext\" or \"sasl_ssl\" to use SASL",
            );
        }
        self.validate_tls(path, problems);
        self.validate_kerberos(path, problems);
    }

    /// The TLS files: they only mean something over TLS, and a certificate needs its key.
    fn validate_tls(&self, path: &str, problems: &mut Problems) {
        const NEEDS_TLS: &str = "set security_protocol = \"ssl\" or \"sasl_ssl\" to use TLS";
        let tls = matches!(
            self.security_protocol,
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
        );
        let files = [
            ("ssl_ca_location", self.ssl_ca_location.is_some()),
            (
                "ssl_certificate_location",
                self.ssl_certificate_location.is_some(),
            ),
            ("ssl_key_location", self.ssl_key_location.is_some()),
            ("ssl_key_password", self.ssl_key_password.is_some()),
        ];
        if !tls {
            for (key, set) in files {
                if set {
                    problems.add(format!("{path}.{key}"), NEEDS_TLS);
                }
            }
        }
        match (&self.ssl_certificate_location, &self.ssl_key_location) {
            (Some(_), None) => problems.add(
                format!("{path}.ssl_key_location"),
                "ssl_certificate_location is set but not its private key; set ssl_key_location to the PEM key of the client certificate",
            ),
            (None, Some(_)) => problems.add(
                format!("{path}.ssl_certificate_location"),
                "ssl_key_location is set but not the certificate; set ssl_certificate_location to the PEM client certificate of that key",
            ),
            _ => {}
        }
        if self.ssl_key_password.is_some() && self.ssl_key_location.is_none() {
            problems.add(
                format!("{path}.ssl_key_password"),
                "a key password without a key; set ssl_key_location, or remove ssl_key_password",
            );
        }
    }

    /// librdkafka client properties for this section (secrets included: never log them).
    pub fn client_properties(&self) -> Vec<(String, String)> {
        let mut props = vec![("bootstrap.servers".to_owned(), self.brokers.join(","))];
        let protocol = match self.security_protocol {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        };
        props.push(("security.protocol".into(), protocol.into()));
        if let Some(m) = self.sasl_mechanism {
            let name = match m {
                SaslMechanism::Plain => "PLAIN",
                SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
                SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
                SaslMechanism::Gssapi => "GSSAPI",
            };
            props.push(("sasl.mechanism".into(), name.into()));
        }
        if self.sasl_mechanism == Some(SaslMechanism::Gssapi) {
            props.extend(self.kerberos_properties());
        }
        if let Some(u) = &self.sasl_username {
            props.push(("sasl.username".into(), u.clone()));
        }
        if let Some(p) = &self.sasl_password {
            props.push(("sasl.password".into(), p.expose().to_owned()));
        }
        if let Some(ca) = &self.ssl_ca_location {
            props.push(("ssl.ca.location".into(), ca.clone()));
        }
        if let Some(cert) = &self.ssl_certificate_location {
            props.push(("ssl.certificate.location".into(), cert.clone()));
        }
        if let Some(key) = &self.ssl_key_location {
            props.push(("ssl.key.location".into(), key.clone()));
        }
        if let Some(p) = &self.ssl_key_password {
            props.push(("ssl.key.password".into(), p.expose().to_owned()));
        }
        for (k, v) in &self.options {
            props.push((k.clone(), v.clone()));
        }
        props
    }
}

/// The HTTP endpoint for `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port`; default [`DEFAULT_METRICS_LISTEN`].
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
    /// `sluice-capture`: distinct tables with series of their own in `/metrics`, the status
    /// page and alerts; later ones are counted as `other`. Default [`DEFAULT_MAX_TABLES`]. The
    /// sink's series are per rule and need no cap.
    #[serde(default = "default_max_tables")]
    pub max_tables: usize,
}

/// Default `metrics.max_tables`.
pub const DEFAULT_MAX_TABLES: usize = 1000;

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
            max_tables: DEFAULT_MAX_TABLES,
        }
    }
}

fn default_max_tables() -> usize {
    DEFAULT_MAX_TABLES
}

fn default_metrics_listen() -> String {
    DEFAULT_METRICS_LISTEN.to_owned()
}

/// Logging: level filter (tracing `EnvFilter` syntax) and format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            format: LogFormat::default(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Validate;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        kafka: KafkaConfig,
    }

    impl Validate for File {
        fn validate(&self, problems: &mut Problems) {
            self.kafka.validate("kafka", problems);
        }
    }

    fn parse(text: &str) -> Result<File, String> {
        crate::parse::<File>(text, std::path::Path::new("t.toml"), |n| {
            (n == "PW").then(|| "hunter2".to_owned())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_missing_file_names_the_path_and_the_os_error_once() {
        let e = crate::load::<File>(std::path::Path::new("/nonexistent/sluice.toml")).unwrap_err();
        // Printed as an error chain (`{:#}` of anyhow walks `source()`), the OS error must not
        // appear a second time.
        assert!(std::error::Error::source(&e).is_none());
        let text = e.to_string();
        assert!(
            text.starts_with("cannot read config file /nonexistent/sluice.toml: ")
                && text.ends_with("; check the path given with --config")
                && text.matches("os error").count() == 1,
            "{text}"
        );
    }

    #[test]
    fn every_problem_with_its_path() {
        let err = parse("[kafka]\nbrokers = [\"nohost\", \"a:1\"]\nsasl_mechanism = \"PLAIN\"\n")
            .unwrap_err();
        assert_eq!(
            err,
            "t.toml: invalid configuration:\n  kafka.brokers[0]: `nohost` is not host:port\n  kafka.sasl_mechanism: set security_protocol = \"sasl_plaintext\" or \"sasl_ssl\" to use SASL"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[kafka]\nbrokers = [\"a:1\"]\nbroker = 1\n").unwrap_err();
        assert!(err.contains("unknown field `broker`"), "{err}");
    }

    #[test]
    fn secret_never_prints() {
        let f = parse("[kafka]\nbrokers = [\"a:1\"]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"u\"\nsasl_password = \"${PW}\"\n").unwrap();
        assert!(!format!("{f:?}").contains("hunter2"));
        let props = f.kafka.client_properties();
        assert!(props.contains(&("sasl.password".into(), "hunter2".into())));
        assert!(props.contains(&("sasl.mechanism".into(), "SCRAM-SHA-512".into())));
    }

    #[test]
    fn client_certificate_settings_map_to_librdkafka() {
        let f = parse("[kafka]\nbrokers = [\"a:1\"]\nsecurity_protocol = \"ssl\"\nssl_ca_location = \"ca.pem\"\nssl_certificate_location = \"client.pem\"\nssl_key_location = \"client.key\"\nssl_key_password = \"${PW}\"\n").unwrap();
        assert!(!format!("{f:?}").contains("hunter2"));
        let props = f.kafka.client_properties();
        for (k, v) in [
            ("security.protocol", "ssl"),
            ("ssl.ca.location", "ca.pem"),
            ("ssl.certificate.location", "client.pem"),
            ("ssl.key.location", "client.key"),
            ("ssl.key.password", "hunter2"),
        ] {
            assert!(props.contains(&(k.into(), v.into())), "{k} in {props:?}");
        }
    }

    #[test]
    fn certificate_and_key_go_together() {
        let head = "[kafka]\nbrokers = [\"a:1\"]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\nsasl_password = \"p\"\n";
        let err = parse(&format!("{head}ssl_certificate_location = \"c.pem\"\n")).unwrap_err();
        assert!(
            err.ends_with("\n  kafka.ssl_key_location: ssl_certificate_location is set but not its private key; set ssl_key_location to the PEM key of the client certificate"),
            "{err}"
        );
        let err = parse(&format!("{head}ssl_key_location = \"c.key\"\n")).unwrap_err();
        assert!(
            err.ends_with("\n  kafka.ssl_certificate_location: ssl_key_location is set but not the certificate; set ssl_certificate_location to the PEM client certificate of that key"),
            "{err}"
        );
        let err = parse(&format!(
            "{head}ssl_key_password = \"${{PW}}\"\nssl_certificate_location = \"c.pem\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("  kafka.ssl_key_password: a key password without a key; set ssl_key_location, or remove ssl_key_password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn tls_files_need_a_tls_protocol() {
        for protocol in ["plaintext", "sasl_plaintext"] {
            let err = parse(&format!("[kafka]\nbrokers = [\"a:1\"]\nsecurity_protocol = \"{protocol}\"\nsasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\nsasl_password = \"p\"\nssl_ca_location = \"ca.pem\"\nssl_certificate_location = \"c.pem\"\nssl_key_location = \"c.key\"\n")).unwrap_err();
            for key in [
                "ssl_ca_location",
                "ssl_certificate_location",
                "ssl_key_location",
            ] {
                assert!(
                    err.contains(&format!("\n  kafka.{key}: set security_protocol = \"ssl\" or \"sasl_ssl\" to use TLS")),
                    "{protocol} {key}: {err}"
                );
            }
        }
        for protocol in ["ssl", "sasl_ssl"] {
            let sasl = if protocol == "sasl_ssl" {
                "sasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\nsasl_password = \"p\"\n"
            } else {
                ""
            };
            parse(&format!("[kafka]\nbrokers = [\"a:1\"]\nsecurity_protocol = \"{protocol}\"\n{sasl}ssl_ca_location = \"ca.pem\"\nssl_certificate_location = \"c.pem\"\nssl_key_location = \"c.key\"\n")).unwrap();
        }
    }

    #[test]
    fn kerberos_settings_map_to_librdkafka() {
        let keytab =
            std::env::temp_dir().join(format!("sluice-config-{}.keytab", std::process::id()));
        std::fs::write(&keytab, b"\x05\x02").unwrap();
        let f = parse(&format!("[kafka]\nbrokers = [\"a:1\"]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"GSSAPI\"\nsasl_kerberos_principal = \"sluice@EXAMPLE.COM\"\nsasl_kerberos_keytab = \"{}\"\n", keytab.display())).unwrap();
        let props = f.kafka.client_properties();
        let _ = std::fs::remove_file(&keytab);
        for (k, v) in [
            ("sasl.mechanism", "GSSAPI"),
            ("sasl.kerberos.service.name", DEFAULT_KERBEROS_SERVICE_NAME),
            ("sasl.kerberos.principal", "sluice@EXAMPLE.COM"),
            ("sasl.kerberos.keytab", keytab.to_str().unwrap()),
        ] {
            assert!(props.contains(&(k.into(), v.into())), "{k} in {props:?}");
        }
        // Without a keytab: the ticket cache of an earlier kinit, which librdkafka must not
        // replace by running kinit itself.
        let f = parse("[kafka]\nbrokers = [\"a:1\"]\nsecurity_protocol = \"sasl_plaintext\"\nsasl_mechanism = \"GSSAPI\"\nsasl_kerberos_service_name = \"kafka-prod\"\n").unwrap();
        let props = f.kafka.client_properties();
        assert!(props.contains(&("sasl.kerberos.service.name".into(), "kafka-prod".into())));
        assert!(props.contains(&("sasl.kerberos.min.time.before.relogin".into(), "0".into())));
    }

    #[test]
    fn kerberos_problems_name_their_key() {
        let head = "[kafka]\nbrokers = [\"a:1\"]\nsecurity_protocol = \"sasl_plaintext\"\n";
        let err = parse(&format!("{head}sasl_mechanism = \"GSSAPI\"\nsasl_kerberos_principal = \"sluice@EXAMPLE.COM\"\nsasl_kerberos_keytab = \"/nonexistent/sluice.keytab\"\nsasl_username = \"u\"\n")).unwrap_err();
        assert!(err.contains("\n  kafka.sasl_kerberos_keytab: cannot read /nonexistent/sluice.keytab (No such file or directory (os error 2)); give the path of this client's keytab, readable by the user that runs Sluice"), "{err}");
        assert!(err.contains("\n  kafka.sasl_username: GSSAPI (Kerberos) logs in with sasl_kerberos_principal and sasl_kerberos_keytab, not a user name and password; remove it"), "{err}");
        let err = parse(&format!(
            "{head}sasl_mechanism = \"GSSAPI\"\nsasl_kerberos_principal = \"sluice@EXAMPLE.COM\"\n"
        ))
        .unwrap_err();
        assert!(err.ends_with("\n  kafka.sasl_kerberos_keytab: sasl_kerberos_principal (sluice@EXAMPLE.COM) is set but not its keytab; set sasl_kerberos_keytab to the keytab holding its key, or remove sasl_kerberos_principal to use the ticket cache of an earlier kinit"), "{err}");
        let err = parse(&format!("{head}sasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\nsasl_password = \"p\"\nsasl_kerberos_service_name = \"kafka\"\n")).unwrap_err();
        assert!(err.ends_with("\n  kafka.sasl_kerberos_service_name: a Kerberos setting, but sasl_mechanism is not \"GSSAPI\"; set sasl_mechanism = \"GSSAPI\" (with security_protocol = \"sasl_plaintext\" or \"sasl_ssl\"), or remove it"), "{err}");
        let err = parse(&format!(
            "{head}sasl_mechanism = \"GSSAPI\"\nsasl_kerberos_service_name = \"kafka/host\"\n"
        ))
        .unwrap_err();
        assert!(
            err.contains("kafka.sasl_kerberos_service_name: `kafka/host` is not a service name"),
            "{err}"
        );
        // GSSAPI needs no user name or password.
        parse(&format!("{head}sasl_mechanism = \"GSSAPI\"\n")).unwrap();
    }

    #[test]
    fn sasl_needs_a_password() {
        let err = parse("[kafka]\nbrokers = [\"a:1\"]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\n").unwrap_err();
        assert!(
            err.ends_with("  kafka.security_protocol: SASL needs sasl_mechanism, sasl_username and sasl_password"),
            "{err}"
        );
    }
}
