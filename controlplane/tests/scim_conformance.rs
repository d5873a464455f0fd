//! RFC 7643/7644 behaviour that scim2-tester does not exercise: discovery rules, ETags,
//! paging, projections, searches, every `scimType`, Bulk, and per-source custom extensions.

mod common;

use common::{Scim, start, write_config_with};
use reqwest::Method;
use serde_json::{Value, json};

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const ACME: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";

const LIMITS: &str = r#"
[scim]
max_page = 50
max_scan = 30
bulk_max_operations = 20
bulk_max_payload_bytes = 20000
"#;

const EXTENSION: &str = r#"
[[sources.extensions]]
urn = "urn:example:params:scim:schemas:extension:acme:2.0:User"
name = "AcmeUser"
description = "Acme clearance and ethical wall"
[[sources.extensions.attributes]]
name = "clearance"
type = "integer"
[[sources.extensions.attributes]]
name = "ethicalWall"
type = "string"
canonical_values = ["buy-side", "sell-side"]
"#;

fn assert_error(status: u16, body: &Value, want_status: u16, scim_type: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    assert_eq!(
        body["status"],
        want_status.to_string(),
        "status is a string: {body}"
    );
    assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
}

async fn create_user(s: &Scim, name: &str) -> String {
    let (st, _, v) = s
        .call(
            Method::POST,
            "/Users",
            Some(json!({"userName": name, "active": true})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_describes_what_is_supported_and_is_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let cp = start(&write_config_with(dir.path(), &hash, LIMITS, EXTENSION));
    let s = Scim::new(format!("{}/okta", cp.scim), &token);

    let (st, _, spc) = s.call(Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(st, 200);
    assert_eq!(spc["bulk"]["maxOperations"], 20);
    assert_eq!(spc["filter"]["maxResults"], 50);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["patch"]["supported"], true);

    let (_, _, rts) = s.call(Method::GET, "/ResourceTypes", None).await;
    assert_eq!(rts["totalResults"], 2);
    let user = rts["Resources"]
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["id"] == "User")
        .expect("User")
        .clone();
    let exts: Vec<&str> = user["schemaExtensions"]
        .as_array()
        .expect("exts")
        .iter()
        .filter_map(|e| e["schema"].as_str())
        .collect();
    assert_eq!(exts, [ENTERPRISE, ACME]);
    let (st, _, group) = s.call(Method::GET, "/ResourceTypes/Group", None).await;
    assert_eq!((st, group["endpoint"].as_str()), (200, Some("/Groups")));

    let (_, _, schemas) = s.call(Method::GET, "/Schemas", None).await;
    assert_eq!(schemas["totalResults"], 4);
    let (st, _, acme) = s.call(Method::GET, &format!("/Schemas/{ACME}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(acme["attributes"][0]["name"], "clearance");
    assert_eq!(acme["attributes"][0]["type"], "integer");
    assert_eq!(
        acme["attributes"][1]["canonicalValues"],
        json!(["buy-side", "sell-side"])
    );
    // Another source does not have this source's extension.
    let other = Scim::new(format!("{}/entra", cp.scim), &token);
    let (st, _, _) = other.call(Method::GET, "/Schemas", None).await;
    assert_eq!(st, 401, "the okta token does not open entra");

    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/Schemas",
        &format!("/Schemas/{ENTERPRISE}"),
    ] {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let (st, _, body) = s.call(method.clone(), path, Some(json!({}))).await;
            assert_error(st, &body, 405, None);
        }
        let (st, _, body) = s
            .call(Method::GET, &format!("{path}?filter=id%20pr"), None)
            .await;
        assert_error(st, &body, 403, None);
    }
    let (st, _, body) = s.call(Method::GET, "/Schemas/urn:nope", None).await;
    assert_error(st, &body, 404, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_paging_projections_and_searches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let cp = start(&write_config_with(dir.path(), &hash, LIMITS, EXTENSION));
    let s = Scim::new(format!("{}/okta", cp.scim), &token);

    // ETags: If-None-Match → 304; If-Match mismatch → 412 on PUT, PATCH and DELETE.
    let id = create_user(&s, "ana@x.com").await;
    let (st, h, _) = s.call(Method::GET, &format!("/Users/{id}"), None).await;
    let tag = h
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_owned();
    assert_eq!((st, tag.as_str()), (200, "W/\"1\""));
    let (st, h, body) = s
        .call_with(
            Method::GET,
            &format!("/Users/{id}"),
            None,
            &[("if-none-match", &tag)],
        )
        .await;
    assert_eq!((st, body.clone()), (304, Value::Null));
    assert_eq!(
        h.get("etag").and_then(|v| v.to_str().ok()),
        Some(tag.as_str())
    );
    let patch = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Ana"}]});
    let (st, _, body) = s
        .call_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch.clone()),
            &[("if-match", "W/\"7\"")],
        )
        .await;
    assert_error(st, &body, 412, None);
    let (st, _, body) = s
        .call_with(
            Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({"userName": "ana@x.com"})),
            &[("if-match", "W/\"7\"")],
        )
        .await;
    assert_error(st, &body, 412, None);
    let (st, _, body) = s
        .call_with(
            Method::DELETE,
            &format!("/Users/{id}"),
            None,
            &[("if-match", "W/\"7\"")],
        )
        .await;
    assert_error(st, &body, 412, None);
    let (st, h, _) = s
        .call_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(
        (st, h.get("etag").and_then(|v| v.to_str().ok())),
        (200, Some("W/\"2\""))
    );
    let (st, _, _) = s
        .call_with(
            Method::GET,
            &format!("/Users/{id}"),
            None,
            &[("if-none-match", &tag)],
        )
        .await;
    assert_eq!(st, 200, "the old tag no longer matches");

    // Paging: a stable order, 1-based startIndex, count=0 gives only the total.
    for i in 0..24 {
        create_user(&s, &format!("user{i:02}@x.com")).await;
    }
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let (st, _, page) = s
            .call(
                Method::GET,
                &format!("/Users?startIndex={start}&count=10"),
                None,
            )
            .await;
        assert_eq!(st, 200);
        assert_eq!(page["totalResults"], 25);
        assert!(page["itemsPerPage"].is_u64() && page["startIndex"].is_u64());
        let items = page["Resources"].as_array().expect("resources").clone();
        if items.is_empty() {
            break;
        }
        seen.extend(
            items
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned)),
        );
        start += 10;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        (seen.len(), sorted.len()),
        (25, 25),
        "every user exactly once"
    );
    assert_eq!(seen, sorted, "stable id order");
    let (_, _, only_total) = s.call(Method::GET, "/Users?count=0", None).await;
    assert_eq!(
        (
            only_total["totalResults"].as_u64(),
            only_total["Resources"].clone()
        ),
        (Some(25), json!([]))
    );
    let (_, _, capped) = s.call(Method::GET, "/Users?count=5000", None).await;
    assert_eq!(
        capped["itemsPerPage"], 25,
        "count is capped at max_page (50) and there are 25"
    );

    // attributes / excludedAttributes on GET, list and .search.
    let (_, _, v) = s
        .call(
            Method::GET,
            &format!("/Users/{id}?attributes=displayName"),
            None,
        )
        .await;
    assert_eq!(
        v.as_object().map(|o| {
            let mut k: Vec<_> = o.keys().cloned().collect();
            k.sort();
            k
        }),
        Some(vec!["displayName".into(), "id".into(), "schemas".into()])
    );
    let (_, _, v) = s
        .call(
            Method::GET,
            "/Users?filter=userName%20eq%20%22ana%40x.com%22&excludedAttributes=meta,active",
            None,
        )
        .await;
    assert!(
        v["Resources"][0].get("meta").is_none() && v["Resources"][0].get("active").is_none(),
        "{v}"
    );
    assert_eq!(v["Resources"][0]["userName"], "ana@x.com");
    let (st, _, v) = s
        .call(Method::POST, "/Users/.search", Some(json!({"schemas": [SEARCH], "filter": "userName sw \"user0\"", "attributes": ["userName"], "count": 3})))
        .await;
    assert_eq!(
        (st, v["totalResults"].as_u64(), v["itemsPerPage"].as_u64()),
        (200, Some(10), Some(3))
    );
    assert!(v["Resources"][0].get("active").is_none());
    // POST /.search spans Users and Groups.
    let (st, _, g) = s
        .call(
            Method::POST,
            "/Groups",
            Some(json!({"displayName": "user-admins", "members": [{"value": id}]})),
        )
        .await;
    assert_eq!(st, 201, "{g}");
    let (st, _, v) = s.call(Method::POST, "/.search", Some(json!({"schemas": [SEARCH], "filter": "displayName sw \"user-admins\" or userName eq \"ana@x.com\""}))).await;
    assert_eq!((st, v["totalResults"].as_u64()), (200, Some(2)), "{v}");
    let (_, _, v) = s
        .call(
            Method::GET,
            &format!(
                "/Groups/{}?excludedAttributes=members",
                g["id"].as_str().unwrap_or("")
            ),
            None,
        )
        .await;
    assert!(
        v.get("members").is_none() && v["displayName"] == "user-admins",
        "{v}"
    );

    // A deactivated user is still returned by GET and by queries.
    let off =
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false}}]});
    assert_eq!(
        s.call(Method::PATCH, &format!("/Users/{id}"), Some(off))
            .await
            .0,
        200
    );
    let (st, _, v) = s.call(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!((st, v["active"].clone()), (200, json!(false)));
    let (_, _, v) = s
        .call(Method::GET, "/Users?filter=active%20eq%20false", None)
        .await;
    assert_eq!(v["totalResults"], 1);

    // tooMany: this filter would examine 25 users... fine (max_scan 30); with 31 it is not.
    for i in 0..6 {
        create_user(&s, &format!("extra{i}@x.com")).await;
    }
    let (st, _, body) = s.call(Method::GET, "/Users?filter=title%20pr", None).await;
    assert_error(st, &body, 400, Some("tooMany"));
    // Indexed equality stays possible however many users there are.
    let (st, _, v) = s
        .call(
            Method::GET,
            "/Users?filter=userName%20eq%20%22extra1%40x.com%22",
            None,
        )
        .await;
    assert_eq!((st, v["totalResults"].as_u64()), (200, Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scim_type_is_returned_where_it_belongs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let cp = start(&write_config_with(dir.path(), &hash, LIMITS, EXTENSION));
    let s = Scim::new(format!("{}/okta", cp.scim), &token);
    let id = create_user(&s, "bo@x.com").await;

    let (st, _, b) = s
        .call(Method::GET, "/Users?filter=userName%20eq", None)
        .await;
    assert_error(st, &b, 400, Some("invalidFilter"));
    let (st, _, b) = s
        .call(Method::GET, "/Users?filter=active%20gt%20true", None)
        .await;
    assert_error(st, &b, 400, Some("invalidFilter"));
    let (st, _, b) = s
        .call(Method::GET, "/Users?filter=password%20eq%20%22x%22", None)
        .await;
    assert_error(st, &b, 403, Some("sensitive"));
    let (st, _, b) = s
        .call(
            Method::POST,
            "/Users",
            Some(json!({"userName": "BO@x.com"})),
        )
        .await;
    assert_error(st, &b, 409, Some("uniqueness"));
    let (st, _, b) = s.call(Method::POST, "/Users", Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:1.0:User"], "userName": "v1"}))).await;
    assert_error(st, &b, 400, Some("invalidVers"));
    let (st, _, b) = s
        .call(
            Method::POST,
            "/Users",
            Some(json!({"userName": "x", "active": "perhaps"})),
        )
        .await;
    assert_error(st, &b, 400, Some("invalidValue"));
    let (st, _, b) = s
        .call(Method::POST, "/Users", Some(json!(["not", "an", "object"])))
        .await;
    assert_error(st, &b, 400, Some("invalidSyntax"));
    let p = |ops: Value| json!({"schemas": [PATCH], "Operations": ops});
    let (st, _, b) = s
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(p(json!([{"op": "remove"}]))),
        )
        .await;
    assert_error(st, &b, 400, Some("noTarget"));
    let (st, _, b) = s.call(Method::PATCH, &format!("/Users/{id}"), Some(p(json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@b"}])))).await;
    assert_error(st, &b, 400, Some("noTarget"));
    let (st, _, b) = s
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(p(
                json!([{"op": "replace", "path": "shoeSize", "value": 9}]),
            )),
        )
        .await;
    assert_error(st, &b, 400, Some("invalidPath"));
    let (st, _, b) = s
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(p(json!([{"op": "replace", "path": "id", "value": "mine"}]))),
        )
        .await;
    assert_error(st, &b, 400, Some("mutability"));
    let (st, _, b) = s
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(p(json!([{"op": "replace", "path": "groups", "value": []}]))),
        )
        .await;
    assert_error(st, &b, 400, Some("mutability"));

    // Custom extension attributes are typed.
    let (st, _, b) = s
        .call(
            Method::POST,
            "/Users",
            Some(json!({"userName": "cy@x.com", ACME: {"clearance": "high"}})),
        )
        .await;
    assert_error(st, &b, 400, Some("invalidValue"));
    let (st, _, v) = s
        .call(
            Method::POST,
            "/Users",
            Some(
                json!({"userName": "cy@x.com", ACME: {"clearance": 3, "ethicalWall": "sell-side"}}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v[ACME]["clearance"], 3);
    assert!(
        v["schemas"]
            .as_array()
            .expect("schemas")
            .iter()
            .any(|s| s == ACME),
        "{v}"
    );
    let (st, _, b) = s
        .call(
            Method::PATCH,
            &format!("/Users/{}", v["id"].as_str().unwrap_or("")),
            Some(p(
                json!([{"op": "replace", "path": format!("{ACME}:clearance"), "value": "top"}]),
            )),
        )
        .await;
    assert_error(st, &b, 400, Some("invalidValue"));

    // Deleted: 404 for every operation, gone from queries and from uniqueness.
    assert_eq!(
        s.call(Method::DELETE, &format!("/Users/{id}"), None)
            .await
            .0,
        204
    );
    for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
        let body = match method {
            Method::PUT => Some(json!({"userName": "bo@x.com"})),
            Method::PATCH => Some(p(json!([{"op": "replace", "path": "title", "value": "x"}]))),
            _ => None,
        };
        let (st, _, b) = s.call(method, &format!("/Users/{id}"), body).await;
        assert_error(st, &b, 404, None);
    }
    let (_, _, v) = s
        .call(
            Method::GET,
            "/Users?filter=userName%20eq%20%22bo%40x.com%22",
            None,
        )
        .await;
    assert_eq!(v["totalResults"], 0);
    assert_eq!(
        create_user(&s, "bo@x.com").await.len(),
        36,
        "the userName is free again"
    );

    // A body beyond the server's limit is refused with a SCIM error, before any parsing.
    let huge = json!({"userName": "huge@x.com", "title": "x".repeat(17 << 20)});
    let (st, _, b) = s.call(Method::POST, "/Users", Some(huge)).await;
    assert_error(st, &b, 413, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_resolves_references_and_honours_its_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let cp = start(&write_config_with(dir.path(), &hash, LIMITS, ""));
    let s = Scim::new(format!("{}/okta", cp.scim), &token);

    // A group created before its members, and a manager reference: both by bulkId.
    let (st, _, r) = s
        .call(Method::POST, "/Bulk", Some(json!({"schemas": [BULK], "Operations": [
            {"method": "POST", "bulkId": "grp", "path": "/Groups",
             "data": {"displayName": "Team", "members": [{"value": "bulkId:ana"}, {"value": "bulkId:bo"}]}},
            {"method": "POST", "bulkId": "ana", "path": "/Users",
             "data": {"userName": "ana@x.com", ENTERPRISE: {"manager": {"value": "bulkId:bo"}}}},
            {"method": "POST", "bulkId": "bo", "path": "/Users", "data": {"userName": "bo@x.com"}},
            {"method": "PATCH", "path": "/Users/bulkId:bo", "data": {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Lead"}]}}
        ]})))
        .await;
    assert_eq!(st, 200, "{r}");
    let ops = r["Operations"].as_array().expect("ops").clone();
    let statuses: Vec<&str> = ops.iter().filter_map(|o| o["status"].as_str()).collect();
    assert_eq!(statuses, ["201", "201", "201", "200"], "{r}");
    let id_of = |i: usize| {
        ops[i]["location"]
            .as_str()
            .and_then(|l| l.rsplit('/').next())
            .unwrap_or("")
            .to_owned()
    };
    let (grp, ana, bo) = (id_of(0), id_of(1), id_of(2));
    let (_, _, g) = s.call(Method::GET, &format!("/Groups/{grp}"), None).await;
    let mut members: Vec<String> = g["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str().map(str::to_owned))
        .collect();
    members.sort();
    let mut want = vec![ana.clone(), bo.clone()];
    want.sort();
    assert_eq!(members, want);
    let (_, _, a) = s.call(Method::GET, &format!("/Users/{ana}"), None).await;
    assert_eq!(a[ENTERPRISE]["manager"]["value"], bo);
    let (_, _, b) = s.call(Method::GET, &format!("/Users/{bo}"), None).await;
    assert_eq!(b["title"], "Lead");

    // failOnErrors: processing stops after the first error; earlier operations stand.
    let (_, _, r) = s
        .call(Method::POST, "/Bulk", Some(json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
            {"method": "POST", "bulkId": "c", "path": "/Users", "data": {"userName": "cy@x.com"}},
            {"method": "POST", "bulkId": "dup", "path": "/Users", "data": {"userName": "ana@x.com"}},
            {"method": "POST", "bulkId": "d", "path": "/Users", "data": {"userName": "di@x.com"}}
        ]})))
        .await;
    let ops = r["Operations"].as_array().expect("ops").clone();
    assert_eq!(ops.len(), 2, "{r}");
    assert_eq!(ops[1]["status"], "409");
    assert_eq!(ops[1]["response"]["scimType"], "uniqueness");
    let (_, _, v) = s
        .call(
            Method::GET,
            "/Users?filter=userName%20eq%20%22di%40x.com%22",
            None,
        )
        .await;
    assert_eq!(v["totalResults"], 0, "not processed after failOnErrors");
    let (_, _, v) = s
        .call(
            Method::GET,
            "/Users?filter=userName%20eq%20%22cy%40x.com%22",
            None,
        )
        .await;
    assert_eq!(v["totalResults"], 1);

    // Circular or unknown references fail those operations only.
    let (_, _, r) = s
        .call(Method::POST, "/Bulk", Some(json!({"schemas": [BULK], "Operations": [
            {"method": "POST", "bulkId": "x", "path": "/Groups", "data": {"displayName": "X", "members": [{"value": "bulkId:y"}]}},
            {"method": "POST", "bulkId": "y", "path": "/Groups", "data": {"displayName": "Y", "members": [{"value": "bulkId:x"}]}},
            {"method": "POST", "bulkId": "z", "path": "/Groups", "data": {"displayName": "Z"}}
        ]})))
        .await;
    let statuses: Vec<&str> = r["Operations"]
        .as_array()
        .expect("ops")
        .iter()
        .filter_map(|o| o["status"].as_str())
        .collect();
    assert_eq!(statuses, ["409", "409", "201"], "{r}");

    // Limits: operations and payload.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
        .collect();
    let (st, _, b) = s
        .call(
            Method::POST,
            "/Bulk",
            Some(json!({"schemas": [BULK], "Operations": many})),
        )
        .await;
    assert_error(st, &b, 413, None);
    let big = json!({"schemas": [BULK], "Operations": [{"method": "POST", "bulkId": "big", "path": "/Users", "data": {"userName": "big", "title": "x".repeat(30_000)}}]});
    let (st, _, b) = s.call(Method::POST, "/Bulk", Some(big)).await;
    assert_error(st, &b, 413, None);
    let (st, _, b) = s
        .call(Method::POST, "/Bulk", Some(json!({"Operations": []})))
        .await;
    assert_error(st, &b, 400, Some("invalidSyntax"));

    // Refused operations and refused bulk requests are identity events too.
    let events: Value = s
        .http
        .get(format!("{}/admin/v1/events?limit=1000", cp.admin))
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let rejected: Vec<(String, u64, String)> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["outcome"] == "rejected")
        .map(|e| {
            (
                e["resource_type"].as_str().unwrap_or("").to_owned(),
                e["status"].as_u64().unwrap_or(0),
                e["detail"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let in_bulk: Vec<(&str, u64)> = rejected
        .iter()
        .filter(|r| r.2.starts_with("in a bulk request"))
        .map(|r| (r.0.as_str(), r.1))
        .collect();
    assert_eq!(
        in_bulk,
        [("User", 409), ("Group", 409), ("Group", 409)],
        "{rejected:?}"
    );
    let whole: Vec<(&str, u64)> = rejected
        .iter()
        .filter(|r| !r.2.starts_with("in a bulk request"))
        .map(|r| (r.0.as_str(), r.1))
        .collect();
    assert_eq!(
        whole,
        [("Bulk", 413), ("Bulk", 413), ("Bulk", 400)],
        "{rejected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_source_is_rate_limited_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let cp = start(&write_config_with(
        dir.path(),
        &hash,
        "[scim]\nrate_per_second = 4\nrate_burst = 4\n",
        "",
    ));
    let s = Scim::new(format!("{}/okta", cp.scim), &token);
    let mut limited = None;
    for _ in 0..12 {
        let (st, h, body) = s.call(Method::GET, "/Users?count=1", None).await;
        if st == 429 {
            limited = Some((h, body));
            break;
        }
        assert_eq!(st, 200);
    }
    let (h, body) = limited.expect("the 12th request within a second must be limited");
    assert_error(429, &body, 429, None);
    let wait: u64 = h
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in integer seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(s.call(Method::GET, "/Users?count=1", None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_with_an_overlap_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, hash) = portcullis_controlplane::cli::new_token();
    let config = write_config_with(dir.path(), &hash, "", "");
    let cp = start(&config);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-cp"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("cli");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let old = cli(&["scim-token", "create", "--source", "okta"]);
    let new = cli(&[
        "scim-token",
        "rotate",
        "--source",
        "okta",
        "--overlap",
        "2s",
    ]);
    let with = |t: &str| Scim::new(format!("{}/okta", cp.scim), t);
    assert_eq!(
        with(&old).call(Method::GET, "/Users", None).await.0,
        200,
        "inside the overlap"
    );
    assert_eq!(with(&new).call(Method::GET, "/Users", None).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        with(&old).call(Method::GET, "/Users", None).await.0,
        401,
        "expired after the overlap"
    );
    assert_eq!(with(&new).call(Method::GET, "/Users", None).await.0, 200);
    let listing = cli(&["scim-token", "list"]);
    assert!(
        listing.contains("expired") && listing.contains("live"),
        "{listing}"
    );
}
