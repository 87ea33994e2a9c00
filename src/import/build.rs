//! The third pass: one JSON row per event, in time order, with the user's sequences of strictly
//! earlier events.
//!
//! Memory holds per-user state only: for each user and sequence, the last `length` entries
//! before the current time (`history`) and those at the current time (`pending`). An event
//! enters `history` only when a later time of its user is reached, so an event never appears in
//! the sequences of a row with the same timestamp, whatever the order of ties.

use super::extras::Fitted;
use super::mapping::{Mapping, SideKind};
use super::read::Event;
use super::sort::Sorted;
use super::split::Splitter;
use super::vocab::{value, CategoricalIds, Joins, Vocabs};
use super::{ImportError, Progress, PROGRESS_EVERY};
use crate::files::Staged;
use std::collections::VecDeque;
use std::fmt::Write as _;

/// Rows and label counts of one split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SplitCounts {
    pub rows: usize,
    /// Positive rows per label, in mapping order.
    pub labels: Vec<usize>,
}

/// What the rows pass wrote.
pub struct Written {
    pub splits: [SplitCounts; 3],
    /// Per sequence: rows by sequence length (index 0..=length).
    pub lengths: Vec<Vec<u64>>,
    /// The `user` each dense user index was written as.
    pub user_rows: Vec<u64>,
}

/// The last entries of one sequence: items (their key index, written by [`ItemIds`]) and side
/// values, oldest first.
#[derive(Clone, Default)]
pub(crate) struct Steps {
    items: VecDeque<u32>,
    sides: Vec<VecDeque<f32>>,
}

impl Steps {
    pub(crate) fn new(sides: usize) -> Steps {
        Steps { items: VecDeque::new(), sides: vec![VecDeque::new(); sides] }
    }

    pub(crate) fn push(&mut self, cap: usize, item: u32, sides: impl Iterator<Item = f32>) {
        if self.items.len() == cap {
            self.items.pop_front();
            for s in &mut self.sides {
                s.pop_front();
            }
        }
        self.items.push_back(item);
        for (s, x) in self.sides.iter_mut().zip(sides) {
            s.push_back(x);
        }
    }

    /// Appends `later` (entries after these), keeping the last `cap`.
    fn append(&mut self, cap: usize, later: &mut Steps) {
        while let Some(item) = later.items.pop_front() {
            self.push(cap, item, later.sides.iter_mut().map(|s| s.pop_front().unwrap_or(0.0)));
        }
    }
}

/// A user's sequences: `history` before `time`, `pending` at `time`.
pub(crate) struct UserState {
    pub time: f64,
    pub row_id: u64,
    pub history: Vec<Steps>,
    pub pending: Vec<Steps>,
}

impl UserState {
    pub(crate) fn new(m: &Mapping, row_id: u64) -> UserState {
        let steps: Vec<Steps> = m.sequences.iter().map(|s| Steps::new(s.sides.len())).collect();
        UserState { time: f64::NEG_INFINITY, row_id, history: steps.clone(), pending: steps }
    }

    /// Moves to `time`: when it is later than the user's current time, the events pending at
    /// the current time join the history (an event never enters a row of its own time).
    pub(crate) fn advance(&mut self, m: &Mapping, time: f64) {
        if time > self.time {
            for ((h, p), s) in self.history.iter_mut().zip(self.pending.iter_mut()).zip(&m.sequences) {
                h.append(s.length, p);
            }
            self.time = time;
        }
    }

    /// Adds the user's event `e` (at the current time) to every sequence whose rule admits it.
    pub(crate) fn admit(&mut self, m: &Mapping, e: &Event) {
        for (p, s) in self.pending.iter_mut().zip(&m.sequences) {
            if e.rules[s.when] {
                p.push(s.length, e.item, s.sides.iter().map(|d| side_value(d.kind, e)));
            }
        }
    }
}

/// How an item (by key index) is written: its vocabulary id, or with `[output] item_buckets` its
/// key as a JSON string, which the loader hashes (`vocab V hashed`).
pub(crate) enum ItemIds<'a> {
    Vocabulary(&'a [u32]),
    /// Owned: the ids of the keys one request names ([`super::online`]).
    Owned(Vec<u32>),
    Hashed(Vec<String>),
}

/// Everything a row's ids come from: the items' ids (by key index), the users' vocabulary ids
/// (by user index), and the fitted vocabularies. The import passes its whole [`Vocabs`]; a
/// server ([`super::online`]) the keys of one request over the data set's fitted artifact.
pub(crate) struct RowIds<'a> {
    pub items: ItemIds<'a>,
    pub users: &'a [u32],
    pub fields: Option<&'a CategoricalIds>,
    pub profile: Option<&'a CategoricalIds>,
    pub extras: &'a [Fitted],
}

impl ItemIds<'_> {
    fn write(&self, s: &mut String, item: u32) {
        match self {
            ItemIds::Vocabulary(ids) => {
                let _ = write!(s, "{}", ids[item as usize]);
            }
            ItemIds::Owned(ids) => {
                let _ = write!(s, "{}", ids[item as usize]);
            }
            ItemIds::Hashed(keys) => s.push_str(&keys[item as usize]),
        }
    }
}

/// The row keys, JSON-quoted once.
pub(crate) struct Keys {
    item: String,
    fields: String,
    profile: String,
    sequences: Vec<(String, Vec<String>)>,
    labels: Vec<String>,
    extras: Vec<String>,
}

pub(crate) fn json_key(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

impl Keys {
    pub(crate) fn new(m: &Mapping) -> Keys {
        Keys {
            item: json_key(&m.item_key),
            fields: m.fields.as_ref().map(|c| json_key(&c.key)).unwrap_or_default(),
            profile: m.profile.as_ref().map(|c| json_key(&c.key)).unwrap_or_default(),
            sequences: m
                .sequences
                .iter()
                .map(|s| {
                    (json_key(&s.name), s.sides.iter().map(|d| json_key(&format!("{}.{}", s.name, d.name))).collect())
                })
                .collect(),
            labels: m.labels.iter().map(|l| json_key(&l.name)).collect(),
            extras: m.extras.iter().map(|x| json_key(&x.key)).collect(),
        }
    }
}

/// Writes every event's row to `files` (train, valid, test) in sorted order; `item_keys` are the
/// item keys by key index (written as they are with `[output] item_buckets`); `events` is the
/// events file, for messages.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_rows(
    events: &std::path::Path,
    sorted: &Sorted<Event>,
    m: &Mapping,
    mut splitter: Splitter,
    vocabs: &Vocabs,
    joins: &Joins,
    item_keys: &[String],
    files: &mut [Staged; 3],
    progress: &mut dyn FnMut(Progress),
) -> Result<Written, ImportError> {
    let items = match m.item_buckets {
        Some(_) => ItemIds::Hashed(item_keys.iter().map(|k| json_key(k)).collect()),
        None => ItemIds::Vocabulary(&vocabs.items.ids),
    };
    let keys = Keys::new(m);
    let ids = RowIds {
        items,
        users: &vocabs.users.ids,
        fields: vocabs.fields.as_ref(),
        profile: vocabs.profile.as_ref(),
        extras: &vocabs.extras,
    };
    let empty = SplitCounts { rows: 0, labels: vec![0; m.labels.len()] };
    let mut out = Written {
        splits: [empty.clone(), empty.clone(), empty],
        lengths: m.sequences.iter().map(|s| vec![0; s.length + 1]).collect(),
        user_rows: vec![0; vocabs.users.ids.len()],
    };
    let mut states: Vec<Option<UserState>> = (0..vocabs.users.ids.len()).map(|_| None).collect();
    let mut next_outside = vocabs.users.size() as u64;
    let mut line = String::with_capacity(4096);
    for (n, e) in sorted.iter()?.enumerate() {
        let e = e?;
        let split = splitter.split(&e);
        let u = e.user as usize;
        let state = states[u].get_or_insert_with(|| {
            let id = vocabs.users.ids[u];
            let row_id = if id > 0 {
                id as u64
            } else {
                next_outside += 1;
                next_outside - 1
            };
            out.user_rows[u] = row_id;
            UserState::new(m, row_id)
        });
        state.advance(m, e.time);
        row(&mut line, m, &keys, &ids, joins, &e, state).map_err(|message| {
            ImportError::Row(crate::data::DataError { file: events.to_path_buf(), row: e.row as usize, message })
        })?;
        files[split].write(&line)?;
        let counts = &mut out.splits[split];
        counts.rows += 1;
        for (c, l) in counts.labels.iter_mut().zip(&m.labels) {
            *c += usize::from(e.rules[l.rule]);
        }
        for (hist, h) in out.lengths.iter_mut().zip(&state.history) {
            hist[h.items.len()] += 1;
        }
        state.admit(m, &e);
        if (n + 1) % PROGRESS_EVERY == 0 {
            progress(Progress::Written { rows: n + 1 });
        }
    }
    Ok(out)
}

pub(crate) fn side_value(kind: SideKind, e: &Event) -> f32 {
    match kind {
        SideKind::Column { float, .. } => e.floats[float],
        SideKind::Flag { rule } => f32::from(u8::from(e.rules[rule])),
    }
}

/// The JSON line of one event (newline included).
pub(crate) fn row(
    s: &mut String,
    m: &Mapping,
    keys: &Keys,
    ids: &RowIds,
    joins: &Joins,
    e: &Event,
    state: &UserState,
) -> Result<(), String> {
    s.clear();
    s.push_str("{\"user\":");
    let _ = write!(s, "{},\"time\":", state.row_id);
    if e.time.fract() == 0.0 && e.time.abs() < 9.0e15 {
        let _ = write!(s, "{}", e.time as i64);
    } else {
        let _ = write!(s, "{}", e.time);
    }
    let _ = write!(s, ",{}:", keys.item);
    let items = &ids.items;
    items.write(s, e.item);
    if let (Some(c), Some(fields)) = (&m.fields, ids.fields) {
        let ids = fields;
        let _ = write!(s, ",{}:", keys.fields);
        list(s, c.columns.iter().enumerate().map(|(i, col)| ids.id(i, value(col.source, e, joins))));
    }
    if let (Some(c), Some(profile)) = (&m.profile, ids.profile) {
        let _ = write!(s, ",{}:", keys.profile);
        let user = ids.users[e.user as usize];
        let ids = profile;
        list(
            s,
            std::iter::once(user)
                .chain(c.columns.iter().enumerate().map(|(i, col)| ids.id(i, value(col.source, e, joins)))),
        );
    }
    for ((key, side_keys), steps) in keys.sequences.iter().zip(&state.history) {
        let _ = write!(s, ",{key}:[");
        for (i, item) in steps.items.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            items.write(s, *item);
        }
        s.push(']');
        for (k, values) in side_keys.iter().zip(&steps.sides) {
            let _ = write!(s, ",{k}:");
            list(s, values.iter());
        }
    }
    super::extras::write(s, m, &keys.extras, ids.extras, e, joins)?;
    s.push_str(",\"labels\":{");
    for (i, (k, l)) in keys.labels.iter().zip(&m.labels).enumerate() {
        let _ = write!(s, "{}{k}:{}", if i > 0 { "," } else { "" }, u8::from(e.rules[l.rule]));
    }
    s.push_str("}}\n");
    Ok(())
}

fn list<T: std::fmt::Display>(s: &mut String, items: impl Iterator<Item = T>) {
    s.push('[');
    for (i, x) in items.enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{x}");
    }
    s.push(']');
}
