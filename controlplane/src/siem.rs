//! SIEM streaming: identity events and decision records, as OCSF-shaped JSON, to HTTP
//! collectors and to syslog (RFC 5424 over TCP, octet-counted framing per RFC 6587, TLS
//! optional per RFC 5425).
//!
//! ```toml
//! [[siem]]
//! name = "splunk"
//! kind = "http"
//! url = "https://siem.example.com/ingest"   # POSTs a JSON array of events per batch
//! headers = { "x-source" = "portcullis" }
//! header_env = { "authorization" = "SIEM_AUTH" }   # header value read from the environment
//!
//! [[siem]]
//! name = "syslog"
//! kind = "syslog"
//! address = "siem.example.com:6514"
//! tls = { ca = "siem-ca.pem", server_name = "siem.example.com" }   # optional
//!
//! # Both: streams = ["identity", "decisions"] (default both), from = "beginning" | "now",
//! # batch = 500, max_backoff_ms = 30000
//! ```
//!
//! There is no separate buffer to overflow: each sink reads the audit store itself (the
//! identity event log and the decision store, both on disk) from a cursor kept in the store,
//! and moves the cursor only after a batch is delivered. An outage of the collector is
//! retried with exponential backoff; when it is back, delivery resumes where it stopped.
//! Nothing is lost while the events are retained (`[audit]` retention bounds the buffer).
//! Delivery is at least once: each event carries a stable `metadata.uid` for deduplication.
//! (A syslog write can succeed into a connection the collector has already dropped; after the
//! next failed write the batch before it is sent again. A collector that refuses a batch as
//! too large (HTTP 413) gets smaller ones.)

use crate::evidence::event_json;
use crate::store::{self, DecisionStore, IdentityEvent, Store, StoreError, StoredDecision};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// One sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiemConfig {
    /// Names the sink in metrics, logs and its stored cursor.
    pub name: String,
    pub kind: Kind,
    /// `http`: where batches are POSTed.
    pub url: Option<String>,
    /// `http`: headers sent with every batch.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `http`: header name → environment variable holding its value (secrets stay out of
    /// files).
    #[serde(default)]
    pub header_env: BTreeMap<String, String>,
    /// `syslog`: `host:port`.
    pub address: Option<String>,
    /// `syslog`: TLS to the collector (RFC 5425); plain TCP without it.
    pub tls: Option<SyslogTls>,
    /// `syslog`: HOSTNAME in each message's header.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Which streams go to it.
    #[serde(default = "all_streams")]
    pub streams: Vec<Stream>,
    /// Where a sink seen for the first time starts.
    #[serde(default)]
    pub from: Start,
    /// Events per delivery.
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// The longest wait between retries.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

/// How events travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A JSON array of events per batch, POSTed.
    Http,
    /// RFC 5424 messages over TCP, octet-counted (RFC 6587), TLS optional.
    Syslog,
}

/// TLS to a syslog collector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTls {
    /// PEM CA certificates the collector's certificate must chain to.
    pub ca: PathBuf,
    /// The name the certificate must carry (the address's host by default).
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Identity,
    Decisions,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Decisions => "decisions",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Every retained event.
    #[default]
    Beginning,
    /// Only events after the sink first starts.
    Now,
}

fn all_streams() -> Vec<Stream> {
    vec![Stream::Identity, Stream::Decisions]
}
fn default_batch() -> u32 {
    500
}
fn default_max_backoff_ms() -> u64 {
    30_000
}
fn default_hostname() -> String {
    "portcullis-cp".into()
}

impl SiemConfig {
    /// What is wrong with the sink's settings, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.name.is_empty() || self.name.len() > 64 {
            return Some("name must be 1-64 characters".into());
        }
        if self.batch == 0 || self.batch > 10_000 {
            return Some("batch must be 1-10000".into());
        }
        match self.kind {
            Kind::Http => match self.url.as_deref().map(reqwest::Url::parse) {
                None => Some("an http sink needs url".into()),
                Some(Ok(u)) if matches!(u.scheme(), "http" | "https") => None,
                Some(Ok(u)) => Some(format!("url scheme {} is not http or https", u.scheme())),
                Some(Err(e)) => Some(format!("url: {e}")),
            },
            Kind::Syslog => match self.address.as_deref().and_then(|a| a.rsplit_once(':')) {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => None,
                _ => Some(format!(
                    "a syslog sink needs address = \"host:port\" (got {:?})",
                    self.address
                )),
            },
        }
    }
}

/// One event ready to send: its stream position and its OCSF form.
struct Outgoing {
    position: u64,
    ocsf: Value,
    /// Syslog severity (6 informational, 4 warning for a denial or a rejected change).
    severity: u8,
    msgid: &'static str,
}

const OCSF_VERSION: &str = "1.3.0";

fn metadata(uid: String, log_name: &str) -> Value {
    json!({
        "version": OCSF_VERSION,
        "uid": uid,
        "log_name": log_name,
        "product": {"name": "Portcullis", "vendor_name": "Portcullis", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// A decision record as an OCSF API Activity (class 6003): the actor, the API operation
/// (the Cedar action), the resource, and the disposition (allowed or blocked).
pub fn decision_ocsf(d: &StoredDecision) -> Value {
    let r = &d.record;
    let allowed = r.decision == "allow";
    let (resource_type, resource_name) = r
        .resource
        .split_once("::")
        .map(|(t, n)| (t.to_owned(), n.trim_matches('"').to_owned()))
        .unwrap_or_default();
    json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": 99,
        "activity_name": r.action,
        "type_uid": 600399,
        "severity_id": 1,
        "time": r.at_ms,
        "status_id": if allowed { 1 } else { 2 },
        "status": if allowed { "Success" } else { "Failure" },
        "disposition_id": if allowed { 1 } else { 2 },
        "disposition": if allowed { "Allowed" } else { "Blocked" },
        "message": format!("{} {} on {}: {}", r.principal.as_ref().map_or("-", |p| p.user_name.as_str()), r.action, r.resource, r.reason),
        "metadata": metadata(format!("decision:{}/{}/{}", r.node, d.epoch, r.seq), "decisions"),
        "actor": {"user": r.principal.as_ref().map(|p| json!({"uid": p.id, "name": p.user_name, "domain": p.source}))},
        "api": {"operation": r.action, "request": {"uid": r.request_id}},
        "resources": if r.resource.is_empty() { json!([]) } else { json!([{"type": resource_type, "name": resource_name, "uid": r.resource}]) },
        "device": {"hostname": r.node},
        "unmapped": {
            "reason": r.reason,
            "policies": r.policies,
            "snapshot_version": r.snapshot_version,
            "identity_revision": r.identity_revision,
            "policy_version": r.policy_version,
            "decision_us": r.decision_us,
            "node": r.node,
            "epoch": d.epoch,
            "seq": r.seq,
        },
    })
}

/// An identity event as OCSF: Account Change (3001) for users, Group Management (3006) for
/// groups, Entity Management (3004) for bindings, policies and the rest. The event's full
/// record (before, after, outcome) rides in `unmapped`.
pub fn identity_ocsf(e: &IdentityEvent) -> Value {
    let op = e.operation.as_str();
    let deactivated = e.after.as_ref().and_then(|a| a.get("active")) == Some(&json!(false))
        && e.before.as_ref().and_then(|b| b.get("active")) != Some(&json!(false));
    let (class_uid, class_name, activity_id, activity_name) = match e.resource_type.as_str() {
        "User" => match op {
            "create" => (3001, "Account Change", 1, "Create"),
            "delete" => (3001, "Account Change", 6, "Delete"),
            _ if deactivated => (3001, "Account Change", 5, "Disable"),
            _ => (3001, "Account Change", 99, "Other"),
        },
        "Group" => match op {
            "create" => (3006, "Group Management", 6, "Create"),
            "delete" => (3006, "Group Management", 5, "Delete"),
            _ => (3006, "Group Management", 99, "Other"),
        },
        _ => match op {
            "create" => (3004, "Entity Management", 1, "Create"),
            "delete" => (3004, "Entity Management", 4, "Delete"),
            "update" | "replace" | "patch" => (3004, "Entity Management", 3, "Update"),
            _ => (3004, "Entity Management", 99, "Other"),
        },
    };
    let outcome = event_json(e);
    let rejected = outcome["outcome"] == "rejected";
    json!({
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": if e.high_priority { 3 } else { 1 },
        "time": e.at_ms,
        "status_id": if rejected { 2 } else { 1 },
        "status": if rejected { "Failure" } else { "Success" },
        "message": format!("{} {} {} from {}", e.operation, e.resource_type, e.resource_id, e.source),
        "metadata": metadata(format!("identity:{}", e.seq), "identity"),
        "user": (e.resource_type == "User").then(|| json!({"uid": e.resource_id, "domain": e.source})),
        "group": (e.resource_type == "Group").then(|| json!({"uid": e.resource_id, "domain": e.source})),
        "unmapped": outcome,
    })
}

/// Where events come from.
#[derive(Debug, Clone)]
struct Sources {
    store: Store,
    decisions: DecisionStore,
}

impl Sources {
    async fn read(
        &self,
        stream: Stream,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Outgoing>, StoreError> {
        match stream {
            Stream::Identity => {
                let events = self
                    .store
                    .read(move |c| store::events_after(c, after, limit))
                    .await?;
                Ok(events
                    .iter()
                    .map(|e| Outgoing {
                        position: e.seq,
                        ocsf: identity_ocsf(e),
                        severity: if e.high_priority { 4 } else { 6 },
                        msgid: "identity",
                    })
                    .collect())
            }
            Stream::Decisions => Ok(self
                .decisions
                .after_row(after, limit)
                .await?
                .iter()
                .map(|(row, d)| Outgoing {
                    position: *row,
                    ocsf: decision_ocsf(d),
                    severity: if d.record.decision == "allow" { 6 } else { 4 },
                    msgid: "decision",
                })
                .collect()),
        }
    }

    async fn end(&self, stream: Stream) -> Result<u64, StoreError> {
        match stream {
            Stream::Identity => self.store.read(|c| store::last_event_seq(c)).await,
            Stream::Decisions => self.decisions.last_row().await,
        }
    }
}

/// Why a delivery failed (it is retried).
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the collector answered {0}")]
    Status(u16),
    #[error("syslog: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

type Connection = Box<dyn AsyncWrite + Unpin + Send>;

/// A sink's connection state.
struct Deliverer {
    config: Arc<SiemConfig>,
    http: reqwest::Client,
    syslog: Option<Connection>,
}

impl Deliverer {
    async fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), DeliveryError> {
        let c = &self.config;
        match c.kind {
            Kind::Http => {
                let url = c.url.as_deref().unwrap_or_default();
                let events: Vec<&Value> = batch.iter().map(|o| &o.ocsf).collect();
                let mut req = self.http.post(url).json(&events);
                for (k, v) in &c.headers {
                    req = req.header(k, v);
                }
                for (k, var) in &c.header_env {
                    if let Ok(v) = std::env::var(var) {
                        req = req.header(k, v);
                    }
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| DeliveryError::Http(e.to_string()))?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(DeliveryError::Status(resp.status().as_u16()))
                }
            }
            Kind::Syslog => {
                if self.syslog.is_none() {
                    let address = c.address.as_deref().unwrap_or_default();
                    self.syslog = Some(connect(address, c.tls.as_ref()).await?);
                }
                let mut frames = Vec::new();
                for o in batch {
                    let msg = syslog_message(&c.hostname, o);
                    frames.extend_from_slice(format!("{} ", msg.len()).as_bytes());
                    frames.extend_from_slice(msg.as_bytes());
                }
                let Some(conn) = self.syslog.as_mut() else {
                    return Ok(());
                };
                let written = async {
                    conn.write_all(&frames).await?;
                    conn.flush().await
                }
                .await;
                if written.is_err() {
                    self.syslog = None;
                }
                Ok(written?)
            }
        }
    }
}

/// One RFC 5424 message: facility 13 (log audit), the event's severity, its instant.
fn syslog_message(hostname: &str, o: &Outgoing) -> String {
    let pri = 13 * 8 + u32::from(o.severity);
    let time = o.ocsf["time"]
        .as_i64()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| "-".to_owned(), |t| t.to_string());
    format!(
        "<{pri}>1 {time} {hostname} portcullis - {} - {}",
        o.msgid, o.ocsf
    )
}

async fn connect(address: &str, tls: Option<&SyslogTls>) -> Result<Connection, DeliveryError> {
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    tcp.set_nodelay(true)?;
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    let pem = tokio::fs::read(&tls.ca)
        .await
        .map_err(|e| DeliveryError::Tls(format!("{}: {e}", tls.ca.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(&pem)? {
        roots
            .add(cert)
            .map_err(|e| DeliveryError::Tls(e.to_string()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| DeliveryError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = tls.server_name.clone().unwrap_or_else(|| {
        address
            .rsplit_once(':')
            .map_or(address, |(h, _)| h)
            .to_owned()
    });
    let name = rustls::pki_types::ServerName::try_from(host)
        .map_err(|e| DeliveryError::Tls(e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(Box::new(stream))
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, DeliveryError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DeliveryError::Tls(format!("CA file: {e}")))
}

/// Starts one task per sink and stream.
pub fn spawn(sinks: &[SiemConfig], store: Store, decisions: DecisionStore) {
    let sources = Sources { store, decisions };
    for sink in sinks {
        let sink = Arc::new(sink.clone());
        for &stream in &sink.streams {
            tokio::spawn(run(sink.clone(), stream, sources.clone()));
        }
    }
}

/// Delivers one stream to one sink, forever.
async fn run(sink: Arc<SiemConfig>, stream: Stream, sources: Sources) {
    let (name, s) = (sink.name.clone(), stream.name());
    let sent =
        metrics::counter!("portcullis_siem_events_total", "sink" => name.clone(), "stream" => s);
    let failures =
        metrics::counter!("portcullis_siem_failures_total", "sink" => name.clone(), "stream" => s);
    let mut deliverer = Deliverer {
        config: sink.clone(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default(),
        syslog: None,
    };
    let max_backoff = Duration::from_millis(sink.max_backoff_ms.max(100));
    let mut backoff = Duration::from_millis(100);
    let mut cursor = loop {
        let stored = sources
            .store
            .read({
                let name = name.clone();
                move |c| store::siem_cursor(c, &name, s)
            })
            .await;
        let start = match stored {
            Ok(Some(p)) => Ok(p),
            // Noted at once, so a restart before the first delivery starts from here too.
            Ok(None) if sink.from == Start::Now => match sources.end(stream).await {
                Ok(end) => {
                    let name = name.clone();
                    sources
                        .store
                        .write(move |tx| store::set_siem_cursor(tx, &name, s, end))
                        .await
                        .map(|()| end)
                }
                Err(e) => Err(e),
            },
            Ok(None) => Ok(0),
            Err(e) => Err(e),
        };
        match start {
            Ok(p) => break p,
            Err(e) => {
                tracing::error!(sink = %name, stream = s, error = %e, "cannot read the SIEM cursor; retrying");
                tokio::time::sleep(max_backoff).await;
            }
        }
    };
    tracing::info!(sink = %name, stream = s, from = cursor, "SIEM stream started");
    let mut failing_since: Option<std::time::Instant> = None;
    // Where the last delivered batch started: a syslog write can succeed into a connection
    // the collector already dropped, so after a failed write that batch is sent again.
    let mut last_start = cursor;
    let mut batch_size = sink.batch;
    loop {
        let batch = match sources.read(stream, cursor, batch_size).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(sink = %name, stream = s, error = %e, "cannot read events for the SIEM");
                tokio::time::sleep(max_backoff).await;
                continue;
            }
        };
        let Some(last) = batch.last().map(|o| o.position) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        match deliverer.deliver(&batch).await {
            Ok(()) => {
                sent.increment(batch.len() as u64);
                if let Some(t) = failing_since.take() {
                    tracing::info!(sink = %name, stream = s, down_ms = t.elapsed().as_millis() as u64, "SIEM collector reachable again; delivery resumed");
                }
                backoff = Duration::from_millis(100);
                last_start = cursor;
                cursor = last;
                let (name, position) = (name.clone(), cursor);
                if let Err(e) = sources
                    .store
                    .write(move |tx| store::set_siem_cursor(tx, &name, s, position))
                    .await
                {
                    // Delivered but not noted: the batch may be sent again after a restart.
                    tracing::warn!(error = %e, "cannot store the SIEM cursor");
                }
            }
            Err(e) => {
                failures.increment(1);
                if matches!(e, DeliveryError::Io(_) | DeliveryError::Tls(_)) {
                    cursor = last_start;
                }
                // Too large for the collector: smaller batches from now on.
                if matches!(e, DeliveryError::Status(413)) && batch_size > 1 {
                    batch_size = (batch_size / 2).max(1);
                    tracing::warn!(sink = %name, stream = s, batch = batch_size, "the collector refused a batch as too large; halving");
                    continue;
                }
                if failing_since.is_none() {
                    failing_since = Some(std::time::Instant::now());
                    tracing::warn!(sink = %name, stream = s, error = %e, "SIEM delivery failed; retrying with backoff (events stay in the audit store)");
                } else {
                    tracing::debug!(sink = %name, stream = s, error = %e, "SIEM delivery failed again");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(text: &str) -> SiemConfig {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn sinks_are_checked() {
        let ok = sink("name = \"s\"\nkind = \"http\"\nurl = \"https://siem.test/in\"");
        assert_eq!(ok.problem(), None);
        assert_eq!(ok.streams, [Stream::Identity, Stream::Decisions]);
        assert_eq!(ok.from, Start::Beginning);
        let ftp = sink("name = \"s\"\nkind = \"http\"\nurl = \"ftp://siem.test/in\"");
        assert!(ftp.problem().is_some_and(|p| p.contains("ftp")));
        let no_url = sink("name = \"s\"\nkind = \"http\"");
        assert!(no_url.problem().is_some_and(|p| p.contains("needs url")));
        assert!(
            toml::from_str::<SiemConfig>("name = \"s\"\nkind = \"http\"\nurll = \"x\"").is_err(),
            "a misspelt setting is refused"
        );
        let no_port = sink("name = \"s\"\nkind = \"syslog\"\naddress = \"siem.test\"");
        assert!(no_port.problem().is_some_and(|p| p.contains("host:port")));
        let syslog = sink(
            "name = \"s\"\nkind = \"syslog\"\naddress = \"siem.test:6514\"\nstreams = [\"decisions\"]\nfrom = \"now\"",
        );
        assert_eq!(syslog.problem(), None);
        assert_eq!(syslog.streams, [Stream::Decisions]);
        assert!(
            toml::from_str::<SiemConfig>("name = \"s\"\nkind = \"kafka\"\nurl = \"x\"").is_err()
        );
    }

    #[test]
    fn a_syslog_message_is_rfc_5424() {
        let o = Outgoing {
            position: 1,
            ocsf: json!({"time": 1_700_000_000_123u64, "class_uid": 6003}),
            severity: 4,
            msgid: "decision",
        };
        assert_eq!(
            syslog_message("cp-1", &o),
            "<108>1 2023-11-14T22:13:20.123Z cp-1 portcullis - decision - {\"time\":1700000000123,\"class_uid\":6003}"
        );
    }
}
