//! One structured record per decision, allow or deny, naming the state that decided it.
//!
//! Records go to `tracing` under the target `portcullis::decision` (one JSON object per line
//! with `--log-format json`) and are counted in `portcullis_decisions_total`. The fields are
//! those of [`portcullis_shared::audit::DecisionRecord`].

use crate::state::{NodeSnapshot, now_ms};
use portcullis_shared::audit::{DecisionRecord, PrincipalRef};
use portcullis_shared::engine::Decision;
use portcullis_shared::request::Request;
use portcullis_shared::snapshot::User;

/// What happened.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The engine decided.
    Decided(&'a Decision),
    /// Refused before the engine could decide (bad token, unknown principal).
    Refused(&'static str),
}

/// Builds the record.
pub fn build(
    node: &str,
    request_id: &str,
    snapshot: &NodeSnapshot,
    user: Option<&User>,
    request: Option<&Request>,
    outcome: Outcome<'_>,
    decision_us: u64,
) -> DecisionRecord {
    let engine = &snapshot.engine;
    let (decision, reason, policies) = match outcome {
        Outcome::Decided(d) => (
            d.effect.as_str(),
            d.reason.label(),
            d.policies.iter().map(|p| p.to_string()).collect(),
        ),
        Outcome::Refused(reason) => ("deny", reason, Vec::new()),
    };
    DecisionRecord {
        at_ms: now_ms(),
        node: node.to_owned(),
        request_id: request_id.to_owned(),
        principal: user.map(|u| PrincipalRef {
            id: u.id.clone(),
            user_name: u.user_name.clone(),
            source: u.source.clone(),
        }),
        action: request
            .map(|r| r.action.cedar_id().to_owned())
            .unwrap_or_default(),
        resource: request.map(|r| r.resource.to_string()).unwrap_or_default(),
        decision: decision.to_owned(),
        reason: reason.to_owned(),
        policies,
        snapshot_version: snapshot.version(),
        identity_revision: engine.identity_revision(),
        policy_version: engine.policy_version().to_string(),
        decision_us,
    }
}

/// Builds, logs and counts the record.
pub fn record(
    node: &str,
    request_id: &str,
    snapshot: &NodeSnapshot,
    user: Option<&User>,
    request: Option<&Request>,
    outcome: Outcome<'_>,
    decision_us: u64,
) {
    let r = build(
        node,
        request_id,
        snapshot,
        user,
        request,
        outcome,
        decision_us,
    );
    metrics::counter!("portcullis_decisions_total", "decision" => r.decision.clone(), "reason" => r.reason.clone())
        .increment(1);
    let (user_id, user_name, source) = match &r.principal {
        Some(p) => (p.id.as_str(), p.user_name.as_str(), p.source.as_str()),
        None => ("", "", ""),
    };
    tracing::info!(
        target: "portcullis::decision",
        at_ms = r.at_ms,
        node = %r.node,
        request_id = %r.request_id,
        principal_id = %user_id,
        principal = %user_name,
        source = %source,
        action = %r.action,
        resource = %r.resource,
        decision = %r.decision,
        reason = %r.reason,
        policies = %r.policies.join(","),
        snapshot_version = r.snapshot_version,
        identity_revision = r.identity_revision,
        policy_version = %r.policy_version,
        decision_us = r.decision_us,
        "decision"
    );
}
