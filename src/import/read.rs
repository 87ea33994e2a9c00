//! The first pass: the event log becomes [`Event`] records (the mapping's rules evaluated, only
//! the values later passes need), handed to the external sort; the user and item tables are
//! read into memory by key.

use super::events::{self, RecordReader};
use super::mapping::{Mapping, SideKind, Table, Transform};
use super::rule::{parse_number, quoted};
use super::sort::{codec, Sorter, Spill};
use super::{ImportError, Progress, PROGRESS_EVERY};
use crate::data::DataError;
use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::path::Path;

/// Bad rows listed in the summary (all are counted).
pub(crate) const LISTED_BAD_ROWS: usize = 5;

/// One event as the later passes see it. Sorted by time, then by row (file order).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub time: f64,
    /// Row number in the events file.
    pub row: u64,
    /// Dense indices of the user and item keys, in order of first appearance in the file.
    pub user: u32,
    pub item: u32,
    /// Every rule of the mapping, by rule slot.
    pub rules: Vec<bool>,
    /// Float side features, by float slot (0 where the event does not enter the sequence).
    pub floats: Vec<f32>,
    /// Event columns of categorical fields, by value index.
    pub values: Vec<String>,
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.time.total_cmp(&other.time).then(self.row.cmp(&other.row))
    }
}

impl Spill for Event {
    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        codec::put_u64(w, self.time.to_bits())?;
        codec::put_u64(w, self.row)?;
        codec::put_u32(w, self.user)?;
        codec::put_u32(w, self.item)?;
        codec::put_u32(w, self.rules.len() as u32)?;
        w.write_all(&self.rules.iter().map(|b| u8::from(*b)).collect::<Vec<u8>>())?;
        codec::put_u32(w, self.floats.len() as u32)?;
        for x in &self.floats {
            codec::put_u32(w, x.to_bits())?;
        }
        codec::put_u32(w, self.values.len() as u32)?;
        for v in &self.values {
            codec::put_str(w, v)?;
        }
        Ok(())
    }

    fn read_from(r: &mut impl BufRead) -> io::Result<Option<Self>> {
        if codec::at_end(r)? {
            return Ok(None);
        }
        let time = f64::from_bits(codec::get_u64(r)?);
        let row = codec::get_u64(r)?;
        let user = codec::get_u32(r)?;
        let item = codec::get_u32(r)?;
        let mut rules = vec![0u8; codec::get_u32(r)? as usize];
        r.read_exact(&mut rules)?;
        let floats =
            (0..codec::get_u32(r)?).map(|_| codec::get_u32(r).map(f32::from_bits)).collect::<io::Result<_>>()?;
        let values = (0..codec::get_u32(r)?).map(|_| codec::get_str(r)).collect::<io::Result<_>>()?;
        Ok(Some(Event { time, row, user, item, rules: rules.into_iter().map(|b| b != 0).collect(), floats, values }))
    }
}

/// Keys numbered densely in order of first appearance.
#[derive(Default)]
pub struct Interner {
    index: HashMap<String, u32>,
    pub keys: Vec<String>,
}

impl Interner {
    pub(crate) fn intern(&mut self, key: &str) -> u32 {
        if let Some(i) = self.index.get(key) {
            return *i;
        }
        let i = self.keys.len() as u32;
        self.index.insert(key.to_string(), i);
        self.keys.push(key.to_string());
        i
    }
}

/// Bad rows: with `skip`, counted and the first few kept; otherwise the first one stops.
#[derive(Default)]
pub(crate) struct BadRows {
    pub skip: bool,
    pub count: usize,
    pub first: Vec<DataError>,
}

impl BadRows {
    /// Skips a bad row (`ImportError::Row`) when allowed; every other error passes through.
    pub fn report(&mut self, e: ImportError) -> Result<(), ImportError> {
        match e {
            ImportError::Row(row) if self.skip => {
                self.count += 1;
                if self.first.len() < LISTED_BAD_ROWS {
                    self.first.push(row);
                }
                Ok(())
            }
            other => Err(other),
        }
    }

    /// The next record of `reader` that can be read, skipping bad ones as [`report`](Self::report)
    /// allows: its row number, or `None` at the end.
    pub(crate) fn next_record(
        &mut self,
        reader: &mut dyn RecordReader,
        values: &mut Vec<String>,
    ) -> Result<Option<usize>, ImportError> {
        loop {
            match reader.next_record(values) {
                Err(e) => self.report(e)?,
                ok => return ok,
            }
        }
    }
}

/// What the first pass learnt besides the events themselves.
pub struct Read {
    pub users: Interner,
    pub items: Interner,
    /// Events per user, by dense user index.
    pub user_events: Vec<u32>,
    pub events: usize,
}

/// Reads the event log into `sorter`: every record projected to the mapping's columns, its
/// rules evaluated and its float side features parsed.
pub(crate) fn read_events(
    path: &Path,
    m: &Mapping,
    sorter: &mut Sorter<Event>,
    bad: &mut BadRows,
    progress: &mut dyn FnMut(Progress),
) -> Result<Read, ImportError> {
    let mut reader = events::open(path, &m.events, &m.columns)?;
    let mut read = Read { users: Interner::default(), items: Interner::default(), user_events: vec![], events: 0 };
    let mut values = vec![];
    let mut rows = 0;
    while let Some(row) = bad.next_record(reader.as_mut(), &mut values)? {
        rows += 1;
        if rows % PROGRESS_EVERY == 0 {
            progress(Progress::Read { rows });
        }
        match event(m, &values).map_err(|message| DataError { file: path.to_path_buf(), row, message }) {
            Ok(mut e) => {
                e.row = row as u64;
                e.user = read.users.intern(&values[m.user]);
                e.item = read.items.intern(&values[m.item]);
                if read.user_events.len() < read.users.keys.len() {
                    read.user_events.push(0);
                }
                read.user_events[e.user as usize] += 1;
                read.events += 1;
                sorter.push(e)?;
            }
            Err(e) => bad.report(ImportError::Row(e))?,
        }
    }
    Ok(read)
}

/// One record's event (its row, user and item left for the caller), or why it is bad.
pub(crate) fn event(m: &Mapping, values: &[String]) -> Result<Event, String> {
    for (slot, what) in [(m.user, "user"), (m.item, "item")] {
        if values[slot].is_empty() {
            return Err(format!("the {what} column `{}` is empty", m.columns[slot].name));
        }
    }
    let raw_time = &values[m.time];
    let time = parse_number(raw_time)
        .filter(|t| t.is_finite())
        .ok_or_else(|| format!("the time column `{}` is {}, not a number", m.columns[m.time].name, quoted(raw_time)))?;
    let mut rules: Vec<bool> = Vec::with_capacity(m.rules.len());
    for r in &m.rules {
        let holds = match r.gate {
            Some(gate) if !rules[gate] => false,
            _ => r.rule.eval(values).map_err(|e| format!("{}: {e}", r.origin))?,
        };
        rules.push(holds);
    }
    let mut floats = vec![0.0; m.floats];
    for s in &m.sequences {
        if !rules[s.when] {
            continue;
        }
        for side in &s.sides {
            if let SideKind::Column { slot, float, transform } = side.kind {
                let origin = &m.columns[slot].origin;
                let raw = &values[slot];
                let x = parse_number(raw).filter(|x| x.is_finite()).ok_or_else(|| {
                    format!("{origin}: column `{}` is {}, not a number", m.columns[slot].name, quoted(raw))
                })?;
                let y = match transform {
                    Transform::None => x,
                    Transform::Log1p if x > -1.0 => x.ln_1p(),
                    Transform::Log1p => return Err(format!("{origin}: log1p needs a value above -1, found {x}")),
                };
                if !(y as f32).is_finite() {
                    return Err(format!("{origin}: {y} does not fit a 32-bit float"));
                }
                floats[float] = y as f32;
            }
        }
    }
    let values: Vec<String> = m.values.iter().map(|slot| values[*slot].clone()).collect();
    super::extras::check_event(m, &values)?;
    Ok(Event { time, row: 0, user: 0, item: 0, rules, floats, values })
}

/// A user or item table: key -> the joined columns' values.
pub type Rows = HashMap<String, Vec<String>>;

/// Reads a table. Malformed rows follow the bad-row policy; a key given twice is an error.
pub(crate) fn read_table(t: &Table, bad: &mut BadRows) -> Result<Rows, ImportError> {
    let mut wanted = vec![t.key.clone()];
    wanted.extend(t.columns.iter().cloned());
    let mut reader: Box<dyn RecordReader> = events::open(&t.file, &t.layout, &wanted)?;
    let mut rows: HashMap<String, (usize, Vec<String>)> = HashMap::new();
    let mut values = vec![];
    while let Some(row) = bad.next_record(reader.as_mut(), &mut values)? {
        let key = values[0].clone();
        if let Some((first, _)) = rows.get(&key) {
            return Err(ImportError::Row(DataError {
                file: t.file.clone(),
                row,
                message: format!("key {} (column `{}`) is already the key of row {first}", quoted(&key), t.key.name),
            }));
        }
        rows.insert(key, (row, values[1..].to_vec()));
    }
    Ok(rows.into_iter().map(|(k, (_, v))| (k, v)).collect())
}
