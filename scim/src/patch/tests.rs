use super::*;
use crate::error::ScimType;
use crate::schema::{ENTERPRISE_USER_SCHEMA, GROUP, GROUP_SCHEMA, USER, USER_SCHEMA};
use serde_json::json;

mod extensions;
mod mutability;

const ENT: &str = ENTERPRISE_USER_SCHEMA;

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": ops})
}

fn ops(ops: Value) -> Vec<PatchOperation> {
    parse_request(&body(ops)).unwrap()
}

fn patch(resource: &mut Value, rt: &ResourceType, operations: Value) -> Result<bool, ScimError> {
    apply(resource, &ops(operations), rt)
}

/// Applies, expects an error of `kind`, and checks the resource is unchanged.
fn patch_err(resource: &Value, rt: &ResourceType, operations: Value, kind: ScimType) -> ScimError {
    let mut copy = resource.clone();
    let err = patch(&mut copy, rt, operations.clone()).expect_err(&operations.to_string());
    assert_eq!(err.status, 400, "{err}");
    assert_eq!(err.scim_type, Some(kind), "{operations}: {err}");
    assert_eq!(&copy, resource, "resource must be untouched on error");
    err
}

fn user() -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "id": "u-1",
        "externalId": "ext-1",
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@home.org", "type": "home"}
        ],
        "groups": [{"value": "g-1", "display": "Admins"}],
        "meta": {"resourceType": "User", "created": "2020-01-01T00:00:00Z"}
    })
}

fn group() -> Value {
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": "g-1",
        "displayName": "Admins",
        "members": [
            {"value": "u-1", "display": "Babs"},
            {"value": "u-2"}
        ],
        "meta": {"resourceType": "Group"}
    })
}

fn member_ids(g: &Value) -> Vec<&str> {
    g["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|e| e["value"].as_str()).collect())
        .unwrap_or_default()
}

// ---- request parsing -----------------------------------------------------------------------

#[test]
fn parses_ops_paths_and_values() {
    let parsed = ops(json!([
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "ADD", "path": "emails[type eq \"work\"].value", "value": "x@y"},
        {"op": "remove", "path": "name.givenName"},
        {"op": "add", "value": {"nickName": "B"}},
        {"op": "replace", "path": null, "value": {}},
        {"op": "replace", "path": "  ", "value": {}}
    ]));
    assert_eq!(parsed.len(), 6);
    assert_eq!(parsed[0].op, PatchOp::Replace);
    assert_eq!(
        parsed[0].path.as_ref().unwrap().attr,
        AttrPath::new("active")
    );
    assert_eq!(parsed[0].value, Some(json!("False")));
    let p = parsed[1].path.as_ref().unwrap();
    assert_eq!(parsed[1].op, PatchOp::Add);
    assert_eq!(p.attr, AttrPath::new("emails"));
    assert!(p.filter.is_some());
    assert_eq!(p.sub.as_deref(), Some("value"));
    assert_eq!(p.to_string(), "emails[type eq \"work\"].value");
    let p = parsed[2].path.as_ref().unwrap();
    assert_eq!(p.attr.sub.as_deref(), Some("givenName"));
    assert_eq!(parsed[2].value, None);
    assert!(parsed[3..].iter().all(|o| o.path.is_none()));
}

#[test]
fn request_member_names_are_case_insensitive() {
    let b = json!({
        "Schemas": [PATCH_SCHEMA.to_uppercase()],
        "operations": [{"OP": "add", "PATH": "nickName", "Value": "B"}]
    });
    let parsed = parse_request(&b).unwrap();
    assert_eq!(parsed[0].path.as_ref().unwrap().attr.attr, "nickName");
    assert_eq!(parsed[0].value, Some(json!("B")));
}

#[test]
fn rejects_invalid_bodies() {
    let op = json!({"op": "add", "path": "nickName", "value": "x"});
    let cases = [
        (json!([op]), ScimType::InvalidSyntax),
        (json!("x"), ScimType::InvalidSyntax),
        (json!({"Operations": [op]}), ScimType::InvalidValue),
        (
            json!({"schemas": PATCH_SCHEMA, "Operations": [op]}),
            ScimType::InvalidValue,
        ),
        (
            json!({"schemas": [USER_SCHEMA], "Operations": [op]}),
            ScimType::InvalidValue,
        ),
        (json!({"schemas": [PATCH_SCHEMA]}), ScimType::InvalidSyntax),
        (
            json!({"schemas": [PATCH_SCHEMA], "Operations": op}),
            ScimType::InvalidSyntax,
        ),
        (
            json!({"schemas": [PATCH_SCHEMA], "Operations": []}),
            ScimType::InvalidSyntax,
        ),
        (body(json!(["add"])), ScimType::InvalidSyntax),
        (
            body(json!([{"path": "x", "value": 1}])),
            ScimType::InvalidSyntax,
        ),
        (body(json!([{"op": 1}])), ScimType::InvalidSyntax),
        (
            body(json!([{"op": "move", "path": "a"}])),
            ScimType::InvalidSyntax,
        ),
        (
            body(json!([{"op": "add", "path": 5, "value": 1}])),
            ScimType::InvalidPath,
        ),
        (
            body(json!([{"op": "add", "path": "emails[type eq]", "value": 1}])),
            ScimType::InvalidPath,
        ),
        (
            body(json!([{"op": "add", "path": "a.b.c", "value": 1}])),
            ScimType::InvalidPath,
        ),
        (
            body(json!([{"op": "add", "path": "emails[type pr", "value": 1}])),
            ScimType::InvalidPath,
        ),
        (
            body(json!([{"op": "add", "path": "emails[type pr] x", "value": 1}])),
            ScimType::InvalidPath,
        ),
    ];
    for (b, kind) in cases {
        let e = parse_request(&b).expect_err(&b.to_string());
        assert_eq!(e.status, 400);
        assert_eq!(e.scim_type, Some(kind), "{b}: {e}");
    }
    let e = parse_request(&body(json!([op, {"op": "jump"}]))).unwrap_err();
    assert!(e.detail.starts_with("Operations[1]:"), "{}", e.detail);
    assert!(e.detail.contains("jump"), "{}", e.detail);
}

// ---- IdP-style requests ------------------------------------------------------------------

#[test]
fn okta_deactivate_without_path() {
    let mut u = user();
    let changed = patch(
        &mut u,
        &USER,
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .unwrap();
    assert!(changed);
    assert_eq!(u["active"], json!(false));
    assert_eq!(u["userName"], "bjensen");
}

#[test]
fn okta_rename_group_echoing_the_id() {
    let mut g = group();
    let op = json!([{"op": "replace", "value": {"id": "g-1", "displayName": "Admins 2"}}]);
    assert!(patch(&mut g, &GROUP, op).unwrap());
    assert_eq!(g["displayName"], "Admins 2");
    let err = patch_err(
        &g,
        &GROUP,
        json!([{"op": "replace", "value": {"id": "other", "displayName": "X"}}]),
        ScimType::Mutability,
    );
    assert!(err.detail.contains("'id' is readOnly"), "{}", err.detail);
}

#[test]
fn entra_boolean_strings_are_coerced() {
    let mut u = user();
    assert!(
        patch(
            &mut u,
            &USER,
            json!([{"op": "Replace", "path": "active", "value": "False"}])
        )
        .unwrap()
    );
    assert_eq!(u["active"], json!(false));
    assert!(
        patch(
            &mut u,
            &USER,
            json!([{"op": "Replace", "path": "active", "value": "TRUE"}])
        )
        .unwrap()
    );
    assert_eq!(u["active"], json!(true));
    let op =
        json!([{"op": "Replace", "path": "emails[type eq \"home\"].primary", "value": "True"}]);
    patch(&mut u, &USER, op).unwrap();
    assert_eq!(u["emails"][1]["primary"], json!(true));
}

#[test]
fn wrong_value_types_are_invalid_value() {
    let u = user();
    for op in [
        json!({"op": "replace", "path": "active", "value": "maybe"}),
        json!({"op": "replace", "path": "active", "value": 1}),
        json!({"op": "replace", "path": "userName", "value": 5}),
        json!({"op": "replace", "value": {"userName": ["a"]}}),
        json!({"op": "replace", "path": "name", "value": ["x"]}),
        json!({"op": "add", "path": "emails", "value": [{"value": "a@b", "primary": "yes"}]}),
        json!({"op": "add", "path": "emails", "value": [{"value": "a@b", "shoe": 1}]}),
        json!({"op": "replace", "path": "name", "value": {"givenName": 1}}),
        json!({"op": "replace", "path": "name.familyName", "value": true}),
        json!({"op": "add", "value": "not an object"}),
        json!({"op": "add", "path": "nickName"}),
        json!({"op": "replace"}),
    ] {
        patch_err(&u, &USER, json!([op]), ScimType::InvalidValue);
    }
}

#[test]
fn entra_member_add_and_remove_with_value_arrays() {
    let mut g = group();
    let add =
        json!([{"op": "Add", "path": "members", "value": [{"value": "u-3"}, {"value": "u-4"}]}]);
    assert!(patch(&mut g, &GROUP, add.clone()).unwrap());
    assert_eq!(member_ids(&g), ["u-1", "u-2", "u-3", "u-4"]);
    // Idempotent: adding the same members again changes nothing.
    assert!(!patch(&mut g, &GROUP, add).unwrap());
    assert_eq!(member_ids(&g).len(), 4);
    let remove =
        json!([{"op": "Remove", "path": "members", "value": [{"value": "u-1"}, {"value": "u-3"}]}]);
    assert!(patch(&mut g, &GROUP, remove.clone()).unwrap());
    assert_eq!(member_ids(&g), ["u-2", "u-4"]);
    // Removing absent members is not an error.
    assert!(!patch(&mut g, &GROUP, remove).unwrap());
}

#[test]
fn okta_member_remove_by_value_filter() {
    let mut g = group();
    let op = json!([{"op": "remove", "path": "members[value eq \"u-1\"]"}]);
    assert!(patch(&mut g, &GROUP, op.clone()).unwrap());
    assert_eq!(member_ids(&g), ["u-2"]);
    assert!(
        !patch(&mut g, &GROUP, op).unwrap(),
        "no match is not an error"
    );
    // Removing the last member unassigns the attribute.
    let op = json!([{"op": "remove", "path": "members[value eq \"u-2\"]"}]);
    assert!(patch(&mut g, &GROUP, op).unwrap());
    assert!(g.get("members").is_none());
}

#[test]
fn member_value_is_case_exact_and_immutable() {
    let mut g = group();
    let op = json!([{"op": "remove", "path": "members[value eq \"U-1\"]"}]);
    assert!(!patch(&mut g, &GROUP, op).unwrap());
    patch_err(
        &g,
        &GROUP,
        json!([{"op": "replace", "path": "members[value eq \"u-1\"].value", "value": "u-9"}]),
        ScimType::Mutability,
    );
    patch_err(
        &g,
        &GROUP,
        json!([{"op": "replace", "path": "members[value eq \"u-1\"]", "value": {"value": "u-9"}}]),
        ScimType::Mutability,
    );
    patch_err(
        &g,
        &GROUP,
        json!([{"op": "remove", "path": "members[value eq \"u-1\"].value"}]),
        ScimType::Mutability,
    );
    // Non-immutable sub-attributes of a member can change; immutable ones can be set once.
    let op = json!([
        {"op": "replace", "path": "members[value eq \"u-2\"].display", "value": "Two"},
        {"op": "add", "path": "members[value eq \"u-2\"]", "value": {"type": "User"}}
    ]);
    assert!(patch(&mut g, &GROUP, op).unwrap());
    assert_eq!(
        g["members"][1],
        json!({"value": "u-2", "display": "Two", "type": "User"})
    );
    patch_err(
        &g,
        &GROUP,
        json!([{"op": "add", "path": "members[value eq \"u-2\"]", "value": {"type": "Group"}}]),
        ScimType::Mutability,
    );
}

#[test]
fn group_members_replace_and_remove_all() {
    let mut g = group();
    let op = json!([{"op": "replace", "path": "members", "value": [{"value": "u-7"}]}]);
    assert!(patch(&mut g, &GROUP, op).unwrap());
    assert_eq!(member_ids(&g), ["u-7"]);
    assert!(patch(&mut g, &GROUP, json!([{"op": "remove", "path": "members"}])).unwrap());
    assert!(g.get("members").is_none());
    assert!(!patch(&mut g, &GROUP, json!([{"op": "remove", "path": "members"}])).unwrap());
}

// ---- value filters -------------------------------------------------------------------------

#[test]
fn replace_sub_attribute_of_filtered_elements() {
    let mut u = user();
    let op = json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(
        u["emails"][0],
        json!({"value": "new@example.com", "type": "work", "primary": true})
    );
    assert_eq!(u["emails"][1]["value"], "babs@home.org");
}

#[test]
fn replace_filtered_elements_wholesale() {
    let mut u = user();
    let op = json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {"value": "h@h.org", "type": "other"}}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["emails"][1], json!({"value": "h@h.org", "type": "other"}));
    assert_eq!(u["emails"][0]["value"], "bjensen@example.com");
}

#[test]
fn filtered_replace_without_match_is_no_target() {
    let u = user();
    for path in [
        "emails[type eq \"other\"].value",
        "emails[type eq \"other\"]",
        "phoneNumbers[type eq \"work\"].value",
    ] {
        let err = patch_err(
            &u,
            &USER,
            json!([{"op": "replace", "path": path, "value": "x"}]),
            ScimType::NoTarget,
        );
        assert!(err.detail.contains("no value matches"), "{}", err.detail);
    }
}

#[test]
fn filtered_paths_with_and_or() {
    let mut u = user();
    let op = json!([{"op": "replace", "path": "emails[type eq \"work\" or type eq \"home\"].display", "value": "D"}]);
    patch(&mut u, &USER, op).unwrap();
    assert_eq!(u["emails"][0]["display"], "D");
    assert_eq!(u["emails"][1]["display"], "D");
    let op = json!([{"op": "remove", "path": "emails[type eq \"work\" and value co \"example\"]"}]);
    patch(&mut u, &USER, op).unwrap();
    assert_eq!(u["emails"].as_array().unwrap().len(), 1);
    assert_eq!(u["emails"][0]["type"], "home");
}

#[test]
fn remove_sub_attribute_of_filtered_elements() {
    let mut u = user();
    let op = json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(
        u["emails"][0],
        json!({"value": "bjensen@example.com", "type": "work"})
    );
}

#[test]
fn entra_add_with_filter_creates_missing_element() {
    let mut u = user();
    let op = json!([
        {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"},
        {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
        {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "changed@example.com"}
    ]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(
        u["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555"}])
    );
    assert_eq!(
        u["addresses"],
        json!([{"type": "work", "streetAddress": "1 Main St", "locality": "Springfield"}])
    );
    assert_eq!(u["emails"][0]["value"], "changed@example.com");
    assert_eq!(u["emails"].as_array().unwrap().len(), 2);
    // A filter that is not a conjunction of eq comparisons cannot seed an element.
    patch_err(
        &u,
        &USER,
        json!([{"op": "add", "path": "ims[type co \"x\"].value", "value": "a"}]),
        ScimType::NoTarget,
    );
}

#[test]
fn sub_attribute_of_multi_valued_needs_filter() {
    let u = user();
    patch_err(
        &u,
        &USER,
        json!([{"op": "replace", "path": "emails.value", "value": "x@y"}]),
        ScimType::InvalidPath,
    );
    patch_err(
        &u,
        &USER,
        json!([{"op": "replace", "value": {"emails.value": "x"}}]),
        ScimType::InvalidPath,
    );
    patch_err(
        &u,
        &USER,
        json!([{"op": "replace", "path": "name[givenName eq \"Barbara\"]", "value": {}}]),
        ScimType::InvalidPath,
    );
    // Removing a sub-attribute from every element is allowed.
    let mut u = user();
    assert!(
        patch(
            &mut u,
            &USER,
            json!([{"op": "remove", "path": "emails.type"}])
        )
        .unwrap()
    );
    assert!(
        u["emails"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("type").is_none())
    );
}

// ---- add / replace / remove basics -------------------------------------------------------

#[test]
fn replace_merges_complex_and_adds_missing() {
    let mut u = user();
    let op = json!([
        {"op": "replace", "path": "name", "value": {"givenName": "Babs"}},
        {"op": "replace", "path": "nickName", "value": "B"},
        {"op": "replace", "value": {"name": {"middleName": "J", "familyName": null}}}
    ]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["name"], json!({"givenName": "Babs", "middleName": "J"}));
    assert_eq!(u["nickName"], "B");
}

#[test]
fn add_without_path_handles_dotted_and_urn_keys() {
    let mut u = user();
    let op = json!([{"op": "add", "value": {
        "name.honorificPrefix": "Ms.",
        "urn:ietf:params:scim:schemas:core:2.0:User:title": "Boss",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales",
        "emails": [{"value": "third@x.org", "type": "other"}],
        "urn:ietf:params:scim:schemas:core:2.0:User": {"displayName": "Babs"}
    }}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["name"]["honorificPrefix"], "Ms.");
    assert_eq!(u["name"]["givenName"], "Barbara");
    assert_eq!(u["title"], "Boss");
    assert_eq!(u["displayName"], "Babs");
    assert_eq!(u[ENT]["department"], "Sales");
    assert_eq!(u["schemas"], json!([USER_SCHEMA, ENT]));
    assert_eq!(u["emails"].as_array().unwrap().len(), 3, "add appends");
}

#[test]
fn replace_without_path_replaces_multi_valued_wholesale() {
    let mut u = user();
    let op =
        json!([{"op": "replace", "value": {"emails": [{"value": "only@x.org", "type": "work"}]}}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(
        u["emails"],
        json!([{"value": "only@x.org", "type": "work"}])
    );
    let op = json!([{"op": "replace", "path": "emails", "value": []}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert!(u.get("emails").is_none());
}

#[test]
fn add_singular_sets_and_multi_valued_appends_without_duplicates() {
    let mut u = user();
    let op = json!([
        {"op": "add", "path": "displayName", "value": "Babs"},
        {"op": "add", "path": "displayName", "value": "Barbara J"},
        {"op": "add", "path": "emails", "value": {"value": "BJENSEN@example.com", "type": "work"}},
        {"op": "add", "path": "roles", "value": [{"value": "admin"}, {"value": "admin"}]}
    ]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["displayName"], "Barbara J");
    assert_eq!(
        u["emails"].as_array().unwrap().len(),
        2,
        "emails.value is not caseExact"
    );
    assert_eq!(u["roles"], json!([{"value": "admin"}]));
}

#[test]
fn idempotent_add_reports_no_change() {
    let mut u = user();
    let op = json!([
        {"op": "add", "path": "emails", "value": [{"value": "babs@home.org", "type": "home"}]},
        {"op": "add", "path": "userName", "value": "bjensen"},
        {"op": "replace", "value": {"name": {"givenName": "Barbara"}}}
    ]);
    let before = u.clone();
    assert!(!patch(&mut u, &USER, op).unwrap());
    assert_eq!(u, before);
}

#[test]
fn remove_simple_paths() {
    let mut u = user();
    let op = json!([
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "externalId"},
        {"op": "remove", "path": "nickName"}
    ]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["name"], json!({"familyName": "Jensen"}));
    assert!(u.get("externalId").is_none());
    let op = json!([{"op": "remove", "path": "name.familyName"}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert!(
        u.get("name").is_none(),
        "an emptied complex attribute is unassigned"
    );
    assert!(!patch(&mut u, &USER, json!([{"op": "remove", "path": "title"}])).unwrap());
}

#[test]
fn remove_requires_a_path() {
    let err = patch_err(
        &user(),
        &USER,
        json!([{"op": "remove"}]),
        ScimType::NoTarget,
    );
    assert!(err.detail.contains("requires a 'path'"), "{}", err.detail);
}

#[test]
fn null_values_unassign() {
    let mut u = user();
    let op = json!([
        {"op": "replace", "path": "externalId", "value": null},
        {"op": "replace", "value": {"name": null}}
    ]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert!(u.get("externalId").is_none());
    assert!(u.get("name").is_none());
}

#[test]
fn atomic_when_a_later_operation_fails() {
    let u = user();
    let err = patch_err(
        &u,
        &USER,
        json!([
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "emails[type eq \"pager\"].value", "value": "x"}
        ]),
        ScimType::NoTarget,
    );
    assert!(err.detail.starts_with("Operations[1]:"), "{}", err.detail);
}

#[test]
fn keys_and_paths_match_case_insensitively() {
    let mut u = json!({
        "schemas": [USER_SCHEMA],
        "UserName": "bjensen",
        "Emails": [{"Value": "a@x.org", "Type": "work"}]
    });
    let op = json!([
        {"op": "replace", "path": "USERNAME", "value": "babs"},
        {"op": "replace", "path": "EMAILS[TYPE EQ \"WORK\"].VALUE", "value": "b@x.org"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:DEPARTMENT", "value": "R&D"}
    ]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["UserName"], "babs");
    assert!(u.get("userName").is_none(), "existing key spelling is kept");
    assert_eq!(u["Emails"], json!([{"Value": "b@x.org", "Type": "work"}]));
    assert_eq!(
        u[ENT],
        json!({"department": "R&D"}),
        "new keys use canonical names"
    );
}

// ---- primary -----------------------------------------------------------------------------

#[test]
fn setting_primary_clears_the_others() {
    let mut u = user();
    let op = json!([{"op": "add", "path": "emails", "value": [{"value": "n@x.org", "type": "other", "primary": true}]}]);
    patch(&mut u, &USER, op).unwrap();
    assert_eq!(u["emails"][0]["primary"], json!(false));
    assert_eq!(u["emails"][2]["primary"], json!(true));
    let op = json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]);
    patch(&mut u, &USER, op).unwrap();
    let primaries: Vec<&str> = u["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["primary"] == json!(true))
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(primaries, ["home"]);
}

#[test]
fn two_primaries_in_one_operation_are_rejected() {
    let u = user();
    patch_err(
        &u,
        &USER,
        json!([{"op": "replace", "path": "emails", "value": [
            {"value": "a@x.org", "primary": true},
            {"value": "b@x.org", "primary": true}
        ]}]),
        ScimType::InvalidValue,
    );
    patch_err(
        &u,
        &USER,
        json!([{"op": "replace", "path": "emails[value pr].primary", "value": true}]),
        ScimType::InvalidValue,
    );
}

#[test]
fn filtered_replace_with_null_drops_elements() {
    let mut u = user();
    let op = json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": null}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["emails"].as_array().unwrap().len(), 1);
    assert_eq!(u["emails"][0]["type"], "work");
}

#[test]
fn path_filters_are_validated_against_the_schema() {
    let err = patch_err(
        &user(),
        &USER,
        json!([{"op": "remove", "path": "emails[primary gt true]"}]),
        ScimType::InvalidPath,
    );
    assert!(err.detail.contains("primary"), "{}", err.detail);
}

#[test]
fn entra_path_less_replace_with_string_booleans_and_dotted_names() {
    let mut u = user();
    let op = json!([{"op": "Replace", "value": {
        "active": "False",
        "name.givenName": "Babs",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984"
    }}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["active"], json!(false));
    assert_eq!(u["name"]["givenName"], "Babs");
    assert_eq!(u[ENT]["employeeNumber"], "701984");
}

#[test]
fn same_value_with_a_different_type_is_a_different_element() {
    let mut u = user();
    let op = json!([{"op": "add", "path": "emails", "value": [{"value": "babs@home.org", "type": "other"}]}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["emails"].as_array().unwrap().len(), 3);
    // Without a type, an element with the same value is the same element: merged, not added.
    let op = json!([{"op": "add", "path": "emails", "value": [{"value": "bjensen@example.com", "display": "Work"}]}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["emails"].as_array().unwrap().len(), 3);
    assert_eq!(u["emails"][0]["display"], "Work");
}

#[test]
fn okta_member_add_with_display_merges_into_existing_member() {
    let mut g = group();
    let op =
        json!([{"op": "add", "path": "members", "value": [{"value": "u-2", "display": "Two"}]}]);
    assert!(patch(&mut g, &GROUP, op).unwrap());
    assert_eq!(member_ids(&g), ["u-1", "u-2"]);
    assert_eq!(g["members"][1]["display"], "Two");
}

#[test]
fn entra_removes_a_manager_with_a_value_filter() {
    let mut u = user();
    u["schemas"] = json!([USER_SCHEMA, ENT]);
    u[ENT] = json!({"manager": {"value": "m-1", "displayName": "Boss"}, "department": "Legal"});
    // A filter naming another manager removes nothing.
    let changed = patch(
        &mut u,
        &USER,
        json!([{"op": "remove", "path": "manager[value eq \"m-2\"]"}]),
    )
    .unwrap();
    assert!(!changed);
    let changed = patch(
        &mut u,
        &USER,
        json!([{"op": "Remove", "path": "manager[value eq \"m-1\"]"}]),
    )
    .unwrap();
    assert!(changed);
    assert_eq!(u[ENT], json!({"department": "Legal"}));
    // Value filters stay refused where they make no sense.
    patch_err(
        &user(),
        &USER,
        json!([{"op": "replace", "path": "manager[value eq \"m-1\"].displayName", "value": "X"}]),
        ScimType::InvalidPath,
    );
    patch_err(
        &user(),
        &USER,
        json!([{"op": "remove", "path": "userName[value eq \"x\"]"}]),
        ScimType::InvalidPath,
    );
}

#[test]
fn entra_quotes_booleans_in_value_filters() {
    let mut u = user();
    patch(
        &mut u,
        &USER,
        json!([{"op": "replace", "path": "emails[primary eq \"True\"].type", "value": "other"}]),
    )
    .unwrap();
    assert_eq!(u["emails"][0]["type"], "other");
    assert_eq!(u["emails"][1]["type"], "home");
}
