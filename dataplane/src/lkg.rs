//! The last-known-good snapshot on disk.
//!
//! Every snapshot a node applies is written to `<state_dir>/snapshot.pcsn` atomically (temp
//! file, fsync, rename, fsync of the directory). A node that starts while the control plane is
//! unreachable serves from it; a corrupted file is refused by the codec's content hash, and the
//! node then answers 503 rather than guess.

use crate::state::{NodeSnapshot, Origin, RejectReason};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "snapshot.pcsn";

/// Where the last-known-good snapshot lives.
#[derive(Debug, Clone)]
pub struct LastKnownGood {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LkgError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable snapshot: {reason}")]
    Rejected { path: PathBuf, reason: RejectReason },
}

impl LastKnownGood {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Loads and verifies the stored snapshot; `Ok(None)` when there is none.
    pub fn load(&self) -> Result<Option<NodeSnapshot>, LkgError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LkgError::Read { path, source }),
        };
        NodeSnapshot::from_bytes(&bytes, Origin::LastKnownGood)
            .map(Some)
            .map_err(|reason| LkgError::Rejected { path, reason })
    }

    /// Replaces the stored snapshot with `bytes`, atomically and durably.
    pub fn store(&self, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.path())?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_shared::codec;
    use portcullis_shared::snapshot::Snapshot;

    #[test]
    fn round_trips_and_refuses_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lkg = LastKnownGood::new(&dir.path().join("state"));
        assert!(lkg.load().expect("no file is fine").is_none());
        let bytes = codec::encode(&Snapshot::empty(12));
        lkg.store(&bytes).expect("store");
        let s = lkg.load().expect("loads").expect("present");
        assert_eq!(s.version(), 12);
        assert_eq!(s.origin, Origin::LastKnownGood);

        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        std::fs::write(lkg.path(), bad).expect("write");
        assert!(matches!(lkg.load(), Err(LkgError::Rejected { .. })));
    }
}
