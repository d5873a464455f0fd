use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use serde_json::json;

const ISS: &str = "https://idp.example";

struct TestKey {
    encoding: EncodingKey,
    jwk: Jwk,
}

fn es256_key(kid: &str) -> TestKey {
    let sk = SigningKey::random(&mut rand::rngs::OsRng);
    let der = sk.to_pkcs8_der().expect("pkcs8");
    let point = sk.verifying_key().to_encoded_point(false);
    TestKey {
        encoding: EncodingKey::from_ec_der(der.as_bytes()),
        jwk: Jwk {
            kty: "EC".into(),
            kid: Some(kid.into()),
            alg: Some("ES256".into()),
            crv: Some("P-256".into()),
            x: point.x().map(|x| URL_SAFE_NO_PAD.encode(x)),
            y: point.y().map(|y| URL_SAFE_NO_PAD.encode(y)),
            ..Default::default()
        },
    }
}

fn issuer(keys: Vec<Jwk>, claim: PrincipalClaim) -> Issuer {
    Issuer {
        tenant_claim: None,
        source: "okta".into(),
        issuer: ISS.into(),
        audiences: vec!["portcullis".into()],
        algorithms: vec![JwtAlgorithm::ES256],
        keys,
        principal_claim: claim,
        require_email_verified: true,
        leeway_secs: 30,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn sign(key: &TestKey, kid: Option<&str>, claims: Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = kid.map(Into::into);
    jsonwebtoken::encode(&h, &claims, &key.encoding).expect("sign")
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": "portcullis", "exp": now() + 600, "email": "Ana@Example.com", "email_verified": true, "sub": "00u1"})
}

#[test]
fn a_good_token_names_its_principal() {
    let k = es256_key("k1");
    let keys = IssuerKeys::build(
        &[issuer(vec![k.jwk.clone()], PrincipalClaim::EmailToUserName)],
        &[],
    );
    let v = keys.verify(&sign(&k, Some("k1"), claims())).expect("valid");
    assert_eq!(v.source, "okta");
    assert_eq!(v.principal, "Ana@Example.com");
    let keys = IssuerKeys::build(
        &[issuer(vec![k.jwk.clone()], PrincipalClaim::SubToExternalId)],
        &[],
    );
    assert_eq!(
        keys.verify(&sign(&k, None, claims()))
            .expect("valid")
            .principal,
        "00u1"
    );
}

#[test]
fn every_kind_of_bad_token_is_refused_with_its_reason() {
    let k = es256_key("k1");
    let other = es256_key("k1");
    let keys = IssuerKeys::build(
        &[issuer(vec![k.jwk.clone()], PrincipalClaim::EmailToUserName)],
        &[],
    );
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        sign(&k, Some("k1"), c)
    };

    let forged = sign(&other, Some("k1"), claims());
    assert_eq!(keys.verify(&forged), Err(AuthError::BadSignature));
    assert_eq!(
        keys.verify(&with(&|c| c["exp"] = json!(now() - 3600))),
        Err(AuthError::Expired)
    );
    assert_eq!(
        keys.verify(&with(&|c| c["nbf"] = json!(now() + 3600))),
        Err(AuthError::NotYetValid)
    );
    assert_eq!(
        keys.verify(&with(&|c| c["aud"] = json!("someone-else"))),
        Err(AuthError::WrongAudience)
    );
    assert_eq!(
        keys.verify(&with(&|c| c["iss"] = json!("https://evil.example"))),
        Err(AuthError::UnknownIssuer)
    );
    assert_eq!(
        keys.verify(&with(&|c| {
            c.as_object_mut().expect("object").remove("email");
        })),
        Err(AuthError::MissingPrincipalClaim("email"))
    );
    assert_eq!(
        keys.verify(&with(&|c| {
            c.as_object_mut().expect("object").remove("exp");
        }))
        .map_err(|e| e.label()),
        Err("invalid_token")
    );
    assert_eq!(
        keys.verify(&sign(&k, Some("other-kid"), claims())),
        Err(AuthError::UnknownKey)
    );
    assert_eq!(
        keys.verify(&with(&|c| c["email_verified"] = json!(false))),
        Err(AuthError::EmailNotVerified)
    );
    assert_eq!(
        keys.verify(&with(&|c| {
            c.as_object_mut().expect("object").remove("email_verified");
        })),
        Err(AuthError::EmailNotVerified)
    );

    // alg: none, with an otherwise valid payload.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    assert_eq!(
        keys.verify(&format!("{header}.{payload}.")),
        Err(AuthError::Unsigned)
    );

    // HS256 signed with the public key material as the secret: the classic confusion attack.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(k.jwk.x.as_deref().expect("x").as_bytes()),
    )
    .expect("sign");
    assert!(matches!(
        keys.verify(&hs),
        Err(AuthError::AlgorithmNotAllowed(_))
    ));

    assert!(matches!(
        keys.verify("not-a-jwt"),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(keys.verify("a.b.c"), Err(AuthError::Malformed(_))));
}

#[test]
fn leeway_tolerates_small_clock_skew() {
    let k = es256_key("k1");
    let keys = IssuerKeys::build(
        &[issuer(vec![k.jwk.clone()], PrincipalClaim::EmailToUserName)],
        &[],
    );
    let mut c = claims();
    c["exp"] = json!(now() - 10);
    assert!(
        keys.verify(&sign(&k, Some("k1"), c)).is_ok(),
        "10s past exp is within 30s leeway"
    );
}

#[test]
fn rs256_tokens_verify_with_rsa_jwks() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let sk = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("rsa key");
    let der = sk.to_pkcs1_der().expect("der");
    let jwk = Jwk {
        kty: "RSA".into(),
        kid: Some("r1".into()),
        n: Some(URL_SAFE_NO_PAD.encode(sk.n().to_bytes_be())),
        e: Some(URL_SAFE_NO_PAD.encode(sk.e().to_bytes_be())),
        ..Default::default()
    };
    let mut iss = issuer(vec![jwk], PrincipalClaim::EmailToUserName);
    iss.algorithms = vec![JwtAlgorithm::RS256];
    let keys = IssuerKeys::build(&[iss], &[]);
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("r1".into());
    let token = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_rsa_der(der.as_bytes()))
        .expect("sign");
    assert!(keys.verify(&token).is_ok());
    // The issuer is pinned to RS256: an ES256 token from the same issuer is refused outright.
    let k = es256_key("r1");
    assert!(matches!(
        keys.verify(&sign(&k, Some("r1"), claims())),
        Err(AuthError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn mapped_claims_are_typed_and_mistyped_ones_left_out() {
    use portcullis_shared::snapshot::{AttrKind, AttrValue, AttributeDecl};
    let k = es256_key("k1");
    let mut clearance = AttributeDecl::new("clearance", AttrKind::Long, false);
    clearance.claim = Some("clr".into());
    let mut wall = AttributeDecl::new("wall", AttrKind::String, false);
    wall.claim = Some("wall".into());
    let mut groups = AttributeDecl::new("teams", AttrKind::String, true);
    groups.claim = Some("teams".into());
    let attrs = [
        AttributeDecl::new("dept", AttrKind::String, false),
        clearance,
        wall,
        groups,
    ];
    let keys = IssuerKeys::build(
        &[issuer(vec![k.jwk.clone()], PrincipalClaim::EmailToUserName)],
        &attrs,
    );
    let mut c = claims();
    c["clr"] = json!("4");
    c["wall"] = json!(7);
    c["teams"] = json!(["red", "blue", "red"]);
    let v = keys.verify(&sign(&k, Some("k1"), c)).expect("valid");
    assert_eq!(
        v.claims,
        vec![
            (1, AttrValue::Long(4)),
            (
                3,
                AttrValue::Set(vec![
                    AttrValue::String("red".into()),
                    AttrValue::String("blue".into())
                ])
            )
        ],
        "a number is not a string: the wall claim is left out"
    );
}

#[test]
fn verified_tokens_are_cached_only_inside_their_window() {
    let k = es256_key("k1");
    let keys = IssuerKeys::build(
        &[issuer(vec![k.jwk.clone()], PrincipalClaim::EmailToUserName)],
        &[],
    );
    let mut c = claims();
    c["nbf"] = json!(now() - 5);
    let token = sign(&k, Some("k1"), c.clone());
    let first = keys.verify(&token).expect("valid");
    let t = now() as u64;
    // Cached for its window (nbf - leeway .. exp + leeway), not outside it.
    assert_eq!(keys.cache.get(&token, t), Some(first.clone()));
    assert_eq!(keys.verify(&token), Ok(first));
    assert_eq!(keys.cache.get(&token, t + 600 + 30), None);
    assert_eq!(keys.cache.get(&token, t - 5 - 31), None);

    // A refusal is never cached: the same forged token is refused every time.
    let mut forged = token.clone();
    forged.truncate(token.len() - 4);
    forged.push_str("AAAA");
    for _ in 0..2 {
        assert_eq!(keys.verify(&forged), Err(AuthError::BadSignature));
    }
    assert_eq!(keys.cache.get(&forged, t), None);

    // Other keys (a new snapshot's) know nothing of the first keys' tokens.
    let other = IssuerKeys::build(
        &[issuer(
            vec![es256_key("k1").jwk],
            PrincipalClaim::EmailToUserName,
        )],
        &[],
    );
    assert_eq!(other.verify(&token), Err(AuthError::BadSignature));

    // An expired token is not answered from the cache, and is refused as expired.
    let mut old = claims();
    old["exp"] = json!(now() - 120);
    assert_eq!(
        keys.verify(&sign(&k, Some("k1"), old)),
        Err(AuthError::Expired)
    );
}

#[test]
fn the_cache_stays_bounded() {
    let cache = TokenCache::default();
    let v = Arc::new(Verified {
        source: "okta".into(),
        claim: PrincipalClaim::EmailToUserName,
        principal: "a@example.com".into(),
        claims: Vec::new(),
        tenant: None,
        audiences: Vec::new(),
        scopes: Vec::new(),
        api_key: None,
    });
    for i in 0..(CACHE_SHARDS * CACHE_PER_SHARD * 3) {
        cache.put(&format!("token-{i}"), &v, (0, u64::MAX), 1);
    }
    let total: usize = cache
        .shards
        .iter()
        .map(|s| s.lock().expect("lock").tokens.len())
        .sum();
    assert!(total <= CACHE_SHARDS * CACHE_PER_SHARD, "{total}");
    let last = format!("token-{}", CACHE_SHARDS * CACHE_PER_SHARD * 3 - 1);
    assert_eq!(cache.get(&last, 1), Some(v), "the newest token is kept");
}

#[test]
fn api_keys_are_checked_by_id_hash_and_expiry() {
    use portcullis_shared::Hash32;
    use portcullis_shared::engine::Engine;
    use portcullis_shared::snapshot::{ApiKey, Snapshot};
    let text = "pcul_0123456789abcdef_c2VjcmV0LXNlY3JldC1zZWNyZXQ";
    let expired = "pcul_fedcba9876543210_b2xkLW9sZC1vbGQ";
    let mut s = Snapshot::empty(1);
    s.api_keys = vec![
        ApiKey {
            id: "0123456789abcdef".into(),
            hash: Hash32::of(text.as_bytes()),
            source: "service-accounts".into(),
            user_id: "sa-1".into(),
            expires_at_ms: None,
        },
        ApiKey {
            id: "fedcba9876543210".into(),
            hash: Hash32::of(expired.as_bytes()),
            source: "service-accounts".into(),
            user_id: "sa-1".into(),
            expires_at_ms: Some(1_000),
        },
    ];
    let engine = Engine::new(s).expect("engine");
    let v = verify_api_key(&engine, text, 5_000).expect("valid");
    assert_eq!(
        (v.source.as_str(), v.principal.as_str(), v.claim),
        ("service-accounts", "sa-1", PrincipalClaim::ScimId)
    );
    assert_eq!(v.api_key.as_deref(), Some("0123456789abcdef"));
    // Another secret under a real id, an unknown id: the same refusal.
    let forged = "pcul_0123456789abcdef_Zm9yZ2Vk";
    assert_eq!(
        verify_api_key(&engine, forged, 5_000),
        Err(AuthError::UnknownApiKey)
    );
    let unknown = "pcul_1111111111111111_c2VjcmV0";
    assert_eq!(
        verify_api_key(&engine, unknown, 5_000),
        Err(AuthError::UnknownApiKey)
    );
    assert!(
        verify_api_key(&engine, expired, 999).is_ok(),
        "live until it expires"
    );
    assert_eq!(
        verify_api_key(&engine, expired, 1_000),
        Err(AuthError::ApiKeyExpired)
    );
    assert!(matches!(
        verify_api_key(&engine, "pcul_short_x", 0),
        Err(AuthError::Malformed(_))
    ));
}
