//! Bindings versions and break-glass activations.

use super::StoreError;
use rusqlite::{Connection, OptionalExtension, params};

/// One version of the bindings document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingVersionRow {
    pub version: u64,
    pub at_ms: u64,
    pub author: String,
    pub comment: Option<String>,
    /// The document as canonical JSON.
    pub content_json: String,
    /// SHA-256 (hex) of `content_json`.
    pub hash: String,
    /// Unified diff against the previous version's canonical TOML.
    pub diff: String,
}

const BINDING_COLUMNS: &str = "version, at_ms, author, comment, content_json, hash, diff";

fn binding_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BindingVersionRow> {
    Ok(BindingVersionRow {
        version: r.get::<_, i64>(0)? as u64,
        at_ms: r.get::<_, i64>(1)? as u64,
        author: r.get(2)?,
        comment: r.get(3)?,
        content_json: r.get(4)?,
        hash: r.get(5)?,
        diff: r.get(6)?,
    })
}

/// The live (newest) bindings version.
pub fn latest_bindings(c: &Connection) -> Result<Option<BindingVersionRow>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {BINDING_COLUMNS} FROM binding_versions ORDER BY version DESC LIMIT 1"),
        [],
        binding_row,
    )
    .optional()?)
}

pub fn get_bindings(c: &Connection, version: u64) -> Result<Option<BindingVersionRow>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {BINDING_COLUMNS} FROM binding_versions WHERE version = ?1"),
        params![version as i64],
        binding_row,
    )
    .optional()?)
}

/// Every version, newest first.
pub fn binding_history(c: &Connection) -> Result<Vec<BindingVersionRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {BINDING_COLUMNS} FROM binding_versions ORDER BY version DESC"
    ))?;
    let rows = stmt.query_map([], binding_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn insert_bindings(c: &Connection, row: &BindingVersionRow) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO binding_versions (version, at_ms, author, comment, content_json, hash, diff)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            row.version as i64,
            row.at_ms as i64,
            row.author,
            row.comment,
            row.content_json,
            row.hash,
            row.diff
        ],
    )?;
    Ok(())
}

/// One break-glass activation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ActivationRow {
    pub id: String,
    /// The break-glass entry's name in the bindings.
    pub name: String,
    pub role: String,
    pub source: String,
    pub user_id: String,
    pub user_name: String,
    pub reason: String,
    pub author: String,
    pub activated_ms: u64,
    pub expires_ms: u64,
    pub revoked_ms: Option<u64>,
}

const ACTIVATION_COLUMNS: &str = "id, name, role, source, user_id, user_name, reason, author, \
                                  activated_ms, expires_ms, revoked_ms";

fn activation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ActivationRow> {
    Ok(ActivationRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        source: r.get(3)?,
        user_id: r.get(4)?,
        user_name: r.get(5)?,
        reason: r.get(6)?,
        author: r.get(7)?,
        activated_ms: r.get::<_, i64>(8)? as u64,
        expires_ms: r.get::<_, i64>(9)? as u64,
        revoked_ms: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
    })
}

pub fn insert_activation(c: &Connection, a: &ActivationRow) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT INTO break_glass_activations ({ACTIVATION_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            a.id,
            a.name,
            a.role,
            a.source,
            a.user_id,
            a.user_name,
            a.reason,
            a.author,
            a.activated_ms as i64,
            a.expires_ms as i64,
            a.revoked_ms.map(|v| v as i64)
        ],
    )?;
    Ok(())
}

/// Activations neither expired nor revoked at `now_ms`.
pub fn live_activations(c: &Connection, now_ms: u64) -> Result<Vec<ActivationRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {ACTIVATION_COLUMNS} FROM break_glass_activations
         WHERE expires_ms > ?1 AND revoked_ms IS NULL ORDER BY activated_ms"
    ))?;
    let rows = stmt.query_map(params![now_ms as i64], activation_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every activation, newest first, at most `limit`.
pub fn list_activations(c: &Connection, limit: u32) -> Result<Vec<ActivationRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {ACTIVATION_COLUMNS} FROM break_glass_activations
         ORDER BY activated_ms DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map(params![limit], activation_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get_activation(c: &Connection, id: &str) -> Result<Option<ActivationRow>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {ACTIVATION_COLUMNS} FROM break_glass_activations WHERE id = ?1"),
        params![id],
        activation_row,
    )
    .optional()?)
}

/// Ends an activation early. False if it does not exist or already ended.
pub fn revoke_activation(c: &Connection, id: &str, now_ms: u64) -> Result<bool, StoreError> {
    Ok(c.execute(
        "UPDATE break_glass_activations SET revoked_ms = ?2
         WHERE id = ?1 AND revoked_ms IS NULL AND expires_ms > ?2",
        params![id, now_ms as i64],
    )? == 1)
}
