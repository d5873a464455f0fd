//! The snapshot: everything a data-plane node needs to decide requests, as one immutable value.
//!
//! The control plane compiles identity (users, groups with nesting expanded), the OIDC issuers
//! with their signing keys, and the Cedar policy set into one `Snapshot`, frames it with
//! [`crate::codec`], and streams it to every node. Nodes never mutate a snapshot; a newer one
//! replaces it whole.

use crate::Hash32;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// One compiled, versioned view of identity and policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Monotonic across the control plane's lifetime (persisted, survives restarts).
    pub version: u64,
    /// This version's identity: a random number drawn when the version is published. A
    /// delta names the id of the snapshot it applies to, so it is never applied to different
    /// content that happens to carry the same version number (another control-plane store,
    /// or a store restored from a backup that reissues numbers).
    pub id: u64,
    /// The identity revision (count of committed identity changes) this snapshot reflects.
    pub identity_revision: u64,
    /// The policy version this snapshot carries.
    pub policy_version: PolicyVersion,
    /// When the control plane compiled it (Unix milliseconds), for staleness reporting.
    pub created_at_ms: u64,
    /// Token issuers the nodes accept, with their keys.
    pub issuers: Vec<Issuer>,
    /// Every group, sorted by `(source, id)`. Shared (`Arc`) so that a snapshot derived from
    /// this one by a small change shares every group it does not touch.
    pub groups: Vec<Arc<Group>>,
    /// Every user (active or not), sorted by `(source, id)`; shared like the groups.
    pub users: Vec<Arc<User>>,
    /// Principal attributes beyond the built-in ones (from custom SCIM extensions), declared
    /// as optional `User` attributes in [`Snapshot::schema`].
    pub principal_attributes: Vec<AttributeDecl>,
    /// The Cedar schema the policies were validated against.
    pub schema: String,
    /// The Cedar policy files, sorted by name.
    pub policies: Vec<PolicyFile>,
    /// Role bundles, sorted by name; policies say `Role::"<name>"`.
    pub roles: Vec<String>,
    /// Conditions under which a role binding holds, referenced by [`RoleGrant::condition`].
    pub conditions: Vec<Condition>,
    /// Resource label declarations (classification, clearance, ethical-wall side, …), declared
    /// on every resource entity type in [`Snapshot::schema`].
    pub resource_labels: Vec<AttributeDecl>,
    /// Partner tenants admitted through federation, sorted by `(source, tenant)`.
    pub partners: Vec<Partner>,
    /// Resources with labels, sorted by `(kind, id)`. A tool, resource or prompt inherits its
    /// server's labels and a model its provider's, unless it sets them itself; a label nothing
    /// sets takes its declared default.
    pub labeled_resources: Vec<LabeledResource>,
    /// API keys the control plane issued and has not revoked, sorted by id. A key removed
    /// from the next snapshot stops working on every node that applies it.
    pub api_keys: Vec<ApiKey>,
}

/// An API key: a principal's credential for clients that cannot obtain OIDC tokens (scripts,
/// CI jobs, service accounts). The key's text is `pcul_<id>_<secret>`; only the SHA-256 of the
/// whole text travels (the secret is 256 random bits, so a plain hash cannot be reversed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key's public id (16 hex digits), the part of the text between `pcul_` and `_`.
    pub id: String,
    /// SHA-256 of the key's whole text.
    pub hash: crate::Hash32,
    /// The principal the key stands for: a user (or service account) of the snapshot.
    pub source: String,
    pub user_id: String,
    /// From this instant on (Unix milliseconds) nodes refuse the key on their own.
    pub expires_at_ms: Option<u64>,
}

impl ApiKey {
    /// The prefix every key's text starts with.
    pub const PREFIX: &'static str = "pcul_";

    /// The id a key's text claims, if it has the key's shape.
    pub fn id_of(text: &str) -> Option<&str> {
        let (id, secret) = text.strip_prefix(Self::PREFIX)?.split_once('_')?;
        (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
            .then_some(id)
    }
}

/// A partner tenant whose users are principals without being provisioned: each verified
/// token naming the tenant is a `User` in the partner's group (`Group::"partner/<name>"`),
/// holding the roles that group is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    /// The identity source whose issuer the partner's tokens come from.
    pub source: String,
    /// The tenant claim's value.
    pub tenant: String,
    /// Index into [`Snapshot::groups`] of the partner's group.
    pub group: u32,
    /// The roles the partner's users hold, sorted by role.
    pub roles: Vec<RoleGrant>,
}

/// A resource's labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabeledResource {
    pub kind: ResourceKind,
    /// The Cedar entity id: a provider route or model name, an MCP server name, or
    /// `<server>/<tool|uri|prompt>`.
    pub id: String,
    pub labels: std::collections::BTreeMap<String, AttrValue>,
}

/// The resource entity types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceKind {
    Provider,
    Model,
    McpServer,
    McpTool,
    McpResource,
    McpPrompt,
    LlmTool,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 7] = [
        Self::Provider,
        Self::Model,
        Self::McpServer,
        Self::McpTool,
        Self::McpResource,
        Self::McpPrompt,
        Self::LlmTool,
    ];

    /// The configuration spelling: `provider`, `model`, `mcp_server`, `mcp_tool`,
    /// `mcp_resource`, `mcp_prompt`, `llm_tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Model => "model",
            Self::McpServer => "mcp_server",
            Self::McpTool => "mcp_tool",
            Self::McpResource => "mcp_resource",
            Self::McpPrompt => "mcp_prompt",
            Self::LlmTool => "llm_tool",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind whose labels this one inherits: a server's for its tools, resources and
    /// prompts, a provider's for its models.
    pub fn parent(self) -> Option<Self> {
        match self {
            Self::Model | Self::LlmTool => Some(Self::Provider),
            Self::McpTool | Self::McpResource | Self::McpPrompt => Some(Self::McpServer),
            Self::Provider | Self::McpServer => None,
        }
    }

    /// Attribute names the schema already gives this entity type (labels may not reuse them).
    pub const BUILT_IN_ATTRIBUTES: [&'static str; 5] =
        ["name", "provider", "kind", "server", "uri"];
}

/// A policy version: a counter bumped whenever the policy content changes, and the content
/// hash of the files and schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct PolicyVersion {
    pub counter: u64,
    pub hash: Hash32,
}

impl fmt::Display for PolicyVersion {
    /// `7:3f2a9c0d11e4`: the counter, then the first 12 hex digits of the content hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.counter, self.hash.short())
    }
}

/// A named Cedar source file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFile {
    pub name: String,
    pub text: String,
}

/// A trusted token issuer, bound to one identity source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issuer {
    /// The identity source (SCIM tenant) whose users this issuer's tokens name.
    pub source: String,
    /// Exact `iss` claim value.
    pub issuer: String,
    /// Accepted `aud` values; a token must carry at least one.
    pub audiences: Vec<String>,
    /// Signing algorithms accepted from this issuer (pinned: anything else is rejected).
    pub algorithms: Vec<JwtAlgorithm>,
    /// The issuer's public keys.
    pub keys: Vec<Jwk>,
    /// Which claim names the user, and which SCIM attribute it matches.
    pub principal_claim: PrincipalClaim,
    /// With the `email` mapping, require `email_verified: true` in the token. An unverified,
    /// user-editable email must never name someone else's account.
    pub require_email_verified: bool,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    pub leeway_secs: u32,
    /// Federation: the claim naming the token holder's home tenant; a verified token for
    /// someone the source has not provisioned then names a partner principal, if
    /// [`Snapshot::partners`] admits the tenant.
    pub tenant_claim: Option<String>,
}

/// JWS algorithms Portcullis accepts. `none` and HMAC are deliberately absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwtAlgorithm {
    pub const ALL: [JwtAlgorithm; 9] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The JWK key type this algorithm verifies with.
    pub fn key_type(self) -> &'static str {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                "RSA"
            }
            Self::ES256 | Self::ES384 => "EC",
            Self::EdDSA => "OKP",
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A public JSON Web Key (RFC 7517), restricted to the members verification needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwk {
    pub kty: String,
    pub kid: Option<String>,
    pub alg: Option<String>,
    /// The JWK `use` member (`sig` or `enc`).
    pub key_use: Option<String>,
    /// RSA modulus and exponent (base64url).
    pub n: Option<String>,
    pub e: Option<String>,
    /// EC / OKP curve and coordinates (base64url).
    pub crv: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
}

/// How a verified token is mapped to a SCIM user of the issuer's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PrincipalClaim {
    /// The `email` claim matches `userName` (case-insensitively, as SCIM compares it).
    #[default]
    EmailToUserName,
    /// The `sub` claim matches `externalId` (exactly).
    SubToExternalId,
    /// The value is the user's SCIM id: what an API key names.
    ScimId,
}

/// An IdP group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// SCIM resource id.
    pub id: String,
    pub source: String,
    /// The IdP's name for it; policies say `Group::"<source>/<display_name>"`.
    pub display_name: String,
    /// Indices (into [`Snapshot::groups`]) of every group this one is nested in, directly or
    /// transitively; sorted, without itself.
    pub ancestors: Vec<u32>,
}

/// An IdP user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// SCIM resource id; the Cedar entity id (`User::"<id>"`).
    pub id: String,
    pub source: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: String,
    /// The primary (or first) email address, if any.
    pub email: Option<String>,
    pub active: bool,
    /// Enterprise extension `department`.
    pub department: Option<String>,
    /// Indices (into [`Snapshot::groups`]) of every group the user is in, directly or through
    /// nesting; sorted and unique.
    pub groups: Vec<u32>,
    /// Declared extension attributes this user has, by name (see
    /// [`Snapshot::principal_attributes`]).
    pub attributes: std::collections::BTreeMap<String, AttrValue>,
    /// Role bundles the user holds through its groups (nested and dynamic) and break-glass
    /// activations, sorted by role; each may hold only under a condition or until an instant.
    pub roles: Vec<RoleGrant>,
    /// A planned end (Unix milliseconds): from this instant on, nodes deny the user on their
    /// own, whether or not the IdP or the control plane says anything.
    pub end_at_ms: Option<u64>,
    /// Set when this account is linked with accounts of other sources into one principal
    /// (multi-IdP merge). Its groups, roles, attributes, activity and end date are then
    /// already the merged principal's.
    pub linked: Option<Linked>,
}

impl User {
    /// An active user with nothing but its identity: no groups, roles or attributes, its
    /// display name its id.
    pub fn new(
        source: impl Into<String>,
        id: impl Into<String>,
        user_name: impl Into<String>,
    ) -> Self {
        let id = id.into();
        Self {
            display_name: id.clone(),
            id,
            source: source.into(),
            user_name: user_name.into(),
            external_id: None,
            email: None,
            active: true,
            department: None,
            groups: Vec::new(),
            attributes: Default::default(),
            roles: Vec::new(),
            end_at_ms: None,
            linked: None,
        }
    }
}

/// The principal a linked account decides as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linked {
    /// The Cedar id every linked account decides as: the primary account's SCIM id.
    pub principal_id: String,
    /// The sources of every linked account, sorted (the principal is in each `Source`).
    pub sources: Vec<String>,
}

/// One role a user holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrant {
    /// Index into [`Snapshot::roles`].
    pub role: u32,
    /// Index into [`Snapshot::conditions`]; `None` holds everywhere.
    pub condition: Option<u32>,
    /// The grant ends at this instant (Unix milliseconds): break-glass activations.
    pub expires_at_ms: Option<u64>,
}

/// Where and when a role binding holds, decided per request. Every part that is set must
/// hold; an empty list means "any".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Condition {
    /// The node's environment (`environment` in its configuration) is one of these.
    pub environments: Vec<String>,
    /// The route's tenant is one of these.
    pub tenants: Vec<String>,
    /// The request arrives at or after this instant (Unix milliseconds).
    pub not_before_ms: Option<u64>,
    /// The request arrives before this instant (Unix milliseconds).
    pub not_after_ms: Option<u64>,
}

impl Condition {
    /// Whether the condition holds for a request in `environment` and `tenant` at `now_ms`.
    pub fn holds(&self, environment: Option<&str>, tenant: Option<&str>, now_ms: u64) -> bool {
        let listed = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        listed(&self.environments, environment)
            && listed(&self.tenants, tenant)
            && self.not_before_ms.is_none_or(|t| now_ms >= t)
            && self.not_after_ms.is_none_or(|t| now_ms < t)
    }
}

impl RoleGrant {
    /// Whether the grant holds for this request (see [`Condition::holds`]).
    pub fn holds(
        &self,
        conditions: &[Condition],
        environment: Option<&str>,
        tenant: Option<&str>,
        now_ms: u64,
    ) -> bool {
        self.expires_at_ms.is_none_or(|t| now_ms < t)
            && self.condition.is_none_or(|c| {
                conditions
                    .get(c as usize)
                    .is_some_and(|c| c.holds(environment, tenant, now_ms))
            })
    }
}

/// A principal attribute or resource label declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeDecl {
    pub name: String,
    pub kind: AttrKind,
    /// A set of values rather than one.
    pub multi: bool,
    /// What an entity without a value has. With a default the attribute is required in the
    /// schema (policies read it without `has`); without one it is optional.
    #[serde(default)]
    pub default: Option<AttrValue>,
    /// A token claim that supplies the value at request time (principal attributes only).
    #[serde(default)]
    pub claim: Option<String>,
    /// The claim, when the token carries it, wins over the directory's value (it was listed
    /// first); otherwise it only fills in for a principal the directory gives no value.
    #[serde(default)]
    pub claim_first: bool,
}

impl AttributeDecl {
    /// An optional attribute without default or claim.
    pub fn new(name: impl Into<String>, kind: AttrKind, multi: bool) -> Self {
        Self {
            name: name.into(),
            kind,
            multi,
            default: None,
            claim: None,
            claim_first: false,
        }
    }

    /// Converts a JSON value (a SCIM attribute or a token claim) to this declaration's type.
    /// A multi-valued declaration takes an array (keeping the elements that convert, without
    /// repeats) or a single value as a one-element set. `None` if nothing converts.
    pub fn value_from_json(&self, v: &serde_json::Value) -> Option<AttrValue> {
        if self.multi {
            let one = |v: &serde_json::Value| AttrValue::from_json(self.kind, v);
            let mut set: Vec<AttrValue> = match v {
                serde_json::Value::Array(items) => items.iter().filter_map(one).collect(),
                other => one(other).into_iter().collect(),
            };
            let mut seen = Vec::with_capacity(set.len());
            set.retain(|x| {
                let fresh = !seen.contains(x);
                if fresh {
                    seen.push(x.clone());
                }
                fresh
            });
            Some(AttrValue::Set(set))
        } else {
            AttrValue::from_json(self.kind, v)
        }
    }
}

/// The Cedar type of a principal attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrKind {
    String,
    Long,
    Bool,
    /// Cedar's `decimal` extension type (up to four fractional digits).
    Decimal,
}

/// A principal attribute value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrValue {
    String(String),
    Long(i64),
    Bool(bool),
    /// Decimal literal text, e.g. `"1.25"`.
    Decimal(String),
    Set(Vec<AttrValue>),
}

impl AttrValue {
    /// One JSON scalar as `kind`. Longs accept integral JSON numbers and integer strings
    /// (IdPs send `"3"` as often as `3`); bools accept `true`/`false` and their strings;
    /// decimals accept numbers and numeric strings Cedar can hold exactly.
    pub fn from_json(kind: AttrKind, v: &serde_json::Value) -> Option<Self> {
        use serde_json::Value;
        match (kind, v) {
            (AttrKind::String, Value::String(s)) => Some(Self::String(s.clone())),
            (AttrKind::Long, Value::Number(n)) => n.as_i64().map(Self::Long),
            (AttrKind::Long, Value::String(s)) => s.trim().parse().ok().map(Self::Long),
            (AttrKind::Bool, Value::Bool(b)) => Some(Self::Bool(*b)),
            (AttrKind::Bool, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
                Some(Self::Bool(true))
            }
            (AttrKind::Bool, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
                Some(Self::Bool(false))
            }
            (AttrKind::Decimal, Value::Number(n)) => {
                cedar_decimal(&n.to_string()).map(Self::Decimal)
            }
            (AttrKind::Decimal, Value::String(s)) => cedar_decimal(s.trim()).map(Self::Decimal),
            _ => None,
        }
    }

    /// Whether this value has the declared type.
    pub fn conforms(&self, kind: AttrKind, multi: bool) -> bool {
        let scalar = |v: &AttrValue| {
            matches!(
                (kind, v),
                (AttrKind::String, AttrValue::String(_))
                    | (AttrKind::Long, AttrValue::Long(_))
                    | (AttrKind::Bool, AttrValue::Bool(_))
                    | (AttrKind::Decimal, AttrValue::Decimal(_))
            )
        };
        match self {
            AttrValue::Set(items) => multi && items.iter().all(scalar),
            v => !multi && scalar(v),
        }
    }
}

/// Cedar's `decimal` literal for a number's text: `digits.digits` with one to four fractional
/// digits, within ±922337203685477.5807 (Cedar's range, less `i64::MIN`). `None` if it cannot
/// be represented exactly.
pub fn cedar_decimal(number: &str) -> Option<String> {
    if number.contains(['e', 'E']) {
        return None;
    }
    let (negative, body) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let frac = frac.trim_end_matches('0');
    if int.is_empty()
        || frac.len() > 4
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac = if frac.is_empty() { "0" } else { frac };
    let scaled: i128 = format!("{int}{frac:0<4}").parse().ok()?;
    if scaled > i64::MAX as i128 {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    Some(format!("{}{int}.{frac}", if negative { "-" } else { "" }))
}

impl Snapshot {
    /// An empty snapshot (no identities, no policies): every request is denied.
    pub fn empty(version: u64) -> Self {
        Self {
            version,
            id: 0,
            identity_revision: 0,
            policy_version: PolicyVersion::default(),
            created_at_ms: 0,
            issuers: Vec::new(),
            groups: Vec::new(),
            users: Vec::new(),
            principal_attributes: Vec::new(),
            schema: crate::schema::SCHEMA.to_owned(),
            policies: Vec::new(),
            roles: Vec::new(),
            conditions: Vec::new(),
            resource_labels: Vec::new(),
            partners: Vec::new(),
            labeled_resources: Vec::new(),
            api_keys: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_must_be_exact_and_in_range() {
        assert_eq!(cedar_decimal("1").as_deref(), Some("1.0"));
        assert_eq!(cedar_decimal("-0.25").as_deref(), Some("-0.25"));
        assert_eq!(cedar_decimal("007.1000").as_deref(), Some("7.1"));
        assert_eq!(cedar_decimal("1.23456"), None);
        assert_eq!(cedar_decimal("1e3"), None);
        assert_eq!(
            cedar_decimal("922337203685477.5807").as_deref(),
            Some("922337203685477.5807")
        );
        assert_eq!(cedar_decimal("922337203685477.5808"), None);
        assert_eq!(
            cedar_decimal("-922337203685477.5807").as_deref(),
            Some("-922337203685477.5807")
        );
        assert_eq!(cedar_decimal("-922337203685477.5808"), None);
        assert_eq!(cedar_decimal(""), None);
        assert_eq!(cedar_decimal(".5"), None);
    }
}
