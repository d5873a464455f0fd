//! The data plane's TOML configuration.
//!
//! ```toml
//! node_id = "edge-1"
//! state_dir = "state"                      # last-known-good snapshot
//! control_plane = "http://127.0.0.1:50051" # gRPC snapshot service
//! control_plane_keys = ["…"]               # Ed25519 public keys (base64) whose signed
//!                                          # snapshots this node accepts; or
//!                                          # control_plane_keys_file = "signing.pub"
//!
//! [control_plane_tls]                      # mTLS to the control plane (https:// URL)
//! ca = "cp-ca.pem"                         # CA of the control plane's certificate
//! cert = "node.pem"                        # this node's certificate: node_id as DNS SAN
//! key = "node-key.pem"
//! server_name = "portcullis-cp.internal"   # optional: the name to verify (default: URL host)
//! threads = 2
//! environment = "prod"                     # optional: role bindings may hold only here
//!
//! [listen]
//! proxy = "127.0.0.1:8000"
//! admin = "127.0.0.1:9000"                 # /metrics, /healthz, /readyz, /status
//!
//! [limits]
//! max_body_bytes = 4194304                 # larger bodies: 413
//! body_read_secs = 30                      # the whole body within this (else 408)
//! header_read_secs = 10                    # a request's headers within this of its first
//!                                          # byte (else the connection is closed; 0: off)
//!
//! [records]                                # decision records under <state_dir>/records
//! queue = 1024                             # records waiting for the writer (then: spill)
//! segment_bytes = 16777216                 # rotate segments at this size
//! max_bytes = 1073741824                   # past this, the oldest segment is deleted
//!
//! [[routes]]
//! prefix = "/openai"                       # clients use base URL http://edge/openai/v1
//! max_staleness_ms = 30000                 # optional: fail closed (503) when the control
//!                                          # plane has been silent this long
//! kind = "openai"                          # openai | openai-compatible | azure | gemini |
//!                                          # anthropic | mcp
//! name = "openai"                          # Provider::"openai" (or McpServer::"<name>")
//! tenant = "acme"                          # optional: role bindings may hold only here
//! parse_body = "always"                    # or "when_policies_read_it": skip reading a
//!                                          # model call's JSON when no policy reads the
//!                                          # model or context.stream (records then lack
//!                                          # the model)
//! upstream = "https://api.openai.com"
//! [routes.credential]                      # injected upstream; never sent by clients
//! header = "authorization"
//! prefix = "Bearer "
//! value_env = "OPENAI_API_KEY"             # or: value = "…"
//! [routes.oauth]                           # optional, MCP routes: the edge is the OAuth
//!                                          # resource server (RFC 9728)
//! resource = "https://edge.example.com/mcp/crm"   # this resource's identifier; tokens
//!                                          # must name it in `aud`
//! authorization_servers = ["https://login.example.com"]
//! scopes_supported = ["crm"]
//! required_scopes = ["crm"]                # missing from the token: 403 insufficient_scope
//! ```

use portcullis_shared::signing::TrustedKeys;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node_id: String,
    state_dir: PathBuf,
    control_plane: String,
    control_plane_token: Option<String>,
    control_plane_token_env: Option<String>,
    #[serde(default)]
    control_plane_keys: Vec<String>,
    control_plane_keys_file: Option<PathBuf>,
    control_plane_tls: Option<ControlPlaneTls>,
    #[serde(default = "default_threads")]
    threads: usize,
    environment: Option<String>,
    listen: Listen,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    records: crate::records::RecordsConfig,
}

fn default_threads() -> usize {
    2
}

/// mTLS to the control plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneTls {
    /// The CA that issued the control plane's certificate.
    pub ca: PathBuf,
    /// This node's certificate chain; it must name `node_id` as a DNS subjectAltName.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The name the control plane's certificate is checked against (default: the URL's host).
    pub server_name: Option<String>,
}

/// Listener addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
}

/// Request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body read for classification; larger ones get 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Upstream connect timeout, seconds.
    #[serde(default = "default_connect")]
    pub upstream_connect_secs: u64,
    /// Longest silence from an upstream mid-response, seconds.
    #[serde(default = "default_idle")]
    pub upstream_idle_secs: u64,
    /// The whole request body must arrive within this many seconds of the request (a client
    /// trickling it byte by byte gets 408 and the connection closed).
    #[serde(default = "default_body_read")]
    pub body_read_secs: u64,
    /// A request's header block must arrive within this many seconds of its first byte, else
    /// the connection is closed (see [`crate::headers`]).
    #[serde(default = "default_header_read")]
    pub header_read_secs: u64,
}

fn default_max_body() -> usize {
    4 << 20
}
fn default_connect() -> u64 {
    5
}
fn default_idle() -> u64 {
    300
}
fn default_body_read() -> u64 {
    30
}
fn default_header_read() -> u64 {
    10
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body(),
            body_read_secs: default_body_read(),
            header_read_secs: default_header_read(),
            upstream_connect_secs: default_connect(),
            upstream_idle_secs: default_idle(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: String,
    kind: RawKind,
    name: String,
    upstream: String,
    credential: Option<RawCredential>,
    tenant: Option<String>,
    max_staleness_ms: Option<u64>,
    #[serde(default)]
    parse_body: ParseBody,
    oauth: Option<OAuthResource>,
}

/// The edge as the OAuth resource server for an MCP route (RFC 9728): its metadata is served
/// at `/.well-known/oauth-protected-resource<path of resource>`, a 401 points to it, tokens
/// must name the resource in `aud`, and must carry `required_scopes`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OAuthResource {
    /// The resource identifier (an absolute https or http URL without a fragment).
    pub resource: String,
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// A name for people (`resource_name`).
    pub resource_name: Option<String>,
}

impl OAuthResource {
    /// Where the metadata is served: `/.well-known/oauth-protected-resource` inserted before
    /// the resource's path (RFC 9728 §3.1).
    pub fn metadata_path(&self) -> String {
        let path = url_path(&self.resource);
        format!(
            "/.well-known/oauth-protected-resource{}",
            path.trim_end_matches('/')
        )
    }

    /// The absolute URL of the metadata, for `WWW-Authenticate`.
    pub fn metadata_url(&self) -> String {
        let path = url_path(&self.resource);
        let origin = &self.resource[..self.resource.len() - path.len()];
        format!("{origin}{}", self.metadata_path())
    }

    /// The metadata document.
    pub fn metadata(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !self.scopes_supported.is_empty() {
            v["scopes_supported"] = serde_json::json!(self.scopes_supported);
        }
        if let Some(name) = &self.resource_name {
            v["resource_name"] = serde_json::json!(name);
        }
        v
    }
}

/// The path of an absolute URL (`""` when it has none).
fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => &after_scheme[i..],
        None => "",
    }
}

/// When a model call's JSON body is parsed before deciding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseBody {
    /// Always: the decision record names the model even when no policy reads it.
    #[default]
    Always,
    /// Only when some policy for the operation reads the resource (the model) or
    /// `context.stream`; otherwise the body is forwarded unread and the record's model is
    /// empty. The policy set's needs come with each snapshot.
    WhenPoliciesReadIt,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    header: String,
    #[serde(default)]
    prefix: String,
    value: Option<String>,
    value_env: Option<String>,
}

/// A route's `kind` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RawKind {
    Openai,
    /// An API speaking OpenAI's protocol that is not OpenAI (GitHub Copilot-style gateways,
    /// self-hosted vLLM, Ollama or LiteLLM): handled as `openai`, but its `Provider` has
    /// `kind == "openai-compatible"`, so policies can tell them apart.
    OpenaiCompatible,
    Azure,
    Gemini,
    Anthropic,
    Mcp,
}

impl RawKind {
    /// The protocol, and the provider kind policies see.
    fn split(self) -> (RouteKind, &'static str) {
        let kind = match self {
            Self::OpenaiCompatible => return (RouteKind::Openai, "openai-compatible"),
            Self::Openai => RouteKind::Openai,
            Self::Azure => RouteKind::Azure,
            Self::Gemini => RouteKind::Gemini,
            Self::Anthropic => RouteKind::Anthropic,
            Self::Mcp => RouteKind::Mcp,
        };
        (kind, kind.as_str())
    }
}

/// The API family a route speaks: decides how requests are classified and how errors look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Openai,
    /// Azure OpenAI: OpenAI's protocol, deployments in the path, `api-key` headers.
    Azure,
    /// Google Gemini: the model and the operation in the path (`models/{m}:generateContent`),
    /// `x-goog-api-key` headers.
    Gemini,
    Anthropic,
    Mcp,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Azure => "azure",
            Self::Gemini => "gemini",
            Self::Anthropic => "anthropic",
            Self::Mcp => "mcp",
        }
    }
}

/// Where a route forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix on the upstream, without a trailing slash (may be empty).
    pub base_path: String,
}

impl Upstream {
    /// Parses `http(s)://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "upstream {url:?} must start with http:// or https://"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("upstream {url:?} has no host"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("upstream {url:?} has an invalid port"))?;
                (
                    h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    port,
                )
            }
            _ => (authority.to_owned(), if tls { 443 } else { 80 }),
        };
        Ok(Self {
            tls,
            host,
            port,
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// An upstream credential, injected on every forwarded request.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub header: http::HeaderName,
    pub value: http::HeaderValue,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}: <redacted>)", self.header)
    }
}

/// A secret string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: String,
    /// The prefix again, shared: what metrics and logs label the route with.
    pub label: std::sync::Arc<str>,
    pub kind: RouteKind,
    /// The provider's kind as policies see it (`Provider`'s `kind`, `Model`s' records): the
    /// protocol's name, or `openai-compatible`.
    pub provider_kind: &'static str,
    pub name: String,
    pub upstream: Upstream,
    pub credential: Option<Credential>,
    /// The tenant requests on this route belong to (for conditional role bindings).
    pub tenant: Option<std::sync::Arc<str>>,
    /// The node's environment, copied here so classification has it at hand.
    pub environment: Option<std::sync::Arc<str>>,
    /// Requests fail closed (503) when nothing was heard from the control plane for longer.
    pub max_staleness_ms: Option<u64>,
    pub parse_body: ParseBody,
    /// The edge as this MCP route's OAuth resource server.
    pub oauth: Option<OAuthResource>,
}

/// A loaded, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_id: String,
    pub state_dir: PathBuf,
    pub control_plane: String,
    /// Bearer token presented to the control plane's snapshot service (`[nodes]` token).
    pub control_plane_token: Option<Secret>,
    /// The keys whose signatures on snapshots and deltas this node accepts.
    pub trusted_keys: TrustedKeys,
    /// mTLS to the control plane (paths absolute).
    pub control_plane_tls: Option<ControlPlaneTls>,
    pub threads: usize,
    /// The environment this node serves (`prod`, `staging`, …).
    pub environment: Option<String>,
    pub listen: Listen,
    pub limits: Limits,
    pub routes: Vec<Route>,
    /// Decision records: written under `<state_dir>/records`.
    pub records: crate::records::RecordsConfig,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text, |k| std::env::var(k).ok())
    }

    /// Parses `text` as read from `path`; `env` looks up credential environment variables.
    pub fn parse(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if raw.node_id.is_empty() || raw.node_id.len() > 128 {
            return Err(invalid("node_id must be 1-128 characters".into()));
        }
        if !raw.control_plane.starts_with("http://") && !raw.control_plane.starts_with("https://") {
            return Err(invalid(
                "control_plane must be an http:// or https:// URL".into(),
            ));
        }
        let control_plane_token = match (raw.control_plane_token, raw.control_plane_token_env) {
            (Some(t), None) => Some(Secret(t)),
            (None, Some(var)) => Some(Secret(env(&var).ok_or_else(|| {
                invalid(format!(
                    "environment variable {var} (the control-plane token) is not set"
                ))
            })?)),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "set control_plane_token or control_plane_token_env, not both".into(),
                ));
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let state_dir = if raw.state_dir.is_absolute() {
            raw.state_dir
        } else {
            base.join(raw.state_dir)
        };

        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let control_plane_tls = raw.control_plane_tls.as_ref().map(|t| ControlPlaneTls {
            ca: abs(&t.ca),
            cert: abs(&t.cert),
            key: abs(&t.key),
            server_name: t.server_name.clone(),
        });
        match (
            raw.control_plane.starts_with("https://"),
            &control_plane_tls,
        ) {
            (true, None) => {
                return Err(invalid(
                    "an https:// control_plane needs [control_plane_tls] (ca, cert, key)".into(),
                ));
            }
            (false, Some(_)) => {
                return Err(invalid(
                    "[control_plane_tls] needs an https:// control_plane URL".into(),
                ));
            }
            _ => {}
        }
        let mut keys = raw.control_plane_keys.clone();
        if let Some(file) = &raw.control_plane_keys_file {
            let file = if file.is_absolute() {
                file.clone()
            } else {
                base.join(file)
            };
            let text = std::fs::read_to_string(&file)
                .map_err(|e| invalid(format!("control_plane_keys_file {}: {e}", file.display())))?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        if keys.is_empty() {
            return Err(invalid(
                "set control_plane_keys (or control_plane_keys_file): the control plane's public signing keys; it writes its key to <data_dir>/signing.pub".into(),
            ));
        }
        let trusted_keys = TrustedKeys::from_base64(keys.iter().map(String::as_str))
            .map_err(|e| invalid(format!("control_plane_keys: {e}")))?;

        let mut routes = Vec::new();
        for r in raw.routes {
            if !r.prefix.starts_with('/') || (r.prefix.len() > 1 && r.prefix.ends_with('/')) {
                return Err(invalid(format!(
                    "route prefix {:?} must start with '/' and not end with one",
                    r.prefix
                )));
            }
            if routes.iter().any(|x: &Route| x.prefix == r.prefix) {
                return Err(invalid(format!(
                    "route prefix {:?} is declared twice",
                    r.prefix
                )));
            }
            if r.name.is_empty() {
                return Err(invalid(format!("route {:?} needs a name", r.prefix)));
            }
            let upstream = Upstream::parse(&r.upstream).map_err(invalid)?;
            if let Some(o) = &r.oauth {
                if r.kind != RawKind::Mcp {
                    return Err(invalid(format!(
                        "route {:?}: [routes.oauth] is for MCP routes",
                        r.prefix
                    )));
                }
                let scheme_ok =
                    o.resource.starts_with("https://") || o.resource.starts_with("http://");
                if !scheme_ok || o.resource.contains('#') || o.resource.contains('?') {
                    return Err(invalid(format!(
                        "route {:?}: oauth.resource must be an absolute http(s) URL without query or fragment",
                        r.prefix
                    )));
                }
                if o.authorization_servers.is_empty() {
                    return Err(invalid(format!(
                        "route {:?}: oauth.authorization_servers must name at least one",
                        r.prefix
                    )));
                }
            }
            let credential = match r.credential {
                None => None,
                Some(c) => {
                    let secret = match (c.value, c.value_env) {
                        (Some(v), None) => v,
                        (None, Some(var)) => env(&var).ok_or_else(|| {
                            invalid(format!(
                                "route {:?}: environment variable {var} (its upstream credential) is not set",
                                r.prefix
                            ))
                        })?,
                        _ => {
                            return Err(invalid(format!(
                                "route {:?}: credential needs exactly one of value or value_env",
                                r.prefix
                            )));
                        }
                    };
                    let header =
                        http::HeaderName::from_bytes(c.header.as_bytes()).map_err(|_| {
                            invalid(format!(
                                "route {:?}: invalid credential header name",
                                r.prefix
                            ))
                        })?;
                    let mut value = http::HeaderValue::from_str(&format!("{}{}", c.prefix, secret))
                        .map_err(|_| {
                            invalid(format!(
                                "route {:?}: credential is not a valid header value",
                                r.prefix
                            ))
                        })?;
                    value.set_sensitive(true);
                    Some(Credential { header, value })
                }
            };
            let (kind, provider_kind) = r.kind.split();
            routes.push(Route {
                label: r.prefix.as_str().into(),
                prefix: r.prefix,
                kind,
                provider_kind,
                name: r.name,
                upstream,
                credential,
                tenant: r.tenant.map(Into::into),
                environment: raw.environment.as_deref().map(Into::into),
                max_staleness_ms: r.max_staleness_ms,
                parse_body: r.parse_body,
                oauth: r.oauth,
            });
        }
        Ok(Self {
            node_id: raw.node_id,
            state_dir,
            control_plane: raw.control_plane,
            control_plane_token,
            trusted_keys,
            control_plane_tls,
            threads: raw.threads.clamp(1, 256),
            environment: raw.environment,
            listen: raw.listen,
            limits: raw.limits,
            routes,
            records: raw.records,
        })
    }

    /// The route whose prefix matches `path` on a segment boundary, longest first.
    pub fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| {
                path == r.prefix
                    || r.prefix == "/"
                    || (path.starts_with(&r.prefix)
                        && path.as_bytes().get(r.prefix.len()) == Some(&b'/'))
            })
            .max_by_key(|r| r.prefix.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
node_id = "edge-1"
state_dir = "state"
control_plane = "http://127.0.0.1:50051"
control_plane_keys = ["iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w="]
[listen]
proxy = "127.0.0.1:8000"
admin = "127.0.0.1:9000"
[[routes]]
prefix = "/openai"
kind = "openai"
name = "openai"
upstream = "https://api.openai.com"
max_staleness_ms = 30000
[routes.credential]
header = "authorization"
prefix = "Bearer "
value_env = "OPENAI_KEY"
[[routes]]
prefix = "/mcp/crm"
kind = "mcp"
name = "crm"
upstream = "http://127.0.0.1:9100/mcp/"
"#;

    fn env(k: &str) -> Option<String> {
        (k == "OPENAI_KEY").then(|| "sk-test".to_owned())
    }

    #[test]
    fn routes_upstreams_and_credentials() {
        let c = Config::parse(Path::new("/etc/p/dp.toml"), TEXT, env).expect("valid");
        assert_eq!(c.state_dir, Path::new("/etc/p/state"));
        let openai = c.route_for("/openai/v1/chat/completions").expect("route");
        assert_eq!(openai.upstream.authority(), "api.openai.com");
        assert_eq!(openai.upstream.port, 443);
        let cred = openai.credential.as_ref().expect("credential");
        assert_eq!(cred.value, "Bearer sk-test");
        assert!(
            !format!("{cred:?}").contains("sk-test"),
            "credentials never print"
        );
        let mcp = c.route_for("/mcp/crm").expect("route");
        assert_eq!(mcp.upstream.base_path, "/mcp");
        assert_eq!(mcp.upstream.authority(), "127.0.0.1:9100");
        assert!(c.route_for("/openaix/v1").is_none());
        assert!(c.route_for("/mcp/crmx").is_none());
        assert_eq!(openai.max_staleness_ms, Some(30_000));
        assert_eq!(mcp.max_staleness_ms, None);
        assert_eq!(c.trusted_keys.ids().count(), 1);
    }

    #[test]
    fn mtls_needs_https_and_the_reverse() {
        let https = TEXT.replace("http://127.0.0.1:50051", "https://cp.internal:50051");
        let e = Config::parse(Path::new("dp.toml"), &https, env).unwrap_err();
        assert!(e.to_string().contains("[control_plane_tls]"), "{e}");
        let tls = "\n[control_plane_tls]\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n-key.pem\"\n";
        let c = Config::parse(Path::new("/etc/p/dp.toml"), &format!("{https}{tls}"), env)
            .expect("valid");
        let t = c.control_plane_tls.expect("tls");
        assert_eq!(t.ca, Path::new("/etc/p/ca.pem"));
        let e = Config::parse(Path::new("dp.toml"), &format!("{TEXT}{tls}"), env).unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
    }

    #[test]
    fn signing_keys_are_required_and_checked() {
        let without = TEXT.replace(
            "control_plane_keys = [\"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=\"]",
            "",
        );
        let e = Config::parse(Path::new("dp.toml"), &without, env).unwrap_err();
        assert!(e.to_string().contains("control_plane_keys"), "{e}");
        let bad = TEXT.replace("iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=", "c2hvcnQ=");
        let e = Config::parse(Path::new("dp.toml"), &bad, env).unwrap_err();
        assert!(e.to_string().contains("32 bytes"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("signing.pub"),
            "# the control plane's key\niojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=\n",
        )
        .expect("write");
        let from_file = without.replace(
            "[listen]",
            "control_plane_keys_file = \"signing.pub\"\n[listen]",
        );
        let c = Config::parse(&dir.path().join("dp.toml"), &from_file, env).expect("valid");
        assert_eq!(c.trusted_keys.ids().count(), 1);
    }

    #[test]
    fn missing_credentials_fail_loudly() {
        let e = Config::parse(Path::new("dp.toml"), TEXT, |_| None).unwrap_err();
        assert!(e.to_string().contains("OPENAI_KEY"), "{e}");
    }

    #[test]
    fn upstream_urls() {
        assert_eq!(
            Upstream::parse("http://[::1]:8080/v1").expect("ok"),
            Upstream {
                tls: false,
                host: "::1".into(),
                port: 8080,
                base_path: "/v1".into()
            }
        );
        assert!(Upstream::parse("ftp://x").is_err());
        assert!(Upstream::parse("http://x:notaport").is_err());
    }

    #[test]
    fn openai_compatible_routes_speak_openai_under_their_own_kind() {
        let text = TEXT.replace(
            "prefix = \"/openai\"\nkind = \"openai\"",
            "prefix = \"/openai\"\nkind = \"openai-compatible\"",
        );
        let c = Config::parse(Path::new("dp.toml"), &text, env).expect("valid");
        let r = c.route_for("/openai/v1/chat/completions").expect("route");
        assert_eq!(r.kind, RouteKind::Openai);
        assert_eq!(r.provider_kind, "openai-compatible");
        let mcp = c.route_for("/mcp/crm").expect("route");
        assert_eq!((mcp.kind, mcp.provider_kind), (RouteKind::Mcp, "mcp"));
        let bad = TEXT.replace("kind = \"openai\"", "kind = \"openai_compatible\"");
        assert!(Config::parse(Path::new("dp.toml"), &bad, env).is_err());
    }

    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/dataplane.toml"
        ));
        let text = std::fs::read_to_string(path).expect("read");
        let c = Config::parse(path, &text, |k| Some(format!("secret-{k}"))).expect("valid");
        assert_eq!(c.routes.len(), 3);
        assert_eq!(
            c.route_for("/anthropic/v1/messages").map(|r| r.kind),
            Some(RouteKind::Anthropic)
        );
    }
}
