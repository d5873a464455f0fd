//! The decision engine: one immutable value per snapshot, deciding requests with Cedar.
//!
//! Built once when a snapshot arrives ([`Engine::new`] parses and validates the policies and
//! indexes the directory); then [`Engine::decide`] is a pure function of the engine and the
//! request. Semantics are Cedar's: default deny, `forbid` overrides `permit`, a policy whose
//! evaluation errors is skipped. An inactive principal is denied before any policy runs.
//!
//! Each decision builds only the entities it needs (the principal, its groups, the resource and
//! its parents, the action and its groups), so its cost does not grow with the directory.

use crate::policy::{self, CompiledPolicies, PolicyError, PolicyInfo};
use crate::request::{Request, Resource};
use crate::schema::entity;
use crate::snapshot::{
    AttrValue, AttributeDecl, Issuer, PrincipalClaim, ResourceKind, Snapshot, User,
};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId,
    RestrictedExpression,
};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// Why a snapshot could not become an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("policies: {0}")]
    Policy(#[from] PolicyError),
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(String),
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
    /// Ids of the policies that determined the outcome: the matching `permit`s on allow, the
    /// matching `forbid`s on a forbid; empty for a default deny.
    pub policies: Vec<String>,
    /// Policies skipped because their evaluation errored, with the error.
    pub errors: Vec<String>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    fn deny(reason: Reason) -> Self {
        Self {
            effect: Effect::Deny,
            reason,
            policies: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// Index of a user within the engine's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserIndex(pub u32);

/// The result of resolving a token's principal claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found(UserIndex),
    /// No user of the source has that value.
    Missing,
    /// Several users of the source share the value (an `externalId` the IdP reused): the
    /// request is denied rather than guessed.
    Ambiguous,
}

/// A key maps to one user, or to several (ambiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    One(u32),
    Many,
}

fn insert_slot(map: &mut HashMap<(String, String), Slot>, key: (String, String), user: u32) {
    map.entry(key)
        .and_modify(|s| *s = Slot::Many)
        .or_insert(Slot::One(user));
}

/// The Cedar id of a group: `<source>/<displayName>`. Display names are unique only within
/// one identity source; namespacing keeps one IdP from granting itself another's groups by
/// naming a group the same.
pub fn group_id(source: &str, display_name: &str) -> String {
    format!("{source}/{display_name}")
}

/// A snapshot made ready for deciding.
#[derive(Debug)]
pub struct Engine {
    snapshot: Snapshot,
    policies: CompiledPolicies,
    authorizer: Authorizer,
    group_uids: Vec<EntityUid>,
    role_uids: Vec<EntityUid>,
    /// Action id → the action entity with every action group it belongs to as parents.
    actions: HashMap<String, Entity>,
    by_user_name: HashMap<(String, String), Slot>,
    by_external_id: HashMap<(String, String), Slot>,
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
    own: [HashMap<String, HashMap<String, RestrictedExpression>>; 6],
}

type ResourceAttrs = HashMap<String, RestrictedExpression>;

impl Labels {
    fn new(snapshot: &Snapshot) -> Self {
        let decls = snapshot
            .resource_labels
            .iter()
            .map(|d| (d.name.clone(), d.default.as_ref().map(attr_expr)))
            .collect();
        let mut own: [HashMap<String, ResourceAttrs>; 6] = Default::default();
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
    pub fn new(snapshot: Snapshot) -> Result<Self, EngineError> {
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
            if g.ancestors.iter().any(|&a| a >= n_groups) {
                return Err(EngineError::Inconsistent(format!(
                    "group {} names an ancestor out of range",
                    g.id
                )));
            }
        }

        let mut by_user_name = HashMap::with_capacity(snapshot.users.len());
        let mut by_external_id = HashMap::new();
        for (i, u) in snapshot.users.iter().enumerate() {
            if u.groups.iter().any(|&g| g >= n_groups) {
                return Err(EngineError::Inconsistent(format!(
                    "user {} names a group out of range",
                    u.id
                )));
            }
            if u.roles
                .iter()
                .any(|r| r.role >= n_roles || r.condition.is_some_and(|c| c >= n_conditions))
            {
                return Err(EngineError::Inconsistent(format!(
                    "user {} names a role or condition out of range",
                    u.id
                )));
            }
            insert_slot(
                &mut by_user_name,
                (u.source.clone(), u.user_name.to_lowercase()),
                i as u32,
            );
            if let Some(x) = &u.external_id {
                insert_slot(&mut by_external_id, (u.source.clone(), x.clone()), i as u32);
            }
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
        Ok(Self {
            by_partner,
            labels,
            snapshot,
            policies,
            authorizer: Authorizer::new(),
            group_uids,
            role_uids,
            actions,
            by_user_name,
            by_external_id,
            by_issuer,
        })
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Every policy with its id, file and line.
    pub fn policies(&self) -> &[PolicyInfo] {
        &self.policies.policies
    }

    pub fn user(&self, index: UserIndex) -> &User {
        &self.snapshot.users[index.0 as usize]
    }

    /// The issuer whose `iss` is exactly `iss`.
    pub fn issuer(&self, iss: &str) -> Option<&Issuer> {
        self.by_issuer.get(iss).map(|&i| &self.snapshot.issuers[i])
    }

    /// Finds the user a verified token names, by the issuer's claim mapping: `email` matches
    /// `userName` case-insensitively (as SCIM compares it), `sub` matches `externalId` exactly.
    pub fn find_user(&self, source: &str, claim: PrincipalClaim, value: &str) -> Lookup {
        let (map, key) = match claim {
            PrincipalClaim::EmailToUserName => (
                &self.by_user_name,
                (source.to_owned(), value.to_lowercase()),
            ),
            PrincipalClaim::SubToExternalId => {
                (&self.by_external_id, (source.to_owned(), value.to_owned()))
            }
        };
        match map.get(&key) {
            Some(Slot::One(i)) => Lookup::Found(UserIndex(*i)),
            Some(Slot::Many) => Lookup::Ambiguous,
            None => Lookup::Missing,
        }
    }

    /// How many claim values name more than one user (each such value is always denied).
    pub fn ambiguous_keys(&self) -> usize {
        self.by_user_name
            .values()
            .chain(self.by_external_id.values())
            .filter(|s| **s == Slot::Many)
            .count()
    }

    /// The partner admitted for `tenant` through `source`'s issuer, if any.
    pub fn find_partner(&self, source: &str, tenant: &str) -> Option<u32> {
        self.by_partner
            .get(&(source.to_owned(), tenant.to_owned()))
            .copied()
    }

    /// The principal a partner's verified token names: `User::"partner:<partner>/<subject>"`
    /// (`subject` is the issuer's principal claim), in the partner's group and source, with
    /// the partner's roles. Declared attributes come from token claims or defaults.
    pub fn guest(&self, partner: u32, subject: &str) -> User {
        let p = &self.snapshot.partners[partner as usize];
        let group = &self.snapshot.groups[p.group as usize];
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

    /// Decides `request` for the user at `index`.
    pub fn decide(&self, index: UserIndex, request: &Request) -> Decision {
        self.decide_for(self.user(index), request)
    }

    /// Decides `request` for `user`: a user of the snapshot or a [`Self::guest`].
    pub fn decide_for(&self, user: &User, request: &Request) -> Decision {
        if !user.active {
            return Decision::deny(Reason::PrincipalInactive);
        }
        if user.end_at_ms.is_some_and(|t| request.context.now_ms >= t) {
            return Decision::deny(Reason::PrincipalEnded);
        }
        match self.authorize(user, request) {
            Ok(d) => d,
            Err(e) => Decision::deny(Reason::InvalidRequest(e)),
        }
    }

    fn authorize(&self, user: &User, request: &Request) -> Result<Decision, String> {
        let principal = uid(
            entity::USER,
            user.linked.as_ref().map_or(&user.id, |l| &l.principal_id),
        );
        let action_id = request.action.cedar_id();
        let action = self
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
        for &g in &user.groups {
            let group = &self.snapshot.groups[g as usize];
            let parents = group
                .ancestors
                .iter()
                .map(|&a| self.group_uids[a as usize].clone())
                .collect();
            entities.push(Entity::new_no_attrs(
                self.group_uids[g as usize].clone(),
                parents,
            ));
        }
        for r in self.roles_holding(user, request) {
            entities.push(Entity::new_no_attrs(
                self.role_uids[r as usize].clone(),
                HashSet::new(),
            ));
        }
        resource_entities(
            &request.resource,
            resource.clone(),
            &self.labels,
            &mut entities,
        )?;
        entities.push(action.clone());
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
            Some(&self.policies.schema),
        )
        .map_err(|e| e.to_string())?;

        let response = self
            .authorizer
            .is_authorized(&cedar_request, &self.policies.set, &entities);
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(PolicyId::to_string)
            .collect();
        policies.sort();
        let errors = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
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
                    &self.snapshot.conditions,
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
        for (i, d) in self.snapshot.principal_attributes.iter().enumerate() {
            if let Some(v) = principal_attribute(d, i as u32, user, request) {
                attrs.insert(d.name.clone(), attr_expr(v));
            }
        }
        let mut parents: HashSet<EntityUid> = user
            .groups
            .iter()
            .map(|&g| self.group_uids[g as usize].clone())
            .collect();
        parents.extend(sources(user).map(|s| uid(entity::SOURCE, s)));
        parents.extend(
            self.roles_holding(user, request)
                .map(|r| self.role_uids[r as usize].clone()),
        );
        Entity::new(principal, attrs, parents).map_err(|e| e.to_string())
    }
}

/// The sources a principal is in: its own, or every linked account's.
fn sources(user: &User) -> impl Iterator<Item = &str> {
    let linked = user.linked.as_ref().map(|l| l.sources.as_slice());
    let own = linked.is_none().then_some(user.source.as_str());
    own.into_iter()
        .chain(linked.into_iter().flatten().map(String::as_str))
}

/// A principal attribute's value for this request, by the declared precedence: a claim listed
/// first wins when the token carries it; then the directory's value; then the claim; then the
/// default.
fn principal_attribute<'a>(
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
