//! A local Portcullis deployment for tests and harnesses: demo upstreams, one control plane,
//! N data-plane nodes, the demo directory pushed over SCIM.

use crate::proc::{Proc, bin, free_addr};
use anyhow::{Context, bail};
use portcullis_demo::configs::{self, ControlPlaneAddrs};
use portcullis_demo::identities::{self, DemoIds};
use portcullis_demo::issuer::DemoIssuer;
use portcullis_demo::scim::ScimClient;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The demo issuer's `iss`.
pub const ISSUER: &str = "https://idp.test.portcullis.invalid";

/// How to build the cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub nodes: usize,
    pub max_body_bytes: usize,
    /// Also generate an RS256 key for the demo issuer.
    pub rsa: bool,
    /// mTLS between the planes: a CA issues the control plane's certificate and one per node
    /// naming the node's id.
    pub mtls: bool,
    /// Appended to the control plane's configuration (e.g. `[[siem]]` sinks).
    pub cp_extra_toml: Option<String>,
    /// Extra settings in every node's `[limits]` (e.g. `body_read_secs = 1`).
    pub node_limits: Option<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: 2,
            max_body_bytes: 1 << 20,
            rsa: true,
            mtls: false,
            cp_extra_toml: None,
            node_limits: None,
        }
    }
}

/// The name on the control plane's snapshot-listener certificate.
pub const CP_TLS_NAME: &str = "portcullis-cp.test";

/// A certificate authority for the planes' mTLS.
pub struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    /// The CA certificate, PEM.
    pub pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    pub fn new() -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Portcullis test CA");
        let pem = params.self_signed(&key)?.pem();
        Ok(Self { params, key, pem })
    }

    /// A certificate for DNS name `name`: `(certificate PEM, key PEM)`.
    pub fn issue(&self, name: &str, client: bool) -> anyhow::Result<(String, String)> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// One data-plane node.
#[derive(Debug)]
pub struct Node {
    pub id: String,
    pub proc: Option<Proc>,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    /// Trust this public key instead of the control plane's (to test signature rejection).
    pub trusted_key: Option<String>,
    /// With mTLS: the name its certificate is issued for, when not its id.
    pub cert_name: Option<String>,
    /// Appended to its configuration (more `[[routes]]`, for instance).
    pub extra_toml: Option<String>,
}

/// How a node added by [`Cluster::add_node_with`] differs from a normal one.
#[derive(Debug, Clone, Default)]
pub struct NodeSetup {
    /// Trust this public key instead of the control plane's signing key.
    pub trusted_key: Option<String>,
    /// With mTLS: issue its certificate for this name instead of its id.
    pub cert_name: Option<String>,
    /// Appended to its configuration; `{upstream}` is replaced by the demo upstream's address.
    pub extra_toml: Option<String>,
}

/// The deployment. Dropping it kills every process and deletes its directory.
#[derive(Debug)]
pub struct Cluster {
    pub issuer: DemoIssuer,
    pub scim_token: String,
    /// A SCIM token of a second configured source, `other`.
    pub other_scim_token: String,
    /// The token nodes present to the control plane.
    pub node_token: String,
    pub upstream: SocketAddr,
    pub cp_addrs: ControlPlaneAddrs,
    pub cp: Option<Proc>,
    pub nodes: Vec<Node>,
    pub ids: DemoIds,
    pub http: reqwest::Client,
    pub policy_dir: PathBuf,
    pub cp_config: PathBuf,
    pub options: ClusterOptions,
    /// The mTLS certificate authority, when the cluster uses mTLS.
    pub ca: Option<TestCa>,
    _upstream_proc: Proc,
    // Last: removed after the processes above are killed.
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts everything and waits until every node enforces the demo directory.
    pub async fn start(options: ClusterOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-e2e-")
            .tempdir()?;
        let root = dir.path().to_owned();
        let logs = root.join("logs");
        std::fs::create_dir_all(&logs)?;

        let issuer = DemoIssuer::generate(ISSUER, configs::AUDIENCE, options.rsa)?;
        let jwks = root.join("jwks.json");
        std::fs::write(&jwks, serde_json::to_vec(&issuer.jwks())?)?;
        let (scim_token, scim_hash) = portcullis_controlplane::cli::new_token();
        let (other_scim_token, other_hash) = portcullis_controlplane::cli::new_token();
        let (node_token, node_hash) = portcullis_controlplane::cli::new_token();

        let policy_dir = root.join("policies");
        std::fs::create_dir_all(&policy_dir)?;
        for (name, text) in configs::POLICIES {
            std::fs::write(policy_dir.join(name), text)?;
        }

        let upstream = free_addr();
        let upstream_proc = Proc::spawn(
            "demo-upstream",
            &bin("portcullis-demo-upstream")?,
            &[
                "--listen".into(),
                upstream.to_string(),
                "--openai-key".into(),
                configs::UPSTREAM_OPENAI_KEY.into(),
                "--anthropic-key".into(),
                configs::UPSTREAM_ANTHROPIC_KEY.into(),
            ],
            logs.join("demo-upstream.log"),
        )?;

        let cp_addrs = ControlPlaneAddrs {
            scim: free_addr(),
            admin: free_addr(),
            grpc: free_addr(),
        };
        let bindings = root.join("bindings.toml");
        std::fs::write(&bindings, configs::BINDINGS)?;
        let mut cp_toml = configs::control_plane_toml(
            &root.join("cp-data"),
            &policy_dir,
            &bindings,
            cp_addrs,
            ISSUER,
            &jwks,
            &scim_hash,
            &node_hash,
        );
        cp_toml.push_str(&format!(
            "\n[[sources]]\nname = \"other\"\nscim_token_sha256 = [\"{other_hash}\"]\n"
        ));
        if let Some(extra) = &options.cp_extra_toml {
            cp_toml.push('\n');
            cp_toml.push_str(extra);
        }
        let ca = if options.mtls {
            let ca = TestCa::new()?;
            let (cert, key) = ca.issue(CP_TLS_NAME, false)?;
            let dir = root.join("tls");
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("ca.pem"), &ca.pem)?;
            std::fs::write(dir.join("grpc.pem"), cert)?;
            std::fs::write(dir.join("grpc-key.pem"), key)?;
            cp_toml.push_str(&format!(
                "\n[nodes.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n",
                dir.join("grpc.pem").display().to_string(),
                dir.join("grpc-key.pem").display().to_string(),
                dir.join("ca.pem").display().to_string(),
            ));
            Some(ca)
        } else {
            None
        };
        let cp_config = root.join("cp.toml");
        std::fs::write(&cp_config, cp_toml)?;

        let mut cluster = Self {
            issuer,
            scim_token,
            other_scim_token,
            node_token,
            upstream,
            cp_addrs,
            cp: None,
            nodes: Vec::new(),
            ids: DemoIds::default(),
            http: portcullis_demo::http_client(Duration::from_secs(10)),
            policy_dir,
            cp_config,
            options: options.clone(),
            ca,
            _upstream_proc: upstream_proc,
            dir,
        };
        cluster
            .wait_http(
                "demo upstream",
                &format!("http://{upstream}/_demo/requests"),
                Duration::from_secs(20),
            )
            .await?;
        cluster.start_control_plane().await?;
        cluster.ids = identities::seed(&cluster.scim()).await?;
        for i in 0..options.nodes {
            cluster.add_node(&format!("edge-{}", i + 1)).await?;
        }
        let revision = cluster.cp_revision().await?;
        for i in 0..cluster.nodes.len() {
            cluster
                .wait_node_revision(i, revision, Duration::from_secs(30))
                .await?;
        }
        Ok(cluster)
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// A SCIM client for the demo source.
    pub fn scim(&self) -> ScimClient {
        ScimClient::new(
            format!("http://{}/scim/v2/{}", self.cp_addrs.scim, configs::SOURCE),
            &self.scim_token,
        )
    }

    /// A fresh ES256 token for a demo user.
    pub fn token(&self, user: &str) -> String {
        self.issuer.mint(user, 600)
    }

    /// Starts (or restarts) the control plane on its fixed addresses and data directory.
    pub async fn start_control_plane(&mut self) -> anyhow::Result<()> {
        let log = self.root().join("logs/controlplane.log");
        self.cp = Some(Proc::spawn(
            "controlplane",
            &bin("portcullis-cp")?,
            &[
                "serve".into(),
                "--config".into(),
                self.cp_config.display().to_string(),
            ],
            log,
        )?);
        let url = format!("http://{}/readyz", self.cp_addrs.admin);
        self.wait_http("control plane", &url, Duration::from_secs(60))
            .await
    }

    /// SIGKILLs the control plane.
    pub fn kill_control_plane(&mut self) {
        if let Some(mut p) = self.cp.take() {
            p.kill();
        }
    }

    /// Adds a node with a fresh state directory and starts it; waits until its admin listener
    /// answers (not until it holds a snapshot).
    pub async fn add_node(&mut self, id: &str) -> anyhow::Result<usize> {
        self.add_node_with(id, NodeSetup::default()).await
    }

    /// Adds a node set up as `setup` says and starts it.
    pub async fn add_node_with(&mut self, id: &str, setup: NodeSetup) -> anyhow::Result<usize> {
        let state_dir = self.root().join(id);
        let node = Node {
            id: id.to_owned(),
            proc: None,
            proxy: free_addr(),
            admin: free_addr(),
            config: self.root().join(format!("{id}.toml")),
            state_dir,
            trusted_key: setup.trusted_key,
            cert_name: setup.cert_name,
            extra_toml: setup.extra_toml,
        };
        self.nodes.push(node);
        let i = self.nodes.len() - 1;
        self.start_node(i).await?;
        Ok(i)
    }

    /// (Re)starts node `i`, retrying on fresh ports if its ports were taken meanwhile.
    pub async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let dp = bin("portcullis-dp")?;
        for attempt in 0..3 {
            let n = &mut self.nodes[i];
            if attempt > 0 {
                n.proxy = free_addr();
                n.admin = free_addr();
            }
            let keys = match &n.trusted_key {
                Some(k) => {
                    let path = self.dir.path().join(format!("{}-trusts.pub", n.id));
                    std::fs::write(&path, k)?;
                    path
                }
                None => self.dir.path().join("cp-data/signing.pub"),
            };
            let mut text = configs::node_toml(
                &n.id,
                &n.state_dir,
                self.cp_addrs.grpc,
                &self.node_token,
                &keys,
                n.proxy,
                n.admin,
                self.upstream,
                self.options.max_body_bytes,
            );
            if let Some(limits) = &self.options.node_limits {
                text = text.replacen("[limits]\n", &format!("[limits]\n{limits}\n"), 1);
            }
            if let Some(ca) = &self.ca {
                let name = n.cert_name.as_deref().unwrap_or(&n.id);
                let (cert, key) = ca.issue(name, true)?;
                let dir = self.dir.path().join("tls");
                let (cert_path, key_path) = (
                    dir.join(format!("{}.pem", n.id)),
                    dir.join(format!("{}-key.pem", n.id)),
                );
                std::fs::write(&cert_path, cert)?;
                std::fs::write(&key_path, key)?;
                text = text.replace("control_plane = \"http://", "control_plane = \"https://");
                text.push_str(&format!(
                    "\n[control_plane_tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\nserver_name = \"{CP_TLS_NAME}\"\n",
                    dir.join("ca.pem").display().to_string(),
                    cert_path.display().to_string(),
                    key_path.display().to_string(),
                ));
            }
            if let Some(extra) = &n.extra_toml {
                text.push('\n');
                text.push_str(&extra.replace("{upstream}", &self.upstream.to_string()));
            }
            std::fs::write(&n.config, text)?;
            let log = self.dir.path().join(format!("logs/{}.log", n.id));
            n.proc = Some(Proc::spawn(
                &n.id,
                &dp,
                &["--config".into(), n.config.display().to_string()],
                log,
            )?);
            let url = format!("http://{}/healthz", n.admin);
            let what = format!("node {}", n.id);
            if self
                .wait_http(&what, &url, Duration::from_secs(30))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(p) = self.nodes[i].proc.as_mut() {
                p.kill();
            }
        }
        bail!("node {} did not start; see its log", self.nodes[i].id)
    }

    /// SIGKILLs node `i`.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.kill();
        }
    }

    /// The control plane's identity revision.
    pub async fn cp_revision(&self) -> anyhow::Result<u64> {
        let v = self
            .get_json(&format!("http://{}/admin/v1/status", self.cp_addrs.admin))
            .await?;
        v["identity_revision"]
            .as_u64()
            .context("status has no identity_revision")
    }

    /// `GET /status` of node `i`.
    pub async fn node_status(&self, i: usize) -> anyhow::Result<Value> {
        self.get_json(&format!("http://{}/status", self.nodes[i].admin))
            .await
    }

    /// Waits until node `i` holds a snapshot with at least `revision`.
    pub async fn wait_node_revision(
        &self,
        i: usize,
        revision: u64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(s) = self.node_status(i).await
                && s["snapshot"]["identity_revision"].as_u64().unwrap_or(0) >= revision
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} did not reach identity revision {revision} within {timeout:?}; log:\n{}",
                    self.nodes[i].id,
                    self.nodes[i]
                        .proc
                        .as_ref()
                        .map(|p| p.log_tail(30))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every decision record the control plane stored matching `query` (a query string for
    /// `GET /admin/v1/decisions`), following every page.
    pub async fn stored_decisions(&self, query: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .get_json(&format!(
                    "http://{}/admin/v1/decisions?limit=1000&{query}{after}",
                    self.cp_addrs.admin
                ))
                .await?;
            out.extend(page["decisions"].as_array().into_iter().flatten().cloned());
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => return Ok(out),
            }
        }
    }

    pub async fn get_json(&self, url: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !r.status().is_success() {
            bail!("GET {url}: {}", r.status());
        }
        Ok(r.json().await?)
    }

    async fn wait_http(&self, what: &str, url: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = self
                .http
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{what} not ready at {url} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Polls `check` every 5 ms until it returns true; returns how long that took.
pub async fn eventually<F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    let mut last_err = None;
    while started.elapsed() < timeout {
        match check().await {
            Ok(true) => return Ok(started.elapsed()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("{what}: not true within {timeout:?} (last error: {last_err:?})")
}
