//! The node binary against a scripted control plane: a real gRPC snapshot service in this
//! test feeds it good, corrupted, wrongly signed, unsigned and misplaced frames. Every bad
//! frame is answered with a NACK that names the problem while the last good snapshot stays
//! live; good deltas are applied and survive a SIGKILL of the node (last-known-good log).

mod common;

use bytes::Bytes;
use common::{Kill, get, port};
use portcullis_shared::codec;
use portcullis_shared::delta;
use portcullis_shared::proto::snapshot_service_server::{SnapshotService, SnapshotServiceServer};
use portcullis_shared::proto::{
    ControlMessage, Delta as DeltaMsg, Heartbeat, NodeMessage, Snapshot as SnapshotMsg,
    control_message, node_message,
};
use portcullis_shared::signing::FrameSigner;
use portcullis_shared::snapshot::{Snapshot, User};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

type Out = Pin<Box<dyn futures::Stream<Item = Result<ControlMessage, tonic::Status>> + Send>>;

/// One node's stream, handed to the test: what it said, and a way to talk back.
struct Session {
    from_node: tonic::Streaming<NodeMessage>,
    to_node: mpsc::Sender<Result<ControlMessage, tonic::Status>>,
}

#[derive(Clone)]
struct Scripted {
    sessions: mpsc::UnboundedSender<Session>,
}

#[tonic::async_trait]
impl SnapshotService for Scripted {
    type StreamStream = Out;

    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<NodeMessage>>,
    ) -> Result<tonic::Response<Out>, tonic::Status> {
        let (tx, rx) = mpsc::channel(8);
        let _ = self.sessions.send(Session {
            from_node: request.into_inner(),
            to_node: tx,
        });
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn start_node(config: &std::path::Path) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_portcullis-dp"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start portcullis-dp"),
    )
}

/// `POST /strict/v1/chat/completions` without a token: (status, response).
async fn strict(proxy: u16) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        get(
            &format!("127.0.0.1:{proxy}"),
            "/strict/v1/chat/completions",
            Some(r#"{"model":"m","messages":[]}"#),
        )
    })
    .await
    .expect("join")
}

async fn status(admin: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = tokio::task::spawn_blocking(move || {
            let (_, out) = get(&format!("127.0.0.1:{admin}"), "/status", None);
            let body = out.split("\r\n\r\n").nth(1)?;
            serde_json::from_str::<serde_json::Value>(body).ok()
        })
        .await
        .expect("join");
        if let Some(v) = got {
            return v;
        }
        assert!(Instant::now() < deadline, "node admin never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn user(id: &str, active: bool) -> Arc<User> {
    Arc::new(User {
        active,
        ..User::new("okta", id, format!("{id}@example.com"))
    })
}

fn snapshot(version: u64, ana_active: bool) -> Snapshot {
    let mut s = Snapshot::empty(version);
    s.id = version * 1000 + 1;
    s.users = vec![user("ana", ana_active), user("bo", true)];
    s
}

fn full(version: u64, s: &Snapshot, signer: Option<&FrameSigner>) -> ControlMessage {
    let payload = codec::encode(s);
    ControlMessage {
        kind: Some(control_message::Kind::Snapshot(SnapshotMsg {
            version,
            signature: signer.map_or_else(Bytes::new, |k| Bytes::from(k.sign(&payload))),
            key_id: signer.map_or_else(String::new, |k| k.key_id().to_owned()),
            payload: Bytes::from(payload),
        })),
    }
}

fn delta_msg(payload: Vec<u8>, signature: Vec<u8>, key_id: &str) -> ControlMessage {
    let h = codec::peek_delta_header(&payload).expect("a delta frame");
    ControlMessage {
        kind: Some(control_message::Kind::Delta(DeltaMsg {
            base_version: h.base_version,
            version: h.version,
            payload: Bytes::from(payload),
            signature: Bytes::from(signature),
            key_id: key_id.to_owned(),
        })),
    }
}

/// The node's next ACK (`Ok(version)`) or NACK (`Err((version, reason))`).
async fn reply(s: &mut Session) -> Result<u64, (u64, String)> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), s.from_node.message())
            .await
            .expect("the node answers within 20 s")
            .expect("stream ok")
            .expect("stream open");
        match msg.kind {
            Some(node_message::Kind::Ack(a)) => return Ok(a.version),
            Some(node_message::Kind::Nack(n)) => return Err((n.version, n.reason)),
            _ => continue,
        }
    }
}

async fn hello(sessions: &mut mpsc::UnboundedReceiver<Session>) -> (Session, u64) {
    let mut s = tokio::time::timeout(Duration::from_secs(30), sessions.recv())
        .await
        .expect("the node connects within 30 s")
        .expect("session");
    let first = s
        .from_node
        .message()
        .await
        .expect("ok")
        .expect("a first message");
    let Some(node_message::Kind::Hello(h)) = first.kind else {
        panic!("the first message is Hello")
    };
    assert_eq!(h.node_id, "edge-test");
    (s, h.have_version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_refused_with_a_reason_and_good_deltas_survive_a_restart() {
    let signer = FrameSigner::from_seed(&[42; 32]);
    let stranger = FrameSigner::from_seed(&[43; 32]);

    let cp = port();
    let (sessions_tx, mut sessions) = mpsc::unbounded_channel();
    let service = SnapshotServiceServer::new(Scripted {
        sessions: sessions_tx,
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve(([127, 0, 0, 1], cp).into()),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let (proxy, admin) = (port(), port());
    let config = dir.path().join("dp.toml");
    std::fs::write(
        &config,
        format!(
            r#"
node_id = "edge-test"
state_dir = "state"
control_plane = "http://127.0.0.1:{cp}"
control_plane_keys = ["{key}"]
threads = 1
[listen]
proxy = "127.0.0.1:{proxy}"
admin = "127.0.0.1:{admin}"
[[routes]]
prefix = "/strict"
kind = "openai"
name = "openai"
upstream = "http://127.0.0.1:9"
max_staleness_ms = 1000
"#,
            key = signer.public_key_base64()
        ),
    )
    .expect("config");
    let node = start_node(&config);
    let (mut s, have) = hello(&mut sessions).await;
    assert_eq!(have, 0);

    let s1 = snapshot(1, true);
    let s2 = snapshot(2, false);
    s.to_node
        .send(Ok(full(1, &s1, Some(&signer))))
        .await
        .expect("send");
    assert_eq!(reply(&mut s).await, Ok(1));

    let good = codec::encode_delta(&delta::diff(&s1, &s2).expect("delta"));
    let sign = |k: &FrameSigner, f: &[u8]| k.sign(f);

    // A bit flipped in the body: the header's hash (and signature) still hold, the body not.
    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40;
    let sig = sign(&signer, &corrupt);
    s.to_node
        .send(Ok(delta_msg(corrupt, sig, signer.key_id())))
        .await
        .expect("send");
    let (v, why) = reply(&mut s).await.expect_err("corrupted delta refused");
    assert_eq!(v, 2);
    assert!(why.contains("hash mismatch"), "{why}");

    // Signed by a key the node does not trust.
    s.to_node
        .send(Ok(delta_msg(
            good.clone(),
            sign(&stranger, &good),
            stranger.key_id(),
        )))
        .await
        .expect("send");
    let (_, why) = reply(&mut s).await.expect_err("untrusted key refused");
    assert!(why.contains("does not trust"), "{why}");

    // A stranger's signature presented under the trusted key's id.
    s.to_node
        .send(Ok(delta_msg(
            good.clone(),
            sign(&stranger, &good),
            signer.key_id(),
        )))
        .await
        .expect("send");
    let (_, why) = reply(&mut s).await.expect_err("forged signature refused");
    assert!(why.contains("does not verify"), "{why}");

    // Unsigned.
    s.to_node
        .send(Ok(full(3, &snapshot(3, false), None)))
        .await
        .expect("send");
    let (v, why) = reply(&mut s).await.expect_err("unsigned refused");
    assert_eq!(v, 3);
    assert!(why.contains("not signed"), "{why}");

    // The right version number, other content: a delta made from a different snapshot 1.
    let mut other_1 = snapshot(1, true);
    other_1.id = 999;
    let foreign = codec::encode_delta(&delta::diff(&other_1, &s2).expect("delta"));
    let sig = sign(&signer, &foreign);
    s.to_node
        .send(Ok(delta_msg(foreign, sig, signer.key_id())))
        .await
        .expect("send");
    let (_, why) = reply(&mut s)
        .await
        .expect_err("delta for other content refused");
    assert!(why.contains("different content"), "{why}");

    // A valid delta for a version the node does not hold.
    let s7 = snapshot(7, true);
    let s8 = snapshot(8, false);
    let elsewhere = codec::encode_delta(&delta::diff(&s7, &s8).expect("delta"));
    let sig = sign(&signer, &elsewhere);
    s.to_node
        .send(Ok(delta_msg(elsewhere, sig, signer.key_id())))
        .await
        .expect("send");
    let (_, why) = reply(&mut s).await.expect_err("misplaced delta refused");
    assert!(why.contains("live version is 1"), "{why}");

    // Through all of that the first snapshot stayed live.
    let st = status(admin).await;
    assert_eq!(st["snapshot"]["version"], 1, "{st}");
    assert_eq!(st["snapshot"]["via"], "full", "{st}");

    // The good delta applies; a heartbeat tells the node how far behind it is.
    let sig = sign(&signer, &good);
    s.to_node
        .send(Ok(delta_msg(good, sig, signer.key_id())))
        .await
        .expect("send");
    assert_eq!(reply(&mut s).await, Ok(2));
    s.to_node
        .send(Ok(ControlMessage {
            kind: Some(control_message::Kind::Heartbeat(Heartbeat {
                latest_version: 5,
                sent_at_ms: 0,
            })),
        }))
        .await
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st = status(admin).await;
        if st["control_plane_latest_version"] == 5 || Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(st["snapshot"]["version"], 2, "{st}");
    assert_eq!(st["snapshot"]["via"], "delta", "{st}");
    assert_eq!(st["versions_behind"], 3, "{st}");

    // Behind and still hearing heartbeats is not fresh: past its 1 s, the strict route
    // refuses; a heartbeat saying the node is current makes it serve again (here: answer the
    // missing token with 401 instead).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (code, body) = strict(proxy).await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("has not confirmed it holds the latest"),
        "{body}"
    );
    s.to_node
        .send(Ok(ControlMessage {
            kind: Some(control_message::Kind::Heartbeat(Heartbeat {
                latest_version: 2,
                sent_at_ms: 0,
            })),
        }))
        .await
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = strict(proxy).await;
        if code == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {code} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // SIGKILL: the node comes back at version 2 (full snapshot + delta log) and says so.
    let log = dir.path().join("state/deltas.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(node);
    drop(s);
    let _node = start_node(&config);
    let (_s, have) = hello(&mut sessions).await;
    assert_eq!(have, 2, "resumed from the last-known-good delta log");
    let st = status(admin).await;
    assert_eq!(st["snapshot"]["origin"], "last-known-good", "{st}");
    assert_eq!(st["snapshot"]["users"], 2, "{st}");
}
