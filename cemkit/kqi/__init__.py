"""Experience indicators (KQIs): formulas in one place, Dask rollups, alerts.

* :mod:`cemkit.kqi.formulas` — every indicator with its definition and source;
* :func:`rollup` — per node group and modeled customer per 15 min / hour / day, worst customers;
* :func:`find_alerts` — absolute and baseline-relative thresholds;
* :func:`run` — records directory + model → ``kqi/`` and ``alerts.parquet``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cemkit import _lazy

if TYPE_CHECKING:
    from cemkit.kqi.alerts import find_alerts
    from cemkit.kqi.api import run
    from cemkit.kqi.formulas import INDICATORS
    from cemkit.kqi.rollup import KqiResult, rollup

_lazy.exports(
    __name__,
    {
        "find_alerts": "cemkit.kqi.alerts",
        "run": "cemkit.kqi.api",
        "INDICATORS": "cemkit.kqi.formulas",
        "KqiResult": "cemkit.kqi.rollup",
        "rollup": "cemkit.kqi.rollup",
    },
)


__all__ = ["INDICATORS", "KqiResult", "find_alerts", "rollup", "run"]
