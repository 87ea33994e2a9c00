//! The shape of a mapping file, as serde reads it: every table and key with its span, unknown
//! keys rejected. [`super::validate`] turns it into a [`super::Mapping`].

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MappingFile {
    pub events: EventsSection,
    pub labels: Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
    #[serde(default)]
    pub sequences: BTreeMap<Spanned<String>, SequenceSection>,
    pub fields: Option<CategoricalSection>,
    pub profile: Option<CategoricalSection>,
    pub users: Option<TableSection>,
    pub items: Option<ItemsSection>,
    pub split: SplitSection,
    pub output: Option<OutputSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsSection {
    pub user: Spanned<String>,
    pub item: Spanned<String>,
    pub time: Spanned<String>,
    pub format: Option<Spanned<String>>,
    pub delimiter: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SequenceSection {
    pub when: Spanned<String>,
    pub length: Spanned<i64>,
    pub dim: Option<Spanned<String>>,
    #[serde(default)]
    pub side: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CategoricalSection {
    pub columns: Spanned<Vec<Spanned<String>>>,
    pub key: Option<Spanned<String>>,
    pub size: Option<Spanned<String>>,
    pub vocab: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TableSection {
    pub file: Spanned<String>,
    pub key: Spanned<String>,
    pub format: Option<Spanned<String>>,
    pub delimiter: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemsSection {
    pub file: Spanned<String>,
    pub key: Spanned<String>,
    pub format: Option<Spanned<String>>,
    pub delimiter: Option<Spanned<String>>,
    pub cluster: Option<Spanned<String>>,
    pub creator: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitSection {
    pub method: Spanned<String>,
    pub valid: Option<Spanned<f64>>,
    pub test: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputSection {
    pub item: Option<Spanned<String>>,
    pub item_vocab: Option<Spanned<String>>,
    pub user_vocab: Option<Spanned<String>>,
    pub item_buckets: Option<Spanned<i64>>,
    pub item_min_count: Option<Spanned<i64>>,
}
