//! The snapshot subscriber: a background service holding the gRPC stream to the control plane.
//!
//! It says which version it holds and receives full snapshots and deltas. Each frame's
//! signature is checked against the configured keys, then its framing and content hash; a full
//! snapshot is decoded and indexed off the async threads, a delta is applied to the live
//! snapshot in place of a rebuild. The result is swapped in and acknowledged, or rejected
//! with the reason (NACK) while the previous one stays live. A thread persists what was
//! applied as last-known-good (a full snapshot, or an appended delta), off the path of the
//! acknowledgement. Heartbeats record that the control plane is alive and its latest version.
//! When the stream breaks it reconnects with exponential backoff and jitter; meanwhile the
//! node keeps deciding with what it holds.

use crate::config::Config;
use crate::lkg::LastKnownGood;
use crate::state::{NodeSnapshot, NodeState, Origin, RejectReason};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use portcullis_shared::proto::snapshot_service_client::SnapshotServiceClient;
use portcullis_shared::proto::{
    Ack, Hello, Nack, NodeMessage, Records, RecordsAck, control_message, node_message,
};
use portcullis_shared::signing::SignatureError;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The background service.
#[derive(Debug)]
pub struct Subscriber {
    config: Arc<Config>,
    state: Arc<NodeState>,
    persist: std::sync::mpsc::Sender<Persist>,
}

/// What the last-known-good writer is asked to do, in order.
#[derive(Debug)]
enum Persist {
    Full(bytes::Bytes),
    Delta(bytes::Bytes, Arc<NodeSnapshot>),
}

/// A frame as it arrived.
#[derive(Debug)]
struct Incoming {
    version: u64,
    /// `Some(base)` for a delta.
    base: Option<u64>,
    payload: bytes::Bytes,
    signature: bytes::Bytes,
    key_id: String,
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("invalid control-plane address: {0}")]
    Address(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("stream failed: {0}")]
    Status(#[from] tonic::Status),
    #[error("control plane closed the stream")]
    Closed,
    #[error("mTLS to the control plane: {0}")]
    Tls(String),
}

/// The client side of mTLS: trust the control plane's CA, present this node's certificate.
fn client_tls(
    tls: &crate::config::ControlPlaneTls,
) -> Result<tonic::transport::ClientTlsConfig, StreamError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| StreamError::Tls(format!("{}: {e}", p.display())))
    };
    let mut config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(&tls.ca)?))
        .identity(tonic::transport::Identity::from_pem(
            read(&tls.cert)?,
            read(&tls.key)?,
        ));
    if let Some(name) = &tls.server_name {
        config = config.domain_name(name.clone());
    }
    Ok(config)
}

impl Subscriber {
    /// `lkg` is the last-known-good store the node loaded at start.
    pub fn new(config: Arc<Config>, state: Arc<NodeState>, lkg: LastKnownGood) -> Self {
        let (persist, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("portcullis-lkg".into())
            .spawn(move || persist_loop(lkg, rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the last-known-good writer; snapshots will not survive a restart");
        }
        Self {
            config,
            state,
            persist,
        }
    }

    /// One stream's lifetime: connect, say hello, apply snapshots until it ends.
    async fn session(&self, backoff: &mut Duration) -> Result<(), StreamError> {
        let mut endpoint = Endpoint::from_shared(self.config.control_plane.clone())
            .map_err(|e| StreamError::Address(e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        if let Some(tls) = &self.config.control_plane_tls {
            endpoint = endpoint
                .tls_config(client_tls(tls)?)
                .map_err(|e| StreamError::Tls(e.to_string()))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| StreamError::Connect(format!("{e}: {}", source_chain(&e))))?;
        let mut client = SnapshotServiceClient::new(channel).max_decoding_message_size(1 << 30);

        let (tx, rx) = mpsc::channel::<NodeMessage>(16);
        let live = self.state.current();
        let hello = NodeMessage {
            kind: Some(node_message::Kind::Hello(Hello {
                node_id: self.config.node_id.clone(),
                have_version: live.as_ref().map_or(0, |l| l.version()),
                have_id: live.as_ref().map_or(0, |l| l.engine.id()),
                agent: concat!("portcullis-dp/", env!("CARGO_PKG_VERSION")).to_owned(),
                listen: self.config.listen.proxy.to_string(),
                records_epoch: crate::records::sink()
                    .map(|s| s.progress.epoch.clone())
                    .unwrap_or_default(),
            })),
        };
        let _ = tx.send(hello).await;
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(token) = &self.config.control_plane_token {
            let value = format!("Bearer {}", token.0).parse().map_err(|_| {
                StreamError::Address("the control-plane token is not a valid header value".into())
            })?;
            request.metadata_mut().insert("authorization", value);
        }
        let mut inbound = client.stream(request).await?.into_inner();
        self.state.set_connected(true);
        // Decision records go up the same stream, answered by `RecordsAck`s.
        let (records_acks, acks) = mpsc::unbounded_channel();
        let _shipper = crate::records::sink()
            .map(|sink| AbortOnDrop(tokio::spawn(ship(sink, tx.clone(), acks))));
        *backoff = MIN_BACKOFF;
        tracing::info!(control_plane = %self.config.control_plane, have_version = self.state.version(), "subscribed");

        while let Some(msg) = inbound.message().await? {
            self.state.touch();
            let incoming = match msg.kind {
                Some(control_message::Kind::Snapshot(s)) => Incoming {
                    version: s.version,
                    base: None,
                    payload: s.payload,
                    signature: s.signature,
                    key_id: s.key_id,
                },
                Some(control_message::Kind::Delta(d)) => Incoming {
                    version: d.version,
                    base: Some(d.base_version),
                    payload: d.payload,
                    signature: d.signature,
                    key_id: d.key_id,
                },
                Some(control_message::Kind::RecordsAck(a)) => {
                    let _ = records_acks.send(a);
                    continue;
                }
                Some(control_message::Kind::Heartbeat(h)) => {
                    self.state.note_latest(h.latest_version);
                    if h.latest_version <= self.state.version() {
                        self.state.mark_fresh();
                    }
                    continue;
                }
                None => continue,
            };
            let reply = self.apply(incoming).await;
            if tx.send(reply).await.is_err() {
                break;
            }
        }
        Err(StreamError::Closed)
    }

    /// Verifies and installs one full snapshot or delta; returns the ACK or NACK to send.
    async fn apply(&self, frame: Incoming) -> NodeMessage {
        let version = frame.version;
        let live = self.state.current();
        let live_version = live.as_ref().map_or(0, |l| l.version());
        // An older frame, or a delta for a version already live, changes nothing. A full
        // snapshot of the live version number is looked at: it may be other content (another
        // control-plane store's numbering), which then replaces the live one.
        if version < live_version || (version == live_version && frame.base.is_some()) {
            return ack(live_version);
        }
        let result = self.verify_and_build(&frame, live.clone()).await;
        if let (Ok(next), Some(l)) = (&result, &live)
            && next.version() == l.version()
            && next.engine.id() == l.engine.id()
        {
            return ack(live_version);
        }
        let result = result.and_then(|next| self.state.install(next).map_err(|e| e.to_string()));
        match result {
            Ok(installed) => {
                let e = &installed.engine;
                tracing::info!(
                    version,
                    identity_revision = e.identity_revision(),
                    policy_version = %e.policy_version(),
                    users = e.user_count(),
                    delta = installed.from_delta,
                    "snapshot applied"
                );
                metrics::counter!("portcullis_snapshots_applied_total", "kind" => if installed.from_delta { "delta" } else { "full" }).increment(1);
                if installed.version() >= self.state.latest_known() {
                    self.state.mark_fresh();
                }
                let job = match frame.base {
                    Some(_) => Persist::Delta(frame.payload, installed),
                    None => Persist::Full(frame.payload),
                };
                if self.persist.send(job).is_err() {
                    tracing::error!(
                        "the last-known-good writer stopped; this snapshot is not persisted"
                    );
                }
                ack(version)
            }
            Err(reason) => {
                metrics::counter!("portcullis_snapshot_rejections_total").increment(1);
                tracing::error!(version, %reason, live = live_version, "snapshot rejected; the live snapshot stays");
                NodeMessage {
                    kind: Some(node_message::Kind::Nack(Nack { version, reason })),
                }
            }
        }
    }

    /// Checks the signature, then decodes a full snapshot (off the async threads) or applies
    /// a delta to `live`.
    async fn verify_and_build(
        &self,
        frame: &Incoming,
        live: Option<Arc<NodeSnapshot>>,
    ) -> Result<NodeSnapshot, String> {
        self.config
            .trusted_keys
            .verify(&frame.payload, &frame.signature, &frame.key_id)
            .map_err(|e: SignatureError| format!("signature: {e}"))?;
        match frame.base {
            None => {
                let payload = frame.payload.clone();
                tokio::task::spawn_blocking(move || {
                    NodeSnapshot::from_bytes(&payload, Origin::ControlPlane)
                })
                .await
                .map_err(|join| format!("verification task failed: {join}"))?
                .map_err(|e| e.to_string())
            }
            Some(base) => {
                let live = live.ok_or_else(|| RejectReason::NoBase.to_string())?;
                if base != live.version() {
                    return Err(format!(
                        "delta from version {base}, but the live version is {}",
                        live.version()
                    ));
                }
                // Deltas cost what they change: a small one is applied right here; a large one
                // (a node far behind) off the async threads.
                if frame.payload.len() <= 64 << 10 {
                    return live
                        .apply_delta(&frame.payload, Origin::ControlPlane)
                        .map_err(|e| e.to_string());
                }
                let payload = frame.payload.clone();
                tokio::task::spawn_blocking(move || {
                    live.apply_delta(&payload, Origin::ControlPlane)
                })
                .await
                .map_err(|join| format!("delta task failed: {join}"))?
                .map_err(|e| e.to_string())
            }
        }
    }
}

/// Aborts a task when dropped (the shipper ends with its stream).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Largest batch of records in one message (the control plane accepts messages up to 1 MiB).
const SHIP_BYTES: usize = 256 << 10;
/// Batches sent and not yet answered.
const SHIP_WINDOW: usize = 4;
/// How often the shipper looks for newly written records when it is idle.
const SHIP_POLL: Duration = Duration::from_millis(50);
/// How long a batch may go unanswered before shipping restarts from the last answer.
const SHIP_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Ships decision records: from where the control plane's first `RecordsAck` says it holds
/// them, in order, up to [`SHIP_WINDOW`] batches ahead of its answers. Storing is idempotent
/// on the control plane (records are keyed by node, epoch and number), so after a timeout or
/// a reconnect it simply resumes from the last answer.
async fn ship(
    sink: &'static crate::records::Sink,
    tx: mpsc::Sender<NodeMessage>,
    mut acks: mpsc::UnboundedReceiver<RecordsAck>,
) {
    use std::sync::atomic::Ordering;
    let progress = &sink.progress;
    let ours = |a: &RecordsAck| a.epoch == progress.epoch;
    let start = loop {
        match acks.recv().await {
            Some(a) if ours(&a) => break a.next_seq,
            Some(_) => continue,
            None => return,
        }
    };
    progress.shipped_next.fetch_max(start, Ordering::AcqRel);
    tracing::info!(epoch = %progress.epoch, from_seq = start, "shipping decision records");
    let shipped = metrics::counter!("portcullis_records_total", "stage" => "shipped");
    let mut cursor = crate::records::Cursor::new(sink.dir(), start);
    // (last number, records) of each batch sent and not yet answered.
    let mut in_flight: std::collections::VecDeque<(u64, u64)> = Default::default();
    loop {
        while in_flight.len() < SHIP_WINDOW
            && progress.written_next.load(Ordering::Acquire) > cursor.next_seq()
        {
            let read = tokio::task::spawn_blocking(move || {
                let batch = cursor.next_batch(SHIP_BYTES);
                (cursor, batch)
            })
            .await;
            let batch = match read {
                Ok((c, batch)) => {
                    cursor = c;
                    batch
                }
                Err(e) => {
                    tracing::error!(error = %e, "record reader task failed");
                    return;
                }
            };
            let batch = match batch {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read decision records to ship; retrying");
                    break;
                }
            };
            in_flight.push_back((batch.last_seq, batch.count));
            let msg = NodeMessage {
                kind: Some(node_message::Kind::Records(Records {
                    epoch: progress.epoch.clone(),
                    first_seq: batch.first_seq,
                    last_seq: batch.last_seq,
                    jsonl: batch.jsonl.into(),
                })),
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
        let wait = if in_flight.is_empty() {
            SHIP_POLL
        } else {
            SHIP_ACK_TIMEOUT
        };
        tokio::select! {
            ack = acks.recv() => match ack {
                Some(a) if ours(&a) => {
                    while in_flight.front().is_some_and(|(last, _)| *last < a.next_seq) {
                        if let Some((_, n)) = in_flight.pop_front() {
                            sink.counters.shipped.fetch_add(n, Ordering::Relaxed);
                            shipped.increment(n);
                        }
                    }
                    progress.shipped_next.fetch_max(a.next_seq, Ordering::AcqRel);
                }
                Some(_) => {}
                None => return,
            },
            _ = tokio::time::sleep(wait) => if !in_flight.is_empty() {
                let from = progress.shipped_next.load(Ordering::Acquire);
                tracing::warn!(from_seq = from, "the control plane did not answer shipped records in 30 s; resending");
                in_flight.clear();
                cursor = crate::records::Cursor::new(sink.dir(), from);
            },
        }
    }
}

/// The last-known-good writer: persists what was applied, in order; compacts the delta log
/// when it has grown.
fn persist_loop(mut lkg: LastKnownGood, jobs: std::sync::mpsc::Receiver<Persist>) {
    while let Ok(job) = jobs.recv() {
        let result = match job {
            Persist::Full(bytes) => lkg.store(&bytes),
            Persist::Delta(bytes, applied) => lkg.append(&bytes).and_then(|()| {
                if lkg.wants_compaction() {
                    tracing::info!(
                        version = applied.version(),
                        "compacting the last-known-good delta log"
                    );
                    lkg.compact(&applied)
                } else {
                    Ok(())
                }
            }),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot persist the last-known-good snapshot");
        }
    }
}

fn ack(version: u64) -> NodeMessage {
    NodeMessage {
        kind: Some(node_message::Kind::Ack(Ack { version })),
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

#[async_trait]
impl BackgroundService for Subscriber {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = MIN_BACKOFF;
        loop {
            tokio::select! {
                result = self.session(&mut backoff) => {
                    self.state.set_connected(false);
                    if let Err(e) = result {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "control plane stream down; serving the live snapshot");
                    }
                }
                _ = shutdown.changed() => return,
            }
            let jitter = rand::thread_rng().gen_range(0.8..1.2);
            tokio::select! {
                _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
