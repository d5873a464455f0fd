//! The publisher against a real store: identity changes written with their events, as the
//! SCIM handlers write them, are compiled incrementally, and every published snapshot equals
//! a compile from scratch of the store at that moment.

use super::*;
use crate::bindings::Bindings;
use crate::compiler;
use crate::compiler::tests::group;
use crate::store::{EventOutcome, IdentityEvent, MemberKind, UserRow};
use portcullis_shared::snapshot::ApiKey;
use portcullis_shared::snapshot::Snapshot;
use rusqlite::Transaction;
use serde_json::json;

const BINDINGS: &str = r#"
[[roles]]
name = "engineer"
[[roles]]
name = "legal"
[[bindings]]
group = "okta/R&D"
role = "engineer"
[[dynamic_groups]]
name = "legal"
rule = 'department == "Legal"'
[[bindings]]
group = "dynamic/legal"
role = "legal"
[new_groups]
mode = "review"
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    policies: PolicyStore,
    bindings: BindingStore,
    publisher: Arc<Publisher>,
}

async fn fixture() -> Fixture {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let policy_dir = dir.path().join("policies");
    std::fs::create_dir(&policy_dir).expect("policy dir");
    std::fs::write(
        policy_dir.join("p.cedar"),
        "permit(principal in Role::\"engineer\", action, resource);\n",
    )
    .expect("policy");
    let store = Store::open(&dir.path().join("cp.db")).expect("store");
    let policies = PolicyStore::open(policy_dir, store.clone(), vec![])
        .await
        .expect("policies");
    policies.reload().await.expect("policies load");
    let bindings = BindingStore::load(store.clone()).await.expect("bindings");
    bindings
        .apply(
            Bindings::from_toml(BINDINGS).expect("toml"),
            "test",
            None,
            &policies,
        )
        .await
        .expect("bindings apply");
    let publisher = start(&store, &policies, &bindings).await;
    Fixture {
        _dir: dir,
        store,
        policies,
        bindings,
        publisher,
    }
}

fn user(id: &str, department: &str) -> UserRow {
    UserRow {
        id: id.into(),
        source: "okta".into(),
        active: true,
        resource: json!({
            "userName": format!("{id}@example.com"),
            compiler::ENTERPRISE_USER: { "department": department },
        }),
        created_ms: 0,
        modified_ms: 0,
        version: 1,
    }
}

/// Makes a change and records its applied event in one transaction, as SCIM does.
async fn change(
    store: &Store,
    kind: &'static str,
    id: &'static str,
    operation: &'static str,
    f: impl FnOnce(&Transaction<'_>) -> Result<(), StoreError> + Send + 'static,
) {
    store
        .write(move |tx| {
            f(tx)?;
            store::record_event(
                tx,
                &IdentityEvent {
                    seq: 0,
                    revision: 0,
                    at_ms: 0,
                    source: "okta".into(),
                    operation: operation.into(),
                    resource_type: kind.into(),
                    resource_id: id.into(),
                    before: None,
                    after: None,
                    outcome: EventOutcome::Applied,
                    status: None,
                    detail: None,
                    request: None,
                    request_sha256: None,
                    high_priority: false,
                },
            )
            .map(|_| ())
        })
        .await
        .expect("change");
}

fn options() -> PublisherOptions {
    PublisherOptions {
        keep_snapshots: 10,
        keep_deltas: 100,
        full_every: 4,
        history: std::time::Duration::ZERO,
        signer: FrameSigner::from_seed(&[1; 32]),
    }
}

async fn start(store: &Store, policies: &PolicyStore, bindings: &BindingStore) -> Arc<Publisher> {
    Publisher::start(
        store.clone(),
        policies.clone(),
        IssuerRegistry::new(&[]),
        PrincipalAttributes::default(),
        bindings.clone(),
        options(),
    )
    .await
    .expect("publisher")
}

/// Publishes, and checks the result against a compile from scratch of the store, and its
/// delta (when it has one) against the snapshot before.
async fn publish_and_check(f: &Fixture, mode: &str) -> Snapshot {
    let before = f
        .publisher
        .latest()
        .expect("a snapshot was published at start");
    let published = f
        .publisher
        .compile_once()
        .await
        .expect("compile")
        .expect("a new snapshot");
    assert_eq!(f.publisher.last_compile_mode(), Some(mode));
    let full = f
        .publisher
        .full_frame(&published)
        .await
        .expect("full frame");
    let (_, got) = codec::decode(&full.payload).expect("decodes");
    assert_eq!(&got, published.snapshot.as_ref());
    if let Some(step) = published.last_step() {
        let (_, d) = codec::decode_delta(&step.frame.payload).expect("delta decodes");
        assert_eq!(d.base_version, before.version);
        assert_eq!(d.apply_to(&before.snapshot).expect("applies"), got);
    }
    let (directory, keys) = f
        .store
        .read(|c| {
            let d = Directory {
                revision: store::identity_revision(c)?,
                users: store::list_users(c, None)?,
                groups: store::list_groups(c, None)?,
                activations: store::live_activations(c, store::now_ms())?,
            };
            Ok::<_, StoreError>((d, store::live_api_keys(c, store::now_ms())?))
        })
        .await
        .expect("read");
    let policy = f.policies.live().expect("policy");
    let mut fresh = Compiler::build(
        directory,
        &policy,
        &PrincipalAttributes::default(),
        &f.bindings.live().bindings,
        vec![],
    );
    fresh.set_api_keys(&keys);
    let (mut want, report) = (
        fresh.snapshot(got.version, got.created_at_ms),
        fresh.report(),
    );
    assert_ne!(got.id, 0, "every version gets an id");
    assert_ne!(got.id, before.snapshot.id);
    want.id = got.id;
    assert_eq!(got, want);
    assert_eq!(f.publisher.report().as_deref(), Some(&report));
    got
}

fn roles_of(s: &Snapshot, id: &str) -> Vec<String> {
    let u = s.users.iter().find(|u| u.id == id).expect("user");
    u.roles
        .iter()
        .map(|r| s.roles[r.role as usize].clone())
        .collect()
}

#[tokio::test]
async fn identity_changes_are_compiled_in_place_and_equal_a_fresh_compile() {
    let f = fixture().await;
    for (id, dept) in [("u1", "Sales"), ("u2", "Sales"), ("u3", "Legal")] {
        change(&f.store, "User", id, "create", move |tx| {
            store::put_user(tx, &user(id, dept))
        })
        .await;
    }
    change(&f.store, "Group", "g-rnd", "create", |tx| {
        store::put_group(tx, &group("g-rnd", "R&D", &[]))
    })
    .await;
    change(&f.store, "Group", "g-eng", "create", |tx| {
        store::put_group(
            tx,
            &group("g-eng", "Engineering", &[("u1", MemberKind::User)]),
        )
    })
    .await;
    // New groups: the state is rebuilt.
    let s = publish_and_check(&f, "full").await;
    assert!(roles_of(&s, "u1").is_empty());

    // Nesting: Engineering moves into R&D, and u1 becomes an engineer through it.
    change(&f.store, "Group", "g-rnd", "patch", |tx| {
        store::put_group(tx, &group("g-rnd", "R&D", &[("g-eng", MemberKind::Group)]))
    })
    .await;
    let s = publish_and_check(&f, "incremental").await;
    assert_eq!(roles_of(&s, "u1"), ["engineer"]);

    // A membership and an attribute change in one batch.
    change(&f.store, "Group", "g-eng", "patch", |tx| {
        store::put_group(
            tx,
            &group(
                "g-eng",
                "Engineering",
                &[("u1", MemberKind::User), ("u2", MemberKind::User)],
            ),
        )
    })
    .await;
    change(&f.store, "User", "u1", "replace", |tx| {
        store::put_user(tx, &user("u1", "Legal"))
    })
    .await;
    let s = publish_and_check(&f, "incremental").await;
    assert_eq!(roles_of(&s, "u1"), ["engineer", "legal"]);
    assert_eq!(roles_of(&s, "u2"), ["engineer"]);

    // A delete takes the user's memberships with it.
    change(&f.store, "User", "u2", "delete", |tx| {
        store::delete_user(tx, "okta", "u2").map(|_| ())
    })
    .await;
    let s = publish_and_check(&f, "incremental").await;
    assert!(s.users.iter().all(|u| u.id != "u2"));

    // A user created with the id of one just deleted starts without its memberships.
    change(&f.store, "User", "u3", "delete", |tx| {
        store::delete_user(tx, "okta", "u3").map(|_| ())
    })
    .await;
    change(&f.store, "User", "u3", "create", |tx| {
        store::put_user(tx, &user("u3", "Sales"))
    })
    .await;
    publish_and_check(&f, "incremental").await;

    // A rename changes what bindings refer to: compiled afresh.
    change(&f.store, "Group", "g-rnd", "patch", |tx| {
        store::put_group(
            tx,
            &group("g-rnd", "Research", &[("g-eng", MemberKind::Group)]),
        )
    })
    .await;
    let s = publish_and_check(&f, "full").await;
    assert_eq!(roles_of(&s, "u1"), ["legal"]);

    // Nothing changed: nothing published.
    assert!(f.publisher.compile_once().await.expect("compile").is_none());
}

#[tokio::test]
async fn versions_are_published_as_deltas_and_a_restart_resumes_the_history() {
    let f = fixture().await;
    let first = f.publisher.latest().expect("published at start");
    let mut versions = vec![first.version];
    for (i, id) in ["u1", "u2", "u3", "u4", "u5", "u6"].into_iter().enumerate() {
        change(&f.store, "User", id, "create", move |tx| {
            store::put_user(tx, &user(id, if i % 2 == 0 { "Sales" } else { "Legal" }))
        })
        .await;
        publish_and_check(&f, "incremental").await;
        let p = f.publisher.latest().expect("latest");
        let step = p.last_step().expect("a user added: published as a delta");
        assert_eq!(step.delta.users.len(), 1, "only the new user is carried");
        versions.push(p.version);
    }
    let latest = f.publisher.latest().expect("latest");
    // A node at the first version gets one delta spanning all six changes.
    let steps = latest
        .steps_from(first.version, first.snapshot.id)
        .expect("history reaches back");
    assert_eq!(steps.len(), 6);
    let frame = f.publisher.delta_frame(steps).expect("composed");
    let (_, composed) = codec::decode_delta(&frame.payload).expect("decodes");
    assert_eq!(
        (composed.base_version, composed.version),
        (first.version, latest.version)
    );
    assert_eq!(composed.users.len(), 6);
    assert_eq!(
        &composed.apply_to(&first.snapshot).expect("applies"),
        latest.snapshot.as_ref()
    );
    // Every frame is signed by the publisher's key.
    let trusted = portcullis_shared::signing::TrustedKeys::from_base64([options()
        .signer
        .public_key_base64()
        .as_str()])
    .expect("key");
    trusted
        .verify(&frame.payload, &frame.signature, &frame.key_id)
        .expect("composed delta signed");
    assert!(
        latest
            .steps_from(latest.version + 1, latest.snapshot.id)
            .is_none()
    );
    // The right number with other content: no delta.
    assert!(
        latest
            .steps_from(first.version, first.snapshot.id ^ 2)
            .is_none()
    );

    // With full_every = 4 a full snapshot was stored along the way, and deltas after it: a
    // second publisher on the same store restores the same latest version and history.
    let again = start(&f.store, &f.policies, &f.bindings).await;
    let restored = again.latest().expect("restored");
    assert_eq!(restored.version, latest.version, "nothing new to publish");
    assert_eq!(restored.snapshot, latest.snapshot);
    let steps = restored
        .steps_from(first.version, first.snapshot.id)
        .expect("history restored");
    assert_eq!(steps.len(), 6);
    let frame = again.delta_frame(steps).expect("composed");
    let (_, d) = codec::decode_delta(&frame.payload).expect("decodes");
    assert_eq!(d, composed);
}

#[tokio::test]
async fn a_restore_that_cannot_reach_the_last_version_publishes_afresh() {
    let f = fixture().await;
    change(&f.store, "User", "u1", "create", |tx| {
        store::put_user(tx, &user("u1", "Sales"))
    })
    .await;
    change(&f.store, "Group", "g-rnd", "create", |tx| {
        store::put_group(tx, &group("g-rnd", "R&D", &[("u1", MemberKind::User)]))
    })
    .await;
    let s = publish_and_check(&f, "full").await;
    assert_eq!(roles_of(&s, "u1"), ["engineer"]);

    // A bindings change: R&D now also carries `legal`. Published as a delta.
    let more = format!("{BINDINGS}\n[[bindings]]\ngroup = \"okta/R&D\"\nrole = \"legal\"\n");
    f.bindings
        .apply(
            Bindings::from_toml(&more).expect("toml"),
            "test",
            None,
            &f.policies,
        )
        .await
        .expect("bindings apply");
    let latest = f
        .publisher
        .compile_once()
        .await
        .expect("compile")
        .expect("published");
    assert!(latest.last_step().is_some(), "a delta");
    assert_eq!(roles_of(&latest.snapshot, "u1"), ["engineer", "legal"]);

    // That delta is damaged on disk: a restart can only rebuild the version before it,
    // whose identity revision is the store's. It must not take that for the latest.
    let v = latest.version;
    f.store
        .write(move |tx| {
            tx.execute(
                "UPDATE snapshot_deltas SET payload = x'00' WHERE version = ?1",
                [v as i64],
            )?;
            Ok::<_, StoreError>(())
        })
        .await
        .expect("damage");
    let again = start(&f.store, &f.policies, &f.bindings).await;
    let restored = again.latest().expect("published");
    assert!(restored.version > latest.version, "compiled afresh");
    assert_eq!(roles_of(&restored.snapshot, "u1"), ["engineer", "legal"]);
}

#[tokio::test]
async fn snapshots_carry_exactly_the_live_api_keys_and_service_accounts_as_users() {
    use crate::apikeys::{ApiKeys, IssueRequest};
    use crate::service_accounts::{self as sa, CreateServiceAccount, ServiceAccounts};
    let f = fixture().await;
    let more =
        format!("{BINDINGS}\n[[bindings]]\ngroup = \"service-accounts/ci\"\nrole = \"engineer\"\n");
    f.bindings
        .apply(
            Bindings::from_toml(&more).expect("toml"),
            "test",
            None,
            &f.policies,
        )
        .await
        .expect("bindings apply");
    change(&f.store, "User", "u1", "create", |tx| {
        store::put_user(tx, &user("u1", "Sales"))
    })
    .await;
    let (keys, accounts) = (
        ApiKeys::new(f.store.clone()),
        ServiceAccounts::new(f.store.clone()),
    );

    // A service account in a new group: a user of source `service-accounts`, bound through
    // its group like any IdP user.
    let bot = accounts
        .create(CreateServiceAccount {
            name: "ci-bot".into(),
            display_name: Some("CI".into()),
            groups: vec!["ci".into()],
            author: "alice".into(),
        })
        .await
        .expect("created");
    let s = publish_and_check(&f, "full").await;
    let u = s.users.iter().find(|u| u.id == bot.id).expect("compiled");
    assert_eq!(
        (
            u.source.as_str(),
            u.user_name.as_str(),
            u.display_name.as_str()
        ),
        (sa::SOURCE, "ci-bot", "CI")
    );
    assert!(u.active);
    let groups: Vec<String> = u
        .groups
        .iter()
        .map(|&g| {
            let g = &s.groups[g as usize];
            format!("{}/{}", g.source, g.display_name)
        })
        .collect();
    assert_eq!(groups, ["service-accounts/ci"]);
    assert_eq!(roles_of(&s, &bot.id), ["engineer"]);
    assert!(s.api_keys.is_empty());

    // Issued keys are carried by id with the hash of their text, in order of id; a key
    // change is applied in place.
    let issue = |source: &str, user: &str, days: Option<u32>| IssueRequest {
        source: source.into(),
        user: user.into(),
        name: "deploy".into(),
        expires_days: days,
        author: "alice".into(),
    };
    let (bot_key, bot_text) = keys
        .issue(issue(sa::SOURCE, "ci-bot", None))
        .await
        .expect("issued");
    let (u1_key, u1_text) = keys
        .issue(issue("okta", "u1@example.com", Some(30)))
        .await
        .expect("issued");
    let s = publish_and_check(&f, "incremental").await;
    let mut want = vec![
        ApiKey {
            id: bot_key.id.clone(),
            hash: Hash32::of(bot_text.as_bytes()),
            source: sa::SOURCE.into(),
            user_id: bot.id.clone(),
            expires_at_ms: None,
        },
        ApiKey {
            id: u1_key.id.clone(),
            hash: Hash32::of(u1_text.as_bytes()),
            source: "okta".into(),
            user_id: "u1".into(),
            expires_at_ms: u1_key.expires_ms,
        },
    ];
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(s.api_keys, want);
    let days = (u1_key.expires_ms.expect("expiry") - u1_key.created_ms) / (24 * 3600 * 1000);
    assert_eq!(days, 30);

    // A key that has expired by the time it is compiled is left out.
    change(
        &f.store,
        "ApiKey",
        "00000000000000aa",
        "api_key.issue",
        |tx| {
            store::insert_api_key(
                tx,
                &store::ApiKeyRow {
                    id: "00000000000000aa".into(),
                    name: "old".into(),
                    source: "okta".into(),
                    user_id: "u1".into(),
                    user_name: "u1@example.com".into(),
                    hash: Hash32::of(b"pcul_00000000000000aa_x"),
                    created_ms: 1,
                    expires_ms: Some(store::now_ms() - 1),
                    revoked_ms: None,
                    author: "alice".into(),
                },
            )
        },
    )
    .await;
    let s = publish_and_check(&f, "incremental").await;
    assert_eq!(s.api_keys, want);

    // Revoked: gone from the next snapshot.
    keys.revoke(&bot_key.id, "bob").await.expect("revoked");
    let s = publish_and_check(&f, "incremental").await;
    want.retain(|k| k.id != bot_key.id);
    assert_eq!(s.api_keys, want);

    // A key whose user is gone is left out too (nodes would not find the user anyway).
    change(&f.store, "User", "u1", "delete", |tx| {
        store::delete_user(tx, "okta", "u1").map(|_| ())
    })
    .await;
    let s = publish_and_check(&f, "incremental").await;
    assert!(s.api_keys.is_empty(), "{:?}", s.api_keys);

    // Deleting the service account takes it out of the snapshot and revokes its keys.
    let (again, _) = keys
        .issue(issue(sa::SOURCE, "ci-bot", None))
        .await
        .expect("issued");
    let deleted = accounts.delete("ci-bot", "bob").await.expect("deleted");
    assert_eq!(deleted.revoked_api_keys, std::slice::from_ref(&again.id));
    let s = publish_and_check(&f, "incremental").await;
    assert!(s.users.iter().all(|u| u.id != bot.id));
    assert!(s.api_keys.is_empty());
    let live = f
        .store
        .read(|c| store::live_api_keys(c, store::now_ms()))
        .await
        .expect("read");
    assert!(live.iter().all(|k| k.source != sa::SOURCE), "{live:?}");
}
