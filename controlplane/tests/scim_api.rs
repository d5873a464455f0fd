//! The control-plane binary over HTTP: SCIM semantics the identity flows rely on, the identity
//! event log, CLI-issued tokens, and a restart that continues where the first run stopped.

mod common;

use common::{Scim, start, write_config};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_writes_are_durable_evented_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let config = write_config(dir.path(), &hash);
    let cp = start(&config);
    let http = client();
    let scim = Scim::new(format!("{}/okta", cp.scim), &token);
    use reqwest::Method;

    // POST: 201 with Location, ETag and meta.
    let create_body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Ana@Example.com", "externalId": "00u1", "active": true,
        "emails": [{"value": "ana@example.com", "primary": true}]
    });
    let create_digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(create_body.to_string()))
    };
    let (s, h, ana) = scim.call(Method::POST, "/Users", Some(create_body)).await;
    assert_eq!(s, 201, "{ana}");
    let id = ana["id"].as_str().expect("id").to_owned();
    assert_eq!(
        h.get("location").and_then(|v| v.to_str().ok()),
        ana["meta"]["location"].as_str()
    );
    assert_eq!(h.get("etag").and_then(|v| v.to_str().ok()), Some("W/\"1\""));
    assert_eq!(ana["meta"]["resourceType"], "User");

    // Uniqueness is case-insensitive; filters find the user either way.
    let (s, _, e) = scim
        .call(
            Method::POST,
            "/Users",
            Some(json!({"userName": "ana@example.COM"})),
        )
        .await;
    assert_eq!((s, e["scimType"].as_str()), (409, Some("uniqueness")));
    let (s, _, list) = scim
        .call(
            Method::GET,
            "/Users?filter=userName%20eq%20%22ANA%40example.com%22",
            None,
        )
        .await;
    assert_eq!((s, list["totalResults"].as_u64()), (200, Some(1)), "{list}");
    let (_, _, list) = scim
        .call(
            Method::GET,
            "/Users?filter=externalId%20eq%20%2200U1%22",
            None,
        )
        .await;
    assert_eq!(list["totalResults"], 0, "externalId is case-exact");

    // Entra-style PATCH (capitalised op, boolean as a string), enterprise department.
    let (s, _, v) = scim
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": [PATCH],
                "Operations": [
                    {"op": "Replace", "path": "active", "value": "False"},
                    {"op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Legal"}
                ]
            })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["active"], false);
    assert_eq!(v[ENTERPRISE]["department"], "Legal");
    assert_eq!(v["meta"]["version"], "W/\"2\"");
    // A failing operation leaves everything unchanged (atomic PATCH).
    let (s, _, _) = scim
        .call(Method::PATCH, &format!("/Users/{id}"), Some(json!({
            "schemas": [PATCH],
            "Operations": [{"op": "replace", "path": "displayName", "value": "X"}, {"op": "remove"}]
        })))
        .await;
    assert_eq!(s, 400);
    let (_, _, v) = scim.call(Method::GET, &format!("/Users/{id}"), None).await;
    assert!(v.get("displayName").is_none(), "{v}");

    // PUT replaces and never creates.
    let (s, _, v) = scim
        .call(
            Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({"userName": "ana@example.com", "displayName": "Ana", "active": true})),
        )
        .await;
    assert_eq!((s, v["displayName"].as_str()), (200, Some("Ana")));
    let (s, _, _) = scim
        .call(
            Method::PUT,
            "/Users/does-not-exist",
            Some(json!({"userName": "x"})),
        )
        .await;
    assert_eq!(s, 404);

    // Groups: members must exist in this source; PATCH add/remove with value filters.
    let (_, _, bo) = scim
        .call(
            Method::POST,
            "/Users",
            Some(json!({"userName": "bo@example.com"})),
        )
        .await;
    let bo_id = bo["id"].as_str().expect("id").to_owned();
    let (s, _, e) = scim
        .call(
            Method::POST,
            "/Groups",
            Some(json!({"displayName": "Sales", "members": [{"value": "nobody"}]})),
        )
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{e}"
    );
    let (s, _, sales) = scim
        .call(
            Method::POST,
            "/Groups",
            Some(json!({"displayName": "Sales", "members": [{"value": id}]})),
        )
        .await;
    assert_eq!(s, 201, "{sales}");
    let gid = sales["id"].as_str().expect("id").to_owned();
    let (s, _, g) = scim
        .call(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(json!({
                "schemas": [PATCH],
                "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": bo_id}]},
                    {"op": "remove", "path": format!("members[value eq \"{id}\"]")}
                ]
            })),
        )
        .await;
    assert_eq!(s, 200, "{g}");
    let members: Vec<&str> = g["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str())
        .collect();
    assert_eq!(members, [bo_id.as_str()]);
    let (_, _, bo) = scim
        .call(Method::GET, &format!("/Users/{bo_id}"), None)
        .await;
    assert_eq!(bo["groups"][0]["display"], "Sales");

    // DELETE: 204, then 404 everywhere, and the membership is gone.
    let (s, _, _) = scim
        .call(Method::DELETE, &format!("/Users/{bo_id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, _, _) = scim
        .call(Method::GET, &format!("/Users/{bo_id}"), None)
        .await;
    assert_eq!(s, 404);
    let (_, _, g) = scim
        .call(Method::GET, &format!("/Groups/{gid}"), None)
        .await;
    assert_eq!(g["members"], json!([]));

    // Every successful change is one identity event with the next revision.
    let status: Value = http
        .get(format!("{}/admin/v1/status", cp.admin))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let revision = status["identity_revision"].as_u64().expect("revision");
    assert_eq!(
        revision, 7,
        "create, patch, put, create, create group, patch group, delete: {status}"
    );
    let events: Value = http
        .get(format!("{}/admin/v1/events", cp.admin))
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let all = events["events"].as_array().expect("events").clone();
    let outcome =
        |o: &str| -> Vec<Value> { all.iter().filter(|e| e["outcome"] == o).cloned().collect() };
    // Every refused write is recorded too, with its status, reason and body, and without
    // moving the revision: the duplicate userName, the PATCH with a bad operation, the PUT of
    // a missing user, the group with an unknown member.
    let rejected = outcome("rejected");
    let summary: Vec<(u64, &str, &str)> = rejected
        .iter()
        .map(|e| {
            (
                e["status"].as_u64().unwrap_or(0),
                e["operation"].as_str().unwrap_or(""),
                e["resource_type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (409, "create", "User"),
            (400, "patch", "User"),
            (404, "replace", "User"),
            (400, "create", "Group")
        ],
        "{rejected:?}"
    );
    assert_eq!(rejected[0]["request"]["userName"], "ana@example.COM");
    assert!(
        rejected[0]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("uniqueness: ")),
        "{}",
        rejected[0]
    );
    assert_eq!(rejected[2]["resource_id"], "does-not-exist");
    assert_eq!(
        rejected[0]["revision"], 1,
        "a refusal does not move the revision"
    );
    let events = outcome("applied");
    assert_eq!(events.len(), 7);
    assert_eq!(
        events[0]["request_sha256"], create_digest,
        "an event names the request that caused it"
    );
    assert!(
        all.iter()
            .all(|e| e["request_sha256"].as_str().is_some_and(|d| d.len() == 64)),
        "{all:?}"
    );
    assert!(
        events
            .windows(2)
            .all(|w| w[1]["revision"].as_u64() == w[0]["revision"].as_u64().map(|r| r + 1))
    );
    let patch = &events[1];
    assert_eq!(
        (patch["operation"].as_str(), patch["resource_id"].as_str()),
        (Some("patch"), Some(id.as_str()))
    );
    assert_eq!(patch["before"]["active"], true);
    assert_eq!(patch["after"]["active"], false);
    assert_eq!(events[6]["operation"], "delete");
    assert_eq!(events[6]["after"], Value::Null);

    // A token created with the CLI works at once for its source only, and can be revoked.
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis-cp"))
        .args(["scim-token", "create", "--source", "entra", "--config"])
        .arg(&config)
        .output()
        .expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entra_token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let entra = Scim::new(format!("{}/entra", cp.scim), &entra_token);
    assert_eq!(entra.call(Method::GET, "/Users", None).await.0, 200);
    let cross = Scim::new(format!("{}/okta", cp.scim), &entra_token);
    assert_eq!(cross.call(Method::GET, "/Users", None).await.0, 401);
    let list = Command::new(env!("CARGO_BIN_EXE_portcullis-cp"))
        .args(["scim-token", "list", "--config"])
        .arg(&config)
        .output()
        .expect("cli");
    let listing = String::from_utf8_lossy(&list.stdout).to_string();
    let token_id = listing
        .lines()
        .find(|l| l.contains("entra"))
        .and_then(|l| l.split_whitespace().next())
        .expect("listed")
        .to_owned();
    assert!(
        !listing.contains("pcs_"),
        "token values are never listed: {listing}"
    );
    let revoke = Command::new(env!("CARGO_BIN_EXE_portcullis-cp"))
        .args(["scim-token", "revoke", "--id", &token_id, "--config"])
        .arg(&config)
        .status()
        .expect("cli");
    assert!(revoke.success());
    assert_eq!(entra.call(Method::GET, "/Users", None).await.0, 401);

    // Killed and started again on the same directory: everything continues.
    let version = status["snapshot"]["version"].as_u64().expect("version");
    drop(cp);
    let cp = start(&config);
    let scim = Scim::new(format!("{}/okta", cp.scim), &token);
    let (s, _, v) = scim.call(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!((s, v["displayName"].as_str()), (200, Some("Ana")));
    let again: Value = http
        .get(format!("{}/admin/v1/status", cp.admin))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(again["identity_revision"].as_u64(), Some(revision));
    assert!(
        again["snapshot"]["version"].as_u64().expect("version") >= version,
        "{again}"
    );
    let (s, _, created) = scim
        .call(
            Method::POST,
            "/Users",
            Some(json!({"userName": "cy@example.com"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let after: Value = http
        .get(format!("{}/admin/v1/status", cp.admin))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(after["identity_revision"].as_u64(), Some(revision + 1));
}
