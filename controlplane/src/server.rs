//! `portcullis-cp serve`: wires the store, policies, issuers, publisher, node registry and the
//! three listeners (SCIM, admin, gRPC) together, and runs until SIGINT/SIGTERM.

use crate::admin::{self, AdminState};
use crate::attributes::PrincipalAttributes;
use crate::bindings::{BindingStore, Bindings};
use crate::breakglass::BreakGlass;
use crate::config::Config;
use crate::grpc::SnapshotGrpc;
use crate::nodes::NodeRegistry;
use crate::oidc::IssuerRegistry;
use crate::policies::{PolicyStore, ReloadOutcome};
use crate::publisher::{Publisher, PublisherOptions};
use crate::scim::{self, ScimState};
use crate::store::Store;
use anyhow::{Context, bail};
use portcullis_shared::Hash32;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// Addresses actually bound (ports may have been 0 in the configuration).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Bound {
    pub scim: SocketAddr,
    pub admin: SocketAddr,
    pub grpc: SocketAddr,
}

/// The bindings file's document, when the store has no bindings version yet: it becomes
/// version 1 (see [`seed_bindings`]). After that the store is the truth: edits go through the
/// admin API or `portcullis-cp bindings`.
fn bindings_seed(config: &Config, bindings: &BindingStore) -> anyhow::Result<Option<Bindings>> {
    let Some(path) = &config.bindings_file else {
        return Ok(None);
    };
    if bindings.live().version > 0 {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the bindings file {}", path.display()))?;
    let doc = Bindings::from_toml(&text)
        .with_context(|| format!("parsing the bindings file {}", path.display()))?;
    Ok(Some(doc))
}

/// Makes the seed document the first bindings version.
async fn seed_bindings(
    config: &Config,
    seed: Option<Bindings>,
    bindings: &BindingStore,
    policies: &PolicyStore,
) -> anyhow::Result<()> {
    let (Some(doc), Some(path)) = (seed, &config.bindings_file) else {
        return Ok(());
    };
    let version = bindings
        .apply(
            doc,
            &format!("config:{}", path.display()),
            Some("initial bindings from the configuration".into()),
            policies,
        )
        .await
        .with_context(|| format!("the bindings file {}", path.display()))?;
    tracing::info!(version, file = %path.display(), "bindings seeded from the configuration");
    Ok(())
}

/// Runs the control plane. `ready_file`, if given, receives the bound addresses as JSON once
/// every listener accepts connections.
pub async fn serve(config: Config, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let compile_buckets = [1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0];
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            // Compile and publish times.
            metrics_exporter_prometheus::Matcher::Prefix("portcullis_snapshot_".into()),
            &compile_buckets,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(
                    "portcullis_snapshot_delta_bytes".into(),
                ),
                &[256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0],
            )
        })
        .ok()
        .and_then(|b| b.install_recorder().ok());

    let store = Store::open(&config.database_path())
        .with_context(|| format!("opening the store at {}", config.database_path().display()))?;
    tracing::info!(db = %store.path().display(), "store open");

    let attributes = PrincipalAttributes::from_sources(&config.sources);
    let policies = PolicyStore::open(
        config.policy_dir.clone(),
        store.clone(),
        attributes.decls().to_vec(),
    )
    .await?;
    // The live bindings' attribute mappings and labels are part of the schema.
    let bindings = BindingStore::load(store.clone()).await?;
    let seed = bindings_seed(&config, &bindings)?;
    let (declared, problems) = match &seed {
        Some(doc) => doc.declarations(policies.extension()),
        None => bindings.live().bindings.declarations(policies.extension()),
    };
    if !problems.is_empty() {
        tracing::warn!(
            ?problems,
            "the live bindings no longer fit the configured extensions; fix them with `portcullis-cp bindings apply`"
        );
    }
    policies.declare(declared);
    match policies.reload().await {
        Ok(ReloadOutcome::Updated(v)) => tracing::info!(policy_version = %v, "policies loaded"),
        Ok(ReloadOutcome::Unchanged(v)) => {
            tracing::info!(policy_version = %v, "policies unchanged")
        }
        Err(e) => match policies.live() {
            Some(live) => tracing::error!(
                error = %e, live_version = %live.version,
                "the policy directory is invalid; keeping the last valid version"
            ),
            None => bail!("no valid policy version exists: {e}"),
        },
    }

    let issuers = IssuerRegistry::new(&config.sources);
    if tokio::time::timeout(Duration::from_secs(10), issuers.refresh_all())
        .await
        .is_err()
    {
        tracing::warn!("issuer keys did not all load within 10s; continuing and retrying");
    }

    seed_bindings(&config, seed, &bindings, &policies).await?;
    let break_glass = BreakGlass::new(store.clone(), bindings.clone());
    let key_file = config
        .nodes
        .signing_key
        .clone()
        .unwrap_or_else(|| config.data_dir.join("signing.key"));
    let signer = crate::signing::load_or_create(&key_file)
        .with_context(|| format!("loading the snapshot signing key {}", key_file.display()))?;
    tracing::info!(
        key_id = signer.key_id(),
        public_key = %signer.public_key_base64(),
        public_key_file = %crate::signing::public_key_path(&key_file).display(),
        "snapshots are signed; nodes must trust this public key"
    );
    let publisher = Publisher::start(
        store.clone(),
        policies.clone(),
        issuers.clone(),
        attributes,
        bindings.clone(),
        PublisherOptions {
            keep_snapshots: config.compile.keep_snapshots,
            keep_deltas: config.compile.keep_deltas,
            full_every: config.compile.full_every,
            history: crate::config::days(config.audit.snapshot_history_days),
            signer,
        },
    )
    .await?;
    {
        let p = publisher.clone();
        issuers.spawn_refresh(move || p.mark_dirty());
    }
    let nodes = NodeRegistry::load(store.clone()).await?;
    let decisions_path = config.decisions_path();
    let decisions = crate::store::DecisionStore::open(&decisions_path)
        .with_context(|| format!("opening the decision store {}", decisions_path.display()))?;
    crate::siem::spawn(&config.siem, store.clone(), decisions.clone());
    crate::audit::spawn_retention(
        store.clone(),
        decisions.clone(),
        config.audit.clone(),
        publisher.clone(),
    );
    let config = Arc::new(config);

    let scim_listener = bind(config.listen.scim, "SCIM").await?;
    let admin_listener = bind(config.listen.admin, "admin").await?;
    let grpc_listener = bind(config.listen.grpc, "gRPC").await?;
    let bound = Bound {
        scim: scim_listener.local_addr()?,
        admin: admin_listener.local_addr()?,
        grpc: grpc_listener.local_addr()?,
    };

    let shutdown = shutdown_signal();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let scim_app = scim::router(ScimState {
        store: store.clone(),
        config: config.clone(),
        publisher: publisher.clone(),
        types: Arc::new(scim::sources::build(&config.sources)),
        limiter: Arc::new(scim::limit::RateLimiter::new(
            config.scim.rate_per_second,
            config.scim.rate_burst,
        )),
        mtls: Arc::new(crate::tls::source_verifiers(&config.sources)?),
    });
    let scim_tls = config
        .scim_tls
        .as_ref()
        .map(|t| crate::tls::server_config(t, &config.sources))
        .transpose()?;
    let admin_app = admin::router(AdminState {
        store: store.clone(),
        publisher: publisher.clone(),
        nodes: nodes.clone(),
        policies: policies.clone(),
        bindings: bindings.clone(),
        break_glass,
        api_keys: crate::apikeys::ApiKeys::new(store.clone()),
        service_accounts: crate::service_accounts::ServiceAccounts::new(store.clone()),
        prometheus,
        history: crate::history::History::new(store.clone(), publisher.clone()),
        decisions: decisions.clone(),
        token_sha256: config
            .admin
            .token_sha256
            .as_deref()
            .and_then(Hash32::from_hex),
    });
    let scim_task = match scim_tls {
        Some(tls) => tokio::spawn(crate::tls::serve(
            scim_listener,
            tls,
            scim_app,
            stopped(stop_rx.clone()),
        )),
        None => {
            let serving = axum::serve(scim_listener, scim_app)
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .into_future();
            tokio::spawn(async move {
                if let Err(e) = serving.await {
                    tracing::error!(error = %e, "SCIM listener failed");
                }
            })
        }
    };
    let admin_task = tokio::spawn(
        axum::serve(admin_listener, admin_app)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    let mut grpc_server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)));
    if let Some(tls) = &config.nodes.tls {
        let read = |p: &PathBuf| {
            std::fs::read(p).with_context(|| format!("reading [nodes.tls] file {}", p.display()))
        };
        let server = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                read(&tls.cert)?,
                read(&tls.key)?,
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(read(
                &tls.client_ca,
            )?));
        grpc_server = grpc_server
            .tls_config(server)
            .context("[nodes.tls] is not a usable TLS configuration")?;
        tracing::info!("snapshot listener requires node certificates (mTLS)");
    }
    let grpc_task = tokio::spawn(
        grpc_server
            .add_service(
                SnapshotGrpc::new(
                    publisher.clone(),
                    nodes,
                    Duration::from_millis(config.nodes.heartbeat_ms),
                )
                .with_certificate_identity(config.nodes.tls.is_some())
                .with_decisions(decisions)
                .into_server(
                    config
                        .nodes
                        .token_sha256
                        .iter()
                        .filter_map(|h| Hash32::from_hex(h))
                        .collect(),
                ),
            )
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(grpc_listener),
                stopped(stop_rx.clone()),
            ),
    );
    spawn_grace_period_purge(store.clone(), bindings.clone(), publisher.clone());
    spawn_policy_reload_on_sighup(policies, publisher);

    tracing::info!(scim = %bound.scim, admin = %bound.admin, grpc = %bound.grpc, "control plane ready");
    if let Some(path) = ready_file {
        std::fs::write(&path, serde_json::to_vec(&bound)?)
            .with_context(|| format!("writing the ready file {}", path.display()))?;
    }

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = scim_task.await;
        let _ = admin_task.await;
        let _ = grpc_task.await;
    })
    .await;
    Ok(())
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} listener on {addr}"))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Purges users deactivated for longer than the live bindings' grace period, at start and
/// then every minute.
fn spawn_grace_period_purge(store: Store, bindings: BindingStore, publisher: Arc<Publisher>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(days) = bindings.live().bindings.lifecycle.deactivated_grace_days else {
                continue;
            };
            match crate::lifecycle::purge_expired(&store, days, crate::store::now_ms()).await {
                Ok(purged) if !purged.is_empty() => {
                    tracing::info!(
                        count = purged.len(),
                        days,
                        "purged users past the deactivation grace period"
                    );
                    publisher.mark_dirty();
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "grace-period purge failed; retrying"),
            }
        }
    });
}

/// `kill -HUP` re-reads the policy directory, like `POST /admin/v1/policies/reload`.
fn spawn_policy_reload_on_sighup(policies: PolicyStore, publisher: Arc<Publisher>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match policies.reload().await {
                Ok(ReloadOutcome::Updated(v)) => {
                    tracing::info!(policy_version = %v, "policies reloaded on SIGHUP");
                    publisher.mark_dirty();
                }
                Ok(ReloadOutcome::Unchanged(_)) => tracing::info!("policies unchanged on SIGHUP"),
                Err(e) => {
                    tracing::error!(error = %e, "policy reload refused; the previous version stays live")
                }
            }
        }
    });
}
