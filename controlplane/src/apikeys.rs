//! API keys: credentials for programs, each standing for one user or service account.
//!
//! A key's text is `pcul_<id>_<secret>`: the id is 8 random bytes as 16 lowercase hex digits,
//! the secret 32 random bytes in base64url without padding. The text is shown once, when the
//! key is issued; the store keeps its SHA-256 only. Every live key travels in the snapshots
//! (id, hash, principal, expiry), so a node checks a presented key on its own: it finds the
//! id, compares the hash of the whole text, refuses it once expired, and resolves the
//! principal by `(source, user_id)` like any other request's (a deactivated or deleted user's
//! keys stop working with the user).
//!
//! Issuing and revoking record an identity event (`api_key.issue`, `api_key.revoke`, resource
//! type `ApiKey`, resource id the key's id) in the same transaction, so the identity revision
//! moves and the next snapshot carries the change; the admin API then wakes the publisher.

use crate::store::{self, ApiKeyRow, EventOutcome, IdentityEvent, Store, StoreError, UserRow};
use base64::Engine;
use portcullis_shared::Hash32;
use portcullis_shared::snapshot::ApiKey;
use rand::RngCore;
use rusqlite::Connection;
use serde::Deserialize;

/// The longest lifetime a key can be issued with.
pub const MAX_EXPIRES_DAYS: u32 = 3650;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// A request to issue a key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The principal's identity source (`service-accounts` for a service account).
    pub source: String,
    /// Its `userName` (case-insensitive) or SCIM id.
    pub user: String,
    /// What the key is for.
    pub name: String,
    /// Lifetime in days (1 to [`MAX_EXPIRES_DAYS`]); none: the key lives until revoked.
    #[serde(default)]
    pub expires_days: Option<u32>,
    /// Who asks.
    pub author: String,
}

/// Why an API key operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("source {0:?} has no user {1:?}")]
    UnknownUser(String, String),
    #[error("user {1:?} of source {0:?} is deactivated; a key for it would never work")]
    Inactive(String, String),
    #[error("a key needs a name of 1 to 128 characters without quotes or control characters")]
    Name,
    #[error("say who asks: the author must not be empty")]
    Author,
    #[error("expires_days must be between 1 and {MAX_EXPIRES_DAYS}, not {0}")]
    Expiry(u32),
    #[error("no API key has id {0:?}")]
    UnknownKey(String),
    #[error("API key {0:?} is revoked already")]
    Revoked(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Issues, revokes and lists API keys. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    store: Store,
}

impl ApiKeys {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Issues a key for the user and records the `api_key.issue` event in the same
    /// transaction. Returns the stored row and the key's text, which nothing keeps: the
    /// caller shows it once.
    pub async fn issue(&self, req: IssueRequest) -> Result<(ApiKeyRow, String), ApiKeyError> {
        let name = req.name.trim().to_owned();
        if !crate::bindings::valid_name(&name) {
            return Err(ApiKeyError::Name);
        }
        let author = req.author.trim().to_owned();
        if author.is_empty() {
            return Err(ApiKeyError::Author);
        }
        if let Some(days) = req.expires_days
            && !(1..=MAX_EXPIRES_DAYS).contains(&days)
        {
            return Err(ApiKeyError::Expiry(days));
        }
        let (row, text) = self
            .store
            .write(move |tx| {
                let user = find_user(tx, &req.source, &req.user)?.ok_or_else(|| {
                    ApiKeyError::UnknownUser(req.source.clone(), req.user.clone())
                })?;
                if !user.active {
                    return Err(ApiKeyError::Inactive(
                        req.source.clone(),
                        user.user_name().to_owned(),
                    ));
                }
                let now = store::now_ms();
                let (id, text) = unused_key(tx)?;
                let row = ApiKeyRow {
                    id,
                    name,
                    source: user.source.clone(),
                    user_id: user.id.clone(),
                    user_name: user.user_name().to_owned(),
                    hash: Hash32::of(text.as_bytes()),
                    created_ms: now,
                    expires_ms: req
                        .expires_days
                        .map(|d| now.saturating_add(u64::from(d) * DAY_MS)),
                    revoked_ms: None,
                    author: author.clone(),
                };
                store::insert_api_key(tx, &row)?;
                let mut e = event("api_key.issue", &row, now);
                e.after = serde_json::to_value(&row).ok();
                e.detail = Some(format!("issued by {author}"));
                store::record_event(tx, &e)?;
                Ok::<_, ApiKeyError>((row, text))
            })
            .await?;
        metrics::counter!("portcullis_api_keys_total", "event" => "issued").increment(1);
        tracing::info!(
            id = %row.id, source = %row.source, user = %row.user_name, name = %row.name,
            expires_ms = ?row.expires_ms, author = %row.author, "API key issued"
        );
        Ok((row, text))
    }

    /// Revokes a key now (an expired one too, for the record) and records the
    /// `api_key.revoke` event in the same transaction.
    pub async fn revoke(&self, id: &str, author: &str) -> Result<ApiKeyRow, ApiKeyError> {
        let author = author.trim().to_owned();
        if author.is_empty() {
            return Err(ApiKeyError::Author);
        }
        let (id, who) = (id.to_owned(), author.clone());
        let row = self
            .store
            .write(move |tx| {
                let before = store::get_api_key(tx, &id)?
                    .ok_or_else(|| ApiKeyError::UnknownKey(id.clone()))?;
                if before.revoked_ms.is_some() {
                    return Err(ApiKeyError::Revoked(id));
                }
                Ok(revoke_tx(tx, before, &author, store::now_ms())?)
            })
            .await?;
        tracing::info!(
            id = %row.id, source = %row.source, user = %row.user_name, author = %who,
            "API key revoked"
        );
        Ok(row)
    }

    /// Every key, newest first, with revoked and expired ones. `user` narrows the list to one
    /// principal's keys: a `userName` of `source` or a SCIM id, resolved to the user the store
    /// has now; a user it no longer has (or a `userName` given without its source) is matched
    /// by the SCIM id or the `userName` its keys recorded.
    pub async fn list(
        &self,
        source: Option<String>,
        user: Option<String>,
    ) -> Result<Vec<ApiKeyRow>, ApiKeyError> {
        Ok(self
            .store
            .read(move |c| {
                let source = source.as_deref();
                let Some(u) = user else {
                    return store::list_api_keys(c, source, None);
                };
                let found = match source {
                    Some(s) => find_user(c, s, &u)?,
                    None => store::user_by_id(c, &u)?,
                };
                if let Some(found) = found {
                    return store::list_api_keys(c, source, Some(&found.id));
                }
                let mut rows = store::list_api_keys(c, source, None)?;
                rows.retain(|r| r.user_id == u || r.user_name.eq_ignore_ascii_case(&u));
                Ok(rows)
            })
            .await?)
    }
}

/// A user of `source` by `userName` (case-insensitive), else by SCIM id.
pub(crate) fn find_user(
    c: &Connection,
    source: &str,
    user: &str,
) -> Result<Option<UserRow>, StoreError> {
    match store::find_user_by_name(c, source, user)? {
        Some(u) => Ok(Some(u)),
        None => store::get_user(c, source, user),
    }
}

/// Revokes every live key of a user (its account is going away), each with its event.
/// Returns their ids.
pub(crate) fn revoke_all_tx(
    tx: &Connection,
    source: &str,
    user_id: &str,
    author: &str,
    now: u64,
) -> Result<Vec<String>, StoreError> {
    let mut revoked = Vec::new();
    for row in store::list_api_keys(tx, Some(source), Some(user_id))? {
        if row.revoked_ms.is_none() {
            revoked.push(revoke_tx(tx, row, author, now)?.id);
        }
    }
    Ok(revoked)
}

fn revoke_tx(
    tx: &Connection,
    before: ApiKeyRow,
    author: &str,
    now: u64,
) -> Result<ApiKeyRow, StoreError> {
    store::revoke_api_key(tx, &before.id, now)?;
    let after = ApiKeyRow {
        revoked_ms: Some(now),
        ..before.clone()
    };
    let mut e = event("api_key.revoke", &after, now);
    e.before = serde_json::to_value(&before).ok();
    e.after = serde_json::to_value(&after).ok();
    e.detail = Some(format!("revoked by {author}"));
    store::record_event(tx, &e)?;
    metrics::counter!("portcullis_api_keys_total", "event" => "revoked").increment(1);
    Ok(after)
}

/// A fresh key whose id no stored key has: its id and its text.
fn unused_key(tx: &Connection) -> Result<(String, String), StoreError> {
    // Two random 64-bit ids colliding is not expected in practice; a few draws settle it.
    for _ in 0..4 {
        let (id, text) = new_key();
        if store::get_api_key(tx, &id)?.is_none() {
            return Ok((id, text));
        }
    }
    Err(StoreError::Worker(
        "could not draw an unused API key id".into(),
    ))
}

/// A new key: its id and its whole text (`pcul_<id>_<secret>`).
pub fn new_key() -> (String, String) {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let text = format!(
        "{}{id}_{}",
        ApiKey::PREFIX,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    (id, text)
}

/// The snapshot's form of a stored key.
pub fn to_snapshot(row: &ApiKeyRow) -> ApiKey {
    ApiKey {
        id: row.id.clone(),
        hash: row.hash,
        source: row.source.clone(),
        user_id: row.user_id.clone(),
        expires_at_ms: row.expires_ms,
    }
}

fn event(operation: &str, row: &ApiKeyRow, now: u64) -> IdentityEvent {
    IdentityEvent {
        seq: 0,
        revision: 0,
        at_ms: now,
        source: row.source.clone(),
        operation: operation.into(),
        resource_type: "ApiKey".into(),
        resource_id: row.id.clone(),
        before: None,
        after: None,
        outcome: EventOutcome::Applied,
        status: None,
        detail: None,
        request: None,
        request_sha256: None,
        high_priority: false,
    }
}

#[cfg(test)]
mod tests;
