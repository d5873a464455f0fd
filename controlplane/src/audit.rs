//! The decision side of the audit trail, on the admin API:
//!
//! - `GET /admin/v1/decisions`: the records the nodes shipped, filtered by time range,
//!   principal, decision, resource, action and node, oldest first, paged by cursor.
//! - `GET /admin/v1/decisions/numberings`: per node and records directory, how many records
//!   are stored and how many numbers are missing (records a node counted as dropped).
//! - `POST /admin/v1/decisions/replay`: decides a recorded request again against the snapshot
//!   that decided it, and says whether the decision and its determining policies match.
//! - `POST /admin/v1/entitlements`: what a principal could use at an instant.
//!
//! And the retention task: decision records and identity events older than their configured
//! retention are deleted hourly. Nothing else deletes them; deleting a user from the IdP
//! leaves its records alone.

use crate::admin::AdminState;
use crate::config::{AuditConfig, days};
use crate::explain::{actions_for, bad, engine_at, find_principal, history_error};
use crate::store::{self, DecisionFilter, DecisionStore, Store, StoredDecision};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_shared::engine::{Decision, Engine};
use portcullis_shared::request::{Action, Request, RequestContext, Resource};
use portcullis_shared::snapshot::User;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;

/// Decision-record filters and paging, as query parameters and as CLI flags.
#[derive(Debug, Clone, Default, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct DecisionsQuery {
    /// From this instant (RFC 3339 or Unix ms), inclusive.
    #[serde(default)]
    #[arg(long, value_parser = crate::cli::parse_instant)]
    pub from_ms: Option<u64>,
    /// Up to this instant (RFC 3339 or Unix ms), exclusive.
    #[serde(default)]
    #[arg(long, value_parser = crate::cli::parse_instant)]
    pub to_ms: Option<u64>,
    /// A principal's SCIM id or userName.
    #[serde(default)]
    #[arg(long)]
    pub principal: Option<String>,
    /// `allow` or `deny`.
    #[serde(default)]
    #[arg(long)]
    pub decision: Option<String>,
    /// A Cedar entity as recorded, e.g. `Model::"gpt-4o"` or `McpTool::"github/create_issue"`.
    #[serde(default)]
    #[arg(long)]
    pub resource: Option<String>,
    /// A Cedar action id (`chat`, `mcp:tools/call`, …).
    #[serde(default)]
    #[arg(long)]
    pub action: Option<String>,
    /// A node id.
    #[serde(default)]
    #[arg(long)]
    pub node: Option<String>,
    /// The `next` cursor of the previous page.
    #[serde(default)]
    #[arg(long)]
    pub after: Option<String>,
    /// Records per page (1–10,000; 100 by default).
    #[serde(default)]
    #[arg(long)]
    pub limit: Option<u32>,
}

impl DecisionsQuery {
    fn filter(&self) -> Result<DecisionFilter, String> {
        if let Some(d) = &self.decision
            && d != "allow"
            && d != "deny"
        {
            return Err(format!("decision must be allow or deny, not {d:?}"));
        }
        if let Some(a) = &self.action
            && Action::from_cedar_id(a).is_none()
        {
            return Err(format!("unknown action {a:?}"));
        }
        if let (Some(from), Some(to)) = (self.from_ms, self.to_ms)
            && from > to
        {
            return Err(format!("from_ms {from} is after to_ms {to}"));
        }
        Ok(DecisionFilter {
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            principal: self.principal.clone(),
            decision: self.decision.clone(),
            resource: self.resource.clone(),
            action: self.action.clone(),
            node: self.node.clone(),
        })
    }
}

pub async fn decisions(State(s): State<AdminState>, Query(q): Query<DecisionsQuery>) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    if q.after.as_deref().is_some_and(|a| {
        a.split_once('.')
            .is_none_or(|(x, y)| x.parse::<i64>().is_err() || y.parse::<i64>().is_err())
    }) {
        return bad(
            StatusCode::BAD_REQUEST,
            "after is not a cursor this API gave",
        );
    }
    match s
        .decisions
        .query(filter, q.after.clone(), q.limit.unwrap_or(100))
        .await
    {
        Ok(page) => Json(page).into_response(),
        Err(e) => internal(e),
    }
}

pub async fn numberings(State(s): State<AdminState>) -> Response {
    match s.decisions.numberings().await {
        Ok(n) => Json(json!({ "numberings": n })).into_response(),
        Err(e) => internal(e),
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "admin request failed");
    bad(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Which recorded decision to replay.
#[derive(Debug, Clone, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The node that decided.
    #[arg(long)]
    pub node: String,
    /// The record's number on that node.
    #[arg(long)]
    pub seq: u64,
    /// The node's records directory (`epoch`), when the node has had more than one.
    #[serde(default)]
    #[arg(long)]
    pub epoch: Option<String>,
}

/// The parts of a decision replay compares.
fn outcome(d: &Decision) -> serde_json::Value {
    json!({
        "decision": d.effect.as_str(),
        "reason": d.reason.label(),
        "policies": d.policies.iter().collect::<Vec<_>>(),
    })
}

pub async fn replay(State(s): State<AdminState>, Json(body): Json<ReplayRequest>) -> Response {
    let found = match s
        .decisions
        .get(body.node.clone(), body.epoch.clone(), body.seq)
        .await
    {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    let stored = match found.as_slice() {
        [one] => one.clone(),
        [] => {
            return bad(
                StatusCode::NOT_FOUND,
                format!("no stored record {} of node {}", body.seq, body.node),
            );
        }
        many => {
            let epochs: Vec<&str> = many.iter().map(|d| d.epoch.as_str()).collect();
            return bad(
                StatusCode::CONFLICT,
                format!(
                    "node {} has record {} in more than one records directory; give epoch (one of {})",
                    body.node,
                    body.seq,
                    epochs.join(", ")
                ),
            );
        }
    };
    let StoredDecision { epoch, record } = stored;
    let (Some(request), Some(principal)) = (&record.request, &record.principal) else {
        return bad(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "record {} was refused before the engine decided ({}): there is nothing to replay",
                record.seq, record.reason
            ),
        );
    };
    let engine = match s.history.engine(record.snapshot_version).await {
        Ok(e) => e,
        Err(e) => return history_error(e),
    };
    let Some(user) = engine.principal(&principal.source, &principal.id, &principal.user_name)
    else {
        return bad(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "principal {} of {} is not in snapshot {}, which decided the record",
                principal.id, principal.source, record.snapshot_version
            ),
        );
    };
    let explanation = engine.explain(&user, request);
    let replayed = &explanation.decision;
    let matches = replayed.effect.as_str() == record.decision
        && replayed.reason.label() == record.reason
        && replayed.policies.iter().collect::<BTreeSet<&str>>()
            == record.policies.iter().map(String::as_str).collect();
    Json(json!({
        "node": record.node,
        "epoch": epoch,
        "seq": record.seq,
        "at_ms": record.at_ms,
        "snapshot_version": record.snapshot_version,
        "policy_version": engine.policy_version().to_string(),
        "principal": {"source": user.source, "id": user.id, "user_name": user.user_name},
        "action": request.action.cedar_id(),
        "resource": request.resource.to_string(),
        "original": {
            "decision": record.decision,
            "reason": record.reason,
            "policies": record.policies,
        },
        "replayed": outcome(replayed),
        "matches": matches,
        "explanation": explanation,
    }))
    .into_response()
}

/// Whose entitlements, and when.
#[derive(Debug, Clone, Default, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct EntitlementsRequest {
    /// The identity source the principal is in.
    #[arg(long)]
    pub source: String,
    /// The user's SCIM id.
    #[serde(default)]
    #[arg(long)]
    pub user_id: Option<String>,
    /// The user's userName.
    #[serde(default)]
    #[arg(long, required_unless_present = "user_id", conflicts_with = "user_id")]
    pub user: Option<String>,
    /// The instant (RFC 3339 or Unix ms); now by default.
    #[serde(default)]
    #[arg(long, value_parser = crate::cli::parse_instant)]
    pub at_ms: Option<u64>,
    /// The route prefix requests come through (`context.route`), if policies read it.
    #[serde(default)]
    #[arg(long)]
    pub route: Option<String>,
    /// Decide as for streamed requests (`context.stream`).
    #[serde(default)]
    #[arg(long)]
    pub stream: bool,
}

/// The resources an entitlements answer considers: every resource a node has recorded a
/// request for, and every provider, MCP server, tool, resource and prompt the policies name.
/// A model the policies name is considered under the providers it was requested through, or
/// when it never was, under every provider known.
async fn candidates(
    decisions: &DecisionStore,
    engine: &Engine,
) -> Result<BTreeSet<ResourceKey>, store::StoreError> {
    let mut out: BTreeSet<ResourceKey> = decisions
        .recorded_resources()
        .await?
        .into_iter()
        .map(ResourceKey)
        .collect();
    let named = engine.named_resources();
    let mut providers: BTreeSet<(String, String)> = out
        .iter()
        .filter_map(|r| match &r.0 {
            Resource::Model { provider, kind, .. }
            | Resource::Provider {
                name: provider,
                kind,
            } => Some((provider.clone(), kind.clone())),
            _ => None,
        })
        .collect();
    for (ty, id) in named {
        if ty == "Provider" {
            providers.insert((id.clone(), id.clone()));
        }
    }
    let recorded_models: Vec<(String, String)> = out
        .iter()
        .filter_map(|r| match &r.0 {
            Resource::Model { provider, name, .. } => Some((provider.clone(), name.clone())),
            _ => None,
        })
        .collect();
    for (ty, id) in named {
        let split = || {
            id.split_once('/')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        };
        let resources: Vec<Resource> = match ty.as_str() {
            // Under the providers it was requested through; a model never requested, under
            // every provider known.
            "Model" if recorded_models.iter().any(|(_, m)| m == id) => Vec::new(),
            "Model" => providers
                .iter()
                .map(|(provider, kind)| Resource::Model {
                    provider: provider.clone(),
                    kind: kind.clone(),
                    name: id.clone(),
                })
                .collect(),
            "Provider" => vec![Resource::Provider {
                name: id.clone(),
                kind: providers
                    .iter()
                    .find(|(p, _)| p == id)
                    .map_or(id.clone(), |(_, k)| k.clone()),
            }],
            // A tool offered to models, under every provider known.
            "LlmTool" => providers
                .iter()
                .map(|(provider, kind)| Resource::LlmTool {
                    provider: provider.clone(),
                    kind: kind.clone(),
                    name: id.clone(),
                })
                .collect(),
            "McpServer" => vec![Resource::McpServer { server: id.clone() }],
            "McpTool" => split()
                .map(|(server, tool)| Resource::McpTool { server, tool })
                .into_iter()
                .collect(),
            "McpResource" => split()
                .map(|(server, uri)| Resource::McpResource { server, uri })
                .into_iter()
                .collect(),
            "McpPrompt" => split()
                .map(|(server, name)| Resource::McpPrompt { server, name })
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        out.extend(resources.into_iter().map(ResourceKey));
    }
    Ok(out)
}

/// A resource ordered by its Cedar form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResourceKey(Resource);

impl Ord for ResourceKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |r: &Resource| {
            let (ty, id) = r.cedar_uid();
            let provider = match r {
                Resource::Model { provider, .. } => provider.clone(),
                _ => String::new(),
            };
            (ty, id, provider)
        };
        key(&self.0).cmp(&key(&other.0))
    }
}

impl PartialOrd for ResourceKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

pub async fn entitlements(
    State(s): State<AdminState>,
    Json(body): Json<EntitlementsRequest>,
) -> Response {
    let engine = match engine_at(&s.history, body.at_ms).await {
        Ok(e) => e,
        Err(e) => return history_error(e),
    };
    let user = match find_principal(
        &engine,
        &body.source,
        body.user_id.as_deref(),
        body.user.as_deref(),
    ) {
        Ok(u) => u,
        Err((status, why)) => return bad(status, why),
    };
    let resources = match candidates(&s.decisions, &engine).await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let at_ms = body
        .at_ms
        .unwrap_or_else(portcullis_shared::request::now_ms);
    let context = RequestContext {
        route: body.route.clone().unwrap_or_default(),
        stream: body.stream,
        now_ms: at_ms,
        ..Default::default()
    };
    let (allowed, denied) = decide_all(&engine, &user, &resources, &context);
    Json(json!({
        "snapshot_version": engine.version(),
        "policy_version": engine.policy_version().to_string(),
        "at_ms": at_ms,
        "principal": {"source": user.source, "id": user.id, "user_name": user.user_name, "active": user.active},
        "allowed": allowed,
        "denied": denied,
        "considered": "every resource a node recorded a request for, and every one the policies name",
    }))
    .into_response()
}

/// Decides every applicable action on every resource: the allowed ones with the policies
/// that allow them, and how many were denied.
fn decide_all(
    engine: &Engine,
    user: &User,
    resources: &BTreeSet<ResourceKey>,
    context: &RequestContext,
) -> (Vec<serde_json::Value>, usize) {
    let mut allowed = Vec::new();
    let mut denied = 0;
    for ResourceKey(resource) in resources {
        for &action in actions_for(resource) {
            let request = Request {
                action,
                resource: resource.clone(),
                context: context.clone(),
            };
            let d = engine.decide(user, &request);
            if d.effect.as_str() == "allow" {
                allowed.push(json!({
                    "action": action.cedar_id(),
                    "resource": resource.to_string(),
                    "detail": resource,
                    "policies": d.policies.iter().collect::<Vec<_>>(),
                }));
            } else {
                denied += 1;
            }
        }
    }
    (allowed, denied)
}

/// Deletes decision records and identity events past their retention, now and every hour.
pub fn spawn_retention(
    store: Store,
    decisions: DecisionStore,
    config: AuditConfig,
    publisher: std::sync::Arc<crate::publisher::Publisher>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let now = store::now_ms();
            if config.decision_days > 0 {
                let before = now.saturating_sub(days(config.decision_days).as_millis() as u64);
                match decisions.delete_before(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        deleted = n,
                        before_ms = before,
                        "decision records past retention deleted"
                    ),
                    Err(e) => tracing::error!(error = %e, "decision record retention failed"),
                }
            }
            // Identity events the publisher may still need (newer than the published
            // revision) are kept whatever their age.
            if config.identity_event_days > 0
                && let Some(published) = publisher.latest()
            {
                let before =
                    now.saturating_sub(days(config.identity_event_days).as_millis() as u64);
                let revision = published.identity_revision;
                match store
                    .write(move |tx| store::delete_events_before(tx, before, revision))
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        deleted = n,
                        before_ms = before,
                        "identity events past retention deleted"
                    ),
                    Err::<_, store::StoreError>(e) => {
                        tracing::error!(error = %e, "identity event retention failed")
                    }
                }
            }
        }
    });
}
