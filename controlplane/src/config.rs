//! The control plane's TOML configuration.
//!
//! ```toml
//! data_dir = "data"            # SQLite database `portcullis.db` lives here
//! policy_dir = "policies"      # *.cedar files
//! bindings_file = "bindings.toml" # optional: the first bindings version (role bundles, …)
//!
//! [listen]
//! scim = "127.0.0.1:8080"      # what IdPs push to: /scim/v2/{source}/...
//! admin = "127.0.0.1:8081"     # admin API and /metrics; keep it private
//! grpc = "127.0.0.1:50051"     # snapshot stream for data-plane nodes
//!
//! [admin]
//! token_sha256 = "…"           # optional: require `Authorization: Bearer <token>`
//!
//! [nodes]
//! token_sha256 = ["…"]         # bearer tokens nodes present on the snapshot stream
//! heartbeat_ms = 1000          # how often nodes hear the latest version when nothing changes
//! signing_key = "signing.key"  # Ed25519 seed signing every snapshot and delta; created (with
//!                              # `signing.pub`, the public key nodes trust) when missing.
//!                              # Default: <data_dir>/signing.key
//! [nodes.tls]                  # optional: mTLS on the snapshot listener
//! cert = "grpc.pem"            # the listener's certificate chain and key
//! key = "grpc-key.pem"
//! client_ca = "nodes-ca.pem"   # nodes must present a certificate from this CA naming their
//!                              # node_id as a DNS subjectAltName
//!
//! [compile]
//! keep_snapshots = 20          # full snapshots kept in the store
//! keep_deltas = 4096           # deltas kept: nodes this far behind resume without a full resend
//! full_every = 256             # store a full snapshot at least every this many versions
//!
//! [audit]                      # retention; deleting a user never deletes its records
//! snapshot_history_days = 30   # snapshots kept for replay ("what could they use then?")
//! decision_days = 365          # decision records shipped by the nodes (0 = forever)
//! identity_event_days = 0      # SCIM requests, edits, break-glass, repairs (0 = forever)
//!
//! [[siem]]                     # optional, repeatable: see `siem` for every setting
//! name = "splunk"
//! kind = "http"                # or "syslog" (address = "host:port", tls = { ca = "…" })
//! url = "https://siem.example.com/ingest"
//!
//! [[sources]]
//! name = "okta"
//! [sources.oidc]
//! issuer = "https://example.okta.com"
//! audiences = ["portcullis"]
//! algorithms = ["RS256"]
//! principal_claim = "email"    # `email` ↔ userName (default) or `sub` ↔ externalId
//! # tenant_claim = "tid"       # federation: unprovisioned users of admitted partner tenants
//! # one of: jwks_file = "okta.jwks.json" / jwks_uri = "https://…" / neither: discovery
//! ```
//!
//! Relative paths are resolved against the directory of the configuration file.

use portcullis_shared::snapshot::{JwtAlgorithm, PrincipalClaim};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    policy_dir: PathBuf,
    bindings_file: Option<PathBuf>,
    #[serde(default)]
    listen: Listen,
    #[serde(default)]
    admin: AdminConfig,
    #[serde(default)]
    nodes: NodesConfig,
    #[serde(default)]
    compile: CompileConfig,
    #[serde(default)]
    audit: AuditConfig,
    #[serde(default)]
    siem: Vec<crate::siem::SiemConfig>,
    #[serde(default)]
    scim: ScimConfig,
    scim_tls: Option<TlsConfig>,
    #[serde(default)]
    sources: Vec<SourceConfig>,
}

/// TLS for a listener (rustls): a PEM certificate chain and its PEM private key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Listener addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub scim: SocketAddr,
    pub admin: SocketAddr,
    pub grpc: SocketAddr,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            scim: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 8081)),
            grpc: SocketAddr::from(([127, 0, 0, 1], 50051)),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// SHA-256 (hex) of the admin bearer token. Without it the admin API is open to whoever
    /// can reach its listener, so keep that on loopback.
    pub token_sha256: Option<String>,
}

/// Data-plane nodes' access to the snapshot stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesConfig {
    /// SHA-256 (hex) of bearer tokens nodes present on the gRPC stream. Required when the
    /// gRPC listener is not on loopback: snapshots carry the whole directory.
    #[serde(default)]
    pub token_sha256: Vec<String>,
    /// How often (ms) every stream carries a heartbeat with the latest version.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// The Ed25519 signing key file (base64 of the 32-byte seed); default
    /// `<data_dir>/signing.key`, created when missing.
    pub signing_key: Option<PathBuf>,
    /// mTLS for the snapshot listener: a node's identity is then its certificate.
    pub tls: Option<NodesTls>,
}

/// TLS for the snapshot listener, with required client certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Nodes present certificates issued by this CA, naming their `node_id` as a DNS
    /// subjectAltName.
    pub client_ca: PathBuf,
}

fn default_heartbeat_ms() -> u64 {
    1000
}

impl Default for NodesConfig {
    fn default() -> Self {
        Self {
            token_sha256: Vec::new(),
            heartbeat_ms: default_heartbeat_ms(),
            signing_key: None,
            tls: None,
        }
    }
}

/// SCIM service limits, advertised in `/ServiceProviderConfig`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// Most resources in one list page (`filter.maxResults`).
    #[serde(default = "default_max_page")]
    pub max_page: usize,
    /// Most resources a filter may have to examine; beyond it the answer is 400 `tooMany`.
    #[serde(default = "default_max_scan")]
    pub max_scan: usize,
    /// Bulk limits (`bulk.maxOperations`, `bulk.maxPayloadSize`).
    #[serde(default = "default_bulk_ops")]
    pub bulk_max_operations: usize,
    #[serde(default = "default_bulk_payload")]
    pub bulk_max_payload_bytes: usize,
    /// Requests per second each source may make (token bucket); beyond it 429 with
    /// `Retry-After`. 0 disables the limit.
    #[serde(default = "default_rate")]
    pub rate_per_second: u32,
    /// Burst allowance of the token bucket.
    #[serde(default = "default_burst")]
    pub rate_burst: u32,
}

fn default_max_page() -> usize {
    1000
}
fn default_max_scan() -> usize {
    200_000
}
fn default_bulk_ops() -> usize {
    1000
}
fn default_bulk_payload() -> usize {
    4 << 20
}
fn default_rate() -> u32 {
    500
}
fn default_burst() -> u32 {
    1000
}

impl Default for ScimConfig {
    fn default() -> Self {
        Self {
            max_page: default_max_page(),
            max_scan: default_max_scan(),
            bulk_max_operations: default_bulk_ops(),
            bulk_max_payload_bytes: default_bulk_payload(),
            rate_per_second: default_rate(),
            rate_burst: default_burst(),
        }
    }
}

/// A custom User extension schema a source sends (RFC 7643 §3.3), for example a clearance
/// level or an ethical-wall side. Served in `/Schemas`, validated on input, and carried into
/// snapshots as principal attributes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionConfig {
    /// The schema URN, e.g. `urn:example:params:scim:schemas:extension:acme:2.0:User`.
    pub urn: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub attributes: Vec<ExtensionAttribute>,
}

/// One attribute of a custom extension.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionAttribute {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ExtensionType,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default)]
    pub canonical_values: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// The simple SCIM types an extension attribute may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExtensionType {
    String,
    Boolean,
    Integer,
    Decimal,
    DateTime,
    Reference,
}

/// How long the audit trail keeps each kind of record, in days (0 keeps it forever).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Past snapshots kept for replay.
    #[serde(default = "default_history_days")]
    pub snapshot_history_days: u32,
    /// Decision records shipped by the nodes.
    #[serde(default = "default_decision_days")]
    pub decision_days: u32,
    /// Identity events (SCIM requests, binding and policy edits, break-glass, repairs).
    #[serde(default)]
    pub identity_event_days: u32,
}

fn default_history_days() -> u32 {
    30
}

fn default_decision_days() -> u32 {
    365
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            snapshot_history_days: default_history_days(),
            decision_days: default_decision_days(),
            identity_event_days: 0,
        }
    }
}

/// Days as a duration (0 stays 0).
pub fn days(n: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(n) * 86_400)
}

/// Snapshot compilation tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileConfig {
    /// How many past snapshots the store keeps (at least 1).
    #[serde(default = "default_keep")]
    pub keep_snapshots: u32,
    /// How many deltas the store keeps (at least 1): a node this many versions behind still
    /// resumes with a delta.
    #[serde(default = "default_keep_deltas")]
    pub keep_deltas: u32,
    /// A full snapshot is stored at least every this many versions, bounding how many deltas
    /// a restart replays.
    #[serde(default = "default_full_every")]
    pub full_every: u32,
}

fn default_keep() -> u32 {
    20
}

fn default_keep_deltas() -> u32 {
    4096
}

fn default_full_every() -> u32 {
    256
}

impl Default for CompileConfig {
    fn default() -> Self {
        Self {
            keep_snapshots: default_keep(),
            keep_deltas: default_keep_deltas(),
            full_every: default_full_every(),
        }
    }
}

/// One identity source: an IdP tenant pushing SCIM to `/scim/v2/{name}/` and issuing tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    /// SHA-256 (hex) of SCIM bearer tokens declared in configuration, in addition to those
    /// created with `portcullis-cp scim-token create`.
    #[serde(default)]
    pub scim_token_sha256: Vec<String>,
    pub oidc: Option<OidcConfig>,
    /// Custom User extension schemas this source sends.
    #[serde(default)]
    pub extensions: Vec<ExtensionConfig>,
    /// PEM CA certificate(s): when set, this source's SCIM requests must also present a client
    /// certificate issued by one of them (mTLS; needs `[scim_tls]`).
    pub client_ca: Option<PathBuf>,
}

/// The OIDC issuer whose tokens name this source's users.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    pub audiences: Vec<String>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default)]
    pub principal_claim: ClaimName,
    /// A local JWKS file (re-read on every refresh).
    pub jwks_file: Option<PathBuf>,
    /// The issuer's JWKS URL; without it and without `jwks_file`, discovery is used.
    pub jwks_uri: Option<String>,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u32,
    /// With `principal_claim = "email"`, require `email_verified: true` in tokens (default).
    /// Turn off only for an issuer that never lets users change their email.
    #[serde(default = "default_true")]
    pub require_email_verified: bool,
    /// How often keys are re-fetched, seconds.
    #[serde(default = "default_refresh")]
    pub refresh_secs: u64,
    /// Federation: the claim naming a token holder's home tenant (`tid` for Entra ID). A
    /// token from this issuer for someone the source has not provisioned is then a partner
    /// principal, if the bindings admit that tenant (`[[partners]]`).
    pub tenant_claim: Option<String>,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}

fn default_true() -> bool {
    true
}

fn default_leeway() -> u32 {
    60
}

fn default_refresh() -> u64 {
    300
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClaimName {
    #[default]
    Email,
    Sub,
}

impl ClaimName {
    pub fn mapping(self) -> PrincipalClaim {
        match self {
            Self::Email => PrincipalClaim::EmailToUserName,
            Self::Sub => PrincipalClaim::SubToExternalId,
        }
    }
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    File(PathBuf),
    Uri(String),
    Discovery,
}

/// A loaded, checked configuration with absolute paths.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub data_dir: PathBuf,
    pub policy_dir: PathBuf,
    /// Seeds the first bindings version (see [`crate::bindings`]); later edits go through
    /// the admin API.
    pub bindings_file: Option<PathBuf>,
    pub listen: Listen,
    pub admin: AdminConfig,
    pub nodes: NodesConfig,
    pub compile: CompileConfig,
    pub audit: AuditConfig,
    /// SIEM sinks (see [`crate::siem`]).
    pub siem: Vec<crate::siem::SiemConfig>,
    pub scim: ScimConfig,
    pub scim_tls: Option<TlsConfig>,
    pub sources: Vec<SourceConfig>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as if read from `path` (which anchors relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };

        let mut siem = raw.siem;
        let mut sinks = std::collections::HashSet::new();
        for sink in &mut siem {
            if let Some(why) = sink.problem() {
                return Err(invalid(format!("[[siem]] {:?}: {why}", sink.name)));
            }
            if !sinks.insert(sink.name.clone()) {
                return Err(invalid(format!(
                    "[[siem]] name {:?} is used twice",
                    sink.name
                )));
            }
            if let Some(tls) = &mut sink.tls {
                tls.ca = abs(&tls.ca);
            }
        }

        let mut sources = raw.sources;
        let mut seen = std::collections::HashSet::new();
        for s in &mut sources {
            if s.name == crate::bindings::DYNAMIC_SOURCE
                || s.name == crate::bindings::PARTNER_SOURCE
                || s.name == crate::service_accounts::SOURCE
            {
                return Err(invalid(format!(
                    "source name {:?} is reserved for dynamic and partner groups and service accounts",
                    s.name
                )));
            }
            if !valid_source_name(&s.name) {
                return Err(invalid(format!(
                    "source name {:?} must be 1-64 characters of a-z, 0-9, '-' or '_'",
                    s.name
                )));
            }
            if !seen.insert(s.name.clone()) {
                return Err(invalid(format!("source {:?} is declared twice", s.name)));
            }
            for h in &s.scim_token_sha256 {
                if portcullis_shared::Hash32::from_hex(h).is_none() {
                    return Err(invalid(format!(
                        "source {:?}: scim_token_sha256 entries must be 64 hex digits",
                        s.name
                    )));
                }
            }
            if let Some(o) = &mut s.oidc {
                if o.audiences.is_empty() {
                    return Err(invalid(format!(
                        "source {:?}: oidc.audiences must name at least one audience",
                        s.name
                    )));
                }
                if o.algorithms.is_empty() {
                    return Err(invalid(format!(
                        "source {:?}: oidc.algorithms must not be empty",
                        s.name
                    )));
                }
                for a in &o.algorithms {
                    if JwtAlgorithm::parse(a).is_none() {
                        return Err(invalid(format!(
                            "source {:?}: algorithm {a:?} is not accepted (use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)",
                            s.name
                        )));
                    }
                }
                if o.jwks_file.is_some() && o.jwks_uri.is_some() {
                    return Err(invalid(format!(
                        "source {:?}: set jwks_file or jwks_uri, not both",
                        s.name
                    )));
                }
                if let Some(f) = &o.jwks_file {
                    o.jwks_file = Some(abs(f));
                }
            }
        }
        validate_extensions(&sources).map_err(invalid)?;
        for s in &mut sources {
            if let Some(ca) = &s.client_ca {
                if raw.scim_tls.is_none() {
                    return Err(invalid(format!(
                        "source {:?} sets client_ca, which needs [scim_tls] (mTLS is TLS)",
                        s.name
                    )));
                }
                s.client_ca = Some(abs(ca));
            }
        }
        if raw.scim.max_page == 0 || raw.scim.bulk_max_operations == 0 {
            return Err(invalid(
                "scim.max_page and scim.bulk_max_operations must be positive".into(),
            ));
        }
        let mut issuers = std::collections::HashMap::new();
        for s in &sources {
            if let Some(o) = &s.oidc
                && let Some(other) = issuers.insert(o.issuer.clone(), s.name.clone())
            {
                return Err(invalid(format!(
                    "sources {other:?} and {:?} name the same issuer {:?}: a token could not tell which directory it belongs to",
                    s.name, o.issuer
                )));
            }
        }
        if let Some(h) = &raw.admin.token_sha256
            && portcullis_shared::Hash32::from_hex(h).is_none()
        {
            return Err(invalid("admin.token_sha256 must be 64 hex digits".into()));
        }
        if raw
            .nodes
            .token_sha256
            .iter()
            .any(|h| portcullis_shared::Hash32::from_hex(h).is_none())
        {
            return Err(invalid(
                "nodes.token_sha256 entries must be 64 hex digits".into(),
            ));
        }
        if raw.admin.token_sha256.is_none() && !raw.listen.admin.ip().is_loopback() {
            return Err(invalid(format!(
                "the admin listener {} is not on loopback: set admin.token_sha256",
                raw.listen.admin
            )));
        }
        if !(50..=60_000).contains(&raw.nodes.heartbeat_ms) {
            return Err(invalid(
                "nodes.heartbeat_ms must be between 50 and 60000".into(),
            ));
        }
        if raw.compile.full_every == 0 {
            return Err(invalid("compile.full_every must be at least 1".into()));
        }
        if raw.compile.keep_deltas < raw.compile.full_every {
            return Err(invalid(format!(
                "compile.keep_deltas ({}) must be at least compile.full_every ({}): a restart rebuilds the latest snapshot from the last full one and the deltas after it",
                raw.compile.keep_deltas, raw.compile.full_every
            )));
        }
        if raw.nodes.token_sha256.is_empty()
            && raw.nodes.tls.is_none()
            && !raw.listen.grpc.ip().is_loopback()
        {
            return Err(invalid(format!(
                "the snapshot listener {} is not on loopback: set nodes.token_sha256 or [nodes.tls] (snapshots carry the whole directory)",
                raw.listen.grpc
            )));
        }

        Ok(Self {
            path: path.to_owned(),
            data_dir: abs(&raw.data_dir),
            policy_dir: abs(&raw.policy_dir),
            bindings_file: raw.bindings_file.as_deref().map(abs),
            listen: raw.listen,
            admin: raw.admin,
            nodes: NodesConfig {
                signing_key: Some(
                    raw.nodes
                        .signing_key
                        .as_deref()
                        .map(abs)
                        .unwrap_or_else(|| abs(&raw.data_dir).join("signing.key")),
                ),
                tls: raw.nodes.tls.as_ref().map(|t| NodesTls {
                    cert: abs(&t.cert),
                    key: abs(&t.key),
                    client_ca: abs(&t.client_ca),
                }),
                ..raw.nodes
            },
            compile: raw.compile,
            audit: raw.audit,
            siem,
            scim: raw.scim,
            scim_tls: raw.scim_tls.map(|t| TlsConfig {
                cert: abs(&t.cert),
                key: abs(&t.key),
            }),
            sources,
        })
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("portcullis.db")
    }

    /// The decision records the nodes ship (see [`crate::store::DecisionStore`]).
    pub fn decisions_path(&self) -> PathBuf {
        self.data_dir.join("decisions.db")
    }
}

impl OidcConfig {
    pub fn jwks_location(&self) -> JwksLocation {
        match (&self.jwks_file, &self.jwks_uri) {
            (Some(f), _) => JwksLocation::File(f.clone()),
            (None, Some(u)) => JwksLocation::Uri(u.clone()),
            (None, None) => JwksLocation::Discovery,
        }
    }

    /// The pinned algorithms (validated at load).
    pub fn algorithms(&self) -> Vec<JwtAlgorithm> {
        self.algorithms
            .iter()
            .filter_map(|a| JwtAlgorithm::parse(a))
            .collect()
    }
}

/// Extension URNs must be URNs and not the standard schemas; attribute names must be SCIM
/// attribute names, unique within their extension; an attribute name used by several
/// extensions must have one type everywhere (it becomes one principal attribute).
fn validate_extensions(sources: &[SourceConfig]) -> Result<(), String> {
    const RESERVED: [&str; 3] = [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:core:2.0:Group",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    ];
    let mut types: std::collections::HashMap<String, (String, ExtensionType, bool)> =
        Default::default();
    for s in sources {
        let mut urns = std::collections::HashSet::new();
        for e in &s.extensions {
            if !e.urn.to_ascii_lowercase().starts_with("urn:") || e.urn.ends_with(':') {
                return Err(format!(
                    "source {:?}: extension URN {:?} must be a URN",
                    s.name, e.urn
                ));
            }
            if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&e.urn)) {
                return Err(format!(
                    "source {:?}: {:?} is a standard schema, not an extension",
                    s.name, e.urn
                ));
            }
            if !urns.insert(e.urn.to_ascii_lowercase()) {
                return Err(format!(
                    "source {:?}: extension {:?} declared twice",
                    s.name, e.urn
                ));
            }
            let mut names = std::collections::HashSet::new();
            for a in &e.attributes {
                let valid = a
                    .name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                    && a.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid {
                    return Err(format!(
                        "extension {:?}: {:?} is not a valid attribute name",
                        e.urn, a.name
                    ));
                }
                if !names.insert(a.name.to_ascii_lowercase()) {
                    return Err(format!(
                        "extension {:?}: attribute {:?} declared twice",
                        e.urn, a.name
                    ));
                }
                if portcullis_shared::schema::BUILT_IN_USER_ATTRIBUTES
                    .iter()
                    .any(|b| b.eq_ignore_ascii_case(&a.name))
                {
                    return Err(format!(
                        "extension {:?}: attribute {:?} would shadow the built-in principal \
                         attribute of that name",
                        e.urn, a.name
                    ));
                }
                let shape = (a.name.clone(), a.ty, a.multi_valued);
                if let Some(prev) = types.insert(a.name.to_ascii_lowercase(), shape.clone())
                    && prev != shape
                {
                    return Err(format!(
                        "attribute {:?} is declared with different spellings or types by \
                         different extensions (it becomes one principal attribute)",
                        a.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Source names appear in URLs and logs: keep them plain.
pub fn valid_source_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "data"
policy_dir = "/etc/portcullis/policies"
[listen]
scim = "127.0.0.1:1"
admin = "127.0.0.1:2"
grpc = "127.0.0.1:3"
[[sources]]
name = "okta"
[sources.oidc]
issuer = "https://idp.example"
audiences = ["portcullis"]
algorithms = ["RS256", "ES256"]
principal_claim = "sub"
jwks_file = "keys/okta.json"
"#;

    #[test]
    fn paths_resolve_against_the_config_directory() {
        let c = Config::parse(Path::new("/srv/cp/cp.toml"), GOOD).expect("valid");
        assert_eq!(c.data_dir, Path::new("/srv/cp/data"));
        assert_eq!(c.policy_dir, Path::new("/etc/portcullis/policies"));
        let o = c.sources[0].oidc.as_ref().expect("oidc");
        assert_eq!(
            o.jwks_location(),
            JwksLocation::File("/srv/cp/keys/okta.json".into())
        );
        assert_eq!(o.principal_claim, ClaimName::Sub);
        assert_eq!(o.algorithms().len(), 2);
    }

    #[test]
    fn bad_configs_say_why() {
        let p = Path::new("/x/cp.toml");
        let e = Config::parse(p, &GOOD.replace("\"ES256\"", "\"HS256\"")).unwrap_err();
        assert!(e.to_string().contains("HS256"), "{e}");
        let e =
            Config::parse(p, &GOOD.replace("name = \"okta\"", "name = \"Okta Corp\"")).unwrap_err();
        assert!(e.to_string().contains("source name"), "{e}");
        let e = Config::parse(p, &GOOD.replace("[listen]", "[listen]\nbogus = 1")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let same_issuer = format!(
            "{GOOD}\n[[sources]]\nname = \"okta2\"\n[sources.oidc]\nissuer = \"https://idp.example\"\naudiences = [\"x\"]\n"
        );
        assert!(
            Config::parse(p, &same_issuer)
                .unwrap_err()
                .to_string()
                .contains("same issuer")
        );
        let open_admin = GOOD.replace("admin = \"127.0.0.1:2\"", "admin = \"0.0.0.0:2\"");
        assert!(
            Config::parse(p, &open_admin)
                .unwrap_err()
                .to_string()
                .contains("admin.token_sha256")
        );
        let open_grpc = GOOD.replace("grpc = \"127.0.0.1:3\"", "grpc = \"0.0.0.0:3\"");
        assert!(
            Config::parse(p, &open_grpc)
                .unwrap_err()
                .to_string()
                .contains("nodes.token_sha256")
        );
        for reserved in ["dynamic", "partner", "service-accounts"] {
            let e = Config::parse(
                p,
                &GOOD.replace("name = \"okta\"", &format!("name = \"{reserved}\"")),
            )
            .unwrap_err();
            assert!(e.to_string().contains("reserved"), "{reserved}: {e}");
        }
        let twice = format!("{GOOD}\n[[sources]]\nname = \"okta\"\n");
        assert!(
            Config::parse(p, &twice)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }

    #[test]
    fn extension_attributes_are_checked() {
        let p = Path::new("/x/cp.toml");
        let ext = |source: &str, urn: &str, attr: &str, ty: &str| {
            format!(
                "\n[[sources]]\nname = \"{source}\"\n[[sources.extensions]]\nurn = \"{urn}\"\n\
                 name = \"X\"\n[[sources.extensions.attributes]]\nname = \"{attr}\"\ntype = \"{ty}\"\n"
            )
        };
        const URN: &str = "urn:example:ext:1.0:User";
        let ok = format!("{GOOD}{}", ext("a", URN, "clearance", "integer"));
        assert!(Config::parse(p, &ok).is_ok());
        let err = |text: String| Config::parse(p, &text).unwrap_err().to_string();
        assert!(err(format!("{GOOD}{}", ext("a", URN, "Department", "string"))).contains("shadow"));
        assert!(err(format!("{GOOD}{}", ext("a", "acme", "x", "string"))).contains("URN"));
        assert!(err(format!("{GOOD}{}", ext("a", URN, "9lives", "string"))).contains("valid"));
        let clash = format!(
            "{GOOD}{}{}",
            ext("a", URN, "clearance", "integer"),
            ext("b", URN, "Clearance", "integer")
        );
        assert!(err(clash).contains("spellings or types"));
        let retyped = format!(
            "{GOOD}{}{}",
            ext("a", URN, "clearance", "integer"),
            ext("b", URN, "clearance", "string")
        );
        assert!(err(retyped).contains("spellings or types"));
    }

    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/controlplane.toml"
        ));
        let c = Config::load(path).expect("deploy/examples/controlplane.toml is valid");
        assert_eq!(c.sources.len(), 2);
        let tls = c.nodes.tls.as_ref().expect("mTLS for nodes");
        assert_eq!(tls.client_ca, Path::new("/etc/portcullis/tls/nodes-ca.pem"));
        assert_eq!(
            (
                c.nodes.heartbeat_ms,
                c.compile.keep_deltas,
                c.compile.full_every
            ),
            (1000, 4096, 256)
        );
        assert_eq!(
            c.sources[1].oidc.as_ref().map(|o| o.jwks_location()),
            Some(JwksLocation::Uri(
                "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/discovery/v2.0/keys".into()
            ))
        );
    }
}
