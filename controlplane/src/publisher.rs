//! The publisher: recompiles when identity, policy or issuer keys change, stores each new
//! snapshot, and broadcasts it to every subscribed node.
//!
//! Changes only mark the publisher dirty; one background task compiles, so a burst of SCIM
//! writes coalesces into as few snapshots as compilation speed allows. Subscribers hold a
//! `watch` receiver: a slow node skips intermediate versions rather than queueing them.

use crate::attributes::PrincipalAttributes;
use crate::bindings::BindingStore;
use crate::compiler::{self, CompileReport, Directory};
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

#[derive(Debug, Default)]
struct State {
    last_inputs: Option<Inputs>,
    /// The next version must be at least this (a node reported holding a higher one).
    min_version: u64,
    /// What the last compilation found.
    report: Option<Arc<CompileReport>>,
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
    pub async fn compile_once(&self) -> Result<Option<Arc<Published>>, PublishError> {
        let started = Instant::now();
        let policy = self.policies.live().ok_or(PublishError::NoPolicy)?;
        let issuers = self.issuers.current();
        let bindings = self.bindings.live();
        // A reader connection: compiling a large directory never holds up SCIM writes.
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

        let min_version = self
            .state
            .lock()
            .map_err(|_| StoreError::Worker("poisoned".into()))?
            .min_version;
        let inputs = Inputs {
            identity_revision: directory.revision,
            policy_version: policy.version,
            issuers: issuers_hash(&issuers),
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

        let created_ms = store::now_ms();
        let (mut snapshot, report) = compiler::compile(
            &directory,
            &policy,
            &self.attributes,
            &bindings.bindings,
            issuers,
            0,
            created_ms,
        );
        self.note_report(report).await;
        let keep = self.keep;
        let (snapshot, payload) = self
            .store
            .write(move |tx| {
                snapshot.version = store::allocate_snapshot_version(tx, min_version)?;
                let payload = codec::encode(&snapshot);
                let header = codec::peek_header(&payload).map_err(|e| {
                    StoreError::Worker(format!("encoded snapshot is unreadable: {e}"))
                })?;
                store::insert_snapshot(
                    tx,
                    &SnapshotRow {
                        version: snapshot.version,
                        identity_revision: snapshot.identity_revision,
                        policy_counter: snapshot.policy_version.counter,
                        content_hash: header.content_hash,
                        created_ms,
                        payload: payload.clone(),
                    },
                    keep,
                )?;
                Ok::<_, StoreError>((snapshot, payload))
            })
            .await?;

        let published = Arc::new(Published {
            version: snapshot.version,
            identity_revision: snapshot.identity_revision,
            policy_version: snapshot.policy_version,
            content_hash: codec::peek_header(&payload)
                .map(|h| h.content_hash)
                .unwrap_or_default(),
            created_ms,
            payload: Bytes::from(payload),
        });
        if let Ok(mut s) = self.state.lock() {
            s.last_inputs = Some(inputs);
        }
        self.tx.send_replace(Some(published.clone()));
        let elapsed = started.elapsed();
        metrics::histogram!("portcullis_snapshot_compile_seconds").record(elapsed.as_secs_f64());
        metrics::gauge!("portcullis_snapshot_bytes").set(published.payload.len() as f64);
        set_gauges(published.version);
        tracing::info!(
            version = published.version,
            identity_revision = published.identity_revision,
            policy_version = %published.policy_version,
            users = snapshot.users.len(),
            groups = snapshot.groups.len(),
            bytes = published.payload.len(),
            compile_ms = elapsed.as_secs_f64() * 1e3,
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

fn set_gauges(version: u64) {
    metrics::gauge!("portcullis_snapshot_version").set(version as f64);
}

fn issuers_hash(issuers: &[portcullis_shared::snapshot::Issuer]) -> Hash32 {
    Hash32::of(&serde_json::to_vec(issuers).unwrap_or_default())
}
