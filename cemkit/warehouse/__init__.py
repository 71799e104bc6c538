"""A KQI warehouse fed continuously: mergeable aggregates in Delta Lake, exactly once.

* :func:`open` / :class:`Warehouse` — queries for reports (:meth:`Warehouse.kqi`), retention,
  compaction;
* :func:`ingest` — count input files into a warehouse, each once by content checksum;
* :mod:`cemkit.warehouse.watch` — follow a landing directory (``cemkit watch``).

Examples
--------
>>> import cemkit.warehouse
>>> wh = cemkit.warehouse.open("warehouse/")  # doctest: +SKIP
>>> wh.kqi("2026-03-01", "2026-03-31", freq="day",
...        indicators=["asr", "pdd_p95_ms"])  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cemkit import _lazy

if TYPE_CHECKING:
    from cemkit.warehouse.batch import BatchReport, Settings
    from cemkit.warehouse.query import FREQS, QUANTILES, Warehouse, open

# loaded on first use: `cemkit --help` (which lists `cemkit watch`) imports no heavy library
_lazy.exports(
    __name__,
    {
        "BatchReport": "cemkit.warehouse.batch",
        "Settings": "cemkit.warehouse.batch",
        "FREQS": "cemkit.warehouse.query",
        "QUANTILES": "cemkit.warehouse.query",
        "Warehouse": "cemkit.warehouse.query",
        "open": "cemkit.warehouse.query",
    },
)

__all__ = ["FREQS", "QUANTILES", "BatchReport", "Settings", "Warehouse", "ingest", "open"]


def ingest(
    paths: list[str] | str,
    into: str | Path,
    *,
    format: str,
    model: str | Path,
    policy: str = "default",
    tz: str = "UTC",
    default_region: str | None = None,
    **options: Any,
) -> BatchReport:
    """Count input files into the warehouse ``into`` (created if needed), each exactly once.

    Examples
    --------
    >>> import cemkit.warehouse
    >>> cemkit.warehouse.batch(["cdr/Master.csv"], "warehouse/", format="asterisk",
    ...                         model="models/example.yaml")  # doctest: +SKIP
    """
    from cemkit.warehouse.batch import Settings, ingest_files
    from cemkit.warehouse.query import Warehouse

    wh = Warehouse.create(into)
    settings = Settings(format, policy, str(model), tz, default_region, dict(options))
    return ingest_files(
        wh.store, [str(p) for p in ([paths] if isinstance(paths, str) else paths)], settings
    )
