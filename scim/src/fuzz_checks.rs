//! The properties the fuzz targets (`scim/fuzz`) check, shared with the regression test that
//! replays the committed corpus on every `cargo test`. Each function panics when a property
//! does not hold, which is what a fuzzer reports.

use crate::filter::{self, Filter};
use crate::patch::{self, PatchPath};
use crate::schema::{GROUP, USER};
use serde_json::{Value, json};

/// A user and a group with every kind of attribute, for evaluation and PATCH.
fn samples() -> [(Value, &'static crate::schema::ResourceType); 2] {
    [
        (
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "id": "2819c223", "externalId": "jyoung", "userName": "Ana@Example.com",
                "name": {"givenName": "Ana", "familyName": "Lima", "formatted": "Ana Lima"},
                "active": true, "title": "Lead",
                "emails": [{"value": "ana@example.com", "type": "work", "primary": true},
                           {"value": "ana@home.example", "type": "home"}],
                "phoneNumbers": [{"value": "+1 555", "type": "mobile"}],
                "meta": {"resourceType": "User", "created": "2024-01-02T03:04:05Z",
                         "lastModified": "2024-02-02T03:04:05.5+01:00", "version": "W/\"3\""},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                    {"department": "Legal", "employeeNumber": "42",
                     "manager": {"value": "26118915", "displayName": "Bo"}}
            }),
            &USER,
        ),
        (
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "id": "e9e30dba", "displayName": "Sales",
                "members": [{"value": "2819c223", "display": "Ana", "type": "User"},
                            {"value": "902c246b", "type": "Group"}]
            }),
            &GROUP,
        ),
    ]
}

/// The filter parser never panics; an error is 400 `invalidFilter`; a parsed filter prints as
/// text that parses back to the same filter; validating and evaluating it never panics.
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match filter::parse(text) {
        Ok(f) => f,
        Err(e) => {
            assert_eq!(e.status, 400, "{e}");
            assert_eq!(e.scim_type, Some(crate::ScimType::InvalidFilter), "{e}");
            return;
        }
    };
    let printed = parsed.to_string();
    let reparsed: Filter = filter::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(parsed, reparsed, "{text:?} printed as {printed:?}");
    for (resource, rt) in samples() {
        let _ = filter::validate(&parsed, rt);
        let _ = filter::matches(&parsed, &resource, rt);
    }
}

/// The PATCH path parser never panics; an error is 400 `invalidPath`; a parsed path prints as
/// text that parses back to the same path.
pub fn patch_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match PatchPath::parse(text) {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(e.status, 400, "{e}");
            assert_eq!(e.scim_type, Some(crate::ScimType::InvalidPath), "{e}");
            return;
        }
    };
    let printed = parsed.to_string();
    let reparsed = PatchPath::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(parsed, reparsed, "{text:?} printed as {printed:?}");
}

/// A whole PATCH request body, parsed and applied to a user and a group: never panics, every
/// refusal is a 4xx SCIM error, a refused PATCH leaves the resource untouched, and the result
/// is still a JSON object.
pub fn patch_request(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let ops = match patch::parse_request(&body) {
        Ok(ops) => ops,
        Err(e) => {
            assert!((400..500).contains(&e.status), "{e}");
            return;
        }
    };
    for (resource, rt) in samples() {
        let mut patched = resource.clone();
        match patch::apply(&mut patched, &ops, rt) {
            Ok(changed) => {
                assert!(patched.is_object());
                assert_eq!(changed, patched != resource);
            }
            Err(e) => {
                assert!((400..500).contains(&e.status), "{e}");
                assert_eq!(patched, resource, "a refused PATCH changed the resource");
            }
        }
    }
}
