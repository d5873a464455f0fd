//! Starting the real `portcullis-cp` binary for integration tests.
#![allow(dead_code)]

pub mod watch;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ControlPlane {
    pub child: Child,
    pub scim: String,
    pub admin: String,
    pub grpc: String,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `portcullis-cp` binary; returns whether it succeeded and its stdout + stderr.
pub fn cp(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis-cp"))
        .args(args)
        .output()
        .expect("run portcullis-cp");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub fn write_config(dir: &Path, token_hash: &str) -> PathBuf {
    write_config_with(dir, token_hash, "", "")
}

/// A configuration with `top` added before the sources (e.g. a `[scim]` table) and `okta`
/// added to the `okta` source (e.g. `[[sources.extensions]]`).
pub fn write_config_with(dir: &Path, token_hash: &str, top: &str, okta: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("policies")).expect("mkdir");
    std::fs::write(
        dir.join("policies/base.cedar"),
        "permit (principal in Group::\"okta/Sales\", action == Action::\"chat\", resource);\n",
    )
    .expect("policy");
    let path = dir.join("cp.toml");
    std::fs::write(
        &path,
        format!(
            r#"
data_dir = "data"
policy_dir = "policies"
[listen]
scim = "127.0.0.1:0"
admin = "127.0.0.1:0"
grpc = "127.0.0.1:0"
[nodes]
token_sha256 = ["{token_hash}"]
{top}
[[sources]]
name = "okta"
scim_token_sha256 = ["{token_hash}"]
{okta}
[[sources]]
name = "entra"
"#
        ),
    )
    .expect("config");
    path
}

pub fn start(config: &Path) -> ControlPlane {
    let ready = config.with_file_name("ready.json");
    let _ = std::fs::remove_file(&ready);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("cp.log"))
        .expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis-cp"))
        .args(["serve", "--config"])
        .arg(config)
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn portcullis-cp");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "control plane not ready: {}",
            std::fs::read_to_string(config.with_file_name("cp.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    let addrs: Value =
        serde_json::from_slice(&std::fs::read(&ready).expect("ready")).expect("json");
    ControlPlane {
        child,
        scim: format!("http://{}/scim/v2", addrs["scim"].as_str().expect("scim")),
        admin: format!("http://{}", addrs["admin"].as_str().expect("admin")),
        grpc: format!("http://{}", addrs["grpc"].as_str().expect("grpc")),
    }
}

/// A SCIM client for tests: every call returns status, headers and the JSON body.
pub struct Scim {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Scim {
    pub fn new(base: String, token: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            base,
            token: token.to_owned(),
        }
    }

    /// Creates a user `<name>@example.com`; panics unless the answer is 201.
    pub async fn create_user(&self, name: &str) {
        let (status, _, body) = self
            .call(
                reqwest::Method::POST,
                "/Users",
                Some(serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("{name}@example.com"),
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call_with(method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, v)
    }
}
