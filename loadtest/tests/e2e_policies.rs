//! Policy changes: an invalid file is refused with its line and reason while the previous
//! version stays live; a valid one reaches the nodes, and decisions name the policy.

use portcullis_loadtest::cluster::eventually;
use portcullis_loadtest::http::chat;
use portcullis_loadtest::{Cluster, ClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policies_are_refused_and_valid_ones_reach_the_nodes() -> anyhow::Result<()> {
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await?;
    let edge = c.nodes[0].proxy;
    let dave = c.token("dave@example.com");
    let alice = c.token("alice@example.com");
    let reload = format!("http://{}/admin/v1/policies/reload", c.cp_addrs.admin);
    let live_before = c
        .get_json(&format!("http://{}/admin/v1/policies", c.cp_addrs.admin))
        .await?;

    std::fs::write(
        c.policy_dir.join("support.cedar"),
        "permit (principal, action == Action::\"chat\", resource)\n  when { principal.shoeSize > 40 };\n",
    )?;
    let r = c.http.post(&reload).send().await?;
    assert_eq!(r.status().as_u16(), 422);
    let body: serde_json::Value = r.json().await?;
    let d = &body["diagnostics"][0];
    assert_eq!(d["file"], "support.cedar", "{body}");
    assert_eq!(d["line"], 2, "{body}");
    assert!(
        d["message"].as_str().unwrap_or("").contains("shoeSize"),
        "{body}"
    );
    let live = c
        .get_json(&format!("http://{}/admin/v1/policies", c.cp_addrs.admin))
        .await?;
    assert_eq!(
        live["version"], live_before["version"],
        "the previous version stays live"
    );
    assert_eq!(chat(&c.http, edge, &dave, "gpt-4o-mini").await?.status, 403);
    assert_eq!(
        chat(&c.http, edge, &alice, "gpt-4o-mini").await?.status,
        200
    );

    // The CLI says the same, offline.
    let out = std::process::Command::new(portcullis_loadtest::proc::bin("portcullis-cp")?)
        .args(["policies", "check"])
        .arg(&c.policy_dir)
        .output()?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("support.cedar:2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(
        c.policy_dir.join("support.cedar"),
        "@id(\"support-chat-mini\")\npermit (principal, action == Action::\"chat\", resource == Model::\"gpt-4o-mini\")\n  when { principal.department == \"Support\" };\n",
    )?;
    let r = c.http.post(&reload).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await?;
    assert_eq!(body["changed"], true);
    let took = eventually(
        "the node enforces the new policy",
        Duration::from_secs(15),
        || async { Ok(chat(&c.http, edge, &dave, "gpt-4o-mini").await?.status == 200) },
    )
    .await?;
    println!(
        "policy change enforced {:.1} ms after the reload",
        took.as_secs_f64() * 1e3
    );
    let s = c.node_status(0).await?;
    assert_eq!(
        s["snapshot"]["policy_version"]
            .as_str()
            .map(|v| v.starts_with("2:")),
        Some(true),
        "{s}"
    );

    // Every decision is one record (in the node's record segments) naming the policies and
    // the state that decided. The writer puts it on disk within milliseconds.
    let dir = c.nodes[0].state_dir.join("records");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let record: serde_json::Value = loop {
        let mut found = None;
        for e in std::fs::read_dir(&dir)?.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                    && v["policies"] == serde_json::json!(["support-chat-mini"])
                {
                    found = Some(v);
                }
            }
        }
        match found {
            Some(r) => break r,
            None if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            None => panic!(
                "no decision record naming the new policy in {}",
                dir.display()
            ),
        }
    };
    assert!(record["snapshot_version"].as_u64().is_some(), "{record}");
    assert!(record["identity_revision"].as_u64().is_some(), "{record}");
    assert!(
        record["policy_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("2:")),
        "{record}"
    );
    assert_eq!(
        record["principal"]["user_name"], "dave@example.com",
        "{record}"
    );
    assert_eq!(record["action"], "chat", "{record}");
    assert_eq!(record["decision"], "allow", "{record}");
    Ok(())
}

/// A custom SCIM extension attribute (`clearance`) reaches the nodes as a principal attribute:
/// the demo permits contact export to Legal only with clearance 3 or more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_attributes_from_scim_decide_requests() -> anyhow::Result<()> {
    use portcullis_demo::configs::DEMO_EXTENSION;
    use portcullis_loadtest::http::call_tool;
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await?;
    let edge = c.nodes[0].proxy;
    let bob = c.token("bob@example.com");
    let r = call_tool(&c.http, edge, &bob, "export_all_contacts", 1).await?;
    assert_eq!(r.status, 200, "bob has clearance 3: {}", r.body);

    let scim = c.scim();
    let bob_id = c.ids.user("bob@example.com").to_owned();
    let set_clearance = |value: i64| {
        let scim = scim.clone();
        let path = format!("/Users/{bob_id}");
        async move {
            let body = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": format!("{DEMO_EXTENSION}:clearance"), "value": value}],
            });
            let (status, v) = scim.call(reqwest::Method::PATCH, &path, Some(body)).await?;
            anyhow::ensure!(status == 200 || status == 204, "PATCH {status}: {v}");
            Ok::<_, anyhow::Error>(())
        }
    };

    set_clearance(1).await?;
    eventually(
        "lowered clearance is enforced",
        Duration::from_secs(15),
        || async {
            Ok(call_tool(&c.http, edge, &bob, "export_all_contacts", 2)
                .await?
                .status
                == 403)
        },
    )
    .await?;
    // The search tool does not depend on clearance.
    let r = call_tool(&c.http, edge, &bob, "search_accounts", 3).await?;
    assert_eq!(r.status, 200, "{}", r.body);

    // A mistyped value is a SCIM error and changes nothing.
    let body = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": format!("{DEMO_EXTENSION}:clearance"), "value": "top"}],
    });
    let (status, v) = scim
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{bob_id}"),
            Some(body),
        )
        .await?;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["scimType"], "invalidValue", "{v}");

    set_clearance(4).await?;
    eventually(
        "raised clearance is enforced",
        Duration::from_secs(15),
        || async {
            Ok(call_tool(&c.http, edge, &bob, "export_all_contacts", 4)
                .await?
                .status
                == 200)
        },
    )
    .await?;

    // The offline check needs the configuration (its extension and bindings file) to know
    // the `clearance` attribute and label.
    let cp = portcullis_loadtest::proc::bin("portcullis-cp")?;
    let bare = std::process::Command::new(&cp)
        .args(["policies", "check"])
        .arg(&c.policy_dir)
        .output()?;
    assert!(!bare.status.success());
    assert!(
        String::from_utf8_lossy(&bare.stderr)
            .contains("attribute `clearance` on entity type `User` not found"),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    let with_config = std::process::Command::new(&cp)
        .args(["policies", "check", "--config"])
        .arg(&c.cp_config)
        .arg(&c.policy_dir)
        .output()?;
    assert!(
        with_config.status.success(),
        "{}",
        String::from_utf8_lossy(&with_config.stderr)
    );
    Ok(())
}
