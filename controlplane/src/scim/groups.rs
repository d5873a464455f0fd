//! `/Groups` handlers.
//!
//! Members are kept in their own table; a group's representation is the stored resource plus
//! its `members`. Every member must be a user or group of the same source: a group naming a
//! member the store does not know is refused (400 invalidValue), never half-applied.

use super::http::{
    ScimResponse, base_url, check_if_match, etag, if_none_match, json_object, json_value,
    not_modified,
};
use super::project::Projection;
use super::query::{self, ListQuery};
use super::render;
use super::schema::ResourceType;
use super::{ScimError, ScimState, patch};
use crate::store::{self, GroupRow, Member};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use rusqlite::Connection;
use serde_json::Value;
use std::collections::HashMap;

/// Resolves requested member ids to members of `source`, refusing unknown ids and the group
/// itself.
fn resolve_members(
    c: &Connection,
    source: &str,
    group_id: &str,
    requested: &[render::MemberRequest],
) -> Result<Vec<Member>, ScimError> {
    let ids: Vec<String> = requested.iter().map(|(id, _)| id.clone()).collect();
    let ids = ids.as_slice();
    if ids.iter().any(|i| i == group_id) {
        return Err(ScimError::invalid_value(
            "a group cannot be a member of itself",
        ));
    }
    let found = store::existing_members(c, source, ids)?;
    let missing: Vec<&str> = ids
        .iter()
        .filter(|i| !found.contains_key(*i))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(ScimError::invalid_value(format!(
            "unknown member id(s) for this source: {}",
            missing.join(", ")
        )));
    }
    let mut members: Vec<Member> = requested
        .iter()
        .filter_map(|(i, display)| {
            found.get(i).map(|kind| Member {
                id: i.clone(),
                kind: *kind,
                display: display.clone(),
            })
        })
        .collect();
    members.sort();
    Ok(members)
}

fn not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("group {id} not found"))
}

/// Creates a group from a validated resource and members; returns the full representation.
pub(super) fn create_tx(
    tx: &Connection,
    source: &str,
    resource: Value,
    requested: &[render::MemberRequest],
    base: &str,
) -> Result<Value, ScimError> {
    let now = store::now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let members = resolve_members(tx, source, &id, requested)?;
    let row = GroupRow {
        id,
        source: source.to_owned(),
        resource,
        members,
        created_ms: now,
        modified_ms: now,
        version: 1,
    };
    if store::display_name_taken(tx, source, row.display_name(), &row.id)? {
        return Err(ScimError::uniqueness(format!(
            "group displayName {:?} is already in use",
            row.display_name()
        )));
    }
    store::put_group(tx, &row)?;
    let rendered = render::group(&row, base);
    let revision = store::record_event(
        tx,
        &super::event(
            "Group",
            source,
            "create",
            &row.id,
            None,
            Some(rendered.clone()),
        ),
    )?;
    tracing::info!(id = %row.id, revision, members = row.members.len(), "SCIM group created");
    Ok(rendered)
}

/// `POST /Groups`
pub async fn create(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).group;
    let projection = Projection::from_query(&query)?;
    let (resource, members) = render::group_for_storage(json_object(&body)?, rt)?;
    let base = base_url(&headers, &source);
    let rendered = state
        .write(move |tx| create_tx(tx, &source, resource, &members, &base))
        .await?;
    Ok(ScimResponse {
        status: StatusCode::CREATED,
        location: rendered["meta"]["location"].as_str().map(str::to_owned),
        etag: Some(etag(1)),
        body: Some(projection.apply(rendered, rt)),
    })
}

/// `GET /Groups/{id}`, honouring `If-None-Match`, `attributes` and `excludedAttributes`
/// (Entra ID asks for `excludedAttributes=members`).
pub async fn fetch(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).group;
    let projection = Projection::from_query(&query)?;
    let base = base_url(&headers, &source);
    state
        .read(move |c| {
            let row = store::get_group(c, &source, &id)?.ok_or_else(|| not_found(&id))?;
            if if_none_match(&headers, row.version) {
                return Ok(not_modified(row.version));
            }
            Ok(
                ScimResponse::ok(projection.apply(render::group(&row, &base), rt))
                    .with_etag(row.version),
            )
        })
        .await
}

/// `GET /Groups?filter=…`
pub async fn list(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).group;
    let q = ListQuery::from_query(&query, &[rt], &state.config.scim)?;
    let base = base_url(&headers, &source);
    let limits = state.config.scim.clone();
    state
        .read(move |c| {
            Ok(ScimResponse::ok(query::run(
                c, &source, &q, rt, &base, &limits,
            )?))
        })
        .await
}

/// `POST /Groups/.search`
pub async fn search(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).group;
    let q = ListQuery::from_search(&json_value(&body)?, &[rt], &state.config.scim)?;
    let base = base_url(&headers, &source);
    let limits = state.config.scim.clone();
    state
        .read(move |c| {
            Ok(ScimResponse::ok(query::run(
                c, &source, &q, rt, &base, &limits,
            )?))
        })
        .await
}

/// Stores the new state of `old` if it differs; returns the full representation and version.
fn save(
    tx: &Connection,
    old: GroupRow,
    resource: Value,
    member_ids: Vec<render::MemberRequest>,
    operation: &str,
    base: &str,
) -> Result<(Value, u64), ScimError> {
    let members = resolve_members(tx, &old.source, &old.id, &member_ids)?;
    if resource == old.resource && members == old.members {
        let current = render::group(&old, base);
        let mut recorded = current.clone();
        if let Value::Object(m) = &mut recorded {
            m.remove("members");
        }
        store::record_event(
            tx,
            &super::unchanged_event("Group", &old.source, operation, &old.id, recorded),
        )?;
        return Ok((current, old.version));
    }
    let new = GroupRow {
        resource,
        members,
        modified_ms: store::now_ms(),
        version: old.version + 1,
        ..old.clone()
    };
    if store::display_name_taken(tx, &new.source, new.display_name(), &new.id)? {
        return Err(ScimError::uniqueness(format!(
            "group displayName {:?} is already in use",
            new.display_name()
        )));
    }
    store::put_group_changed(tx, &new, Some(&old.members))?;
    let after = render::group(&new, base);
    // Members travel as a delta: a change to a large group records what changed.
    let (added, removed) = store::member_delta(&old.members, &new.members);
    let ids = |ms: Vec<&store::Member>| ms.into_iter().map(|m| m.id.clone()).collect::<Vec<_>>();
    let mut before_ev = render::group(&old, base);
    let mut after_ev = after.clone();
    for v in [&mut before_ev, &mut after_ev] {
        if let Value::Object(m) = v {
            m.remove("members");
        }
    }
    after_ev["membersDelta"] = serde_json::json!({"added": ids(added), "removed": ids(removed)});
    let revision = store::record_event(
        tx,
        &super::event(
            "Group",
            &new.source,
            operation,
            &new.id,
            Some(before_ev),
            Some(after_ev),
        ),
    )?;
    tracing::info!(id = %new.id, operation, revision, members = new.members.len(), "SCIM group changed");
    Ok((after, new.version))
}

/// Replaces a group (members included), if `if_match` allows.
pub(super) fn replace_tx(
    tx: &Connection,
    source: &str,
    id: &str,
    resource: Value,
    requested: Vec<render::MemberRequest>,
    if_match: Option<&str>,
    base: &str,
) -> Result<(Value, u64), ScimError> {
    let old = store::get_group(tx, source, id)?.ok_or_else(|| not_found(id))?;
    check_if_match(if_match, old.version)?;
    save(tx, old, resource, requested, "replace", base)
}

/// Applies PATCH operations to a group's full representation, members included.
pub(super) fn patch_tx(
    tx: &Connection,
    source: &str,
    id: &str,
    ops: &[patch::PatchOperation],
    rt: &ResourceType,
    if_match: Option<&str>,
    base: &str,
) -> Result<(Value, u64), ScimError> {
    let old = store::get_group(tx, source, id)?.ok_or_else(|| not_found(id))?;
    check_if_match(if_match, old.version)?;
    let mut full = old.resource.clone();
    if let Value::Object(m) = &mut full {
        m.insert("members".into(), render::members(&old.members, base));
        // Present so that a PATCH restating it (Okta's rename sends the group's `id`) is
        // accepted quietly, while changing it is still a `mutability` error.
        m.insert("id".into(), Value::String(old.id.clone()));
    }
    patch::apply(&mut full, ops, rt)?;
    let Value::Object(obj) = full else {
        return Err(ScimError::internal("patched group is not an object"));
    };
    let (resource, requested) = render::group_for_storage(obj, rt)?;
    save(tx, old, resource, requested, "patch", base)
}

/// Deletes a group, if `if_match` allows.
pub(super) fn delete_tx(
    tx: &Connection,
    source: &str,
    id: &str,
    if_match: Option<&str>,
    base: &str,
) -> Result<(), ScimError> {
    let old = store::get_group(tx, source, id)?.ok_or_else(|| not_found(id))?;
    check_if_match(if_match, old.version)?;
    let before = render::group(&old, base);
    store::delete_group(tx, source, id)?;
    let revision = store::record_event(
        tx,
        &super::event("Group", source, "delete", id, Some(before), None),
    )?;
    tracing::info!(%id, revision, "SCIM group deleted");
    Ok(())
}

fn if_match_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `PUT /Groups/{id}`: replaces the group, members included; never creates one.
pub async fn replace(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).group;
    let projection = Projection::from_query(&query)?;
    let (resource, requested) = render::group_for_storage(json_object(&body)?, rt)?;
    let base = base_url(&headers, &source);
    let if_match = if_match_header(&headers);
    let (full, version) = state
        .write(move |tx| {
            replace_tx(
                tx,
                &source,
                &id,
                resource,
                requested,
                if_match.as_deref(),
                &base,
            )
        })
        .await?;
    Ok(ScimResponse::ok(projection.apply(full, rt)).with_etag(version))
}

/// `PATCH /Groups/{id}`: all operations apply, in order, or none does.
pub async fn modify(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).group;
    let projection = Projection::from_query(&query)?;
    let ops = patch::parse_request(&json_value(&body)?)?;
    let base = base_url(&headers, &source);
    let if_match = if_match_header(&headers);
    let (full, version) = state
        .write(move |tx| patch_tx(tx, &source, &id, &ops, rt, if_match.as_deref(), &base))
        .await?;
    Ok(ScimResponse::ok(projection.apply(full, rt)).with_etag(version))
}

/// `DELETE /Groups/{id}`
pub async fn remove(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let base = base_url(&headers, &source);
    let if_match = if_match_header(&headers);
    state
        .write(move |tx| delete_tx(tx, &source, &id, if_match.as_deref(), &base))
        .await?;
    Ok(ScimResponse::no_content())
}
