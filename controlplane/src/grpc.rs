//! The gRPC snapshot service: one bidirectional stream per data-plane node.
//!
//! The node's first message is `Hello` (its id and the version it holds). From then on the
//! control plane brings it to the latest version whenever one is published (a `watch`
//! channel: intermediate versions are skipped, never queued): with one delta from the version
//! it holds when the history reaches back that far, with the full snapshot otherwise, and
//! with the full snapshot after the node rejects a delta. The node answers each with `Ack` or
//! `Nack`, and a stream has one frame in flight at a time: a node that applies slowly is sent
//! nothing until it answers, then one delta spanning every version published meanwhile. A
//! heartbeat with the latest version goes out every `heartbeat` either way.
//!
//! The node ships its decision records up the same stream. Right after `Hello` the control
//! plane tells it (`RecordsAck`) the number after the last record it holds of the node's
//! numbering; each `Records` batch is stored in the decision store, then answered the same
//! way. Batches are stored in the order they arrive, one at a time per stream.

use crate::nodes::NodeRegistry;
use crate::publisher::{Frame, Publisher};
use crate::store::DecisionStore;
use futures::Stream;
use portcullis_shared::Hash32;
use portcullis_shared::proto::snapshot_service_server::{SnapshotService, SnapshotServiceServer};
use portcullis_shared::proto::{
    ControlMessage, Delta as DeltaMsg, Heartbeat, NodeMessage, Records, RecordsAck,
    Snapshot as SnapshotMsg, control_message, node_message,
};
use std::pin::Pin;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

/// The service implementation.
#[derive(Debug, Clone)]
pub struct SnapshotGrpc {
    publisher: Arc<Publisher>,
    nodes: NodeRegistry,
    heartbeat: std::time::Duration,
    /// mTLS: a node's id must be a DNS name its client certificate is valid for.
    certificate_identity: bool,
    /// Where shipped decision records are stored; records are not accepted without one.
    decisions: Option<DecisionStore>,
}

impl SnapshotGrpc {
    pub fn new(
        publisher: Arc<Publisher>,
        nodes: NodeRegistry,
        heartbeat: std::time::Duration,
    ) -> Self {
        Self {
            publisher,
            nodes,
            heartbeat,
            certificate_identity: false,
            decisions: None,
        }
    }

    /// Accepts the nodes' decision records into `store`.
    pub fn with_decisions(mut self, store: DecisionStore) -> Self {
        self.decisions = Some(store);
        self
    }

    /// Requires each node's id to be named by its (already verified) client certificate.
    pub fn with_certificate_identity(mut self, on: bool) -> Self {
        self.certificate_identity = on;
        self
    }

    /// The service, requiring `authorization: Bearer <token>` whose SHA-256 is one of
    /// `node_tokens` (when any is configured).
    pub fn into_server(
        self,
        node_tokens: Vec<Hash32>,
    ) -> InterceptedService<SnapshotServiceServer<Self>, NodeAuth> {
        // Snapshots of large directories exceed tonic's 4 MiB default.
        let server = SnapshotServiceServer::new(self)
            .max_decoding_message_size(1 << 20)
            .max_encoding_message_size(1 << 30);
        InterceptedService::new(
            server,
            NodeAuth {
                tokens: node_tokens,
            },
        )
    }
}

/// Checks a node's bearer token against the configured hashes.
#[derive(Debug, Clone)]
pub struct NodeAuth {
    tokens: Vec<Hash32>,
}

impl Interceptor for NodeAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.tokens.is_empty() {
            return Ok(request);
        }
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| Hash32::of(t.trim().as_bytes()));
        match presented {
            Some(h) if self.tokens.iter().any(|t| bool::from(t.0.ct_eq(&h.0))) => Ok(request),
            _ => {
                metrics::counter!("portcullis_node_auth_failures_total").increment(1);
                Err(Status::unauthenticated("a valid node token is required"))
            }
        }
    }
}

/// Whether `leaf` (a client certificate the TLS handshake already verified against the
/// node CA) names `node_id` as a DNS subjectAltName.
fn certificate_names(
    leaf: Option<&rustls::pki_types::CertificateDer<'static>>,
    node_id: &str,
) -> Result<(), String> {
    let leaf = leaf.ok_or("no client certificate was presented")?;
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("the client certificate does not parse: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(node_id).map_err(|_| {
        format!("node_id {node_id:?} is not a DNS name, so no certificate can name it")
    })?;
    cert.verify_is_valid_for_subject_name(&name).map_err(|_| {
        format!("the client certificate does not name node {node_id:?} (it must be a DNS subjectAltName)")
    })
}

/// How long a node has to say Hello.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Versions are stored as SQLite integers; nothing legitimate comes near this.
pub const MAX_VERSION: u64 = 1 << 53;

/// What was last sent to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Full(u64),
    Delta(u64),
}

fn snapshot_msg(version: u64, f: Frame) -> ControlMessage {
    ControlMessage {
        kind: Some(control_message::Kind::Snapshot(SnapshotMsg {
            version,
            payload: f.payload,
            signature: f.signature,
            key_id: f.key_id,
        })),
    }
}

/// A node's answer to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Ack(u64),
    Nack(u64),
}

/// How long a frame may go unanswered before the next version is offered anyway.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Brings one node to each new version and sends heartbeats, until the stream closes.
async fn send_loop(
    publisher: Arc<Publisher>,
    node_id: String,
    (have_version, have_id): (u64, u64),
    heartbeat: std::time::Duration,
    tx: mpsc::Sender<Result<ControlMessage, Status>>,
    mut replies: mpsc::UnboundedReceiver<Reply>,
) {
    let mut snapshots = publisher.subscribe();
    // The version the node holds and its id, as far as this stream knows.
    let (mut holds, mut holds_id) = (have_version, have_id);
    let mut last: Option<Sent> = None;
    let mut force_full = false;
    // The version of the frame sent and not yet answered, with when it was sent.
    let mut in_flight: Option<(u64, std::time::Instant)> = None;
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let current = snapshots.borrow_and_update().clone();
        // Newer, or the same number with other content (another store's numbering): bring
        // the node here. An older latest means the node is ahead and a higher version is on
        // its way (see `require_version_above`).
        if let Some(p) = current
            && in_flight.is_none()
            && (p.version > holds
                || (p.version == holds && p.snapshot.id != holds_id)
                || force_full)
        {
            let frame = match (!force_full)
                .then(|| p.steps_from(holds, holds_id))
                .flatten()
            {
                None => None,
                Some(steps) if steps.len() <= 16 => publisher.delta_frame(steps),
                // Composing many deltas takes a while: off the async workers.
                Some(_) => {
                    let (publisher, p, from) = (publisher.clone(), p.clone(), (holds, holds_id));
                    tokio::task::spawn_blocking(move || {
                        p.steps_from(from.0, from.1)
                            .and_then(|s| publisher.delta_frame(s))
                    })
                    .await
                    .ok()
                    .flatten()
                }
            };
            let msg = match frame {
                Some(f) => {
                    metrics::counter!("portcullis_snapshots_sent_total", "kind" => "delta")
                        .increment(1);
                    last = Some(Sent::Delta(p.version));
                    ControlMessage {
                        kind: Some(control_message::Kind::Delta(DeltaMsg {
                            base_version: holds,
                            version: p.version,
                            payload: f.payload,
                            signature: f.signature,
                            key_id: f.key_id,
                        })),
                    }
                }
                None => match publisher.full_frame(&p).await {
                    Ok(f) => {
                        metrics::counter!("portcullis_snapshots_sent_total", "kind" => "full")
                            .increment(1);
                        last = Some(Sent::Full(p.version));
                        snapshot_msg(p.version, f)
                    }
                    Err(e) => {
                        tracing::error!(node = %node_id, error = %e, "cannot encode the snapshot");
                        break;
                    }
                },
            };
            if tx.send(Ok(msg)).await.is_err() {
                break;
            }
            holds = p.version;
            holds_id = p.snapshot.id;
            force_full = false;
            in_flight = Some((p.version, std::time::Instant::now()));
        }
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { break },
            _ = ticker.tick() => {
                if in_flight.is_some_and(|(_, t)| t.elapsed() > REPLY_TIMEOUT) {
                    tracing::warn!(node = %node_id, "node did not answer a frame in 30 s; offering the next version anyway");
                    in_flight = None;
                }
                let latest = publisher.latest().map_or(0, |p| p.version);
                let beat = ControlMessage {
                    kind: Some(control_message::Kind::Heartbeat(Heartbeat {
                        latest_version: latest,
                        sent_at_ms: crate::store::now_ms(),
                    })),
                };
                if tx.send(Ok(beat)).await.is_err() {
                    break;
                }
            }
            reply = replies.recv() => match reply {
                // A rejected delta (the node's base differs from what this stream assumed):
                // the full snapshot next. A rejected full snapshot is not resent; the next
                // version is offered as usual.
                Some(Reply::Nack(v)) if last == Some(Sent::Delta(v)) => {
                    tracing::info!(node = %node_id, version = v, "node rejected a delta; sending the full snapshot");
                    force_full = true;
                    in_flight = None;
                }
                // Only the answer to the frame in flight (or a later one) frees the stream: a
                // late answer to a frame given up on must not let a second frame out.
                Some(Reply::Ack(v) | Reply::Nack(v)) => {
                    if in_flight.is_some_and(|(sent, _)| v >= sent) {
                        in_flight = None;
                    }
                }
                None => break,
            },
            _ = tx.closed() => break,
        }
    }
    tracing::debug!(node = %node_id, "snapshot sender stopped");
}

fn records_ack(epoch: String, next_seq: u64) -> ControlMessage {
    ControlMessage {
        kind: Some(control_message::Kind::RecordsAck(RecordsAck {
            epoch,
            next_seq,
        })),
    }
}

/// Stores one shipped batch; returns the answer for the node.
async fn store_records(
    store: &DecisionStore,
    node_id: &str,
    batch: Records,
) -> Result<ControlMessage, crate::store::StoreError> {
    let (first, last) = (batch.first_seq, batch.last_seq);
    let stored = store
        .insert_batch(
            node_id.to_owned(),
            batch.epoch.clone(),
            (first, last),
            batch.jsonl,
        )
        .await?;
    metrics::counter!("portcullis_decision_records_stored_total").increment(stored.new);
    if stored.refused > 0 {
        metrics::counter!("portcullis_decision_records_refused_total").increment(stored.refused);
        tracing::warn!(node = %node_id, first, last, refused = stored.refused, "refused decision record lines that do not parse or are misnumbered");
    }
    Ok(records_ack(batch.epoch, last.saturating_add(1)))
}

type ControlStream = Pin<Box<dyn Stream<Item = Result<ControlMessage, Status>> + Send>>;

#[tonic::async_trait]
impl SnapshotService for SnapshotGrpc {
    type StreamStream = ControlStream;

    async fn stream(
        &self,
        request: Request<Streaming<NodeMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let certs = request.peer_certs();
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10 s"))??;
        let hello = match first {
            Some(NodeMessage {
                kind: Some(node_message::Kind::Hello(h)),
            }) => h,
            _ => return Err(Status::invalid_argument("the first message must be Hello")),
        };
        if hello.node_id.is_empty() || hello.node_id.len() > 128 {
            return Err(Status::invalid_argument("node_id must be 1-128 characters"));
        }
        if self.certificate_identity {
            let leaf = certs.as_ref().and_then(|c| c.first());
            if let Err(why) = certificate_names(leaf, &hello.node_id) {
                metrics::counter!("portcullis_node_auth_failures_total").increment(1);
                tracing::warn!(node = %hello.node_id, %peer, %why, "node refused: certificate does not name it");
                return Err(Status::permission_denied(why));
            }
        }
        if hello.have_version > MAX_VERSION {
            return Err(Status::invalid_argument(format!(
                "have_version {} is beyond any version a control plane issues",
                hello.have_version
            )));
        }
        let node_id = hello.node_id.clone();
        let generation = self.nodes.hello(
            &node_id,
            &hello.agent,
            &hello.listen,
            &peer,
            hello.have_version,
        );
        tracing::info!(node = %node_id, %peer, have_version = hello.have_version, "node subscribed");

        let latest = self.publisher.latest().map_or(0, |p| p.version);
        if hello.have_version > latest {
            tracing::warn!(
                node = %node_id, node_version = hello.have_version, latest,
                "node holds a newer version than this control plane issued; issuing a higher one"
            );
            self.publisher.require_version_above(hello.have_version);
        }

        let (tx, rx) = mpsc::channel::<Result<ControlMessage, Status>>(2);
        // Where the node's record shipping resumes. Without an answer the node ships nothing
        // on this stream; its snapshots flow all the same.
        let mut decisions = self
            .decisions
            .clone()
            .filter(|_| !hello.records_epoch.is_empty());
        if let Some(store) = &decisions {
            match store
                .next_seq(node_id.clone(), hello.records_epoch.clone())
                .await
            {
                Ok(next_seq) => {
                    let _ = tx
                        .send(Ok(records_ack(hello.records_epoch.clone(), next_seq)))
                        .await;
                }
                Err(e) => {
                    tracing::error!(node = %node_id, error = %e, "cannot read the decision store; the node's records wait for its next stream");
                    decisions = None;
                }
            }
        }
        let records_tx = tx.clone();
        // The node's answers, from the reader to the sender.
        let (reply_tx, reply_rx) = mpsc::unbounded_channel::<Reply>();
        tokio::spawn(send_loop(
            self.publisher.clone(),
            node_id.clone(),
            (hello.have_version, hello.have_id),
            self.heartbeat,
            tx,
            reply_rx,
        ));

        let nodes = self.nodes.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(NodeMessage { kind: Some(kind) })) => match kind {
                        node_message::Kind::Ack(a) => {
                            tracing::debug!(node = %node_id, version = a.version, "node applied snapshot");
                            nodes.ack(&node_id, generation, a.version);
                            let _ = reply_tx.send(Reply::Ack(a.version));
                        }
                        node_message::Kind::Nack(n) => {
                            metrics::counter!("portcullis_snapshot_rejections_total").increment(1);
                            tracing::warn!(node = %node_id, version = n.version, reason = %n.reason, "node rejected snapshot");
                            nodes.nack(&node_id, generation, n.version, &n.reason);
                            let _ = reply_tx.send(Reply::Nack(n.version));
                        }
                        node_message::Kind::Hello(_) => {
                            tracing::warn!(node = %node_id, "ignoring a second Hello on one stream");
                        }
                        node_message::Kind::Records(batch) => {
                            let Some(store) = &decisions else {
                                tracing::warn!(node = %node_id, "ignoring decision records: none were announced in Hello");
                                continue;
                            };
                            match store_records(store, &node_id, batch).await {
                                Ok(ack) => {
                                    if records_tx.send(Ok(ack)).await.is_err() {
                                        break;
                                    }
                                }
                                // Unacknowledged: the node resends after reconnecting.
                                Err(e) => {
                                    tracing::error!(node = %node_id, error = %e, "cannot store decision records; closing the stream");
                                    let _ = records_tx
                                        .send(Err(Status::unavailable(
                                            "decision records cannot be stored",
                                        )))
                                        .await;
                                    break;
                                }
                            }
                        }
                    },
                    Ok(Some(NodeMessage { kind: None })) => {}
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(node = %node_id, %status, "node stream ended with an error");
                        break;
                    }
                }
            }
            nodes.disconnected(&node_id, generation);
            tracing::info!(node = %node_id, "node disconnected");
        });

        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
