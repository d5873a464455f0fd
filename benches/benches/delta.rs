//! What a node pays per change: applying a one-user delta against loading the full snapshot.
//!
//! For 10,000 and 100,000 users (groups: a tenth; 200 policies), in one run:
//!
//! - **full**: what a node does with a full snapshot — verify the signature, decode and hash
//!   check the frame, build the engine (policies and directory indexes);
//! - **delta**: what it does with a one-user delta (a deactivation or a group change) —
//!   verify the signature, decode and hash check the delta frame, apply it to the live engine;
//! - the control plane's side of a delta: diffing the two snapshots and framing the result;
//! - memory: the resident memory the full engine takes, and what holding 200 successive
//!   delta-made engines alive at once adds (each shares all it did not change).
//!
//! Prints p50 and p99 for the delta, the median for the full load, and their ratio.
//!
//! `cargo bench -p portcullis-benches --bench delta` (`DELTA_BENCH_USERS=a,b` to choose sizes).

use portcullis_benches::snapshot;
use portcullis_shared::codec;
use portcullis_shared::delta;
use portcullis_shared::engine::Engine;
use portcullis_shared::signing::{FrameSigner, TrustedKeys};
use portcullis_shared::snapshot::{Snapshot, User};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHANGES: usize = 200;

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The snapshot after change `i`: user `i * 7919 % n` flips its activity or (every third
/// change) loses its first group.
fn changed(prev: &Snapshot, i: usize) -> Snapshot {
    let mut next = prev.clone();
    next.version = prev.version + 1;
    next.identity_revision = prev.identity_revision + 1;
    let at = i * 7919 % next.users.len();
    let mut u: User = (*next.users[at]).clone();
    if i % 3 == 2 && !u.groups.is_empty() {
        u.groups.remove(0);
    } else {
        u.active = !u.active;
    }
    next.users[at] = Arc::new(u);
    next
}

fn main() {
    let sizes: Vec<usize> = std::env::var("DELTA_BENCH_USERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let signer = FrameSigner::from_seed(&[9; 32]);
    let trusted = TrustedKeys::from_base64([signer.public_key_base64().as_str()])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rows = Vec::new();
    for users in sizes {
        let mut base = snapshot(users, users / 10, 200);
        // Snapshots hold users sorted by (source, id), as the compiler emits them.
        base.users
            .sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
        let frame = codec::encode(&base);
        let sig = signer.sign(&frame);

        // Full load, median of 5.
        let mut full = Vec::new();
        let before = rss();
        let mut live = None;
        for _ in 0..5 {
            drop(live.take());
            let t = Instant::now();
            trusted
                .verify(&frame, &sig, signer.key_id())
                .unwrap_or_else(|e| panic!("{e}"));
            let (_, s) = codec::decode(&frame).unwrap_or_else(|e| panic!("{e}"));
            live = Some(Engine::new(s).unwrap_or_else(|e| panic!("{e}")));
            full.push(t.elapsed());
        }
        let engine_bytes = rss().saturating_sub(before);
        let mut live = live.unwrap_or_else(|| unreachable!("five loads ran"));
        let full_median = percentile(&mut full, 0.5);

        // One-user deltas, applied in sequence; every engine is kept alive.
        let (mut apply, mut cp_side, mut sizes_b) = (Vec::new(), Vec::new(), Vec::new());
        let mut verify_only = Vec::new();
        let mut all = Vec::with_capacity(CHANGES);
        let mut prev = base;
        let mut kept = Vec::with_capacity(CHANGES);
        let rss_before_deltas = rss();
        for i in 0..CHANGES {
            let next = changed(&prev, i);
            let t = Instant::now();
            let d = delta::diff(&prev, &next).unwrap_or_else(|e| panic!("{e}"));
            let dframe = codec::encode_delta(&d);
            let dsig = signer.sign(&dframe);
            cp_side.push(t.elapsed());
            sizes_b.push(dframe.len());

            let t = Instant::now();
            trusted
                .verify(&dframe, &dsig, signer.key_id())
                .unwrap_or_else(|e| panic!("{e}"));
            let verified = t.elapsed();
            let (_, d) = codec::decode_delta(&dframe).unwrap_or_else(|e| panic!("{e}"));
            let applied = live.apply(&d).unwrap_or_else(|e| panic!("{e}"));
            apply.push(t.elapsed());
            all.push(d);
            verify_only.push(verified);
            kept.push(std::mem::replace(&mut live, applied));
            prev = next;
        }
        let held = rss().saturating_sub(rss_before_deltas);
        // A node 200 versions behind: the control plane composes one delta.
        let t = Instant::now();
        let composed = delta::compose(all.iter()).unwrap_or_else(|e| panic!("{e}"));
        let compose_time = t.elapsed();
        assert_eq!(composed.users.len(), CHANGES.min(all.len()));
        // The engine made by 200 deltas equals one built from scratch.
        assert_eq!(
            black_box(&live).to_snapshot(),
            prev,
            "delta-made engine differs"
        );

        let p50 = percentile(&mut apply, 0.5);
        let p99 = percentile(&mut apply, 0.99);
        let cp50 = percentile(&mut cp_side, 0.5);
        let sig50 = percentile(&mut verify_only, 0.5);
        sizes_b.sort_unstable();
        rows.push((
            users,
            frame.len(),
            full_median,
            sizes_b[sizes_b.len() / 2],
            p50,
            p99,
            sig50,
            cp50,
            compose_time,
            engine_bytes,
            held,
        ));
        drop(kept);
    }

    println!(
        "\n{:>8} {:>11} {:>10} {:>8} {:>10} {:>10} {:>10} {:>9} {:>12} {:>15} {:>10} {:>14}",
        "users",
        "full bytes",
        "full ms",
        "Δ bytes",
        "Δ p50 µs",
        "Δ p99 µs",
        "of it sig",
        "ratio",
        "CP Δ p50 µs",
        "compose 200 µs",
        "engine MB",
        "200 Δs held MB"
    );
    for (users, fb, full, db, p50, p99, sig, cp, compose, eng, held) in rows {
        println!(
            "{users:>8} {fb:>11} {:>10.1} {db:>8} {:>10.1} {:>10.1} {:>10.1} {:>8.0}x {:>12.1} {:>15.1} {:>10.1} {:>14.2}",
            full.as_secs_f64() * 1e3,
            us(p50),
            us(p99),
            us(sig),
            us(full) / us(p50),
            us(cp),
            us(compose),
            eng as f64 / 1e6,
            held as f64 / 1e6,
        );
    }
    println!(
        "\nfull: signature + decode + hash check + Engine::new (median of 5); Δ: signature + decode + \
         hash check + Engine::apply of a one-user delta ({CHANGES} in sequence; \"of it sig\": the \
         signature check's p50); ratio = full / Δ p50; \
         CP Δ: diff + frame + sign; compose 200: the 200 deltas as one (a node that far behind); engine MB: resident memory of one full engine; \
         200 Δs held: what keeping every delta-made engine alive at once adds."
    );
}
