//! A test node: subscribes to the snapshot stream and hands out the snapshot that reflects a
//! given identity revision, the way a data-plane node would receive it.

use portcullis_shared::codec;
use portcullis_shared::proto::snapshot_service_client::SnapshotServiceClient;
use portcullis_shared::proto::{Ack, Hello, NodeMessage, control_message, node_message};
use portcullis_shared::snapshot::Snapshot;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

pub struct Watcher {
    tx: mpsc::Sender<NodeMessage>,
    inbound: tonic::Streaming<portcullis_shared::proto::ControlMessage>,
    latest: Option<Snapshot>,
}

impl Watcher {
    pub async fn connect(grpc: &str, token: &str, node_id: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut client = SnapshotServiceClient::connect(grpc.to_owned())
            .await
            .expect("connect to the snapshot service");
        let (tx, rx) = mpsc::channel(8);
        tx.send(NodeMessage {
            kind: Some(node_message::Kind::Hello(Hello {
                node_id: node_id.into(),
                have_version: 0,
                have_id: 0,
                agent: "test-watcher".into(),
                listen: "127.0.0.1:1".into(),
                records_epoch: String::new(),
            })),
        })
        .await
        .expect("hello");
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let inbound = client.stream(request).await.expect("stream").into_inner();
        Self {
            tx,
            inbound,
            latest: None,
        }
    }

    /// The first snapshot whose identity revision is at least `revision`.
    pub async fn at_least(&mut self, revision: u64) -> Snapshot {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = &self.latest
                && s.identity_revision >= revision
            {
                return s.clone();
            }
            let msg = tokio::time::timeout_at(deadline, self.inbound.message())
                .await
                .unwrap_or_else(|_| panic!("no snapshot with identity revision {revision}"))
                .expect("stream ok")
                .expect("stream open");
            let (version, snapshot) = match msg.kind {
                Some(control_message::Kind::Snapshot(s)) => {
                    let (_, snapshot) = codec::decode(&s.payload).expect("a valid snapshot");
                    (s.version, snapshot)
                }
                Some(control_message::Kind::Delta(d)) => {
                    let (_, delta) = codec::decode_delta(&d.payload).expect("a valid delta");
                    let base = self
                        .latest
                        .as_ref()
                        .expect("a delta comes after a snapshot");
                    (d.version, delta.apply_to(base).expect("the delta applies"))
                }
                _ => continue,
            };
            let _ = self
                .tx
                .send(NodeMessage {
                    kind: Some(node_message::Kind::Ack(Ack { version })),
                })
                .await;
            self.latest = Some(snapshot);
        }
    }
}
