//! The deactivation grace period.
//!
//! A user the IdP deactivates is denied at once (the next snapshot carries `active: false`),
//! but its data stay: groups, attributes and bindings, so a reactivation within the grace
//! period restores exactly the access it had. Once a user has stayed deactivated for longer
//! than the bindings' `[lifecycle] deactivated_grace_days` (counted from the last change to
//! the deactivated account), the control plane purges it as a SCIM DELETE would: the resource
//! and its memberships go, it leaves the snapshots, and a `user.purge` identity event records
//! the full resource as it was. Identity events are never purged with the user. An IdP that
//! reactivates a purged user gets 404 and provisions it anew (as Entra ID and Okta do).

use crate::store::{self, EventOutcome, IdentityEvent, Store, StoreError};
use rusqlite::params;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Purges users deactivated (and unchanged) for longer than `grace_days` as of `now_ms`, in
/// one transaction with one `user.purge` event each. Returns the purged `(source, id)`s.
pub async fn purge_expired(
    store: &Store,
    grace_days: u32,
    now_ms: u64,
) -> Result<Vec<(String, String)>, StoreError> {
    let cutoff = now_ms.saturating_sub(u64::from(grace_days) * DAY_MS);
    store
        .write(move |tx| {
            let mut stmt = tx.prepare(
                "SELECT id, source, resource FROM users
                 WHERE active = 0 AND modified_ms < ?1 ORDER BY source, id",
            )?;
            let expired = stmt
                .query_map(params![cutoff as i64], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            drop(stmt);
            let mut purged = Vec::with_capacity(expired.len());
            for (id, source, resource) in expired {
                store::delete_user(tx, &source, &id)?;
                store::record_event(
                    tx,
                    &IdentityEvent {
                        seq: 0,
                        revision: 0,
                        at_ms: now_ms,
                        source: source.clone(),
                        operation: "user.purge".into(),
                        resource_type: "User".into(),
                        resource_id: id.clone(),
                        before: Some(serde_json::from_str(&resource)?),
                        after: None,
                        outcome: EventOutcome::Applied,
                        status: None,
                        detail: Some(format!(
                            "deactivated for longer than the {grace_days}-day grace period"
                        )),
                        request: None,
                        request_sha256: None,
                        high_priority: false,
                    },
                )?;
                purged.push((source, id));
            }
            Ok::<_, StoreError>(purged)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UserRow;
    use serde_json::json;

    fn user(id: &str, active: bool, modified_ms: u64) -> UserRow {
        UserRow {
            id: id.into(),
            source: "okta".into(),
            active,
            resource: json!({"userName": format!("{id}@x"), "active": active}),
            created_ms: 0,
            modified_ms,
            version: 1,
        }
    }

    #[tokio::test]
    async fn only_users_deactivated_longer_than_the_grace_period_are_purged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db")).unwrap();
        let now = 100 * DAY_MS;
        store
            .write(move |tx| {
                store::put_user(tx, &user("old-inactive", false, now - 31 * DAY_MS))?;
                store::put_user(tx, &user("new-inactive", false, now - 29 * DAY_MS))?;
                store::put_user(tx, &user("old-active", true, now - 90 * DAY_MS))?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let purged = purge_expired(&store, 30, now).await.unwrap();
        assert_eq!(purged, [("okta".to_owned(), "old-inactive".to_owned())]);
        let left: Vec<String> = store
            .run(|c| store::list_users(c, None))
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(left, ["new-inactive", "old-active"]);
        let events = store.run(|c| store::events_after(c, 0, 10)).await.unwrap();
        let purge = events.iter().find(|e| e.operation == "user.purge").unwrap();
        assert_eq!(purge.resource_id, "old-inactive");
        assert_eq!(purge.before.as_ref().unwrap()["userName"], "old-inactive@x");
        assert!(purge_expired(&store, 30, now).await.unwrap().is_empty());
    }
}
