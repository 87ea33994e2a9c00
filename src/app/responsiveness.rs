//! Responsiveness to negative feedback by counterfactual simulation (Wang et al., RecSys 2023,
//! section 4), and the rate at which disliked items or their creators come back.
//!
//! Each simulated user consumes `steps - 1` recommended items, one drawn uniformly from each
//! top-K list, with a long view. At step `steps` the same history branches: a positive
//! interaction with the drawn item, the same plus a dislike, and optionally a skip (a short
//! view). The next top-K list of each branch is compared with the last item: the share of
//! recommendations from its content cluster and from its creator. Responsiveness is the relative
//! change of that share between a branch and the positive one. Histories use the simulator's
//! row format: `NAME`, `NAME.dwell` (log1p seconds) and `NAME.disliked`. Histories start empty
//! (the paper), or from held-out users' histories (`start_histories`), which keeps the lists
//! diverse when a model's own trajectories collapse into one cluster.

use super::dataset::split_file;
use super::{AppError, RECOMMEND_CHUNK, RERECOMMEND_ROWS};
use crate::data::{for_each_json_row, for_each_row};
use crate::runtime::serve::Recommender;
use crate::simulate::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::Path;

#[derive(Clone, Debug)]
pub struct Settings {
    pub users: usize,
    /// k: the branching step (the paper: 50).
    pub steps: usize,
    /// K: the length of each recommendation list.
    pub top: usize,
    pub seed: u64,
    /// Also branch into a skip (short view) instead of the positive interaction.
    pub skip_branch: bool,
    /// The history sequence input (with `.dwell` and `.disliked` side features).
    pub history: String,
    /// Longest history kept (the model's T).
    pub max_len: usize,
    pub exclude_consumed: bool,
    /// Seconds of a long view (every consumed step, and the positive and dislike branches) and
    /// of a skip: the data set's own scale ([`dwell_scale`]) unless the caller chose them.
    pub dwell: DwellScale,
}

/// The dwell the simulated steps carry, in seconds, and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DwellScale {
    pub long_view_s: f64,
    pub skip_view_s: f64,
    pub source: DwellSource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DwellSource {
    /// The median and the 10th percentile of the training histories' steps not disliked.
    TrainSplit,
    /// `--long-view` / `--skip-view` (either one; the other from the training split).
    Flags,
    /// The training histories hold no step: [`LONG_VIEW`] and [`SKIP_VIEW`].
    Fallback,
}

/// The dwell of the simulated steps: `long_view` and `skip_view` seconds where given (each must
/// be positive), the rest from the training split of `data` ([`dwell_scale`]).
pub fn choose_dwell(
    data: &Path,
    history: &str,
    seed: u64,
    long_view: Option<f64>,
    skip_view: Option<f64>,
) -> Result<DwellScale, AppError> {
    for (flag, v) in [("--long-view", long_view), ("--skip-view", skip_view)] {
        if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
            return Err(AppError::Responsiveness(format!("{flag} must be a positive number of seconds")));
        }
    }
    let mut scale = match (long_view, skip_view) {
        (Some(long_view_s), Some(skip_view_s)) => {
            return Ok(DwellScale { long_view_s, skip_view_s, source: DwellSource::Flags })
        }
        _ => dwell_scale(&split_file(data, "train")?, history, seed)?,
    };
    if let Some(v) = long_view {
        (scale.long_view_s, scale.source) = (v, DwellSource::Flags);
    }
    if let Some(v) = skip_view {
        (scale.skip_view_s, scale.source) = (v, DwellSource::Flags);
    }
    Ok(scale)
}

/// Steps of the training histories read for [`dwell_scale`] (a uniform sample beyond that).
const DWELL_SAMPLE: usize = 100_000;

/// The training split's dwell scale: over the steps of `history` not disliked (a uniform sample
/// of [`DWELL_SAMPLE`] of them), the median dwell for a long view and the 10th percentile for a
/// skip, in seconds (`NAME.dwell` holds log1p seconds). The fixed 30 s / 2 s it replaces lay
/// outside the range of data sets whose dwell is on another scale (MovieLens' log1p(rating) is
/// 0.7-1.8, log1p(30 s) is 3.4): a long view the model had never seen.
pub(crate) fn dwell_scale(train: &Path, history: &str, seed: u64) -> Result<DwellScale, AppError> {
    let (dwell_key, flag_key) = (format!("{history}.dwell"), format!("{history}.disliked"));
    let mut sample = Reservoir::new(DWELL_SAMPLE, Rng::derive(seed, 13, 0));
    for_each_row(train, |_, v| {
        let list = |k: &str| v.get(k).and_then(Value::as_array);
        let (Some(dwell), flags) = (list(&dwell_key), list(&flag_key)) else { return Ok(true) };
        for (j, d) in dwell.iter().enumerate() {
            let disliked = flags.and_then(|f| f.get(j)).and_then(Value::as_f64) == Some(1.0);
            match d.as_f64() {
                Some(d) if d.is_finite() && !disliked => sample.offer(d),
                _ => {}
            }
        }
        Ok(true)
    })?;
    let mut values = sample.items;
    if values.is_empty() {
        return Ok(DwellScale { long_view_s: LONG_VIEW, skip_view_s: SKIP_VIEW, source: DwellSource::Fallback });
    }
    values.sort_by(f64::total_cmp);
    let quantile = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize].exp_m1();
    Ok(DwellScale { long_view_s: quantile(0.5), skip_view_s: quantile(0.1), source: DwellSource::TrainSplit })
}

/// One step of a history: item, dwell seconds, disliked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub item: i64,
    pub dwell: f64,
    pub disliked: bool,
}

/// Seconds of a long view and of a skip where the training histories hold no step.
pub(crate) const LONG_VIEW: f64 = 30.0;
pub(crate) const SKIP_VIEW: f64 = 2.0;

/// The counterfactual continuations of one history at the branching step: identical up to the
/// last step, which differs only in the user's action on `last`.
pub fn branches(history: &[Step], last: i64, skip_branch: bool, dwell: &DwellScale) -> Vec<(&'static str, Vec<Step>)> {
    let long = dwell.long_view_s;
    let mut actions = vec![
        ("positive", Step { item: last, dwell: long, disliked: false }),
        ("positive+dislike", Step { item: last, dwell: long, disliked: true }),
    ];
    if skip_branch {
        actions.push(("skip", Step { item: last, dwell: dwell.skip_view_s, disliked: false }));
    }
    actions
        .into_iter()
        .map(|(name, step)| {
            let mut h = history.to_vec();
            h.push(step);
            (name, h)
        })
        .collect()
}

/// A history as a data row, keeping its last `max_len` steps.
pub fn history_row(name: &str, history: &[Step], max_len: usize) -> Value {
    let h = &history[history.len().saturating_sub(max_len)..];
    json!({
        name: h.iter().map(|s| s.item).collect::<Vec<_>>(),
        format!("{name}.dwell"): h.iter().map(|s| s.dwell.ln_1p()).collect::<Vec<_>>(),
        format!("{name}.disliked"): h.iter().map(|s| u8::from(s.disliked)).collect::<Vec<_>>(),
    })
}

/// An estimate with a 95% bootstrap interval.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Branch {
    pub name: String,
    /// Mean share of the next K recommendations from the last item's cluster / creator.
    pub same_cluster: f64,
    pub same_creator: f64,
    /// Relative change of those shares against the positive branch (absent for it).
    pub responsiveness_content: Option<Estimate>,
    pub responsiveness_creator: Option<Estimate>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rerecommend {
    /// Held-out rows whose history holds a dislike.
    pub rows: usize,
    /// Share of the top K that are items the row's history disliked.
    pub disliked_items: f64,
    /// Share of the top K from creators of disliked items.
    pub disliked_creators: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `empty` or `test`: where the trajectories started.
    pub start: String,
    pub users: usize,
    pub steps: usize,
    pub top: usize,
    pub seed: u64,
    /// The dwell of the simulated steps.
    pub dwell: DwellScale,
    pub branches: Vec<Branch>,
    pub rerecommend: Option<Rerecommend>,
}

/// Item id -> (cluster, creator), from the simulator's items.jsonl.
pub(crate) fn read_items(path: &Path) -> Result<Vec<(i64, i64)>, AppError> {
    let mut items: Vec<(i64, i64)> = vec![];
    for_each_json_row(path, |_, v| {
        let field = |k: &str| v.get(k).and_then(Value::as_i64).ok_or_else(|| format!("missing integer `{k}`"));
        let (id, cluster, creator) = (field("item")?, field("cluster")?, field("creator")?);
        if id != items.len() as i64 {
            return Err(format!("expected item {}, found {id} (items.jsonl lists items in order)", items.len()));
        }
        items.push((cluster, creator));
        Ok(true)
    })?;
    Ok(items)
}

fn bootstrap(num: &[f64], den: &[f64], rng: &mut Rng) -> Estimate {
    let ratio = |n: f64, d: f64| if d > 0.0 { n / d - 1.0 } else { 0.0 };
    let value = ratio(num.iter().sum(), den.iter().sum());
    let n = num.len();
    let mut draws: Vec<f64> = (0..1000)
        .map(|_| {
            let (mut a, mut b) = (0.0, 0.0);
            for _ in 0..n {
                let i = rng.below(n);
                a += num[i];
                b += den[i];
            }
            ratio(a, b)
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    Estimate { value, lo: draws[25], hi: draws[974] }
}

fn err_at(e: (usize, String)) -> AppError {
    AppError::Responsiveness(format!("simulated history {}: {}", e.0, e.1))
}

/// Starting histories from held-out rows: the first non-empty history of each user of `file`,
/// users in the order they first appear, cycled to `users` (dwell read back from log1p seconds).
/// One per user, so that the starts stand for many users: a file sorted by time or by user would
/// otherwise give most of them to a few heavy users.
pub(crate) fn start_histories(file: &Path, s: &Settings) -> Result<Vec<Vec<Step>>, AppError> {
    let mut found = vec![];
    let mut seen = std::collections::HashSet::new();
    for_each_row(file, |_, v| {
        let user = v.get("user").and_then(Value::as_i64);
        if user.is_some_and(|u| seen.contains(&u)) {
            return Ok(true);
        }
        let list = |k: &str| v.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
        let (ids, dwell, flags) =
            (list(&s.history), list(&format!("{}.dwell", s.history)), list(&format!("{}.disliked", s.history)));
        if ids.is_empty() {
            return Ok(true);
        }
        if dwell.len() != ids.len() || flags.len() != ids.len() {
            return Err(format!("`{0}`, `{0}.dwell` and `{0}.disliked` differ in length", s.history));
        }
        let steps = (0..ids.len())
            .map(|j| {
                Some(Step {
                    item: ids[j].as_i64()?,
                    dwell: dwell[j].as_f64()?.exp_m1(),
                    disliked: flags[j].as_f64()? == 1.0,
                })
            })
            .collect::<Option<Vec<Step>>>()
            .ok_or_else(|| "history values must be numbers".to_string())?;
        seen.extend(user);
        found.push(steps);
        Ok(found.len() < s.users)
    })?;
    if found.is_empty() {
        return Err(AppError::Responsiveness(format!(
            "{} has no row with a non-empty `{}`",
            file.display(),
            s.history
        )));
    }
    Ok((0..s.users).map(|u| found[u % found.len()].clone()).collect())
}

/// Runs the counterfactual simulation from `start` histories (one per user; empty by default).
pub fn simulate(
    rec: &Recommender,
    items: &[(i64, i64)],
    s: &Settings,
    start: Option<Vec<Vec<Step>>>,
) -> Result<Report, AppError> {
    if s.users == 0 || s.steps == 0 || s.top == 0 {
        return Err(AppError::Responsiveness("--users, --steps and --top must be at least 1".into()));
    }
    let mut rng = Rng::derive(s.seed, 11, 0);
    let start_name = if start.is_some() { "test" } else { "empty" };
    let mut histories: Vec<Vec<Step>> = start.unwrap_or_else(|| vec![vec![]; s.users]);
    let mut last = vec![0i64; s.users];
    for step in 0..s.steps {
        let rows: Vec<Value> = histories.iter().map(|h| history_row(&s.history, h, s.max_len)).collect();
        let lists = rec.top_k(&rows, s.top, s.exclude_consumed).map_err(err_at)?;
        for (u, list) in lists.iter().enumerate() {
            if list.is_empty() {
                return Err(AppError::Responsiveness("the model recommended nothing (every item consumed?)".into()));
            }
            let pick = list[rng.below(list.len())].item;
            if step + 1 < s.steps {
                histories[u].push(Step { item: pick, dwell: s.dwell.long_view_s, disliked: false });
            } else {
                last[u] = pick;
            }
        }
    }
    let info = |item: i64| items.get(item as usize).copied().unwrap_or((-1, -1));
    let mut shares: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![];
    let names: Vec<&str> = branches(&[], 0, s.skip_branch, &s.dwell).into_iter().map(|(n, _)| n).collect();
    for (b, name) in names.iter().enumerate() {
        let rows: Vec<Value> = histories
            .iter()
            .zip(&last)
            .map(|(h, l)| history_row(&s.history, &branches(h, *l, s.skip_branch, &s.dwell)[b].1, s.max_len))
            .collect();
        let lists = rec.top_k(&rows, s.top, s.exclude_consumed).map_err(err_at)?;
        let (mut cl, mut cr) = (vec![], vec![]);
        for (list, l) in lists.iter().zip(&last) {
            let (cluster, creator) = info(*l);
            let k = list.len().max(1) as f64;
            cl.push(list.iter().filter(|p| info(p.item).0 == cluster).count() as f64 / k);
            cr.push(list.iter().filter(|p| info(p.item).1 == creator).count() as f64 / k);
        }
        shares.push((name, cl, cr));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut out = vec![];
    for (i, (name, cl, cr)) in shares.iter().enumerate() {
        let (content, creator) = if i == 0 {
            (None, None)
        } else {
            (Some(bootstrap(cl, &shares[0].1, &mut rng)), Some(bootstrap(cr, &shares[0].2, &mut rng)))
        };
        out.push(Branch {
            name: name.to_string(),
            same_cluster: mean(cl),
            same_creator: mean(cr),
            responsiveness_content: content,
            responsiveness_creator: creator,
        });
    }
    Ok(Report {
        start: start_name.into(),
        users: s.users,
        steps: s.steps,
        top: s.top,
        seed: s.seed,
        dwell: s.dwell,
        branches: out,
        rerecommend: None,
    })
}

/// How often held-out rows with a disliked item in their history get that item, or an item of
/// its creator, recommended again: over every such row of `file`, or a uniform sample of
/// `max_rows` of them (reservoir sampling with the run's seed) when there are more, so that the
/// file's order (by time, by user) does not choose whose rows are measured.
pub fn rerecommend(
    rec: &Recommender,
    items: &[(i64, i64)],
    file: &Path,
    s: &Settings,
    max_rows: usize,
) -> Result<Rerecommend, AppError> {
    let key = format!("{}.disliked", s.history);
    let mut sample = Reservoir::new(max_rows, Rng::derive(s.seed, 12, 0));
    for_each_row(file, |_, v| {
        let flags = v.get(&key).and_then(Value::as_array);
        if flags.is_some_and(|f| f.iter().any(|x| x.as_f64() == Some(1.0))) {
            sample.offer(v);
        }
        Ok(true)
    })?;
    let rows = sample.items;
    let (mut item_share, mut creator_share) = (0.0, 0.0);
    for chunk in rows.chunks(RECOMMEND_CHUNK) {
        let lists = rec.top_k(chunk, s.top, s.exclude_consumed).map_err(err_at)?;
        for (row, list) in chunk.iter().zip(lists) {
            let ids = row.get(&s.history).and_then(Value::as_array).cloned().unwrap_or_default();
            let flags = row.get(&key).and_then(Value::as_array).cloned().unwrap_or_default();
            let disliked: Vec<i64> = ids
                .iter()
                .zip(&flags)
                .filter(|(_, f)| f.as_f64() == Some(1.0))
                .filter_map(|(i, _)| i.as_i64())
                .collect();
            let creators: Vec<i64> = disliked.iter().filter_map(|i| items.get(*i as usize).map(|x| x.1)).collect();
            let k = list.len().max(1) as f64;
            item_share += list.iter().filter(|p| disliked.contains(&p.item)).count() as f64 / k;
            creator_share +=
                list.iter().filter(|p| items.get(p.item as usize).is_some_and(|x| creators.contains(&x.1))).count()
                    as f64
                    / k;
        }
    }
    let n = rows.len().max(1) as f64;
    Ok(Rerecommend { rows: rows.len(), disliked_items: item_share / n, disliked_creators: creator_share / n })
}

/// A uniform sample of at most `cap` items of a stream of unknown length (Algorithm R).
struct Reservoir<T> {
    items: Vec<T>,
    seen: usize,
    cap: usize,
    rng: Rng,
}

impl<T> Reservoir<T> {
    fn new(cap: usize, rng: Rng) -> Reservoir<T> {
        Reservoir { items: Vec::with_capacity(cap.min(RECOMMEND_CHUNK)), seen: 0, cap, rng }
    }

    fn offer(&mut self, x: T) {
        self.seen += 1;
        if self.items.len() < self.cap {
            self.items.push(x);
        } else {
            let j = self.rng.below(self.seen);
            if j < self.cap {
                self.items[j] = x;
            }
        }
    }
}

/// The longest history the model reads through its sequence input `history` (its T).
pub fn history_len(rec: &Recommender, history: &str) -> Result<usize, AppError> {
    rec.sequence_len(history)
        .ok_or_else(|| AppError::NotAHistory { history: history.to_string(), inputs: rec.inputs() })
}

/// The whole measurement of `recspec responsiveness` on a simulated data set (`items.jsonl`
/// and the test split): the counterfactual simulation, starting from empty histories or with
/// `start_from_test` from held-out ones, and the re-recommendation rate on the first
/// [`RERECOMMEND_ROWS`] held-out rows with a dislike.
pub fn measure(rec: &Recommender, data: &Path, s: &Settings, start_from_test: bool) -> Result<Report, AppError> {
    let items = read_items(&data.join("items.jsonl"))?;
    let test = split_file(data, "test")?;
    let start = if start_from_test { Some(start_histories(&test, s)?) } else { None };
    let mut report = simulate(rec, &items, s, start)?;
    report.rerecommend = Some(rerecommend(rec, &items, &test, s, RERECOMMEND_ROWS)?);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_starts_take_one_history_per_user() {
        let scratch = tempfile::Builder::new().prefix("recspec-starts-").tempdir().unwrap();
        let dir = scratch.path();
        let file = dir.join("test.jsonl");
        let row = |user: i64, item: i64| format!(r#"{{"user":{user},"h":[{item}],"h.dwell":[1.0],"h.disliked":[0]}}"#);
        // A heavy user first, as a file sorted by user or time may put them; an empty history.
        let lines = [
            row(7, 1),
            row(7, 2),
            row(7, 3),
            r#"{"user":8,"h":[],"h.dwell":[],"h.disliked":[]}"#.into(),
            row(8, 4),
            row(9, 5),
        ];
        std::fs::write(&file, lines.join("\n")).unwrap();
        let s = Settings {
            users: 4,
            steps: 1,
            top: 1,
            seed: 0,
            skip_branch: false,
            history: "h".into(),
            max_len: 5,
            exclude_consumed: false,
            dwell: DwellScale { long_view_s: LONG_VIEW, skip_view_s: SKIP_VIEW, source: DwellSource::Fallback },
        };
        let starts = start_histories(&file, &s).unwrap();
        let first: Vec<i64> = starts.iter().map(|h| h[0].item).collect();
        assert_eq!(first, [1, 4, 5, 1], "users 7, 8, 9, then cycled");
    }

    #[test]
    fn the_dwell_scale_is_the_training_histories_median_and_tenth_percentile() {
        let scratch = tempfile::Builder::new().prefix("recspec-dwell-").tempdir().unwrap();
        let dir = scratch.path();
        let file = dir.join("train.jsonl");
        // Steps of 1..=10 s (log1p), plus a disliked 1000 s step and a row without the input.
        let row = |secs: &[f64], flags: &[u8]| {
            let logs: Vec<f64> = secs.iter().map(|s| s.ln_1p()).collect();
            serde_json::json!({"user": 1, "h": vec![1; secs.len()], "h.dwell": logs, "h.disliked": flags}).to_string()
        };
        let lines = [
            row(&[1.0, 2.0, 3.0, 4.0, 5.0], &[0, 0, 0, 0, 0]),
            row(&[6.0, 1000.0, 7.0, 8.0, 9.0, 10.0], &[0, 1, 0, 0, 0, 0]),
            r#"{"user":2}"#.to_string(),
        ];
        std::fs::write(&file, lines.join("\n")).unwrap();
        let scale = dwell_scale(&file, "h", 1).unwrap();
        assert_eq!(scale.source, DwellSource::TrainSplit);
        // Sorted 1..10: the median at index round(4.5) = 5 is 6 s, the 10th percentile at
        // round(0.9) = 1 is 2 s; the disliked 1000 s step is not a view.
        assert!((scale.long_view_s - 6.0).abs() < 1e-9, "{scale:?}");
        assert!((scale.skip_view_s - 2.0).abs() < 1e-9, "{scale:?}");
        let none = dwell_scale(&file, "other", 1).unwrap();
        assert_eq!((none.long_view_s, none.skip_view_s, none.source), (LONG_VIEW, SKIP_VIEW, DwellSource::Fallback));
    }

    /// The re-recommendation sample keeps every row of the file equally likely, not the first.
    #[test]
    fn the_rerecommend_sample_is_uniform_over_the_file() {
        let (n, keep, draws) = (40usize, 10usize, 4000);
        let mut counts = vec![0usize; n];
        for seed in 0..draws {
            let mut sample = Reservoir::new(keep, Rng::derive(seed as u64, 12, 0));
            (0..n).for_each(|v| sample.offer(v));
            assert_eq!(sample.items.len(), keep);
            sample.items.iter().for_each(|&v| counts[v] += 1);
        }
        let expected = (draws * keep / n) as f64;
        for (v, &c) in counts.iter().enumerate() {
            assert!((c as f64 - expected).abs() < 0.15 * expected, "row {v}: {c} of {expected}");
        }
    }
}
