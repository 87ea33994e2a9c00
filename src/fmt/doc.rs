//! A Wadler-style document and its printer, in the variant Prettier uses: a group is printed flat
//! when it fits together with what follows it up to the next possible line break, and line-suffix
//! content (trailing `//` comments) waits for the end of its line. A group holding a hard line
//! break always breaks.
//!
//! Trailing comments on consecutive lines are aligned to one column, as gofmt does.

/// A document: text and where lines may break.
#[derive(Clone, Debug)]
pub(crate) enum Doc {
    Text(String),
    Concat(Vec<Doc>),
    /// The content one indentation level deeper (after its next line break).
    Nest(Box<Doc>),
    /// Printed flat when it fits, broken otherwise; `broken` when it holds a hard break.
    Group {
        doc: Box<Doc>,
        broken: bool,
    },
    /// A space when flat, a line break when broken.
    Line,
    /// Nothing when flat, a line break when broken.
    SoftLine,
    /// Always a line break.
    HardLine,
    /// Text printed only when the enclosing group is broken (a trailing comma).
    IfBreak(&'static str),
    /// A trailing `//` comment: printed at the end of the current line.
    LineSuffix(String),
    /// A comment on a line of its own: starts a new line unless at the start of one, and ends it.
    OwnLine(String),
    /// An empty line here unless the output already has one (or is at the very start).
    BlankLine,
    /// Breaks every enclosing group, printing nothing.
    BreakParent,
}

impl Doc {
    pub fn text(s: impl Into<String>) -> Doc {
        Doc::Text(s.into())
    }

    pub(crate) fn nest(doc: Doc) -> Doc {
        Doc::Nest(Box::new(doc))
    }

    pub fn group(doc: Doc) -> Doc {
        let broken = doc.forces_break();
        Doc::Group { doc: Box::new(doc), broken }
    }

    fn forces_break(&self) -> bool {
        match self {
            Doc::HardLine | Doc::OwnLine(_) | Doc::BlankLine | Doc::BreakParent => true,
            Doc::Text(t) => t.contains('\n'),
            Doc::Concat(v) => v.iter().any(Doc::forces_break),
            Doc::Nest(d) => d.forces_break(),
            Doc::Group { broken, .. } => *broken,
            Doc::Line | Doc::SoftLine | Doc::IfBreak(_) | Doc::LineSuffix(_) => false,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Flat,
    Break,
}

/// One printed line: its indentation, code, and trailing comment.
struct Line {
    indent: usize,
    code: String,
    comment: Option<String>,
}

struct Printer {
    width: usize,
    indent_unit: usize,
    lines: Vec<Line>,
    /// The line being printed (`indent` applies once it has text).
    current: Line,
    suffix: Vec<String>,
}

impl Printer {
    fn column(&self) -> usize {
        if self.current.code.is_empty() {
            self.current.indent
        } else {
            self.current.indent + self.current.code.chars().count()
        }
    }

    fn write(&mut self, s: &str) {
        self.current.code.push_str(s);
    }

    /// Ends the current line; at the start of a line it only sets the indentation, so line
    /// breaks never make an empty line (only [`Doc::BlankLine`] does).
    fn newline(&mut self, indent: usize) {
        if self.at_line_start() {
            self.current.indent = indent;
            return;
        }
        let code = self.current.code.trim_end().to_string();
        let comment = (!self.suffix.is_empty()).then(|| std::mem::take(&mut self.suffix).join(" "));
        let done = std::mem::replace(&mut self.current, Line { indent, code: String::new(), comment: None });
        self.lines.push(Line { code, comment, ..done });
    }

    fn at_line_start(&self) -> bool {
        self.current.code.is_empty() && self.suffix.is_empty()
    }

    fn print(&mut self, doc: &Doc) {
        let mut stack: Vec<(usize, Mode, &Doc)> = vec![(0, Mode::Break, doc)];
        while let Some((ind, mode, doc)) = stack.pop() {
            match doc {
                Doc::Text(s) => self.write(s),
                Doc::Concat(v) => stack.extend(v.iter().rev().map(|d| (ind, mode, d))),
                Doc::Nest(d) => stack.push((ind + self.indent_unit, mode, d)),
                Doc::Group { doc, broken } => {
                    let flat = !broken && (mode == Mode::Flat || self.fits(doc, &stack));
                    stack.push((ind, if flat { Mode::Flat } else { Mode::Break }, doc));
                }
                Doc::Line if mode == Mode::Flat => self.write(" "),
                Doc::SoftLine if mode == Mode::Flat => {}
                Doc::Line | Doc::SoftLine | Doc::HardLine => self.newline(ind),
                Doc::IfBreak(s) => {
                    if mode == Mode::Break {
                        self.write(s)
                    }
                }
                Doc::LineSuffix(s) => self.suffix.push(s.clone()),
                Doc::OwnLine(s) => {
                    self.newline(ind);
                    self.write(s);
                    self.newline(ind);
                }
                Doc::BlankLine => {
                    self.newline(ind);
                    if self.lines.last().is_some_and(|l| !l.code.is_empty() || l.comment.is_some()) {
                        self.lines.push(Line { indent: 0, code: String::new(), comment: None });
                    }
                }
                Doc::BreakParent => {}
            }
        }
    }

    /// Whether `doc`, printed flat from the current column, fits together with what follows it
    /// on the stack up to the next line break there.
    fn fits(&self, doc: &Doc, rest: &[(usize, Mode, &Doc)]) -> bool {
        let mut left = self.width as isize - self.column() as isize;
        let mut todo: Vec<(Mode, &Doc)> = vec![(Mode::Flat, doc)];
        let mut rest = rest.iter().rev();
        loop {
            let Some((mode, doc)) = todo.pop().or_else(|| rest.next().map(|(_, m, d)| (*m, *d))) else {
                return true;
            };
            match doc {
                Doc::Text(s) => left -= s.chars().count() as isize,
                Doc::Concat(v) => todo.extend(v.iter().rev().map(|d| (mode, d))),
                Doc::Nest(d) => todo.push((mode, d)),
                Doc::Group { doc, broken } => todo.push((if *broken { Mode::Break } else { mode }, doc)),
                Doc::Line if mode == Mode::Flat => left -= 1,
                Doc::SoftLine if mode == Mode::Flat => {}
                Doc::Line | Doc::SoftLine | Doc::HardLine | Doc::OwnLine(_) | Doc::BlankLine => return left >= 0,
                Doc::IfBreak(s) => {
                    if mode == Mode::Break {
                        left -= s.len() as isize
                    }
                }
                Doc::LineSuffix(_) | Doc::BreakParent => {}
            }
            if left < 0 {
                return false;
            }
        }
    }

    /// The text, with the trailing comments of consecutive lines aligned.
    fn finish(mut self) -> String {
        if !self.at_line_start() {
            self.newline(0);
        }
        let mut out = String::new();
        let lines = &self.lines;
        let mut i = 0;
        while i < lines.len() {
            // A run of consecutive lines with code and a trailing comment shares one column.
            let run = lines[i..].iter().take_while(|l| l.comment.is_some() && !l.code.is_empty()).count().max(1);
            let width = lines[i..i + run].iter().map(|l| l.indent + l.code.chars().count()).max().unwrap_or(0);
            for l in &lines[i..i + run] {
                let mut text = String::new();
                if !l.code.is_empty() {
                    text.push_str(&" ".repeat(l.indent));
                    text.push_str(&l.code);
                }
                if let Some(c) = &l.comment {
                    let pad =
                        if l.code.is_empty() { l.indent } else { width + 2 - (l.indent + l.code.chars().count()) };
                    text.push_str(&" ".repeat(pad));
                    text.push_str(c);
                }
                out.push_str(&text);
                out.push('\n');
            }
            i += run;
        }
        // Exactly one newline at the end, none at the start.
        let trimmed = out.trim_end_matches('\n').trim_start_matches('\n');
        format!("{trimmed}\n")
    }
}

/// Prints `doc` in lines of at most `width` columns where groups allow, indenting by
/// `indent_unit` spaces per level.
pub fn print(doc: &Doc, width: usize, indent_unit: usize) -> String {
    let mut p = Printer {
        width,
        indent_unit,
        lines: vec![],
        current: Line { indent: 0, code: String::new(), comment: None },
        suffix: vec![],
    };
    p.print(doc);
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[&str]) -> Doc {
        let mut inner = vec![Doc::SoftLine];
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                inner.push(Doc::text(","));
                inner.push(Doc::Line);
            }
            inner.push(Doc::text(*a));
        }
        inner.push(Doc::IfBreak(","));
        Doc::Concat(vec![
            Doc::text(name),
            Doc::group(Doc::Concat(vec![Doc::text("("), Doc::nest(Doc::Concat(inner)), Doc::SoftLine, Doc::text(")")])),
        ])
    }

    #[test]
    fn a_group_breaks_only_when_it_does_not_fit() {
        let d = call("f", &["alpha", "beta"]);
        assert_eq!(print(&d, 20, 2), "f(alpha, beta)\n");
        assert_eq!(print(&d, 10, 2), "f(\n  alpha,\n  beta,\n)\n");
    }

    #[test]
    fn the_last_of_two_groups_breaks_first() {
        let d = Doc::Concat(vec![call("g", &["a"]), call("", &["xxxxxxxx", "yyyyyyyy"])]);
        assert_eq!(print(&d, 16, 2), "g(a)(\n  xxxxxxxx,\n  yyyyyyyy,\n)\n");
    }

    #[test]
    fn trailing_comments_wait_for_the_line_end_and_align() {
        let d = Doc::Concat(vec![
            Doc::text("a = 1;"),
            Doc::LineSuffix("// one".into()),
            Doc::HardLine,
            Doc::text("bb = 22;"),
            Doc::LineSuffix("// two".into()),
            Doc::HardLine,
            Doc::BlankLine,
            Doc::BlankLine,
            Doc::OwnLine("// own".into()),
            Doc::text("c;"),
        ]);
        assert_eq!(print(&d, 80, 2), "a = 1;    // one\nbb = 22;  // two\n\n// own\nc;\n");
    }
}
