//! Synthetic directories and policy sets for the benchmarks, and the reference implementations
//! they are compared with.
//!
//! The directory is deterministic for a given size: users `u<i>` each in three groups, groups
//! nested in chains of four, and `policies` permits over groups, models and MCP tools plus a
//! few forbids, all valid against Portcullis's schema.

use cedar_policy::{Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use portcullis_shared::policy;
use portcullis_shared::request::{Action, Request, RequestContext, Resource};
use portcullis_shared::schema::SCHEMA;
use portcullis_shared::snapshot::{Group, PolicyFile, PolicyVersion, Snapshot, User};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

/// A small deterministic PRNG (xorshift), so runs are comparable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub const MODELS: usize = 20;
pub const TOOLS: usize = 30;

/// A snapshot with `users` users, `groups` groups and `policies` policies.
pub fn snapshot(users: usize, groups: usize, policies: usize) -> Snapshot {
    let mut rng = Rng::new(0x5eed ^ users as u64 ^ (policies as u64) << 20);
    let mut s = Snapshot::empty(1);
    // Chains of four: g(4k+1) in g(4k), g(4k+2) in g(4k+1), ...
    for g in 0..groups {
        let chain_start = g - g % 4;
        let ancestors = (chain_start..g).map(|a| a as u32).collect();
        s.groups.push(std::sync::Arc::new(Group {
            id: format!("gid{g}"),
            source: "bench".into(),
            display_name: format!("g{g}"),
            ancestors,
        }));
    }
    for u in 0..users {
        let mut gs: Vec<u32> = Vec::new();
        for _ in 0..3 {
            let g = rng.below(groups);
            gs.push(g as u32);
            gs.extend(s.groups[g].ancestors.iter().copied());
        }
        gs.sort_unstable();
        gs.dedup();
        s.users.push(std::sync::Arc::new(User {
            id: format!("u{u}"),
            source: "bench".into(),
            user_name: format!("user{u}@bench.example"),
            external_id: None,
            display_name: format!("User {u}"),
            email: Some(format!("user{u}@bench.example")),
            active: true,
            department: Some(["Sales", "Legal", "Eng", "Support"][u % 4].into()),
            groups: gs,
            attributes: Default::default(),
            roles: Vec::new(),
            end_at_ms: None,
            linked: None,
        }));
    }
    let mut text = String::new();
    for p in 0..policies {
        let g = rng.below(groups);
        match p % 10 {
            0..=5 => text.push_str(&format!(
                "permit (principal in Group::\"bench/g{g}\", action == Action::\"chat\", resource == Model::\"m{}\");\n",
                rng.below(MODELS)
            )),
            6 | 7 => text.push_str(&format!(
                "permit (principal in Group::\"bench/g{g}\", action == Action::\"mcp:tools/call\", resource == McpTool::\"srv/t{}\");\n",
                rng.below(TOOLS)
            )),
            8 => text.push_str(&format!(
                "permit (principal, action in Action::\"llm\", resource in Provider::\"p{}\") when {{ principal.department == \"Eng\" }};\n",
                rng.below(3)
            )),
            _ => text.push_str(&format!(
                "forbid (principal in Group::\"bench/g{g}\", action == Action::\"mcp:tools/call\", resource == McpTool::\"srv/t{}\") unless {{ principal.department == \"Legal\" }};\n",
                rng.below(TOOLS)
            )),
        }
    }
    s.policies = vec![PolicyFile {
        name: "bench.cedar".into(),
        text,
    }];
    s.policy_version = PolicyVersion {
        counter: 1,
        hash: policy::content_hash(SCHEMA, &s.policies),
    };
    s
}

/// `n` requests over random users, models and tools, as `(user index, request)`.
pub fn requests(s: &Snapshot, n: usize) -> Vec<(usize, Request)> {
    let mut rng = Rng::new(42);
    (0..n)
        .map(|i| {
            let user = rng.below(s.users.len());
            let request = if i % 3 == 2 {
                Request {
                    action: Action::McpToolsCall,
                    resource: Resource::McpTool {
                        server: "srv".into(),
                        tool: format!("t{}", rng.below(TOOLS)),
                    },
                    context: RequestContext::default(),
                }
            } else {
                let model = rng.below(MODELS);
                Request {
                    action: Action::Chat,
                    resource: Resource::Model {
                        provider: format!("p{}", model % 3),
                        kind: "openai".into(),
                        name: format!("m{model}"),
                    },
                    context: RequestContext::default(),
                }
            };
            (user, request)
        })
        .collect()
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(ty).unwrap_or_else(|_| panic!("type {ty}")),
        EntityId::new(id),
    )
}

/// The reference: one Cedar `Entities` holding the whole directory, the way a plain
/// `Authorizer::is_authorized` integration would keep it.
#[derive(Debug)]
pub struct Reference {
    pub authorizer: cedar_policy::Authorizer,
    pub policies: cedar_policy::PolicySet,
    pub schema: cedar_policy::Schema,
    pub entities: Entities,
    users: Vec<EntityUid>,
}

impl Reference {
    pub fn new(s: &Snapshot) -> Self {
        let compiled = policy::compile(&s.schema, &s.policies).unwrap_or_else(|e| panic!("{e}"));
        let mut all: Vec<Entity> = Vec::new();
        let groups: Vec<EntityUid> = s
            .groups
            .iter()
            .map(|g| {
                uid(
                    "Group",
                    &portcullis_shared::engine::group_id(&g.source, &g.display_name),
                )
            })
            .collect();
        for (g, uid) in s.groups.iter().zip(&groups) {
            let parents = g
                .ancestors
                .iter()
                .map(|&a| groups[a as usize].clone())
                .collect();
            all.push(Entity::new_no_attrs(uid.clone(), parents));
        }
        all.push(Entity::new_no_attrs(uid("Source", "bench"), HashSet::new()));
        let mut users = Vec::new();
        for u in &s.users {
            let str = |v: &str| RestrictedExpression::new_string(v.to_owned());
            let attrs = HashMap::from([
                ("userName".to_owned(), str(&u.user_name)),
                ("displayName".to_owned(), str(&u.display_name)),
                ("email".to_owned(), str(u.email.as_deref().unwrap_or(""))),
                ("externalId".to_owned(), str("")),
                (
                    "department".to_owned(),
                    str(u.department.as_deref().unwrap_or("")),
                ),
                ("source".to_owned(), str(&u.source)),
                (
                    "active".to_owned(),
                    RestrictedExpression::new_bool(u.active),
                ),
            ]);
            let mut parents: HashSet<EntityUid> = u
                .groups
                .iter()
                .map(|&g| groups[g as usize].clone())
                .collect();
            parents.insert(uid("Source", "bench"));
            let id = uid("User", &u.id);
            all.push(Entity::new(id.clone(), attrs, parents).unwrap_or_else(|e| panic!("{e}")));
            users.push(id);
        }
        for p in 0..3 {
            all.push(
                Entity::new(
                    uid("Provider", &format!("p{p}")),
                    HashMap::from([(
                        "kind".to_owned(),
                        RestrictedExpression::new_string("openai".into()),
                    )]),
                    HashSet::new(),
                )
                .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        for m in 0..MODELS {
            let provider = format!("p{}", m % 3);
            all.push(
                Entity::new(
                    uid("Model", &format!("m{m}")),
                    HashMap::from([
                        (
                            "name".to_owned(),
                            RestrictedExpression::new_string(format!("m{m}")),
                        ),
                        (
                            "provider".to_owned(),
                            RestrictedExpression::new_string(provider.clone()),
                        ),
                    ]),
                    HashSet::from([uid("Provider", &provider)]),
                )
                .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        all.push(Entity::new_no_attrs(
            uid("McpServer", "srv"),
            HashSet::new(),
        ));
        for t in 0..TOOLS {
            all.push(
                Entity::new(
                    uid("McpTool", &format!("srv/t{t}")),
                    HashMap::from([
                        (
                            "name".to_owned(),
                            RestrictedExpression::new_string(format!("t{t}")),
                        ),
                        (
                            "server".to_owned(),
                            RestrictedExpression::new_string("srv".into()),
                        ),
                    ]),
                    HashSet::from([uid("McpServer", "srv")]),
                )
                .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        let entities =
            Entities::from_entities(all, Some(&compiled.schema)).unwrap_or_else(|e| panic!("{e}"));
        Self {
            authorizer: cedar_policy::Authorizer::new(),
            policies: compiled.set,
            schema: compiled.schema,
            entities,
            users,
        }
    }

    /// Decides with the whole directory loaded once as Cedar entities.
    pub fn decide(&self, user: usize, r: &Request) -> bool {
        self.response(user, r).decision() == cedar_policy::Decision::Allow
    }

    /// The decision and its determining policies, sorted.
    pub fn decide_with_reasons(&self, user: usize, r: &Request) -> (bool, Vec<String>) {
        let response = self.response(user, r);
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|p| p.to_string())
            .collect();
        reasons.sort();
        (
            response.decision() == cedar_policy::Decision::Allow,
            reasons,
        )
    }

    fn response(&self, user: usize, r: &Request) -> cedar_policy::Response {
        let (rtype, rid) = r.resource.cedar_uid();
        let resource = uid(rtype, &rid);
        let context = cedar_policy::Context::from_pairs([
            (
                "route".to_owned(),
                RestrictedExpression::new_string(String::new()),
            ),
            ("stream".to_owned(), RestrictedExpression::new_bool(false)),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let request = cedar_policy::Request::new(
            self.users[user].clone(),
            uid("Action", r.action.cedar_id()),
            resource,
            context,
            Some(&self.schema),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.authorizer
            .is_authorized(&request, &self.policies, &self.entities)
    }
}
