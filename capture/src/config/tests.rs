//! Unit tests of the capture config: the example file, every problem with its path, start positions and resume modes.

use super::*;
use std::path::Path;

fn parse(text: &str) -> Result<CaptureConfig, String> {
    sluice_config::parse(text, Path::new("c.toml"), |n| {
        (n == "PW").then(|| "pw".to_owned())
    })
    .map_err(|e| e.to_string())
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/capture.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg = sluice_config::parse::<CaptureConfig>(&text, &path, |_| Some("x".into())).unwrap();
    assert_eq!(cfg.instance, "shop-main");
    assert_eq!(cfg.start_at(), StartAt::End);
    assert_eq!(cfg.resume(), Resume::Auto);
    assert_eq!(cfg.filter.drop_columns["shop.users"], vec!["password"]);
    assert_eq!(cfg.filter.mask["shop.users"].len(), 1);
    assert_eq!(cfg.alerts.len(), 2);
    assert_eq!(cfg.webhooks.len(), 1);
    assert_eq!(cfg.metrics.max_tables, sluice_config::DEFAULT_MAX_TABLES);
}

#[test]
fn source_tls_is_set_in_one_place() {
    let head = "instance = \"i\"\n[kafka]\nbrokers = [\"k:9092\"]\n[source]\n";
    let cfg = parse(&format!("{head}url = \"mysql://u:${{PW}}@h:3306\"\n")).unwrap();
    assert_eq!(cfg.source.tls, TlsMode::Preferred);
    let cfg = parse(&format!(
        "{head}url = \"mysql://u@h:3306\"\ntls = \"verify_identity\"\nca_file = \"/ca.pem\"\n"
    ))
    .unwrap();
    assert_eq!(cfg.source.tls, TlsMode::VerifyIdentity);
    let err = parse(&format!(
        "{head}url = \"mysql://u:${{PW}}@h:3306?require_ssl=true&verify_ca=false\"\nca_file = \"/ca.pem\"\n"
    ))
    .unwrap_err();
    for want in [
        "source.url: the URL parameter `require_ssl` is not used; set TLS with source.tls (disabled, preferred, required, verify_ca, verify_identity) and source.ca_file",
        "source.url: the URL parameter `verify_ca` is not used",
        "source.ca_file: only used with source.tls = \"verify_ca\" or \"verify_identity\"; set tls or remove ca_file",
    ] {
        assert!(err.contains(want), "{want:?} missing from {err}");
    }
    assert!(!err.contains("pw"), "{err}");
}

#[test]
fn every_problem_with_its_path() {
    let err = parse(
        "instance = \"a b\"\n[source]\nurl = \"http://x\"\nstart = \"binlog.1:x\"\nresume = \"file\"\n[kafka]\nbrokers = [\"k:1\"]\n[publish]\ncompression = \"brotli\"\n[filter]\ninclude = [\"(\"]\ntypes = [\"UPSERT\"]\n",
    )
    .unwrap_err();
    for path in [
        "instance:",
        "source.url:",
        "source.start:",
        "source.resume:",
        "publish.compression:",
        "filter.include[0]:",
        "filter.types[0]:",
    ] {
        assert!(err.contains(path), "{path} missing in {err}");
    }
}

#[test]
fn start_positions() {
    assert_eq!(StartAt::parse("oldest"), Ok(StartAt::Oldest));
    assert_eq!(
        StartAt::parse("binlog.000003:4711"),
        Ok(StartAt::File {
            file: "binlog.000003".into(),
            pos: 4711
        })
    );
    assert_eq!(
        StartAt::parse("gtid:0-1-42"),
        Ok(StartAt::Gtid("0-1-42".into()))
    );
    assert!(StartAt::parse("binlog.000003").is_err());
    assert!(StartAt::parse("b:2").is_err());
    assert_eq!(Resume::parse("position"), Ok(Resume::Position));
    assert_eq!(Resume::parse("gtid"), Ok(Resume::Gtid));
    assert!(Resume::parse("GTID").is_err());
    let cfg = parse(
        "instance = \"i\"\n[source]\nurl = \"mysql://u:${PW}@h:1\"\n[kafka]\nbrokers = [\"k:1\"]\n",
    )
    .unwrap();
    assert!(!format!("{cfg:?}").contains("pw@"));
}
