//! Compiling a large directory into a snapshot.
//!
//! 100,000 users, 20,000 groups nested up to 10 levels deep, 1,000,000 direct memberships,
//! 1,000 dynamic-group rules and 2,000 role bindings, compiled by the control plane's real
//! compiler from in-memory store rows. Prints the full compile time; the time from one
//! membership change, one attribute change and one nesting move to a new snapshot, applied to
//! the compiler's state in place (what the control plane's publisher does); the snapshot's
//! size; and the memory a compile needs — next to a reference measured in the same run:
//! encoding the whole snapshot. The run ends by checking that the state after every change
//! equals a fresh compile of the changed directory.
//!
//! `cargo bench -p portcullis-benches --bench compile` (set `COMPILE_BENCH_USERS` to scale).

use portcullis_controlplane::attributes::PrincipalAttributes;
use portcullis_controlplane::bindings::Bindings;
use portcullis_controlplane::compiler::{Compiler, Directory, DirectoryChanges, UserChange};
use portcullis_controlplane::config::Config;
use portcullis_controlplane::policies::LivePolicy;
use portcullis_controlplane::store::{GroupRow, Member, MemberKind, UserRow};
use portcullis_shared::codec;
use portcullis_shared::snapshot::{AttrKind, AttributeDecl, PolicyVersion};
use serde_json::json;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const EXT: &str = "urn:example:params:scim:schemas:extension:bench:2.0:User";
const LEVELS: usize = 10;

/// A small deterministic generator (xorshift64*), so every run compiles the same directory.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

fn directory(users: usize, groups: usize, memberships: usize) -> Directory {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let per_level = groups / LEVELS;
    let mut rows: Vec<GroupRow> = (0..groups)
        .map(|g| GroupRow {
            id: format!("g{g}"),
            source: "bench".into(),
            resource: json!({ "displayName": format!("Group {g}") }),
            members: Vec::new(),
            created_ms: 0,
            modified_ms: 0,
            version: 1,
        })
        .collect();
    // Level l+1 groups are nested in a level-l group: chains up to LEVELS deep.
    for g in per_level..groups {
        let level = g / per_level;
        let parent = (level - 1) * per_level + rng.below(per_level);
        rows[parent].members.push(Member {
            id: format!("g{g}"),
            kind: MemberKind::Group,
            display: None,
        });
    }
    for m in 0..memberships {
        let u = m % users;
        let g = rng.below(groups);
        rows[g].members.push(Member {
            id: format!("u{u}"),
            kind: MemberKind::User,
            display: None,
        });
    }
    let users = (0..users)
        .map(|u| UserRow {
            id: format!("u{u}"),
            source: "bench".into(),
            resource: json!({
                "userName": format!("user{u}@bench.example"),
                "emails": [{"value": format!("user{u}@bench.example"), "primary": true}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                    {"department": format!("Dept {}", u % 1000)},
                EXT: {"clearance": (u % 5) as i64},
            }),
            created_ms: 0,
            modified_ms: 0,
            version: 1,
            active: true,
        })
        .collect();
    Directory {
        revision: 1,
        users,
        groups: rows,
        activations: Vec::new(),
    }
}

fn bindings(groups: usize, rules: usize) -> Bindings {
    let mut t = String::new();
    for r in 0..100 {
        let _ = writeln!(t, "[[roles]]\nname = \"role-{r}\"");
    }
    for b in 0..2000 {
        let _ = writeln!(
            t,
            "[[bindings]]\ngroup = \"bench/Group {}\"\nrole = \"role-{}\"",
            (b * 7919) % groups,
            b % 100
        );
    }
    for d in 0..rules {
        // Most rules pin a department (indexed); one in twenty only reads numbers and
        // strings (tested against every user).
        let rule = if d % 20 == 0 {
            format!("clearance >= 4 && email like \"*{d}@bench.example\"")
        } else {
            format!(
                "department == \"Dept {}\" && clearance >= {}",
                d % 1000,
                d % 5
            )
        };
        let _ = writeln!(t, "[[dynamic_groups]]\nname = \"dyn-{d}\"\nrule = '{rule}'");
        let _ = writeln!(
            t,
            "[[bindings]]\ngroup = \"dynamic/dyn-{d}\"\nrole = \"role-{}\"",
            d % 100
        );
    }
    t.push_str("[new_groups]\nmode = \"default\"\nroles = [\"role-0\"]\n");
    let b = Bindings::from_toml(&t).expect("bench bindings parse");
    b.validate(&decls()).expect("bench bindings are valid");
    b
}

fn decls() -> Vec<AttributeDecl> {
    vec![AttributeDecl::new("clearance", AttrKind::Long, false)]
}

fn attributes() -> PrincipalAttributes {
    let cfg = Config::parse(
        std::path::Path::new("/nonexistent/cp.toml"),
        &format!(
            "data_dir = \"d\"\npolicy_dir = \"p\"\n[[sources]]\nname = \"bench\"\n\
             [[sources.extensions]]\nurn = \"{EXT}\"\nname = \"Bench\"\n\
             [[sources.extensions.attributes]]\nname = \"clearance\"\ntype = \"integer\"\n"
        ),
    )
    .expect("bench config parses");
    PrincipalAttributes::from_sources(&cfg.sources)
}

/// Resident set size in bytes (Linux), for memory deltas.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// One group's membership changed, as the publisher reads it from the store.
fn group_change(dir: &Directory, revision: u64, g: usize) -> DirectoryChanges {
    DirectoryChanges {
        revision,
        groups: vec![(dir.groups[g].id.clone(), Some(dir.groups[g].clone()))],
        ..Default::default()
    }
}

fn main() {
    let users: usize = std::env::var("COMPILE_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let groups = users / 5;
    let memberships = users * 10;
    let rules = 1000;
    let runs = 5;
    let changes = 200;

    let t = Instant::now();
    let mut dir = directory(users, groups, memberships);
    let b = bindings(groups, rules);
    let policy = LivePolicy {
        version: PolicyVersion::default(),
        schema: portcullis_shared::schema::SCHEMA.into(),
        attributes: decls(),
        labels: vec![],
        files: vec![],
    };
    let attrs = attributes();
    println!(
        "directory: {users} users, {groups} groups ({LEVELS} levels), {memberships} memberships, \
         {rules} dynamic rules, {} bindings (built in {:.1} s)",
        b.bindings.len(),
        t.elapsed().as_secs_f64()
    );

    // Full compiles, each from the store rows.
    let mut full = Vec::new();
    let mut encode = Vec::new();
    let mut size = 0;
    let mut memory = 0;
    let mut compiler = None;
    for _ in 0..runs {
        drop(compiler.take()); // measure one compile's memory, not two
        let rows = dir.clone();
        let before = rss();
        let t = Instant::now();
        let c = Compiler::build(rows, &policy, &attrs, &b, vec![]);
        let snapshot = c.snapshot(1, 0);
        full.push(t.elapsed());
        memory = memory.max(rss().saturating_sub(before));
        assert!(c.report().cyclic_groups.is_empty());
        let t = Instant::now();
        let bytes = codec::encode(&snapshot);
        encode.push(t.elapsed());
        size = bytes.len();
        let max_depth = snapshot
            .groups
            .iter()
            .map(|g| g.ancestors.len())
            .max()
            .unwrap_or(0);
        assert_eq!(max_depth, LEVELS - 1, "nesting is {LEVELS} levels deep");
        compiler = Some(c);
    }
    let mut c = compiler.expect("compiled");
    let mut revision = 1;

    // One membership change → a new snapshot, in place.
    let mut membership = Vec::new();
    let mut shared = 0;
    let mut previous = c.snapshot(revision, 0);
    let rss_before_changes = rss();
    for i in 0..changes {
        let g = (i * 104_729) % groups;
        dir.groups[g].members.push(Member {
            id: format!("u{}", (i * 7919) % users),
            kind: MemberKind::User,
            display: None,
        });
        revision += 1;
        let change = group_change(&dir, revision, g);
        let t = Instant::now();
        c.apply(change)
            .expect("a membership change applies in place");
        let snapshot = c.snapshot(revision, 0);
        membership.push(t.elapsed());
        shared = snapshot
            .users
            .iter()
            .zip(&previous.users)
            .filter(|(a, b)| std::sync::Arc::ptr_eq(a, b))
            .count();
        previous = snapshot;
    }
    let change_memory = rss().saturating_sub(rss_before_changes);

    // One attribute change (department, so dynamic groups move too) → a new snapshot.
    let mut attribute = Vec::new();
    for i in 0..changes {
        let u = (i * 31_337) % users;
        let row = &mut dir.users[u];
        row.resource["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] =
            json!(format!("Dept {}", (u + i + 1) % 1000));
        revision += 1;
        let change = DirectoryChanges {
            revision,
            users: vec![UserChange {
                id: row.id.clone(),
                removed: false,
                row: Some(row.clone()),
            }],
            ..Default::default()
        };
        let t = Instant::now();
        c.apply(change)
            .expect("an attribute change applies in place");
        std::hint::black_box(c.snapshot(revision, 0));
        attribute.push(t.elapsed());
    }

    // One nesting change: a level-1 group (with the chains below it) moves to another
    // level-0 parent.
    let per_level = groups / LEVELS;
    let mut nesting = Vec::new();
    for i in 0..changes / 4 {
        let child = format!("g{}", per_level + (i * 7) % per_level);
        let from = dir.groups[..per_level]
            .iter()
            .position(|g| g.members.iter().any(|m| m.id == child))
            .expect("every level-1 group has a parent");
        let to = (from + 1 + i) % per_level;
        dir.groups[from].members.retain(|m| m.id != child);
        dir.groups[to].members.push(Member {
            id: child,
            kind: MemberKind::Group,
            display: None,
        });
        revision += 1;
        let mut change = group_change(&dir, revision, from);
        change
            .groups
            .extend(group_change(&dir, revision, to).groups);
        let t = Instant::now();
        c.apply(change).expect("a nesting change applies in place");
        std::hint::black_box(c.snapshot(revision, 0));
        nesting.push(t.elapsed());
    }

    // The check that matters: the state after all of that equals a fresh compile.
    dir.revision = revision;
    let fresh = Compiler::build(dir, &policy, &attrs, &b, vec![]);
    assert!(
        fresh.snapshot(revision, 0) == c.snapshot(revision, 0),
        "incremental state diverged from a fresh compile"
    );

    let (full, encode) = (median(full), median(encode));
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| full compile (median of {runs}) | {:.0} ms |",
        full.as_secs_f64() * 1e3
    );
    for (name, v) in [
        ("one membership change → new snapshot", membership),
        ("one attribute change → new snapshot", attribute),
        ("one nesting move (level 1 of 10) → new snapshot", nesting),
    ] {
        let n = v.len();
        println!(
            "| {name} (p50 / p99 / max of {n}) | {} / {} / {} |",
            ms(percentile(v.clone(), 0.5)),
            ms(percentile(v.clone(), 0.99)),
            ms(percentile(v, 1.0)),
        );
    }
    println!(
        "| users shared with the previous snapshot after a membership change | {shared} of {users} |"
    );
    println!("| snapshot size (encoded) | {:.1} MB |", size as f64 / 1e6);
    println!(
        "| resident memory grown by one full compile | {:.0} MB |",
        memory as f64 / 1e6
    );
    println!(
        "| resident memory grown over {changes} membership changes | {:.1} MB |",
        change_memory as f64 / 1e6
    );
    println!(
        "| reference: encoding the whole snapshot | {:.0} ms (full compile = {:.1}x encode) |",
        encode.as_secs_f64() * 1e3,
        full.as_secs_f64() / encode.as_secs_f64()
    );
}
