//! Parquet data sets: `recspec convert` round trips, the loader gives the same batches and
//! training the same losses as on JSON Lines, bad rows name `file:row` and the column, broken
//! files are clear errors, and `recspec import` reads Parquet events like CSV.

use crate::cli::{code, recspec, stderr};
use crate::Scratch;
use recspec::app::convert::convert;
use recspec::app::train::{train, TrainOptions};
use recspec::app::RunDir;
use recspec::config::TrainSettings;
use recspec::data::{jsonl_to_parquet, DataFormat, HostBatch, Loader, Schema};
use recspec::lower::{lower, Bindings, Program};
use recspec::simulate::{simulate, SimConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn temp(name: &str) -> Scratch {
    Scratch::new(&format!("parquet-{name}"))
}

/// A small simulated data set and its Parquet copy.
fn data_sets(name: &str) -> (Scratch, Scratch) {
    let jsonl = temp(&format!("{name}-jsonl"));
    let cfg =
        SimConfig { users: 60, items: 120, impressions_per_user: 30, seq_len: 8, seed: 5, ..SimConfig::default() };
    simulate(&cfg, &jsonl).unwrap();
    let parquet = temp(&format!("{name}-parquet"));
    let written = convert(&jsonl, DataFormat::Parquet, &parquet).unwrap();
    assert_eq!(written.iter().map(|c| c.split.as_str()).collect::<Vec<_>>(), ["train", "valid", "test"]);
    assert!(written.iter().all(|c| c.rows > 0), "{written:?}");
    assert!(parquet.join("data.toml").exists(), "other files are copied");
    assert!(!parquet.join("train.jsonl").exists());
    (jsonl, parquet)
}

fn dfn_plan(data: &Path) -> Program {
    let spec = crate::root().join("specs/dfn.recspec");
    let small =
        [recspec::overrides::Override::int("D", 8, "test"), recspec::overrides::Override::int("heads", 2, "test")];
    let (_, checked) = recspec::app::compile_for_data(&spec, Some(data), None, &small).unwrap();
    let graph = checked.graph.expect("dfn compiles on the simulated data");
    lower(&graph, &Bindings::of(&graph)).unwrap()
}

fn batches(file: &Path, schema: &Schema) -> Vec<HostBatch> {
    let mut loader = Loader::open(file, schema, 7, false).unwrap();
    let mut out = vec![];
    while let Some(b) = loader.next_batch().unwrap() {
        out.push(b);
    }
    out
}

fn rows(file: &Path) -> Vec<Value> {
    let mut out = vec![];
    recspec::data::for_each_row(file, |_, v| {
        out.push(v);
        Ok(true)
    })
    .unwrap();
    out
}

/// `v` with every number as a float (JSON's `0` and `0.0` compare equal).
fn numbers_as_floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::from(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(numbers_as_floats).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), numbers_as_floats(x))).collect()),
        other => other.clone(),
    }
}

#[test]
fn jsonl_to_parquet_and_back_gives_the_same_rows_and_batches() {
    let (jsonl, parquet) = data_sets("round");
    let schema = Schema::from_program(&dfn_plan(&jsonl)).unwrap();
    for split in ["train", "test"] {
        let a = batches(&jsonl.join(format!("{split}.jsonl")), &schema);
        let b = batches(&parquet.join(format!("{split}.parquet")), &schema);
        assert!(!a.is_empty() && a.len() == b.len(), "{} vs {} batches", a.len(), b.len());
        assert!(a == b, "{split}: the batches differ between JSON Lines and Parquet");
    }
    let back = temp("round-back");
    convert(&parquet, DataFormat::JsonLines, &back).unwrap();
    // A column holding any non-integer is DOUBLE, so an integer there comes back as `0.0`.
    let (original, round) = (rows(&jsonl.join("train.jsonl")), rows(&back.join("train.jsonl")));
    assert_eq!(original.len(), round.len());
    for (i, (a, b)) in original.iter().zip(&round).enumerate() {
        assert!(numbers_as_floats(a) == numbers_as_floats(b), "row {}: {a}\n!= {b}", i + 1);
    }
    let valid = rows(&parquet.join("valid.parquet"));
    assert!(valid.iter().map(numbers_as_floats).eq(rows(&jsonl.join("valid.jsonl")).iter().map(numbers_as_floats)));
}

/// The settings the DFN training comparisons share: one epoch of batches of 64 at seed 11.
fn dfn_settings() -> TrainSettings {
    TrainSettings { lr: 0.005, batch_size: 64, epochs: 1, seed: 11, ..TrainSettings::default() }
}

/// Trains DFN (small dims) on `data` into the run directory `out` on the CPU.
fn train_dfn(data: &Path, out: &Path, settings: TrainSettings) -> recspec::runtime::train::TrainReport {
    let options = TrainOptions {
        device: recspec::runtime::parse_device("cpu").unwrap(),
        skip_bad_rows: false,
        extra_labels: vec![],
        progress: false,
        init_from: None,
    };
    std::fs::create_dir_all(out).unwrap();
    train(&RunDir::open(out), dfn_plan(data), settings, data, options).unwrap()
}

#[test]
fn dfn_trains_to_the_same_losses_on_parquet() {
    let (jsonl, parquet) = data_sets("train");
    let settings = TrainSettings { max_steps: Some(12), ..dfn_settings() };
    let run = |data: &Path, out: &Path| train_dfn(data, out, settings.clone());
    let (ra, rb) = (temp("train-run-a"), temp("train-run-b"));
    let a = run(&jsonl, &ra);
    let b = run(&parquet, &rb);
    assert!(a.steps > 0 && a.steps == b.steps, "{} vs {} steps", a.steps, b.steps);
    assert!(a.epoch_losses.iter().all(|l| l.is_finite()), "{:?}", a.epoch_losses);
    assert_eq!(a.epoch_losses, b.epoch_losses, "same seed, same data, same losses");
}

/// A split may be a folder of shards in either format: DFN trains on the same rows in the same
/// order (file order: `shuffle_buffer` 0) to the same losses as on the one file, and `convert`
/// writes the folder shard by shard.
#[test]
fn dfn_trains_to_the_same_losses_on_a_folder_of_mixed_shards() {
    let (jsonl, _parquet) = data_sets("folder");
    let sharded = temp("folder-sharded");
    for name in ["valid.jsonl", "data.toml"] {
        std::fs::copy(jsonl.join(name), sharded.join(name)).unwrap();
    }
    let lines = rows(&jsonl.join("train.jsonl"));
    let folder = sharded.join("train");
    std::fs::create_dir(&folder).unwrap();
    let third = lines.len() / 3;
    let text = |part: &[Value]| part.iter().map(|v| format!("{v}\n")).collect::<String>();
    std::fs::write(folder.join("part-0.jsonl"), text(&lines[..third])).unwrap();
    parquet_file(&folder, "part-1", &lines[third..2 * third]);
    std::fs::write(folder.join("part-2.jsonl"), text(&lines[2 * third..])).unwrap();
    std::fs::write(folder.join("_SUCCESS"), "").unwrap();
    assert_eq!(recspec::data::count_rows(&folder).unwrap(), lines.len());

    let settings = TrainSettings { max_steps: None, shuffle_buffer: 0, ..dfn_settings() };
    let run = |data: &Path, out: &Path| train_dfn(data, out, settings.clone());
    let (ra, rb) = (temp("folder-run-a"), temp("folder-run-b"));
    let a = run(&jsonl, &ra);
    let b = run(&sharded, &rb);
    assert!(a.steps as usize == lines.len().div_ceil(64) && a.steps == b.steps, "{} vs {} steps", a.steps, b.steps);
    assert!(a.epoch_losses.iter().all(|l| l.is_finite()), "{:?}", a.epoch_losses);
    assert_eq!(a.epoch_losses, b.epoch_losses, "the same rows in the same order, the same losses");

    let converted = temp("folder-converted");
    let written = convert(&sharded, DataFormat::Parquet, &converted).unwrap();
    assert_eq!(written[0].file, converted.join("train"));
    assert_eq!(written[0].rows, lines.len());
    let names: Vec<String> = recspec::data::shards(&converted.join("train"))
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["part-0.parquet", "part-1.parquet", "part-2.parquet"]);
    let schema = Schema::from_program(&dfn_plan(&jsonl)).unwrap();
    assert_eq!(batches(&converted.join("train"), &schema), batches(&jsonl.join("train.jsonl"), &schema));
}

/// Writes `lines` (JSON rows) as `dir/name.parquet`.
fn parquet_file(dir: &Path, name: &str, lines: &[Value]) -> PathBuf {
    let src = dir.join(format!("{name}.jsonl"));
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&src, text).unwrap();
    let dst = dir.join(format!("{name}.parquet"));
    jsonl_to_parquet(&src, &dst).unwrap();
    std::fs::remove_file(src).unwrap();
    dst
}

#[test]
fn bad_parquet_rows_name_the_file_row_and_column() {
    let (jsonl, _parquet) = data_sets("bad");
    let schema = Schema::from_program(&dfn_plan(&jsonl)).unwrap();
    let good: Vec<Value> = rows(&jsonl.join("train.jsonl")).into_iter().take(5).collect();
    let dir = temp("bad-files");
    let mut out_of_vocab = good.clone();
    out_of_vocab[2]["item"] = Value::from(1_000_000);
    let file = parquet_file(&dir, "vocab", &out_of_vocab);
    let e = Loader::open(&file, &schema, 64, false).unwrap().next_batch().unwrap_err().to_string();
    assert!(
        e.ends_with("vocab.parquet:3: `item`: id 1000000 is out of vocabulary (vocab size 120: ids must be in 0..120)"),
        "{e}"
    );

    let mut too_long = good.clone();
    let seq = schema.fields.iter().find(|f| f.role == recspec::ir::InputRole::Sequence).unwrap();
    too_long[1][seq.name.as_str()] = Value::from(vec![0; seq.max_len() + 1]);
    let file = parquet_file(&dir, "long", &too_long);
    let e = Loader::open(&file, &schema, 64, false).unwrap().next_batch().unwrap_err().to_string();
    let want = format!(
        "long.parquet:2: `{}`: sequence has {} elements, longer than T = {}",
        seq.name,
        seq.max_len() + 1,
        seq.max_len()
    );
    assert!(e.ends_with(&want), "{e}\nwanted: {want}");

    let mut loader = Loader::open(&file, &schema, 64, true).unwrap();
    assert_eq!(loader.next_batch().unwrap().unwrap().len, 4, "--skip-bad-rows skips the bad row");
    assert_eq!((loader.stats().rows, loader.stats().bad_rows), (4, 1));

    let mut no_item = good.clone();
    no_item.iter_mut().for_each(|r| {
        r.as_object_mut().unwrap().remove("item");
    });
    let file = parquet_file(&dir, "noitem", &no_item);
    let e = Loader::open(&file, &schema, 64, false).err().expect("a missing column is an error").to_string();
    assert!(e.contains("noitem.parquet: missing column `item` (an id in 0..120)"), "{e}");
}

/// `recspec train` on a data set whose train split is broken: exit 2, one clear line.
fn train_fails(data: &Path) -> String {
    let out = data.join("run");
    let o = recspec(&[
        "train",
        "specs/dfn.recspec",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "D=8",
        "--max-steps",
        "1",
    ]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(!err.contains("panicked") && !err.contains("Error {") && !err.contains("General("), "{err}");
    err
}

#[test]
fn empty_truncated_and_ambiguous_parquet_splits_are_clear_errors() {
    let (jsonl, parquet) = data_sets("broken");
    let train = parquet.join("train.parquet");
    let bytes = std::fs::read(&train).unwrap();

    std::fs::write(&train, b"").unwrap();
    let e = train_fails(&parquet);
    assert!(e.contains("train.parquet: is empty (0 bytes), not a Parquet file"), "{e}");

    std::fs::write(&train, &bytes[..bytes.len() / 2]).unwrap();
    let e = train_fails(&parquet);
    assert!(e.contains("train.parquet: not a readable Parquet file (truncated or corrupt?)"), "{e}");

    std::fs::write(&train, &bytes).unwrap();
    std::fs::copy(jsonl.join("train.jsonl"), parquet.join("train.jsonl")).unwrap();
    let e = train_fails(&parquet);
    assert!(e.contains("the train split is in two places") && e.contains("train.jsonl and "), "{e}");
}

#[test]
fn import_reads_parquet_events_like_csv() {
    use crate::import::{files, import, scratch, FIXTURE};
    let mapping = Path::new(FIXTURE).join("mapping.toml");
    let (a, b, dir) = (scratch("pq-csv"), scratch("pq-parquet"), scratch("pq-events"));
    let o = import(&Path::new(FIXTURE).join("events.csv"), &mapping, &a, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let events = parquet_file(&dir, "events", &crate::import::fixture_events_json());
    let o = import(&events, &mapping, &b, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for name in fa.keys().filter(|k| !k.ends_with("data.toml")) {
        assert!(fa[name] == fb[name], "{name} differs between CSV and Parquet input");
    }
}

/// A Parquet split damaged as storage damages files: bytes overwritten at several places in
/// its row groups, and a footer whose metadata is garbled. Each is either read (the damage fell
/// on columns the spec does not read, or left valid values: Parquet without page checksums
/// cannot tell) or stops with an error naming the file, and for a damaged page the row group and
/// row; never a panic, never Rust debug text.
#[test]
fn parquet_damaged_in_its_row_groups_or_its_footer_is_named_never_a_panic() {
    let (_jsonl, parquet) = data_sets("damaged");
    let train = parquet.join("train.parquet");
    let bytes = std::fs::read(&train).unwrap();
    let n = bytes.len();
    let mut named = 0;
    for tenth in 1..10 {
        let mut damaged = bytes.clone();
        let at = n * tenth / 10;
        for b in &mut damaged[at..(at + 64).min(n - 8)] {
            *b ^= 0xA5;
        }
        std::fs::write(&train, &damaged).unwrap();
        let o = recspec(&[
            "train",
            "specs/din.recspec",
            "--data",
            parquet.to_str().unwrap(),
            "--out",
            parquet.join(format!("run-{tenth}")).to_str().unwrap(),
            "--set",
            "D=8",
            "--epochs",
            "1",
            "--quiet",
        ]);
        let err = stderr(&o);
        assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "byte {at}: {err}");
        match code(&o) {
            0 => {}
            2 => {
                assert!(err.contains("train.parquet"), "byte {at}: {err}");
                assert!(err.contains("row group 0 (rows 1-"), "byte {at}: the row group is named: {err}");
                assert!(!err.contains("Error {") && !err.contains("Some("), "{err}");
                named += 1;
            }
            other => panic!("byte {at}: exit {other}: {err}"),
        }
    }
    assert!(named >= 2, "some damage lands on the pages the spec reads: {named} of 9 named");

    // The footer's metadata garbled, the magic intact.
    let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    let mut lying = bytes.clone();
    for b in &mut lying[n - 8 - footer / 2..n - 8 - footer / 2 + 40] {
        *b ^= 0x5A;
    }
    std::fs::write(&train, &lying).unwrap();
    let e = train_fails(&parquet);
    assert!(e.contains("train.parquet: not a readable Parquet file"), "{e}");
}
