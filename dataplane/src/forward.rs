//! Forwarding an allowed request upstream with Pingora's connector, streaming the response.
//!
//! Portcullis decides before any byte reaches an upstream, so it must read (a bounded amount
//! of) the body first. Pingora's proxy cannot replay a body consumed in `request_filter`
//! beyond its 64 KiB retry buffer (cloudflare/pingora#349, #575), so allowed requests are sent
//! from here with Pingora's own pooled upstream connector, and the response is streamed back
//! chunk by chunk as it arrives (server-sent events are never buffered whole).
//!
//! The client's credentials (`Authorization`, `x-api-key`, `api-key`, `x-goog-api-key`) are
//! never forwarded;
//! the route's upstream credential is injected instead.

use crate::config::{Limits, Route};
use crate::listfilter::{ListFilter, MAX_LIST_BYTES};
use crate::standing::{Standing, Verdict, last_event_end};
use bytes::{Bytes, BytesMut};
use http::HeaderName;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::time::Duration;

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Nothing was sent to the client yet: answer 502.
    #[error("{0}")]
    BeforeResponse(String),
    /// The response had started: the connection must be cut.
    #[error("{0}")]
    MidResponse(String),
}

/// Request headers never forwarded: hop-by-hop headers, framing we set ourselves, and client
/// credentials.
const DROP_REQUEST: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    // Client-supplied forwarding claims: the edge states its own.
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Response headers never copied back.
const DROP_RESPONSE: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What was sent.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded {
    pub status: u16,
    pub bytes: usize,
}

/// The most of one server-sent event held back waiting for its end (see [`Events`]).
const MAX_HELD: usize = 1 << 20;

/// The upstream path for a request whose path after the route's prefix is `rest`: the
/// upstream's base path, `rest`, and the client's query string.
pub fn upstream_path(session: &Session, route: &Route, rest: &str) -> String {
    match session.req_header().uri.query() {
        Some(q) => format!("{}{rest}?{q}", route.upstream.base_path),
        None => format!("{}{rest}", route.upstream.base_path),
    }
}

/// Sends the request to `route`'s upstream and streams the response to the client. With a
/// `filter` (an MCP list request) a successful response is read whole and filtered instead
/// (see [`crate::listfilter`]). A streamed response (one without a length) is re-decided on
/// every new snapshot through the [`Standing`] that `standing` makes, and ended when it is
/// no longer allowed.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    session: &mut Session,
    connector: &Connector,
    route: &Route,
    limits: &Limits,
    path_and_query: &str,
    body: Bytes,
    request_id: &str,
    filter: Option<&ListFilter<'_>>,
    standing: Option<impl FnOnce() -> Standing + Send>,
) -> Result<Forwarded, ForwardError> {
    let before = ForwardError::BeforeResponse;
    let peer = peer(route, limits).await.map_err(before)?;
    let mut request = upstream_request(session, route, path_and_query, &body, request_id)
        .map_err(|e| before(format!("building the upstream request: {e}")))?;
    if filter.is_some() {
        // The answer is rewritten: it must arrive uncompressed.
        request
            .insert_header(http::header::ACCEPT_ENCODING, "identity")
            .map_err(|e| before(format!("building the upstream request: {e}")))?;
    }

    let (mut up, _reused) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| before(format!("connecting to {}: {e}", route.upstream.authority())))?;
    up.set_read_timeout(Some(Duration::from_secs(limits.upstream_idle_secs)));
    up.write_request_header(Box::new(request))
        .await
        .map_err(|e| before(format!("sending to upstream: {e}")))?;
    if !body.is_empty() {
        up.write_request_body(body, true)
            .await
            .map_err(|e| before(format!("sending the body upstream: {e}")))?;
    }
    up.finish_request_body()
        .await
        .map_err(|e| before(format!("finishing the upstream request: {e}")))?;
    up.read_response_header()
        .await
        .map_err(|e| before(format!("reading the upstream response: {e}")))?;
    let upstream = up
        .response_header()
        .ok_or_else(|| before("upstream sent no response header".into()))?;

    let mut response = downstream_response(upstream, session.is_http2(), request_id)
        .map_err(|e| before(format!("building the response: {e}")))?;
    let status = response.status.as_u16();
    if let Some(filter) = filter
        && response.status.is_success()
    {
        let event_stream = is_event_stream(&response);
        let mut whole = Vec::new();
        loop {
            match up.read_response_body().await {
                Ok(Some(chunk)) => {
                    if whole.len() + chunk.len() > MAX_LIST_BYTES {
                        return Err(before(format!(
                            "the list answer is over {MAX_LIST_BYTES} bytes; it cannot be filtered"
                        )));
                    }
                    whole.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(before(format!("upstream failed mid-response: {e}"))),
            }
        }
        let body = match filter.rewrite(&whole, event_stream) {
            Some((rewritten, hidden)) => {
                if hidden > 0 {
                    metrics::counter!("portcullis_mcp_list_items_hidden_total", "list" => filter.label())
                        .increment(hidden as u64);
                }
                rewritten
            }
            // A list that cannot be read cannot be filtered: it is not passed on.
            None if !filter.lists.is_empty() => {
                return Err(before(
                    "the list answer could not be read to filter it".to_owned(),
                ));
            }
            None => {
                tracing::warn!(
                    request_id,
                    "a batch answer could not be read; the edge's refusals are not added"
                );
                whole
            }
        };
        if status == 202 && !filter.extra.is_empty() {
            // The upstream had nothing to answer; the edge's messages are the answer.
            response
                .set_status(200)
                .map_err(|e| before(format!("building the response: {e}")))?;
            response
                .insert_header(http::header::CONTENT_TYPE, "application/json")
                .map_err(|e| before(format!("building the response: {e}")))?;
        }
        let status = response.status.as_u16();
        response.remove_header(&http::header::TRANSFER_ENCODING);
        response
            .insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
            .map_err(|e| before(format!("building the response: {e}")))?;
        let mid = ForwardError::MidResponse;
        let bytes = body.len();
        session
            .write_response_header(Box::new(response), false)
            .await
            .map_err(|e| mid(format!("writing the response header: {e}")))?;
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await
            .map_err(|e| mid(format!("client went away: {e}")))?;
        if up.response_done() {
            connector
                .release_http_session(up, &peer, Some(Duration::from_secs(60)))
                .await;
        }
        return Ok(Forwarded { status, bytes });
    }
    let mid = ForwardError::MidResponse;
    let streamed = !response.headers.contains_key(http::header::CONTENT_LENGTH);
    let event_stream = is_event_stream(&response);
    session
        .write_response_header(Box::new(response), false)
        .await
        .map_err(|e| mid(format!("writing the response header: {e}")))?;

    let mut standing = standing.filter(|_| streamed).map(|make| make());
    let mut events = Events::new();
    let mut bytes = 0;
    loop {
        let read = up.read_response_body();
        tokio::pin!(read);
        let next = loop {
            let Some(s) = standing.as_mut() else {
                break (&mut read).await;
            };
            // The snapshot first: an upstream with data always ready must not starve it.
            tokio::select! {
                biased;
                () = s.changed() => match s.check() {
                    Verdict::Keep => {}
                    Verdict::Notify(notes) => {
                        if event_stream && events.at_boundary() {
                            session
                                .write_response_body(Some(notes), false)
                                .await
                                .map_err(|e| mid(format!("client went away: {e}")))?;
                        }
                    }
                    Verdict::Revoked(refusal) => {
                        tracing::info!(request_id, reason = %refusal.message, "open response revoked by a new snapshot");
                        let last = s.final_event(&refusal);
                        // An event stream ends on a whole event with the reason; anything
                        // else is cut, so the client cannot take it for a complete answer.
                        let Some(last) = last.filter(|_| event_stream && events.at_boundary())
                        else {
                            return Err(mid(format!("revoked: {}", refusal.message)));
                        };
                        bytes += last.len();
                        session
                            .write_response_body(Some(last), true)
                            .await
                            .map_err(|e| mid(format!("client went away: {e}")))?;
                        return Ok(Forwarded { status, bytes });
                    }
                },
                r = &mut read => break r,
            }
        };
        match next {
            Ok(Some(chunk)) => {
                let chunk = if event_stream && standing.is_some() {
                    match events.push(chunk) {
                        Some(c) => c,
                        None => continue,
                    }
                } else {
                    chunk
                };
                bytes += chunk.len();
                session
                    .write_response_body(Some(chunk), false)
                    .await
                    .map_err(|e| mid(format!("client went away: {e}")))?;
            }
            Ok(None) => break,
            Err(e) => return Err(mid(format!("upstream failed mid-response: {e}"))),
        }
    }
    // Whatever the upstream left unterminated goes out as it came.
    let tail = events.rest();
    bytes += tail.as_ref().map_or(0, Bytes::len);
    session
        .write_response_body(tail, true)
        .await
        .map_err(|e| mid(format!("finishing the response: {e}")))?;
    if up.response_done() {
        connector
            .release_http_session(up, &peer, Some(Duration::from_secs(60)))
            .await;
    }
    Ok(Forwarded { status, bytes })
}

/// Passes an event stream on in whole events, so that the edge can put events of its own
/// between the upstream's, and end a stream on a whole event.
#[derive(Debug, Default)]
struct Events {
    /// The tail not yet at an event boundary.
    held: BytesMut,
    /// Whether what was passed on ends at an event boundary. Lost only when an event grows
    /// past [`MAX_HELD`] and is let through unfinished.
    aligned: bool,
}

impl Events {
    fn new() -> Self {
        Self {
            held: BytesMut::new(),
            aligned: true,
        }
    }

    /// The whole events of the held tail followed by `chunk`; `None` when there is none yet.
    /// A chunk ending on an event boundary (the usual case) passes through without a copy.
    fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        if !self.aligned {
            self.aligned = [&b"\n\n"[..], b"\r\n\r\n", b"\r\r"]
                .iter()
                .any(|end| chunk.ends_with(end));
            return Some(chunk);
        }
        if self.held.is_empty() {
            let end = last_event_end(&chunk);
            if end == chunk.len() {
                return Some(chunk);
            }
            self.held.extend_from_slice(&chunk[end..]);
            return (end > 0).then(|| chunk.slice(..end));
        }
        self.held.extend_from_slice(&chunk);
        match last_event_end(&self.held) {
            0 if self.held.len() > MAX_HELD => {
                self.aligned = false;
                Some(self.held.split().freeze())
            }
            0 => None,
            end => Some(self.held.split_to(end).freeze()),
        }
    }

    /// Whether the edge may write an event of its own now.
    fn at_boundary(&self) -> bool {
        self.aligned
    }

    /// What is held at the end of the stream.
    fn rest(&mut self) -> Option<Bytes> {
        (!self.held.is_empty()).then(|| self.held.split().freeze())
    }
}

fn is_event_stream(response: &ResponseHeader) -> bool {
    response
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().starts_with("text/event-stream"))
}

async fn peer(route: &Route, limits: &Limits) -> Result<HttpPeer, String> {
    let u = &route.upstream;
    let addr: SocketAddr = match u.host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, u.port),
        Err(_) => tokio::net::lookup_host((u.host.as_str(), u.port))
            .await
            .map_err(|e| format!("resolving {}: {e}", u.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", u.host))?,
    };
    let mut peer = HttpPeer::new(addr, u.tls, u.host.clone());
    peer.options.connection_timeout = Some(Duration::from_secs(limits.upstream_connect_secs));
    peer.options.total_connection_timeout =
        Some(Duration::from_secs(limits.upstream_connect_secs * 2));
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    Ok(peer)
}

fn upstream_request(
    session: &Session,
    route: &Route,
    path_and_query: &str,
    body: &Bytes,
    request_id: &str,
) -> pingora::Result<RequestHeader> {
    let req = session.req_header();
    let mut out = RequestHeader::build(req.method.clone(), path_and_query.as_bytes(), None)?;
    let connection_named = connection_tokens(&req.headers);
    for (name, value) in req.headers.iter() {
        let n = name.as_str();
        if DROP_REQUEST.contains(&n) || connection_named.iter().any(|c| c == n) {
            continue;
        }
        out.append_header(name.clone(), value.clone())?;
    }
    out.insert_header(http::header::HOST, route.upstream.authority())?;
    if !body.is_empty() || req.method == http::Method::POST {
        out.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    }
    if let Some(c) = &route.credential {
        out.insert_header(c.header.clone(), c.value.clone())?;
    }
    out.insert_header(HeaderName::from_static("x-request-id"), request_id)?;
    if let Some(client) = session.client_addr().and_then(|a| a.as_inet()) {
        out.append_header(
            HeaderName::from_static("x-forwarded-for"),
            client.ip().to_string(),
        )?;
    }
    Ok(out)
}

fn downstream_response(
    upstream: &ResponseHeader,
    http2: bool,
    request_id: &str,
) -> pingora::Result<ResponseHeader> {
    let mut out = ResponseHeader::build(upstream.status, None)?;
    let connection_named = connection_tokens(&upstream.headers);
    for (name, value) in upstream.headers.iter() {
        let n = name.as_str();
        if DROP_RESPONSE.contains(&n) || connection_named.iter().any(|c| c == n) {
            continue;
        }
        out.append_header(name.clone(), value.clone())?;
    }
    if !http2 && !out.headers.contains_key(http::header::CONTENT_LENGTH) {
        // Stream with chunked framing rather than close-delimited, keeping the connection.
        out.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    out.insert_header(HeaderName::from_static("x-request-id"), request_id)?;
    Ok(out)
}

/// Header names listed in `Connection` (hop-by-hop by declaration).
fn connection_tokens(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}
