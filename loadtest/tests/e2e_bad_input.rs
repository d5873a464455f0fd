//! Bad tokens, oversized and malformed bodies, and SCIM calls without the right token: each is
//! refused in the client's own format, and nothing crashes.

use jsonwebtoken::Algorithm;
use portcullis_demo::issuer::DemoIssuer;
use portcullis_demo::scim::ScimClient;
use portcullis_loadtest::cluster::ISSUER;
use portcullis_loadtest::http::{chat, raw, raw_tcp};
use portcullis_loadtest::{Cluster, ClusterOptions};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const LIMIT: usize = 64 * 1024;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_in_the_clients_format_and_nothing_crashes() -> anyhow::Result<()> {
    let mut c = Cluster::start(ClusterOptions {
        nodes: 1,
        max_body_bytes: LIMIT,
        ..Default::default()
    })
    .await?;
    let edge = c.nodes[0].proxy;
    let http = c.http.clone();
    let alice = "alice@example.com";

    // --- tokens ---------------------------------------------------------------------------
    let good = c.issuer.claims(alice, 600);
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 3600);
    expired["iat"] = json!(now() - 7200);
    expired["nbf"] = json!(now() - 7200);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("another-api");
    let impostor = DemoIssuer::generate(ISSUER, "portcullis", false)?;
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(good.to_string())
        )
    };
    let mut unverified = good.clone();
    unverified["email_verified"] = json!(false);
    let bad_tokens = [
        ("forged", impostor.mint(alice, 600)),
        (
            "unverified email",
            c.issuer.sign(Algorithm::ES256, &unverified),
        ),
        ("expired", c.issuer.sign(Algorithm::ES256, &expired)),
        (
            "wrong audience",
            c.issuer.sign(Algorithm::ES256, &wrong_aud),
        ),
        ("alg none", unsigned),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, token) in &bad_tokens {
        let r = chat(&http, edge, token, "gpt-4o-mini").await?;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_eq!(r.body["error"]["type"], "authentication_error", "{what}");
    }
    let no_token = raw(
        &http,
        Method::POST,
        &format!("http://{edge}/openai/v1/chat/completions"),
        &[("content-type", "application/json")],
        br#"{"model":"gpt-4o-mini","messages":[]}"#.to_vec(),
    )
    .await?;
    assert_eq!(no_token.status, 401);
    let resp = http
        .post(format!("http://{edge}/mcp/crm"))
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    let body: Value = resp.json().await?;
    assert_eq!(body["jsonrpc"], "2.0");

    // Both pinned algorithms work; RS256 here, ES256 everywhere else.
    let rs = c.issuer.sign(Algorithm::RS256, &good);
    assert_eq!(chat(&http, edge, &rs, "gpt-4o-mini").await?.status, 200);
    let token = c.token(alice);
    let bearer = format!("Bearer {token}");

    // --- bodies ---------------------------------------------------------------------------
    let big = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(LIMIT)
    );
    let r = raw(
        &http,
        Method::POST,
        &format!("http://{edge}/openai/v1/chat/completions"),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        big.clone().into_bytes(),
    )
    .await?;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "request_too_large");

    // The same without a Content-Length (chunked): caught while reading.
    let mut chunked = format!(
        "POST /anthropic/v1/messages HTTP/1.1\r\nhost: edge\r\nx-api-key: {token}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for piece in big.as_bytes().chunks(8192) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, _, body) = raw_tcp(edge, &chunked).await?;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("request_too_large"), "{body}");

    let malformed = [
        (
            "/openai/v1/chat/completions",
            "authorization",
            r#"{"model": "gpt-4o-mini", "#,
        ),
        ("/anthropic/v1/messages", "x-api-key", r#"[1, 2"#),
        (
            "/mcp/crm",
            "authorization",
            r#"{"jsonrpc": "2.0", "id": 3, "#,
        ),
    ];
    for (path, header, body) in malformed {
        let value = if header == "authorization" {
            bearer.clone()
        } else {
            token.clone()
        };
        let r = raw(
            &http,
            Method::POST,
            &format!("http://{edge}{path}"),
            &[(header, &value), ("content-type", "application/json")],
            body.as_bytes().to_vec(),
        )
        .await?;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        match path {
            "/openai/v1/chat/completions" => {
                assert_eq!(r.body["error"]["type"], "invalid_request_error")
            }
            "/anthropic/v1/messages" => {
                assert_eq!(r.body["type"], "error");
                assert_eq!(r.body["error"]["type"], "invalid_request_error");
            }
            _ => {
                assert_eq!(r.body["error"]["code"], -32700, "{}", r.body);
                assert_eq!(r.body["id"], Value::Null);
            }
        }
    }
    // JSON-RPC without jsonrpc, without method; a missing model; an unknown MCP method.
    let mcp = |body: &'static str| {
        let http = http.clone();
        let bearer = bearer.clone();
        async move {
            raw(
                &http,
                Method::POST,
                &format!("http://{edge}/mcp/crm"),
                &[
                    ("authorization", &bearer),
                    ("content-type", "application/json"),
                ],
                body.as_bytes().to_vec(),
            )
            .await
        }
    };
    let r = mcp(r#"{"id":4,"method":"tools/list"}"#).await?;
    assert_eq!(
        (
            r.status,
            r.body["error"]["code"].as_i64(),
            r.body["id"].as_i64()
        ),
        (400, Some(-32600), Some(4))
    );
    let r = mcp(r#"{"jsonrpc":"2.0","id":5}"#).await?;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32600))
    );
    let r = mcp(r#"{"jsonrpc":"2.0","id":6,"method":"sampling/teleport"}"#).await?;
    assert_eq!(
        (
            r.status,
            r.body["error"]["code"].as_i64(),
            r.body["id"].as_i64()
        ),
        (403, Some(-32003), Some(6))
    );
    let r = raw(
        &http,
        Method::POST,
        &format!("http://{edge}/openai/v1/chat/completions"),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        br#"{"messages":[]}"#.to_vec(),
    )
    .await?;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("model")
    );
    // A request without an id (or with a null one) cannot pass as a notification.
    let r =
        mcp(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"update_opportunity"}}"#)
            .await?;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{}",
        r.body
    );
    let r = mcp(r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"update_opportunity"}}"#).await?;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{}",
        r.body
    );
    // Paths that could mean something else upstream are refused before routing.
    for path in [
        "/mcp/crm/../crm",
        "/mcp/crm/%2e%2e/other",
        "/openai//v1/chat/completions",
        "/mcp/crm/extra",
    ] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: edge\r\nauthorization: {bearer}\r\ncontent-type: application/json\r\ncontent-length: 40\r\nconnection: close\r\n\r\n{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}}"
        );
        let (status, _, body) = raw_tcp(edge, req.as_bytes()).await?;
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
    }
    // Unknown operations and routes.
    let r = raw(
        &http,
        Method::POST,
        &format!("http://{edge}/openai/v1/files"),
        &[("authorization", &bearer)],
        vec![],
    )
    .await?;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "unknown_operation");
    let r = raw(
        &http,
        Method::GET,
        &format!("http://{edge}/nowhere"),
        &[],
        vec![],
    )
    .await?;
    assert_eq!(r.status, 404);

    // --- SCIM -----------------------------------------------------------------------------
    let scim_base = format!("http://{}/scim/v2", c.cp_addrs.scim);
    let scim_error = |r: &portcullis_loadtest::http::Reply, status: &str| {
        assert_eq!(
            r.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{}",
            r.body
        );
        assert_eq!(r.body["status"], status, "{}", r.body);
    };
    let r = raw(
        &http,
        Method::GET,
        &format!("{scim_base}/demo/Users"),
        &[],
        vec![],
    )
    .await?;
    assert_eq!(r.status, 401);
    scim_error(&r, "401");
    let other = ScimClient::new(format!("{scim_base}/demo"), &c.other_scim_token);
    let (status, body) = other.call(Method::GET, "/Users", None).await?;
    assert_eq!(
        status, 401,
        "another source's token never opens this source: {body}"
    );
    let demo_on_other = ScimClient::new(format!("{scim_base}/other"), &c.scim_token);
    let (status, _) = demo_on_other.call(Method::GET, "/Users", None).await?;
    assert_eq!(status, 401);
    let r = raw(
        &http,
        Method::POST,
        &format!("{scim_base}/demo/Users"),
        &[
            ("authorization", &format!("Bearer {}", c.scim_token)),
            ("content-type", "application/scim+json"),
        ],
        b"{not json".to_vec(),
    )
    .await?;
    assert_eq!(r.status, 400);
    scim_error(&r, "400");
    assert_eq!(r.body["scimType"], "invalidSyntax");
    let (status, body) = c
        .scim()
        .call(
            Method::POST,
            "/Users",
            Some(json!({"userName": "alice@example.com"})),
        )
        .await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["scimType"], "uniqueness");

    // --- nothing crashed ------------------------------------------------------------------
    assert!(
        c.cp.as_mut().is_some_and(|p| p.is_running()),
        "control plane crashed"
    );
    assert!(
        c.nodes[0].proc.as_mut().is_some_and(|p| p.is_running()),
        "node crashed"
    );
    assert_eq!(
        chat(&http, edge, &c.token(alice), "gpt-4o-mini")
            .await?
            .status,
        200
    );
    Ok(())
}

/// Reads one HTTP response from `stream` until the server closes it (or 10 s pass).
async fn read_response(mut stream: tokio::net::tcp::OwnedReadHalf) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Reads one response with a `content-length` from a kept-alive connection.
async fn read_one(stream: &mut tokio::net::TcpStream) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                return Ok(text);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await??;
        anyhow::ensure!(n > 0, "closed after {} bytes: {text}", out.len());
        out.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_and_bodies_time_out_and_invalid_utf8_is_refused() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncWriteExt;
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        node_limits: Some("body_read_secs = 1\nheader_read_secs = 1".into()),
        ..Default::default()
    })
    .await?;
    let edge = c.nodes[0].proxy;
    let bearer = format!("Bearer {}", c.token("alice@example.com"));

    // Headers trickled a byte at a time (they would take 10 s): the connection is closed
    // once the second after the first byte is up, with nothing answered (there is no request
    // yet to answer).
    let stream = tokio::net::TcpStream::connect(edge).await?;
    let (read, mut write) = stream.into_split();
    let started = std::time::Instant::now();
    write
        .write_all(b"GET /openai/v1/models HTTP/1.1\r\nhost: edge\r\n")
        .await?;
    let sent_all = Arc::new(AtomicBool::new(false));
    let trickle = tokio::spawn({
        let sent_all = sent_all.clone();
        async move {
            for b in b"x-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
                if write.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            sent_all.store(true, Ordering::SeqCst);
        }
    });
    let response = read_response(read).await?;
    let closed_after = started.elapsed();
    trickle.abort();
    assert_eq!(response, "", "nothing is answered");
    assert!(
        !sent_all.load(Ordering::SeqCst),
        "closed {closed_after:?} after the first byte, yet the header got to its end"
    );

    // The clock starts at a request's first byte: a kept-alive connection idle for longer
    // than the deadline still serves its next request.
    let mut stream = tokio::net::TcpStream::connect(edge).await?;
    let request =
        format!("GET /openai/v1/models HTTP/1.1\r\nhost: edge\r\nauthorization: {bearer}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let first = read_one(&mut stream).await?;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(request.as_bytes()).await?;
    let second = read_one(&mut stream).await?;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");

    // A body trickled a byte at a time: 408 in the client's format once the second is up.
    for (path, body) in [
        (
            "/openai/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[]}"#,
        ),
        ("/mcp/crm", r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
    ] {
        let stream = tokio::net::TcpStream::connect(edge).await?;
        let (read, mut write) = stream.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: edge\r\nauthorization: {bearer}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        write.write_all(head.as_bytes()).await?;
        let body = body.as_bytes().to_vec();
        let trickle = tokio::spawn(async move {
            for b in body {
                if write.write_all(&[b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let response = read_response(read).await?;
        trickle.abort();
        // Trickled to the end the body would take 8 s and be answered 200: the 408 is the
        // deadline (1 s here).
        assert!(response.starts_with("HTTP/1.1 408"), "{path}: {response}");
        if path.starts_with("/mcp") {
            assert!(response.contains("\"code\":-32600"), "{response}");
        } else {
            assert!(response.contains("request_timeout"), "{response}");
        }
    }

    // Invalid UTF-8 anywhere in a model call's body: 400, not forwarded.
    let mut body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"h"#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#""}]}"#);
    let r = raw(
        &c.http,
        Method::POST,
        &format!("http://{edge}/openai/v1/chat/completions"),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("UTF-8"),
        "{}",
        r.body
    );
    Ok(())
}
