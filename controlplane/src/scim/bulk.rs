//! `POST /Bulk` (RFC 7644 §3.7).
//!
//! All operations run in one store transaction (one durable commit for the whole request),
//! each inside its own savepoint: an operation that fails leaves no trace and the others stand.
//! `bulkId:<id>` references in paths and data (members, the enterprise `manager`, …) are
//! replaced by the ids the referenced POSTs created; an operation whose references are not yet
//! known waits for them, in any order, and references that can never resolve (unknown or
//! circular) fail that operation with 409. Processing stops once `failOnErrors` errors have
//! occurred. Results come back in request order.

use super::http::{ScimResponse, base_url, etag};
use super::render;
use super::{ScimError, ScimState, groups, patch, sources::SourceTypes, users};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use rusqlite::Connection;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// One parsed operation.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    bulk_id: Option<String>,
    version: Option<String>,
    path: String,
    data: Option<Value>,
}

/// `POST /Bulk`
pub async fn bulk(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ScimResponse, ScimError> {
    let limits = state.config.scim.clone();
    if body.len() > limits.bulk_max_payload_bytes {
        return Err(ScimError::new(
            413,
            None,
            format!(
                "the bulk request is {} bytes; this server accepts at most {} (maxPayloadSize)",
                body.len(),
                limits.bulk_max_payload_bytes
            ),
        ));
    }
    let (ops, fail_on_errors) = parse(&super::http::json_value(&body)?)?;
    if ops.len() > limits.bulk_max_operations {
        return Err(ScimError::new(
            413,
            None,
            format!(
                "the bulk request has {} operations; this server accepts at most {} (maxOperations)",
                ops.len(),
                limits.bulk_max_operations
            ),
        ));
    }
    let types = state.types(&source);
    let base = base_url(&headers, &source);
    let results = state
        .write(move |tx| Ok::<_, ScimError>(run(tx, &source, types, &base, ops, fail_on_errors)))
        .await?;
    Ok(ScimResponse::ok(json!({
        "schemas": [BULK_RESPONSE],
        "Operations": results,
    })))
}

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn parse(body: &Value) -> Result<(Vec<Operation>, Option<usize>), ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a BulkRequest must be a JSON object"))?;
    let listed = get(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|l| {
            l.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(BULK_REQUEST))
            })
        });
    if !listed {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must list {BULK_REQUEST}"
        )));
    }
    let fail_on_errors =
        match get(obj, "failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                ScimError::invalid_value("failOnErrors must be a positive integer")
            })? as usize),
        };
    let items = get(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    let ops = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let o = item.as_object().ok_or_else(|| {
                ScimError::invalid_syntax(format!("Operations[{i}] must be an object"))
            })?;
            let text = |k: &str| get(o, k).and_then(Value::as_str).map(str::to_owned);
            let method = text("method")
                .map(|m| m.to_ascii_uppercase())
                .filter(|m| ["POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()))
                .ok_or_else(|| {
                    ScimError::invalid_syntax(format!(
                        "Operations[{i}].method must be POST, PUT, PATCH or DELETE"
                    ))
                })?;
            let path = text("path").ok_or_else(|| {
                ScimError::invalid_syntax(format!("Operations[{i}].path is required"))
            })?;
            let bulk_id = text("bulkId");
            if method == "POST" && bulk_id.is_none() {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{i}]: a POST needs a bulkId"
                )));
            }
            Ok(Operation {
                method,
                bulk_id,
                version: text("version"),
                path,
                data: get(o, "data").cloned(),
            })
        })
        .collect::<Result<Vec<_>, ScimError>>()?;
    Ok((ops, fail_on_errors))
}

/// Every `bulkId:<id>` string in `v`.
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:") {
                out.push(id.to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| references(i, out)),
        Value::Object(m) => m.values().for_each(|i| references(i, out)),
        _ => {}
    }
}

fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, ids)),
        Value::Object(m) => m.values_mut().for_each(|i| substitute(i, ids)),
        _ => {}
    }
}

fn op_refs(op: &Operation) -> Vec<String> {
    let mut refs = Vec::new();
    references(
        &Value::String(op.path.rsplit('/').next().unwrap_or("").to_owned()),
        &mut refs,
    );
    if let Some(d) = &op.data {
        references(d, &mut refs);
    }
    refs
}

fn run(
    tx: &Connection,
    source: &str,
    types: SourceTypes,
    base: &str,
    ops: Vec<Operation>,
    fail_on_errors: Option<usize>,
) -> Vec<Value> {
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut created: HashMap<String, String> = HashMap::new();
    let mut pending: Vec<usize> = (0..ops.len()).collect();
    let mut errors = 0;
    'passes: loop {
        let mut progressed = false;
        let mut waiting = Vec::new();
        for &i in &pending {
            let op = &ops[i];
            if !op_refs(op).iter().all(|r| created.contains_key(r)) {
                waiting.push(i);
                continue;
            }
            progressed = true;
            let mut op = op.clone();
            op.path = {
                let mut p = Value::String(op.path.rsplit('/').next().unwrap_or("").to_owned());
                substitute(&mut p, &created);
                let tail = p.as_str().unwrap_or("").to_owned();
                match op.path.rsplit_once('/') {
                    Some((head, _)) => format!("{head}/{tail}"),
                    None => tail,
                }
            };
            if let Some(d) = &mut op.data {
                substitute(d, &created);
            }
            let outcome = in_savepoint(tx, |tx| execute(tx, source, types, base, &op));
            let result = match outcome {
                Ok((status, location, version, id)) => {
                    if let (Some(b), Some(id)) = (&op.bulk_id, id) {
                        created.insert(b.clone(), id);
                    }
                    let mut r = json!({"method": op.method, "status": status.to_string()});
                    if let Some(b) = &op.bulk_id {
                        r["bulkId"] = json!(b);
                    }
                    if let Some(l) = location {
                        r["location"] = json!(l);
                    }
                    if let Some(v) = version {
                        r["version"] = json!(etag(v));
                    }
                    r
                }
                Err(e) => {
                    errors += 1;
                    record_failure(tx, source, &op, &e);
                    failure(&op, &e)
                }
            };
            results[i] = Some(result);
            if fail_on_errors.is_some_and(|n| errors >= n) {
                break 'passes;
            }
        }
        pending = waiting;
        if pending.is_empty() {
            break;
        }
        if !progressed {
            for &i in &pending {
                let e = ScimError::new(
                    409,
                    None,
                    "a bulkId it references is not created by any operation of this request (unknown or circular)",
                );
                errors += 1;
                record_failure(tx, source, &ops[i], &e);
                results[i] = Some(failure(&ops[i], &e));
                if fail_on_errors.is_some_and(|n| errors >= n) {
                    break;
                }
            }
            break;
        }
    }
    results.into_iter().flatten().collect()
}

fn failure(op: &Operation, e: &ScimError) -> Value {
    let mut r = json!({
        "method": op.method,
        "status": e.status.to_string(),
        "response": e.body(),
    });
    if let Some(b) = &op.bulk_id {
        r["bulkId"] = json!(b);
    }
    r
}

/// Records a refused operation as a `rejected` identity event, like a refused single request.
fn record_failure(tx: &Connection, source: &str, op: &Operation, e: &ScimError) {
    let trimmed = op.path.trim_start_matches('/');
    let (endpoint, id) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let resource_type = if endpoint.eq_ignore_ascii_case("Users") {
        "User"
    } else if endpoint.eq_ignore_ascii_case("Groups") {
        "Group"
    } else {
        "Bulk"
    };
    let operation = match op.method.as_str() {
        "POST" => "create",
        "PUT" => "replace",
        "PATCH" => "patch",
        _ => "delete",
    };
    let detail = match e.scim_type {
        Some(t) => format!("{}: {}", t.as_str(), e.detail),
        None => e.detail.clone(),
    };
    let event = crate::store::IdentityEvent {
        outcome: crate::store::EventOutcome::Rejected,
        status: Some(e.status),
        detail: Some(format!("in a bulk request: {detail}")),
        request: op
            .data
            .clone()
            .filter(|d| d.to_string().len() <= super::MAX_RECORDED_REQUEST),
        ..super::event(resource_type, source, operation, id, None, None)
    };
    if let Err(err) = crate::store::record_event(tx, &event) {
        tracing::error!(error = %err, "could not record a rejected bulk operation");
    }
}

/// Runs `f` in a savepoint, rolled back if it fails.
fn in_savepoint<T>(
    tx: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, ScimError>,
) -> Result<T, ScimError> {
    tx.execute_batch("SAVEPOINT bulk_op")
        .map_err(crate::store::StoreError::from)?;
    match f(tx) {
        Ok(v) => {
            tx.execute_batch("RELEASE bulk_op")
                .map_err(crate::store::StoreError::from)?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.execute_batch("ROLLBACK TO bulk_op; RELEASE bulk_op");
            Err(e)
        }
    }
}

/// Status, location, version and (for a POST) the new id.
type Executed = (u16, Option<String>, Option<u64>, Option<String>);

fn execute(
    tx: &Connection,
    source: &str,
    types: SourceTypes,
    base: &str,
    op: &Operation,
) -> Result<Executed, ScimError> {
    let trimmed = op.path.trim_start_matches('/');
    let (endpoint, id) = match trimmed.split_once('/') {
        Some((e, id)) if !id.is_empty() && !id.contains('/') => (e, Some(id)),
        None => (trimmed, None),
        _ => {
            return Err(ScimError::invalid_path(format!(
                "{} is not a resource path",
                op.path
            )));
        }
    };
    let is_user = endpoint.eq_ignore_ascii_case("Users");
    if !is_user && !endpoint.eq_ignore_ascii_case("Groups") {
        return Err(ScimError::invalid_path(format!(
            "{} is not a resource path",
            op.path
        )));
    }
    let object = |data: &Option<Value>| -> Result<Map<String, Value>, ScimError> {
        match data {
            Some(Value::Object(m)) => Ok(m.clone()),
            _ => Err(ScimError::invalid_syntax("data must be a JSON object")),
        }
    };
    let location = |v: &Value| v["meta"]["location"].as_str().map(str::to_owned);
    let version = op.version.as_deref();
    match (op.method.as_str(), id) {
        ("POST", None) => {
            let v = if is_user {
                users::create_tx(
                    tx,
                    source,
                    render::user_for_storage(object(&op.data)?, types.user)?,
                    base,
                )?
            } else {
                let (resource, members) =
                    render::group_for_storage(object(&op.data)?, types.group)?;
                groups::create_tx(tx, source, resource, &members, base)?
            };
            let id = v["id"].as_str().map(str::to_owned);
            Ok((201, location(&v), Some(1), id))
        }
        ("PUT", Some(id)) => {
            let (v, ver) = if is_user {
                users::replace_tx(
                    tx,
                    source,
                    id,
                    render::user_for_storage(object(&op.data)?, types.user)?,
                    version,
                    base,
                )?
            } else {
                let (resource, members) =
                    render::group_for_storage(object(&op.data)?, types.group)?;
                groups::replace_tx(tx, source, id, resource, members, version, base)?
            };
            Ok((200, location(&v), Some(ver), None))
        }
        ("PATCH", Some(id)) => {
            let ops = patch::parse_request(op.data.as_ref().unwrap_or(&Value::Null))?;
            let (v, ver) = if is_user {
                users::patch_tx(tx, source, id, &ops, types.user, version, base)?
            } else {
                groups::patch_tx(tx, source, id, &ops, types.group, version, base)?
            };
            Ok((200, location(&v), Some(ver), None))
        }
        ("DELETE", Some(id)) => {
            if is_user {
                users::delete_tx(tx, source, id, version, base)?;
            } else {
                groups::delete_tx(tx, source, id, version, base)?;
            }
            Ok((204, None, None, None))
        }
        (m, _) => Err(ScimError::invalid_path(format!(
            "{m} is not allowed on {}",
            op.path
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_anywhere() {
        let mut refs = Vec::new();
        references(
            &json!({"members": [{"value": "bulkId:a"}], "x": {"manager": {"value": "bulkId:b"}}, "y": "bulkId"}),
            &mut refs,
        );
        refs.sort();
        assert_eq!(refs, ["a", "b"]);
        let mut v = json!({"members": [{"value": "bulkId:a"}]});
        substitute(
            &mut v,
            &HashMap::from([("a".to_owned(), "real".to_owned())]),
        );
        assert_eq!(v, json!({"members": [{"value": "real"}]}));
    }

    #[test]
    fn requests_are_checked() {
        assert!(
            parse(&json!({"Operations": []})).is_err(),
            "schemas required"
        );
        let ok = json!({"schemas": [BULK_REQUEST], "failOnErrors": 2, "Operations": [
            {"method": "post", "bulkId": "x", "path": "/Users", "data": {"userName": "a"}},
            {"method": "DELETE", "path": "/Users/1"}
        ]});
        let (ops, fail) = parse(&ok).expect("valid");
        assert_eq!(
            (ops.len(), fail, ops[0].method.as_str()),
            (2, Some(2), "POST")
        );
        let no_bulk_id = json!({"schemas": [BULK_REQUEST], "Operations": [{"method": "POST", "path": "/Users"}]});
        assert!(parse(&no_bulk_id).is_err());
        let bad_method =
            json!({"schemas": [BULK_REQUEST], "Operations": [{"method": "GET", "path": "/Users"}]});
        assert!(parse(&bad_method).is_err());
    }
}
