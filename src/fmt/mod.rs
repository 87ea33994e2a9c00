//! The formatter behind `recspec fmt`: one canonical layout for spec text.
//!
//! It works on the concrete syntax tree ([`syntax::parse_tree`]), never on the AST, so that
//! nothing the AST drops (comments, the spelling of literals, trailing commas) can be lost by
//! accident. Comments are not tree nodes: [`Formatter::new`] reads them from the gaps between
//! tokens and attaches each to a token, as *trailing* (on the same line as the token before it:
//! kept at the end of that line) or *leading* (on lines of their own before the token: kept on
//! lines of their own). Every token is printed through [`Formatter::tok`], which prints its
//! comments too; that is the whole guarantee that comments survive.
//!
//! The layout: two-space indentation; one statement per line; at most one blank line where the
//! author had one or more, and always one between blocks and models; spaces around binary
//! operators, `=` and `->`, after `,` and `:`; argument, parameter and list groups that do not fit
//! in [`WIDTH`] columns break one element per line with a trailing comma; trailing comments on
//! consecutive lines aligned. Literals are printed as written.
//!
//! Invariants (tested over every shipped spec, the accepted-spec corpus and fuzzed specs): the
//! output parses to the same token sequence (up to trailing commas), keeps every comment in order,
//! compiles to the same graph, and formats to itself.

mod doc;

use crate::diag::Diagnostic;
use crate::source::FileId;
use crate::syntax::{self, Rule, SyntaxNode};
use doc::Doc;
use std::collections::HashMap;

/// The line width groups are fitted to.
pub(crate) const WIDTH: usize = 100;
/// Spaces per indentation level.
pub(crate) const INDENT: usize = 2;

/// Formats spec text; a syntax error yields the parser's diagnostic and no text.
pub fn format(file: FileId, text: &str) -> Result<String, Diagnostic> {
    let tree = syntax::parse_tree(file, text)?;
    let f = Formatter::new(text, &tree);
    Ok(doc::print(&f.file(&tree), WIDTH, INDENT))
}

/// The comments of a text in order, trimmed: what formatting must keep.
pub fn comments(text: &str, tree: &SyntaxNode) -> Vec<String> {
    let mut out = vec![];
    let mut tokens = vec![];
    tree.tokens(&mut tokens);
    let mut prev_end = 0;
    for t in tokens {
        for piece in gap(&text[prev_end..t.start]) {
            if let Gap::Comment(c) = piece {
                out.push(c.trim_end().to_string());
            }
        }
        prev_end = t.end;
    }
    out
}

struct Comment {
    text: String,
    /// A `//` comment, which must end its line.
    line: bool,
    /// An empty line between this comment and what came before it.
    blank_before: bool,
}

#[derive(Default)]
struct Trivia {
    /// Comments on lines of their own before the token.
    leading: Vec<Comment>,
    /// Comments after the token on its line.
    trailing: Vec<Comment>,
    /// An empty line between the token and the comment or token before it.
    blank_before_token: bool,
}

/// A piece of the text between two tokens.
enum Gap<'a> {
    Newline,
    Comment(&'a str),
}

/// The newlines and comments of the text between two tokens (which holds nothing else).
fn gap(text: &str) -> Vec<Gap<'_>> {
    let mut out = vec![];
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            out.push(Gap::Comment(&rest[..end]));
            i += end;
        } else if let Some(body) = rest.strip_prefix("/*") {
            let end = body.find("*/").map_or(rest.len(), |e| e + 4);
            out.push(Gap::Comment(&rest[..end]));
            i += end;
        } else {
            if rest.starts_with('\n') {
                out.push(Gap::Newline);
            }
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

struct Formatter<'a> {
    text: &'a str,
    /// Comments and blank lines, by the start of the token they belong to.
    trivia: HashMap<usize, Trivia>,
    /// Argument names printed in their current spelling (`on:` of a loss is `label:`), by start.
    renames: HashMap<usize, &'static str>,
}

impl<'a> Formatter<'a> {
    fn new(text: &'a str, tree: &SyntaxNode) -> Formatter<'a> {
        let mut tokens = vec![];
        tree.tokens(&mut tokens);
        let mut trivia: HashMap<usize, Trivia> = HashMap::new();
        let mut prev: Option<usize> = None;
        let mut prev_end = 0;
        for t in tokens {
            let mut here = Trivia::default();
            let mut newlines = 0;
            let mut same_line = prev.is_some();
            for piece in gap(&text[prev_end..t.start]) {
                match piece {
                    Gap::Newline => {
                        newlines += 1;
                        same_line = false;
                    }
                    Gap::Comment(c) => {
                        let comment = Comment {
                            text: c.trim_end().to_string(),
                            line: c.starts_with("//"),
                            blank_before: newlines >= 2,
                        };
                        match prev {
                            Some(p) if same_line => trivia.entry(p).or_default().trailing.push(comment),
                            _ => here.leading.push(comment),
                        }
                        newlines = 0;
                    }
                }
            }
            here.blank_before_token = newlines >= 2;
            trivia.insert(t.start, here);
            prev = Some(t.start);
            prev_end = t.end;
        }
        let mut renames = HashMap::new();
        find_renames(text, tree, &mut renames);
        Formatter { text, trivia, renames }
    }

    fn trivia(&self, t: &SyntaxNode) -> Option<&Trivia> {
        self.trivia.get(&t.start)
    }

    /// Whether the author left an empty line before `n` (before its first comment, if any).
    fn blank_before(&self, n: &SyntaxNode) -> bool {
        let Some(tr) = self.trivia(first_token(n)) else { return false };
        match tr.leading.first() {
            Some(c) => c.blank_before,
            None => tr.blank_before_token,
        }
    }

    /// The comments on lines of their own before `t`. An empty line before the first one is the
    /// caller's to keep (statement and item separators do).
    fn leading(&self, t: &SyntaxNode) -> Doc {
        let Some(tr) = self.trivia(t) else { return Doc::Concat(vec![]) };
        let mut out = vec![];
        for (i, c) in tr.leading.iter().enumerate() {
            if i > 0 && c.blank_before {
                out.push(Doc::BlankLine);
            }
            out.push(Doc::OwnLine(c.text.clone()));
        }
        if !tr.leading.is_empty() && tr.blank_before_token {
            out.push(Doc::BlankLine);
        }
        Doc::Concat(out)
    }

    /// The comments after `t` on its line: `//` ones at the end of the line (which must then
    /// break), block ones in place.
    fn trailing(&self, t: &SyntaxNode) -> Doc {
        let Some(tr) = self.trivia(t) else { return Doc::Concat(vec![]) };
        let mut out = vec![];
        for c in &tr.trailing {
            if c.line {
                out.push(Doc::LineSuffix(c.text.clone()));
                out.push(Doc::BreakParent);
            } else {
                out.push(Doc::text(format!(" {}", c.text)));
            }
        }
        Doc::Concat(out)
    }

    /// A token with its comments.
    fn tok(&self, t: &SyntaxNode) -> Doc {
        Doc::Concat(vec![self.leading(t), self.bare(t)])
    }

    /// A token with its trailing comments only (the caller places the leading ones).
    fn bare(&self, t: &SyntaxNode) -> Doc {
        let text = self.renames.get(&t.start).copied().unwrap_or(&self.text[t.start..t.end]);
        Doc::Concat(vec![Doc::text(text), self.trailing(t)])
    }

    fn file(&self, root: &SyntaxNode) -> Doc {
        let (eoi, items) = root.children.split_last().expect("grammar: file ends with EOI");
        let mut out = vec![];
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(Doc::HardLine);
                let definition =
                    |n: &SyntaxNode| matches!(n.rule, Rule::block_def | Rule::model_def | Rule::features_def);
                if self.blank_before(item) || definition(item) || definition(&items[i - 1]) {
                    out.push(Doc::BlankLine);
                }
            }
            out.push(self.node(item));
        }
        out.push(self.dangling(eoi, !items.is_empty()));
        Doc::Concat(out)
    }

    /// The comments before a closing token (`}`, `)`, end of file), on lines of their own.
    fn dangling(&self, close: &SyntaxNode, after_something: bool) -> Doc {
        let Some(tr) = self.trivia(close) else { return Doc::Concat(vec![]) };
        let mut out = vec![];
        for (i, c) in tr.leading.iter().enumerate() {
            if c.blank_before && (i > 0 || after_something) {
                out.push(Doc::BlankLine);
            }
            out.push(Doc::OwnLine(c.text.clone()));
        }
        Doc::Concat(out)
    }

    fn node(&self, n: &SyntaxNode) -> Doc {
        if n.is_token() {
            return self.tok(n);
        }
        let c = &n.children;
        match n.rule {
            Rule::model_def | Rule::block_def | Rule::features_def => self.definition(n),
            Rule::call_args | Rule::list => {
                let (open, rest) = c.split_first().expect("grammar: opening bracket");
                let (close, inner) = rest.split_last().expect("grammar: closing bracket");
                self.delimited(open, inner, close, true)
            }
            Rule::tensor_type => {
                // dtype [ dims ]: no trailing comma in the grammar.
                let (close, inner) = c[2..].split_last().expect("grammar: closing bracket");
                Doc::Concat(vec![self.node(&c[0]), self.delimited(&c[1], inner, close, false)])
            }
            Rule::unary | Rule::postfix | Rule::field | Rule::paren_expr => {
                Doc::Concat(c.iter().map(|x| self.node(x)).collect())
            }
            _ => self.spaced(c),
        }
    }

    /// Children separated by single spaces, except before `;`, `,`, `:` and `.`, calls and
    /// fields, and after `.`.
    fn spaced(&self, children: &[SyntaxNode]) -> Doc {
        let mut out = vec![];
        for (i, x) in children.iter().enumerate() {
            let glued =
                matches!(x.rule, Rule::semi | Rule::comma | Rule::colon | Rule::dot | Rule::call_args | Rule::field)
                    || (i > 0 && children[i - 1].rule == Rule::dot);
            if i > 0 && !glued {
                out.push(Doc::text(" "));
            }
            out.push(self.node(x));
        }
        Doc::Concat(out)
    }

    /// `open items close`, items separated by commas: flat when it fits, else one item per line
    /// (with a trailing comma where the grammar allows one).
    fn delimited(&self, open: &SyntaxNode, inner: &[SyntaxNode], close: &SyntaxNode, trailing_comma: bool) -> Doc {
        let mut body = vec![Doc::SoftLine];
        let mut it = inner.iter().peekable();
        while let Some(item) = it.next() {
            body.push(self.node(item));
            let comma = it.next_if(|n| n.rule == Rule::comma);
            let last = it.peek().is_none();
            match (comma, last) {
                (Some(comma), false) => body.extend([self.tok(comma), Doc::Line]),
                (Some(comma), true) => {
                    body.extend([self.leading(comma), Doc::IfBreak(","), self.trailing(comma)]);
                }
                (None, _) if trailing_comma => body.push(Doc::IfBreak(",")),
                (None, _) => {}
            }
        }
        if inner.is_empty() && self.trivia(close).is_none_or(|t| t.leading.is_empty()) {
            return Doc::Concat(vec![self.tok(open), self.tok(close)]);
        }
        body.push(self.dangling(close, !inner.is_empty()));
        Doc::group(Doc::Concat(vec![self.tok(open), Doc::nest(Doc::Concat(body)), Doc::SoftLine, self.bare(close)]))
    }

    /// `model name { ... }` or `block Name(params)(ports) -> type { ... }`.
    fn definition(&self, n: &SyntaxNode) -> Doc {
        let c = &n.children;
        let mut out = vec![];
        let mut i = 0;
        while c[i].rule != Rule::lbrace {
            if c[i].rule == Rule::lparen {
                let list = c.get(i + 1).filter(|x| matches!(x.rule, Rule::param_list | Rule::port_list));
                let close = i + 1 + usize::from(list.is_some());
                let inner = list.map_or(&[][..], |l| &l.children[..]);
                out.push(self.delimited(&c[i], inner, &c[close], true));
                i = close + 1;
            } else {
                if i > 0 {
                    out.push(Doc::text(" "));
                }
                out.push(self.node(&c[i]));
                i += 1;
            }
        }
        out.push(Doc::text(" "));
        let (close, stmts) = c[i + 1..].split_last().expect("grammar: closing brace");
        out.push(self.tok(&c[i]));
        let mut body = vec![];
        for (j, s) in stmts.iter().enumerate() {
            body.push(Doc::HardLine);
            if j > 0 && self.blank_before(s) {
                body.push(Doc::BlankLine);
            }
            body.push(self.node(s));
        }
        body.push(self.dangling(close, !stmts.is_empty()));
        if body.len() == 1 && self.trivia(close).is_none_or(|t| t.leading.is_empty()) {
            out.push(self.bare(close));
        } else {
            out.extend([Doc::nest(Doc::Concat(body)), Doc::HardLine, self.bare(close)]);
        }
        Doc::Concat(out)
    }
}

/// The argument names of op calls (`nll(p, on: click)`) that have a newer spelling.
fn find_renames(text: &str, n: &SyntaxNode, out: &mut HashMap<usize, &'static str>) {
    if n.rule == Rule::postfix && n.children.first().is_some_and(|c| c.rule == Rule::ident) {
        let callee = &text[n.children[0].start..n.children[0].end];
        let args = n.children.get(1).filter(|c| c.rule == Rule::call_args).map_or(&[][..], |c| &c.children[..]);
        for name in args.iter().filter_map(|a| a.children.first().filter(|x| x.rule == Rule::arg_name)) {
            if let Some(current) = crate::ops::renamed_arg(callee, &text[name.start..name.end]) {
                out.insert(name.start, current);
            }
        }
    }
    for c in &n.children {
        find_renames(text, c, out);
    }
}

fn first_token(n: &SyntaxNode) -> &SyntaxNode {
    n.children.first().map_or(n, first_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(text: &str) -> String {
        format(FileId(0), text).unwrap_or_else(|d| panic!("{}", d.message))
    }

    #[test]
    fn normalises_spacing_and_blank_lines() {
        let src = "model m{dim D=4;\n\n\n\n  input x:float[B,D];let y=-x*2+f(x,axis:-1,);\n}";
        assert_eq!(
            fmt(src),
            "model m {\n  dim D = 4;\n\n  input x: float[B, D];\n  let y = -x * 2 + f(x, axis: -1);\n}\n"
        );
    }

    #[test]
    fn keeps_comments_where_they_belong() {
        let src = "// head\n\nimport \"a.recspec\"; // why\nmodel m { // open\n  // own\n  dim D = 4; /* b */\n\n  // before end\n}\n// tail\n";
        let out = fmt(src);
        assert_eq!(
            out,
            "// head\n\nimport \"a.recspec\";  // why\n\nmodel m {  // open\n  // own\n  dim D = 4; /* b */\n\n  // before end\n}\n// tail\n"
        );
        assert_eq!(fmt(&out), out);
    }

    #[test]
    fn long_argument_lists_break_one_per_line() {
        let src = "model m { let y = Something(alpha: 1111111111, beta: 2222222222, gamma: 3333333333, delta: 44444444444, epsilon: 5)(x); }";
        assert_eq!(
            fmt(src),
            "model m {\n  let y = Something(\n    alpha: 1111111111,\n    beta: 2222222222,\n    gamma: 3333333333,\n    delta: 44444444444,\n    epsilon: 5,\n  )(x);\n}\n"
        );
    }

    #[test]
    fn earlier_argument_spellings_are_rewritten() {
        let out = fmt("model m { loss a = nll(p, on: click); let b = Block(on: x)(y); }");
        assert_eq!(out, "model m {\n  loss a = nll(p, label: click);\n  let b = Block(on: x)(y);\n}\n");
    }

    #[test]
    fn a_comment_inside_arguments_breaks_them() {
        let src = "model m { let y = f(a, // first\n b); }";
        let out = fmt(src);
        assert_eq!(out, "model m {\n  let y = f(\n    a,  // first\n    b,\n  );\n}\n");
        assert_eq!(fmt(&out), out);
    }
}
