//! Blocks: configuration against declared parameters, and inlining at each application with
//! dimension variables bound by matching the inputs' types.

use super::hover::HoverInfo;
use super::value::{Callee, Instance, Tensor, Value};
use super::{Checker, Scope};
use crate::ast::{self, Arg, ExprKind, ValueKind};
use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::dim::Dim;
use crate::source::Span;
use std::collections::BTreeMap;

impl Checker<'_> {
    pub(super) fn configure_block(&mut self, scope: &Scope, name: &str, args: &[Arg], span: Span) -> Value {
        let Some(block) = self.blocks.get(name).copied() else {
            return Value::Poison;
        };
        let mut values = BTreeMap::new();
        let mut ok = true;
        for (arg, param) in match_args(args, &block.params, |p| &p.name.name) {
            let Some(param) = param else {
                ok = false;
                let span = arg.name.as_ref().map_or(arg.value.span, |n| n.span);
                let label =
                    arg.name.as_ref().map_or("extra argument".to_string(), |n| format!("no parameter `{}`", n.name));
                let mut d = Diagnostic::error(Code::UnknownArgument, format!("block `{name}` has no such parameter"))
                    .at(span, label);
                let names: Vec<&str> = block.params.iter().map(|p| p.name.name.as_str()).collect();
                if let Some(h) = arg.name.as_ref().and_then(|n| did_you_mean(&n.name, names.iter().copied())) {
                    d = d.with_help(h);
                } else {
                    d = d.with_help(format!("parameters of `{name}`: {}", names.join(", ")));
                }
                self.diags.push(d);
                continue;
            };
            if values.contains_key(&param.name.name) {
                ok = false;
                self.diags.push(
                    Diagnostic::error(
                        Code::DuplicateArgument,
                        format!("parameter `{}` is given twice", param.name.name),
                    )
                    .at(arg.value.span, "given again"),
                );
                continue;
            }
            let v = match (&param.kind, &arg.value.kind) {
                (ValueKind::Symbol, ExprKind::Name(n)) => match scope.get(n) {
                    Some(Value::Sym(s)) => Value::Sym(s.clone()),
                    _ => Value::Sym(n.clone()),
                },
                _ => self.eval(scope, &arg.value),
            };
            match self.fit_param(param, v, arg.value.span) {
                Some(v) => {
                    values.insert(param.name.name.clone(), v);
                }
                None => ok = false,
            }
        }
        for p in &block.params {
            if values.contains_key(&p.name.name) {
                continue;
            }
            match &p.default {
                Some(d) => {
                    let v = match (&p.kind, &d.kind) {
                        (ValueKind::Symbol, ExprKind::Name(n)) => Value::Sym(n.clone()),
                        _ => self.eval(&Scope::new(), d),
                    };
                    if let Some(v) = self.fit_param(p, v, d.span) {
                        values.insert(p.name.name.clone(), v);
                    }
                }
                None => {
                    ok = false;
                    self.diags.push(
                        Diagnostic::error(
                            Code::MissingArgument,
                            format!("block `{name}` needs parameter `{}`", p.name.name),
                        )
                        .at(span, format!("missing `{}`", p.name.name))
                        .with_label(p.name.span, "declared here without a default"),
                    );
                }
            }
        }
        if !ok {
            return Value::Poison;
        }
        Value::Instance(Box::new(Instance {
            callee: Callee::Block(name.to_string()),
            name: None,
            attrs: BTreeMap::new(),
            block_args: values,
        }))
    }

    fn fit_param(&mut self, p: &ast::ParamDecl, v: Value, span: Span) -> Option<Value> {
        let fits = match (p.kind, &v) {
            (_, Value::Poison) => return None,
            (ValueKind::Int, Value::Int(_))
            | (ValueKind::Float, Value::Float(_))
            | (ValueKind::Bool, Value::Bool(_))
            | (ValueKind::Symbol, Value::Sym(_))
            | (ValueKind::List, Value::List(_)) => true,
            (ValueKind::Float, Value::Int(d)) if d.as_constant().is_some() => {
                return Some(Value::Float(d.as_constant().unwrap_or(0) as f64))
            }
            _ => false,
        };
        if fits {
            return Some(v);
        }
        let msg = format!("parameter `{}` is {} but got {}", p.name.name, p.kind.name(), v.describe());
        self.error(
            Diagnostic::error(Code::KindMismatch, msg)
                .at(span, format!("expected {}", p.kind.name()))
                .with_label(p.name.span, "declared here"),
        );
        None
    }

    /// The weight owner of an unnamed instance applied by node `node`: the node's name relative to
    /// the enclosing block application, under that application's owner. Inside a block, the node
    /// of the `return` value carries the application's own name, which differs between
    /// applications; its instance is called `return` so that every application of one shared
    /// block instance finds the same weights.
    pub(super) fn anonymous_owner(&self, node: &str) -> String {
        let relative = match node.strip_prefix(&self.ctx.node_prefix) {
            Some(r) => r,
            None if !self.ctx.inst_prefix.is_empty() => "return",
            None => node,
        };
        format!("{}{}", self.ctx.inst_prefix, relative)
    }

    /// Inlines block `name` configured as `inst` (written at `inst_span`), applied at `span`.
    pub(super) fn apply_block(
        &mut self,
        scope: &Scope,
        (span, inst_span): (Span, Span),
        name: &str,
        inst: Instance,
        args: &[Arg],
    ) -> Value {
        let Some(block) = self.blocks.get(name).copied() else {
            return Value::Poison;
        };
        if self.block_stack.iter().any(|b| b == name) {
            // The resolver reported the cycle.
            return Value::Poison;
        }
        let Some(inputs) = self.block_inputs(scope, span, name, block, args) else {
            return Value::Poison;
        };
        let mut ok = true;
        // The block's own scope: parameters, then dimension variables bound by matching ports.
        let mut inner = Scope::new();
        inner.insert(crate::dim::BATCH.to_string(), Value::Int(Dim::batch()));
        for (k, v) in &inst.block_args {
            inner.insert(k.clone(), v.clone());
        }
        for port in &block.ports {
            let (t, arg_span) = inputs[&port.name.name].clone();
            if !self.match_port(&mut inner, name, port, &t, arg_span) {
                ok = false;
            }
        }
        if !ok {
            return Value::Poison;
        }
        for port in &block.ports {
            let (t, _) = inputs[&port.name.name].clone();
            inner.insert(port.name.name.clone(), Value::Tensor(t));
        }
        let app_name = self.node_name(span, name);
        self.node_names.remove(&app_name);
        let owner = inst.name.clone().unwrap_or_else(|| self.anonymous_owner(&app_name));
        let info = HoverInfo::Instance { callee: name.to_string(), owner: Some(owner.clone()) };
        self.hover.push(inst_span, info, &self.ctx.node_prefix);
        let saved = self.ctx.clone();
        self.ctx.node_prefix = format!("{app_name}/");
        self.ctx.inst_prefix = format!("{owner}/");
        for p in &block.params {
            if let Some(v) = inner.get(&p.name.name) {
                let v = v.clone();
                self.record(p.name.span, &v);
            }
        }
        for port in &block.ports {
            let (t, _) = &inputs[&port.name.name];
            self.hover.push(port.name.span, HoverInfo::Tensor(t.ty.clone()), &self.ctx.node_prefix);
            for d in &port.ty.dims {
                if let ExprKind::Name(n) = &d.kind {
                    if let Some(Value::Int(v)) = inner.get(n) {
                        self.hover.push(d.span, HoverInfo::Int(v.clone()), &self.ctx.node_prefix);
                    }
                }
            }
        }
        self.block_stack.push(name.to_string());
        let first_diag = self.diags.len();
        let mut result = Value::Poison;
        for stmt in &block.body {
            match &stmt.kind {
                ast::StmtKind::Let { name: n, value } => {
                    let v = self.binding(&n.name, value, &inner);
                    self.bind_name(&mut inner, n, v);
                }
                ast::StmtKind::Return { value } => {
                    self.ctx.binding = app_name.clone();
                    self.ctx.root = value.span;
                    result = self.eval(&inner, value);
                }
                // Other statements are misplaced in blocks (reported by the resolver).
                _ => {}
            }
        }
        self.block_stack.pop();
        self.ctx = saved;
        let result = self.check_return(block, &inner, result);
        for d in &mut self.diags[first_diag..] {
            d.secondary.push(crate::diag::SpanLabel { span, message: format!("in this application of `{name}`") });
        }
        result
    }

    /// The tensors an application passes to a block's ports, by port name; `None` (reported)
    /// when an argument names no port, is given twice, is not a tensor, or a port is left out.
    fn block_inputs(
        &mut self,
        scope: &Scope,
        span: Span,
        name: &str,
        block: &ast::BlockDef,
        args: &[Arg],
    ) -> Option<BTreeMap<String, (Tensor, Span)>> {
        let mut inputs: BTreeMap<String, (Tensor, Span)> = BTreeMap::new();
        let mut ok = true;
        for (arg, port) in match_args(args, &block.ports, |p| &p.name.name) {
            let Some(port) = port else {
                ok = false;
                let label = arg.name.as_ref().map_or("extra input".to_string(), |n| format!("no input `{}`", n.name));
                let ports: Vec<&str> = block.ports.iter().map(|p| p.name.name.as_str()).collect();
                self.diags.push(
                    Diagnostic::error(Code::UnknownArgument, format!("block `{name}` has no such input"))
                        .at(arg.name.as_ref().map_or(arg.value.span, |n| n.span), label)
                        .with_help(format!("inputs of `{name}`: {}", ports.join(", "))),
                );
                continue;
            };
            match self.eval(scope, &arg.value) {
                Value::Tensor(t) => {
                    if inputs.insert(port.name.name.clone(), (t, arg.value.span)).is_some() {
                        ok = false;
                        self.diags.push(
                            Diagnostic::error(
                                Code::DuplicateArgument,
                                format!("input `{}` is given twice", port.name.name),
                            )
                            .at(arg.value.span, "given again"),
                        );
                    }
                }
                Value::Poison => ok = false,
                v => {
                    ok = false;
                    self.diags.push(
                        Diagnostic::error(
                            Code::KindMismatch,
                            format!(
                                "input `{}` of block `{name}` must be a tensor, found {}",
                                port.name.name,
                                v.describe()
                            ),
                        )
                        .at(arg.value.span, "not a tensor"),
                    );
                }
            }
        }
        if !ok {
            return None;
        }
        let missing: Vec<&str> =
            block.ports.iter().filter(|p| !inputs.contains_key(&p.name.name)).map(|p| p.name.name.as_str()).collect();
        if !missing.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    Code::MissingArgument,
                    format!("block `{name}` is missing input {}", missing.join(", ")),
                )
                .at(span, "missing inputs"),
            );
            return None;
        }
        Some(inputs)
    }

    /// Binds dimension variables of a port type to the argument's dims, or checks them.
    fn match_port(&mut self, inner: &mut Scope, block: &str, port: &ast::Port, t: &Tensor, arg_span: Span) -> bool {
        if port.ty.dtype != t.ty.dtype {
            let d = Diagnostic::error(
                Code::DTypeMismatch,
                format!(
                    "input `{}` of block `{block}` must be {}, found {}",
                    port.name.name,
                    port.ty.dtype.name(),
                    t.ty
                ),
            )
            .at(arg_span, format!("this is {}", t.ty))
            .with_label(port.ty.span, "declared here");
            self.error(d);
            return false;
        }
        if port.ty.dims.len() != t.ty.rank() {
            let d = Diagnostic::error(
                Code::RankMismatch,
                format!(
                    "input `{}` of block `{block}` needs {} axes, found {}",
                    port.name.name,
                    port.ty.dims.len(),
                    t.ty
                ),
            )
            .at(arg_span, format!("{} axes", t.ty.rank()))
            .with_label(port.ty.span, "declared here");
            self.error(d);
            return false;
        }
        for (i, (expr, actual)) in port.ty.dims.iter().zip(&t.ty.shape).enumerate() {
            let expected = match &expr.kind {
                ExprKind::Name(n) if !inner.contains_key(n) => {
                    inner.insert(n.clone(), Value::Int(actual.clone()));
                    continue;
                }
                _ => match self.eval(inner, expr) {
                    Value::Int(d) => d,
                    _ => return false,
                },
            };
            if &expected != actual {
                let d = Diagnostic::error(
                    Code::ShapeMismatch,
                    format!(
                        "axis {i} of input `{}` of block `{block}` must be {expected}, found {actual}",
                        port.name.name
                    ),
                )
                .at(arg_span, format!("this is {}", t.ty))
                .with_label(expr.span, format!("expects {expected}"));
                let d = self.dim_note_diag(d, actual);
                self.error(d);
                return false;
            }
        }
        true
    }

    fn check_return(&mut self, block: &ast::BlockDef, inner: &Scope, result: Value) -> Value {
        let t = match &result {
            Value::Tensor(t) => t.clone(),
            Value::Poison => return Value::Poison,
            other => {
                let msg = format!("block `{}` must return a tensor, found {}", block.name.name, other.describe());
                return self
                    .error(Diagnostic::error(Code::ReturnMismatch, msg).at(block.ret.span, "declared return type"));
            }
        };
        let Some(expected) = self.tensor_type(inner, &block.ret) else {
            return Value::Poison;
        };
        if expected.dtype != t.ty.dtype || expected.shape != t.ty.shape {
            let ret_span = block
                .body
                .iter()
                .rev()
                .find(|s| matches!(s.kind, ast::StmtKind::Return { .. }))
                .map_or(block.span, |s| s.span);
            let d = Diagnostic::error(
                Code::ReturnMismatch,
                format!("block `{}` returns {} but declares {}", block.name.name, t.ty, expected),
            )
            .at(ret_span, format!("returns {}", t.ty))
            .with_label(block.ret.span, format!("declared {expected}"));
            return self.error(d);
        }
        result
    }
}

/// Pairs each argument with the declaration it names, or with the next one by position.
fn match_args<'a, T>(args: &'a [Arg], decls: &'a [T], name: impl Fn(&T) -> &String) -> Vec<(&'a Arg, Option<&'a T>)> {
    let mut positional = 0;
    args.iter()
        .map(|arg| {
            let decl = match &arg.name {
                Some(n) => decls.iter().find(|d| name(d) == &n.name),
                None => {
                    positional += 1;
                    decls.get(positional - 1)
                }
            };
            (arg, decl)
        })
        .collect()
}
