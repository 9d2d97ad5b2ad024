//! What a user writes for alerts: `[[alerts]]` and `[[webhooks]]`, with their validation.

use super::hours::AlertHours;
use serde::Deserialize;
use sluice_config::{Problems, Secret};

/// Default `repeat_seconds`: a firing alert is told again once an hour.
pub const DEFAULT_REPEAT_SECONDS: u64 = 3600;
/// Default `window_seconds` of an `errors` alert: the rate is counted over five minutes.
pub const DEFAULT_ERRORS_WINDOW_SECONDS: u64 = 300;
/// Default webhook timeout per attempt.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 5000;
/// Default attempts per notice and webhook (the first and its retries).
pub const DEFAULT_WEBHOOK_ATTEMPTS: u32 = 5;
/// Default wait before the first retry; doubled after each further failure.
pub const DEFAULT_WEBHOOK_BACKOFF_MS: u64 = 500;

/// One `[[alerts]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Unique name, shown in notices and on `/alerts`.
    pub name: String,
    /// What is watched.
    pub kind: AlertKind,
    /// Which subjects: a glob over `database.table` in the capture and over rule names in the
    /// sink. Default `*`.
    #[serde(rename = "match", default = "match_all")]
    pub pattern: String,
    /// `lag`: seconds of lag above which the condition holds.
    #[serde(default)]
    pub threshold_seconds: Option<f64>,
    /// `errors`: failures (dead letters, failed writes, Kafka errors) within `window_seconds`
    /// above which the condition holds.
    #[serde(default)]
    pub threshold: Option<u64>,
    /// `no_traffic`: seconds without any event from the matching subjects; `errors`: the window
    /// the failures are counted over (default [`DEFAULT_ERRORS_WINDOW_SECONDS`]).
    #[serde(default)]
    pub window_seconds: Option<u64>,
    /// How long the condition must hold before the alert fires (pending until then); default 0.
    #[serde(default)]
    pub for_seconds: u64,
    /// When notices may be sent; outside these hours a firing alert is listed as muted and told
    /// when the hours begin, if it still fires. Default: always.
    #[serde(default)]
    pub hours: Option<AlertHours>,
    /// Seconds between repeated notices while it fires; 0 never repeats. Default one hour.
    #[serde(default = "default_repeat")]
    pub repeat_seconds: u64,
    /// Whether a notice is sent when a told alert stops firing. Default true.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Names of the `[[webhooks]]` to tell; empty (the default) tells every webhook.
    #[serde(default)]
    pub webhooks: Vec<String>,
}

/// What an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A subject's lag above `threshold_seconds` for `for_seconds`; one alert per subject.
    Lag,
    /// No event from any matching subject for `window_seconds` (a silent stop); one alert for
    /// the pattern.
    NoTraffic,
    /// More than `threshold` failures of a subject within `window_seconds`; one per subject.
    Errors,
}

impl AlertKind {
    /// The name used in TOML and in notices.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Lag => "lag",
            AlertKind::NoTraffic => "no_traffic",
            AlertKind::Errors => "errors",
        }
    }
}

/// One `[[webhooks]]` entry: where notices are POSTed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique name, referred to by `alerts.webhooks`.
    pub name: String,
    /// `http://` or `https://` URL; it often holds a token, so it is never printed (messages
    /// show its scheme and host only): `url = "${SLACK_WEBHOOK_URL}"`.
    pub url: Secret,
    /// The body: Sluice's JSON notice (default) or a Slack-compatible `{"text": ...}`.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Timeout of one attempt; default [`DEFAULT_WEBHOOK_TIMEOUT_MS`].
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Attempts per notice; default [`DEFAULT_WEBHOOK_ATTEMPTS`].
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// First retry delay, doubled each time; default [`DEFAULT_WEBHOOK_BACKOFF_MS`].
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The notice as documented in docs/operations.md.
    #[default]
    Json,
    /// `{"text": "<summary>"}`, which Slack incoming webhooks (and Mattermost, Rocket.Chat,
    /// Feishu bots through a relay) accept.
    Slack,
}

fn match_all() -> String {
    "*".to_owned()
}
fn default_repeat() -> u64 {
    DEFAULT_REPEAT_SECONDS
}
fn yes() -> bool {
    true
}
fn default_timeout() -> u64 {
    DEFAULT_WEBHOOK_TIMEOUT_MS
}
fn default_attempts() -> u32 {
    DEFAULT_WEBHOOK_ATTEMPTS
}
fn default_backoff() -> u64 {
    DEFAULT_WEBHOOK_BACKOFF_MS
}

/// Records every problem of `alerts` and `webhooks` in `problems`; `subjects` says what
/// `match` is matched against, for the messages ("tables" or "rules").
pub fn validate(
    alerts: &[AlertConfig],
    webhooks: &[WebhookConfig],
    subjects: &str,
    problems: &mut Problems,
) {
    let mut hook_names = std::collections::HashSet::new();
    for (i, w) in webhooks.iter().enumerate() {
        let at = format!("webhooks[{i}]");
        if w.name.is_empty() {
            problems.add(format!("{at}.name"), "must not be empty");
        } else if !hook_names.insert(w.name.as_str()) {
            problems.add(
                format!("{at}.name"),
                format!("`{}` is used twice; give each webhook its own name", w.name),
            );
        }
        let url = w.url.expose();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || reqwest::Url::parse(url).is_err()
        {
            problems.add(
                format!("{at}.url"),
                format!(
                    "`{}` is not an http:// or https:// URL",
                    webhook_address(url)
                ),
            );
        }
        if w.attempts == 0 {
            problems.add(format!("{at}.attempts"), "must be at least 1");
        }
        if w.timeout_ms == 0 {
            problems.add(format!("{at}.timeout_ms"), "must be more than 0");
        }
    }
    let mut alert_names = std::collections::HashSet::new();
    for (i, a) in alerts.iter().enumerate() {
        let at = format!("alerts[{i}]");
        if a.name.is_empty() {
            problems.add(format!("{at}.name"), "must not be empty");
        } else if !alert_names.insert(a.name.as_str()) {
            problems.add(
                format!("{at}.name"),
                format!("`{}` is used twice; give each alert its own name", a.name),
            );
        }
        if let Err(e) = globset::Glob::new(&a.pattern) {
            problems.add(
                format!("{at}.match"),
                format!("`{}` is not a glob over {subjects}: {e}", a.pattern),
            );
        }
        match a.kind {
            AlertKind::Lag => match a.threshold_seconds {
                None => problems.add(
                    format!("{at}.threshold_seconds"),
                    "a `lag` alert needs threshold_seconds (lag in seconds above which it fires)",
                ),
                Some(t) if !(t.is_finite() && t >= 0.0) => problems.add(
                    format!("{at}.threshold_seconds"),
                    "must be a number of seconds, 0 or more",
                ),
                Some(_) => {}
            },
            AlertKind::NoTraffic => match a.window_seconds {
                None | Some(0) => problems.add(
                    format!("{at}.window_seconds"),
                    "a `no_traffic` alert needs window_seconds (seconds without events), above 0",
                ),
                Some(_) => {}
            },
            AlertKind::Errors => {
                if a.threshold.is_none() {
                    problems.add(
                        format!("{at}.threshold"),
                        "an `errors` alert needs threshold (failures within window_seconds above which it fires)",
                    );
                }
                if a.window_seconds == Some(0) {
                    problems.add(format!("{at}.window_seconds"), "must be more than 0");
                }
            }
        }
        for (key, set) in [
            (
                "threshold_seconds",
                a.threshold_seconds.is_some() && a.kind != AlertKind::Lag,
            ),
            (
                "threshold",
                a.threshold.is_some() && a.kind != AlertKind::Errors,
            ),
            (
                "window_seconds",
                a.window_seconds.is_some() && a.kind == AlertKind::Lag,
            ),
        ] {
            if set {
                problems.add(
                    format!("{at}.{key}"),
                    format!("does not apply to a `{}` alert; remove it", a.kind.as_str()),
                );
            }
        }
        if let Some(h) = &a.hours {
            h.validate(&format!("{at}.hours"), problems);
        }
        for (j, name) in a.webhooks.iter().enumerate() {
            if !hook_names.contains(name.as_str()) {
                problems.add(
                    format!("{at}.webhooks[{j}]"),
                    format!("no [[webhooks]] entry is named `{name}`"),
                );
            }
        }
    }
}

/// A webhook URL as messages may show it: scheme and host, never the path, query or user
/// (where a token would be), e.g. `https://hooks.slack.com/…`.
pub fn webhook_address(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map_or(String::new(), |p| format!(":{p}"));
            format!("{}://{}{port}/…", u.scheme(), u.host_str().unwrap_or(""))
        }
        // Not a URL: only what comes before a path or credentials could start.
        Err(_) => {
            let cut = url.find(['/', '@', '?']).map_or(url.len(), |i| {
                // Keep `scheme://` itself.
                if url[i..].starts_with("//") {
                    i + 2
                } else {
                    i
                }
            });
            let head = &url[..cut];
            if cut < url.len() {
                format!("{head}…")
            } else {
                head.to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        alerts: Vec<AlertConfig>,
        #[serde(default)]
        webhooks: Vec<WebhookConfig>,
    }

    fn problems(text: &str) -> String {
        let f: File = toml::from_str(text).expect("parses");
        let mut p = Problems::default();
        validate(&f.alerts, &f.webhooks, "tables", &mut p);
        p.to_string()
    }

    #[test]
    fn a_complete_config_has_no_problems() {
        let text = r#"
            [[webhooks]]
            name = "oncall"
            url = "http://127.0.0.1:9000/hook"
            [[webhooks]]
            name = "chat"
            url = "https://hooks.slack.example/T/B/X"
            format = "slack"
            [[alerts]]
            name = "orders-late"
            kind = "lag"
            match = "shop.orders_*"
            threshold_seconds = 30
            for_seconds = 60
            hours = { days = ["mon-fri"], from = "09:00", to = "18:00", time_zone = "Asia/Shanghai" }
            webhooks = ["oncall"]
            [[alerts]]
            name = "silent"
            kind = "no_traffic"
            window_seconds = 600
            [[alerts]]
            name = "failing"
            kind = "errors"
            threshold = 10
        "#;
        assert_eq!(problems(text), "");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let text = r#"
            [[webhooks]]
            name = "a"
            url = "ftp://x"
            attempts = 0
            [[alerts]]
            name = "x"
            kind = "lag"
            match = "shop.[orders"
            window_seconds = 5
            webhooks = ["b"]
            [[alerts]]
            name = "x"
            kind = "no_traffic"
        "#;
        let p = problems(text);
        for expected in [
            "webhooks[0].url: `ftp://x/…` is not an http:// or https:// URL",
            "webhooks[0].attempts: must be at least 1",
            "alerts[0].match: `shop.[orders` is not a glob over tables",
            "alerts[0].threshold_seconds: a `lag` alert needs threshold_seconds",
            "alerts[0].window_seconds: does not apply to a `lag` alert",
            "alerts[0].webhooks[0]: no [[webhooks]] entry is named `b`",
            "alerts[1].name: `x` is used twice",
            "alerts[1].window_seconds: a `no_traffic` alert needs window_seconds",
        ] {
            assert!(p.contains(expected), "{expected:?} missing from:\n{p}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<File, _> =
            toml::from_str("[[alerts]]\nname = \"x\"\nkind = \"lag\"\nthreshold = 1\nfoo = 1\n");
        assert!(r.is_err());
        let r: Result<File, _> = toml::from_str("[[alerts]]\nname = \"x\"\nkind = \"late\"\n");
        let e = r.err().expect("unknown kind").to_string();
        assert!(e.contains("lag") && e.contains("no_traffic"), "{e}");
    }

    #[test]
    fn a_webhook_url_is_never_printed_past_its_host() {
        let token = "T0AAA/B0BBB/xoxb-webhook-token";
        assert_eq!(
            webhook_address(&format!(
                "https://hooks.slack.com:8443/services/{token}?x=1"
            )),
            "https://hooks.slack.com:8443/…"
        );
        assert_eq!(webhook_address("http://u:pw@h/p"), "http://h/…");
        assert_eq!(webhook_address("ftp://x"), "ftp://x/…");
        assert_eq!(webhook_address("hooks/secret"), "hooks…");
        assert_eq!(webhook_address("nonsense"), "nonsense");
        let text = format!("[[webhooks]]\nname = \"a\"\nurl = \"smtp://user:{token}@h/p\"\n");
        let p = problems(&text);
        assert!(p.contains("webhooks[0].url: `smtp://…` is not"), "{p}");
        assert!(!p.contains("webhook-token"), "{p}");
        let f: File = toml::from_str(&text.replace("smtp", "https")).expect("parses");
        assert!(!format!("{:?}", f.webhooks).contains("webhook-token"));
    }
}
