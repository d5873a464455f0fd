//! Admin endpoints for programs' credentials: API keys and service accounts.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/admin/v1/api-keys` | issue a key: 201 `{"key": "<text, shown once>", "api_key": {…}}` |
//! | GET | `/admin/v1/api-keys?source=&user=` | keys (never their text), newest first, with `state` |
//! | POST | `/admin/v1/api-keys/{id}/revoke` | `{"author": …}`: revoke a key now |
//! | POST | `/admin/v1/service-accounts` | create a service account: 201 |
//! | GET | `/admin/v1/service-accounts` | every service account with its groups and live keys |
//! | POST | `/admin/v1/service-accounts/{name}/delete` | `{"author": …}`: delete it, revoke its keys |
//!
//! Bodies are JSON with no unknown fields; a refusal is `{"error": "…"}` with 400 (unreadable
//! body), 404 (unknown user, key or account), 409 (already revoked, name taken) or 422 (a
//! value out of range). Each change wakes the publisher: the next snapshot carries it.

use super::{AdminState, internal};
use crate::apikeys::{ApiKeyError, IssueRequest};
use crate::service_accounts::{CreateServiceAccount, ServiceAccountError};
use crate::store::{self, ApiKeyRow};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/v1/api-keys", get(list_keys).post(issue))
        .route("/admin/v1/api-keys/{id}/revoke", post(revoke))
        .route(
            "/admin/v1/service-accounts",
            get(list_accounts).post(create_account),
        )
        .route(
            "/admin/v1/service-accounts/{name}/delete",
            post(delete_account),
        )
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

/// Parses a JSON body; a refusal is answered in the API's own error shape (400), not as
/// the extractor's plain text.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Box<Response>> {
    serde_json::from_slice(bytes).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid: {e}"),
        ))
    })
}

/// A body naming who asks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorBody {
    author: String,
}

#[derive(Debug, Deserialize)]
struct KeysQuery {
    source: Option<String>,
    user: Option<String>,
}

/// A key as listed: the row (never the text nor the hash) and its state now.
fn key_json(row: &ApiKeyRow, now: u64) -> Value {
    let mut v = json!(row);
    v["state"] = json!(row.state(now));
    v
}

async fn issue(State(s): State<AdminState>, bytes: Bytes) -> Response {
    let req: IssueRequest = match body(&bytes) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match s.api_keys.issue(req).await {
        Ok((row, key)) => {
            s.publisher.mark_dirty();
            (
                StatusCode::CREATED,
                Json(json!({"key": key, "api_key": key_json(&row, store::now_ms())})),
            )
                .into_response()
        }
        Err(e) => api_key_error(e),
    }
}

async fn list_keys(State(s): State<AdminState>, Query(q): Query<KeysQuery>) -> Response {
    let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    match s.api_keys.list(nonempty(q.source), nonempty(q.user)).await {
        Ok(rows) => {
            let now = store::now_ms();
            Json(json!({
                "api_keys": rows.iter().map(|r| key_json(r, now)).collect::<Vec<_>>(),
            }))
            .into_response()
        }
        Err(e) => api_key_error(e),
    }
}

async fn revoke(State(s): State<AdminState>, Path(id): Path<String>, bytes: Bytes) -> Response {
    let req: AuthorBody = match body(&bytes) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match s.api_keys.revoke(&id, &req.author).await {
        Ok(row) => {
            s.publisher.mark_dirty();
            Json(json!({"api_key": key_json(&row, store::now_ms())})).into_response()
        }
        Err(e) => api_key_error(e),
    }
}

fn api_key_error(e: ApiKeyError) -> Response {
    let status = match &e {
        ApiKeyError::UnknownUser(..) | ApiKeyError::UnknownKey(_) => StatusCode::NOT_FOUND,
        ApiKeyError::Revoked(_) => StatusCode::CONFLICT,
        ApiKeyError::Inactive(..)
        | ApiKeyError::Name
        | ApiKeyError::Author
        | ApiKeyError::Expiry(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ApiKeyError::Store(e) => return internal(e),
    };
    error(status, e)
}

async fn create_account(State(s): State<AdminState>, bytes: Bytes) -> Response {
    let req: CreateServiceAccount = match body(&bytes) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match s.service_accounts.create(req).await {
        Ok(account) => {
            s.publisher.mark_dirty();
            (
                StatusCode::CREATED,
                Json(json!({"service_account": account})),
            )
                .into_response()
        }
        Err(e) => service_account_error(e),
    }
}

async fn list_accounts(State(s): State<AdminState>) -> Response {
    match s.service_accounts.list().await {
        Ok(accounts) => Json(json!({"service_accounts": accounts})).into_response(),
        Err(e) => service_account_error(e),
    }
}

async fn delete_account(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Response {
    let req: AuthorBody = match body(&bytes) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match s.service_accounts.delete(&name, &req.author).await {
        Ok(deleted) => {
            s.publisher.mark_dirty();
            Json(json!({"deleted": deleted})).into_response()
        }
        Err(e) => service_account_error(e),
    }
}

fn service_account_error(e: ServiceAccountError) -> Response {
    let status = match &e {
        ServiceAccountError::Unknown(_) => StatusCode::NOT_FOUND,
        ServiceAccountError::Exists(_) => StatusCode::CONFLICT,
        ServiceAccountError::Name
        | ServiceAccountError::DisplayName
        | ServiceAccountError::Group(_)
        | ServiceAccountError::Author => StatusCode::UNPROCESSABLE_ENTITY,
        ServiceAccountError::Store(e) => return internal(e),
    };
    error(status, e)
}
