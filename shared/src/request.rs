//! The request model: what a principal asks to do, on what, in which context.
//!
//! The data plane classifies raw traffic into these values; the engine decides them. Each
//! action maps to one Cedar action id from the schema, each resource to one Cedar entity.

use std::fmt;

/// An operation, named as the Cedar schema names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Chat,
    Embed,
    Responses,
    ModelsList,
    McpInitialize,
    McpPing,
    McpNotification,
    McpToolsList,
    McpResourcesList,
    McpResourceTemplatesList,
    McpPromptsList,
    McpToolsCall,
    McpResourcesRead,
    McpPromptsGet,
    McpOther,
    LlmTool,
}

impl Action {
    /// Every action, in declaration order ([`Action::index`] is the position).
    pub const ALL: [Action; 16] = [
        Self::Chat,
        Self::Embed,
        Self::Responses,
        Self::ModelsList,
        Self::McpInitialize,
        Self::McpPing,
        Self::McpNotification,
        Self::McpToolsList,
        Self::McpResourcesList,
        Self::McpResourceTemplatesList,
        Self::McpPromptsList,
        Self::McpToolsCall,
        Self::McpResourcesRead,
        Self::McpPromptsGet,
        Self::McpOther,
        Self::LlmTool,
    ];

    /// The action's position in [`Action::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The Cedar action id (`Action::"<id>"`).
    pub fn cedar_id(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embed => "embed",
            Self::Responses => "responses",
            Self::ModelsList => "models:list",
            Self::McpInitialize => "mcp:initialize",
            Self::McpPing => "mcp:ping",
            Self::McpNotification => "mcp:notification",
            Self::McpToolsList => "mcp:tools/list",
            Self::McpResourcesList => "mcp:resources/list",
            Self::McpResourceTemplatesList => "mcp:resources/templates/list",
            Self::McpPromptsList => "mcp:prompts/list",
            Self::McpToolsCall => "mcp:tools/call",
            Self::McpResourcesRead => "mcp:resources/read",
            Self::McpPromptsGet => "mcp:prompts/get",
            Self::McpOther => "mcp:other",
            Self::LlmTool => "llm:tool",
        }
    }

    /// Classifies the method of an MCP JSON-RPC *request* (a message with an `id`). Requests
    /// whose method is not one Portcullis names (including a `notifications/…` method sent
    /// with an id) are `McpOther`. Notifications are classified by the caller.
    pub fn for_mcp_method(method: &str) -> Self {
        match method {
            "initialize" => Self::McpInitialize,
            "ping" => Self::McpPing,
            "tools/list" => Self::McpToolsList,
            "tools/call" => Self::McpToolsCall,
            "resources/list" => Self::McpResourcesList,
            "resources/templates/list" => Self::McpResourceTemplatesList,
            "resources/read" => Self::McpResourcesRead,
            "prompts/list" => Self::McpPromptsList,
            "prompts/get" => Self::McpPromptsGet,
            _ => Self::McpOther,
        }
    }
}

impl Action {
    /// The action with this Cedar id.
    pub fn from_cedar_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.cedar_id() == id)
    }
}

/// Serialized as its Cedar id.
impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.cedar_id())
    }
}

impl<'de> serde::Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_cedar_id(&id)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown action {id:?}")))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cedar_id())
    }
}

/// What the request acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Resource {
    /// A model behind a provider route. `provider` is the route's provider name, `kind` its
    /// API family (`openai`, `anthropic`, …).
    Model {
        provider: String,
        kind: String,
        name: String,
    },
    /// A provider route itself (for listing models).
    Provider {
        name: String,
        kind: String,
    },
    /// An MCP server (for session upkeep and listings).
    McpServer {
        server: String,
    },
    McpTool {
        server: String,
        tool: String,
    },
    McpResource {
        server: String,
        uri: String,
    },
    McpPrompt {
        server: String,
        name: String,
    },
    /// A tool an LLM request offers the model (an entry of its `tools` array), by name:
    /// `LlmTool::"Bash"`, under the route's provider.
    LlmTool {
        provider: String,
        kind: String,
        name: String,
    },
}

impl Resource {
    /// Cedar entity type and id. Tools, resources and prompts are scoped by their server:
    /// `McpTool::"crm/search_accounts"`.
    pub fn cedar_uid(&self) -> (&'static str, String) {
        use crate::schema::entity;
        match self {
            Self::Model { name, .. } => (entity::MODEL, name.clone()),
            Self::Provider { name, .. } => (entity::PROVIDER, name.clone()),
            Self::McpServer { server } => (entity::MCP_SERVER, server.clone()),
            Self::McpTool { server, tool } => (entity::MCP_TOOL, format!("{server}/{tool}")),
            Self::McpResource { server, uri } => (entity::MCP_RESOURCE, format!("{server}/{uri}")),
            Self::McpPrompt { server, name } => (entity::MCP_PROMPT, format!("{server}/{name}")),
            Self::LlmTool { name, .. } => (entity::LLM_TOOL, name.clone()),
        }
    }
}

impl fmt::Display for Resource {
    /// Cedar syntax: `Model::"gpt-4o-mini"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ty, id) = self.cedar_uid();
        write!(f, "{ty}::{}", quote(&id))
    }
}

/// Per-request facts: policies read `context.route` and `context.stream`; the engine decides
/// conditional role bindings, break-glass expiry and planned end dates from the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RequestContext {
    pub route: String,
    pub stream: bool,
    /// When the request arrived (Unix milliseconds), by the node's clock.
    pub now_ms: u64,
    /// The node's environment (`prod`, `staging`, …), if configured. Shared, so building a
    /// request context costs a reference count, not an allocation.
    pub environment: Option<std::sync::Arc<str>>,
    /// The route's tenant, if configured.
    pub tenant: Option<std::sync::Arc<str>>,
    /// Values the verified token's claims give principal attributes that declare a claim, by
    /// index into [`crate::snapshot::Snapshot::principal_attributes`]. Empty (no allocation)
    /// when no attribute maps a claim.
    pub claims: Vec<(u32, crate::snapshot::AttrValue)>,
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One decision to make.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub action: Action,
    pub resource: Resource,
    pub context: RequestContext,
}

/// Quotes an id the way Cedar prints it.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_methods_map_to_schema_actions() {
        assert_eq!(Action::for_mcp_method("tools/call"), Action::McpToolsCall);
        assert_eq!(
            Action::for_mcp_method("notifications/initialized"),
            Action::McpOther
        );
        assert_eq!(
            Action::for_mcp_method("completion/complete"),
            Action::McpOther
        );
    }

    #[test]
    fn resources_print_as_cedar() {
        let r = Resource::McpTool {
            server: "crm".into(),
            tool: "say \"hi\"".into(),
        };
        assert_eq!(r.to_string(), r#"McpTool::"crm/say \"hi\"""#);
    }
}
