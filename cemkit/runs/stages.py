"""Stages and how they run: a pandas batch is one partition, a Dask frame many.

A :class:`Stage` is a name, a function from one partition to one partition (pandas), an optional
:class:`Grouping` its rows must be grouped by, and its manifest section. :func:`apply` runs a
list of stages on a pandas frame (one partition) or on a Dask frame; on Dask, consecutive stages
that need the same grouping share one shuffle, and stages that need none run in the partition
they find (a function of the key columns keeps rows that were together, together).

This is the one place that decides pandas-or-Dask (:func:`is_dask`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

PartitionFn = Callable[[pd.DataFrame], pd.DataFrame]


def is_dask(obj: object) -> bool:
    """Whether ``obj`` is a Dask collection (without importing Dask when it is not loaded)."""
    return type(obj).__module__.split(".")[0] in {"dask", "dask_expr"} and hasattr(
        obj, "npartitions"
    )


@dataclass(frozen=True)
class Grouping:
    """Rows a stage needs together: equal ``columns(frame)`` values end up in one partition.

    Two groupings are the same when their names are (the name says what is grouped).
    """

    name: str
    columns: Callable[[pd.DataFrame], Any] = field(compare=False)


@dataclass(frozen=True)
class Stage:
    """One step of a run: a partition → partition function.

    Parameters
    ----------
    name : str
        What the manifest calls it (``protect``, ``stitch``, ...).
    fn : callable
        pandas frame → pandas frame; must be a pure function of its partition.
    grouping : Grouping, optional
        Rows it needs in one partition (None: any partitioning will do).
    section : str, optional
        The manifest section the stage belongs to (``protect``, ``correlate``); default its name.
    settings : mapping
        What the manifest records of the stage (JSON-serializable).
    quarantine : callable, optional
        What the stage does to quarantine rows (protect pseudonymizes them too).
    steps : tuple of str, optional
        The steps one fused stage runs, as the manifest lists them (default: its name).
    """

    name: str
    fn: PartitionFn
    grouping: Grouping | None = None
    section: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    quarantine: PartitionFn | None = None
    steps: tuple[str, ...] = ()

    @property
    def section_name(self) -> str:
        """The manifest section this stage reports under."""
        return self.section or self.name


@dataclass
class _Segment:
    grouping: Grouping | None
    stages: list[Stage]


def segments(stages: Sequence[Stage]) -> list[_Segment]:
    """Stages cut where a new grouping needs a shuffle (same grouping: one shuffle)."""
    out: list[_Segment] = []
    current: Grouping | None = None
    for st in stages:
        if out and (st.grouping is None or st.grouping == current):
            out[-1].stages.append(st)
            continue
        out.append(_Segment(st.grouping, [st]))
        if st.grouping is not None:
            current = st.grouping
    return out


def shuffles(stages: Sequence[Stage]) -> int:
    """How many shuffles :func:`apply` does for these stages on Dask."""
    return sum(1 for s in segments(stages) if s.grouping is not None)


def run_pandas(df: pd.DataFrame, stages: Sequence[Stage]) -> pd.DataFrame:
    """The stages, one after the other, on one partition."""
    for st in stages:
        df = st.fn(df)
    return df


class _Segmented:
    """Picklable partition function of one segment (restores the input order after a shuffle)."""

    def __init__(self, stages: Sequence[Stage], shuffled: bool):
        self.stages = list(stages)
        self.shuffled = shuffled

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.shuffled:
            from cemkit.correlate import _frames

            df = _frames.restore_order(df)
        return run_pandas(df, self.stages)


def apply(records: Any, stages: Sequence[Stage], npartitions: int | None = None) -> Any:
    """Run stages on a pandas frame (one partition) or a Dask frame (lazily).

    The result does not depend on the partitioning: a shuffle tags each row with its input
    position, and every partition restores that order before its stages run.
    """
    if not stages:
        return records
    if not is_dask(records):
        return run_pandas(records, stages)
    from cemkit.correlate import _frames

    ddf = records
    for seg in segments(stages):
        shuffled = seg.grouping is not None and not _one_partition(ddf, npartitions)
        fn = _Segmented(seg.stages, shuffled)
        if shuffled:
            assert seg.grouping is not None
            n = npartitions or ddf.npartitions
            ddf = _frames.tag_and_shuffle(ddf, seg.grouping.columns, n)
        ddf = ddf.map_partitions(fn, meta=fn(ddf._meta), enforce_metadata=False)
    return ddf


def _one_partition(ddf: Any, npartitions: int | None) -> bool:
    """One partition in and one out: every key already meets in it, rows in input order.

    The shuffle would hash every key (and copy every column) only to hand the same rows back
    in the same order (:func:`~cemkit.correlate._frames.restore_order`); a run over one input
    part (the 1M-record Parquet world) skips it.
    """
    return ddf.npartitions == 1 and (npartitions or 1) == 1


def sections(stages: Sequence[Stage]) -> dict[str, dict[str, Any]]:
    """Manifest sections of the stages: ``{section: {"steps": [...], settings...}}``."""
    out: dict[str, dict[str, Any]] = {}
    for st in stages:
        sec = out.setdefault(st.section_name, {"steps": []})
        sec["steps"].extend(st.steps or [st.name])
        sec.update(st.settings)
    return out


def stage_names(stages: Sequence[Stage]) -> list[str]:
    """Section names in order, each once (what a manifest's ``stages`` lists)."""
    return list(dict.fromkeys(st.section_name for st in stages))
