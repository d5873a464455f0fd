//! The compiler: the identity store, the live policy version and the issuers become one
//! immutable [`Snapshot`].
//!
//! Group nesting is expanded here, once, so nodes never walk a hierarchy: every group carries
//! all the groups it is nested in, and every user all the groups it is in directly or through
//! nesting. A nesting cycle in the IdP's data cannot hang the compiler: each walk visits a group
//! at most once, and the cycle is reported.

use crate::attributes::PrincipalAttributes;
use crate::policies::LivePolicy;
use crate::store::{GroupRow, MemberKind, UserRow};
use portcullis_shared::snapshot::{Group, Issuer, Snapshot, User};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, VecDeque};

/// The enterprise User extension's schema URN.
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Identity as read from the store in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub revision: u64,
    pub users: Vec<UserRow>,
    pub groups: Vec<GroupRow>,
}

/// Findings worth an operator's attention.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileReport {
    /// Groups that are (transitively) nested in themselves, by SCIM id.
    pub cyclic_groups: Vec<String>,
}

/// Builds the snapshot for `version`. Users carry the `attributes` their source's extensions
/// declare, limited to those the live policy version was validated with.
pub fn compile(
    directory: &Directory,
    policy: &LivePolicy,
    attributes: &PrincipalAttributes,
    issuers: Vec<Issuer>,
    version: u64,
    created_at_ms: u64,
) -> (Snapshot, CompileReport) {
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

    let mut report = CompileReport::default();
    let ancestors: Vec<Vec<u32>> = (0..groups.len() as u32)
        .map(|g| {
            let (set, cyclic) = reachable(&parents, g);
            if cyclic {
                report.cyclic_groups.push(groups[g as usize].id.clone());
            }
            set
        })
        .collect();

    let snapshot_groups = groups
        .iter()
        .zip(&ancestors)
        .map(|(g, anc)| Group {
            id: g.id.clone(),
            source: g.source.clone(),
            display_name: g.display_name().to_owned(),
            ancestors: anc.clone(),
        })
        .collect();

    let mut users: Vec<&UserRow> = directory.users.iter().collect();
    users.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
    let snapshot_users = users
        .iter()
        .map(|u| {
            let mut all = BTreeSet::new();
            for &g in direct.get(u.id.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
                all.insert(g);
                all.extend(ancestors[g as usize].iter().copied());
            }
            let mut user = user_from_row(u, all.into_iter().collect());
            user.attributes = attributes.extract(&u.source, &u.resource, &policy.attributes);
            user
        })
        .collect();

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
    };
    (snapshot, report)
}

/// Every group reachable from `start` through `parents`, excluding `start`, sorted; and
/// whether `start` reaches itself.
fn reachable(parents: &[Vec<u32>], start: u32) -> (Vec<u32>, bool) {
    let mut seen = vec![false; parents.len()];
    let mut queue = VecDeque::from([start]);
    let mut cyclic = false;
    let mut out = Vec::new();
    while let Some(g) = queue.pop_front() {
        for &p in &parents[g as usize] {
            if p == start {
                cyclic = true;
                continue;
            }
            if !seen[p as usize] {
                seen[p as usize] = true;
                out.push(p);
                queue.push_back(p);
            }
        }
    }
    out.sort_unstable();
    (out, cyclic)
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
        };
        let (s, report) = compile(
            &dir,
            &policy(),
            &PrincipalAttributes::default(),
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
        };
        let (s, report) = compile(
            &dir,
            &policy(),
            &PrincipalAttributes::default(),
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
        };
        let (s, _) = compile(
            &dir,
            &policy(),
            &PrincipalAttributes::default(),
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
}
