//! SCIM representations: what is stored versus what is returned.
//!
//! Stored resources hold what the IdP sent, with attribute names in their canonical case and
//! without the attributes the server owns (`id`, `meta`, `schemas`, a user's `groups`, a group's
//! `members`, which live in their own table) or must never keep (`password`). Rendering adds
//! those back.

use super::ScimError;
use super::http::etag;
use super::schema::{self, ResourceType};
use crate::store::{GroupRow, Member, UserRow};
use serde_json::{Map, Value, json};

/// Attributes the client may send but the server owns or drops.
const SERVER_OWNED: &[&str] = &["id", "meta", "schemas"];

/// A user's group, for its `groups` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub display: String,
    /// `direct` or `indirect`.
    pub kind: &'static str,
}

/// Normalises an incoming user for storage: canonical attribute names, server-owned and
/// write-only attributes removed, types checked.
pub fn user_for_storage(
    mut obj: Map<String, Value>,
    rt: &ResourceType,
) -> Result<Value, ScimError> {
    super::validate::resource(&mut obj, rt)?;
    strip(&mut obj, &["groups", "password"]);
    canonicalize(&mut obj, rt);
    coerce_bool(&mut obj, "active")?;
    require_string(&obj, "userName", true)?;
    for key in [
        "externalId",
        "displayName",
        "nickName",
        "title",
        "userType",
        "locale",
    ] {
        require_string(&obj, key, false)?;
    }
    for key in [
        "emails",
        "phoneNumbers",
        "addresses",
        "entitlements",
        "roles",
    ] {
        if let Some(v) = obj.get(key)
            && !v.is_array()
            && !v.is_null()
        {
            return Err(ScimError::invalid_value(format!("{key} must be an array")));
        }
    }
    Ok(Value::Object(obj))
}

/// A requested member: its id and the client's `display`, if any.
pub type MemberRequest = (String, Option<String>);

/// Normalises an incoming group for storage; returns it and its requested members.
pub fn group_for_storage(
    mut obj: Map<String, Value>,
    rt: &ResourceType,
) -> Result<(Value, Vec<MemberRequest>), ScimError> {
    super::validate::resource(&mut obj, rt)?;
    canonicalize(&mut obj, rt);
    let members = match obj.remove("members") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut members: Vec<MemberRequest> = Vec::with_capacity(items.len());
            for item in items {
                let obj = item.as_object();
                let id = obj
                    .and_then(|o| ci_get(o, "value"))
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        ScimError::invalid_value(
                            "each member must be an object with a string value",
                        )
                    })?;
                let display = obj
                    .and_then(|o| ci_get(o, "display"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if !members.iter().any(|(x, _)| x == id) {
                    members.push((id.to_owned(), display));
                }
            }
            members
        }
        Some(_) => return Err(ScimError::invalid_value("members must be an array")),
    };
    require_string(&obj, "displayName", true)?;
    require_string(&obj, "externalId", false)?;
    Ok((Value::Object(obj), members))
}

/// The representation returned for a user.
pub fn user(u: &UserRow, groups: &[GroupRef], base: &str) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), schemas(&u.resource, &schema::USER));
    out.insert("id".into(), json!(u.id));
    if let Value::Object(m) = &u.resource {
        for (k, v) in m {
            out.insert(k.clone(), v.clone());
        }
    }
    if !groups.is_empty() {
        let gs: Vec<Value> = groups
            .iter()
            .map(|g| {
                json!({
                    "value": g.id,
                    "$ref": format!("{base}/Groups/{}", g.id),
                    "display": g.display,
                    "type": g.kind,
                })
            })
            .collect();
        out.insert("groups".into(), Value::Array(gs));
    }
    out.insert(
        "meta".into(),
        meta(
            "User",
            u.created_ms,
            u.modified_ms,
            u.version,
            &format!("{base}/Users/{}", u.id),
        ),
    );
    Value::Object(out)
}

/// The representation returned for a group.
pub fn group(g: &GroupRow, base: &str) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), schemas(&g.resource, &schema::GROUP));
    out.insert("id".into(), json!(g.id));
    if let Value::Object(m) = &g.resource {
        for (k, v) in m {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("members".into(), members(&g.members, base));
    out.insert(
        "meta".into(),
        meta(
            "Group",
            g.created_ms,
            g.modified_ms,
            g.version,
            &format!("{base}/Groups/{}", g.id),
        ),
    );
    Value::Object(out)
}

/// A group's `members` attribute.
pub fn members(members: &[Member], base: &str) -> Value {
    Value::Array(
        members
            .iter()
            .map(|m| {
                let endpoint = match m.kind {
                    crate::store::MemberKind::User => "Users",
                    crate::store::MemberKind::Group => "Groups",
                };
                let mut v = json!({
                    "value": m.id,
                    "type": m.kind.as_str(),
                    "$ref": format!("{base}/{endpoint}/{}", m.id),
                });
                if let Some(d) = &m.display {
                    v["display"] = json!(d);
                }
                v
            })
            .collect(),
    )
}

fn meta(resource_type: &str, created: u64, modified: u64, version: u64, location: &str) -> Value {
    json!({
        "resourceType": resource_type,
        "created": timestamp(created),
        "lastModified": timestamp(modified),
        "location": location,
        "version": etag(version),
    })
}

/// RFC 3339 UTC with milliseconds.
pub fn timestamp(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_default()
}

/// The core schema plus every extension URN present as a key.
fn schemas(resource: &Value, rt: &ResourceType) -> Value {
    let mut out = vec![json!(rt.core.id)];
    if let Value::Object(m) = resource {
        for k in m.keys() {
            if k.to_ascii_lowercase().starts_with("urn:") {
                out.push(json!(k));
            }
        }
    }
    Value::Array(out)
}

/// Removes server-owned attributes and `extra`, matching names case-insensitively.
fn strip(obj: &mut Map<String, Value>, extra: &[&str]) {
    obj.retain(|k, _| {
        !SERVER_OWNED
            .iter()
            .chain(extra)
            .any(|s| k.eq_ignore_ascii_case(s))
    });
}

/// Renames known attributes and extension URNs to their canonical spelling.
fn canonicalize(obj: &mut Map<String, Value>, rt: &ResourceType) {
    strip(obj, &[]);
    let keys: Vec<String> = obj.keys().cloned().collect();
    for key in keys {
        let canonical = if key.to_ascii_lowercase().starts_with("urn:") {
            rt.schema_urns()
                .into_iter()
                .find(|u| u.eq_ignore_ascii_case(&key))
                .map(str::to_owned)
        } else {
            rt.resolve(None, &key, None).map(|r| r.attr.name.to_owned())
        };
        if let Some(c) = canonical
            && c != key
            && let Some(v) = obj.remove(&key)
        {
            obj.insert(c, v);
        }
    }
}

fn ci_get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn coerce_bool(obj: &mut Map<String, Value>, key: &str) -> Result<(), ScimError> {
    let Some(v) = obj.get_mut(key) else {
        return Ok(());
    };
    match v {
        Value::Bool(_) => Ok(()),
        Value::String(s) if s.eq_ignore_ascii_case("true") => {
            *v = Value::Bool(true);
            Ok(())
        }
        Value::String(s) if s.eq_ignore_ascii_case("false") => {
            *v = Value::Bool(false);
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!("{key} must be a boolean"))),
    }
}

fn require_string(obj: &Map<String, Value>, key: &str, required: bool) -> Result<(), ScimError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() || !required => Ok(()),
        Some(Value::Null) | None if !required => Ok(()),
        Some(Value::String(_)) | Some(Value::Null) | None => {
            Err(ScimError::invalid_value(format!("{key} is required")))
        }
        Some(_) => Err(ScimError::invalid_value(format!("{key} must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_for_storage_t(m: Map<String, Value>) -> Result<Value, ScimError> {
        user_for_storage(m, &schema::USER)
    }

    fn group_for_storage_t(
        m: Map<String, Value>,
    ) -> Result<(Value, Vec<MemberRequest>), ScimError> {
        group_for_storage(m, &schema::GROUP)
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object"),
        }
    }

    #[test]
    fn users_are_normalised_for_storage() {
        let stored = user_for_storage_t(obj(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "client-chosen",
            "UserName": "ana@x.com",
            "ACTIVE": "False",
            "password": "hunter2",
            "groups": [{"value": "g"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"department": "Legal"}
        })))
        .expect("valid");
        assert_eq!(
            stored,
            json!({
                "userName": "ana@x.com",
                "active": false,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Legal"}
            })
        );
    }

    #[test]
    fn bad_users_are_refused_with_invalid_value() {
        for bad in [
            json!({"active": true}),
            json!({"userName": ""}),
            json!({"userName": 7}),
            json!({"userName": "a", "active": "maybe"}),
            json!({"userName": "a", "emails": "a@x"}),
        ] {
            let e = user_for_storage_t(obj(bad.clone())).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert_eq!(
                e.scim_type,
                Some(super::super::ScimType::InvalidValue),
                "{bad}"
            );
        }
    }

    #[test]
    fn group_members_are_extracted_and_deduplicated() {
        let (g, m) = group_for_storage_t(obj(json!({
            "displayName": "Sales",
            "members": [{"value": "u1"}, {"value": "u2", "display": "x"}, {"value": "u1"}]
        })))
        .expect("valid");
        assert_eq!(g, json!({"displayName": "Sales"}));
        assert_eq!(
            m,
            [
                ("u1".to_owned(), None),
                ("u2".to_owned(), Some("x".to_owned()))
            ]
        );
        assert!(
            group_for_storage_t(obj(json!({"displayName": "S", "members": [{"v": 1}]}))).is_err()
        );
        assert!(group_for_storage_t(obj(json!({"members": []}))).is_err());
    }

    #[test]
    fn rendering_adds_server_owned_attributes() {
        let u = UserRow {
            id: "u1".into(),
            source: "okta".into(),
            resource: json!({"userName": "ana"}),
            created_ms: 0,
            modified_ms: 1_700_000_000_123,
            version: 3,
            active: true,
        };
        let v = user(
            &u,
            &[GroupRef {
                id: "g1".into(),
                display: "Sales".into(),
                kind: "direct",
            }],
            "http://h/scim/v2/okta",
        );
        assert_eq!(v["id"], "u1");
        assert_eq!(v["meta"]["version"], "W/\"3\"");
        assert_eq!(v["meta"]["lastModified"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["meta"]["location"], "http://h/scim/v2/okta/Users/u1");
        assert_eq!(v["groups"][0]["$ref"], "http://h/scim/v2/okta/Groups/g1");
    }
}
