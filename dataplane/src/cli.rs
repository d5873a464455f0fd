//! The `portcullis-dp` command line: load the configuration, restore the last-known-good
//! snapshot, and run the Pingora server (proxy, admin listener, snapshot subscriber).

use crate::admin::AdminApp;
use crate::config::Config;
use crate::headers::Guarded;
use crate::lkg::LastKnownGood;
use crate::proxy::Edge;
use crate::state::NodeState;
use crate::subscriber::Subscriber;
use clap::Parser;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "portcullis-dp", version, about = "Portcullis data-plane node")]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check: bool,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// Runs with explicit arguments (the first is the program name), as the quickstart's
/// multi-call binary does.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    init_tracing(&cli.log_format);
    let config = match Config::load(&cli.config) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!(
            "configuration OK: node {}, {} route(s)",
            config.node_id,
            config.routes.len()
        );
        return ExitCode::SUCCESS;
    }
    run(config)
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(crate::logwriter::QueuedStderr::start());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The Prometheus recorder, with real histogram buckets for the latency metrics.
fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let decision = [
        1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2,
    ];
    let request = [
        1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("portcullis_decision_seconds".into()),
            &decision,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full("portcullis_request_seconds".into()), &request)
        })
        .ok()?
        .install_recorder()
        .ok()
}

/// Pingora's server configuration: `threads` worker threads, no grace period, a one-second
/// graceful shutdown, and its pid file (`<name>.pid`) and upgrade socket under `dir`.
pub(crate) fn server_conf(threads: usize, dir: &std::path::Path, name: &str) -> Option<ServerConf> {
    let mut conf = ServerConf::new()?;
    conf.threads = threads;
    conf.grace_period_seconds = Some(0);
    conf.graceful_shutdown_timeout_seconds = Some(1);
    conf.pid_file = dir.join(format!("{name}.pid")).display().to_string();
    conf.upgrade_sock = dir.join("upgrade.sock").display().to_string();
    Some(conf)
}

fn run(config: Arc<Config>) -> ExitCode {
    let prometheus = install_metrics();
    let state = NodeState::new();

    let mut lkg = LastKnownGood::new(&config.state_dir);
    match lkg.load() {
        Ok(Some(snapshot)) => {
            let v = snapshot.version();
            if state.install(snapshot).is_ok() {
                tracing::info!(
                    version = v,
                    "serving from the last-known-good snapshot until the control plane answers"
                );
            }
        }
        Ok(None) => tracing::info!(
            "no last-known-good snapshot; protected routes answer 503 until one arrives"
        ),
        Err(e) => tracing::error!(error = %e, "ignoring the last-known-good snapshot"),
    }

    let Some(conf) = server_conf(config.threads, &config.state_dir, "portcullis-dp") else {
        eprintln!("error: cannot build the Pingora server configuration");
        return ExitCode::FAILURE;
    };
    if let Err(e) = std::fs::create_dir_all(&config.state_dir) {
        eprintln!(
            "error: cannot create state_dir {}: {e}",
            config.state_dir.display()
        );
        return ExitCode::FAILURE;
    }

    let records_dir = config.state_dir.join("records");
    if let Err(e) = crate::records::start(&records_dir, &config.records) {
        eprintln!(
            "error: cannot write decision records under {}: {e}",
            records_dir.display()
        );
        return ExitCode::FAILURE;
    }

    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    // Every connection is held to the header deadline before Pingora parses it (0: off, for
    // an edge behind a load balancer that already enforces one).
    let edge = pingora::proxy::http_proxy(
        &server.configuration,
        Edge::new(config.clone(), state.clone()),
    );
    let limit = std::time::Duration::from_secs(config.limits.header_read_secs);
    let mut proxy = Service::new(
        "portcullis-edge".to_owned(),
        Guarded::new(edge, (!limit.is_zero()).then_some(limit)),
    );
    proxy.add_tcp(&config.listen.proxy.to_string());

    let mut admin = Service::new(
        "portcullis-admin".to_owned(),
        AdminApp::new(config.node_id.clone(), state.clone(), prometheus),
    );
    admin.add_tcp(&config.listen.admin.to_string());

    let subscriber = background_service(
        "snapshot subscriber",
        Subscriber::new(config.clone(), state, lkg),
    );

    server.add_service(proxy);
    server.add_service(background_service(
        "record flusher",
        crate::records::Flusher,
    ));
    server.add_service(admin);
    server.add_service(subscriber);
    tracing::info!(
        node = %config.node_id,
        proxy = %config.listen.proxy,
        admin = %config.listen.admin,
        control_plane = %config.control_plane,
        "data plane starting"
    );
    server.run_forever()
}
