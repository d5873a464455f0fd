//! API keys: only their hashes, with the principal each stands for.

use super::StoreError;
use portcullis_shared::Hash32;
use rusqlite::{Connection, OptionalExtension, params};

/// One API key as stored. Never holds the key's text; its hash is left out of JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKeyRow {
    /// The public id (16 lowercase hex digits), also part of the key's text.
    pub id: String,
    /// What the key is for, as its issuer named it.
    pub name: String,
    /// The principal: a user (or service account) of `source`, by SCIM id.
    pub source: String,
    pub user_id: String,
    /// The user's `userName` when the key was issued.
    pub user_name: String,
    /// SHA-256 of the key's whole text.
    #[serde(skip)]
    pub hash: Hash32,
    pub created_ms: u64,
    /// From this instant on the key is refused; `None`: never expires.
    pub expires_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
    /// Who issued it.
    pub author: String,
}

impl ApiKeyRow {
    /// `live`, `expired` or `revoked` at `now_ms`.
    pub fn state(&self, now_ms: u64) -> &'static str {
        match (self.revoked_ms, self.expires_ms) {
            (Some(_), _) => "revoked",
            (None, Some(e)) if e <= now_ms => "expired",
            _ => "live",
        }
    }
}

const COLUMNS: &str =
    "id, name, source, user_id, user_name, hash, created_ms, expires_ms, revoked_ms, author";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    let hash: Vec<u8> = r.get(5)?;
    let hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            5,
            rusqlite::types::Type::Blob,
            "an API key hash is not 32 bytes".into(),
        )
    })?;
    Ok(ApiKeyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        source: r.get(2)?,
        user_id: r.get(3)?,
        user_name: r.get(4)?,
        hash: Hash32(hash),
        created_ms: r.get::<_, i64>(6)? as u64,
        expires_ms: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        revoked_ms: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
        author: r.get(9)?,
    })
}

pub fn insert_api_key(c: &Connection, k: &ApiKeyRow) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ),
        params![
            k.id,
            k.name,
            k.source,
            k.user_id,
            k.user_name,
            k.hash.0.as_slice(),
            k.created_ms as i64,
            k.expires_ms.map(|v| v as i64),
            k.revoked_ms.map(|v| v as i64),
            k.author,
        ],
    )?;
    Ok(())
}

/// Keys neither revoked nor expired at `now_ms`, by id.
pub fn live_api_keys(c: &Connection, now_ms: u64) -> Result<Vec<ApiKeyRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys
         WHERE revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?1) ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![now_ms as i64], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every key (revoked and expired ones too), newest first; `source` and `user_id` narrow
/// the list when given.
pub fn list_api_keys(
    c: &Connection,
    source: Option<&str>,
    user_id: Option<&str>,
) -> Result<Vec<ApiKeyRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys
         WHERE (?1 IS NULL OR source = ?1) AND (?2 IS NULL OR user_id = ?2)
         ORDER BY created_ms DESC, id"
    ))?;
    let rows = stmt.query_map(params![source, user_id], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get_api_key(c: &Connection, id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
        params![id],
        row,
    )
    .optional()?)
}

/// Revokes a key as of `now_ms`. False if it does not exist or was revoked already (an
/// expired key can still be revoked, for the record).
pub fn revoke_api_key(c: &Connection, id: &str, now_ms: u64) -> Result<bool, StoreError> {
    Ok(c.execute(
        "UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
        params![id, now_ms as i64],
    )? == 1)
}
