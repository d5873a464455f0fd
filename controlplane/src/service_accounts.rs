//! Service accounts: principals for programs, created by the control plane rather than fed by
//! an IdP.
//!
//! A service account is a user of the built-in identity source [`SOURCE`] (no `[[sources]]`
//! entry may take that name, so no SCIM client writes to it). Its groups are groups of that
//! source, created on first use, so the bindings bind them like any IdP group
//! (`group = "service-accounts/<name>"`) and policies see the account like any user
//! (`User` in `Group::"service-accounts/<name>"`). It authenticates with API keys
//! ([`crate::apikeys`]). Every change is written with its identity events (`User` and `Group`
//! resources of source `service-accounts`), exactly as SCIM writes them, so the publisher's
//! incremental path sees it.

use crate::apikeys;
use crate::store::{self, EventOutcome, GroupRow, IdentityEvent, Member, MemberKind, Store};
use crate::store::{StoreError, UserRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The identity source service accounts and their groups belong to.
pub const SOURCE: &str = "service-accounts";

/// A request to create a service account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccount {
    /// Becomes the account's `userName`: 1 to 128 of `a-z A-Z 0-9 . _ - @`.
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Groups of source `service-accounts` to put it in, by display name; missing ones are
    /// created.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Who asks.
    pub author: String,
}

/// A service account as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceAccount {
    /// Its SCIM id (what API keys and the snapshot name it by).
    pub id: String,
    pub name: String,
    pub display_name: Option<String>,
    /// The groups it is directly in, by display name.
    pub groups: Vec<String>,
    pub created_ms: u64,
    /// How many of its API keys work now.
    pub live_api_keys: usize,
}

/// What deleting a service account did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub id: String,
    pub name: String,
    /// The keys revoked with it.
    pub revoked_api_keys: Vec<String>,
}

/// Why a service-account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ServiceAccountError {
    #[error("a service account's name is 1 to 128 of a-z, A-Z, 0-9, '.', '_', '-', '@'")]
    Name,
    #[error("a display name is 1 to 128 characters without quotes or control characters")]
    DisplayName,
    #[error(
        "group name {0:?} is invalid: 1 to 128 characters without quotes or control characters"
    )]
    Group(String),
    #[error("say who asks: the author must not be empty")]
    Author,
    #[error("service account {0:?} exists already")]
    Exists(String),
    #[error("no service account is named {0:?}")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates, lists and deletes service accounts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServiceAccounts {
    store: Store,
}

impl ServiceAccounts {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Creates the account (active) and puts it in its groups, creating those that do not
    /// exist, with one identity event per user or group written.
    pub async fn create(
        &self,
        req: CreateServiceAccount,
    ) -> Result<ServiceAccount, ServiceAccountError> {
        let name = req.name.trim().to_owned();
        if !valid_account_name(&name) {
            return Err(ServiceAccountError::Name);
        }
        let display_name = match req.display_name.as_deref().map(str::trim) {
            None => None,
            Some(d) if crate::bindings::valid_name(d) => Some(d.to_owned()),
            Some(_) => return Err(ServiceAccountError::DisplayName),
        };
        let author = req.author.trim().to_owned();
        if author.is_empty() {
            return Err(ServiceAccountError::Author);
        }
        // One entry per group, compared as the store compares display names.
        let mut groups: BTreeMap<String, String> = BTreeMap::new();
        for g in &req.groups {
            let g = g.trim();
            if !crate::bindings::valid_name(g) {
                return Err(ServiceAccountError::Group(g.to_owned()));
            }
            groups
                .entry(g.to_lowercase())
                .or_insert_with(|| g.to_owned());
        }
        let who = author.clone();
        let account = self
            .store
            .write(move |tx| {
                if store::find_user_by_name(tx, SOURCE, &name)?.is_some() {
                    return Err(ServiceAccountError::Exists(name));
                }
                let now = store::now_ms();
                let mut resource = json!({
                    "userName": name,
                    "userType": "ServiceAccount",
                    "active": true,
                });
                if let Some(d) = &display_name {
                    resource["displayName"] = json!(d);
                }
                let user = UserRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    source: SOURCE.to_owned(),
                    resource,
                    created_ms: now,
                    modified_ms: now,
                    version: 1,
                    active: true,
                };
                store::put_user(tx, &user)?;
                let detail = format!("service account created by {author}");
                store::record_event(
                    tx,
                    &event(
                        "User",
                        "create",
                        &user.id,
                        None,
                        Some(user_json(&user)),
                        &detail,
                    ),
                )?;
                let mut names = Vec::with_capacity(groups.len());
                for g in groups.into_values() {
                    names.push(join(tx, &user, &g, now, &detail)?);
                }
                names.sort();
                Ok::<_, ServiceAccountError>(ServiceAccount {
                    id: user.id.clone(),
                    name: user.user_name().to_owned(),
                    display_name,
                    groups: names,
                    created_ms: now,
                    live_api_keys: 0,
                })
            })
            .await?;
        metrics::counter!("portcullis_service_accounts_total", "event" => "created").increment(1);
        tracing::info!(
            id = %account.id, name = %account.name, groups = ?account.groups,
            author = %who, "service account created"
        );
        Ok(account)
    }

    /// Every service account, by name.
    pub async fn list(&self) -> Result<Vec<ServiceAccount>, ServiceAccountError> {
        Ok(self
            .store
            .read(|c| {
                let tx = c.transaction()?;
                let mut keys: BTreeMap<String, usize> = BTreeMap::new();
                for k in store::live_api_keys(&tx, store::now_ms())? {
                    if k.source == SOURCE {
                        *keys.entry(k.user_id).or_default() += 1;
                    }
                }
                let mut out = Vec::new();
                for u in store::list_users(&tx, Some(SOURCE))? {
                    let mut groups: Vec<String> = store::groups_containing(&tx, &u.id)?
                        .into_iter()
                        .map(|(_, name)| name)
                        .collect();
                    groups.sort();
                    out.push(ServiceAccount {
                        name: u.user_name().to_owned(),
                        display_name: u
                            .resource
                            .get("displayName")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        groups,
                        created_ms: u.created_ms,
                        live_api_keys: keys.get(&u.id).copied().unwrap_or(0),
                        id: u.id,
                    });
                }
                tx.commit()?;
                out.sort_by_key(|a| a.name.to_lowercase());
                Ok::<_, StoreError>(out)
            })
            .await?)
    }

    /// Deletes the account (and its memberships; its groups stay, bound as they are) and
    /// revokes its keys, with their events, in one transaction. Its keys would stop working
    /// anyway, since nodes no longer find the user; revoking them keeps the record plain.
    pub async fn delete(&self, name: &str, author: &str) -> Result<Deleted, ServiceAccountError> {
        let author = author.trim().to_owned();
        if author.is_empty() {
            return Err(ServiceAccountError::Author);
        }
        let name = name.to_owned();
        let who = author.clone();
        let deleted = self
            .store
            .write(move |tx| {
                let user = store::find_user_by_name(tx, SOURCE, &name)?
                    .ok_or_else(|| ServiceAccountError::Unknown(name.clone()))?;
                let now = store::now_ms();
                let revoked = apikeys::revoke_all_tx(tx, SOURCE, &user.id, &author, now)?;
                store::delete_user(tx, SOURCE, &user.id)?;
                store::record_event(
                    tx,
                    &event(
                        "User",
                        "delete",
                        &user.id,
                        Some(user_json(&user)),
                        None,
                        &format!("service account deleted by {author}"),
                    ),
                )?;
                Ok::<_, ServiceAccountError>(Deleted {
                    id: user.id.clone(),
                    name: user.user_name().to_owned(),
                    revoked_api_keys: revoked,
                })
            })
            .await?;
        metrics::counter!("portcullis_service_accounts_total", "event" => "deleted").increment(1);
        tracing::info!(
            id = %deleted.id, name = %deleted.name, revoked_keys = deleted.revoked_api_keys.len(),
            author = %who, "service account deleted"
        );
        Ok(deleted)
    }
}

/// Puts `user` in the group of [`SOURCE`] named `name`, creating the group if needed; returns
/// the group's display name as stored.
fn join(
    tx: &rusqlite::Connection,
    user: &UserRow,
    name: &str,
    now: u64,
    detail: &str,
) -> Result<String, StoreError> {
    let member = Member {
        id: user.id.clone(),
        kind: MemberKind::User,
        display: Some(user.user_name().to_owned()),
    };
    match store::find_group_by_name(tx, SOURCE, name)? {
        Some(old) => {
            let mut new = old.clone();
            new.members.push(member);
            new.members.sort();
            new.modified_ms = now;
            new.version += 1;
            store::put_group_changed(tx, &new, Some(&old.members))?;
            store::record_event(
                tx,
                &event(
                    "Group",
                    "patch",
                    &new.id,
                    Some(group_json(&old)),
                    Some(group_json(&new)),
                    detail,
                ),
            )?;
            Ok(new.display_name().to_owned())
        }
        None => {
            let group = GroupRow {
                id: uuid::Uuid::new_v4().to_string(),
                source: SOURCE.to_owned(),
                resource: json!({ "displayName": name }),
                members: vec![member],
                created_ms: now,
                modified_ms: now,
                version: 1,
            };
            store::put_group(tx, &group)?;
            store::record_event(
                tx,
                &event(
                    "Group",
                    "create",
                    &group.id,
                    None,
                    Some(group_json(&group)),
                    detail,
                ),
            )?;
            Ok(name.to_owned())
        }
    }
}

fn valid_account_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

fn user_json(u: &UserRow) -> Value {
    let mut v = u.resource.clone();
    v["id"] = json!(u.id);
    v
}

fn group_json(g: &GroupRow) -> Value {
    let mut v = g.resource.clone();
    v["id"] = json!(g.id);
    v["members"] = g
        .members
        .iter()
        .map(|m| json!({"value": m.id, "type": m.kind.as_str()}))
        .collect();
    v
}

fn event(
    resource_type: &str,
    operation: &str,
    id: &str,
    before: Option<Value>,
    after: Option<Value>,
    detail: &str,
) -> IdentityEvent {
    IdentityEvent {
        seq: 0,
        revision: 0,
        at_ms: store::now_ms(),
        source: SOURCE.to_owned(),
        operation: operation.into(),
        resource_type: resource_type.into(),
        resource_id: id.to_owned(),
        before,
        after,
        outcome: EventOutcome::Applied,
        status: None,
        detail: Some(detail.to_owned()),
        request: None,
        request_sha256: None,
        high_priority: false,
    }
}

#[cfg(test)]
mod tests;
