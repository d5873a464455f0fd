//! MCP list responses filtered per principal: `tools/list`, `resources/list` and
//! `prompts/list` answers keep only the tools, resources and prompts the principal may use
//! (`mcp:tools/call`, `mcp:resources/read`, `mcp:prompts/get` on each, decided by the same
//! snapshot as the list request). JSON and server-sent-event bodies are both rewritten; an
//! item without its name (or URI) is dropped.
//!
//! The response is read whole before anything reaches the client (list answers are small and
//! end; the bound is [`MAX_LIST_BYTES`]), and the upstream is asked not to compress it.

use serde_json::Value;

/// Largest list response rewritten; a larger one is refused rather than passed unfiltered.
pub const MAX_LIST_BYTES: usize = 16 << 20;

/// What to keep in a list response.
pub struct ListFilter<'a> {
    /// The field of `result` holding the items (`tools`, `resources`, `prompts`).
    pub field: &'static str,
    /// Whether the principal may use an item.
    pub keep: &'a (dyn Fn(&Value) -> bool + Send + Sync),
}

impl std::fmt::Debug for ListFilter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListFilter")
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

impl ListFilter<'_> {
    /// Filters one JSON-RPC message in place; returns how many items it removed.
    fn message(&self, msg: &mut Value) -> usize {
        let Some(items) = msg
            .get_mut("result")
            .and_then(|r| r.get_mut(self.field))
            .and_then(Value::as_array_mut)
        else {
            return 0;
        };
        let before = items.len();
        items.retain(|item| (self.keep)(item));
        before - items.len()
    }

    /// The body with the items the principal may not use removed, and how many there were.
    /// `None` when the body is not something this understands (it is then passed on as is:
    /// an error, or no list at all).
    pub fn rewrite(&self, body: &[u8], event_stream: bool) -> Option<(Vec<u8>, usize)> {
        if event_stream {
            return self.rewrite_events(body);
        }
        let mut v: Value = serde_json::from_slice(body).ok()?;
        let hidden = self.message(&mut v);
        Some((serde_json::to_vec(&v).ok()?, hidden))
    }

    /// Server-sent events: each event's `data` lines are one JSON-RPC message; other fields
    /// (`event`, `id`, `retry`, comments) are kept as they were.
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
                    hidden += self.message(&mut msg);
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
        Some((out.into_bytes(), hidden))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keep_not_export(item: &Value) -> bool {
        item["name"]
            .as_str()
            .is_some_and(|n| n != "export_all_contacts")
    }

    fn filter() -> ListFilter<'static> {
        ListFilter {
            field: "tools",
            keep: &keep_not_export,
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
}
