//! Gemini routes: the model and the streaming flag come from the path
//! (`models/{model}:generateContent`, `:streamGenerateContent`), the client's key from
//! `x-goog-api-key`; a denial is a Gemini-shaped error, a stream passes through event by
//! event, and the upstream sees the edge's key, never the client's.

use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_calls_are_decided_by_the_model_in_their_path() -> anyhow::Result<()> {
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await?;
    let edge = c.nodes[0].proxy;
    let url = |call: &str| format!("http://{edge}/gemini/v1beta/models/{call}");
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]});
    // Carol (Engineering) may use every model; Alice (Sales) only gpt-4o-mini.
    let (carol, alice) = (c.token("carol@example.com"), c.token("alice@example.com"));

    let r = c
        .http
        .post(url("gemini-2.0-flash:generateContent"))
        .header("x-goog-api-key", &carol)
        .json(&body)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await?;
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from the demo Gemini upstream (gemini-2.0-flash)."
    );

    let r = c
        .http
        .post(format!(
            "{}?alt=sse",
            url("gemini-2.0-flash:streamGenerateContent")
        ))
        .header("x-goog-api-key", &carol)
        .json(&body)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"))
    );
    let text = r.text().await?;
    let events = text.matches("data: ").count();
    assert!(events > 3, "streamed in pieces: {text}");

    let r = c
        .http
        .post(url("gemini-2.0-flash:generateContent"))
        .header("x-goog-api-key", &alice)
        .json(&body)
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await?;
    assert_eq!(v["error"]["code"], 403, "{v}");
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("gemini-2.0-flash"),
        "{v}"
    );
    let r = c
        .http
        .post(url("gemini-2.0-flash:generateContent"))
        .json(&body)
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await?;
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED", "{v}");

    let seen = c
        .get_json(&format!("http://{}/_demo/requests", c.upstream))
        .await?
        .to_string();
    assert!(
        seen.contains("demo-upstream-gemini"),
        "the edge's key was injected"
    );
    assert!(
        !seen.contains(&carol),
        "the client's key reached the upstream"
    );
    Ok(())
}
