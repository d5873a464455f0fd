//! The properties the fuzz targets (`dataplane/fuzz`) check, shared with the regression test
//! that replays the committed corpus on every `cargo test`. Each function panics when a
//! property does not hold, which is what a fuzzer reports.

use crate::classify::{self, ClassifyError, Operation, jsonrpc};
use crate::config::{ParseBody, Route, RouteKind, Upstream};
use crate::respond::{Kind, Refusal};
use portcullis_shared::request::{Action, Resource};
use serde_json::Value;

fn route(kind: RouteKind) -> Route {
    Route {
        prefix: "/fuzz".into(),
        label: "/fuzz".into(),
        kind,
        provider_kind: kind.as_str(),
        name: "fuzz".into(),
        upstream: Upstream::parse("http://127.0.0.1:1").expect("a valid upstream"),
        credential: None,
        tenant: None,
        environment: None,
        max_staleness_ms: None,
        parse_body: ParseBody::Always,
        oauth: None,
    }
}

/// A model call's body (OpenAI and Anthropic routes; chat, embeddings, responses):
/// classification never panics, and succeeds exactly when a full JSON parse finds an object
/// whose `model` is a non-empty string; it then names that model and the `stream` flag the
/// full parse reads. So the fast path (a peek at two fields) and the full parse agree. A
/// refusal renders as a well-formed error in the route's protocol.
///
/// One exception: a document nested deeper than serde_json builds a `Value` for (128) is
/// still skipped by the peek, which reads only `model` and `stream`; there either answer is
/// right, as long as nothing panics.
pub fn llm_body(data: &[u8]) {
    let full = match serde_json::from_slice::<Value>(data) {
        Err(e) if e.to_string().contains("recursion limit exceeded") => {
            for kind in [RouteKind::Openai, RouteKind::Anthropic] {
                let _ =
                    classify::request(&route(kind), Operation::ModelCall(Action::Chat), "", data);
            }
            return;
        }
        parsed => parsed.ok(),
    };
    let expected = full.as_ref().and_then(Value::as_object).and_then(|o| {
        let model = o.get("model")?.as_str().filter(|m| !m.is_empty())?;
        let stream = o.get("stream").and_then(Value::as_bool).unwrap_or(false);
        Some((model.to_owned(), stream))
    });
    for kind in [RouteKind::Openai, RouteKind::Anthropic] {
        let route = route(kind);
        for action in [Action::Chat, Action::Embed, Action::Responses] {
            let result = classify::request(&route, Operation::ModelCall(action), "", data);
            match (result, &expected) {
                (Ok(c), Some((model, stream))) => {
                    assert_eq!(c.request.action, action);
                    assert_eq!(c.request.context.stream, *stream, "{data:?}");
                    match &c.request.resource {
                        Resource::Model { name, provider, .. } => {
                            assert_eq!(name, model, "{data:?}");
                            assert_eq!(provider, "fuzz");
                        }
                        other => panic!("a model call classified as {other:?}"),
                    }
                }
                (Err(e @ (ClassifyError::BadJson(_) | ClassifyError::Invalid(_))), None) => {
                    let body = Refusal::new(Kind::BadRequest, e.to_string()).body(Some(kind), None);
                    let v: Value = serde_json::from_slice(&body).expect("the refusal is JSON");
                    assert!(v["error"]["message"].is_string(), "{v}");
                }
                (result, expected) => {
                    panic!("{data:?}: classified as {result:?}, a full parse expects {expected:?}")
                }
            }
        }
    }
    tools(data);
}

/// The tools of a model call: naming them never panics; stripping every tool named leaves a
/// body that names none, and stripping one leaves exactly the others.
fn tools(data: &[u8]) {
    use crate::tools::{Dialect, offered, strip};
    for dialect in [Dialect::Messages, Dialect::Gemini] {
        let Ok(names) = offered(dialect, data) else {
            continue;
        };
        if names.is_empty() {
            continue;
        }
        let none = strip(dialect, data, &names).expect("a body whose tools were named strips");
        assert_eq!(
            offered(dialect, &none),
            Ok(Vec::new()),
            "{dialect:?} {data:?}: tools left after stripping them all"
        );
        let first = names[0].clone();
        let rest = strip(dialect, data, std::slice::from_ref(&first)).expect("strips");
        let expected: Vec<String> = names.iter().filter(|n| **n != first).cloned().collect();
        assert_eq!(
            offered(dialect, &rest),
            Ok(expected),
            "{dialect:?} {data:?}: stripping {first} changed the others"
        );
    }
}

/// An MCP message: classification never panics and agrees with the JSON-RPC 2.0 rules read
/// from a full parse. A request (with an id) maps to the action its method names, and
/// `tools/call`, `resources/read` and `prompts/get` to the tool, resource or prompt their
/// params name; a message without an id is allowed only as a `notifications/…` method (or a
/// client's response). Every refusal is a JSON-RPC error with a standard code and the
/// message's own id, and renders as a well-formed JSON-RPC error response carrying that id.
pub fn jsonrpc(data: &[u8]) {
    let route = route(RouteKind::Mcp);
    let result = classify::request(&route, Operation::McpMessage, "", data);
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    one_message(data, parsed.as_ref(), result);
    // A batch: each of its messages is classified as it would be alone.
    if let Some(Ok(items)) = classify::mcp_batch(&route, data) {
        assert!(parsed.as_ref().is_some_and(Value::is_array), "{data:?}");
        for (msg, result) in items {
            one_message(data, Some(&msg), result);
        }
    }
}

/// The properties of one message's classification (`parsed`: the message, if it is JSON).
fn one_message(
    data: &[u8],
    parsed: Option<&Value>,
    result: Result<classify::Classified, ClassifyError>,
) {
    let msg = parsed.and_then(Value::as_object);
    let id = msg.and_then(|m| m.get("id")).filter(|i| !i.is_null());
    match result {
        Ok(c) => {
            let msg = msg.unwrap_or_else(|| panic!("{data:?} accepted without being an object"));
            assert_eq!(msg.get("jsonrpc").and_then(Value::as_str), Some("2.0"));
            let mcp = c.mcp.expect("an MCP message keeps its id and method");
            assert_eq!(mcp.id.as_ref(), id, "{data:?}");
            match msg.get("method").and_then(Value::as_str) {
                Some(method) => {
                    assert_eq!(mcp.method.as_deref(), Some(method));
                    let expected = match id {
                        Some(_) => Action::for_mcp_method(method),
                        None => {
                            assert!(method.starts_with("notifications/"), "{data:?}");
                            Action::McpNotification
                        }
                    };
                    assert_eq!(c.request.action, expected, "{data:?}");
                    let param = |name: &str| {
                        msg.get("params")
                            .and_then(|p| p.get(name))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    };
                    let named = match &c.request.resource {
                        Resource::McpTool { tool, .. } => {
                            Some((Action::McpToolsCall, tool, "name"))
                        }
                        Resource::McpResource { uri, .. } => {
                            Some((Action::McpResourcesRead, uri, "uri"))
                        }
                        Resource::McpPrompt { name, .. } => {
                            Some((Action::McpPromptsGet, name, "name"))
                        }
                        Resource::McpServer { .. } => None,
                        other => panic!("an MCP message classified as {other:?}"),
                    };
                    if let Some((action, value, field)) = named {
                        assert_eq!(c.request.action, action);
                        assert_eq!(param(field).as_ref(), Some(value), "{data:?}");
                    }
                }
                None => {
                    assert!(id.is_some(), "{data:?}: a response without an id accepted");
                    assert!(msg.contains_key("result") || msg.contains_key("error"));
                    assert_eq!(c.request.action, Action::McpNotification);
                }
            }
        }
        Err(ClassifyError::JsonRpc {
            code,
            message,
            id: error_id,
        }) => {
            assert!(
                [
                    jsonrpc::PARSE_ERROR,
                    jsonrpc::INVALID_REQUEST,
                    jsonrpc::INVALID_PARAMS
                ]
                .contains(&code),
                "{data:?}: code {code}"
            );
            if parsed.is_none() {
                assert_eq!(code, jsonrpc::PARSE_ERROR);
            }
            // The error carries the message's id whenever the message had one.
            assert_eq!(error_id.as_ref(), id, "{data:?}");
            let body = Refusal::new(Kind::BadRequest, message)
                .with_jsonrpc_code(code)
                .body(Some(RouteKind::Mcp), error_id.as_ref());
            let v: Value = serde_json::from_slice(&body).expect("the refusal is JSON");
            assert_eq!(v["jsonrpc"], "2.0");
            assert_eq!(v["error"]["code"], code);
            assert_eq!(v["id"], error_id.unwrap_or(Value::Null));
        }
        Err(other) => panic!("{data:?}: an MCP message refused as {other:?}"),
    }
}
