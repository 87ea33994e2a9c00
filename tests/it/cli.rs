//! The `recspec` binary: exit codes, outputs and overrides as a user sees them.

use std::process::{Command, Output};

fn recspec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recspec")).args(args).current_dir(crate::root()).output().expect("binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
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
    for emit in ["graph", "json", "dot", "summary"] {
        let o = recspec(&["compile", "specs/dfn.recspec", "--emit", emit]);
        assert_eq!(code(&o), 0, "{emit}: {}", stderr(&o));
        assert!(!stdout(&o).is_empty());
    }
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

    let dir = std::env::temp_dir().join(format!("recspec-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
    std::fs::remove_dir_all(dir).ok();
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
    let dir = std::env::temp_dir().join(format!("recspec-tpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
    std::fs::remove_dir_all(dir).ok();
}
