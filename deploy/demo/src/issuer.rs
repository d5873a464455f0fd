//! A demo OIDC token issuer: signing keys, their JWKS, and minted ID-token-shaped JWTs.
//!
//! Stands in for the customer's IdP in the quickstart and the end-to-end tests. Keys are
//! generated on first use and kept (private key PEM mode 0600) so tokens printed by an earlier
//! quickstart run keep working.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde_json::{Value, json};
use std::path::Path;

/// The issuer's identity and keys.
pub struct DemoIssuer {
    pub issuer: String,
    pub audience: String,
    es256: (String, EncodingKey, Value),
    rs256: Option<(String, EncodingKey, Value)>,
}

impl std::fmt::Debug for DemoIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoIssuer")
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl DemoIssuer {
    /// Loads `dir/issuer-es256.pem` (creating it if absent).
    pub fn load_or_create(dir: &Path, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let pem_path = dir.join("issuer-es256.pem");
        let key = if pem_path.exists() {
            let pem = std::fs::read_to_string(&pem_path)
                .with_context(|| format!("reading {}", pem_path.display()))?;
            SigningKey::from_pkcs8_pem(&pem).context("parsing the demo issuer key")?
        } else {
            let key = SigningKey::random(&mut rand::rngs::OsRng);
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .context("encoding the demo issuer key")?;
            write_private(&pem_path, pem.as_bytes())?;
            key
        };
        Ok(Self::from_es256(key, issuer, audience))
    }

    /// A fresh issuer with an ES256 key and, if `with_rsa`, an RS256 key too.
    pub fn generate(issuer: &str, audience: &str, with_rsa: bool) -> anyhow::Result<Self> {
        let mut me = Self::from_es256(SigningKey::random(&mut rand::rngs::OsRng), issuer, audience);
        if with_rsa {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let sk = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                .context("generating RSA key")?;
            let der = sk.to_pkcs1_der().context("encoding RSA key")?;
            let kid = "demo-rs256".to_owned();
            let jwk = json!({
                "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                "n": URL_SAFE_NO_PAD.encode(sk.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(sk.e().to_bytes_be()),
            });
            me.rs256 = Some((kid, EncodingKey::from_rsa_der(der.as_bytes()), jwk));
        }
        Ok(me)
    }

    fn from_es256(key: SigningKey, issuer: &str, audience: &str) -> Self {
        let point = key.verifying_key().to_encoded_point(false);
        let kid = "demo-es256".to_owned();
        let jwk = json!({
            "kty": "EC", "kid": kid, "alg": "ES256", "use": "sig", "crv": "P-256",
            "x": point.x().map(|x| URL_SAFE_NO_PAD.encode(x)),
            "y": point.y().map(|y| URL_SAFE_NO_PAD.encode(y)),
        });
        let der = key
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            es256: (kid, EncodingKey::from_ec_der(&der), jwk),
            rs256: None,
        }
    }

    /// The public JWKS document.
    pub fn jwks(&self) -> Value {
        let mut keys = vec![self.es256.2.clone()];
        if let Some((_, _, jwk)) = &self.rs256 {
            keys.push(jwk.clone());
        }
        json!({ "keys": keys })
    }

    /// The standard claims for `email`, valid for `ttl_secs`.
    pub fn claims(&self, email: &str, ttl_secs: i64) -> Value {
        let now = now();
        json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": format!("sub-{email}"),
            "email": email,
            "email_verified": true,
            "iat": now,
            "nbf": now - 5,
            "exp": now + ttl_secs,
        })
    }

    /// An ES256 token for `email`.
    pub fn mint(&self, email: &str, ttl_secs: i64) -> String {
        self.sign(Algorithm::ES256, &self.claims(email, ttl_secs))
    }

    /// Signs arbitrary claims with the ES256 key, or the RS256 key for `Algorithm::RS256`.
    /// Panics only if asked for RS256 without an RSA key (a test setup error).
    pub fn sign(&self, alg: Algorithm, claims: &Value) -> String {
        let (kid, key) = match alg {
            Algorithm::RS256 => {
                let (kid, key, _) = self
                    .rs256
                    .as_ref()
                    .unwrap_or_else(|| panic!("this demo issuer has no RS256 key"));
                (kid, key)
            }
            _ => (&self.es256.0, &self.es256.1),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, key).unwrap_or_default()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Writes a secret file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
