use super::*;
use crate::request::{Action, RequestContext};
use crate::snapshot::{Group, PolicyFile, PolicyVersion, RoleGrant};
use std::sync::Arc;

const POLICIES: &str = r#"
@id("sales-chat")
permit(principal in Group::"okta/Sales", action == Action::"chat", resource == Model::"gpt-4o-mini");

@id("rnd-anthropic")
permit(principal in Group::"okta/R&D", action in Action::"llm", resource in Provider::"anthropic");

@id("sales-crm")
permit(principal in Group::"okta/Sales", action == Action::"mcp:tools/call", resource == McpTool::"crm/search_accounts");

@id("sales-crm-session")
permit(principal in Group::"okta/Sales", action in [Action::"mcp:session", Action::"mcp:discover"], resource == McpServer::"crm");

@id("engineers-tools")
permit(principal in Group::"okta/Engineering", action == Action::"mcp:tools/call", resource in McpServer::"dev");

@id("no-bash-outside-platform")
forbid(principal, action == Action::"mcp:tools/call", resource == McpTool::"dev/bash")
  unless { principal.department == "Platform" };

// Evaluation overflows: Cedar skips this policy, so it never forbids anything.
@id("broken-forbid")
forbid(principal, action == Action::"chat", resource)
  when { 9223372036854775807 + 1 > 0 };
"#;

fn group(id: &str, name: &str, ancestors: Vec<u32>) -> Group {
    Group {
        id: id.into(),
        source: "okta".into(),
        display_name: name.into(),
        ancestors,
    }
}

fn user(id: &str, name: &str, active: bool, dept: Option<&str>, groups: Vec<u32>) -> User {
    User {
        id: id.into(),
        source: "okta".into(),
        user_name: name.into(),
        external_id: Some(format!("ext-{id}")),
        display_name: name.into(),
        email: Some(name.into()),
        active,
        department: dept.map(Into::into),
        groups,
        attributes: Default::default(),
        roles: Vec::new(),
        end_at_ms: None,
        linked: None,
    }
}

fn engine_with(policies: &str) -> Engine {
    let mut s = Snapshot::empty(1);
    // 0 R&D, 1 Engineering (in R&D), 2 Senior Engineers (in Engineering, R&D), 3 Sales, 4 Legal
    s.groups = vec![
        group("g-rnd", "R&D", vec![]),
        group("g-eng", "Engineering", vec![0]),
        group("g-sen", "Senior Engineers", vec![0, 1]),
        group("g-sales", "Sales", vec![]),
        group("g-legal", "Legal", vec![]),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    s.users = vec![
        user("u-ana", "Ana@Example.com", true, Some("Sales"), vec![3]),
        user(
            "u-ben",
            "ben@example.com",
            true,
            Some("Apps"),
            vec![0, 1, 2],
        ),
        user("u-cy", "cy@example.com", false, None, vec![3]),
        user(
            "u-dee",
            "dee@example.com",
            true,
            Some("Platform"),
            vec![0, 1],
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    s.policies = vec![PolicyFile {
        name: "test.cedar".into(),
        text: policies.into(),
    }];
    s.policy_version = PolicyVersion {
        counter: 1,
        hash: policy::content_hash(&s.schema, &s.policies),
    };
    Engine::new(s).expect("engine builds")
}

fn engine() -> Engine {
    engine_with(POLICIES)
}

fn chat(provider: &str, model: &str) -> Request {
    Request {
        action: Action::Chat,
        resource: Resource::Model {
            provider: provider.into(),
            kind: provider.into(),
            name: model.into(),
        },
        context: RequestContext {
            route: "/openai".into(),
            stream: false,
            ..Default::default()
        },
    }
}

fn tool(server: &str, name: &str) -> Request {
    Request {
        action: Action::McpToolsCall,
        resource: Resource::McpTool {
            server: server.into(),
            tool: name.into(),
        },
        context: RequestContext::default(),
    }
}

fn who(e: &Engine, name: &str) -> Arc<User> {
    match e.find_user("okta", PrincipalClaim::EmailToUserName, name) {
        Lookup::Found(u) => u,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn group_member_is_permitted_and_the_policy_is_named() {
    let e = engine();
    let d = e.decide(&who(&e, "ana@example.com"), &chat("openai", "gpt-4o-mini"));
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.reason, Reason::Permitted);
    assert_eq!(d.policy_ids(), ["sales-chat"]);
}

#[test]
fn default_deny_names_no_policy() {
    let e = engine();
    let d = e.decide(&who(&e, "ana@example.com"), &chat("openai", "gpt-4o"));
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.reason, Reason::NoMatchingPermit);
    assert!(d.policies.is_empty());
}

#[test]
fn nested_groups_carry_every_ancestor() {
    let e = engine();
    let d = e.decide(
        &who(&e, "ben@example.com"),
        &chat("anthropic", "claude-sonnet"),
    );
    assert_eq!(d.policy_ids(), ["rnd-anthropic"], "{d:?}");
}

#[test]
fn inactive_principals_are_denied_before_policies() {
    let e = engine();
    let d = e.decide(&who(&e, "cy@example.com"), &chat("openai", "gpt-4o-mini"));
    assert_eq!(d.reason, Reason::PrincipalInactive);
}

#[test]
fn forbid_overrides_permit_and_unless_exempts() {
    let e = engine();
    let ben = who(&e, "ben@example.com");
    let d = e.decide(&ben, &tool("dev", "bash"));
    assert_eq!(d.reason, Reason::Forbidden);
    assert_eq!(d.policy_ids(), ["no-bash-outside-platform"]);
    assert!(e.decide(&ben, &tool("dev", "grep")).is_allowed());
    let dee = who(&e, "dee@example.com");
    let d = e.decide(&dee, &tool("dev", "bash"));
    assert_eq!(d.policy_ids(), ["engineers-tools"], "{d:?}");
}

#[test]
fn an_erroring_policy_is_skipped_as_cedar_skips_it() {
    let e = engine();
    let d = e.decide(&who(&e, "ana@example.com"), &chat("openai", "gpt-4o-mini"));
    assert!(d.is_allowed(), "{d:?}");
    assert_eq!(d.errors.len(), 1, "{d:?}");
    assert!(
        d.errors[0].to_string().contains("broken-forbid"),
        "{:?}",
        d.errors
    );
}

#[test]
fn action_groups_apply() {
    let e = engine();
    let ana = who(&e, "ana@example.com");
    let init = Request {
        action: Action::McpInitialize,
        resource: Resource::McpServer {
            server: "crm".into(),
        },
        context: RequestContext::default(),
    };
    assert_eq!(e.decide(&ana, &init).policy_ids(), ["sales-crm-session"]);
    let list = Request {
        action: Action::McpToolsList,
        ..init.clone()
    };
    assert!(e.decide(&ana, &list).is_allowed());
    let other = Request {
        action: Action::McpOther,
        ..init
    };
    assert!(!e.decide(&ana, &other).is_allowed());
}

#[test]
fn user_lookup_follows_the_claim_mapping() {
    let e = engine();
    let found = |s, c, v| matches!(e.find_user(s, c, v), Lookup::Found(_));
    assert!(found(
        "okta",
        PrincipalClaim::EmailToUserName,
        "ANA@example.COM"
    ));
    assert!(!found(
        "entra",
        PrincipalClaim::EmailToUserName,
        "ana@example.com"
    ));
    assert!(found("okta", PrincipalClaim::SubToExternalId, "ext-u-ana"));
    assert!(!found("okta", PrincipalClaim::SubToExternalId, "EXT-U-ANA"));
}

#[test]
fn a_claim_naming_two_users_is_ambiguous_never_guessed() {
    let mut s = engine().to_snapshot();
    Arc::make_mut(&mut s.users[1]).external_id = s.users[0].external_id.clone();
    let e = Engine::new(s).expect("engine");
    assert_eq!(
        e.find_user("okta", PrincipalClaim::SubToExternalId, "ext-u-ana"),
        Lookup::Ambiguous
    );
    assert_eq!(e.ambiguous_keys(), 1);
}

#[test]
fn a_group_of_another_source_with_the_same_name_grants_nothing() {
    let mut s = engine().to_snapshot();
    // An "entra" group also named Sales, and an entra user in it.
    s.groups.push(Arc::new(Group {
        id: "g-entra-sales".into(),
        source: "entra".into(),
        display_name: "Sales".into(),
        ancestors: vec![],
    }));
    let mut eve = user("u-eve", "eve@example.com", true, None, vec![5]);
    eve.source = "entra".into();
    s.users.push(Arc::new(eve));
    let e = Engine::new(s).expect("engine");
    let eve = match e.find_user("entra", PrincipalClaim::EmailToUserName, "eve@example.com") {
        Lookup::Found(u) => u,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        e.decide(&eve, &chat("openai", "gpt-4o-mini")).reason,
        Reason::NoMatchingPermit
    );
}

#[test]
fn a_snapshot_whose_policies_do_not_match_their_version_is_refused() {
    let mut s = engine().to_snapshot();
    s.policy_version.hash = crate::Hash32::of(b"something else");
    assert!(matches!(Engine::new(s), Err(EngineError::Inconsistent(_))));
}

#[test]
fn invalid_policies_refuse_the_engine() {
    let mut s = engine().to_snapshot();
    s.policies[0]
        .text
        .push_str("\npermit(principal, action == Action::\"fly\", resource);");
    s.policy_version.hash = policy::content_hash(&s.schema, &s.policies);
    assert!(matches!(Engine::new(s), Err(EngineError::Policy(_))));
}

#[test]
fn declared_principal_attributes_reach_policies() {
    use crate::snapshot::{AttrKind, AttrValue, AttributeDecl};
    let decl = |name: &str, kind, multi| AttributeDecl::new(name, kind, multi);
    let mut s = Snapshot::empty(1);
    s.principal_attributes = vec![
        decl("clearance", AttrKind::Long, false),
        decl("ethical-wall", AttrKind::String, false),
        decl("quota", AttrKind::Decimal, false),
        decl("projects", AttrKind::String, true),
    ];
    s.schema = crate::schema::with_principal_attributes(&s.principal_attributes);
    let mut ana = user("u-ana", "ana@example.com", true, None, vec![]);
    ana.attributes = [
        ("clearance".to_owned(), AttrValue::Long(4)),
        ("ethical-wall".to_owned(), AttrValue::String("buy".into())),
        ("quota".to_owned(), AttrValue::Decimal("2.5".into())),
        (
            "projects".to_owned(),
            AttrValue::Set(vec![AttrValue::String("apollo".into())]),
        ),
    ]
    .into();
    let mut ben = user("u-ben", "ben@example.com", true, None, vec![]);
    ben.attributes = [("clearance".to_owned(), AttrValue::Long(2))].into();
    let cy = user("u-cy", "cy@example.com", true, None, vec![]);
    s.users = vec![ana, ben, cy].into_iter().map(Arc::new).collect();
    s.policies = vec![PolicyFile {
        name: "attrs.cedar".into(),
        text: r#"
@id("cleared")
permit(principal, action == Action::"chat", resource)
  when { principal has clearance && principal.clearance >= 3 };

@id("wall")
forbid(principal, action == Action::"chat", resource == Model::"sell-side")
  when { principal has "ethical-wall" && principal["ethical-wall"] == "buy" };

@id("quota")
permit(principal, action == Action::"chat", resource == Model::"metered")
  when { principal has quota && principal.quota.greaterThan(decimal("1.0")) };

@id("apollo")
permit(principal, action == Action::"chat", resource == Model::"apollo")
  when { principal has projects && principal.projects.contains("apollo") };
"#
        .into(),
    }];
    s.policy_version = PolicyVersion {
        counter: 1,
        hash: policy::content_hash(&s.schema, &s.policies),
    };
    let e = Engine::new(s).expect("engine builds with declared attributes");
    let decide = |name: &str, model: &str| e.decide(&who(&e, name), &chat("openai", model));

    let d = decide("ana@example.com", "gpt-4o");
    assert_eq!((d.effect, d.policy_ids()), (Effect::Allow, vec!["cleared"]));
    assert_eq!(
        decide("ben@example.com", "gpt-4o").effect,
        Effect::Deny,
        "clearance 2"
    );
    assert_eq!(
        decide("cy@example.com", "gpt-4o").effect,
        Effect::Deny,
        "no clearance"
    );
    let d = decide("ana@example.com", "sell-side");
    assert_eq!((d.effect, &d.reason), (Effect::Deny, &Reason::Forbidden));
    assert!(d.policy_ids().contains(&"wall"), "{d:?}");
    assert_eq!(decide("ben@example.com", "metered").effect, Effect::Deny);
    let d = decide("ana@example.com", "apollo");
    assert_eq!(d.effect, Effect::Allow);
    assert!(d.policy_ids().contains(&"apollo"), "{d:?}");
}

#[test]
fn undeclared_or_unguarded_attributes_fail_validation() {
    use crate::snapshot::{AttrKind, AttributeDecl};
    let check = |schema: &str, condition: &str| {
        policy::compile(
            schema,
            &[PolicyFile {
                name: "a.cedar".into(),
                text: format!("permit(principal, action, resource) when {{ {condition} }};"),
            }],
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let declared = crate::schema::with_principal_attributes(&[AttributeDecl::new(
        "clearance",
        AttrKind::Long,
        false,
    )]);
    let guarded = "principal has clearance && principal.clearance > 1";
    assert_eq!(check(&declared, guarded), Ok(()));
    let err = check(&declared, "principal.clearance > 1").unwrap_err();
    assert!(
        err.contains("clearance"),
        "optional attributes need `has`: {err}"
    );
    let err = check(crate::schema::SCHEMA, "principal.clearance > 1").unwrap_err();
    assert!(err.contains("clearance"), "{err}");
    // Guarded but undeclared (or misspelt): Cedar types it as always false; rejected.
    let err = check(crate::schema::SCHEMA, guarded).unwrap_err();
    assert!(
        err.contains("impossible") && err.contains("not declared"),
        "{err}"
    );
    let err = check(
        &declared,
        "principal has clearence && principal.clearence > 1",
    )
    .unwrap_err();
    assert!(err.contains("a.cedar:1"), "{err}");
}

// ---- roles, conditions, break-glass and end dates -----------------------------------------

const ROLE_POLICIES: &str = r#"
@id("legal-chat")
permit(principal in Role::"legal", action == Action::"chat", resource);
@id("glass-tools")
permit(principal in Role::"break-glass", action == Action::"mcp:tools/call", resource);
"#;

/// Ana holds `legal` only in prod for tenant acme until t=2000, and `break-glass` until
/// t=5000; Ben holds `legal` everywhere but his access ends at t=3000.
fn role_engine() -> Engine {
    let mut s = Snapshot::empty(1);
    s.groups = vec![group("g-legal", "Legal", vec![])]
        .into_iter()
        .map(Arc::new)
        .collect();
    s.roles = vec!["break-glass".into(), "legal".into()];
    s.conditions = vec![crate::snapshot::Condition {
        environments: vec!["prod".into()],
        tenants: vec!["acme".into()],
        not_before_ms: None,
        not_after_ms: Some(2000),
    }];
    let mut ana = user("u-ana", "ana@example.com", true, None, vec![0]);
    ana.roles = vec![
        RoleGrant {
            role: 0,
            condition: None,
            expires_at_ms: Some(5000),
        },
        RoleGrant {
            role: 1,
            condition: Some(0),
            expires_at_ms: None,
        },
    ];
    let mut ben = user("u-ben", "ben@example.com", true, None, vec![0]);
    ben.roles = vec![RoleGrant {
        role: 1,
        condition: None,
        expires_at_ms: None,
    }];
    ben.end_at_ms = Some(3000);
    s.users = vec![ana, ben].into_iter().map(Arc::new).collect();
    s.policies = vec![PolicyFile {
        name: "roles.cedar".into(),
        text: ROLE_POLICIES.into(),
    }];
    s.policy_version = PolicyVersion {
        counter: 1,
        hash: policy::content_hash(&s.schema, &s.policies),
    };
    Engine::new(s).expect("engine builds")
}

fn at(mut r: Request, now_ms: u64, env: Option<&str>, tenant: Option<&str>) -> Request {
    r.context.now_ms = now_ms;
    r.context.environment = env.map(Into::into);
    r.context.tenant = tenant.map(Into::into);
    r
}

#[test]
fn conditional_roles_hold_only_where_and_when_bound() {
    let e = role_engine();
    let ana = who(&e, "ana@example.com");
    let chat = || chat("openai", "gpt-4o");
    let allowed = |r: Request| e.decide(&ana, &r).is_allowed();
    assert!(allowed(at(chat(), 1000, Some("prod"), Some("acme"))));
    assert!(!allowed(at(chat(), 1000, Some("staging"), Some("acme"))));
    assert!(!allowed(at(chat(), 1000, Some("prod"), Some("globex"))));
    assert!(!allowed(at(chat(), 1000, None, Some("acme"))));
    assert!(
        !allowed(at(chat(), 2000, Some("prod"), Some("acme"))),
        "window ended"
    );
}

#[test]
fn break_glass_grants_end_at_their_expiry_without_the_control_plane() {
    let e = role_engine();
    let ana = who(&e, "ana@example.com");
    let call = |now| e.decide(&ana, &at(tool("crm", "export"), now, None, None));
    assert_eq!(call(4999).policy_ids(), ["glass-tools"]);
    assert_eq!(call(5000).reason, Reason::NoMatchingPermit);
}

#[test]
fn planned_end_dates_deny_from_their_instant() {
    let e = role_engine();
    let ben = who(&e, "ben@example.com");
    let chat_at = |now| e.decide(&ben, &at(chat("openai", "gpt-4o"), now, None, None));
    assert!(chat_at(2999).is_allowed());
    assert_eq!(chat_at(3000).reason, Reason::PrincipalEnded);
}

#[test]
fn role_grants_out_of_range_are_refused() {
    let mut s = role_engine().to_snapshot();
    Arc::make_mut(&mut s.users[0]).roles[0].condition = Some(9);
    assert!(matches!(Engine::new(s), Err(EngineError::Inconsistent(_))));
}

#[test]
fn defaults_claims_and_resource_labels_reach_policies() {
    use crate::snapshot::{AttrKind, AttrValue, AttributeDecl, LabeledResource, ResourceKind};
    let mut clearance = AttributeDecl::new("clearance", AttrKind::Long, false);
    clearance.default = Some(AttrValue::Long(0));
    clearance.claim = Some("clearance".into());
    clearance.claim_first = false;
    let mut wall = AttributeDecl::new("wall", AttrKind::String, false);
    wall.default = Some(AttrValue::String(String::new()));
    wall.claim = Some("wall".into());
    wall.claim_first = true;
    let mut s = Snapshot::empty(1);
    s.principal_attributes = vec![clearance, wall];
    let label = |name: &str, kind, default| {
        let mut d = AttributeDecl::new(name, kind, false);
        d.default = Some(default);
        d
    };
    s.resource_labels = vec![
        label("clearance", AttrKind::Long, AttrValue::Long(0)),
        label("wall", AttrKind::String, AttrValue::String(String::new())),
    ];
    let labeled = |kind, id: &str, labels: &[(&str, AttrValue)]| LabeledResource {
        kind,
        id: id.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    };
    s.labeled_resources = vec![
        labeled(
            ResourceKind::Provider,
            "anthropic",
            &[("clearance", AttrValue::Long(2))],
        ),
        labeled(
            ResourceKind::Model,
            "opus",
            &[("clearance", AttrValue::Long(4))],
        ),
        labeled(
            ResourceKind::McpServer,
            "deals",
            &[("wall", AttrValue::String("sell-side".into()))],
        ),
        labeled(
            ResourceKind::McpTool,
            "deals/export",
            &[("clearance", AttrValue::Long(3))],
        ),
    ];
    s.schema = crate::schema::build(&s.principal_attributes, &s.resource_labels);
    let mut ana = user("u-ana", "ana@example.com", true, None, vec![]);
    ana.attributes = [
        ("clearance".to_owned(), AttrValue::Long(3)),
        ("wall".to_owned(), AttrValue::String("buy-side".into())),
    ]
    .into();
    let ben = user("u-ben", "ben@example.com", true, None, vec![]);
    s.users = vec![ana, ben].into_iter().map(Arc::new).collect();
    s.policies = vec![PolicyFile {
        name: "labels.cedar".into(),
        // No `has`: with defaults every principal and resource carries both.
        text: r#"
@id("cleared")
permit(principal, action, resource)
  when { principal.clearance >= resource.clearance };

@id("wall")
forbid(principal, action, resource)
  when { resource.wall != "" && principal.wall != resource.wall };
"#
        .into(),
    }];
    s.policy_version = PolicyVersion {
        counter: 1,
        hash: policy::content_hash(&s.schema, &s.policies),
    };
    let e = Engine::new(s).expect("engine builds with labels and defaults");
    let with_claims = |mut r: Request, claims: Vec<(u32, AttrValue)>| {
        r.context.claims = claims;
        r
    };
    let ana = who(&e, "ana@example.com");
    let ben = who(&e, "ben@example.com");

    // Models: own label (4) beats the provider's (2); an unlabelled model inherits its
    // provider's; elsewhere the default (0).
    assert_eq!(
        e.decide(&ana, &chat("anthropic", "opus")).effect,
        Effect::Deny
    );
    assert_eq!(
        e.decide(&ana, &chat("anthropic", "haiku")).effect,
        Effect::Allow
    );
    assert_eq!(
        e.decide(&ben, &chat("anthropic", "haiku")).effect,
        Effect::Deny
    );
    assert_eq!(
        e.decide(&ben, &chat("openai", "gpt-4o")).effect,
        Effect::Allow
    );

    // Tools: the server's wall is inherited; the tool's own clearance applies.
    let d = e.decide(&ana, &tool("deals", "export"));
    assert_eq!((d.effect, d.policy_ids()), (Effect::Deny, vec!["wall"]));
    // A wall claim listed first overrides the directory's value.
    let sell = with_claims(
        tool("deals", "export"),
        vec![(1, AttrValue::String("sell-side".into()))],
    );
    assert_eq!(e.decide(&ana, &sell).effect, Effect::Allow);
    // Ben has no clearance in the directory: a clearance claim fills in (listed after the
    // directory), but does not override Ana's directory value.
    let cleared = |r: Request| {
        with_claims(
            r,
            vec![
                (0, AttrValue::Long(9)),
                (1, AttrValue::String("sell-side".into())),
            ],
        )
    };
    assert_eq!(
        e.decide(&ben, &cleared(tool("deals", "export"))).effect,
        Effect::Allow
    );
    assert_eq!(
        e.decide(&ben, &tool("deals", "export")).effect,
        Effect::Deny
    );
    assert_eq!(
        e.decide(&ana, &cleared(chat("anthropic", "opus"))).effect,
        Effect::Deny
    );
}

#[test]
fn a_linked_account_decides_as_its_merged_principal() {
    use crate::snapshot::Linked;
    let mut s = Snapshot::empty(1);
    let mut okta = user("o-sam", "sam@example.com", true, None, vec![]);
    okta.linked = Some(Linked {
        principal_id: "u-sam".into(),
        sources: vec!["entra".into(), "okta".into()],
    });
    s.users = vec![okta].into_iter().map(Arc::new).collect();
    s.policies = vec![PolicyFile {
        name: "merge.cedar".into(),
        text: r#"
@id("entra-staff")
permit(principal in Source::"entra", action == Action::"chat", resource);
@id("sam")
permit(principal == User::"u-sam", action == Action::"embed", resource);
"#
        .into(),
    }];
    s.policy_version = PolicyVersion {
        counter: 1,
        hash: policy::content_hash(&s.schema, &s.policies),
    };
    let e = Engine::new(s).expect("engine");
    let sam = who(&e, "sam@example.com");
    let d = e.decide(&sam, &chat("openai", "gpt-4o"));
    assert_eq!(
        d.policy_ids(),
        ["entra-staff"],
        "in every linked source: {d:?}"
    );
    let mut embed = chat("openai", "text-embedding-3-small");
    embed.action = Action::Embed;
    assert!(e.decide(&sam, &embed).is_allowed());
}

#[test]
fn partner_guests_decide_with_their_partners_roles() {
    use crate::snapshot::Partner;
    let mut s = Snapshot::empty(1);
    s.groups = vec![Group {
        id: "partner:contoso".into(),
        source: "partner".into(),
        display_name: "contoso".into(),
        ancestors: vec![],
    }]
    .into_iter()
    .map(Arc::new)
    .collect();
    s.roles = vec!["partner-support".into()];
    s.partners = vec![Partner {
        source: "entra".into(),
        tenant: "tid-1".into(),
        group: 0,
        roles: vec![RoleGrant {
            role: 0,
            condition: None,
            expires_at_ms: None,
        }],
    }];
    s.policies = vec![PolicyFile {
        name: "partners.cedar".into(),
        text: r#"
@id("partner-chat")
permit(principal in Role::"partner-support", action == Action::"chat", resource == Model::"small");
@id("contoso-embed")
permit(principal in Group::"partner/contoso", action == Action::"embed", resource);
"#
        .into(),
    }];
    s.policy_version = PolicyVersion {
        counter: 1,
        hash: policy::content_hash(&s.schema, &s.policies),
    };
    let e = Engine::new(s).expect("engine");
    assert_eq!(e.find_partner("entra", "tid-1"), Some(0));
    assert_eq!(
        e.find_partner("okta", "tid-1"),
        None,
        "tenants are per source"
    );
    let pat = e.guest(0, "pat@contoso.example");
    assert_eq!(pat.id, "partner:contoso/pat@contoso.example");
    assert!(e.decide(&pat, &chat("openai", "small")).is_allowed());
    assert!(!e.decide(&pat, &chat("openai", "large")).is_allowed());
    let mut embed = chat("openai", "large");
    embed.action = Action::Embed;
    assert!(e.decide(&pat, &embed).is_allowed());
}

fn offered(provider: &str, name: &str) -> Request {
    Request {
        action: Action::LlmTool,
        resource: Resource::LlmTool {
            provider: provider.into(),
            kind: provider.into(),
            name: name.into(),
        },
        context: RequestContext::default(),
    }
}

#[test]
fn tools_are_decided_only_when_a_policy_names_the_tool_action() {
    // The usual policies say nothing of tools: requests carrying some are not touched.
    assert!(!engine().governs_tools());
    // `action` unscoped does not count: it is not a statement about tools.
    assert!(!engine_with("permit(principal, action, resource);").governs_tools());
    // A tool resource does, whatever the action scope says.
    assert!(
        engine_with("forbid(principal, action, resource == LlmTool::\"Bash\");").governs_tools()
    );
    assert!(engine_with("forbid(principal, action, resource is LlmTool);").governs_tools());

    let e = engine_with(
        r#"
@id("tools")
permit(principal, action == Action::"llm:tool", resource);

@id("sales-no-bash")
@tool("strip")
forbid(principal in Group::"okta/Sales", action == Action::"llm:tool", resource == LlmTool::"Bash");

@id("no-webfetch-on-anthropic")
forbid(principal, action in [Action::"llm:tool"], resource == LlmTool::"WebFetch")
  when { resource.provider == "anthropic" };

@id("sales-no-webfetch")
@tool("strip")
forbid(principal in Group::"okta/Sales", action == Action::"llm:tool", resource == LlmTool::"WebFetch");
"#,
    );
    assert!(e.governs_tools());
    let ana = who(&e, "ana@example.com");
    let ben = who(&e, "ben@example.com");
    let d = e.decide(&ana, &offered("anthropic", "Bash"));
    assert!(!d.is_allowed());
    assert_eq!(d.policy_ids(), ["sales-no-bash"]);
    assert!(e.strips_tool(&d), "forbidden by a stripping policy only");
    assert!(e.decide(&ben, &offered("anthropic", "Bash")).is_allowed());
    let d = e.decide(&ben, &offered("anthropic", "WebFetch"));
    assert!(!d.is_allowed());
    assert!(!e.strips_tool(&d), "a plain forbid refuses the request");
    assert!(e.decide(&ben, &offered("openai", "WebFetch")).is_allowed());
    // Forbidden by a stripping and a plain policy at once: the plain one wins.
    let d = e.decide(&ana, &offered("anthropic", "WebFetch"));
    assert_eq!(d.policy_ids().len(), 2);
    assert!(!e.strips_tool(&d), "{:?}", d.policy_ids());
    // An allowed decision strips nothing.
    assert!(!e.strips_tool(&e.decide(&ana, &offered("openai", "Read"))));
}

#[test]
fn tool_annotation_values_are_checked() {
    let mut s = Snapshot::empty(1);
    s.policies = vec![PolicyFile {
        name: "t.cedar".into(),
        text: "@tool(\"remove\")\nforbid(principal, action == Action::\"llm:tool\", resource);"
            .into(),
    }];
    let err = policy::compile(&s.schema, &s.policies).expect_err("refused");
    assert!(err.to_string().contains("@tool(\"strip\")"), "{err}");
}
