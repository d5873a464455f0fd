//! Evidence export: identity events (for a time range, a resource or an event kind) or
//! decision records (for a time range, a principal, an action or a decision), as JSON Lines or
//! CSV, each record chained to the one before by hash, the file closed by a manifest signed
//! with the control plane's Ed25519 key; and the check an auditor runs.
//!
//! Each record carries its number `n` (from 1), `prev` (the hash of the record before; for the
//! first, the export's genesis hash) and `hash` = SHA-256 of `prev` and the record's content.
//! The manifest names the count, the genesis and the last hash (the head), the SHA-256 of the
//! whole file, the filter and the export's id, and is signed. [`verify`] recomputes every
//! record and names the first one that was altered (its hash), removed or inserted or
//! reordered (its number or its `prev`); a file rewritten with a fresh chain fails at the
//! signed head and file hash.

use crate::store::{
    self, DecisionFilter, DecisionStore, IdentityEvent, Store, StoreError, StoredDecision,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis_shared::Hash32;
use portcullis_shared::signing::{FrameSigner, TrustedKeys};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The manifest's `format`.
pub const FORMAT: &str = "portcullis-evidence/1";

/// The fields of an identity event, in order (the CSV columns after `n,prev,hash`).
const IDENTITY_FIELDS: &[&str] = &[
    "seq",
    "revision",
    "at_ms",
    "source",
    "operation",
    "resource_type",
    "resource_id",
    "outcome",
    "status",
    "detail",
    "request_sha256",
    "priority",
    "before",
    "after",
];

/// The fields of a decision record, in order.
const DECISION_FIELDS: &[&str] = &[
    "node",
    "epoch",
    "seq",
    "at_ms",
    "request_id",
    "principal_id",
    "user_name",
    "source",
    "action",
    "resource",
    "decision",
    "reason",
    "policies",
    "snapshot_version",
    "identity_revision",
    "policy_version",
    "decision_us",
    "request",
];

/// What an export holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceStream {
    /// The identity event log.
    #[default]
    Identity,
    /// The decision records the nodes shipped.
    Decisions,
}

impl EvidenceStream {
    fn is_identity(&self) -> bool {
        *self == Self::Identity
    }

    fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Identity => IDENTITY_FIELDS,
            Self::Decisions => DECISION_FIELDS,
        }
    }

    /// The CSV header line.
    fn csv_header(self) -> String {
        format!("n,prev,hash,{}", self.fields().join(","))
    }
}

/// Which events to export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// From this instant (Unix ms, inclusive).
    pub from_ms: Option<u64>,
    /// Until this instant (Unix ms, exclusive).
    pub to_ms: Option<u64>,
    /// Only events about this user or group (SCIM id).
    pub resource_id: Option<String>,
    /// Only events of this kind: a resource type (`User`, `Group`, `Bindings`, …) or an
    /// operation (`create`, `patch`, `delete`, …); for decisions, an action (`chat`, …) or a
    /// decision (`allow`, `deny`).
    pub kind: Option<String>,
    /// Decisions only: this principal's (SCIM id or userName).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

impl Filter {
    fn admits_decision(&self, d: &StoredDecision) -> bool {
        let r = &d.record;
        self.from_ms.is_none_or(|t| r.at_ms >= t)
            && self.to_ms.is_none_or(|t| r.at_ms < t)
            && self
                .kind
                .as_ref()
                .is_none_or(|k| *k == r.action || *k == r.decision)
            && self.principal.as_ref().is_none_or(|p| {
                r.principal
                    .as_ref()
                    .is_some_and(|x| x.id == *p || x.user_name == *p)
            })
    }

    fn admits(&self, e: &IdentityEvent) -> bool {
        self.from_ms.is_none_or(|t| e.at_ms >= t)
            && self.to_ms.is_none_or(|t| e.at_ms < t)
            && self
                .resource_id
                .as_ref()
                .is_none_or(|r| *r == e.resource_id)
            && self
                .kind
                .as_ref()
                .is_none_or(|k| *k == e.resource_type || *k == e.operation)
    }
}

/// File encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Jsonl,
    Csv,
}

/// The signed description of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// Absent for identity events (as in exports made before decisions could be exported).
    #[serde(default, skip_serializing_if = "EvidenceStream::is_identity")]
    pub stream: EvidenceStream,
    pub encoding: Encoding,
    pub export_id: String,
    pub exported_at_ms: u64,
    pub filter: Filter,
    pub records: u64,
    pub genesis: String,
    pub head: String,
    pub file_sha256: String,
    pub key_id: String,
    /// Base64 Ed25519 signature of the manifest with this field empty.
    pub signature: String,
}

impl Manifest {
    /// The bytes the signature covers: the manifest as JSON with an empty signature.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature.clear();
        let mut out = b"portcullis evidence manifest v1\0".to_vec();
        out.extend_from_slice(&serde_json::to_vec(&unsigned).unwrap_or_default());
        out
    }
}

/// Why an export does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the manifest's signature does not verify with the given key: {0}")]
    Signature(String),
    #[error("the manifest is not a {FORMAT} manifest")]
    Format,
    #[error("the CSV header is not the expected one")]
    Header,
    #[error("record {0}: {1}")]
    Record(u64, String),
    #[error(
        "the file ends after {found} records; the manifest says {expected} (records removed at the end)"
    )]
    Missing { found: u64, expected: u64 },
    #[error("the file has more records than the manifest's {0} (records added at the end)")]
    Extra(u64),
    #[error("the chain's last hash is not the signed head (the file was rewritten)")]
    Head,
    #[error("the file's SHA-256 is not the signed one")]
    FileHash,
}

fn chain(prev: &str, content: &str) -> String {
    let mut bytes = Vec::with_capacity(prev.len() + 1 + content.len());
    bytes.extend_from_slice(prev.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(content.as_bytes());
    Hash32::of(&bytes).to_hex()
}

fn genesis(export_id: &str, stream: EvidenceStream, encoding: Encoding) -> String {
    let header = match encoding {
        Encoding::Jsonl => String::new(),
        Encoding::Csv => stream.csv_header(),
    };
    let text = match stream {
        EvidenceStream::Identity => format!("{FORMAT}\n{export_id}\n{header}"),
        EvidenceStream::Decisions => format!("{FORMAT}\ndecisions\n{export_id}\n{header}"),
    };
    Hash32::of(text.as_bytes()).to_hex()
}

/// A decision record as exported: every field, in a fixed order.
pub(crate) fn decision_json(d: &StoredDecision) -> Value {
    let r = &d.record;
    let p = r.principal.as_ref();
    json!({
        "node": r.node,
        "epoch": d.epoch,
        "seq": r.seq,
        "at_ms": r.at_ms,
        "request_id": r.request_id,
        "principal_id": p.map(|p| &p.id),
        "user_name": p.map(|p| &p.user_name),
        "source": p.map(|p| &p.source),
        "action": r.action,
        "resource": r.resource,
        "decision": r.decision,
        "reason": r.reason,
        "policies": r.policies,
        "snapshot_version": r.snapshot_version,
        "identity_revision": r.identity_revision,
        "policy_version": r.policy_version,
        "decision_us": r.decision_us,
        "request": r.request,
    })
}

/// An event as exported: every field, in a fixed order.
pub(crate) fn event_json(e: &IdentityEvent) -> Value {
    json!({
        "seq": e.seq,
        "revision": e.revision,
        "at_ms": e.at_ms,
        "source": e.source,
        "operation": e.operation,
        "resource_type": e.resource_type,
        "resource_id": e.resource_id,
        "outcome": e.outcome,
        "status": e.status,
        "detail": e.detail,
        "request_sha256": e.request_sha256,
        "priority": if e.high_priority { "high" } else { "normal" },
        "before": e.before,
        "after": e.after,
    })
}

/// One CSV field, quoted when it must be (RFC 4180).
fn csv_field(v: &Value) -> String {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    // Line breaks are written as `\n` / `\r`: one record is one line.
    let text = text.replace('\n', "\\n").replace('\r', "\\r");
    if text.contains([',', '"']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The record's content as it is hashed and written: JSON, or the CSV fields after `hash`.
/// Whole JSON documents (before, after, policies, request) stay JSON inside their field.
fn content(e: &Value, stream: EvidenceStream, encoding: Encoding) -> String {
    match encoding {
        Encoding::Jsonl => e.to_string(),
        Encoding::Csv => stream
            .fields()
            .iter()
            .map(|k| match &e[k] {
                v @ (Value::Object(_) | Value::Array(_)) => {
                    csv_field(&Value::String(v.to_string()))
                }
                v => csv_field(v),
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Builds the file and its signed manifest from `events` (oldest first).
pub fn build(
    events: &[IdentityEvent],
    filter: Filter,
    encoding: Encoding,
    export_id: String,
    exported_at_ms: u64,
    signer: &FrameSigner,
) -> (Vec<u8>, Manifest) {
    let records: Vec<Value> = events
        .iter()
        .filter(|e| filter.admits(e))
        .map(event_json)
        .collect();
    let stream = EvidenceStream::Identity;
    build_records(
        &records,
        stream,
        filter,
        encoding,
        export_id,
        exported_at_ms,
        signer,
    )
}

/// Builds the file and its signed manifest from records of `stream` (oldest first).
fn build_records(
    records: &[Value],
    stream: EvidenceStream,
    filter: Filter,
    encoding: Encoding,
    export_id: String,
    exported_at_ms: u64,
    signer: &FrameSigner,
) -> (Vec<u8>, Manifest) {
    let genesis = genesis(&export_id, stream, encoding);
    let mut out = String::new();
    if encoding == Encoding::Csv {
        out.push_str(&stream.csv_header());
        out.push('\n');
    }
    let mut prev = genesis.clone();
    let mut n = 0u64;
    for value in records {
        n += 1;
        let body = content(value, stream, encoding);
        let hash = chain(&prev, &body);
        match encoding {
            Encoding::Jsonl => {
                let line = json!({"n": n, "prev": prev, "hash": hash, "event": value});
                out.push_str(&line.to_string());
            }
            Encoding::Csv => out.push_str(&format!("{n},{prev},{hash},{body}")),
        }
        out.push('\n');
        prev = hash;
    }
    let bytes = out.into_bytes();
    let mut manifest = Manifest {
        format: FORMAT.into(),
        stream,
        encoding,
        export_id,
        exported_at_ms,
        filter,
        records: n,
        genesis,
        head: prev,
        file_sha256: Hash32::of(&bytes).to_hex(),
        key_id: signer.key_id().to_owned(),
        signature: String::new(),
    };
    manifest.signature = STANDARD.encode(signer.sign_message(&manifest.signed_bytes()));
    (bytes, manifest)
}

/// Reads every event the filter admits from the store (in pages), oldest first, and builds
/// the export.
pub async fn export(
    store: &Store,
    filter: Filter,
    encoding: Encoding,
    signer: &FrameSigner,
) -> Result<(Vec<u8>, Manifest), StoreError> {
    let mut events = Vec::new();
    let mut after = 0u64;
    loop {
        let page = store
            .run(move |c| store::events_after(c, after, 1000))
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        events.extend(page.into_iter().filter(|e| filter.admits(e)));
    }
    let export_id = hex::encode(rand::random::<[u8; 16]>());
    Ok(build(
        &events,
        filter,
        encoding,
        export_id,
        store::now_ms(),
        signer,
    ))
}

/// Reads every decision record the filter admits (in pages, oldest first) and builds the
/// export.
pub async fn export_decisions(
    decisions: &DecisionStore,
    filter: Filter,
    encoding: Encoding,
    signer: &FrameSigner,
) -> Result<(Vec<u8>, Manifest), StoreError> {
    let query = DecisionFilter {
        from_ms: filter.from_ms,
        to_ms: filter.to_ms,
        principal: filter.principal.clone(),
        ..Default::default()
    };
    let mut records = Vec::new();
    let mut after = None;
    loop {
        let page = decisions.query(query.clone(), after, 10_000).await?;
        records.extend(
            page.decisions
                .iter()
                .filter(|d| filter.admits_decision(d))
                .map(decision_json),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let export_id = hex::encode(rand::random::<[u8; 16]>());
    Ok(build_records(
        &records,
        EvidenceStream::Decisions,
        filter,
        encoding,
        export_id,
        store::now_ms(),
        signer,
    ))
}

/// Checks an export against its manifest and the control plane's public key. Returns the
/// number of records, or names the first thing wrong.
pub fn verify(file: &[u8], manifest: &Manifest, key: &TrustedKeys) -> Result<u64, VerifyError> {
    let signature = STANDARD
        .decode(&manifest.signature)
        .map_err(|e| VerifyError::Signature(e.to_string()))?;
    key.verify_message(&manifest.signed_bytes(), &signature, &manifest.key_id)
        .map_err(|e| VerifyError::Signature(e.to_string()))?;
    let stream = manifest.stream;
    if manifest.format != FORMAT
        || manifest.genesis != genesis(&manifest.export_id, stream, manifest.encoding)
    {
        return Err(VerifyError::Format);
    }
    let text = String::from_utf8_lossy(file);
    let mut lines = text.lines();
    if manifest.encoding == Encoding::Csv && lines.next() != Some(stream.csv_header().as_str()) {
        return Err(VerifyError::Header);
    }
    let mut prev = manifest.genesis.clone();
    let mut n = 0u64;
    for line in lines {
        n += 1;
        if n > manifest.records {
            return Err(VerifyError::Extra(manifest.records));
        }
        let bad = |why: &str| VerifyError::Record(n, why.to_owned());
        let (number, claimed_prev, claimed_hash, body) = match manifest.encoding {
            Encoding::Jsonl => {
                let v: Value = serde_json::from_str(line).map_err(|_| bad("not a JSON record"))?;
                (
                    v["n"].as_u64(),
                    v["prev"].as_str().unwrap_or_default().to_owned(),
                    v["hash"].as_str().unwrap_or_default().to_owned(),
                    content(&v["event"], stream, Encoding::Jsonl),
                )
            }
            Encoding::Csv => {
                let mut parts = line.splitn(4, ',');
                let number = parts.next().and_then(|p| p.parse().ok());
                let claimed_prev = parts.next().unwrap_or_default().to_owned();
                let claimed_hash = parts.next().unwrap_or_default().to_owned();
                (
                    number,
                    claimed_prev,
                    claimed_hash,
                    parts.next().unwrap_or_default().to_owned(),
                )
            }
        };
        if number != Some(n) {
            return Err(bad(&format!(
                "numbered {}, expected {n} (a record before it was removed, or records were inserted or reordered)",
                number.map_or("?".to_owned(), |x| x.to_string())
            )));
        }
        if chain(&claimed_prev, &body) != claimed_hash {
            return Err(bad("its content does not match its hash (altered)"));
        }
        if claimed_prev != prev {
            return Err(bad(
                "it does not follow the record before it (records removed, inserted or reordered)",
            ));
        }
        prev = claimed_hash;
    }
    if n < manifest.records {
        return Err(VerifyError::Missing {
            found: n,
            expected: manifest.records,
        });
    }
    if prev != manifest.head {
        return Err(VerifyError::Head);
    }
    if Hash32::of(file).to_hex() != manifest.file_sha256 {
        return Err(VerifyError::FileHash);
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
