//! The multi-feedback data simulator: a synthetic world of users, items and feedback, written as
//! time-split JSON Lines files in the format of [`crate::data`].
//!
//! The world is built so that the feedback sequences carry signal beyond the static fields: a
//! user's liked and disliked clusters are visible only through their history (the user-id field is
//! a bucket shared by many users), while demographics, popularity and hour carry weaker signal.

use crate::files::{FileError, Staged};
use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};

#[cfg(test)]
mod tests;
mod world;

pub use world::Rng;
use world::{Event, World};

/// Simulation parameters; [`Default`] is the standard data set.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub users: usize,
    pub items: usize,
    pub clusters: usize,
    pub creators: usize,
    pub impressions_per_user: usize,
    /// T: the longest history written per feedback type.
    pub seq_len: usize,
    /// F: categorical fields per row (8 base fields, then hashed crosses).
    pub fields: usize,
    pub seed: u64,
    /// Probability that an impression the user would not click is clicked by accident.
    pub accidental_click_rate: f64,
    /// Probability that a high-affinity (a > 1) impression drawn as clicked is not clicked.
    pub liked_unclick_rate: f64,
    /// Multiplies every user's dislike propensity.
    pub dislike_rate_scale: f64,
    /// Standard deviation of the per-impression random walk of cluster preferences.
    pub drift: f64,
    /// Days the impressions are spread over.
    pub days: usize,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            users: 2000,
            items: 1000,
            clusters: 20,
            creators: 100,
            impressions_per_user: 60,
            seq_len: 30,
            fields: 8,
            seed: 7,
            accidental_click_rate: 0.03,
            liked_unclick_rate: 0.05,
            dislike_rate_scale: 1.0,
            drift: 0.02,
            days: 30,
        }
    }
}

impl SimConfig {
    /// The integer settings by name, as validated and as written to `data.toml`.
    fn counts(&self) -> [(&'static str, usize); 8] {
        [
            ("users", self.users),
            ("items", self.items),
            ("clusters", self.clusters),
            ("creators", self.creators),
            ("impressions_per_user", self.impressions_per_user),
            ("seq_len", self.seq_len),
            ("fields", self.fields),
            ("days", self.days),
        ]
    }

    fn validate(&self) -> Result<(), SimulateError> {
        for (name, v) in self.counts() {
            if v == 0 {
                return Err(SimulateError::Settings(format!("simulation: `{name}` must be at least 1")));
            }
        }
        let limits = [("users", self.users, 1 << 31), ("items", self.items, 1 << 31), ("fields", self.fields, 4096)];
        for (name, v, max) in limits {
            if v > max {
                return Err(SimulateError::Settings(format!("simulation: `{name}` = {v} is larger than {max}")));
            }
        }
        if self.seq_len > 10_000 || self.days > 100_000 {
            return Err(SimulateError::Settings(
                "simulation: `seq_len` must be at most 10000 and `days` at most 100000".into(),
            ));
        }
        for (name, v) in
            [("accidental_click_rate", self.accidental_click_rate), ("liked_unclick_rate", self.liked_unclick_rate)]
        {
            if !(0.0..=1.0).contains(&v) {
                return Err(SimulateError::Settings(format!("simulation: `{name}` must be in [0, 1], found {v}")));
            }
        }
        for (name, v) in [("dislike_rate_scale", self.dislike_rate_scale), ("drift", self.drift)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(SimulateError::Settings(format!(
                    "simulation: `{name}` must be a finite number >= 0, found {v}"
                )));
            }
        }
        Ok(())
    }
}

/// Row count and label rates of one split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SplitSummary {
    pub name: &'static str,
    pub rows: usize,
    /// Rates of the labels in [`LABELS`] order.
    pub rates: [f64; 10],
    counts: [usize; 10],
}

/// The label streams every row carries, in order. `positive` is "any positive interaction"
/// (click, like, follow, push or comment), DLEN's check for its latent "user prefers" target;
/// `engaged` is a click that was not skipped (a long view), the retrieval positive.
pub(crate) const LABELS: [&str; 10] =
    ["click", "unclick", "like", "dislike", "skip", "follow", "push", "comment", "positive", "engaged"];

fn label_values(e: &Event) -> [bool; 10] {
    let positive = e.click || e.like || e.follow || e.push || e.comment;
    [e.click, !e.click, e.like, e.dislike, e.skip, e.follow, e.push, e.comment, positive, e.click && !e.skip]
}

/// What a simulation wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SimSummary {
    pub out: PathBuf,
    pub splits: [SplitSummary; 3],
    /// The `[hparams]` written to data.toml: V, U, F, FV, T, P, PV.
    pub hparams: Vec<(&'static str, usize)>,
}

impl SimSummary {
    pub fn split(&self, name: &str) -> Option<&SplitSummary> {
        self.splits.iter().find(|s| s.name == name)
    }
}

impl fmt::Display for SimSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "wrote {}/{{train,valid,test,items}}.jsonl and data.toml", self.out.display())?;
        write!(f, "{:<6} {:>9}", "split", "rows")?;
        for l in LABELS {
            write!(f, " {l:>8}")?;
        }
        writeln!(f)?;
        for s in &self.splits {
            write!(f, "{:<6} {:>9}", s.name, s.rows)?;
            for r in s.rates {
                write!(f, " {r:>8.4}")?;
            }
            writeln!(f)?;
        }
        let hp: Vec<String> = self.hparams.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "hparams: {}", hp.join(" "))
    }
}

/// The user's feedback before the current impression, the last `T` of each kind.
#[derive(Default)]
struct History {
    clicks: VecDeque<(u32, f32, bool)>,
    unclicks: VecDeque<u32>,
    dislikes: VecDeque<u32>,
    likes: VecDeque<u32>,
    skips: VecDeque<u32>,
    /// Every clicked or disliked item in order: (item, dwell seconds, disliked).
    interactions: VecDeque<(u32, f32, bool)>,
}

fn push_capped<T>(q: &mut VecDeque<T>, v: T, cap: usize) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

impl History {
    fn record(&mut self, e: &Event, cap: usize) {
        if e.click {
            push_capped(&mut self.clicks, (e.item, e.dwell, e.skip), cap);
        } else {
            push_capped(&mut self.unclicks, e.item, cap);
        }
        if e.dislike {
            push_capped(&mut self.dislikes, e.item, cap);
        }
        if e.like {
            push_capped(&mut self.likes, e.item, cap);
        }
        if e.skip {
            push_capped(&mut self.skips, e.item, cap);
        }
        if e.click || e.dislike {
            push_capped(&mut self.interactions, (e.item, e.dwell, e.dislike), cap);
        }
    }
}

/// Appends a float rounded to `1e-3`, in the shortest form that reads back to it.
fn push_float(s: &mut String, x: f64) {
    use fmt::Write as _;
    let r = (x * 1000.0).round() / 1000.0;
    let _ = write!(s, "{}", if r == 0.0 { 0.0 } else { r });
}

fn push_ids<'a>(s: &mut String, key: &str, ids: impl Iterator<Item = &'a u32>) {
    use fmt::Write as _;
    let _ = write!(s, ",\"{key}\":[");
    for (i, id) in ids.enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{id}");
    }
    s.push(']');
}

/// A sequence of (item, dwell, flag) steps as `key`, `key.dwell` (log1p seconds) and `key.flag`.
fn push_steps(s: &mut String, key: &str, flag: &str, steps: &VecDeque<(u32, f32, bool)>) {
    use fmt::Write as _;
    push_ids(s, key, steps.iter().map(|c| &c.0));
    let _ = write!(s, ",\"{key}.dwell\":[");
    for (i, c) in steps.iter().enumerate() {
        s.push_str(if i > 0 { "," } else { "" });
        push_float(s, (c.1 as f64).ln_1p());
    }
    let _ = write!(s, "],\"{key}.{flag}\":[");
    for (i, c) in steps.iter().enumerate() {
        s.push_str(if i > 0 { "," } else { "" });
        s.push(if c.2 { '1' } else { '0' });
    }
    s.push(']');
}

/// One impression as a JSON line (newline included), with the history before it.
fn write_row(s: &mut String, world: &World, e: &Event, h: &History) {
    use fmt::Write as _;
    s.clear();
    let _ = write!(s, "{{\"user\":{},\"time\":{},\"item\":{},\"fields\":[", e.user, e.time, e.item);
    for (i, id) in world.fields(e).iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{id}");
    }
    s.push_str("],\"profile\":[");
    for (i, id) in world.profile(e.user).iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{id}");
    }
    s.push(']');
    push_steps(s, "clicks", "skipped", &h.clicks);
    push_ids(s, "unclicks", h.unclicks.iter());
    push_ids(s, "dislikes", h.dislikes.iter());
    push_ids(s, "likes", h.likes.iter());
    push_ids(s, "skips", h.skips.iter());
    push_steps(s, "history", "disliked", &h.interactions);
    s.push_str(",\"labels\":{");
    for (i, (name, v)) in LABELS.iter().zip(label_values(e)).enumerate() {
        let _ = write!(s, "{}\"{name}\":{}", if i > 0 { "," } else { "" }, u8::from(v));
    }
    s.push_str("},\"dwell\":");
    push_float(s, e.dwell as f64);
    s.push_str("}\n");
}

/// Why a data set could not be simulated.
#[derive(Debug)]
pub enum SimulateError {
    /// A simulation setting is out of range.
    Settings(String),
    File(FileError),
}

impl fmt::Display for SimulateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimulateError::Settings(m) => f.write_str(m),
            SimulateError::File(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SimulateError {}

impl From<FileError> for SimulateError {
    fn from(e: FileError) -> SimulateError {
        SimulateError::File(e)
    }
}

fn data_toml(cfg: &SimConfig, summary: &SimSummary) -> String {
    let mut s =
        String::from("# written by recspec simulate; `recspec train` applies [hparams] automatically\n[hparams]\n");
    let notes = [
        ("V", "item vocabulary"),
        ("U", "users"),
        ("F", "categorical fields"),
        ("FV", "field vocabulary size"),
        ("T", "max sequence length"),
        ("P", "user-profile fields"),
        ("PV", "user-profile vocabulary size"),
    ];
    for ((k, v), (_, note)) in summary.hparams.iter().zip(notes) {
        s.push_str(&format!(
            "{k} = {v}{}# {note}\n",
            " ".repeat(12usize.saturating_sub(k.len() + v.to_string().len()))
        ));
    }
    s.push_str("\n[simulation]\n");
    s.push_str(&format!("seed = {}\n", cfg.seed));
    for (k, v) in cfg.counts() {
        s.push_str(&format!("{k} = {v}\n"));
    }
    for (k, v) in [
        ("accidental_click_rate", cfg.accidental_click_rate),
        ("liked_unclick_rate", cfg.liked_unclick_rate),
        ("dislike_rate_scale", cfg.dislike_rate_scale),
        ("drift", cfg.drift),
    ] {
        s.push_str(&format!("{k} = {v:?}\n"));
    }
    for sp in &summary.splits {
        s.push_str(&format!("{}_rows = {}\n", sp.name, sp.rows));
        for (l, r) in LABELS.iter().zip(sp.rates) {
            s.push_str(&format!("{}_{l}_rate = {r:.6}\n", sp.name));
        }
    }
    s
}

/// Creates `names` in `out` as temporaries, lets `fill` write them, then renames them all into
/// place; on any error no temporary is left and no final file is replaced.
fn write_files<T>(
    out: &Path,
    names: &[&str],
    fill: impl FnOnce(&mut [Staged]) -> Result<T, SimulateError>,
) -> Result<T, SimulateError> {
    std::fs::create_dir_all(out).map_err(FileError::at("create", out))?;
    let result = (|| {
        let mut files = names.iter().map(|n| Staged::create(out, n)).collect::<Result<Vec<_>, _>>()?;
        let t = fill(&mut files)?;
        let staged = files.into_iter().map(Staged::finish).collect::<Result<Vec<_>, _>>()?;
        for (tmp, dest) in &staged {
            std::fs::rename(tmp, dest).map_err(FileError::renaming(tmp, dest))?;
        }
        Ok(t)
    })();
    if result.is_err() {
        for name in names {
            let _ = std::fs::remove_file(out.join(format!("{name}.tmp")));
        }
    }
    result
}

/// The time cuts of the simulated log: the first 80% of events are train, the next 10% valid,
/// the rest test, events sharing a cut's time going to the later split (as `recspec import`'s
/// `split time(valid: 0.1, test: 0.1)` cuts).
fn split_of(events: &[Event]) -> impl Fn(&Event) -> usize {
    let n = events.len();
    let q80 = events[n * 8 / 10].time;
    let q90 = events[(n * 9 / 10).min(n - 1)].time;
    move |e: &Event| {
        if e.time < q80 {
            0
        } else if e.time < q90 {
            1
        } else {
            2
        }
    }
}

/// Simulates the world of `cfg` and writes `train/valid/test/items.jsonl` and `data.toml` to
/// `out` (created if missing). Same config, same bytes.
pub fn simulate(cfg: &SimConfig, out: &Path) -> Result<SimSummary, SimulateError> {
    cfg.validate()?;
    let world = World::new(cfg);
    let events = world.events();
    let split = split_of(&events);
    let names = ["train.jsonl", "valid.jsonl", "test.jsonl", "items.jsonl", "data.toml"];
    write_files(out, &names, |files| {
        let mut splits = ["train", "valid", "test"].map(|name| SplitSummary { name, ..SplitSummary::default() });
        let mut histories: Vec<History> = (0..cfg.users).map(|_| History::default()).collect();
        let mut line = String::with_capacity(4096);
        for e in &events {
            let k = split(e);
            let h = &mut histories[e.user as usize];
            write_row(&mut line, &world, e, h);
            files[k].write(&line)?;
            h.record(e, cfg.seq_len);
            let sp = &mut splits[k];
            sp.rows += 1;
            for (c, v) in sp.counts.iter_mut().zip(label_values(e)) {
                *c += usize::from(v);
            }
        }
        for sp in &mut splits {
            sp.rates = sp.counts.map(|c| if sp.rows == 0 { 0.0 } else { c as f64 / sp.rows as f64 });
        }
        files[3].write(&world.items_jsonl())?;
        let summary = SimSummary { out: out.to_path_buf(), splits, hparams: world.hparams() };
        files[4].write(&data_toml(cfg, &summary))?;
        Ok(summary)
    })
}

/// What [`simulate_raw`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSummary {
    pub out: PathBuf,
    pub events: usize,
    pub users: usize,
    pub items: usize,
}

impl fmt::Display for RawSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let out = self.out.display();
        writeln!(
            f,
            "wrote {out}/{{events,users,items}}.csv ({} events, {} users, {} items) and {out}/features.recspec",
            self.events, self.users, self.items
        )?;
        write!(f, "import it with: recspec import --features {out}/features.recspec --out DATA")
    }
}

/// The raw log's event columns before the crosses, in order.
const EVENT_COLUMNS: [&str; 13] = [
    "user_id", "item_id", "ts", "hour", "device", "click", "like", "dislike", "skip", "follow", "push", "comment",
    "dwell",
];

/// The column each of the F fields is read from: the user and item tables' columns, the event's
/// hour and device, then `cross_F` event columns holding the simulator's hashed crosses.
fn field_columns(fields: usize) -> Vec<String> {
    let base =
        ["user.bucket", "user.age", "user.gender", "item.cluster", "item.creator", "item.popularity", "hour", "device"];
    (0..fields).map(|f| base.get(f).map_or_else(|| format!("cross_{f}"), |c| c.to_string())).collect()
}

/// Simulates the world of `cfg` as a raw log, the form a product's event log has: every
/// impression with its feedback as one line of `events.csv`, and the user and item tables
/// beside it, with `features.recspec`, the feature set that turns them into the rows
/// [`simulate`] writes (ids numbered by the import instead of by the simulator). Same config,
/// same bytes.
pub fn simulate_raw(cfg: &SimConfig, out: &Path) -> Result<RawSummary, SimulateError> {
    use fmt::Write as _;
    cfg.validate()?;
    let world = World::new(cfg);
    let events = world.events();
    let names = ["events.csv", "users.csv", "items.csv", "features.recspec"];
    write_files(out, &names, |files| {
        let mut line = EVENT_COLUMNS.join(",");
        for f in 8..cfg.fields {
            let _ = write!(line, ",cross_{f}");
        }
        line.push('\n');
        files[0].write(&line)?;
        for e in &events {
            line.clear();
            let _ = write!(line, "{},{},{},{},{}", e.user, e.item, e.time, e.time / 3600 % 24, e.device);
            for v in [e.click, e.like, e.dislike, e.skip, e.follow, e.push, e.comment] {
                line.push_str(if v { ",1" } else { ",0" });
            }
            line.push(',');
            push_float(&mut line, e.dwell as f64);
            for v in world.field_values(e).iter().skip(8) {
                let _ = write!(line, ",{v}");
            }
            line.push('\n');
            files[0].write(&line)?;
        }
        files[1].write(&world.users_csv())?;
        files[2].write(&world.items_csv())?;
        files[3].write(&features_recspec(cfg))?;
        Ok(RawSummary { out: out.to_path_buf(), events: events.len(), users: cfg.users, items: cfg.items })
    })
}

/// The feature set of the raw log: the rows of [`simulate`], one statement per row value.
fn features_recspec(cfg: &SimConfig) -> String {
    let fields: Vec<String> = field_columns(cfg.fields).iter().map(|c| format!("      \"{c}\",")).collect();
    format!(
        r#"// Written by `recspec simulate --raw`: the simulated raw log as the multi-feedback data set
// `recspec simulate` writes directly, with ids numbered by the import (by training count)
// instead of by the simulator. Every seed spec reads it unchanged (the tests check each one).
//
//   recspec import --features features.recspec --out DATA
features simulated {{
  source events("events.csv", user: "user_id", item: "item_id", time: "ts");
  source users("users.csv", key: "user_id");
  source items("items.csv", key: "item_id", cluster: "cluster", creator: "creator");
  // The last 10% of impressions are test, the 10% before them valid.
  split time(valid: 0.1, test: 0.1);

  // Every feedback sequence keeps the last T entries; F fields below; the profile is the
  // user's id, then age, gender and region.
  dim T = {t};
  dim F = {f};
  dim P = 4;

  label click = "click == 1";
  label unclick = "click == 0";
  label like = "like == 1";
  label dislike = "dislike == 1";
  label skip = "skip == 1";
  label follow = "follow == 1";
  label push = "push == 1";
  label comment = "comment == 1";
  // Any positive interaction: DLEN's check for its latent "user prefers" target.
  label positive = "click == 1 or like == 1 or follow == 1 or push == 1 or comment == 1";
  // A click that was not skipped (a long view): the retrieval positive.
  label engaged = "click == 1 and skip == 0";

  feature item = item();
  feature fields = fields(
    [
{fields}
    ],
  );
  feature profile = profile(["user.age", "user.gender", "user.region"]);

  seq clicks = history("click == 1", length: T);
  side clicks.dwell = log1p("dwell");
  side clicks.skipped = flag("skip == 1");
  seq unclicks = history("click == 0", length: T);
  seq dislikes = history("dislike == 1", length: T);
  seq likes = history("like == 1", length: T);
  seq skips = history("skip == 1", length: T);
  // Clicked or disliked items, oldest first.
  seq history = history("click == 1 or dislike == 1", length: T);
  side history.dwell = log1p("dwell");
  side history.disliked = flag("dislike == 1");
}}
"#,
        t = cfg.seq_len,
        f = cfg.fields,
        fields = fields.join("\n"),
    )
}
