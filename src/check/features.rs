//! Checking a `features` definition: its statements become a typed [`FeatureSet`], and every
//! feature is held to the model input it fills, before any data is read.
//!
//! Two steps around the model's own check: [`dims`] reads the set's `dim` statements first
//! (they bind model dims, as a data set's `data.toml` does, below `--set`), and [`check`] runs
//! on the checked graph. Each mistake is one located diagnostic: `E0033` an input or label the
//! set does not make, `E0034` a feature that disagrees with its input, `E0035` a statement that
//! is not well formed.

use crate::ast::{self, ExprKind, FeatureStmtKind};
use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::dim::{Dim, BATCH};
use crate::features::{
    Column, EventSource, Feature, FeatureKind, FeatureSet, Ids, LabelRule, Located, Scaling, Split, TableSource,
};
use crate::ir::{Graph, InputRole};
use crate::load::LoadedSpec;
use crate::overrides::{Override, OverrideValue};
use crate::source::Span;
use crate::types::DType;
use std::collections::HashMap;

/// The one `features` definition of a loaded spec (root or imports), and a diagnostic for each
/// further one.
pub(super) fn definition<'p>(program: &'p LoadedSpec, diags: &mut Vec<Diagnostic>) -> Option<&'p ast::FeaturesDef> {
    let mut all = program.files.iter().flat_map(|(_, f)| f.features.iter());
    let first = all.next()?;
    for extra in all {
        diags.push(
            Diagnostic::error(Code::BadFeature, "a spec has at most one feature set")
                .at(extra.name.span, "second feature set")
                .with_label(first.name.span, "first feature set"),
        );
    }
    Some(first)
}

/// The set's `dim NAME = N;` statements as optional overrides (a model need not declare them).
pub(super) fn dims(def: &ast::FeaturesDef, diags: &mut Vec<Diagnostic>) -> Vec<Override> {
    let mut out: Vec<Override> = vec![];
    for s in &def.body {
        let FeatureStmtKind::Dim { name, value } = &s.kind else { continue };
        if out.iter().any(|o| o.name == name.name) {
            diags.push(
                Diagnostic::error(Code::Duplicate, format!("dim `{}` is bound twice in the feature set", name.name))
                    .at(name.span, "bound again"),
            );
            continue;
        }
        match value.kind {
            ExprKind::Int(v) if v > 0 => out.push(
                Override::new(&name.name, OverrideValue::Int(v), &format!("feature set `{}`", def.name.name))
                    .optional(),
            ),
            _ => diags.push(
                Diagnostic::error(
                    Code::BadDim,
                    format!("feature set dim `{}` must be a positive integer literal", name.name),
                )
                .at(value.span, "not a positive integer"),
            ),
        }
    }
    out
}

/// Checks the set, and against a checked graph when there is a model; the set when it has no
/// error.
pub(super) fn check(
    def: &ast::FeaturesDef,
    model: Option<&ast::ModelDef>,
    graph: &Graph,
    diags: &mut Vec<Diagnostic>,
) -> Option<FeatureSet> {
    let mut c = FeatureChecker { graph, diags: vec![], dims: HashMap::new(), poisoned: vec![] };
    let set = c.set(def, model);
    let ok = c.diags.is_empty();
    diags.append(&mut c.diags);
    set.filter(|_| ok)
}

struct FeatureChecker<'g> {
    graph: &'g Graph,
    diags: Vec<Diagnostic>,
    /// The set's own dims, for `length: T` and `buckets: V`.
    dims: HashMap<String, i64>,
    /// Features and labels whose statements had errors: not reported again as missing.
    poisoned: Vec<String>,
}

/// A feature call's arguments bound to its parameters.
struct Args<'e> {
    call: &'e str,
    span: Span,
    values: HashMap<&'static str, &'e ast::Expr>,
}

impl<'e> Args<'e> {
    fn get(&self, name: &str) -> Option<&'e ast::Expr> {
        self.values.get(name).copied()
    }
}

/// What the model calls an input of this role, in messages.
fn noun(role: InputRole) -> &'static str {
    match role {
        InputRole::Feature => "input",
        InputRole::Sequence => "sequence",
        InputRole::Side => "side feature",
        InputRole::Mask => "mask",
        InputRole::Weight => "weight stream",
    }
}

/// A parameter: its name and whether it is required.
type Params = &'static [(&'static str, bool)];

const EVENTS: Params =
    &[("file", true), ("user", true), ("item", true), ("time", true), ("format", false), ("delimiter", false)];
const TABLE: Params = &[("file", true), ("key", true), ("format", false), ("delimiter", false)];
const ITEMS: Params =
    &[("file", true), ("key", true), ("format", false), ("delimiter", false), ("cluster", false), ("creator", false)];
const TIME_SPLIT: Params = &[("valid", true), ("test", true)];
const IDS: Params = &[("buckets", false), ("min_count", false)];
const CATEGORICAL: Params = &[("column", true), ("buckets", false), ("min_count", false), ("vocab", false)];
const COLUMNS: Params = &[("columns", true)];
const NUMERIC: Params = &[("column", true), ("missing", false), ("na", false)];
const BUCKETIZE: Params = &[("column", true), ("boundaries", true), ("missing", false), ("na", false)];
const TOKENS: Params =
    &[("column", true), ("sep", true), ("max", true), ("buckets", false), ("min_count", false), ("vocab", false)];
const CROSS: Params = &[("columns", true), ("buckets", true)];
const HISTORY: Params = &[("when", true), ("length", true)];
const ONE_COLUMN: Params = &[("column", true)];
const FLAG: Params = &[("when", true)];

/// The calls each statement accepts, for "expected one of" messages.
const FEATURE_CALLS: &[&str] =
    &["item", "categorical", "fields", "profile", "float", "log1p", "zscore", "minmax", "bucketize", "cross"];
const SEQ_CALLS: &[&str] = &["history", "tokens"];
const SIDE_CALLS: &[&str] = &["column", "log1p", "flag"];

impl FeatureChecker<'_> {
    fn error(&mut self, d: Diagnostic) -> Option<std::convert::Infallible> {
        self.diags.push(d);
        None
    }

    fn set(&mut self, def: &ast::FeaturesDef, model: Option<&ast::ModelDef>) -> Option<FeatureSet> {
        let mut events = None;
        let mut events_at = None;
        let mut users = None;
        let mut items = None;
        let mut split = None;
        let mut labels: Vec<(LabelRule, Span)> = vec![];
        let mut features: Vec<(Feature, Span)> = vec![];
        for s in &def.body {
            if let FeatureStmtKind::Dim { name, value: ast::Expr { kind: ExprKind::Int(v), .. } } = &s.kind {
                self.dims.insert(name.name.clone(), *v);
            }
        }
        // Sources first: a column of a joined table needs its `source`, wherever it is written.
        for s in &def.body {
            match &s.kind {
                FeatureStmtKind::Source { value } => {
                    let had = events.is_some();
                    self.source(value, &mut events, &mut users, &mut items);
                    if !had && events.is_some() {
                        events_at = Some(s.span);
                    }
                }
                FeatureStmtKind::Split { value } => {
                    if split.is_some() {
                        self.error(Diagnostic::error(Code::Duplicate, "the split is given twice").at(s.span, "again"));
                    } else {
                        split = self.split(value);
                    }
                }
                _ => {}
            }
        }
        let joined = (users.is_some(), items.is_some());
        for s in &def.body {
            let (name, span, made) = match &s.kind {
                FeatureStmtKind::Label { name, value } => {
                    let rule = self.rule_text(value, &format!("label `{}`", name.name));
                    if rule.is_none() {
                        self.poisoned.push(name.name.clone());
                    }
                    if let Some(rule) = rule {
                        if let Some((_, first)) = labels.iter().find(|(l, _)| l.name == name.name) {
                            let first = *first;
                            self.duplicate(&format!("label `{}`", name.name), name.span, first);
                        } else {
                            labels.push((LabelRule { name: name.name.clone(), rule }, name.span));
                        }
                    }
                    continue;
                }
                FeatureStmtKind::Feature { name, value } => {
                    (name.name.clone(), name.span, self.feature(value, FEATURE_CALLS, joined))
                }
                FeatureStmtKind::Seq { name, value } => {
                    (name.name.clone(), name.span, self.feature(value, SEQ_CALLS, joined))
                }
                FeatureStmtKind::Side { seq, name, value } => {
                    let span = seq.span.to(name.span);
                    (format!("{}.{}", seq.name, name.name), span, self.feature(value, SIDE_CALLS, joined))
                }
                FeatureStmtKind::Dim { .. } | FeatureStmtKind::Source { .. } | FeatureStmtKind::Split { .. } => {
                    continue
                }
            };
            let Some(kind) = made else {
                self.poisoned.push(name);
                continue;
            };
            if let Some((_, first)) = features.iter().find(|(f, _)| f.input == name) {
                let first = *first;
                self.duplicate(&format!("feature `{name}`"), span, first);
                continue;
            }
            features.push((Feature { input: name, kind }, span));
        }
        let Some(events) = events else {
            self.error(
                Diagnostic::error(Code::BadFeature, format!("feature set `{}` has no event source", def.name.name))
                    .at(def.name.span, "no `source events(...)`")
                    .with_help("add `source events(\"FILE\", user: \"COL\", item: \"COL\", time: \"COL\");`"),
            );
            return None;
        };
        let split = split.unwrap_or(Split::Time { valid: 0.1, test: 0.1 });
        if let Some(model) = model {
            self.agree(model, &features, &labels);
        }
        let at = Located {
            events: events_at,
            labels: labels.iter().map(|(_, s)| *s).collect(),
            features: features.iter().map(|(_, s)| *s).collect(),
        };
        Some(FeatureSet {
            name: def.name.name.clone(),
            events,
            users,
            items,
            split,
            dims: self.dims_in_order(def),
            labels: labels.into_iter().map(|(l, _)| l).collect(),
            features: features.into_iter().map(|(f, _)| f).collect(),
            at,
        })
    }

    fn dims_in_order(&self, def: &ast::FeaturesDef) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = vec![];
        for s in &def.body {
            if let FeatureStmtKind::Dim { name, value: ast::Expr { kind: ExprKind::Int(v), .. } } = &s.kind {
                if !out.iter().any(|(n, _)| *n == name.name) {
                    out.push((name.name.clone(), *v));
                }
            }
        }
        out
    }

    fn duplicate(&mut self, what: &str, span: Span, first: Span) {
        self.error(
            Diagnostic::error(Code::Duplicate, format!("{what} is defined twice"))
                .at(span, "defined again")
                .with_label(first, "first defined here"),
        );
    }

    /// Binds a call's arguments to `params` (positional in order, then by name).
    fn args<'e>(&mut self, e: &'e ast::Expr, params: Params, call: &'e str) -> Option<Args<'e>> {
        let ExprKind::Call(_, args) = &e.kind else { return None };
        let mut values: HashMap<&'static str, &'e ast::Expr> = HashMap::new();
        let mut ok = true;
        for (i, a) in args.iter().enumerate() {
            let param = match &a.name {
                Some(n) => match params.iter().find(|(p, _)| *p == n.name) {
                    Some((p, _)) => *p,
                    None => {
                        let mut msg = format!("`{call}` takes no argument `{}`", n.name);
                        if let Some(h) = did_you_mean(&n.name, params.iter().map(|(p, _)| *p)) {
                            msg.push_str(&format!("; {h}"));
                        }
                        let names: Vec<&str> = params.iter().map(|(p, _)| *p).collect();
                        self.error(
                            Diagnostic::error(Code::UnknownArgument, msg)
                                .at(n.span, "unknown argument")
                                .with_help(format!("`{call}` takes {}", names.join(", "))),
                        );
                        ok = false;
                        continue;
                    }
                },
                None => match params.get(i) {
                    Some((p, _)) => *p,
                    None => {
                        self.error(
                            Diagnostic::error(
                                Code::UnknownArgument,
                                format!("`{call}` takes at most {} arguments", params.len()),
                            )
                            .at(a.value.span, "extra argument"),
                        );
                        ok = false;
                        continue;
                    }
                },
            };
            if values.insert(param, &a.value).is_some() {
                self.error(
                    Diagnostic::error(Code::DuplicateArgument, format!("`{call}`: argument `{param}` is given twice"))
                        .at(a.value.span, "given again"),
                );
                ok = false;
            }
        }
        for (p, required) in params {
            if *required && !values.contains_key(p) {
                self.error(
                    Diagnostic::error(Code::MissingArgument, format!("`{call}` needs the argument `{p}`"))
                        .at(e.span, format!("no `{p}`")),
                );
                ok = false;
            }
        }
        ok.then_some(Args { call, span: e.span, values })
    }

    /// The callee name of a call expression, or an error naming what was expected.
    fn callee<'e>(&mut self, e: &'e ast::Expr, expected: &[&str], what: &str) -> Option<&'e str> {
        if let ExprKind::Call(callee, _) = &e.kind {
            if let ExprKind::Name(n) = &callee.kind {
                if expected.contains(&n.as_str()) {
                    return Some(n);
                }
                let mut msg = format!("`{n}` is not {what}");
                if let Some(h) = did_you_mean(n, expected.iter().copied()) {
                    msg.push_str(&format!("; {h}"));
                }
                self.error(
                    Diagnostic::error(Code::BadFeature, msg)
                        .at(callee.span, "unknown")
                        .with_help(format!("expected one of {}", expected.join(", "))),
                );
                return None;
            }
        }
        self.error(
            Diagnostic::error(Code::BadFeature, format!("expected {what}: a call of {}", expected.join(", ")))
                .at(e.span, "not a call"),
        );
        None
    }

    fn string(&mut self, e: &ast::Expr, what: &str) -> Option<String> {
        match &e.kind {
            ExprKind::Str(s) if !s.is_empty() => Some(s.clone()),
            ExprKind::Str(_) => {
                self.error(
                    Diagnostic::error(Code::BadFeature, format!("{what} must not be empty")).at(e.span, "empty"),
                )?;
                None
            }
            _ => {
                self.error(
                    Diagnostic::error(Code::KindMismatch, format!("{what} must be a string"))
                        .at(e.span, "not a string"),
                )?;
                None
            }
        }
    }

    fn opt_string(&mut self, a: &Args, name: &str) -> Option<Option<String>> {
        match a.get(name) {
            None => Some(None),
            Some(e) => self.string(e, &format!("`{}`'s {name}", a.call)).map(Some),
        }
    }

    fn number(&mut self, e: &ast::Expr, what: &str) -> Option<f64> {
        let v = match &e.kind {
            ExprKind::Int(v) => Some(*v as f64),
            ExprKind::Float(v) => Some(*v),
            ExprKind::Neg(inner) => self.number(inner, what).map(|v| -v),
            _ => None,
        };
        match v {
            Some(v) if v.is_finite() => Some(v),
            _ => {
                self.error(
                    Diagnostic::error(Code::KindMismatch, format!("{what} must be a finite number"))
                        .at(e.span, "not a number"),
                )?;
                None
            }
        }
    }

    /// A positive integer: a literal or a dim of the set.
    fn count(&mut self, e: &ast::Expr, what: &str) -> Option<i64> {
        let v = match &e.kind {
            ExprKind::Int(v) => Some(*v),
            ExprKind::Name(n) => match self.dims.get(n) {
                Some(v) => Some(*v),
                None => {
                    self.error(
                        Diagnostic::error(Code::Undefined, format!("`{n}` is not a dim of the feature set"))
                            .at(e.span, "not declared here")
                            .with_help(format!("declare it in the feature set: `dim {n} = ...;`")),
                    )?;
                    return None;
                }
            },
            _ => None,
        };
        match v {
            Some(v) if v > 0 => Some(v),
            _ => {
                self.error(
                    Diagnostic::error(Code::BadValue, format!("{what} must be a positive integer"))
                        .at(e.span, "not a positive integer"),
                )?;
                None
            }
        }
    }

    fn column(&mut self, e: &ast::Expr, what: &str, joined: (bool, bool)) -> Option<Column> {
        let text = self.string(e, what)?;
        let c = Column::parse(&text);
        let missing = match &c {
            Column::User(_) if !joined.0 => Some("users"),
            Column::Item(_) if !joined.1 => Some("items"),
            _ => None,
        };
        if let Some(table) = missing {
            self.error(
                Diagnostic::error(
                    Code::BadFeature,
                    format!("{what} `{text}` is a column of the {table} table, which the feature set does not join"),
                )
                .at(e.span, format!("no `source {table}(...)`"))
                .with_help(format!("add `source {table}(\"FILE\", key: \"COL\");`")),
            )?;
        }
        let name = match &c {
            Column::Event(n) | Column::User(n) | Column::Item(n) => n,
        };
        if name.is_empty() {
            self.error(Diagnostic::error(Code::BadFeature, format!("{what} names no column")).at(e.span, "empty"))?;
        }
        Some(c)
    }

    fn columns(&mut self, e: &ast::Expr, what: &str, joined: (bool, bool)) -> Option<Vec<Column>> {
        let ExprKind::List(items) = &e.kind else {
            self.error(
                Diagnostic::error(Code::KindMismatch, format!("{what} must be a list of column names"))
                    .at(e.span, "not a list"),
            )?;
            return None;
        };
        if items.is_empty() {
            self.error(
                Diagnostic::error(Code::BadFeature, format!("{what} names no column")).at(e.span, "empty list"),
            )?;
        }
        let mut out = vec![];
        for item in items {
            out.push(self.column(item, what, joined)?);
        }
        Some(out)
    }

    /// A rule's text, parsed here so that a syntax error points into the spec.
    fn rule_text(&mut self, e: &ast::Expr, what: &str) -> Option<String> {
        let text = self.string(e, &format!("{what}'s rule"))?;
        if let Err(err) = crate::import::rule::Rule::parse(&text, &mut |_| 0) {
            // Point at the character the rule's error names (1-based, inside the quotes).
            let at = text.char_indices().nth(err.position.saturating_sub(1)).map_or(text.len(), |(i, _)| i);
            let start = (e.span.start as usize + 1 + at).min(e.span.end as usize);
            let end = (start + 1).min(e.span.end as usize);
            let span = Span::new(e.span.file, start, end);
            self.error(
                Diagnostic::error(Code::BadFeature, format!("{what}: {err}"))
                    .at(span, "here")
                    .with_help("rules compare columns with numbers or quoted text: `rating >= 4 and action != 'skip'`"),
            )?;
        }
        Some(text)
    }

    fn source(
        &mut self,
        e: &ast::Expr,
        events: &mut Option<EventSource>,
        users: &mut Option<TableSource>,
        items: &mut Option<TableSource>,
    ) {
        let Some(call) = self.callee(e, &["events", "users", "items"], "a source") else { return };
        let params = match call {
            "events" => EVENTS,
            "items" => ITEMS,
            _ => TABLE,
        };
        let Some(a) = self.args(e, params, call) else { return };
        let Some(file) = a.get("file").and_then(|f| self.string(f, "a source's file")) else { return };
        let (Some(format), Some(delimiter)) = (self.opt_string(&a, "format"), self.opt_string(&a, "delimiter")) else {
            return;
        };
        let col = |c: &mut Self, name: &str| a.get(name).and_then(|x| c.string(x, &format!("`{call}`'s {name}")));
        let slot = match call {
            "events" => {
                let (Some(user), Some(item), Some(time)) = (col(self, "user"), col(self, "item"), col(self, "time"))
                else {
                    return;
                };
                if events.is_none() {
                    *events = Some(EventSource { file, user, item, time, format, delimiter });
                    return;
                }
                "events"
            }
            table => {
                let Some(key) = col(self, "key") else { return };
                let (Some(cluster), Some(creator)) = (self.opt_string(&a, "cluster"), self.opt_string(&a, "creator"))
                else {
                    return;
                };
                let target = if table == "users" { users } else { items };
                if target.is_none() {
                    *target = Some(TableSource { file, key, format, delimiter, cluster, creator });
                    return;
                }
                table
            }
        };
        self.error(Diagnostic::error(Code::Duplicate, format!("source `{slot}` is given twice")).at(a.span, "again"));
    }

    fn split(&mut self, e: &ast::Expr) -> Option<Split> {
        let call = self.callee(e, &["time", "leave_last_out"], "a split")?;
        let a = self.args(e, if call == "time" { TIME_SPLIT } else { &[] }, call)?;
        if call == "leave_last_out" {
            return Some(Split::LeaveLastOut);
        }
        let fraction = |c: &mut Self, name: &str| {
            let x = a.get(name)?;
            let v = c.number(x, &format!("the {name} fraction"))?;
            if !(0.0..1.0).contains(&v) || v == 0.0 {
                c.error(
                    Diagnostic::error(Code::BadValue, format!("the {name} fraction must be in (0, 1), found {v}"))
                        .at(x.span, "out of range"),
                )?;
            }
            Some(v)
        };
        let valid = fraction(self, "valid")?;
        let test = fraction(self, "test")?;
        if valid + test >= 1.0 {
            self.error(
                Diagnostic::error(Code::BadValue, "valid and test leave no training events").at(e.span, "sum >= 1"),
            )?;
        }
        Some(Split::Time { valid, test })
    }

    fn ids(&mut self, a: &Args) -> Option<Ids> {
        match (a.get("buckets"), a.get("min_count")) {
            (Some(b), None) => Some(Ids::Hashed { buckets: self.count(b, "buckets")? as u64 }),
            (None, Some(m)) => Some(Ids::Vocabulary { min_count: self.count(m, "min_count")? as u64 }),
            (None, None) => Some(Ids::Vocabulary { min_count: 1 }),
            (Some(b), Some(_)) => {
                self.error(
                    Diagnostic::error(Code::BadFeature, format!("`{}`: hashed ids have no min_count", a.call))
                        .at(b.span, "hashed here")
                        .with_help("give either `buckets` (hashing) or `min_count` (a vocabulary)"),
                )?;
                None
            }
        }
    }

    /// `na: ["unknown", ...]`: texts a numeric column writes for a missing value.
    fn na(&mut self, a: &Args) -> Option<Vec<String>> {
        let Some(e) = a.get("na") else { return Some(vec![]) };
        let ExprKind::List(items) = &e.kind else {
            self.error(
                Diagnostic::error(Code::KindMismatch, "na must be a list of texts that stand for a missing value")
                    .at(e.span, "not a list"),
            )?;
            return None;
        };
        items.iter().map(|x| self.string(x, "a text of na")).collect()
    }

    /// `vocab: DIM`: required with a counted vocabulary (the data set sets DIM to its size),
    /// refused with hashing (the buckets are the size).
    fn vocab_dim(&mut self, a: &Args, ids: Ids) -> Option<Option<String>> {
        match (a.get("vocab"), ids) {
            (Some(ast::Expr { kind: ExprKind::Name(n), .. }), Ids::Vocabulary { .. }) => Some(Some(n.clone())),
            (Some(v), Ids::Vocabulary { .. }) => {
                self.error(
                    Diagnostic::error(Code::KindMismatch, format!("`{}`'s vocab must be a dim name", a.call))
                        .at(v.span, "not a name")
                        .with_help("name the dim of the model input's vocabulary: `vocab: DV`"),
                )?;
                None
            }
            (None, Ids::Vocabulary { .. }) => {
                self.error(
                    Diagnostic::error(
                        Code::MissingArgument,
                        format!(
                            "`{}` counts a vocabulary and needs `vocab: DIM`, the dim a data set sets to its size",
                            a.call
                        ),
                    )
                    .at(a.span, "no `vocab`")
                    .with_help("name the dim of the model input's vocabulary, or hash with `buckets: N`"),
                )?;
                None
            }
            (Some(v), Ids::Hashed { .. }) => {
                self.error(
                    Diagnostic::error(Code::BadFeature, format!("`{}`: hashed ids have no fitted vocabulary", a.call))
                        .at(v.span, "remove `vocab`"),
                )?;
                None
            }
            (None, Ids::Hashed { .. }) => Some(None),
        }
    }

    /// A feature's kind from its call, checked on its own (not yet against the model).
    fn feature(&mut self, e: &ast::Expr, calls: &[&str], joined: (bool, bool)) -> Option<FeatureKind> {
        let what = if calls == SEQ_CALLS {
            "a sequence feature"
        } else if calls == SIDE_CALLS {
            "a side feature"
        } else {
            "a feature"
        };
        let call = self.callee(e, calls, what)?;
        let params = match call {
            "item" => IDS,
            "categorical" => CATEGORICAL,
            "fields" | "profile" => COLUMNS,
            "float" | "zscore" | "minmax" => NUMERIC,
            "log1p" if calls == SIDE_CALLS => ONE_COLUMN,
            "log1p" => NUMERIC,
            "bucketize" => BUCKETIZE,
            "tokens" => TOKENS,
            "cross" => CROSS,
            "history" => HISTORY,
            "column" => ONE_COLUMN,
            // "flag" is the last call any statement accepts.
            _ => FLAG,
        };
        let a = self.args(e, params, call)?;
        let arg = |name: &str| a.get(name).expect("required arguments are bound");
        Some(match call {
            "item" => FeatureKind::Item { ids: self.ids(&a)? },
            "categorical" => {
                let column = self.column(arg("column"), "column", joined)?;
                let ids = self.ids(&a)?;
                FeatureKind::Categorical { column, ids, vocab: self.vocab_dim(&a, ids)? }
            }
            "fields" => FeatureKind::Fields { columns: self.columns(arg("columns"), "fields", joined)? },
            "profile" => FeatureKind::Profile { columns: self.columns(arg("columns"), "profile", joined)? },
            "float" | "zscore" | "minmax" | "log1p" if calls != SIDE_CALLS => {
                let scaling = match call {
                    "float" => Scaling::Raw,
                    "zscore" => Scaling::ZScore,
                    "minmax" => Scaling::MinMax,
                    _ => Scaling::Log1p,
                };
                let column = self.column(arg("column"), "column", joined)?;
                let missing = match a.get("missing") {
                    Some(m) => Some(self.number(m, "missing")?),
                    None => None,
                };
                FeatureKind::Numeric { column, scaling, missing, na: self.na(&a)? }
            }
            "bucketize" => {
                let column = self.column(arg("column"), "column", joined)?;
                let b = arg("boundaries");
                let ExprKind::List(items) = &b.kind else {
                    self.error(
                        Diagnostic::error(Code::KindMismatch, "bucketize's boundaries must be a list of numbers")
                            .at(b.span, "not a list"),
                    )?;
                    return None;
                };
                let mut boundaries = vec![];
                for x in items {
                    boundaries.push(self.number(x, "a boundary")?);
                }
                if boundaries.is_empty() || boundaries.windows(2).any(|w| w[0] >= w[1]) {
                    self.error(
                        Diagnostic::error(
                            Code::BadValue,
                            "bucketize's boundaries must be one or more numbers in increasing order",
                        )
                        .at(b.span, "not increasing"),
                    )?;
                }
                let missing = match a.get("missing") {
                    Some(m) => {
                        let ExprKind::Int(id @ 0..) = m.kind else {
                            self.error(
                                Diagnostic::error(
                                    Code::BadValue,
                                    "bucketize's missing must be a bucket id (0, 1, ...)",
                                )
                                .at(m.span, "not a bucket id"),
                            )?;
                            return None;
                        };
                        if id as usize > boundaries.len() {
                            self.error(
                                Diagnostic::error(
                                    Code::BadValue,
                                    format!("missing: id {id} is not one of the {} buckets", boundaries.len() + 1),
                                )
                                .at(m.span, "no such bucket"),
                            )?;
                        }
                        Some(id as u64)
                    }
                    None => None,
                };
                FeatureKind::Bucketize { column, boundaries, missing, na: self.na(&a)? }
            }
            "tokens" => {
                let column = self.column(arg("column"), "column", joined)?;
                let sep = self.string(arg("sep"), "tokens' separator")?;
                let max = self.count(arg("max"), "max")?;
                let ids = self.ids(&a)?;
                FeatureKind::Tokens { column, sep, max, ids, vocab: self.vocab_dim(&a, ids)? }
            }
            "cross" => {
                let columns = self.columns(arg("columns"), "cross", joined)?;
                if columns.len() < 2 {
                    self.error(
                        Diagnostic::error(Code::BadFeature, "a cross needs two or more columns")
                            .at(arg("columns").span, "one column"),
                    )?;
                }
                FeatureKind::Cross { columns, buckets: self.count(arg("buckets"), "buckets")? as u64 }
            }
            "history" => FeatureKind::History {
                when: self.rule_text(arg("when"), "history")?,
                length: self.count(arg("length"), "length")?,
                dim: match &arg("length").kind {
                    ExprKind::Name(n) => Some(n.clone()),
                    _ => None,
                },
            },
            "column" | "log1p" => {
                let column = self.string(arg("column"), "a side feature's column")?;
                FeatureKind::SideColumn { column, log1p: call == "log1p" }
            }
            _ => FeatureKind::SideFlag { when: self.rule_text(arg("when"), "flag")? },
        })
    }

    /// Where the model declares input `name` (for "no feature" errors).
    fn input_span(model: &ast::ModelDef, name: &str) -> Span {
        for s in &model.body {
            match &s.kind {
                ast::StmtKind::Input { name: n, .. } | ast::StmtKind::Seq { name: n, .. } if n.name == name => {
                    return n.span
                }
                ast::StmtKind::Side { seq, name: n, .. } if format!("{}.{}", seq.name, n.name) == name => {
                    return seq.span.to(n.span)
                }
                ast::StmtKind::Label { names } => {
                    if let Some(n) = names.iter().find(|n| n.name == name) {
                        return n.span;
                    }
                }
                _ => {}
            }
        }
        model.name.span
    }

    fn value(&self, d: &Dim) -> Option<i64> {
        d.eval(&|s| self.graph.dims.iter().find(|x| x.name == s).map(|x| x.value)).ok()
    }

    /// Every stored input and label of the model has its feature, and each feature fits.
    fn agree(&mut self, model: &ast::ModelDef, features: &[(Feature, Span)], labels: &[(LabelRule, Span)]) {
        let names: Vec<&str> = features.iter().map(|(f, _)| f.input.as_str()).collect();
        for input in &self.graph.inputs {
            if matches!(input.role, InputRole::Mask | InputRole::Weight) {
                continue;
            }
            let at = Self::input_span(model, &input.name);
            let Some((f, span)) = features.iter().find(|(f, _)| f.input == input.name) else {
                if self.poisoned.contains(&input.name) {
                    continue;
                }
                let mut d = Diagnostic::error(
                    Code::MissingFeature,
                    format!("{} `{}` has no feature in the feature set", noun(input.role), input.name),
                )
                .at(at, "made by no feature");
                if let Some(h) = did_you_mean(&input.name, names.iter().copied()) {
                    d = d.with_help(h);
                }
                self.error(d);
                continue;
            };
            if let Err(why) = self.fits(&f.kind, input, features) {
                self.error(
                    Diagnostic::error(
                        Code::FeatureMismatch,
                        format!("feature `{}` cannot fill {} `{}`: {why}", f.input, noun(input.role), input.name),
                    )
                    .at(*span, format!("`{}`", f.kind.call()))
                    .with_label(at, format!("declared {}", input.ty)),
                );
            }
        }
        let label_names: Vec<&str> = labels.iter().map(|(l, _)| l.name.as_str()).collect();
        for label in &self.graph.labels {
            if !labels.iter().any(|(l, _)| l.name == *label) && !self.poisoned.contains(label) {
                let mut d =
                    Diagnostic::error(Code::MissingFeature, format!("label `{label}` has no rule in the feature set"))
                        .at(Self::input_span(model, label), "made by no rule");
                if let Some(h) = did_you_mean(label, label_names.iter().copied()) {
                    d = d.with_help(h);
                }
                self.error(d);
            }
        }
    }

    /// Why a feature cannot fill an input, if it cannot.
    fn fits(&self, kind: &FeatureKind, input: &crate::ir::Input, all: &[(Feature, Span)]) -> Result<(), String> {
        let ty = &input.ty;
        let role = input.role;
        let want_role = |r: InputRole| {
            if role == r {
                Ok(())
            } else {
                Err(format!("`{}` makes a {}, not a {}", kind.call(), noun(r), noun(role)))
            }
        };
        let want_dtype = |d: DType| {
            if ty.dtype == d {
                Ok(())
            } else {
                Err(format!("`{}` makes {} values, the input holds {}", kind.call(), d.name(), ty.dtype.name()))
            }
        };
        let width = |n: i64, what: &str| match ty.shape.get(1).and_then(|d| self.value(d)) {
            Some(v) if ty.shape.len() == 2 && v == n => Ok(()),
            Some(v) if ty.shape.len() == 2 => {
                Err(format!("it makes {n} {what}, the input's axis 1 is {} = {v}", ty.shape[1]))
            }
            _ => Err(format!("it makes [B, {n}], the input is {}", crate::types::shape_str(&ty.shape))),
        };
        let scalar = || {
            if ty.shape == [Dim::sym(BATCH)] {
                Ok(())
            } else {
                Err(format!("it makes one id per row ([B]), the input is {}", crate::types::shape_str(&ty.shape)))
            }
        };
        let vocab_at_least = |n: u64, what: &str| match ty.vocab.as_ref().map(|v| (v, self.value(v))) {
            Some((d, Some(v))) if (v as u64) < n => {
                let size = if d.as_constant().is_some() { v.to_string() } else { format!("{d} = {v}") };
                Err(format!("it makes {n} {what}, more than the input's vocabulary {size}"))
            }
            _ => Ok(()),
        };
        let same_vocab = |vocab: &Option<String>| match (vocab, &ty.vocab) {
            (Some(v), Some(d)) if *d != Dim::sym(v) => {
                Err(format!("its vocabulary is sized as dim {v}, the input's vocabulary is {d}"))
            }
            _ => Ok(()),
        };
        let not_hashed = || {
            if input.hashed {
                Err(format!("`{}` writes numbered ids; the input is declared `hashed`", kind.call()))
            } else {
                Ok(())
            }
        };
        let item_hashing = || {
            all.iter().find_map(|(f, _)| match &f.kind {
                FeatureKind::Item { ids: Ids::Hashed { buckets } } => Some(*buckets),
                _ => None,
            })
        };
        let hashing_agrees = |buckets: Option<u64>| match (buckets, input.hashed) {
            (Some(b), true) => match ty.vocab.as_ref().and_then(|v| self.value(v)) {
                Some(v) if v as u64 != b => {
                    Err(format!("items are hashed into {b} buckets, the input's vocabulary is {v}"))
                }
                _ => Ok(()),
            },
            (Some(_), false) => Err("items are hashed; declare the input `vocab V hashed`".to_string()),
            (None, true) => {
                Err("the input is declared `hashed` but items are numbered; give `item(buckets: N)`".to_string())
            }
            (None, false) => Ok(()),
        };
        match kind {
            FeatureKind::Item { ids } => {
                want_role(InputRole::Feature)?;
                want_dtype(DType::Id)?;
                scalar()?;
                hashing_agrees(match ids {
                    Ids::Hashed { buckets } => Some(*buckets),
                    Ids::Vocabulary { .. } => None,
                })
            }
            FeatureKind::Categorical { ids, vocab, .. } => {
                want_role(InputRole::Feature)?;
                want_dtype(DType::Id)?;
                scalar()?;
                not_hashed()?;
                same_vocab(vocab)?;
                match ids {
                    Ids::Hashed { buckets } => vocab_at_least(*buckets, "buckets"),
                    Ids::Vocabulary { .. } => Ok(()),
                }
            }
            FeatureKind::Fields { columns } => {
                want_role(InputRole::Feature)?;
                want_dtype(DType::Id)?;
                not_hashed()?;
                width(columns.len() as i64, "ids per row (one per column)")
            }
            FeatureKind::Profile { columns } => {
                want_role(InputRole::Feature)?;
                want_dtype(DType::Id)?;
                not_hashed()?;
                width(columns.len() as i64 + 1, "ids per row (the user's, then one per column)")
            }
            FeatureKind::Numeric { .. } => {
                want_role(InputRole::Feature)?;
                want_dtype(DType::Float)?;
                if ty.shape == [Dim::sym(BATCH)] {
                    Ok(())
                } else {
                    width(1, "number per row")
                }
            }
            FeatureKind::Bucketize { boundaries, .. } => {
                want_role(InputRole::Feature)?;
                want_dtype(DType::Id)?;
                scalar()?;
                not_hashed()?;
                vocab_at_least(boundaries.len() as u64 + 1, "buckets")
            }
            FeatureKind::Cross { buckets, .. } => {
                want_role(InputRole::Feature)?;
                want_dtype(DType::Id)?;
                scalar()?;
                not_hashed()?;
                vocab_at_least(*buckets, "buckets")
            }
            FeatureKind::Tokens { max, ids, vocab, .. } => {
                want_role(InputRole::Sequence)?;
                want_dtype(DType::Id)?;
                not_hashed()?;
                same_vocab(vocab)?;
                width(*max, "tokens at most")?;
                match ids {
                    Ids::Hashed { buckets } => vocab_at_least(*buckets, "buckets"),
                    Ids::Vocabulary { .. } => Ok(()),
                }
            }
            FeatureKind::History { length, .. } => {
                want_role(InputRole::Sequence)?;
                want_dtype(DType::Id)?;
                width(*length, "entries at most")?;
                hashing_agrees(item_hashing())
            }
            FeatureKind::SideColumn { .. } | FeatureKind::SideFlag { .. } => {
                want_role(InputRole::Side)?;
                want_dtype(DType::Float)?;
                let seq = input.name.split('.').next().unwrap_or_default();
                match all.iter().find(|(f, _)| f.input == seq) {
                    Some((Feature { kind: FeatureKind::History { .. }, .. }, _)) => {}
                    _ => return Err(format!("side features follow a `history` sequence, and `{seq}` is not one")),
                }
                if ty.shape.len() == 2 {
                    Ok(())
                } else {
                    Err(format!("it makes one number per entry, the input is {}", crate::types::shape_str(&ty.shape)))
                }
            }
        }
    }
}

/// Records a hover fact at each feature's name: the statement, and the model input it fills.
pub(super) fn record_hover(set: &FeatureSet, model: Option<&Graph>, hover: &mut super::hover::HoverTable) {
    for (f, span) in set.features.iter().zip(&set.at.features) {
        let fills = model.and_then(|g| g.inputs.iter().find(|i| i.name == f.input)).map(|i| i.ty.clone());
        let info = super::hover::HoverInfo::Feature {
            statement: f.kind.statement().to_string(),
            input: f.input.clone(),
            call: f.kind.to_string(),
            fills,
        };
        hover.push(*span, info, "");
    }
}
