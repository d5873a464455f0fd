//! Client calls through an edge node, as the SDKs would make them.

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

/// An HTTP client with short timeouts and no connection reuse surprises.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(4)
        .build()
        .unwrap_or_default()
}

/// A response: status and JSON (or the text as a JSON string).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    async fn from(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self { status, body }
    }
}

/// `POST /openai/v1/chat/completions`.
pub async fn chat(
    http: &reqwest::Client,
    edge: SocketAddr,
    token: &str,
    model: &str,
) -> anyhow::Result<Reply> {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hello"}]});
    let resp = http
        .post(format!("http://{edge}/openai/v1/chat/completions"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    Ok(Reply::from(resp).await)
}

/// `POST /anthropic/v1/messages` with the token in `x-api-key`, as the Anthropic SDK sends it.
pub async fn messages(
    http: &reqwest::Client,
    edge: SocketAddr,
    token: &str,
    model: &str,
) -> anyhow::Result<Reply> {
    let body = json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]});
    let resp = http
        .post(format!("http://{edge}/anthropic/v1/messages"))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await?;
    Ok(Reply::from(resp).await)
}

/// An MCP `tools/call` on the demo CRM server.
pub async fn call_tool(
    http: &reqwest::Client,
    edge: SocketAddr,
    token: &str,
    tool: &str,
    id: i64,
) -> anyhow::Result<Reply> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}});
    let resp = http
        .post(format!("http://{edge}/mcp/crm"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await?;
    Ok(Reply::from(resp).await)
}

/// Raw request with a body and headers.
pub async fn raw(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<Reply> {
    let mut req = http.request(method, url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Ok(Reply::from(req.send().await?).await)
}

/// `GET` returning JSON.
pub async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Reply> {
    Ok(Reply::from(http.get(url).send().await?).await)
}

/// Sends raw bytes over a fresh TCP connection and reads the response until the server closes
/// (send `Connection: close`). Returns status, the header block and the body (not de-chunked).
pub async fn raw_tcp(addr: SocketAddr, request: &[u8]) -> anyhow::Result<(u16, String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(request).await?;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    if read.is_err() {
        anyhow::bail!("no complete response within 10 s");
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_owned(), body.to_owned()))
}
