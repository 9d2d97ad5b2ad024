//! The HTTP endpoint (`/metrics`, `/healthz`, `/readyz`, `/snapshot`, and the monitor's status
//! page, `/status.json` and `/alerts`) and the monitor that reads the capture's tally once a
//! second.

use crate::config::CaptureConfig;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use sluice_ops::alerts::Source;
use sluice_ops::Monitor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct AppState {
    prometheus: PrometheusHandle,
    ready: Arc<AtomicBool>,
}

/// Installs the process's Prometheus recorder: before anything takes a metric's handle (a
/// handle taken earlier records nothing).
pub fn install_metrics() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("installing the metrics recorder: {e}"))
}

/// Serves the endpoints on `listen` until `cancel`.
pub async fn serve(
    listen: &str,
    prometheus: PrometheusHandle,
    ready: Arc<AtomicBool>,
    monitor: Arc<sluice_ops::Monitor>,
    cancel: CancellationToken,
) -> Result<(), String> {
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
        .with_state(AppState { prometheus, ready })
        .merge(sluice_ops::page::routes(monitor));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
    });
    Ok(())
}

/// Starts the monitor of `cfg`'s capture: once a second it takes the tally's readings (which
/// also sets the lag and per-table gauges) and judges the configured alerts.
pub fn monitor(
    cfg: &CaptureConfig,
    recent: Arc<sluice_ops::Recent>,
    cancel: CancellationToken,
) -> Arc<Monitor> {
    let tally = crate::tally::install(&cfg.instance, cfg.metrics.max_tables);
    // Series that exist from the start, so dashboards and `increase()` see the first ones.
    metrics::counter!("sluice_capture_kafka_errors_total").increment(0);
    metrics::counter!("sluice_capture_reconnects_total").increment(0);
    let source = Source {
        binary: "sluice-capture",
        name: cfg.instance.clone(),
    };
    let monitor = Monitor::new(
        &cfg.alerts,
        &cfg.webhooks,
        source,
        "table",
        recent,
        cancel.clone(),
    );
    let address = source_address(cfg.source.url.expose());
    let topic = cfg.publish.topic.clone();
    let instance = cfg.instance.clone();
    monitor.spawn(
        move |now| {
            let info = json!({
                "instance": instance,
                "source": address,
                "topic": topic,
                "binlog": tally.position(),
            });
            (tally.frame(now), info)
        },
        cancel,
    );
    monitor
}

/// The monitor of a fleet worker: the tally of all its instances together (one process, one
/// tally), and which instances it owns now.
pub fn fleet_monitor(
    fleet: &crate::config::fleet::FleetConfig,
    recent: Arc<sluice_ops::Recent>,
    cancel: CancellationToken,
) -> Arc<Monitor> {
    let tally = crate::tally::install(&format!("fleet {}", fleet.name), fleet.metrics.max_tables);
    metrics::counter!("sluice_capture_kafka_errors_total").increment(0);
    metrics::counter!("sluice_capture_reconnects_total").increment(0);
    metrics::gauge!("sluice_fleet_instances_owned").set(0.0);
    let source = Source {
        binary: "sluice-capture",
        name: format!("{}/{}", fleet.name, fleet.worker),
    };
    let monitor = Monitor::new(&[], &[], source, "table", recent, cancel.clone());
    let (name, worker, topic) = (
        fleet.name.clone(),
        fleet.worker.clone(),
        fleet.control_topic.clone(),
    );
    let instances: Vec<String> = fleet.instances.iter().map(|c| c.instance.clone()).collect();
    monitor.spawn(
        move |now| {
            let info = json!({
                "fleet": name,
                "worker": worker,
                "control_topic": topic,
                "instances": instances,
                "owned": crate::fleet::owned(),
            });
            (tally.frame(now), info)
        },
        cancel,
    );
    monitor
}

/// `host:port` of a `mysql://user:password@host:port/...` URL, without the credentials.
fn source_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_source_address_drops_credentials_and_path() {
        assert_eq!(
            super::source_address("mysql://sluice:p@ss@db.example:3306/shop?ssl=1"),
            "db.example:3306"
        );
        assert_eq!(
            super::source_address("mysql://127.0.0.1:3307"),
            "127.0.0.1:3307"
        );
    }
}
