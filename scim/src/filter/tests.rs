use super::*;
use crate::error::ScimType;
use crate::schema::{ENTERPRISE_USER_SCHEMA, GROUP, USER, USER_SCHEMA};
use serde_json::{Value, json};

fn path(s: &str) -> AttrPath {
    parse_attr_path(s).unwrap()
}

fn cmp(p: &str, op: CompareOp, v: CompValue) -> Filter {
    Filter::Compare(path(p), op, v)
}

fn s(v: &str) -> CompValue {
    CompValue::String(v.to_string())
}

fn pr(p: &str) -> Filter {
    Filter::Present(path(p))
}

fn and(l: Filter, r: Filter) -> Filter {
    Filter::And(Box::new(l), Box::new(r))
}

fn or(l: Filter, r: Filter) -> Filter {
    Filter::Or(Box::new(l), Box::new(r))
}

fn user() -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "Ext-42",
        "userName": "BJensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "title": "",
        "active": true,
        "loginCount": 7,
        "score": 2.5,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [],
        "meta": {
            "resourceType": "User",
            "created": "2011-08-01T18:29:49.793Z",
            "lastModified": "2011-08-01T20:29:49+02:00"
        },
        ENTERPRISE_USER_SCHEMA: {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        },
        "urn:example:custom:1.0:User": {"shoeSize": 42}
    })
}

/// Parses, validates and evaluates `filter` against `user()`.
fn user_matches(filter: &str) -> bool {
    let f = parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    validate(&f, &USER).unwrap_or_else(|e| panic!("{filter}: {e}"));
    matches(&f, &user(), &USER)
}

fn parse_err(filter: &str) -> String {
    let e = parse(filter).expect_err(filter);
    assert_eq!(e.status, 400, "{filter}");
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{filter}");
    e.detail
}

// ---- parsing -------------------------------------------------------------------------------

#[test]
fn parses_every_operator_case_insensitively() {
    for (kw, op) in [
        ("eq", CompareOp::Eq),
        ("NE", CompareOp::Ne),
        ("Co", CompareOp::Co),
        ("sW", CompareOp::Sw),
        ("EW", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("GE", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("Le", CompareOp::Le),
    ] {
        let f = parse(&format!("userName {kw} \"x\"")).unwrap();
        assert_eq!(f, cmp("userName", op, s("x")), "{kw}");
    }
    assert_eq!(parse("title PR").unwrap(), pr("title"));
}

#[test]
fn parses_values() {
    assert_eq!(
        parse("a eq true").unwrap(),
        cmp("a", CompareOp::Eq, CompValue::Bool(true))
    );
    assert_eq!(
        parse("a eq FALSE").unwrap(),
        cmp("a", CompareOp::Eq, CompValue::Bool(false))
    );
    assert_eq!(
        parse("a eq Null").unwrap(),
        cmp("a", CompareOp::Eq, CompValue::Null)
    );
    let n = |t: &str| CompValue::Number(serde_json::from_str(t).unwrap());
    assert_eq!(
        parse("a gt -12").unwrap(),
        cmp("a", CompareOp::Gt, n("-12"))
    );
    assert_eq!(
        parse("a gt 1.5e3").unwrap(),
        cmp("a", CompareOp::Gt, n("1.5e3"))
    );
    assert_eq!(
        parse(r#"a eq "q\"uo\\te \u00e9 ü""#).unwrap(),
        cmp("a", CompareOp::Eq, s("q\"uo\\te é ü"))
    );
    assert_eq!(parse(r#"a eq """#).unwrap(), cmp("a", CompareOp::Eq, s("")));
}

#[test]
fn and_binds_tighter_than_or() {
    let f = parse("a pr or b pr and c pr").unwrap();
    assert_eq!(f, or(pr("a"), and(pr("b"), pr("c"))));
    let f = parse("a pr and b pr or c pr").unwrap();
    assert_eq!(f, or(and(pr("a"), pr("b")), pr("c")));
    let f = parse("a pr AND b pr OR c pr aNd d pr").unwrap();
    assert_eq!(f, or(and(pr("a"), pr("b")), and(pr("c"), pr("d"))));
}

#[test]
fn chains_are_left_associative() {
    let f = parse("a pr or b pr or c pr").unwrap();
    assert_eq!(f, or(or(pr("a"), pr("b")), pr("c")));
}

#[test]
fn parentheses_group_and_not_negates() {
    let f = parse("(a pr or b pr) and c pr").unwrap();
    assert_eq!(f, and(or(pr("a"), pr("b")), pr("c")));
    let f = parse("not (a pr) and NOT(b pr)").unwrap();
    assert_eq!(
        f,
        and(
            Filter::Not(Box::new(pr("a"))),
            Filter::Not(Box::new(pr("b")))
        )
    );
    let f = parse("((a pr))").unwrap();
    assert_eq!(f, pr("a"));
    let f = parse("(a pr)or(b pr)").unwrap();
    assert_eq!(f, or(pr("a"), pr("b")));
}

#[test]
fn tolerates_extra_whitespace() {
    let f = parse("  ( userName   eq  \"x\" )   and\t not  ( title  pr )  ").unwrap();
    assert_eq!(
        f,
        and(
            cmp("userName", CompareOp::Eq, s("x")),
            Filter::Not(Box::new(pr("title")))
        )
    );
}

#[test]
fn parses_urn_qualified_and_sub_attribute_paths() {
    let f =
        parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"1\"")
            .unwrap();
    let Filter::Compare(p, _, _) = f else {
        panic!()
    };
    assert_eq!(p.uri.as_deref(), Some(ENTERPRISE_USER_SCHEMA));
    assert_eq!(p.attr, "employeeNumber");
    assert_eq!(p.sub, None);

    let p = path("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName");
    assert_eq!(p.uri.as_deref(), Some(USER_SCHEMA));
    assert_eq!(
        (p.attr.as_str(), p.sub.as_deref()),
        ("name", Some("givenName"))
    );

    let p = path("members.$ref");
    assert_eq!(p.sub.as_deref(), Some("$ref"));
    assert_eq!(path("x509Certificates").attr, "x509Certificates");
    assert_eq!(path(" emails ").to_string(), "emails");
}

#[test]
fn parses_value_paths() {
    let f = parse(r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp"]"#)
        .unwrap();
    let expected = or(
        Filter::ValuePath(
            path("emails"),
            Box::new(and(
                cmp("type", CompareOp::Eq, s("work")),
                cmp("value", CompareOp::Co, s("@example.com")),
            )),
        ),
        Filter::ValuePath(path("ims"), Box::new(cmp("type", CompareOp::Eq, s("xmpp")))),
    );
    assert_eq!(f, expected);
    // Fully qualified inner paths are made relative to the element.
    let g = parse(r#"emails[emails.type eq "work" and emails.value co "@example.com"] or ims[type eq "xmpp"]"#)
        .unwrap();
    assert_eq!(g, expected);
    // Grouping and not inside a value filter.
    let f = parse(r#"emails[not (type eq "home") and (primary eq true or display pr)]"#).unwrap();
    let Filter::ValuePath(_, inner) = f else {
        panic!()
    };
    assert!(matches!(*inner, Filter::And(..)));
}

#[test]
fn display_round_trips() {
    for text in [
        r#"userName eq "bjensen""#,
        r#"(a pr or b pr) and not (c gt 5)"#,
        r#"a pr or (b pr or c pr)"#,
        r#"a pr and (b pr and c pr)"#,
        r#"(a pr or b pr) and (c pr or d pr)"#,
        r#"emails[type eq "work" and value co "\"q\""] or meta.created ge "2020-01-01T00:00:00Z""#,
    ] {
        let f = parse(text).unwrap();
        assert_eq!(parse(&f.to_string()).unwrap(), f, "{text}");
    }
}

#[test]
fn entra_style_unquoted_values_are_strings() {
    let f = parse("externalId eq jyoung").expect("parses");
    assert_eq!(
        f,
        Filter::Compare(
            AttrPath::new("externalId"),
            CompareOp::Eq,
            CompValue::String("jyoung".into())
        )
    );
    let f = parse("userName eq jyoung@contoso.com and (title pr)").expect("parses");
    assert!(matches!(f, Filter::And(..)), "{f:?}");
    assert_eq!(
        parse("employeeNumber eq 12-ab").expect("parses"),
        Filter::Compare(
            AttrPath::new("employeeNumber"),
            CompareOp::Eq,
            CompValue::String("12-ab".into())
        )
    );
    assert_eq!(
        parse("active eq True").expect("parses"),
        Filter::Compare(
            AttrPath::new("active"),
            CompareOp::Eq,
            CompValue::Bool(true)
        )
    );
}

#[test]
fn rejects_invalid_filters() {
    let cases = [
        ("", "empty filter"),
        ("   ", "empty filter"),
        ("userName", "expected a space and an operator"),
        ("userName eq", "requires a value"),
        ("userName eq ", "requires a value"),
        ("(userName eq)", "requires a value"),
        ("userName pr \"x\"", "does not take a value"),
        ("userName pr true", "does not take a value"),
        ("userName like \"x\"", "unknown operator 'like'"),
        ("userName eq \"x", "unterminated string"),
        ("userName eq \"\\q\"", "invalid string literal"),
        ("userName eq 1.2.3", "invalid number"),
        ("(userName pr", "missing ')'"),
        ("userName pr)", "unbalanced ')'"),
        ("((userName pr)", "missing ')'"),
        ("emails[type pr", "missing ']'"),
        ("emails[type pr]]", "unbalanced ']'"),
        ("userName pr]", "unbalanced ']'"),
        ("emails[]", "empty value filter"),
        ("userName pr junk", "unexpected 'j'"),
        ("userName pr and", "expected a filter expression"),
        ("userName pr andtitle pr", "unexpected 'a'"),
        (
            "userName eq \"x\"and title pr",
            "expected a space before 'and'",
        ),
        ("userName pr or", "expected a filter expression"),
        ("and title pr", "unknown operator 'title'"),
        ("not title pr", "parenthesized"),
        ("not", "parenthesized"),
        ("()", "expected a filter expression"),
        ("@x pr", "expected an attribute name"),
        ("_x pr", "must start with a letter"),
        ("9lives pr", "must start with a letter"),
        ("name.given.name pr", "contains invalid character '.'"),
        ("foo:bar pr", "must start with 'urn:'"),
        ("urn:pr pr", "URN without an attribute name"),
        ("emails[type eq \"a\" and ims[type pr]]", "cannot be nested"),
        (
            "emails[type eq \"work\"].value pr",
            "only allowed in PATCH paths",
        ),
        ("name.givenName[x pr]", "must follow an attribute"),
        ("userName eq\"x\"", "expected a space after operator"),
        ("userName\"x\"", "expected a space and an operator"),
        ("userName ! \"x\"", "expected an operator"),
    ];
    for (filter, want) in cases {
        let detail = parse_err(filter);
        assert!(
            detail.contains(want),
            "{filter:?}: {detail:?} lacks {want:?}"
        );
        assert!(detail.contains("position"), "{filter:?}: {detail}");
    }
}

#[test]
fn error_positions_are_one_based_characters() {
    assert!(parse_err("userName eq").ends_with("(at position 12)"));
    assert!(parse_err("é eq \"x\"").contains("position 1"));
    assert!(parse_err("title eq \"é\" zz").contains("position 14"));
}

#[test]
fn limits_nesting_and_size() {
    let deep = format!("{}a pr{}", "(".repeat(100), ")".repeat(100));
    assert!(parse_err(&deep).contains("nested too deeply"));
    let long = vec!["a pr"; 1001].join(" or ");
    assert!(parse_err(&long).contains("too many expressions"));
    let ok = vec!["a pr"; 1000].join(" or ");
    assert!(parse(&ok).is_ok());
}

#[test]
fn attribute_named_like_a_keyword() {
    assert_eq!(
        parse("not eq \"x\"").unwrap(),
        cmp("not", CompareOp::Eq, s("x"))
    );
    assert_eq!(parse("and pr").unwrap(), pr("and"));
}

#[test]
fn parse_attr_path_errors_are_invalid_path() {
    for bad in [
        "",
        "emails[type eq \"work\"]",
        "a b",
        "name.",
        ".x",
        "urn:x",
        "a.b.c",
    ] {
        let e = parse_attr_path(bad).expect_err(bad);
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{bad}");
    }
}

// ---- evaluation ----------------------------------------------------------------------------

#[test]
fn eq_respects_case_exactness() {
    // userName is caseExact=false.
    assert!(user_matches(r#"userName eq "bjensen@EXAMPLE.com""#));
    assert!(user_matches(r#"USERNAME Eq "BJENSEN@example.com""#));
    // id and externalId are caseExact=true.
    assert!(user_matches(
        r#"id eq "2819c223-7f76-453a-919d-413861904646""#
    ));
    assert!(!user_matches(
        r#"id eq "2819C223-7F76-453A-919D-413861904646""#
    ));
    assert!(user_matches(r#"externalId eq "Ext-42""#));
    assert!(!user_matches(r#"externalId eq "ext-42""#));
    // Unknown attributes compare case-insensitively.
    assert!(user_matches(
        r#"urn:example:custom:1.0:User:shoeSize eq 42"#
    ));
}

#[test]
fn string_operators() {
    assert!(user_matches(r#"displayName co "JENS""#));
    assert!(!user_matches(r#"displayName co "xyz""#));
    assert!(user_matches(r#"displayName sw "babs""#));
    assert!(!user_matches(r#"displayName sw "Jensen""#));
    assert!(user_matches(r#"displayName ew "JENSEN""#));
    assert!(!user_matches(r#"displayName ew "Babs""#));
    assert!(user_matches(r#"displayName gt "Aaron""#));
    assert!(user_matches(r#"displayName ge "babs jensen""#));
    assert!(user_matches(r#"displayName lt "zed""#));
    assert!(user_matches(r#"displayName le "BABS JENSEN""#));
    assert!(!user_matches(r#"displayName lt "Babs""#));
    assert!(user_matches(r#"displayName ne "someone""#));
    assert!(!user_matches(r#"displayName ne "babs jensen""#));
}

#[test]
fn case_exact_substring_and_ordering() {
    assert!(user_matches(r#"externalId sw "Ext""#));
    assert!(!user_matches(r#"externalId sw "ext""#));
    assert!(user_matches(r#"externalId gt "Ext-4""#));
    // "E" (0x45) < "e" (0x65) when comparing exactly.
    assert!(user_matches(r#"externalId lt "ext""#));
}

#[test]
fn numbers_compare_numerically() {
    assert!(user_matches("loginCount eq 7"));
    assert!(user_matches("loginCount eq 7.0"));
    assert!(user_matches("loginCount gt 6"));
    assert!(user_matches("loginCount ge 7"));
    assert!(!user_matches("loginCount lt 7"));
    assert!(user_matches("loginCount le 7"));
    assert!(user_matches("loginCount lt 10"));
    assert!(user_matches("score gt 2.25"));
    assert!(user_matches("score lt 3"));
    assert!(user_matches("loginCount ne 8"));
    assert!(!user_matches(r#"loginCount eq "7""#));
    assert!(!user_matches("loginCount co 7"));
}

#[test]
fn booleans() {
    assert!(user_matches("active eq true"));
    assert!(user_matches("active eq TRUE"));
    assert!(!user_matches("active eq false"));
    assert!(user_matches("active ne false"));
    // IdPs quote booleans (Entra ID's `primary eq "True"`): a boolean string compares as one.
    assert!(user_matches(r#"active eq "true""#));
    assert!(user_matches(r#"active eq "True""#));
    assert!(!user_matches(r#"active eq "False""#));
    assert!(!user_matches(r#"active eq "yes""#));
}

#[test]
fn date_times_compare_chronologically() {
    assert!(user_matches(
        r#"meta.created eq "2011-08-01T18:29:49.793+00:00""#
    ));
    assert!(user_matches(r#"meta.created gt "2011-08-01T18:29:49Z""#));
    assert!(user_matches(
        r#"meta.created lt "2011-08-01T20:29:49+01:00""#
    ));
    // lastModified is 18:29:49Z written with a +02:00 offset: equal to 18:29:49Z.
    assert!(user_matches(
        r#"meta.lastModified eq "2011-08-01T18:29:49Z""#
    ));
    assert!(user_matches(
        r#"meta.lastModified lt "2011-08-01T19:00:00Z""#
    ));
    // Lexicographically "2011-08-01T20..." > "2011-08-01T19...", so this proves chronology.
    assert!(!user_matches(
        r#"meta.lastModified gt "2011-08-01T19:00:00Z""#
    ));
    assert!(user_matches(r#"meta.created sw "2011-08""#));
    assert!(user_matches(
        r#"meta.lastModified ge "2011-08-01T18:29:49.000Z""#
    ));
}

#[test]
fn present_edge_cases() {
    assert!(user_matches("displayName pr"));
    assert!(!user_matches("title pr"), "empty string is not present");
    assert!(
        !user_matches("phoneNumbers pr"),
        "empty array is not present"
    );
    assert!(!user_matches("nickName pr"), "absent");
    assert!(user_matches("emails pr"));
    assert!(user_matches("emails.type pr"));
    assert!(user_matches("name.givenName pr"));
    assert!(!user_matches("name.middleName pr"));
    let res = json!({"nickName": null, "name": {}, "x": 0, "f": false});
    for (f, want) in [
        ("nickName pr", false),
        ("name pr", false),
        ("x pr", true),
        ("f pr", true),
    ] {
        assert_eq!(matches(&parse(f).unwrap(), &res, &USER), want, "{f}");
    }
}

#[test]
fn null_comparisons() {
    assert!(user_matches("nickName eq null"), "absent equals null");
    assert!(!user_matches("displayName eq null"));
    assert!(user_matches("displayName ne null"));
    assert!(!user_matches("nickName ne null"));
    assert!(!user_matches("displayName gt null"));
    let res = json!({"nickName": null});
    assert!(matches(&parse("nickName eq null").unwrap(), &res, &USER));
}

#[test]
fn ne_on_absent_attribute_matches() {
    assert!(user_matches(r#"nickName ne "x""#));
    assert!(!user_matches(r#"nickName eq "x""#));
}

#[test]
fn multi_valued_any_match() {
    assert!(user_matches(r#"emails.type eq "home""#));
    assert!(user_matches(r#"emails.value ew "jensen.org""#));
    // Without a sub-attribute, each element's `value` is compared.
    assert!(user_matches(r#"emails co "@jensen.org""#));
    assert!(user_matches(r#"emails eq "BJENSEN@example.com""#));
    assert!(!user_matches(r#"emails co "@nowhere""#));
    // ne is the negation of eq over all values.
    assert!(!user_matches(r#"emails.type ne "home""#));
    assert!(user_matches(r#"emails.type ne "other""#));
    let res = json!({"tags": ["a", "B"]});
    assert!(matches(&parse(r#"tags eq "b""#).unwrap(), &res, &USER));
}

#[test]
fn value_paths_match_within_one_element() {
    assert!(user_matches(
        r#"emails[type eq "work" and value co "@example.com"]"#
    ));
    // Both conditions hold, but on different elements: no match.
    assert!(!user_matches(
        r#"emails[type eq "home" and value co "@example.com"]"#
    ));
    assert!(user_matches(
        r#"emails[type eq "home" or value co "@nowhere"]"#
    ));
    assert!(user_matches(r#"emails[not (type eq "work")]"#));
    assert!(user_matches(
        r#"emails[primary eq true] and emails[type eq "home"]"#
    ));
    assert!(!user_matches(
        r#"emails[primary eq true and type eq "home"]"#
    ));
    assert!(user_matches(r#"emails[emails.type eq "WORK"]"#));
    assert!(!user_matches(r#"phoneNumbers[type pr]"#));
    assert!(!user_matches(r#"ims[type pr]"#));
    assert!(user_matches(r#"name[givenName eq "barbara"]"#));
}

#[test]
fn value_path_inner_attributes_use_sub_attribute_case_exactness() {
    let group = json!({
        "displayName": "Admins",
        "members": [{"value": "Abc-1", "type": "User"}]
    });
    let m = |f: &str| matches(&parse(f).unwrap(), &group, &GROUP);
    assert!(m(r#"members[value eq "Abc-1"]"#));
    assert!(
        !m(r#"members[value eq "abc-1"]"#),
        "members.value is caseExact"
    );
    assert!(m(r#"members[type eq "user"]"#), "members.type is not");
    assert!(m(r#"members.value eq "Abc-1""#));
    assert!(!m(r#"members.value eq "ABC-1""#));
    assert!(m(r#"displayName eq "admins""#));
}

#[test]
fn extension_attributes() {
    assert!(user_matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#
    ));
    // URN matched case-insensitively.
    assert!(user_matches(
        r#"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:employeeNumber eq "701984""#
    ));
    // Unqualified names fall back to the declared extensions.
    assert!(user_matches(r#"department sw "Tour""#));
    assert!(user_matches(
        r#"manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#
    ));
    assert!(user_matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr"#
    ));
    // The core URN is the same as no URN.
    assert!(user_matches(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bjensen""#
    ));
    assert!(user_matches(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName eq "jensen""#
    ));
    // A core attribute is not found under the extension.
    assert!(!user_matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName pr"#
    ));
}

#[test]
fn logical_operators_evaluate() {
    assert!(user_matches(r#"userName sw "bj" and active eq true"#));
    assert!(!user_matches(r#"userName sw "bj" and active eq false"#));
    assert!(user_matches(r#"userName sw "zz" or active eq true"#));
    assert!(user_matches(r#"nickName pr or title pr or displayName pr"#));
    // a or b and c == a or (b and c): true or (false and false) = true.
    assert!(user_matches(
        r#"active eq true or active eq false and nickName pr"#
    ));
    // (a or b) and c: (true or false) and false = false.
    assert!(!user_matches(
        r#"(active eq true or active eq false) and nickName pr"#
    ));
    assert!(user_matches(r#"not (nickName pr)"#));
    assert!(!user_matches(r#"not (displayName pr)"#));
    assert!(user_matches(
        r#"userType eq "x" or not (emails co "nowhere" or emails co "none")"#
    ));
}

#[test]
fn key_lookup_is_case_insensitive() {
    let res = json!({"UserName": "alice", "Emails": [{"Value": "a@x.org", "TYPE": "work"}]});
    let m = |f: &str| matches(&parse(f).unwrap(), &res, &USER);
    assert!(m(r#"userName eq "ALICE""#));
    assert!(m(r#"emails[type eq "work"]"#));
    assert!(m(r#"emails.value ew "x.org""#));
    assert!(m(r#"emails co "@x""#));
}

#[test]
fn validate_rejects_operators_the_type_does_not_support() {
    for bad in [
        "active gt true",
        "active co \"t\"",
        "emails.primary le false",
        "x509Certificates.value gt \"AA\"",
        "x509Certificates sw \"AA\"",
        "name eq \"x\"",
        "meta gt \"x\"",
        "userName[value eq \"x\"]",
    ] {
        let e = validate(&parse(bad).unwrap(), &USER).expect_err(bad);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{bad}");
    }
    let e = validate(
        &parse("members[value co \"x\"] and members.display sw \"a\"").unwrap(),
        &GROUP,
    );
    assert!(e.is_ok());
}

#[test]
fn validate_accepts_supported_and_unknown() {
    for ok in [
        "active eq true",
        "emails co \"@x\"",
        "meta.created gt \"2020-01-01T00:00:00Z\"",
        "meta.lastModified sw \"2020\"",
        "customNumber co 5",
        "urn:example:x:flag gt true",
        "emails[primary eq true and value sw \"a\"]",
        "name.givenName gt \"a\"",
    ] {
        validate(&parse(ok).unwrap(), &USER).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let e = validate(&parse("emails[primary gt true]").unwrap(), &USER).unwrap_err();
    assert!(e.detail.contains("primary"), "{}", e.detail);
}

#[test]
fn non_object_resources_never_match_attribute_filters() {
    let f = parse("userName pr").unwrap();
    assert!(!matches(&f, &json!([1, 2]), &USER));
    assert!(!matches(&f, &Value::Null, &USER));
    assert!(matches(
        &parse("not (userName pr)").unwrap(),
        &json!("x"),
        &USER
    ));
}

#[test]
fn parsers_never_panic_on_arbitrary_input() {
    const ALPHABET: &[&str] = &[
        "a", "Z", "1", "-", "_", ".", ":", "$", "[", "]", "(", ")", "\"", "\\", " ", "é", "urn:",
        " eq ", " pr", " and ", " or ", "not ", "true", "null", "-1.5e3", "\"x\"", "\\u00", "\t",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let user = user();
    for _ in 0..20_000 {
        let len = (next() % 12) as usize;
        let input: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        if let Ok(f) = parse(&input) {
            let _ = validate(&f, &USER);
            let _ = matches(&f, &user, &USER);
            assert_eq!(parse(&f.to_string()).as_ref(), Ok(&f), "{input:?}");
        }
        let _ = parse_attr_path(&input);
        let _ = parse_patch_path(&input);
    }
}
