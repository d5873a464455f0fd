use super::*;
use crate::store::now_ms;
use serde_json::json;

fn user(id: &str, name: &str) -> UserRow {
    UserRow {
        id: id.into(),
        source: "okta".into(),
        resource: json!({"userName": name, "active": true}),
        created_ms: 1,
        modified_ms: 1,
        version: 1,
        active: true,
    }
}

fn event(id: &str) -> IdentityEvent {
    IdentityEvent {
        seq: 0,
        revision: 0,
        at_ms: 5,
        source: "okta".into(),
        operation: "create".into(),
        resource_type: "User".into(),
        resource_id: id.into(),
        before: None,
        after: Some(json!({"id": id})),
        outcome: EventOutcome::Applied,
        status: None,
        detail: None,
        request: None,
        request_sha256: None,
        high_priority: false,
    }
}

#[test]
fn a_second_open_continues_where_the_first_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/portcullis.db");
    {
        let s = Store::open(&path).expect("open");
        s.blocking(|c| {
            let tx = c.transaction()?;
            put_user(&tx, &user("u1", "Ana@Example.com"))?;
            record_event(&tx, &event("u1"))?;
            allocate_snapshot_version(&tx, 0)?;
            tx.commit()?;
            Ok(())
        })
        .expect("write");
    }
    let s = Store::open(&path).expect("reopen");
    s.blocking(|c| {
        assert_eq!(identity_revision(c)?, 1);
        assert_eq!(snapshot_version(c)?, 1);
        let u = find_user_by_name(c, "okta", "ana@example.COM")?.expect("found case-insensitively");
        assert_eq!(u.id, "u1");
        let mode: String = c.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        assert_eq!(mode, "wal");
        Ok(())
    })
    .expect("read");
}

#[test]
fn uniqueness_is_per_source_and_case_insensitive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&dir.path().join("p.db")).expect("open");
    s.blocking(|c| {
        put_user(c, &user("u1", "ana@example.com"))?;
        assert!(user_name_taken(c, "okta", "ANA@example.com", "u2")?);
        assert!(!user_name_taken(c, "okta", "ana@example.com", "u1")?);
        assert!(!user_name_taken(c, "entra", "ana@example.com", "u2")?);
        Ok(())
    })
    .expect("ok");
}

#[test]
fn groups_keep_members_and_deletes_clean_up_memberships() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&dir.path().join("p.db")).expect("open");
    s.blocking(|c| {
        put_user(c, &user("u1", "a"))?;
        let inner = GroupRow {
            id: "g-inner".into(),
            source: "okta".into(),
            resource: json!({"displayName": "Inner"}),
            members: vec![Member {
                id: "u1".into(),
                kind: MemberKind::User,
                display: Some("Ana".into()),
            }],
            created_ms: 1,
            modified_ms: 1,
            version: 1,
        };
        put_group(c, &inner)?;
        let outer = GroupRow {
            id: "g-outer".into(),
            resource: json!({"displayName": "Outer"}),
            members: vec![Member {
                id: "g-inner".into(),
                kind: MemberKind::Group,
                display: None,
            }],
            ..inner.clone()
        };
        put_group(c, &outer)?;
        assert_eq!(
            groups_containing(c, "u1")?,
            [("g-inner".into(), "Inner".into())]
        );
        let listed = list_groups(c, Some("okta"))?;
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].members.len(), 1);
        let found = existing_members(c, "okta", &["u1".into(), "g-inner".into(), "nope".into()])?;
        assert_eq!(found.len(), 2);
        assert!(delete_user(c, "okta", "u1")?);
        assert!(members_of(c, "g-inner")?.is_empty());
        assert!(delete_group(c, "okta", "g-inner")?);
        assert!(members_of(c, "g-outer")?.is_empty());
        assert!(
            !delete_group(c, "entra", "g-outer")?,
            "other source's group is not visible"
        );
        Ok(())
    })
    .expect("ok");
}

#[test]
fn events_carry_the_revision_they_produced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&dir.path().join("p.db")).expect("open");
    s.blocking(|c| {
        assert_eq!(record_event(c, &event("a"))?, 1);
        assert_eq!(record_event(c, &event("b"))?, 2);
        let all = events_after(c, 0, 10)?;
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].revision, 2);
        assert_eq!(all[1].after, Some(json!({"id": "b"})));
        assert_eq!(events_after(c, all[0].seq, 10)?.len(), 1);

        // Unchanged and rejected requests are recorded without moving the revision.
        let rejected = IdentityEvent {
            outcome: EventOutcome::Rejected,
            status: Some(409),
            detail: Some("uniqueness: taken".into()),
            request: Some(json!({"userName": "b"})),
            after: None,
            ..event("b")
        };
        let unchanged = IdentityEvent {
            outcome: EventOutcome::Unchanged,
            ..event("b")
        };
        assert_eq!(record_event(c, &unchanged)?, 2);
        assert_eq!(record_event(c, &rejected)?, 2);
        assert_eq!(identity_revision(c)?, 2);
        let all = events_after(c, 0, 10)?;
        assert_eq!(all.len(), 4);
        assert_eq!(all[2].outcome, EventOutcome::Unchanged);
        assert_eq!(all[3].outcome, EventOutcome::Rejected);
        assert_eq!(all[3].status, Some(409));
        assert_eq!(all[3].request, Some(json!({"userName": "b"})));
        Ok(())
    })
    .expect("ok");
}

#[test]
fn snapshot_history_keeps_what_replay_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&dir.path().join("p.db")).expect("open");
    s.blocking(|c| {
        for v in 1..=6u64 {
            let row = SnapshotRow {
                version: v,
                identity_revision: v,
                policy_counter: 1,
                content_hash: portcullis_shared::Hash32::of(&[v as u8]),
                created_ms: v * 1000,
                payload: vec![v as u8],
            };
            // Full snapshots at 1, 3 and 5; deltas to every version after 1.
            if v % 2 == 1 {
                insert_snapshot(c, &row, 1, 3500)?;
            }
            if v > 1 {
                let delta = DeltaRow {
                    version: v,
                    base_version: v - 1,
                    identity_revision: v,
                    created_ms: v * 1000,
                    content_hash: row.content_hash,
                    payload: vec![v as u8],
                };
                insert_delta(c, &delta, 1, 3500)?;
            }
        }
        // Replay from 3.5 s on needs the full snapshot 3 (the newest before) and every
        // delta after it, though only one of each is to be kept by count.
        let fulls: Vec<i64> = c
            .prepare("SELECT version FROM snapshots ORDER BY version")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert_eq!(fulls, [3, 5]);
        let deltas: Vec<u64> = deltas_between(c, 0, 100)?
            .iter()
            .map(|d| d.version)
            .collect();
        assert_eq!(deltas, [4, 5, 6]);
        assert_eq!(snapshot_at_or_before(c, 4)?.map(|s| s.version), Some(3));
        assert_eq!(version_at(c, 4999)?, Some(4));
        assert_eq!(version_at(c, 5000)?, Some(5));
        assert_eq!(version_at(c, 10)?, None);
        Ok(())
    })
    .expect("ok");
}

#[test]
fn snapshots_are_pruned_to_the_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&dir.path().join("p.db")).expect("open");
    s.blocking(|c| {
        for _ in 0..5 {
            let v = allocate_snapshot_version(c, 0)?;
            insert_snapshot(
                c,
                &SnapshotRow {
                    version: v,
                    identity_revision: 0,
                    policy_counter: 1,
                    content_hash: portcullis_shared::Hash32::of(&[v as u8]),
                    created_ms: 0,
                    payload: vec![v as u8],
                },
                2,
                1,
            )?;
        }
        assert_eq!(latest_snapshot(c)?.map(|s| s.version), Some(5));
        let n: i64 = c.query_row("SELECT COUNT(*) FROM snapshots", [], |r| r.get(0))?;
        assert_eq!(n, 2);
        assert_eq!(
            allocate_snapshot_version(c, 100)?,
            100,
            "can jump ahead of a node"
        );
        Ok(())
    })
    .expect("ok");
}

#[test]
fn tokens_are_found_by_hash_until_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&dir.path().join("p.db")).expect("open");
    s.blocking(|c| {
        let row = TokenRow {
            id: "t1".into(),
            source: "okta".into(),
            label: None,
            created_ms: 1,
            revoked_ms: None,
            expires_ms: None,
        };
        insert_token(c, &row, "abc")?;
        assert_eq!(token_source(c, "abc")?, Some("okta".into()));
        assert_eq!(expire_tokens(c, "okta", now_ms() + 60_000)?, 1);
        assert_eq!(
            token_source(c, "abc")?,
            Some("okta".into()),
            "still inside the overlap"
        );
        assert_eq!(expire_tokens(c, "okta", 1)?, 1);
        assert_eq!(token_source(c, "abc")?, None, "expired");
        c.execute("UPDATE scim_tokens SET expires_ms = NULL", [])?;
        assert!(revoke_token(c, "t1", 2)?);
        assert_eq!(token_source(c, "abc")?, None);
        assert!(!revoke_token(c, "t1", 3)?);
        Ok(())
    })
    .expect("ok");
}
