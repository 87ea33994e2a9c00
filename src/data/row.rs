//! Validation of one JSON row against a schema and its append to the batch buffers.

use super::{hash_bucket, Column, FieldKind, FieldSchema, HostBatch, InputSource, RawId, Schema};
use crate::ir::InputRole;
use serde_json::{Map, Value};

enum Buf {
    Ids(Vec<i64>),
    Floats(Vec<f32>),
}

/// Accumulates validated rows into flat, padded buffers.
pub(super) struct BatchBuilder {
    len: usize,
    users: Vec<u64>,
    bufs: Vec<Buf>,
    /// For sequences: the mask buffer.
    masks: Vec<Option<Vec<bool>>>,
    /// For side features: the index of their sequence in `schema.fields`.
    owners: Vec<Option<usize>>,
    labels: Vec<Vec<f32>>,
    weights: Vec<Vec<f32>>,
    /// Scratch: the length of each sequence in the row being appended.
    seq_lens: Vec<usize>,
}

/// How a JSON value reads in a message: numbers verbatim, other kinds by name.
pub(super) fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => n.to_string(),
        Value::String(_) => "a string".into(),
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

fn what(kind: FieldKind) -> String {
    match kind {
        FieldKind::Ids { vocab } => format!("an integer id in 0..{vocab}"),
        FieldKind::HashedIds { .. } => "an integer or string id".to_string(),
        FieldKind::Floats => "a number".to_string(),
    }
}

fn id_value(v: &Value, vocab: i64, key: &str) -> Result<i64, String> {
    let Value::Number(n) = v else {
        return Err(format!("`{key}`: expected an integer id in 0..{vocab}, found {}", found(v)));
    };
    let out_of_vocab =
        || format!("`{key}`: id {n} is out of vocabulary (vocab size {vocab}: ids must be in 0..{vocab})");
    if let Some(i) = n.as_i64() {
        if (0..vocab).contains(&i) {
            return Ok(i);
        }
        return Err(out_of_vocab());
    }
    if n.is_u64() {
        return Err(out_of_vocab());
    }
    Err(format!("`{key}`: expected an integer id in 0..{vocab}, found {n}"))
}

/// A hashed input's raw id (an integer or a string) as its bucket.
pub(crate) fn hashed_value(v: &Value, buckets: i64, key: &str) -> Result<i64, String> {
    let raw = match v {
        Value::String(s) => RawId::Str(s),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => RawId::Int(i),
            (None, Some(u)) => RawId::Int(u as i64),
            (None, None) => return Err(format!("`{key}`: expected an integer or string id, found {n}")),
        },
        other => return Err(format!("`{key}`: expected an integer or string id, found {}", found(other))),
    };
    Ok(hash_bucket(raw, buckets))
}

fn float_value(v: &Value, key: &str) -> Result<f32, String> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x.abs() <= f32::MAX as f64 => Ok(x as f32),
        Some(_) => Err(format!("`{key}`: {} is not a finite 32-bit float", found(v))),
        None => Err(format!("`{key}`: expected a number, found {}", found(v))),
    }
}

fn push(buf: &mut Buf, kind: FieldKind, v: &Value, key: &str) -> Result<(), String> {
    match (buf, kind) {
        (Buf::Ids(b), FieldKind::Ids { vocab }) => b.push(id_value(v, vocab, key)?),
        (Buf::Ids(b), FieldKind::HashedIds { buckets }) => b.push(hashed_value(v, buckets, key)?),
        (Buf::Floats(b), _) => b.push(float_value(v, key)?),
        (Buf::Ids(b), FieldKind::Floats) => b.push(0),
    }
    Ok(())
}

fn pad(buf: &mut Buf, n: usize) {
    match buf {
        Buf::Ids(b) => b.resize(b.len() + n, 0),
        Buf::Floats(b) => b.resize(b.len() + n, 0.0),
    }
}

fn truncate(buf: &mut Buf, n: usize) {
    match buf {
        Buf::Ids(b) => b.truncate(n),
        Buf::Floats(b) => b.truncate(n),
    }
}

/// Pushes exactly `n` numbers from an array value (for `n` = 1, a number alone is one too: a
/// feature set writes one number per row for `float[B]` and `float[B, 1]` inputs alike).
fn push_array(buf: &mut Buf, f: &FieldSchema, v: &Value, n: usize, key: &str) -> Result<(), String> {
    if let (1, Value::Number(_)) = (n, v) {
        return push(buf, f.kind, v, key);
    }
    let Value::Array(items) = v else {
        return Err(format!("`{key}`: expected an array of {n} values ({}), found {}", what(f.kind), found(v)));
    };
    if items.len() != n {
        return Err(format!("`{key}`: expected an array of {n} values, found an array of {}", items.len()));
    }
    for (i, x) in items.iter().enumerate() {
        push(buf, f.kind, x, &format!("{key}[{i}]"))?;
    }
    Ok(())
}

fn labelled<'a>(
    obj: &'a Map<String, Value>,
    group: &str,
    names: &[String],
) -> Result<Option<&'a Map<String, Value>>, String> {
    if names.is_empty() {
        return Ok(None);
    }
    match obj.get(group) {
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => {
            Err(format!("`{group}`: expected an object with keys {}, found {}", names.join(", "), found(other)))
        }
        None => Err(format!("missing key `{group}` (expected an object with keys {})", names.join(", "))),
    }
}

impl BatchBuilder {
    pub(super) fn new(schema: &Schema, capacity: usize) -> BatchBuilder {
        let bufs = schema
            .fields
            .iter()
            .map(|f| match f.kind {
                FieldKind::Ids { .. } | FieldKind::HashedIds { .. } => {
                    Buf::Ids(Vec::with_capacity(capacity * f.row_len()))
                }
                FieldKind::Floats => Buf::Floats(Vec::with_capacity(capacity * f.row_len())),
            })
            .collect();
        let masks = schema
            .fields
            .iter()
            .map(|f| (f.role == InputRole::Sequence).then(|| Vec::with_capacity(capacity * f.max_len())))
            .collect();
        let owners = schema
            .fields
            .iter()
            .map(|f| match (f.role, &f.sequence) {
                (InputRole::Side, Some(s)) => schema.fields.iter().position(|o| &o.name == s),
                _ => None,
            })
            .collect();
        BatchBuilder {
            len: 0,
            users: Vec::with_capacity(capacity),
            bufs,
            masks,
            owners,
            labels: schema.labels.iter().map(|_| Vec::with_capacity(capacity)).collect(),
            weights: schema.weights.iter().map(|_| Vec::with_capacity(capacity)).collect(),
            seq_lens: vec![0; schema.fields.len()],
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Validates one parsed row and appends it; on error nothing is appended.
    pub(super) fn append(&mut self, schema: &Schema, row: &Value) -> Result<(), String> {
        let r = self.append_inner(schema, row);
        if r.is_err() {
            self.rollback(schema);
        }
        r
    }

    fn rollback(&mut self, schema: &Schema) {
        let n = self.len;
        self.users.truncate(n);
        for (i, f) in schema.fields.iter().enumerate() {
            truncate(&mut self.bufs[i], n * f.row_len());
            if let Some(m) = &mut self.masks[i] {
                m.truncate(n * f.max_len());
            }
        }
        self.labels.iter_mut().chain(self.weights.iter_mut()).for_each(|v| v.truncate(n));
    }

    fn append_inner(&mut self, schema: &Schema, row: &Value) -> Result<(), String> {
        let Value::Object(obj) = row else {
            return Err(format!("expected a JSON object per line, found {}", found(row)));
        };
        let user = match obj.get("user") {
            Some(v) => {
                v.as_u64().ok_or_else(|| format!("`user`: expected a non-negative integer, found {}", found(v)))?
            }
            None => return Err("missing key `user` (expected a non-negative integer)".into()),
        };
        self.users.push(user);
        for (i, f) in schema.fields.iter().enumerate() {
            let key = f.name.as_str();
            let Some(v) = obj.get(key) else {
                return Err(format!("missing key `{key}` (expected {})", f.layout()));
            };
            let buf = &mut self.bufs[i];
            match f.role {
                InputRole::Sequence | InputRole::Side => {
                    let Value::Array(items) = v else {
                        return Err(format!("`{key}`: expected {}, found {}", f.layout(), found(v)));
                    };
                    let t = f.max_len();
                    let n = items.len();
                    if let Some(o) = self.owners[i] {
                        let seq = &schema.fields[o].name;
                        if n != self.seq_lens[o] {
                            return Err(format!(
                                "`{key}`: has {n} entries but its sequence `{seq}` has {} (one entry per element expected)",
                                self.seq_lens[o]
                            ));
                        }
                    } else if n > t {
                        return Err(format!("`{key}`: sequence has {n} elements, longer than T = {t}"));
                    }
                    self.seq_lens[i] = n;
                    let e = f.elem_len();
                    for (j, x) in items.iter().enumerate() {
                        let k = format!("{key}[{j}]");
                        if e == 1 {
                            push(buf, f.kind, x, &k)?;
                        } else {
                            push_array(buf, f, x, e, &k)?;
                        }
                    }
                    pad(buf, (t - n) * e);
                    if let Some(m) = &mut self.masks[i] {
                        m.extend((0..t).map(|j| j < n));
                    }
                }
                _ if f.shape.is_empty() => push(buf, f.kind, v, key)?,
                _ => push_array(buf, f, v, f.row_len(), key)?,
            }
        }
        if let Some(m) = labelled(obj, "labels", &schema.labels)? {
            for (l, out) in schema.labels.iter().zip(&mut self.labels) {
                let Some(v) = m.get(l) else {
                    return Err(format!("missing label `labels.{l}` (expected 0 or 1)"));
                };
                match v.as_f64() {
                    Some(x) if x == 0.0 || x == 1.0 => out.push(x as f32),
                    _ => return Err(format!("`labels.{l}`: expected 0 or 1, found {}", found(v))),
                }
            }
        }
        if let Some(m) = labelled(obj, "weights", &schema.weights)? {
            for (w, out) in schema.weights.iter().zip(&mut self.weights) {
                let Some(v) = m.get(w) else {
                    return Err(format!("missing weight `weights.{w}` (expected a finite number >= 0)"));
                };
                match v.as_f64() {
                    Some(x) if x.is_finite() && (0.0..=f32::MAX as f64).contains(&x) => out.push(x as f32),
                    _ => {
                        return Err(format!("`weights.{w}`: expected a finite number >= 0, found {}", found(v)));
                    }
                }
            }
        }
        self.len += 1;
        Ok(())
    }

    /// Moves the accumulated rows out as a batch and starts empty again.
    pub(super) fn take(&mut self, schema: &Schema) -> HostBatch {
        let n = self.len;
        let shape = |f: &FieldSchema| [&[n][..], &f.shape].concat();
        let inputs = schema
            .inputs
            .iter()
            .map(|input| match input.source {
                None => None,
                Some(InputSource::Field(i)) => Some(match &mut self.bufs[i] {
                    Buf::Ids(b) => Column::ids(std::mem::take(b), shape(&schema.fields[i])),
                    Buf::Floats(b) => Column::floats(std::mem::take(b), shape(&schema.fields[i])),
                }),
                Some(InputSource::Mask(i)) => {
                    self.masks[i].as_mut().map(|m| Column::mask(std::mem::take(m), vec![n, schema.fields[i].max_len()]))
                }
                Some(InputSource::Weight(i)) => Some(Column::floats(std::mem::take(&mut self.weights[i]), vec![n])),
            })
            .collect();
        let labels = self.labels.iter_mut().map(std::mem::take).collect();
        self.len = 0;
        HostBatch { len: n, users: std::mem::take(&mut self.users), inputs, labels }
    }
}
