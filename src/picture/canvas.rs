//! The SVG canvas layout-rs draws on.
//!
//! layout-rs places the graph and calls a [`RenderBackend`] for each primitive; its own SVG
//! writer keys font classes by a `HashMap` (the output's order changes from run to run) and
//! styles text as Times. This canvas writes the same primitives deterministically, escapes every
//! text, and turns an element's `properties` (an index into [`Canvas::titles`]) into a class and a
//! `<title>` tooltip, so the pictures can be snapshot-tested and read in a browser.

use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use std::fmt::Write as _;

/// What an element's `properties` string refers to: its CSS classes, its tooltip and, for an
/// edge, the suffix of its arrowhead marker (`-added`, `-removed`, or empty).
pub(super) struct Tag {
    pub class: String,
    pub title: String,
    pub head: &'static str,
}

#[derive(Default)]
pub(super) struct Canvas {
    body: String,
    width: f64,
    height: f64,
    pub tags: Vec<Tag>,
}

/// Escapes text for SVG/HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Coordinates rounded to one decimal: stable text, no `0.30000000000000004`.
fn n(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

fn color(look: &StyleAttr) -> String {
    // `#rrggbbaa` from layout-rs; the alpha is always ff here, so keep the short form.
    let web = look.line_color.to_web_color();
    web[..7].to_string()
}

impl Canvas {
    pub(crate) fn tag(&mut self, class: impl Into<String>, title: impl Into<String>, head: &'static str) -> String {
        self.tags.push(Tag { class: class.into(), title: title.into(), head });
        (self.tags.len() - 1).to_string()
    }

    fn grow(&mut self, x: f64, y: f64) {
        self.width = self.width.max(x + 8.0);
        self.height = self.height.max(y + 8.0);
    }

    /// `<g class=..>` with its `<title>` for a tagged element, or a plain `<g>`.
    fn open(&mut self, properties: Option<String>) {
        let tag = properties.and_then(|p| p.parse::<usize>().ok()).and_then(|i| self.tags.get(i));
        match tag {
            Some(t) => {
                let _ = write!(self.body, "<g class=\"{}\"><title>{}</title>", escape(&t.class), escape(&t.title));
            }
            None => self.body.push_str("<g>"),
        }
    }

    /// The finished `<svg>` element; `style` goes into its `<style>`.
    pub fn finish(&self, style: &str) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             role=\"img\">\n<defs>\n{markers}</defs>\n<style>\n{style}</style>\n{body}</svg>\n",
            w = n(self.width),
            h = n(self.height),
            markers = MARKERS,
            body = self.body,
        )
    }
}

/// One arrowhead per edge colour: an SVG 1.1 marker cannot take its path's stroke colour.
const MARKERS: &str = concat!(
    "<marker id=\"head\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
     orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" class=\"head\"/></marker>\n",
    "<marker id=\"head-added\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
     orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" class=\"head added\"/></marker>\n",
    "<marker id=\"head-removed\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
     orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" class=\"head removed\"/></marker>\n",
);

impl RenderBackend for Canvas {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        look: &StyleAttr,
        properties: Option<String>,
        _: Option<ClipHandle>,
    ) {
        self.grow(xy.x + size.x, xy.y + size.y);
        self.open(properties);
        let _ = writeln!(
            self.body,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\"/></g>",
            n(xy.x),
            n(xy.y),
            n(size.x),
            n(size.y),
            look.rounded
        );
    }

    fn draw_line(&mut self, start: Point, stop: Point, _: &StyleAttr, properties: Option<String>) {
        self.grow(start.x.max(stop.x), start.y.max(stop.y));
        self.open(properties);
        let _ = writeln!(
            self.body,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/></g>",
            n(start.x),
            n(start.y),
            n(stop.x),
            n(stop.y)
        );
    }

    fn draw_circle(&mut self, xy: Point, size: Point, _: &StyleAttr, properties: Option<String>) {
        self.grow(xy.x + size.x / 2.0, xy.y + size.y / 2.0);
        self.open(properties);
        let _ = writeln!(
            self.body,
            "<ellipse cx=\"{}\" cy=\"{}\" rx=\"{}\" ry=\"{}\"/></g>",
            n(xy.x),
            n(xy.y),
            n(size.x / 2.0),
            n(size.y / 2.0)
        );
    }

    /// Centred lines of text; the look's font size picks the class (node text or an edge's
    /// shape label) and its line colour the diff mark.
    fn draw_text(&mut self, xy: Point, text: &str, look: &StyleAttr) {
        let lines: Vec<&str> = text.lines().collect();
        // Boxes are drawn at NODE_FONT; every other text is an edge's shape label (layout-rs gives
        // a few of those connectors its default look, black at 15px: they keep the CSS colour).
        let class = if look.font_size == super::scene::NODE_FONT { "label" } else { "shape" };
        let fill = match color(look).as_str() {
            "#000000" => String::new(),
            c => format!(" fill=\"{c}\""),
        };
        let _ = write!(self.body, "<text x=\"{}\" y=\"{}\" class=\"{class}\"{fill}>", n(xy.x), n(xy.y));
        // Centre the block vertically: the first line sits half the block above the middle.
        let first = -(lines.len() as f64 - 1.0) * 0.6 + 0.35;
        for (i, line) in lines.iter().enumerate() {
            let dy = if i == 0 { first } else { 1.2 };
            let _ = write!(self.body, "<tspan x=\"{}\" dy=\"{dy:.2}em\">{}</tspan>", n(xy.x), escape(line));
        }
        self.body.push_str("</text>\n");
    }

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        dashed: bool,
        head: (bool, bool),
        _: &StyleAttr,
        properties: Option<String>,
        _text: &str,
    ) {
        if path.len() < 2 {
            return;
        }
        for (a, b) in path {
            self.grow(a.x.max(b.x), a.y.max(b.y));
        }
        let mark = properties
            .as_deref()
            .and_then(|p| p.parse::<usize>().ok())
            .and_then(|i| self.tags.get(i))
            .map_or("", |t| t.head);
        let mut d = format!(
            "M {} {} C {} {}, {} {}, {} {}",
            n(path[0].0.x),
            n(path[0].0.y),
            n(path[0].1.x),
            n(path[0].1.y),
            n(path[1].0.x),
            n(path[1].0.y),
            n(path[1].1.x),
            n(path[1].1.y)
        );
        for (a, b) in &path[2..] {
            let _ = write!(d, " S {} {}, {} {}", n(a.x), n(a.y), n(b.x), n(b.y));
        }
        let end = if head.1 { format!(" marker-end=\"url(#head{mark})\"") } else { String::new() };
        let start = if head.0 { format!(" marker-start=\"url(#head{mark})\"") } else { String::new() };
        let dash = if dashed { " stroke-dasharray=\"5,4\"" } else { "" };
        self.open(properties);
        let _ = writeln!(self.body, "<path d=\"{d}\" fill=\"none\"{dash}{start}{end}/></g>");
    }

    fn create_clip(&mut self, _: Point, _: Point, _: usize) -> ClipHandle {
        // Only records with rounded corners ask for clips; the pictures draw no records.
        0
    }
}
