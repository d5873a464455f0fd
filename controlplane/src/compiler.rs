//! The compiler: the identity store, the bindings, the live policy version and the issuers
//! become one immutable [`Snapshot`].
//!
//! Everything a node would otherwise have to work out per request is worked out here, once:
//!
//! - **Nesting** is expanded: every group carries all the groups it is nested in, and every
//!   user all the groups it is in directly or through nesting. A nesting cycle in the IdP's
//!   data cannot hang the compiler: each walk visits a group at most once, and the cycle is
//!   reported.
//! - **Dynamic groups** (`Group::"dynamic/<name>"`) get as members every user whose
//!   attributes satisfy the group's rule ([`crate::rules`]). Rules are indexed by a required
//!   `attribute == "value"` where they have one, so a user is tested only against rules that
//!   can match it.
//! - **Role bundles**: each user holds every role bound to any of its groups (direct, nested
//!   or dynamic), each grant with its condition (environment, tenant, time window) for nodes to
//!   decide per request, plus live break-glass activations with their expiry.
//! - **Planned end dates** become an instant nodes enforce on their own.
//! - **API keys** ([`Compiler::set_api_keys`]) are carried by id with their hash, principal and
//!   expiry; a snapshot leaves out those expired when it is made and those whose user is gone.
//!
//! A [`Compiler`] keeps the directory it compiled with the indexes that connect a change to
//! what it affects, so that later identity changes are [applied](Compiler::apply) in time
//! proportional to the users and groups they touch rather than to the directory: a
//! membership change re-derives the one user; a nesting change re-walks the groups below the
//! moved one and re-derives their direct members; an attribute change re-derives the one
//! user, dynamic groups included. Snapshots share every user and group a change does not
//! touch ([`Snapshot::users`] holds `Arc`s). Changes to the shape the bindings bind to (a
//! group created, deleted or renamed) and any change while multi-IdP merge is configured are
//! refused with [`NeedsFull`]; the caller then builds afresh.

use crate::attributes::PrincipalAttributes;
use crate::bindings::{self, Bindings, DYNAMIC_SOURCE, NewGroupMode, PARTNER_SOURCE, ScimPath};
use crate::policies::LivePolicy;
use crate::rules::{self, Catalog, Expr};
use crate::store::{ActivationRow, ApiKeyRow, GroupRow, Member, MemberKind, UserRow};
use portcullis_shared::snapshot::{
    ApiKey, Condition, Group, Issuer, LabeledResource, Partner, RoleGrant, Snapshot, User,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// The compiler's maps are keyed by SCIM ids and hashed on every membership: a fast hasher
/// (randomly seeded per map) instead of SipHash.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type Set<K> = HashSet<K, foldhash::fast::RandomState>;

/// The enterprise User extension's schema URN.
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Identity as read from the store in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub revision: u64,
    pub users: Vec<UserRow>,
    pub groups: Vec<GroupRow>,
    /// Break-glass activations live when the directory was read.
    pub activations: Vec<ActivationRow>,
}

/// What changed in the directory since the revision a [`Compiler`] holds, as read from the
/// store in one transaction.
#[derive(Debug, Clone, Default)]
pub struct DirectoryChanges {
    /// The identity revision the changes bring the compiler to.
    pub revision: u64,
    /// Users changed, by SCIM id: `removed` when the user was deleted at some point since
    /// (its memberships went with it), and its row as it is now (`None`: it is gone).
    pub users: Vec<UserChange>,
    /// Groups changed, by SCIM id, with the row as it is now (`None`: it is gone).
    pub groups: Vec<(String, Option<GroupRow>)>,
    /// Every break-glass activation live now (not only the changed ones).
    pub activations: Vec<ActivationRow>,
}

/// One changed user; see [`DirectoryChanges::users`].
#[derive(Debug, Clone)]
pub struct UserChange {
    pub id: String,
    pub removed: bool,
    pub row: Option<UserRow>,
}

/// Why a change cannot be applied to the compiled state; the caller builds afresh.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NeedsFull {
    #[error("multi-IdP merge is configured: any change may relink accounts")]
    Merge,
    #[error("group {0} was created or deleted")]
    GroupSet(String),
    #[error("group {0} was renamed")]
    GroupRenamed(String),
}

/// Findings worth an operator's attention (served by the admin API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompileReport {
    /// Groups that are (transitively) nested in themselves, by SCIM id.
    pub cyclic_groups: Vec<String>,
    /// IdP groups no binding mentions, as `<source>/<displayName>`, and what happened to them.
    pub unbound_groups: Vec<UnboundGroup>,
    /// Bindings naming a group the directory does not have (yet), as written.
    pub bindings_without_group: Vec<String>,
    /// Dynamic groups with their member counts, by name.
    pub dynamic_groups: BTreeMap<String, usize>,
    /// Dynamic-group rules that no longer type-check against the live attribute declarations
    /// (their groups are empty until fixed), with the reason.
    pub dynamic_rule_errors: BTreeMap<String, String>,
    /// Users whose end-date attribute is set but unreadable, by SCIM id.
    pub unreadable_end_dates: Vec<String>,
    /// Accounts linked across sources (multi-IdP merge).
    pub merge: crate::merge::MergeReport,
}

/// An IdP group no binding mentions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnboundGroup {
    pub group: String,
    /// `held` (no roles until reviewed) or `defaulted` (granted `new_groups.roles`).
    pub status: &'static str,
}

/// Builds the snapshot for `version`. Users carry the `attributes` their source's extensions
/// declare, limited to those the live policy version was validated with.
pub fn compile(
    directory: &Directory,
    policy: &LivePolicy,
    attributes: &PrincipalAttributes,
    bindings: &Bindings,
    issuers: Vec<Issuer>,
    version: u64,
    created_at_ms: u64,
) -> (Snapshot, CompileReport) {
    let compiler = Compiler::build(directory.clone(), policy, attributes, bindings, issuers);
    (compiler.snapshot(version, created_at_ms), compiler.report())
}

/// The compiled state: the directory with its indexes, and the inputs it was compiled with.
#[derive(Debug, Clone)]
pub struct Compiler {
    // Inputs fixed for this state's life.
    policy: LivePolicy,
    attributes: PrincipalAttributes,
    issuers: Vec<Issuer>,
    mapped: HashMap<String, Vec<ScimPath>>,
    end_date: Option<(Option<String>, String)>,
    merging: bool,
    catalog: Catalog,
    rules: RuleIndex,
    first_dynamic: u32,
    dynamic_names: Vec<String>,
    roles: Vec<String>,
    role_index: Map<String, u32>,
    conditions: Vec<Condition>,
    /// Per snapshot group, the grants it confers.
    group_roles: Vec<Vec<RoleGrant>>,
    partners: Vec<Partner>,
    labeled_resources: Vec<LabeledResource>,
    /// What [`CompileReport`] says that no directory change can alter.
    fixed_report: CompileReport,

    // The directory.
    revision: u64,
    /// The IdP groups, by snapshot index.
    nodes: Vec<GroupNode>,
    group_index: Map<String, u32>,
    /// `parents[g]`: groups listing `g` as a member.
    parents: Vec<Vec<u32>>,
    /// User id → IdP groups listing it directly.
    direct: Map<String, Vec<u32>>,
    /// IdP groups, then dynamic groups, then partner groups.
    groups: Vec<Arc<Group>>,
    /// Sorted by `(source, id)`.
    users: Vec<Arc<User>>,
    user_source: Map<String, String>,
    glass: Map<String, Vec<ActivationRow>>,
    /// The live API keys, sorted by id (see [`Compiler::set_api_keys`]).
    api_keys: Vec<ApiKey>,
    cyclic: Vec<bool>,
    dynamic_counts: Vec<usize>,
    unreadable_end_dates: BTreeSet<(String, String)>,
}

#[derive(Debug, Clone)]
struct GroupNode {
    /// As the store has them (the snapshot's [`Group`] at the same index has the rest).
    members: Vec<Member>,
    /// Member groups that exist.
    children: Vec<u32>,
}

impl Compiler {
    /// Compiles `directory` from scratch (keeping its rows' memberships).
    pub fn build(
        directory: Directory,
        policy: &LivePolicy,
        attributes: &PrincipalAttributes,
        bindings: &Bindings,
        issuers: Vec<Issuer>,
    ) -> Self {
        let mut report = CompileReport::default();
        let Directory {
            revision,
            users: mut user_rows,
            groups: mut rows,
            activations,
        } = directory;
        rows.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
        let group_index: Map<String, u32> = rows
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.clone(), i as u32))
            .collect();

        let mut parents: Vec<Vec<u32>> = vec![Vec::new(); rows.len()];
        let mut direct: Map<String, Vec<u32>> = Map::default();
        let mut groups: Vec<Group> = Vec::with_capacity(rows.len());
        let mut nodes: Vec<GroupNode> = Vec::with_capacity(rows.len());
        for (gi, g) in rows.into_iter().enumerate() {
            let mut children = Vec::new();
            for m in &g.members {
                match m.kind {
                    MemberKind::Group => {
                        if let Some(&child) = group_index.get(m.id.as_str()) {
                            parents[child as usize].push(gi as u32);
                            children.push(child);
                        }
                    }
                    MemberKind::User => match direct.get_mut(m.id.as_str()) {
                        Some(gs) => gs.push(gi as u32),
                        None => {
                            direct.insert(m.id.clone(), vec![gi as u32]);
                        }
                    },
                }
            }
            groups.push(Group {
                display_name: g.display_name().to_owned(),
                id: g.id,
                source: g.source,
                ancestors: Vec::new(),
            });
            nodes.push(GroupNode {
                members: g.members,
                children,
            });
        }

        let mut walker = Walker::new(nodes.len());
        let mut cyclic = vec![false; nodes.len()];
        for (gi, group) in groups.iter_mut().enumerate() {
            let (ancestors, is_cyclic) = walker.reachable(&parents, gi as u32);
            cyclic[gi] = is_cyclic;
            group.ancestors = ancestors;
        }

        // Dynamic groups follow the IdP's, sorted by name.
        let catalog = Catalog::new(&policy.attributes);
        let mut dynamic: Vec<(String, Option<Expr>)> = bindings
            .dynamic_groups
            .iter()
            .map(|d| match rules::parse(&d.rule, &catalog) {
                Ok(e) => (d.name.clone(), Some(e)),
                Err(e) => {
                    report
                        .dynamic_rule_errors
                        .insert(d.name.clone(), e.to_string());
                    (d.name.clone(), None)
                }
            })
            .collect();
        dynamic.sort_by(|a, b| a.0.cmp(&b.0));
        let first_dynamic = groups.len() as u32;
        for (name, _) in &dynamic {
            groups.push(Group {
                id: format!("{DYNAMIC_SOURCE}:{name}"),
                source: DYNAMIC_SOURCE.to_owned(),
                display_name: name.clone(),
                ancestors: Vec::new(),
            });
        }
        let dynamic_names: Vec<String> = dynamic.iter().map(|(n, _)| n.clone()).collect();
        let rules = RuleIndex::new(dynamic.into_iter().map(|(_, r)| r).collect());
        // Partner tenants' groups follow, by name.
        let mut partner_defs: Vec<&bindings::PartnerDef> = bindings.partners.iter().collect();
        partner_defs.sort_by(|a, b| a.name.cmp(&b.name));
        let first_partner = groups.len() as u32;
        for p in &partner_defs {
            groups.push(Group {
                id: format!("{PARTNER_SOURCE}:{}", p.name),
                source: PARTNER_SOURCE.to_owned(),
                display_name: p.name.clone(),
                ancestors: Vec::new(),
            });
        }

        let (roles, conditions, group_roles) =
            resolve_bindings(bindings, &groups, first_dynamic, &mut report);
        let role_index: Map<String, u32> = roles
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), i as u32))
            .collect();

        let mut partners: Vec<Partner> = partner_defs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let group = first_partner + i as u32;
                let mut roles = group_roles[group as usize].clone();
                roles.sort_unstable_by_key(|g| (g.role, g.condition, g.expires_at_ms));
                roles.dedup();
                Partner {
                    source: p.source.clone(),
                    tenant: p.tenant.clone(),
                    group,
                    roles,
                }
            })
            .collect();
        partners.sort_by(|a, b| (&a.source, &a.tenant).cmp(&(&b.source, &b.tenant)));

        let n_dynamic = dynamic_names.len();
        let mut this = Self {
            policy: policy.clone(),
            attributes: attributes.clone(),
            issuers,
            mapped: bindings.scim_paths(),
            end_date: bindings
                .lifecycle
                .end_date_attribute
                .as_deref()
                .map(attribute_path)
                .map(|(urn, attr)| (urn.map(str::to_owned), attr.to_owned())),
            merging: bindings.merge.is_some(),
            catalog,
            rules,
            first_dynamic,
            dynamic_names,
            roles,
            role_index,
            conditions,
            group_roles,
            partners,
            labeled_resources: bindings.labeled_resources(&policy.labels),
            fixed_report: CompileReport::default(),
            revision,
            nodes,
            group_index,
            parents,
            direct,
            groups: groups.into_iter().map(Arc::new).collect(),
            users: Vec::new(),
            user_source: Map::default(),
            glass: activations_by_user(&activations),
            api_keys: Vec::new(),
            cyclic,
            dynamic_counts: vec![0; n_dynamic],
            unreadable_end_dates: BTreeSet::new(),
        };

        user_rows.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
        let rows = user_rows;
        // Pass 1: each account as its own source says (groups, attributes, end date).
        let mut users: Vec<User> = Vec::with_capacity(rows.len());
        for u in &rows {
            let (user, unreadable) = this.account(u);
            if unreadable {
                this.unreadable_end_dates
                    .insert((u.source.clone(), u.id.clone()));
            }
            users.push(user);
        }
        // Accounts of one person in several sources become one principal.
        let linked = match &bindings.merge {
            Some(m) => crate::merge::link(&mut users, m, &mut report.merge),
            None => Vec::new(),
        };
        // Pass 2: dynamic groups and roles, from the (merged) principal.
        for (i, user) in users.iter_mut().enumerate() {
            let accounts: Vec<&str> = match linked.get(i).filter(|a| !a.is_empty()) {
                Some(accounts) => accounts.iter().map(|&a| rows[a].id.as_str()).collect(),
                None => vec![rows[i].id.as_str()],
            };
            this.finish(user, &accounts);
        }
        this.user_source = rows
            .iter()
            .map(|u| (u.id.clone(), u.source.clone()))
            .collect();
        this.users = users.into_iter().map(Arc::new).collect();
        this.fixed_report = report;
        this
    }

    /// Applies `changes`, so that [`Compiler::snapshot`] then equals what [`Compiler::build`]
    /// would make of the changed directory. Refused changes leave the state untouched.
    pub fn apply(&mut self, changes: DirectoryChanges) -> Result<(), NeedsFull> {
        if self.merging {
            return Err(NeedsFull::Merge);
        }
        for (id, row) in &changes.groups {
            match (self.group_index.get(id), row) {
                (None, None) => {}
                (None, Some(_)) | (Some(_), None) => return Err(NeedsFull::GroupSet(id.clone())),
                (Some(&g), Some(row)) => {
                    let group = &self.groups[g as usize];
                    if group.source != row.source || group.display_name != row.display_name() {
                        return Err(NeedsFull::GroupRenamed(id.clone()));
                    }
                }
            }
        }

        // Users whose groups or roles may have changed; re-derived at the end.
        let mut touched: Set<String> = Set::default();
        let mut walker = Walker::new(self.nodes.len());
        for (id, row) in changes.groups {
            if let (Some(&g), Some(row)) = (self.group_index.get(&id), row) {
                self.regroup(g, row.members, &mut walker, &mut touched);
            }
        }
        let glass = activations_by_user(&changes.activations);
        for id in self.glass.keys().chain(glass.keys()) {
            if self.glass.get(id) != glass.get(id) {
                touched.insert(id.clone());
            }
        }
        self.glass = glass;
        for change in changes.users {
            if change.removed || change.row.is_none() {
                self.remove_user(&change.id);
            }
            if let Some(row) = change.row {
                touched.remove(&row.id);
                self.put_user(&row);
            }
        }
        for id in touched {
            self.refresh(&id);
        }
        self.revision = changes.revision;
        Ok(())
    }

    /// The snapshot of the current state. Cheap: users and groups are shared.
    pub fn snapshot(&self, version: u64, created_at_ms: u64) -> Snapshot {
        Snapshot {
            version,
            // The publisher draws the id when it publishes.
            id: 0,
            identity_revision: self.revision,
            policy_version: self.policy.version,
            created_at_ms,
            issuers: self.issuers.clone(),
            groups: self.groups.clone(),
            users: self.users.clone(),
            principal_attributes: self.policy.attributes.clone(),
            schema: self.policy.schema.clone(),
            policies: self.policy.files.clone(),
            roles: self.roles.clone(),
            conditions: self.conditions.clone(),
            resource_labels: self.policy.labels.clone(),
            partners: self.partners.clone(),
            labeled_resources: self.labeled_resources.clone(),
            api_keys: self
                .api_keys
                .iter()
                .filter(|k| {
                    k.expires_at_ms.is_none_or(|t| t > created_at_ms)
                        && self.user_source.get(&k.user_id) == Some(&k.source)
                })
                .cloned()
                .collect(),
        }
    }

    /// Replaces the API keys snapshots carry with `keys` (the live ones as the store has
    /// them, read with the directory). Keys are not part of the [`Directory`]: they change
    /// nothing else in the compiled state, so both [`Compiler::build`] and
    /// [`Compiler::apply`] are followed by this call.
    pub fn set_api_keys(&mut self, keys: &[ApiKeyRow]) {
        let mut keys: Vec<ApiKey> = keys
            .iter()
            .filter(|k| k.revoked_ms.is_none())
            .map(crate::apikeys::to_snapshot)
            .collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        keys.dedup_by(|a, b| a.id == b.id);
        self.api_keys = keys;
    }

    /// What the compiled state holds that needs an operator's attention.
    pub fn report(&self) -> CompileReport {
        let mut report = self.fixed_report.clone();
        report.cyclic_groups = self
            .cyclic
            .iter()
            .zip(&self.groups)
            .filter(|(c, _)| **c)
            .map(|(_, g)| g.id.clone())
            .collect();
        report.dynamic_groups = self
            .dynamic_names
            .iter()
            .cloned()
            .zip(self.dynamic_counts.iter().copied())
            .collect();
        report.unreadable_end_dates = self
            .unreadable_end_dates
            .iter()
            .map(|(_, id)| id.clone())
            .collect();
        report
    }

    /// The identity revision the state reflects.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// How many users the state holds.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Pass 1: a user as its own source says, with its IdP groups, attributes and end date;
    /// and whether its end date is set but unreadable (it then ends at once: fail closed).
    fn account(&self, u: &UserRow) -> (User, bool) {
        let mut user = user_from_row(u, self.idp_groups(&u.id));
        user.attributes = self.attributes.extract(
            &u.source,
            &u.resource,
            &self.policy.attributes,
            &self.mapped,
        );
        let mut unreadable = false;
        if let Some((urn, attr)) = &self.end_date {
            let raw = match urn {
                Some(urn) => get(&u.resource, urn).and_then(|e| get(e, attr)),
                None => get(&u.resource, attr),
            };
            if let Some(v) = raw.filter(|v| !v.is_null()) {
                user.end_at_ms = v.as_str().and_then(bindings::parse_instant);
                if user.end_at_ms.is_none() {
                    user.end_at_ms = Some(0);
                    unreadable = true;
                }
            }
        }
        (user, unreadable)
    }

    /// Pass 2: dynamic groups and roles for a user whose `accounts` (its own id, or every
    /// linked account's) hold its break-glass activations.
    fn finish(&mut self, user: &mut User, accounts: &[&str]) {
        let row = self.catalog.row(user);
        let matched = self.rules.matches(&row);
        drop(row);
        for &d in &matched {
            self.dynamic_counts[d] += 1;
        }
        user.groups
            .extend(matched.into_iter().map(|d| self.first_dynamic + d as u32));
        user.roles = self.roles_of(&user.groups, accounts);
    }

    fn roles_of(&self, groups: &[u32], accounts: &[&str]) -> Vec<RoleGrant> {
        let mut grants: Vec<RoleGrant> = groups
            .iter()
            .flat_map(|&g| self.group_roles[g as usize].iter().copied())
            .collect();
        for &account in accounts {
            for a in self.glass.get(account).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(&role) = self.role_index.get(a.role.as_str()) {
                    grants.push(RoleGrant {
                        role,
                        condition: None,
                        expires_at_ms: Some(a.expires_ms),
                    });
                }
            }
        }
        grants.sort_unstable_by_key(|g| (g.role, g.condition, g.expires_at_ms));
        grants.dedup();
        grants
    }

    /// The IdP groups `user_id` is in, directly or through nesting; sorted, unique.
    fn idp_groups(&self, user_id: &str) -> Vec<u32> {
        let mut all = Vec::new();
        for &g in self.direct.get(user_id).map(Vec::as_slice).unwrap_or(&[]) {
            all.push(g);
            all.extend_from_slice(&self.groups[g as usize].ancestors);
        }
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Position of `(source, id)` in the sorted users.
    fn position(&self, source: &str, id: &str) -> Result<usize, usize> {
        self.users
            .binary_search_by(|u| (u.source.as_str(), u.id.as_str()).cmp(&(source, id)))
    }

    /// Group `g` now has `members`: updates the membership and nesting indexes, re-walks the
    /// groups below any moved group, and notes every user whose groups may have changed.
    fn regroup(
        &mut self,
        g: u32,
        members: Vec<Member>,
        walker: &mut Walker,
        touched: &mut Set<String>,
    ) {
        let old = std::mem::replace(&mut self.nodes[g as usize].members, members);
        let new = &self.nodes[g as usize].members;
        let ids = |ms: &[Member], kind: MemberKind| -> Set<String> {
            ms.iter()
                .filter(|m| m.kind == kind)
                .map(|m| m.id.clone())
                .collect()
        };
        let (old_users, new_users) = (ids(&old, MemberKind::User), ids(new, MemberKind::User));
        let (old_groups, new_groups) = (ids(&old, MemberKind::Group), ids(new, MemberKind::Group));
        for u in old_users.difference(&new_users) {
            if let Some(gs) = self.direct.get_mut(u) {
                gs.retain(|&x| x != g);
                if gs.is_empty() {
                    self.direct.remove(u);
                }
            }
            touched.insert(u.clone());
        }
        for u in new_users.difference(&old_users) {
            self.direct.entry(u.clone()).or_default().push(g);
            touched.insert(u.clone());
        }

        let mut moved = Vec::new();
        for c in old_groups.difference(&new_groups) {
            if let Some(&c) = self.group_index.get(c) {
                self.parents[c as usize].retain(|&p| p != g);
                self.nodes[g as usize].children.retain(|&x| x != c);
                moved.push(c);
            }
        }
        for c in new_groups.difference(&old_groups) {
            if let Some(&c) = self.group_index.get(c) {
                self.parents[c as usize].push(g);
                self.nodes[g as usize].children.push(c);
                moved.push(c);
            }
        }
        if moved.is_empty() {
            return;
        }
        // Every group below a moved one (itself included) may reach different ancestors.
        let mut below: BTreeSet<u32> = BTreeSet::new();
        let mut stack = moved;
        while let Some(c) = stack.pop() {
            if below.insert(c) {
                stack.extend(self.nodes[c as usize].children.iter().copied());
            }
        }
        for c in below {
            let (ancestors, cyclic) = walker.reachable(&self.parents, c);
            self.cyclic[c as usize] = cyclic;
            if ancestors != self.groups[c as usize].ancestors {
                Arc::make_mut(&mut self.groups[c as usize]).ancestors = ancestors;
            }
            for m in &self.nodes[c as usize].members {
                if m.kind == MemberKind::User {
                    touched.insert(m.id.clone());
                }
            }
        }
    }

    /// Creates or replaces a user from its row, dynamic groups and roles included.
    fn put_user(&mut self, row: &UserRow) {
        self.forget(&row.id);
        let (mut user, unreadable) = self.account(row);
        if unreadable {
            self.unreadable_end_dates
                .insert((row.source.clone(), row.id.clone()));
        }
        self.finish(&mut user, &[row.id.as_str()]);
        let at = self
            .position(&row.source, &row.id)
            .unwrap_or_else(|insert_at| insert_at);
        self.users.insert(at, Arc::new(user));
        self.user_source.insert(row.id.clone(), row.source.clone());
    }

    /// Removes a deleted user, with its memberships (as the store does).
    fn remove_user(&mut self, id: &str) {
        self.forget(id);
        if let Some(groups) = self.direct.remove(id) {
            for g in groups {
                self.nodes[g as usize]
                    .members
                    .retain(|m| !(m.kind == MemberKind::User && m.id == id));
            }
        }
    }

    /// Takes a user out of the sorted users and the report's counts.
    fn forget(&mut self, id: &str) {
        let Some(source) = self.user_source.remove(id) else {
            return;
        };
        let Ok(at) = self.position(&source, id) else {
            return;
        };
        let old = self.users.remove(at);
        let dynamic = self.first_dynamic..self.first_dynamic + self.dynamic_counts.len() as u32;
        for &g in old.groups.iter().filter(|g| dynamic.contains(g)) {
            self.dynamic_counts[(g - self.first_dynamic) as usize] -= 1;
        }
        self.unreadable_end_dates.remove(&(source, id.to_owned()));
    }

    /// Re-derives a user's groups and roles after a membership, nesting or break-glass change
    /// (its attributes, and so its dynamic groups, are unchanged).
    fn refresh(&mut self, id: &str) {
        let Some(source) = self.user_source.get(id) else {
            return;
        };
        let Ok(at) = self.position(source, id) else {
            return;
        };
        let mut groups = self.idp_groups(id);
        groups.extend(
            self.users[at]
                .groups
                .iter()
                .filter(|&&g| g >= self.first_dynamic),
        );
        let roles = self.roles_of(&groups, &[id]);
        let current = &self.users[at];
        if current.groups != groups || current.roles != roles {
            let user = Arc::make_mut(&mut self.users[at]);
            user.groups = groups;
            user.roles = roles;
        }
    }
}

fn activations_by_user(activations: &[ActivationRow]) -> Map<String, Vec<ActivationRow>> {
    let mut glass: Map<String, Vec<ActivationRow>> = Map::default();
    for a in activations {
        glass.entry(a.user_id.clone()).or_default().push(a.clone());
    }
    glass
}

/// Role names (sorted), distinct conditions, and per group the grants it confers.
fn resolve_bindings(
    bindings: &Bindings,
    groups: &[Group],
    first_dynamic: u32,
    report: &mut CompileReport,
) -> (Vec<String>, Vec<Condition>, Vec<Vec<RoleGrant>>) {
    let mut roles: Vec<String> = bindings.roles.iter().map(|r| r.name.clone()).collect();
    roles.sort();
    roles.dedup();
    let role = |name: &str| roles.binary_search_by(|r| r.as_str().cmp(name)).ok();
    let by_ref: HashMap<(&str, &str), u32> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| ((g.source.as_str(), g.display_name.as_str()), i as u32))
        .collect();

    let mut conditions: Vec<Condition> = Vec::new();
    let mut group_roles: Vec<Vec<RoleGrant>> = vec![Vec::new(); groups.len()];
    let mut mentioned = vec![false; groups.len()];
    for b in &bindings.bindings {
        let Some(g) = bindings::group_ref(&b.group)
            .and_then(|r| by_ref.get(&r))
            .copied()
        else {
            report.bindings_without_group.push(b.group.clone());
            continue;
        };
        mentioned[g as usize] = true;
        let Some(r) = role(&b.role) else { continue };
        let condition = match &b.when {
            None => None,
            Some(w) => match w.condition() {
                Ok(c) => Some(match conditions.iter().position(|x| *x == c) {
                    Some(i) => i as u32,
                    None => {
                        conditions.push(c);
                        conditions.len() as u32 - 1
                    }
                }),
                // Validated on apply; unreachable in practice, and never widens access.
                Err(_) => continue,
            },
        };
        group_roles[g as usize].push(RoleGrant {
            role: r as u32,
            condition,
            expires_at_ms: None,
        });
    }
    for r in &bindings.new_groups.reviewed {
        if let Some(&g) = bindings::group_ref(r).and_then(|r| by_ref.get(&r)) {
            mentioned[g as usize] = true;
        }
    }
    let defaults: Vec<RoleGrant> = bindings
        .new_groups
        .roles
        .iter()
        .filter_map(|r| role(r))
        .map(|r| RoleGrant {
            role: r as u32,
            condition: None,
            expires_at_ms: None,
        })
        .collect();
    for (g, group) in groups.iter().enumerate().take(first_dynamic as usize) {
        if mentioned[g] {
            continue;
        }
        let status = match bindings.new_groups.mode {
            NewGroupMode::Review => "held",
            NewGroupMode::Default => {
                group_roles[g] = defaults.clone();
                "defaulted"
            }
        };
        report.unbound_groups.push(UnboundGroup {
            group: format!("{}/{}", group.source, group.display_name),
            status,
        });
    }
    (roles, conditions, group_roles)
}

/// `urn:…:User:endDate` → (`Some(urn)`, `endDate`); `title` → (`None`, `title`).
fn attribute_path(path: &str) -> (Option<&str>, &str) {
    if path.to_ascii_lowercase().starts_with("urn:")
        && let Some((urn, attr)) = path.rsplit_once(':')
    {
        return (Some(urn), attr);
    }
    (None, path)
}

/// Dynamic-group rules, indexed by a required `attribute == "value"` where they have one.
#[derive(Debug, Clone)]
struct RuleIndex {
    /// slot → value → rules requiring it.
    keyed: Vec<(usize, Map<String, Vec<usize>>)>,
    unkeyed: Vec<usize>,
    rules: Vec<Option<Expr>>,
}

impl RuleIndex {
    fn new(rules: Vec<Option<Expr>>) -> Self {
        let mut keyed: Vec<(usize, Map<String, Vec<usize>>)> = Vec::new();
        let mut unkeyed = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let Some(rule) = rule else { continue };
            match rule.required_equality() {
                Some((slot, value)) => {
                    let at = match keyed.iter().position(|(s, _)| *s == slot) {
                        Some(at) => at,
                        None => {
                            keyed.push((slot, Map::default()));
                            keyed.len() - 1
                        }
                    };
                    keyed[at].1.entry(value.to_owned()).or_default().push(i);
                }
                None => unkeyed.push(i),
            }
        }
        Self {
            keyed,
            unkeyed,
            rules,
        }
    }

    /// Indices of the rules `row` satisfies, ascending.
    fn matches(&self, row: &rules::Row<'_>) -> Vec<usize> {
        let mut out = Vec::new();
        let test = |i: usize, out: &mut Vec<usize>| {
            if self.rules[i].as_ref().is_some_and(|r| r.eval(row)) {
                out.push(i);
            }
        };
        for (slot, values) in &self.keyed {
            if let Some(v) = row.str(*slot)
                && let Some(candidates) = values.get(v)
            {
                for &i in candidates {
                    test(i, &mut out);
                }
            }
        }
        for &i in &self.unkeyed {
            test(i, &mut out);
        }
        out.sort_unstable();
        out
    }
}

/// Breadth-first walks over the nesting graph that reuse one visited buffer.
#[derive(Debug)]
struct Walker {
    stamp: Vec<u32>,
    generation: u32,
    queue: std::collections::VecDeque<u32>,
}

impl Walker {
    fn new(n: usize) -> Self {
        Self {
            stamp: vec![0; n],
            generation: 0,
            queue: Default::default(),
        }
    }

    /// Every group reachable from `start` through `parents`, excluding `start`, sorted; and
    /// whether `start` reaches itself.
    fn reachable(&mut self, parents: &[Vec<u32>], start: u32) -> (Vec<u32>, bool) {
        self.generation += 1;
        let generation = self.generation;
        self.queue.clear();
        self.queue.push_back(start);
        let mut cyclic = false;
        let mut out = Vec::new();
        while let Some(g) = self.queue.pop_front() {
            for &p in &parents[g as usize] {
                if p == start {
                    cyclic = true;
                    continue;
                }
                if self.stamp[p as usize] != generation {
                    self.stamp[p as usize] = generation;
                    out.push(p);
                    self.queue.push_back(p);
                }
            }
        }
        out.sort_unstable();
        (out, cyclic)
    }
}

fn user_from_row(u: &UserRow, groups: Vec<u32>) -> User {
    let r = &u.resource;
    let user_name = get_str(r, "userName").unwrap_or_default().to_owned();
    let display_name = get_str(r, "displayName")
        .map(str::to_owned)
        .or_else(|| {
            get(r, "name")
                .and_then(|n| get_str(n, "formatted"))
                .map(str::to_owned)
        })
        .or_else(|| {
            let n = get(r, "name")?;
            let given = get_str(n, "givenName").unwrap_or("");
            let family = get_str(n, "familyName").unwrap_or("");
            let full = format!("{given} {family}").trim().to_owned();
            (!full.is_empty()).then_some(full)
        })
        .unwrap_or_else(|| user_name.clone());
    User {
        id: u.id.clone(),
        source: u.source.clone(),
        user_name,
        external_id: get_str(r, "externalId").map(str::to_owned),
        display_name,
        email: primary_email(r),
        active: u.active,
        department: get(r, ENTERPRISE_USER)
            .and_then(|e| get_str(e, "department"))
            .map(str::to_owned),
        groups,
        attributes: Default::default(),
        roles: Vec::new(),
        end_at_ms: None,
        linked: None,
    }
}

/// The `primary` email's value, else the first one's.
fn primary_email(r: &Value) -> Option<String> {
    let emails = get(r, "emails")?.as_array()?;
    let primary = emails
        .iter()
        .find(|e| get(e, "primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| emails.first())?;
    get_str(primary, "value").map(str::to_owned)
}

/// Case-insensitive attribute lookup, as SCIM attribute names are case-insensitive.
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    get(v, key).and_then(Value::as_str)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::Member;
    use portcullis_shared::snapshot::PolicyVersion;
    use serde_json::json;

    /// An `okta` group row (also used by the publisher's tests).
    pub(crate) fn group(id: &str, name: &str, members: &[(&str, MemberKind)]) -> GroupRow {
        GroupRow {
            id: id.into(),
            source: "okta".into(),
            resource: json!({ "displayName": name }),
            members: members
                .iter()
                .map(|(id, kind)| Member {
                    id: (*id).into(),
                    kind: *kind,
                    display: None,
                })
                .collect(),
            created_ms: 0,
            modified_ms: 0,
            version: 1,
        }
    }

    fn user(id: &str, resource: Value) -> UserRow {
        UserRow {
            id: id.into(),
            source: "okta".into(),
            active: UserRow::status_after(&resource, true),
            resource,
            created_ms: 0,
            modified_ms: 0,
            version: 1,
        }
    }

    fn policy() -> LivePolicy {
        LivePolicy {
            version: PolicyVersion::default(),
            schema: portcullis_shared::schema::SCHEMA.into(),
            attributes: vec![],
            labels: vec![],
            files: vec![],
        }
    }

    fn names(s: &Snapshot, idx: &[u32]) -> Vec<String> {
        idx.iter()
            .map(|&i| s.groups[i as usize].display_name.clone())
            .collect()
    }

    #[test]
    fn nesting_is_fully_expanded() {
        use MemberKind::*;
        let dir = Directory {
            revision: 9,
            users: vec![
                user("u-sam", json!({"userName": "sam@x", "active": true})),
                user("u-kim", json!({"userName": "kim@x"})),
            ],
            groups: vec![
                group("g1-rnd", "R&D", &[("g2-eng", Group)]),
                group("g2-eng", "Engineering", &[("g3-sen", Group)]),
                group("g3-sen", "Senior Engineers", &[("u-sam", User)]),
                group("g4-sales", "Sales", &[("u-kim", User)]),
            ],
            ..Default::default()
        };
        let (s, report) = compile(
            &dir,
            &policy(),
            &PrincipalAttributes::default(),
            &Bindings::default(),
            vec![],
            3,
            0,
        );
        assert!(report.cyclic_groups.is_empty());
        assert_eq!(s.identity_revision, 9);
        let sam = s.users.iter().find(|u| u.id == "u-sam").expect("sam");
        let mut got = names(&s, &sam.groups);
        got.sort();
        assert_eq!(got, ["Engineering", "R&D", "Senior Engineers"]);
        let sen = s.groups.iter().find(|g| g.id == "g3-sen").expect("sen");
        assert_eq!(names(&s, &sen.ancestors), ["R&D", "Engineering"]);
        let kim = s.users.iter().find(|u| u.id == "u-kim").expect("kim");
        assert_eq!(names(&s, &kim.groups), ["Sales"]);
    }

    #[test]
    fn cycles_terminate_and_are_reported() {
        use MemberKind::*;
        let dir = Directory {
            revision: 1,
            users: vec![user("u1", json!({"userName": "a"}))],
            groups: vec![
                group("a", "A", &[("b", Group), ("u1", User)]),
                group("b", "B", &[("a", Group)]),
                group("c", "C", &[("c", Group)]),
            ],
            ..Default::default()
        };
        let (s, report) = compile(
            &dir,
            &policy(),
            &PrincipalAttributes::default(),
            &Bindings::default(),
            vec![],
            1,
            0,
        );
        assert_eq!(report.cyclic_groups, ["a", "b", "c"]);
        let u = &s.users[0];
        let mut got = names(&s, &u.groups);
        got.sort();
        assert_eq!(got, ["A", "B"]);
    }

    #[test]
    fn user_attributes_are_read_case_insensitively_with_fallbacks() {
        let dir = Directory {
            revision: 1,
            users: vec![
                user(
                    "u1",
                    json!({
                        "UserName": "Ana@X.com",
                        "name": {"givenName": "Ana", "familyName": "Lima"},
                        "emails": [{"value": "a@old"}, {"value": "ana@x.com", "primary": true}],
                        "active": false,
                        "externalId": "00u1",
                        ENTERPRISE_USER: {"department": "Legal"}
                    }),
                ),
                user("u2", json!({"userName": "bo"})),
            ],
            groups: vec![],
            ..Default::default()
        };
        let (s, _) = compile(
            &dir,
            &policy(),
            &PrincipalAttributes::default(),
            &Bindings::default(),
            vec![],
            1,
            0,
        );
        let u = &s.users[0];
        assert_eq!(u.user_name, "Ana@X.com");
        assert_eq!(u.display_name, "Ana Lima");
        assert_eq!(u.email.as_deref(), Some("ana@x.com"));
        assert!(!u.active);
        assert_eq!(u.department.as_deref(), Some("Legal"));
        assert_eq!(u.external_id.as_deref(), Some("00u1"));
        let b = &s.users[1];
        assert_eq!(b.display_name, "bo");
        assert!(b.active, "active defaults to true");
        assert_eq!(b.email, None);
    }

    // ---- the identity model ------------------------------------------------------------

    fn model_directory() -> Directory {
        use MemberKind::*;
        let ext = "urn:example:params:scim:schemas:extension:acme:2.0:User";
        Directory {
            revision: 4,
            users: vec![
                user(
                    "u-sam",
                    json!({"userName": "sam@x", ENTERPRISE_USER: {"department": "Legal"}, ext: {"clearance": 3}}),
                ),
                user(
                    "u-kim",
                    json!({"userName": "kim@x", ENTERPRISE_USER: {"department": "Legal"}, ext: {"clearance": 1}}),
                ),
                user(
                    "u-lee",
                    json!({"userName": "lee@x", ENTERPRISE_USER: {"department": "Sales"}, ext: {"endDate": "2026-12-31T18:00:00Z"}}),
                ),
                user(
                    "u-max",
                    json!({"userName": "max@x", ext: {"endDate": "soon"}}),
                ),
            ],
            groups: vec![
                group("g1-rnd", "R&D", &[("g2-eng", Group)]),
                group("g2-eng", "Engineering", &[("g3-sen", Group)]),
                group("g3-sen", "Senior Engineers", &[("u-kim", User)]),
                group("g4-sales", "Sales", &[("u-lee", User)]),
                group("g5-new", "Brand New", &[("u-max", User)]),
            ],
            activations: vec![ActivationRow {
                id: "a1".into(),
                name: "emergency".into(),
                role: "break-glass".into(),
                source: "okta".into(),
                user_id: "u-max".into(),
                user_name: "max@x".into(),
                reason: "incident 42".into(),
                author: "oncall".into(),
                activated_ms: 1_000,
                expires_ms: 3_601_000,
                revoked_ms: None,
            }],
        }
    }

    const MODEL: &str = r#"
[[roles]]
name = "engineer"
[[roles]]
name = "legal-cleared"
[[roles]]
name = "sales"
[[roles]]
name = "break-glass"
[[roles]]
name = "newcomer"

[[bindings]]
group = "okta/R&D"
role = "engineer"
[[bindings]]
group = "okta/Sales"
role = "sales"
[bindings.when]
environments = ["prod"]
tenants = ["acme"]
from = "2026-01-01"
until = "2027-01-01"
[[bindings]]
group = "dynamic/cleared-legal"
role = "legal-cleared"
[[bindings]]
group = "okta/Gone"
role = "sales"

[[dynamic_groups]]
name = "cleared-legal"
rule = 'department == "Legal" && clearance >= 3'
[[dynamic_groups]]
name = "everyone-legal"
rule = 'department like "Leg*"'

[new_groups]
mode = "default"
roles = ["newcomer"]
reviewed = ["okta/Engineering", "okta/Senior Engineers"]

[lifecycle]
end_date_attribute = "urn:example:params:scim:schemas:extension:acme:2.0:User:endDate"

[[break_glass]]
name = "emergency"
role = "break-glass"
max_minutes = 60
"#;

    fn model_policy() -> LivePolicy {
        use portcullis_shared::snapshot::{AttrKind, AttributeDecl};
        LivePolicy {
            attributes: vec![AttributeDecl::new("clearance", AttrKind::Long, false)],
            labels: vec![],
            ..policy()
        }
    }

    fn model_attributes() -> PrincipalAttributes {
        let cfg = crate::config::Config::parse(
            std::path::Path::new("/tmp/cp.toml"),
            r#"
data_dir = "d"
policy_dir = "p"
[[sources]]
name = "okta"
[[sources.extensions]]
urn = "urn:example:params:scim:schemas:extension:acme:2.0:User"
name = "Acme"
[[sources.extensions.attributes]]
name = "clearance"
type = "integer"
"#,
        )
        .expect("config");
        PrincipalAttributes::from_sources(&cfg.sources)
    }

    fn compile_model() -> (Snapshot, CompileReport) {
        let b = Bindings::from_toml(MODEL).expect("bindings");
        b.validate(&model_policy().attributes).expect("valid");
        compile(
            &model_directory(),
            &model_policy(),
            &model_attributes(),
            &b,
            vec![],
            7,
            0,
        )
    }

    /// What a reviewer reads: every user with its groups, roles (and under which condition)
    /// and end date.
    fn summary(s: &Snapshot) -> Value {
        json!({
            "roles": s.roles,
            "conditions": s.conditions,
            "groups": s.groups.iter().map(|g| format!("{}/{}", g.source, g.display_name)).collect::<Vec<_>>(),
            "users": s.users.iter().map(|u| json!({
                "user": u.user_name,
                "groups": names(s, &u.groups),
                "roles": u.roles.iter().map(|r| json!({
                    "role": s.roles[r.role as usize],
                    "condition": r.condition,
                    "expires_at_ms": r.expires_at_ms,
                })).collect::<Vec<_>>(),
                "attributes": u.attributes,
                "end_at_ms": u.end_at_ms,
            })).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn the_identity_model_compiles_as_reviewed() {
        let (s, report) = compile_model();
        insta::assert_json_snapshot!("identity_model", summary(&s));
        insta::assert_json_snapshot!("identity_model_report", report);
    }

    /// Max (okta, nested nowhere, break-glass active) and an Entra account with the same email
    /// in Legal with clearance 4 become one principal: roles from both sides, the dynamic
    /// group on the merged attributes, and the break-glass grant on either account.
    #[test]
    fn merged_accounts_decide_as_one_principal() {
        let mut dir = model_directory();
        let mut entra = user(
            "e-max",
            json!({"userName": "MAX@x", "emails": [{"value": "max@x"}], ENTERPRISE_USER: {"department": "Legal"}}),
        );
        entra.source = "entra".into();
        dir.users.push(entra);
        dir.users[3].resource["emails"] = json!([{"value": "max@x"}]);
        let mut model = MODEL.to_owned();
        model.push_str(
            "\n[merge]\nsources = [\"okta\", \"entra\"]\n[merge.precedence]\ndepartment = [\"entra\"]\n",
        );
        let b = Bindings::from_toml(&model).expect("bindings");
        b.validate(&model_policy().attributes).expect("valid");
        let (s, report) = compile(&dir, &model_policy(), &model_attributes(), &b, vec![], 9, 0);
        assert_eq!(report.merge.linked_principals, 1, "{report:?}");
        let okta = s.users.iter().find(|u| u.id == "u-max").unwrap();
        let entra = s.users.iter().find(|u| u.id == "e-max").unwrap();
        for u in [okta, entra] {
            let linked = u.linked.as_ref().expect("linked");
            assert_eq!(linked.principal_id, "u-max");
            assert_eq!(linked.sources, ["entra", "okta"]);
            assert_eq!(
                u.department.as_deref(),
                Some("Legal"),
                "entra's department wins"
            );
            let roles: Vec<_> = u
                .roles
                .iter()
                .map(|r| (s.roles[r.role as usize].as_str(), r.expires_at_ms))
                .collect();
            assert!(
                roles.contains(&("break-glass", Some(3_601_000))),
                "{roles:?}"
            );
            assert!(
                roles.contains(&("newcomer", None)),
                "okta's Brand New: {roles:?}"
            );
            assert!(
                names(&s, &u.groups).contains(&"everyone-legal".to_owned()),
                "dynamic group on the merged department"
            );
            assert_eq!(
                u.end_at_ms,
                Some(0),
                "okta's unreadable end date still ends both"
            );
        }
    }

    #[test]
    fn dynamic_membership_follows_attribute_changes() {
        let (s, _) = compile_model();
        let kim = s.users.iter().find(|u| u.id == "u-kim").unwrap();
        assert!(!names(&s, &kim.groups).contains(&"cleared-legal".to_owned()));
        // Kim's clearance rises: no group edit, yet the dynamic group now holds her.
        let mut dir = model_directory();
        dir.users[1].resource["urn:example:params:scim:schemas:extension:acme:2.0:User"]["clearance"] =
            json!(4);
        let b = Bindings::from_toml(MODEL).unwrap();
        let (s, _) = compile(&dir, &model_policy(), &model_attributes(), &b, vec![], 8, 0);
        let kim = s.users.iter().find(|u| u.id == "u-kim").unwrap();
        assert!(names(&s, &kim.groups).contains(&"cleared-legal".to_owned()));
        let roles: Vec<_> = kim
            .roles
            .iter()
            .map(|r| s.roles[r.role as usize].as_str())
            .collect();
        assert_eq!(roles, ["engineer", "legal-cleared"]);
    }

    #[test]
    fn unbound_groups_are_held_for_review_by_default() {
        let mut b = Bindings::from_toml(MODEL).unwrap();
        b.new_groups = Default::default();
        let (s, report) = compile(
            &model_directory(),
            &model_policy(),
            &model_attributes(),
            &b,
            vec![],
            1,
            0,
        );
        let held: Vec<_> = report
            .unbound_groups
            .iter()
            .map(|g| (g.group.as_str(), g.status))
            .collect();
        assert_eq!(
            held,
            [
                ("okta/Engineering", "held"),
                ("okta/Senior Engineers", "held"),
                ("okta/Brand New", "held")
            ]
        );
        let max = s.users.iter().find(|u| u.id == "u-max").unwrap();
        // Only the break-glass grant: the new group grants nothing until reviewed.
        assert_eq!(max.roles.len(), 1);
        assert_eq!(s.roles[max.roles[0].role as usize], "break-glass");
    }

    #[test]
    fn a_rule_that_no_longer_checks_empties_its_group_and_is_reported() {
        let b = Bindings::from_toml(MODEL).unwrap();
        // The live policy version no longer declares `clearance`.
        let (s, report) = compile(
            &model_directory(),
            &policy(),
            &PrincipalAttributes::default(),
            &b,
            vec![],
            1,
            0,
        );
        assert!(report.dynamic_rule_errors["cleared-legal"].contains("clearance"));
        assert!(
            !s.users
                .iter()
                .any(|u| names(&s, &u.groups).contains(&"cleared-legal".to_owned()))
        );
    }

    #[test]
    fn snapshots_carry_the_keys_live_when_made_whose_users_exist() {
        let dir = Directory {
            revision: 1,
            users: vec![user("u-sam", json!({"userName": "sam@x"}))],
            ..Default::default()
        };
        let key =
            |id: &str, user: &str, expires_ms: Option<u64>, revoked_ms: Option<u64>| ApiKeyRow {
                id: id.into(),
                name: "k".into(),
                source: "okta".into(),
                user_id: user.into(),
                user_name: String::new(),
                hash: portcullis_shared::Hash32::of(id.as_bytes()),
                created_ms: 0,
                expires_ms,
                revoked_ms,
                author: "a".into(),
            };
        let mut c = Compiler::build(
            dir,
            &policy(),
            &PrincipalAttributes::default(),
            &Bindings::default(),
            vec![],
        );
        c.set_api_keys(&[
            key("f0", "u-sam", Some(2_000), None),
            key("a0", "u-sam", None, None),
            key("b0", "u-gone", None, None),
            key("c0", "u-sam", None, Some(5)),
            key("d0", "u-sam", Some(1_000), None),
        ]);
        let ids = |s: Snapshot| s.api_keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
        assert_eq!(ids(c.snapshot(1, 999)), ["a0", "d0", "f0"]);
        assert_eq!(ids(c.snapshot(2, 1_000)), ["a0", "f0"], "expired when made");
        let mut other = c.snapshot(3, 0).api_keys;
        other.retain(|k| k.id == "a0");
        assert_eq!(other[0].user_id, "u-sam");
        assert_eq!(other[0].source, "okta");
        assert_eq!(other[0].expires_at_ms, None);
    }
}

#[cfg(test)]
mod incremental_tests;
