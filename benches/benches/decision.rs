//! Decision latency: the compiled path ([`Engine::decide`]) against Cedar's authorizer on the
//! same snapshot and the same requests, in the same run. The reference is a plain Cedar
//! integration: the whole directory as one `Entities`, `Authorizer::is_authorized` per
//! request. Also shown: the engine's own Cedar path (per-request entities), which the
//! compiled path replaced. Prints per-decision p50/p99 and the ratios.
//!
//! `cargo bench -p portcullis-benches --bench decision` (sizes: PORTCULLIS_BENCH_SIZES,
//! `users x groups x policies`, comma-separated; default
//! `10000x1000x200,10000x1000x1000,100000x5000x200,100000x5000x1000`).

use criterion::{BenchmarkId, Criterion};
use portcullis_benches::{Reference, requests, snapshot};
use portcullis_shared::engine::Engine;
use std::hint::black_box;
use std::time::Instant;

fn sizes() -> Vec<(usize, usize, usize)> {
    let spec = std::env::var("PORTCULLIS_BENCH_SIZES").unwrap_or_else(|_| {
        "10000x1000x200,10000x1000x1000,100000x5000x200,100000x5000x1000".into()
    });
    spec.split(',')
        .filter_map(|s| {
            let v: Vec<usize> = s.split('x').filter_map(|n| n.trim().parse().ok()).collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect()
}

/// p50 and p99 of single decisions, in microseconds, over `rounds` passes of `n` requests.
fn percentiles(rounds: usize, n: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    let mut samples = Vec::with_capacity(rounds * n);
    for _ in 0..rounds {
        for i in 0..n {
            let t = Instant::now();
            f(i);
            samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

struct Row {
    label: String,
    allowed: usize,
    n: usize,
    fast: (f64, f64),
    old: (f64, f64),
    cedar: (f64, f64),
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut rows = Vec::new();
    for (users, groups, policies) in sizes() {
        let snap = snapshot(users, groups, policies);
        let reqs = requests(&snap, 2000);
        let reference = Reference::new(&snap);
        let people = snap.users.clone();
        let engine = Engine::new(snap).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            engine.compiled().fallback.is_empty(),
            "every bench policy compiles: {:?}",
            engine.compiled().fallback
        );
        let mut allowed = 0;
        for (u, r) in &reqs {
            let ours = engine.decide(&people[*u], r);
            let theirs = reference.decide_with_reasons(*u, r);
            let mut ids: Vec<String> = ours.policies.iter().map(str::to_owned).collect();
            ids.sort();
            assert_eq!(
                (ours.is_allowed(), ids),
                theirs,
                "the compiled path and Cedar disagree on {r:?}"
            );
            allowed += usize::from(ours.is_allowed());
        }

        let label = format!("{users}u-{groups}g-{policies}p");
        let mut group = c.benchmark_group(format!("decision/{label}"));
        group.bench_function(BenchmarkId::new("compiled", &label), |b| {
            let mut i = 0;
            b.iter(|| {
                let (u, r) = &reqs[i % reqs.len()];
                i += 1;
                black_box(engine.decide(&people[*u], r));
            })
        });
        group.bench_function(BenchmarkId::new("cedar-authorizer", &label), |b| {
            let mut i = 0;
            b.iter(|| {
                let (u, r) = &reqs[i % reqs.len()];
                i += 1;
                black_box(reference.decide(*u, r));
            })
        });
        group.finish();

        let fast = percentiles(20, reqs.len(), |i| {
            let (u, r) = &reqs[i];
            black_box(engine.decide(&people[*u], r));
        });
        let slow_n = if policies >= 1000 { 300 } else { 1000 };
        let old = percentiles(1, slow_n, |i| {
            let (u, r) = &reqs[i];
            black_box(engine.decide_with_cedar(&people[*u], r));
        });
        let cedar = percentiles(1, slow_n, |i| {
            let (u, r) = &reqs[i];
            black_box(reference.decide(*u, r));
        });
        rows.push(Row {
            label,
            allowed,
            n: reqs.len(),
            fast,
            old,
            cedar,
        });
    }
    c.final_summary();
    println!(
        "\n{:<22} {:>10} {:>18} {:>22} {:>22} {:>12} {:>12}",
        "size",
        "allowed",
        "compiled p50/p99",
        "engine+cedar p50/p99",
        "cedar-authz p50/p99",
        "ratio p50",
        "ratio p99"
    );
    for r in rows {
        println!(
            "{:<22} {:>10} {:>18} {:>22} {:>22} {:>11.0}x {:>11.0}x",
            r.label,
            format!("{}/{}", r.allowed, r.n),
            format!("{:.2}/{:.2} µs", r.fast.0, r.fast.1),
            format!("{:.1}/{:.1} µs", r.old.0, r.old.1),
            format!("{:.1}/{:.1} µs", r.cedar.0, r.cedar.1),
            r.cedar.0 / r.fast.0,
            r.cedar.1 / r.fast.1,
        );
    }
}
