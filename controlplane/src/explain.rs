//! `POST /admin/v1/explain`: how the live snapshot decides one request for one principal —
//! the decision, the policies that determined it, and for every other policy the scope or
//! clause that kept it from applying.

use crate::admin::AdminState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_shared::engine::{Engine, Lookup};
use portcullis_shared::request::{Action, Request, RequestContext, Resource};
use portcullis_shared::snapshot::PrincipalClaim;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::{Arc, Mutex};

/// The engine for the latest published version, built on first use.
#[derive(Debug, Clone, Default)]
pub struct EngineCache(Arc<Mutex<Option<Cached>>>);

/// An engine with the version and id it was built for.
type Cached = (u64, u64, Arc<Engine>);

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
    /// The instant to decide at (Unix ms); now by default.
    #[serde(default)]
    #[arg(long)]
    pub at_ms: Option<u64>,
}

/// Builds the engine's request from the fields given, or says what is missing.
pub fn request(e: &ExplainRequest) -> Result<Request, String> {
    let resource = match (&e.model, &e.provider, &e.server) {
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
                "name the resource: provider and model, a provider, or an MCP server \
                 (with a tool, uri or prompt)"
                    .into(),
            );
        }
    };
    let action = match &e.action {
        Some(id) => Action::ALL
            .into_iter()
            .find(|a| a.cedar_id() == id)
            .ok_or_else(|| {
                format!(
                    "unknown action {id:?}; one of: {}",
                    Action::ALL.map(Action::cedar_id).join(", ")
                )
            })?,
        None => match &resource {
            Resource::Model { .. } => Action::Chat,
            Resource::Provider { .. } => Action::ModelsList,
            Resource::McpServer { .. } => Action::McpToolsList,
            Resource::McpTool { .. } => Action::McpToolsCall,
            Resource::McpResource { .. } => Action::McpResourcesRead,
            Resource::McpPrompt { .. } => Action::McpPromptsGet,
        },
    };
    let applies = matches!(
        (&resource, action),
        (
            Resource::Model { .. },
            Action::Chat | Action::Embed | Action::Responses
        ) | (Resource::Provider { .. }, Action::ModelsList)
            | (Resource::McpTool { .. }, Action::McpToolsCall)
            | (Resource::McpResource { .. }, Action::McpResourcesRead)
            | (Resource::McpPrompt { .. }, Action::McpPromptsGet)
            | (
                Resource::McpServer { .. },
                Action::McpInitialize
                    | Action::McpPing
                    | Action::McpNotification
                    | Action::McpToolsList
                    | Action::McpResourcesList
                    | Action::McpResourceTemplatesList
                    | Action::McpPromptsList
                    | Action::McpOther
            )
    );
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

fn bad(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

pub async fn explain(State(s): State<AdminState>, Json(body): Json<ExplainRequest>) -> Response {
    let request = match request(&body) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    let Some(latest) = s.publisher.latest() else {
        return bad(
            StatusCode::SERVICE_UNAVAILABLE,
            "no snapshot has been published yet",
        );
    };
    let cache = s.explain.clone();
    let engine = tokio::task::spawn_blocking(move || -> Result<Arc<Engine>, String> {
        let mut slot = cache.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((v, id, e)) = slot.as_ref()
            && *v == latest.version
            && *id == latest.snapshot.id
        {
            return Ok(e.clone());
        }
        let engine = Arc::new(Engine::new((*latest.snapshot).clone()).map_err(|e| e.to_string())?);
        *slot = Some((latest.version, latest.snapshot.id, engine.clone()));
        Ok(engine)
    })
    .await;
    let engine = match engine {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return bad(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => return bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let user = match (&body.user_id, &body.user) {
        (Some(id), None) => engine.user(&body.source, id).cloned(),
        (None, Some(name)) => {
            match engine.find_user(&body.source, PrincipalClaim::EmailToUserName, name) {
                Lookup::Found(u) => Some(u),
                Lookup::Ambiguous => {
                    return bad(
                        StatusCode::CONFLICT,
                        format!(
                            "userName {name} names more than one user of {}",
                            body.source
                        ),
                    );
                }
                Lookup::Missing => None,
            }
        }
        _ => {
            return bad(
                StatusCode::BAD_REQUEST,
                "give exactly one of user_id and user",
            );
        }
    };
    let Some(user) = user else {
        return bad(
            StatusCode::NOT_FOUND,
            format!(
                "no user {} in source {} at snapshot {}",
                body.user_id
                    .as_deref()
                    .or(body.user.as_deref())
                    .unwrap_or(""),
                body.source,
                engine.version()
            ),
        );
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
