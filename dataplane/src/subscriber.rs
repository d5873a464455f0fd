//! The snapshot subscriber: a background service holding the gRPC stream to the control plane.
//!
//! It says which version it holds, receives newer snapshots, verifies each one (framing,
//! content hash, policies) off the async threads, swaps it in, persists it as last-known-good,
//! and acknowledges it, or rejects it with the reason (NACK) while the previous one stays live.
//! When the stream breaks it reconnects with exponential backoff and jitter; meanwhile the
//! node keeps deciding with what it holds.

use crate::config::Config;
use crate::lkg::LastKnownGood;
use crate::state::{NodeSnapshot, NodeState, Origin};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use portcullis_shared::proto::snapshot_service_client::SnapshotServiceClient;
use portcullis_shared::proto::{Ack, Hello, Nack, NodeMessage, control_message, node_message};
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
    lkg: LastKnownGood,
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
}

impl Subscriber {
    pub fn new(config: Arc<Config>, state: Arc<NodeState>) -> Self {
        let lkg = LastKnownGood::new(&config.state_dir);
        Self { config, state, lkg }
    }

    /// One stream's lifetime: connect, say hello, apply snapshots until it ends.
    async fn session(&self, backoff: &mut Duration) -> Result<(), StreamError> {
        let endpoint = Endpoint::from_shared(self.config.control_plane.clone())
            .map_err(|e| StreamError::Address(e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| StreamError::Connect(format!("{e}: {}", source_chain(&e))))?;
        let mut client = SnapshotServiceClient::new(channel).max_decoding_message_size(1 << 30);

        let (tx, rx) = mpsc::channel::<NodeMessage>(16);
        let hello = NodeMessage {
            kind: Some(node_message::Kind::Hello(Hello {
                node_id: self.config.node_id.clone(),
                have_version: self.state.version(),
                agent: concat!("portcullis-dp/", env!("CARGO_PKG_VERSION")).to_owned(),
                listen: self.config.listen.proxy.to_string(),
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
        *backoff = MIN_BACKOFF;
        tracing::info!(control_plane = %self.config.control_plane, have_version = self.state.version(), "subscribed");

        while let Some(msg) = inbound.message().await? {
            self.state.touch();
            let Some(control_message::Kind::Snapshot(s)) = msg.kind else {
                continue;
            };
            let reply = self.apply(s.version, s.payload).await;
            if tx.send(reply).await.is_err() {
                break;
            }
        }
        Err(StreamError::Closed)
    }

    /// Verifies and installs one snapshot; returns the ACK or NACK to send.
    async fn apply(&self, version: u64, payload: bytes::Bytes) -> NodeMessage {
        let live = self.state.version();
        if version <= live {
            return ack(live);
        }
        let built = {
            let payload = payload.clone();
            tokio::task::spawn_blocking(move || {
                NodeSnapshot::from_bytes(&payload, Origin::ControlPlane)
            })
            .await
        };
        let result = match built {
            Ok(Ok(snapshot)) => self.state.install(snapshot).map_err(|e| e.to_string()),
            Ok(Err(reason)) => Err(reason.to_string()),
            Err(join) => Err(format!("verification task failed: {join}")),
        };
        match result {
            Ok(installed) => {
                let snap = installed.engine.snapshot();
                tracing::info!(
                    version,
                    identity_revision = snap.identity_revision,
                    policy_version = %snap.policy_version,
                    users = snap.users.len(),
                    "snapshot applied"
                );
                let lkg = self.lkg.clone();
                match tokio::task::spawn_blocking(move || lkg.store(&payload)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot persist the last-known-good snapshot")
                    }
                    Err(e) => tracing::error!(error = %e, "persisting task failed"),
                }
                ack(version)
            }
            Err(reason) => {
                metrics::counter!("portcullis_snapshot_rejections_total").increment(1);
                tracing::error!(version, %reason, live, "snapshot rejected; the live snapshot stays");
                NodeMessage {
                    kind: Some(node_message::Kind::Nack(Nack { version, reason })),
                }
            }
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
