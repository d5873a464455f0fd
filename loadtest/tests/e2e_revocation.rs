//! Open responses follow the snapshot: when the IdP takes a right away, the principal's open
//! streaming LLM responses and MCP session streams are closed within a second, each with a
//! last event in its own protocol; a principal whose rights changed but who keeps its session
//! is told `notifications/tools/list_changed` on it. Nothing else is disturbed.

use portcullis_loadtest::cluster::eventually;
use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a client has read of one open response.
#[derive(Debug, Default)]
struct Seen {
    text: String,
    request_id: String,
    /// When the response ended (cleanly or not), and how.
    ended: Option<Ended>,
}

/// When a response ended, and whether cleanly.
type Ended = (Instant, Result<(), String>);

type Open = Arc<Mutex<Seen>>;

fn snapshot(open: &Open) -> (String, Option<Ended>) {
    let s = open.lock().expect("lock");
    (s.text.clone(), s.ended.clone())
}

/// Sends `req` and reads its body in the background as it arrives.
async fn open(req: reqwest::RequestBuilder) -> anyhow::Result<Open> {
    let mut resp = req.send().await?;
    anyhow::ensure!(resp.status() == 200, "{}", resp.status());
    let seen = Arc::new(Mutex::new(Seen {
        request_id: resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        ..Default::default()
    }));
    let reader = seen.clone();
    tokio::spawn(async move {
        // Bounded: every stream here ends within a minute by itself.
        let deadline = Instant::now() + Duration::from_secs(60);
        let ended = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, resp.chunk()).await {
                Ok(Ok(Some(bytes))) => reader
                    .lock()
                    .expect("lock")
                    .text
                    .push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) => break Ok(()),
                Ok(Err(e)) => break Err(e.to_string()),
                Err(_) => break Err("still open after a minute".to_owned()),
            }
        };
        reader.lock().expect("lock").ended = Some((Instant::now(), ended));
    });
    Ok(seen)
}

/// Waits until `open` has read something containing `needle`.
async fn read_until(what: &str, open: &Open, needle: &str) -> anyhow::Result<()> {
    eventually(what, Duration::from_secs(10), || async {
        Ok(snapshot(open).0.contains(needle))
    })
    .await?;
    Ok(())
}

/// The `data:` payloads of an event stream, as JSON where they are.
fn data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_rights_close_open_streams_and_changed_rights_are_announced() -> anyhow::Result<()>
{
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await?;
    let edge = c.nodes[0].proxy;
    let scim = c.scim();
    // No overall timeout: these responses stay open for as long as the test needs.
    let http = reqwest::Client::new();
    // The demo upstreams echo the prompt a word every 20 ms: this one streams for 30 s.
    let long_prompt = "word ".repeat(1500);
    let alice = c.token("alice@example.com");
    let bob = c.token("bob@example.com");

    // Alice (Sales): a streaming chat and her CRM session's stream.
    let alice_chat = open(
        http.post(format!("http://{edge}/openai/v1/chat/completions"))
            .bearer_auth(&alice)
            .json(&json!({"model": "gpt-4o-mini", "stream": true,
                          "messages": [{"role": "user", "content": long_prompt}]})),
    )
    .await?;
    let session_stream = |token: &str| {
        http.get(format!("http://{edge}/mcp/crm"))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", "demo-session-1")
    };
    let alice_session = open(session_stream(&alice)).await?;
    // Bob (Legal): a streaming Claude message and his CRM session's stream.
    let bob_message = open(
        http.post(format!("http://{edge}/anthropic/v1/messages"))
            .header("x-api-key", &bob)
            .header("anthropic-version", "2023-06-01")
            .json(
                &json!({"model": "claude-sonnet-4", "max_tokens": 4096, "stream": true,
                          "messages": [{"role": "user", "content": long_prompt}]}),
            ),
    )
    .await?;
    let bob_session = open(session_stream(&bob)).await?;
    read_until("alice's chat streams", &alice_chat, "chat.completion.chunk").await?;
    read_until("bob's message streams", &bob_message, "content_block_delta").await?;
    read_until("alice's session is open", &alice_session, ": open").await?;
    read_until("bob's session is open", &bob_session, ": open").await?;

    // The IdP moves Bob from Legal to Sales: Claude is Legal's, so his message stream is cut;
    // the CRM session is Sales' too, so it stays, and he is told his tools changed.
    let bob_id = c.ids.user("bob@example.com").to_owned();
    scim.change_members(c.ids.group("Sales"), &[&bob_id], &[])
        .await?;
    scim.change_members(c.ids.group("Legal"), &[], &[&bob_id])
        .await?;
    let moved = Instant::now();
    eventually(
        "bob's message stream ends",
        Duration::from_secs(5),
        || async { Ok(snapshot(&bob_message).1.is_some()) },
    )
    .await?;
    read_until(
        "bob is told his tools changed",
        &bob_session,
        "notifications/tools/list_changed",
    )
    .await?;
    let (text, ended) = snapshot(&bob_message);
    let (at, how) = ended.expect("ended");
    let took = at.saturating_duration_since(moved);
    eprintln!("bob's message stream closed {took:?} after the move");
    assert!(
        took < Duration::from_secs(1),
        "bob's message stream closed {took:?} after the move"
    );
    assert_eq!(how, Ok(()), "ended on a whole event: {text}");
    assert!(
        text.ends_with("\n\n") && text.contains("event: error\ndata: "),
        "{text}"
    );
    let last = data(&text).pop().expect("an error event");
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["error"]["type"], "permission_error", "{last}");
    assert!(
        !text.contains("message_stop"),
        "the answer was not finished"
    );
    // Every event before the error is whole (none cut mid-way).
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(
        events.iter().all(|e| e.starts_with("event: ")),
        "{events:?}"
    );

    let (session_text, session_ended) = snapshot(&bob_session);
    assert!(
        session_ended.is_none(),
        "bob's session stays open: {session_text}"
    );
    let notes: Vec<String> = data(&session_text)
        .iter()
        .map(|n| n["method"].as_str().unwrap_or("").to_owned())
        .collect();
    for list in ["tools", "resources", "prompts"] {
        assert!(
            notes.contains(&format!("notifications/{list}/list_changed")),
            "{notes:?}"
        );
    }
    // Listing again, he sees what Sales may use.
    let tools = c
        .http
        .post(format!("http://{edge}/mcp/crm"))
        .bearer_auth(&bob)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await?
        .json::<Value>()
        .await?;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"update_opportunity"), "{tools}");

    // Alice was not touched by Bob's move: her streams go on, and she was told nothing.
    for (what, s) in [("chat", &alice_chat), ("session", &alice_session)] {
        let (text, ended) = snapshot(s);
        assert!(ended.is_none(), "alice's {what} is still open");
        assert!(!text.contains("list_changed"), "{text}");
    }

    // The IdP deactivates Alice: her chat stream and her session stream close.
    let alice_id = c.ids.user("alice@example.com").to_owned();
    scim.set_active(&alice_id, false).await?;
    let deactivated = Instant::now();
    eventually("alice's streams end", Duration::from_secs(5), || async {
        Ok(snapshot(&alice_chat).1.is_some() && snapshot(&alice_session).1.is_some())
    })
    .await?;
    for (what, s) in [("chat", &alice_chat), ("session", &alice_session)] {
        let (at, _) = snapshot(s).1.expect("ended");
        let took = at.saturating_duration_since(deactivated);
        eprintln!("alice's {what} closed {took:?} after the deactivation");
        assert!(
            took < Duration::from_secs(1),
            "alice's {what} closed {took:?} after the deactivation"
        );
    }
    let (text, ended) = snapshot(&alice_chat);
    assert_eq!(ended.expect("ended").1, Ok(()), "{text}");
    assert!(!text.contains("[DONE]"), "the answer was not finished");
    let last = data(&text).pop().expect("an error event");
    assert_eq!(last["error"]["type"], "permission_error", "{last}");
    assert!(
        last["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deactivated")),
        "{last}"
    );
    // Bob, active and still in Sales, keeps his session.
    assert!(snapshot(&bob_session).1.is_none());

    // The audit trail records why Alice's stream stopped.
    let request_id = alice_chat.lock().expect("lock").request_id.clone();
    eventually(
        "the revocation is stored",
        Duration::from_secs(10),
        || async {
            let stored = c
                .stored_decisions("principal=alice%40example.com&decision=deny")
                .await?;
            Ok(stored.iter().any(|d| {
                d["request_id"] == request_id.as_str() && d["reason"] == "principal_inactive"
            }))
        },
    )
    .await?;
    Ok(())
}
