//! JSON-RPC batches on an MCP route (MCP revision 2025-03-26): each message is decided as it
//! would be alone; the allowed ones reach the server as one batch, lists in the answer are
//! filtered, and the refused ones are answered by the edge with their own ids, in the same
//! answer.

use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Sends `batch`; returns the status and the answers by id (JSON, or one event each).
async fn send(
    c: &Cluster,
    token: &str,
    batch: &Value,
    sse_first: bool,
) -> anyhow::Result<(u16, BTreeMap<String, Value>)> {
    let accept = if sse_first {
        "text/event-stream, application/json"
    } else {
        "application/json, text/event-stream"
    };
    let r = c
        .http
        .post(format!("http://{}/mcp/crm", c.nodes[0].proxy))
        .bearer_auth(token)
        .header("accept", accept)
        .json(batch)
        .send()
        .await?;
    let status = r.status().as_u16();
    let sse = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    assert_eq!(
        sse,
        sse_first && status == 200,
        "the answer's form follows Accept"
    );
    let text = r.text().await?;
    let answers: Vec<Value> = if sse {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?
    } else if text.is_empty() {
        Vec::new()
    } else {
        match serde_json::from_str(&text)? {
            Value::Array(a) => a,
            one => vec![one],
        }
    };
    Ok((
        status,
        answers
            .into_iter()
            .map(|a| (a["id"].to_string(), a))
            .collect(),
    ))
}

fn call(id: Value, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {"query": "acme"}}})
}

fn tool_names(answer: &Value) -> Vec<&str> {
    answer["result"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_decided_message_by_message() -> anyhow::Result<()> {
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await?;
    let alice = c.token("alice@example.com"); // Sales: not cleared to export
    let bob = c.token("bob@example.com"); // Legal: may search and export

    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        call(json!(2), "export_all_contacts"),
        call(json!("three"), "search_accounts"),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 4},
    ]);
    for sse in [false, true] {
        let (status, answers) = send(&c, &alice, &batch, sse).await?;
        assert_eq!(status, 200);
        assert_eq!(
            answers.len(),
            4,
            "no answer to the notification: {answers:?}"
        );
        let list = &answers["1"];
        assert_eq!(
            tool_names(list),
            ["search_accounts", "update_opportunity"],
            "{list}"
        );
        let refused = &answers["2"];
        assert_eq!(refused["error"]["code"], -32003, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("export_all_contacts")),
            "{refused}"
        );
        let searched = &answers["\"three\""];
        assert!(
            searched["result"]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Found 2 accounts")),
            "{searched}"
        );
        assert_eq!(answers["4"]["error"]["code"], -32600);
    }

    // The same batch for Bob: his list shows export, and his export goes through.
    let (_, answers) = send(&c, &bob, &batch, false).await?;
    assert!(tool_names(&answers["1"]).contains(&"export_all_contacts"));
    assert!(answers["2"]["result"].is_object(), "{}", answers["2"]);

    // Nothing allowed: the edge answers alone, and the server never sees the batch.
    let seen_before = c
        .get_json(&format!("http://{}/_demo/requests", c.upstream))
        .await?["requests"]
        .as_array()
        .map_or(0, Vec::len);
    let (status, answers) = send(
        &c,
        &alice,
        &json!([call(json!(9), "export_all_contacts")]),
        false,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(answers["9"]["error"]["code"], -32003);
    let seen_after = c
        .get_json(&format!("http://{}/_demo/requests", c.upstream))
        .await?["requests"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(seen_before, seen_after, "nothing reached the server");
    // A refused notification alone: accepted, nothing answered, nothing sent on.
    let dave = c.token("dave@example.com"); // Support: no CRM at all
    let (status, answers) = send(
        &c,
        &dave,
        &json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]),
        false,
    )
    .await?;
    assert_eq!((status, answers.len()), (202, 0));

    // An empty batch is one error.
    let (status, answers) = send(&c, &alice, &json!([]), false).await?;
    assert_eq!(status, 400);
    assert_eq!(answers["null"]["error"]["code"], -32600, "{answers:?}");
    Ok(())
}
