//! Parsing: spec text to [`ast::File`]. The only module that knows pest.

use crate::ast::*;
use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, Span};
use pest::iterators::Pair;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/recspec.pest"]
struct SpecParser;

/// Parses one file. A syntax error yields one diagnostic at the failing position.
pub fn parse(file: FileId, text: &str) -> Result<File, Diagnostic> {
    let mut pairs = SpecParser::parse(Rule::file, text).map_err(|e| syntax_error(file, text, e))?;
    // Rule::file always yields exactly one pair.
    let root = pairs.next().expect("grammar: file");
    let lower = Lower { file };
    let mut out = File::default();
    for item in root.into_inner() {
        match item.as_rule() {
            Rule::import => {
                let span = lower.span(&item);
                let s = item.into_inner().nth(1).expect("grammar: import has a string");
                out.imports.push(Import { path: unquote(s.as_str()), span });
            }
            Rule::block_def => out.blocks.push(lower.block(item)),
            Rule::model_def => out.models.push(lower.model(item)),
            Rule::features_def => out.features.push(lower.features(item)),
            _ => {}
        }
    }
    Ok(out)
}

/// A node of the concrete syntax tree: a grammar rule and its byte range in the text. Tokens
/// (keywords, names, literals, punctuation, and `EOI`) have no children; comments and whitespace
/// are not nodes and lie in the gaps between tokens. The formatter ([`crate::fmt`]) works on this
/// tree, so that it needs no knowledge of pest.
#[derive(Clone, Debug)]
pub struct SyntaxNode {
    pub rule: Rule,
    pub start: usize,
    pub end: usize,
    pub children: Vec<SyntaxNode>,
}

impl SyntaxNode {
    /// Whether this is a token.
    pub(crate) fn is_token(&self) -> bool {
        self.children.is_empty()
    }

    /// The tokens under this node, in text order.
    pub fn tokens<'a>(&'a self, out: &mut Vec<&'a SyntaxNode>) {
        if self.is_token() {
            out.push(self);
        }
        for c in &self.children {
            c.tokens(out);
        }
    }
}

/// Parses one file to its concrete syntax tree (root rule `file`). A syntax error yields the
/// same diagnostic as [`parse`].
pub fn parse_tree(file: FileId, text: &str) -> Result<SyntaxNode, Diagnostic> {
    fn node(p: Pair<'_, Rule>) -> SyntaxNode {
        let span = p.as_span();
        SyntaxNode {
            rule: p.as_rule(),
            start: span.start(),
            end: span.end(),
            children: p.into_inner().map(node).collect(),
        }
    }
    let mut pairs = SpecParser::parse(Rule::file, text).map_err(|e| syntax_error(file, text, e))?;
    Ok(node(pairs.next().expect("grammar: file")))
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').to_string()
}

fn syntax_error(file: FileId, text: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let end = text[pos..].chars().next().map_or(pos, |c| pos + c.len_utf8());
    let found = text[pos..].split_whitespace().next().map(|t| t.chars().take(16).collect::<String>());
    let message = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.sort();
            names.dedup();
            match names.len() {
                0 => "unexpected input".to_string(),
                1 => format!("expected {}", names[0]),
                _ => {
                    let last = names.pop().unwrap_or_default();
                    format!("expected {} or {}", names.join(", "), last)
                }
            }
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    let label = match found {
        Some(t) => format!("found `{t}`"),
        None => "found end of file".to_string(),
    };
    Diagnostic::error(Code::Syntax, format!("syntax error: {message}")).at(Span::new(file, pos, end), label)
}

/// Reader-facing names for grammar rules in "expected ..." messages.
fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::import | Rule::kw_import => "`import`",
        Rule::block_def | Rule::kw_block => "`block`",
        Rule::model_def | Rule::kw_model => "`model`",
        Rule::features_def | Rule::kw_features => "`features`",
        Rule::ident => "a name",
        Rule::arg_name => "an argument name",
        Rule::value_kind => "a kind (int, float, bool, symbol, list)",
        Rule::dtype | Rule::tensor_type => "a tensor type (id[..], float[..], mask[..])",
        Rule::dim_stmt
        | Rule::param_stmt
        | Rule::input_stmt
        | Rule::seq_stmt
        | Rule::side_stmt
        | Rule::label_stmt
        | Rule::weight_stmt
        | Rule::let_stmt
        | Rule::output_stmt
        | Rule::loss_stmt
        | Rule::return_stmt
        | Rule::source_stmt
        | Rule::split_stmt
        | Rule::feature_def
        | Rule::label_def
        | Rule::seq_def
        | Rule::side_def => "a statement",
        Rule::expr
        | Rule::unary
        | Rule::postfix
        | Rule::int
        | Rule::float
        | Rule::boolean
        | Rule::string
        | Rule::list
        | Rule::paren_expr => "an expression",
        Rule::neg => "an expression",
        Rule::add | Rule::sub | Rule::mul | Rule::div => "an operator",
        Rule::call_args => "`(`",
        Rule::field => "`.`",
        Rule::vocab | Rule::kw_vocab => "`vocab`",
        Rule::kw_hashed => "`hashed`",
        Rule::semi => "`;`",
        Rule::comma => "`,`",
        Rule::colon => "`:`",
        Rule::dot => "`.`",
        Rule::assign => "`=`",
        Rule::arrow => "`->`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::arg => "an argument",
        Rule::param_decl | Rule::param_list => "a parameter",
        Rule::port | Rule::port_list => "a tensor input",
        _ => return None,
    })
}

struct Lower {
    file: FileId,
}

/// Skips punctuation and keyword tokens, which carry no meaning once parsed.
fn meaningful(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| {
        !matches!(
            p.as_rule(),
            Rule::semi
                | Rule::comma
                | Rule::colon
                | Rule::dot
                | Rule::assign
                | Rule::arrow
                | Rule::lparen
                | Rule::rparen
                | Rule::lbrace
                | Rule::rbrace
                | Rule::lbracket
                | Rule::rbracket
                | Rule::kw_import
                | Rule::kw_model
                | Rule::kw_block
                | Rule::kw_dim
                | Rule::kw_param
                | Rule::kw_input
                | Rule::kw_seq
                | Rule::kw_side
                | Rule::kw_label
                | Rule::kw_weight
                | Rule::kw_let
                | Rule::kw_output
                | Rule::kw_loss
                | Rule::kw_return
                | Rule::kw_vocab
                | Rule::kw_features
                | Rule::kw_source
                | Rule::kw_split
                | Rule::kw_feature
        )
    })
}

impl Lower {
    fn span(&self, p: &Pair<'_, Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    fn ident(&self, p: Pair<'_, Rule>) -> Ident {
        Ident { name: p.as_str().to_string(), span: self.span(&p) }
    }

    fn model(&self, p: Pair<'_, Rule>) -> ModelDef {
        let span = self.span(&p);
        let mut it = meaningful(p);
        // model_def = kw_model ident { stmt* }
        let name = self.ident(it.next().expect("grammar: model name"));
        let body = it.map(|s| self.stmt(s)).collect();
        ModelDef { name, body, span }
    }

    fn features(&self, p: Pair<'_, Rule>) -> FeaturesDef {
        let span = self.span(&p);
        let mut it = meaningful(p);
        // features_def = kw_features ident { feature_stmt* }
        let name = self.ident(it.next().expect("grammar: feature set name"));
        let body = it.map(|s| self.feature_stmt(s)).collect();
        FeaturesDef { name, body, span }
    }

    fn feature_stmt(&self, p: Pair<'_, Rule>) -> FeatureStmt {
        let span = self.span(&p);
        let rule = p.as_rule();
        let parts: Vec<Pair<'_, Rule>> = meaningful(p).collect();
        let mut it = parts.into_iter();
        let mut next = || it.next().expect("grammar: feature statement part");
        let kind = match rule {
            Rule::dim_stmt => FeatureStmtKind::Dim { name: self.ident(next()), value: self.expr(next()) },
            Rule::source_stmt => FeatureStmtKind::Source { value: self.expr(next()) },
            Rule::split_stmt => FeatureStmtKind::Split { value: self.expr(next()) },
            Rule::feature_def => FeatureStmtKind::Feature { name: self.ident(next()), value: self.expr(next()) },
            Rule::label_def => FeatureStmtKind::Label { name: self.ident(next()), value: self.expr(next()) },
            Rule::seq_def => FeatureStmtKind::Seq { name: self.ident(next()), value: self.expr(next()) },
            // side_def is the only feature statement rule left.
            _ => {
                let seq = self.ident(next());
                let name = self.ident(next());
                FeatureStmtKind::Side { seq, name, value: self.expr(next()) }
            }
        };
        FeatureStmt { kind, span }
    }

    fn block(&self, p: Pair<'_, Rule>) -> BlockDef {
        let span = self.span(&p);
        let mut name = None;
        let mut params = vec![];
        let mut ports = vec![];
        let mut ret = None;
        let mut body = vec![];
        for part in meaningful(p) {
            match part.as_rule() {
                Rule::ident => name = Some(self.ident(part)),
                Rule::param_list => params = meaningful(part).map(|d| self.param_decl(d)).collect(),
                Rule::port_list => {
                    ports = meaningful(part)
                        .map(|port| {
                            let mut it = meaningful(port);
                            let name = self.ident(it.next().expect("grammar: port name"));
                            let ty = self.tensor_type(it.next().expect("grammar: port type"));
                            Port { name, ty }
                        })
                        .collect()
                }
                Rule::tensor_type => ret = Some(self.tensor_type(part)),
                _ => body.push(self.stmt(part)),
            }
        }
        BlockDef {
            name: name.expect("grammar: block name"),
            params,
            ports,
            ret: ret.expect("grammar: block return type"),
            body,
            span,
        }
    }

    fn param_decl(&self, p: Pair<'_, Rule>) -> ParamDecl {
        let mut it = meaningful(p);
        let name = self.ident(it.next().expect("grammar: param name"));
        let kind = value_kind(it.next().expect("grammar: param kind").as_str());
        let default = it.next().map(|e| self.expr(e));
        ParamDecl { name, kind, default }
    }

    fn tensor_type(&self, p: Pair<'_, Rule>) -> TensorTypeExpr {
        let span = self.span(&p);
        let mut it = meaningful(p);
        let dtype = match it.next().expect("grammar: dtype").as_str() {
            "id" => DType::Id,
            "mask" => DType::Mask,
            _ => DType::Float,
        };
        TensorTypeExpr { dtype, dims: it.map(|e| self.expr(e)).collect(), span }
    }

    fn stmt(&self, p: Pair<'_, Rule>) -> Stmt {
        let span = self.span(&p);
        let rule = p.as_rule();
        let parts: Vec<Pair<'_, Rule>> = meaningful(p).collect();
        let mut it = parts.into_iter();
        let mut next = || it.next().expect("grammar: statement part");
        let kind = match rule {
            Rule::dim_stmt => StmtKind::Dim { name: self.ident(next()), value: self.expr(next()) },
            Rule::param_stmt => {
                let name = self.ident(next());
                let kind = value_kind(next().as_str());
                StmtKind::Param { name, kind, value: self.expr(next()) }
            }
            Rule::input_stmt | Rule::seq_stmt => {
                let name = self.ident(next());
                let ty = self.tensor_type(next());
                let (vocab, hashed) = match it.next() {
                    Some(v) => {
                        let mut parts = meaningful(v);
                        let size = self.expr(parts.next().expect("grammar: vocab expr"));
                        (Some(size), parts.next().is_some_and(|p| p.as_rule() == Rule::kw_hashed))
                    }
                    None => (None, false),
                };
                if rule == Rule::seq_stmt {
                    StmtKind::Seq { name, ty, vocab, hashed }
                } else {
                    StmtKind::Input { name, ty, vocab, hashed }
                }
            }
            Rule::side_stmt => {
                let seq = self.ident(next());
                let name = self.ident(next());
                StmtKind::Side { seq, name, ty: self.tensor_type(next()) }
            }
            Rule::label_stmt => StmtKind::Label { names: it.map(|i| self.ident(i)).collect() },
            Rule::weight_stmt => StmtKind::Weight { name: self.ident(next()) },
            Rule::let_stmt => StmtKind::Let { name: self.ident(next()), value: self.expr(next()) },
            Rule::output_stmt => StmtKind::Output { name: self.ident(next()), value: self.expr(next()) },
            Rule::loss_stmt => StmtKind::Loss { name: self.ident(next()), value: self.expr(next()) },
            // return_stmt is the only statement rule left.
            _ => StmtKind::Return { value: self.expr(next()) },
        };
        Stmt { kind, span }
    }

    /// `expr = unary (bin_op unary)*`, folded with `*` `/` binding tighter than `+` `-`.
    fn expr(&self, p: Pair<'_, Rule>) -> Expr {
        let mut operands = vec![];
        let mut ops = vec![];
        for part in p.into_inner() {
            match part.as_rule() {
                Rule::add => ops.push(BinOp::Add),
                Rule::sub => ops.push(BinOp::Sub),
                Rule::mul => ops.push(BinOp::Mul),
                Rule::div => ops.push(BinOp::Div),
                _ => operands.push(self.unary(part)),
            }
        }
        fold_binary(operands, ops)
    }

    fn unary(&self, p: Pair<'_, Rule>) -> Expr {
        let span = self.span(&p);
        let mut negs = 0;
        let mut inner = None;
        for part in p.into_inner() {
            match part.as_rule() {
                Rule::neg => negs += 1,
                _ => inner = Some(self.postfix(part)),
            }
        }
        let mut e = inner.expect("grammar: unary has a postfix");
        for _ in 0..negs {
            e = Expr { kind: ExprKind::Neg(Box::new(e)), span };
        }
        e
    }

    fn postfix(&self, p: Pair<'_, Rule>) -> Expr {
        let mut it = p.into_inner();
        let mut e = self.primary(it.next().expect("grammar: postfix has a primary"));
        for suffix in it {
            let span = e.span.to(self.span(&suffix));
            e = match suffix.as_rule() {
                Rule::call_args => {
                    let args = meaningful(suffix).map(|a| self.arg(a)).collect();
                    Expr { kind: ExprKind::Call(Box::new(e), args), span }
                }
                _ => {
                    let name = self.ident(meaningful(suffix).next().expect("grammar: field name"));
                    Expr { kind: ExprKind::Field(Box::new(e), name), span }
                }
            };
        }
        e
    }

    fn arg(&self, p: Pair<'_, Rule>) -> Arg {
        let parts: Vec<Pair<'_, Rule>> = meaningful(p).collect();
        match parts.len() {
            2 => {
                let mut it = parts.into_iter();
                let name = self.ident(it.next().expect("grammar: arg name"));
                Arg { name: Some(name), value: self.expr(it.next().expect("grammar: arg value")) }
            }
            _ => Arg { name: None, value: self.expr(parts.into_iter().next().expect("grammar: arg value")) },
        }
    }

    fn primary(&self, p: Pair<'_, Rule>) -> Expr {
        let span = self.span(&p);
        let kind = match p.as_rule() {
            Rule::int => match p.as_str().parse::<i64>() {
                Ok(v) => ExprKind::Int(v),
                // Out-of-range literals become floats; the checker rejects them where an int is needed.
                Err(_) => ExprKind::Float(p.as_str().parse::<f64>().unwrap_or(f64::INFINITY)),
            },
            Rule::float => ExprKind::Float(p.as_str().parse::<f64>().unwrap_or(f64::NAN)),
            Rule::boolean => ExprKind::Bool(p.as_str() == "true"),
            Rule::string => ExprKind::Str(unquote(p.as_str())),
            Rule::list => ExprKind::List(meaningful(p).map(|e| self.expr(e)).collect()),
            Rule::ident => ExprKind::Name(p.as_str().to_string()),
            // paren_expr = ( expr )
            _ => return self.expr(meaningful(p).next().expect("grammar: paren has an expr")),
        };
        Expr { kind, span }
    }
}

fn value_kind(s: &str) -> ValueKind {
    match s {
        "int" => ValueKind::Int,
        "float" => ValueKind::Float,
        "bool" => ValueKind::Bool,
        "symbol" => ValueKind::Symbol,
        _ => ValueKind::List,
    }
}

fn precedence(op: BinOp) -> u8 {
    match op {
        BinOp::Add | BinOp::Sub => 1,
        BinOp::Mul | BinOp::Div => 2,
    }
}

/// Left-associative precedence folding (shunting-yard over a flat operand list).
fn fold_binary(operands: Vec<Expr>, ops: Vec<BinOp>) -> Expr {
    let mut out: Vec<Expr> = vec![];
    let mut stack: Vec<BinOp> = vec![];
    let mut operands = operands.into_iter();
    let reduce = |out: &mut Vec<Expr>, op: BinOp| {
        let b = out.pop().expect("operand");
        let a = out.pop().expect("operand");
        let span = a.span.to(b.span);
        out.push(Expr { kind: ExprKind::Binary(op, Box::new(a), Box::new(b)), span });
    };
    out.push(operands.next().expect("grammar: expr has an operand"));
    for op in ops {
        while let Some(&top) = stack.last() {
            if precedence(top) >= precedence(op) {
                stack.pop();
                reduce(&mut out, top);
            } else {
                break;
            }
        }
        stack.push(op);
        out.push(operands.next().expect("grammar: operator has a right operand"));
    }
    while let Some(op) = stack.pop() {
        reduce(&mut out, op);
    }
    out.pop().expect("operand")
}
