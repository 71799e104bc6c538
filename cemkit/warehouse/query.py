"""Reports from the warehouse: sums and sketch merges, without reading any record.

:meth:`Warehouse.kqi` sums the stored counters with DuckDB over the Delta table's Parquet files
(only the data files of the period's partitions are read, found in the table log), merges the
stored sketches of each result row, derives the indicators with
:func:`cemkit.kqi.formulas.indicators`, and suppresses rows that stand for fewer than k
customers (:func:`cemkit.privacy.suppress.suppress_small_groups`).

Examples
--------
>>> import cemkit.warehouse
>>> wh = cemkit.warehouse.open("warehouse/")  # doctest: +SKIP
>>> wh.kqi("2026-03-01", "2026-03-31", groups=["London"], indicators=["asr", "pdd_p95_ms"],
...        freq="day")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from cemkit.errors import InputError
from cemkit.kqi import formulas
from cemkit.warehouse import sketches
from cemkit.warehouse.table import STORED_FREQS, Store, periods

#: Query buckets → (stored rows they merge, DuckDB ``date_trunc`` unit, bucket length).
FREQS: dict[str, tuple[str, str | None, Any]] = {
    "15min": ("15min", None, pd.Timedelta("15min")),
    "hour": ("15min", "hour", pd.Timedelta("1h")),
    "day": ("day", "day", pd.Timedelta("1D")),
    "month": ("day", "month", pd.offsets.MonthBegin(1)),
}
#: Quantiles read from the stored KLL sketches: column → (sketch column, quantile).
QUANTILES: dict[str, tuple[str, float]] = {
    **{name: ("pdd_kll", q) for name, q in formulas.PDD_QUANTILES.items()},
    "duration_p50_s": ("duration_kll", 0.50),
    "duration_p90_s": ("duration_kll", 0.90),
}
#: Column with the number of distinct customers behind a row (HLL lower bound).
CUSTOMERS = "customers"


def _ts(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class Warehouse:
    """A KQI warehouse directory (see :mod:`cemkit.warehouse.table`)."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.store = Store(path, create=create)
        self.path = self.store.path

    @classmethod
    def create(cls, path: str | Path) -> Warehouse:
        """Open the warehouse at ``path``, creating its tables if needed."""
        return cls(path, create=True)

    # --- reads -----------------------------------------------------------------------------------
    def _files(self, stored: str, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
        """Data files of the period's partitions, from the table log (no data file is opened).

        DuckDB reads these Parquet files directly: the writers never use deletion vectors (every
        delete and compaction removes whole files), so the live files are the table's content.
        """
        wanted = periods(stored, start, end)
        if not wanted:
            return []
        table = self.store.table()
        return list(
            table.file_uris(
                file_pruning_predicate=[("freq", "=", stored), ("period", "in", wanted)]
            )
        )

    def counters(
        self,
        start: Any,
        end: Any,
        *,
        freq: str = "day",
        kind: str = "group",
        groups: Sequence[str] | None = None,
        sketch_columns: Sequence[str] = (),
    ) -> pd.DataFrame:
        """Summed counters per object and bucket in ``[start, end)`` (no suppression).

        The building block of :meth:`kqi`; for reconciliation and tests, not for reports
        (reports go through :meth:`kqi`, which applies k). ``sketch_columns`` adds, per row, the
        list of stored sketches to merge.
        """
        if freq not in FREQS:
            raise ValueError(f"unknown freq {freq!r}; known: {', '.join(FREQS)}")
        stored, unit, _ = FREQS[freq]
        assert stored in STORED_FREQS
        t0, t1 = _ts(start), _ts(end)
        counters = list(formulas.COUNTERS)
        empty = pd.DataFrame(
            {
                "object_kind": pd.Series([], dtype=object),
                "object": pd.Series([], dtype=object),
                "bucket": pd.Series([], dtype="datetime64[us, UTC]"),
                **{c: pd.Series([], dtype=np.int64) for c in counters},
                **{c: pd.Series([], dtype=object) for c in sketch_columns},
            }
        )
        files = self._files(stored, t0, t1)
        if not files:
            return empty
        bucket = "bucket" if unit is None else f"date_trunc('{unit}', bucket)"
        sums = ", ".join(f"sum({c})::BIGINT AS {c}" for c in counters)
        lists = "".join(f", list({c}) FILTER (WHERE {c} IS NOT NULL) AS {c}"
                        for c in sketch_columns)  # fmt: skip
        where = "object_kind = $kind AND bucket >= $t0 AND bucket < $t1"
        params: dict[str, Any] = {"kind": kind, "t0": t0.to_pydatetime(),
                                  "t1": t1.to_pydatetime(), "files": files}  # fmt: skip
        if groups is not None:  # constants, so that row-group statistics prune the scan
            names = list(dict.fromkeys(groups)) or [""]
            where += " AND object IN (" + ", ".join(f"$g{i}" for i in range(len(names))) + ")"
            params.update({f"g{i}": g for i, g in enumerate(names)})
        sql = (f"SELECT object_kind, object, {bucket} AS bucket, {sums}{lists} "
               f"FROM read_parquet($files) "
               f"WHERE {where} GROUP BY ALL ORDER BY object_kind, object, bucket")  # fmt: skip
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            if stored == "day":  # a few small files: threads only contend (2-core machines)
                con.execute("SET threads = 1")
            out = con.execute(sql, params).df()
        finally:
            con.close()
        if out.empty:
            return empty
        out["bucket"] = pd.to_datetime(out["bucket"], utc=True)
        for c in sketch_columns:  # an all-null group gives NULL, not an empty list
            out[c] = [[bytes(b) for b in v] if isinstance(v, list | np.ndarray) else []
                      for v in out[c]]  # fmt: skip
        return out

    def kqi(
        self,
        start: Any,
        end: Any,
        *,
        groups: Sequence[str] | None = None,
        indicators: Sequence[str] | None = None,
        freq: str = "day",
        kind: str = "group",
        k: int | None = None,
        policy: Any = None,
        how: str = "mask",
        counters: bool = False,
    ) -> pd.DataFrame:
        """Indicators per object and bucket over ``[start, end)``, k-suppressed.

        Parameters
        ----------
        start, end : datetime-like
            Period (UTC when naive); ``end`` is excluded.
        groups : sequence of str, optional
            Objects (node groups or modeled customers) to report; all by default.
        indicators : sequence of str, optional
            Names of :data:`cemkit.kqi.formulas.INDICATORS` and of :data:`QUANTILES`
            (default: every indicator).
        freq : {"15min", "hour", "day", "month"}
            Result buckets (merges of the stored 15-minute or day rows).
        kind : {"group", "customer"}
            Node groups or modeled customers.
        k, policy, how
            Report-level suppression, as for :func:`cemkit.privacy.suppress.suppress_small_groups`
            (k from the policy, else the default minimum group size).
        counters : bool
            Also return the summed counters.

        Returns
        -------
        pandas.DataFrame
            ``object_kind, object, freq, bucket, bucket_end, customers``, the indicators (and
            counters), ``suppressed``; the suppression note in ``attrs``.
        """
        from cemkit.privacy.suppress import suppress_small_groups

        names = list(indicators) if indicators is not None else list(formulas.INDICATORS)
        unknown = [n for n in names if n not in formulas.INDICATORS and n not in QUANTILES]
        if unknown:
            known = [*formulas.INDICATORS, *QUANTILES]
            raise ValueError(f"unknown indicator(s) {unknown}; known: {', '.join(known)}")
        sketch_cols = ["customers_hll"]
        quant = {n: QUANTILES[n] for n in names if n in QUANTILES}
        sketch_cols += sorted({c for c, _ in quant.values()})
        sums = self.counters(start, end, freq=freq, kind=kind, groups=groups,
                             sketch_columns=sketch_cols)  # fmt: skip
        for name, (col, q) in quant.items():
            sums[name] = [sketches.kll_quantiles(b, [q])[0] for b in sums[col]]
        customers = np.array([sketches.hll_count(b) for b in sums["customers_hll"]],
                             dtype=np.int64)  # fmt: skip
        ind = (
            formulas.indicators(sums)
            if len(sums)
            else formulas.indicators(
                sums.assign(**{n: pd.Series([], dtype=float) for n in formulas.PDD_QUANTILES})
            )
        )
        step = FREQS[freq][2]
        frame = pd.DataFrame({
            "object_kind": sums["object_kind"].astype(object),
            "object": sums["object"].astype(object),
            "freq": freq,
            "bucket": sums["bucket"],
            "bucket_end": sums["bucket"] + step,
            CUSTOMERS: customers,
        })  # fmt: skip
        for n in names:
            frame[n] = ind[n] if n in ind.columns else sums[n].astype(float)
        if counters:
            for c in formulas.COUNTERS:
                frame[c] = sums[c].astype(np.int64)
        labels = ["object_kind", "object", "freq", "bucket", "bucket_end"]
        result = suppress_small_groups(frame.reset_index(drop=True), CUSTOMERS, k=k,
                                       policy=policy, how=how,  # type: ignore[arg-type]
                                       group_columns=labels)  # fmt: skip
        return result.frame

    # --- maintenance ---------------------------------------------------------------------------
    def files(self) -> pd.DataFrame:
        """Every input file counted (content SHA-256, counts, table version), oldest first."""
        return pd.DataFrame(self.store.files())

    def show(self) -> dict[str, Any]:
        """A summary: version, files counted, records, rows, partitions, period covered."""
        table = self.store.table()
        files = self.store.files()
        parts = table.partitions()
        days = sorted({p["period"] for p in parts if p["freq"] == "15min"})
        adds = pa.table(table.get_add_actions(flatten=True)).to_pydict()
        return {
            "path": str(self.path),
            "version": table.version(),
            "files": len(files),
            "records": sum(int(f.get("rows_loaded", 0)) for f in files),
            "quarantined": sum(int(f.get("rows_quarantined", 0)) for f in files),
            "rows": int(sum(adds.get("num_records", []) or [0])),
            "data_files": len(adds.get("path", [])),
            "partitions": len(parts),
            "first_day": days[0] if days else None,
            "last_day": days[-1] if days else None,
        }

    def retain(self, days: int, *, now: dt.datetime | None = None) -> str:
        """Drop the partitions of buckets older than ``days`` days."""
        return self.store.retain(days, now=now)

    def compact(self, *, vacuum: bool = False, min_files: int = 2) -> str:
        """Merge each partition's rows into one per object and bucket, then checkpoint.

        Each partition is rewritten in its own commit (``predicate`` overwrite), so a
        concurrent ingest into it makes that commit conflict instead of being lost; it is then
        left for the next compaction. Counters are summed and sketches merged: every query
        answers the same before and after. ``vacuum`` also deletes files no version references
        (with ``retention_hours=0``: only when no reader holds an old version).
        """
        from cemkit.warehouse.compact import compact

        return compact(self.store, vacuum=vacuum, min_files=min_files)


def open(path: str | Path) -> Warehouse:
    """Open an existing warehouse (see :class:`Warehouse`).

    Examples
    --------
    >>> import cemkit.warehouse
    >>> cemkit.warehouse.open("warehouse/").kqi("2026-03-01", "2026-03-31")  # doctest: +SKIP
    """
    if not Path(path).is_dir():
        raise InputError(f"{path}: no such warehouse directory",
                         hint="create one with `cemkit watch DIR --into PATH`")  # fmt: skip
    return Warehouse(path)
