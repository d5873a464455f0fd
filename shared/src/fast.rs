//! The compiled decision path: a snapshot's Cedar policies lowered into typed, indexed form,
//! so that a decision looks only at the policies that can apply to the request.
//!
//! How a decision runs:
//!
//! 1. The request's action selects one [`ActionIndex`]. Its buckets are keyed by what a
//!    policy's principal scope names: nothing, a group, a role, a source or a user. The
//!    principal's groups (nesting included), roles, sources and id select the buckets to
//!    visit; within a bucket, policies whose resource scope names an entity are keyed by it,
//!    so only those naming the resource or its parent are looked at.
//! 2. Each candidate's resource scope and conditions are evaluated ([`eval`]) on values
//!    borrowed from the request, the user and the policy: nothing is allocated.
//! 3. Cedar's combination: any satisfied `forbid` denies; otherwise any satisfied `permit`
//!    allows; otherwise the default deny. A policy whose evaluation errors does not apply and
//!    is reported.
//!
//! Policies using constructs outside the supported subset (extension functions such as
//! `decimal` or `ip`, records, tags, attributes of entities other than principal, resource and
//! context, `in` on a user literal) are left to `cedar-policy`: the engine evaluates them with
//! its authorizer and merges the result, and [`Compiled::fallback`] lists them with the
//! reason.

pub mod eval;
pub mod ir;
pub mod lower;

use crate::engine::Effect;
use crate::request::{Action, Request};
use crate::snapshot::{Group, Snapshot, User};
use eval::{Cx, Fault, Id, LabelIndex, resource_identity};
use ir::*;
use serde::Serialize;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::Arc;

type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Policies under one principal key, split by resource key.
#[derive(Debug, Default)]
struct Bucket {
    /// Policies whose resource scope names no entity (`resource`, `resource is T`).
    any: Vec<u32>,
    /// Policies whose resource scope names an entity, by that entity's key.
    by_resource: Map<u64, Vec<u32>>,
}

/// The policies that can apply to one action, by principal key.
#[derive(Debug, Default)]
struct ActionIndex {
    any: Bucket,
    groups: Map<u32, Bucket>,
    roles: Map<u32, Bucket>,
    sources: Map<Box<str>, Bucket>,
    users: Map<Box<str>, Bucket>,
}

/// Which parts of a request the policy set reads, per action: what a data plane must extract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// Actions (bit per [`Action::index`]) for which some policy looks at the resource: its
    /// scope names one, or a condition reads `resource`.
    pub resource: u16,
    /// Actions for which some policy reads `context.stream`.
    pub stream: u16,
    /// Actions for which some policy reads `context.route`.
    pub route: u16,
    /// Actions for which some policy reads principal attributes.
    pub principal_attributes: u16,
}

impl Needs {
    pub fn resource(&self, a: Action) -> bool {
        self.resource & (1 << a.index()) != 0
    }

    pub fn stream(&self, a: Action) -> bool {
        self.stream & (1 << a.index()) != 0
    }

    /// The actions in a mask, by Cedar id.
    pub fn names(mask: u16) -> Vec<&'static str> {
        Action::ALL
            .into_iter()
            .filter(|a| mask & (1 << a.index()) != 0)
            .map(Action::cedar_id)
            .collect()
    }
}

/// A policy left to `cedar-policy`, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FallbackPolicy {
    pub id: String,
    pub reason: String,
}

/// A snapshot's policies in compiled form.
#[derive(Debug)]
pub struct Compiled {
    /// Every policy's id, in file order; indices below refer to this list.
    pub ids: Arc<[Arc<str>]>,
    by_id: HashMap<Arc<str>, u32>,
    /// The compiled form of each policy, `None` for those left to Cedar.
    policies: Vec<Option<FastPolicy>>,
    index: Vec<ActionIndex>,
    /// Actions some fallback policy may apply to.
    pub fallback_actions: u16,
    pub fallback: Vec<FallbackPolicy>,
    pub needs: Needs,
    /// Every distinct clause, once; policies refer to them by index.
    conds: Vec<Expr>,
    labels: LabelIndex,
    pub action_ancestors: Vec<Vec<String>>,
}

/// A policy's verdict for one request, as [`Compiled::explain`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Scope and conditions hold: the policy applies.
    Satisfied,
    /// The principal, action or resource is outside the policy's scope.
    OutOfScope {
        part: &'static str,
        detail: String,
    },
    /// A `when` clause was false or an `unless` clause true (1-based, in source order).
    ConditionFailed {
        clause: usize,
        kind: &'static str,
    },
    /// Evaluating the policy failed; Cedar skips such a policy.
    Error {
        message: String,
    },
    /// Decided by `cedar-policy` (the policy uses constructs the compiled path leaves to it).
    CedarSatisfied,
    CedarNotSatisfied,
}

/// The outcome of the compiled path: indices of satisfied policies and of failed ones.
#[derive(Debug, Default)]
pub struct Outcome {
    pub permits: SmallVec<[u32; 8]>,
    pub forbids: SmallVec<[u32; 4]>,
    pub errors: Vec<(u32, Fault)>,
}

/// Reusable per-decision space: the principal's groups and roles, and the clauses already
/// evaluated in this decision (by generation, so nothing is cleared between decisions).
#[derive(Debug, Default)]
pub struct Scratch {
    groups: SmallVec<[u32; 64]>,
    roles: SmallVec<[u32; 8]>,
    memo: Vec<(u32, Result<bool, Fault>)>,
    generation: u32,
}

impl Scratch {
    /// Starts a decision over `n` distinct clauses.
    fn begin(&mut self, n: usize) {
        if self.memo.len() < n {
            self.memo.resize(n, (0, Ok(false)));
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.memo.iter_mut().for_each(|m| m.0 = 0);
            self.generation = 1;
        }
    }
}

/// Clause results already known in this decision.
struct Memo<'m> {
    slots: &'m mut [(u32, Result<bool, Fault>)],
    generation: u32,
}

impl Compiled {
    /// Lowers every policy of `set` (ids in `ids` order) against `snapshot`'s names.
    pub fn new(
        snapshot: &Snapshot,
        set: &cedar_policy::PolicySet,
        ids: &[String],
        action_ancestors: Vec<Vec<String>>,
    ) -> Self {
        let group_names: Vec<String> = snapshot
            .groups
            .iter()
            .map(|g| crate::engine::group_id(&g.source, &g.display_name))
            .collect();
        let names = lower::Names {
            groups: group_names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i as u32))
                .collect(),
            roles: snapshot
                .roles
                .iter()
                .enumerate()
                .map(|(i, r)| (r.as_str(), i as u32))
                .collect(),
            principal_attributes: snapshot
                .principal_attributes
                .iter()
                .enumerate()
                .map(|(i, d)| (d.name.as_str(), i as u32))
                .collect(),
            labels: snapshot
                .resource_labels
                .iter()
                .enumerate()
                .map(|(i, d)| (d.name.as_str(), i as u32))
                .collect(),
            action_ancestors: &action_ancestors,
        };
        let table: Arc<[Arc<str>]> = ids.iter().map(|i| Arc::from(i.as_str())).collect();
        let mut out = Self {
            by_id: table
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i as u32))
                .collect(),
            ids: table,
            policies: Vec::with_capacity(ids.len()),
            index: (0..Action::ALL.len())
                .map(|_| ActionIndex::default())
                .collect(),
            fallback_actions: 0,
            fallback: Vec::new(),
            needs: Needs::default(),
            conds: Vec::new(),
            labels: LabelIndex::new(snapshot),
            action_ancestors: Vec::new(),
        };
        let mut interned: HashMap<Expr, u32> = HashMap::new();
        for (i, id) in ids.iter().enumerate() {
            let json = set
                .policy(&cedar_policy::PolicyId::new(id))
                .ok_or_else(|| "not in the policy set".to_owned())
                .and_then(|p| p.to_json().map_err(|e| e.to_string()));
            let lowered = json.as_ref().map_err(Clone::clone).and_then(|j| {
                let l = lower::policy(j, &names)?;
                check_supported(&l.clauses)?;
                Ok(l)
            });
            match lowered {
                Ok(lower::Lowered {
                    policy: mut p,
                    clauses,
                }) => {
                    out.note_needs(&p, &clauses);
                    for (c, e) in p.conditions.iter_mut().zip(clauses) {
                        let next = out.conds.len() as u32;
                        c.1 = *interned.entry(e.clone()).or_insert_with(|| {
                            out.conds.push(e);
                            next
                        });
                    }
                    out.insert(i as u32, &p);
                    out.policies.push(Some(p));
                }
                Err(reason) => {
                    out.fallback.push(FallbackPolicy {
                        id: id.clone(),
                        reason,
                    });
                    // The scope alone tells which actions the policy may apply to.
                    let actions = json
                        .as_ref()
                        .ok()
                        .and_then(|j| scope_actions(j, &names))
                        .unwrap_or(lower::ALL_ACTIONS);
                    out.fallback_actions |= actions;
                    out.needs.resource |= actions;
                    out.needs.stream |= actions;
                    out.needs.route |= actions;
                    out.needs.principal_attributes |= actions;
                    out.policies.push(None);
                }
            }
        }
        out.action_ancestors = action_ancestors;
        out
    }

    fn note_needs(&mut self, p: &FastPolicy, clauses: &[Expr]) {
        let (mut resource, mut stream, mut route, mut attrs) =
            (p.resource != RScope::All, false, false, false);
        for c in clauses {
            c.walk(&mut |e| match e {
                Expr::Var(Var::Resource) | Expr::RAttr(_) | Expr::RHas(_) => resource = true,
                Expr::CAttr(CAttr::Stream) => stream = true,
                Expr::CAttr(CAttr::Route) => route = true,
                Expr::PAttr(_) | Expr::PHas(_) => attrs = true,
                _ => {}
            });
        }
        let set = |flag: bool, mask: &mut u16| {
            if flag {
                *mask |= p.actions;
            }
        };
        set(resource, &mut self.needs.resource);
        set(stream, &mut self.needs.stream);
        set(route, &mut self.needs.route);
        set(attrs, &mut self.needs.principal_attributes);
    }

    fn insert(&mut self, i: u32, p: &FastPolicy) {
        let resource_key = p.resource.target().map(|t| Id::One(&t.id).key(t.ty));
        for a in Action::ALL {
            if p.actions & (1 << a.index()) == 0 {
                continue;
            }
            let ai = &mut self.index[a.index()];
            let bucket = match &p.principal {
                PScope::All => &mut ai.any,
                PScope::User(u) => ai.users.entry(u.clone()).or_default(),
                PScope::Group(g) => ai.groups.entry(*g).or_default(),
                PScope::Role(r) => ai.roles.entry(*r).or_default(),
                PScope::Source(s) => ai.sources.entry(s.clone()).or_default(),
                PScope::Never(_) => continue,
            };
            match resource_key {
                Some(k) => bucket.by_resource.entry(k).or_default().push(i),
                None => bucket.any.push(i),
            }
        }
    }

    /// The index of the policy with this id.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// The number of policies decided on the compiled path.
    pub fn compiled_count(&self) -> usize {
        self.policies.iter().filter(|p| p.is_some()).count()
    }

    /// Whether some fallback policy may apply to `action`.
    pub fn needs_cedar(&self, action: Action) -> bool {
        self.fallback_actions & (1 << action.index()) != 0
    }

    /// Fills `scratch` with the principal's groups (nesting included) and held roles.
    #[allow(clippy::too_many_arguments)]
    fn prepare<'a>(
        &'a self,
        engine: &'a crate::engine::Engine,
        user: &'a User,
        request: &'a Request,
        groups: &'a mut SmallVec<[u32; 64]>,
        roles: &'a mut SmallVec<[u32; 8]>,
    ) -> Cx<'a> {
        let groups_all: &'a [Arc<Group>] = engine.groups_slice();
        groups.clear();
        groups.extend_from_slice(&user.groups);
        let mut extra = false;
        for &g in &user.groups {
            if let Some(group) = groups_all.get(g as usize) {
                for a in &group.ancestors {
                    if user.groups.binary_search(a).is_err() {
                        groups.push(*a);
                        extra = true;
                    }
                }
            }
        }
        if extra || !user.groups.is_sorted() {
            groups.sort_unstable();
            groups.dedup();
        }
        roles.clear();
        roles.extend(engine.roles_holding(user, request));
        let (rkind, rid, parent) = resource_identity(&request.resource);
        Cx {
            user,
            req: request,
            pid: user
                .linked
                .as_ref()
                .map_or(user.id.as_str(), |l| l.principal_id.as_str()),
            groups,
            roles,
            all_groups: groups_all,
            decls: engine.principal_attributes(),
            labels: &self.labels,
            action_ancestors: &self.action_ancestors,
            rkind,
            rty: Ty::of_resource(rkind),
            rid,
            parent,
        }
    }

    /// Decides the compiled policies for one request into `out` (cleared first).
    pub fn decide(
        &self,
        engine: &crate::engine::Engine,
        user: &User,
        request: &Request,
        scratch: &mut Scratch,
        out: &mut Outcome,
    ) {
        out.permits.clear();
        out.forbids.clear();
        out.errors.clear();
        scratch.begin(self.conds.len());
        let Scratch {
            groups,
            roles,
            memo,
            generation,
        } = scratch;
        let mut memo = Memo {
            slots: memo,
            generation: *generation,
        };
        let cx = self.prepare(engine, user, request, groups, roles);
        let ai = &self.index[request.action.index()];
        let rkey = cx.rid.key(cx.rty);
        let pkey = cx.parent.map(|(t, id)| Id::One(id).key(t));
        let mut visit = |b: &Bucket, out: &mut Outcome| {
            for &p in &b.any {
                self.run(&cx, &mut memo, p, out);
            }
            if b.by_resource.is_empty() {
                return;
            }
            if let Some(list) = b.by_resource.get(&rkey) {
                for &p in list {
                    self.run(&cx, &mut memo, p, out);
                }
            }
            if let Some(k) = pkey.filter(|k| *k != rkey)
                && let Some(list) = b.by_resource.get(&k)
            {
                for &p in list {
                    self.run(&cx, &mut memo, p, out);
                }
            }
        };
        visit(&ai.any, out);
        if !ai.groups.is_empty() {
            for g in cx.groups {
                if let Some(b) = ai.groups.get(g) {
                    visit(b, out);
                }
            }
        }
        if !ai.roles.is_empty() {
            for r in cx.roles {
                if let Some(b) = ai.roles.get(r) {
                    visit(b, out);
                }
            }
        }
        if !ai.sources.is_empty() {
            let mut last: Option<&str> = None;
            for s in crate::engine::sources(user) {
                if last == Some(s) {
                    continue;
                }
                last = Some(s);
                if let Some(b) = ai.sources.get(s) {
                    visit(b, out);
                }
            }
        }
        if let Some(b) = ai.users.get(cx.pid) {
            visit(b, out);
        }
    }

    /// Evaluates one candidate (its principal and action scopes already hold).
    fn run(&self, cx: &Cx<'_>, memo: &mut Memo<'_>, i: u32, out: &mut Outcome) {
        let Some(p) = &self.policies[i as usize] else {
            return;
        };
        if !cx.resource_in_scope(&p.resource) {
            return;
        }
        match self.conditions(cx, p, Some(memo)) {
            Ok(None) => match p.effect {
                Effect::Allow => out.permits.push(i),
                Effect::Deny => out.forbids.push(i),
            },
            Ok(Some(_)) => {}
            Err(f) => out.errors.push((i, f)),
        }
    }

    /// Every compiled policy's verdict for this request, evaluated one by one without the
    /// index (fallback policies are `None`: the engine asks Cedar about them).
    pub fn explain(
        &self,
        engine: &crate::engine::Engine,
        user: &User,
        request: &Request,
    ) -> Vec<Option<Verdict>> {
        let (mut groups, mut roles) = (SmallVec::new(), SmallVec::new());
        let cx = self.prepare(engine, user, request, &mut groups, &mut roles);
        self.policies
            .iter()
            .map(|p| {
                let p = p.as_ref()?;
                Some(if !cx.principal_in_scope(&p.principal) {
                    OutOfScope {
                        part: "principal",
                        detail: match &p.principal {
                            PScope::Never(why) => why.clone(),
                            PScope::User(u) => format!("the principal is not User::{u:?}"),
                            PScope::Group(g) => format!(
                                "the principal is not in Group::{:?}",
                                engine.group_name(*g)
                            ),
                            PScope::Role(r) => format!(
                                "the principal does not hold Role::{:?} for this request",
                                engine.role_name(*r)
                            ),
                            PScope::Source(s) => {
                                format!("the principal is not from Source::{s:?}")
                            }
                            PScope::All => String::new(),
                        },
                    }
                } else if p.actions & (1 << request.action.index()) == 0 {
                    OutOfScope {
                        part: "action",
                        detail: format!(
                            "{} is not one of the policy's actions ({})",
                            request.action,
                            Needs::names(p.actions).join(", ")
                        ),
                    }
                } else if !cx.resource_in_scope(&p.resource) {
                    OutOfScope {
                        part: "resource",
                        detail: format!(
                            "{} is not {}",
                            request.resource,
                            match &p.resource {
                                RScope::All => String::new(),
                                RScope::Eq(t) => t.to_string(),
                                RScope::In(t) => format!("in {t}"),
                                RScope::Is(ty, None) => format!("a {}", ty.name()),
                                RScope::Is(ty, Some(t)) => format!("a {} in {t}", ty.name()),
                            }
                        ),
                    }
                } else {
                    match self.conditions(&cx, p, None) {
                        Ok(None) => Verdict::Satisfied,
                        Ok(Some(i)) => Verdict::ConditionFailed {
                            clause: i + 1,
                            kind: p.conditions[i].0.as_str(),
                        },
                        Err(f) => Verdict::Error {
                            message: f.to_string(),
                        },
                    }
                })
            })
            .collect()
    }
}

use Verdict::OutOfScope;

impl Compiled {
    /// Evaluates a policy's clauses in order: `Ok(None)` when all hold, `Ok(Some(i))` naming
    /// the first that does not, or the error that stopped evaluation. With a memo, a clause
    /// another policy already evaluated in this decision is not evaluated again.
    fn conditions(
        &self,
        cx: &Cx<'_>,
        p: &FastPolicy,
        mut memo: Option<&mut Memo<'_>>,
    ) -> Result<Option<usize>, Fault> {
        for (i, (clause, c)) in p.conditions.iter().enumerate() {
            let v = match memo.as_deref_mut() {
                Some(m) => {
                    let slot = &mut m.slots[*c as usize];
                    if slot.0 != m.generation {
                        *slot = (m.generation, cx.truth(&self.conds[*c as usize]));
                    }
                    slot.1?
                }
                None => cx.truth(&self.conds[*c as usize])?,
            };
            let holds = match clause {
                Clause::When => v,
                Clause::Unless => !v,
            };
            if !holds {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }
}

/// Rejects lowered policies that use a construct whose meaning depends on entities outside
/// the request (the directory's other users), or the context record as a whole.
fn check_supported(clauses: &[Expr]) -> Result<(), String> {
    let mut problem = None;
    for c in clauses {
        c.walk(&mut |e| {
            let left = match e {
                Expr::Var(Var::Context) => {
                    problem = Some("the context record as a value");
                    None
                }
                Expr::Bin(BinOp::In, pair) => Some(&pair.0),
                Expr::Is(l, _, Some(_)) => Some(&**l),
                _ => None,
            };
            // The left side of `in` must be a request variable or a constant that is not
            // a user: another user's groups are the directory's, not the request's.
            match left {
                None | Some(Expr::Var(_)) => {}
                Some(Expr::Const(Const::Ent(l))) if l.ty != Ty::User => {}
                Some(Expr::Const(Const::Ent(_))) => problem = Some("`in` on a user literal"),
                Some(_) => problem = Some("`in` on a computed entity"),
            }
        });
    }
    match problem {
        Some(p) => Err(p.to_owned()),
        None => Ok(()),
    }
}

/// The action mask of a policy's scope, if its scope lowers.
fn scope_actions(json: &serde_json::Value, names: &lower::Names<'_>) -> Option<u16> {
    let mut scope_only = json.clone();
    scope_only.as_object_mut()?.remove("conditions");
    lower::policy(&scope_only, names)
        .ok()
        .map(|l| l.policy.actions)
}
