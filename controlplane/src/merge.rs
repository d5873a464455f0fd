//! Multi-IdP merge: accounts of one person in several identity sources become one principal.
//!
//! After an acquisition, or with a workforce IdP beside a contractor IdP, one person can have
//! an account in each source. The bindings' `[merge]` section links them by a verified
//! attribute both sources assert (work email, by default), or by explicit links, and keeps
//! apart the accounts it is told to:
//!
//! ```toml
//! [merge]
//! by = "email"                 # email | userName | externalId | a declared string attribute
//! sources = ["okta", "entra"]  # which sources take part, in precedence order
//! active = "all"               # all: deactivated in any linked source is denied | any
//!
//! [merge.precedence]           # per attribute, whose value wins (default: `sources` order)
//! department = ["entra", "okta"]
//!
//! [[merge.links]]              # linked whatever the key says ("<source>:<userName>")
//! accounts = ["okta:sam@acme.example", "entra:ssato@acme-emea.example"]
//!
//! [[merge.distinct]]           # never linked by the key
//! accounts = ["okta:admin@acme.example", "entra:admin@acme.example"]
//! ```
//!
//! A linked principal decides as one Cedar `User` (the primary account's id: the account from
//! the first source in `sources`), in every linked account's groups and sources, with every
//! role any of them holds, attributes chosen per attribute by precedence, the earliest end
//! date, and active as `active` says. Whichever IdP's token arrives, the decision is the same.
//!
//! Safety: a key that two accounts of the *same* source share is ambiguous and links nothing
//! (reported); accounts in `distinct` are linked only by explicit links.

use portcullis_shared::snapshot::{AttrValue, Linked, User};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The `[merge]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Merge {
    #[serde(default = "default_key")]
    pub by: String,
    pub sources: Vec<String>,
    #[serde(default)]
    pub active: MergeActive,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub precedence: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<AccountSet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distinct: Vec<AccountSet>,
}

fn default_key() -> String {
    "email".into()
}

/// How a linked principal's activity follows its accounts'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeActive {
    /// Active only while every linked account is (a deactivation anywhere denies).
    #[default]
    All,
    /// Active while any linked account is.
    Any,
}

/// Accounts named `<source>:<userName>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSet {
    pub accounts: Vec<String>,
}

/// Built-in attributes a merge may key on or order.
const KEYS: [&str; 3] = ["email", "userName", "externalId"];
const BUILT_IN_ORDERED: [&str; 3] = ["displayName", "email", "department"];

fn account(s: &str) -> Option<(&str, &str)> {
    let (source, user) = s.split_once(':')?;
    (!source.is_empty() && !user.is_empty()).then_some((source, user))
}

impl Merge {
    /// Every problem with this section; `string_attributes` are declared single-valued string
    /// principal attributes (usable as keys), `attributes` every declared one.
    pub fn problems(&self, string_attributes: &[&str], attributes: &[&str]) -> Vec<String> {
        let mut p = Vec::new();
        let sources: HashSet<&str> = self.sources.iter().map(String::as_str).collect();
        if self.sources.len() < 2 || sources.len() != self.sources.len() {
            p.push("merge.sources must name at least two different sources".into());
        }
        if !KEYS.contains(&self.by.as_str()) && !string_attributes.contains(&self.by.as_str()) {
            p.push(format!(
                "merge.by {:?} must be email, userName, externalId or a declared single-valued string attribute",
                self.by
            ));
        }
        for (attr, order) in &self.precedence {
            if !BUILT_IN_ORDERED.contains(&attr.as_str()) && !attributes.contains(&attr.as_str()) {
                p.push(format!(
                    "merge.precedence.{attr}: not displayName, email, department or a declared attribute"
                ));
            }
            for s in order {
                if !sources.contains(s.as_str()) {
                    p.push(format!(
                        "merge.precedence.{attr}: {s:?} is not in merge.sources"
                    ));
                }
            }
        }
        for (what, sets) in [("links", &self.links), ("distinct", &self.distinct)] {
            for (i, set) in sets.iter().enumerate() {
                if set.accounts.len() < 2 {
                    p.push(format!(
                        "merge.{what} {}: name at least two accounts",
                        i + 1
                    ));
                }
                for a in &set.accounts {
                    if account(a).is_none() {
                        p.push(format!(
                            "merge.{what} {}: {a:?} must be \"<source>:<userName>\"",
                            i + 1
                        ));
                    }
                }
            }
        }
        p
    }
}

/// What a merge found, for the identity report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// Principals made of more than one account.
    pub linked_principals: usize,
    /// Accounts linked into them.
    pub linked_accounts: usize,
    /// Key values two accounts of one source share (linked nothing), as `<source>:<value>`.
    pub ambiguous_keys: Vec<String>,
    /// Explicit links naming an account the directory does not have.
    pub unresolved_links: Vec<String>,
}

/// Links the accounts of `users` (sorted by source and id, with groups, attributes, activity
/// and end dates as their own sources say). Returns, per user, the indices of every account
/// of its principal (itself alone when unlinked), for the caller to gather per-account facts
/// (break-glass activations) from.
pub fn link(users: &mut [User], merge: &Merge, report: &mut MergeReport) -> Vec<Vec<usize>> {
    let rank: HashMap<&str, usize> = merge
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let by_name: HashMap<(String, String), usize> = users
        .iter()
        .enumerate()
        .map(|(i, u)| ((u.source.clone(), u.user_name.to_lowercase()), i))
        .collect();
    let lookup = |a: &str| {
        let (source, user) = account(a)?;
        by_name
            .get(&(source.to_owned(), user.to_lowercase()))
            .copied()
    };
    let distinct: HashSet<usize> = merge
        .distinct
        .iter()
        .flat_map(|s| s.accounts.iter().filter_map(|a| lookup(a)))
        .collect();

    let mut uf = UnionFind::new(users.len());
    // Key → accounts per source.
    let mut keyed: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, u) in users.iter().enumerate() {
        if !rank.contains_key(u.source.as_str()) || distinct.contains(&i) {
            continue;
        }
        if let Some(k) = key(u, &merge.by) {
            keyed.entry(k).or_default().push(i);
        }
    }
    for (k, accounts) in &keyed {
        let mut seen = HashSet::new();
        if let Some(dup) = accounts
            .iter()
            .find(|&&i| !seen.insert(users[i].source.as_str()))
        {
            report
                .ambiguous_keys
                .push(format!("{}:{k}", users[*dup].source));
            continue;
        }
        for w in accounts.windows(2) {
            uf.union(w[0], w[1]);
        }
    }
    for set in &merge.links {
        let found: Vec<usize> = set
            .accounts
            .iter()
            .filter_map(|a| {
                let i = lookup(a);
                if i.is_none() {
                    report.unresolved_links.push(a.clone());
                }
                i
            })
            .collect();
        for w in found.windows(2) {
            uf.union(w[0], w[1]);
        }
    }

    let mut components: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..users.len() {
        components.entry(uf.find(i)).or_default().push(i);
    }
    let mut members: Vec<Vec<usize>> = (0..users.len()).map(|i| vec![i]).collect();
    for accounts in components.into_values().filter(|c| c.len() > 1) {
        report.linked_principals += 1;
        report.linked_accounts += accounts.len();
        let merged = merged(users, &accounts, merge, &rank);
        for &i in &accounts {
            let u = &mut users[i];
            u.groups.clone_from(&merged.groups);
            u.attributes.clone_from(&merged.attributes);
            u.display_name.clone_from(&merged.display_name);
            u.email.clone_from(&merged.email);
            u.department.clone_from(&merged.department);
            u.active = merged.active;
            u.end_at_ms = merged.end_at_ms;
            u.linked = merged.linked.clone();
            members[i].clone_from(&accounts);
        }
    }
    report.ambiguous_keys.sort();
    report.unresolved_links.sort();
    report.unresolved_links.dedup();
    members
}

fn key(u: &User, by: &str) -> Option<String> {
    let v = match by {
        "email" => u.email.clone()?.to_lowercase(),
        "userName" => u.user_name.to_lowercase(),
        "externalId" => u.external_id.clone()?,
        attr => match u.attributes.get(attr)? {
            AttrValue::String(s) => s.to_lowercase(),
            _ => return None,
        },
    };
    (!v.is_empty()).then_some(v)
}

/// The merged view of `accounts`.
fn merged(users: &[User], accounts: &[usize], merge: &Merge, rank: &HashMap<&str, usize>) -> User {
    let source_rank = |i: &usize| {
        (
            rank.get(users[*i].source.as_str())
                .copied()
                .unwrap_or(usize::MAX),
            users[*i].source.clone(),
            users[*i].id.clone(),
        )
    };
    let mut ordered = accounts.to_vec();
    ordered.sort_by_key(source_rank);
    // Accounts in the order an attribute's precedence names their sources, then the rest.
    let order_for = |attr: &str| -> Vec<usize> {
        let Some(pref) = merge.precedence.get(attr) else {
            return ordered.clone();
        };
        let mut out: Vec<usize> = pref
            .iter()
            .flat_map(|s| {
                ordered
                    .iter()
                    .copied()
                    .filter(move |&i| users[i].source == *s)
            })
            .collect();
        let rest: Vec<usize> = ordered
            .iter()
            .copied()
            .filter(|i| !out.contains(i))
            .collect();
        out.extend(rest);
        out
    };
    let first = |attr: &str, get: &dyn Fn(&User) -> Option<String>| {
        order_for(attr).into_iter().find_map(|i| get(&users[i]))
    };

    let primary = &users[ordered[0]];
    let mut out = primary.clone();
    out.display_name = first("displayName", &|u| {
        Some(u.display_name.clone()).filter(|s| !s.is_empty())
    })
    .unwrap_or_default();
    out.email = first("email", &|u| u.email.clone());
    out.department = first("department", &|u| u.department.clone());
    let names: BTreeMap<&String, ()> = accounts
        .iter()
        .flat_map(|&i| users[i].attributes.keys())
        .map(|k| (k, ()))
        .collect();
    out.attributes = names
        .keys()
        .filter_map(|name| {
            let i = order_for(name)
                .into_iter()
                .find(|&i| users[i].attributes.contains_key(*name))?;
            Some(((*name).clone(), users[i].attributes[*name].clone()))
        })
        .collect();
    let mut groups: Vec<u32> = accounts
        .iter()
        .flat_map(|&i| users[i].groups.iter().copied())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    out.groups = groups;
    out.active = match merge.active {
        MergeActive::All => accounts.iter().all(|&i| users[i].active),
        MergeActive::Any => accounts.iter().any(|&i| users[i].active),
    };
    out.end_at_ms = accounts.iter().filter_map(|&i| users[i].end_at_ms).min();
    let mut sources: Vec<String> = accounts.iter().map(|&i| users[i].source.clone()).collect();
    sources.sort();
    sources.dedup();
    out.linked = Some(Linked {
        principal_id: primary.id.clone(),
        sources,
    });
    out
}

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }
}

#[cfg(test)]
mod tests;
