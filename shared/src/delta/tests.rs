use super::*;
use crate::codec;
use crate::engine::Engine;
use crate::snapshot::ApiKey;
use crate::snapshot::PolicyFile;
use crate::snapshot::PrincipalClaim;
use proptest::prelude::*;

const GROUPS: u32 = 6;

fn group(i: u32, ancestors: Vec<u32>) -> Arc<Group> {
    Arc::new(Group {
        id: format!("g{i}"),
        source: "okta".into(),
        display_name: format!("Group {i}"),
        ancestors,
    })
}

fn user(source: &str, id: u32, active: bool, groups: Vec<u32>) -> Arc<User> {
    Arc::new(User {
        id: format!("u{id:03}"),
        source: source.into(),
        user_name: format!("user{id}@example.com"),
        // Shared by several users of a source: ambiguous lookups.
        external_id: Some(format!("x{}", id % 7)),
        display_name: format!("User {id}"),
        email: None,
        active,
        department: id.is_multiple_of(3).then(|| "R&D".into()),
        groups,
        attributes: Default::default(),
        roles: Vec::new(),
        end_at_ms: None,
        linked: None,
    })
}

/// A directory (key: is the source okta, user number): which users exist, with their activity and groups.
type Dir = std::collections::BTreeMap<(bool, u32), (bool, Vec<u32>)>;

fn snapshot(version: u64, dir: &Dir, ancestors: &[Vec<u32>]) -> Snapshot {
    let mut s = Snapshot::empty(version);
    s.identity_revision = version * 10;
    s.created_at_ms = 1_000 + version;
    s.policies.push(PolicyFile {
        name: "p.cedar".into(),
        text: "permit(principal, action, resource);".into(),
    });
    s.groups = (0..GROUPS)
        .map(|i| group(i, ancestors[i as usize].clone()))
        .collect();
    s.users = dir
        .iter()
        .map(|(&(okta, id), (active, groups))| {
            user(
                if okta { "okta" } else { "entra" },
                id,
                *active,
                groups.clone(),
            )
        })
        .collect();
    s
}

/// Reuses `prev`'s `Arc`s for unchanged users, as the incremental compiler does.
fn share_with(mut s: Snapshot, prev: &Snapshot) -> Snapshot {
    for u in &mut s.users {
        if let Some(p) = prev.users.iter().find(|p| p == &u) {
            *u = p.clone();
        }
    }
    s
}

fn dir_strategy() -> impl Strategy<Value = Dir> {
    prop::collection::btree_map(
        (any::<bool>(), 0u32..40),
        (any::<bool>(), prop::collection::btree_set(0..GROUPS, 0..3)),
        0..30,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, (a, g))| (k, (a, g.into_iter().collect())))
            .collect()
    })
}

fn ancestors_strategy() -> impl Strategy<Value = Vec<Vec<u32>>> {
    prop::collection::vec(
        prop::collection::btree_set(0..GROUPS, 0..3).prop_map(|s| s.into_iter().collect()),
        GROUPS as usize,
    )
}

proptest! {
    #[test]
    fn a_delta_takes_the_old_snapshot_to_the_new(
        d1 in dir_strategy(), d2 in dir_strategy(), d3 in dir_strategy(),
        a1 in ancestors_strategy(), a2 in ancestors_strategy(), a3 in ancestors_strategy(),
    ) {
        let s1 = snapshot(1, &d1, &a1);
        let s2 = share_with(snapshot(2, &d2, &a2), &s1);
        let s3 = share_with(snapshot(5, &d3, &a3), &s2);

        let delta12 = diff(&s1, &s2).expect("directory-only change");
        prop_assert_eq!(&delta12.apply_to(&s1).expect("applies"), &s2);
        let delta23 = diff(&s2, &s3).expect("directory-only change");
        prop_assert_eq!(&delta23.apply_to(&s2).expect("applies"), &s3);

        // The wire form round-trips.
        let bytes = codec::encode_delta(&delta12);
        let (header, back) = codec::decode_delta(&bytes).expect("decodes");
        prop_assert_eq!((header.base_version, header.version), (1, 2));
        prop_assert_eq!(&back, &delta12);

        // Two deltas composed take the first base to the last version.
        let composed = compose([&delta12, &delta23]).expect("consecutive");
        prop_assert_eq!((composed.base_version, composed.version), (1, 5));
        prop_assert_eq!(&composed.apply_to(&s1).expect("applies"), &s3);

        // A node's engine applying the deltas decides like an engine built from scratch.
        let e1 = Engine::new(s1.clone()).expect("engine");
        let e2 = e1.apply(&delta12).expect("applies to the engine");
        let e3 = e2.apply(&delta23).expect("applies to the engine");
        prop_assert!(e3.shares_policies_with(&e1));
        for (applied, want) in [(&e2, &s2), (&e3, &s3)] {
            prop_assert_eq!(&applied.to_snapshot(), want);
            let fresh = Engine::new(want.clone()).expect("engine");
            prop_assert_eq!(applied.ambiguous_keys(), fresh.ambiguous_keys());
            for okta in [false, true] {
                let source = if okta { "okta" } else { "entra" };
                for id in 0..40 {
                    for (claim, value) in [
                        (PrincipalClaim::EmailToUserName, format!("USER{id}@example.com")),
                        (PrincipalClaim::SubToExternalId, format!("x{}", id % 7)),
                    ] {
                        prop_assert_eq!(
                            applied.find_user(source, claim, &value),
                            fresh.find_user(source, claim, &value)
                        );
                    }
                }
            }
        }
        prop_assert!(e1.apply(&delta23).is_err(), "a delta for another base is refused");

        // A delta is as small as the change: only users that differ are carried.
        let differing = s1.users.len().max(s2.users.len());
        prop_assert!(delta12.users.len() + delta12.removed.len() <= differing * 2);
        for u in &delta12.users {
            prop_assert!(!s1.users.contains(u), "unchanged user {} carried", u.id);
        }
    }
}

fn key(id: &str, user: u32) -> ApiKey {
    ApiKey {
        id: id.into(),
        hash: crate::Hash32::of(id.as_bytes()),
        source: "entra".into(),
        user_id: format!("u{user:03}"),
        expires_at_ms: None,
    }
}

#[test]
fn api_key_changes_travel_in_deltas_whole() {
    let dir: Dir = [((false, 1), (true, vec![0]))].into_iter().collect();
    let anc = vec![Vec::new(); GROUPS as usize];
    let mut a = snapshot(1, &dir, &anc);
    a.api_keys = vec![key("00000000000000aa", 1)];
    // A key issued: the delta carries the whole list and nothing else.
    let mut b = share_with(snapshot(2, &dir, &anc), &a);
    b.api_keys = vec![key("00000000000000aa", 1), key("00000000000000bb", 1)];
    let d = diff(&a, &b).expect("a delta");
    assert_eq!(d.api_keys.as_ref(), Some(&b.api_keys));
    assert!(d.users.is_empty() && d.removed.is_empty());
    assert_eq!(d.len(), 1, "not an empty delta");
    assert_eq!(d.apply_to(&a).expect("applies"), b);
    // Both revoked: the list is empty, and says so.
    let mut c = share_with(snapshot(3, &dir, &anc), &b);
    c.api_keys = Vec::new();
    let d2 = diff(&b, &c).expect("a delta");
    assert_eq!(d2.api_keys, Some(Vec::new()));
    // No key change: no list.
    let e = share_with(snapshot(4, &dir, &anc), &c);
    assert_eq!(diff(&c, &e).expect("a delta").api_keys, None);
    // Composed: the last list wins.
    let composed = compose([&d, &d2]).expect("composes");
    assert_eq!(composed.api_keys, Some(Vec::new()));
    assert_eq!(composed.apply_to(&a).expect("applies"), c);
    // A node's engine follows.
    let engine = Engine::new(a.clone()).expect("engine");
    assert!(engine.api_key("00000000000000bb").is_none());
    let next = engine.apply(&d).expect("applies");
    assert!(next.api_key("00000000000000bb").is_some());
    assert_eq!(next.to_snapshot().api_keys, b.api_keys);
    assert!(
        next.apply(&d2)
            .expect("applies")
            .api_key("00000000000000aa")
            .is_none()
    );
    // Unsorted keys are a bad shape.
    let mut bad = d.clone();
    bad.api_keys = Some(vec![key("00000000000000bb", 1), key("00000000000000aa", 1)]);
    assert_eq!(bad.check_shape(), Err(ApplyError::Unsorted));
    // A format 4 delta (kept by an earlier build) is read where history is kept, and
    // refused on the wire.
    let mut no_keys = d.clone();
    no_keys.api_keys = None;
    let framed = codec::encode_delta(&no_keys);
    let body = &framed[codec::DELTA_HEADER_LEN..framed.len() - 1];
    let mut old = framed[..codec::DELTA_HEADER_LEN].to_vec();
    old[4..6].copy_from_slice(&codec::PREVIOUS_FORMAT.to_le_bytes());
    old[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
    old[32..64].copy_from_slice(&crate::Hash32::of(body).0);
    old.extend_from_slice(body);
    assert_eq!(codec::decode_stored_delta(&old).expect("stored").1, no_keys);
    assert!(codec::decode_delta(&old).is_err());
}

#[test]
fn anything_but_the_directory_needs_a_full_snapshot() {
    let dir: Dir = [((false, 1), (true, vec![0]))].into_iter().collect();
    let anc = vec![Vec::new(); GROUPS as usize];
    let a = snapshot(1, &dir, &anc);

    let mut b = snapshot(2, &dir, &anc);
    b.policies[0].text = "forbid(principal, action, resource);".into();
    assert_eq!(diff(&a, &b), Err(NotDelta::Changed("policies")));

    let mut b = snapshot(2, &dir, &anc);
    b.groups.push(group(99, vec![]));
    assert_eq!(diff(&a, &b), Err(NotDelta::GroupsReshaped));

    let mut b = snapshot(2, &dir, &anc);
    Arc::make_mut(&mut b.groups[2]).display_name = "Renamed".into();
    assert_eq!(diff(&a, &b), Err(NotDelta::GroupsReshaped));

    let mut b = snapshot(2, &dir, &anc);
    b.roles.push("admin".into());
    assert_eq!(diff(&a, &b), Err(NotDelta::Changed("roles")));

    assert_eq!(diff(&a, &a), Err(NotDelta::NotNewer));
}

#[test]
fn a_delta_refuses_the_wrong_base_and_bad_shapes() {
    let dir: Dir = [((false, 1), (true, vec![0])), ((false, 2), (true, vec![]))]
        .into_iter()
        .collect();
    let anc = vec![Vec::new(); GROUPS as usize];
    let a = snapshot(1, &dir, &anc);
    let mut changed = dir.clone();
    changed.insert((false, 1), (false, vec![0]));
    let b = snapshot(3, &changed, &anc);
    let d = diff(&a, &b).expect("delta");
    assert_eq!(d.users.len(), 1);

    let wrong = snapshot(2, &dir, &anc);
    assert_eq!(
        d.apply_to(&wrong),
        Err(ApplyError::WrongBase {
            expected: 1,
            live: 2
        })
    );
    let mut unsorted = d.clone();
    unsorted.removed = vec![("okta".into(), "u9".into()), ("okta".into(), "u1".into())];
    assert_eq!(unsorted.apply_to(&a), Err(ApplyError::Unsorted));
    let mut foreign = d.clone();
    foreign.groups = vec![(3, group(4, vec![]))];
    assert!(matches!(
        foreign.apply_to(&a),
        Err(ApplyError::BadGroup { index: 3, .. })
    ));
    assert_eq!(
        compose(std::iter::empty()),
        Err(ApplyError::NothingToCompose)
    );
    // Deltas that do not follow on are not composed.
    let mut elsewhere = d.clone();
    elsewhere.base_version = 7;
    assert!(matches!(
        compose([&d, &elsewhere]),
        Err(ApplyError::WrongBase { .. })
    ));
    let mut other_content = d.clone();
    (other_content.base_version, other_content.base_id) = (d.version, d.id ^ 1);
    other_content.version = d.version + 1;
    assert!(matches!(
        compose([&d, &other_content]),
        Err(ApplyError::WrongBaseId { .. })
    ));
    let mut backwards = d;
    backwards.version = 1;
    assert!(matches!(
        backwards.apply_to(&a),
        Err(ApplyError::NotNewer { .. })
    ));
}

#[test]
fn every_bit_flip_in_a_framed_delta_is_caught() {
    let dir: Dir = [((false, 1), (true, vec![0]))].into_iter().collect();
    let anc = vec![Vec::new(); GROUPS as usize];
    let a = snapshot(1, &dir, &anc);
    let b = snapshot(2, &Dir::new(), &anc);
    let bytes = codec::encode_delta(&diff(&a, &b).expect("delta"));
    for i in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x01;
        assert!(
            codec::decode_delta(&flipped).is_err(),
            "flip at {i} accepted"
        );
    }
}
