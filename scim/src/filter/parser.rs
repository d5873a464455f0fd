//! Recursive-descent parser for the RFC 7644 §3.4.2.2 filter grammar and the PATCH path rule
//! (§3.5.2, Figure 7). Works on byte offsets; every structural character is ASCII, and string
//! literals are decoded with `serde_json`, so multi-byte text is handled correctly.

use super::{AttrPath, CompValue, CompareOp, Filter, PathExpr};
use std::fmt;

/// Maximum nesting of parentheses, `not` and value filters.
const MAX_DEPTH: usize = 64;
/// Maximum number of attribute expressions in one filter (bounds the tree depth of long
/// `or` chains, which the evaluator walks recursively).
const MAX_TERMS: usize = 1000;

/// A syntax error: the 1-based character position and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: usize,
    pub msg: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at position {})", self.msg, self.pos)
    }
}

type PResult<T> = Result<T, SyntaxError>;

/// Parses a complete filter; the whole input must be consumed.
pub(crate) fn parse_filter(input: &str) -> PResult<Filter> {
    let mut p = Parser::new(input);
    p.skip_ws();
    if p.at_end() {
        return Err(p.err("empty filter"));
    }
    let filter = p.or_expr(None)?;
    p.skip_ws();
    match p.peek() {
        None => Ok(filter),
        Some(')') => Err(p.err("unbalanced ')': no matching '('")),
        Some(']') => Err(p.err("unbalanced ']': no matching '['")),
        Some(c) => Err(p.err(format!(
            "unexpected '{c}'; expected 'and', 'or' or the end of the filter"
        ))),
    }
}

/// Parses `attrPath`, or (when `allow_filter`) `attrPath "[" valFilter "]" ["." subAttr]`.
/// Surrounding whitespace is ignored.
pub(crate) fn parse_path(input: &str, allow_filter: bool) -> PResult<PathExpr> {
    let mut p = Parser::new(input);
    p.skip_ws();
    if p.at_end() {
        return Err(p.err("empty attribute path"));
    }
    let attr = p.attr_path()?;
    let mut expr = PathExpr {
        attr,
        filter: None,
        sub: None,
    };
    if p.peek() == Some('[') {
        if !allow_filter {
            return Err(p.err("a value filter is not allowed in this attribute path"));
        }
        let inner = p.bracketed(&expr.attr)?;
        expr.filter = Some(inner);
        if p.peek() == Some('.') {
            p.bump();
            expr.sub = Some(p.sub_attr_name()?);
        }
    }
    p.skip_ws();
    match p.peek() {
        None => Ok(expr),
        Some(c) => Err(p.err(format!("unexpected '{c}' in attribute path"))),
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    terms: usize,
}

/// Characters that may appear in an attribute path token (names, URNs, `.`, `$ref`).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | '$')
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            depth: 0,
            terms: 0,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// Skips whitespace; true if any was skipped.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_ws) {
            self.bump();
        }
        self.pos > start
    }

    /// The 1-based character position of byte offset `at`.
    fn char_pos(&self, at: usize) -> usize {
        self.src.get(..at).map_or(0, |s| s.chars().count()) + 1
    }

    fn err(&self, msg: impl Into<String>) -> SyntaxError {
        self.err_at(self.pos, msg)
    }

    fn err_at(&self, at: usize, msg: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos: self.char_pos(at),
            msg: msg.into(),
        }
    }

    /// Consumes and returns the longest run of characters satisfying `pred`.
    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.bump();
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// The alphanumeric word at the cursor, without consuming it.
    fn peek_word(&self) -> &'a str {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        rest.get(..len).unwrap_or("")
    }

    fn describe_next(&self) -> String {
        match self.peek() {
            None => "the end of the input".to_string(),
            Some(c) => format!("'{c}'"),
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("filter nested too deeply (max {MAX_DEPTH})")));
        }
        Ok(())
    }

    /// `orExpr := andExpr *(SP "or" SP andExpr)`; `parent` is set inside a value filter.
    fn or_expr(&mut self, parent: Option<&AttrPath>) -> PResult<Filter> {
        let mut left = self.and_expr(parent)?;
        while self.logical_keyword("or")? {
            let right = self.and_expr(parent)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `andExpr := unary *(SP "and" SP unary)`.
    fn and_expr(&mut self, parent: Option<&AttrPath>) -> PResult<Filter> {
        let mut left = self.unary(parent)?;
        while self.logical_keyword("and")? {
            let right = self.unary(parent)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Consumes `SP kw SP` when the next word is `kw` (case-insensitive). A closing `)`/`]` may
    /// stand in for the space before, an opening `(` for the space after.
    fn logical_keyword(&mut self, kw: &str) -> PResult<bool> {
        let start = self.pos;
        let had_ws = self.skip_ws();
        if !self.peek_word().eq_ignore_ascii_case(kw) {
            self.pos = start;
            return Ok(false);
        }
        let after_closer = self
            .src
            .get(..start)
            .is_some_and(|s| s.ends_with([')', ']']));
        if !had_ws && !after_closer {
            return Err(self.err(format!("expected a space before '{kw}'")));
        }
        self.pos += kw.len();
        let had_ws_after = self.skip_ws();
        if self.at_end() {
            return Err(self.err(format!("expected a filter expression after '{kw}'")));
        }
        if !had_ws_after && self.peek() != Some('(') {
            return Err(self.err(format!(
                "expected a space after '{kw}', found {}",
                self.describe_next()
            )));
        }
        Ok(true)
    }

    /// `unary := "not" [SP] "(" filter ")" / "(" filter ")" / attrExp / valuePath`.
    fn unary(&mut self, parent: Option<&AttrPath>) -> PResult<Filter> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.err("expected a filter expression but the input ended")),
            Some('(') => self.group(parent),
            Some(c @ (')' | ']')) => {
                Err(self.err(format!("expected a filter expression, found '{c}'")))
            }
            Some(_) if self.at_not()? => {
                self.pos += "not".len();
                self.skip_ws();
                let inner = self.group(parent)?;
                Ok(Filter::Not(Box::new(inner)))
            }
            Some(_) => self.attr_expr(parent),
        }
    }

    /// True when the cursor is at the keyword `not` introducing `not (...)`. A word `not`
    /// followed by an operator is an attribute named `not`; anything else is an error.
    fn at_not(&self) -> PResult<bool> {
        if !self.peek_word().eq_ignore_ascii_case("not") {
            return Ok(false);
        }
        let after = self.rest().get(3..).unwrap_or("");
        let trimmed = after.trim_start_matches(is_ws);
        if trimmed.starts_with('(') {
            return Ok(true);
        }
        let next_word: String = trimmed
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        let is_operator =
            next_word.eq_ignore_ascii_case("pr") || CompareOp::from_keyword(&next_word).is_some();
        if trimmed.len() < after.len() && is_operator {
            return Ok(false);
        }
        if after.starts_with(|c: char| is_path_char(c) || c == '[') {
            return Ok(false);
        }
        Err(self.err("'not' must be followed by a parenthesized filter, e.g. not (title pr)"))
    }

    /// Parses `"(" filter ")"` with the cursor on `(`.
    fn group(&mut self, parent: Option<&AttrPath>) -> PResult<Filter> {
        let open = self.pos;
        self.bump();
        self.enter()?;
        let inner = self.or_expr(parent)?;
        self.skip_ws();
        match self.peek() {
            Some(')') => self.bump(),
            None => {
                return Err(self.err(format!(
                    "missing ')' to close the '(' at position {}",
                    self.char_pos(open)
                )));
            }
            Some(c) => {
                return Err(self.err(format!("expected ')', 'and' or 'or', found '{c}'")));
            }
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// Parses `"[" valFilter "]"` with the cursor on `[`; inner paths become relative to
    /// `attr`.
    fn bracketed(&mut self, attr: &AttrPath) -> PResult<Filter> {
        let open = self.pos;
        if attr.sub.is_some() {
            return Err(self.err(format!(
                "a value filter must follow an attribute, not the sub-attribute '{attr}'"
            )));
        }
        self.bump();
        self.enter()?;
        self.skip_ws();
        if self.peek() == Some(']') {
            return Err(self.err("empty value filter '[]'"));
        }
        let inner = self.or_expr(Some(attr))?;
        self.skip_ws();
        match self.peek() {
            Some(']') => self.bump(),
            None => {
                return Err(self.err(format!(
                    "missing ']' to close the '[' at position {}",
                    self.char_pos(open)
                )));
            }
            Some(c) => {
                return Err(self.err(format!("expected ']', 'and' or 'or', found '{c}'")));
            }
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// `attrExp := attrPath SP "pr" / attrPath SP compareOp SP compValue`, or a value path.
    fn attr_expr(&mut self, parent: Option<&AttrPath>) -> PResult<Filter> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self.err(format!("filter has too many expressions (max {MAX_TERMS})")));
        }
        let path = self.attr_path()?;
        if self.peek() == Some('[') {
            return self.value_path(path, parent);
        }
        let path = match parent {
            Some(p) => relative_to(path, p),
            None => path,
        };
        if !self.skip_ws() {
            return Err(self.err(format!(
                "expected a space and an operator after '{path}', found {}",
                self.describe_next()
            )));
        }
        let op_start = self.pos;
        let word = self.take_while(|c| c.is_ascii_alphanumeric());
        if word.is_empty() {
            return Err(self.err(format!(
                "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after '{path}', found {}",
                self.describe_next()
            )));
        }
        if word.eq_ignore_ascii_case("pr") {
            self.reject_value_after_pr()?;
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::from_keyword(word).ok_or_else(|| {
            self.err_at(
                op_start,
                format!(
                    "unknown operator '{word}'; expected one of eq, ne, co, sw, ew, gt, ge, lt, le, pr"
                ),
            )
        })?;
        let had_ws = self.skip_ws();
        if self.at_end() || matches!(self.peek(), Some(')' | ']')) {
            return Err(self.err(format!("operator '{}' requires a value", op.as_str())));
        }
        if !had_ws {
            return Err(self.err(format!("expected a space after operator '{}'", op.as_str())));
        }
        let value = self.comp_value()?;
        Ok(Filter::Compare(path, op, value))
    }

    /// Parses the bracketed part of `attr[...]` inside a filter.
    fn value_path(&mut self, path: AttrPath, parent: Option<&AttrPath>) -> PResult<Filter> {
        if parent.is_some() {
            return Err(self.err("value filters cannot be nested"));
        }
        let inner = self.bracketed(&path)?;
        if self.peek() == Some('.') {
            return Err(
                self.err("a sub-attribute after a value filter is only allowed in PATCH paths")
            );
        }
        Ok(Filter::ValuePath(path, Box::new(inner)))
    }

    fn reject_value_after_pr(&mut self) -> PResult<()> {
        let save = self.pos;
        self.skip_ws();
        let word = self.peek_word();
        let looks_like_value = matches!(self.peek(), Some('"' | '-' | '0'..='9'))
            || ["true", "false", "null"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(word));
        if looks_like_value {
            return Err(self.err("operator 'pr' does not take a value"));
        }
        self.pos = save;
        Ok(())
    }

    /// Reads an attribute path token at the cursor.
    fn attr_path(&mut self) -> PResult<AttrPath> {
        let start = self.pos;
        let token = self.take_while(is_path_char);
        if token.is_empty() {
            return Err(self.err(format!(
                "expected an attribute name, found {}",
                self.describe_next()
            )));
        }
        split_attr_path(token).map_err(|msg| self.err_at(start, msg))
    }

    fn sub_attr_name(&mut self) -> PResult<String> {
        let start = self.pos;
        let name = self.take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$'));
        check_name(name)
            .map(|()| name.to_string())
            .map_err(|msg| self.err_at(start, msg))
    }

    /// `compValue := false / null / true / number / string`.
    ///
    /// Beyond the ABNF, a bare token that is none of those is read as a string: Entra ID
    /// sends `externalId eq jyoung`. The token ends at whitespace, `)` or `]`.
    fn comp_value(&mut self) -> PResult<CompValue> {
        match self.peek() {
            Some('"') => self.string_literal().map(CompValue::String),
            Some('-' | '0'..='9') => self.number_literal(),
            _ => {
                let word = self.take_while(is_bare_value_char);
                match word.to_ascii_lowercase().as_str() {
                    "true" => Ok(CompValue::Bool(true)),
                    "false" => Ok(CompValue::Bool(false)),
                    "null" => Ok(CompValue::Null),
                    "" => Err(self.err(format!(
                        "expected a value (a JSON string, number, true, false or null), found {}",
                        self.describe_next()
                    ))),
                    _ => Ok(CompValue::String(word.to_owned())),
                }
            }
        }
    }

    fn string_literal(&mut self) -> PResult<String> {
        let start = self.pos;
        self.bump();
        let mut escaped = false;
        loop {
            match self.peek() {
                None => {
                    return Err(self.err_at(start, "unterminated string literal"));
                }
                Some('\\') if !escaped => escaped = true,
                Some('"') if !escaped => break,
                Some(_) => escaped = false,
            }
            self.bump();
        }
        self.bump();
        let literal = self.src.get(start..self.pos).unwrap_or("");
        serde_json::from_str::<String>(literal)
            .map_err(|e| self.err_at(start, format!("invalid string literal: {e}")))
    }

    fn number_literal(&mut self) -> PResult<CompValue> {
        let start = self.pos;
        let text = self.take_while(is_bare_value_char);
        let numeric = text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
        match serde_json::from_str::<serde_json::Number>(text) {
            Ok(n) => Ok(CompValue::Number(n)),
            // A bare token that merely starts like a number (`12-ab`): a string, as above.
            Err(_) if !numeric => Ok(CompValue::String(text.to_owned())),
            Err(_) => Err(self.err_at(start, format!("invalid number '{text}'"))),
        }
    }
}

/// Characters of an unquoted value token.
fn is_bare_value_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, ')' | ']' | '(' | '[' | '"')
}

/// Makes an inner path of a value filter relative to the element: `emails.type` inside
/// `emails[...]` (optionally URN-qualified) becomes `type`.
fn relative_to(path: AttrPath, parent: &AttrPath) -> AttrPath {
    let same_uri = match (&path.uri, &parent.uri) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => true,
    };
    match path.sub {
        Some(sub) if same_uri && path.attr.eq_ignore_ascii_case(&parent.attr) => AttrPath::new(sub),
        sub => AttrPath { sub, ..path },
    }
}

/// Splits `[urn ":"] attr ["." sub]` and validates the names; the error is a message.
fn split_attr_path(token: &str) -> Result<AttrPath, String> {
    let is_urn = token
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    let (uri, rest) = if is_urn {
        match token.rsplit_once(':') {
            Some((uri, rest)) if uri.len() > "urn:".len() => (Some(uri), rest),
            _ => return Err(format!("'{token}' is a URN without an attribute name")),
        }
    } else if token.contains(':') {
        return Err(format!(
            "invalid attribute path '{token}': a schema URN prefix must start with 'urn:'"
        ));
    } else {
        (None, token)
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    check_name(attr).map_err(|m| format!("invalid attribute path '{token}': {m}"))?;
    if let Some(s) = sub {
        check_name(s).map_err(|m| format!("invalid attribute path '{token}': {m}"))?;
    }
    Ok(AttrPath {
        uri: uri.map(str::to_string),
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

/// `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA`; `$ref` (the
/// reference sub-attribute of RFC 7643) is also accepted.
fn check_name(name: &str) -> Result<(), String> {
    if name == "$ref" {
        return Ok(());
    }
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("missing attribute name".to_string()),
        Some(c) if !c.is_ascii_alphabetic() => {
            return Err(format!("attribute name '{name}' must start with a letter"));
        }
        Some(_) => {}
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))) {
        return Err(format!(
            "attribute name '{name}' contains invalid character '{bad}'"
        ));
    }
    Ok(())
}
