//! `/metrics` (Prometheus), `/healthz` and `/readyz`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct AppState {
    prometheus: PrometheusHandle,
    ready: Arc<AtomicBool>,
}

/// Installs the Prometheus recorder and serves the endpoints on `listen` until `cancel`.
pub async fn serve(
    listen: &str,
    ready: Arc<AtomicBool>,
    cancel: CancellationToken,
) -> Result<(), String> {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("installing the metrics recorder: {e}"))?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        format!("cannot listen on {listen} for /metrics: {e}; change metrics.listen")
    })?;
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.prometheus.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        // Snapshot requests to the capture running in this process (docs/snapshots.md).
        .route("/snapshot", axum::routing::post(crate::snapshot::admin))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not streaming the binlog")
                }
            }),
        )
        .with_state(AppState { prometheus, ready });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
    });
    Ok(())
}
