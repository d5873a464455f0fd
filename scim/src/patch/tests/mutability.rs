//! PATCH mutability rules: readOnly, immutable, required, `schemas`, and odd inputs.

use super::*;

// ---- mutability ----------------------------------------------------------------------------

#[test]
fn read_only_and_schemas_paths_are_mutability_errors() {
    let u = user();
    for op in [
        json!({"op": "replace", "path": "id", "value": "x"}),
        json!({"op": "replace", "path": "id", "value": "u-1"}),
        json!({"op": "remove", "path": "meta"}),
        json!({"op": "replace", "path": "meta.created", "value": "2021-01-01T00:00:00Z"}),
        json!({"op": "add", "path": "groups", "value": [{"value": "g-2"}]}),
        json!({"op": "remove", "path": "groups[value eq \"g-1\"]"}),
        json!({"op": "replace", "path": "schemas", "value": [USER_SCHEMA]}),
        json!({"op": "remove", "path": "schemas"}),
        json!({"op": "replace", "value": {"meta": {"resourceType": "Group"}}}),
        json!({"op": "add", "value": {"groups": [{"value": "g-9"}]}}),
        json!({"op": "replace", "value": {"schemas": ["urn:example:other"]}}),
    ] {
        patch_err(&u, &USER, json!([op]), ScimType::Mutability);
    }
}

#[test]
fn unchanged_read_only_values_and_schemas_in_values_are_accepted() {
    let mut u = user();
    let op = json!([{"op": "replace", "value": {
        "schemas": [USER_SCHEMA, ENT],
        "id": "u-1",
        "meta": {"resourceType": "User", "created": "2020-01-01T00:00:00Z"},
        "nickName": "B"
    }}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u["nickName"], "B");
    assert_eq!(
        u["schemas"],
        json!([USER_SCHEMA]),
        "schemas is server-maintained"
    );
}

#[test]
fn required_attributes_cannot_be_removed() {
    patch_err(
        &user(),
        &USER,
        json!([{"op": "remove", "path": "userName"}]),
        ScimType::Mutability,
    );
    patch_err(
        &user(),
        &USER,
        json!([{"op": "replace", "path": "userName", "value": null}]),
        ScimType::Mutability,
    );
    patch_err(
        &group(),
        &GROUP,
        json!([{"op": "remove", "path": "displayName"}]),
        ScimType::Mutability,
    );
}

#[test]
fn write_only_password_can_be_replaced() {
    let mut u = user();
    assert!(
        patch(
            &mut u,
            &USER,
            json!([{"op": "replace", "path": "password", "value": "s3cret"}])
        )
        .unwrap()
    );
    assert_eq!(u["password"], "s3cret");
}

#[test]
fn non_object_resource_is_internal_error() {
    let mut v = json!([]);
    let err = apply(
        &mut v,
        &ops(json!([{"op": "add", "path": "nickName", "value": "x"}])),
        &USER,
    )
    .unwrap_err();
    assert_eq!(err.status, 500);
}

#[test]
fn empty_operation_list_changes_nothing() {
    let mut u = user();
    assert!(!apply(&mut u, &[], &USER).unwrap());
}

#[test]
fn random_operations_never_panic_and_stay_atomic() {
    const PATHS: &[&str] = &[
        "",
        "emails",
        "emails[type eq \"work\"]",
        "emails[type eq \"work\"].value",
        "name",
        "name.givenName",
        "members",
        "members[value eq \"u-1\"]",
        "active",
        "id",
        "meta",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "urn:x:y:z",
        "groups",
        "userName",
        "emails.primary",
        "phoneNumbers[value pr]",
    ];
    let values = [
        json!(null),
        json!("x"),
        json!("False"),
        json!(true),
        json!(3),
        json!([]),
        json!({"value": "v", "primary": true}),
        json!([{"value": "u-1"}, {"value": "a", "type": "work"}]),
        json!({"givenName": "G", "department": "D", "active": "true"}),
        json!({"emails.value": "x"}),
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for round in 0..3000 {
        let (rt, mut resource) = if round % 2 == 0 {
            (&USER, user())
        } else {
            (&GROUP, group())
        };
        let op = ["add", "remove", "replace"][next(3)];
        let mut operation = json!({"op": op});
        let path = PATHS[next(PATHS.len())];
        if !path.is_empty() {
            operation["path"] = json!(path);
        }
        if next(4) > 0 {
            operation["value"] = values[next(values.len())].clone();
        }
        let Ok(parsed) = parse_request(&body(json!([operation.clone()]))) else {
            continue;
        };
        let before = resource.clone();
        match apply(&mut resource, &parsed, rt) {
            Ok(changed) => assert_eq!(changed, resource != before, "{operation}"),
            Err(_) => assert_eq!(resource, before, "{operation}"),
        }
    }
}
