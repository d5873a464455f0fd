//! `portcullis-dp-passthrough --config node.toml --listen 127.0.0.1:PORT`: the edge's routes
//! and forwarding without authentication or decisions, as the reference for load tests. Never
//! put it in front of anything.

use portcullis_dataplane::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut config, mut listen) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--listen" => listen = args.next(),
            other => {
                eprintln!("error: unexpected argument {other}");
                return ExitCode::FAILURE;
            }
        }
    }
    let (Some(config), Some(listen)) = (config, listen) else {
        eprintln!("usage: portcullis-dp-passthrough --config NODE.toml --listen ADDR");
        return ExitCode::FAILURE;
    };
    let listen_ip = listen.rsplit_once(':').map_or("", |(h, _)| h);
    if listen_ip != "127.0.0.1" && listen_ip != "[::1]" {
        eprintln!("error: the pass-through only listens on loopback");
        return ExitCode::FAILURE;
    }
    match Config::load(&config) {
        Ok(c) => portcullis_dataplane::passthrough::serve(c, &listen),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
