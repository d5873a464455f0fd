//! Discovery (RFC 7644 §4, RFC 7643 §5–7): `/ServiceProviderConfig`, `/ResourceTypes` and
//! `/Schemas`, generated from the same definitions that drive filtering, PATCH and
//! validation, so what is published is exactly what is supported. Read-only: other methods get
//! 405, and a `filter` gets 403 (RFC 7644 §4).

use super::http::{ScimResponse, base_url};
use super::schema::{AttrDef, AttrType, Mutability, ResourceType, Returned, SchemaDef, Uniqueness};
use super::{ScimError, ScimState};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

fn refuse_filter(query: &HashMap<String, String>) -> Result<(), ScimError> {
    if query.keys().any(|k| k.eq_ignore_ascii_case("filter")) {
        return Err(ScimError::new(
            403,
            None,
            "discovery endpoints do not support filtering",
        ));
    }
    Ok(())
}

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// `GET /ServiceProviderConfig`
pub async fn service_provider_config(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    refuse_filter(&query)?;
    let base = base_url(&headers, &source);
    let l = &state.config.scim;
    Ok(ScimResponse::ok(json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://example.invalid/portcullis/scim",
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": l.bulk_max_operations,
            "maxPayloadSize": l.bulk_max_payload_bytes,
        },
        "filter": {"supported": true, "maxResults": l.max_page},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A bearer token issued for this identity source (portcullis-cp scim-token create).",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })))
}

/// `GET /ResourceTypes`
pub async fn resource_types(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    refuse_filter(&query)?;
    let base = base_url(&headers, &source);
    let types = state.types(&source);
    Ok(ScimResponse::ok(list(
        types
            .resource_types()
            .iter()
            .map(|rt| resource_type_json(rt, &base))
            .collect(),
    )))
}

/// `GET /ResourceTypes/{name}`
pub async fn resource_type(
    State(state): State<ScimState>,
    Path((source, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    refuse_filter(&query)?;
    let base = base_url(&headers, &source);
    state
        .types(&source)
        .resource_types()
        .iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(&name))
        .map(|rt| ScimResponse::ok(resource_type_json(rt, &base)))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name}")))
}

/// `GET /Schemas`
pub async fn schemas(
    State(state): State<ScimState>,
    Path(source): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    refuse_filter(&query)?;
    let base = base_url(&headers, &source);
    Ok(ScimResponse::ok(list(
        state
            .types(&source)
            .schemas()
            .iter()
            .map(|s| schema_json(s, &base))
            .collect(),
    )))
}

/// `GET /Schemas/{urn}`
pub async fn schema(
    State(state): State<ScimState>,
    Path((source, urn)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    refuse_filter(&query)?;
    let base = base_url(&headers, &source);
    state
        .types(&source)
        .schemas()
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(&urn))
        .map(|s| ScimResponse::ok(schema_json(s, &base)))
        .ok_or_else(|| ScimError::not_found(format!("no schema {urn}")))
}

/// Any write to a discovery endpoint.
pub async fn read_only() -> ScimError {
    ScimError::new(405, None, "discovery endpoints are read-only")
}

/// A resource type document (RFC 7643 §6).
pub fn resource_type_json(rt: &ResourceType, base: &str) -> Value {
    let extensions: Vec<Value> = rt
        .extensions
        .iter()
        .map(|e| json!({"schema": e.id, "required": false}))
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.core.description,
        "schema": rt.core.id,
        "schemaExtensions": extensions,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{}", rt.name),
        },
    })
}

/// A schema document (RFC 7643 §7).
pub fn schema_json(s: &SchemaDef, base: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attributes.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{}", s.id),
        },
    })
}

fn attr_json(a: &AttrDef) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": match a.ty {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
            AttrType::Binary => "binary",
        },
        "multiValued": a.multi_valued,
        "description": a.name,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": match a.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        },
        "returned": match a.returned {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        },
        "uniqueness": match a.uniqueness {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        },
    });
    if !a.canonical_values.is_empty() {
        v["canonicalValues"] = json!(a.canonical_values);
    }
    if a.ty == AttrType::Reference {
        v["referenceTypes"] = json!(a.reference_types);
    }
    if a.ty == AttrType::Complex {
        v["subAttributes"] = Value::Array(a.sub_attributes.iter().map(attr_json).collect());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{GROUP, USER};

    #[test]
    fn schemas_describe_what_is_supported() {
        let u = schema_json(USER.core, "http://h/scim/v2/okta");
        let attrs = u["attributes"].as_array().expect("attributes");
        let user_name = attrs
            .iter()
            .find(|a| a["name"] == "userName")
            .expect("userName");
        assert_eq!(user_name["required"], true);
        assert_eq!(user_name["uniqueness"], "server");
        let emails = attrs
            .iter()
            .find(|a| a["name"] == "emails")
            .expect("emails");
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"][0]["name"], "value");
        let password = attrs
            .iter()
            .find(|a| a["name"] == "password")
            .expect("password");
        assert_eq!(password["returned"], "never");
        let rt = resource_type_json(&GROUP, "http://h");
        assert_eq!(rt["endpoint"], "/Groups");
        assert_eq!(rt["schemaExtensions"], json!([]));
        let rt = resource_type_json(&USER, "http://h");
        assert_eq!(
            rt["schemaExtensions"][0]["schema"],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        );
    }
}
