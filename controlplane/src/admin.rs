//! The admin API (JSON over HTTP, on its own listener): fleet view, status, policy reloads,
//! the identity event log, health and Prometheus metrics.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | liveness |
//! | GET | `/readyz` | 200 once a snapshot is published |
//! | GET | `/metrics` | Prometheus text |
//! | GET | `/admin/v1/status` | latest snapshot, identity revision, policy version |
//! | GET | `/admin/v1/nodes` | every node, its applied version, lag, last ack and rejection |
//! | POST | `/admin/v1/policies/reload` | validate the policy directory and make it live |
//! | GET | `/admin/v1/policies` | the live policy version and its files |
//! | GET | `/admin/v1/events?after=N&limit=M` | identity events after sequence N |
//!
//! The identity model's endpoints (bindings, compile report, break-glass) are listed in
//! [`identity`]; API keys and service accounts in [`credentials`].
//!
//! With `admin.token_sha256` configured, `/admin/v1/*` requires `Authorization: Bearer`.

mod credentials;
mod identity;

use crate::apikeys::ApiKeys;
use crate::bindings::BindingStore;
use crate::breakglass::BreakGlass;
use crate::nodes::NodeRegistry;
use crate::policies::{PolicyStore, ReloadOutcome};
use crate::publisher::Publisher;
use crate::service_accounts::ServiceAccounts;
use crate::store::{self, Store};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use portcullis_shared::Hash32;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What the admin handlers need.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    pub nodes: NodeRegistry,
    pub policies: PolicyStore,
    pub bindings: BindingStore,
    pub break_glass: BreakGlass,
    pub api_keys: ApiKeys,
    pub service_accounts: ServiceAccounts,
    pub prometheus: Option<PrometheusHandle>,
    pub token_sha256: Option<Hash32>,
    /// Past and present snapshots' engines, for explain and replay.
    pub history: crate::history::History,
    /// Decision records shipped by the nodes.
    pub decisions: crate::store::DecisionStore,
}

pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/admin/v1/status", get(status))
        .route("/admin/v1/nodes", get(nodes))
        .route("/admin/v1/policies", get(policies))
        .route("/admin/v1/policies/reload", post(reload))
        .route("/admin/v1/events", get(events))
        .route("/admin/v1/receipts", get(receipts_about))
        .route("/admin/v1/receipts/{seq}", get(receipt))
        .route("/admin/v1/explain", post(crate::explain::explain))
        .route("/admin/v1/decisions", get(crate::audit::decisions))
        .route(
            "/admin/v1/decisions/numberings",
            get(crate::audit::numberings),
        )
        .route("/admin/v1/decisions/replay", post(crate::audit::replay))
        .route("/admin/v1/entitlements", post(crate::audit::entitlements))
        .merge(identity::routes())
        .merge(credentials::routes())
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .merge(api)
        .with_state(state)
}

async fn require_token(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    if let Some(expected) = s.token_sha256 {
        let ok = bearer(req.headers()).is_some_and(|t| {
            let digest: [u8; 32] = Sha256::digest(t.as_bytes()).into();
            bool::from(digest.ct_eq(&expected.0))
        });
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"portcullis-admin\"",
                )],
                Json(json!({"error": "a valid admin bearer token is required"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn ready(State(s): State<AdminState>) -> impl IntoResponse {
    match s.publisher.latest() {
        Some(p) => (StatusCode::OK, format!("ready: snapshot {}", p.version)),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no snapshot yet".to_owned(),
        ),
    }
}

async fn render_metrics(State(s): State<AdminState>) -> impl IntoResponse {
    // The fleet view as gauges, current as of this scrape.
    let latest = s.publisher.latest().map_or(0, |p| p.version);
    let now = store::now_ms();
    for n in s.nodes.list(latest) {
        let id = n.row.node_id.clone();
        metrics::gauge!("portcullis_node_applied_version", "node" => id.clone())
            .set(n.row.applied_version as f64);
        metrics::gauge!("portcullis_node_lag_versions", "node" => id.clone()).set(n.lag as f64);
        metrics::gauge!("portcullis_node_connected", "node" => id.clone()).set(if n.connected {
            1.0
        } else {
            0.0
        });
        if let Some(t) = n.row.last_ack_ms {
            metrics::gauge!("portcullis_node_last_ack_age_seconds", "node" => id.clone())
                .set(now.saturating_sub(t) as f64 / 1000.0);
        }
        metrics::gauge!("portcullis_node_last_rejected_version", "node" => id)
            .set(n.row.last_nack_version.unwrap_or(0) as f64);
    }
    let body = s
        .prometheus
        .as_ref()
        .map(|p| p.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

async fn status(State(s): State<AdminState>) -> Response {
    let latest = s.publisher.latest();
    let revision = s.store.run(|c| store::identity_revision(c)).await;
    let revision = match revision {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let policy = s.policies.live();
    Json(json!({
        "snapshot": latest.as_ref().map(|p| json!({
            "version": p.version,
            "identity_revision": p.identity_revision,
            "policy_version": p.policy_version.to_string(),
            "created_ms": p.created_ms,
            "id": format!("{:016x}", p.snapshot.id),
            "users": p.snapshot.users.len(),
            "groups": p.snapshot.groups.len(),
            "full": p.full_frame_if_encoded().map(|f| json!({
                "content_hash": f.content_hash.to_hex(),
                "bytes": f.payload.len(),
            })),
            "delta": p.last_step().map(|d| json!({
                "base_version": d.delta.base_version,
                "users": d.delta.users.len(),
                "removed": d.delta.removed.len(),
                "groups": d.delta.groups.len(),
                "content_hash": d.frame.content_hash.to_hex(),
                "bytes": d.frame.payload.len(),
            })),
            "history": p.history.len(),
            "signing_key_id": s.publisher.key_id(),
        })),
        "identity_revision": revision,
        "policy_version": policy.map(|p| p.version.to_string()),
        "nodes_connected": s.nodes.list(0).iter().filter(|n| n.connected).count(),
    }))
    .into_response()
}

async fn nodes(State(s): State<AdminState>) -> Response {
    let latest = s.publisher.latest().map_or(0, |p| p.version);
    Json(json!({
        "latest_version": latest,
        "nodes": s.nodes.list(latest),
    }))
    .into_response()
}

async fn policies(State(s): State<AdminState>) -> Response {
    match s.policies.live() {
        Some(p) => Json(json!({
            "version": p.version.to_string(),
            "counter": p.version.counter,
            "hash": p.version.hash.to_hex(),
            "attributes": p.attributes,
            "labels": p.labels,
            "files": p.files.iter().map(|f| json!({"name": f.name, "bytes": f.text.len()})).collect::<Vec<_>>(),
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "no policy version is live"}))).into_response(),
    }
}

async fn reload(State(s): State<AdminState>) -> Response {
    match s.policies.reload().await {
        Ok(outcome) => {
            let (changed, version) = match outcome {
                ReloadOutcome::Updated(v) => {
                    s.publisher.mark_dirty();
                    (true, v)
                }
                ReloadOutcome::Unchanged(v) => (false, v),
            };
            Json(json!({"changed": changed, "version": version.to_string()})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "policy reload refused; the previous version stays live");
            let diagnostics: Vec<_> = e
                .diagnostics()
                .into_iter()
                .map(|d| json!({"file": d.file, "line": d.line, "column": d.column, "message": d.message}))
                .collect();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "error": "the policy set is invalid; the previous version stays live",
                    "live_version": s.policies.live().map(|p| p.version.to_string()),
                    "diagnostics": diagnostics,
                })),
            )
                .into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

#[derive(Debug, Deserialize)]
struct ReceiptsQuery {
    resource_id: String,
    #[serde(default = "default_receipts")]
    limit: u32,
}

fn default_receipts() -> u32 {
    10
}

/// `GET /admin/v1/receipts/{seq}`: when each node enforced identity event `seq`.
async fn receipt(State(s): State<AdminState>, Path(seq): Path<u64>) -> Response {
    match crate::receipts::for_event(&s.store, &s.nodes, seq).await {
        Ok(Some(r)) => Json(r).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no identity event {seq}")})),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

/// `GET /admin/v1/receipts?resource_id=…`: receipts of the newest applied events about a
/// user or group (its SCIM id), newest first.
async fn receipts_about(State(s): State<AdminState>, Query(q): Query<ReceiptsQuery>) -> Response {
    let limit = q.limit.clamp(1, 100);
    match crate::receipts::for_resource(&s.store, &s.nodes, q.resource_id, limit).await {
        Ok(r) => Json(json!({ "receipts": r })).into_response(),
        Err(e) => internal(e),
    }
}

async fn events(State(s): State<AdminState>, Query(q): Query<EventsQuery>) -> Response {
    let limit = q.limit.clamp(1, 1000);
    match s
        .store
        .run(move |c| store::events_after(c, q.after, limit))
        .await
    {
        Ok(events) => Json(json!({
            // The evidence export's fields, plus the request body itself.
            "events": events.iter().map(|e| {
                let mut v = crate::evidence::event_json(e);
                v["request"] = json!(e.request);
                v
            }).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "admin request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "internal error"})),
    )
        .into_response()
}
