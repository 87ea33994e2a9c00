//! What an import wrote, as a typed summary, its text for the terminal, and `data.toml`.

use super::split::SPLITS;
use crate::data::DataError;
use std::fmt;
use std::path::PathBuf;

/// What `import` wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportSummary {
    pub out: PathBuf,
    pub mapping: PathBuf,
    pub events_file: PathBuf,
    /// Events imported (one row each).
    pub events: usize,
    pub bad_rows: usize,
    /// The first bad rows, when skipped.
    pub first_bad_rows: Vec<DataError>,
    /// Sorted chunks spilled by the external sort.
    pub chunks: usize,
    /// `time` or `leave_last_out`, with the fractions of a time split.
    pub split: String,
    pub labels: Vec<String>,
    pub splits: [SplitSummary; 3],
    pub vocabularies: Vec<VocabSummary>,
    /// With `[output] item_buckets`: how the training items spread over the buckets.
    pub item_collisions: Option<BucketCollisions>,
    pub sequences: Vec<SequenceSummary>,
    /// The dims written to data.toml, with their comments.
    pub hparams: Vec<Hparam>,
    /// Names of files written besides the three splits and data.toml (`items.jsonl`).
    pub extra_files: Vec<String>,
    /// What fitting learnt for a feature set's own features, one line each.
    pub fitted: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SplitSummary {
    pub name: &'static str,
    pub rows: usize,
    /// Share of rows with each label, in `labels` order.
    pub rates: Vec<f64>,
}

/// One vocabulary: `size` ids (the out-of-vocabulary id included) for `distinct` keys seen in
/// any split (`None` where not counted).
#[derive(Clone, Debug, PartialEq)]
pub struct VocabSummary {
    pub name: String,
    pub size: usize,
    pub distinct: Option<usize>,
}

/// Hashed item keys: `items` distinct training items in `buckets` buckets, `shared` of them in a
/// bucket that holds another training item (their rows share one embedding row).
#[derive(Clone, Debug, PartialEq)]
pub struct BucketCollisions {
    pub buckets: u64,
    pub items: usize,
    pub shared: usize,
}

impl BucketCollisions {
    /// The share of items expected in a shared bucket when `items` keys hash uniformly:
    /// 1 - (1 - 1/buckets)^(items - 1).
    pub(crate) fn expected_shared(&self) -> f64 {
        1.0 - (1.0 - 1.0 / self.buckets as f64).powf(self.items.saturating_sub(1) as f64)
    }
}

/// The length distribution of one sequence over all rows.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceSummary {
    pub name: String,
    pub length: usize,
    pub mean: f64,
    pub p50: usize,
    pub p90: usize,
    pub max: usize,
}

impl SequenceSummary {
    /// From a histogram of rows by length.
    pub fn new(name: &str, histogram: &[u64]) -> SequenceSummary {
        let rows: u64 = histogram.iter().sum();
        let total: u64 = histogram.iter().enumerate().map(|(len, n)| len as u64 * n).sum();
        let quantile = |q: f64| {
            let want = ((rows as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            histogram.iter().position(|n| {
                seen += n;
                seen >= want
            })
        };
        SequenceSummary {
            name: name.to_string(),
            length: histogram.len().saturating_sub(1),
            mean: if rows == 0 { 0.0 } else { total as f64 / rows as f64 },
            p50: quantile(0.5).unwrap_or(0),
            p90: quantile(0.9).unwrap_or(0),
            max: histogram.iter().rposition(|n| *n > 0).unwrap_or(0),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hparam {
    pub name: String,
    pub value: usize,
    pub note: String,
}

impl ImportSummary {
    pub fn split(&self, name: &str) -> Option<&SplitSummary> {
        self.splits.iter().find(|s| s.name == name)
    }

    pub fn hparam(&self, name: &str) -> Option<usize> {
        self.hparams.iter().find(|h| h.name == name).map(|h| h.value)
    }

    /// The text of `data.toml`: the dims, then an `[import]` table of what was done.
    pub(crate) fn data_toml(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut s =
            String::from("# written by recspec import; `recspec train` applies [hparams] automatically\n[hparams]\n");
        for h in &self.hparams {
            let pad = 12usize.saturating_sub(h.name.len() + h.value.to_string().len());
            s.push_str(&format!("{} = {}{}# {}\n", h.name, h.value, " ".repeat(pad), h.note));
        }
        s.push_str("\n[import]\n");
        s.push_str(&format!("mapping = {}\n", quote(&self.mapping.display().to_string())));
        s.push_str(&format!("events = {}\n", quote(&self.events_file.display().to_string())));
        s.push_str(&format!("split = {}\n", quote(&self.split)));
        s.push_str(&format!("events_imported = {}\nbad_rows = {}\n", self.events, self.bad_rows));
        for v in &self.vocabularies {
            let key: String = v.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            s.push_str(&format!("{key}_vocabulary = {}\n", v.size));
        }
        if let Some(c) = &self.item_collisions {
            s.push_str(&format!(
                "item_buckets = {}\ntraining_items = {}\ntraining_items_sharing_a_bucket = {}\n",
                c.buckets, c.items, c.shared
            ));
        }
        for sp in &self.splits {
            s.push_str(&format!("{}_rows = {}\n", sp.name, sp.rows));
            for (l, r) in self.labels.iter().zip(&sp.rates) {
                s.push_str(&format!("{}_{l}_rate = {r:.6}\n", sp.name));
            }
        }
        s
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut files = vec!["{train,valid,test}.jsonl".to_string()];
        files.extend(self.extra_files.iter().cloned());
        files.push("vocab/".into());
        writeln!(f, "wrote {}/{} and data.toml", self.out.display(), files.join(", "))?;
        let chunks =
            if self.chunks == 1 { "1 sorted chunk".to_string() } else { format!("{} sorted chunks", self.chunks) };
        writeln!(
            f,
            "events: {} imported, {} bad rows skipped ({chunks}); split: {}",
            self.events, self.bad_rows, self.split
        )?;
        let width = self.labels.iter().map(|l| l.len()).max().unwrap_or(0).max(6);
        write!(f, "{:<6} {:>9}", "split", "rows")?;
        for l in &self.labels {
            write!(f, " {l:>width$}")?;
        }
        writeln!(f)?;
        for s in &self.splits {
            write!(f, "{:<6} {:>9}", s.name, s.rows)?;
            for r in &s.rates {
                write!(f, " {r:>width$.4}")?;
            }
            writeln!(f)?;
        }
        writeln!(f, "vocabularies (ids incl. the out-of-vocabulary id / distinct keys in all splits):")?;
        let name_width = self.vocabularies.iter().map(|v| v.name.len()).max().unwrap_or(0);
        for v in &self.vocabularies {
            let distinct = v.distinct.map(|d| format!(" / {d}")).unwrap_or_default();
            writeln!(f, "  {:<name_width$} {}{distinct}", v.name, v.size)?;
        }
        if !self.fitted.is_empty() {
            writeln!(f, "fitted on the training split (features.json):")?;
            for line in &self.fitted {
                writeln!(f, "  {line}")?;
            }
        }
        if let Some(c) = &self.item_collisions {
            writeln!(
                f,
                "item keys hashed into {} buckets: {} of {} training items share a bucket with another ({:.2}%; {:.2}% expected from uniform hashing)",
                c.buckets,
                c.shared,
                c.items,
                100.0 * c.shared as f64 / c.items.max(1) as f64,
                100.0 * c.expected_shared()
            )?;
        }
        if !self.sequences.is_empty() {
            writeln!(f, "sequence lengths per row (mean / p50 / p90 / max, of at most T):")?;
            let name_width = self.sequences.iter().map(|s| s.name.len()).max().unwrap_or(0);
            for s in &self.sequences {
                writeln!(
                    f,
                    "  {:<name_width$} {:.2} / {} / {} / {} of {}",
                    s.name, s.mean, s.p50, s.p90, s.max, s.length
                )?;
            }
        }
        if !self.first_bad_rows.is_empty() {
            writeln!(f, "bad rows ({}; the first {}):", self.bad_rows, self.first_bad_rows.len())?;
            for e in &self.first_bad_rows {
                writeln!(f, "  {e}")?;
            }
        }
        let hp: Vec<String> = self.hparams.iter().map(|h| format!("{}={}", h.name, h.value)).collect();
        write!(f, "hparams: {}", hp.join(" "))
    }
}

/// The split summaries from row and label counts.
pub fn splits(counts: &[super::build::SplitCounts; 3]) -> [SplitSummary; 3] {
    std::array::from_fn(|i| {
        let c = &counts[i];
        let rate = |n: usize| if c.rows == 0 { 0.0 } else { n as f64 / c.rows as f64 };
        SplitSummary { name: SPLITS[i], rows: c.rows, rates: c.labels.iter().map(|n| rate(*n)).collect() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_quantiles_come_from_the_histogram() {
        // lengths: 0 x2, 1 x1, 3 x7 (10 rows)
        let s = SequenceSummary::new("clicks", &[2, 1, 0, 7, 0]);
        assert_eq!((s.length, s.p50, s.p90, s.max), (4, 3, 3, 3));
        assert!((s.mean - 2.2).abs() < 1e-12);
        let s = SequenceSummary::new("none", &[0, 0, 0]);
        assert_eq!((s.mean, s.p50, s.p90, s.max), (0.0, 0, 0, 0));
        let s = SequenceSummary::new("half", &[5, 5]);
        assert_eq!((s.p50, s.p90), (0, 1));
    }
}
