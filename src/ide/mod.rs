//! Editor analysis over the front end's outputs, free of any protocol: what is at a position
//! (hover), where a name is defined and used, and what can be written there (completion).
//!
//! An [`Analysis`] is one load and check of a root file, with unsaved editor texts standing in
//! for files on disk ([`crate::load::Overlay`]); the resolver's table of every name
//! ([`crate::resolve::index::Index`], kept in `Checked::names`) answers what a name is, where it
//! is defined and where it is used. The editor has no resolver of its own. Offsets are bytes;
//! [`line_index::LineIndex`] converts them to editor lines and UTF-16 columns.

pub mod complete;
pub mod hover;
pub mod line_index;
#[cfg(test)]
mod tests;

use crate::check::{self, Checked};
use crate::load::{self, LoadError, LoadedSpec, Overlay};
use crate::resolve::index::{Index, Symbol};
use crate::source::{FileId, Span};
use std::path::Path;

pub use complete::{complete, Completion, CompletionKind};
pub use hover::{hover, Hover};

/// One root file loaded (imports included), checked and indexed.
pub struct Analysis {
    pub spec: LoadedSpec,
    pub checked: Checked,
    pub index: Index,
}

impl Analysis {
    /// Loads and checks `path`, reading any file `overlay` holds from there instead of the disk.
    pub fn load(path: &Path, overlay: &Overlay) -> Result<Analysis, LoadError> {
        let (spec, diags) = load::load_file_with(path, overlay)?;
        Ok(Analysis::of(spec, diags))
    }

    /// Checks spec text held in memory (relative imports are unavailable).
    #[cfg(test)]
    pub(crate) fn of_str(name: &str, text: &str) -> Analysis {
        let (spec, diags) = load::load_str(name, text);
        Analysis::of(spec, diags)
    }

    fn of(spec: LoadedSpec, diags: Vec<crate::diag::Diagnostic>) -> Analysis {
        let mut checked = check::check(&spec, diags, &[]);
        let index = std::mem::take(&mut checked.names);
        Analysis { spec, checked, index }
    }

    /// Whether a file of this analysis parsed (the root of a spec with a syntax error did not).
    pub fn parsed(&self, file: FileId) -> bool {
        self.spec.files.iter().any(|(id, _)| *id == file)
    }

    /// The root file's model, if it has one (block libraries have none).
    pub(crate) fn has_model(&self) -> bool {
        self.spec.model().is_some()
    }

    /// The loaded file at a canonical path.
    pub fn file(&self, path: &Path) -> Option<FileId> {
        self.spec.sources.find_path(path)
    }

    /// The hover at a byte offset.
    pub fn hover(&self, file: FileId, offset: u32) -> Option<Hover> {
        hover::hover(self, file, offset)
    }

    /// Where the name at a byte offset is defined: a definition's name, or the start of an
    /// imported file.
    pub fn definition(&self, file: FileId, offset: u32) -> Option<Span> {
        let occ = self.index.at(file, offset)?;
        match &occ.symbol {
            Symbol::File(target) => Some(Span::new(*target, 0, 0)),
            symbol => self.index.def(symbol).map(|d| d.span),
        }
    }

    /// Every place the name at a byte offset is written, its definition first when asked for.
    pub fn references(&self, file: FileId, offset: u32, with_definition: bool) -> Vec<Span> {
        let Some(occ) = self.index.at(file, offset) else {
            return vec![];
        };
        let mut spans: Vec<Span> =
            self.index.references(&occ.symbol).filter(|o| with_definition || !o.is_def).map(|o| o.span).collect();
        spans.sort_by_key(|s| (s.file, s.start));
        spans.dedup();
        spans
    }
}
