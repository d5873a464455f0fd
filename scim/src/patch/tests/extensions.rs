//! PATCH of the enterprise extension and of custom extensions.

use super::*;

// ---- enterprise extension ------------------------------------------------------------------

#[test]
fn enterprise_department_add_replace_remove_with_schemas_bookkeeping() {
    let mut u = user();
    let path = format!("{ENT}:department");
    assert!(
        patch(
            &mut u,
            &USER,
            json!([{"op": "add", "path": path, "value": "Sales"}])
        )
        .unwrap()
    );
    assert_eq!(u[ENT], json!({"department": "Sales"}));
    assert_eq!(u["schemas"], json!([USER_SCHEMA, ENT]));

    assert!(
        patch(
            &mut u,
            &USER,
            json!([{"op": "replace", "path": path, "value": "Ops"}])
        )
        .unwrap()
    );
    assert_eq!(u[ENT]["department"], "Ops");
    assert_eq!(u["schemas"], json!([USER_SCHEMA, ENT]), "listed once");

    assert!(patch(&mut u, &USER, json!([{"op": "remove", "path": path}])).unwrap());
    assert!(u.get(ENT).is_none());
    assert_eq!(u["schemas"], json!([USER_SCHEMA]));
}

#[test]
fn enterprise_extension_object_and_unqualified_names() {
    let mut u = user();
    let op = json!([
        {"op": "replace", "value": {ENT: {"employeeNumber": "42", "manager": {"value": "m-1"}}}},
        {"op": "add", "path": "costCenter", "value": "CC1"}
    ]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(
        u[ENT],
        json!({"employeeNumber": "42", "manager": {"value": "m-1"}, "costCenter": "CC1"})
    );
    assert_eq!(u["schemas"], json!([USER_SCHEMA, ENT]));
    // Removing one attribute keeps the extension while others remain.
    patch(
        &mut u,
        &USER,
        json!([{"op": "remove", "path": format!("{ENT}:costCenter")}]),
    )
    .unwrap();
    assert_eq!(u["schemas"], json!([USER_SCHEMA, ENT]));
    // Removing the whole extension by its URN.
    assert!(patch(&mut u, &USER, json!([{"op": "remove", "path": ENT}])).unwrap());
    assert!(u.get(ENT).is_none());
    assert_eq!(u["schemas"], json!([USER_SCHEMA]));
}

#[test]
fn manager_paths_and_entra_bare_manager_value() {
    let mut u = user();
    let op = json!([{"op": "Add", "path": format!("{ENT}:manager"), "value": "m-1"}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u[ENT]["manager"], json!({"value": "m-1"}));
    let op = json!([{"op": "replace", "path": format!("{ENT}:manager.value"), "value": "m-2"}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(u[ENT]["manager"], json!({"value": "m-2"}));
    patch_err(
        &u,
        &USER,
        json!([{"op": "replace", "path": format!("{ENT}:manager.displayName"), "value": "Boss"}]),
        ScimType::Mutability,
    );
    patch_err(
        &u,
        &USER,
        json!([{"op": "replace", "path": format!("{ENT}:manager"), "value": {"value": "m-3", "displayName": "Boss"}}]),
        ScimType::Mutability,
    );
    assert!(
        patch(
            &mut u,
            &USER,
            json!([{"op": "remove", "path": format!("{ENT}:manager.value")}])
        )
        .unwrap()
    );
    assert!(u.get(ENT).is_none(), "manager emptied, then the extension");
    assert_eq!(u["schemas"], json!([USER_SCHEMA]));
}

#[test]
fn removing_manager_with_server_maintained_display_name_is_allowed() {
    let mut u = user();
    u[ENT] = json!({"manager": {"value": "m-1", "displayName": "Boss"}, "division": "D"});
    assert!(
        patch(
            &mut u,
            &USER,
            json!([{"op": "remove", "path": format!("{ENT}:manager")}])
        )
        .unwrap()
    );
    assert_eq!(u[ENT], json!({"division": "D"}));
}

// ---- unknown attributes and custom extensions ----------------------------------------------

#[test]
fn unknown_attributes_of_known_schemas_are_invalid_path() {
    let u = user();
    for op in [
        json!({"op": "add", "path": "shoeSize", "value": 1}),
        json!({"op": "add", "path": "name.nickname", "value": "x"}),
        json!({"op": "add", "path": format!("{ENT}:shoeSize"), "value": 1}),
        json!({"op": "add", "path": format!("{USER_SCHEMA}:shoeSize"), "value": 1}),
        json!({"op": "replace", "value": {"shoeSize": 1}}),
        json!({"op": "replace", "value": {ENT: {"shoeSize": 1}}}),
        json!({"op": "remove", "path": "shoeSize"}),
        json!({"op": "add", "path": "active.value", "value": true}),
        json!({"op": "add", "path": format!("{GROUP_SCHEMA}:members"), "value": []}),
    ] {
        patch_err(&u, &USER, json!([op]), ScimType::InvalidPath);
    }
}

#[test]
fn custom_extension_attributes_are_stored_as_given() {
    const CUSTOM: &str = "urn:example:params:scim:schemas:extension:acme:1.0:User";
    let mut u = user();
    let op = json!([
        {"op": "add", "path": format!("{CUSTOM}:badge"), "value": "B-7"},
        {"op": "add", "path": format!("{CUSTOM}:tags"), "value": ["x"]},
        {"op": "add", "path": format!("{CUSTOM}:tags"), "value": ["x", "y"]},
        {"op": "add", "value": {CUSTOM: {"level": 3}}}
    ]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(
        u[CUSTOM],
        json!({"badge": "B-7", "tags": ["x", "y"], "level": 3})
    );
    assert_eq!(u["schemas"], json!([USER_SCHEMA, CUSTOM]));
    let op = json!([{"op": "remove", "path": format!("{CUSTOM}:tags"), "value": ["x"]}]);
    patch(&mut u, &USER, op).unwrap();
    assert_eq!(u[CUSTOM]["tags"], json!(["y"]));
    let op = json!([
        {"op": "remove", "path": format!("{CUSTOM}:badge")},
        {"op": "remove", "path": format!("{CUSTOM}:tags")},
        {"op": "remove", "path": format!("{CUSTOM}:level")}
    ]);
    patch(&mut u, &USER, op).unwrap();
    assert!(u.get(CUSTOM).is_none());
    assert_eq!(u["schemas"], json!([USER_SCHEMA]));
}

#[test]
fn add_with_the_extension_urn_as_path_merges_its_attributes() {
    let mut u = user();
    u[ENT] = json!({"division": "D"});
    let op = json!([{"op": "add", "path": ENT, "value": {"department": "X", "manager": "m-1"}}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert_eq!(
        u[ENT],
        json!({"division": "D", "department": "X", "manager": {"value": "m-1"}})
    );
    assert_eq!(u["schemas"], json!([USER_SCHEMA, ENT]));
    // A null value for a whole extension object removes it.
    let op = json!([{"op": "replace", "value": {ENT: null}}]);
    assert!(patch(&mut u, &USER, op).unwrap());
    assert!(u.get(ENT).is_none());
    assert_eq!(u["schemas"], json!([USER_SCHEMA]));
}
