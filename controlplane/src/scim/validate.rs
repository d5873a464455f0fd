//! Input validation against a source's schemas (RFC 7643 §2): attribute types,
//! multi-valuedness, sub-attributes, and the `schemas` list. Runs on every POST, PUT and PATCH
//! result, so what is stored (and reaches snapshots as principal attributes) has the declared
//! types.
//!
//! Lenient where real IdPs need it: booleans sent as `"True"`/`"False"` are coerced, `null`
//! means unassigned (the attribute is dropped), attributes the schemas do not know are kept as
//! sent.

use super::ScimError;
use super::filter::datetime;
use super::schema::{AttrDef, AttrType, ResourceType};
use serde_json::{Map, Value};

/// Validates (and normalises) a resource's attributes in place.
pub fn resource(obj: &mut Map<String, Value>, rt: &ResourceType) -> Result<(), ScimError> {
    check_schemas(obj, rt)?;
    let keys: Vec<String> = obj.keys().cloned().collect();
    for key in keys {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if key.to_ascii_lowercase().starts_with("urn:") {
            let Some(ext) = rt.extension(&key) else {
                continue;
            };
            let Some(Value::Object(inner)) = obj.get_mut(&key) else {
                if obj.get(&key).is_some_and(Value::is_null) {
                    obj.remove(&key);
                    continue;
                }
                return Err(ScimError::invalid_value(format!("{key} must be an object")));
            };
            let inner_keys: Vec<String> = inner.keys().cloned().collect();
            for k in inner_keys {
                if let Some(def) = ext.attr(&k) {
                    value(inner, &k, def, &format!("{}:{k}", ext.id))?;
                }
            }
            for def in ext.attributes.iter().filter(|d| d.required) {
                if !inner.keys().any(|k| k.eq_ignore_ascii_case(def.name)) {
                    return Err(ScimError::invalid_value(format!(
                        "{}:{} is required",
                        ext.id, def.name
                    )));
                }
            }
            if inner.is_empty() {
                obj.remove(&key);
            }
            continue;
        }
        if let Some(r) = rt.resolve(None, &key, None)
            && rt.is_core(r.schema)
        {
            value(obj, &key, r.attr, &key)?;
        } else if obj.get(&key).is_some_and(Value::is_null) {
            // An unknown attribute sent as null (Entra ID's create sends enterprise attributes
            // at the top level as `null`) is unassigned, like a known one.
            obj.remove(&key);
        }
    }
    Ok(())
}

/// `schemas`, when sent, must be a list of URNs; a core schema of another SCIM version is
/// `invalidVers`.
fn check_schemas(obj: &Map<String, Value>, rt: &ResourceType) -> Result<(), ScimError> {
    let Some(schemas) = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v)
    else {
        return Ok(());
    };
    let list = schemas
        .as_array()
        .ok_or_else(|| ScimError::invalid_syntax("schemas must be an array of URNs"))?;
    for urn in list {
        let urn = urn
            .as_str()
            .ok_or_else(|| ScimError::invalid_syntax("schemas must be an array of URNs"))?;
        if rt.schema(urn).is_some() {
            continue;
        }
        let lower = urn.to_ascii_lowercase();
        if lower.starts_with("urn:ietf:params:scim:schemas:core:") && !lower.contains(":2.0:") {
            return Err(ScimError::bad_request(
                super::ScimType::InvalidVers,
                format!("{urn}: only SCIM 2.0 schemas are supported"),
            ));
        }
        if lower.starts_with("urn:ietf:params:scim:schemas:core:2.0:") {
            return Err(ScimError::invalid_value(format!(
                "{urn} is not a schema of {}",
                rt.name
            )));
        }
    }
    Ok(())
}

/// Checks (and coerces) `obj[key]` against `def`. `null` removes the attribute.
fn value(
    obj: &mut Map<String, Value>,
    key: &str,
    def: &AttrDef,
    label: &str,
) -> Result<(), ScimError> {
    let Some(v) = obj.get_mut(key) else {
        return Ok(());
    };
    if v.is_null() {
        obj.remove(key);
        return Ok(());
    }
    if def.multi_valued {
        // OneLogin's templates send a single email as an object rather than a one-element
        // array: a lone value of the right shape stands for a list of one.
        let lone = match v {
            Value::Object(_) => def.ty == AttrType::Complex,
            Value::Array(_) => false,
            _ => def.ty != AttrType::Complex,
        };
        if lone {
            *v = Value::Array(vec![v.take()]);
        }
        let Value::Array(items) = v else {
            return Err(ScimError::invalid_value(format!(
                "{label} must be an array"
            )));
        };
        for item in items.iter_mut() {
            single(item, def, label)?;
        }
        return Ok(());
    }
    if v.is_array() {
        return Err(ScimError::invalid_value(format!(
            "{label} is single-valued"
        )));
    }
    single(v, def, label)
}

fn single(v: &mut Value, def: &AttrDef, label: &str) -> Result<(), ScimError> {
    let bad = |what: &str| ScimError::invalid_value(format!("{label} must be {what}"));
    match def.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            if !v.is_string() {
                return Err(bad("a string"));
            }
        }
        AttrType::Boolean => match v {
            Value::Bool(_) => {}
            Value::String(s) if s.eq_ignore_ascii_case("true") => *v = Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => *v = Value::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        AttrType::Integer => {
            if !(v.is_i64() || v.is_u64()) {
                return Err(bad("an integer"));
            }
        }
        AttrType::Decimal => {
            if !v.is_number() {
                return Err(bad("a number"));
            }
        }
        AttrType::DateTime => {
            if v.as_str().is_none_or(|s| datetime::parse(s).is_none()) {
                return Err(bad("an RFC 3339 date-time"));
            }
        }
        AttrType::Complex => {
            // Entra ID sends `manager` as a bare id: a string stands for `{"value": …}`.
            if let Value::String(s) = v
                && def.sub_attr("value").is_some()
            {
                *v = serde_json::json!({ "value": s });
            }
            let Value::Object(o) = v else {
                return Err(bad("an object"));
            };
            let keys: Vec<String> = o.keys().cloned().collect();
            for k in keys {
                if let Some(sub) = def.sub_attr(&k) {
                    value(o, &k, sub, &format!("{label}.{k}"))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::USER;
    use serde_json::json;

    fn check(v: Value) -> Result<Value, ScimError> {
        let Value::Object(mut m) = v else {
            panic!("object")
        };
        resource(&mut m, &USER).map(|()| Value::Object(m))
    }

    #[test]
    fn types_are_enforced_and_coerced() {
        let v = check(json!({"userName": "a", "active": "False", "emails": [{"value": "a@x", "primary": "true"}], "title": null}))
            .expect("valid");
        assert_eq!(
            v,
            json!({"userName": "a", "active": false, "emails": [{"value": "a@x", "primary": true}]})
        );
        // A lone value of a multi-valued attribute is a list of one; unknown nulls are dropped.
        let v =
            check(json!({"userName": "a", "emails": {"value": "a@x"}, "manager": null, "x": 1}))
                .expect("valid");
        assert_eq!(
            v,
            json!({"userName": "a", "emails": [{"value": "a@x"}], "x": 1})
        );
        for bad in [
            json!({"userName": "a", "emails": "a@x"}),
            json!({"userName": "a", "name": "Ana"}),
            json!({"userName": "a", "displayName": 3}),
            json!({"userName": "a", "active": "yes"}),
            json!({"userName": "a", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": 7}}),
        ] {
            let e = check(bad.clone()).unwrap_err();
            assert_eq!(
                e.scim_type,
                Some(crate::scim::ScimType::InvalidValue),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bare_manager_id_is_a_reference() {
        let v = check(json!({"userName": "a", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": "u9"}}))
            .expect("valid");
        assert_eq!(
            v["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"],
            json!({"value": "u9"})
        );
    }

    #[test]
    fn schema_versions_are_checked() {
        let e = check(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:1.0:User"], "userName": "a"}),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidVers));
        let e = check(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "a"}),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidValue));
        assert!(check(json!({"schemas": ["urn:acme:custom"], "userName": "a"})).is_ok());
        assert!(check(json!({"schemas": "x", "userName": "a"})).is_err());
    }
}
