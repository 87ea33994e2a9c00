//! The features only a feature set declares (`mapping::Extra`: categorical columns of their own,
//! numeric scalings, buckets, tokens, crosses): their values checked as events are read, fitted
//! on the training split, written into each row, and stored as the data set's `features.json`.
//!
//! A value is missing when its cell is empty or its joined table has no row for the event's
//! user or item. Numbers are checked where they are read: an event column's in the first pass
//! (a bad row, skippable), a table column's when the tables are joined (an error naming the table
//! and the key).

use super::mapping::{ExtraKind, Mapping, ValueSource};
use super::read::Event;
use super::rule::{parse_number, quoted};
use super::vocab::{value, Joins, Values};
use super::ImportError;
use crate::data::{hash_bucket, RawId};
use crate::features::{Ids, Scaling};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Separates the values of a cross before they are hashed together (a control character no
/// column value is expected to hold).
const CROSS_SEPARATOR: char = '\u{1f}';

/// A cell's number: `None` when missing, `Err` (what the value is, to follow "column `c` is")
/// when it is not a finite number or outside what the scaling accepts.
fn number(raw: Option<&str>, scaling: Option<Scaling>, na: &[String]) -> Result<Option<f64>, String> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty() && !na.iter().any(|t| t == r.trim())) else {
        return Ok(None);
    };
    let x = parse_number(raw).filter(|x| x.is_finite()).ok_or_else(|| format!("{}, not a number", quoted(raw)))?;
    if scaling == Some(Scaling::Log1p) && x <= -1.0 {
        return Err(format!("{x}, and log1p needs a value above -1"));
    }
    Ok(Some(x))
}

/// The columns an extra reads as numbers, the scaling they are read for, and the texts that
/// stand for a missing value.
fn numeric(kind: &ExtraKind) -> Option<(ValueSource, Option<Scaling>, &[String])> {
    match kind {
        ExtraKind::Numeric { source, scaling, na, .. } => Some((*source, Some(*scaling), na)),
        ExtraKind::Bucketize { source, na, .. } => Some((*source, None, na)),
        ExtraKind::Categorical { .. } | ExtraKind::Tokens { .. } | ExtraKind::Cross { .. } => None,
    }
}

/// Checks an event's numeric event columns (`values`: the event's projected values, as
/// [`Event::values`]); the message names the feature and the column.
pub(crate) fn check_event(m: &Mapping, values: &[String]) -> Result<(), String> {
    for x in &m.extras {
        if let Some((ValueSource::Event(v), scaling, na)) = numeric(&x.kind) {
            number(Some(&values[v]), scaling, na)
                .map_err(|why| format!("feature `{}`: column `{}` is {why}", x.key, m.columns[m.values[v]].name))?;
        }
    }
    Ok(())
}

/// Checks the numeric columns of the joined table rows (`keys`: the user and item keys by dense
/// index).
pub(crate) fn check_tables(m: &Mapping, joins: &Joins, keys: (&[String], &[String])) -> Result<(), ImportError> {
    for x in &m.extras {
        let (source, scaling, na) = match numeric(&x.kind) {
            Some((s @ (ValueSource::User(_) | ValueSource::Item(_)), scaling, na)) => (s, scaling, na),
            _ => continue,
        };
        let (rows, keys, table, c) = match source {
            ValueSource::User(c) => (&joins.users, keys.0, &m.users, c),
            ValueSource::Item(c) => (&joins.items, keys.1, &m.items, c),
            ValueSource::Event(_) => continue,
        };
        let Some(table) = table else { continue };
        for (row, key) in rows.iter().zip(keys) {
            if let Some(row) = row {
                number(Some(&row[c]), scaling, na).map_err(|why| ImportError::Input {
                    file: table.file.clone(),
                    message: format!(
                        "key {}: feature `{}`: column `{}` is {why}",
                        quoted(key),
                        x.key,
                        table.columns[c].name
                    ),
                })?;
            }
        }
    }
    Ok(())
}

/// Running statistics of a numeric feature over the training split (Welford's algorithm).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Stats {
    pub count: u64,
    pub mean: f64,
    m2: f64,
    pub min: f64,
    pub max: f64,
    /// The standard deviation as a data set's `features.json` stored it (read back by
    /// [`Stats::stored`]), used as it is rather than recomputed from a sum of squares.
    stored_std: Option<f64>,
}

impl Stats {
    fn add(&mut self, x: f64) {
        if self.count == 0 {
            (self.min, self.max) = (x, x);
        }
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// Statistics read back from `features.json`.
    pub(crate) fn stored(count: u64, mean: f64, std: f64, min: f64, max: f64) -> Stats {
        Stats { count, mean, m2: 0.0, min, max, stored_std: Some(std) }
    }

    /// The population standard deviation (0 without values).
    pub fn std(&self) -> f64 {
        if let Some(std) = self.stored_std {
            std
        } else if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).sqrt()
        }
    }

    /// `x` scaled. A constant column (std 0, or max = min) and a column without training values
    /// scale to 0: the feature carries nothing the model could learn from (the summary says so).
    fn scale(&self, x: f64, scaling: Scaling) -> f64 {
        match scaling {
            Scaling::Raw => x,
            Scaling::Log1p => x.ln_1p(),
            Scaling::ZScore if self.std() > 0.0 => (x - self.mean) / self.std(),
            Scaling::MinMax if self.max > self.min => (x - self.min) / (self.max - self.min),
            Scaling::ZScore | Scaling::MinMax => 0.0,
        }
    }
}

/// What fitting learnt for one extra.
pub(crate) enum Fitted {
    /// Nothing to fit (hashing, buckets, raw and log1p numbers).
    Nothing,
    Vocabulary(Values),
    Stats(Stats),
}

/// Counts and statistics over the training split, one slot per extra.
pub(crate) struct Fitter {
    counts: Vec<HashMap<String, u64>>,
    stats: Vec<Stats>,
}

/// Counts one occurrence, allocating the key only the first time it is seen.
fn count(counts: &mut HashMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(c) => *c += 1,
        None => {
            counts.insert(key.to_string(), 1);
        }
    }
}

fn tokens<'a>(cell: &'a str, sep: &'a str, max: usize) -> impl Iterator<Item = &'a str> {
    cell.split(sep).map(str::trim).filter(|t| !t.is_empty()).take(max)
}

impl Fitter {
    pub fn new(m: &Mapping) -> Fitter {
        Fitter { counts: vec![HashMap::new(); m.extras.len()], stats: vec![Stats::default(); m.extras.len()] }
    }

    /// Adds one training event.
    pub fn add(&mut self, m: &Mapping, e: &Event, joins: &Joins) {
        for (i, x) in m.extras.iter().enumerate() {
            match &x.kind {
                ExtraKind::Categorical { source, ids: Ids::Vocabulary { .. }, .. } => {
                    if let Some(v) = value(*source, e, joins).filter(|v| !v.is_empty()) {
                        count(&mut self.counts[i], v);
                    }
                }
                ExtraKind::Tokens { source, sep, max, ids: Ids::Vocabulary { .. }, .. } => {
                    for t in tokens(value(*source, e, joins).unwrap_or(""), sep, *max) {
                        count(&mut self.counts[i], t);
                    }
                }
                ExtraKind::Numeric { source, scaling: Scaling::ZScore | Scaling::MinMax, na, .. } => {
                    // Checked when read: a value here is a finite number.
                    if let Ok(Some(x)) = number(value(*source, e, joins), None, na) {
                        self.stats[i].add(x);
                    }
                }
                ExtraKind::Categorical { .. }
                | ExtraKind::Tokens { .. }
                | ExtraKind::Numeric { .. }
                | ExtraKind::Bucketize { .. }
                | ExtraKind::Cross { .. } => {}
            }
        }
    }

    /// The fitted features; `kept`: vocabularies (by input) whose values keep their ids whatever
    /// their counts here (`--keep-ids-from`).
    pub fn finish(self, m: &Mapping, kept: &HashMap<String, Vec<String>>) -> Vec<Fitted> {
        let mut out = vec![];
        for ((x, counts), stats) in m.extras.iter().zip(self.counts).zip(self.stats) {
            out.push(match &x.kind {
                ExtraKind::Categorical { ids: Ids::Vocabulary { min_count }, .. }
                | ExtraKind::Tokens { ids: Ids::Vocabulary { min_count }, .. } => {
                    let old = kept.get(&x.key).map_or(&[][..], |v| &v[..]);
                    let counts = counts.into_iter().filter(|(v, c)| c >= min_count || old.contains(v)).collect();
                    Fitted::Vocabulary(Values::keeping(old, counts))
                }
                ExtraKind::Numeric { scaling: Scaling::ZScore | Scaling::MinMax, .. } => Fitted::Stats(stats),
                ExtraKind::Categorical { .. }
                | ExtraKind::Tokens { .. }
                | ExtraKind::Numeric { .. }
                | ExtraKind::Bucketize { .. }
                | ExtraKind::Cross { .. } => Fitted::Nothing,
            });
        }
        out
    }
}

fn hashed(text: &str, buckets: u64) -> u64 {
    hash_bucket(RawId::Str(text), buckets as i64) as u64
}

fn id(ids: Ids, fitted: &Fitted, text: Option<&str>) -> u64 {
    match (ids, fitted) {
        (Ids::Hashed { buckets }, _) => hashed(text.unwrap_or(""), buckets),
        (Ids::Vocabulary { .. }, Fitted::Vocabulary(v)) => v.id(text) as u64,
        (Ids::Vocabulary { .. }, _) => 0,
    }
}

/// Appends `,"key":value` for every extra of event `e`; `Err` names a number that does not fit
/// a 32-bit float once scaled.
pub(crate) fn write(
    s: &mut String,
    m: &Mapping,
    keys: &[String],
    fitted: &[Fitted],
    e: &Event,
    joins: &Joins,
) -> Result<(), String> {
    for ((x, key), fit) in m.extras.iter().zip(keys).zip(fitted) {
        let _ = write!(s, ",{key}:");
        match &x.kind {
            ExtraKind::Categorical { source, ids, .. } => {
                let _ = write!(s, "{}", id(*ids, fit, value(*source, e, joins).filter(|v| !v.is_empty())));
            }
            ExtraKind::Numeric { source, scaling, missing, na } => {
                let y = match number(value(*source, e, joins), None, na).ok().flatten() {
                    Some(v) => match fit {
                        Fitted::Stats(st) => st.scale(v, *scaling),
                        _ => Stats::default().scale(v, *scaling),
                    },
                    None => *missing,
                };
                let y32 = y as f32;
                if !y32.is_finite() {
                    return Err(format!("feature `{}`: {y} does not fit a 32-bit float", x.key));
                }
                let _ = write!(s, "{y32}");
            }
            ExtraKind::Bucketize { source, boundaries, missing, na } => {
                let b = match number(value(*source, e, joins), None, na).ok().flatten() {
                    Some(v) => boundaries.partition_point(|b| *b <= v) as u64,
                    None => *missing,
                };
                let _ = write!(s, "{b}");
            }
            ExtraKind::Tokens { source, sep, max, ids, .. } => {
                s.push('[');
                for (i, t) in tokens(value(*source, e, joins).unwrap_or(""), sep, *max).enumerate() {
                    let _ = write!(s, "{}{}", if i > 0 { "," } else { "" }, id(*ids, fit, Some(t)));
                }
                s.push(']');
            }
            ExtraKind::Cross { sources, buckets } => {
                let mut joined = String::new();
                for (i, src) in sources.iter().enumerate() {
                    if i > 0 {
                        joined.push(CROSS_SEPARATOR);
                    }
                    joined.push_str(value(*src, e, joins).unwrap_or(""));
                }
                let _ = write!(s, "{}", hashed(&joined, *buckets));
            }
        }
    }
    Ok(())
}

/// The fitted artifact, `features.json`: what each fitted feature learnt from the training
/// split (vocabularies in id order, id 0 being out of vocabulary; statistics), versioned.
pub(crate) fn artifact(m: &Mapping, fitted: &[Fitted]) -> String {
    let mut features = vec![];
    for (x, fit) in m.extras.iter().zip(fitted) {
        let mut entry = serde_json::Map::new();
        entry.insert("input".into(), x.key.clone().into());
        let kind = match &x.kind {
            ExtraKind::Categorical { .. } => "categorical",
            ExtraKind::Tokens { .. } => "tokens",
            ExtraKind::Numeric { scaling, .. } => scaling.name(),
            ExtraKind::Bucketize { .. } => "bucketize",
            ExtraKind::Cross { .. } => "cross",
        };
        entry.insert("kind".into(), kind.into());
        match fit {
            Fitted::Nothing => continue,
            Fitted::Vocabulary(v) => {
                entry.insert("vocabulary".into(), v.entries.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>().into());
                entry.insert("counts".into(), v.entries.iter().map(|(_, c)| *c).collect::<Vec<_>>().into());
            }
            Fitted::Stats(st) => {
                entry.insert("count".into(), st.count.into());
                for (k, v) in [("mean", st.mean), ("std", st.std()), ("min", st.min), ("max", st.max)] {
                    entry.insert(k.into(), serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into));
                }
            }
        }
        features.push(serde_json::Value::Object(entry));
    }
    let doc = serde_json::json!({ "version": 1, "features": features });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// One line per fitted feature for the summary, and the dims the vocabularies set.
pub(crate) fn summary(m: &Mapping, fitted: &[Fitted]) -> (Vec<String>, Vec<(String, usize, String)>) {
    let mut lines = vec![];
    let mut dims = vec![];
    for (x, fit) in m.extras.iter().zip(fitted) {
        match (fit, &x.kind) {
            (Fitted::Vocabulary(v), ExtraKind::Categorical { vocab_dim, .. } | ExtraKind::Tokens { vocab_dim, .. }) => {
                lines.push(format!(
                    "{}: {} values in the training vocabulary (id 0: the rest)",
                    x.key,
                    v.entries.len()
                ));
                if let Some(d) = vocab_dim {
                    dims.push((
                        d.clone(),
                        v.entries.len() + 1,
                        format!("vocabulary of `{}` (id 0: out of vocabulary)", x.key),
                    ));
                }
            }
            (Fitted::Stats(st), _) if st.count == 0 => {
                lines.push(format!("{}: no training values; every value scales to 0", x.key))
            }
            (Fitted::Stats(st), _) => {
                let constant = if st.std() > 0.0 { "" } else { "; constant: every value scales to 0" };
                lines.push(format!(
                    "{}: {} training values, mean {:.6}, std {:.6}, min {}, max {}{constant}",
                    x.key,
                    st.count,
                    st.mean,
                    st.std(),
                    st.min,
                    st.max
                ))
            }
            _ => {}
        }
    }
    (lines, dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(xs: &[f64]) -> Stats {
        let mut s = Stats::default();
        xs.iter().for_each(|x| s.add(*x));
        s
    }

    #[test]
    fn statistics_match_their_formulas() {
        let s = stats(&[1.0, 2.0, 4.0, 9.0]);
        assert_eq!((s.count, s.mean, s.min, s.max), (4, 4.0, 1.0, 9.0));
        // Population variance: (9 + 4 + 0 + 25) / 4.
        assert!((s.std() - 9.5f64.sqrt()).abs() < 1e-12);
        assert!((s.scale(9.0, Scaling::ZScore) - 5.0 / 9.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.scale(4.0, Scaling::MinMax), 3.0 / 8.0);
        assert_eq!(s.scale(3.0, Scaling::Log1p), 4f64.ln());
        assert_eq!(s.scale(-7.5, Scaling::Raw), -7.5);
    }

    /// A constant column and one without training values scale to 0, never to NaN or infinity.
    #[test]
    fn degenerate_statistics_scale_to_zero() {
        for s in [stats(&[3.0, 3.0, 3.0]), stats(&[])] {
            for scaling in [Scaling::ZScore, Scaling::MinMax] {
                assert_eq!(s.scale(3.0, scaling), 0.0, "{scaling:?} of {s:?}");
                assert_eq!(s.scale(1e30, scaling), 0.0);
            }
        }
    }

    #[test]
    fn cells_are_numbers_missing_or_named_errors() {
        assert_eq!(number(Some(" 2.5 "), None, &[]), Ok(Some(2.5)));
        assert_eq!(number(Some(""), None, &[]), Ok(None));
        assert_eq!(number(Some("  "), None, &[]), Ok(None));
        assert_eq!(number(None, None, &[]), Ok(None));
        assert_eq!(number(Some("n/a"), None, &[]), Err("\"n/a\", not a number".into()));
        assert_eq!(number(Some(" n/a "), None, &["n/a".into()]), Ok(None), "a text `na` names is missing");
        assert_eq!(number(Some("NaN"), None, &[]), Err("\"NaN\", not a number".into()));
        assert_eq!(number(Some("-inf"), None, &[]), Err("\"-inf\", not a number".into()));
        assert_eq!(number(Some("-1"), Some(Scaling::Log1p), &[]), Err("-1, and log1p needs a value above -1".into()));
        assert_eq!(number(Some("-1"), Some(Scaling::ZScore), &[]), Ok(Some(-1.0)));
    }

    #[test]
    fn tokens_are_trimmed_non_empty_and_the_first_kept() {
        assert_eq!(tokens("a| b ||c|d", "|", 3).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(tokens("", "|", 3).count(), 0);
        assert_eq!(tokens(" | ", "|", 3).count(), 0);
    }
}
