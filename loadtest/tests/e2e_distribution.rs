//! Snapshot distribution through the real control plane and nodes: changes travel as signed
//! deltas; after a SIGKILL of the control plane the nodes resume from the versions they hold
//! without a full resend; a node that does not trust the signing key rejects what it is sent
//! and the fleet view shows why; a route with a maximum staleness fails closed when the
//! control plane is gone while the others keep serving.

use portcullis_loadtest::cluster::NodeSetup;
use portcullis_loadtest::cluster::eventually;
use portcullis_loadtest::http::chat;
use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::Value;
use std::time::Duration;

/// A counter's value in a Prometheus text page (0 when absent).
fn counter(page: &str, name_and_labels: &str) -> u64 {
    page.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn cp_metrics(c: &Cluster) -> anyhow::Result<String> {
    Ok(c.http
        .get(format!("http://{}/metrics", c.cp_addrs.admin))
        .send()
        .await?
        .text()
        .await?)
}

async fn versions(c: &Cluster) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for i in 0..c.nodes.len() {
        out.push(
            c.node_status(i).await?["snapshot"]["version"]
                .as_u64()
                .unwrap_or(0),
        );
    }
    Ok(out)
}

async fn all_answer(c: &Cluster, token: &str, status: u16) -> anyhow::Result<bool> {
    for n in &c.nodes {
        if chat(&c.http, n.proxy, token, "gpt-4o-mini").await?.status != status {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A chat request on the route with a maximum staleness.
async fn strict(
    http: &reqwest::Client,
    edge: std::net::SocketAddr,
    token: &str,
) -> anyhow::Result<(u16, Value)> {
    let r = http
        .post(format!("http://{edge}/strict/openai/v1/chat/completions"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json::<Value>().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_restarts_signatures_and_staleness() -> anyhow::Result<()> {
    let mut c = Cluster::start(ClusterOptions::default()).await?;
    let alice = c.token("alice@example.com");
    let scim = c.scim();
    let user = c.ids.user("alice@example.com").to_owned();

    // Node 1 goes down holding the current version; then a deactivation reaches node 0 as a
    // delta carrying one user.
    c.kill_node(1);
    scim.set_active(&user, false).await?;
    eventually(
        "alice denied on node 0",
        Duration::from_secs(15),
        || async {
            Ok(chat(&c.http, c.nodes[0].proxy, &alice, "gpt-4o-mini")
                .await?
                .status
                == 403)
        },
    )
    .await?;
    let s = c.node_status(0).await?;
    assert_eq!(s["snapshot"]["via"], "delta", "{s}");
    let page = cp_metrics(&c).await?;
    assert!(
        counter(&page, "portcullis_snapshots_sent_total{kind=\"delta\"}") >= 1,
        "{page}"
    );
    let status = c
        .get_json(&format!("http://{}/admin/v1/status", c.cp_addrs.admin))
        .await?;
    assert_eq!(status["snapshot"]["delta"]["users"], 1, "{status}");
    let key_id = status["snapshot"]["signing_key_id"].clone();
    assert!(key_id.as_str().is_some_and(|k| k.len() == 16), "{status}");

    // The deprovisioning receipt: enforced on node 0; node 1, down since before the event,
    // is listed as absent rather than holding the answer back.
    let receipts_url = format!(
        "http://{}/admin/v1/receipts?resource_id={user}",
        c.cp_addrs.admin
    );
    eventually(
        "node 0's acknowledgement is recorded",
        Duration::from_secs(10),
        || async {
            let r = c.get_json(&receipts_url).await?;
            Ok(r["receipts"][0]["enforced"].as_array().map(Vec::len) == Some(1))
        },
    )
    .await?;
    let r = c.get_json(&receipts_url).await?["receipts"][0].clone();
    assert_eq!(r["event"]["operation"], "patch", "{r}");
    assert_eq!(r["enforced"][0]["node_id"], c.nodes[0].id, "{r}");
    assert_eq!(r["absent"][0]["node_id"], c.nodes[1].id, "{r}");
    assert!(r["everywhere_after_ms"].as_u64().is_some(), "{r}");
    let deactivation = r["event"]["seq"].as_u64().unwrap_or(0);

    // SIGKILL the control plane mid-stream and restart it on the same store. Node 0 resumes
    // at the version it holds; node 1, restarted from its last-known-good one version
    // behind, is brought up with a delta from the stored history. Nothing is sent in full.
    let before = c.node_status(0).await?["snapshot"]["version"]
        .as_u64()
        .unwrap_or(0);
    c.kill_control_plane();
    c.start_control_plane().await?;
    c.start_node(1).await?;
    eventually("node 1 catches up", Duration::from_secs(20), || async {
        Ok(chat(&c.http, c.nodes[1].proxy, &alice, "gpt-4o-mini")
            .await?
            .status
            == 403)
    })
    .await?;
    let s = c.node_status(1).await?;
    assert_eq!(s["snapshot"]["via"], "delta", "{s}");
    assert_eq!(s["snapshot"]["version"].as_u64(), Some(before), "{s}");

    // Now the receipt names both nodes, node 1 later than node 0 (it was down); the CLI
    // says the same.
    let receipt_url = format!(
        "http://{}/admin/v1/receipts/{deactivation}",
        c.cp_addrs.admin
    );
    eventually(
        "node 1's acknowledgement is recorded",
        Duration::from_secs(10),
        || async {
            let r = c.get_json(&receipt_url).await?;
            Ok(r["enforced"].as_array().map(Vec::len) == Some(2))
        },
    )
    .await?;
    let r = c.get_json(&receipt_url).await?;
    let after = |i: usize| r["enforced"][i]["after_ms"].as_u64().unwrap_or(0);
    assert!(after(1) > after(0), "{r}");
    assert_eq!(r["everywhere_after_ms"].as_u64(), Some(after(1)), "{r}");
    let out = std::process::Command::new(portcullis_loadtest::proc::bin("portcullis-cp")?)
        .args(["receipt", "--admin-url"])
        .arg(format!("http://{}", c.cp_addrs.admin))
        .args(["--event", &deactivation.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("enforced on all 2 nodes by T0+"), "{text}");
    for i in 0..c.nodes.len() {
        eventually("nodes resubscribe", Duration::from_secs(20), || async {
            Ok(c.node_status(i).await?["control_plane_connected"] == true)
        })
        .await?;
    }
    scim.set_active(&user, true).await?;
    eventually("alice allowed again", Duration::from_secs(15), || {
        all_answer(&c, &alice, 200)
    })
    .await?;
    let after = versions(&c).await?;
    for v in &after {
        assert!(
            *v > before,
            "version numbering continues: {before} → {after:?}"
        );
    }
    for i in 0..c.nodes.len() {
        assert_eq!(c.node_status(i).await?["snapshot"]["via"], "delta");
    }
    let page = cp_metrics(&c).await?;
    assert_eq!(
        counter(&page, "portcullis_snapshots_sent_total{kind=\"full\"}"),
        0,
        "no full resend after the restart: {page}"
    );
    assert!(counter(&page, "portcullis_snapshots_sent_total{kind=\"delta\"}") >= 3);
    let status = c
        .get_json(&format!("http://{}/admin/v1/status", c.cp_addrs.admin))
        .await?;
    assert_eq!(status["snapshot"]["signing_key_id"], key_id, "same key");

    // A node that trusts another key rejects the snapshot; the fleet view says why.
    let stranger = "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=".to_owned();
    let odd = c
        .add_node_with(
            "edge-distrusting",
            NodeSetup {
                trusted_key: Some(stranger),
                ..Default::default()
            },
        )
        .await?;
    let nodes_url = format!("http://{}/admin/v1/nodes", c.cp_addrs.admin);
    eventually(
        "the rejection is reported",
        Duration::from_secs(20),
        || async {
            let seen = c.get_json(&nodes_url).await?;
            Ok(seen["nodes"].as_array().is_some_and(|ns| {
                ns.iter().any(|n| {
                    n["node_id"] == "edge-distrusting"
                        && n["last_nack_reason"]
                            .as_str()
                            .is_some_and(|r| r.contains("does not trust"))
                })
            }))
        },
    )
    .await?;
    let r = chat(&c.http, c.nodes[odd].proxy, &alice, "gpt-4o-mini").await?;
    assert_eq!(r.status, 503, "it holds nothing it may trust: {}", r.body);
    c.kill_node(odd);

    // The control plane goes away: the strict route fails closed after its 3 s, the plain
    // route keeps serving the last-known-good snapshot.
    let edge = c.nodes[0].proxy;
    assert_eq!(
        strict(&c.http, edge, &alice).await?.0,
        200,
        "fresh: the strict route serves"
    );
    c.kill_control_plane();
    eventually(
        "the strict route fails closed",
        Duration::from_secs(15),
        || async { Ok(strict(&c.http, edge, &alice).await?.0 == 503) },
    )
    .await?;
    let last = strict(&c.http, edge, &alice).await?;
    let message = last.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("unreachable"), "{}", last.1);
    assert_eq!(last.1["error"]["type"], "server_error");
    assert_eq!(
        chat(&c.http, edge, &alice, "gpt-4o-mini").await?.status,
        200,
        "the plain route keeps serving"
    );
    Ok(())
}
