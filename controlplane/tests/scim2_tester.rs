//! RFC 7643/7644 conformance, checked by an independent client: `scim2-tester` (through
//! `scim2-cli`) against a freshly started control plane. Every check must report SUCCESS.
//!
//! The tool comes from PyPI (`.ci/requirements.txt`); `.ci/run` installs it into `.venv`.
//! Set `PORTCULLIS_SCIM2_CLI` to its `scim` executable to use another. Without it the test is
//! skipped with a message, except under CI (`CI` set), where a missing tool is a failure.

mod common;

use common::{start, write_config};
use std::path::PathBuf;
use std::process::Command;

fn scim_cli() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PORTCULLIS_SCIM2_CLI") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/scim"));
    venv.exists().then_some(venv)
}

#[test]
fn scim2_tester_reports_every_check_as_success() {
    let Some(cli) = scim_cli() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "scim2-cli is required under CI: run .ci/run, or set PORTCULLIS_SCIM2_CLI"
        );
        eprintln!(
            "SKIPPED: scim2-cli not installed (python3 -m venv .venv && .venv/bin/pip install -r .ci/requirements.txt)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let cp = start(&write_config(dir.path(), &hash));
    let out = Command::new(&cli)
        .args(["--url", &format!("{}/okta", cp.scim), "--header"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg("test")
        .output()
        .expect("run scim2-cli");
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let verdicts: Vec<&str> = report
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("Performing") && !l.trim().is_empty())
        .collect();
    let failures: Vec<&&str> = verdicts
        .iter()
        .filter(|l| !l.starts_with("SUCCESS"))
        .collect();
    assert!(
        failures.is_empty() && verdicts.len() >= 100,
        "{} checks, {} not SUCCESS:\n{report}",
        verdicts.len(),
        failures.len()
    );
    println!("scim2-tester: {} checks, all SUCCESS", verdicts.len());
}
