//! The edge: Pingora's `ProxyHttp`, with every request handled in `request_filter`.
//!
//! ```text
//! route ─► snapshot ─► operation ─► authenticate ─► principal ─► body ─► classify ─► decide
//!   404      503          404           401            403        413      400        403
//!                                                                                  └─► forward
//! ```
//!
//! Each request loads the snapshot once and decides against that one value. Every refusal is
//! answered in the client's protocol (see [`crate::respond`]); every decision, allow or deny,
//! is logged as one structured record (see [`crate::decision_log`]). Allowed requests are
//! forwarded from the same filter (see [`crate::forward`] for why).

use crate::auth::{self, AuthError, Verified};
use crate::classify::{self, ClassifyError};
use crate::config::{Config, Route, RouteKind};
use crate::decision_log::{self, Outcome};
use crate::forward::{self, ForwardError};
use crate::listfilter::ListFilter;
use crate::respond::{Kind, Refusal};
use crate::standing::Standing;
use crate::state::{NodeSnapshot, NodeState, now_ms};
use crate::tools;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use portcullis_shared::engine::{Decision, Lookup, Reason};
use portcullis_shared::request::{Action, Request, Resource};
use portcullis_shared::snapshot::{ApiKey, User};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The proxy service.
pub struct Edge {
    config: Arc<Config>,
    state: Arc<NodeState>,
    connector: Connector,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("node", &self.config.node_id)
            .finish()
    }
}

impl Edge {
    pub fn new(config: Arc<Config>, state: Arc<NodeState>) -> Self {
        Self {
            config,
            state,
            connector: Connector::new(None),
        }
    }
}

/// Per-request state.
#[derive(Debug)]
pub struct Ctx {
    started: Instant,
    request_id: String,
    /// The route's prefix (shared with the configuration, so naming it costs no copy).
    route: Option<Arc<str>>,
    status: u16,
}

/// A status code as a metric label, without formatting the common ones.
fn status_label(status: u16) -> metrics::SharedString {
    match status {
        0 => metrics::SharedString::const_str("0"),
        200 => metrics::SharedString::const_str("200"),
        400 => metrics::SharedString::const_str("400"),
        401 => metrics::SharedString::const_str("401"),
        403 => metrics::SharedString::const_str("403"),
        404 => metrics::SharedString::const_str("404"),
        413 => metrics::SharedString::const_str("413"),
        502 => metrics::SharedString::const_str("502"),
        503 => metrics::SharedString::const_str("503"),
        other => metrics::SharedString::from(other.to_string()),
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            request_id: String::new(),
            route: None,
            status: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.request_id = request_id(session);
        match self.handle(session, ctx).await {
            Ok(()) => Ok(true),
            Err(e) => Err(Error::explain(ErrorType::WriteError, e)),
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // Never reached: `request_filter` answers every request itself.
        Err(Error::explain(
            ErrorType::InternalError,
            "portcullis forwards from request_filter",
        ))
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let route: metrics::SharedString = match &ctx.route {
            Some(r) => metrics::SharedString::from(r.clone()),
            None => metrics::SharedString::const_str("none"),
        };
        metrics::counter!("portcullis_requests_total", "route" => route.clone(), "status" => status_label(ctx.status))
            .increment(1);
        metrics::histogram!("portcullis_request_seconds", "route" => route)
            .record(ctx.started.elapsed().as_secs_f64());
        tracing::debug!(
            target: "portcullis::access",
            request_id = %ctx.request_id,
            method = %session.req_header().method,
            path = %session.req_header().uri.path(),
            status = ctx.status,
            ms = ctx.started.elapsed().as_secs_f64() * 1e3,
            error = e.map(|e| e.to_string()),
        );
    }
}

/// What an allowed request's streamed answer is re-decided with (see [`Standing`]).
#[derive(Clone, Copy)]
struct Allowed<'a> {
    snapshot: &'a Arc<NodeSnapshot>,
    who: &'a Who,
    verified: &'a Arc<Verified>,
    /// The request, or each allowed message of a batch.
    requests: &'a [Request],
    mcp_id: Option<&'a Value>,
}

/// What the handler needs to log a decision.
struct Decided<'a> {
    snapshot: &'a NodeSnapshot,
}

impl Edge {
    /// Answers the request: a refusal, or the forwarded upstream response. Returns an error
    /// only when the connection to the client must be cut.
    async fn handle(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> std::result::Result<(), String> {
        let path = session.req_header().uri.path().to_owned();
        if path.starts_with("/.well-known/oauth-protected-resource") {
            return self.resource_metadata(session, ctx, &path).await;
        }
        if let Err(why) = classify::check_path(&path) {
            let kind = self.config.route_for(&path).map(|r| r.kind);
            return self
                .refuse(
                    session,
                    ctx,
                    kind,
                    None,
                    Refusal::new(Kind::BadRequest, why),
                )
                .await;
        }
        let Some(route) = self.config.route_for(&path) else {
            return self
                .refuse(
                    session,
                    ctx,
                    None,
                    None,
                    Refusal::new(Kind::NotFound, format!("no route for {path}")),
                )
                .await;
        };
        ctx.route = Some(route.label.clone());
        let kind = Some(route.kind);

        // Fail closed: without a snapshot this node cannot decide anything.
        let Some(snapshot) = self.state.current() else {
            return self
                .refuse(
                    session,
                    ctx,
                    kind,
                    None,
                    Refusal::new(
                        Kind::Unavailable,
                        "this gateway node has no policy snapshot yet; refusing to forward",
                    ),
                )
                .await;
        };

        // A route that must not act on old knowledge fails closed once this node has gone
        // too long without knowing it holds the latest snapshot (the control plane
        // unreachable, or its snapshots not applied); other routes keep serving.
        if let Some(max) = route.max_staleness_ms {
            let stale = self.state.stale_for_ms(now_ms());
            if stale.is_none_or(|ms| ms > max) {
                metrics::counter!("portcullis_stale_refusals_total", "route" => route.name.clone())
                    .increment(1);
                let why = match stale {
                    Some(ms) => format!(
                        "this node has not confirmed it holds the latest policy snapshot for {:.1} s (the control plane is unreachable, or its snapshots could not be applied); route {} allows at most {:.1} s, so this node refuses rather than enforce stale policy (snapshot {})",
                        ms as f64 / 1000.0,
                        route.prefix,
                        max as f64 / 1000.0,
                        snapshot.version()
                    ),
                    None => format!(
                        "this node has not reached the control plane since it started; route {} requires a live connection (at most {:.1} s old)",
                        route.prefix,
                        max as f64 / 1000.0
                    ),
                };
                return self
                    .refuse(
                        session,
                        ctx,
                        kind,
                        None,
                        Refusal::new(Kind::Unavailable, why),
                    )
                    .await;
            }
        }

        let rest = if route.prefix == "/" {
            path.as_str()
        } else {
            &path[route.prefix.len()..]
        };
        let method = session.req_header().method.as_str().to_owned();
        let op = match classify::operation(route, &method, rest) {
            Ok(op) => op,
            Err(e) => {
                return self
                    .refuse(
                        session,
                        ctx,
                        kind,
                        None,
                        Refusal::new(Kind::NotFound, e.to_string()),
                    )
                    .await;
            }
        };

        let decided = Decided {
            snapshot: &snapshot,
        };
        // An API key the control plane issued, or a token from a trusted issuer.
        let verify = |t: &str| {
            if t.starts_with(ApiKey::PREFIX) {
                auth::verify_api_key(&snapshot.engine, t, now_ms())
            } else {
                snapshot.keys.verify(t)
            }
        };
        let verified = match bearer(session, route.kind).map(verify) {
            Some(Ok(v)) => v,
            Some(Err(e)) => return self.unauthenticated(session, ctx, route, &decided, e).await,
            None => {
                return self
                    .unauthenticated(session, ctx, route, &decided, AuthError::Missing)
                    .await;
            }
        };
        // An MCP route with its own resource identifier takes only tokens issued for it, with
        // the scopes it requires.
        if let Some(oauth) = &route.oauth {
            if !verified.audiences.contains(&oauth.resource) {
                let e = AuthError::NotForResource(oauth.resource.clone());
                return self.unauthenticated(session, ctx, route, &decided, e).await;
            }
            let missing: Vec<&str> = oauth
                .required_scopes
                .iter()
                .filter(|s| !verified.scopes.contains(s))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                decision_log::record(
                    &self.config.node_id,
                    &ctx.request_id,
                    &snapshot,
                    None,
                    None,
                    Outcome::Refused("insufficient_scope"),
                    0,
                );
                let required = oauth.required_scopes.join(" ");
                let r = Refusal::new(
                    Kind::Denied,
                    format!(
                        "the token lacks the scope(s) {} this resource requires; ask the authorization server for: {required}",
                        missing.join(", ")
                    ),
                )
                .with_challenge(format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{required}\", resource_metadata=\"{}\"",
                    oauth.metadata_url()
                ));
                return self.refuse(session, ctx, kind, None, r).await;
            }
        }
        let who = match resolve(&snapshot.engine, &verified) {
            Ok(who) => who,
            Err((label, why)) => {
                decision_log::record(
                    &self.config.node_id,
                    &ctx.request_id,
                    &snapshot,
                    None,
                    None,
                    Outcome::Refused(label),
                    0,
                );
                let r = Refusal::new(Kind::Denied, why).with_detail(json!({"reason": label}));
                return self.refuse(session, ctx, kind, None, r).await;
            }
        };
        let user: &User = &who;

        let body = if op.needs_body() {
            match self.read_body(session).await {
                Ok(b) => b,
                Err(r) => return self.refuse(session, ctx, kind, None, r).await,
            }
        } else {
            Bytes::new()
        };

        if op == classify::Operation::McpMessage
            && let Some(batch) = classify::mcp_batch(route, &body)
        {
            return self
                .batch(
                    session, ctx, route, &snapshot, &who, &verified, batch, body, rest,
                )
                .await;
        }

        let parsed = match op {
            classify::Operation::ModelCall(action)
                if !op.parse_before_deciding(route, snapshot.engine.needs()) =>
            {
                Ok(classify::unread_model_call(route, action))
            }
            _ => classify::request(route, op, rest, &body),
        };
        let mut classified = match parsed {
            Ok(c) => c,
            Err(ClassifyError::JsonRpc { code, message, id }) => {
                let r = Refusal::new(Kind::BadRequest, message).with_jsonrpc_code(code);
                return self.refuse(session, ctx, kind, id.as_ref(), r).await;
            }
            Err(other) => {
                let r = Refusal::new(Kind::BadRequest, other.to_string());
                return self.refuse(session, ctx, kind, None, r).await;
            }
        };
        let mcp_id = classified.mcp.as_ref().and_then(|m| m.id.clone());
        classified.request.context.claims = verified.claims.clone();

        let started = Instant::now();
        let decision = snapshot.engine.decide(user, &classified.request);
        let decision_us = started.elapsed().as_micros() as u64;
        static DECISION_SECONDS: std::sync::OnceLock<metrics::Histogram> =
            std::sync::OnceLock::new();
        DECISION_SECONDS
            .get_or_init(|| metrics::histogram!("portcullis_decision_seconds"))
            .record(started.elapsed().as_secs_f64());
        decision_log::record(
            &self.config.node_id,
            &ctx.request_id,
            &snapshot,
            Some(user),
            Some(&classified.request),
            Outcome::Decided(&decision),
            decision_us,
        );

        if !decision.is_allowed() {
            let r = denial(&decision, &classified.request);
            return self.refuse(session, ctx, kind, mcp_id.as_ref(), r).await;
        }
        let dialect = match route.kind {
            RouteKind::Openai | RouteKind::Azure | RouteKind::Anthropic => {
                Some(tools::Dialect::Messages)
            }
            RouteKind::Gemini => Some(tools::Dialect::Gemini),
            RouteKind::Mcp => None,
        }
        .filter(|_| matches!(classified.request.action, Action::Chat | Action::Responses));
        let body = match dialect.filter(|_| snapshot.engine.governs_tools()) {
            Some(dialect) => match self.decide_tools(
                &snapshot,
                &ctx.request_id,
                user,
                &classified.request,
                dialect,
                body,
            ) {
                Ok(body) => body,
                Err(r) => return self.refuse(session, ctx, kind, None, r).await,
            },
            None => body,
        };

        // An MCP list answer shows only what this principal may use.
        let request = &classified.request;
        let keep = |field: &'static str, item: &Value| {
            may_use_listed(&snapshot.engine, user, request, field, item)
        };
        let filter = list_field(request.action).map(|field| ListFilter {
            lists: vec![field],
            keep: &keep,
            extra: Vec::new(),
        });
        let allowed = Allowed {
            snapshot: &snapshot,
            who: &who,
            verified: &verified,
            requests: std::slice::from_ref(request),
            mcp_id: mcp_id.as_ref(),
        };
        self.send_on(session, ctx, route, rest, body, filter.as_ref(), allowed)
            .await
    }

    /// Forwards an allowed request (see [`forward::forward`]), its streamed answer held to
    /// what `allowed` may still do; a 502 in the client's protocol if the upstream failed
    /// before answering, the connection cut if it failed mid-answer.
    #[allow(clippy::too_many_arguments)]
    async fn send_on(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &Route,
        rest: &str,
        body: Bytes,
        filter: Option<&ListFilter<'_>>,
        allowed: Allowed<'_>,
    ) -> std::result::Result<(), String> {
        let upstream_path = forward::upstream_path(session, route, rest);
        let forwarded = forward::forward(
            session,
            &self.connector,
            route,
            &self.config.limits,
            &upstream_path,
            body,
            &ctx.request_id,
            filter,
            Some(|| {
                Standing::new(
                    self.state.clone(),
                    allowed.snapshot.clone(),
                    allowed.who.clone(),
                    allowed.verified.clone(),
                    allowed.requests.to_vec(),
                    &self.config.node_id,
                    &ctx.request_id,
                    route.kind,
                    allowed.mcp_id.cloned(),
                )
            }),
        )
        .await;
        let mcp_id = allowed.mcp_id;
        match forwarded {
            Ok(f) => {
                ctx.status = f.status;
                Ok(())
            }
            Err(ForwardError::BeforeResponse(e)) => {
                tracing::warn!(request_id = %ctx.request_id, route = %route.prefix, error = %e, "upstream failed");
                metrics::counter!("portcullis_upstream_errors_total", "route" => route.prefix.clone()).increment(1);
                let r = Refusal::new(Kind::Upstream, "the upstream service is unavailable");
                self.refuse(session, ctx, Some(route.kind), mcp_id, r).await
            }
            Err(ForwardError::MidResponse(e)) => {
                ctx.status = 0;
                Err(e)
            }
        }
    }

    /// Answers a JSON-RPC batch: each message is decided as it would be alone (and recorded);
    /// the allowed ones go upstream as one batch, whose answer gets its lists filtered and the
    /// edge's refusals of the others added. With nothing allowed, the edge answers alone. A
    /// streamed answer is re-decided, every allowed message of it, on each new snapshot.
    #[allow(clippy::too_many_arguments)]
    async fn batch(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &Route,
        snapshot: &Arc<NodeSnapshot>,
        who: &Who,
        verified: &Arc<Verified>,
        batch: classify::Batch,
        body: Bytes,
        rest: &str,
    ) -> std::result::Result<(), String> {
        let kind = Some(route.kind);
        let messages = match batch {
            Ok(messages) => messages,
            Err(ClassifyError::JsonRpc { code, message, id }) => {
                let r = Refusal::new(Kind::BadRequest, message).with_jsonrpc_code(code);
                return self.refuse(session, ctx, kind, id.as_ref(), r).await;
            }
            Err(other) => {
                let r = Refusal::new(Kind::BadRequest, other.to_string());
                return self.refuse(session, ctx, kind, None, r).await;
            }
        };
        let sent = messages.len();
        let error = |r: Refusal, id: Option<&Value>| -> Value {
            serde_json::from_slice(&r.body(kind, id)).unwrap_or(Value::Null)
        };
        let user: &User = who;
        let mut allowed = Vec::new();
        let mut allowed_requests = Vec::new();
        let mut lists = Vec::new();
        let mut refusals = Vec::new();
        for (message, classified) in messages {
            let mut c = match classified {
                Ok(c) => c,
                Err(ClassifyError::JsonRpc { code, message, id }) => {
                    let r = Refusal::new(Kind::BadRequest, message).with_jsonrpc_code(code);
                    refusals.push(error(r, id.as_ref()));
                    continue;
                }
                Err(other) => {
                    refusals.push(error(
                        Refusal::new(Kind::BadRequest, other.to_string()),
                        None,
                    ));
                    continue;
                }
            };
            c.request.context.claims = verified.claims.clone();
            let started = Instant::now();
            let decision = snapshot.engine.decide(user, &c.request);
            decision_log::record(
                &self.config.node_id,
                &ctx.request_id,
                snapshot,
                Some(user),
                Some(&c.request),
                Outcome::Decided(&decision),
                started.elapsed().as_micros() as u64,
            );
            let id = c.mcp.and_then(|m| m.id);
            if decision.is_allowed() {
                if let Some(field) = list_field(c.request.action)
                    && !lists.contains(&field)
                {
                    lists.push(field);
                }
                allowed_requests.push(c.request);
                allowed.push(message);
            } else if let Some(id) = id {
                // A refused notification gets no answer, as JSON-RPC has it.
                refusals.push(error(denial(&decision, &c.request), Some(&id)));
            }
        }
        let Some(list_request) = allowed_requests.first() else {
            // Nothing to send upstream: the edge answers the batch alone.
            ctx.status = if refusals.is_empty() { 202 } else { 200 };
            let body = if refusals.is_empty() {
                Bytes::new()
            } else {
                Bytes::from(Value::Array(refusals).to_string())
            };
            let mut header =
                ResponseHeader::build(ctx.status, Some(3)).map_err(|e| e.to_string())?;
            for (k, v) in [
                ("content-type", "application/json".to_owned()),
                ("content-length", body.len().to_string()),
                ("x-request-id", ctx.request_id.clone()),
            ] {
                header.insert_header(k, v).map_err(|e| e.to_string())?;
            }
            return send(session, header, body).await;
        };
        let body = if allowed.len() == sent {
            body
        } else {
            Bytes::from(Value::Array(allowed).to_string())
        };
        let keep = |field: &'static str, item: &Value| {
            may_use_listed(&snapshot.engine, user, list_request, field, item)
        };
        let filter = (!lists.is_empty() || !refusals.is_empty()).then(|| ListFilter {
            lists,
            keep: &keep,
            extra: refusals,
        });
        let allowed = Allowed {
            snapshot,
            who,
            verified,
            requests: &allowed_requests,
            mcp_id: None,
        };
        self.send_on(session, ctx, route, rest, body, filter.as_ref(), allowed)
            .await
    }

    /// Decides each tool a model call offers (see [`crate::tools`]): the body to forward, with
    /// the tools policies strip removed, or the refusal for a forbidden one.
    #[allow(clippy::result_large_err)] // a refusal is the rare path, answered at once
    fn decide_tools(
        &self,
        snapshot: &NodeSnapshot,
        request_id: &str,
        user: &User,
        request: &Request,
        dialect: tools::Dialect,
        body: Bytes,
    ) -> std::result::Result<Bytes, Refusal> {
        let Resource::Model { provider, kind, .. } = &request.resource else {
            return Ok(body);
        };
        let mut names =
            tools::offered(dialect, &body).map_err(|e| Refusal::new(Kind::BadRequest, e))?;
        names.sort_unstable();
        names.dedup();
        let mut stripped = Vec::new();
        for name in names {
            let offered = Request {
                action: Action::LlmTool,
                resource: Resource::LlmTool {
                    provider: provider.clone(),
                    kind: kind.clone(),
                    name,
                },
                context: request.context.clone(),
            };
            let decision = snapshot.engine.decide(user, &offered);
            if decision.is_allowed() {
                continue;
            }
            decision_log::record(
                &self.config.node_id,
                request_id,
                snapshot,
                Some(user),
                Some(&offered),
                Outcome::Decided(&decision),
                0,
            );
            if !snapshot.engine.strips_tool(&decision) {
                return Err(denial(&decision, &offered));
            }
            if let Resource::LlmTool { name, .. } = offered.resource {
                stripped.push(name);
            }
        }
        if stripped.is_empty() {
            return Ok(body);
        }
        metrics::counter!("portcullis_llm_tools_stripped_total").increment(stripped.len() as u64);
        tools::strip(dialect, &body, &stripped)
            .map(Bytes::from)
            .map_err(|e| Refusal::new(Kind::BadRequest, e))
    }

    /// `GET /.well-known/oauth-protected-resource<path>`: the metadata of the MCP route whose
    /// resource identifier has that path (RFC 9728 §3).
    async fn resource_metadata(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        path: &str,
    ) -> std::result::Result<(), String> {
        let found = self
            .config
            .routes
            .iter()
            .filter_map(|r| r.oauth.as_ref())
            .find(|o| o.metadata_path() == path);
        let Some(oauth) = found else {
            let r = Refusal::new(Kind::NotFound, format!("no protected resource at {path}"));
            return self.refuse(session, ctx, None, None, r).await;
        };
        if session.req_header().method != http::Method::GET {
            let r = Refusal::new(Kind::NotFound, "resource metadata is read with GET");
            return self.refuse(session, ctx, None, None, r).await;
        }
        let body = Bytes::from(oauth.metadata().to_string());
        ctx.status = 200;
        let mut header = ResponseHeader::build(200, Some(4)).map_err(|e| e.to_string())?;
        for (k, v) in [
            ("content-type", "application/json".to_owned()),
            ("content-length", body.len().to_string()),
            ("cache-control", "max-age=300".to_owned()),
            ("x-request-id", ctx.request_id.clone()),
        ] {
            header.insert_header(k, v).map_err(|e| e.to_string())?;
        }
        send(session, header, body).await
    }

    async fn unauthenticated(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &Route,
        decided: &Decided<'_>,
        e: AuthError,
    ) -> std::result::Result<(), String> {
        decision_log::record(
            &self.config.node_id,
            &ctx.request_id,
            decided.snapshot,
            None,
            None,
            Outcome::Refused(e.label()),
            0,
        );
        // Do not read (or drain) an unauthenticated body: close the connection instead.
        session.set_keepalive(None);
        let mut r = Refusal::new(Kind::Unauthenticated, e.to_string());
        // An OAuth-protected MCP route points the client at its metadata (RFC 9728 §5.1); a
        // request without a token gets no error code (RFC 6750 §3.1).
        if let Some(oauth) = &route.oauth {
            let metadata = format!("resource_metadata=\"{}\"", oauth.metadata_url());
            r = r.with_challenge(match e {
                AuthError::Missing => format!("Bearer {metadata}"),
                _ => format!(
                    "Bearer {metadata}, error=\"invalid_token\", error_description=\"{}\"",
                    e.to_string().replace('"', "'")
                ),
            });
        }
        self.refuse(session, ctx, Some(route.kind), None, r).await
    }

    /// Reads the body up to the configured limit.
    async fn read_body(&self, session: &mut Session) -> std::result::Result<Bytes, Refusal> {
        let limits = &self.config.limits;
        read_body(
            session,
            limits.max_body_bytes,
            Duration::from_secs(limits.body_read_secs),
        )
        .await
    }

    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        kind: Option<RouteKind>,
        mcp_id: Option<&Value>,
        refusal: Refusal,
    ) -> std::result::Result<(), String> {
        let body = refusal.body(kind, mcp_id);
        let status = refusal.kind.status();
        ctx.status = status;
        let mut header = ResponseHeader::build(status, Some(5)).map_err(|e| e.to_string())?;
        let set = |h: &mut ResponseHeader, k: &'static str, v: String| {
            h.insert_header(k, v).map_err(|e| e.to_string())
        };
        set(&mut header, "content-type", "application/json".into())?;
        set(&mut header, "content-length", body.len().to_string())?;
        set(&mut header, "cache-control", "no-store".into())?;
        set(&mut header, "x-request-id", ctx.request_id.clone())?;
        if let Some(challenge) = &refusal.challenge {
            set(&mut header, "www-authenticate", challenge.clone())?;
        } else if status == 401 {
            let desc = refusal.message.replace('"', "'");
            set(
                &mut header,
                "www-authenticate",
                format!(
                    "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"{desc}\""
                ),
            )?;
        }
        send(session, header, body).await
    }
}

/// Writes a whole response.
async fn send(
    session: &mut Session,
    header: ResponseHeader,
    body: Bytes,
) -> std::result::Result<(), String> {
    session
        .write_response_header(Box::new(header), false)
        .await
        .map_err(|e| e.to_string())?;
    session
        .write_response_body(Some(body), true)
        .await
        .map_err(|e| e.to_string())
}

/// For an MCP list request, the result field it lists.
fn list_field(list: Action) -> Option<&'static str> {
    match list {
        Action::McpToolsList => Some("tools"),
        Action::McpResourcesList => Some("resources"),
        Action::McpPromptsList => Some("prompts"),
        _ => None,
    }
}

/// Whether `user` may use one item listed in `field` (a tool by `name`, a resource by `uri`,
/// a prompt by `name`), decided like the call would be. An item without its name is not
/// shown.
fn may_use_listed(
    engine: &portcullis_shared::engine::Engine,
    user: &User,
    list: &Request,
    field: &str,
    item: &Value,
) -> bool {
    let (key, action) = match field {
        "tools" => ("name", Action::McpToolsCall),
        "resources" => ("uri", Action::McpResourcesRead),
        _ => ("name", Action::McpPromptsGet),
    };
    let Some(id) = item
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return false;
    };
    let server = match &list.resource {
        Resource::McpServer { server } => server.clone(),
        _ => return false,
    };
    let resource = match action {
        Action::McpToolsCall => Resource::McpTool {
            server,
            tool: id.to_owned(),
        },
        Action::McpResourcesRead => Resource::McpResource {
            server,
            uri: id.to_owned(),
        },
        _ => Resource::McpPrompt {
            server,
            name: id.to_owned(),
        },
    };
    let request = Request {
        action,
        resource,
        context: list.context.clone(),
    };
    engine.decide(user, &request).is_allowed()
}

/// The principal a verified token names in a snapshot.
#[derive(Debug, Clone)]
pub enum Who {
    /// A provisioned user.
    User(Arc<User>),
    /// A guest of an admitted partner tenant.
    Guest(Box<User>),
}

impl std::ops::Deref for Who {
    type Target = User;
    fn deref(&self) -> &User {
        match self {
            Self::User(u) => u,
            Self::Guest(u) => u,
        }
    }
}

/// Looks the token's principal up: a provisioned user, or (for a federated issuer's token
/// naming no one provisioned) a guest of a partner whose tenant the bindings admit. An API
/// key must still be live in `engine` (a snapshot that revokes it ends what it opened). Else
/// the refusal's label and message.
pub(crate) fn resolve(
    engine: &portcullis_shared::engine::Engine,
    verified: &Verified,
) -> std::result::Result<Who, (&'static str, String)> {
    if let Some(id) = &verified.api_key
        && engine
            .api_key(id)
            .is_none_or(|k| k.expires_at_ms.is_some_and(|at| now_ms() >= at))
    {
        return Err((
            "api_key_revoked",
            format!("API key {id} has been revoked or has expired"),
        ));
    }
    let lookup = engine.find_user(&verified.source, verified.claim, &verified.principal);
    let (principal, source) = (&verified.principal, &verified.source);
    match (lookup, &verified.tenant) {
        (Lookup::Found(u), _) => Ok(Who::User(u)),
        (Lookup::Ambiguous, _) => Err((
            "ambiguous_principal",
            format!("{principal} names more than one user of identity source {source}"),
        )),
        (Lookup::Missing, Some(tenant)) => match engine.find_partner(source, tenant) {
            Some(p) => Ok(Who::Guest(Box::new(engine.guest(p, principal)))),
            None => Err((
                "tenant_not_admitted",
                format!(
                    "{principal} is from tenant {tenant}, which is not an admitted partner of identity source {source}"
                ),
            )),
        },
        (Lookup::Missing, None) => Err((
            "unknown_principal",
            format!("{principal} is not provisioned for this gateway by identity source {source}"),
        )),
    }
}

/// The client-facing explanation of a denial.
pub(crate) fn denial(
    decision: &Decision,
    request: &portcullis_shared::request::Request,
) -> Refusal {
    let message = match &decision.reason {
        Reason::Forbidden => format!(
            "{} on {} is forbidden by policy {}",
            request.action,
            request.resource,
            decision.policy_ids().join(", ")
        ),
        Reason::NoMatchingPermit => format!(
            "no policy permits {} on {}",
            request.action, request.resource
        ),
        Reason::PrincipalInactive => {
            "your account is deactivated in your identity provider".to_owned()
        }
        Reason::PrincipalEnded => "your access ended on its planned end date".to_owned(),
        Reason::Permitted => "permitted".to_owned(),
        Reason::InvalidRequest(_) => "this request cannot be evaluated".to_owned(),
    };
    Refusal::new(Kind::Denied, message).with_detail(json!({
        "reason": decision.reason.label(),
        "policies": decision.policy_ids(),
    }))
}

/// The client's token: `Authorization: Bearer …`, or Anthropic's `x-api-key` on Anthropic
/// routes (where the Anthropic SDKs put their key).
fn bearer(session: &Session, kind: RouteKind) -> Option<&str> {
    let headers = &session.req_header().headers;
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    // Anthropic's SDKs send their key as `x-api-key`, Azure OpenAI's as `api-key`, Gemini's
    // as `x-goog-api-key`.
    let key_header = match kind {
        RouteKind::Anthropic => Some("x-api-key"),
        RouteKind::Azure => Some("api-key"),
        RouteKind::Gemini => Some("x-goog-api-key"),
        _ => None,
    };
    if let Some(name) = key_header {
        return headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty());
    }
    None
}

/// The client's `x-request-id` if it is sane, else a fresh one.
fn request_id(session: &Session) -> String {
    session
        .req_header()
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

/// A request id unique across restarts of this node: a random 64-bit prefix drawn once per
/// process and a counter (no system call per request).
fn new_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    format!("{prefix:016x}{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Reads the whole request body, refusing one over `limit` bytes (declared or actual).
pub(crate) async fn read_body(
    session: &mut Session,
    limit: usize,
    within: Duration,
) -> std::result::Result<Bytes, Refusal> {
    let deadline = tokio::time::Instant::now() + within;
    let too_large = || {
        Refusal::new(
            Kind::TooLarge,
            format!("request body exceeds this gateway's limit of {limit} bytes"),
        )
    };
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        session.set_keepalive(None);
        return Err(too_large());
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        let _ = session.write_continue_response().await;
    }
    let mut buf = BytesMut::with_capacity(declared.map_or(8192, |n| n as usize));
    loop {
        let Ok(read) = tokio::time::timeout_at(deadline, session.read_request_body()).await else {
            session.set_keepalive(None);
            return Err(Refusal::new(
                Kind::Timeout,
                format!(
                    "the request body did not arrive within {} s",
                    within.as_secs()
                ),
            ));
        };
        match read {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    session.set_keepalive(None);
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => {
                session.set_keepalive(None);
                return Err(Refusal::new(
                    Kind::BadRequest,
                    format!("cannot read the request body: {e}"),
                ));
            }
        }
    }
}
