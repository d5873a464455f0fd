//! `portcullis-cp explain` and `POST /admin/v1/explain` against a real control plane: the
//! decision with its determining policies, and for every other policy the scope or clause
//! that failed; policies left to `cedar-policy` are listed with the reason.

mod common;

use common::{Scim, cp, start, write_config};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const POLICIES: &str = r#"
@id("legal-no-gpt4o")
forbid (principal, action == Action::"chat", resource == Model::"gpt-4o")
  when { principal.department == "Legal" };

@id("eng-loopback")
permit (principal in Group::"okta/Eng", action == Action::"chat", resource)
  when { ip("127.0.0.1").isLoopback() };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_deciding_policies_and_why_others_did_not_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, hash) = portcullis_controlplane::cli::new_token();
    let config = write_config(dir.path(), &hash);
    std::fs::write(dir.path().join("policies/extra.cedar"), POLICIES).expect("policy");
    let server = start(&config);
    let scim = Scim::new(format!("{}/okta", server.scim), &token);

    let mut ids = Vec::new();
    for (name, dept) in [("ana", "Sales"), ("lee", "Legal"), ("bo", "Ops")] {
        let (status, _, body) = scim
            .call(
                reqwest::Method::POST,
                "/Users",
                Some(json!({
                    "schemas": [
                        "urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
                    ],
                    "userName": format!("{name}@example.com"),
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": dept},
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let (status, _, body) = scim
        .call(
            reqwest::Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Sales",
                "members": [{"value": ids[0]}, {"value": ids[1]}],
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let admin = server.admin.clone();
    let explain = |user: &str, extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--admin-url",
            &admin,
            "--source",
            "okta",
            "--user",
            user,
            "--provider",
            "openai",
            "--model",
            "gpt-4o",
        ];
        args.extend_from_slice(extra);
        cp(&args)
    };

    // The snapshot with the group is published shortly after the SCIM calls.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let (ok, text) = explain("ana@example.com", &[]);
        if ok && text.contains("ALLOW") {
            break text;
        }
        assert!(Instant::now() < deadline, "never allowed: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        text.contains("decision: ALLOW (permitted) by base.cedar:1"),
        "{text}"
    );
    assert!(
        text.contains("legal-no-gpt4o") && text.contains("when clause #1 failed"),
        "{text}"
    );
    assert!(
        text.contains("eng-loopback") && text.contains("decided by cedar-policy"),
        "{text}"
    );

    // A forbid overrides the permit, and says so.
    let (ok, text) = explain("lee@example.com", &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("decision: DENY (forbidden) by legal-no-gpt4o"),
        "{text}"
    );

    // No permit: the scope that kept each policy out.
    let (ok, text) = explain("bo@example.com", &["--json"]);
    assert!(ok, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    let e = &v["explanation"];
    assert_eq!(e["decision"]["effect"], "deny", "{v}");
    assert_eq!(e["decision"]["reason"], "no_matching_permit", "{v}");
    let base = e["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .find(|p| p["id"] == "base.cedar:1")
        .expect("base policy listed");
    assert_eq!(base["verdict"], "out_of_scope", "{base}");
    assert_eq!(base["part"], "principal", "{base}");
    assert!(
        base["detail"].as_str().unwrap_or("").contains("okta/Sales"),
        "{base}"
    );
    // Which policies the compiled path leaves to Cedar, and why.
    assert_eq!(e["fallback"][0]["id"], "eng-loopback", "{v}");
    assert!(
        e["fallback"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("extension"),
        "{v}"
    );

    // `policies check` reports the same split offline.
    let (ok, text) = cp(&[
        "policies",
        "check",
        &dir.path().join("policies").display().to_string(),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("2 on the compiled decision path, 1 decided by cedar-policy")
            && text.contains("eng-loopback"),
        "{text}"
    );

    // Bad input is named.
    let (ok, text) = cp(&[
        "explain",
        "--admin-url",
        &admin,
        "--source",
        "okta",
        "--user",
        "ana@example.com",
        "--model",
        "gpt-4o",
    ]);
    assert!(!ok && text.contains("a model needs its provider"), "{text}");
    let (ok, text) = explain("nobody@example.com", &[]);
    assert!(!ok && text.contains("no user nobody@example.com"), "{text}");
    let (ok, text) = explain("ana@example.com", &["--action", "teleport"]);
    assert!(!ok && text.contains("unknown action"), "{text}");
    let (ok, text) = explain("ana@example.com", &["--action", "mcp:tools/call"]);
    assert!(!ok && text.contains("does not apply to Model"), "{text}");
}
