//! Each identity source's resource types: the standard User and Group schemas plus the custom
//! User extensions the source declares in the configuration.
//!
//! The schema machinery works on `&'static` definitions. Sources are fixed for a process's
//! life, so their extension schemas are built once at start and leaked (a few kilobytes).

use super::schema::{
    self, AttrDef, AttrType, ENTERPRISE_USER_SCHEMA_DEF, Mutability, ResourceType, SchemaDef,
};
use crate::config::{ExtensionConfig, ExtensionType, SourceConfig};
use std::collections::HashMap;

/// One source's resource types.
#[derive(Debug, Clone, Copy)]
pub struct SourceTypes {
    pub user: &'static ResourceType,
    pub group: &'static ResourceType,
    /// The custom extensions (also listed in `user.extensions`, after the enterprise one).
    pub custom: &'static [&'static SchemaDef],
}

impl SourceTypes {
    /// Every schema this source serves: core User, its extensions, core Group.
    pub fn schemas(&self) -> Vec<&'static SchemaDef> {
        let mut out = vec![self.user.core];
        out.extend(self.user.extensions.iter().copied());
        out.push(self.group.core);
        out
    }

    /// The resource types, User then Group.
    pub fn resource_types(&self) -> [&'static ResourceType; 2] {
        [self.user, self.group]
    }
}

/// The types of every configured source.
pub fn build(sources: &[SourceConfig]) -> HashMap<String, SourceTypes> {
    sources
        .iter()
        .map(|s| (s.name.clone(), for_source(&s.extensions)))
        .collect()
}

fn for_source(extensions: &[ExtensionConfig]) -> SourceTypes {
    if extensions.is_empty() {
        return SourceTypes {
            user: &schema::USER,
            group: &schema::GROUP,
            custom: &[],
        };
    }
    let custom: Vec<&'static SchemaDef> = extensions.iter().map(leak_schema).collect();
    let custom: &'static [&'static SchemaDef] = custom.leak();
    let mut all: Vec<&'static SchemaDef> = vec![&ENTERPRISE_USER_SCHEMA_DEF];
    all.extend_from_slice(custom);
    let user: &'static ResourceType = Box::leak(Box::new(ResourceType {
        name: schema::USER.name,
        endpoint: schema::USER.endpoint,
        core: schema::USER.core,
        extensions: all.leak(),
    }));
    SourceTypes {
        user,
        group: &schema::GROUP,
        custom,
    }
}

fn leak_str(s: &str) -> &'static str {
    s.to_owned().leak()
}

fn leak_schema(e: &ExtensionConfig) -> &'static SchemaDef {
    let attributes: Vec<AttrDef> = e
        .attributes
        .iter()
        .map(|a| {
            let ty = match a.ty {
                ExtensionType::String => AttrType::String,
                ExtensionType::Boolean => AttrType::Boolean,
                ExtensionType::Integer => AttrType::Integer,
                ExtensionType::Decimal => AttrType::Decimal,
                ExtensionType::DateTime => AttrType::DateTime,
                ExtensionType::Reference => AttrType::Reference,
            };
            let mut def = AttrDef::new(leak_str(&a.name), ty).mutability(Mutability::ReadWrite);
            def.multi_valued = a.multi_valued;
            def.required = a.required;
            def.case_exact = a.case_exact;
            let canonical: Vec<&'static str> =
                a.canonical_values.iter().map(|v| leak_str(v)).collect();
            def.canonical_values = canonical.leak();
            if ty == AttrType::Reference {
                def.reference_types = &["external"];
            }
            def
        })
        .collect();
    Box::leak(Box::new(SchemaDef {
        id: leak_str(&e.urn),
        name: leak_str(&e.name),
        description: leak_str(&e.description),
        attributes: attributes.leak(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExtensionAttribute;

    #[test]
    fn custom_extensions_resolve_like_standard_ones() {
        let source = SourceConfig {
            name: "okta".into(),
            scim_token_sha256: vec![],
            oidc: None,
            extensions: vec![ExtensionConfig {
                urn: "urn:example:params:scim:schemas:extension:acme:2.0:User".into(),
                name: "AcmeUser".into(),
                description: "Acme".into(),
                attributes: vec![ExtensionAttribute {
                    name: "clearance".into(),
                    ty: ExtensionType::Integer,
                    multi_valued: false,
                    required: false,
                    case_exact: false,
                    canonical_values: vec![],
                    description: String::new(),
                }],
            }],
            client_ca: None,
        };
        let types = build(std::slice::from_ref(&source));
        let t = types["okta"];
        let r = t
            .user
            .resolve(
                Some("urn:example:params:scim:schemas:extension:acme:2.0:User"),
                "clearance",
                None,
            )
            .expect("resolves");
        assert_eq!(r.attr.ty, AttrType::Integer);
        assert!(
            t.user.resolve(None, "department", None).is_some(),
            "enterprise stays"
        );
        assert_eq!(t.schemas().len(), 4);
        let plain = build(&[SourceConfig {
            extensions: vec![],
            ..source
        }]);
        assert!(std::ptr::eq(plain["okta"].user, &schema::USER));
    }
}
