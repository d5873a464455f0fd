//! A pass-through proxy for measurements: the same Pingora server, route table, body reader
//! and upstream forwarding as the edge, with no authentication and no decision. It is what
//! the enforcement load test compares the edge with; it is not a mode of the edge and is only
//! started by its own binary.

use crate::config::Config;
use crate::forward::{self, ForwardError};
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use std::process::ExitCode;
use std::sync::Arc;

/// The pass-through service.
pub struct Passthrough {
    config: Arc<Config>,
    connector: Connector,
}

impl std::fmt::Debug for Passthrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passthrough").finish_non_exhaustive()
    }
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        let path = session.req_header().uri.path().to_owned();
        let Some(route) = self.config.route_for(&path) else {
            session.respond_error(404).await?;
            return Ok(true);
        };
        let limits = &self.config.limits;
        let within = std::time::Duration::from_secs(limits.body_read_secs);
        let body = match crate::proxy::read_body(session, limits.max_body_bytes, within).await {
            Ok(b) => b,
            Err(_) => {
                session.respond_error(400).await?;
                return Ok(true);
            }
        };
        let rest = if route.prefix == "/" {
            path.as_str()
        } else {
            &path[route.prefix.len()..]
        };
        let upstream_path = forward::upstream_path(session, route, rest);
        match forward::forward(
            session,
            &self.connector,
            route,
            &self.config.limits,
            &upstream_path,
            body,
            "passthrough",
            None,
            None::<fn() -> crate::standing::Standing>,
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(ForwardError::BeforeResponse(_)) => {
                session.respond_error(502).await?;
                Ok(true)
            }
            Err(ForwardError::MidResponse(e)) => Err(Error::explain(ErrorType::WriteError, e)),
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Err(Error::explain(
            ErrorType::InternalError,
            "the pass-through forwards from request_filter",
        ))
    }
}

/// Serves `config`'s routes on `listen` with `config.threads` threads until killed.
pub fn serve(config: Config, listen: &str) -> ExitCode {
    let dir = std::env::temp_dir().join(format!("portcullis-passthrough-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let Some(conf) = crate::cli::server_conf(config.threads, &dir, "portcullis-dp-passthrough")
    else {
        eprintln!("error: cannot build the Pingora server configuration");
        return ExitCode::FAILURE;
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Passthrough {
            config: Arc::new(config),
            connector: Connector::new(None),
        },
        "portcullis-passthrough",
    );
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}
