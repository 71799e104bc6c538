"""Slow, obviously-correct references for the correlation kernels (the stumpy tests/naive.py idea).

Plain Python over lists: every rule written out once, no sorting tricks. Same inputs and outputs
as the kernels in cemkit.correlate._kernels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from cemkit.errors import ModelError, SchemaError
from cemkit.kqi import formulas
from cemkit.kqi.alerts import empty_alerts
from cemkit.kqi.rollup import (
    FREQ_OFFSETS,
    UNASSIGNED,
    WORST_MIN_ATTEMPTS,
    KqiResult,
    _empty_table,
    _rank,
    _score_frame,
    _worst_meta,
)
from cemkit.model.assign import CUSTOMER_OBJECT_COLUMN, GROUP_COLUMN, Assigner
from cemkit.model.spec import BUCKETS, SEVERITIES, ServiceModel, Threshold

NULL = np.iinfo(np.int64).min
INF = math.inf


def asof(lkey, ltime, rkey, rtime, tolerance=-1, direction="backward", allow_exact=True):
    """Right position per left row: brute force over every right row."""
    out = []
    for i in range(len(lkey)):
        best_b = best_f = None
        if lkey[i] >= 0 and ltime[i] != NULL:
            t = int(ltime[i])
            for j in range(len(rkey)):
                if rkey[j] != lkey[i] or rtime[j] == NULL:
                    continue
                r = int(rtime[j])
                before = r <= t if allow_exact else r < t
                after = r >= t if allow_exact else r > t
                # backward: latest time; among equal times the last row
                ok_b = before and (tolerance < 0 or t - r <= tolerance)
                if ok_b and (best_b is None or r >= int(rtime[best_b])):
                    best_b = j
                # forward: earliest time; among equal times the first row
                ok_f = after and (tolerance < 0 or r - t <= tolerance)
                if ok_f and (best_f is None or r < int(rtime[best_f])):
                    best_f = j
        if direction == "backward":
            out.append(-1 if best_b is None else best_b)
        elif direction == "forward":
            out.append(-1 if best_f is None else best_f)
        else:
            if best_b is None:
                out.append(-1 if best_f is None else best_f)
            elif best_f is None:
                out.append(best_b)
            else:
                db = int(ltime[i]) - int(rtime[best_b])
                df = int(rtime[best_f]) - int(ltime[i])
                out.append(best_b if db <= df else best_f)
    return np.array(out, dtype=np.int64)


def nearest_pairs(key, time, side, tolerance):
    """Every candidate pair, sorted by (distance, side-0 row, side-1 row), taken greedily."""
    n = len(key)
    cands = []
    for i in range(n):
        for j in range(n):
            if side[i] != 0 or side[j] != 1:
                continue
            if key[i] < 0 or key[i] != key[j] or time[i] == NULL or time[j] == NULL:
                continue
            d = abs(int(time[i]) - int(time[j]))
            if d <= tolerance:
                cands.append((d, i, j))
    partner = [-1] * n
    for _, i, j in sorted(cands):
        if partner[i] == -1 and partner[j] == -1:
            partner[i] = j
            partner[j] = i
    return np.array(partner, dtype=np.int64)


def stitch(key, seq, start, end, chain, gap):
    """(label, rank, flags) per row, group by group."""
    n = len(key)
    label = list(range(n))
    rank = [0] * n
    flags = [0] * n
    groups: dict[int, list[int]] = {}
    for i in range(n):
        if key[i] >= 0:
            groups.setdefault(int(key[i]), []).append(i)

    def num(v):
        return INF if v == NULL else int(v)

    for rows in groups.values():
        if not chain[rows[0]]:
            order = sorted(
                rows, key=lambda i: (INF if seq[i] < 0 else int(seq[i]), num(start[i]), i)
            )
            for r, i in enumerate(order):
                label[i] = order[0]
                rank[i] = r
            seqs = [int(seq[i]) for i in rows if seq[i] >= 0]
            f = 0
            if len(set(seqs)) < len(seqs):
                f |= 4
            if seqs and sorted(set(seqs)) != list(range(1, max(seqs) + 1)):
                f |= 2
            for a in rows:
                for b in rows:
                    later_seq = seq[a] >= 0 and seq[b] >= 0 and seq[a] < seq[b]
                    known = start[a] != NULL and start[b] != NULL
                    if later_seq and known and start[b] < start[a]:
                        f |= 1
            for i in rows:
                flags[i] = f
        else:
            order = sorted(rows, key=lambda i: (num(start[i]), i))
            head, k = order[0], 0
            for r, i in enumerate(order):
                if r > 0:
                    prev = order[r - 1]
                    ok = start[i] != NULL and end[prev] != NULL
                    if ok and abs(int(start[i]) - int(end[prev])) <= gap:
                        k += 1
                    else:
                        head, k = i, 0
                label[i] = head
                rank[i] = k
    return (np.array(label, np.int64), np.array(rank, np.int64), np.array(flags, np.int8))


def sessions(key, start, end, answered, window, close_on_answer):
    """(label, rank) per row: walk each key's attempts in time order."""
    n = len(key)
    label = list(range(n))
    rank = [0] * n
    groups: dict[int, list[int]] = {}
    for i in range(n):
        if key[i] >= 0 and start[i] != NULL:
            groups.setdefault(int(key[i]), []).append(i)
    for rows in groups.values():
        order = sorted(rows, key=lambda i: (int(start[i]), i))
        head, k = order[0], 0
        for r, i in enumerate(order):
            if r > 0:
                prev = order[r - 1]
                ref = int(end[prev]) if end[prev] != NULL else int(start[prev])
                closed = close_on_answer and bool(answered[prev])
                if int(start[i]) - ref <= window and not closed:
                    k += 1
                else:
                    head, k = i, 0
            label[i] = head
            rank[i] = k
    return np.array(label, np.int64), np.array(rank, np.int64)


def bound_contributions(unit, cell, cell_priority, record_priority, max_cells, max_records):
    """Keep mask: per unit its max_cells most preferred cells, in each its max_records records."""
    keep = [False] * len(unit)
    by_unit: dict[int, dict[int, list[int]]] = {}
    for i in range(len(unit)):
        if unit[i] >= 0:
            by_unit.setdefault(int(unit[i]), {}).setdefault(int(cell[i]), []).append(i)
    for cells in by_unit.values():
        ranked = sorted(cells, key=lambda c: (int(cell_priority[cells[c][0]]), c))
        for c in ranked[:max_cells]:
            rows = sorted(cells[c], key=lambda i: (int(record_priority[i]), i))
            for i in rows[:max_records]:
                keep[i] = True
    return np.array(keep, dtype=bool)


# --- KQIs: the pandas implementations the jitted rollup, alerts and sizes replaced ----------------
# Kept verbatim (helpers renamed) as the slow reference of cemkit.kqi.rollup / alerts / sizes.
_ro_SCORE_COUNTERS = ("attempts", "answered", "user_determined", "short_calls", "drops",
                   "pdd_count", "pdd_us", "mos_count", "mos_micro")  # fmt: skip

_ro_KEYS_GROUP = ["group_code", "bucket"]
_ro_KEYS_CUST = ["customer_code", "bucket"]


def _ro_prepare(part: pd.DataFrame, number_column: str) -> pd.DataFrame:
    """Per-record keys and counters (runs per partition)."""
    counters = formulas.contributions(part)
    start = part["start"]
    if not isinstance(start.dtype, pd.DatetimeTZDtype):
        start = pd.to_datetime(start, utc=True)
    keys = {
        "group_code": np.asarray(part[GROUP_COLUMN].cat.codes, dtype=np.int32),
        "customer_code": np.asarray(part[CUSTOMER_OBJECT_COLUMN].cat.codes, dtype=np.int32),
        "bucket": start.dt.floor("15min").astype("datetime64[ns, UTC]"),
        "orig": _ro_is_orig(part),
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


def _ro_is_orig(part: pd.DataFrame) -> np.ndarray:
    if "leg" not in part.columns:
        return np.ones(len(part), dtype=bool)
    return np.asarray((part["leg"] != "term").fillna(True).to_numpy(dtype=bool), dtype=bool)


def _ro_mark_first_of_intent(ddf: dd.DataFrame) -> dd.DataFrame:
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
        return _ro_flag_first(ddf.copy(), _ro_first_start(ddf, col))
    starts = _ro_map_parts(ddf, attempts_only)
    first = starts.groupby(col)["start"].min().rename("_intent_first_start")
    merged = ddf.merge(first.to_frame(), left_on=col, right_index=True, how="left")

    def flag(part: pd.DataFrame) -> pd.DataFrame:
        part = part.copy()
        return _ro_flag_first(part, part.pop("_intent_first_start"))

    return _ro_map_parts(merged, flag)


def _ro_first_start(part: pd.DataFrame, col: str) -> pd.Series:
    """Per row: the earliest start of an attempt of its intent (NaT without one or an intent)."""
    is_attempt = formulas.contributions(part)["attempts"].to_numpy() > 0
    codes = pd.factorize(part[col])[0]  # -1: no intent
    use = is_attempt & (codes >= 0)
    starts = part["start"].reset_index(drop=True)[use]
    first = starts.groupby(codes[use]).min()
    return pd.Series(first.reindex(codes).array, index=part.index)


def _ro_flag_first(part: pd.DataFrame, first_start: pd.Series) -> pd.DataFrame:
    window = pd.Timedelta(seconds=formulas.SAME_ATTEMPT_WINDOW_S)
    is_first = (part["start"] - first_start <= window) | first_start.isna()
    part[formulas.FIRST_OF_INTENT_COLUMN] = is_first.fillna(True).astype(bool)
    return part


def _ro_map_parts(frame: Any, fn: Any, *args: Any, meta: Any = None) -> Any:
    """``fn(partition, *args)`` on every partition of a Dask frame, or on a pandas frame."""
    if isinstance(frame, pd.DataFrame):
        return fn(frame, *args)
    return frame.map_partitions(fn, *args, meta=fn(frame._meta, *args) if meta is None else meta)


def _ro_to_frame(records: Any) -> Any:
    # pandas stays pandas: a micro-batch pays no Dask graph building or optimization
    if isinstance(records, pd.DataFrame | dd.DataFrame):
        return records
    raise SchemaError(f"records must be a pandas or Dask DataFrame, found {type(records).__name__}")


def rollup_pandas(
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
    ddf = _ro_to_frame(records)
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
        ddf = _ro_mark_first_of_intent(ddf)
    assigned = assigner.assign(ddf) if is_pandas else assigner.assign_dask(ddf)
    number_column = spec.numbers.column
    prepared = _ro_map_parts(assigned, _ro_prepare, number_column)
    counters = list(formulas.COUNTERS)
    group_sums = prepared.groupby(_ro_KEYS_GROUP)[counters].sum()
    with_pdd = prepared[prepared["pdd_count"] > 0]
    group_pdd = with_pdd.groupby([*_ro_KEYS_GROUP, "pdd_ms_int"])["pdd_count"].sum()
    orig = prepared[prepared["orig"]]
    cust_sums: Any = pd.DataFrame()
    cust_pdd: Any = pd.Series([], dtype=np.int64)
    if assigner.customer_names:  # no modeled customers: no filtering pass for them
        modeled = orig[orig["customer_code"] >= 0]
        cust_sums = modeled.groupby(_ro_KEYS_CUST)[counters].sum()
        cust_pdd = (
            modeled[modeled["pdd_count"] > 0]
            .groupby([*_ro_KEYS_CUST, "pdd_ms_int"])["pdd_count"]
            .sum()
        )
    if rank_customers:
        split = {} if is_pandas else {"split_out": max(1, prepared.npartitions // 8)}
        per_customer = orig.groupby("customer")[list(_ro_SCORE_COUNTERS)].sum(**split)
        worst_parts: Any = _ro_map_parts(per_customer, _ro_worst_of_partition, top_n,
                                      worst_min_attempts, meta=_ro_worst_meta())  # fmt: skip
        n_customers: Any = per_customer.shape[0]
    else:
        worst_parts, n_customers = _ro_worst_meta(), 0
    g_sums, g_pdd, c_sums, c_pdd, worst, n_cust = dask.compute(
        group_sums, group_pdd, cust_sums, cust_pdd, worst_parts, n_customers
    )
    names = [*assigner.group_names]
    hierarchy = {i: [names.index(a) for a in spec.ancestors(n)] for i, n in enumerate(names)}
    tables = [
        _ro_finish(g_sums, g_pdd, "group_code", names, hierarchy, freqs, "group"),
        _ro_finish(c_sums, c_pdd, "customer_code", assigner.customer_names, {}, freqs, "customer"),
    ]
    table = (
        pd.concat([t for t in tables if len(t)], ignore_index=True)
        if any(len(t) for t in tables)
        else _ro_empty_table()
    )
    worst = _ro_rank(worst, top_n)
    return KqiResult(table, worst, int(n_cust), spec.name, tuple(freqs))


def _ro_finish(
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
        return _ro_empty_table()
    sums = sums.reset_index()
    pdd = pdd_counts.rename("n").reset_index()
    all_sums = _ro_with_ancestors(sums, code_col, len(names), hierarchy)
    all_pdd = _ro_with_ancestors(pdd, code_col, len(names), hierarchy)
    label = np.array([*names, UNASSIGNED], dtype=object)
    out = []
    for freq in freqs:
        offset = FREQ_OFFSETS[freq]
        s = all_sums.assign(bucket=all_sums["bucket"].dt.floor(offset))
        s = s.groupby([code_col, "bucket"], sort=True).sum().reset_index()
        p = all_pdd.assign(bucket=all_pdd["bucket"].dt.floor(offset))
        p = p.groupby([code_col, "bucket", "pdd_ms_int"], sort=True)["n"].sum().reset_index()
        quant = _ro_quantiles(p, code_col)
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


def _ro_with_ancestors(
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


def _ro_quantiles(p: pd.DataFrame, code_col: str) -> pd.DataFrame:
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


# the sort and the empty table are the library's own (what the reference checks is the counting,
# the hierarchy and the buckets); the worst customers of a partition: every customer scored and
# ranked (the library scores only those that can rank, :func:`worst_of_partition`)
_ro_empty_table = _empty_table
_ro_rank = _rank
_ro_worst_meta = _worst_meta


def worst_of_partition(sums: pd.DataFrame, top_n: int, min_attempts: int) -> pd.DataFrame:
    """The ``top_n`` worst customers: every customer with enough attempts scored, all ranked."""
    sums = sums[sums["attempts"] >= min_attempts]
    return _rank(_score_frame(sums), top_n)


_ro_worst_of_partition = worst_of_partition


# alerts
_al_RANK = {s: i for i, s in enumerate(SEVERITIES)}

#: Counter that says how many trials a non-share indicator rests on.
_al_TRIALS: dict[str, str] = {
    "attempts": "attempts",
    "acd_s": "answered",
    "pdd_mean_ms": "pdd_count",
    "pdd_p50_ms": "pdd_count",
    "pdd_p95_ms": "pdd_count",
    "mos": "mos_count",
    "experience_score": "attempts",
}


def _al_trials(rows: pd.DataFrame, ind: formulas.Indicator) -> pd.Series:
    if ind.is_share:
        return formulas.bad_share(rows, ind.name)[1]
    return rows[_al_TRIALS[ind.name]].astype("int64")


def _al_worse(value: np.ndarray, limit: float | np.ndarray, direction: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.asarray(value < limit if direction > 0 else value > limit, dtype=bool)


def _al_evaluate(rows: pd.DataFrame, rule: Threshold, baseline_min: int) -> dict[str, np.ndarray]:
    """Per bucket: breached?, the limit, the baseline (NaN for absolute rules)."""
    ind = formulas.INDICATORS[rule.indicator]
    value = rows[rule.indicator].to_numpy(dtype=float, na_value=np.nan)
    trials = _al_trials(rows, ind).to_numpy(dtype=np.int64)
    judged = (trials >= rule.min_attempts) & ~np.isnan(value)
    n = len(rows)
    if rule.absolute is not None:
        limit = np.full(n, float(rule.absolute))
        breach = judged & _al_worse(value, limit, ind.direction)
        return {"breach": breach, "limit": limit, "baseline": np.full(n, np.nan)}
    assert rule.relative is not None
    eligible = (trials >= baseline_min) & ~np.isnan(value)
    if not eligible.any():
        return {"breach": np.zeros(n, bool), "limit": np.full(n, np.nan),
                "baseline": np.full(n, np.nan)}  # fmt: skip
    if ind.is_share:
        bad, den = formulas.bad_share(rows, rule.indicator)
        bad_np = bad.to_numpy(dtype=float)
        den_np = den.to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = bad_np / den_np
        p0 = _al_robust_pooled_share(bad_np, den_np, eligible, rule.min_z)
        # a baseline of zero bad outcomes still allows one in all the trials seen
        p0_eff = min(max(p0, 1.0 / float(den_np[eligible].sum())), 1 - 1e-9)
        z = _al_z_score(bad_np, den_np, p0_eff)
        bad_limit = rule.relative * p0_eff
        breach = judged & (p > bad_limit) & (z >= rule.min_z)
        limit_value = 1.0 - bad_limit if ind.direction > 0 else bad_limit
        baseline = 1.0 - p0 if ind.direction > 0 else p0
    else:
        baseline = float(np.median(value[eligible]))
        limit_value = baseline * rule.relative if ind.direction < 0 else baseline / rule.relative
        breach = judged & _al_worse(value, limit_value, ind.direction)
    return {"breach": np.asarray(breach, dtype=bool), "limit": np.full(n, limit_value),
            "baseline": np.full(n, baseline)}  # fmt: skip


def _al_z_score(bad: np.ndarray, den: np.ndarray, p0: float) -> np.ndarray:
    """Signed-root likelihood-ratio z of ``bad`` out of ``den`` against the share ``p0``.

    ``z = sign(p - p0) sqrt(2 [k ln(k / n p0) + (n - k) ln((n - k) / n (1 - p0))])``: unlike
    the Wald score ``(p - p0) / sqrt(p0 (1 - p0) / n)``, its tail stays close to the exact
    binomial tail for rare events (a 2 % drop ratio over a few dozen calls), so a clean network
    does not raise alerts by chance.
    """
    k = bad.astype(float)
    n = den.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t1 = np.where(k > 0, k * np.log(k / (n * p0)), 0.0)
        t2 = np.where(n - k > 0, (n - k) * np.log((n - k) / (n * (1 - p0))), 0.0)
        dev = np.sqrt(np.maximum(2.0 * (t1 + t2), 0.0))
        z = np.sign(k / n - p0) * dev
    return np.where(n > 0, z, np.nan)


def _al_robust_pooled_share(
    bad: np.ndarray, den: np.ndarray, eligible: np.ndarray, min_z: float
) -> float:
    """Pooled bad share of the eligible buckets, leaving out significantly worse buckets.

    One pass of outlier rejection: buckets whose z against the pooled share of all eligible
    buckets reaches ``min_z`` are left out of the baseline.

    A pooled share is unbiased for rare events (a per-bucket median of a 2 % share is 0 when
    most buckets see no bad outcome); leaving out the outliers keeps an incident from raising
    its own baseline.
    """
    p_all = float(bad[eligible].sum() / den[eligible].sum())
    if p_all <= 0.0 or p_all >= 1.0:
        return p_all
    keep = eligible & ~(_al_z_score(bad, den, p_all) >= min_z)
    if not keep.any():
        return p_all
    return float(bad[keep].sum() / den[keep].sum())


def find_alerts_pandas(
    table: pd.DataFrame, model: ServiceModel, *, freq: str | None = None
) -> pd.DataFrame:
    """Alerts from a KQI table (:attr:`cemkit.kqi.rollup.KqiResult.table`).

    Parameters
    ----------
    table : pandas.DataFrame
        KQI rows with counters and indicators.
    model : ServiceModel
        Thresholds per group / customer and the alerting bucket.
    freq : str, optional
        Bucket to judge (default ``model.alerting.bucket``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ALERT_COLUMNS` (``group`` names the group or modeled customer), sorted by
        start, group and indicator.
    """
    freq = freq or model.alerting.bucket
    rows = table[table["freq"] == freq] if "freq" in table.columns else table
    found: list[dict[str, object]] = []
    objects: list[tuple[str, str, list[Threshold]]] = [
        ("group", g.name, model.thresholds_for_group(g.name)) for g in model.groups
    ] + [("customer", c.name, model.thresholds_for_customer(c.name)) for c in model.customers]
    # one pass over the table (not one filter of the whole table per group and customer)
    by_object = {
        (str(k), str(o)): idx
        for (k, o), idx in rows.groupby(["object_kind", "object"], sort=False).indices.items()
    }
    for kind, name, rules in objects:
        if not rules or (kind, name) not in by_object:
            continue
        mine = rows.iloc[by_object[(kind, name)]]
        mine = mine.sort_values("bucket").reset_index(drop=True)
        for indicator in dict.fromkeys(r.indicator for r in rules):
            found.extend(_al_alerts_for(mine, kind, name, indicator,
                                     [r for r in rules if r.indicator == indicator],
                                     model.alerting.baseline_min_attempts))  # fmt: skip
    if not found:
        return empty_alerts()
    out = pd.DataFrame(found)
    out = out.astype(empty_alerts().dtypes.to_dict())
    return out.sort_values(["start", "group", "indicator"], kind="mergesort").reset_index(drop=True)


def _al_alerts_for(
    rows: pd.DataFrame, kind: str, name: str, indicator: str, rules: list[Threshold],
    baseline_min: int,
) -> list[dict[str, object]]:  # fmt: skip
    ind = formulas.INDICATORS[indicator]
    n = len(rows)
    level = np.full(n, -1)
    limit = np.full(n, np.nan)
    rule_kind = np.full(n, "", dtype=object)
    base = np.full(n, np.nan)
    for rule in sorted(rules, key=lambda r: _al_RANK[r.severity]):
        ev = _al_evaluate(rows, rule, baseline_min)
        hit = ev["breach"] & (_al_RANK[rule.severity] >= level)
        level[hit] = _al_RANK[rule.severity]
        limit[hit] = ev["limit"][hit]
        rule_kind[hit] = "absolute" if rule.absolute is not None else "relative"
        base[hit] = ev["baseline"][hit]
    values = rows[indicator].to_numpy(dtype=float, na_value=np.nan)
    starts = rows["bucket"].to_numpy(dtype="datetime64[ns]")
    ends = rows["bucket_end"].to_numpy(dtype="datetime64[ns]")
    out: list[dict[str, object]] = []
    i = 0
    while i < n:
        if level[i] < 0:
            i += 1
            continue
        j = i
        while j + 1 < n and level[j + 1] >= 0 and starts[j + 1] == ends[j]:
            j += 1
        window = slice(i, j + 1)
        top = int(level[window].max())
        vals = values[window]
        worst = int(np.nanargmin(vals) if ind.direction > 0 else np.nanargmax(vals)) + i
        at_top = [k for k in range(i, j + 1) if level[k] == top]
        ref = worst if level[worst] == top else at_top[0]
        out.append({
            "group": name, "object_kind": kind, "indicator": indicator,
            "start": pd.Timestamp(starts[i], tz="UTC"), "end": pd.Timestamp(ends[j], tz="UTC"),
            "severity": SEVERITIES[top], "value": float(values[worst]),
            "threshold": float(limit[ref]), "kind": str(rule_kind[ref]),
            "baseline": float(base[ref]) if not math.isnan(base[ref]) else math.nan,
            "buckets": j - i + 1,
        })  # fmt: skip
        i = j + 1
    return out


# group sizes
def _sz_pairs(part: pd.DataFrame, assigner: Assigner, column: str) -> pd.DataFrame:
    """(group code, customer) pairs of a partition, the group and each of its ancestors."""
    codes = assigner.group_codes(part[column], part.get("node"))
    chains = [[i, *assigner._chain_index[i]] for i in range(len(assigner.group_names))]
    depth = max((len(c) for c in chains), default=1)
    lookup = np.full((len(chains) + 1, depth), -2, dtype=np.int64)  # row -1 → unassigned
    for i, chain in enumerate(chains):
        lookup[i, : len(chain)] = chain
    lookup[-1, 0] = -1
    customers = part[column].astype("string[pyarrow]").to_numpy()
    rows = [pd.DataFrame({"code": lookup[codes, d], "customer": customers}) for d in range(depth)]
    out = pd.concat(rows, ignore_index=True)
    out = out[(out["code"] > -2) & pd.notna(out["customer"])]
    return out.drop_duplicates()


def group_sizes_pandas(records: Any, model: ServiceModel | Assigner) -> pd.DataFrame:
    """Distinct customers per node group (ancestors included), for pandas or Dask records.

    Returns
    -------
    pandas.DataFrame
        Columns ``group`` and ``customers``; records no rule matched count under
        ``(unassigned)``.
    """
    assigner = model if isinstance(model, Assigner) else Assigner(model)
    column = assigner.model.numbers.column
    cols = [c for c in (column, "node") if c in records.columns]
    if hasattr(records, "map_partitions"):
        meta = pd.DataFrame({"code": pd.Series([], dtype="int64"),
                             "customer": pd.Series([], dtype="string[pyarrow]")})  # fmt: skip
        pairs = records[cols].map_partitions(_sz_pairs, assigner, column, meta=meta)
        counts = pairs.drop_duplicates(split_out=max(1, records.npartitions // 8))
        sizes = counts.groupby("code").size().compute()
    else:
        sizes = _sz_pairs(records[cols], assigner, column).groupby("code").size()
    names = np.array([*assigner.group_names, UNASSIGNED], dtype=object)
    idx = sizes.index.to_numpy()
    return pd.DataFrame(
        {"group": names[np.where(idx < 0, len(names) - 1, idx)],
         "customers": sizes.to_numpy().astype("int64")}
    ).sort_values("group", ignore_index=True)  # fmt: skip


# --- KQI kernels (cemkit.kqi._kernels) --------------------------------------------------------
def sum_by_cell(cell, values, replace_row, replacement, n_cells):
    """Sums per cell: a loop over records and counters."""
    out = [[0] * n_cells for _ in range(len(values))]
    count = [0] * n_cells
    for i, k in enumerate(cell):
        if k < 0:
            continue
        count[k] += 1
        for j in range(len(values)):
            out[j][k] += int(replacement[i] if j == replace_row else values[j][i])
    return np.array(out, dtype=np.int64).reshape(len(values), n_cells), np.array(count, np.int64)


def sum_counters(cells, n_cells, picks, n_picks, block):
    """Per celling j, the picked counters of the per-record ``block`` (record, counter) summed
    per cell: a loop over cellings, records and picked counters, flattened as the kernel's."""
    out, count = [], []
    for j in range(len(n_cells)):
        table = [[0] * int(n_picks[j]) for _ in range(int(n_cells[j]))]
        seen = [0] * int(n_cells[j])
        for i in range(len(block)):
            c = int(cells[j][i])
            if c < 0:
                continue
            seen[c] += 1
            for m in range(int(n_picks[j])):
                table[c][m] += int(block[i][int(picks[j][m])])
        out.extend(v for row in table for v in row)
        count.extend(seen)
    return np.array(out, dtype=np.int64), np.array(count, dtype=np.int64)


def numbered_strings(values):
    """Each string's trailing number, when all non-null strings are one head and a number.

    The number is the longest run of digits ending the string: 1 to 18 digits, no leading
    zero unless it is ``0``; the head (what precedes it) equal to the first string's.
    Returns (numbers, -1 for null; whether every string had that form).
    """
    keys, head = [], None
    for v in values:
        if v is None:
            keys.append(-1)
            continue
        digits = len(v) - len(v.rstrip("0123456789"))
        number = v[len(v) - digits :]
        if not 1 <= digits <= 18 or (digits > 1 and number[0] == "0"):
            return np.full(len(values), -1, dtype=np.int64), False
        if head is None:
            head = v[: len(v) - digits]
        elif v[: len(v) - digits] != head:
            return np.full(len(values), -1, dtype=np.int64), False
        keys.append(int(number))
    return np.array(keys, dtype=np.int64), True


def first_of_intent(intents, time, attempts, window_ns):
    """Per record: no earlier attempt of its intent starts more than ``window_ns`` before it.

    ``intents`` any hashable values (None: no intent); the earliest ``time`` over the records
    with ``attempts`` (NULL times left out) per intent, compared record by record.
    """
    earliest = {}
    for k, t, a in zip(intents, time, attempts, strict=True):
        if k is not None and a and t != NULL:
            earliest[k] = min(earliest.get(k, t), t)
    out = []
    for k, t in zip(intents, time, strict=True):
        f = earliest.get(k) if k is not None else None
        out.append(True if f is None else (t != NULL and t - f <= window_ns))
    return np.array(out, dtype=bool)


def first_start(code, time, use, n_codes):
    """Earliest valid time per code among the used records; NULL when none."""
    out = []
    for c in range(n_codes):
        ts = [int(t) for k, t, u in zip(code, time, use, strict=True) if k == c and u and t != NULL]
        out.append(min(ts) if ts else NULL)
    return np.array(out, dtype=np.int64)


def codes_at(values, rows):
    """Codes of ``values[rows]`` (strings or None) in order of first appearance; None one too."""
    seen = {}
    codes = [seen.setdefault(values[r], len(seen)) for r in rows]
    return np.array(codes, dtype=np.int64), len(seen)


def kahan_sums(values, rows, sub, k):
    """Per group of ``sub``: Kahan's compensated sum of the non-NaN ``values[rows]``, and count.

    Row order; an infinity resets the compensation (pandas' Cython sum does the same).
    """
    totals, comps, counts = [0.0] * k, [0.0] * k, [0] * k
    for r, g in zip(rows, sub, strict=True):
        v = float(values[r])
        if math.isnan(v):
            continue
        counts[g] += 1
        y = v - comps[g]
        t = totals[g] + y
        comps[g] = (t - totals[g]) - y
        if math.isnan(comps[g]):
            comps[g] = 0.0
        totals[g] = t
    return np.array(totals), np.array(counts, dtype=np.int64)


def extreme_rows(values, rows, sub, k, want_max):
    """Per group of ``sub``: the first row of ``rows`` holding its min (max) non-NULL value."""
    best = []
    for g in range(k):
        held = [
            (int(values[r]), i) for i, r in enumerate(rows) if sub[i] == g and values[r] != NULL
        ]
        if not held:
            best.append(-1)
            continue
        v = max(x for x, _ in held) if want_max else min(x for x, _ in held)
        best.append(int(rows[min(i for x, i in held if x == v)]))
    return np.array(best, dtype=np.int64)


# --- frame-level references: the correlators as main had them (0c535fe), on naive kernels ------
# The fast correlators (one factorization, one shared sort, one gather) must give exactly these
# frames. Keys are pandas.factorize codes of the key columns; the kernels are the references above
# (nearest_pairs applied key by key, which is the same rule: rows of two keys never pair).


def nearest_pairs_by_key(key, time, side, tolerance):
    """:func:`nearest_pairs`, run separately on the rows of each key (same result, less work)."""
    partner = np.full(len(key), -1, np.int64)
    rows_of: dict[int, list[int]] = {}
    for i in range(len(key)):
        if key[i] >= 0:
            rows_of.setdefault(int(key[i]), []).append(i)
    for rows in rows_of.values():
        sub = nearest_pairs(key[rows], time[rows], side[rows], tolerance)
        for a, b in enumerate(sub):
            if b >= 0:
                partner[rows[a]] = rows[b]
    return partner


def _ref_key(records, columns, null_is_value=None):
    import pandas as pd

    key = np.zeros(len(records), np.int64)
    bad = np.zeros(len(records), bool)
    for j, c in enumerate(columns):
        keep_null = bool(null_is_value and null_is_value[j])
        codes, uniques = pd.factorize(records[c], use_na_sentinel=not keep_null)
        bad |= codes < 0
        key = key * (len(uniques) + 1) + codes
    return np.where(bad, -1, key)


def _ref_time(s):
    from cemkit.correlate._frames import time_ns

    return time_ns(s)


def _ref_bool(s):
    return s.fillna(False).to_numpy(dtype=bool)


def _ref_take(s, idx, index):
    """main's ``_frames.take(..., as_if_missing=True)``: NumPy ints → float64, bools → object."""
    import pandas as pd

    ok = idx >= 0
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        out = np.full(idx.size, np.nan)
        out[ok] = s.to_numpy()[idx[ok]]
        return pd.Series(out, index=index, name=s.name)
    if isinstance(dtype, np.dtype) and dtype.kind in "fcmM":
        values = s.to_numpy()
        out = np.empty(idx.size, dtype)
        out[ok] = values[idx[ok]]
        out[~ok] = np.array("NaT", dtype) if dtype.kind in "mM" else np.nan
        return pd.Series(out, index=index, name=s.name)
    if isinstance(dtype, np.dtype):
        out = np.full(idx.size, np.nan, dtype=object)
        out[ok] = np.asarray(s.to_numpy(), dtype=object)[idx[ok]]
        return pd.Series(out, index=index, name=s.name, dtype=object)
    return pd.Series(s.array.take(idx, allow_fill=True), index=index, name=s.name)


def _ref_absorb(records, partner, keeper, prefix, columns):
    import pandas as pd

    matched = partner >= 0
    kept = np.flatnonzero(~(matched & ~keeper))
    out = records.iloc[kept]
    idx = np.where(matched[kept] & keeper[kept], partner[kept], -1)
    added = {prefix + c: _ref_take(records[c], idx, out.index) for c in columns
             if c in records.columns}  # fmt: skip
    return pd.concat([out, pd.DataFrame(added, index=out.index)], axis=1)


def ref_stitch(records, gap="1s", by=("record_kind", "node", "leg")):
    """main's ``stitch`` on pandas records (reductions by pandas groupby over every group)."""
    import pandas as pd

    from cemkit.correlate import _frames

    by = list(by)
    gap_ns = _frames.delta_ns(gap, _frames.time_kind(records["start"]), "gap")
    has_ref = records["call_id"].notna().to_numpy(dtype=bool)
    kref = _ref_key(records, [*by, "call_id"], [True] * len(by) + [False])
    kpar = _ref_key(records, [*by, "a_number", "b_number"], [True] * len(by) + [False] * 2)
    top = int(kref.max()) + 1 if len(kref) else 0
    key = np.where(has_ref, kref, np.where(kpar >= 0, kpar + top, -1))
    seq = records["partial_seq"].to_numpy(dtype=np.int64, na_value=-1)
    label, rank, flags = stitch(key, seq, _ref_time(records["start"]),
                                _ref_time(records["end"]), ~has_ref, gap_ns)  # fmt: skip
    n = len(records)
    reps = np.flatnonzero(label == np.arange(n))
    out = records.iloc[reps].copy()
    group_of = np.full(n, -1, np.int64)
    group_of[reps] = np.arange(reps.size)
    group = group_of[label]
    sizes = np.bincount(group, minlength=reps.size)
    g = records.reset_index(drop=True).groupby(group, sort=True)
    multi = sizes > 1

    def put(c, values):
        col = out[c].array.copy()
        col[multi] = pd.Series(values.array).astype(records[c].dtype).array[multi]
        out[c] = col

    if multi.any():
        for c, how in [("start", "min"), ("answer", "min"), ("end", "max"),
                       ("duration_s", "sum"), ("billsec_s", "sum"), ("volume_up_bytes", "sum"),
                       ("volume_down_bytes", "sum"), ("mos", "mean"), ("loss_ratio", "mean"),
                       ("jitter_ms", "mean")]:  # fmt: skip
            if c in records.columns:
                r = getattr(g[c], how)()
                if how == "sum":
                    r = r.where(g[c].count() > 0)
                put(c, r.reindex(np.arange(reps.size)))
        last_rank = pd.Series(rank).groupby(group).transform("max").to_numpy()
        is_last = np.flatnonzero(rank == last_rank)
        last = np.empty(reps.size, np.int64)
        last[group[is_last]] = is_last
        for c in ("outcome", "cause_q850", "sip_status", "released_by", "closing_cause"):
            if c in records.columns:
                out[c] = records[c].iloc[last].set_axis(out.index)
        pseq = out["partial_seq"].copy()
        pseq[multi] = pd.NA
        out["partial_seq"] = pseq
    f = flags[reps]
    out["src_partials"] = pd.array(sizes, dtype="Int32")
    out["src_partials_out_of_order"] = pd.array((f & 1) != 0, dtype="boolean")
    out["src_partials_missing"] = pd.array((f & 2) != 0, dtype="boolean")
    out["src_partials_duplicate"] = pd.array((f & 4) != 0, dtype="boolean")
    return out


_PARTIES = ("service", "a_number", "b_number")


def ref_pair_legs(records, tolerance="5s"):
    """main's ``pair_legs`` on pandas records."""
    import pandas as pd

    from cemkit.correlate import _frames
    from cemkit.correlate.pair_legs import TERM_FIELDS

    tol = _frames.delta_ns(tolerance, _frames.time_kind(records["start"]), "tolerance")
    is_cdr = _ref_bool(records["record_kind"] == "cdr")
    side = np.full(len(records), 2, np.int8)
    side[is_cdr & _ref_bool(records["leg"] == "orig")] = 0
    side[is_cdr & _ref_bool(records["leg"] == "term")] = 1
    partner = nearest_pairs_by_key(_ref_key(records, _PARTIES), _ref_time(records["start"]),
                                   side, tol)  # fmt: skip
    keeper = _ref_bool(records["leg"] == "orig")
    out = _ref_absorb(records, partner, keeper, "src_term_", TERM_FIELDS)
    kept = ~((partner >= 0) & ~keeper)
    out["src_paired"] = pd.array(((partner >= 0) & keeper)[kept], dtype="boolean")
    return out


def ref_match(records, tolerance="5s"):
    """main's ``match`` on pandas records."""
    import pandas as pd

    from cemkit.correlate import _frames
    from cemkit.correlate.match import XDR_FIELDS

    tol = _frames.delta_ns(tolerance, _frames.time_kind(records["start"]), "tolerance")
    is_xdr = _ref_bool(records["record_kind"] == "xdr")
    is_cdr = _ref_bool(records["record_kind"] == "cdr")
    side = np.full(len(records), 2, np.int8)
    side[is_xdr] = 0
    side[is_cdr] = 1
    partner = nearest_pairs_by_key(_ref_key(records, _PARTIES), _ref_time(records["start"]),
                                   side, tol)  # fmt: skip
    out = _ref_absorb(records, partner, is_cdr, "src_xdr_", XDR_FIELDS)
    kept = ~((partner >= 0) & is_xdr)
    status = np.full(len(records), None, dtype=object)
    status[is_cdr] = "cdr_only"
    status[is_cdr & (partner >= 0)] = "matched"
    status[is_xdr] = "xdr_only"
    out["src_match"] = pd.array(status[kept], dtype="string[pyarrow]")
    return out


def _ref_sessions(records, window, close_on_answer):
    from cemkit.correlate import _frames

    win = _frames.delta_ns(window, _frames.time_kind(records["start"]), "window")
    return sessions(_ref_key(records, _PARTIES), _ref_time(records["start"]),
                    _ref_time(records["end"]), _ref_bool(records["outcome"] == "answered"),
                    win, close_on_answer)  # fmt: skip


def ref_sessionize_records(records, window="120s", close_on_answer=True):
    """main's ``sessionize(..., output="records")`` on pandas records."""
    import pandas as pd

    label, rank = _ref_sessions(records, window, close_on_answer)
    out = records.copy(deep=False)
    out["src_intent_id"] = records["record_id"].iloc[label].to_numpy()
    out["src_intent_id"] = out["src_intent_id"].astype(records["record_id"].dtype)
    out["src_attempt"] = pd.array(rank + 1, dtype="Int32")
    return out


def ref_with_signaling(calls):
    """main's ``cemkit.runs.library.with_signaling``."""
    filled = {}
    for name in ("pdd_ms", "sip_status", "mos", "loss_ratio", "jitter_ms"):
        src = f"src_xdr_{name}"
        if name in calls.columns and src in calls.columns:
            filled[name] = calls[name].fillna(calls[src].astype(calls[name].dtype))
    return calls.assign(**filled)


def ref_correlate(records, gap="1s", pair_tolerance="5s", match_tolerance="5s", window="120s"):
    """main's correlate stages on one partition: stitch, pair, match, signaling, intents."""
    calls = ref_match(ref_pair_legs(ref_stitch(records, gap), pair_tolerance), match_tolerance)
    return ref_sessionize_records(ref_with_signaling(calls), window)


# --- protect: tokens and the record-id prefilter as main computed them (issue 15) -----------


def token(value, purpose_key, keep_digits, length, min_hidden=4):
    """One value's token, one ``hmac.digest`` and one regex: ``<kept prefix>#<hex>``."""
    import hashlib
    import hmac
    import re

    if value is None:
        return None
    if value == "":
        return ""
    prefix = ""
    if keep_digits:
        m = re.fullmatch(rf"(\+?[0-9]{{{keep_digits}}})[0-9]{{{min_hidden},}}", value)
        prefix = m.group(1) if m else ""
    digest = hmac.digest(purpose_key, value.encode("utf-8"), hashlib.sha256).hex()
    return f"{prefix}#{digest[:length]}"


def record_id_may_hold_numbers(value):
    """KeepSourceName's prefilter as three regexes (RE2 through pyarrow, as on main)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = r"\d(?:[ .()/-]{0,2}\d){6}"
    arr = pa.array([value], pa.string())
    in_tag = pc.match_substring_regex(arr, digits + ".*:")[0].as_py()
    two_colons = pc.match_substring_regex(arr, ":.*:")[0].as_py()
    anywhere = pc.match_substring_regex(arr, digits)[0].as_py()
    position = r"^[^:]*:(0|[1-9][0-9]{0,8})$"  # ``source:position``: only the source counts
    if pc.match_substring_regex(arr, position)[0].as_py():
        return bool(in_tag)
    return bool(in_tag or (not two_colons and anywhere))


def number_codes(columns):
    """Per column, each value's code among the distinct packable numbers of all columns.

    A packable number is an optional ``+`` and 1-17 ASCII digits; codes are numbered in
    first-seen order over the columns in the order given; None is -1, any other value -3.
    Returns the codes (lists) and the distinct numbers (strings) in code order.
    """
    import re

    seen = {}
    out = []
    for values in columns:
        codes = []
        for v in values:
            if v is None:
                codes.append(-1)
            elif re.fullmatch(r"\+?[0-9]{1,17}", v):
                codes.append(seen.setdefault(v, len(seen)))
            else:
                codes.append(-3)
        out.append(codes)
    return out, list(seen)


def party_dictionary(columns):
    """The one dictionary of several columns' values and each column's codes into it.

    The distinct packable numbers first (:func:`number_codes`), then every other distinct
    value, each in first-seen order over the columns in the order given (as one Arrow
    ``dictionary_encode`` of the columns' other values numbers them); None is -1.
    """
    codes, numbers = number_codes(columns)
    others = {}
    for values, column_codes in zip(columns, codes, strict=True):
        for i, v in enumerate(values):
            if column_codes[i] == -3:
                column_codes[i] = len(numbers) + others.setdefault(v, len(others))
    return numbers + list(others), codes


# --- the token codec (cemkit.privacy.tokens): a regex per value, Python ints -----------------


def token_split(values):
    """``(bits, prefix codes, prefixes)`` of a list of tokens, or None if one is not a token.

    A token is an optional ``+``, at most 17 ASCII digits, ``#`` and 16 lowercase hex digits;
    None is code -1, ``""`` code -2; prefixes are numbered in first-seen order; bits are the hex
    as a signed 64-bit integer. A list of nothing but None gives None (nothing to encode).
    """
    import re

    if all(v is None for v in values):
        return None
    bits, codes, prefixes = [], [], []
    for v in values:
        if v is None or v == "":
            bits.append(0)
            codes.append(-1 if v is None else -2)
            continue
        m = re.fullmatch(r"(\+?[0-9]{0,17})#([0-9a-f]{16})", v)
        if m is None:
            return None
        if m.group(1) not in prefixes:
            prefixes.append(m.group(1))
        codes.append(prefixes.index(m.group(1)))
        b = int(m.group(2), 16)
        bits.append(b - 2**64 if b >= 2**63 else b)
    return bits, codes, prefixes


def token_join(bits, codes, prefixes):
    """The strings of :func:`token_split`'s output."""
    out = []
    for b, c in zip(bits, codes, strict=True):
        out.append(None if c == -1 else "" if c == -2 else f"{prefixes[c]}#{b % 2**64:016x}")
    return out


def same_classes(codes, values):
    """Whether ``codes[i] == codes[j]`` exactly when ``values[i] == values[j]`` (None: code -1)."""
    seen = {}
    for c, v in zip(codes, values, strict=True):
        if v is None:
            if c != -1:
                return False
            continue
        if c < 0 or seen.setdefault(v, c) != c:
            return False
    return len(set(seen.values())) == len(seen)


# --- KQI contributions: the pandas implementation the NumPy block replaced ---------------------
import pyarrow as pa  # noqa: E402

from cemkit import config as _ct_config  # noqa: E402


def _ct_col(df: pd.DataFrame, name: str, dtype: str = "object") -> pd.Series:
    if name in df.columns:
        return df[name]
    if dtype == "string":  # all-null column without a Python object per row
        nulls = pd.arrays.ArrowStringArray(pa.nulls(len(df), pa.string()))
        return pd.Series(nulls, index=df.index)
    return pd.Series(np.full(len(df), np.nan), index=df.index)


def _ct_mask(series: pd.Series) -> np.ndarray:
    return np.asarray(series.fillna(False).to_numpy(dtype=bool, na_value=False), dtype=bool)


def contributions_pandas(records: pd.DataFrame) -> pd.DataFrame:
    """Integer counters (:data:`COUNTERS`) of each record, int64, same index.

    Parameters
    ----------
    records : pandas.DataFrame
        Canonical records (missing optional columns count as null). If it has the boolean column
        :data:`FIRST_OF_INTENT_COLUMN`, repeat attempts are counted from it.
    """
    n = len(records)
    service = _ct_col(records, "service", "string")
    kind = _ct_col(records, "record_kind", "string")
    outcome = _ct_col(records, "outcome", "string")
    voice = _ct_mask(service == "voice")
    cdr = voice & _ct_mask(kind == "cdr")
    xdr = voice & _ct_mask(kind == "xdr")
    matched = _ct_col(records, "src_match", "string")
    xdr_only = xdr & _ct_mask(matched == "xdr_only")
    partial = pd.to_numeric(_ct_col(records, "partial_seq", "Int32"), errors="coerce")
    first_part = _ct_mask(partial.isna() | (partial <= 1))
    attempt = (cdr | xdr_only) & first_part
    answered_rec = (cdr | xdr_only) & _ct_mask(outcome == formulas.ANSWERED)
    answered = attempt & answered_rec
    billsec = pd.to_numeric(_ct_col(records, "billsec_s", "float64"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    billsec0 = np.nan_to_num(billsec, nan=0.0)
    cause = pd.to_numeric(_ct_col(records, "cause_q850", "Int16"), errors="coerce").astype("Int64")
    abnormal = _ct_mask(cause.notna() & ~cause.isin(sorted(_ct_config.NORMAL_RELEASE_CAUSES)))
    normal_or_unknown = ~abnormal

    # one C-ordered (counter, record) block: the frame below is a view of it, no copy
    block = np.zeros((len(formulas.COUNTERS), n), dtype=np.int64)
    out = {name: block[i] for i, name in enumerate(formulas.COUNTERS)}
    out["attempts"][:] = attempt
    out["xdr_only_attempts"][:] = attempt & xdr_only
    out["answered"][:] = answered
    out["user_determined"][:] = attempt & _ct_mask(outcome.isin(sorted(formulas.USER_DETERMINED)))
    out["short_calls"][:] = answered & (billsec0 < _ct_config.SHORT_CALL_S)
    out["drops"][:] = answered_rec & abnormal
    out["conversation_ms"][:] = np.where(answered_rec, np.rint(billsec0 * 1000.0), 0)

    pdd = pd.to_numeric(_ct_col(records, "pdd_ms", "float64"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    has_pdd = (attempt | xdr) & ~np.isnan(pdd)
    out["pdd_count"][:] = has_pdd
    out["pdd_us"][:] = np.where(has_pdd, np.rint(np.nan_to_num(pdd) * 1000.0), 0)

    status = pd.to_numeric(_ct_col(records, "sip_status", "Int16"), errors="coerce").astype("Int64")
    invite = (xdr | (cdr & first_part & _ct_mask(matched == "matched"))) & _ct_mask(status >= 200)
    st = status.fillna(0).to_numpy(dtype=np.int64)
    out["invites"][:] = invite
    ok = invite & (st >= 200) & (st < 300)
    out["invites_2xx"][:] = ok
    out["invites_3xx"][:] = invite & (st >= 300) & (st < 400)
    out["invites_effective"][:] = invite & np.isin(st, sorted(formulas.SEER_RESPONSES))
    out["invites_ineffective"][:] = invite & np.isin(st, sorted(formulas.ISA_RESPONSES))
    out["sessions_completed"][:] = ok & normal_or_unknown

    mos = record_mos_pandas(records)
    has_mos = voice & ~np.isnan(mos)
    out["mos_count"][:] = has_mos
    out["mos_micro"][:] = np.where(has_mos, np.rint(np.nan_to_num(mos) * 1e6), 0)

    if formulas.FIRST_OF_INTENT_COLUMN in records.columns:
        first = _ct_mask(records[formulas.FIRST_OF_INTENT_COLUMN])
        out["repeat_attempts"][:] = attempt & ~first

    data = _ct_mask(service == "data") & _ct_mask(kind == "cdr")
    session = data & first_part
    out["data_sessions"][:] = session
    closing = pd.to_numeric(_ct_col(records, "closing_cause", "Int16"), errors="coerce")
    out["data_abnormal"][:] = data & _ct_mask(
        closing.isin(sorted(formulas.ABNORMAL_CLOSING_CAUSES))
    )
    for name, counter in (("volume_up_bytes", "data_up_bytes"),
                          ("volume_down_bytes", "data_down_bytes")):  # fmt: skip
        vol = pd.to_numeric(_ct_col(records, name, "Int64"), errors="coerce").astype("Int64")
        out[counter][:] = np.where(data, vol.fillna(0).to_numpy(dtype=np.int64), 0)
    duration = pd.to_numeric(_ct_col(records, "duration_s", "float64"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    out["data_duration_ms"][:] = np.where(data, np.rint(np.nan_to_num(duration) * 1000.0), 0)
    rat = _ct_col(records, "rat", "string")
    known = np.zeros(n, dtype=bool)
    for name in formulas.DATA_RATS[:-1]:
        is_rat = _ct_mask(rat == name)
        known |= is_rat
        out[f"data_sessions_{name}"][:] = session & is_rat
    out["data_sessions_other"][:] = session & ~known
    leg = _ct_col(records, "leg", "string")
    sms = _ct_mask(service == "sms") & _ct_mask(kind == "cdr") & ~_ct_mask(leg == "term")
    out["sms_attempts"][:] = sms
    out["sms_failures"][:] = sms & ~_ct_mask(outcome == formulas.ANSWERED)
    # registrations (RFC 6076 section 4.1 RRD): their own outcomes and counters, never call
    # attempts (their kind is neither cdr nor xdr)
    registration = _ct_mask(kind == "registration")
    reg = registration & _ct_mask(outcome.isin(sorted(formulas.REGISTRATION_RESOLVED)))
    reg_ok = registration & _ct_mask(outcome.isin(sorted(formulas.REGISTRATION_SUCCESS)))
    delay = pd.to_numeric(_ct_col(records, "duration_s", "float64"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    has_rrd = reg_ok & ~np.isnan(delay)
    out["registrations"][:] = reg
    out["registrations_ok"][:] = reg_ok
    out["rrd_count"][:] = has_rrd
    out["rrd_us"][:] = np.where(has_rrd, np.rint(np.nan_to_num(delay) * 1e6), 0)
    out["registrations_challenged"][:] = registration & _ct_mask(
        outcome == formulas.REGISTERED_AFTER_CHALLENGE
    )
    out["registrations_unknown"][:] = registration & _ct_mask(
        outcome == formulas.REGISTRATION_UNKNOWN
    )
    return pd.DataFrame(block.T, columns=list(formulas.COUNTERS), index=records.index, copy=False)


def record_mos_pandas(records: pd.DataFrame) -> np.ndarray:
    """MOS of each record: measured, else the G.107 E-model estimate, else NaN.

    The estimate uses ``loss_ratio``/``jitter_ms`` (and ``delay_ms`` if the frame has it).
    """
    mos = pd.to_numeric(_ct_col(records, "mos", "float64"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    loss = pd.to_numeric(_ct_col(records, "loss_ratio", "float64"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    jitter = pd.to_numeric(_ct_col(records, "jitter_ms", "float64"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    if "delay_ms" in records.columns:
        delay = pd.to_numeric(records["delay_ms"], errors="coerce").to_numpy(
            dtype=float, na_value=np.nan
        )
        delay = np.where(np.isnan(delay), formulas.EMODEL_DEFAULT_DELAY_MS, delay)
    else:
        delay = np.full(len(records), formulas.EMODEL_DEFAULT_DELAY_MS)
    out = mos.copy()
    estimate = np.isnan(mos) & (~np.isnan(loss) | ~np.isnan(jitter))
    if estimate.any():
        out[estimate] = formulas.mos_from_r(
            formulas.emodel_r(loss[estimate], jitter[estimate], delay[estimate])
        )
    return out


# --- KQI indicators and experience score: the pandas implementation of before --------------
def score_components_pandas(ind: pd.DataFrame) -> pd.DataFrame:
    """Component scores in [0, 1] (NaN when there is no data), one column per component."""
    pdd = ind["pdd_mean_ms"].astype(float)
    return pd.DataFrame(
        {
            "effectiveness": ind["ner"].astype(float),
            "retainability": 1.0 - ind["drop_ratio"].astype(float),
            "quality": ((ind["mos"].astype(float) - 1.0) / 3.5).clip(0.0, 1.0),
            "responsiveness": (
                (formulas.SCORE_PDD_BAD_MS - pdd)
                / (formulas.SCORE_PDD_BAD_MS - formulas.SCORE_PDD_GOOD_MS)
            ).clip(0.0, 1.0),
            "completion": 1.0 - ind["short_call_ratio"].astype(float),
        },
        index=ind.index,
    )


def experience_score_pandas(ind: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Experience score 0-100 and the main reason it is below 100 (largest weighted loss)."""
    comp = score_components_pandas(ind)
    weights = pd.Series(formulas.SCORE_WEIGHTS)
    present = comp.notna()
    w = present.astype(float) * weights
    total_w = w.sum(axis=1)
    score = 100.0 * (comp.fillna(0.0) * weights).sum(axis=1) / total_w.where(total_w > 0)
    loss = (1.0 - comp).clip(lower=0.0).fillna(0.0) * weights
    worst = loss.idxmax(axis=1)
    reason = worst.map(formulas.SCORE_REASONS).where(loss.max(axis=1) > 0, "")
    reason = reason.where(score.notna(), "no voice data")
    return score.astype(float), reason.astype(pd.StringDtype("pyarrow"))


def indicator_arrays_per_name(
    sums: dict[str, np.ndarray], names: list[str]
) -> dict[str, np.ndarray]:
    """``formulas.indicator_arrays`` of before: a few NumPy calls per indicator, by name."""

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        num, den = num.astype(np.float64), den.astype(np.float64)
        out = np.full(len(num), np.nan)
        np.divide(num, den, out=out, where=den > 0)
        return out

    def counter(name: str) -> np.ndarray:
        if name in formulas.DERIVED:
            a, b = formulas.DERIVED[name]
            return sums[a] - sums[b]
        return sums[name]

    out: dict[str, np.ndarray] = {}
    for name in names:
        ind = formulas.INDICATORS[name]
        if name == "attempts":
            out[name] = sums["attempts"].astype(np.int64)
        elif ind.is_share:
            out[name] = ratio(counter(ind.numerator), counter(ind.denominator))
        elif name in formulas.MEANS:
            total, count, unit = formulas.MEANS[name]
            out[name] = ratio(sums[total], sums[count]) / unit
        elif name in formulas.SUMS:
            cols, unit = formulas.SUMS[name]
            added = sums[cols[0]]
            for c in cols[1:]:
                added = added + sums[c]
            out[name] = added.astype(np.float64) / unit
        else:
            raise ValueError(f"{name} is not a function of counters alone")
    return out


def score_arrays_per_component(ind: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``formulas.score_arrays`` of before: a few NumPy calls per component."""
    comp = formulas._component_arrays(ind)
    n = len(next(iter(comp.values())))
    total_w = np.zeros(n)
    weighted = np.zeros(n)
    loss = np.empty((len(formulas.SCORE_WEIGHTS), n))
    for i, (name, weight) in enumerate(formulas.SCORE_WEIGHTS.items()):
        c = comp[name]
        present = ~np.isnan(c)
        total_w = total_w + present * weight
        weighted = weighted + np.where(present, c, 0.0) * weight
        loss[i] = np.nan_to_num(np.maximum(1.0 - c, 0.0), nan=0.0) * weight
    with np.errstate(invalid="ignore", divide="ignore"):
        score = 100.0 * weighted / np.where(total_w > 0, total_w, np.nan)
    reason = np.where(loss.max(axis=0, initial=0.0) > 0, loss.argmax(axis=0), -1)
    return score, np.where(np.isnan(score), -2, reason)


def indicators_pandas(sums: pd.DataFrame) -> pd.DataFrame:
    """Indicators from summed counters (one row per object and bucket).

    ``sums`` has the :data:`COUNTERS` columns; PDD percentile columns (``pdd_p50_ms``,
    ``pdd_p95_ms``) are passed through when present (see :mod:`cemkit.kqi.rollup`).
    Returns the :data:`INDICATORS` columns (float64; ``attempts`` int64).
    """
    s = sums
    names = [n for n in formulas.INDICATORS if formulas._operands(n) is not None]
    if "registrations" not in s.columns:  # counters of records written before registrations
        names = [n for n in names if n not in ("registration_success_ratio", "rrd_mean_ms")]
    arrays = {c: formulas._counter_array(s[c]) for c in formulas.counters_needed(names) or []}
    values = indicator_arrays_per_name(arrays, names)
    out = pd.DataFrame(index=s.index)
    for name in formulas._COLUMN_ORDER:
        if name in values:
            out[name] = values[name]
        elif name in formulas.PDD_QUANTILES:
            out[name] = s[name].astype(float) if name in s.columns else np.nan
        elif name != "experience_score":
            out[name] = np.nan
    score, _ = experience_score_pandas(out)
    out["experience_score"] = score
    return out


# --- the real-time path: main's frame-level take, the reference of the array-level one --------


def ref_take(s, idx, index, as_if_missing=False):
    """main's ``_frames.take``: ``s`` at positions ``idx`` (-1: missing), merge_asof's dtypes."""
    missing_any = as_if_missing or (bool(idx.size) and int(idx.min()) < 0)
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iufcmM":
        values = s.to_numpy()
        if not len(s):
            values = np.zeros(1, dtype)
        out = np.empty(idx.size, np.float64 if dtype.kind in "iu" and missing_any else dtype)
        for i, j in enumerate(idx.tolist()):
            if j >= 0:
                out[i] = values[j]
            elif dtype.kind in "mM":
                out[i] = np.datetime64("NaT") if dtype.kind == "M" else np.timedelta64("NaT")
            else:
                out[i] = np.nan if out.dtype.kind == "f" else 0
        return pd.Series(out, index=index, name=s.name)
    arr = s.array
    if not missing_any:
        taken = arr.take(idx)
    elif isinstance(dtype, np.dtype):
        source = np.asarray(s.to_numpy(), dtype=object)
        taken = np.full(idx.size, np.nan, dtype=object)
        ok = idx >= 0
        taken[ok] = source[idx[ok]]
    else:
        taken = arr.take(idx, allow_fill=True)
    if isinstance(dtype, np.dtype) and missing_any:
        return pd.Series(taken, index=index, name=s.name, dtype=object)
    return pd.Series(taken, index=index, name=s.name)


# --- the shuffle's bucket hash (cemkit.correlate._hash): Python ints, byte by byte ---------


def bucket_hash(columns):
    """FNV-1a of each value's UTF-8 bytes, splitmix64-finished, mixed column by column.

    ``columns``: lists of equal length, values ``str`` or ``None`` (null).
    """
    mask = 2**64 - 1

    def mix(h):
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & mask
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & mask
        return h ^ (h >> 31)

    out = [0] * (len(columns[0]) if columns else 0)
    for column in columns:
        for i, value in enumerate(column):
            if value is None:
                h = 0x9E3779B97F4A7C15
            else:
                h = 0xCBF29CE484222325
                for byte in value.encode("utf-8"):
                    h = ((h ^ byte) * 0x100000001B3) & mask
                h = mix(h)
            out[i] = mix((out[i] * 0x100000001B3 + h) & mask)
    return out


# --- grouping rows by key (the correlators' one order) ------------------------------------------


def key_time_rows(key, time):
    """Rows with ``key >= 0`` and a non-null time in (key, time, row) order, written out."""
    null = np.iinfo(np.int64).min
    rows = [i for i in range(len(key)) if key[i] >= 0 and time[i] != null]
    return np.array(sorted(rows, key=lambda i: (int(key[i]), int(time[i]), i)), np.int64)


def equal_strings(values, value):
    """Per value, whether it is the string ``value`` (a null is not), written out."""
    return np.array([v is not None and v == value for v in values], dtype=bool)


def hll_sketches(items, bounds, lg_k):
    """HLL sketches of ``items[bounds[i]:bounds[i + 1]]``: one update call per item, in order."""
    import datasketches as ds

    out = []
    for i in range(len(bounds) - 1):
        sk = ds.hll_sketch(lg_k)
        for j in range(bounds[i], bounds[i + 1]):
            sk.update(items[j])
        out.append(sk)
    return out


# --- telephone numbers (cemkit.numbers) -----------------------------------------------------------
import pyarrow.compute as pc  # noqa: E402


def _ref_national_fast_path(cleaned: pa.Array, candidates: pa.Array,
                        region: str | None) -> tuple[pa.Array, pa.Array] | None:  # fmt: skip
    """E.164 of national-format numbers (``0`` + national number) without phonenumbers.

    Returns a mask of the values settled and their E.164 forms (None when the region has no
    plain national prefix). A value qualifies when it is digits only, starts with the region's
    national prefix but not its international (IDD) prefix, and the rest fully matches the
    region's national number pattern with a possible length: exactly the case where
    phonenumbers strips the prefix and prepends the country code.
    """
    from cemkit.numbers import _national_plan

    plan = _national_plan(region)
    if plan is None:
        return None
    prefix, idd, cc, pattern, lengths = plan
    ok = pc.and_(candidates, pc.starts_with(cleaned, prefix))
    if not pc.any(ok).as_py():
        return None
    if idd:
        ok = pc.and_(ok, pc.invert(pc.match_substring_regex(cleaned, f"^(?:{idd})")))
    rest = pc.utf8_slice_codeunits(cleaned, len(prefix))
    ok = pc.and_(ok, pc.is_in(pc.binary_length(rest), pa.array(sorted(lengths), pa.int32())))
    try:
        ok = pc.and_(ok, pc.match_substring_regex(rest, f"^(?:{pattern})$"))
    except pa.ArrowInvalid:  # a pattern RE2 cannot compile: leave it to phonenumbers
        return None
    return pc.fill_null(ok, False), pc.binary_join_element_wise("+" + cc, rest, "")


def normalize_distinct_arrow(
    arr: pa.Array, default_region: str | None
) -> tuple[pa.Array, pa.Array]:
    """(numbers, kinds) of each distinct value: cemkit.numbers' rules as a dozen Arrow passes.

    The implementation before the jitted one (session 6), kept as its reference.
    """
    from cemkit.numbers import MAX_EXTENSION_DIGITS, _parse_one

    # Only the values no vectorized fast path settles go to phonenumbers.
    uniq = pc.utf8_trim_whitespace(arr)
    n = len(uniq)
    false = pa.array(np.zeros(n, dtype=bool))
    empty = pc.equal(pc.binary_length(uniq), 0)
    digits_only = pc.match_substring_regex(uniq, r"^\+?[0-9]+$")
    # Separators people and switches write: spaces, dots, dashes, brackets; then the "00"
    # international prefix as "+".
    cleaned = uniq
    changed = False
    if n and not pc.all(pc.or_(digits_only, empty)).as_py():
        cleaned = pc.replace_substring_regex(cleaned, r"[\s.\-()/]", "")
        changed = True
    if n and pc.any(pc.starts_with(cleaned, "00")).as_py():
        cleaned = pc.replace_substring_regex(cleaned, r"^00([1-9])", r"+\1")
        changed = True
    if changed:
        digits_only = pc.match_substring_regex(cleaned, r"^\+?[0-9]+$")
    plus = pc.starts_with(cleaned, "+")
    ndigits = pc.subtract(pc.binary_length(cleaned), pc.cast(plus, pa.int32()))

    # Fast path 1: already E.164-shaped ('+', 8 to 15 digits, no leading 0).
    fast = pc.and_(pc.and_(digits_only, plus),
                   pc.and_(pc.greater_equal(ndigits, 8), pc.less_equal(ndigits, 15)))  # fmt: skip
    fast = pc.and_(fast, pc.invert(pc.starts_with(cleaned, "+0")))
    # Fast path 2: short internal numbers.
    ext = pc.and_(pc.and_(digits_only, pc.invert(plus)),
                  pc.and_(pc.less_equal(ndigits, MAX_EXTENSION_DIGITS),
                          pc.invert(empty)))  # fmt: skip
    # Fast path 3: national format ("0" + national number) in the default region.
    cand = pc.and_(pc.and_(digits_only, pc.invert(plus)), pc.invert(pc.or_(empty, ext)))
    nat = _ref_national_fast_path(cleaned, cand, default_region)
    national, national_e164 = nat if nat is not None else (false, cleaned)

    null = pa.scalar(None, pa.string())
    out = pc.if_else(empty, null, uniq)
    out = pc.if_else(fast, cleaned, out)
    out = pc.if_else(national, national_e164, out)
    kind = pc.if_else(empty, "empty", pc.if_else(ext, "extension", "unparsed"))
    kind = pc.if_else(pc.or_(fast, national), "e164", kind)

    # Slow path: one phonenumbers call per remaining distinct value.
    settled = pc.or_(pc.or_(empty, fast), pc.or_(ext, national))
    todo = np.flatnonzero(~settled.to_numpy(zero_copy_only=False))
    if len(todo):
        values_todo = pc.take(cleaned, pa.array(todo)).to_pylist()
        distinct = {v: _parse_one(str(v), default_region) for v in dict.fromkeys(values_todo)}
        parsed = [distinct[v] for v in values_todo]
        hit = np.array([p is not None for p in parsed], dtype=bool)
        if hit.any():
            mask = np.zeros(n, dtype=bool)
            mask[todo[hit]] = True
            got = pa.array([p for p in parsed if p is not None], pa.string())
            out = pc.replace_with_mask(out, pa.array(mask), got)
            e164 = pa.array(["e164"] * int(hit.sum()), pa.string())
            kind = pc.replace_with_mask(kind, pa.array(mask), e164)
    return out, kind


# --- the one order of the correlators keyed by parties (cemkit.correlate, session 8) ------------


def runs_agree(order, key, parts):
    """Whether every two rows of ``order`` with equal keys hold equal values in every part."""
    rows = [int(r) for r in order]
    for a in rows:
        for b in rows:
            if key[a] == key[b] and any(p[a] != p[b] for p in parts):
                return False
    return True


def repeated(key):
    """Per row, whether its key (``>= 0``) is also another row's, by counting."""
    counts: dict[int, int] = {}
    for k in key:
        counts[int(k)] = counts.get(int(k), 0) + 1
    return np.array([k >= 0 and counts[int(k)] > 1 for k in key], dtype=bool)


def calls_steps(key, start, end, kind, leg, answered, pair_tolerance, match_tolerance, window,
                close_on_answer):  # fmt: skip
    """Pair legs, match xDRs, label intents: each step on the rows the previous one kept.

    ``kind``: 0 CDR, 1 xDR; ``leg``: 0 originating, 1 terminating (anything else: neither).
    Returns (pair, match, label, rank) per input row, as row positions of the input.
    """
    n = len(key)
    cdr, xdr = kind == 0, kind == 1
    side = np.full(n, 2, np.int8)
    side[cdr & (leg == 0)] = 0
    side[cdr & (leg == 1)] = 1
    pair = nearest_pairs(key, start, side, pair_tolerance)
    rows1 = np.flatnonzero(~((pair >= 0) & (leg != 0)))
    side1 = np.full(rows1.size, 2, np.int8)
    side1[xdr[rows1]] = 0
    side1[cdr[rows1]] = 1
    sub = nearest_pairs(key[rows1], start[rows1], side1, match_tolerance)
    match = np.full(n, -1, np.int64)
    match[rows1] = np.where(sub >= 0, rows1[np.maximum(sub, 0)], -1)
    rows2 = rows1[~((sub >= 0) & xdr[rows1])]
    sub_label, sub_rank = sessions(key[rows2], start[rows2], end[rows2], answered[rows2],
                                   window, close_on_answer)  # fmt: skip
    label = np.arange(n, dtype=np.int64)
    rank = np.zeros(n, np.int64)
    label[rows2] = rows2[sub_label]
    rank[rows2] = sub_rank
    return pair, match, label, rank


def tuple_key_classes(columns):
    """Per row, the tuple of its values (``None`` where any value is null), for key checks."""
    n = len(columns[0]) if columns else 0
    out = []
    for i in range(n):
        values = [c[i] for c in columns]
        out.append(None if any(v is None or v is pd.NA for v in values) else tuple(values))
    return out


def calls_kept(kind, leg, pair, match, label, rank):
    """The rows pair_legs and match keep, and what each carries (main's NumPy expressions)."""
    is_cdr, is_xdr, orig = kind == 0, kind == 1, leg == 0
    keep = ~((pair >= 0) & ~orig) & ~((match >= 0) & is_xdr)
    rows = np.flatnonzero(keep)
    term = np.where(orig & (pair >= 0), pair, -1)[rows]
    xdr = np.where(is_cdr & (match >= 0), match, -1)[rows]
    status = np.full(len(kind), -1, np.int8)
    status[is_cdr] = 1
    status[is_cdr & (match >= 0)] = 0
    status[is_xdr] = 2
    return rows, term, xdr, status[rows], label[rows], (rank[rows] + 1).astype(np.int32)


def most_candidates(key, time, side, tolerance):
    """The most (side-0 row, side-1 row) pairs of one key within ``tolerance`` of each other."""
    counts: dict[int, int] = {}
    for i in range(len(key)):
        for j in range(len(key)):
            near = abs(int(time[i]) - int(time[j])) <= tolerance
            if side[i] == 0 and side[j] == 1 and key[i] == key[j] and near:
                counts[int(key[i])] = counts.get(int(key[i]), 0) + 1
    return max(counts.values(), default=0)


# --- alerts: a relative rule on a share, evaluated alone (cemkit.kqi.alerts of before) ----------
def relative_share_rule(bad: np.ndarray, den: np.ndarray, value: np.ndarray, trials: np.ndarray,
                        seg: np.ndarray, n_seg: int, rule: Threshold,
                        baseline_min: int) -> dict[str, np.ndarray]:  # fmt: skip
    """One relative rule on a share over the rows of several objects (``seg``), NumPy per rule."""

    def seg_sum(weights: np.ndarray) -> np.ndarray:
        return np.bincount(seg, weights=weights, minlength=n_seg)

    def z_score(p0: np.ndarray) -> np.ndarray:
        k, n = bad.astype(float), den.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            t1 = np.where(k > 0, k * np.log(k / (n * p0)), 0.0)
            t2 = np.where(n - k > 0, (n - k) * np.log((n - k) / (n * (1 - p0))), 0.0)
            z = np.sign(k / n - p0) * np.sqrt(np.maximum(2.0 * (t1 + t2), 0.0))
        return np.where(n > 0, z, np.nan)

    ind = formulas.INDICATORS[rule.indicator]
    judged = (trials >= rule.min_attempts) & ~np.isnan(value)
    eligible = (trials >= baseline_min) & ~np.isnan(value)
    row_ok = (np.bincount(seg[eligible], minlength=n_seg) > 0)[seg]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = bad / den
        p_all = seg_sum(np.where(eligible, bad, 0.0)) / seg_sum(np.where(eligible, den, 0.0))
        keep = eligible & ~(z_score(p_all[seg]) >= rule.min_z)
        kept = np.bincount(seg[keep], minlength=n_seg) > 0
        p_keep = seg_sum(np.where(keep, bad, 0.0)) / seg_sum(np.where(keep, den, 0.0))
    p0 = np.where((p_all <= 0.0) | (p_all >= 1.0) | ~kept, p_all, p_keep)
    den_seen = seg_sum(np.where(eligible, den, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p0_eff = np.minimum(np.maximum(p0, 1.0 / den_seen), 1 - 1e-9)
    z = z_score(p0_eff[seg])
    bad_limit = rule.relative * p0_eff
    breach = judged & (p > bad_limit[seg]) & (z >= rule.min_z)
    limit_value = 1.0 - bad_limit if ind.direction > 0 else bad_limit
    baseline = 1.0 - p0 if ind.direction > 0 else p0
    return {"breach": np.asarray(breach, dtype=bool) & row_ok,
            "limit": np.where(row_ok, limit_value[seg], np.nan),
            "baseline": np.where(row_ok, baseline[seg], np.nan)}  # fmt: skip
