//! The tools an LLM request offers the model: the `tools` array of an OpenAI (chat
//! completions, responses, Azure) or Anthropic (messages) request.
//!
//! When the policies govern tools ([`Engine::governs_tools`]), each distinct tool is decided as
//! `Action::"llm:tool"` on `LlmTool::"<name>"` under the route's provider. A forbidden tool
//! refuses the request, unless every policy forbidding it is annotated `@tool("strip")`: then
//! the tool is removed from the request (with a `tool_choice` that names it) and the request
//! goes on without it. Every forbidden tool is recorded as its own decision.
//!
//! A tool's name is its `name` (Anthropic tools, OpenAI responses functions), its function's
//! or custom tool's name (OpenAI chat), or else its `type` (a built-in tool such as OpenAI's
//! `web_search` or `code_interpreter`).
//!
//! [`Engine::governs_tools`]: portcullis_shared::engine::Engine::governs_tools

use serde_json::Value;

/// The fields tool decisions read. Serde refuses a body naming either twice, so the edge and
/// the upstream cannot read different arrays.
#[derive(serde::Deserialize)]
struct ToolsPeek {
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default, rename = "tool_choice")]
    _tool_choice: Option<serde::de::IgnoredAny>,
}

/// The names of the tools `body` offers, in order (duplicates kept); empty when it offers
/// none. An error (for a 400) when `tools` is not a list of named tools.
pub fn offered(body: &[u8]) -> Result<Vec<String>, String> {
    let peek: ToolsPeek = serde_json::from_slice(body)
        .map_err(|e| format!("cannot read the request's tools: {e}"))?;
    let tools = match peek.tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err("`tools` must be a list".into()),
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            tool_name(t)
                .map(str::to_owned)
                .ok_or_else(|| format!("tools[{i}] has no name (nor a type)"))
        })
        .collect()
}

/// A tool entry's (or a `tool_choice`'s) name.
fn tool_name(t: &Value) -> Option<&str> {
    let named = |key: &str| t.get(key)?.get("name")?.as_str();
    t.get("name")
        .and_then(Value::as_str)
        .or_else(|| named("function"))
        .or_else(|| named("custom"))
        .or_else(|| t.get("type").and_then(Value::as_str))
        .filter(|n| !n.is_empty())
}

/// `body` without the tools named in `remove`: their entries go, a `tool_choice` naming one
/// goes, and when no tool is left so do `tools`, `tool_choice` and `parallel_tool_calls`
/// (which the APIs refuse without tools).
pub fn strip(body: &[u8], remove: &[String]) -> Result<Vec<u8>, String> {
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| format!("cannot read the request: {e}"))?;
    let obj = v
        .as_object_mut()
        .ok_or("the request body must be a JSON object")?;
    let gone = |t: &Value| tool_name(t).is_some_and(|n| remove.iter().any(|r| r == n));
    let mut left = 0;
    if let Some(Value::Array(tools)) = obj.get_mut("tools") {
        tools.retain(|t| !gone(t));
        left = tools.len();
    }
    let choice_gone = obj
        .get("tool_choice")
        .is_some_and(|c| c.is_object() && gone(c));
    if choice_gone {
        obj.remove("tool_choice");
    }
    if left == 0 {
        for key in ["tools", "tool_choice", "parallel_tool_calls"] {
            obj.remove(key);
        }
    }
    serde_json::to_vec(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(v: Value) -> Result<Vec<String>, String> {
        offered(v.to_string().as_bytes())
    }

    #[test]
    fn tools_are_named_as_each_api_names_them() {
        // OpenAI chat: functions and custom tools.
        assert_eq!(
            names(json!({"model": "m", "tools": [
                {"type": "function", "function": {"name": "Bash", "parameters": {}}},
                {"type": "custom", "custom": {"name": "grammar"}}
            ]})),
            Ok(vec!["Bash".into(), "grammar".into()])
        );
        // OpenAI responses: a function by name, built-in tools by type.
        assert_eq!(
            names(json!({"tools": [
                {"type": "function", "name": "Read"},
                {"type": "web_search"},
                {"type": "mcp", "server_label": "x"}
            ]})),
            Ok(vec!["Read".into(), "web_search".into(), "mcp".into()])
        );
        // Anthropic: custom tools and server tools, by name.
        assert_eq!(
            names(json!({"tools": [
                {"name": "WebFetch", "input_schema": {}},
                {"type": "bash_20250124", "name": "bash"}
            ]})),
            Ok(vec!["WebFetch".into(), "bash".into()])
        );
        assert_eq!(names(json!({"model": "m"})), Ok(vec![]));
        assert_eq!(names(json!({"tools": null})), Ok(vec![]));
    }

    #[test]
    fn malformed_or_ambiguous_tools_are_refused() {
        assert!(names(json!({"tools": {"name": "x"}})).is_err());
        assert!(names(json!({"tools": [{"description": "nameless"}]})).is_err());
        assert!(names(json!({"tools": [{"name": ""}]})).is_err());
        // Named twice: which list the upstream would read is not for the edge to guess.
        let twice = br#"{"tools": [], "tools": [{"name": "Bash"}]}"#;
        assert!(offered(twice).is_err());
        // An escaped key is the same key.
        let escaped = br#"{"tool\u0073": [{"name": "Bash"}]}"#;
        assert_eq!(offered(escaped), Ok(vec!["Bash".into()]));
    }

    #[test]
    fn stripping_removes_the_tool_and_what_names_it() {
        let body = json!({"model": "m", "tools": [
            {"type": "function", "function": {"name": "Bash"}},
            {"type": "function", "function": {"name": "Read"}}
        ], "tool_choice": {"type": "function", "function": {"name": "Bash"}}, "parallel_tool_calls": true});
        let out: Value = serde_json::from_slice(
            &strip(body.to_string().as_bytes(), &["Bash".into()]).expect("strips"),
        )
        .expect("json");
        assert_eq!(
            out,
            json!({"model": "m", "tools": [{"type": "function", "function": {"name": "Read"}}], "parallel_tool_calls": true})
        );
        // Nothing left: no tools, no choice.
        let body =
            json!({"model": "m", "tools": [{"name": "Bash"}], "tool_choice": {"type": "any"}});
        let out: Value = serde_json::from_slice(
            &strip(body.to_string().as_bytes(), &["Bash".into()]).expect("strips"),
        )
        .expect("json");
        assert_eq!(out, json!({"model": "m"}));
    }
}
