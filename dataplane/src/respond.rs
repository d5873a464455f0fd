//! Refusals in the client's own protocol: OpenAI's error object, Anthropic's error envelope,
//! or a JSON-RPC error carrying the request's `id`, so every SDK surfaces a readable reason.

use crate::config::RouteKind;
use bytes::Bytes;
use serde_json::{Value, json};

/// The class of a refusal; decides the status code and each protocol's error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 401: no valid token.
    Unauthenticated,
    /// 403: authenticated, not allowed.
    Denied,
    /// 404: no such route or operation.
    NotFound,
    /// 400: malformed request.
    BadRequest,
    /// 413: body over the limit.
    TooLarge,
    /// 408: the body did not arrive in time.
    Timeout,
    /// 503: this node cannot decide (no snapshot).
    Unavailable,
    /// 502: the upstream failed.
    Upstream,
}

impl Kind {
    pub fn status(self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::Denied => 403,
            Self::NotFound => 404,
            Self::BadRequest => 400,
            Self::TooLarge => 413,
            Self::Timeout => 408,
            Self::Unavailable => 503,
            Self::Upstream => 502,
        }
    }

    fn openai(self) -> (&'static str, &'static str) {
        match self {
            Self::Unauthenticated => ("authentication_error", "invalid_token"),
            Self::Denied => ("permission_error", "access_denied"),
            Self::NotFound => ("invalid_request_error", "unknown_operation"),
            Self::BadRequest => ("invalid_request_error", "invalid_request"),
            Self::TooLarge => ("invalid_request_error", "request_too_large"),
            Self::Timeout => ("invalid_request_error", "request_timeout"),
            Self::Unavailable => ("server_error", "gateway_not_ready"),
            Self::Upstream => ("server_error", "upstream_error"),
        }
    }

    /// Google's canonical status names, as Gemini's errors carry them.
    fn gemini(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Denied => "PERMISSION_DENIED",
            Self::NotFound => "NOT_FOUND",
            Self::BadRequest | Self::TooLarge => "INVALID_ARGUMENT",
            Self::Timeout => "DEADLINE_EXCEEDED",
            Self::Unavailable | Self::Upstream => "UNAVAILABLE",
        }
    }

    fn anthropic(self) -> &'static str {
        match self {
            Self::Unauthenticated => "authentication_error",
            Self::Denied => "permission_error",
            Self::NotFound => "not_found_error",
            Self::BadRequest => "invalid_request_error",
            Self::TooLarge => "request_too_large",
            Self::Timeout => "timeout_error",
            Self::Unavailable => "overloaded_error",
            Self::Upstream => "api_error",
        }
    }

    /// JSON-RPC error code (implementation-defined range for gateway refusals).
    fn jsonrpc(self) -> i64 {
        match self {
            Self::Unauthenticated => -32001,
            Self::Denied => -32003,
            Self::NotFound | Self::BadRequest | Self::TooLarge | Self::Timeout => -32600,
            Self::Unavailable => -32002,
            Self::Upstream => -32603,
        }
    }
}

/// A refusal to render.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: Kind,
    pub message: String,
    /// Overrides the JSON-RPC code (parse errors, invalid params).
    pub jsonrpc_code: Option<i64>,
    /// Extra machine-readable detail (decision reason, policies).
    pub detail: Option<Value>,
    /// The `WWW-Authenticate` challenge, when it is not the plain bearer one.
    pub challenge: Option<String>,
}

impl Refusal {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            jsonrpc_code: None,
            detail: None,
            challenge: None,
        }
    }

    pub fn with_challenge(mut self, challenge: String) -> Self {
        self.challenge = Some(challenge);
        self
    }

    pub fn with_jsonrpc_code(mut self, code: i64) -> Self {
        self.jsonrpc_code = Some(code);
        self
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The body for a route of `kind` (`None`: no route matched). `id` is the JSON-RPC id of
    /// the refused MCP request, if known.
    pub fn body(&self, kind: Option<RouteKind>, id: Option<&Value>) -> Bytes {
        let v = match kind {
            Some(RouteKind::Gemini) => json!({
                "error": {
                    "code": self.kind.status(),
                    "message": self.message,
                    "status": self.kind.gemini(),
                },
            }),
            Some(RouteKind::Anthropic) => json!({
                "type": "error",
                "error": { "type": self.kind.anthropic(), "message": self.message },
            }),
            Some(RouteKind::Mcp) => {
                let mut error = json!({
                    "code": self.jsonrpc_code.unwrap_or(self.kind.jsonrpc()),
                    "message": self.message,
                });
                if let Some(d) = &self.detail {
                    error["data"] = d.clone();
                }
                json!({ "jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error })
            }
            Some(RouteKind::Openai | RouteKind::Azure) | None => {
                let (ty, code) = self.kind.openai();
                json!({
                    "error": { "message": self.message, "type": ty, "param": null, "code": code },
                })
            }
        };
        Bytes::from(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_gets_its_own_shape() {
        let r = Refusal::new(Kind::Denied, "no policy permits chat on Model::\"gpt-4o\"");
        let openai: Value =
            serde_json::from_slice(&r.body(Some(RouteKind::Openai), None)).expect("json");
        assert_eq!(openai["error"]["type"], "permission_error");
        assert!(
            openai["error"]["message"]
                .as_str()
                .expect("msg")
                .contains("gpt-4o")
        );
        let anthropic: Value =
            serde_json::from_slice(&r.body(Some(RouteKind::Anthropic), None)).expect("json");
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "permission_error");
        let mcp: Value = serde_json::from_slice(
            &r.clone()
                .with_detail(json!({"reason": "no_matching_permit"}))
                .body(Some(RouteKind::Mcp), Some(&json!(42))),
        )
        .expect("json");
        assert_eq!(mcp["jsonrpc"], "2.0");
        assert_eq!(mcp["id"], 42);
        assert_eq!(mcp["error"]["code"], -32003);
        assert_eq!(mcp["error"]["data"]["reason"], "no_matching_permit");
        let parse: Value = serde_json::from_slice(
            &Refusal::new(Kind::BadRequest, "parse error")
                .with_jsonrpc_code(-32700)
                .body(Some(RouteKind::Mcp), None),
        )
        .expect("json");
        assert_eq!(parse["id"], Value::Null);
        assert_eq!(parse["error"]["code"], -32700);
    }
}
