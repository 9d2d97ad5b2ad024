//! Delivering notices: one log line each, and a POST to each chosen webhook from a queue of its
//! own (so a slow webhook delays only itself), retried with a doubling backoff.

use super::config::{WebhookConfig, WebhookFormat};
use super::engine::{Notice, NoticeStatus};
use crate::monitor::rfc3339;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Notices waiting for one webhook; past this, new ones are dropped (and logged).
const QUEUE: usize = 1000;

/// Who sends the notices: in every body, so one receiver can serve many processes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Source {
    /// `sluice-capture` or `sluice-sink`.
    pub binary: &'static str,
    /// The capture's instance name or the sink's consumer group.
    pub name: String,
}

/// Sends notices to the log and the webhooks.
pub struct Notifier {
    source: Arc<Source>,
    hooks: Vec<(String, mpsc::Sender<Arc<Notice>>)>,
}

impl Notifier {
    /// Starts one delivery task per webhook; they end with `cancel`.
    pub fn start(webhooks: &[WebhookConfig], source: Source, cancel: CancellationToken) -> Self {
        let source = Arc::new(source);
        let client = reqwest::Client::new();
        let hooks = webhooks
            .iter()
            .map(|w| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(deliver(
                    w.clone(),
                    client.clone(),
                    source.clone(),
                    rx,
                    cancel.clone(),
                ));
                (w.name.clone(), tx)
            })
            .collect();
        Notifier { source, hooks }
    }

    /// Logs `notice` and queues it for its webhooks.
    pub fn send(&self, notice: Notice) {
        match notice.status {
            NoticeStatus::Firing => tracing::warn!(alert = %notice.alert,
                subject = %notice.subject, value = notice.value, "{}", notice.summary),
            NoticeStatus::Resolved => tracing::info!(alert = %notice.alert,
                subject = %notice.subject, value = notice.value, "{}", notice.summary),
        }
        let notice = Arc::new(notice);
        for (name, tx) in &self.hooks {
            if !notice.webhooks.is_empty() && !notice.webhooks.contains(name) {
                continue;
            }
            if tx.try_send(notice.clone()).is_err() {
                tracing::error!(webhook = %name, alert = %notice.alert,
                    "webhook queue full ({QUEUE} notices): this notice is not sent; is the webhook down?");
            }
        }
    }

    /// Who sends.
    pub fn source(&self) -> &Source {
        &self.source
    }
}

/// The body POSTed for `notice` in `format` (documented in docs/operations.md).
pub fn body(notice: &Notice, source: &Source, format: WebhookFormat) -> Value {
    match format {
        WebhookFormat::Json => json!({
            "version": 1,
            "status": notice.status,
            "alert": notice.alert,
            "kind": notice.kind,
            "subject": notice.subject,
            "value": notice.value,
            "threshold": notice.threshold,
            "since": rfc3339(notice.since_ms),
            "at": rfc3339(notice.at_ms),
            "summary": notice.summary,
            "source": source,
        }),
        WebhookFormat::Slack => json!({
            "text": format!("{} ({} {})", notice.summary, source.binary, source.name),
        }),
    }
}

async fn deliver(
    hook: WebhookConfig,
    client: reqwest::Client,
    source: Arc<Source>,
    mut rx: mpsc::Receiver<Arc<Notice>>,
    cancel: CancellationToken,
) {
    loop {
        let notice = tokio::select! {
            _ = cancel.cancelled() => return,
            n = rx.recv() => match n { Some(n) => n, None => return },
        };
        let payload = body(&notice, &source, hook.format);
        let mut wait = Duration::from_millis(hook.backoff_ms);
        for attempt in 1..=hook.attempts {
            let sent = client
                .post(hook.url.expose())
                .timeout(Duration::from_millis(hook.timeout_ms))
                .json(&payload)
                .send()
                .await;
            let (retry, why) = match sent {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => {
                    let s = r.status();
                    (
                        s.is_server_error() || s.as_u16() == 429,
                        format!("HTTP {s}"),
                    )
                }
                // reqwest's message would include the URL, and with it the token.
                Err(e) => (true, e.without_url().to_string()),
            };
            if !retry || attempt == hook.attempts {
                tracing::error!(webhook = %hook.name, alert = %notice.alert, attempts = attempt,
                    "could not deliver the notice to {}: {why}; check the webhook's URL and that it answers 2xx",
                    super::config::webhook_address(hook.url.expose()));
                break;
            }
            tracing::warn!(webhook = %hook.name, attempt, "webhook failed ({why}); retrying in {wait:?}");
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use std::sync::Mutex;

    fn notice() -> Notice {
        Notice {
            status: NoticeStatus::Firing,
            alert: "late".into(),
            kind: "lag",
            subject: "shop.orders".into(),
            value: 42.0,
            threshold: 30.0,
            since_ms: 1_796_634_000_000,
            at_ms: 1_796_634_060_000,
            summary: "[FIRING] late: table shop.orders is 42 s behind".into(),
            webhooks: vec![],
        }
    }

    fn source() -> Source {
        Source {
            binary: "sluice-capture",
            name: "main".into(),
        }
    }

    #[test]
    fn the_json_body_names_everything_a_receiver_routes_on() {
        let b = body(&notice(), &source(), WebhookFormat::Json);
        assert_eq!(b["version"], 1);
        assert_eq!(b["status"], "firing");
        assert_eq!(b["subject"], "shop.orders");
        assert_eq!(b["since"], "2026-12-07T09:00:00.000Z");
        assert_eq!(b["source"]["binary"], "sluice-capture");
        let s = body(&notice(), &source(), WebhookFormat::Slack);
        assert_eq!(
            s,
            json!({"text": "[FIRING] late: table shop.orders is 42 s behind (sluice-capture main)"})
        );
    }

    /// A receiver that answers 503 to the first `fail` requests and records the bodies.
    async fn receiver(fail: usize) -> (String, Arc<Mutex<Vec<Value>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(0usize));
        let (g, s) = (got.clone(), seen.clone());
        let app = axum::Router::new().route(
            "/hook",
            post(move |axum::Json(v): axum::Json<Value>| async move {
                let mut n = s.lock().expect("lock");
                *n += 1;
                if *n <= fail {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                g.lock().expect("lock").push(v);
                axum::http::StatusCode::OK
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(l, app).await });
        (format!("http://{addr}/hook"), got)
    }

    fn hook(name: &str, url: &str) -> WebhookConfig {
        WebhookConfig {
            name: name.into(),
            url: sluice_config::Secret::new(url),
            format: WebhookFormat::Json,
            timeout_ms: 2000,
            attempts: 3,
            backoff_ms: 10,
        }
    }

    async fn wait_for(got: &Mutex<Vec<Value>>, n: usize) -> Vec<Value> {
        for _ in 0..300 {
            if got.lock().expect("lock").len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        got.lock().expect("lock").clone()
    }

    #[tokio::test]
    async fn a_failing_webhook_is_retried_until_it_answers() {
        let (url, got) = receiver(2).await;
        let cancel = CancellationToken::new();
        let n = Notifier::start(&[hook("a", &url)], source(), cancel.clone());
        n.send(notice());
        let bodies = wait_for(&got, 1).await;
        assert_eq!(bodies.len(), 1, "delivered on the third attempt");
        assert_eq!(bodies[0]["alert"], "late");
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_notice_goes_only_to_the_webhooks_its_alert_names() {
        let (url_a, got_a) = receiver(0).await;
        let (url_b, got_b) = receiver(0).await;
        let cancel = CancellationToken::new();
        let n = Notifier::start(
            &[hook("a", &url_a), hook("b", &url_b)],
            source(),
            cancel.clone(),
        );
        n.send(Notice {
            webhooks: vec!["b".into()],
            ..notice()
        });
        n.send(notice());
        assert_eq!(wait_for(&got_b, 2).await.len(), 2);
        assert_eq!(wait_for(&got_a, 1).await.len(), 1);
        cancel.cancel();
    }
}
