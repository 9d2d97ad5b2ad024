//! The HTTP side of the monitor: the status page at `/` (one self-contained HTML file embedded
//! in the binary, charts drawn as SVG by its own script), `/status.json` and `/alerts`.

use crate::monitor::Monitor;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// The page; it fetches `/status.json` every two seconds.
pub const PAGE: &str = include_str!("../assets/status.html");

/// The routes `/`, `/status.json` and `/alerts`, to merge into a binary's router.
pub fn routes<S: Clone + Send + Sync + 'static>(monitor: Arc<Monitor>) -> Router<S> {
    let (m1, m2) = (monitor.clone(), monitor);
    Router::new()
        .route(
            "/",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
            }),
        )
        .route(
            "/status.json",
            get(move || async move { Json(m1.status_json()) }),
        )
        .route(
            "/alerts",
            get(move || async move { Json(m2.alerts_json()) }),
        )
}
