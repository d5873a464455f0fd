//! Full enforcement against a bare proxy, in one run: the same chat request through a real
//! data-plane node (token verification, principal lookup, body classification, decision,
//! decision record, forwarding) and through the pass-through proxy built from the node's own
//! server, routes and forwarding code with none of that, both in front of the same upstream.
//! The legs alternate, so drift on a noisy machine hits both.

use crate::cluster::{Cluster, ClusterOptions};
use crate::load::{self, Leg, Shot};
use crate::proc::{Proc, bin, free_addr};
use anyhow::{Context, bail};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much load.
#[derive(Debug, Clone)]
pub struct Options {
    pub connections: usize,
    pub seconds: f64,
    pub rounds: usize,
    /// At most this many requests per leg and round.
    pub cap: u64,
}

/// Both legs, each summed over its rounds.
#[derive(Debug)]
pub struct Report {
    pub bare: Leg,
    pub edge: Leg,
    /// What the edge answers the same request with a forged token (must be 401).
    pub forged_status: u16,
}

impl Report {
    /// Edge throughput as a share of the bare proxy's.
    pub fn ratio(&self) -> f64 {
        self.edge.throughput() / self.bare.throughput().max(1e-9)
    }

    pub fn table(&self) -> String {
        let row = |name: &str, l: &Leg| {
            format!(
                "{name:<26} {:>10} {:>8} {:>12.0} {:>10.0} {:>10.0}\n",
                l.ok,
                l.failed,
                l.throughput(),
                l.quantile_us(0.50),
                l.quantile_us(0.99)
            )
        };
        let mut out = format!(
            "{:<26} {:>10} {:>8} {:>12} {:>10} {:>10}\n",
            "proxy", "requests", "failed", "req/s", "p50 µs", "p99 µs"
        );
        out.push_str(&row("bare pass-through", &self.bare));
        out.push_str(&row("portcullis (enforcing)", &self.edge));
        out.push_str(&format!(
            "throughput ratio (enforcing / bare): {:.1}%   p50 +{:.0} µs   p99 +{:.0} µs\n",
            100.0 * self.ratio(),
            self.edge.quantile_us(0.5) - self.bare.quantile_us(0.5),
            self.edge.quantile_us(0.99) - self.bare.quantile_us(0.99),
        ));
        out
    }
}

/// Waits until something accepts TCP connections on `addr`.
async fn listening(addr: std::net::SocketAddr, proc: &mut Proc) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if !proc.is_running() {
            bail!("{} exited: {}", proc.name, proc.log_tail(20));
        }
        if Instant::now() > deadline {
            bail!("{} is not listening on {addr}", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub async fn measure(options: &Options) -> anyhow::Result<Report> {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 1,
        // `[limits]` settings for the node, to compare (e.g. "header_read_secs = 0").
        node_limits: std::env::var("PORTCULLIS_LOAD_NODE_LIMITS").ok(),
        ..Default::default()
    })
    .await?;
    let node = &cluster.nodes[0];
    let bare_addr = free_addr();
    let mut bare_proc = Proc::spawn(
        "passthrough",
        &bin("portcullis-dp-passthrough")?,
        &[
            "--config".into(),
            node.config.display().to_string(),
            "--listen".into(),
            bare_addr.to_string(),
        ],
        cluster.root().join("logs/passthrough.log"),
    )?;
    listening(bare_addr, &mut bare_proc).await?;

    let token = cluster.token("alice@example.com");
    let shot = |token: &str| {
        Arc::new(Shot {
            path: "/openai/v1/chat/completions".into(),
            headers: vec![
                ("authorization".into(), format!("Bearer {token}")),
                ("content-type".into(), "application/json".into()),
            ],
            body: Bytes::from_static(
                br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#,
            ),
        })
    };
    let real = shot(&token);

    // The edge enforces: a forged signature is refused where the bare proxy passes it on.
    let mut forged = token.clone();
    forged.truncate(token.len() - 4);
    forged.push_str("AAAA");
    let forged_status = crate::http::chat(&cluster.http, node.proxy, &forged, "gpt-4o-mini")
        .await
        .context("forged-token probe")?
        .status;

    let warm = Duration::from_secs_f64((options.seconds / 2.0).min(1.0));
    load::run(
        bare_addr,
        real.clone(),
        options.connections,
        warm,
        options.cap,
    )
    .await?;
    load::run(
        node.proxy,
        real.clone(),
        options.connections,
        warm,
        options.cap,
    )
    .await?;

    let leg = Duration::from_secs_f64(options.seconds);
    let (mut bare, mut edge) = (Leg::default(), Leg::default());
    for round in 0..options.rounds {
        // Alternate which goes first.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_bare in order {
            let addr = if is_bare { bare_addr } else { node.proxy };
            let l = load::run(addr, real.clone(), options.connections, leg, options.cap).await?;
            if is_bare {
                bare.merge(l)
            } else {
                edge.merge(l)
            }
        }
    }
    drop(bare_proc);
    Ok(Report {
        bare,
        edge,
        forged_status,
    })
}
