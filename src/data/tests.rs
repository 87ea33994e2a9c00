//! Unit tests of the data format: schema, round trips, and one test per validation error.

use super::*;
use std::path::{Path, PathBuf};

const TINY: &str = r#"
model tiny {
  dim T = 3;
  dim V = 10;
  dim F = 2;
  dim FV = 20;
  dim D = 4;
  input item: id[B] vocab V;
  input fields: id[B, F] vocab FV;
  input dense: float[B, 2, 2];
  input score: float[B];
  seq clicks: id[B, T] vocab V;
  side clicks.dwell: float[B, T];
  side clicks.emb: float[B, T, 2];
  label click, like;
  weight w;

  let items = Embedding(vocab: V, dim: D);
  let c = pool(items(clicks), mask: clicks.mask, mode: mean);
  let x = concat(items(item), c, flatten(Embedding(vocab: FV, dim: D)(fields), from: 1), flatten(dense, from: 1),
                 unsqueeze(score, axis: 1), pool(clicks.emb, mask: clicks.mask, mode: mean),
                 pool(unsqueeze(clicks.dwell, axis: 2), mask: clicks.mask, mode: sum), axis: -1);
  output p = sigmoid(Linear(out: 1)(x));
  loss click = bce(p, label: click, weight: w);
  loss like = nll(p, on: like);
}
"#;

fn schema() -> Schema {
    let (_, checked) = crate::compile_str("tiny.recspec", TINY, &[]);
    let diags: Vec<String> = checked.diagnostics.iter().map(|d| format!("{d:?}")).collect();
    let g = checked.graph.unwrap_or_else(|| panic!("tiny spec does not compile: {diags:#?}"));
    Schema::from_graph(&g).unwrap()
}

/// A temporary file removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str, text: &str) -> Tmp {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("recspec-data-{}-{tag}-{n}.jsonl", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Tmp(path)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const GOOD: &str = r#"{"user":1,"time":5,"item":3,"fields":[1,19],"dense":[1,2,3,4.5],"score":0.25,"clicks":[4,5],"clicks.dwell":[1.5,2],"clicks.emb":[[1,2],[3,4]],"labels":{"click":1,"like":0.0,"other":1},"weights":{"w":2},"extra":"ignored"}"#;

fn good_with(key: &str, value: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
    let obj = v.as_object_mut().unwrap();
    match key.split_once('.') {
        Some((group @ ("labels" | "weights"), k)) => {
            let g = obj.get_mut(group).unwrap().as_object_mut().unwrap();
            if value == "DELETE" {
                g.remove(k);
            } else {
                g.insert(k.to_string(), serde_json::from_str(value).unwrap());
            }
        }
        _ if value == "DELETE" => {
            obj.remove(key);
        }
        _ => {
            obj.insert(key.to_string(), serde_json::from_str(value).unwrap());
        }
    }
    v.to_string()
}

fn load_all(path: &Path, batch: usize, skip: bool) -> (Vec<HostBatch>, Result<(), DataError>, LoaderStats) {
    let mut l = Loader::open(path, &schema(), batch, skip).unwrap();
    let mut out = vec![];
    loop {
        match l.next_batch() {
            Ok(Some(b)) => out.push(b),
            Ok(None) => return (out, Ok(()), l.stats().clone()),
            Err(e) => return (out, Err(e), l.stats().clone()),
        }
    }
}

#[test]
fn schema_follows_the_graph() {
    let s = schema();
    let names: Vec<&str> = s.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["item", "fields", "dense", "score", "clicks", "clicks.dwell", "clicks.emb"]);
    let clicks = s.field("clicks").unwrap();
    assert_eq!(clicks.kind, FieldKind::Ids { vocab: 10 });
    assert_eq!(clicks.shape, vec![3]);
    assert_eq!(s.field("clicks.emb").unwrap().shape, vec![3, 2]);
    assert_eq!(s.field("clicks.emb").unwrap().sequence.as_deref(), Some("clicks"));
    assert_eq!(s.field("dense").unwrap().shape, vec![2, 2]);
    assert_eq!(s.labels, ["click", "like"]);
    assert_eq!(s.weights, ["w"]);
    let d = s.describe();
    assert!(d.contains("clicks.dwell") && d.contains("labels.click") && d.contains("weights.w"), "{d}");
    assert!(!d.contains("clicks.mask  "), "{d}");
}

#[test]
fn example_row_loads() {
    let s = schema();
    let t = Tmp::new("example", &format!("{}\n", s.example_row()));
    let (batches, r, _) = load_all(&t.0, 4, false);
    r.unwrap();
    assert_eq!(batches.len(), 1);
}

#[test]
fn rows_round_trip_with_padding_and_masks() {
    let second = good_with("clicks", "[]");
    let second = {
        let mut v: serde_json::Value = serde_json::from_str(&second).unwrap();
        v["clicks.dwell"] = serde_json::json!([]);
        v["clicks.emb"] = serde_json::json!([]);
        v["user"] = serde_json::json!(2);
        v.to_string()
    };
    let text = format!("\u{feff}{GOOD}\n   \n{second}\r\n{GOOD}");
    let t = Tmp::new("roundtrip", &text);
    let (batches, r, stats) = load_all(&t.0, 2, false);
    r.unwrap();
    assert_eq!(stats.rows, 3);
    assert_eq!(stats.bad_rows, 0);
    assert_eq!(batches.len(), 2);
    let b = &batches[0];
    assert_eq!(b.len, 2);
    assert_eq!(b.users, vec![1, 2]);
    let s = schema();
    let c = |name: &str| column(&s, b, name);
    assert_eq!(*c("item"), Column::ids(vec![3, 3], vec![2]));
    assert_eq!(*c("fields"), Column::ids(vec![1, 19, 1, 19], vec![2, 2]));
    assert_eq!(*c("clicks"), Column::ids(vec![4, 5, 0, 0, 0, 0], vec![2, 3]));
    assert_eq!(*c("clicks.mask"), Column::mask(vec![true, true, false, false, false, false], vec![2, 3]));
    assert_eq!(*c("clicks.dwell"), Column::floats(vec![1.5, 2.0, 0.0, 0.0, 0.0, 0.0], vec![2, 3]));
    assert_eq!(c("clicks.emb").shape, vec![2, 3, 2]);
    assert!(matches!(&c("clicks.emb").data, ColumnData::Floats(x) if x[..6] == [1.0, 2.0, 3.0, 4.0, 0.0, 0.0]));
    assert_eq!(*c("dense"), Column::floats(vec![1.0, 2.0, 3.0, 4.5, 1.0, 2.0, 3.0, 4.5], vec![2, 2, 2]));
    assert_eq!(*c("score"), Column::floats(vec![0.25, 0.25], vec![2]));
    assert_eq!(*c("w"), Column::floats(vec![2.0, 2.0], vec![2]));
    // Label columns in the schema's order: click, like.
    assert_eq!(b.labels, [vec![1.0, 1.0], vec![0.0, 0.0]]);
    assert_eq!(column(&s, &batches[1], "clicks").shape, vec![1, 3]);
    // Every program input has its column, in slot order.
    let names: Vec<&str> = s.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["item", "fields", "dense", "score", "clicks", "clicks.mask", "clicks.dwell", "clicks.emb", "w"]);
    assert!(b.inputs.len() == names.len() && b.inputs.iter().all(Option::is_some));
}

/// The column of the input `name` in a loaded batch.
fn column<'a>(schema: &Schema, b: &'a HostBatch, name: &str) -> &'a Column {
    b.inputs[schema.input(name).unwrap_or_else(|| panic!("no input `{name}`"))].as_ref().expect("a loaded column")
}

/// The ids of a column.
fn ids(c: &Column) -> &[i64] {
    match &c.data {
        ColumnData::Ids(x) => x,
        other => panic!("not ids: {other:?}"),
    }
}

/// Line 3 is bad (lines 1-2 good); asserts the error names the row and holds `fragment`.
fn assert_bad(bad: &str, fragment: &str) {
    let text = format!("{GOOD}\n\n{bad}\n{GOOD}\n");
    let t = Tmp::new("bad", &text);
    let (batches, r, stats) = load_all(&t.0, 8, false);
    let e = r.expect_err(bad);
    assert_eq!(e.row, 3, "{e}");
    assert!(e.message.contains(fragment), "`{}` lacks `{fragment}`", e.message);
    assert!(e.to_string().starts_with(&format!("{}:3: ", t.0.display())), "{e}");
    assert!(batches.is_empty());
    assert_eq!((stats.rows, stats.bad_rows), (1, 1));
}

#[test]
fn malformed_json() {
    assert_bad(r#"{"user":1,"#, "malformed JSON");
    assert_bad("[1, 2]", "expected a JSON object");
}

#[test]
fn missing_keys() {
    assert_bad(&good_with("user", "DELETE"), "missing key `user`");
    assert_bad(&good_with("fields", "DELETE"), "missing key `fields` (expected array of 2 ids in 0..20");
    assert_bad(&good_with("labels", "DELETE"), "missing key `labels`");
    assert_bad(&good_with("weights", "DELETE"), "missing key `weights`");
}

#[test]
fn wrong_json_types() {
    assert_bad(&good_with("item", "\"3\""), "`item`: expected an integer id in 0..10, found a string");
    assert_bad(&good_with("item", "2.5"), "`item`: expected an integer id in 0..10, found 2.5");
    assert_bad(&good_with("score", "null"), "`score`: expected a number, found null");
    assert_bad(&good_with("fields", "3"), "`fields`: expected an array of 2 values");
    assert_bad(&good_with("clicks", "{}"), "`clicks`: expected array of 0..=3 ids");
    assert_bad(&good_with("user", "-1"), "`user`: expected a non-negative integer, found -1");
    assert_bad(&good_with("labels", "[1]"), "`labels`: expected an object");
    assert_bad(&good_with("clicks.emb", "[1, 2]"), "`clicks.emb[0]`: expected an array of 2 values");
}

#[test]
fn sequence_longer_than_t() {
    assert_bad(&good_with("clicks", "[1,2,3,4]"), "`clicks`: sequence has 4 elements, longer than T = 3");
}

#[test]
fn side_feature_length_differs() {
    assert_bad(&good_with("clicks.dwell", "[1.0]"), "`clicks.dwell`: has 1 entries but its sequence `clicks` has 2");
}

#[test]
fn id_out_of_vocabulary() {
    assert_bad(&good_with("clicks", "[4, 10]"), "`clicks[1]`: id 10 is out of vocabulary (vocab size 10");
    assert_bad(&good_with("fields", "[1, -1]"), "`fields[1]`: id -1 is out of vocabulary");
    assert_bad(&good_with("item", "18446744073709551615"), "id 18446744073709551615 is out of vocabulary");
}

#[test]
fn labels_must_be_present_and_binary() {
    assert_bad(&good_with("labels.like", "DELETE"), "missing label `labels.like`");
    assert_bad(&good_with("labels.click", "0.5"), "`labels.click`: expected 0 or 1, found 0.5");
    assert_bad(&good_with("labels.click", "true"), "`labels.click`: expected 0 or 1, found `true`");
}

#[test]
fn weights_must_be_present_finite_and_non_negative() {
    assert_bad(&good_with("weights.w", "DELETE"), "missing weight `weights.w`");
    assert_bad(&good_with("weights.w", "-1"), "`weights.w`: expected a finite number >= 0, found -1");
    assert_bad(&good_with("weights.w", "1e39"), "`weights.w`: expected a finite number >= 0");
}

#[test]
fn floats_must_fit_f32() {
    assert_bad(&good_with("score", "1e39"), "`score`: 1e+39 is not a finite 32-bit float");
    assert_bad(&good_with("dense", "[1, 2, 3, -1e300]"), "`dense[3]`: -1e+300 is not a finite 32-bit float");
    assert_bad(&good_with("clicks.dwell", "[1, \"x\"]"), "`clicks.dwell[1]`: expected a number, found a string");
}

#[test]
fn fixed_shape_arrays_need_their_length() {
    assert_bad(&good_with("dense", "[1, 2, 3]"), "`dense`: expected an array of 4 values, found an array of 3");
    assert_bad(&good_with("fields", "[1, 2, 3]"), "`fields`: expected an array of 2 values, found an array of 3");
}

#[test]
fn invalid_utf8_is_a_bad_row() {
    let mut bytes = format!("{GOOD}\n\n").into_bytes();
    bytes.extend([0xff, 0xfe, b'\n']);
    let t = Tmp::new("utf8", "");
    std::fs::write(&t.0, bytes).unwrap();
    let (_, r, _) = load_all(&t.0, 8, false);
    let e = r.unwrap_err();
    assert_eq!(e.row, 3);
    assert!(e.message.contains("UTF-8"), "{e}");
}

#[test]
fn skip_bad_rows_counts_them() {
    let bad1 = good_with("item", "99");
    let bad2 = "not json";
    let text = format!("{GOOD}\n{bad1}\n{GOOD}\n{bad2}\n{GOOD}\n");
    let t = Tmp::new("skip", &text);
    let (batches, r, stats) = load_all(&t.0, 2, true);
    r.unwrap();
    assert_eq!(stats.rows, 3);
    assert_eq!(stats.bad_rows, 2);
    assert_eq!(stats.first_errors.iter().map(|e| e.row).collect::<Vec<_>>(), vec![2, 4]);
    assert_eq!(batches.iter().map(|b| b.len).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(count_rows(&t.0).unwrap(), 5);
}

#[test]
fn after_an_error_loading_continues_with_the_next_line() {
    let text = format!("{GOOD}\n{}\n{GOOD}\n", good_with("item", "99"));
    let t = Tmp::new("continue", &text);
    let mut l = Loader::open(&t.0, &schema(), 8, false).unwrap();
    assert_eq!(l.next_batch().unwrap_err().row, 2);
    assert_eq!(l.next_batch().unwrap().unwrap().len, 2);
    assert!(l.next_batch().unwrap().is_none());
}

#[test]
fn open_errors_are_row_zero() {
    let e = Loader::open(Path::new("/nonexistent/recspec.jsonl"), &schema(), 4, false).err().unwrap();
    assert_eq!(e.row, 0);
    assert!(e.message.contains("cannot open"), "{e}");
    let t = Tmp::new("zero", "");
    assert!(Loader::open(&t.0, &schema(), 0, false).is_err());
    let mut l = Loader::open(&t.0, &schema(), 4, false).unwrap();
    assert!(l.next_batch().unwrap().is_none());
}

#[test]
fn reserved_names_are_rejected() {
    let (_, checked) = crate::compile_str(
        "r.recspec",
        "model r { dim V = 4; input user: id[B] vocab V; label click; output p = sigmoid(reduce_sum(Embedding(vocab: V, dim: 2)(user), axis: 1)); loss click = bce(p, label: click); }",
        &[],
    );
    if let Some(g) = checked.graph {
        assert!(matches!(Schema::from_graph(&g).unwrap_err(), SchemaError::ReservedKey(_)));
    }
}

/// `n` valid rows whose `user` is their 0-based index, one per line, with a blank line after
/// every fifth.
fn numbered_rows(n: usize) -> String {
    (0..n)
        .map(|i| GOOD.replace("\"user\":1", &format!("\"user\":{i}")) + if i % 5 == 4 { "\n\n" } else { "\n" })
        .collect()
}

/// The users of every batch of `path` read with a shuffle buffer of `capacity` and `seed`.
fn shuffled_users(path: &Path, capacity: usize, seed: u64, batch: usize) -> Vec<u64> {
    let mut loader = Loader::open(path, &schema(), batch, false).unwrap().shuffled(capacity, seed);
    let mut users = vec![];
    while let Some(b) = loader.next_batch().unwrap() {
        users.extend(b.users);
    }
    users
}

/// The shuffle buffer written out plainly: the order the algorithm of `Loader::shuffled` gives.
fn expected_order(n: usize, capacity: usize, seed: u64) -> Vec<u64> {
    let mut rng = crate::rng::SplitMix(seed);
    let mut source = 0..n as u64;
    let mut buffer: Vec<u64> = source.by_ref().take(capacity).collect();
    let mut out = vec![];
    while !buffer.is_empty() {
        let j = rng.below(buffer.len());
        match source.next() {
            Some(next) => out.push(std::mem::replace(&mut buffer[j], next)),
            None => out.push(buffer.swap_remove(j)),
        }
    }
    out
}

#[test]
fn a_shuffled_epoch_is_a_seeded_permutation_of_the_rows() {
    let n = 37;
    let file = Tmp::new("shuffle", &numbered_rows(n));
    let in_order: Vec<u64> = (0..n as u64).collect();
    assert_eq!(shuffled_users(&file.0, 0, 5, 8), in_order, "a buffer of 0 reads the file in order");
    for capacity in [1, 4, 16, 37, 100] {
        let seed = crate::data::shuffle_seed(1, 1, 0);
        let order = shuffled_users(&file.0, capacity, seed, 8);
        assert_eq!(order, expected_order(n, capacity, seed), "buffer {capacity}: the documented algorithm");
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, in_order, "buffer {capacity}: every row once");
        assert_eq!(
            shuffled_users(&file.0, capacity, seed, 5),
            order,
            "buffer {capacity}: the batch size changes nothing"
        );
        if capacity > 1 {
            assert_ne!(order, in_order, "buffer {capacity} shuffles");
            let next_epoch = shuffled_users(&file.0, capacity, crate::data::shuffle_seed(1, 2, 0), 8);
            assert_ne!(order, next_epoch, "buffer {capacity}: each epoch has its own order");
        }
    }
}

#[test]
fn a_bad_row_leaving_the_shuffle_buffer_is_named_by_its_own_row() {
    let mut text = numbered_rows(12);
    text.push_str("{not json\n");
    text.push_str(&numbered_rows(3));
    let file = Tmp::new("shuffle-bad", &text);
    let mut loader = Loader::open(&file.0, &schema(), 4, false).unwrap().shuffled(6, 9);
    let err = loop {
        match loader.next_batch() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the bad row must be reported"),
            Err(e) => break e,
        }
    };
    // 12 rows with a blank line after every fifth: the bad row is line 15.
    assert_eq!(err.row, 15, "{err}");
    assert!(err.message.contains("malformed JSON"), "{err}");
}

const HASHED: &str = r#"
model hashed {
  dim T = 3;
  dim V = 1000;
  dim D = 4;
  input item: id[B] vocab V hashed;
  seq clicks: id[B, T] vocab V hashed;
  label click;
  let items = Embedding(vocab: V, dim: D);
  output p = sigmoid(dot(items(item), pool(items(clicks), mask: clicks.mask, mode: mean)));
  loss click = bce(p, label: click);
}
"#;

fn hashed_schema() -> Schema {
    let (_, checked) = crate::compile_str("hashed.recspec", HASHED, &[]);
    Schema::from_graph(&checked.graph.expect("the hashed spec compiles")).unwrap()
}

#[test]
fn hashed_ids_take_integers_and_strings_and_land_in_their_buckets() {
    let schema = hashed_schema();
    assert_eq!(schema.fields[0].kind, FieldKind::HashedIds { buckets: 1000 });
    let rows = concat!(
        r#"{"user":1,"item":"sku-123","clicks":[5, -7, 18446744073709551615],"labels":{"click":1}}"#,
        "\n",
        r#"{"user":2,"item":123456789012,"clicks":["a","b"],"labels":{"click":0}}"#,
        "\n"
    );
    let file = Tmp::new("hashed", rows);
    let mut loader = Loader::open(&file.0, &schema, 8, false).unwrap();
    let b = loader.next_batch().unwrap().unwrap();
    let bucket = |id| hash_bucket(id, 1000);
    let (item, seq) = (ids(column(&schema, &b, "item")), ids(column(&schema, &b, "clicks")));
    assert_eq!(item, [bucket(RawId::Str("sku-123")), bucket(RawId::Int(123456789012))]);
    // u64::MAX is the 64 bits of -1.
    let clicks = [bucket(RawId::Int(5)), bucket(RawId::Int(-7)), bucket(RawId::Int(-1))];
    assert_eq!(seq[..3], clicks);
    assert_eq!(seq[3..5], [bucket(RawId::Str("a")), bucket(RawId::Str("b"))]);
    assert!(item.iter().chain(seq).all(|i| (0..1000).contains(i)));

    for (bad, expect) in [("1.5", "found 1.5"), ("true", "found `true`"), ("null", "found null")] {
        let file = Tmp::new("hashed-bad", &format!(r#"{{"user":1,"item":{bad},"clicks":[],"labels":{{"click":1}}}}"#));
        let err = Loader::open(&file.0, &schema, 8, false).unwrap().next_batch().unwrap_err();
        assert_eq!(err.row, 1);
        assert!(
            err.message.contains("`item`: expected an integer or string id") && err.message.contains(expect),
            "{err}"
        );
    }
}

#[test]
fn hash_buckets_are_fixed_and_spread() {
    // The function is part of the data format: these values must never change (the Python
    // loader's test pins the same ones).
    // Id 0: SplitMix64's first output from seed 0, 0xE220A8397B1DCDAF, modulo 1,000,003.
    assert_eq!(hash_bucket(RawId::Int(0), 1_000_003), 4995);
    assert_eq!(hash_bucket(RawId::Str(""), 1 << 20), hash_bucket(RawId::Int(0xCBF2_9CE4_8422_2325u64 as i64), 1 << 20));
    // 200,000 consecutive integers in 1,000 buckets: each bucket within 25% of the mean.
    let mut counts = vec![0usize; 1000];
    for i in 0..200_000 {
        counts[hash_bucket(RawId::Int(i), 1000) as usize] += 1;
    }
    assert!(counts.iter().all(|c| (150..=250).contains(c)), "{:?}", (counts.iter().min(), counts.iter().max()));
}

/// A temporary folder of files (name, text), removed on drop.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str, files: &[(&str, &str)]) -> TmpDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("recspec-shards-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        TmpDir(dir)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Rows `from..to` of [`numbered_rows`]'s numbering (user = index), one per line.
fn rows_between(from: usize, to: usize) -> String {
    (from..to).map(|i| GOOD.replace("\"user\":1", &format!("\"user\":{i}")) + "\n").collect()
}

#[test]
fn a_folder_of_shards_reads_its_shards_in_name_order() {
    // Written out of order; `_SUCCESS` and `.crc` files (what Spark leaves beside its shards)
    // are skipped; an empty shard is allowed.
    let rows = [rows_between(0, 7), rows_between(7, 8), rows_between(8, 20)];
    let dir = TmpDir::new(
        "order",
        &[
            ("part-00002.jsonl", &rows[2]),
            ("part-00000.jsonl", &rows[0]),
            ("part-00001.jsonl", &rows[1]),
            ("part-00001b.jsonl", ""),
            ("_SUCCESS", ""),
            (".part-00000.jsonl.crc", "binary"),
        ],
    );
    let names: Vec<String> =
        shards(&dir.0).unwrap().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["part-00000.jsonl", "part-00001.jsonl", "part-00001b.jsonl", "part-00002.jsonl"]);
    assert_eq!(shuffled_users(&dir.0, 0, 1, 6), (0..20).collect::<Vec<u64>>(), "file order across shards");
    assert_eq!(count_rows(&dir.0).unwrap(), 20);
    let scan = scan_labels(&dir.0, &["click"]).unwrap();
    assert_eq!((scan.rows, scan.positives["click"]), (20, 20));
    let mut seen = vec![];
    for_each_row(&dir.0, |_, v| {
        seen.push(v["user"].as_u64().unwrap());
        Ok(seen.len() < 9)
    })
    .unwrap();
    assert_eq!(seen, (0..9).collect::<Vec<u64>>(), "for_each_row crosses shards and stops when told");
}

#[test]
fn a_shuffled_folder_draws_its_shard_order_then_shuffles_rows_across_shards() {
    let dir = TmpDir::new(
        "shuffle",
        &[("a.jsonl", &rows_between(0, 5)), ("b.jsonl", &rows_between(5, 9)), ("c.jsonl", &rows_between(9, 16))],
    );
    let seed = shuffle_seed(3, 1, 0);
    // The documented algorithm written out: the shards permuted, then the buffer over them,
    // from one generator.
    let mut rng = crate::rng::SplitMix(seed);
    let mut parts = vec![0..5u64, 5..9, 9..16];
    shuffle_shards(&mut parts, &mut rng);
    let mut source = parts.into_iter().flatten();
    let mut buffer: Vec<u64> = source.by_ref().take(4).collect();
    let mut expected = vec![];
    while !buffer.is_empty() {
        let j = rng.below(buffer.len());
        match source.next() {
            Some(next) => expected.push(std::mem::replace(&mut buffer[j], next)),
            None => expected.push(buffer.swap_remove(j)),
        }
    }
    let order = shuffled_users(&dir.0, 4, seed, 3);
    assert_eq!(order, expected);
    // A buffer of 1 yields rows in the drawn shard order unchanged: shards are permuted.
    let firsts = |order: Vec<u64>| order.into_iter().filter(|u| [0, 5, 9].contains(u)).collect::<Vec<u64>>();
    let orders: std::collections::BTreeSet<Vec<u64>> =
        (1..12).map(|epoch| firsts(shuffled_users(&dir.0, 1, shuffle_seed(3, epoch, 0), 3))).collect();
    assert!(orders.len() > 1, "the shard order changes with the epoch: {orders:?}");
}

#[test]
fn a_bad_row_in_a_shard_is_named_by_its_shard_and_row() {
    let dir = TmpDir::new(
        "bad",
        &[("0.jsonl", &rows_between(0, 3)), ("1.jsonl", &format!("{}{{not json\n", rows_between(3, 5)))],
    );
    let (batches, result, _) = load_all(&dir.0, 2, false);
    let err = result.unwrap_err();
    assert_eq!((err.file.file_name().unwrap().to_str(), err.row), (Some("1.jsonl"), 3), "{err}");
    assert_eq!(batches.iter().map(|b| b.len).sum::<usize>(), 4, "the full batches before it were read");
    let shuffled = Loader::open(&dir.0, &schema(), 2, false).unwrap().shuffled(3, 7);
    let mut shuffled = shuffled;
    let err = loop {
        match shuffled.next_batch() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the bad row must be reported"),
            Err(e) => break e,
        }
    };
    assert_eq!((err.file.file_name().unwrap().to_str(), err.row), (Some("1.jsonl"), 3), "shuffled: {err}");
}

#[test]
fn a_folder_that_is_not_a_split_is_refused_before_reading() {
    let empty = TmpDir::new("empty", &[("_SUCCESS", "")]);
    let stray = TmpDir::new("stray", &[("0.jsonl", &rows_between(0, 2)), ("notes.txt", "")]);
    let nested = TmpDir::new("nested", &[("0.jsonl", &rows_between(0, 2))]);
    std::fs::create_dir(nested.0.join("date=2026-12-01")).unwrap();
    for (dir, fragment) in [
        (&empty, "holds no shards"),
        (&stray, "`notes.txt` is not a shard"),
        (&nested, "`date=2026-12-01` is a folder"),
    ] {
        for err in [
            Loader::open(&dir.0, &schema(), 2, false).err().expect("refused"),
            count_rows(&dir.0).unwrap_err(),
            scan_labels(&dir.0, &[]).unwrap_err(),
        ] {
            assert_eq!((err.file.as_path(), err.row), (dir.0.as_path(), 0), "{err}");
            assert!(err.message.contains(fragment), "{err}");
        }
    }
}

/// A reader of some inputs gets batches with those inputs' columns and empty other slots; a
/// sequence read only through its mask is still loaded.
#[test]
fn a_schema_reading_only_some_inputs_leaves_the_others_empty() {
    let full = schema();
    let slot = |name: &str| full.input(name).unwrap();
    let (mask, score) = (slot("clicks.mask"), slot("score"));
    let s = full.reading_only(|i| i == mask || i == score);
    let names: Vec<&str> = s.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["score", "clicks"]);
    assert!(s.labels.is_empty() && s.weights.is_empty());
    let t = Tmp::new("reading-only", &format!("{GOOD}\n"));
    let b = Loader::open(&t.0, &s, 4, false).unwrap().next_batch().unwrap().unwrap();
    let present: Vec<&str> =
        s.inputs.iter().zip(&b.inputs).filter(|(_, c)| c.is_some()).map(|(i, _)| i.name.as_str()).collect();
    assert_eq!(present, ["score", "clicks", "clicks.mask"]);
    assert_eq!(*column(&s, &b, "score"), Column::floats(vec![0.25], vec![1]));
    assert_eq!(*column(&s, &b, "clicks.mask"), Column::mask(vec![true, true, false], vec![1, 3]));
}
