//! Portcullis's Cedar schema and the names it defines.

/// The Cedar schema (human-readable syntax) every policy set is validated against.
pub const SCHEMA: &str = include_str!("../cedar/portcullis.cedarschema");

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
