//! `/Users` handlers.

use super::http::{ListParams, ScimResponse, base_url, json_object};
use super::render::{self, GroupRef};
use super::{ScimError, ScimState, filter, patch, schema};
use crate::store::{self, StoreError, UserRow};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use rusqlite::Connection;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// A user's direct groups and the groups those are nested in.
fn groups_of(c: &Connection, user_id: &str) -> Result<Vec<GroupRef>, StoreError> {
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

/// `POST /Users`
pub async fn create(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let resource = render::user_for_storage(json_object(&body)?)?;
    let base = base_url(&headers, &source);
    let (rendered, revision) = state
        .write(move |tx| {
            let now = store::now_ms();
            let row = UserRow {
                id: uuid::Uuid::new_v4().to_string(),
                source: source.clone(),
                resource,
                created_ms: now,
                modified_ms: now,
                version: 1,
            };
            if store::user_name_taken(tx, &source, row.user_name(), &row.id)? {
                return Err(ScimError::uniqueness(format!(
                    "userName {:?} is already in use",
                    row.user_name()
                )));
            }
            store::put_user(tx, &row)?;
            let rendered = render::user(&row, &[], &base);
            let rev = store::record_event(
                tx,
                &super::event(
                    "User",
                    &source,
                    "create",
                    &row.id,
                    None,
                    Some(rendered.clone()),
                ),
            )?;
            Ok((rendered, rev))
        })
        .await?;
    tracing::info!(id = %rendered["id"], revision, "SCIM user created");
    Ok(ScimResponse {
        status: StatusCode::CREATED,
        location: rendered["meta"]["location"].as_str().map(str::to_owned),
        etag: Some(super::http::etag(1)),
        body: Some(rendered),
    })
}

/// `GET /Users/{id}`
pub async fn fetch(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let base = base_url(&headers, &source);
    state
        .read(move |c| {
            let row = store::get_user(c, &source, &id)?
                .ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
            let groups = groups_of(c, &row.id)?;
            Ok(ScimResponse::ok(render::user(&row, &groups, &base)).with_etag(row.version))
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
    let (params, parsed) = ListParams::parse_with_filter(&query, &schema::USER)?;
    let base = base_url(&headers, &source);
    state
        .read(move |c| {
            let candidates = match parsed.as_ref().and_then(indexed_lookup) {
                Some(Lookup::UserName(v)) => store::find_user_by_name(c, &source, &v)?
                    .into_iter()
                    .collect(),
                Some(Lookup::ExternalId(v)) => store::find_users_by_external_id(c, &source, &v)?,
                None => store::list_users(c, Some(&source))?,
            };
            let mut out = Vec::new();
            for row in candidates {
                let groups = groups_of(c, &row.id)?;
                let rendered = render::user(&row, &groups, &base);
                if parsed
                    .as_ref()
                    .is_none_or(|f| filter::matches(f, &rendered, &schema::USER))
                {
                    out.push(rendered);
                }
            }
            Ok(ScimResponse::ok(params.page(out)))
        })
        .await
}

enum Lookup {
    UserName(String),
    ExternalId(String),
}

/// `userName eq "…"` and `externalId eq "…"` are answered from an index; the full filter is
/// still applied to the candidates, so this is only an optimisation.
fn indexed_lookup(f: &filter::Filter) -> Option<Lookup> {
    let filter::Filter::Compare(path, filter::CompareOp::Eq, filter::CompValue::String(v)) = f
    else {
        return None;
    };
    if path.sub.is_some()
        || path
            .uri
            .as_deref()
            .is_some_and(|u| !u.eq_ignore_ascii_case(schema::USER_SCHEMA))
    {
        return None;
    }
    if path.attr.eq_ignore_ascii_case("userName") {
        Some(Lookup::UserName(v.clone()))
    } else if path.attr.eq_ignore_ascii_case("externalId") {
        Some(Lookup::ExternalId(v.clone()))
    } else {
        None
    }
}

/// Stores `resource` as the new state of `old` if it differs; returns the response.
fn save(
    tx: &Connection,
    old: UserRow,
    resource: Value,
    operation: &str,
    base: &str,
) -> Result<ScimResponse, ScimError> {
    if resource == old.resource {
        let groups = groups_of(tx, &old.id)?;
        return Ok(ScimResponse::ok(render::user(&old, &groups, base)).with_etag(old.version));
    }
    let new = UserRow {
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
    tracing::info!(id = %new.id, operation, revision, active = new.active(), "SCIM user changed");
    Ok(ScimResponse::ok(after).with_etag(new.version))
}

/// `PUT /Users/{id}`: replaces the user; never creates one.
pub async fn replace(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let resource = render::user_for_storage(json_object(&body)?)?;
    let base = base_url(&headers, &source);
    state
        .write(move |tx| {
            let old = store::get_user(tx, &source, &id)?
                .ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
            // A PUT that omits `active` keeps it: omission must never reactivate a leaver.
            let mut resource = resource;
            if let (Value::Object(m), Some(active)) = (&mut resource, old.resource.get("active"))
                && !m.contains_key("active")
            {
                m.insert("active".into(), active.clone());
            }
            save(tx, old, resource, "replace", &base)
        })
        .await
}

/// `PATCH /Users/{id}`: all operations apply, in order, or none does.
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
            let old = store::get_user(tx, &source, &id)?
                .ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
            let mut resource = old.resource.clone();
            patch::apply(&mut resource, &ops, &schema::USER)?;
            let Value::Object(obj) = resource else {
                return Err(ScimError::internal("patched user is not an object"));
            };
            if old.resource.get("active").is_some() && !obj.contains_key("active") {
                return Err(ScimError::mutability(
                    "active cannot be removed; replace it with false to deactivate the user",
                ));
            }
            let resource = render::user_for_storage(obj)?;
            save(tx, old, resource, "patch", &base)
        })
        .await
}

/// `DELETE /Users/{id}`: the user and its memberships go; its history stays in the event log.
pub async fn remove(
    State(state): State<ScimState>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let base = base_url(&headers, &source);
    state
        .write(move |tx| {
            let old = store::get_user(tx, &source, &id)?
                .ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
            let before = render::user(&old, &groups_of(tx, &id)?, &base);
            store::delete_user(tx, &source, &id)?;
            let revision = store::record_event(
                tx,
                &super::event("User", &source, "delete", &id, Some(before), None),
            )?;
            tracing::info!(%id, revision, "SCIM user deleted");
            Ok(ScimResponse::no_content())
        })
        .await
}
