//! `/Users` handlers.

use super::http::{
    ScimResponse, base_url, check_if_match, etag, if_none_match, json_object, json_value,
    not_modified,
};
use super::project::Projection;
use super::query::{self, ListQuery};
use super::render::{self, GroupRef};
use super::schema::ResourceType;
use super::{ScimError, ScimState, patch};
use crate::store::{self, StoreError, UserRow};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use rusqlite::Connection;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// A user's direct groups and the groups those are nested in.
pub(super) fn groups_of(c: &Connection, user_id: &str) -> Result<Vec<GroupRef>, StoreError> {
    let mut out: Vec<GroupRef> = store::groups_containing(c, user_id)?
        .into_iter()
        .map(|(id, display)| GroupRef {
            id,
            display,
            kind: "direct",
        })
        .collect();
    let mut seen: HashSet<String> = out.iter().map(|g| g.id.clone()).collect();
    let mut frontier: Vec<String> = seen.iter().cloned().collect();
    while let Some(g) = frontier.pop() {
        for (id, display) in store::groups_containing(c, &g)? {
            if seen.insert(id.clone()) {
                frontier.push(id.clone());
                out.push(GroupRef {
                    id,
                    display,
                    kind: "indirect",
                });
            }
        }
    }
    Ok(out)
}

fn not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("user {id} not found"))
}

/// Creates a user from a validated resource; returns the full representation.
pub(super) fn create_tx(
    tx: &Connection,
    source: &str,
    resource: Value,
    base: &str,
) -> Result<Value, ScimError> {
    let now = store::now_ms();
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        source: source.to_owned(),
        active: UserRow::status_after(&resource, true),
        resource,
        created_ms: now,
        modified_ms: now,
        version: 1,
    };
    if store::user_name_taken(tx, source, row.user_name(), &row.id)? {
        return Err(ScimError::uniqueness(format!(
            "userName {:?} is already in use",
            row.user_name()
        )));
    }
    store::put_user(tx, &row)?;
    let rendered = render::user(&row, &[], base);
    let revision = store::record_event(
        tx,
        &super::event(
            "User",
            source,
            "create",
            &row.id,
            None,
            Some(rendered.clone()),
        ),
    )?;
    tracing::info!(id = %row.id, revision, "SCIM user created");
    Ok(rendered)
}

/// `POST /Users`
pub async fn create(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).user;
    let projection = Projection::from_query(&query)?;
    let resource = render::user_for_storage(json_object(&body)?, rt)?;
    let base = base_url(&headers, &source);
    let rendered = state
        .write(move |tx| create_tx(tx, &source, resource, &base))
        .await?;
    Ok(ScimResponse {
        status: StatusCode::CREATED,
        location: rendered["meta"]["location"].as_str().map(str::to_owned),
        etag: Some(etag(1)),
        body: Some(projection.apply(rendered, rt)),
    })
}

/// `GET /Users/{id}`, honouring `If-None-Match`, `attributes` and `excludedAttributes`.
pub async fn fetch(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).user;
    let projection = Projection::from_query(&query)?;
    let base = base_url(&headers, &source);
    state
        .read(move |c| {
            let row = store::get_user(c, &source, &id)?.ok_or_else(|| not_found(&id))?;
            if if_none_match(&headers, row.version) {
                return Ok(not_modified(row.version));
            }
            let groups = groups_of(c, &row.id)?;
            let full = render::user(&row, &groups, &base);
            Ok(ScimResponse::ok(projection.apply(full, rt)).with_etag(row.version))
        })
        .await
}

/// `GET /Users?filter=…&startIndex=…&count=…`
pub async fn list(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).user;
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

/// `POST /Users/.search`
pub async fn search(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).user;
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

/// Stores `resource` as the new state of `old` if it differs; returns the full representation
/// and its version.
fn save(
    tx: &Connection,
    old: UserRow,
    resource: Value,
    operation: &str,
    base: &str,
) -> Result<(Value, u64), ScimError> {
    if resource == old.resource {
        let groups = groups_of(tx, &old.id)?;
        let current = render::user(&old, &groups, base);
        store::record_event(
            tx,
            &super::unchanged_event("User", &old.source, operation, &old.id, current.clone()),
        )?;
        return Ok((current, old.version));
    }
    let new = UserRow {
        active: UserRow::status_after(&resource, old.active),
        resource,
        modified_ms: store::now_ms(),
        version: old.version + 1,
        ..old.clone()
    };
    if store::user_name_taken(tx, &new.source, new.user_name(), &new.id)? {
        return Err(ScimError::uniqueness(format!(
            "userName {:?} is already in use",
            new.user_name()
        )));
    }
    store::put_user(tx, &new)?;
    let groups = groups_of(tx, &new.id)?;
    let before = render::user(&old, &groups, base);
    let after = render::user(&new, &groups, base);
    let revision = store::record_event(
        tx,
        &super::event(
            "User",
            &new.source,
            operation,
            &new.id,
            Some(before),
            Some(after.clone()),
        ),
    )?;
    tracing::info!(id = %new.id, operation, revision, active = new.active, "SCIM user changed");
    Ok((after, new.version))
}

/// Replaces a user with a validated resource, if `if_match` (an `If-Match` value) allows.
pub(super) fn replace_tx(
    tx: &Connection,
    source: &str,
    id: &str,
    resource: Value,
    if_match: Option<&str>,
    base: &str,
) -> Result<(Value, u64), ScimError> {
    let old = store::get_user(tx, source, id)?.ok_or_else(|| not_found(id))?;
    check_if_match(if_match, old.version)?;
    // A PUT that omits `active` leaves the status as it was (see `UserRow::active`).
    save(tx, old, resource, "replace", base)
}

/// Applies PATCH operations to a user, if `if_match` allows.
pub(super) fn patch_tx(
    tx: &Connection,
    source: &str,
    id: &str,
    ops: &[patch::PatchOperation],
    rt: &ResourceType,
    if_match: Option<&str>,
    base: &str,
) -> Result<(Value, u64), ScimError> {
    let old = store::get_user(tx, source, id)?.ok_or_else(|| not_found(id))?;
    check_if_match(if_match, old.version)?;
    let mut resource = old.resource.clone();
    if let Value::Object(m) = &mut resource {
        // See `groups::patch_tx`: restating the `id` is accepted, changing it is not.
        m.insert("id".into(), Value::String(old.id.clone()));
    }
    patch::apply(&mut resource, ops, rt)?;
    let Value::Object(obj) = resource else {
        return Err(ScimError::internal("patched user is not an object"));
    };
    let resource = render::user_for_storage(obj, rt)?;
    save(tx, old, resource, "patch", base)
}

/// Deletes a user, if `if_match` allows.
pub(super) fn delete_tx(
    tx: &Connection,
    source: &str,
    id: &str,
    if_match: Option<&str>,
    base: &str,
) -> Result<(), ScimError> {
    let old = store::get_user(tx, source, id)?.ok_or_else(|| not_found(id))?;
    check_if_match(if_match, old.version)?;
    let before = render::user(&old, &groups_of(tx, id)?, base);
    store::delete_user(tx, source, id)?;
    let revision = store::record_event(
        tx,
        &super::event("User", source, "delete", id, Some(before), None),
    )?;
    tracing::info!(%id, revision, "SCIM user deleted");
    Ok(())
}

fn if_match_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `PUT /Users/{id}`: replaces the user; never creates one.
pub async fn replace(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).user;
    let projection = Projection::from_query(&query)?;
    let resource = render::user_for_storage(json_object(&body)?, rt)?;
    let base = base_url(&headers, &source);
    let if_match = if_match_header(&headers);
    let (full, version) = state
        .write(move |tx| replace_tx(tx, &source, &id, resource, if_match.as_deref(), &base))
        .await?;
    Ok(ScimResponse::ok(projection.apply(full, rt)).with_etag(version))
}

/// `PATCH /Users/{id}`: all operations apply, in order, or none does.
pub async fn modify(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let rt = state.types(&source).user;
    let projection = Projection::from_query(&query)?;
    let ops = patch::parse_request(&json_value(&body)?)?;
    let base = base_url(&headers, &source);
    let if_match = if_match_header(&headers);
    let (full, version) = state
        .write(move |tx| patch_tx(tx, &source, &id, &ops, rt, if_match.as_deref(), &base))
        .await?;
    Ok(ScimResponse::ok(projection.apply(full, rt)).with_etag(version))
}

/// `DELETE /Users/{id}`: the user and its memberships go; its history stays in the event log.
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
