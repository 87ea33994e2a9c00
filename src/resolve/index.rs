//! The resolution table: every definition and every use of a name, by span, in every loaded
//! file, recorded by the resolver as it resolves them (a body's own definitions, then blocks,
//! then ops; argument names to the op argument, block parameter or port they bind). The checker
//! keeps it in `Checked::names`; the editor features read it.

use crate::ast::Import;
use crate::load::LoadedSpec;
use crate::ops::Op;
use crate::source::{FileId, Span};
use crate::stdlib;

/// A model or block body, named by the span of its definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScopeId(pub Span);

/// What a name refers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Symbol {
    /// A name a model or block body defines: dims, params, inputs, side features (`clicks.dwell`),
    /// bindings, block parameters and ports, dimension variables.
    Local(ScopeId, String),
    /// A label stream of a model.
    Label(ScopeId, String),
    /// A `loss` statement's name (nothing refers to it).
    Loss(ScopeId, String),
    Block(String),
    Op(Op),
    /// The built-in batch dimension `B`.
    Batch,
    /// An imported file.
    File(FileId),
    /// A named argument of an op; `config` for a constructor's configuration (`out` in
    /// `Linear(out: D)`), else an input of the call or application.
    OpArg {
        op: Op,
        name: &'static str,
        config: bool,
    },
    /// An option value of an op argument: `mean` in `pool(x, mask: m, mode: mean)`.
    OptionValue {
        op: Op,
        arg: &'static str,
        value: String,
    },
}

/// What kind of declaration a definition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefKind {
    Dim,
    Param,
    Input,
    Seq,
    Side,
    Label,
    Weight,
    Let,
    Output,
    Loss,
    Block,
    BlockParam,
    Port,
    DimVar,
}

impl DefKind {
    /// How a diagnostic names the kind (`` `x` is already defined as a dimension ``).
    pub fn noun(self) -> &'static str {
        match self {
            DefKind::Dim => "dimension",
            DefKind::Param | DefKind::BlockParam => "parameter",
            DefKind::Input => "input",
            DefKind::Seq => "sequence",
            DefKind::Side => "side feature",
            DefKind::Label => "label stream",
            DefKind::Weight => "weight stream",
            DefKind::Let => "binding",
            DefKind::Output => "output",
            DefKind::Loss => "loss",
            DefKind::Block => "block",
            DefKind::Port => "block input",
            DefKind::DimVar => "dimension variable",
        }
    }

    /// How a hover or completion names the kind.
    pub fn describe(self) -> &'static str {
        match self {
            DefKind::Dim => "dim",
            DefKind::Param => "param",
            DefKind::Input => "input",
            DefKind::Seq => "seq",
            DefKind::Side => "side feature",
            DefKind::Label => "label stream",
            DefKind::Weight => "weight stream",
            DefKind::Let => "binding",
            DefKind::Output => "output",
            DefKind::Loss => "loss",
            DefKind::Block => "block",
            DefKind::BlockParam => "block parameter",
            DefKind::Port => "block input",
            DefKind::DimVar => "dimension variable",
        }
    }
}

/// One definition.
#[derive(Clone, Debug)]
pub struct Def {
    pub symbol: Symbol,
    pub kind: DefKind,
    /// The defining name.
    pub span: Span,
    /// The declaration as written (a statement's first line, a block's header).
    pub detail: String,
}

/// One written name: a definition or a use.
#[derive(Clone, Debug)]
pub struct Occurrence {
    pub span: Span,
    pub symbol: Symbol,
    pub is_def: bool,
    /// Spans whose inferred values a hover also shows: for a callee, its call (and the
    /// application of the instance it configures); for an argument name, its value.
    pub related: Vec<Span>,
}

/// A model or block body.
#[derive(Clone, Debug)]
pub struct ScopeInfo {
    pub id: ScopeId,
    pub name: String,
    pub is_block: bool,
}

/// Every definition and use of a loaded spec.
#[derive(Clone, Debug, Default)]
pub struct Index {
    pub occurrences: Vec<Occurrence>,
    pub defs: Vec<Def>,
    pub scopes: Vec<ScopeInfo>,
}

impl Index {
    pub(super) fn occur(&mut self, span: Span, symbol: Symbol, is_def: bool, related: Vec<Span>) {
        self.occurrences.push(Occurrence { span, symbol, is_def, related });
    }

    pub(super) fn define(&mut self, span: Span, symbol: Symbol, kind: DefKind, detail: String) {
        self.defs.push(Def { symbol: symbol.clone(), kind, span, detail });
        self.occur(span, symbol, true, vec![]);
    }

    /// The innermost occurrence at a byte offset of a file (its end counts, so a cursor just
    /// after a name finds it).
    pub fn at(&self, file: FileId, offset: u32) -> Option<&Occurrence> {
        self.occurrences
            .iter()
            .filter(|o| o.span.file == file && o.span.start <= offset && offset <= o.span.end)
            .min_by_key(|o| (o.span.end - o.span.start, std::cmp::Reverse(o.span.start)))
    }

    /// The first definition of a symbol.
    pub(crate) fn def(&self, symbol: &Symbol) -> Option<&Def> {
        self.defs.iter().find(|d| &d.symbol == symbol)
    }

    /// Every occurrence of a symbol, definitions included, in source order per file.
    pub fn references<'a>(&'a self, symbol: &'a Symbol) -> impl Iterator<Item = &'a Occurrence> + 'a {
        self.occurrences.iter().filter(move |o| &o.symbol == symbol)
    }

    /// The definitions made in one body.
    pub(crate) fn defs_in(&self, scope: ScopeId) -> impl Iterator<Item = &Def> {
        self.defs.iter().filter(move |d| match &d.symbol {
            Symbol::Local(s, _) | Symbol::Label(s, _) | Symbol::Loss(s, _) => *s == scope,
            _ => false,
        })
    }

    /// The body of the model, or of the block called `name`.
    pub(crate) fn scope_named(&self, name: &str, is_block: bool) -> Option<ScopeId> {
        self.scopes.iter().find(|s| s.is_block == is_block && (s.name == name || !is_block)).map(|s| s.id)
    }
}

/// The loaded file an import names, if it was loaded.
pub(crate) fn import_target(spec: &LoadedSpec, from: FileId, import: &Import) -> Option<FileId> {
    if stdlib::get(&import.path).is_some() {
        return spec.sources.find_name(&import.path);
    }
    let base = spec.sources.get(from).path.as_deref()?.parent()?;
    let full = base.join(&import.path);
    let canonical = full.canonicalize().unwrap_or(full);
    spec.sources.find_path(&canonical)
}
