//! The second pass: vocabularies counted on the training split only, and the id layout.
//!
//! Every vocabulary numbers its keys from 1 by descending training count (ties by key text),
//! keeping 0 as the out-of-vocabulary id. Categorical columns share one id space: column `c`
//! owns the range `offset[c] .. offset[c] + 1 + n[c]`, where `offset[c]` itself is its
//! out-of-vocabulary id. The profile's space starts after the user ids (its first entry is the
//! user's id), so its offsets start at `U`.

use super::mapping::{Categorical, Mapping, ValueSource};
use super::read::Event;
use super::sort::Sorted;
use super::split::{Splitter, TRAIN};
use super::summary::BucketCollisions;
use super::ImportError;
use crate::data::{hash_bucket, RawId};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Joined table rows by dense user and item index (`None`: not in the table).
pub struct Joins {
    pub users: Vec<Option<Vec<String>>>,
    pub items: Vec<Option<Vec<String>>>,
}

/// The value of a categorical column for an event; `None` when its table has no row for it.
pub fn value<'a>(source: ValueSource, e: &'a Event, joins: &'a Joins) -> Option<&'a str> {
    match source {
        ValueSource::Event(i) => Some(&e.values[i]),
        ValueSource::User(c) => joins.users[e.user as usize].as_ref().map(|r| r[c].as_str()),
        ValueSource::Item(c) => joins.items[e.item as usize].as_ref().map(|r| r[c].as_str()),
    }
}

/// Ids of densely indexed keys (users, items).
pub struct Numbering {
    /// Id by dense index; 0 when the key is out of the vocabulary.
    pub ids: Vec<u32>,
    /// Dense index and training count of ids 1, 2, ...
    pub entries: Vec<(u32, u64)>,
}

impl Numbering {
    /// Keys in `kept` keep their ids (1..=kept.len(); each of them must be among `keys`); the
    /// other keys with at least `min_count` training events follow by descending count, ties by
    /// key text.
    fn new(counts: &[u64], keys: &[String], kept: &HashMap<String, u32>, min_count: u64) -> Numbering {
        let mut ids = vec![0; counts.len()];
        let mut entries = vec![(0, 0); kept.len()];
        for (i, k) in keys.iter().enumerate() {
            if let Some(id) = kept.get(k) {
                ids[i] = *id;
                entries[*id as usize - 1] = (i as u32, counts[i]);
            }
        }
        let mut order: Vec<u32> = (0..counts.len() as u32)
            .filter(|i| counts[*i as usize] >= min_count.max(1) && ids[*i as usize] == 0)
            .collect();
        order.sort_by(|a, b| {
            counts[*b as usize].cmp(&counts[*a as usize]).then(keys[*a as usize].cmp(&keys[*b as usize]))
        });
        for i in order {
            entries.push((i, counts[i as usize]));
            ids[i as usize] = entries.len() as u32;
        }
        Numbering { ids, entries }
    }

    /// The vocabulary size, the out-of-vocabulary id included.
    pub fn size(&self) -> usize {
        self.entries.len() + 1
    }
}

/// Ids of the values of one column: 1, 2, ... (0 for the rest).
#[derive(Debug, Default)]
pub struct Values {
    pub ids: HashMap<String, u32>,
    /// Value and training count of ids 1, 2, ...
    pub entries: Vec<(String, u64)>,
}

impl Values {
    pub(crate) fn new(counts: HashMap<String, u64>) -> Values {
        Values::keeping(&[], counts)
    }

    /// `kept` values keep their ids (1, 2, ... in order, with their counts here, 0 if unseen);
    /// the other counted values follow by descending count, ties by text.
    pub(crate) fn keeping(kept: &[String], mut counts: HashMap<String, u64>) -> Values {
        let mut entries: Vec<(String, u64)> = kept.iter().map(|v| (v.clone(), counts.remove(v).unwrap_or(0))).collect();
        let mut new: Vec<(String, u64)> = counts.into_iter().collect();
        new.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        entries.extend(new);
        let ids = entries.iter().enumerate().map(|(i, (v, _))| (v.clone(), i as u32 + 1)).collect();
        Values { ids, entries }
    }

    pub fn id(&self, value: Option<&str>) -> u32 {
        value.and_then(|v| self.ids.get(v)).copied().unwrap_or(0)
    }
}

/// The shared id space of a `fields` or `profile` array.
#[derive(Debug)]
pub struct CategoricalIds {
    /// Each column's out-of-vocabulary id (its first id, in a fresh import).
    pub offsets: Vec<u32>,
    pub columns: Vec<Values>,
    /// The id of each column's values, indexed like `columns[c].entries`: one range per column
    /// after its out-of-vocabulary id in a fresh import; with kept ids, the earlier data set's
    /// ids and then new ones after its largest.
    pub absolute: Vec<Vec<u32>>,
    /// The vocabulary size: the largest id plus one.
    pub size: u32,
}

impl CategoricalIds {
    /// Ids from `base`: each column's out-of-vocabulary id, then its values, column after
    /// column.
    pub(crate) fn new(base: u32, columns: Vec<Values>) -> CategoricalIds {
        let mut offsets = vec![];
        let mut absolute = vec![];
        let mut next = base;
        for c in &columns {
            offsets.push(next);
            absolute.push((1..=c.entries.len() as u32).map(|j| next + j).collect());
            next += 1 + c.entries.len() as u32;
        }
        CategoricalIds { offsets, columns, absolute, size: next }
    }

    /// Ids keeping `earlier`'s (an earlier data set's, same columns): its values keep their ids
    /// whether or not they occur again, and values first counted here (`counts`, by column)
    /// are numbered after its largest id, by count (ties by text), column after column.
    pub(crate) fn keeping(earlier: &CategoricalIds, counts: Vec<HashMap<String, u64>>) -> CategoricalIds {
        let mut next = earlier.size;
        let mut columns = vec![];
        let mut absolute = vec![];
        for (c, counts) in counts.into_iter().enumerate() {
            let kept: Vec<String> = earlier.columns[c].entries.iter().map(|(v, _)| v.clone()).collect();
            let values = Values::keeping(&kept, counts);
            let mut ids = earlier.absolute[c].clone();
            for _ in kept.len()..values.entries.len() {
                ids.push(next);
                next += 1;
            }
            columns.push(values);
            absolute.push(ids);
        }
        CategoricalIds { offsets: earlier.offsets.clone(), columns, absolute, size: next }
    }

    pub fn id(&self, column: usize, value: Option<&str>) -> u32 {
        match self.columns[column].id(value) {
            0 => self.offsets[column],
            j => self.absolute[column][j as usize - 1],
        }
    }
}

/// Every vocabulary of the data set.
pub struct Vocabs {
    pub items: Numbering,
    pub users: Numbering,
    pub fields: Option<CategoricalIds>,
    pub profile: Option<CategoricalIds>,
    /// Cluster and creator ids by item id (index 0: the out-of-vocabulary item), and their values.
    pub clusters: Option<(Vec<u32>, Values)>,
    pub creators: Option<(Vec<u32>, Values)>,
    /// Events per split (train, valid, test).
    pub split_events: [usize; 3],
    /// What each of the mapping's extras learnt from the training split, in its order.
    pub(crate) extras: Vec<super::extras::Fitted>,
}

/// Counts the training split's items, users and categorical values; `prior`'s ids are kept.
pub fn count(
    sorted: &Sorted<Event>,
    m: &Mapping,
    mut splitter: Splitter,
    joins: &Joins,
    keys: (&[String], &[String]),
    prior: &super::prior::Prior,
) -> Result<Vocabs, ImportError> {
    let (user_keys, item_keys) = keys;
    let mut items = vec![0u64; item_keys.len()];
    let mut users = vec![0u64; user_keys.len()];
    let columns = |c: &Option<Categorical>| c.as_ref().map_or(0, |c| c.columns.len());
    let mut fields: Vec<HashMap<String, u64>> = vec![HashMap::new(); columns(&m.fields)];
    let mut profile: Vec<HashMap<String, u64>> = vec![HashMap::new(); columns(&m.profile)];
    let mut split_events = [0; 3];
    let mut fitter = super::extras::Fitter::new(m);
    for e in sorted.iter()? {
        let e = e?;
        let split = splitter.split(&e);
        split_events[split] += 1;
        if split != TRAIN {
            continue;
        }
        items[e.item as usize] += 1;
        users[e.user as usize] += 1;
        fitter.add(m, &e, joins);
        for (cat, counts) in [(&m.fields, &mut fields), (&m.profile, &mut profile)] {
            for (c, counts) in cat.iter().flat_map(|c| &c.columns).zip(counts.iter_mut()) {
                if let Some(v) = value(c.source, &e, joins) {
                    *counts.entry(v.to_string()).or_default() += 1;
                }
            }
        }
    }
    let items = Numbering::new(&items, item_keys, &prior.items, m.item_min_count);
    let users = Numbering::new(&users, user_keys, &prior.users, 1);
    let per_item = |column: Option<usize>| {
        column.map(|c| {
            let first_token = |i: u32| {
                joins.items[i as usize].as_ref().and_then(|r| r[c].split_whitespace().next()).map(str::to_string)
            };
            let mut counts: HashMap<String, u64> = HashMap::new();
            for (i, _) in &items.entries {
                if let Some(t) = first_token(*i) {
                    *counts.entry(t).or_default() += 1;
                }
            }
            let values = Values::new(counts);
            let mut ids = vec![0];
            ids.extend(items.entries.iter().map(|(i, _)| values.id(first_token(*i).as_deref())));
            (ids, values)
        })
    };
    let clusters = per_item(m.cluster);
    let creators = per_item(m.creator);
    let fields = m.fields.as_ref().map(|_| match &prior.fields {
        Some(earlier) => CategoricalIds::keeping(earlier, fields),
        None => CategoricalIds::new(0, fields.into_iter().map(Values::new).collect()),
    });
    let base = users.size() as u32;
    let profile = m.profile.as_ref().map(|_| CategoricalIds::new(base, profile.into_iter().map(Values::new).collect()));
    let extras = fitter.finish(m, &prior.extras);
    Ok(Vocabs { items, users, fields, profile, clusters, creators, split_events, extras })
}

/// How the training items spread over `buckets` when their keys are hashed.
pub(crate) fn bucket_collisions(v: &Vocabs, item_keys: &[String], buckets: u64) -> BucketCollisions {
    let mut per_bucket: HashMap<i64, usize> = HashMap::new();
    let ids: Vec<i64> =
        v.items.entries.iter().map(|(i, _)| hash_bucket(RawId::Str(&item_keys[*i as usize]), buckets as i64)).collect();
    for b in &ids {
        *per_bucket.entry(*b).or_default() += 1;
    }
    let shared = ids.iter().filter(|b| per_bucket[b] > 1).count();
    BucketCollisions { buckets, items: ids.len(), shared }
}

/// A JSON Lines vocabulary file: one object per line.
fn lines(objects: impl Iterator<Item = serde_json::Value>) -> String {
    objects.map(|o| format!("{o}\n")).collect()
}

/// The vocabulary files under `vocab/`, by name: what each id stands for, with its training
/// count. `user_rows` is the `user` each dense user index was written as.
pub fn files(m: &Mapping, v: &Vocabs, keys: (&[String], &[String]), user_rows: &[u64]) -> Vec<(String, String)> {
    use serde_json::json;
    let (user_keys, item_keys) = keys;
    let mut out = vec![];
    let items = v.items.entries.iter();
    out.push((
        "item.jsonl".to_string(),
        match m.item_buckets {
            None => lines(
                items
                    .enumerate()
                    .map(|(id, (i, n))| json!({"id": id + 1, "key": item_keys[*i as usize], "train_events": n})),
            ),
            Some(b) => lines(items.map(|(i, n)| {
                let key = &item_keys[*i as usize];
                json!({"key": key, "bucket": hash_bucket(RawId::Str(key), b as i64), "train_events": n})
            })),
        },
    ));
    let mut users: Vec<(u64, usize)> = user_rows.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    users.sort();
    let train_events: HashMap<u32, u64> = v.users.entries.iter().copied().collect();
    out.push((
        "user.jsonl".to_string(),
        lines(users.iter().map(|(row, i)| {
            let n = train_events.get(&(*i as u32)).copied().unwrap_or(0);
            json!({"user": row, "key": user_keys[*i], "train_events": n})
        })),
    ));
    for (c, ids) in [(&m.fields, &v.fields), (&m.profile, &v.profile)] {
        let (Some(c), Some(ids)) = (c, ids) else { continue };
        let mut text = String::new();
        for (k, (col, values)) in c.columns.iter().zip(&ids.columns).enumerate() {
            let all = values.entries.iter().enumerate();
            text.push_str(&lines(std::iter::once(json!({"id": ids.offsets[k], "column": col.name, "value": null})).chain(
                all.map(|(j, (value, n))| {
                    json!({"id": ids.absolute[k][j], "column": col.name, "value": value, "train_events": n})
                }),
            )));
        }
        out.push((format!("{}.jsonl", c.key), text));
    }
    for (name, per_item) in [("cluster", &v.clusters), ("creator", &v.creators)] {
        if let Some((_, values)) = per_item {
            let all = values.entries.iter().enumerate();
            out.push((
                format!("{name}.jsonl"),
                lines(all.map(|(j, (value, n))| json!({"id": j + 1, "value": value, "items": n}))),
            ));
        }
    }
    out
}

/// `items.jsonl` (as the simulator writes it, for `recspec responsiveness`): every item id in
/// order with its cluster and creator ids; `None` when the mapping names neither.
pub(crate) fn items_jsonl(v: &Vocabs) -> Option<String> {
    if v.clusters.is_none() && v.creators.is_none() {
        return None;
    }
    let mut s = String::new();
    for id in 0..v.items.size() {
        let _ = write!(s, "{{\"item\":{id}");
        for (name, per_item) in [("cluster", &v.clusters), ("creator", &v.creators)] {
            if let Some((ids, _)) = per_item {
                let _ = write!(s, ",\"{name}\":{}", ids[id]);
            }
        }
        s.push_str("}\n");
    }
    Some(s)
}
