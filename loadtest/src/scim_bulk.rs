//! Loading a large directory over SCIM `/Bulk`, and reading the control plane's counters.

use anyhow::bail;
use serde_json::{Value, json};
use std::sync::Arc;

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// A SCIM client for one source's base URL.
#[derive(Debug, Clone)]
pub struct Client {
    pub http: reqwest::Client,
    /// `http://…/scim/v2/<source>`
    pub base: String,
    pub token: String,
}

impl Client {
    /// Sends `body` to `base + path`; returns the status and the JSON body (`Null` if none).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Runs one bulk request; returns the ids it created, in operation order.
    pub async fn bulk(&self, ops: Vec<Value>) -> anyhow::Result<Vec<String>> {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/Bulk",
                &json!({"schemas": [BULK], "Operations": ops}),
            )
            .await?;
        if status != 200 {
            bail!("bulk: {status} {body}");
        }
        let mut ids = Vec::new();
        for op in body["Operations"].as_array().into_iter().flatten() {
            if op["status"] != "201" {
                bail!("bulk operation failed: {op}");
            }
            let id = op["location"]
                .as_str()
                .and_then(|l| l.rsplit('/').next())
                .unwrap_or("");
            ids.push(id.to_owned());
        }
        Ok(ids)
    }
}

/// Runs `requests` bulk requests with at most `concurrency` in flight; returns every created
/// id, in request and operation order.
pub async fn load(
    client: &Arc<Client>,
    requests: Vec<Vec<Value>>,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let mut out = vec![Vec::new(); requests.len()];
    let mut pending = requests.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < concurrency {
            let Some((i, ops)) = pending.next() else {
                break;
            };
            let c = client.clone();
            running.spawn(async move { (i, c.bulk(ops).await) });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (i, ids) = done?;
        out[i] = ids?;
    }
    Ok(out.into_iter().flatten().collect())
}

/// The control plane's Prometheus page.
pub async fn scrape(http: &reqwest::Client, admin: std::net::SocketAddr) -> anyhow::Result<String> {
    Ok(http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await?
        .text()
        .await?)
}

/// A metric's value in a Prometheus page, summed over the series whose labels contain
/// `labels`.
pub fn metric(page: &str, name: &str, labels: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with([' ', '{']) && r.contains(labels))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
