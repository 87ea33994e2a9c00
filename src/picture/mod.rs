//! Pictures without external tools: the architecture of a graph and the overlay of two graphs
//! as SVG, training curves as SVG plots, and the self-contained HTML pages that hold them.
//!
//! layout-rs places the graph (ranks, crossing reduction, Brandes–Köpf coordinates) and
//! [`canvas`] writes what it draws; plotters draws the curves ([`plot`]). Everything here is
//! deterministic: the same graph gives the same bytes, so the SVG can be snapshot-tested.
//!
//! Architecture invariant: pictures are made from the IR ([`Graph`]) and the diff's marks only;
//! nothing here lowers, trains or reads files (the pages' data comes from `app`).

mod canvas;
pub mod plot;
mod scene;

pub use canvas::escape;
pub use scene::{Edge, Item, ItemKind, Mark, Scene};

use crate::ir::Graph;
use std::fmt;

#[derive(Debug)]
pub enum PictureError {
    /// layout-rs could not place the graph (one of its internal assertions failed).
    Layout,
    /// An edge names an item the scene does not have: a bug in building the scene.
    Dangling { from: String, to: String },
    /// A plot could not be drawn.
    Plot(String),
}

impl fmt::Display for PictureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PictureError::Layout => write!(f, "internal error: the graph layout failed"),
            PictureError::Dangling { from, to } => {
                write!(f, "internal error: the picture has an edge {from} -> {to} to an unknown item")
            }
            PictureError::Plot(m) => write!(f, "cannot draw the plot: {m}"),
        }
    }
}

impl std::error::Error for PictureError {}

/// The architecture of `g` as one `<svg>` element.
pub fn architecture(g: &Graph) -> Result<String, PictureError> {
    Scene::of(g).svg()
}

/// `new`'s architecture with `old`'s removed parts drawn back in, every part coloured by how it
/// changed.
pub fn overlay(old: &Graph, new: &Graph) -> Result<String, PictureError> {
    Scene::overlay(&Scene::of(old), &Scene::of(new)).svg()
}

/// Markdown (the model card) as HTML, for the pages.
pub(crate) fn markdown_html(md: &str) -> String {
    let mut options = pulldown_cmark::Options::empty();
    options.insert(pulldown_cmark::Options::ENABLE_TABLES);
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, pulldown_cmark::Parser::new_ext(md, options));
    out
}
