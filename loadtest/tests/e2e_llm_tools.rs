//! Policies over the tools an LLM request offers (`Action::"llm:tool"` on `LlmTool::"…"`): a
//! group may be kept from tools such as `Bash` or `WebFetch`, and the request is refused, or
//! the tool stripped from it, as the policy says. A policy set that says nothing of tools
//! leaves them alone.

use portcullis_loadtest::cluster::eventually;
use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::{Value, json};
use std::time::Duration;

const TOOL_POLICIES: &str = r#"
@id("tools-for-everyone")
permit (principal, action == Action::"llm:tool", resource);

@id("sales-no-bash")
@tool("strip")
forbid (principal in Role::"sales", action == Action::"llm:tool", resource == LlmTool::"Bash");

@id("no-code-execution-on-gemini")
forbid (principal, action == Action::"llm:tool", resource == LlmTool::"codeExecution")
  when { resource.provider == "gemini" };

@id("legal-no-webfetch")
forbid (principal in Role::"legal", action == Action::"llm:tool", resource == LlmTool::"WebFetch")
  when { resource.provider == "anthropic" };
"#;

/// An OpenAI chat completion offering `tools` (functions by name), forcing the first.
async fn openai_chat(c: &Cluster, token: &str, tools: &[&str]) -> anyhow::Result<(u16, Value)> {
    let tools: Vec<Value> = tools
        .iter()
        .map(|n| json!({"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}))
        .collect();
    let first = tools[0]["function"]["name"].clone();
    let r = c
        .http
        .post(format!(
            "http://{}/openai/v1/chat/completions",
            c.nodes[0].proxy
        ))
        .bearer_auth(token)
        .json(
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                      "tools": tools, "parallel_tool_calls": true,
                      "tool_choice": {"type": "function", "function": {"name": first}}}),
        )
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

/// An Anthropic message offering `tools` (custom tools by name).
async fn anthropic_message(
    c: &Cluster,
    token: &str,
    tools: &[&str],
) -> anyhow::Result<(u16, Value)> {
    let tools: Vec<Value> = tools
        .iter()
        .map(|n| json!({"name": n, "input_schema": {"type": "object"}}))
        .collect();
    let r = c
        .http
        .post(format!("http://{}/anthropic/v1/messages", c.nodes[0].proxy))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "claude-sonnet-4", "max_tokens": 64, "tools": tools,
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

fn openai_text(v: &Value) -> &str {
    v["choices"][0]["message"]["content"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_policies_refuse_or_strip_as_they_say() -> anyhow::Result<()> {
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await?;
    let alice = c.token("alice@example.com"); // Sales
    let bob = c.token("bob@example.com"); // Legal

    // The quickstart policies say nothing of tools: every tool reaches the model.
    let (status, v) = openai_chat(&c, &alice, &["Bash", "Read"]).await?;
    assert_eq!(status, 200, "{v}");
    assert!(
        openai_text(&v).ends_with("Tools offered: Bash, Read."),
        "{v}"
    );

    // Tool policies go live.
    std::fs::write(c.policy_dir.join("tools.cedar"), TOOL_POLICIES)?;
    let r = c
        .http
        .post(format!(
            "http://{}/admin/v1/policies/reload",
            c.cp_addrs.admin
        ))
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    eventually(
        "the tool policies are enforced",
        Duration::from_secs(15),
        || async {
            Ok(
                openai_text(&openai_chat(&c, &alice, &["Bash", "Read"]).await?.1)
                    .ends_with("Tools offered: Read."),
            )
        },
    )
    .await?;

    // Sales: Bash is stripped (with the tool_choice that forced it); the rest goes through.
    let (status, v) = openai_chat(&c, &alice, &["Bash", "Read", "Grep"]).await?;
    assert_eq!(status, 200, "{v}");
    assert!(
        openai_text(&v).ends_with("Tools offered: Read, Grep."),
        "{v}"
    );
    // Only Bash offered: the request goes on without tools, choice or parallel calls.
    let (status, v) = openai_chat(&c, &alice, &["Bash"]).await?;
    assert_eq!(status, 200, "{v}");
    assert!(!openai_text(&v).contains("Tools offered"), "{v}");

    // Legal: WebFetch through Anthropic refuses the request, in Anthropic's shape, naming the
    // policy.
    let (status, v) = anthropic_message(&c, &bob, &["Bash", "WebFetch"]).await?;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "permission_error", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("LlmTool::\"WebFetch\"") && message.contains("legal-no-webfetch"),
        "{message}"
    );
    // Bash is not Legal's concern: kept.
    let (status, v) = anthropic_message(&c, &bob, &["Bash", "Read"]).await?;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.ends_with("Tools offered: Bash, Read.")),
        "{v}"
    );

    // Gemini names its tools its own way: declared functions by name, built-in tools by key.
    let gemini = |tools: Value| {
        c.http
            .post(format!(
                "http://{}/gemini/v1beta/models/gemini-2.0-flash:generateContent",
                c.nodes[0].proxy
            ))
            .header("x-goog-api-key", c.token("carol@example.com"))
            .json(
                &json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": tools}),
            )
            .send()
    };
    let r = gemini(json!([{"functionDeclarations": [{"name": "Read"}]}, {"code_execution": {}}]))
        .await?;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await?;
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED", "{v}");
    assert!(
        v["error"]["message"].as_str().is_some_and(
            |m| m.contains("codeExecution") && m.contains("no-code-execution-on-gemini")
        ),
        "{v}"
    );
    let r = gemini(json!([{"functionDeclarations": [{"name": "Read"}]}])).await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);

    // Malformed tools are refused before anything reaches the model.
    let r = c
        .http
        .post(format!(
            "http://{}/openai/v1/chat/completions",
            c.nodes[0].proxy
        ))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body(r#"{"model": "gpt-4o-mini", "messages": [], "tools": [], "tools": [{"type": "function", "function": {"name": "Bash"}}]}"#)
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await?;
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("duplicate field `tools`")),
        "{v}"
    );

    // Each forbidden tool is a decision in the audit trail, with its policy.
    eventually(
        "tool decisions are stored",
        Duration::from_secs(10),
        || async {
            let stored = c.stored_decisions("decision=deny").await?;
            let by = |resource: &str, policy: &str| {
                stored.iter().any(|d| {
                    d["action"] == "llm:tool"
                        && d["resource"] == resource
                        && d["policies"]
                            .as_array()
                            .is_some_and(|p| p.contains(&json!(policy)))
                })
            };
            Ok(by("LlmTool::\"Bash\"", "sales-no-bash")
                && by("LlmTool::\"WebFetch\"", "legal-no-webfetch"))
        },
    )
    .await?;

    // Explain answers for a tool like for anything else.
    let r = c
        .http
        .post(format!("http://{}/admin/v1/explain", c.cp_addrs.admin))
        .json(&json!({"source": "demo", "user": "alice@example.com",
                      "provider": "openai", "llm_tool": "Bash"}))
        .send()
        .await?;
    let v: Value = r.json().await?;
    let decision = &v["explanation"]["decision"];
    assert_eq!(decision["effect"], "deny", "{v}");
    assert_eq!(decision["policies"], json!(["sales-no-bash"]), "{v}");
    Ok(())
}
