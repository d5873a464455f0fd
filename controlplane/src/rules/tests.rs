use super::*;
use portcullis_shared::snapshot::{AttrKind, AttrValue, AttributeDecl, User};
use proptest::prelude::*;

fn catalog() -> Catalog {
    Catalog::new(&[
        AttributeDecl::new("clearance", AttrKind::Long, false),
        AttributeDecl::new("tags", AttrKind::String, true),
        AttributeDecl::new("contractor", AttrKind::Bool, false),
    ])
}

fn user(dept: Option<&str>, clearance: Option<i64>, tags: &[&str]) -> User {
    let mut attributes = std::collections::BTreeMap::new();
    if let Some(c) = clearance {
        attributes.insert("clearance".to_owned(), AttrValue::Long(c));
    }
    if !tags.is_empty() {
        attributes.insert(
            "tags".to_owned(),
            AttrValue::Set(
                tags.iter()
                    .map(|t| AttrValue::String((*t).into()))
                    .collect(),
            ),
        );
    }
    User {
        id: "u1".into(),
        source: "okta".into(),
        user_name: "sam@legal.example.com".into(),
        external_id: None,
        display_name: "Sam".into(),
        email: Some("sam@legal.example.com".into()),
        active: true,
        department: dept.map(Into::into),
        groups: vec![],
        attributes,
        roles: vec![],
        end_at_ms: None,
        linked: None,
    }
}

fn eval(rule: &str, u: &User) -> bool {
    let c = catalog();
    parse(rule, &c).expect("rule parses").eval(&c.row(u))
}

#[test]
fn comparisons_and_connectives() {
    let sam = user(Some("Legal"), Some(3), &["counsel"]);
    assert!(eval(r#"department == "Legal" && clearance >= 3"#, &sam));
    assert!(!eval(r#"department == "Legal" && clearance > 3"#, &sam));
    assert!(eval(r#"department == "Sales" || clearance == 3"#, &sam));
    assert!(eval(r#"!(department in ["Sales", "Support"])"#, &sam));
    assert!(eval(r#"tags contains "counsel""#, &sam));
    assert!(eval(r#"email like "*@legal.example.com""#, &sam));
    assert!(!eval(r#"email like "*@example.org""#, &sam));
    assert!(eval(r#"email like "sam*legal*com""#, &sam));
    assert!(eval("active && !contractor", &sam));
    assert!(eval(r#"source == "okta""#, &sam));
}

#[test]
fn precedence_is_not_over_and_over_or() {
    let sam = user(Some("Legal"), Some(1), &[]);
    // `!a && b || c` is `((!a) && b) || c`.
    assert!(eval(
        r#"!(clearance >= 3) && department == "Legal" || department == "Sales""#,
        &sam
    ));
    assert!(!eval(
        r#"department == "Sales" || department == "Legal" && clearance >= 3"#,
        &sam
    ));
}

#[test]
fn missing_attributes_make_tests_false() {
    let nobody = user(None, None, &[]);
    assert!(!eval("clearance >= 0", &nobody));
    assert!(eval("!(clearance >= 3)", &nobody));
    assert!(!eval("has clearance", &nobody));
    assert!(!eval(r#"department != "Legal""#, &nobody));
    assert!(!eval(r#"tags contains "x""#, &nobody));
}

#[test]
fn type_errors_and_syntax_errors_name_the_column() {
    let c = catalog();
    let e = parse(r#"clearance >= "3""#, &c).unwrap_err();
    assert_eq!(e.column, 14);
    assert!(e.message.contains("clearance is a number"), "{e}");
    let e = parse(r#"department > "A""#, &c).unwrap_err();
    assert!(e.message.contains("cannot be ordered"), "{e}");
    let e = parse(r#"tags == "x""#, &c).unwrap_err();
    assert!(e.message.contains("contains"), "{e}");
    let e = parse(r#"title == "VP""#, &c).unwrap_err();
    assert!(e.message.contains("unknown attribute \"title\""), "{e}");
    let e = parse(r#"department == "Legal" &&"#, &c).unwrap_err();
    assert_eq!(e.column, 25);
    let e = parse(r#"(department == "Legal""#, &c).unwrap_err();
    assert!(e.message.contains("expected ')'"), "{e}");
    let e = parse(r#"department == "Legal"#, &c).unwrap_err();
    assert!(e.message.contains("unterminated"), "{e}");
    let e = parse("department", &c).unwrap_err();
    assert!(e.message.contains("expected a comparison"), "{e}");
    assert!(parse("clearance >= 99999999999999999999", &c).is_err());
}

fn like(text: &str, pattern: &str) -> bool {
    Pattern::new(pattern).matches(text)
}

#[test]
fn like_handles_escaped_stars() {
    assert!(like("a*b", "a\\*b"));
    assert!(!like("axb", "a\\*b"));
    assert!(like("abc", "*"));
    assert!(like("", "*"));
    assert!(like("aXbXc", "a*b*c"));
    assert!(!like("ab", "a*b*c"));
    assert!(like("aa", "a*a"));
    assert!(!like("a", "a*a"));
}

#[test]
fn the_index_key_is_a_top_level_equality() {
    let c = catalog();
    let r = parse(r#"clearance >= 3 && department == "Legal""#, &c).unwrap();
    assert_eq!(r.required_equality(), Some((4, "Legal")));
    let r = parse(r#"department == "Legal" || clearance >= 3"#, &c).unwrap();
    assert_eq!(r.required_equality(), None);
    let r = parse(r#"!(department == "Legal")"#, &c).unwrap();
    assert_eq!(r.required_equality(), None);
}

fn arb_rule() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["Legal", "Sales", "R&D"])
            .prop_map(|d| format!("department == {d:?}")),
        (0i64..5).prop_map(|n| format!("clearance >= {n}")),
        (0i64..5).prop_map(|n| format!("clearance < {n}")),
        Just("has clearance".to_owned()),
        prop::sample::select(vec!["a", "b"]).prop_map(|t| format!("tags contains {t:?}")),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn arb_user() -> impl Strategy<Value = User> {
    (
        prop::option::of(prop::sample::select(vec!["Legal", "Sales", "R&D"])),
        prop::option::of(0i64..5),
        prop::sample::subsequence(vec!["a", "b"], 0..=2),
    )
        .prop_map(|(d, c, t)| user(d, c, &t))
}

proptest! {
    /// The value index never hides a match: a user a rule matches always carries the rule's
    /// required equality.
    #[test]
    fn index_key_holds_for_every_match(rule in arb_rule(), u in arb_user()) {
        let c = catalog();
        let e = parse(&rule, &c).unwrap();
        if let Some((slot, value)) = e.required_equality()
            && e.eval(&c.row(&u))
        {
            prop_assert_eq!(c.row(&u).str(slot), Some(value));
        }
    }

    /// Negation is exact: `!r` matches exactly the users `r` does not.
    #[test]
    fn negation_complements(rule in arb_rule(), u in arb_user()) {
        let c = catalog();
        let e = parse(&rule, &c).unwrap();
        let not = parse(&format!("!({rule})"), &c).unwrap();
        prop_assert_eq!(not.eval(&c.row(&u)), !e.eval(&c.row(&u)));
    }
}
