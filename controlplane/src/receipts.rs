//! Deprovisioning receipts: for an identity event, when each node enforced it.
//!
//! An applied event bumps the identity revision to `r`. The first published version whose
//! snapshot carries revision `r` or later contains the event; a node enforces the event from
//! its first acknowledgement of that version or a later one. A receipt lists, per node, that
//! acknowledgement and how long after the event it came, and names the nodes still behind:
//! those connected now, or seen since the event, without such an acknowledgement. Nodes gone
//! since before the event are listed apart, as absent.

use crate::nodes::NodeRegistry;
use crate::store::{self, EventHead, Store, StoreError};
use serde::Serialize;

/// One node's enforcement of the event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Enforced {
    pub node_id: String,
    /// The version it acknowledged (the event's version or a later one).
    pub version: u64,
    pub acked_ms: u64,
    /// Milliseconds from the event to the acknowledgement.
    pub after_ms: u64,
}

/// A node that has not enforced the event yet.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Behind {
    pub node_id: String,
    pub connected: bool,
    pub applied_version: u64,
}

/// When an event was enforced, node by node.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Receipt {
    pub event: EventHead,
    /// The first version containing the event; `None` until one is published.
    pub version: Option<u64>,
    pub published_ms: Option<u64>,
    pub enforced: Vec<Enforced>,
    /// Part of the fleet since the event, not yet enforcing it.
    pub pending: Vec<Behind>,
    /// Known nodes not seen since before the event.
    pub absent: Vec<Behind>,
    /// Every node of the fleet enforces it, the last this many ms after the event.
    pub everywhere_after_ms: Option<u64>,
}

/// The receipt for event `seq`; `None` when there is no such event.
pub async fn for_event(
    store: &Store,
    nodes: &NodeRegistry,
    seq: u64,
) -> Result<Option<Receipt>, StoreError> {
    let Some(event) = store.run(move |c| store::event_head(c, seq)).await? else {
        return Ok(None);
    };
    build(store, nodes, event).await.map(Some)
}

/// Receipts for the newest `limit` applied events about `resource_id`, newest first.
pub async fn for_resource(
    store: &Store,
    nodes: &NodeRegistry,
    resource_id: String,
    limit: u32,
) -> Result<Vec<Receipt>, StoreError> {
    let events = store
        .run(move |c| store::events_about(c, &resource_id, limit))
        .await?;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        out.push(build(store, nodes, e).await?);
    }
    Ok(out)
}

async fn build(
    store: &Store,
    nodes: &NodeRegistry,
    event: EventHead,
) -> Result<Receipt, StoreError> {
    let revision = event.revision;
    let applied = event.applied;
    let (first, acks) = store
        .run(move |c| {
            let first = if applied {
                store::first_version_with(c, revision)?
            } else {
                None
            };
            let acks = match first {
                Some((v, _)) => store::first_acks_from(c, v)?,
                None => Vec::new(),
            };
            Ok::<_, StoreError>((first, acks))
        })
        .await?;
    let enforced: Vec<Enforced> = acks
        .into_iter()
        .map(|a| Enforced {
            after_ms: a.acked_ms.saturating_sub(event.at_ms),
            node_id: a.node_id,
            version: a.version,
            acked_ms: a.acked_ms,
        })
        .collect();
    let (mut pending, mut absent) = (Vec::new(), Vec::new());
    for n in nodes.list(0) {
        if enforced.iter().any(|e| e.node_id == n.row.node_id) {
            continue;
        }
        let behind = Behind {
            node_id: n.row.node_id.clone(),
            connected: n.connected,
            applied_version: n.row.applied_version,
        };
        if n.connected || n.row.last_seen_ms >= event.at_ms {
            pending.push(behind);
        } else {
            absent.push(behind);
        }
    }
    let everywhere_after_ms = (first.is_some() && pending.is_empty() && !enforced.is_empty())
        .then(|| enforced.iter().map(|e| e.after_ms).max().unwrap_or(0));
    Ok(Receipt {
        version: first.map(|(v, _)| v),
        published_ms: first.map(|(_, t)| t),
        event,
        enforced,
        pending,
        absent,
        everywhere_after_ms,
    })
}
