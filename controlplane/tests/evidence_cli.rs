//! `portcullis-cp evidence export` and `verify` against a real control plane's store: an
//! untouched export verifies; an edited, removed or reordered record is named.

mod common;

use common::{Scim, cp, start, write_config};
use std::path::Path;

fn verify(file: &Path, key: &Path) -> (bool, String) {
    cp(&[
        "evidence",
        "verify",
        &file.display().to_string(),
        "--public-key",
        &format!("@{}", key.display()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_verify_and_tampering_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let config = write_config(dir.path(), &hash);
    let server = start(&config);
    let scim = Scim::new(format!("{}/okta", server.scim), &token);
    for name in ["ana", "bo", "cy", "dee"] {
        scim.create_user(name).await;
    }
    let key = dir.path().join("data/signing.pub");
    let config = config.display().to_string();

    for format in ["jsonl", "csv"] {
        let out = dir.path().join(format!("evidence.{format}"));
        let (ok, text) = cp(&[
            "evidence",
            "export",
            "--config",
            &config,
            "--kind",
            "User",
            "--format",
            format,
            "--out",
            &out.display().to_string(),
        ]);
        assert!(ok, "{text}");
        assert!(text.contains("exported 4 records"), "{text}");
        let (ok, text) = verify(&out, &key);
        assert!(ok && text.contains("OK: 4 records"), "{text}");

        let original = std::fs::read_to_string(&out).expect("read");
        let mut lines: Vec<&str> = original.lines().collect();
        let first = usize::from(format == "csv"); // the CSV header
        let write = |lines: &[&str]| {
            std::fs::write(&out, lines.join("\n") + "\n").expect("write");
        };

        // Record 2 edited.
        let edited = lines[first + 1].replace("bo@example.com", "mallory@example.com");
        let mut changed = lines.clone();
        changed[first + 1] = &edited;
        write(&changed);
        let (ok, text) = verify(&out, &key);
        assert!(!ok, "{text}");
        assert!(
            text.contains("record 2") && text.contains("altered"),
            "{text}"
        );

        // Record 3 removed.
        let mut removed = lines.clone();
        removed.remove(first + 2);
        write(&removed);
        let (ok, text) = verify(&out, &key);
        assert!(!ok && text.contains("record 3"), "{text}");

        // Records 1 and 2 swapped.
        lines.swap(first, first + 1);
        write(&lines);
        let (ok, text) = verify(&out, &key);
        assert!(!ok && text.contains("record 1"), "{text}");
    }
}
