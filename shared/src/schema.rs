//! Portcullis's Cedar schema and the names it defines.

use crate::snapshot::{AttrKind, AttributeDecl};

/// The Cedar schema (human-readable syntax) every policy set is validated against.
pub const SCHEMA: &str = include_str!("../cedar/portcullis.cedarschema");

/// Where declared principal attributes are inserted into [`SCHEMA`].
const ATTRIBUTES_MARKER: &str = "  // @principal-attributes";
/// Where resource labels are inserted, once per resource entity type.
const LABELS_MARKER: &str = "  // @resource-labels";

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

/// The schema with `decls` as `User` attributes (see [`build`]).
pub fn with_principal_attributes(decls: &[AttributeDecl]) -> String {
    build(decls, &[])
}

/// The schema with `principal` declared on `User` and `labels` on every resource type. Names
/// are quoted, so any name is valid (policies write `principal["ethical-wall"]` or
/// `principal.clearance`). A declaration with a default is required (every entity has it, so
/// policies read it without `has`); one without is optional.
pub fn build(principal: &[AttributeDecl], labels: &[AttributeDecl]) -> String {
    let schema = SCHEMA.replacen(
        ATTRIBUTES_MARKER,
        &format!("{}{ATTRIBUTES_MARKER}", lines(principal)),
        1,
    );
    schema.replace(LABELS_MARKER, &format!("{}{LABELS_MARKER}", lines(labels)))
}

fn lines(decls: &[AttributeDecl]) -> String {
    let mut out = String::new();
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
        let optional = if d.default.is_some() { "" } else { "?" };
        out.push_str(&format!(
            "  {}{optional}: {ty},\n",
            crate::request::quote(&d.name)
        ));
    }
    out
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
    pub const LLM_TOOL: &str = "LlmTool";
}
