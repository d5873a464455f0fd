//! The decision engine: one immutable value per snapshot, deciding requests with Cedar.
//!
//! Built once when a snapshot arrives ([`Engine::new`] parses and validates the policies and
//! indexes the directory); then [`Engine::decide`] is a pure function of the engine and the
//! request. Semantics are Cedar's: default deny, `forbid` overrides `permit`, a policy whose
//! evaluation errors is skipped. An inactive principal is denied before any policy runs.
//!
//! Each decision builds only the entities it needs (the principal, its groups, the resource and
//! its parents, the action and its groups), so its cost does not grow with the directory.

use crate::delta::{ApplyError, Delta};
use crate::fast::{self, Compiled, FallbackPolicy, Needs, Verdict};
use crate::policy::{self, CompiledPolicies, PolicyError, PolicyInfo};
use crate::request::{Action, Request, Resource};
use crate::schema::entity;
use crate::sharded::ShardedMap;
use crate::snapshot::{
    ApiKey, AttrValue, AttributeDecl, Group, Issuer, PolicyVersion, PrincipalClaim, ResourceKind,
    Snapshot, User,
};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, RestrictedExpression,
};
use smallvec::SmallVec;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Why a snapshot could not become an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("policies: {0}")]
    Policy(#[from] PolicyError),
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(String),
    #[error("delta: {0}")]
    Delta(#[from] ApplyError),
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// One or more `permit` policies matched and no `forbid` did.
    Permitted,
    /// One or more `forbid` policies matched.
    Forbidden,
    /// No `permit` policy matched (Cedar's default deny).
    NoMatchingPermit,
    /// The principal is deactivated in its IdP.
    PrincipalInactive,
    /// The principal's planned end date has passed.
    PrincipalEnded,
    /// The request does not conform to the schema (a classification bug, never a client's).
    InvalidRequest(String),
}

impl Reason {
    /// A stable, low-cardinality label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Permitted => "permitted",
            Self::Forbidden => "forbidden",
            Self::NoMatchingPermit => "no_matching_permit",
            Self::PrincipalInactive => "principal_inactive",
            Self::PrincipalEnded => "principal_ended",
            Self::InvalidRequest(_) => "invalid_request",
        }
    }
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub effect: Effect,
    pub reason: Reason,
    /// Ids of the policies that determined the outcome, in policy-set order: the matching
    /// `permit`s on allow, the matching `forbid`s on a forbid; empty for a default deny.
    pub policies: PolicyIds,
    /// Policies skipped because their evaluation errored, with the error.
    pub errors: Vec<PolicyFailure>,
}

/// The ids of the policies that determined a decision: indices into the engine's id table,
/// which the decision shares (building one copies no strings).
#[derive(Clone, Default)]
pub struct PolicyIds {
    table: Option<Arc<[Arc<str>]>>,
    idx: SmallVec<[u32; 6]>,
}

impl PolicyIds {
    fn new(table: &Arc<[Arc<str>]>, idx: SmallVec<[u32; 6]>) -> Self {
        Self {
            table: (!idx.is_empty()).then(|| table.clone()),
            idx,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.idx
            .iter()
            .filter_map(|&i| self.table.as_ref()?.get(i as usize).map(|s| &**s))
    }

    pub fn len(&self) -> usize {
        self.idx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }
}

impl PartialEq for PolicyIds {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for PolicyIds {}

impl fmt::Debug for PolicyIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A policy whose evaluation failed for a request (Cedar skips such a policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFailure {
    pub policy: Arc<str>,
    pub message: String,
}

impl fmt::Display for PolicyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy `{}`: {}", self.policy, self.message)
    }
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    fn deny(reason: Reason) -> Self {
        Self {
            effect: Effect::Deny,
            reason,
            policies: PolicyIds::default(),
            errors: Vec::new(),
        }
    }

    /// The determining policy ids as plain strings.
    pub fn policy_ids(&self) -> Vec<&str> {
        self.policies.iter().collect()
    }
}

/// The result of resolving a token's principal claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Arc<User>),
    /// No user of the source has that value.
    Missing,
    /// Several users of the source share the value (an `externalId` the IdP reused): the
    /// request is denied rather than guessed.
    Ambiguous,
}

/// The users a lookup key names: one, or several (ambiguous).
#[derive(Debug, Clone)]
enum Slot {
    One(Arc<User>),
    Many(Vec<Arc<User>>),
}

/// A user's identity within the directory: `(source, id)`.
type UserKey = (Arc<str>, Arc<str>);

/// A lookup index: `"<source>\0<value>"` → the users holding that value.
type LookupIndex = ShardedMap<Arc<str>, Slot>;

fn lookup_key(source: &str, value: &str) -> String {
    let mut k = String::with_capacity(source.len() + 1 + value.len());
    k.push_str(source);
    k.push('\0');
    k.push_str(value);
    k
}

fn same_user(a: &User, b: &User) -> bool {
    a.source == b.source && a.id == b.id
}

fn index_add(map: &mut LookupIndex, key: String, user: &Arc<User>) {
    let key: Arc<str> = Arc::from(key);
    let slot = match map.get(&*key) {
        None => Slot::One(user.clone()),
        Some(Slot::One(a)) => Slot::Many(vec![a.clone(), user.clone()]),
        Some(Slot::Many(v)) => {
            let mut v = v.clone();
            v.push(user.clone());
            Slot::Many(v)
        }
    };
    map.insert(key, slot);
}

fn index_remove(map: &mut LookupIndex, key: &str, user: &User) {
    let next = match map.get(key) {
        None => return,
        Some(Slot::One(a)) if same_user(a, user) => None,
        Some(Slot::One(_)) => return,
        Some(Slot::Many(v)) => {
            let mut v: Vec<_> = v.iter().filter(|a| !same_user(a, user)).cloned().collect();
            Some(if v.len() == 1 {
                Slot::One(v.remove(0))
            } else {
                Slot::Many(v)
            })
        }
    };
    match next {
        None => {
            map.remove(key);
        }
        Some(slot) => {
            map.insert(Arc::from(key), slot);
        }
    }
}

/// The Cedar id of a group: `<source>/<displayName>`. Display names are unique only within
/// one identity source; namespacing keeps one IdP from granting itself another's groups by
/// naming a group the same.
pub fn group_id(source: &str, display_name: &str) -> String {
    format!("{source}/{display_name}")
}

/// A snapshot made ready for deciding.
///
/// Immutable once built. A delta makes a new engine ([`Engine::apply`]) that shares with this
/// one everything the delta does not touch: the compiled policies and other per-policy
/// state, and all but a few shards of the directory indexes.
#[derive(Debug, Clone)]
pub struct Engine {
    fixed: Arc<Fixed>,
    version: u64,
    id: u64,
    identity_revision: u64,
    created_at_ms: u64,
    groups: Arc<Vec<Arc<Group>>>,
    users: ShardedMap<UserKey, Arc<User>>,
    by_user_name: LookupIndex,
    by_external_id: LookupIndex,
    /// Live API keys, sorted by id (deltas replace the list whole).
    api_keys: Arc<[ApiKey]>,
}

/// What stays the same while only the directory changes.
#[derive(Debug)]
struct Fixed {
    /// The snapshot without its directory (`users` and `groups` are empty here).
    rest: Snapshot,
    policies: CompiledPolicies,
    authorizer: Authorizer,
    /// The policies in compiled form: what [`Engine::decide`] runs.
    fast: Compiled,
    /// The policies the compiled path leaves to Cedar (see [`Compiled::fallback`]).
    fallback_set: PolicySet,
    /// Entities of the group literals policies mention, for the Cedar path's entity store.
    literal_groups: Vec<u32>,
    /// Ids of the users policies name, and every source a user may be found in: the Cedar
    /// path adds those users' entities, so `User::"x" in Group::"g"` sees the directory.
    literal_users: Vec<String>,
    /// The resources policies name (entity type and id), for "what could they use".
    named_resources: Vec<(String, String)>,
    /// Whether some policy names `Action::"llm:tool"` in its scope: only then are the tools
    /// an LLM request offers decided (see [`Engine::governs_tools`]).
    governs_tools: bool,
    /// Ids of the policies annotated `@tool("strip")`.
    strip_tools: Vec<String>,
    sources_known: Vec<String>,
    group_uids: Vec<EntityUid>,
    role_uids: Vec<EntityUid>,
    /// Action id → the action entity with every action group it belongs to as parents.
    actions: HashMap<String, Entity>,
    by_issuer: HashMap<String, usize>,
    /// (source, tenant) → index into the snapshot's partners.
    by_partner: HashMap<(String, String), u32>,
    labels: Labels,
}

/// Resource labels as Cedar values, indexed once per snapshot. Resolved per request: the
/// resource's own label, else its parent's (a tool's server, a model's provider), else the
/// declared default.
#[derive(Debug, Default)]
struct Labels {
    /// Each declared label with its default.
    decls: Vec<(String, Option<RestrictedExpression>)>,
    /// Per [`ResourceKind`] (in `ResourceKind::ALL` order): id → label name → value.
    own: [HashMap<String, HashMap<String, RestrictedExpression>>; ResourceKind::ALL.len()],
}

type ResourceAttrs = HashMap<String, RestrictedExpression>;

impl Labels {
    fn new(snapshot: &Snapshot) -> Self {
        let decls = snapshot
            .resource_labels
            .iter()
            .map(|d| (d.name.clone(), d.default.as_ref().map(attr_expr)))
            .collect();
        let mut own: [HashMap<String, ResourceAttrs>; ResourceKind::ALL.len()] = Default::default();
        for r in &snapshot.labeled_resources {
            own[r.kind as usize].insert(
                r.id.clone(),
                r.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), attr_expr(v)))
                    .collect(),
            );
        }
        Self { decls, own }
    }

    /// Adds the labels of resource `id` of `kind` (whose parent is `parent_id`) to `attrs`.
    fn add(&self, kind: ResourceKind, id: &str, parent_id: &str, attrs: &mut ResourceAttrs) {
        if self.decls.is_empty() {
            return;
        }
        let own = self.own[kind as usize].get(id);
        let parent = kind
            .parent()
            .and_then(|p| self.own[p as usize].get(parent_id));
        for (name, default) in &self.decls {
            let v = own
                .and_then(|o| o.get(name))
                .or_else(|| parent.and_then(|p| p.get(name)))
                .or(default.as_ref());
            if let Some(v) = v {
                attrs.insert(name.clone(), v.clone());
            }
        }
    }
}

impl Engine {
    /// Validates the snapshot's policies against its schema and indexes its directory.
    pub fn new(mut snapshot: Snapshot) -> Result<Self, EngineError> {
        let policies = policy::compile(&snapshot.schema, &snapshot.policies)?;
        if policies.content_hash != snapshot.policy_version.hash
            && snapshot.policy_version.counter != 0
        {
            return Err(EngineError::Inconsistent(format!(
                "policy content hash {} does not match policy version {}",
                policies.content_hash.short(),
                snapshot.policy_version
            )));
        }

        let group_uids = snapshot
            .groups
            .iter()
            .map(|g| uid(entity::GROUP, &group_id(&g.source, &g.display_name)))
            .collect::<Vec<_>>();
        let role_uids = snapshot
            .roles
            .iter()
            .map(|r| uid(entity::ROLE, r))
            .collect::<Vec<_>>();
        let n_groups = snapshot.groups.len() as u32;
        let (n_roles, n_conditions) = (
            snapshot.roles.len() as u32,
            snapshot.conditions.len() as u32,
        );
        for g in &snapshot.groups {
            check_group(g, n_groups)?;
        }

        let by_issuer = snapshot
            .issuers
            .iter()
            .enumerate()
            .map(|(i, iss)| (iss.issuer.clone(), i))
            .collect();

        let schema_actions = policies
            .schema
            .action_entities()
            .map_err(|e| EngineError::Inconsistent(format!("schema actions: {e}")))?;
        let mut actions = HashMap::new();
        for a in schema_actions.iter() {
            let ancestors: HashSet<EntityUid> = schema_actions
                .ancestors(&a.uid())
                .map(|it| it.cloned().collect())
                .unwrap_or_default();
            actions.insert(
                a.uid().id().unescaped().to_owned(),
                Entity::new_no_attrs(a.uid(), ancestors),
            );
        }

        let mut by_partner = HashMap::new();
        for (i, p) in snapshot.partners.iter().enumerate() {
            if p.group >= n_groups
                || p.roles
                    .iter()
                    .any(|r| r.role >= n_roles || r.condition.is_some_and(|c| c >= n_conditions))
            {
                return Err(EngineError::Inconsistent(format!(
                    "partner {}/{} names a group, role or condition out of range",
                    p.source, p.tenant
                )));
            }
            by_partner.insert((p.source.clone(), p.tenant.clone()), i as u32);
        }
        let labels = Labels::new(&snapshot);
        let action_ancestors = Action::ALL
            .iter()
            .map(|a| {
                actions
                    .get(a.cedar_id())
                    .map(|e| {
                        let mut v: Vec<String> = schema_actions
                            .ancestors(&e.uid())
                            .map(|it| it.map(|p| p.id().unescaped().to_owned()).collect())
                            .unwrap_or_default();
                        v.sort();
                        v
                    })
                    .unwrap_or_default()
            })
            .collect();
        let ids: Vec<String> = policies.policies.iter().map(|p| p.id.clone()).collect();
        let fast = Compiled::new(&snapshot, &policies.set, &ids, action_ancestors);
        let mut fallback_set = PolicySet::new();
        for f in &fast.fallback {
            if let Some(p) = policies.set.policy(&PolicyId::new(&f.id)) {
                fallback_set
                    .add(p.clone())
                    .map_err(|e| EngineError::Inconsistent(format!("policy {}: {e}", f.id)))?;
            }
        }
        let mut literal_groups = Vec::new();
        let mut literal_users = Vec::new();
        let mut named_resources = Vec::new();
        let tool = uid("Action", Action::LlmTool.cedar_id());
        let mut governs_tools = false;
        let mut strip_tools = Vec::new();
        for p in policies.set.policies() {
            use cedar_policy::{ActionConstraint, ResourceConstraint};
            let names_tools = match p.action_constraint() {
                ActionConstraint::Eq(a) => a == tool,
                ActionConstraint::In(list) => list.contains(&tool),
                ActionConstraint::Any => false,
            };
            // `resource is LlmTool` or `resource == LlmTool::"Bash"` under `action` speaks of
            // tools as surely.
            let llm_tool = |ty: &EntityTypeName| ty.to_string() == entity::LLM_TOOL;
            let names_tool_resources = match p.resource_constraint() {
                ResourceConstraint::Eq(r) | ResourceConstraint::In(r) => llm_tool(r.type_name()),
                ResourceConstraint::Is(ty) | ResourceConstraint::IsIn(ty, _) => llm_tool(&ty),
                ResourceConstraint::Any => false,
            };
            governs_tools |= names_tools || names_tool_resources;
            if p.annotation(policy::TOOL_ANNOTATION) == Some("strip") {
                strip_tools.push(p.id().to_string());
            }
            if let Ok(json) = p.to_json() {
                literal_ids(
                    &json,
                    &group_uids,
                    &mut literal_groups,
                    &mut literal_users,
                    &mut named_resources,
                );
            }
        }
        literal_users.sort();
        literal_users.dedup();
        named_resources.sort();
        named_resources.dedup();
        let mut sources_known: Vec<String> = snapshot
            .users
            .iter()
            .map(|u| u.source.clone())
            .chain(snapshot.issuers.iter().map(|i| i.source.clone()))
            .collect();
        sources_known.sort();
        sources_known.dedup();
        literal_groups.sort_unstable();
        literal_groups.dedup();
        let users = std::mem::take(&mut snapshot.users);
        let groups = std::mem::take(&mut snapshot.groups);
        snapshot.api_keys.sort_by(|a, b| a.id.cmp(&b.id));
        let api_keys: Arc<[ApiKey]> = std::mem::take(&mut snapshot.api_keys).into();
        let mut engine = Self {
            version: snapshot.version,
            id: snapshot.id,
            identity_revision: snapshot.identity_revision,
            created_at_ms: snapshot.created_at_ms,
            groups: Arc::new(groups),
            users: ShardedMap::with_capacity(users.len()),
            by_user_name: ShardedMap::with_capacity(users.len()),
            by_external_id: ShardedMap::with_capacity(users.len() / 2),
            api_keys,
            fixed: Arc::new(Fixed {
                by_partner,
                labels,
                rest: snapshot,
                policies,
                authorizer: Authorizer::new(),
                fast,
                fallback_set,
                literal_groups,
                literal_users,
                named_resources,
                governs_tools,
                strip_tools,
                sources_known,
                group_uids,
                role_uids,
                actions,
                by_issuer,
            }),
        };
        for u in users {
            engine.upsert(u)?;
        }
        Ok(engine)
    }

    /// The engine for the snapshot `delta` makes from this one. Costs what the delta touches
    /// (a few microseconds per user), not what the directory holds; this engine is unchanged.
    pub fn apply(&self, delta: &Delta) -> Result<Self, EngineError> {
        if delta.base_version != self.version {
            return Err(ApplyError::WrongBase {
                expected: delta.base_version,
                live: self.version,
            }
            .into());
        }
        if delta.base_id != self.id {
            return Err(ApplyError::WrongBaseId {
                version: self.version,
                expected: delta.base_id,
                live: self.id,
            }
            .into());
        }
        delta.check_shape()?;
        let mut next = self.clone();
        next.version = delta.version;
        next.id = delta.id;
        next.identity_revision = delta.identity_revision;
        next.created_at_ms = delta.created_at_ms;
        if !delta.groups.is_empty() {
            let n_groups = self.groups.len() as u32;
            let groups = Arc::make_mut(&mut next.groups);
            for (index, g) in &delta.groups {
                let bad = |reason| ApplyError::BadGroup {
                    index: *index,
                    reason,
                };
                let slot = groups.get_mut(*index as usize).ok_or(bad("out of range"))?;
                if slot.id != g.id || slot.source != g.source || slot.display_name != g.display_name
                {
                    return Err(bad("a different group").into());
                }
                check_group(g, n_groups)?;
                *slot = g.clone();
            }
        }
        for (source, id) in &delta.removed {
            let key: UserKey = (Arc::from(source.as_str()), Arc::from(id.as_str()));
            if let Some(old) = next.users.remove(&key) {
                next.unindex(&old);
            }
        }
        for u in &delta.users {
            next.upsert(u.clone())?;
        }
        if let Some(keys) = &delta.api_keys {
            next.api_keys = keys.as_slice().into();
        }
        Ok(next)
    }

    /// Adds or replaces one user, keeping the lookup indexes in step.
    fn upsert(&mut self, user: Arc<User>) -> Result<(), EngineError> {
        let (n_groups, n_roles, n_conditions) = (
            self.groups.len() as u32,
            self.fixed.rest.roles.len() as u32,
            self.fixed.rest.conditions.len() as u32,
        );
        if user.groups.iter().any(|&g| g >= n_groups) {
            return Err(EngineError::Inconsistent(format!(
                "user {} names a group out of range",
                user.id
            )));
        }
        if user
            .roles
            .iter()
            .any(|r| r.role >= n_roles || r.condition.is_some_and(|c| c >= n_conditions))
        {
            return Err(EngineError::Inconsistent(format!(
                "user {} names a role or condition out of range",
                user.id
            )));
        }
        let key: UserKey = (Arc::from(user.source.as_str()), Arc::from(user.id.as_str()));
        if let Some(old) = self.users.insert(key, user.clone()) {
            self.unindex(&old);
        }
        index_add(
            &mut self.by_user_name,
            lookup_key(&user.source, &user.user_name.to_lowercase()),
            &user,
        );
        if let Some(x) = &user.external_id {
            index_add(&mut self.by_external_id, lookup_key(&user.source, x), &user);
        }
        Ok(())
    }

    fn unindex(&mut self, user: &User) {
        index_remove(
            &mut self.by_user_name,
            &lookup_key(&user.source, &user.user_name.to_lowercase()),
            user,
        );
        if let Some(x) = &user.external_id {
            index_remove(&mut self.by_external_id, &lookup_key(&user.source, x), user);
        }
    }

    /// The full snapshot this engine decides with (copies the directory; for persisting and
    /// tests, not for the request path).
    pub fn to_snapshot(&self) -> Snapshot {
        let mut s = self.fixed.rest.clone();
        s.version = self.version;
        s.id = self.id;
        s.identity_revision = self.identity_revision;
        s.created_at_ms = self.created_at_ms;
        s.groups = self.groups.as_ref().clone();
        s.users = self.users.values().cloned().collect();
        s.users
            .sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
        s.api_keys = self.api_keys.to_vec();
        s
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The identity revision the snapshot reflects.
    pub fn identity_revision(&self) -> u64 {
        self.identity_revision
    }

    /// When the control plane compiled the snapshot (Unix ms).
    pub fn created_at_ms(&self) -> u64 {
        self.created_at_ms
    }

    /// The snapshot's id ([`Snapshot::id`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn policy_version(&self) -> &PolicyVersion {
        &self.fixed.rest.policy_version
    }

    pub fn issuers(&self) -> &[Issuer] {
        &self.fixed.rest.issuers
    }

    pub fn principal_attributes(&self) -> &[AttributeDecl] {
        &self.fixed.rest.principal_attributes
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Whether `other` was made from this engine by deltas only, so shares its policies.
    pub fn shares_policies_with(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.fixed, &other.fixed)
    }

    /// The directory's groups, by index.
    pub fn groups_slice(&self) -> &[Arc<Group>] {
        &self.groups
    }

    /// A group's Cedar id (`<source>/<display name>`).
    pub fn group_name(&self, index: u32) -> String {
        self.groups
            .get(index as usize)
            .map(|g| group_id(&g.source, &g.display_name))
            .unwrap_or_default()
    }

    /// A role's name.
    pub fn role_name(&self, index: u32) -> &str {
        self.fixed
            .rest
            .roles
            .get(index as usize)
            .map_or("", String::as_str)
    }

    /// Every policy with its id, file and line.
    pub fn policies(&self) -> &[PolicyInfo] {
        &self.fixed.policies.policies
    }

    /// The user with SCIM id `id` in `source`.
    pub fn user(&self, source: &str, id: &str) -> Option<&Arc<User>> {
        self.users.get(&(Arc::from(source), Arc::from(id)))
    }

    /// The live API key with this id.
    pub fn api_key(&self, id: &str) -> Option<&ApiKey> {
        let keys = &self.api_keys;
        keys.binary_search_by(|k| k.id.as_str().cmp(id))
            .ok()
            .map(|i| &keys[i])
    }

    /// The issuer whose `iss` is exactly `iss`.
    pub fn issuer(&self, iss: &str) -> Option<&Issuer> {
        self.fixed
            .by_issuer
            .get(iss)
            .map(|&i| &self.fixed.rest.issuers[i])
    }

    /// Finds the user a verified token names, by the issuer's claim mapping: `email` matches
    /// `userName` case-insensitively (as SCIM compares it), `sub` matches `externalId` exactly.
    pub fn find_user(&self, source: &str, claim: PrincipalClaim, value: &str) -> Lookup {
        let (map, key) = match claim {
            PrincipalClaim::EmailToUserName => (
                &self.by_user_name,
                lookup_key(source, &value.to_lowercase()),
            ),
            PrincipalClaim::SubToExternalId => (&self.by_external_id, lookup_key(source, value)),
            PrincipalClaim::ScimId => {
                return match self.user(source, value) {
                    Some(u) => Lookup::Found(u.clone()),
                    None => Lookup::Missing,
                };
            }
        };
        match map.get(key.as_str()) {
            Some(Slot::One(u)) => Lookup::Found(u.clone()),
            Some(Slot::Many(_)) => Lookup::Ambiguous,
            None => Lookup::Missing,
        }
    }

    /// How many claim values name more than one user (each such value is always denied).
    pub fn ambiguous_keys(&self) -> usize {
        self.by_user_name
            .values()
            .chain(self.by_external_id.values())
            .filter(|s| matches!(s, Slot::Many(_)))
            .count()
    }

    /// The partner admitted for `tenant` through `source`'s issuer, if any.
    pub fn find_partner(&self, source: &str, tenant: &str) -> Option<u32> {
        self.fixed
            .by_partner
            .get(&(source.to_owned(), tenant.to_owned()))
            .copied()
    }

    /// The principal a partner's verified token names: `User::"partner:<partner>/<subject>"`
    /// (`subject` is the issuer's principal claim), in the partner's group and source, with
    /// the partner's roles. Declared attributes come from token claims or defaults.
    pub fn guest(&self, partner: u32, subject: &str) -> User {
        let p = &self.fixed.rest.partners[partner as usize];
        let group = &self.groups[p.group as usize];
        User {
            id: format!("partner:{}/{subject}", group.display_name),
            source: p.source.clone(),
            user_name: subject.to_owned(),
            external_id: None,
            display_name: subject.to_owned(),
            email: subject.contains('@').then(|| subject.to_owned()),
            active: true,
            department: None,
            groups: vec![p.group],
            attributes: Default::default(),
            roles: p.roles.clone(),
            end_at_ms: None,
            linked: None,
        }
    }

    /// The resources the policies name, as (entity type, id), sorted.
    pub fn named_resources(&self) -> &[(String, String)] {
        &self.fixed.named_resources
    }

    /// Whether the tools an LLM request offers the model are decided (`llm:tool`, one
    /// decision per tool). Opt-in: only when some policy names `Action::"llm:tool"` in its
    /// action scope, or `LlmTool` in its resource scope, so a policy set that says nothing of
    /// tools is not made to deny every request that carries some. Once one does, tools are
    /// default-deny like everything else.
    pub fn governs_tools(&self) -> bool {
        self.fixed.governs_tools
    }

    /// Whether a tool's denial removes the tool rather than refusing the request: the tool is
    /// forbidden, and every forbidding policy is annotated `@tool("strip")`.
    pub fn strips_tool(&self, decision: &Decision) -> bool {
        decision.reason == Reason::Forbidden
            && !decision.policies.is_empty()
            && decision
                .policies
                .iter()
                .all(|id| self.fixed.strip_tools.iter().any(|s| s == id))
    }

    /// The principal a decision record names: a user of the snapshot, or the partner guest
    /// its id spells (`partner:<group>/<subject>`, see [`Self::guest`]).
    pub fn principal(&self, source: &str, id: &str, user_name: &str) -> Option<User> {
        if let Some(u) = self.user(source, id) {
            return Some((**u).clone());
        }
        let rest = id.strip_prefix("partner:")?;
        let partner = self.fixed.rest.partners.iter().position(|p| {
            p.source == source
                && self.groups.get(p.group as usize).is_some_and(|g| {
                    rest.strip_prefix(g.display_name.as_str())
                        .and_then(|r| r.strip_prefix('/'))
                        == Some(user_name)
                })
        })?;
        Some(self.guest(partner as u32, user_name))
    }

    /// Decides `request` for `user`: a user of the snapshot or a [`Self::guest`].
    ///
    /// Runs the compiled path ([`crate::fast`]) and, only when the action is one some
    /// uncompiled policy may apply to, Cedar's authorizer over those policies. Allocates
    /// nothing but the decision's own error list when a policy errors.
    pub fn decide(&self, user: &User, request: &Request) -> Decision {
        if !user.active {
            return Decision::deny(Reason::PrincipalInactive);
        }
        if user.end_at_ms.is_some_and(|t| request.context.now_ms >= t) {
            return Decision::deny(Reason::PrincipalEnded);
        }
        thread_local! {
            static SPACE: RefCell<(fast::Scratch, fast::Outcome)> = RefCell::default();
        }
        SPACE.with(|space| match space.try_borrow_mut() {
            Ok(mut space) => {
                let (scratch, outcome) = &mut *space;
                self.decide_with(user, request, scratch, outcome)
            }
            Err(_) => self.decide_with(
                user,
                request,
                &mut fast::Scratch::default(),
                &mut fast::Outcome::default(),
            ),
        })
    }

    fn decide_with(
        &self,
        user: &User,
        request: &Request,
        scratch: &mut fast::Scratch,
        outcome: &mut fast::Outcome,
    ) -> Decision {
        let c = &self.fixed.fast;
        c.decide(self, user, request, scratch, outcome);
        let mut errors: Vec<PolicyFailure> = outcome
            .errors
            .iter()
            .map(|(i, f)| PolicyFailure {
                policy: c.ids[*i as usize].clone(),
                message: f.to_string(),
            })
            .collect();
        if c.needs_cedar(request.action) {
            match self.cedar(user, request, &self.fixed.fallback_set) {
                Ok(d) => {
                    match d.effect {
                        Effect::Allow => outcome.permits.extend(d.policies.idx.iter().copied()),
                        Effect::Deny => outcome.forbids.extend(d.policies.idx.iter().copied()),
                    }
                    errors.extend(d.errors);
                }
                Err(e) => return Decision::deny(Reason::InvalidRequest(e)),
            }
        }
        let (effect, reason, list): (_, _, &[u32]) = if !outcome.forbids.is_empty() {
            (Effect::Deny, Reason::Forbidden, &outcome.forbids)
        } else if !outcome.permits.is_empty() {
            (Effect::Allow, Reason::Permitted, &outcome.permits)
        } else {
            (Effect::Deny, Reason::NoMatchingPermit, &[])
        };
        let mut ids: SmallVec<[u32; 6]> = SmallVec::from_slice(list);
        if ids.len() > 1 {
            ids.sort_unstable();
            ids.dedup();
        }
        Decision {
            effect,
            reason,
            policies: PolicyIds::new(&c.ids, ids),
            errors,
        }
    }

    /// Decides with Cedar's authorizer over the whole policy set, building the request's
    /// entities: the reference the compiled path is tested against, and what it replaced.
    pub fn decide_with_cedar(&self, user: &User, request: &Request) -> Decision {
        if !user.active {
            return Decision::deny(Reason::PrincipalInactive);
        }
        if user.end_at_ms.is_some_and(|t| request.context.now_ms >= t) {
            return Decision::deny(Reason::PrincipalEnded);
        }
        match self.cedar(user, request, &self.fixed.policies.set) {
            Ok(d) => d,
            Err(e) => Decision::deny(Reason::InvalidRequest(e)),
        }
    }

    /// What the compiled path made of the policy set: which policies stay with Cedar, and
    /// which request attributes the policies read.
    pub fn compiled(&self) -> &Compiled {
        &self.fixed.fast
    }

    /// Which parts of a request the policy set reads.
    pub fn needs(&self) -> &Needs {
        &self.fixed.fast.needs
    }

    /// The decision for `request` with every policy's verdict: which matched, and for each
    /// that did not, the scope or clause that failed.
    pub fn explain(&self, user: &User, request: &Request) -> Explanation {
        let decision = self.decide(user, request);
        let c = &self.fixed.fast;
        let verdicts = c.explain(self, user, request);
        let mut policies = Vec::with_capacity(verdicts.len());
        for (i, (info, verdict)) in self
            .fixed
            .policies
            .policies
            .iter()
            .zip(verdicts)
            .enumerate()
        {
            let cedar_policy = self.fixed.policies.set.policy(&PolicyId::new(&info.id));
            let effect = match cedar_policy.map(|p| p.effect()) {
                Some(cedar_policy::Effect::Forbid) => "forbid",
                _ => "permit",
            };
            let (path, verdict) = match verdict {
                Some(v) => ("compiled", v),
                None => {
                    let mut one = PolicySet::new();
                    if let Some(p) = cedar_policy {
                        let _ = one.add(p.clone());
                    }
                    let v = match self.cedar(user, request, &one) {
                        Ok(d) if !d.errors.is_empty() => Verdict::Error {
                            message: d.errors[0].message.clone(),
                        },
                        Ok(d) if !d.policies.is_empty() => Verdict::CedarSatisfied,
                        Ok(_) => Verdict::CedarNotSatisfied,
                        Err(e) => Verdict::Error { message: e },
                    };
                    ("cedar", v)
                }
            };
            debug_assert_eq!(&*c.ids[i], info.id);
            policies.push(PolicyExplanation {
                id: info.id.clone(),
                file: info.file.clone(),
                line: info.line,
                effect,
                path,
                verdict,
            });
        }
        Explanation {
            principal_active: user.active,
            decision,
            policies,
            fallback: c.fallback.clone(),
            needs: c.needs,
        }
    }

    /// Cedar's decision over `set`, with the determining policies and errors.
    fn cedar(&self, user: &User, request: &Request, set: &PolicySet) -> Result<Decision, String> {
        let principal = uid(
            entity::USER,
            user.linked.as_ref().map_or(&user.id, |l| &l.principal_id),
        );
        let action_id = request.action.cedar_id();
        let action = self
            .fixed
            .actions
            .get(action_id)
            .ok_or_else(|| format!("action {action_id} is not in the schema"))?;
        let (rtype, rid) = request.resource.cedar_uid();
        let resource = uid(rtype, &rid);

        let mut entities = Vec::with_capacity(user.groups.len() + 6);
        entities.push(self.user_entity(user, principal.clone(), request)?);
        for source in sources(user) {
            entities.push(Entity::new_no_attrs(
                uid(entity::SOURCE, source),
                HashSet::new(),
            ));
        }
        // The principal's groups, and the groups policies name (so `Group::"a" in Group::"b"`
        // sees the directory's nesting), each once.
        let mut groups: Vec<u32> = user.groups.clone();
        groups.extend(self.fixed.literal_groups.iter().copied());
        groups.sort_unstable();
        groups.dedup();
        for &g in &groups {
            let group = &self.groups[g as usize];
            let parents = group
                .ancestors
                .iter()
                .map(|&a| self.fixed.group_uids[a as usize].clone())
                .collect();
            entities.push(Entity::new_no_attrs(
                self.fixed.group_uids[g as usize].clone(),
                parents,
            ));
        }
        let principal_id = user.linked.as_ref().map_or(&user.id, |l| &l.principal_id);
        // Other users' attributes come from the directory, never from this request's token.
        let without_claims = (!self.fixed.literal_users.is_empty()).then(|| Request {
            context: crate::request::RequestContext {
                claims: Vec::new(),
                ..request.context.clone()
            },
            ..request.clone()
        });
        for id in &self.fixed.literal_users {
            if id == principal_id {
                continue;
            }
            let other = self
                .fixed
                .sources_known
                .iter()
                .find_map(|s| self.user(s, id));
            if let (Some(other), Some(plain)) = (other, &without_claims) {
                entities.push(self.user_entity(other, uid(entity::USER, id), plain)?);
            }
        }
        for r in self.roles_holding(user, request) {
            entities.push(Entity::new_no_attrs(
                self.fixed.role_uids[r as usize].clone(),
                HashSet::new(),
            ));
        }
        resource_entities(
            &request.resource,
            resource.clone(),
            &self.fixed.labels,
            &mut entities,
        )?;
        // Every action with its action groups (a policy may ask `Action::"chat" in
        // Action::"llm"` whatever the request's action), the request's included.
        entities.extend(self.fixed.actions.values().cloned());
        let entities = Entities::from_entities(entities, None).map_err(|e| e.to_string())?;

        let context = Context::from_pairs([
            (
                "route".to_owned(),
                RestrictedExpression::new_string(request.context.route.clone()),
            ),
            (
                "stream".to_owned(),
                RestrictedExpression::new_bool(request.context.stream),
            ),
        ])
        .map_err(|e| e.to_string())?;
        let cedar_request = cedar_policy::Request::new(
            principal,
            action.uid(),
            resource,
            context,
            Some(&self.fixed.policies.schema),
        )
        .map_err(|e| e.to_string())?;

        let response = self
            .fixed
            .authorizer
            .is_authorized(&cedar_request, set, &entities);
        let c = &self.fixed.fast;
        let mut idx: SmallVec<[u32; 6]> = response
            .diagnostics()
            .reason()
            .filter_map(|p| c.index_of(p.as_ref()))
            .collect();
        idx.sort_unstable();
        let policies = PolicyIds::new(&c.ids, idx);
        let errors = response
            .diagnostics()
            .errors()
            .map(|e| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
                PolicyFailure {
                    policy: Arc::from(e.policy_id().to_string()),
                    message: e.inner().to_string(),
                }
            })
            .collect();
        let (effect, reason) = match response.decision() {
            cedar_policy::Decision::Allow => (Effect::Allow, Reason::Permitted),
            cedar_policy::Decision::Deny if policies.is_empty() => {
                (Effect::Deny, Reason::NoMatchingPermit)
            }
            cedar_policy::Decision::Deny => (Effect::Deny, Reason::Forbidden),
        };
        Ok(Decision {
            effect,
            reason,
            policies,
            errors,
        })
    }

    /// The roles `user` holds for this request: grants whose condition holds in the request's
    /// environment and tenant at its time, and that have not expired.
    pub fn roles_holding<'a>(
        &'a self,
        user: &'a User,
        request: &'a Request,
    ) -> impl Iterator<Item = u32> + 'a {
        let c = &request.context;
        let mut last = None;
        user.roles
            .iter()
            .filter(move |g| {
                g.holds(
                    &self.fixed.rest.conditions,
                    c.environment.as_deref(),
                    c.tenant.as_deref(),
                    c.now_ms,
                )
            })
            .map(|g| g.role)
            // Grants are sorted by role: skip a role granted twice.
            .filter(move |r| last.replace(*r) != Some(*r))
    }

    fn user_entity(
        &self,
        user: &User,
        principal: EntityUid,
        request: &Request,
    ) -> Result<Entity, String> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let mut attrs = HashMap::from([
            ("userName".to_owned(), s(&user.user_name)),
            ("displayName".to_owned(), s(&user.display_name)),
            ("email".to_owned(), s(user.email.as_deref().unwrap_or(""))),
            (
                "externalId".to_owned(),
                s(user.external_id.as_deref().unwrap_or("")),
            ),
            (
                "department".to_owned(),
                s(user.department.as_deref().unwrap_or("")),
            ),
            ("source".to_owned(), s(&user.source)),
            (
                "active".to_owned(),
                RestrictedExpression::new_bool(user.active),
            ),
        ]);
        for (i, d) in self.fixed.rest.principal_attributes.iter().enumerate() {
            if let Some(v) = principal_attribute(d, i as u32, user, request) {
                attrs.insert(d.name.clone(), attr_expr(v));
            }
        }
        let mut parents: HashSet<EntityUid> = user
            .groups
            .iter()
            .map(|&g| self.fixed.group_uids[g as usize].clone())
            .collect();
        parents.extend(sources(user).map(|s| uid(entity::SOURCE, s)));
        parents.extend(
            self.roles_holding(user, request)
                .map(|r| self.fixed.role_uids[r as usize].clone()),
        );
        Entity::new(principal, attrs, parents).map_err(|e| e.to_string())
    }
}

fn check_group(g: &Group, n_groups: u32) -> Result<(), EngineError> {
    if g.ancestors.iter().any(|&a| a >= n_groups) {
        return Err(EngineError::Inconsistent(format!(
            "group {} names an ancestor out of range",
            g.id
        )));
    }
    Ok(())
}

/// The sources a principal is in: its own, or every linked account's.
pub(crate) fn sources(user: &User) -> impl Iterator<Item = &str> {
    let linked = user.linked.as_ref().map(|l| l.sources.as_slice());
    let own = linked.is_none().then_some(user.source.as_str());
    own.into_iter()
        .chain(linked.into_iter().flatten().map(String::as_str))
}

/// A principal attribute's value for this request, by the declared precedence: a claim listed
/// first wins when the token carries it; then the directory's value; then the claim; then the
/// default.
pub(crate) fn principal_attribute<'a>(
    d: &'a AttributeDecl,
    index: u32,
    user: &'a User,
    request: &'a Request,
) -> Option<&'a AttrValue> {
    let claim = || {
        d.claim.as_ref()?;
        request
            .context
            .claims
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, v)| v)
    };
    let directory = || user.attributes.get(&d.name);
    let found = if d.claim_first {
        claim().or_else(directory)
    } else {
        directory().or_else(claim)
    };
    found.or(d.default.as_ref())
}

fn attr_expr(value: &AttrValue) -> RestrictedExpression {
    match value {
        AttrValue::String(v) => RestrictedExpression::new_string(v.clone()),
        AttrValue::Long(v) => RestrictedExpression::new_long(*v),
        AttrValue::Bool(v) => RestrictedExpression::new_bool(*v),
        AttrValue::Decimal(v) => RestrictedExpression::new_decimal(v),
        AttrValue::Set(vs) => RestrictedExpression::new_set(vs.iter().map(attr_expr)),
    }
}

fn resource_entities(
    r: &Resource,
    resource: EntityUid,
    labels: &Labels,
    out: &mut Vec<Entity>,
) -> Result<(), String> {
    let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
    let one = |parent: EntityUid| HashSet::from([parent]);
    let rid = resource.id().unescaped().to_owned();
    let entity = |kind: ResourceKind,
                  parent_id: &str,
                  mut attrs: ResourceAttrs,
                  parents: HashSet<EntityUid>| {
        labels.add(kind, &rid, parent_id, &mut attrs);
        Entity::new(resource.clone(), attrs, parents).map_err(|e| e.to_string())
    };
    let server = |name: &str| -> Result<Entity, String> {
        let mut attrs = HashMap::new();
        labels.add(ResourceKind::McpServer, name, "", &mut attrs);
        Entity::new(uid(entity::MCP_SERVER, name), attrs, HashSet::new()).map_err(|e| e.to_string())
    };
    match r {
        Resource::Model {
            provider,
            kind,
            name,
        } => {
            let p = uid(entity::PROVIDER, provider);
            out.push(entity(
                ResourceKind::Model,
                provider,
                HashMap::from([
                    ("name".to_owned(), s(name)),
                    ("provider".to_owned(), s(provider)),
                ]),
                one(p.clone()),
            )?);
            out.push(provider_entity(p, provider, kind, labels)?);
        }
        Resource::Provider { name, kind } => {
            out.push(provider_entity(resource.clone(), name, kind, labels)?)
        }
        Resource::LlmTool {
            provider,
            kind,
            name,
        } => {
            let p = uid(entity::PROVIDER, provider);
            out.push(entity(
                ResourceKind::LlmTool,
                provider,
                HashMap::from([
                    ("name".to_owned(), s(name)),
                    ("provider".to_owned(), s(provider)),
                ]),
                one(p.clone()),
            )?);
            out.push(provider_entity(p, provider, kind, labels)?);
        }
        Resource::McpServer { server: name } => out.push(server(name)?),
        Resource::McpTool { server: srv, tool } => {
            out.push(entity(
                ResourceKind::McpTool,
                srv,
                HashMap::from([("name".to_owned(), s(tool)), ("server".to_owned(), s(srv))]),
                one(uid(entity::MCP_SERVER, srv)),
            )?);
            out.push(server(srv)?);
        }
        Resource::McpResource { server: srv, uri } => {
            out.push(entity(
                ResourceKind::McpResource,
                srv,
                HashMap::from([("uri".to_owned(), s(uri)), ("server".to_owned(), s(srv))]),
                one(uid(entity::MCP_SERVER, srv)),
            )?);
            out.push(server(srv)?);
        }
        Resource::McpPrompt { server: srv, name } => {
            out.push(entity(
                ResourceKind::McpPrompt,
                srv,
                HashMap::from([("name".to_owned(), s(name)), ("server".to_owned(), s(srv))]),
                one(uid(entity::MCP_SERVER, srv)),
            )?);
            out.push(server(srv)?);
        }
    }
    Ok(())
}

fn provider_entity(
    uid: EntityUid,
    name: &str,
    kind: &str,
    labels: &Labels,
) -> Result<Entity, String> {
    let mut attrs = HashMap::from([(
        "kind".to_owned(),
        RestrictedExpression::new_string(kind.to_owned()),
    )]);
    labels.add(ResourceKind::Provider, name, "", &mut attrs);
    Entity::new(uid, attrs, HashSet::new()).map_err(|e| e.to_string())
}

/// Builds `Type::"id"`. Entity type names here are fixed identifiers, so parsing cannot fail.
fn uid(ty: &str, id: &str) -> EntityUid {
    let ty = EntityTypeName::from_str(ty).unwrap_or_else(|_| unreachable_type(ty));
    EntityUid::from_type_name_and_id(ty, EntityId::new(id))
}

#[cold]
fn unreachable_type(ty: &str) -> ! {
    panic!("entity type {ty:?} is a compile-time constant and must parse")
}

#[cfg(test)]
mod tests;

/// The principal's view of a decision: every policy's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    pub principal_active: bool,
    #[serde(serialize_with = "decision_json")]
    pub decision: Decision,
    pub policies: Vec<PolicyExplanation>,
    /// Policies decided by `cedar-policy` rather than the compiled path, and why.
    pub fallback: Vec<FallbackPolicy>,
    pub needs: Needs,
}

/// One policy's verdict in an [`Explanation`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyExplanation {
    pub id: String,
    pub file: String,
    pub line: u32,
    pub effect: &'static str,
    /// `compiled` or `cedar`.
    pub path: &'static str,
    #[serde(flatten)]
    pub verdict: Verdict,
}

fn decision_json<S: serde::Serializer>(d: &Decision, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(4))?;
    m.serialize_entry("effect", d.effect.as_str())?;
    m.serialize_entry("reason", d.reason.label())?;
    if let Reason::InvalidRequest(why) = &d.reason {
        m.serialize_entry("detail", why)?;
    }
    m.serialize_entry("policies", &d.policy_ids())?;
    let errors: Vec<String> = d.errors.iter().map(|e| e.to_string()).collect();
    m.serialize_entry("errors", &errors)?;
    m.end()
}

/// The directory groups (by index) and the user ids a policy's JSON names
/// (`{"type": "Group", "id": …}`, `{"type": "User", "id": …}`).
fn literal_ids(
    json: &serde_json::Value,
    group_uids: &[EntityUid],
    groups: &mut Vec<u32>,
    users: &mut Vec<String>,
    resources: &mut Vec<(String, String)>,
) {
    match json {
        serde_json::Value::Object(o) => {
            let id = o.get("id").and_then(|i| i.as_str());
            match (o.get("type").and_then(|t| t.as_str()), id) {
                (Some(entity::GROUP), Some(id)) => {
                    if let Some(i) = group_uids.iter().position(|u| u.id().unescaped() == id) {
                        groups.push(i as u32);
                    }
                }
                (Some(entity::USER), Some(id)) => users.push(id.to_owned()),
                (
                    Some(
                        ty @ (entity::PROVIDER
                        | entity::MODEL
                        | entity::MCP_SERVER
                        | entity::MCP_TOOL
                        | entity::MCP_RESOURCE
                        | entity::MCP_PROMPT),
                    ),
                    Some(id),
                ) => resources.push((ty.to_owned(), id.to_owned())),
                _ => {}
            }
            for v in o.values() {
                literal_ids(v, group_uids, groups, users, resources);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                literal_ids(v, group_uids, groups, users, resources);
            }
        }
        _ => {}
    }
}
