//! Listing and searching (RFC 7644 §3.4.2, §3.4.3): `GET /Users?filter=…`, `POST
//! /Users/.search`, the same for Groups, and `POST /.search` across both.
//!
//! Results are in a stable order (by id) so paging is consistent. Without a filter a page is
//! read straight from the store. With one, every candidate is examined (an indexed
//! `userName`, `externalId` or `displayName` equality narrows the candidates first); when more
//! than `scim.max_scan` would have to be examined the answer is 400 `tooMany`.

use super::filter::{self, CompValue, CompareOp, Filter};
use super::project::Projection;
use super::render::{self, GroupRef};
use super::schema::ResourceType;
use super::{ScimError, ScimType};
use crate::config::ScimConfig;
use crate::store::{self, GroupRow, MembershipIndex, UserRow};
use rusqlite::Connection;
use serde_json::{Value, json};
use std::collections::HashMap;

pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// A list or search request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// 1-based.
    pub start_index: usize,
    pub count: usize,
    pub filter: Option<Filter>,
    pub projection: Projection,
}

impl ListQuery {
    /// From a `GET` query string. A filter on `password` in a URL is refused (`sensitive`).
    pub fn from_query(
        query: &HashMap<String, String>,
        rts: &[&ResourceType],
        limits: &ScimConfig,
    ) -> Result<Self, ScimError> {
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let int = |name: &str| -> Result<Option<i64>, ScimError> {
            get(name)
                .map(|v| {
                    v.trim().parse::<i64>().map_err(|_| {
                        ScimError::invalid_value(format!("{name} must be an integer, got {v:?}"))
                    })
                })
                .transpose()
        };
        let filter = parse_filter(get("filter"), rts)?;
        if let Some(f) = &filter
            && mentions(f, "password")
        {
            return Err(ScimError::new(
                403,
                Some(ScimType::Sensitive),
                "filters on password are not accepted in a URL; use POST .search",
            ));
        }
        Ok(Self {
            start_index: start_index(int("startIndex")?),
            count: count(int("count")?, limits),
            filter,
            projection: Projection::from_query(query)?,
        })
    }

    /// From a `SearchRequest` body.
    pub fn from_search(
        body: &Value,
        rts: &[&ResourceType],
        limits: &ScimConfig,
    ) -> Result<Self, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a SearchRequest must be a JSON object"))?;
        let get = |name: &str| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        if let Some(schemas) = get("schemas") {
            let ok = schemas.as_array().is_some_and(|l| {
                l.iter().any(|s| {
                    s.as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(SEARCH_SCHEMA))
                })
            });
            if !ok {
                return Err(ScimError::invalid_syntax(format!(
                    "schemas must list {SEARCH_SCHEMA}"
                )));
            }
        }
        let strings = |name: &str| -> Result<Vec<String>, ScimError> {
            match get(name) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_owned).ok_or_else(|| {
                            ScimError::invalid_syntax(format!("{name} must be an array of strings"))
                        })
                    })
                    .collect(),
                Some(Value::String(s)) => Ok(s.split(',').map(|p| p.trim().to_owned()).collect()),
                Some(_) => Err(ScimError::invalid_syntax(format!(
                    "{name} must be an array of strings"
                ))),
            }
        };
        let int = |name: &str| -> Result<Option<i64>, ScimError> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
            }
        };
        let filter = match get("filter") {
            None | Some(Value::Null) => None,
            Some(Value::String(f)) => parse_filter(Some(f), rts)?,
            Some(_) => return Err(ScimError::invalid_filter("filter must be a string")),
        };
        Ok(Self {
            start_index: start_index(int("startIndex")?),
            count: count(int("count")?, limits),
            filter,
            projection: Projection::from_lists(
                &strings("attributes")?,
                &strings("excludedAttributes")?,
            )?,
        })
    }
}

/// RFC 7644 §3.4.2.4: `startIndex` below 1 means 1.
fn start_index(v: Option<i64>) -> usize {
    v.unwrap_or(1).max(1) as usize
}

/// A negative `count` means 0; absent means as many as a page holds.
fn count(v: Option<i64>, limits: &ScimConfig) -> usize {
    v.map(|c| c.clamp(0, limits.max_page as i64) as usize)
        .unwrap_or(limits.max_page)
}

fn parse_filter(text: Option<&str>, rts: &[&ResourceType]) -> Result<Option<Filter>, ScimError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let f = filter::parse(text)?;
    // Valid for at least one of the resource types searched.
    let mut last = None;
    for rt in rts {
        match filter::validate(&f, rt) {
            Ok(()) => return Ok(Some(f)),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e),
        None => Ok(Some(f)),
    }
}

fn mentions(f: &Filter, attr: &str) -> bool {
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => mentions(a, attr) || mentions(b, attr),
        Filter::Not(a) => mentions(a, attr),
        Filter::Present(p) | Filter::Compare(p, _, _) => p.attr.eq_ignore_ascii_case(attr),
        Filter::ValuePath(p, inner) => p.attr.eq_ignore_ascii_case(attr) || mentions(inner, attr),
    }
}

/// The value of `attr eq "…"` when the whole filter is that comparison.
fn equality(f: &Filter, rt: &ResourceType, attr: &str) -> Option<String> {
    let Filter::Compare(p, CompareOp::Eq, CompValue::String(v)) = f else {
        return None;
    };
    let core = p.uri.as_deref().is_none_or(|u| rt.is_core(u));
    (core && p.sub.is_none() && p.attr.eq_ignore_ascii_case(attr)).then(|| v.clone())
}

/// A `ListResponse`.
pub fn list_response(total: usize, start_index: usize, page: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": page.len(),
        "Resources": page,
    })
}

fn page_of<T>(all: Vec<T>, q: &ListQuery) -> Vec<T> {
    all.into_iter()
        .skip(q.start_index - 1)
        .take(q.count)
        .collect()
}

fn too_many(n: u64, limits: &ScimConfig) -> Result<(), ScimError> {
    if n as usize > limits.max_scan {
        return Err(ScimError::bad_request(
            ScimType::TooMany,
            format!(
                "the filter would examine {n} resources, more than this server's limit of {}; narrow it",
                limits.max_scan
            ),
        ));
    }
    Ok(())
}

fn group_refs(index: &MembershipIndex, id: &str) -> Vec<GroupRef> {
    index
        .groups_of(id)
        .into_iter()
        .map(|(id, display, direct)| GroupRef {
            id,
            display,
            kind: if direct { "direct" } else { "indirect" },
        })
        .collect()
}

/// Every user matching, as full representations, and the total.
fn matching_users(
    c: &Connection,
    source: &str,
    q: &ListQuery,
    rt: &ResourceType,
    base: &str,
    limits: &ScimConfig,
) -> Result<(Vec<Value>, usize), ScimError> {
    let Some(f) = &q.filter else {
        let total = store::count_users(c, source)? as usize;
        let rows = store::page_users(c, source, (q.start_index - 1) as u64, q.count as u64)?;
        let page = rows
            .iter()
            .map(|u| Ok(render::user(u, &super::users::groups_of(c, &u.id)?, base)))
            .collect::<Result<Vec<_>, ScimError>>()?;
        return Ok((page, total));
    };
    let candidates: Vec<UserRow> = if let Some(name) = equality(f, rt, "userName") {
        store::find_user_by_name(c, source, &name)?
            .into_iter()
            .collect()
    } else if let Some(ext) = equality(f, rt, "externalId") {
        store::find_users_by_external_id(c, source, &ext)?
    } else {
        too_many(store::count_users(c, source)?, limits)?;
        store::list_users(c, Some(source))?
    };
    let index = MembershipIndex::load(c, source)?;
    let matched: Vec<Value> = candidates
        .iter()
        .map(|u| render::user(u, &group_refs(&index, &u.id), base))
        .filter(|r| filter::matches(f, r, rt))
        .collect();
    let total = matched.len();
    Ok((page_of(matched, q), total))
}

/// Every group matching, as full representations (members only if wanted), and the total.
fn matching_groups(
    c: &Connection,
    source: &str,
    q: &ListQuery,
    rt: &ResourceType,
    base: &str,
    limits: &ScimConfig,
) -> Result<(Vec<Value>, usize), ScimError> {
    let with_members = q.projection.wants("members");
    let render = |g: &GroupRow| {
        let mut v = render::group(g, base);
        if !with_members && let Value::Object(m) = &mut v {
            m.remove("members");
        }
        v
    };
    let Some(f) = &q.filter else {
        let total = store::count_groups(c, source)? as usize;
        let rows = store::page_groups(
            c,
            source,
            (q.start_index - 1) as u64,
            q.count as u64,
            with_members,
        )?;
        return Ok((rows.iter().map(render).collect(), total));
    };
    let candidates: Vec<GroupRow> = if let Some(name) = equality(f, rt, "displayName") {
        store::find_group_by_name(c, source, &name)?
            .into_iter()
            .collect()
    } else {
        too_many(store::count_groups(c, source)?, limits)?;
        store::list_groups(c, Some(source))?
    };
    let matched: Vec<Value> = candidates
        .iter()
        .filter(|g| filter::matches(f, &render::group(g, base), rt))
        .map(render)
        .collect();
    let total = matched.len();
    Ok((page_of(matched, q), total))
}

/// Runs a query on one resource type and answers with a projected `ListResponse`.
pub fn run(
    c: &Connection,
    source: &str,
    q: &ListQuery,
    rt: &ResourceType,
    base: &str,
    limits: &ScimConfig,
) -> Result<Value, ScimError> {
    let (page, total) = if rt.name == "Group" {
        matching_groups(c, source, q, rt, base, limits)?
    } else {
        matching_users(c, source, q, rt, base, limits)?
    };
    let page = page
        .into_iter()
        .map(|r| q.projection.apply(r, rt))
        .collect();
    Ok(list_response(total, q.start_index, page))
}

/// `POST /.search`: users then groups, paged together.
pub fn run_all(
    c: &Connection,
    source: &str,
    q: &ListQuery,
    user_rt: &ResourceType,
    group_rt: &ResourceType,
    base: &str,
    limits: &ScimConfig,
) -> Result<Value, ScimError> {
    let everything = ListQuery {
        start_index: 1,
        count: usize::MAX,
        ..q.clone()
    };
    let applies = |rt: &ResourceType| {
        q.filter
            .as_ref()
            .is_none_or(|f| filter::validate(f, rt).is_ok())
    };
    let mut all: Vec<Value> = Vec::new();
    if applies(user_rt) {
        let (users, _) = matching_users(c, source, &everything, user_rt, base, limits)?;
        all.extend(users.into_iter().map(|r| q.projection.apply(r, user_rt)));
    }
    if applies(group_rt) {
        let (groups, _) = matching_groups(c, source, &everything, group_rt, base, limits)?;
        all.extend(groups.into_iter().map(|r| q.projection.apply(r, group_rt)));
    }
    let total = all.len();
    Ok(list_response(total, q.start_index, page_of(all, q)))
}
