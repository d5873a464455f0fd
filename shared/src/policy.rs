//! Compiling Cedar policy files against Portcullis's schema.
//!
//! Both planes run this: the control plane to refuse a bad policy set before it goes live, the
//! data plane to build its decision engine from a snapshot. Every problem is reported with the
//! file, line and column it comes from.
//!
//! Policy ids: a policy's `@id("…")` annotation when it has one (recommended: stable across
//! edits), otherwise `<file>:<line>` of its first line. Ids appear in decision logs and audit
//! records as the policies that determined a decision.
//!
//! `@tool("strip")` on a `forbid` of `Action::"llm:tool"` makes the data plane remove the
//! forbidden tool from the request rather than refuse the request (`@tool("deny")`, the
//! default, refuses it).

use crate::Hash32;
use crate::snapshot::PolicyFile;
use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The annotation that says what a tool's denial does: `strip` or `deny`.
pub const TOOL_ANNOTATION: &str = "tool";

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDiagnostic {
    pub file: String,
    /// 1-based; 0 when the problem has no location (for example a duplicate id across files).
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for PolicyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// Why a policy set was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the Cedar schema does not parse: {0}")]
    Schema(String),
    #[error("{} problem(s) in the policy set:\n{}", .0.len(), DisplayList(.0))]
    Invalid(Vec<PolicyDiagnostic>),
}

struct DisplayList<'a>(&'a [PolicyDiagnostic]);

impl fmt::Display for DisplayList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {d}")?;
        }
        Ok(())
    }
}

/// Where a policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub id: String,
    pub file: String,
    pub line: u32,
}

/// A validated policy set, ready for an authorizer.
#[derive(Debug, Clone)]
pub struct CompiledPolicies {
    pub set: PolicySet,
    pub schema: Schema,
    /// Every policy, in file order.
    pub policies: Vec<PolicyInfo>,
    /// Content hash of the schema and the files (see [`content_hash`]).
    pub content_hash: Hash32,
}

/// The content hash of a policy version: the schema, then each file's name and text, in order.
pub fn content_hash(schema: &str, files: &[PolicyFile]) -> Hash32 {
    let mut parts: Vec<&[u8]> = vec![schema.as_bytes()];
    for f in files {
        parts.push(f.name.as_bytes());
        parts.push(f.text.as_bytes());
    }
    Hash32::of_parts(parts)
}

/// Parses the schema, parses every file, assigns ids, and validates the whole set in Cedar's
/// strict mode. Returns every problem found, not only the first.
pub fn compile(schema_text: &str, files: &[PolicyFile]) -> Result<CompiledPolicies, PolicyError> {
    let (schema, _warnings) = Schema::from_cedarschema_str(schema_text)
        .map_err(|e| PolicyError::Schema(e.to_string()))?;

    let mut diagnostics = Vec::new();
    let mut set = PolicySet::new();
    let mut infos = Vec::new();
    // policy id -> (file index) for locating validation errors.
    let mut owner: HashMap<String, usize> = HashMap::new();

    for (file_index, file) in files.iter().enumerate() {
        let parsed = match PolicySet::from_str(&file.text) {
            Ok(p) => p,
            Err(errs) => {
                for e in errs.iter() {
                    diagnostics.push(locate(file, e, e.to_string()));
                }
                continue;
            }
        };
        if parsed.templates().next().is_some() {
            diagnostics.push(PolicyDiagnostic {
                file: file.name.clone(),
                line: 0,
                column: 0,
                message: "policy templates (`?principal`/`?resource` slots) are not supported; \
                          write static policies"
                    .into(),
            });
            continue;
        }
        let starts = statement_starts(&file.text);
        let mut policies: Vec<_> = parsed.policies().collect();
        // Cedar names policies `policy0`, `policy1`, … in source order.
        policies.sort_by_key(|p| {
            p.id()
                .to_string()
                .strip_prefix("policy")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(usize::MAX)
        });
        for (index, policy) in policies.into_iter().enumerate() {
            let line = starts
                .get(index)
                .map(|&off| line_col(&file.text, off).0)
                .unwrap_or(0);
            let id = match policy.annotation("id") {
                Some(id) => id.to_owned(),
                None => format!("{}:{}", file.name, line),
            };
            if let Some(how) = policy.annotation(TOOL_ANNOTATION)
                && !matches!(how, "strip" | "deny")
            {
                diagnostics.push(PolicyDiagnostic {
                    file: file.name.clone(),
                    line,
                    column: 1,
                    message: format!(
                        "policy `{id}`: @{TOOL_ANNOTATION}(\"{how}\") is not understood; write @{TOOL_ANNOTATION}(\"strip\") to remove a forbidden tool from the request, or @{TOOL_ANNOTATION}(\"deny\") to refuse the request"
                    ),
                });
                continue;
            }
            if let Some(&other) = owner.get(&id) {
                diagnostics.push(PolicyDiagnostic {
                    file: file.name.clone(),
                    line,
                    column: 1,
                    message: format!(
                        "policy id `{id}` is already used in {}; ids must be unique",
                        files[other].name
                    ),
                });
                continue;
            }
            let renamed = policy.new_id(PolicyId::new(&id));
            if let Err(e) = set.add(renamed) {
                diagnostics.push(PolicyDiagnostic {
                    file: file.name.clone(),
                    line,
                    column: 1,
                    message: e.to_string(),
                });
                continue;
            }
            owner.insert(id.clone(), file_index);
            infos.push(PolicyInfo {
                id,
                file: file.name.clone(),
                line,
            });
        }
    }

    if diagnostics.is_empty() {
        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        for e in result.validation_errors() {
            let id = e.policy_id().to_string();
            let Some(&fi) = owner.get(&id) else {
                diagnostics.push(PolicyDiagnostic {
                    file: "?".into(),
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                });
                continue;
            };
            let mut message = format!("policy `{id}`: {e}");
            if let Some(help) = e.help() {
                message.push_str(&format!(" ({help})"));
            }
            diagnostics.push(locate(&files[fi], e, message));
        }
        // Cedar only warns about these; Portcullis rejects them. A policy that can never apply
        // is a mistake (a misspelt or undeclared attribute behind `has` makes a condition
        // always false), and for a `forbid` a silent one: the author believes something is
        // forbidden that is not. Bidirectional control characters hide what the text says.
        for w in result.validation_warnings() {
            use cedar_policy::ValidationWarning as W;
            let rejected = matches!(
                w,
                W::ImpossiblePolicy(_)
                    | W::InvalidActionApplication(_)
                    | W::BidiCharsInString(_)
                    | W::BidiCharsInIdentifier(_)
            );
            if !rejected {
                continue;
            }
            let id = w.policy_id().to_string();
            let Some(&fi) = owner.get(&id) else {
                continue;
            };
            let mut message = format!("policy `{id}`: {w}");
            if matches!(w, W::ImpossiblePolicy(_)) {
                message.push_str(
                    " (is an attribute behind `has` misspelt, or not declared by any configured \
                     SCIM extension?)",
                );
            }
            diagnostics.push(locate(&files[fi], w, message));
        }
    }

    if !diagnostics.is_empty() {
        diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        return Err(PolicyError::Invalid(diagnostics));
    }
    Ok(CompiledPolicies {
        set,
        schema,
        policies: infos,
        content_hash: content_hash(schema_text, files),
    })
}

/// Places a diagnostic at its first labelled span within `file`.
fn locate(file: &PolicyFile, d: &dyn Diagnostic, message: String) -> PolicyDiagnostic {
    let offset = d
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| l.offset())
        .filter(|&o| o <= file.text.len());
    let (line, column) = match offset {
        Some(o) => line_col(&file.text, o),
        None => (0, 0),
    };
    PolicyDiagnostic {
        file: file.name.clone(),
        line,
        column,
        message,
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line as u32, column as u32)
}

/// Byte offsets where each top-level Cedar statement begins (its first annotation or its
/// `permit`/`forbid`), skipping comments and string literals. Only used to name policies by
/// line; the text has already parsed, so statements are well formed.
fn statement_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = Vec::new();
    let mut depth = 0i32;
    let mut in_statement = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if !in_statement {
            starts.push(i);
            in_statement = true;
        }
        match b {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b';' if depth == 0 => in_statement = false,
            _ => {}
        }
        i += 1;
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SCHEMA;

    fn file(name: &str, text: &str) -> PolicyFile {
        PolicyFile {
            name: name.into(),
            text: text.into(),
        }
    }

    #[test]
    fn the_embedded_schema_parses() {
        compile(SCHEMA, &[]).expect("schema and empty set are valid");
    }

    #[test]
    fn ids_come_from_annotations_or_file_and_line() {
        let text = "// sales\n\npermit(principal in Group::\"Sales\", action == Action::\"chat\", resource);\n\
                    @id(\"no-bash\")\nforbid(principal, action == Action::\"mcp:tools/call\", resource == McpTool::\"dev/bash\");\n";
        let c = compile(SCHEMA, &[file("sales.cedar", text)]).expect("valid");
        let ids: Vec<_> = c.policies.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["sales.cedar:3", "no-bash"]);
        assert_eq!(c.policies[1].line, 4);
    }

    #[test]
    fn syntax_errors_name_file_line_and_reason() {
        let text = "permit(principal, action, resource);\n\npermit(principal action, resource);\n";
        let err = compile(SCHEMA, &[file("bad.cedar", text)]).unwrap_err();
        let PolicyError::Invalid(d) = err else {
            panic!("expected Invalid")
        };
        assert_eq!(d[0].file, "bad.cedar");
        assert_eq!(d[0].line, 3);
        assert!(!d[0].message.is_empty());
    }

    #[test]
    fn schema_violations_name_the_line_of_the_offending_policy() {
        let text = "permit(principal, action == Action::\"chat\", resource);\n\
                    permit(principal, action == Action::\"chat\", resource)\n  when { principal.nickname == \"x\" };\n";
        let err = compile(SCHEMA, &[file("attrs.cedar", text)]).unwrap_err();
        let PolicyError::Invalid(d) = err else {
            panic!("expected Invalid")
        };
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line, 3, "{d:?}");
        assert!(d[0].message.contains("nickname"), "{}", d[0].message);
    }

    #[test]
    fn unknown_actions_and_entity_types_are_rejected() {
        let text = "permit(principal, action == Action::\"teleport\", resource);";
        assert!(compile(SCHEMA, &[file("a.cedar", text)]).is_err());
        let text = "permit(principal in Team::\"x\", action, resource);";
        assert!(compile(SCHEMA, &[file("b.cedar", text)]).is_err());
    }

    #[test]
    fn duplicate_ids_across_files_are_rejected() {
        let a = "@id(\"x\") permit(principal, action, resource);";
        let err = compile(SCHEMA, &[file("a.cedar", a), file("b.cedar", a)]).unwrap_err();
        assert!(err.to_string().contains("already used in a.cedar"), "{err}");
    }

    #[test]
    fn content_hash_covers_names_text_and_schema() {
        let a = [file("a.cedar", "x")];
        let b = [file("b.cedar", "x")];
        assert_ne!(content_hash(SCHEMA, &a), content_hash(SCHEMA, &b));
        assert_ne!(content_hash(SCHEMA, &a), content_hash("other", &a));
        assert_eq!(content_hash(SCHEMA, &a), content_hash(SCHEMA, &a));
    }

    #[test]
    fn statement_scanner_skips_comments_and_strings() {
        let text = "// a; b\n@id(\"x;y\") permit(principal, action, resource)\n when { \"(\" == \"(\" };\n\n forbid(principal, action, resource);";
        let starts = statement_starts(text);
        assert_eq!(starts.len(), 2);
        assert_eq!(line_col(text, starts[0]).0, 2);
        assert_eq!(line_col(text, starts[1]).0, 5);
    }
}
