//! `portcullis-cp decisions` and `portcullis-cp entitlements`: the decision records the nodes
//! shipped, their replay, and what a principal could use at an instant, over the admin API.

use super::{AdminArgs, admin_client, admin_get, url_component};
use crate::audit::{DecisionsQuery, EntitlementsRequest, ReplayRequest};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum DecisionsCommand {
    /// Decision records, oldest first, filtered by time range, principal, decision, resource,
    /// action and node. One page unless `--all`.
    List {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(flatten)]
        query: DecisionsQuery,
        /// Follow every page.
        #[arg(long)]
        all: bool,
        /// Print JSON Lines (one record per line) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Per node and records directory: records stored, and numbers missing (dropped).
    Numberings {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Decide a recorded request again against the snapshot that decided it; exits 1 when
    /// the decision or its determining policies differ.
    Replay {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(flatten)]
        request: ReplayRequest,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Unix milliseconds as RFC 3339.
fn instant(ms: &Value) -> String {
    ms.as_i64()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| ms.to_string(), |t| t.to_string())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// One record as a line of text.
fn record_line(r: &Value) -> String {
    let principal = match r["principal"]["user_name"].as_str() {
        Some(name) => format!("{name} ({})", text(&r["principal"]["source"])),
        None => "-".to_owned(),
    };
    let policies: Vec<&str> = r["policies"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    format!(
        "{} {}#{} {:<5} {} {} {} ({}{}) v{}",
        instant(&r["at_ms"]),
        text(&r["node"]),
        r["seq"],
        text(&r["decision"]).to_uppercase(),
        principal,
        text(&r["action"]),
        text(&r["resource"]),
        text(&r["reason"]),
        if policies.is_empty() {
            String::new()
        } else {
            format!(" by {}", policies.join(", "))
        },
        r["snapshot_version"],
    )
}

/// The query string of a decisions query.
fn query_string(q: &DecisionsQuery) -> anyhow::Result<String> {
    let v = serde_json::to_value(q)?;
    let mut parts = Vec::new();
    for (k, v) in v.as_object().into_iter().flatten() {
        match v {
            Value::Null => {}
            Value::String(s) => parts.push(format!("{k}={}", url_component(s))),
            other => parts.push(format!("{k}={other}")),
        }
    }
    Ok(parts.join("&"))
}

async fn post(
    admin: &AdminArgs,
    path: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<Value> {
    let url = format!("{}{path}", admin.admin_url.trim_end_matches('/'));
    let resp = admin_client(admin)
        .post(&url)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let v: Value = resp
        .json()
        .await
        .with_context(|| format!("POST {url}: reading JSON"))?;
    if !status.is_success() {
        bail!("{status}: {}", v["error"].as_str().unwrap_or("(no detail)"));
    }
    Ok(v)
}

pub async fn decisions(command: DecisionsCommand) -> anyhow::Result<ExitCode> {
    match command {
        DecisionsCommand::List {
            admin,
            mut query,
            all,
            json,
        } => {
            loop {
                let page = admin_get(
                    &admin,
                    &format!("/admin/v1/decisions?{}", query_string(&query)?),
                )
                .await?;
                for r in page["decisions"].as_array().into_iter().flatten() {
                    if json {
                        println!("{}", serde_json::to_string(r)?);
                    } else {
                        println!("{}", record_line(r));
                    }
                }
                match page["next"].as_str() {
                    Some(next) if all => query.after = Some(next.to_owned()),
                    Some(next) => {
                        if !json {
                            eprintln!("more: --after {next}");
                        }
                        break;
                    }
                    None => break,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DecisionsCommand::Numberings { admin } => {
            let v = admin_get(&admin, "/admin/v1/decisions/numberings").await?;
            for n in v["numberings"].as_array().into_iter().flatten() {
                println!(
                    "{} epoch {}: {} stored, seq {}..={}, {} missing",
                    text(&n["node"]),
                    text(&n["epoch"]),
                    n["stored"],
                    n["first_seq"],
                    n["last_seq"],
                    n["missing"],
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DecisionsCommand::Replay {
            admin,
            request,
            json,
        } => {
            let v = post(&admin, "/admin/v1/decisions/replay", &request).await?;
            let matches = v["matches"].as_bool() == Some(true);
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let side = |o: &Value| {
                    let ids: Vec<&str> = o["policies"]
                        .as_array()
                        .map(|a| a.iter().map(text).collect())
                        .unwrap_or_default();
                    format!(
                        "{} ({}) by [{}]",
                        text(&o["decision"]).to_uppercase(),
                        text(&o["reason"]),
                        ids.join(", ")
                    )
                };
                println!(
                    "{}#{} at {}: {} {} on {} with snapshot {}",
                    text(&v["node"]),
                    v["seq"],
                    instant(&v["at_ms"]),
                    text(&v["principal"]["user_name"]),
                    text(&v["action"]),
                    text(&v["resource"]),
                    v["snapshot_version"],
                );
                println!("recorded: {}", side(&v["original"]));
                println!("replayed: {}", side(&v["replayed"]));
                println!("{}", if matches { "MATCH" } else { "MISMATCH" });
            }
            Ok(if matches {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

pub async fn entitlements(
    admin: &AdminArgs,
    request: EntitlementsRequest,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let v = post(admin, "/admin/v1/entitlements", &request).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} ({}) at {}, snapshot {} (policies {}):",
        text(&v["principal"]["user_name"]),
        text(&v["principal"]["source"]),
        instant(&v["at_ms"]),
        v["snapshot_version"],
        text(&v["policy_version"]),
    );
    for a in v["allowed"].as_array().into_iter().flatten() {
        let ids: Vec<&str> = a["policies"]
            .as_array()
            .map(|p| p.iter().map(text).collect())
            .unwrap_or_default();
        println!(
            "  {:<24} {:<40} by {}",
            text(&a["action"]),
            text(&a["resource"]),
            ids.join(", ")
        );
    }
    println!(
        "{} allowed, {} denied ({})",
        v["allowed"].as_array().map_or(0, Vec::len),
        v["denied"],
        text(&v["considered"])
    );
    Ok(ExitCode::SUCCESS)
}
