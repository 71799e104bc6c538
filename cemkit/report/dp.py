"""Report helpers for differentially private releases (:func:`cemkit.release`).

A release holds noisy counters per node group and bucket with the standard deviation of their
noise; these helpers sum them over the period (post-processing: no further privacy cost), derive
the ratios from the noisy sums, and give every figure its 95 % interval from the noise scale.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

#: z of a two-sided 95 % interval.
Z95 = 1.96


def dp_groups(release: Any) -> pd.DataFrame:
    """Noisy counters per (level, node group) summed over the period, ratios and intervals.

    Columns: ``level``, ``object``, each released counter, ``<counter>_sd`` (noise sd of the sum:
    independent noise per bucket, so sd·√buckets), ``attempts_ci95``, and ``asr`` with
    ``asr_lo``/``asr_hi`` (delta method on the noisy answered / attempts) when released.
    """
    table = release.table
    counters = [c[: -len("_sd")] for c in table.columns if c.endswith("_sd")]
    n = table.groupby(["level", "object"])["bucket"].nunique()
    sums = table.groupby(["level", "object"])[counters].sum()
    sd = table.groupby(["level", "object"])[[f"{c}_sd" for c in counters]].first()
    sd = sd.mul(n.pow(0.5), axis=0)
    out = pd.concat([sums, sd], axis=1).reset_index()
    if "attempts" in counters:
        out["attempts_ci95"] = Z95 * out["attempts_sd"]
        att = out["attempts"].astype(float).where(out["attempts"] > 0)
        if "answered" in counters:
            asr = (out["answered"] / att).clip(0, 1)
            var = (out["answered_sd"] ** 2 + (asr**2) * out["attempts_sd"] ** 2) / att**2
            half = Z95 * var.pow(0.5)
            out["asr"] = asr
            out["asr_lo"] = (asr - half).clip(0, 1)
            out["asr_hi"] = (asr + half).clip(0, 1)
    return out


def dp_note(release: Any) -> str:
    """What the release spent and what it guarantees, for the report's first screen."""
    spent = ", ".join(f"{period}: {value:g}" for period, value in release.spent.items())
    measure = {"epsilon": "ε", "rho": "ρ"}.get(release.measure, release.measure)
    return (f"Published with differential privacy: every count below carries random noise "
            f"(OpenDP), so no table reveals whether any one subscriber's calls are in the data. "
            f"This report spent {measure} {spent} of the period's budget (ledger "
            f"{getattr(release.ledger, 'name', release.ledger)}, release "
            f"{release.release_id[:12]}). Alerts, hourly trends and per-customer tables read "
            "exact records and are left out.")  # fmt: skip


def dp_chart(frame: pd.DataFrame, indicator: str, *, label: str = "object",
             title: str | None = None, width: int = 560) -> Any:  # fmt: skip
    """Dots with 95 % error bars from the noise, ranked worst first."""
    import altair as alt

    from cemkit.report.charts import nothing_to_draw

    lo, hi = f"{indicator}_lo", f"{indicator}_hi"
    data = frame.dropna(subset=[indicator])[[label, indicator, lo, hi]]
    if data.empty:
        return nothing_to_draw("No group had enough (noisy) attempts to draw a ratio.")
    y = alt.Y(f"{label}:N", sort=alt.EncodingSortField(indicator, order="ascending"), title=None)
    axis = alt.Axis(format=".0%", title=None)
    low = max(0.0, float(data[lo].min()) - 0.02)
    high = min(1.0, float(data[hi].max()) + 0.02)
    scale = alt.Scale(domain=[low, high] if math.isfinite(low + high) else [0, 1], zero=False)
    bars = (
        alt.Chart(data)
        .mark_rule(color="#888")
        .encode(x=alt.X(f"{lo}:Q", axis=axis, scale=scale), x2=f"{hi}:Q", y=y)
    )
    dots = alt.Chart(data).mark_circle(size=80, opacity=1, color="#1f5fa8").encode(
        x=alt.X(f"{indicator}:Q", axis=axis, scale=scale), y=y,
        tooltip=[alt.Tooltip(f"{label}:N"), alt.Tooltip(f"{indicator}:Q", format=".1%"),
                 alt.Tooltip(f"{lo}:Q", format=".1%"), alt.Tooltip(f"{hi}:Q", format=".1%")],
    )  # fmt: skip
    return (bars + dots).properties(width=width, title=title or "")
