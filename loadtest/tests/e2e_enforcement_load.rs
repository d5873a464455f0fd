//! The enforcement load test's harness, briefly: the same chat request through the enforcing
//! node and the bare pass-through is answered 200 by both, every time, and the node still
//! refuses a forged token. The measurement itself is `portcullis-enforcement-load` (README).

use portcullis_loadtest::enforcement::{Options, measure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_legs_serve_every_request_and_the_edge_still_enforces() -> anyhow::Result<()> {
    let report = measure(&Options {
        connections: 4,
        seconds: 0.5,
        rounds: 2,
        cap: 400,
    })
    .await?;
    println!("{}", report.table());
    assert_eq!(report.forged_status, 401);
    assert_eq!(report.bare.failed, 0, "{}", report.table());
    assert_eq!(report.edge.failed, 0, "{}", report.table());
    assert!(
        report.bare.ok > 0 && report.edge.ok > 0,
        "{}",
        report.table()
    );
    assert_eq!(report.edge.latencies_us.len() as u64, report.edge.ok);
    Ok(())
}
