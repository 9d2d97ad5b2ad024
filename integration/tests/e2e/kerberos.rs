//! End-to-end tests of Kerberos (SASL/GSSAPI) to Kafka against a real KDC: a throw-away MIT KDC
//! on loopback (`sluice_integration::kdc`) and a private broker whose GSSAPI listener runs as
//! `kafka/localhost@SLUICE.TEST`. `sluice-capture` publishes and `sluice-sink` consumes through
//! that listener, each logging in with the client's keytab (librdkafka runs kinit), and `check`
//! names the setting to change when the keytab is missing, the principal is not in the keytab
//! or no KDC answers.

use crate::security::{capture_toml, sink_toml};
use sluice_integration::broker::{GssapiListener, PrivateBroker};
use sluice_integration::kdc::{Kdc, REALM};
use sluice_integration::process::{capture_binary, run_to_end, sink_binary, spawn_run, Finished};
use sluice_integration::{create_topic_on, mysql, unique_name};
use std::path::{Path, PathBuf};

/// A realm with a broker in it: the KDC, the broker (GSSAPI listener and a PLAINTEXT one for
/// set-up), the client principal's keytab, and a folder for configs, logs and credential caches.
struct Realm {
    kdc: Kdc,
    broker: PrivateBroker,
    client: String,
    keytab: PathBuf,
    dir: PathBuf,
}

impl Realm {
    async fn start(name: &str) -> Realm {
        let kdc = Kdc::start(name).await.unwrap();
        let broker_keytab = kdc
            .add_principal("kafka/localhost", "kafka.keytab")
            .unwrap();
        let keytab = kdc.add_principal("sluice", "sluice.keytab").unwrap();
        let broker = PrivateBroker::start_with_gssapi(
            name,
            GssapiListener {
                krb5_conf: kdc.krb5_conf(),
                keytab: broker_keytab,
                principal: format!("kafka/localhost@{REALM}"),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\nthe KDC's log:\n{}", kdc.log_tail()));
        let dir = std::env::temp_dir().join(unique_name(name));
        std::fs::create_dir_all(&dir).unwrap();
        Realm {
            kdc,
            broker,
            client: format!("sluice@{REALM}"),
            keytab,
            dir,
        }
    }

    /// The `[kafka]` table for the GSSAPI listener, as `principal` with `keytab`.
    fn kafka(&self, principal: &str, keytab: &Path) -> String {
        format!(
            "[kafka]\nbrokers = [\"{}\"]\nsecurity_protocol = \"sasl_plaintext\"\nsasl_mechanism = \"GSSAPI\"\nsasl_kerberos_service_name = \"kafka\"\nsasl_kerberos_principal = \"{principal}\"\nsasl_kerberos_keytab = \"{}\"\n",
            self.broker.gssapi_brokers().unwrap(),
            keytab.display()
        )
    }

    /// The environment of one Sluice process: the realm's krb5.conf and a credential cache of
    /// its own (the default one is shared by every process of the user).
    fn env(&self, process: &str) -> [(String, String); 2] {
        [
            (
                "KRB5_CONFIG".to_owned(),
                self.kdc.krb5_conf().display().to_string(),
            ),
            (
                "KRB5CCNAME".to_owned(),
                format!(
                    "FILE:{}",
                    self.dir.join(format!("{process}.ccache")).display()
                ),
            ),
        ]
    }

    /// Writes `text` to `file` in the realm's folder; returns the path.
    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `<binary> check --config <config>` with `env`, to its end.
async fn check(binary: &Path, config: &Path, env: &[(String, String)]) -> Finished {
    run_to_end(
        binary,
        ["check".as_ref(), "--config".as_ref(), config.as_os_str()],
        &env_refs(env),
        60,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_and_sink_log_in_with_kerberos() {
    let realm = Realm::start("krb_flow").await;
    let db = unique_name("krb_flow");
    let mut c = mysql::conn().await;
    mysql::create_database(
        &mut c,
        &db,
        &["t (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)"],
    )
    .await;
    create_topic_on(&realm.broker.brokers(), &format!("sluice.{db}"), 2)
        .await
        .unwrap();
    let (file, pos) = mysql::binlog_end(&mut c).await;

    let kafka = realm.kafka(&realm.client, &realm.keytab);
    let capture_config = realm.write(
        "capture.toml",
        &capture_toml(&db, &kafka, &realm.dir, &format!("{file}:{pos}")),
    );
    let sink_config = realm.write("sink.toml", &sink_toml(&db, &kafka));
    let capture_log = realm.dir.join("capture.log");
    let sink_log = realm.dir.join("sink.log");
    let capture_env = realm.env("capture");
    let sink_env = realm.env("sink");
    let mut capture = spawn_run(
        &capture_binary(),
        &capture_config,
        &[],
        &env_refs(&capture_env),
        &capture_log,
    );
    let mut sink = spawn_run(
        &sink_binary(),
        &sink_config,
        &[],
        &env_refs(&sink_env),
        &sink_log,
    );

    crate::security::three_rows_reach_redis(
        &mut c,
        &db,
        (&mut capture, &capture_log),
        (&mut sink, &sink_log),
        "the GSSAPI listener",
        60,
    )
    .await;
    // Both logged in as the client principal: each one's credential cache holds its ticket for
    // the broker's service.
    for process in ["capture", "sink"] {
        let out = std::process::Command::new("klist")
            .envs(realm.env(process))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Default principal: {}", realm.client))
                && text.contains(&format!("kafka/localhost@{REALM}")),
            "{process}'s credential cache:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_kerberos_setting_to_change() {
    let realm = Realm::start("krb_check").await;
    let db = unique_name("krb_check");
    create_topic_on(&realm.broker.brokers(), &format!("sluice.{db}"), 2)
        .await
        .unwrap();
    let binaries = [capture_binary(), sink_binary()];
    let configs = |name: &str, kafka: &str| {
        [
            realm.write(
                &format!("capture-{name}.toml"),
                &capture_toml(&db, kafka, &realm.dir, "end"),
            ),
            realm.write(&format!("sink-{name}.toml"), &sink_toml(&db, kafka)),
        ]
    };

    // The right settings pass, so each failure below is the one setting that changed.
    let good = realm.kafka(&realm.client, &realm.keytab);
    for (binary, config) in binaries.iter().zip(configs("good", &good)) {
        let out = check(binary, &config, &realm.env(&unique_name("check"))).await;
        assert!(out.success(), "{} check: {}", binary.display(), out.text());
    }

    let missing = realm.dir.join("missing.keytab");
    let wrong = format!("nobody@{REALM}");
    let cases = [
        (
            "missing",
            realm.kafka(&realm.client, &missing),
            realm.kdc.krb5_conf(),
            format!(
                "kafka.sasl_kerberos_keytab: cannot read {} (No such file or directory (os error 2)); give the path of this client's keytab",
                missing.display()
            ),
        ),
        (
            "wrong",
            realm.kafka(&wrong, &realm.keytab),
            realm.kdc.krb5_conf(),
            format!(
                "Kerberos login to Kafka failed: the keytab in kafka.sasl_kerberos_keytab ({}) has no key for kafka.sasl_kerberos_principal ({wrong}); it holds {}: set sasl_kerberos_principal",
                realm.keytab.display(),
                realm.client
            ),
        ),
        (
            "nokdc",
            good.clone(),
            // The realm's krb5.conf with the KDC on a port where nothing listens.
            realm.write(
                "krb5-nokdc.conf",
                &std::fs::read_to_string(realm.kdc.krb5_conf())
                    .unwrap()
                    .replace(
                        &format!("127.0.0.1:{}", realm.kdc.port()),
                        &format!("127.0.0.1:{}", sluice_integration::free_port().unwrap()),
                    ),
            ),
            format!(
                "Kerberos login to Kafka failed: no KDC answers for the realm of kafka.sasl_kerberos_principal ({}): check that the realm is right, that its `kdc =` in the Kerberos config (",
                realm.client
            ),
        ),
    ];
    for (name, kafka, krb5_conf, want) in cases {
        for (binary, config) in binaries.iter().zip(configs(name, &kafka)) {
            let mut env = realm.env(&unique_name(name));
            env[0].1 = krb5_conf.display().to_string();
            let out = check(binary, &config, &env).await;
            let text = out.text();
            assert!(
                !out.success() && text.contains(&want),
                "{} check with the {name} setting: want `{want}` in:\n{text}",
                binary.display()
            );
        }
    }
}
