//! Snapshot encoding: the framed postcard codec (with its SHA-256 content hash) against
//! `serde_json` of the same snapshot, in the same run. Prints sizes and the ratio.
//!
//! `cargo bench -p portcullis-benches --bench codec` (users: PORTCULLIS_BENCH_USERS).

use criterion::Criterion;
use portcullis_benches::snapshot;
use portcullis_shared::codec;
use portcullis_shared::snapshot::Snapshot;
use std::hint::black_box;
use std::time::Instant;

fn median_ms(rounds: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let users: usize = std::env::var("PORTCULLIS_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let snap = snapshot(users, users / 10, 200);
    let framed = codec::encode(&snap);
    let json = serde_json::to_vec(&snap).unwrap_or_default();
    assert_eq!(
        codec::decode(&framed).map(|(_, s)| s).ok(),
        Some(snap.clone())
    );

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group(format!("codec/{users}u"));
    g.bench_function("postcard-encode", |b| {
        b.iter(|| black_box(codec::encode(&snap)))
    });
    g.bench_function("postcard-decode+verify", |b| {
        b.iter(|| black_box(codec::decode(&framed).is_ok()))
    });
    g.bench_function("json-encode", |b| {
        b.iter(|| black_box(serde_json::to_vec(&snap).ok()))
    });
    g.bench_function("json-decode", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Snapshot>(&json).is_ok()))
    });
    g.finish();
    c.final_summary();

    let rounds = 7;
    let enc = median_ms(rounds, || {
        black_box(codec::encode(&snap));
    });
    let dec = median_ms(rounds, || {
        black_box(codec::decode(&framed).is_ok());
    });
    let jenc = median_ms(rounds, || {
        black_box(serde_json::to_vec(&snap).ok());
    });
    let jdec = median_ms(rounds, || {
        black_box(serde_json::from_slice::<Snapshot>(&json).is_ok());
    });
    println!(
        "\nsnapshot of {users} users: framed {} bytes, JSON {} bytes ({:.2}x smaller)",
        framed.len(),
        json.len(),
        json.len() as f64 / framed.len() as f64
    );
    println!(
        "{:<26} {:>10} {:>10} {:>8}",
        "", "codec ms", "json ms", "ratio"
    );
    println!(
        "{:<26} {enc:>10.2} {jenc:>10.2} {:>7.2}x",
        "encode",
        jenc / enc
    );
    println!(
        "{:<26} {dec:>10.2} {jdec:>10.2} {:>7.2}x",
        "decode (+hash check)",
        jdec / dec
    );
}
