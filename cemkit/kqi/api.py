"""KQIs from records: roll up, find alerts, count customers per group (pure; nothing written).

Writing them into a run directory is the runner's job (:func:`cemkit.runs.library.kqi_sink`,
``cemkit kqi``, :func:`cemkit.run`).

Examples
--------
>>> from cemkit.kqi.api import run
>>> done = run("runs/correlated", "models/example.yaml")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cemkit.cluster import connect
from cemkit.kqi.alerts import find_alerts
from cemkit.kqi.rollup import KqiResult, rollup
from cemkit.model.spec import BUCKETS, ServiceModel, load_model


@dataclass
class KqiRun:
    """What :func:`run` computed."""

    result: KqiResult
    alerts: pd.DataFrame
    group_sizes: pd.DataFrame | None = None
    model_name: str = ""


def read_records(path: str | Path) -> Any:
    """Records of a run directory (or ``RUN/records``), lazily: :func:`cemkit.runs.read_records`."""
    from cemkit.runs import read_records as read

    return read(path)


def compute(
    records: Any,
    model: str | Path | ServiceModel,
    *,
    freqs: tuple[str, ...] = BUCKETS,
    top_n: int = 20,
    sizes: bool = False,
    rank_customers: bool = True,
    intents_within_partitions: bool = False,
) -> KqiRun:
    """KQIs, alerts (and distinct customers per group) of pandas or Dask records.

    ``intents_within_partitions``: as for :func:`cemkit.kqi.rollup.rollup`.
    """
    from cemkit.model.assign import Assigner

    spec = model if isinstance(model, ServiceModel) else load_model(model)
    assigner = Assigner(spec)
    # group sizes come from the same pass over the records (no second read)
    result = rollup(records, assigner, freqs=_with_alerting(freqs, spec), top_n=top_n,
                    rank_customers=rank_customers, sizes=sizes,
                    intents_within_partitions=intents_within_partitions)  # fmt: skip
    return _with_alerts(result, spec)


def merge(partials: list[Any], assigner: Any, *, freqs: tuple[str, ...] = BUCKETS,
          top_n: int = 20, sizes: bool = False) -> KqiRun:  # fmt: skip
    """:func:`compute`'s result from partitions reduced one by one.

    ``partials``: :class:`cemkit.kqi.rollup.PartitionRollup` of ``assigner`` (ranking customers,
    with ``sizes`` as here) applied to each partition of records whose every intent lies in
    one partition (``intents_within_partitions``).
    """
    from cemkit.kqi.rollup import merge_rollup

    spec = assigner.model
    result = merge_rollup(partials, assigner, freqs=_with_alerting(freqs, spec), top_n=top_n,
                          sizes=sizes)  # fmt: skip
    return _with_alerts(result, spec)


def _with_alerting(freqs: tuple[str, ...], spec: ServiceModel) -> tuple[str, ...]:
    """The buckets asked for and the one the model alerts on."""
    return tuple(dict.fromkeys([*freqs, spec.alerting.bucket]))


def _with_alerts(result: KqiResult, spec: ServiceModel) -> KqiRun:
    return KqiRun(result, find_alerts(result.table, spec), result.group_sizes, spec.name)


def run(
    records: Any,
    model: str | Path | ServiceModel,
    *,
    freqs: tuple[str, ...] = BUCKETS,
    top_n: int = 20,
    scheduler: Any = None,
    allow_raw: bool = False,
) -> KqiRun:
    """Compute KQIs and alerts for records under a service model.

    Parameters
    ----------
    records : path, pandas.DataFrame or dask.dataframe.DataFrame
        A run directory (or its ``records``), or the records.
    model : path or ServiceModel
        The service model.
    freqs : tuple of str
        Buckets to report (the alerting bucket is always added).
    top_n : int
        Number of worst customers to list.
    scheduler : optional
        Where Dask computes, as for :func:`cemkit.cluster.connect`; None keeps the scheduler
        already in use.
    allow_raw : bool
        Compute on a run directory that was never protected (a data owner's own raw data; a
        loud warning). Without it such a directory is refused: the worst customers would be raw
        numbers. Generated worlds (:mod:`cemkit.synth`) pass.
    """
    with contextlib.nullcontext() if scheduler is None else connect(scheduler):
        if isinstance(records, str | Path):
            from cemkit.privacy.enforce import require_protected

            require_protected(records, "kqi", allow_raw=allow_raw)
            records = read_records(records)
        return compute(records, model, freqs=freqs, top_n=top_n)
