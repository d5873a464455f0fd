//! Applying one PATCH operation (RFC 7644 §3.5.2.1–3.5.2.3) to a resource object.

use super::guard::Guard;
use super::target::{self, Container, Object, Resolution, Sub, Target, get, put, take};
use super::value;
use super::{PatchOp, PatchOperation, PatchPath};
use crate::error::ScimError;
use crate::filter::{self, AttrPath, CompValue, CompareOp, Filter};
use crate::schema::{AttrDef, AttrType, Mutability, ResourceType};
use serde_json::Value;

/// Applies `op` to `root`, then fixes up extension bookkeeping and checks that no readOnly
/// attribute changed and no required attribute disappeared.
pub(super) fn apply_one(
    root: &mut Object,
    op: &PatchOperation,
    rt: &ResourceType,
) -> Result<(), ScimError> {
    let guard = Guard::capture(root, rt);
    let mut session = Session {
        root,
        rt,
        touched: Vec::new(),
    };
    session.dispatch(op)?;
    let Session { root, touched, .. } = session;
    target::sync_extensions(root, rt, &touched);
    guard.verify(root, rt)
}

/// How an attribute was designated: by the operation's `path`, or by a member of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Path,
    Value,
}

struct Session<'a> {
    root: &'a mut Object,
    rt: &'a ResourceType,
    /// Extension URNs whose objects this operation may have changed.
    touched: Vec<String>,
}

fn require_value(op: &PatchOperation) -> Result<&Value, ScimError> {
    op.value
        .as_ref()
        .ok_or_else(|| ScimError::invalid_value(format!("'{}' requires a 'value'", op.op.as_str())))
}

fn is_read_only(def: Option<&AttrDef>) -> bool {
    def.is_some_and(|d| d.mutability == Mutability::ReadOnly)
}

/// 400 `mutability` when a path names a readOnly attribute or sub-attribute.
fn check_path_writable(t: &Target, sub: Option<Sub<'_>>) -> Result<(), ScimError> {
    if is_read_only(t.def) || sub.is_some_and(|s| is_read_only(s.def)) {
        return Err(ScimError::mutability(format!("'{}' is readOnly", t.label)));
    }
    Ok(())
}

/// The current elements of a multi-valued attribute (a single value counts as one element).
fn list_of(obj: &Object, name: &str) -> Vec<Value> {
    match get(obj, name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(single) => vec![single.clone()],
    }
}

/// Stores a multi-valued attribute; an empty list unassigns it.
fn store_list(obj: &mut Object, name: &str, items: Vec<Value>) {
    if items.is_empty() {
        take(obj, name);
    } else {
        put(obj, name, Value::Array(items));
    }
}

/// Stores a complex attribute; an empty object unassigns it.
fn store_object(obj: &mut Object, name: &str, value: Object) {
    if value.is_empty() {
        take(obj, name);
    } else {
        put(obj, name, Value::Object(value));
    }
}

/// Drops null members of an object value (new elements never store nulls).
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(value::without_nulls(o)),
        other => other,
    }
}

/// Adds `items` to `list` unless already present (see [`value::same_element`]); a present
/// complex element gets the new sub-attribute values merged in. Enforces a single primary.
fn add_into(
    def: Option<&AttrDef>,
    name: &str,
    list: &mut Vec<Value>,
    items: Vec<Value>,
) -> Result<(), ScimError> {
    let mut touched = Vec::new();
    for item in items
        .into_iter()
        .map(without_nulls)
        .filter(|v| !v.is_null())
    {
        match list.iter().position(|e| value::same_element(def, e, &item)) {
            Some(i) => {
                if let Some(existing) = list.get_mut(i) {
                    merge_element(def, existing, &item)?;
                }
                touched.push(i);
            }
            None => {
                list.push(item);
                touched.push(list.len() - 1);
            }
        }
    }
    value::enforce_single_primary(name, list, &touched)
}

fn merge_element(
    def: Option<&AttrDef>,
    existing: &mut Value,
    update: &Value,
) -> Result<(), ScimError> {
    if let (Some(old), Some(new)) = (existing.as_object(), update.as_object()) {
        let merged = Value::Object(value::merged(old, new));
        value::check_immutable_subs(def, existing, &merged)?;
        *existing = merged;
    }
    Ok(())
}

/// Builds the element an `add` with an unmatched value filter creates: the filter must be a
/// conjunction of `eq` comparisons on sub-attributes (`type eq "work" and primary eq true`).
fn seed_from_filter(filter: &Filter, seed: &mut Object) -> bool {
    match filter {
        Filter::And(l, r) => seed_from_filter(l, seed) && seed_from_filter(r, seed),
        Filter::Compare(p, CompareOp::Eq, v) if p.uri.is_none() && p.sub.is_none() => {
            let json = match v {
                CompValue::Null => return false,
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Number(n) => Value::Number(n.clone()),
                CompValue::String(s) => Value::String(s.clone()),
            };
            put(seed, &p.attr, json);
            true
        }
        _ => false,
    }
}

impl Session<'_> {
    fn dispatch(&mut self, op: &PatchOperation) -> Result<(), ScimError> {
        match (&op.path, op.op) {
            (None, PatchOp::Remove) => Err(ScimError::no_target("'remove' requires a 'path'")),
            (None, kind) => self.write_value_object(kind, require_value(op)?),
            (Some(path), PatchOp::Remove) => self.remove(path, op.value.as_ref()),
            (Some(path), kind) if path.filter.is_some() => {
                self.write_filtered(kind, path, require_value(op)?)
            }
            (Some(path), kind) => {
                let value = require_value(op)?;
                match &path.sub {
                    Some(_) => Err(ScimError::invalid_path(format!(
                        "'{path}': a sub-attribute after the attribute needs a value filter"
                    ))),
                    None => self.write_simple(kind, &path.attr, value, Origin::Path),
                }
            }
        }
    }

    fn touch(&mut self, container: &Container) {
        if let Container::Extension(urn) = container
            && !self.touched.iter().any(|t| t.eq_ignore_ascii_case(urn))
        {
            self.touched.push(urn.clone());
        }
    }

    /// The object holding `t`; created (for extensions) when `create`.
    fn slot(&mut self, t: &Target, create: bool) -> Result<Option<&mut Object>, ScimError> {
        self.touch(&t.container);
        target::container_mut(self.root, &t.container, create)
    }

    fn slot_created(&mut self, t: &Target) -> Result<&mut Object, ScimError> {
        self.slot(t, true)?
            .ok_or_else(|| ScimError::internal("could not create the attribute's container"))
    }

    /// Path-less `add`/`replace`: each member of the object is an attribute path (possibly
    /// URN-qualified or dotted) or a whole schema object (`"urn:...:enterprise:2.0:User": {...}`).
    fn write_value_object(&mut self, kind: PatchOp, value: &Value) -> Result<(), ScimError> {
        let obj = value.as_object().ok_or_else(|| {
            ScimError::invalid_value(format!(
                "'{}' without a 'path' requires an object 'value'",
                kind.as_str()
            ))
        })?;
        for (key, member) in obj {
            if key.eq_ignore_ascii_case("schemas") {
                target::check_schemas_value(self.root, self.rt, member)?;
            } else if let Some(urn) = self.schema_key(key, member) {
                self.write_schema_object(kind, &urn, member)?;
            } else {
                let path = filter::parse_attr_path(key)?;
                self.write_simple(kind, &path, member, Origin::Value)?;
            }
        }
        Ok(())
    }

    /// The schema URN when the member `key` of a path-less value holds a whole schema object:
    /// the core schema, a known extension, or an unknown URN with an object value that does not
    /// name an attribute of a known schema.
    fn schema_key(&self, key: &str, member: &Value) -> Option<String> {
        if !key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            return None;
        }
        if self.rt.is_core(key) || target::is_extension(self.rt, self.root, key) {
            return Some(key.to_string());
        }
        let names_known_attr = filter::parse_attr_path(key)
            .ok()
            .and_then(|p| p.uri)
            .is_some_and(|u| self.rt.schema(&u).is_some());
        (member.is_object() && !names_known_attr).then(|| key.to_string())
    }

    /// Writes each member of a schema object as an attribute of schema `urn`; `null` removes the
    /// whole extension object.
    fn write_schema_object(
        &mut self,
        kind: PatchOp,
        urn: &str,
        value: &Value,
    ) -> Result<(), ScimError> {
        if value.is_null() && !self.rt.is_core(urn) {
            self.touch(&Container::Extension(urn.to_string()));
            take(self.root, urn);
            return Ok(());
        }
        let members = value.as_object().ok_or_else(|| {
            ScimError::invalid_value(format!("'{urn}' must be an object of attributes"))
        })?;
        for (name, member) in members {
            // Some clients serialise an extension object with its own `schemas` list; it
            // carries nothing to store (the server maintains `schemas`).
            if name.eq_ignore_ascii_case("schemas") {
                continue;
            }
            let mut path = filter::parse_attr_path(name)?;
            if path.uri.is_some() {
                return Err(ScimError::invalid_path(format!(
                    "'{name}' inside '{urn}' must not carry a schema URN"
                )));
            }
            path.uri = Some(urn.to_string());
            self.write_simple(kind, &path, member, Origin::Value)?;
        }
        Ok(())
    }

    /// `add`/`replace` of an attribute or `attr.sub` without a value filter.
    fn write_simple(
        &mut self,
        kind: PatchOp,
        path: &AttrPath,
        value: &Value,
        origin: Origin,
    ) -> Result<(), ScimError> {
        let t = match target::resolve(self.rt, self.root, path)? {
            Resolution::Extension(urn) => return self.write_schema_object(kind, &urn, value),
            Resolution::Attribute(t) => t,
        };
        let sub = path
            .sub
            .as_deref()
            .map(|s| target::sub_of(&t, s))
            .transpose()?;
        if origin == Origin::Path {
            check_path_writable(&t, sub)?;
        }
        match sub {
            Some(sub) => self.write_sub(&t, sub, value),
            None => self.write_attr(kind, &t, value),
        }
    }

    fn write_attr(&mut self, kind: PatchOp, t: &Target, value: &Value) -> Result<(), ScimError> {
        let Some(def) = t.def else {
            return self.write_unknown(kind, t, value);
        };
        if def.multi_valued {
            let items = value::elements(def, value)?;
            let slot = self.slot(t, !items.is_empty())?;
            let Some(slot) = slot else { return Ok(()) };
            let mut list = match kind {
                PatchOp::Add => list_of(slot, &t.name),
                _ => Vec::new(),
            };
            add_into(Some(def), def.name, &mut list, items)?;
            store_list(slot, &t.name, list);
            return Ok(());
        }
        let new = value::element(def, value)?;
        if new.is_null() {
            return self.unassign(t);
        }
        let slot = self.slot_created(t)?;
        let old = get(slot, &t.name).cloned();
        match new {
            Value::Object(update) if def.ty == AttrType::Complex => {
                let base = old
                    .as_ref()
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let merged = value::merged(&base, &update);
                let before = old.unwrap_or(Value::Null);
                value::check_immutable_subs(Some(def), &before, &Value::Object(merged.clone()))?;
                store_object(slot, &t.name, merged);
            }
            scalar => {
                value::check_immutable(Some(def), old.as_ref(), Some(&scalar))?;
                put(slot, &t.name, scalar);
            }
        }
        Ok(())
    }

    /// An attribute of an unknown extension: stored as given; `add` appends to an existing
    /// array and merges into an existing object.
    fn write_unknown(&mut self, kind: PatchOp, t: &Target, value: &Value) -> Result<(), ScimError> {
        if value.is_null() {
            return self.unassign(t);
        }
        let slot = self.slot_created(t)?;
        match (kind, get(slot, &t.name)) {
            (PatchOp::Add, Some(Value::Array(_))) => {
                let mut list = list_of(slot, &t.name);
                let items = match value {
                    Value::Array(items) => items.clone(),
                    single => vec![single.clone()],
                };
                add_into(None, &t.name, &mut list, items)?;
                store_list(slot, &t.name, list);
            }
            (PatchOp::Add, Some(Value::Object(old))) if value.is_object() => {
                let update = value.as_object().cloned().unwrap_or_default();
                let merged = value::merged(old, &update);
                store_object(slot, &t.name, merged);
            }
            _ => put(slot, &t.name, value.clone()),
        }
        Ok(())
    }

    /// `attr.sub` of a singular complex attribute (e.g. `name.givenName`, `manager.value`).
    fn write_sub(&mut self, t: &Target, sub: Sub<'_>, value: &Value) -> Result<(), ScimError> {
        let new = match sub.def {
            Some(def) => value::scalar(def, value)?,
            None => value.clone(),
        };
        let Some(slot) = self.slot(t, !new.is_null())? else {
            return Ok(());
        };
        let old = get(slot, &t.name).cloned().unwrap_or(Value::Null);
        let multi = t.def.is_some_and(|d| d.multi_valued) || old.is_array();
        if multi {
            return Err(ScimError::invalid_path(format!(
                "'{}' is multi-valued; select values with a filter, e.g. {}[type eq \"work\"].{}",
                t.name, t.name, sub.name
            )));
        }
        let mut obj = match &old {
            Value::Object(o) => o.clone(),
            Value::Null => Object::new(),
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "'{}' is not a complex attribute",
                    t.label
                )));
            }
        };
        if new.is_null() {
            take(&mut obj, sub.name);
        } else {
            put(&mut obj, sub.name, new);
        }
        value::check_immutable_subs(t.def, &old, &Value::Object(obj.clone()))?;
        store_object(slot, &t.name, obj);
        Ok(())
    }

    fn unassign(&mut self, t: &Target) -> Result<(), ScimError> {
        let Some(slot) = self.slot(t, false)? else {
            return Ok(());
        };
        value::check_immutable(t.def, get(slot, &t.name), None)?;
        take(slot, &t.name);
        Ok(())
    }

    /// Resolves the attribute of a value-filter path; it must be multi-valued, and the filter
    /// must pass [`filter::validate`] (else 400 `invalidPath`).
    fn filtered_target(&self, path: &PatchPath) -> Result<Target, ScimError> {
        let t = match target::resolve(self.rt, self.root, &path.attr)? {
            Resolution::Attribute(t) if path.attr.sub.is_none() => t,
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "'{path}': a value filter must follow a multi-valued attribute"
                )));
            }
        };
        if t.def.is_some_and(|d| !d.multi_valued) {
            return Err(ScimError::invalid_path(format!(
                "'{path}': '{}' is not multi-valued",
                t.label
            )));
        }
        if let Some(inner) = &path.filter {
            let whole = Filter::ValuePath(path.attr.clone(), Box::new(inner.clone()));
            filter::validate(&whole, self.rt)
                .map_err(|e| ScimError::invalid_path(format!("'{path}': {}", e.detail)))?;
        }
        Ok(t)
    }

    /// `add`/`replace` with a value filter (`emails[type eq "work"]`, `...].value`): matching
    /// elements are replaced (`replace` without sub-attribute), merged into (`add`), or get the
    /// sub-attribute set. `replace` matching nothing is 400 `noTarget`; `add` matching nothing
    /// creates an element from the filter's `eq` comparisons (else 400 `noTarget`).
    fn write_filtered(
        &mut self,
        kind: PatchOp,
        path: &PatchPath,
        value: &Value,
    ) -> Result<(), ScimError> {
        let t = self.filtered_target(path)?;
        let sub = path
            .sub
            .as_deref()
            .map(|s| target::sub_of(&t, s))
            .transpose()?;
        check_path_writable(&t, sub)?;
        let Some(filter) = &path.filter else {
            return Ok(());
        };
        let rt = self.rt;
        let slot = self.slot_created(&t)?;
        let mut list = list_of(slot, &t.name);
        let hits = matching_indices(&list, filter, rt, &path.attr);
        if hits.is_empty() {
            if kind == PatchOp::Replace {
                return Err(ScimError::no_target(format!("no value matches '{path}'")));
            }
            let item = new_element_for(&t, filter, sub, value, rt, &path.attr)?;
            add_into(t.def, &t.name, &mut list, item.into_iter().collect())?;
        } else {
            for &i in &hits {
                if let Some(element) = list.get_mut(i) {
                    update_element(kind, &t, sub, element, value)?;
                }
            }
            value::enforce_single_primary(&t.name, &mut list, &hits)?;
            list.retain(|e| !e.is_null() && e.as_object().is_none_or(|o| !o.is_empty()));
        }
        store_list(slot, &t.name, list);
        Ok(())
    }

    /// `remove`: with a value filter removes matching elements (or their sub-attribute); with a
    /// `value` on a multi-valued attribute removes just those elements; otherwise unassigns the
    /// attribute or sub-attribute. Removing something absent is not an error.
    fn remove(&mut self, path: &PatchPath, value: Option<&Value>) -> Result<(), ScimError> {
        if path.filter.is_some() {
            if self.remove_filtered_single(path)? {
                return Ok(());
            }
            return self.remove_filtered(path);
        }
        if path.sub.is_some() {
            return Err(ScimError::invalid_path(format!(
                "'{path}': a sub-attribute after the attribute needs a value filter"
            )));
        }
        let t = match target::resolve(self.rt, self.root, &path.attr)? {
            Resolution::Extension(urn) => {
                self.touch(&Container::Extension(urn.clone()));
                take(self.root, &urn);
                return Ok(());
            }
            Resolution::Attribute(t) => t,
        };
        let sub = path
            .attr
            .sub
            .as_deref()
            .map(|s| target::sub_of(&t, s))
            .transpose()?;
        check_path_writable(&t, sub)?;
        match (sub, value) {
            (Some(sub), _) => self.remove_sub(&t, sub, None),
            (None, Some(v)) if !v.is_null() && self.is_multi(&t)? => self.remove_values(&t, v),
            (None, _) => self.unassign(&t),
        }
    }

    fn is_multi(&mut self, t: &Target) -> Result<bool, ScimError> {
        if let Some(def) = t.def {
            return Ok(def.multi_valued);
        }
        Ok(self
            .slot(t, false)?
            .is_some_and(|s| get(s, &t.name).is_some_and(Value::is_array)))
    }

    /// Removes the elements equal to the given ones (Entra ID's member removal).
    fn remove_values(&mut self, t: &Target, value: &Value) -> Result<(), ScimError> {
        let patterns = match t.def {
            Some(def) => value::elements(def, value)?,
            None => match value {
                Value::Array(items) => items.clone(),
                single => vec![single.clone()],
            },
        };
        let Some(slot) = self.slot(t, false)? else {
            return Ok(());
        };
        let mut list = list_of(slot, &t.name);
        list.retain(|e| !patterns.iter().any(|p| value::same_element(t.def, e, p)));
        store_list(slot, &t.name, list);
        Ok(())
    }

    /// Removes `sub` from the attribute's object, or from the elements whose indices are in
    /// `only` (all elements when `None`); elements left empty are dropped.
    fn remove_sub(
        &mut self,
        t: &Target,
        sub: Sub<'_>,
        only: Option<&[usize]>,
    ) -> Result<(), ScimError> {
        let Some(slot) = self.slot(t, false)? else {
            return Ok(());
        };
        let old = get(slot, &t.name).cloned().unwrap_or(Value::Null);
        match old {
            Value::Array(items) => {
                let mut kept = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    if only.is_some_and(|o| !o.contains(&i)) {
                        kept.push(item);
                        continue;
                    }
                    let mut new = item.clone();
                    if let Some(obj) = new.as_object_mut() {
                        take(obj, sub.name);
                    }
                    value::check_immutable_subs(t.def, &item, &new)?;
                    if new.as_object().is_none_or(|o| !o.is_empty()) {
                        kept.push(new);
                    }
                }
                store_list(slot, &t.name, kept);
            }
            Value::Object(obj) => {
                let mut new = obj.clone();
                take(&mut new, sub.name);
                value::check_immutable_subs(
                    t.def,
                    &Value::Object(obj),
                    &Value::Object(new.clone()),
                )?;
                store_object(slot, &t.name, new);
            }
            _ => {}
        }
        Ok(())
    }

    /// `remove` with a value filter on a single-valued complex attribute, as Entra ID removes
    /// a manager (`manager[value eq "…"]`): the attribute (or its sub-attribute) is removed
    /// when its value satisfies the filter. False when `path` does not name such an attribute.
    fn remove_filtered_single(&mut self, path: &PatchPath) -> Result<bool, ScimError> {
        let Some(filter) = &path.filter else {
            return Ok(false);
        };
        let t = match target::resolve(self.rt, self.root, &path.attr)? {
            Resolution::Attribute(t) if path.attr.sub.is_none() => t,
            _ => return Ok(false),
        };
        if !t
            .def
            .is_some_and(|d| d.ty == AttrType::Complex && !d.multi_valued)
        {
            return Ok(false);
        }
        let whole = Filter::ValuePath(path.attr.clone(), Box::new(filter.clone()));
        filter::validate(&whole, self.rt)
            .map_err(|e| ScimError::invalid_path(format!("'{path}': {}", e.detail)))?;
        let sub = path
            .sub
            .as_deref()
            .map(|s| target::sub_of(&t, s))
            .transpose()?;
        check_path_writable(&t, sub)?;
        let rt = self.rt;
        let matched = match self.slot(&t, false)? {
            Some(slot) => get(slot, &t.name).is_some_and(|v| {
                v.is_object() && filter::matches_element(filter, v, rt, &path.attr)
            }),
            None => false,
        };
        if matched {
            match sub {
                Some(sub) => self.remove_sub(&t, sub, None)?,
                None => self.unassign(&t)?,
            }
        }
        Ok(true)
    }

    fn remove_filtered(&mut self, path: &PatchPath) -> Result<(), ScimError> {
        let t = self.filtered_target(path)?;
        let sub = path
            .sub
            .as_deref()
            .map(|s| target::sub_of(&t, s))
            .transpose()?;
        check_path_writable(&t, sub)?;
        let Some(filter) = &path.filter else {
            return Ok(());
        };
        let rt = self.rt;
        let Some(slot) = self.slot(&t, false)? else {
            return Ok(());
        };
        let list = list_of(slot, &t.name);
        let hits = matching_indices(&list, filter, rt, &path.attr);
        match sub {
            Some(sub) => self.remove_sub(&t, sub, Some(&hits)),
            None => {
                for element in hits.iter().filter_map(|&i| list.get(i)) {
                    value::check_immutable(t.def, Some(element), None)?;
                }
                let kept = list
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !hits.contains(i))
                    .map(|(_, e)| e)
                    .collect();
                store_list(slot, &t.name, kept);
                Ok(())
            }
        }
    }
}

/// The indices of the elements of `list` that satisfy the value filter of attribute `attr`.
fn matching_indices(
    list: &[Value],
    filter: &Filter,
    rt: &ResourceType,
    attr: &AttrPath,
) -> Vec<usize> {
    list.iter()
        .enumerate()
        .filter(|(_, e)| filter::matches_element(filter, e, rt, attr))
        .map(|(i, _)| i)
        .collect()
}

/// The element an `add` creates when its value filter matched nothing (see
/// [`seed_from_filter`]); `None` when the value is null (nothing to add).
fn new_element_for(
    t: &Target,
    filter: &Filter,
    sub: Option<Sub<'_>>,
    value: &Value,
    rt: &ResourceType,
    attr: &AttrPath,
) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    let mut seed = Object::new();
    let no_target = || {
        ScimError::no_target(format!(
            "no value of '{}' matches the filter, and it cannot be used to create one (use eq comparisons joined by 'and')",
            t.label
        ))
    };
    if !seed_from_filter(filter, &mut seed) {
        return Err(no_target());
    }
    let update = match sub {
        Some(sub) => Object::from_iter([(sub.name.to_string(), value.clone())]),
        None => value.as_object().cloned().ok_or_else(|| {
            ScimError::invalid_value(format!("'{}' requires an object value", t.label))
        })?,
    };
    let raw = Value::Object(value::merged(&seed, &update));
    let element = match t.def {
        Some(def) => value::element(def, &raw)?,
        None => raw,
    };
    if !filter::matches_element(filter, &element, rt, attr) {
        return Err(no_target());
    }
    Ok(Some(without_nulls(element)))
}

/// Updates one element selected by a value filter: sets its sub-attribute, or replaces it
/// (`replace`) / merges into it (`add`). A null value unassigns the sub-attribute or (for
/// `replace` without sub-attribute) leaves a null element for the caller to drop.
fn update_element(
    kind: PatchOp,
    t: &Target,
    sub: Option<Sub<'_>>,
    element: &mut Value,
    value: &Value,
) -> Result<(), ScimError> {
    let new = match sub {
        Some(sub) => {
            let v = match sub.def {
                Some(def) => value::scalar(def, value)?,
                None => value.clone(),
            };
            let mut obj = element.as_object().cloned().unwrap_or_default();
            if v.is_null() {
                take(&mut obj, sub.name);
            } else {
                put(&mut obj, sub.name, v);
            }
            Value::Object(obj)
        }
        None => {
            let update = match t.def {
                Some(def) => value::element(def, value)?,
                None => value.clone(),
            };
            match (kind, element.as_object(), update.as_object()) {
                (PatchOp::Add, Some(old), Some(new)) => Value::Object(value::merged(old, new)),
                _ => without_nulls(update),
            }
        }
    };
    value::check_immutable_subs(t.def, element, &new)?;
    *element = new;
    Ok(())
}
