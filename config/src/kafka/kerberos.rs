//! Kerberos (SASL/GSSAPI): the `[kafka]` settings checked and mapped to librdkafka, and a failed
//! login explained.
//!
//! librdkafka logs in by running `kinit` with the keytab and only logs that it exited non-zero
//! (kinit's own words go to stderr), so the explanation runs kinit once more, into a throw-away
//! in-memory credential cache, and reads what it says. That is the only I/O here besides the
//! keytab's readability check; the reading of kinit's text is [`kinit_problem`].

use super::KafkaSecurityError;
use crate::common::DEFAULT_KERBEROS_SERVICE_NAME;
use crate::{KafkaConfig, Problems, SaslMechanism};
use std::process::Command;

/// librdkafka's ticket refresh, with the expected failure of its first step (renewing a ticket
/// that is not there yet, at start-up) kept out of the process's stderr.
const KINIT_CMD: &str = "kinit -R -t \"%{sasl.kerberos.keytab}\" -k %{sasl.kerberos.principal} 2>/dev/null || kinit -t \"%{sasl.kerberos.keytab}\" -k %{sasl.kerberos.principal}";

impl KafkaConfig {
    /// Kerberos settings only with GSSAPI, a keytab with its principal, and a keytab this
    /// process can read.
    pub(crate) fn validate_kerberos(&self, path: &str, problems: &mut Problems) {
        let kerberos_keys = [
            (
                "sasl_kerberos_service_name",
                self.sasl_kerberos_service_name.is_some(),
            ),
            (
                "sasl_kerberos_principal",
                self.sasl_kerberos_principal.is_some(),
            ),
            ("sasl_kerberos_keytab", self.sasl_kerberos_keytab.is_some()),
        ];
        if self.sasl_mechanism != Some(SaslMechanism::Gssapi) {
            for (key, set) in kerberos_keys {
                if set {
                    problems.add(
                        format!("{path}.{key}"),
                        "a Kerberos setting, but sasl_mechanism is not \"GSSAPI\"; set sasl_mechanism = \"GSSAPI\" (with security_protocol = \"sasl_plaintext\" or \"sasl_ssl\"), or remove it",
                    );
                }
            }
            return;
        }
        for (key, set) in [
            ("sasl_username", self.sasl_username.is_some()),
            ("sasl_password", self.sasl_password.is_some()),
        ] {
            if set {
                problems.add(
                    format!("{path}.{key}"),
                    "GSSAPI (Kerberos) logs in with sasl_kerberos_principal and sasl_kerberos_keytab, not a user name and password; remove it",
                );
            }
        }
        if let Some(name) = &self.sasl_kerberos_service_name {
            if name.is_empty() || name.contains(['/', '@', ' ']) {
                problems.add(
                    format!("{path}.sasl_kerberos_service_name"),
                    format!("`{name}` is not a service name; give the first part of the brokers' principal, e.g. kafka for kafka/broker1.example.com@EXAMPLE.COM"),
                );
            }
        }
        match (&self.sasl_kerberos_principal, &self.sasl_kerberos_keytab) {
            (Some(principal), None) => problems.add(
                format!("{path}.sasl_kerberos_keytab"),
                format!("sasl_kerberos_principal ({principal}) is set but not its keytab; set sasl_kerberos_keytab to the keytab holding its key, or remove sasl_kerberos_principal to use the ticket cache of an earlier kinit"),
            ),
            (None, Some(keytab)) => problems.add(
                format!("{path}.sasl_kerberos_principal"),
                format!("sasl_kerberos_keytab ({keytab}) is set but not the principal to log in as; set sasl_kerberos_principal to one that `klist -k {keytab}` lists"),
            ),
            _ => {}
        }
        if let Some(keytab) = &self.sasl_kerberos_keytab {
            if let Err(e) = std::fs::File::open(keytab) {
                problems.add(
                    format!("{path}.sasl_kerberos_keytab"),
                    format!("cannot read {keytab} ({e}); give the path of this client's keytab, readable by the user that runs Sluice"),
                );
            }
        }
    }

    /// librdkafka's `sasl.kerberos.*` properties. With a keytab, librdkafka runs kinit at start
    /// and every minute; without one it uses the ticket cache as it is (renewed by whoever ran
    /// kinit).
    pub(crate) fn kerberos_properties(&self) -> Vec<(String, String)> {
        let service = self
            .sasl_kerberos_service_name
            .as_deref()
            .unwrap_or(DEFAULT_KERBEROS_SERVICE_NAME);
        let mut props = vec![("sasl.kerberos.service.name".to_owned(), service.to_owned())];
        match (&self.sasl_kerberos_principal, &self.sasl_kerberos_keytab) {
            (Some(principal), Some(keytab)) => {
                props.push(("sasl.kerberos.principal".into(), principal.clone()));
                props.push(("sasl.kerberos.keytab".into(), keytab.clone()));
                props.push(("sasl.kerberos.kinit.cmd".into(), KINIT_CMD.into()));
            }
            _ => props.push(("sasl.kerberos.min.time.before.relogin".into(), "0".into())),
        }
        props
    }

    /// A Kerberos login that failed (`detail`: librdkafka's report), explained: the keytab is
    /// read and kinit run again to say which setting is wrong.
    pub(crate) fn kerberos_failure(&self, detail: &str) -> KafkaSecurityError {
        let detail = detail.trim().to_owned();
        let (key, problem) = match (&self.sasl_kerberos_principal, &self.sasl_kerberos_keytab) {
            (Some(principal), Some(keytab)) => login_problem(principal, keytab),
            _ => ticket_cache_problem(),
        };
        KafkaSecurityError::Kerberos {
            key,
            problem,
            detail,
        }
    }

    /// The KDC has no principal `service` (`<name>/<host>@REALM`) for the broker at `broker`.
    pub(crate) fn unknown_service(
        &self,
        broker: &str,
        service: &str,
        detail: &str,
    ) -> KafkaSecurityError {
        let name = self
            .sasl_kerberos_service_name
            .as_deref()
            .unwrap_or(DEFAULT_KERBEROS_SERVICE_NAME);
        KafkaSecurityError::Kerberos {
            key: "sasl_kerberos_service_name",
            problem: format!("the KDC has no principal {service} for the broker at {broker}: kafka.sasl_kerberos_service_name ({name}) must be the first part of the brokers' principals and the broker's host name (as in kafka.brokers and the brokers' advertised listeners) the second"),
            detail: detail.to_owned(),
        }
    }
}

/// Why `principal` cannot log in with `keytab`, from kinit's own answer.
fn login_problem(principal: &str, keytab: &str) -> (&'static str, String) {
    if let Err(e) = std::fs::File::open(keytab) {
        return (
            "sasl_kerberos_keytab",
            format!("kafka.sasl_kerberos_keytab ({keytab}) cannot be read ({e}): give the path of this client's keytab, readable by the user that runs Sluice"),
        );
    }
    let out = Command::new("kinit")
        .args(["-k", "-t", keytab, "-c", "MEMORY:sluice-check", principal])
        .output();
    let text = match out {
        Err(e) => {
            return (
                "sasl_mechanism",
                format!("kinit cannot be run ({e}), and librdkafka logs in with it: install MIT Kerberos' client tools (Debian: krb5-user) or use another sasl_mechanism"),
            )
        }
        Ok(out) if out.status.success() => {
            return (
                "sasl_kerberos_principal",
                format!("kinit with kafka.sasl_kerberos_keytab ({keytab}) as kafka.sasl_kerberos_principal ({principal}) works when run again: check that kinit is on the PATH of the process and that KRB5_CONFIG and KRB5CCNAME are the same for it"),
            )
        }
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    };
    kinit_problem(principal, keytab, &text, || keytab_principals(keytab))
}

/// What kinit's error `text` (for `principal` with `keytab`) means and which setting fixes it;
/// `holds` lists the keytab's principals, asked only when they help.
pub(crate) fn kinit_problem(
    principal: &str,
    keytab: &str,
    text: &str,
    holds: impl FnOnce() -> Vec<String>,
) -> (&'static str, String) {
    let text = text.trim_start_matches("kinit: ");
    if text.contains("Keytab contains no suitable keys") {
        let holds = holds();
        let listed = if holds.is_empty() {
            "no principal".to_owned()
        } else {
            holds.join(", ")
        };
        return (
            "sasl_kerberos_principal",
            format!("the keytab in kafka.sasl_kerberos_keytab ({keytab}) has no key for kafka.sasl_kerberos_principal ({principal}); it holds {listed}: set sasl_kerberos_principal to the principal of the keytab, or give the keytab of {principal}"),
        );
    }
    if text.contains("not found in Kerberos database") {
        return (
            "sasl_kerberos_principal",
            format!("the KDC does not know kafka.sasl_kerberos_principal ({principal}): set sasl_kerberos_principal to this client's principal (with its realm), and sasl_kerberos_keytab to its keytab"),
        );
    }
    if text.contains("Cannot contact any KDC") || text.contains("Cannot find KDC") {
        return (
            "sasl_kerberos_principal",
            format!("no KDC answers for the realm of kafka.sasl_kerberos_principal ({principal}): check that the realm is right, that its `kdc =` in the Kerberos config ({}) names a running KDC, and that this host can reach it", krb5_config()),
        );
    }
    if text.contains("Key table file") && text.contains("not found") {
        return (
            "sasl_kerberos_keytab",
            format!("kafka.sasl_kerberos_keytab ({keytab}) does not exist: give the path of this client's keytab"),
        );
    }
    if text.contains("Preauthentication failed")
        || text.contains("Password incorrect")
        || text.contains("key version")
    {
        return (
            "sasl_kerberos_keytab",
            format!("the KDC refused the key of kafka.sasl_kerberos_principal ({principal}) in kafka.sasl_kerberos_keytab ({keytab}): the keytab is out of date (the principal's key changed); export it again (kadmin: ktadd -norandkey)"),
        );
    }
    (
        "sasl_kerberos_principal",
        format!("kinit as kafka.sasl_kerberos_principal ({principal}) with kafka.sasl_kerberos_keytab ({keytab}) fails: {text}"),
    )
}

/// The principals `klist -k` lists in `keytab`, each once (empty when klist cannot say).
fn keytab_principals(keytab: &str) -> Vec<String> {
    let Ok(out) = Command::new("klist").args(["-k", keytab]).output() else {
        return Vec::new();
    };
    let mut principals: Vec<String> = Vec::new();
    // `   2 sluice@EXAMPLE.COM` under a header of `KVNO Principal` and a rule.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut words = line.split_whitespace();
        let (Some(kvno), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        if kvno.parse::<u32>().is_ok() && !principals.iter().any(|p| p == name) {
            principals.push(name.to_owned());
        }
    }
    principals
}

/// Without a keytab the ticket cache must hold a valid ticket: `klist -s` says whether it does.
fn ticket_cache_problem() -> (&'static str, String) {
    let valid = Command::new("klist")
        .arg("-s")
        .status()
        .is_ok_and(|s| s.success());
    let cache = std::env::var("KRB5CCNAME").unwrap_or_else(|_| "the default cache".to_owned());
    let problem = if valid {
        format!("the ticket in the Kerberos ticket cache ({cache}) was not accepted: check that it is this client's principal, or set kafka.sasl_kerberos_principal and kafka.sasl_kerberos_keytab so Sluice logs in itself")
    } else {
        format!("there is no valid ticket in the Kerberos ticket cache ({cache}) and kafka.sasl_kerberos_keytab is not set: set sasl_kerberos_principal and sasl_kerberos_keytab so Sluice logs in itself, or run kinit as the user that runs Sluice")
    };
    ("sasl_kerberos_keytab", problem)
}

/// The Kerberos config file in use: `$KRB5_CONFIG`, else `/etc/krb5.conf`.
fn krb5_config() -> String {
    std::env::var("KRB5_CONFIG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/etc/krb5.conf".to_owned())
}
