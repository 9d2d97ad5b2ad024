//! The capture in tests: the text of a capture config, for the library API or the binary.

use sluice_capture::config::CaptureConfig;
use std::path::Path;

/// A capture config of the tables of database `instance` only (other tests write to the same
/// server), its topic `sluice.<instance>`. The fields a test tunes are public; the rest of the
/// config is the capture's defaults.
#[derive(Debug, Clone)]
pub struct CaptureToml<'a> {
    /// The instance name, also the database whose tables are captured by default.
    pub instance: &'a str,
    /// `source.url`: the shared test server unless a test has its own.
    pub url: String,
    /// `source.server_id`: random, so parallel tests do not kick each other off the server.
    pub server_id: u32,
    /// `source.start`, if given (`file:pos`, `end`).
    pub start: Option<String>,
    /// `source.heartbeat_secs`, if given.
    pub heartbeat_secs: Option<u32>,
    /// The `[kafka]` table (and its sub-tables), as text ending with a newline.
    pub kafka: String,
    /// `checkpoint.dir`.
    pub state: &'a Path,
    /// `checkpoint.interval_ms`, if given.
    pub checkpoint_interval_ms: Option<u32>,
    /// `filter.include`: one regular expression.
    pub include: String,
    /// A `[metrics]` table listening on a free port (a capture run as a process serves one).
    pub metrics: bool,
    /// Further tables (`[publish]`, `[snapshot]`), appended as they are.
    pub extra: String,
}

impl<'a> CaptureToml<'a> {
    /// The capture of `instance`'s tables on the shared server and broker, its state in `state`.
    pub fn new(instance: &'a str, state: &'a Path) -> CaptureToml<'a> {
        CaptureToml {
            instance,
            url: crate::mysql_url(),
            server_id: 10_000 + rand::random::<u32>() % 1_000_000,
            start: None,
            heartbeat_secs: None,
            kafka: kafka_table(&crate::kafka_brokers()),
            state,
            checkpoint_interval_ms: None,
            include: format!(r"^{instance}\."),
            metrics: false,
            extra: String::new(),
        }
    }

    /// The config as TOML text.
    pub fn text(&self) -> String {
        let mut source = format!("url = \"{}\"\nserver_id = {}\n", self.url, self.server_id);
        if let Some(start) = &self.start {
            source.push_str(&format!("start = \"{start}\"\n"));
        }
        if let Some(secs) = self.heartbeat_secs {
            source.push_str(&format!("heartbeat_secs = {secs}\n"));
        }
        let mut checkpoint = format!("dir = \"{}\"\n", self.state.display());
        if let Some(ms) = self.checkpoint_interval_ms {
            checkpoint.push_str(&format!("interval_ms = {ms}\n"));
        }
        let metrics = if self.metrics {
            "[metrics]\nlisten = \"127.0.0.1:0\"\n"
        } else {
            ""
        };
        format!(
            "instance = \"{instance}\"\n[source]\n{source}{kafka}[checkpoint]\n{checkpoint}\
             [filter]\ninclude = ['{include}']\n{metrics}{extra}",
            instance = self.instance,
            kafka = self.kafka,
            include = self.include,
            extra = self.extra,
        )
    }

    /// The config as the capture reads it; panics with the text if it does not parse.
    pub fn parse(&self) -> CaptureConfig {
        let text = self.text();
        sluice_config::parse(&text, Path::new("capture-test.toml"), |_| None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

/// A `[kafka]` table with the bootstrap servers `brokers` and nothing else.
pub fn kafka_table(brokers: &str) -> String {
    format!("[kafka]\nbrokers = [\"{brokers}\"]\n")
}
