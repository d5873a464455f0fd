//! Dynamic-group rules: a small boolean language over a user's principal attributes.
//!
//! ```text
//! department == "Legal" && clearance >= 3
//! has clearance && !(department in ["Sales", "Support"])
//! email like "*@legal.example.com" || tags contains "counsel"
//! ```
//!
//! Grammar (operators bind as in Cedar: `!` tighter than `&&`, `&&` tighter than `||`):
//!
//! ```text
//! expr    := and ( "||" and )*
//! and     := unary ( "&&" unary )*
//! unary   := "!" unary | "(" expr ")" | "has" NAME | NAME [ test ]
//! test    := ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) literal
//!          | "in" "[" literal ( "," literal )* "]" | "contains" literal | "like" STRING
//! literal := STRING | INTEGER | "true" | "false"
//! ```
//!
//! Names are the principal attributes policies see (`userName`, `email`, `department`,
//! `active`, declared extension attributes, …); a bare name must be a boolean attribute. Types
//! are checked when the rule is parsed: `clearance >= "3"` is refused, not silently false. A
//! test of an attribute the user lacks is false (so `!(clearance >= 3)` holds for a user
//! without clearance); write `has clearance` to ask for presence. `like` patterns use `*` for
//! any run of characters (`\*` is a literal star).

use portcullis_shared::snapshot::{AttrKind, AttrValue, AttributeDecl, User};
use std::fmt;

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {message}")]
pub struct RuleError {
    /// 1-based character column in the rule text.
    pub column: usize,
    pub message: String,
}

/// The type of an attribute a rule may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrType {
    pub kind: AttrKind,
    pub multi: bool,
}

/// The attributes rules may read, each with a slot number for fast lookup.
#[derive(Debug, Clone)]
pub struct Catalog {
    names: Vec<(String, AttrType)>,
    /// Per slot, the declared default (for a user without a value).
    defaults: Vec<Option<AttrValue>>,
}

/// Built-in attributes, in slot order.
const BUILT_IN: [(&str, AttrKind); 7] = [
    ("userName", AttrKind::String),
    ("displayName", AttrKind::String),
    ("email", AttrKind::String),
    ("externalId", AttrKind::String),
    ("department", AttrKind::String),
    ("source", AttrKind::String),
    ("active", AttrKind::Bool),
];

impl Catalog {
    /// The built-in principal attributes plus `declared` ones (extension and mapped
    /// attributes). Rules see a user's directory value or the declared default; token claims
    /// exist only per request, so rules never see them.
    pub fn new(declared: &[AttributeDecl]) -> Self {
        let mut names: Vec<(String, AttrType)> = BUILT_IN
            .iter()
            .map(|(n, k)| {
                (
                    (*n).to_owned(),
                    AttrType {
                        kind: *k,
                        multi: false,
                    },
                )
            })
            .collect();
        let mut defaults = vec![None; names.len()];
        for d in declared {
            if !names.iter().any(|(n, _)| *n == d.name) {
                names.push((
                    d.name.clone(),
                    AttrType {
                        kind: d.kind,
                        multi: d.multi,
                    },
                ));
                defaults.push(d.default.clone());
            }
        }
        Self { names, defaults }
    }

    fn slot(&self, name: &str) -> Option<(usize, AttrType)> {
        self.names
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| (i, self.names[i].1))
    }

    /// How many slots a [`Row`] has.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The attribute values of `user`, by slot, borrowed from it.
    pub fn row<'a>(&'a self, user: &'a User) -> Row<'a> {
        let mut values = Vec::with_capacity(self.names.len());
        for (i, (name, _)) in self.names.iter().enumerate() {
            let v = match i {
                0 => Some(Val::Str(&user.user_name)),
                1 => Some(Val::Str(&user.display_name)),
                2 => user.email.as_deref().map(Val::Str),
                3 => user.external_id.as_deref().map(Val::Str),
                4 => user.department.as_deref().map(Val::Str),
                5 => Some(Val::Str(&user.source)),
                6 => Some(Val::Bool(user.active)),
                _ => user
                    .attributes
                    .get(name)
                    .or(self.defaults[i].as_ref())
                    .map(Val::from_attr),
            };
            values.push(v);
        }
        Row { values }
    }
}

/// A value borrowed from a user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    Str(&'a str),
    Long(i64),
    Bool(bool),
    Set(&'a [AttrValue]),
    /// Decimals are carried but no rule operator reads them.
    Other,
}

impl<'a> Val<'a> {
    fn from_attr(v: &'a AttrValue) -> Self {
        match v {
            AttrValue::String(s) => Val::Str(s),
            AttrValue::Long(n) => Val::Long(*n),
            AttrValue::Bool(b) => Val::Bool(*b),
            AttrValue::Set(items) => Val::Set(items),
            AttrValue::Decimal(_) => Val::Other,
        }
    }
}

/// One user's attribute values by slot.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    values: Vec<Option<Val<'a>>>,
}

impl<'a> Row<'a> {
    /// The string in `slot`, if it holds one.
    pub fn str(&self, slot: usize) -> Option<&'a str> {
        match self.values.get(slot).copied().flatten() {
            Some(Val::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// A literal in a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lit {
    Str(String),
    Long(i64),
    Bool(bool),
}

impl Lit {
    fn kind(&self) -> AttrKind {
        match self {
            Self::Str(_) => AttrKind::String,
            Self::Long(_) => AttrKind::Long,
            Self::Bool(_) => AttrKind::Bool,
        }
    }

    fn matches(&self, v: &AttrValue) -> bool {
        match (self, v) {
            (Self::Str(a), AttrValue::String(b)) => a == b,
            (Self::Long(a), AttrValue::Long(b)) => a == b,
            (Self::Bool(a), AttrValue::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Long(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed, type-checked rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Has(usize),
    Truthy(usize),
    Compare(usize, Cmp, Lit),
    In(usize, Vec<Lit>),
    Contains(usize, Lit),
    Like(usize, Pattern),
}

impl Expr {
    /// Evaluates the rule for one user.
    pub fn eval(&self, row: &Row<'_>) -> bool {
        let get = |slot: usize| row.values.get(slot).copied().flatten();
        match self {
            Self::Or(a, b) => a.eval(row) || b.eval(row),
            Self::And(a, b) => a.eval(row) && b.eval(row),
            Self::Not(a) => !a.eval(row),
            Self::Has(s) => get(*s).is_some(),
            Self::Truthy(s) => get(*s) == Some(Val::Bool(true)),
            Self::Compare(s, op, lit) => match (get(*s), lit) {
                (Some(Val::Str(v)), Lit::Str(l)) => cmp(*op, v.cmp(l.as_str())),
                (Some(Val::Long(v)), Lit::Long(l)) => cmp(*op, v.cmp(l)),
                (Some(Val::Bool(v)), Lit::Bool(l)) => cmp(*op, v.cmp(l)),
                _ => false,
            },
            Self::In(s, lits) => match get(*s) {
                Some(Val::Str(v)) => lits.iter().any(|l| matches!(l, Lit::Str(x) if x == v)),
                Some(Val::Long(v)) => lits.contains(&Lit::Long(v)),
                Some(Val::Bool(v)) => lits.contains(&Lit::Bool(v)),
                _ => false,
            },
            Self::Contains(s, lit) => match get(*s) {
                Some(Val::Set(items)) => items.iter().any(|v| lit.matches(v)),
                _ => false,
            },
            Self::Like(s, pattern) => match get(*s) {
                Some(Val::Str(v)) => pattern.matches(v),
                _ => false,
            },
        }
    }

    /// A `slot == "literal"` every match must satisfy (a top-level conjunct), used to index
    /// rules by value so each user is tested only against rules that can match it.
    pub fn required_equality(&self) -> Option<(usize, &str)> {
        match self {
            Self::Compare(s, Cmp::Eq, Lit::Str(v)) => Some((*s, v)),
            Self::And(a, b) => a.required_equality().or_else(|| b.required_equality()),
            _ => None,
        }
    }
}

fn cmp(op: Cmp, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Cmp::Eq => o == Equal,
        Cmp::Ne => o != Equal,
        Cmp::Lt => o == Less,
        Cmp::Le => o != Greater,
        Cmp::Gt => o == Greater,
        Cmp::Ge => o != Less,
    }
}

/// A `like` pattern, split once at parse time into the literal runs between wildcards: `*`
/// matches any run of characters and `\*` a literal star.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pieces: Vec<String>,
}

impl Pattern {
    fn new(pattern: &str) -> Self {
        let mut pieces: Vec<String> = vec![String::new()];
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'*') => {
                    chars.next();
                    if let Some(p) = pieces.last_mut() {
                        p.push('*');
                    }
                }
                '*' => pieces.push(String::new()),
                c => {
                    if let Some(p) = pieces.last_mut() {
                        p.push(c)
                    }
                }
            }
        }
        Self { pieces }
    }

    fn matches(&self, text: &str) -> bool {
        let pieces = &self.pieces;
        if pieces.len() == 1 {
            return text == pieces[0];
        }
        let (first, rest) = pieces.split_first().unwrap_or((&pieces[0], &[]));
        let Some(mut t) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        let (last, middle) = rest.split_last().unwrap_or((first, &[]));
        for m in middle {
            match t.find(m.as_str()) {
                Some(i) => t = &t[i + m.len()..],
                None => return false,
            }
        }
        t.len() >= last.len() && t.ends_with(last.as_str())
    }
}

// ---- parsing -----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Int(i64),
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

/// Parses and type-checks `text` against `catalog`.
pub fn parse(text: &str, catalog: &Catalog) -> Result<Expr, RuleError> {
    let tokens = lex(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        catalog,
    };
    let e = p.or()?;
    match p.peek() {
        Tok::End => Ok(e),
        t => Err(p.error(format!("unexpected {}", describe(t)))),
    }
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, RuleError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |column: usize, message: String| RuleError { column, message };
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op2 = ["==", "!=", "<=", ">=", "&&", "||"]
            .into_iter()
            .find(|o| *o == two);
        if let Some(op) = op2 {
            out.push((Tok::Op(op), col));
            i += 2;
            continue;
        }
        match c {
            '(' => out.push((Tok::LParen, col)),
            ')' => out.push((Tok::RParen, col)),
            '[' => out.push((Tok::LBracket, col)),
            ']' => out.push((Tok::RBracket, col)),
            ',' => out.push((Tok::Comma, col)),
            '<' => out.push((Tok::Op("<"), col)),
            '>' => out.push((Tok::Op(">"), col)),
            '!' => out.push((Tok::Op("!"), col)),
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(col, "unterminated string".into())),
                        Some('"') => break,
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some('"') => s.push('"'),
                                Some('\\') => s.push('\\'),
                                // Kept for `like`, where `\*` is a literal star.
                                Some('*') => s.push_str("\\*"),
                                _ => return Err(err(i + 1, "unknown escape".into())),
                            }
                            i += 2;
                            continue;
                        }
                        Some(&ch) => s.push(ch),
                    }
                    i += 1;
                }
                out.push((Tok::Str(s), col));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                let n = s
                    .parse()
                    .map_err(|_| err(col, format!("{s} is not a 64-bit integer")))?;
                out.push((Tok::Int(n), col));
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                out.push((Tok::Name(chars[start..i].iter().collect()), col));
                continue;
            }
            c => return Err(err(col, format!("unexpected character {c:?}"))),
        }
        i += 1;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Name(n) => format!("name {n:?}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Int(n) => format!("number {n}"),
        Tok::Op(o) => format!("{o:?}"),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Comma => "','".into(),
        Tok::End => "end of rule".into(),
    }
}

struct Parser<'c> {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    catalog: &'c Catalog,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].0
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos = (self.pos + 1).min(self.tokens.len() - 1);
        t
    }

    fn error(&self, message: String) -> RuleError {
        RuleError {
            column: self.tokens[self.pos.min(self.tokens.len() - 1)].1,
            message,
        }
    }

    fn or(&mut self) -> Result<Expr, RuleError> {
        let mut e = self.and()?;
        while *self.peek() == Tok::Op("||") {
            self.next();
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, RuleError> {
        let mut e = self.unary()?;
        while *self.peek() == Tok::Op("&&") {
            self.next();
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, RuleError> {
        match self.peek().clone() {
            Tok::Op("!") => {
                self.next();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Tok::LParen => {
                self.next();
                let e = self.or()?;
                match self.next() {
                    Tok::RParen => Ok(e),
                    t => {
                        self.pos -= 1;
                        Err(self.error(format!("expected ')', found {}", describe(&t))))
                    }
                }
            }
            Tok::Name(n) if n == "has" => {
                self.next();
                let (slot, _) = self.attribute()?;
                Ok(Expr::Has(slot))
            }
            Tok::Name(_) => self.test(),
            t => Err(self.error(format!("expected an attribute, found {}", describe(&t)))),
        }
    }

    fn attribute(&mut self) -> Result<(usize, AttrType), RuleError> {
        match self.peek().clone() {
            Tok::Name(n) => match self.catalog.slot(&n) {
                Some(found) => {
                    self.next();
                    Ok(found)
                }
                None => Err(self.error(format!(
                    "unknown attribute {n:?} (known: {})",
                    self.catalog
                        .names
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            },
            t => Err(self.error(format!("expected an attribute, found {}", describe(&t)))),
        }
    }

    fn literal(&mut self) -> Result<Lit, RuleError> {
        match self.next() {
            Tok::Str(s) => Ok(Lit::Str(s.replace("\\*", "*"))),
            Tok::Int(n) => Ok(Lit::Long(n)),
            Tok::Name(n) if n == "true" => Ok(Lit::Bool(true)),
            Tok::Name(n) if n == "false" => Ok(Lit::Bool(false)),
            t => {
                self.pos -= 1;
                Err(self.error(format!("expected a literal, found {}", describe(&t))))
            }
        }
    }

    fn test(&mut self) -> Result<Expr, RuleError> {
        let name_col = self.pos;
        let (slot, ty) = self.attribute()?;
        let name = self.catalog.names[slot].0.clone();
        let type_error = |p: &Self, what: &str| RuleError {
            column: p.tokens[name_col].1,
            message: format!("{name} is {} and cannot be {what}", type_name(ty)),
        };
        match self.peek().clone() {
            Tok::Op(op @ ("==" | "!=" | "<" | "<=" | ">" | ">=")) => {
                self.next();
                let lit_col = self.pos;
                let lit = self.literal()?;
                if ty.multi {
                    return Err(type_error(self, "compared (use `contains`)"));
                }
                if matches!(op, "<" | "<=" | ">" | ">=") && ty.kind != AttrKind::Long {
                    return Err(type_error(self, "ordered"));
                }
                if lit.kind() != ty.kind {
                    return Err(RuleError {
                        column: self.tokens[lit_col].1,
                        message: format!("{name} is {}, but {lit} is not", type_name(ty)),
                    });
                }
                let cmp = match op {
                    "==" => Cmp::Eq,
                    "!=" => Cmp::Ne,
                    "<" => Cmp::Lt,
                    "<=" => Cmp::Le,
                    ">" => Cmp::Gt,
                    _ => Cmp::Ge,
                };
                Ok(Expr::Compare(slot, cmp, lit))
            }
            Tok::Name(k) if k == "in" => {
                self.next();
                if ty.multi {
                    return Err(type_error(self, "tested with `in` (use `contains`)"));
                }
                if self.next() != Tok::LBracket {
                    self.pos -= 1;
                    return Err(self.error("expected '[' after `in`".into()));
                }
                let mut lits = Vec::new();
                loop {
                    let lit_col = self.pos;
                    let lit = self.literal()?;
                    if lit.kind() != ty.kind {
                        return Err(RuleError {
                            column: self.tokens[lit_col].1,
                            message: format!("{name} is {}, but {lit} is not", type_name(ty)),
                        });
                    }
                    lits.push(lit);
                    match self.next() {
                        Tok::Comma => continue,
                        Tok::RBracket => break,
                        t => {
                            self.pos -= 1;
                            return Err(
                                self.error(format!("expected ',' or ']', found {}", describe(&t)))
                            );
                        }
                    }
                }
                Ok(Expr::In(slot, lits))
            }
            Tok::Name(k) if k == "contains" => {
                self.next();
                if !ty.multi {
                    return Err(type_error(self, "tested with `contains` (not a set)"));
                }
                let lit_col = self.pos;
                let lit = self.literal()?;
                if lit.kind() != ty.kind {
                    return Err(RuleError {
                        column: self.tokens[lit_col].1,
                        message: format!("{name} holds {:?} values, but {lit} is not one", ty.kind),
                    });
                }
                Ok(Expr::Contains(slot, lit))
            }
            Tok::Name(k) if k == "like" => {
                self.next();
                if ty.multi || ty.kind != AttrKind::String {
                    return Err(type_error(self, "matched with `like`"));
                }
                match self.next() {
                    Tok::Str(p) => Ok(Expr::Like(slot, Pattern::new(&p))),
                    t => {
                        self.pos -= 1;
                        Err(self.error(format!("`like` needs a string, found {}", describe(&t))))
                    }
                }
            }
            _ if ty.kind == AttrKind::Bool && !ty.multi => Ok(Expr::Truthy(slot)),
            t => Err(self.error(format!(
                "expected a comparison after {name}, found {}",
                describe(&t)
            ))),
        }
    }
}

fn type_name(t: AttrType) -> String {
    let k = match t.kind {
        AttrKind::String => "a string",
        AttrKind::Long => "a number",
        AttrKind::Bool => "a boolean",
        AttrKind::Decimal => "a decimal",
    };
    if t.multi {
        format!("a set of {}", &k[2..])
    } else {
        k.to_owned()
    }
}

#[cfg(test)]
mod tests;
