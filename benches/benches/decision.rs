//! Decision latency: Portcullis's engine against a plain Cedar integration (the whole
//! directory as one `Entities`, `Authorizer::is_authorized` per request) on the same
//! snapshot and the same requests, in the same run. Prints the ratio.
//!
//! `cargo bench -p portcullis-benches --bench decision` (sizes: PORTCULLIS_BENCH_SIZES,
//! e.g. `10000x1000x200,100000x5000x1000` = users x groups x policies).

use criterion::{BenchmarkId, Criterion};
use portcullis_benches::{Reference, requests, snapshot};
use portcullis_shared::engine::Engine;
use std::hint::black_box;
use std::time::Instant;

fn sizes() -> Vec<(usize, usize, usize)> {
    let spec = std::env::var("PORTCULLIS_BENCH_SIZES").unwrap_or_else(|_| "10000x1000x200".into());
    spec.split(',')
        .filter_map(|s| {
            let v: Vec<usize> = s.split('x').filter_map(|n| n.trim().parse().ok()).collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect()
}

/// Median over rounds of the mean time per decision, in microseconds.
fn per_decision(rounds: usize, n: usize, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut summary = Vec::new();
    for (users, groups, policies) in sizes() {
        let snap = snapshot(users, groups, policies);
        let reqs = requests(&snap, 500);
        let reference = Reference::new(&snap);
        let people = snap.users.clone();
        let engine = Engine::new(snap).unwrap_or_else(|e| panic!("{e}"));
        let mut allowed = 0;
        for (u, r) in &reqs {
            let ours = engine.decide(&people[*u], r).is_allowed();
            assert_eq!(
                ours,
                reference.decide(*u, r),
                "engine and Cedar disagree on {r:?}"
            );
            allowed += usize::from(ours);
        }

        let label = format!("{users}u-{groups}g-{policies}p");
        let mut group = c.benchmark_group(format!("decision/{label}"));
        group.bench_function(BenchmarkId::new("engine", &label), |b| {
            let mut i = 0;
            b.iter(|| {
                let (u, r) = &reqs[i % reqs.len()];
                i += 1;
                black_box(engine.decide(&people[*u], r));
            })
        });
        group.bench_function(BenchmarkId::new("cedar-reference", &label), |b| {
            let mut i = 0;
            b.iter(|| {
                let (u, r) = &reqs[i % reqs.len()];
                i += 1;
                black_box(reference.decide(*u, r));
            })
        });
        group.finish();

        let rounds = 9;
        let ours = per_decision(rounds, reqs.len(), || {
            for (u, r) in &reqs {
                black_box(engine.decide(&people[*u], r));
            }
        });
        let theirs = per_decision(rounds, reqs.len(), || {
            for (u, r) in &reqs {
                black_box(reference.decide(*u, r));
            }
        });
        summary.push((label, allowed, reqs.len(), ours, theirs));
    }
    c.final_summary();
    println!(
        "\n{:<28} {:>9} {:>14} {:>16} {:>8}",
        "size", "allowed", "engine µs", "cedar-ref µs", "ratio"
    );
    for (label, allowed, n, ours, theirs) in summary {
        println!(
            "{label:<28} {:>9} {ours:>14.2} {theirs:>16.2} {:>7.1}x",
            format!("{allowed}/{n}"),
            theirs / ours
        );
    }
}
