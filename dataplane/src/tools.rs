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

use serde_json::{Map, Value};

/// How a request names its tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI (chat completions, responses, Azure) and Anthropic: `tools` entries (and
    /// OpenAI's deprecated `functions`).
    Messages,
    /// Gemini: `tools` objects holding `functionDeclarations` and built-in tools by key.
    Gemini,
}

/// The fields tool decisions read. Serde refuses a body naming one twice, so the edge and
/// the upstream cannot read different values.
#[derive(serde::Deserialize)]
struct ToolsPeek {
    #[serde(default)]
    tools: Option<Value>,
    /// OpenAI's deprecated function calling.
    #[serde(default)]
    functions: Option<Value>,
    /// Anthropic's MCP connector: tools the edge cannot see.
    #[serde(default)]
    mcp_servers: Option<Value>,
    #[serde(default, rename = "tool_choice")]
    _tool_choice: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "function_call")]
    _function_call: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "toolConfig")]
    tool_config_camel: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "tool_config")]
    tool_config_snake: Option<serde::de::IgnoredAny>,
}

/// The names of the tools `body` offers, in order (duplicates kept); empty when it offers
/// none. An error (for a 400) when they cannot be named without doubt.
pub fn offered(dialect: Dialect, body: &[u8]) -> Result<Vec<String>, String> {
    // The peek skips fields unchecked: what is forwarded must be UTF-8 throughout (fuzzing
    // found a body that named its tools yet could not be rewritten).
    std::str::from_utf8(body)
        .map_err(|e| format!("the request is not UTF-8 (at byte {})", e.valid_up_to()))?;
    let peek: ToolsPeek = serde_json::from_slice(body)
        .map_err(|e| format!("cannot read the request's tools: {e}"))?;
    if peek.tool_config_camel.is_some() && peek.tool_config_snake.is_some() {
        return Err("the request names `toolConfig` twice (`tool_config` too)".into());
    }
    if peek
        .mcp_servers
        .as_ref()
        .is_some_and(|m| !m.is_null() && m.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err("`mcp_servers` gives the model tools this gateway cannot decide one by one; reach MCP servers through an MCP route of the gateway instead".into());
    }
    let list = |v: Option<Value>, what: &str| match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("`{what}` must be a list")),
    };
    let tools = list(peek.tools, "tools")?;
    let mut names = Vec::new();
    match dialect {
        Dialect::Messages => {
            for (i, t) in tools.iter().enumerate() {
                names.push(entry_name(t).map_err(|e| format!("tools[{i}] {e}"))?);
            }
            for (i, f) in list(peek.functions, "functions")?.iter().enumerate() {
                let name = f["name"].as_str().filter(|n| !n.is_empty());
                names.push(
                    name.ok_or_else(|| format!("functions[{i}] has no name"))?
                        .to_owned(),
                );
            }
        }
        Dialect::Gemini => {
            for (i, t) in tools.iter().enumerate() {
                let t = t
                    .as_object()
                    .ok_or_else(|| format!("tools[{i}] must be an object"))?;
                names.extend(gemini_names(t).map_err(|e| format!("tools[{i}] {e}"))?);
            }
        }
    }
    Ok(names)
}

/// An OpenAI or Anthropic tool entry's name: its `name`, its function's or custom tool's
/// name, or else its `type` (a built-in tool). Names that disagree are refused: which one an
/// upstream reads is not for the edge to guess.
fn entry_name(t: &Value) -> Result<String, String> {
    let named = |key: &str| {
        t.get(key)
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
    };
    let mut found = [
        t.get("name").and_then(Value::as_str),
        named("function"),
        named("custom"),
    ]
    .into_iter()
    .flatten();
    let name = match found.next() {
        Some(first) => {
            if found.any(|other| other != first) {
                return Err("names two different tools".into());
            }
            first
        }
        None => t.get("type").and_then(Value::as_str).unwrap_or(""),
    };
    if name.is_empty() {
        return Err("has no name (nor a type)".into());
    }
    Ok(name.to_owned())
}

/// The keys of a Gemini tool object that hold function declarations (both JSON spellings of
/// the field are accepted by Google's API).
const DECLARATIONS: [&str; 2] = ["functionDeclarations", "function_declarations"];

/// A Gemini tool object's names: each declared function's, and each built-in tool by its key
/// in camelCase (`googleSearch`, `codeExecution`).
fn gemini_names(t: &Map<String, Value>) -> Result<Vec<String>, String> {
    if DECLARATIONS.iter().all(|k| t.contains_key(*k)) {
        return Err("names its function declarations twice".into());
    }
    let mut names = Vec::new();
    for (key, value) in t {
        if DECLARATIONS.contains(&key.as_str()) {
            for d in value.as_array().into_iter().flatten() {
                let name = d["name"].as_str().filter(|n| !n.is_empty());
                names.push(name.ok_or("declares a function without a name")?.to_owned());
            }
        } else {
            names.push(camel(key));
        }
    }
    Ok(names)
}

/// `google_search` → `googleSearch`; camelCase stays as it is.
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `body` without the tools named in `remove`, and without whatever names them (a
/// `tool_choice` or `function_call` forcing one, an allowed-tools list, Gemini's allowed
/// function names); with no tool left, without the settings the APIs refuse without tools.
pub fn strip(dialect: Dialect, body: &[u8], remove: &[String]) -> Result<Vec<u8>, String> {
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| format!("cannot read the request: {e}"))?;
    let obj = v
        .as_object_mut()
        .ok_or("the request body must be a JSON object")?;
    let removed = |n: &str| remove.iter().any(|r| r == n);
    match dialect {
        Dialect::Messages => strip_messages(obj, &removed),
        Dialect::Gemini => strip_gemini(obj, &removed),
    }
    serde_json::to_vec(&v).map_err(|e| e.to_string())
}

fn strip_messages(obj: &mut Map<String, Value>, removed: &dyn Fn(&str) -> bool) {
    let gone = |t: &Value| entry_name(t).is_ok_and(|n| removed(&n));
    let mut tools_left = 0;
    if let Some(Value::Array(tools)) = obj.get_mut("tools") {
        tools.retain(|t| !gone(t));
        tools_left = tools.len();
    }
    let mut functions_left = 0;
    if let Some(Value::Array(functions)) = obj.get_mut("functions") {
        functions.retain(|f| !f["name"].as_str().is_some_and(removed));
        functions_left = functions.len();
    }
    // A choice forcing a removed tool goes; an allowed-tools choice loses the removed ones.
    let mut choice_gone = false;
    if let Some(choice) = obj.get_mut("tool_choice").filter(|c| c.is_object()) {
        if choice["type"] == "allowed_tools" {
            let list = match choice.get_mut("allowed_tools") {
                Some(inner) => inner.get_mut("tools"),
                None => choice.get_mut("tools"),
            };
            if let Some(Value::Array(allowed)) = list {
                allowed.retain(|t| !gone(t));
                choice_gone = allowed.is_empty();
            }
        } else {
            choice_gone = gone(choice);
        }
    }
    if choice_gone {
        obj.remove("tool_choice");
    }
    if obj
        .get("function_call")
        .is_some_and(|c| c["name"].as_str().is_some_and(removed))
    {
        obj.remove("function_call");
    }
    if tools_left == 0 {
        for key in ["tools", "tool_choice", "parallel_tool_calls"] {
            obj.remove(key);
        }
    }
    if functions_left == 0 {
        obj.remove("functions");
        obj.remove("function_call");
    }
}

fn strip_gemini(obj: &mut Map<String, Value>, removed: &dyn Fn(&str) -> bool) {
    if let Some(Value::Array(tools)) = obj.get_mut("tools") {
        for t in tools.iter_mut() {
            let Some(t) = t.as_object_mut() else { continue };
            t.retain(|key, value| {
                if DECLARATIONS.contains(&key.as_str()) {
                    if let Some(decls) = value.as_array_mut() {
                        decls.retain(|d| !d["name"].as_str().is_some_and(removed));
                        return !decls.is_empty();
                    }
                    return true;
                }
                !removed(&camel(key))
            });
        }
        tools.retain(|t| t.as_object().is_none_or(|o| !o.is_empty()));
        if tools.is_empty() {
            obj.remove("tools");
            obj.remove("toolConfig");
            obj.remove("tool_config");
            return;
        }
    }
    for (config, calling, allowed) in [
        (
            "toolConfig",
            "functionCallingConfig",
            "allowedFunctionNames",
        ),
        (
            "tool_config",
            "function_calling_config",
            "allowed_function_names",
        ),
    ] {
        let names = obj
            .get_mut(config)
            .and_then(|c| c.get_mut(calling))
            .and_then(|c| c.get_mut(allowed))
            .and_then(Value::as_array_mut);
        if let Some(names) = names {
            names.retain(|n| !n.as_str().is_some_and(removed));
            if names.is_empty() {
                obj.remove(config);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(v: Value) -> Result<Vec<String>, String> {
        offered(Dialect::Messages, v.to_string().as_bytes())
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
        assert!(offered(Dialect::Messages, twice).is_err());
        // An escaped key is the same key.
        let escaped = br#"{"tool\u0073": [{"name": "Bash"}]}"#;
        assert_eq!(offered(Dialect::Messages, escaped), Ok(vec!["Bash".into()]));
    }

    #[test]
    fn stripping_removes_the_tool_and_what_names_it() {
        let body = json!({"model": "m", "tools": [
            {"type": "function", "function": {"name": "Bash"}},
            {"type": "function", "function": {"name": "Read"}}
        ], "tool_choice": {"type": "function", "function": {"name": "Bash"}}, "parallel_tool_calls": true});
        let out: Value = serde_json::from_slice(
            &strip(
                Dialect::Messages,
                body.to_string().as_bytes(),
                &["Bash".into()],
            )
            .expect("strips"),
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
            &strip(
                Dialect::Messages,
                body.to_string().as_bytes(),
                &["Bash".into()],
            )
            .expect("strips"),
        )
        .expect("json");
        assert_eq!(out, json!({"model": "m"}));
    }

    #[test]
    fn names_that_disagree_and_tools_the_edge_cannot_see_are_refused() {
        // The edge would read `name`, an OpenAI-compatible server `function.name`.
        assert!(
            names(json!({"tools": [{"type": "function", "name": "Read", "function": {"name": "Bash"}}]}))
                .is_err()
        );
        assert_eq!(
            names(
                json!({"tools": [{"type": "function", "name": "Bash", "function": {"name": "Bash"}}]})
            ),
            Ok(vec!["Bash".into()])
        );
        // Anthropic's MCP connector hands the model tools the edge never sees.
        assert!(
            names(json!({"mcp_servers": [{"type": "url", "name": "x", "url": "https://x"}]}))
                .is_err()
        );
        assert_eq!(names(json!({"mcp_servers": []})), Ok(vec![]));
        // OpenAI's deprecated function calling is decided like tools.
        assert_eq!(
            names(json!({"functions": [{"name": "Bash"}], "tools": [{"name": "Read"}]})),
            Ok(vec!["Read".into(), "Bash".into()])
        );
    }

    #[test]
    fn legacy_functions_and_allowed_tools_are_stripped_too() {
        let body = json!({"functions": [{"name": "Bash"}], "function_call": {"name": "Bash"},
            "tools": [{"type": "function", "function": {"name": "Bash"}}, {"type": "function", "function": {"name": "Read"}}],
            "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto",
                "tools": [{"type": "function", "function": {"name": "Bash"}}, {"type": "function", "function": {"name": "Read"}}]}}});
        let out: Value = serde_json::from_slice(
            &strip(
                Dialect::Messages,
                body.to_string().as_bytes(),
                &["Bash".into()],
            )
            .expect("strips"),
        )
        .expect("json");
        assert_eq!(
            out,
            json!({"tools": [{"type": "function", "function": {"name": "Read"}}],
                   "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto",
                       "tools": [{"type": "function", "function": {"name": "Read"}}]}}})
        );
    }

    #[test]
    fn gemini_tools_are_named_and_stripped_in_both_spellings() {
        let body = json!({"contents": [], "tools": [
            {"functionDeclarations": [{"name": "Bash"}, {"name": "Read"}]},
            {"google_search": {}},
            {"codeExecution": {}}
        ], "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["Bash"]}}});
        let text = body.to_string();
        assert_eq!(
            offered(Dialect::Gemini, text.as_bytes()),
            Ok(vec![
                "Bash".into(),
                "Read".into(),
                "googleSearch".into(),
                "codeExecution".into()
            ])
        );
        let out: Value = serde_json::from_slice(
            &strip(
                Dialect::Gemini,
                text.as_bytes(),
                &["Bash".into(), "googleSearch".into()],
            )
            .expect("strips"),
        )
        .expect("json");
        assert_eq!(
            out,
            json!({"contents": [], "tools": [{"functionDeclarations": [{"name": "Read"}]}, {"codeExecution": {}}]})
        );
        let twice = json!({"tools": [{"functionDeclarations": [], "function_declarations": [{"name": "Bash"}]}]});
        assert!(offered(Dialect::Gemini, twice.to_string().as_bytes()).is_err());
        let both = br#"{"toolConfig": {}, "tool_config": {}}"#;
        assert!(offered(Dialect::Gemini, both).is_err());
    }
}
