//! `portcullis-cp evidence`: export identity events as chained, signed evidence, and verify
//! an export.

use crate::config::Config;
use crate::evidence::{self, Encoding, EvidenceStream, Filter, Manifest};
use crate::store::{DecisionStore, Store};
use anyhow::{Context, bail};
use clap::Subcommand;
use portcullis_shared::signing::TrustedKeys;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Export identity events (SCIM changes, binding edits, break-glass, repairs) or decision
    /// records as JSON Lines or CSV, each record chained to the one before by hash, with a
    /// manifest signed by the control plane's key. Reads the store directly; the control
    /// plane may be running.
    Export {
        #[arg(long, short)]
        config: PathBuf,
        /// From this instant (RFC 3339, or Unix milliseconds), inclusive.
        #[arg(long, value_parser = parse_instant)]
        from: Option<u64>,
        /// Until this instant (RFC 3339, or Unix milliseconds), exclusive.
        #[arg(long, value_parser = parse_instant)]
        to: Option<u64>,
        /// Only events about this user or group (its SCIM id).
        #[arg(long)]
        resource_id: Option<String>,
        /// Only events of this kind: a resource type (User, Group, Bindings, …) or an
        /// operation (create, patch, delete, …); for decisions, an action (chat, …) or a
        /// decision (allow, deny).
        #[arg(long)]
        kind: Option<String>,
        /// What to export: the identity event log, or the decision records nodes shipped.
        #[arg(long, value_enum, default_value = "identity")]
        stream: EvidenceStream,
        /// Decisions only: one principal's (SCIM id or userName).
        #[arg(long)]
        principal: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Encoding,
        /// The records file; the manifest goes to `<out>.manifest.json`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an export against its manifest and the control plane's public key; names the
    /// first altered, removed, inserted or reordered record.
    Verify {
        /// The records file.
        file: PathBuf,
        /// The manifest (default: `<file>.manifest.json`).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The control plane's public key (base64, as in its `signing.pub`), or `@path` to
        /// read it from a file.
        #[arg(long)]
        public_key: String,
    },
}

/// An instant given as RFC 3339 or as Unix milliseconds.
pub fn parse_instant(s: &str) -> Result<u64, String> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond().max(0) as u64)
        .map_err(|e| format!("not an RFC 3339 instant or Unix milliseconds: {e}"))
}

fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

pub async fn run(command: EvidenceCommand) -> anyhow::Result<ExitCode> {
    match command {
        EvidenceCommand::Export {
            config,
            from,
            to,
            resource_id,
            kind,
            stream,
            principal,
            format,
            out,
        } => {
            if stream == EvidenceStream::Decisions && resource_id.is_some() {
                bail!("--resource-id selects identity events; for decisions use --principal");
            }
            if stream == EvidenceStream::Identity && principal.is_some() {
                bail!(
                    "--principal selects decisions (--stream decisions); for identity events use --resource-id"
                );
            }
            let config = Config::load(&config)?;
            let key_file = config
                .nodes
                .signing_key
                .clone()
                .unwrap_or_else(|| config.data_dir.join("signing.key"));
            if !key_file.exists() {
                bail!(
                    "the control plane's signing key {} does not exist yet: start the control plane once",
                    key_file.display()
                );
            }
            let signer = crate::signing::load_or_create(&key_file)
                .with_context(|| format!("loading {}", key_file.display()))?;
            let filter = Filter {
                from_ms: from,
                to_ms: to,
                resource_id,
                kind,
                principal,
            };
            let (file, manifest) = match stream {
                EvidenceStream::Identity => {
                    let store = Store::open(&config.database_path())?;
                    evidence::export(&store, filter, format, &signer).await?
                }
                EvidenceStream::Decisions => {
                    let decisions = DecisionStore::open(&config.decisions_path())?;
                    evidence::export_decisions(&decisions, filter, format, &signer).await?
                }
            };
            std::fs::write(&out, &file).with_context(|| format!("writing {}", out.display()))?;
            let mpath = manifest_path(&out);
            std::fs::write(&mpath, serde_json::to_vec_pretty(&manifest)?)
                .with_context(|| format!("writing {}", mpath.display()))?;
            eprintln!(
                "exported {} records to {} (manifest {}, signed by key {})",
                manifest.records,
                out.display(),
                mpath.display(),
                manifest.key_id
            );
            Ok(ExitCode::SUCCESS)
        }
        EvidenceCommand::Verify {
            file,
            manifest,
            public_key,
        } => {
            let mpath = manifest.unwrap_or_else(|| manifest_path(&file));
            let records =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let manifest: Manifest = serde_json::from_slice(
                &std::fs::read(&mpath).with_context(|| format!("reading {}", mpath.display()))?,
            )
            .with_context(|| format!("{} is not an evidence manifest", mpath.display()))?;
            let key = match public_key.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading the public key {path}"))?,
                None => public_key,
            };
            let key = TrustedKeys::from_base64([key.trim()]).context("the public key")?;
            match evidence::verify(&records, &manifest, &key) {
                Ok(n) => {
                    println!(
                        "OK: {n} records, chain head {}, signed by key {}",
                        manifest.head, manifest.key_id
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("FAILED: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
