//! The `recspec` command line: check, compile, diff, simulate, train and evaluate model specs.

use clap::{Parser, Subcommand, ValueEnum};
use recspec::check::Checked;
use recspec::diag;
use recspec::overrides::Override;
use recspec::render::{self, Emit};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A declarative model-spec compiler for multi-feedback recommendation models.
#[derive(Parser)]
#[command(name = "recspec", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check specs: exit 0 when clean, 1 on spec errors, 2 on usage or I/O errors.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        hparams: Hparams,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Compile a spec and print its graph.
    Compile {
        file: PathBuf,
        #[command(flatten)]
        hparams: Hparams,
        #[arg(long, value_enum, default_value = "graph")]
        emit: EmitArg,
        /// Render with this minijinja template instead (it receives `g`, the graph view).
        #[arg(long)]
        template: Option<PathBuf>,
    },
    /// Structural diff of two specs: exit 0 same architecture, 1 different, 2 error.
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[command(flatten)]
        hparams: Hparams,
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
    },
    /// Print the on-disk row format (JSON Lines) a spec's inputs expect.
    Schema {
        file: PathBuf,
        #[command(flatten)]
        hparams: Hparams,
        /// Apply the data set's data.toml dims first.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Simulate users with latent preferences and write a multi-feedback data set.
    Simulate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        users: Option<usize>,
        #[arg(long)]
        items: Option<usize>,
        #[arg(long)]
        impressions: Option<usize>,
        #[arg(long)]
        seed: Option<u64>,
        /// Max length T of each feedback sequence.
        #[arg(long)]
        seq_len: Option<usize>,
        /// Categorical fields per row.
        #[arg(long)]
        fields: Option<usize>,
        /// Probability that an impression the user would not click is clicked by accident.
        #[arg(long)]
        accidental_click_rate: Option<f64>,
        /// Probability that a liked impression is not clicked.
        #[arg(long)]
        liked_unclick_rate: Option<f64>,
        /// Multiplies every user's dislike propensity.
        #[arg(long)]
        dislike_rate_scale: Option<f64>,
    },
    /// Train a spec on a data set; checkpoints and metrics go to --out.
    Train {
        file: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        hparams: Hparams,
        /// Continue a run that was interrupted, after its last completed epoch.
        #[arg(long)]
        resume: bool,
        /// Skip (and count) malformed rows instead of stopping at the first.
        #[arg(long)]
        skip_bad_rows: bool,
        /// cpu (burn-flex), ndarray, or with the `tch` feature tch-cpu and cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        max_steps: Option<usize>,
        #[arg(long)]
        lr: Option<f64>,
        #[arg(long)]
        batch_size: Option<usize>,
        /// Seed of initialisation, dropout and sampling.
        #[arg(long)]
        seed: Option<u64>,
        /// Extra label streams to report in validation, comma-separated: `name` (scored as 1 - p)
        /// or `name=output`.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Evaluate a trained run on a data split; JSON on stdout.
    Eval {
        run: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "test")]
        split: String,
        /// Another run to compute RelaImpr against.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Extra label streams to report, comma-separated: `name` (scored as 1 - p) or
        /// `name=output` (scored by that output, e.g. `positive=p_up`).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        #[arg(long, value_delimiter = ',', default_value = "10,50")]
        k: Vec<usize>,
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        skip_bad_rows: bool,
    },
    /// Top-K items for each history in a JSON Lines file (one object per line holding the inputs
    /// the model's item scores depend on); JSON Lines on stdout.
    Recommend {
        run: PathBuf,
        #[arg(long = "user-history")]
        user_history: PathBuf,
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Leave out items already in the history's sequences.
        #[arg(long)]
        exclude_consumed: bool,
        /// The output that scores every item, when the model has several.
        #[arg(long)]
        output: Option<String>,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Responsiveness to dislikes by counterfactual simulation (NTR paper, section 4), and how
    /// often disliked items or creators are recommended again on held-out rows; JSON on stdout.
    Responsiveness {
        run: PathBuf,
        /// The simulated data set the run was trained on (items.jsonl, test split).
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 2000)]
        users: usize,
        /// k: the step at which the history branches.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// K: length of each recommendation list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also branch into a skip (a short view).
        #[arg(long)]
        skip_branch: bool,
        #[arg(long)]
        exclude_consumed: bool,
        /// The history sequence input, with `.dwell` and `.disliked` side features.
        #[arg(long, default_value = "history")]
        history: String,
        /// Where trajectories start: `empty` (the paper) or `test` (held-out users' histories).
        #[arg(long, default_value = "empty", value_parser = ["empty", "test"])]
        start: String,
        #[arg(long)]
        output: Option<String>,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(clap::Args)]
struct Hparams {
    /// Override a dim or param: `--set D=32` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// A TOML run config whose [hparams] table overrides dims and params.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum EmitArg {
    Graph,
    Json,
    Dot,
    Summary,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Text,
    Markdown,
}

/// Exit codes shared by all commands.
const OK: u8 = 0;
const USER_ERROR: u8 = 1;
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            USAGE_ERROR
        }
    };
    ExitCode::from(code)
}

fn overrides(h: &Hparams) -> Result<Vec<Override>, String> {
    // The config file comes first so that `--set` wins.
    let mut out = match &h.config {
        Some(p) => recspec::config::load_run_config(p)?.overrides,
        None => vec![],
    };
    for s in &h.set {
        out.push(recspec::config::parse_set(s)?);
    }
    Ok(out)
}

/// Compiles one file and prints its diagnostics to stderr.
fn compile(path: &Path, overrides: &[Override]) -> Result<Checked, String> {
    let (program, checked) = recspec::compile_file(path, overrides)?;
    if !checked.diagnostics.is_empty() {
        eprint!("{}", diag::render(&program.sources, &checked.diagnostics));
    }
    Ok(checked)
}

/// Compiles a spec for training on `data`: the data set's dims, then the run config, then `--set`.
fn build_graph(
    file: &Path,
    data: &Path,
    hparams: &Hparams,
    loss_weights: &std::collections::BTreeMap<String, f64>,
) -> Result<Option<(recspec::load::Program, recspec::ir::Graph)>, String> {
    let (program, checked) = recspec::runtime::run::compile_for_data(file, Some(data), &overrides(hparams)?)?;
    if !checked.diagnostics.is_empty() {
        eprint!("{}", diag::render(&program.sources, &checked.diagnostics));
    }
    let Some(mut graph) = checked.graph else { return Ok(None) };
    recspec::runtime::run::apply_loss_weights(&mut graph, loss_weights)?;
    Ok(Some((program, graph)))
}

/// Creates the run directory, or checks that a resumed run still has the same graph.
fn prepare_run_dir(out: &Path, resume: bool, graph: &recspec::ir::Graph) -> Result<(), String> {
    let started = out.join("state.json").exists();
    if started && !resume {
        return Err(format!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            out.display()
        ));
    }
    if started {
        let saved = std::fs::read_to_string(out.join("graph.txt")).unwrap_or_default();
        if saved != render::emit(graph, Emit::Graph)? {
            return Err(format!("the spec or its hyperparameters changed since {} was started; resume needs the same model (compare with {}/graph.txt)", out.display(), out.display()));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))
}

/// A trained run ready to recommend.
fn recommender(run: &Path, output: Option<&str>, device: &str) -> Result<recspec::runtime::serve::Recommender, String> {
    let device = recspec::runtime::parse_device(device)?;
    let (plan, _) = load_run(run)?;
    let weights = recspec::runtime::train::load_weights(&plan, run, &device)?;
    recspec::runtime::serve::Recommender::new(plan, weights, output, device)
}

/// Rebuilds a run's plan from its saved spec and settings.
fn load_run(dir: &Path) -> Result<(recspec::runtime::plan::Plan, recspec::config::RunConfig), String> {
    let config = recspec::config::load_run_config(&dir.join("run.toml"))?;
    let spec = dir.join("spec.recspec");
    let (program, checked) = recspec::compile_file(&spec, &config.overrides)?;
    let Some(mut graph) = checked.graph else {
        return Err(format!(
            "{} no longer compiles:\n{}",
            spec.display(),
            diag::render(&program.sources, &checked.diagnostics)
        ));
    };
    recspec::runtime::run::apply_loss_weights(&mut graph, &config.loss_weights)?;
    Ok((recspec::runtime::plan::Plan::new(graph)?, config))
}

fn counts(c: &Checked) -> (usize, usize) {
    let errors = c.diagnostics.iter().filter(|d| d.is_error()).count();
    (errors, c.diagnostics.len() - errors)
}

fn run(command: Command) -> Result<u8, String> {
    match command {
        Command::Check { files, hparams, deny_warnings } => {
            let overrides = overrides(&hparams)?;
            let (mut errors, mut warnings) = (0, 0);
            for f in &files {
                let checked = compile(f, &overrides)?;
                let (e, w) = counts(&checked);
                errors += e;
                warnings += w;
            }
            let s = |n: usize| if n == 1 { "" } else { "s" };
            eprintln!(
                "checked {} file{}: {errors} error{}, {warnings} warning{}",
                files.len(),
                s(files.len()),
                s(errors),
                s(warnings)
            );
            Ok(if errors > 0 || (deny_warnings && warnings > 0) { USER_ERROR } else { OK })
        }
        Command::Compile { file, hparams, emit, template } => {
            let checked = compile(&file, &overrides(&hparams)?)?;
            let Some(graph) = checked.graph else {
                if !checked.has_errors() {
                    eprintln!("error: {} has no model to compile", file.display());
                    return Ok(USAGE_ERROR);
                }
                return Ok(USER_ERROR);
            };
            let text = match template {
                Some(t) => render::render_user(&t, minijinja::context! { g => render::GraphView::new(&graph) })?,
                None => render::emit(
                    &graph,
                    match emit {
                        EmitArg::Graph => Emit::Graph,
                        EmitArg::Json => Emit::Json,
                        EmitArg::Dot => Emit::Dot,
                        EmitArg::Summary => Emit::Summary,
                    },
                )?,
            };
            print!("{text}");
            Ok(OK)
        }
        Command::Schema { file, hparams, data } => {
            let (program, checked) =
                recspec::runtime::run::compile_for_data(&file, data.as_deref(), &overrides(&hparams)?)?;
            if !checked.diagnostics.is_empty() {
                eprint!("{}", diag::render(&program.sources, &checked.diagnostics));
            }
            let Some(graph) = checked.graph else { return Ok(USER_ERROR) };
            print!("{}", recspec::data::Schema::from_graph(&graph)?.describe());
            Ok(OK)
        }
        Command::Simulate {
            out,
            users,
            items,
            impressions,
            seed,
            seq_len,
            fields,
            accidental_click_rate,
            liked_unclick_rate,
            dislike_rate_scale,
        } => {
            let mut cfg = recspec::simulate::SimConfig::default();
            cfg.users = users.unwrap_or(cfg.users);
            cfg.items = items.unwrap_or(cfg.items);
            cfg.impressions_per_user = impressions.unwrap_or(cfg.impressions_per_user);
            cfg.seed = seed.unwrap_or(cfg.seed);
            cfg.seq_len = seq_len.unwrap_or(cfg.seq_len);
            cfg.fields = fields.unwrap_or(cfg.fields);
            cfg.accidental_click_rate = accidental_click_rate.unwrap_or(cfg.accidental_click_rate);
            cfg.liked_unclick_rate = liked_unclick_rate.unwrap_or(cfg.liked_unclick_rate);
            cfg.dislike_rate_scale = dislike_rate_scale.unwrap_or(cfg.dislike_rate_scale);
            let summary = recspec::simulate::simulate(&cfg, &out)?;
            eprintln!("{summary}");
            Ok(OK)
        }
        Command::Train {
            file,
            data,
            out,
            hparams,
            resume,
            skip_bad_rows,
            device,
            epochs,
            max_steps,
            lr,
            batch_size,
            seed,
            labels,
            quiet,
        } => {
            let config = match &hparams.config {
                Some(p) => recspec::config::load_run_config(p)?,
                None => Default::default(),
            };
            let mut settings = config.train.clone().unwrap_or_default();
            settings.epochs = epochs.unwrap_or(settings.epochs);
            settings.max_steps = max_steps.or(settings.max_steps);
            settings.lr = lr.unwrap_or(settings.lr);
            settings.batch_size = batch_size.unwrap_or(settings.batch_size);
            settings.seed = seed.unwrap_or(settings.seed);
            if settings.batch_size == 0 || settings.epochs == 0 || settings.max_steps == Some(0) {
                return Err("--batch-size, --epochs and --max-steps must be at least 1".to_string());
            }
            if !(settings.lr.is_finite() && settings.lr > 0.0) {
                return Err(format!("--lr must be a positive number, found {}", settings.lr));
            }
            let Some((program, graph)) = build_graph(&file, &data, &hparams, &config.loss_weights)? else {
                return Ok(USER_ERROR);
            };
            if graph.losses.is_empty() {
                return Err(format!(
                    "{}: the model has no `loss` statement; there is nothing to train",
                    file.display()
                ));
            }
            prepare_run_dir(&out, resume, &graph)?;
            recspec::runtime::run::save_spec(&out, &file, &program)?;
            let settings_text = recspec::runtime::run::settings_toml(&graph, &settings, &data);
            recspec::runtime::run::write_atomic(&out.join("run.toml"), settings_text.as_bytes())?;
            let graph_text = render::emit(&graph, Emit::Graph)?;
            recspec::runtime::run::write_atomic(&out.join("graph.txt"), graph_text.as_bytes())?;
            let plan = recspec::runtime::plan::Plan::new(graph)?;
            eprintln!(
                "training {} ({} parameters) on {} with {:?}",
                file.display(),
                render::thousands(plan.trainable_count() as i64),
                data.display(),
                settings
            );
            let job = recspec::runtime::train::TrainJob {
                plan,
                settings,
                data: data.clone(),
                out: out.clone(),
                device: recspec::runtime::parse_device(&device)?,
                skip_bad_rows,
                extra_labels: labels,
                progress: !quiet,
            };
            let report = recspec::runtime::train::train(job)?;
            eprintln!(
                "done: {} epochs, {} steps, loss {:.4} -> {:.4}, {:.0} samples/s; run in {}",
                report.epochs,
                report.steps,
                report.first_loss.unwrap_or(f64::NAN),
                report.last_loss.unwrap_or(f64::NAN),
                report.samples_per_sec,
                out.display()
            );
            if let Some(v) = &report.valid {
                println!("{}", recspec::runtime::train::summary(v));
            }
            Ok(OK)
        }
        Command::Eval { run, data, split, baseline, labels, k, device, skip_bad_rows } => {
            let device = recspec::runtime::parse_device(&device)?;
            let file = recspec::runtime::run::data_file(&data, &split)?;
            let opts = recspec::runtime::eval::EvalOptions::new(1024, skip_bad_rows, &labels, k)?;
            let eval_run = |dir: &Path| -> Result<recspec::runtime::eval::EvalReport, String> {
                let (plan, _) = load_run(dir)?;
                let weights = recspec::runtime::train::load_weights(&plan, dir, &device)?;
                recspec::runtime::eval::evaluate(&plan, &weights, &file, &opts, &device)
            };
            let report = eval_run(&run)?;
            let mut json = serde_json::json!({ "run": run.display().to_string(), "data": file.display().to_string(), "report": report });
            if let Some(b) = baseline {
                let base = eval_run(&b)?;
                let mut rela = serde_json::Map::new();
                for (name, m) in &report.streams {
                    if let (Some(a), Some(c)) = (m.auc, base.streams.get(name).and_then(|x| x.auc)) {
                        rela.insert(name.clone(), serde_json::json!(recspec::metrics::rela_impr(a, c)));
                    }
                }
                json["baseline"] = serde_json::json!({ "run": b.display().to_string(), "report": base });
                json["relaimpr"] = serde_json::Value::Object(rela);
            }
            println!("{}", serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?);
            Ok(OK)
        }
        Command::Recommend { run, user_history, k, exclude_consumed, output, device } => {
            let rec = recommender(&run, output.as_deref(), &device)?;
            let mut rows = vec![];
            let mut lines = vec![];
            recspec::data::for_each_json_row(&user_history, |line, v| {
                rows.push(v);
                lines.push(line);
                Ok(true)
            })?;
            let mut out = String::new();
            for (chunk, chunk_lines) in rows.chunks(1024).zip(lines.chunks(1024)) {
                let lists = rec.top_k(chunk, k, exclude_consumed).map_err(|(r, m)| {
                    format!("{}:{}: {m} (inputs: {})", user_history.display(), chunk_lines[r], rec.inputs().join(", "))
                })?;
                for (line, list) in chunk_lines.iter().zip(lists) {
                    let items: Vec<i64> = list.iter().map(|p| p.item).collect();
                    let scores: Vec<f32> = list.iter().map(|p| p.score).collect();
                    out.push_str(&serde_json::json!({ "line": line, "items": items, "scores": scores }).to_string());
                    out.push('\n');
                }
            }
            print!("{out}");
            Ok(OK)
        }
        Command::Responsiveness {
            run,
            data,
            users,
            steps,
            top,
            seed,
            skip_branch,
            exclude_consumed,
            history,
            start,
            output,
            device,
        } => {
            use recspec::runtime::responsiveness as resp;
            let rec = recommender(&run, output.as_deref(), &device)?;
            let max_len = rec.sequence_len(&history).ok_or_else(|| {
                format!(
                    "the model's item scores do not read a sequence `{history}` (inputs: {})",
                    rec.inputs().join(", ")
                )
            })?;
            let items = resp::read_items(&data.join("items.jsonl"))?;
            let settings = resp::Settings { users, steps, top, seed, skip_branch, history, max_len, exclude_consumed };
            let test = recspec::runtime::run::data_file(&data, "test")?;
            let start = if start == "test" { Some(resp::start_histories(&test, &settings)?) } else { None };
            let mut report = resp::simulate(&rec, &items, &settings, start)?;
            report.rerecommend = Some(resp::rerecommend(&rec, &items, &test, &settings, 5000)?);
            println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            Ok(OK)
        }
        Command::Diff { old, new, hparams, format } => {
            let overrides = overrides(&hparams)?;
            let a = compile(&old, &overrides)?;
            let b = compile(&new, &overrides)?;
            let (Some(ga), Some(gb)) = (a.graph, b.graph) else {
                eprintln!("error: both specs must compile to be compared");
                return Ok(USAGE_ERROR);
            };
            let report = recspec::diff::diff(&ga, &gb);
            print!("{}", recspec::diff::render(&report, matches!(format, DiffFormat::Markdown))?);
            Ok(if report.same { OK } else { USER_ERROR })
        }
    }
}
