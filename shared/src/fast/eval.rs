//! Evaluating compiled expressions against one request, with Cedar's semantics: `&&`, `||`
//! and `if` short-circuit, `==` never errors, arithmetic overflow and missing attributes are
//! errors that make the policy not apply. Values borrow from the request, the user and the
//! policy, so evaluation never allocates.

use super::ir::*;
use crate::engine::principal_attribute;
use crate::request::{Action, Request, Resource};
use crate::snapshot::{AttrValue, AttributeDecl, Group, ResourceKind, User};
use std::collections::HashMap;
use std::sync::Arc;

/// An entity id, possibly in two parts joined by `/` (tools, resources and prompts are named
/// `<server>/<name>`), compared without building the joined string.
#[derive(Debug, Clone, Copy)]
pub enum Id<'a> {
    One(&'a str),
    Two(&'a str, &'a str),
}

impl<'a> Id<'a> {
    fn parts(self) -> [&'a str; 3] {
        match self {
            Id::One(s) => [s, "", ""],
            Id::Two(a, b) => [a, "/", b],
        }
    }

    fn len(self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    pub fn same(self, other: Id<'_>) -> bool {
        if let (Id::One(a), Id::One(b)) = (self, other) {
            return a == b;
        }
        self.len() == other.len()
            && self
                .parts()
                .iter()
                .flat_map(|p| p.bytes())
                .eq(other.parts().iter().flat_map(|p| p.bytes()))
    }

    pub fn eq_str(self, s: &str) -> bool {
        self.same(Id::One(s))
    }

    /// FNV-1a of the type and the joined id: equal for equal entities however they are split.
    pub fn key(self, ty: Ty) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (ty as u64);
        h = h.wrapping_mul(0x0100_0000_01b3);
        for b in self.parts().iter().flat_map(|p| p.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}

/// One labeled resource: its type, id, and each declared label's value (by declaration).
type Labeled = (Ty, Box<str>, Box<[Option<AttrValue>]>);

/// Resource labels, resolved per label so a lookup is one hash and one index.
#[derive(Debug, Default)]
pub struct LabelIndex {
    defaults: Vec<Option<AttrValue>>,
    /// key of (type, id) → entries with that key (collisions are compared by id).
    own: HashMap<u64, Vec<Labeled>, foldhash::fast::FixedState>,
}

impl LabelIndex {
    pub fn new(snapshot: &crate::snapshot::Snapshot) -> Self {
        let decls = &snapshot.resource_labels;
        let mut own: HashMap<u64, Vec<_>, _> = HashMap::default();
        for r in &snapshot.labeled_resources {
            let ty = Ty::of_resource(r.kind);
            let values = decls
                .iter()
                .map(|d| r.labels.get(&d.name).cloned())
                .collect();
            own.entry(Id::One(&r.id).key(ty))
                .or_default()
                .push((ty, r.id.as_str().into(), values));
        }
        Self {
            defaults: decls.iter().map(|d| d.default.clone()).collect(),
            own,
        }
    }

    fn own(&self, ty: Ty, id: Id<'_>, label: usize) -> Option<&AttrValue> {
        self.own
            .get(&id.key(ty))?
            .iter()
            .find(|(t, i, _)| *t == ty && id.eq_str(i))?
            .2
            .get(label)?
            .as_ref()
    }

    /// The label's value for a resource: its own, else its parent's, else the default.
    pub fn get(&self, cx: &Cx<'_>, label: u32) -> Option<&AttrValue> {
        let l = label as usize;
        self.own(cx.rty, cx.rid, l)
            .or_else(|| cx.parent.and_then(|(t, id)| self.own(t, Id::One(id), l)))
            .or_else(|| self.defaults.get(l)?.as_ref())
    }
}

/// Everything one decision reads, prepared once per request.
#[derive(Debug)]
pub struct Cx<'a> {
    pub user: &'a User,
    pub req: &'a Request,
    /// The principal's Cedar id.
    pub pid: &'a str,
    /// Every group the principal is in (sorted, unique, nesting included).
    pub groups: &'a [u32],
    /// The roles the principal holds for this request.
    pub roles: &'a [u32],
    pub all_groups: &'a [Arc<Group>],
    pub decls: &'a [AttributeDecl],
    pub labels: &'a LabelIndex,
    pub action_ancestors: &'a [Vec<String>],
    pub rkind: ResourceKind,
    pub rty: Ty,
    pub rid: Id<'a>,
    pub parent: Option<(Ty, &'a str)>,
}

/// The type, id and parent of a request's resource.
pub fn resource_identity(r: &Resource) -> (ResourceKind, Id<'_>, Option<(Ty, &str)>) {
    match r {
        Resource::Model { provider, name, .. } => (
            ResourceKind::Model,
            Id::One(name),
            Some((Ty::Provider, provider.as_str())),
        ),
        Resource::Provider { name, .. } => (ResourceKind::Provider, Id::One(name), None),
        Resource::McpServer { server } => (ResourceKind::McpServer, Id::One(server), None),
        Resource::McpTool { server, tool } => (
            ResourceKind::McpTool,
            Id::Two(server, tool),
            Some((Ty::McpServer, server.as_str())),
        ),
        Resource::McpResource { server, uri } => (
            ResourceKind::McpResource,
            Id::Two(server, uri),
            Some((Ty::McpServer, server.as_str())),
        ),
        Resource::McpPrompt { server, name } => (
            ResourceKind::McpPrompt,
            Id::Two(server, name),
            Some((Ty::McpServer, server.as_str())),
        ),
        Resource::LlmTool { provider, name, .. } => (
            ResourceKind::LlmTool,
            Id::One(name),
            Some((Ty::Provider, provider.as_str())),
        ),
    }
}

/// Why an expression could not be evaluated (Cedar then skips the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Overflow,
    NoAttribute(&'static str),
    Type(&'static str),
    BadDecimal,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Overflow => f.write_str("integer overflow"),
            Fault::NoAttribute(on) => write!(f, "{on} does not have that attribute"),
            Fault::Type(what) => write!(f, "type error: {what}"),
            Fault::BadDecimal => f.write_str("malformed decimal value"),
        }
    }
}

/// An entity during evaluation.
#[derive(Debug, Clone, Copy)]
pub enum E<'a> {
    Principal,
    Resource,
    /// The resource's provider or server.
    Parent,
    Action(Action),
    Lit(&'a EntLit),
}

#[derive(Debug, Clone, Copy)]
pub enum S<'a> {
    Consts(&'a [Const]),
    Attrs(&'a [AttrValue]),
}

impl<'a> S<'a> {
    fn len(self) -> usize {
        match self {
            S::Consts(c) => c.len(),
            S::Attrs(a) => a.len(),
        }
    }

    fn get(self, i: usize) -> Result<V<'a>, Fault> {
        match self {
            S::Consts(c) => Ok(constant(&c[i])),
            S::Attrs(a) => attr_value(&a[i]),
        }
    }
}

/// A value during evaluation.
#[derive(Debug, Clone, Copy)]
pub enum V<'a> {
    Bool(bool),
    Long(i64),
    Str(&'a str),
    /// A decimal, scaled by 10⁴.
    Dec(i64),
    Ent(E<'a>),
    Set(S<'a>),
}

pub fn constant(c: &Const) -> V<'_> {
    match c {
        Const::Bool(b) => V::Bool(*b),
        Const::Long(n) => V::Long(*n),
        Const::Str(s) => V::Str(s),
        Const::Ent(e) => V::Ent(E::Lit(e)),
        Const::Set(items) => V::Set(S::Consts(items)),
    }
}

fn attr_value(a: &AttrValue) -> Result<V<'_>, Fault> {
    Ok(match a {
        AttrValue::String(s) => V::Str(s),
        AttrValue::Long(n) => V::Long(*n),
        AttrValue::Bool(b) => V::Bool(*b),
        AttrValue::Decimal(d) => V::Dec(parse_decimal(d).ok_or(Fault::BadDecimal)?),
        AttrValue::Set(items) => V::Set(S::Attrs(items)),
    })
}

/// Cedar's decimal: an optional `-`, digits, `.`, one to four digits; scaled by 10⁴.
pub fn parse_decimal(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = body.split_once('.')?;
    if whole.is_empty()
        || frac.is_empty()
        || frac.len() > 4
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut v: i64 = 0;
    for b in whole.bytes() {
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    let mut f: i64 = 0;
    for b in frac.bytes() {
        f = f * 10 + i64::from(b - b'0');
    }
    for _ in frac.len()..4 {
        f *= 10;
    }
    let scaled = v.checked_mul(10_000)?;
    if neg {
        scaled.checked_neg()?.checked_sub(f)
    } else {
        scaled.checked_add(f)
    }
}

impl<'a> Cx<'a> {
    fn key(&self, e: E<'a>) -> (Ty, Id<'a>) {
        match e {
            E::Principal => (Ty::User, Id::One(self.pid)),
            E::Resource => (self.rty, self.rid),
            E::Parent => {
                let (t, id) = self.parent.unwrap_or((self.rty, ""));
                (t, Id::One(id))
            }
            E::Action(a) => (Ty::Action, Id::One(a.cedar_id())),
            E::Lit(l) => (l.ty, Id::One(&l.id)),
        }
    }

    fn ent_eq(&self, a: E<'a>, b: E<'a>) -> bool {
        let (ta, ia) = self.key(a);
        let (tb, ib) = self.key(b);
        ta == tb && ia.same(ib)
    }

    /// A literal that names the principal, the resource or its parent, or a concrete action,
    /// stands for that entity (its ancestors are that entity's).
    fn canon(&self, e: E<'a>) -> E<'a> {
        let E::Lit(l) = e else { return e };
        if let Some(a) = l.action {
            return E::Action(a);
        }
        for candidate in [E::Principal, E::Resource] {
            if self.ent_eq(e, candidate) {
                return candidate;
            }
        }
        if self.parent.is_some() && self.ent_eq(e, E::Parent) {
            return E::Parent;
        }
        e
    }

    /// Cedar's `in` for two entities: equal, or `r` is an ancestor of `l`.
    pub fn ent_in(&self, l: E<'a>, r: E<'a>) -> bool {
        if self.ent_eq(l, r) {
            return true;
        }
        let r = self.canon(r);
        match (self.canon(l), r) {
            (E::Principal, E::Lit(t)) => match t.ty {
                Ty::Group => t
                    .group
                    .is_some_and(|g| self.groups.binary_search(&g).is_ok()),
                Ty::Role => t.role.is_some_and(|x| self.roles.contains(&x)),
                Ty::Source => crate::engine::sources(self.user).any(|s| s == &*t.id),
                _ => false,
            },
            (E::Resource, _) => self.parent.is_some() && self.ent_eq(E::Parent, r),
            (E::Action(a), E::Lit(t)) => {
                t.ty == Ty::Action
                    && self.action_ancestors[a.index()]
                        .iter()
                        .any(|g| **g == *t.id)
            }
            (E::Lit(g), E::Lit(t)) if g.ty == Ty::Group && t.ty == Ty::Group => {
                match (g.group, t.group) {
                    (Some(g), Some(t)) => self.all_groups[g as usize].ancestors.contains(&t),
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// A principal attribute's value, `None` when the principal does not have it.
    fn principal_attr(&self, a: PAttr) -> Result<Option<V<'a>>, Fault> {
        let u = self.user;
        let s = |v: &'a Option<String>| V::Str(v.as_deref().unwrap_or(""));
        Ok(Some(match a {
            PAttr::UserName => V::Str(&u.user_name),
            PAttr::DisplayName => V::Str(&u.display_name),
            PAttr::Email => s(&u.email),
            PAttr::ExternalId => s(&u.external_id),
            PAttr::Department => s(&u.department),
            PAttr::Source => V::Str(&u.source),
            PAttr::Active => V::Bool(u.active),
            PAttr::Declared(i) => {
                let value = self
                    .decls
                    .get(i as usize)
                    .and_then(|d| principal_attribute(d, i, u, self.req));
                match value {
                    Some(v) => attr_value(v)?,
                    None => return Ok(None),
                }
            }
        }))
    }

    fn resource_attr(&self, a: RAttr) -> Result<Option<V<'a>>, Fault> {
        let r = &self.req.resource;
        Ok(match (a, r) {
            (RAttr::Name, Resource::Model { name, .. })
            | (RAttr::Name, Resource::McpTool { tool: name, .. })
            | (RAttr::Name, Resource::McpPrompt { name, .. })
            | (RAttr::Name, Resource::LlmTool { name, .. }) => Some(V::Str(name)),
            (RAttr::Provider, Resource::Model { provider, .. })
            | (RAttr::Provider, Resource::LlmTool { provider, .. }) => Some(V::Str(provider)),
            (RAttr::Kind, Resource::Provider { kind, .. }) => Some(V::Str(kind)),
            (RAttr::Server, Resource::McpTool { server, .. })
            | (RAttr::Server, Resource::McpResource { server, .. })
            | (RAttr::Server, Resource::McpPrompt { server, .. }) => Some(V::Str(server)),
            (RAttr::Uri, Resource::McpResource { uri, .. }) => Some(V::Str(uri)),
            (RAttr::Label(i), _) => match self.labels.get(self, i) {
                Some(v) => Some(attr_value(v)?),
                None => None,
            },
            _ => None,
        })
    }

    fn veq(&self, a: V<'a>, b: V<'a>) -> Result<bool, Fault> {
        Ok(match (a, b) {
            (V::Bool(x), V::Bool(y)) => x == y,
            (V::Long(x), V::Long(y)) => x == y,
            (V::Str(x), V::Str(y)) => x == y,
            (V::Dec(x), V::Dec(y)) => x == y,
            (V::Ent(x), V::Ent(y)) => self.ent_eq(x, y),
            (V::Set(x), V::Set(y)) => self.subset(x, y)? && self.subset(y, x)?,
            _ => false,
        })
    }

    fn member(&self, set: S<'a>, v: V<'a>) -> Result<bool, Fault> {
        for i in 0..set.len() {
            if self.veq(set.get(i)?, v)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn subset(&self, small: S<'a>, big: S<'a>) -> Result<bool, Fault> {
        for i in 0..small.len() {
            if !self.member(big, small.get(i)?)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub fn truth(&self, e: &'a Expr) -> Result<bool, Fault> {
        match self.eval(e)? {
            V::Bool(b) => Ok(b),
            _ => Err(Fault::Type("expected a boolean")),
        }
    }

    pub fn eval(&self, e: &'a Expr) -> Result<V<'a>, Fault> {
        Ok(match e {
            Expr::Const(c) => constant(c),
            Expr::Var(Var::Principal) => V::Ent(E::Principal),
            Expr::Var(Var::Resource) => V::Ent(E::Resource),
            Expr::Var(Var::Action) => V::Ent(E::Action(self.req.action)),
            Expr::Var(Var::Context) => return Err(Fault::Type("context is a record")),
            Expr::PAttr(a) => self
                .principal_attr(*a)?
                .ok_or(Fault::NoAttribute("the principal"))?,
            Expr::PHas(a) => V::Bool(self.principal_attr(*a)?.is_some()),
            Expr::RAttr(a) => self
                .resource_attr(*a)?
                .ok_or(Fault::NoAttribute("the resource"))?,
            Expr::RHas(a) => V::Bool(self.resource_attr(*a)?.is_some()),
            Expr::CAttr(CAttr::Route) => V::Str(&self.req.context.route),
            Expr::CAttr(CAttr::Stream) => V::Bool(self.req.context.stream),
            Expr::CHas(b) => V::Bool(*b),
            Expr::Not(x) => V::Bool(!self.truth(x)?),
            Expr::Neg(x) => match self.eval(x)? {
                V::Long(n) => V::Long(n.checked_neg().ok_or(Fault::Overflow)?),
                _ => return Err(Fault::Type("negating a non-Long")),
            },
            Expr::And(p) => V::Bool(self.truth(&p.0)? && self.truth(&p.1)?),
            Expr::Or(p) => V::Bool(self.truth(&p.0)? || self.truth(&p.1)?),
            Expr::If(t) => {
                if self.truth(&t.0)? {
                    self.eval(&t.1)?
                } else {
                    self.eval(&t.2)?
                }
            }
            Expr::IsEmpty(x) => match self.eval(x)? {
                V::Set(s) => V::Bool(s.len() == 0),
                _ => return Err(Fault::Type("isEmpty on a non-set")),
            },
            Expr::Like(x, pattern) => match self.eval(x)? {
                V::Str(s) => V::Bool(like(s, pattern)),
                _ => return Err(Fault::Type("like on a non-string")),
            },
            Expr::Is(x, ty, within) => match self.eval(x)? {
                V::Ent(ent) => {
                    let is = self.key(ent).0 == *ty;
                    match within {
                        Some(w) if is => V::Bool(self.in_value(ent, self.eval(w)?)?),
                        _ => V::Bool(is),
                    }
                }
                _ => return Err(Fault::Type("`is` on a non-entity")),
            },
            Expr::Bin(op, p) => self.binary(*op, &p.0, &p.1)?,
        })
    }

    fn in_value(&self, l: E<'a>, r: V<'a>) -> Result<bool, Fault> {
        match r {
            V::Ent(r) => Ok(self.ent_in(l, r)),
            V::Set(s) => {
                for i in 0..s.len() {
                    match s.get(i)? {
                        V::Ent(r) if self.ent_in(l, r) => return Ok(true),
                        V::Ent(_) => {}
                        _ => return Err(Fault::Type("`in` a set of non-entities")),
                    }
                }
                Ok(false)
            }
            _ => Err(Fault::Type("`in` a non-entity")),
        }
    }

    fn binary(&self, op: BinOp, l: &'a Expr, r: &'a Expr) -> Result<V<'a>, Fault> {
        let (a, b) = (self.eval(l)?, self.eval(r)?);
        let longs = || match (a, b) {
            (V::Long(x), V::Long(y)) => Ok((x, y)),
            _ => Err(Fault::Type("arithmetic on non-Longs")),
        };
        let ordered = || match (a, b) {
            (V::Long(x), V::Long(y)) => Ok(x.cmp(&y)),
            _ => Err(Fault::Type("comparing values that are not both Long")),
        };
        let set = |v: V<'a>| match v {
            V::Set(s) => Ok(s),
            _ => Err(Fault::Type("a set operation on a non-set")),
        };
        use std::cmp::Ordering::*;
        Ok(match op {
            BinOp::Eq => V::Bool(self.veq(a, b)?),
            BinOp::Ne => V::Bool(!self.veq(a, b)?),
            BinOp::Lt => V::Bool(ordered()? == Less),
            BinOp::Le => V::Bool(ordered()? != Greater),
            BinOp::Gt => V::Bool(ordered()? == Greater),
            BinOp::Ge => V::Bool(ordered()? != Less),
            BinOp::Add => {
                let (x, y) = longs()?;
                V::Long(x.checked_add(y).ok_or(Fault::Overflow)?)
            }
            BinOp::Sub => {
                let (x, y) = longs()?;
                V::Long(x.checked_sub(y).ok_or(Fault::Overflow)?)
            }
            BinOp::Mul => {
                let (x, y) = longs()?;
                V::Long(x.checked_mul(y).ok_or(Fault::Overflow)?)
            }
            BinOp::In => match a {
                V::Ent(l) => V::Bool(self.in_value(l, b)?),
                _ => return Err(Fault::Type("`in` on a non-entity")),
            },
            BinOp::Contains => V::Bool(self.member(set(a)?, b)?),
            BinOp::ContainsAll => V::Bool(self.subset(set(b)?, set(a)?)?),
            BinOp::ContainsAny => {
                let (big, other) = (set(a)?, set(b)?);
                let mut any = false;
                for i in 0..other.len() {
                    if self.member(big, other.get(i)?)? {
                        any = true;
                        break;
                    }
                }
                V::Bool(any)
            }
        })
    }

    /// Whether the request's resource satisfies a resource scope. The resource's only
    /// ancestor is its parent, so this is `ent_in` without the general machinery.
    pub fn resource_in_scope(&self, scope: &RScope) -> bool {
        let is = |t: &EntLit| t.ty == self.rty && self.rid.eq_str(&t.id);
        let within = |t: &EntLit| {
            is(t)
                || self
                    .parent
                    .is_some_and(|(pt, pid)| t.ty == pt && pid == &*t.id)
        };
        match scope {
            RScope::All => true,
            RScope::Eq(t) => is(t),
            RScope::In(t) => within(t),
            RScope::Is(ty, target) => self.rty == *ty && target.as_ref().is_none_or(within),
        }
    }

    /// Whether the principal satisfies a principal scope.
    pub fn principal_in_scope(&self, scope: &PScope) -> bool {
        match scope {
            PScope::All => true,
            PScope::User(id) => self.pid == &**id,
            PScope::Group(g) => self.groups.binary_search(g).is_ok(),
            PScope::Role(r) => self.roles.contains(r),
            PScope::Source(s) => crate::engine::sources(self.user).any(|x| x == &**s),
            PScope::Never(_) => false,
        }
    }
}

/// Cedar's `like`: `*` matches any run of characters, everything else itself. Matching on
/// bytes is matching on characters, since literals are whole UTF-8 sequences.
pub fn like(s: &str, pattern: &[Pat]) -> bool {
    let s = s.as_bytes();
    // Greedy with backtracking to the last star: linear for patterns without stars between
    // repeated literals, and never worse than quadratic.
    let (mut si, mut pi) = (0usize, 0usize);
    let mut lit_off = 0usize; // offset within the current literal
    let mut star: Option<(usize, usize)> = None; // (pattern index after star, s index)
    loop {
        if pi == pattern.len() {
            if si == s.len() {
                return true;
            }
        } else {
            match &pattern[pi] {
                Pat::Star => {
                    star = Some((pi + 1, si));
                    pi += 1;
                    lit_off = 0;
                    continue;
                }
                Pat::Lit(l) => {
                    let l = l.as_bytes();
                    if lit_off == l.len() {
                        pi += 1;
                        lit_off = 0;
                        continue;
                    }
                    if si < s.len() && s[si] == l[lit_off] {
                        si += 1;
                        lit_off += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((after, start)) if start < s.len() => {
                star = Some((after, start + 1));
                pi = after;
                si = start + 1;
                lit_off = 0;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(spec: &str) -> Vec<Pat> {
        let mut out = Vec::new();
        for (i, part) in spec.split('*').enumerate() {
            if i > 0 {
                out.push(Pat::Star);
            }
            if !part.is_empty() {
                out.push(Pat::Lit(part.into()));
            }
        }
        out
    }

    #[test]
    fn like_matches_cedar_globs() {
        for (s, p, want) in [
            ("gpt-4o", "gpt-*", true),
            ("gpt-4o", "*4o", true),
            ("gpt-4o", "*-*", true),
            ("gpt-4o", "gpt", false),
            ("", "*", true),
            ("", "", true),
            ("a", "", false),
            ("aaa", "a*a*a", true),
            ("aa", "a*a*a", false),
            ("abcabd", "*abd", true),
            ("abcabc", "*abd", false),
            ("héllo", "h*o", true),
            ("héllo", "*é*", true),
        ] {
            assert_eq!(like(s, &pat(p)), want, "{s:?} like {p:?}");
        }
    }

    #[test]
    fn split_ids_equal_joined_ones() {
        assert!(Id::Two("srv", "t1").eq_str("srv/t1"));
        assert!(!Id::Two("srv", "t1").eq_str("srv/t"));
        assert!(!Id::Two("sr", "vt1").eq_str("srv/t1"));
        assert!(Id::Two("a/b", "c").same(Id::Two("a", "b/c")));
        assert_eq!(
            Id::Two("srv", "t1").key(Ty::McpTool),
            Id::One("srv/t1").key(Ty::McpTool)
        );
        assert_ne!(Id::One("x").key(Ty::Model), Id::One("x").key(Ty::Provider));
    }

    #[test]
    fn decimals_parse_as_cedar_writes_them() {
        assert_eq!(parse_decimal("1.5"), Some(15_000));
        assert_eq!(parse_decimal("-0.0001"), Some(-1));
        assert_eq!(parse_decimal("12.3456"), Some(123_456));
        for bad in ["1", ".5", "1.", "1.23456", "a.b", "--1.0"] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
    }
}
