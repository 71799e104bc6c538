"""Noise from OpenDP's measurements: discrete Laplace (pure ε-DP) and discrete Gaussian (zCDP).

cemkit draws no noise itself. For a vector of integer counts whose sensitivity (how much one
subscriber can move it, after bounding) is ``l1`` / ``l2``, :func:`calibrate` asks OpenDP for
the smallest noise scale whose privacy map stays within the spend, and :func:`noisy` applies
OpenDP's measurement to the whole vector at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np


@lru_cache(maxsize=1)
def _dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _measurement(mechanism: str, scale: float) -> Any:
    dp = _dp()
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    if mechanism == "laplace":
        return dp.m.make_laplace(domain, dp.l1_distance(T="i64"), scale=scale)
    if mechanism == "gaussian":
        return dp.m.make_gaussian(domain, dp.l2_distance(T="i64"), scale=scale)
    raise ValueError(f"unknown mechanism {mechanism!r}; known: laplace, gaussian")


@dataclass(frozen=True)
class Noise:
    """A calibrated mechanism: its scale, what it spends, and its error."""

    mechanism: str
    scale: float
    #: Sensitivity the scale was calibrated for (L1 for laplace, L2 for gaussian).
    sensitivity: int
    #: Privacy spent by one application (ε or ρ, as OpenDP's privacy map states it).
    spent: float

    @property
    def sd(self) -> float:
        """Standard deviation of the noise added to each value."""
        if self.mechanism == "laplace":
            # discrete Laplace with scale s: variance 2 e^(-1/s) / (1 - e^(-1/s))^2
            q = math.exp(-1.0 / self.scale)
            return math.sqrt(2.0 * q) / (1.0 - q)
        return self.scale  # discrete Gaussian: variance within 1e-9 of scale^2 for scale >= 1


def sensitivity(mechanism: str, max_cells: int, max_records: int, per_record: int = 1) -> int:
    """How much one subscriber can move a vector of cell sums (L1 or L2, rounded up)."""
    per_cell = max_records * per_record
    if mechanism == "laplace":
        return int(max_cells * per_cell)
    return math.ceil(math.sqrt(max_cells) * per_cell)


def calibrate(mechanism: str, sens: int, spend: float) -> Noise:
    """The smallest scale whose OpenDP privacy map at ``sens`` is within ``spend``."""
    dp = _dp()
    scale = dp.binary_search_param(lambda s: _measurement(mechanism, s), d_in=int(sens),
                                   d_out=float(spend))  # fmt: skip
    spent = float(_measurement(mechanism, scale).map(int(sens)))
    if spent > spend * (1 + 1e-9):
        raise ValueError("OpenDP calibration exceeded the spend")  # cannot happen; be loud
    return Noise(mechanism, float(scale), int(sens), spent)


def noisy(values: np.ndarray, noise: Noise) -> np.ndarray:
    """``values`` (integers) with the calibrated noise added, by OpenDP, in one call."""
    arr = np.ascontiguousarray(values, dtype=np.int64)
    if arr.size == 0:
        return arr.copy()
    out = _measurement(noise.mechanism, noise.scale)(arr)
    return np.asarray(out, dtype=np.int64)
