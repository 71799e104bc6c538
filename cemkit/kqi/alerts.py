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

import math

import numpy as np
import pandas as pd

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


def _trials(rows: pd.DataFrame, ind: formulas.Indicator) -> pd.Series:
    if ind.is_share:
        return formulas.bad_share(rows, ind.name)[1]
    return rows[_TRIALS[ind.name]].astype("int64")


def _worse(value: np.ndarray, limit: float | np.ndarray, direction: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.asarray(value < limit if direction > 0 else value > limit, dtype=bool)


def _evaluate(rows: pd.DataFrame, rule: Threshold, baseline_min: int) -> dict[str, np.ndarray]:
    """Per bucket: breached?, the limit, the baseline (NaN for absolute rules)."""
    ind = formulas.INDICATORS[rule.indicator]
    value = rows[rule.indicator].to_numpy(dtype=float, na_value=np.nan)
    trials = _trials(rows, ind).to_numpy(dtype=np.int64)
    judged = (trials >= rule.min_attempts) & ~np.isnan(value)
    n = len(rows)
    if rule.absolute is not None:
        limit = np.full(n, float(rule.absolute))
        breach = judged & _worse(value, limit, ind.direction)
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
        p0 = _robust_pooled_share(bad_np, den_np, eligible, rule.min_z)
        # a baseline of zero bad outcomes still allows one in all the trials seen
        p0_eff = min(max(p0, 1.0 / float(den_np[eligible].sum())), 1 - 1e-9)
        z = _z_score(bad_np, den_np, p0_eff)
        bad_limit = rule.relative * p0_eff
        breach = judged & (p > bad_limit) & (z >= rule.min_z)
        limit_value = 1.0 - bad_limit if ind.direction > 0 else bad_limit
        baseline = 1.0 - p0 if ind.direction > 0 else p0
    else:
        baseline = float(np.median(value[eligible]))
        limit_value = baseline * rule.relative if ind.direction < 0 else baseline / rule.relative
        breach = judged & _worse(value, limit_value, ind.direction)
    return {"breach": np.asarray(breach, dtype=bool), "limit": np.full(n, limit_value),
            "baseline": np.full(n, baseline)}  # fmt: skip


def _z_score(bad: np.ndarray, den: np.ndarray, p0: float) -> np.ndarray:
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


def _robust_pooled_share(
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
    keep = eligible & ~(_z_score(bad, den, p_all) >= min_z)
    if not keep.any():
        return p_all
    return float(bad[keep].sum() / den[keep].sum())


def find_alerts(
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
            found.extend(_alerts_for(mine, kind, name, indicator,
                                     [r for r in rules if r.indicator == indicator],
                                     model.alerting.baseline_min_attempts))  # fmt: skip
    if not found:
        return empty_alerts()
    out = pd.DataFrame(found)
    out = out.astype(empty_alerts().dtypes.to_dict())
    return out.sort_values(["start", "group", "indicator"], kind="mergesort").reset_index(drop=True)


def _alerts_for(
    rows: pd.DataFrame, kind: str, name: str, indicator: str, rules: list[Threshold],
    baseline_min: int,
) -> list[dict[str, object]]:  # fmt: skip
    ind = formulas.INDICATORS[indicator]
    n = len(rows)
    level = np.full(n, -1)
    limit = np.full(n, np.nan)
    rule_kind = np.full(n, "", dtype=object)
    base = np.full(n, np.nan)
    for rule in sorted(rules, key=lambda r: _RANK[r.severity]):
        ev = _evaluate(rows, rule, baseline_min)
        hit = ev["breach"] & (_RANK[rule.severity] >= level)
        level[hit] = _RANK[rule.severity]
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
