//! Filter evaluation against JSON resources; the semantics are documented on
//! [`super::matches`].

use super::{AttrPath, CompValue, CompareOp, Filter, datetime};
use crate::schema::{AttrDef, AttrType, ResourceType};
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

/// Where paths are evaluated: at the resource root, or inside an element of the multi-valued
/// attribute `parent` (paths relative to the element).
#[derive(Clone, Copy)]
struct Scope<'a> {
    rt: &'a ResourceType,
    parent: Option<&'a AttrPath>,
}

pub(super) fn matches_resource(filter: &Filter, resource: &Value, rt: &ResourceType) -> bool {
    eval(filter, Scope { rt, parent: None }, resource)
}

pub(super) fn matches_element(
    filter: &Filter,
    element: &Value,
    rt: &ResourceType,
    parent: &AttrPath,
) -> bool {
    let scope = Scope {
        rt,
        parent: Some(parent),
    };
    eval(filter, scope, element)
}

fn eval(filter: &Filter, scope: Scope<'_>, node: &Value) -> bool {
    match filter {
        Filter::And(l, r) => eval(l, scope, node) && eval(r, scope, node),
        Filter::Or(l, r) => eval(l, scope, node) || eval(r, scope, node),
        Filter::Not(inner) => !eval(inner, scope, node),
        Filter::Present(path) => attribute_values(path, scope, node)
            .into_iter()
            .any(is_present),
        Filter::Compare(path, op, value) => eval_compare(path, *op, value, scope, node),
        Filter::ValuePath(path, inner) => eval_value_path(path, inner, scope, node),
    }
}

/// The definition of `path` in `scope`, if the schema knows it (the sub-attribute's definition
/// when the path has one). Inside a value filter the path names a sub-attribute of `parent`.
pub(super) fn resolve_def(
    path: &AttrPath,
    rt: &ResourceType,
    parent: Option<&AttrPath>,
) -> Option<&'static AttrDef> {
    match parent {
        None => rt
            .resolve(path.uri.as_deref(), &path.attr, path.sub.as_deref())
            .map(|r| r.sub.unwrap_or(r.attr)),
        Some(_) if path.sub.is_some() => None,
        Some(p) => rt
            .resolve(p.uri.as_deref(), &p.attr, Some(&path.attr))
            .and_then(|r| r.sub),
    }
}

/// A JSON object member by key, matched case-insensitively (exact match preferred).
fn get_ci<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    let obj = value.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The value of the attribute `path.attr` (not its sub-attribute) in `node`.
fn attribute<'v>(path: &AttrPath, scope: Scope<'_>, node: &'v Value) -> Option<&'v Value> {
    if scope.parent.is_some() {
        return get_ci(node, &path.attr);
    }
    match &path.uri {
        Some(uri) if scope.rt.is_core(uri) => get_ci(node, &path.attr),
        Some(uri) => get_ci(node, uri).and_then(|ext| get_ci(ext, &path.attr)),
        None => get_ci(node, &path.attr).or_else(|| {
            scope
                .rt
                .extensions
                .iter()
                .find_map(|ext| get_ci(node, ext.id).and_then(|e| get_ci(e, &path.attr)))
        }),
    }
}

/// The raw values `path` denotes: the attribute itself, or its sub-attribute in the attribute's
/// object or in each element of its array.
fn attribute_values<'v>(path: &AttrPath, scope: Scope<'_>, node: &'v Value) -> Vec<&'v Value> {
    let Some(value) = attribute(path, scope, node) else {
        return Vec::new();
    };
    match (&path.sub, value) {
        (None, v) => vec![v],
        (Some(sub), Value::Array(items)) => items.iter().filter_map(|e| get_ci(e, sub)).collect(),
        (Some(sub), v) => get_ci(v, sub).into_iter().collect(),
    }
}

/// `pr`: present and not null, `""`, `[]` or `{}`.
fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// The scalar values a comparison looks at: arrays are flattened and complex values stand for
/// their `value` sub-attribute.
fn comparands(raw: Vec<&Value>) -> Vec<&Value> {
    raw.into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        })
        .filter_map(|v| {
            if v.is_object() {
                get_ci(v, "value")
            } else {
                Some(v)
            }
        })
        .collect()
}

/// How strings of the compared attribute are compared.
#[derive(Clone, Copy)]
struct StringRules {
    case_exact: bool,
    date_time: bool,
}

fn string_rules(path: &AttrPath, scope: Scope<'_>) -> StringRules {
    let def = resolve_def(path, scope.rt, scope.parent).and_then(|d| {
        if d.ty == AttrType::Complex {
            d.sub_attr("value")
        } else {
            Some(d)
        }
    });
    StringRules {
        case_exact: def.is_some_and(|d| d.case_exact),
        date_time: def.is_some_and(|d| d.ty == AttrType::DateTime),
    }
}

fn eval_compare(
    path: &AttrPath,
    op: CompareOp,
    value: &CompValue,
    scope: Scope<'_>,
    node: &Value,
) -> bool {
    let values = comparands(attribute_values(path, scope, node));
    let rules = string_rules(path, scope);
    match (op, value) {
        (CompareOp::Eq, CompValue::Null) => values.iter().all(|v| v.is_null()),
        (CompareOp::Ne, CompValue::Null) => values.iter().any(|v| !v.is_null()),
        (_, CompValue::Null) => false,
        (CompareOp::Ne, _) => !values
            .iter()
            .any(|v| compare_one(CompareOp::Eq, v, value, rules)),
        _ => values.iter().any(|v| compare_one(op, v, value, rules)),
    }
}

fn compare_one(op: CompareOp, actual: &Value, expected: &CompValue, rules: StringRules) -> bool {
    match (actual, expected) {
        (Value::String(a), CompValue::String(b)) => compare_strings(op, a, b, rules),
        (Value::Number(a), CompValue::Number(b)) => ordering_satisfies(op, compare_numbers(a, b)),
        (Value::Bool(a), CompValue::Bool(b)) => bool_compare(op, *a, *b),
        // Entra ID quotes booleans in filters (`roles[primary eq "True"]`).
        (Value::Bool(a), CompValue::String(b)) => match b.to_ascii_lowercase().as_str() {
            "true" => bool_compare(op, *a, true),
            "false" => bool_compare(op, *a, false),
            _ => false,
        },
        _ => false,
    }
}

fn bool_compare(op: CompareOp, a: bool, b: bool) -> bool {
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        _ => false,
    }
}

/// Whether `actual <op> expected` holds given their ordering (`None`: incomparable).
fn ordering_satisfies(op: CompareOp, ord: Option<Ordering>) -> bool {
    let Some(ord) = ord else {
        return op == CompareOp::Ne;
    };
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn compare_strings(op: CompareOp, actual: &str, expected: &str, rules: StringRules) -> bool {
    if rules.date_time
        && !op.is_substring()
        && let (Some(a), Some(b)) = (datetime::parse(actual), datetime::parse(expected))
    {
        return ordering_satisfies(op, Some(a.cmp(&b)));
    }
    let (a, b) = if rules.case_exact {
        (Cow::Borrowed(actual), Cow::Borrowed(expected))
    } else {
        (
            Cow::Owned(actual.to_lowercase()),
            Cow::Owned(expected.to_lowercase()),
        )
    };
    match op {
        CompareOp::Co => a.contains(b.as_ref()),
        CompareOp::Sw => a.starts_with(b.as_ref()),
        CompareOp::Ew => a.ends_with(b.as_ref()),
        _ => ordering_satisfies(op, Some(a.cmp(&b))),
    }
}

/// `attr[filter]`: true if any element of the attribute (or the attribute's single complex
/// value) satisfies the inner filter.
fn eval_value_path(path: &AttrPath, inner: &Filter, scope: Scope<'_>, node: &Value) -> bool {
    let inner_scope = Scope {
        rt: scope.rt,
        parent: Some(path),
    };
    let Some(value) = attribute(path, scope, node) else {
        return false;
    };
    match value {
        Value::Array(items) => items.iter().any(|e| eval(inner, inner_scope, e)),
        Value::Object(_) => eval(inner, inner_scope, value),
        _ => false,
    }
}
