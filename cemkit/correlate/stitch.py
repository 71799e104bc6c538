"""Stitch partial records of one call into one record.

Switches cut long calls into partial records (3GPP "partial record", ``partial_seq`` 1, 2, ...).
:func:`stitch` puts them back together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cemkit.columnar import Columns, array_of, column_array, gather_blocks
from cemkit.correlate import _frames, _kernels
from cemkit.correlate.calls import _time_ns, delta_ns
from cemkit.labels import label_codes

#: Columns :func:`stitch` adds to the records (names under the ``src_`` prefix of the schema).
STITCH_COLUMNS: dict[str, str] = {
    "src_partials": "Number of records stitched into this one (1 for a record that was whole).",
    "src_partials_out_of_order": (
        "A partial with a higher partial_seq starts before one with a lower partial_seq."
    ),
    "src_partials_missing": (
        "The partial_seq numbers present are not 1, 2, ..., n: at least one partial is missing "
        "(a lost last partial cannot be seen)."
    ),
    "src_partials_duplicate": "Two partials carry the same partial_seq.",
}

#: Columns whose value comes from the last partial (the one that ended the call).
_FROM_LAST = ("outcome", "cause_q850", "sip_status", "released_by", "closing_cause")
#: Columns averaged over the partials that have a value.
_MEAN = ("mos", "loss_ratio", "jitter_ms")
#: Columns summed over the partials.
_SUM = ("duration_s", "billsec_s", "volume_up_bytes", "volume_down_bytes")

DEFAULT_BY = ("record_kind", "node", "leg")


def stitch_labels(
    records: pd.DataFrame, gap: Any = "1s", by: Sequence[str] = DEFAULT_BY
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kernel result for pandas records: (representative position, rank, flags) per row.

    See :func:`stitch` for the parameters and :func:`cemkit.correlate._kernels.stitch_groups`
    for the meaning of the arrays.
    """
    n = len(records)
    rows, label_at, rank_at, flags = _call_rows(records, gap, by)
    label = np.arange(n, dtype=np.int64)
    rank = np.zeros(n, np.int64)
    label[rows] = label_at
    rank[rows] = rank_at
    return label, rank, flags


def _call_rows(
    records: pd.DataFrame, gap: Any, by: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`stitch_labels` on the rows that may share a call: ``(rows, label, rank, flags)``.

    Only the rows that may belong to a call of several records are keyed and grouped: those
    whose call reference another row shares, and those without one (chained by parties):
    ``rows`` (ascending), with their labels (row positions) and ranks. Every other row is a
    call of its own (its label itself, rank 0), flagged only when it carries a ``partial_seq``
    other than 1 (a partial whose others are elsewhere: missing), unless it is a registration:
    a batch without partials pays this check, not a stitch. ``flags``: of every row.
    """
    by = list(by)
    needed = ["call_id", "partial_seq", "start", "end", "a_number", "b_number", *by]
    _frames.require(records, needed, "stitch")
    kind = _frames.time_kind(records["start"])
    gap_ns = delta_ns(gap, kind, "gap")
    n = len(records)
    flags = np.zeros(n, np.int8)
    none = np.zeros(0, np.int64)
    if not n:
        return none, none, none, flags
    call_codes = getattr(records, "codes", {}).get("call_id")
    if call_codes is not None:  # protect's codes of the call ids (cemkit.columnar.Columns)
        ref = np.asarray(call_codes, np.int64)
        has_ref = ref >= 0  # (-1: null)
        # nearly every call reference is on one record: those records are calls of their own
        # whatever the ``by`` columns hold, so the full key is encoded only for the references
        # several records share (the partials, a few thousand rows in a million)
        counts = np.bincount(ref[has_ref], minlength=max(int(ref.max(initial=-1)) + 1, 1))
        shared = has_ref & (counts[np.maximum(ref, 0)] > 1)
    else:
        has_ref = records["call_id"].notna().to_numpy(dtype=bool)
        # a hash of each reference (its token bits, or its code) repeated on another row:
        # every reference several rows share, and the rare ones whose hashes collide (their
        # full key below tells them apart), without a dictionary of a million references
        parts, null = _frames.key_parts(records["call_id"])
        shared = _kernels.repeated(_kernels.hash_key(parts, null | ~has_ref))
    seq = _int64_or_minus_one(records, "partial_seq")
    # a whole record carrying a sequence number other than 1: a call of its own, flagged missing
    # (what the kernel finds for a key of one row), unless a registration (never a partial)
    lone = np.flatnonzero(has_ref & ~shared & (seq >= 0) & (seq != 1))
    if lone.size and "record_kind" in records:
        lone = lone[_label_index_at(records, "record_kind", ("registration",), lone) != 0]
        flags[lone] = _kernels.FLAG_MISSING
    rows = np.flatnonzero(shared | ~has_ref)  # the rows that may share a call
    if not rows.size:
        return rows, rows, rows, flags
    key = np.full(rows.size, -1, np.int64)
    ref_rows = np.flatnonzero(has_ref[rows])  # (positions in ``rows``)
    nref = 0
    if ref_rows.size:
        at = rows[ref_rows]
        found = shared_call_key(records, at, by) if call_codes is not None else None
        if found is None:
            found = _frames.composite_key(
                [records[c].iloc[at] for c in [*by, "call_id"]],
                null_is_value=[True] * len(by) + [False],
            )
        kref, nref = found
        key[ref_rows] = kref
    noref_rows = np.flatnonzero(~has_ref[rows])
    if noref_rows.size:
        at = rows[noref_rows]
        kpar, _ = _frames.composite_key(
            [records[c].iloc[at] for c in [*by, "a_number", "b_number"]],
            null_is_value=[True] * len(by) + [False, False],
        )
        key[noref_rows] = np.where(kpar >= 0, kpar + nref, -1)
    if "record_kind" in records:  # (a frame: in its columns)
        # a REGISTER refresh reuses its Call-ID (RFC 3261 section 10.2.4): each registration
        # attempt is a record of its own, never a partial of another
        key[_label_index_at(records, "record_kind", ("registration",), rows) == 0] = -1
    start = _time_ns(records, "start")[rows]  # (a micro-batch's: their int64 values, no Series)
    end = _time_ns(records, "end")[rows]
    sub_label, sub_rank, sub_flags = _kernels.stitch_groups(key, seq[rows], start, end,
                                                            ~has_ref[rows], gap_ns)  # fmt: skip
    flags[rows] = sub_flags
    return rows, rows[sub_label], sub_rank, flags


def _label_index_at(records: Any, name: str, vocabulary: Sequence[str],
                    rows: np.ndarray) -> np.ndarray:  # fmt: skip
    """:func:`~cemkit.correlate.calls._label_index` of column ``name`` at ``rows`` only.

    A column of a frame or a :class:`~cemkit.columnar.Columns` (a pending one by its source):
    the labels of those rows only (:func:`~cemkit.labels.label_codes` ``rows=``), so the labels
    of a few rows do not cost a pass over all, nor a take of their strings.
    """
    values: Any
    if isinstance(records, Columns):
        values, at = records.source(name)
        if at is not None:
            rows = at[rows]
    else:
        values = column_array(records, name)
    return label_codes(values, tuple(vocabulary), rows=np.asarray(rows, np.int64))


def _int64_or_minus_one(records: Any, name: str) -> np.ndarray:
    """Column ``name``'s integers as int64, -1 for null (a nullable integer array directly)."""
    arr = array_of(records, name)
    if isinstance(arr, pd.arrays.IntegerArray):
        return np.where(arr._mask, -1, arr._data.astype(np.int64, copy=False))
    return records[name].to_numpy(dtype=np.int64, na_value=-1)


def shared_call_key(records: Columns, rows: np.ndarray,
                    by: Sequence[str]) -> tuple[np.ndarray, int] | None:  # fmt: skip
    """The key of the ``rows`` that share a call reference: ``by`` columns and ``call_id``.

    For a micro-batch (:class:`~cemkit.columnar.Columns` carrying protect's ``call_id`` codes,
    no row of ``rows`` without one) whose ``by`` columns are Arrow strings: each ``by`` column
    coded at ``rows`` by one jitted pass over its bytes (:func:`cemkit.correlate._hash.codes_at`:
    a null a value of its own), the call id by its code, combined as mixed-radix digits. Equal
    keys are equal tuples of values, as the keys of
    :func:`~cemkit.correlate._frames.composite_key` (what the stitch groups depend on), at a
    fraction of its cost on a few dozen rows (no Series, no token parse, no Arrow call: an Arrow
    take and dictionary encoding of a few rows cost ~30 µs a column). Returns the key and its
    upper bound, or None where the columns are of other kinds (the caller's general path).
    """
    from cemkit import arrowstr
    from cemkit.correlate import _hash

    if not isinstance(records, Columns):
        return None
    key = np.zeros(rows.size, np.int64)
    size = 1
    for c in by:
        arr = records.array(c)
        if not isinstance(arr, pd.arrays.ArrowStringArray):
            return None
        # (one array even where the column is chunked: read from several row groups)
        codes, n = _hash.codes_at(*arrowstr.buffers(arr), rows)
        key = key * n + codes
        size *= n
        if size >= 2**62:
            return None
    ref = np.asarray(records.codes["call_id"], np.int64)[rows]
    if (ref < 0).any():
        return None
    bound = int(ref.max()) + 1
    if size * bound >= 2**62:
        return None
    return key * bound + ref, size * bound


def _stitch_pandas(records: pd.DataFrame, gap: Any, by: Sequence[str]) -> pd.DataFrame:
    records = _frames.without_attrs(records)
    rows, label, rank, flags = _call_rows(records, gap, by)
    n = len(records)
    absorbed = rows[label != rows]  # partials stitched into an earlier one
    several = bool(absorbed.size)
    keep = reps = None  # (without partials: every row, in order)
    ngroups = n
    sizes = np.ones(n, np.int64)
    if several:
        keep = np.ones(n, bool)
        keep[absorbed] = False
        reps = np.flatnonzero(keep)  # representatives, in input order
        ngroups = reps.size
        # the group (its representative's number in the output) of each row of ``rows``
        group = np.searchsorted(reps, label)
        sizes = np.maximum(np.bincount(group, minlength=ngroups), 1)
        multi = sizes > 1
        # the last partial of each group of several: its rank is the group's size - 1 (the
        # kernel ranks a call's partials 0, 1, ..., size - 1)
        is_last = rank == sizes[group] - 1
        last = np.full(ngroups, -1, np.int64)
        last[group[is_last]] = rows[is_last]
        # the rows the columns a call's last partial gives are taken from: a whole record is
        # its own last partial, only the groups of several take another row
        at_last = reps.copy()
        at_last[multi] = last[multi]
    # the columns as arrays, one frame built at the end (a frame per step costs more than the
    # work on a small batch), each gathered once from the records; a frame with repeated
    # column names is filtered as a frame
    # (``name in records``: a frame's columns; a micro-batch's names, unique, without an Index)
    unique = isinstance(records, Columns) or records.columns.is_unique
    names = records.names if isinstance(records, Columns) else list(records.columns)
    ended = [c for c in _FROM_LAST if c in records] if unique and several else []
    first = [c for c in names if c not in ended]
    index = records.index if reps is None else records.index[reps]
    out: Any
    if isinstance(records, Columns) and reps is None:
        # a micro-batch of whole records (most are: a call's partials seldom share one): every
        # row its own call, in order, so the columns and codes are the records' own, as they are
        # (a pending column stays pending, its source and positions unchanged)
        out = records.copy()
    elif isinstance(records, Columns) and n <= PENDING_ROWS:  # columns left pending
        # (gathered when read: correlate_calls composes its own selection with this one); the
        # representatives keep their parties and call id: their codes go along
        assert reps is not None
        codes = {c: v[reps] for c, v in records.codes.items()}
        cols = records.pending(first, reps)
        cols.update(records.pending(ended, at_last))
        out = Columns({c: cols[c] for c in names}, index, codes, owner=records.owner)
    elif unique:
        arrays = _frames.column_arrays(records)
        cols = _frames.select_arrays({c: arrays[c] for c in first},
                                     np.ones(n, bool) if keep is None else keep)  # fmt: skip
        if ended:
            cols.update(_frames.take_arrays({c: arrays[c] for c in ended}, at_last))
        out = {c: cols[c] for c in names}
    else:
        out = records if keep is None else records[keep]
    if several:
        # only calls of several partials (rare) are reduced; a whole record is its own result
        many = _Partials(group, multi, rows)
        reduce = [(c, "min") for c in ("start", "answer")] + [("end", "max")]
        reduce += [(c, "sum") for c in _SUM] + [(c, "mean") for c in _MEAN]
        reduce = [(c, how) for c, how in reduce if c in records]
        if isinstance(out, Columns):
            # each reduced column pending too: the records' column with the groups' values
            # after it, taken at the representatives but the groups of several at those values
            # (one gather, with correlate_calls' selection composed, when read)
            values = many.reduce_values(records, reduce)
            values["partial_seq"] = _nulls_like(records.array("partial_seq"), many.groups.size)
            assert reps is not None
            at = reps.copy()
            at[many.groups] = n + np.arange(many.groups.size)
            for c, v in values.items():
                out.put_taken(c, _concat(records.array(c), v), at)
        else:
            for c, value in many.reduce_columns(records, reduce, out).items():
                out[c] = value
            if not unique:  # a frame with repeated column names: the last partials' values set
                take_last = many.groups
                for c in _FROM_LAST:
                    if c in records:
                        values = out[c].array.copy()
                        values[take_last] = records[c].array.take(last[take_last])
                        out[c] = values
            pseq = out["partial_seq"].copy()
            pseq[multi] = pd.NA
            out["partial_seq"] = pseq
    rep_flags = flags if reps is None else flags[reps]
    # (the nullable arrays built directly: no values to infer or check, none of them null)
    out["src_partials"] = pd.arrays.IntegerArray(sizes.astype(np.int32), np.zeros(ngroups, bool))
    for c, flag in (("src_partials_out_of_order", _kernels.FLAG_OUT_OF_ORDER),
                    ("src_partials_missing", _kernels.FLAG_MISSING),
                    ("src_partials_duplicate", _kernels.FLAG_DUPLICATE)):  # fmt: skip
        out[c] = pd.arrays.BooleanArray((rep_flags & flag) != 0, np.zeros(ngroups, bool))
    if isinstance(out, Columns):  # a micro-batch: arrays on to the next stage
        return out
    if isinstance(records, Columns):  # the real-time path: arrays on to the next stage
        codes = {c: v if reps is None else v[reps] for c, v in records.codes.items()}
        return Columns(out, index, codes, owner=records.owner)
    if unique:
        return pd.DataFrame(out, index=index, copy=False)
    return out


def _nulls_like(values: Any, n: int) -> Any:
    """``n`` nulls of the dtype of ``values``.

    A nullable integer array is built directly (~10x cheaper than from a list of ``pd.NA``).
    """
    if isinstance(values, pd.arrays.IntegerArray):
        return type(values)(np.zeros(n, values.dtype.numpy_dtype), np.ones(n, bool))
    return pd.array([pd.NA] * n, dtype=values.dtype)


def _concat(values: Any, more: Any) -> Any:
    """One array of ``values`` then ``more`` (an array of the same dtype), as pandas joins them."""
    if isinstance(values, np.ndarray):
        return np.concatenate([values, np.asarray(more, dtype=values.dtype)])
    return type(values)._concat_same_type([values, more])


#: Rows up to which a batch's selected columns are left pending (gathered when read, with
#: correlate_calls' selection composed: :meth:`cemkit.columnar.Columns.pending`); above, each
#: column is filtered at once, on threads (a large file's correlation reads every column).
PENDING_ROWS = 65_536


class _Partials:
    """The rows of the groups of more than one partial, and where their results go."""

    def __init__(self, group: np.ndarray, multi: np.ndarray,
                 rows: np.ndarray | None = None) -> None:  # fmt: skip
        """``group[i]``: the group of row ``rows[i]`` (``rows`` ascending; default every row).

        The rows outside ``rows`` are whole records (groups of one).
        """
        self.groups = np.flatnonzero(multi)  # positions in the output (one per group)
        many = multi[group]
        # their partials, in input order
        self.rows = np.flatnonzero(many) if rows is None else rows[many]
        # the groups numbered 0..k-1 in output order
        self.sub = np.searchsorted(self.groups, group[many])

    def reduce_columns(self, records: pd.DataFrame, how: Sequence[tuple[str, str]],
                       like: Any) -> dict[str, Any]:  # fmt: skip
        """Each column's values at the groups (``like[c]``) with the multi-partial reductions.

        ``like`` holds the output columns (one row per group). Nulls are skipped; an all-null
        group gives null. For a group of one record the reduction of its one value is that
        value, so only the other groups are computed (:meth:`reduce_values`).
        """
        out = self.reduce_values(records, how)
        done = {}
        for c, _ in how:
            # ``like`` is the column at the groups' first rows
            values = (like.array(c) if isinstance(like, Columns) else like[c]).copy()
            if isinstance(values, pd.Series):
                values = values.array.copy()
            values[self.groups] = out[c]
            done[c] = values
        return done

    def reduce_values(self, records: pd.DataFrame,
                      how: Sequence[tuple[str, str]]) -> dict[str, Any]:  # fmt: skip
        """Each column's reduction over the partials of each group of several (one per group).

        An array of the column's dtype, in the order of :attr:`groups`: one linear pass a column
        (:func:`_reduce_linear`), a groupby for the dtypes it does not cover.
        """
        out: dict[str, Any] = {}
        rest = []
        for c, agg in how:
            reduced = _reduce_linear(array_of(records, c), self.rows, self.sub,
                                    self.groups.size, agg)  # fmt: skip
            if reduced is None:
                rest.append((c, agg))
            else:
                out[c] = reduced
        if rest:
            names = [c for c, _ in rest]
            small = pd.DataFrame({i: array_of(records, c).take(self.rows)
                                  for i, c in enumerate(names)}, copy=False)  # fmt: skip
            g = small.groupby(self.sub, sort=True)
            for i, (c, agg) in enumerate(rest):
                s = g[i]
                r = getattr(s, agg)()
                if agg == "sum":
                    # pandas sums an all-null group to 0: keep null there
                    r = r.where(s.count() > 0)
                r = r.reindex(np.arange(self.groups.size))
                out[c] = pd.Series(r.array).astype(records[c].dtype).array
        return out


def _reduce_linear(arr: Any, rows: np.ndarray, sub: np.ndarray, k: int, how: str) -> Any:
    """``how`` of ``arr[rows]`` per group ``sub`` (0..k-1), nulls skipped, null if all are.

    min/max of datetimes pick the row holding the extreme (its value, its dtype); sums and means
    of float64 by compensated (Kahan) summation in row order (:func:`~cemkit.correlate._kernels.
    kahan_sums`: the same at every size; pandas 3.1's groupby sums sorted groups without nulls
    pairwise instead, so its last bit depended on the rows' order), sums of Int64 integers.
    Each is one linear pass. None for dtypes this does not cover (the caller's groupby does those).
    """
    dtype = arr.dtype
    if (
        how in ("min", "max")
        and isinstance(dtype, pd.DatetimeTZDtype | np.dtype)
        and (getattr(dtype, "kind", "") == "M")
    ):
        values = np.asarray(arr.asi8 if hasattr(arr, "asi8") else arr.view(np.int64))
        best = _kernels.extreme_rows(values, rows, sub, k, how == "max")
        if isinstance(arr, pd.arrays.DatetimeArray) and isinstance(dtype, pd.DatetimeTZDtype):
            # the jitted gather of their int64 values (what ``take(allow_fill=True)`` gives)
            return gather_blocks({how: arr}, [how], best, missing=True)[how]
        return arr.take(best, allow_fill=True)
    if how not in ("sum", "mean"):
        return None
    if isinstance(arr, pd.arrays.NumpyExtensionArray):
        arr = arr.to_numpy()
    if isinstance(arr, np.ndarray) and arr.dtype == np.float64:
        totals, counts = _kernels.kahan_sums(arr, rows, sub, k)
        if how == "sum":
            return np.where(counts > 0, totals, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, totals / counts, np.nan)
    int64 = isinstance(dtype, pd.Int64Dtype) and isinstance(arr, pd.arrays.IntegerArray)
    if how == "sum" and int64:
        return _int_sums(arr, rows, sub, k)
    return None


def _int_sums(arr: pd.arrays.IntegerArray, rows: np.ndarray, sub: np.ndarray,
              k: int) -> pd.arrays.IntegerArray:  # fmt: skip
    """Int64 sums of ``arr[rows]`` per group ``sub`` (0..k-1), nulls skipped, null if all are."""
    values = arr._data[rows].astype(np.int64, copy=False)
    valid = ~arr._mask[rows]
    sums = np.zeros(k, np.int64)
    np.add.at(sums, sub[valid], values[valid])
    counts = np.bincount(sub[valid], minlength=k)
    return pd.arrays.IntegerArray(np.where(counts > 0, sums, 0), counts == 0)


def stitch(
    records: Any, gap: Any = "1s", by: Sequence[str] = DEFAULT_BY, npartitions: int | None = None
) -> Any:
    """Stitch the partial records of each call into one record.

    Records of one call are found in one of two ways:

    * records with a ``call_id`` (the call reference) that share it and the ``by`` columns
      (by default ``record_kind``, ``node`` and ``leg``: partial records are written by one switch
      for one leg) are one call, ordered by ``partial_seq`` (nulls last), then ``start``, then row;
    * records without a ``call_id`` that share the parties (``a_number``, ``b_number``) and the
      ``by`` columns are ordered by ``start``, and a record continues the previous one when its
      start is within ``gap`` of the previous record's end.

    The stitched record keeps the fields of the first partial (its ``record_id`` too), with
    ``start`` and ``answer`` the earliest, ``end`` the latest, ``duration_s``, ``billsec_s``
    and the data volumes summed, ``mos``, ``loss_ratio`` and ``jitter_ms`` averaged over the
    partials that have one, and ``outcome``, ``cause_q850``, ``sip_status``, ``released_by``
    and ``closing_cause`` of the last partial;
    ``partial_seq`` becomes null when partials were stitched. Out-of-order, missing and duplicate
    partials are stitched all the same and flagged. Added columns (see :data:`STITCH_COLUMNS`):
    ``src_partials`` (Int32), ``src_partials_out_of_order``, ``src_partials_missing``,
    ``src_partials_duplicate`` (boolean).

    Parameters
    ----------
    records : pandas.DataFrame or dask.dataframe.DataFrame
        Canonical records (pseudonymized or not).
    gap : pandas.Timedelta, str or number of seconds
        Largest distance between a partial's end and the next one's start, for records without a
        call reference.
    by : sequence of str
        Columns that must also be equal within a call (a null is a value here).
    npartitions : int, optional
        Dask only: partitions after the shuffle (default: the input's).

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        One record per call, in the input order of each call's first partial (for Dask: in input
        order within each output partition).

    Examples
    --------
    >>> import pandas as pd
    >>> from cemkit import schema
    >>> from cemkit.correlate import stitch
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> recs = schema.conform(pd.DataFrame({
    ...     "record_id": ["r2", "r1"], "source": "x", "record_kind": "cdr", "service": "voice",
    ...     "call_id": "c", "partial_seq": [2, 1], "outcome": "answered",
    ...     "start": [t + pd.Timedelta("30min"), t], "end": [t + pd.Timedelta("40min"),
    ...     t + pd.Timedelta("30min")], "duration_s": [600.0, 1800.0]}))
    >>> out = stitch(recs)
    >>> print(out[["record_id", "duration_s", "src_partials"]].to_string(index=False))
    record_id  duration_s  src_partials
           r1      2400.0             2
    """
    by = list(by)
    if _frames.is_dask(records):
        return _stitch_dask(records, gap, by, npartitions)
    return _stitch_pandas(records, gap, by)


def _stitch_bucket(df: pd.DataFrame) -> np.ndarray:
    """The shuffle's bucket of each row (uint64): partials of one call meet in one partition.

    The hash (:func:`cemkit.correlate._frames.bucket_hash`) of the text ``"c" + call_id``, or
    ``"p" + a_number + US + b_number`` (US: the byte 0x1F) for a record without a call
    reference, computed over the columns' bytes piece by piece
    (:func:`cemkit.correlate._hash.hash_call_buckets`): no string per row is built (that
    cost ~0.12 CPU-s per million records).
    """
    from cemkit import arrowstr
    from cemkit.correlate import _hash

    pieces = [arrowstr.buffers(df[c]) for c in ("call_id", "a_number", "b_number")]
    return _hash.hash_call_buckets(*pieces[0], *pieces[1], *pieces[2])


def _stitch_partition(df: pd.DataFrame, gap: Any, by: list[str]) -> pd.DataFrame:
    return _stitch_pandas(_frames.restore_order(df), gap, by)


def _stitch_dask(records: Any, gap: Any, by: list[str], npartitions: int | None) -> Any:
    n = npartitions or records.npartitions
    shuffled = _frames.tag_and_shuffle(records, _stitch_bucket, n)
    meta = _stitch_partition(shuffled._meta, gap, by)
    return shuffled.map_partitions(_stitch_partition, gap, by, meta=meta, enforce_metadata=False)
