//! Argument binding: named and positional arguments against an op's signature, each evaluated
//! by its declared kind, with unknown, missing and duplicate arguments reported.

use super::value::{Callee, Value};
use super::{Checker, Scope};
use crate::ast::{Arg, Expr, ExprKind};
use crate::diag::{did_you_mean, suggest, Code, Diagnostic};
use crate::dim::Dim;
use crate::ir::{Attr, Operand};
use crate::ops::shape::{TableArg, TensorArg};
use crate::ops::{self, ArgKind, ArgSpec, Op};
use crate::resolve::positional_spec;
use crate::source::Span;
use std::collections::{BTreeMap, HashMap};

/// Arguments bound to a signature.
#[derive(Default)]
pub(super) struct Bound {
    pub(super) tensors: Vec<TensorArg>,
    pub(super) operands: Vec<Operand>,
    pub(super) attrs: BTreeMap<String, Attr>,
    pub(super) attr_spans: BTreeMap<String, Span>,
    pub(super) table: Option<TableArg>,
}

impl Checker<'_> {
    /// Binds call arguments to a signature, evaluating each by its declared kind.
    pub(super) fn bind(
        &mut self,
        scope: &Scope,
        what: &str,
        specs: &'static [ArgSpec],
        args: &[Arg],
        call_span: Span,
    ) -> Option<Bound> {
        let mut b = Bound::default();
        let mut ok = true;
        let mut given: HashMap<&str, Span> = HashMap::new();
        let mut positional = 0;
        let mut meant: Vec<&str> = vec![];
        for arg in args {
            let spec = match &arg.name {
                Some(n) => match ops::arg_spec(specs, &n.name) {
                    Some((s, renamed)) => {
                        if renamed {
                            self.diags.push(
                                Diagnostic::warning(
                                    Code::Deprecated,
                                    format!("`{}:` is now spelt `{}:`", n.name, s.name),
                                )
                                .at(n.span, format!("write `{}:`", s.name))
                                .with_help(format!(
                                    "every loss names its label stream `{}:`; `recspec fmt` rewrites it",
                                    s.name
                                )),
                            );
                        }
                        s
                    }
                    None => {
                        ok = false;
                        let close = suggest(&n.name, specs.iter().map(|s| s.name));
                        let mut d =
                            Diagnostic::error(Code::UnknownArgument, format!("`{what}` has no argument `{}`", n.name))
                                .at(n.span, "unknown argument");
                        d = match close {
                            Some(c) => {
                                // The argument it most likely means is not also reported missing.
                                meant.push(c);
                                d.with_help(format!("did you mean `{c}`?"))
                            }
                            None => d.with_help(format!(
                                "arguments of `{what}`: {}",
                                specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                            )),
                        };
                        self.diags.push(d);
                        continue;
                    }
                },
                None => {
                    positional += 1;
                    match positional_spec(specs, positional - 1) {
                        Some(s) => s,
                        None => {
                            ok = false;
                            self.diags.push(
                                Diagnostic::error(
                                    Code::UnknownArgument,
                                    format!("`{what}` takes at most {} arguments", specs.len()),
                                )
                                .at(arg.value.span, "extra argument"),
                            );
                            continue;
                        }
                    }
                }
            };
            if spec.kind != ArgKind::Tensors {
                if let Some(prev) = given.insert(spec.name, arg.value.span) {
                    ok = false;
                    self.diags.push(
                        Diagnostic::error(
                            Code::DuplicateArgument,
                            format!("argument `{}` of `{what}` is given twice", spec.name),
                        )
                        .at(arg.value.span, "given again")
                        .with_label(prev, "first given here"),
                    );
                    continue;
                }
            } else {
                given.insert(spec.name, arg.value.span);
            }
            ok &= self.bind_one(scope, what, spec, &arg.value, &mut b);
        }
        let missing: Vec<&str> = specs
            .iter()
            .filter(|s| {
                matches!(s.default, ops::Default::Required) && !given.contains_key(s.name) && !meant.contains(&s.name)
            })
            .map(|s| s.name)
            .collect();
        if !missing.is_empty() {
            ok = false;
            let list = missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
            self.diags.push(
                Diagnostic::error(Code::MissingArgument, format!("`{what}` is missing {list}"))
                    .at(call_span, format!("missing {list}"))
                    .with_help(format!("`{what}` takes {}", signature_text(specs))),
            );
        }
        for s in specs {
            if given.contains_key(s.name) {
                continue;
            }
            let attr = match s.default {
                ops::Default::Int(v) => Attr::Int(Dim::constant(v)),
                ops::Default::Float(v) => Attr::Float(v),
                ops::Default::Bool(v) => Attr::Bool(v),
                ops::Default::Sym(v) => Attr::Sym(v.to_string()),
                ops::Default::Required | ops::Default::Absent => continue,
            };
            b.attrs.insert(s.name.to_string(), attr);
        }
        ok.then_some(b)
    }

    fn bind_one(&mut self, scope: &Scope, what: &str, spec: &ArgSpec, e: &Expr, b: &mut Bound) -> bool {
        match spec.kind {
            ArgKind::Tensor | ArgKind::Tensors => match self.eval(scope, e) {
                Value::Tensor(t) => {
                    b.tensors.push(TensorArg { port: spec.name, ty: t.ty, span: e.span });
                    b.operands.push(Operand { port: spec.name.to_string(), source: t.source });
                    true
                }
                Value::Poison => false,
                v => {
                    self.diags.push(wrong_kind(what, spec, &v).at(e.span, "not a tensor"));
                    false
                }
            },
            ArgKind::Label => match &e.kind {
                ExprKind::Name(n) if self.labels.contains(n) => {
                    b.attrs.insert(spec.name.to_string(), Attr::Sym(n.clone()));
                    b.attr_spans.insert(spec.name.to_string(), e.span);
                    true
                }
                // Unknown labels were reported by the resolver.
                ExprKind::Name(_) => false,
                _ => {
                    let d = Diagnostic::error(
                        Code::KindMismatch,
                        format!("argument `{}` of `{what}` must name a label stream", spec.name),
                    )
                    .at(e.span, "not a label name");
                    self.diags.push(d);
                    false
                }
            },
            ArgKind::Sym(options) => self.bind_sym(scope, what, spec, options, e, b),
            ArgKind::Table => self.bind_table(scope, what, spec, e, b),
            ArgKind::Int | ArgKind::Float | ArgKind::Bool | ArgKind::IntList => {
                self.bind_value(scope, what, spec, e, b)
            }
        }
    }

    /// An option argument: a name among `options`, or a block parameter bound to one.
    fn bind_sym(
        &mut self,
        scope: &Scope,
        what: &str,
        spec: &ArgSpec,
        options: &[&str],
        e: &Expr,
        b: &mut Bound,
    ) -> bool {
        let chosen = match &e.kind {
            ExprKind::Name(n) => match scope.get(n) {
                Some(Value::Sym(s)) => s.clone(),
                _ => n.clone(),
            },
            _ => {
                let v = self.eval(scope, e);
                self.diags.push(wrong_kind(what, spec, &v).at(e.span, "not an option name"));
                return false;
            }
        };
        if !options.contains(&chosen.as_str()) {
            let mut d = Diagnostic::error(
                Code::BadOption,
                format!("`{chosen}` is not an option of `{}` in `{what}`", spec.name),
            )
            .at(e.span, format!("expected one of {}", options.join(", ")));
            if let Some(h) = did_you_mean(&chosen, options.iter().copied()) {
                d = d.with_help(h);
            }
            self.diags.push(d);
            return false;
        }
        b.attrs.insert(spec.name.to_string(), Attr::Sym(chosen));
        b.attr_spans.insert(spec.name.to_string(), e.span);
        true
    }

    /// A table argument: a named `Embedding`, registered as an instance here.
    fn bind_table(&mut self, scope: &Scope, what: &str, spec: &ArgSpec, e: &Expr, b: &mut Bound) -> bool {
        match self.eval(scope, e) {
            Value::Instance(inst) if inst.callee == Callee::Op(Op::Embedding) && inst.name.is_some() => {
                let name = inst.name.clone().unwrap_or_default();
                let vocab = attr_dim(&inst.attrs, "vocab");
                let dim = attr_dim(&inst.attrs, "dim");
                self.register_instance(
                    &name,
                    Op::Embedding,
                    &inst.attrs,
                    crate::ops::shape::embedding_params(vocab.clone(), dim.clone()),
                );
                b.table = Some(TableArg { name, vocab, dim, span: e.span });
                true
            }
            Value::Poison => false,
            v => {
                self.diags.push(
                    wrong_kind(what, spec, &v)
                        .at(e.span, "not a named Embedding")
                        .with_help("bind the table first: `let items = Embedding(vocab: V, dim: D);`"),
                );
                false
            }
        }
    }

    /// A number, flag or list of ints, checked against the kind the argument takes.
    fn bind_value(&mut self, scope: &Scope, what: &str, spec: &ArgSpec, e: &Expr, b: &mut Bound) -> bool {
        let v = self.eval(scope, e);
        let attr = match (spec.kind, &v) {
            (_, Value::Poison) => return false,
            (ArgKind::Int, Value::Int(d)) => Attr::Int(d.clone()),
            (ArgKind::Float, Value::Float(f)) => Attr::Float(*f),
            (ArgKind::Float, Value::Int(d)) if d.as_constant().is_some() => {
                Attr::Float(d.as_constant().unwrap_or(0) as f64)
            }
            (ArgKind::Bool, Value::Bool(x)) => Attr::Bool(*x),
            (ArgKind::IntList, Value::List(items)) if items.iter().all(|i| matches!(i, Value::Int(_))) => {
                Attr::List(items.iter().filter_map(Value::to_attr).collect())
            }
            (ArgKind::IntList, Value::List(items)) if items.iter().any(|i| matches!(i, Value::Poison)) => return false,
            _ => {
                self.diags.push(wrong_kind(what, spec, &v).at(e.span, format!("expected {}", spec.kind.describe())));
                return false;
            }
        };
        b.attrs.insert(spec.name.to_string(), attr);
        b.attr_spans.insert(spec.name.to_string(), e.span);
        true
    }
}

/// An argument given a value of the wrong kind.
fn wrong_kind(what: &str, spec: &ArgSpec, v: &Value) -> Diagnostic {
    Diagnostic::error(
        Code::KindMismatch,
        format!("argument `{}` of `{what}` must be {}, found {}", spec.name, spec.kind.describe(), v.describe()),
    )
}

fn attr_dim(attrs: &BTreeMap<String, Attr>, name: &str) -> Dim {
    match attrs.get(name) {
        Some(Attr::Int(d)) => d.clone(),
        _ => Dim::default(),
    }
}

fn signature_text(specs: &[ArgSpec]) -> String {
    specs
        .iter()
        .map(|s| match s.default {
            ops::Default::Required => format!("{}: {}", s.name, s.kind.describe()),
            _ => format!("{}?", s.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
