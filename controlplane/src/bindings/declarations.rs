//! Attribute mappings and resource labels: the typed values policies compare.
//!
//! A **mapping** makes a principal attribute out of SCIM core, enterprise or custom-extension
//! attributes and OIDC token claims, tried in the order listed (the first one present wins),
//! with a declared default:
//!
//! ```toml
//! [attributes.clearance]
//! type = "long"                  # string | long | bool | decimal | set<string> | set<long> | …
//! default = 0                    # every principal has it, so policies need no `has`
//! from = ["urn:example:params:scim:schemas:extension:acme:2.0:User:clearance", "claim:clearance"]
//!
//! [attributes.costCenter]
//! type = "string"
//! from = ["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"]
//!
//! [attributes.entitlements]
//! type = "set<string>"
//! default = []
//! from = ["entitlements.value"]  # a multi-valued attribute's sub-attribute, as a set
//! ```
//!
//! A SCIM path is `[<schema URN>:]<attribute>[.<sub-attribute>]`; a single-valued mapping of a
//! multi-valued attribute takes its primary (or first) value. `claim:<name>` reads the verified
//! token's claim on the node, per request. A mapping may share its name with an attribute a
//! source's custom extension declares (same type): it then adds a default or claim, and the
//! extension's own location is tried after the listed ones.
//!
//! **Labels** are attributes of resources, declared once and set per resource; a tool,
//! resource or prompt inherits its server's labels and a model its provider's:
//!
//! ```toml
//! [labels.clearance]
//! type = "long"
//! default = 0
//!
//! [[resources]]
//! kind = "mcp_tool"              # provider | model | mcp_server | mcp_tool | mcp_resource | mcp_prompt
//! id = "crm/export_contacts"     # tools, resources and prompts: "<server>/<name or uri>"
//! labels = { clearance = 3 }
//! ```
//!
//! Both change the Cedar schema, so a bindings version that declares them is refused if the
//! live policies do not validate against the schema it implies.

use super::{Bindings, valid_name};
use portcullis_shared::schema::BUILT_IN_USER_ATTRIBUTES;
use portcullis_shared::snapshot::{
    AttrKind, AttrValue, AttributeDecl, LabeledResource, ResourceKind,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// A principal attribute mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeMapping {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// SCIM paths and `claim:<name>` entries, by precedence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A resource label declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelDecl {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// One resource's labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLabels {
    pub kind: String,
    pub id: String,
    pub labels: BTreeMap<String, Value>,
}

/// The attributes the schema declares beyond the built-in ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declarations {
    /// `User` attributes, sorted by name.
    pub principal: Vec<AttributeDecl>,
    /// Labels on every resource type, sorted by name.
    pub labels: Vec<AttributeDecl>,
}

/// Where a SCIM value lives in a stored User resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimPath {
    pub urn: Option<String>,
    pub attribute: String,
    pub sub: Option<String>,
}

impl ScimPath {
    /// `[<urn>:]<attribute>[.<sub>]`; `None` if malformed.
    pub fn parse(path: &str) -> Option<Self> {
        let (urn, rest) = if path.to_ascii_lowercase().starts_with("urn:") {
            let (urn, rest) = path.rsplit_once(':')?;
            (Some(urn.to_owned()), rest)
        } else {
            (None, path)
        };
        let (attribute, sub) = match rest.split_once('.') {
            Some((a, s)) => (a, Some(s)),
            None => (rest, None),
        };
        let ident = |s: &str| {
            s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        if !ident(attribute) || sub.is_some_and(|s| !ident(s)) {
            return None;
        }
        Some(Self {
            urn,
            attribute: attribute.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }

    /// The value at this path in `resource`, converted to `decl`'s type. Attribute names and
    /// URNs match case-insensitively, as SCIM compares them.
    pub fn extract(&self, resource: &Value, decl: &AttributeDecl) -> Option<AttrValue> {
        let base = match &self.urn {
            Some(urn) => get(resource, urn)?,
            None => resource,
        };
        let raw = get(base, &self.attribute)?;
        let pick = |v: &'_ Value| -> Option<Value> {
            match &self.sub {
                Some(sub) => get(v, sub).cloned(),
                // A complex value without a named sub-attribute: its `value`.
                None if v.is_object() => get(v, "value").cloned(),
                None => Some(v.clone()),
            }
        };
        match raw {
            Value::Null => None,
            Value::Array(items) if decl.multi => {
                let values: Vec<Value> = items.iter().filter_map(pick).collect();
                decl.value_from_json(&Value::Array(values))
            }
            Value::Array(items) => {
                let primary = items
                    .iter()
                    .find(|i| get(i, "primary").and_then(Value::as_bool) == Some(true))
                    .or_else(|| items.first())?;
                decl.value_from_json(&pick(primary)?)
            }
            other => decl.value_from_json(&pick(other)?),
        }
    }
}

/// One entry of a mapping's `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    Scim(ScimPath),
    Claim(String),
}

impl From {
    fn parse(s: &str) -> Option<Self> {
        match s.strip_prefix("claim:") {
            Some(c) if !c.is_empty() && !c.chars().any(char::is_control) => {
                Some(Self::Claim(c.to_owned()))
            }
            Some(_) => None,
            None => ScimPath::parse(s).map(Self::Scim),
        }
    }
}

/// `string`, `long`, `bool`, `decimal`, or `set<…>` of one of them.
pub fn parse_type(s: &str) -> Option<(AttrKind, bool)> {
    let (inner, multi) = match s.strip_prefix("set<").and_then(|r| r.strip_suffix('>')) {
        Some(inner) => (inner, true),
        None => (s, false),
    };
    let kind = match inner {
        "string" => AttrKind::String,
        "long" => AttrKind::Long,
        "bool" => AttrKind::Bool,
        "decimal" => AttrKind::Decimal,
        _ => return None,
    };
    Some((kind, multi))
}

/// A JSON value as `decl`'s type, exactly: every element of a set must convert.
fn exact(decl: &AttributeDecl, v: &Value) -> Option<AttrValue> {
    if decl.multi && !v.is_array() {
        return None;
    }
    let converted = decl.value_from_json(v)?;
    match (&converted, v) {
        (AttrValue::Set(set), Value::Array(items)) if set.len() != dedup_len(items) => None,
        _ => Some(converted),
    }
}

fn dedup_len(items: &[Value]) -> usize {
    let mut seen: Vec<&Value> = Vec::with_capacity(items.len());
    for i in items {
        if !seen.contains(&i) {
            seen.push(i);
        }
    }
    seen.len()
}

const TYPES: &str = "string, long, bool, decimal, or set<…> of one of them";

impl Bindings {
    /// The principal attributes (extension-declared ones from `extension`, merged with the
    /// mappings) and resource labels this document declares, with every problem found.
    pub fn declarations(&self, extension: &[AttributeDecl]) -> (Declarations, Vec<String>) {
        let mut p = Vec::new();
        let mut principal: BTreeMap<String, AttributeDecl> = extension
            .iter()
            .map(|d| (d.name.clone(), d.clone()))
            .collect();
        for (name, m) in &self.attributes {
            let what = format!("attributes.{name}");
            if !valid_name(name) || BUILT_IN_USER_ATTRIBUTES.contains(&name.as_str()) {
                p.push(format!(
                    "{what}: the name is invalid or a built-in User attribute"
                ));
                continue;
            }
            let Some((kind, multi)) = parse_type(&m.ty) else {
                p.push(format!("{what}: type {:?} is not {TYPES}", m.ty));
                continue;
            };
            let mut decl = AttributeDecl::new(name.clone(), kind, multi);
            if let Some(ext) = extension.iter().find(|d| d.name == *name)
                && (ext.kind, ext.multi) != (kind, multi)
            {
                p.push(format!(
                    "{what}: a source extension declares {name:?} with another type"
                ));
                continue;
            }
            let extension_declared = extension.iter().any(|d| d.name == *name);
            if m.from.is_empty() && !extension_declared {
                p.push(format!(
                    "{what}: `from` must list at least one SCIM attribute or claim"
                ));
            }
            let mut seen_scim = false;
            for f in &m.from {
                match From::parse(f) {
                    None => p.push(format!(
                        "{what}: {f:?} is neither a SCIM path ([urn:…:]attribute[.sub]) nor claim:<name>"
                    )),
                    Some(From::Scim(_)) => seen_scim = true,
                    Some(From::Claim(c)) => {
                        if decl.claim.is_some() {
                            p.push(format!("{what}: at most one claim may be listed"));
                        }
                        decl.claim = Some(c);
                        decl.claim_first = !seen_scim;
                    }
                }
            }
            if let Some(v) = &m.default {
                match exact(&decl, v) {
                    Some(v) => decl.default = Some(v),
                    None => p.push(format!("{what}: default {v} is not a {}", m.ty)),
                }
            }
            principal.insert(name.clone(), decl);
        }

        let mut labels = Vec::new();
        for (name, l) in &self.labels {
            let what = format!("labels.{name}");
            if !valid_name(name) || ResourceKind::BUILT_IN_ATTRIBUTES.contains(&name.as_str()) {
                p.push(format!(
                    "{what}: the name is invalid or a built-in resource attribute"
                ));
                continue;
            }
            let Some((kind, multi)) = parse_type(&l.ty) else {
                p.push(format!("{what}: type {:?} is not {TYPES}", l.ty));
                continue;
            };
            let mut decl = AttributeDecl::new(name.clone(), kind, multi);
            if let Some(v) = &l.default {
                match exact(&decl, v) {
                    Some(v) => decl.default = Some(v),
                    None => p.push(format!("{what}: default {v} is not a {}", l.ty)),
                }
            }
            labels.push(decl);
        }

        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.resources.iter().enumerate() {
            let what = format!("resources {} ({} {:?})", i + 1, r.kind, r.id);
            let Some(kind) = ResourceKind::parse(&r.kind) else {
                p.push(format!(
                    "{what}: kind must be provider, model, mcp_server, mcp_tool, mcp_resource or mcp_prompt"
                ));
                continue;
            };
            let scoped = kind.parent() == Some(ResourceKind::McpServer);
            if r.id.is_empty() || (scoped && !r.id.contains('/')) {
                p.push(format!(
                    "{what}: id must be {}",
                    if scoped {
                        "\"<server>/<name>\""
                    } else {
                        "non-empty"
                    }
                ));
            }
            if !seen.insert((kind, r.id.as_str())) {
                p.push(format!("{what} is listed twice"));
            }
            for (name, v) in &r.labels {
                match labels.iter().find(|d| d.name == *name) {
                    None => p.push(format!(
                        "{what}: label {name:?} is not declared in [labels]"
                    )),
                    Some(d) if exact(d, v).is_none() => p.push(format!(
                        "{what}: label {name:?} = {v} is not a {}",
                        self.labels[name].ty
                    )),
                    Some(_) => {}
                }
            }
        }
        (
            Declarations {
                principal: principal.into_values().collect(),
                labels,
            },
            p,
        )
    }

    /// The labelled resources, limited to labels in `declared` (those the live policy version
    /// was validated with) and values of the declared type, sorted by `(kind, id)`.
    pub fn labeled_resources(&self, declared: &[AttributeDecl]) -> Vec<LabeledResource> {
        let mut out: Vec<LabeledResource> = self
            .resources
            .iter()
            .filter_map(|r| {
                let kind = ResourceKind::parse(&r.kind)?;
                let labels = r
                    .labels
                    .iter()
                    .filter_map(|(name, v)| {
                        let d = declared.iter().find(|d| d.name == *name)?;
                        Some((name.clone(), exact(d, v)?))
                    })
                    .collect();
                Some(LabeledResource {
                    kind,
                    id: r.id.clone(),
                    labels,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        out.dedup_by(|a, b| a.kind == b.kind && a.id == b.id);
        out
    }

    /// Per mapped attribute, its SCIM paths in precedence order (claims are read on nodes).
    pub fn scim_paths(&self) -> HashMap<String, Vec<ScimPath>> {
        self.attributes
            .iter()
            .map(|(name, m)| {
                let paths = m
                    .from
                    .iter()
                    .filter_map(|f| match From::parse(f)? {
                        From::Scim(p) => Some(p),
                        From::Claim(_) => None,
                    })
                    .collect();
                (name.clone(), paths)
            })
            .collect()
    }
}

/// Case-insensitive member lookup, as SCIM attribute names and URNs are case-insensitive.
pub(crate) fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACME: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";

    fn doc(text: &str) -> Bindings {
        Bindings::from_toml(text).expect("parses")
    }

    #[test]
    fn mappings_become_typed_declarations_with_defaults_and_claims() {
        let b = doc(&format!(
            r#"
[attributes.clearance]
type = "long"
default = 0
from = ["{ACME}:clearance", "claim:clearance"]

[attributes.wall]
type = "string"
default = ""
from = ["claim:wall", "{ACME}:wall"]

[attributes.entitlements]
type = "set<string>"
default = []
from = ["entitlements.value"]

[labels.clearance]
type = "long"
default = 0

[[resources]]
kind = "mcp_tool"
id = "crm/export"
labels = {{ clearance = 3 }}
"#
        ));
        let ext = [AttributeDecl::new("wall", AttrKind::String, false)];
        let (d, problems) = b.declarations(&ext);
        assert!(problems.is_empty(), "{problems:?}");
        let names: Vec<&str> = d.principal.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["clearance", "entitlements", "wall"]);
        let clearance = &d.principal[0];
        assert_eq!(clearance.default, Some(AttrValue::Long(0)));
        assert_eq!(clearance.claim.as_deref(), Some("clearance"));
        assert!(!clearance.claim_first, "the SCIM path is listed first");
        assert!(d.principal[2].claim_first, "the claim is listed first");
        assert_eq!(d.principal[1].default, Some(AttrValue::Set(vec![])));
        assert_eq!(d.labels.len(), 1);
        let labeled = b.labeled_resources(&d.labels);
        assert_eq!(labeled[0].labels["clearance"], AttrValue::Long(3));
        assert!(b.labeled_resources(&[]).first().unwrap().labels.is_empty());
    }

    #[test]
    fn every_mistake_is_named() {
        let b = doc(r#"
[attributes.userName]
type = "string"
from = ["userName"]

[attributes.level]
type = "integer"
from = ["title"]

[attributes.quota]
type = "long"
default = "lots"
from = ["claim:a", "claim:b", "no such path!"]

[attributes.nothing]
type = "bool"

[attributes.clash]
type = "bool"
from = ["title"]

[labels.name]
type = "string"

[labels.tier]
type = "set<long>"
default = [1, "two"]

[[resources]]
kind = "tool"
id = "x"
labels = {}

[[resources]]
kind = "mcp_tool"
id = "no-server"
labels = { undeclared = 1 }
"#);
        let ext = [AttributeDecl::new("clash", AttrKind::Long, false)];
        let (_, p) = b.declarations(&ext);
        let all = p.join("\n");
        for needle in [
            "attributes.userName: the name is invalid or a built-in",
            "attributes.level: type \"integer\"",
            "attributes.quota: default \"lots\" is not a long",
            "attributes.quota: at most one claim",
            "\"no such path!\" is neither",
            "attributes.nothing: `from` must list",
            "attributes.clash: a source extension declares",
            "labels.name: the name is invalid or a built-in resource attribute",
            "labels.tier: default [1,\"two\"] is not a set<long>",
            "resources 1 (tool \"x\"): kind must be",
            "resources 2 (mcp_tool \"no-server\"): id must be \"<server>/<name>\"",
            "label \"undeclared\" is not declared",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(p.len(), 12, "{all}");
    }

    #[test]
    fn scim_paths_read_core_enterprise_complex_and_multi_valued_attributes() {
        let user = json!({
            "title": "Counsel",
            "name": { "givenName": "Sam" },
            "emails": [
                { "value": "sam@home.example", "type": "home" },
                { "value": "sam@corp.example", "type": "work", "primary": true }
            ],
            "entitlements": [{ "value": "crm" }, { "value": "erp" }, { "value": "crm" }],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "costCenter": "4711", "manager": { "value": "m-1" }
            },
            ACME: { "clearance": "3", "projects": "apollo" }
        });
        let s = |()| AttributeDecl::new("x", AttrKind::String, false);
        let one = |path: &str, d: &AttributeDecl| ScimPath::parse(path).unwrap().extract(&user, d);
        assert_eq!(
            one("TITLE", &s(())),
            Some(AttrValue::String("Counsel".into()))
        );
        assert_eq!(
            one("name.givenName", &s(())),
            Some(AttrValue::String("Sam".into()))
        );
        assert_eq!(
            one("emails", &s(())),
            Some(AttrValue::String("sam@corp.example".into())),
            "the primary value"
        );
        let set = AttributeDecl::new("x", AttrKind::String, true);
        assert_eq!(
            one("entitlements.value", &set),
            Some(AttrValue::Set(vec![
                AttrValue::String("crm".into()),
                AttrValue::String("erp".into())
            ]))
        );
        let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        assert_eq!(
            one(
                &format!("{ent}:costCenter"),
                &AttributeDecl::new("x", AttrKind::Long, false)
            ),
            Some(AttrValue::Long(4711)),
            "an integer string is a long"
        );
        assert_eq!(
            one(&format!("{ent}:manager.value"), &s(())),
            Some(AttrValue::String("m-1".into()))
        );
        assert_eq!(
            one(&format!("{ACME}:projects"), &set),
            Some(AttrValue::Set(vec![AttrValue::String("apollo".into())])),
            "a single value is a one-element set"
        );
        assert_eq!(one("nickName", &s(())), None);
        assert_eq!(
            one("title", &AttributeDecl::new("x", AttrKind::Bool, false)),
            None
        );
        assert!(ScimPath::parse("urn:x:").is_none());
        assert!(ScimPath::parse("a.b.c").is_none());
    }
}
