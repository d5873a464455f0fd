//! A SCIM change reaches every node: group moves and deactivations, on two real nodes.

use portcullis_loadtest::cluster::eventually;
use portcullis_loadtest::http::{call_tool, chat, messages};
use portcullis_loadtest::{Cluster, ClusterOptions};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_move_and_deactivation_reach_every_node() -> anyhow::Result<()> {
    let c = Cluster::start(ClusterOptions::default()).await?;
    let http = &c.http;
    let alice = c.token("alice@example.com");

    // In Sales: gpt-4o-mini and the CRM tool update_opportunity, on both nodes; no Claude.
    for n in &c.nodes {
        let r = chat(http, n.proxy, &alice, "gpt-4o-mini").await?;
        assert_eq!(r.status, 200, "{}: {}", n.id, r.body);
        let text = r.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("");
        assert!(text.contains("demo OpenAI upstream"), "{text}");
        let r = call_tool(http, n.proxy, &alice, "update_opportunity", 7).await?;
        assert_eq!(r.status, 200, "{}: {}", n.id, r.body);
        assert_eq!(
            r.body["result"]["content"][0]["text"],
            "Opportunity updated."
        );
        let r = messages(http, n.proxy, &alice, "claude-sonnet-4").await?;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.body["error"]["type"], "permission_error");
    }

    // The IdP moves Alice from Sales to Legal (Okta sends one PATCH per group).
    let scim = c.scim();
    let alice_id = c.ids.user("alice@example.com").to_owned();
    scim.change_members(c.ids.group("Sales"), &[], &[&alice_id])
        .await?;
    scim.change_members(c.ids.group("Legal"), &[&alice_id], &[])
        .await?;
    let took = eventually(
        "every node enforces the group move",
        Duration::from_secs(15),
        || async {
            for n in &c.nodes {
                if chat(http, n.proxy, &alice, "gpt-4o-mini").await?.status != 403
                    || call_tool(http, n.proxy, &alice, "update_opportunity", 8)
                        .await?
                        .status
                        != 403
                    || messages(http, n.proxy, &alice, "claude-sonnet-4")
                        .await?
                        .status
                        != 200
                {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    println!(
        "group move enforced on all {} nodes within {:.1} ms of the SCIM response (polling)",
        c.nodes.len(),
        took.as_secs_f64() * 1e3
    );

    // Denials come in each client's own shape, naming why.
    for n in &c.nodes {
        let r = chat(http, n.proxy, &alice, "gpt-4o-mini").await?;
        assert_eq!(r.body["error"]["type"], "permission_error", "{}", r.body);
        assert_eq!(r.body["error"]["code"], "access_denied");
        let r = call_tool(http, n.proxy, &alice, "update_opportunity", 42).await?;
        assert_eq!(r.body["jsonrpc"], "2.0");
        assert_eq!(
            r.body["id"], 42,
            "the JSON-RPC error carries the request's id"
        );
        assert_eq!(r.body["error"]["code"], -32003);
        assert_eq!(r.body["error"]["data"]["reason"], "no_matching_permit");
    }

    // The IdP deactivates her: the very next request is denied on every node.
    let sent = Instant::now();
    scim.set_active(&alice_id, false).await?;
    let acked = sent.elapsed();
    let took = eventually(
        "every node denies the deactivated user",
        Duration::from_secs(15),
        || async {
            for n in &c.nodes {
                let r = messages(http, n.proxy, &alice, "claude-sonnet-4").await?;
                if r.status != 403 {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    println!(
        "deactivation enforced on all {} nodes within {:.1} ms of the SCIM response (SCIM write took {:.1} ms)",
        c.nodes.len(),
        took.as_secs_f64() * 1e3,
        acked.as_secs_f64() * 1e3
    );
    let r = messages(http, c.nodes[1].proxy, &alice, "claude-sonnet-4").await?;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("deactivated"),
        "{}",
        r.body
    );

    // The control plane lists both nodes with the version each applied.
    eventually(
        "both nodes acknowledged the latest snapshot",
        Duration::from_secs(10),
        || async {
            let v = c
                .get_json(&format!("http://{}/admin/v1/nodes", c.cp_addrs.admin))
                .await?;
            let latest = v["latest_version"].as_u64().unwrap_or(0);
            let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
            Ok(nodes.len() == 2
                && nodes.iter().all(|n| {
                    n["connected"] == true && n["applied_version"].as_u64() == Some(latest)
                }))
        },
    )
    .await?;
    let out = std::process::Command::new(portcullis_loadtest::proc::bin("portcullis-cp")?)
        .args([
            "nodes",
            "--admin-url",
            &format!("http://{}", c.cp_addrs.admin),
        ])
        .output()?;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("edge-1") && table.contains("edge-2") && table.contains("connected"),
        "{table}"
    );

    // Each node's metrics show its decisions, their latency and its snapshot.
    for n in &c.nodes {
        let text = c
            .http
            .get(format!("http://{}/metrics", n.admin))
            .send()
            .await?
            .text()
            .await?;
        for needle in [
            "portcullis_decisions_total{decision=\"allow\",reason=\"permitted\"}",
            "portcullis_decisions_total{decision=\"deny\",reason=\"principal_inactive\"}",
            "portcullis_decisions_total{decision=\"deny\",reason=\"no_matching_permit\"}",
            "portcullis_decision_seconds_bucket{le=",
            "portcullis_snapshot_version ",
            "portcullis_snapshot_age_seconds ",
            "portcullis_control_plane_connected 1",
        ] {
            assert!(
                text.contains(needle),
                "{}: {needle} missing from\n{text}",
                n.id
            );
        }
    }

    // The upstream only ever saw the injected credential, never a client's token.
    let seen = c
        .get_json(&format!("http://{}/_demo/requests", c.upstream))
        .await?;
    let requests = seen["requests"].as_array().cloned().unwrap_or_default();
    assert!(!requests.is_empty());
    for r in &requests {
        let text = r.to_string();
        assert!(
            !text.contains(&alice),
            "a client token reached the upstream: {text}"
        );
        if r["path"] == "/v1/chat/completions" {
            assert_eq!(
                r["headers"]["authorization"],
                "Bearer sk-demo-upstream-openai"
            );
        }
        if r["path"] == "/v1/messages" {
            assert_eq!(r["headers"]["x-api-key"], "sk-demo-upstream-anthropic");
        }
        if r["path"] == "/mcp" {
            assert!(r["headers"].get("authorization").is_none(), "{text}");
        }
    }
    Ok(())
}
