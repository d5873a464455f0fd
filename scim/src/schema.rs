//! Static definitions of the SCIM resource schemas this server supports (RFC 7643 §4, §8.7.1):
//! the core User and Group schemas, the common attributes (`id`, `externalId`, `meta`) and the
//! enterprise User extension, plus lookup helpers used by filtering and PATCH.

use AttrType as T;
use Mutability as M;

/// The data type of an attribute (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Complex,
    Binary,
}

/// When and how an attribute may be modified (RFC 7643 §7, `mutability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// When an attribute is returned in a response (RFC 7643 §7, `returned`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

/// How unique an attribute value must be (RFC 7643 §7, `uniqueness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

/// The definition of one attribute or sub-attribute (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub sub_attributes: &'static [AttrDef],
    pub reference_types: &'static [&'static str],
}

/// A schema: its URN `id` and its top-level attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttrDef],
}

/// A resource type (RFC 7643 §6): its core schema and the extensions it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub core: &'static SchemaDef,
    pub extensions: &'static [&'static SchemaDef],
}

/// The result of [`ResourceType::resolve`]: the schema URN the attribute belongs to, the
/// attribute, and the sub-attribute when one was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub schema: &'a str,
    pub attr: &'a AttrDef,
    pub sub: Option<&'a AttrDef>,
}

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

impl AttrDef {
    /// A single-valued, optional, readWrite, caseExact=false attribute returned by default.
    pub const fn new(name: &'static str, ty: AttrType) -> Self {
        Self {
            name,
            ty,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            sub_attributes: &[],
            reference_types: &[],
        }
    }

    /// A complex attribute with the given sub-attributes.
    pub const fn complex(name: &'static str, subs: &'static [AttrDef]) -> Self {
        let mut def = Self::new(name, AttrType::Complex);
        def.sub_attributes = subs;
        def
    }

    /// Marks the attribute multi-valued.
    pub const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }

    /// Marks the attribute required.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks the attribute caseExact.
    pub const fn exact(mut self) -> Self {
        self.case_exact = true;
        self
    }

    /// Sets the mutability.
    pub const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }

    /// Sets when the attribute is returned.
    pub const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }

    /// Sets the uniqueness.
    pub const fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }

    /// Sets the canonical values.
    pub const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }

    /// Sets the reference types (for `reference` attributes).
    pub const fn refs(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }

    /// The sub-attribute called `name` (case-insensitive), if any.
    pub fn sub_attr(&self, name: &str) -> Option<&'static AttrDef> {
        find_attr(self.sub_attributes, name)
    }

    /// True for a multi-valued complex attribute (e.g. `emails`, `members`).
    pub fn is_multi_complex(&self) -> bool {
        self.multi_valued && self.ty == AttrType::Complex
    }
}

/// Finds an attribute by name, case-insensitively.
pub fn find_attr(attrs: &'static [AttrDef], name: &str) -> Option<&'static AttrDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

impl SchemaDef {
    /// The top-level attribute called `name` (case-insensitive), if any.
    pub fn attr(&self, name: &str) -> Option<&'static AttrDef> {
        find_attr(self.attributes, name)
    }
}

impl ResourceType {
    /// Resolves an attribute path (see [`crate::filter::AttrPath`]) to its definition.
    ///
    /// `uri` may name the core schema or one of the extensions (case-insensitive); without it
    /// the core schema and the common attributes are searched first, then the extensions in
    /// declaration order. `attr` and `sub` are matched case-insensitively. The common attributes
    /// (`id`, `externalId`, `meta`) resolve under the core schema URN. Returns `None` for
    /// anything unknown, which callers must tolerate (custom extensions).
    pub fn resolve(
        &self,
        uri: Option<&str>,
        attr: &str,
        sub: Option<&str>,
    ) -> Option<Resolved<'static>> {
        let (schema, def) = match uri {
            Some(u) => {
                let schema = self.schema(u)?;
                (schema.id, self.attr_in(schema, attr)?)
            }
            None => self.find_unqualified(attr)?,
        };
        let sub = match sub {
            Some(s) => Some(def.sub_attr(s)?),
            None => None,
        };
        Some(Resolved {
            schema,
            attr: def,
            sub,
        })
    }

    /// The core schema URN followed by the extension URNs.
    pub fn schema_urns(&self) -> Vec<&'static str> {
        std::iter::once(self.core.id)
            .chain(self.extensions.iter().map(|e| e.id))
            .collect()
    }

    /// The schema (core or extension) whose URN is `urn`, case-insensitively.
    pub fn schema(&self, urn: &str) -> Option<&'static SchemaDef> {
        std::iter::once(self.core)
            .chain(self.extensions.iter().copied())
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// The extension schema whose URN is `urn`, case-insensitively (never the core schema).
    pub fn extension(&self, urn: &str) -> Option<&'static SchemaDef> {
        self.extensions
            .iter()
            .copied()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// True when `urn` is this resource type's core schema URN (case-insensitive).
    pub fn is_core(&self, urn: &str) -> bool {
        self.core.id.eq_ignore_ascii_case(urn)
    }

    /// Looks `attr` up in `schema`; the core schema also holds the common attributes.
    fn attr_in(&self, schema: &'static SchemaDef, attr: &str) -> Option<&'static AttrDef> {
        schema.attr(attr).or_else(|| {
            if std::ptr::eq(schema, self.core) {
                find_attr(&COMMON_ATTRIBUTES, attr)
            } else {
                None
            }
        })
    }

    fn find_unqualified(&self, attr: &str) -> Option<(&'static str, &'static AttrDef)> {
        if let Some(def) = self.attr_in(self.core, attr) {
            return Some((self.core.id, def));
        }
        self.extensions
            .iter()
            .find_map(|ext| ext.attr(attr).map(|def| (ext.id, def)))
    }
}

impl Resolved<'_> {
    /// `caseExact` of the sub-attribute when there is one, else of the attribute.
    pub fn case_exact(&self) -> bool {
        self.sub.unwrap_or(self.attr).case_exact
    }

    /// The innermost definition: the sub-attribute when there is one, else the attribute.
    pub fn def(&self) -> &AttrDef {
        self.sub.unwrap_or(self.attr)
    }
}

const S: AttrType = T::String;

/// `value`, `display`, `type`, `primary` — the usual sub-attributes of a multi-valued attribute.
const fn multi_subs(value: AttrDef, types: &'static [&'static str]) -> [AttrDef; 4] {
    [
        value,
        AttrDef::new("display", S),
        AttrDef::new("type", S).canonical(types),
        AttrDef::new("primary", T::Boolean),
    ]
}

static EMAIL_SUBS: [AttrDef; 4] = multi_subs(AttrDef::new("value", S), &["work", "home", "other"]);
static PHONE_SUBS: [AttrDef; 4] = multi_subs(
    AttrDef::new("value", S),
    &["work", "home", "mobile", "fax", "pager", "other"],
);
static IM_SUBS: [AttrDef; 4] = multi_subs(
    AttrDef::new("value", S),
    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
);
static PHOTO_SUBS: [AttrDef; 4] = multi_subs(
    AttrDef::new("value", T::Reference).refs(&["external"]),
    &["photo", "thumbnail"],
);
static PLAIN_SUBS: [AttrDef; 4] = multi_subs(AttrDef::new("value", S), &[]);
static CERT_SUBS: [AttrDef; 4] = multi_subs(AttrDef::new("value", T::Binary), &[]);

static NAME_SUBS: [AttrDef; 6] = [
    AttrDef::new("formatted", S),
    AttrDef::new("familyName", S),
    AttrDef::new("givenName", S),
    AttrDef::new("middleName", S),
    AttrDef::new("honorificPrefix", S),
    AttrDef::new("honorificSuffix", S),
];

static ADDRESS_SUBS: [AttrDef; 8] = [
    AttrDef::new("formatted", S),
    AttrDef::new("streetAddress", S),
    AttrDef::new("locality", S),
    AttrDef::new("region", S),
    AttrDef::new("postalCode", S),
    AttrDef::new("country", S),
    AttrDef::new("type", S).canonical(&["work", "home", "other"]),
    AttrDef::new("primary", T::Boolean),
];

static USER_GROUP_SUBS: [AttrDef; 4] = [
    AttrDef::new("value", S).mutability(M::ReadOnly),
    AttrDef::new("$ref", T::Reference)
        .refs(&["User", "Group"])
        .mutability(M::ReadOnly),
    AttrDef::new("display", S).mutability(M::ReadOnly),
    AttrDef::new("type", S)
        .canonical(&["direct", "indirect"])
        .mutability(M::ReadOnly),
];

static USER_ATTRS: [AttrDef; 21] = [
    AttrDef::new("userName", S)
        .required()
        .unique(Uniqueness::Server),
    AttrDef::complex("name", &NAME_SUBS),
    AttrDef::new("displayName", S),
    AttrDef::new("nickName", S),
    AttrDef::new("profileUrl", T::Reference).refs(&["external"]),
    AttrDef::new("title", S),
    AttrDef::new("userType", S),
    AttrDef::new("preferredLanguage", S),
    AttrDef::new("locale", S),
    AttrDef::new("timezone", S),
    AttrDef::new("active", T::Boolean),
    AttrDef::new("password", S)
        .mutability(M::WriteOnly)
        .returned(Returned::Never),
    AttrDef::complex("emails", &EMAIL_SUBS).multi(),
    AttrDef::complex("phoneNumbers", &PHONE_SUBS).multi(),
    AttrDef::complex("ims", &IM_SUBS).multi(),
    AttrDef::complex("photos", &PHOTO_SUBS).multi(),
    AttrDef::complex("addresses", &ADDRESS_SUBS).multi(),
    AttrDef::complex("groups", &USER_GROUP_SUBS)
        .multi()
        .mutability(M::ReadOnly),
    AttrDef::complex("entitlements", &PLAIN_SUBS).multi(),
    AttrDef::complex("roles", &PLAIN_SUBS).multi(),
    AttrDef::complex("x509Certificates", &CERT_SUBS).multi(),
];

static META_SUBS: [AttrDef; 5] = [
    AttrDef::new("resourceType", S)
        .exact()
        .mutability(M::ReadOnly),
    AttrDef::new("created", T::DateTime).mutability(M::ReadOnly),
    AttrDef::new("lastModified", T::DateTime).mutability(M::ReadOnly),
    AttrDef::new("location", T::Reference)
        .refs(&["uri"])
        .mutability(M::ReadOnly),
    AttrDef::new("version", S).exact().mutability(M::ReadOnly),
];

/// The attributes every resource has (RFC 7643 §3.1); they resolve under the core schema.
pub static COMMON_ATTRIBUTES: [AttrDef; 3] = [
    AttrDef::new("id", S)
        .exact()
        .mutability(M::ReadOnly)
        .returned(Returned::Always)
        .unique(Uniqueness::Server),
    AttrDef::new("externalId", S).exact(),
    AttrDef::complex("meta", &META_SUBS).mutability(M::ReadOnly),
];

static MANAGER_SUBS: [AttrDef; 3] = [
    AttrDef::new("value", S),
    AttrDef::new("$ref", T::Reference).refs(&["User"]),
    AttrDef::new("displayName", S).mutability(M::ReadOnly),
];

static ENTERPRISE_ATTRS: [AttrDef; 6] = [
    AttrDef::new("employeeNumber", S),
    AttrDef::new("costCenter", S),
    AttrDef::new("organization", S),
    AttrDef::new("division", S),
    AttrDef::new("department", S),
    AttrDef::complex("manager", &MANAGER_SUBS),
];

static MEMBER_SUBS: [AttrDef; 4] = [
    AttrDef::new("value", S).exact().mutability(M::Immutable),
    AttrDef::new("$ref", T::Reference)
        .refs(&["User", "Group"])
        .mutability(M::Immutable),
    AttrDef::new("display", S),
    AttrDef::new("type", S)
        .canonical(&["User", "Group"])
        .mutability(M::Immutable),
];

static GROUP_ATTRS: [AttrDef; 2] = [
    AttrDef::new("displayName", S).required(),
    AttrDef::complex("members", &MEMBER_SUBS).multi(),
];

/// The core User schema (RFC 7643 §4.1).
pub static USER_SCHEMA_DEF: SchemaDef = SchemaDef {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: &USER_ATTRS,
};

/// The core Group schema (RFC 7643 §4.2).
pub static GROUP_SCHEMA_DEF: SchemaDef = SchemaDef {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: &GROUP_ATTRS,
};

/// The enterprise User extension (RFC 7643 §4.3).
pub static ENTERPRISE_USER_SCHEMA_DEF: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &ENTERPRISE_ATTRS,
};

/// The User resource type (`/Users`) with the enterprise extension.
pub static USER: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    core: &USER_SCHEMA_DEF,
    extensions: &[&ENTERPRISE_USER_SCHEMA_DEF],
};

/// The Group resource type (`/Groups`).
pub static GROUP: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    core: &GROUP_SCHEMA_DEF,
    extensions: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_core_attribute_case_insensitively() {
        let r = USER.resolve(None, "USERNAME", None).unwrap();
        assert_eq!(r.schema, USER_SCHEMA);
        assert_eq!(r.attr.name, "userName");
        assert!(r.attr.required);
        assert_eq!(r.attr.uniqueness, Uniqueness::Server);
        assert!(!r.case_exact());
    }

    #[test]
    fn resolves_common_attributes_for_both_types() {
        for rt in [&USER, &GROUP] {
            let id = rt.resolve(None, "id", None).unwrap();
            assert!(id.case_exact());
            assert_eq!(id.attr.mutability, Mutability::ReadOnly);
            assert_eq!(id.attr.returned, Returned::Always);
            assert!(rt.resolve(None, "externalId", None).unwrap().case_exact());
            let created = rt
                .resolve(Some(rt.core.id), "meta", Some("created"))
                .unwrap();
            assert_eq!(created.def().ty, AttrType::DateTime);
            assert_eq!(created.schema, rt.core.id);
        }
    }

    #[test]
    fn resolves_sub_attributes_and_refs() {
        let r = USER.resolve(None, "name", Some("GIVENNAME")).unwrap();
        assert_eq!(r.sub.unwrap().name, "givenName");
        let r = GROUP.resolve(None, "members", Some("$ref")).unwrap();
        assert_eq!(r.def().ty, AttrType::Reference);
        assert_eq!(r.def().mutability, Mutability::Immutable);
        assert!(USER.resolve(None, "name", Some("nope")).is_none());
    }

    #[test]
    fn resolves_extension_with_and_without_urn() {
        let urn = ENTERPRISE_USER_SCHEMA.to_uppercase();
        let r = USER.resolve(Some(&urn), "department", None).unwrap();
        assert_eq!(r.schema, ENTERPRISE_USER_SCHEMA);
        let r = USER.resolve(None, "employeeNumber", None).unwrap();
        assert_eq!(r.schema, ENTERPRISE_USER_SCHEMA);
        let r = USER
            .resolve(Some(ENTERPRISE_USER_SCHEMA), "manager", Some("displayName"))
            .unwrap();
        assert_eq!(r.def().mutability, Mutability::ReadOnly);
        // Core attributes are not found under the extension URN and vice versa.
        assert!(
            USER.resolve(Some(ENTERPRISE_USER_SCHEMA), "userName", None)
                .is_none()
        );
        assert!(
            USER.resolve(Some(USER_SCHEMA), "department", None)
                .is_none()
        );
        assert!(GROUP.resolve(None, "department", None).is_none());
    }

    #[test]
    fn unknown_things_resolve_to_none() {
        assert!(USER.resolve(None, "shoeSize", None).is_none());
        assert!(
            USER.resolve(Some("urn:example:custom"), "x", None)
                .is_none()
        );
        assert!(
            USER.resolve(Some(GROUP_SCHEMA), "displayName", None)
                .is_none()
        );
    }

    #[test]
    fn schema_urns_lists_core_then_extensions() {
        assert_eq!(
            USER.schema_urns(),
            vec![USER_SCHEMA, ENTERPRISE_USER_SCHEMA]
        );
        assert_eq!(GROUP.schema_urns(), vec![GROUP_SCHEMA]);
    }

    #[test]
    fn user_schema_shape() {
        let pw = USER.resolve(None, "password", None).unwrap().attr;
        assert_eq!(pw.mutability, Mutability::WriteOnly);
        assert_eq!(pw.returned, Returned::Never);
        let groups = USER.resolve(None, "groups", None).unwrap().attr;
        assert!(groups.is_multi_complex());
        assert_eq!(groups.mutability, Mutability::ReadOnly);
        let emails = USER.resolve(None, "emails", Some("type")).unwrap();
        assert_eq!(emails.def().canonical_values, &["work", "home", "other"]);
        assert_eq!(
            USER.resolve(None, "active", None).unwrap().attr.ty,
            AttrType::Boolean
        );
        let addr = USER.resolve(None, "addresses", Some("postalCode"));
        assert!(addr.is_some());
        let group_display = GROUP.resolve(None, "displayName", None).unwrap();
        assert!(group_display.attr.required);
        let member_type = GROUP.resolve(None, "members", Some("type")).unwrap();
        assert_eq!(member_type.def().canonical_values, &["User", "Group"]);
    }
}
