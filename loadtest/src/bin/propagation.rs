//! `portcullis-propagation`: how long from an IdP's SCIM change to every node enforcing it,
//! with an enterprise-sized directory and a fleet of nodes.
//!
//! Starts the demo upstream, the real control plane and nodes on loopback, loads `--users`
//! users over SCIM `/Bulk` into pools of 1,000 (each pool group nested in `Sales`, which grants
//! chat), then for each node count in `--nodes` (nodes are added between rounds) issues SCIM
//! changes at `--rate` per second for `--seconds`: alternately a deactivation and a group
//! move (the user is removed from its pool, so it leaves `Sales`). For every event it
//! measures, from the moment the SCIM response arrives:
//!
//! - **ack**: until every node has acknowledged a snapshot containing the event (from the
//!   control plane's deprovisioning receipt: each node's acknowledgement time);
//! - **denied**: until a probe request with the user's token is denied (403) on every node
//!   (each node probed every `--probe-ms`).
//!
//! Prints p50, p99 and max per node count. Everything is bounded: `--seconds` per round and
//! `--timeout-secs` per event.
//!
//! `cargo build --release --workspace --bins && target/release/portcullis-propagation`
//! (defaults: 100,000 users, nodes 1,4,16, 10 events/s for 10 s per round).

use anyhow::{Context, bail};
use clap::Parser;
use portcullis_demo::configs;
use portcullis_loadtest::http::chat;
use portcullis_loadtest::scim_bulk::{self, Client};
use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Parser)]
#[command(about = "Measure SCIM change → acknowledged and enforced on every node")]
struct Args {
    /// Node counts to measure, ascending (nodes are added between rounds).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    nodes: Vec<usize>,
    /// Users loaded before measuring.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Events per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds of events per round.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Longest an event may take to reach every node.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// Pause between probes of one node, in milliseconds.
    #[arg(long, default_value_t = 2)]
    probe_ms: u64,
}

const POOL: usize = 1000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What one event measured, in milliseconds after the SCIM response.
#[derive(Debug, Default)]
struct Outcome {
    scim_ms: f64,
    /// Every node acknowledged a snapshot containing it (`None`: not within the timeout).
    ack_all: Option<f64>,
    /// Every node denied the user's request.
    denied_all: Option<f64>,
}

/// What an event task needs, shared.
struct Shared {
    http: reqwest::Client,
    scim: Client,
    admin: SocketAddr,
    proxies: Vec<SocketAddr>,
    timeout: Duration,
    probe: Duration,
}

/// One event: change the directory, then wait for every node's acknowledgement and denial.
async fn event(
    s: Arc<Shared>,
    user_id: String,
    token: String,
    pool: Option<String>,
) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    let (status, body) = match &pool {
        None => {
            s.scim
                .send(
                    reqwest::Method::PATCH,
                    &format!("/Users/{user_id}"),
                    &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "value": {"active": false}}]}),
                )
                .await?
        }
        Some(group) => {
            s.scim
                .send(
                    reqwest::Method::PATCH,
                    &format!("/Groups/{group}"),
                    &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "remove",
                                            "path": format!("members[value eq \"{user_id}\"]")}]}),
                )
                .await?
        }
    };
    if !(200..300).contains(&status) {
        bail!("SCIM change: {status} {body}");
    }
    let responded = Instant::now();
    let responded_ms = now_ms();
    let mut out = Outcome {
        scim_ms: (responded - t0).as_secs_f64() * 1e3,
        ..Default::default()
    };

    // Probes: every node, until it denies.
    let mut probes = tokio::task::JoinSet::new();
    for &proxy in &s.proxies {
        let (s, token) = (s.clone(), token.clone());
        probes.spawn(async move {
            loop {
                let r = chat(&s.http, proxy, &token, "gpt-4o-mini").await?;
                let elapsed = responded.elapsed();
                if r.status == 403 {
                    return Ok::<_, anyhow::Error>(Some(elapsed.as_secs_f64() * 1e3));
                }
                if elapsed > s.timeout {
                    return Ok(None);
                }
                tokio::time::sleep(s.probe).await;
            }
        });
    }

    // Acknowledgements: the control plane's receipt for the event.
    let url = format!(
        "http://{}/admin/v1/receipts?resource_id={user_id}&limit=1",
        s.admin
    );
    let wanted = s.proxies.len();
    while responded.elapsed() < s.timeout {
        let r: Value = s.http.get(&url).send().await?.json().await?;
        let receipt = &r["receipts"][0];
        let enforced = receipt["enforced"].as_array().cloned().unwrap_or_default();
        if enforced.len() >= wanted && receipt["pending"].as_array().is_some_and(Vec::is_empty) {
            let last = enforced
                .iter()
                .filter_map(|e| e["acked_ms"].as_i64())
                .max()
                .unwrap_or(responded_ms);
            // Milliseconds on the wall clock; an acknowledgement can beat the response home.
            out.ack_all = Some((last - responded_ms).max(0) as f64);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut worst: Option<f64> = Some(0.0);
    while let Some(r) = probes.join_next().await {
        match r?? {
            Some(ms) => worst = worst.map(|w| w.max(ms)),
            None => worst = None,
        }
    }
    out.denied_all = worst;
    Ok(out)
}

fn report(name: &str, values: &[Option<f64>]) {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    let missed = values.len() - v.len();
    if v.is_empty() {
        println!("  {name:<44} no event completed ({missed} timed out)");
        return;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "  {name:<44} p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms{}",
        p(0.5),
        p(0.99),
        v[v.len() - 1],
        if missed > 0 {
            format!("  ({missed} timed out)")
        } else {
            String::new()
        }
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.nodes.is_empty() || args.nodes.windows(2).any(|w| w[0] > w[1]) {
        bail!("--nodes must list node counts in ascending order");
    }
    let mut c = Cluster::start(ClusterOptions {
        nodes: args.nodes[0],
        ..Default::default()
    })
    .await?;
    let scim = Client {
        http: portcullis_demo::http_client(Duration::from_secs(600)),
        base: format!("http://{}/scim/v2/{}", c.cp_addrs.scim, configs::SOURCE),
        token: c.scim_token.clone(),
    };
    let bulk = Arc::new(scim.clone());

    // The directory: users in pools of 1,000, every pool nested in Sales (which grants chat).
    let t = Instant::now();
    let requests: Vec<Vec<Value>> = (0..args.users)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|chunk| {
            chunk
                .iter()
                .map(|i| {
                    json!({"method": "POST", "bulkId": format!("u{i}"), "path": "/Users", "data": {
                        "userName": format!("user{i}@load.example"),
                        "emails": [{"value": format!("user{i}@load.example"), "type": "work", "primary": true}],
                        "active": true
                    }})
                })
                .collect()
        })
        .collect();
    let users = scim_bulk::load(&bulk, requests, 2)
        .await
        .context("loading users")?;
    let pools: Vec<Vec<Value>> = users
        .chunks(POOL)
        .enumerate()
        .map(|(k, members)| {
            vec![
                json!({"method": "POST", "bulkId": format!("p{k}"), "path": "/Groups", "data": {
                    "displayName": format!("Load pool {k}"),
                    "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>()
                }}),
            ]
        })
        .collect();
    let pools = scim_bulk::load(&bulk, pools, 2)
        .await
        .context("loading pools")?;
    let pool_refs: Vec<&str> = pools.iter().map(String::as_str).collect();
    c.scim()
        .change_members(c.ids.group("Sales"), &pool_refs, &[])
        .await
        .context("nesting the pools in Sales")?;
    println!(
        "loaded {} users in {} pools nested in Sales in {:.1} s",
        users.len(),
        pools.len(),
        t.elapsed().as_secs_f64()
    );

    let mut next_user = 0usize;
    for &n in &args.nodes {
        while c.nodes.len() < n {
            let id = format!("edge-{}", c.nodes.len() + 1);
            c.add_node(&id).await?;
        }
        let revision = c.cp_revision().await?;
        let t = Instant::now();
        for i in 0..c.nodes.len() {
            c.wait_node_revision(i, revision, Duration::from_secs(300))
                .await?;
        }
        println!(
            "\n{n} nodes hold identity revision {revision} ({:.1} s to converge)",
            t.elapsed().as_secs_f64()
        );

        let shared = Arc::new(Shared {
            http: c.http.clone(),
            scim: scim.clone(),
            admin: c.cp_addrs.admin,
            proxies: c.nodes.iter().map(|n| n.proxy).collect(),
            timeout: Duration::from_secs(args.timeout_secs),
            probe: Duration::from_millis(args.probe_ms),
        });
        let count = (args.rate * args.seconds as f64).round().max(1.0) as usize;
        let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.01));
        let mut ticker = tokio::time::interval(interval);
        let mut running = tokio::task::JoinSet::new();
        let started = Instant::now();
        for e in 0..count {
            ticker.tick().await;
            let u = next_user % users.len();
            next_user += 1;
            let pool = (e % 2 == 1).then(|| pools[u / POOL].clone());
            let token = c.token(&format!("user{u}@load.example"));
            running.spawn(event(shared.clone(), users[u].clone(), token, pool));
        }
        let mut outcomes = Vec::with_capacity(count);
        while let Some(r) = running.join_next().await {
            outcomes.push(r??);
        }
        println!(
            "{} events in {:.1} s ({} deactivations, {} group moves), {} users, {n} nodes:",
            outcomes.len(),
            started.elapsed().as_secs_f64(),
            count.div_ceil(2),
            count / 2,
            users.len() + c.ids.users.len()
        );
        report(
            "SCIM PATCH round trip",
            &outcomes.iter().map(|o| Some(o.scim_ms)).collect::<Vec<_>>(),
        );
        report(
            "response → acknowledged by every node",
            &outcomes.iter().map(|o| o.ack_all).collect::<Vec<_>>(),
        );
        report(
            "response → denied on every node",
            &outcomes.iter().map(|o| o.denied_all).collect::<Vec<_>>(),
        );
    }
    Ok(())
}
