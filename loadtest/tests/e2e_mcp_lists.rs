//! MCP list answers are filtered per principal: `tools/list`, `resources/list` and
//! `prompts/list` show each principal only what its policies let it call, read or get, in JSON
//! answers and in event-stream answers alike.

use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Sends one list request; returns the names (or URIs) listed, and the response's content type.
async fn list(
    c: &Cluster,
    token: &str,
    method: &str,
    sse_first: bool,
) -> anyhow::Result<(BTreeSet<String>, String)> {
    let accept = if sse_first {
        "text/event-stream, application/json"
    } else {
        "application/json, text/event-stream"
    };
    let resp = c
        .http
        .post(format!("http://{}/mcp/crm", c.nodes[0].proxy))
        .bearer_auth(token)
        .header("accept", accept)
        .json(&json!({"jsonrpc": "2.0", "id": 11, "method": method}))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "{method}: {}", resp.status());
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await?;
    let message: Value = if content_type.starts_with("text/event-stream") {
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .collect();
        anyhow::ensure!(data.len() == 1, "one event: {text}");
        serde_json::from_str(data[0])?
    } else {
        serde_json::from_str(&text)?
    };
    anyhow::ensure!(message["id"] == 11, "{message}");
    let field = method.trim_end_matches("/list");
    let key = if field == "resources" { "uri" } else { "name" };
    let names = message["result"][field]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no {field} in {message}"))?
        .iter()
        .map(|i| i[key].as_str().unwrap_or("").to_owned())
        .collect();
    Ok((names, content_type))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_principal_sees_only_what_it_may_use() -> anyhow::Result<()> {
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await?;
    // Alice (Sales) works the pipeline; exporting is Legal's, above her clearance.
    let alice = c.token("alice@example.com");
    // Bob (Legal, clearance 3) may search and export, and nothing else.
    let bob = c.token("bob@example.com");
    for sse in [false, true] {
        let (tools, content_type) = list(&c, &alice, "tools/list", sse).await?;
        assert_eq!(
            content_type.starts_with("text/event-stream"),
            sse,
            "{content_type}"
        );
        assert_eq!(
            tools,
            set(&["search_accounts", "update_opportunity"]),
            "sse {sse}"
        );
        let (tools, _) = list(&c, &bob, "tools/list", sse).await?;
        assert_eq!(
            tools,
            set(&["export_all_contacts", "search_accounts"]),
            "sse {sse}"
        );

        let (resources, _) = list(&c, &alice, "resources/list", sse).await?;
        assert_eq!(resources, set(&["crm://pipeline/summary"]));
        let (resources, _) = list(&c, &bob, "resources/list", sse).await?;
        assert!(resources.is_empty(), "{resources:?}");

        let (prompts, _) = list(&c, &alice, "prompts/list", sse).await?;
        assert_eq!(prompts, set(&["account_brief"]));
        let (prompts, _) = list(&c, &bob, "prompts/list", sse).await?;
        assert!(prompts.is_empty(), "{prompts:?}");
    }
    Ok(())
}
