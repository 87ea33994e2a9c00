//! Call signatures as the resolver sees them: which argument positions hold label names or
//! option names rather than values.

use crate::ast::*;
use crate::ops::{ArgKind, ArgSpec, Op};
use std::collections::HashMap;

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
                // An unknown name takes the role of the argument it most likely means, so a typo
                // is one error (the checker's), not also an undefined name in its value.
                let spec = match name {
                    Some(n) => crate::ops::arg_spec(specs, n).map(|(s, _)| s).or_else(|| {
                        let close = crate::diag::suggest(n, specs.iter().map(|s| s.name))?;
                        specs.iter().find(|s| s.name == close)
                    }),
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
