//! The publisher: recompiles when identity, policy or issuer keys change, stores each new
//! snapshot, and broadcasts it to every subscribed node.
//!
//! Changes only mark the publisher dirty; one background task compiles, so a burst of SCIM
//! writes coalesces into as few snapshots as compilation speed allows. Subscribers hold a
//! `watch` receiver: a slow node skips intermediate versions rather than queueing them.
//!
//! Each version after the first is published as a delta from the one before when only the
//! directory changed ([`portcullis_shared::delta`]); the publisher keeps a bounded history of
//! deltas (in memory and in the store) so a node at any version in it is brought up to date
//! with one composed delta. Full snapshots are encoded only when needed: when a delta is
//! impossible, every `full_every` versions (bounding what a restart replays), and when a node
//! has nothing to apply a delta to. Every frame is signed.

use crate::attributes::PrincipalAttributes;
use crate::bindings::BindingStore;
use crate::compiler::{CompileReport, Compiler, Directory, DirectoryChanges, UserChange};
use crate::oidc::IssuerRegistry;
use crate::policies::PolicyStore;
use crate::store::{self, SnapshotRow, Store, StoreError};
use bytes::Bytes;
use portcullis_shared::Hash32;
use portcullis_shared::codec;
use portcullis_shared::delta::{self, Delta};
use portcullis_shared::signing::FrameSigner;
use portcullis_shared::snapshot::{PolicyVersion, Snapshot};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// A signed frame as sent to nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Framed bytes (see `portcullis_shared::codec`): a full snapshot or a delta.
    pub payload: Bytes,
    pub content_hash: Hash32,
    pub signature: Bytes,
    pub key_id: String,
}

/// One step of history: the delta from the version before to `delta.version`.
#[derive(Debug)]
pub struct DeltaStep {
    pub delta: Delta,
    pub frame: Frame,
}

/// A published version.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    pub identity_revision: u64,
    pub policy_version: PolicyVersion,
    pub created_ms: u64,
    /// The snapshot; shares every unchanged user and group with its neighbours.
    pub snapshot: Arc<Snapshot>,
    /// The deltas leading here, oldest first, each starting where the one before ends, the
    /// last ending at `version`. Empty after a change a delta cannot carry.
    pub history: Arc<Vec<Arc<DeltaStep>>>,
    /// The full frame, encoded on first need.
    full: tokio::sync::OnceCell<Frame>,
}

impl Published {
    /// The deltas that bring a node holding version `have` with id `have_id` to this version,
    /// if history reaches back to exactly that snapshot.
    pub fn steps_from(&self, have: u64, have_id: u64) -> Option<&[Arc<DeltaStep>]> {
        let i = self
            .history
            .iter()
            .position(|s| s.delta.base_version == have && s.delta.base_id == have_id)?;
        Some(&self.history[i..])
    }

    /// The delta this version was published with, if any.
    pub fn last_step(&self) -> Option<&Arc<DeltaStep>> {
        self.history
            .last()
            .filter(|s| s.delta.version == self.version)
    }

    /// The full frame, if it was encoded already.
    pub fn full_frame_if_encoded(&self) -> Option<&Frame> {
        self.full.get()
    }
}

/// How the publisher stores and signs what it publishes.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Full snapshots kept in the store.
    pub keep_snapshots: u32,
    /// Deltas kept, in the store and in memory.
    pub keep_deltas: u32,
    /// A full snapshot is stored at least every this many versions.
    pub full_every: u32,
    /// Snapshots and deltas are kept this long for replay, beyond the counts above.
    pub history: std::time::Duration,
    pub signer: FrameSigner,
}

/// Why compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no valid policy version exists yet")]
    NoPolicy,
    #[error("the compiler task failed: {0}")]
    Compiler(String),
}

/// The inputs of the last published snapshot: an unchanged set needs no new version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Inputs {
    identity_revision: u64,
    policy_version: PolicyVersion,
    issuers: Hash32,
    bindings_version: u64,
    /// Part of the inputs so that a raise during a compile forces the next compile.
    min_version: u64,
}

/// The compiler's state and what it was built from besides the directory: while these stay
/// the same, identity changes are applied to it instead of compiling afresh.
#[derive(Debug)]
struct Compiled {
    compiler: Compiler,
    policy_version: PolicyVersion,
    issuers: Hash32,
    bindings_version: u64,
}

#[derive(Debug, Default)]
struct State {
    last_inputs: Option<Inputs>,
    /// The next version must be at least this (a node reported holding a higher one).
    min_version: u64,
    /// What the last compilation found.
    report: Option<Arc<CompileReport>>,
    /// How the last published snapshot was compiled: `full` or `incremental`.
    mode: Option<&'static str>,
    /// Versions published since the last full snapshot was stored.
    since_full: u32,
}

/// Compiles and broadcasts snapshots.
#[derive(Debug)]
pub struct Publisher {
    store: Store,
    policies: PolicyStore,
    issuers: IssuerRegistry,
    attributes: PrincipalAttributes,
    bindings: BindingStore,
    options: PublisherOptions,
    tx: watch::Sender<Option<Arc<Published>>>,
    dirty: Notify,
    state: Mutex<State>,
    /// Held for a whole compilation, so snapshots are compiled and versioned in order.
    compiled: tokio::sync::Mutex<Option<Compiled>>,
}

impl Publisher {
    /// Restores the last published version from the store (the last full snapshot, then the
    /// deltas after it) with its delta history, so nodes are served at once and resume from
    /// the versions they hold; then starts the compile loop and compiles once.
    pub async fn start(
        store: Store,
        policies: PolicyStore,
        issuers: IssuerRegistry,
        attributes: PrincipalAttributes,
        bindings: BindingStore,
        options: PublisherOptions,
    ) -> Result<Arc<Self>, PublishError> {
        let (full, deltas) = store
            .run(|c| Ok::<_, StoreError>((store::latest_snapshot(c)?, store::list_deltas(c)?)))
            .await?;
        let (tx, _) = watch::channel(None);
        let mut state = State::default();
        let signer = options.signer.clone();
        let last_stored = deltas
            .iter()
            .map(|d| d.version)
            .chain(full.as_ref().map(|f| f.version))
            .max();
        let restored = tokio::task::spawn_blocking(move || restore(full, deltas, &signer))
            .await
            .map_err(|e| PublishError::Compiler(e.to_string()))?;
        if let Some(p) = restored {
            // Only a restore that reached the last stored version stands for what was
            // published; one that fell back to an older full snapshot (deltas lost or
            // unreadable) is served until the first compile, which publishes afresh.
            if Some(p.version) == last_stored {
                state.last_inputs = Some(Inputs {
                    identity_revision: p.identity_revision,
                    policy_version: p.policy_version,
                    issuers: issuers_hash(&p.snapshot.issuers),
                    bindings_version: bindings.live().version,
                    min_version: 0,
                });
            } else {
                tracing::warn!(
                    restored = p.version,
                    last_stored = ?last_stored,
                    "the stored deltas do not reach the last stored version; compiling afresh"
                );
            }
            state.since_full = p.history.len() as u32;
            tracing::info!(
                version = p.version,
                deltas = p.history.len(),
                "restored the last published snapshot"
            );
            set_gauges(p.version);
            tx.send_replace(Some(Arc::new(p)));
        }
        let this = Arc::new(Self {
            store,
            policies,
            issuers,
            attributes,
            bindings,
            options,
            tx,
            dirty: Notify::new(),
            state: Mutex::new(state),
            compiled: tokio::sync::Mutex::new(None),
        });
        this.compile_once().await?;
        let worker = this.clone();
        tokio::spawn(async move { worker.run().await });
        Ok(this)
    }

    /// The full frame of `published`, encoding and signing it on first need (off the async
    /// workers; concurrent callers share one encoding).
    pub async fn full_frame(&self, published: &Published) -> Result<Frame, PublishError> {
        let snapshot = published.snapshot.clone();
        let signer = self.options.signer.clone();
        published
            .full
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    metrics::counter!("portcullis_snapshot_full_encodes_total").increment(1);
                    full_frame(&snapshot, &signer)
                })
                .await
                .map_err(|e| PublishError::Compiler(e.to_string()))
            })
            .await
            .cloned()
    }

    /// One signed delta spanning `steps` (consecutive): the stored frame for one step, a
    /// composed one for several.
    pub fn delta_frame(&self, steps: &[Arc<DeltaStep>]) -> Option<Frame> {
        match steps {
            [] => None,
            [one] => Some(one.frame.clone()),
            steps => {
                let composed = delta::compose(steps.iter().map(|s| &s.delta)).ok()?;
                Some(delta_frame(&composed, &self.options.signer))
            }
        }
    }

    /// The signing key's id.
    pub fn key_id(&self) -> &str {
        self.options.signer.key_id()
    }

    /// Asks for a recompilation. Cheap; many calls coalesce.
    pub fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Ensures the next snapshot version exceeds `version` (a node holds a version this
    /// control plane has not issued, e.g. after its database was restored from a backup).
    pub fn require_version_above(&self, version: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.min_version = s.min_version.max(version.saturating_add(1));
        }
        self.mark_dirty();
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Published>>> {
        self.tx.subscribe()
    }

    pub fn latest(&self) -> Option<Arc<Published>> {
        self.tx.borrow().clone()
    }

    /// How the last snapshot this process published was compiled (`full` or `incremental`).
    pub fn last_compile_mode(&self) -> Option<&'static str> {
        self.state.lock().ok().and_then(|s| s.mode)
    }

    /// What the last compilation in this process found (cycles, unbound groups, …).
    pub fn report(&self) -> Option<Arc<CompileReport>> {
        self.state.lock().ok().and_then(|s| s.report.clone())
    }

    async fn run(self: Arc<Self>) {
        loop {
            self.dirty.notified().await;
            if let Err(e) = self.compile_once().await {
                metrics::counter!("portcullis_snapshot_compile_failures_total").increment(1);
                tracing::error!(error = %e, "snapshot compilation failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.mark_dirty();
            }
        }
    }

    /// Compiles and publishes if any input changed. Returns the published snapshot, if new.
    ///
    /// While the policy version, the bindings and the issuers stay the same, the identity
    /// changes since the last compilation are read from the event log and applied to the
    /// compiler's state, in time proportional to what they touch; anything else (or a change
    /// the state cannot take in place, or a very large batch) compiles afresh.
    pub async fn compile_once(&self) -> Result<Option<Arc<Published>>, PublishError> {
        let started = Instant::now();
        let policy = self.policies.live().ok_or(PublishError::NoPolicy)?;
        let issuers = self.issuers.current();
        let bindings = self.bindings.live();
        let issuers_digest = issuers_hash(&issuers);
        let mut compiled = self.compiled.lock().await;

        let revision = self.store.read(|c| store::identity_revision(c)).await?;
        let min_version = self
            .state
            .lock()
            .map_err(|_| StoreError::Worker("poisoned".into()))?
            .min_version;
        let mut inputs = Inputs {
            identity_revision: revision,
            policy_version: policy.version,
            issuers: issuers_digest,
            bindings_version: bindings.version,
            min_version,
        };
        {
            let s = self
                .state
                .lock()
                .map_err(|_| StoreError::Worker("poisoned".into()))?;
            if s.last_inputs.as_ref() == Some(&inputs) {
                return Ok(None);
            }
        }

        let mut how = "full";
        if let Some(c) = compiled.as_mut().filter(|c| {
            c.policy_version == policy.version
                && c.issuers == issuers_digest
                && c.bindings_version == bindings.version
        }) {
            let since = c.compiler.revision();
            // Beyond this many changed resources, reading the whole directory is cheaper.
            let limit = 1000 + c.compiler.user_count() / 10;
            let changes = self
                .store
                .read(move |conn| read_changes(conn, since, limit))
                .await?;
            let applied = changes.map(|(ch, keys)| {
                let applied = c.compiler.apply(ch);
                if applied.is_ok() {
                    c.compiler.set_api_keys(&keys);
                }
                applied
            });
            match applied {
                Some(Ok(())) => how = "incremental",
                Some(Err(reason)) => {
                    tracing::debug!(%reason, "identity change needs a full compile")
                }
                None => tracing::debug!("many identity changes; compiling afresh"),
            }
        }
        if how == "full" {
            let (directory, api_keys) = self
                .store
                .read(|c| {
                    let tx = c.transaction()?;
                    let now = store::now_ms();
                    let d = Directory {
                        revision: store::identity_revision(&tx)?,
                        users: store::list_users(&tx, None)?,
                        groups: store::list_groups(&tx, None)?,
                        activations: store::live_activations(&tx, now)?,
                    };
                    let keys = store::live_api_keys(&tx, now)?;
                    tx.commit()?;
                    Ok::<_, StoreError>((d, keys))
                })
                .await?;
            let (p, attributes, b) = (
                policy.clone(),
                self.attributes.clone(),
                bindings.bindings.clone(),
            );
            // Compiling a large directory takes a while: off the async workers.
            let compiler = tokio::task::spawn_blocking(move || {
                let mut c = Compiler::build(directory, &p, &attributes, &b, issuers);
                c.set_api_keys(&api_keys);
                c
            })
            .await
            .map_err(|e| PublishError::Compiler(e.to_string()))?;
            *compiled = Some(Compiled {
                compiler,
                policy_version: policy.version,
                issuers: issuers_digest,
                bindings_version: bindings.version,
            });
        }
        let Some(state) = compiled.as_ref() else {
            return Err(PublishError::Compiler("no compiled state".into()));
        };
        inputs.identity_revision = state.compiler.revision();
        let created_ms = store::now_ms();
        let mut snapshot = state.compiler.snapshot(0, created_ms);
        // Never 0, which stands for "no snapshot" in a node's Hello.
        snapshot.id = rand::random::<u64>() | 1;
        let compile_time = started.elapsed();
        self.note_report(state.compiler.report()).await;
        // The version first (a small write), then the encoding off the store's writer and
        // the async workers, then the rows: SCIM writes never wait for an encode. A crash in
        // between leaves a version unused, never reused.
        snapshot.version = self
            .store
            .write(move |tx| store::allocate_snapshot_version(tx, min_version))
            .await?;
        let previous = self.latest();
        let since_full = self.state.lock().map(|s| s.since_full).unwrap_or(u32::MAX);
        let signer = self.options.signer.clone();
        let full_every = self.options.full_every;
        let framed = tokio::task::spawn_blocking(move || {
            let snapshot = Arc::new(snapshot);
            let step = previous
                .as_ref()
                .and_then(|p| match delta::diff(&p.snapshot, &snapshot) {
                    Ok(d) => Some((d, p.history.clone())),
                    Err(why) => {
                        tracing::debug!(reason = %why, "publishing a full snapshot");
                        None
                    }
                });
            let step = step.map(|(d, history)| {
                let frame = delta_frame(&d, &signer);
                (Arc::new(DeltaStep { delta: d, frame }), history)
            });
            let full = (step.is_none() || since_full.saturating_add(1) >= full_every)
                .then(|| full_frame(&snapshot, &signer));
            (snapshot, step, full)
        })
        .await
        .map_err(|e| PublishError::Compiler(e.to_string()))?;
        let (snapshot, step, full) = framed;

        let (options, delta_row, full_row) = (
            self.options.clone(),
            step.as_ref().map(|(s, _)| store::DeltaRow {
                version: s.delta.version,
                base_version: s.delta.base_version,
                identity_revision: s.delta.identity_revision,
                created_ms,
                content_hash: s.frame.content_hash,
                payload: s.frame.payload.to_vec(),
            }),
            full.as_ref().map(|f| SnapshotRow {
                version: snapshot.version,
                identity_revision: snapshot.identity_revision,
                policy_counter: snapshot.policy_version.counter,
                content_hash: f.content_hash,
                created_ms,
                payload: f.payload.to_vec(),
            }),
        );
        let (version, identity_revision) = (snapshot.version, snapshot.identity_revision);
        self.store
            .write(move |tx| {
                let since = created_ms.saturating_sub(options.history.as_millis() as u64);
                if let Some(row) = &delta_row {
                    store::insert_delta(tx, row, options.keep_deltas, since)?;
                }
                if let Some(row) = &full_row {
                    store::insert_snapshot(tx, row, options.keep_snapshots, since)?;
                }
                store::record_published(tx, version, identity_revision, created_ms)?;
                Ok::<_, StoreError>(())
            })
            .await?;

        let delta_users = step.as_ref().map(|(s, _)| s.delta.len());
        let history = match step {
            Some((step, before)) => {
                let keep = self.options.keep_deltas.max(1) as usize;
                let skip = (before.len() + 1).saturating_sub(keep);
                let mut h: Vec<_> = before.iter().skip(skip).cloned().collect();
                h.push(step);
                h
            }
            None => Vec::new(),
        };
        let full_bytes = full.as_ref().map(|f| f.payload.len());
        let published = Arc::new(Published {
            version: snapshot.version,
            identity_revision: snapshot.identity_revision,
            policy_version: snapshot.policy_version,
            created_ms,
            snapshot,
            history: Arc::new(history),
            full: tokio::sync::OnceCell::new_with(full),
        });
        if let Ok(mut s) = self.state.lock() {
            s.last_inputs = Some(inputs);
            s.mode = Some(how);
            s.since_full = if full_bytes.is_some() {
                0
            } else {
                s.since_full.saturating_add(1)
            };
        }
        self.tx.send_replace(Some(published.clone()));
        let elapsed = started.elapsed();
        metrics::histogram!("portcullis_snapshot_compile_seconds", "mode" => how)
            .record(compile_time.as_secs_f64());
        let sent_as = if published.last_step().is_some() {
            "delta"
        } else {
            "full"
        };
        metrics::histogram!("portcullis_snapshot_publish_seconds", "as" => sent_as)
            .record(elapsed.as_secs_f64());
        if let Some(bytes) = full_bytes {
            metrics::gauge!("portcullis_snapshot_bytes").set(bytes as f64);
        }
        if let Some(step) = published.last_step() {
            metrics::histogram!("portcullis_snapshot_delta_bytes")
                .record(step.frame.payload.len() as f64);
        }
        set_gauges(published.version);
        tracing::info!(
            version = published.version,
            identity_revision = published.identity_revision,
            policy_version = %published.policy_version,
            users = published.snapshot.users.len(),
            groups = published.snapshot.groups.len(),
            delta_changes = delta_users,
            full_bytes,
            mode = how,
            compile_ms = compile_time.as_secs_f64() * 1e3,
            publish_ms = elapsed.as_secs_f64() * 1e3,
            "snapshot published"
        );
        Ok(Some(published))
    }
}

impl Publisher {
    /// Keeps the report for the admin API, logs what needs attention, and records a
    /// high-priority identity event when the set of nesting cycles changes.
    async fn note_report(&self, report: CompileReport) {
        for g in &report.cyclic_groups {
            tracing::warn!(group = %g, "group is nested in itself; the cycle is ignored");
        }
        for (name, e) in &report.dynamic_rule_errors {
            tracing::error!(group = %name, error = %e, "dynamic group rule no longer checks; the group is empty");
        }
        metrics::gauge!("portcullis_groups_held_for_review").set(
            report
                .unbound_groups
                .iter()
                .filter(|g| g.status == "held")
                .count() as f64,
        );
        let report = Arc::new(report);
        let previous = self
            .state
            .lock()
            .ok()
            .and_then(|mut s| s.report.replace(report.clone()));
        let before = previous
            .map(|p| p.cyclic_groups.clone())
            .unwrap_or_default();
        if before == report.cyclic_groups {
            return;
        }
        let (now, after) = (report.cyclic_groups.clone(), before);
        let event = store::IdentityEvent {
            seq: 0,
            revision: 0,
            at_ms: store::now_ms(),
            source: "compiler".into(),
            operation: if now.is_empty() { "cycle.resolved" } else { "cycle.detected" }.into(),
            resource_type: "Group".into(),
            resource_id: now.first().or(after.first()).cloned().unwrap_or_default(),
            before: Some(serde_json::json!({ "cyclic_groups": after })),
            after: Some(serde_json::json!({ "cyclic_groups": now })),
            outcome: store::EventOutcome::Reported,
            status: None,
            detail: Some("group nesting in the IdP data forms a cycle; each group keeps the groups it reaches, the cycle grants nothing more".into()),
            request: None,
            request_sha256: None,
            high_priority: true,
        };
        if let Err(e) = self
            .store
            .write(move |tx| store::record_event(tx, &event).map(|_| ()))
            .await
        {
            tracing::error!(error = %e, "could not record the nesting-cycle event");
        }
    }
}

/// The changes since revision `since`, as the compiler takes them, with the API keys live now
/// (read whole: a key change touches nothing else); `None` when more than `limit` resources
/// changed (or an event of a kind it cannot place), so a full read is due.
fn read_changes(
    c: &mut rusqlite::Connection,
    since: u64,
    limit: usize,
) -> Result<Option<(DirectoryChanges, Vec<store::ApiKeyRow>)>, StoreError> {
    let tx = c.transaction()?;
    let revision = store::identity_revision(&tx)?;
    let changed = store::changed_since(&tx, since)?;
    if changed.len() > limit {
        return Ok(None);
    }
    let mut changes = DirectoryChanges {
        revision,
        ..Default::default()
    };
    for ch in changed {
        match ch.resource_type.as_str() {
            "User" => changes.users.push(UserChange {
                row: store::user_by_id(&tx, &ch.resource_id)?,
                id: ch.resource_id,
                removed: ch.deleted,
            }),
            "Group" => {
                let row = store::group_by_id(&tx, &ch.resource_id)?;
                changes.groups.push((ch.resource_id, row));
            }
            // Issued or revoked: the keys below are read whole.
            "ApiKey" => {}
            _ => return Ok(None),
        }
    }
    let now = store::now_ms();
    changes.activations = store::live_activations(&tx, now)?;
    let keys = store::live_api_keys(&tx, now)?;
    tx.commit()?;
    Ok(Some((changes, keys)))
}

/// Frames and signs a full snapshot.
fn full_frame(snapshot: &Snapshot, signer: &FrameSigner) -> Frame {
    let payload = codec::encode(snapshot);
    let hash = codec::peek_header(&payload).map(|h| h.content_hash);
    signed(payload, hash.unwrap_or_default(), signer)
}

/// Frames and signs a delta.
fn delta_frame(delta: &Delta, signer: &FrameSigner) -> Frame {
    let payload = codec::encode_delta(delta);
    let hash = codec::peek_delta_header(&payload).map(|h| h.content_hash);
    signed(payload, hash.unwrap_or_default(), signer)
}

fn signed(payload: Vec<u8>, content_hash: Hash32, signer: &FrameSigner) -> Frame {
    Frame {
        signature: Bytes::from(signer.sign(&payload)),
        key_id: signer.key_id().to_owned(),
        content_hash,
        payload: Bytes::from(payload),
    }
}

/// The last published version, rebuilt from the last stored full snapshot and the deltas
/// after it, with the stored deltas that lead to it as history. `None` when nothing usable
/// is stored (the first compile then publishes afresh).
fn restore(
    full: Option<SnapshotRow>,
    rows: Vec<store::DeltaRow>,
    signer: &FrameSigner,
) -> Option<Published> {
    let row = full?;
    let mut snapshot = match codec::decode(&row.payload) {
        Ok((_, s)) => s,
        Err(e) => {
            tracing::warn!(error = %e, version = row.version, "stored snapshot does not decode; recompiling");
            return None;
        }
    };
    let mut steps: Vec<Arc<DeltaStep>> = Vec::new();
    for r in rows {
        let d = match codec::decode_stored_delta(&r.payload) {
            Ok((_, d)) => d,
            Err(e) => {
                tracing::warn!(error = %e, version = r.version, "stored delta does not decode; history restarts after it");
                steps.clear();
                continue;
            }
        };
        // Keep only a chain: a gap (a version published without a stored delta) restarts it.
        if steps
            .last()
            .is_some_and(|s| s.delta.version != d.base_version || s.delta.id != d.base_id)
        {
            steps.clear();
        }
        let frame = delta_frame(&d, signer);
        steps.push(Arc::new(DeltaStep { delta: d, frame }));
    }
    // The deltas after the full snapshot, composed and applied once.
    let start = steps
        .iter()
        .position(|s| s.delta.base_version == snapshot.version && s.delta.base_id == snapshot.id);
    let end_of_history = steps.last().map(|s| s.delta.version);
    if let Some(i) = start {
        let composed = delta::compose(steps[i..].iter().map(|s| &s.delta));
        match composed.and_then(|d| d.apply_to(&snapshot)) {
            Ok(s) => snapshot = s,
            Err(e) => {
                tracing::warn!(error = %e, "stored deltas do not apply; serving the last full snapshot")
            }
        }
    }
    // History must end at the restored version.
    if end_of_history != Some(snapshot.version) {
        steps.retain(|s| s.delta.version <= snapshot.version);
        if steps.last().map(|s| s.delta.version) != Some(snapshot.version) {
            steps.clear();
        }
    }
    let full =
        (snapshot.version == row.version).then(|| signed(row.payload, row.content_hash, signer));
    Some(Published {
        version: snapshot.version,
        identity_revision: snapshot.identity_revision,
        policy_version: snapshot.policy_version,
        created_ms: snapshot.created_at_ms,
        snapshot: Arc::new(snapshot),
        history: Arc::new(steps),
        full: tokio::sync::OnceCell::new_with(full),
    })
}

fn set_gauges(version: u64) {
    metrics::gauge!("portcullis_snapshot_version").set(version as f64);
}

fn issuers_hash(issuers: &[portcullis_shared::snapshot::Issuer]) -> Hash32 {
    Hash32::of(&serde_json::to_vec(issuers).unwrap_or_default())
}

#[cfg(test)]
mod tests;
