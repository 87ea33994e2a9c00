//! One scope of the resolver (a model or a block body): definitions, uses and the checks on
//! them, and the resolution table's entries for every name it resolves.

use super::index::{DefKind, Index, ScopeId, Symbol};
use super::signature::{signature, ArgRole};
use super::Def;
use crate::ast::*;
use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::dim::BATCH;
use crate::load::LoadedSpec;
use crate::ops::{self, ArgKind, Op, LAYERS, SELECT};
use crate::source::Span;
use std::collections::{BTreeMap, HashMap};

pub(super) struct Scope<'a, 'r> {
    pub(super) defs: BTreeMap<String, Def>,
    pub(super) labels: BTreeMap<String, (Span, bool)>,
    pub(super) losses: BTreeMap<String, Span>,
    pub(super) blocks: &'a HashMap<&'a str, &'a BlockDef>,
    pub(super) diags: Vec<Diagnostic>,
    pub(super) in_block: bool,
    spec: &'a LoadedSpec,
    /// The resolution table every definition and use is recorded in.
    pub(super) names: &'r mut Index,
    /// This body's id in the table.
    pub(super) id: ScopeId,
}

/// What a call's named arguments bind to.
enum ArgTarget<'a> {
    Op {
        op: Op,
        config: bool,
    },
    Block {
        scope: ScopeId,
        names: Vec<&'a str>,
    },
    /// `select` and `layers`: their argument names are not symbols.
    Builtin,
    None,
}

impl<'a, 'r> Scope<'a, 'r> {
    pub(super) fn new(
        spec: &'a LoadedSpec,
        blocks: &'a HashMap<&'a str, &'a BlockDef>,
        names: &'r mut Index,
        id: ScopeId,
        in_block: bool,
    ) -> Scope<'a, 'r> {
        Scope {
            defs: BTreeMap::new(),
            labels: BTreeMap::new(),
            losses: BTreeMap::new(),
            blocks,
            diags: vec![],
            in_block,
            spec,
            names,
            id,
        }
    }

    /// The first line of a span's text, trimmed: a definition's detail.
    pub(super) fn text(&self, span: Span) -> String {
        let text = &self.spec.sources.get(span.file).text;
        let s = text.get(span.start as usize..span.end as usize).unwrap_or("");
        s.lines().next().unwrap_or("").trim().to_string()
    }

    fn local(&self, name: &str) -> Symbol {
        Symbol::Local(self.id, name.to_string())
    }

    /// The table's symbol for a name in value position: this body's definition, the batch, a
    /// block or an op.
    fn symbol_of(&self, n: &str) -> Option<Symbol> {
        if n == BATCH {
            Some(Symbol::Batch)
        } else if self.defs.contains_key(n) {
            Some(self.local(n))
        } else if self.blocks.contains_key(n) {
            Some(Symbol::Block(n.to_string()))
        } else {
            Op::by_name(n).map(Symbol::Op)
        }
    }

    /// Records a use of `n` at `span`, if it names anything.
    pub(super) fn record(&mut self, n: &str, span: Span, related: Vec<Span>) {
        if let Some(symbol) = self.symbol_of(n) {
            self.names.occur(span, symbol, false, related);
        }
    }

    pub(super) fn define_builtin_batch(&mut self) {
        self.defs.insert(
            BATCH.to_string(),
            Def { kind: DefKind::Dim, span: Span::default(), stmt: 0, used: true, symbol: false },
        );
    }

    /// Defines `name` in this body and records it in the table with `detail`.
    pub(super) fn define(&mut self, name: &Ident, kind: DefKind, stmt: usize, symbol: bool, detail: String) {
        self.names.define(name.span, self.local(&name.name), kind, detail);
        self.define_quietly(name, kind, stmt, symbol);
    }

    /// Defines `name` in this body without a table entry (the caller records it).
    pub(super) fn define_quietly(&mut self, name: &Ident, kind: DefKind, stmt: usize, symbol: bool) {
        if name.name == BATCH {
            self.diags.push(
                Diagnostic::error(Code::Duplicate, "`B` is the built-in batch dimension")
                    .at(name.span, "choose another name"),
            );
            return;
        }
        if let Some(prev) = self.defs.get(&name.name) {
            self.diags.push(
                Diagnostic::error(
                    Code::Duplicate,
                    format!("`{}` is already defined as a {}", name.name, prev.kind.noun()),
                )
                .at(name.span, "defined again here")
                .with_label(prev.span, "first defined here"),
            );
            return;
        }
        let used = kind == DefKind::Output;
        self.defs.insert(name.name.clone(), Def { kind, span: name.span, stmt, used, symbol });
    }

    /// First pass over a body: record every definition with its statement index.
    pub(super) fn declare(&mut self, i: usize, stmt: &Stmt) {
        let detail = self.text(stmt.span);
        let misplaced = |what: &str| {
            Diagnostic::error(Code::MisplacedStmt, format!("`{what}` statements belong in a model, not a block"))
        };
        match &stmt.kind {
            StmtKind::Dim { name, .. } | StmtKind::Param { name, .. } if self.in_block => {
                self.diags.push(
                    misplaced(stmt.keyword()).at(stmt.span, "move it to the model").with_help(format!(
                        "blocks take configuration as parameters: `block X({}: int)(...)`",
                        name.name
                    )),
                );
            }
            StmtKind::Input { .. }
            | StmtKind::Seq { .. }
            | StmtKind::Side { .. }
            | StmtKind::Label { .. }
            | StmtKind::Weight { .. }
            | StmtKind::Output { .. }
            | StmtKind::Loss { .. }
                if self.in_block =>
            {
                self.diags.push(
                    misplaced(stmt.keyword())
                        .at(stmt.span, "not allowed in a block")
                        .with_help("blocks receive tensors through their inputs and return one tensor"),
                );
            }
            StmtKind::Return { .. } if !self.in_block => {
                self.diags.push(
                    Diagnostic::error(Code::MisplacedStmt, "`return` belongs in a block")
                        .at(stmt.span, "models use `output` and `loss`"),
                );
            }
            StmtKind::Dim { name, .. } => self.define(name, DefKind::Dim, i, false, detail),
            StmtKind::Param { name, kind, .. } => {
                self.define(name, DefKind::Param, i, *kind == ValueKind::Symbol, detail)
            }
            StmtKind::Input { name, .. } => self.define(name, DefKind::Input, i, false, detail),
            StmtKind::Seq { name, .. } => self.define(name, DefKind::Seq, i, false, detail),
            StmtKind::Side { seq, name, .. } => {
                let full = Ident { name: format!("{}.{}", seq.name, name.name), span: seq.span.to(name.span) };
                // The table names the side feature at its own name (`dwell` in `side clicks.dwell`).
                let symbol = self.local(&full.name);
                self.names.define(name.span, symbol, DefKind::Side, detail);
                self.define_quietly(&full, DefKind::Side, i, false);
            }
            StmtKind::Label { names } => {
                for n in names {
                    self.names.define(n.span, Symbol::Label(self.id, n.name.clone()), DefKind::Label, detail.clone());
                    if let Some((prev, _)) = self.labels.get(&n.name) {
                        self.diags.push(
                            Diagnostic::error(Code::Duplicate, format!("label stream `{}` is declared twice", n.name))
                                .at(n.span, "declared again")
                                .with_label(*prev, "first declared here"),
                        );
                    } else {
                        self.labels.insert(n.name.clone(), (n.span, false));
                    }
                }
            }
            StmtKind::Weight { name } => self.define(name, DefKind::Weight, i, false, detail),
            StmtKind::Let { name, .. } => self.define(name, DefKind::Let, i, false, detail),
            StmtKind::Output { name, .. } => self.define(name, DefKind::Output, i, false, detail),
            StmtKind::Loss { name, .. } => {
                self.names.define(name.span, Symbol::Loss(self.id, name.name.clone()), DefKind::Loss, detail);
                // Losses have their own namespace: nothing refers to them, and `loss triplet =
                // triplet(...)` must not shadow the loss function.
                if let Some(prev) = self.losses.insert(name.name.clone(), name.span) {
                    self.diags.push(
                        Diagnostic::error(Code::Duplicate, format!("loss `{}` is defined twice", name.name))
                            .at(name.span, "defined again here")
                            .with_label(prev, "first defined here"),
                    );
                }
            }
            StmtKind::Return { .. } => {}
        }
    }

    /// Second pass: resolve every use.
    pub(super) fn visit(&mut self, i: usize, stmt: &Stmt) {
        match &stmt.kind {
            StmtKind::Dim { value, .. } | StmtKind::Param { value, .. } if self.in_block => self.expr(value, i),
            StmtKind::Dim { value, .. } => self.expr(value, i),
            StmtKind::Param { kind, value, .. } => {
                if *kind != ValueKind::Symbol {
                    self.expr(value, i);
                }
            }
            StmtKind::Input { ty, vocab, .. } | StmtKind::Seq { ty, vocab, .. } => {
                self.ty(ty, i);
                if let Some(v) = vocab {
                    self.expr(v, i);
                }
            }
            StmtKind::Side { seq, ty, .. } => {
                if self.defs.contains_key(&seq.name) {
                    self.names.occur(seq.span, self.local(&seq.name), false, vec![]);
                }
                match self.defs.get_mut(&seq.name) {
                    Some(d) if d.kind == DefKind::Seq => {}
                    Some(d) => {
                        let kind = d.kind.noun();
                        self.diags.push(
                            Diagnostic::error(Code::BadSide, format!("`{}` is a {kind}, not a sequence", seq.name))
                                .at(seq.span, "side features attach to `seq` inputs"),
                        );
                    }
                    None => self.undefined(&seq.name, seq.span, i),
                }
                self.ty(ty, i);
            }
            StmtKind::Label { .. } | StmtKind::Weight { .. } => {}
            StmtKind::Let { value, .. }
            | StmtKind::Output { value, .. }
            | StmtKind::Loss { value, .. }
            | StmtKind::Return { value } => self.expr(value, i),
        }
    }

    pub(super) fn ty(&mut self, ty: &TensorTypeExpr, i: usize) {
        for d in &ty.dims {
            self.expr(d, i);
        }
    }

    pub(super) fn expr(&mut self, e: &Expr, i: usize) {
        match &e.kind {
            ExprKind::Name(n) => self.use_name(n, e.span, i, vec![]),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Str(_) => {}
            ExprKind::List(items) => items.iter().for_each(|x| self.expr(x, i)),
            ExprKind::Neg(x) => self.expr(x, i),
            ExprKind::Binary(_, a, b) => {
                self.expr(a, i);
                self.expr(b, i);
            }
            ExprKind::Field(base, field) => {
                self.expr(base, i);
                if let ExprKind::Name(n) = &base.kind {
                    let full = format!("{n}.{}", field.name);
                    if let Some(d) = self.defs.get_mut(&full) {
                        d.used = true;
                        self.names.occur(field.span, self.local(&full), false, vec![]);
                    }
                }
            }
            ExprKind::Call(callee, args) => self.call(e.span, callee, args, &[], i),
        }
    }

    /// A call at `span`; `outer` are the applications this call's result is the callee of (a
    /// hover on the callee shows them too).
    fn call(&mut self, span: Span, callee: &Expr, args: &[Arg], outer: &[Span], i: usize) {
        let mut related = vec![span];
        related.extend_from_slice(outer);
        let target = match &callee.kind {
            ExprKind::Name(n) if !self.defs.contains_key(n) => {
                self.unknown_callee(n, callee.span);
                self.record(n, callee.span, related);
                match (Op::by_name(n), self.blocks.get(n.as_str())) {
                    _ if n == SELECT || n == LAYERS => ArgTarget::Builtin,
                    (Some(op), _) => ArgTarget::Op { op, config: op.is_constructor() },
                    (None, Some(b)) => ArgTarget::Block {
                        scope: ScopeId(b.span),
                        names: b.params.iter().map(|p| p.name.name.as_str()).collect(),
                    },
                    _ => ArgTarget::None,
                }
            }
            ExprKind::Call(inner, inner_args) => {
                self.call(callee.span, inner, inner_args, &related, i);
                match &inner.kind {
                    ExprKind::Name(n) if !self.defs.contains_key(n) => {
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
            // A bound instance (`items(item)`).
            ExprKind::Name(n) => {
                self.use_name(n, callee.span, i, related);
                ArgTarget::None
            }
            _ => {
                self.expr(callee, i);
                ArgTarget::None
            }
        };
        let defs = &self.defs;
        let sig = signature(callee, &|n| defs.contains_key(n), self.blocks);
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
                    ArgTarget::Builtin | ArgTarget::None => None,
                };
                if let Some(symbol) = symbol {
                    self.names.occur(n.span, symbol, false, vec![a.value.span]);
                }
            }
            match (role, &a.value.kind) {
                (ArgRole::Label, ExprKind::Name(n)) => self.use_label(n, a.value.span),
                (ArgRole::Option, ExprKind::Name(n)) => {
                    if let Some(d) = self.defs.get_mut(n) {
                        if d.symbol {
                            d.used = true;
                        }
                        self.names.occur(a.value.span, self.local(n), false, vec![]);
                    } else if let ArgTarget::Op { op, config } = &target {
                        let specs = if *config { op.config() } else { op.inputs() };
                        let spec = match &a.name {
                            Some(name) => ops::arg_spec(specs, &name.name).map(|(s, _)| s),
                            None => super::positional_spec(specs, positional - 1),
                        };
                        if let Some(s) = spec.filter(|s| matches!(s.kind, ArgKind::Sym(_))) {
                            let symbol = Symbol::OptionValue { op: *op, arg: s.name, value: n.clone() };
                            self.names.occur(a.value.span, symbol, false, vec![]);
                        }
                    }
                }
                _ => self.expr(&a.value, i),
            }
        }
    }

    /// A callee that is neither defined here nor a component, block or built-in.
    fn unknown_callee(&mut self, n: &str, span: Span) {
        if Op::by_name(n).is_none() && !self.blocks.contains_key(n) && n != SELECT && n != LAYERS {
            let candidates: Vec<String> =
                Op::callable_names().map(str::to_string).chain(self.blocks.keys().map(|k| k.to_string())).collect();
            let mut d =
                Diagnostic::error(Code::Undefined, format!("unknown component or block `{n}`")).at(span, "not defined");
            if let Some(h) = did_you_mean(n, candidates.iter().map(String::as_str)) {
                d = d.with_help(h);
            }
            self.diags.push(d);
        }
    }

    /// A use of `n` in value position: recorded in the table, checked against its definition.
    pub(super) fn use_name(&mut self, n: &str, span: Span, i: usize, related: Vec<Span>) {
        self.record(n, span, related);
        match self.defs.get_mut(n) {
            Some(d)
                if n != BATCH && d.stmt > i
                    || (n != BATCH
                        && d.stmt == i
                        && d.kind != DefKind::Port
                        && d.kind != DefKind::DimVar
                        && d.kind != DefKind::Param
                        && d.kind != DefKind::BlockParam) =>
            {
                let (kind, def_span) = (d.kind, d.span);
                d.used = true;
                let msg = if d.stmt == i {
                    format!("`{n}` is used in its own definition")
                } else {
                    format!("`{n}` is used before its definition")
                };
                self.diags.push(
                    Diagnostic::error(Code::UseBeforeDef, msg)
                        .at(span, "used here")
                        .with_label(def_span, format!("{} defined here", kind.noun()))
                        .with_help("bindings are evaluated in order; move the definition up"),
                );
            }
            Some(d) => d.used = true,
            None => {
                if Op::by_name(n).is_some() || self.blocks.contains_key(n) {
                    return;
                }
                self.undefined(n, span, i);
            }
        }
    }

    pub(super) fn undefined(&mut self, n: &str, span: Span, i: usize) {
        let visible: Vec<&str> = self.defs.iter().filter(|(_, d)| d.stmt <= i).map(|(k, _)| k.as_str()).collect();
        let mut d =
            Diagnostic::error(Code::Undefined, format!("`{n}` is not defined")).at(span, "not found in this scope");
        if let Some(h) = did_you_mean(n, visible) {
            d = d.with_help(h);
        } else if self.labels.contains_key(n) {
            d = d.with_help(format!("`{n}` is a label stream; labels are only used by losses (`label: {n}`)"));
        }
        self.diags.push(d);
    }

    pub(super) fn use_label(&mut self, n: &str, span: Span) {
        if !self.in_block {
            self.names.occur(span, Symbol::Label(self.id, n.to_string()), false, vec![]);
        }
        match self.labels.get_mut(n) {
            Some(l) => l.1 = true,
            None => {
                let mut d = Diagnostic::error(Code::UnknownLabel, format!("`{n}` is not a declared label stream"))
                    .at(span, "unknown label");
                let names: Vec<&str> = self.labels.keys().map(String::as_str).collect();
                d = match did_you_mean(n, names.iter().copied()) {
                    Some(h) => d.with_help(h),
                    None if names.is_empty() => d.with_help(format!("declare it: `label {n};`")),
                    None => d.with_help(format!("declared labels: {}", names.join(", "))),
                };
                self.diags.push(d);
            }
        }
    }

    pub(super) fn finish(mut self) -> Vec<Diagnostic> {
        for (name, d) in &self.defs {
            if !d.used && !name.starts_with('_') {
                let what = d.kind.noun();
                self.diags.push(
                    Diagnostic::warning(Code::Unused, format!("{what} `{name}` is never used"))
                        .at(d.span, "unused")
                        .with_help("remove it, or prefix the name with `_` to silence this warning"),
                );
            }
        }
        for (name, (span, used)) in &self.labels {
            if !used {
                self.diags.push(
                    Diagnostic::warning(Code::Unused, format!("label stream `{name}` is not used by any loss"))
                        .at(*span, "unused"),
                );
            }
        }
        self.diags
    }
}
