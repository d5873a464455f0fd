//! Replay: decisions recorded across identity and policy changes (a group move, a new policy,
//! a deactivation) are decided again, each against the snapshot that decided it, and every
//! one reproduces its decision and its determining policies. Explain and entitlements at a
//! past instant see the state of that instant, over the API and the CLI.

use portcullis_loadtest::cluster::eventually;
use portcullis_loadtest::http::{call_tool, chat, messages};
use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const USERS: [&str; 4] = [
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dave@example.com",
];

/// Every user asks for two models and three CRM tools on every node; returns how many
/// requests were answered.
async fn workload(c: &Cluster) -> anyhow::Result<usize> {
    let mut answered = 0;
    for node in &c.nodes {
        for user in USERS {
            let token = c.token(user);
            chat(&c.http, node.proxy, &token, "gpt-4o-mini").await?;
            messages(&c.http, node.proxy, &token, "claude-sonnet-4").await?;
            for (i, tool) in [
                "update_opportunity",
                "search_accounts",
                "export_all_contacts",
            ]
            .into_iter()
            .enumerate()
            {
                call_tool(&c.http, node.proxy, &token, tool, i as i64).await?;
            }
            answered += 5;
        }
    }
    Ok(answered)
}

async fn post(c: &Cluster, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let r = c
        .http
        .post(format!("http://{}{path}", c.cp_addrs.admin))
        .json(body)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

fn now_ms() -> u64 {
    portcullis_shared::request::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_decisions_replay_across_identity_and_policy_changes() -> anyhow::Result<()> {
    let c = Cluster::start(ClusterOptions {
        nodes: 2,
        ..Default::default()
    })
    .await?;
    let scim = c.scim();
    let http = &c.http;
    let mut sent = workload(&c).await?;
    let before_move = now_ms();

    // Identity: the IdP moves Alice from Sales to Legal.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let alice_id = c.ids.user("alice@example.com").to_owned();
    scim.change_members(c.ids.group("Sales"), &[], &[&alice_id])
        .await?;
    scim.change_members(c.ids.group("Legal"), &[&alice_id], &[])
        .await?;
    let alice = c.token("alice@example.com");
    eventually("the move is enforced", Duration::from_secs(15), || async {
        for n in &c.nodes {
            if chat(http, n.proxy, &alice, "gpt-4o-mini").await?.status != 403 {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    sent += workload(&c).await?;

    // Policy: Support may chat with the small model.
    std::fs::write(
        c.policy_dir.join("support.cedar"),
        "@id(\"support-chat-mini\")\npermit (principal, action == Action::\"chat\", resource == Model::\"gpt-4o-mini\")\n  when { principal.department == \"Support\" };\n",
    )?;
    let (status, _) = post(&c, "/admin/v1/policies/reload", &json!({})).await?;
    assert_eq!(status, 200);
    let dave = c.token("dave@example.com");
    eventually(
        "the policy is enforced",
        Duration::from_secs(15),
        || async {
            for n in &c.nodes {
                if chat(http, n.proxy, &dave, "gpt-4o-mini").await?.status != 200 {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    sent += workload(&c).await?;

    // Identity: the IdP deactivates Bob.
    let bob_id = c.ids.user("bob@example.com").to_owned();
    scim.set_active(&bob_id, false).await?;
    let bob = c.token("bob@example.com");
    eventually(
        "the deactivation is enforced",
        Duration::from_secs(15),
        || async {
            for n in &c.nodes {
                if messages(http, n.proxy, &bob, "claude-sonnet-4")
                    .await?
                    .status
                    != 403
                {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    sent += workload(&c).await?;

    // Every decision reaches the control plane's store (the workload's, and the probes'
    // while waiting for each change): wait until the count holds still.
    let mut stored: Vec<Value> = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = c.stored_decisions("").await?;
        let settled = now.len() == stored.len() && now.len() >= sent;
        stored = now;
        if settled {
            break;
        }
    }
    assert!(stored.len() >= sent, "{} stored, {sent} sent", stored.len());

    // Replay every one of them against the snapshot that decided it.
    let (mut allows, mut denies) = (0, 0);
    let mut versions = BTreeSet::new();
    let mut policies_seen = BTreeSet::new();
    for r in &stored {
        let (status, v) = post(
            &c,
            "/admin/v1/decisions/replay",
            &json!({"node": r["node"], "seq": r["seq"], "epoch": r["epoch"]}),
        )
        .await?;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["matches"], true, "replay differs: {v:#}");
        assert_eq!(v["replayed"]["decision"], r["decision"]);
        assert_eq!(v["replayed"]["policies"], r["policies"]);
        match r["decision"].as_str() {
            Some("allow") => allows += 1,
            _ => denies += 1,
        }
        versions.insert(r["snapshot_version"].as_u64().unwrap_or(0));
        for p in r["policies"].as_array().into_iter().flatten() {
            policies_seen.insert(p.as_str().unwrap_or("").to_owned());
        }
    }
    println!(
        "replayed {} decisions ({allows} allowed, {denies} denied) over {} snapshot versions: all reproduced",
        stored.len(),
        versions.len()
    );
    assert!(
        allows > 20 && denies > 20,
        "{allows} allowed, {denies} denied"
    );
    assert!(
        versions.len() >= 4,
        "the changes made new versions: {versions:?}"
    );
    for id in [
        "sales-chat-gpt-4o-mini",
        "legal-chat-anthropic",
        "support-chat-mini",
        "export-only-by-legal",
    ] {
        assert!(policies_seen.contains(id), "{id} decided something");
    }

    // Bad input is a clear error.
    for (query, why) in [
        ("decision=maybe", "allow or deny"),
        ("action=chatter", "unknown action"),
        ("after=yesterday", "cursor"),
        ("from_ms=10&to_ms=5", "after to_ms"),
    ] {
        let r = c
            .http
            .get(format!(
                "http://{}/admin/v1/decisions?{query}",
                c.cp_addrs.admin
            ))
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 400, "{query}");
        let body: Value = r.json().await?;
        assert!(
            body["error"].as_str().unwrap_or("").contains(why),
            "{query}: {body}"
        );
    }
    let (status, v) = post(
        &c,
        "/admin/v1/decisions/replay",
        &json!({"node": "edge-1", "seq": 999_999}),
    )
    .await?;
    assert_eq!(status, 404, "{v}");

    // Explain at an instant: before the move Alice's chat was allowed, by her Sales role.
    let ask = json!({"source": "demo", "user": "alice@example.com", "provider": "openai", "model": "gpt-4o-mini"});
    let mut then = ask.clone();
    then["at_ms"] = json!(before_move);
    let (status, v) = post(&c, "/admin/v1/explain", &then).await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["explanation"]["decision"]["effect"], "allow", "{v}");
    assert_eq!(
        v["explanation"]["decision"]["policies"],
        json!(["sales-chat-gpt-4o-mini"])
    );
    let (_, v) = post(&c, "/admin/v1/explain", &ask).await?;
    assert_eq!(v["explanation"]["decision"]["effect"], "deny", "{v}");
    let mut ancient = ask.clone();
    ancient["at_ms"] = json!(1_000);
    let (status, v) = post(&c, "/admin/v1/explain", &ancient).await?;
    assert_eq!(status, 404, "before any snapshot: {v}");

    // What could Alice use, then and now.
    let uses = |v: &Value| -> BTreeSet<String> {
        v["allowed"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                format!(
                    "{} {} {}",
                    a["action"].as_str().unwrap_or(""),
                    a["resource"].as_str().unwrap_or(""),
                    a["detail"]["provider"].as_str().unwrap_or("")
                )
                .trim_end()
                .to_owned()
            })
            .collect()
    };
    let (status, then) = post(
        &c,
        "/admin/v1/entitlements",
        &json!({"source": "demo", "user": "alice@example.com", "at_ms": before_move}),
    )
    .await?;
    assert_eq!(status, 200, "{then}");
    let (_, now) = post(
        &c,
        "/admin/v1/entitlements",
        &json!({"source": "demo", "user": "alice@example.com"}),
    )
    .await?;
    let (then, now) = (uses(&then), uses(&now));
    assert!(
        then.contains("chat Model::\"gpt-4o-mini\" openai"),
        "{then:?}"
    );
    assert!(
        then.contains("mcp:tools/call McpTool::\"crm/update_opportunity\""),
        "{then:?}"
    );
    assert!(
        !then.contains("chat Model::\"claude-sonnet-4\" anthropic"),
        "{then:?}"
    );
    assert!(
        !now.contains("chat Model::\"gpt-4o-mini\" openai"),
        "{now:?}"
    );
    assert!(
        now.contains("chat Model::\"claude-sonnet-4\" anthropic"),
        "{now:?}"
    );
    assert!(
        now.contains("mcp:tools/call McpTool::\"crm/search_accounts\""),
        "{now:?}"
    );

    // The CLI: list Alice's denials, replay one, and her entitlements then.
    let cli = portcullis_loadtest::proc::bin("portcullis-cp")?;
    let admin_url = format!("http://{}", c.cp_addrs.admin);
    let out = std::process::Command::new(&cli)
        .args(["decisions", "list", "--admin-url", &admin_url])
        .args([
            "--principal",
            "alice@example.com",
            "--decision",
            "deny",
            "--all",
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    let expected = stored
        .iter()
        .filter(|r| r["principal"]["user_name"] == "alice@example.com" && r["decision"] == "deny")
        .count();
    assert_eq!(listed.lines().count(), expected, "{listed}");
    assert!(
        listed
            .lines()
            .all(|l| l.contains(" DENY ") && l.contains("alice@example.com"))
    );
    let first = &stored[0];
    let out = std::process::Command::new(&cli)
        .args(["decisions", "replay", "--admin-url", &admin_url])
        .args(["--node", first["node"].as_str().unwrap_or("")])
        .args(["--seq", &first["seq"].to_string()])
        .args(["--epoch", first["epoch"].as_str().unwrap_or("")])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("MATCH"), "{text}");
    let out = std::process::Command::new(&cli)
        .args(["entitlements", "--admin-url", &admin_url])
        .args(["--source", "demo", "--user", "alice@example.com"])
        .args(["--at-ms", &before_move.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Model::\"gpt-4o-mini\""), "{text}");

    // The IdP deletes Bob: his audit history stays, and his decisions still replay.
    let bob_records = c.stored_decisions("principal=bob%40example.com").await?;
    assert!(!bob_records.is_empty());
    let (status, _) = scim
        .call(reqwest::Method::DELETE, &format!("/Users/{bob_id}"), None)
        .await?;
    assert_eq!(status, 204);
    assert_eq!(
        c.stored_decisions("principal=bob%40example.com")
            .await?
            .len(),
        bob_records.len()
    );
    let r = &bob_records[0];
    let (status, v) = post(
        &c,
        "/admin/v1/decisions/replay",
        &json!({"node": r["node"], "seq": r["seq"], "epoch": r["epoch"]}),
    )
    .await?;
    assert_eq!((status, &v["matches"]), (200, &json!(true)), "{v}");
    let events = c
        .get_json(&format!(
            "http://{}/admin/v1/events?limit=1000",
            c.cp_addrs.admin
        ))
        .await?;
    let about_bob = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["resource_id"] == bob_id.as_str())
        .count();
    assert!(about_bob >= 2, "his deactivation and deletion are recorded");

    // Alice's decision records as signed evidence, checked by the auditor's command.
    let out_file = c.root().join("alice-decisions.csv");
    let out = std::process::Command::new(&cli)
        .args(["evidence", "export", "--config"])
        .arg(&c.cp_config)
        .args(["--stream", "decisions", "--principal", "alice@example.com"])
        .args(["--format", "csv", "--out"])
        .arg(&out_file)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(&cli)
        .args(["evidence", "verify"])
        .arg(&out_file)
        .arg("--public-key")
        .arg(format!(
            "@{}",
            c.root().join("cp-data/signing.pub").display()
        ))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let alice_records = stored
        .iter()
        .filter(|r| r["principal"]["user_name"] == "alice@example.com")
        .count();
    assert!(
        out.status.success() && text.contains(&format!("OK: {alice_records} records")),
        "{text}"
    );
    Ok(())
}
