//! `portcullis-propagation`: how long from an IdP's SCIM deactivation to every node enforcing it.
//!
//! Starts the demo upstream, a control plane and N nodes on loopback (the real binaries), then
//! alternately deactivates and reactivates a demo user through SCIM, `--events` times, and for
//! each event measures the time from the SCIM response to the moment every node answers the
//! user's next request accordingly (each node polled through its proxy with a real token).
//! Bounded by `--events` and `--timeout-secs` per event. Prints percentiles in milliseconds.
//!
//! Build the binaries first: `cargo build --release --workspace --bins`, then
//! `target/release/portcullis-propagation --nodes 4 --events 50`.

use clap::Parser;
use portcullis_loadtest::http::chat;
use portcullis_loadtest::{Cluster, ClusterOptions};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Measure SCIM change → enforced on every node")]
struct Args {
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    #[arg(long, default_value_t = 40)]
    events: usize,
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let c = Cluster::start(ClusterOptions {
        nodes: args.nodes,
        ..Default::default()
    })
    .await?;
    let scim = c.scim();
    let user = c.ids.user("alice@example.com").to_owned();
    let token = c.token("alice@example.com");
    let mut samples = Vec::with_capacity(args.events);
    let mut scim_ms = Vec::with_capacity(args.events);
    for i in 0..args.events {
        let active = i % 2 == 1;
        let expected = if active { 200 } else { 403 };
        let t0 = Instant::now();
        scim.set_active(&user, active).await?;
        let acked = t0.elapsed();
        let t1 = Instant::now();
        let deadline = t1 + Duration::from_secs(args.timeout_secs);
        let mut pending: Vec<usize> = (0..c.nodes.len()).collect();
        while !pending.is_empty() {
            if Instant::now() > deadline {
                anyhow::bail!(
                    "event {i}: nodes {pending:?} did not enforce within {}s",
                    args.timeout_secs
                );
            }
            let mut still = Vec::new();
            for &n in &pending {
                if chat(&c.http, c.nodes[n].proxy, &token, "gpt-4o-mini")
                    .await?
                    .status
                    != expected
                {
                    still.push(n);
                }
            }
            pending = still;
        }
        samples.push(t1.elapsed().as_secs_f64() * 1e3);
        scim_ms.push(acked.as_secs_f64() * 1e3);
    }
    let report = |name: &str, v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{name:<44} p50 {:7.2} ms  p90 {:7.2} ms  p99 {:7.2} ms  max {:7.2} ms",
            p(0.5),
            p(0.9),
            p(0.99),
            v[v.len() - 1]
        );
    };
    println!(
        "{} events, {} nodes, users in directory: {}",
        args.events,
        c.nodes.len(),
        c.ids.users.len()
    );
    report("SCIM PATCH round trip (write + commit)", &mut scim_ms);
    report("SCIM response -> enforced on every node", &mut samples);
    Ok(())
}
