//! The snapshot wire and disk format: a fixed header, then a `postcard` body.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "PCSN"
//!      4     2  format version (little endian); a node refuses formats it does not know
//!      6     2  reserved, zero
//!      8     8  snapshot version
//!     16     8  body length in bytes
//!     24    32  SHA-256 of the body (the content hash)
//!     56     …  body: postcard-encoded `Snapshot`
//! ```
//!
//! A delta (see [`crate::delta`]) is framed the same way with its own magic and the version
//! it applies to:
//!
//! ```text
//! offset  size  field
//!      0     4  magic "PCSD"
//!      4     2  format version
//!      6     2  reserved, zero
//!      8     8  version it makes
//!     16     8  base version it applies to
//!     24     8  body length in bytes
//!     32    32  SHA-256 of the body
//!     64     …  body: postcard-encoded `Delta`
//! ```
//!
//! This module is the only place that knows the encoding; everything else handles `Snapshot`
//! and `Delta` values or opaque framed bytes.

use crate::Hash32;
use crate::delta::Delta;
use crate::snapshot::Snapshot;

/// "PCSN": Portcullis snapshot.
pub const MAGIC: [u8; 4] = *b"PCSN";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u16 = 5;
/// The format before it, which this build still reads where old frames are kept (stored
/// history, last-known-good files): format 4 snapshots and deltas carry no API keys. On the
/// wire a delta must say 5; only [`decode_stored_delta`] reads 4.
pub const PREVIOUS_FORMAT: u16 = 4;
/// Header size in bytes.
pub const HEADER_LEN: usize = 56;
/// "PCSD": Portcullis snapshot delta.
pub const DELTA_MAGIC: [u8; 4] = *b"PCSD";
/// Delta header size in bytes.
pub const DELTA_HEADER_LEN: usize = 64;

/// What a framed delta's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaHeader {
    pub format: u16,
    pub version: u64,
    pub base_version: u64,
    pub body_len: u64,
    pub content_hash: Hash32,
}

/// What the header says about a framed snapshot, readable without decoding the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format: u16,
    pub version: u64,
    pub body_len: u64,
    pub content_hash: Hash32,
}

/// Why framed bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("snapshot is {0} bytes, shorter than its {HEADER_LEN}-byte header")]
    Truncated(usize),
    #[error("not a Portcullis snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot format {found} is not supported by this node (supports {supported})")]
    UnsupportedFormat { found: u16, supported: u16 },
    #[error("reserved header bytes are not zero")]
    Reserved,
    #[error("snapshot body is {actual} bytes but the header says {expected}")]
    LengthMismatch { expected: u64, actual: u64 },
    #[error("snapshot content hash mismatch: header {expected}, body {actual}")]
    HashMismatch { expected: String, actual: String },
    #[error("snapshot body does not decode: {0}")]
    Body(String),
    #[error("header names version {header} but the body is version {body}")]
    VersionMismatch { header: u64, body: u64 },
    #[error("delta header says base {header} but the body applies to {body}")]
    BaseMismatch { header: u64, body: u64 },
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn check_format(bytes: &[u8], previous: bool) -> Result<u16, CodecError> {
    let format = u16::from_le_bytes([bytes[4], bytes[5]]);
    if format != FORMAT_VERSION && !(previous && format == PREVIOUS_FORMAT) {
        return Err(CodecError::UnsupportedFormat {
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    if bytes[6..8] != [0, 0] {
        return Err(CodecError::Reserved);
    }
    Ok(format)
}

fn check_body(body: &[u8], expected: &Hash32) -> Result<(), CodecError> {
    let actual = Hash32::of(body);
    if actual != *expected {
        return Err(CodecError::HashMismatch {
            expected: expected.short(),
            actual: actual.short(),
        });
    }
    Ok(())
}

/// Frames a delta. Deterministic, like [`encode`].
pub fn encode_delta(delta: &Delta) -> Vec<u8> {
    let body = postcard::to_stdvec(delta).unwrap_or_default();
    let hash = Hash32::of(&body);
    let mut out = Vec::with_capacity(DELTA_HEADER_LEN + body.len());
    out.extend_from_slice(&DELTA_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&delta.version.to_le_bytes());
    out.extend_from_slice(&delta.base_version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&hash.0);
    out.extend_from_slice(&body);
    out
}

/// Reads and checks a delta's header only.
pub fn peek_delta_header(bytes: &[u8]) -> Result<DeltaHeader, CodecError> {
    delta_header(bytes, false)
}

fn delta_header(bytes: &[u8], previous: bool) -> Result<DeltaHeader, CodecError> {
    if bytes.len() < DELTA_HEADER_LEN {
        return Err(CodecError::Truncated(bytes.len()));
    }
    if bytes[0..4] != DELTA_MAGIC {
        return Err(CodecError::BadMagic);
    }
    let format = check_format(bytes, previous)?;
    let body_len = u64_at(bytes, 24);
    let actual = (bytes.len() - DELTA_HEADER_LEN) as u64;
    if actual != body_len {
        return Err(CodecError::LengthMismatch {
            expected: body_len,
            actual,
        });
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[32..64]);
    Ok(DeltaHeader {
        format,
        version: u64_at(bytes, 8),
        base_version: u64_at(bytes, 16),
        body_len,
        content_hash: Hash32(hash),
    })
}

/// Checks a delta's header and content hash, then decodes it.
pub fn decode_delta(bytes: &[u8]) -> Result<(DeltaHeader, Delta), CodecError> {
    decode_delta_of(bytes, false)
}

/// [`decode_delta`] for a delta kept by an earlier build (stored history): format 4 too.
pub fn decode_stored_delta(bytes: &[u8]) -> Result<(DeltaHeader, Delta), CodecError> {
    decode_delta_of(bytes, true)
}

fn decode_delta_of(bytes: &[u8], previous: bool) -> Result<(DeltaHeader, Delta), CodecError> {
    let header = delta_header(bytes, previous)?;
    let body = &bytes[DELTA_HEADER_LEN..];
    check_body(body, &header.content_hash)?;
    let delta: Delta = if header.format == PREVIOUS_FORMAT {
        whole::<v4::Delta>(body)?.into()
    } else {
        postcard::from_bytes(body).map_err(|e| CodecError::Body(e.to_string()))?
    };
    if delta.version != header.version {
        return Err(CodecError::VersionMismatch {
            header: header.version,
            body: delta.version,
        });
    }
    if delta.base_version != header.base_version {
        return Err(CodecError::BaseMismatch {
            header: header.base_version,
            body: delta.base_version,
        });
    }
    Ok((header, delta))
}

/// Frames a snapshot. Deterministic: equal snapshots give equal bytes.
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    // Serializing plain owned data into a Vec cannot fail.
    let body = postcard::to_stdvec(snapshot).unwrap_or_default();
    let hash = Hash32::of(&body);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&snapshot.version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&hash.0);
    out.extend_from_slice(&body);
    out
}

/// Reads and checks the header only (magic, format, length), without hashing the body.
pub fn peek_header(bytes: &[u8]) -> Result<Header, CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::Truncated(bytes.len()));
    }
    if bytes[0..4] != MAGIC {
        return Err(CodecError::BadMagic);
    }
    let format = check_format(bytes, true)?;
    let version = u64_at(bytes, 8);
    let body_len = u64_at(bytes, 16);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[24..56]);
    let actual = (bytes.len() - HEADER_LEN) as u64;
    if actual != body_len {
        return Err(CodecError::LengthMismatch {
            expected: body_len,
            actual,
        });
    }
    Ok(Header {
        format,
        version,
        body_len,
        content_hash: Hash32(hash),
    })
}

/// Checks header and content hash, then decodes the body.
pub fn decode(bytes: &[u8]) -> Result<(Header, Snapshot), CodecError> {
    let header = peek_header(bytes)?;
    let body = &bytes[HEADER_LEN..];
    check_body(body, &header.content_hash)?;
    let snapshot: Snapshot = if header.format == PREVIOUS_FORMAT {
        whole::<v4::Snapshot>(body)?.into()
    } else {
        postcard::from_bytes(body).map_err(|e| CodecError::Body(e.to_string()))?
    };
    if snapshot.version != header.version {
        return Err(CodecError::VersionMismatch {
            header: header.version,
            body: snapshot.version,
        });
    }
    Ok((header, snapshot))
}

/// Decodes a format 4 body, all of it: a format 5 body relabelled 4 is refused, not read
/// short.
fn whole<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| CodecError::Body(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Body(format!(
            "{} bytes after a format {PREVIOUS_FORMAT} body",
            rest.len()
        )));
    }
    Ok(value)
}

/// Format 4: snapshots and deltas before API keys.
mod v4 {
    use crate::snapshot::{
        AttributeDecl, Condition, Group, Issuer, LabeledResource, Partner, PolicyFile,
        PolicyVersion, User,
    };
    use std::sync::Arc;

    #[derive(Debug, serde::Deserialize)]
    pub struct Snapshot {
        version: u64,
        id: u64,
        identity_revision: u64,
        policy_version: PolicyVersion,
        created_at_ms: u64,
        issuers: Vec<Issuer>,
        groups: Vec<Arc<Group>>,
        users: Vec<Arc<User>>,
        principal_attributes: Vec<AttributeDecl>,
        schema: String,
        policies: Vec<PolicyFile>,
        roles: Vec<String>,
        conditions: Vec<Condition>,
        resource_labels: Vec<AttributeDecl>,
        partners: Vec<Partner>,
        labeled_resources: Vec<LabeledResource>,
    }

    #[derive(Debug, serde::Deserialize)]
    pub struct Delta {
        base_version: u64,
        base_id: u64,
        version: u64,
        id: u64,
        identity_revision: u64,
        created_at_ms: u64,
        groups: Vec<(u32, Arc<Group>)>,
        users: Vec<Arc<User>>,
        removed: Vec<(String, String)>,
    }

    impl From<Delta> for crate::delta::Delta {
        fn from(d: Delta) -> Self {
            Self {
                base_version: d.base_version,
                base_id: d.base_id,
                version: d.version,
                id: d.id,
                identity_revision: d.identity_revision,
                created_at_ms: d.created_at_ms,
                groups: d.groups,
                users: d.users,
                removed: d.removed,
                api_keys: None,
            }
        }
    }

    impl From<Snapshot> for crate::snapshot::Snapshot {
        fn from(s: Snapshot) -> Self {
            Self {
                version: s.version,
                id: s.id,
                identity_revision: s.identity_revision,
                policy_version: s.policy_version,
                created_at_ms: s.created_at_ms,
                issuers: s.issuers,
                groups: s.groups,
                users: s.users,
                principal_attributes: s.principal_attributes,
                schema: s.schema,
                policies: s.policies,
                roles: s.roles,
                conditions: s.conditions,
                resource_labels: s.resource_labels,
                partners: s.partners,
                labeled_resources: s.labeled_resources,
                api_keys: Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Group, PolicyFile, User};
    use std::sync::Arc;

    fn sample() -> Snapshot {
        let mut s = Snapshot::empty(42);
        s.identity_revision = 7;
        s.groups.push(Arc::new(Group {
            id: "g1".into(),
            source: "okta".into(),
            display_name: "Sales".into(),
            ancestors: vec![],
        }));
        s.users.push(Arc::new(User {
            id: "u1".into(),
            source: "okta".into(),
            user_name: "ana@example.com".into(),
            external_id: Some("00u1".into()),
            display_name: "Ana".into(),
            email: Some("ana@example.com".into()),
            active: true,
            department: None,
            groups: vec![0],
            attributes: Default::default(),
            roles: Vec::new(),
            end_at_ms: None,
            linked: None,
        }));
        s.policies.push(PolicyFile {
            name: "a.cedar".into(),
            text: "permit(principal, action, resource);".into(),
        });
        s
    }

    #[test]
    fn round_trip_and_determinism() {
        let s = sample();
        let a = encode(&s);
        assert_eq!(a, encode(&s));
        let (h, back) = decode(&a).expect("decodes");
        assert_eq!(back, s);
        assert_eq!(h.version, 42);
        assert_eq!(h.format, FORMAT_VERSION);
    }

    #[test]
    fn every_single_bit_flip_in_the_body_is_caught() {
        let bytes = encode(&sample());
        for i in HEADER_LEN..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(
                matches!(decode(&b), Err(CodecError::HashMismatch { .. })),
                "flip at {i} not detected"
            );
        }
    }

    #[test]
    fn header_errors() {
        let bytes = encode(&sample());
        assert_eq!(decode(&bytes[..10]), Err(CodecError::Truncated(10)));
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(decode(&b), Err(CodecError::BadMagic));
        let mut b = bytes.clone();
        b[4] = 9;
        assert!(matches!(
            decode(&b),
            Err(CodecError::UnsupportedFormat { found: 9, .. })
        ));
        let mut b = bytes.clone();
        b.push(0);
        assert!(matches!(decode(&b), Err(CodecError::LengthMismatch { .. })));
        let mut b = bytes.clone();
        b[8] = b[8].wrapping_add(1);
        assert!(matches!(
            decode(&b),
            Err(CodecError::VersionMismatch { .. })
        ));
    }

    #[test]
    fn format_4_snapshots_still_decode_without_api_keys() {
        let s = sample();
        assert!(s.api_keys.is_empty());
        let framed = encode(&s);
        // Format 4's body is format 5's without the trailing (empty) key list.
        let body = &framed[HEADER_LEN..framed.len() - 1];
        let mut old = Vec::new();
        old.extend_from_slice(&MAGIC);
        old.extend_from_slice(&PREVIOUS_FORMAT.to_le_bytes());
        old.extend_from_slice(&0u16.to_le_bytes());
        old.extend_from_slice(&s.version.to_le_bytes());
        old.extend_from_slice(&(body.len() as u64).to_le_bytes());
        old.extend_from_slice(&Hash32::of(body).0);
        old.extend_from_slice(body);
        let (header, decoded) = decode(&old).expect("format 4 decodes");
        assert_eq!(header.format, PREVIOUS_FORMAT);
        assert_eq!(decoded, s);
        // A format 5 snapshot relabelled 4 is refused (its key list is left over).
        let mut relabelled = framed.clone();
        relabelled[4..6].copy_from_slice(&PREVIOUS_FORMAT.to_le_bytes());
        assert!(matches!(decode(&relabelled), Err(CodecError::Body(_))));
        // Format 3 is refused.
        old[4..6].copy_from_slice(&3u16.to_le_bytes());
        assert!(matches!(
            decode(&old),
            Err(CodecError::UnsupportedFormat { found: 3, .. })
        ));
    }
}
