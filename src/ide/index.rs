//! The symbols of a loaded spec: every definition and every use of a name, by span, in every
//! loaded file. Names resolve the way the resolver resolves them (a body's own definitions, then
//! blocks, then ops); argument names resolve to the op argument, block parameter or port they
//! bind.

use crate::ast::*;
use crate::dim::BATCH;
use crate::load::LoadedSpec;
use crate::ops::{self, ArgKind, Op, LAYERS, SELECT};
use crate::resolve::{signature, ArgRole};
use crate::source::{FileId, Span};
use crate::stdlib;
use std::collections::{HashMap, HashSet};

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
    pub fn build(spec: &LoadedSpec) -> Index {
        let mut blocks: HashMap<&str, &BlockDef> = HashMap::new();
        for b in spec.blocks() {
            blocks.entry(b.name.name.as_str()).or_insert(b);
        }
        let mut builder = Builder {
            spec,
            blocks,
            index: Index::default(),
            scope: ScopeId(Span::default()),
            model: None,
            locals: HashSet::new(),
        };
        for (id, file) in &spec.files {
            for import in &file.imports {
                if let Some(target) = import_target(spec, *id, import) {
                    builder.occur(import.span, Symbol::File(target), false, vec![]);
                }
            }
            for b in &file.blocks {
                builder.block(b);
            }
            for m in &file.models {
                builder.model(m);
            }
        }
        builder.index
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
    pub fn def(&self, symbol: &Symbol) -> Option<&Def> {
        self.defs.iter().find(|d| &d.symbol == symbol)
    }

    /// Every occurrence of a symbol, definitions included, in source order per file.
    pub fn references<'a>(&'a self, symbol: &'a Symbol) -> impl Iterator<Item = &'a Occurrence> + 'a {
        self.occurrences.iter().filter(move |o| &o.symbol == symbol)
    }

    /// The definitions made in one body.
    pub fn defs_in(&self, scope: ScopeId) -> impl Iterator<Item = &Def> {
        self.defs.iter().filter(move |d| match &d.symbol {
            Symbol::Local(s, _) | Symbol::Label(s, _) | Symbol::Loss(s, _) => *s == scope,
            _ => false,
        })
    }

    /// The body of the model, or of the block called `name`.
    pub fn scope_named(&self, name: &str, is_block: bool) -> Option<ScopeId> {
        self.scopes.iter().find(|s| s.is_block == is_block && (s.name == name || !is_block)).map(|s| s.id)
    }
}

/// The loaded file an import names, if it was loaded.
pub fn import_target(spec: &LoadedSpec, from: FileId, import: &Import) -> Option<FileId> {
    if stdlib::get(&import.path).is_some() {
        return spec.sources.find_name(&import.path);
    }
    let base = spec.sources.get(from).path.as_deref()?.parent()?;
    let full = base.join(&import.path);
    let canonical = full.canonicalize().unwrap_or(full);
    spec.sources.find_path(&canonical)
}

struct Builder<'a> {
    spec: &'a LoadedSpec,
    blocks: HashMap<&'a str, &'a BlockDef>,
    index: Index,
    scope: ScopeId,
    /// The model body being indexed (labels resolve only there).
    model: Option<ScopeId>,
    locals: HashSet<String>,
}

/// What a call's named arguments bind to.
enum ArgTarget<'a> {
    Op { op: Op, config: bool },
    Block { scope: ScopeId, names: Vec<&'a str> },
    None,
}

impl<'a> Builder<'a> {
    fn occur(&mut self, span: Span, symbol: Symbol, is_def: bool, related: Vec<Span>) {
        self.index.occurrences.push(Occurrence { span, symbol, is_def, related });
    }

    fn define(&mut self, span: Span, symbol: Symbol, kind: DefKind, detail: String) {
        if let Symbol::Local(_, n) = &symbol {
            self.locals.insert(n.clone());
        }
        self.index.defs.push(Def { symbol: symbol.clone(), kind, span, detail });
        self.occur(span, symbol, true, vec![]);
    }

    /// The first line of a span's text, trimmed.
    fn text(&self, span: Span) -> String {
        let text = &self.spec.sources.get(span.file).text;
        let s = text.get(span.start as usize..span.end as usize).unwrap_or("");
        s.lines().next().unwrap_or("").trim().to_string()
    }

    fn local(&self, name: &str) -> Symbol {
        Symbol::Local(self.scope, name.to_string())
    }

    fn model(&mut self, m: &'a ModelDef) {
        self.scope = ScopeId(m.span);
        self.model = Some(self.scope);
        self.locals.clear();
        self.index.scopes.push(ScopeInfo { id: self.scope, name: m.name.name.clone(), is_block: false });
        for stmt in &m.body {
            self.declare(stmt);
        }
        for stmt in &m.body {
            self.visit(stmt);
        }
        self.model = None;
    }

    fn block(&mut self, b: &'a BlockDef) {
        let header = Span { end: b.ret.span.end, ..b.span };
        let header_text = self.text(header);
        if self.blocks.get(b.name.name.as_str()).is_some_and(|first| std::ptr::eq(*first, b)) {
            self.define(b.name.span, Symbol::Block(b.name.name.clone()), DefKind::Block, header_text);
        }
        self.scope = ScopeId(b.span);
        self.locals.clear();
        self.index.scopes.push(ScopeInfo { id: self.scope, name: b.name.name.clone(), is_block: true });
        for p in &b.params {
            let default = p.default.as_ref().map_or(String::new(), |d| format!(" = {}", self.text(d.span)));
            let detail = format!("{}: {}{default}", p.name.name, p.kind.name());
            self.define(p.name.span, self.local(&p.name.name), DefKind::BlockParam, detail);
        }
        for p in &b.params {
            match &p.default {
                Some(Expr { kind: ExprKind::Name(_), .. }) if p.kind == ValueKind::Symbol => {}
                Some(d) => self.expr(d),
                None => {}
            }
        }
        for port in &b.ports {
            let detail = format!("{}: {}", port.name.name, self.text(port.ty.span));
            self.define(port.name.span, self.local(&port.name.name), DefKind::Port, detail);
        }
        // Free names in port types are dimension variables, defined where first written.
        for port in &b.ports {
            for d in &port.ty.dims {
                d.walk(&mut |e| {
                    if let ExprKind::Name(n) = &e.kind {
                        if !self.locals.contains(n) && n != BATCH {
                            let detail = format!("{n}, bound by each application of `{}`", b.name.name);
                            self.define(e.span, self.local(n), DefKind::DimVar, detail);
                        } else {
                            self.name(n, e.span, vec![]);
                        }
                    }
                });
            }
        }
        for d in &b.ret.dims {
            self.expr(d);
        }
        for stmt in &b.body {
            self.declare(stmt);
        }
        for stmt in &b.body {
            self.visit(stmt);
        }
    }

    fn declare(&mut self, stmt: &Stmt) {
        let detail = self.text(stmt.span);
        let kind = match &stmt.kind {
            StmtKind::Dim { name, .. } => Some((name, DefKind::Dim)),
            StmtKind::Param { name, .. } => Some((name, DefKind::Param)),
            StmtKind::Input { name, .. } => Some((name, DefKind::Input)),
            StmtKind::Seq { name, .. } => Some((name, DefKind::Seq)),
            StmtKind::Weight { name } => Some((name, DefKind::Weight)),
            StmtKind::Let { name, .. } => Some((name, DefKind::Let)),
            StmtKind::Output { name, .. } => Some((name, DefKind::Output)),
            StmtKind::Side { seq, name, .. } => {
                let full = format!("{}.{}", seq.name, name.name);
                self.define(name.span, self.local(&full), DefKind::Side, detail);
                return;
            }
            StmtKind::Label { names } => {
                for n in names {
                    let symbol = Symbol::Label(self.scope, n.name.clone());
                    self.define(n.span, symbol, DefKind::Label, detail.clone());
                }
                return;
            }
            StmtKind::Loss { name, .. } => {
                let symbol = Symbol::Loss(self.scope, name.name.clone());
                self.define(name.span, symbol, DefKind::Loss, detail);
                return;
            }
            StmtKind::Return { .. } => None,
        };
        if let Some((name, kind)) = kind {
            self.define(name.span, self.local(&name.name), kind, detail);
        }
    }

    fn visit(&mut self, stmt: &Stmt) {
        match &stmt.kind {
            StmtKind::Param { kind: ValueKind::Symbol, value: Expr { kind: ExprKind::Name(_), .. }, .. } => {}
            StmtKind::Dim { value, .. } | StmtKind::Param { value, .. } => self.expr(value),
            StmtKind::Input { ty, vocab, .. } | StmtKind::Seq { ty, vocab, .. } => {
                self.ty(ty);
                if let Some(v) = vocab {
                    self.expr(v);
                }
            }
            StmtKind::Side { seq, ty, .. } => {
                if self.locals.contains(&seq.name) {
                    self.occur(seq.span, self.local(&seq.name), false, vec![]);
                }
                self.ty(ty);
            }
            StmtKind::Label { .. } | StmtKind::Weight { .. } => {}
            StmtKind::Let { value, .. }
            | StmtKind::Output { value, .. }
            | StmtKind::Loss { value, .. }
            | StmtKind::Return { value } => self.expr(value),
        }
    }

    fn ty(&mut self, ty: &TensorTypeExpr) {
        for d in &ty.dims {
            self.expr(d);
        }
    }

    /// A name in value position.
    fn name(&mut self, n: &str, span: Span, related: Vec<Span>) {
        let symbol = if self.locals.contains(n) {
            self.local(n)
        } else if n == BATCH {
            Symbol::Batch
        } else if self.blocks.contains_key(n) {
            Symbol::Block(n.to_string())
        } else if let Some(op) = Op::by_name(n) {
            Symbol::Op(op)
        } else {
            return;
        };
        self.occur(span, symbol, false, related);
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Name(n) => self.name(n, e.span, vec![]),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Str(_) => {}
            ExprKind::List(items) => items.iter().for_each(|x| self.expr(x)),
            ExprKind::Neg(x) => self.expr(x),
            ExprKind::Binary(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Field(base, field) => {
                self.expr(base);
                if let ExprKind::Name(n) = &base.kind {
                    let full = format!("{n}.{}", field.name);
                    if self.locals.contains(&full) {
                        self.occur(field.span, self.local(&full), false, vec![]);
                    }
                }
            }
            ExprKind::Call(callee, args) => self.call(e.span, callee, args, &[]),
        }
    }

    /// A call at `span`; `outer` are the applications this call's result is the callee of.
    fn call(&mut self, span: Span, callee: &Expr, args: &[Arg], outer: &[Span]) {
        let mut related = vec![span];
        related.extend_from_slice(outer);
        let target = match &callee.kind {
            ExprKind::Name(n) if (n == SELECT || n == LAYERS) && !self.locals.contains(n) => {
                // Built-ins: `select`'s branch names are option values of the chosen parameter,
                // not symbols; `layers` takes a count and a configured component.
                args.iter().for_each(|a| self.expr(&a.value));
                return;
            }
            ExprKind::Name(n) if !self.locals.contains(n) => {
                self.name(n, callee.span, related);
                match (Op::by_name(n), self.blocks.get(n.as_str())) {
                    (Some(op), _) => ArgTarget::Op { op, config: op.is_constructor() },
                    (None, Some(b)) => ArgTarget::Block {
                        scope: ScopeId(b.span),
                        names: b.params.iter().map(|p| p.name.name.as_str()).collect(),
                    },
                    _ => ArgTarget::None,
                }
            }
            ExprKind::Call(inner, inner_args) => {
                self.call(callee.span, inner, inner_args, &related);
                match &inner.kind {
                    ExprKind::Name(n) if !self.locals.contains(n) => {
                        match (Op::by_name(n), self.blocks.get(n.as_str())) {
                            (Some(op), _) if op.is_constructor() => ArgTarget::Op { op, config: false },
                            (None, Some(b)) => ArgTarget::Block {
                                scope: ScopeId(b.span),
                                names: b.ports.iter().map(|p| p.name.name.as_str()).collect(),
                            },
                            _ => ArgTarget::None,
                        }
                    }
                    _ => ArgTarget::None,
                }
            }
            // A bound instance (`items(item)`) or another callee expression.
            ExprKind::Name(n) => {
                self.name(n, callee.span, related);
                ArgTarget::None
            }
            _ => {
                self.expr(callee);
                ArgTarget::None
            }
        };
        let locals = &self.locals;
        let sig = signature(callee, &|n| locals.contains(n), &self.blocks);
        let mut positional = 0;
        for a in args {
            let role = sig.role(positional, a.name.as_ref().map(|n| n.name.as_str()));
            if a.name.is_none() {
                positional += 1;
            }
            if let Some(n) = &a.name {
                let symbol = match &target {
                    ArgTarget::Op { op, config } => {
                        let specs = if *config { op.config() } else { op.inputs() };
                        ops::arg_spec(specs, &n.name).map(|(s, _)| Symbol::OpArg {
                            op: *op,
                            name: s.name,
                            config: *config,
                        })
                    }
                    ArgTarget::Block { scope, names } => {
                        names.contains(&n.name.as_str()).then(|| Symbol::Local(*scope, n.name.clone()))
                    }
                    ArgTarget::None => None,
                };
                if let Some(symbol) = symbol {
                    self.occur(n.span, symbol, false, vec![a.value.span]);
                }
            }
            match (role, &a.value.kind) {
                (ArgRole::Label, ExprKind::Name(n)) => {
                    if let Some(model) = self.model {
                        self.occur(a.value.span, Symbol::Label(model, n.clone()), false, vec![]);
                    }
                }
                (ArgRole::Option, ExprKind::Name(n)) if self.locals.contains(n) => {
                    self.occur(a.value.span, self.local(n), false, vec![]);
                }
                (ArgRole::Option, ExprKind::Name(n)) => {
                    if let ArgTarget::Op { op, config } = &target {
                        let specs = if *config { op.config() } else { op.inputs() };
                        let spec = match &a.name {
                            Some(name) => ops::arg_spec(specs, &name.name).map(|(s, _)| s),
                            None => crate::resolve::positional_spec(specs, positional - 1),
                        };
                        if let Some(s) = spec.filter(|s| matches!(s.kind, ArgKind::Sym(_))) {
                            let symbol = Symbol::OptionValue { op: *op, arg: s.name, value: n.clone() };
                            self.occur(a.value.span, symbol, false, vec![]);
                        }
                    }
                }
                _ => self.expr(&a.value),
            }
        }
    }
}
