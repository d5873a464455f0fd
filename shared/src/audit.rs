//! The decision record: what every node writes for every allow and deny.
//!
//! One record names who asked (user and identity source), what (action and resource), the
//! outcome and the policies that determined it, and exactly which state decided it (snapshot
//! version, identity revision, policy version), so the decision can be explained and replayed.

use serde::{Deserialize, Serialize};

/// Who made the request, as far as the node could tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRef {
    /// SCIM id (the Cedar `User` id).
    pub id: String,
    pub user_name: String,
    pub source: String,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The node's sequence number for the record, assigned when it is written (never reused
    /// by that node; gaps mean records were lost and counted as dropped).
    #[serde(default)]
    pub seq: u64,
    /// Unix milliseconds when the decision was made.
    pub at_ms: u64,
    pub node: String,
    pub request_id: String,
    /// `None` when the request never reached a principal (bad token, unknown user).
    pub principal: Option<PrincipalRef>,
    /// Cedar action id (`chat`, `mcp:tools/call`, …); empty if the request was refused before
    /// classification.
    pub action: String,
    /// Cedar entity (`Model::"gpt-4o-mini"`); empty if unclassified.
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// Low-cardinality reason label (`permitted`, `forbidden`, `no_matching_permit`,
    /// `principal_inactive`, `unknown_principal`, `invalid_token`, …).
    pub reason: String,
    /// Ids of the policies that determined the decision.
    pub policies: Vec<String>,
    pub snapshot_version: u64,
    pub identity_revision: u64,
    /// `counter:hash12`.
    pub policy_version: String,
    /// Time spent deciding (authentication excluded), microseconds.
    pub decision_us: u64,
    /// The request exactly as the engine was asked (resource parts, route, stream flag,
    /// instant, environment, tenant, claim-derived attributes): what replay decides again.
    /// `None` when the request was refused before the engine saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<crate::request::Request>,
}
