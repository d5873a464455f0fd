//! An open response's standing: a streamed answer (an LLM's server-sent events, an MCP
//! session's notification stream) is decided again every time a new snapshot is swapped in.
//!
//! A request is decided once, against the snapshot live when it arrived. A streamed answer
//! can stay open for minutes, so when the IdP deactivates its principal or moves it out of the
//! group that allowed it, the node must not keep serving it: every open streamed response
//! holds a [`Standing`], woken by [`NodeState::subscribe`] as soon as a snapshot is installed,
//! which looks the principal up again and decides the same request against the new snapshot.
//!
//! - Still allowed: the stream goes on. An MCP session stream whose principal or policies
//!   changed is told `notifications/tools/list_changed` (and the same for resources and
//!   prompts), so the client lists again and sees what it may now use.
//! - No longer allowed: the stream ends, with a last event in the client's protocol when it
//!   is an event stream (an OpenAI or Gemini error event, Anthropic's `error` event, a JSON-RPC
//!   error for the MCP request being answered), and the decision is recorded.
//!
//! The wake-up is immediate, so a stream closes as soon after the control plane publishes the
//! change as the snapshot takes to reach the node.

use crate::auth::Verified;
use crate::config::RouteKind;
use crate::decision_log::{self, Outcome};
use crate::proxy::{Who, denial, resolve};
use crate::respond::{Kind, Refusal};
use crate::state::{NodeSnapshot, NodeState};
use bytes::Bytes;
use portcullis_shared::engine::Engine;
use portcullis_shared::request::{Action, Request};
use portcullis_shared::snapshot::User;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::watch;

/// What a new snapshot means for an open response.
#[derive(Debug)]
pub enum Verdict {
    /// Nothing to do.
    Keep,
    /// Still allowed, but what the principal may use may have changed: these events go to the
    /// client (MCP session streams only).
    Notify(Bytes),
    /// No longer allowed: end the response.
    Revoked(Refusal),
}

/// The list-changed notifications an MCP session stream is sent, as one block of events.
const LISTS_CHANGED: &str = concat!(
    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n",
    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/list_changed\"}\n\n",
    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/prompts/list_changed\"}\n\n",
);

/// An open response, re-decided on every new snapshot.
#[derive(Debug)]
pub struct Standing {
    state: Arc<NodeState>,
    updates: watch::Receiver<u64>,
    /// The snapshot last decided against.
    snapshot: Arc<NodeSnapshot>,
    who: Who,
    verified: Arc<Verified>,
    /// What the response answers: one request, or each allowed message of a JSON-RPC batch.
    requests: Vec<Request>,
    node: String,
    request_id: String,
    kind: RouteKind,
    /// The JSON-RPC id of the MCP request this response answers.
    mcp_id: Option<Value>,
}

impl Standing {
    /// The standing of a response allowed against `snapshot`. A snapshot installed since then
    /// (between the decision and this call) wakes [`Standing::changed`] at once.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        state: Arc<NodeState>,
        snapshot: Arc<NodeSnapshot>,
        who: Who,
        verified: Arc<Verified>,
        requests: Vec<Request>,
        node: &str,
        request_id: &str,
        kind: RouteKind,
        mcp_id: Option<Value>,
    ) -> Self {
        Self {
            updates: state.subscribe(),
            state,
            snapshot,
            who,
            verified,
            requests,
            node: node.to_owned(),
            request_id: request_id.to_owned(),
            kind,
            mcp_id,
        }
    }

    /// Resolves when a snapshot other than the one last decided against is live. Cancel-safe.
    pub async fn changed(&mut self) {
        loop {
            if self
                .state
                .current()
                .is_some_and(|cur| !Arc::ptr_eq(&cur, &self.snapshot))
            {
                return;
            }
            if self.updates.changed().await.is_err() {
                // The node is shutting down: nothing will change any more.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Decides the request again against the live snapshot.
    pub fn check(&mut self) -> Verdict {
        let Some(current) = self.state.current() else {
            return Verdict::Keep;
        };
        if Arc::ptr_eq(&current, &self.snapshot) {
            return Verdict::Keep;
        }
        let previous = std::mem::replace(&mut self.snapshot, current);
        let snapshot = &self.snapshot;
        let who = match resolve(&snapshot.engine, &self.verified) {
            Ok(who) => who,
            Err((label, message)) => {
                decision_log::record(
                    &self.node,
                    &self.request_id,
                    snapshot,
                    None,
                    self.requests.first(),
                    Outcome::Refused(label),
                    0,
                );
                metrics::counter!("portcullis_streams_revoked_total").increment(1);
                return Verdict::Revoked(
                    Refusal::new(Kind::Denied, message).with_detail(json!({ "reason": label })),
                );
            }
        };
        for request in &self.requests {
            let decision = snapshot.engine.decide(&who, request);
            if !decision.is_allowed() {
                decision_log::record(
                    &self.node,
                    &self.request_id,
                    snapshot,
                    Some(&who),
                    Some(request),
                    Outcome::Decided(&decision),
                    0,
                );
                metrics::counter!("portcullis_streams_revoked_total").increment(1);
                return Verdict::Revoked(denial(&decision, request));
            }
        }
        let may_differ = !snapshot.engine.shares_policies_with(&previous.engine)
            || !same_principal(&previous.engine, &self.who, &snapshot.engine, &who);
        self.who = who;
        // The session's GET stream (not a notification inside a batch).
        let session_stream = self
            .requests
            .iter()
            .any(|r| r.action == Action::McpNotification && r.context.stream);
        if may_differ && session_stream {
            metrics::counter!("portcullis_mcp_list_changed_sent_total").increment(1);
            Verdict::Notify(Bytes::from_static(LISTS_CHANGED.as_bytes()))
        } else {
            Verdict::Keep
        }
    }

    /// The last event of an event stream ended by `refusal`, in the client's protocol; `None`
    /// when the protocol has no event for it (an MCP session stream answers no request, so it
    /// is simply closed).
    pub fn final_event(&self, refusal: &Refusal) -> Option<Bytes> {
        let body = refusal.body(Some(self.kind), self.mcp_id.as_ref());
        let body = String::from_utf8_lossy(&body);
        let event = match self.kind {
            RouteKind::Anthropic => format!("event: error\ndata: {body}\n\n"),
            RouteKind::Mcp if self.mcp_id.is_none() => return None,
            RouteKind::Mcp => format!("event: message\ndata: {body}\n\n"),
            RouteKind::Openai | RouteKind::Azure | RouteKind::Gemini => {
                format!("data: {body}\n\n")
            }
        };
        Some(Bytes::from(event))
    }
}

/// Whether two lookups of one principal, in two snapshots, are the same principal with the
/// same groups, roles and attributes. Groups and roles are compared by name, since indices
/// may shift between snapshots. Conservative: `false` when in doubt.
fn same_principal(a_engine: &Engine, a: &User, b_engine: &Engine, b: &User) -> bool {
    let names = |e: &Engine, u: &User| -> Vec<String> {
        u.groups.iter().map(|g| e.group_name(*g)).collect()
    };
    let roles = |e: &Engine, u: &User| -> Vec<String> {
        u.roles
            .iter()
            .map(|r| e.role_name(r.role).to_owned())
            .collect()
    };
    a == b && names(a_engine, a) == names(b_engine, b) && roles(a_engine, a) == roles(b_engine, b)
}

/// Where the last complete server-sent event in `buf` ends (0: none), for a `buf` that starts
/// at an event boundary. An event ends with a blank line; lines end with CRLF, LF or CR.
pub fn last_event_end(buf: &[u8]) -> usize {
    let mut end = 0;
    let mut line_start = true;
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            b'\r' | b'\n' => {
                let len = if buf[i] == b'\r' && buf.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                if line_start {
                    end = i + len;
                }
                line_start = true;
                i += len;
            }
            _ => {
                line_start = false;
                i += 1;
            }
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ends_are_found_with_every_line_ending() {
        assert_eq!(last_event_end(b""), 0);
        assert_eq!(last_event_end(b"data: a\n"), 0);
        assert_eq!(last_event_end(b"data: a\n\n"), 9);
        assert_eq!(last_event_end(b"data: a\n\ndata: b\n"), 9);
        assert_eq!(last_event_end(b"data: a\r\n\r\ndata: b"), 11);
        assert_eq!(last_event_end(b"data: a\r\rdata: b\r\r"), 18);
        assert_eq!(last_event_end(b"event: x\ndata: a\n\n: c\n\n"), 23);
        // A CR at the end may be half of a CRLF: the LF that follows reads as a blank line,
        // which dispatches nothing.
        assert_eq!(last_event_end(b"data: a\r\n\r"), 10);
        assert_eq!(last_event_end(b"\n"), 1);
    }

    #[test]
    fn lists_changed_are_three_events() {
        assert_eq!(
            last_event_end(LISTS_CHANGED.as_bytes()),
            LISTS_CHANGED.len()
        );
        let data: Vec<Value> = LISTS_CHANGED
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        assert_eq!(data.len(), 3);
        assert_eq!(data[0]["method"], "notifications/tools/list_changed");
        assert!(data.iter().all(|d| d.get("id").is_none()));
    }
}
