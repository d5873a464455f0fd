//! `portcullis-scim-load`: the SCIM front door under an enterprise-sized directory.
//!
//! Starts the real control plane (durable commits: SQLite WAL, `synchronous=FULL`), bulk-loads
//! `--users` users and `--groups` groups (each with `--members` members) through `POST /Bulk`,
//! then drives `--clients` concurrent clients issuing single-operation PATCHes the way Okta
//! does (user attribute replaces, group member adds and removes) until `--patches` are done or
//! `--seconds` pass. Prints users/s and groups/s for the load, p50/p90/p99 latency and
//! operations/s for the PATCHes, and how long the control plane took to compile the resulting
//! snapshot.
//!
//! `cargo build --release --workspace --bins && target/release/portcullis-scim-load`

use anyhow::{Context, bail};
use clap::Parser;
use portcullis_loadtest::proc::{Proc, bin, free_addr};
use portcullis_loadtest::scim_bulk::{Client, load, metric, scrape};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Bulk-load a large directory over SCIM, then measure concurrent PATCHes")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 10_000)]
    groups: usize,
    #[arg(long, default_value_t = 20)]
    members: usize,
    /// Operations per bulk request.
    #[arg(long, default_value_t = 1000)]
    bulk: usize,
    /// Bulk requests in flight at once.
    #[arg(long, default_value_t = 2)]
    bulk_concurrency: usize,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    #[arg(long, default_value_t = 4000)]
    patches: usize,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::Builder::new()
        .prefix("portcullis-scim-load-")
        .tempdir()?;
    std::fs::create_dir_all(dir.path().join("policies"))?;
    std::fs::write(
        dir.path().join("policies/base.cedar"),
        "permit (principal in Group::\"load/g0\", action == Action::\"chat\", resource);\n",
    )?;
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let (scim, admin, grpc) = (free_addr(), free_addr(), free_addr());
    let config = dir.path().join("cp.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "data"
policy_dir = "policies"
[listen]
scim = "{scim}"
admin = "{admin}"
grpc = "{grpc}"
[scim]
bulk_max_operations = {bulk}
bulk_max_payload_bytes = 67108864
rate_per_second = 0
max_scan = 1000000
[[sources]]
name = "load"
scim_token_sha256 = ["{hash}"]
"#,
            bulk = args.bulk.max(1000)
        ),
    )?;
    let mut cp = Proc::spawn(
        "controlplane",
        &bin("portcullis-cp")?,
        &[
            "serve".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        dir.path().join("cp.log"),
    )?;
    let http = portcullis_demo::http_client(Duration::from_secs(600));
    let ready = format!("http://{admin}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http
        .get(&ready)
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        if Instant::now() > deadline || !cp.is_running() {
            bail!("control plane did not start:\n{}", cp.log_tail(20));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = Arc::new(Client {
        http: http.clone(),
        base: format!("http://{scim}/scim/v2/load"),
        token,
    });

    // Users.
    let requests: Vec<Vec<Value>> = (0..args.users)
        .collect::<Vec<_>>()
        .chunks(args.bulk)
        .map(|chunk| {
            chunk
                .iter()
                .map(|i| {
                    let department = ["Sales", "Legal", "Eng", "Ops"][i % 4];
                    json!({"method": "POST", "bulkId": format!("u{i}"), "path": "/Users", "data": {
                        "userName": format!("user{i}@load.example"),
                        "name": {"givenName": "User", "familyName": format!("{i}")},
                        "emails": [{"value": format!("user{i}@load.example"), "type": "work", "primary": true}],
                        "active": true,
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": department}
                    }})
                })
                .collect()
        })
        .collect();
    let t = Instant::now();
    let users = load(&client, requests, args.bulk_concurrency)
        .await
        .context("loading users")?;
    let users_secs = t.elapsed().as_secs_f64();
    println!(
        "loaded {} users in {:.1} s: {:.0} users/s (bulk of {}, {} in flight)",
        users.len(),
        users_secs,
        users.len() as f64 / users_secs,
        args.bulk,
        args.bulk_concurrency
    );

    // Groups, each with `members` users (deterministic spread).
    let per_request = (args.bulk * 2 / args.members.max(1)).clamp(1, args.bulk);
    let requests: Vec<Vec<Value>> = (0..args.groups)
        .collect::<Vec<_>>()
        .chunks(per_request)
        .map(|chunk| {
            chunk
                .iter()
                .map(|g| {
                    let members: Vec<Value> = (0..args.members)
                        .map(|k| json!({"value": users[(g * 7919 + k * 104_729) % users.len()]}))
                        .collect();
                    json!({"method": "POST", "bulkId": format!("g{g}"), "path": "/Groups",
                           "data": {"displayName": format!("g{g}"), "members": members}})
                })
                .collect()
        })
        .collect();
    let t = Instant::now();
    let groups = load(&client, requests, args.bulk_concurrency)
        .await
        .context("loading groups")?;
    let groups_secs = t.elapsed().as_secs_f64();
    println!(
        "loaded {} groups ({} members each) in {:.1} s: {:.0} groups/s, {:.0} memberships/s",
        groups.len(),
        args.members,
        groups_secs,
        groups.len() as f64 / groups_secs,
        (groups.len() * args.members) as f64 / groups_secs
    );

    // Concurrent single-operation PATCHes; the control plane's counters before them, so the
    // PATCH phase can be told apart from the bulk load.
    let before = scrape(&http, admin).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let users = Arc::new(users);
    let groups = Arc::new(groups);
    let stop_at = Instant::now() + Duration::from_secs(args.seconds);
    let t = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..args.clients {
        let (c, done, users, groups) =
            (client.clone(), done.clone(), users.clone(), groups.clone());
        let total = args.patches;
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut n = w;
            while done.fetch_add(1, Ordering::Relaxed) < total && Instant::now() < stop_at {
                n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let pick = n >> 33;
                let (path, body) = match pick % 3 {
                    0 => (
                        format!("/Users/{}", users[pick % users.len()]),
                        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": format!("t{pick}")}]}),
                    ),
                    1 => (
                        format!("/Groups/{}", groups[pick % groups.len()]),
                        json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": users[(pick / 3) % users.len()]}]}]}),
                    ),
                    _ => (
                        format!("/Groups/{}", groups[pick % groups.len()]),
                        json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": format!("members[value eq \"{}\"]", users[(pick / 3) % users.len()])}]}),
                    ),
                };
                let started = Instant::now();
                let (status, body) = c.send(reqwest::Method::PATCH, &path, &body).await?;
                if status != 200 {
                    bail!("PATCH {path}: {status} {body}");
                }
                latencies.push(started.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(r) = workers.join_next().await {
        latencies.extend(r??);
    }
    let patch_secs = t.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{} PATCHes from {} clients in {:.1} s: {:.0} ops/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        args.clients,
        patch_secs,
        latencies.len() as f64 / patch_secs,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );

    // What compiling such a directory costs the control plane.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = scrape(&http, admin).await?;
    for (phase, base) in [("whole run", None), ("PATCH phase", Some(&before))] {
        // A metric's value over the phase.
        let value = |name: &str, labels: &str| {
            metric(&after, name, labels) - base.map_or(0.0, |b| metric(b, name, labels))
        };
        let mean = |name: &str, labels: &str| {
            let count = value(&format!("{name}_count"), labels);
            let sum = value(&format!("{name}_sum"), labels);
            (count, if count > 0.0 { sum / count } else { 0.0 })
        };
        println!("{phase}:");
        for mode in ["full", "incremental"] {
            let (count, m) = mean(
                "portcullis_snapshot_compile_seconds",
                &format!("mode=\"{mode}\""),
            );
            println!("  compiles {mode}: {count:.0}, mean {:.2} ms", m * 1e3);
        }
        for kind in ["delta", "full"] {
            let (count, m) = mean(
                "portcullis_snapshot_publish_seconds",
                &format!("as=\"{kind}\""),
            );
            println!(
                "  published as {kind}: {count:.0}, mean {:.1} ms from the start of a compile to the \
                 version stored and offered to nodes",
                m * 1e3
            );
        }
        let (count, m) = mean("portcullis_snapshot_delta_bytes", "");
        println!("  deltas: {count:.0}, mean {m:.0} bytes");
    }
    println!(
        "last full snapshot: {:.1} MB",
        metric(&after, "portcullis_snapshot_bytes", "") / 1e6
    );
    cp.kill();
    Ok(())
}
