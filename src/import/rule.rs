//! Rules: the small boolean expressions of a mapping (`rating >= 4 and action != "skip"`),
//! parsed once when the mapping loads and evaluated per event.
//!
//! # Grammar
//!
//! Lowest precedence first; keywords are lower-case.
//!
//! ```text
//! rule    = or
//! or      = and { "or" and }
//! and     = not { "and" not }
//! not     = "not" not | atom
//! atom    = "true" | "false" | "(" or ")" | column op literal
//! column  = name | `any text but a backtick`
//! name    = (letter | "_") { letter | digit | "_" | ":" | "." | "-" }
//! op      = ">=" | ">" | "<=" | "<" | "==" | "!="
//! literal = number | "double-quoted text" | 'single-quoted text'   (escapes \" \' and \\)
//! ```
//!
//! A comparison with a number reads the column's value as a number (surrounding white space
//! ignored); one with text compares the raw value exactly, with `==` or `!=` only. `and` and
//! `or` stop early, so `action == "click" and dwell >= 5` never reads `dwell` of other actions.

use std::fmt;

/// A parsed rule. Columns are held as slots: indices into the values of an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    Const(bool),
    Compare { column: String, slot: usize, op: Op, literal: Literal },
    Not(Box<Rule>),
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Ge => ord != Less,
            Op::Gt => ord == Greater,
            Op::Le => ord != Greater,
            Op::Lt => ord == Less,
            Op::Eq => ord == Equal,
            Op::Ne => ord != Equal,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
}

/// A rule that does not parse: the 1-based character position in the rule text, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {} of the rule: {}", self.position, self.message)
    }
}

/// Why a rule could not be evaluated on an event: a value compared with a number is not one.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalError {
    pub column: String,
    pub value: String,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column `{}` is {}, not a number", self.column, quoted(&self.value))
    }
}

/// A value as a message shows it: double-quoted, control characters escaped.
pub(crate) fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Parses a number the way rules read column values: trimmed, finite or not a number at all.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|x| !x.is_nan())
}

impl Rule {
    /// Parses `text`; `slot_of` gives each column named in it its slot.
    pub fn parse(text: &str, slot_of: &mut dyn FnMut(&str) -> usize) -> Result<Rule, SyntaxError> {
        let tokens = lex(text)?;
        let mut p = Parser { tokens, at: 0, end: text.chars().count() + 1, slot_of };
        let rule = p.or()?;
        match p.peek() {
            None => Ok(rule),
            Some((pos, t)) => {
                Err(SyntaxError { position: *pos, message: format!("expected `and`, `or` or the end, found {t}") })
            }
        }
    }

    /// Evaluates the rule on one event's values (indexed by slot).
    pub fn eval(&self, values: &[String]) -> Result<bool, EvalError> {
        Ok(match self {
            Rule::Const(b) => *b,
            Rule::Not(r) => !r.eval(values)?,
            Rule::And(a, b) => a.eval(values)? && b.eval(values)?,
            Rule::Or(a, b) => a.eval(values)? || b.eval(values)?,
            Rule::Compare { column, slot, op, literal } => {
                let value = &values[*slot];
                match literal {
                    Literal::Text(t) => op.holds(value.as_str().cmp(t.as_str())),
                    Literal::Number(n) => {
                        let x = parse_number(value)
                            .ok_or_else(|| EvalError { column: column.clone(), value: value.clone() })?;
                        x.partial_cmp(n).is_some_and(|o| op.holds(o))
                    }
                }
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Name(String),
    Number(f64),
    Text(String),
    Op(Op),
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Name(n) => write!(f, "`{n}`"),
            Token::Number(x) => write!(f, "the number {x}"),
            Token::Text(t) => write!(f, "the text {}", quoted(t)),
            Token::Op(op) => write!(f, "`{}`", op_text(*op)),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
        }
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Ge => ">=",
        Op::Gt => ">",
        Op::Le => "<=",
        Op::Lt => "<",
        Op::Eq => "==",
        Op::Ne => "!=",
    }
}

/// Splits the rule into tokens with their 1-based character positions.
fn lex(text: &str) -> Result<Vec<(usize, Token)>, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    let error = |i: usize, message: String| SyntaxError { position: i + 1, message };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let next = chars.get(i + 1).copied();
        let token = match c {
            _ if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Token::Open
            }
            ')' => {
                i += 1;
                Token::Close
            }
            '>' | '<' | '=' | '!' => {
                let op = match (c, next) {
                    ('>', Some('=')) => Op::Ge,
                    ('<', Some('=')) => Op::Le,
                    ('=', Some('=')) => Op::Eq,
                    ('!', Some('=')) => Op::Ne,
                    ('>', _) => Op::Gt,
                    ('<', _) => Op::Lt,
                    _ => return Err(error(i, format!("`{c}` is not an operator (use ==, !=, >=, >, <=, <)"))),
                };
                i += if matches!(op, Op::Gt | Op::Lt) { 1 } else { 2 };
                Token::Op(op)
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(error(start, format!("unterminated text: a closing `{quote}` is missing"))),
                        Some(q) if *q == quote => break,
                        Some('\\') => match chars.get(i + 1) {
                            Some(e @ ('"' | '\'' | '\\')) => {
                                s.push(*e);
                                i += 2;
                            }
                            _ => return Err(error(i, "only \\\", \\' and \\\\ are escapes in rule text".into())),
                        },
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                Token::Text(s)
            }
            '`' => {
                let close = chars[i + 1..].iter().position(|ch| *ch == '`');
                let Some(len) = close else {
                    return Err(error(start, "unterminated column name: a closing backtick is missing".into()));
                };
                let name: String = chars[i + 1..i + 1 + len].iter().collect();
                if name.is_empty() {
                    return Err(error(start, "empty column name".into()));
                }
                i += len + 2;
                Token::Name(name)
            }
            _ if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.') && next.is_some_and(|n| n.is_ascii_digit() || n == '.')) =>
            {
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '.' | '_')
                        || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let x = text
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| error(start, format!("`{text}` is not a number")))?;
                Token::Number(x)
            }
            _ if c.is_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | ':' | '.' | '-')) {
                    i += 1;
                }
                Token::Name(chars[start..i].iter().collect())
            }
            _ => return Err(error(i, format!("unexpected `{c}`"))),
        };
        out.push((start + 1, token));
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<(usize, Token)>,
    at: usize,
    /// The position just past the text, where "found the end" errors point.
    end: usize,
    slot_of: &'a mut dyn FnMut(&str) -> usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&(usize, Token)> {
        self.tokens.get(self.at)
    }

    fn keyword(&mut self, word: &str) -> bool {
        let hit = matches!(self.peek(), Some((_, Token::Name(n))) if n == word);
        self.at += usize::from(hit);
        hit
    }

    fn expected(&self, what: &str) -> SyntaxError {
        match self.peek() {
            Some((pos, t)) => SyntaxError { position: *pos, message: format!("expected {what}, found {t}") },
            None => SyntaxError { position: self.end, message: format!("expected {what}, found the end of the rule") },
        }
    }

    fn or(&mut self) -> Result<Rule, SyntaxError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Rule::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Rule, SyntaxError> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Rule::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Rule, SyntaxError> {
        if self.keyword("not") {
            return Ok(Rule::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Rule, SyntaxError> {
        const WHAT: &str = "a comparison (COLUMN OP VALUE), `true`, `false`, `not` or `(`";
        let Some((_, token)) = self.peek().cloned() else {
            return Err(self.expected(WHAT));
        };
        match token {
            Token::Open => {
                self.at += 1;
                let inner = self.or()?;
                if !matches!(self.peek(), Some((_, Token::Close))) {
                    return Err(self.expected("`)`"));
                }
                self.at += 1;
                Ok(inner)
            }
            Token::Name(n) if n == "true" || n == "false" => {
                self.at += 1;
                Ok(Rule::Const(n == "true"))
            }
            Token::Name(n) if n == "and" || n == "or" => Err(self.expected(WHAT)),
            Token::Name(column) => {
                self.at += 1;
                let Some((op_pos, Token::Op(op))) = self.peek().cloned() else {
                    return Err(self.expected("a comparison operator (>=, >, <=, <, ==, !=)"));
                };
                self.at += 1;
                let literal = match self.peek() {
                    Some((_, Token::Number(x))) => Literal::Number(*x),
                    Some((_, Token::Text(t))) => Literal::Text(t.clone()),
                    _ => return Err(self.expected("a number or a quoted text")),
                };
                if matches!(literal, Literal::Text(_)) && !matches!(op, Op::Eq | Op::Ne) {
                    return Err(SyntaxError {
                        position: op_pos,
                        message: format!("text compares only with == or !=, not {}", op_text(op)),
                    });
                }
                self.at += 1;
                let slot = (self.slot_of)(&column);
                Ok(Rule::Compare { column, slot, op, literal })
            }
            _ => Err(self.expected(WHAT)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses with slots in order of first mention; returns the rule and the column names.
    fn parse(text: &str) -> Result<(Rule, Vec<String>), SyntaxError> {
        let mut names: Vec<String> = vec![];
        let rule = Rule::parse(text, &mut |c| match names.iter().position(|n| n == c) {
            Some(i) => i,
            None => {
                names.push(c.to_string());
                names.len() - 1
            }
        })?;
        Ok((rule, names))
    }

    /// Evaluates `text` on `row` (column name, value pairs).
    fn eval(text: &str, row: &[(&str, &str)]) -> Result<bool, EvalError> {
        let (rule, names) = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let values: Vec<String> =
            names.iter().map(|n| row.iter().find(|(k, _)| k == n).expect("column in row").1.to_string()).collect();
        rule.eval(&values)
    }

    fn error(text: &str) -> String {
        parse(text).map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn comparisons_on_numbers_and_text() {
        let row = [("rating:float", " 4 "), ("action", "click"), ("dwell", "12.5")];
        for (text, want) in [
            ("rating:float >= 4", true),
            ("rating:float > 4", false),
            ("rating:float <= 4.0", true),
            ("rating:float < 4", false),
            ("rating:float == 4", true),
            ("rating:float != 4", false),
            ("action == \"click\"", true),
            ("action != \"click\"", false),
            ("dwell >= 1e1", true),
            ("dwell > -3", true),
            ("`dwell` < 12.5", false),
            ("true", true),
            ("false", false),
        ] {
            assert_eq!(eval(text, &row).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_than_and() {
        let row = [("a", "1"), ("b", "0"), ("c", "1")];
        // a or (b and c): true; (a or b) and c would also be true, so use c = 0 below.
        assert!(eval("a == 1 or b == 1 and c == 1", &row).unwrap());
        let row = [("a", "1"), ("b", "0"), ("c", "0")];
        assert!(eval("a == 1 or b == 1 and c == 1", &row).unwrap(), "or is looser than and");
        assert!(!eval("(a == 1 or b == 1) and c == 1", &row).unwrap(), "parentheses group");
        assert!(!eval("not a == 1 or b == 1", &row).unwrap(), "(not a) or b");
        assert!(eval("not (a == 1 and b == 1)", &row).unwrap());
        let (rule, _) = parse("a == 1 or b == 1 and c == 1").unwrap();
        assert!(matches!(rule, Rule::Or(_, ref r) if matches!(**r, Rule::And(_, _))), "{rule:?}");
    }

    #[test]
    fn and_and_or_stop_early() {
        let row = [("action", "none"), ("dwell", "")];
        assert!(!eval("action == \"click\" and dwell >= 5", &row).unwrap());
        assert!(eval("action == \"none\" or dwell >= 5", &row).unwrap());
        let e = eval("action == \"none\" and dwell >= 5", &row).unwrap_err();
        assert_eq!(e.to_string(), "column `dwell` is \"\", not a number");
    }

    #[test]
    fn text_literals_escape_quotes_and_backslashes() {
        assert!(eval(r#"t == "say \"hi\" \\ bye""#, &[("t", r#"say "hi" \ bye"#)]).unwrap());
    }

    /// Single quotes, for rules written inside a spec's strings (which have no escapes).
    #[test]
    fn text_literals_take_single_quotes_too() {
        assert!(eval("action == 'click'", &[("action", "click")]).unwrap());
        assert!(!eval("action == 'click'", &[("action", "clicks")]).unwrap());
        assert!(eval(r#"t == 'it\'s "x"'"#, &[("t", r#"it's "x""#)]).unwrap());
        assert_eq!(error("a == 'x"), "at character 6 of the rule: unterminated text: a closing `'` is missing");
    }

    #[test]
    fn syntax_errors_point_at_the_character() {
        assert_eq!(
            error("rating >= "),
            "at character 11 of the rule: expected a number or a quoted text, found the end of the rule"
        );
        assert_eq!(
            error("rating = 4"),
            "at character 8 of the rule: `=` is not an operator (use ==, !=, >=, >, <=, <)"
        );
        assert_eq!(error("rating >= 4 and"), "at character 16 of the rule: expected a comparison (COLUMN OP VALUE), `true`, `false`, `not` or `(`, found the end of the rule");
        assert_eq!(
            error("rating >= 4 rating"),
            "at character 13 of the rule: expected `and`, `or` or the end, found `rating`"
        );
        assert_eq!(error("(a == 1"), "at character 8 of the rule: expected `)`, found the end of the rule");
        assert_eq!(error("a > \"x\""), "at character 3 of the rule: text compares only with == or !=, not >");
        assert_eq!(error("a == \"x"), "at character 6 of the rule: unterminated text: a closing `\"` is missing");
        assert_eq!(error("a == 4..2"), "at character 6 of the rule: `4..2` is not a number");
        assert_eq!(error("a"), "at character 2 of the rule: expected a comparison operator (>=, >, <=, <, ==, !=), found the end of the rule");
        assert_eq!(error("a == b"), "at character 6 of the rule: expected a number or a quoted text, found `b`");
        assert_eq!(error("a == 1 & b == 2"), "at character 8 of the rule: unexpected `&`");
        assert_eq!(error(""), "at character 1 of the rule: expected a comparison (COLUMN OP VALUE), `true`, `false`, `not` or `(`, found the end of the rule");
        assert_eq!(error("ä == 1 and `` == 2"), "at character 12 of the rule: empty column name");
    }

    #[test]
    fn non_numbers_are_evaluation_errors() {
        assert_eq!(eval("r > 1", &[("r", "n/a")]).unwrap_err().to_string(), "column `r` is \"n/a\", not a number");
        assert!(eval("r > 1", &[("r", "NaN")]).is_err(), "NaN is not a number here");
    }
}
