//! SCIM filters (RFC 7644 §3.4.2.2): parsing the full filter grammar, validating a parsed filter
//! against a resource type's schema, and evaluating it against a JSON resource.
//!
//! Parsing is schema-agnostic; [`validate`] applies the type rules that need the schema (e.g.
//! `gt` on a boolean), and [`matches()`] evaluates. Attribute paths are also used by PATCH
//! (see [`parse_attr_path`] and `crate::patch`).

pub mod datetime;
mod eval;
mod parser;
#[cfg(test)]
mod tests;

use crate::error::ScimError;
use crate::schema::{AttrType, ResourceType};
use std::fmt;

/// An attribute path: `[uri ":"] attr ["." sub]`, e.g. `name.givenName` or
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`.
///
/// Names are kept as written; all comparisons against schemas and JSON keys are
/// case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub uri: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

/// A comparison operator (RFC 7644 Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A literal operand of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

/// A parsed filter.
///
/// Inside a [`Filter::ValuePath`], attribute paths are relative to each element of the
/// multi-valued attribute: the parser turns a qualified inner path such as `emails.type`
/// (inside `emails[...]`) into the relative path `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, CompValue),
    /// The multi-valued attribute (its `sub` is `None`) and the filter each element is tested with.
    ValuePath(AttrPath, Box<Filter>),
}

impl AttrPath {
    /// A path to a plain attribute, without URN or sub-attribute.
    pub fn new(attr: impl Into<String>) -> Self {
        Self {
            uri: None,
            attr: attr.into(),
            sub: None,
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        write!(f, "{}", self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl CompareOp {
    /// The operator's keyword in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }

    /// Parses an operator keyword, case-insensitively (`pr` is not a comparison operator).
    pub fn from_keyword(word: &str) -> Option<Self> {
        [
            Self::Eq,
            Self::Ne,
            Self::Co,
            Self::Sw,
            Self::Ew,
            Self::Gt,
            Self::Ge,
            Self::Lt,
            Self::Le,
        ]
        .into_iter()
        .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    /// True for `gt`, `ge`, `lt` and `le`.
    pub fn is_ordering(self) -> bool {
        matches!(self, Self::Gt | Self::Ge | Self::Lt | Self::Le)
    }

    /// True for `co`, `sw` and `ew`.
    pub fn is_substring(self) -> bool {
        matches!(self, Self::Co | Self::Sw | Self::Ew)
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => write!(f, "null"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
        }
    }
}

/// Renders the filter in the RFC syntax, parenthesizing only where precedence or grouping
/// requires it, so that `parse` of the output yields the same filter.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::And(l, r) => {
                write_operand(f, l, matches!(**l, Self::Or(..)))?;
                write!(f, " and ")?;
                write_operand(f, r, matches!(**r, Self::Or(..) | Self::And(..)))
            }
            Self::Or(l, r) => {
                write!(f, "{l} or ")?;
                write_operand(f, r, matches!(**r, Self::Or(..)))
            }
            Self::Not(inner) => write!(f, "not ({inner})"),
            Self::Present(p) => write!(f, "{p} pr"),
            Self::Compare(p, op, v) => write!(f, "{p} {} {v}", op.as_str()),
            Self::ValuePath(p, inner) => write!(f, "{p}[{inner}]"),
        }
    }
}

/// Writes an operand of `and`/`or`, in parentheses when `group`.
fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Filter, group: bool) -> fmt::Result {
    if group {
        write!(f, "({operand})")
    } else {
        write!(f, "{operand}")
    }
}

/// Parses a filter (the `filter` query parameter or a `/.search` body's `filter`).
///
/// Keywords, operators and attribute names are case-insensitive; `and` binds tighter than `or`;
/// both are left-associative. Errors are 400 `invalidFilter` whose detail names the 1-based
/// character position and what was expected there.
pub fn parse(input: &str) -> Result<Filter, ScimError> {
    parser::parse_filter(input).map_err(|e| ScimError::invalid_filter(e.to_string()))
}

/// Parses a plain attribute path (no value filter), as used by the `attributes` and
/// `excludedAttributes` parameters: `emails`, `name.givenName`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`.
/// Surrounding whitespace is ignored. Errors are 400 `invalidPath`.
pub fn parse_attr_path(input: &str) -> Result<AttrPath, ScimError> {
    let expr =
        parser::parse_path(input, false).map_err(|e| ScimError::invalid_path(e.to_string()))?;
    Ok(expr.attr)
}

/// True when `resource` satisfies `filter`.
///
/// Semantics (RFC 7644 §3.4.2.2):
/// - attribute names match JSON keys case-insensitively; a path qualified with an extension URN
///   is looked up under that URN's key; a path qualified with the core URN is the same as an
///   unqualified one; an unqualified name missing at top level is also looked up in the
///   extensions `rt` declares;
/// - a multi-valued attribute matches if any of its values matches; a multi-valued complex
///   attribute compared without a sub-attribute compares each element's `value`;
/// - string comparisons honour the attribute's `caseExact` (unknown attributes: case-insensitive);
///   `dateTime` attributes compare chronologically when both sides parse as RFC 3339;
///   numbers compare numerically; booleans support only `eq`/`ne`; mismatched types never match;
/// - `pr` means present and not null, not `""`, not `[]`, not `{}`;
/// - `eq null` matches an absent or null attribute, `ne null` a present one, other operators
///   with `null` never match;
/// - `ne` is the exact negation of `eq`: it matches when no value of the attribute equals the
///   operand — in particular when the attribute is absent.
pub fn matches(filter: &Filter, resource: &serde_json::Value, rt: &ResourceType) -> bool {
    eval::matches_resource(filter, resource, rt)
}

/// Tests one element of the multi-valued attribute `parent` against a value filter whose paths
/// are relative to the element (as inside [`Filter::ValuePath`]).
pub(crate) fn matches_element(
    filter: &Filter,
    element: &serde_json::Value,
    rt: &ResourceType,
    parent: &AttrPath,
) -> bool {
    eval::matches_element(filter, element, rt, parent)
}

/// Checks the type rules that need the schema (RFC 7644 §3.4.2.2), for attributes `rt` knows:
/// `gt`/`ge`/`lt`/`le` are rejected on boolean and binary attributes; `co`/`sw`/`ew` are
/// rejected on boolean, integer, decimal and binary attributes (strings, references and
/// dateTimes are allowed); a complex attribute without a `value` sub-attribute cannot be
/// compared directly; a value filter (`attr[...]`) needs a complex attribute. Unknown
/// attributes are accepted. Errors are 400 `invalidFilter`.
pub fn validate(filter: &Filter, rt: &ResourceType) -> Result<(), ScimError> {
    validate_in(filter, rt, None)
}

fn validate_in(
    filter: &Filter,
    rt: &ResourceType,
    parent: Option<&AttrPath>,
) -> Result<(), ScimError> {
    match filter {
        Filter::And(l, r) | Filter::Or(l, r) => {
            validate_in(l, rt, parent)?;
            validate_in(r, rt, parent)
        }
        Filter::Not(inner) => validate_in(inner, rt, parent),
        Filter::Present(_) => Ok(()),
        Filter::Compare(path, op, _) => validate_compare(path, *op, rt, parent),
        Filter::ValuePath(path, inner) => {
            if let Some(def) = eval::resolve_def(path, rt, parent)
                && def.ty != AttrType::Complex
            {
                return Err(ScimError::invalid_filter(format!(
                    "'{path}' is not a complex attribute and cannot take a value filter"
                )));
            }
            validate_in(inner, rt, Some(path))
        }
    }
}

fn validate_compare(
    path: &AttrPath,
    op: CompareOp,
    rt: &ResourceType,
    parent: Option<&AttrPath>,
) -> Result<(), ScimError> {
    let Some(def) = eval::resolve_def(path, rt, parent) else {
        return Ok(());
    };
    let def = if def.ty == AttrType::Complex {
        def.sub_attr("value").ok_or_else(|| {
            ScimError::invalid_filter(format!(
                "'{path}' is a complex attribute; compare one of its sub-attributes instead"
            ))
        })?
    } else {
        def
    };
    let bad = match def.ty {
        AttrType::Boolean | AttrType::Binary => op.is_ordering() || op.is_substring(),
        AttrType::Integer | AttrType::Decimal => op.is_substring(),
        _ => false,
    };
    if bad {
        return Err(ScimError::invalid_filter(format!(
            "operator '{}' cannot be used with the {} attribute '{path}'",
            op.as_str(),
            type_name(def.ty)
        )));
    }
    Ok(())
}

fn type_name(ty: AttrType) -> &'static str {
    match ty {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Decimal => "decimal",
        AttrType::Integer => "integer",
        AttrType::DateTime => "dateTime",
        AttrType::Reference => "reference",
        AttrType::Complex => "complex",
        AttrType::Binary => "binary",
    }
}

/// A parsed PATCH path: `attrPath`, or `valuePath ["." subAttr]` (RFC 7644 §3.5.2, Figure 7).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathExpr {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

/// Parses a PATCH path; errors are 400 `invalidPath`.
pub(crate) fn parse_patch_path(input: &str) -> Result<PathExpr, ScimError> {
    parser::parse_path(input, true).map_err(|e| ScimError::invalid_path(e.to_string()))
}
