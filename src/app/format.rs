//! `recspec fmt`: spec files in the canonical layout of [`crate::fmt`].

use super::AppError;
use crate::files::FileError;
use crate::source::SourceMap;
use std::path::Path;

/// What formatting made of one text.
pub enum Formatted {
    /// Already in the canonical layout.
    Same,
    /// The canonical text differs.
    Changed(String),
    /// A syntax error, rendered as `check` renders it; the file is left alone.
    Invalid(String),
}

/// Formats spec text named `name` (a path, or `<stdin>`), for diagnostics.
pub fn format_text(name: &str, text: &str) -> Formatted {
    let mut sources = SourceMap::default();
    let file = sources.add(name, Some(name.into()), text);
    match crate::fmt::format(file, text) {
        Ok(out) if out == text => Formatted::Same,
        Ok(out) => Formatted::Changed(out),
        Err(d) => Formatted::Invalid(crate::diag::render(&sources, &[d])),
    }
}

/// Reads and formats a spec file (nothing is written): its text and what formatting makes of it.
pub fn format_file(path: &Path) -> Result<(String, Formatted), AppError> {
    let text = std::fs::read_to_string(path).map_err(FileError::at("read", path))?;
    let formatted = format_text(&path.display().to_string(), &text);
    Ok((text, formatted))
}

/// Writes a formatted text over its file.
pub fn write(path: &Path, text: &str) -> Result<(), AppError> {
    std::fs::write(path, text).map_err(FileError::at("write", path))?;
    Ok(())
}
