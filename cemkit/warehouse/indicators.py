"""Indicators of a report's few hundred rows with NumPy (the warehouse's small-frame path).

:func:`cemkit.kqi.formulas.indicators` computes every indicator with pandas: right for the
rollup's large tables, but on a 600-row report its per-operation overhead is most of the query.
Here only the requested indicators are computed, from plain arrays, by the *same* definitions:
shares take their numerator and denominator from :data:`cemkit.kqi.formulas.INDICATORS`; the
means below are the formulas' own counter pairs and scales, and a test checks every value equals
:func:`~cemkit.kqi.formulas.indicators` bit for bit on the pipeline's real output. Indicators
without a small-frame form here (the experience score) make :meth:`Warehouse.kqi` fall back to
the shared pandas formulas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cemkit.kqi import formulas

#: Means: indicator → (sum counter, count counter, divisor of the unit).
MEANS: dict[str, tuple[str, str, float]] = {
    "acd_s": ("conversation_ms", "answered", 1000.0),
    "pdd_mean_ms": ("pdd_us", "pdd_count", 1000.0),
    "rrd_mean_ms": ("rrd_us", "rrd_count", 1000.0),
    "mos": ("mos_micro", "mos_count", 1e6),
    "data_mean_session_s": ("data_duration_ms", "data_sessions", 1000.0),
}
#: Sums: indicator → (counters added up, divisor of the unit).
SUMS: dict[str, tuple[tuple[str, ...], float]] = {
    "data_volume_mb": (("data_up_bytes", "data_down_bytes"), 1e6),
}
#: A denominator that is not a stored counter: ``invites - invites_3xx``.
_DERIVED = {"invites_not_3xx": ("invites", "invites_3xx")}


def _operands(name: str) -> tuple[str, ...] | None:
    ind = formulas.INDICATORS[name]
    if name == "attempts":
        return ("attempts",)
    if ind.is_share:
        assert ind.numerator is not None and ind.denominator is not None
        return (ind.numerator, *_DERIVED.get(ind.denominator, (ind.denominator,)))
    if name in MEANS:
        return MEANS[name][:2]
    if name in SUMS:
        return SUMS[name][0]
    return None


def counters_needed(names: Sequence[str]) -> list[str] | None:
    """The counters the indicators ``names`` read; None when one has no small-frame form."""
    out: dict[str, None] = {}
    for name in names:
        ops = _operands(name)
        if ops is None:
            return None
        out.update(dict.fromkeys(ops))
    return list(out)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float64, NaN where ``den`` is not positive (as the formulas do)."""
    num, den = num.astype(np.float64), den.astype(np.float64)
    out = np.full(len(num), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _counter(sums: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name in _DERIVED:
        a, b = _DERIVED[name]
        return sums[a] - sums[b]
    return sums[name]


def indicators(sums: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The indicators ``names`` from summed counters (arrays of equal length).

    Every name must have a small-frame form (:func:`counters_needed` is not None).

    Examples
    --------
    >>> import numpy as np
    >>> out = indicators({"answered": np.array([3, 0]), "attempts": np.array([4, 0])}, ["asr"])
    >>> out["asr"].tolist()
    [0.75, nan]
    """
    out: dict[str, np.ndarray] = {}
    for name in names:
        ind = formulas.INDICATORS[name]
        if name == "attempts":
            out[name] = sums["attempts"].astype(np.int64)
        elif ind.is_share:
            assert ind.numerator is not None and ind.denominator is not None
            out[name] = _ratio(_counter(sums, ind.numerator), _counter(sums, ind.denominator))
        elif name in MEANS:
            total, count, unit = MEANS[name]
            out[name] = _ratio(sums[total], sums[count]) / unit
        elif name in SUMS:
            cols, unit = SUMS[name]
            added = sums[cols[0]]
            for c in cols[1:]:
                added = added + sums[c]
            out[name] = added.astype(np.float64) / unit
        else:
            raise ValueError(f"{name}: no small-frame form; use cemkit.kqi.formulas.indicators")
    return out
