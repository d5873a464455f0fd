//! A bounded HTTP load: a fixed number of keep-alive connections, each sending one request
//! after another until a deadline or a request cap, recording every latency.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One request to repeat.
#[derive(Debug, Clone)]
pub struct Shot {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What one leg of load measured.
#[derive(Debug, Clone, Default)]
pub struct Leg {
    pub ok: u64,
    /// Answers other than 200, and transport failures.
    pub failed: u64,
    pub elapsed: Duration,
    /// Microseconds, one per successful request.
    pub latencies_us: Vec<u32>,
}

impl Leg {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of latency in microseconds (0 when empty).
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        f64::from(v[((v.len() as f64 * q) as usize).min(v.len() - 1)])
    }

    /// Adds another leg's counts and samples (elapsed times add up).
    pub fn merge(&mut self, other: Leg) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// Sends `shot` to `addr` over `connections` connections for `duration` or until `cap`
/// requests were sent, whichever comes first.
pub async fn run(
    addr: SocketAddr,
    shot: Arc<Shot>,
    connections: usize,
    duration: Duration,
    cap: u64,
) -> anyhow::Result<Leg> {
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (shot, sent) = (shot.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            connection(addr, &shot, &sent, deadline, cap).await
        }));
    }
    let mut leg = Leg::default();
    for t in tasks {
        leg.merge(t.await??);
    }
    leg.elapsed = started.elapsed();
    Ok(leg)
}

async fn connection(
    addr: SocketAddr,
    shot: &Shot,
    sent: &AtomicU64,
    deadline: Instant,
    cap: u64,
) -> anyhow::Result<Leg> {
    let mut leg = Leg::default();
    let mut sender = None;
    while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < cap {
        if sender.is_none() {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (s, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            sender = Some(s);
        }
        let Some(s) = sender.as_mut() else { continue };
        let mut req = hyper::Request::post(shot.path.as_str()).header("host", addr.to_string());
        for (k, v) in &shot.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(shot.body.clone()))?;
        let t = Instant::now();
        let answer = match s.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                resp.into_body().collect().await.map(|_| status)
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok(200) => {
                leg.ok += 1;
                leg.latencies_us
                    .push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Ok(_) => leg.failed += 1,
            Err(_) => {
                leg.failed += 1;
                sender = None;
            }
        }
    }
    Ok(leg)
}
