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

use crate::attributes::PrincipalAttributes;
use crate::bindings::{self, Bindings, DYNAMIC_SOURCE, NewGroupMode, PARTNER_SOURCE};
use crate::policies::LivePolicy;
use crate::rules::{self, Catalog, Expr};
use crate::store::{ActivationRow, GroupRow, MemberKind, UserRow};
use portcullis_shared::snapshot::{Condition, Group, Issuer, Partner, RoleGrant, Snapshot, User};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

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
    let mut report = CompileReport::default();
    let mut groups: Vec<&GroupRow> = directory.groups.iter().collect();
    groups.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
    let index: HashMap<&str, u32> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.as_str(), i as u32))
        .collect();

    // parents[child] = groups that list `child` as a member.
    let mut parents: Vec<Vec<u32>> = vec![Vec::new(); groups.len()];
    // user id -> groups that list the user directly.
    let mut direct: HashMap<&str, Vec<u32>> = HashMap::new();
    for (gi, g) in groups.iter().enumerate() {
        for m in &g.members {
            match m.kind {
                MemberKind::Group => {
                    if let Some(&child) = index.get(m.id.as_str()) {
                        parents[child as usize].push(gi as u32);
                    }
                }
                MemberKind::User => direct.entry(m.id.as_str()).or_default().push(gi as u32),
            }
        }
    }

    let mut walker = Walker::new(groups.len());
    let ancestors: Vec<Vec<u32>> = (0..groups.len() as u32)
        .map(|g| {
            let (set, cyclic) = walker.reachable(&parents, g);
            if cyclic {
                report.cyclic_groups.push(groups[g as usize].id.clone());
            }
            set
        })
        .collect();

    let mut snapshot_groups: Vec<Group> = groups
        .iter()
        .zip(&ancestors)
        .map(|(g, anc)| Group {
            id: g.id.clone(),
            source: g.source.clone(),
            display_name: g.display_name().to_owned(),
            ancestors: anc.clone(),
        })
        .collect();

    // Dynamic groups follow the IdP's, sorted by name.
    let catalog = Catalog::new(&policy.attributes);
    let mut dynamic: Vec<(&str, Option<Expr>)> = bindings
        .dynamic_groups
        .iter()
        .map(|d| match rules::parse(&d.rule, &catalog) {
            Ok(e) => (d.name.as_str(), Some(e)),
            Err(e) => {
                report
                    .dynamic_rule_errors
                    .insert(d.name.clone(), e.to_string());
                (d.name.as_str(), None)
            }
        })
        .collect();
    dynamic.sort_by(|a, b| a.0.cmp(b.0));
    let first_dynamic = snapshot_groups.len() as u32;
    for (name, _) in &dynamic {
        snapshot_groups.push(Group {
            id: format!("{DYNAMIC_SOURCE}:{name}"),
            source: DYNAMIC_SOURCE.to_owned(),
            display_name: (*name).to_owned(),
            ancestors: Vec::new(),
        });
    }
    let rule_index = RuleIndex::new(&dynamic);
    // Partner tenants' groups follow, by name.
    let mut partner_defs: Vec<&bindings::PartnerDef> = bindings.partners.iter().collect();
    partner_defs.sort_by(|a, b| a.name.cmp(&b.name));
    let first_partner = snapshot_groups.len() as u32;
    for p in &partner_defs {
        snapshot_groups.push(Group {
            id: format!("{PARTNER_SOURCE}:{}", p.name),
            source: PARTNER_SOURCE.to_owned(),
            display_name: p.name.clone(),
            ancestors: Vec::new(),
        });
    }

    let (roles, conditions, group_roles) =
        resolve_bindings(bindings, &snapshot_groups, first_dynamic, &mut report);
    let role_index: HashMap<&str, u32> = roles
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i as u32))
        .collect();
    let mut glass: HashMap<&str, Vec<&ActivationRow>> = HashMap::new();
    for a in &directory.activations {
        glass.entry(a.user_id.as_str()).or_default().push(a);
    }
    let end_date = bindings
        .lifecycle
        .end_date_attribute
        .as_deref()
        .map(attribute_path);

    let mapped = bindings.scim_paths();
    let mut users: Vec<&UserRow> = directory.users.iter().collect();
    users.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
    // Pass 1: each account as its own source says (groups, attributes, end date).
    let mut snapshot_users: Vec<User> = users
        .iter()
        .map(|u| {
            let mut all = Vec::new();
            for &g in direct.get(u.id.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
                all.push(g);
                all.extend_from_slice(&ancestors[g as usize]);
            }
            all.sort_unstable();
            all.dedup();
            let mut user = user_from_row(u, all);
            user.attributes =
                attributes.extract(&u.source, &u.resource, &policy.attributes, &mapped);
            if let Some((urn, attr)) = end_date {
                let raw = match urn {
                    Some(urn) => get(&u.resource, urn).and_then(|e| get(e, attr)),
                    None => get(&u.resource, attr),
                };
                if let Some(v) = raw.filter(|v| !v.is_null()) {
                    user.end_at_ms = v.as_str().and_then(bindings::parse_instant);
                    if user.end_at_ms.is_none() {
                        // Unreadable: fail closed, as if the date had passed.
                        user.end_at_ms = Some(0);
                        report.unreadable_end_dates.push(u.id.clone());
                    }
                }
            }
            user
        })
        .collect();

    // Accounts of one person in several sources become one principal.
    let members = match &bindings.merge {
        Some(m) => crate::merge::link(&mut snapshot_users, m, &mut report.merge),
        None => Vec::new(),
    };

    // Pass 2: dynamic groups and roles, from the (merged) principal.
    let mut dynamic_counts = vec![0usize; dynamic.len()];
    for (i, user) in snapshot_users.iter_mut().enumerate() {
        let row = catalog.row(user);
        let matched = rule_index.matches(&row);
        drop(row);
        for &d in &matched {
            dynamic_counts[d] += 1;
        }
        user.groups
            .extend(matched.into_iter().map(|d| first_dynamic + d as u32));

        let mut grants: Vec<RoleGrant> = user
            .groups
            .iter()
            .flat_map(|&g| group_roles[g as usize].iter().copied())
            .collect();
        let accounts = members.get(i).map(Vec::as_slice).unwrap_or(&[]);
        let own = [i];
        let accounts = if accounts.is_empty() {
            &own[..]
        } else {
            accounts
        };
        for &account in accounts {
            let id = users[account].id.as_str();
            for a in glass.get(id).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(&role) = role_index.get(a.role.as_str()) {
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
        user.roles = grants;
    }
    for ((name, _), n) in dynamic.iter().zip(dynamic_counts) {
        report.dynamic_groups.insert((*name).to_owned(), n);
    }

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

    let snapshot = Snapshot {
        version,
        identity_revision: directory.revision,
        policy_version: policy.version,
        created_at_ms,
        issuers,
        groups: snapshot_groups,
        users: snapshot_users,
        principal_attributes: policy.attributes.clone(),
        schema: policy.schema.clone(),
        policies: policy.files.clone(),
        roles,
        conditions,
        resource_labels: policy.labels.clone(),
        partners,
        labeled_resources: bindings.labeled_resources(&policy.labels),
    };
    (snapshot, report)
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
struct RuleIndex<'a> {
    /// (slot, value) → rules requiring it.
    keyed: HashMap<(usize, &'a str), Vec<usize>>,
    slots: Vec<usize>,
    unkeyed: Vec<usize>,
    rules: Vec<Option<&'a Expr>>,
}

impl<'a> RuleIndex<'a> {
    fn new(dynamic: &'a [(&'a str, Option<Expr>)]) -> Self {
        let mut keyed: HashMap<(usize, &str), Vec<usize>> = HashMap::new();
        let mut unkeyed = Vec::new();
        let mut slots = Vec::new();
        for (i, (_, rule)) in dynamic.iter().enumerate() {
            let Some(rule) = rule else { continue };
            match rule.required_equality() {
                Some(key) => {
                    if !slots.contains(&key.0) {
                        slots.push(key.0);
                    }
                    keyed.entry(key).or_default().push(i);
                }
                None => unkeyed.push(i),
            }
        }
        Self {
            keyed,
            slots,
            unkeyed,
            rules: dynamic.iter().map(|(_, r)| r.as_ref()).collect(),
        }
    }

    /// Indices of the rules `row` satisfies, ascending.
    fn matches(&self, row: &rules::Row<'_>) -> Vec<usize> {
        let mut out = Vec::new();
        let test = |i: usize, out: &mut Vec<usize>| {
            if self.rules[i].is_some_and(|r| r.eval(row)) {
                out.push(i);
            }
        };
        for &slot in &self.slots {
            if let Some(v) = row.str(slot)
                && let Some(candidates) = self.keyed.get(&(slot, v))
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
mod tests {
    use super::*;
    use crate::store::Member;
    use portcullis_shared::snapshot::PolicyVersion;
    use serde_json::json;

    fn group(id: &str, name: &str, members: &[(&str, MemberKind)]) -> GroupRow {
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
}
