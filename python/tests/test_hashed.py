"""Hashed id inputs (`vocab V hashed`): `hash_bucket` against the Rust loader's function
(src/data/mod.rs, pinned values shared with src/data/tests.rs) and an independent reference
implementation, and the reader's handling of raw ids (integers and strings) in rows."""

import json
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

from recspec_torch.data import (  # noqa: E402
    Batcher, DataError, RowError, Schema, SchemaError, hash_bucket, iterate, parse_json,
)

# --- An independent reference: the spec written out with struct and `% 2**64`, sharing no code
# with recspec_torch.data.
_M = 2 ** 64


def _ref_bits(raw):
    if isinstance(raw, str):
        h = 14695981039346656037  # FNV-1a 64 offset basis, 0xCBF29CE484222325
        for byte in bytearray(raw, "utf-8"):
            h = (h ^ byte) * 1099511628211 % _M  # FNV prime 2^40 + 2^8 + 0xB3
        return h
    fmt = "<q" if raw < 0 else "<Q"
    return struct.unpack("<Q", struct.pack(fmt, raw))[0]


def _ref_mix(x):
    """SplitMix64's step: add the golden gamma, then its output function."""
    x = (x + 11400714819323198485) % _M
    x = ((x ^ (x >> 30)) * 13787848793156543929) % _M
    x = ((x ^ (x >> 27)) * 10723151780598845931) % _M
    return x ^ (x >> 31)


def ref_bucket(raw, buckets):
    return _ref_mix(_ref_bits(raw)) % buckets


# The `hashed` model of src/data/tests.rs (plus a plain id input and a hashed fixed array), as a
# generated module declares it.
INPUTS = {
    "item": ("id", "feature", (None,), 1000),
    "plain": ("id", "feature", (None,), 10),
    "pair": ("id", "feature", (None, 2), 97),
    "clicks": ("id", "sequence", (None, 3), 1000),
    "clicks.mask": ("mask", "mask", (None, 3), None),
    "clicks.dwell": ("float", "side", (None, 3), None),
}
LABELS = ["click"]
HASHED_INPUTS = ("item", "pair", "clicks", )


def schema():
    return Schema.from_inputs(INPUTS, LABELS, HASHED_INPUTS)


def row(**over):
    r = {"user": 1, "item": "sku-123", "plain": 3, "pair": [1, "x"], "clicks": [5, -7],
         "clicks.dwell": [0.5, 1.0], "labels": {"click": 1}}
    r.update(over)
    return json.dumps(r)


class HashBucketTest(unittest.TestCase):
    def test_reference_is_splitmix64_and_fnv1a(self):
        """The reference itself, against published values: SplitMix64's first output from seed
        0 and FNV-1a 64 test vectors."""
        self.assertEqual(_ref_mix(0), 0xE220A8397B1DCDAF)
        self.assertEqual(_ref_bits(""), 0xCBF29CE484222325)
        self.assertEqual(_ref_bits("a"), 0xAF63DC4C8601EC8C)
        self.assertEqual(_ref_bits("foobar"), 0x85944171F73967E8)
        self.assertEqual(_ref_bits(-1), _M - 1)

    def test_pinned_values(self):
        """The values src/data/tests.rs pins."""
        self.assertEqual(hash_bucket(0, 1_000_003), 4995)
        self.assertEqual(0xE220A8397B1DCDAF % 1_000_003, 4995)
        empty = hash_bucket("", 1 << 20)
        self.assertEqual(empty, hash_bucket(0xCBF29CE484222325, 1 << 20))
        self.assertEqual(empty, hash_bucket(0xCBF29CE484222325 - _M, 1 << 20))  # as a signed i64

    def test_matches_the_reference(self):
        ints = [0, 1, -1, 2, 7, 1000003, 123456789012, 2 ** 63 - 1, -2 ** 63, 2 ** 63,
                json.loads("18446744073709551615")]
        self.assertEqual(ints[-1], 2 ** 64 - 1)
        strings = ["", "a", "b", "sku-123", "é", "日本語", "\U0001F600", "0", "-1", "x" * 10_000]
        wrong = []
        for v in (1, 7, 97, 1000, 1000003, 1 << 20, 2 ** 63 - 1):
            for raw in ints + strings:
                got, want = hash_bucket(raw, v), ref_bucket(raw, v)
                if got != want or not 0 <= got < v:
                    wrong.append((raw[:20] if isinstance(raw, str) else raw, v, got, want))
        self.assertEqual(wrong, [], "(raw, V, got, want)")
        # An integer and its 64-bit pattern are the same id; a string is not its integer.
        self.assertEqual(hash_bucket(-1, 1000003), hash_bucket(2 ** 64 - 1, 1000003))
        self.assertEqual(hash_bucket(-2 ** 63, 1000003), hash_bucket(2 ** 63, 1000003))
        self.assertNotEqual(hash_bucket("123", 1 << 40), hash_bucket(123, 1 << 40))

    def test_bad_arguments(self):
        self.assertEqual(hash_bucket(5, 0), 0)  # Rust's `buckets.max(1)`
        for bad in (True, 1.0, None, b"a", [1]):
            with self.assertRaises(TypeError):
                hash_bucket(bad, 10)
        for bad in (2 ** 64, -2 ** 63 - 1):
            with self.assertRaises(ValueError):
                hash_bucket(bad, 10)

    def test_consecutive_ids_spread_evenly(self):
        """As src/data/tests.rs: 200,000 consecutive integers in 1,000 buckets, each bucket
        within 25% of the mean."""
        counts = [0] * 1000
        for i in range(200_000):
            counts[hash_bucket(i, 1000)] += 1
        self.assertTrue(all(150 <= c <= 250 for c in counts), (min(counts), max(counts)))


class HashedSchemaTest(unittest.TestCase):
    def test_fields_know_they_are_hashed(self):
        s = schema()
        self.assertEqual([(f.name, f.kind, f.hashed) for f in s.fields],
                         [("item", "ids", True), ("plain", "ids", False), ("pair", "ids", True),
                          ("clicks", "ids", True), ("clicks.dwell", "floats", False)])
        self.assertEqual(s.field("clicks").vocab, 1000)
        # Without `hashed` (older callers, 4-tuple INPUTS) nothing is hashed.
        self.assertFalse(any(f.hashed for f in Schema.from_inputs(INPUTS, LABELS).fields))

    def test_layouts(self):
        s = schema()
        self.assertEqual(s.field("item").layout(), "a raw id (an integer or a string) hashed into 1000 buckets")
        self.assertEqual(s.field("pair").layout(), "array of 2 raw ids (integers or strings) hashed into 97 buckets")
        self.assertEqual(s.field("clicks").layout(),
                         "array of 0..=3 raw ids (integers or strings) hashed into 1000 buckets, most recent last "
                         "(mask `clicks.mask` derived)")
        self.assertEqual(s.field("plain").layout(), "an id in 0..10")

    def test_from_module(self):
        class New:
            pass

        class Old:
            pass

        New.INPUTS, New.LABELS, New.HASHED_INPUTS = INPUTS, LABELS, HASHED_INPUTS
        Old.INPUTS, Old.LABELS = INPUTS, LABELS
        self.assertEqual([f.hashed for f in Schema.from_module(New).fields], [True, False, True, True, False])
        self.assertEqual([f.hashed for f in Schema.from_module(Old).fields], [False] * 5)
        New.HASHED_INPUTS = ()
        self.assertEqual([f.hashed for f in Schema.from_module(New).fields], [False] * 5)

    def test_hashed_names_must_be_id_inputs(self):
        with self.assertRaisesRegex(SchemaError, "hashed input `nope` is not an input"):
            Schema.from_inputs(INPUTS, LABELS, ("nope",))
        with self.assertRaisesRegex(SchemaError, "hashed input `clicks.dwell` does not hold ids"):
            Schema.from_inputs(INPUTS, LABELS, ("clicks.dwell",))


class HashedRowsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, text):
        path = os.path.join(self.dir.name, "d.jsonl")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    def test_rows_round_trip_through_iterate(self):
        """src/data/tests.rs's rows (strings and integers mixed, u64::MAX as the bits of -1),
        read through the file reader: buckets stored, sequences padded with 0."""
        rows = [
            '{"user":1,"item":"sku-123","plain":0,"pair":["é",-2],"clicks":[5, -7, 18446744073709551615],'
            '"clicks.dwell":[1,2,3],"labels":{"click":1}}',
            '{"user":2,"item":123456789012,"plain":9,"pair":[9223372036854775807,""],"clicks":["a","b"],'
            '"clicks.dwell":[1,2],"labels":{"click":0}}',
            '{"user":3,"item":-9223372036854775808,"plain":1,"pair":["x","x"],"clicks":[],'
            '"clicks.dwell":[],"labels":{"click":0}}',
        ]
        path = self.write("\n".join(rows) + "\n")
        batches = list(iterate(path, schema(), 8))
        self.assertEqual(len(batches), 1)
        b = batches[0].inputs
        self.assertEqual(b["item"].dtype, torch.int64)
        self.assertEqual(b["item"].tolist(),
                         [ref_bucket("sku-123", 1000), ref_bucket(123456789012, 1000), ref_bucket(-2 ** 63, 1000)])
        self.assertEqual(b["plain"].tolist(), [0, 9, 1])  # plain ids untouched
        self.assertEqual(b["pair"].tolist(), [[ref_bucket("é", 97), ref_bucket(-2, 97)],
                                              [ref_bucket(2 ** 63 - 1, 97), ref_bucket("", 97)],
                                              [ref_bucket("x", 97)] * 2])
        self.assertEqual(b["clicks"].tolist(), [
            [ref_bucket(5, 1000), ref_bucket(-7, 1000), ref_bucket(-1, 1000)],
            [ref_bucket("a", 1000), ref_bucket("b", 1000), 0],
            [0, 0, 0],
        ])
        self.assertEqual(b["clicks.mask"].tolist(), [[True] * 3, [True, True, False], [False] * 3])
        self.assertEqual(batches[0].users, [1, 2, 3])

    def test_batcher_on_parsed_rows(self):
        inputs, _, _ = Batcher(schema()).batch([parse_json(row())])
        self.assertEqual(inputs["item"].tolist(), [hash_bucket("sku-123", 1000)])
        self.assertEqual(inputs["pair"].tolist(), [[hash_bucket(1, 97), hash_bucket("x", 97)]])

    def assert_bad(self, bad_row, message):
        """Line 3 is bad (line 1 good, line 2 blank): DataError `file:3: message` exactly."""
        path = self.write(f"{row()}\n\n{bad_row}\n{row()}\n")
        with self.assertRaises(DataError) as cm:
            list(iterate(path, schema(), 8))
        e = cm.exception
        self.assertEqual((e.row, e.message), (3, message))
        self.assertEqual(str(e), f"{path}:3: {message}")

    def test_bad_raw_ids(self):
        for bad, what in [
            ("1.5", "1.5"),
            ("3.0", "3.0"),
            ("-0.0", "-0.0"),
            ("1e3", "1000.0"),
            ("true", "`true`"),
            ("false", "`false`"),
            ("null", "null"),
            ("[1]", "an array of 1"),
            ("{}", "an object"),
            # Beyond 64 bits serde_json reads a float: not an id.
            ("18446744073709551616", "1.8446744073709552e+19"),
            ("-9223372036854775809", "-9.223372036854776e+18"),
        ]:
            with self.subTest(bad=bad):
                r = row().replace('"item": "sku-123"', f'"item": {bad}')
                self.assertIn(f'"item": {bad}', r)
                self.assert_bad(r, f"`item`: expected an integer or string id, found {what}")

    def test_bad_raw_ids_in_arrays_and_sequences(self):
        self.assert_bad(row(clicks=[1, "a", 2.5]), "`clicks[2]`: expected an integer or string id, found 2.5")
        self.assert_bad(row(clicks=[None]), "`clicks[0]`: expected an integer or string id, found null")
        self.assert_bad(row(pair=[1, True]), "`pair[1]`: expected an integer or string id, found `true`")
        self.assert_bad(row(pair="ab"), "`pair`: expected an array of 2 values (an integer or string id), found a string")
        self.assert_bad(row(clicks="ab"),
                        "`clicks`: expected array of 0..=3 raw ids (integers or strings) hashed into 1000 buckets, "
                        "most recent last (mask `clicks.mask` derived), found a string")
        self.assert_bad(row(clicks=[1, 2, 3, 4]), "`clicks`: sequence has 4 elements, longer than T = 3")
        # A plain id input keeps its own rules next to hashed ones.
        self.assert_bad(row(plain="3"), "`plain`: expected an integer id in 0..10, found a string")
        self.assert_bad(row(plain=10), "`plain`: id 10 is out of vocabulary (vocab size 10: ids must be in 0..10)")

    def test_row_error_from_batcher(self):
        with self.assertRaises(RowError) as cm:
            Batcher(schema()).batch([parse_json(row()), parse_json(row(item=1.5))])
        self.assertEqual((cm.exception.index, cm.exception.message),
                         (1, "`item`: expected an integer or string id, found 1.5"))


if __name__ == "__main__":
    unittest.main()
