"""Vectorized conversion of parsed text columns into canonical values, row failures tracked.

A :class:`Converter` wraps the good rows of one block. Each conversion (time, number, code
lookup) works on whole Arrow columns; a value that does not convert marks its row as bad with
the field and the reason, and :meth:`Converter.finish` moves those rows to the quarantine with
their raw line. Only values of rows that are loaded reach the number normalizer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from cemkit import config
from cemkit.io.base import QUARANTINE_SCHEMA, empty_quarantine
from cemkit.io.csvblock import Block, Quarantined, string_offsets
from cemkit.numbers import normalize_arrow
from cemkit.schema import TS, Column, arrow_schema

_STRING = pd.StringDtype("pyarrow")
_LARGE = pa.large_string()
_jit = njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL)
#: Seconds since the epoch that :data:`TS` (nanoseconds, int64) holds, a day spare each side.
_TS_MIN_S = -(2**63) // 10**9 + 86_400
_TS_MAX_S = (2**63 - 1) // 10**9 - 86_400
_NUMBER_RE = r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$"


def pandas_types(t: pa.DataType) -> object:
    """types_mapper for ``Table.to_pandas``: cemkit's nullable pandas dtypes."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _STRING
    if pa.types.is_integer(t):
        return {8: pd.Int8Dtype(), 16: pd.Int16Dtype(), 32: pd.Int32Dtype(), 64: pd.Int64Dtype()}[
            t.bit_width
        ]
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    return None


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a pandas frame with cemkit's dtypes."""
    # one thread: the columns are already Arrow; pyarrow's pool costs more CPU than it saves
    df = table.to_pandas(types_mapper=pandas_types, ignore_metadata=True, use_threads=False)
    for f in table.schema:
        if pa.types.is_timestamp(f.type) and f.type.unit != "ns":
            df[f.name] = df[f.name].astype(pd.DatetimeTZDtype("ns", "UTC"))
    return df


def quarantine_frame(file: str, q: Quarantined) -> pd.DataFrame:
    """Quarantined rows of one file as a frame in :data:`QUARANTINE_SCHEMA`."""
    if not len(q):
        return empty_quarantine()
    table = pa.table(
        {
            "file": pa.array([file] * len(q), pa.string()),
            "line": pa.array(q.lines, pa.int64()),
            "field": pa.array(q.fields, pa.string()),
            "reason": pa.array(q.reasons, pa.string()),
            "raw": pa.array(q.raws, pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return to_pandas(table).sort_values("line", kind="stable").reset_index(drop=True)


def null_if_empty(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Empty strings as nulls.

    For a string array only its validity bitmap is rebuilt (from the value offsets); the
    values are not copied.
    """
    arr = _flat(arr)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        empty = pc.equal(pc.binary_length(arr), 0)
        if not pc.any(empty).as_py():
            return arr
        return pc.if_else(empty, pa.scalar(None, arr.type), arr)
    n = len(arr)
    valid = np.diff(string_offsets(arr)) != 0
    if arr.null_count:
        known = np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)
        if (valid == known).all():  # no empty value
            return arr
        valid &= known
    elif valid.all():
        return arr
    bits = np.concatenate([np.zeros(arr.offset, dtype=bool), valid]) if arr.offset else valid
    bitmap = pa.py_buffer(np.packbits(bits, bitorder="little"))
    return pa.Array.from_buffers(arr.type, n, [bitmap, *arr.buffers()[1:]], offset=arr.offset)


def _flat(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


class Converter:
    """Column conversions over the good rows of one block, collecting row failures.

    Parameters
    ----------
    block : Block
        Parsed rows (text columns) with their line numbers.
    file : str
        Input path (for the quarantine).
    tag : str
        Short file name used in record ids.
    source : str
        Format name written to ``source`` and used in record ids.
    """

    def __init__(self, block: Block, file: str, tag: str, source: str):
        self.block = block
        self.file = file
        self.tag = tag
        self.source = source
        self.n = block.table.num_rows
        self.bad = np.zeros(self.n, dtype=bool)
        self.bad_field = np.empty(self.n, dtype=object)
        self.bad_reason = np.empty(self.n, dtype=object)
        #: source columns as one array each (the parser's chunks joined once, not per use)
        self._columns: dict[str, pa.Array] = {}

    # -- raw access -------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        """Whether the block has a source column of that name."""
        return name in self.block.table.column_names

    def raw(self, name: str) -> pa.Array:
        """A source column as text (empty string when absent from the block)."""
        if not self.has(name):
            return pa.nulls(self.n, pa.string())
        if name not in self._columns:
            self._columns[name] = _flat(self.block.table.column(name))
        return self._columns[name]

    def text(self, name: str) -> pa.Array:
        """A source column as text, empty values as nulls."""
        return null_if_empty(self.raw(name))

    # -- failures ---------------------------------------------------------------------------
    def flag(self, mask: np.ndarray, field: str, reason: str) -> None:
        """Mark rows as bad (the first failure of a row is the one reported)."""
        new = mask & ~self.bad
        if new.any():
            self.bad_field[new] = field
            self.bad_reason[new] = reason
            self.bad |= new

    # -- conversions ------------------------------------------------------------------------
    def time(self, name: str, fmt: str, tz: str, *, field: str | None = None) -> pa.Array:
        """Local wall-clock text in ``tz`` → UTC timestamps; empty → null, bad → flagged.

        An ambiguous time (the repeated hour of an autumn change) resolves to the earlier
        instant; :meth:`call_times` picks the instants that fit a call's duration instead. A
        nonexistent time (skipped by a spring change) is read with the offset in force before
        the change (PEP 495, ``fold=0``): ``01:30`` on a London spring-change day is 01:30 UTC.
        """
        return self.time_candidates(name, fmt, tz, field=field)[0]

    def time_candidates(self, name: str, fmt: str, tz: str, *,
                        field: str | None = None) -> tuple[pa.Array, pa.Array]:  # fmt: skip
        """(earliest, latest) UTC instants of a local wall-clock time (see :meth:`time`)."""
        col = self.raw(name)
        if pa.types.is_timestamp(col.type):  # converted while parsing (same strptime)
            parsed = col
        else:
            arr = null_if_empty(col)
            parsed = pc.strptime(arr, format=fmt, unit="s", error_is_null=True)
            self._flag_failed(arr, parsed, field or name, f"time not in the format {fmt!r}")
        parsed = self._in_range(_flat(parsed), field or name)
        if tz.upper() == "UTC":
            out = parsed.cast(TS)
            return out, out
        return localize(parsed, tz)

    def _in_range(self, wall: pa.Array, field: str) -> pa.Array:
        """Local times outside what :data:`TS` holds flagged and nulled.

        Years 1678-2261, a day spare for the zone's offset: ``9999-12-31 ...`` is a bad value of
        its row, not an error that stops the load.
        """
        if wall.type != pa.timestamp("s") or len(wall) == 0:
            return wall
        secs = wall.cast(pa.int64())
        lo, hi = pc.min_max(secs).values()
        if lo.as_py() is None or (lo.as_py() >= _TS_MIN_S and hi.as_py() <= _TS_MAX_S):
            return wall
        out = pc.or_(pc.less(secs, _TS_MIN_S), pc.greater(secs, _TS_MAX_S))
        out = pc.fill_null(out, False)
        self.flag(out.to_numpy(zero_copy_only=False), field, "time out of range (years 1678-2261)")
        return pc.if_else(out, pa.scalar(None, wall.type), wall)

    def call_times(self, names: tuple[str, str, str], fmt: str, tz: str,
                   duration: pa.Array | None, billsec: pa.Array | None
                   ) -> tuple[pa.Array, pa.Array, pa.Array]:  # fmt: skip
        """UTC start, answer and end of calls written in local time, consistent across DST.

        Across an autumn change a call may start in the first pass of the repeated hour and
        end in the second: of the instants each local time can stand for, the ones taken are
        those where ``end - start`` is closest to ``duration`` (and ``end - answer`` to
        ``billsec``), never ``end`` before ``start`` when another reading avoids it.
        """
        (s1, s2), (a1, a2), (e1, e2) = (self.time_candidates(n, fmt, tz) for n in names)
        if tz.upper() == "UTC" or (s1 is s2 and a1 is a2 and e1 is e2):
            return s1, a1, e1  # one reading of every time (no ambiguous hour): nothing to pick

        def ints(a: pa.Array) -> np.ndarray:
            return np.asarray(pc.fill_null(a.cast(pa.int64()), 0).to_numpy(zero_copy_only=False))

        def secs(a: pa.Array | None, n: int) -> np.ndarray:
            if a is None:
                return np.full(n, np.nan)
            return np.asarray(pc.cast(a, pa.float64()).to_numpy(zero_copy_only=False), float)

        n = len(s1)
        unit = 1e9  # TS is nanoseconds
        dur, bill = secs(duration, n), secs(billsec, n)
        S = np.stack([ints(s1), ints(s2)])
        E = np.stack([ints(e1), ints(e2)])
        best_cost = np.full(n, np.inf)
        pick_s = np.zeros(n, np.int64)
        pick_e = np.zeros(n, np.int64)
        for i in (0, 1):
            for j in (0, 1):
                span = (E[j] - S[i]) / unit
                cost = np.where(span < 0, 1e12, 0.0)
                cost += np.where(np.isnan(dur), 0.0, np.abs(span - np.nan_to_num(dur)))
                cost += 1e-3 * (i + j)  # ties: the earlier readings
                better = cost < best_cost
                best_cost = np.where(better, cost, best_cost)
                pick_s = np.where(better, i, pick_s)
                pick_e = np.where(better, j, pick_e)
        start = pc.if_else(pa.array(pick_s == 1), s2, s1)
        end = pc.if_else(pa.array(pick_e == 1), e2, e1)
        A = np.stack([ints(a1), ints(a2)])
        end_i = ints(end)
        want = np.where(np.isnan(bill), np.nan, end_i / unit - np.nan_to_num(bill))
        late = np.abs(A[1] / unit - want) < np.abs(A[0] / unit - want)
        late |= np.isnan(want) & (A[0] < ints(start)) & (A[1] >= ints(start))
        answer = pc.if_else(pa.array(late), a2, a1)
        return start, answer, end

    def epoch(self, name: str, unit: str = "s", *, zero_is_null: bool = False,
              field: str | None = None) -> pa.Array:  # fmt: skip
        """Epoch numbers (``s``, ``ms``, ``us``) → UTC timestamps; bad → flagged."""
        num = self.number(name, field=field, allow_negative=False)
        if zero_is_null:
            num = pc.if_else(pc.equal(num, 0), pa.scalar(None, pa.float64()), num)
        scale = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}[unit]
        ns = pc.cast(pc.round(pc.multiply(num, scale)), pa.int64())
        return ns.cast(pa.timestamp("ns")).cast(TS)

    def number(self, name: str, *, field: str | None = None, allow_negative: bool = False,
               arr: pa.Array | None = None) -> pa.Array:  # fmt: skip
        """Text → float64; empty → null; non-numeric, infinite or negative → flagged.

        Blanks and tabs around the number are ignored, as pyarrow's CSV number parsing does.
        """
        if arr is None:
            col = self.raw(name)
            arr = col if pa.types.is_floating(col.type) else self.text(name)
        if pa.types.is_floating(arr.type):  # converted while parsing
            out = arr
        else:
            arr = pc.utf8_trim(arr, " \t")
            try:
                out = pc.cast(arr, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                ok = pc.fill_null(pc.match_substring_regex(arr, _NUMBER_RE), True)
                bad = ~ok.to_numpy(zero_copy_only=False)
                self.flag(bad, field or name, "not a number")
                out = pc.cast(pc.if_else(ok, arr, pa.scalar(None, arr.type)), pa.float64())
        finite = pc.fill_null(pc.is_finite(out), True).to_numpy(zero_copy_only=False)
        if not finite.all():
            self.flag(~finite, field or name, "not a finite number")
            out = pc.if_else(pa.array(finite), out, pa.scalar(None, pa.float64()))
        if not allow_negative:
            neg = pc.fill_null(pc.less(out, 0), False).to_numpy(zero_copy_only=False)
            if neg.any():
                self.flag(neg, field or name, "negative value")
        return out

    def integer(self, name: str, type: pa.DataType, *, field: str | None = None) -> pa.Array:
        """Text → integer of ``type``; empty → null; bad or out of range → flagged."""
        num = self.number(name, field=field, allow_negative=True)
        lo, hi = _int_range(type)
        ok = pc.and_(pc.equal(pc.floor(num), num),
                     pc.and_(pc.greater_equal(num, lo), pc.less_equal(num, hi)))  # fmt: skip
        ok = pc.fill_null(ok, True)
        bad = ~ok.to_numpy(zero_copy_only=False)
        if bad.any():
            self.flag(bad, field or name, f"not an integer that fits {type}")
            num = pc.if_else(ok, num, pa.scalar(None, pa.float64()))
        return pc.cast(num, type)

    def lookup(self, arr: pa.Array, mapping: Mapping[str, object], out_type: pa.DataType,
               *, field: str, strict: bool, default: object = None,
               normalize_case: bool = True) -> pa.Array:  # fmt: skip
        """Map text values through a dict (done on distinct values).

        Unknown non-null values are flagged when ``strict``, else mapped to ``default``.
        """
        arr = _flat(arr)
        enc = pc.dictionary_encode(arr)
        values = enc.dictionary.to_pylist()
        keyed = {(k.strip().upper() if normalize_case else k): v for k, v in mapping.items()}
        mapped = []
        unknown_codes = []
        for i, v in enumerate(values):
            key = v.strip().upper() if (normalize_case and v is not None) else v
            if key in keyed:
                mapped.append(keyed[key])
            else:
                mapped.append(default)
                unknown_codes.append(i)
        if strict and unknown_codes:
            idx = enc.indices.to_numpy(zero_copy_only=False)
            self.flag(np.isin(idx, unknown_codes), field, "unknown value")
        return pc.take(pa.array(mapped, out_type), enc.indices)

    def _flag_failed(self, src: pa.Array, out: pa.Array, field: str, reason: str) -> None:
        failed = pc.and_(pc.is_valid(src), pc.is_null(out))
        if pc.any(failed).as_py():
            self.flag(failed.to_numpy(zero_copy_only=False), field, reason)

    # -- output -----------------------------------------------------------------------------
    def finish(
        self,
        columns: Mapping[str, pa.Array],
        extensions: Iterable[Column] = (),
        *,
        default_region: str | None,
        numbers: Iterable[str] = ("a_number", "b_number"),
        schema: pa.Schema | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Assemble records of the good rows and the quarantine of the block.

        ``schema`` is the output schema (default: canonical usage records with ``extensions``;
        measurement loaders pass :func:`cemkit.schema_measurements.measurement_schema`).
        """
        ext = list(extensions)
        numbers = tuple(numbers)
        schema = arrow_schema(ext) if schema is None else schema
        start, end = columns.get("start"), columns.get("end")
        if isinstance(start, pa.Array) and isinstance(end, pa.Array):
            before = pc.fill_null(pc.less(end, start), False).to_numpy(zero_copy_only=False)
            self.flag(before, "end", "end time before start time")
        keep = ~self.bad
        lines = self.block.lines
        q = Quarantined()
        q.extend(self.block.quarantine)
        if self.bad.any():
            bad_lines = lines[self.bad]
            raws = self.block.raw_lines(bad_lines)
            for ln, f, r, raw in zip(bad_lines, self.bad_field[self.bad],
                                     self.bad_reason[self.bad], raws, strict=True):  # fmt: skip
                q.add(int(ln), str(f), str(r), raw)
        mask = pa.array(keep)
        n_keep = int(keep.sum())
        good_lines = pa.array(lines[keep])
        arrays: dict[str, pa.Array] = {}
        # Text is built as large_string, what the pandas string dtype holds: to_pandas then
        # wraps every text column as it is instead of casting its offsets once more.
        frame_schema = pa.schema([f.with_type(_LARGE) if pa.types.is_string(f.type) else f
                                  for f in schema])  # fmt: skip
        for f in frame_schema:
            if f.name == "record_id" and "record_id" not in columns:
                prefix = pa.scalar(f"{self.source}:{self.tag}:", _LARGE)
                arrays[f.name] = pc.binary_join_element_wise(
                    prefix, pc.cast(good_lines, _LARGE), pa.scalar("", _LARGE)
                )
                continue
            if f.name == "source" and "source" not in columns:
                arrays[f.name] = pa.repeat(pa.scalar(self.source, f.type), n_keep)
                continue
            if f.name not in columns:
                arrays[f.name] = pa.nulls(n_keep, f.type)
                continue
            val = columns[f.name]
            if isinstance(val, pa.Scalar):
                val = val.as_py()
            if val is None or isinstance(val, str | int | float | bool):
                arrays[f.name] = pa.repeat(pa.scalar(val, f.type), n_keep)
                continue
            val = _flat(val)
            if n_keep != self.n:
                val = val.filter(mask)
            elif f.name in numbers and pa.types.is_dictionary(val.type):
                # normalized on the dictionary's values (when rows were set aside it may hold
                # numbers of quarantined rows only: those never reach the normalizer)
                arrays[f.name] = val
                continue
            arrays[f.name] = val.cast(f.type) if val.type != f.type else val
        for col in numbers:
            arrays[col], arrays[f"{col}_kind"] = normalize_arrow(arrays[col], default_region,
                                                                 large=True)  # fmt: skip
        table = pa.Table.from_arrays([arrays[f.name] for f in frame_schema], schema=frame_schema)
        return to_pandas(table), quarantine_frame(self.file, q)


def localize(wall: pa.Array, tz: str) -> tuple[pa.Array, pa.Array]:
    """(earliest, latest) UTC instants of naive local times in ``tz`` (see :func:`localize_rows`).

    A zone's offsets change at a few instants a year, so the zone rules are applied to the
    first and last second of each distinct hour of the input only: an hour whose two ends
    have the same readings holds no change, and its rows are shifted by those offsets in one
    jitted pass (a zone changes its offset at most once within an hour). Rows of the hours that
    hold a change take :func:`localize_rows`. Same results, a few hundred zone look-ups per block.
    """
    if wall.type != pa.timestamp("s") or len(wall) == 0:  # finer units: row by row
        return localize_rows(wall, tz)
    n = len(wall)
    # the seconds as they are in the buffer (a null row's are meaningless, masked below)
    w = np.frombuffer(wall.buffers()[1], np.int64, count=n, offset=wall.offset * 8)
    if wall.null_count:
        valid = np.asarray(pc.is_valid(wall).to_numpy(zero_copy_only=False), dtype=bool)
    else:
        valid = np.ones(n, dtype=bool)
    if not valid.any():
        return localize_rows(wall, tz)
    lo, hi = _hour_span(w, valid)
    if hi - lo > 1 << 22:  # decades apart: sort instead of a table of the span
        hours, inverse = _distinct_hours(np.where(valid, w, 0) // 3600)
        spread, base = np.arange(len(hours)), 0
    else:
        present = _hours_present(w, valid, lo, hi)
        hours = np.flatnonzero(present) + lo
        spread = np.full(hi - lo + 1, -1, np.int64)  # hour - lo -> its index in ``hours``
        spread[hours - lo] = np.arange(len(hours))
        inverse = None
        base = lo
    secs = np.concatenate([hours * 3600, hours * 3600 + 3599])  # each hour's two ends
    e_end, l_end = localize_rows(pa.array(secs, pa.timestamp("s")), tz)
    k = len(hours)
    off_e = secs - np.asarray(e_end.cast(pa.int64()).to_numpy()) // 10**9
    off_l = secs - np.asarray(l_end.cast(pa.int64()).to_numpy()) // 10**9
    steady = (off_e[:k] == off_e[k:]) & (off_l[:k] == off_l[k:])
    if inverse is None:
        early, late, changing_rows = _shift_by_hour(w, valid, base, spread, off_e[:k],
                                                    off_l[:k], steady)  # fmt: skip
    else:
        early = (w - off_e[:k][inverse]) * 10**9
        late = (w - off_l[:k][inverse]) * 10**9
        changing_rows = ~steady[inverse] & valid
    mask = ~valid if not valid.all() else None
    out_e = pa.array(early, TS, mask=mask)
    changing = np.flatnonzero(changing_rows)
    if not len(changing) and (off_e == off_l).all():
        return out_e, out_e  # no hour of the input is ambiguous: one reading (the same object)
    out_l = pa.array(late, TS, mask=mask)
    if len(changing):
        slow_e, slow_l = localize_rows(wall.take(pa.array(changing)), tz)
        where = np.zeros(n, dtype=bool)
        where[changing] = True
        out_e = pc.replace_with_mask(out_e, pa.array(where), slow_e)
        out_l = pc.replace_with_mask(out_l, pa.array(where), slow_l)
    return out_e, out_l


@_jit
def _hour_span(w: np.ndarray, valid: np.ndarray) -> tuple[int, int]:
    """First and last hour (``seconds // 3600``) of the valid rows."""
    lo, hi = np.int64(0), np.int64(-1)
    first = True
    for i in range(w.size):
        if valid[i]:
            h = w[i] // 3600
            if first:
                lo, hi, first = h, h, False
            elif h < lo:
                lo = h
            elif h > hi:
                hi = h
    return int(lo), int(hi)


@_jit
def _hours_present(w: np.ndarray, valid: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Which hours ``lo..hi`` hold a valid row."""
    present = np.zeros(hi - lo + 1, np.bool_)
    for i in range(w.size):
        if valid[i]:
            present[w[i] // 3600 - lo] = True
    return present


@_jit
def _shift_by_hour(w: np.ndarray, valid: np.ndarray, lo: int, spread: np.ndarray,
                   off_e: np.ndarray, off_l: np.ndarray, steady: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Nanoseconds of each row shifted by its hour's two offsets, and the rows of unsteady hours."""
    n = w.size
    early = np.zeros(n, np.int64)
    late = np.zeros(n, np.int64)
    changing = np.zeros(n, np.bool_)
    for i in range(n):
        if valid[i]:
            j = spread[w[i] // 3600 - lo]
            early[i] = (w[i] - off_e[j]) * 1_000_000_000
            late[i] = (w[i] - off_l[j]) * 1_000_000_000
            changing[i] = not steady[j]
    return early, late, changing


def _distinct_hours(hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(hours, return_inverse=True)`` by a table over the span (no sort)."""
    if not len(hours):
        return np.unique(hours, return_inverse=True)
    lo, hi = int(hours.min()), int(hours.max())
    if hi - lo > 1 << 22:  # decades apart: sort instead of a table of the span
        return np.unique(hours, return_inverse=True)
    rel = hours - lo
    present = np.zeros(hi - lo + 1, dtype=bool)
    present[rel] = True
    where = np.cumsum(present) - 1
    return np.flatnonzero(present) + lo, where[rel]


def localize_rows(wall: pa.Array, tz: str) -> tuple[pa.Array, pa.Array]:
    """(earliest, latest) UTC instants of naive local times in ``tz``, as :data:`TS` arrays.

    Ambiguous times give two instants; a nonexistent time gives the instant its wall time
    has under the offset in force before the gap (PEP 495, the zone's own rules), not the
    edge of the gap (which would give a call that started in the gap a start equal to its end).

    Examples
    --------
    >>> import datetime as dt
    >>> t = pa.array([dt.datetime(2026, 3, 29, 1, 30), dt.datetime(2026, 10, 25, 1, 30)],
    ...              pa.timestamp("s"))
    >>> [[str(v) for v in c.to_pylist()] for c in localize_rows(t, "Europe/London")]
    [['2026-03-29 01:30:00+00:00', '2026-10-25 00:30:00+00:00'], \
['2026-03-29 01:30:00+00:00', '2026-10-25 01:30:00+00:00']]
    """
    wall = wall.cast(pa.timestamp("us"))
    early = pc.assume_timezone(wall, timezone=tz, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(wall, timezone=tz, ambiguous="latest", nonexistent="earliest")
    w = pc.cast(wall, pa.int64())
    e = pc.cast(early.cast(pa.timestamp("us")), pa.int64())
    shown = pc.cast(pc.local_timestamp(early).cast(pa.timestamp("us")), pa.int64())
    gap = pc.fill_null(pc.not_equal(shown, w), False)
    # in a gap: the offset before it is (wall time shown - instant) of the gap's edge
    before = pc.subtract(w, pc.subtract(shown, e))
    fixed = pc.cast(before, pa.timestamp("us", tz="UTC"))
    early = pc.if_else(gap, fixed, early.cast(pa.timestamp("us", tz="UTC")))
    late = pc.if_else(gap, fixed, late.cast(pa.timestamp("us", tz="UTC")))
    return early.cast(TS), late.cast(TS)


def _int_range(t: pa.DataType) -> tuple[float, float]:
    info = np.iinfo(t.to_pandas_dtype())
    return float(info.min), float(info.max)
