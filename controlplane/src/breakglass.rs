//! Break-glass: time-boxed emergency access.
//!
//! A break-glass entry in the bindings names a role and the longest activation allowed. An
//! activation (admin API or CLI) grants that role to one user until an instant; the instant
//! travels in every snapshot, so each node ends the access on its own even if the control plane
//! is down when it passes. Every activation and revocation is a high-priority identity event
//! and is announced to the entry's webhook.

use crate::bindings::BindingStore;
use crate::store::{self, ActivationRow, EventOutcome, IdentityEvent, Store, StoreError};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// An activation request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// The break-glass entry's name.
    pub name: String,
    /// The user's identity source and `userName` (or SCIM id).
    pub source: String,
    pub user: String,
    /// How long; at most (and by default) the entry's `max_minutes`.
    pub minutes: Option<u32>,
    /// Or, for finer control, how many seconds (same limit).
    pub seconds: Option<u32>,
    /// Why: kept in the event log and sent to the webhook.
    pub reason: String,
    /// Who asked.
    pub author: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BreakGlassError {
    #[error("no break-glass entry is named {0:?} in the live bindings")]
    UnknownEntry(String),
    #[error("source {0:?} has no user {1:?}")]
    UnknownUser(String, String),
    #[error(
        "an activation of {requested_seconds} s is outside the entry's limit of 1 s to {max} minutes"
    )]
    TooLong { requested_seconds: u64, max: u32 },
    #[error("give minutes or seconds, not both")]
    Duration,
    #[error("an activation needs a reason and an author")]
    Unjustified,
    #[error("no live activation has id {0:?}")]
    NotLive(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Activates and revokes break-glass access. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BreakGlass {
    store: Store,
    bindings: BindingStore,
    http: reqwest::Client,
}

impl BreakGlass {
    pub fn new(store: Store, bindings: BindingStore) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            store,
            bindings,
            http,
        }
    }

    /// Grants the entry's role to the user until now + minutes, records the high-priority
    /// event in the same transaction, and announces it to the webhook (in the background).
    pub async fn activate(&self, req: ActivateRequest) -> Result<ActivationRow, BreakGlassError> {
        let live = self.bindings.live();
        let entry = live
            .bindings
            .break_glass(&req.name)
            .cloned()
            .ok_or_else(|| BreakGlassError::UnknownEntry(req.name.clone()))?;
        let seconds = match (req.minutes, req.seconds) {
            (Some(_), Some(_)) => return Err(BreakGlassError::Duration),
            (Some(m), None) => u64::from(m) * 60,
            (None, Some(s)) => u64::from(s),
            (None, None) => u64::from(entry.max_minutes) * 60,
        };
        if seconds == 0 || seconds > u64::from(entry.max_minutes) * 60 {
            return Err(BreakGlassError::TooLong {
                requested_seconds: seconds,
                max: entry.max_minutes,
            });
        }
        if req.reason.trim().is_empty() || req.author.trim().is_empty() {
            return Err(BreakGlassError::Unjustified);
        }
        let role = entry.role.clone();
        let row = self
            .store
            .write(move |tx| {
                let user = match store::find_user_by_name(tx, &req.source, &req.user)? {
                    Some(u) => u,
                    None => store::get_user(tx, &req.source, &req.user)?.ok_or_else(|| {
                        StoreError::Worker(format!("unknown user {}/{}", req.source, req.user))
                    })?,
                };
                let now = store::now_ms();
                let row = ActivationRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    name: req.name.clone(),
                    role,
                    source: req.source.clone(),
                    user_id: user.id.clone(),
                    user_name: user.user_name().to_owned(),
                    reason: req.reason.clone(),
                    author: req.author.clone(),
                    activated_ms: now,
                    expires_ms: now + seconds * 1000,
                    revoked_ms: None,
                };
                store::insert_activation(tx, &row)?;
                store::record_event(tx, &event("break_glass.activate", &row, now))?;
                Ok::<_, StoreError>(row)
            })
            .await
            .map_err(|e| match e {
                StoreError::Worker(m) if m.starts_with("unknown user") => {
                    let (s, u) = m
                        .trim_start_matches("unknown user ")
                        .split_once('/')
                        .unwrap_or(("", ""));
                    BreakGlassError::UnknownUser(s.to_owned(), u.to_owned())
                }
                e => BreakGlassError::Store(e),
            })?;
        metrics::counter!("portcullis_break_glass_activations_total").increment(1);
        tracing::warn!(
            user = %row.user_name, role = %row.role, expires_ms = row.expires_ms,
            author = %row.author, reason = %row.reason, "break-glass access activated"
        );
        if let Some(url) = entry.webhook {
            self.announce(url, "activated", row.clone());
        }
        Ok(row)
    }

    /// Ends a live activation now.
    pub async fn revoke(&self, id: &str, author: &str) -> Result<ActivationRow, BreakGlassError> {
        let (id, author) = (id.to_owned(), author.to_owned());
        let row = self
            .store
            .write(move |tx| {
                let now = store::now_ms();
                if !store::revoke_activation(tx, &id, now)? {
                    return Ok(None);
                }
                let row = store::get_activation(tx, &id)?;
                if let Some(r) = &row {
                    let mut e = event("break_glass.revoke", r, now);
                    e.detail = Some(format!("revoked by {author}"));
                    store::record_event(tx, &e)?;
                }
                Ok::<_, StoreError>(row)
            })
            .await?;
        let row = row.ok_or_else(|| BreakGlassError::NotLive(String::new()))?;
        let webhook = self
            .bindings
            .live()
            .bindings
            .break_glass(&row.name)
            .and_then(|e| e.webhook.clone());
        if let Some(url) = webhook {
            self.announce(url, "revoked", row.clone());
        }
        Ok(row)
    }

    /// POSTs the activation to `url`, retrying with backoff; failures are logged and counted,
    /// never block the activation (the event log already holds it).
    fn announce(&self, url: String, what: &'static str, row: ActivationRow) {
        let http = self.http.clone();
        tokio::spawn(async move {
            let body = json!({
                "event": format!("break_glass.{what}"),
                "priority": "high",
                "activation": row,
            });
            let mut delay = Duration::from_millis(250);
            for attempt in 1..=5 {
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        metrics::counter!("portcullis_break_glass_webhooks_total", "result" => "delivered")
                            .increment(1);
                        return;
                    }
                    Ok(r) => {
                        tracing::warn!(%url, status = %r.status(), attempt, "break-glass webhook refused")
                    }
                    Err(e) => {
                        tracing::warn!(%url, error = %e, attempt, "break-glass webhook failed")
                    }
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            metrics::counter!("portcullis_break_glass_webhooks_total", "result" => "failed")
                .increment(1);
            tracing::error!(%url, "break-glass webhook gave up; the event log still holds the activation");
        });
    }
}

fn event(operation: &str, row: &ActivationRow, now: u64) -> IdentityEvent {
    IdentityEvent {
        seq: 0,
        revision: 0,
        at_ms: now,
        source: row.source.clone(),
        operation: operation.into(),
        resource_type: "User".into(),
        resource_id: row.user_id.clone(),
        before: None,
        after: serde_json::to_value(row).ok(),
        outcome: EventOutcome::Applied,
        status: None,
        detail: Some(row.reason.clone()),
        request: None,
        request_sha256: None,
        high_priority: true,
    }
}
