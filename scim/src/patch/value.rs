//! Validation and coercion of PATCH values against attribute definitions, and the value
//! comparisons PATCH needs (element identity, `primary` handling, immutability checks).

use super::target::{Object, find_key, get, get_in, put};
use crate::error::ScimError;
use crate::filter::datetime;
use crate::schema::{AttrDef, AttrType, Mutability};
use serde_json::Value;

/// The elements of a value for the multi-valued attribute `def`: an array's items or a single
/// value, each coerced with [`element`]. `null` gives no elements.
pub(super) fn elements(def: &AttrDef, value: &Value) -> Result<Vec<Value>, ScimError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(|v| element(def, v)).collect(),
        single => Ok(vec![element(def, single)?]),
    }
}

/// One value of the attribute `def` (an element when multi-valued): a complex value becomes an
/// object with canonical sub-attribute names (a bare value is wrapped as `{"value": ...}` when
/// the attribute has a `value` sub-attribute); a simple value is checked with [`scalar`].
/// Null sub-attribute values are kept (they mean "unassign" when merging).
pub(super) fn element(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    if def.ty != AttrType::Complex {
        return scalar(def, value);
    }
    match value {
        Value::Object(obj) => complex(def, obj).map(Value::Object),
        Value::Null => Ok(Value::Null),
        Value::Array(_) => Err(type_error(def, "an object", value)),
        bare => match def.sub_attr("value") {
            Some(sub) => {
                let mut obj = Object::new();
                obj.insert(sub.name.to_string(), scalar(sub, bare)?);
                Ok(Value::Object(obj))
            }
            None => Err(type_error(def, "an object", value)),
        },
    }
}

fn complex(def: &AttrDef, obj: &Object) -> Result<Object, ScimError> {
    let mut out = Object::new();
    for (key, value) in obj {
        let sub = def.sub_attr(key).ok_or_else(|| {
            ScimError::invalid_value(format!("'{}' has no sub-attribute '{key}'", def.name))
        })?;
        out.insert(sub.name.to_string(), scalar(sub, value)?);
    }
    Ok(out)
}

/// Checks a simple value against `def`'s type. `null` passes through. Booleans also accept the
/// strings `"true"`/`"false"` in any case (Entra ID), coerced to JSON booleans.
pub(super) fn scalar(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let ok = match def.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => value.is_string(),
        AttrType::DateTime => value.as_str().is_some_and(|s| datetime::parse(s).is_some()),
        AttrType::Integer => value.is_i64() || value.is_u64(),
        AttrType::Decimal => value.is_number(),
        AttrType::Boolean => return boolean(def, value),
        AttrType::Complex => false,
    };
    if ok {
        Ok(value.clone())
    } else {
        Err(type_error(def, expected_type(def.ty), value))
    }
}

fn boolean(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    match value {
        Value::Bool(_) => Ok(value.clone()),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        _ => Err(type_error(def, "a boolean", value)),
    }
}

fn expected_type(ty: AttrType) -> &'static str {
    match ty {
        AttrType::String => "a string",
        AttrType::Reference => "a reference (string)",
        AttrType::Binary => "base64 binary (string)",
        AttrType::DateTime => "an RFC 3339 dateTime string",
        AttrType::Integer => "an integer",
        AttrType::Decimal => "a number",
        AttrType::Boolean => "a boolean",
        AttrType::Complex => "an object",
    }
}

fn type_error(def: &AttrDef, expected: &str, got: &Value) -> ScimError {
    let mut shown = got.to_string();
    if shown.len() > 60 {
        let cut = (0..=60)
            .rev()
            .find(|&i| shown.is_char_boundary(i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    ScimError::invalid_value(format!("'{}' must be {expected}, got {shown}", def.name))
}

/// Equality of two attribute values; strings ignore case unless `case_exact`.
pub(super) fn values_equal(a: &Value, b: &Value, case_exact: bool) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if !case_exact => {
            x == y || x.to_lowercase() == y.to_lowercase()
        }
        _ => a == b,
    }
}

fn sub_case_exact(def: Option<&AttrDef>, name: &str) -> bool {
    def.and_then(|d| d.sub_attr(name))
        .is_some_and(|s| s.case_exact)
}

/// True when every non-null member of `pattern` is present in `element` with an equal value.
fn contains(def: Option<&AttrDef>, element: &Object, pattern: &Object) -> bool {
    pattern
        .iter()
        .filter(|(_, v)| !v.is_null())
        .all(|(k, v)| get(element, k).is_some_and(|e| values_equal(e, v, sub_case_exact(def, k))))
}

/// Whether `candidate` denotes the same element of the multi-valued attribute `def` as
/// `existing`. Complex elements that both have a `value` are the same when the values are equal
/// and their `type`s (when both have one) are equal; otherwise `existing` must contain every
/// member of `candidate`. A bare candidate matches a complex element by its `value`. Simple
/// elements compare with [`values_equal`].
pub(super) fn same_element(def: Option<&AttrDef>, existing: &Value, candidate: &Value) -> bool {
    let exact = def.is_some_and(|d| d.case_exact);
    match (existing.as_object(), candidate.as_object()) {
        (Some(e), Some(c)) => match (non_null(e, "value"), non_null(c, "value")) {
            (Some(a), Some(b)) => {
                values_equal(a, b, sub_case_exact(def, "value"))
                    && match (non_null(e, "type"), non_null(c, "type")) {
                        (Some(x), Some(y)) => values_equal(x, y, sub_case_exact(def, "type")),
                        _ => true,
                    }
            }
            _ => contains(def, e, c),
        },
        (Some(e), None) => non_null(e, "value")
            .is_some_and(|v| values_equal(v, candidate, sub_case_exact(def, "value"))),
        _ => values_equal(existing, candidate, exact),
    }
}

fn non_null<'o>(obj: &'o Object, name: &str) -> Option<&'o Value> {
    get(obj, name).filter(|v| !v.is_null())
}

/// `base` with the members of `update` merged in; null members of `update` unassign.
pub(super) fn merged(base: &Object, update: &Object) -> Object {
    let mut out = base.clone();
    for (k, v) in update {
        if v.is_null() {
            if let Some(key) = find_key(&out, k) {
                out.remove(&key);
            }
        } else {
            put(&mut out, k, v.clone());
        }
    }
    out
}

/// `obj` without null members.
pub(super) fn without_nulls(obj: Object) -> Object {
    obj.into_iter().filter(|(_, v)| !v.is_null()).collect()
}

/// 400 `mutability` when a complex value's immutable sub-attribute would change: it had a
/// non-null value in `old` and `new` holds a different value or none.
pub(super) fn check_immutable_subs(
    def: Option<&AttrDef>,
    old: &Value,
    new: &Value,
) -> Result<(), ScimError> {
    let Some(def) = def else {
        return Ok(());
    };
    let immutable = def
        .sub_attributes
        .iter()
        .filter(|s| s.mutability == Mutability::Immutable);
    for sub in immutable {
        let Some(before) = get_in(old, sub.name).filter(|v| !v.is_null()) else {
            continue;
        };
        if get_in(new, sub.name) != Some(before) {
            return Err(ScimError::mutability(format!(
                "'{}.{}' is immutable and cannot be changed once set",
                def.name, sub.name
            )));
        }
    }
    Ok(())
}

/// 400 `mutability` when a simple immutable attribute with a non-null value would change.
pub(super) fn check_immutable(
    def: Option<&AttrDef>,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<(), ScimError> {
    let is_immutable = def.is_some_and(|d| d.mutability == Mutability::Immutable);
    match old {
        Some(before) if is_immutable && !before.is_null() && new != Some(before) => {
            Err(ScimError::mutability(format!(
                "'{}' is immutable and cannot be changed once set",
                def.map_or("attribute", |d| d.name)
            )))
        }
        _ => Ok(()),
    }
}

fn is_primary(element: &Value) -> bool {
    get_in(element, "primary") == Some(&Value::Bool(true))
}

/// Keeps at most one `"primary": true` among `items` after the elements at `touched` were
/// written: if one of them is primary, `primary` is set to false on every other element; if
/// several are, 400 `invalidValue`.
pub(super) fn enforce_single_primary(
    name: &str,
    items: &mut [Value],
    touched: &[usize],
) -> Result<(), ScimError> {
    let mut primaries: Vec<usize> = touched
        .iter()
        .copied()
        .filter(|&i| items.get(i).is_some_and(is_primary))
        .collect();
    primaries.sort_unstable();
    primaries.dedup();
    let keep = match primaries.as_slice() {
        [] => return Ok(()),
        [one] => *one,
        _ => {
            return Err(ScimError::invalid_value(format!(
                "at most one value of '{name}' may be primary"
            )));
        }
    };
    for (i, item) in items.iter_mut().enumerate() {
        if i != keep
            && is_primary(item)
            && let Some(obj) = item.as_object_mut()
        {
            put(obj, "primary", Value::Bool(false));
        }
    }
    Ok(())
}
