//! The identity model end to end: role bundles bound to IdP groups, versioned bindings,
//! planned end dates and break-glass access that nodes end on their own, all through the real
//! control plane, store, gRPC stream and data plane.

use portcullis_demo::configs::DEMO_EXTENSION;
use portcullis_loadtest::cluster::eventually;
use portcullis_loadtest::http::{call_tool, chat, messages};
use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

async fn one_node() -> anyhow::Result<Cluster> {
    Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await
}

/// The control plane's identity events with this `operation`, oldest first.
async fn events_named(c: &Cluster, operation: &str) -> anyhow::Result<Vec<Value>> {
    let events = c
        .get_json(&format!(
            "http://{}/admin/v1/events?limit=1000",
            c.cp_addrs.admin
        ))
        .await?;
    Ok(events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["operation"] == operation)
        .cloned()
        .collect())
}

/// Submits a bindings document (JSON) as ann@example.com.
async fn put_bindings(c: &Cluster, doc: &Value) -> anyhow::Result<reqwest::Response> {
    Ok(c.http
        .put(format!("http://{}/admin/v1/bindings", c.cp_addrs.admin))
        .header("content-type", "application/json")
        .header("x-portcullis-author", "ann@example.com")
        .body(doc.to_string())
        .send()
        .await?)
}

/// The seed scenario: Sam moves from Sales to Legal through SCIM PATCHes. The Legal role
/// bundle applies and Sales-only tools are denied on the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sam_moves_from_sales_to_legal() -> anyhow::Result<()> {
    let c = one_node().await?;
    let edge = c.nodes[0].proxy;
    let scim = c.scim();
    let sam = scim
        .create_user("sam@example.com", "Sam Sato", Some("Sales"))
        .await?;
    let (sales, legal) = (c.ids.group("Sales"), c.ids.group("Legal"));
    scim.change_members(sales, &[&sam], &[]).await?;
    let token = c.token("sam@example.com");
    eventually("Sam works as Sales", WAIT, || async {
        Ok(call_tool(&c.http, edge, &token, "update_opportunity", 1)
            .await?
            .status
            == 200)
    })
    .await?;
    assert_eq!(
        chat(&c.http, edge, &token, "gpt-4o-mini").await?.status,
        200
    );
    assert_eq!(
        messages(&c.http, edge, &token, "claude-sonnet-4-5")
            .await?
            .status,
        403,
        "Sales has no Anthropic models"
    );

    // The IdP moves Sam: out of Sales, into Legal, department changed.
    scim.change_members(sales, &[], &[&sam]).await?;
    scim.change_members(legal, &[&sam], &[]).await?;
    let (status, v) = scim
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{sam}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Legal"}],
            })),
        )
        .await?;
    assert!(status == 200 || status == 204, "{status} {v}");
    let revision = c.cp_revision().await?;
    c.wait_node_revision(0, revision, WAIT).await?;

    // The very next requests see the Legal bundle and not the Sales one.
    let r = call_tool(&c.http, edge, &token, "update_opportunity", 2).await?;
    assert_eq!(r.status, 403, "Sales-only tool after the move: {}", r.body);
    assert_eq!(
        chat(&c.http, edge, &token, "gpt-4o-mini").await?.status,
        403
    );
    assert_eq!(
        messages(&c.http, edge, &token, "claude-sonnet-4-5")
            .await?
            .status,
        200
    );
    let r = call_tool(&c.http, edge, &token, "search_accounts", 3).await?;
    assert_eq!(r.status, 200, "Legal may search: {}", r.body);
    // No clearance: the dynamic `cleared-counsel` group does not hold Sam.
    let r = call_tool(&c.http, edge, &token, "export_all_contacts", 4).await?;
    assert_eq!(r.status, 403, "{}", r.body);

    // Clearance 3 arrives as an attribute: the dynamic group (and its role) follows without
    // any group edit.
    let (status, v) = scim
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{sam}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": format!("{DEMO_EXTENSION}:clearance"), "value": 3}],
            })),
        )
        .await?;
    assert!(status == 200 || status == 204, "{status} {v}");
    eventually("the dynamic group takes Sam in", WAIT, || async {
        Ok(call_tool(&c.http, edge, &token, "export_all_contacts", 5)
            .await?
            .status
            == 200)
    })
    .await?;

    // Lifecycle: deactivated, Sam is denied at once but keeps his data; reactivated, every
    // binding he had is back without any group edit.
    scim.set_active(&sam, false).await?;
    let revision = c.cp_revision().await?;
    c.wait_node_revision(0, revision, WAIT).await?;
    let r = call_tool(&c.http, edge, &token, "search_accounts", 6).await?;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.body["error"]["data"]["reason"], "principal_inactive",
        "{}",
        r.body
    );
    scim.set_active(&sam, true).await?;
    let revision = c.cp_revision().await?;
    c.wait_node_revision(0, revision, WAIT).await?;
    let r = call_tool(&c.http, edge, &token, "export_all_contacts", 7).await?;
    assert_eq!(r.status, 200, "Legal and cleared-counsel again: {}", r.body);

    // Deleted in the IdP: gone from the snapshot, its identity events kept.
    let (status, v) = scim
        .call(reqwest::Method::DELETE, &format!("/Users/{sam}"), None)
        .await?;
    assert_eq!(status, 204, "{v}");
    let revision = c.cp_revision().await?;
    c.wait_node_revision(0, revision, WAIT).await?;
    let r = chat(&c.http, edge, &token, "gpt-4o-mini").await?;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.to_string().contains("not provisioned"), "{}", r.body);
    let history = c
        .get_json(&format!(
            "http://{}/admin/v1/events?limit=1000",
            c.cp_addrs.admin
        ))
        .await?;
    let about_sam = history["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["resource_id"] == sam.as_str())
        .count();
    assert!(
        about_sam >= 6,
        "create, patches, deactivate, reactivate, delete: {about_sam}"
    );
    Ok(())
}

fn rfc3339_in(d: Duration) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::try_from(d).unwrap_or_default()).to_string()
}

/// A contractor's end date passes while the control plane is stopped: the node denies them
/// on its own, from the snapshot it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_date_passing_while_the_control_plane_is_down_still_denies() -> anyhow::Result<()> {
    let mut c = one_node().await?;
    let edge = c.nodes[0].proxy;
    let scim = c.scim();
    let end = rfc3339_in(Duration::from_secs(6));
    let id = scim
        .create_user_with(
            "casey@example.com",
            "Casey Contractor",
            Some("Sales"),
            &[(DEMO_EXTENSION, json!({ "endDate": end }))],
        )
        .await?;
    scim.change_members(c.ids.group("Sales"), &[&id], &[])
        .await?;
    let token = c.token("casey@example.com");
    eventually("the contractor works", WAIT, || async {
        Ok(chat(&c.http, edge, &token, "gpt-4o-mini").await?.status == 200)
    })
    .await?;

    c.kill_control_plane();
    let denied = eventually("the end date is enforced", WAIT, || async {
        Ok(chat(&c.http, edge, &token, "gpt-4o-mini").await?.status == 403)
    })
    .await?;
    let r = chat(&c.http, edge, &token, "gpt-4o-mini").await?;
    assert!(
        r.body.to_string().contains("planned end date"),
        "{}",
        r.body
    );
    println!(
        "end date {end} enforced with the control plane down ({:.1} s of polling)",
        denied.as_secs_f64()
    );
    Ok(())
}

/// Receives webhook POSTs on loopback.
async fn webhook_sink() -> anyhow::Result<(String, tokio::sync::mpsc::UnboundedReceiver<Value>)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, rx))
}

/// Break-glass: activation is announced and recorded as a high-priority event; it expires
/// on the node while the control plane is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_is_announced_recorded_and_expires_without_the_control_plane()
-> anyhow::Result<()> {
    let mut c = one_node().await?;
    let edge = c.nodes[0].proxy;
    let admin = format!("http://{}", c.cp_addrs.admin);
    let (hook, mut hooks) = webhook_sink().await?;

    // Point the break-glass entry at the webhook: a new bindings version.
    let live = c.get_json(&format!("{admin}/admin/v1/bindings")).await?;
    let toml = live["toml"].as_str().unwrap_or_default().replace(
        "max_minutes = 60\n",
        &format!("max_minutes = 60\nwebhook = \"{hook}\"\n"),
    );
    let r = c
        .http
        .put(format!("{admin}/admin/v1/bindings"))
        .header("content-type", "application/toml")
        .header("x-portcullis-author", "sre@example.com")
        .body(toml)
        .send()
        .await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);

    let dave = c.token("dave@example.com");
    let r = call_tool(&c.http, edge, &dave, "update_opportunity", 1).await?;
    assert_eq!(r.status, 403, "dave has no CRM role: {}", r.body);

    // Too long is refused; the limit is the entry's.
    let r = c
        .http
        .post(format!("{admin}/admin/v1/break-glass/activate"))
        .json(
            &json!({"name": "crm-emergency", "source": "demo", "user": "dave@example.com",
                      "minutes": 61, "reason": "INC-7", "author": "sre@example.com"}),
        )
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    let r = c
        .http
        .post(format!("{admin}/admin/v1/break-glass/activate"))
        .json(
            &json!({"name": "crm-emergency", "source": "demo", "user": "dave@example.com",
                      "seconds": 6, "reason": "INC-7 CRM outage", "author": "sre@example.com"}),
        )
        .send()
        .await?;
    assert_eq!(r.status(), 201);
    let activation: Value = r.json().await?;

    let announced = tokio::time::timeout(WAIT, hooks.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("webhook channel closed"))?;
    assert_eq!(announced["event"], "break_glass.activated", "{announced}");
    assert_eq!(announced["priority"], "high");
    assert_eq!(announced["activation"]["id"], activation["id"]);
    assert_eq!(announced["activation"]["reason"], "INC-7 CRM outage");

    let events = events_named(&c, "break_glass.activate").await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["priority"], "high", "{}", events[0]);
    assert_eq!(events[0]["after"]["user_name"], "dave@example.com");

    eventually("break-glass access works", WAIT, || async {
        Ok(call_tool(&c.http, edge, &dave, "update_opportunity", 2)
            .await?
            .status
            == 200)
    })
    .await?;

    c.kill_control_plane();
    eventually("break-glass access ends at its expiry", WAIT, || async {
        Ok(call_tool(&c.http, edge, &dave, "update_opportunity", 3)
            .await?
            .status
            == 403)
    })
    .await?;
    Ok(())
}

/// Bindings are change-controlled: an invalid edit is refused with every problem and the
/// live version stays; a valid one is a new version with author and diff that reaches the
/// nodes; rollback restores the earlier content as a newer version; each is an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_are_versioned_validated_and_reversible() -> anyhow::Result<()> {
    let c = one_node().await?;
    let edge = c.nodes[0].proxy;
    let admin = format!("http://{}", c.cp_addrs.admin);
    let alice = c.token("alice@example.com");
    let put = |body: String, author: &'static str| {
        c.http
            .put(format!("{admin}/admin/v1/bindings"))
            .header("content-type", "application/toml")
            .header("x-portcullis-author", author)
            .body(body)
            .send()
    };
    let live = c.get_json(&format!("{admin}/admin/v1/bindings")).await?;
    assert_eq!(live["version"], 1, "seeded from the bindings file");
    let base = live["toml"].as_str().unwrap_or_default().to_owned();

    let bad = format!(
        "{base}\n[[bindings]]\ngroup = \"demo/Sales\"\nrole = \"ghost\"\n\n[[dynamic_groups]]\nname = \"x\"\nrule = \"clearance >= \\\"high\\\"\"\n"
    );
    let r = put(bad, "eve@example.com").await?;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await?;
    let problems = v["problems"].to_string();
    assert!(problems.contains("ghost"), "{v}");
    assert!(problems.contains("clearance is a number"), "{v}");
    assert_eq!(v["live_version"], 1);

    assert_eq!(
        messages(&c.http, edge, &alice, "claude-sonnet-4-5")
            .await?
            .status,
        403
    );
    let grant = format!("{base}\n[[bindings]]\ngroup = \"demo/Sales\"\nrole = \"legal\"\n");
    let r = put(grant, "ann@example.com").await?;
    assert_eq!(r.status(), 200);
    eventually("Sales carries the legal bundle", WAIT, || async {
        Ok(messages(&c.http, edge, &alice, "claude-sonnet-4-5")
            .await?
            .status
            == 200)
    })
    .await?;

    let history = c
        .get_json(&format!("{admin}/admin/v1/bindings/history"))
        .await?;
    let v2 = &history["versions"][0];
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["author"], "ann@example.com");
    assert!(
        v2["diff"]
            .as_str()
            .unwrap_or("")
            .contains("+group = \"demo/Sales\""),
        "{v2}"
    );

    let r = c
        .http
        .post(format!("{admin}/admin/v1/bindings/rollback"))
        .header("x-portcullis-author", "ann@example.com")
        .json(&json!({"version": 1}))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await?;
    assert_eq!(v["version"], 3);
    eventually("the rollback reaches the node", WAIT, || async {
        Ok(messages(&c.http, edge, &alice, "claude-sonnet-4-5")
            .await?
            .status
            == 403)
    })
    .await?;

    let updates = events_named(&c, "bindings.update").await?;
    assert_eq!(updates.len(), 3, "{updates:?}");
    assert_eq!(updates[2]["detail"], "rollback to version 1");
    Ok(())
}

/// New IdP groups no binding mentions are held for review, and a nesting cycle in the IdP's
/// data is reported (admin API and a high-priority event) without hurting anyone's access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_groups_are_held_and_cycles_reported() -> anyhow::Result<()> {
    let c = one_node().await?;
    let edge = c.nodes[0].proxy;
    let admin = format!("http://{}", c.cp_addrs.admin);
    let scim = c.scim();
    let a = scim.create_group("Loop A", &[]).await?;
    let b = scim.create_group("Loop B", &[&a]).await?;
    scim.change_members(&a, &[&b], &[]).await?;
    let revision = c.cp_revision().await?;
    c.wait_node_revision(0, revision, WAIT).await?;

    let report = c
        .get_json(&format!("{admin}/admin/v1/identity/report"))
        .await?;
    let r = &report["report"];
    let mut cyclic: Vec<String> = serde_json::from_value(r["cyclic_groups"].clone())?;
    cyclic.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(cyclic, expected, "{report}");
    let held: Vec<&str> = r["unbound_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["status"] == "held")
        .filter_map(|g| g["group"].as_str())
        .collect();
    assert!(
        held.contains(&"demo/Loop A") && held.contains(&"demo/Loop B"),
        "{report}"
    );
    assert_eq!(r["dynamic_groups"]["cleared-counsel"], 1, "bob: {report}");

    let cycles = events_named(&c, "cycle.detected").await?;
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(cycles[0]["priority"], "high");
    assert_eq!(cycles[0]["outcome"], "reported");

    // Everyone else is unaffected.
    let alice = c.token("alice@example.com");
    assert_eq!(
        chat(&c.http, edge, &alice, "gpt-4o-mini").await?.status,
        200
    );
    Ok(())
}

/// Attribute mappings and resource labels: the demo maps `clearance` from a token claim (listed
/// first) and the SCIM extension, with default 0, and labels the CRM export tool clearance 3;
/// the `clearance-gate` policy compares `principal.clearance >= resource.clearance`. A label
/// change is a bindings version that reaches the node; one that would leave the live policies
/// invalid is refused naming the policy; rollback restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_mappings_claims_and_resource_labels_decide() -> anyhow::Result<()> {
    let c = one_node().await?;
    let edge = c.nodes[0].proxy;
    let admin = format!("http://{}", c.cp_addrs.admin);
    let bob = c.token("bob@example.com");
    // Bob: Legal, clearance 3 in the directory; the export tool is labelled 3.
    eventually("Bob exports contacts", WAIT, || async {
        Ok(call_tool(&c.http, edge, &bob, "export_all_contacts", 1)
            .await?
            .status
            == 200)
    })
    .await?;

    // A token whose verified `clearance` claim says 1 wins over the directory's 3.
    let mut claims = c.issuer.claims("bob@example.com", 600);
    claims["clearance"] = json!(1);
    let lowered = c.issuer.sign(jsonwebtoken::Algorithm::ES256, &claims);
    let r = call_tool(&c.http, edge, &lowered, "export_all_contacts", 2).await?;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.to_string().contains("clearance-gate"), "{}", r.body);
    // A claim of the wrong type is ignored: the directory's value applies.
    claims["clearance"] = json!("top secret");
    let mistyped = c.issuer.sign(jsonwebtoken::Algorithm::ES256, &claims);
    let r = call_tool(&c.http, edge, &mistyped, "export_all_contacts", 3).await?;
    assert_eq!(r.status, 200, "{}", r.body);

    // Raise the tool's label to 4: a new bindings version, enforced on the next requests.
    let live = c.get_json(&format!("{admin}/admin/v1/bindings")).await?;
    let base = live["bindings"].clone();
    let export = |doc: &mut Value| -> anyhow::Result<()> {
        let resources = doc["resources"]
            .as_array_mut()
            .ok_or_else(|| anyhow::anyhow!("no resources in {base}"))?;
        let tool = resources
            .iter_mut()
            .find(|r| r["id"] == "crm/export_all_contacts")
            .ok_or_else(|| anyhow::anyhow!("the export tool is not labelled"))?;
        assert_eq!(tool["labels"]["clearance"], 3);
        tool["labels"]["clearance"] = json!(4);
        Ok(())
    };
    let mut raised = base.clone();
    export(&mut raised)?;
    let r = put_bindings(&c, &raised).await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    eventually("the raised label denies Bob", WAIT, || async {
        Ok(call_tool(&c.http, edge, &bob, "export_all_contacts", 4)
            .await?
            .status
            == 403)
    })
    .await?;
    // Other CRM tools carry the default label 0: unaffected.
    let r = call_tool(&c.http, edge, &bob, "search_accounts", 5).await?;
    assert_eq!(r.status, 200, "{}", r.body);

    // Dropping the `clearance` label would leave `clearance-gate` invalid: refused, and the
    // problem names the policy file; the live version stays.
    let mut without = base.clone();
    if let Some(labels) = without["labels"].as_object_mut() {
        labels.remove("clearance");
    }
    for r in without["resources"].as_array_mut().into_iter().flatten() {
        if let Some(l) = r["labels"].as_object_mut() {
            l.remove("clearance");
        }
    }
    let r = put_bindings(&c, &without).await?;
    let status = r.status();
    let v: Value = r.json().await?;
    assert_eq!(status, 422, "{v}");
    assert!(v["problems"].to_string().contains("mcp.cedar"), "{v}");
    assert_eq!(v["live_version"], 2, "{v}");

    // Rollback to version 1: label 3 again, Bob exports.
    let r = c
        .http
        .post(format!("{admin}/admin/v1/bindings/rollback"))
        .header("x-portcullis-author", "ann@example.com")
        .json(&json!({"version": 1}))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    eventually("rollback restores the label", WAIT, || async {
        Ok(call_tool(&c.http, edge, &bob, "export_all_contacts", 6)
            .await?
            .status
            == 200)
    })
    .await?;

    // The live policy version was validated against the declared attributes and labels.
    let policy = c.get_json(&format!("{admin}/admin/v1/policies")).await?;
    let clearance = policy["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == "clearance")
        .cloned()
        .unwrap_or_default();
    assert_eq!(clearance["default"], json!({"Long": 0}), "{policy}");
    assert_eq!(clearance["claim"], "clearance", "{policy}");
    let labels: Vec<&str> = policy["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(labels, ["classification", "clearance"], "{policy}");
    Ok(())
}

/// Federation: a verified token from the demo issuer naming the admitted partner tenant
/// (`tid = "contoso"`) is a principal without being provisioned, with the partner's own
/// bindings; another tenant is refused with a reason; removing the partner from the bindings
/// ends access on the next snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_partner_users_are_principals_with_their_own_bindings() -> anyhow::Result<()> {
    let c = one_node().await?;
    let edge = c.nodes[0].proxy;
    let admin = format!("http://{}", c.cp_addrs.admin);
    let partner_token = |tenant: &str| {
        let mut claims = c.issuer.claims("pat@contoso.example", 600);
        claims["tid"] = json!(tenant);
        c.issuer.sign(jsonwebtoken::Algorithm::ES256, &claims)
    };
    let pat = partner_token("contoso");
    eventually("the partner chats with the small model", WAIT, || async {
        Ok(chat(&c.http, edge, &pat, "gpt-4o-mini").await?.status == 200)
    })
    .await?;
    assert_eq!(
        chat(&c.http, edge, &pat, "gpt-4o").await?.status,
        403,
        "only what the partner's role permits"
    );
    let r = call_tool(&c.http, edge, &pat, "search_accounts", 1).await?;
    assert_eq!(r.status, 403, "{}", r.body);

    let other = partner_token("fabrikam");
    let r = chat(&c.http, edge, &other, "gpt-4o-mini").await?;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.to_string().contains("not an admitted partner"),
        "{}",
        r.body
    );
    // A provisioned user's token is unaffected by a tenant claim.
    let mut claims = c.issuer.claims("alice@example.com", 600);
    claims["tid"] = json!("fabrikam");
    let alice = c.issuer.sign(jsonwebtoken::Algorithm::ES256, &claims);
    assert_eq!(
        chat(&c.http, edge, &alice, "gpt-4o-mini").await?.status,
        200
    );

    // The bindings drop the partner: its users are refused on the next snapshot.
    let live = c.get_json(&format!("{admin}/admin/v1/bindings")).await?;
    let mut doc = live["bindings"].clone();
    if let Some(o) = doc.as_object_mut() {
        o.remove("partners");
    }
    if let Some(b) = doc["bindings"].as_array_mut() {
        b.retain(|b| b["group"] != "partner/contoso");
    }
    let r = put_bindings(&c, &doc).await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    eventually("the partner is no longer admitted", WAIT, || async {
        Ok(chat(&c.http, edge, &pat, "gpt-4o-mini").await?.status == 403)
    })
    .await?;
    Ok(())
}
