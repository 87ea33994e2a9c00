//! Mapping validation on the import fixture's mapping and one-line edits of it: each mistake is
//! reported at its line.

use super::*;

const FIXTURE: &str = include_str!("../../../tests/data/import/mapping.toml");

fn parse_edit(from: &str, to: &str) -> Result<Mapping, String> {
    assert!(FIXTURE.contains(from), "the fixture lacks {from:?}");
    parse(Path::new("map.toml"), &FIXTURE.replacen(from, to, 1)).map_err(|e| e.to_string())
}

#[test]
fn the_fixture_mapping_reads_in_declaration_order() {
    let m = parse(Path::new("dir/map.toml"), FIXTURE).unwrap();
    let labels: Vec<&str> = m.labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(labels, ["click", "unclick", "like", "dislike", "skip", "engaged", "follow", "push", "comment"]);
    let seqs: Vec<&str> = m.sequences.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(seqs, ["clicks", "unclicks", "likes", "dislikes", "skips", "history"]);
    let columns: Vec<&str> = m.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["user_id", "item_id", "ts", "action", "dwell", "device"], "each event column once");
    let history = &m.sequences[5];
    let sides: Vec<&str> = history.sides.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(sides, ["dwell", "disliked", "raw_dwell"]);
    assert!(matches!(history.sides[0].kind, SideKind::Column { transform: Transform::Log1p, .. }));
    let SideKind::Flag { rule } = history.sides[1].kind else { panic!("a flag") };
    assert_eq!(m.rules[rule].gate, Some(history.when), "a flag is evaluated where its sequence's rule holds");
    assert_eq!(m.users.as_ref().unwrap().file, Path::new("dir/users.csv"), "table files are relative to the mapping");
    let fields = m.fields.as_ref().unwrap();
    assert_eq!((fields.key.as_str(), fields.size_dim.as_str(), fields.vocab_dim.as_str()), ("fields", "F", "FV"));
    assert_eq!(fields.columns[0].source, ValueSource::Event(0));
    assert_eq!(fields.columns[1].source, ValueSource::User(0));
    assert_eq!(m.profile.as_ref().unwrap().columns[0].source, ValueSource::User(0), "one joined column, shared");
    assert_eq!((m.cluster, m.creator), (Some(0), Some(1)), "the item columns [fields] joins already");
    assert_eq!(m.split, Split::Time { valid: 0.15, test: 0.15 });
    assert_eq!(m.rules[0].origin, "[labels] click (dir/map.toml:11)");
}

#[test]
fn mistakes_name_their_line() {
    for (from, to, want) in [
        ("user = \"user_id\"", "usr = \"user_id\"", "map.toml:6: unknown field `usr`, expected one of"),
        ("[events]\n", "[event]\n", "map.toml:5: unknown field `event`"),
        ("user = \"user_id\"", "user = \"\"", "map.toml:6: user must not be empty"),
        ("click = 'action == \"click\"", "click = 'action = \"click\"", "map.toml:11: [labels] click: at character 8 of the rule: `=` is not an operator"),
        ("push = \"false\"", "push = \"dwell > \\\"x\\\"\"", "map.toml:18: [labels] push: at character 7 of the rule: text compares only with == or !=, not >"),
        ("push = \"false\"", "push = 3", "map.toml:18: invalid type: integer `3`, expected a string"),
        ("length = 6\n\n[sequences.clicks.side]", "length = 0\n\n[sequences.clicks.side]", "map.toml:23: [sequences.clicks] length must be in 1..=10000"),
        ("when = 'action == \"none\"'\nlength = 6", "when = 'action == \"none\"'\nlength = 7", "map.toml:31: [sequences.unclicks] length 7 differs from 6 of `clicks`, which shares dim T; set `dim` to another name"),
        ("when = 'action == \"none\"'\nlength = 6", "when = 'action == \"none\"'\nlength = 6\ncolor = 1", "map.toml:32: unknown field `color`"),
        ("skipped = { when = \"dwell < 5\" }", "skipped = { when = 5 }", "map.toml:27: [sequences.clicks.side] skipped must be a float column name"),
        ("skipped = { when = \"dwell < 5\" }", "skipped = { column = \"dwell\", transform = \"log\" }", "map.toml:27: [sequences.clicks.side] skipped: transform must be \"none\" or \"log1p\""),
        ("[sequences.skips]", "[sequences.labels]", "map.toml:41: `labels` is a key the data format reserves"),
        ("[sequences.skips]", "[sequences.clicks-2]", "map.toml:41: sequence `clicks-2`: names are letters, digits and `_`"),
        ("[profile]\ncolumns", "[profile]\nkey = \"clicks\"\ncolumns", "map.toml:58: key `clicks` would be written twice"),
        ("[profile]\ncolumns", "[profile]\nvocab = \"FV\"\ncolumns", "map.toml:58: dim `FV` would be written twice"),
        ("\"item.creator\"]", "\"item.creator\", \"device\"]", "map.toml:55: [fields] lists column `device` twice"),
        ("\"item.creator\"]", "\"item.year\", \"user.zip\"]", ""),
        ("[users]\nfile = \"users.csv\"\nkey = \"user_id\"\n", "", "map.toml:55: `user.age` names a column of the user table, but there is no [users] table"),
        ("[fields]\ncolumns", "[fields]\nx = 1\ncolumns", "map.toml:55: unknown field `x`"),
        ("[items]\nfile", "[items]\nformat = \"xlsx\"\nfile", "map.toml:65: format must be one of csv, tsv, jsonl, parquet, found \"xlsx\""),
        ("[items]\nfile", "[items]\ndelimiter = \";;\"\nfile", "map.toml:65: delimiter must be one ASCII character"),
        ("[items]\nfile", "[items]\nformat = \"jsonl\"\ndelimiter = \";\"\nfile", "map.toml:66: delimiter does not apply to JSON Lines"),
        ("method = \"time\"", "method = \"random\"", "map.toml:71: [split] method must be \"time\" or \"leave_last_out\", found \"random\""),
        ("valid = 0.15\n", "", "map.toml:71: [split] method \"time\" needs `valid` and `test` fractions"),
        ("valid = 0.15", "valid = 0.9", "map.toml:73: valid + test must be below 1"),
        ("valid = 0.15", "valid = 0", "map.toml:72:"),
        ("method = \"time\"", "method = \"leave_last_out\"", "map.toml:72: [split] method \"leave_last_out\" takes no fractions"),
        ("[split]", "[output]\nitem = \"labels\"\n\n[split]", "map.toml:71: `labels` is a key the data format reserves"),
        ("[split]", "[output]\nitem = \"the item\"\n\n[split]", "map.toml:71: key `the item`: names are letters, digits and `_`"),
        ("push = \"false\"", "\"push it\" = \"false\"", "map.toml:18: label `push it`: names are letters, digits and `_`"),
        ("[split]", "[output]\nitem_buckets = 0\n\n[split]", "map.toml:71: [output] item_buckets must be in 1..=1099511627776, found 0"),
        ("[split]", "[output]\nitem_buckets = 1099511627777\n\n[split]", "map.toml:71: [output] item_buckets must be in 1..=1099511627776"),
        ("[split]", "[output]\nitem_buckets = 1000\n\n[split]", "map.toml:71: [output] item_buckets hashes item keys, so items have no vocabulary ids for items.jsonl's `cluster` and `creator`"),
        ("[split]", "[output]\nitem_min_count = 0\n\n[split]", "map.toml:71: [output] item_min_count must be in 1..=4294967295, found 0"),
        ("cluster = \"genres\"\ncreator = \"creator\"\n\n[split]", "\n[output]\nitem_buckets = 9\nitem_min_count = 2\n\n[split]", "map.toml:70: [output] item_min_count counts items for their vocabulary ids, which item_buckets replaces"),
        ("cluster = \"genres\"\ncreator = \"creator\"\n\n[split]", "\n[output]\nitem_buckets = 1000\n\n[split]", ""),
    ] {
        let result = parse_edit(from, to);
        if want.is_empty() {
            assert!(result.is_ok(), "{to}: {}", result.unwrap_err());
            continue;
        }
        let e = result.map(|_| ()).unwrap_err();
        assert!(e.starts_with(want), "{to:?}:\n  want {want}\n  got  {e}");
    }
}

#[test]
fn a_mapping_needs_labels_and_a_split() {
    let e = parse(
        Path::new("m.toml"),
        "[events]\nuser = \"u\"\nitem = \"i\"\ntime = \"t\"\n[labels]\n[split]\nmethod = \"leave_last_out\"\n",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "m.toml:5: [labels] names no label; a data set needs at least one");
    let e = parse(Path::new("m.toml"), "[events]\nuser = \"u\"\nitem = \"i\"\ntime = \"t\"\n[labels]\nc = \"true\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("m.toml") && e.contains("missing field `split`"), "{e}");
}
