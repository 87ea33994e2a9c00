//! The surface syntax tree of one spec file; every node carries the span it came from.

use crate::source::Span;

/// A name with the place it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// One parsed `.recspec` file.
#[derive(Clone, Debug, Default)]
pub struct File {
    pub imports: Vec<Import>,
    pub blocks: Vec<BlockDef>,
    pub models: Vec<ModelDef>,
    pub features: Vec<FeaturesDef>,
}

#[derive(Clone, Debug)]
pub struct Import {
    pub path: String,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct ModelDef {
    pub name: Ident,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// `features NAME { statements }`: how raw events become a model's inputs and labels.
#[derive(Clone, Debug)]
pub struct FeaturesDef {
    pub name: Ident,
    pub body: Vec<FeatureStmt>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum FeatureStmtKind {
    /// `dim T = 30;`: binds a model dim (as a data set's `data.toml` does).
    Dim { name: Ident, value: Expr },
    /// `source events(...);`, `source users(...);`, `source items(...);`
    Source { value: Expr },
    /// `split time(valid: 0.1, test: 0.1);`
    Split { value: Expr },
    /// `feature NAME = expr;`
    Feature { name: Ident, value: Expr },
    /// `label NAME = "rule";`
    Label { name: Ident, value: Expr },
    /// `seq NAME = expr;`
    Seq { name: Ident, value: Expr },
    /// `side SEQ.NAME = expr;`
    Side { seq: Ident, name: Ident, value: Expr },
}

#[derive(Clone, Debug)]
pub struct FeatureStmt {
    pub kind: FeatureStmtKind,
    pub span: Span,
}

/// `block NAME(params)(ports) -> type { body }`
#[derive(Clone, Debug)]
pub struct BlockDef {
    pub name: Ident,
    pub params: Vec<ParamDecl>,
    pub ports: Vec<Port>,
    pub ret: TensorTypeExpr,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Int,
    Float,
    Bool,
    Symbol,
    List,
}

impl ValueKind {
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Int => "int",
            ValueKind::Float => "float",
            ValueKind::Bool => "bool",
            ValueKind::Symbol => "symbol",
            ValueKind::List => "list",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ParamDecl {
    pub name: Ident,
    pub kind: ValueKind,
    pub default: Option<Expr>,
}

#[derive(Clone, Debug)]
pub struct Port {
    pub name: Ident,
    pub ty: TensorTypeExpr,
}

pub use crate::types::DType;

/// A written tensor type such as `float[B, T + 1, D]`.
#[derive(Clone, Debug)]
pub struct TensorTypeExpr {
    pub dtype: DType,
    pub dims: Vec<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum StmtKind {
    Dim {
        name: Ident,
        value: Expr,
    },
    Param {
        name: Ident,
        kind: ValueKind,
        value: Expr,
    },
    /// `hashed`: `vocab V hashed`, raw ids hashed into V buckets by the data loader.
    Input {
        name: Ident,
        ty: TensorTypeExpr,
        vocab: Option<Expr>,
        hashed: bool,
    },
    Seq {
        name: Ident,
        ty: TensorTypeExpr,
        vocab: Option<Expr>,
        hashed: bool,
    },
    Side {
        seq: Ident,
        name: Ident,
        ty: TensorTypeExpr,
    },
    Label {
        names: Vec<Ident>,
    },
    Weight {
        name: Ident,
    },
    Let {
        name: Ident,
        value: Expr,
    },
    Output {
        name: Ident,
        value: Expr,
    },
    Loss {
        name: Ident,
        value: Expr,
    },
    Return {
        value: Expr,
    },
}

#[derive(Clone, Debug)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

impl Stmt {
    /// The statement keyword, for messages.
    pub(crate) fn keyword(&self) -> &'static str {
        match self.kind {
            StmtKind::Dim { .. } => "dim",
            StmtKind::Param { .. } => "param",
            StmtKind::Input { .. } => "input",
            StmtKind::Seq { .. } => "seq",
            StmtKind::Side { .. } => "side",
            StmtKind::Label { .. } => "label",
            StmtKind::Weight { .. } => "weight",
            StmtKind::Let { .. } => "let",
            StmtKind::Output { .. } => "output",
            StmtKind::Loss { .. } => "loss",
            StmtKind::Return { .. } => "return",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    List(Vec<Expr>),
    Name(String),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Arg>),
    Field(Box<Expr>, Ident),
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

impl Expr {
    /// Visits this expression and all sub-expressions, parents first.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match &self.kind {
            ExprKind::List(items) => items.iter().for_each(|e| e.walk(f)),
            ExprKind::Neg(e) => e.walk(f),
            ExprKind::Binary(_, a, b) => {
                a.walk(f);
                b.walk(f);
            }
            ExprKind::Call(callee, args) => {
                callee.walk(f);
                args.iter().for_each(|a| a.value.walk(f));
            }
            ExprKind::Field(e, _) => e.walk(f),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Str(_) | ExprKind::Name(_) => {}
        }
    }
}
