//! The compiled form of a policy: typed scopes and expressions with every name resolved
//! against the snapshot (groups and roles by index, attributes by slot).

use crate::engine::Effect;
use crate::request::Action;
use crate::snapshot::ResourceKind;

/// Cedar entity types Portcullis's schema declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    User,
    Group,
    Role,
    Source,
    Provider,
    Model,
    McpServer,
    McpTool,
    McpResource,
    McpPrompt,
    LlmTool,
    Action,
}

impl Ty {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "User" => Self::User,
            "Group" => Self::Group,
            "Role" => Self::Role,
            "Source" => Self::Source,
            "Provider" => Self::Provider,
            "Model" => Self::Model,
            "McpServer" => Self::McpServer,
            "McpTool" => Self::McpTool,
            "McpResource" => Self::McpResource,
            "McpPrompt" => Self::McpPrompt,
            "LlmTool" => Self::LlmTool,
            "Action" => Self::Action,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
            Self::Role => "Role",
            Self::Source => "Source",
            Self::Provider => "Provider",
            Self::Model => "Model",
            Self::McpServer => "McpServer",
            Self::McpTool => "McpTool",
            Self::McpResource => "McpResource",
            Self::McpPrompt => "McpPrompt",
            Self::LlmTool => "LlmTool",
            Self::Action => "Action",
        }
    }

    pub fn of_resource(kind: ResourceKind) -> Self {
        match kind {
            ResourceKind::Provider => Self::Provider,
            ResourceKind::Model => Self::Model,
            ResourceKind::McpServer => Self::McpServer,
            ResourceKind::McpTool => Self::McpTool,
            ResourceKind::McpResource => Self::McpResource,
            ResourceKind::McpPrompt => Self::McpPrompt,
            ResourceKind::LlmTool => Self::LlmTool,
        }
    }
}

/// An entity literal, with its directory index when it names a group or role the snapshot has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntLit {
    pub ty: Ty,
    pub id: Box<str>,
    /// For `Group`: its index in the snapshot's groups, if it exists.
    pub group: Option<u32>,
    /// For `Role`: its index in the snapshot's roles, if it exists.
    pub role: Option<u32>,
    /// For `Action`: the action, if it is a concrete one (not an action group).
    pub action: Option<Action>,
}

impl std::fmt::Display for EntLit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{:?}", self.ty.name(), self.id)
    }
}

/// A value known when the policy is compiled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Const {
    Bool(bool),
    Long(i64),
    Str(Box<str>),
    Ent(EntLit),
    Set(Box<[Const]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    Principal,
    Action,
    Resource,
    Context,
}

/// A `User` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PAttr {
    UserName,
    DisplayName,
    Email,
    ExternalId,
    Department,
    Source,
    Active,
    /// A declared principal attribute, by index into the snapshot's declarations.
    Declared(u32),
}

/// A resource attribute; which exist depends on the resource's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RAttr {
    Name,
    Provider,
    Server,
    Uri,
    Kind,
    /// A declared resource label, by index into the snapshot's declarations.
    Label(u32),
}

/// A `context` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CAttr {
    Route,
    Stream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    In,
    Contains,
    ContainsAll,
    ContainsAny,
}

/// One element of a `like` pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pat {
    Lit(Box<str>),
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    Const(Const),
    Var(Var),
    PAttr(PAttr),
    RAttr(RAttr),
    CAttr(CAttr),
    PHas(PAttr),
    RHas(RAttr),
    /// `context has <attr>`: whether the context record has it.
    CHas(bool),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    And(Box<(Expr, Expr)>),
    Or(Box<(Expr, Expr)>),
    If(Box<(Expr, Expr, Expr)>),
    Bin(BinOp, Box<(Expr, Expr)>),
    IsEmpty(Box<Expr>),
    Like(Box<Expr>, Box<[Pat]>),
    Is(Box<Expr>, Ty, Option<Box<Expr>>),
}

/// The principal scope, resolved against the directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PScope {
    All,
    /// `principal == User::"id"` (or `in`, which for a user is the same).
    User(Box<str>),
    Group(u32),
    Role(u32),
    Source(Box<str>),
    /// The scope names something no principal can be: a group or role the directory does not
    /// have, or another entity type.
    Never(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RScope {
    All,
    Eq(EntLit),
    In(EntLit),
    Is(Ty, Option<EntLit>),
}

impl RScope {
    /// The entity the scope is keyed by in the index, if any.
    pub fn target(&self) -> Option<&EntLit> {
        match self {
            Self::Eq(e) | Self::In(e) | Self::Is(_, Some(e)) => Some(e),
            Self::All | Self::Is(_, None) => None,
        }
    }
}

/// `when` or `unless`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clause {
    When,
    Unless,
}

impl Clause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::When => "when",
            Self::Unless => "unless",
        }
    }
}

/// One policy in compiled form.
#[derive(Debug, Clone)]
pub struct FastPolicy {
    pub effect: Effect,
    pub principal: PScope,
    /// The actions the action scope admits, one bit per [`Action::index`].
    pub actions: u16,
    pub resource: RScope,
    /// The `when`/`unless` clauses in order, each an index into [`Conditions`]: identical
    /// clauses across policies are stored once and evaluated at most once per decision.
    pub conditions: Vec<(Clause, u32)>,
}

impl Expr {
    /// Calls `f` on this expression and every one inside it.
    pub fn walk(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Not(e) | Expr::Neg(e) | Expr::IsEmpty(e) | Expr::Like(e, _) => e.walk(f),
            Expr::And(p) | Expr::Or(p) | Expr::Bin(_, p) => {
                p.0.walk(f);
                p.1.walk(f);
            }
            Expr::If(t) => {
                t.0.walk(f);
                t.1.walk(f);
                t.2.walk(f);
            }
            Expr::Is(e, _, i) => {
                e.walk(f);
                if let Some(i) = i {
                    i.walk(f);
                }
            }
            Expr::Const(_)
            | Expr::Var(_)
            | Expr::PAttr(_)
            | Expr::RAttr(_)
            | Expr::CAttr(_)
            | Expr::PHas(_)
            | Expr::RHas(_)
            | Expr::CHas(_) => {}
        }
    }
}
