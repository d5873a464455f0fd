//! Past snapshots, for replay: the snapshot live at an instant, or of a given version, rebuilt
//! from the store (the newest full snapshot at or before it, then the deltas after) and
//! turned into an engine. How far back it reaches is `[audit] snapshot_history_days`.
//!
//! "Live at an instant" means published by the control plane at or before it; nodes apply a
//! version within moments of its publication, and every decision record names the version
//! that actually decided it.

use crate::publisher::Publisher;
use crate::store::{self, Store, StoreError};
use portcullis_shared::engine::Engine;
use portcullis_shared::{codec, delta};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Engines kept built (replaying a sample of records touches a handful of versions).
const CACHED_ENGINES: usize = 4;

/// Why a past snapshot cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no snapshot has been published yet")]
    NothingPublished,
    #[error(
        "no kept snapshot was published at or before {0} (Unix ms): it is before the first \
         publication or beyond the snapshot history's retention"
    )]
    NoneAt(u64),
    #[error("snapshot version {0} is not kept any more (beyond the snapshot history's retention)")]
    NotKept(u64),
    #[error("snapshot version {version} cannot be rebuilt: {why}")]
    Rebuild { version: u64, why: String },
}

/// An engine with the snapshot version and id it was built from.
type Built = (u64, u64, Arc<Engine>);

/// Past snapshots and a few built engines; cheap to clone.
#[derive(Debug, Clone)]
pub struct History {
    store: Store,
    publisher: Arc<Publisher>,
    /// Most recently used last.
    engines: Arc<Mutex<VecDeque<Built>>>,
}

impl History {
    pub fn new(store: Store, publisher: Arc<Publisher>) -> Self {
        Self {
            store,
            publisher,
            engines: Default::default(),
        }
    }

    /// The version live at `at_ms`.
    pub async fn version_at(&self, at_ms: u64) -> Result<u64, HistoryError> {
        if let Some(latest) = self.publisher.latest()
            && latest.created_ms <= at_ms
        {
            return Ok(latest.version);
        }
        self.store
            .read(move |c| store::version_at(c, at_ms))
            .await?
            .ok_or(HistoryError::NoneAt(at_ms))
    }

    /// The engine of the latest published snapshot.
    pub async fn latest(&self) -> Result<Arc<Engine>, HistoryError> {
        let latest = self
            .publisher
            .latest()
            .ok_or(HistoryError::NothingPublished)?;
        self.engine(latest.version).await
    }

    /// The engine of snapshot `version`.
    pub async fn engine(&self, version: u64) -> Result<Arc<Engine>, HistoryError> {
        let latest = self.publisher.latest();
        let live_id = latest
            .as_ref()
            .filter(|p| p.version == version)
            .map(|p| p.snapshot.id);
        if let Some(e) = self.cached(version, live_id) {
            return Ok(e);
        }
        let snapshot = match latest.filter(|p| p.version == version) {
            Some(p) => (*p.snapshot).clone(),
            None => self.rebuild(version).await?,
        };
        let id = snapshot.id;
        let engine = tokio::task::spawn_blocking(move || Engine::new(snapshot))
            .await
            .map_err(|e| HistoryError::Rebuild {
                version,
                why: e.to_string(),
            })?
            .map_err(|e| HistoryError::Rebuild {
                version,
                why: e.to_string(),
            })?;
        let engine = Arc::new(engine);
        let mut cache = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(v, _, _)| *v != version);
        if cache.len() >= CACHED_ENGINES {
            cache.pop_front();
        }
        cache.push_back((version, id, engine.clone()));
        Ok(engine)
    }

    /// A cached engine of `version` (of snapshot id `id` when given: the live one).
    fn cached(&self, version: u64, id: Option<u64>) -> Option<Arc<Engine>> {
        let mut cache = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        let i = cache
            .iter()
            .position(|(v, i, _)| *v == version && id.is_none_or(|id| id == *i))?;
        let hit = cache.remove(i)?;
        let engine = hit.2.clone();
        cache.push_back(hit);
        Some(engine)
    }

    /// Snapshot `version` from the store: the newest full one at or before it, then the
    /// stored deltas up to it.
    async fn rebuild(
        &self,
        version: u64,
    ) -> Result<portcullis_shared::snapshot::Snapshot, HistoryError> {
        let (full, deltas) = self
            .store
            .read(move |c| {
                let full = store::snapshot_at_or_before(c, version)?;
                let after = full.as_ref().map_or(0, |f| f.version);
                Ok::<_, StoreError>((full, store::deltas_between(c, after, version)?))
            })
            .await?;
        let full = full.ok_or(HistoryError::NotKept(version))?;
        let rebuild = move || {
            let why = |e: &dyn std::fmt::Display| HistoryError::Rebuild {
                version,
                why: e.to_string(),
            };
            let (_, snapshot) = codec::decode(&full.payload).map_err(|e| why(&e))?;
            if snapshot.version == version {
                return Ok(snapshot);
            }
            let steps = deltas
                .iter()
                .map(|d| codec::decode_stored_delta(&d.payload).map(|(_, d)| d))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| why(&e))?;
            if steps.last().map(|d| d.version) != Some(version) {
                return Err(HistoryError::NotKept(version));
            }
            let composed = delta::compose(steps.iter()).map_err(|e| why(&e))?;
            composed.apply_to(&snapshot).map_err(|e| why(&e))
        };
        tokio::task::spawn_blocking(rebuild)
            .await
            .map_err(|e| HistoryError::Rebuild {
                version,
                why: e.to_string(),
            })?
    }
}
