//! HTTP plumbing shared by the SCIM handlers: bodies, responses, list parameters, paging.

use super::ScimError;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub const CONTENT_TYPE: &str = "application/scim+json";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Default and largest page size.
pub const DEFAULT_COUNT: usize = 100;
pub const MAX_COUNT: usize = 1000;

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

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis-scim\""),
            );
        }
        (status, headers, self.body().to_string()).into_response()
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

/// `filter`, `startIndex` and `count` from a list request's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub filter: Option<String>,
    /// 1-based.
    pub start_index: usize,
    pub count: usize,
}

impl ListParams {
    pub fn parse(query: &HashMap<String, String>) -> Result<Self, ScimError> {
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let int = |name: &str| -> Result<Option<i64>, ScimError> {
            get(name)
                .map(|v| {
                    v.trim().parse::<i64>().map_err(|_| {
                        ScimError::invalid_value(format!("{name} must be an integer, got {v:?}"))
                    })
                })
                .transpose()
        };
        // RFC 7644 §3.4.2.4: startIndex < 1 means 1; a negative count means 0.
        let start_index = int("startIndex")?.unwrap_or(1).max(1) as usize;
        let count = int("count")?
            .map(|c| c.clamp(0, MAX_COUNT as i64) as usize)
            .unwrap_or(DEFAULT_COUNT);
        let filter = get("filter")
            .map(str::to_owned)
            .filter(|f| !f.trim().is_empty());
        Ok(Self {
            filter,
            start_index,
            count,
        })
    }

    /// Parses the parameters and the filter, validated against `rt`.
    pub fn parse_with_filter(
        query: &HashMap<String, String>,
        rt: &super::schema::ResourceType,
    ) -> Result<(Self, Option<super::filter::Filter>), ScimError> {
        let params = Self::parse(query)?;
        let filter = params
            .filter
            .as_deref()
            .map(super::filter::parse)
            .transpose()?;
        if let Some(f) = &filter {
            super::filter::validate(f, rt)?;
        }
        Ok((params, filter))
    }

    /// The `ListResponse` for all matching `resources`, paged.
    pub fn page(&self, resources: Vec<Value>) -> Value {
        let total = resources.len();
        let page: Vec<Value> = resources
            .into_iter()
            .skip(self.start_index - 1)
            .take(self.count)
            .collect();
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": self.start_index,
            "itemsPerPage": page.len(),
            "Resources": page,
        })
    }
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

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn list_params_follow_rfc_7644_paging_rules() {
        let p = ListParams::parse(&q(&[("startIndex", "0"), ("count", "-5")])).expect("ok");
        assert_eq!((p.start_index, p.count), (1, 0));
        let p = ListParams::parse(&q(&[("COUNT", "5000")])).expect("ok");
        assert_eq!(p.count, MAX_COUNT);
        assert!(ListParams::parse(&q(&[("count", "ten")])).is_err());
        let page = ListParams::parse(&q(&[("startIndex", "2"), ("count", "1")]))
            .expect("ok")
            .page(vec![json!(1), json!(2), json!(3)]);
        assert_eq!(page["totalResults"], 3);
        assert_eq!(page["itemsPerPage"], 1);
        assert_eq!(page["Resources"], json!([2]));
        let only_total = ListParams::parse(&q(&[("count", "0")]))
            .expect("ok")
            .page(vec![json!(1)]);
        assert_eq!(only_total["Resources"], json!([]));
        assert_eq!(only_total["totalResults"], 1);
    }
}
