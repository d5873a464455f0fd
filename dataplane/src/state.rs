//! The node's view of the world: the current snapshot behind an `ArcSwap`.
//!
//! A request loads the `Arc<NodeSnapshot>` once, when it starts, and decides everything
//! against that one value. A new snapshot replaces the old one whole; readers never block and
//! never see a half-applied change.

use crate::auth::IssuerKeys;
use arc_swap::ArcSwapOption;
use portcullis_shared::Hash32;
use portcullis_shared::codec::{self, CodecError};
use portcullis_shared::engine::{Engine, EngineError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Why a snapshot was refused. The reason is reported to the control plane (NACK).
#[derive(Debug, thiserror::Error)]
pub enum RejectReason {
    #[error("{0}")]
    Codec(#[from] CodecError),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("snapshot version {offered} is not newer than the live version {live}")]
    NotNewer { offered: u64, live: u64 },
    #[error("a delta arrived but this node holds no snapshot to apply it to")]
    NoBase,
}

/// Where the live snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    ControlPlane,
    LastKnownGood,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ControlPlane => "control-plane",
            Self::LastKnownGood => "last-known-good",
        }
    }
}

/// A verified snapshot, ready to decide with.
#[derive(Debug)]
pub struct NodeSnapshot {
    pub engine: Engine,
    /// Token verification keys; shared with the previous snapshot when a delta made this one.
    pub keys: Arc<IssuerKeys>,
    pub origin: Origin,
    /// When this node swapped it in (Unix ms).
    pub applied_at_ms: u64,
    /// The content hash of the frame that made it: the full snapshot, or the last delta.
    pub content_hash: Hash32,
    /// Whether the last frame was a delta.
    pub from_delta: bool,
}

impl NodeSnapshot {
    /// Verifies framing and content hash, validates the policies and indexes the directory.
    pub fn from_bytes(bytes: &[u8], origin: Origin) -> Result<Self, RejectReason> {
        let (header, snapshot) = codec::decode(bytes)?;
        let keys = IssuerKeys::build(&snapshot.issuers, &snapshot.principal_attributes);
        let engine = Engine::new(snapshot)?;
        Ok(Self {
            engine,
            keys: Arc::new(keys),
            origin,
            applied_at_ms: now_ms(),
            content_hash: header.content_hash,
            from_delta: false,
        })
    }

    /// Verifies a framed delta and applies it to this snapshot, giving the next one. Costs
    /// what the delta changes; this snapshot stays as it was.
    pub fn apply_delta(&self, bytes: &[u8], origin: Origin) -> Result<Self, RejectReason> {
        let (header, delta) = codec::decode_delta(bytes)?;
        let engine = self.engine.apply(&delta)?;
        Ok(Self {
            engine,
            keys: self.keys.clone(),
            origin,
            applied_at_ms: now_ms(),
            content_hash: header.content_hash,
            from_delta: true,
        })
    }

    pub fn version(&self) -> u64 {
        self.engine.version()
    }
}

/// Shared, lock-free node state.
#[derive(Debug, Default)]
pub struct NodeState {
    current: ArcSwapOption<NodeSnapshot>,
    connected: AtomicBool,
    last_contact_ms: AtomicU64,
    /// The latest version the control plane said it has published (heartbeats).
    latest_known: AtomicU64,
    /// When this node last knew it held the latest version (Unix ms; 0: never).
    fresh_at_ms: AtomicU64,
    /// Told the version of every snapshot swapped in, so open responses re-decide at once
    /// (see [`crate::standing`]).
    installed: tokio::sync::watch::Sender<u64>,
}

impl NodeState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The live snapshot, if any.
    pub fn current(&self) -> Option<Arc<NodeSnapshot>> {
        self.current.load_full()
    }

    pub fn version(&self) -> u64 {
        self.current.load().as_ref().map_or(0, |s| s.version())
    }

    /// Wakes when a snapshot is swapped in after this call.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.installed.subscribe()
    }

    /// Swaps in `next` if it is newer than the live snapshot, or the same version number with
    /// other content.
    pub fn install(&self, next: NodeSnapshot) -> Result<Arc<NodeSnapshot>, RejectReason> {
        let next = Arc::new(next);
        let mut refused = None;
        self.current.rcu(|cur| match cur {
            // Same number, other content: another store's numbering, which replaces it.
            Some(c)
                if c.version() > next.version()
                    || (c.version() == next.version() && c.engine.id() == next.engine.id()) =>
            {
                refused = Some(c.version());
                cur.clone()
            }
            _ => {
                refused = None;
                Some(next.clone())
            }
        });
        if let Some(live) = refused {
            return Err(RejectReason::NotNewer {
                offered: next.version(),
                live,
            });
        }
        self.installed.send_replace(next.version());
        metrics::gauge!("portcullis_snapshot_version").set(next.version() as f64);
        metrics::gauge!("portcullis_identity_revision").set(next.engine.identity_revision() as f64);
        Ok(next)
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        metrics::gauge!("portcullis_control_plane_connected").set(if connected {
            1.0
        } else {
            0.0
        });
        if connected {
            self.touch();
        }
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Records a message from the control plane.
    pub fn touch(&self) {
        self.last_contact_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn last_contact_ms(&self) -> u64 {
        self.last_contact_ms.load(Ordering::Relaxed)
    }

    /// Records that the node holds the latest version the control plane has published.
    pub fn mark_fresh(&self) {
        self.fresh_at_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// How long (ms) since this node last knew it held the control plane's latest version;
    /// `None` if it never did. Heartbeats alone do not make a node fresh: one that is behind
    /// (its snapshots rejected, or still arriving) goes stale while it keeps hearing them.
    pub fn stale_for_ms(&self, now_ms: u64) -> Option<u64> {
        match self.fresh_at_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some(now_ms.saturating_sub(t)),
        }
    }

    /// How long (ms) since the control plane was last heard from; `None` if never.
    pub fn silent_for_ms(&self, now_ms: u64) -> Option<u64> {
        match self.last_contact_ms() {
            0 => None,
            t => Some(now_ms.saturating_sub(t)),
        }
    }

    /// Records the latest version the control plane has published (its word is final: a
    /// control plane restored from a backup may be at a lower number than before).
    pub fn note_latest(&self, version: u64) {
        let prev = self.latest_known.swap(version, Ordering::Relaxed);
        if version != prev {
            metrics::gauge!("portcullis_control_plane_latest_version").set(version as f64);
        }
    }

    /// The latest version the control plane has published, as far as this node knows.
    pub fn latest_known(&self) -> u64 {
        self.latest_known
            .load(Ordering::Relaxed)
            .max(self.version())
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
