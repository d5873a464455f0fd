//! Admin endpoints of the identity model: versioned bindings, the compile report, and
//! break-glass activations.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/admin/v1/bindings` | the live bindings (JSON and canonical TOML) |
//! | PUT | `/admin/v1/bindings` | a new version (TOML or JSON body; `X-Portcullis-Author`) |
//! | GET | `/admin/v1/bindings/history` | every version with author, time, comment and diff |
//! | GET | `/admin/v1/bindings/versions/{v}` | one version's content |
//! | POST | `/admin/v1/bindings/rollback` | `{"version": v}`: make v's content live again |
//! | GET | `/admin/v1/identity/report` | cycles, unbound groups, dynamic groups, rule errors |
//! | GET | `/admin/v1/break-glass` | activations, newest first |
//! | POST | `/admin/v1/break-glass/activate` | grant an entry's role to a user, time-boxed |
//! | POST | `/admin/v1/break-glass/{id}/revoke` | end a live activation now |

use super::{AdminState, internal};
use crate::bindings::{ApplyError, Bindings};
use crate::breakglass::{ActivateRequest, BreakGlassError};
use crate::store;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/v1/bindings", get(show).put(update))
        .route("/admin/v1/bindings/history", get(history))
        .route("/admin/v1/bindings/versions/{version}", get(version))
        .route("/admin/v1/bindings/rollback", post(rollback))
        .route("/admin/v1/identity/report", get(report))
        .route("/admin/v1/break-glass", get(activations))
        .route("/admin/v1/break-glass/activate", post(activate))
        .route("/admin/v1/break-glass/{id}/revoke", post(revoke))
}

fn author(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-portcullis-author")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

async fn show(State(s): State<AdminState>) -> Response {
    let live = s.bindings.live();
    Json(json!({
        "version": live.version,
        "bindings": &*live.bindings,
        "toml": live.bindings.to_toml(),
    }))
    .into_response()
}

async fn update(State(s): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(author) = author(&headers) else {
        return error(
            StatusCode::BAD_REQUEST,
            "say who makes the change: X-Portcullis-Author header",
        );
    };
    let comment = headers
        .get("x-portcullis-comment")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    let parsed = if json_body {
        serde_json::from_str::<Bindings>(text).map_err(|e| e.to_string())
    } else {
        Bindings::from_toml(text).map_err(|e| e.problems.join("; "))
    };
    let doc = match parsed {
        Ok(d) => d,
        Err(e) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": "the bindings do not parse", "problems": [e]})),
            )
                .into_response();
        }
    };
    applied(
        &s,
        s.bindings.apply(doc, &author, comment, &s.policies).await,
    )
}

fn applied(s: &AdminState, result: Result<u64, ApplyError>) -> Response {
    match result {
        Ok(version) => {
            s.publisher.mark_dirty();
            Json(json!({"version": version})).into_response()
        }
        Err(ApplyError::Invalid(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "the bindings are invalid; the live version is unchanged",
                "live_version": s.bindings.live().version,
                "problems": e.problems,
            })),
        )
            .into_response(),
        Err(e @ ApplyError::Unchanged(_)) => error(StatusCode::CONFLICT, e),
        Err(ApplyError::Policies(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "the live policies do not validate against the attributes and labels \
                          these bindings declare; the live version is unchanged",
                "live_version": s.bindings.live().version,
                "problems": e
                    .diagnostics()
                    .iter()
                    .map(|d| if d.file.is_empty() {
                        d.message.clone()
                    } else {
                        format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message)
                    })
                    .collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        Err(e @ ApplyError::NoSuchVersion(_)) => error(StatusCode::NOT_FOUND, e),
        Err(ApplyError::Store(e)) => internal(e),
    }
}

async fn history(State(s): State<AdminState>) -> Response {
    match s.store.run(|c| store::binding_history(c)).await {
        Ok(rows) => Json(json!({
            "live_version": s.bindings.live().version,
            "versions": rows.iter().map(|r| json!({
                "version": r.version,
                "at_ms": r.at_ms,
                "author": r.author,
                "comment": r.comment,
                "hash": r.hash,
                "diff": r.diff,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

async fn version(State(s): State<AdminState>, Path(v): Path<u64>) -> Response {
    match s.store.run(move |c| store::get_bindings(c, v)).await {
        Ok(Some(r)) => match serde_json::from_str::<Bindings>(&r.content_json) {
            Ok(doc) => Json(json!({
                "version": r.version,
                "at_ms": r.at_ms,
                "author": r.author,
                "comment": r.comment,
                "bindings": doc,
                "toml": doc.to_toml(),
            }))
            .into_response(),
            Err(e) => internal(e),
        },
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("bindings version {v} does not exist"),
        ),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
struct RollbackBody {
    version: u64,
}

async fn rollback(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Json(body): Json<RollbackBody>,
) -> Response {
    let Some(author) = author(&headers) else {
        return error(
            StatusCode::BAD_REQUEST,
            "say who makes the change: X-Portcullis-Author header",
        );
    };
    applied(
        &s,
        s.bindings
            .rollback(body.version, &author, &s.policies)
            .await,
    )
}

async fn report(State(s): State<AdminState>) -> Response {
    match s.publisher.report() {
        Some(r) => Json(json!({
            "snapshot_version": s.publisher.latest().map(|p| p.version),
            "bindings_version": s.bindings.live().version,
            "report": &*r,
        }))
        .into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "nothing compiled yet"),
    }
}

async fn activations(State(s): State<AdminState>) -> Response {
    let now = store::now_ms();
    match s.store.run(|c| store::list_activations(c, 500)).await {
        Ok(rows) => Json(json!({
            "activations": rows.iter().map(|r| {
                let live = r.revoked_ms.is_none() && r.expires_ms > now;
                let mut v = json!(r);
                v["live"] = json!(live);
                v
            }).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

async fn activate(State(s): State<AdminState>, Json(req): Json<ActivateRequest>) -> Response {
    match s.break_glass.activate(req).await {
        Ok(row) => {
            s.publisher.mark_dirty();
            (StatusCode::CREATED, Json(json!(row))).into_response()
        }
        Err(e) => break_glass_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct RevokeBody {
    author: String,
}

async fn revoke(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    Json(body): Json<RevokeBody>,
) -> Response {
    match s.break_glass.revoke(&id, &body.author).await {
        Ok(row) => {
            s.publisher.mark_dirty();
            Json(json!(row)).into_response()
        }
        Err(BreakGlassError::NotLive(_)) => error(
            StatusCode::NOT_FOUND,
            format!("no live activation has id {id:?}"),
        ),
        Err(e) => break_glass_error(e),
    }
}

fn break_glass_error(e: BreakGlassError) -> Response {
    let status = match &e {
        BreakGlassError::UnknownEntry(_) | BreakGlassError::UnknownUser(..) => {
            StatusCode::NOT_FOUND
        }
        BreakGlassError::TooLong { .. }
        | BreakGlassError::Unjustified
        | BreakGlassError::Duration => StatusCode::UNPROCESSABLE_ENTITY,
        BreakGlassError::NotLive(_) => StatusCode::NOT_FOUND,
        BreakGlassError::Store(e) => return internal(e),
    };
    error(status, e)
}
