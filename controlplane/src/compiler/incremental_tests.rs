//! Incremental compilation must be indistinguishable from compiling afresh: random
//! directories, random sequences of SCIM-shaped changes (membership, nesting with cycles,
//! attributes, deletes, creates, break-glass), applied in random batches, compared with a
//! full compile of the changed directory after every batch — snapshot and report alike.

use super::*;
use crate::config::Config;
use crate::store::{Member, MemberKind};
use portcullis_shared::snapshot::{AttrKind, AttributeDecl, PolicyVersion};
use proptest::prelude::*;
use serde_json::json;

const EXT: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";
const GROUPS: usize = 7;
const DEPARTMENTS: [&str; 3] = ["Legal", "Sales", "Engineering"];

const BINDINGS: &str = r#"
[[roles]]
name = "engineer"
[[roles]]
name = "legal"
[[roles]]
name = "sales"
[[roles]]
name = "break-glass"
[[roles]]
name = "newcomer"

[[bindings]]
group = "okta/G0"
role = "engineer"
[[bindings]]
group = "okta/G2"
role = "sales"
[bindings.when]
environments = ["prod"]
[[bindings]]
group = "okta/G5"
role = "legal"
[[bindings]]
group = "dynamic/cleared-legal"
role = "legal"
[[bindings]]
group = "dynamic/high"
role = "engineer"

[[dynamic_groups]]
name = "cleared-legal"
rule = 'department == "Legal" && clearance >= 3'
[[dynamic_groups]]
name = "high"
rule = 'clearance >= 4 || department like "Eng*"'

[new_groups]
mode = "default"
roles = ["newcomer"]
reviewed = ["okta/G1"]

[lifecycle]
end_date_attribute = "urn:example:params:scim:schemas:extension:acme:2.0:User:endDate"

[[break_glass]]
name = "emergency"
role = "break-glass"
max_minutes = 60
"#;

fn policy() -> LivePolicy {
    LivePolicy {
        version: PolicyVersion::default(),
        schema: portcullis_shared::schema::SCHEMA.into(),
        attributes: vec![AttributeDecl::new("clearance", AttrKind::Long, false)],
        labels: vec![],
        files: vec![],
    }
}

fn attributes() -> PrincipalAttributes {
    let cfg = Config::parse(
        std::path::Path::new("/tmp/cp.toml"),
        &format!(
            "data_dir = \"d\"\npolicy_dir = \"p\"\n[[sources]]\nname = \"okta\"\n\
             [[sources.extensions]]\nurn = \"{EXT}\"\nname = \"Acme\"\n\
             [[sources.extensions.attributes]]\nname = \"clearance\"\ntype = \"integer\"\n\
             [[sources.extensions.attributes]]\nname = \"endDate\"\ntype = \"string\"\n"
        ),
    )
    .expect("config");
    PrincipalAttributes::from_sources(&cfg.sources)
}

fn bindings() -> Bindings {
    let b = Bindings::from_toml(BINDINGS).expect("bindings");
    b.validate(&policy().attributes).expect("valid");
    b
}

/// A user's directory-visible state: department, clearance, end date (none, readable,
/// unreadable), active.
#[derive(Debug, Clone, Copy)]
struct Traits {
    department: usize,
    clearance: i64,
    end: u8,
    active: bool,
}

fn traits() -> impl Strategy<Value = Traits> {
    (0..DEPARTMENTS.len(), 0..6i64, 0..3u8, any::<bool>()).prop_map(
        |(department, clearance, end, active)| Traits {
            department,
            clearance,
            end,
            active,
        },
    )
}

fn user_row(id: &str, t: Traits) -> UserRow {
    let mut ext = json!({ "clearance": t.clearance });
    match t.end {
        1 => ext["endDate"] = json!("2026-06-01T00:00:00Z"),
        2 => ext["endDate"] = json!("next tuesday"),
        _ => {}
    }
    UserRow {
        id: id.into(),
        source: "okta".into(),
        active: t.active,
        resource: json!({
            "userName": format!("{id}@example.com"),
            "emails": [{"value": format!("{id}@example.com"), "primary": true}],
            ENTERPRISE_USER: { "department": DEPARTMENTS[t.department] },
            EXT: ext,
        }),
        created_ms: 0,
        modified_ms: 0,
        version: 1,
    }
}

fn group_row(g: usize) -> GroupRow {
    GroupRow {
        id: format!("g{g}"),
        source: "okta".into(),
        resource: json!({ "displayName": format!("G{g}") }),
        members: Vec::new(),
        created_ms: 0,
        modified_ms: 0,
        version: 1,
    }
}

fn activation(user: &str, expires_ms: u64) -> ActivationRow {
    ActivationRow {
        id: format!("a-{user}-{expires_ms}"),
        name: "emergency".into(),
        role: "break-glass".into(),
        source: "okta".into(),
        user_id: user.into(),
        user_name: format!("{user}@example.com"),
        reason: "incident".into(),
        author: "oncall".into(),
        activated_ms: 0,
        expires_ms,
        revoked_ms: None,
    }
}

/// One identity change, as SCIM (or the break-glass API) would make it.
#[derive(Debug, Clone)]
enum Op {
    AddMember(usize, usize),
    RemoveMember(usize, usize),
    Nest(usize, usize),
    Unnest(usize, usize),
    Update(usize, Traits),
    Delete(usize),
    Create(Traits),
    Activate(usize, u64),
    Deactivate(usize),
    /// Structural: must be refused, then a fresh build takes over.
    RenameGroup(usize),
}

fn op(users: usize) -> impl Strategy<Value = Op> {
    let u = 0..users + 3;
    let g = 0..GROUPS;
    prop_oneof![
        4 => (g.clone(), u.clone()).prop_map(|(g, u)| Op::AddMember(g, u)),
        3 => (g.clone(), u.clone()).prop_map(|(g, u)| Op::RemoveMember(g, u)),
        3 => (g.clone(), g.clone()).prop_map(|(g, c)| Op::Nest(g, c)),
        2 => (g.clone(), g.clone()).prop_map(|(g, c)| Op::Unnest(g, c)),
        3 => (u.clone(), traits()).prop_map(|(u, t)| Op::Update(u, t)),
        1 => u.clone().prop_map(Op::Delete),
        1 => traits().prop_map(Op::Create),
        1 => (u.clone(), 1..4u64).prop_map(|(u, e)| Op::Activate(u, e * 1000)),
        1 => u.prop_map(Op::Deactivate),
        1 => g.prop_map(Op::RenameGroup),
    ]
}

/// The directory the store would hold, and what changed since the last apply.
struct Model {
    dir: Directory,
    next_user: usize,
    users: BTreeMap<String, bool>,
    groups: BTreeSet<String>,
    /// Group names as the compiler last saw them.
    names: Vec<String>,
}

impl Model {
    fn uid(&self, u: usize) -> String {
        format!("u{u}")
    }

    fn group(&mut self, g: usize) -> &mut GroupRow {
        let id = format!("g{g}");
        self.groups.insert(id.clone());
        self.dir
            .groups
            .iter_mut()
            .find(|r| r.id == id)
            .expect("group")
    }

    fn apply(&mut self, op: &Op) {
        self.dir.revision += 1;
        match *op {
            Op::AddMember(g, u) | Op::RemoveMember(g, u) => {
                let id = self.uid(u);
                let add = matches!(op, Op::AddMember(..));
                // SCIM refuses members that do not exist.
                if add && !self.dir.users.iter().any(|r| r.id == id) {
                    return;
                }
                let row = self.group(g);
                row.members.retain(|m| m.id != id);
                if add {
                    row.members.push(member(&id, MemberKind::User));
                }
            }
            Op::Nest(g, c) | Op::Unnest(g, c) => {
                let id = format!("g{c}");
                let add = matches!(op, Op::Nest(..));
                let row = self.group(g);
                row.members.retain(|m| m.id != id);
                if add {
                    row.members.push(member(&id, MemberKind::Group));
                }
            }
            Op::Update(u, t) => {
                let id = self.uid(u);
                if let Some(row) = self.dir.users.iter_mut().find(|r| r.id == id) {
                    *row = user_row(&id, t);
                    self.users.entry(id).or_insert(false);
                }
            }
            Op::Delete(u) => {
                let id = self.uid(u);
                let before = self.dir.users.len();
                self.dir.users.retain(|r| r.id != id);
                if self.dir.users.len() < before {
                    for g in &mut self.dir.groups {
                        g.members.retain(|m| m.id != id);
                    }
                    self.users.insert(id, true);
                }
            }
            Op::Create(t) => {
                let id = self.uid(self.next_user);
                self.next_user += 1;
                self.dir.users.push(user_row(&id, t));
                self.users.entry(id).or_insert(false);
            }
            Op::Activate(u, expires) => {
                let id = self.uid(u);
                if self.dir.users.iter().any(|r| r.id == id) {
                    self.dir.activations.push(activation(&id, expires));
                }
            }
            Op::Deactivate(u) => {
                let id = self.uid(u);
                self.dir.activations.retain(|a| a.user_id != id);
            }
            Op::RenameGroup(g) => {
                // Back and forth, so every rename is one.
                let row = self.group(g);
                let original = format!("G{g}");
                let name = if row.display_name() == original {
                    format!("G{g} renamed")
                } else {
                    original
                };
                row.resource["displayName"] = json!(name);
            }
        }
    }

    /// Whether a group's name changed since the last [`Model::take_changes`] (two renames
    /// of one group in a batch cancel out).
    fn renamed(&self) -> bool {
        self.dir
            .groups
            .iter()
            .zip(&self.names)
            .any(|(g, n)| g.display_name() != n)
    }

    /// What the publisher reads from the store: every changed row as it is now.
    fn take_changes(&mut self) -> DirectoryChanges {
        self.names = names(&self.dir);
        let users = std::mem::take(&mut self.users)
            .into_iter()
            .map(|(id, removed)| UserChange {
                row: self.dir.users.iter().find(|r| r.id == id).cloned(),
                id,
                removed,
            })
            .collect();
        let groups = std::mem::take(&mut self.groups)
            .into_iter()
            .map(|id| {
                let row = self.dir.groups.iter().find(|r| r.id == id).cloned();
                (id, row)
            })
            .collect();
        DirectoryChanges {
            revision: self.dir.revision,
            users,
            groups,
            activations: self.dir.activations.clone(),
        }
    }
}

fn names(dir: &Directory) -> Vec<String> {
    dir.groups
        .iter()
        .map(|g| g.display_name().to_owned())
        .collect()
}

fn member(id: &str, kind: MemberKind) -> Member {
    Member {
        id: id.into(),
        kind,
        display: None,
    }
}

fn initial(users: &[Traits], memberships: &[(usize, usize)], nesting: &[(usize, usize)]) -> Model {
    let mut dir = Directory {
        revision: 1,
        users: users
            .iter()
            .enumerate()
            .map(|(i, t)| user_row(&format!("u{i}"), *t))
            .collect(),
        groups: (0..GROUPS).map(group_row).collect(),
        activations: Vec::new(),
    };
    for &(g, u) in memberships {
        let id = format!("u{}", u % users.len().max(1));
        if !dir.groups[g].members.iter().any(|m| m.id == id) && !users.is_empty() {
            dir.groups[g].members.push(member(&id, MemberKind::User));
        }
    }
    for &(g, c) in nesting {
        let id = format!("g{c}");
        if !dir.groups[g].members.iter().any(|m| m.id == id) {
            dir.groups[g].members.push(member(&id, MemberKind::Group));
        }
    }
    Model {
        names: names(&dir),
        dir,
        next_user: users.len(),
        users: BTreeMap::new(),
        groups: BTreeSet::new(),
    }
}

fn assert_same(c: &Compiler, dir: &Directory, step: usize) {
    let (p, a, b) = (policy(), attributes(), bindings());
    let (want, want_report) = compile(dir, &p, &a, &b, vec![], 3, 9);
    let got = c.snapshot(3, 9);
    for (g, w) in got.groups.iter().zip(&want.groups) {
        assert_eq!(g, w, "after batch {step}: group {}", w.id);
    }
    for (u, w) in got.users.iter().zip(&want.users) {
        assert_eq!(u, w, "after batch {step}: user {}", w.id);
    }
    assert_eq!(got, want, "after batch {step}: snapshot");
    assert_eq!(c.report(), want_report, "after batch {step}: report");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn applying_changes_equals_compiling_afresh(
        users in prop::collection::vec(traits(), 0..10),
        memberships in prop::collection::vec((0..GROUPS, 0..10usize), 0..25),
        nesting in prop::collection::vec((0..GROUPS, 0..GROUPS), 0..8),
        ops in prop::collection::vec(op(10), 1..30),
        batch in 1..5usize,
    ) {
        let mut model = initial(&users, &memberships, &nesting);
        let (p, a, b) = (policy(), attributes(), bindings());
        let mut c = Compiler::build(model.dir.clone(), &p, &a, &b, vec![]);
        assert_same(&c, &model.dir, 0);
        for (step, chunk) in ops.chunks(batch).enumerate() {
            for op in chunk {
                model.apply(op);
            }
            let structural = model.renamed();
            let changes = model.take_changes();
            match c.apply(changes) {
                Ok(()) => prop_assert!(!structural, "a rename was applied in place"),
                Err(NeedsFull::GroupRenamed(_)) if structural => {
                    c = Compiler::build(model.dir.clone(), &p, &a, &b, vec![]);
                }
                Err(e) => prop_assert!(false, "refused: {e}"),
            }
            assert_same(&c, &model.dir, step + 1);
        }
    }
}

#[test]
fn a_membership_change_shares_every_untouched_user_and_group() {
    let traits = Traits {
        department: 2,
        clearance: 1,
        end: 0,
        active: true,
    };
    let users: Vec<Traits> = vec![traits; 5];
    let mut model = initial(&users, &[(0, 0), (1, 1), (2, 2)], &[(0, 1)]);
    let (p, a, b) = (policy(), attributes(), bindings());
    let mut c = Compiler::build(model.dir.clone(), &p, &a, &b, vec![]);
    let before = c.snapshot(1, 0);
    model.apply(&Op::AddMember(5, 3));
    c.apply(model.take_changes()).expect("applied in place");
    let after = c.snapshot(2, 0);
    for (i, (x, y)) in before.users.iter().zip(&after.users).enumerate() {
        assert_eq!(Arc::ptr_eq(x, y), x.id != "u3", "user {i}");
    }
    assert!(
        before
            .groups
            .iter()
            .zip(&after.groups)
            .all(|(x, y)| Arc::ptr_eq(x, y))
    );
    let u3 = after.users.iter().find(|u| u.id == "u3").expect("u3");
    let legal = after.roles.iter().position(|r| r == "legal").expect("role") as u32;
    assert!(u3.roles.iter().any(|r| r.role == legal), "G5 binds legal");
}

#[test]
fn merge_and_group_creation_are_refused_and_leave_the_state_untouched() {
    let users = vec![
        Traits {
            department: 0,
            clearance: 3,
            end: 0,
            active: true,
        };
        2
    ];
    let mut model = initial(&users, &[(0, 0)], &[]);
    let (p, a) = (policy(), attributes());
    let mut c = Compiler::build(model.dir.clone(), &p, &a, &bindings(), vec![]);
    let before = c.snapshot(1, 0);
    model.dir.groups.push(group_row(GROUPS));
    model.groups.insert(format!("g{GROUPS}"));
    model.apply(&Op::AddMember(0, 1));
    assert_eq!(
        c.apply(model.take_changes()),
        Err(NeedsFull::GroupSet(format!("g{GROUPS}")))
    );
    assert_eq!(c.snapshot(1, 0), before);

    let mut merging = bindings();
    merging.merge =
        Some(toml::from_str("sources = [\"okta\"]\nby = \"email\"").expect("merge section"));
    let mut c = Compiler::build(model.dir.clone(), &p, &a, &merging, vec![]);
    model.apply(&Op::AddMember(1, 1));
    assert_eq!(c.apply(model.take_changes()), Err(NeedsFull::Merge));
}
