//! Snapshot deltas: what changed in the directory between two versions.
//!
//! Most snapshots differ from the one before by a handful of users (a deactivation, a group
//! move). A [`Delta`] carries just those: the users added or changed, the users removed, and
//! the groups whose nesting changed (and the API key list, whole, when a key was issued,
//! revoked or expired), with the version it applies to (`base_version`) and the version it
//! makes. Everything else a snapshot holds (policies, schema, issuers, roles,
//! partners, labels, the group list itself) must be identical between the two; when it is
//! not, [`diff`] says why and the control plane sends the full snapshot instead.
//!
//! Groups are addressed by index (users name their groups by index), so a delta may change a
//! group's ancestors but never add, remove, rename or reorder groups.

use crate::snapshot::{ApiKey, Group, Snapshot, User};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::sync::Arc;

/// The directory changes from snapshot `base_version` to snapshot `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub base_version: u64,
    /// The id of the snapshot it applies to ([`Snapshot::id`]).
    pub base_id: u64,
    pub version: u64,
    /// The id of the snapshot it makes.
    pub id: u64,
    pub identity_revision: u64,
    pub created_at_ms: u64,
    /// Groups replaced in place (same id, source and name; new ancestors), by ascending index.
    pub groups: Vec<(u32, Arc<Group>)>,
    /// Users added or changed, sorted by `(source, id)`.
    pub users: Vec<Arc<User>>,
    /// Users removed, as `(source, id)`, sorted.
    pub removed: Vec<(String, String)>,
    /// The live API keys, all of them sorted by id, when they changed (a few dozen bytes a
    /// key, so a revocation reaches nodes as fast as a deactivation).
    pub api_keys: Option<Vec<ApiKey>>,
}

/// Why two snapshots cannot be related by a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotDelta {
    #[error("the new snapshot is not newer")]
    NotNewer,
    #[error("the {0} changed")]
    Changed(&'static str),
    #[error("groups were added, removed or renamed")]
    GroupsReshaped,
}

/// Why a delta does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("delta applies to version {expected}, but the live version is {live}")]
    WrongBase { expected: u64, live: u64 },
    #[error(
        "delta applies to version {version} as published with id {expected:x}, but the live snapshot of that version has id {live:x} (different content)"
    )]
    WrongBaseId {
        version: u64,
        expected: u64,
        live: u64,
    },
    #[error("delta does not advance the version ({base} → {version})")]
    NotNewer { base: u64, version: u64 },
    #[error("delta changes group {index}, which is {reason}")]
    BadGroup { index: u32, reason: &'static str },
    #[error("delta user {0} names a group, role or condition out of range")]
    BadUser(String),
    #[error("delta users or removals are not sorted and unique")]
    Unsorted,
    #[error("no deltas to compose")]
    NothingToCompose,
}

/// Consecutive deltas (each starting where the one before ends) as one, in one pass: the
/// last word on each user and group wins, and a removal after an upsert is a removal. A node
/// that fell several versions behind gets one delta, not a queue of them. Cost: the total
/// size of the deltas, times a log.
pub fn compose<'a>(steps: impl IntoIterator<Item = &'a Delta>) -> Result<Delta, ApplyError> {
    let mut steps = steps.into_iter();
    let Some(first) = steps.next() else {
        return Err(ApplyError::NothingToCompose);
    };
    let mut out = Delta {
        groups: Vec::new(),
        users: Vec::new(),
        removed: Vec::new(),
        api_keys: None,
        ..first.clone_header()
    };
    let mut api_keys = None;
    let mut groups: std::collections::BTreeMap<u32, Arc<Group>> = std::collections::BTreeMap::new();
    let mut users: std::collections::BTreeMap<(String, String), Option<Arc<User>>> =
        std::collections::BTreeMap::new();
    let mut add = |d: &Delta| {
        if d.api_keys.is_some() {
            api_keys.clone_from(&d.api_keys);
        }
        groups.extend(d.groups.iter().cloned());
        for k in &d.removed {
            users.insert(k.clone(), None);
        }
        for u in &d.users {
            users.insert((u.source.clone(), u.id.clone()), Some(u.clone()));
        }
    };
    add(first);
    for d in steps {
        if d.base_version != out.version {
            return Err(ApplyError::WrongBase {
                expected: d.base_version,
                live: out.version,
            });
        }
        if d.base_id != out.id {
            return Err(ApplyError::WrongBaseId {
                version: d.base_version,
                expected: d.base_id,
                live: out.id,
            });
        }
        out.version = d.version;
        out.id = d.id;
        out.identity_revision = d.identity_revision;
        out.created_at_ms = d.created_at_ms;
        add(d);
    }
    out.groups = groups.into_iter().collect();
    out.api_keys = api_keys;
    for (k, u) in users {
        match u {
            Some(u) => out.users.push(u),
            None => out.removed.push(k),
        }
    }
    Ok(out)
}

fn key(u: &User) -> (&str, &str) {
    (&u.source, &u.id)
}

/// The delta taking `old` to `new`, or why there is none. Cost: one pass over both user
/// lists comparing pointers (snapshots from the incremental compiler share unchanged users),
/// plus a value comparison where the pointers differ.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Result<Delta, NotDelta> {
    // Destructured so that a field added to `Snapshot` fails to compile here until this
    // function decides whether a delta can carry it.
    let Snapshot {
        version,
        id,
        identity_revision,
        policy_version,
        created_at_ms,
        issuers,
        groups,
        users,
        principal_attributes,
        schema,
        policies,
        roles,
        conditions,
        resource_labels,
        partners,
        labeled_resources,
        api_keys,
    } = new;
    if *version <= old.version {
        return Err(NotDelta::NotNewer);
    }
    let unchanged: [(bool, &'static str); 10] = [
        (*policy_version == old.policy_version, "policy version"),
        (*issuers == old.issuers, "issuers"),
        (
            *principal_attributes == old.principal_attributes,
            "principal attributes",
        ),
        (*schema == old.schema, "schema"),
        (*policies == old.policies, "policies"),
        (*roles == old.roles, "roles"),
        (*conditions == old.conditions, "role conditions"),
        (*resource_labels == old.resource_labels, "resource labels"),
        (*partners == old.partners, "partners"),
        (
            *labeled_resources == old.labeled_resources,
            "labeled resources",
        ),
    ];
    if let Some((_, what)) = unchanged.iter().find(|(same, _)| !same) {
        return Err(NotDelta::Changed(what));
    }
    if groups.len() != old.groups.len() {
        return Err(NotDelta::GroupsReshaped);
    }
    let mut changed_groups = Vec::new();
    for (i, (a, b)) in old.groups.iter().zip(groups).enumerate() {
        if Arc::ptr_eq(a, b) || a == b {
            continue;
        }
        if a.id != b.id || a.source != b.source || a.display_name != b.display_name {
            return Err(NotDelta::GroupsReshaped);
        }
        changed_groups.push((i as u32, b.clone()));
    }

    let (mut changed, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.users.len() || j < users.len() {
        let order = match (old.users.get(i), users.get(j)) {
            // The same allocation is the same user, unchanged: no string comparison.
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => {
                i += 1;
                j += 1;
                continue;
            }
            (Some(a), Some(b)) => key(a).cmp(&key(b)),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                let a = &old.users[i];
                removed.push((a.source.clone(), a.id.clone()));
                i += 1;
            }
            Ordering::Greater => {
                changed.push(users[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                let (a, b) = (&old.users[i], &users[j]);
                if !Arc::ptr_eq(a, b) && a != b {
                    changed.push(b.clone());
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(Delta {
        base_version: old.version,
        base_id: old.id,
        version: *version,
        id: *id,
        identity_revision: *identity_revision,
        created_at_ms: *created_at_ms,
        groups: changed_groups,
        users: changed,
        removed,
        api_keys: (*api_keys != old.api_keys).then(|| api_keys.clone()),
    })
}

impl Delta {
    /// The versions and stamps, without the changes.
    fn clone_header(&self) -> Delta {
        Delta {
            base_version: self.base_version,
            base_id: self.base_id,
            version: self.version,
            id: self.id,
            identity_revision: self.identity_revision,
            created_at_ms: self.created_at_ms,
            groups: Vec::new(),
            users: Vec::new(),
            removed: Vec::new(),
            api_keys: None,
        }
    }

    /// How many users and groups it touches (and one for a new API key list).
    pub fn len(&self) -> usize {
        self.groups.len()
            + self.users.len()
            + self.removed.len()
            + usize::from(self.api_keys.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks what can be checked without the base: versions advance, lists are sorted and
    /// unique.
    pub fn check_shape(&self) -> Result<(), ApplyError> {
        if self.version <= self.base_version {
            return Err(ApplyError::NotNewer {
                base: self.base_version,
                version: self.version,
            });
        }
        let users_sorted = self.users.windows(2).all(|w| key(&w[0]) < key(&w[1]));
        let removed_sorted = self.removed.windows(2).all(|w| w[0] < w[1]);
        let groups_sorted = self.groups.windows(2).all(|w| w[0].0 < w[1].0);
        let keys_sorted = self
            .api_keys
            .as_ref()
            .is_none_or(|k| k.windows(2).all(|w| w[0].id < w[1].id));
        if !(users_sorted && removed_sorted && groups_sorted && keys_sorted) {
            return Err(ApplyError::Unsorted);
        }
        Ok(())
    }

    /// Applies this delta to a full snapshot (the control plane's and the tests' form; nodes
    /// apply deltas to their indexed form, see `Engine::apply`). Cost grows with the
    /// directory; removing a user the base does not hold is not an error (a composed delta
    /// may remove a user it also added).
    pub fn apply_to(&self, base: &Snapshot) -> Result<Snapshot, ApplyError> {
        if base.version != self.base_version {
            return Err(ApplyError::WrongBase {
                expected: self.base_version,
                live: base.version,
            });
        }
        if base.id != self.base_id {
            return Err(ApplyError::WrongBaseId {
                version: base.version,
                expected: self.base_id,
                live: base.id,
            });
        }
        self.check_shape()?;
        let mut next = base.clone();
        next.version = self.version;
        next.id = self.id;
        next.identity_revision = self.identity_revision;
        next.created_at_ms = self.created_at_ms;
        for (index, g) in &self.groups {
            let slot = next
                .groups
                .get_mut(*index as usize)
                .ok_or(ApplyError::BadGroup {
                    index: *index,
                    reason: "out of range",
                })?;
            if slot.id != g.id || slot.source != g.source || slot.display_name != g.display_name {
                return Err(ApplyError::BadGroup {
                    index: *index,
                    reason: "a different group",
                });
            }
            *slot = g.clone();
        }
        let mut users = Vec::with_capacity(base.users.len() + self.users.len());
        let mut upserts = self.users.iter().peekable();
        let mut removed = self.removed.iter().peekable();
        for u in &base.users {
            while let Some(n) = upserts.next_if(|n| key(n) < key(u)) {
                users.push(n.clone());
            }
            while removed
                .next_if(|r| (r.0.as_str(), r.1.as_str()) < key(u))
                .is_some()
            {}
            let gone = removed.next_if(|r| (r.0.as_str(), r.1.as_str()) == key(u));
            match upserts.next_if(|n| key(n) == key(u)) {
                Some(n) => users.push(n.clone()),
                None if gone.is_some() => {}
                None => users.push(u.clone()),
            }
        }
        users.extend(upserts.cloned());
        next.users = users;
        if let Some(keys) = &self.api_keys {
            next.api_keys.clone_from(keys);
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests;
