//! Feature sets: how a data set's raw events, and the user and item tables joined to them,
//! become a model's inputs and labels (`features NAME { ... }` in a spec, docs/features.md).
//!
//! A [`FeatureSet`] is what the checker makes of a `features` definition once every argument is
//! typed, every column is known to come from a declared source and every feature agrees with
//! the model input it fills. Like the IR it holds no spans and no AST types; it is part of the
//! compiled [`crate::ir::Graph`], so renderings, the model card and `recspec diff` show it.
//!
//! Architecture invariant: one feature fills one model input, and every stored model input
//! (features, sequences, side features) and every label stream has exactly one feature or
//! label rule when a graph carries a feature set.

use crate::types::format_float;
use std::fmt;

/// A checked `features` definition.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSet {
    pub name: String,
    pub events: EventSource,
    pub users: Option<TableSource>,
    pub items: Option<TableSource>,
    pub split: Split,
    /// Dims the set binds (`dim T = 30;`), applied to the model as a data set's `data.toml`
    /// dims are: where the model declares them, below `--set`.
    pub dims: Vec<(String, i64)>,
    /// Label streams by rule, in declaration order.
    pub labels: Vec<LabelRule>,
    /// Features in declaration order; each fills the model input named like it.
    pub features: Vec<Feature>,
    /// Where the statements are, for errors found when the set is used (the import names the
    /// set's line). Not part of what the set says.
    pub at: Located,
}

/// Where a feature set's statements are: the event source's, each label's (as `labels`) and each
/// feature's (as `features`). Any two are equal: moving a statement changes no set, no graph and
/// no diff.
#[derive(Clone, Debug, Default)]
pub struct Located {
    pub events: Option<crate::source::Span>,
    pub labels: Vec<crate::source::Span>,
    pub features: Vec<crate::source::Span>,
}

impl PartialEq for Located {
    fn eq(&self, _: &Located) -> bool {
        true
    }
}

/// `source events("FILE", user: COL, item: COL, time: COL, format: F, delimiter: D)`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSource {
    pub file: String,
    pub user: String,
    pub item: String,
    pub time: String,
    pub format: Option<String>,
    pub delimiter: Option<String>,
}

/// `source users("FILE", key: COL)` or `source items("FILE", key: COL, cluster: COL,
/// creator: COL)`.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSource {
    pub file: String,
    pub key: String,
    pub format: Option<String>,
    pub delimiter: Option<String>,
    /// Items only: the columns whose first token is each item's cluster and creator in the data
    /// set's `items.jsonl` (what `recspec responsiveness` reads).
    pub cluster: Option<String>,
    pub creator: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Split {
    /// One global time cut: the last `test` of the events by time are test, the `valid` before
    /// them valid.
    Time { valid: f64, test: f64 },
    /// Each user's last event is test and the one before valid (users with at least 3 events).
    LeaveLastOut,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LabelRule {
    pub name: String,
    /// The rule's text (`docs/import.md`, Rules), parsed when the set was checked.
    pub rule: String,
}

/// A column of the event log or of a joined table: `rating`, `user.age`, `item.genres`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Column {
    Event(String),
    User(String),
    Item(String),
}

impl Column {
    /// `user.age` is the user table's `age`, `item.genres` the item table's `genres`; anything
    /// else names an event column.
    pub fn parse(text: &str) -> Column {
        if let Some(c) = text.strip_prefix("user.") {
            Column::User(c.to_string())
        } else if let Some(c) = text.strip_prefix("item.") {
            Column::Item(c.to_string())
        } else {
            Column::Event(text.to_string())
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Event(c) => write!(f, "{c}"),
            Column::User(c) => write!(f, "user.{c}"),
            Column::Item(c) => write!(f, "item.{c}"),
        }
    }
}

/// One feature: the model input it fills and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Feature {
    /// The model input: `item`, `clicks`, `history.dwell`.
    pub input: String,
    pub kind: FeatureKind,
}

/// How a numeric column becomes a float (statistics fitted on the training split).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scaling {
    /// The value as written.
    Raw,
    /// `ln(1 + x)`.
    Log1p,
    /// `(x - mean) / std`.
    ZScore,
    /// `(x - min) / (max - min)`.
    MinMax,
}

impl Scaling {
    /// The feature call that spells it.
    pub fn name(self) -> &'static str {
        match self {
            Scaling::Raw => "float",
            Scaling::Log1p => "log1p",
            Scaling::ZScore => "zscore",
            Scaling::MinMax => "minmax",
        }
    }

    /// Whether its parameters are fitted on the training split.
    pub fn fitted(self) -> bool {
        matches!(self, Scaling::ZScore | Scaling::MinMax)
    }
}

/// How a categorical value becomes an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ids {
    /// Numbered by descending training count; values seen fewer than `min_count` times in the
    /// training split, and unseen ones, share the out-of-vocabulary id 0.
    Vocabulary { min_count: u64 },
    /// Hashed into this many buckets (`data::hash_bucket`).
    Hashed { buckets: u64 },
}

impl Ids {
    /// The arguments that spell it (`, min_count: 5`, `, buckets: 1000`; nothing for the default).
    fn args(&self) -> String {
        match self {
            Ids::Vocabulary { min_count: 1 } => String::new(),
            Ids::Vocabulary { min_count } => format!(", min_count: {min_count}"),
            Ids::Hashed { buckets } => format!(", buckets: {buckets}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum FeatureKind {
    /// `item()`: the event's item, numbered on the training split or hashed; `id[B]`.
    Item { ids: Ids },
    /// `categorical(COL, vocab: DIM)`: one id per row; `id[B]`. `vocab`: the dim a data set
    /// sets to a counted vocabulary's size (none when hashed).
    Categorical { column: Column, ids: Ids, vocab: Option<String> },
    /// `fields([COL...])`: one id per column in one shared id space (`docs/import.md`); `id[B, n]`.
    Fields { columns: Vec<Column> },
    /// `profile([COL...])`: the user's id, then one id per column; `id[B, n + 1]`.
    Profile { columns: Vec<Column> },
    /// `float(COL)`, `log1p(COL)`, `zscore(COL)`, `minmax(COL)`: `float[B]` or `float[B, 1]`.
    /// `na`: texts that stand for a missing value (`"unknown"`), besides an empty cell.
    Numeric { column: Column, scaling: Scaling, missing: Option<f64>, na: Vec<String> },
    /// `bucketize(COL, [b1, ..., bn])`: id 0 below b1, i for bi <= x < b(i+1), n from bn; a
    /// missing value gets `missing` or id 0. `id[B]` with a vocabulary of at least n + 1.
    Bucketize { column: Column, boundaries: Vec<f64>, missing: Option<u64>, na: Vec<String> },
    /// `tokens(COL, sep: S, max: K)`: the cell split at `sep`, empty tokens dropped, the first K
    /// in cell order kept; a sequence input `id[B, K]` with its mask.
    Tokens { column: Column, sep: String, max: i64, ids: Ids, vocab: Option<String> },
    /// `cross([COL, COL...], buckets: N)`: the hash of the values together; `id[B]`, vocab N.
    Cross { columns: Vec<Column>, buckets: u64 },
    /// `history(RULE, length: T)`: the items of the user's strictly earlier events that the
    /// rule admits, most recent last, at most T; a sequence input `id[B, T]`.
    /// `dim`: the set's dim that `length` names (`length: T`), which the data set writes.
    History { when: String, length: i64, dim: Option<String> },
    /// `column(COL)`, `log1p(COL)` on a sequence: the entry's event column; a side input.
    SideColumn { column: String, log1p: bool },
    /// `flag(RULE)` on a sequence: 1.0 where the rule holds for the entry's event, else 0.0.
    SideFlag { when: String },
}

impl FeatureKind {
    /// The feature call that spells it.
    pub fn call(&self) -> &'static str {
        match self {
            FeatureKind::Item { .. } => "item",
            FeatureKind::Categorical { .. } => "categorical",
            FeatureKind::Fields { .. } => "fields",
            FeatureKind::Profile { .. } => "profile",
            FeatureKind::Numeric { scaling, .. } => scaling.name(),
            FeatureKind::Bucketize { .. } => "bucketize",
            FeatureKind::Tokens { .. } => "tokens",
            FeatureKind::Cross { .. } => "cross",
            FeatureKind::History { .. } => "history",
            FeatureKind::SideColumn { log1p: false, .. } => "column",
            FeatureKind::SideColumn { log1p: true, .. } => "log1p",
            FeatureKind::SideFlag { .. } => "flag",
        }
    }

    /// Whether fitting reads the training split for it (a vocabulary or statistics).
    pub fn fitted(&self) -> bool {
        match self {
            FeatureKind::Item { ids } | FeatureKind::Categorical { ids, .. } | FeatureKind::Tokens { ids, .. } => {
                matches!(ids, Ids::Vocabulary { .. })
            }
            FeatureKind::Fields { .. } | FeatureKind::Profile { .. } => true,
            FeatureKind::Numeric { scaling, .. } => scaling.fitted(),
            FeatureKind::Bucketize { .. }
            | FeatureKind::Cross { .. }
            | FeatureKind::History { .. }
            | FeatureKind::SideColumn { .. }
            | FeatureKind::SideFlag { .. } => false,
        }
    }
}

impl FeatureKind {
    /// The statement that makes it: `feature`, `seq` or `side`.
    pub fn statement(&self) -> &'static str {
        match self {
            FeatureKind::History { .. } | FeatureKind::Tokens { .. } => "seq",
            FeatureKind::SideColumn { .. } | FeatureKind::SideFlag { .. } => "side",
            FeatureKind::Item { .. }
            | FeatureKind::Categorical { .. }
            | FeatureKind::Fields { .. }
            | FeatureKind::Profile { .. }
            | FeatureKind::Numeric { .. }
            | FeatureKind::Bucketize { .. }
            | FeatureKind::Cross { .. } => "feature",
        }
    }
}

fn quoted(c: &Column) -> String {
    format!("{:?}", c.to_string())
}

fn na_arg(na: &[String]) -> String {
    if na.is_empty() {
        return String::new();
    }
    let texts: Vec<String> = na.iter().map(|t| format!("{t:?}")).collect();
    format!(", na: [{}]", texts.join(", "))
}

fn vocab_arg(vocab: &Option<String>) -> String {
    vocab.as_ref().map(|v| format!(", vocab: {v}")).unwrap_or_default()
}

fn columns(cs: &[Column]) -> String {
    let names: Vec<String> = cs.iter().map(quoted).collect();
    format!("[{}]", names.join(", "))
}

/// The canonical spelling of a feature, as a spec writes it (renderings and diffs compare it).
impl fmt::Display for FeatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = self.call();
        match self {
            FeatureKind::Item { ids } => write!(f, "{call}({})", ids.args().trim_start_matches(", ")),
            FeatureKind::Categorical { column, ids, vocab } => {
                write!(f, "{call}({}{}{})", quoted(column), ids.args(), vocab_arg(vocab))
            }
            FeatureKind::Fields { columns: cs } | FeatureKind::Profile { columns: cs } => {
                write!(f, "{call}({})", columns(cs))
            }
            FeatureKind::Numeric { column, missing, na, .. } => {
                write!(f, "{call}({}", quoted(column))?;
                if let Some(m) = missing {
                    write!(f, ", missing: {}", format_float(*m))?;
                }
                write!(f, "{})", na_arg(na))
            }
            FeatureKind::Bucketize { column, boundaries, missing, na } => {
                let b: Vec<String> = boundaries.iter().map(|x| format_float(*x)).collect();
                write!(f, "{call}({}, [{}]", quoted(column), b.join(", "))?;
                if let Some(m) = missing {
                    write!(f, ", missing: {m}")?;
                }
                write!(f, "{})", na_arg(na))
            }
            FeatureKind::Tokens { column, sep, max, ids, vocab } => {
                write!(f, "{call}({}, sep: {sep:?}, max: {max}{}{})", quoted(column), ids.args(), vocab_arg(vocab))
            }
            FeatureKind::Cross { columns: cs, buckets } => write!(f, "{call}({}, buckets: {buckets})", columns(cs)),
            FeatureKind::History { when, length, .. } => write!(f, "{call}({when:?}, length: {length})"),
            FeatureKind::SideColumn { column, .. } => write!(f, "{call}({column:?})"),
            FeatureKind::SideFlag { when } => write!(f, "{call}({when:?})"),
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Split::Time { valid, test } => {
                write!(f, "time(valid: {}, test: {})", format_float(*valid), format_float(*test))
            }
            Split::LeaveLastOut => write!(f, "leave_last_out()"),
        }
    }
}

impl FeatureSet {
    /// The feature filling model input `input`.
    pub fn feature(&self, input: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.input == input)
    }

    /// The set's statements as a spec writes them, in a fixed order: sources, split, dims,
    /// labels and features. Renderings list them and `recspec diff` compares them by key.
    pub fn entries(&self) -> Vec<Entry> {
        let options = |format: &Option<String>, delimiter: &Option<String>| {
            let mut s = String::new();
            for (k, v) in [("format", format), ("delimiter", delimiter)] {
                if let Some(v) = v {
                    s.push_str(&format!(", {k}: {v:?}"));
                }
            }
            s
        };
        let items_options = |t: &TableSource| {
            let mut s = String::new();
            for (k, v) in [("cluster", &t.cluster), ("creator", &t.creator)] {
                if let Some(v) = v {
                    s.push_str(&format!(", {k}: {v:?}"));
                }
            }
            s
        };
        let call = |key: String, value: String| Entry { line: format!("{key}{value}"), key, value };
        let bound = |key: String, value: String| Entry { line: format!("{key} = {value}"), key, value };
        let e = &self.events;
        let mut out = vec![call(
            "source events".into(),
            format!(
                "({:?}, user: {:?}, item: {:?}, time: {:?}{})",
                e.file,
                e.user,
                e.item,
                e.time,
                options(&e.format, &e.delimiter)
            ),
        )];
        for (name, t) in [("users", &self.users), ("items", &self.items)] {
            if let Some(t) = t {
                let args =
                    format!("({:?}, key: {:?}{}{})", t.file, t.key, options(&t.format, &t.delimiter), items_options(t));
                out.push(call(format!("source {name}"), args));
            }
        }
        out.push(call("split ".into(), self.split.to_string()));
        for (name, value) in &self.dims {
            out.push(bound(format!("dim {name}"), value.to_string()));
        }
        for l in &self.labels {
            out.push(bound(format!("label {}", l.name), format!("{:?}", l.rule)));
        }
        for f in &self.features {
            out.push(bound(format!("{} {}", f.kind.statement(), f.input), f.kind.to_string()));
        }
        out
    }
}

/// One statement of a feature set, as a spec writes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Entry {
    /// What it defines: `source events`, `split `, `dim T`, `label click`, `feature item`,
    /// `seq clicks`, `side clicks.dwell`.
    pub key: String,
    /// The whole statement without its `;`: `feature item = item()`.
    pub line: String,
    /// What defines it: `item()`.
    pub value: String,
}
