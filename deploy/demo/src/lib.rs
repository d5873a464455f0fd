//! Demo upstreams and the one-command quickstart, plus the pieces the end-to-end harness shares
//! with it: a demo token issuer, a SCIM client, the demo directory and configuration writers.

pub mod configs;
pub mod identities;
pub mod issuer;
pub mod quickstart;
pub mod scim;
pub mod upstream;

/// An HTTP client for talking to the local deployment. Installs the process's rustls crypto
/// provider (ring) first, which the TLS-capable client needs even for plain HTTP.
pub fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}
