//! `portcullis-cp bindings …`, `break-glass …` and `identity-report`: the identity model's
//! commands. All but `bindings check` go through the running control plane's admin API.

use super::{AdminArgs, admin_client};
use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BindingsCommand {
    /// Print the live bindings as TOML.
    Show {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Validate a bindings file offline (`--config` declares the sources' extension
    /// attributes for dynamic-group rules).
    Check {
        file: PathBuf,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Make a bindings file the new live version.
    Apply {
        file: PathBuf,
        /// Who makes the change (recorded with the version and its identity event).
        #[arg(long, env = "USER")]
        author: String,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Every version, newest first, with author, time, comment and diff.
    History {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make an earlier version's content live again (as a new version).
    Rollback {
        version: u64,
        #[arg(long, env = "USER")]
        author: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BreakGlassCommand {
    /// Grant a break-glass entry's role to a user for a bounded time.
    Activate {
        /// The entry's name in the bindings.
        name: String,
        #[arg(long)]
        source: String,
        /// The user's userName (or SCIM id).
        #[arg(long)]
        user: String,
        /// At most the entry's max_minutes (the default).
        #[arg(long)]
        minutes: Option<u32>,
        #[arg(long)]
        reason: String,
        #[arg(long, env = "USER")]
        author: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// End a live activation now.
    Revoke {
        id: String,
        #[arg(long, env = "USER")]
        author: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List activations, newest first.
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// Sends a request; returns whether it succeeded and the JSON answer.
pub(super) async fn call(
    admin: &AdminArgs,
    req: reqwest::RequestBuilder,
) -> anyhow::Result<(bool, Value)> {
    let resp = req
        .send()
        .await
        .with_context(|| format!("calling the admin API at {}", admin.admin_url))?;
    let ok = resp.status().is_success();
    let v: Value = resp
        .json()
        .await
        .context("reading the admin API's answer")?;
    Ok((ok, v))
}

pub(super) fn url(admin: &AdminArgs, path: &str) -> String {
    format!("{}{path}", admin.admin_url.trim_end_matches('/'))
}

/// Prints the answer; a refusal prints its error and problems and fails the command.
pub(super) fn finish(ok: bool, v: &Value) -> anyhow::Result<ExitCode> {
    if ok {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{}", v["error"].as_str().unwrap_or("the admin API refused"));
        for p in v["problems"].as_array().into_iter().flatten() {
            eprintln!("  - {}", p.as_str().unwrap_or_default());
        }
        Ok(ExitCode::FAILURE)
    }
}

pub async fn bindings(cmd: BindingsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BindingsCommand::Show { admin } => {
            let req = admin_client(&admin).get(url(&admin, "/admin/v1/bindings"));
            let (ok, v) = call(&admin, req).await?;
            if !ok {
                return finish(ok, &v);
            }
            println!("# bindings version {}", v["version"]);
            print!("{}", v["toml"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        BindingsCommand::Check { file, config } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let attributes = match config {
                Some(c) => crate::attributes::PrincipalAttributes::from_sources(
                    &crate::config::Config::load(&c)?.sources,
                )
                .decls()
                .to_vec(),
                None => Vec::new(),
            };
            match crate::bindings::Bindings::from_toml(&text)
                .and_then(|b| b.validate(&attributes).map(|()| b))
            {
                Ok(b) => {
                    println!(
                        "{}: {} roles, {} bindings, {} dynamic groups, {} break-glass entries: valid",
                        file.display(),
                        b.roles.len(),
                        b.bindings.len(),
                        b.dynamic_groups.len(),
                        b.break_glass.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: invalid", file.display());
                    for p in e.problems {
                        eprintln!("  - {p}");
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        BindingsCommand::Apply {
            file,
            author,
            comment,
            admin,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut req = admin_client(&admin)
                .put(url(&admin, "/admin/v1/bindings"))
                .header("content-type", "application/toml")
                .header("x-portcullis-author", author)
                .body(text);
            if let Some(c) = comment {
                req = req.header("x-portcullis-comment", c);
            }
            let (ok, v) = call(&admin, req).await?;
            finish(ok, &v)
        }
        BindingsCommand::History { admin } => {
            let req = admin_client(&admin).get(url(&admin, "/admin/v1/bindings/history"));
            let (ok, v) = call(&admin, req).await?;
            if !ok {
                return finish(ok, &v);
            }
            for r in v["versions"].as_array().into_iter().flatten() {
                let at = jiff::Timestamp::from_millisecond(r["at_ms"].as_i64().unwrap_or(0))
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                let comment = r["comment"]
                    .as_str()
                    .map(|c| format!("  ({c})"))
                    .unwrap_or_default();
                println!(
                    "version {}  {at}  by {}{comment}",
                    r["version"],
                    r["author"].as_str().unwrap_or("?"),
                );
                for line in r["diff"].as_str().unwrap_or_default().lines() {
                    println!("    {line}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BindingsCommand::Rollback {
            version,
            author,
            admin,
        } => {
            let req = admin_client(&admin)
                .post(url(&admin, "/admin/v1/bindings/rollback"))
                .header("x-portcullis-author", author)
                .json(&json!({ "version": version }));
            let (ok, v) = call(&admin, req).await?;
            finish(ok, &v)
        }
    }
}

pub async fn break_glass(cmd: BreakGlassCommand) -> anyhow::Result<ExitCode> {
    let (admin, req) = match cmd {
        BreakGlassCommand::Activate {
            name,
            source,
            user,
            minutes,
            reason,
            author,
            admin,
        } => {
            let req = admin_client(&admin)
                .post(url(&admin, "/admin/v1/break-glass/activate"))
                .json(&json!({
                    "name": name, "source": source, "user": user, "minutes": minutes, "seconds": null,
                    "reason": reason, "author": author,
                }));
            (admin, req)
        }
        BreakGlassCommand::Revoke { id, author, admin } => {
            let req = admin_client(&admin)
                .post(url(&admin, &format!("/admin/v1/break-glass/{id}/revoke")))
                .json(&json!({ "author": author }));
            (admin, req)
        }
        BreakGlassCommand::List { admin } => {
            let req = admin_client(&admin).get(url(&admin, "/admin/v1/break-glass"));
            (admin, req)
        }
    };
    let (ok, v) = call(&admin, req).await?;
    finish(ok, &v)
}

pub async fn report(admin: AdminArgs) -> anyhow::Result<ExitCode> {
    let req = admin_client(&admin).get(url(&admin, "/admin/v1/identity/report"));
    let (ok, v) = call(&admin, req).await?;
    finish(ok, &v)
}
