//! Asking for a snapshot: the request format, the admin endpoint, the signalling-table insert.

use super::sql;
use super::table::{session, table_meta};
use crate::clock::now_ms;
use crate::config::snapshot::{split_table, Watermarks};
use crate::config::CaptureConfig;
use crate::error::CaptureError;
use crate::filter::Filter;
use crate::source::SourceClient;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// An on-demand request read from the signalling table (or the admin endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub tables: Vec<String>,
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Requests from the admin endpoint, for the driver running in this process.
static ADMIN: Mutex<Vec<Request>> = Mutex::new(Vec::new());

/// `POST /snapshot` on the capture's metrics port, body `{"tables":["db.t"],"where":"..."}`:
/// queues a snapshot in the capture running in this process (the way to ask for one with
/// `watermarks = "position"`, where there is no signalling table). Answers 202 with the request
/// id; progress as for any request (`sluice-capture snapshot`, /metrics).
pub async fn admin(body: String) -> (axum::http::StatusCode, String) {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        tables: Vec<String>,
        #[serde(default, rename = "where")]
        filter: Option<String>,
    }
    let bad = |msg: String| (axum::http::StatusCode::BAD_REQUEST, msg + "\n");
    let b = match serde_json::from_str::<Body>(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(format!(
                "the body must be {{\"tables\":[\"database.table\"],\"where\":\"<optional SQL>\"}}: {e}"
            ))
        }
    };
    if b.tables.is_empty() {
        return bad("`tables` is empty; name at least one database.table".into());
    }
    if let Some(t) = b.tables.iter().find(|t| split_table(t).is_none()) {
        return bad(format!("`{t}` is not database.table"));
    }
    let id = format!("http-{:x}", now_ms());
    ADMIN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(Request {
            id: id.clone(),
            tables: b.tables,
            filter: b.filter,
        });
    (
        axum::http::StatusCode::ACCEPTED,
        format!("{{\"id\":\"{id}\"}}\n"),
    )
}

/// Takes the requests the admin endpoint queued since the last call.
pub(super) fn take_admin_requests() -> Vec<Request> {
    std::mem::take(&mut *ADMIN.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Inserts a snapshot request for `tables` into the signalling table, after checking that
/// each table can be snapshotted; returns the request id.
pub async fn request(
    cfg: &CaptureConfig,
    tables: &[String],
    filter: Option<&str>,
) -> Result<String, CaptureError> {
    let Some(snap) = &cfg.snapshot else {
        return Err(CaptureError::Check(
            "this config has no [snapshot] section, so the running capture ignores requests; add [snapshot] (docs/snapshots.md) and restart it".into(),
        ));
    };
    if snap.watermarks == Watermarks::Position {
        return Err(CaptureError::Check(
            "snapshot.watermarks = \"position\" (read-only user): there is no signalling table to write a request to; use snapshot.mode = \"initial\" with a new instance name, or a user with write access to the signalling table".into(),
        ));
    }
    let client = SourceClient::new(&cfg.source)?;
    let table_filter =
        Filter::new(&cfg.filter).map_err(|e| CaptureError::Check(format!("filter: {e}")))?;
    let mut conn = session(&client).await?;
    let mut problems = Vec::new();
    for t in tables {
        match split_table(t) {
            None => problems.push(format!("`{t}` is not database.table")),
            Some((d, tb)) => {
                if let Err(e) = table_meta(&mut conn, &client, &d, &tb, &table_filter).await {
                    problems.push(e.to_string());
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(CaptureError::Check(problems.join("\n")));
    }
    let (d, t) = split_table(&snap.signal_table).unwrap_or_default();
    let id = format!("req-{:x}", now_ms());
    let payload = serde_json::to_string(&Request {
        id: id.clone(),
        tables: tables.to_vec(),
        filter: filter.map(str::to_owned),
    })
    .map_err(|e| CaptureError::Check(format!("encoding the request: {e}")))?;
    conn.exec_drop(
        sql::insert_signal(&d, &t),
        (&cfg.instance, "snapshot", "", 0u64, payload),
    )
    .await
    .map_err(|e| {
        CaptureError::Check(format!(
            "cannot write the request into {} on {}: {e}; the table is created by a running capture with [snapshot]; grant INSERT on it",
            snap.signal_table, client.addr
        ))
    })?;
    let _ = conn.disconnect().await;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admin_requests_are_checked_and_queued() {
        let (status, text) = admin("{\"tables\":[\"shop\"]}".into()).await;
        assert_eq!(status, axum::http::StatusCode::BAD_REQUEST);
        assert!(text.contains("`shop` is not database.table"), "{text}");
        let (status, text) = admin("tables=shop.orders".into()).await;
        assert_eq!(status, axum::http::StatusCode::BAD_REQUEST);
        assert!(text.contains("the body must be"), "{text}");
        let (status, text) =
            admin("{\"tables\":[\"shop.orders\"],\"where\":\"id > 5\"}".into()).await;
        assert_eq!(status, axum::http::StatusCode::ACCEPTED, "{text}");
        let queued = std::mem::take(&mut *ADMIN.lock().unwrap());
        assert_eq!(queued.len(), 1);
        assert!(text.contains(&queued[0].id));
        assert_eq!(queued[0].tables, vec!["shop.orders"]);
        assert_eq!(queued[0].filter.as_deref(), Some("id > 5"));
    }
}
