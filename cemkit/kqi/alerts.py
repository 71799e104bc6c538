"""Alerts: thresholds per group and per modeled customer, absolute and relative to a baseline.

Each object (node group or modeled customer) is checked bucket by bucket at the model's alerting
bucket (``alerting.bucket``, 15 minutes by default) against its thresholds (its own, else the
model's defaults; see :class:`cemkit.model.spec.Threshold`):

* **absolute**: the indicator is worse than a fixed value;
* **relative**: the indicator is worse than the object's own *baseline* — the median of the
  indicator over the object's buckets with at least ``alerting.baseline_min_attempts`` trials
  (a median, so that the incident being searched for does not move its own baseline). For shares
  (ASR, NER, drop ratio, ...) the baseline ``p0`` is the pooled *bad* share of those buckets,
  leaving out the buckets already significantly worse than it; the bad share ``p`` of a bucket
  must exceed ``relative x p0`` and be significant: its one-sided binomial likelihood-ratio
  z-score (see :func:`_z_score`) must reach ``min_z``. A bucket is judged only with at
  least ``min_attempts`` trials.

Consecutive breaching buckets of one object and indicator merge into one alert, whose severity
is the highest reached, ``value`` the worst value and ``threshold`` the limit that value broke.

Vectorized: rows are sorted once by object and bucket; each rule is evaluated over the rows of
every object that shares it at once (baselines are per-object segment reductions), and runs of
breaching buckets are found by comparing neighbours. No per-object pandas work.

Examples
--------
>>> import pandas as pd
>>> from cemkit.model.spec import ServiceModel
>>> m = ServiceModel.from_yaml_text('''
... name: d
... groups: [{name: sw1, match: {nodes: [sw1]}}]
... thresholds: [{indicator: asr, absolute: 0.5, severity: major, min_attempts: 10}]
... ''')
>>> t = pd.DataFrame({"object_kind": "group", "object": "sw1", "freq": "15min",
...     "bucket": pd.date_range("2026-01-01", periods=3, freq="15min", tz="UTC"),
...     "attempts": [100, 100, 100], "answered": [80, 30, 20]})
>>> t["bucket_end"] = t["bucket"] + pd.Timedelta("15min")
>>> t["asr"] = t["answered"] / t["attempts"]
>>> a = find_alerts(t, m)
>>> a[["group", "indicator", "severity", "value", "threshold"]].to_dict("records")
[{'group': 'sw1', 'indicator': 'asr', 'severity': 'major', 'value': 0.2, 'threshold': 0.5}]
>>> str(a["start"].iloc[0]), str(a["end"].iloc[0])
('2026-01-01 00:15:00+00:00', '2026-01-01 00:45:00+00:00')
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit.columnar import column_array
from cemkit.kqi import formulas
from cemkit.model.spec import SEVERITIES, ServiceModel, Threshold

#: Columns of an alerts table (the Parquet ``alerts.parquet``).
ALERT_COLUMNS: tuple[str, ...] = (
    "group", "object_kind", "indicator", "start", "end", "severity", "value", "threshold",
    "kind", "baseline", "buckets",
)  # fmt: skip

_RANK = {s: i for i, s in enumerate(SEVERITIES)}

#: Counter that says how many trials a non-share indicator rests on.
_TRIALS: dict[str, str] = {
    "attempts": "attempts",
    "acd_s": "answered",
    "pdd_mean_ms": "pdd_count",
    "pdd_p50_ms": "pdd_count",
    "pdd_p95_ms": "pdd_count",
    "mos": "mos_count",
    "experience_score": "attempts",
}


def empty_alerts() -> pd.DataFrame:
    """An empty alerts table with its dtypes."""
    return _empty_alerts().copy(deep=False)  # copy-on-write: the caller's edits stay its own


@functools.lru_cache(maxsize=1)
def _empty_alerts() -> pd.DataFrame:
    # built once: a frame of eleven typed columns costs ~1 ms, a fifth of a micro-batch's budget
    return pd.DataFrame(
        {
            "group": pd.Series([], dtype=pd.StringDtype("pyarrow")),
            "object_kind": pd.Series([], dtype=pd.StringDtype("pyarrow")),
            "indicator": pd.Series([], dtype=pd.StringDtype("pyarrow")),
            "start": pd.Series([], dtype="datetime64[ns, UTC]"),
            "end": pd.Series([], dtype="datetime64[ns, UTC]"),
            "severity": pd.Series([], dtype=pd.StringDtype("pyarrow")),
            "value": pd.Series([], dtype=float),
            "threshold": pd.Series([], dtype=float),
            "kind": pd.Series([], dtype=pd.StringDtype("pyarrow")),
            "baseline": pd.Series([], dtype=float),
            "buckets": pd.Series([], dtype=np.int64),
        }
    )


class _Arrays:
    """A frame's columns as arrays, each read when first asked for (:func:`column_array`)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.read: dict[str, Any] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.frame.columns

    def __getitem__(self, name: str) -> Any:
        got = self.read.get(name)
        if got is None:
            got = self.read[name] = column_array(self.frame, name)
        return got


def _worse(value: np.ndarray, limit: float | np.ndarray, direction: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.asarray(value < limit if direction > 0 else value > limit, dtype=bool)


def _seg_median(seg: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    """``numpy.median`` of each segment's values (NaN for an empty segment)."""
    order = np.lexsort((value, seg))
    v = value[order]
    count = np.bincount(seg, minlength=n)
    start = np.cumsum(count) - count
    out = np.full(n, np.nan)
    has = count > 0
    half = count // 2
    odd = has & (count % 2 == 1)
    even = has & ~odd
    out[odd] = v[(start + half)[odd]]
    out[even] = (v[(start + half - 1)[even]] + v[(start + half)[even]]) / 2.0
    return out


def _evaluate(value: np.ndarray, trials: np.ndarray, share: tuple[np.ndarray, np.ndarray] | None,
              seg: np.ndarray, n_seg: int, rule: Threshold,
              baseline_min: int) -> dict[str, np.ndarray]:  # fmt: skip
    """Per bucket: breached?, the limit, the baseline (NaN for absolute rules).

    Rows of several objects at once: ``seg`` numbers each row's object (``n_seg`` objects).
    """
    ind = formulas.INDICATORS[rule.indicator]
    judged = (trials >= rule.min_attempts) & ~np.isnan(value)
    n = len(value)
    if rule.absolute is not None:
        limit = np.full(n, float(rule.absolute))
        breach = judged & _worse(value, limit, ind.direction)
        return {"breach": breach, "limit": limit, "baseline": np.full(n, np.nan)}
    assert rule.relative is not None
    if ind.is_share:
        assert share is not None
        got = _relative_shares(value[None], trials[None], share[0][None], share[1][None], seg,
                               n_seg, [rule], baseline_min)  # fmt: skip
        return {k: v[0] for k, v in got.items()}
    eligible = (trials >= baseline_min) & ~np.isnan(value)
    row_ok = (np.bincount(seg[eligible], minlength=n_seg) > 0)[seg]
    baseline = _seg_median(seg[eligible], value[eligible], n_seg)
    limit_value = baseline * rule.relative if ind.direction < 0 else baseline / rule.relative
    breach = judged & _worse(value, limit_value[seg], ind.direction)
    return {"breach": np.asarray(breach, dtype=bool) & row_ok,
            "limit": np.where(row_ok, limit_value[seg], np.nan),
            "baseline": np.where(row_ok, baseline[seg], np.nan)}  # fmt: skip


def _relative_shares(value: np.ndarray, trials: np.ndarray, bad: np.ndarray, den: np.ndarray,
                     seg: np.ndarray, n_seg: int, rules: list[Threshold], baseline_min: int,
                     params: tuple[np.ndarray, ...] | None = None,
                     ) -> dict[str, np.ndarray]:  # fmt: skip
    """:func:`_evaluate` of relative rules on shares, several at once: one row per rule.

    ``value``, ``trials`` and the share's ``bad`` and ``den`` are (rule, bucket) arrays (each
    rule's indicator's, the same buckets); ``seg`` numbers each bucket's object. Every rule's
    arithmetic is the one rule's, element by element, and each segment's sums add its buckets
    in order as :func:`numpy.bincount` does (one bincount over every rule's segments): the very
    bits of evaluating the rules one by one, in a few NumPy calls for all of them.
    ``params``: :func:`_share_params` of ``rules``, when the caller holds them (a model's).
    """
    k = len(value)
    min_attempts, min_z, relative, higher = _share_params(rules) if params is None else params
    flat = np.arange(k)[:, None] * n_seg + seg  # (rule, segment) of each bucket
    known = ~np.isnan(value)
    judged = (trials >= min_attempts) & known
    eligible = (trials >= baseline_min) & known
    row_ok = (_seg_count(flat[eligible], k, n_seg) > 0)[:, seg]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = bad / den
    p0 = _robust_pooled_share(bad, den, eligible, min_z, seg, flat, n_seg)
    # a baseline of zero bad outcomes still allows one in all the trials seen
    den_seen = _seg_sums(flat, np.where(eligible, den, 0.0), k, n_seg)
    with np.errstate(invalid="ignore", divide="ignore"):
        p0_eff = np.minimum(np.maximum(p0, 1.0 / den_seen), 1 - 1e-9)
    z = _z_score(bad, den, p0_eff[:, seg])
    bad_limit = relative * p0_eff
    breach = judged & (p > bad_limit[:, seg]) & (z >= min_z)
    limit_value = np.where(higher, 1.0 - bad_limit, bad_limit)
    baseline = np.where(higher, 1.0 - p0, p0)
    return {"breach": np.asarray(breach, dtype=bool) & row_ok,
            "limit": np.where(row_ok, limit_value[:, seg], np.nan),
            "baseline": np.where(row_ok, baseline[:, seg], np.nan)}  # fmt: skip


def _share_params(rules: list[Threshold]) -> tuple[np.ndarray, ...]:
    """Each rule's min_attempts, min_z, relative and "higher is better" as (rule, 1) columns."""
    params = (np.array([[r.min_attempts] for r in rules], dtype=np.int64),
              np.array([[r.min_z] for r in rules], dtype=np.float64),
              np.array([[r.relative] for r in rules], dtype=np.float64),
              np.array([[formulas.INDICATORS[r.indicator].direction > 0]
                        for r in rules]))  # fmt: skip
    for a in params:
        a.flags.writeable = False  # a model's: shared by every batch
    return params


_Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _share_rows(cache: dict[str, Any], rules: list[Threshold], idx: np.ndarray) -> _Rows:
    """The value, trials, bad and trial counts of each rule's share at rows ``idx``: (rule, row)."""
    columns = []
    for rule in rules:
        value, trials, share = cache[rule.indicator]
        assert share is not None
        columns.append((value, trials, *share))
    return tuple(np.stack([c[i][idx] for c in columns]) for i in range(4))  # type: ignore[return-value]


def _seg_count(flat: np.ndarray, k: int, n_seg: int) -> np.ndarray:
    """Buckets per (rule, segment), of the flat (rule, segment) numbers given."""
    return np.bincount(flat, minlength=k * n_seg).reshape(k, n_seg)


def _seg_sums(flat: np.ndarray, weights: np.ndarray, k: int, n_seg: int) -> np.ndarray:
    """Per (rule, segment): the sum of its buckets' weights, in bucket order (one bincount)."""
    return np.bincount(flat.ravel(), weights=weights.ravel(), minlength=k * n_seg).reshape(k, n_seg)


def _z_score(bad: np.ndarray, den: np.ndarray, p0: float | np.ndarray) -> np.ndarray:
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


def _robust_pooled_share(bad: np.ndarray, den: np.ndarray, eligible: np.ndarray,
                         min_z: np.ndarray, seg: np.ndarray, flat: np.ndarray,
                         n_seg: int) -> np.ndarray:  # fmt: skip
    """Per rule and object: pooled bad share of its eligible buckets, leaving out worse ones.

    (rule, bucket) arrays; ``seg`` each bucket's object, ``flat`` its (rule, segment) number;
    ``min_z``: (rule, 1).
    One pass of outlier rejection: buckets whose z against the pooled share of all eligible
    buckets reaches ``min_z`` are left out of the baseline.

    A pooled share is unbiased for rare events (a per-bucket median of a 2 % share is 0 when
    most buckets see no bad outcome); leaving out the outliers keeps an incident from raising
    its own baseline.
    """
    k = len(bad)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_all = _seg_sums(flat, np.where(eligible, bad, 0.0), k, n_seg) / _seg_sums(
            flat, np.where(eligible, den, 0.0), k, n_seg
        )
        keep = eligible & ~(_z_score(bad, den, p_all[:, seg]) >= min_z)
        kept = _seg_count(flat[keep], k, n_seg) > 0
        p_keep = _seg_sums(flat, np.where(keep, bad, 0.0), k, n_seg) / _seg_sums(
            flat, np.where(keep, den, 0.0), k, n_seg
        )
    extreme = (p_all <= 0.0) | (p_all >= 1.0)
    return np.where(extreme | ~kept, p_all, p_keep)


def find_alerts(
    table: pd.DataFrame, model: ServiceModel, *, freq: str | None = None, keys: Any = None
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
    keys : cemkit.kqi.rollup.TableKeys, optional
        The table's key columns as codes (:attr:`cemkit.kqi.rollup.KqiResult.keys` of the
        rollup that made it): rows and objects are then found by codes, no string compared.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ALERT_COLUMNS` (``group`` names the group or modeled customer), sorted by
        start, group and indicator.
    """
    freq = freq or model.alerting.bucket
    objects = _objects(model)
    if not len(table) or not any(rules for _, _, rules in objects):
        return empty_alerts()
    # the table's columns as arrays, only those read, each once (a Series per read costs more
    # than the work on a micro-batch's few hundred KQI rows)
    arrays = _Arrays(table)
    if keys is not None:
        at, obj = _keyed_objects(keys, model, freq)
        if not len(at):
            return empty_alerts()
    else:
        # the rows of the bucket size, as NumPy arrays taken once (no filtered copy of the table)
        if "freq" in arrays:
            at = np.flatnonzero(_equals(arrays["freq"], freq))
        else:
            at = np.arange(len(table))
        if not len(at):
            return empty_alerts()
        # each row's object (position in `objects`), one sort by object and bucket
        obj = np.full(len(at), -1, dtype=np.int64)
        kinds = arrays["object_kind"]
        names = arrays["object"]
        for kind in ("group", "customer"):
            known, value_set = _object_lookup(model, kind)
            if not len(known):
                continue
            is_kind = _equals(kinds, kind)[at]
            if not is_kind.any():
                continue
            found_at = _index_in(names, at[is_kind], value_set)
            obj[is_kind] = np.where(found_at >= 0, known[np.maximum(found_at, 0)], -1)
    bucket = _ns(arrays["bucket"])[at]
    sel = np.flatnonzero(obj >= 0)
    order = sel[np.lexsort((bucket[sel], obj[sel]))]
    if not len(order):
        return empty_alerts()
    groups, wanted = _rule_groups(model)
    rows = at[order]
    obj = obj[order]
    starts = bucket[order]
    ends = _ns(arrays["bucket_end"])[rows]

    def column(name: str, dtype: Any) -> np.ndarray:
        arr = arrays[name]
        if isinstance(arr, np.ndarray):
            return np.asarray(arr[rows], dtype=dtype)
        if dtype is float:
            return np.asarray(arr.to_numpy(dtype=float, na_value=np.nan)[rows])
        return np.asarray(arr.to_numpy(dtype=dtype)[rows])

    cache: dict[str, tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]] = {}
    for name in wanted:
        ind = formulas.INDICATORS[name]
        value = column(name, float)
        share = None
        if ind.is_share:  # the trials of a share are its denominator
            counters = {c: column(c, np.int64) for c in formulas.counters_needed([name]) or []}
            bad, den = formulas.bad_share(counters, name)
            share = (bad.astype(float), den.astype(float))
            trials = den
        else:
            trials = column(_TRIALS[name], np.int64)
        cache[name] = (value, trials, share)
    # objects sharing one list of rules are judged together
    found: list[dict[str, Any]] = []
    for members, by_indicator, shared, params in groups:
        if members is None:  # every object with rules shares these: every row
            idx = np.arange(len(obj))
        else:
            idx = np.flatnonzero(np.isin(obj, members))
            if not len(idx):
                continue
        # the rows are sorted by object: each object's rows are one segment
        o = obj[idx]
        starts_seg = np.empty(len(o), dtype=bool)
        starts_seg[:1] = True
        np.not_equal(o[1:], o[:-1], out=starts_seg[1:])
        seg = np.cumsum(starts_seg, dtype=np.int64) - 1
        n_seg = int(seg[-1]) + 1
        baseline_min = model.alerting.baseline_min_attempts
        # the relative rules on shares of these objects, all judged at once
        judged: dict[int, dict[str, np.ndarray]] = {}
        if shared:
            got_all = _relative_shares(*_share_rows(cache, shared, idx), seg, n_seg, shared,
                                       baseline_min, params)  # fmt: skip
            judged = {id(r): {k: v[i] for k, v in got_all.items()} for i, r in enumerate(shared)}
        for rank, (indicator, mine) in enumerate(by_indicator):
            got = _alerts_for(cache[indicator], idx, seg, n_seg, obj, starts, ends, indicator,
                              mine, rank, baseline_min, judged)  # fmt: skip
            if got is not None:
                found.append(got)
    if not found:
        return empty_alerts()
    cols = {k: np.concatenate([f[k] for f in found]) for k in found[0]}
    # the order of the per-object loop it replaces: object, indicator, time
    pre = np.lexsort((cols["start"], cols["rank"], cols["obj"]))
    cols = {k: v[pre] for k, v in cols.items()}
    label = np.array([o for _, o, _ in objects], dtype=object)
    kind_of = np.array([k for k, _, _ in objects], dtype=object)
    out = pd.DataFrame(
        {
            "group": label[cols["obj"]],
            "object_kind": kind_of[cols["obj"]],
            "indicator": cols["indicator"],
            "start": pd.to_datetime(cols["start"], utc=True),
            "end": pd.to_datetime(cols["end"], utc=True),
            "severity": np.array(SEVERITIES, dtype=object)[cols["severity"]],
            "value": cols["value"],
            "threshold": cols["threshold"],
            "kind": cols["kind"],
            "baseline": cols["baseline"],
            "buckets": cols["buckets"],
        }
    )
    out = out.astype(_empty_alerts().dtypes.to_dict())
    return out.sort_values(["start", "group", "indicator"], kind="mergesort").reset_index(drop=True)


#: Per model (by identity, the model held): its objects and, per kind, the lookup of names.
_PLANS: dict[int, tuple[ServiceModel, list[Any], dict[str, tuple[np.ndarray, pa.Array]]]] = {}


def _plan(model: ServiceModel) -> tuple[list[Any], dict[str, tuple[np.ndarray, pa.Array]]]:
    """:func:`_objects` of a model and its name lookups, computed once per model object.

    The warm real-time path judges every batch against one model: its thresholds per object
    are worked out once, not per batch (a reloaded model is another object).
    """
    got = _PLANS.get(id(model))
    if got is not None and got[0] is model:
        return got[1], got[2]
    objects = [("group", g.name, model.thresholds_for_group(g.name)) for g in model.groups] + [
        ("customer", c.name, model.thresholds_for_customer(c.name)) for c in model.customers
    ]
    lookups = {}
    for kind in ("group", "customer"):
        here = [(i, o) for i, (k, o, rules) in enumerate(objects) if k == kind and rules]
        lookups[kind] = (np.array([i for i, _ in here], dtype=np.int64),
                         pa.array([o for _, o in here], pa.string()))  # fmt: skip
    if len(_PLANS) > 16:
        _PLANS.clear()
    _PLANS[id(model)] = (model, objects, lookups)
    return objects, lookups


#: Per model (by identity): its objects grouped by their list of rules, see :func:`_rule_groups`.
_GROUPS: dict[int, tuple[ServiceModel, list[Any], set[str]]] = {}


def _rule_groups(model: ServiceModel) -> tuple[list[Any], set[str]]:
    """Objects sharing one list of rules, each with its rules per indicator; computed once.

    Each group: the positions in :func:`_objects` of its members (None when every object with
    rules is one: no selection of rows needed), ``[(indicator, rules), ...]`` in the order
    of the rules' first mention, its relative rules on shares (judged at once,
    :func:`_relative_shares`) and their :func:`_share_params`; and the set of indicators any
    rule judges.
    """
    got = _GROUPS.get(id(model))
    if got is not None and got[0] is model:
        return got[1], got[2]
    objects = _objects(model)
    by_rules: dict[tuple[int, ...], list[int]] = {}
    for i, (_, _, rules) in enumerate(objects):
        if rules:
            by_rules.setdefault(tuple(id(r) for r in rules), []).append(i)
    groups = []
    for members in by_rules.values():
        rules = objects[members[0]][2]
        by_indicator = [(indicator, [r for r in rules if r.indicator == indicator])
                        for indicator in dict.fromkeys(r.indicator for r in rules)]  # fmt: skip
        shared = [r for _, mine in by_indicator for r in mine
                  if r.relative is not None and r.absolute is None
                  and formulas.INDICATORS[r.indicator].is_share]  # fmt: skip
        groups.append((None if len(by_rules) == 1 else np.array(members, dtype=np.int64),
                       by_indicator, shared,
                       _share_params(shared) if shared else None))  # fmt: skip
    wanted = {r.indicator for _, _, rules in objects for r in rules}
    if len(_GROUPS) > 16:
        _GROUPS.clear()
    _GROUPS[id(model)] = (model, groups, wanted)
    return groups, wanted


def _objects(model: ServiceModel) -> list[tuple[str, str, list[Threshold]]]:
    """Every group and modeled customer with its thresholds."""
    return _plan(model)[0]


def _object_lookup(model: ServiceModel, kind: str) -> tuple[np.ndarray, pa.Array]:
    """Positions in :func:`_objects` of the objects of ``kind`` with rules, and their names."""
    return _plan(model)[1][kind]


def _keyed_objects(keys: Any, model: ServiceModel, freq: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows of bucket size ``freq`` and each one's object (position in :func:`_objects`).

    What the string comparisons of :func:`find_alerts` find, from the table's key codes
    (:class:`cemkit.kqi.rollup.TableKeys`): each label is looked up once among the objects
    with rules (:func:`_label_positions`, kept per list of labels), its rows by their codes.
    """
    if freq not in keys.freqs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    at = np.flatnonzero(keys.freq == keys.freqs.index(freq))
    obj = np.full(len(at), -1, dtype=np.int64)
    code, kind_at = keys.obj[at], keys.kind[at]
    for kind in ("group", "customer"):
        known, value_set = _object_lookup(model, kind)
        if not len(known) or kind not in keys.kinds:
            continue
        is_kind = kind_at == keys.kinds.index(kind)
        if not is_kind.any():
            continue
        found_at = _label_positions(keys.labels, value_set)[code[is_kind]]
        obj[is_kind] = np.where(found_at >= 0, known[np.maximum(found_at, 0)], -1)
    return at, obj


#: Per list of labels and set of names (by identity, the set held): each label's position.
_POSITIONS: dict[tuple[tuple[str, ...], int], tuple[pa.Array, np.ndarray]] = {}


def _label_positions(labels: tuple[str, ...], value_set: pa.Array) -> np.ndarray:
    """Position of each label in ``value_set`` (-1: not there), computed once per pair.

    A warm model writes the same labels (its groups' and customers' names) every batch.
    """
    ident = (labels, id(value_set))
    got = _POSITIONS.get(ident)
    if got is not None and got[0] is value_set:
        return got[1]
    found = pc.index_in(pa.array(labels, pa.string()), value_set=value_set)
    positions = np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    positions.flags.writeable = False
    if len(_POSITIONS) > 16:
        _POSITIONS.clear()
    _POSITIONS[ident] = (value_set, positions)
    return positions


def _index_in(names: Any, rows: np.ndarray, value_set: pa.Array) -> np.ndarray:
    """Position of each ``names[rows]`` in ``value_set`` (-1: not there), as ``get_indexer``."""
    if not isinstance(names, pd.arrays.ArrowStringArray):
        return np.asarray(pd.Index(value_set.to_pylist()).get_indexer(names.take(rows)))
    values = pa.array(names).take(pa.array(rows))
    found = pc.index_in(values, value_set=value_set.cast(values.type))
    if isinstance(found, pa.ChunkedArray):
        found = found.combine_chunks()
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _equals(column: Any, value: str) -> np.ndarray:
    """``column == value`` as a NumPy mask (null: False), without a pandas Series."""
    arr = column.array if isinstance(column, pd.Series) else column
    if isinstance(arr, pd.arrays.ArrowStringArray) or isinstance(arr.dtype, pd.ArrowDtype):
        got = pc.fill_null(pc.equal(pa.array(arr), pa.scalar(value, pa.string())), False)
        if isinstance(got, pa.ChunkedArray):
            got = got.combine_chunks()
        return np.asarray(got.to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(pd.Series(arr == value).fillna(False).to_numpy(dtype=bool), dtype=bool)


def _ns(column: Any) -> np.ndarray:
    if isinstance(column, pd.arrays.DatetimeArray) and column.unit == "ns":
        return np.asarray(column.asi8, dtype=np.int64)
    return np.asarray(column.to_numpy(dtype="datetime64[ns]")).view(np.int64)


def _alerts_for(
    columns: tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None],
    idx: np.ndarray, seg: np.ndarray, n_seg: int, obj: np.ndarray, starts: np.ndarray,
    ends: np.ndarray, indicator: str, rules: list[Threshold], rank: int, baseline_min: int,
    judged: dict[int, dict[str, np.ndarray]] | None = None,
) -> dict[str, np.ndarray] | None:  # fmt: skip
    """Alerts of one indicator for the rows ``idx`` (several objects, sorted by object, time).

    ``judged``: rules already evaluated on these rows (:func:`_relative_shares`), by ``id``.
    None when no bucket breaches (most micro-batches: no runs to find).
    """
    ind = formulas.INDICATORS[indicator]
    value_all, trials_all, share_all = columns
    value, trials = value_all[idx], trials_all[idx]
    share = None if share_all is None else (share_all[0][idx], share_all[1][idx])
    n = len(idx)
    evaluated = []
    for rule in sorted(rules, key=lambda r: _RANK[r.severity]):
        ev = (judged or {}).get(id(rule))
        if ev is None:
            ev = _evaluate(value, trials, share, seg, n_seg, rule, baseline_min)
        evaluated.append((rule, ev))
    if not any(ev["breach"].any() for _, ev in evaluated):
        return None  # nothing breached: no levels to merge
    level = np.full(n, -1)
    limit = np.full(n, np.nan)
    is_absolute = np.zeros(n, dtype=bool)
    base = np.full(n, np.nan)
    for rule, ev in evaluated:
        hit = ev["breach"] & (_RANK[rule.severity] >= level)
        level[hit] = _RANK[rule.severity]
        limit[hit] = ev["limit"][hit]
        is_absolute[hit] = rule.absolute is not None
        base[hit] = ev["baseline"][hit]
    on = level >= 0
    if not on.any():
        return None
    o, s, e = obj[idx], starts[idx], ends[idx]
    # a breaching bucket continues the alert of the one before it: same object, adjacent
    cont = np.zeros(n, dtype=bool)
    cont[1:] = on[1:] & on[:-1] & (o[1:] == o[:-1]) & (s[1:] == e[:-1])
    first = np.flatnonzero(on & ~cont)
    run = np.cumsum(on & ~cont) - 1
    rows = np.flatnonzero(on)
    run_of = run[rows]
    n_runs = len(first)
    length = np.bincount(run_of, minlength=n_runs)
    end_row = first + length - 1  # a run's rows are contiguous
    top = np.full(n_runs, -1)
    np.maximum.at(top, run_of, level[rows])
    key = value[rows] if ind.direction > 0 else -value[rows]
    pick = np.lexsort((rows, key, run_of))
    worst = rows[pick[np.r_[0, np.flatnonzero(np.diff(run_of[pick])) + 1]]] if len(rows) else rows
    at_top = rows[level[rows] == top[run_of]]
    first_top = np.full(n_runs, n)
    np.minimum.at(first_top, run[at_top], at_top)
    ref = np.where(level[worst] == top, worst, first_top) if n_runs else worst
    return {
        "obj": o[first],
        "rank": np.full(n_runs, rank),
        "indicator": np.full(n_runs, indicator, dtype=object),
        "start": s[first],
        "end": e[end_row],
        "severity": top,
        "value": value[worst].astype(float),
        "threshold": limit[ref],
        "kind": np.where(is_absolute[ref], "absolute", "relative").astype(object),
        "baseline": base[ref],
        "buckets": length.astype(np.int64),
    }
