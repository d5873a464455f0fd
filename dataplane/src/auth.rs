//! Bearer-token authentication with the issuers and keys carried in the snapshot.
//!
//! A token is accepted only if its `iss` names an issuer of the snapshot, its `alg` is one that
//! issuer is pinned to (never `none`, never HMAC), its signature verifies with one of that
//! issuer's keys (by `kid` when the token names one), its `aud` includes an accepted audience,
//! and `exp`/`nbf` hold within the issuer's leeway. The claim the issuer maps to users
//! (`email` or `sub`) then names the principal.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_shared::snapshot::{
    ApiKey, AttrValue, AttributeDecl, Issuer, Jwk, JwtAlgorithm, PrincipalClaim,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Why a token was refused. The `Display` text is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsigned tokens (alg none) are never accepted")]
    Unsigned,
    #[error("token issuer is not trusted")]
    UnknownIssuer,
    #[error("token algorithm {0} is not accepted for this issuer")]
    AlgorithmNotAllowed(String),
    #[error("no key of the issuer matches the token")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audience is not accepted")]
    WrongAudience,
    #[error("token is not for this resource: its aud does not name {0}")]
    NotForResource(String),
    #[error("token lacks the {0} claim that names the user")]
    MissingPrincipalClaim(&'static str),
    #[error("token's email is not verified by the issuer (email_verified is not true)")]
    EmailNotVerified,
    #[error("token is invalid: {0}")]
    Invalid(String),
    #[error("API key is not valid (never issued, or revoked)")]
    UnknownApiKey,
    #[error("API key has expired")]
    ApiKeyExpired,
}

impl AuthError {
    /// A low-cardinality label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::Malformed(_) => "malformed_token",
            Self::Unsigned => "unsigned_token",
            Self::UnknownIssuer => "unknown_issuer",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::NotForResource(_) => "wrong_resource",
            Self::MissingPrincipalClaim(_) => "missing_principal_claim",
            Self::EmailNotVerified => "email_not_verified",
            Self::Invalid(_) => "invalid_token",
            Self::UnknownApiKey => "unknown_api_key",
            Self::ApiKeyExpired => "api_key_expired",
        }
    }
}

/// Who a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub source: String,
    pub claim: PrincipalClaim,
    /// The `email` or `sub` claim value.
    pub principal: String,
    /// Values for principal attributes that map a claim, by index into the snapshot's
    /// `principal_attributes` (see `RequestContext::claims`). A claim of the wrong type is
    /// left out, so the directory's value or the default applies.
    pub claims: Vec<(u32, AttrValue)>,
    /// The home tenant, when the issuer is federated (`tenant_claim`) and the token names one.
    pub tenant: Option<String>,
    /// The token's audiences (`aud`, a string or a list).
    pub audiences: Vec<String>,
    /// The token's scopes (`scope`, space-separated, or `scp`, a list or a string).
    pub scopes: Vec<String>,
    /// The id of the API key presented instead of a token (then `principal` is a SCIM id).
    pub api_key: Option<String>,
}

/// Verifies an API key's text (`pcul_<id>_<secret>`) against the keys of the snapshot: the id
/// must name a live key, the text must hash to its hash, and the key must not have expired.
/// A wrong secret and an unknown id get the same answer.
pub fn verify_api_key(
    engine: &portcullis_shared::engine::Engine,
    text: &str,
    now_ms: u64,
) -> Result<Arc<Verified>, AuthError> {
    let id = ApiKey::id_of(text).ok_or(AuthError::Malformed(
        "an API key reads pcul_<16 hex digits>_<secret>",
    ))?;
    let key = engine.api_key(id).ok_or(AuthError::UnknownApiKey)?;
    if portcullis_shared::Hash32::of(text.as_bytes()) != key.hash {
        return Err(AuthError::UnknownApiKey);
    }
    if key.expires_at_ms.is_some_and(|at| now_ms >= at) {
        return Err(AuthError::ApiKeyExpired);
    }
    Ok(Arc::new(Verified {
        source: key.source.clone(),
        claim: PrincipalClaim::ScimId,
        principal: key.user_id.clone(),
        claims: Vec::new(),
        tenant: None,
        audiences: Vec::new(),
        scopes: Vec::new(),
        api_key: Some(key.id.clone()),
    }))
}

/// Strings from a claim that is a string or a list of strings; a string is split on spaces
/// when `split` is set (`scope`).
fn strings(claim: Option<&Value>, split: bool) -> Vec<String> {
    match claim {
        Some(Value::String(s)) if split => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[derive(Debug)]
struct Key {
    kid: Option<String>,
    kty: String,
    key: DecodingKey,
}

#[derive(Debug)]
struct IssuerEntry {
    issuer: Issuer,
    keys: Vec<Key>,
}

/// Decoding keys for every issuer of a snapshot, built once per snapshot.
#[derive(Debug, Default)]
pub struct IssuerKeys {
    by_iss: HashMap<String, IssuerEntry>,
    /// Tokens that verified with these keys, so a client reusing its token (as every SDK
    /// does until it expires) is not checked by signature again on every request.
    cache: TokenCache,
    /// Principal attributes read from claims: (index, claim name, declaration).
    claimed: Vec<(u32, String, AttributeDecl)>,
}

impl IssuerKeys {
    /// Builds keys; a JWK that does not make a key is skipped (and logged). `attributes` are
    /// the snapshot's principal attributes; those that declare a claim are read from tokens.
    pub fn build(issuers: &[Issuer], attributes: &[AttributeDecl]) -> Self {
        let mut by_iss = HashMap::new();
        for iss in issuers {
            let keys = iss
                .keys
                .iter()
                .filter_map(|jwk| match decoding_key(jwk) {
                    Some(key) => Some(Key {
                        kid: jwk.kid.clone(),
                        kty: jwk.kty.clone(),
                        key,
                    }),
                    None => {
                        tracing::warn!(issuer = %iss.issuer, kid = ?jwk.kid, "skipping unusable JWK");
                        None
                    }
                })
                .collect();
            by_iss.insert(
                iss.issuer.clone(),
                IssuerEntry {
                    issuer: iss.clone(),
                    keys,
                },
            );
        }
        let claimed = attributes
            .iter()
            .enumerate()
            .filter_map(|(i, d)| Some((i as u32, d.claim.clone()?, d.clone())))
            .collect();
        Self {
            by_iss,
            claimed,
            cache: TokenCache::default(),
        }
    }

    /// Verifies `token` and returns who it names. A token these keys verified before is
    /// answered from the cache while its `nbf`/`exp` window (with the issuer's leeway) holds;
    /// outside it, or unknown, the token is verified in full. Refusals are never cached.
    pub fn verify(&self, token: &str) -> Result<Arc<Verified>, AuthError> {
        let now = unix_now();
        // Handles looked up once: the request path pays an atomic add, not a registry lookup.
        static HIT: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
        static MISS: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
        if let Some(v) = self.cache.get(token, now) {
            HIT.get_or_init(
                || metrics::counter!("portcullis_token_cache_total", "result" => "hit"),
            )
            .increment(1);
            return Ok(v);
        }
        MISS.get_or_init(|| metrics::counter!("portcullis_token_cache_total", "result" => "miss"))
            .increment(1);
        let (verified, window) = self.verify_uncached(token)?;
        let verified = Arc::new(verified);
        self.cache.put(token, &verified, window, now);
        Ok(verified)
    }

    /// Full verification; also returns the window in which the token stays valid.
    fn verify_uncached(&self, token: &str) -> Result<(Verified, (u64, u64)), AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(_s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("a JWT has three dot-separated parts"));
        };
        let header = decode_json(h).ok_or(AuthError::Malformed("header is not base64url JSON"))?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(AuthError::Malformed("header has no alg"))?;
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(AuthError::Unsigned);
        }
        let claims = decode_json(p).ok_or(AuthError::Malformed("payload is not base64url JSON"))?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(AuthError::UnknownIssuer)?;
        let entry = self.by_iss.get(iss).ok_or(AuthError::UnknownIssuer)?;

        let alg = JwtAlgorithm::parse(alg_name)
            .filter(|a| entry.issuer.algorithms.contains(a))
            .ok_or_else(|| AuthError::AlgorithmNotAllowed(alg_name.to_owned()))?;
        let jwt_alg = jwt_algorithm(alg);
        let kid = header.get("kid").and_then(Value::as_str);
        let candidates: Vec<&Key> = entry
            .keys
            .iter()
            .filter(|k| k.kty == alg.key_type())
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey);
        }

        let mut validation = Validation::new(jwt_alg);
        validation.set_issuer(&[iss]);
        validation.set_audience(&entry.issuer.audiences);
        validation.leeway = u64::from(entry.issuer.leeway_secs);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);

        let mut last = AuthError::BadSignature;
        for key in candidates {
            match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
                Ok(data) => {
                    let mut v = principal(&entry.issuer, &data.claims)?;
                    v.claims = self
                        .claimed
                        .iter()
                        .filter_map(|(i, claim, decl)| {
                            Some((*i, decl.value_from_json(data.claims.get(claim)?)?))
                        })
                        .collect();
                    let leeway = u64::from(entry.issuer.leeway_secs);
                    let at = |c: &str| data.claims.get(c).and_then(Value::as_u64);
                    let from = at("nbf").map_or(0, |nbf| nbf.saturating_sub(leeway));
                    // `exp` is required, so it is there; without it nothing is cached.
                    let until = at("exp").map_or(0, |exp| exp.saturating_add(leeway));
                    return Ok((v, (from, until)));
                }
                Err(e) => {
                    last = map_error(&e);
                    if last != AuthError::BadSignature {
                        break;
                    }
                }
            }
        }
        Err(last)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const CACHE_SHARDS: usize = 16;
/// At most this many tokens per shard (16 × 1,024 in all).
const CACHE_PER_SHARD: usize = 1024;
/// At most this many bytes of token text per shard (16 × 2 MiB in all).
const CACHE_BYTES_PER_SHARD: usize = 2 << 20;

/// Verified tokens by their exact text, with the window they are valid in.
#[derive(Debug, Default)]
struct TokenCache {
    shards: [std::sync::Mutex<Shard>; CACHE_SHARDS],
}

#[derive(Debug, Default)]
struct Shard {
    /// Keyed by the token's text; foldhash, seeded per map, hashes a long token far faster
    /// than SipHash.
    tokens: HashMap<Box<str>, CachedToken, foldhash::fast::RandomState>,
    /// Bytes of token text held.
    bytes: usize,
}

#[derive(Debug)]
struct CachedToken {
    verified: Arc<Verified>,
    /// Valid while `from <= now < until` (Unix seconds).
    from: u64,
    until: u64,
}

impl TokenCache {
    fn shard(&self, token: &str) -> &std::sync::Mutex<Shard> {
        use std::hash::BuildHasher;
        let h = foldhash::fast::FixedState::with_seed(0x7043).hash_one(token);
        &self.shards[(h as usize) % CACHE_SHARDS]
    }

    fn get(&self, token: &str, now: u64) -> Option<Arc<Verified>> {
        let shard = self.shard(token).lock().unwrap_or_else(|p| p.into_inner());
        let hit = shard.tokens.get(token)?;
        (hit.from <= now && now < hit.until).then(|| hit.verified.clone())
    }

    fn put(&self, token: &str, verified: &Arc<Verified>, (from, until): (u64, u64), now: u64) {
        if until <= now {
            return;
        }
        if token.len() > CACHE_BYTES_PER_SHARD / 64 {
            return; // an absurd token is verified every time rather than crowding others out
        }
        let mut guard = self.shard(token).lock().unwrap_or_else(|p| p.into_inner());
        let shard = &mut *guard;
        let full = |s: &Shard| {
            s.tokens.len() >= CACHE_PER_SHARD || s.bytes + token.len() > CACHE_BYTES_PER_SHARD
        };
        if full(shard) {
            // Expired first; then about a quarter of the rest, whichever the map yields.
            let mut freed = 0;
            shard.tokens.retain(|k, c| {
                let keep = c.until > now;
                if !keep {
                    freed += k.len();
                }
                keep
            });
            shard.bytes -= freed;
            if full(shard) {
                let victims: Vec<Box<str>> = shard
                    .tokens
                    .keys()
                    .take(CACHE_PER_SHARD / 4 + 1)
                    .cloned()
                    .collect();
                for k in victims {
                    shard.bytes -= k.len();
                    shard.tokens.remove(&k);
                }
            }
        }
        let old = shard.tokens.insert(
            token.into(),
            CachedToken {
                verified: verified.clone(),
                from,
                until,
            },
        );
        shard.bytes += token.len();
        if old.is_some() {
            shard.bytes -= token.len();
        }
    }
}

fn principal(issuer: &Issuer, claims: &Value) -> Result<Verified, AuthError> {
    let (name, value) = match issuer.principal_claim {
        PrincipalClaim::EmailToUserName => ("email", claims.get("email")),
        // No issuer is configured to name SCIM ids (API keys do); read as `sub` would be.
        PrincipalClaim::SubToExternalId | PrincipalClaim::ScimId => ("sub", claims.get("sub")),
    };
    let value = value
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::MissingPrincipalClaim(name))?;
    if issuer.principal_claim == PrincipalClaim::EmailToUserName && issuer.require_email_verified {
        let verified = match claims.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            // Some IdPs send it as a string.
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        if !verified {
            return Err(AuthError::EmailNotVerified);
        }
    }
    Ok(Verified {
        source: issuer.source.clone(),
        claim: issuer.principal_claim,
        principal: value.to_owned(),
        claims: Vec::new(),
        tenant: issuer
            .tenant_claim
            .as_deref()
            .and_then(|c| claims.get(c))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        audiences: strings(claims.get("aud"), false),
        scopes: match claims.get("scope") {
            Some(scope) => strings(Some(scope), true),
            None => strings(claims.get("scp"), true),
        },
        api_key: None,
    })
}

fn map_error(e: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => AuthError::BadSignature,
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidAudience => AuthError::WrongAudience,
        K::InvalidIssuer => AuthError::UnknownIssuer,
        K::MissingRequiredClaim(c) => AuthError::Invalid(format!("missing {c} claim")),
        K::InvalidAlgorithm | K::InvalidAlgorithmName => AuthError::AlgorithmNotAllowed("?".into()),
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
            AuthError::Malformed("token does not decode")
        }
        other => AuthError::Invalid(format!("{other:?}")),
    }
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn jwt_algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn decoding_key(jwk: &Jwk) -> Option<DecodingKey> {
    match jwk.kty.as_str() {
        "RSA" => DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok(),
        "EC" => DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok(),
        "OKP" => DecodingKey::from_ed_components(jwk.x.as_deref()?).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
