//! A checked feature set (`features NAME { ... }`, docs/features.md) as a mapping: the same
//! sections a mapping file would hold, validated and resolved by the same builder, so the two
//! forms import identically. Errors name the feature set's file.

use super::file::*;
use super::validate::{table_column, validate_file, wanted_slot};
use super::{Extra, ExtraKind, ImportError, Mapping, ValueSource};
use crate::features::{Column, FeatureKind, FeatureSet, Ids, Split};
use crate::source::Span;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Spans in declaration order: the builder keeps labels, sequences and side features in the
/// order of their spans. Each value also records the statement it came from (`at`), for the
/// builder's errors.
#[derive(Default)]
struct Order {
    here: Option<Span>,
    at: Vec<Option<Span>>,
}

impl Order {
    fn next<T>(&mut self, value: T) -> Spanned<T> {
        self.at.push(self.here);
        Spanned::new(self.at.len()..self.at.len(), value)
    }

    /// The statement the next values come from.
    fn at(&mut self, statement: Option<&Span>) {
        self.here = statement.copied();
    }
}

/// Where a statement of the set is written: its file and line.
pub type Locate<'a> = &'a dyn Fn(Span) -> (PathBuf, usize);

/// The mapping that imports what `set` declares; `path` is the set's file (table paths are
/// relative to its folder), `locate` says where a statement's span is (its errors name it).
pub fn from_features(path: &Path, set: &FeatureSet, locate: Locate) -> Result<Mapping, ImportError> {
    let mut o = Order::default();
    let feature_at = |i: usize| set.at.features.get(i).map(|s| locate(*s)).unwrap_or_else(|| (path.to_path_buf(), 0));
    o.at(set.at.events.as_ref());
    let e = &set.events;
    let events = EventsSection {
        user: o.next(e.user.clone()),
        item: o.next(e.item.clone()),
        time: o.next(e.time.clone()),
        format: e.format.clone().map(|f| o.next(f)),
        delimiter: e.delimiter.clone().map(|d| o.next(d)),
    };
    let mut labels = BTreeMap::new();
    for (i, l) in set.labels.iter().enumerate() {
        o.at(set.at.labels.get(i));
        labels.insert(o.next(l.name.clone()), o.next(l.rule.clone()));
    }
    let mut sequences = BTreeMap::new();
    let mut fields = None;
    let mut profile = None;
    let mut output =
        OutputSection { item: None, item_vocab: None, user_vocab: None, item_buckets: None, item_min_count: None };
    for (i, f) in set.features.iter().enumerate() {
        o.at(set.at.features.get(i));
        let twice = |what: &str| {
            let (file, line) = feature_at(i);
            ImportError::Mapping {
                file,
                line,
                message: format!("feature `{}`: a data set holds one {what} feature", f.input),
            }
        };
        match &f.kind {
            FeatureKind::Item { ids } => {
                if output.item.is_some() {
                    return Err(twice("`item()`"));
                }
                output.item = Some(o.next(f.input.clone()));
                match ids {
                    Ids::Hashed { buckets } => output.item_buckets = Some(o.next(*buckets as i64)),
                    Ids::Vocabulary { min_count: 1 } => {}
                    Ids::Vocabulary { min_count } => output.item_min_count = Some(o.next(*min_count as i64)),
                }
            }
            FeatureKind::Fields { columns } | FeatureKind::Profile { columns } => {
                let names: Vec<Spanned<String>> = columns.iter().map(|c| o.next(c.to_string())).collect();
                let section = CategoricalSection {
                    columns: o.next(names),
                    key: Some(o.next(f.input.clone())),
                    size: None,
                    vocab: None,
                };
                let slot = if matches!(f.kind, FeatureKind::Fields { .. }) { &mut fields } else { &mut profile };
                if slot.is_some() {
                    return Err(twice(&format!("`{}`", f.kind.call())));
                }
                *slot = Some(section);
            }
            FeatureKind::History { when, length, dim } => {
                let section = SequenceSection {
                    when: o.next(when.clone()),
                    length: o.next(*length),
                    dim: dim.clone().map(|d| o.next(d)),
                    side: BTreeMap::new(),
                };
                sequences.insert(o.next(f.input.clone()), section);
            }
            // Sides follow below; the kinds beyond the mapping's are added after validation.
            FeatureKind::SideColumn { .. }
            | FeatureKind::SideFlag { .. }
            | FeatureKind::Categorical { .. }
            | FeatureKind::Numeric { .. }
            | FeatureKind::Bucketize { .. }
            | FeatureKind::Tokens { .. }
            | FeatureKind::Cross { .. } => {}
        }
    }
    // Side features after their sequences (the checker made sure each follows a `history`).
    for (i, f) in set.features.iter().enumerate() {
        o.at(set.at.features.get(i));
        let value = match &f.kind {
            FeatureKind::SideColumn { column, log1p } => {
                let mut t = toml::Table::new();
                t.insert("column".into(), toml::Value::String(column.clone()));
                t.insert("transform".into(), toml::Value::String(if *log1p { "log1p" } else { "none" }.into()));
                toml::Value::Table(t)
            }
            FeatureKind::SideFlag { when } => {
                let mut t = toml::Table::new();
                t.insert("when".into(), toml::Value::String(when.clone()));
                toml::Value::Table(t)
            }
            _ => continue,
        };
        let (seq, name) = f.input.split_once('.').unwrap_or((&f.input, ""));
        if let Some((_, s)) = sequences.iter_mut().find(|(k, _)| k.get_ref() == seq) {
            s.side.insert(o.next(name.to_string()), o.next(value));
        }
    }
    o.at(None);
    let table = |t: &crate::features::TableSource, o: &mut Order| TableSection {
        file: o.next(t.file.clone()),
        key: o.next(t.key.clone()),
        format: t.format.clone().map(|f| o.next(f)),
        delimiter: t.delimiter.clone().map(|d| o.next(d)),
    };
    let users = set.users.as_ref().map(|t| table(t, &mut o));
    let items = set.items.as_ref().map(|t| {
        let cluster = t.cluster.clone().map(|c| o.next(c));
        let creator = t.creator.clone().map(|c| o.next(c));
        let t = table(t, &mut o);
        ItemsSection { file: t.file, key: t.key, format: t.format, delimiter: t.delimiter, cluster, creator }
    });
    let split = match set.split {
        Split::Time { valid, test } => {
            SplitSection { method: o.next("time".into()), valid: Some(o.next(valid)), test: Some(o.next(test)) }
        }
        Split::LeaveLastOut => SplitSection { method: o.next("leave_last_out".into()), valid: None, test: None },
    };
    let file = MappingFile {
        events,
        labels: o.next(labels),
        sequences,
        fields,
        profile,
        users,
        items,
        split,
        output: Some(output),
    };
    let statements: Vec<Option<(PathBuf, usize)>> = o.at.iter().map(|s| s.map(locate)).collect();
    let mut m = validate_file(path, "", &statements, file)?;
    for (i, f) in set.features.iter().enumerate() {
        let origin = match feature_at(i) {
            (file, 0) => format!("feature `{}` ({})", f.input, file.display()),
            (file, line) => format!("feature `{}` ({}:{line})", f.input, file.display()),
        };
        let kind = match &f.kind {
            FeatureKind::Categorical { column, ids, vocab } => {
                ExtraKind::Categorical { source: source(&mut m, column, &origin)?, ids: *ids, vocab_dim: vocab.clone() }
            }
            FeatureKind::Numeric { column, scaling, missing, na } => ExtraKind::Numeric {
                source: source(&mut m, column, &origin)?,
                scaling: *scaling,
                missing: missing.unwrap_or(0.0),
                na: na.clone(),
            },
            FeatureKind::Bucketize { column, boundaries, missing, na } => ExtraKind::Bucketize {
                source: source(&mut m, column, &origin)?,
                boundaries: boundaries.clone(),
                missing: missing.unwrap_or(0),
                na: na.clone(),
            },
            FeatureKind::Tokens { column, sep, max, ids, vocab } => ExtraKind::Tokens {
                source: source(&mut m, column, &origin)?,
                sep: sep.clone(),
                max: *max as usize,
                ids: *ids,
                vocab_dim: vocab.clone(),
            },
            FeatureKind::Cross { columns, buckets } => ExtraKind::Cross {
                sources: columns.iter().map(|c| source(&mut m, c, &origin)).collect::<Result<_, _>>()?,
                buckets: *buckets,
            },
            FeatureKind::Item { .. }
            | FeatureKind::Fields { .. }
            | FeatureKind::Profile { .. }
            | FeatureKind::History { .. }
            | FeatureKind::SideColumn { .. }
            | FeatureKind::SideFlag { .. } => continue,
        };
        m.extras.push(Extra { key: f.input.clone(), kind });
    }
    Ok(m)
}

/// Where a feature's column is read: an event column (its slot added to the values every event
/// carries) or a joined table's column.
fn source(m: &mut Mapping, c: &Column, origin: &str) -> Result<ValueSource, ImportError> {
    let no_table = |table: &str| ImportError::Input {
        file: m.file.clone(),
        message: format!("{origin}: column `{c}` needs `source {table}(...)`"),
    };
    Ok(match c {
        Column::Event(name) => {
            let slot = wanted_slot(&mut m.columns, name, origin.to_string());
            m.values.push(slot);
            ValueSource::Event(m.values.len() - 1)
        }
        Column::User(name) => {
            let err = no_table("users");
            ValueSource::User(table_column(m.users.as_mut().ok_or(err)?, name, origin.to_string()))
        }
        Column::Item(name) => {
            let err = no_table("items");
            ValueSource::Item(table_column(m.items.as_mut().ok_or(err)?, name, origin.to_string()))
        }
    })
}
