//! What the architecture picture shows, before layout: one item per input, node, loss and
//! output, one edge per (source, target) pair labelled with the value's shape; and the overlay
//! of two scenes for a diff, each item and edge marked added, removed, changed or the same.

use super::canvas::Canvas;
use crate::diff::ChangeKind;
use crate::ir::{Graph, InputRole};
use crate::types::{format_float, TensorType};
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;
use std::collections::BTreeMap;

/// Font sizes: item text, and the shape labels on edges (the canvas tells them apart by size).
pub(super) const NODE_FONT: usize = 12;
const EDGE_FONT: usize = 10;

/// What an item is; each kind is drawn in its own colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// A plain input, a side feature or a weight stream.
    Input,
    /// A feedback sequence (`seq`).
    Sequence,
    /// A sequence's validity mask.
    Mask,
    /// A node applying a weight-owning component.
    Component,
    /// A node computed by a function (no weights).
    Function,
    Loss,
    Output,
}

impl ItemKind {
    fn class(self) -> &'static str {
        match self {
            ItemKind::Input => "input",
            ItemKind::Sequence => "sequence",
            ItemKind::Mask => "mask",
            ItemKind::Component => "component",
            ItemKind::Function => "function",
            ItemKind::Loss => "loss",
            ItemKind::Output => "output",
        }
    }
}

/// How an item or edge of an overlay differs; `None` in a single graph's picture.
pub type Mark = Option<ChangeKind>;

/// ` added`, ` removed`, ` changed`: the CSS class a mark adds.
fn mark_class(mark: Mark) -> String {
    mark.map_or(String::new(), |m| format!(" {}", change_word(m)))
}

#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Unique in the scene: the input's or node's name, `loss NAME`, `output NAME`.
    pub key: String,
    pub kind: ItemKind,
    /// The lines drawn in the box.
    pub label: String,
    /// The tooltip: everything a reviewer compares (op, attributes, type, instance).
    pub title: String,
    pub mark: Mark,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// The value's shape, symbolic then evaluated (`float[B, T, D]` / `= [B, 30, 64]`).
    pub label: String,
    pub mark: Mark,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scene {
    pub items: Vec<Item>,
    pub edges: Vec<Edge>,
}

/// `float[B, T, D]`, and below it the shape with every dim the graph knows evaluated, when that
/// differs (`= [B, 30, 64]`); the batch stays `B`.
fn shape_label(g: &Graph, ty: &TensorType) -> String {
    let symbolic = ty.to_string();
    let value = |name: &str| if name == crate::dim::BATCH { None } else { g.dim_value(name) };
    let evaluated: Vec<String> =
        ty.shape.iter().map(|d| d.eval(&value).map_or_else(|_| d.to_string(), |v| v.to_string())).collect();
    let evaluated = format!("[{}]", evaluated.join(", "));
    if symbolic.ends_with(&evaluated) {
        symbolic
    } else {
        format!("{symbolic}\n= {evaluated}")
    }
}

impl Scene {
    /// The picture of one graph.
    pub fn of(g: &Graph) -> Scene {
        let mut items = vec![];
        let mut types: BTreeMap<&str, &TensorType> = BTreeMap::new();
        for i in &g.inputs {
            let kind = match i.role {
                InputRole::Sequence => ItemKind::Sequence,
                InputRole::Mask => ItemKind::Mask,
                InputRole::Feature | InputRole::Side | InputRole::Weight => ItemKind::Input,
            };
            let vocab = i.ty.vocab.as_ref().map_or(String::new(), |v| format!(" vocab {v}"));
            // The feature that fills the input is part of what a reviewer compares: a changed
            // feature marks its input changed in a diff's overlay.
            let made = g
                .features
                .as_ref()
                .and_then(|set| set.feature(&i.name))
                .map_or(String::new(), |f| format!("\n{} {} = {}", f.kind.statement(), f.input, f.kind));
            items.push(Item {
                key: i.name.clone(),
                kind,
                label: format!("{}\n{}", i.name, i.role.name()),
                title: format!("input {}: {}{vocab} ({}){made}", i.name, i.ty, i.role.name()),
                mark: None,
            });
            types.insert(&i.name, &i.ty);
        }
        let mut seen_instances = std::collections::BTreeSet::new();
        for n in &g.nodes {
            let op = n.op.name();
            let (kind, second, shared) = match &n.instance {
                Some(inst) if seen_instances.insert(inst.as_str()) => {
                    (ItemKind::Component, format!("{op} @{inst}"), false)
                }
                Some(inst) => (ItemKind::Component, format!("{op} @{inst} (shared)"), true),
                None => (ItemKind::Function, op.to_string(), false),
            };
            let operands: Vec<String> = n.operands.iter().map(|o| format!("{}={}", o.port, o.source)).collect();
            let attrs: Vec<String> = n.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let attrs = if attrs.is_empty() { String::new() } else { format!(" [{}]", attrs.join(", ")) };
            let params = match n.instance.as_deref().and_then(|i| g.instance(i)) {
                Some(i) if shared => format!("; shares the weights of {}", i.name),
                Some(i) => format!("; {} parameters", crate::render::thousands(i.param_count())),
                None => String::new(),
            };
            items.push(Item {
                key: n.name.clone(),
                kind,
                label: format!("{}\n{second}", n.name),
                title: format!("{} = {op}({}){attrs} -> {}{params}", n.name, operands.join(", "), n.ty),
                mark: None,
            });
            types.insert(&n.name, &n.ty);
        }
        for l in &g.losses {
            let op = g.node(&l.node).map_or("", |n| n.op.name());
            items.push(Item {
                key: format!("loss {}", l.name),
                kind: ItemKind::Loss,
                label: format!("loss {}\n{op} ×{}", l.name, format_float(l.weight)),
                title: format!("loss {} = {} weighted {}", l.name, l.node, format_float(l.weight)),
                mark: None,
            });
        }
        for o in &g.outputs {
            items.push(Item {
                key: format!("output {}", o.name),
                kind: ItemKind::Output,
                label: format!("output {}", o.name),
                title: format!("output {} = {}", o.name, o.source),
                mark: None,
            });
        }
        // One edge per (source, target): a node reading a value twice gets one arrow.
        let mut pairs: Vec<(String, String)> = vec![];
        for n in &g.nodes {
            for o in &n.operands {
                pairs.push((o.source.clone(), n.name.clone()));
            }
        }
        pairs.extend(g.losses.iter().map(|l| (l.node.clone(), format!("loss {}", l.name))));
        pairs.extend(g.outputs.iter().map(|o| (o.source.clone(), format!("output {}", o.name))));
        let mut seen = std::collections::BTreeSet::new();
        let edges = pairs
            .into_iter()
            .filter(|p| seen.insert(p.clone()))
            .map(|(from, to)| {
                let label = types.get(from.as_str()).map_or(String::new(), |t| shape_label(g, t));
                Edge { from, to, label, mark: None }
            })
            .collect();
        Scene { items, edges }
    }

    /// The new graph's scene with the old one's removed items and edges added back, everything
    /// marked by how it differs between the two.
    pub fn overlay(old: &Scene, new: &Scene) -> Scene {
        let old_items: BTreeMap<&str, &Item> = old.items.iter().map(|i| (i.key.as_str(), i)).collect();
        let new_keys: std::collections::BTreeSet<&str> = new.items.iter().map(|i| i.key.as_str()).collect();
        let mut items: Vec<Item> = new
            .items
            .iter()
            .map(|i| {
                let mark = match old_items.get(i.key.as_str()) {
                    None => Some(ChangeKind::Added),
                    Some(o) if o.label != i.label || o.title != i.title || o.kind != i.kind => {
                        Some(ChangeKind::Changed)
                    }
                    Some(_) => None,
                };
                Item { mark, ..i.clone() }
            })
            .collect();
        items.extend(
            old.items
                .iter()
                .filter(|i| !new_keys.contains(i.key.as_str()))
                .map(|i| Item { mark: Some(ChangeKind::Removed), ..i.clone() }),
        );
        let key = |e: &Edge| (e.from.clone(), e.to.clone());
        let old_edges: BTreeMap<(String, String), &Edge> = old.edges.iter().map(|e| (key(e), e)).collect();
        let new_edges: std::collections::BTreeSet<(String, String)> = new.edges.iter().map(key).collect();
        let mut edges: Vec<Edge> = new
            .edges
            .iter()
            .map(|e| {
                let mark = match old_edges.get(&key(e)) {
                    None => Some(ChangeKind::Added),
                    Some(o) if o.label != e.label => Some(ChangeKind::Changed),
                    Some(_) => None,
                };
                Edge { mark, ..e.clone() }
            })
            .collect();
        edges.extend(
            old.edges
                .iter()
                .filter(|e| !new_edges.contains(&key(e)))
                .map(|e| Edge { mark: Some(ChangeKind::Removed), ..e.clone() }),
        );
        Scene { items, edges }
    }

    /// Lays the scene out top to bottom and draws it as one `<svg>` element.
    pub fn svg(&self) -> Result<String, super::PictureError> {
        let mut canvas = Canvas::default();
        let mut vg = VisualGraph::new(Orientation::TopToBottom);
        let mut handles = BTreeMap::new();
        for item in &self.items {
            let lines = item.label.lines().count().max(1) as f64;
            let chars = item.label.lines().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
            let font = NODE_FONT as f64;
            let size = Point::new(chars * font * 0.62 + 18.0, lines * font * 1.2 + 12.0);
            let look = StyleAttr::new(Color::fast("#1f2937"), 1, None, 6, NODE_FONT);
            let class = format!("item {}{}", item.kind.class(), mark_class(item.mark));
            let title = match item.mark {
                Some(m) => format!("{}: {}", change_word(m), item.title),
                None => item.title.clone(),
            };
            let tag = canvas.tag(class, title, "");
            let element = Element::create_with_properties(
                ShapeKind::new_box(&item.label),
                look,
                Orientation::TopToBottom,
                size,
                tag,
            );
            handles.insert(item.key.as_str(), vg.add_node(element));
        }
        for e in &self.edges {
            let (Some(&from), Some(&to)) = (handles.get(e.from.as_str()), handles.get(e.to.as_str())) else {
                return Err(super::PictureError::Dangling { from: e.from.clone(), to: e.to.clone() });
            };
            let text_colour = match e.mark {
                None => "#4b5563",
                Some(ChangeKind::Added) => "#15803d",
                Some(ChangeKind::Removed) => "#b91c1c",
                Some(ChangeKind::Changed) => "#b45309",
            };
            let look = StyleAttr::new(Color::fast(text_colour), 1, None, 0, EDGE_FONT);
            let class = format!("edge{}", mark_class(e.mark));
            let head = match e.mark {
                Some(ChangeKind::Added) => "-added",
                Some(ChangeKind::Removed) => "-removed",
                Some(ChangeKind::Changed) | None => "",
            };
            let tag = canvas.tag(class, format!("{} -> {}: {}", e.from, e.to, e.label.replace('\n', " ")), head);
            let dashed = e.mark == Some(ChangeKind::Removed);
            let style = if dashed {
                layout::core::style::LineStyleKind::Dashed
            } else {
                layout::core::style::LineStyleKind::Normal
            };
            let arrow = Arrow::with_properties(
                LineEndKind::None,
                LineEndKind::Arrow,
                style,
                &e.label,
                &look,
                tag,
                &None,
                &None,
            );
            vg.add_edge(arrow, from, to);
        }
        // layout-rs asserts its invariants; a scene it cannot place is reported, not a crash.
        let placed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            vg.do_it(false, false, false, &mut canvas);
            canvas
        }));
        let canvas = placed.map_err(|_| super::PictureError::Layout)?;
        Ok(canvas.finish(STYLE))
    }
}

fn change_word(m: ChangeKind) -> &'static str {
    match m {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Changed => "changed",
    }
}

/// The picture's colours, inside the SVG so the file stands alone.
const STYLE: &str = "\
svg { font-family: 'DejaVu Sans', 'Helvetica', 'Arial', sans-serif; background: #ffffff; }
.item rect { stroke: #374151; stroke-width: 1; fill: #ffffff; }
.item.input rect { fill: #f1f5f9; }
.item.mask rect { fill: #f8fafc; stroke: #94a3b8; }
.item.sequence rect { fill: #dbeafe; stroke: #1d4ed8; stroke-width: 2; }
.item.component rect { fill: #fef9c3; }
.item.function rect { fill: #ffffff; }
.item.loss rect { fill: #fee2e2; stroke: #b91c1c; stroke-width: 2; }
.item.output rect { fill: #dcfce7; stroke: #15803d; stroke-width: 2; }
.item.added rect { stroke: #16a34a; stroke-width: 4; }
.item.removed rect { stroke: #dc2626; stroke-width: 3; stroke-dasharray: 6 4; opacity: 0.75; }
.item.changed rect { stroke: #d97706; stroke-width: 4; }
.edge path { stroke: #6b7280; stroke-width: 1.2; }
.edge.added path { stroke: #16a34a; stroke-width: 2.5; }
.edge.removed path { stroke: #dc2626; stroke-width: 2; }
.edge.changed path { stroke: #d97706; stroke-width: 2.5; }
.head { fill: #6b7280; }
.head.added { fill: #16a34a; }
.head.removed { fill: #dc2626; }
text.label { font-size: 12px; text-anchor: middle; }
text.shape { font-size: 10px; text-anchor: middle; font-family: 'DejaVu Sans Mono', monospace; fill: #4b5563; paint-order: stroke; stroke: #ffffff; stroke-width: 3px; }
";
