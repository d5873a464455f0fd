//! TLS for the SCIM listener (rustls, ring), with optional client certificates per source.
//!
//! With `[scim_tls]`, the SCIM listener speaks only TLS. A source with `client_ca` must also
//! present a client certificate issued by that CA: the handshake accepts any certificate that
//! chains to one of the configured CAs (or none), the peer's chain travels with each request,
//! and the SCIM middleware checks it against the *requested source's* CA, so one source's
//! certificate never opens another source. The bearer token is required either way.

use crate::config::{SourceConfig, TlsConfig};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The client certificate chain of the connection a request came on (leaf first), if any.
#[derive(Debug, Clone, Default)]
pub struct ClientCerts(pub Option<Arc<Vec<CertificateDer<'static>>>>);

/// Per-source client certificate verifiers (sources with `client_ca`).
pub type SourceVerifiers = HashMap<String, Arc<dyn ClientCertVerifier>>;

fn file_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store.add(c).map_err(|e| file_error(path, e))?;
    }
    Ok(store)
}

fn verifier(roots: RootCertStore, optional: bool) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let builder = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    );
    let builder = if optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder.build().map_err(|e| TlsError::Config(e.to_string()))
}

/// The listener's rustls configuration: its certificate, and (when any source uses mTLS) an
/// optional client certificate issued by any configured source CA.
pub fn server_config(
    tls: &TlsConfig,
    sources: &[SourceConfig],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certs(&tls.cert)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| file_error(&tls.key, e))?;
    let mut all = RootCertStore::empty();
    for s in sources {
        if let Some(ca) = &s.client_ca {
            all.roots.extend(roots(ca)?.roots);
        }
    }
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if all.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_verifier(verifier(all, true)?)
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The verifier of every source that requires a client certificate.
pub fn source_verifiers(sources: &[SourceConfig]) -> Result<SourceVerifiers, TlsError> {
    sources
        .iter()
        .filter_map(|s| s.client_ca.as_ref().map(|ca| (s, ca)))
        .map(|(s, ca)| Ok((s.name.clone(), verifier(roots(ca)?, false)?)))
        .collect()
}

/// Checks a request's client certificate against the source's verifier.
pub fn check_client(verifier: &dyn ClientCertVerifier, certs: &ClientCerts) -> Result<(), String> {
    let chain = certs
        .0
        .as_ref()
        .filter(|c| !c.is_empty())
        .ok_or("this source requires a client certificate (mTLS)")?;
    verifier
        .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
        .map(|_| ())
        .map_err(|e| format!("the client certificate is not accepted for this source: {e}"))
}

/// Serves `app` over TLS on `listener` until `shutdown` completes. Each connection's client
/// certificates are attached to its requests as [`ClientCerts`].
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let certs = ClientCerts(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| Arc::new(c.iter().map(|c| c.clone().into_owned()).collect())),
            );
            let svc = app.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(certs.clone());
                req
            });
            let svc = TowerToHyperService::new(svc);
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
            }
        });
    }
}
