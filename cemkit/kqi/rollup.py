r"""KQI rollups: per node group and per modeled customer, per time bucket, in one jitted pass.

The columns the formulas read are taken once from the records as NumPy arrays
(:class:`cemkit.kqi.columns.RecordColumns`). Each record gets an integer cell (object code x
15-minute bucket); one Numba pass (:func:`cemkit.kqi._kernels.sum_counters`) computes every
integer counter of :data:`cemkit.kqi.formulas.COUNTERS` of each record and adds it to its cell of
every celling at once (groups, modeled customers, customers), into a dense table when it is
small and over the sorted distinct cells when it is not. A partition (a pandas frame, or each
partition of a Dask frame) thus yields small results:

* integer counter sums (:data:`cemkit.kqi.formulas.COUNTERS`) per leaf group and 15-minute bucket,
  and per modeled customer and bucket;
* the PDD values (whole milliseconds, sorted) of each leaf group / customer and bucket, from
  which the percentiles of every rolled-up row are exact, in one pass
  (:func:`cemkit.kqi._kernels.grouped_quantiles`);
* counter sums per customer over the whole period, for the experience score and the worst
  customers.

* distinct (group, customer) pairs, for the group sizes (:func:`cemkit.kqi.sizes.group_sizes`)
  in the same pass.

Partitions' results are merged by summing equal cells. Parents in the group hierarchy (an index
from each group to its ancestors, applied to the aggregated rows, never to records) and coarser
buckets (hour, day: sums of 15-minute buckets) are sums of those results, so every level is
exact too: results are identical for any partitioning, scheduler or cluster. The table is built
once, at the end, from NumPy arrays.

Examples
--------
>>> import pandas as pd
>>> from cemkit.model.spec import ServiceModel
>>> m = ServiceModel.from_yaml_text("name: d\ngroups: [{name: uk, match: {prefixes: ['+44']}}]")
>>> recs = pd.DataFrame({"a_number": ["+441", "+442"], "service": "voice", "record_kind": "cdr",
...     "outcome": ["answered", "failed"], "billsec_s": [20.0, 0.0],
...     "start": pd.to_datetime(["2026-01-01 10:01", "2026-01-01 10:05"], utc=True)})
>>> res = rollup(recs, m, freqs=("hour",))
>>> res.table[["object", "freq", "attempts", "asr"]].to_dict("records")
[{'object': 'uk', 'freq': 'hour', 'attempts': 2, 'asr': 0.5}]
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa

from cemkit import arrowstr, config
from cemkit.cluster import compute_each
from cemkit.columnar import Columns, column_names, frame_of_blocks
from cemkit.correlate._frames import column_codes
from cemkit.errors import ModelError, SchemaError
from cemkit.kqi import _kernels, formulas
from cemkit.kqi._kernels import NULL_TIME
from cemkit.kqi.columns import RecordColumns
from cemkit.kqi.sizes import (
    ancestors_of,
    count_sizes,
    encoded_size_pairs,
    expand,
    hierarchy_of,
    own_index,
    strings,
)
from cemkit.model.assign import Assigner
from cemkit.model.spec import BUCKETS, ServiceModel

#: Name of the pseudo-group of records no group of the model matches.
UNASSIGNED = "(unassigned)"
#: pandas offsets of the bucket names.
FREQ_OFFSETS: dict[str, str] = {"15min": "15min", "hour": "1h", "day": "1D"}
#: Customers with fewer attempts than this are not ranked among the worst.
WORST_MIN_ATTEMPTS = 5

#: Counters the experience score reads (the per-customer sums keep only these).
_SCORE_COUNTERS = ("attempts", "answered", "user_determined", "short_calls", "drops",
                   "pdd_count", "pdd_us", "mos_count", "mos_micro")  # fmt: skip

_LEAF_NS = 15 * 60 * 10**9
_STEP_NS: dict[str, int] = {"15min": _LEAF_NS, "hour": 3600 * 10**9, "day": 86400 * 10**9}
_NO_REPLACEMENT = np.zeros(0, dtype=np.int64)
_STRING = pd.StringDtype("pyarrow")


@dataclass
class KqiResult:
    """Outputs of :func:`rollup`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per object (``object_kind`` group or customer, ``object`` name) per ``freq`` per
        ``bucket``: ``bucket_end``, the counters and the indicators.
    worst_customers : pandas.DataFrame
        The top-N customers with the lowest experience score over the whole period, each with
        the reason (``customer`` as found in the records: pseudonymized upstream).
    customer_count : int
        Number of distinct customers seen.
    group_sizes : pandas.DataFrame, optional
        Distinct customers per node group (``sizes=True``), as :func:`cemkit.kqi.sizes.group_sizes`.
    """

    table: pd.DataFrame
    worst_customers: pd.DataFrame
    customer_count: int = 0
    model_name: str = ""
    freqs: tuple[str, ...] = field(default_factory=tuple)
    group_sizes: pd.DataFrame | None = None
    #: Each table row's ``object_kind``, ``object`` and ``freq`` as codes into the names they
    #: were written from (None for an empty table): for a reader of the table just made, e.g.
    #: :func:`cemkit.kqi.alerts.find_alerts` on the real-time path, that then compares no strings
    keys: TableKeys | None = None


@dataclass(frozen=True)
class TableKeys:
    """The key columns of a KQI table as codes: ``kinds[kind[i]]`` is row i's ``object_kind``.

    Likewise ``labels[obj[i]]`` its ``object`` and ``freqs[freq[i]]`` its ``freq``.
    """

    kind: np.ndarray  # int32
    kinds: tuple[str, ...]
    obj: np.ndarray  # int64
    labels: tuple[str, ...]
    freq: np.ndarray  # int32
    freqs: tuple[str, ...]


def _time_ns_utc(start: pd.Series, floor: str | None = None) -> np.ndarray:
    """Start times (optionally floored, in their own time zone) as int64 UTC ns; NaT: NULL_TIME."""
    arr = start.array
    if (
        floor is None
        and isinstance(arr, pd.arrays.DatetimeArray)
        and arr.tz is not None
        and (arr.unit == "ns")
    ):  # the canonical column: its int64 values (no ``.dt`` accessor, ~40 µs a batch)
        return np.asarray(arr.asi8, dtype=np.int64)
    if not isinstance(start.dtype, pd.DatetimeTZDtype):
        start = pd.to_datetime(start, utc=True)
        if isinstance(start.dtype, pd.ArrowDtype):  # Arrow timestamps stay Arrow in to_datetime
            start = start.astype(pd.DatetimeTZDtype("ns", "UTC"))
    if floor is not None:
        start = start.dt.floor(floor)
    if start.dt.unit != "ns":
        start = start.dt.as_unit("ns")
    return np.asarray(start.array.asi8, dtype=np.int64)


def _times(start: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Start times and 15-minute buckets as int64 UTC ns (NULL_TIME for NaT)."""
    t = _time_ns_utc(start)
    tz = getattr(start.dtype, "tz", None)
    if isinstance(start.dtype, pd.DatetimeTZDtype) and str(tz) not in ("UTC", "utc"):
        # a wall-clock floor in another zone is not a floor of UTC nanoseconds
        return t, _time_ns_utc(start, "15min")
    return t, np.where(t == NULL_TIME, NULL_TIME, (t // _LEAF_NS) * _LEAF_NS)


def _cells(code: np.ndarray, bucket: np.ndarray, n_codes: int) -> tuple[np.ndarray, int, Any]:
    """Cell index of each (code in [-1, n_codes), bucket ns) and how to decode the cells.

    Dense (code x bucket) when that table is small, else the sorted distinct pairs (one sort).
    Returns ``(cell, n_cells, decode)``: ``decode`` is ``(bmin, n_buckets)`` for a dense table
    or the distinct composite keys for a sparse one.
    """
    valid = bucket != NULL_TIME
    if not valid.any():
        return np.full(len(code), -1, dtype=np.int64), 0, (0, 1)
    b = bucket[valid] // _LEAF_NS
    bmin = int(b.min())
    n_buckets = int(b.max()) - bmin + 1
    key = np.full(len(code), -1, dtype=np.int64)
    key[valid] = (code[valid].astype(np.int64) + 1) * n_buckets + (b - bmin)
    n_dense = (n_codes + 1) * n_buckets
    if (
        n_dense * len(formulas.COUNTERS) <= config.KQI_DENSE_MAX_VALUES
        and n_dense <= 4 * len(code) + 4096
    ):
        return key, n_dense, (bmin, n_buckets)
    uniq, inverse = np.unique(key[valid], return_inverse=True)
    cell = np.full(len(code), -1, dtype=np.int64)
    cell[valid] = inverse
    return cell, len(uniq), (bmin, n_buckets, uniq)


@dataclass
class _Leaf:
    """Counter sums per (object code, 15-minute bucket) and the PDD values of each such row."""

    code: np.ndarray  # int64[k], -1: unassigned
    bucket: np.ndarray  # int64[k], ns
    sums: np.ndarray  # int64[C, k]
    pdd_row: np.ndarray  # int64[m], row of each PDD value
    pdd_value: np.ndarray  # float64[m], non-decreasing
    pdd_count: np.ndarray  # int64[m]

    @staticmethod
    def empty() -> _Leaf:
        z = np.zeros(0, dtype=np.int64)
        return _Leaf(z, z, np.zeros((len(formulas.COUNTERS), 0), np.int64), z, np.zeros(0), z)


def _value_order(value: np.ndarray) -> np.ndarray:
    """An order that sorts ``value`` ascending (one radix sort for whole milliseconds)."""
    if len(value) == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = float(value.min()), float(value.max())
    if hi - lo < 2**16 and (value == np.rint(value)).all():
        return np.argsort((value - lo).astype(np.uint16), kind="stable")
    return np.argsort(value, kind="stable")


def _leaf_of(cells: tuple[np.ndarray, int, Any], sums: np.ndarray, count: np.ndarray,
             pdd: np.ndarray) -> _Leaf:  # fmt: skip
    """A leaf from its cells (:func:`_cells`), their sums (int64[n_cells, C]) and record counts."""
    cell, n_cells, decode = cells
    present = np.flatnonzero(count)
    if len(decode) == 2:  # dense: decode the cell numbers that hold records
        bmin, n_buckets = decode
        keys = present
    else:
        bmin, n_buckets, keys = decode
    row_of_cell = np.full(n_cells, -1, dtype=np.int64)
    row_of_cell[present] = np.arange(len(present))
    keys = np.asarray(keys, dtype=np.int64)
    if len(decode) == 3:
        keys = keys[present]
    leaf_code = keys // n_buckets - 1
    leaf_bucket = (keys % n_buckets + bmin) * _LEAF_NS
    has = np.flatnonzero((cell >= 0) & ~np.isnan(pdd))
    value = pdd[has]
    order = _value_order(value)
    prow = row_of_cell[cell[has[order]]]
    return _Leaf(leaf_code, leaf_bucket, np.ascontiguousarray(sums[present].T), prow,
                 value[order], np.ones(len(prow), dtype=np.int64))  # fmt: skip


def _merge_leaves(leaves: list[_Leaf]) -> _Leaf:
    """Leaves of several partitions as one (same cells summed): exact in any order."""
    leaves = [x for x in leaves if len(x.code)]
    if not leaves:
        return _Leaf.empty()
    if len(leaves) == 1:
        return leaves[0]
    code = np.concatenate([x.code for x in leaves])
    bucket = np.concatenate([x.bucket for x in leaves])
    sums = np.concatenate([x.sums for x in leaves], axis=1)
    offsets = np.cumsum([0] + [len(x.code) for x in leaves])
    out, inverse = _regroup(code, bucket, sums, _LEAF_NS)
    prow = np.concatenate([inverse[x.pdd_row + o] for x, o in zip(leaves, offsets, strict=False)])
    pv = np.concatenate([x.pdd_value for x in leaves])
    pc = np.concatenate([x.pdd_count for x in leaves])
    order = _value_order(pv)
    out.pdd_row, out.pdd_value, out.pdd_count = prow[order], pv[order], pc[order]
    return out


def _regroup(code: np.ndarray, bucket: np.ndarray, sums: np.ndarray,
             step: int) -> tuple[_Leaf, np.ndarray]:  # fmt: skip
    """Sum rows of equal (code, bucket floored to ``step``); rows sorted by code then bucket."""
    fb = (bucket // step) * step
    bmin = int(fb.min())
    n_buckets = int(fb.max() - bmin) // step + 1
    key = (code + 1) * n_buckets + (fb - bmin) // step
    uniq, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.astype(np.int64)
    out, _ = _kernels.sum_by_cell(inverse, np.ascontiguousarray(sums), -1, _NO_REPLACEMENT,
                                  len(uniq))  # fmt: skip
    z = np.zeros(0, dtype=np.int64)
    leaf = _Leaf(uniq // n_buckets - 1, (uniq % n_buckets) * step + bmin, out, z, np.zeros(0), z)
    return leaf, inverse


_QUANTILES = np.array(list(formulas.PDD_QUANTILES.values()), dtype=np.float64)


def _roll(leaf: _Leaf, n_codes: int, index: tuple[np.ndarray, np.ndarray],
          steps: Sequence[int]) -> list[tuple[_Leaf, np.ndarray]]:  # fmt: skip
    """The leaf rows summed into every ancestor and into the coarser buckets of each step.

    ``index``: the hierarchy (:func:`cemkit.kqi.sizes.ancestor_index`, a model's held warm by
    :func:`cemkit.kqi.sizes.ancestors_of`); the rows are expanded over it once for every step.
    Returns per step the rolled rows and their exact PDD percentiles
    (float64[len(PDD_QUANTILES), rows]).
    """
    row, code = expand(leaf.code, n_codes, index)
    reps = np.bincount(row, minlength=len(leaf.code))
    start = np.cumsum(reps) - reps  # first expanded row of each leaf row
    bucket, sums = leaf.bucket[row], leaf.sums[:, row]
    out = []
    for step in steps:
        rolled, inverse = _regroup(code, bucket, sums, step)
        # the PDD values of a leaf row count in every out row its expanded rows went to
        quantiles = _kernels.grouped_quantiles(leaf.pdd_row, leaf.pdd_value, leaf.pdd_count,
                                               start, reps, inverse, len(rolled.code),
                                               _QUANTILES)  # fmt: skip
        out.append((rolled, quantiles))
    return out


# --- per partition ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Wants:
    """What one partition must yield besides the group KQIs."""

    number_column: str
    customers: bool  # modeled-customer KQIs
    rank: bool  # per-customer sums for the worst customers
    sizes: bool  # distinct (group, customer) pairs


@dataclass
class _Partial:
    """The small results of one partition (NumPy / Arrow only: cheap to ship and merge)."""

    group: _Leaf
    customer: _Leaf
    customers: pa.Array | None  # distinct customer numbers (originating records)
    customer_sums: np.ndarray  # int64[len(_SCORE_COUNTERS), len(customers)]
    size_pairs: tuple[np.ndarray, pa.Array] | None  # distinct (leaf group, customer) pairs


def _is_orig(part: pd.DataFrame) -> np.ndarray:
    if "leg" not in column_names(part):
        return np.ones(len(part), dtype=bool)
    return np.asarray((part["leg"] != "term").fillna(True).to_numpy(dtype=bool), dtype=bool)


def _assigned_codes(part: pd.DataFrame, assigner: Assigner, column: str,
                    encoded: tuple[np.ndarray, pa.Array] | None = None,
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Group and modeled-customer code of each record, as :meth:`Assigner.assign` gives them.

    ``encoded``: the numbers' dictionary codes and distinct values, when the caller has them
    (the rules are then read on the distinct numbers only).
    """
    names = column_names(part)
    if column in names:
        numbers = part[column]
    elif not assigner.needs_numbers:
        numbers = None
        if "node" not in names:
            raise ModelError("records have neither customer numbers nor a 'node' column")
    else:
        raise ModelError(f"records have no {column!r} column to model customers by")
    nodes = part["node"] if "node" in names else None
    groups, customers = assigner._codes(
        numbers, nodes, encoded=encoded if numbers is not None else None
    )
    return np.asarray(groups, dtype=np.int64), np.asarray(customers, dtype=np.int64)


def _first_of_intent(part: pd.DataFrame, attempts: np.ndarray, t: np.ndarray | None = None,
                     *, attempts_only: bool = False) -> np.ndarray:  # fmt: skip
    """Per record: it belongs to its intent's first attempt (as :func:`_mark_first_of_intent`).

    ``t``: the start times as int64 UTC ns, when the caller has them already. String intent
    ids are hashed over their bytes (:func:`_kernels.first_start_by_string`); other ids are
    factorized. ``attempts_only``: only the attempts' flags are wanted (the others are True).
    """
    intents = part[formulas.INTENT_COLUMN]
    if t is None:
        t = _time_ns_utc(part["start"])
    attempts = np.asarray(attempts, dtype=bool)
    codes, n_codes = _intent_codes(intents)
    if codes is None:
        offsets, data, valid = arrowstr.buffers(intents)
        f = _kernels.first_start_by_string(offsets, data, valid, t, attempts, not attempts_only)
    else:
        first = _kernels.first_start(codes, t, attempts, n_codes)
        f = np.where(codes >= 0, first[np.maximum(codes, 0)] if n_codes else NULL_TIME, NULL_TIME)
        if attempts_only:
            f = np.where(attempts, f, NULL_TIME)
    return np.where(f == NULL_TIME, True, (t != NULL_TIME) & (t - f <= _SAME_ATTEMPT_NS))


_SAME_ATTEMPT_NS = int(pd.Timedelta(seconds=formulas.SAME_ATTEMPT_WINDOW_S).value)


def _intent_codes(intents: pd.Series) -> tuple[np.ndarray | None, int]:
    """Integer codes of the intent ids (-1 for null) and their bound; None: hash the strings.

    Integer ids, and string ids that are one head and a number (:func:`_kernels.numbered_strings`,
    e.g. ``synth:17``), index a dense table by value when their range is small next to the
    rows: no hash table, no factorization. Other integers are factorized; other strings are
    hashed over their bytes (:func:`_kernels.first_start_by_string`).
    """
    n = len(intents)
    if arrowstr.is_arrow_string(intents.dtype):
        if n == 0:
            return None, 0
        offsets, data, valid = arrowstr.buffers(intents)
        keys, numbered = _kernels.numbered_strings(offsets, data, valid)
        if not numbered:
            return None, 0
    elif pd.api.types.is_integer_dtype(intents.dtype):
        arr = intents.array
        if isinstance(arr, pd.arrays.IntegerArray):
            values, null = arr._data.astype(np.int64), arr._mask
        else:
            values, null = intents.to_numpy(dtype=np.int64), np.zeros(n, dtype=bool)
        keys = np.where(null, -1, values)
        if (values[~null] < 0).any():
            return column_codes(intents)
    else:
        return column_codes(intents)
    present = keys >= 0
    if not present.any():
        return keys, 0
    lo, hi = int(keys[present].min()), int(keys[present].max())
    if hi - lo > 4 * n + 4096:  # too sparse for a table by value
        return column_codes(intents) if not arrowstr.is_arrow_string(intents.dtype) else (None, 0)
    return np.where(present, keys - lo, -1), hi - lo + 1


_COUNTER_AT = {c: i for i, c in enumerate(formulas.COUNTERS)}
_SCORE_ROWS = [_COUNTER_AT[c] for c in _SCORE_COUNTERS]


def _partial(part: pd.DataFrame, assigner: Assigner, wants: _Wants) -> _Partial:
    """Every counter per (group, bucket) and (customer, bucket) cell of one partition.

    The record columns are taken once as NumPy arrays; one jitted pass computes each record's
    counters and adds them to its cell of every celling at once (group x bucket, modeled
    customer x bucket, customer): no per-record counter block is materialized.
    """
    cols = RecordColumns(part, formulas.LABELS)
    inputs = formulas.counter_inputs(cols)
    t, bucket = _times(part["start"])
    attempts, has_pdd = formulas.record_flags(inputs)
    names = column_names(part)
    if formulas.INTENT_COLUMN in names and formulas.FIRST_OF_INTENT_COLUMN not in names:
        # the formulas' repeat-attempt rule, without re-running them on a copy of the frame
        first = _first_of_intent(part, attempts, t, attempts_only=True)
        inputs = formulas.with_first_of_intent(inputs, first)
    numbers = strings(part[wants.number_column]) if wants.rank or wants.sizes else None
    # the numbers encoded once: customer cells, group-size pairs and the model's rules (read
    # on the distinct numbers) share it
    encoded = arrowstr.dictionary_codes(numbers) if numbers is not None else None
    groups, customers = _assigned_codes(part, assigner, wants.number_column, encoded)
    pdd = np.where(has_pdd, np.rint(cols.floats("pdd_ms")), np.nan)
    cellings = [_cells(groups, bucket, len(assigner.group_names))]
    picks = [_ALL_COUNTERS]
    # originating records: not a terminating leg (null too), the leg bits the counters read
    orig = cols.bits("leg", ({"term"},)) == 0 if wants.customers or wants.rank else None
    if wants.customers:
        assert orig is not None
        use = orig & (customers >= 0)
        cellings.append(_cells(customers, np.where(use, bucket, NULL_TIME),
                               len(assigner.customer_names)))  # fmt: skip
        picks.append(_ALL_COUNTERS)
    values = None
    if wants.rank:
        assert orig is not None and encoded is not None
        idx, values = encoded
        cellings.append((np.where(orig, idx, -1), len(values), None))
        picks.append(_SCORE_PICKS)  # the score's counters only
    sums = _sum_counters(cellings, picks, inputs)
    group = _leaf_of(cellings[0], *sums[0], pdd)
    customer = _leaf_of(cellings[1], *sums[1], pdd) if wants.customers else _Leaf.empty()
    distinct: pa.Array | None = None
    cust_sums = np.zeros((len(_SCORE_COUNTERS), 0), dtype=np.int64)
    if wants.rank:
        assert values is not None
        rank_sums, rank_count = sums[-1]
        present = np.flatnonzero(rank_count)
        distinct = values.take(pa.array(present))
        cust_sums = np.ascontiguousarray(rank_sums[present].T)
    pairs = (encoded_size_pairs(groups, *encoded)
             if wants.sizes and encoded is not None else None)  # fmt: skip
    return _Partial(group, customer, distinct, cust_sums, pairs)


_ALL_COUNTERS = np.arange(len(formulas.COUNTERS), dtype=np.int64)
_SCORE_PICKS = np.array(_SCORE_ROWS, dtype=np.int64)


def _sum_counters(cellings: list[tuple[np.ndarray, int, Any]], picks: list[np.ndarray],
                  inputs: tuple[Any, ...]) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Every celling's sums (int64[cells, len(picks)]) and record counts, in one jitted pass.

    :func:`cemkit.kqi._kernels.sum_counters`: each record's counters computed once, each
    celling summing only its ``picks`` (indices into :data:`formulas.COUNTERS`).
    """
    n_cells = np.array([c[1] for c in cellings], dtype=np.int64)
    cells = np.stack([np.asarray(c[0], dtype=np.int64) for c in cellings])
    pick = np.zeros((len(picks), len(formulas.COUNTERS)), dtype=np.int64)
    n_picks = np.array([len(p) for p in picks], dtype=np.int64)
    for j, p in enumerate(picks):
        pick[j, : len(p)] = p
    flat, count = _kernels.sum_counters(cells, n_cells, pick, n_picks, *inputs,
                                        *formulas.COUNTER_CONSTANTS)  # fmt: skip
    out = []
    at, cat = 0, 0
    for n, w in zip(n_cells.tolist(), n_picks.tolist(), strict=True):
        out.append((flat[at : at + n * w].reshape(n, w), count[cat : cat + n]))
        at, cat = at + n * w, cat + n
    return out


def _mark_first_of_intent(ddf: dd.DataFrame) -> dd.DataFrame:
    """Add :data:`formulas.FIRST_OF_INTENT_COLUMN`: the record starts its intent's first attempt.

    Attempts of one intent may lie in any partition: the earliest attempt start per intent is an
    exact Dask ``min`` aggregation, joined back. Records starting within
    :data:`formulas.SAME_ATTEMPT_WINDOW_S` of it (the terminating leg, a tie) belong to the first
    attempt. A pandas frame (a micro-batch) takes the same minimum over integer intent codes,
    without a merge of the whole frame.
    """
    col = formulas.INTENT_COLUMN

    def attempts_only(part: pd.DataFrame) -> pd.DataFrame:
        is_attempt = _attempts(part)
        return part.loc[is_attempt, [col, "start"]]

    if isinstance(ddf, pd.DataFrame):
        part = ddf.copy()
        attempts = _attempts(part)
        part[formulas.FIRST_OF_INTENT_COLUMN] = _first_of_intent(part, attempts)
        return part
    starts = _map_parts(ddf, attempts_only)
    first = starts.groupby(col)["start"].min().rename("_intent_first_start")
    merged = ddf.merge(first.to_frame(), left_on=col, right_index=True, how="left")

    def flag(part: pd.DataFrame) -> pd.DataFrame:
        part = part.copy()
        return _flag_first(part, part.pop("_intent_first_start"))

    return _map_parts(merged, flag)


def _attempts(part: pd.DataFrame) -> np.ndarray:
    return formulas.record_flags(formulas.counter_inputs(RecordColumns(part, formulas.LABELS)))[0]


def _flag_first(part: pd.DataFrame, first_start: pd.Series) -> pd.DataFrame:
    window = pd.Timedelta(seconds=formulas.SAME_ATTEMPT_WINDOW_S)
    is_first = (part["start"] - first_start <= window) | first_start.isna()
    part[formulas.FIRST_OF_INTENT_COLUMN] = is_first.fillna(True).astype(bool)
    return part


def _map_parts(frame: Any, fn: Any, *args: Any, meta: Any = None) -> Any:
    """``fn(partition, *args)`` on every partition of a Dask frame, or on a pandas frame."""
    if isinstance(frame, pd.DataFrame):
        return fn(frame, *args)
    return frame.map_partitions(fn, *args, meta=fn(frame._meta, *args) if meta is None else meta)


def _to_frame(records: Any) -> Any:
    # pandas stays pandas: a micro-batch pays no Dask graph building or optimization; the
    # real-time path's column arrays (cemkit.columnar.Columns) are read as that one frame is
    if isinstance(records, pd.DataFrame | dd.DataFrame | Columns):
        return records
    raise SchemaError(f"records must be a pandas or Dask DataFrame, found {type(records).__name__}")


def rollup(
    records: Any,
    model: ServiceModel | Assigner,
    *,
    freqs: Sequence[str] = BUCKETS,
    top_n: int = 20,
    worst_min_attempts: int = WORST_MIN_ATTEMPTS,
    customer_table: pd.DataFrame | None = None,
    rank_customers: bool = True,
    sizes: bool = False,
    intents_within_partitions: bool = False,
) -> KqiResult:
    """Compute KQIs per group and per modeled customer per time bucket, and the worst customers.

    Parameters
    ----------
    records : pandas.DataFrame or dask.dataframe.DataFrame
        Canonical records (pseudonymized numbers expected); an ``intent`` column (from
        :func:`cemkit.correlate.sessionize`) enables the repeat-attempt rate.
    model : ServiceModel or Assigner
        The service model (or one already compiled for data).
    freqs : sequence of {"15min", "hour", "day"}
        Buckets to report.
    top_n : int
        How many worst-experience customers to list.
    worst_min_attempts : int
        Customers with fewer call attempts are not ranked.
    customer_table : pandas.DataFrame, optional
        Customer attributes, when the model has attribute rules and names no table.
    rank_customers : bool
        Also sum every customer's counters to rank the worst customers (skip it when only
        group and modeled-customer KQIs are wanted).
    sizes : bool
        Also count the distinct customers of every node group (:attr:`KqiResult.group_sizes`,
        the same table as :func:`cemkit.kqi.sizes.group_sizes`) in the same pass.
    intents_within_partitions : bool
        Every intent's records lie in one partition of a Dask frame, so each intent's first
        attempt is found partition by partition instead of by a minimum over the whole frame
        joined back (a shuffle of every record). True of the records ``cemkit run`` correlates
        and writes: intents are labelled within each partition of the correlation. Results are
        the same either way when it holds.

    Returns
    -------
    KqiResult
    """
    _check_freqs(freqs)
    assigner = model if isinstance(model, Assigner) else Assigner(model, customer_table)
    ddf = _to_frame(records)
    is_pandas = isinstance(ddf, pd.DataFrame | Columns)
    columns = column_names(ddf)
    _require_start(columns)
    # read only what the formulas and the model need (customer numbers are the widest column)
    wanted = record_columns(assigner, rank_customers=rank_customers, sizes=sizes)
    if not is_pandas or formulas.FIRST_OF_INTENT_COLUMN in columns:
        ddf = ddf[[c for c in dict.fromkeys(wanted) if c in columns]]
        columns = column_names(ddf)
    elif isinstance(ddf, Columns):  # the columns read, gathered at once (cemkit.columnar);
        # not the label columns: matched on their source rows (RecordColumns.labels)
        ddf.gather([c for c in wanted if c not in formulas.LABELS])
    # a pandas frame is read column by column as it is (a copy of it costs more than the KQIs)
    wants = _wants(assigner, rank_customers, sizes)
    _require_numbers(columns, wants)
    if is_pandas:
        partials = [_partial(ddf, assigner, wants)]
    else:
        if formulas.INTENT_COLUMN in columns and not intents_within_partitions:
            ddf = _mark_first_of_intent(ddf)  # an intent's attempts may lie in any partition
        held = dask.delayed(assigner, name=f"kqi-assigner-{uuid.uuid4().hex}")
        task = dask.delayed(_partial, pure=True)
        # gathered as each is done (a worker near its limit need not hold, then ship, them all)
        partials = compute_each([task(p, held, wants) for p in ddf.to_delayed()])
    return merge_rollup(partials, assigner, freqs=freqs, top_n=top_n,
                        worst_min_attempts=worst_min_attempts, rank_customers=rank_customers,
                        sizes=sizes)  # fmt: skip


def _check_freqs(freqs: Sequence[str]) -> None:
    bad = [f for f in freqs if f not in FREQ_OFFSETS]
    if bad:
        raise ModelError(f"unknown bucket(s) {bad}; known: {list(FREQ_OFFSETS)}")


def _require_start(columns: Sequence[str]) -> None:
    if "start" not in columns:
        raise SchemaError("records have no 'start' column", hint="load records with cemkit.io")


def _wants(assigner: Assigner, rank_customers: bool, sizes: bool) -> _Wants:
    return _Wants(assigner.model.numbers.column, bool(assigner.customer_names), rank_customers,
                  sizes)  # fmt: skip


def _require_numbers(columns: Sequence[str], wants: _Wants) -> None:
    if (wants.rank or wants.customers or wants.sizes) and wants.number_column not in columns:
        raise SchemaError(
            f"records have no {wants.number_column!r} column to tell customers apart",
            hint="pass rank_customers=False, or give records with (pseudonymized) numbers",
        )


class PartitionRollup:
    """:func:`rollup`'s work on one partition of records, on its own; picklable.

    Call it on each partition (``cemkit run``'s write tasks do, on the records they have just
    written), then :func:`merge_rollup` on what it returned: the same result as :func:`rollup`
    of the partitions as one Dask frame with ``intents_within_partitions`` (so it holds only for
    records whose every intent lies in one partition: those a run's correlation labelled).
    """

    def __init__(self, assigner: Assigner, *, rank_customers: bool = True, sizes: bool = False):
        self.assigner = assigner
        self.wants = _wants(assigner, rank_customers, sizes)
        self.columns = record_columns(assigner, rank_customers=rank_customers, sizes=sizes)

    def __call__(self, records: pd.DataFrame) -> _Partial:
        """The partition's counters, customer sums and size pairs (its columns read once)."""
        columns = column_names(records)
        _require_start(columns)
        _require_numbers(columns, self.wants)
        part = records[[c for c in self.columns if c in columns]].reset_index(drop=True)
        return _partial(part, self.assigner, self.wants)


def merge_rollup(partials: list[_Partial], assigner: Assigner, *,
                 freqs: Sequence[str] = BUCKETS, top_n: int = 20,
                 worst_min_attempts: int = WORST_MIN_ATTEMPTS, rank_customers: bool = True,
                 sizes: bool = False) -> KqiResult:  # fmt: skip
    """:func:`rollup`'s result from the partitions' own (:class:`PartitionRollup`)."""
    _check_freqs(freqs)
    if not partials:
        raise ValueError("merge_rollup needs the result of at least one partition")
    names = [*assigner.group_names]
    group = _merge_leaves([p.group for p in partials])
    customer = _merge_leaves([p.customer for p in partials])
    table, keys = _table(
        [("group", group, names, ancestors_of(assigner)),
         ("customer", customer, assigner.customer_names, own_index(len(assigner.customer_names)))],
        freqs,
    )  # fmt: skip
    if rank_customers:
        per_customer = _customer_sums(partials)
        worst = _worst_of_partition(per_customer, top_n, worst_min_attempts)
        n_customers = len(per_customer)
        worst = _rank(worst, top_n)
    else:
        worst, n_customers = _no_worst(), 0
    group_sizes = None
    if sizes:
        found = [p.size_pairs for p in partials if p.size_pairs is not None]
        group_sizes = count_sizes(found, names, hierarchy_of(assigner))
    return KqiResult(table, worst, int(n_customers), assigner.model.name, tuple(freqs),
                     group_sizes, keys)  # fmt: skip


def record_columns(assigner: Assigner, *, rank_customers: bool = True,
                   sizes: bool = False) -> list[str]:  # fmt: skip
    """The record columns :func:`rollup` reads (those of them the records have)."""
    per_customer_work = rank_customers or bool(assigner.customer_names) or sizes
    wanted = [*formulas.INPUT_COLUMNS, "start", "node", formulas.INTENT_COLUMN]
    if per_customer_work:
        wanted.append("leg")
    if per_customer_work or assigner.needs_numbers:
        wanted.append(assigner.model.numbers.column)
    return list(dict.fromkeys(wanted))


def _table(kinds: list[tuple[str, _Leaf, list[str], tuple[np.ndarray, np.ndarray]]],
           freqs: Sequence[str]) -> tuple[pd.DataFrame, TableKeys | None]:  # fmt: skip
    """The KQI table: every kind's leaf rows rolled up, per bucket size, indicators computed.

    ``kinds``: (kind, leaf, names, hierarchy index) each. NumPy throughout; the one DataFrame
    is built at the end. With it, its key columns as codes (None for an empty table).
    """
    parts: list[tuple[str, str, list[str], _Leaf, np.ndarray]] = []
    for kind, leaf, names, index in kinds:
        if len(leaf.code):
            rolls = _roll(leaf, len(names), index, [_STEP_NS[f] for f in freqs])
            for f, (rolled, quantiles) in zip(freqs, rolls, strict=True):
                parts.append((kind, f, names, rolled, quantiles))
    if not parts:
        return _empty_table(), None
    sums = np.concatenate([p[3].sums for p in parts], axis=1)
    quantiles = np.concatenate([p[4] for p in parts], axis=1)
    # the ratios read the counter block as it is (formulas.indicator_arrays)
    ind = formulas.indicator_columns(
        sums, sums.shape[1], dict(zip(formulas.PDD_QUANTILES, quantiles, strict=True))
    )
    codes, kind_ix, freq_ix, bucket_parts, end_parts = [], [], [], [], []
    labels: list[str] = []
    label_base: dict[str, int] = {}
    kinds_seen: list[str] = []
    freqs_seen: list[str] = []
    for kind, freq, names, leaf, _ in parts:
        if kind not in kinds_seen:
            kinds_seen.append(kind)
        if freq not in freqs_seen:
            freqs_seen.append(freq)
        n = len(leaf.code)
        if kind not in label_base:  # every kind's names and its unassigned label, one dictionary
            label_base[kind] = len(labels)
            labels.extend([*names, UNASSIGNED])
        offset = label_base[kind]
        codes.append(np.where(leaf.code < 0, len(names), leaf.code) + offset)
        kind_ix.append(np.full(n, kinds_seen.index(kind), dtype=np.int32))
        freq_ix.append(np.full(n, freqs_seen.index(freq), dtype=np.int32))
        bucket_parts.append(leaf.bucket)
        end_parts.append(leaf.bucket + _STEP_NS[freq])  # = FREQ_OFFSETS[freq]
    coded = TableKeys(np.concatenate(kind_ix), tuple(kinds_seen), np.concatenate(codes),
                      tuple(labels), np.concatenate(freq_ix), tuple(freqs_seen))  # fmt: skip
    keys = [
        _strings_of(coded.kind, kinds_seen),
        _strings_of(coded.obj, labels),
        _strings_of(coded.freq, freqs_seen),
        _utc(np.concatenate(bucket_parts)),
        _utc(np.concatenate(end_parts)),
    ]
    # counters and indicators as two 2-D blocks, the frame built on the blocks (a frame per
    # part and their concatenation cost ~10x more on a micro-batch's few hundred rows)
    names = [c for c in ind if c != "attempts"]
    values = np.stack([ind[c] for c in names])
    table = frame_of_blocks([*keys, sums, values], [*_KEY_COLUMNS, *formulas.COUNTERS, *names])
    return table, coded


_KEY_COLUMNS = ("object_kind", "object", "freq", "bucket", "bucket_end")


def _strings_of(index: np.ndarray, values: list[str]) -> pd.api.extensions.ExtensionArray:
    """``values[index]`` as an Arrow-backed string array (one take, no Python object per row)."""
    # large_string, what the array holds: no cast, no conversion by pd.array
    return pd.arrays.ArrowStringArray(_arrow_strings_of(tuple(values)).take(pa.array(index)))


@functools.lru_cache(maxsize=32)
def _arrow_strings_of(values: tuple[str, ...]) -> pa.Array:
    # a warm model's object names: the same few hundred strings every micro-batch
    return pa.array(values, pa.large_string())


def _utc(ns: np.ndarray) -> pd.api.extensions.ExtensionArray:
    # int64 UTC ns this module computed (NULL_TIME: NaT): no validation, no re-parse
    return pd.arrays.DatetimeArray._simple_new(
        np.ascontiguousarray(ns, dtype=np.int64).view("datetime64[ns]"), dtype=_UTC
    )


_UTC = pd.DatetimeTZDtype("ns", "UTC")


def _customer_sums(partials: list[_Partial]) -> pd.DataFrame:
    """Per customer (originating records), the score counters summed over all partitions."""
    chunks = [p.customers for p in partials if p.customers is not None and len(p.customers)]
    if not chunks:
        empty = pd.DataFrame({c: pd.Series([], dtype=np.int64) for c in _SCORE_COUNTERS})
        empty.index = pd.Index([], dtype=_STRING, name="customer")
        return empty
    sums = np.concatenate([p.customer_sums for p in partials if p.customers is not None
                           and len(p.customers)], axis=1)  # fmt: skip
    if len(chunks) == 1:
        values, total = chunks[0], sums
    else:
        idx, values = arrowstr.dictionary_codes(pa.concat_arrays(chunks))
        total, _ = _kernels.sum_by_cell(idx, sums, -1, _NO_REPLACEMENT, len(values))
    frame = pd.DataFrame({c: total[i] for i, c in enumerate(_SCORE_COUNTERS)}, copy=False)
    frame.index = pd.Index(pd.array(values, dtype=_STRING), name="customer")
    return frame


def _empty_table() -> pd.DataFrame:
    return _empty_table_cached().copy()


@functools.lru_cache(maxsize=1)
def _empty_table_cached() -> pd.DataFrame:
    # built once: computing the indicators of an empty frame costs ~10 ms per micro-batch
    s = pd.DataFrame({c: pd.Series([], dtype=np.int64) for c in formulas.COUNTERS})
    ind = formulas.indicators(s).drop(columns=["attempts"])
    frame = pd.DataFrame(
        {
            "object_kind": pd.Series([], dtype=pd.StringDtype("pyarrow")),
            "object": pd.Series([], dtype=pd.StringDtype("pyarrow")),
            "freq": pd.Series([], dtype=pd.StringDtype("pyarrow")),
            "bucket": pd.Series([], dtype="datetime64[ns, UTC]"),
            "bucket_end": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )
    return pd.concat([frame, s, ind], axis=1)


def _score_frame(sums: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in formulas.COUNTERS if c not in sums.columns]
    if missing:
        sums = sums.assign(**{c: np.zeros(len(sums), dtype=np.int64) for c in missing})
    ind = formulas.indicators(sums)
    score, reason = formulas.experience_score(ind)
    out = pd.DataFrame(
        {
            "customer": sums.index.astype(pd.StringDtype("pyarrow")),
            "experience_score": score.to_numpy(),
            "reason": reason.to_numpy(),
        }
    )
    for col in ("attempts", "ner", "drop_ratio", "mos", "pdd_mean_ms", "short_call_ratio"):
        out[col] = ind[col].to_numpy()
    return out


def _worst_meta() -> pd.DataFrame:
    return _worst_meta_cached().copy()


@functools.lru_cache(maxsize=1)
def _worst_meta_cached() -> pd.DataFrame:
    # built once: scoring even an empty frame costs ~0.1 s, a third of a micro-batch's budget
    empty = pd.DataFrame({c: pd.Series([], dtype=np.int64) for c in _SCORE_COUNTERS})
    empty.index = pd.Index([], dtype=pd.StringDtype("pyarrow"), name="customer")
    return _score_frame(empty)


def _no_worst() -> pd.DataFrame:
    return _no_worst_cached().copy(deep=False)  # copy-on-write: the caller's edits its own


@functools.lru_cache(maxsize=1)
def _no_worst_cached() -> pd.DataFrame:
    return _rank(_worst_meta_cached(), 1)


def _worst_of_partition(sums: pd.DataFrame, top_n: int, min_attempts: int) -> pd.DataFrame:
    sums = sums[sums["attempts"] >= min_attempts]
    if 0 < top_n < len(sums):
        # only the customers that can rank among the top_n lowest scores get the full frame
        # (indicators, reasons, pseudonyms): the score of every one, then those at or below
        # the top_n-th lowest (ties at the cut included, so the ranking is the same)
        score = formulas.scores(sums)
        scored = np.flatnonzero(~np.isnan(score))
        if len(scored) > top_n:
            cut = np.partition(score[scored], top_n - 1)[top_n - 1]
            scored = scored[score[scored] <= cut]
        if len(scored):  # (none scored: ranked as they are, an empty list of the same dtypes)
            sums = sums.iloc[scored]
    return _rank(_score_frame(sums), top_n)


def _rank(frame: pd.DataFrame, top_n: int) -> pd.DataFrame:
    """Lowest scores first; ties broken by the customer pseudonym (deterministic)."""
    frame = frame[frame["experience_score"].notna()]
    frame = frame.sort_values(["experience_score", "customer"], kind="mergesort")
    return frame.head(top_n).reset_index(drop=True)


# --- counters only (the warehouse) --------------------------------------------------------------
@dataclass
class CounterRows:
    """:func:`counter_rows`: the integer counters of :func:`rollup`'s rows, without its table.

    ``rows[(kind, freq)]`` is ``(code, bucket, sums)``: the object code of each row (index in
    ``assigner.group_names`` or ``assigner.customer_names``; -1 the unassigned group), its bucket
    start (int64 UTC ns) and its counters (int64[len(COUNTERS), rows]), the rows and counters
    of ``rollup(records, assigner, freqs=freqs).table`` (no indicators, percentiles or labels).
    Per record what they were summed by: ``group`` (-1 unassigned), ``customer`` (the modeled
    customer it counts for, -1 none), ``start_ns`` (:data:`NULL_TIME`: counted nowhere) and
    ``block``, its own counters (int64[records, len(COUNTERS)], as
    :func:`cemkit.kqi.formulas.contributions`).
    """

    rows: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]
    group: np.ndarray
    customer: np.ndarray
    start_ns: np.ndarray
    block: np.ndarray


def counter_rows(records: pd.DataFrame, assigner: Assigner,
                 freqs: Sequence[str] = BUCKETS) -> CounterRows:  # fmt: skip
    """The counters of :func:`rollup` for a pandas frame, for callers that keep only counters.

    The same per-record counters and cells (one jitted pass,
    :func:`cemkit.kqi._kernels.sum_counters`), hierarchy and buckets; none of the table
    (labels, indicators, exact percentiles, worst customers) is built.
    """
    cols = RecordColumns(records, formulas.LABELS)
    inputs = formulas.counter_inputs(cols)
    t, bucket = _times(records["start"])
    if formulas.INTENT_COLUMN in records.columns and (
        formulas.FIRST_OF_INTENT_COLUMN not in records.columns
    ):
        attempts, _ = formulas.record_flags(inputs)
        first = _first_of_intent(records, attempts, t, attempts_only=True)
        inputs = formulas.with_first_of_intent(inputs, first)
    groups, customers = _assigned_codes(records, assigner, assigner.model.numbers.column)
    if assigner.customer_names:
        customers = np.where(_is_orig(records) & (customers >= 0), customers, -1)
    else:
        customers = np.full(len(records), -1, dtype=np.int64)
    n = len(records)
    kinds: list[tuple[str, np.ndarray, np.ndarray, list[str], tuple[np.ndarray, np.ndarray]]] = [
        ("group", groups, bucket, list(assigner.group_names), ancestors_of(assigner)),
        ("customer", customers, np.where(customers >= 0, bucket, NULL_TIME),
         list(assigner.customer_names), own_index(len(assigner.customer_names))),
    ]  # fmt: skip
    cellings = [_cells(codes, buckets, len(names)) for _, codes, buckets, names, _ in kinds]
    # one pass: the two leaf cellings, and every record its own cell (its own counters)
    cellings.append((np.arange(n, dtype=np.int64), n, None))
    sums = _sum_counters(cellings, [_ALL_COUNTERS] * len(cellings), inputs)
    no_pdd = np.full(n, np.nan)
    rows: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for k, (kind, _, _, names, index) in enumerate(kinds):
        leaf = _leaf_of(cellings[k], *sums[k], no_pdd)
        if not len(leaf.code):
            continue
        row, code = expand(leaf.code, len(names), index)  # once for every bucket size
        bucket, counts = leaf.bucket[row], leaf.sums[:, row]
        for f in freqs:
            out, _ = _regroup(code, bucket, counts, _STEP_NS[f])
            rows[(kind, f)] = (out.code, out.bucket, out.sums)
    return CounterRows(rows, groups, customers, t, sums[2][0])
