//! Decision records shipped by the nodes, in their own SQLite file (`decisions.db` beside the
//! store): a busy fleet's records never wait on identity writes, nor hold them up.

use super::StoreError;
use portcullis_shared::audit::DecisionRecord;
use rusqlite::{Connection, OptionalExtension, ToSql, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

const MIGRATIONS: &[&str] = &[include_str!("migrations/decisions/0001_init.sql")];

/// The decision-record database; cheap to clone.
#[derive(Clone, Debug)]
pub struct DecisionStore {
    writer: Arc<Mutex<Connection>>,
    /// Queries and scans, which may take a while.
    reader: Arc<Mutex<Connection>>,
    /// Short indexed reads a stream waits on (resume points, SIEM pages), never queued
    /// behind a long query.
    quick: Arc<Mutex<Connection>>,
}

/// A stored record and the numbering it belongs to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredDecision {
    pub epoch: String,
    #[serde(flatten)]
    pub record: DecisionRecord,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// Records not stored before.
    pub new: u64,
    /// Lines that did not parse as a record of the batch.
    pub refused: u64,
}

/// What to look for; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    /// From this instant (Unix ms), inclusive.
    pub from_ms: Option<u64>,
    /// Up to this instant, exclusive.
    pub to_ms: Option<u64>,
    /// A principal's SCIM id or userName.
    pub principal: Option<String>,
    pub decision: Option<String>,
    /// A Cedar entity as recorded (`Model::"gpt-4o"`).
    pub resource: Option<String>,
    pub action: Option<String>,
    pub node: Option<String>,
}

/// One page, oldest first, and where the next one starts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecisionPage {
    pub decisions: Vec<StoredDecision>,
    /// Pass as `after` for the next page; `None` when this is the last.
    pub next: Option<String>,
}

/// How many records of one numbering are stored, and which numbers are missing between the
/// first and the last (records the node counted as dropped, or not yet shipped).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Numbering {
    pub node: String,
    pub epoch: String,
    pub stored: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub missing: u64,
}

fn lock(m: &Mutex<Connection>) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
    m.lock()
        .map_err(|_| StoreError::Worker("decision store mutex poisoned".into()))
}

impl DecisionStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Synced at every commit: the node may delete what the control plane acknowledged.
        let mut writer = super::open_writer(path)?;
        super::migrate_with(&mut writer, MIGRATIONS)?;
        let read_only =
            || -> Result<_, StoreError> { Ok(Arc::new(Mutex::new(super::open_reader(path)?))) };
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            reader: read_only()?,
            quick: read_only()?,
        })
    }

    async fn with<T: Send + 'static>(
        conn: Arc<Mutex<Connection>>,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        tokio::task::spawn_blocking(move || f(&mut *lock(&conn)?))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// The number after the highest record of `node`'s numbering `epoch` ever stored (0 if
    /// none): where the node resumes shipping.
    pub async fn next_seq(&self, node: String, epoch: String) -> Result<u64, StoreError> {
        Self::with(self.quick.clone(), move |c| {
            let next: Option<i64> = c
                .query_row(
                    "SELECT next_seq FROM shipped WHERE node = ?1 AND epoch = ?2",
                    params![node, epoch],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(next.map_or(0, |n| n as u64))
        })
        .await
    }

    /// Stores a shipped batch: JSON Lines of records numbered `first..=last` by `node`'s
    /// numbering `epoch`. Records already stored are left as they are. A line that does not
    /// parse, or is numbered outside the batch, is refused and counted; the rest are stored.
    /// The node id is the stream's, whatever the line says.
    pub async fn insert_batch(
        &self,
        node: String,
        epoch: String,
        (first, last): (u64, u64),
        jsonl: bytes::Bytes,
    ) -> Result<Stored, StoreError> {
        let stored_ms = super::now_ms() as i64;
        Self::with(self.writer.clone(), move |c| {
            let mut out = Stored::default();
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO decisions (node, epoch, seq, at_ms, principal_id,
                       user_name, source, action, resource, decision, stored_ms, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?;
                for line in jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let mut r = match serde_json::from_slice::<DecisionRecord>(line) {
                        Ok(r) if (first..=last).contains(&r.seq) => r,
                        _ => {
                            out.refused += 1;
                            continue;
                        }
                    };
                    // Stored as sent, unless it names another node.
                    let text = match std::str::from_utf8(line) {
                        Ok(t) if r.node == node => t.to_owned(),
                        _ => {
                            r.node.clone_from(&node);
                            serde_json::to_string(&r)?
                        }
                    };
                    let p = r.principal.as_ref();
                    out.new += stmt.execute(params![
                        r.node,
                        epoch,
                        r.seq as i64,
                        r.at_ms as i64,
                        p.map(|p| &p.id),
                        p.map(|p| &p.user_name),
                        p.map(|p| &p.source),
                        r.action,
                        r.resource,
                        r.decision,
                        stored_ms,
                        text,
                    ])? as u64;
                }
            }
            tx.execute(
                "INSERT INTO shipped (node, epoch, next_seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (node, epoch) DO UPDATE SET next_seq = MAX(next_seq, ?3)",
                params![node, epoch, last.saturating_add(1) as i64],
            )?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// One page of records matching `filter`, oldest first, after the cursor `after`.
    pub async fn query(
        &self,
        filter: DecisionFilter,
        after: Option<String>,
        limit: u32,
    ) -> Result<DecisionPage, StoreError> {
        Self::with(self.reader.clone(), move |c| {
            query(c, &filter, after.as_deref(), limit)
        })
        .await
    }

    /// The record `seq` of `node` (of its numbering `epoch`, or of every numbering with that
    /// number when not given).
    pub async fn get(
        &self,
        node: String,
        epoch: Option<String>,
        seq: u64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        Self::with(self.reader.clone(), move |c| {
            let mut stmt = c.prepare(
                "SELECT epoch, record FROM decisions
                 WHERE node = ?1 AND seq = ?2 AND (?3 IS NULL OR epoch = ?3)",
            )?;
            let rows = stmt.query_map(params![node, seq as i64, epoch], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (epoch, text) = row?;
                Ok(StoredDecision {
                    epoch,
                    record: serde_json::from_str(&text)?,
                })
            })
            .collect()
        })
        .await
    }

    /// Per node and numbering: how many records are stored and how many numbers are missing.
    pub async fn numberings(&self) -> Result<Vec<Numbering>, StoreError> {
        Self::with(self.reader.clone(), |c| {
            let mut stmt = c.prepare(
                "SELECT node, epoch, COUNT(*), MIN(seq), MAX(seq) FROM decisions
                 GROUP BY node, epoch ORDER BY node, epoch",
            )?;
            let rows = stmt.query_map([], |r| {
                let (stored, first, last) = (
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                    r.get::<_, i64>(4)? as u64,
                );
                Ok(Numbering {
                    node: r.get(0)?,
                    epoch: r.get(1)?,
                    stored,
                    first_seq: first,
                    last_seq: last,
                    missing: (last - first + 1).saturating_sub(stored),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Up to `limit` records stored after `after` (an `id`), in storing order, with their ids.
    pub async fn after_row(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, StoredDecision)>, StoreError> {
        Self::with(self.quick.clone(), move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, epoch, record FROM decisions WHERE id > ?1
                 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after as i64, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (row, epoch, text) = row?;
                out.push((
                    row,
                    StoredDecision {
                        epoch,
                        record: serde_json::from_str(&text)?,
                    },
                ));
            }
            Ok(out)
        })
        .await
    }

    /// The highest `id` ever given (0 before the first record).
    pub async fn last_row(&self) -> Result<u64, StoreError> {
        Self::with(self.quick.clone(), |c| {
            Ok(c.query_row(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'decisions'), 0)",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
        .await
    }

    /// Every distinct resource the stored records requested (as the engine was asked).
    pub async fn recorded_resources(
        &self,
    ) -> Result<Vec<portcullis_shared::request::Resource>, StoreError> {
        Self::with(self.reader.clone(), |c| {
            let mut stmt = c.prepare(
                "SELECT DISTINCT json_extract(record, '$.request.resource') FROM decisions
                 WHERE json_extract(record, '$.request.resource') IS NOT NULL",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for text in rows {
                out.push(serde_json::from_str(&text?)?);
            }
            Ok(out)
        })
        .await
    }

    /// Deletes records decided before `before_ms`; returns how many.
    pub async fn delete_before(&self, before_ms: u64) -> Result<usize, StoreError> {
        Self::with(self.writer.clone(), move |c| {
            Ok(c.execute(
                "DELETE FROM decisions WHERE at_ms < ?1",
                params![before_ms as i64],
            )?)
        })
        .await
    }
}

/// The cursor: the last row's instant and id.
fn parse_cursor(after: &str) -> Option<(i64, i64)> {
    let (at, row) = after.split_once('.')?;
    Some((at.parse().ok()?, row.parse().ok()?))
}

fn query(
    c: &Connection,
    f: &DecisionFilter,
    after: Option<&str>,
    limit: u32,
) -> Result<DecisionPage, StoreError> {
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let mut clauses: Vec<String> = Vec::new();
    let mut bind = |v: Box<dyn ToSql>| {
        args.push(v);
        format!("?{}", args.len())
    };
    if let Some(v) = f.from_ms {
        clauses.push(format!("at_ms >= {}", bind(Box::new(v as i64))));
    }
    if let Some(v) = f.to_ms {
        clauses.push(format!("at_ms < {}", bind(Box::new(v as i64))));
    }
    if let Some(v) = &f.principal {
        let p = bind(Box::new(v.clone()));
        clauses.push(format!("(principal_id = {p} OR user_name = {p})"));
    }
    for (column, value) in [
        ("decision", &f.decision),
        ("resource", &f.resource),
        ("action", &f.action),
        ("node", &f.node),
    ] {
        if let Some(v) = value {
            clauses.push(format!("{column} = {}", bind(Box::new(v.clone()))));
        }
    }
    if let Some((at, row)) = after.and_then(parse_cursor) {
        let (at, row) = (bind(Box::new(at)), bind(Box::new(row)));
        clauses.push(format!("(at_ms, id) > ({at}, {row})"));
    }
    let mut sql = String::from("SELECT at_ms, id, epoch, record FROM decisions");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    let limit = limit.clamp(1, 10_000);
    sql.push_str(&format!(" ORDER BY at_ms, id LIMIT {}", limit + 1));
    let mut stmt = c.prepare(&sql)?;
    let params: Vec<&dyn ToSql> = args.iter().map(|b| b.as_ref()).collect();
    let rows = stmt.query_map(params.as_slice(), |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut decisions = Vec::new();
    let mut last = None;
    let mut more = false;
    for row in rows {
        let (at, id, epoch, text) = row?;
        if decisions.len() == limit as usize {
            more = true;
            break;
        }
        decisions.push(StoredDecision {
            epoch,
            record: serde_json::from_str(&text)?,
        });
        last = Some((at, id));
    }
    Ok(DecisionPage {
        decisions,
        next: more
            .then_some(last)
            .flatten()
            .map(|(at, row)| format!("{at}.{row}")),
    })
}
