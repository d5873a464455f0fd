//! Bindings: how the IdP's groups and attributes become the roles policies speak of.
//!
//! The IdP stays the source of truth for who is in which group; the bindings say what that
//! means here. One TOML (or JSON) document holds every role bundle, group → role binding (with
//! optional conditions), dynamic group, the rule for groups no binding mentions, the planned
//! end-date attribute and the break-glass entries:
//!
//! ```toml
//! [[roles]]
//! name = "legal"
//! description = "Legal counsel tools"
//!
//! [[bindings]]
//! group = "okta/Legal"            # "<source>/<group displayName>" or "dynamic/<name>"
//! role = "legal"
//! [bindings.when]                 # optional; every part set must hold for the request
//! environments = ["prod"]
//! tenants = ["acme"]
//! from = "2026-01-01T00:00:00Z"
//! until = "2027-01-01T00:00:00Z"
//!
//! [[dynamic_groups]]
//! name = "legal-cleared"
//! rule = 'department == "Legal" && clearance >= 3'
//!
//! [new_groups]
//! mode = "review"                 # or "default": unbound groups grant `roles`
//! roles = []
//! reviewed = ["okta/All Staff"]   # looked at; deliberately bound to nothing
//!
//! [lifecycle]
//! end_date_attribute = "urn:example:params:scim:schemas:extension:acme:2.0:User:endDate"
//! deactivated_grace_days = 30     # then deactivated users are purged (events are kept)
//!
//! [[partners]]                   # federation: a partner tenant's users, unprovisioned
//! name = "contoso"                # Group::"partner/contoso", bound like any group
//! source = "entra"                # whose issuer sets `tenant_claim`
//! tenant = "9188040d-6c67-4c5b-b112-36a304b66dad"
//!
//! [[break_glass]]
//! name = "prod-emergency"
//! role = "break-glass"
//! max_minutes = 60
//! webhook = "https://hooks.example.com/portcullis"
//! ```
//!
//! Every change is a new version (author, time, comment, diff), validated before it goes live,
//! recorded as an identity event, and can be rolled back (see [`BindingStore`]).

mod declarations;

pub(crate) use declarations::get as scim_member;
pub use declarations::{
    AttributeMapping, Declarations, LabelDecl, ResourceLabels, ScimPath, parse_type,
};

use crate::policies::PolicyStore;
use crate::rules::{self, Catalog};
use crate::store::{self, BindingVersionRow, EventOutcome, IdentityEvent, Store, StoreError};
use portcullis_shared::snapshot::{AttributeDecl, Condition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

/// The pseudo-source dynamic groups live under: `Group::"dynamic/<name>"`.
pub const DYNAMIC_SOURCE: &str = "dynamic";
/// The pseudo-source partner tenants' groups live under: `Group::"partner/<name>"`.
pub const PARTNER_SOURCE: &str = "partner";

/// The bindings document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bindings {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<Binding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic_groups: Vec<DynamicGroup>,
    #[serde(default)]
    pub new_groups: NewGroups,
    #[serde(default)]
    pub lifecycle: Lifecycle,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub break_glass: Vec<BreakGlass>,
    /// Principal attribute mappings, by attribute name (see [`declarations`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, AttributeMapping>,
    /// Resource label declarations, by label name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, LabelDecl>,
    /// Labelled resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceLabels>,
    /// Partner tenants admitted through federation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partners: Vec<PartnerDef>,
    /// Linking one person's accounts across sources (see [`crate::merge`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<crate::merge::Merge>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// `<source>/<group displayName>` or `dynamic/<dynamic group name>`.
    pub group: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

/// Where and when a binding holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// RFC 3339 instant the binding starts holding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// RFC 3339 instant the binding stops holding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// A partner tenant: users whose verified token (from `source`'s issuer, which must set
/// `tenant_claim`) names `tenant` are principals in `Group::"partner/<name>"`, bound to roles
/// like any group, without being provisioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerDef {
    pub name: String,
    pub source: String,
    pub tenant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicGroup {
    pub name: String,
    /// See [`crate::rules`].
    pub rule: String,
}

/// What a group no binding mentions grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroups {
    #[serde(default)]
    pub mode: NewGroupMode,
    /// With `mode = "default"`: the roles every unbound group grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Groups an administrator looked at and deliberately bound to nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviewed: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewGroupMode {
    /// Unbound groups grant no role and are listed for review (the default).
    #[default]
    Review,
    /// Unbound groups grant `new_groups.roles`.
    Default,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// A SCIM attribute (`title`, or `<schema URN>:<attribute>`) holding an RFC 3339 instant
    /// or a `YYYY-MM-DD` date (midnight UTC) after which the user is denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date_attribute: Option<String>,
    /// Deactivated users keep their data (and get it back on reactivation) for this many days,
    /// then are purged (see [`crate::lifecycle`]). Unset: kept until the IdP deletes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated_grace_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlass {
    pub name: String,
    /// The role an activation grants.
    pub role: String,
    /// The longest activation allowed.
    pub max_minutes: u32,
    /// Announced to this URL (HTTP POST, JSON) on every activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

/// Why a bindings document was refused: every problem found, each naming what it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bindings: {}", .problems.join("; "))]
pub struct BindingsError {
    pub problems: Vec<String>,
}

impl Bindings {
    /// Parses TOML.
    pub fn from_toml(text: &str) -> Result<Self, BindingsError> {
        toml::from_str(text).map_err(|e| BindingsError {
            problems: vec![e.to_string()],
        })
    }

    /// The canonical text: what is hashed and diffed.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    pub fn content_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks everything that can be checked without the directory or the policies;
    /// `extension` are the principal attributes the sources' custom extensions declare.
    /// Dynamic-group rules may read those, the mapped attributes and the built-in ones.
    pub fn validate(&self, extension: &[AttributeDecl]) -> Result<(), BindingsError> {
        let (declared, mut p) = self.declarations(extension);
        let attributes = &declared.principal;
        let mut roles = HashSet::new();
        for r in &self.roles {
            if !valid_name(&r.name) {
                p.push(format!(
                    "role {:?}: names are 1-128 characters without '\"' or control characters",
                    r.name
                ));
            }
            if !roles.insert(r.name.as_str()) {
                p.push(format!("role {:?} is declared twice", r.name));
            }
        }
        let known_role = |role: &str, what: String, p: &mut Vec<String>| {
            if !roles.contains(role) {
                p.push(format!(
                    "{what}: role {role:?} is not declared in [[roles]]"
                ));
            }
        };
        let mut dynamic = HashSet::new();
        let catalog = Catalog::new(attributes);
        for d in &self.dynamic_groups {
            if !valid_name(&d.name) {
                p.push(format!("dynamic group {:?}: invalid name", d.name));
            }
            if !dynamic.insert(d.name.as_str()) {
                p.push(format!("dynamic group {:?} is declared twice", d.name));
            }
            if let Err(e) = rules::parse(&d.rule, &catalog) {
                p.push(format!("dynamic group {:?}: rule {e}", d.name));
            }
        }
        let mut partners = HashSet::new();
        let mut tenants = HashSet::new();
        for t in &self.partners {
            let what = format!("partner {:?}", t.name);
            if !valid_name(&t.name) || t.name.contains('/') || !partners.insert(t.name.as_str()) {
                p.push(format!("{what}: invalid or repeated name"));
            }
            if t.source.is_empty() || t.source == DYNAMIC_SOURCE || t.source == PARTNER_SOURCE {
                p.push(format!(
                    "{what}: source must name a configured identity source"
                ));
            }
            if t.tenant.is_empty() || !tenants.insert((t.source.as_str(), t.tenant.as_str())) {
                p.push(format!("{what}: tenant is empty or admitted twice"));
            }
        }
        let mut seen = HashSet::new();
        for (i, b) in self.bindings.iter().enumerate() {
            let what = format!("binding {} ({} → {})", i + 1, b.group, b.role);
            match group_ref(&b.group) {
                None => p.push(format!(
                    "{what}: group must be \"<source>/<group name>\" or \"dynamic/<name>\""
                )),
                Some((DYNAMIC_SOURCE, name)) if !dynamic.contains(name) => {
                    p.push(format!("{what}: no dynamic group is named {name:?}"))
                }
                Some((PARTNER_SOURCE, name)) if !partners.contains(name) => {
                    p.push(format!("{what}: no partner is named {name:?}"))
                }
                Some(_) => {}
            }
            known_role(&b.role, what.clone(), &mut p);
            if let Some(w) = &b.when
                && let Err(e) = w.condition()
            {
                p.push(format!("{what}: {e}"));
            }
            if !seen.insert((&b.group, &b.role, &b.when)) {
                p.push(format!("{what} is listed twice"));
            }
        }
        for r in &self.new_groups.roles {
            known_role(r, "new_groups.roles".into(), &mut p);
        }
        if self.new_groups.mode == NewGroupMode::Default && self.new_groups.roles.is_empty() {
            p.push("new_groups: mode \"default\" needs at least one role".into());
        }
        for g in &self.new_groups.reviewed {
            if group_ref(g).is_none() {
                p.push(format!(
                    "new_groups.reviewed: {g:?} must be \"<source>/<group name>\""
                ));
            }
        }
        if let Some(a) = &self.lifecycle.end_date_attribute
            && (a.is_empty() || a.ends_with(':'))
        {
            p.push(format!(
                "lifecycle.end_date_attribute {a:?} must name an attribute"
            ));
        }
        if self.lifecycle.deactivated_grace_days == Some(0) {
            p.push(
                "lifecycle.deactivated_grace_days must be at least 1 (unset keeps users)".into(),
            );
        }
        let mut glass = HashSet::new();
        for g in &self.break_glass {
            let what = format!("break_glass {:?}", g.name);
            if !valid_name(&g.name) || !glass.insert(g.name.as_str()) {
                p.push(format!("{what}: invalid or repeated name"));
            }
            known_role(&g.role, what.clone(), &mut p);
            if !(1..=1440).contains(&g.max_minutes) {
                p.push(format!("{what}: max_minutes must be 1-1440"));
            }
            if let Some(u) = &g.webhook
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                p.push(format!("{what}: webhook must be an http(s) URL"));
            }
        }
        if let Some(m) = &self.merge {
            let strings: Vec<&str> = attributes
                .iter()
                .filter(|d| d.kind == portcullis_shared::snapshot::AttrKind::String && !d.multi)
                .map(|d| d.name.as_str())
                .collect();
            let all: Vec<&str> = attributes.iter().map(|d| d.name.as_str()).collect();
            p.extend(m.problems(&strings, &all));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(BindingsError { problems: p })
        }
    }

    pub fn break_glass(&self, name: &str) -> Option<&BreakGlass> {
        self.break_glass.iter().find(|g| g.name == name)
    }
}

impl When {
    /// The snapshot form.
    pub fn condition(&self) -> Result<Condition, String> {
        let at = |s: &Option<String>, what: &str| -> Result<Option<u64>, String> {
            s.as_deref()
                .map(|t| {
                    parse_instant(t).ok_or_else(|| {
                        format!("when.{what} {t:?} is not an RFC 3339 instant or YYYY-MM-DD date")
                    })
                })
                .transpose()
        };
        let c = Condition {
            environments: self.environments.clone(),
            tenants: self.tenants.clone(),
            not_before_ms: at(&self.from, "from")?,
            not_after_ms: at(&self.until, "until")?,
        };
        if let (Some(a), Some(b)) = (c.not_before_ms, c.not_after_ms)
            && a >= b
        {
            return Err("when.from must be before when.until".into());
        }
        Ok(c)
    }
}

/// An RFC 3339 instant or a `YYYY-MM-DD` date (midnight UTC), as Unix milliseconds.
pub fn parse_instant(s: &str) -> Option<u64> {
    let ts = s.parse::<jiff::Timestamp>().ok().or_else(|| {
        let d = s.parse::<jiff::civil::Date>().ok()?;
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    })?;
    u64::try_from(ts.as_millisecond()).ok()
}

/// Splits `<source>/<name>`.
pub fn group_ref(s: &str) -> Option<(&str, &str)> {
    let (source, name) = s.split_once('/')?;
    (!source.is_empty() && !name.is_empty()).then_some((source, name))
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(|c| c == '"' || c.is_control())
}

/// A unified line diff of two canonical documents.
pub fn diff(before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(2)
        .header("before", "after")
        .to_string()
}

/// The live bindings and their version.
#[derive(Debug, Clone, Default)]
pub struct LiveBindings {
    pub version: u64,
    pub bindings: Arc<Bindings>,
}

/// Why an edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Invalid(#[from] BindingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bindings version {0} does not exist")]
    NoSuchVersion(u64),
    #[error("the bindings are unchanged (version {0} already has this content)")]
    Unchanged(u64),
    /// The attributes or labels the document declares would leave live policies invalid.
    #[error(
        "the live policies do not validate against the attributes and labels these bindings declare: {0}"
    )]
    Policies(crate::policies::ReloadError),
}

/// Versioned bindings: validate, store with author and diff, record the identity event, make
/// live. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BindingStore {
    store: Store,
    live: Arc<RwLock<LiveBindings>>,
}

impl BindingStore {
    /// Loads the live version from the store.
    pub async fn load(store: Store) -> Result<Self, StoreError> {
        let row = store.run(|c| store::latest_bindings(c)).await?;
        let live = match row {
            Some(r) => LiveBindings {
                version: r.version,
                bindings: Arc::new(serde_json::from_str(&r.content_json)?),
            },
            None => LiveBindings::default(),
        };
        Ok(Self {
            store,
            live: Arc::new(RwLock::new(live)),
        })
    }

    pub fn live(&self) -> LiveBindings {
        self.live.read().map(|l| l.clone()).unwrap_or_default()
    }

    /// Validates `next` and makes it the new live version, recorded with `author` and an
    /// identity event whose before/after are the two documents.
    pub async fn apply(
        &self,
        next: Bindings,
        author: &str,
        comment: Option<String>,
        policies: &PolicyStore,
    ) -> Result<u64, ApplyError> {
        next.validate(policies.extension())?;
        let (declared, _) = next.declarations(policies.extension());
        policies.check(&declared).map_err(ApplyError::Policies)?;
        let current = self.live();
        if current.version > 0 && *current.bindings == next {
            return Err(ApplyError::Unchanged(current.version));
        }
        let author = author.to_owned();
        let next = Arc::new(next);
        let doc = next.clone();
        let version = self
            .store
            .write(move |tx| {
                let prev = store::latest_bindings(tx)?;
                let before: Bindings = match &prev {
                    Some(r) => serde_json::from_str(&r.content_json)?,
                    None => Bindings::default(),
                };
                let version = prev.as_ref().map_or(1, |r| r.version + 1);
                let content_json = doc.content_json();
                let at_ms = store::now_ms();
                store::insert_bindings(
                    tx,
                    &BindingVersionRow {
                        version,
                        at_ms,
                        author: author.clone(),
                        comment: comment.clone(),
                        hash: hex::encode(Sha256::digest(content_json.as_bytes())),
                        diff: diff(&before.to_toml(), &doc.to_toml()),
                        content_json,
                    },
                )?;
                store::record_event(
                    tx,
                    &IdentityEvent {
                        seq: 0,
                        revision: 0,
                        at_ms,
                        source: author.clone(),
                        operation: "bindings.update".into(),
                        resource_type: "Bindings".into(),
                        resource_id: version.to_string(),
                        before: prev.map(|_| serde_json::to_value(&before)).transpose()?,
                        after: Some(serde_json::to_value(&*doc)?),
                        outcome: EventOutcome::Applied,
                        status: None,
                        detail: comment,
                        request: None,
                        request_sha256: None,
                        high_priority: false,
                    },
                )?;
                Ok::<_, StoreError>(version)
            })
            .await?;
        if let Ok(mut l) = self.live.write() {
            *l = LiveBindings {
                version,
                bindings: next,
            };
        }
        metrics::gauge!("portcullis_bindings_version").set(version as f64);
        tracing::info!(version, "bindings version is live");
        policies.declare(declared);
        if let Err(e) = policies.rebase().await {
            // Checked above; only the store can fail here. The next policy reload retries.
            tracing::error!(error = %e, "policies could not be revalidated for the new bindings");
        }
        Ok(version)
    }

    /// Makes an earlier version's content live again, as a new version.
    pub async fn rollback(
        &self,
        to: u64,
        author: &str,
        policies: &PolicyStore,
    ) -> Result<u64, ApplyError> {
        let row = self
            .store
            .run(move |c| store::get_bindings(c, to))
            .await?
            .ok_or(ApplyError::NoSuchVersion(to))?;
        let doc: Bindings = serde_json::from_str(&row.content_json).map_err(StoreError::from)?;
        self.apply(
            doc,
            author,
            Some(format!("rollback to version {to}")),
            policies,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
[[roles]]
name = "legal"
[[roles]]
name = "sales"
[[roles]]
name = "break-glass"

[[bindings]]
group = "okta/Legal"
role = "legal"
[[bindings]]
group = "dynamic/cleared"
role = "legal"
[bindings.when]
environments = ["prod"]
from = "2026-01-01"
until = "2027-01-01T00:00:00Z"

[[dynamic_groups]]
name = "cleared"
rule = 'department == "Legal"'

[[break_glass]]
name = "emergency"
role = "break-glass"
max_minutes = 30
"#;

    #[test]
    fn a_valid_document_round_trips_through_its_canonical_form() {
        let b = Bindings::from_toml(DOC).unwrap();
        b.validate(&[]).unwrap();
        assert_eq!(Bindings::from_toml(&b.to_toml()).unwrap(), b);
        let c = b.bindings[1].when.as_ref().unwrap().condition().unwrap();
        assert_eq!(c.not_before_ms, Some(1_767_225_600_000));
        assert_eq!(c.not_after_ms, Some(1_798_761_600_000));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut b = Bindings::from_toml(DOC).unwrap();
        b.bindings.push(Binding {
            group: "Legal".into(),
            role: "nobody".into(),
            when: Some(When {
                from: Some("2027-01-01".into()),
                until: Some("2026-01-01".into()),
                ..Default::default()
            }),
        });
        b.dynamic_groups.push(DynamicGroup {
            name: "bad".into(),
            rule: "clearance >= 3".into(),
        });
        b.break_glass[0].max_minutes = 0;
        let e = b.validate(&[]).unwrap_err();
        let all = e.problems.join("\n");
        assert!(all.contains("group must be"), "{all}");
        assert!(all.contains("role \"nobody\" is not declared"), "{all}");
        assert!(all.contains("from must be before"), "{all}");
        assert!(all.contains("unknown attribute \"clearance\""), "{all}");
        assert!(all.contains("max_minutes"), "{all}");
        assert_eq!(e.problems.len(), 5, "{all}");
    }

    #[test]
    fn partners_are_named_once_and_bindings_must_name_them() {
        let b = Bindings::from_toml(
            r#"
[[roles]]
name = "guest"
[[partners]]
name = "contoso"
source = "entra"
tenant = "t1"
[[partners]]
name = "contoso"
source = "partner"
tenant = ""
[[partners]]
name = "fabrikam"
source = "entra"
tenant = "t1"
[[bindings]]
group = "partner/contoso"
role = "guest"
[[bindings]]
group = "partner/northwind"
role = "guest"
"#,
        )
        .unwrap();
        let all = b.validate(&[]).unwrap_err().problems.join("\n");
        assert!(
            all.contains("partner \"contoso\": invalid or repeated name"),
            "{all}"
        );
        assert!(all.contains("source must name a configured"), "{all}");
        assert!(
            all.contains("partner \"fabrikam\": tenant is empty or admitted twice"),
            "{all}"
        );
        assert!(all.contains("no partner is named \"northwind\""), "{all}");
        assert!(!all.contains("partner/contoso →"), "{all}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = Bindings::from_toml("[[roles]]\nname = \"a\"\ncolour = \"red\"\n").unwrap_err();
        assert!(e.problems[0].contains("colour"), "{e}");
    }

    #[test]
    fn diffs_show_the_change() {
        let a = Bindings::from_toml(DOC).unwrap();
        let mut b = a.clone();
        b.break_glass[0].max_minutes = 45;
        let d = diff(&a.to_toml(), &b.to_toml());
        assert!(d.contains("-max_minutes = 30"), "{d}");
        assert!(d.contains("+max_minutes = 45"), "{d}");
    }
}
