//! Principal attributes from custom SCIM extensions and the bindings' attribute mappings.
//!
//! A source may declare custom User extensions (`[[sources.extensions]]`), for example a
//! clearance level or an ethical-wall side. Every declared attribute becomes an optional
//! attribute of Cedar's `User` entity (`principal has clearance && principal.clearance >= 3`),
//! read from each user's stored SCIM resource when a snapshot is compiled. The bindings may map
//! further attributes from any SCIM path (core, enterprise, extensions) and give defaults (see
//! [`crate::bindings::Declarations`]); their paths are tried first, in order.
//!
//! SCIM types map to Cedar types as `integer` → `Long`, `boolean` → `Bool`, `decimal` →
//! `decimal`, and `string`, `dateTime` and `reference` → `String`; a multi-valued attribute
//! becomes a `Set`. A value Cedar cannot represent (a decimal with more than four fractional
//! digits, or out of range) is left out, so the user simply lacks the attribute (or has the
//! default).

use crate::bindings::{ScimPath, scim_member as get};
use crate::config::{ExtensionType, SourceConfig};
use portcullis_shared::snapshot::{AttrKind, AttrValue, AttributeDecl};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Every extension-declared principal attribute and where each source keeps it.
#[derive(Debug, Clone, Default)]
pub struct PrincipalAttributes {
    decls: Vec<AttributeDecl>,
    /// (source, attribute name) → the extension URN that holds it.
    by_source: HashMap<(String, String), String>,
}

impl PrincipalAttributes {
    /// From validated source configuration (see `Config::load`): attribute names do not clash
    /// with built-in ones and have one type wherever they are declared.
    pub fn from_sources(sources: &[SourceConfig]) -> Self {
        let mut decls: BTreeMap<String, AttributeDecl> = BTreeMap::new();
        let mut by_source = HashMap::new();
        for s in sources {
            for e in &s.extensions {
                for a in &e.attributes {
                    decls.entry(a.name.clone()).or_insert_with(|| {
                        AttributeDecl::new(a.name.clone(), kind(a.ty), a.multi_valued)
                    });
                    by_source
                        .entry((s.name.clone(), a.name.clone()))
                        .or_insert_with(|| e.urn.clone());
                }
            }
        }
        Self {
            decls: decls.into_values().collect(),
            by_source,
        }
    }

    /// The declarations, sorted by name.
    pub fn decls(&self) -> &[AttributeDecl] {
        &self.decls
    }

    /// The attributes `resource` (a stored SCIM User from `source`) has, for each of
    /// `allowed` (the declarations the live policy version was validated against): the first
    /// of its `mapped` paths that has a value, else the source's extension attribute of that
    /// name. Defaults are not filled in here; nodes apply them (after token claims).
    pub fn extract(
        &self,
        source: &str,
        resource: &Value,
        allowed: &[AttributeDecl],
        mapped: &HashMap<String, Vec<ScimPath>>,
    ) -> BTreeMap<String, AttrValue> {
        let mut out = BTreeMap::new();
        for decl in allowed {
            let from_mapping = mapped
                .get(&decl.name)
                .into_iter()
                .flatten()
                .find_map(|p| p.extract(resource, decl));
            let value = from_mapping.or_else(|| {
                let urn = self
                    .by_source
                    .get(&(source.to_owned(), decl.name.clone()))?;
                let raw = get(get(resource, urn)?, &decl.name)?;
                match (decl.multi, raw) {
                    (_, Value::Null) => None,
                    // A multi-valued extension attribute must be an array.
                    (true, v) if !v.is_array() => None,
                    _ => decl.value_from_json(raw),
                }
            });
            if let Some(v) = value {
                out.insert(decl.name.clone(), v);
            }
        }
        out
    }
}

fn kind(ty: ExtensionType) -> AttrKind {
    match ty {
        ExtensionType::Integer => AttrKind::Long,
        ExtensionType::Boolean => AttrKind::Bool,
        ExtensionType::Decimal => AttrKind::Decimal,
        ExtensionType::String | ExtensionType::DateTime | ExtensionType::Reference => {
            AttrKind::String
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExtensionAttribute, ExtensionConfig};
    use serde_json::json;

    const ACME: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";

    fn attr(name: &str, ty: ExtensionType, multi: bool) -> ExtensionAttribute {
        ExtensionAttribute {
            name: name.into(),
            ty,
            multi_valued: multi,
            required: false,
            case_exact: false,
            canonical_values: vec![],
            description: String::new(),
        }
    }

    fn source(name: &str, attributes: Vec<ExtensionAttribute>) -> SourceConfig {
        SourceConfig {
            name: name.into(),
            scim_token_sha256: vec![],
            oidc: None,
            extensions: vec![ExtensionConfig {
                urn: ACME.into(),
                name: "Acme".into(),
                description: String::new(),
                attributes,
            }],
            client_ca: None,
        }
    }

    fn acme() -> PrincipalAttributes {
        PrincipalAttributes::from_sources(&[
            source(
                "okta",
                vec![
                    attr("clearance", ExtensionType::Integer, false),
                    attr("wall", ExtensionType::String, false),
                    attr("contractor", ExtensionType::Boolean, false),
                    attr("quota", ExtensionType::Decimal, false),
                    attr("projects", ExtensionType::String, true),
                    attr("hired", ExtensionType::DateTime, false),
                ],
            ),
            source(
                "entra",
                vec![attr("clearance", ExtensionType::Integer, false)],
            ),
        ])
    }

    #[test]
    fn declarations_are_merged_and_sorted() {
        let a = acme();
        let names: Vec<&str> = a.decls().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "clearance",
                "contractor",
                "hired",
                "projects",
                "quota",
                "wall"
            ]
        );
        let projects = &a.decls()[3];
        assert!(projects.multi);
        assert_eq!(projects.kind, AttrKind::String);
        assert_eq!(a.decls()[2].kind, AttrKind::String, "dateTime is a String");
    }

    #[test]
    fn values_are_converted_and_mistyped_ones_dropped() {
        let a = acme();
        let user = json!({
            "userName": "ana",
            "URN:EXAMPLE:params:scim:schemas:extension:acme:2.0:User": {
                "Clearance": 3,
                "wall": "buy-side",
                "contractor": "yes",
                "quota": 12.5,
                "projects": ["apollo", 7, "gemini", "gemini"],
                "hired": "2024-01-02T03:04:05Z"
            }
        });
        let got = a.extract("okta", &user, a.decls(), &HashMap::new());
        assert_eq!(got["clearance"], AttrValue::Long(3));
        assert_eq!(got["wall"], AttrValue::String("buy-side".into()));
        assert!(!got.contains_key("contractor"), "a string is not a boolean");
        assert_eq!(got["quota"], AttrValue::Decimal("12.5".into()));
        assert_eq!(
            got["projects"],
            AttrValue::Set(vec![
                AttrValue::String("apollo".into()),
                AttrValue::String("gemini".into())
            ])
        );
        assert_eq!(
            got["hired"],
            AttrValue::String("2024-01-02T03:04:05Z".into())
        );

        // Another source only has what it declares; an unknown source has nothing.
        let entra = a.extract("entra", &user, a.decls(), &HashMap::new());
        assert_eq!(entra.len(), 1);
        assert!(
            a.extract("google", &user, a.decls(), &HashMap::new())
                .is_empty()
        );
    }

    #[test]
    fn only_attributes_the_live_policy_knows_are_carried() {
        let a = acme();
        let user = json!({ ACME: { "clearance": 3, "wall": "sell-side" } });
        let allowed: Vec<AttributeDecl> = a
            .decls()
            .iter()
            .filter(|d| d.name == "wall")
            .cloned()
            .collect();
        let got = a.extract("okta", &user, &allowed, &HashMap::new());
        assert_eq!(got.keys().collect::<Vec<_>>(), ["wall"]);
        assert!(a.extract("okta", &user, &[], &HashMap::new()).is_empty());
    }
}
