//! The mutability checks that are easiest to state as "before vs. after" an operation: no
//! readOnly value may change (this gives path-less values their leniency: an echoed, unchanged
//! readOnly attribute is accepted) and no required attribute may disappear (RFC 7644 §3.5.2.2).

use super::target::{Container, Object, get, get_in};
use crate::error::ScimError;
use crate::schema::{AttrDef, AttrType, COMMON_ATTRIBUTES, Mutability, ResourceType};
use serde_json::Value;

/// Snapshot of the readOnly and required attributes before an operation.
pub(super) struct Guard {
    read_only: Vec<(String, Option<Value>)>,
    required: Vec<String>,
}

/// Every attribute definition of the resource type with the container it lives in.
fn schema_attributes(rt: &ResourceType) -> Vec<(Container, &'static AttrDef)> {
    let core = rt
        .core
        .attributes
        .iter()
        .chain(COMMON_ATTRIBUTES.iter())
        .map(|d| (Container::Root, d));
    let ext = rt.extensions.iter().flat_map(|s| {
        s.attributes
            .iter()
            .map(|d| (Container::Extension(s.id.to_string()), d))
    });
    core.chain(ext).collect()
}

fn read<'r>(root: &'r Object, container: &Container, name: &str) -> Option<&'r Value> {
    match container {
        Container::Root => get(root, name),
        Container::Extension(urn) => get(root, urn).and_then(|e| get_in(e, name)),
    }
}

fn label(container: &Container, name: &str) -> String {
    match container {
        Container::Root => name.to_string(),
        Container::Extension(urn) => format!("{urn}:{name}"),
    }
}

/// The values of readOnly attributes, and of readOnly sub-attributes of present singular
/// complex attributes, keyed by label.
fn read_only_values(root: &Object, rt: &ResourceType) -> Vec<(String, Option<Value>)> {
    let mut out = Vec::new();
    for (container, def) in schema_attributes(rt) {
        let current = read(root, &container, def.name).filter(|v| !v.is_null());
        if def.mutability == Mutability::ReadOnly {
            out.push((label(&container, def.name), current.cloned()));
        } else if def.ty == AttrType::Complex && !def.multi_valued {
            let Some(parent) = current.filter(|v| v.is_object()) else {
                continue;
            };
            for sub in def
                .sub_attributes
                .iter()
                .filter(|s| s.mutability == Mutability::ReadOnly)
            {
                let v = get_in(parent, sub.name).filter(|v| !v.is_null()).cloned();
                out.push((label(&container, &format!("{}.{}", def.name, sub.name)), v));
            }
        }
    }
    out
}

impl Guard {
    pub(super) fn capture(root: &Object, rt: &ResourceType) -> Self {
        let required = schema_attributes(rt)
            .into_iter()
            .filter(|(c, d)| d.required && read(root, c, d.name).is_some_and(|v| !v.is_null()))
            .map(|(c, d)| label(&c, d.name))
            .collect();
        Self {
            read_only: read_only_values(root, rt),
            required,
        }
    }

    /// 400 `mutability` if a readOnly value changed or a required attribute was removed.
    pub(super) fn verify(&self, root: &Object, rt: &ResourceType) -> Result<(), ScimError> {
        let after = read_only_values(root, rt);
        for (name, now) in &after {
            let before = self
                .read_only
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v);
            if before.is_some_and(|b| b != now) || (before.is_none() && now.is_some()) {
                return Err(ScimError::mutability(format!("'{name}' is readOnly")));
            }
        }
        let present: Vec<String> = schema_attributes(rt)
            .into_iter()
            .filter(|(c, d)| d.required && read(root, c, d.name).is_some_and(|v| !v.is_null()))
            .map(|(c, d)| label(&c, d.name))
            .collect();
        match self.required.iter().find(|r| !present.contains(r)) {
            Some(missing) => Err(ScimError::mutability(format!(
                "'{missing}' is required and cannot be removed"
            ))),
            None => Ok(()),
        }
    }
}
