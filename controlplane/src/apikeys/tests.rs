//! Issuing, revoking and listing keys against a real store.

use super::*;
use serde_json::json;

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    keys: ApiKeys,
}

fn user(id: &str, name: &str, active: bool) -> UserRow {
    UserRow {
        id: id.into(),
        source: "okta".into(),
        resource: json!({"userName": name, "active": active}),
        created_ms: 1,
        modified_ms: 1,
        version: 1,
        active,
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("cp.db")).expect("store");
    store
        .write(|tx| {
            store::put_user(tx, &user("u-ana", "ana@example.com", true))?;
            store::put_user(tx, &user("u-gone", "gone@example.com", false))?;
            Ok::<_, StoreError>(())
        })
        .await
        .expect("users");
    Fixture {
        keys: ApiKeys::new(store.clone()),
        dir,
        store,
    }
}

fn request(user: &str) -> IssueRequest {
    IssueRequest {
        source: "okta".into(),
        user: user.into(),
        name: "laptop".into(),
        expires_days: Some(90),
        author: "alice".into(),
    }
}

async fn revision(store: &Store) -> u64 {
    store
        .run(|c| store::identity_revision(c))
        .await
        .expect("revision")
}

/// Every byte the store has on disk: the database and its write-ahead log.
fn disk_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            all.extend(std::fs::read(&path).expect("read"));
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn issuing_keeps_only_the_hash_and_records_the_event() {
    let f = fixture().await;
    let before = revision(&f.store).await;
    let (row, text) = f
        .keys
        .issue(request("ANA@example.com"))
        .await
        .expect("issued");

    // The text's shape, as nodes parse it.
    assert_eq!(ApiKey::id_of(&text), Some(row.id.as_str()));
    assert_eq!(row.id.len(), 16);
    assert!(
        row.id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    );
    let secret = text
        .strip_prefix(&format!("pcul_{}_", row.id))
        .expect("prefix and id");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret)
        .expect("base64url");
    assert_eq!(raw.len(), 32);
    assert_eq!(
        (
            row.source.as_str(),
            row.user_id.as_str(),
            row.user_name.as_str()
        ),
        ("okta", "u-ana", "ana@example.com")
    );
    assert_eq!(row.expires_ms, Some(row.created_ms + 90 * DAY_MS));

    // The store has the hash of the whole text, and nowhere the text or the secret.
    let stored = f
        .store
        .run({
            let id = row.id.clone();
            move |c| store::get_api_key(c, &id)
        })
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored, row);
    assert_eq!(stored.hash, Hash32::of(text.as_bytes()));
    f.store
        .run(|c| {
            c.execute_batch("PRAGMA wal_checkpoint(FULL);")?;
            Ok::<_, StoreError>(())
        })
        .await
        .expect("checkpoint");
    let disk = disk_bytes(f.dir.path());
    assert!(contains(&disk, row.id.as_bytes()), "the scan sees the rows");
    assert!(
        !contains(&disk, text.as_bytes()),
        "the key's text is on disk"
    );
    assert!(!contains(&disk, secret.as_bytes()), "the secret is on disk");
    // Nor in what the store hands out (the JSON form leaves the hash out too).
    let json = serde_json::to_string(&stored).expect("json");
    assert!(!json.contains(secret) && !json.contains(&stored.hash.to_hex()));

    // One applied event, about the key, in the same transaction.
    assert_eq!(revision(&f.store).await, before + 1);
    let events = f
        .store
        .run(|c| store::events_after(c, 0, 10))
        .await
        .expect("events");
    let e = events.last().expect("an event");
    assert_eq!(
        (
            e.operation.as_str(),
            e.resource_type.as_str(),
            e.resource_id.as_str()
        ),
        ("api_key.issue", "ApiKey", row.id.as_str())
    );
    assert_eq!(e.outcome, EventOutcome::Applied);
    assert_eq!(e.after.as_ref().expect("after")["user_id"], "u-ana");
    assert!(
        !e.after
            .as_ref()
            .expect("after")
            .to_string()
            .contains(secret)
    );
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let f = fixture().await;
    let before = revision(&f.store).await;
    let refused = |r: Result<(ApiKeyRow, String), ApiKeyError>| r.expect_err("refused");

    let e = refused(f.keys.issue(request("nobody@example.com")).await);
    assert!(
        matches!(e, ApiKeyError::UnknownUser(ref s, ref u) if s == "okta" && u == "nobody@example.com"),
        "{e}"
    );
    let e = refused(
        f.keys
            .issue(IssueRequest {
                source: "entra".into(),
                ..request("u-ana")
            })
            .await,
    );
    assert!(
        matches!(e, ApiKeyError::UnknownUser(..)),
        "another source's user: {e}"
    );
    let e = refused(f.keys.issue(request("gone@example.com")).await);
    assert!(matches!(e, ApiKeyError::Inactive(..)), "{e}");
    let e = refused(
        f.keys
            .issue(IssueRequest {
                author: "  ".into(),
                ..request("u-ana")
            })
            .await,
    );
    assert!(matches!(e, ApiKeyError::Author), "{e}");
    let e = refused(
        f.keys
            .issue(IssueRequest {
                name: String::new(),
                ..request("u-ana")
            })
            .await,
    );
    assert!(matches!(e, ApiKeyError::Name), "{e}");
    for days in [0, MAX_EXPIRES_DAYS + 1] {
        let e = refused(
            f.keys
                .issue(IssueRequest {
                    expires_days: Some(days),
                    ..request("u-ana")
                })
                .await,
        );
        assert!(matches!(e, ApiKeyError::Expiry(d) if d == days), "{e}");
    }
    assert_eq!(revision(&f.store).await, before, "nothing recorded");
    let all = f.keys.list(None, None).await.expect("list");
    assert!(all.is_empty());

    // Request bodies name only known fields.
    let unknown = serde_json::from_value::<IssueRequest>(json!({
        "source": "okta", "user": "u-ana", "name": "x", "author": "a", "scope": "all",
    }));
    assert!(unknown.is_err());
    let minimal = serde_json::from_value::<IssueRequest>(json!({
        "source": "okta", "user": "u-ana", "name": "x", "author": "a",
    }))
    .expect("expires_days is optional");
    assert_eq!(minimal.expires_days, None);
}

#[tokio::test]
async fn revoking_ends_a_key_once_and_lists_say_so() {
    let f = fixture().await;
    let (a, _) = f
        .keys
        .issue(IssueRequest {
            expires_days: None,
            ..request("u-ana")
        })
        .await
        .expect("issued");
    let (b, _) = f.keys.issue(request("u-ana")).await.expect("issued");
    assert_eq!(a.expires_ms, None);

    assert!(matches!(
        f.keys.revoke(&a.id, "").await,
        Err(ApiKeyError::Author)
    ));
    assert!(matches!(
        f.keys.revoke("0123456789abcdef", "bob").await,
        Err(ApiKeyError::UnknownKey(_))
    ));
    let revision_before = revision(&f.store).await;
    let revoked = f.keys.revoke(&a.id, "bob").await.expect("revoked");
    assert!(revoked.revoked_ms.is_some());
    assert_eq!(revoked.state(store::now_ms()), "revoked");
    assert_eq!(revision(&f.store).await, revision_before + 1);
    assert!(matches!(
        f.keys.revoke(&a.id, "bob").await,
        Err(ApiKeyError::Revoked(_))
    ));
    let events = f
        .store
        .run(|c| store::events_after(c, 0, 100))
        .await
        .expect("events");
    let e = events.last().expect("event");
    assert_eq!(e.operation, "api_key.revoke");
    assert_eq!(e.detail.as_deref(), Some("revoked by bob"));

    let live = f
        .store
        .run(|c| store::live_api_keys(c, store::now_ms()))
        .await
        .expect("live");
    assert_eq!(live.iter().map(|k| &k.id).collect::<Vec<_>>(), [&b.id]);
    // An expiry is an instant: past it, the key is no longer live.
    let later = b.expires_ms.expect("expiry");
    let live = f
        .store
        .run(move |c| store::live_api_keys(c, later))
        .await
        .expect("live");
    assert!(live.is_empty());
    assert_eq!(b.state(later), "expired");

    // Listing by userName (with its source) or by SCIM id, revoked keys included.
    for (source, user) in [
        (Some("okta"), "ana@example.com"),
        (None, "u-ana"),
        (None, "ANA@example.com"),
    ] {
        let rows = f
            .keys
            .list(source.map(str::to_owned), Some(user.to_owned()))
            .await
            .expect("list");
        let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        let mut want = [a.id.as_str(), b.id.as_str()];
        want.sort();
        assert_eq!(ids, want);
    }
    let none = f.keys.list(Some("entra".into()), None).await.expect("list");
    assert!(none.is_empty());
}
