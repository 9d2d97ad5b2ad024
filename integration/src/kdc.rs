//! A throw-away MIT Kerberos KDC on loopback for tests of Kerberos (SASL/GSSAPI) to Kafka: its
//! own realm, database, krb5.conf and kdc.conf in a temp dir, `krb5kdc -n` on a free port, and
//! principals made with `kadmin.local` and exported to keytabs. The programs come from Debian's
//! krb5-kdc, krb5-admin-server and krb5-user, which `scripts/services.sh up` installs. The
//! process is killed when the value is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The realm of every test KDC (each has its own database and port).
pub const REALM: &str = "SLUICE.TEST";

/// A running test KDC.
pub struct Kdc {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Kdc {
    /// Creates the realm's database in a new temp dir and starts the KDC on a free loopback port
    /// (TCP and UDP); waits until it listens.
    pub async fn start(name: &str) -> Result<Kdc, String> {
        let dir = std::env::temp_dir().join(crate::unique_name(name));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let port = crate::free_port()?;
        write(&dir.join("krb5.conf"), &krb5_conf(port))?;
        write(&dir.join("kdc.conf"), &kdc_conf(&dir, port))?;
        write(&dir.join("kadm5.acl"), "")?;
        run(
            &dir,
            "kdb5_util",
            &["-r", REALM, "create", "-s", "-P", "sluice-master-key"],
        )?;
        let log = std::fs::File::create(dir.join("krb5kdc.out"))
            .map_err(|e| format!("create krb5kdc.out: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("krb5kdc.out: {e}"))?;
        let child = command(&dir, "krb5kdc")
            .args(["-n", "-r", REALM])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| {
                format!("start krb5kdc: {e} (install krb5-kdc: scripts/services.sh up does)")
            })?;
        let mut kdc = Kdc { child, dir, port };
        kdc.wait_ready().await?;
        Ok(kdc)
    }

    /// The krb5.conf of the realm, for `KRB5_CONFIG` and Java's `java.security.krb5.conf`.
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir.join("krb5.conf")
    }

    /// The KDC's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Adds `name` (e.g. `kafka/localhost` or `sluice`) to the realm with a random key and
    /// exports its key to the keytab `<file>` in the KDC's dir; returns the keytab's path.
    pub fn add_principal(&self, name: &str, file: &str) -> Result<PathBuf, String> {
        let keytab = self.dir.join(file);
        run(
            &self.dir,
            "kadmin.local",
            &["-r", REALM, "-q", &format!("addprinc -randkey {name}")],
        )?;
        run(
            &self.dir,
            "kadmin.local",
            &[
                "-r",
                REALM,
                "-q",
                &format!("ktadd -k {} {name}", keytab.display()),
            ],
        )?;
        Ok(keytab)
    }

    /// The KDC's log, for a failure message.
    pub fn log_tail(&self) -> String {
        crate::process::tail(&self.dir.join("kdc.log"), 20)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "krb5kdc exited at start ({status}): {}{}",
                    crate::process::tail(&self.dir.join("krb5kdc.out"), 20),
                    self.log_tail()
                ));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "krb5kdc did not listen on 127.0.0.1:{} within 20 s: {}",
                    self.port,
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A program of MIT Kerberos' KDC tools with the configuration in `dir`.
fn command(dir: &Path, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("KRB5_CONFIG", dir.join("krb5.conf"))
        .env("KRB5_KDC_PROFILE", dir.join("kdc.conf"));
    cmd
}

/// Runs `program args` with the configuration in `dir` to its end; its output in the error when
/// it fails (kadmin.local exits 0 on a failed query, but says so on stderr).
fn run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let out = command(dir, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("run {program}: {e} (install krb5-kdc and krb5-admin-server: scripts/services.sh up does)")
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed = stderr
        .lines()
        .any(|l| l.starts_with(&format!("{program}: ")) || l.contains(" while "));
    if out.status.success() && !failed {
        Ok(())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}{stderr}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// What clients (and the broker's JVM) read: the realm's KDC on loopback, TCP only (Java and
/// MIT alike), no DNS, and `localhost` in the realm, so the service principal
/// `kafka/localhost` is found without reverse lookups.
fn krb5_conf(port: u16) -> String {
    format!(
        "[libdefaults]\n\
         \x20default_realm = {REALM}\n\
         \x20dns_lookup_kdc = false\n\
         \x20dns_lookup_realm = false\n\
         \x20rdns = false\n\
         \x20dns_canonicalize_hostname = false\n\
         \x20udp_preference_limit = 1\n\
         \x20ticket_lifetime = 1h\n\
         [realms]\n\
         \x20{REALM} = {{\n\
         \x20 kdc = 127.0.0.1:{port}\n\
         \x20}}\n\
         [domain_realm]\n\
         \x20localhost = {REALM}\n"
    )
}

/// The KDC's own settings: its database, stash and log in `dir`, listening on 127.0.0.1 only,
/// AES keys that Java 17 and MIT both use.
fn kdc_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "[kdcdefaults]\n\
         \x20kdc_listen = 127.0.0.1:{port}\n\
         \x20kdc_tcp_listen = 127.0.0.1:{port}\n\
         [realms]\n\
         \x20{REALM} = {{\n\
         \x20 database_name = {d}/principal\n\
         \x20 key_stash_file = {d}/stash\n\
         \x20 acl_file = {d}/kadm5.acl\n\
         \x20 max_life = 1h\n\
         \x20 supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n\
         \x20}}\n\
         [logging]\n\
         \x20kdc = FILE:{d}/kdc.log\n"
    )
}
