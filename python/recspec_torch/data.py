"""recspec's JSON Lines data format, read exactly as the Rust loader reads it (`src/data/`).

One JSON object per line (UTF-8). Keys follow the model's inputs by name:

- `"user"`: a non-negative integer, required on every row (per-user GAUC); `"time"`: optional,
  ignored.
- every feature, sequence and side input gets a key named exactly like it (`item`, `clicks`,
  `clicks.dwell`). Masks (`clicks.mask`) are not stored: they follow from the sequence lengths.
- Feature `[B]`: a scalar; `[B, K]`: an array of K numbers; more dims: a flat row-major array of
  their product.
- Sequence `[B, T]`: an array of 0..=T ids, most recent last, not padded; the reader pads with id
  0 and sets the mask true on positions `0..len`. A longer sequence is an error (not truncated).
  Sequence `[B, T, K...]`: an array of 0..=T entries, each an array of prod(K...) numbers.
- Side `seq.name` `[B, T, K...]`: exactly one entry per element of its sequence, each a number
  when prod(K...) == 1 and an array of prod(K...) numbers otherwise; padded with 0.0.
- `"labels": {"click": 1, ...}`: every label stream of the model, each 0 or 1 (`0.0`/`1.0` too).
- `"weights": {"w": 1.0}`: every weight stream, a finite number >= 0; no default.
- Ids are integers in `0..vocab`; floats are numbers that fit in a float32.
- Hashed id inputs (`vocab V hashed`, listed in a generated module's `HASHED_INPUTS`) hold raw
  ids instead: any JSON integer (64-bit; `2^63..2^64` taken as its bit pattern) or any string,
  each stored as its bucket `hash_bucket(raw, V)` in `0..V`. Sequences still pad with 0.
- Unknown keys (and unknown labels or weights) are ignored. Lines holding only whitespace, and a
  leading byte-order mark, are skipped.

Errors are `DataError`s printing as `file:line: message`, with the Rust loader's messages
(numbers in them printed as serde_json prints them).

    schema = Schema.from_module(generated_module)
    for batch in iterate("data/train.jsonl", schema, 256, rank=0, world=1):
        batch.inputs, batch.labels, batch.users, batch.indices

A split is one file or a folder of JSON Lines shards (`shards`: the files directly inside,
by name; `_`/`.` names skipped), read one after another. Under torchrun each rank reads only its
own shards (`SplitPlan`). Training reads each epoch's rows through a shuffle buffer, as recspec
does (a folder's shards in a drawn order first):

    iterate(path, schema, 256, rank, world, shuffle_buffer=10000,
            seed=shuffle_seed(run_seed, epoch, rank))
"""

import json
import math
import os
import re
import sys
from collections import namedtuple
from decimal import Decimal
from itertools import islice

import torch

from .rng import SplitMix, shuffle_seed  # noqa: F401 - shuffle_seed re-exported

#: Top-level keys the format itself uses; no input may be named like them.
RESERVED_KEYS = ("user", "time", "labels", "weights")
#: Longest accepted line (bytes, newline included); longer lines are bad rows.
MAX_LINE_BYTES = 64 << 20
#: Largest finite float32, as an f64 (Rust's `f32::MAX as f64`).
F32_MAX = 3.4028234663852886e38
#: Rust's `char::is_whitespace` (Unicode White_Space), which `str::trim` strips. Python's
#: `str.strip()` would also strip U+001C..U+001F.
_RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
_I64_MIN, _U64_MAX = -(1 << 63), (1 << 64) - 1
_MASK64 = _U64_MAX


def hash_bucket(raw, buckets):
    """The bucket in `0..buckets` of a hashed input's raw id, exactly as recspec's loader
    computes it (`hash_bucket` in src/data/mod.rs): SplitMix64's output function applied to the
    id's 64 bits, modulo `buckets` (taken as 1 when below 1).

    `raw`: an int in `-2^63..2^64` (its two's complement bits; `2^63..2^64` are their own bit
    pattern) or a str (the FNV-1a 64-bit hash of its UTF-8 bytes)."""
    if isinstance(raw, str):
        bits = 0xCBF29CE484222325
        for b in raw.encode("utf-8"):
            bits = ((bits ^ b) * 0x100000001B3) & _MASK64
    elif isinstance(raw, int) and not isinstance(raw, bool):
        if not _I64_MIN <= raw <= _U64_MAX:
            raise ValueError(f"raw id {raw} does not fit in 64 bits")
        bits = raw & _MASK64
    else:
        raise TypeError(f"raw id must be an int or a str, not {type(raw).__name__}")
    z = (bits + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return z % max(int(buckets), 1)


class SchemaError(ValueError):
    """A model's inputs have no on-disk layout (the Rust `SchemaError`)."""


class DataError(Exception):
    """A bad row (or an I/O failure, row 0) in a data file: prints as `file:row: message`."""

    def __init__(self, file, row, message):
        super().__init__(file, row, message)
        self.file = str(file)
        self.row = row
        self.message = message

    def __str__(self):
        if self.row == 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.row}: {self.message}"


class RowError(ValueError):
    """A row that does not fit the schema; `index` is its position in `Batcher.batch`'s rows."""

    def __init__(self, message, index=None):
        super().__init__(message)
        self.message = message
        self.index = index


# ----------------------------------------------------------------------------------------------
# Schema


class Field:
    """One stored input: `kind` "ids" (with `vocab`) or "floats"; `role` feature, sequence or
    side; `shape` the non-batch dims (`[T, K...]` for sequences and side features); `sequence`
    the owning sequence of a side feature (a sequence's own name for a sequence); `hashed` for
    ids declared `vocab V hashed`: the data holds raw ids, stored as their buckets in `0..vocab`
    (`hash_bucket`)."""

    def __init__(self, name, kind, vocab, role, shape, sequence=None, hashed=False):
        self.name = name
        self.kind = kind
        self.vocab = vocab
        self.role = role
        self.shape = tuple(shape)
        self.sequence = sequence
        self.hashed = bool(hashed)

    def __repr__(self):
        kind = "hashed ids" if self.hashed else self.kind
        return f"Field({self.name!r}, {kind}, vocab={self.vocab}, {self.role}, {self.shape})"

    @property
    def row_len(self):
        """Numbers per example in the padded batch."""
        return math.prod(self.shape)

    @property
    def max_len(self):
        """For sequences and side features: T, the padded length."""
        return self.shape[0] if self.shape else 1

    @property
    def elem_len(self):
        """Numbers per sequence element (prod of the dims after T); 1 for `[B, T]`."""
        return math.prod(self.shape[1:])

    def layout(self):
        """The JSON layout of this key, in words (as in `recspec schema`)."""
        if self.hashed:
            what = f"raw ids (integers or strings) hashed into {self.vocab} buckets"
            one = f"a raw id (an integer or a string) hashed into {self.vocab} buckets"
        else:
            what = f"ids in 0..{self.vocab}" if self.kind == "ids" else "numbers"
            one = f"an id in 0..{self.vocab}" if self.kind == "ids" else "a number"
        seq = self.sequence or "?"
        if self.role == "sequence" and self.elem_len == 1:
            return f"array of 0..={self.max_len} {what}, most recent last (mask `{self.name}.mask` derived)"
        if self.role == "sequence":
            return (
                f"array of 0..={self.max_len} entries, each an array of {self.elem_len} {what}, "
                f"most recent last (mask `{self.name}.mask` derived)"
            )
        if self.role == "side" and self.elem_len == 1:
            return f"array with {one} per element of `{seq}`"
        if self.role == "side":
            return f"array with one entry per element of `{seq}`, each an array of {self.elem_len} {what}"
        if not self.shape:
            return one
        if len(self.shape) == 1:
            return f"array of {self.row_len} {what}"
        return f"flat array of {self.row_len} {what} (shape {list(self.shape)}, row-major)"


class Schema:
    """The JSON layout a model reads: stored `fields` in input order, `labels`, `weights`
    (weight streams), and `masks` {mask input name: its sequence}."""

    def __init__(self, fields, labels, weights):
        self.fields = list(fields)
        self.labels = list(labels)
        self.weights = list(weights)

    def field(self, name):
        return next((f for f in self.fields if f.name == name), None)

    @classmethod
    def from_module(cls, module):
        """The layout of a generated module (its `INPUTS`, `LABELS` and `HASHED_INPUTS`; modules
        generated before hashed inputs existed lack the latter and have none)."""
        return cls.from_inputs(module.INPUTS, module.LABELS, getattr(module, "HASHED_INPUTS", ()))

    @classmethod
    def from_inputs(cls, inputs, labels, hashed=()):
        """`inputs`: {name: (dtype, role, shape with None for the batch, vocab)} in model order,
        as in a generated module; `labels`: the label streams; `hashed`: the names of the id
        inputs declared `vocab V hashed` (their vocab is the bucket count V). Raises SchemaError
        as `Schema::from_program` does."""
        hashed = set(hashed)
        for name in sorted(hashed):
            spec = inputs.get(name)
            if spec is None:
                raise SchemaError(f"hashed input `{name}` is not an input")
            if spec[0] != "id":
                raise SchemaError(f"hashed input `{name}` does not hold ids")
        fields, weights = [], []
        for name, (dtype, role, shape, vocab) in inputs.items():
            if role == "weight":
                weights.append(name)
                continue
            if role == "mask":
                continue
            if name in RESERVED_KEYS:
                raise SchemaError(f"input `{name}` uses a key the data format reserves ({', '.join(RESERVED_KEYS)})")
            dims = []
            for e in tuple(shape)[1:]:
                if isinstance(e, bool) or not isinstance(e, int) or e < 1:
                    raise SchemaError(f"input `{name}`: dimension {e} must be a positive size for the data format")
                dims.append(e)
            if dtype == "id":
                if vocab is None:
                    raise SchemaError(f"input `{name}` holds ids without a vocabulary")
                kind = "ids"
            elif dtype == "float":
                kind = "floats"
            elif dtype == "mask":
                raise SchemaError(f"input `{name}`: mask-typed inputs cannot be stored")
            else:
                raise SchemaError(f"input `{name}`: unknown dtype {dtype!r}")
            sequence = None
            if role == "sequence":
                sequence = name
            elif role == "side":
                sequence = name.split(".", 1)[0] if "." in name else ""
                owner = next((f for f in fields if f.name == sequence and f.role == "sequence"), None)
                if owner is None:
                    raise SchemaError(f"side feature `{name}` has no sequence `{sequence}` before it")
                if owner.shape[:1] != tuple(dims[:1]):
                    raise SchemaError(f"side feature `{name}` and sequence `{sequence}` disagree on T")
            elif role != "feature":
                raise SchemaError(f"input `{name}`: unknown role {role!r}")
            if role == "sequence" and not dims:
                raise SchemaError(f"sequence `{name}` has no time axis")
            fields.append(Field(name, kind, vocab, role, dims, sequence, hashed=name in hashed))
        return cls(fields, labels, weights)


# ----------------------------------------------------------------------------------------------
# JSON values as the Rust loader sees them


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text):
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def _parse_int(text):
    value = int(text)
    if _I64_MIN <= value <= _U64_MAX:
        return value
    # serde_json reads integers outside i64/u64 as f64.
    try:
        return float(value)
    except OverflowError:
        raise ValueError("number out of range") from None


#: Text that may hold a number beyond f64's range (a 3-digit exponent, or 300 digits in a row).
_MAYBE_HUGE = re.compile(r"[eE][+-]?\d{3}|\d{300}")


def parse_json(text):
    """Parses one JSON value as serde_json would: no NaN/Infinity, numbers beyond f64's range are
    errors, integers beyond 64 bits are floats. Raises ValueError.

    The number hooks cost a Python call per number, so they run only when the text could hold
    an out-of-range number; otherwise integers beyond 64 bits stay ints here and the validators
    (`found`, `_id_value`...) treat them as the floats serde_json makes of them."""
    if _MAYBE_HUGE.search(text):
        return json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float, parse_int=_parse_int)
    return json.loads(text, parse_constant=_reject_constant)


def format_float(x):
    """An f64 as serde_json prints it: shortest round-trip digits, fixed notation for decimal
    exponents -5..=15 (`1.0`, `0.00001`, `1e+16`... as `1e16` is not), else `d.ddde±N`."""
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    t = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    exp = len(digits) - 1 + t.exponent  # decimal exponent of the leading digit
    if -5 <= exp <= 15:
        if t.exponent >= 0:
            body = digits + "0" * t.exponent + ".0"
        elif exp >= 0:
            body = digits[: exp + 1] + "." + digits[exp + 1:]
        else:
            body = "0." + "0" * (-exp - 1) + digits
    else:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        body = f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp)}"
    return sign + body


def _number(v):
    if isinstance(v, int):
        return str(v) if _I64_MIN <= v <= _U64_MAX else format_float(float(v))
    return format_float(v)


def found(v):
    """How a JSON value reads in a message: numbers verbatim, other kinds by name."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"`{'true' if v else 'false'}`"
    if isinstance(v, (int, float)):
        return _number(v)
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return f"an array of {len(v)}"
    return "an object"


def _as_f64(v):
    """serde_json's `as_f64`: any number as a float, else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


# ----------------------------------------------------------------------------------------------
# Rows


def _id_value(v, vocab, key):
    if type(v) is int and _I64_MIN <= v <= _U64_MAX:
        if 0 <= v < vocab:
            return v
        return _out_of_vocab(v, vocab, key)
    # Anything else, floats included (`2.5`, `1.0`, integers beyond 64 bits), is not an id.
    raise RowError(f"`{key}`: expected an integer id in 0..{vocab}, found {found(v)}")


def _hashed_value(v, buckets, key):
    """A hashed input's raw id (an integer or a string) as its bucket."""
    if isinstance(v, str) or (type(v) is int and _I64_MIN <= v <= _U64_MAX):
        return hash_bucket(v, buckets)
    # Floats (`1.5`, `3.0`), integers beyond 64 bits (floats to serde_json), bools, null,
    # arrays and objects are not raw ids.
    raise RowError(f"`{key}`: expected an integer or string id, found {found(v)}")


def _out_of_vocab(v, vocab, key):
    raise RowError(f"`{key}`: id {v} is out of vocabulary (vocab size {vocab}: ids must be in 0..{vocab})")


def _float_value(v, key):
    x = _as_f64(v)
    if x is None:
        raise RowError(f"`{key}`: expected a number, found {found(v)}")
    if not (math.isfinite(x) and abs(x) <= F32_MAX):
        raise RowError(f"`{key}`: {found(v)} is not a finite 32-bit float")
    return x


def _what(f):
    if f.hashed:
        return "an integer or string id"
    return f"an integer id in 0..{f.vocab}" if f.kind == "ids" else "a number"


def _push_one(out, f, v, key):
    if f.hashed:
        out.append(_hashed_value(v, f.vocab, key))
    elif f.kind == "ids":
        out.append(_id_value(v, f.vocab, key))
    else:
        out.append(_float_value(v, key))


def _push_values(out, f, items, key_of):
    """Appends `items` (a list of numbers, or raw ids for a hashed field) to `out`, validated;
    fast path for clean lists."""
    if f.hashed:
        pass  # each raw id is hashed by `_push_one`
    elif f.kind == "ids":
        vocab = f.vocab
        if all(type(x) is int and 0 <= x < vocab for x in items):
            out.extend(items)
            return
    else:
        if all(type(x) is float and -F32_MAX <= x <= F32_MAX for x in items):
            out.extend(items)
            return
    for j, x in enumerate(items):
        _push_one(out, f, x, key_of(j))


def _push_array(out, f, v, n, key):
    """Pushes exactly `n` numbers from an array value (for `n` = 1, a number alone is one too: a
    feature set writes one number per row for `float[B]` and `float[B, 1]` inputs alike)."""
    if n == 1 and isinstance(v, (int, float)) and not isinstance(v, bool):
        _push_one(out, f, v, key)
        return
    if not isinstance(v, list):
        raise RowError(f"`{key}`: expected an array of {n} values ({_what(f)}), found {found(v)}")
    if len(v) != n:
        raise RowError(f"`{key}`: expected an array of {n} values, found an array of {len(v)}")
    _push_values(out, f, v, lambda j: f"{key}[{j}]")


def _labelled(obj, group, names):
    if not names:
        return None
    m = obj.get(group, _MISSING)
    if m is _MISSING:
        raise RowError(f"missing key `{group}` (expected an object with keys {', '.join(names)})")
    if not isinstance(m, dict):
        raise RowError(f"`{group}`: expected an object with keys {', '.join(names)}, found {found(m)}")
    return m


_MISSING = object()

Batch = namedtuple("Batch", "inputs labels users indices lines files")
Batch.__doc__ = """One batch: `inputs` {name: tensor} (ids int64, floats float32, masks bool
`seq.mask`, weight streams float32 [B]), `labels` {stream: float32 [B]}, `users` [int], and per
row its 0-based index among the split's non-blank rows (shards in name order), its 1-based line
number and its file (the shard)."""


class Batcher:
    """Validates rows against a schema and stacks them into padded batches."""

    def __init__(self, schema):
        self.schema = schema
        self._owner = {}
        for i, f in enumerate(schema.fields):
            if f.role == "side":
                self._owner[i] = next(k for k, o in enumerate(schema.fields) if o.name == f.sequence)

    def encode(self, row):
        """Validates one parsed row; returns its record (user, per-field values, sequence
        lengths, labels, weights). Raises RowError with the Rust loader's message."""
        schema = self.schema
        if not isinstance(row, dict):
            raise RowError(f"expected a JSON object per line, found {found(row)}")
        user = row.get("user", _MISSING)
        if user is _MISSING:
            raise RowError("missing key `user` (expected a non-negative integer)")
        if type(user) is not int or not 0 <= user <= _U64_MAX:
            raise RowError(f"`user`: expected a non-negative integer, found {found(user)}")
        values, lens = [], [0] * len(schema.fields)
        for i, f in enumerate(schema.fields):
            key = f.name
            v = row.get(key, _MISSING)
            if v is _MISSING:
                raise RowError(f"missing key `{key}` (expected {f.layout()})")
            out = []
            if f.role in ("sequence", "side"):
                if not isinstance(v, list):
                    raise RowError(f"`{key}`: expected {f.layout()}, found {found(v)}")
                n = len(v)
                o = self._owner.get(i)
                if o is not None:
                    if n != lens[o]:
                        raise RowError(
                            f"`{key}`: has {n} entries but its sequence `{schema.fields[o].name}` has {lens[o]} "
                            "(one entry per element expected)"
                        )
                elif n > f.max_len:
                    raise RowError(f"`{key}`: sequence has {n} elements, longer than T = {f.max_len}")
                lens[i] = n
                e = f.elem_len
                if e == 1:
                    _push_values(out, f, v, lambda j, key=key: f"{key}[{j}]")
                else:
                    for j, x in enumerate(v):
                        _push_array(out, f, x, e, f"{key}[{j}]")
            elif not f.shape:
                _push_one(out, f, v, key)
            else:
                _push_array(out, f, v, f.row_len, key)
            values.append(out)
        labels = []
        m = _labelled(row, "labels", schema.labels)
        for name in schema.labels:
            v = m.get(name, _MISSING)
            if v is _MISSING:
                raise RowError(f"missing label `labels.{name}` (expected 0 or 1)")
            x = _as_f64(v)
            if x != 0.0 and x != 1.0:
                raise RowError(f"`labels.{name}`: expected 0 or 1, found {found(v)}")
            labels.append(x)
        weights = []
        m = _labelled(row, "weights", schema.weights)
        for name in schema.weights:
            v = m.get(name, _MISSING)
            if v is _MISSING:
                raise RowError(f"missing weight `weights.{name}` (expected a finite number >= 0)")
            x = _as_f64(v)
            if x is None or not (math.isfinite(x) and 0.0 <= x <= F32_MAX):
                raise RowError(f"`weights.{name}`: expected a finite number >= 0, found {found(v)}")
            weights.append(x)
        return user, values, lens, labels, weights

    def collate(self, records):
        """Stacks encoded records into `(inputs, labels, users)` CPU tensors, padded."""
        schema = self.schema
        n = len(records)
        inputs = {}
        for i, f in enumerate(schema.fields):
            if f.role in ("sequence", "side"):
                t, e = f.max_len, f.elem_len
                flat = []
                pad = [0 if f.kind == "ids" else 0.0] * (t * e)
                for r in records:
                    vals = r[1][i]
                    flat.extend(vals)
                    flat.extend(pad[: t * e - len(vals)])
            else:
                flat = [x for r in records for x in r[1][i]]
            dtype = torch.int64 if f.kind == "ids" else torch.float32
            inputs[f.name] = torch.tensor(flat, dtype=dtype).reshape(n, *f.shape)
            if f.role == "sequence":
                lens = torch.tensor([r[2][i] for r in records], dtype=torch.int64)
                inputs[f"{f.name}.mask"] = torch.arange(f.max_len).reshape(1, -1) < lens.reshape(-1, 1)
        for k, w in enumerate(schema.weights):
            inputs[w] = torch.tensor([r[4][k] for r in records], dtype=torch.float32)
        labels = {
            name: torch.tensor([r[3][k] for r in records], dtype=torch.float32)
            for k, name in enumerate(schema.labels)
        }
        users = [r[0] for r in records]
        return inputs, labels, users

    def batch(self, rows):
        """Parsed rows (dicts) → `(inputs, labels, users)`. A bad row raises RowError with its
        position in `rows` as `index`."""
        records = []
        for k, row in enumerate(rows):
            try:
                records.append(self.encode(row))
            except RowError as e:
                raise RowError(e.message, k) from None
        return self.collate(records)


# ----------------------------------------------------------------------------------------------
# Files


def _os_message(e):
    """An OSError as Rust's io::Error prints it: `No such file or directory (os error 2)`."""
    if e.errno is not None and e.strerror:
        return f"{e.strerror} (os error {e.errno})"
    return str(e)


def _utf8_message(e):
    """A UnicodeDecodeError as Rust's Utf8Error prints it."""
    if e.reason == "unexpected end of data":
        return f"incomplete utf-8 byte sequence from index {e.start}"
    return f"invalid utf-8 sequence of {max(e.end - e.start, 1)} bytes from index {e.start}"


def _open(path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise DataError(path, 0, f"cannot open: {_os_message(e)}") from None


def scan_lines(path):
    """Yields `(line_number, text, error)` for every non-blank line of a data file: `text` the
    decoded line (BOM stripped on line 1) or None, `error` the message of an undecodable or
    over-long line. Blank lines are skipped as the Rust loader skips them."""
    with _open(path) as fh:
        line_no = 0
        while True:
            line_no += 1
            try:
                raw = fh.readline(MAX_LINE_BYTES + 1)
            except OSError as e:
                raise DataError(path, line_no, f"cannot read: {_os_message(e)}") from None
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while True:  # discard the rest of the over-long line
                    rest = fh.readline(1 << 20)
                    if not rest or rest.endswith(b"\n"):
                        break
                yield line_no, None, f"line is longer than {MAX_LINE_BYTES} bytes"
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield line_no, None, f"line is not valid UTF-8: {_utf8_message(e)}"
                continue
            if line_no == 1:
                text = text.lstrip("\ufeff")
            if not text.strip(_RUST_WHITESPACE):
                continue
            yield line_no, text, None


def _parse_line(path, line_no, text, error):
    if error is not None:
        raise DataError(path, line_no, error)
    try:
        return parse_json(text)
    except ValueError as e:
        raise DataError(path, line_no, f"malformed JSON: {e}") from None
    except RecursionError:
        raise DataError(path, line_no, "malformed JSON: recursion limit exceeded") from None


def read_rows(path):
    """Yields `(line_number, parsed JSON value)` for every non-blank line; a malformed line is a
    DataError naming `file:line`."""
    for line_no, text, error in scan_lines(path):
        yield line_no, _parse_line(path, line_no, text, error)


def shards(path):
    """The files of a split, as the Rust loader finds them (`recspec::data::shards`): `[path]`
    for a file; for a folder the files directly inside ending in `.jsonl` (or `.parquet`, which
    this reader refuses), sorted by name, skipping names that start with `.` or `_`. A nested
    folder, any other file, or no shard at all is a DataError naming the folder."""
    if not os.path.isdir(path):
        return [path]
    try:
        names = os.listdir(path)
    except OSError as e:
        raise DataError(path, 0, f"cannot read the folder: {_os_message(e)}") from None
    found = []
    for name in names:
        if name.startswith((".", "_")):
            continue
        shard = os.path.join(path, name)
        extension = os.path.splitext(name)[1][1:].lower()
        if os.path.isdir(shard):
            raise DataError(
                path, 0,
                f"`{name}` is a folder; a split's shards are files directly inside its folder (nested folders are not read)",
            )
        if extension not in ("jsonl", "parquet"):
            raise DataError(
                path, 0,
                f"`{name}` is not a shard (`.jsonl` or `.parquet`); move it out, or prefix its name with `_` to keep it there unread",
            )
        if extension == "parquet":
            raise DataError(
                shard, 0,
                "a Parquet shard: the PyTorch trainer reads JSON Lines (`recspec convert DATA --to jsonl --out DIR` writes them)",
            )
        found.append(shard)
    if not found:
        raise DataError(path, 0, "the folder holds no shards (`.jsonl` or `.parquet` files)")
    return sorted(found, key=os.fsencode)


def count_rows(path):
    """The number of non-blank rows of a split (valid or not), without parsing them."""
    return sum(_count_file_rows(shard) for shard in shards(path))


def _count_file_rows(path):
    return sum(1 for _ in scan_lines(path))


def shuffle_shards(items, rng):
    """Permutes `items` in place as the Rust loader permutes a folder's shards for a shuffled
    epoch: Fisher–Yates from the last position down, `j = rng.below(i + 1)`."""
    for i in range(len(items) - 1, 0, -1):
        j = rng.below(i + 1)
        items[i], items[j] = items[j], items[i]


class SplitPlan:
    """What rank `rank` of `world` reads of a split. With n shards, the first n - (n mod world)
    go whole to rank `i mod world` (shard i); the last n mod world shards — the one file of a
    one-file split — are read by every rank, each keeping the rows whose 0-based index in the
    shard is `rank (mod world)`. So every row is read by exactly one rank, and a rank opens only
    its own shards and the shared remainder.

    A row's index (`Batch.indices`) counts the non-blank rows of the split in shard order; it
    needs every shard's row count (`set_counts`), which each rank learns for the shards it reads
    (`local_counts`) and the trainer exchanges among the ranks."""

    def __init__(self, path, rank=0, world=1):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in 0..{world}")
        self.path, self.rank, self.world = path, rank, world
        self.shards = shards(path)
        whole = len(self.shards) - len(self.shards) % world
        #: (shard index, file, True if read whole) for the shards this rank reads, in name order
        self.parts = [
            (i, shard, i < whole) for i, shard in enumerate(self.shards) if i >= whole or i % world == rank
        ]
        self.offsets = [0] if len(self.shards) == 1 else None

    def local_counts(self):
        """{shard index: non-blank rows} for the shards this rank reads."""
        return {i: _count_file_rows(shard) for i, shard, _ in self.parts}

    def set_counts(self, counts):
        """Every shard's row count ({index: rows}, as merged from the ranks' `local_counts`)."""
        missing = [self.shards[i] for i in range(len(self.shards)) if i not in counts]
        if missing:
            raise ValueError(f"no row count for shard {missing[0]}")
        self.counts = [counts[i] for i in range(len(self.shards))]
        self.offsets = [sum(self.counts[:i]) for i in range(len(self.shards))]

    def rank_rows(self, rank):
        """How many rows rank `rank` reads (after `set_counts`)."""
        whole = len(self.shards) - len(self.shards) % self.world
        return sum(
            count if i < whole else len(range(rank, count, self.world))
            for i, count in enumerate(self.counts)
            if i >= whole or i % self.world == rank
        )

    def _layout(self):
        """Per part: (first index, rows, read whole, position of its first row among this rank's)."""
        out, base = [], 0
        for i, _, whole in self.parts:
            count = self.counts[i] if whole else len(range(self.rank, self.counts[i], self.world))
            out.append((self.offsets[i], count, whole, base))
            base += count
        return out

    def local_positions(self, indices):
        """The positions among this rank's rows (`0..rank_rows(rank)`, parts in name order) of
        row indices this rank reads (after `set_counts`)."""
        import numpy as np

        layout = self._layout()
        idx = np.asarray(indices, dtype=np.int64)
        starts = np.asarray([l[0] for l in layout], dtype=np.int64)
        k = np.searchsorted(starts, idx, side="right") - 1
        whole = np.asarray([l[2] for l in layout], dtype=bool)[k]
        within = idx - starts[k]
        return np.asarray([l[3] for l in layout], dtype=np.int64)[k] + np.where(whole, within, within // self.world)

    def indices(self):
        """The row indices of this rank's rows, in the order of `local_positions`."""
        import numpy as np

        parts = []
        for (offset, count, whole, _), (i, _, _) in zip(self._layout(), self.parts):
            if whole:
                parts.append(np.arange(offset, offset + count, dtype=np.int64))
            else:
                parts.append(offset + np.arange(self.rank, self.counts[i], self.world, dtype=np.int64))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def rows(self, rng=None):
        """Yields `(index, file, line_number, text, error)` for this rank's rows, unparsed: its
        shards in name order, or permuted by `rng` first (`shuffle_shards`) when given."""
        if self.offsets is None:
            self.set_counts(self.local_counts())  # one process: it reads every shard anyway
        parts = list(self.parts)
        if rng is not None:
            shuffle_shards(parts, rng)
        for i, shard, whole in parts:
            offset = self.offsets[i]
            for index, (line_no, text, error) in enumerate(scan_lines(shard)):
                if whole or index % self.world == self.rank:
                    yield offset + index, shard, line_no, text, error


def shuffled(items, capacity, seed):
    """Yields `items` (any iterable) in the order of recspec's shuffle buffer of `capacity`
    entries drawing from `SplitMix(seed)`; `capacity` 0 yields them in their own order.

    The buffer is filled with the first `capacity` items (or all, if fewer); then, while it is
    not empty, one draw `j = below(len(buffer))` picks the entry to yield, and the next item, if
    any is left, takes its place, else the last entry does (Rust's `Vec::swap_remove`). One draw
    per item, made before the next item is read."""
    if capacity == 0:
        return iter(items)
    return _buffered(items, capacity, SplitMix(seed))


def _buffered(items, capacity, rng):
    items = iter(items)
    buffer = list(islice(items, min(capacity, sys.maxsize)))
    while buffer:
        j = rng.below(len(buffer))
        item = next(items, _MISSING)
        out = buffer[j]
        if item is _MISSING:
            buffer[j] = buffer[-1]
            buffer.pop()
        else:
            buffer[j] = item
        yield out


def iterate(path, schema, batch_size, rank=0, world=1, shuffle_buffer=0, seed=0, plan=None):
    """Yields `Batch`es of up to `batch_size` validated rows of this rank's part of the split
    (`SplitPlan(path, rank, world)`, or `plan` when given, with the counts of every shard set):
    in file order when `shuffle_buffer` is 0, else the shards in a drawn order
    (`shuffle_shards`) and their rows through a shuffle buffer of that many rows, both drawing
    from one `SplitMix(seed)` (`seed` is the generator's own seed, for training
    `rng.shuffle_seed(run_seed, epoch, rank)`). Rows are parsed when they leave the buffer: the
    first bad row emitted raises DataError (`file:line: message`); rows of other ranks are not
    parsed."""
    if batch_size < 1:
        raise DataError(path, 0, "batch size must be at least 1")
    if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
        raise ValueError(f"shuffle buffer must be a non-negative integer, found {shuffle_buffer!r}")
    plan = plan or SplitPlan(path, rank, world)
    if shuffle_buffer == 0:
        rows = plan.rows()
    else:
        rng = SplitMix(seed)
        rows = _buffered(plan.rows(rng), shuffle_buffer, rng)
    batcher = Batcher(schema)
    records, indices, lines, files = [], [], [], []
    for index, shard, line_no, text, error in rows:
        row = _parse_line(shard, line_no, text, error)
        try:
            records.append(batcher.encode(row))
        except RowError as e:
            raise DataError(shard, line_no, e.message) from None
        indices.append(index)
        lines.append(line_no)
        files.append(shard)
        if len(records) == batch_size:
            yield Batch(*batcher.collate(records), indices, lines, files)
            records, indices, lines, files = [], [], [], []
    if records:
        yield Batch(*batcher.collate(records), indices, lines, files)
