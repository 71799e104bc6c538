"""Differentially private releases of KQI counters, with a privacy budget that lasts.

* :mod:`cemkit.dp.spec` — the policy's ``release:`` section (what a privacy officer signs);
* :mod:`cemkit.dp.bounding` — contribution bounding on pseudonymized subscriber codes
  (Numba kernel, NumPy only);
* :mod:`cemkit.dp.mechanism` — noise from OpenDP's measurements (discrete Laplace for pure
  DP, discrete Gaussian for zCDP), calibrated by OpenDP's own privacy maps;
* :mod:`cemkit.dp.ledger` — the append-only budget ledger, shared by every process;
* :mod:`cemkit.dp.api` — :func:`cemkit.release`, what ``cemkit release`` runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["release"]


def __getattr__(name: str) -> Any:
    if name == "release":
        from cemkit.dp.api import release

        return release
    raise AttributeError(f"module 'cemkit.dp' has no attribute {name!r}")
