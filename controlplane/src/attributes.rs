//! Principal attributes from custom SCIM extensions.
//!
//! A source may declare custom User extensions (`[[sources.extensions]]`), for example a
//! clearance level or an ethical-wall side. Every declared attribute becomes an optional
//! attribute of Cedar's `User` entity (`principal has clearance && principal.clearance >= 3`),
//! read from each user's stored SCIM resource when a snapshot is compiled.
//!
//! SCIM types map to Cedar types as `integer` → `Long`, `boolean` → `Bool`, `decimal` →
//! `decimal`, and `string`, `dateTime` and `reference` → `String`; a multi-valued attribute
//! becomes a `Set`. A value Cedar cannot represent (a decimal with more than four fractional
//! digits, or out of range) is left out, so the user simply lacks the attribute.

use crate::config::{ExtensionType, SourceConfig};
use portcullis_shared::snapshot::{AttrKind, AttrValue, AttributeDecl};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Every declared principal attribute and where each source keeps it.
#[derive(Debug, Clone, Default)]
pub struct PrincipalAttributes {
    decls: Vec<AttributeDecl>,
    by_source: HashMap<String, Vec<Mapping>>,
}

#[derive(Debug, Clone)]
struct Mapping {
    urn: String,
    attribute: String,
    decl: AttributeDecl,
}

impl PrincipalAttributes {
    /// From validated source configuration (see `Config::load`): attribute names do not clash
    /// with built-in ones and have one type wherever they are declared.
    pub fn from_sources(sources: &[SourceConfig]) -> Self {
        let mut decls: BTreeMap<String, AttributeDecl> = BTreeMap::new();
        let mut by_source: HashMap<String, Vec<Mapping>> = HashMap::new();
        for s in sources {
            for e in &s.extensions {
                for a in &e.attributes {
                    let decl = AttributeDecl {
                        name: a.name.clone(),
                        kind: kind(a.ty),
                        multi: a.multi_valued,
                    };
                    decls.entry(a.name.clone()).or_insert_with(|| decl.clone());
                    by_source.entry(s.name.clone()).or_default().push(Mapping {
                        urn: e.urn.clone(),
                        attribute: a.name.clone(),
                        decl,
                    });
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

    /// The attributes `resource` (a stored SCIM User from `source`) has, limited to those in
    /// `allowed` (the declarations the live policy version was validated against).
    pub fn extract(
        &self,
        source: &str,
        resource: &Value,
        allowed: &[AttributeDecl],
    ) -> BTreeMap<String, AttrValue> {
        let mut out = BTreeMap::new();
        let Some(mappings) = self.by_source.get(source) else {
            return out;
        };
        for m in mappings {
            if out.contains_key(&m.decl.name) || !allowed.contains(&m.decl) {
                continue;
            }
            let Some(raw) = get(resource, &m.urn).and_then(|ext| get(ext, &m.attribute)) else {
                continue;
            };
            let value = if m.decl.multi {
                raw.as_array().map(|items| {
                    let mut set: Vec<AttrValue> = items
                        .iter()
                        .filter_map(|v| convert(m.decl.kind, v))
                        .collect();
                    set.dedup();
                    AttrValue::Set(set)
                })
            } else {
                convert(m.decl.kind, raw)
            };
            if let Some(v) = value {
                out.insert(m.decl.name.clone(), v);
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

fn convert(kind: AttrKind, v: &Value) -> Option<AttrValue> {
    match kind {
        AttrKind::String => v.as_str().map(|s| AttrValue::String(s.to_owned())),
        AttrKind::Long => v.as_i64().map(AttrValue::Long),
        AttrKind::Bool => v.as_bool().map(AttrValue::Bool),
        AttrKind::Decimal => match v {
            Value::Number(n) => cedar_decimal(&n.to_string()).map(AttrValue::Decimal),
            _ => None,
        },
    }
}

/// Cedar's `decimal` literal for a JSON number's text: `digits.digits` with one to four
/// fractional digits, within ±922337203685477.5807 (Cedar's range, less `i64::MIN`). `None` if it cannot be represented exactly.
pub fn cedar_decimal(number: &str) -> Option<String> {
    if number.contains(['e', 'E']) {
        return None;
    }
    let (negative, body) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let frac = frac.trim_end_matches('0');
    if int.is_empty()
        || frac.len() > 4
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac = if frac.is_empty() { "0" } else { frac };
    let scaled: i128 = format!("{int}{frac:0<4}").parse().ok()?;
    if scaled > i64::MAX as i128 {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    Some(format!("{}{int}.{frac}", if negative { "-" } else { "" }))
}

/// Case-insensitive attribute lookup, as SCIM attribute names and URNs are case-insensitive.
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
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
        let got = a.extract("okta", &user, a.decls());
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
        let entra = a.extract("entra", &user, a.decls());
        assert_eq!(entra.len(), 1);
        assert!(a.extract("google", &user, a.decls()).is_empty());
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
        let got = a.extract("okta", &user, &allowed);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["wall"]);
        assert!(a.extract("okta", &user, &[]).is_empty());
    }

    #[test]
    fn decimals_must_be_exact_and_in_range() {
        assert_eq!(cedar_decimal("1").as_deref(), Some("1.0"));
        assert_eq!(cedar_decimal("-0.25").as_deref(), Some("-0.25"));
        assert_eq!(cedar_decimal("007.1000").as_deref(), Some("7.1"));
        assert_eq!(cedar_decimal("1.23456"), None);
        assert_eq!(cedar_decimal("1e3"), None);
        assert_eq!(
            cedar_decimal("922337203685477.5807").as_deref(),
            Some("922337203685477.5807")
        );
        assert_eq!(cedar_decimal("922337203685477.5808"), None);
        assert_eq!(
            cedar_decimal("-922337203685477.5807").as_deref(),
            Some("-922337203685477.5807")
        );
        assert_eq!(cedar_decimal("-922337203685477.5808"), None);
        assert_eq!(cedar_decimal(""), None);
        assert_eq!(cedar_decimal(".5"), None);
    }
}
