//! SCIM PATCH (RFC 7644 §3.5.2): parsing a `PatchOp` request body and applying its operations
//! atomically to a JSON resource.
//!
//! Behaviour beyond the RFC text, chosen for real identity providers:
//! - `op` and member names of the request are case-insensitive (Entra ID sends `"Replace"`);
//! - a Boolean attribute accepts the strings `"true"`/`"false"` in any case (Entra ID);
//! - a singular complex attribute with a `value` sub-attribute (e.g. `manager`) accepts a bare
//!   value, stored as `{"value": ...}` (Entra ID sends the manager id as a string);
//! - `remove` on a multi-valued attribute with a `value` removes only the given elements
//!   (Entra ID's `{"op":"remove","path":"members","value":[{"value":"id"}]}`);
//! - `add` accepts a value-filter path (`emails[type eq "work"].value`): matching elements are
//!   updated, and when none match and the filter is a conjunction of `eq` comparisons, a new
//!   element is created from those comparisons (Entra ID; see RFC 7644 errata 8097);
//! - `schemas` cannot be targeted by a path (400 `mutability`); inside a path-less value a
//!   `schemas` member is ignored when it only lists URNs valid for the resource, because the
//!   server maintains `schemas` itself (extension URNs are added and removed automatically);
//! - a readOnly attribute named by a path is always rejected (400 `mutability`), but inside a
//!   value it is accepted when it leaves the stored value unchanged (clients such as Okta echo
//!   the `id` back in path-less replaces).

mod guard;
mod ops;
mod target;
#[cfg(test)]
mod tests;
mod value;

use crate::error::ScimError;
use crate::filter::{self, AttrPath, Filter};
use crate::schema::ResourceType;
use serde_json::{Map, Value};
use std::fmt;

/// The message schema of a PATCH request body.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A PATCH operation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOp {
    Add,
    Remove,
    Replace,
}

/// One operation of a PATCH request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: PatchOp,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// A PATCH path: `attrPath` or `valuePath [ "." subAttr ]` (RFC 7644 §3.5.2, Figure 7).
///
/// `name.givenName` is `attr = name.givenName, filter = None, sub = None`;
/// `emails[type eq "work"].value` is `attr = emails, filter = Some(type eq "work"),
/// sub = Some("value")`. Filter paths are relative to the elements of `attr`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

impl PatchOp {
    /// The operation name in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Replace => "replace",
        }
    }

    /// Parses an operation name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Add, Self::Remove, Self::Replace]
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(name))
    }
}

impl PatchPath {
    /// Parses a PATCH path; errors are 400 `invalidPath`.
    pub fn parse(input: &str) -> Result<Self, ScimError> {
        let expr = filter::parse_patch_path(input)?;
        Ok(Self {
            attr: expr.attr,
            filter: expr.filter,
            sub: expr.sub,
        })
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Parses a PATCH request body.
///
/// The body must be an object (else 400 `invalidSyntax`) whose `schemas` array contains
/// [`PATCH_SCHEMA`] (else 400 `invalidValue`) and whose `Operations` member is a non-empty
/// array (else 400 `invalidSyntax`). Member names (`schemas`, `Operations`, `op`, `path`,
/// `value`) are matched case-insensitively. Each operation must be an object with an `op` of
/// `add`, `remove` or `replace` in any case (else 400 `invalidSyntax`); a string `path` is
/// parsed as a PATCH path (400 `invalidPath`), while a missing, null or blank `path` means no
/// path. Semantic checks (a value for add/replace, a path for remove) happen in [`apply`].
pub fn parse_request(body: &Value) -> Result<Vec<PatchOperation>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the PATCH request body must be a JSON object"))?;
    check_message_schema(obj)?;
    let ops = member(obj, "Operations")
        .ok_or_else(|| ScimError::invalid_syntax("the PATCH request has no 'Operations' array"))?
        .as_array()
        .ok_or_else(|| ScimError::invalid_syntax("'Operations' must be an array"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("'Operations' must not be empty"));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_operation(op).map_err(|e| in_operation(e, i)))
        .collect()
}

/// A member of a JSON object by name, matched case-insensitively (exact match preferred).
fn member<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn check_message_schema(obj: &Map<String, Value>) -> Result<(), ScimError> {
    let listed = member(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .any(|u| u.eq_ignore_ascii_case(PATCH_SCHEMA))
        });
    if listed {
        Ok(())
    } else {
        Err(ScimError::invalid_value(format!(
            "the PATCH request's 'schemas' must contain \"{PATCH_SCHEMA}\""
        )))
    }
}

fn parse_operation(value: &Value) -> Result<PatchOperation, ScimError> {
    let obj = value
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("an operation must be a JSON object"))?;
    let name = member(obj, "op")
        .ok_or_else(|| ScimError::invalid_syntax("the operation has no 'op'"))?
        .as_str()
        .ok_or_else(|| ScimError::invalid_syntax("'op' must be a string"))?;
    let op = PatchOp::from_name(name).ok_or_else(|| {
        ScimError::invalid_syntax(format!(
            "unknown op '{name}'; expected 'add', 'remove' or 'replace'"
        ))
    })?;
    let path = match member(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(PatchPath::parse(s)?),
        Some(_) => return Err(ScimError::invalid_path("'path' must be a string")),
    };
    Ok(PatchOperation {
        op,
        path,
        value: member(obj, "value").cloned(),
    })
}

/// Prefixes an error's detail with the index of the operation it concerns.
fn in_operation(mut err: ScimError, index: usize) -> ScimError {
    err.detail = format!("Operations[{index}]: {}", err.detail);
    err
}

/// Applies all operations in order to a copy of `resource`, then stores the copy.
///
/// Atomic: on any error `resource` is left untouched and the error names the failing
/// operation's index. Returns whether the resource changed (an idempotent PATCH returns
/// `false`). `resource` must be a JSON object (else 500).
///
/// Semantics follow RFC 7644 §3.5.2.1–3.5.2.3; the module documentation lists the choices
/// made where the RFC is silent or where identity providers need leniency. Errors:
/// 400 `invalidPath` (unknown attribute of a known schema, malformed path, sub-attribute of a
/// multi-valued attribute without a value filter), 400 `noTarget` (`remove` without path,
/// `replace` whose value filter matches nothing), 400 `mutability` (readOnly, immutable,
/// required or `schemas` violations), 400 `invalidValue` (wrong value type, missing value,
/// more than one `primary`).
pub fn apply(
    resource: &mut Value,
    ops: &[PatchOperation],
    rt: &ResourceType,
) -> Result<bool, ScimError> {
    let mut work = resource.clone();
    let root = work
        .as_object_mut()
        .ok_or_else(|| ScimError::internal("the resource to patch is not a JSON object"))?;
    for (i, op) in ops.iter().enumerate() {
        ops::apply_one(root, op, rt).map_err(|e| in_operation(e, i))?;
    }
    let changed = work != *resource;
    if changed {
        *resource = work;
    }
    Ok(changed)
}
