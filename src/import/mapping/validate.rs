//! Checks a mapping file's values and resolves its names: rules parse, columns get slots,
//! output keys and dims are unique, table columns are known; every error names its line.

use super::file::*;
use super::*;
use crate::data::RESERVED_KEYS;
use crate::import::events::Format;
use std::collections::BTreeMap;
use toml::Spanned;

type Span = std::ops::Range<usize>;

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses and validates mapping text.
pub fn validate(path: &Path, text: &str) -> Result<Mapping, ImportError> {
    let file: MappingFile = toml::from_str(text).map_err(|e| ImportError::Mapping {
        file: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
        message: e.message().trim_end().to_string(),
    })?;
    validate_file(path, text, &[], file)
}

/// Where each value of sections made from a feature set was written: the file and line of the
/// statement, by the value's span start (1, 2, ...); `None` where no statement is known.
pub(super) type Statements = [Option<(PathBuf, usize)>];

/// Validates a mapping's sections; `text` is the file they were read from, or empty when they
/// were made from a feature set (then messages name the statement each value came from,
/// `statements`, or `path` without a line).
pub(super) fn validate_file(
    path: &Path,
    text: &str,
    statements: &Statements,
    file: MappingFile,
) -> Result<Mapping, ImportError> {
    let mut b = Builder {
        path,
        text,
        statements,
        columns: vec![],
        rules: vec![],
        values: vec![],
        floats: 0,
        users: None,
        items: None,
        keys: vec![],
        dims: vec![],
    };
    b.build(file)
}

struct Builder<'a> {
    path: &'a Path,
    text: &'a str,
    statements: &'a Statements,
    columns: Vec<Wanted>,
    rules: Vec<NamedRule>,
    values: Vec<usize>,
    floats: usize,
    users: Option<Table>,
    items: Option<Table>,
    keys: Vec<String>,
    dims: Vec<String>,
}

/// Keys in declaration order.
fn in_order<K: Ord, V>(map: BTreeMap<Spanned<K>, V>) -> Vec<(Spanned<K>, V)> {
    let mut v: Vec<(Spanned<K>, V)> = map.into_iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Builder<'_> {
    /// The file and line of `span`: in the mapping file, or the feature set's statement the
    /// value came from (line 0: unknown).
    fn place(&self, span: &Span) -> (PathBuf, usize) {
        if !self.text.is_empty() {
            return (self.path.to_path_buf(), line_of(self.text, span.start));
        }
        let statement = span.start.checked_sub(1).and_then(|i| self.statements.get(i)).cloned().flatten();
        statement.unwrap_or_else(|| (self.path.to_path_buf(), 0))
    }

    fn error<T>(&self, span: Span, message: String) -> Result<T, ImportError> {
        let (file, line) = self.place(&span);
        Err(ImportError::Mapping { file, line, message })
    }

    fn origin(&self, what: &str, span: &Span) -> String {
        match self.place(span) {
            (file, 0) => format!("{what} ({})", file.display()),
            (file, line) => format!("{what} ({}:{line})", file.display()),
        }
    }

    /// The slot of an event column, added on first use.
    fn column(&mut self, name: &str, origin: String) -> usize {
        wanted_slot(&mut self.columns, name, origin)
    }

    fn nonempty(&self, s: &Spanned<String>, what: &str) -> Result<String, ImportError> {
        if s.get_ref().is_empty() {
            return self.error(s.span(), format!("{what} must not be empty"));
        }
        Ok(s.get_ref().clone())
    }

    fn rule(&mut self, what: String, text: &Spanned<String>, gate: Option<usize>) -> Result<usize, ImportError> {
        let origin = self.origin(&what, &text.span());
        let mut columns = std::mem::take(&mut self.columns);
        let parsed = Rule::parse(text.get_ref(), &mut |name| wanted_slot(&mut columns, name, origin.clone()));
        self.columns = columns;
        let rule = parsed.or_else(|e| self.error(text.span(), format!("{what}: {e}")))?;
        self.rules.push(NamedRule { origin, rule, gate });
        Ok(self.rules.len() - 1)
    }

    fn layout(
        &self,
        format: &Option<Spanned<String>>,
        delimiter: &Option<Spanned<String>>,
    ) -> Result<Layout, ImportError> {
        let mut layout = Layout::default();
        if let Some(f) = format {
            layout.format = Some(Format::parse(f.get_ref()).map_or_else(
                || {
                    self.error(
                        f.span(),
                        format!("format must be one of {}, found \"{}\"", Format::NAMES.join(", "), f.get_ref()),
                    )
                },
                Ok,
            )?);
        }
        if let Some(d) = delimiter {
            let bytes = d.get_ref().as_bytes();
            if bytes.len() != 1 || !bytes[0].is_ascii() || bytes[0] == b'\n' || bytes[0] == b'"' {
                return self
                    .error(d.span(), "delimiter must be one ASCII character other than a newline or `\"`".into());
            }
            if layout.format == Some(Format::JsonLines) {
                return self.error(d.span(), "delimiter does not apply to JSON Lines".into());
            }
            if layout.format == Some(Format::Parquet) {
                return self.error(d.span(), "delimiter does not apply to Parquet".into());
            }
            layout.delimiter = Some(bytes[0]);
        }
        Ok(layout)
    }

    fn table_file(&self, file: &Spanned<String>) -> Result<PathBuf, ImportError> {
        let name = self.nonempty(file, "file")?;
        Ok(relative_to(self.path, &name))
    }

    /// `[labels]`: at least one, each a name and its rule.
    fn labels(
        &mut self,
        labels: Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
    ) -> Result<Vec<Label>, ImportError> {
        let span = labels.span();
        let mut out = vec![];
        for (name, rule) in in_order(labels.into_inner()) {
            if !is_name(name.get_ref()) {
                return self
                    .error(name.span(), format!("label `{}`: names are letters, digits and `_`", name.get_ref()));
            }
            let rule = self.rule(format!("[labels] {}", name.get_ref()), &rule, None)?;
            out.push(Label { name: name.get_ref().clone(), rule });
        }
        if out.is_empty() {
            return self.error(span, "[labels] names no label; a data set needs at least one".into());
        }
        Ok(out)
    }

    /// `[sequences.*]`: each a key of its own, a rule, a length shared by the sequences on its dim, and
    /// side features.
    fn sequences(
        &mut self,
        sections: BTreeMap<Spanned<String>, SequenceSection>,
    ) -> Result<Vec<Sequence>, ImportError> {
        let mut sequences = vec![];
        let mut lengths: BTreeMap<String, (i64, String)> = BTreeMap::new();
        for (name, s) in in_order(sections) {
            let n = name.get_ref().clone();
            if !is_name(&n) {
                return self.error(name.span(), format!("sequence `{n}`: names are letters, digits and `_`"));
            }
            self.claim_key(&n, &name.span())?;
            let when = self.rule(format!("[sequences.{n}] when"), &s.when, None)?;
            let length = *s.length.get_ref();
            if !(1..=MAX_SEQUENCE_LENGTH).contains(&length) {
                return self
                    .error(s.length.span(), format!("[sequences.{n}] length must be in 1..={MAX_SEQUENCE_LENGTH}"));
            }
            let dim = match &s.dim {
                Some(d) if !is_name(d.get_ref()) => {
                    return self.error(d.span(), "dim names are letters, digits and `_`".into())
                }
                Some(d) => d.get_ref().clone(),
                None => "T".to_string(),
            };
            match lengths.get(&dim) {
            Some((other, seq)) if *other != length => {
                return self.error(
                    s.length.span(),
                    format!("[sequences.{n}] length {length} differs from {other} of `{seq}`, which shares dim {dim}; set `dim` to another name"),
                )
            }
            Some(_) => {}
            None => {
                let span = s.dim.as_ref().map_or(s.length.span(), |d| d.span());
                self.claim_dim(&dim, &span)?;
                lengths.insert(dim.clone(), (length, n.clone()));
            }
        }
            let mut sides = vec![];
            for (side, value) in in_order(s.side) {
                let sn = side.get_ref().clone();
                if !is_name(&sn) {
                    return self
                        .error(side.span(), format!("side feature `{n}.{sn}`: names are letters, digits and `_`"));
                }
                self.claim_key(&format!("{n}.{sn}"), &side.span())?;
                let kind = self.side(&n, &sn, value, when)?;
                sides.push(Side { name: sn, kind });
            }
            sequences.push(Sequence { name: n, length: length as usize, dim, when, sides });
        }
        Ok(sequences)
    }

    fn build(&mut self, file: MappingFile) -> Result<Mapping, ImportError> {
        let ev = &file.events;
        let events = self.layout(&ev.format, &ev.delimiter)?;
        let slot = |b: &mut Self, s: &Spanned<String>, what: &str| -> Result<usize, ImportError> {
            let name = b.nonempty(s, what)?;
            let origin = b.origin(&format!("[events] {what}"), &s.span());
            Ok(b.column(&name, origin))
        };
        let user = slot(self, &ev.user, "user")?;
        let item = slot(self, &ev.item, "item")?;
        let time = slot(self, &ev.time, "time")?;

        let output = file.output.unwrap_or(OutputSection {
            item: None,
            item_vocab: None,
            user_vocab: None,
            item_buckets: None,
            item_min_count: None,
        });
        let item_key = self.key_name(&output.item, "item", 0..0)?;
        let item_dim = self.dim_name(&output.item_vocab, "V", 0..0)?;
        let user_dim = self.dim_name(&output.user_vocab, "U", 0..0)?;
        let item_buckets = match &output.item_buckets {
            None => None,
            Some(b) if !(1..=MAX_ITEM_BUCKETS).contains(b.get_ref()) => {
                return self.error(
                    b.span(),
                    format!("[output] item_buckets must be in 1..={MAX_ITEM_BUCKETS}, found {}", b.get_ref()),
                )
            }
            Some(b) => Some((*b.get_ref() as u64, b.span())),
        };
        let item_min_count = match &output.item_min_count {
            None => 1,
            Some(n) if !(1..=i64::from(u32::MAX)).contains(n.get_ref()) => {
                return self.error(
                    n.span(),
                    format!("[output] item_min_count must be in 1..={}, found {}", u32::MAX, n.get_ref()),
                )
            }
            Some(n) if item_buckets.is_some() => {
                return self.error(
                    n.span(),
                    "[output] item_min_count counts items for their vocabulary ids, which item_buckets replaces; drop one or the other".into(),
                )
            }
            Some(n) => *n.get_ref() as u64,
        };

        let labels = self.labels(file.labels)?;
        let sequences = self.sequences(file.sequences)?;

        if let Some(t) = &file.users {
            self.users = Some(self.table("users", &t.file, &t.key, &t.format, &t.delimiter)?);
        }
        if let Some(t) = &file.items {
            self.items = Some(self.table("items", &t.file, &t.key, &t.format, &t.delimiter)?);
        }
        let fields = match file.fields {
            Some(c) => Some(self.categorical(c, "fields", ["fields", "F", "FV"])?),
            None => None,
        };
        let profile = match file.profile {
            Some(c) => Some(self.categorical(c, "profile", ["profile", "P", "PV"])?),
            None => None,
        };
        let mut items = self.items.take();
        let (mut cluster, mut creator) = (None, None);
        if let (Some(section), Some(table)) = (&file.items, items.as_mut()) {
            for (target, column, what) in
                [(&mut cluster, &section.cluster, "cluster"), (&mut creator, &section.creator, "creator")]
            {
                if let Some(c) = column {
                    let name = self.nonempty(c, what)?;
                    *target = Some(table_column(table, &name, self.origin(&format!("[items] {what}"), &c.span())));
                }
            }
        }
        if let (Some((_, span)), true) = (&item_buckets, cluster.is_some() || creator.is_some()) {
            return self.error(
                span.clone(),
                "[output] item_buckets hashes item keys, so items have no vocabulary ids for items.jsonl's \
                 `cluster` and `creator`; drop one or the other"
                    .into(),
            );
        }

        let split = self.split(&file.split)?;
        Ok(Mapping {
            file: self.path.to_path_buf(),
            events,
            columns: std::mem::take(&mut self.columns),
            user,
            item,
            time,
            rules: std::mem::take(&mut self.rules),
            labels,
            sequences,
            floats: self.floats,
            values: std::mem::take(&mut self.values),
            fields,
            profile,
            users: self.users.take(),
            items,
            cluster,
            creator,
            split,
            item_buckets: item_buckets.map(|(n, _)| n),
            item_min_count,
            item_key,
            item_dim,
            user_dim,
            extras: vec![],
        })
    }

    fn side(
        &mut self,
        seq: &str,
        side: &str,
        value: Spanned<toml::Value>,
        when: usize,
    ) -> Result<SideKind, ImportError> {
        let what = format!("[sequences.{seq}.side] {side}");
        let span = value.span();
        let shape_error = format!("{what} must be a float column name (\"dwell\"), {{ column = \"dwell\", transform = \"log1p\" }} or {{ when = \"RULE\" }}");
        let float = |b: &mut Self, column: &str, transform: Transform| -> Result<SideKind, ImportError> {
            if column.is_empty() {
                return b.error(span.clone(), format!("{what}: the column name must not be empty"));
            }
            let slot = b.column(column, b.origin(&what, &span));
            b.floats += 1;
            Ok(SideKind::Column { slot, float: b.floats - 1, transform })
        };
        match value.into_inner() {
            toml::Value::String(column) => float(self, &column, Transform::None),
            toml::Value::Table(t) => {
                let keys: Vec<&str> = t.keys().map(String::as_str).collect();
                match keys[..] {
                    ["when"] => match &t["when"] {
                        toml::Value::String(rule) => {
                            let rule =
                                self.rule(what.clone(), &Spanned::new(span.clone(), rule.clone()), Some(when))?;
                            Ok(SideKind::Flag { rule })
                        }
                        _ => self.error(span, shape_error),
                    },
                    ["column"] | ["column", "transform"] => {
                        let column = t["column"].as_str().map(str::to_string);
                        let transform = match t.get("transform").map(|v| v.as_str()) {
                            None | Some(Some("none")) => Transform::None,
                            Some(Some("log1p")) => Transform::Log1p,
                            _ => return self.error(span, format!("{what}: transform must be \"none\" or \"log1p\"")),
                        };
                        match column {
                            Some(c) => float(self, &c, transform),
                            None => self.error(span, shape_error),
                        }
                    }
                    _ => self.error(span, shape_error),
                }
            }
            _ => self.error(span, shape_error),
        }
    }

    fn table(
        &mut self,
        which: &str,
        file: &Spanned<String>,
        key: &Spanned<String>,
        format: &Option<Spanned<String>>,
        delimiter: &Option<Spanned<String>>,
    ) -> Result<Table, ImportError> {
        let layout = self.layout(format, delimiter)?;
        let name = self.nonempty(key, "key")?;
        let key = Wanted { name, origin: self.origin(&format!("[{which}] key"), &key.span()) };
        Ok(Table { file: self.table_file(file)?, layout, key, columns: vec![] })
    }

    /// A `[fields]` or `[profile]` table; `defaults` are its key and its two dim names.
    fn categorical(
        &mut self,
        c: CategoricalSection,
        section: &str,
        defaults: [&str; 3],
    ) -> Result<Categorical, ImportError> {
        let list_span = c.columns.span();
        let key = self.key_name(&c.key, defaults[0], list_span.clone())?;
        let size_dim = self.dim_name(&c.size, defaults[1], list_span.clone())?;
        let vocab_dim = self.dim_name(&c.vocab, defaults[2], list_span.clone())?;
        let mut columns: Vec<CategoricalColumn> = vec![];
        for col in c.columns.into_inner() {
            let name = self.nonempty(&col, "a column name")?;
            if columns.iter().any(|c| c.name == name) {
                return self.error(col.span(), format!("[{section}] lists column `{name}` twice"));
            }
            let origin = self.origin(&format!("[{section}] columns"), &col.span());
            let source = if let Some(rest) = name.strip_prefix("user.") {
                let Some(t) = self.users.as_mut() else {
                    return self.error(
                        col.span(),
                        format!("`{name}` names a column of the user table, but there is no [users] table"),
                    );
                };
                ValueSource::User(table_column(t, rest, origin))
            } else if let Some(rest) = name.strip_prefix("item.") {
                let Some(t) = self.items.as_mut() else {
                    return self.error(
                        col.span(),
                        format!("`{name}` names a column of the item table, but there is no [items] table"),
                    );
                };
                ValueSource::Item(table_column(t, rest, origin))
            } else {
                let slot = self.column(&name, origin);
                self.values.push(slot);
                ValueSource::Event(self.values.len() - 1)
            };
            columns.push(CategoricalColumn { name, source });
        }
        if columns.is_empty() && section == "fields" {
            return self.error(list_span, "[fields] columns must name at least one column".into());
        }
        Ok(Categorical { key, size_dim, vocab_dim, columns })
    }

    fn split(&self, s: &SplitSection) -> Result<Split, ImportError> {
        match s.method.get_ref().as_str() {
            "time" => {
                let (Some(valid), Some(test)) = (&s.valid, &s.test) else {
                    return self
                        .error(s.method.span(), "[split] method \"time\" needs `valid` and `test` fractions".into());
                };
                for f in [valid, test] {
                    if !(*f.get_ref() > 0.0 && *f.get_ref() < 1.0) {
                        return self.error(f.span(), "a split fraction must be in (0, 1)".into());
                    }
                }
                if valid.get_ref() + test.get_ref() >= 1.0 {
                    return self.error(test.span(), "valid + test must be below 1, leaving events for training".into());
                }
                Ok(Split::Time { valid: *valid.get_ref(), test: *test.get_ref() })
            }
            "leave_last_out" => {
                if let Some(f) = s.valid.as_ref().or(s.test.as_ref()) {
                    return self.error(f.span(), "[split] method \"leave_last_out\" takes no fractions".into());
                }
                Ok(Split::LeaveLastOut)
            }
            other => self.error(
                s.method.span(),
                format!("[split] method must be \"time\" or \"leave_last_out\", found \"{other}\""),
            ),
        }
    }

    /// An output key: the mapping's `value`, or `default` (reported at `fallback` if taken).
    fn key_name(
        &mut self,
        value: &Option<Spanned<String>>,
        default: &str,
        fallback: Span,
    ) -> Result<String, ImportError> {
        let (name, span) =
            self.chosen_name(value, default, fallback, |v| format!("key `{v}`: names are letters, digits and `_`"))?;
        self.claim_key(&name, &span)?;
        Ok(name)
    }

    /// A dim name: the mapping's `value`, or `default` (reported at `fallback` if taken).
    fn dim_name(
        &mut self,
        value: &Option<Spanned<String>>,
        default: &str,
        fallback: Span,
    ) -> Result<String, ImportError> {
        let (name, span) =
            self.chosen_name(value, default, fallback, |_| "dim names are letters, digits and `_`".into())?;
        self.claim_dim(&name, &span)?;
        Ok(name)
    }

    /// The mapping's `value` (which must be a name; `not_a_name` says why not) and its span, or
    /// `default` at `fallback`.
    fn chosen_name(
        &mut self,
        value: &Option<Spanned<String>>,
        default: &str,
        fallback: Span,
        not_a_name: impl FnOnce(&str) -> String,
    ) -> Result<(String, Span), ImportError> {
        match value {
            Some(v) if !is_name(v.get_ref()) => self.error(v.span(), not_a_name(v.get_ref())),
            Some(v) => Ok((v.get_ref().clone(), v.span())),
            None => Ok((default.to_string(), fallback)),
        }
    }

    /// Reserves an output key of every row.
    fn claim_key(&mut self, key: &str, span: &Span) -> Result<(), ImportError> {
        if RESERVED_KEYS.contains(&key) {
            return self.error(
                span.clone(),
                format!("`{key}` is a key the data format reserves ({})", RESERVED_KEYS.join(", ")),
            );
        }
        if self.keys.iter().any(|k| k == key) {
            return self.error(span.clone(), format!("key `{key}` would be written twice; name one of them otherwise"));
        }
        self.keys.push(key.to_string());
        Ok(())
    }

    /// Reserves a dim name of data.toml.
    fn claim_dim(&mut self, dim: &str, span: &Span) -> Result<(), ImportError> {
        if self.dims.iter().any(|d| d == dim) {
            return self.error(span.clone(), format!("dim `{dim}` would be written twice; name one of them otherwise"));
        }
        self.dims.push(dim.to_string());
        Ok(())
    }
}

/// The position of `name` among a table's joined columns, added on first use.
pub(super) fn table_column(t: &mut Table, name: &str, origin: String) -> usize {
    wanted_slot(&mut t.columns, name, origin)
}

/// The position of column `name` among `columns`, added (with `origin`) on first use.
pub(super) fn wanted_slot(columns: &mut Vec<Wanted>, name: &str, origin: String) -> usize {
    match columns.iter().position(|c| c.name == name) {
        Some(i) => i,
        None => {
            columns.push(Wanted { name: name.to_string(), origin });
            columns.len() - 1
        }
    }
}
