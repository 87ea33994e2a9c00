//! Diagnostics: stable error codes, labelled spans, and a colour-free rendering.

use crate::source::{SourceMap, Span};
use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label, Severity as CsSeverity};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, Config};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// Every diagnostic kind the compiler can report, with its stable code.
///
/// Codes are never reused or renumbered; retired codes stay reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// The text does not match the grammar.
    Syntax = 1,
    /// An imported file could not be read.
    ImportNotFound = 2,
    /// Imports form a cycle.
    ImportCycle = 3,
    /// A file has no model, or more than one.
    ModelCount = 4,
    /// A name is used but never defined.
    Undefined = 5,
    /// A name is defined twice in one scope.
    Duplicate = 6,
    /// A name is used before the statement that defines it.
    UseBeforeDef = 7,
    /// A block instantiates itself, directly or through others.
    BlockCycle = 8,
    /// A statement that is not allowed in this place (e.g. `input` inside a block).
    MisplacedStmt = 9,
    /// A call has an argument the component does not take.
    UnknownArgument = 10,
    /// A call lacks a required argument.
    MissingArgument = 11,
    /// An argument is given twice, or positionally and by name.
    DuplicateArgument = 12,
    /// A value has the wrong kind (a tensor where a number is expected, ...).
    KindMismatch = 13,
    /// A tensor has the wrong element type (ids, floats, masks).
    DTypeMismatch = 14,
    /// Two shapes that must agree do not.
    ShapeMismatch = 15,
    /// A tensor has the wrong number of axes.
    RankMismatch = 16,
    /// A dimension expression is not a valid non-negative integer expression.
    BadDim = 17,
    /// An id tensor and the table it indexes have different vocabularies.
    VocabMismatch = 18,
    /// A loss names a label stream that is not declared.
    UnknownLabel = 19,
    /// A log-probability loss on a tensor that is not bounded to [0, 1].
    UnboundedProbability = 20,
    /// A loss that needs a softmax distribution gets something else.
    NotADistribution = 21,
    /// A `loss` statement whose value is not a (weighted) loss term.
    NotALoss = 22,
    /// A symbolic option that the component does not know.
    BadOption = 23,
    /// A block's body disagrees with its declared return type, or has no return.
    ReturnMismatch = 24,
    /// A model without any loss or output.
    NoObjective = 25,
    /// An override (`--set`, run config) that names nothing or has the wrong kind.
    BadOverride = 26,
    /// Shared weights applied to inputs of a different shape.
    SharedWeightMismatch = 27,
    /// An axis index outside the tensor's rank.
    BadAxis = 28,
    /// An attribute value out of its allowed range (negative rate, alpha > 1, ...).
    BadValue = 29,
    /// A side feature whose sequence or shape does not match.
    BadSide = 30,
    /// A value is called that is not a component or block.
    NotCallable = 31,
    /// A weight shape that depends on the batch, or a size that grows faster than linearly
    /// with it.
    BatchDependentSize = 32,
    /// A model input or label stream that the spec's feature set does not make.
    MissingFeature = 33,
    /// A feature that disagrees with the model input it fills (kind, element type, width,
    /// sequence length, vocabulary, hashing).
    FeatureMismatch = 34,
    /// A feature, source or split that is not well formed: an unknown transform, a bad
    /// argument, a column of a table the set does not join, a rule that does not parse.
    BadFeature = 35,
    /// Warning: a binding, input, parameter or label that nothing uses.
    Unused = 100,
    /// Warning: an earlier spelling the language still accepts (an argument renamed).
    Deprecated = 101,
}

impl Code {
    pub fn as_str(self) -> String {
        match self {
            Code::Unused | Code::Deprecated => format!("W{:04}", self as u32),
            _ => format!("E{:04}", self as u32),
        }
    }
}

/// A secondary note attached to a span, e.g. "D bound to 64 here".
#[derive(Clone, Debug)]
pub struct SpanLabel {
    pub span: Span,
    pub message: String,
}

/// One user-facing message with its location.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub primary: Option<SpanLabel>,
    pub secondary: Vec<SpanLabel>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: None,
            secondary: vec![],
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }

    pub fn at(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.primary = Some(SpanLabel { span, message: label.into() });
        self
    }

    pub(crate) fn with_label(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.secondary.push(SpanLabel { span, message: label.into() });
        self
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col` of the primary span, if any.
    pub fn location(&self, sources: &SourceMap) -> Option<String> {
        let p = self.primary.as_ref()?;
        let (line, col) = sources.line_col(p.span.file, p.span.start);
        Some(format!("{}:{}:{}", sources.get(p.span.file).name, line, col))
    }
}

/// Sorts diagnostics into a stable order: by file, position, then code.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| {
        let (file, start) = d.primary.as_ref().map_or((u32::MAX, u32::MAX), |p| (p.span.file.0, p.span.start));
        (d.severity, file, start, d.code)
    });
}

/// Renders diagnostics as plain text with code frames, the same on every terminal.
pub fn render(sources: &SourceMap, diags: &[Diagnostic]) -> String {
    let mut files = SimpleFiles::new();
    for f in sources.files() {
        files.add(f.name.clone(), f.text.clone());
    }
    let config = Config::default();
    let mut out = String::new();
    for d in diags {
        let severity = match d.severity {
            Severity::Error => CsSeverity::Error,
            Severity::Warning => CsSeverity::Warning,
        };
        let mut cs = CsDiagnostic::new(severity).with_code(d.code.as_str()).with_message(&d.message);
        let mut labels = vec![];
        if let Some(p) = &d.primary {
            labels.push(
                Label::primary(p.span.file.0 as usize, p.span.start as usize..p.span.end as usize)
                    .with_message(&p.message),
            );
        }
        for s in &d.secondary {
            labels.push(
                Label::secondary(s.span.file.0 as usize, s.span.start as usize..s.span.end as usize)
                    .with_message(&s.message),
            );
        }
        cs = cs.with_labels(labels);
        if let Some(h) = &d.help {
            cs = cs.with_notes(vec![format!("help: {h}")]);
        }
        let mut buf = codespan_reporting::term::termcolor::NoColor::new(Vec::new());
        if term::emit(&mut buf, &config, &files, &cs).is_err() {
            out.push_str(&format!(
                "{}[{}]: {}\n",
                if d.is_error() { "error" } else { "warning" },
                d.code.as_str(),
                d.message
            ));
            continue;
        }
        out.push_str(&String::from_utf8_lossy(&buf.into_inner()));
    }
    out
}

/// Edit distance between two names, for "did you mean" hints: insertions, deletions,
/// substitutions and swaps of two adjacent characters (`lable` → `label`) each cost 1.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // rows[i][j]: the distance between a[..i] and b[..j]; only three rows are live.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// The closest candidate within a small edit distance, if any.
pub(crate) fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// A "did you mean" help line, if a candidate is close.
pub(crate) fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    suggest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_a_swap_once() {
        assert_eq!(edit_distance("label", "label"), 0);
        assert_eq!(edit_distance("lable", "label"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(suggest("lable", ["p", "label", "weight"]), Some("label"));
        assert_eq!(suggest("zzz", ["p", "label", "weight"]), None);
    }
}
