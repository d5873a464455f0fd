//! Each IdP's SCIM client replayed against the real control plane: the requests that IdP
//! sends for create → update → group moves → deactivate → reactivate → delete, in its own
//! dialect. After each step the test checks what is stored (through SCIM, as the IdP would
//! read it back) and what a data-plane node receives: the snapshot streamed over gRPC, and
//! the decision it gives (`permit … Group::"<source>/Sales" … chat`).
//!
//! The request shapes follow each IdP's documentation and published captures; where an IdP
//! documents nothing (Google's update shapes), the standard RFC 7644 shape is used.

mod common;

use common::watch::Watcher;
use common::{ControlPlane, Scim, start};
use portcullis_shared::engine::{Effect, Engine, Lookup};
use portcullis_shared::request::{Action, Request, RequestContext, Resource};
use portcullis_shared::snapshot::{PrincipalClaim, Snapshot};
use reqwest::Method;
use serde_json::{Value, json};

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One control plane with one source (named after the IdP), a SCIM client for it, and a test
/// node watching snapshots.
struct Replay {
    scim: Scim,
    source: &'static str,
    admin: String,
    watcher: Watcher,
    step: &'static str,
    _cp: ControlPlane,
    _dir: tempfile::TempDir,
}

impl Replay {
    async fn start(source: &'static str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (token, hash) = portcullis_controlplane::cli::new_token();
        let (node_token, node_hash) = portcullis_controlplane::cli::new_token();
        std::fs::create_dir_all(dir.path().join("policies")).expect("mkdir");
        std::fs::write(
            dir.path().join("policies/sales.cedar"),
            format!(
                "permit (principal in Group::\"{source}/Sales\", action == Action::\"chat\", resource);\n"
            ),
        )
        .expect("policy");
        let config = dir.path().join("cp.toml");
        std::fs::write(
            &config,
            format!(
                r#"
data_dir = "data"
policy_dir = "policies"
[listen]
scim = "127.0.0.1:0"
admin = "127.0.0.1:0"
grpc = "127.0.0.1:0"
[nodes]
token_sha256 = ["{node_hash}"]
[[sources]]
name = "{source}"
scim_token_sha256 = ["{hash}"]
"#
            ),
        )
        .expect("config");
        let cp = start(&config);
        let watcher = Watcher::connect(&cp.grpc, &node_token, "replay-node").await;
        Self {
            scim: Scim::new(format!("{}/{source}", cp.scim), &token),
            source,
            admin: cp.admin.clone(),
            watcher,
            step: "start",
            _cp: cp,
            _dir: dir,
        }
    }

    /// Sends a request and checks its status; returns the body.
    async fn send(&self, method: Method, path: &str, body: Option<Value>, want: u16) -> Value {
        let (status, _, v) = self.scim.call(method.clone(), path, body.clone()).await;
        assert_eq!(
            status,
            want,
            "[{} / {}] {method} {path} {}\n→ {v}",
            self.source,
            self.step,
            body.map(|b| b.to_string()).unwrap_or_default()
        );
        v
    }

    async fn patch(&self, path: &str, operations: Value) -> Value {
        let body = json!({"schemas": [PATCH], "Operations": operations});
        self.send(Method::PATCH, path, Some(body), 200).await
    }

    async fn get(&self, path: &str) -> Value {
        self.send(Method::GET, path, None, 200).await
    }

    async fn admin(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.admin))
            .await
            .expect("admin")
            .json()
            .await
            .expect("json")
    }

    async fn revision(&self) -> u64 {
        self.admin("/admin/v1/status").await["identity_revision"]
            .as_u64()
            .expect("identity_revision")
    }

    /// The snapshot a node holds once it reflects every change made so far.
    async fn snapshot(&mut self) -> View {
        let revision = self.revision().await;
        View {
            snapshot: self.watcher.at_least(revision).await,
            source: self.source,
            step: self.step,
        }
    }
}

/// A snapshot as a node received it, with questions a test asks about it.
struct View {
    snapshot: Snapshot,
    source: &'static str,
    step: &'static str,
}

impl View {
    fn user(&self, user_name: &str) -> Option<&portcullis_shared::snapshot::User> {
        self.snapshot
            .users
            .iter()
            .find(|u| u.source == self.source && u.user_name == user_name)
            .map(|u| &**u)
    }

    fn expect_user(&self, user_name: &str) -> &portcullis_shared::snapshot::User {
        self.user(user_name).unwrap_or_else(|| {
            panic!(
                "[{} / {}] {user_name} is not in the snapshot",
                self.source, self.step
            )
        })
    }

    /// Display names of the user's groups, sorted.
    fn groups(&self, user_name: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .expect_user(user_name)
            .groups
            .iter()
            .map(|&g| self.snapshot.groups[g as usize].display_name.clone())
            .collect();
        names.sort();
        names
    }

    fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .snapshot
            .groups
            .iter()
            .map(|g| g.display_name.clone())
            .collect();
        names.sort();
        names
    }

    /// Whether a node holding this snapshot lets the user chat.
    fn may_chat(&self, user_name: &str) -> bool {
        let engine = Engine::new(self.snapshot.clone()).expect("the snapshot loads");
        let Lookup::Found(user) =
            engine.find_user(self.source, PrincipalClaim::EmailToUserName, user_name)
        else {
            return false;
        };
        let request = Request {
            action: Action::Chat,
            resource: Resource::Model {
                provider: "openai".into(),
                kind: "openai".into(),
                name: "gpt-4o".into(),
            },
            context: RequestContext {
                route: "/openai".into(),
                stream: false,
                ..Default::default()
            },
        };
        engine.decide(&user, &request).effect == Effect::Allow
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn total(list: &Value) -> u64 {
    list["totalResults"]
        .as_u64()
        .unwrap_or_else(|| panic!("totalResults is an integer: {list}"))
}

/// `?filter=<attr> eq "<value>"`, encoded the usual way.
fn eq_filter(attr: &str, value: &str) -> String {
    format!(
        "filter={attr}%20eq%20%22{}%22",
        value.replace('@', "%40").replace(' ', "%20")
    )
}

// ---- Microsoft Entra ID -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_id() {
    let mut r = Replay::start("entra").await;
    let ana = "ana@contoso.com";

    r.step = "connection test";
    // A random userName must give 200 and an empty list; the SCIM-compliance flag is a bare
    // query parameter.
    let probe = uuid::Uuid::new_v4().to_string();
    let v = r
        .get(&format!(
            "/Users?aadOptscim062020&{}",
            eq_filter("userName", &probe)
        ))
        .await;
    assert_eq!((total(&v), v["Resources"].clone()), (0, json!([])), "{v}");
    let v = r
        .get(&format!(
            "/Groups?excludedAttributes=members&{}",
            eq_filter("displayName", &probe)
        ))
        .await;
    assert_eq!(total(&v), 0);

    r.step = "create";
    assert_eq!(
        total(
            &r.get(&format!("/Users?{}", eq_filter("userName", ana)))
                .await
        ),
        0
    );
    let created = r
        .send(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": [CORE_USER, ENTERPRISE],
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "userName": ana,
                "active": true,
                "addresses": null,
                "title": null,
                "emails": [{"primary": true, "type": "work", "value": ana}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "Ana Silva", "familyName": "Silva", "givenName": "Ana"},
                "roles": [],
                ENTERPRISE: {"department": "Sales"}
            })),
            201,
        )
        .await;
    let ana_id = id(&created);
    assert!(created.get("addresses").is_none(), "null is unassigned");
    let boss_id = id(&r
        .send(
            Method::POST,
            "/Users",
            Some(json!({"schemas": [CORE_USER], "userName": "boss@contoso.com", "active": true, "externalId": "b0"})),
            201,
        )
        .await);
    // Entra ID does not quote values in its older filters.
    let v = r
        .get("/Users?filter=externalId+eq+0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef")
        .await;
    assert_eq!(total(&v), 1, "{v}");
    let s = r.snapshot().await;
    let u = s.expect_user(ana);
    assert!(u.active);
    assert_eq!(u.department.as_deref(), Some("Sales"));
    assert!(!s.may_chat(ana), "in no group yet");

    r.step = "update";
    let path = format!("/Users/{ana_id}");
    r.patch(
        &path,
        json!([
            {"op": "Replace", "path": "displayName", "value": "Ana Lima"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ana.lima@contoso.com"},
            {"op": "Replace", "path": "name.givenName", "value": "Ana"},
            {"op": "Replace", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "701"},
            {"op": "Add", "path": "nickName", "value": "Annie"}
        ]),
    )
    .await;
    // With the compliance flag: one path-less replace with dotted and URN-qualified keys.
    r.patch(
        &path,
        json!([{"op": "replace", "value": {
            "name.familyName": "Lima",
            format!("{ENTERPRISE}:department"): "Legal",
            "title": "Counsel"
        }}]),
    )
    .await;
    // The manager as a bare id string.
    let v = r
        .patch(
            &path,
            json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": boss_id}]),
        )
        .await;
    assert_eq!(v[ENTERPRISE]["manager"]["value"], boss_id.as_str());
    assert_eq!(v[ENTERPRISE]["department"], "Legal");
    assert_eq!(v[ENTERPRISE]["employeeNumber"], "701");
    assert_eq!(v["name"]["familyName"], "Lima");
    assert_eq!(v["emails"][0]["value"], "ana.lima@contoso.com");
    assert_eq!(v["title"], "Counsel");
    // ...and removed with a value filter on the single-valued manager.
    let v = r
        .patch(
            &path,
            json!([{"op": "Remove", "path": format!("manager[value eq \"{boss_id}\"]")}]),
        )
        .await;
    assert!(v[ENTERPRISE].get("manager").is_none(), "{v}");
    let s = r.snapshot().await;
    let u = s.expect_user(ana);
    assert_eq!(u.department.as_deref(), Some("Legal"));
    assert_eq!(u.email.as_deref(), Some("ana.lima@contoso.com"));
    assert_eq!(u.display_name, "Ana Lima");

    r.step = "group moves";
    // Groups are created empty (with a Microsoft schema URN), found by filter without
    // members, and filled by PATCH.
    let mut groups = Vec::new();
    for name in ["Sales", "Legal"] {
        let g = r
            .send(
                Method::POST,
                "/Groups",
                Some(json!({
                    "schemas": [CORE_GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                    "externalId": format!("ext-{name}"),
                    "displayName": name,
                    "meta": {"resourceType": "Group"}
                })),
                201,
            )
            .await;
        groups.push(id(&g));
    }
    let (sales, legal) = (groups[0].clone(), groups[1].clone());
    let found = r
        .get(&format!(
            "/Groups?excludedAttributes=members&{}",
            eq_filter("displayName", "Sales")
        ))
        .await;
    assert_eq!(id(&found["Resources"][0]), sales);
    assert!(found["Resources"][0].get("members").is_none(), "{found}");
    let add = |who: &str| json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": who}]}]);
    let remove = |who: &str| json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": who}]}]);
    r.patch(&format!("/Groups/{sales}"), add(&ana_id)).await;
    r.patch(&format!("/Groups/{sales}"), add(&boss_id)).await;
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Sales"]);
    assert!(s.may_chat(ana));
    // Sales → Legal: a Remove with a value array removes only the listed member.
    r.patch(&format!("/Groups/{sales}"), remove(&ana_id)).await;
    r.patch(&format!("/Groups/{legal}"), add(&ana_id)).await;
    assert_eq!(
        member_ids(&r.get(&format!("/Groups/{sales}")).await),
        std::slice::from_ref(&boss_id)
    );
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Legal"]);
    assert!(!s.may_chat(ana));
    assert!(s.may_chat("boss@contoso.com"));
    // Back into Sales, both changes in one PATCH.
    r.patch(
        &format!("/Groups/{sales}"),
        json!([
            {"op": "Add", "path": "members", "value": [{"value": ana_id}]},
            {"op": "Remove", "path": "members", "value": [{"value": boss_id}]}
        ]),
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Legal", "Sales"]);
    assert!(s.may_chat(ana) && !s.may_chat("boss@contoso.com"));

    r.step = "deactivate";
    r.patch(
        &path,
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    )
    .await;
    assert_eq!(r.get(&path).await["active"], false, "still readable");
    let v = r.get("/Users?filter=active+eq+false").await;
    assert_eq!(total(&v), 1, "still found by queries");
    let s = r.snapshot().await;
    assert!(!s.expect_user(ana).active);
    assert!(!s.may_chat(ana));

    r.step = "reactivate";
    r.patch(
        &path,
        json!([{"op": "replace", "path": "active", "value": true}]),
    )
    .await;
    let s = r.snapshot().await;
    assert!(s.expect_user(ana).active);
    assert!(s.may_chat(ana));

    r.step = "delete";
    r.send(Method::DELETE, &path, None, 204).await;
    r.send(Method::GET, &path, None, 404).await;
    r.send(
        Method::PATCH,
        &path,
        Some(json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "True"}]})),
        404,
    )
    .await;
    assert!(member_ids(&r.get(&format!("/Groups/{sales}")).await).is_empty());
    r.send(Method::DELETE, &format!("/Groups/{legal}"), None, 204)
        .await;
    let s = r.snapshot().await;
    assert!(s.user(ana).is_none());
    assert_eq!(s.group_names(), ["Sales"]);
}

// ---- Okta -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta() {
    let mut r = Replay::start("okta").await;
    let ana = "test.user@okta.local";

    r.step = "connection test";
    let v = r.get("/Users?startIndex=1&count=2").await;
    for k in ["totalResults", "itemsPerPage", "startIndex"] {
        assert!(v[k].is_u64(), "{k} is an integer: {v}");
    }
    r.get("/Groups?count=100&startIndex=1").await;

    r.step = "create";
    let lookup = format!(
        "/Users?{}&startIndex=1&count=100",
        eq_filter("userName", ana)
    );
    assert_eq!(total(&r.get(&lookup).await), 0);
    let created = r
        .send(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": [CORE_USER],
                "userName": ana,
                "name": {"givenName": "Test", "familyName": "User"},
                "emails": [{"primary": true, "value": ana, "type": "work"}],
                "displayName": "Test User",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "groups": [],
                "password": "1mz050nq",
                "active": true
            })),
            201,
        )
        .await;
    let ana_id = id(&created);
    assert!(
        created.get("password").is_none(),
        "passwords are never returned"
    );
    assert_eq!(total(&r.get(&lookup).await), 1);
    let bo_id = id(&r
        .send(
            Method::POST,
            "/Users",
            Some(json!({"schemas": [CORE_USER], "userName": "bo@okta.local", "active": true})),
            201,
        )
        .await);
    let s = r.snapshot().await;
    assert!(s.expect_user(ana).active);
    assert_eq!(s.expect_user(ana).email.as_deref(), Some(ana));

    r.step = "update";
    // GET, then PUT of the whole user as returned (id, meta, schemas), plus what changed.
    let path = format!("/Users/{ana_id}");
    let mut whole = r.get(&path).await;
    whole["displayName"] = json!("Test Tester");
    whole["name"]["familyName"] = json!("Tester");
    whole["groups"] = json!([]);
    whole["password"] = json!("n3w-pa55");
    let v = r.send(Method::PUT, &path, Some(whole.clone()), 200).await;
    assert_eq!(v["name"]["familyName"], "Tester");
    assert_eq!(v["meta"]["version"], "W/\"2\"");
    // Okta re-sends profiles that did not change: accepted, recorded, nothing moves.
    let before = r.revision().await;
    let mut again = r.get(&path).await;
    again["password"] = json!("n3w-pa55");
    r.send(Method::PUT, &path, Some(again), 200).await;
    assert_eq!(r.revision().await, before);
    let s = r.snapshot().await;
    assert_eq!(s.expect_user(ana).display_name, "Test Tester");

    r.step = "group moves";
    let mut groups = Vec::new();
    for name in ["Sales", "Engineering"] {
        let g = r
            .send(
                Method::POST,
                "/Groups",
                Some(json!({"schemas": [CORE_GROUP], "displayName": name, "members": []})),
                201,
            )
            .await;
        groups.push(id(&g));
    }
    let (sales, eng) = (groups[0].clone(), groups[1].clone());
    // Every membership push starts with the group's name (and its read-only id).
    let rename =
        |gid: &str, name: &str| json!({"op": "replace", "value": {"id": gid, "displayName": name}});
    r.patch(
        &format!("/Groups/{sales}"),
        json!([rename(&sales, "Sales"), {"op": "add", "path": "members", "value": [{"value": ana_id, "display": ana}]}]),
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Sales"]);
    assert!(s.may_chat(ana));
    // The same push again (Okta re-pushes): accepted, and nothing moves.
    let before = r.revision().await;
    r.patch(
        &format!("/Groups/{sales}"),
        json!([rename(&sales, "Sales"), {"op": "add", "path": "members", "value": [{"value": ana_id, "display": ana}]}]),
    )
    .await;
    assert_eq!(r.revision().await, before);
    // Sales → Engineering.
    r.patch(
        &format!("/Groups/{sales}"),
        json!([rename(&sales, "Sales"), {"op": "remove", "path": format!("members[value eq \"{ana_id}\"]")}]),
    )
    .await;
    r.patch(
        &format!("/Groups/{eng}"),
        json!([rename(&eng, "Engineering"), {"op": "add", "path": "members", "value": [{"value": ana_id, "display": ana}]}]),
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Engineering"]);
    assert!(!s.may_chat(ana));
    // A full push replaces the member list; pushing an empty group empties it.
    r.patch(
        &format!("/Groups/{sales}"),
        json!([{"op": "replace", "path": "members", "value": [
            {"value": ana_id, "display": ana}, {"value": bo_id, "display": "bo@okta.local"}
        ]}]),
    )
    .await;
    r.patch(
        &format!("/Groups/{eng}"),
        json!([{"op": "replace", "path": "members", "value": []}]),
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Sales"]);
    assert_eq!(s.groups("bo@okta.local"), ["Sales"]);
    // A rename reaches the snapshot: the policy names okta/Sales, so it no longer applies.
    r.patch(
        &format!("/Groups/{sales}"),
        json!([rename(&sales, "Sales EMEA")]),
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Sales EMEA"]);
    assert!(!s.may_chat(ana));
    r.patch(
        &format!("/Groups/{sales}"),
        json!([rename(&sales, "Sales")]),
    )
    .await;
    // Import pages through groups with a stable order.
    let p1 = r.get("/Groups?startIndex=1&count=1").await;
    let p2 = r.get("/Groups?startIndex=2&count=1").await;
    assert_eq!((total(&p1), total(&p2)), (2, 2));
    assert_ne!(id(&p1["Resources"][0]), id(&p2["Resources"][0]));

    r.step = "deactivate";
    r.patch(
        &path,
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .await;
    let s = r.snapshot().await;
    assert!(!s.expect_user(ana).active);
    assert!(!s.may_chat(ana));

    r.step = "reactivate";
    r.patch(&path, json!([{"op": "replace", "value": {"active": true}}]))
        .await;
    let s = r.snapshot().await;
    assert!(s.may_chat(ana));

    r.step = "delete";
    // Okta never deletes users (it deactivates them); unlinking a pushed group can delete it.
    r.send(Method::DELETE, &format!("/Groups/{sales}"), None, 204)
        .await;
    r.send(Method::GET, &format!("/Groups/{sales}"), None, 404)
        .await;
    r.patch(
        &path,
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.group_names(), ["Engineering"]);
    assert!(s.groups(ana).is_empty());
    assert!(!s.expect_user(ana).active);

    // The event log holds the no-op pushes too.
    let events = r.admin("/admin/v1/events?limit=1000").await;
    let unchanged: Vec<(String, String)> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["outcome"] == "unchanged")
        .map(|e| {
            (
                e["resource_type"].as_str().unwrap_or("").to_owned(),
                e["operation"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        unchanged,
        [
            ("User".to_owned(), "replace".to_owned()),
            ("Group".to_owned(), "patch".to_owned())
        ]
    );
}

// ---- PingFederate ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_federate() {
    let mut r = Replay::start("ping").await;
    let ana = "jsmith@ping.example";
    let user = |title: &str, dept: &str, active: bool| {
        json!({
            "schemas": [CORE_USER, ENTERPRISE],
            "userName": ana,
            "name": {"givenName": "Jo", "familyName": "Smith"},
            "emails": [{"type": "work", "value": ana}],
            "title": title,
            "active": active,
            ENTERPRISE: {"department": dept}
        })
    };

    r.step = "create";
    // The documented lookup is unquoted.
    assert_eq!(
        total(
            &r.get("/Users?filter=userName+eq+jsmith%40ping.example")
                .await
        ),
        0
    );
    let ana_id = id(&r
        .send(
            Method::POST,
            "/Users",
            Some(user("Analyst", "Finance", true)),
            201,
        )
        .await);
    assert_eq!(
        total(
            &r.get("/Users?filter=userName+eq+jsmith%40ping.example")
                .await
        ),
        1
    );
    let s = r.snapshot().await;
    assert_eq!(s.expect_user(ana).department.as_deref(), Some("Finance"));

    r.step = "update";
    let path = format!("/Users/{ana_id}");
    let v = r
        .send(
            Method::PUT,
            &path,
            Some(user("Lead", "Sales Ops", true)),
            200,
        )
        .await;
    assert_eq!(v["title"], "Lead");
    let s = r.snapshot().await;
    assert_eq!(s.expect_user(ana).department.as_deref(), Some("Sales Ops"));

    r.step = "group moves";
    // Groups carry only displayName and members; Ping finds them by listing every page.
    let mut ids = std::collections::BTreeMap::new();
    for i in 0..12 {
        let name = match i {
            0 => "Sales".to_owned(),
            1 => "Legal".to_owned(),
            n => format!("Team {n:02}"),
        };
        let members = if i == 0 {
            json!([{"value": ana_id}])
        } else {
            json!([])
        };
        let g = r
            .send(
                Method::POST,
                "/Groups",
                Some(json!({"schemas": [CORE_GROUP], "displayName": name, "members": members})),
                201,
            )
            .await;
        ids.insert(name, id(&g));
    }
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let page = r.get(&format!("/Groups?startIndex={start}&count=5")).await;
        let got = page["Resources"].as_array().cloned().unwrap_or_default();
        seen.extend(got.iter().map(id));
        start += got.len();
        if got.is_empty() || start > total(&page) as usize {
            break;
        }
    }
    seen.sort();
    let mut all: Vec<String> = ids.values().cloned().collect();
    all.sort();
    assert_eq!(seen, all, "every group exactly once across pages");
    // Its default page size is larger than the server's: the server's limit applies.
    let big = r.get("/Groups?startIndex=1&count=1000").await;
    assert_eq!(big["itemsPerPage"], 12);
    let s = r.snapshot().await;
    assert!(s.may_chat(ana));
    // Memberships overwrite: PUT of each group with its full member list.
    r.send(
        Method::PUT,
        &format!("/Groups/{}", ids["Sales"]),
        Some(json!({"schemas": [CORE_GROUP], "displayName": "Sales", "members": []})),
        200,
    )
    .await;
    r.send(
        Method::PUT,
        &format!("/Groups/{}", ids["Legal"]),
        Some(json!({"schemas": [CORE_GROUP], "displayName": "Legal", "members": [{"value": ana_id}]})),
        200,
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Legal"]);
    assert!(!s.may_chat(ana));
    r.send(
        Method::PUT,
        &format!("/Groups/{}", ids["Sales"]),
        Some(json!({"schemas": [CORE_GROUP], "displayName": "Sales", "members": [{"value": ana_id}]})),
        200,
    )
    .await;

    r.step = "deactivate";
    r.send(
        Method::PUT,
        &path,
        Some(user("Lead", "Sales Ops", false)),
        200,
    )
    .await;
    let s = r.snapshot().await;
    assert!(!s.expect_user(ana).active);
    assert!(!s.may_chat(ana));

    r.step = "reactivate";
    r.send(
        Method::PUT,
        &path,
        Some(user("Lead", "Sales Ops", true)),
        200,
    )
    .await;
    let s = r.snapshot().await;
    assert!(s.may_chat(ana));

    r.step = "delete";
    r.send(Method::DELETE, &path, None, 204).await;
    r.send(
        Method::DELETE,
        &format!("/Groups/{}", ids["Team 05"]),
        None,
        204,
    )
    .await;
    assert_eq!(total(&r.get("/Groups").await), 11);
    let s = r.snapshot().await;
    assert!(s.user(ana).is_none());
    assert_eq!(s.snapshot.groups.len(), 11);
}

// ---- JumpCloud ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jumpcloud() {
    let mut r = Replay::start("jumpcloud").await;
    let ana = "ana@jc.example";

    r.step = "connection test";
    // Activation creates a test user and a test group, then deletes both.
    let test_user = "scim-test@jc.example";
    assert_eq!(
        total(
            &r.get(&format!("/Users?{}", eq_filter("userName", test_user)))
                .await
        ),
        0
    );
    let tu = id(&r
        .send(
            Method::POST,
            "/Users",
            Some(
                json!({"schemas": [CORE_USER], "userName": test_user, "active": true,
                        "name": {"givenName": "Test", "familyName": "User"},
                        "emails": [{"value": test_user, "type": "work", "primary": true}]}),
            ),
            201,
        )
        .await);
    let tg = id(&r
        .send(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": [CORE_GROUP], "displayName": "JumpCloud Test Group", "members": [{"value": tu}]})),
            201,
        )
        .await);
    r.send(Method::DELETE, &format!("/Groups/{tg}"), None, 204)
        .await;
    r.send(Method::DELETE, &format!("/Users/{tu}"), None, 204)
        .await;
    assert_eq!(total(&r.get("/Users").await), 0);
    assert_eq!(total(&r.get("/Groups").await), 0);
    let s = r.snapshot().await;
    assert!(s.snapshot.users.is_empty() && s.snapshot.groups.is_empty());

    r.step = "create";
    assert_eq!(
        total(
            &r.get(&format!("/Users?{}", eq_filter("userName", ana)))
                .await
        ),
        0
    );
    let ana_id = id(&r
        .send(
            Method::POST,
            "/Users",
            Some(
                json!({"schemas": [CORE_USER, ENTERPRISE], "userName": ana, "active": true,
                        "name": {"givenName": "Ana", "familyName": "Ruiz"},
                        "emails": [{"value": ana, "type": "work", "primary": true}],
                        ENTERPRISE: {"department": "Sales"}}),
            ),
            201,
        )
        .await);
    let s = r.snapshot().await;
    assert!(s.expect_user(ana).active);

    r.step = "update";
    // One operation per attribute, each with a path.
    let path = format!("/Users/{ana_id}");
    let v = r
        .patch(
            &path,
            json!([
                {"op": "replace", "path": "name.givenName", "value": "Anna"},
                {"op": "replace", "path": "name.familyName", "value": "Ruiz-Diaz"},
                {"op": "replace", "path": "title", "value": "AE"},
                {"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Field Sales"}
            ]),
        )
        .await;
    assert_eq!(v["name"]["givenName"], "Anna");
    let s = r.snapshot().await;
    assert_eq!(
        s.expect_user(ana).department.as_deref(),
        Some("Field Sales")
    );

    r.step = "group moves";
    // Groups are looked up by name and never created empty.
    assert_eq!(
        total(
            &r.get(&format!("/Groups?{}", eq_filter("displayName", "Sales")))
                .await
        ),
        0
    );
    let sales = id(&r
        .send(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": [CORE_GROUP], "displayName": "Sales", "members": [{"value": ana_id}]})),
            201,
        )
        .await);
    let support = id(&r
        .send(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": [CORE_GROUP], "displayName": "Support", "members": [{"value": ana_id}]})),
            201,
        )
        .await);
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Sales", "Support"]);
    assert!(s.may_chat(ana));
    // Removal comes as `members` with a value array, or with a value filter.
    r.patch(
        &format!("/Groups/{sales}"),
        json!([{"op": "remove", "path": "members", "value": [{"value": ana_id}]}]),
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Support"]);
    assert!(!s.may_chat(ana));
    r.patch(
        &format!("/Groups/{support}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{ana_id}\"]")}]),
    )
    .await;
    r.patch(
        &format!("/Groups/{sales}"),
        json!([{"op": "add", "path": "members", "value": [{"value": ana_id}]}]),
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Sales"]);

    r.step = "deactivate";
    r.patch(
        &path,
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .await;
    let s = r.snapshot().await;
    assert!(!s.may_chat(ana));

    r.step = "reactivate";
    r.patch(
        &path,
        json!([{"op": "replace", "path": "active", "value": true}]),
    )
    .await;
    let s = r.snapshot().await;
    assert!(s.may_chat(ana));

    r.step = "delete";
    r.send(Method::DELETE, &path, None, 204).await;
    r.send(Method::DELETE, &format!("/Groups/{support}"), None, 204)
        .await;
    let s = r.snapshot().await;
    assert!(s.user(ana).is_none());
    assert_eq!(s.group_names(), ["Sales"]);
}

// ---- OneLogin -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin() {
    let mut r = Replay::start("onelogin").await;
    let ana = "ana@onelogin.example";
    // OneLogin sends an admin-written template: its own schema URNs, a single email as an
    // object, and `active` as a string.
    let template = |title: &str, active: &str| {
        json!({
            "schemas": ["urn:scim:schemas:core:2.0", "urn:scim:schemas:extension:enterprise:2.0"],
            "userName": ana,
            "name": {"givenName": "Ana", "familyName": "Park"},
            "emails": {"value": ana, "primary": true},
            "title": title,
            "active": active
        })
    };

    r.step = "create";
    // The lookup carries a trailing `&`.
    let lookup = format!(
        "/Users?filter=userName+eq+%22{}%22&",
        ana.replace('@', "%40")
    );
    assert_eq!(total(&r.get(&lookup).await), 0);
    let created = r
        .send(Method::POST, "/Users", Some(template("Rep", "true")), 201)
        .await;
    let ana_id = id(&created);
    assert_eq!(created["active"], true);
    assert_eq!(created["emails"][0]["value"], ana);
    assert_eq!(total(&r.get(&lookup).await), 1);
    let s = r.snapshot().await;
    assert_eq!(s.expect_user(ana).email.as_deref(), Some(ana));

    r.step = "update";
    // PUT with a trailing `?`.
    let path = format!("/Users/{ana_id}");
    let v = r
        .send(
            Method::PUT,
            &format!("{path}?"),
            Some(template("Senior Rep", "true")),
            200,
        )
        .await;
    assert_eq!(v["title"], "Senior Rep");

    r.step = "group moves";
    let sales = id(&r
        .send(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": [CORE_GROUP], "displayName": "Sales", "members": []})),
            201,
        )
        .await);
    let eng = id(&r
        .send(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": [CORE_GROUP], "displayName": "Engineering", "members": []})),
            201,
        )
        .await);
    // "Refresh entitlements" lists every group.
    let all = r.get("/Groups").await;
    assert_eq!(total(&all), 2);
    r.patch(
        &format!("/Groups/{sales}"),
        json!([{"op": "add", "path": "members", "value": [{"value": ana_id}]}]),
    )
    .await;
    let s = r.snapshot().await;
    assert!(s.may_chat(ana));
    r.patch(
        &format!("/Groups/{sales}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{ana_id}\"]")}]),
    )
    .await;
    r.patch(
        &format!("/Groups/{eng}"),
        json!([{"op": "add", "path": "members", "value": [{"value": ana_id}]}]),
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.groups(ana), ["Engineering"]);
    assert!(!s.may_chat(ana));
    r.patch(
        &format!("/Groups/{sales}"),
        json!([{"op": "add", "path": "members", "value": [{"value": ana_id}]}]),
    )
    .await;

    r.step = "deactivate";
    r.send(
        Method::PUT,
        &format!("{path}?"),
        Some(template("Senior Rep", "false")),
        200,
    )
    .await;
    let s = r.snapshot().await;
    assert!(!s.expect_user(ana).active);
    assert!(!s.may_chat(ana));

    r.step = "reactivate";
    r.send(
        Method::PUT,
        &format!("{path}?"),
        Some(template("Senior Rep", "true")),
        200,
    )
    .await;
    let s = r.snapshot().await;
    assert!(s.may_chat(ana));

    r.step = "delete";
    r.send(Method::DELETE, &path, None, 204).await;
    let s = r.snapshot().await;
    assert!(s.user(ana).is_none());
    assert_eq!(s.group_names(), ["Engineering", "Sales"]);
}

// ---- Google Workspace -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_workspace() {
    let mut r = Replay::start("google").await;
    let ana = "ana@example.org";

    r.step = "connection test";
    let v = r.get("/Users?count=1").await;
    assert_eq!((total(&v), v["itemsPerPage"].as_u64()), (0, Some(0)));

    r.step = "create";
    assert_eq!(
        total(
            &r.get(&format!("/Users?{}", eq_filter("userName", ana)))
                .await
        ),
        0
    );
    let ana_id = id(&r
        .send(
            Method::POST,
            "/Users",
            Some(
                json!({"schemas": [CORE_USER], "userName": ana, "active": true,
                        "name": {"givenName": "Ana", "familyName": "Cruz"},
                        "emails": [{"value": ana, "type": "work", "primary": true}]}),
            ),
            201,
        )
        .await);
    let v = r.get("/Users?count=1").await;
    assert_eq!((total(&v), v["itemsPerPage"].as_u64()), (1, Some(1)));
    let s = r.snapshot().await;
    assert!(s.expect_user(ana).active);

    r.step = "update";
    let path = format!("/Users/{ana_id}");
    r.patch(
        &path,
        json!([{"op": "replace", "path": "name.familyName", "value": "Cruz Silva"},
               {"op": "replace", "path": "displayName", "value": "Ana Cruz Silva"}]),
    )
    .await;
    let s = r.snapshot().await;
    assert_eq!(s.expect_user(ana).display_name, "Ana Cruz Silva");

    r.step = "group moves";
    let sales = id(&r
        .send(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": [CORE_GROUP], "displayName": "Sales"})),
            201,
        )
        .await);
    r.patch(
        &format!("/Groups/{sales}"),
        json!([{"op": "add", "path": "members", "value": [{"value": ana_id}]}]),
    )
    .await;
    let s = r.snapshot().await;
    assert!(s.may_chat(ana));
    r.patch(
        &format!("/Groups/{sales}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{ana_id}\"]")}]),
    )
    .await;
    let s = r.snapshot().await;
    assert!(!s.may_chat(ana));
    r.patch(
        &format!("/Groups/{sales}"),
        json!([{"op": "add", "path": "members", "value": [{"value": ana_id}]}]),
    )
    .await;

    r.step = "deactivate";
    // Suspension; `active` reported as a string by some Google tenants.
    r.patch(
        &path,
        json!([{"op": "replace", "value": {"active": "false"}}]),
    )
    .await;
    let s = r.snapshot().await;
    assert!(!s.expect_user(ana).active);
    assert!(!s.may_chat(ana));

    r.step = "reactivate";
    r.patch(
        &path,
        json!([{"op": "replace", "path": "active", "value": "true"}]),
    )
    .await;
    let s = r.snapshot().await;
    assert!(s.may_chat(ana));

    r.step = "delete";
    r.send(Method::DELETE, &path, None, 204).await;
    let s = r.snapshot().await;
    assert!(s.user(ana).is_none());
}
