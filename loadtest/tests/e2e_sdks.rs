//! The official client SDKs against the real edge, control plane and demo upstreams:
//! `openai` (chat, streaming chat, responses, embeddings, and Azure OpenAI's deployment paths
//! with its `api-key` header), `anthropic` (messages, streaming)
//! and `mcp` (initialize, list tools, an allowed and a denied tool call, a resource read).
//! Denials surface in each SDK as its own error type, with a message a user can act on.
//!
//! The SDKs come from the venv `.ci/run` creates (`.ci/requirements.txt`); set
//! `PORTCULLIS_PYTHON` to another interpreter that has them. Without one the test is skipped
//! with a message, except under CI, where that is a failure.

use portcullis_loadtest::http::chat;
use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("PORTCULLIS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python"))
        });
    let has_sdks = std::process::Command::new(&candidate)
        .args(["-c", "import openai, anthropic, mcp"])
        .output()
        .is_ok_and(|o| o.status.success());
    has_sdks.then_some(candidate)
}

/// Runs one client; returns its observations by check name.
fn run(
    python: &PathBuf,
    client: &str,
    env: &[(&str, String)],
) -> anyhow::Result<BTreeMap<String, Value>> {
    let out = std::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/clients.py"))
        .arg(client)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "{client} client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut checks = BTreeMap::new();
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line)?;
        checks.insert(v["check"].as_str().unwrap_or("").to_owned(), v);
    }
    Ok(checks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_work_through_the_edge_and_see_denials_in_their_own_types()
-> anyhow::Result<()> {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Python SDKs are required under CI: run .ci/run, or set PORTCULLIS_PYTHON"
        );
        eprintln!(
            "SKIPPED: the openai, anthropic and mcp SDKs are not installed (python3 -m venv .venv && .venv/bin/pip install -r .ci/requirements.txt)"
        );
        return Ok(());
    };
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await?;
    // An API key the control plane issues, used by the SDK as its key.
    let issued: Value = c
        .http
        .post(format!("http://{}/admin/v1/api-keys", c.cp_addrs.admin))
        .json(
            &serde_json::json!({"source": "demo", "user": "carol@example.com",
                                  "name": "sdk test", "author": "e2e"}),
        )
        .send()
        .await?
        .json()
        .await?;
    let api_key = issued["key"].as_str().unwrap_or_default().to_owned();
    portcullis_loadtest::cluster::eventually("the key is live", Duration::from_secs(15), || {
        let key = api_key.clone();
        let c = &c;
        async move {
            Ok(chat(&c.http, c.nodes[0].proxy, &key, "gpt-4o")
                .await?
                .status
                == 200)
        }
    })
    .await?;
    let env = vec![
        ("API_KEY", api_key.clone()),
        ("EDGE", format!("http://{}", c.nodes[0].proxy)),
        ("SALES_TOKEN", c.token("alice@example.com")),
        ("LEGAL_TOKEN", c.token("bob@example.com")),
        ("ENGINEER_TOKEN", c.token("carol@example.com")),
        ("DENIED_TOKEN", c.token("dave@example.com")),
    ];

    let (py, env2) = (python.clone(), env.clone());
    let openai = tokio::task::spawn_blocking(move || run(&py, "openai", &env2)).await??;
    assert!(
        openai["chat"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("demo OpenAI upstream (gpt-4o-mini)"),
        "{openai:?}"
    );
    let stream = &openai["chat_stream"];
    assert!(
        stream["chunks"].as_u64().unwrap_or(0) > 3,
        "streamed in pieces: {stream}"
    );
    assert_eq!(stream["text"], openai["chat"]["text"]);
    assert!(
        openai["responses"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("Responses API"),
        "{openai:?}"
    );
    assert_eq!(openai["embeddings"]["dimensions"], 3);
    assert!(
        openai["api_key_chat"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("demo OpenAI upstream (gpt-4o)"),
        "{openai:?}"
    );
    let denied = &openai["chat_denied"];
    assert_eq!(denied["error_type"], "PermissionDeniedError", "{denied}");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["permission"], true);
    let message = denied["message"].as_str().unwrap_or("");
    assert!(
        message.contains("no policy permits chat") && message.contains("gpt-4o-mini"),
        "the message says what was refused and why: {message}"
    );

    assert!(
        openai["azure_chat"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("demo OpenAI upstream (gpt-4o-mini)"),
        "{openai:?}"
    );
    assert_eq!(
        openai["azure_denied"]["error_type"],
        "PermissionDeniedError"
    );
    assert_eq!(openai["azure_denied"]["permission"], true);

    let (py, env2) = (python.clone(), env.clone());
    let anthropic = tokio::task::spawn_blocking(move || run(&py, "anthropic", &env2)).await??;
    assert!(
        anthropic["messages"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("demo Anthropic upstream"),
        "{anthropic:?}"
    );
    assert!(anthropic["messages_stream"]["chunks"].as_u64().unwrap_or(0) > 1);
    assert_eq!(
        anthropic["messages_stream"]["text"],
        anthropic["messages"]["text"]
    );
    let denied = &anthropic["messages_denied"];
    assert_eq!(denied["error_type"], "PermissionDeniedError", "{denied}");
    assert_eq!(denied["permission"], true);
    assert!(
        denied["message"]
            .as_str()
            .unwrap_or("")
            .contains("claude-sonnet-4"),
        "{denied}"
    );

    let (py, env2) = (python.clone(), env.clone());
    let mcp = tokio::task::spawn_blocking(move || run(&py, "mcp", &env2)).await??;
    assert_eq!(mcp["initialize"]["server"], "demo-crm", "{mcp:?}");
    // Listed: only what Alice may call (exporting contacts is Legal's).
    assert_eq!(
        mcp["list_tools"]["tools"],
        serde_json::json!(["search_accounts", "update_opportunity"])
    );
    assert_eq!(mcp["call_allowed"]["text"], "Opportunity updated.");
    assert_eq!(mcp["call_allowed"]["is_error"], false);
    let denied = &mcp["call_denied"];
    assert_eq!(denied["error_type"], "MCPError", "{denied}");
    assert_eq!(denied["code"], -32003);
    assert!(
        denied["message"]
            .as_str()
            .unwrap_or("")
            .contains("export_all_contacts"),
        "{denied}"
    );
    assert_eq!(mcp["read_resource"]["text"], "Q3 pipeline: 12 open deals.");

    // The upstream never saw a client's token: only the edge's own credentials.
    let seen = c
        .get_json(&format!("http://{}/_demo/requests", c.upstream))
        .await?;
    let text = seen.to_string();
    for (_, token) in &env[1..] {
        assert!(
            !text.contains(token.as_str()),
            "a client token reached the upstream"
        );
    }
    Ok(())
}
