//! The last-known-good snapshot on disk: a full snapshot plus the deltas applied since.
//!
//! `<state_dir>/snapshot.pcsn` holds a full framed snapshot, replaced atomically (temp file,
//! fsync, rename, fsync of the directory). `<state_dir>/deltas.log` holds the framed deltas
//! applied after it, each as a 4-byte little-endian length and the frame, appended and synced
//! one by one, so persisting a one-user change costs a few hundred bytes, not the directory.
//! When the log outgrows half the full snapshot (at least 1 MiB), the node writes its live
//! snapshot as the new full one and starts an empty log.
//!
//! Loading replays the log onto the full snapshot: a record already contained in it is
//! skipped, and replay stops at the first record that is cut short, corrupted (the codec's
//! content hash) or does not follow on; what was applied until then is served. A corrupted
//! full snapshot is refused and the node answers 503 rather than guess. Files here were
//! verified (signature included) when they arrived; on load only their content hashes are
//! checked, as the node wrote them itself, compacted full snapshots included.

use crate::state::{NodeSnapshot, Origin, RejectReason};
use portcullis_shared::codec;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const FILE: &str = "snapshot.pcsn";
const LOG: &str = "deltas.log";
/// The log is compacted once it exceeds this many bytes and half the full snapshot.
const MIN_COMPACT_BYTES: u64 = 1 << 20;
/// A record longer than this is taken for garbage, not a delta.
const MAX_RECORD: usize = 1 << 30;

/// Where the last-known-good snapshot lives, and how large its parts are.
#[derive(Debug, Clone)]
pub struct LastKnownGood {
    dir: PathBuf,
    full_bytes: u64,
    log_bytes: u64,
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
            full_bytes: 0,
            log_bytes: 0,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG)
    }

    /// Loads and verifies the stored snapshot and replays the deltas after it; `Ok(None)`
    /// when there is none.
    pub fn load(&mut self) -> Result<Option<NodeSnapshot>, LkgError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LkgError::Read { path, source }),
        };
        self.full_bytes = bytes.len() as u64;
        let mut live = NodeSnapshot::from_bytes(&bytes, Origin::LastKnownGood)
            .map_err(|reason| LkgError::Rejected { path, reason })?;
        let log = match std::fs::File::open(self.log_path()) {
            Ok(f) => f,
            Err(_) => return Ok(Some(live)),
        };
        let mut log = std::io::BufReader::new(log);
        let mut replayed = 0;
        // The end of the last record that was read whole and usable.
        let mut good_end = 0u64;
        let mut damaged = false;
        loop {
            let mut len = [0u8; 4];
            if log.read_exact(&mut len).is_err() {
                break;
            }
            let len = u32::from_le_bytes(len) as usize;
            if len > MAX_RECORD {
                tracing::warn!(
                    len,
                    "last-known-good delta log has a garbage record; stopping"
                );
                damaged = true;
                break;
            }
            let mut frame = vec![0u8; len];
            if log.read_exact(&mut frame).is_err() {
                tracing::warn!("last-known-good delta log ends in a partial record");
                damaged = true;
                break;
            }
            match codec::peek_delta_header(&frame) {
                // Already in the full snapshot (a crash between writing it and emptying
                // the log left older records behind).
                Ok(h) if h.version <= live.version() => {
                    good_end += 4 + len as u64;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "last-known-good delta log record is unreadable; stopping");
                    damaged = true;
                    break;
                }
            }
            match live.apply_delta(&frame, Origin::LastKnownGood) {
                Ok(next) => {
                    live = next;
                    replayed += 1;
                    good_end += 4 + len as u64;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "last-known-good delta does not apply; stopping");
                    damaged = true;
                    break;
                }
            }
        }
        self.log_bytes = good_end;
        // Cut the log back to its usable part, so deltas appended from now on are read.
        if damaged {
            drop(log);
            let cut = std::fs::OpenOptions::new()
                .write(true)
                .open(self.log_path())
                .and_then(|f| f.set_len(good_end).and_then(|()| f.sync_all()));
            if let Err(e) = cut {
                tracing::error!(error = %e, "cannot cut the last-known-good delta log back to its usable part");
            }
        }
        if replayed > 0 {
            tracing::info!(
                replayed,
                version = live.version(),
                "replayed the last-known-good delta log"
            );
        }
        Ok(Some(live))
    }

    /// Replaces the stored snapshot with the full frame `bytes`, atomically and durably, and
    /// starts an empty delta log.
    pub fn store(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.path())?;
        sync_dir(&self.dir);
        // A crash before this line leaves older records in the log; loading skips them.
        match std::fs::remove_file(self.log_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.full_bytes = bytes.len() as u64;
        self.log_bytes = 0;
        Ok(())
    }

    /// Appends a framed delta (already applied to the live snapshot) to the log, durably.
    pub fn append(&mut self, frame: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut record = Vec::with_capacity(4 + frame.len());
        record.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        record.extend_from_slice(frame);
        if let Err(e) = f.write_all(&record).and_then(|()| f.sync_data()) {
            // Never leave a torn record for later ones to be appended after.
            let _ = f.set_len(self.log_bytes);
            return Err(e);
        }
        self.log_bytes += record.len() as u64;
        Ok(())
    }

    /// Whether the log has grown enough that writing the live snapshot in full pays.
    pub fn wants_compaction(&self) -> bool {
        self.log_bytes > MIN_COMPACT_BYTES.max(self.full_bytes / 2)
    }

    /// Writes `live` as the new full snapshot and empties the log.
    pub fn compact(&mut self, live: &NodeSnapshot) -> std::io::Result<()> {
        let bytes = codec::encode(&live.engine.to_snapshot());
        self.store(&bytes)
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_shared::delta;
    use portcullis_shared::snapshot::{Snapshot, User};
    use std::sync::Arc;

    fn user(id: &str, active: bool) -> Arc<User> {
        Arc::new(User {
            active,
            ..User::new("okta", id, format!("{id}@example.com"))
        })
    }

    fn snapshot(version: u64, users: &[(&str, bool)]) -> Snapshot {
        let mut s = Snapshot::empty(version);
        s.users = users.iter().map(|(id, a)| user(id, *a)).collect();
        s
    }

    #[test]
    fn round_trips_and_refuses_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lkg = LastKnownGood::new(&dir.path().join("state"));
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

    #[test]
    fn deltas_are_replayed_up_to_the_first_bad_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lkg = LastKnownGood::new(dir.path());
        let s1 = snapshot(1, &[("ana", true), ("bo", true)]);
        let s2 = snapshot(2, &[("ana", false), ("bo", true)]);
        let s3 = snapshot(3, &[("ana", false), ("bo", true), ("cy", true)]);
        let s4 = snapshot(4, &[("bo", true), ("cy", true)]);
        let d =
            |a: &Snapshot, b: &Snapshot| codec::encode_delta(&delta::diff(a, b).expect("delta"));
        lkg.store(&codec::encode(&s1)).expect("store");
        lkg.append(&d(&s1, &s2)).expect("append");
        lkg.append(&d(&s2, &s3)).expect("append");
        let loaded = LastKnownGood::new(dir.path())
            .load()
            .expect("loads")
            .expect("some");
        assert_eq!(loaded.engine.to_snapshot(), s3);

        // A torn last record: the records before it still count.
        let torn = d(&s3, &s4);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(lkg.log_path())
            .expect("open");
        f.write_all(&(torn.len() as u32).to_le_bytes())
            .expect("len");
        f.write_all(&torn[..torn.len() / 2]).expect("half");
        drop(f);
        let mut lkg = LastKnownGood::new(dir.path());
        let loaded = lkg.load().expect("loads").expect("some");
        assert_eq!(loaded.version(), 3);
        // Loading cut the torn record off: a delta appended now is replayed next time.
        lkg.append(&d(&s3, &s4)).expect("append");
        let loaded = LastKnownGood::new(dir.path())
            .load()
            .expect("loads")
            .expect("some");
        assert_eq!(loaded.engine.to_snapshot(), s4);

        // Compaction: the live snapshot becomes the full one; the log starts empty, and an
        // older full snapshot's records left behind by a crash are skipped.
        let mut lkg = LastKnownGood::new(dir.path());
        let live = lkg.load().expect("loads").expect("some");
        let log_before = std::fs::read(lkg.log_path()).expect("log");
        lkg.compact(&live).expect("compact");
        assert!(!lkg.log_path().exists());
        std::fs::write(lkg.log_path(), &log_before).expect("stale log");
        let loaded = LastKnownGood::new(dir.path())
            .load()
            .expect("loads")
            .expect("some");
        assert_eq!(loaded.engine.to_snapshot(), s4);
    }
}
