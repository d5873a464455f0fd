//! API keys and service accounts: the control plane issues a key for a principal (a person
//! from the IdP, or a service account it keeps itself), stores only its hash, and carries it in
//! the snapshot; a node accepts the key like a token from the IdP and decides with the
//! principal's groups and roles; revoking the key ends it on the node with the next snapshot,
//! open streams included.

use portcullis_loadtest::cluster::eventually;
use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn admin(c: &Cluster, method: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let url = format!("http://{}{path}", c.cp_addrs.admin);
    let req = match method {
        "GET" => c.http.get(url),
        "DELETE" => c.http.delete(url),
        _ => c.http.post(url).json(&body),
    };
    let r = req.send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A chat completion with `key` as the bearer credential, as the OpenAI SDK sends it.
async fn chat(c: &Cluster, key: &str, model: &str) -> anyhow::Result<(u16, Value)> {
    let r = c
        .http
        .post(format!(
            "http://{}/openai/v1/chat/completions",
            c.nodes[0].proxy
        ))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_issued_enforced_and_revoked_with_the_next_snapshot() -> anyhow::Result<()> {
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await?;
    // The nightly CI job may chat with the small model.
    std::fs::write(
        c.policy_dir.join("ci.cedar"),
        "@id(\"ci-chat-mini\")\npermit (principal in Group::\"service-accounts/ci\", action == Action::\"chat\", resource == Model::\"gpt-4o-mini\");\n",
    )?;
    let (status, v) = admin(&c, "POST", "/admin/v1/policies/reload", json!({})).await?;
    assert_eq!(status, 200, "{v}");

    // A service account, in the control plane's own identity source.
    let (status, v) = admin(
        &c,
        "POST",
        "/admin/v1/service-accounts",
        json!({"name": "nightly-ci", "groups": ["ci"], "author": "ops@example.com"}),
    )
    .await?;
    assert_eq!(status, 201, "{v}");

    // A key for it: shown once.
    let (status, v) = admin(
        &c,
        "POST",
        "/admin/v1/api-keys",
        json!({"source": "service-accounts", "user": "nightly-ci", "name": "nightly",
               "author": "ops@example.com"}),
    )
    .await?;
    assert_eq!(status, 201, "{v}");
    let key = v["key"].as_str().unwrap_or_default().to_owned();
    let key_id = v["api_key"]["id"].as_str().unwrap_or_default().to_owned();
    assert!(key.starts_with("pcul_") && key.contains(&key_id), "{v}");
    // Listing never shows it again.
    let (status, v) = admin(
        &c,
        "GET",
        "/admin/v1/api-keys?source=service-accounts",
        Value::Null,
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert!(v.to_string().contains(&key_id), "{v}");
    assert!(!v.to_string().contains(&key), "{v}");

    // The key works on the node once its snapshot is there, under the account's groups.
    eventually("the key works", Duration::from_secs(15), || async {
        Ok(chat(&c, &key, "gpt-4o-mini").await?.0 == 200)
    })
    .await?;
    let (status, v) = chat(&c, &key, "gpt-4o").await?;
    assert_eq!(status, 403, "the account may use the small model only: {v}");
    // The client's key never reaches the upstream; the upstream's own is injected.
    let seen = c
        .get_json(&format!("http://{}/_demo/requests", c.upstream))
        .await?;
    let last = seen["requests"]
        .as_array()
        .and_then(|r| r.last())
        .cloned()
        .unwrap_or_default();
    assert!(!last.to_string().contains(&key_id), "{last}");

    // A forged secret under the real id, and a made-up key: 401 in OpenAI's shape.
    let forged = format!("pcul_{key_id}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let (status, v) = chat(&c, &forged, "gpt-4o-mini").await?;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");

    // A key for a person: decided with the person's roles (Alice, Sales: the small model).
    let (status, v) = admin(
        &c,
        "POST",
        "/admin/v1/api-keys",
        json!({"source": "demo", "user": "alice@example.com", "name": "laptop",
               "expires_days": 30, "author": "alice@example.com"}),
    )
    .await?;
    assert_eq!(status, 201, "{v}");
    let alice_key = v["key"].as_str().unwrap_or_default().to_owned();
    eventually("alice's key works", Duration::from_secs(15), || async {
        Ok(chat(&c, &alice_key, "gpt-4o-mini").await?.0 == 200)
    })
    .await?;
    // Anthropic's SDK sends the key as x-api-key: the same key works there (and Alice may
    // not use Claude).
    let r = c
        .http
        .post(format!("http://{}/anthropic/v1/messages", c.nodes[0].proxy))
        .header("x-api-key", &alice_key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4", "max_tokens": 8,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await?;
    assert_eq!(r.status(), 403);

    // An open stream on the service account's key, then the key is revoked: the next
    // request is refused and the stream is cut, within a second.
    let mut stream = reqwest::Client::new()
        .post(format!(
            "http://{}/openai/v1/chat/completions",
            c.nodes[0].proxy
        ))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-4o-mini", "stream": true,
                      "messages": [{"role": "user", "content": "word ".repeat(1000)}]}))
        .send()
        .await?;
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await?.unwrap_or_default();
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    let (status, v) = admin(
        &c,
        "POST",
        &format!("/admin/v1/api-keys/{key_id}/revoke"),
        json!({"author": "ops@example.com"}),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    let revoked = Instant::now();
    let mut rest = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.chunk().await? {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        anyhow::Ok(())
    })
    .await;
    let took = revoked.elapsed();
    eprintln!("the stream on the revoked key closed {took:?} after the revocation");
    assert!(matches!(ended, Ok(Ok(()))), "the stream ends cleanly");
    assert!(took < Duration::from_secs(1), "closed {took:?} after");
    assert!(
        rest.contains("revoked") && !rest.contains("[DONE]"),
        "{rest}"
    );
    let refused_within = eventually("the key is refused", Duration::from_secs(5), || async {
        Ok(chat(&c, &key, "gpt-4o-mini").await?.0 == 401)
    })
    .await?;
    eprintln!("the revoked key was refused {refused_within:?} after the stream closed");
    // The revocation reached the node as a delta, not a full snapshot.
    let status = c.node_status(0).await?;
    assert_eq!(status["snapshot"]["via"], "delta", "{status}");
    // Alice's key is untouched.
    assert_eq!(chat(&c, &alice_key, "gpt-4o-mini").await?.0, 200);

    // The CLI lists keys, without their secrets.
    let cli = portcullis_loadtest::proc::bin("portcullis-cp")?;
    let out = std::process::Command::new(&cli)
        .args(["api-keys", "list", "--admin-url"])
        .arg(format!("http://{}", c.cp_addrs.admin))
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&key_id) && listed.contains("laptop"),
        "{listed}"
    );
    assert!(
        !listed.contains(&key) && !listed.contains(&alice_key),
        "{listed}"
    );
    Ok(())
}
