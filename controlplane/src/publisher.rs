//! The publisher: recompiles when identity, policy or issuer keys change, stores each new
//! snapshot, and broadcasts it to every subscribed node.
//!
//! Changes only mark the publisher dirty; one background task compiles, so a burst of SCIM
//! writes coalesces into as few snapshots as compilation speed allows. Subscribers hold a
//! `watch` receiver: a slow node skips intermediate versions rather than queueing them.

use crate::attributes::PrincipalAttributes;
use crate::bindings::BindingStore;
use crate::compiler::{CompileReport, Compiler, Directory, DirectoryChanges, UserChange};
use crate::oidc::IssuerRegistry;
use crate::policies::PolicyStore;
use crate::store::{self, SnapshotRow, Store, StoreError};
use bytes::Bytes;
use portcullis_shared::Hash32;
use portcullis_shared::codec;
use portcullis_shared::snapshot::PolicyVersion;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// A snapshot as sent to nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub version: u64,
    pub identity_revision: u64,
    pub policy_version: PolicyVersion,
    pub content_hash: Hash32,
    pub created_ms: u64,
    /// Framed bytes (see `portcullis_shared::codec`).
    pub payload: Bytes,
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
}

/// Compiles and broadcasts snapshots.
#[derive(Debug)]
pub struct Publisher {
    store: Store,
    policies: PolicyStore,
    issuers: IssuerRegistry,
    attributes: PrincipalAttributes,
    bindings: BindingStore,
    keep: u32,
    tx: watch::Sender<Option<Arc<Published>>>,
    dirty: Notify,
    state: Mutex<State>,
    /// Held for a whole compilation, so snapshots are compiled and versioned in order.
    compiled: tokio::sync::Mutex<Option<Compiled>>,
}

impl Publisher {
    /// Restores the last stored snapshot (so nodes are served at once), then starts the
    /// compile loop and compiles once.
    pub async fn start(
        store: Store,
        policies: PolicyStore,
        issuers: IssuerRegistry,
        attributes: PrincipalAttributes,
        bindings: BindingStore,
        keep: u32,
    ) -> Result<Arc<Self>, PublishError> {
        let last = store.run(|c| store::latest_snapshot(c)).await?;
        let (tx, _) = watch::channel(None);
        let mut state = State::default();
        if let Some(row) = last {
            match codec::decode(&row.payload) {
                Ok((_, snap)) => {
                    state.last_inputs = Some(Inputs {
                        identity_revision: snap.identity_revision,
                        policy_version: snap.policy_version,
                        issuers: issuers_hash(&snap.issuers),
                        bindings_version: bindings.live().version,
                        min_version: 0,
                    });
                    tx.send_replace(Some(Arc::new(Published {
                        version: row.version,
                        identity_revision: row.identity_revision,
                        policy_version: snap.policy_version,
                        content_hash: row.content_hash,
                        created_ms: row.created_ms,
                        payload: Bytes::from(row.payload),
                    })));
                    set_gauges(row.version);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stored snapshot does not decode; recompiling")
                }
            }
        }
        let this = Arc::new(Self {
            store,
            policies,
            issuers,
            attributes,
            bindings,
            keep,
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
            match changes.map(|ch| c.compiler.apply(ch)) {
                Some(Ok(())) => how = "incremental",
                Some(Err(reason)) => {
                    tracing::debug!(%reason, "identity change needs a full compile")
                }
                None => tracing::debug!("many identity changes; compiling afresh"),
            }
        }
        if how == "full" {
            let directory = self
                .store
                .read(|c| {
                    let tx = c.transaction()?;
                    let d = Directory {
                        revision: store::identity_revision(&tx)?,
                        users: store::list_users(&tx, None)?,
                        groups: store::list_groups(&tx, None)?,
                        activations: store::live_activations(&tx, store::now_ms())?,
                    };
                    tx.commit()?;
                    Ok::<_, StoreError>(d)
                })
                .await?;
            let (p, attributes, b) = (
                policy.clone(),
                self.attributes.clone(),
                bindings.bindings.clone(),
            );
            // Compiling a large directory takes a while: off the async workers.
            let compiler = tokio::task::spawn_blocking(move || {
                Compiler::build(directory, &p, &attributes, &b, issuers)
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
        let compile_time = started.elapsed();
        self.note_report(state.compiler.report()).await;
        let keep = self.keep;
        // The version first (a small write), then the encoding off the store's writer and
        // the async workers, then the row: SCIM writes never wait for an encode. A crash in
        // between leaves a version unused, never reused.
        snapshot.version = self
            .store
            .write(move |tx| store::allocate_snapshot_version(tx, min_version))
            .await?;
        let (snapshot, payload) = tokio::task::spawn_blocking(move || {
            let payload = codec::encode(&snapshot);
            (snapshot, payload)
        })
        .await
        .map_err(|e| PublishError::Compiler(e.to_string()))?;
        let header = codec::peek_header(&payload)
            .map_err(|e| StoreError::Worker(format!("encoded snapshot is unreadable: {e}")))?;
        let payload = Bytes::from(payload);
        let row = SnapshotRow {
            version: snapshot.version,
            identity_revision: snapshot.identity_revision,
            policy_counter: snapshot.policy_version.counter,
            content_hash: header.content_hash,
            created_ms,
            payload: payload.to_vec(),
        };
        self.store
            .write(move |tx| store::insert_snapshot(tx, &row, keep))
            .await?;

        let published = Arc::new(Published {
            version: snapshot.version,
            identity_revision: snapshot.identity_revision,
            policy_version: snapshot.policy_version,
            content_hash: header.content_hash,
            created_ms,
            payload,
        });
        if let Ok(mut s) = self.state.lock() {
            s.last_inputs = Some(inputs);
            s.mode = Some(how);
        }
        self.tx.send_replace(Some(published.clone()));
        let elapsed = started.elapsed();
        metrics::histogram!("portcullis_snapshot_compile_seconds", "mode" => how)
            .record(compile_time.as_secs_f64());
        metrics::histogram!("portcullis_snapshot_publish_seconds").record(elapsed.as_secs_f64());
        metrics::gauge!("portcullis_snapshot_bytes").set(published.payload.len() as f64);
        set_gauges(published.version);
        tracing::info!(
            version = published.version,
            identity_revision = published.identity_revision,
            policy_version = %published.policy_version,
            users = snapshot.users.len(),
            groups = snapshot.groups.len(),
            bytes = published.payload.len(),
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

/// The changes since revision `since`, as the compiler takes them; `None` when more than
/// `limit` resources changed (or an event of a kind it cannot place), so a full read is due.
fn read_changes(
    c: &mut rusqlite::Connection,
    since: u64,
    limit: usize,
) -> Result<Option<DirectoryChanges>, StoreError> {
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
            _ => return Ok(None),
        }
    }
    changes.activations = store::live_activations(&tx, store::now_ms())?;
    tx.commit()?;
    Ok(Some(changes))
}

fn set_gauges(version: u64) {
    metrics::gauge!("portcullis_snapshot_version").set(version as f64);
}

fn issuers_hash(issuers: &[portcullis_shared::snapshot::Issuer]) -> Hash32 {
    Hash32::of(&serde_json::to_vec(issuers).unwrap_or_default())
}

#[cfg(test)]
mod tests;
