//! The edge as the OAuth resource server of an MCP server behind it: RFC 9728 metadata at the
//! well-known path, `WWW-Authenticate` pointing to it on 401, tokens accepted only when their
//! `aud` names the resource, `insufficient_scope` when a required scope is missing, and the
//! client's token never passed upstream.

use jsonwebtoken::Algorithm;
use portcullis_loadtest::cluster::NodeSetup;
use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::{Value, json};

const RESOURCE: &str = "https://edge.example.test/mcp/crm";

async fn ping(c: &Cluster, i: usize, token: Option<&str>) -> anyhow::Result<(u16, String, Value)> {
    let mut req = c
        .http
        .post(format!("http://{}/mcp/crm", c.nodes[i].proxy))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.json().await.unwrap_or(Value::Null);
    Ok((status, challenge, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_is_the_oauth_resource_server_for_its_mcp_routes() -> anyhow::Result<()> {
    let mut c = Cluster::start(ClusterOptions {
        nodes: 0,
        ..Default::default()
    })
    .await?;
    let i = c
        .add_node_with(
            "edge-oauth",
            NodeSetup {
                extra_toml: Some(format!(
                    "[routes.oauth]\nresource = \"{RESOURCE}\"\nauthorization_servers = [\"https://login.example.test\"]\nscopes_supported = [\"crm\", \"crm.admin\"]\nrequired_scopes = [\"crm\"]\nresource_name = \"Demo CRM\"\n"
                )),
                ..Default::default()
            },
        )
        .await?;
    c.wait_node_revision(i, 1, std::time::Duration::from_secs(15))
        .await?;
    let edge = c.nodes[i].proxy;

    // The metadata, where RFC 9728 puts it for a resource with a path.
    let meta = c
        .get_json(&format!(
            "http://{edge}/.well-known/oauth-protected-resource/mcp/crm"
        ))
        .await?;
    assert_eq!(meta["resource"], RESOURCE);
    assert_eq!(
        meta["authorization_servers"],
        json!(["https://login.example.test"])
    );
    assert_eq!(meta["scopes_supported"], json!(["crm", "crm.admin"]));
    assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
    assert_eq!(meta["resource_name"], "Demo CRM");
    let missing = c
        .http
        .get(format!(
            "http://{edge}/.well-known/oauth-protected-resource/mcp/other"
        ))
        .send()
        .await?;
    assert_eq!(missing.status(), 404);

    let metadata_url = "https://edge.example.test/.well-known/oauth-protected-resource/mcp/crm";
    // No token: 401 pointing at the metadata, without an error code.
    let (status, challenge, body) = ping(&c, i, None).await?;
    assert_eq!(status, 401);
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{metadata_url}\"")
    );
    assert_eq!(body["jsonrpc"], "2.0");

    // A token for another audience (the gateway's, not this resource's): invalid_token.
    let mut claims = c.issuer.claims("alice@example.com", 600);
    let for_gateway = c.issuer.sign(Algorithm::ES256, &claims);
    let (status, challenge, body) = ping(&c, i, Some(&for_gateway)).await?;
    assert_eq!(status, 401, "{body}");
    assert!(
        challenge.starts_with(&format!(
            "Bearer resource_metadata=\"{metadata_url}\", error=\"invalid_token\""
        )),
        "{challenge}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(RESOURCE),
        "{body}"
    );

    // Issued for this resource, without the required scope: 403 insufficient_scope.
    claims["aud"] = json!(["portcullis", RESOURCE]);
    claims["scope"] = json!("profile crm.read");
    let unscoped = c.issuer.sign(Algorithm::ES256, &claims);
    let (status, challenge, body) = ping(&c, i, Some(&unscoped)).await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        challenge,
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"crm\", resource_metadata=\"{metadata_url}\""
        )
    );
    assert_eq!(body["error"]["code"], -32003);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("crm"),
        "{body}"
    );

    // With the scope: decided by policy as usual, and answered.
    claims["scope"] = json!("profile crm");
    let good = c.issuer.sign(Algorithm::ES256, &claims);
    let (status, _, body) = ping(&c, i, Some(&good)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 5);
    assert!(body["result"]["tools"].is_array(), "{body}");

    // The client's token never reached the MCP server.
    let seen = c
        .get_json(&format!("http://{}/_demo/requests", c.upstream))
        .await?
        .to_string();
    assert!(
        !seen.contains(&good),
        "the client's token reached the upstream"
    );
    Ok(())
}
