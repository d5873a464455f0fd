//! The control plane's TOML configuration.
//!
//! ```toml
//! data_dir = "data"            # SQLite database `portcullis.db` lives here
//! policy_dir = "policies"      # *.cedar files
//!
//! [listen]
//! scim = "127.0.0.1:8080"      # what IdPs push to: /scim/v2/{source}/...
//! admin = "127.0.0.1:8081"     # admin API and /metrics; keep it private
//! grpc = "127.0.0.1:50051"     # snapshot stream for data-plane nodes
//!
//! [admin]
//! token_sha256 = "…"           # optional: require `Authorization: Bearer <token>`
//!
//! [[sources]]
//! name = "okta"
//! [sources.oidc]
//! issuer = "https://example.okta.com"
//! audiences = ["portcullis"]
//! algorithms = ["RS256"]
//! principal_claim = "email"    # `email` ↔ userName (default) or `sub` ↔ externalId
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
    #[serde(default)]
    listen: Listen,
    #[serde(default)]
    admin: AdminConfig,
    #[serde(default)]
    nodes: NodesConfig,
    #[serde(default)]
    compile: CompileConfig,
    #[serde(default)]
    sources: Vec<SourceConfig>,
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesConfig {
    /// SHA-256 (hex) of bearer tokens nodes present on the gRPC stream. Required when the
    /// gRPC listener is not on loopback: snapshots carry the whole directory.
    #[serde(default)]
    pub token_sha256: Vec<String>,
}

/// Snapshot compilation tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileConfig {
    /// How many past snapshots the store keeps (at least 1).
    #[serde(default = "default_keep")]
    pub keep_snapshots: u32,
}

fn default_keep() -> u32 {
    20
}

impl Default for CompileConfig {
    fn default() -> Self {
        Self {
            keep_snapshots: default_keep(),
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
    pub listen: Listen,
    pub admin: AdminConfig,
    pub nodes: NodesConfig,
    pub compile: CompileConfig,
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

        let mut sources = raw.sources;
        let mut seen = std::collections::HashSet::new();
        for s in &mut sources {
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
        if raw.nodes.token_sha256.is_empty() && !raw.listen.grpc.ip().is_loopback() {
            return Err(invalid(format!(
                "the snapshot listener {} is not on loopback: set nodes.token_sha256 (snapshots carry the whole directory)",
                raw.listen.grpc
            )));
        }

        Ok(Self {
            path: path.to_owned(),
            data_dir: abs(&raw.data_dir),
            policy_dir: abs(&raw.policy_dir),
            listen: raw.listen,
            admin: raw.admin,
            nodes: raw.nodes,
            compile: raw.compile,
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
        let twice = format!("{GOOD}\n[[sources]]\nname = \"okta\"\n");
        assert!(
            Config::parse(p, &twice)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }

    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/controlplane.toml"
        ));
        let c = Config::load(path).expect("deploy/examples/controlplane.toml is valid");
        assert_eq!(c.sources.len(), 2);
        assert_eq!(
            c.sources[1].oidc.as_ref().map(|o| o.jwks_location()),
            Some(JwksLocation::Uri(
                "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/discovery/v2.0/keys".into()
            ))
        );
    }
}
