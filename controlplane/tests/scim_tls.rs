//! The SCIM listener over TLS, with a source that also requires a client certificate from its
//! own CA (mTLS) and a source that does not.

mod common;

use common::start;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use std::path::Path;

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).expect("ca").pem();
    Ca { params, key, pem }
}

/// A certificate signed by `ca`: (certificate PEM, key PEM).
fn leaf(ca: &Ca, sans: &[&str], client: bool) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("params");
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

fn client(server_ca: &str, identity: Option<&(String, String)>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server_ca.as_bytes()).expect("ca")])
        .timeout(std::time::Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        b = b.identity(
            reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).expect("identity"),
        );
    }
    b.build().expect("client")
}

async fn status(c: &reqwest::Client, url: &str, token: Option<&str>) -> Result<u16, String> {
    let mut req = c.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_per_source_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let server_ca = ca("SCIM server CA");
    let okta_ca = ca("Okta client CA");
    let other_ca = ca("Another CA");
    let (server_cert, server_key) = leaf(&server_ca, &["localhost", "127.0.0.1"], false);
    let okta_client = leaf(&okta_ca, &["okta-client"], true);
    let other_client = leaf(&other_ca, &["intruder"], true);
    let cert = write(d, "server.crt", &server_cert);
    let key = write(d, "server.key", &server_key);
    let okta_ca_file = write(d, "okta-ca.pem", &okta_ca.pem);

    let (token, hash) = portcullis_controlplane::cli::new_token();
    std::fs::create_dir_all(d.join("policies")).expect("mkdir");
    std::fs::write(
        d.join("policies/p.cedar"),
        "permit (principal, action == Action::\"chat\", resource);\n",
    )
    .expect("policy");
    let config = d.join("cp.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "data"
policy_dir = "policies"
[listen]
scim = "127.0.0.1:0"
admin = "127.0.0.1:0"
grpc = "127.0.0.1:0"
[scim_tls]
cert = {cert:?}
key = {key:?}
[[sources]]
name = "okta"
scim_token_sha256 = ["{hash}"]
client_ca = {okta_ca_file:?}
[[sources]]
name = "entra"
scim_token_sha256 = ["{hash}"]
"#
        ),
    )
    .expect("config");
    let cp = start(&config);
    let https = cp.scim.replacen("http://", "https://", 1);
    let okta = format!("{https}/okta/Users");
    let entra = format!("{https}/entra/Users");

    let plain = client(&server_ca.pem, None);
    let with_okta_cert = client(&server_ca.pem, Some(&okta_client));
    let with_other_cert = client(&server_ca.pem, Some(&other_client));

    // The mTLS source: certificate from its CA and token, both required.
    assert_eq!(status(&with_okta_cert, &okta, Some(&token)).await, Ok(200));
    assert_eq!(status(&with_okta_cert, &okta, None).await, Ok(401));
    assert_eq!(
        status(&plain, &okta, Some(&token)).await,
        Ok(401),
        "no client certificate"
    );
    assert!(
        status(&with_other_cert, &okta, Some(&token)).await.is_err(),
        "a certificate from an unknown CA fails the handshake"
    );
    // The TLS-only source works without a client certificate.
    assert_eq!(status(&plain, &entra, Some(&token)).await, Ok(200));
    // Plain HTTP to the TLS listener gets nowhere.
    let cleartext = reqwest::Client::new()
        .get(format!("{}/entra/Users", cp.scim))
        .bearer_auth(&token)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    assert!(!cleartext);
}
