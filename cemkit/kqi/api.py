"""Run KQIs end to end: read canonical records, roll up, find alerts, write Parquet.

Examples
--------
>>> from cemkit.kqi.api import run
>>> done = run("out/synth", "models/example.yaml", "out/kqi")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import pandas as pd

from cemkit.cluster import connect
from cemkit.errors import InputError, OutputError
from cemkit.kqi.alerts import find_alerts
from cemkit.kqi.rollup import KqiResult, rollup
from cemkit.model.spec import BUCKETS, ServiceModel, load_model


@dataclass
class KqiRun:
    """What :func:`run` computed and where it wrote it."""

    result: KqiResult
    alerts: pd.DataFrame
    paths: dict[str, Path]


def records_dir(path: str | Path) -> Path:
    """The directory of record Parquet files under ``path`` (``path/records`` if it exists)."""
    p = Path(path)
    if (p / "records").is_dir():
        p = p / "records"
    if not p.is_dir():
        raise InputError(f"{p}: not a directory of canonical records",
                         hint="give the directory that synth, load or protect wrote")  # fmt: skip
    if not any(p.glob("*.parquet")):
        raise InputError(f"{p}: holds no *.parquet files of canonical records",
                         hint="give the directory that synth, load or protect wrote")  # fmt: skip
    return p


def read_records(path: str | Path) -> dd.DataFrame:
    """Canonical records of a directory as a lazy Dask DataFrame (one partition per file)."""
    p = records_dir(path)
    files = sorted(str(f) for f in p.glob("*.parquet"))
    return dd.read_parquet(files)


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({err.strerror})") from None


def write(run_result: KqiResult, alerts: pd.DataFrame, out: str | Path) -> dict[str, Path]:
    """Write ``kqi/kqi.parquet``, ``kqi/worst_customers.parquet``, ``alerts.parquet`` atomically."""
    out = Path(out)
    paths = {
        "kqi": out / "kqi" / "kqi.parquet",
        "worst_customers": out / "kqi" / "worst_customers.parquet",
        "alerts": out / "alerts.parquet",
    }
    _atomic_parquet(run_result.table, paths["kqi"])
    _atomic_parquet(run_result.worst_customers, paths["worst_customers"])
    _atomic_parquet(alerts, paths["alerts"])
    return paths


def run(
    records: Any,
    model: str | Path | ServiceModel,
    out: str | Path | None = None,
    *,
    freqs: tuple[str, ...] = BUCKETS,
    top_n: int = 20,
    scheduler: Any = None,
    allow_raw: bool = False,
) -> KqiRun:
    """Compute KQIs and alerts for records under a service model; write them when ``out`` is given.

    Parameters
    ----------
    records : path, pandas.DataFrame or dask.dataframe.DataFrame
        A directory of canonical records, or the records.
    model : path or ServiceModel
        The service model.
    out : path, optional
        Output directory: ``kqi/`` and ``alerts.parquet`` are written there.
    freqs : tuple of str
        Buckets to report (the alerting bucket is always added).
    top_n : int
        Number of worst customers to list.
    scheduler : optional
        Where Dask computes, as for :func:`cemkit.cluster.connect`; None keeps the scheduler
        already in use (e.g. inside ``cluster.connect`` or :func:`cemkit.run`).
    allow_raw : bool
        Compute on records that were never protected (a data owner's own raw data; a loud
        warning). Without it such a directory is refused: the worst customers would be raw
        numbers. Generated worlds (:mod:`cemkit.synth`) pass.
    """
    from cemkit.privacy.enforce import require_protected

    spec = model if isinstance(model, ServiceModel) else load_model(model)
    if isinstance(records, str | Path):
        require_protected(records, "kqi", allow_raw=allow_raw)
        records = read_records(records)
    wanted = tuple(dict.fromkeys([*freqs, spec.alerting.bucket]))
    with contextlib.nullcontext() if scheduler is None else connect(scheduler):
        result = rollup(records, spec, freqs=wanted, top_n=top_n)
    alerts = find_alerts(result.table, spec)
    paths = write(result, alerts, out) if out is not None else {}
    return KqiRun(result, alerts, paths)
