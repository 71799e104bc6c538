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
import threading
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
    # the whole period [start, end) as one bucket (per-group totals of a report)
    "period": ("day", "period", None),
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
        self._lock = threading.Lock()
        self._duckdb: duckdb.DuckDBPyConnection | None = None

    @classmethod
    def create(cls, path: str | Path) -> Warehouse:
        """Open the warehouse at ``path``, creating its tables if needed."""
        return cls(path, create=True)

    # --- reads -----------------------------------------------------------------------------------
    def _files(
        self,
        stored: str,
        start: pd.Timestamp,
        end: pd.Timestamp,
        kind: str = "group",
        groups: Sequence[str] | None = None,
    ) -> list[str]:
        """Data files that may hold the rows asked for, from the table log (none is opened).

        DuckDB reads these Parquet files directly: the writers never use deletion vectors (every
        delete and compaction removes whole files), so the live files are the table's content.
        """
        wanted = periods(stored, start, end)
        if not wanted:
            return []
        return self.store.files_for(stored, wanted, kind, groups)

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """A cursor of this warehouse's in-memory DuckDB connection (one per call: thread-safe)."""
        with self._lock:
            if self._duckdb is None:
                con = duckdb.connect()
                con.execute("SET TimeZone = 'UTC'")
                # a report reads a few row groups of a few files: threads only contend
                con.execute("SET threads = 1")
                self._duckdb = con
            return self._duckdb.cursor()

    def _sums(
        self,
        start: Any,
        end: Any,
        *,
        freq: str,
        kind: str,
        groups: Sequence[str] | None,
        counter_columns: Sequence[str],
        sketch_columns: Sequence[str],
    ) -> pa.Table:
        """Summed ``counter_columns`` and lists of ``sketch_columns`` per object and bucket."""
        if freq not in FREQS:
            raise ValueError(f"unknown freq {freq!r}; known: {', '.join(FREQS)}")
        stored, unit, _ = FREQS[freq]
        assert stored in STORED_FREQS
        t0, t1 = _ts(start), _ts(end)
        schema = pa.schema(
            [
                pa.field("object_kind", pa.string()),
                pa.field("object", pa.string()),
                pa.field("bucket", pa.timestamp("us", tz="UTC")),
                *(pa.field(c, pa.int64()) for c in counter_columns),
                *(pa.field(c, pa.list_(pa.binary())) for c in sketch_columns),
            ]
        )
        files = self._files(stored, t0, t1, kind, groups)
        if not files:
            return schema.empty_table()
        bucket = ("bucket" if unit is None else "$t0::TIMESTAMPTZ" if unit == "period"
                  else f"date_trunc('{unit}', bucket)")  # fmt: skip
        sums = "".join(f", sum({c})::BIGINT AS {c}" for c in counter_columns)
        lists = "".join(f", list({c}) FILTER (WHERE {c} IS NOT NULL) AS {c}"
                        for c in sketch_columns)  # fmt: skip
        where = "object_kind = $kind AND bucket >= $t0 AND bucket < $t1"
        params: dict[str, Any] = {"kind": kind, "t0": t0.to_pydatetime(),
                                  "t1": t1.to_pydatetime(), "files": files}  # fmt: skip
        if groups is not None:
            # rows are sorted by object in every data file (see table.SORT_KEYS): the range
            # predicate lets row-group min/max statistics skip every row group that holds
            # none of these objects, the IN list keeps only them
            names = sorted(dict.fromkeys(groups)) or [""]
            where += " AND object BETWEEN $lo AND $hi"
            where += " AND object IN (" + ", ".join(f"$g{i}" for i in range(len(names))) + ")"
            params.update({f"g{i}": g for i, g in enumerate(names)})
            params.update(lo=names[0], hi=names[-1])
        sql = (f"SELECT object_kind, object, {bucket} AS bucket{sums}{lists} "
               f"FROM read_parquet($files) "
               f"WHERE {where} GROUP BY ALL ORDER BY object_kind, object, bucket")  # fmt: skip
        con = self._connection()
        try:
            out = con.sql(sql, params=params).to_arrow_table()
        finally:
            con.close()
        return out.cast(schema)

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
        table = self._sums(start, end, freq=freq, kind=kind, groups=groups,
                           counter_columns=list(formulas.COUNTERS),
                           sketch_columns=list(sketch_columns))  # fmt: skip
        out = pd.DataFrame({
            "object_kind": np.asarray(table["object_kind"].to_pylist(), dtype=object),
            "object": np.asarray(table["object"].to_pylist(), dtype=object),
            "bucket": pd.Series(table["bucket"].to_pandas(), dtype="datetime64[us, UTC]"),
            **{c: table[c].to_numpy().astype(np.int64) for c in formulas.COUNTERS},
        })  # fmt: skip
        for c in sketch_columns:
            out[c] = pd.Series([v or [] for v in table[c].to_pylist()], dtype=object)
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
        freq : {"15min", "hour", "day", "month", "period"}
            Result buckets (merges of the stored 15-minute or day rows); ``"period"``: one
            bucket, the whole period (from day rows: give whole UTC days).
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
        quant = {n: QUANTILES[n] for n in names if n in QUANTILES}
        sketch_cols = ["customers_hll", *sorted({c for c, _ in quant.values()})]
        formula_names = [n for n in names if n not in quant]
        needed = formulas.counters_needed(formula_names)
        all_counters = counters or needed is None
        counter_cols = list(formulas.COUNTERS) if all_counters else needed
        assert counter_cols is not None
        table = self._sums(start, end, freq=freq, kind=kind, groups=groups,
                           counter_columns=counter_cols, sketch_columns=sketch_cols)  # fmt: skip
        sums = {c: table[c].to_numpy().astype(np.int64) for c in counter_cols}
        blobs = {c: [v or [] for v in table[c].to_pylist()] for c in sketch_cols}
        quantiles = {col: sketches.kll_quantile_rows(blobs[col],
                                                     [q for c, q in quant.values() if c == col])
                     for col in sketch_cols if col != "customers_hll"}  # fmt: skip
        values: dict[str, np.ndarray] = {}
        for name, (col, q) in quant.items():
            qs = [q2 for c, q2 in quant.values() if c == col]
            values[name] = quantiles[col][:, qs.index(q)]
        if needed is not None:
            values.update(formulas.indicator_arrays(sums, formula_names))
        else:  # an indicator that is not a function of counters alone: the whole formulas
            frame_sums = pd.DataFrame(sums)
            for name in formulas.PDD_QUANTILES:
                frame_sums[name] = values.get(name, np.full(len(frame_sums), np.nan))
            ind = formulas.indicators(frame_sums)
            values.update({n: ind[n].to_numpy() for n in formula_names})
        customers = np.array([sketches.hll_count(b) for b in blobs["customers_hll"]],
                             dtype=np.int64)  # fmt: skip
        bucket = pd.Series(table["bucket"].to_pandas(), dtype="datetime64[us, UTC]")
        step = FREQS[freq][2] if freq != "period" else _ts(end) - _ts(start)
        frame = pd.DataFrame({
            "object_kind": np.asarray(table["object_kind"].to_pylist(), dtype=object),
            "object": np.asarray(table["object"].to_pylist(), dtype=object),
            "freq": freq,
            "bucket": bucket,
            "bucket_end": bucket + step,
            CUSTOMERS: customers,
            **{n: values[n] if n == "attempts" else values[n].astype(float) for n in names},
            **({c: sums[c] for c in formulas.COUNTERS} if counters else {}),
        })  # fmt: skip
        labels = ["object_kind", "object", "freq", "bucket", "bucket_end"]
        result = suppress_small_groups(frame, CUSTOMERS, k=k, policy=policy,
                                       how=how,  # type: ignore[arg-type]
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
