//! The mutation probe: small edits of every shipped spec, each compiled, lowered, checked
//! against a memory budget and, when accepted, trained for two steps on a tiny simulated data
//! set through the same calls `recspec train` makes. A mutant may be refused by the checker, or
//! after it with an expected error (the memory check, data that does not fit); none may panic,
//! fail with another error, abort its process or hang. Mutants run in child processes of the
//! test binary, 500 at a time, so that an abort or a hang names its mutant and the panic hook is
//! silenced only there.
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
    /// Mutants whose process ended (an abort, a stack overflow) or that did not finish in time.
    aborts: Vec<String>,
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

/// The probe's scratch copies: the simulated data, the specs, and where runs go; with every
/// spec (and each library file with a spec that imports it) a mutant may edit.
struct Setup {
    data: Scratch,
    /// Kept so that the copies live (and are removed) with the setup.
    _specs: Scratch,
    out: Scratch,
    targets: Vec<(PathBuf, PathBuf)>,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let data = temp(&format!("data-{tag}"));
        let cfg =
            SimConfig { users: 12, items: 40, impressions_per_user: 6, seq_len: 4, seed: 5, ..SimConfig::default() };
        simulate(&cfg, &data).unwrap();
        let specs = temp(&format!("specs-{tag}"));
        crate::copy_tree(&crate::root().join("specs"), &specs);
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
        let out = temp(&format!("run-{tag}"));
        Setup { data, _specs: specs, out, targets }
    }
}

/// The mutants of a probe, in order: (spec compiled, file edited, its text, the mutant's text).
/// Each process makes the same list from the seed.
fn mutants_of(setup: &Setup, count: usize, seed: u64) -> Vec<(PathBuf, PathBuf, String, String)> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|_| {
            let (spec, file) = rng.pick(&setup.targets).clone();
            let original = std::fs::read_to_string(&file).unwrap();
            let mutant = mutate(&original, &mut rng);
            (spec, file, original, mutant)
        })
        .collect()
}

/// How one mutant ended, as a child reports it on one line.
const REPORT: &str = "PROBE-MUTANT";

/// The child's side: runs mutants `from..to` of the probe of `count` mutants from `seed`, writing
/// `PROBE-MUTANT k start` before each and `PROBE-MUTANT k OUTCOME [message]` after it on stdout
/// (flushed), so that the parent can name the mutant an abort or a hang stopped at. Panics are
/// caught here; the panic hook is silenced only in this process.
fn run_child(count: usize, seed: u64, from: usize, to: usize) {
    use std::io::Write;
    let setup = Setup::new(&format!("{seed:x}-{from}"));
    let mutants = mutants_of(&setup, count, seed);
    std::panic::set_hook(Box::new(|_| {}));
    let mut out = std::io::stdout();
    for (k, (spec, file, original, mutant)) in mutants.iter().enumerate().take(to).skip(from) {
        let _ = writeln!(out, "{REPORT} {k} start");
        let _ = out.flush();
        std::fs::write(file, mutant).unwrap();
        let outcome = match catch_unwind(AssertUnwindSafe(|| compile_and_train(spec, &setup.data, &setup.out))) {
            Ok(Ok(true)) => "trained".to_string(),
            Ok(Ok(false)) => "checker".to_string(),
            Ok(Err(e)) if expected_refusal(&e) => "later".to_string(),
            Ok(Err(e)) => format!("internal {}", serde_json::to_string(&e.to_string()).unwrap()),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("panic {}", serde_json::to_string(&message).unwrap())
            }
        };
        std::fs::write(file, original).unwrap();
        let _ = writeln!(out, "{REPORT} {k} {outcome}");
        let _ = out.flush();
    }
}

/// Mutants per child process.
const BATCH: usize = 500;

/// The longest one mutant may take (compile, lower, two training steps of a tiny model).
const MUTANT_SECONDS: u64 = 60;

/// The parent's side: runs the probe's mutants in child processes of this test binary, `BATCH`
/// at a time. A child that dies (an abort, a stack overflow, an out-of-memory kill) or stops
/// answering for `MUTANT_SECONDS` is charged to the mutant it had started, which is listed with
/// its lines, and the next child goes on after it.
fn probe(mutants: usize, seed: u64) -> Tally {
    use std::io::BufRead;
    use std::sync::mpsc::RecvTimeoutError;
    let setup = Setup::new(&format!("{seed:x}-parent"));
    let list = mutants_of(&setup, mutants, seed);
    let describe = |k: usize, what: &str| {
        let (spec, file, original, mutant) = &list[k];
        format!(
            "{} {what}\n--- mutant {k} of {} ---\n{}",
            spec.file_name().unwrap().to_string_lossy(),
            file.file_name().unwrap().to_string_lossy(),
            changed_lines(original, mutant)
        )
    };
    let mut tally = Tally { mutants, ..Tally::default() };
    let mut next = 0;
    while next < mutants {
        let to = (next + BATCH).min(mutants);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "probe::probe_child", "--nocapture", "--test-threads", "1"])
            .env("RECSPEC_PROBE_CHILD", format!("{mutants}:{seed}:{next}:{to}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut started: Option<usize> = None;
        let mut done = next;
        loop {
            match rx.recv_timeout(std::time::Duration::from_secs(MUTANT_SECONDS)) {
                Ok(line) => {
                    let Some(rest) = line.strip_prefix(REPORT) else { continue };
                    let (k, outcome) = rest.trim().split_once(' ').unwrap();
                    let k: usize = k.parse().unwrap();
                    let (kind, message) = outcome.split_once(' ').unwrap_or((outcome, ""));
                    let message: String =
                        if message.is_empty() { String::new() } else { serde_json::from_str(message).unwrap() };
                    match kind {
                        "start" => {
                            started = Some(k);
                            continue;
                        }
                        "trained" => tally.trained += 1,
                        "checker" => tally.refused_by_check += 1,
                        "later" => tally.refused_later += 1,
                        "internal" => tally.internal.push(describe(k, &format!("failed after the checker: {message}"))),
                        _ => tally.panics.push(describe(k, &format!("panicked: {message}"))),
                    }
                    started = None;
                    done = k + 1;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let k = started.unwrap_or(done);
                    tally.aborts.push(describe(k, &format!("took longer than {MUTANT_SECONDS} s")));
                    done = k + 1;
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if let Some(k) = started {
                        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                        tally.aborts.push(describe(k, &format!("ended the process ({status})")));
                        done = k + 1;
                    }
                    break;
                }
            }
        }
        let _ = child.wait();
        assert!(done > next, "a child process ran no mutant of {next}..{to}");
        next = done;
    }
    tally
}

/// Runs a batch of the probe's mutants for [`probe`] (in a child process; it does nothing
/// without `RECSPEC_PROBE_CHILD`).
#[test]
#[ignore = "run by mutants_train_or_are_refused in child processes"]
fn probe_child() {
    let Ok(spec) = std::env::var("RECSPEC_PROBE_CHILD") else { return };
    let n: Vec<u64> = spec.split(':').map(|x| x.parse().unwrap()).collect();
    run_child(n[0] as usize, n[1], n[2] as usize, n[3] as usize);
}

/// The lines of `mutant` that are not in `original`, for a readable report.
fn changed_lines(original: &str, mutant: &str) -> String {
    let old: std::collections::HashSet<&str> = original.lines().collect();
    mutant.lines().filter(|l| !old.contains(l)).map(|l| format!("+ {l}\n")).collect()
}

fn report(t: &Tally) {
    eprintln!(
        "{} mutants: {} refused by the checker, {} refused later with an expected error, {} trained two steps, {} panicked, {} internal errors, {} aborted or hung",
        t.mutants,
        t.refused_by_check,
        t.refused_later,
        t.trained,
        t.panics.len(),
        t.internal.len(),
        t.aborts.len()
    );
    for p in t.panics.iter().chain(&t.internal).chain(&t.aborts).take(10) {
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
    assert!(t.aborts.is_empty(), "{} of {} mutants aborted or hung", t.aborts.len(), t.mutants);
    assert_eq!(t.trained + t.refused_by_check + t.refused_later + t.panics.len() + t.internal.len(), t.mutants);
    assert!(
        t.internal.is_empty(),
        "{} of {} mutants failed after the checker accepted them",
        t.internal.len(),
        t.mutants
    );
    assert!(t.trained >= mutants / 10, "the probe trains a fair share of its mutants: {}", t.trained);
}
