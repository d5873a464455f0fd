//! Nodes without their control plane: keep deciding, restart from last-known-good, and fail
//! closed when they have neither.

use portcullis_loadtest::cluster::eventually;
use portcullis_loadtest::http::{call_tool, chat};
use portcullis_loadtest::{Cluster, ClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_keep_deciding_when_the_control_plane_is_gone() -> anyhow::Result<()> {
    let mut c = Cluster::start(ClusterOptions::default()).await?;
    let alice = c.token("alice@example.com");
    let bob = c.token("bob@example.com");
    let before = c.node_status(0).await?;
    let version = before["snapshot"]["version"].as_u64().unwrap_or(0);
    let revision = before["snapshot"]["identity_revision"]
        .as_u64()
        .unwrap_or(0);
    assert!(version > 0);

    c.kill_control_plane();

    // Both nodes keep deciding with their last snapshot.
    for n in &c.nodes {
        assert_eq!(
            chat(&c.http, n.proxy, &alice, "gpt-4o-mini").await?.status,
            200,
            "{}",
            n.id
        );
        assert_eq!(
            chat(&c.http, n.proxy, &bob, "gpt-4o-mini").await?.status,
            403,
            "{}",
            n.id
        );
        assert_eq!(
            call_tool(&c.http, n.proxy, &alice, "update_opportunity", 1)
                .await?
                .status,
            200
        );
    }
    eventually(
        "nodes notice the control plane is gone",
        Duration::from_secs(15),
        || async { Ok(c.node_status(0).await?["control_plane_connected"] == false) },
    )
    .await?;

    // A node restarted while the control plane is down serves from last-known-good.
    c.kill_node(0);
    c.start_node(0).await?;
    let s = c.node_status(0).await?;
    assert_eq!(s["snapshot"]["origin"], "last-known-good", "{s}");
    assert_eq!(s["snapshot"]["version"].as_u64(), Some(version));
    let edge = c.nodes[0].proxy;
    assert_eq!(
        chat(&c.http, edge, &alice, "gpt-4o-mini").await?.status,
        200
    );
    assert_eq!(chat(&c.http, edge, &bob, "gpt-4o-mini").await?.status, 403);

    // A node with neither control plane nor last-known-good fails closed.
    let fresh = c.add_node("edge-fresh").await?;
    let edge = c.nodes[fresh].proxy;
    let r = chat(&c.http, edge, &alice, "gpt-4o-mini").await?;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"]["type"], "server_error");
    let r = call_tool(&c.http, edge, &alice, "update_opportunity", 9).await?;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["jsonrpc"], "2.0");
    let ready = c
        .http
        .get(format!("http://{}/readyz", c.nodes[fresh].admin))
        .send()
        .await?;
    assert_eq!(ready.status().as_u16(), 503);

    // The control plane comes back on the same data directory and continues where it stopped.
    c.start_control_plane().await?;
    let status = c
        .get_json(&format!("http://{}/admin/v1/status", c.cp_addrs.admin))
        .await?;
    assert_eq!(
        status["identity_revision"].as_u64(),
        Some(revision),
        "{status}"
    );
    assert!(
        status["snapshot"]["version"].as_u64().unwrap_or(0) >= version,
        "{status}"
    );
    c.wait_node_revision(fresh, revision, Duration::from_secs(30))
        .await?;
    assert_eq!(
        chat(&c.http, edge, &alice, "gpt-4o-mini").await?.status,
        200
    );
    for i in 0..2 {
        eventually("nodes resubscribe", Duration::from_secs(20), || async {
            Ok(c.node_status(i).await?["control_plane_connected"] == true)
        })
        .await?;
    }

    // And changes flow again.
    let scim = c.scim();
    scim.set_active(c.ids.user("alice@example.com"), false)
        .await?;
    eventually(
        "deactivation after the restart",
        Duration::from_secs(15),
        || async {
            for n in &c.nodes {
                if chat(&c.http, n.proxy, &alice, "gpt-4o-mini").await?.status != 403 {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    let v = c
        .get_json(&format!("http://{}/admin/v1/nodes", c.cp_addrs.admin))
        .await?;
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(3), "{v}");
    Ok(())
}
