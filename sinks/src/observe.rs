//! Logs (tracing, text or JSON) and the HTTP endpoint: `/metrics`, `/healthz`, `/readyz`.

use crate::error::SinkError;
use crate::runtime::Health;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
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

/// Serves `/metrics`, `/healthz` (the process is up) and `/readyz` (the sink is consuming)
/// on `listen` until `cancel` fires.
pub async fn serve(
    listen: &str,
    metrics: PrometheusHandle,
    health: Health,
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
        .with_state((metrics, health));
    Ok(tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = r {
            tracing::warn!("metrics endpoint stopped: {e}");
        }
    }))
}
