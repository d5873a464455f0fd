//! `/Groups` handlers.
//!
//! Members are kept in their own table; a group's representation is the stored resource plus
//! its `members`. Every member must be a user or group of the same source: a group naming a
//! member the store does not know is refused (400 invalidValue), never half-applied.

use super::http::{ListParams, ScimResponse, base_url, json_object};
use super::render;
use super::{ScimError, ScimState, filter, patch, schema};
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
    ids: &[String],
) -> Result<Vec<Member>, ScimError> {
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
    let mut members: Vec<Member> = ids
        .iter()
        .filter_map(|i| {
            found.get(i).map(|kind| Member {
                id: i.clone(),
                kind: *kind,
            })
        })
        .collect();
    members.sort();
    Ok(members)
}

/// `POST /Groups`
pub async fn create(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let (resource, member_ids) = render::group_for_storage(json_object(&body)?)?;
    let base = base_url(&headers, &source);
    state
        .write(move |tx| {
            let now = store::now_ms();
            let id = uuid::Uuid::new_v4().to_string();
            let members = resolve_members(tx, &source, &id, &member_ids)?;
            let row = GroupRow {
                id,
                source: source.clone(),
                resource,
                members,
                created_ms: now,
                modified_ms: now,
                version: 1,
            };
            if store::display_name_taken(tx, &source, row.display_name(), &row.id)? {
                return Err(ScimError::uniqueness(format!(
                    "group displayName {:?} is already in use",
                    row.display_name()
                )));
            }
            store::put_group(tx, &row)?;
            let rendered = render::group(&row, &base);
            let revision = store::record_event(tx, &super::event("Group", &source, "create", &row.id, None, Some(rendered.clone())))?;
            tracing::info!(id = %row.id, revision, members = row.members.len(), "SCIM group created");
            Ok(ScimResponse {
                status: StatusCode::CREATED,
                location: rendered["meta"]["location"].as_str().map(str::to_owned),
                etag: Some(super::http::etag(1)),
                body: Some(rendered),
            })
        })
        .await
}

/// `GET /Groups/{id}`
pub async fn fetch(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let base = base_url(&headers, &source);
    state
        .read(move |c| {
            let row = store::get_group(c, &source, &id)?
                .ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
            Ok(ScimResponse::ok(render::group(&row, &base)).with_etag(row.version))
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
    let (params, parsed) = ListParams::parse_with_filter(&query, &schema::GROUP)?;
    let base = base_url(&headers, &source);
    state
        .read(move |c| {
            let candidates = match parsed.as_ref().and_then(display_name_eq) {
                Some(name) => store::find_group_by_name(c, &source, &name)?
                    .into_iter()
                    .collect(),
                None => store::list_groups(c, Some(&source))?,
            };
            let out = candidates
                .iter()
                .map(|g| render::group(g, &base))
                .filter(|r| {
                    parsed
                        .as_ref()
                        .is_none_or(|f| filter::matches(f, r, &schema::GROUP))
                })
                .collect();
            Ok(ScimResponse::ok(params.page(out)))
        })
        .await
}

/// `displayName eq "…"` is answered from an index (the filter still applies).
fn display_name_eq(f: &filter::Filter) -> Option<String> {
    let filter::Filter::Compare(path, filter::CompareOp::Eq, filter::CompValue::String(v)) = f
    else {
        return None;
    };
    (path.sub.is_none()
        && path.attr.eq_ignore_ascii_case("displayName")
        && path
            .uri
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(schema::GROUP_SCHEMA)))
    .then(|| v.clone())
}

/// Stores the new state of `old` if it differs; returns the response.
fn save(
    tx: &Connection,
    old: GroupRow,
    resource: Value,
    member_ids: Vec<String>,
    operation: &str,
    base: &str,
) -> Result<ScimResponse, ScimError> {
    let members = resolve_members(tx, &old.source, &old.id, &member_ids)?;
    if resource == old.resource && members == old.members {
        return Ok(ScimResponse::ok(render::group(&old, base)).with_etag(old.version));
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
    store::put_group(tx, &new)?;
    let before = render::group(&old, base);
    let after = render::group(&new, base);
    let revision = store::record_event(
        tx,
        &super::event(
            "Group",
            &new.source,
            operation,
            &new.id,
            Some(before),
            Some(after.clone()),
        ),
    )?;
    tracing::info!(id = %new.id, operation, revision, members = new.members.len(), "SCIM group changed");
    Ok(ScimResponse::ok(after).with_etag(new.version))
}

/// `PUT /Groups/{id}`: replaces the group, members included; never creates one.
pub async fn replace(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let (resource, member_ids) = render::group_for_storage(json_object(&body)?)?;
    let base = base_url(&headers, &source);
    state
        .write(move |tx| {
            let old = store::get_group(tx, &source, &id)?
                .ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
            save(tx, old, resource, member_ids, "replace", &base)
        })
        .await
}

/// `PATCH /Groups/{id}`: all operations apply, in order, or none does.
pub async fn modify(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let ops = patch::parse_request(&super::http::json_value(&body)?)?;
    let base = base_url(&headers, &source);
    state
        .write(move |tx| {
            let old = store::get_group(tx, &source, &id)?
                .ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
            // Patch the full representation, members included.
            let mut full = old.resource.clone();
            if let Value::Object(m) = &mut full {
                m.insert("members".into(), render::members(&old.members, &base));
            }
            patch::apply(&mut full, &ops, &schema::GROUP)?;
            let Value::Object(obj) = full else {
                return Err(ScimError::internal("patched group is not an object"));
            };
            let (resource, member_ids) = render::group_for_storage(obj)?;
            save(tx, old, resource, member_ids, "patch", &base)
        })
        .await
}

/// `DELETE /Groups/{id}`
pub async fn remove(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let base = base_url(&headers, &source);
    state
        .write(move |tx| {
            let old = store::get_group(tx, &source, &id)?
                .ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
            let before = render::group(&old, &base);
            store::delete_group(tx, &source, &id)?;
            let revision = store::record_event(
                tx,
                &super::event("Group", &source, "delete", &id, Some(before), None),
            )?;
            tracing::info!(%id, revision, "SCIM group deleted");
            Ok(ScimResponse::no_content())
        })
        .await
}
