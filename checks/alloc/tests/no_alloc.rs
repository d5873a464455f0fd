//! The compiled decision path allocates nothing: after a warm-up decision on each thread,
//! deciding requests that touch scopes, groups, roles, attributes, sets, `like`, labels and a
//! forbid performs no heap allocation (a decision's determining policies live inline up to six;
//! only a policy error or a policy left to Cedar allocates).

use portcullis_shared::engine::Engine;
use portcullis_shared::policy;
use portcullis_shared::request::{Action, Request, RequestContext, Resource};
use portcullis_shared::schema;
use portcullis_shared::snapshot::{
    AttrKind, AttrValue, AttributeDecl, Group, LabeledResource, PolicyFile, ResourceKind,
    RoleGrant, Snapshot, User,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const POLICIES: &str = r#"
@id("sales-chat")
permit (principal in Group::"okta/Sales", action == Action::"chat", resource in Provider::"openai")
  when { principal.level >= 2 && principal.email like "*@corp.example" };
@id("eng-any-llm")
permit (principal in Group::"okta/Eng", action in Action::"llm", resource)
  when { principal has tags && principal.tags.containsAny(["gpu", "ml"]) };
@id("role-tools")
permit (principal in Role::"operator", action == Action::"mcp:tools/call", resource in McpServer::"crm");
@id("no-secret")
forbid (principal, action, resource)
  when { resource.class == "secret" } unless { principal.department == "Legal" };
@id("stream-only-sales")
permit (principal, action == Action::"chat", resource == Model::"gpt-4o")
  when { context.stream && ["Sales", "Eng"].contains(principal.department) };
"#;

fn snapshot() -> Snapshot {
    let mut s = Snapshot::empty(1);
    s.principal_attributes = vec![
        AttributeDecl {
            name: "level".into(),
            kind: AttrKind::Long,
            multi: false,
            default: Some(AttrValue::Long(0)),
            claim: None,
            claim_first: false,
        },
        AttributeDecl {
            name: "tags".into(),
            kind: AttrKind::String,
            multi: true,
            default: None,
            claim: None,
            claim_first: false,
        },
    ];
    s.resource_labels = vec![AttributeDecl {
        name: "class".into(),
        kind: AttrKind::String,
        multi: false,
        default: Some(AttrValue::String("public".into())),
        claim: None,
        claim_first: false,
    }];
    s.labeled_resources = vec![LabeledResource {
        kind: ResourceKind::McpTool,
        id: "crm/export".into(),
        labels: BTreeMap::from([("class".into(), AttrValue::String("secret".into()))]),
    }];
    s.schema = schema::build(&s.principal_attributes, &s.resource_labels);
    s.roles = vec!["operator".into()];
    for (i, name) in ["Eng", "Sales", "All"].into_iter().enumerate() {
        s.groups.push(Arc::new(Group {
            id: format!("g{i}"),
            source: "okta".into(),
            display_name: name.into(),
            ancestors: if name == "All" { vec![] } else { vec![2] },
        }));
    }
    for u in 0..40u32 {
        let dept = ["Sales", "Eng", "Legal", "Ops"][u as usize % 4];
        let mut attributes = BTreeMap::from([("level".into(), AttrValue::Long(i64::from(u % 4)))]);
        if u % 3 == 0 {
            attributes.insert(
                "tags".into(),
                AttrValue::Set(vec![AttrValue::String("ml".into())]),
            );
        }
        s.users.push(Arc::new(User {
            id: format!("u{u}"),
            source: "okta".into(),
            user_name: format!("u{u}@corp.example"),
            external_id: None,
            display_name: format!("U {u}"),
            email: Some(format!("u{u}@corp.example")),
            active: true,
            department: Some(dept.into()),
            groups: match dept {
                "Sales" => vec![1, 2],
                "Eng" => vec![0, 2],
                _ => vec![2],
            },
            attributes,
            roles: if u % 5 == 0 {
                vec![RoleGrant {
                    role: 0,
                    condition: None,
                    expires_at_ms: None,
                }]
            } else {
                Vec::new()
            },
            end_at_ms: None,
            linked: None,
        }));
    }
    s.policies = vec![PolicyFile {
        name: "p.cedar".into(),
        text: POLICIES.into(),
    }];
    s.policy_version.hash = policy::content_hash(&s.schema, &s.policies);
    s
}

fn requests() -> Vec<Request> {
    let ctx = |stream| RequestContext {
        route: "/openai".into(),
        stream,
        now_ms: 1,
        ..Default::default()
    };
    let mut out = Vec::new();
    for (model, provider) in [("gpt-4o", "openai"), ("claude", "anthropic")] {
        for stream in [false, true] {
            out.push(Request {
                action: Action::Chat,
                resource: Resource::Model {
                    provider: provider.into(),
                    kind: provider.into(),
                    name: model.into(),
                },
                context: ctx(stream),
            });
        }
    }
    for tool in ["search", "export"] {
        out.push(Request {
            action: Action::McpToolsCall,
            resource: Resource::McpTool {
                server: "crm".into(),
                tool: tool.into(),
            },
            context: ctx(false),
        });
    }
    out
}

#[test]
fn deciding_allocates_nothing() {
    let s = snapshot();
    let users = s.users.clone();
    let engine = Engine::new(s).expect("engine");
    assert!(engine.compiled().fallback.is_empty());
    let requests = requests();
    // Warm-up: the thread's scratch space grows to its size once.
    let mut outcomes = Vec::new();
    for u in &users {
        for r in &requests {
            outcomes.push(engine.decide(u, r));
        }
    }
    let allowed = outcomes.iter().filter(|d| d.is_allowed()).count();
    let forbidden = outcomes
        .iter()
        .filter(|d| !d.is_allowed() && !d.policies.is_empty())
        .count();
    assert!(
        allowed > 0 && forbidden > 0,
        "{allowed} allowed, {forbidden} forbidden"
    );
    drop(outcomes);

    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let mut n = 0;
    for _ in 0..10 {
        for u in &users {
            for r in &requests {
                let d = engine.decide(u, r);
                n += usize::from(d.is_allowed());
                drop(d);
            }
        }
    }
    COUNTING.store(false, Ordering::Relaxed);
    let counted = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(n > 0);
    assert_eq!(
        counted,
        0,
        "{counted} allocations in {} decisions",
        10 * users.len() * requests.len()
    );
}
