//! A small SCIM client that pushes identities the way an IdP does (Okta-style PATCH bodies).

use anyhow::{Context, bail};
use serde_json::{Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM client for one source.
#[derive(Debug, Clone)]
pub struct ScimClient {
    /// `http://host:port/scim/v2/<source>`
    pub base: String,
    token: String,
    http: reqwest::Client,
}

/// A SCIM response that was not 2xx.
#[derive(Debug, thiserror::Error)]
#[error("SCIM {method} {path}: {status} {body}")]
pub struct ScimFailure {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: String,
}

impl ScimClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            token: token.into(),
            http: crate::http_client(std::time::Duration::from_secs(30)),
        }
    }

    /// Sends a request; returns status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("SCIM {method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, v))
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        ok: &[u16],
    ) -> anyhow::Result<Value> {
        let (status, v) = self.call(method.clone(), path, body).await?;
        if !ok.contains(&status) {
            bail!(ScimFailure {
                method: method.to_string(),
                path: path.to_owned(),
                status,
                body: v.to_string()
            });
        }
        Ok(v)
    }

    /// Creates a user; returns its id.
    pub async fn create_user(
        &self,
        user_name: &str,
        display_name: &str,
        department: Option<&str>,
    ) -> anyhow::Result<String> {
        self.create_user_with(user_name, display_name, department, &[])
            .await
    }

    /// Creates a user that also carries custom extensions, given as `(schema URN, object)`.
    pub async fn create_user_with(
        &self,
        user_name: &str,
        display_name: &str,
        department: Option<&str>,
        extensions: &[(&str, Value)],
    ) -> anyhow::Result<String> {
        let mut body = json!({
            "schemas": [USER],
            "userName": user_name,
            "displayName": display_name,
            "emails": [{"value": user_name, "type": "work", "primary": true}],
            "active": true,
        });
        let mut schemas = vec![json!(USER)];
        if let Some(d) = department {
            schemas.push(json!(ENTERPRISE));
            body[ENTERPRISE] = json!({ "department": d });
        }
        for (urn, value) in extensions {
            schemas.push(json!(urn));
            body[*urn] = value.clone();
        }
        body["schemas"] = Value::Array(schemas);
        let v = self
            .expect(reqwest::Method::POST, "/Users", Some(body), &[201])
            .await?;
        id_of(&v)
    }

    /// Creates a group with member ids; returns its id.
    pub async fn create_group(&self, name: &str, members: &[&str]) -> anyhow::Result<String> {
        let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
        let body = json!({ "schemas": [GROUP], "displayName": name, "members": members });
        let v = self
            .expect(reqwest::Method::POST, "/Groups", Some(body), &[201])
            .await?;
        id_of(&v)
    }

    /// Finds a resource id by `filter` (`/Users` or `/Groups`).
    pub async fn find(
        &self,
        endpoint: &str,
        attribute: &str,
        value: &str,
    ) -> anyhow::Result<Option<String>> {
        let filter = format!("{attribute} eq \"{value}\"");
        let path = format!("{endpoint}?filter={}", urlencode(&filter));
        let v = self
            .expect(reqwest::Method::GET, &path, None, &[200])
            .await?;
        Ok(v["Resources"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["id"].as_str())
            .map(str::to_owned))
    }

    /// Okta-style deactivation/reactivation: `replace` with a value object.
    pub async fn set_active(&self, user_id: &str, active: bool) -> anyhow::Result<Value> {
        let body = json!({
            "schemas": [PATCH],
            "Operations": [{ "op": "replace", "value": { "active": active } }],
        });
        self.expect(
            reqwest::Method::PATCH,
            &format!("/Users/{user_id}"),
            Some(body),
            &[200, 204],
        )
        .await
    }

    /// Adds and removes members in one atomic PATCH.
    pub async fn change_members(
        &self,
        group_id: &str,
        add: &[&str],
        remove: &[&str],
    ) -> anyhow::Result<Value> {
        let mut ops = Vec::new();
        if !add.is_empty() {
            let values: Vec<Value> = add.iter().map(|m| json!({ "value": m })).collect();
            ops.push(json!({ "op": "add", "path": "members", "value": values }));
        }
        for m in remove {
            ops.push(json!({ "op": "remove", "path": format!("members[value eq \"{m}\"]") }));
        }
        let body = json!({ "schemas": [PATCH], "Operations": ops });
        self.expect(
            reqwest::Method::PATCH,
            &format!("/Groups/{group_id}"),
            Some(body),
            &[200, 204],
        )
        .await
    }
}

fn id_of(v: &Value) -> anyhow::Result<String> {
    v["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("SCIM response has no id: {v}"))
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
