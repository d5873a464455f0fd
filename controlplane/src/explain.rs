//! `POST /admin/v1/explain`: how a snapshot decides one request for one principal — the
//! decision, the policies that determined it, and for every other policy the scope or clause
//! that kept it from applying. The live snapshot by default; with `at_ms`, the snapshot that
//! was live at that instant (replay of a what-if).

use crate::admin::AdminState;
use crate::history::{History, HistoryError};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_shared::engine::{Engine, Lookup};
use portcullis_shared::request::{Action, Request, RequestContext, Resource};
use portcullis_shared::snapshot::{PrincipalClaim, User};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// The request to explain, as the admin API's JSON body and as the CLI's flags. The principal
/// is named by SCIM id or by userName within a source; the resource by the fields its type
/// needs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// The identity source the principal is in.
    #[arg(long)]
    pub source: String,
    /// The user's SCIM id.
    #[serde(default)]
    #[arg(long)]
    pub user_id: Option<String>,
    /// The user's userName (matched as a token's email claim is).
    #[serde(default)]
    #[arg(long, required_unless_present = "user_id", conflicts_with = "user_id")]
    pub user: Option<String>,
    /// The Cedar action id (`chat`, `mcp:tools/call`, …). Defaults from the resource.
    #[serde(default)]
    #[arg(long)]
    pub action: Option<String>,
    /// A provider route (with `model` for a model).
    #[serde(default)]
    #[arg(long)]
    pub provider: Option<String>,
    /// The provider's API family (`openai`, `anthropic`, …); defaults to the provider name.
    #[serde(default)]
    #[arg(long)]
    pub kind: Option<String>,
    /// A model of the provider.
    #[serde(default)]
    #[arg(long)]
    pub model: Option<String>,
    /// A tool an LLM request offers the model, under the provider (`llm:tool`).
    #[serde(default)]
    #[arg(long, conflicts_with = "model")]
    pub llm_tool: Option<String>,
    /// An MCP server (with `tool`, `uri` or `prompt`).
    #[serde(default)]
    #[arg(long)]
    pub server: Option<String>,
    /// An MCP tool of the server.
    #[serde(default)]
    #[arg(long)]
    pub tool: Option<String>,
    /// An MCP resource URI of the server.
    #[serde(default)]
    #[arg(long)]
    pub uri: Option<String>,
    /// An MCP prompt of the server.
    #[serde(default)]
    #[arg(long)]
    pub prompt: Option<String>,
    /// The route prefix the request came through (`context.route`).
    #[serde(default)]
    #[arg(long)]
    pub route: Option<String>,
    /// A streamed request (`context.stream`).
    #[serde(default)]
    #[arg(long)]
    pub stream: bool,
    /// The node's environment (for conditional role bindings).
    #[serde(default)]
    #[arg(long)]
    pub environment: Option<String>,
    /// The route's tenant (for conditional role bindings).
    #[serde(default)]
    #[arg(long)]
    pub tenant: Option<String>,
    /// The instant to decide at (Unix ms), against the snapshot live then; now and the live
    /// snapshot by default. RFC 3339 or Unix ms.
    #[serde(default)]
    #[arg(long, value_parser = crate::cli::parse_instant)]
    pub at_ms: Option<u64>,
}

/// The actions that apply to a resource (the schema's `appliesTo`).
pub(crate) fn actions_for(resource: &Resource) -> &'static [Action] {
    match resource {
        Resource::Model { .. } => &[Action::Chat, Action::Embed, Action::Responses],
        Resource::Provider { .. } => &[Action::ModelsList],
        Resource::LlmTool { .. } => &[Action::LlmTool],
        Resource::McpTool { .. } => &[Action::McpToolsCall],
        Resource::McpResource { .. } => &[Action::McpResourcesRead],
        Resource::McpPrompt { .. } => &[Action::McpPromptsGet],
        Resource::McpServer { .. } => &[
            Action::McpInitialize,
            Action::McpPing,
            Action::McpNotification,
            Action::McpToolsList,
            Action::McpResourcesList,
            Action::McpResourceTemplatesList,
            Action::McpPromptsList,
            Action::McpOther,
        ],
    }
}

/// Builds the engine's request from the fields given, or says what is missing.
pub fn request(e: &ExplainRequest) -> Result<Request, String> {
    let resource = match (&e.model, &e.provider, &e.server) {
        (Some(_), _, _) if e.llm_tool.is_some() => {
            return Err("give a model or an llm_tool, not both".into());
        }
        (None, Some(provider), None) if e.llm_tool.is_some() => Resource::LlmTool {
            provider: provider.clone(),
            kind: e.kind.clone().unwrap_or_else(|| provider.clone()),
            name: e.llm_tool.clone().unwrap_or_default(),
        },
        (Some(model), Some(provider), None) => Resource::Model {
            provider: provider.clone(),
            kind: e.kind.clone().unwrap_or_else(|| provider.clone()),
            name: model.clone(),
        },
        (None, Some(provider), None) => Resource::Provider {
            name: provider.clone(),
            kind: e.kind.clone().unwrap_or_else(|| provider.clone()),
        },
        (None, None, Some(server)) => match (&e.tool, &e.uri, &e.prompt) {
            (Some(tool), None, None) => Resource::McpTool {
                server: server.clone(),
                tool: tool.clone(),
            },
            (None, Some(uri), None) => Resource::McpResource {
                server: server.clone(),
                uri: uri.clone(),
            },
            (None, None, Some(name)) => Resource::McpPrompt {
                server: server.clone(),
                name: name.clone(),
            },
            (None, None, None) => Resource::McpServer {
                server: server.clone(),
            },
            _ => return Err("give at most one of tool, uri and prompt".into()),
        },
        (Some(_), None, _) => return Err("a model needs its provider".into()),
        _ => {
            return Err(
                "name the resource: provider and model (or llm_tool), a provider, or an MCP \
                 server (with a tool, uri or prompt)"
                    .into(),
            );
        }
    };
    let action = match &e.action {
        Some(id) => Action::from_cedar_id(id).ok_or_else(|| {
            format!(
                "unknown action {id:?}; one of: {}",
                Action::ALL.map(Action::cedar_id).join(", ")
            )
        })?,
        None => match &resource {
            Resource::Model { .. } => Action::Chat,
            Resource::Provider { .. } => Action::ModelsList,
            Resource::LlmTool { .. } => Action::LlmTool,
            Resource::McpServer { .. } => Action::McpToolsList,
            Resource::McpTool { .. } => Action::McpToolsCall,
            Resource::McpResource { .. } => Action::McpResourcesRead,
            Resource::McpPrompt { .. } => Action::McpPromptsGet,
        },
    };
    let applies = actions_for(&resource).contains(&action);
    if !applies {
        return Err(format!(
            "action {} does not apply to {resource} (see the schema's appliesTo)",
            action.cedar_id()
        ));
    }
    Ok(Request {
        action,
        resource,
        context: RequestContext {
            route: e.route.clone().unwrap_or_default(),
            stream: e.stream,
            now_ms: e.at_ms.unwrap_or_else(portcullis_shared::request::now_ms),
            environment: e.environment.as_deref().map(Arc::from),
            tenant: e.tenant.as_deref().map(Arc::from),
            claims: Vec::new(),
        },
    })
}

pub(crate) fn bad(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// The answer for a snapshot that cannot be had.
pub(crate) fn history_error(e: HistoryError) -> Response {
    let status = match &e {
        HistoryError::NothingPublished => StatusCode::SERVICE_UNAVAILABLE,
        HistoryError::NoneAt(_) => StatusCode::NOT_FOUND,
        HistoryError::NotKept(_) => StatusCode::GONE,
        HistoryError::Store(_) | HistoryError::Rebuild { .. } => {
            tracing::error!(error = %e, "cannot rebuild a past snapshot");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    bad(status, e.to_string())
}

/// The engine live at `at_ms`, or the latest.
pub(crate) async fn engine_at(
    history: &History,
    at_ms: Option<u64>,
) -> Result<Arc<Engine>, HistoryError> {
    match at_ms {
        Some(t) => history.engine(history.version_at(t).await?).await,
        None => history.latest().await,
    }
}

/// The user named by SCIM id or by userName in `source`, in `engine`'s snapshot.
pub(crate) fn find_principal(
    engine: &Engine,
    source: &str,
    user_id: Option<&str>,
    user: Option<&str>,
) -> Result<Arc<User>, (StatusCode, String)> {
    let found = match (user_id, user) {
        (Some(id), None) => engine.user(source, id).cloned(),
        (None, Some(name)) => {
            match engine.find_user(source, PrincipalClaim::EmailToUserName, name) {
                Lookup::Found(u) => Some(u),
                Lookup::Ambiguous => {
                    return Err((
                        StatusCode::CONFLICT,
                        format!("userName {name} names more than one user of {source}"),
                    ));
                }
                Lookup::Missing => None,
            }
        }
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                "give exactly one of user_id and user".into(),
            ));
        }
    };
    found.ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!(
                "no user {} in source {source} at snapshot {}",
                user_id.or(user).unwrap_or(""),
                engine.version()
            ),
        )
    })
}

pub async fn explain(State(s): State<AdminState>, Json(body): Json<ExplainRequest>) -> Response {
    let request = match request(&body) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    let engine = match engine_at(&s.history, body.at_ms).await {
        Ok(e) => e,
        Err(e) => return history_error(e),
    };
    let user = match find_principal(
        &engine,
        &body.source,
        body.user_id.as_deref(),
        body.user.as_deref(),
    ) {
        Ok(u) => u,
        Err((status, why)) => return bad(status, why),
    };
    let explanation = engine.explain(&user, &request);
    Json(json!({
        "snapshot_version": engine.version(),
        "policy_version": engine.policy_version().to_string(),
        "principal": {"source": user.source, "id": user.id, "user_name": user.user_name},
        "action": request.action.cedar_id(),
        "resource": request.resource.to_string(),
        "explanation": explanation,
    }))
    .into_response()
}
