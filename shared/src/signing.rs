//! Snapshot signatures: the control plane signs every frame it sends, nodes verify before the
//! swap.
//!
//! The signature covers the frame's header (magic, format, versions, body length and the
//! SHA-256 of the body), prefixed with a domain string, rather than the whole frame: the codec
//! checks the body against that hash anyway, so signing the header binds the body at the cost
//! of 100 bytes instead of megabytes. Keys are Ed25519; a key's id is the first 8 bytes of the
//! SHA-256 of its public key, in hex, so a node can trust several keys during a rotation.

use crate::Hash32;
use crate::codec::{DELTA_HEADER_LEN, DELTA_MAGIC, HEADER_LEN, MAGIC};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// Prefixed to what is signed, so a signature over a frame is never valid for anything else.
const DOMAIN: &[u8] = b"portcullis snapshot frame v1\0";

/// Why a frame's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the frame is not signed, and this node requires signatures")]
    Missing,
    #[error("signed by key {0}, which this node does not trust")]
    UnknownKey(String),
    #[error("the signature by key {0} does not verify")]
    Invalid(String),
    #[error("the frame is too short to carry a header")]
    Truncated,
    #[error("not a public key: {0}")]
    BadKey(String),
}

/// The part of a frame that is signed: its header.
fn signed_part(frame: &[u8]) -> Result<&[u8], SignatureError> {
    let len = match frame.get(0..4) {
        Some(m) if m == MAGIC => HEADER_LEN,
        Some(m) if m == DELTA_MAGIC => DELTA_HEADER_LEN,
        _ => return Err(SignatureError::Truncated),
    };
    frame.get(..len).ok_or(SignatureError::Truncated)
}

fn message(frame: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let part = signed_part(frame)?;
    let mut m = Vec::with_capacity(DOMAIN.len() + part.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(part);
    Ok(m)
}

/// The id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Hash32::of(key.as_bytes()).0[..8])
}

/// The control plane's signing key.
#[derive(Clone)]
pub struct FrameSigner {
    key: SigningKey,
    id: String,
}

impl std::fmt::Debug for FrameSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameSigner").field("id", &self.id).finish()
    }
}

impl FrameSigner {
    /// The key whose 32-byte secret seed is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let id = key_id(&key.verifying_key());
        Self { key, id }
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The public key, base64: what nodes are configured to trust.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// Signs other bytes (an evidence manifest): the caller prefixes its own domain string,
    /// so a signature made here is never valid as a frame signature or the reverse.
    pub fn sign_message(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).to_bytes().to_vec()
    }

    /// Signs a frame; returns the signature bytes. A frame that has no header is signed whole
    /// (never happens for frames the codec made).
    pub fn sign(&self, frame: &[u8]) -> Vec<u8> {
        let m = message(frame).unwrap_or_else(|_| frame.to_vec());
        self.key.sign(&m).to_bytes().to_vec()
    }
}

/// The public keys a node accepts frames from.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl TrustedKeys {
    /// Parses base64 public keys (32 bytes each).
    pub fn from_base64<'a>(
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, SignatureError> {
        let mut out = Vec::new();
        for k in keys {
            let bytes = STANDARD
                .decode(k.trim())
                .map_err(|e| SignatureError::BadKey(e.to_string()))?;
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| SignatureError::BadKey("an Ed25519 public key is 32 bytes".into()))?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|e| SignatureError::BadKey(e.to_string()))?;
            out.push((key_id(&key), key));
        }
        Ok(Self { keys: out })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// Checks `signature` over `frame` by the trusted key `key_id`.
    pub fn verify(
        &self,
        frame: &[u8],
        signature: &[u8],
        key_id: &str,
    ) -> Result<(), SignatureError> {
        self.verify_message(&message(frame)?, signature, key_id)
    }

    /// Checks `signature` over bytes signed with [`FrameSigner::sign_message`].
    pub fn verify_message(
        &self,
        message: &[u8],
        signature: &[u8],
        key_id: &str,
    ) -> Result<(), SignatureError> {
        if signature.is_empty() {
            return Err(SignatureError::Missing);
        }
        let key = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, k)| k)
            .ok_or_else(|| SignatureError::UnknownKey(key_id.to_owned()))?;
        let sig = Signature::from_slice(signature)
            .map_err(|_| SignatureError::Invalid(key_id.to_owned()))?;
        key.verify(message, &sig)
            .map_err(|_| SignatureError::Invalid(key_id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::snapshot::Snapshot;

    #[test]
    fn signatures_bind_the_frame_and_the_key() {
        let signer = FrameSigner::from_seed(&[7; 32]);
        let other = FrameSigner::from_seed(&[8; 32]);
        let trusted = TrustedKeys::from_base64([signer.public_key_base64().as_str()]).expect("key");
        let frame = codec::encode(&Snapshot::empty(3));
        let sig = signer.sign(&frame);
        trusted
            .verify(&frame, &sig, signer.key_id())
            .expect("verifies");

        // Any change to the header (which carries the body's hash) breaks it.
        for i in 0..HEADER_LEN {
            let mut f = frame.clone();
            f[i] ^= 1;
            assert!(
                trusted.verify(&f, &sig, signer.key_id()).is_err(),
                "byte {i}"
            );
        }
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert_eq!(
            trusted.verify(&frame, &bad, signer.key_id()),
            Err(SignatureError::Invalid(signer.key_id().into()))
        );
        assert_eq!(
            trusted.verify(&frame, &other.sign(&frame), other.key_id()),
            Err(SignatureError::UnknownKey(other.key_id().into()))
        );
        // Another key's signature presented under the trusted key's id.
        assert!(
            trusted
                .verify(&frame, &other.sign(&frame), signer.key_id())
                .is_err()
        );
        assert_eq!(
            trusted.verify(&frame, &[], signer.key_id()),
            Err(SignatureError::Missing)
        );
        assert!(TrustedKeys::from_base64(["not base64!"]).is_err());
        assert!(TrustedKeys::from_base64(["AAAA"]).is_err());
    }
}
