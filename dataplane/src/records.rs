//! Decision records on disk: every allow and deny, off the request path.
//!
//! ```text
//! request ─► bounded queue ─► writer thread ─► segment files (JSON Lines, rotated, capped)
//!                 │ full
//!                 └────────► spill file (written by the request itself; folded back later)
//! ```
//!
//! A request hands its record to a bounded queue and moves on (no system call: the writer
//! polls the queue every few milliseconds instead of being woken). The writer thread takes
//! whatever has queued up, numbers the records (`seq`, per node, never reused), appends them
//! to the current segment with one write, and syncs the file at most every
//! [`SYNC_EVERY`]. When the queue is full the request appends its record to the spill file
//! itself (slower, never dropped); the writer folds spilled records into the segments when
//! it is idle. Segments rotate at `segment_bytes`; when the directory exceeds `max_bytes` the
//! oldest segment is deleted, and the records in it the control plane has not yet stored are
//! counted as dropped.
//!
//! Shipping: the subscriber reads the segments with a [`Cursor`] and sends them over its
//! stream to the control plane, which answers with the next number it expects; that is
//! [`Progress::shipped_next`]. Records are numbered per records directory, and the directory
//! has a random `epoch` (the file `epoch`, made with it), so a node whose directory is wiped
//! starts a new numbering the control plane does not confuse with the old one.
//!
//! What a crash can lose: with SIGKILL, at most the records in the queue and the batch being
//! written (`queue` + [`BATCH`]); written lines are in the page cache and survive the
//! process. With power loss, also what was written since the last sync ([`SYNC_EVERY`]).
//!
//! Counters: `portcullis_records_total{stage}` with stage `enqueued`, `spilled`, `written`,
//! `shipped`, `dropped`.

use portcullis_shared::audit::DecisionRecord;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Most records written in one batch.
pub const BATCH: usize = 512;
/// Longest time written records stay unsynced.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);
/// How long the writer sleeps when the queue is empty.
pub const IDLE_WAIT: Duration = Duration::from_millis(5);

/// Where and how much.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsConfig {
    /// Records that may wait for the writer; beyond, requests spill to disk themselves.
    #[serde(default = "default_queue")]
    pub queue: usize,
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_queue() -> usize {
    1024
}
fn default_segment_bytes() -> u64 {
    16 << 20
}
fn default_max_bytes() -> u64 {
    1 << 30
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self {
            queue: default_queue(),
            segment_bytes: default_segment_bytes(),
            max_bytes: default_max_bytes(),
        }
    }
}

/// How many records went where since start.
#[derive(Debug, Default)]
pub struct Counters {
    pub enqueued: AtomicU64,
    pub spilled: AtomicU64,
    pub written: AtomicU64,
    pub shipped: AtomicU64,
    pub dropped: AtomicU64,
}

/// Where writing and shipping stand; shared by the writer, the sink and the shipper.
#[derive(Debug)]
pub struct Progress {
    /// The records directory's numbering (random, made with the directory).
    pub epoch: String,
    /// Every record numbered below this is written to a segment.
    pub written_next: AtomicU64,
    /// Every record numbered below this is stored by the control plane.
    pub shipped_next: AtomicU64,
}

/// Reads the directory's epoch, making one if it has none.
fn epoch(dir: &Path) -> std::io::Result<String> {
    let path = dir.join("epoch");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let epoch = format!("{:016x}", rand::random::<u64>());
    let tmp = dir.join("epoch.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(epoch.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(epoch)
}

/// What the writer thread receives.
#[derive(Debug)]
enum Msg {
    Record(Box<DecisionRecord>),
    /// Write everything before this (and the spill file), sync, then answer.
    Flush(SyncSender<()>),
}

/// The request path's handle.
#[derive(Debug)]
pub struct Sink {
    tx: SyncSender<Msg>,
    spill: Arc<Mutex<Option<File>>>,
    /// Set when a record was spilled, so the writer folds the spill file back.
    spilled: Arc<AtomicBool>,
    spill_path: PathBuf,
    pub counters: Arc<Counters>,
    pub progress: Arc<Progress>,
    dir: PathBuf,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Starts the writer for `dir` and makes it the process's sink.
pub fn start(dir: &Path, config: &RecordsConfig) -> std::io::Result<&'static Sink> {
    let (sink, _writer) = spawn(dir, config)?;
    let _ = SINK.set(sink);
    Ok(SINK.get().expect("just set"))
}

/// A sink and its writer thread; the thread ends (after writing everything) when the sink
/// is dropped.
fn spawn(
    dir: &Path,
    config: &RecordsConfig,
) -> std::io::Result<(Sink, std::thread::JoinHandle<()>)> {
    std::fs::create_dir_all(dir)?;
    let (tx, rx) = sync_channel(config.queue.max(1));
    let counters = Arc::new(Counters::default());
    let spill_path = dir.join("spill.jsonl");
    let mut writer = Writer::open(dir, config.clone(), counters.clone(), spill_path.clone())?;
    let progress = writer.progress.clone();
    let spill = Arc::new(Mutex::new(None));
    writer.spill_lock = spill.clone();
    let spilled = writer.spilled.clone();
    let handle = std::thread::Builder::new()
        .name("record-writer".into())
        .spawn(move || writer.run(rx))?;
    Ok((
        Sink {
            tx,
            spill,
            spilled,
            spill_path,
            counters,
            progress,
            dir: dir.to_owned(),
        },
        handle,
    ))
}

/// The process's sink, if records are being written.
pub fn sink() -> Option<&'static Sink> {
    SINK.get()
}

impl Sink {
    /// The records directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hands a record over: to the queue, or when it is full to the spill file.
    pub fn submit(&self, record: DecisionRecord) {
        let record = match self.tx.try_send(Msg::Record(Box::new(record))) {
            Ok(()) => {
                static ENQUEUED: OnceLock<metrics::Counter> = OnceLock::new();
                self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                ENQUEUED
                    .get_or_init(
                        || metrics::counter!("portcullis_records_total", "stage" => "enqueued"),
                    )
                    .increment(1);
                return;
            }
            Err(
                TrySendError::Full(Msg::Record(r)) | TrySendError::Disconnected(Msg::Record(r)),
            ) => r,
            Err(_) => return,
        };
        let mut line = serde_json::to_vec(&record).unwrap_or_default();
        line.push(b'\n');
        let mut spill = self.spill.lock().unwrap_or_else(|p| p.into_inner());
        if spill.is_none() {
            *spill = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.spill_path)
                .ok();
        }
        let ok = spill.as_mut().is_some_and(|f| f.write_all(&line).is_ok());
        if ok {
            self.spilled.store(true, Ordering::Release);
            self.counters.spilled.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("portcullis_records_total", "stage" => "spilled").increment(1);
        } else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("portcullis_records_total", "stage" => "dropped").increment(1);
            tracing::error!(request_id = %record.request_id, "decision record lost: the spill file cannot be written");
        }
    }

    /// Waits (up to `timeout`) until every record submitted before the call is written and
    /// synced, spilled ones included. For shutdown.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = sync_channel(1);
        let deadline = Instant::now() + timeout;
        let mut msg = Msg::Flush(ack);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return false,
            }
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

struct Writer {
    dir: PathBuf,
    config: RecordsConfig,
    counters: Arc<Counters>,
    spill_path: PathBuf,
    spill_lock: Arc<Mutex<Option<File>>>,
    spilled: Arc<AtomicBool>,
    progress: Arc<Progress>,
    next_seq: u64,
    current: File,
    current_bytes: u64,
    unsynced_since: Option<Instant>,
}

fn segment_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.jsonl")
}

/// The first record number of a segment, from its name.
fn segment_first(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("seg-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// A record line's number, read from its start (`{"seq":N,…`, as the writer writes it).
fn line_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// Records read for shipping: whole lines `first_seq ..= last_seq`.
#[derive(Debug)]
pub struct Batch {
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
    pub jsonl: Vec<u8>,
}

/// Reads a records directory's segments in order, from a given record number on, for
/// shipping. It only ever returns whole lines, so it may run beside the writer.
#[derive(Debug)]
pub struct Cursor {
    dir: PathBuf,
    /// The next record number wanted.
    next_seq: u64,
    /// The open segment (its first number) and the byte offset read up to.
    open: Option<(u64, File, u64)>,
}

impl Cursor {
    pub fn new(dir: &Path, next_seq: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            next_seq,
            open: None,
        }
    }

    /// The next record number it will return.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next whole lines (at most about `max_bytes`, at least one line), or `None` when
    /// nothing new is written yet.
    pub fn next_batch(&mut self, max_bytes: usize) -> std::io::Result<Option<Batch>> {
        use std::io::{Read, Seek, SeekFrom};
        loop {
            let list = segments(&self.dir)?;
            if self.open.is_none() {
                // The segment holding `next_seq`, or the first one after (older ones are gone).
                let firsts: Vec<(u64, &PathBuf)> = list
                    .iter()
                    .filter_map(|(p, _)| segment_first(p).map(|f| (f, p)))
                    .collect();
                let pick = firsts
                    .iter()
                    .rev()
                    .find(|(f, _)| *f <= self.next_seq)
                    .or_else(|| firsts.first());
                let Some(&(first, path)) = pick else {
                    return Ok(None);
                };
                self.open = Some((first, File::open(path)?, 0));
            }
            let Some((first, file, offset)) = self.open.as_mut() else {
                return Ok(None);
            };
            // A later segment existing means this one is complete: read to its end, then move
            // on to the next one.
            let later = list
                .iter()
                .filter_map(|(p, _)| segment_first(p))
                .filter(|f| f > first)
                .min();
            file.seek(SeekFrom::Start(*offset))?;
            let mut buf = Vec::with_capacity(max_bytes.min(1 << 20));
            Read::take(&mut *file, max_bytes as u64).read_to_end(&mut buf)?;
            let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            if whole == 0 && buf.len() < max_bytes {
                if let Some(next) = later {
                    // Numbers continue in the next segment (any between were lost, and
                    // counted as dropped when they were).
                    self.open = None;
                    self.next_seq = self.next_seq.max(next);
                    continue;
                }
                return Ok(None);
            }
            // One line longer than `max_bytes`: take it whole.
            let whole = if whole == 0 {
                let mut line = Vec::new();
                file.seek(SeekFrom::Start(*offset))?;
                BufReader::new(&mut *file).read_until(b'\n', &mut line)?;
                if line.last() != Some(&b'\n') {
                    return Ok(None);
                }
                buf = line;
                buf.len()
            } else {
                whole
            };
            *offset += whole as u64;
            let mut out = Batch {
                first_seq: 0,
                last_seq: 0,
                count: 0,
                jsonl: Vec::with_capacity(whole),
            };
            for line in buf[..whole].split_inclusive(|&b| b == b'\n') {
                let Some(seq) = line_seq(line) else {
                    continue;
                };
                if seq < self.next_seq {
                    continue;
                }
                if out.count == 0 {
                    out.first_seq = seq;
                }
                out.last_seq = seq;
                out.count += 1;
                out.jsonl.extend_from_slice(line);
                self.next_seq = seq + 1;
            }
            if out.count > 0 {
                return Ok(Some(out));
            }
        }
    }
}

/// Segment files in order, with their sizes.
pub fn segments(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("seg-") && name.ends_with(".jsonl") {
            out.push((e.path(), e.metadata()?.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// Every record in a directory's segments, in order (a torn last line is skipped).
pub fn read_all(dir: &Path) -> std::io::Result<Vec<DecisionRecord>> {
    let mut out = Vec::new();
    for (path, _) in segments(dir)? {
        for line in BufReader::new(File::open(path)?).lines() {
            if let Ok(r) = serde_json::from_str(&line?) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

impl Writer {
    fn open(
        dir: &Path,
        config: RecordsConfig,
        counters: Arc<Counters>,
        spill_path: PathBuf,
    ) -> std::io::Result<Self> {
        // Continue after the last whole record; cut a torn last line.
        let mut next_seq = 0;
        let existing = segments(dir)?;
        let (current, current_bytes) = match existing.last() {
            Some((path, _)) => {
                // An empty last segment (just rotated) still says where numbering stands.
                next_seq = segment_first(path).unwrap_or(0);
                let text = std::fs::read(path)?;
                let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                if whole < text.len() {
                    OpenOptions::new()
                        .write(true)
                        .open(path)?
                        .set_len(whole as u64)?;
                }
                for line in text[..whole].split(|&b| b == b'\n') {
                    if let Ok(r) = serde_json::from_slice::<DecisionRecord>(line) {
                        next_seq = next_seq.max(r.seq + 1);
                    }
                }
                let f = OpenOptions::new().append(true).open(path)?;
                (f, whole as u64)
            }
            None => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(segment_name(0)))?;
                (f, 0)
            }
        };
        // Without segments numbering starts again at 0: under a new epoch, so the control
        // plane never takes the new records for ones it already holds.
        if existing.is_empty() {
            match std::fs::remove_file(dir.join("epoch")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let progress = Arc::new(Progress {
            epoch: epoch(dir)?,
            written_next: AtomicU64::new(next_seq),
            shipped_next: AtomicU64::new(0),
        });
        Ok(Self {
            dir: dir.to_owned(),
            config,
            counters,
            spill_path,
            spill_lock: Arc::new(Mutex::new(None)),
            spilled: Arc::new(AtomicBool::new(false)),
            progress,
            next_seq,
            current,
            current_bytes,
            unsynced_since: None,
        })
    }

    /// Drains the queue in batches. When it is empty the thread sleeps [`IDLE_WAIT`] rather
    /// than blocking on the queue: a request never has to wake it, so handing a record over
    /// costs no system call.
    fn run(mut self, rx: Receiver<Msg>) {
        // Records spilled before a restart.
        self.fold_spill();
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let mut got = false;
            let closed = loop {
                match rx.try_recv() {
                    Ok(Msg::Record(r)) => {
                        got = true;
                        batch.push(*r);
                        if batch.len() >= BATCH {
                            self.write(&mut batch);
                        }
                    }
                    Ok(Msg::Flush(ack)) => {
                        self.write(&mut batch);
                        self.fold_spill();
                        self.sync();
                        let _ = ack.try_send(());
                    }
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            self.write(&mut batch);
            if closed {
                self.fold_spill();
                self.sync();
                return;
            }
            if self.spilled.swap(false, Ordering::AcqRel) {
                self.fold_spill();
            }
            if self
                .unsynced_since
                .is_some_and(|t| t.elapsed() >= SYNC_EVERY)
            {
                self.sync();
            }
            if !got {
                std::thread::sleep(IDLE_WAIT);
            }
        }
    }

    fn write(&mut self, batch: &mut Vec<DecisionRecord>) {
        if batch.is_empty() {
            return;
        }
        let mut buf = Vec::with_capacity(batch.len() * 400);
        let n = batch.len() as u64;
        for mut r in batch.drain(..) {
            r.seq = self.next_seq;
            self.next_seq += 1;
            if serde_json::to_writer(&mut buf, &r).is_ok() {
                buf.push(b'\n');
            }
        }
        match self.current.write_all(&buf) {
            Ok(()) => {
                self.current_bytes += buf.len() as u64;
                self.progress
                    .written_next
                    .store(self.next_seq, Ordering::Release);
                self.counters.written.fetch_add(n, Ordering::Relaxed);
                metrics::counter!("portcullis_records_total", "stage" => "written").increment(n);
                self.unsynced_since.get_or_insert_with(Instant::now);
            }
            Err(e) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                metrics::counter!("portcullis_records_total", "stage" => "dropped").increment(n);
                tracing::error!(error = %e, records = n, "decision records lost: the segment cannot be written");
            }
        }
        if self.current_bytes >= self.config.segment_bytes {
            self.rotate();
        }
    }

    fn sync(&mut self) {
        if self.unsynced_since.take().is_some() {
            let _ = self.current.sync_data();
        }
    }

    fn rotate(&mut self) {
        self.sync();
        match OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(segment_name(self.next_seq)))
        {
            Ok(f) => {
                self.current = f;
                self.current_bytes = 0;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot open a new record segment; continuing the current one")
            }
        }
        self.enforce_cap();
    }

    /// Deletes the oldest segments while the directory is over its cap (never the current).
    /// Records in them the control plane has not stored yet are counted as dropped.
    fn enforce_cap(&mut self) {
        let Ok(list) = segments(&self.dir) else {
            return;
        };
        let mut total: u64 = list.iter().map(|(_, n)| n).sum();
        let shipped = self.progress.shipped_next.load(Ordering::Acquire);
        for pair in list.windows(2) {
            if total <= self.config.max_bytes {
                break;
            }
            let ((path, bytes), (next, _)) = (&pair[0], &pair[1]);
            // A segment holds the records from its first number up to the next one's.
            let (Some(first), Some(end)) = (segment_first(path), segment_first(next)) else {
                continue;
            };
            if std::fs::remove_file(path).is_ok() {
                total -= bytes;
                let lost = end.saturating_sub(first.max(shipped));
                if lost > 0 {
                    self.counters.dropped.fetch_add(lost, Ordering::Relaxed);
                    metrics::counter!("portcullis_records_total", "stage" => "dropped")
                        .increment(lost);
                    tracing::warn!(segment = %path.display(), records = lost, "record directory over its cap: the oldest segment was deleted before the control plane stored it");
                } else {
                    tracing::debug!(segment = %path.display(), "shipped segment deleted (directory over its cap)");
                }
            }
        }
    }

    /// Moves spilled records into the segments.
    fn fold_spill(&mut self) {
        let text = {
            let mut spill = self.spill_lock.lock().unwrap_or_else(|p| p.into_inner());
            let text = match std::fs::read(&self.spill_path) {
                Ok(t) if !t.is_empty() => t,
                _ => return,
            };
            // Truncate while holding the lock, so no request appends in between.
            *spill = None;
            if File::create(&self.spill_path).is_err() {
                return;
            }
            text
        };
        let mut batch: Vec<DecisionRecord> = text
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(BATCH));
            self.write(&mut batch);
            batch = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> DecisionRecord {
        DecisionRecord {
            seq: 0,
            at_ms: i,
            node: "n1".into(),
            request_id: format!("r{i}"),
            principal: None,
            action: "chat".into(),
            resource: "Model::\"m\"".into(),
            decision: "allow".into(),
            reason: "permitted".into(),
            policies: vec!["p".into()],
            snapshot_version: 1,
            identity_revision: 1,
            policy_version: "1:abc".into(),
            decision_us: 1,
            request: None,
        }
    }

    /// Writes records `ids` through a sink with `config` (set up by `before` first), waits for
    /// its writer to finish; returns the counters.
    fn write(
        dir: &Path,
        config: &RecordsConfig,
        ids: std::ops::Range<u64>,
        before: impl FnOnce(&Sink),
    ) -> Arc<Counters> {
        let (sink, writer) = spawn(dir, config).expect("spawn");
        before(&sink);
        for i in ids {
            sink.submit(record(i));
        }
        let counters = sink.counters.clone();
        drop(sink);
        writer.join().expect("writer");
        counters
    }

    #[test]
    fn every_record_is_written_once_in_order_even_when_the_queue_overflows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RecordsConfig {
            queue: 4,
            segment_bytes: 8 * 1024,
            max_bytes: 1 << 30,
        };
        let c = write(dir.path(), &config, 0..3000, |_| {});
        let all = read_all(dir.path()).expect("read");
        assert_eq!(all.len(), 3000);
        let seqs: Vec<u64> = all.iter().map(|r| r.seq).collect();
        assert_eq!(
            seqs,
            (0..3000).collect::<Vec<_>>(),
            "numbered once, in file order"
        );
        let mut ids: Vec<u64> = all.iter().map(|r| r.at_ms).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            (0..3000).collect::<Vec<_>>(),
            "each record exactly once"
        );
        let (enq, spilled) = (
            c.enqueued.load(Ordering::Relaxed),
            c.spilled.load(Ordering::Relaxed),
        );
        assert_eq!(enq + spilled, 3000);
        assert!(spilled > 0, "a queue of 4 must have overflowed");
        assert_eq!(c.written.load(Ordering::Relaxed), 3000);
        assert_eq!(c.dropped.load(Ordering::Relaxed), 0);
        assert!(
            segments(dir.path()).expect("list").len() > 1,
            "segments rotate"
        );
    }

    #[test]
    fn flush_returns_once_everything_before_it_is_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RecordsConfig {
            queue: 8,
            ..RecordsConfig::default()
        };
        let (sink, _writer) = spawn(dir.path(), &config).expect("spawn");
        for i in 0..500 {
            sink.submit(record(i));
        }
        assert!(sink.flush(Duration::from_secs(10)));
        assert_eq!(read_all(dir.path()).expect("read").len(), 500);
        assert!(
            !dir.path().join("spill.jsonl").exists()
                || std::fs::read(dir.path().join("spill.jsonl"))
                    .expect("spill")
                    .is_empty()
        );
    }

    #[test]
    fn a_torn_last_line_is_cut_and_numbering_continues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RecordsConfig::default();
        write(dir.path(), &config, 0..10, |_| {});
        let (last, _) = segments(dir.path())
            .expect("list")
            .pop()
            .expect("a segment");
        let mut f = OpenOptions::new().append(true).open(&last).expect("open");
        f.write_all(b"{\"seq\":10,\"at_ms\":").expect("torn write");
        drop(f);
        write(dir.path(), &config, 10..11, |_| {});
        let all = read_all(dir.path()).expect("read");
        assert_eq!(
            all.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (0..11).collect::<Vec<_>>()
        );
    }

    /// Every number a cursor returns from `from`, batch by batch.
    fn shipped(dir: &Path, from: u64, max_bytes: usize) -> Vec<u64> {
        let mut cursor = Cursor::new(dir, from);
        let mut seqs = Vec::new();
        while let Some(b) = cursor.next_batch(max_bytes).expect("read") {
            let lines: Vec<DecisionRecord> = b
                .jsonl
                .split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).expect("a whole record"))
                .collect();
            assert_eq!(lines.len() as u64, b.count);
            assert_eq!(lines.first().map(|r| r.seq), Some(b.first_seq));
            assert_eq!(lines.last().map(|r| r.seq), Some(b.last_seq));
            seqs.extend(lines.iter().map(|r| r.seq));
        }
        seqs
    }

    #[test]
    fn the_shipping_cursor_reads_every_record_once_across_segments_and_only_whole_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RecordsConfig {
            queue: 1024,
            segment_bytes: 8 * 1024,
            max_bytes: 1 << 30,
        };
        write(dir.path(), &config, 0..2000, |_| {});
        // Each written batch (at most 512 records) fills a segment: how many batches the
        // writer makes depends on scheduling, but 2,000 records always take several.
        assert!(segments(dir.path()).expect("list").len() > 2);
        assert_eq!(shipped(dir.path(), 0, 4096), (0..2000).collect::<Vec<_>>());
        assert_eq!(
            shipped(dir.path(), 1234, 100_000),
            (1234..2000).collect::<Vec<_>>(),
            "resumes mid-segment"
        );
        // A line being written is not returned until it is whole.
        let (last, _) = segments(dir.path())
            .expect("list")
            .pop()
            .expect("a segment");
        let mut f = OpenOptions::new().append(true).open(&last).expect("open");
        let mut line = serde_json::to_vec(&DecisionRecord {
            seq: 2000,
            ..record(2000)
        })
        .expect("json");
        f.write_all(&line[..10]).expect("half");
        let mut cursor = Cursor::new(dir.path(), 1999);
        assert_eq!(
            cursor.next_batch(1 << 20).expect("read").map(|b| b.count),
            Some(1)
        );
        assert!(cursor.next_batch(1 << 20).expect("read").is_none());
        line.push(b'\n');
        f.write_all(&line[10..]).expect("rest");
        let b = cursor
            .next_batch(1 << 20)
            .expect("read")
            .expect("the whole line");
        assert_eq!((b.first_seq, b.last_seq), (2000, 2000));
    }

    /// Writes `seqs` as a segment named after `first`.
    fn segment(dir: &Path, first: u64, seqs: std::ops::Range<u64>) {
        let mut text = Vec::new();
        for seq in seqs {
            serde_json::to_writer(&mut text, &DecisionRecord { seq, ..record(seq) }).expect("json");
            text.push(b'\n');
        }
        std::fs::write(dir.join(segment_name(first)), text).expect("write");
    }

    #[test]
    fn a_gap_between_segments_is_stepped_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        segment(dir.path(), 0, 0..5);
        segment(dir.path(), 10, 10..15);
        let expected: Vec<u64> = (0..5).chain(10..15).collect();
        assert_eq!(shipped(dir.path(), 0, 64), expected);
        assert_eq!(shipped(dir.path(), 7, 64), (10..15).collect::<Vec<_>>());
    }

    #[test]
    fn numbering_survives_a_restart_right_after_a_rotation_and_a_wiped_directory_gets_a_new_epoch()
    {
        let dir = tempfile::tempdir().expect("tempdir");
        segment(dir.path(), 0, 0..10);
        std::fs::write(dir.path().join(segment_name(10)), b"").expect("empty segment");
        let config = RecordsConfig::default();
        let mut epoch = String::new();
        write(dir.path(), &config, 99..100, |sink| {
            epoch.clone_from(&sink.progress.epoch)
        });
        let all = read_all(dir.path()).expect("read");
        assert_eq!(all.last().map(|r| r.seq), Some(10), "not 0 again");

        for (path, _) in segments(dir.path()).expect("list") {
            std::fs::remove_file(path).expect("wipe");
        }
        let (sink, _writer) = spawn(dir.path(), &config).expect("respawn");
        assert_ne!(
            sink.progress.epoch, epoch,
            "numbering restarts under a new epoch"
        );
    }

    #[test]
    fn shipped_segments_deleted_over_the_cap_are_not_counted_as_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RecordsConfig {
            queue: 1024,
            segment_bytes: 4 * 1024,
            max_bytes: 16 * 1024,
        };
        // The control plane holds everything.
        let c = write(dir.path(), &config, 0..2000, |sink| {
            sink.progress
                .shipped_next
                .store(u64::MAX, Ordering::Release)
        });
        assert!((read_all(dir.path()).expect("read").len() as u64) < 2000);
        assert_eq!(c.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn over_the_cap_the_oldest_segments_go_and_are_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RecordsConfig {
            queue: 1024,
            segment_bytes: 4 * 1024,
            max_bytes: 16 * 1024,
        };
        let c = write(dir.path(), &config, 0..2000, |_| {});
        let kept = read_all(dir.path()).expect("read").len() as u64;
        let dropped = c.dropped.load(Ordering::Relaxed);
        assert!(dropped > 0);
        assert_eq!(
            kept + dropped,
            2000,
            "every record is kept or counted as dropped"
        );
        let total: u64 = segments(dir.path())
            .expect("list")
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert!(total <= 16 * 1024 + 4 * 1024 + 1024, "{total}");
    }
}

/// Flushes decision records and buffered log lines once the server begins shutting down,
/// and keeps flushing while requests finish, until the process exits.
#[derive(Debug)]
pub struct Flusher;

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Flusher {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let _ = shutdown.changed().await;
        loop {
            let _ = tokio::task::spawn_blocking(|| {
                if let Some(s) = sink() {
                    s.flush(Duration::from_millis(500));
                }
                crate::logwriter::flush();
            })
            .await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
