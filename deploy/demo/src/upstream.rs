//! Demo upstreams behind the edge, all on one listener:
//!
//! - an OpenAI-shaped API: `POST /v1/chat/completions` (JSON or SSE when `stream: true`),
//!   `POST /v1/responses`, and Azure OpenAI's
//!   `POST /openai/deployments/{deployment}/chat/completions` (key in `api-key`),
//!   `POST /v1/embeddings`, `GET /v1/models`;
//! - an Anthropic-shaped API: `POST /v1/messages` (JSON or SSE);
//! - a Gemini-shaped API: `POST /v1beta/models/{model}:generateContent` and
//!   `:streamGenerateContent` (SSE);
//! - an MCP server (streamable HTTP; JSON responses, or an event stream for a client whose
//!   `Accept` lists `text/event-stream` first; JSON-RPC batches too) at `/mcp`: a small CRM with the tools
//!   `search_accounts`, `update_opportunity` and `export_all_contacts`, one resource and one
//!   prompt; `GET /mcp` opens the session's (quiet) server-to-client event stream;
//! - `GET /_demo/requests`: the headers of the last requests received, so tests can check what
//!   the edge forwarded (for example, that a client's token never arrives here).
//!
//! Optionally each API requires the credential the edge is supposed to inject
//! (`--openai-key`, `--anthropic-key`), answering 401 otherwise, like the real services.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Demo upstream settings.
#[derive(Debug, Clone, Default)]
pub struct UpstreamOptions {
    /// If set, `/v1/chat/completions`, `/v1/embeddings` and `/v1/models` require
    /// `Authorization: Bearer <key>`.
    pub openai_key: Option<String>,
    /// If set, `/v1/messages` requires `x-api-key: <key>`.
    pub anthropic_key: Option<String>,
}

#[derive(Debug, Clone)]
struct AppState {
    options: Arc<UpstreamOptions>,
    seen: Arc<Mutex<VecDeque<Value>>>,
}

/// The demo upstream app.
pub fn router(options: UpstreamOptions) -> Router {
    let state = AppState {
        options: Arc::new(options),
        seen: Arc::new(Mutex::new(VecDeque::new())),
    };
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
        )
        .route("/v1/models", get(models))
        .route("/v1/messages", post(messages))
        .route("/v1beta/models/{call}", post(gemini))
        .route("/mcp", post(mcp).get(mcp_stream).delete(mcp_end))
        .route("/_demo/requests", get(seen))
        .with_state(state)
}

/// Serves `router(options)` on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: UpstreamOptions,
) -> std::io::Result<()> {
    axum::serve(listener, router(options)).await
}

fn remember(state: &AppState, req: &Request) {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("<binary>"))))
        .collect();
    if let Ok(mut seen) = state.seen.lock() {
        seen.push_back(
            json!({"method": req.method().as_str(), "path": req.uri().path(), "headers": headers}),
        );
        while seen.len() > 50 {
            seen.pop_front();
        }
    }
}

async fn seen(State(state): State<AppState>) -> Response {
    let list: Vec<Value> = state
        .seen
        .lock()
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    axum::Json(json!({ "requests": list })).into_response()
}

fn openai_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})),
    )
        .into_response()
}

fn check_bearer(headers: &HeaderMap, key: &Option<String>) -> bool {
    match key {
        None => true,
        Some(k) => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {k}")),
    }
}

async fn read_json(req: Request) -> Result<(HeaderMap, Value), Response> {
    let headers = req.headers().clone();
    let bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .map_err(|_| openai_error(StatusCode::BAD_REQUEST, "cannot read body"))?;
    let v = serde_json::from_slice(&bytes)
        .map_err(|_| openai_error(StatusCode::BAD_REQUEST, "body is not JSON"))?;
    Ok((headers, v))
}

fn sse(events: Vec<String>) -> Response {
    let stream = futures::stream::iter(events).then(|e| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, std::convert::Infallible>(e)
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Gemini's `models/{model}:generateContent` and `:streamGenerateContent` (SSE with
/// `alt=sse`).
async fn gemini(
    State(state): State<AppState>,
    axum::extract::Path(call): axum::extract::Path<String>,
    req: Request,
) -> Response {
    remember(&state, &req);
    let (model, method) = call.rsplit_once(':').unwrap_or((call.as_str(), ""));
    let text = format!("Hello from the demo Gemini upstream ({model}).");
    let chunk = |t: &str| {
        json!({
            "candidates": [{"content": {"parts": [{"text": t}], "role": "model"}, "index": 0}],
            "modelVersion": model
        })
    };
    match method {
        "generateContent" => axum::Json(chunk(&text)).into_response(),
        "streamGenerateContent" => sse(text
            .split_inclusive(' ')
            .map(|piece| format!("data: {}\r\n\r\n", chunk(piece)))
            .collect()),
        other => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": 404, "message": format!("unknown method {other}"), "status": "NOT_FOUND"}})),
        )
            .into_response(),
    }
}

/// Azure OpenAI's deployment path: the deployment is the model; the key comes as `api-key`.
async fn azure_chat(
    State(state): State<AppState>,
    axum::extract::Path(deployment): axum::extract::Path<String>,
    req: Request,
) -> Response {
    remember(&state, &req);
    let (headers, mut body) = match read_json(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let key = headers.get("api-key").and_then(|v| v.to_str().ok());
    if state
        .options
        .openai_key
        .as_deref()
        .is_some_and(|k| key != Some(k))
    {
        return openai_error(
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key.",
        );
    }
    body["model"] = json!(deployment);
    chat_answer(&body)
}

async fn chat_completions(State(state): State<AppState>, req: Request) -> Response {
    remember(&state, &req);
    let (headers, body) = match read_json(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !check_bearer(&headers, &state.options.openai_key) {
        return openai_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    chat_answer(&body)
}

/// The tools a request offered, as the answer tells them (` Tools offered: a, b.`), so
/// clients and tests can see what reached the model.
fn tools_offered(body: &Value) -> String {
    let names: Vec<&str> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            t["name"]
                .as_str()
                .or_else(|| t["function"]["name"].as_str())
                .or_else(|| t["type"].as_str())
        })
        .collect();
    if names.is_empty() {
        return String::new();
    }
    format!(" Tools offered: {}.", names.join(", "))
}

/// The chat answer (JSON, or SSE when `stream` is set) for a request body.
fn chat_answer(body: &Value) -> Response {
    let model = body["model"].as_str().unwrap_or("unknown").to_owned();
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_owned();
    let text = format!(
        "Hello from the demo OpenAI upstream ({model}). You said: {prompt}{}",
        tools_offered(body)
    );
    if body["stream"].as_bool() == Some(true) {
        let mut events: Vec<String> = text
            .split_inclusive(' ')
            .map(|piece| {
                let chunk = json!({
                    "id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": 0, "model": model,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]
                });
                format!("data: {chunk}\n\n")
            })
            .collect();
        let done = json!({
            "id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]
        });
        events.push(format!("data: {done}\n\n"));
        events.push("data: [DONE]\n\n".into());
        return sse(events);
    }
    axum::Json(json!({
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17}
    }))
    .into_response()
}

async fn responses(State(state): State<AppState>, req: Request) -> Response {
    remember(&state, &req);
    let (headers, body) = match read_json(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !check_bearer(&headers, &state.options.openai_key) {
        return openai_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    let model = body["model"].as_str().unwrap_or("unknown");
    let text = format!("Hello from the demo OpenAI upstream ({model}), via the Responses API.");
    axum::Json(json!({
        "id": "resp_demo",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "model": model,
        "output": [{
            "type": "message", "id": "msg_demo", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]
        }],
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": {"input_tokens": 5, "output_tokens": 12, "total_tokens": 17}
    }))
    .into_response()
}

async fn embeddings(State(state): State<AppState>, req: Request) -> Response {
    remember(&state, &req);
    let (headers, body) = match read_json(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !check_bearer(&headers, &state.options.openai_key) {
        return openai_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    axum::Json(json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
        "model": body["model"],
        "usage": {"prompt_tokens": 3, "total_tokens": 3}
    }))
    .into_response()
}

async fn models(State(state): State<AppState>, req: Request) -> Response {
    remember(&state, &req);
    if !check_bearer(req.headers(), &state.options.openai_key) {
        return openai_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    let data: Vec<Value> = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "demo"}))
        .collect();
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}

async fn messages(State(state): State<AppState>, req: Request) -> Response {
    remember(&state, &req);
    let (headers, body) = match read_json(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(key) = &state.options.anthropic_key
        && headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(key.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})),
        )
            .into_response();
    }
    let model = body["model"].as_str().unwrap_or("unknown").to_owned();
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let text = format!(
        "Hello from the demo Anthropic upstream ({model}). You said: {prompt}{}",
        tools_offered(&body)
    );
    if body["stream"].as_bool() == Some(true) {
        let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
        let mut events = vec![
            event(
                "message_start",
                json!({"type": "message_start", "message": {
                "id": "msg_demo", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
        ];
        // The text a word at a time, as a model streams it.
        events.extend(text.split_inclusive(' ').map(|piece| {
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            )
        }));
        events.extend([
            event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            event(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 9}}),
            ),
            event("message_stop", json!({"type": "message_stop"})),
        ]);
        return sse(events);
    }
    axum::Json(json!({
        "id": "msg_demo", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 5, "output_tokens": 9}
    }))
    .into_response()
}

fn tools() -> Value {
    json!([
        {"name": "search_accounts", "description": "Search CRM accounts by name.",
         "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}},
        {"name": "update_opportunity", "description": "Change an opportunity's stage.",
         "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}, "stage": {"type": "string"}}, "required": ["id", "stage"]}},
        {"name": "export_all_contacts", "description": "Export every contact as CSV.",
         "inputSchema": {"type": "object", "properties": {}}}
    ])
}

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

async fn mcp(State(state): State<AppState>, req: Request) -> Response {
    remember(&state, &req);
    let (headers, body) = match read_json(req).await {
        Ok(x) => x,
        Err(_) => {
            return axum::Json(rpc_error(&Value::Null, -32700, "parse error")).into_response();
        }
    };
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // One message, or a batch of them (JSON-RPC 2.0; MCP revision 2025-03-26).
    let batch = body.is_array();
    let messages = match body {
        Value::Array(messages) => messages,
        one => vec![one],
    };
    let initialize = messages.iter().any(|m| m["method"] == "initialize");
    let replies: Vec<Value> = messages.iter().filter_map(answer).collect();
    if replies.is_empty() {
        // Notifications and client responses only.
        return StatusCode::ACCEPTED.into_response();
    }
    // A client that prefers an event stream (lists it first in Accept) gets the answers as
    // one, an event each.
    let prefers_sse = accept
        .split(',')
        .next()
        .is_some_and(|first| first.trim().starts_with("text/event-stream"));
    let mut resp = if prefers_sse {
        sse(replies
            .iter()
            .map(|r| format!("event: message\ndata: {r}\n\n"))
            .collect())
    } else if batch {
        axum::Json(Value::Array(replies)).into_response()
    } else {
        axum::Json(replies.into_iter().next().unwrap_or_default()).into_response()
    };
    if initialize {
        resp.headers_mut()
            .insert("mcp-session-id", HeaderValue::from_static("demo-session-1"));
    }
    resp
}

/// The answer to one JSON-RPC message; `None` for notifications and client responses.
fn answer(msg: &Value) -> Option<Value> {
    let id = msg.get("id").filter(|i| !i.is_null())?.clone();
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        // A client's response to a server request: nothing to answer.
        return None;
    };
    let params = msg.get("params").cloned().unwrap_or(json!({}));
    Some(match method {
        "initialize" => rpc_result(
            &id,
            json!({
                "protocolVersion": params.get("protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
                "capabilities": {"tools": {"listChanged": true}, "resources": {}, "prompts": {}},
                "serverInfo": {"name": "demo-crm", "version": "1.0.0"}
            }),
        ),
        "ping" => rpc_result(&id, json!({})),
        "tools/list" => rpc_result(&id, json!({"tools": tools()})),
        "tools/call" => {
            let name = params["name"].as_str().unwrap_or("");
            let text = match name {
                "search_accounts" => format!(
                    "Found 2 accounts matching {:?}: Acme Corp, Acme Labs",
                    params["arguments"]["query"].as_str().unwrap_or("")
                ),
                "update_opportunity" => "Opportunity updated.".to_owned(),
                "export_all_contacts" => "name,email\nAna,ana@acme.example\n".to_owned(),
                other => return Some(rpc_error(&id, -32602, &format!("unknown tool {other}"))),
            };
            rpc_result(
                &id,
                json!({"content": [{"type": "text", "text": text}], "isError": false}),
            )
        }
        "resources/list" => rpc_result(
            &id,
            json!({"resources": [{"uri": "crm://pipeline/summary", "name": "Pipeline summary", "mimeType": "text/plain"}]}),
        ),
        "resources/read" => rpc_result(
            &id,
            json!({"contents": [{"uri": params["uri"], "mimeType": "text/plain", "text": "Q3 pipeline: 12 open deals."}]}),
        ),
        "prompts/list" => rpc_result(
            &id,
            json!({"prompts": [{"name": "account_brief", "description": "Brief on an account"}]}),
        ),
        "prompts/get" => rpc_result(
            &id,
            json!({"messages": [{"role": "user", "content": {"type": "text", "text": "Summarise the account."}}]}),
        ),
        other => rpc_error(&id, -32601, &format!("method not found: {other}")),
    })
}

/// The session's server-to-client stream (`GET`): this server sends no requests of its own,
/// so the stream carries a comment when it opens and one every 15 s, and ends after 30
/// minutes (clients open it again).
async fn mcp_stream(State(state): State<AppState>, req: Request) -> Response {
    remember(&state, &req);
    let accepts_sse = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if !accepts_sse {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let ticks = futures::stream::iter(0..120).then(|i| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
        Ok::<_, std::convert::Infallible>(if i == 0 {
            ": open\n\n"
        } else {
            ": keep-alive\n\n"
        })
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(ticks))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn mcp_end(State(state): State<AppState>, req: Request) -> Response {
    remember(&state, &req);
    StatusCode::OK.into_response()
}

/// Command-line settings of the demo upstream binary.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "portcullis-demo-upstream",
    about = "Demo LLM APIs and MCP server for Portcullis"
)]
pub struct Cli {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Require this OpenAI key (as `Authorization: Bearer`).
    #[arg(long)]
    pub openai_key: Option<String>,
    /// Require this Anthropic key (as `x-api-key`).
    #[arg(long)]
    pub anthropic_key: Option<String>,
    /// Write the bound address here once listening.
    #[arg(long)]
    pub ready_file: Option<std::path::PathBuf>,
}

/// Parses `args` (the first is the program name) and runs until killed.
pub fn main_from<I, T>(args: I) -> std::process::ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::Parser;
    main_with(Cli::parse_from(args))
}
/// Runs the demo upstream until killed.
pub fn main_with(cli: Cli) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(cli.listen).await?;
        let addr = listener.local_addr()?;
        eprintln!("demo upstream listening on http://{addr}");
        if let Some(path) = &cli.ready_file {
            std::fs::write(path, addr.to_string())?;
        }
        serve(
            listener,
            UpstreamOptions {
                openai_key: cli.openai_key,
                anthropic_key: cli.anthropic_key,
            },
        )
        .await?;
        Ok(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
