//! The OIDC issuer registry: each source's issuer, its pinned algorithms and audiences, and its
//! signing keys, fetched from a local JWKS file, the issuer's `jwks_uri`, or its discovery
//! document, and refreshed periodically.
//!
//! Keys travel to the data plane inside snapshots, so nodes verify tokens without ever calling
//! the IdP. When a refresh changes an issuer's keys, a new snapshot is compiled.

use crate::config::{JwksLocation, OidcConfig, SourceConfig};
use portcullis_shared::snapshot::{Issuer, Jwk};
use serde::Deserialize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot read JWKS file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("GET {url}: {message}")]
    Http { url: String, message: String },
    #[error("{what} is not valid JSON: {message}")]
    Json { what: String, message: String },
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("JWKS has no usable signing keys")]
    NoKeys,
}

/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT: usize = 1 << 20;

/// All configured issuers with their current keys.
#[derive(Debug, Clone)]
pub struct IssuerRegistry {
    entries: Arc<Vec<Entry>>,
    client: reqwest::Client,
}

#[derive(Debug)]
struct Entry {
    config: OidcConfig,
    issuer: RwLock<Issuer>,
}

impl IssuerRegistry {
    /// Issuers for every source with an `[oidc]` section, initially without keys.
    pub fn new(sources: &[SourceConfig]) -> Self {
        let entries = sources
            .iter()
            .filter_map(|s| {
                let o = s.oidc.as_ref()?;
                Some(Entry {
                    config: o.clone(),
                    issuer: RwLock::new(Issuer {
                        source: s.name.clone(),
                        issuer: o.issuer.clone(),
                        audiences: o.audiences.clone(),
                        algorithms: o.algorithms(),
                        keys: Vec::new(),
                        principal_claim: o.principal_claim.mapping(),
                        require_email_verified: o.require_email_verified,
                        leeway_secs: o.leeway_secs,
                        tenant_claim: o.tenant_claim.clone(),
                    }),
                })
            })
            .collect();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            entries: Arc::new(entries),
            client,
        }
    }

    /// The issuers as they go into the next snapshot.
    pub fn current(&self) -> Vec<Issuer> {
        self.entries
            .iter()
            .filter_map(|e| e.issuer.read().ok().map(|i| i.clone()))
            .collect()
    }

    /// Refreshes every issuer once; returns whether any key set changed. Failures are logged
    /// and leave the previous keys in place.
    pub async fn refresh_all(&self) -> bool {
        let mut changed = false;
        for i in 0..self.entries.len() {
            changed |= self.refresh(i).await;
        }
        changed
    }

    async fn refresh(&self, index: usize) -> bool {
        let entry = &self.entries[index];
        match load_keys(&self.client, &entry.config).await {
            Ok(keys) => {
                let Ok(mut issuer) = entry.issuer.write() else {
                    return false;
                };
                if issuer.keys == keys {
                    return false;
                }
                tracing::info!(
                    source = %issuer.source, issuer = %issuer.issuer, keys = keys.len(),
                    "issuer keys updated"
                );
                issuer.keys = keys;
                true
            }
            Err(e) => {
                metrics::counter!("portcullis_jwks_refresh_failures_total").increment(1);
                tracing::warn!(issuer = %entry.config.issuer, error = %e, "cannot load issuer keys; keeping the previous ones");
                false
            }
        }
    }

    /// Refreshes each issuer on its own interval forever, calling `on_change` after any key
    /// set changed.
    pub fn spawn_refresh(&self, on_change: impl Fn() + Send + Sync + 'static) {
        let on_change = Arc::new(on_change);
        for i in 0..self.entries.len() {
            let this = self.clone();
            let on_change = on_change.clone();
            let every = Duration::from_secs(self.entries[i].config.refresh_secs.max(1));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if this.refresh(i).await {
                        on_change();
                    }
                }
            });
        }
    }
}

async fn load_keys(client: &reqwest::Client, config: &OidcConfig) -> Result<Vec<Jwk>, OidcError> {
    let text = match config.jwks_location() {
        JwksLocation::File(path) => {
            tokio::fs::read_to_string(&path)
                .await
                .map_err(|source| OidcError::File {
                    path: path.display().to_string(),
                    source,
                })?
        }
        JwksLocation::Uri(uri) => get(client, &uri).await?,
        JwksLocation::Discovery => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                config.issuer.trim_end_matches('/')
            );
            let doc: Discovery = parse_json(&get(client, &url).await?, &url)?;
            if doc.issuer != config.issuer {
                return Err(OidcError::IssuerMismatch {
                    expected: config.issuer.clone(),
                    found: doc.issuer,
                });
            }
            get(client, &doc.jwks_uri).await?
        }
    };
    parse_jwks(&text)
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, OidcError> {
    let http = |message: String| OidcError::Http {
        url: url.to_owned(),
        message,
    };
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| http(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(http(format!("status {}", resp.status())));
    }
    let bytes = resp.bytes().await.map_err(|e| http(e.to_string()))?;
    if bytes.len() > MAX_DOCUMENT {
        return Err(http(format!("document larger than {MAX_DOCUMENT} bytes")));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| http("document is not UTF-8".into()))
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, OidcError> {
    serde_json::from_str(text).map_err(|e| OidcError::Json {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Parses a JWKS document, keeping public signing keys with the members verification needs.
/// Encryption keys, symmetric keys and incomplete keys are dropped.
pub fn parse_jwks(text: &str) -> Result<Vec<Jwk>, OidcError> {
    let set: JwkSet = parse_json(text, "JWKS")?;
    let keys: Vec<Jwk> = set
        .keys
        .into_iter()
        .filter(|k| k.key_use.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| match k.kty.as_str() {
            "RSA" => k.n.is_some() && k.e.is_some(),
            "EC" => k.crv.is_some() && k.x.is_some() && k.y.is_some(),
            "OKP" => k.crv.is_some() && k.x.is_some(),
            _ => false,
        })
        .map(|k| Jwk {
            kty: k.kty,
            kid: k.kid,
            alg: k.alg,
            key_use: k.key_use,
            n: k.n,
            e: k.e,
            crv: k.crv,
            x: k.x,
            y: k.y,
        })
        .collect();
    if keys.is_empty() {
        return Err(OidcError::NoKeys);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_signing_keys_only() {
        let text = r#"{"keys":[
            {"kty":"RSA","kid":"r1","alg":"RS256","use":"sig","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"oct","kid":"hmac","k":"c2VjcmV0"},
            {"kty":"EC","kid":"e1","crv":"P-256","x":"AA","y":"AA"},
            {"kty":"EC","kid":"incomplete","crv":"P-256","x":"AA"}
        ]}"#;
        let keys = parse_jwks(text).expect("parses");
        let kids: Vec<_> = keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, ["r1", "e1"]);
    }

    #[test]
    fn empty_or_malformed_sets_are_errors() {
        assert!(matches!(
            parse_jwks(r#"{"keys":[]}"#),
            Err(OidcError::NoKeys)
        ));
        assert!(matches!(parse_jwks("nope"), Err(OidcError::Json { .. })));
    }

    /// A loopback IdP serving a discovery document and a JWKS.
    async fn idp(issuer_override: Option<&'static str>) -> (String, tokio::task::JoinHandle<()>) {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let issuer = issuer_override
            .map(str::to_owned)
            .unwrap_or_else(|| base.clone());
        let jwks_uri = format!("{base}/keys");
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let doc = serde_json::json!({"issuer": issuer, "jwks_uri": jwks_uri});
                    async move { axum::Json(doc) }
                }),
            )
            .route(
                "/keys",
                get(|| async {
                    axum::Json(serde_json::json!({"keys": [
                        {"kty": "EC", "kid": "k1", "alg": "ES256", "crv": "P-256", "x": "AA", "y": "AA"}
                    ]}))
                }),
            );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (base, task)
    }

    fn source(issuer: &str, jwks_uri: Option<String>) -> SourceConfig {
        SourceConfig {
            name: "okta".into(),
            scim_token_sha256: vec![],
            oidc: Some(OidcConfig {
                issuer: issuer.into(),
                audiences: vec!["portcullis".into()],
                algorithms: vec!["ES256".into()],
                principal_claim: crate::config::ClaimName::Email,
                jwks_file: None,
                jwks_uri,
                leeway_secs: 30,
                require_email_verified: true,
                refresh_secs: 300,
                tenant_claim: None,
            }),
            extensions: vec![],
            client_ca: None,
        }
    }

    #[tokio::test]
    async fn keys_load_by_discovery_and_by_jwks_uri() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (base, _idp) = idp(None).await;
        let by_discovery = IssuerRegistry::new(&[source(&base, None)]);
        assert!(by_discovery.current()[0].keys.is_empty());
        assert!(by_discovery.refresh_all().await, "keys changed");
        assert_eq!(by_discovery.current()[0].keys[0].kid.as_deref(), Some("k1"));
        assert!(
            !by_discovery.refresh_all().await,
            "unchanged keys are not a change"
        );

        let direct = IssuerRegistry::new(&[source(
            "https://elsewhere.invalid",
            Some(format!("{base}/keys")),
        )]);
        assert!(direct.refresh_all().await);
        assert_eq!(direct.current()[0].keys.len(), 1);
    }

    #[tokio::test]
    async fn a_discovery_document_naming_another_issuer_is_refused() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (base, _idp) = idp(Some("https://impostor.invalid")).await;
        let registry = IssuerRegistry::new(&[source(&base, None)]);
        assert!(!registry.refresh_all().await);
        assert!(
            registry.current()[0].keys.is_empty(),
            "no keys from a mismatched issuer"
        );
        let err = load_keys(&registry.client, &registry.entries[0].config)
            .await
            .unwrap_err();
        assert!(matches!(err, OidcError::IssuerMismatch { .. }), "{err}");
    }
}
