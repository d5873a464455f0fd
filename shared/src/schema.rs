//! Portcullis's Cedar schema and the names it defines.

/// The Cedar schema (human-readable syntax) every policy set is validated against.
pub const SCHEMA: &str = include_str!("../cedar/portcullis.cedarschema");

/// Where declared principal attributes are inserted into [`SCHEMA`].
const ATTRIBUTES_MARKER: &str = "  // @principal-attributes";

/// Built-in `User` attributes; a declared attribute may not reuse these names.
pub const BUILT_IN_USER_ATTRIBUTES: [&str; 7] = [
    "userName",
    "displayName",
    "email",
    "externalId",
    "department",
    "source",
    "active",
];

/// The schema with `decls` as optional `User` attributes (quoted names, so any SCIM attribute
/// name is valid: policies write `principal["ethical-wall"]` or `principal.clearance`).
pub fn with_principal_attributes(decls: &[crate::snapshot::AttributeDecl]) -> String {
    use crate::snapshot::AttrKind;
    let mut lines = String::new();
    for d in decls {
        let ty = match d.kind {
            AttrKind::String => "String",
            AttrKind::Long => "Long",
            AttrKind::Bool => "Bool",
            AttrKind::Decimal => "decimal",
        };
        let ty = if d.multi {
            format!("Set<{ty}>")
        } else {
            ty.to_owned()
        };
        lines.push_str(&format!("  {}?: {ty},\n", crate::request::quote(&d.name)));
    }
    SCHEMA.replacen(ATTRIBUTES_MARKER, &format!("{lines}{ATTRIBUTES_MARKER}"), 1)
}

/// Cedar entity type names.
pub mod entity {
    pub const USER: &str = "User";
    pub const GROUP: &str = "Group";
    pub const ROLE: &str = "Role";
    pub const SOURCE: &str = "Source";
    pub const PROVIDER: &str = "Provider";
    pub const MODEL: &str = "Model";
    pub const MCP_SERVER: &str = "McpServer";
    pub const MCP_TOOL: &str = "McpTool";
    pub const MCP_RESOURCE: &str = "McpResource";
    pub const MCP_PROMPT: &str = "McpPrompt";
}
