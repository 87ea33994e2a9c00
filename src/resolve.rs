//! Name resolution: undefined, duplicate, used-before-defined and unused names, misplaced
//! statements, and cycles between blocks. Runs on the AST before shape checking.

use crate::ast::*;
use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::dim::BATCH;
use crate::load::LoadedSpec;
use crate::ops::{ArgKind, ArgSpec, Op, SELECT};
use crate::source::Span;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What an argument position of a call expects, as far as names are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgRole {
    /// An ordinary value: names resolve in the value scope.
    Value,
    /// A label stream name.
    Label,
    /// An option name such as `relu`, taken literally unless a symbol parameter of that name exists.
    Option,
}

/// How a callee's arguments are declared: a primitive's specs or a block's parameters.
pub enum Signature<'a> {
    Specs(&'static [ArgSpec]),
    Block(&'a [ParamDecl]),
    Ports(&'a [Port]),
    Unknown,
}

impl Signature<'_> {
    /// The role of the `index`-th argument (named `name`, if named).
    pub fn role(&self, index: usize, name: Option<&str>) -> ArgRole {
        let kind_role = |k: ArgKind| match k {
            ArgKind::Label => ArgRole::Label,
            ArgKind::Sym(_) => ArgRole::Option,
            _ => ArgRole::Value,
        };
        match self {
            Signature::Specs(specs) => {
                let spec = match name {
                    Some(n) => specs.iter().find(|s| s.name == n),
                    None => positional_spec(specs, index),
                };
                spec.map_or(ArgRole::Value, |s| kind_role(s.kind))
            }
            Signature::Block(params) => {
                let p = match name {
                    Some(n) => params.iter().find(|p| p.name.name == n),
                    None => params.get(index),
                };
                match p {
                    Some(p) if p.kind == ValueKind::Symbol => ArgRole::Option,
                    _ => ArgRole::Value,
                }
            }
            Signature::Ports(_) | Signature::Unknown => ArgRole::Value,
        }
    }
}

/// The spec a positional argument binds to; a variadic spec absorbs the rest.
pub fn positional_spec(specs: &'static [ArgSpec], index: usize) -> Option<&'static ArgSpec> {
    specs.iter().enumerate().find(|(i, s)| s.kind == ArgKind::Tensors || *i == index).map(|(_, s)| s)
}

/// Finds the signature of a call's callee, given which names are local values.
pub fn signature<'a>(
    callee: &Expr,
    is_local: &dyn Fn(&str) -> bool,
    blocks: &HashMap<&str, &'a BlockDef>,
) -> Signature<'a> {
    match &callee.kind {
        ExprKind::Name(n) if !is_local(n) => {
            if let Some(op) = Op::by_name(n) {
                return Signature::Specs(if op.is_constructor() { op.config() } else { op.inputs() });
            }
            match blocks.get(n.as_str()) {
                Some(b) => Signature::Block(&b.params),
                None => Signature::Unknown,
            }
        }
        ExprKind::Call(inner, _) => match &inner.kind {
            ExprKind::Name(n) if !is_local(n) => match Op::by_name(n) {
                Some(op) if op.is_constructor() => Signature::Specs(op.inputs()),
                _ => blocks.get(n.as_str()).map_or(Signature::Unknown, |b| Signature::Ports(&b.ports)),
            },
            _ => Signature::Unknown,
        },
        _ => Signature::Unknown,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dim,
    Param,
    Input,
    Seq,
    Side,
    Let,
    Output,
    Weight,
    Port,
    DimVar,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Dim => "dimension",
            Kind::Param => "parameter",
            Kind::Input => "input",
            Kind::Seq => "sequence",
            Kind::Side => "side feature",
            Kind::Let => "binding",
            Kind::Output => "output",
            Kind::Weight => "weight stream",
            Kind::Port => "block input",
            Kind::DimVar => "dimension variable",
        }
    }
}

struct Def {
    kind: Kind,
    span: Span,
    /// Index of the defining statement; later uses are fine, earlier ones are not.
    stmt: usize,
    used: bool,
    symbol: bool,
}

struct Scope<'a> {
    defs: BTreeMap<String, Def>,
    labels: BTreeMap<String, (Span, bool)>,
    losses: BTreeMap<String, Span>,
    blocks: &'a HashMap<&'a str, &'a BlockDef>,
    diags: Vec<Diagnostic>,
    in_block: bool,
}

/// Resolves every name of a program; returns diagnostics (errors and warnings).
pub fn resolve(program: &LoadedSpec) -> Vec<Diagnostic> {
    let mut diags = vec![];
    let mut blocks: HashMap<&str, &BlockDef> = HashMap::new();
    for b in program.blocks() {
        if let Some(prev) = blocks.get(b.name.name.as_str()) {
            diags.push(
                Diagnostic::error(Code::Duplicate, format!("block `{}` is defined twice", b.name.name))
                    .at(b.name.span, "second definition")
                    .with_label(prev.name.span, "first definition"),
            );
            continue;
        }
        if Op::by_name(&b.name.name).is_some() {
            diags.push(
                Diagnostic::error(
                    Code::Duplicate,
                    format!("block `{}` has the name of a built-in component", b.name.name),
                )
                .at(b.name.span, "choose another name"),
            );
        }
        blocks.insert(&b.name.name, b);
    }
    for b in program.blocks() {
        diags.extend(resolve_block(b, &blocks));
    }
    if let Some(model) = program.model() {
        diags.extend(resolve_model(model, &blocks));
    }
    diags.extend(block_cycles(program, &blocks));
    diags
}

fn resolve_model(model: &ModelDef, blocks: &HashMap<&str, &BlockDef>) -> Vec<Diagnostic> {
    let mut s = Scope::new(blocks, false);
    s.define_builtin_batch();
    for (i, stmt) in model.body.iter().enumerate() {
        s.declare(i, stmt);
    }
    for (i, stmt) in model.body.iter().enumerate() {
        s.visit(i, stmt);
    }
    let has_objective = model.body.iter().any(|st| matches!(st.kind, StmtKind::Loss { .. } | StmtKind::Output { .. }));
    if !has_objective {
        s.diags.push(
            Diagnostic::error(Code::NoObjective, format!("model `{}` has no `output` and no `loss`", model.name.name))
                .at(model.name.span, "nothing to compute")
                .with_help("add `output p = ...;` and `loss name = bce(p, label: ...);`"),
        );
    }
    s.finish()
}

fn resolve_block(block: &BlockDef, blocks: &HashMap<&str, &BlockDef>) -> Vec<Diagnostic> {
    let mut s = Scope::new(blocks, true);
    s.define_builtin_batch();
    for p in &block.params {
        s.define(&p.name, Kind::Param, 0, p.kind == ValueKind::Symbol);
        match &p.default {
            Some(Expr { kind: ExprKind::Name(_), .. }) if p.kind == ValueKind::Symbol => {}
            Some(d) => s.expr(d, 0),
            None => {}
        }
    }
    for port in &block.ports {
        s.define(&port.name, Kind::Port, 0, false);
    }
    // Free names in port types are dimension variables bound when the block is applied.
    for port in &block.ports {
        for d in &port.ty.dims {
            d.walk(&mut |e| {
                if let ExprKind::Name(n) = &e.kind {
                    if !s.defs.contains_key(n) {
                        s.defs.insert(
                            n.clone(),
                            Def { kind: Kind::DimVar, span: e.span, stmt: 0, used: false, symbol: false },
                        );
                    }
                }
            });
        }
    }
    for d in &block.ret.dims {
        s.expr(d, 0);
    }
    for (i, stmt) in block.body.iter().enumerate() {
        s.declare(i + 1, stmt);
    }
    let mut returns = 0;
    for (i, stmt) in block.body.iter().enumerate() {
        if let StmtKind::Return { .. } = stmt.kind {
            returns += 1;
            if i + 1 != block.body.len() {
                s.diags.push(
                    Diagnostic::error(Code::MisplacedStmt, "`return` must be the last statement of a block")
                        .at(stmt.span, "statements follow"),
                );
            }
        }
        s.visit(i + 1, stmt);
    }
    if returns == 0 {
        s.diags.push(
            Diagnostic::error(Code::ReturnMismatch, format!("block `{}` has no `return`", block.name.name))
                .at(block.name.span, format!("declared to return {}", block.ret.dtype.name()))
                .with_help("end the block with `return expr;`"),
        );
    }
    // Dimension variables are used by the types that declare them.
    for d in s.defs.values_mut() {
        if d.kind == Kind::DimVar {
            d.used = true;
        }
    }
    s.finish()
}

impl<'a> Scope<'a> {
    fn new(blocks: &'a HashMap<&'a str, &'a BlockDef>, in_block: bool) -> Scope<'a> {
        Scope {
            defs: BTreeMap::new(),
            labels: BTreeMap::new(),
            losses: BTreeMap::new(),
            blocks,
            diags: vec![],
            in_block,
        }
    }

    fn define_builtin_batch(&mut self) {
        self.defs.insert(
            BATCH.to_string(),
            Def { kind: Kind::Dim, span: Span::default(), stmt: 0, used: true, symbol: false },
        );
    }

    fn define(&mut self, name: &Ident, kind: Kind, stmt: usize, symbol: bool) {
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
                    format!("`{}` is already defined as a {}", name.name, prev.kind.describe()),
                )
                .at(name.span, "defined again here")
                .with_label(prev.span, "first defined here"),
            );
            return;
        }
        let used = kind == Kind::Output;
        self.defs.insert(name.name.clone(), Def { kind, span: name.span, stmt, used, symbol });
    }

    /// First pass over a body: record every definition with its statement index.
    fn declare(&mut self, i: usize, stmt: &Stmt) {
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
            StmtKind::Dim { name, .. } => self.define(name, Kind::Dim, i, false),
            StmtKind::Param { name, kind, .. } => self.define(name, Kind::Param, i, *kind == ValueKind::Symbol),
            StmtKind::Input { name, .. } => self.define(name, Kind::Input, i, false),
            StmtKind::Seq { name, .. } => self.define(name, Kind::Seq, i, false),
            StmtKind::Side { seq, name, .. } => {
                let full = Ident { name: format!("{}.{}", seq.name, name.name), span: seq.span.to(name.span) };
                self.define(&full, Kind::Side, i, false);
            }
            StmtKind::Label { names } => {
                for n in names {
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
            StmtKind::Weight { name } => self.define(name, Kind::Weight, i, false),
            StmtKind::Let { name, .. } => self.define(name, Kind::Let, i, false),
            StmtKind::Output { name, .. } => self.define(name, Kind::Output, i, false),
            StmtKind::Loss { name, .. } => {
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
    fn visit(&mut self, i: usize, stmt: &Stmt) {
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
                match self.defs.get_mut(&seq.name) {
                    Some(d) if d.kind == Kind::Seq => {}
                    Some(d) => {
                        let kind = d.kind.describe();
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

    fn ty(&mut self, ty: &TensorTypeExpr, i: usize) {
        for d in &ty.dims {
            self.expr(d, i);
        }
    }

    fn expr(&mut self, e: &Expr, i: usize) {
        match &e.kind {
            ExprKind::Name(n) => self.use_name(n, e.span, i),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Str(_) => {}
            ExprKind::List(items) => items.iter().for_each(|x| self.expr(x, i)),
            ExprKind::Neg(x) => self.expr(x, i),
            ExprKind::Binary(_, a, b) => {
                self.expr(a, i);
                self.expr(b, i);
            }
            ExprKind::Field(base, field) => {
                if let ExprKind::Name(n) = &base.kind {
                    let full = format!("{n}.{}", field.name);
                    if let Some(d) = self.defs.get_mut(&full) {
                        d.used = true;
                    }
                }
                self.expr(base, i);
            }
            ExprKind::Call(callee, args) => {
                self.callee(callee, i);
                let defs = &self.defs;
                let sig = signature(callee, &|n| defs.contains_key(n), self.blocks);
                let mut positional = 0;
                let roles: Vec<ArgRole> = args
                    .iter()
                    .map(|a| {
                        let role = sig.role(positional, a.name.as_ref().map(|n| n.name.as_str()));
                        if a.name.is_none() {
                            positional += 1;
                        }
                        role
                    })
                    .collect();
                for (a, role) in args.iter().zip(roles) {
                    match (role, &a.value.kind) {
                        (ArgRole::Label, ExprKind::Name(n)) => self.use_label(n, a.value.span),
                        (ArgRole::Option, ExprKind::Name(n)) => {
                            if let Some(d) = self.defs.get_mut(n) {
                                if d.symbol {
                                    d.used = true;
                                }
                            }
                        }
                        _ => self.expr(&a.value, i),
                    }
                }
            }
        }
    }

    fn callee(&mut self, callee: &Expr, i: usize) {
        match &callee.kind {
            ExprKind::Name(n) if !self.defs.contains_key(n) => {
                if Op::by_name(n).is_none() && !self.blocks.contains_key(n.as_str()) && n != SELECT {
                    let candidates: Vec<String> = Op::callable_names()
                        .map(str::to_string)
                        .chain(self.blocks.keys().map(|k| k.to_string()))
                        .collect();
                    let mut d = Diagnostic::error(Code::Undefined, format!("unknown component or block `{n}`"))
                        .at(callee.span, "not defined");
                    if let Some(h) = did_you_mean(n, candidates.iter().map(String::as_str)) {
                        d = d.with_help(h);
                    }
                    self.diags.push(d);
                }
            }
            _ => self.expr(callee, i),
        }
    }

    fn use_name(&mut self, n: &str, span: Span, i: usize) {
        match self.defs.get_mut(n) {
            Some(d)
                if n != BATCH && d.stmt > i
                    || (n != BATCH
                        && d.stmt == i
                        && d.kind != Kind::Port
                        && d.kind != Kind::DimVar
                        && d.kind != Kind::Param) =>
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
                        .with_label(def_span, format!("{} defined here", kind.describe()))
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

    fn undefined(&mut self, n: &str, span: Span, i: usize) {
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

    fn use_label(&mut self, n: &str, span: Span) {
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

    fn finish(mut self) -> Vec<Diagnostic> {
        for (name, d) in &self.defs {
            if !d.used && !name.starts_with('_') {
                let what = d.kind.describe();
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

/// Blocks that instantiate themselves, directly or through other blocks.
fn block_cycles(program: &LoadedSpec, blocks: &HashMap<&str, &BlockDef>) -> Vec<Diagnostic> {
    let mut edges: HashMap<&str, Vec<(&str, Span)>> = HashMap::new();
    for b in program.blocks() {
        let mut out = vec![];
        for st in &b.body {
            let e = match &st.kind {
                StmtKind::Let { value, .. } | StmtKind::Return { value } => value,
                _ => continue,
            };
            e.walk(&mut |x| {
                if let ExprKind::Call(callee, _) = &x.kind {
                    if let ExprKind::Name(n) = &callee.kind {
                        if let Some((k, _)) = blocks.get_key_value(n.as_str()) {
                            out.push((*k, callee.span));
                        }
                    }
                }
            });
        }
        edges.insert(&b.name.name, out);
    }
    let mut diags = vec![];
    let mut reported = HashSet::new();
    let mut names: Vec<&str> = edges.keys().copied().collect();
    names.sort();
    for start in names {
        // Depth-first search for a path from `start` back to itself.
        let mut stack = vec![(start, vec![start])];
        let mut seen = HashSet::new();
        while let Some((node, path)) = stack.pop() {
            for (next, span) in edges.get(node).into_iter().flatten() {
                if *next == start {
                    let mut cycle = path.clone();
                    cycle.sort();
                    if reported.insert(cycle) {
                        let mut chain = path.clone();
                        chain.push(start);
                        diags.push(
                            Diagnostic::error(
                                Code::BlockCycle,
                                format!("block `{start}` instantiates itself: {}", chain.join(" -> ")),
                            )
                            .at(*span, "this call closes the cycle"),
                        );
                    }
                } else if seen.insert(*next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
    diags
}
