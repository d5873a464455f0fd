//! The node's admin listener: `/healthz`, `/readyz`, `/status` and Prometheus `/metrics`.
//!
//! `/readyz` is 200 only while the node holds a snapshot (put it behind the load balancer's
//! health check); `/status` says which snapshot is live, where it came from and how old it is.

use crate::state::{NodeState, now_ms};
use async_trait::async_trait;
use http::Response;
use metrics_exporter_prometheus::PrometheusHandle;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::sync::Arc;

/// The admin HTTP app.
pub struct AdminApp {
    node_id: String,
    state: Arc<NodeState>,
    prometheus: Option<PrometheusHandle>,
}

impl std::fmt::Debug for AdminApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApp")
            .field("node_id", &self.node_id)
            .finish()
    }
}

impl AdminApp {
    pub fn new(
        node_id: String,
        state: Arc<NodeState>,
        prometheus: Option<PrometheusHandle>,
    ) -> Self {
        Self {
            node_id,
            state,
            prometheus,
        }
    }

    fn status(&self) -> serde_json::Value {
        let now = now_ms();
        let snapshot = self.state.current().map(|s| {
            let e = &s.engine;
            json!({
                "version": s.version(),
                "identity_revision": e.identity_revision(),
                "policy_version": e.policy_version().to_string(),
                "content_hash": s.content_hash.to_hex(),
                "via": if s.from_delta { "delta" } else { "full" },
                "origin": s.origin.as_str(),
                "created_ms": e.created_at_ms(),
                "applied_ms": s.applied_at_ms,
                "age_ms": now.saturating_sub(e.created_at_ms()),
                "users": e.user_count(),
                "groups": e.group_count(),
                "policies": s.engine.policies().len(),
            })
        });
        json!({
            "node_id": self.node_id,
            "snapshot": snapshot,
            "control_plane_connected": self.state.connected(),
            "last_contact_ms": self.state.last_contact_ms(),
            "silent_for_ms": self.state.silent_for_ms(now),
            "stale_for_ms": self.state.stale_for_ms(now),
            "control_plane_latest_version": self.state.latest_known(),
            "versions_behind": self.state.latest_known().saturating_sub(self.state.version()),
        })
    }
}

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        match path.as_str() {
            "/healthz" => respond(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => match self.state.current() {
                Some(s) => respond(
                    200,
                    "text/plain",
                    format!("ready: snapshot {}\n", s.version()).into_bytes(),
                ),
                None => respond(503, "text/plain", b"no snapshot\n".to_vec()),
            },
            "/status" => respond(
                200,
                "application/json",
                self.status().to_string().into_bytes(),
            ),
            "/metrics" => {
                if let Some(s) = self.state.current() {
                    let created = s.engine.created_at_ms();
                    metrics::gauge!("portcullis_snapshot_age_seconds")
                        .set(now_ms().saturating_sub(created) as f64 / 1000.0);
                }
                let body = self
                    .prometheus
                    .as_ref()
                    .map(|p| p.render())
                    .unwrap_or_default();
                respond(200, "text/plain; version=0.0.4", body.into_bytes())
            }
            _ => respond(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}
