//! The OpenSearch client, its answers as JSON, and the index's refresh statistics.

use anyhow::{bail, Context as _};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::indices::IndicesStatsParts;
use elasticsearch::Elasticsearch;
use serde_json::Value;

pub fn es_client(url: &str) -> anyhow::Result<Elasticsearch> {
    let url = Url::parse(url).with_context(|| format!("OpenSearch URL {url}"))?;
    Ok(Elasticsearch::new(
        TransportBuilder::new(SingleNodeConnectionPool::new(url)).build()?,
    ))
}

pub async fn es_json(
    resp: Result<elasticsearch::http::response::Response, elasticsearch::Error>,
) -> anyhow::Result<Value> {
    let resp = resp.context("OpenSearch request")?;
    let status = resp.status_code();
    let body = resp.text().await.context("OpenSearch response")?;
    if !status.is_success() {
        bail!("OpenSearch answered {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

/// The index's refreshes so far and the milliseconds they took (primaries).
pub async fn refreshes(es: &Elasticsearch, index: &str) -> anyhow::Result<(u64, u64)> {
    let stats = es_json(
        es.indices()
            .stats(IndicesStatsParts::IndexMetric(&[index], &["refresh"]))
            .send()
            .await,
    )
    .await?;
    let r = &stats["_all"]["primaries"]["refresh"];
    Ok((
        r["total"].as_u64().unwrap_or(0),
        r["total_time_in_millis"].as_u64().unwrap_or(0),
    ))
}
