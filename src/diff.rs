//! Structural diff of two compiled graphs, matched by names: what a reviewer needs to see.

use crate::ir::Graph;
use crate::render::{GraphView, InstanceView, NodeView};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One difference in one section.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Change {
    pub kind: ChangeKind,
    pub name: String,
    /// What it is (added/removed) or what changed (`type float[B, D] -> float[B, E]`).
    pub details: Vec<String>,
    /// Change in trainable parameters attributed to this entry.
    pub param_delta: i64,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Section {
    pub title: String,
    pub changes: Vec<Change>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct DiffReport {
    pub old_model: String,
    pub new_model: String,
    pub sections: Vec<Section>,
    pub old_params: i64,
    pub new_params: i64,
    pub param_delta: i64,
    pub old_nodes: usize,
    pub new_nodes: usize,
    /// Number of changes over all sections.
    pub count: usize,
    pub same: bool,
}

/// Compares entries keyed by name; `describe` summarises one entry, `compare` lists changes.
fn section<T>(
    title: &str,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
    describe: impl Fn(&T) -> String,
    compare: impl Fn(&T, &T) -> Vec<String>,
    params: impl Fn(&T) -> i64,
) -> Section {
    let old_map: BTreeMap<String, &T> = old.iter().map(|x| (key(x), x)).collect();
    let new_map: BTreeMap<String, &T> = new.iter().map(|x| (key(x), x)).collect();
    let mut changes = vec![];
    // Removed and changed in the old order, then added in the new order: reads like the specs.
    for x in old {
        let k = key(x);
        match new_map.get(&k) {
            None => changes.push(Change {
                kind: ChangeKind::Removed,
                name: k,
                details: vec![describe(x)],
                param_delta: -params(x),
            }),
            Some(y) => {
                let details = compare(x, y);
                let delta = params(y) - params(x);
                if !details.is_empty() || delta != 0 {
                    changes.push(Change { kind: ChangeKind::Changed, name: k, details, param_delta: delta });
                }
            }
        }
    }
    for y in new {
        let k = key(y);
        if !old_map.contains_key(&k) {
            changes.push(Change {
                kind: ChangeKind::Added,
                name: k,
                details: vec![describe(y)],
                param_delta: params(y),
            });
        }
    }
    Section { title: title.to_string(), changes }
}

fn field(what: &str, a: &str, b: &str) -> Option<String> {
    (a != b).then(|| format!("{what} {a} -> {b}"))
}

fn list_changes(what: &str, a: &[String], b: &[String]) -> Vec<String> {
    let split = |s: &String| {
        s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((s.clone(), String::new()))
    };
    let am: BTreeMap<String, String> = a.iter().map(split).collect();
    let bm: BTreeMap<String, String> = b.iter().map(split).collect();
    let mut out = vec![];
    for (k, v) in &am {
        match bm.get(k) {
            None => out.push(format!("{what} {k}={v} removed")),
            Some(w) if w != v => out.push(format!("{what} {k}: {v} -> {w}")),
            _ => {}
        }
    }
    for (k, w) in &bm {
        if !am.contains_key(k) {
            out.push(format!("{what} {k}={w} added"));
        }
    }
    out
}

fn node_inputs(n: &NodeView) -> String {
    n.inputs.iter().map(|o| format!("{}={}", o.port, o.source)).collect::<Vec<_>>().join(", ")
}

/// What changed in a weight-holding instance kept under the same name.
fn instance_changes(x: &InstanceView, y: &InstanceView) -> Vec<String> {
    let mut v: Vec<String> = field("kind", &x.op, &y.op).into_iter().collect();
    v.extend(list_changes("config", &x.attrs, &y.attrs));
    let shapes = |i: &InstanceView| i.params.iter().map(|p| format!("{}={}", p.name, p.shape)).collect::<Vec<_>>();
    v.extend(list_changes("weight", &shapes(x), &shapes(y)));
    v
}

/// What changed in a node kept under the same name.
fn node_changes(x: &NodeView, y: &NodeView) -> Vec<String> {
    let mut v: Vec<String> = field("op", &x.op, &y.op).into_iter().collect();
    v.extend(field("type", &x.ty, &y.ty));
    v.extend(field("inputs", &node_inputs(x), &node_inputs(y)));
    v.extend(list_changes("attr", &x.attrs, &y.attrs));
    v.extend(field("weights", x.instance.as_deref().unwrap_or("-"), y.instance.as_deref().unwrap_or("-")));
    let range = |n: &NodeView| if n.range.is_empty() { "unbounded".to_string() } else { n.range.clone() };
    v.extend(field("range", &range(x), &range(y)));
    v
}

/// Structural differences from `old` to `new`.
pub fn diff(old: &Graph, new: &Graph) -> DiffReport {
    let (a, b) = (GraphView::new(old), GraphView::new(new));
    let mut sections = vec![];
    sections.push(section(
        "dims",
        &a.dims,
        &b.dims,
        |d| d.name.clone(),
        |d| format!("{}{}", d.derived.as_ref().map(|x| format!("{x} = ")).unwrap_or_default(), d.value),
        |x, y| {
            let mut v: Vec<String> = field("value", &x.value.to_string(), &y.value.to_string()).into_iter().collect();
            v.extend(field(
                "definition",
                x.derived.as_deref().unwrap_or("free"),
                y.derived.as_deref().unwrap_or("free"),
            ));
            v
        },
        |_| 0,
    ));
    sections.push(section(
        "params",
        &a.params,
        &b.params,
        |p| p.name.clone(),
        |p| p.value.clone(),
        |x, y| field("value", &x.value, &y.value).into_iter().collect(),
        |_| 0,
    ));
    sections.push(section(
        "inputs",
        &a.inputs,
        &b.inputs,
        |i| i.name.clone(),
        |i| format!("{} {}", i.role, i.ty),
        |x, y| {
            let mut v: Vec<String> = field("type", &x.ty, &y.ty).into_iter().collect();
            v.extend(field("role", &x.role, &y.role));
            v.extend(field("vocab", x.vocab.as_deref().unwrap_or("-"), y.vocab.as_deref().unwrap_or("-")));
            v
        },
        |_| 0,
    ));
    let streams = |v: &GraphView| -> Vec<String> {
        v.labels.iter().map(|l| format!("label {l}")).chain(v.weights.iter().map(|w| format!("weight {w}"))).collect()
    };
    sections.push(section(
        "labels",
        &streams(&a),
        &streams(&b),
        |s| s.clone(),
        |_| String::new(),
        |_, _| vec![],
        |_| 0,
    ));
    let entries = |v: &GraphView| v.features.as_ref().map(|f| f.entries.clone()).unwrap_or_default();
    sections.push(section(
        "features",
        &entries(&a),
        &entries(&b),
        |e| e.key.trim_end().to_string(),
        |e| e.value.clone(),
        |x, y| field("definition", &x.value, &y.value).into_iter().collect(),
        |_| 0,
    ));
    sections.push(section(
        "instances",
        &a.instances,
        &b.instances,
        |i| i.name.clone(),
        |i| format!("{}({})", i.op, i.attrs.join(", ")),
        instance_changes,
        |i| i.param_count,
    ));
    sections.push(section(
        "nodes",
        &a.nodes,
        &b.nodes,
        |n| n.name.clone(),
        |n| format!("{}({}) -> {}", n.op, node_inputs(n), n.ty),
        node_changes,
        |n| n.params,
    ));
    sections.push(section(
        "outputs",
        &a.outputs,
        &b.outputs,
        |o| o.name.clone(),
        |o| format!("from {}", o.source),
        |x, y| field("source", &x.source, &y.source).into_iter().collect(),
        |_| 0,
    ));
    sections.push(section(
        "losses",
        &a.losses,
        &b.losses,
        |l| l.name.clone(),
        |l| format!("{} * {}{}", l.weight, l.op, l.label.as_ref().map(|x| format!(" on {x}")).unwrap_or_default()),
        |x, y| {
            let mut v: Vec<String> = field("weight", &x.weight, &y.weight).into_iter().collect();
            v.extend(field("term", &x.op, &y.op));
            v.extend(field("label", x.label.as_deref().unwrap_or("-"), y.label.as_deref().unwrap_or("-")));
            v
        },
        |_| 0,
    ));
    sections.retain(|s| !s.changes.is_empty());
    let count = sections.iter().map(|s| s.changes.len()).sum();
    DiffReport {
        old_model: a.model.clone(),
        new_model: b.model.clone(),
        sections,
        old_params: a.totals.params,
        new_params: b.totals.params,
        param_delta: b.totals.params - a.totals.params,
        old_nodes: a.totals.nodes,
        new_nodes: b.totals.nodes,
        count,
        same: count == 0,
    }
}

/// Renders a diff as plain text (`markdown = false`) or as a pull-request comment.
pub fn render(report: &DiffReport, markdown: bool) -> Result<String, crate::render::RenderError> {
    let name = if markdown { "diff.md" } else { "diff.txt" };
    crate::render::render_builtin(name, minijinja::context! { d => report })
}
