//! The `recspec` binary: exit codes, outputs and overrides as a user sees them.

use crate::Scratch;
use std::process::{Command, Output};

pub fn recspec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recspec")).args(args).current_dir(crate::root()).output().expect("binary runs")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn check_exit_codes() {
    let specs: Vec<String> = std::fs::read_dir(crate::root().join("specs"))
        .unwrap()
        .map(|e| format!("specs/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".recspec"))
        .collect();
    let mut args = vec!["check"];
    args.extend(specs.iter().map(String::as_str));
    let o = recspec(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("0 errors, 0 warnings"));

    let o = recspec(&["check", "tests/data/err/concat_dim_mismatch.recspec"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("tests/data/err/concat_dim_mismatch.recspec:7:"), "{}", stderr(&o));

    let o = recspec(&["check", "no/such/file.recspec"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no/such/file.recspec"));

    let o = recspec(&["check"]);
    assert_eq!(code(&o), 2, "usage error");
}

#[test]
fn compile_emits_every_format() {
    for emit in ["graph", "json", "dot", "summary", "pytorch"] {
        let o = recspec(&["compile", "specs/dfn.recspec", "--emit", emit]);
        assert_eq!(code(&o), 0, "{emit}: {}", stderr(&o));
        assert!(!stdout(&o).is_empty());
    }
    let module = stdout(&recspec(&["compile", "specs/dfn.recspec", "--emit", "pytorch"]));
    assert!(module.contains("class Dfn(nn.Module):") && module.contains("\"f_c/attended/query.weight\": ("));
    let o = recspec(&["compile", "tests/data/err/vocab_mismatch.recspec"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).is_empty());
}

#[test]
fn set_and_config_override_hyperparameters() {
    let o = recspec(&["compile", "specs/dfn.recspec", "--set", "D=32", "--emit", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = v["dims"].as_array().unwrap().iter().find(|d| d["name"] == "D").unwrap();
    assert_eq!(d["value"], 32);
    assert_eq!(d["overridden"], true);

    let dir = Scratch::new("cli");
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, "[hparams]\nD = 16\nlambda_d = 3.0\n").unwrap();
    let o =
        recspec(&["compile", "specs/dfn.recspec", "--config", cfg.to_str().unwrap(), "--set", "D=8", "--emit", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["dims"].as_array().unwrap().iter().find(|d| d["name"] == "D").unwrap()["value"],
        8,
        "--set wins over the config"
    );
    assert_eq!(v["losses"].as_array().unwrap().iter().find(|l| l["name"] == "dislike").unwrap()["weight"], "3.0");

    std::fs::write(&cfg, "[hparams]\nD = 16\n[hparam]\n").unwrap();
    let o = recspec(&["check", "specs/dfn.recspec", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("run.toml:3"), "{}", stderr(&o));

    let o = recspec(&["check", "specs/dfn.recspec", "--set", "Q=1"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--set Q=1"), "{}", stderr(&o));
}

#[test]
fn diff_exit_codes() {
    let o = recspec(&["diff", "specs/din.recspec", "specs/dfn.recspec"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("diff din -> dfn"));
    let o = recspec(&["diff", "specs/dfn.recspec", "specs/dfn.recspec", "--format", "markdown"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("No architectural changes"));
    let o = recspec(&["diff", "specs/dfn.recspec", "tests/data/err/vocab_mismatch.recspec"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn user_templates_render_the_graph_view() {
    let dir = Scratch::new("tpl");
    let t = dir.join("count.j2");
    std::fs::write(
        &t,
        "{{ g.model }} has {{ g.nodes | length }} nodes and {{ g.totals.params | thousands }} parameters\n",
    )
    .unwrap();
    let o = recspec(&["compile", "specs/fm.recspec", "--template", t.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("fm has "), "{}", stdout(&o));
    std::fs::write(&t, "{{ g.model ").unwrap();
    let o = recspec(&["compile", "specs/fm.recspec", "--template", t.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
}

fn tiny_data(name: &str) -> Scratch {
    let dir = Scratch::new(&format!("cli-{name}"));
    let o = recspec(&[
        "simulate",
        "--out",
        dir.to_str().unwrap(),
        "--users",
        "60",
        "--items",
        "50",
        "--impressions",
        "20",
        "--seq-len",
        "10",
        "--seed",
        "5",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    dir
}

/// `recspec train SPEC --data DATA --out RUN EXTRA...`.
fn train(spec: &str, data: &std::path::Path, run: &std::path::Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", spec, "--data", data.to_str().unwrap(), "--out", run.to_str().unwrap()];
    args.extend_from_slice(extra);
    recspec(&args)
}

#[test]
fn simulate_schema_train_and_eval() {
    let data = tiny_data("flow");
    let o = recspec(&["schema", "specs/dfn.recspec", "--data", data.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("clicks"), "{}", stdout(&o));
    let run = data.join("run-fm");
    let o =
        train("specs/fm.recspec", &data, &run, &["--epochs", "1", "--max-steps", "5", "--batch-size", "32", "--quiet"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("click AUC"), "{}", stdout(&o));
    for f in [
        "spec.recspec",
        "run.toml",
        "graph.txt",
        "model.epoch1.bpk",
        "optimizer.epoch1.bpk",
        "state.json",
        "metrics.jsonl",
    ] {
        assert!(run.join(f).exists(), "run lacks {f}");
    }
    let again = train("specs/fm.recspec", &data, &run, &[]);
    assert_eq!(code(&again), 2, "an existing run is not overwritten");
    let o = recspec(&[
        "eval",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--labels",
        "dislike",
        "--baseline",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let streams = &v["report"]["streams"];
    assert!(streams["click"]["auc"].is_number());
    assert_eq!(streams["dislike"]["scored_by"], "1 - p");
    assert_eq!(v["relaimpr"]["click"], 0.0, "a run against itself");
}

/// `recspec bench` prints one JSON line with every measurement, and exports a run's weights.
#[test]
fn bench_measures_and_export_writes_safetensors() {
    let data = tiny_data("bench");
    let d = data.to_str().unwrap();
    let o = recspec(&["bench", "specs/fm.recspec", "--data", d, "--steps", "2", "--warmup", "1", "--batch-size", "16"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in ["train_samples_per_s", "infer_us_per_example", "loader_rows_per_s", "peak_rss_mb"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    assert_eq!(v["program"], "recspec");
    assert_eq!(v["steps"], 2, "{v}");
    // A minimum window: one step asked for, more timed until they fill 0.3 s.
    let o = recspec(&["bench", "specs/fm.recspec", "--data", d, "--steps", "1", "--min-seconds", "0.3"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["steps"].as_u64().is_some_and(|n| n > 1), "{v}");
    assert!(v["seconds"].as_f64().is_some_and(|s| (0.3..30.0).contains(&s)), "{v}");
    let o = recspec(&["bench", "specs/fm.recspec", "--data", d, "--steps", "0"]);
    assert_eq!(code(&o), 2);
    for bad in ["NaN", "-1", "inf"] {
        let flag = format!("--min-seconds={bad}");
        let o = recspec(&["bench", "specs/fm.recspec", "--data", d, &flag]);
        assert_eq!(code(&o), 2, "{bad}");
        assert!(stderr(&o).contains("--min-seconds must be a finite number of seconds"), "{}", stderr(&o));
    }
    let run = data.join("run");
    let o =
        train("specs/fm.recspec", &data, &run, &["--epochs", "1", "--max-steps", "2", "--batch-size", "16", "--quiet"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let file = data.join("w.safetensors");
    let o = recspec(&["export", run.to_str().unwrap(), "--out", file.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let bytes = std::fs::read(&file).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(tensors.names().iter().any(|n| n.ends_with("/table")), "{:?}", tensors.names());
}

/// DLEN's convergence check: its latent P(UP) output scores the `positive` stream.
#[test]
fn eval_scores_a_label_by_a_named_output() {
    let data = tiny_data("dlen");
    let run = data.join("run-dlen");
    let o = train("specs/dlen.recspec", &data, &run, &["--epochs", "1", "--batch-size", "64", "--quiet"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let eval =
        |labels: &str| recspec(&["eval", run.to_str().unwrap(), "--data", data.to_str().unwrap(), "--labels", labels]);
    let o = eval("positive=p_up");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let streams = &v["report"]["streams"];
    assert_eq!(streams["positive"]["scored_by"], "p_up");
    assert!(streams["positive"]["auc"].is_number());
    for task in ["click", "like", "follow", "push", "comment"] {
        assert_eq!(streams[task]["scored_by"], format!("p_{task}"), "{task} is scored by its own tower");
    }
    let o = eval("positive=p_nope");
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no per-example output") && stderr(&o).contains("p_up"), "{}", stderr(&o));
    let o = eval("=p_up");
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("label=output"), "{}", stderr(&o));
}

#[test]
fn corrupt_rows_are_reported_by_file_and_row() {
    let data = tiny_data("corrupt");
    let train = data.join("train.jsonl");
    let mut text = std::fs::read_to_string(&train).unwrap();
    let good = text.lines().count();
    text.push_str("{\"user\": 1, \"item\": 99999}\n");
    text.push_str("not json\n");
    std::fs::write(&train, text).unwrap();
    let run = data.join("run");
    let args = [
        "train",
        "specs/fm.recspec",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "1",
        "--quiet",
    ];
    let o = recspec(&args);
    assert_eq!(code(&o), 2);
    // The training order is shuffled: the first bad row out of the buffer is named, by its own
    // row; in file order (no shuffle buffer) it is the first bad row of the file.
    let err = stderr(&o);
    assert!(
        err.contains(&format!("train.jsonl:{}: ", good + 1)) || err.contains(&format!("train.jsonl:{}: ", good + 2)),
        "{err}"
    );
    let mut in_order = args.to_vec();
    in_order.extend(["--shuffle-buffer", "0"]);
    let o = recspec(&in_order);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains(&format!("train.jsonl:{}:", good + 1)), "{}", stderr(&o));
    let mut skip = args.to_vec();
    skip.push("--skip-bad-rows");
    std::fs::remove_dir_all(&run).ok();
    let o = recspec(&skip);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("skipped 2 bad rows"), "{}", stderr(&o));
}

#[test]
fn a_killed_training_resumes_without_losing_a_completed_epoch() {
    let data = tiny_data("kill");
    let run = data.join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_recspec"))
        .args([
            "train",
            "specs/dfn.recspec",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--epochs",
            "1000",
            "--max-steps",
            "2",
        ])
        .args(["--batch-size", "16", "--set", "D=8", "--set", "heads=2", "--quiet"])
        .current_dir(crate::root())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = run.join("state.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let done = |p: &std::path::Path| -> usize {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["epochs_done"].as_u64())
            .unwrap_or(0) as usize
    };
    while done(&state) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = done(&state);
    assert!(before >= 2, "two epochs completed before the kill");
    let target = (before + 2).to_string();
    let o = train(
        "specs/dfn.recspec",
        &data,
        &run,
        &[
            "--resume",
            "--epochs",
            &target,
            "--max-steps",
            "2",
            "--batch-size",
            "16",
            "--set",
            "D=8",
            "--set",
            "heads=2",
            "--quiet",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("resuming {} after epoch {before}", run.display())), "{}", stderr(&o));
    assert_eq!(done(&state), before + 2);
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let epochs: Vec<u64> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs.last().copied(), Some(before as u64 + 2));
    // A changed model cannot resume this run.
    let o = train("specs/dfn.recspec", &data, &run, &["--resume", "--set", "D=16", "--set", "heads=2"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("changed"), "{}", stderr(&o));
}

#[test]
fn retrieval_heads_report_recall_and_ndcg() {
    let data = tiny_data("retrieval");
    let run = data.join("run");
    let o =
        train("tests/data/runtime/retrieval.recspec", &data, &run, &["--epochs", "1", "--batch-size", "32", "--quiet"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = recspec(&["eval", run.to_str().unwrap(), "--data", data.to_str().unwrap(), "--k", "5,50"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let head = &v["report"]["retrieval"]["loss/next"];
    assert!(head["examples"].as_u64().unwrap() > 0, "{v}");
    let (r5, r50) = (head["recall"]["@5"].as_f64().unwrap(), head["recall"]["@50"].as_f64().unwrap());
    assert!((0.0..=1.0).contains(&r5) && r50 == 1.0, "the corpus has 50 items, so recall@50 is 1: {head}");
    assert!(head["ndcg"]["@5"].as_f64().unwrap() <= r5);
}

/// The counterfactual branches share the history up to step k and differ only in the action on
/// the last item.
#[test]
fn counterfactual_branches_share_their_history() {
    use recspec::app::responsiveness::{branches, history_row, DwellScale, DwellSource, Step};
    let (long, skip) = (12.0, 1.5);
    let dwell = DwellScale { long_view_s: long, skip_view_s: skip, source: DwellSource::Flags };
    let history: Vec<Step> = (0..7).map(|i| Step { item: i * 3, dwell: long, disliked: i == 2 }).collect();
    let b = branches(&history, 40, true, &dwell);
    let names: Vec<&str> = b.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["positive", "positive+dislike", "skip"]);
    for (_, h) in &b {
        assert_eq!(&h[..7], &history[..], "identical history up to step k");
        assert_eq!(h[7].item, 40);
    }
    assert_eq!((b[0].1[7].disliked, b[1].1[7].disliked, b[2].1[7].disliked), (false, true, false));
    assert_eq!((b[0].1[7].dwell, b[1].1[7].dwell, b[2].1[7].dwell), (long, long, skip));
    // Rows keep the last T steps, with log1p dwell and 0/1 flags.
    let row = history_row("history", &b[1].1, 4);
    assert_eq!(row["history"], serde_json::json!([12, 15, 18, 40]));
    assert_eq!(row["history.disliked"], serde_json::json!([0, 0, 0, 1]));
    assert!((row["history.dwell"][3].as_f64().unwrap() - f64::ln_1p(long)).abs() < 1e-9);
}

#[test]
fn recommend_and_responsiveness_serve_a_trained_retrieval_run() {
    let data = tiny_data("serve");
    let run = data.join("run-ntr");
    let o = train("specs/retrieval_ntr.recspec", &data, &run, &["--epochs", "1", "--set", "D=8", "--quiet"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let hist = data.join("history.jsonl");
    std::fs::write(
        &hist,
        "{\"history\": [3, 4, 5], \"history.dwell\": [3.4, 3.4, 1.1], \"history.disliked\": [0, 1, 0]}\n\
         {\"history\": [], \"history.dwell\": [], \"history.disliked\": []}\n",
    )
    .unwrap();
    let recommend = |extra: &[&str]| {
        let mut args = vec!["recommend", run.to_str().unwrap(), "--user-history", hist.to_str().unwrap()];
        args.extend_from_slice(extra);
        recspec(&args)
    };
    let o = recommend(&["--k", "7", "--exclude-consumed"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let items: Vec<i64> = lines[0]["items"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(items.len(), 7);
    assert!(items.iter().all(|i| ![3, 4, 5].contains(i)), "consumed items are excluded: {items:?}");
    let scores: Vec<f64> = lines[0]["scores"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
    // The same histories as Parquet give the same lists.
    let parquet = data.join("history.parquet");
    recspec::data::jsonl_to_parquet(&hist, &parquet).unwrap();
    let mut args = vec!["recommend", run.to_str().unwrap(), "--user-history", parquet.to_str().unwrap()];
    args.extend_from_slice(&["--k", "7", "--exclude-consumed"]);
    let from_parquet = recspec(&args);
    assert_eq!(code(&from_parquet), 0, "{}", stderr(&from_parquet));
    assert_eq!(stdout(&from_parquet), stdout(&o));
    // Without exclusion the consumed items compete again; the lists are still K long.
    let o = recommend(&["--k", "50"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().next().map(|l| l.matches(',').count()), Some(50 * 2));
    // A history row without the model's inputs is reported by file and line.
    std::fs::write(&hist, "{\"history\": [1]}\n{\"history.dwell\": []}\n").unwrap();
    let o = recommend(&[]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("history.jsonl:1:") && stderr(&o).contains("history.dwell"), "{}", stderr(&o));

    let respond = || {
        recspec(&[
            "responsiveness",
            run.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--users",
            "30",
            "--steps",
            "6",
            "--top",
            "5",
            "--skip-branch",
        ])
    };
    let (a, b) = (respond(), respond());
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    assert_eq!(stdout(&a), stdout(&b), "deterministic per seed");
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let branches = v["branches"].as_array().unwrap();
    assert_eq!(branches.len(), 3);
    assert!(branches[0]["responsiveness_content"].is_null());
    let r = &branches[1]["responsiveness_content"];
    assert!(r["lo"].as_f64().unwrap() <= r["value"].as_f64().unwrap());
    assert!(r["value"].as_f64().unwrap() <= r["hi"].as_f64().unwrap());
    assert!(v["rerecommend"]["rows"].as_u64().is_some());
    assert_eq!(v["start"], "empty");
    // The simulated dwell is the training split's, positive and ordered; flags override it.
    assert_eq!(v["dwell"]["source"], "train_split", "{}", v["dwell"]);
    let (long, skip) = (v["dwell"]["long_view_s"].as_f64().unwrap(), v["dwell"]["skip_view_s"].as_f64().unwrap());
    assert!(0.0 < skip && skip <= long, "{}", v["dwell"]);
    let with_flags = |extra: &[&str]| {
        let mut args = vec!["responsiveness", run.to_str().unwrap(), "--data", data.to_str().unwrap()];
        args.extend_from_slice(&["--users", "5", "--steps", "2", "--top", "3"]);
        args.extend_from_slice(extra);
        recspec(&args)
    };
    let o = with_flags(&["--long-view", "45", "--skip-view", "1.5"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dwell"], serde_json::json!({"long_view_s": 45.0, "skip_view_s": 1.5, "source": "flags"}));
    let o = with_flags(&["--long-view=0"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--long-view must be a positive number of seconds"), "{}", stderr(&o));
    // Trajectories may start from held-out users' histories instead.
    let o = recspec(&[
        "responsiveness",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--users",
        "10",
        "--steps",
        "2",
        "--start",
        "test",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["start"].as_str(), v["branches"].as_array().unwrap().len()), (Some("test"), 2));
}

#[test]
fn memory_is_known_before_training() {
    let o = recspec(&["check", "--verbose", "specs/dfn.recspec"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("specs/dfn.recspec: model `dfn`: "), "{err}");
    assert!(err.contains("a training step at batch 256 with adam needs about"), "{err}");
    assert!(err.contains("per example"), "{err}");
    let card = stdout(&recspec(&["compile", "specs/dfn.recspec", "--emit", "summary"]));
    assert!(card.contains("## Memory") && card.contains("| **one training step** |"), "{card}");

    // A model that cannot fit is refused before the run directory exists, naming its largest parts.
    let data = tiny_data("huge");
    let run = data.join("run");
    let o = train("specs/dfn.recspec", &data, &run, &["--set", "D=1000000000000", "--epochs", "1"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("model `dfn` needs about"), "{err}");
    assert!(err.contains("but this machine has"), "{err}");
    assert!(err.contains("the largest components are `") && err.contains("(parameters, "), "{err}");
    assert!(!err.contains("panicked") && !err.contains("memory allocation"), "{err}");
    assert!(!run.exists(), "a refused run writes nothing");

    // So is an embedding table with its optimizer state beyond the machine, row-sparse or not.
    for rule in ["lazy", "rowwise_adagrad"] {
        let o = train(
            "specs/dfn.recspec",
            &data,
            &run,
            &["--set", "V=100000000000", "--epochs", "1", "--embedding-optimizer", rule],
        );
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("model `dfn` needs about") && err.contains("`items` (parameters, "), "{rule}: {err}");
        assert!(!err.contains("panicked") && !err.contains("memory allocation"), "{err}");
        assert!(!run.exists(), "a refused run writes nothing");
    }
}

#[test]
fn data_training_cannot_learn_from_is_refused_before_the_run_starts() {
    let data = tiny_data("unlearnable");
    let train_file = data.join("train.jsonl");
    let rows = std::fs::read_to_string(&train_file).unwrap();

    // No dislike anywhere: DFN's dislike loss has nothing to learn from.
    std::fs::write(&train_file, rows.replace("\"dislike\":1", "\"dislike\":0")).unwrap();
    let run = data.join("run");
    let o = train("specs/dfn.recspec", &data, &run, &["--epochs", "1"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("train.jsonl: label `dislike` is 0 in all"), "{err}");
    assert!(err.contains("loss `dislike` has no positive"), "{err}");
    assert!(!run.exists(), "a refused run writes nothing");
    // ... unless the run config switches that loss off.
    let config = data.join("no_dislike.toml");
    std::fs::write(&config, "[loss_weights]\ndislike = 0.0\n").unwrap();
    let off = data.join("run_off");
    let o = train(
        "specs/dfn.recspec",
        &data,
        &off,
        &["--config", config.to_str().unwrap(), "--epochs", "1", "--max-steps", "2", "--quiet"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // An empty training split used to train 0 steps and print `loss NaN -> NaN`.
    std::fs::write(&train_file, "\n").unwrap();
    let o = train("specs/dfn.recspec", &data, &run, &["--epochs", "1"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("train.jsonl: no rows"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("NaN"));

    // An empty validation split.
    std::fs::write(&train_file, &rows).unwrap();
    std::fs::write(data.join("valid.jsonl"), "").unwrap();
    let o = train("specs/dfn.recspec", &data, &run, &["--epochs", "1"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("valid.jsonl: no rows"), "{}", stderr(&o));
}

#[test]
fn snapshot_checks_and_updates_the_files_beside_a_spec() {
    let dir = Scratch::new("cli-snapshot");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    let spec = dir.join("nested/fm.recspec");
    std::fs::copy(crate::root().join("specs/fm.recspec"), &spec).unwrap();
    // A block library beside it has no graph: no snapshot, and not an error.
    std::fs::copy(crate::root().join("std/attention.recspec"), dir.join("nested/blocks.recspec")).unwrap();
    let d = dir.to_str().unwrap();

    let o = recspec(&["snapshot", d]);
    assert_eq!(code(&o), 1, "missing snapshots: {}", stderr(&o));
    assert!(stderr(&o).contains("missing") && stderr(&o).contains("fm.graph.snap"), "{}", stderr(&o));
    let o = recspec(&["snapshot", "--update", d]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let graph = std::fs::read_to_string(dir.join("nested/snapshots/fm.graph.snap")).unwrap();
    let compiled = stdout(&recspec(&["compile", spec.to_str().unwrap()]));
    assert_eq!(graph, format!("---\nsource: fm.recspec\n---\n{compiled}"));
    let card = std::fs::read_to_string(dir.join("nested/snapshots/fm.summary.snap")).unwrap();
    assert!(card.contains("## Memory"));
    let o = recspec(&["snapshot", "--check", d]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("2 snapshots unchanged, 0 missing or changed"), "{}", stderr(&o));

    // An architecture change is exit 1 with a unified diff of the canonical graph.
    let text = std::fs::read_to_string(&spec).unwrap().replace("dim D = 64;", "dim D = 32;");
    std::fs::write(&spec, text).unwrap();
    let o = recspec(&["snapshot", d]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("-  D = 64\n+  D = 32\n"), "{}", stdout(&o));
    assert_eq!(code(&recspec(&["snapshot", "--update", "--check", d])), 2, "the two modes conflict");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = recspec(&["snapshot", empty.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "a folder without specs checks nothing: {}", stderr(&o));
    assert!(stderr(&o).contains("no `.recspec` files in"), "{}", stderr(&o));
}

/// A disk that fills up while a later epoch's checkpoint is written (simulated with a file-size
/// limit, `ulimit -f`, under which a write past the limit fails with EFBIG): the run stops with
/// an error naming the file, no temporary file is left, and the last committed epoch stays
/// loadable (`state.json` still names it and `recspec eval` reads it).
#[cfg(unix)]
#[test]
fn a_disk_full_during_a_checkpoint_keeps_the_last_committed_epoch() {
    let dir = Scratch::new("diskfull");
    let (data, run) = (dir.join("data"), dir.join("run"));
    let o = recspec(&["simulate", "--out", data.to_str().unwrap(), "--users", "60", "--impressions", "10"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let train = |extra: &str| -> Output {
        // SIGXFSZ ignored (inherited through exec), so a write past the limit fails with EFBIG
        // instead of killing the process: what a full disk looks like to the program.
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "trap '' XFSZ; {extra} exec \"$0\" train specs/din.recspec --data \"$1\" --out \"$2\" --set D=32 --max-steps 2 --quiet \"${{@:3}}\"",
            ))
            .arg(env!("CARGO_BIN_EXE_recspec"))
            .arg(&data)
            .arg(&run)
            .args(if extra.is_empty() { vec!["--epochs", "2"] } else { vec!["--resume", "--epochs", "3"] })
            .current_dir(crate::root())
            .output()
            .expect("bash runs")
    };
    let o = train("");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let model = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_name().to_string_lossy().starts_with("model.epoch"))
        .expect("a model checkpoint");
    let size_kib = model.metadata().unwrap().len() / 1024;
    assert!(size_kib > 8, "the checkpoint is {size_kib} KiB");
    // Files up to half the checkpoint's size can still be written (state.json, metrics).
    let o = train(&format!("ulimit -f {};", size_kib / 2));
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("cannot write") && err.contains("model.epoch3.bpk.tmp") && err.contains("File too large"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let leftovers: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["epochs_done"], 2, "{state}");
    let o = recspec(&["eval", run.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "the committed epoch loads: {}", stderr(&o));

    // A failure at the commit point itself: every checkpoint file of epoch 3 is written, and
    // `state.json` cannot be (its temporary name is taken by a directory). The run stops naming
    // it, epoch 2 stays the committed one with its files, and once the cause is gone a resume
    // trains epoch 3 again and commits it.
    let blocker = run.join("state.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let resume = ":;"; // no file-size limit, and a non-empty prefix: --resume --epochs 3
    let o = train(resume);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("state.json.tmp") && !err.contains("panicked"), "{err}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["epochs_done"], 2, "{state}");
    let o = recspec(&["eval", run.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "epoch 2 still loads after a failed commit: {}", stderr(&o));
    std::fs::remove_dir(&blocker).unwrap();
    let o = train(resume);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["epochs_done"], 3, "{state}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "one metrics line per committed epoch: {metrics}");
}

#[test]
fn device_names_are_checked_before_any_work() {
    // An unknown device is a usage error naming the choices, before the spec or data are read.
    let o =
        recspec(&["train", "specs/dfn.recspec", "--data", "no/such/data", "--out", "no/such/run", "--device", "gpu"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown device `gpu`; choose one of cpu, ndarray, tch-cpu, cuda"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("Options("), "no Debug text: {}", stderr(&o));
    // The libtorch devices name the feature they need in a build without it.
    if !cfg!(feature = "tch") {
        for device in ["tch-cpu", "cuda"] {
            let o = recspec(&["eval", "no/such/run", "--data", "no/such/data", "--device", device]);
            assert_eq!(code(&o), 2, "{}", stderr(&o));
            assert!(stderr(&o).contains(&format!("--device {device} needs libtorch")), "{}", stderr(&o));
        }
    }
}
