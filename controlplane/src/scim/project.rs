//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which attributes a
//! response carries.
//!
//! With `attributes`, only the listed attributes (whole, or one sub-attribute each, e.g.
//! `name.givenName`, `emails.value`, `urn:…:enterprise:2.0:User:department`) are returned, plus
//! those whose `returned` is `always` (`id`) and `schemas`. With `excludedAttributes`, the
//! listed ones are removed, except `always` ones. Attribute names match case-insensitively.

use super::ScimError;
use super::filter::{self, AttrPath};
use super::schema::ResourceType;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What a response should carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    include: Vec<AttrPath>,
    exclude: Vec<AttrPath>,
}

impl Projection {
    /// From the comma-separated `attributes` and `excludedAttributes` values.
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        Ok(Self {
            include: paths(attributes)?,
            exclude: paths(excluded)?,
        })
    }

    /// From a request's query string (parameter names matched case-insensitively).
    pub fn from_query(query: &HashMap<String, String>) -> Result<Self, ScimError> {
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        Self::parse(get("attributes"), get("excludedAttributes"))
    }

    /// From a `SearchRequest`'s `attributes` / `excludedAttributes` arrays.
    pub fn from_lists(attributes: &[String], excluded: &[String]) -> Result<Self, ScimError> {
        let parse = |list: &[String]| {
            list.iter()
                .map(|p| filter::parse_attr_path(p.trim()))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            include: parse(attributes)?,
            exclude: parse(excluded)?,
        })
    }

    /// Whether any attribute of `rt` that `path` names is asked for (for skipping work such as
    /// rendering large `members` lists nobody wants).
    pub fn wants(&self, attr: &str) -> bool {
        let named = |p: &AttrPath| p.attr.eq_ignore_ascii_case(attr);
        if !self.include.is_empty() {
            return self.include.iter().any(named);
        }
        !self.exclude.iter().any(|p| named(p) && p.sub.is_none())
    }

    /// Applies the projection to a full representation.
    pub fn apply(&self, resource: Value, rt: &ResourceType) -> Value {
        let Value::Object(full) = resource else {
            return resource;
        };
        let mut out = if self.include.is_empty() {
            full.clone()
        } else {
            let mut out = Map::new();
            for always in ["schemas", "id"] {
                if let Some(v) = full.get(always) {
                    out.insert(always.into(), v.clone());
                }
            }
            for p in &self.include {
                include(&full, &mut out, p, rt);
            }
            out
        };
        for p in &self.exclude {
            exclude(&mut out, p, rt);
        }
        Value::Object(out)
    }
}

fn paths(list: Option<&str>) -> Result<Vec<AttrPath>, ScimError> {
    list.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(filter::parse_attr_path)
        .collect()
}

/// The key of the extension object an attribute lives in (`None`: top level), and the
/// attribute name.
fn locate<'a>(p: &'a AttrPath, rt: &ResourceType) -> (Option<&'static str>, &'a str) {
    match &p.uri {
        Some(uri) if !rt.is_core(uri) => (rt.schema(uri).map(|s| s.id), &p.attr),
        Some(_) => (None, &p.attr),
        None => match rt.resolve(None, &p.attr, None) {
            Some(r) if !rt.is_core(r.schema) => (Some(r.schema), &p.attr),
            _ => (None, &p.attr),
        },
    }
}

fn key_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name))
}

fn include(
    full: &Map<String, Value>,
    out: &mut Map<String, Value>,
    p: &AttrPath,
    rt: &ResourceType,
) {
    let (ext, attr) = locate(p, rt);
    let source = match ext {
        Some(urn) => match key_ci(full, urn).and_then(|k| full.get(k)) {
            Some(Value::Object(o)) => o,
            _ => return,
        },
        None => full,
    };
    let Some(key) = key_ci(source, attr) else {
        return;
    };
    let Some(value) = source.get(key) else {
        return;
    };
    let picked = match &p.sub {
        None => value.clone(),
        Some(sub) => match value {
            Value::Object(o) => match key_ci(o, sub) {
                Some(k) => Value::Object(Map::from_iter([(k.clone(), o[k].clone())])),
                None => return,
            },
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| match item {
                        Value::Object(o) => Value::Object(
                            key_ci(o, sub)
                                .map(|k| (k.clone(), o[k].clone()))
                                .into_iter()
                                .collect(),
                        ),
                        other => other.clone(),
                    })
                    .collect(),
            ),
            _ => return,
        },
    };
    let target = match ext {
        Some(urn) => {
            let k = key_ci(full, urn).cloned().unwrap_or_else(|| urn.to_owned());
            match out.entry(k).or_insert_with(|| Value::Object(Map::new())) {
                Value::Object(o) => o,
                _ => return,
            }
        }
        None => out,
    };
    merge(target, key.clone(), picked);
}

/// Inserts `value` at `key`, merging with what an earlier path put there (`name.givenName`
/// and `name.familyName`; `emails.value` and `emails.type`).
fn merge(target: &mut Map<String, Value>, key: String, value: Value) {
    match (target.get_mut(&key), value) {
        (Some(Value::Object(have)), Value::Object(more)) => have.extend(more),
        (Some(Value::Array(have)), Value::Array(more)) if have.len() == more.len() => {
            for (h, m) in have.iter_mut().zip(more) {
                if let (Value::Object(h), Value::Object(m)) = (h, m) {
                    h.extend(m);
                }
            }
        }
        (_, value) => {
            target.insert(key, value);
        }
    }
}

fn exclude(out: &mut Map<String, Value>, p: &AttrPath, rt: &ResourceType) {
    let (ext, attr) = locate(p, rt);
    if ext.is_none()
        && p.sub.is_none()
        && ["id", "schemas"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attr))
    {
        return;
    }
    let container = match ext {
        Some(urn) => match key_ci(out, urn).cloned() {
            Some(k) => match out.get_mut(&k) {
                Some(Value::Object(o)) => o,
                _ => return,
            },
            None => return,
        },
        None => out,
    };
    let Some(key) = key_ci(container, attr).cloned() else {
        return;
    };
    match &p.sub {
        None => {
            container.remove(&key);
        }
        Some(sub) => match container.get_mut(&key) {
            Some(Value::Object(o)) => {
                if let Some(k) = key_ci(o, sub).cloned() {
                    o.remove(&k);
                }
            }
            Some(Value::Array(items)) => {
                for item in items {
                    if let Value::Object(o) = item
                        && let Some(k) = key_ci(o, sub).cloned()
                    {
                        o.remove(&k);
                    }
                }
            }
            _ => {}
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::USER;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "u1",
            "userName": "ana",
            "name": {"givenName": "Ana", "familyName": "Lima"},
            "emails": [{"value": "a@x", "type": "work"}, {"value": "b@x", "type": "home"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Legal", "costCenter": "42"},
            "meta": {"resourceType": "User"}
        })
    }

    fn project(a: Option<&str>, e: Option<&str>) -> Value {
        Projection::parse(a, e).expect("valid").apply(user(), &USER)
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_id_and_schemas() {
        let v = project(
            Some("userName,name.givenName,emails.value,department"),
            None,
        );
        assert_eq!(
            v,
            json!({
                "schemas": user()["schemas"],
                "id": "u1",
                "userName": "ana",
                "name": {"givenName": "Ana"},
                "emails": [{"value": "a@x"}, {"value": "b@x"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Legal"}
            })
        );
        let v = project(
            Some("USERNAME,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"),
            None,
        );
        assert_eq!(v["userName"], "ana");
        assert_eq!(
            v["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"costCenter": "42"})
        );
    }

    #[test]
    fn excluded_attributes_never_remove_id_or_schemas() {
        let v = project(None, Some("emails,id,schemas,name.familyName,department"));
        assert!(v.get("emails").is_none());
        assert_eq!(v["id"], "u1");
        assert!(v.get("schemas").is_some());
        assert_eq!(v["name"], json!({"givenName": "Ana"}));
        assert_eq!(
            v["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"costCenter": "42"})
        );
        assert!(v.get("meta").is_some());
    }

    #[test]
    fn wants_reports_whether_an_attribute_is_needed() {
        let p = Projection::parse(None, Some("members")).expect("valid");
        assert!(!p.wants("members"));
        assert!(p.wants("displayName"));
        let p = Projection::parse(Some("displayName"), None).expect("valid");
        assert!(!p.wants("members"));
        assert!(Projection::default().wants("members"));
    }

    #[test]
    fn invalid_paths_are_refused() {
        assert!(Projection::parse(Some("bad path"), None).is_err());
    }
}
