r"""KQI rollups: per node group and per modeled customer, per time bucket, as Dask aggregations.

One pass over the records (Dask, any partitioning) yields three small results:

* integer counter sums (:data:`cemkit.kqi.formulas.COUNTERS`) per leaf group and 15-minute bucket,
  and per modeled customer and bucket;
* counts of each PDD value (whole milliseconds) per leaf group / customer and bucket, from which
  percentiles are exact (:func:`cemkit.kqi.formulas.weighted_quantile`);
* counter sums per customer over the whole period, for the experience score and the worst
  customers.

Parents in the group hierarchy and coarser buckets (hour, day) are sums of those results, so every
level is exact too: results are identical for any partitioning, scheduler or cluster.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from cemkit.errors import ModelError, SchemaError
from cemkit.kqi import formulas
from cemkit.model.assign import CUSTOMER_OBJECT_COLUMN, GROUP_COLUMN, Assigner
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

_KEYS_GROUP = ["group_code", "bucket"]
_KEYS_CUST = ["customer_code", "bucket"]


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
    """

    table: pd.DataFrame
    worst_customers: pd.DataFrame
    customer_count: int = 0
    model_name: str = ""
    freqs: tuple[str, ...] = field(default_factory=tuple)


def _prepare(part: pd.DataFrame, number_column: str) -> pd.DataFrame:
    """Per-record keys and counters (runs per partition)."""
    counters = formulas.contributions(part)
    start = part["start"]
    if not isinstance(start.dtype, pd.DatetimeTZDtype):
        start = pd.to_datetime(start, utc=True)
    keys = {
        "group_code": np.asarray(part[GROUP_COLUMN].cat.codes, dtype=np.int32),
        "customer_code": np.asarray(part[CUSTOMER_OBJECT_COLUMN].cat.codes, dtype=np.int32),
        "bucket": start.dt.floor("15min").astype("datetime64[ns, UTC]"),
        "orig": _is_orig(part),
    }
    pdd = pd.to_numeric(part["pdd_ms"], errors="coerce") if "pdd_ms" in part.columns else None
    if pdd is not None:
        pdd_int = np.rint(pdd.to_numpy(dtype=float, na_value=np.nan))
        pdd_int = np.where(counters["pdd_count"].to_numpy() > 0, pdd_int, np.nan)
    else:
        pdd_int = np.full(len(part), np.nan)
    keys["pdd_ms_int"] = pdd_int
    if number_column in part.columns:
        keys["customer"] = part[number_column].astype(pd.StringDtype("pyarrow"))
    # add the keys to the counters frame: its one integer block is kept as it is, not copied
    out = counters
    for name, values in keys.items():
        out.insert(len(out.columns), name, values)
    return out


def _is_orig(part: pd.DataFrame) -> np.ndarray:
    if "leg" not in part.columns:
        return np.ones(len(part), dtype=bool)
    return np.asarray((part["leg"] != "term").fillna(True).to_numpy(dtype=bool), dtype=bool)


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
        is_attempt = formulas.contributions(part)["attempts"].to_numpy() > 0
        return part.loc[is_attempt, [col, "start"]]

    if isinstance(ddf, pd.DataFrame):
        return _flag_first(ddf.copy(), _first_start(ddf, col))
    starts = _map_parts(ddf, attempts_only)
    first = starts.groupby(col)["start"].min().rename("_intent_first_start")
    merged = ddf.merge(first.to_frame(), left_on=col, right_index=True, how="left")

    def flag(part: pd.DataFrame) -> pd.DataFrame:
        part = part.copy()
        return _flag_first(part, part.pop("_intent_first_start"))

    return _map_parts(merged, flag)


def _first_start(part: pd.DataFrame, col: str) -> pd.Series:
    """Per row: the earliest start of an attempt of its intent (NaT without one or an intent)."""
    is_attempt = formulas.contributions(part)["attempts"].to_numpy() > 0
    codes = pd.factorize(part[col])[0]  # -1: no intent
    use = is_attempt & (codes >= 0)
    starts = part["start"].reset_index(drop=True)[use]
    first = starts.groupby(codes[use]).min()
    return pd.Series(first.reindex(codes).array, index=part.index)


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
    # pandas stays pandas: a micro-batch pays no Dask graph building or optimization
    if isinstance(records, pd.DataFrame | dd.DataFrame):
        return records
    raise SchemaError(
        f"records must be a pandas or Dask DataFrame, found {type(records).__name__}"
    )


def rollup(
    records: Any,
    model: ServiceModel | Assigner,
    *,
    freqs: Sequence[str] = BUCKETS,
    top_n: int = 20,
    worst_min_attempts: int = WORST_MIN_ATTEMPTS,
    customer_table: pd.DataFrame | None = None,
    rank_customers: bool = True,
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
        Also sum every customer's counters to rank the worst customers (a groupby over all
        customers: skip it when only group and modeled-customer KQIs are wanted).

    Returns
    -------
    KqiResult
    """
    bad = [f for f in freqs if f not in FREQ_OFFSETS]
    if bad:
        raise ModelError(f"unknown bucket(s) {bad}; known: {list(FREQ_OFFSETS)}")
    assigner = model if isinstance(model, Assigner) else Assigner(model, customer_table)
    spec = assigner.model
    ddf = _to_frame(records)
    is_pandas = isinstance(ddf, pd.DataFrame)
    if "start" not in ddf.columns:
        raise SchemaError("records have no 'start' column", hint="load records with cemkit.io")
    # read only what the formulas and the model need (customer numbers are the widest column)
    per_customer_work = rank_customers or bool(assigner.customer_names)
    wanted = [*formulas.INPUT_COLUMNS, "start", "node", formulas.INTENT_COLUMN]
    if per_customer_work:
        wanted.append("leg")
    if per_customer_work or assigner.needs_numbers:
        wanted.append(spec.numbers.column)
    ddf = ddf[[c for c in dict.fromkeys(wanted) if c in ddf.columns]]
    if per_customer_work and spec.numbers.column not in ddf.columns:
        raise SchemaError(
            f"records have no {spec.numbers.column!r} column to tell customers apart",
            hint="pass rank_customers=False, or give records with (pseudonymized) numbers",
        )
    if formulas.INTENT_COLUMN in ddf.columns:
        ddf = _mark_first_of_intent(ddf)
    assigned = assigner.assign(ddf) if is_pandas else assigner.assign_dask(ddf)
    number_column = spec.numbers.column
    prepared = _map_parts(assigned, _prepare, number_column)
    counters = list(formulas.COUNTERS)
    group_sums = prepared.groupby(_KEYS_GROUP)[counters].sum()
    with_pdd = prepared[prepared["pdd_count"] > 0]
    group_pdd = with_pdd.groupby([*_KEYS_GROUP, "pdd_ms_int"])["pdd_count"].sum()
    orig = prepared[prepared["orig"]]
    cust_sums: Any = pd.DataFrame()
    cust_pdd: Any = pd.Series([], dtype=np.int64)
    if assigner.customer_names:  # no modeled customers: no filtering pass for them
        modeled = orig[orig["customer_code"] >= 0]
        cust_sums = modeled.groupby(_KEYS_CUST)[counters].sum()
        cust_pdd = modeled[modeled["pdd_count"] > 0].groupby([*_KEYS_CUST, "pdd_ms_int"])[
            "pdd_count"
        ].sum()
    if rank_customers:
        split = {} if is_pandas else {"split_out": max(1, prepared.npartitions // 8)}
        per_customer = orig.groupby("customer")[list(_SCORE_COUNTERS)].sum(**split)
        worst_parts: Any = _map_parts(per_customer, _worst_of_partition, top_n,
                                      worst_min_attempts, meta=_worst_meta())  # fmt: skip
        n_customers: Any = per_customer.shape[0]
    else:
        worst_parts, n_customers = _worst_meta(), 0
    g_sums, g_pdd, c_sums, c_pdd, worst, n_cust = dask.compute(
        group_sums, group_pdd, cust_sums, cust_pdd, worst_parts, n_customers
    )
    names = [*assigner.group_names]
    hierarchy = {i: [names.index(a) for a in spec.ancestors(n)] for i, n in enumerate(names)}
    tables = [
        _finish(g_sums, g_pdd, "group_code", names, hierarchy, freqs, "group"),
        _finish(c_sums, c_pdd, "customer_code", assigner.customer_names, {}, freqs, "customer"),
    ]
    table = pd.concat([t for t in tables if len(t)], ignore_index=True) if any(
        len(t) for t in tables
    ) else _empty_table()
    worst = _rank(worst, top_n)
    return KqiResult(table, worst, int(n_cust), spec.name, tuple(freqs))


def _finish(
    sums: pd.DataFrame,
    pdd_counts: pd.Series,
    code_col: str,
    names: list[str],
    hierarchy: dict[int, list[int]],
    freqs: Sequence[str],
    kind: str,
) -> pd.DataFrame:
    """Roll leaf sums up the hierarchy and to coarser buckets, then compute indicators."""
    if sums.empty:
        return _empty_table()
    sums = sums.reset_index()
    pdd = pdd_counts.rename("n").reset_index()
    all_sums = _with_ancestors(sums, code_col, len(names), hierarchy)
    all_pdd = _with_ancestors(pdd, code_col, len(names), hierarchy)
    label = np.array([*names, UNASSIGNED], dtype=object)
    out = []
    for freq in freqs:
        offset = FREQ_OFFSETS[freq]
        s = all_sums.assign(bucket=all_sums["bucket"].dt.floor(offset))
        s = s.groupby([code_col, "bucket"], sort=True).sum().reset_index()
        p = all_pdd.assign(bucket=all_pdd["bucket"].dt.floor(offset))
        p = p.groupby([code_col, "bucket", "pdd_ms_int"], sort=True)["n"].sum().reset_index()
        quant = _quantiles(p, code_col)
        s = s.merge(quant, on=[code_col, "bucket"], how="left")
        ind = formulas.indicators(s)
        frame = pd.DataFrame(
            {
                "object_kind": kind,
                "object": label[s[code_col].to_numpy()],
                "freq": freq,
                "bucket": s["bucket"],
                "bucket_end": s["bucket"] + pd.Timedelta(offset),
            }
        )
        counters = s[list(formulas.COUNTERS)]
        rest = ind.drop(columns=["attempts"])
        out.append(pd.concat([frame, counters, rest], axis=1))
    table = pd.concat(out, ignore_index=True)
    table["object"] = table["object"].astype(pd.StringDtype("pyarrow"))
    table["object_kind"] = table["object_kind"].astype(pd.StringDtype("pyarrow"))
    table["freq"] = table["freq"].astype(pd.StringDtype("pyarrow"))
    return table


def _with_ancestors(
    frame: pd.DataFrame, code_col: str, n_codes: int, hierarchy: dict[int, list[int]]
) -> pd.DataFrame:
    """Each row once for its own object and once more for every ancestor of it (vectorized)."""
    chains = [[code, *hierarchy.get(code, [])] for code in range(n_codes)]
    lengths = np.array([len(c) for c in chains] + [1], dtype=np.int64)  # last: unassigned
    codes = frame[code_col].to_numpy(dtype=np.int64)
    slot = np.where(codes < 0, n_codes, codes)
    reps = lengths[slot]
    if (reps == 1).all():
        return frame
    offsets = np.r_[0, np.cumsum(lengths)]
    flat = np.array([c for chain in chains for c in chain] + [-1], dtype=np.int64)
    row = np.repeat(np.arange(len(frame)), reps)
    within = np.arange(len(row)) - np.repeat(np.cumsum(reps) - reps, reps)
    out = frame.iloc[row].reset_index(drop=True)
    out[code_col] = flat[offsets[slot[row]] + within].astype(frame[code_col].dtype)
    return out


def _quantiles(p: pd.DataFrame, code_col: str) -> pd.DataFrame:
    """Exact PDD percentiles per (object, bucket) from value counts (sorted by the caller)."""
    p = p[p["n"] > 0]
    if len(p):
        keys = p[[code_col, "bucket"]]
        code = p[code_col].to_numpy()
        bucket = p["bucket"].to_numpy(dtype="datetime64[ns]")
        new = np.r_[True, (code[1:] != code[:-1]) | (bucket[1:] != bucket[:-1])]
        gid = np.cumsum(new) - 1
        values = p["pdd_ms_int"].to_numpy(dtype=float)
        counts = p["n"].to_numpy(dtype=np.int64)
        out = None
        for name, q in formulas.PDD_QUANTILES.items():
            ids, quant = formulas.grouped_weighted_quantile(gid, values, counts, q)
            if out is None:
                first = np.searchsorted(gid, ids)
                out = keys.iloc[first].reset_index(drop=True)
            out[name] = quant
        assert out is not None
        return out
    return pd.DataFrame(
        {
            code_col: pd.Series([], dtype=np.int32),
            "bucket": pd.Series([], dtype="datetime64[ns, UTC]"),
            **{n: pd.Series([], dtype=float) for n in formulas.PDD_QUANTILES},
        }
    )


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


def _worst_of_partition(sums: pd.DataFrame, top_n: int, min_attempts: int) -> pd.DataFrame:
    sums = sums[sums["attempts"] >= min_attempts]
    return _rank(_score_frame(sums), top_n)


def _rank(frame: pd.DataFrame, top_n: int) -> pd.DataFrame:
    """Lowest scores first; ties broken by the customer pseudonym (deterministic)."""
    frame = frame[frame["experience_score"].notna()]
    frame = frame.sort_values(["experience_score", "customer"], kind="mergesort")
    return frame.head(top_n).reset_index(drop=True)
