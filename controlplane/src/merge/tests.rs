use super::*;
use proptest::prelude::*;

fn user(source: &str, id: &str, email: &str, groups: &[u32]) -> User {
    User {
        id: id.into(),
        source: source.into(),
        user_name: email.into(),
        external_id: None,
        display_name: format!("{id} name"),
        email: Some(email.into()),
        active: true,
        department: None,
        groups: groups.to_vec(),
        attributes: Default::default(),
        roles: Vec::new(),
        end_at_ms: None,
        linked: None,
    }
}

fn merge(toml: &str) -> Merge {
    toml::from_str(toml).expect("merge section parses")
}

const BASIC: &str = r#"
sources = ["okta", "entra"]
[precedence]
department = ["entra", "okta"]
"#;

#[test]
fn accounts_sharing_a_work_email_become_one_principal() {
    let mut users = vec![
        user("entra", "e-1", "Sam@Acme.example", &[5]),
        user("entra", "e-2", "kim@acme.example", &[5]),
        user("okta", "o-1", "sam@acme.example", &[1, 2]),
        user("google", "g-1", "sam@acme.example", &[9]),
    ];
    users[0].department = Some("EMEA Legal".into());
    users[2].department = Some("Legal".into());
    users[0]
        .attributes
        .insert("clearance".into(), AttrValue::Long(2));
    users[2]
        .attributes
        .insert("clearance".into(), AttrValue::Long(4));
    users[0].end_at_ms = Some(500);
    users[2].end_at_ms = Some(900);
    let mut report = MergeReport::default();
    let members = link(&mut users, &merge(BASIC), &mut report);

    let (e, o) = (&users[0], &users[2]);
    assert_eq!(e.linked, o.linked);
    let linked = o.linked.as_ref().expect("linked");
    assert_eq!(linked.principal_id, "o-1", "okta is first in merge.sources");
    assert_eq!(linked.sources, ["entra", "okta"]);
    assert_eq!(o.groups, [1, 2, 5], "every account's groups");
    assert_eq!(
        o.department.as_deref(),
        Some("EMEA Legal"),
        "precedence: entra first"
    );
    assert_eq!(
        o.attributes["clearance"],
        AttrValue::Long(4),
        "default order: okta first"
    );
    assert_eq!(o.display_name, "o-1 name");
    assert_eq!(o.end_at_ms, Some(500), "the earliest end date");
    assert_eq!(
        (e.user_name.as_str(), e.source.as_str()),
        ("Sam@Acme.example", "entra")
    );
    assert!(
        users[1].linked.is_none() && users[3].linked.is_none(),
        "google takes no part"
    );
    assert_eq!(members[2], [0, 2]);
    assert_eq!(report.linked_principals, 1);
    assert_eq!(report.linked_accounts, 2);
}

#[test]
fn deactivation_in_one_source_denies_unless_any_suffices() {
    let run = |active: &str| {
        let mut users = vec![
            user("entra", "e-1", "sam@acme.example", &[]),
            user("okta", "o-1", "sam@acme.example", &[]),
        ];
        users[0].active = false;
        let m = merge(&format!(
            "sources = [\"okta\", \"entra\"]\nactive = \"{active}\"\n"
        ));
        link(&mut users, &m, &mut MergeReport::default());
        (users[0].active, users[1].active)
    };
    assert_eq!(run("all"), (false, false));
    assert_eq!(run("any"), (true, true));
}

#[test]
fn ambiguous_keys_distinct_accounts_and_explicit_links() {
    let mut users = vec![
        user("entra", "e-1", "admin@acme.example", &[]),
        user("entra", "e-2", "ssato@emea.example", &[]),
        user("okta", "o-1", "admin@acme.example", &[]),
        user("okta", "o-2", "pat@acme.example", &[]),
        user("okta", "o-3", "PAT@acme.example", &[]),
        user("entra", "e-3", "pat@acme.example", &[]),
        user("okta", "o-4", "sam@acme.example", &[]),
    ];
    let m = merge(
        r#"
sources = ["okta", "entra"]
[[links]]
accounts = ["okta:sam@acme.example", "entra:SSATO@emea.example", "entra:ghost@x"]
[[distinct]]
accounts = ["okta:admin@acme.example", "entra:admin@acme.example"]
"#,
    );
    let mut report = MergeReport::default();
    link(&mut users, &m, &mut report);
    assert!(
        users[0].linked.is_none() && users[2].linked.is_none(),
        "distinct"
    );
    assert!(
        users[3].linked.is_none() && users[4].linked.is_none() && users[5].linked.is_none(),
        "two okta accounts share pat@: nothing is linked by that key"
    );
    assert_eq!(report.ambiguous_keys, ["okta:pat@acme.example"]);
    assert_eq!(
        users[1].linked.as_ref().map(|l| l.principal_id.as_str()),
        Some("o-4"),
        "linked explicitly although the emails differ"
    );
    assert_eq!(report.unresolved_links, ["entra:ghost@x"]);
}

#[test]
fn a_bad_section_names_every_problem() {
    let m = merge(
        r#"
by = "shoeSize"
sources = ["okta"]
[precedence]
department = ["entra"]
colour = ["okta"]
[[links]]
accounts = ["okta-sam"]
"#,
    );
    let p = m.problems(&[], &[]).join("\n");
    for needle in [
        "at least two different sources",
        "merge.by \"shoeSize\"",
        "merge.precedence.department: \"entra\" is not in merge.sources",
        "merge.precedence.colour: not displayName",
        "merge.links 1: name at least two accounts",
        "\"okta-sam\" must be",
    ] {
        assert!(p.contains(needle), "missing {needle:?}:\n{p}");
    }
}

proptest! {
    /// For any accounts of one person across three sources and any precedence, every linked
    /// account carries the same merged view, and each attribute's value is the one of the
    /// first account, in precedence order, that has it.
    #[test]
    fn precedence_picks_the_first_source_that_has_a_value(
        values in prop::collection::vec(prop::option::of(0i64..100), 3),
        order in Just(vec!["a", "b", "c"]).prop_shuffle(),
        with_precedence in any::<bool>(),
        active in prop::collection::vec(any::<bool>(), 3),
    ) {
        let sources = ["a", "b", "c"];
        let mut users: Vec<User> = sources
            .iter()
            .zip(&values)
            .zip(&active)
            .map(|((s, v), act)| {
                let mut u = user(s, &format!("{s}-1"), "p@x.example", &[]);
                u.active = *act;
                if let Some(v) = v {
                    u.attributes.insert("level".into(), AttrValue::Long(*v));
                }
                u
            })
            .collect();
        let mut m = merge("sources = [\"a\", \"b\", \"c\"]\n");
        if with_precedence {
            m.precedence.insert("level".into(), order.iter().map(|s| s.to_string()).collect());
        }
        link(&mut users, &m, &mut MergeReport::default());
        let expected_order: Vec<&str> = if with_precedence { order.clone() } else { sources.to_vec() };
        let expected = expected_order
            .iter()
            .find_map(|s| values[sources.iter().position(|x| x == s).unwrap()])
            .map(AttrValue::Long);
        for u in &users {
            prop_assert_eq!(u.attributes.get("level").cloned(), expected.clone());
            prop_assert_eq!(u.active, active.iter().all(|a| *a));
            prop_assert_eq!(&u.linked, &users[0].linked);
            prop_assert_eq!(u.linked.as_ref().map(|l| l.principal_id.as_str()), Some("a-1"));
        }
    }
}
