//! The capture's plaintext detector as a process: columns planted with personal data are counted
//! on `/metrics` under the pattern they match, and the other columns are not.

use crate::operations::{get, sample};
use sluice_integration::capture::CaptureToml;
use sluice_integration::mysql::{conn, create_database, exec_all};
use sluice_integration::process::{capture_binary, spawn_run, tail, terminate};
use sluice_integration::wait::until_ok;
use sluice_integration::{create_topic, free_port, state_dir, unique_name};

#[tokio::test]
async fn the_detector_flags_the_planted_columns_and_not_the_others() {
    let db = unique_name("detect");
    let mut c = conn().await;
    let table =
        "people (id INT PRIMARY KEY, mail VARCHAR(64), mobile VARCHAR(20), card VARCHAR(24), \
                 idc CHAR(18), city VARCHAR(32), code VARCHAR(20), secret VARCHAR(64))";
    create_database(&mut c, &db, &[table]).await;
    let (file, pos) = sluice_integration::mysql::binlog_end(&mut c).await;
    create_topic(&format!("sluice.{db}"), 1)
        .await
        .expect("topic");
    let dir = state_dir().join("test-artifacts").join(&db);
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port().expect("port");
    let config = CaptureToml {
        start: Some(format!("{file}:{pos}")),
        extra: format!(
            "[metrics]\nlisten = \"127.0.0.1:{port}\"\n[detect]\npatterns = [\"email\", \"phone_cn\", \"card\", \"id_card_cn\"]\nsample_rows = 1\n\
             [filter.mask.\"{db}.people\"]\nsecret = {{ type = \"mask\", keep_first = 1 }}\n"
        ),
        ..CaptureToml::new(&db, &dir)
    }
    .text();
    let path = dir.join("capture.toml");
    std::fs::write(&path, config).expect("write");
    let log = dir.join("capture.log");
    let mut capture = spawn_run(&capture_binary(), &path, &[], &[], &log);
    // `secret` holds e-mail addresses too, but it is masked: what leaves is not personal data.
    let rows = (1..=5).map(|i| {
        format!(
            "INSERT INTO `{db}`.people VALUES ({i}, 'user{i}@example.com', '1381234567{i}', \
             '4111 1111 1111 1111', '11010519491231002X', 'Berlin', 'A-{i}0000', 'hidden{i}@example.com')"
        )
    });
    exec_all(&mut c, rows).await;
    let metrics = until_ok(60, "five e-mail addresses counted", async || {
        let m = get(port, "/metrics").await?;
        let n = sample(
            &m,
            "sluice_capture_plaintext_values_total",
            &[("column", "mail"), ("pattern", "email")],
        );
        if n == Some(5.0) {
            Ok(m)
        } else {
            Err(format!("{n:?}; log:\n{}", tail(&log, 20)))
        }
    })
    .await;
    for (column, pattern) in [
        ("mobile", "phone_cn"),
        ("card", "card"),
        ("idc", "id_card_cn"),
    ] {
        assert_eq!(
            sample(
                &metrics,
                "sluice_capture_plaintext_values_total",
                &[("column", column), ("pattern", pattern)]
            ),
            Some(5.0),
            "{column}"
        );
    }
    for column in ["city", "code", "secret", "id"] {
        assert!(
            !metrics
                .lines()
                .any(|l| l.starts_with("sluice_capture_plaintext_values_total")
                    && l.contains(&format!("column=\"{column}\""))),
            "{column} was flagged:\n{metrics}"
        );
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains(&format!(
            "column {db}.people.mail holds values that look like `email`"
        )),
        "{text}"
    );
    terminate(&mut capture, 20).await;
}
