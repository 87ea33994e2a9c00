//! Shape checking and lowering: elaborates a resolved program into a typed [`Graph`].
//!
//! The checker interprets the model body abstractly: every expression evaluates to a
//! [`Value`]; tensors carry symbolic shapes, and every op application goes through the op's
//! one shape rule ([`crate::ops::shape::infer`]). Blocks are inlined at each application with
//! node names prefixed by the application and weight names prefixed by the block instance, so
//! two applications of one instance share weights. Errors poison the value they produce, so one
//! mistake is reported once and checking goes on to find the others.

mod args;
mod blocks;
mod expr;
mod features;
pub mod hover;
pub mod value;

use crate::ast::{self, DType, ExprKind, StmtKind, ValueKind};
use crate::diag::{self, did_you_mean, Code, Diagnostic, SpanLabel};
use crate::dim::Dim;
use crate::dim::BATCH;
use crate::ir::{Attr, DimDecl, Graph, Input, InputRole, Loss, Output, ParamDecl};
use crate::load::LoadedSpec;
use crate::ops::SELECT;
use crate::overrides::{Override, OverrideValue};
use crate::resolve;
use crate::source::Span;
use crate::types::TensorType;
use hover::{HoverInfo, HoverTable};
use std::collections::{BTreeMap, HashMap, HashSet};
use value::{Tensor, Value};

/// The result of checking: the graph when there are no errors, all diagnostics, what was
/// inferred at each span and the resolution table (both for editors; filled even when there are
/// errors).
pub struct Checked {
    pub graph: Option<Graph>,
    pub diagnostics: Vec<Diagnostic>,
    pub hover: HoverTable,
    /// Every definition and use of a name, as the resolver resolved them.
    pub names: resolve::index::Index,
    /// The spec's feature set, checked (with the model when there is one), when there are no
    /// errors.
    pub features: Option<crate::features::FeatureSet>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Resolves and shape-checks a loaded program. `load_diags` are the loader's diagnostics.
pub fn check(program: &LoadedSpec, load_diags: Vec<Diagnostic>, overrides: &[Override]) -> Checked {
    let mut diagnostics = load_diags;
    let resolution = resolve::resolve(program);
    diagnostics.extend(resolution.diagnostics);
    let mut graph = None;
    let mut hover = HoverTable::default();
    let feature_set = features::definition(program, &mut diagnostics);
    let mut checked_features = None;
    if let Some(model) = program.model() {
        // The feature set's dims bind the model's as a data set's do, below every other override.
        let mut all = feature_set.map(|f| features::dims(f, &mut diagnostics)).unwrap_or_default();
        all.extend_from_slice(overrides);
        let mut checker = Checker::new(program, &all);
        checker.model(model);
        let model_ok = !checker.diags.iter().any(Diagnostic::is_error);
        diagnostics.extend(checker.diags);
        hover = checker.hover;
        hover.finish(&checker.graph);
        let mut g = checker.graph;
        if let (Some(def), true) = (feature_set, model_ok) {
            g.features = features::check(def, Some(model), &g, &mut diagnostics);
            checked_features = g.features.clone();
            if let Some(set) = &g.features {
                features::record_hover(set, Some(&g), &mut hover);
            }
        }
        graph = Some(g);
    } else if let Some(def) = feature_set {
        // A file of features alone: its statements are checked, with no model to fill.
        features::dims(def, &mut diagnostics);
        checked_features = features::check(def, None, &Graph::default(), &mut diagnostics);
        if let Some(set) = &checked_features {
            features::record_hover(set, None, &mut hover);
        }
    }
    let mut seen = HashSet::new();
    diagnostics.retain(|d| seen.insert((d.code, d.primary.as_ref().map(|p| p.span), d.message.clone())));
    diag::sort(&mut diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        graph = None;
        checked_features = None;
    }
    Checked { graph, diagnostics, hover, names: resolution.names, features: checked_features }
}

/// Naming context: where new nodes and weight owners go.
#[derive(Clone, Default)]
struct NameCtx {
    /// Prefix of node names (`f_c/` inside a block applied as `f_c`).
    node_prefix: String,
    /// Prefix of instance names (`tf_c/` inside a block instance bound as `tf_c`).
    inst_prefix: String,
    /// Full name of the binding being evaluated.
    binding: String,
    /// Span of the binding's whole value: the node with this span gets the binding's name.
    root: Span,
}

type Scope = HashMap<String, Value>;

struct Checker<'p> {
    blocks: HashMap<&'p str, &'p ast::BlockDef>,
    graph: Graph,
    diags: Vec<Diagnostic>,
    /// Where each model dim was declared and its value, for "D bound to 64 here".
    dim_decls: HashMap<String, (Span, i64)>,
    labels: HashSet<String>,
    node_names: HashSet<String>,
    block_stack: Vec<String>,
    ctx: NameCtx,
    in_loss: bool,
    overrides: Vec<Override>,
    used_overrides: HashSet<String>,
    hover: HoverTable,
}

impl<'p> Checker<'p> {
    fn new(program: &'p LoadedSpec, overrides: &[Override]) -> Checker<'p> {
        let mut blocks = HashMap::new();
        for b in program.blocks() {
            blocks.entry(b.name.name.as_str()).or_insert(b);
        }
        Checker {
            blocks,
            graph: Graph::default(),
            diags: vec![],
            dim_decls: HashMap::new(),
            labels: HashSet::new(),
            node_names: HashSet::new(),
            block_stack: vec![],
            ctx: NameCtx::default(),
            in_loss: false,
            overrides: overrides.to_vec(),
            used_overrides: HashSet::new(),
            hover: HoverTable::default(),
        }
    }

    fn error(&mut self, d: Diagnostic) -> Value {
        self.diags.push(d);
        Value::Poison
    }

    /// Notes what `span` evaluated to, for hovers.
    fn record(&mut self, span: Span, v: &Value) {
        self.hover.record(span, v, &self.ctx.node_prefix);
    }

    /// Notes a name's value as it is bound into `scope`.
    fn bind_name(&mut self, scope: &mut Scope, name: &ast::Ident, v: Value) {
        self.record(name.span, &v);
        scope.insert(name.name.clone(), v);
    }

    fn model(&mut self, model: &ast::ModelDef) {
        self.graph.model = model.name.name.clone();
        let mut scope = Scope::new();
        scope.insert(BATCH.to_string(), Value::Int(Dim::sym(BATCH)));
        for stmt in &model.body {
            self.model_stmt(&mut scope, stmt);
        }
        self.unused_overrides();
    }

    fn model_stmt(&mut self, scope: &mut Scope, stmt: &ast::Stmt) {
        match &stmt.kind {
            StmtKind::Dim { name, value } => self.dim_stmt(scope, name, value),
            StmtKind::Param { name, kind, value } => self.param_stmt(scope, name, *kind, value),
            StmtKind::Input { name, ty, vocab, hashed } => {
                if let Some(t) = self.input_type(scope, ty, vocab.as_ref(), false) {
                    self.add_input(scope, name, InputRole::Feature, t, *hashed);
                }
            }
            StmtKind::Seq { name, ty, vocab, hashed } => {
                if let Some(t) = self.input_type(scope, ty, vocab.as_ref(), true) {
                    let mask = TensorType::mask(t.shape[..2].to_vec());
                    self.add_input(scope, name, InputRole::Sequence, t, *hashed);
                    self.graph.inputs.push(Input {
                        name: format!("{}.mask", name.name),
                        role: InputRole::Mask,
                        ty: mask,
                        hashed: false,
                    });
                }
            }
            StmtKind::Side { seq, name, ty } => self.side_stmt(scope, seq, name, ty),
            StmtKind::Label { names } => {
                for n in names {
                    if self.labels.insert(n.name.clone()) {
                        self.graph.labels.push(n.name.clone());
                    }
                }
            }
            StmtKind::Weight { name } => {
                self.graph.weights.push(name.name.clone());
                self.add_input(scope, name, InputRole::Weight, TensorType::float(vec![Dim::sym(BATCH)]), false);
            }
            StmtKind::Let { name, value } => {
                let v = self.binding(&name.name, value, scope);
                self.bind_name(scope, name, v);
            }
            StmtKind::Output { name, value } => {
                let v = self.binding(&name.name, value, scope);
                match &v {
                    Value::Tensor(t) => {
                        self.graph.outputs.push(Output { name: name.name.clone(), source: t.source.clone() })
                    }
                    Value::Poison => {}
                    other => {
                        let msg = format!("an output must be a tensor, found {}", other.describe());
                        self.error(Diagnostic::error(Code::KindMismatch, msg).at(value.span, "not a tensor"));
                    }
                }
                self.bind_name(scope, name, v);
            }
            StmtKind::Loss { name, value } => self.loss_stmt(scope, name, value),
            // Misplaced statements were reported by the resolver.
            StmtKind::Return { .. } => {}
        }
    }

    /// Evaluates a binding's value with node naming rooted at `name`.
    fn binding(&mut self, name: &str, value: &ast::Expr, scope: &Scope) -> Value {
        let saved = self.ctx.clone();
        self.ctx.binding = format!("{}{}", self.ctx.node_prefix, name);
        self.ctx.root = value.span;
        let mut v = self.eval(scope, value);
        match &mut v {
            Value::Instance(inst) if inst.name.is_none() => inst.name = Some(format!("{}{}", saved.inst_prefix, name)),
            Value::Layers(l) if l.name.is_none() => l.name = Some(format!("{}{}", saved.inst_prefix, name)),
            _ => {}
        }
        self.ctx = saved;
        v
    }

    fn override_for(&mut self, name: &str) -> Option<Override> {
        let o = self.overrides.iter().rev().find(|o| o.name == name).cloned();
        if o.is_some() {
            self.used_overrides.insert(name.to_string());
        }
        o
    }

    fn bad_override(&mut self, o: &Override, msg: String) {
        self.diags.push(Diagnostic::error(Code::BadOverride, format!("{}: {msg}", o.origin)));
    }

    fn unused_overrides(&mut self) {
        let known: Vec<String> = self
            .graph
            .dims
            .iter()
            .map(|d| d.name.clone())
            .chain(self.graph.params.iter().map(|p| p.name.clone()))
            .collect();
        for o in self.overrides.clone() {
            if o.required && !self.used_overrides.contains(&o.name) {
                let mut msg = format!("`{}` is not a dim or param of model `{}`", o.name, self.graph.model);
                if let Some(h) = did_you_mean(&o.name, known.iter().map(String::as_str)) {
                    msg.push_str(&format!("; {h}"));
                }
                self.bad_override(&o, msg);
            }
        }
    }

    fn dim_stmt(&mut self, scope: &mut Scope, name: &ast::Ident, value: &ast::Expr) {
        let over = self.override_for(&name.name);
        if let ExprKind::Int(default) = value.kind {
            let mut v = default;
            let mut overridden = false;
            if let Some(o) = over {
                match o.value {
                    OverrideValue::Int(x) => {
                        v = x;
                        overridden = true;
                    }
                    _ => self.bad_override(&o, format!("dim `{}` needs an integer", name.name)),
                }
            }
            if v <= 0 {
                self.error(
                    Diagnostic::error(Code::BadDim, format!("dim `{}` must be positive, found {v}", name.name))
                        .at(value.span, "not positive"),
                );
            }
            self.dim_decls.insert(name.name.clone(), (name.span, v));
            self.graph.dims.push(DimDecl { name: name.name.clone(), value: v, derived: None, overridden });
            self.bind_name(scope, name, Value::Int(Dim::sym(&name.name)));
            return;
        }
        if let Some(o) = over {
            self.bad_override(
                &o,
                format!("dim `{}` is derived from other dims and cannot be set; set those instead", name.name),
            );
        }
        let d = match self.eval(scope, value) {
            Value::Int(d) => d,
            Value::Poison => {
                scope.insert(name.name.clone(), Value::Poison);
                return;
            }
            other => {
                let msg = format!("dim `{}` must be an integer expression, found {}", name.name, other.describe());
                let v = self.error(Diagnostic::error(Code::BadDim, msg).at(value.span, "not an integer"));
                scope.insert(name.name.clone(), v);
                return;
            }
        };
        match self.eval_dim(&d) {
            Ok(v) if v > 0 => {
                self.dim_decls.insert(name.name.clone(), (name.span, v));
                self.graph.dims.push(DimDecl {
                    name: name.name.clone(),
                    value: v,
                    derived: Some(d.clone()),
                    overridden: false,
                });
                self.bind_name(scope, name, Value::Int(d));
            }
            Ok(v) => {
                let v = self.error(
                    Diagnostic::error(
                        Code::BadDim,
                        format!("dim `{}` = {d} evaluates to {v}, not a positive size", name.name),
                    )
                    .at(value.span, format!("= {v}")),
                );
                scope.insert(name.name.clone(), v);
            }
            Err(e) => {
                let d2 = self.dim_note_diag(
                    Diagnostic::error(Code::BadDim, format!("dim `{}` = {d}: {e}", name.name))
                        .at(value.span, "cannot be evaluated"),
                    &d,
                );
                let v = self.error(d2);
                scope.insert(name.name.clone(), v);
            }
        }
    }

    fn param_stmt(&mut self, scope: &mut Scope, name: &ast::Ident, kind: ValueKind, value: &ast::Expr) {
        let mut v = match (kind, &value.kind) {
            (ValueKind::Symbol, ExprKind::Name(n)) => Value::Sym(n.clone()),
            _ => self.eval(scope, value),
        };
        let fits = |v: &Value| match (kind, v) {
            (ValueKind::Int, Value::Int(d)) => d.as_constant().is_some(),
            (ValueKind::Float, Value::Float(_))
            | (ValueKind::Bool, Value::Bool(_))
            | (ValueKind::Symbol, Value::Sym(_))
            | (ValueKind::List, Value::List(_)) => true,
            (_, Value::Poison) => true,
            _ => false,
        };
        if let (ValueKind::Float, Value::Int(d)) = (kind, &v) {
            if let Some(c) = d.as_constant() {
                v = Value::Float(c as f64);
            }
        }
        if !fits(&v) {
            let msg = format!("param `{}` is declared {} but its value is {}", name.name, kind.name(), v.describe());
            v = self.error(
                Diagnostic::error(Code::KindMismatch, msg).at(value.span, format!("not a constant {}", kind.name())),
            );
        }
        let mut overridden = false;
        if let Some(o) = self.override_for(&name.name) {
            let new = match (kind, &o.value) {
                (ValueKind::Int, OverrideValue::Int(x)) => Some(Value::Int(Dim::constant(*x))),
                (ValueKind::Float, OverrideValue::Int(x)) => Some(Value::Float(*x as f64)),
                (ValueKind::Float, OverrideValue::Float(x)) => Some(Value::Float(*x)),
                (ValueKind::Bool, OverrideValue::Bool(x)) => Some(Value::Bool(*x)),
                (ValueKind::Symbol, OverrideValue::Str(x)) => Some(Value::Sym(x.clone())),
                _ => None,
            };
            match new {
                Some(n) => {
                    v = n;
                    overridden = true;
                }
                None => {
                    self.bad_override(&o, format!("param `{}` is {}; the value does not fit", name.name, kind.name()))
                }
            }
        }
        if let Some(attr) = v.to_attr() {
            self.graph.params.push(ParamDecl { name: name.name.clone(), value: attr, overridden });
        }
        self.bind_name(scope, name, v);
    }

    fn add_input(&mut self, scope: &mut Scope, name: &ast::Ident, role: InputRole, ty: TensorType, hashed: bool) {
        self.graph.inputs.push(Input { name: name.name.clone(), role, ty: ty.clone(), hashed });
        self.bind_name(scope, name, Value::Tensor(Tensor { ty, source: name.name.clone() }));
    }

    /// Evaluates a written tensor type; `None` after reporting an error.
    fn tensor_type(&mut self, scope: &Scope, ty: &ast::TensorTypeExpr) -> Option<TensorType> {
        let mut shape = vec![];
        let mut ok = true;
        for d in &ty.dims {
            match self.eval(scope, d) {
                Value::Int(dim) => shape.push(dim),
                Value::Poison => ok = false,
                other => {
                    ok = false;
                    let msg = format!("a dimension must be an integer expression, found {}", other.describe());
                    self.error(Diagnostic::error(Code::BadDim, msg).at(d.span, "not a dimension"));
                }
            }
        }
        ok.then(|| match ty.dtype {
            DType::Mask => TensorType::mask(shape),
            DType::Id => TensorType { dtype: DType::Id, ..TensorType::float(shape) },
            DType::Float => TensorType::float(shape),
        })
    }

    fn input_type(
        &mut self,
        scope: &Scope,
        ty: &ast::TensorTypeExpr,
        vocab: Option<&ast::Expr>,
        seq: bool,
    ) -> Option<TensorType> {
        let mut t = self.tensor_type(scope, ty)?;
        if t.shape.first() != Some(&Dim::sym(BATCH)) {
            self.error(
                Diagnostic::error(
                    Code::BadDim,
                    format!("inputs are batched: the first axis must be B, found {}", t.shape_str()),
                )
                .at(ty.span, "first axis is not B"),
            );
            return None;
        }
        if seq && t.rank() < 2 {
            self.error(
                Diagnostic::error(
                    Code::RankMismatch,
                    format!("a sequence needs axes [B, T, ...], found {}", t.shape_str()),
                )
                .at(ty.span, "no time axis"),
            );
            return None;
        }
        match (t.dtype, vocab) {
            (DType::Id, Some(v)) => match self.eval(scope, v) {
                Value::Int(d) if d.as_constant().is_some_and(|n| n < 1) => {
                    let msg = format!("a vocabulary needs at least one id, found {d}");
                    self.error(Diagnostic::error(Code::BadDim, msg).at(v.span, "not a vocabulary size"));
                    return None;
                }
                Value::Int(d) => t.vocab = Some(d),
                Value::Poison => return None,
                other => {
                    let msg = format!("a vocabulary size must be an integer, found {}", other.describe());
                    self.error(Diagnostic::error(Code::BadDim, msg).at(v.span, "not an integer"));
                    return None;
                }
            },
            (DType::Id, None) => {
                self.error(
                    Diagnostic::error(Code::MissingArgument, "an id input needs a vocabulary size")
                        .at(ty.span, "no vocabulary")
                        .with_help("write `... vocab V;` after the type"),
                );
                return None;
            }
            (_, Some(v)) => {
                self.error(
                    Diagnostic::error(
                        Code::KindMismatch,
                        format!("only id inputs have a vocabulary, this is {}", t.dtype.name()),
                    )
                    .at(v.span, "remove `vocab`"),
                );
                return None;
            }
            (_, None) => {}
        }
        Some(t)
    }

    fn side_stmt(&mut self, scope: &mut Scope, seq: &ast::Ident, name: &ast::Ident, ty: &ast::TensorTypeExpr) {
        let Some(t) = self.tensor_type(scope, ty) else {
            return;
        };
        let Some(Value::Tensor(s)) = scope.get(&seq.name).cloned() else {
            return;
        };
        let is_seq = self.graph.inputs.iter().any(|i| i.name == seq.name && i.role == InputRole::Sequence);
        if !is_seq {
            return;
        }
        if t.rank() < 2 || t.shape[..2] != s.ty.shape[..2] {
            let d = Diagnostic::error(
                Code::BadSide,
                format!(
                    "side feature `{}.{}` must start with the sequence's axes {}, found {}",
                    seq.name,
                    name.name,
                    crate::types::shape_str(&s.ty.shape[..2]),
                    t.shape_str()
                ),
            )
            .at(ty.span, "axes differ")
            .with_label(seq.span, format!("`{}` is {}", seq.name, s.ty));
            self.error(d);
            return;
        }
        let full = format!("{}.{}", seq.name, name.name);
        self.hover.push(name.span, HoverInfo::Tensor(t.clone()), "");
        self.graph.inputs.push(Input { name: full, role: InputRole::Side, ty: t, hashed: false });
    }

    fn loss_stmt(&mut self, scope: &Scope, name: &ast::Ident, value: &ast::Expr) {
        // `loss n = w * term;`, `loss n = term * w;` or `loss n = term;`
        let (weight_expr, term_expr) = match &value.kind {
            ExprKind::Binary(ast::BinOp::Mul, a, b) if is_loss_call(b) => (Some(a.as_ref()), b.as_ref()),
            ExprKind::Binary(ast::BinOp::Mul, a, b) if is_loss_call(a) => (Some(b.as_ref()), a.as_ref()),
            _ => (None, value),
        };
        let weight = match weight_expr {
            None => Some(1.0),
            Some(w) => match self.eval(scope, w) {
                Value::Float(v) => Some(v),
                Value::Int(d) => d.as_constant().map(|c| c as f64),
                Value::Poison => None,
                other => {
                    let msg = format!("a loss weight must be a constant number, found {}", other.describe());
                    self.error(Diagnostic::error(Code::NotALoss, msg).at(w.span, "not a number"));
                    None
                }
            },
        };
        if let Some(w) = weight {
            if !(w.is_finite() && w >= 0.0) {
                let span = weight_expr.map_or(value.span, |e| e.span);
                self.error(
                    Diagnostic::error(
                        Code::BadValue,
                        format!("loss weight must be finite and non-negative, found {w}"),
                    )
                    .at(span, "bad weight"),
                );
            }
        }
        self.in_loss = true;
        let v = self.binding(&format!("loss/{}", name.name), term_expr, scope);
        self.in_loss = false;
        match (v, weight) {
            (Value::Loss(node), Some(weight)) => {
                self.hover.push(name.span, HoverInfo::Loss { weight: Some(weight) }, "");
                self.graph.losses.push(Loss { name: name.name.clone(), node, weight })
            }
            (Value::Poison, _) | (_, None) => {}
            (other, _) => {
                let msg = format!(
                    "a loss must be a loss term such as bce(...), optionally times a weight; found {}",
                    other.describe()
                );
                self.error(
                    Diagnostic::error(Code::NotALoss, msg)
                        .at(term_expr.span, "not a loss term")
                        .with_help("loss terms: bce, bce_logits, nll, softmax_ce, not_to_recommend, triplet"),
                );
            }
        }
    }

    fn eval_dim(&self, d: &Dim) -> Result<i64, crate::dim::EvalError> {
        d.eval(&|s| self.dim_decls.get(s).map(|(_, v)| *v))
    }

    /// Secondary labels saying where each symbol of `d` was bound.
    fn dim_notes(&self, d: &Dim) -> Vec<SpanLabel> {
        d.symbols()
            .into_iter()
            .filter_map(|s| {
                self.dim_decls
                    .get(&s)
                    .map(|(span, v)| SpanLabel { span: *span, message: format!("{s} bound to {v} here") })
            })
            .collect()
    }

    fn dim_note_diag(&self, mut d: Diagnostic, dim: &Dim) -> Diagnostic {
        d.secondary.extend(self.dim_notes(dim));
        d
    }

    /// A fresh node name: the binding's own name for its root expression, else a sub-path.
    fn node_name(&mut self, span: Span, op: &str) -> String {
        let base =
            if span == self.ctx.root { self.ctx.binding.clone() } else { format!("{}/{}", self.ctx.binding, op) };
        let mut name = base.clone();
        let mut k = 2;
        while self.node_names.contains(&name) || self.graph.inputs.iter().any(|i| i.name == name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.node_names.insert(name.clone());
        name
    }
}

/// A loss term call, or a `select` whose branches all are.
fn is_loss_call(e: &ast::Expr) -> bool {
    match &e.kind {
        ExprKind::Call(callee, args) => match &callee.kind {
            ExprKind::Name(n) if n == SELECT => args.len() > 1 && args[1..].iter().all(|a| is_loss_call(&a.value)),
            ExprKind::Name(n) => crate::ops::Op::by_name(n).is_some_and(|op| op.is_loss()),
            _ => false,
        },
        _ => false,
    }
}

/// Attribute map helper for nodes with a scalar operand.
fn scalar_attr(side: &str, v: f64) -> BTreeMap<String, Attr> {
    let mut m = BTreeMap::new();
    m.insert(side.to_string(), Attr::Float(v));
    m
}
