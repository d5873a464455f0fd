//! SCIM tokens, policy versions, snapshots and the node registry.

use super::StoreError;
use portcullis_shared::Hash32;
use portcullis_shared::snapshot::{AttributeDecl, PolicyFile, PolicyVersion};
use rusqlite::{Connection, OptionalExtension, params};

// ---- SCIM tokens ----------------------------------------------------------------------------

/// A SCIM bearer token's record (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub source: String,
    pub label: Option<String>,
    pub created_ms: u64,
    pub revoked_ms: Option<u64>,
    /// After this instant the token no longer opens its source (a rotation's overlap).
    pub expires_ms: Option<u64>,
}

pub fn insert_token(c: &Connection, row: &TokenRow, sha256_hex: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO scim_tokens (id, source, token_sha256, label, created_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            row.id,
            row.source,
            sha256_hex,
            row.label,
            row.created_ms as i64,
            row.expires_ms.map(|v| v as i64)
        ],
    )?;
    Ok(())
}

/// The source a live token (not revoked, not expired at `now_ms`) belongs to, by its SHA-256.
pub fn token_source(c: &Connection, sha256_hex: &str) -> Result<Option<String>, StoreError> {
    Ok(c.query_row(
        "SELECT source FROM scim_tokens WHERE token_sha256 = ?1 AND revoked_ms IS NULL
           AND (expires_ms IS NULL OR expires_ms > ?2)",
        params![sha256_hex, super::now_ms() as i64],
        |r| r.get(0),
    )
    .optional()?)
}

/// Makes every live token of `source` expire at `at_ms` (unless it expires sooner already);
/// returns how many. The rotation's overlap: old tokens keep working until then.
pub fn expire_tokens(c: &Connection, source: &str, at_ms: u64) -> Result<usize, StoreError> {
    Ok(c.execute(
        "UPDATE scim_tokens SET expires_ms = ?2
         WHERE source = ?1 AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?2)",
        params![source, at_ms as i64],
    )?)
}

pub fn list_tokens(c: &Connection) -> Result<Vec<TokenRow>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT id, source, label, created_ms, revoked_ms, expires_ms FROM scim_tokens
         ORDER BY created_ms, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TokenRow {
            id: r.get(0)?,
            source: r.get(1)?,
            label: r.get(2)?,
            created_ms: r.get::<_, i64>(3)? as u64,
            revoked_ms: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
            expires_ms: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes a token; false if no live token has that id.
pub fn revoke_token(c: &Connection, id: &str, at_ms: u64) -> Result<bool, StoreError> {
    Ok(c.execute(
        "UPDATE scim_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
        params![id, at_ms as i64],
    )? > 0)
}

// ---- policy versions ------------------------------------------------------------------------

/// A policy version as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    pub version: PolicyVersion,
    pub schema: String,
    /// The principal attributes `schema` declares beyond the built-in ones.
    pub attributes: Vec<AttributeDecl>,
    /// The resource labels `schema` declares.
    pub labels: Vec<AttributeDecl>,
    pub files: Vec<PolicyFile>,
    pub created_ms: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FileJson {
    name: String,
    text: String,
}

pub fn latest_policy(c: &Connection) -> Result<Option<PolicyRow>, StoreError> {
    let row = c
        .query_row(
            "SELECT counter, hash, schema, files_json, created_ms, attributes_json, labels_json
             FROM policy_versions ORDER BY counter DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)? as u64,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            },
        )
        .optional()?;
    let Some((counter, hash, schema, files, created_ms, attributes, labels)) = row else {
        return Ok(None);
    };
    let files: Vec<FileJson> = serde_json::from_str(&files)?;
    let attributes: Vec<AttributeDecl> = serde_json::from_str(&attributes)?;
    let labels: Vec<AttributeDecl> = serde_json::from_str(&labels)?;
    Ok(Some(PolicyRow {
        version: PolicyVersion {
            counter,
            hash: Hash32::from_hex(&hash).unwrap_or_default(),
        },
        schema,
        attributes,
        labels,
        files: files
            .into_iter()
            .map(|f| PolicyFile {
                name: f.name,
                text: f.text,
            })
            .collect(),
        created_ms,
    }))
}

pub fn insert_policy(c: &Connection, row: &PolicyRow) -> Result<(), StoreError> {
    let files: Vec<FileJson> = row
        .files
        .iter()
        .map(|f| FileJson {
            name: f.name.clone(),
            text: f.text.clone(),
        })
        .collect();
    c.execute(
        "INSERT INTO policy_versions
           (counter, hash, schema, files_json, created_ms, attributes_json, labels_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            row.version.counter as i64,
            row.version.hash.to_hex(),
            row.schema,
            serde_json::to_string(&files)?,
            row.created_ms as i64,
            serde_json::to_string(&row.attributes)?,
            serde_json::to_string(&row.labels)?
        ],
    )?;
    Ok(())
}

// ---- snapshots ------------------------------------------------------------------------------

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub version: u64,
    pub identity_revision: u64,
    pub policy_counter: u64,
    pub content_hash: Hash32,
    pub created_ms: u64,
    /// Framed bytes (see `portcullis_shared::codec`).
    pub payload: Vec<u8>,
}

/// The highest snapshot version ever allocated (0 if none).
pub fn snapshot_version(c: &Connection) -> Result<u64, StoreError> {
    Ok(c.query_row(
        "SELECT value FROM meta WHERE key = 'snapshot_version'",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Allocates the next snapshot version, at least `min`.
pub fn allocate_snapshot_version(c: &Connection, min: u64) -> Result<u64, StoreError> {
    let next = snapshot_version(c)?
        .checked_add(1)
        .filter(|v| *v <= i64::MAX as u64)
        .ok_or_else(|| StoreError::Worker("snapshot versions exhausted".into()))?
        .max(min);
    if next > i64::MAX as u64 {
        return Err(StoreError::Worker(format!(
            "snapshot version {next} cannot be stored"
        )));
    }
    c.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'snapshot_version'",
        params![next as i64],
    )?;
    Ok(next)
}

/// Stores a snapshot. Older ones go once more than `keep` are stored, except those replay
/// needs: every snapshot created after `history_since_ms`, and the newest one before it.
pub fn insert_snapshot(
    c: &Connection,
    row: &SnapshotRow,
    keep: u32,
    history_since_ms: u64,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO snapshots (version, identity_revision, policy_counter, content_hash,
                                created_ms, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            row.version as i64,
            row.identity_revision as i64,
            row.policy_counter as i64,
            row.content_hash.to_hex(),
            row.created_ms as i64,
            row.payload
        ],
    )?;
    c.execute(
        "DELETE FROM snapshots WHERE version NOT IN
            (SELECT version FROM snapshots ORDER BY version DESC LIMIT ?1)
          AND version < (SELECT COALESCE(MAX(version), 0) FROM snapshots WHERE created_ms <= ?2)",
        params![keep.max(1), history_since_ms as i64],
    )?;
    Ok(())
}

pub fn latest_snapshot(c: &Connection) -> Result<Option<SnapshotRow>, StoreError> {
    Ok(c.query_row(
        "SELECT version, identity_revision, policy_counter, content_hash, created_ms, payload
         FROM snapshots ORDER BY version DESC LIMIT 1",
        [],
        snapshot_row,
    )
    .optional()?)
}

fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRow> {
    Ok(SnapshotRow {
        version: r.get::<_, i64>(0)? as u64,
        identity_revision: r.get::<_, i64>(1)? as u64,
        policy_counter: r.get::<_, i64>(2)? as u64,
        content_hash: Hash32::from_hex(&r.get::<_, String>(3)?).unwrap_or_default(),
        created_ms: r.get::<_, i64>(4)? as u64,
        payload: r.get(5)?,
    })
}

fn delta_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeltaRow> {
    Ok(DeltaRow {
        version: r.get::<_, i64>(0)? as u64,
        base_version: r.get::<_, i64>(1)? as u64,
        identity_revision: r.get::<_, i64>(2)? as u64,
        created_ms: r.get::<_, i64>(3)? as u64,
        content_hash: Hash32::from_hex(&r.get::<_, String>(4)?).unwrap_or_default(),
        payload: r.get(5)?,
    })
}

/// The newest stored full snapshot at or before `version`.
pub fn snapshot_at_or_before(
    c: &Connection,
    version: u64,
) -> Result<Option<SnapshotRow>, StoreError> {
    Ok(c.query_row(
        "SELECT version, identity_revision, policy_counter, content_hash, created_ms, payload
         FROM snapshots WHERE version <= ?1 ORDER BY version DESC LIMIT 1",
        params![version as i64],
        snapshot_row,
    )
    .optional()?)
}

/// The newest version published at or before `at_ms`, by the stored snapshots and deltas.
pub fn version_at(c: &Connection, at_ms: u64) -> Result<Option<u64>, StoreError> {
    Ok(c.query_row(
        "SELECT MAX(v) FROM (
           SELECT MAX(version) AS v FROM snapshots WHERE created_ms <= ?1
           UNION ALL SELECT MAX(version) FROM snapshot_deltas WHERE created_ms <= ?1)",
        params![at_ms as i64],
        |r| r.get::<_, Option<i64>>(0),
    )?
    .map(|v| v as u64))
}

/// The stored deltas to versions in `(after, through]`, oldest first.
pub fn deltas_between(
    c: &Connection,
    after: u64,
    through: u64,
) -> Result<Vec<DeltaRow>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT version, base_version, identity_revision, created_ms, content_hash, payload
         FROM snapshot_deltas WHERE version > ?1 AND version <= ?2 ORDER BY version",
    )?;
    let rows = stmt.query_map(params![after as i64, through as i64], delta_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A stored delta: the changes from `base_version` to `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRow {
    pub version: u64,
    pub base_version: u64,
    pub identity_revision: u64,
    pub created_ms: u64,
    pub content_hash: Hash32,
    /// Framed bytes (see `portcullis_shared::codec::encode_delta`).
    pub payload: Vec<u8>,
}

/// Stores a delta. Older ones go once more than `keep` are stored, except those replay needs:
/// every delta after the newest snapshot created before `history_since_ms`.
pub fn insert_delta(
    c: &Connection,
    row: &DeltaRow,
    keep: u32,
    history_since_ms: u64,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO snapshot_deltas (version, base_version, identity_revision, created_ms,
                                      content_hash, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            row.version as i64,
            row.base_version as i64,
            row.identity_revision as i64,
            row.created_ms as i64,
            row.content_hash.to_hex(),
            row.payload
        ],
    )?;
    c.execute(
        "DELETE FROM snapshot_deltas WHERE version <=
            (SELECT version FROM snapshot_deltas ORDER BY version DESC LIMIT 1 OFFSET ?1)
          AND version <= (SELECT COALESCE(MAX(version), 0) FROM snapshots WHERE created_ms <= ?2)",
        params![keep.max(1), history_since_ms as i64],
    )?;
    Ok(())
}

/// Every stored delta, oldest first.
pub fn list_deltas(c: &Connection) -> Result<Vec<DeltaRow>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT version, base_version, identity_revision, created_ms, content_hash, payload
         FROM snapshot_deltas ORDER BY version",
    )?;
    let rows = stmt
        .query_map([], delta_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

// ---- receipts ------------------------------------------------------------------------------

/// How many versions of acknowledgements and version records are kept.
const RECEIPT_VERSIONS: i64 = 200_000;

/// Records that `version` carries `identity_revision`.
pub fn record_published(
    c: &Connection,
    version: u64,
    identity_revision: u64,
    published_ms: u64,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT OR REPLACE INTO published_versions (version, identity_revision, published_ms)
         VALUES (?1, ?2, ?3)",
        params![
            version as i64,
            identity_revision as i64,
            published_ms as i64
        ],
    )?;
    if version.is_multiple_of(1024) {
        let floor = version as i64 - RECEIPT_VERSIONS;
        c.execute(
            "DELETE FROM published_versions WHERE version < ?1",
            params![floor],
        )?;
        c.execute("DELETE FROM node_acks WHERE version < ?1", params![floor])?;
    }
    Ok(())
}

/// A node acknowledged `version` at `acked_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRow {
    pub node_id: String,
    pub version: u64,
    pub acked_ms: u64,
}

pub fn record_ack(c: &Connection, a: &AckRow) -> Result<(), StoreError> {
    c.execute(
        "INSERT OR IGNORE INTO node_acks (node_id, version, acked_ms) VALUES (?1, ?2, ?3)",
        params![a.node_id, a.version as i64, a.acked_ms as i64],
    )?;
    Ok(())
}

/// The first published version carrying identity revision `revision` or later, with when it
/// was published.
pub fn first_version_with(c: &Connection, revision: u64) -> Result<Option<(u64, u64)>, StoreError> {
    Ok(c.query_row(
        "SELECT version, published_ms FROM published_versions
         WHERE identity_revision >= ?1 ORDER BY version LIMIT 1",
        params![revision as i64],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
    .optional()?)
}

/// For each node, its first acknowledgement of `version` or a later one: `(node, version,
/// acked_ms)`.
pub fn first_acks_from(c: &Connection, version: u64) -> Result<Vec<AckRow>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT node_id, version, MIN(acked_ms) FROM node_acks
         WHERE version >= ?1 GROUP BY node_id ORDER BY node_id",
    )?;
    let rows = stmt
        .query_map(params![version as i64], |r| {
            Ok(AckRow {
                node_id: r.get(0)?,
                version: r.get::<_, i64>(1)? as u64,
                acked_ms: r.get::<_, i64>(2)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// What a receipt says about the event it is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventHead {
    pub seq: u64,
    pub revision: u64,
    pub at_ms: u64,
    pub source: String,
    pub operation: String,
    pub resource_type: String,
    pub resource_id: String,
    /// Only an applied event changed identity, so only it has something to enforce.
    pub applied: bool,
}

fn event_head_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventHead> {
    Ok(EventHead {
        seq: r.get::<_, i64>(0)? as u64,
        revision: r.get::<_, i64>(1)? as u64,
        at_ms: r.get::<_, i64>(2)? as u64,
        source: r.get(3)?,
        operation: r.get(4)?,
        resource_type: r.get(5)?,
        resource_id: r.get(6)?,
        applied: r.get::<_, String>(7)? == "applied",
    })
}

/// The event with sequence number `seq`.
pub fn event_head(c: &Connection, seq: u64) -> Result<Option<EventHead>, StoreError> {
    Ok(c.query_row(
        "SELECT seq, revision, at_ms, source, operation, resource_type, resource_id, outcome
         FROM identity_events WHERE seq = ?1",
        params![seq as i64],
        event_head_row,
    )
    .optional()?)
}

/// The newest `limit` applied events about resource `resource_id`, newest first.
pub fn events_about(
    c: &Connection,
    resource_id: &str,
    limit: u32,
) -> Result<Vec<EventHead>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, revision, at_ms, source, operation, resource_type, resource_id, outcome
         FROM identity_events WHERE resource_id = ?1 AND outcome = 'applied'
         ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![resource_id, limit], event_head_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

// ---- nodes ----------------------------------------------------------------------------------

/// What the control plane knows of a data-plane node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    pub node_id: String,
    pub agent: String,
    pub listen: String,
    pub peer: String,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub applied_version: u64,
    pub last_ack_ms: Option<u64>,
    pub last_nack_version: Option<u64>,
    pub last_nack_reason: Option<String>,
    pub last_nack_ms: Option<u64>,
}

pub fn upsert_node(c: &Connection, n: &NodeRow) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO nodes (node_id, agent, listen, peer, first_seen_ms, last_seen_ms,
                            applied_version, last_ack_ms, last_nack_version, last_nack_reason,
                            last_nack_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (node_id) DO UPDATE SET
            agent = excluded.agent, listen = excluded.listen, peer = excluded.peer,
            last_seen_ms = excluded.last_seen_ms, applied_version = excluded.applied_version,
            last_ack_ms = excluded.last_ack_ms, last_nack_version = excluded.last_nack_version,
            last_nack_reason = excluded.last_nack_reason, last_nack_ms = excluded.last_nack_ms",
        params![
            n.node_id,
            n.agent,
            n.listen,
            n.peer,
            n.first_seen_ms as i64,
            n.last_seen_ms as i64,
            n.applied_version as i64,
            n.last_ack_ms.map(|v| v as i64),
            n.last_nack_version.map(|v| v as i64),
            n.last_nack_reason,
            n.last_nack_ms.map(|v| v as i64),
        ],
    )?;
    Ok(())
}

pub fn list_nodes(c: &Connection) -> Result<Vec<NodeRow>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT node_id, agent, listen, peer, first_seen_ms, last_seen_ms, applied_version,
                last_ack_ms, last_nack_version, last_nack_reason, last_nack_ms
         FROM nodes ORDER BY node_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let opt = |i: usize| -> rusqlite::Result<Option<u64>> {
            Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64))
        };
        Ok(NodeRow {
            node_id: r.get(0)?,
            agent: r.get(1)?,
            listen: r.get(2)?,
            peer: r.get(3)?,
            first_seen_ms: r.get::<_, i64>(4)? as u64,
            last_seen_ms: r.get::<_, i64>(5)? as u64,
            applied_version: r.get::<_, i64>(6)? as u64,
            last_ack_ms: opt(7)?,
            last_nack_version: opt(8)?,
            last_nack_reason: r.get(9)?,
            last_nack_ms: opt(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

// ---- SIEM cursors --------------------------------------------------------------------------

/// Where sink `sink` stands in `stream` (`None` before its first delivery).
pub fn siem_cursor(c: &Connection, sink: &str, stream: &str) -> Result<Option<u64>, StoreError> {
    Ok(c.query_row(
        "SELECT position FROM siem_cursors WHERE sink = ?1 AND stream = ?2",
        params![sink, stream],
        |r| r.get::<_, i64>(0),
    )
    .optional()?
    .map(|p| p as u64))
}

/// Records that sink `sink` delivered `stream` up to `position`.
pub fn set_siem_cursor(
    c: &Connection,
    sink: &str,
    stream: &str,
    position: u64,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO siem_cursors (sink, stream, position, updated_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (sink, stream) DO UPDATE SET position = ?3, updated_ms = ?4",
        params![sink, stream, position as i64, super::now_ms() as i64],
    )?;
    Ok(())
}
