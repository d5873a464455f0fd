//! Configuration files for a local deployment: one control plane, any number of nodes, the
//! demo upstreams. Used by the quickstart and the end-to-end harness.

use std::net::SocketAddr;
use std::path::Path;

/// The demo policies, shipped in `deploy/quickstart/policies`.
pub const POLICIES: &[(&str, &str)] = &[
    (
        "llm.cedar",
        include_str!("../../quickstart/policies/llm.cedar"),
    ),
    (
        "mcp.cedar",
        include_str!("../../quickstart/policies/mcp.cedar"),
    ),
];

/// The demo bindings (role bundles, dynamic groups, end dates, break-glass), shipped as
/// `deploy/quickstart/bindings.toml`.
pub const BINDINGS: &str = include_str!("../../quickstart/bindings.toml");

/// The identity source the demo directory belongs to.
pub const SOURCE: &str = "demo";
/// The audience demo tokens carry.
pub const AUDIENCE: &str = "portcullis";
/// The credential the edge injects towards the demo upstreams (never a client's).
pub const UPSTREAM_OPENAI_KEY: &str = "sk-demo-upstream-openai";
pub const UPSTREAM_ANTHROPIC_KEY: &str = "sk-demo-upstream-anthropic";
pub const UPSTREAM_GEMINI_KEY: &str = "demo-upstream-gemini";

/// Control-plane listeners.
#[derive(Debug, Clone, Copy)]
pub struct ControlPlaneAddrs {
    pub scim: SocketAddr,
    pub admin: SocketAddr,
    pub grpc: SocketAddr,
}

/// `cp.toml` for one source whose SCIM token hash and JWKS file are given.
/// The demo source's custom User extension (carries `clearance`).
pub const DEMO_EXTENSION: &str = "urn:example:params:scim:schemas:extension:demo:2.0:User";

#[allow(clippy::too_many_arguments)]
pub fn control_plane_toml(
    data_dir: &Path,
    policy_dir: &Path,
    bindings_file: &Path,
    addrs: ControlPlaneAddrs,
    issuer: &str,
    jwks_file: &Path,
    scim_token_sha256: &str,
    node_token_sha256: &str,
) -> String {
    format!(
        r#"# Generated for a local deployment.
data_dir = {data:?}
policy_dir = {policies:?}
bindings_file = {bindings:?}

[listen]
scim = "{scim}"
admin = "{admin}"
grpc = "{grpc}"

[nodes]
token_sha256 = ["{node_token_sha256}"]

[[sources]]
name = "{SOURCE}"
scim_token_sha256 = ["{scim_token_sha256}"]

[sources.oidc]
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]
algorithms = ["ES256", "RS256"]
principal_claim = "email"
jwks_file = {jwks:?}
refresh_secs = 5
# Federation: a token naming an admitted partner tenant (`[[partners]]` in the bindings) is a
# principal without being provisioned.
tenant_claim = "tid"

# A custom SCIM extension: `clearance` becomes a principal attribute policies can test.
[[sources.extensions]]
urn = "{DEMO_EXTENSION}"
name = "DemoUser"
description = "Demo clearance level"
[[sources.extensions.attributes]]
name = "clearance"
type = "integer"
description = "Clearance level, 0-5"
[[sources.extensions.attributes]]
name = "endDate"
type = "dateTime"
description = "Planned end of a contractor's engagement"
"#,
        data = data_dir.display().to_string(),
        policies = policy_dir.display().to_string(),
        bindings = bindings_file.display().to_string(),
        scim = addrs.scim,
        admin = addrs.admin,
        grpc = addrs.grpc,
        jwks = jwks_file.display().to_string(),
    )
}

/// `dp.toml` for one node in front of the demo upstream at `upstream`.
#[allow(clippy::too_many_arguments)]
pub fn node_toml(
    node_id: &str,
    state_dir: &Path,
    control_plane_grpc: SocketAddr,
    control_plane_token: &str,
    control_plane_key_file: &Path,
    proxy: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    max_body_bytes: usize,
) -> String {
    format!(
        r#"# Generated for a local deployment.
node_id = "{node_id}"
state_dir = {state:?}
control_plane = "http://{control_plane_grpc}"
control_plane_token = "{control_plane_token}"
# The control plane writes its public signing key here when it first starts.
control_plane_keys_file = {keys:?}
threads = 1

[listen]
proxy = "{proxy}"
admin = "{admin}"

[limits]
max_body_bytes = {max_body_bytes}

[[routes]]
prefix = "/openai"
kind = "openai"
name = "openai"
upstream = "http://{upstream}"
[routes.credential]
header = "authorization"
prefix = "Bearer "
value = "{UPSTREAM_OPENAI_KEY}"

# The same provider for sensitive work: fails closed (503) once the control plane has been
# silent for 3 s, while the other routes keep serving the last-known-good snapshot.
[[routes]]
prefix = "/strict/openai"
kind = "openai"
name = "openai"
upstream = "http://{upstream}"
max_staleness_ms = 3000
[routes.credential]
header = "authorization"
prefix = "Bearer "
value = "{UPSTREAM_OPENAI_KEY}"

[[routes]]
prefix = "/azure"
kind = "azure"
name = "azure"
upstream = "http://{upstream}"
[routes.credential]
header = "api-key"
value = "{UPSTREAM_OPENAI_KEY}"

[[routes]]
prefix = "/gemini"
kind = "gemini"
name = "gemini"
upstream = "http://{upstream}"
[routes.credential]
header = "x-goog-api-key"
value = "{UPSTREAM_GEMINI_KEY}"

[[routes]]
prefix = "/anthropic"
kind = "anthropic"
name = "anthropic"
upstream = "http://{upstream}"
[routes.credential]
header = "x-api-key"
value = "{UPSTREAM_ANTHROPIC_KEY}"

[[routes]]
prefix = "/mcp/crm"
kind = "mcp"
name = "crm"
upstream = "http://{upstream}/mcp"
"#,
        state = state_dir.display().to_string(),
        keys = control_plane_key_file.display().to_string(),
    )
}
