//! Service accounts against a real store: written as SCIM writes users and groups, with
//! events naming each resource, so the publisher's incremental path sees them.

use super::*;
use crate::apikeys::{ApiKeys, IssueRequest};

fn request(name: &str, groups: &[&str]) -> CreateServiceAccount {
    CreateServiceAccount {
        name: name.into(),
        display_name: None,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        author: "alice".into(),
    }
}

#[tokio::test]
async fn accounts_are_users_of_their_source_in_groups_created_on_first_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("cp.db")).expect("store");
    let accounts = ServiceAccounts::new(store.clone());

    let bot = accounts
        .create(CreateServiceAccount {
            display_name: Some("Deploy bot".into()),
            ..request("deploy-bot", &["ci", "deployers", "CI"])
        })
        .await
        .expect("created");
    assert_eq!(
        bot.groups,
        ["ci", "deployers"],
        "one group per name, any case"
    );
    let other = accounts
        .create(request("report@jobs", &["Deployers"]))
        .await
        .expect("created");
    assert_eq!(other.groups, ["deployers"], "an existing group is joined");

    let (user, groups, changed) = store
        .run({
            let id = bot.id.clone();
            move |c| {
                Ok::<_, StoreError>((
                    store::user_by_id(c, &id)?,
                    store::list_groups(c, Some(SOURCE))?,
                    store::changed_since(c, 0)?,
                ))
            }
        })
        .await
        .expect("read");
    let user = user.expect("stored");
    assert_eq!(user.source, SOURCE);
    assert!(user.active);
    assert_eq!(user.user_name(), "deploy-bot");
    assert_eq!(user.resource["displayName"], "Deploy bot");
    assert_eq!(groups.len(), 2);
    let deployers = groups
        .iter()
        .find(|g| g.display_name() == "deployers")
        .expect("deployers");
    let mut members: Vec<&str> = deployers.members.iter().map(|m| m.id.as_str()).collect();
    members.sort();
    let mut want = [bot.id.as_str(), other.id.as_str()];
    want.sort();
    assert_eq!(members, want);
    // Every user and group written is named by an applied event.
    let mut named: Vec<(&str, &str)> = changed
        .iter()
        .map(|c| (c.resource_type.as_str(), c.resource_id.as_str()))
        .collect();
    named.sort();
    let mut expected: Vec<(&str, &str)> = vec![("User", &bot.id), ("User", &other.id)];
    expected.extend(groups.iter().map(|g| ("Group", g.id.as_str())));
    expected.sort();
    assert_eq!(named, expected);

    // Refusals.
    for (req, what) in [
        (request("deploy-bot", &[]), "exists"),
        (request("DEPLOY-BOT", &[]), "exists"),
        (request("has space", &[]), "name"),
        (request("", &[]), "name"),
        (request("ok", &["bad\"group"]), "group"),
        (
            CreateServiceAccount {
                author: " ".into(),
                ..request("ok", &[])
            },
            "author",
        ),
    ] {
        let e = accounts.create(req).await.expect_err(what);
        let matched = match what {
            "exists" => matches!(e, ServiceAccountError::Exists(_)),
            "name" => matches!(e, ServiceAccountError::Name),
            "group" => matches!(e, ServiceAccountError::Group(_)),
            _ => matches!(e, ServiceAccountError::Author),
        };
        assert!(matched, "{what}: {e}");
    }

    // Listed by name, with groups and live keys.
    let keys = ApiKeys::new(store.clone());
    keys.issue(IssueRequest {
        source: SOURCE.into(),
        user: "deploy-bot".into(),
        name: "pipeline".into(),
        expires_days: None,
        author: "alice".into(),
    })
    .await
    .expect("issued");
    let list = accounts.list().await.expect("list");
    let names: Vec<(&str, usize)> = list
        .iter()
        .map(|a| (a.name.as_str(), a.live_api_keys))
        .collect();
    assert_eq!(names, [("deploy-bot", 1), ("report@jobs", 0)]);
    assert_eq!(list[0].display_name.as_deref(), Some("Deploy bot"));

    // Deleting: the user and its memberships go, its keys are revoked, its groups stay.
    assert!(matches!(
        accounts.delete("nobody", "bob").await,
        Err(ServiceAccountError::Unknown(_))
    ));
    assert!(matches!(
        accounts.delete("deploy-bot", "").await,
        Err(ServiceAccountError::Author)
    ));
    let before = store
        .run(|c| store::identity_revision(c))
        .await
        .expect("revision");
    let deleted = accounts.delete("Deploy-Bot", "bob").await.expect("deleted");
    assert_eq!(deleted.name, "deploy-bot");
    assert_eq!(deleted.revoked_api_keys.len(), 1);
    let (user, groups, live, changed) = store
        .run({
            let id = bot.id.clone();
            move |c| {
                Ok::<_, StoreError>((
                    store::user_by_id(c, &id)?,
                    store::list_groups(c, Some(SOURCE))?,
                    store::live_api_keys(c, store::now_ms())?,
                    store::changed_since(c, before)?,
                ))
            }
        })
        .await
        .expect("read");
    assert!(user.is_none());
    assert_eq!(groups.len(), 2);
    assert!(
        groups
            .iter()
            .all(|g| g.members.iter().all(|m| m.id != bot.id))
    );
    assert!(live.is_empty());
    assert!(
        changed
            .iter()
            .any(|c| c.resource_type == "User" && c.resource_id == bot.id && c.deleted)
    );
    assert!(changed.iter().any(|c| c.resource_type == "ApiKey"));
    let list = accounts.list().await.expect("list");
    assert_eq!(list.len(), 1);
}

#[test]
fn request_bodies_name_only_known_fields() {
    let ok: CreateServiceAccount = serde_json::from_value(serde_json::json!({
        "name": "bot", "author": "alice",
    }))
    .expect("groups and display name are optional");
    assert!(ok.groups.is_empty() && ok.display_name.is_none());
    assert!(
        serde_json::from_value::<CreateServiceAccount>(serde_json::json!({
            "name": "bot", "author": "alice", "roles": ["admin"],
        }))
        .is_err()
    );
}
