//! API keys and service accounts against a real control plane, through the CLI and the admin
//! API: a service account is created, a key issued for it reaches a node in the next snapshot
//! (only its hash), and a revocation takes it out of the next one.

mod common;

use common::watch::Watcher;
use common::{Scim, cp, start, write_config};
use portcullis_shared::Hash32;
use portcullis_shared::snapshot::ApiKey;
use serde_json::{Value, json};
use std::time::Instant;

async fn identity_revision(admin: &str) -> u64 {
    let v: Value = reqwest::get(format!("{admin}/admin/v1/status"))
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    v["identity_revision"].as_u64().expect("revision")
}

async fn post(admin: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{admin}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("a JSON answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_for_service_accounts_reach_nodes_and_leave_with_revocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let server = start(&write_config(dir.path(), &hash));
    let admin = server.admin.clone();
    let mut node = Watcher::connect(&server.grpc, &token, "edge-keys").await;
    let with_admin = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--admin-url", admin.as_str()]);
        cp(&all)
    };

    // A service account in a new group.
    let (ok, out) = with_admin(&[
        "service-accounts",
        "create",
        "ci-bot",
        "--display-name",
        "CI",
        "--group",
        "ci",
        "--group",
        "deployers",
        "--author",
        "alice",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = with_admin(&["service-accounts", "list"]);
    assert!(
        ok && out.contains("ci-bot") && out.contains("ci, deployers"),
        "{out}"
    );

    // A key for it: printed once on stdout, with its id on stderr.
    let (ok, out) = with_admin(&[
        "api-keys",
        "issue",
        "--source",
        "service-accounts",
        "--user",
        "ci-bot",
        "--name",
        "nightly",
        "--expires-days",
        "30",
        "--author",
        "alice",
    ]);
    assert!(ok, "{out}");
    let key = out
        .lines()
        .find(|l| l.starts_with("pcul_"))
        .expect("the key is printed")
        .to_owned();
    let id = ApiKey::id_of(&key).expect("the key's shape").to_owned();
    assert!(out.contains(&format!("issued API key {id}")), "{out}");

    // The next snapshot carries the account as a user of its source, and the key's hash.
    let snapshot = node.at_least(identity_revision(&admin).await).await;
    let bot = snapshot
        .users
        .iter()
        .find(|u| u.source == "service-accounts" && u.user_name == "ci-bot")
        .expect("the service account is a user");
    let mut groups: Vec<String> = bot
        .groups
        .iter()
        .map(|&g| snapshot.groups[g as usize].display_name.clone())
        .collect();
    groups.sort();
    assert_eq!(groups, ["ci", "deployers"]);
    let carried: Vec<&ApiKey> = snapshot.api_keys.iter().filter(|k| k.id == id).collect();
    assert_eq!(carried.len(), 1, "{:?}", snapshot.api_keys);
    assert_eq!(carried[0].hash, Hash32::of(key.as_bytes()));
    assert_eq!(
        (carried[0].source.as_str(), carried[0].user_id.as_str()),
        ("service-accounts", bot.id.as_str())
    );
    assert!(carried[0].expires_at_ms.is_some());

    // Listed without the secret, as live.
    let (ok, out) = with_admin(&[
        "api-keys",
        "list",
        "--source",
        "service-accounts",
        "--user",
        "ci-bot",
    ]);
    assert!(ok && out.contains(&id) && out.contains("live"), "{out}");
    assert!(!out.contains(&key), "{out}");

    // The admin API refuses bad requests in its JSON error shape.
    let issue = |extra: Value| {
        let mut body = json!({"source": "service-accounts", "user": "ci-bot", "name": "x",
                              "author": "alice"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    for (body, status) in [
        (issue(json!({"scopes": ["all"]})), 400),
        (issue(json!({"user": "nobody"})), 404),
        (issue(json!({"author": ""})), 422),
        (issue(json!({"expires_days": 0})), 422),
        (issue(json!({"expires_days": 3651})), 422),
    ] {
        let (got, v) = post(&admin, "/admin/v1/api-keys", body.clone()).await;
        assert_eq!(got, status, "{body} → {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let (status, v) = post(
        &admin,
        "/admin/v1/service-accounts",
        json!({"name": "CI-BOT", "author": "alice"}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    let (status, v) = post(
        &admin,
        "/admin/v1/service-accounts/nobody/delete",
        json!({"author": "alice"}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    // The CLI checks what it can before asking.
    let (ok, out) = with_admin(&[
        "api-keys",
        "issue",
        "--source",
        "service-accounts",
        "--user",
        "ci-bot",
        "--name",
        "x",
        "--expires-days",
        "0",
        "--author",
        "alice",
    ]);
    assert!(!ok && out.contains("--expires-days"), "{out}");
    // No SCIM client writes to the service accounts' source.
    let scim = Scim::new(format!("{}/service-accounts", server.scim), &token);
    let (status, _, body) = scim.call(reqwest::Method::GET, "/Users", None).await;
    assert_eq!(status, 401, "{body}");

    // Revoked: the next snapshot no longer carries it.
    let asked = Instant::now();
    let (ok, out) = with_admin(&["api-keys", "revoke", &id, "--author", "bob"]);
    assert!(ok && out.contains("revoked"), "{out}");
    let snapshot = node.at_least(identity_revision(&admin).await).await;
    eprintln!(
        "the revocation reached the node {:?} after the CLI was started",
        asked.elapsed()
    );
    assert!(snapshot.api_keys.iter().all(|k| k.id != id));
    let (ok, out) = with_admin(&["api-keys", "revoke", &id, "--author", "bob"]);
    assert!(!ok && out.contains("revoked already"), "{out}");
    let (ok, out) = with_admin(&["api-keys", "list", "--json"]);
    assert!(ok, "{out}");
    let listed: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(listed["api_keys"][0]["state"], "revoked", "{listed}");

    // Deleting the account takes it out of the next snapshot with its keys.
    let (ok, out) = with_admin(&[
        "api-keys",
        "issue",
        "--source",
        "service-accounts",
        "--user",
        "ci-bot",
        "--name",
        "again",
        "--author",
        "alice",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = with_admin(&["service-accounts", "delete", "ci-bot", "--author", "bob"]);
    assert!(ok && out.contains("revoked_api_keys"), "{out}");
    let snapshot = node.at_least(identity_revision(&admin).await).await;
    assert!(
        snapshot
            .users
            .iter()
            .all(|u| u.source != "service-accounts")
    );
    assert!(snapshot.api_keys.is_empty(), "{:?}", snapshot.api_keys);
    let (ok, out) = with_admin(&["service-accounts", "list", "--json"]);
    assert!(ok, "{out}");
    assert!(out.contains("\"service_accounts\": []"), "{out}");
}
