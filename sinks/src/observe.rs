//! The HTTP endpoint (`/metrics`, `/healthz`, `/readyz`, and the monitor's status page,
//! `/status.json` and `/alerts`) and the monitor that reads the sink's tally once a second.

use crate::config::SinkConfig;
use crate::error::SinkError;
use crate::runtime::{Health, Tally};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use sluice_ops::alerts::Source;
use sluice_ops::{Monitor, Recent};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Installs the global Prometheus recorder (once per process) and keeps its histograms tidy.
pub fn install_metrics() -> Result<PrometheusHandle, SinkError> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            100.0, 1000.0, 10000.0,
        ])
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| SinkError::Metrics {
            listen: "-".into(),
            reason: e.to_string(),
        })?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Starts the monitor: once a second it reads `tally`, sets the per-rule lag gauges, and
/// judges the configured alerts.
pub fn monitor(
    config: &SinkConfig,
    tally: Arc<Tally>,
    recent: Arc<Recent>,
    cancel: CancellationToken,
) -> Arc<Monitor> {
    let source = Source {
        binary: "sluice-sink",
        name: config.consumer.group_id.clone(),
    };
    let monitor = Monitor::new(
        &config.alerts,
        &config.webhooks,
        source,
        "rule",
        recent,
        cancel.clone(),
    );
    let names: Vec<(String, String)> = config
        .rules
        .iter()
        .map(|r| (r.name.clone(), r.target.clone()))
        .collect();
    let topics = config.consumer.topics.clone();
    // Series that exist from the start, so dashboards and `increase()` see the first writes
    // and retries (a counter appears on /metrics only once touched).
    for topic in &topics {
        for (rule, target) in &names {
            metrics::counter!("sluice_sink_items_total", "topic" => topic.clone(),
                "rule" => rule.clone(), "target" => target.clone(), "outcome" => "done")
            .increment(0);
        }
    }
    for target in config.targets.keys() {
        metrics::counter!("sluice_sink_retries_total", "target" => target.clone()).increment(0);
    }
    let group = config.consumer.group_id.clone();
    let targets: serde_json::Map<String, serde_json::Value> = config
        .targets
        .iter()
        .map(|(name, t)| (name.clone(), json!(t.kind())))
        .collect();
    monitor.spawn(
        move |now| {
            let frame = tally.frame(&names, now);
            for (r, (_, target)) in frame.subjects.iter().zip(&names) {
                metrics::gauge!("sluice_sink_lag_seconds",
                    "rule" => r.subject.clone(), "target" => target.clone())
                .set(r.lag_seconds);
            }
            let info = json!({
                "consumer group": group,
                "topics": topics,
                "targets": targets,
                "assignment": tally.assignment(),
            });
            (frame, info)
        },
        cancel,
    );
    monitor
}

/// Serves `/metrics`, `/healthz` (the process is up), `/readyz` (the sink is consuming) and
/// the monitor's `/`, `/status.json` and `/alerts` on `listen` until `cancel` fires.
pub async fn serve(
    listen: &str,
    metrics: PrometheusHandle,
    health: Health,
    monitor: Arc<Monitor>,
    cancel: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, SinkError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| SinkError::Metrics {
            listen: listen.to_owned(),
            reason: e.to_string(),
        })?;
    let app = Router::new()
        .route(
            "/metrics",
            get(|State((m, _)): State<(PrometheusHandle, Health)>| async move { m.render() }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(
                |State((_, h)): State<(PrometheusHandle, Health)>| async move {
                    if h.is_ready() {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                },
            ),
        )
        .with_state((metrics, health))
        .merge(sluice_ops::page::routes(monitor));
    Ok(tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = r {
            tracing::warn!("metrics endpoint stopped: {e}");
        }
    }))
}
