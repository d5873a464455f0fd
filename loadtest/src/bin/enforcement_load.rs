//! `portcullis-enforcement-load`: the data plane with full enforcement against a bare Pingora
//! pass-through built from the same code, under the same bounded load, in one run.
//!
//! `cargo build --release --workspace --bins && target/release/portcullis-enforcement-load`

use clap::Parser;
use portcullis_loadtest::enforcement::{Options, measure};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(about = "Throughput and latency of full enforcement against a bare proxy")]
struct Args {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds per leg and round.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Rounds; each runs both legs, alternating which goes first.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// At most this many requests per leg and round.
    #[arg(long, default_value_t = 2_000_000)]
    cap: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let a = Args::parse();
    let options = Options {
        connections: a.connections,
        seconds: a.seconds,
        rounds: a.rounds,
        cap: a.cap,
    };
    match measure(&options).await {
        Ok(r) => {
            println!(
                "{} connections, {} rounds of {} s per leg\n",
                a.connections, a.rounds, a.seconds
            );
            print!("{}", r.table());
            if r.forged_status != 401 {
                eprintln!("error: the edge did not refuse a forged token");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
