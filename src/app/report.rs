//! `recspec report RUN...`: one self-contained HTML page per run (or several runs overlaid):
//! loss per step, validation metrics per epoch, the settings, the model card and the
//! architecture picture, and `eval.json` when the run has one.
//!
//! A report shows what the run directory has: a run killed in its first epoch has steps but no
//! metrics, a run from before the step log has metrics only, a run whose spec no longer compiles
//! has curves but no picture. Each missing or unreadable part becomes a note on the page, never
//! an error; only a directory with nothing at all is refused.

use super::run_dir::STEPS_FILE;
use super::AppError;
use crate::picture::plot::{self, Chart, Series};
use crate::picture::{self};
use crate::render::render_builtin;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most points a curve keeps; longer ones are averaged into this many buckets.
const MAX_POINTS: usize = 1500;

/// A run's step log, by column (8 bytes a value: a million steps of three loss terms take
/// about 40 MB).
#[derive(Default)]
pub struct Steps {
    pub step: Vec<f64>,
    /// The weighted sum; NaN where the line held no number.
    pub loss: Vec<f64>,
    /// Each loss term's unweighted values, one column per name, NaN where a line lacks it.
    pub terms: Vec<(String, Vec<f64>)>,
}

/// What was read from one run directory.
pub struct Run {
    pub name: String,
    pub settings: Option<String>,
    pub steps: Steps,
    /// The `metrics.jsonl` lines, one per completed epoch.
    pub epochs: Vec<Value>,
    pub eval: Option<Value>,
    pub graph: Option<crate::ir::Graph>,
    /// What is missing or was skipped, in words.
    pub notes: Vec<String>,
}

/// Reads a JSON Lines file line by line, handing each parsed line to `take`; a line that is not
/// JSON (or not what `T` expects) becomes a note, and a torn last line of a killed run is named
/// as such. A missing file reads as empty.
fn read_lines<T: serde::de::DeserializeOwned>(path: &Path, notes: &mut Vec<String>, mut take: impl FnMut(T)) {
    use std::io::BufRead as _;
    let Ok(file) = std::fs::File::open(path) else { return };
    let mut reader = std::io::BufReader::new(file);
    let (mut line, mut number) = (String::new(), 0usize);
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                notes.push(format!("{}:{}: cannot be read further ({e})", path.display(), number + 1));
                break;
            }
        }
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(&line) {
            Ok(v) => take(v),
            Err(e) if !line.ends_with('\n') => {
                notes.push(format!("{}:{number}: an unfinished last line was skipped ({e})", path.display()))
            }
            Err(e) => notes.push(format!("{}:{number}: not a valid line, skipped ({e})", path.display())),
        }
    }
}

/// One line of `steps.jsonl`; `null` (how a non-finite value is written) reads as `None`.
#[derive(serde::Deserialize)]
struct StepLine {
    step: Option<f64>,
    loss: Option<f64>,
    #[serde(default)]
    terms: BTreeMap<String, Option<f64>>,
}

impl Steps {
    fn push(&mut self, line: StepLine) {
        let row = self.step.len();
        self.step.push(line.step.unwrap_or(f64::NAN));
        self.loss.push(line.loss.unwrap_or(f64::NAN));
        for (name, v) in line.terms {
            let column = match self.terms.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    self.terms.push((name, vec![f64::NAN; row]));
                    self.terms.len() - 1
                }
            };
            self.terms[column].1.push(v.unwrap_or(f64::NAN));
        }
        // Terms this line lacks are gaps.
        for (_, column) in &mut self.terms {
            column.resize(row + 1, f64::NAN);
        }
    }
}

/// A JSON number, or NaN for anything else (`null` is how a non-finite value was written).
fn number(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).unwrap_or(f64::NAN)
}

impl Run {
    /// Reads what `dir` holds; refuses only a directory with no run files at all.
    pub fn read(dir: &Path) -> Result<Run, AppError> {
        let mut notes = vec![];
        let settings = std::fs::read_to_string(dir.join("run.toml")).ok();
        let steps_path = dir.join(STEPS_FILE);
        let metrics_path = dir.join("metrics.jsonl");
        if settings.is_none() && !steps_path.exists() && !metrics_path.exists() {
            return Err(AppError::NothingToReport(dir.to_path_buf()));
        }
        let mut steps = Steps::default();
        read_lines(&steps_path, &mut notes, |l: StepLine| steps.push(l));
        if !steps_path.exists() {
            notes.push(format!("no {STEPS_FILE}: the run predates the step log, or never finished a step"));
        }
        let mut epochs = vec![];
        read_lines(&metrics_path, &mut notes, |v: Value| epochs.push(v));
        if epochs.is_empty() {
            notes.push("no completed epoch yet (metrics.jsonl is missing or empty): no validation metrics".into());
        }
        let eval_path = dir.join("eval.json");
        let eval = match std::fs::read_to_string(&eval_path) {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(v) => Some(v),
                Err(e) => {
                    notes.push(format!("{}: not JSON, not shown ({e})", eval_path.display()));
                    None
                }
            },
            Err(_) => None,
        };
        let graph = match super::run_dir::RunDir::open(dir).load_graph() {
            Ok((g, _)) => Some(g),
            Err(e) => {
                notes.push(format!("no architecture or model card: {e}"));
                None
            }
        };
        Ok(Run { name: dir.display().to_string(), settings, steps, epochs, eval, graph, notes })
    }
}

/// One chart with its caption and the count of values shown as gaps.
#[derive(Serialize)]
struct Figure {
    svg: String,
    gaps: usize,
}

fn figure(title: &str, x: &str, y: &str, series: Vec<Series>) -> Result<Option<Figure>, AppError> {
    if series.iter().all(|s| s.points.is_empty()) {
        return Ok(None);
    }
    let gaps = series.iter().map(Series::gaps).sum();
    let thinned: Vec<Series> = series.iter().map(|s| s.thinned(MAX_POINTS)).collect();
    let svg = plot::svg(&Chart { title, x_label: x, y_label: y, series: &thinned, integer_x: true })?;
    Ok(Some(Figure { svg, gaps }))
}

/// The mean of each point's finite values among the last `window` points (a smoothed curve to
/// read a noisy per-step loss by); NaN where the window holds none.
fn trailing_mean(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let (mut sum, mut n) = (0.0, 0usize);
    let mut out = Vec::with_capacity(points.len());
    for (i, &(x, y)) in points.iter().enumerate() {
        if y.is_finite() {
            sum += y;
            n += 1;
        }
        if i >= window {
            let old = points[i - window].1;
            if old.is_finite() {
                sum -= old;
                n -= 1;
            }
        }
        out.push((x, if n > 0 { sum / n as f64 } else { f64::NAN }));
    }
    out
}

/// `name` for one run, `RUN: name` when several are overlaid.
fn series_name(runs: &[Run], run: &Run, name: &str) -> String {
    if runs.len() == 1 {
        name.to_string()
    } else {
        format!("{}: {name}", run.name)
    }
}

/// A chart of metrics per epoch: its title and its y axis.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct EpochChart {
    title: &'static str,
    y: &'static str,
}

const TRAIN_LOSS: EpochChart = EpochChart { title: "train loss per epoch", y: "loss" };

/// Each label stream's validation metrics, with their keys in `metrics.jsonl`.
const STREAM_METRICS: [(EpochChart, &str); 3] = [
    (EpochChart { title: "validation AUC", y: "AUC" }, "auc"),
    (EpochChart { title: "validation GAUC", y: "GAUC" }, "gauc"),
    (EpochChart { title: "validation log loss", y: "log loss" }, "logloss"),
];

/// Each retrieval head's validation metrics at every K, with their keys in `metrics.jsonl`.
const RETRIEVAL_METRICS: [(EpochChart, &str); 2] = [
    (EpochChart { title: "validation recall@K", y: "recall@K" }, "recall"),
    (EpochChart { title: "validation NDCG@K", y: "NDCG@K" }, "ndcg"),
];

/// Metrics per epoch: `chart -> series`, the train loss and, for every label stream and
/// retrieval head the runs report, the validation metrics.
fn epoch_series(runs: &[Run]) -> BTreeMap<EpochChart, Vec<Series>> {
    let mut charts: BTreeMap<EpochChart, Vec<Series>> = BTreeMap::new();
    for run in runs {
        let epoch = |v: &Value| number(v.get("epoch"));
        let mut add = |chart: EpochChart, name: String, pointer: &str| {
            let points = run.epochs.iter().map(|v| (epoch(v), number(v.pointer(pointer)))).collect();
            charts.entry(chart).or_default().push(Series { name: series_name(runs, run, &name), points, faint: false });
        };
        add(TRAIN_LOSS, "train loss".into(), "/train_loss");
        let keys = |pointer: &str| -> BTreeSet<String> {
            run.epochs
                .iter()
                .filter_map(|v| v.pointer(pointer).and_then(Value::as_object))
                .flat_map(|m| m.keys().cloned())
                .collect()
        };
        for stream in keys("/valid/streams") {
            for (chart, metric) in STREAM_METRICS {
                add(chart, stream.clone(), &format!("/valid/streams/{stream}/{metric}"));
            }
        }
        let heads = keys("/valid/retrieval");
        for (chart, metric) in RETRIEVAL_METRICS {
            for head in &heads {
                for k in keys(&format!("/valid/retrieval/{head}/{metric}")) {
                    add(chart, format!("{head} {metric}{k}"), &format!("/valid/retrieval/{head}/{metric}/{k}"));
                }
            }
        }
    }
    charts
}

#[derive(Serialize)]
struct RunSection {
    name: String,
    settings: Option<String>,
    card: Option<String>,
    svg: Option<String>,
    eval: Option<String>,
    notes: Vec<String>,
    steps: usize,
    epochs: usize,
}

/// The report page of `runs` (one, or several overlaid in each chart).
pub fn page(runs: &[Run]) -> Result<String, AppError> {
    let mut figures = vec![];
    let mut total = vec![];
    for r in runs {
        let points: Vec<(f64, f64)> = r.steps.step.iter().copied().zip(r.steps.loss.iter().copied()).collect();
        let window = (points.len() / 40).clamp(1, 500);
        let smoothed = (window > 1).then(|| trailing_mean(&points, window));
        total.push(Series { name: series_name(runs, r, "loss (weighted sum)"), points, faint: smoothed.is_some() });
        if let Some(points) = smoothed {
            let name = format!("loss, mean of the last {window} steps");
            total.push(Series { name: series_name(runs, r, &name), points, faint: false });
        }
    }
    figures.extend(figure("training loss per step", "step", "loss", total)?);
    let mut terms = vec![];
    for r in runs {
        for (name, column) in &r.steps.terms {
            let points = r.steps.step.iter().copied().zip(column.iter().copied()).collect();
            terms.push(Series { name: series_name(runs, r, name), points, faint: false });
        }
    }
    if terms.len() > 1 {
        figures.extend(figure("loss terms per step (unweighted)", "step", "loss", terms)?);
    }
    for (chart, series) in epoch_series(runs) {
        figures.extend(figure(chart.title, "epoch", chart.y, series)?);
    }
    let mut sections = vec![];
    for r in runs {
        let (card, svg) = match &r.graph {
            Some(g) => (Some(picture::markdown_html(&super::memory::model_card(g)?)), Some(picture::architecture(g)?)),
            None => (None, None),
        };
        sections.push(RunSection {
            name: r.name.clone(),
            settings: r.settings.clone(),
            card,
            svg,
            eval: r.eval.as_ref().map(|v| serde_json::to_string_pretty(v).unwrap_or_default()),
            notes: r.notes.clone(),
            steps: r.steps.step.len(),
            epochs: r.epochs.len(),
        });
    }
    let title = runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
    Ok(render_builtin("report.html", minijinja::context! { title, figures, runs => sections })?)
}

/// Reads every run and renders their report.
pub fn report(dirs: &[PathBuf]) -> Result<String, AppError> {
    let runs = dirs.iter().map(|d| Run::read(d)).collect::<Result<Vec<_>, _>>()?;
    page(&runs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_term_missing_from_some_lines_is_a_gap_there() {
        let mut s = super::Steps::default();
        let line = |json: &str| serde_json::from_str::<super::StepLine>(json).unwrap();
        s.push(line(r#"{"step":1,"loss":1.0,"terms":{"a":0.5}}"#));
        s.push(line(r#"{"step":2,"loss":null,"terms":{"a":0.4,"b":0.1}}"#));
        s.push(line(r#"{"step":3,"loss":0.8,"terms":{"b":0.2}}"#));
        assert_eq!(s.step, [1.0, 2.0, 3.0]);
        assert!(s.loss[1].is_nan());
        let col = |n: &str| s.terms.iter().find(|(m, _)| m == n).unwrap().1.clone();
        let (a, b) = (col("a"), col("b"));
        assert_eq!(&a[..2], &[0.5, 0.4]);
        assert!(a[2].is_nan() && b[0].is_nan());
        assert_eq!(&b[1..], &[0.1, 0.2]);
    }

    #[test]
    fn the_trailing_mean_skips_gaps_and_forgets_old_points() {
        let pts = [(1.0, 1.0), (2.0, f64::NAN), (3.0, 3.0), (4.0, 5.0)];
        let m = super::trailing_mean(&pts, 2);
        let ys: Vec<f64> = m.iter().map(|p| p.1).collect();
        assert_eq!(&ys[..1], &[1.0]);
        assert_eq!(ys[1], 1.0, "the gap is skipped");
        assert_eq!(ys[2], 3.0, "point 1 left the window");
        assert_eq!(ys[3], 4.0);
    }
}
