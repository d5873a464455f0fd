//! Classification: from a route, a method, a path and a body to the action and resource that
//! policies decide on.
//!
//! Two steps, because the body is only read after the caller is authenticated:
//! [`operation`] looks at method and path, [`request`] at the body.
//!
//! | route kind | method and path (after the prefix) | action | resource |
//! |---|---|---|---|
//! | openai | `POST /v1/chat/completions` (and legacy `/v1/completions`) | `chat` | `Model` from `model` |
//! | openai | `POST /v1/embeddings` | `embed` | `Model` |
//! | openai | `POST /v1/responses` | `responses` | `Model` |
//! | openai, anthropic | `GET /v1/models` | `models:list` | the `Provider` |
//! | anthropic | `POST /v1/messages`, `POST /v1/messages/count_tokens` | `chat` | `Model` |
//! | mcp | `POST` JSON-RPC | by method, see `Action::for_mcp_method` | tool, resource, prompt or server |
//! | mcp | `GET` (server notification stream) | `mcp:notification` | the server |
//! | mcp | `DELETE` (end of session) | `mcp:initialize` | the server |
//!
//! Anything else on an LLM route is refused (404): an edge that forwarded operations it does
//! not understand could not enforce policy on them.

use crate::config::{Route, RouteKind};
use portcullis_shared::request::{Action, Request, RequestContext, Resource};
use serde_json::Value;
use std::borrow::Cow;

/// What the path says, before the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A model call whose model is named in the JSON body.
    ModelCall(Action),
    /// A model call whose model is named in the path: an Azure OpenAI deployment, or a
    /// Gemini `models/{model}:{method}`.
    DeploymentCall(Action),
    /// Listing a provider's models (no body).
    ListModels,
    /// An MCP JSON-RPC message in the body.
    McpMessage,
    /// The MCP server-to-client stream (GET) or session end (DELETE).
    McpSession(Action),
}

impl Operation {
    pub fn needs_body(self) -> bool {
        matches!(
            self,
            Self::ModelCall(_) | Self::DeploymentCall(_) | Self::McpMessage
        )
    }

    /// Whether the body must be parsed before deciding: always for MCP (the method is the
    /// action); for a model call unless the route parses only when needed and no policy for
    /// the action reads the model or `context.stream`.
    pub fn parse_before_deciding(
        self,
        route: &Route,
        needs: &portcullis_shared::fast::Needs,
    ) -> bool {
        match self {
            Self::ModelCall(action) => {
                route.parse_body == crate::config::ParseBody::Always
                    || needs.resource(action)
                    || needs.stream(action)
            }
            // The model is in the path; the body only says whether the call streams.
            Self::DeploymentCall(_) => true,
            Self::McpMessage => true,
            Self::ListModels | Self::McpSession(_) => false,
        }
    }
}

/// A model call decided without reading its body: no policy for the action reads the model or
/// the stream flag, so any value decides the same. The record's model is empty.
pub fn unread_model_call(route: &Route, action: Action) -> Classified {
    model_call(
        route,
        action,
        String::new(),
        RequestContext {
            route: route.prefix.clone(),
            stream: false,
            now_ms: portcullis_shared::request::now_ms(),
            environment: route.environment.clone(),
            tenant: route.tenant.clone(),
            claims: Vec::new(),
        },
    )
}

/// Why a request could not be classified. The text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("{method} {path} is not an operation this gateway supports")]
    UnknownOperation { method: String, path: String },
    #[error("request body is not valid JSON: {0}")]
    BadJson(String),
    #[error("{0}")]
    Invalid(String),
    /// A JSON-RPC protocol error, with the message's `id` when it had one.
    #[error("{message}")]
    JsonRpc {
        code: i64,
        message: String,
        id: Option<Value>,
    },
}

/// Refuses paths that could be read differently here and upstream: empty, `.` or `..`
/// segments, percent-encoded dots, slashes or backslashes, and backslashes. Classification and
/// forwarding both use the path as received, so it must already be canonical.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("the request path must start with '/'");
    }
    if path.contains('\\') {
        return Err("the request path must not contain backslashes");
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return Err("the request path must not percent-encode '.', '/', '\\' or NUL");
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        if *seg == "." || *seg == ".." {
            return Err("the request path must not contain '.' or '..' segments");
        }
        if seg.is_empty() && i != last {
            return Err("the request path must not contain empty segments");
        }
    }
    Ok(())
}

/// Classifies by method and path (`rest` is the path after the route prefix, without query).
pub fn operation(route: &Route, method: &str, rest: &str) -> Result<Operation, ClassifyError> {
    let rest = rest.trim_end_matches('/');
    let unknown = || ClassifyError::UnknownOperation {
        method: method.to_owned(),
        path: if rest.is_empty() {
            "/".to_owned()
        } else {
            rest.to_owned()
        },
    };
    match route.kind {
        RouteKind::Openai => match (method, rest) {
            // Legacy completions (still served by OpenAI and by most compatible servers) are
            // chat as far as policy goes: text generation by a model.
            ("POST", "/v1/chat/completions" | "/chat/completions")
            | ("POST", "/v1/completions" | "/completions") => {
                Ok(Operation::ModelCall(Action::Chat))
            }
            ("POST", "/v1/embeddings" | "/embeddings") => Ok(Operation::ModelCall(Action::Embed)),
            ("POST", "/v1/responses" | "/responses") => Ok(Operation::ModelCall(Action::Responses)),
            ("GET", "/v1/models" | "/models") => Ok(Operation::ListModels),
            _ => Err(unknown()),
        },
        RouteKind::Azure => match (method, rest) {
            ("POST", "/openai/v1/chat/completions") => Ok(Operation::ModelCall(Action::Chat)),
            ("POST", "/openai/v1/embeddings") => Ok(Operation::ModelCall(Action::Embed)),
            ("POST", "/openai/v1/responses") => Ok(Operation::ModelCall(Action::Responses)),
            ("GET", "/openai/models" | "/openai/v1/models") => Ok(Operation::ListModels),
            ("POST", path) => match deployment(path) {
                Some((_, "chat/completions" | "completions")) => {
                    Ok(Operation::DeploymentCall(Action::Chat))
                }
                Some((_, "embeddings")) => Ok(Operation::DeploymentCall(Action::Embed)),
                _ => Err(unknown()),
            },
            _ => Err(unknown()),
        },
        RouteKind::Gemini => match (method, gemini_model(rest)) {
            ("POST", Some((_, "generateContent" | "streamGenerateContent" | "countTokens"))) => {
                Ok(Operation::DeploymentCall(Action::Chat))
            }
            ("POST", Some((_, "embedContent" | "batchEmbedContents"))) => {
                Ok(Operation::DeploymentCall(Action::Embed))
            }
            ("GET", None) if matches!(rest, "/v1beta/models" | "/v1/models") => {
                Ok(Operation::ListModels)
            }
            _ => Err(unknown()),
        },
        RouteKind::Anthropic => match (method, rest) {
            ("POST", "/v1/messages" | "/v1/messages/count_tokens") => {
                Ok(Operation::ModelCall(Action::Chat))
            }
            ("GET", "/v1/models") => Ok(Operation::ListModels),
            _ => Err(unknown()),
        },
        // An MCP route is one endpoint: a sub-path could reach something else upstream.
        RouteKind::Mcp if !rest.is_empty() => Err(unknown()),
        RouteKind::Mcp => match method {
            "POST" => Ok(Operation::McpMessage),
            "GET" => Ok(Operation::McpSession(Action::McpNotification)),
            "DELETE" => Ok(Operation::McpSession(Action::McpInitialize)),
            _ => Err(unknown()),
        },
    }
}

/// An Azure OpenAI deployment path, `/openai/deployments/{deployment}/{operation}`: the
/// deployment and the operation.
pub fn deployment(rest: &str) -> Option<(&str, &str)> {
    let tail = rest.strip_prefix("/openai/deployments/")?;
    let (name, op) = tail.split_once('/')?;
    (!name.is_empty()).then_some((name, op.trim_end_matches('/')))
}

/// A Gemini model path, `/v1beta/models/{model}:{method}` (or `/v1/…`): the model and the
/// method.
pub fn gemini_model(rest: &str) -> Option<(&str, &str)> {
    let tail = rest
        .strip_prefix("/v1beta/models/")
        .or_else(|| rest.strip_prefix("/v1/models/"))?;
    let (model, method) = tail.rsplit_once(':')?;
    (!model.is_empty() && !model.contains('/')).then_some((model, method))
}

/// The model a path names, for the kinds that name it there.
fn model_in_path(kind: RouteKind, rest: &str) -> Option<(&str, &str)> {
    match kind {
        RouteKind::Azure => deployment(rest),
        RouteKind::Gemini => gemini_model(rest),
        _ => None,
    }
}

/// Facts from an MCP message that the error response needs.
#[derive(Debug, Clone, PartialEq)]
pub struct McpMessage {
    /// The JSON-RPC `id` (absent for notifications and client responses).
    pub id: Option<Value>,
    pub method: Option<String>,
}

/// The classified request, plus what the response needs to know about the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub request: Request,
    pub mcp: Option<McpMessage>,
}

/// Completes classification with the body (empty for operations without one); `rest` is the
/// path after the route's prefix.
pub fn request(
    route: &Route,
    op: Operation,
    rest: &str,
    body: &[u8],
) -> Result<Classified, ClassifyError> {
    let now_ms = portcullis_shared::request::now_ms();
    let context = |stream: bool| RequestContext {
        route: route.prefix.clone(),
        stream,
        now_ms,
        environment: route.environment.clone(),
        tenant: route.tenant.clone(),
        claims: Vec::new(),
    };
    match op {
        Operation::ListModels => Ok(Classified {
            request: Request {
                action: Action::ModelsList,
                resource: Resource::Provider {
                    name: route.name.clone(),
                    kind: route.provider_kind.to_owned(),
                },
                context: context(false),
            },
            mcp: None,
        }),
        Operation::McpSession(action) => Ok(Classified {
            request: Request {
                action,
                resource: Resource::McpServer {
                    server: route.name.clone(),
                },
                context: context(action == Action::McpNotification),
            },
            mcp: None,
        }),
        Operation::DeploymentCall(action) => {
            let (name, method) = model_in_path(route.kind, rest).unwrap_or_default();
            let (_, stream) = model_fields(body)?;
            // Gemini streams by method; OpenAI's protocol by the body's flag.
            let stream = stream || method == "streamGenerateContent";
            Ok(model_call(route, action, name.to_owned(), context(stream)))
        }
        Operation::ModelCall(action) => {
            let (model, stream) = model_fields(body)?;
            let model = model.filter(|m| !m.is_empty()).ok_or_else(|| {
                ClassifyError::Invalid("`model` is required and must be a string".into())
            })?;
            Ok(model_call(
                route,
                action,
                model.into_owned(),
                context(stream),
            ))
        }
        Operation::McpMessage => mcp(route, body, context(false)),
    }
}

/// A model call on `route`'s provider.
fn model_call(route: &Route, action: Action, name: String, context: RequestContext) -> Classified {
    Classified {
        request: Request {
            action,
            resource: Resource::Model {
                provider: route.name.clone(),
                kind: route.provider_kind.to_owned(),
                name,
            },
            context,
        },
        mcp: None,
    }
}

/// A model call's `model` (if a string) and `stream` flag. The common case is read without
/// building the whole document (an object whose `model` is a string and whose `stream`, if
/// present, is a boolean); anything else is read in full, for the precise error. The body
/// must be UTF-8 throughout: the peek skips most strings unchecked, and malformed JSON must
/// not be forwarded (fuzzing found it).
fn model_fields(body: &[u8]) -> Result<(Option<Cow<'_, str>>, bool), ClassifyError> {
    check_utf8(body)?;
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if is_object && let Ok(peek) = serde_json::from_slice::<ModelPeek<'_>>(body) {
        return Ok((peek.model, peek.stream.unwrap_or(false)));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ClassifyError::BadJson(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ClassifyError::Invalid("request body must be a JSON object".into()))?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .map(|m| Cow::Owned(m.to_owned()));
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    Ok((model, stream))
}

/// Refuses a body that is not UTF-8 throughout.
fn check_utf8(body: &[u8]) -> Result<(), ClassifyError> {
    std::str::from_utf8(body)
        .map(|_| ())
        .map_err(|e| ClassifyError::BadJson(format!("invalid UTF-8 at byte {}", e.valid_up_to())))
}

/// The fields of a model call a decision reads; everything else in the body is skipped.
#[derive(serde::Deserialize)]
struct ModelPeek<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
}

/// JSON-RPC 2.0 error codes.
pub mod jsonrpc {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const INVALID_PARAMS: i64 = -32602;
}

fn rpc_error(code: i64, message: impl Into<String>, id: Option<&Value>) -> ClassifyError {
    ClassifyError::JsonRpc {
        code,
        message: message.into(),
        id: id.cloned(),
    }
}

/// The most messages one JSON-RPC batch may carry.
pub const MAX_BATCH: usize = 256;

/// A classified JSON-RPC batch: each message with its classification or the error its answer
/// carries; or the error for the whole batch.
pub type Batch = Result<Vec<(Value, Result<Classified, ClassifyError>)>, ClassifyError>;

/// A JSON-RPC batch (a body that is a JSON array), message by message. `None` when the body
/// is not an array (one message, see [`request`]). An empty or oversized batch is an error for
/// the whole batch.
pub fn mcp_batch(route: &Route, body: &[u8]) -> Option<Batch> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return None;
    }
    let messages = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(messages)) => messages,
        Ok(_) => return None,
        Err(e) => {
            let e = rpc_error(jsonrpc::PARSE_ERROR, format!("parse error: {e}"), None);
            return Some(Err(e));
        }
    };
    if messages.is_empty() || messages.len() > MAX_BATCH {
        let e = rpc_error(
            jsonrpc::INVALID_REQUEST,
            format!(
                "a batch carries 1 to {MAX_BATCH} messages, this one {}",
                messages.len()
            ),
            None,
        );
        return Some(Err(e));
    }
    let context = RequestContext {
        route: route.prefix.clone(),
        stream: false,
        now_ms: portcullis_shared::request::now_ms(),
        environment: route.environment.clone(),
        tenant: route.tenant.clone(),
        claims: Vec::new(),
    };
    Some(Ok(messages
        .into_iter()
        .map(|m| {
            let classified = mcp_message(route, &m, context.clone());
            (m, classified)
        })
        .collect()))
}

fn mcp(route: &Route, body: &[u8], context: RequestContext) -> Result<Classified, ClassifyError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| rpc_error(jsonrpc::PARSE_ERROR, format!("parse error: {e}"), None))?;
    if v.is_array() {
        // Batches are classified message by message (see [`mcp_batch`]).
        return Err(rpc_error(
            jsonrpc::INVALID_REQUEST,
            "a JSON-RPC batch must be classified as one",
            None,
        ));
    }
    mcp_message(route, &v, context)
}

/// Classifies one JSON-RPC message.
fn mcp_message(
    route: &Route,
    v: &Value,
    context: RequestContext,
) -> Result<Classified, ClassifyError> {
    let msg = match v {
        Value::Object(m) => m,
        _ => {
            return Err(rpc_error(
                jsonrpc::INVALID_REQUEST,
                "a JSON-RPC message must be an object",
                None,
            ));
        }
    };
    let id = msg.get("id").cloned().filter(|i| !i.is_null());
    if msg.get("id").is_some_and(Value::is_null) {
        return Err(rpc_error(
            jsonrpc::INVALID_REQUEST,
            "`id` must not be null",
            None,
        ));
    }
    if msg.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(rpc_error(
            jsonrpc::INVALID_REQUEST,
            "`jsonrpc` must be \"2.0\"",
            id.as_ref(),
        ));
    }
    let server = route.name.clone();
    let Some(method) = msg.get("method") else {
        // A client's response to a server request (sampling, elicitation…).
        if id.is_some() && (msg.contains_key("result") || msg.contains_key("error")) {
            return Ok(Classified {
                request: Request {
                    action: Action::McpNotification,
                    resource: Resource::McpServer { server },
                    context,
                },
                mcp: Some(McpMessage { id, method: None }),
            });
        }
        return Err(rpc_error(
            jsonrpc::INVALID_REQUEST,
            "`method` is required",
            id.as_ref(),
        ));
    };
    let method = method.as_str().filter(|m| !m.is_empty()).ok_or_else(|| {
        rpc_error(
            jsonrpc::INVALID_REQUEST,
            "`method` must be a string",
            id.as_ref(),
        )
    })?;
    // Without an id a message is a notification, and only `notifications/…` methods are:
    // anything else would run unchecked by tool, resource or prompt policy.
    let action = match &id {
        Some(_) => Action::for_mcp_method(method),
        None if method.starts_with("notifications/") => Action::McpNotification,
        None => {
            return Err(rpc_error(
                jsonrpc::INVALID_REQUEST,
                format!("{method} is a request and needs an id; only notifications/* may omit it"),
                None,
            ));
        }
    };
    let param = |name: &str| {
        msg.get("params")
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                rpc_error(
                    jsonrpc::INVALID_PARAMS,
                    format!("{method} requires params.{name} as a string"),
                    id.as_ref(),
                )
            })
    };
    let resource = match action {
        Action::McpToolsCall => Resource::McpTool {
            server,
            tool: param("name")?,
        },
        Action::McpResourcesRead => Resource::McpResource {
            server,
            uri: param("uri")?,
        },
        Action::McpPromptsGet => Resource::McpPrompt {
            server,
            name: param("name")?,
        },
        _ => Resource::McpServer { server },
    };
    Ok(Classified {
        request: Request {
            action,
            resource,
            context,
        },
        mcp: Some(McpMessage {
            id,
            method: Some(method.to_owned()),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Upstream;

    fn route(kind: RouteKind, name: &str) -> Route {
        Route {
            prefix: "/x".into(),
            label: "/x".into(),
            kind,
            provider_kind: kind.as_str(),
            name: name.into(),
            upstream: Upstream::parse("http://127.0.0.1:1").expect("url"),
            credential: None,
            tenant: None,
            environment: None,
            max_staleness_ms: None,
            parse_body: crate::config::ParseBody::Always,
            oauth: None,
        }
    }

    #[test]
    fn azure_deployments_name_the_model_in_the_path() {
        let r = route(RouteKind::Azure, "azure");
        let path = "/openai/deployments/gpt-4o-mini/chat/completions";
        let op = operation(&r, "POST", path).expect("known");
        assert_eq!(op, Operation::DeploymentCall(Action::Chat));
        let c = request(&r, op, path, br#"{"messages":[],"stream":true}"#).expect("ok");
        assert_eq!(
            c.request.resource,
            Resource::Model {
                provider: "azure".into(),
                kind: "azure".into(),
                name: "gpt-4o-mini".into()
            }
        );
        assert!(c.request.context.stream);
        let embed = "/openai/deployments/ada/embeddings";
        assert_eq!(
            operation(&r, "POST", embed),
            Ok(Operation::DeploymentCall(Action::Embed))
        );
        assert_eq!(
            operation(&r, "POST", "/openai/v1/chat/completions"),
            Ok(Operation::ModelCall(Action::Chat))
        );
        for bad in [
            "/openai/deployments//chat/completions",
            "/openai/deployments/x/files",
        ] {
            assert!(operation(&r, "POST", bad).is_err(), "{bad}");
        }
        assert!(matches!(
            request(&r, op, path, b"[1]"),
            Err(ClassifyError::Invalid(_))
        ));
    }

    #[test]
    fn gemini_names_the_model_and_streaming_in_the_path() {
        let r = route(RouteKind::Gemini, "gemini");
        let path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";
        let op = operation(&r, "POST", path).expect("known");
        assert_eq!(op, Operation::DeploymentCall(Action::Chat));
        let c = request(&r, op, path, br#"{"contents":[]}"#).expect("ok");
        assert_eq!(
            c.request.resource,
            Resource::Model {
                provider: "gemini".into(),
                kind: "gemini".into(),
                name: "gemini-2.0-flash".into()
            }
        );
        assert!(c.request.context.stream, "streamed by its method");
        let plain = "/v1/models/gemini-2.0-flash:generateContent";
        let op = operation(&r, "POST", plain).expect("known");
        assert!(
            !request(&r, op, plain, b"{}")
                .expect("ok")
                .request
                .context
                .stream
        );
        assert_eq!(
            operation(&r, "POST", "/v1beta/models/text-embedding-004:embedContent"),
            Ok(Operation::DeploymentCall(Action::Embed))
        );
        assert_eq!(
            operation(&r, "GET", "/v1beta/models"),
            Ok(Operation::ListModels)
        );
        for bad in [
            "/v1beta/models/:generateContent",
            "/v1beta/models/a/b:generateContent",
            "/v1beta/models/x:deleteEverything",
            "/v1beta/files",
        ] {
            assert!(operation(&r, "POST", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn llm_operations_and_models() {
        let r = route(RouteKind::Openai, "openai");
        let op = operation(&r, "POST", "/v1/chat/completions").expect("known");
        let c = request(
            &r,
            op,
            "",
            br#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#,
        )
        .expect("ok");
        assert_eq!(c.request.action, Action::Chat);
        assert_eq!(c.request.resource.to_string(), "Model::\"gpt-4o-mini\"");
        assert!(c.request.context.stream);
        assert!(matches!(
            operation(&r, "POST", "/v1/files"),
            Err(ClassifyError::UnknownOperation { .. })
        ));
        assert!(matches!(
            request(&r, op, "", b"{nope"),
            Err(ClassifyError::BadJson(_))
        ));
        assert!(matches!(
            request(&r, op, "", br#"{"messages":[]}"#),
            Err(ClassifyError::Invalid(_))
        ));
        assert!(matches!(
            request(&r, op, "", br#"{"model":7}"#),
            Err(ClassifyError::Invalid(_))
        ));
        let a = route(RouteKind::Anthropic, "anthropic");
        let op = operation(&a, "POST", "/v1/messages").expect("known");
        let c = request(&a, op, "", br#"{"model":"claude-sonnet-4","max_tokens":5}"#).expect("ok");
        assert_eq!(c.request.action, Action::Chat);
        let op = operation(&a, "GET", "/v1/models").expect("known");
        assert_eq!(
            request(&a, op, "", b"")
                .expect("ok")
                .request
                .resource
                .to_string(),
            "Provider::\"anthropic\""
        );
    }

    #[test]
    fn mcp_messages() {
        let r = route(RouteKind::Mcp, "crm");
        let op = operation(&r, "POST", "").expect("post");
        let c = request(&r, op, "", br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_accounts","arguments":{}}}"#,
        )
        .expect("ok");
        assert_eq!(
            c.request.resource.to_string(),
            "McpTool::\"crm/search_accounts\""
        );
        assert_eq!(c.mcp.expect("mcp").id, Some(serde_json::json!(7)));
        let c = request(
            &r,
            op,
            "",
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .expect("ok");
        assert_eq!(c.request.action, Action::McpNotification);
        let c = request(&r, op, "", br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).expect("ok");
        assert_eq!(c.request.action, Action::McpNotification);

        let code = |body: &[u8]| match request(&r, op, "", body) {
            Err(ClassifyError::JsonRpc { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(b"{"), jsonrpc::PARSE_ERROR);
        assert_eq!(
            code(br#"{"id":1,"method":"ping"}"#),
            jsonrpc::INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1}"#),
            jsonrpc::INVALID_REQUEST
        );
        assert_eq!(
            code(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            jsonrpc::INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#),
            jsonrpc::INVALID_PARAMS
        );
        assert!(matches!(
            operation(&r, "PUT", ""),
            Err(ClassifyError::UnknownOperation { .. })
        ));
        assert!(matches!(
            operation(&r, "POST", "/x"),
            Err(ClassifyError::UnknownOperation { .. })
        ));
        // A request without an id, or with a null one, never passes as a notification.
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#),
            jsonrpc::INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"x"}}"#),
            jsonrpc::INVALID_REQUEST
        );
        let c = request(
            &r,
            op,
            "",
            br#"{"jsonrpc":"2.0","id":2,"method":"notifications/cancelled"}"#,
        )
        .expect("ok");
        assert_eq!(c.request.action, Action::McpOther);
    }

    #[test]
    fn only_canonical_paths_pass() {
        for ok in ["/openai/v1/chat/completions", "/mcp/crm", "/mcp/crm/", "/"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "/openai/../mcp/crm",
            "/mcp/crm/..",
            "/mcp/./crm",
            "/openai//v1/chat/completions",
            "/openai/%2e%2e/mcp",
            "/mcp/crm%2Fhr",
            "/mcp\\crm",
            "relative",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    fn needs_of(policies: &str) -> portcullis_shared::fast::Needs {
        let mut s = portcullis_shared::snapshot::Snapshot::empty(1);
        s.policies = vec![portcullis_shared::snapshot::PolicyFile {
            name: "p.cedar".into(),
            text: policies.into(),
        }];
        *portcullis_shared::engine::Engine::new(s)
            .expect("engine")
            .needs()
    }

    #[test]
    fn model_bodies_are_parsed_only_when_a_policy_reads_them_if_the_route_says_so() {
        use crate::config::ParseBody;
        let reads_nothing = needs_of("permit(principal, action == Action::\"chat\", resource);");
        let reads_model = needs_of(
            "permit(principal, action == Action::\"chat\", resource == Model::\"gpt-4o\");",
        );
        let reads_stream = needs_of("permit(principal, action, resource) when { context.stream };");
        let embed_only = needs_of(
            "permit(principal, action == Action::\"embed\", resource) when { resource.name like \"e*\" };",
        );
        let chat = Operation::ModelCall(Action::Chat);
        let mut r = route(RouteKind::Openai, "openai");
        // By default the body is always read: the decision record names the model.
        assert!(chat.parse_before_deciding(&r, &reads_nothing));
        r.parse_body = ParseBody::WhenPoliciesReadIt;
        assert!(!chat.parse_before_deciding(&r, &reads_nothing));
        assert!(chat.parse_before_deciding(&r, &reads_model));
        assert!(chat.parse_before_deciding(&r, &reads_stream));
        assert!(!chat.parse_before_deciding(&r, &embed_only));
        assert!(Operation::ModelCall(Action::Embed).parse_before_deciding(&r, &embed_only));
        // MCP bodies carry the method: always read.
        assert!(Operation::McpMessage.parse_before_deciding(&r, &reads_nothing));
        let c = unread_model_call(&r, Action::Chat);
        assert_eq!(c.request.context.route, "/x");
        assert!(matches!(c.request.resource, Resource::Model { ref name, .. } if name.is_empty()));
    }
}
