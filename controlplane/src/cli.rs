//! The `portcullis-cp` command line.

mod audit;
pub mod credentials;
mod evidence;
mod identity;

pub use evidence::parse_instant;

use crate::config::Config;
use crate::store::{self, Store, TokenRow};
use anyhow::{Context, bail};
use base64::Engine;
use clap::{Parser, Subcommand};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "portcullis-cp", version, about = "Portcullis control plane")]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
        /// Write the bound addresses here (JSON) once ready.
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Validate the configuration and the policy directory, then exit.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage SCIM bearer tokens (stored only as SHA-256).
    #[command(subcommand)]
    ScimToken(TokenCommand),
    /// List data-plane nodes with the snapshot version each applied.
    Nodes {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// When each node enforced an identity event: a deprovisioning receipt.
    Receipt {
        #[command(flatten)]
        admin: AdminArgs,
        /// The identity event's sequence number (see the admin API's /admin/v1/events).
        #[arg(
            long,
            required_unless_present = "resource_id",
            conflicts_with = "resource_id"
        )]
        event: Option<u64>,
        /// A user's or group's SCIM id: receipts for its newest events.
        #[arg(long)]
        resource_id: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the latest snapshot, identity revision and policy version.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Policy operations.
    #[command(subcommand)]
    Policies(PolicyCommand),
    /// Role bundles, dynamic groups and other bindings: versioned, validated, reversible.
    #[command(subcommand)]
    Bindings(identity::BindingsCommand),
    /// Time-boxed emergency access.
    #[command(subcommand)]
    BreakGlass(identity::BreakGlassCommand),
    /// API keys for users and service accounts: issued once, stored hashed, revocable.
    #[command(subcommand)]
    ApiKeys(credentials::ApiKeysCommand),
    /// Service accounts: principals for programs, in groups the bindings bind.
    #[command(subcommand)]
    ServiceAccounts(credentials::ServiceAccountsCommand),
    /// Evidence for auditors: chained, signed exports of the identity event log.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
    /// How the live snapshot decides a request for a principal: the decision, the policies
    /// that determined it, and why each other policy did not apply.
    Explain {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(flatten)]
        request: Box<crate::explain::ExplainRequest>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Decision records the nodes shipped: query them, and replay them against the snapshot
    /// that decided them.
    #[command(subcommand)]
    Decisions(audit::DecisionsCommand),
    /// What a principal could use at an instant: every model, tool, resource and prompt
    /// allowed, with the policies that allow it.
    Entitlements {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(flatten)]
        request: crate::audit::EntitlementsRequest,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// What the last compilation found: nesting cycles, groups held for review, dynamic groups.
    IdentityReport {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for a source and print it once.
    Create {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        source: String,
        #[arg(long)]
        label: Option<String>,
        /// Make the token expire after this long (e.g. 90d, 12h).
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// Create a new token for a source and make its current tokens expire after an overlap
    /// window, so the IdP can be switched to the new one without an outage.
    Rotate {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        source: String,
        /// How long the previous tokens keep working (e.g. 24h, 30m).
        #[arg(long, value_parser = parse_duration, default_value = "24h")]
        overlap: std::time::Duration,
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens (never their values).
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Revoke a token by id.
    Revoke {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a directory of Cedar files against Portcullis's schema (offline).
    Check {
        dir: PathBuf,
        /// Also declare the principal attributes of this configuration's SCIM extensions.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Ask the running control plane to reload its policy directory.
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Admin API base URL.
    #[arg(
        long,
        env = "PORTCULLIS_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub admin_url: String,
    /// Admin bearer token, if the control plane requires one.
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// Runs with explicit arguments (the first is the program name), as the quickstart's
/// multi-call binary does.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    init_tracing(&cli.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The schema a configuration's policies are validated against: the built-in one plus the
/// principal attributes its SCIM extensions declare and the attribute mappings and resource
/// labels of its bindings file (the running control plane uses its live bindings version).
fn effective_schema(config: &Config) -> anyhow::Result<String> {
    let (principal, labels) = declarations(config)?;
    Ok(portcullis_shared::schema::build(&principal, &labels))
}

/// The principal attributes and resource labels a configuration declares.
fn declarations(
    config: &Config,
) -> anyhow::Result<(
    Vec<portcullis_shared::snapshot::AttributeDecl>,
    Vec<portcullis_shared::snapshot::AttributeDecl>,
)> {
    let attributes = crate::attributes::PrincipalAttributes::from_sources(&config.sources);
    let mut declared = crate::bindings::Declarations {
        principal: attributes.decls().to_vec(),
        labels: Vec::new(),
    };
    if let Some(path) = &config.bindings_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the bindings file {}", path.display()))?;
        let doc = crate::bindings::Bindings::from_toml(&text)
            .with_context(|| format!("parsing the bindings file {}", path.display()))?;
        let (d, problems) = doc.declarations(attributes.decls());
        if !problems.is_empty() {
            anyhow::bail!(
                "the bindings file {}: {}",
                path.display(),
                problems.join("; ")
            );
        }
        declared = d;
    }
    Ok((declared.principal, declared.labels))
}

/// Which policies the compiled decision path takes and which it leaves to `cedar-policy`
/// (with the construct that sent them there).
fn print_decision_paths(
    schema: &str,
    files: &[portcullis_shared::snapshot::PolicyFile],
    declared: (
        Vec<portcullis_shared::snapshot::AttributeDecl>,
        Vec<portcullis_shared::snapshot::AttributeDecl>,
    ),
) {
    let mut s = portcullis_shared::snapshot::Snapshot::empty(0);
    s.schema = schema.to_owned();
    s.policies = files.to_vec();
    (s.principal_attributes, s.resource_labels) = declared;
    match portcullis_shared::engine::Engine::new(s) {
        Ok(engine) => {
            let c = engine.compiled();
            println!(
                "{} on the compiled decision path, {} decided by cedar-policy",
                c.compiled_count(),
                c.fallback.len()
            );
            for f in &c.fallback {
                println!("  {:<40} {}", f.id, f.reason);
            }
        }
        Err(e) => println!("decision paths not computed: {e}"),
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config, ready_file } => {
            let config = Config::load(&config)?;
            crate::server::serve(config, ready_file).await?;
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            let files = crate::policies::read_dir(&config.policy_dir)?;
            match portcullis_shared::policy::compile(&effective_schema(&config)?, &files) {
                Ok(c) => println!(
                    "configuration OK: {} source(s), {} policies in {} file(s)",
                    config.sources.len(),
                    c.policies.len(),
                    files.len()
                ),
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::ScimToken(t) => token(t)?,
        Command::Bindings(c) => return identity::bindings(c).await,
        Command::BreakGlass(c) => return identity::break_glass(c).await,
        Command::ApiKeys(c) => return credentials::api_keys(c).await,
        Command::ServiceAccounts(c) => return credentials::service_accounts(c).await,
        Command::Evidence(c) => return evidence::run(c).await,
        Command::IdentityReport { admin } => return identity::report(admin).await,
        Command::Decisions(c) => return audit::decisions(c).await,
        Command::Entitlements {
            admin,
            request,
            json,
        } => return audit::entitlements(&admin, request, json).await,
        Command::Explain {
            admin,
            request,
            json,
        } => return explain(&admin, *request, json).await,
        Command::Nodes { admin, json } => nodes(&admin, json).await?,
        Command::Receipt {
            admin,
            event,
            resource_id,
            json,
        } => {
            let receipts = match (event, resource_id) {
                (Some(seq), _) => {
                    vec![admin_get(&admin, &format!("/admin/v1/receipts/{seq}")).await?]
                }
                (None, Some(id)) => {
                    let path = format!("/admin/v1/receipts?resource_id={}", url_component(&id));
                    let v = admin_get(&admin, &path).await?;
                    v["receipts"].as_array().cloned().unwrap_or_default()
                }
                (None, None) => unreachable!("clap requires one"),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&receipts)?);
            } else if receipts.is_empty() {
                println!("no applied identity events for that resource");
            }
            if !json {
                for r in &receipts {
                    print_receipt(r);
                }
            }
        }
        Command::Status { admin } => {
            let v = admin_get(&admin, "/admin/v1/status").await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Command::Policies(PolicyCommand::Check { dir, config }) => {
            let files = crate::policies::read_dir(&dir)?;
            let declared = match config {
                Some(path) => declarations(&Config::load(&path)?)?,
                None => (Vec::new(), Vec::new()),
            };
            let schema = portcullis_shared::schema::build(&declared.0, &declared.1);
            match portcullis_shared::policy::compile(&schema, &files) {
                Ok(c) => {
                    for p in &c.policies {
                        println!("{:<40} {}:{}", p.id, p.file, p.line);
                    }
                    println!("{} policies valid", c.policies.len());
                    print_decision_paths(&schema, &files, declared);
                }
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Policies(PolicyCommand::Reload { admin }) => {
            let resp = admin_client(&admin)
                .post(format!(
                    "{}/admin/v1/policies/reload",
                    admin.admin_url.trim_end_matches('/')
                ))
                .send()
                .await
                .context("calling the admin API")?;
            let ok = resp.status().is_success();
            let v: serde_json::Value = resp
                .json()
                .await
                .context("reading the admin API's answer")?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A new SCIM token: `pcs_` and 32 random bytes, base64url.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "pcs_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    (token, hash)
}

/// Parses `90s`, `15m`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30m, 24h or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?} is not a duration like 30m, 24h or 7d")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Stores a new token for `source`; returns its id and value.
fn issue_token(
    store: &Store,
    source: &str,
    label: Option<String>,
    expires_ms: Option<u64>,
) -> anyhow::Result<(String, String)> {
    let (token, hash) = new_token();
    let mut id_bytes = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut id_bytes);
    let row = TokenRow {
        id: format!("tok_{}", hex::encode(id_bytes)),
        source: source.to_owned(),
        label,
        created_ms: store::now_ms(),
        revoked_ms: None,
        expires_ms,
    };
    store.blocking(|c| store::insert_token(c, &row, &hash))?;
    Ok((row.id, token))
}

fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Rotate {
            config,
            source,
            overlap,
            label,
        } => {
            let config = Config::load(&config)?;
            if config.source(&source).is_none() {
                bail!("source {source:?} is not in {}", config.path.display());
            }
            let store = Store::open(&config.database_path())?;
            let until = store::now_ms() + overlap.as_millis() as u64;
            let expiring = store.blocking(|c| store::expire_tokens(c, &source, until))?;
            let (id, token) = issue_token(&store, &source, label, None)?;
            eprintln!(
                "created SCIM token {id} for source {source}; {expiring} previous token(s) stop working in {}s. The new token is shown only once:",
                overlap.as_secs()
            );
            println!("{token}");
        }
        TokenCommand::Create {
            config,
            source,
            label,
            expires_in,
        } => {
            let config = Config::load(&config)?;
            if config.source(&source).is_none() {
                bail!(
                    "source {source:?} is not in {}; configured: {}",
                    config.path.display(),
                    config
                        .sources
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let store = Store::open(&config.database_path())?;
            let expires_ms = expires_in.map(|d| store::now_ms() + d.as_millis() as u64);
            let (id, token) = issue_token(&store, &source, label, expires_ms)?;
            eprintln!("created SCIM token {id} for source {source}; it is shown only once:");
            println!("{token}");
        }
        TokenCommand::List { config } => {
            let config = Config::load(&config)?;
            let store = Store::open(&config.database_path())?;
            let rows = store.blocking(|c| store::list_tokens(c))?;
            println!(
                "{:<18} {:<16} {:<8} {:<22} LABEL",
                "ID", "SOURCE", "STATE", "EXPIRES"
            );
            let now = store::now_ms();
            for r in rows {
                let state = match (r.revoked_ms, r.expires_ms) {
                    (Some(_), _) => "revoked",
                    (None, Some(e)) if e <= now => "expired",
                    _ => "live",
                };
                let expires = r
                    .expires_ms
                    .and_then(|ms| jiff::Timestamp::from_millisecond(ms as i64).ok())
                    .map(|t| format!("{t:.0}"))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<18} {:<16} {:<8} {:<22} {}",
                    r.id,
                    r.source,
                    state,
                    expires,
                    r.label.unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke { config, id } => {
            let config = Config::load(&config)?;
            let store = Store::open(&config.database_path())?;
            if !store.blocking(|c| store::revoke_token(c, &id, store::now_ms()))? {
                bail!("no live token with id {id}");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

pub(crate) fn admin_client(admin: &AdminArgs) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = &admin.admin_token
        && let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
    {
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

async fn explain(
    admin: &AdminArgs,
    body: crate::explain::ExplainRequest,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let url = format!("{}/admin/v1/explain", admin.admin_url.trim_end_matches('/'));
    let resp = admin_client(admin)
        .post(&url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let v: serde_json::Value = resp
        .json()
        .await
        .with_context(|| format!("POST {url}: reading JSON"))?;
    if !status.is_success() {
        bail!("{status}: {}", v["error"].as_str().unwrap_or("(no detail)"));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render_explanation(&v));
    Ok(ExitCode::SUCCESS)
}

/// The text form of an explanation: the decision, then one line per policy.
pub fn render_explanation(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let e = &v["explanation"];
    let d = &e["decision"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} on {} at snapshot {} (policies {})",
        s(&v["principal"]["user_name"]),
        s(&v["action"]),
        s(&v["resource"]),
        v["snapshot_version"],
        s(&v["policy_version"]),
    );
    let ids: Vec<String> = d["policies"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "decision: {} ({}){}",
        s(&d["effect"]).to_uppercase(),
        s(&d["reason"]),
        if ids.is_empty() {
            String::new()
        } else {
            format!(" by {}", ids.join(", "))
        }
    );
    for p in e["policies"].as_array().into_iter().flatten() {
        let why = match p["verdict"].as_str().unwrap_or("") {
            "satisfied" | "cedar_satisfied" => "matched".to_owned(),
            "out_of_scope" => format!("{} out of scope: {}", s(&p["part"]), s(&p["detail"])),
            "condition_failed" => format!("{} clause #{} failed", s(&p["kind"]), p["clause"]),
            "error" => format!("error (skipped): {}", s(&p["message"])),
            "cedar_not_satisfied" => "did not apply (decided by cedar-policy)".to_owned(),
            other => other.to_owned(),
        };
        let _ = writeln!(
            out,
            "  {:<7} {:<32} {:<28} {why}",
            s(&p["effect"]),
            s(&p["id"]),
            format!("{}:{}", s(&p["file"]), p["line"]),
        );
    }
    out
}

pub(crate) async fn admin_get(admin: &AdminArgs, path: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}{path}", admin.admin_url.trim_end_matches('/'));
    let resp = admin_client(admin)
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !resp.status().is_success() {
        bail!("GET {url}: {}", resp.status());
    }
    resp.json()
        .await
        .with_context(|| format!("GET {url}: reading JSON"))
}

/// Percent-encodes a query parameter value.
pub(crate) fn url_component(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_receipt(r: &serde_json::Value) {
    let e = &r["event"];
    let at = e["at_ms"]
        .as_u64()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms as i64).ok())
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|| "?".into());
    println!(
        "event {} — {} {} {} {} at {at} (identity revision {})",
        e["seq"],
        e["source"].as_str().unwrap_or("?"),
        e["operation"].as_str().unwrap_or("?"),
        e["resource_type"].as_str().unwrap_or("?"),
        e["resource_id"].as_str().unwrap_or("?"),
        e["revision"]
    );
    if e["applied"] == false {
        println!("  the event changed nothing; there is nothing to enforce");
        return;
    }
    match r["version"].as_u64() {
        None => println!("  not yet in a published snapshot"),
        Some(v) => println!("  first in snapshot version {v}"),
    }
    let enforced = r["enforced"].as_array().cloned().unwrap_or_default();
    let pending = r["pending"].as_array().cloned().unwrap_or_default();
    match r["everywhere_after_ms"].as_u64() {
        Some(ms) => println!("  enforced on all {} nodes by T0+{ms} ms", enforced.len()),
        None if !pending.is_empty() => println!(
            "  enforced on {} nodes; {} still behind",
            enforced.len(),
            pending.len()
        ),
        None => println!("  no node has acknowledged it yet"),
    }
    for n in &enforced {
        println!(
            "    {:<24} +{} ms (version {})",
            n["node_id"].as_str().unwrap_or("?"),
            n["after_ms"],
            n["version"]
        );
    }
    for n in &pending {
        println!(
            "    {:<24} BEHIND at version {}{}",
            n["node_id"].as_str().unwrap_or("?"),
            n["applied_version"],
            if n["connected"] == true {
                ""
            } else {
                " (disconnected)"
            }
        );
    }
    for n in r["absent"].as_array().into_iter().flatten() {
        println!(
            "    {:<24} absent since before the event (version {})",
            n["node_id"].as_str().unwrap_or("?"),
            n["applied_version"]
        );
    }
}

async fn nodes(admin: &AdminArgs, json: bool) -> anyhow::Result<()> {
    let v = admin_get(admin, "/admin/v1/nodes").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("latest snapshot version: {}", v["latest_version"]);
    println!(
        "{:<20} {:<10} {:>8} {:>5} {:<22} {:<24} LAST REJECTION",
        "NODE", "STATE", "VERSION", "LAG", "LISTEN", "LAST ACK"
    );
    for n in v["nodes"].as_array().into_iter().flatten() {
        let state = if n["connected"].as_bool() == Some(true) {
            "connected"
        } else {
            "gone"
        };
        let ack = n["last_ack_ms"]
            .as_u64()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms as i64).ok())
            .map(|t| format!("{t:.0}"))
            .unwrap_or_else(|| "-".into());
        let nack = match (
            n["last_nack_version"].as_u64(),
            n["last_nack_reason"].as_str(),
        ) {
            (Some(v), Some(r)) => format!("v{v}: {r}"),
            _ => "-".into(),
        };
        println!(
            "{:<20} {:<10} {:>8} {:>5} {:<22} {:<24} {}",
            n["node_id"].as_str().unwrap_or("?"),
            state,
            n["applied_version"],
            n["lag"],
            n["listen"].as_str().unwrap_or(""),
            ack,
            nack
        );
    }
    Ok(())
}
