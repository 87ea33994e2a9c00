//! The SASRec walkthrough through the library: check the spec, simulate a small data set, train
//! a short run into a run directory, evaluate it on the test split and compare with the
//! untrained model. examples/sasrec/README.md tells the same story with the command line.
//!
//! ```sh
//! cargo run --release --example sasrec             # in a temporary folder, removed at the end
//! cargo run --release --example sasrec -- WORK     # keeps WORK/data and WORK/run
//! ```
//!
//! About 10 seconds on two cores: 300 simulated users, two epochs at batch 128.

use recspec::app::settings::{merge_train_settings, TrainFlags};
use recspec::app::train::{check_splits, start_run, train, trainable_graph, TrainOptions};
use recspec::app::{memory, AppError, EVAL_BATCH_SIZE};
use recspec::render::thousands;
use recspec::runtime::eval::{evaluate, EvalOptions, EvalReport};
use recspec::runtime::weights::Weights;
use recspec::simulate::{simulate, SimConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

const SPEC: &str = "examples/sasrec/sasrec.recspec";

/// recall@10 and NDCG@10 of the model's next-item head.
fn at_10(report: &EvalReport) -> (f64, f64) {
    let head = report.retrieval.get("loss/next_item").expect("sasrec has one retrieval head, its softmax_ce loss");
    (head.recall["@10"], head.ndcg["@10"])
}

fn run(work: &Path) -> Result<ExitCode, AppError> {
    let spec = Path::new(SPEC);
    let data = work.join("data");
    let out = work.join("run");

    // 1. Check: load, resolve and shape-check. Every diagnostic at once, rendered with code
    //    frames, exactly as `recspec check` prints them.
    let (loaded, checked) = recspec::compile_file(spec, &[])?;
    if !checked.diagnostics.is_empty() {
        eprint!("{}", recspec::diag::render(&loaded.sources, &checked.diagnostics));
    }
    let Some(graph) = checked.graph else { return Ok(ExitCode::from(1)) };
    let program = recspec::app::lower_graph(&graph)?;
    let count = |p: &recspec::lower::Program| thousands(p.trainable_count() as i64);
    println!("1. {SPEC} checks: model `{}`, {} parameters at its defaults", graph.model, count(&program));

    // 2. Data: a small simulated data set (`recspec simulate`). Its data.toml sets V and T.
    let sim =
        SimConfig { users: 300, items: 300, impressions_per_user: 80, seq_len: 20, seed: 3, ..SimConfig::default() };
    let summary = simulate(&sim, &data)?;
    println!("2. simulated {}:\n{summary}", data.display());

    // 3. Train (`recspec train`): compile for the data set, apply the settings, refuse what
    //    cannot train (too large for this machine, a missing split, a label with no positive),
    //    prepare the run directory, then the epochs.
    let (loaded, checked) = recspec::app::compile_for_data(spec, Some(&data), None, &[])?;
    let Some(graph) = checked.graph else { return Ok(ExitCode::from(1)) };
    let flags =
        TrainFlags { epochs: Some(2), lr: Some(0.005), batch_size: Some(128), seed: Some(1), ..Default::default() };
    let settings = merge_train_settings(None, &flags)?;
    let graph = trainable_graph(spec, graph, &BTreeMap::new())?;
    let program = recspec::app::lower_graph(&graph)?;
    memory::check_fits(&program, settings.batch_size, &settings, memory::available_memory())?;
    check_splits(&program, &data)?;
    let dir = start_run(&out, false, spec, &loaded, &graph, &settings, &data)?;
    println!("3. training {} parameters with {settings}", count(&program));
    let device = recspec::runtime::parse_device("cpu")?;
    let options = TrainOptions {
        device: device.clone(),
        skip_bad_rows: false,
        extra_labels: vec![],
        progress: false,
        init_from: None,
    };
    let report = train(&dir, program.clone(), settings, &data, options)?;
    let losses: Vec<String> = report.epoch_losses.iter().map(|l| format!("{l:.4}")).collect();
    println!("   mean training loss per epoch: {}; {:.0} samples/s", losses.join(", "), report.samples_per_sec);
    if let Some(valid) = &report.valid {
        println!("   {}", recspec::runtime::train::summary(valid));
    }

    // 4. Evaluate (`recspec eval RUN --data DIR`): the trained run's last checkpoint against the
    //    same program with its initial weights, on the held-out test split.
    let test = data.join("test.jsonl");
    let opts = EvalOptions::new(EVAL_BATCH_SIZE, false, &[], vec![10, 50])?;
    let trained = recspec::app::eval::evaluate_run(&out, &test, &opts, &device)?;
    let untrained = evaluate(&program, &Weights::init(&program, &device, 1), &test, &opts, &device)?;
    let (recall, ndcg) = at_10(&trained);
    let (recall0, ndcg0) = at_10(&untrained);
    println!(
        "4. test split, next-item head over {} clicked impressions:",
        trained.retrieval["loss/next_item"].examples
    );
    println!("   untrained: recall@10 {recall0:.4}, NDCG@10 {ndcg0:.4}");
    println!("   trained:   recall@10 {recall:.4}, NDCG@10 {ndcg:.4}");
    println!("   (a uniform ranking of {} items: recall@10 {:.4})", sim.items, 10.0 / sim.items as f64);
    println!("   metrics as JSON: {}", serde_json::to_string(&trained.retrieval).map_err(AppError::Json)?);

    // The walkthrough's claims, so that this example fails when they stop holding.
    let losses = &report.epoch_losses;
    assert!(losses.len() == 2 && losses[1] < losses[0], "training loss fell: {losses:?}");
    assert!(recall > 2.0 * recall0 && recall > 3.0 * 10.0 / sim.items as f64, "trained {recall}, untrained {recall0}");
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let (work, temporary) = match std::env::args_os().nth(1) {
        Some(dir) => (std::path::absolute(dir).expect("the current folder exists"), false),
        None => (std::env::temp_dir().join(format!("recspec-sasrec-{}", std::process::id())), true),
    };
    // The spec path is relative to the repository root (the work folder was made absolute).
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).expect("the repository root exists");
    if work.join("run").exists() {
        eprintln!("error: {} already holds a run; choose another folder", work.join("run").display());
        return ExitCode::from(2);
    }
    let result = run(&work);
    if temporary {
        std::fs::remove_dir_all(&work).ok();
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
