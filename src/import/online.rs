//! Rows for one user at a time, from raw events: what `recspec serve` scores raw requests with.
//!
//! A [`Featurizer`] holds a data set's mapping (or feature set), everything its import fitted
//! ([`super::prior::fitted`]: vocabularies, statistics, the user and item numbering) and the user
//! and item tables it joins. Given a user's earlier raw events, the candidate items and the
//! request's own columns, it writes each candidate's row with the import's own code
//! ([`super::build::row`], [`super::build::UserState`], [`super::read::event`]): the rules, the
//! sequences (strictly earlier events, most recent last, at most T), the side features and every
//! fitted feature are computed once, in one place, for training and for serving. A test replays
//! an event log through it and gets the import's rows byte for byte.
//!
//! A user's state is their raw events ([`RawEvent`]: column name -> text, as the event log holds
//! them), never ids, so that a newer fitted artifact numbers them anew. [`Featurizer::keep`]
//! trims it to what the sequences can still use.

use super::build::{row, ItemIds, Keys, RowIds, UserState};
use super::events::json_text;
use super::mapping::Mapping;
use super::prior::{fitted, Fit};
use super::read::{event, read_table, BadRows, Interner, Rows};
use super::vocab::Joins;
use super::ImportError;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One raw event: the event log's columns the mapping reads, as text.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawEvent {
    pub time: f64,
    pub columns: BTreeMap<String, String>,
}

/// A data set's features, ready to build rows from raw events.
pub struct Featurizer {
    m: Mapping,
    keys: Keys,
    fit: Fit,
    users: Rows,
    items: Rows,
    /// Event column name -> slot.
    slots: HashMap<String, usize>,
}

/// What a raw request asks to score: one user's candidates, with the request's own columns.
pub struct Request<'a> {
    pub user: &'a str,
    pub items: &'a [String],
    /// Event columns known at request time (a device, the time); the rest are empty.
    pub context: &'a Map<String, Value>,
}

impl Featurizer {
    /// Reads what the import of data set `dir` with mapping `m` fitted, and the tables `m` joins.
    pub fn load(dir: &Path, m: Mapping) -> Result<Featurizer, ImportError> {
        let fit = fitted(dir, &m)?;
        let mut bad = BadRows::default();
        let users = m.users.as_ref().map(|t| read_table(t, &mut bad)).transpose()?.unwrap_or_default();
        let items = m.items.as_ref().map(|t| read_table(t, &mut bad)).transpose()?.unwrap_or_default();
        let slots = m.columns.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        Ok(Featurizer { keys: Keys::new(&m), m, fit, users, items, slots })
    }

    pub fn mapping(&self) -> &Mapping {
        &self.m
    }

    /// The item keys the data set numbered (its catalogue), in id order.
    pub fn item_keys(&self) -> &[String] {
        &self.fit.item_keys
    }

    /// The event column names, user, item and time first.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = vec![&self.m.columns[self.m.user].name, &self.m.columns[self.m.item].name];
        out.push(&self.m.columns[self.m.time].name);
        for (i, c) in self.m.columns.iter().enumerate() {
            if ![self.m.user, self.m.item, self.m.time].contains(&i) {
                out.push(&c.name);
            }
        }
        out.into_iter().map(String::as_str).collect()
    }

    /// A posted event: its user key and the raw event, checked as the import checks a row (the
    /// user and item present, the time a number, every rule and number readable). `Err` names
    /// the field.
    pub fn parse_event(&self, object: &Map<String, Value>) -> Result<(String, RawEvent), String> {
        let mut values = vec![String::new(); self.m.columns.len()];
        for (name, v) in object {
            let Some(slot) = self.slots.get(name) else {
                return Err(format!(
                    "`{name}` is not a column of the event log the features read (they read {})",
                    self.columns().iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ));
            };
            values[*slot] = json_text(v).ok_or_else(|| format!("`{name}` must be text, a number or a boolean"))?;
        }
        for slot in [self.m.user, self.m.item, self.m.time] {
            if !object.contains_key(&self.m.columns[slot].name) {
                return Err(format!("no `{}`", self.m.columns[slot].name));
            }
        }
        self.raw_event(values)
    }

    /// An event from its values by slot, checked.
    fn raw_event(&self, values: Vec<String>) -> Result<(String, RawEvent), String> {
        let e = event(&self.m, &values)?;
        let user = values[self.m.user].clone();
        let columns = self.m.columns.iter().zip(values).map(|(c, v)| (c.name.clone(), v)).collect();
        Ok((user, RawEvent { time: e.time, columns }))
    }

    /// Every event of an event log (any format the import reads), checked as the import checks
    /// them; the first bad row is an error naming the file and row.
    pub fn read_events(&self, path: &Path) -> Result<Vec<(String, RawEvent)>, ImportError> {
        let mut reader = super::events::open(path, &self.m.events, &self.m.columns)?;
        let mut values = vec![];
        let mut out = vec![];
        while let Some(row) = reader.next_record(&mut values)? {
            let e = self.raw_event(std::mem::take(&mut values)).map_err(|message| {
                ImportError::Row(crate::data::DataError { file: path.to_path_buf(), row, message })
            })?;
            out.push(e);
        }
        Ok(out)
    }

    /// The values of `raw` by slot (a column it lacks is empty).
    fn values(&self, raw: &RawEvent) -> Vec<String> {
        self.m.columns.iter().map(|c| raw.columns.get(&c.name).cloned().unwrap_or_default()).collect()
    }

    /// Inserts `e` into a user's events in time order (after events of the same time: the order
    /// they arrived in is the log's row order), then trims them ([`Featurizer::keep`]).
    pub fn insert(&self, events: &mut Vec<RawEvent>, e: RawEvent) {
        let at = events.partition_point(|x| x.time <= e.time);
        events.insert(at, e);
        self.keep(events);
    }

    /// Trims a user's events (time-ordered) to those a row can still read: for every sequence,
    /// the last `length` events it admits before the latest time, and every event at the
    /// latest time (they enter sequences only once a later time comes). An event no sequence
    /// admits is dropped.
    pub fn keep(&self, events: &mut Vec<RawEvent>) {
        let Some(latest) = events.last().map(|e| e.time) else { return };
        let mut wanted = vec![false; events.len()];
        let mut left: Vec<usize> = self.m.sequences.iter().map(|s| s.length).collect();
        for (i, raw) in events.iter().enumerate().rev() {
            let Ok(e) = event(&self.m, &self.values(raw)) else { continue };
            for (s, n) in self.m.sequences.iter().zip(left.iter_mut()) {
                if e.rules[s.when] && (raw.time == latest || *n > 0) {
                    wanted[i] = true;
                    if raw.time < latest {
                        *n -= 1;
                    }
                }
            }
        }
        let mut i = 0;
        events.retain(|_| {
            i += 1;
            wanted[i - 1]
        });
    }

    /// The catalogue's keys best first by `scores` (every item id's score, or every bucket's
    /// with hashed items), at most `k`, ties towards the earlier catalogue key. With
    /// `exclude_consumed`, the items of `row`'s sequences named in `consumed` are left out: by
    /// key, so a hashed history bans the keys it holds, not whole buckets.
    pub fn rank(
        &self,
        scores: &[f32],
        row: &Value,
        consumed: &[String],
        k: usize,
        exclude_consumed: bool,
    ) -> Vec<(String, f32)> {
        let keys = &self.fit.item_keys;
        let mut banned: std::collections::HashSet<&str> = std::collections::HashSet::new();
        if exclude_consumed {
            for name in consumed {
                for v in row.get(name).and_then(Value::as_array).into_iter().flatten() {
                    let key = match v {
                        Value::String(key) => Some(key.as_str()),
                        Value::Number(id) => {
                            id.as_u64().and_then(|id| keys.get((id as usize).wrapping_sub(1))).map(String::as_str)
                        }
                        _ => None,
                    };
                    banned.extend(key);
                }
            }
        }
        let slot = |i: usize| match self.m.item_buckets {
            None => i + 1,
            Some(b) => crate::data::hash_bucket(crate::data::RawId::Str(&keys[i]), b as i64) as usize,
        };
        let mut picks: Vec<(usize, f32)> = (0..keys.len())
            .filter(|i| !banned.contains(keys[*i].as_str()))
            .filter_map(|i| scores.get(slot(i)).map(|s| (i, *s)))
            .collect();
        picks.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        picks.truncate(k);
        picks.into_iter().map(|(i, s)| (keys[i].clone(), s)).collect()
    }

    /// One JSON row (no newline) per candidate of `request`, whose user's earlier events are
    /// `history` (time-ordered). The request's time is its time column, when given: only
    /// events before it enter the sequences, as in the import; without it, every event does.
    pub fn rows(&self, request: &Request, history: &[RawEvent]) -> Result<Vec<String>, String> {
        let m = &self.m;
        let time_column = &m.columns[m.time].name;
        let cutoff = match request.context.get(time_column) {
            None => f64::INFINITY,
            Some(v) => json_text(v)
                .and_then(|t| super::rule::parse_number(&t))
                .filter(|t| t.is_finite())
                .ok_or_else(|| format!("context: `{time_column}` is {v}, not a number"))?,
        };
        let mut base = vec![String::new(); m.columns.len()];
        for (name, v) in request.context {
            let Some(slot) = self.slots.get(name) else {
                return Err(format!("context: `{name}` is not a column of the event log the features read"));
            };
            if [m.user, m.item].contains(slot) {
                return Err(format!("context: `{name}` is the request's user or item; give it as `user` or `items`"));
            }
            base[*slot] =
                json_text(v).ok_or_else(|| format!("context: `{name}` must be text, a number or a boolean"))?;
        }
        if cutoff.is_infinite() {
            base[m.time] = history.last().map_or_else(|| "0".to_string(), |e| e.columns[time_column].clone());
        }
        base[m.user] = request.user.to_string();

        // The keys this request names, indexed densely as the import indexes a log's keys.
        let mut items = Interner::default();
        let row_id = self.fit.user_rows.get(request.user).copied().unwrap_or(0);
        let mut state = UserState::new(m, row_id);
        for raw in history.iter().take_while(|e| e.time < cutoff) {
            let mut e = event(m, &self.values(raw)).map_err(|why| format!("a stored event of the user: {why}"))?;
            e.item = items.intern(&raw.columns[&m.columns[m.item].name]);
            state.advance(m, e.time);
            state.admit(m, &e);
        }
        state.advance(m, cutoff);
        let candidates: Vec<u32> = request.items.iter().map(|k| items.intern(k)).collect();
        let ids = RowIds {
            items: match m.item_buckets {
                Some(_) => ItemIds::Hashed(items.keys.iter().map(|k| super::build::json_key(k)).collect()),
                None => {
                    ItemIds::Owned(items.keys.iter().map(|k| self.fit.items.get(k).copied().unwrap_or(0)).collect())
                }
            },
            users: &[self.fit.users.get(request.user).copied().unwrap_or(0)],
            fields: self.fit.fields.as_ref(),
            profile: self.fit.profile.as_ref(),
            extras: &self.fit.extras,
        };
        let joins = Joins {
            users: vec![self.users.get(request.user).cloned()],
            items: items.keys.iter().map(|k| self.items.get(k).cloned()).collect(),
        };
        let mut out = Vec::with_capacity(candidates.len());
        let mut line = String::new();
        for (key, index) in request.items.iter().zip(candidates) {
            let mut values = base.clone();
            values[m.item] = key.clone();
            let mut e = event(m, &values)?;
            e.item = index;
            row(&mut line, m, &self.keys, &ids, &joins, &e, &state)?;
            out.push(line.trim_end().to_string());
        }
        Ok(out)
    }
}
