//! Name resolution: undefined, duplicate, used-before-defined and unused names, misplaced
//! statements, and cycles between blocks. Runs on the AST before shape checking, and records
//! every definition and use it resolves in the resolution table ([`index::Index`]) that the
//! checker keeps and the editor features read: one walk, one set of rules.

pub mod index;
mod scope;
mod signature;

pub use signature::{positional_spec, signature, ArgRole, Signature};

use crate::ast::*;
use crate::diag::{Code, Diagnostic};
use crate::load::LoadedSpec;
use crate::ops::Op;
use crate::source::Span;
use index::{DefKind, Index, ScopeId, ScopeInfo, Symbol};
use scope::Scope;
use std::collections::{HashMap, HashSet};

struct Def {
    kind: DefKind,
    span: Span,
    /// Index of the defining statement; later uses are fine, earlier ones are not.
    stmt: usize,
    used: bool,
    symbol: bool,
}

/// What resolution found: the diagnostics (errors and warnings) and the resolution table.
pub struct Resolution {
    pub diagnostics: Vec<Diagnostic>,
    pub names: Index,
}

/// Resolves every name of a program: every block of every loaded file, the root's model (and,
/// for the table only, any other file's model), and each file's imports.
pub fn resolve(program: &LoadedSpec) -> Resolution {
    let mut diags = vec![];
    let mut names = Index::default();
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
    let root_model = program.model();
    for (id, file) in &program.files {
        for import in &file.imports {
            if let Some(target) = index::import_target(program, *id, import) {
                names.occur(import.span, Symbol::File(target), false, vec![]);
            }
        }
        for b in &file.blocks {
            diags.extend(resolve_block(program, b, &blocks, &mut names));
        }
        for m in &file.models {
            let found = resolve_model(program, m, &blocks, &mut names);
            if root_model.is_some_and(|r| std::ptr::eq(r, m)) {
                diags.extend(found);
            }
        }
    }
    diags.extend(block_cycles(program, &blocks));
    Resolution { diagnostics: diags, names }
}

fn resolve_model(
    program: &LoadedSpec,
    model: &ModelDef,
    blocks: &HashMap<&str, &BlockDef>,
    names: &mut Index,
) -> Vec<Diagnostic> {
    let id = ScopeId(model.span);
    names.scopes.push(ScopeInfo { id, name: model.name.name.clone(), is_block: false });
    let mut s = Scope::new(program, blocks, names, id, false);
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

fn resolve_block(
    program: &LoadedSpec,
    block: &BlockDef,
    blocks: &HashMap<&str, &BlockDef>,
    names: &mut Index,
) -> Vec<Diagnostic> {
    let id = ScopeId(block.span);
    let header = Span { end: block.ret.span.end, ..block.span };
    let mut s = Scope::new(program, blocks, names, id, true);
    if blocks.get(block.name.name.as_str()).is_some_and(|first| std::ptr::eq(*first, block)) {
        let detail = s.text(header);
        s.names.define(block.name.span, Symbol::Block(block.name.name.clone()), DefKind::Block, detail);
    }
    s.names.scopes.push(ScopeInfo { id, name: block.name.name.clone(), is_block: true });
    s.define_builtin_batch();
    for p in &block.params {
        let default = p.default.as_ref().map_or(String::new(), |d| format!(" = {}", s.text(d.span)));
        let detail = format!("{}: {}{default}", p.name.name, p.kind.name());
        s.define(&p.name, DefKind::BlockParam, 0, p.kind == ValueKind::Symbol, detail);
        match &p.default {
            Some(Expr { kind: ExprKind::Name(_), .. }) if p.kind == ValueKind::Symbol => {}
            Some(d) => s.expr(d, 0),
            None => {}
        }
    }
    for port in &block.ports {
        let detail = format!("{}: {}", port.name.name, s.text(port.ty.span));
        s.define(&port.name, DefKind::Port, 0, false, detail);
    }
    // Free names in port types are dimension variables bound when the block is applied, defined
    // where first written.
    for port in &block.ports {
        for d in &port.ty.dims {
            d.walk(&mut |e| {
                if let ExprKind::Name(n) = &e.kind {
                    if !s.defs.contains_key(n) {
                        let detail = format!("{n}, bound by each application of `{}`", block.name.name);
                        let ident = Ident { name: n.clone(), span: e.span };
                        s.define(&ident, DefKind::DimVar, 0, false, detail);
                    } else {
                        s.record(n, e.span, vec![]);
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
        if d.kind == DefKind::DimVar {
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
