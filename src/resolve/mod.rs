//! Name resolution: undefined, duplicate, used-before-defined and unused names, misplaced
//! statements, and cycles between blocks. Runs on the AST before shape checking.

mod scope;
mod signature;

pub use signature::{positional_spec, signature, ArgRole, Signature};

use crate::ast::*;
use crate::diag::{Code, Diagnostic};
use crate::load::LoadedSpec;
use crate::ops::Op;
use crate::source::Span;
use scope::Scope;
use std::collections::{HashMap, HashSet};

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
