//! The snapshot stream at the protocol level: node authentication, the first snapshot, ACKs
//! and NACKs as the fleet view shows them, and refusal of impossible versions.

mod common;

use common::{Scim, start, write_config};
use portcullis_shared::codec;
use portcullis_shared::proto::snapshot_service_client::SnapshotServiceClient;
use portcullis_shared::proto::{Ack, Hello, Nack, NodeMessage, control_message, node_message};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn hello(node: &str, have: u64) -> NodeMessage {
    hello_of(node, have, 0)
}

fn hello_of(node: &str, have: u64, id: u64) -> NodeMessage {
    NodeMessage {
        kind: Some(node_message::Kind::Hello(Hello {
            node_id: node.into(),
            have_version: have,
            have_id: id,
            agent: "test".into(),
            listen: "127.0.0.1:1".into(),
            records_epoch: String::new(),
        })),
    }
}

/// Opens a stream with an optional token; returns the sender and the inbound stream.
async fn open(
    url: &str,
    token: Option<&str>,
    first: NodeMessage,
) -> Result<
    (
        mpsc::Sender<NodeMessage>,
        tonic::Streaming<portcullis_shared::proto::ControlMessage>,
    ),
    tonic::Status,
> {
    let mut client = SnapshotServiceClient::connect(url.to_owned())
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let (tx, rx) = mpsc::channel(4);
    tx.send(first).await.expect("send hello");
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(t) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    let inbound = client.stream(request).await?.into_inner();
    Ok((tx, inbound))
}

async fn nodes(admin: &str) -> Value {
    reqwest::get(format!("{admin}/admin/v1/nodes"))
        .await
        .expect("nodes")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_authenticate_receive_snapshots_and_report_back() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let cp = start(&write_config(dir.path(), &hash));

    // Without the node token, or with another one: refused.
    let err = open(&cp.grpc, None, hello("intruder", 0))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = open(&cp.grpc, Some("pcs_wrong"), hello("intruder", 0))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // A version no control plane could have issued: refused, not obeyed.
    let mut stream = match open(&cp.grpc, Some(&token), hello("liar", u64::MAX - 1)).await {
        Ok((_tx, s)) => s,
        Err(e) => {
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            return finish_checks(&cp, &token).await;
        }
    };
    let err = stream.message().await.expect_err("stream refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    finish_checks(&cp, &token).await;
}

async fn finish_checks(cp: &common::ControlPlane, token: &str) {
    // A real node: gets the latest snapshot, which verifies and decodes.
    let (tx, mut inbound) = open(&cp.grpc, Some(token), hello("edge-a", 0))
        .await
        .expect("stream");
    let msg = tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .expect("a snapshot within 10 s")
        .expect("ok")
        .expect("message");
    let Some(control_message::Kind::Snapshot(s)) = msg.kind else {
        panic!("expected a snapshot")
    };
    let (header, snapshot) = codec::decode(&s.payload).expect("a valid snapshot");
    assert_eq!(header.version, s.version);
    assert_eq!(snapshot.policy_version.counter, 1);

    tx.send(NodeMessage {
        kind: Some(node_message::Kind::Nack(Nack {
            version: s.version,
            reason: "test rejection".into(),
        })),
    })
    .await
    .expect("nack");
    tx.send(NodeMessage {
        kind: Some(node_message::Kind::Ack(Ack { version: s.version })),
    })
    .await
    .expect("ack");

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = nodes(&cp.admin).await;
        let list = v["nodes"].as_array().cloned().unwrap_or_default();
        let edge = list.iter().find(|n| n["node_id"] == "edge-a");
        if let Some(n) = edge
            && n["applied_version"].as_u64() == Some(s.version)
            && n["last_nack_reason"] == "test rejection"
        {
            assert_eq!(n["connected"], true);
            assert_eq!(n["lag"], 0);
            assert!(list.iter().all(|n| n["node_id"] != "intruder"), "{v}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fleet view never showed the ACK/NACK: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    drop(tx);
    drop(inbound);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = nodes(&cp.admin).await;
        if v["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["node_id"] == "edge-a" && n["connected"] == false)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "disconnect not noticed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next message that is not a heartbeat, within `wait`.
async fn next_frame(
    inbound: &mut tonic::Streaming<portcullis_shared::proto::ControlMessage>,
    wait: Duration,
) -> Option<control_message::Kind> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, inbound.message())
            .await
            .ok()?
            .expect("stream ok")
            .expect("stream open");
        match msg.kind {
            Some(control_message::Kind::Heartbeat(_)) | None => continue,
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_node_gets_one_delta_for_everything_it_missed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let cp = start(&write_config(dir.path(), &hash));
    let (tx, mut inbound) = open(&cp.grpc, Some(&token), hello("slow", 0))
        .await
        .expect("stream");
    let Some(control_message::Kind::Snapshot(first)) =
        next_frame(&mut inbound, Duration::from_secs(10)).await
    else {
        panic!("a full snapshot first")
    };
    let (_, base) = codec::decode(&first.payload).expect("decodes");

    // Three users arrive while the node has not answered: nothing more is sent to it.
    let scim = Scim::new(format!("{}/okta", cp.scim), &token);
    for name in ["ana", "bo", "cy"] {
        scim.create_user(name).await;
    }
    let status_url = format!("{}/admin/v1/status", cp.admin);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let latest = loop {
        let s: Value = reqwest::get(&status_url)
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        if s["snapshot"]["identity_revision"] == s["identity_revision"]
            && s["snapshot"]["users"] == 3
        {
            break s["snapshot"]["version"].as_u64().expect("version");
        }
        assert!(std::time::Instant::now() < deadline, "never published: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(latest > first.version);
    assert!(
        next_frame(&mut inbound, Duration::from_millis(500))
            .await
            .is_none(),
        "nothing is sent while a frame is unanswered"
    );

    // The answer: one delta from the version it holds to the latest, carrying all three.
    tx.send(NodeMessage {
        kind: Some(node_message::Kind::Ack(Ack {
            version: first.version,
        })),
    })
    .await
    .expect("ack");
    let Some(control_message::Kind::Delta(d)) =
        next_frame(&mut inbound, Duration::from_secs(10)).await
    else {
        panic!("a delta next")
    };
    assert_eq!((d.base_version, d.version), (first.version, latest));
    let (_, delta) = codec::decode_delta(&d.payload).expect("decodes");
    assert_eq!(delta.users.len(), 3);
    let next = delta.apply_to(&base).expect("applies");
    assert_eq!(next.users.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_version_number_with_other_content_gets_the_full_snapshot() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let cp = start(&write_config(dir.path(), &hash));
    let s: Value = reqwest::get(format!("{}/admin/v1/status", cp.admin))
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let latest = s["snapshot"]["version"].as_u64().expect("version");
    let id = s["snapshot"]["id"]
        .as_str()
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .expect("id");
    assert_ne!(id, 0);

    // Holding exactly the latest snapshot: nothing to send.
    let (_tx, mut inbound) = open(&cp.grpc, Some(&token), hello_of("same", latest, id))
        .await
        .expect("stream");
    assert!(
        next_frame(&mut inbound, Duration::from_millis(500))
            .await
            .is_none()
    );
    // The same number with other content (another store, a restored backup): the full
    // snapshot, never a delta for a base the node does not have.
    let (_tx, mut inbound) = open(
        &cp.grpc,
        Some(&token),
        hello_of("elsewhere", latest, id ^ 2),
    )
    .await
    .expect("stream");
    let Some(control_message::Kind::Snapshot(full)) =
        next_frame(&mut inbound, Duration::from_secs(10)).await
    else {
        panic!("a full snapshot")
    };
    let (_, snapshot) = codec::decode(&full.payload).expect("decodes");
    assert_eq!((snapshot.version, snapshot.id), (latest, id));
}
