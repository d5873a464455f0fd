//! MCP list responses filtered per principal: `tools/list`, `resources/list` and
//! `prompts/list` answers keep only the tools, resources and prompts the principal may use
//! (`mcp:tools/call`, `mcp:resources/read`, `mcp:prompts/get` on each, decided by the same
//! snapshot as the list request). JSON and server-sent-event bodies are both rewritten; an
//! item without its name (or URI) is dropped.
//!
//! The same rewrite answers a JSON-RPC batch: every message of the answer has each kind of
//! list the batch asked for filtered (whatever its id: ids are the client's to choose, and a
//! server may echo `1.0` as `1`), and the edge's refusals of the batch's other messages are
//! added to the answer.
//!
//! The response is read whole before anything reaches the client (list answers are small and
//! end; the bound is [`MAX_LIST_BYTES`]), and the upstream is asked not to compress it.

use serde_json::Value;

/// Largest list response rewritten; a larger one is refused rather than passed unfiltered.
pub const MAX_LIST_BYTES: usize = 16 << 20;

/// Whether the principal may use an item of the list in a field (`tools`, `resources`,
/// `prompts`).
pub type Keep<'a> = &'a (dyn Fn(&'static str, &Value) -> bool + Send + Sync);

/// How to rewrite an MCP answer.
pub struct ListFilter<'a> {
    /// The kinds of list the request asked for: the fields of `result` holding their items.
    pub lists: Vec<&'static str>,
    pub keep: Keep<'a>,
    /// JSON-RPC messages the edge adds to the answer (refusals of a batch's other messages).
    pub extra: Vec<Value>,
}

impl std::fmt::Debug for ListFilter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListFilter")
            .field("lists", &self.lists)
            .field("extra", &self.extra.len())
            .finish_non_exhaustive()
    }
}

impl ListFilter<'_> {
    /// A metric label: the list filtered, or `batch`.
    pub fn label(&self) -> &'static str {
        match (self.lists.as_slice(), self.extra.is_empty()) {
            ([field], true) => field,
            _ => "batch",
        }
    }

    /// Filters one JSON-RPC message in place; returns how many items it removed.
    fn message(&self, msg: &mut Value) -> usize {
        let Some(result) = msg.get_mut("result") else {
            return 0;
        };
        let mut hidden = 0;
        for &field in &self.lists {
            if let Some(items) = result.get_mut(field).and_then(Value::as_array_mut) {
                let before = items.len();
                items.retain(|item| (self.keep)(field, item));
                hidden += before - items.len();
            }
        }
        hidden
    }

    /// The body with the items the principal may not use removed and the edge's messages
    /// added, and how many items were removed. `None` when the body is not something this
    /// understands (it is then passed on as is: an error, or no list at all).
    pub fn rewrite(&self, body: &[u8], event_stream: bool) -> Option<(Vec<u8>, usize)> {
        if event_stream {
            return self.rewrite_events(body);
        }
        // An upstream that had nothing to answer (202) leaves only the edge's messages.
        let mut v: Value = if body.iter().all(u8::is_ascii_whitespace) && !self.extra.is_empty() {
            Value::Array(Vec::new())
        } else {
            serde_json::from_slice(body).ok()?
        };
        let mut hidden = 0;
        match &mut v {
            Value::Array(messages) => {
                for m in messages.iter_mut() {
                    hidden += self.message(m);
                }
            }
            single => hidden += self.message(single),
        }
        if !self.extra.is_empty() {
            v = match v {
                Value::Array(mut messages) => {
                    messages.extend(self.extra.iter().cloned());
                    Value::Array(messages)
                }
                single => Value::Array(
                    std::iter::once(single)
                        .chain(self.extra.iter().cloned())
                        .collect(),
                ),
            };
        }
        Some((serde_json::to_vec(&v).ok()?, hidden))
    }

    /// Server-sent events: each event's `data` lines are one JSON-RPC message (or a batch of
    /// them); other fields (`event`, `id`, `retry`, comments) are kept as they were. The
    /// edge's messages follow as events of their own.
    fn rewrite_events(&self, body: &[u8]) -> Option<(Vec<u8>, usize)> {
        let text = std::str::from_utf8(body).ok()?;
        let normalized = text.replace("\r\n", "\n");
        let mut out = String::with_capacity(normalized.len());
        let mut hidden = 0;
        for event in normalized.split_inclusive("\n\n") {
            let (block, end) = match event.strip_suffix("\n\n") {
                Some(b) => (b, "\n\n"),
                None => (event, ""),
            };
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            let parsed = (!data.is_empty())
                .then(|| serde_json::from_str::<Value>(&data.join("\n")).ok())
                .flatten();
            match parsed {
                Some(mut msg) => {
                    match &mut msg {
                        Value::Array(messages) => {
                            for m in messages.iter_mut() {
                                hidden += self.message(m);
                            }
                        }
                        single => hidden += self.message(single),
                    }
                    let mut wrote_data = false;
                    for line in block.lines() {
                        if line.starts_with("data:") {
                            if !wrote_data {
                                out.push_str("data: ");
                                out.push_str(&msg.to_string());
                                out.push('\n');
                                wrote_data = true;
                            }
                        } else {
                            out.push_str(line);
                            out.push('\n');
                        }
                    }
                    // `lines()` dropped the block's last newline; the separator restores it.
                    out.pop();
                    out.push_str(end);
                }
                None => out.push_str(event),
            }
        }
        if !self.extra.is_empty() && !out.is_empty() && !out.ends_with("\n\n") {
            out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
        }
        for m in &self.extra {
            out.push_str("event: message\ndata: ");
            out.push_str(&m.to_string());
            out.push_str("\n\n");
        }
        Some((out.into_bytes(), hidden))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keep_not_export(_field: &'static str, item: &Value) -> bool {
        item["name"]
            .as_str()
            .is_some_and(|n| n != "export_all_contacts")
    }

    fn filter() -> ListFilter<'static> {
        ListFilter {
            lists: vec!["tools"],
            keep: &keep_not_export,
            extra: Vec::new(),
        }
    }

    #[test]
    fn json_lists_keep_only_what_may_be_used() {
        let body = json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": [
            {"name": "search_accounts"}, {"name": "export_all_contacts"}, {"title": "no name"}
        ], "nextCursor": "c2"}});
        let (out, hidden) = filter()
            .rewrite(body.to_string().as_bytes(), false)
            .expect("rewritten");
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(hidden, 2);
        assert_eq!(v["result"]["tools"], json!([{"name": "search_accounts"}]));
        assert_eq!(v["result"]["nextCursor"], "c2");
        assert_eq!(v["id"], 3);
    }

    #[test]
    fn event_streams_are_rewritten_event_by_event() {
        let list = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
            {"name": "export_all_contacts"}, {"name": "update_opportunity"}]}});
        let body = format!(
            ": comment\r\n\r\nevent: message\r\nid: 7\r\ndata: {list}\r\n\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}}\n\n"
        );
        let (out, hidden) = filter().rewrite(body.as_bytes(), true).expect("rewritten");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(hidden, 1);
        assert!(
            text.starts_with(": comment\n\nevent: message\nid: 7\ndata: {"),
            "{text}"
        );
        assert!(!text.contains("export_all_contacts"), "{text}");
        assert!(text.contains("update_opportunity"));
        assert!(text.ends_with("\"notifications/message\"}\n\n"), "{text}");
        assert_eq!(text.matches("\n\n").count(), 3, "{text}");
    }

    #[test]
    fn what_is_not_a_list_passes_unchanged() {
        let error = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "x"}});
        let (out, hidden) = filter()
            .rewrite(error.to_string().as_bytes(), false)
            .expect("json");
        assert_eq!(hidden, 0);
        assert_eq!(serde_json::from_slice::<Value>(&out).expect("json"), error);
        assert!(filter().rewrite(b"not json", false).is_none());
    }

    #[test]
    fn batch_answers_have_every_asked_list_filtered_and_get_the_edge_s_refusals() {
        let keep = |field: &'static str, item: &Value| match field {
            "tools" => item["name"] != "export_all_contacts",
            _ => item["name"] != "secret_prompt",
        };
        let refusal =
            json!({"jsonrpc": "2.0", "id": 9, "error": {"code": -32003, "message": "no"}});
        let filter = ListFilter {
            lists: vec!["tools", "prompts"],
            keep: &keep,
            extra: vec![refusal.clone()],
        };
        let answer = json!([
            {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "export_all_contacts"}, {"name": "search_accounts"}]}},
            {"jsonrpc": "2.0", "id": "p", "result": {"prompts": [{"name": "secret_prompt"}, {"name": "brief"}]}},
            // Whatever the id says (a server may echo 1.0 as 1, a client may reuse ids), every
            // list of an asked-for kind is filtered.
            {"jsonrpc": "2.0", "id": 1.0, "result": {"tools": [{"name": "export_all_contacts"}]}},
            {"jsonrpc": "2.0", "id": 5, "result": {"resources": [{"uri": "x"}]}}
        ]);
        let (out, hidden) = filter
            .rewrite(answer.to_string().as_bytes(), false)
            .expect("json");
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(hidden, 3);
        assert_eq!(
            v[0]["result"]["tools"],
            json!([{"name": "search_accounts"}])
        );
        assert_eq!(v[1]["result"]["prompts"], json!([{"name": "brief"}]));
        assert_eq!(v[2]["result"]["tools"], json!([]));
        assert_eq!(
            v[3]["result"]["resources"],
            json!([{"uri": "x"}]),
            "not asked for"
        );
        assert_eq!(v[4], refusal);
        // Nothing from the upstream (202): only the refusals.
        let (out, _) = filter.rewrite(b"", false).expect("json");
        assert_eq!(
            serde_json::from_slice::<Value>(&out).expect("json"),
            json!([refusal])
        );
        // An event stream gets them as events of their own.
        let (out, _) = filter
            .rewrite(format!("data: {answer}\n\n").as_bytes(), true)
            .expect("events");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.contains("secret_prompt"), "{text}");
        assert!(
            text.ends_with(&format!("event: message\ndata: {refusal}\n\n")),
            "{text}"
        );
    }
}
