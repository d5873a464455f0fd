//! Decision records, from the nodes' disks to the control plane's store: under a bounded load
//! through two nodes, every request answered has exactly one record on its node's disk and
//! exactly one in the control plane's store; a node killed with SIGKILL under load loses no
//! more than the documented bound (the queue plus one batch, `dataplane/src/records.rs`), and
//! once restarted ships what it had written, with no gap in its numbering.

use portcullis_loadtest::{Cluster, ClusterOptions};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The request ids of every record under a node's state directory (segments and spill).
fn recorded(state_dir: &Path) -> Vec<String> {
    let dir = state_dir.join("records");
    let mut ids = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return ids;
    };
    for e in entries.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(id) = v["request_id"].as_str()
            {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

async fn send(
    http: &reqwest::Client,
    edge: std::net::SocketAddr,
    token: &str,
    id: &str,
) -> Option<u16> {
    let resp = http
        .post(format!("http://{edge}/openai/v1/chat/completions"))
        .bearer_auth(token)
        .header("x-request-id", id)
        .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": []}))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    resp.bytes().await.ok()?;
    Some(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_request_has_one_record_and_a_kill_loses_at_most_the_bound()
-> anyhow::Result<()> {
    let c = Cluster::start(ClusterOptions {
        nodes: 2,
        ..Default::default()
    })
    .await?;
    let http = c.http.clone();
    let tokens = [
        c.token("alice@example.com"), // allowed
        c.token("dave@example.com"),  // denied by policy
        "not-a-jwt".to_owned(),       // refused before a principal
    ];

    // Bounded load: 3 × 150 requests per node, 8 at a time.
    let mut answered: Vec<HashSet<String>> = vec![HashSet::new(), HashSet::new()];
    for (n, node) in c.nodes.iter().enumerate() {
        for chunk in 0..(450 / 8 + 1) {
            let mut tasks = Vec::new();
            for k in 0..8 {
                let i = chunk * 8 + k;
                if i >= 450 {
                    break;
                }
                let (http, edge, token) = (http.clone(), node.proxy, tokens[i % 3].clone());
                let id = format!("n{n}-req-{i}");
                tasks.push(tokio::spawn(async move {
                    send(&http, edge, &token, &id).await.map(|s| (id, s))
                }));
            }
            for t in tasks {
                if let Some((id, status)) = t.await? {
                    assert!(matches!(status, 200 | 401 | 403), "{id}: {status}");
                    answered[n].insert(id);
                }
            }
        }
    }
    assert_eq!(answered[0].len() + answered[1].len(), 900);
    // Records are written within milliseconds; wait for the writer's next pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (n, node) in c.nodes.iter().enumerate() {
        let ids = recorded(&node.state_dir);
        let ours: Vec<&String> = ids
            .iter()
            .filter(|i| i.starts_with(&format!("n{n}-")))
            .collect();
        let unique: HashSet<&String> = ours.iter().copied().collect();
        assert_eq!(ours.len(), unique.len(), "node {n}: a record written twice");
        assert_eq!(
            unique.len(),
            answered[n].len(),
            "node {n}: {} requests answered, {} records",
            answered[n].len(),
            unique.len()
        );
        assert!(answered[n].iter().all(|id| unique.contains(id)));
    }

    // The same records in the control plane's store, shipped over the node streams.
    for (n, node) in c.nodes.iter().enumerate() {
        let mut stored = Vec::new();
        for _ in 0..100 {
            stored = c.stored_decisions(&format!("node={}", node.id)).await?;
            if stored.len() >= answered[n].len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ids: Vec<&str> = stored
            .iter()
            .filter_map(|r| r["request_id"].as_str())
            .collect();
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(ids.len(), unique.len(), "node {n}: a record stored twice");
        assert_eq!(
            unique.len(),
            answered[n].len(),
            "node {n}: {} requests answered, {} records stored",
            answered[n].len(),
            unique.len()
        );
        assert!(answered[n].iter().all(|id| unique.contains(id.as_str())));
        let denied = stored.iter().filter(|r| r["decision"] == "deny").count();
        assert_eq!(denied, 300, "node {n}: 150 forbidden and 150 bad tokens");
    }
    // The query filters: alice's allowed chats on node 0, by userName.
    let alice = c
        .stored_decisions(&format!(
            "node={}&principal=alice%40example.com&decision=allow",
            c.nodes[0].id
        ))
        .await?;
    assert_eq!(alice.len(), 150);
    assert!(
        alice
            .iter()
            .all(|r| r["principal"]["user_name"] == "alice@example.com"
                && r["action"] == "chat"
                && r["resource"] == "Model::\"gpt-4o-mini\"")
    );

    // SIGKILL under load: 8 clients hammer node 0, which is killed mid-stream.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for k in 0..8 {
        let (http, edge, token, stop) = (
            http.clone(),
            c.nodes[0].proxy,
            tokens[k % 2].clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 5000 {
                let id = format!("kill-{k}-{i}");
                i += 1;
                match send(&http, edge, &token, &id).await {
                    Some(_) => got.push(id),
                    None => break,
                }
            }
            got
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut c = c;
    c.kill_node(0);
    stop.store(true, Ordering::Relaxed);
    let mut served = Vec::new();
    for t in clients {
        served.extend(t.await?);
    }
    assert!(
        served.len() > 100,
        "the load was real: {} answered",
        served.len()
    );
    let ids: HashSet<String> = recorded(&c.nodes[0].state_dir).into_iter().collect();
    let lost = served.iter().filter(|id| !ids.contains(*id)).count();
    let bound = 1024 + 512; // queue + one batch (records.rs)
    println!(
        "SIGKILL under load: {} answered, {} without a record (bound {bound})",
        served.len(),
        lost
    );
    assert!(
        lost <= bound,
        "{lost} records lost, more than the bound {bound}"
    );

    // Restarted, the node ships everything it had written, without gaps.
    c.start_node(0).await?;
    let node = c.nodes[0].id.clone();
    let mut stored = HashSet::new();
    for _ in 0..150 {
        stored = c
            .stored_decisions(&format!("node={node}"))
            .await?
            .iter()
            .filter_map(|r| r["request_id"].as_str().map(str::to_owned))
            .collect();
        if ids.iter().all(|id| stored.contains(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unshipped = ids.iter().filter(|id| !stored.contains(*id)).count();
    assert_eq!(unshipped, 0, "records written on node 0 but never stored");
    let numberings = c
        .get_json(&format!(
            "http://{}/admin/v1/decisions/numberings",
            c.cp_addrs.admin
        ))
        .await?;
    for n in numberings["numberings"].as_array().into_iter().flatten() {
        assert_eq!(n["missing"], 0, "a gap in a node's numbering: {n}");
    }
    Ok(())
}
