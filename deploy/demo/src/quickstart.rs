//! `portcullis-quickstart`: the whole product on this machine with one command.
//!
//! Brings up the demo upstreams, the control plane (SQLite under `--dir`), and one data-plane
//! node, each as its own process (this binary re-executes itself as each part), pushes the
//! demo directory through SCIM the way an IdP would, waits until the node enforces it, and
//! prints ready-to-paste `curl` commands. A second run on the same directory continues where
//! the first stopped. Ctrl-C stops everything.

use crate::configs::{self, ControlPlaneAddrs};
use crate::identities;
use crate::issuer::{DemoIssuer, write_private};
use crate::scim::ScimClient;
use anyhow::{Context, bail};
use clap::Parser;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const ISSUER: &str = "https://idp.demo.portcullis.invalid";

#[derive(Debug, Parser)]
#[command(
    name = "portcullis-quickstart",
    about = "Run Portcullis locally: control plane, one edge node, demo upstreams and identities"
)]
struct Args {
    /// Where state, configuration, keys and logs live.
    #[arg(long, default_value = ".quickstart")]
    dir: PathBuf,
    /// First of six consecutive loopback ports to use.
    #[arg(long, default_value_t = 7400)]
    base_port: u16,
    /// Start from scratch (deletes --dir first).
    #[arg(long)]
    fresh: bool,
}

/// Entry point: dispatches to a part when re-executed, else runs the quickstart.
pub fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let _argv0 = args.next();
    let first = args.next();
    let rest: Vec<OsString> = args.collect();
    let with = |name: &str| std::iter::once(OsString::from(name)).chain(rest.clone());
    match first.as_ref().and_then(|a| a.to_str()) {
        Some("__controlplane") => portcullis_controlplane::cli::main_from(with("portcullis-cp")),
        Some("__dataplane") => portcullis_dataplane::cli::main_from(with("portcullis-dp")),
        Some("__upstream") => crate::upstream::main_from(with("portcullis-demo-upstream")),
        _ => {
            let args = Args::parse_from(std::env::args_os());
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("\nerror: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

struct Ports {
    edge: SocketAddr,
    edge_admin: SocketAddr,
    cp: ControlPlaneAddrs,
    upstream: SocketAddr,
}

fn ports(base: u16) -> anyhow::Result<Ports> {
    let addr = |i: u16| SocketAddr::from(([127, 0, 0, 1], base + i));
    for i in 0..6 {
        TcpListener::bind(addr(i)).with_context(|| {
            format!(
                "port {} is in use; stop what uses it or pass --base-port",
                base + i
            )
        })?;
    }
    Ok(Ports {
        edge: addr(0),
        edge_admin: addr(1),
        cp: ControlPlaneAddrs {
            scim: addr(2),
            admin: addr(3),
            grpc: addr(4),
        },
        upstream: addr(5),
    })
}

/// Children are killed when dropped, so an error or Ctrl-C never leaves strays.
struct Parts {
    children: Vec<(&'static str, Child)>,
    logs: PathBuf,
}

impl Parts {
    fn spawn(&mut self, name: &'static str, args: &[&str]) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("locating this executable")?;
        let log = std::fs::File::create(self.logs.join(format!("{name}.log")))?;
        let child = Command::new(exe)
            .args(args)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        self.children.push((name, child));
        Ok(())
    }

    /// Fails if a part has exited.
    fn check(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the {name} exited ({status}); see {}",
                    self.logs.join(format!("{name}.log")).display()
                );
            }
        }
        Ok(())
    }
}

async fn wait_for(
    parts: &mut Parts,
    what: &str,
    url: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let client = crate::http_client(Duration::from_secs(5));
    let deadline = Instant::now() + timeout;
    loop {
        parts.check()?;
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return Ok(r.text().await.unwrap_or_default());
        }
        if Instant::now() > deadline {
            bail!("the {what} did not become ready within {timeout:?} ({url})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.fresh && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("removing {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(args.dir.join("logs"))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let p = ports(args.base_port)?;

    let issuer = DemoIssuer::load_or_create(&dir, ISSUER, configs::AUDIENCE)?;
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, serde_json::to_vec_pretty(&issuer.jwks())?)?;

    let token_path = dir.join("scim-token");
    let scim_token = match std::fs::read_to_string(&token_path) {
        Ok(t) => t.trim().to_owned(),
        Err(_) => {
            let (token, _) = portcullis_controlplane::cli::new_token();
            write_private(&token_path, token.as_bytes())?;
            token
        }
    };
    let token_hash = portcullis_shared::Hash32::of(scim_token.as_bytes()).to_hex();
    let node_token_path = dir.join("node-token");
    let node_token = match std::fs::read_to_string(&node_token_path) {
        Ok(t) => t.trim().to_owned(),
        Err(_) => {
            let (token, _) = portcullis_controlplane::cli::new_token();
            write_private(&node_token_path, token.as_bytes())?;
            token
        }
    };
    let node_token_hash = portcullis_shared::Hash32::of(node_token.as_bytes()).to_hex();

    let policy_dir = dir.join("policies");
    if !policy_dir.exists() {
        std::fs::create_dir_all(&policy_dir)?;
        for (name, text) in configs::POLICIES {
            std::fs::write(policy_dir.join(name), text)?;
        }
    }
    let bindings = dir.join("bindings.toml");
    if !bindings.exists() {
        std::fs::write(&bindings, configs::BINDINGS)?;
    }
    let cp_toml = dir.join("cp.toml");
    std::fs::write(
        &cp_toml,
        configs::control_plane_toml(
            &dir.join("cp-data"),
            &policy_dir,
            &bindings,
            p.cp,
            ISSUER,
            &jwks,
            &token_hash,
            &node_token_hash,
        ),
    )?;
    let dp_toml = dir.join("dp.toml");
    std::fs::write(
        &dp_toml,
        configs::node_toml(
            "edge-1",
            &dir.join("edge-1"),
            p.cp.grpc,
            &node_token,
            &dir.join("cp-data/signing.pub"),
            p.edge,
            p.edge_admin,
            p.upstream,
            4 << 20,
        ),
    )?;

    let mut parts = Parts {
        children: Vec::new(),
        logs: dir.join("logs"),
    };
    eprintln!(
        "starting the demo upstreams, the control plane and one edge node (logs in {})",
        parts.logs.display()
    );
    parts.spawn(
        "demo-upstream",
        &[
            "__upstream",
            "--listen",
            &p.upstream.to_string(),
            "--openai-key",
            configs::UPSTREAM_OPENAI_KEY,
            "--anthropic-key",
            configs::UPSTREAM_ANTHROPIC_KEY,
        ],
    )?;
    parts.spawn(
        "controlplane",
        &["__controlplane", "serve", "--config", &path(&cp_toml)],
    )?;
    wait_for(
        &mut parts,
        "control plane",
        &format!("http://{}/readyz", p.cp.admin),
        Duration::from_secs(60),
    )
    .await?;

    let scim = ScimClient::new(
        format!("http://{}/scim/v2/{}", p.cp.scim, configs::SOURCE),
        &scim_token,
    );
    let ids = identities::seed(&scim)
        .await
        .context("pushing the demo identities over SCIM")?;
    eprintln!(
        "demo identities pushed over SCIM: {} users, {} groups",
        ids.users.len(),
        ids.groups.len()
    );

    parts.spawn("edge-1", &["__dataplane", "--config", &path(&dp_toml)])?;
    let status_url = format!("http://{}/admin/v1/status", p.cp.admin);
    let cp_status: serde_json::Value = serde_json::from_str(
        &wait_for(
            &mut parts,
            "control plane",
            &status_url,
            Duration::from_secs(10),
        )
        .await?,
    )?;
    let revision = cp_status["identity_revision"].as_u64().unwrap_or(0);
    let node_status = format!("http://{}/status", p.edge_admin);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s: serde_json::Value = serde_json::from_str(
            &wait_for(
                &mut parts,
                "edge node",
                &node_status,
                Duration::from_secs(60),
            )
            .await?,
        )?;
        if s["snapshot"]["identity_revision"].as_u64().unwrap_or(0) >= revision {
            break;
        }
        if Instant::now() > deadline {
            bail!("the edge node did not receive the demo identities in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let tokens = dir.join("tokens.env");
    let mut env = String::from(
        "# Demo tokens (valid 12 hours) and the SCIM token. Load with: source this file\n",
    );
    for (name, user) in [
        ("ALICE", "alice@example.com"),
        ("BOB", "bob@example.com"),
        ("CAROL", "carol@example.com"),
    ] {
        env.push_str(&format!(
            "export {name}='{}'\n",
            issuer.mint(user, 12 * 3600)
        ));
    }
    env.push_str(&format!("export SCIM_TOKEN='{scim_token}'\n"));
    env.push_str(&format!(
        "export ALICE_ID='{}'\n",
        ids.user("alice@example.com")
    ));
    write_private(&tokens, env.as_bytes())?;

    print_banner(&p, &tokens);
    tokio::select! {
        _ = stop_signal() => eprintln!("\nstopping"),
        e = watch(&mut parts) => eprintln!("\n{e:#}"),
    }
    // Dropping `parts` kills every child.
    Ok(())
}

/// Ctrl-C, SIGTERM or SIGHUP.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn watch(parts: &mut Parts) -> anyhow::Error {
    loop {
        if let Err(e) = parts.check() {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn print_banner(p: &Ports, tokens: &Path) {
    let edge = format!("http://{}", p.edge);
    let json = "-H 'content-type: application/json'";
    println!(
        r#"
Portcullis is running.

  edge node (data plane)  {edge}             status  http://{edge_admin}/status
  control plane (SCIM)    http://{scim}/scim/v2/demo
  control plane (admin)   http://{cp_admin}/admin/v1/nodes
  demo upstreams          http://{upstream}

First load the demo tokens (ES256 JWTs from the demo issuer) into your shell:

  source {tokens}

1. Alice (IdP group Sales, so role bundle `sales`) may chat with gpt-4o-mini: the demo upstream answers.

  curl -s {edge}/openai/v1/chat/completions -H "Authorization: Bearer $ALICE" {json} \
    -d '{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"hello"}}]}}'

2. She may not use gpt-4o: 403 with an OpenAI-shaped error naming why.

  curl -s {edge}/openai/v1/chat/completions -H "Authorization: Bearer $ALICE" {json} \
    -d '{{"model":"gpt-4o","messages":[{{"role":"user","content":"hello"}}]}}'

3. Over MCP, Alice may call the CRM tool update_opportunity; Bob (Legal) gets a JSON-RPC error.

  curl -s {edge}/mcp/crm -H "Authorization: Bearer $ALICE" {json} \
    -d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"update_opportunity","arguments":{{"id":"42","stage":"won"}}}}}}'
  curl -s {edge}/mcp/crm -H "Authorization: Bearer $BOB" {json} \
    -d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"update_opportunity","arguments":{{"id":"42","stage":"won"}}}}}}'

4. Deactivate Alice the way Okta does (a SCIM PATCH), then repeat 1: her next call is 403.

  curl -s -X PATCH http://{scim}/scim/v2/demo/Users/$ALICE_ID -H "Authorization: Bearer $SCIM_TOKEN" \
    -H 'content-type: application/scim+json' \
    -d '{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"replace","value":{{"active":false}}}}]}}'

   Reactivate her with "active":true. The fleet and the snapshot version each node applied:

  curl -s http://{cp_admin}/admin/v1/nodes

Policies are in {policies}; edit them and run
  curl -s -X POST http://{cp_admin}/admin/v1/policies/reload
(an invalid file is refused with its line and reason; the previous version stays live).

Role bundles, dynamic groups, end dates and break-glass are in {bindings}; what they make of
the directory (groups held for review, dynamic group sizes, nesting cycles):
  curl -s http://{cp_admin}/admin/v1/identity/report

Ctrl-C stops everything; running again continues from the same state.
"#,
        edge_admin = p.edge_admin,
        scim = p.cp.scim,
        cp_admin = p.cp.admin,
        upstream = p.upstream,
        tokens = tokens.display(),
        policies = tokens.with_file_name("policies").display(),
        bindings = tokens.with_file_name("bindings.toml").display(),
    );
}
