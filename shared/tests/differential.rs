//! The compiled decision path against Cedar's authorizer, on random directories, random policy
//! sets and random requests: the decision, the determining policies and the policies that
//! errored must be the same for every request.
//!
//! The oracle is a plain `cedar-policy` integration: one `Entities` with the whole directory
//! (every user, group, role and source) plus the request's resource, its parent and the
//! schema's actions, and `Authorizer::is_authorized` over the whole policy set.
//!
//! CI runs a few thousand requests with a fixed seed. The long run:
//!
//! ```text
//! PORTCULLIS_DIFF_REQUESTS=100000 PORTCULLIS_DIFF_SEED=7 \
//!   cargo test --release -p portcullis-shared --test differential -- --nocapture
//! ```

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId,
    RestrictedExpression, Schema,
};
use portcullis_shared::engine::{Engine, group_id};
use portcullis_shared::policy;
use portcullis_shared::request::{Action, Request, RequestContext, Resource};
use portcullis_shared::schema;
use portcullis_shared::snapshot::{
    AttrKind, AttrValue, AttributeDecl, Group, LabeledResource, PolicyFile, ResourceKind,
    RoleGrant, Snapshot, User,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SOURCES: [&str; 2] = ["okta", "entra"];
const DEPARTMENTS: [&str; 4] = ["Eng", "Sales", "Legal", ""];
const TAGS: [&str; 4] = ["a", "b", "c", "d"];
const MODELS: [(&str, &str); 4] = [("m0", "p0"), ("m1", "p0"), ("gpt-x", "p1"), ("m3", "p1")];
const SERVERS: [&str; 2] = ["srv0", "srv1"];
const ITEMS: [&str; 3] = ["t0", "t1", "weird name"];
const ROUTES: [&str; 3] = ["/a", "/b", "/ab"];

fn decl(name: &str, kind: AttrKind, multi: bool, default: Option<AttrValue>) -> AttributeDecl {
    AttributeDecl {
        name: name.into(),
        kind,
        multi,
        default,
        claim: None,
        claim_first: false,
    }
}

/// A random directory (no policies yet).
fn directory(rng: &mut Rng) -> Snapshot {
    let mut s = Snapshot::empty(1);
    s.principal_attributes = vec![
        decl("level", AttrKind::Long, false, Some(AttrValue::Long(0))),
        decl("clearance", AttrKind::Long, false, None),
        decl("tags", AttrKind::String, true, None),
        decl(
            "region",
            AttrKind::String,
            false,
            Some(AttrValue::String("eu".into())),
        ),
        decl("score", AttrKind::Decimal, false, None),
    ];
    s.resource_labels = vec![
        decl("tier", AttrKind::Long, false, None),
        decl(
            "class",
            AttrKind::String,
            false,
            Some(AttrValue::String("public".into())),
        ),
    ];
    s.schema = schema::build(&s.principal_attributes, &s.resource_labels);
    s.roles = (0..3).map(|r| format!("r{r}")).collect();

    let n_groups = 2 + rng.below(10);
    let mut groups: Vec<Group> = Vec::new();
    for g in 0..n_groups {
        let mut ancestors = BTreeSet::new();
        if g > 0 && rng.chance(50) {
            let parent = rng.below(g);
            ancestors.insert(parent as u32);
            ancestors.extend(groups[parent].ancestors.iter().copied());
        }
        groups.push(Group {
            id: format!("gid{g}"),
            source: SOURCES[g % 2].into(),
            display_name: format!("g{g}"),
            ancestors: ancestors.into_iter().collect(),
        });
    }
    let n_users = 3 + rng.below(20);
    for u in 0..n_users {
        let mut gs = BTreeSet::new();
        for _ in 0..rng.below(4) {
            let g = rng.below(n_groups);
            gs.insert(g as u32);
            gs.extend(groups[g].ancestors.iter().copied());
        }
        let mut attributes = BTreeMap::new();
        if rng.chance(70) {
            let level = match rng.below(10) {
                0 => i64::MAX,
                1 => -3,
                n => n as i64,
            };
            attributes.insert("level".into(), AttrValue::Long(level));
        }
        if rng.chance(50) {
            attributes.insert("clearance".into(), AttrValue::Long(rng.below(5) as i64));
        }
        if rng.chance(50) {
            let tags = (0..rng.below(3))
                .map(|_| AttrValue::String(rng.pick(&TAGS).to_string()))
                .collect();
            attributes.insert("tags".into(), AttrValue::Set(tags));
        }
        if rng.chance(30) {
            attributes.insert("region".into(), AttrValue::String("us".into()));
        }
        if rng.chance(40) {
            let score = *rng.pick(&["0.5", "1.5", "2.25", "-1.0"]);
            attributes.insert("score".into(), AttrValue::Decimal(score.into()));
        }
        let mut roles: Vec<RoleGrant> = (0..3u32)
            .filter(|_| rng.chance(30))
            .map(|role| RoleGrant {
                role,
                condition: None,
                expires_at_ms: None,
            })
            .collect();
        roles.sort_by_key(|r| r.role);
        let dept = *rng.pick(&DEPARTMENTS);
        s.users.push(Arc::new(User {
            id: format!("u{u}"),
            source: rng.pick(&SOURCES).to_string(),
            user_name: format!("user{u}@corp.example"),
            external_id: rng.chance(50).then(|| format!("ext{u}")),
            display_name: format!("User {u}"),
            email: rng.chance(80).then(|| format!("user{u}@corp.example")),
            active: true,
            department: (!dept.is_empty()).then(|| dept.to_owned()),
            groups: gs.into_iter().collect(),
            attributes,
            roles,
            end_at_ms: None,
            linked: None,
        }));
    }
    s.groups = groups.into_iter().map(Arc::new).collect();
    // Labels on some providers, models, servers and tools.
    let mut labeled = Vec::new();
    for (kind, id) in [
        (ResourceKind::Provider, "p0"),
        (ResourceKind::Model, "m1"),
        (ResourceKind::McpServer, "srv0"),
        (ResourceKind::McpTool, "srv1/t1"),
    ] {
        if rng.chance(60) {
            let mut labels = BTreeMap::new();
            if rng.chance(70) {
                labels.insert("tier".into(), AttrValue::Long(rng.below(4) as i64));
            }
            if rng.chance(50) {
                labels.insert("class".into(), AttrValue::String("secret".into()));
            }
            labeled.push(LabeledResource {
                kind,
                id: id.into(),
                labels,
            });
        }
    }
    s.labeled_resources = labeled;
    s
}

/// Random policy text over the directory's names. Some policies will not validate; the caller
/// drops those.
struct Gen<'a> {
    rng: &'a mut Rng,
    s: &'a Snapshot,
}

impl Gen<'_> {
    fn group(&mut self) -> String {
        if self.rng.chance(5) {
            return "Group::\"okta/nobody\"".into();
        }
        let g = self.rng.pick(&self.s.groups);
        format!("Group::{:?}", group_id(&g.source, &g.display_name))
    }

    fn user(&mut self) -> String {
        format!("User::\"u{}\"", self.rng.below(self.s.users.len() + 1))
    }

    fn resource_entity(&mut self) -> String {
        match self.rng.below(8) {
            0 => format!("Provider::\"p{}\"", self.rng.below(2)),
            7 => format!("LlmTool::{:?}", self.rng.pick(&ITEMS)),
            1 | 2 => format!("Model::{:?}", self.rng.pick(&MODELS).0),
            3 => format!("McpServer::{:?}", self.rng.pick(&SERVERS)),
            4 => format!(
                "McpTool::\"{}/{}\"",
                self.rng.pick(&SERVERS),
                self.rng.pick(&ITEMS)
            ),
            5 => format!(
                "McpResource::\"{}/{}\"",
                self.rng.pick(&SERVERS),
                self.rng.pick(&ITEMS)
            ),
            _ => format!(
                "McpPrompt::\"{}/{}\"",
                self.rng.pick(&SERVERS),
                self.rng.pick(&ITEMS)
            ),
        }
    }

    fn principal_scope(&mut self) -> String {
        match self.rng.below(9) {
            0 | 1 => "principal".into(),
            2 => format!("principal == {}", self.user()),
            3..=5 => format!("principal in {}", self.group()),
            6 => format!("principal in Role::\"r{}\"", self.rng.below(4)),
            7 => format!("principal in Source::{:?}", self.rng.pick(&SOURCES)),
            _ => format!("principal is User in {}", self.group()),
        }
    }

    fn action_scope(&mut self) -> String {
        let one = |rng: &mut Rng| format!("Action::{:?}", rng.pick(&Action::ALL).cedar_id());
        match self.rng.below(6) {
            0 => "action".into(),
            1 | 2 => format!("action == {}", one(self.rng)),
            3 => format!("action in [{}, {}]", one(self.rng), one(self.rng)),
            _ => format!(
                "action in Action::{:?}",
                self.rng
                    .pick(&["llm", "mcp", "mcp:session", "mcp:discover"])
            ),
        }
    }

    fn resource_scope(&mut self) -> String {
        match self.rng.below(7) {
            0..=2 => "resource".into(),
            3 => format!("resource == {}", self.resource_entity()),
            4 => format!("resource in {}", self.resource_entity()),
            5 => format!(
                "resource is {}",
                self.rng.pick(&[
                    "Model",
                    "McpTool",
                    "McpServer",
                    "Provider",
                    "McpResource",
                    "LlmTool"
                ])
            ),
            _ => format!(
                "resource is McpTool in McpServer::{:?}",
                self.rng.pick(&SERVERS)
            ),
        }
    }

    /// A boolean expression; `fallback` allows constructs left to Cedar.
    fn cond(&mut self, depth: u32) -> String {
        let leaf = depth == 0 || self.rng.chance(45);
        if !leaf {
            let a = self.cond(depth - 1);
            let b = self.cond(depth - 1);
            return match self.rng.below(5) {
                0 | 1 => format!("({a} && {b})"),
                2 => format!("({a} || {b})"),
                3 => format!("!({a})"),
                _ => {
                    let c = self.cond(depth - 1);
                    format!("(if {a} then {b} else {c})")
                }
            };
        }
        let n = self.rng.below(6) as i64;
        match self.rng.below(40) {
            0 => format!("principal.department == {:?}", self.rng.pick(&DEPARTMENTS)),
            1 => format!("principal.level > {n}"),
            2 => format!("principal has clearance && principal.clearance >= {n}"),
            3 => format!(
                "principal has tags && principal.tags.contains({:?})",
                self.rng.pick(&TAGS)
            ),
            4 => "principal has tags && principal.tags.containsAny([\"a\", \"c\"])".into(),
            5 => "principal has tags && principal.tags.containsAll([\"a\", \"b\"])".into(),
            6 => format!("principal.region == {:?}", self.rng.pick(&["eu", "us"])),
            7 => format!("principal in {}", self.group()),
            8 => format!("principal in Role::\"r{}\"", self.rng.below(3)),
            9 => format!("{} in {}", self.group(), self.group()),
            10 => "resource has name && resource.name like \"m*\"".into(),
            11 => "resource has name && resource.name like \"*x\"".into(),
            12 => format!("resource in McpServer::{:?}", self.rng.pick(&SERVERS)),
            13 => format!("resource == {}", self.resource_entity()),
            14 => "resource has tier && resource.tier >= 2".into(),
            15 => "resource.class == \"secret\"".into(),
            16 => "context.stream".into(),
            17 => format!("context.route == {:?}", self.rng.pick(&ROUTES)),
            18 => "context.route like \"/a*\"".into(),
            19 => "action in Action::\"llm\"".into(),
            20 => format!(
                "action == Action::{:?}",
                self.rng.pick(&Action::ALL).cedar_id()
            ),
            21 => "principal.email like \"*@corp.example\"".into(),
            22 => format!("principal == {}", self.user()),
            23 => "resource is Model".into(),
            // Errors: overflow for some levels.
            24 | 34 | 35 => "principal.level * 4611686018427387904 > 1".into(),
            25 | 36 => "principal.level + 9223372036854775000 > 0".into(),
            26 => format!("-principal.level < {n}"),
            27 => format!(
                "[\"Eng\", \"Sales\"].contains(principal.department) == {}",
                self.rng.chance(50)
            ),
            28 => "principal.active".into(),
            29 => "resource has provider && resource.provider == \"p1\"".into(),
            30 => "resource has server && resource.server != \"srv0\"".into(),
            // Left to Cedar: decimals, sets built from attributes, entity literals' attributes.
            31 => "principal has score && principal.score.greaterThan(decimal(\"1.0\"))".into(),
            32 => "[principal.department, \"Ops\"].contains(\"Eng\")".into(),
            33 => format!("{} in {}", self.user(), self.group()),
            38 => format!(
                "Action::{:?} in Action::{:?}",
                self.rng.pick(&Action::ALL).cedar_id(),
                self.rng
                    .pick(&["llm", "mcp", "mcp:session", "mcp:discover"])
            ),
            39 => format!(
                "(if principal.active then {} else principal) in {}",
                self.user(),
                self.group()
            ),
            _ => "principal.level * 3 + 1 > 7".into(),
        }
    }

    fn policy(&mut self, id: usize) -> String {
        let effect = if self.rng.chance(30) {
            "forbid"
        } else {
            "permit"
        };
        let mut text = format!(
            "@id(\"p{id}\")\n{effect} ({}, {}, {})",
            self.principal_scope(),
            self.action_scope(),
            self.resource_scope()
        );
        for _ in 0..self.rng.below(3) {
            let kind = if self.rng.chance(70) {
                "when"
            } else {
                "unless"
            };
            let depth = self.rng.below(3) as u32;
            text.push_str(&format!(" {kind} {{ {} }}", self.cond(depth)));
        }
        text.push_str(";\n");
        text
    }
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(EntityTypeName::from_str(ty).unwrap(), EntityId::new(id))
}

fn value(v: &AttrValue) -> RestrictedExpression {
    match v {
        AttrValue::String(s) => RestrictedExpression::new_string(s.clone()),
        AttrValue::Long(n) => RestrictedExpression::new_long(*n),
        AttrValue::Bool(b) => RestrictedExpression::new_bool(*b),
        AttrValue::Decimal(d) => RestrictedExpression::new_decimal(d),
        AttrValue::Set(items) => RestrictedExpression::new_set(items.iter().map(value)),
    }
}

/// The oracle: the whole directory as one Cedar entity store.
struct Oracle {
    schema: Schema,
    set: cedar_policy::PolicySet,
    directory: Vec<Entity>,
    actions: Vec<Entity>,
    labels: HashMap<(ResourceKind, String), BTreeMap<String, AttrValue>>,
    label_decls: Vec<AttributeDecl>,
}

impl Oracle {
    fn new(s: &Snapshot) -> Self {
        let compiled = policy::compile(&s.schema, &s.policies).expect("valid set");
        let gid = |g: u32| {
            let g = &s.groups[g as usize];
            uid("Group", &group_id(&g.source, &g.display_name))
        };
        let mut directory = Vec::new();
        for (i, g) in s.groups.iter().enumerate() {
            directory.push(Entity::new_no_attrs(
                gid(i as u32),
                g.ancestors.iter().map(|&a| gid(a)).collect(),
            ));
        }
        for src in SOURCES {
            directory.push(Entity::new_no_attrs(uid("Source", src), HashSet::new()));
        }
        for r in &s.roles {
            directory.push(Entity::new_no_attrs(uid("Role", r), HashSet::new()));
        }
        for u in &s.users {
            let str = |v: &str| RestrictedExpression::new_string(v.to_owned());
            let mut attrs = HashMap::from([
                ("userName".to_owned(), str(&u.user_name)),
                ("displayName".to_owned(), str(&u.display_name)),
                ("email".to_owned(), str(u.email.as_deref().unwrap_or(""))),
                (
                    "externalId".to_owned(),
                    str(u.external_id.as_deref().unwrap_or("")),
                ),
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
            for d in &s.principal_attributes {
                if let Some(v) = u.attributes.get(&d.name).or(d.default.as_ref()) {
                    attrs.insert(d.name.clone(), value(v));
                }
            }
            let mut parents: HashSet<EntityUid> = u.groups.iter().map(|&g| gid(g)).collect();
            parents.insert(uid("Source", &u.source));
            for r in &u.roles {
                parents.insert(uid("Role", &s.roles[r.role as usize]));
            }
            directory.push(Entity::new(uid("User", &u.id), attrs, parents).unwrap());
        }
        let actions = compiled
            .schema
            .action_entities()
            .unwrap()
            .iter()
            .cloned()
            .collect();
        Self {
            schema: compiled.schema,
            set: compiled.set,
            directory,
            actions,
            labels: s
                .labeled_resources
                .iter()
                .map(|r| ((r.kind, r.id.clone()), r.labels.clone()))
                .collect(),
            label_decls: s.resource_labels.clone(),
        }
    }

    fn with_labels(
        &self,
        kind: ResourceKind,
        id: &str,
        parent: Option<(ResourceKind, &str)>,
        mut attrs: HashMap<String, RestrictedExpression>,
    ) -> HashMap<String, RestrictedExpression> {
        let own = self.labels.get(&(kind, id.to_owned()));
        let up = parent.and_then(|(k, p)| self.labels.get(&(k, p.to_owned())));
        for d in &self.label_decls {
            let v = own
                .and_then(|o| o.get(&d.name))
                .or_else(|| up.and_then(|p| p.get(&d.name)))
                .or(d.default.as_ref());
            if let Some(v) = v {
                attrs.insert(d.name.clone(), value(v));
            }
        }
        attrs
    }

    fn resource_entities(&self, r: &Resource) -> Vec<Entity> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let mut out = Vec::new();
        let server = |name: &str| {
            Entity::new(
                uid("McpServer", name),
                self.with_labels(ResourceKind::McpServer, name, None, HashMap::new()),
                HashSet::new(),
            )
            .unwrap()
        };
        let provider = |name: &str, kind: &str| {
            Entity::new(
                uid("Provider", name),
                self.with_labels(
                    ResourceKind::Provider,
                    name,
                    None,
                    HashMap::from([("kind".to_owned(), s(kind))]),
                ),
                HashSet::new(),
            )
            .unwrap()
        };
        let child = |kind: ResourceKind, ty: &str, srv: &str, item: &str, attr: &str| {
            let id = format!("{srv}/{item}");
            Entity::new(
                uid(ty, &id),
                self.with_labels(
                    kind,
                    &id,
                    Some((ResourceKind::McpServer, srv)),
                    HashMap::from([(attr.to_owned(), s(item)), ("server".to_owned(), s(srv))]),
                ),
                HashSet::from([uid("McpServer", srv)]),
            )
            .unwrap()
        };
        match r {
            Resource::Model {
                provider: p,
                kind,
                name,
            } => {
                out.push(
                    Entity::new(
                        uid("Model", name),
                        self.with_labels(
                            ResourceKind::Model,
                            name,
                            Some((ResourceKind::Provider, p)),
                            HashMap::from([
                                ("name".to_owned(), s(name)),
                                ("provider".to_owned(), s(p)),
                            ]),
                        ),
                        HashSet::from([uid("Provider", p)]),
                    )
                    .unwrap(),
                );
                out.push(provider(p, kind));
            }
            Resource::Provider { name, kind } => out.push(provider(name, kind)),
            Resource::LlmTool {
                provider: p,
                kind,
                name,
            } => {
                out.push(
                    Entity::new(
                        uid("LlmTool", name),
                        self.with_labels(
                            ResourceKind::LlmTool,
                            name,
                            Some((ResourceKind::Provider, p)),
                            HashMap::from([
                                ("name".to_owned(), s(name)),
                                ("provider".to_owned(), s(p)),
                            ]),
                        ),
                        HashSet::from([uid("Provider", p)]),
                    )
                    .unwrap(),
                );
                out.push(provider(p, kind));
            }
            Resource::McpServer { server: srv } => out.push(server(srv)),
            Resource::McpTool { server: srv, tool } => {
                out.push(child(ResourceKind::McpTool, "McpTool", srv, tool, "name"));
                out.push(server(srv));
            }
            Resource::McpResource { server: srv, uri } => {
                out.push(child(
                    ResourceKind::McpResource,
                    "McpResource",
                    srv,
                    uri,
                    "uri",
                ));
                out.push(server(srv));
            }
            Resource::McpPrompt { server: srv, name } => {
                out.push(child(
                    ResourceKind::McpPrompt,
                    "McpPrompt",
                    srv,
                    name,
                    "name",
                ));
                out.push(server(srv));
            }
        }
        out
    }

    /// (allowed, determining policies, errored policies)
    fn decide(&self, user: &User, r: &Request) -> (bool, Vec<String>, Vec<String>) {
        let mut all = self.directory.clone();
        all.extend(self.actions.iter().cloned());
        all.extend(self.resource_entities(&r.resource));
        let entities = Entities::from_entities(all, None).expect("entities");
        let (rtype, rid) = r.resource.cedar_uid();
        let context = Context::from_pairs([
            (
                "route".to_owned(),
                RestrictedExpression::new_string(r.context.route.clone()),
            ),
            (
                "stream".to_owned(),
                RestrictedExpression::new_bool(r.context.stream),
            ),
        ])
        .unwrap();
        let request = cedar_policy::Request::new(
            uid("User", &user.id),
            uid("Action", r.action.cedar_id()),
            uid(rtype, &rid),
            context,
            Some(&self.schema),
        )
        .expect("request conforms");
        let response = Authorizer::new().is_authorized(&request, &self.set, &entities);
        let mut reason: Vec<String> = response
            .diagnostics()
            .reason()
            .map(PolicyId::to_string)
            .collect();
        reason.sort();
        let mut errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
                e.policy_id().to_string()
            })
            .collect();
        errors.sort();
        (
            response.decision() == cedar_policy::Decision::Allow,
            reason,
            errors,
        )
    }
}

fn request(rng: &mut Rng) -> Request {
    let action = *rng.pick(&Action::ALL);
    let srv = rng.pick(&SERVERS).to_string();
    let item = rng.pick(&ITEMS).to_string();
    let resource = match action {
        Action::Chat | Action::Embed | Action::Responses => {
            let (m, p) = *rng.pick(&MODELS);
            Resource::Model {
                provider: p.into(),
                kind: "openai".into(),
                name: m.into(),
            }
        }
        Action::LlmTool => Resource::LlmTool {
            provider: format!("p{}", rng.below(2)),
            kind: "anthropic".into(),
            name: item,
        },
        Action::ModelsList => Resource::Provider {
            name: format!("p{}", rng.below(2)),
            kind: "anthropic".into(),
        },
        Action::McpToolsCall => Resource::McpTool {
            server: srv,
            tool: item,
        },
        Action::McpResourcesRead => Resource::McpResource {
            server: srv,
            uri: item,
        },
        Action::McpPromptsGet => Resource::McpPrompt {
            server: srv,
            name: item,
        },
        _ => Resource::McpServer { server: srv },
    };
    Request {
        action,
        resource,
        context: RequestContext {
            route: rng.pick(&ROUTES).to_string(),
            stream: rng.chance(50),
            ..Default::default()
        },
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn compiled_path_agrees_with_cedar_on_random_policies() {
    let total = env("PORTCULLIS_DIFF_REQUESTS", 4_000);
    let seed = env("PORTCULLIS_DIFF_SEED", 20261123);
    let per_directory = 50;
    let mut rng = Rng(seed);
    let (mut done, mut allowed, mut forbidden, mut errored, mut dropped) = (0u64, 0, 0, 0, 0);
    let mut policies_total = 0usize;
    let mut fallback_total = 0usize;
    let mut satisfied_fallback = 0usize;
    while done < total {
        let mut s = directory(&mut rng);
        // Keep only policies that validate on their own, so the set does.
        let mut text = String::new();
        let n = 1 + rng.below(14);
        let mut kept = 0;
        while kept < n {
            let p = Gen {
                rng: &mut rng,
                s: &s,
            }
            .policy(kept);
            let one = [PolicyFile {
                name: "one.cedar".into(),
                text: p.clone(),
            }];
            if policy::compile(&s.schema, &one).is_ok() {
                text.push_str(&p);
                kept += 1;
            } else {
                dropped += 1;
            }
        }
        s.policies = vec![PolicyFile {
            name: "random.cedar".into(),
            text: text.clone(),
        }];
        let engine = Engine::new(s.clone()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let oracle = Oracle::new(&s);
        policies_total += n;
        fallback_total += engine.compiled().fallback.len();
        let fallback_ids: HashSet<&str> = engine
            .compiled()
            .fallback
            .iter()
            .map(|f| f.id.as_str())
            .collect();
        for _ in 0..per_directory {
            let user = s.users[rng.below(s.users.len())].clone();
            let r = request(&mut rng);
            let ours = engine.decide(&user, &r);
            let mut our_errors: Vec<String> =
                ours.errors.iter().map(|e| e.policy.to_string()).collect();
            our_errors.sort();
            let theirs = oracle.decide(&user, &r);
            let mut our_ids: Vec<String> = ours.policies.iter().map(str::to_owned).collect();
            our_ids.sort();
            let ours_t = (ours.is_allowed(), our_ids, our_errors);
            assert_eq!(
                ours_t,
                theirs,
                "disagreement (seed {seed}) for {} on {:?} {}\npolicies:\n{text}\nfallback: {:?}\nuser: {user:?}",
                user.id,
                r.action,
                r.resource,
                engine.compiled().fallback
            );
            // The explanation names the same satisfied policies as the decision.
            if done.is_multiple_of(7) {
                let ex = engine.explain(&user, &r);
                assert_eq!(ex.decision, ours);
                for p in &ex.policies {
                    let satisfied = matches!(
                        p.verdict,
                        portcullis_shared::fast::Verdict::Satisfied
                            | portcullis_shared::fast::Verdict::CedarSatisfied
                    );
                    if ours.policy_ids().contains(&p.id.as_str()) {
                        assert!(
                            satisfied,
                            "{} determines but is not satisfied: {ex:?}",
                            p.id
                        );
                    }
                }
            }
            if ours.policy_ids().iter().any(|p| fallback_ids.contains(p)) {
                satisfied_fallback += 1;
            }
            allowed += u64::from(ours.is_allowed());
            forbidden += u64::from(!ours.is_allowed() && !ours.policies.is_empty());
            errored += u64::from(!ours.errors.is_empty());
            done += 1;
        }
    }
    println!(
        "{done} requests (seed {seed}): {allowed} allowed, {forbidden} forbidden, {} default-denied, \
         {errored} with a policy error; {policies_total} policies ({fallback_total} left to Cedar, \
         determining {satisfied_fallback} decisions); {dropped} generated policies did not validate",
        done - allowed - forbidden
    );
    // The generator must exercise every outcome, or the comparison proves little.
    assert!(allowed > done / 20, "too few allows: {allowed}");
    assert!(forbidden > done / 50, "too few forbids: {forbidden}");
    assert!(errored > done / 100, "too few errors: {errored}");
    assert!(
        satisfied_fallback > 0,
        "no decision involved a fallback policy"
    );
}
