//! The SCIM 2.0 service provider: `/scim/v2/{source}/Users` and `/Groups`.
//!
//! Each identity source has its own base URL and bearer tokens; a token of one source never
//! opens another's. Every write is applied to the store together with its identity event in
//! one transaction, the identity revision increments, and only after the commit is the SCIM
//! response sent and a new snapshot compiled.

mod bulk;
mod discovery;
mod groups;
mod http;
pub mod limit;
pub mod project;
pub mod query;
mod render;
pub mod sources;
mod users;
pub mod validate;

pub use portcullis_scim::error::{ScimError, ScimType};
pub use portcullis_scim::{error, filter, patch, schema};

use crate::config::Config;
use crate::publisher::Publisher;
use crate::store::{self, Store, StoreError};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::middleware;
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Everything the SCIM handlers need.
#[derive(Debug, Clone)]
pub struct ScimState {
    pub store: Store,
    pub config: Arc<Config>,
    pub publisher: Arc<Publisher>,
    /// Each source's resource types (standard schemas plus its custom extensions).
    pub types: Arc<HashMap<String, sources::SourceTypes>>,
    /// Per-source request rate limit.
    pub limiter: Arc<limit::RateLimiter>,
    /// Sources that also require a client certificate (mTLS), with their verifiers.
    pub mtls: Arc<crate::tls::SourceVerifiers>,
}

/// Largest SCIM request body (a group PUT with many members is the big case).
const MAX_BODY: usize = 16 << 20;

/// The SCIM router, mounted at the root of the SCIM listener.
pub fn router(state: ScimState) -> Router {
    let read_only = || axum::routing::any(discovery::read_only);
    Router::new()
        .route(
            "/scim/v2/{source}/Users",
            get(users::list)
                .post(users::create)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{source}/Users/.search",
            post(users::search).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{source}/Users/{id}",
            get(users::fetch)
                .put(users::replace)
                .patch(users::modify)
                .delete(users::remove)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{source}/Groups",
            get(groups::list)
                .post(groups::create)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{source}/Groups/.search",
            post(groups::search).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{source}/Groups/{id}",
            get(groups::fetch)
                .put(groups::replace)
                .patch(groups::modify)
                .delete(groups::remove)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{source}/.search",
            post(search_all).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{source}/Bulk",
            post(bulk::bulk).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{source}/ServiceProviderConfig",
            get(discovery::service_provider_config).fallback(discovery::read_only),
        )
        .route(
            "/scim/v2/{source}/ResourceTypes",
            get(discovery::resource_types).fallback(discovery::read_only),
        )
        .route(
            "/scim/v2/{source}/ResourceTypes/{name}",
            get(discovery::resource_type).fallback(discovery::read_only),
        )
        .route(
            "/scim/v2/{source}/Schemas",
            get(discovery::schemas).fallback(discovery::read_only),
        )
        .route(
            "/scim/v2/{source}/Schemas/{urn}",
            get(discovery::schema).fallback(discovery::read_only),
        )
        .route(
            "/scim/v2/{source}/ServiceProviderConfig/{rest}",
            read_only(),
        )
        .fallback(http::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_source_token,
        ))
        .with_state(state)
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(405, None, "method not allowed on this endpoint")
}

/// `POST /.search` across Users and Groups.
async fn search_all(
    axum::extract::State(state): axum::extract::State<ScimState>,
    axum::extract::Path(source): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<http::ScimResponse, ScimError> {
    let types = state.types(&source);
    let q = query::ListQuery::from_search(
        &http::json_value(&body)?,
        &[types.user, types.group],
        &state.config.scim,
    )?;
    let base = http::base_url(&headers, &source);
    let limits = state.config.scim.clone();
    state
        .read(move |c| {
            Ok(http::ScimResponse::ok(query::run_all(
                c,
                &source,
                &q,
                types.user,
                types.group,
                &base,
                &limits,
            )?))
        })
        .await
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "SCIM request failed in the store");
        ScimError::internal("internal error; the change was not applied")
    }
}

impl ScimState {
    /// The resource types of `source` (the standard ones for an unconfigured name, which
    /// authentication never lets through anyway).
    pub fn types(&self, source: &str) -> sources::SourceTypes {
        self.types
            .get(source)
            .copied()
            .unwrap_or(sources::SourceTypes {
                user: &schema::USER,
                group: &schema::GROUP,
                custom: &[],
            })
    }
}

/// Authenticates `/scim/v2/{source}/…` before the handler runs, so an unauthenticated client
/// never gets a request body buffered.
async fn require_source_token(
    axum::extract::State(state): axum::extract::State<ScimState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let source = request
        .uri()
        .path()
        .strip_prefix("/scim/v2/")
        .and_then(|rest| rest.split('/').next())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let Some(source) = source else {
        return next.run(request).await;
    };
    let method = request.method().as_str().to_owned();
    let resource = match request.uri().path().split('/').nth(4) {
        Some("Users") => "User",
        Some("Groups") => "Group",
        _ => "other",
    };
    let mtls = match state.mtls.get(&source) {
        None => Ok(()),
        Some(v) => {
            let certs = request
                .extensions()
                .get::<crate::tls::ClientCerts>()
                .cloned()
                .unwrap_or_default();
            crate::tls::check_client(v.as_ref(), &certs).map_err(ScimError::unauthorized)
        }
    };
    let authorized = match mtls {
        Ok(()) => state.authorize(request.headers(), &source).await,
        Err(e) => Err(e),
    };
    let response = match authorized {
        Ok(()) => match state.limiter.take(&source) {
            Ok(()) => run_recorded(&state, &source, request, next).await,
            Err(wait) => {
                let e = ScimError::new(
                    429,
                    None,
                    format!("too many requests for source {source}; retry in {wait} s"),
                );
                let mut r = axum::response::IntoResponse::into_response(e);
                if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
                    r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
                }
                r
            }
        },
        Err(e) => axum::response::IntoResponse::into_response(e),
    };
    metrics::counter!(
        "portcullis_scim_requests_total",
        "resource" => resource,
        "method" => method,
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}

/// How much of a rejected request's body its identity event keeps.
const MAX_RECORDED_REQUEST: usize = 64 << 10;

/// Runs an authenticated request. Bodies are read here, bounded (413 with a SCIM error
/// beyond [`MAX_BODY`]); a write to Users, Groups or Bulk that is refused becomes a `rejected`
/// identity event with its status, reason and body, so the event log holds every write an IdP
/// sent, not only those that changed something.
async fn run_recorded(
    state: &ScimState,
    source: &str,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let method = request.method().clone();
    let segments: Vec<String> = request
        .uri()
        .path()
        .split('/')
        .skip(4)
        .map(str::to_owned)
        .collect();
    let (resource_type, resource_id) = match segments.as_slice() {
        [e, rest @ ..] if e == "Users" || e == "Groups" || e == "Bulk" => {
            let ty = match e.as_str() {
                "Users" => "User",
                "Groups" => "Group",
                _ => "Bulk",
            };
            (ty, rest.first().cloned().unwrap_or_default())
        }
        _ => ("", String::new()),
    };
    let operation = match method.as_str() {
        "POST" if resource_type == "Bulk" => "bulk",
        "POST" => "create",
        "PUT" => "replace",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    };
    let recorded = !resource_type.is_empty()
        && !operation.is_empty()
        && !resource_id.starts_with(".search")
        && segments.len() <= 2;
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let e = ScimError::new(
                413,
                None,
                format!("the request body exceeds {MAX_BODY} bytes"),
            );
            if recorded {
                let reason = Rejection {
                    status: e.status,
                    scim_type: None,
                    detail: e.detail.clone(),
                };
                record_rejected(
                    state,
                    source,
                    operation,
                    resource_type,
                    &resource_id,
                    reason,
                    &[],
                )
                .await;
            }
            return e.into_response();
        }
    };
    let digest = hex::encode(Sha256::digest(&body));
    let response = REQUEST_SHA256
        .scope(
            digest,
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(body.clone()),
            )),
        )
        .await;
    if !recorded || response.status().as_u16() < 400 {
        return response;
    }
    let (parts, response_body) = response.into_parts();
    let bytes = axum::body::to_bytes(response_body, 1 << 20)
        .await
        .unwrap_or_default();
    let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let reason = Rejection {
        status: parts.status.as_u16(),
        scim_type: error["scimType"].as_str().map(str::to_owned),
        detail: error["detail"].as_str().unwrap_or_default().to_owned(),
    };
    record_rejected(
        state,
        source,
        operation,
        resource_type,
        &resource_id,
        reason,
        &body,
    )
    .await;
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

tokio::task_local! {
    /// SHA-256 (hex) of the body of the SCIM request being handled; [`ScimState::write`]
    /// stamps it on the identity events the request produces.
    static REQUEST_SHA256: String;
}

/// Why a request was refused, as its response said.
struct Rejection {
    status: u16,
    scim_type: Option<String>,
    detail: String,
}

/// Stores a `rejected` identity event (outside the refused request's rolled-back transaction).
async fn record_rejected(
    state: &ScimState,
    source: &str,
    operation: &str,
    resource_type: &str,
    resource_id: &str,
    error: Rejection,
    body: &[u8],
) {
    let request = (body.len() <= MAX_RECORDED_REQUEST)
        .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
        .flatten();
    let mut detail = match &error.scim_type {
        Some(t) => format!("{t}: {}", error.detail),
        None => error.detail,
    };
    if request.is_none() && !body.is_empty() {
        detail.push_str(&format!(" (request body of {} bytes not kept)", body.len()));
    }
    let event = store::IdentityEvent {
        outcome: store::EventOutcome::Rejected,
        status: Some(error.status),
        detail: Some(detail),
        request,
        request_sha256: Some(hex::encode(Sha256::digest(body))),
        ..event(resource_type, source, operation, resource_id, None, None)
    };
    if let Err(e) = state
        .store
        .write(move |tx| store::record_event(tx, &event).map(|_| ()))
        .await
    {
        tracing::error!(error = %e, "could not record a rejected SCIM request");
    }
}

/// The identity event recording one SCIM change.
fn event(
    resource_type: &str,
    source: &str,
    operation: &str,
    id: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> store::IdentityEvent {
    store::IdentityEvent {
        seq: 0,
        revision: 0,
        at_ms: store::now_ms(),
        source: source.to_owned(),
        operation: operation.to_owned(),
        resource_type: resource_type.to_owned(),
        resource_id: id.to_owned(),
        before,
        after,
        outcome: store::EventOutcome::Applied,
        status: None,
        detail: None,
        request: None,
        request_sha256: None,
        high_priority: false,
    }
}

/// The identity event recording a write request that was accepted but changed nothing.
fn unchanged_event(
    resource_type: &str,
    source: &str,
    operation: &str,
    id: &str,
    current: serde_json::Value,
) -> store::IdentityEvent {
    store::IdentityEvent {
        outcome: store::EventOutcome::Unchanged,
        ..event(
            resource_type,
            source,
            operation,
            id,
            Some(current.clone()),
            Some(current),
        )
    }
}

impl ScimState {
    /// Checks the request's bearer token against `source`: a token created for the source
    /// with the CLI, or one whose hash is declared in the source's configuration.
    pub async fn authorize(&self, headers: &HeaderMap, source: &str) -> Result<(), ScimError> {
        let deny =
            || ScimError::unauthorized("a valid SCIM bearer token for this source is required");
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(deny)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let hex = hex::encode(digest);

        if let Some(cfg) = self.config.source(source) {
            let declared = cfg.scim_token_sha256.iter().any(|h| {
                portcullis_shared::Hash32::from_hex(h)
                    .is_some_and(|h| bool::from(h.0.ct_eq(&digest)))
            });
            if declared {
                return Ok(());
            }
        }
        let owner = self
            .store
            .run(move |c| store::token_source(c, &hex))
            .await?;
        match owner {
            Some(owner) if owner == source => {
                if self.config.source(source).is_none() {
                    return Err(ScimError::not_found(format!(
                        "identity source {source:?} is not configured"
                    )));
                }
                Ok(())
            }
            _ => Err(deny()),
        }
    }

    /// Runs `f` in one write transaction; on success, asks for a new snapshot. The identity
    /// events `f` records are stamped, in the same transaction, with the digest of the SCIM
    /// request being handled.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, ScimError> + Send + 'static,
    ) -> Result<T, ScimError> {
        let digest = REQUEST_SHA256.try_with(Clone::clone).ok();
        let out = self
            .store
            .write(move |tx| {
                let Some(digest) = digest else {
                    return f(tx);
                };
                let before = store::last_event_seq(tx)?;
                let out = f(tx)?;
                store::stamp_request_digest(tx, before, &digest)?;
                Ok(out)
            })
            .await?;
        self.publisher.mark_dirty();
        Ok(out)
    }

    /// Runs a read on the blocking pool.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, ScimError> + Send + 'static,
    ) -> Result<T, ScimError> {
        self.store.read(f).await
    }
}
