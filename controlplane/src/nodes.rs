//! The fleet registry: every data-plane node that subscribed, the version it applied, its last
//! acknowledgement and last rejection. Kept in memory and persisted, in order, by one writer
//! task so the fleet view survives a control-plane restart. Every acknowledgement is also
//! recorded with its time: the deprovisioning receipts are built from them.

use crate::store::{self, AckRow, NodeRow, Store};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A node as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeView {
    #[serde(flatten)]
    pub row: NodeRow,
    /// Holds an open stream right now.
    pub connected: bool,
    /// Versions behind the latest published snapshot.
    pub lag: u64,
}

#[derive(Debug)]
struct Entry {
    row: NodeRow,
    connected: bool,
    /// Which stream is current: a node that reconnects before its old stream is torn down
    /// must not be marked disconnected by the old one.
    generation: u64,
}

/// Shared registry handle.
#[derive(Debug, Clone)]
pub struct NodeRegistry {
    inner: Arc<Mutex<Inner>>,
    persist: mpsc::UnboundedSender<Persist>,
}

/// What the writer task stores.
#[derive(Debug)]
enum Persist {
    Node(NodeRow),
    Ack(AckRow),
}

#[derive(Debug, Default)]
struct Inner {
    nodes: HashMap<String, Entry>,
    next_generation: u64,
}

impl NodeRegistry {
    /// Loads known nodes (all disconnected) and starts the persistence task.
    pub async fn load(store: Store) -> Result<Self, store::StoreError> {
        let rows = store.run(|c| store::list_nodes(c)).await?;
        let nodes = rows
            .into_iter()
            .map(|row| {
                (
                    row.node_id.clone(),
                    Entry {
                        row,
                        connected: false,
                        generation: 0,
                    },
                )
            })
            .collect();
        let (tx, mut rx) = mpsc::unbounded_channel::<Persist>();
        tokio::spawn(async move {
            // Whatever queued up meanwhile goes in one transaction: a fleet acknowledging a
            // version costs one write, not one per node.
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 1024 {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let written = store
                    .write(move |tx| {
                        for p in &batch {
                            match p {
                                Persist::Node(row) => store::upsert_node(tx, row)?,
                                Persist::Ack(ack) => store::record_ack(tx, ack)?,
                            }
                        }
                        Ok::<_, store::StoreError>(())
                    })
                    .await;
                if let Err(e) = written {
                    tracing::warn!(error = %e, "cannot persist node state");
                }
            }
        });
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                nodes,
                next_generation: 1,
            })),
            persist: tx,
        })
    }

    fn update<T>(&self, f: impl FnOnce(&mut Inner) -> (T, Option<NodeRow>)) -> Option<T> {
        let mut inner = self.inner.lock().ok()?;
        let (out, changed) = f(&mut inner);
        let connected = inner.nodes.values().filter(|e| e.connected).count();
        drop(inner);
        metrics::gauge!("portcullis_nodes_connected").set(connected as f64);
        if let Some(row) = changed {
            let _ = self.persist.send(Persist::Node(row));
        }
        Some(out)
    }

    /// A node opened a stream. Returns the stream's generation.
    pub fn hello(
        &self,
        node_id: &str,
        agent: &str,
        listen: &str,
        peer: &str,
        have_version: u64,
    ) -> u64 {
        let now = store::now_ms();
        self.update(|inner| {
            let generation = inner.next_generation;
            inner.next_generation += 1;
            let entry = inner
                .nodes
                .entry(node_id.to_owned())
                .or_insert_with(|| Entry {
                    row: NodeRow {
                        node_id: node_id.to_owned(),
                        agent: String::new(),
                        listen: String::new(),
                        peer: String::new(),
                        first_seen_ms: now,
                        last_seen_ms: now,
                        applied_version: 0,
                        last_ack_ms: None,
                        last_nack_version: None,
                        last_nack_reason: None,
                        last_nack_ms: None,
                    },
                    connected: false,
                    generation: 0,
                });
            entry.connected = true;
            entry.generation = generation;
            entry.row.agent = agent.to_owned();
            entry.row.listen = listen.to_owned();
            entry.row.peer = peer.to_owned();
            entry.row.last_seen_ms = now;
            entry.row.applied_version = have_version;
            (generation, Some(entry.row.clone()))
        })
        .unwrap_or(0)
    }

    /// The node applied `version`.
    pub fn ack(&self, node_id: &str, generation: u64, version: u64) {
        let now = store::now_ms();
        let current = self.update(|inner| match inner.nodes.get_mut(node_id) {
            Some(e) if e.generation == generation => {
                e.row.applied_version = version;
                e.row.last_ack_ms = Some(now);
                e.row.last_seen_ms = now;
                (true, Some(e.row.clone()))
            }
            _ => (false, None),
        });
        if current == Some(true) {
            let _ = self.persist.send(Persist::Ack(AckRow {
                node_id: node_id.to_owned(),
                version,
                acked_ms: now,
            }));
        }
    }

    /// The node rejected `version`; its previous snapshot stays live.
    pub fn nack(&self, node_id: &str, generation: u64, version: u64, reason: &str) {
        let now = store::now_ms();
        self.update(|inner| match inner.nodes.get_mut(node_id) {
            Some(e) if e.generation == generation => {
                e.row.last_nack_version = Some(version);
                e.row.last_nack_reason = Some(reason.to_owned());
                e.row.last_nack_ms = Some(now);
                e.row.last_seen_ms = now;
                ((), Some(e.row.clone()))
            }
            _ => ((), None),
        });
    }

    /// The stream of `generation` ended.
    pub fn disconnected(&self, node_id: &str, generation: u64) {
        let now = store::now_ms();
        self.update(|inner| match inner.nodes.get_mut(node_id) {
            Some(e) if e.generation == generation => {
                e.connected = false;
                e.row.last_seen_ms = now;
                ((), Some(e.row.clone()))
            }
            _ => ((), None),
        });
    }

    /// Every known node, sorted by id, with its lag behind `latest_version`.
    pub fn list(&self, latest_version: u64) -> Vec<NodeView> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        let mut out: Vec<NodeView> = inner
            .nodes
            .values()
            .map(|e| NodeView {
                row: e.row.clone(),
                connected: e.connected,
                lag: latest_version.saturating_sub(e.row.applied_version),
            })
            .collect();
        out.sort_by(|a, b| a.row.node_id.cmp(&b.row.node_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_stream_cannot_disconnect_a_reconnected_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("p.db")).expect("store");
        let reg = NodeRegistry::load(store.clone()).await.expect("load");
        let g1 = reg.hello("edge-1", "dp/0.1", "127.0.0.1:1", "127.0.0.1:9", 0);
        let g2 = reg.hello("edge-1", "dp/0.1", "127.0.0.1:1", "127.0.0.1:9", 0);
        reg.ack("edge-1", g1, 5);
        reg.disconnected("edge-1", g1);
        let v = &reg.list(7)[0];
        assert!(v.connected);
        assert_eq!(
            v.row.applied_version, 0,
            "ack from the stale stream ignored"
        );
        reg.ack("edge-1", g2, 7);
        reg.nack("edge-1", g2, 8, "bad signature");
        let v = &reg.list(8)[0];
        assert_eq!((v.row.applied_version, v.lag), (7, 1));
        assert_eq!(v.row.last_nack_reason.as_deref(), Some("bad signature"));
        reg.disconnected("edge-1", g2);
        assert!(!reg.list(8)[0].connected);

        // Persisted in order: a new registry sees the last state.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let again = NodeRegistry::load(store).await.expect("load");
        let v = &again.list(8)[0];
        assert_eq!(v.row.applied_version, 7);
        assert!(!v.connected);
    }
}
