//! The control plane's snapshot signing key on disk.
//!
//! The key file holds the base64 of a 32-byte Ed25519 seed. When it does not exist, a new key
//! is generated and written with mode 0600, and its public key is written beside it
//! (`<name>.pub`, base64): the value nodes list in `control_plane_keys`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis_shared::signing::FrameSigner;
use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the signing key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: not a signing key (expected the base64 of a 32-byte Ed25519 seed)")]
    Malformed(PathBuf),
}

/// Where the public key of the key at `key_file` is written.
pub fn public_key_path(key_file: &Path) -> PathBuf {
    key_file.with_extension("pub")
}

/// Loads the key at `path`, creating it (and its `.pub`) when missing.
pub fn load_or_create(path: &Path) -> Result<FrameSigner, SigningKeyError> {
    let io = |source| SigningKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let signer = match std::fs::read_to_string(path) {
        Ok(text) => {
            let seed: [u8; 32] = STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| SigningKeyError::Malformed(path.to_owned()))?;
            FrameSigner::from_seed(&seed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(path).map_err(io)?;
            writeln!(f, "{}", STANDARD.encode(seed)).map_err(io)?;
            f.sync_all().map_err(io)?;
            let signer = FrameSigner::from_seed(&seed);
            tracing::info!(path = %path.display(), key_id = signer.key_id(), "created a snapshot signing key");
            signer
        }
        Err(e) => return Err(io(e)),
    };
    let public = public_key_path(path);
    std::fs::write(&public, format!("{}\n", signer.public_key_base64())).map_err(|source| {
        SigningKeyError::Io {
            path: public.clone(),
            source,
        }
    })?;
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/signing.key");
        let a = load_or_create(&path).expect("created");
        let b = load_or_create(&path).expect("reloaded");
        assert_eq!(a.key_id(), b.key_id());
        let public = std::fs::read_to_string(public_key_path(&path)).expect("pub");
        assert_eq!(public.trim(), a.public_key_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "short").expect("write");
        assert!(matches!(
            load_or_create(&path),
            Err(SigningKeyError::Malformed(_))
        ));
    }
}
