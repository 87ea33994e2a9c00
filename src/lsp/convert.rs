//! Between the analysis and the protocol: spans and LSP ranges (UTF-16 columns), diagnostics,
//! hovers and completions as `lsp_types`.

use crate::diag::{Diagnostic, Severity};
use crate::ide::line_index::{LineCol, LineIndex};
use crate::ide::{Analysis, Completion, CompletionKind};
use crate::source::{FileId, Span};
use lsp_types as lsp;
use lsp_types::Url;
use std::collections::HashMap;
use std::path::PathBuf;

/// The file a document URI names: its path for `file:` URIs, else the URI's path as a name
/// (an unsaved buffer), which never exists on disk.
pub(crate) fn path_of(uri: &Url) -> PathBuf {
    uri.to_file_path().unwrap_or_else(|_| PathBuf::from(uri.path()))
}

/// The key of a path in an overlay: canonical when the file exists.
pub fn canonical(path: PathBuf) -> PathBuf {
    path.canonicalize().unwrap_or(path)
}

/// The byte offset of an LSP position in a text.
pub fn offset(text: &str, pos: lsp::Position) -> usize {
    LineIndex::new(text).offset(LineCol { line: pos.line, col: pos.character })
}

/// The LSP range of a span of one of the analysis's files.
pub fn range(a: &Analysis, span: Span) -> lsp::Range {
    let index = LineIndex::new(&a.spec.sources.get(span.file).text);
    let position = |offset: u32| {
        let lc = index.line_col(offset as usize);
        lsp::Position { line: lc.line, character: lc.col }
    };
    lsp::Range { start: position(span.start), end: position(span.end) }
}

/// How the client names an analysis's files: the analysed document's URI for the root, an open
/// document's own URI for a file open in the editor (by canonical path), else a `file:` URI.
pub(crate) struct Uris<'a> {
    pub root: &'a Url,
    pub open: &'a HashMap<PathBuf, Url>,
}

/// The URI of one of the analysis's files; standard library files have none.
pub fn uri(a: &Analysis, uris: &Uris, file: FileId) -> Option<Url> {
    if file == FileId(0) {
        return Some(uris.root.clone());
    }
    let path = a.spec.sources.get(file).path.as_ref()?;
    uris.open.get(path).cloned().or_else(|| Url::from_file_path(path).ok())
}

pub fn location(a: &Analysis, uris: &Uris, span: Span) -> Option<lsp::Location> {
    Some(lsp::Location { uri: uri(a, uris, span.file)?, range: range(a, span) })
}

/// A diagnostic as the client shows it, with the URI of the file it belongs to: the message
/// and code of `recspec check`, the help line after it, labels as related information.
pub fn diagnostic(a: &Analysis, uris: &Uris, d: &Diagnostic) -> Option<(Url, lsp::Diagnostic)> {
    let (file_uri, range) = match &d.primary {
        Some(p) => (uri(a, uris, p.span.file)?, range(a, p.span)),
        None => (uris.root.clone(), lsp::Range::default()),
    };
    let mut message = d.message.clone();
    if let Some(p) = d.primary.as_ref().filter(|p| !p.message.is_empty()) {
        message.push_str(&format!("\n{}", p.message));
    }
    if let Some(h) = &d.help {
        message.push_str(&format!("\nhelp: {h}"));
    }
    let related: Vec<lsp::DiagnosticRelatedInformation> = d
        .secondary
        .iter()
        .filter_map(|l| {
            Some(lsp::DiagnosticRelatedInformation { location: location(a, uris, l.span)?, message: l.message.clone() })
        })
        .collect();
    let severity = match d.severity {
        Severity::Error => lsp::DiagnosticSeverity::ERROR,
        Severity::Warning => lsp::DiagnosticSeverity::WARNING,
    };
    let diagnostic = lsp::Diagnostic {
        range,
        severity: Some(severity),
        code: Some(lsp::NumberOrString::String(d.code.as_str())),
        source: Some("recspec".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    };
    Some((file_uri, diagnostic))
}

pub fn completion(c: Completion) -> lsp::CompletionItem {
    let kind = match c.kind {
        CompletionKind::Function => lsp::CompletionItemKind::FUNCTION,
        CompletionKind::Constructor => lsp::CompletionItemKind::CONSTRUCTOR,
        CompletionKind::Block => lsp::CompletionItemKind::CLASS,
        CompletionKind::Name => lsp::CompletionItemKind::VARIABLE,
        CompletionKind::Argument => lsp::CompletionItemKind::FIELD,
        CompletionKind::Option => lsp::CompletionItemKind::ENUM_MEMBER,
        CompletionKind::Keyword => lsp::CompletionItemKind::KEYWORD,
        CompletionKind::Type => lsp::CompletionItemKind::TYPE_PARAMETER,
        CompletionKind::File => lsp::CompletionItemKind::FILE,
    };
    lsp::CompletionItem {
        label: c.label,
        kind: Some(kind),
        detail: Some(c.detail),
        documentation: c.documentation.map(|d| {
            lsp::Documentation::MarkupContent(lsp::MarkupContent { kind: lsp::MarkupKind::Markdown, value: d })
        }),
        insert_text: Some(c.insert),
        ..Default::default()
    }
}
