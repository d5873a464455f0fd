//! Lowering a Cedar policy (its JSON form, Cedar's stable interchange format) into the
//! compiled form. Anything outside the supported subset is reported, with the construct
//! named, and the policy stays with `cedar-policy`.

use super::ir::*;
use crate::engine::Effect;
use crate::request::Action;
use crate::schema::BUILT_IN_USER_ATTRIBUTES;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What the lowering resolves names against.
#[derive(Debug)]
pub struct Names<'a> {
    /// `"<source>/<display name>"` → group index.
    pub groups: HashMap<&'a str, u32>,
    pub roles: HashMap<&'a str, u32>,
    pub principal_attributes: HashMap<&'a str, u32>,
    pub labels: HashMap<&'a str, u32>,
    /// Per action (by [`Action::index`]): the action groups it is in.
    pub action_ancestors: &'a [Vec<String>],
}

/// Why a policy is left to `cedar-policy`.
pub type Unsupported = String;

type R<T> = Result<T, Unsupported>;

/// A lowered policy whose clauses are still expressions (not yet interned).
#[derive(Debug)]
pub struct Lowered {
    pub policy: FastPolicy,
    pub clauses: Vec<Expr>,
}

pub fn policy(json: &Value, names: &Names<'_>) -> R<Lowered> {
    let obj = json.as_object().ok_or("policy is not a JSON object")?;
    let effect = match obj.get("effect").and_then(Value::as_str) {
        Some("permit") => Effect::Allow,
        Some("forbid") => Effect::Deny,
        other => return Err(format!("unknown effect {other:?}")),
    };
    let principal = principal_scope(field(obj, "principal")?, names)?;
    let actions = action_scope(field(obj, "action")?, names)?;
    let resource = resource_scope(field(obj, "resource")?, names)?;
    let mut conditions = Vec::new();
    let mut clauses = Vec::new();
    if let Some(list) = obj.get("conditions") {
        for c in list.as_array().ok_or("conditions are not a list")? {
            let c = c.as_object().ok_or("condition is not an object")?;
            let clause = match c.get("kind").and_then(Value::as_str) {
                Some("when") => Clause::When,
                Some("unless") => Clause::Unless,
                other => return Err(format!("unknown condition kind {other:?}")),
            };
            conditions.push((clause, clauses.len() as u32));
            clauses.push(expr(field(c, "body")?, names)?);
        }
    }
    Ok(Lowered {
        policy: FastPolicy {
            effect,
            principal,
            actions,
            resource,
            conditions,
        },
        clauses,
    })
}

fn field<'v>(obj: &'v Map<String, Value>, name: &str) -> R<&'v Value> {
    obj.get(name).ok_or_else(|| format!("missing `{name}`"))
}

fn op(scope: &Value) -> R<(&str, &Map<String, Value>)> {
    let obj = scope.as_object().ok_or("scope is not an object")?;
    let op = obj
        .get("op")
        .and_then(Value::as_str)
        .ok_or("scope has no op")?;
    Ok((op, obj))
}

fn entity(v: &Value, names: &Names<'_>) -> R<EntLit> {
    let obj = v.as_object().ok_or("entity reference is not an object")?;
    let obj = match obj.get("__entity") {
        Some(inner) => inner.as_object().ok_or("bad __entity")?,
        None => obj,
    };
    if obj.contains_key("slot") {
        return Err("template slots".into());
    }
    let ty_name = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or("entity has no type")?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .ok_or("entity has no id")?;
    let ty = Ty::parse(ty_name).ok_or_else(|| format!("entity type {ty_name}"))?;
    Ok(EntLit {
        ty,
        id: id.into(),
        group: (ty == Ty::Group)
            .then(|| names.groups.get(id).copied())
            .flatten(),
        role: (ty == Ty::Role)
            .then(|| names.roles.get(id).copied())
            .flatten(),
        action: (ty == Ty::Action)
            .then(|| Action::ALL.into_iter().find(|a| a.cedar_id() == id))
            .flatten(),
    })
}

fn principal_scope(v: &Value, names: &Names<'_>) -> R<PScope> {
    let (op, obj) = op(v)?;
    let in_target = |e: EntLit| -> PScope {
        match e.ty {
            Ty::User => PScope::User(e.id),
            Ty::Group => match e.group {
                Some(g) => PScope::Group(g),
                None => PScope::Never(format!("{e} is not a group of the directory")),
            },
            Ty::Role => match e.role {
                Some(r) => PScope::Role(r),
                None => PScope::Never(format!("{e} is not a role of the bindings")),
            },
            Ty::Source => PScope::Source(e.id),
            _ => PScope::Never(format!("a principal is never in {e}")),
        }
    };
    Ok(match op {
        "All" | "all" => PScope::All,
        "==" => {
            let e = entity(field(obj, "entity")?, names)?;
            match e.ty {
                Ty::User => PScope::User(e.id),
                _ => PScope::Never(format!("a principal is never {e}")),
            }
        }
        "in" => in_target(entity(field(obj, "entity")?, names)?),
        "is" => {
            let ty = obj.get("entity_type").and_then(Value::as_str);
            if ty != Some("User") {
                return Ok(PScope::Never(format!(
                    "a principal is a User, never a {}",
                    ty.unwrap_or("?")
                )));
            }
            match obj.get("in") {
                None => PScope::All,
                Some(inner) => in_target(entity(field(as_obj(inner)?, "entity")?, names)?),
            }
        }
        other => return Err(format!("principal scope op {other}")),
    })
}

fn as_obj(v: &Value) -> R<&Map<String, Value>> {
    v.as_object().ok_or_else(|| "expected an object".to_owned())
}

fn action_scope(v: &Value, names: &Names<'_>) -> R<u16> {
    let (op, obj) = op(v)?;
    let matches = |targets: &[EntLit], exact: bool| -> u16 {
        let mut mask = 0u16;
        for a in Action::ALL {
            let hit = targets.iter().any(|t| {
                t.ty == Ty::Action
                    && (&*t.id == a.cedar_id()
                        || (!exact
                            && names.action_ancestors[a.index()]
                                .iter()
                                .any(|g| **g == *t.id)))
            });
            if hit {
                mask |= 1 << a.index();
            }
        }
        mask
    };
    Ok(match op {
        "All" | "all" => ALL_ACTIONS,
        "==" => matches(&[entity(field(obj, "entity")?, names)?], true),
        "in" => {
            let targets = if let Some(list) = obj.get("entities") {
                list.as_array()
                    .ok_or("action entities are not a list")?
                    .iter()
                    .map(|e| entity(e, names))
                    .collect::<R<Vec<_>>>()?
            } else {
                vec![entity(field(obj, "entity")?, names)?]
            };
            matches(&targets, false)
        }
        other => return Err(format!("action scope op {other}")),
    })
}

/// Every action's bit.
pub const ALL_ACTIONS: u16 = ((1u32 << Action::ALL.len()) - 1) as u16;

fn resource_scope(v: &Value, names: &Names<'_>) -> R<RScope> {
    let (op, obj) = op(v)?;
    Ok(match op {
        "All" | "all" => RScope::All,
        "==" => RScope::Eq(entity(field(obj, "entity")?, names)?),
        "in" => RScope::In(entity(field(obj, "entity")?, names)?),
        "is" => {
            let ty_name = obj
                .get("entity_type")
                .and_then(Value::as_str)
                .ok_or("`is` without a type")?;
            let ty = Ty::parse(ty_name).ok_or_else(|| format!("entity type {ty_name}"))?;
            let within = match obj.get("in") {
                None => None,
                Some(inner) => Some(entity(field(as_obj(inner)?, "entity")?, names)?),
            };
            RScope::Is(ty, within)
        }
        other => return Err(format!("resource scope op {other}")),
    })
}

fn constant(v: &Value, names: &Names<'_>) -> R<Const> {
    Ok(match v {
        Value::Bool(b) => Const::Bool(*b),
        Value::Number(n) => Const::Long(n.as_i64().ok_or("a number that is not a Long")?),
        Value::String(s) => Const::Str(s.as_str().into()),
        Value::Array(items) => Const::Set(
            items
                .iter()
                .map(|i| constant(i, names))
                .collect::<R<Vec<_>>>()?
                .into(),
        ),
        Value::Object(o) if o.contains_key("__entity") => Const::Ent(entity(v, names)?),
        Value::Object(o) if o.contains_key("__extn") => {
            return Err("extension values (decimal, ip, datetime)".into());
        }
        Value::Object(_) => return Err("record literals".into()),
        Value::Null => return Err("null".into()),
    })
}

fn bin(obj: &Value, names: &Names<'_>) -> R<Box<(Expr, Expr)>> {
    let o = as_obj(obj)?;
    Ok(Box::new((
        expr(field(o, "left")?, names)?,
        expr(field(o, "right")?, names)?,
    )))
}

fn unary(obj: &Value, names: &Names<'_>) -> R<Box<Expr>> {
    Ok(Box::new(expr(field(as_obj(obj)?, "arg")?, names)?))
}

/// The attribute `name` of the variable `base`, if `base` is one of the request variables.
fn attribute(base: &Expr, name: &str, names: &Names<'_>, has: bool) -> R<Expr> {
    match base {
        Expr::Var(Var::Principal) => {
            let a = match name {
                "userName" => PAttr::UserName,
                "displayName" => PAttr::DisplayName,
                "email" => PAttr::Email,
                "externalId" => PAttr::ExternalId,
                "department" => PAttr::Department,
                "source" => PAttr::Source,
                "active" => PAttr::Active,
                other => match names.principal_attributes.get(other) {
                    Some(&i) => PAttr::Declared(i),
                    None => return Err(format!("principal attribute {other} is not declared")),
                },
            };
            debug_assert!(BUILT_IN_USER_ATTRIBUTES.len() == 7);
            Ok(if has { Expr::PHas(a) } else { Expr::PAttr(a) })
        }
        Expr::Var(Var::Resource) => {
            let a = match (name, names.labels.get(name)) {
                ("name", _) => RAttr::Name,
                ("provider", _) => RAttr::Provider,
                ("server", _) => RAttr::Server,
                ("uri", _) => RAttr::Uri,
                ("kind", _) => RAttr::Kind,
                (_, Some(&i)) => RAttr::Label(i),
                (other, None) => return Err(format!("resource attribute {other} is not declared")),
            };
            Ok(if has { Expr::RHas(a) } else { Expr::RAttr(a) })
        }
        Expr::Var(Var::Context) => {
            let a = match name {
                "route" => Some(CAttr::Route),
                "stream" => Some(CAttr::Stream),
                _ => None,
            };
            match (a, has) {
                (_, true) => Ok(Expr::CHas(a.is_some())),
                (Some(a), false) => Ok(Expr::CAttr(a)),
                (None, false) => Err(format!("context attribute {name}")),
            }
        }
        _ => Err("attributes of anything but principal, resource and context".into()),
    }
}

pub fn expr(v: &Value, names: &Names<'_>) -> R<Expr> {
    let obj = v.as_object().ok_or("expression is not an object")?;
    let mut entries = obj.iter();
    let (key, arg) = match (entries.next(), entries.next()) {
        (Some(kv), None) => kv,
        _ => return Err("expression object without exactly one key".into()),
    };
    let binop = |op| -> R<Expr> { Ok(Expr::Bin(op, bin(arg, names)?)) };
    Ok(match key.as_str() {
        "Value" => Expr::Const(constant(arg, names)?),
        "Var" => Expr::Var(match arg.as_str() {
            Some("principal") => Var::Principal,
            Some("action") => Var::Action,
            Some("resource") => Var::Resource,
            Some("context") => Var::Context,
            other => return Err(format!("variable {other:?}")),
        }),
        "!" => Expr::Not(unary(arg, names)?),
        "neg" => Expr::Neg(unary(arg, names)?),
        "isEmpty" => Expr::IsEmpty(unary(arg, names)?),
        "&&" => Expr::And(bin(arg, names)?),
        "||" => Expr::Or(bin(arg, names)?),
        "==" => binop(BinOp::Eq)?,
        "!=" => binop(BinOp::Ne)?,
        "<" => binop(BinOp::Lt)?,
        "<=" => binop(BinOp::Le)?,
        ">" => binop(BinOp::Gt)?,
        ">=" => binop(BinOp::Ge)?,
        "+" => binop(BinOp::Add)?,
        "-" => binop(BinOp::Sub)?,
        "*" => binop(BinOp::Mul)?,
        "in" => binop(BinOp::In)?,
        "contains" => binop(BinOp::Contains)?,
        "containsAll" => binop(BinOp::ContainsAll)?,
        "containsAny" => binop(BinOp::ContainsAny)?,
        "." | "has" => {
            let o = as_obj(arg)?;
            let base = expr(field(o, "left")?, names)?;
            let name = field(o, "attr")?
                .as_str()
                .ok_or("`has` over an attribute path")?;
            attribute(&base, name, names, key == "has")?
        }
        "like" => {
            let o = as_obj(arg)?;
            let left = expr(field(o, "left")?, names)?;
            let mut pattern = Vec::new();
            for p in field(o, "pattern")?
                .as_array()
                .ok_or("pattern is not a list")?
            {
                match p {
                    Value::String(s) if s == "Wildcard" => pattern.push(Pat::Star),
                    Value::Object(l) => pattern.push(Pat::Lit(
                        l.get("Literal")
                            .and_then(Value::as_str)
                            .ok_or("bad pattern element")?
                            .into(),
                    )),
                    _ => return Err("bad pattern element".into()),
                }
            }
            Expr::Like(Box::new(left), pattern.into())
        }
        "is" => {
            let o = as_obj(arg)?;
            let left = expr(field(o, "left")?, names)?;
            let ty_name = field(o, "entity_type")?
                .as_str()
                .ok_or("`is` type is not a string")?;
            let ty = Ty::parse(ty_name).ok_or_else(|| format!("entity type {ty_name}"))?;
            let within = match o.get("in") {
                Some(e) => Some(Box::new(expr(e, names)?)),
                None => None,
            };
            Expr::Is(Box::new(left), ty, within)
        }
        "if-then-else" => {
            let o = as_obj(arg)?;
            Expr::If(Box::new((
                expr(field(o, "if")?, names)?,
                expr(field(o, "then")?, names)?,
                expr(field(o, "else")?, names)?,
            )))
        }
        "Set" => {
            let items = arg.as_array().ok_or("set is not a list")?;
            let mut consts = Vec::with_capacity(items.len());
            for i in items {
                match expr(i, names)? {
                    Expr::Const(c) => consts.push(c),
                    _ => return Err("sets built from non-constant expressions".into()),
                }
            }
            Expr::Const(Const::Set(consts.into()))
        }
        "Record" => return Err("record literals".into()),
        "getTag" | "hasTag" => return Err("entity tags".into()),
        "Slot" => return Err("template slots".into()),
        ext => return Err(format!("extension function {ext}()")),
    })
}
