//! `portcullis-cp api-keys …` and `service-accounts …`: programs' credentials, through the
//! running control plane's admin API.

use super::identity::{call, finish, url};
use super::{AdminArgs, admin_client, url_component};
use clap::Subcommand;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Issue a key for a user or a service account. The key is printed once, on stdout; only
    /// its hash is kept.
    Issue {
        /// The principal's identity source (`service-accounts` for a service account).
        #[arg(long)]
        source: String,
        /// The principal's userName (or SCIM id).
        #[arg(long)]
        user: String,
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// Make the key expire after this many days (1 to 3650); without it, it lives until
        /// revoked.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_days: Option<u32>,
        /// Who asks (recorded with the key and its identity event).
        #[arg(long, env = "USER")]
        author: String,
        /// Print the admin API's JSON answer (it holds the key) instead of the key alone.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List keys (never their text), newest first, with their state.
    List {
        #[arg(long)]
        source: Option<String>,
        /// A userName (with --source) or SCIM id: that principal's keys only.
        #[arg(long)]
        user: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Revoke a key now: nodes refuse it from the next snapshot on.
    Revoke {
        /// The key's id (the 16 hex digits after `pcul_`).
        id: String,
        #[arg(long, env = "USER")]
        author: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceAccountsCommand {
    /// Create a service account: a user of source `service-accounts`, in the groups given.
    Create {
        /// Its userName: 1 to 128 of a-z, A-Z, 0-9, '.', '_', '-', '@'.
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        /// A group of source `service-accounts` to put it in (created if missing); repeat for
        /// several. Bind it as `service-accounts/<group>`.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        #[arg(long, env = "USER")]
        author: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List service accounts with their groups and how many live keys each has.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Delete a service account and revoke its keys.
    Delete {
        name: String,
        #[arg(long, env = "USER")]
        author: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

pub async fn api_keys(cmd: ApiKeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApiKeysCommand::Issue {
            source,
            user,
            name,
            expires_days,
            author,
            json,
            admin,
        } => {
            let req = admin_client(&admin)
                .post(url(&admin, "/admin/v1/api-keys"))
                .json(&json!({
                    "source": source, "user": user, "name": name,
                    "expires_days": expires_days, "author": author,
                }));
            let (ok, v) = call(&admin, req).await?;
            if !ok || json {
                return finish(ok, &v);
            }
            let k = &v["api_key"];
            eprintln!(
                "issued API key {} ({}) for {}/{}, {}; the key is shown only once:",
                k["id"].as_str().unwrap_or("?"),
                k["name"].as_str().unwrap_or(""),
                k["source"].as_str().unwrap_or("?"),
                k["user_name"].as_str().unwrap_or("?"),
                match k["expires_ms"].as_u64() {
                    Some(ms) => format!("expires {}", instant(ms)),
                    None => "never expires".to_owned(),
                }
            );
            println!("{}", v["key"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        ApiKeysCommand::List {
            source,
            user,
            json,
            admin,
        } => {
            let query: Vec<String> = [("source", source), ("user", user)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k}={}", url_component(&v))))
                .collect();
            let path = if query.is_empty() {
                "/admin/v1/api-keys".to_owned()
            } else {
                format!("/admin/v1/api-keys?{}", query.join("&"))
            };
            let req = admin_client(&admin).get(url(&admin, &path));
            let (ok, v) = call(&admin, req).await?;
            if !ok || json {
                return finish(ok, &v);
            }
            print!("{}", key_table(&v));
            Ok(ExitCode::SUCCESS)
        }
        ApiKeysCommand::Revoke { id, author, admin } => {
            let path = format!("/admin/v1/api-keys/{}/revoke", url_component(&id));
            let req = admin_client(&admin)
                .post(url(&admin, &path))
                .json(&json!({ "author": author }));
            let (ok, v) = call(&admin, req).await?;
            if ok {
                println!("revoked API key {id}");
                return Ok(ExitCode::SUCCESS);
            }
            finish(ok, &v)
        }
    }
}

pub async fn service_accounts(cmd: ServiceAccountsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ServiceAccountsCommand::Create {
            name,
            display_name,
            groups,
            author,
            admin,
        } => {
            let req = admin_client(&admin)
                .post(url(&admin, "/admin/v1/service-accounts"))
                .json(&json!({
                    "name": name, "display_name": display_name, "groups": groups,
                    "author": author,
                }));
            let (ok, v) = call(&admin, req).await?;
            finish(ok, &v)
        }
        ServiceAccountsCommand::List { json, admin } => {
            let req = admin_client(&admin).get(url(&admin, "/admin/v1/service-accounts"));
            let (ok, v) = call(&admin, req).await?;
            if !ok || json {
                return finish(ok, &v);
            }
            print!("{}", account_table(&v));
            Ok(ExitCode::SUCCESS)
        }
        ServiceAccountsCommand::Delete {
            name,
            author,
            admin,
        } => {
            let path = format!("/admin/v1/service-accounts/{}/delete", url_component(&name));
            let req = admin_client(&admin)
                .post(url(&admin, &path))
                .json(&json!({ "author": author }));
            let (ok, v) = call(&admin, req).await?;
            finish(ok, &v)
        }
    }
}

fn instant(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| format!("{t:.0}"))
        .unwrap_or_else(|_| "?".into())
}

/// `GET /admin/v1/api-keys`'s answer as a table.
pub fn key_table(v: &Value) -> String {
    use std::fmt::Write;
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut out = format!(
        "{:<16}  {:<8}  {:<20}  {:<20}  {:<20}  {:<20}  NAME\n",
        "ID", "STATE", "SOURCE", "USER", "CREATED", "EXPIRES"
    );
    for k in v["api_keys"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<16}  {:<8}  {:<20}  {:<20}  {:<20}  {:<20}  {}",
            s(&k["id"]),
            s(&k["state"]),
            s(&k["source"]),
            s(&k["user_name"]),
            k["created_ms"].as_u64().map(instant).unwrap_or_default(),
            k["expires_ms"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), instant),
            s(&k["name"]),
        );
    }
    out
}

/// `GET /admin/v1/service-accounts`'s answer as a table.
pub fn account_table(v: &Value) -> String {
    use std::fmt::Write;
    let mut out = format!("{:<32}  {:>4}  {:<36}  GROUPS\n", "NAME", "KEYS", "ID");
    for a in v["service_accounts"].as_array().into_iter().flatten() {
        let groups: Vec<&str> = a["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            out,
            "{:<32}  {:>4}  {:<36}  {}",
            a["name"].as_str().unwrap_or(""),
            a["live_api_keys"].as_u64().unwrap_or(0),
            a["id"].as_str().unwrap_or(""),
            groups.join(", "),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("portcullis-cp").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn commands_parse_and_refuse_what_they_can() {
        let issue = [
            "api-keys", "issue", "--source", "okta", "--user", "ana", "--name", "laptop",
            "--author", "alice",
        ];
        match parse(&issue).expect("parses") {
            Command::ApiKeys(ApiKeysCommand::Issue {
                expires_days: None,
                json: false,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        for days in ["0", "3651", "soon"] {
            let mut args = issue.to_vec();
            args.extend(["--expires-days", days]);
            assert!(parse(&args).is_err(), "--expires-days {days}");
        }
        let mut args = issue.to_vec();
        args.extend(["--expires-days", "3650"]);
        assert!(parse(&args).is_ok());
        assert!(parse(&["api-keys", "issue", "--source", "okta", "--user", "ana"]).is_err());
        assert!(
            parse(&["api-keys", "revoke", "--author", "bob"]).is_err(),
            "no id"
        );

        match parse(&[
            "service-accounts",
            "create",
            "ci-bot",
            "--group",
            "ci",
            "--group",
            "deployers",
            "--author",
            "alice",
        ])
        .expect("parses")
        {
            Command::ServiceAccounts(ServiceAccountsCommand::Create {
                name,
                groups,
                display_name: None,
                ..
            }) => {
                assert_eq!(name, "ci-bot");
                assert_eq!(groups, ["ci", "deployers"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tables_show_keys_without_secrets() {
        let v = json!({"api_keys": [{
            "id": "0123456789abcdef", "state": "live", "source": "okta",
            "user_name": "ana@example.com", "created_ms": 0, "expires_ms": null,
            "name": "laptop",
        }]});
        let t = key_table(&v);
        let line = t.lines().nth(1).expect("a row");
        assert!(line.starts_with("0123456789abcdef  live"), "{t}");
        assert!(line.ends_with("laptop") && line.contains(" - "), "{t}");
        let v = json!({"service_accounts": [{
            "name": "ci-bot", "live_api_keys": 2, "id": "x", "groups": ["ci", "deployers"],
        }]});
        assert!(account_table(&v).contains("ci, deployers"));
    }
}
