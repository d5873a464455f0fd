//! HTTP plumbing shared by the SCIM handlers: bodies, responses, list parameters, paging.

use super::ScimError;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

pub use portcullis_scim::CONTENT_TYPE;

/// A SCIM response: status, optional JSON body, and extra headers.
#[derive(Debug)]
pub struct ScimResponse {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub location: Option<String>,
    pub etag: Option<String>,
}

impl ScimResponse {
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
            location: None,
            etag: None,
        }
    }

    /// 204, as DELETE answers.
    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            location: None,
            etag: None,
        }
    }

    pub fn with_etag(mut self, version: u64) -> Self {
        self.etag = Some(etag(version));
        self
    }
}

/// 304 for a conditional GET whose `If-None-Match` matched.
pub fn not_modified(version: u64) -> ScimResponse {
    ScimResponse {
        status: StatusCode::NOT_MODIFIED,
        body: None,
        location: None,
        etag: Some(etag(version)),
    }
}

/// True if an `If-Match`/`If-None-Match` header value names `version` (weak comparison:
/// `W/"3"` and `"3"` both match version 3; `*` matches any).
fn etag_listed(header: &str, version: u64) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"') == version.to_string()
    })
}

/// `If-Match` on PUT, PATCH and DELETE (or a bulk operation's `version`): 412 unless it names
/// the current version.
pub fn check_if_match(if_match: Option<&str>, version: u64) -> Result<(), ScimError> {
    match if_match {
        Some(h) if !etag_listed(h, version) => Err(ScimError::new(
            412,
            None,
            format!("the resource has changed: its version is {}", etag(version)),
        )),
        _ => Ok(()),
    }
}

/// `If-None-Match` on GET: true when the client's copy is current (answer 304).
pub fn if_none_match(headers: &HeaderMap, version: u64) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| etag_listed(h, version))
}

/// `W/"<version>"`: weak, since equal versions mean semantically equal resources.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

impl IntoResponse for ScimResponse {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(l) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, l);
        }
        if let Some(e) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            headers.insert(header::ETAG, e);
        }
        match self.body {
            Some(body) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
                (self.status, headers, body.to_string()).into_response()
            }
            None => (self.status, headers).into_response(),
        }
    }
}

/// Unknown paths answer with a SCIM error body too.
pub async fn not_found() -> ScimError {
    ScimError::not_found("no such SCIM endpoint")
}

/// Parses a request body that must be a JSON object.
pub fn json_object(body: &Bytes) -> Result<Map<String, Value>, ScimError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(ScimError::invalid_syntax(
            "request body must be a JSON object",
        )),
    }
}

/// Parses a request body as any JSON value.
pub fn json_value(body: &Bytes) -> Result<Value, ScimError> {
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("request body is not valid JSON: {e}")))
}

/// The base URL resources are addressed under, from the request's `Host`.
pub fn base_url(headers: &HeaderMap, source: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    format!("http://{host}/scim/v2/{source}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_weakly_and_star_matches() {
        assert!(etag_listed("W/\"3\"", 3));
        assert!(etag_listed("\"3\"", 3));
        assert!(etag_listed("W/\"1\", W/\"3\"", 3));
        assert!(etag_listed("*", 9));
        assert!(!etag_listed("W/\"2\"", 3));
        assert_eq!(check_if_match(Some("W/\"2\""), 3).unwrap_err().status, 412);
        assert!(check_if_match(None, 3).is_ok());
    }
}
