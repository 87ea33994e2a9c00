//! The mutation probe: small edits of every shipped spec, each compiled, lowered, checked
//! against a memory budget and, when accepted, trained for two steps on a tiny simulated data
//! set through the same calls `recspec train` makes. A mutant may be refused at any stage with
//! an error; none may panic. (An abort would end the test binary, which fails the run too.)
//!
//! `.ci/run` runs 5,000 mutants; another size or seed is
//! `RECSPEC_PROBE_MUTANTS=20000 RECSPEC_PROBE_SEED=5 cargo test --release probe -- --nocapture`.

use crate::Rng;
use crate::Scratch;
use recspec::app::settings::TrainFlags;
use recspec::app::train::{prepare, train, RunRequest, Started, TrainOptions};
use recspec::config::RunConfig;
use recspec::simulate::{simulate, SimConfig};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq)]
enum Tok {
    Ident,
    Number,
    Other,
}

/// The tokens of a spec that mutations edit: identifiers and numbers with their byte ranges
/// (strings and comments are skipped, so imports and notes stay intact).
fn tokens(text: &str) -> Vec<(Tok, std::ops::Range<usize>)> {
    let b = text.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident, s..i));
        } else if c.is_ascii_digit() {
            let s = i;
            let mut exponent = false;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'e' || (b[i] == b'-' && exponent)) {
                exponent = b[i] == b'e';
                i += 1;
            }
            out.push((Tok::Number, s..i));
        } else {
            if !c.is_ascii_whitespace() {
                out.push((Tok::Other, i..i + 1));
            }
            i += 1;
        }
    }
    out
}

const INTS: &[&str] = &["0", "1", "2", "3", "4", "7", "16", "100", "-1", "-2"];
const FLOATS: &[&str] = &["0.0", "1.0", "0.5", "-1.0", "1e-9", "2.5", "100.0"];
/// Names a user might reach for instead of the one written: components, functions, options.
const NAMES: &[&str] = &[
    "Linear",
    "MLP",
    "Embedding",
    "SelfAttention",
    "TargetAttention",
    "GRU",
    "Memory",
    "MMoE",
    "concat",
    "stack",
    "sum",
    "mean",
    "max",
    "pool",
    "sigmoid",
    "softmax",
    "relu",
    "bce",
    "triplet",
    "not_to_recommend",
    "B",
    "T",
    "D",
    "F",
    "true",
    "false",
];

/// One mutant of `text`: one to three edits, each replacing a number (most often: numbers are
/// where an edit is most likely to be accepted), replacing a name (with another name of the
/// same file or a common one), swapping two names, or deleting or duplicating a line.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut text = text.to_string();
    for _ in 0..1 + rng.below(3) {
        let toks = tokens(&text);
        let of = |kinds: &[Tok]| -> Vec<std::ops::Range<usize>> {
            toks.iter().filter(|t| kinds.contains(&t.0)).map(|t| t.1.clone()).collect()
        };
        let (numbers, names) = (of(&[Tok::Number]), of(&[Tok::Ident]));
        match rng.below(10) {
            0..=3 if !numbers.is_empty() => {
                let range = rng.pick(&numbers).clone();
                let float = text[range.clone()].contains(['.', 'e']);
                let new = if float { rng.pick(FLOATS) } else { rng.pick(INTS) };
                text.replace_range(range, new);
            }
            4..=6 if !names.is_empty() => {
                let range = rng.pick(&names).clone();
                let new = if rng.below(2) == 0 {
                    text[rng.pick(&names).clone()].to_string()
                } else {
                    rng.pick(NAMES).to_string()
                };
                text.replace_range(range, &new);
            }
            7 if names.len() > 1 => {
                let (a, b) = (rng.pick(&names).clone(), rng.pick(&names).clone());
                let (first, second) = if a.start < b.start { (a, b) } else { (b, a) };
                if first.end <= second.start {
                    let (x, y) = (text[first.clone()].to_string(), text[second.clone()].to_string());
                    text.replace_range(second, &x);
                    text.replace_range(first, &y);
                }
            }
            _ => {
                let lines: Vec<&str> = text.lines().collect();
                let at = rng.below(lines.len());
                let mut out = lines.clone();
                if rng.below(2) == 0 {
                    out.remove(at);
                } else {
                    out.insert(at, lines[at]);
                }
                text = out.join("\n");
            }
        }
    }
    text
}

/// Where a mutant stopped.
#[derive(Default, Debug)]
struct Tally {
    mutants: usize,
    refused_by_check: usize,
    refused_later: usize,
    trained: usize,
    panics: Vec<String>,
    /// Errors after the checker accepted the spec that are not expected refusals: what users
    /// would call a bug (an internal error, a checker that let through what cannot run).
    internal: Vec<String>,
}

/// Whether an error after the checker accepted a mutant is one a correct program can give: the
/// memory check, the data not fitting the mutated model (its inputs, its dims, a label stream
/// without positives), a loss that diverged. Anything else (`AppError::Lower`, which users see
/// as an internal error, a checkpoint or options failure...) is a bug the probe reports.
fn expected_refusal(e: &recspec::app::AppError) -> bool {
    use recspec::app::AppError;
    use recspec::runtime::RuntimeError;
    match e {
        AppError::TooLarge(_)
        | AppError::Data(_)
        | AppError::Schema(_)
        | AppError::NoPositives { .. }
        | AppError::NoLoss(_)
        | AppError::EmptySplit(_) => true,
        AppError::Backend(b) => match b {
            RuntimeError::Data(_)
            | RuntimeError::Schema(_)
            | RuntimeError::Model(_)
            | RuntimeError::Diverged { .. } => true,
            RuntimeError::Options(_) | RuntimeError::Checkpoint(_) => false,
        },
        _ => false,
    }
}

fn temp(name: &str) -> Scratch {
    Scratch::new(&format!("probe-{name}"))
}

/// What one mutant reached: `Ok(true)` trained two steps, `Ok(false)` refused by the checker,
/// `Err` refused later with an error. The run is assembled by `app::train::prepare`, as
/// `recspec train` assembles it.
fn compile_and_train(spec: &Path, data: &Path, out: &Path) -> Result<bool, recspec::app::AppError> {
    let _ = std::fs::remove_dir_all(out);
    let request = RunRequest {
        spec,
        data,
        out,
        config: RunConfig::default(),
        set: vec![],
        flags: TrainFlags {
            lr: Some(0.01),
            batch_size: Some(8),
            epochs: Some(1),
            max_steps: Some(2),
            shuffle_buffer: Some(0),
            ..TrainFlags::default()
        },
        resume: false,
        available: Some(1 << 30),
    };
    let Some(Started { dir, program, settings }) = prepare(request, &mut |_, _| {})? else { return Ok(false) };
    let options = TrainOptions {
        device: recspec::runtime::parse_device("cpu").unwrap(),
        skip_bad_rows: false,
        extra_labels: vec![],
        progress: false,
        init_from: None,
    };
    train(&dir, program, settings, data, options)?;
    Ok(true)
}

fn probe(mutants: usize, seed: u64) -> Tally {
    let data = temp(&format!("data-{seed:x}"));
    let cfg = SimConfig { users: 12, items: 40, impressions_per_user: 6, seq_len: 4, seed: 5, ..SimConfig::default() };
    simulate(&cfg, &data).unwrap();
    let specs = temp(&format!("specs-{seed:x}"));
    crate::copy_tree(&crate::root().join("specs"), &specs);
    // Every shipped spec, and each library file with a spec that imports it.
    let mut targets: Vec<(PathBuf, PathBuf)> = vec![];
    for e in std::fs::read_dir(&specs).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "recspec") {
            targets.push((p.clone(), p));
        }
    }
    targets.sort();
    targets.push((specs.join("dumn.recspec"), specs.join("lib/dumn.recspec")));
    targets.push((specs.join("mmoe.recspec"), specs.join("lib/mtl.recspec")));
    let out = temp(&format!("run-{seed:x}"));
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    // The previous panic hook prints each panic; the tally lists them at the end instead.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..mutants {
        let (spec, file) = rng.pick(&targets).clone();
        let original = std::fs::read_to_string(&file).unwrap();
        let mutant = mutate(&original, &mut rng);
        std::fs::write(&file, &mutant).unwrap();
        tally.mutants += 1;
        match catch_unwind(AssertUnwindSafe(|| compile_and_train(&spec, &data, &out))) {
            Ok(Ok(true)) => tally.trained += 1,
            Ok(Ok(false)) => tally.refused_by_check += 1,
            Ok(Err(e)) if expected_refusal(&e) => tally.refused_later += 1,
            Ok(Err(e)) => tally.internal.push(format!(
                "{}: {e}\n--- mutant of {} ---\n{}",
                spec.file_name().unwrap().to_string_lossy(),
                file.file_name().unwrap().to_string_lossy(),
                changed_lines(&original, &mutant)
            )),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                tally.panics.push(format!(
                    "{} panicked: {message}\n--- mutant of {} ---\n{}",
                    spec.file_name().unwrap().to_string_lossy(),
                    file.file_name().unwrap().to_string_lossy(),
                    changed_lines(&original, &mutant)
                ));
            }
        }
        std::fs::write(&file, &original).unwrap();
    }
    std::panic::set_hook(hook);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&specs);
    let _ = std::fs::remove_dir_all(&out);
    tally
}

/// The lines of `mutant` that are not in `original`, for a readable report.
fn changed_lines(original: &str, mutant: &str) -> String {
    let old: std::collections::HashSet<&str> = original.lines().collect();
    mutant.lines().filter(|l| !old.contains(l)).map(|l| format!("+ {l}\n")).collect()
}

fn report(t: &Tally) {
    eprintln!(
        "{} mutants: {} refused by the checker, {} refused later with an expected error, {} trained two steps, {} panicked, {} internal errors",
        t.mutants,
        t.refused_by_check,
        t.refused_later,
        t.trained,
        t.panics.len(),
        t.internal.len()
    );
    for p in t.panics.iter().chain(&t.internal).take(10) {
        eprintln!("{p}");
    }
}

/// 5,000 mutants from a fixed seed; `RECSPEC_PROBE_MUTANTS` and `RECSPEC_PROBE_SEED` run
/// another size or seed (the same test, so nothing is skipped in CI).
#[test]
fn mutants_train_or_are_refused() {
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let mutants = var("RECSPEC_PROBE_MUTANTS").unwrap_or(5000) as usize;
    let t = probe(mutants, var("RECSPEC_PROBE_SEED").unwrap_or(0x0bad_5eed_0000_0027));
    report(&t);
    assert!(t.panics.is_empty(), "{} of {} mutants panicked", t.panics.len(), t.mutants);
    assert!(
        t.internal.is_empty(),
        "{} of {} mutants failed after the checker accepted them",
        t.internal.len(),
        t.mutants
    );
    assert!(t.trained >= mutants / 10, "the probe trains a fair share of its mutants: {}", t.trained);
}
