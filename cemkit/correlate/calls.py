"""Pair legs, match xDRs and label intents in one pass: one key, one sort, one gather.

:func:`pair_legs`, :func:`match` and :func:`sessionize` all key rows by ``service``, ``a_number``
and ``b_number`` and order a key's rows by ``start`` (ties: row position). Each of them drops some
rows and keeps the others in input order, so the rows left after one step are still in that order
when restricted to themselves. :func:`correlate_calls` therefore encodes the key once, sorts once
and runs the three kernels on index arrays, composing the row selections; the wide record columns
are gathered once at the end. The result is exactly
``sessionize(match(pair_legs(records, pt), mt), window, output="records")``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cemkit import arrowstr
from cemkit.columnar import Columns, array_of, series
from cemkit.correlate import _frames, _kernels
from cemkit.correlate.match import CDR_ONLY, MATCHED, XDR_FIELDS, XDR_ONLY
from cemkit.correlate.pair_legs import TERM_FIELDS
from cemkit.labels import VOCABULARIES, label_codes

KEY = ("service", "a_number", "b_number")
#: Values of ``src_match`` by code (the type ``string[pyarrow]`` arrays hold).
_STATUS = pa.array([MATCHED, CDR_ONLY, XDR_ONLY], pa.large_string())


def correlate_calls(
    records: pd.DataFrame,
    pair_tolerance: Any = "5s",
    match_tolerance: Any = "5s",
    window: Any = "120s",
    close_on_answer: bool = True,
    fill_from_xdr: Sequence[str] = (),
) -> pd.DataFrame:
    """``pair_legs``, then ``match``, then ``sessionize(output="records")`` on pandas records.

    Parameters
    ----------
    records : pandas.DataFrame
        One partition of (stitched) canonical records, every row of a pair of parties in it.
    pair_tolerance, match_tolerance, window, close_on_answer
        As for :func:`~cemkit.correlate.pair_legs`, :func:`~cemkit.correlate.match` and
        :func:`~cemkit.correlate.sessionize`.
    fill_from_xdr : sequence of str
        Columns whose nulls a matched xDR's value fills (``src_xdr_<name>``), as
        :func:`cemkit.runs.library.with_signaling` does to the result (here on its arrays).

    Returns
    -------
    pandas.DataFrame
        The frame the three correlators give one after the other (same rows, order, index,
        columns, dtypes and values).

    Examples
    --------
    >>> import pandas as pd
    >>> from cemkit import schema
    >>> from cemkit.correlate.calls import correlate_calls
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> recs = schema.conform(pd.DataFrame({
    ...     "record_id": ["o", "t", "x"], "source": "x", "service": "voice",
    ...     "record_kind": ["cdr", "cdr", "xdr"], "a_number": "p1", "b_number": "p2",
    ...     "leg": ["orig", "term", None], "outcome": "answered",
    ...     "start": [t, t + pd.Timedelta("1s"), t + pd.Timedelta("2s")]}))
    >>> out = correlate_calls(recs)
    >>> cols = ["record_id", "src_term_record_id", "src_xdr_record_id", "src_intent_id"]
    >>> print(out[cols].to_string(index=False))
    record_id src_term_record_id src_xdr_record_id src_intent_id
            o                  t                 x             o
    """
    _frames.require(records, [*KEY, "leg", "record_kind", "start", "end", "outcome",
                              "record_id"], "correlate")  # fmt: skip
    # one column per name is what the one gather needs (a micro-batch's names are unique)
    if not (isinstance(records, Columns) or records.columns.is_unique):
        from cemkit.correlate import match, pair_legs, sessionize
        from cemkit.runs.library import with_signaling

        paired = pair_legs(records, pair_tolerance)
        out = sessionize(match(paired, match_tolerance), window, close_on_answer,
                         output="records")  # fmt: skip
        return with_signaling(out, fill_from_xdr) if fill_from_xdr else out
    records = _frames.without_attrs(records)
    kind = _frames.time_kind(records["start"])
    pair_tol = delta_ns(pair_tolerance, kind, "tolerance")
    match_tol = delta_ns(match_tolerance, kind, "tolerance")
    win = delta_ns(window, kind, "window")
    start = _time_ns(records, "start")
    # the one sort, shared by the three steps (the key and start come out in its order)
    key, (order, ks, ts), parts = _party_order(records, start)
    # the labels' codes are the kernels' (CDR, XDR; ORIG, TERM: their index in these, -1 other)
    kinds = _label_index(records, "record_kind", _KINDS)
    legs = _label_index(records, "leg", _LEGS)
    answered = _label_index(records, "outcome", ("answered",)) == 0
    code = _kernels.call_codes(kinds, legs, answered)
    end = _time_ns(records, "end")
    steps = (end, code, pair_tol, match_tol, win, bool(close_on_answer))
    n = len(records)
    ok, pair, matched, label, rank = _kernels.calls_in_order(order, ks, ts, n, parts, *steps)
    if not ok:  # a hash collision of two parties keys: their exact key instead
        key, _ = _frames.composite_key([records[c] for c in KEY])
        order, ks, ts = _kernels.grouped_order_gathered(key, start)
        ok, pair, matched, label, rank = _kernels.calls_in_order(order, ks, ts, n, (key,),
                                                                 *steps)  # fmt: skip

    # pair_legs: an originating leg absorbs its terminating leg; match, on the rows pair_legs
    # kept: a CDR absorbs its xDR; the intents of the rows match kept
    rows2, term_idx, xdr, status, label, attempt = _kernels.calls_kept(kinds, legs, pair, matched,
                                                                      label, rank)  # fmt: skip

    # one gather of the wide columns, then the added ones, in the order the steps add them;
    # on arrays, one frame built at the end (per-column Series cost more than a small batch)
    index = records.index[rows2]
    term_cols = [c for c in TERM_FIELDS if c in records]  # (a frame: in its columns)
    xdr_cols = [c for c in XDR_FIELDS if c in records]
    small = len(records) <= BLOCK_GATHER_ROWS
    if small:
        # a micro-batch: the columns left pending (cemkit.columnar), gathered when read, those
        # of one dtype as one block (one call per dtype, not one per column: the per-call cost
        # is most of the work on a few thousand rows); a frame's at once, below
        source = records if isinstance(records, Columns) else Columns.of(records)
        columns = source.pending(source.names, rows2)
        term_taken = source.pending(term_cols, term_idx, missing=True)
        xdr_taken = source.pending(xdr_cols, xdr, missing=True)
        taken = [term_taken[c] for c in term_cols] + [xdr_taken[c] for c in xdr_cols]
        record_ids = None  # the intent ids: pending too (below), taken with the others
    else:
        arrays = _frames.column_arrays(records)
        keep = np.zeros(n, bool)
        keep[rows2] = True
        columns = _frames.select_arrays(arrays, keep)
        arrow_term, arrow_xdr = (pa.array(i, mask=i < 0) for i in (term_idx, xdr))
        wanted = [(c, term_idx, arrow_term) for c in term_cols]
        wanted += [(c, xdr, arrow_xdr) for c in xdr_cols]
        # as_if_missing: the one-by-one correlators' dtypes (also when every row has a partner)
        taken = _frames.map_threads(
            lambda cw: _frames.take_array(arrays[cw[0]], cw[1], as_if_missing=True,
                                          arrow_idx=cw[2]),
            wanted, len(index),
        )  # fmt: skip
        record_ids = arrays["record_id"]
    columns.update(zip([f"src_term_{c}" for c in term_cols], taken[: len(term_cols)], strict=True))
    columns["src_paired"] = pd.arrays.BooleanArray(term_idx >= 0, np.zeros(term_idx.size, bool))
    columns.update(zip([f"src_xdr_{c}" for c in xdr_cols], taken[len(term_cols) :], strict=True))
    codes = pa.array(status, mask=status < 0)
    columns["src_match"] = pd.arrays.ArrowStringArray(_STATUS.take(codes))
    if record_ids is None and (not label.size or label.min() >= 0):
        # a micro-batch: the record ids at the intents' first rows, pending (one gather)
        columns["src_intent_id"] = source.pending(["record_id"], label)["record_id"]
    else:
        if record_ids is None:
            record_ids = source.array("record_id")
        columns["src_intent_id"] = record_ids.take(label)
    columns["src_attempt"] = pd.arrays.IntegerArray(attempt, np.zeros(attempt.size, bool))
    fill = [n for n in fill_from_xdr if n in columns and f"src_xdr_{n}" in columns]
    if small:
        codes_of = getattr(records, "codes", {})
        out = Columns(columns, index, {c: v[rows2] for c, v in codes_of.items()},
                      owner=getattr(records, "owner", None))  # fmt: skip
        for name in fill:
            out.put(name, _fill_nulls(out.array(name), out.array(f"src_xdr_{name}")))
        if isinstance(records, Columns):  # the real-time path: gathered and framed when asked for
            return out
        return out.frame()
    for name in fill:
        columns[name] = _fill_nulls(columns[name], columns[f"src_xdr_{name}"])
    if isinstance(records, Columns):
        return Columns(columns, index, {c: v[rows2] for c, v in records.codes.items()})
    return pd.DataFrame(columns, index=index, copy=False)


def _party_order(
    records: Any, start: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]]:
    """The correlators' key of (service, a_number, b_number) and the rows in its (start) order.

    ``(key, (order, key[order], start[order]), parts)``, as
    :func:`~cemkit.correlate._frames.hashed_key_sorted` gives them.

    The key: equal keys, equal values; -1 null. From the parties' codes where protect left them
    (:attr:`cemkit.columnar.Columns.codes`: no token string re-encoded), else a hash of the
    columns' integers (:func:`~cemkit.correlate._frames.hashed_key_sorted`), with the integers it
    was hashed from: :func:`~cemkit.correlate._kernels.calls_in_order` checks them. Only equality
    of keys matters to the kernels, so both give the same result.
    """
    codes = getattr(records, "codes", {})
    if not all(c in codes for c in KEY[1:]):
        return _frames.hashed_key_sorted([records[c] for c in KEY], start)
    values, at = _source_of(records, KEY[0])
    service, n_service = _label_codes(values, VOCABULARIES[KEY[0]])
    if at is not None:  # coded on the column's source rows (equal codes: equal values)
        service = service[at]
    a, b = codes[KEY[1]], codes[KEY[2]]
    base = int(max(a.max(initial=-1), b.max(initial=-1))) + 1
    key = (service * base + a) * base + b
    key[(service < 0) | (a < 0) | (b < 0)] = -1
    if max(n_service, 1) * base * base >= 2**62:  # pragma: no cover - billions of parties
        return _frames.hashed_key_sorted([records[c] for c in KEY], start)
    return key, _kernels.grouped_order_gathered(key, start), (key,)


def _source_of(records: Any, name: str) -> tuple[pd.Series, np.ndarray | None]:
    """Column ``name``, or, pending in a :class:`Columns`, its source and the positions taken.

    What a reader that only compares or codes a label column reads: ``f(source)[positions]``
    is ``f(column)`` for a row-wise ``f``, and the strings are not gathered
    (:meth:`cemkit.columnar.Columns.source`; the KQIs read them the same way).
    """
    if isinstance(records, Columns):
        values, at = records.source(name)
        if at is not None:
            return series(values, name), at
    return records[name], None


#: ``record_kind`` and ``leg`` values in the order of their kernel codes
#: (:data:`~cemkit.correlate._kernels.CDR`, ...): a label's index in these is its code.
_KINDS = ("cdr", "xdr")
_LEGS = ("orig", "term")
assert (_kernels.CDR, _kernels.XDR, _kernels.ORIG, _kernels.TERM) == (0, 1, 0, 1)


def _label_index(records: Any, name: str, vocabulary: Sequence[str]) -> np.ndarray:
    """Each row's index in ``vocabulary`` (int8; -1: null, another value), by :func:`_source_of`.

    :func:`cemkit.labels.label_codes` of the column (on a pending column's source, then taken).
    """
    values, at = _source_of(records, name)
    found = label_codes(values, tuple(vocabulary))
    return found if at is None else found[at]


def _label_codes(values: pd.Series, vocabulary: Sequence[str] = ()) -> tuple[np.ndarray, int]:
    """:func:`~cemkit.correlate._frames.column_codes` of a label column (a few distinct values).

    Arrow strings by their index in ``vocabulary`` (:func:`cemkit.labels.label_codes`) where
    every row holds one of its values, else by one ``dictionary_encode`` (not first tried as
    tokens); equal codes are equal values, -1 null, as there. Returns the codes and their
    upper bound.
    """
    arr = values.array
    if not isinstance(arr, pd.arrays.ArrowStringArray) or not len(arr):
        return _frames.column_codes(values)
    if vocabulary:
        # the usual values by one pass of the label matcher (a dictionary encoding costs ~3x):
        # a row of none of them (or null) leaves it to the encoding
        found = label_codes(arr, vocabulary)
        if found.min() >= 0:
            return found.astype(np.int64), len(vocabulary)
    codes, dictionary = arrowstr.dictionary_codes(pa.array(arr))
    return codes, len(dictionary)


@functools.lru_cache(maxsize=64, typed=True)
def delta_ns(value: Any, kind: str, name: str) -> int:
    """:func:`~cemkit.correlate._frames.delta_ns`, kept per setting (a batch's are the same).

    Parsing ``"5s"`` into a Timedelta costs ~40 µs, four times per micro-batch.
    """
    return _frames.delta_ns(value, kind, name)


def _time_ns(records: Any, name: str) -> np.ndarray:
    """:func:`~cemkit.correlate._frames.time_ns` of a column (ns datetimes: their int64 values).

    NaT is :data:`~cemkit.correlate._kernels.NULL_TIME`, as there.
    """
    arr = array_of(records, name)
    if isinstance(arr, pd.arrays.DatetimeArray) and arr.unit == "ns":
        return np.asarray(arr.asi8, dtype=np.int64)
    return _frames.time_ns(records[name])


def _fill_nulls(values: Any, fill: Any) -> Any:
    """:func:`~cemkit.correlate._frames.fill_nulls`; two masked arrays of one dtype directly."""
    if (isinstance(values, pd.arrays.IntegerArray | pd.arrays.FloatingArray)
            and type(fill) is type(values) and fill.dtype == values.dtype):  # fmt: skip
        return type(values)(np.where(values._mask, fill._data, values._data),
                            values._mask & fill._mask)  # fmt: skip
    return _frames.fill_nulls(values, fill)


#: Rows up to which :func:`correlate_calls` gathers its columns block by block (one call per
#: dtype, when they are read: :meth:`cemkit.columnar.Columns.pending`); above, column by column
#: on threads (:func:`cemkit.correlate._frames.map_threads`).
BLOCK_GATHER_ROWS = 65_536
