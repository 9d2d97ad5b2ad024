//! Certificates for test servers that speak TLS (a private MariaDB with `--ssl-cert`), made by
//! `openssl` as an operator would: a CA and a server certificate for `127.0.0.1` and `localhost`
//! signed by it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A test CA and a server certificate it signed, as PEM files in one directory.
pub struct ServerCerts {
    /// The CA certificate, what clients trust (`ca_file`).
    pub ca: PathBuf,
    /// The server's certificate (`--ssl-cert`), for `IP:127.0.0.1` and `DNS:localhost`.
    pub cert: PathBuf,
    /// The server certificate's unencrypted key (`--ssl-key`).
    pub key: PathBuf,
}

impl ServerCerts {
    /// Makes a CA named `<name> CA` and a server certificate signed by it in `dir` (P-256 keys,
    /// valid for two days).
    pub fn make(dir: &Path, name: &str) -> Result<ServerCerts, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let file = |f: &str| dir.join(format!("{name}-{f}"));
        let (ca, ca_key) = (file("ca.pem"), file("ca.key"));
        let (cert, key, csr, ext) = (
            file("server.pem"),
            file("server.key"),
            file("server.csr"),
            file("server.ext"),
        );
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| format!("write {}: {e}", ext.display()))?;
        let p = |p: &PathBuf| p.display().to_string();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(&[
            &["req", "-x509"][..],
            &ec,
            &["-days", "2", "-subj", &format!("/CN={name} CA")],
            &["-keyout", &p(&ca_key), "-out", &p(&ca)],
        ])?;
        openssl(&[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &p(&key),
                "-out",
                &p(&csr),
            ],
        ])?;
        openssl(&[&[
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&ca),
            "-CAkey",
            &p(&ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&cert),
        ][..]])?;
        Ok(ServerCerts { ca, cert, key })
    }

    /// `mariadbd` arguments that serve this certificate.
    pub fn mariadb_args(&self) -> Vec<String> {
        vec![
            format!("--ssl-cert={}", self.cert.display()),
            format!("--ssl-key={}", self.key.display()),
            format!("--ssl-ca={}", self.ca.display()),
        ]
    }
}

/// Runs `openssl` with the concatenated `args`; its stderr on failure.
fn openssl(args: &[&[&str]]) -> Result<(), String> {
    let args: Vec<&str> = args.concat();
    let out = Command::new("openssl")
        .args(&args)
        .output()
        .map_err(|e| format!("run openssl (scripts/services.sh installs it): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
