//! mTLS between the planes: nodes reach the control plane over TLS with a certificate from
//! the node CA, and a node is who its certificate says. A node presenting another node's
//! certificate is refused and serves nothing; a client without a certificate, with one from
//! another CA, or in plaintext does not get a stream at all.

use portcullis_loadtest::cluster::{CP_TLS_NAME, NodeSetup, TestCa, eventually};
use portcullis_loadtest::http::chat;
use portcullis_loadtest::{Cluster, ClusterOptions};
use portcullis_shared::proto::snapshot_service_client::SnapshotServiceClient;
use portcullis_shared::proto::{Hello, NodeMessage, node_message};
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Opens a stream to the control plane's snapshot listener as `node_id`, presenting
/// `identity` (certificate and key PEM) if any; returns the first message or the error.
async fn open(
    c: &Cluster,
    scheme: &str,
    identity: Option<(String, String)>,
    node_id: &str,
) -> Result<(), String> {
    let ca = c.ca.as_ref().map(|ca| ca.pem.clone()).unwrap_or_default();
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", c.cp_addrs.grpc))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5));
    if scheme == "https" {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name(CP_TLS_NAME);
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut client = SnapshotServiceClient::new(channel).max_decoding_message_size(1 << 30);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let _ = tx
        .send(NodeMessage {
            kind: Some(node_message::Kind::Hello(Hello {
                node_id: node_id.into(),
                have_version: 0,
                have_id: 0,
                agent: "e2e-mtls".into(),
                listen: "127.0.0.1:1".into(),
                records_epoch: String::new(),
            })),
        })
        .await;
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", c.node_token)
            .parse()
            .map_err(|_| "header".to_owned())?,
    );
    let mut inbound = client
        .stream(request)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .map_err(|_| "no message within 10 s".to_owned())?
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .ok_or_else(|| "stream closed".to_owned())
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_known_by_their_certificates() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `start` returns once every node holds the directory: over mTLS.
    let mut c = Cluster::start(ClusterOptions {
        nodes: 1,
        mtls: true,
        ..Default::default()
    })
    .await?;
    let alice = c.token("alice@example.com");
    assert_eq!(
        chat(&c.http, c.nodes[0].proxy, &alice, "gpt-4o-mini")
            .await?
            .status,
        200
    );
    let s = c.node_status(0).await?;
    assert_eq!(s["control_plane_connected"], true, "{s}");

    // A node presenting a certificate issued to edge-1 while calling itself edge-imposter.
    let imposter = c
        .add_node_with(
            "edge-imposter",
            NodeSetup {
                cert_name: Some(c.nodes[0].id.clone()),
                ..Default::default()
            },
        )
        .await?;
    let metrics_url = format!("http://{}/metrics", c.cp_addrs.admin);
    eventually(
        "the imposter is refused",
        Duration::from_secs(20),
        || async {
            let page = c.http.get(&metrics_url).send().await?.text().await?;
            Ok(page.lines().any(|l| {
                l.starts_with("portcullis_node_auth_failures_total") && !l.ends_with(" 0")
            }))
        },
    )
    .await?;
    let r = chat(&c.http, c.nodes[imposter].proxy, &alice, "gpt-4o-mini").await?;
    assert_eq!(r.status, 503, "it holds no snapshot: {}", r.body);
    let nodes = c
        .get_json(&format!("http://{}/admin/v1/nodes", c.cp_addrs.admin))
        .await?;
    let listed: Vec<&str> = nodes["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["node_id"].as_str())
        .collect();
    assert_eq!(listed, [c.nodes[0].id.as_str()], "{nodes}");
    c.kill_node(imposter);

    // The same refusal, seen from a client: the certificate names someone else.
    let ca = c.ca.as_ref().expect("mtls cluster has a CA");
    let edge1 = ca.issue(&c.nodes[0].id, true)?;
    let err = open(&c, "https", Some(edge1.clone()), "edge-7")
        .await
        .expect_err("a certificate for edge-1 does not make edge-7");
    assert!(err.contains("PermissionDenied"), "{err}");
    assert!(err.contains("does not name node"), "{err}");
    // The right name gets its snapshot.
    open(&c, "https", Some(edge1), &c.nodes[0].id.clone())
        .await
        .expect("edge-1 with its own certificate");

    // No certificate, a certificate from another CA, plaintext: no stream.
    let err = open(&c, "https", None, "edge-1")
        .await
        .expect_err("no cert");
    assert!(!err.is_empty());
    let foreign = TestCa::new()?.issue("edge-1", true)?;
    open(&c, "https", Some(foreign), "edge-1")
        .await
        .expect_err("a certificate from another CA");
    open(&c, "http", None, "edge-1")
        .await
        .expect_err("plaintext to a TLS listener");
    Ok(())
}
