//! `parse_body = "when_policies_read_it"`: a model call whose operation no policy reads the
//! model or stream flag of is decided without parsing its body; the default route, and an
//! operation a policy does read, still parse it.
//!
//! The quickstart policies read the model for `chat` (`resource == Model::"gpt-4o-mini"`) but
//! not for `embed` (`rnd-all-models` permits every LLM operation on any resource), so a
//! malformed embeddings body is refused as malformed on a parsing route and decided
//! (no permit for a sales user) on the lean one.

use portcullis_loadtest::cluster::NodeSetup;
use portcullis_loadtest::http::raw;
use portcullis_loadtest::{Cluster, ClusterOptions};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_no_policy_reads_are_not_parsed_on_routes_that_say_so() -> anyhow::Result<()> {
    let mut c = Cluster::start(ClusterOptions {
        nodes: 0,
        ..Default::default()
    })
    .await?;
    let i = c
        .add_node_with(
            "edge-lean",
            NodeSetup {
                extra_toml: Some(
                    r#"
[[routes]]
prefix = "/lean"
kind = "openai"
name = "openai"
upstream = "http://{upstream}"
parse_body = "when_policies_read_it"
[routes.credential]
header = "authorization"
prefix = "Bearer "
value = "KEY"
"#
                    .replace("KEY", portcullis_demo::configs::UPSTREAM_OPENAI_KEY),
                ),
                ..Default::default()
            },
        )
        .await?;
    let revision = c.cp_revision().await?;
    c.wait_node_revision(i, revision, std::time::Duration::from_secs(30))
        .await?;
    let edge = c.nodes[i].proxy;
    let token = c.token("alice@example.com");
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let call = |route: &str, op: &str| format!("http://{edge}/{route}/v1/{op}");
    let broken = b"{not json".to_vec();

    // The default route parses: a malformed body is a 400 whatever the operation.
    let r = raw(
        &c.http,
        Method::POST,
        &call("openai", "embeddings"),
        &headers,
        broken.clone(),
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.body);

    // The lean route: no policy reads the model of an embedding, so it is decided unread.
    let r = raw(
        &c.http,
        Method::POST,
        &call("lean", "embeddings"),
        &headers,
        broken.clone(),
    )
    .await?;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no policy permits embed")),
        "{}",
        r.body
    );

    // A chat's model is read by policies: parsed, so still a 400.
    let r = raw(
        &c.http,
        Method::POST,
        &call("lean", "chat/completions"),
        &headers,
        broken,
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.body);

    // And a well-formed chat is decided on its model as usual.
    let ok = br#"{"model":"gpt-4o-mini","messages":[]}"#.to_vec();
    let r = raw(
        &c.http,
        Method::POST,
        &call("lean", "chat/completions"),
        &headers,
        ok,
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    Ok(())
}
