//! TLS to a MySQL/MariaDB server: one setting, the same for the capture's `[source]` and the
//! sink's MySQL replica target (docs/security.md).

use serde::Deserialize;
use std::fmt;

/// How a connection to MySQL/MariaDB uses TLS (the MySQL client's `--ssl-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plaintext.
    Disabled,
    /// TLS when the server offers it, without checking its certificate; else plaintext.
    #[default]
    Preferred,
    /// TLS, without checking the server's certificate.
    Required,
    /// TLS, the server's certificate signed by a trusted CA (`ca_file`, or the built-in roots).
    VerifyCa,
    /// As `verify_ca`, and the certificate names the host of the URL.
    VerifyIdentity,
}

impl TlsMode {
    /// Whether the server's certificate is checked against a CA.
    pub fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyIdentity)
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Preferred => "preferred",
            TlsMode::Required => "required",
            TlsMode::VerifyCa => "verify_ca",
            TlsMode::VerifyIdentity => "verify_identity",
        })
    }
}
