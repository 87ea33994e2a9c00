"""The JSON Lines reader against the Rust loader's behaviour (src/data/tests.rs): the same
schema, padding, masks, and one test per validation error with the Rust message."""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

from recspec_torch import data  # noqa: E402
from recspec_torch.data import Batcher, DataError, RowError, Schema, SchemaError, iterate, read_rows  # noqa: E402

# The `tiny` model of src/data/tests.rs, as a generated module declares it.
INPUTS = {
    "item": ("id", "feature", (None,), 10),
    "fields": ("id", "feature", (None, 2), 20),
    "dense": ("float", "feature", (None, 2, 2), None),
    "score": ("float", "feature", (None,), None),
    "clicks": ("id", "sequence", (None, 3), 10),
    "clicks.mask": ("mask", "mask", (None, 3), None),
    "clicks.dwell": ("float", "side", (None, 3), None),
    "clicks.emb": ("float", "side", (None, 3, 2), None),
    "w": ("float", "weight", (None,), None),
}
LABELS = ["click", "like"]

GOOD = (
    '{"user":1,"time":5,"item":3,"fields":[1,19],"dense":[1,2,3,4.5],"score":0.25,"clicks":[4,5],'
    '"clicks.dwell":[1.5,2],"clicks.emb":[[1,2],[3,4]],"labels":{"click":1,"like":0.0,"other":1},'
    '"weights":{"w":2},"extra":"ignored"}'
)


def schema():
    return Schema.from_inputs(INPUTS, LABELS)


def good_with(key, value):
    """GOOD with `key` (or `labels.x` / `weights.x`) set to the JSON `value`, or deleted."""
    row = json.loads(GOOD)
    group, _, k = key.partition(".")
    if group in ("labels", "weights") and k:
        target, key = row[group], k
    else:
        target = row
    if value == "DELETE":
        del target[key]
    else:
        target[key] = json.loads(value)
    return json.dumps(row)


class TmpFiles(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, text, name="d.jsonl"):
        path = os.path.join(self.dir.name, name)
        with open(path, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
        return path

    def load_all(self, path, batch=8, rank=0, world=1):
        return list(iterate(path, schema(), batch, rank, world))


class SchemaTest(unittest.TestCase):
    def test_schema_follows_the_inputs(self):
        s = schema()
        self.assertEqual([f.name for f in s.fields],
                         ["item", "fields", "dense", "score", "clicks", "clicks.dwell", "clicks.emb"])
        clicks = s.field("clicks")
        self.assertEqual((clicks.kind, clicks.vocab, clicks.shape), ("ids", 10, (3,)))
        self.assertEqual(s.field("clicks.emb").shape, (3, 2))
        self.assertEqual(s.field("clicks.emb").sequence, "clicks")
        self.assertEqual(s.field("dense").shape, (2, 2))
        self.assertEqual(s.labels, ["click", "like"])
        self.assertEqual(s.weights, ["w"])

    def test_layouts_read_as_in_recspec_schema(self):
        s = schema()
        self.assertEqual(s.field("fields").layout(), "array of 2 ids in 0..20")
        self.assertEqual(s.field("dense").layout(), "flat array of 4 numbers (shape [2, 2], row-major)")
        self.assertEqual(s.field("clicks").layout(),
                         "array of 0..=3 ids in 0..10, most recent last (mask `clicks.mask` derived)")
        self.assertEqual(s.field("clicks.dwell").layout(), "array with a number per element of `clicks`")

    def test_schema_errors(self):
        cases = [
            ({"user": ("id", "feature", (None,), 4)}, "uses a key the data format reserves"),
            ({"x": ("id", "feature", (None,), None)}, "input `x` holds ids without a vocabulary"),
            ({"x": ("float", "feature", (None, "2*B"), None)}, "dimension 2*B must be a positive size"),
            ({"x": ("mask", "feature", (None, 2), None)}, "mask-typed inputs cannot be stored"),
            ({"s.d": ("float", "side", (None, 3), None)}, "side feature `s.d` has no sequence `s` before it"),
            ({"s": ("id", "sequence", (None, 3), 5), "s.d": ("float", "side", (None, 4), None)},
             "side feature `s.d` and sequence `s` disagree on T"),
            ({"s": ("id", "sequence", (None,), 5)}, "sequence `s` has no time axis"),
        ]
        for inputs, fragment in cases:
            with self.assertRaises(SchemaError) as cm:
                Schema.from_inputs(inputs, [])
            self.assertIn(fragment, str(cm.exception))

    def test_from_module(self):
        class M:
            pass

        M.INPUTS, M.LABELS = INPUTS, LABELS
        self.assertEqual([f.name for f in Schema.from_module(M).fields], [f.name for f in schema().fields])


class LayoutTest(TmpFiles):
    def test_rows_round_trip_with_padding_and_masks(self):
        second = json.loads(good_with("clicks", "[]"))
        second["clicks.dwell"] = []
        second["clicks.emb"] = []
        second["user"] = 2
        text = f"\ufeff{GOOD}\n   \n{json.dumps(second)}\r\n{GOOD}"
        batches = self.load_all(self.write(text), batch=2)
        self.assertEqual([len(b.users) for b in batches], [2, 1])
        b = batches[0]
        self.assertEqual(b.users, [1, 2])
        self.assertEqual(b.indices, [0, 1])
        self.assertEqual(b.lines, [1, 3])
        x = b.inputs
        self.assertEqual(x["item"].dtype, torch.int64)
        self.assertEqual(x["item"].tolist(), [3, 3])  # scalar id [B]
        self.assertEqual(x["fields"].tolist(), [[1, 19], [1, 19]])  # [B, K] ids
        self.assertEqual(x["clicks"].tolist(), [[4, 5, 0], [0, 0, 0]])  # padded with 0 after the last
        self.assertEqual(x["clicks.mask"].dtype, torch.bool)
        self.assertEqual(x["clicks.mask"].tolist(), [[True, True, False], [False, False, False]])
        self.assertEqual(x["clicks.dwell"].tolist(), [[1.5, 2.0, 0.0], [0.0, 0.0, 0.0]])  # side, 0.0-padded
        self.assertEqual(tuple(x["clicks.emb"].shape), (2, 3, 2))
        self.assertEqual(x["clicks.emb"][0].reshape(-1).tolist(), [1.0, 2.0, 3.0, 4.0, 0.0, 0.0])
        self.assertEqual(x["dense"].tolist(), [[[1.0, 2.0], [3.0, 4.5]]] * 2)  # flat row-major
        self.assertEqual(x["dense"].dtype, torch.float32)
        self.assertEqual(x["score"].tolist(), [0.25, 0.25])
        self.assertEqual(x["w"].tolist(), [2.0, 2.0])  # weight stream from "weights"
        self.assertEqual(b.labels["click"].tolist(), [1.0, 1.0])
        self.assertEqual(b.labels["like"].tolist(), [0.0, 0.0])
        self.assertEqual(b.labels["click"].dtype, torch.float32)
        self.assertEqual(tuple(batches[1].inputs["clicks"].shape), (1, 3))
        self.assertEqual(batches[1].indices, [2])
        self.assertNotIn("other", b.labels)

    def test_batcher_on_parsed_rows(self):
        inputs, labels, users = Batcher(schema()).batch([json.loads(GOOD)])
        self.assertEqual(users, [1])
        self.assertEqual(inputs["clicks.mask"].tolist(), [[True, True, False]])
        with self.assertRaises(RowError) as cm:
            Batcher(schema()).batch([json.loads(GOOD), json.loads(good_with("item", "10"))])
        self.assertEqual(cm.exception.index, 1)
        self.assertIn("out of vocabulary", str(cm.exception))

    def test_big_numbers_in_unknown_keys_are_fine(self):
        row = good_with("extra", "1").replace('"extra": 1', '"extra": [1e300, 1e-400, ' + "9" * 30 + "]")
        self.assertEqual(len(self.load_all(self.write(row + "\n"))), 1)

    def test_floats_round_to_float32(self):
        batches = self.load_all(self.write(good_with("score", "0.1") + "\n"))
        self.assertEqual(batches[0].inputs["score"].item(), float(torch.tensor(0.1, dtype=torch.float32)))

    def test_shards_partition_the_rows(self):
        lines = [good_with("user", str(i)) for i in range(7)]
        text = "\n".join(lines[:3]) + "\n\n  \n" + "\n".join(lines[3:]) + "\n"
        path = self.write(text)
        seen = []
        for rank in range(3):
            got = [(i, u) for b in self.load_all(path, batch=2, rank=rank, world=3) for i, u in zip(b.indices, b.users)]
            self.assertTrue(all(i % 3 == rank for i, _ in got))
            seen.extend(got)
        self.assertEqual(sorted(seen), [(i, i) for i in range(7)])
        self.assertEqual(data.count_rows(path), 7)

    def test_other_shards_are_not_parsed(self):
        path = self.write(f"{GOOD}\nnot json\n{GOOD}\n")
        self.assertEqual(sum(len(b.users) for b in self.load_all(path, rank=0, world=2)), 2)
        with self.assertRaises(DataError) as cm:
            self.load_all(path, rank=1, world=2)
        self.assertEqual(cm.exception.row, 2)

    def test_read_rows(self):
        path = self.write(f"\n{GOOD}\n\n[1]\n")
        self.assertEqual([(n, type(v).__name__) for n, v in read_rows(path)], [(2, "dict"), (4, "list")])

    def test_empty_file_and_open_errors(self):
        self.assertEqual(self.load_all(self.write("")), [])
        with self.assertRaises(DataError) as cm:
            self.load_all("/nonexistent/recspec.jsonl")
        self.assertEqual(cm.exception.row, 0)
        self.assertEqual(str(cm.exception),
                         "/nonexistent/recspec.jsonl: cannot open: No such file or directory (os error 2)")
        with self.assertRaises(DataError) as cm:
            list(iterate(self.write(""), schema(), 0))
        self.assertIn("batch size must be at least 1", str(cm.exception))


class ErrorTest(TmpFiles):
    def assert_bad(self, bad, fragment):
        """Line 3 is bad (line 1 good, line 2 blank): the error names `file:3:` and holds
        `fragment`, and nothing is yielded before it."""
        path = self.write(f"{GOOD}\n\n{bad}\n{GOOD}\n")
        got = []
        with self.assertRaises(DataError) as cm:
            for b in iterate(path, schema(), 8):
                got.append(b)
        e = cm.exception
        self.assertEqual(e.row, 3, str(e))
        self.assertIn(fragment, e.message)
        self.assertTrue(str(e).startswith(f"{path}:3: "), str(e))
        self.assertEqual(got, [])

    def test_malformed_json(self):
        self.assert_bad('{"user":1,', "malformed JSON")
        self.assert_bad("[1, 2]", "expected a JSON object per line, found an array of 2")
        self.assert_bad(good_with("score", "0.5").replace("0.5", "NaN"), "malformed JSON")
        self.assert_bad(good_with("score", "0.5").replace("0.5", "1e400"), "malformed JSON")
        # serde_json rejects an out-of-range number anywhere, unknown keys included.
        self.assert_bad(good_with("extra", "0.5").replace("0.5", "-2E+999"), "malformed JSON")
        self.assert_bad(good_with("extra", "0.5").replace("0.5", "9" * 400), "malformed JSON")

    def test_missing_keys(self):
        self.assert_bad(good_with("user", "DELETE"), "missing key `user` (expected a non-negative integer)")
        self.assert_bad(good_with("fields", "DELETE"), "missing key `fields` (expected array of 2 ids in 0..20")
        self.assert_bad(good_with("labels", "DELETE"), "missing key `labels` (expected an object with keys click, like)")
        self.assert_bad(good_with("weights", "DELETE"), "missing key `weights`")

    def test_wrong_json_types(self):
        self.assert_bad(good_with("item", '"3"'), "`item`: expected an integer id in 0..10, found a string")
        self.assert_bad(good_with("item", "2.5"), "`item`: expected an integer id in 0..10, found 2.5")
        self.assert_bad(good_with("item", "3.0"), "`item`: expected an integer id in 0..10, found 3.0")
        self.assert_bad(good_with("item", "true"), "`item`: expected an integer id in 0..10, found `true`")
        self.assert_bad(good_with("score", "null"), "`score`: expected a number, found null")
        self.assert_bad(good_with("fields", "3"), "`fields`: expected an array of 2 values (an integer id in 0..20), found 3")
        self.assert_bad(good_with("clicks", "{}"), "`clicks`: expected array of 0..=3 ids")
        self.assert_bad(good_with("user", "-1"), "`user`: expected a non-negative integer, found -1")
        self.assert_bad(good_with("user", "1.0"), "`user`: expected a non-negative integer, found 1.0")
        self.assert_bad(good_with("user", "18446744073709551616"),
                        "`user`: expected a non-negative integer, found 1.8446744073709552e+19")
        self.assert_bad(good_with("labels", "[1]"), "`labels`: expected an object with keys click, like, found an array of 1")
        self.assert_bad(good_with("clicks.emb", "[1, 2]"), "`clicks.emb[0]`: expected an array of 2 values")

    def test_sequence_longer_than_t_is_an_error(self):
        """Rust rejects (does not truncate) a sequence longer than T."""
        self.assert_bad(good_with("clicks", "[1,2,3,4]"), "`clicks`: sequence has 4 elements, longer than T = 3")

    def test_side_feature_length_differs(self):
        self.assert_bad(good_with("clicks.dwell", "[1.0]"),
                        "`clicks.dwell`: has 1 entries but its sequence `clicks` has 2 (one entry per element expected)")

    def test_id_out_of_vocabulary(self):
        self.assert_bad(good_with("clicks", "[4, 10]"),
                        "`clicks[1]`: id 10 is out of vocabulary (vocab size 10: ids must be in 0..10)")
        self.assert_bad(good_with("fields", "[1, -1]"), "`fields[1]`: id -1 is out of vocabulary")
        self.assert_bad(good_with("item", "18446744073709551615"), "id 18446744073709551615 is out of vocabulary")
        # Beyond 64 bits serde_json reads a float: not an id at all.
        self.assert_bad(good_with("item", "18446744073709551616"),
                        "`item`: expected an integer id in 0..10, found 1.8446744073709552e+19")

    def test_labels_must_be_present_and_binary(self):
        self.assert_bad(good_with("labels.like", "DELETE"), "missing label `labels.like` (expected 0 or 1)")
        self.assert_bad(good_with("labels.click", "0.5"), "`labels.click`: expected 0 or 1, found 0.5")
        self.assert_bad(good_with("labels.click", "true"), "`labels.click`: expected 0 or 1, found `true`")
        self.assert_bad(good_with("labels.click", '"1"'), "`labels.click`: expected 0 or 1, found a string")

    def test_weights_must_be_present_finite_and_non_negative(self):
        self.assert_bad(good_with("weights.w", "DELETE"), "missing weight `weights.w` (expected a finite number >= 0)")
        self.assert_bad(good_with("weights.w", "-1"), "`weights.w`: expected a finite number >= 0, found -1")
        self.assert_bad(good_with("weights.w", "1e39"), "`weights.w`: expected a finite number >= 0, found 1e+39")

    def test_floats_must_fit_f32(self):
        self.assert_bad(good_with("score", "1e39"), "`score`: 1e+39 is not a finite 32-bit float")
        self.assert_bad(good_with("dense", "[1, 2, 3, -1e300]"), "`dense[3]`: -1e+300 is not a finite 32-bit float")
        self.assert_bad(good_with("clicks.dwell", '[1, "x"]'), "`clicks.dwell[1]`: expected a number, found a string")

    def test_fixed_shape_arrays_need_their_length(self):
        self.assert_bad(good_with("dense", "[1, 2, 3]"), "`dense`: expected an array of 4 values, found an array of 3")
        self.assert_bad(good_with("fields", "[1, 2, 3]"), "`fields`: expected an array of 2 values, found an array of 3")

    def test_invalid_utf8_is_a_bad_row(self):
        path = self.write(f"{GOOD}\n\n".encode() + b"\xff\xfe\n")
        with self.assertRaises(DataError) as cm:
            self.load_all(path)
        self.assertEqual(cm.exception.row, 3)
        self.assertIn("line is not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 0", cm.exception.message)

    def test_over_long_lines_are_bad_rows(self):
        saved = data.MAX_LINE_BYTES
        data.MAX_LINE_BYTES = 64
        try:
            path = self.write('{"user": 1}\n' + "x" * 200 + "\n" + '{"user": 2}\n')
            self.assertEqual([(n, e) for n, _, e in data.scan_lines(path)],
                             [(1, None), (2, "line is longer than 64 bytes"), (3, None)])
        finally:
            data.MAX_LINE_BYTES = saved

    def test_whitespace_lines_are_skipped_like_rust(self):
        """Rust's trim strips Unicode White_Space (U+00A0...), not U+001F."""
        path = self.write(f"{GOOD}\n\u00a0\u3000\n\x1f\n")
        with self.assertRaises(DataError) as cm:
            self.load_all(path)
        self.assertEqual(cm.exception.row, 3)


class NumberFormatTest(unittest.TestCase):
    def test_floats_print_as_serde_json_prints_them(self):
        cases = {1e39: "1e+39", -1e300: "-1e+300", 2.5: "2.5", 1.0: "1.0", 1e15: "1000000000000000.0",
                 1e16: "1e+16", 1e-5: "0.00001", 1e-6: "1e-6", 1.5e-7: "1.5e-7", -0.0: "-0.0"}
        for x, want in cases.items():
            self.assertEqual(data.format_float(x), want)


if __name__ == "__main__":
    unittest.main()


class OneNumberTest(TmpFiles):
    """A `[B, 1]` input reads a number alone as an array of one, as the Rust loader does
    (src/data/row.rs, push_array): what `recspec import` writes for a numeric feature."""

    def test_a_number_fills_an_array_of_one(self):
        inputs = {"price": ("float", "feature", (None, 1), None), "n": ("id", "feature", (None, 1), 5)}
        s = Schema.from_inputs(inputs, ["click"])
        rows = ['{"user":1,"price":2.5,"n":4,"labels":{"click":1}}', '{"user":2,"price":[0.5],"n":[3],"labels":{"click":0}}']
        (b,) = list(iterate(self.write("\n".join(rows) + "\n"), s, 8))
        x = b.inputs
        self.assertEqual(x["price"].tolist(), [[2.5], [0.5]])
        self.assertEqual(x["n"].tolist(), [[4], [3]])
        path = self.write('{"user":1,"price":true,"n":1,"labels":{"click":1}}\n')
        with self.assertRaises(DataError) as cm:
            list(iterate(path, s, 8))
        self.assertIn("`price`", str(cm.exception))
