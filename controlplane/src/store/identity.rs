//! Users, groups, memberships and the identity event log.
//!
//! Every function takes a `&Connection` (a `Transaction` derefs to one) so callers compose a
//! read-check-write sequence and its event into one transaction.

use super::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// A stored SCIM user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: String,
    pub source: String,
    /// The SCIM representation without `id`, `meta` and `groups`.
    pub resource: Value,
    pub created_ms: u64,
    pub modified_ms: u64,
    /// Bumped on every change; the SCIM `meta.version` / ETag.
    pub version: u64,
    /// The effective status, which snapshots use: the `active` attribute when the resource
    /// has one; when a write drops the attribute, the status it had (a removal never
    /// reactivates anyone); `true` for a user created without it.
    pub active: bool,
}

impl UserRow {
    /// The status after a write that stores `resource` for a user whose status was `before`.
    pub fn status_after(resource: &Value, before: bool) -> bool {
        resource
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(before)
    }

    pub fn user_name(&self) -> &str {
        self.resource
            .get("userName")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn external_id(&self) -> Option<&str> {
        self.resource.get("externalId").and_then(Value::as_str)
    }
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    pub id: String,
    pub kind: MemberKind,
    /// The client's `display` for the member, kept as sent.
    pub display: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "Group" {
            Self::Group
        } else {
            Self::User
        }
    }
}

/// A stored SCIM group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: String,
    pub source: String,
    /// The SCIM representation without `id`, `meta` and `members`.
    pub resource: Value,
    pub members: Vec<Member>,
    pub created_ms: u64,
    pub modified_ms: u64,
    pub version: u64,
}

impl GroupRow {
    pub fn display_name(&self) -> &str {
        self.resource
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn external_id(&self) -> Option<&str> {
        self.resource.get("externalId").and_then(Value::as_str)
    }
}

/// One row of the identity event log.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityEvent {
    pub seq: u64,
    pub revision: u64,
    pub at_ms: u64,
    pub source: String,
    /// `create`, `replace`, `patch`, `delete`.
    pub operation: String,
    /// `User` or `Group`.
    pub resource_type: String,
    pub resource_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub outcome: EventOutcome,
    /// The HTTP status of a rejected request.
    pub status: Option<u16>,
    /// Why a request was rejected (`scimType` and detail).
    pub detail: Option<String>,
    /// A rejected request's body as sent (when JSON and not too large).
    pub request: Option<Value>,
    /// SHA-256 (hex) of the body of the request that caused the event.
    pub request_sha256: Option<String>,
    /// Break-glass activations and nesting cycles: events an operator must see first.
    pub high_priority: bool,
}

/// What a SCIM write request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventOutcome {
    /// The change was stored and the identity revision moved.
    Applied,
    /// Accepted, but nothing differed (an IdP re-sending what it sent before).
    Unchanged,
    /// Refused; nothing changed.
    Rejected,
    /// Something the control plane observed (a nesting cycle), not a change.
    Reported,
}

impl EventOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Rejected => "rejected",
            Self::Reported => "reported",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "unchanged" => Self::Unchanged,
            "rejected" => Self::Rejected,
            "reported" => Self::Reported,
            _ => Self::Applied,
        }
    }
}

// ---- users ----------------------------------------------------------------------------------

const USER_COLUMNS: &str = "id, source, resource, created_ms, modified_ms, version, active";

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(UserRow, String)> {
    let text: String = r.get(2)?;
    Ok((
        UserRow {
            id: r.get(0)?,
            source: r.get(1)?,
            resource: Value::Null,
            created_ms: r.get::<_, i64>(3)? as u64,
            modified_ms: r.get::<_, i64>(4)? as u64,
            version: r.get::<_, i64>(5)? as u64,
            active: r.get::<_, i64>(6)? != 0,
        },
        text,
    ))
}

fn finish_user((mut row, text): (UserRow, String)) -> Result<UserRow, StoreError> {
    row.resource = serde_json::from_str(&text)?;
    Ok(row)
}

pub fn get_user(c: &Connection, source: &str, id: &str) -> Result<Option<UserRow>, StoreError> {
    c.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND source = ?2"),
        params![id, source],
        user_from_row,
    )
    .optional()?
    .map(finish_user)
    .transpose()
}

/// A user by SCIM id, whatever its source (ids are unique across sources).
pub fn user_by_id(c: &Connection, id: &str) -> Result<Option<UserRow>, StoreError> {
    c.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        params![id],
        user_from_row,
    )
    .optional()?
    .map(finish_user)
    .transpose()
}

/// Case-insensitive `userName` lookup within a source.
pub fn find_user_by_name(
    c: &Connection,
    source: &str,
    user_name: &str,
) -> Result<Option<UserRow>, StoreError> {
    c.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE source = ?1 AND user_name_lc = ?2"),
        params![source, user_name.to_lowercase()],
        user_from_row,
    )
    .optional()?
    .map(finish_user)
    .transpose()
}

pub fn find_users_by_external_id(
    c: &Connection,
    source: &str,
    external_id: &str,
) -> Result<Vec<UserRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE source = ?1 AND external_id = ?2 ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![source, external_id], user_from_row)?;
    rows.map(|r| finish_user(r?)).collect()
}

/// Every user of a source, ordered by id (a stable order for paging). `source = None` lists
/// every source's users.
pub fn list_users(c: &Connection, source: Option<&str>) -> Result<Vec<UserRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE ?1 IS NULL OR source = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![source], user_from_row)?;
    rows.map(|r| finish_user(r?)).collect()
}

/// True if another user of the source already has this `userName` (case-insensitively).
pub fn user_name_taken(
    c: &Connection,
    source: &str,
    user_name: &str,
    except_id: &str,
) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT 1 FROM users WHERE source = ?1 AND user_name_lc = ?2 AND id <> ?3",
        params![source, user_name.to_lowercase(), except_id],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Inserts or replaces a user row.
pub fn put_user(c: &Connection, u: &UserRow) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO users (id, source, user_name, user_name_lc, external_id, active, resource,
                            created_ms, modified_ms, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET
            user_name = excluded.user_name, user_name_lc = excluded.user_name_lc,
            external_id = excluded.external_id, active = excluded.active,
            resource = excluded.resource, modified_ms = excluded.modified_ms,
            version = excluded.version",
        params![
            u.id,
            u.source,
            u.user_name(),
            u.user_name().to_lowercase(),
            u.external_id(),
            u.active,
            serde_json::to_string(&u.resource)?,
            u.created_ms as i64,
            u.modified_ms as i64,
            u.version as i64,
        ],
    )?;
    Ok(())
}

/// Deletes a user and every membership naming it.
pub fn delete_user(c: &Connection, source: &str, id: &str) -> Result<bool, StoreError> {
    let n = c.execute(
        "DELETE FROM users WHERE id = ?1 AND source = ?2",
        params![id, source],
    )?;
    if n > 0 {
        c.execute(
            "DELETE FROM group_members WHERE member_id = ?1 AND member_type = 'User'",
            params![id],
        )?;
    }
    Ok(n > 0)
}

// ---- groups ---------------------------------------------------------------------------------

const GROUP_COLUMNS: &str = "id, source, resource, created_ms, modified_ms, version";

fn group_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(GroupRow, String)> {
    let text: String = r.get(2)?;
    Ok((
        GroupRow {
            id: r.get(0)?,
            source: r.get(1)?,
            resource: Value::Null,
            members: Vec::new(),
            created_ms: r.get::<_, i64>(3)? as u64,
            modified_ms: r.get::<_, i64>(4)? as u64,
            version: r.get::<_, i64>(5)? as u64,
        },
        text,
    ))
}

fn finish_group(
    c: &Connection,
    (mut row, text): (GroupRow, String),
) -> Result<GroupRow, StoreError> {
    row.resource = serde_json::from_str(&text)?;
    row.members = members_of(c, &row.id)?;
    Ok(row)
}

pub fn get_group(c: &Connection, source: &str, id: &str) -> Result<Option<GroupRow>, StoreError> {
    c.query_row(
        &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = ?1 AND source = ?2"),
        params![id, source],
        group_from_row,
    )
    .optional()?
    .map(|r| finish_group(c, r))
    .transpose()
}

/// A group by SCIM id, whatever its source, with its members.
pub fn group_by_id(c: &Connection, id: &str) -> Result<Option<GroupRow>, StoreError> {
    c.query_row(
        &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = ?1"),
        params![id],
        group_from_row,
    )
    .optional()?
    .map(|r| finish_group(c, r))
    .transpose()
}

pub fn find_group_by_name(
    c: &Connection,
    source: &str,
    display_name: &str,
) -> Result<Option<GroupRow>, StoreError> {
    c.query_row(
        &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE source = ?1 AND display_name_lc = ?2"),
        params![source, display_name.to_lowercase()],
        group_from_row,
    )
    .optional()?
    .map(|r| finish_group(c, r))
    .transpose()
}

/// Every group of a source (or of all sources), ordered by id, with members.
pub fn list_groups(c: &Connection, source: Option<&str>) -> Result<Vec<GroupRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups WHERE ?1 IS NULL OR source = ?1 ORDER BY id"
    ))?;
    let rows = stmt
        .query_map(params![source], group_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut members = all_members(c, source)?;
    rows.into_iter()
        .map(|(mut row, text)| {
            row.resource = serde_json::from_str(&text)?;
            row.members = members.remove(&row.id).unwrap_or_default();
            Ok(row)
        })
        .collect()
}

pub fn display_name_taken(
    c: &Connection,
    source: &str,
    display_name: &str,
    except_id: &str,
) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT 1 FROM groups WHERE source = ?1 AND display_name_lc = ?2 AND id <> ?3",
        params![source, display_name.to_lowercase(), except_id],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Inserts or replaces a group row and sets its members to exactly `g.members`.
pub fn put_group(c: &Connection, g: &GroupRow) -> Result<(), StoreError> {
    put_group_changed(c, g, None)
}

/// [`put_group`] given the members the group had: only the difference is written, so a
/// membership change on a large group costs what changed, not the group's size.
pub fn put_group_changed(
    c: &Connection,
    g: &GroupRow,
    previous: Option<&[Member]>,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO groups (id, source, display_name, display_name_lc, external_id, resource,
                             created_ms, modified_ms, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO UPDATE SET
            display_name = excluded.display_name, display_name_lc = excluded.display_name_lc,
            external_id = excluded.external_id, resource = excluded.resource,
            modified_ms = excluded.modified_ms, version = excluded.version",
        params![
            g.id,
            g.source,
            g.display_name(),
            g.display_name().to_lowercase(),
            g.external_id(),
            serde_json::to_string(&g.resource)?,
            g.created_ms as i64,
            g.modified_ms as i64,
            g.version as i64,
        ],
    )?;
    let mut insert = c.prepare_cached(
        "INSERT OR REPLACE INTO group_members (group_id, member_id, member_type, display)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    let Some(previous) = previous else {
        c.execute(
            "DELETE FROM group_members WHERE group_id = ?1",
            params![g.id],
        )?;
        for m in &g.members {
            insert.execute(params![g.id, m.id, m.kind.as_str(), m.display])?;
        }
        return Ok(());
    };
    let (added, removed) = member_delta(previous, &g.members);
    let mut delete =
        c.prepare_cached("DELETE FROM group_members WHERE group_id = ?1 AND member_id = ?2")?;
    for m in removed {
        delete.execute(params![g.id, m.id])?;
    }
    for m in added {
        insert.execute(params![g.id, m.id, m.kind.as_str(), m.display])?;
    }
    Ok(())
}

/// Members in `after` that are not (identically) in `before`, and members of `before` whose
/// id is gone from `after`.
pub fn member_delta<'a>(
    before: &'a [Member],
    after: &'a [Member],
) -> (Vec<&'a Member>, Vec<&'a Member>) {
    let old: std::collections::HashSet<&Member> = before.iter().collect();
    let new_ids: std::collections::HashSet<&str> = after.iter().map(|m| m.id.as_str()).collect();
    let added = after.iter().filter(|m| !old.contains(m)).collect();
    let removed = before
        .iter()
        .filter(|m| !new_ids.contains(m.id.as_str()))
        .collect();
    (added, removed)
}

/// Deletes a group, its memberships, and its membership in other groups.
pub fn delete_group(c: &Connection, source: &str, id: &str) -> Result<bool, StoreError> {
    let n = c.execute(
        "DELETE FROM groups WHERE id = ?1 AND source = ?2",
        params![id, source],
    )?;
    if n > 0 {
        c.execute(
            "DELETE FROM group_members WHERE member_id = ?1 AND member_type = 'Group'",
            params![id],
        )?;
    }
    Ok(n > 0)
}

/// Direct members of a group, ordered.
pub fn members_of(c: &Connection, group_id: &str) -> Result<Vec<Member>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT member_id, member_type, display FROM group_members WHERE group_id = ?1
         ORDER BY member_id",
    )?;
    let rows = stmt.query_map(params![group_id], |r| {
        Ok(Member {
            id: r.get(0)?,
            kind: MemberKind::parse(&r.get::<_, String>(1)?),
            display: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn all_members(
    c: &Connection,
    source: Option<&str>,
) -> Result<std::collections::HashMap<String, Vec<Member>>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT m.group_id, m.member_id, m.member_type, m.display FROM group_members m
         JOIN groups g ON g.id = m.group_id
         WHERE ?1 IS NULL OR g.source = ?1 ORDER BY m.group_id, m.member_id",
    )?;
    let mut out: std::collections::HashMap<String, Vec<Member>> = Default::default();
    let rows = stmt.query_map(params![source], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Member {
                id: r.get(1)?,
                kind: MemberKind::parse(&r.get::<_, String>(2)?),
                display: r.get(3)?,
            },
        ))
    })?;
    for row in rows {
        let (g, m) = row?;
        out.entry(g).or_default().push(m);
    }
    Ok(out)
}

/// Groups that directly contain `member_id`, as `(id, displayName)`.
pub fn groups_containing(
    c: &Connection,
    member_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT g.id, g.display_name FROM group_members m JOIN groups g ON g.id = m.group_id
         WHERE m.member_id = ?1 ORDER BY g.id",
    )?;
    let rows = stmt.query_map(params![member_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Which of `ids` exist as users or groups of `source`. Used to refuse dangling members.
pub fn existing_members(
    c: &Connection,
    source: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, MemberKind>, StoreError> {
    let mut out = std::collections::HashMap::new();
    let mut user = c.prepare_cached("SELECT 1 FROM users WHERE id = ?1 AND source = ?2")?;
    let mut group = c.prepare_cached("SELECT 1 FROM groups WHERE id = ?1 AND source = ?2")?;
    for id in ids {
        if user.exists(params![id, source])? {
            out.insert(id.clone(), MemberKind::User);
        } else if group.exists(params![id, source])? {
            out.insert(id.clone(), MemberKind::Group);
        }
    }
    Ok(out)
}

// ---- revision and events --------------------------------------------------------------------

pub fn identity_revision(c: &Connection) -> Result<u64, StoreError> {
    Ok(c.query_row(
        "SELECT value FROM meta WHERE key = 'identity_revision'",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Appends an event; an applied one also bumps the identity revision. Returns the identity
/// revision the event belongs to. Call inside the transaction that made the change.
pub fn record_event(c: &Connection, event: &IdentityEvent) -> Result<u64, StoreError> {
    if event.outcome == EventOutcome::Applied {
        c.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'identity_revision'",
            [],
        )?;
    }
    let revision = identity_revision(c)?;
    c.execute(
        "INSERT INTO identity_events (revision, at_ms, source, operation, resource_type,
                                      resource_id, before_json, after_json, outcome, status,
                                      detail, request_json, request_sha256, priority)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            revision as i64,
            event.at_ms as i64,
            event.source,
            event.operation,
            event.resource_type,
            event.resource_id,
            event.before.as_ref().map(Value::to_string),
            event.after.as_ref().map(Value::to_string),
            event.outcome.as_str(),
            event.status,
            event.detail,
            event.request.as_ref().map(Value::to_string),
            event.request_sha256,
            if event.high_priority {
                "high"
            } else {
                "normal"
            },
        ],
    )?;
    Ok(revision)
}

/// A resource an applied identity event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedResource {
    /// `User`, `Group`, or another kind of identity event (`Bindings`, …).
    pub resource_type: String,
    pub resource_id: String,
    /// Whether it was deleted (SCIM delete or lifecycle purge) at some point.
    pub deleted: bool,
}

/// Every resource changed by an applied event with a revision above `after`, each once.
pub fn changed_since(c: &Connection, after: u64) -> Result<Vec<ChangedResource>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT resource_type, resource_id,
                MAX(operation IN ('delete', 'user.purge'))
         FROM identity_events WHERE revision > ?1 AND outcome = 'applied'
         GROUP BY resource_type, resource_id",
    )?;
    let rows = stmt.query_map(params![after as i64], |r| {
        Ok(ChangedResource {
            resource_type: r.get(0)?,
            resource_id: r.get(1)?,
            deleted: r.get::<_, i64>(2)? != 0,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest event's sequence number (0 when there is none).
pub fn last_event_seq(c: &Connection) -> Result<u64, StoreError> {
    Ok(c.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM identity_events",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Names the request behind every event after `after_seq` (see `record_event`).
pub fn stamp_request_digest(
    c: &Connection,
    after_seq: u64,
    request_sha256: &str,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE identity_events SET request_sha256 = ?1 WHERE seq > ?2",
        params![request_sha256, after_seq as i64],
    )?;
    Ok(())
}

/// Events with `seq > after`, oldest first, at most `limit`.
pub fn events_after(
    c: &Connection,
    after: u64,
    limit: u32,
) -> Result<Vec<IdentityEvent>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, revision, at_ms, source, operation, resource_type, resource_id,
                before_json, after_json, outcome, status, detail, request_json, request_sha256,
                priority
         FROM identity_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after as i64, limit], |r| {
        Ok((
            IdentityEvent {
                seq: r.get::<_, i64>(0)? as u64,
                revision: r.get::<_, i64>(1)? as u64,
                at_ms: r.get::<_, i64>(2)? as u64,
                source: r.get(3)?,
                operation: r.get(4)?,
                resource_type: r.get(5)?,
                resource_id: r.get(6)?,
                before: None,
                after: None,
                outcome: EventOutcome::parse(&r.get::<_, String>(9)?),
                status: r.get(10)?,
                detail: r.get(11)?,
                request: None,
                request_sha256: r.get(13)?,
                high_priority: r.get::<_, String>(14)? == "high",
            },
            r.get::<_, Option<String>>(7)?,
            r.get::<_, Option<String>>(8)?,
            r.get::<_, Option<String>>(12)?,
        ))
    })?;
    rows.map(|row| {
        let (mut e, before, after, request) = row?;
        e.before = before.map(|t| serde_json::from_str(&t)).transpose()?;
        e.after = after.map(|t| serde_json::from_str(&t)).transpose()?;
        e.request = request.map(|t| serde_json::from_str(&t)).transpose()?;
        Ok(e)
    })
    .collect()
}

// ---- paging and membership index -----------------------------------------------------------

pub fn count_users(c: &Connection, source: &str) -> Result<u64, StoreError> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM users WHERE source = ?1",
        params![source],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

pub fn count_groups(c: &Connection, source: &str) -> Result<u64, StoreError> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM groups WHERE source = ?1",
        params![source],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Users of a source in id order, `offset` skipped, at most `limit`: one page of a stable
/// listing.
pub fn page_users(
    c: &Connection,
    source: &str,
    offset: u64,
    limit: u64,
) -> Result<Vec<UserRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE source = ?1 ORDER BY id LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = stmt.query_map(params![source, limit as i64, offset as i64], user_from_row)?;
    rows.map(|r| finish_user(r?)).collect()
}

/// Groups of a source in id order, a page; `with_members` loads each group's members.
pub fn page_groups(
    c: &Connection,
    source: &str,
    offset: u64,
    limit: u64,
    with_members: bool,
) -> Result<Vec<GroupRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups WHERE source = ?1 ORDER BY id LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = stmt
        .query_map(params![source, limit as i64, offset as i64], group_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(mut row, text)| {
            row.resource = serde_json::from_str(&text)?;
            if with_members {
                row.members = members_of(c, &row.id)?;
            }
            Ok(row)
        })
        .collect()
}

/// Every membership of a source's groups, and every group's display name: enough to answer
/// "which groups is this user in, directly or not" for a whole listing at once.
#[derive(Debug, Default)]
pub struct MembershipIndex {
    names: std::collections::HashMap<String, String>,
    /// member id → groups listing it directly.
    containing: std::collections::HashMap<String, Vec<String>>,
}

impl MembershipIndex {
    pub fn load(c: &Connection, source: &str) -> Result<Self, StoreError> {
        let mut names = std::collections::HashMap::new();
        let mut stmt = c.prepare_cached("SELECT id, display_name FROM groups WHERE source = ?1")?;
        for row in stmt.query_map(params![source], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (id, name) = row?;
            names.insert(id, name);
        }
        let mut containing: std::collections::HashMap<String, Vec<String>> = Default::default();
        let mut stmt = c.prepare_cached(
            "SELECT m.group_id, m.member_id FROM group_members m JOIN groups g ON g.id = m.group_id
             WHERE g.source = ?1",
        )?;
        for row in stmt.query_map(params![source], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (group, member) = row?;
            containing.entry(member).or_default().push(group);
        }
        Ok(Self { names, containing })
    }

    /// `(group id, display name, direct?)` for every group `member` is in, directly first.
    pub fn groups_of(&self, member: &str) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let direct = self.containing.get(member).cloned().unwrap_or_default();
        let mut frontier: Vec<String> = Vec::new();
        for g in direct {
            if seen.insert(g.clone()) {
                out.push((
                    g.clone(),
                    self.names.get(&g).cloned().unwrap_or_default(),
                    true,
                ));
                frontier.push(g);
            }
        }
        while let Some(g) = frontier.pop() {
            for parent in self.containing.get(&g).into_iter().flatten() {
                if seen.insert(parent.clone()) {
                    out.push((
                        parent.clone(),
                        self.names.get(parent).cloned().unwrap_or_default(),
                        false,
                    ));
                    frontier.push(parent.clone());
                }
            }
        }
        out
    }
}

/// Deletes identity events recorded before `before_ms` whose revision is below
/// `below_revision` (newer ones may still be compiled from); returns how many.
pub fn delete_events_before(
    c: &Connection,
    before_ms: u64,
    below_revision: u64,
) -> Result<usize, StoreError> {
    Ok(c.execute(
        "DELETE FROM identity_events WHERE at_ms < ?1 AND revision < ?2",
        params![before_ms as i64, below_revision as i64],
    )?)
}
