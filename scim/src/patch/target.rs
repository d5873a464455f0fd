//! Resolving PATCH attribute paths to locations in a resource, case-insensitive JSON member
//! access, and the bookkeeping of extension objects and the `schemas` array.

use crate::error::ScimError;
use crate::filter::AttrPath;
use crate::schema::{AttrDef, AttrType, ResourceType};
use serde_json::{Map, Value};

pub(super) type Object = Map<String, Value>;

/// The object holding an attribute: the resource itself or an extension object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Container {
    Root,
    /// The extension URN (canonical spelling when the schema is known).
    Extension(String),
}

/// A resolved attribute: where it lives, the key to create it under, and its definition
/// (`None` for attributes of unknown, custom extensions).
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub container: Container,
    pub name: String,
    pub def: Option<&'static AttrDef>,
    /// The path as written, for error messages.
    pub label: String,
}

/// What a path designates.
#[derive(Debug, Clone)]
pub(super) enum Resolution {
    Attribute(Target),
    /// A whole extension object, e.g. the path `urn:...:enterprise:2.0:User`.
    Extension(String),
}

/// A sub-attribute of a target: its key name and definition (when known).
#[derive(Debug, Clone, Copy)]
pub(super) struct Sub<'a> {
    pub name: &'a str,
    pub def: Option<&'static AttrDef>,
}

/// The key of `obj` equal to `name` ignoring ASCII case (an exact match is preferred).
pub(super) fn find_key(obj: &Object, name: &str) -> Option<String> {
    if obj.contains_key(name) {
        return Some(name.to_string());
    }
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// The member of `obj` named `name`, case-insensitively.
pub(super) fn get<'o>(obj: &'o Object, name: &str) -> Option<&'o Value> {
    find_key(obj, name).and_then(|k| obj.get(&k))
}

/// The member of `value` (when it is an object) named `name`, case-insensitively.
pub(super) fn get_in<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    value.as_object().and_then(|o| get(o, name))
}

/// Sets `name` in `obj`, keeping the spelling of an existing key.
pub(super) fn put(obj: &mut Object, name: &str, value: Value) {
    let key = find_key(obj, name).unwrap_or_else(|| name.to_string());
    obj.insert(key, value);
}

/// Removes `name` from `obj` (case-insensitively), returning the old value.
pub(super) fn take(obj: &mut Object, name: &str) -> Option<Value> {
    let key = find_key(obj, name)?;
    obj.remove(&key)
}

/// True for a URN that names a schema this server reserves for something else: another
/// resource type's core schema, or an API message schema.
fn is_foreign_reserved(rt: &ResourceType, urn: &str) -> bool {
    let lower = urn.to_ascii_lowercase();
    let core = lower.starts_with("urn:ietf:params:scim:schemas:core:") && !rt.is_core(urn);
    core || lower.starts_with("urn:ietf:params:scim:api:")
}

/// The canonical spelling of an extension URN: the schema's id when known, else an existing
/// key's spelling, else `urn` as given.
fn extension_name(rt: &ResourceType, root: &Object, urn: &str) -> String {
    rt.extension(urn)
        .map(|s| s.id.to_string())
        .or_else(|| find_key(root, urn))
        .unwrap_or_else(|| urn.to_string())
}

/// True when `urn` names an extension object of this resource: a declared extension, a URN
/// listed in `schemas`, or an existing object-valued URN key.
pub(super) fn is_extension(rt: &ResourceType, root: &Object, urn: &str) -> bool {
    if !urn.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) || rt.is_core(urn) {
        return false;
    }
    rt.extension(urn).is_some()
        || schemas_list(root)
            .iter()
            .any(|s| s.eq_ignore_ascii_case(urn))
        || get(root, urn).is_some_and(Value::is_object)
}

/// Resolves an attribute path (its `sub` is ignored; see [`sub_of`]).
///
/// Unknown attributes of the core schema or of a declared extension are 400 `invalidPath`;
/// attributes under other URNs resolve without a definition. `schemas` is 400 `mutability`.
pub(super) fn resolve(
    rt: &ResourceType,
    root: &Object,
    path: &AttrPath,
) -> Result<Resolution, ScimError> {
    let label = path.to_string();
    let Some(uri) = path.uri.as_deref() else {
        if path.attr.eq_ignore_ascii_case("schemas") {
            return Err(ScimError::mutability(
                "'schemas' cannot be modified with PATCH; the server maintains it",
            ));
        }
        let r = rt
            .resolve(None, &path.attr, None)
            .ok_or_else(|| ScimError::invalid_path(format!("unknown attribute '{label}'")))?;
        return Ok(Resolution::Attribute(known_target(
            rt, r.schema, r.attr, label,
        )));
    };
    let whole = format!("{uri}:{}", path.attr);
    if path.sub.is_none() && is_extension(rt, root, &whole) {
        return Ok(Resolution::Extension(extension_name(rt, root, &whole)));
    }
    if let Some(schema) = rt.schema(uri) {
        let r = rt.resolve(Some(uri), &path.attr, None).ok_or_else(|| {
            ScimError::invalid_path(format!(
                "unknown attribute '{}' in schema '{}'",
                path.attr, schema.id
            ))
        })?;
        return Ok(Resolution::Attribute(known_target(
            rt, r.schema, r.attr, label,
        )));
    }
    if is_foreign_reserved(rt, uri) {
        return Err(ScimError::invalid_path(format!(
            "schema '{uri}' does not apply to {} resources",
            rt.name
        )));
    }
    Ok(Resolution::Attribute(Target {
        container: Container::Extension(extension_name(rt, root, uri)),
        name: path.attr.clone(),
        def: None,
        label,
    }))
}

fn known_target(rt: &ResourceType, schema: &str, def: &'static AttrDef, label: String) -> Target {
    let container = if rt.is_core(schema) {
        Container::Root
    } else {
        Container::Extension(schema.to_string())
    };
    Target {
        container,
        name: def.name.to_string(),
        def: Some(def),
        label,
    }
}

/// Resolves the sub-attribute `name` of `target`: 400 `invalidPath` when the target is known
/// and has no such sub-attribute.
pub(super) fn sub_of<'a>(target: &Target, name: &'a str) -> Result<Sub<'a>, ScimError> {
    let Some(def) = target.def else {
        return Ok(Sub { name, def: None });
    };
    if def.ty != AttrType::Complex {
        return Err(ScimError::invalid_path(format!(
            "'{}' is not a complex attribute and has no sub-attribute '{name}'",
            def.name
        )));
    }
    let sub = def.sub_attr(name).ok_or_else(|| {
        ScimError::invalid_path(format!("'{}' has no sub-attribute '{name}'", def.name))
    })?;
    Ok(Sub {
        name: sub.name,
        def: Some(sub),
    })
}

/// The object holding `container`'s attributes; an absent extension object is created when
/// `create` (else `None`). An extension member that is not an object is 400 `invalidValue`.
pub(super) fn container_mut<'r>(
    root: &'r mut Object,
    container: &Container,
    create: bool,
) -> Result<Option<&'r mut Object>, ScimError> {
    let Container::Extension(urn) = container else {
        return Ok(Some(root));
    };
    let key = match find_key(root, urn) {
        Some(k) => k,
        None if create => {
            root.insert(urn.clone(), Value::Object(Map::new()));
            urn.clone()
        }
        None => return Ok(None),
    };
    match root.get_mut(&key) {
        Some(Value::Object(obj)) => Ok(Some(obj)),
        _ => Err(ScimError::invalid_value(format!(
            "the extension '{urn}' of the resource is not a JSON object"
        ))),
    }
}

/// The URNs in the resource's `schemas` array.
pub(super) fn schemas_list(root: &Object) -> Vec<String> {
    get(root, "schemas")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Brings `schemas` and the extension objects in line for the extensions an operation
/// touched: a non-empty extension object is listed in `schemas`; an empty or absent one is
/// removed together with its `schemas` entry.
pub(super) fn sync_extensions(root: &mut Object, rt: &ResourceType, touched: &[String]) {
    for urn in touched {
        let has_data = get(root, urn).is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty()));
        if has_data {
            list_schema(root, rt, urn);
        } else {
            take(root, urn);
            unlist_schema(root, urn);
        }
    }
}

fn list_schema(root: &mut Object, rt: &ResourceType, urn: &str) {
    let key = find_key(root, "schemas").unwrap_or_else(|| "schemas".to_string());
    let schemas = root
        .entry(key)
        .or_insert_with(|| Value::Array(vec![Value::from(rt.core.id)]));
    if let Value::Array(list) = schemas {
        let listed = list
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)));
        if !listed {
            list.push(Value::from(urn));
        }
    }
}

fn unlist_schema(root: &mut Object, urn: &str) {
    let Some(key) = find_key(root, "schemas") else {
        return;
    };
    if let Some(Value::Array(list)) = root.get_mut(&key) {
        list.retain(|s| !s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)));
    }
}

/// Checks a `schemas` member inside a path-less value: accepted (and ignored) when every URN
/// is valid for the resource (its core schema, a declared extension, or already listed), else
/// 400 `mutability`.
pub(super) fn check_schemas_value(
    root: &Object,
    rt: &ResourceType,
    value: &Value,
) -> Result<(), ScimError> {
    let current = schemas_list(root);
    let urns = value
        .as_array()
        .ok_or_else(|| ScimError::invalid_value("'schemas' must be an array of URNs"))?;
    for urn in urns {
        let urn = urn
            .as_str()
            .ok_or_else(|| ScimError::invalid_value("'schemas' must be an array of URNs"))?;
        let known = rt.schema(urn).is_some() || current.iter().any(|c| c.eq_ignore_ascii_case(urn));
        if !known {
            return Err(ScimError::mutability(format!(
                "'schemas' cannot be modified with PATCH (unexpected '{urn}')"
            )));
        }
    }
    Ok(())
}
