//! Renderings of a graph: a serialisable view, and minijinja templates over it.
//!
//! Architecture invariant: templates see only [`GraphView`] (plain strings and numbers, sorted
//! and formatted here), never IR types, so output is deterministic and the IR can change
//! without breaking user templates that only read the view.

use crate::ir::{Attr, Graph, InputRole};
use crate::types::{format_float, Range, TensorType};
use minijinja::Environment;
use serde::Serialize;
use std::collections::BTreeMap;

/// Built-in templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("graph.txt", include_str!("../templates/graph.txt.j2")),
    ("summary.md", include_str!("../templates/summary.md.j2")),
    ("graph.dot", include_str!("../templates/graph.dot.j2")),
    ("diff.txt", include_str!("../templates/diff.txt.j2")),
    ("diff.md", include_str!("../templates/diff.md.j2")),
    ("git_diff.txt", include_str!("../templates/git_diff.txt.j2")),
    ("git_diff.md", include_str!("../templates/git_diff.md.j2")),
    ("pytorch.py", include_str!("../templates/pytorch.py.j2")),
    ("page.html", include_str!("../templates/page.html.j2")),
    ("legend.html", include_str!("../templates/legend.html.j2")),
    ("architecture.html", include_str!("../templates/architecture.html.j2")),
    ("diff.html", include_str!("../templates/diff.html.j2")),
    ("report.html", include_str!("../templates/report.html.j2")),
];

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct DimView {
    pub name: String,
    pub value: i64,
    pub derived: Option<String>,
    pub overridden: bool,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ParamView {
    pub name: String,
    pub value: String,
    pub overridden: bool,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct InputView {
    pub name: String,
    pub role: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub vocab: Option<String>,
    /// `vocab V hashed`: raw ids hashed into the vocabulary's buckets.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hashed: bool,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct TensorParamView {
    pub name: String,
    pub shape: String,
    pub count: i64,
    pub state: bool,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct InstanceView {
    pub name: String,
    pub op: String,
    /// `k=v` pairs sorted by key.
    pub attrs: Vec<String>,
    pub params: Vec<TensorParamView>,
    pub param_count: i64,
    pub state_count: i64,
    /// Nodes applying this instance, in graph order.
    pub applied_by: Vec<String>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct OperandView {
    pub port: String,
    pub source: String,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct NodeView {
    pub name: String,
    pub op: String,
    pub attrs: Vec<String>,
    pub inputs: Vec<OperandView>,
    /// Input types in operand order.
    pub input_types: Vec<String>,
    #[serde(rename = "type")]
    pub ty: String,
    /// Value range when bounded (`[0.0, 1.0]`), else empty.
    pub range: String,
    pub distribution: bool,
    pub instance: Option<String>,
    /// True when an earlier node already applied the same instance.
    pub shared: bool,
    /// Parameters introduced by this node (0 for functions and shared applications).
    pub params: i64,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct OutputView {
    pub name: String,
    pub source: String,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct LossView {
    pub name: String,
    pub op: String,
    pub weight: String,
    pub node: String,
    pub label: Option<String>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Totals {
    pub nodes: usize,
    pub instances: usize,
    pub params: i64,
    pub state: i64,
}

/// A feature set as templates show it: its facts as named lines (sources, split, dims, labels,
/// features; what `recspec diff` compares) and a row per feature for the model card.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct FeaturesView {
    pub name: String,
    /// Every statement.
    pub entries: Vec<crate::features::Entry>,
    /// The statements that are not features: sources, split, dims, labels.
    pub setup: Vec<String>,
    pub features: Vec<FeatureRow>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct FeatureRow {
    pub input: String,
    pub definition: String,
    /// Fitted on the training split (a vocabulary or statistics).
    pub fitted: bool,
}

impl FeaturesView {
    fn new(f: &crate::features::FeatureSet) -> FeaturesView {
        let entries = f.entries();
        let features: Vec<String> = f.features.iter().map(|x| format!("{} {}", x.kind.statement(), x.input)).collect();
        FeaturesView {
            name: f.name.clone(),
            setup: entries.iter().filter(|e| !features.contains(&e.key)).map(|e| e.line.clone()).collect(),
            entries,
            features: f
                .features
                .iter()
                .map(|x| FeatureRow { input: x.input.clone(), definition: x.kind.to_string(), fitted: x.kind.fitted() })
                .collect(),
        }
    }
}

/// The template-facing view of a compiled graph.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct GraphView {
    pub model: String,
    pub dims: Vec<DimView>,
    pub params: Vec<ParamView>,
    pub inputs: Vec<InputView>,
    pub labels: Vec<String>,
    pub weights: Vec<String>,
    pub instances: Vec<InstanceView>,
    pub nodes: Vec<NodeView>,
    pub outputs: Vec<OutputView>,
    pub losses: Vec<LossView>,
    pub totals: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<FeaturesView>,
}

fn attrs_view(attrs: &BTreeMap<String, Attr>) -> Vec<String> {
    attrs.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn range_view(ty: &TensorType) -> String {
    if ty.range == Range::ANY || ty.dtype != crate::types::DType::Float {
        String::new()
    } else {
        ty.range.to_string()
    }
}

impl GraphView {
    pub fn new(g: &Graph) -> GraphView {
        let type_of = |source: &str| -> String {
            g.node(source)
                .map(|n| n.ty.to_string())
                .or_else(|| g.inputs.iter().find(|i| i.name == source).map(|i| i.ty.to_string()))
                .unwrap_or_default()
        };
        let mut seen_instances = std::collections::HashSet::new();
        let nodes: Vec<NodeView> = g
            .nodes
            .iter()
            .map(|n| {
                let first = n.instance.as_ref().is_some_and(|i| seen_instances.insert(i.clone()));
                let params = match (&n.instance, first) {
                    (Some(i), true) => g.instance(i).map_or(0, |i| i.param_count()),
                    _ => 0,
                };
                NodeView {
                    name: n.name.clone(),
                    op: n.op.name().to_string(),
                    attrs: attrs_view(&n.attrs),
                    inputs: n
                        .operands
                        .iter()
                        .map(|o| OperandView { port: o.port.clone(), source: o.source.clone() })
                        .collect(),
                    input_types: n.operands.iter().map(|o| type_of(&o.source)).collect(),
                    ty: n.ty.to_string(),
                    range: range_view(&n.ty),
                    distribution: n.ty.distribution,
                    instance: n.instance.clone(),
                    shared: n.instance.is_some() && !first,
                    params,
                }
            })
            .collect();
        let instances = g
            .instances
            .iter()
            .map(|i| InstanceView {
                name: i.name.clone(),
                op: i.op.name().to_string(),
                attrs: attrs_view(&i.attrs),
                params: i
                    .params
                    .iter()
                    .map(|p| TensorParamView {
                        name: p.name.clone(),
                        shape: crate::types::shape_str(&p.shape),
                        count: p.count,
                        state: p.state,
                    })
                    .collect(),
                param_count: i.param_count(),
                state_count: i.params.iter().filter(|p| p.state).map(|p| p.count).sum(),
                applied_by: g
                    .nodes
                    .iter()
                    .filter(|n| n.instance.as_deref() == Some(i.name.as_str()))
                    .map(|n| n.name.clone())
                    .collect(),
            })
            .collect();
        let losses = g
            .losses
            .iter()
            .map(|l| {
                let node = g.node(&l.node);
                let label = node.and_then(|n| n.attrs.get("label")).map(|a| a.to_string());
                LossView {
                    name: l.name.clone(),
                    op: node.map_or(String::new(), |n| n.op.name().to_string()),
                    weight: format_float(l.weight),
                    node: l.node.clone(),
                    label,
                }
            })
            .collect();
        GraphView {
            model: g.model.clone(),
            dims: g
                .dims
                .iter()
                .map(|d| DimView {
                    name: d.name.clone(),
                    value: d.value,
                    derived: d.derived.as_ref().map(|x| x.to_string()),
                    overridden: d.overridden,
                })
                .collect(),
            params: g
                .params
                .iter()
                .map(|p| ParamView { name: p.name.clone(), value: p.value.to_string(), overridden: p.overridden })
                .collect(),
            inputs: g
                .inputs
                .iter()
                .map(|i| InputView {
                    name: i.name.clone(),
                    role: i.role.name().to_string(),
                    ty: i.ty.to_string(),
                    vocab: i.ty.vocab.as_ref().map(|v| v.to_string()),
                    hashed: i.hashed,
                })
                .collect(),
            labels: g.labels.clone(),
            weights: g.weights.clone(),
            instances,
            nodes,
            outputs: g.outputs.iter().map(|o| OutputView { name: o.name.clone(), source: o.source.clone() }).collect(),
            losses,
            totals: Totals {
                nodes: g.nodes.len(),
                instances: g.instances.len(),
                params: g.total_params(),
                state: g.total_state(),
            },
            features: g.features.as_ref().map(FeaturesView::new),
        }
    }

    /// Sequence inputs with their masks and side features, for the model card.
    pub fn sequences(&self) -> Vec<&InputView> {
        self.inputs.iter().filter(|i| i.role == InputRole::Sequence.name()).collect()
    }
}

/// A template environment with the built-in templates and the helpers they use.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    for (name, text) in TEMPLATES {
        // Built-in templates are compiled into the binary and tested; a failure is a bug.
        env.add_template(name, text).expect("built-in template parses");
    }
    env.add_filter("thousands", |v: i64| thousands(v));
    env.add_filter("signed", |v: i64| if v > 0 { format!("+{}", thousands(v)) } else { thousands(v) });
    env.add_filter("pad", |s: String, width: usize| format!("{s:<width$}"));
    env
}

/// `1234567` → `1,234,567`.
pub fn thousands(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A rendering failed: a template did not load or render, or JSON did not serialise.
#[derive(Debug)]
pub enum RenderError {
    /// A built-in template (`graph.txt`...) or a user template file.
    Template {
        name: String,
        source: minijinja::Error,
    },
    /// A user template file could not be read.
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    Json(serde_json::Error),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Template { name, source } => write!(f, "template {name}: {source}"),
            RenderError::Io { path, source } => write!(f, "cannot read template {}: {source}", path.display()),
            RenderError::Json(e) => write!(f, "cannot write JSON: {e}"),
        }
    }
}

impl std::error::Error for RenderError {}

/// Renders a built-in template by name.
pub(crate) fn render_builtin(name: &str, ctx: impl Serialize) -> Result<String, RenderError> {
    let env = environment();
    let template_error = |source| RenderError::Template { name: name.to_string(), source };
    let t = env.get_template(name).map_err(template_error)?;
    let mut out = t.render(ctx).map_err(template_error)?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Renders a user template file with the same helpers.
pub fn render_user(path: &std::path::Path, ctx: impl Serialize) -> Result<String, RenderError> {
    let text = std::fs::read_to_string(path).map_err(|source| RenderError::Io { path: path.to_path_buf(), source })?;
    let name = path.display().to_string();
    let template_error = |source| RenderError::Template { name: name.clone(), source };
    let mut env = environment();
    env.add_template_owned(name.clone(), text).map_err(template_error)?;
    let t = env.get_template(&name).map_err(template_error)?;
    t.render(ctx).map_err(template_error)
}

/// Memory figures for the model card, formatted by the caller (rendering knows no lowering).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct MemoryView {
    pub batch: usize,
    pub optimizer: String,
    /// `(what, bytes)` rows, formatted.
    pub rows: Vec<(String, String)>,
    /// The largest components, formatted (`` `items` parameters 3.1 MiB ``).
    pub largest: Vec<String>,
}

/// Operation counts for the model card, formatted by the caller.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ComputeView {
    pub batch: usize,
    /// `(what, per example, per batch)` rows, formatted.
    pub rows: Vec<(String, String, String)>,
    /// The steps that cost most in training, formatted (`` `deep` 1.2 GFLOP ``).
    pub largest: Vec<String>,
}

/// The Markdown model card; with `memory` and `compute`, it has memory and compute sections.
pub fn summary(g: &Graph, memory: Option<&MemoryView>, compute: Option<&ComputeView>) -> Result<String, RenderError> {
    let view = GraphView::new(g);
    let seqs: Vec<InputView> = view.sequences().into_iter().cloned().collect();
    render_builtin(
        "summary.md",
        minijinja::context! { g => view, sequences => seqs, memory => memory, compute => compute },
    )
}

/// What `compile --emit` can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    Graph,
    Json,
    Dot,
    Summary,
}

/// Renders a graph in one of the built-in formats.
pub fn emit(g: &Graph, what: Emit) -> Result<String, RenderError> {
    let view = GraphView::new(g);
    match what {
        Emit::Json => serde_json::to_string_pretty(&view).map(|s| s + "\n").map_err(RenderError::Json),
        Emit::Graph => render_builtin("graph.txt", minijinja::context! { g => view }),
        Emit::Dot => render_builtin("graph.dot", minijinja::context! { g => view }),
        Emit::Summary => summary(g, None, None),
    }
}
