//! One structured record per decision, allow or deny, naming the state that decided it.
//!
//! Records go to the node's record segments ([`crate::records`]: the audit trail), are
//! counted in `portcullis_decisions_total`, and are also logged at debug level under the
//! target `portcullis::decision` (`RUST_LOG=portcullis::decision=debug` to watch them). The
//! fields are those of [`portcullis_shared::audit::DecisionRecord`].

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
        seq: 0,
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
        request: request
            .filter(|_| matches!(outcome, Outcome::Decided(_)))
            .cloned(),
    }
}

/// Hands the record to the record writer (see [`crate::records`]), then logs and counts it
/// (the log line is formatted from borrowed fields).
pub fn record(
    node: &str,
    request_id: &str,
    snapshot: &NodeSnapshot,
    user: Option<&User>,
    request: Option<&Request>,
    outcome: Outcome<'_>,
    decision_us: u64,
) {
    if let Some(sink) = crate::records::sink() {
        sink.submit(build(
            node,
            request_id,
            snapshot,
            user,
            request,
            outcome,
            decision_us,
        ));
    }
    let engine = &snapshot.engine;
    let (decision, reason) = match outcome {
        Outcome::Decided(d) => (d.effect.as_str(), d.reason.label()),
        Outcome::Refused(reason) => ("deny", reason),
    };
    metrics::counter!("portcullis_decisions_total", "decision" => decision, "reason" => reason)
        .increment(1);
    let (user_id, user_name, source) = match user {
        Some(u) => (u.id.as_str(), u.user_name.as_str(), u.source.as_str()),
        None => ("", "", ""),
    };
    let policies = Policies(match outcome {
        Outcome::Decided(d) => Some(&d.policies),
        Outcome::Refused(_) => None,
    });
    let resource = request.map(|r| &r.resource);
    tracing::debug!(
        target: "portcullis::decision",
        at_ms = now_ms(),
        node = %node,
        request_id = %request_id,
        principal_id = %user_id,
        principal = %user_name,
        source = %source,
        action = %request.map_or("", |r| r.action.cedar_id()),
        resource = %Resource(resource),
        decision = %decision,
        reason = %reason,
        policies = %policies,
        snapshot_version = snapshot.version(),
        identity_revision = engine.identity_revision(),
        policy_version = %engine.policy_version(),
        decision_us = decision_us,
        "decision"
    );
}

/// The determining policies, comma-separated, formatted only if the record is written.
struct Policies<'a>(Option<&'a portcullis_shared::engine::PolicyIds>);

impl std::fmt::Display for Policies<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.into_iter().flat_map(|p| p.iter()).enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(p)?;
        }
        Ok(())
    }
}

/// The resource in Cedar syntax, or nothing.
struct Resource<'a>(Option<&'a portcullis_shared::request::Resource>);

impl std::fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(r) => write!(f, "{r}"),
            None => Ok(()),
        }
    }
}
