"""Coverage-aware KQIs of device measurements, per node group or per device, per time bucket.

Agents report only while their device is in use, so a bucket is seen only in part: every row
says how much of it the agents saw (``seen_share``: distinct seconds with a sample over the
bucket's seconds) next to what they saw. Per group (``cell``, ``node``, ``area``, ``radio_gen``,
``device``, or any column) and bucket:

- ``samples``, ``devices`` (active devices), ``active_s`` (distinct device-seconds in state
  active), ``seen_share``;
- ``share_<gen>``: share of samples on each radio generation (5G, 4G, 3G, ...);
- ``dl_kbps_*`` / ``ul_kbps_*`` / ``latency_ms_*``: mean, p10, p50, p90 (of active samples for
  throughput, of measured samples for latency);
- ``coverage_bad``: share of RSRP samples below the threshold, with a Wilson score interval
  (``coverage_bad_lo``, ``coverage_bad_hi``);
- ``suppressed``: True when the bucket has fewer samples or devices than the minimum; its
  figures are then null, and ``why`` says which minimum it missed.

Thresholds and minimums are a :class:`CoverageSpec` (the model/config passes one).

Examples
--------
>>> import cemkit
>>> m = cemkit.load("agent-gnettrack/", format="gnettrack")  # doctest: +SKIP
>>> coverage_kqis(m.compute(), by="cell", every="1h")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from cemkit.schema_measurements import GENERATIONS


@dataclass(frozen=True)
class CoverageSpec:
    """Thresholds of the coverage KQIs."""

    rsrp_bad_dbm: float = -110.0  #: a sample below this RSRP is out of good coverage
    min_samples: int = 30  #: buckets with fewer samples are suppressed
    min_devices: int = 1  #: buckets with fewer devices are suppressed
    confidence: float = 0.95  #: of the Wilson interval


def wilson(k: np.ndarray, n: np.ndarray, confidence: float = 0.95
           ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Wilson score interval of k successes out of n (NaN where n = 0)."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half


def _quantiles(g: pd.core.groupby.SeriesGroupBy, name: str) -> pd.DataFrame:
    out = pd.DataFrame({f"{name}_mean": g.mean()})
    for q in (0.1, 0.5, 0.9):
        out[f"{name}_p{int(q * 100)}"] = g.quantile(q)
    return out


def coverage_kqis(
    measurements: pd.DataFrame,
    by: str | Sequence[str] = "cell",
    *,
    every: str = "1h",
    spec: CoverageSpec | None = None,
) -> pd.DataFrame:
    """Coverage-aware KQIs of measurement records per group and time bucket.

    Parameters
    ----------
    measurements : pandas.DataFrame
        Measurement records (:mod:`cemkit.schema_measurements`), protected or not.
    by : str or list of str
        Group column(s): ``cell``, ``node``, ``area``, ``radio_gen``, ``device``,
        ``latitude``/``longitude`` grid squares, a customer column, ...
    every : str
        Bucket size (pandas offset: ``15min``, ``1h``, ``1D``).
    spec : CoverageSpec, optional
        Thresholds and minimums (default :class:`CoverageSpec()`).

    Returns
    -------
    pandas.DataFrame
        One row per group and bucket, columns as in the module docstring, sorted by group and
        bucket.
    """
    spec = spec or CoverageSpec()
    keys = [by] if isinstance(by, str) else list(by)
    df = measurements
    bucket = df["time"].dt.floor(every)
    base = df[keys].copy()
    base["bucket"] = bucket
    gk = [*keys, "bucket"]
    second = df["time"].dt.floor("1s")
    active = (df["state"] == "active").fillna(False).to_numpy(dtype=bool)
    frame = base.assign(
        _second=second, _device=df["device"], _active=active,
        _gen=df["radio_gen"].fillna("other"),
        _dl=df["dl_kbps"].where(active), _ul=df["ul_kbps"].where(active),
        _lat=df["latency_ms"],
        _bad=(df["rsrp_dbm"] < spec.rsrp_bad_dbm).where(df["rsrp_dbm"].notna()),
    )  # fmt: skip
    g = frame.groupby(gk, sort=True, dropna=False, observed=True)
    out = pd.DataFrame({"samples": g.size(), "devices": g["_device"].nunique()})
    seen = g["_second"].nunique()
    act = frame[frame["_active"]].drop_duplicates([*gk, "_device", "_second"])
    out["active_s"] = act.groupby(gk, dropna=False, observed=True).size()
    out["active_s"] = out["active_s"].fillna(0).astype("int64")
    span = pd.Timedelta(every).total_seconds()
    out["seen_share"] = seen / span
    gens = pd.crosstab([frame[k] for k in gk], frame["_gen"], dropna=False)
    for gen in GENERATIONS:
        col = gens[gen] if gen in gens.columns else 0
        out[f"share_{gen}"] = (pd.Series(col, index=gens.index).reindex(out.index).fillna(0)
                               / out["samples"])  # fmt: skip
    out = out.join(_quantiles(g["_dl"], "dl_kbps")).join(_quantiles(g["_ul"], "ul_kbps"))
    out = out.join(_quantiles(g["_lat"], "latency_ms"))
    n_rsrp = g["_bad"].count()
    k_bad = g["_bad"].sum(min_count=0).astype(float)
    out["rsrp_samples"] = n_rsrp
    with np.errstate(invalid="ignore", divide="ignore"):
        out["coverage_bad"] = k_bad / n_rsrp.replace(0, np.nan)
    lo, hi = wilson(k_bad.to_numpy(), n_rsrp.to_numpy(dtype=float), spec.confidence)
    out["coverage_bad_lo"], out["coverage_bad_hi"] = lo, hi
    few_s = out["samples"] < spec.min_samples
    few_d = out["devices"] < spec.min_devices
    out["suppressed"] = few_s | few_d
    why_d = np.where(few_d, f"fewer than {spec.min_devices} devices", "")
    out["why"] = np.where(few_s, f"fewer than {spec.min_samples} samples", why_d)
    figures = [c for c in out.columns if c not in ("suppressed", "why", "seen_share")]
    out.loc[out["suppressed"], figures] = np.nan
    return out.reset_index()


def coverage_holes(kqis: pd.DataFrame, *, min_bad: float = 0.5) -> pd.DataFrame:
    """Buckets whose coverage is bad beyond doubt: the Wilson lower bound is at least ``min_bad``.

    Suppressed buckets are never holes (too little was seen to say).
    """
    ok = (~kqis["suppressed"]) & (kqis["coverage_bad_lo"] >= min_bad)
    return kqis[ok.fillna(False)].reset_index(drop=True)


def worst_devices(measurements: pd.DataFrame, group: str = "cell", *, every: str = "1D",
                  n: int = 10, spec: CoverageSpec | None = None) -> pd.DataFrame:  # fmt: skip
    """Per group, the devices with the largest share of bad-coverage samples (not suppressed)."""
    k = coverage_kqis(measurements, [group, "device"], every=every, spec=spec)
    k = k[~k["suppressed"]].sort_values([group, "coverage_bad"], ascending=[True, False])
    return k.groupby(group, observed=True).head(n).reset_index(drop=True)


__all__ = ["CoverageSpec", "coverage_holes", "coverage_kqis", "wilson", "worst_devices"]
