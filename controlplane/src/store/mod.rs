//! The control plane's store: one SQLite file in WAL mode, migrations embedded and applied at
//! open. This module is the only one that speaks SQL.
//!
//! All access goes through one connection behind a mutex: SQLite serialises writers anyway, and
//! the control plane is not on any request path. Async callers use [`Store::run`], which moves
//! the work to the blocking pool; the CLI uses [`Store::blocking`].

mod api_keys;
mod bindings;
mod decisions;
mod identity;
mod records;

pub use api_keys::*;
pub use bindings::*;
pub use decisions::*;
pub use identity::*;
pub use records::*;

use rusqlite::{Connection, OpenFlags, Transaction};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored JSON does not parse: {0}")]
    Json(#[from] serde_json::Error),
    #[error("database schema version {found} is newer than this build understands ({known})")]
    TooNew { found: u32, known: u32 },
    #[error("the store's worker thread failed: {0}")]
    Worker(String),
}

/// Embedded migrations, applied in order; `PRAGMA user_version` records the last applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_member_display.sql"),
    include_str!("migrations/0003_token_expiry.sql"),
    include_str!("migrations/0004_policy_attributes.sql"),
    include_str!("migrations/0005_event_outcomes.sql"),
    include_str!("migrations/0006_event_request_digest.sql"),
    include_str!("migrations/0007_bindings.sql"),
    include_str!("migrations/0008_policy_labels.sql"),
    include_str!("migrations/0009_events_by_revision.sql"),
    include_str!("migrations/0010_snapshot_deltas.sql"),
    include_str!("migrations/0011_receipts.sql"),
    include_str!("migrations/0012_siem_cursors.sql"),
    include_str!("migrations/0013_api_keys.sql"),
];

/// How many read-only connections serve long reads (snapshot compilation, SCIM queries)
/// beside the one writer. WAL lets them read a consistent state while the writer commits.
const READERS: usize = 3;

/// A handle to the store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, switches it to WAL and applies any
    /// pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Durable at commit: the SCIM response is only sent after the write is on disk.
        let mut conn = open_writer(path)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        let readers = (0..READERS)
            .map(|_| Ok(Mutex::new(open_reader(path)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(readers),
            next_reader: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            path: path.to_owned(),
        })
    }

    /// Runs a read on one of the read-only connections, on the blocking pool: it sees every
    /// commit that finished before it started and never waits for the writer.
    pub async fn read<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            // Prefer an idle reader; otherwise wait for the one in turn.
            let n = readers.len();
            let mut guard = (0..n)
                .find_map(|i| readers[(start + i) % n].try_lock().ok())
                .map_or_else(
                    || {
                        readers[start % n]
                            .lock()
                            .map_err(|_| StoreError::Worker("reader mutex poisoned".into()))
                    },
                    Ok,
                )?;
            f(&mut guard)
        })
        .await
        .map_err(|e| E::from(StoreError::Worker(e.to_string())))?
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the calling thread.
    pub fn blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Worker("store mutex poisoned".into()))?;
        f(&mut conn)
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn run<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Worker("store mutex poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| E::from(StoreError::Worker(e.to_string())))?
    }

    /// Runs `f` inside one immediate (write-locking) transaction, committed if `f` succeeds.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(StoreError::from)?;
            let out = f(&tx)?;
            tx.commit().map_err(StoreError::from)?;
            Ok(out)
        })
        .await
    }
}

/// Opens (creating it and its directory if needed) a database for writing: WAL, every commit
/// synced, waiting up to 10 s for a lock.
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// A read-only connection to the same database.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_with(conn, MIGRATIONS)
}

/// Applies the migrations a database has not seen yet.
fn migrate_with(conn: &mut Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = migrations.len() as u32;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied store migration");
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
