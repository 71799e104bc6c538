"""The warehouse on disk: Delta Lake tables of mergeable KQI aggregates, exactly once.

A warehouse is a directory holding two Delta Lake tables (``deltalake``, atomic commits,
optimistic concurrency):

``kqi/``
    One row per input file (``source``: its content SHA-256), object (``object_kind`` group or
    customer, ``object``), ``freq`` (``15min`` or ``day``) and ``bucket``: the integer counters
    of :data:`cemkit.kqi.formulas.COUNTERS` and three serialized sketches
    (:mod:`cemkit.warehouse.sketches`): ``pdd_kll``, ``duration_kll``, ``customers_hll``.
    Partitioned by ``freq`` and ``period``: the bucket's UTC date for 15-minute rows, the first
    day of its month for day rows (a 30-day report opens one or two files per compacted
    partition). Day rows are written with the 15-minute rows of the same file in the same
    commit, so that day and month queries read ~96 times fewer rows; both are merges of the
    same records.
``quarantine/``
    The protected rows the loaders set aside, with file, line, field and reason.

The table log keeps per-file statistics of ``bucket``, ``object_kind``, ``object`` and ``source``
only (:data:`STATS_COLUMNS`): reports choose their files from the object min/max, compaction
tells its own files (no source) from ingested ones by the null count of ``source``.

**Exactly once.** Every commit that adds a file's rows also records the Delta *application
transaction* ``cemkit-file:<sha256>`` (version 0) in the same atomic commit: the table's own
idempotency mechanism. A file whose transaction is in the table is skipped; two writers
committing the same file at once are refused by Delta's conflict checker (``Concurrent
transaction``) and the loser drops that file and retries; disjoint appends are retried by
deltalake's optimistic concurrency. A process killed before its commit leaves only unreferenced
Parquet files, which no reader sees (``compact --vacuum`` deletes them).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    Transaction,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from cemkit.errors import InputError
from cemkit.kqi import formulas

#: Buckets stored (``15min`` rows for 15-min and hour queries, ``day`` rows for day and month).
STORED_FREQS: tuple[str, ...] = ("15min", "day")
#: Sketch columns (serialized bytes; null without data).
SKETCH_COLUMNS: tuple[str, ...] = ("pdd_kll", "duration_kll", "customers_hll")
#: Partition columns of the ``kqi`` table.
PARTITION_BY: list[str] = ["freq", "period"]
#: Prefix of the Delta application-transaction id of an ingested file.
APP_ID_PREFIX = "cemkit-file:"
#: How often a commit is retried after a conflict with another writer.
MAX_RETRIES = 20
#: Order of the rows in every data file (ingest and compaction): the rows of one object are
#: contiguous, so the row-group min/max statistics of ``object`` let a report on a few objects
#: (the regions, one customer) read only the row groups that hold them.
SORT_KEYS: list[str] = ["freq", "period", "object_kind", "object", "bucket"]
#: Rows per Parquet row group: small enough that a report on 20 objects reads a few thousand
#: rows of a month's 300K, large enough to keep the footer small.
ROW_GROUP_ROWS = 2048
#: Target size of a data file (bytes): a month of day rows of 10,000 objects is split into files
#: that each hold a contiguous range of objects, and the per-file min/max of ``object`` in the
#: table log (:meth:`Store.files_for`) lets a report open only the files of its objects.
TARGET_FILE_SIZE = 4 << 20
#: Columns with per-file statistics in the table log: ``object_kind``/``object`` min/max prune the
#: files of a report (:meth:`Store.files_for`), the null count of ``source`` tells compacted
#: files (no source) from ingested ones. Delta's default (the first 32 columns) would leave out
#: ``source`` and fill the log with min/max of the counters, which nothing reads.
STATS_COLUMNS: tuple[str, ...] = ("bucket", "object_kind", "object", "source")
STATS_COLUMNS_KEY = "delta.dataSkippingStatsColumns"
#: Table properties of a new ``kqi`` table.
TABLE_CONFIGURATION: dict[str, str] = {STATS_COLUMNS_KEY: ",".join(STATS_COLUMNS)}

KQI_SCHEMA = pa.schema(
    [
        pa.field("freq", pa.string(), nullable=False),
        pa.field("period", pa.string(), nullable=False),
        pa.field("bucket", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("object_kind", pa.string(), nullable=False),
        pa.field("object", pa.string(), nullable=False),
        *(pa.field(c, pa.int64(), nullable=False) for c in formulas.COUNTERS),
        *(pa.field(c, pa.binary()) for c in SKETCH_COLUMNS),
        pa.field("source", pa.string()),
    ]
)


def writer_properties() -> WriterProperties:
    """How data files are written: small row groups, compressed, no statistics on sketches.

    Min/max statistics of serialized sketches prune nothing and would make every footer (read
    by each query) hundreds of kilobytes.
    """
    no_stats = ColumnProperties(statistics_enabled="NONE")
    return WriterProperties(max_row_group_size=ROW_GROUP_ROWS, write_batch_size=ROW_GROUP_ROWS,
                            compression="ZSTD",
                            column_properties=dict.fromkeys(SKETCH_COLUMNS, no_stats))  # fmt: skip


def write_rows(table: DeltaTable, rows: pa.Table, **options: Any) -> None:
    """Write ``rows`` (sorted by :data:`SORT_KEYS`) in one Delta commit.

    The one way data files are written: :func:`writer_properties`, files of about
    :data:`TARGET_FILE_SIZE` (the writer closes a file between batches, so rows are handed
    over in row-group-sized batches).
    """
    batches = rows.cast(KQI_SCHEMA).to_batches(max_chunksize=ROW_GROUP_ROWS)
    write_deltalake(table, pa.Table.from_batches(batches, schema=KQI_SCHEMA),
                    target_file_size=TARGET_FILE_SIZE, writer_properties=writer_properties(),
                    **options)  # fmt: skip


def app_id(sha256: str) -> str:
    """The Delta application-transaction id recording that a file was ingested."""
    return APP_ID_PREFIX + sha256


def _is_conflict(err: Exception) -> bool:
    return isinstance(err, CommitFailedError)


class Store:
    """The Delta tables of one warehouse directory (low level; see :class:`Warehouse`)."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        self.kqi_path = self.path / "kqi"
        self.quarantine_path = self.path / "quarantine"
        self._reader: DeltaTable | None = None
        self._reader_lock = threading.Lock()
        self._index: tuple[int, dict[tuple[str, str], list[_FileStats]]] | None = None
        if create:
            self._create()
        elif not DeltaTable.is_deltatable(str(self.kqi_path)):
            raise InputError(
                f"{self.path}: not a cemkit warehouse (no Delta table kqi/)",
                hint="create one with `cemkit watch DIR --into PATH` or Warehouse.create(PATH)",
            )

    def _create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        for attempt in range(MAX_RETRIES):
            if DeltaTable.is_deltatable(str(self.kqi_path)):
                return
            try:
                DeltaTable.create(str(self.kqi_path), KQI_SCHEMA, mode="ignore",
                                  partition_by=PARTITION_BY, name="cemkit_kqi",
                                  configuration=TABLE_CONFIGURATION)  # fmt: skip
                return
            except (DeltaError, OSError):  # another instance created it at the same moment
                time.sleep(0.05 * (attempt + 1))
        DeltaTable(str(self.kqi_path))  # raise the real error if it still does not exist

    def check_settings(self, wanted: dict[str, str]) -> None:
        """Refuse to mix policies, keys or models in one warehouse (pseudonyms would not match).

        The first writer records ``wanted`` as table properties; later writers must match them.
        """
        for attempt in range(MAX_RETRIES):
            table = self.table()
            conf = table.metadata().configuration
            have = {k: conf.get(k) for k in wanted}
            if all(v is None for v in have.values()):
                try:
                    table.alter.set_table_properties(wanted, raise_if_not_exists=False)
                except Exception as err:
                    if not _is_conflict(err):
                        raise
                    time.sleep(0.02 * (attempt + 1))
                continue
            differ = [k.removeprefix("cemkit.") for k in wanted if have[k] != wanted[k]]
            if differ:
                raise InputError(
                    f"{self.path}: this warehouse holds records counted with another "
                    f"{' and '.join(differ)} ({'; '.join(f'{k}={have[k]}' for k in wanted)})",
                    hint="give the same policy, key and model, or another warehouse",
                )
            return
        raise RuntimeError(f"{self.kqi_path}: could not record the warehouse settings")

    def ensure_stats_columns(self) -> None:
        """Record :data:`TABLE_CONFIGURATION` on a table created without it (older warehouses).

        Files written from then on carry the statistics compaction needs; older files count as
        ingested ones (compacted once more, which changes no answer).
        """
        for attempt in range(MAX_RETRIES):
            conf = self.table().metadata().configuration
            if all(conf.get(k) == v for k, v in TABLE_CONFIGURATION.items()):
                return
            try:
                self.table().alter.set_table_properties(TABLE_CONFIGURATION,
                                                        raise_if_not_exists=False)  # fmt: skip
            except Exception as err:
                if not _is_conflict(err):
                    raise
                time.sleep(0.02 * (attempt + 1))
        raise RuntimeError(f"{self.kqi_path}: could not record the statistics columns")

    def table(self) -> DeltaTable:
        """The ``kqi`` table at its latest version."""
        return DeltaTable(str(self.kqi_path))

    def reader(self) -> DeltaTable:
        """The ``kqi`` table at its latest version, for reads.

        One table kept and brought up to date from the log's new entries (re-reading the whole
        log on every query would cost more than the query).
        """
        with self._reader_lock:
            if self._reader is None:
                self._reader = self.table()
            else:
                self._reader.update_incremental()
            return self._reader

    def ingested(self, sha256s: Sequence[str], table: DeltaTable | None = None) -> set[str]:
        """Which of these content checksums the warehouse has already counted."""
        t = table or self.table()
        return {s for s in sha256s if t.transaction_version(app_id(s)) is not None}

    def commit(self, rows: pa.Table, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append the rows of ``files`` in one atomic commit that records each file as ingested.

        Files another writer committed meanwhile are dropped (with their rows) and the rest
        retried. Returns the files this commit counted.
        """
        for attempt in range(MAX_RETRIES):
            table = self.table()
            done = self.ingested([f["sha256"] for f in files], table)
            todo = [f for f in files if f["sha256"] not in done]
            if not todo:
                return []
            keep = pa.array([f["sha256"] for f in todo], pa.string())
            import pyarrow.compute as pc

            part = rows.filter(pc.is_in(rows["source"], value_set=keep))
            part = part.sort_by([(k, "ascending") for k in SORT_KEYS])
            props = CommitProperties(
                app_transactions=[Transaction(app_id(f["sha256"]), 0) for f in todo],
                custom_metadata={"cemkit.files": json.dumps(todo, sort_keys=True)},
                max_commit_retries=MAX_RETRIES,
            )
            try:
                write_rows(table, part, mode="append", commit_properties=props)
                return todo
            except Exception as err:
                if not _is_conflict(err):
                    raise
                time.sleep(0.02 * (attempt + 1) * (1 + np.random.default_rng().random()))
        raise RuntimeError(f"{self.kqi_path}: commit kept conflicting after {MAX_RETRIES} tries")

    def commit_quarantine(self, frames: Sequence[tuple[pd.DataFrame, str]]) -> None:
        """Append files' (protected) quarantine rows in one commit, once per file.

        ``frames``: each file's rows and content checksum. The same mechanism as the counters
        (one Delta application transaction per file, in the same commit as its rows): a file
        whose rows another writer committed meanwhile is dropped and the rest retried.
        """
        frames = [(f, s) for f, s in frames if not f.empty]
        if not frames:
            return
        path = str(self.quarantine_path)
        for attempt in range(MAX_RETRIES):
            try:
                table = DeltaTable(path)
            except TableNotFoundError:
                table = None
            todo = [(f, s) for f, s in frames
                    if table is None or table.transaction_version(app_id(s)) is None]  # fmt: skip
            if not todo:
                return
            rows = todo[0][0] if len(todo) == 1 else pd.concat([f for f, _ in todo],
                                                                 ignore_index=True)  # fmt: skip
            data = pa.Table.from_pandas(rows, preserve_index=False)
            props = CommitProperties(app_transactions=[Transaction(app_id(s), 0) for _, s in todo],
                                     max_commit_retries=MAX_RETRIES)  # fmt: skip
            try:
                write_deltalake(table if table is not None else path, data, mode="append",
                                commit_properties=props, schema_mode="merge")  # fmt: skip
                return
            except Exception as err:
                if table is not None and not _is_conflict(err):
                    raise
                time.sleep(0.02 * (attempt + 1))
        raise RuntimeError(f"{path}: commit kept conflicting after {MAX_RETRIES} tries")

    def files_for(
        self,
        stored: str,
        periods: Sequence[str],
        kind: str,
        objects: Sequence[str] | None = None,
        table: DeltaTable | None = None,
    ) -> list[str]:
        """Data files of ``periods`` that may hold rows of ``kind`` (and of ``objects``).

        Uses only the table log: the partition values and the per-file min/max statistics of
        ``object_kind`` and ``object`` (strings there may be truncated prefixes; compared so that
        no file that may hold an object is left out).
        """
        t = table or self.reader()
        index = self._file_index(t)
        names = sorted(set(objects)) if objects is not None else None
        out = []
        for period in dict.fromkeys(periods):
            for f in index.get((stored, period), ()):
                if not _may_hold(f.kind_min, f.kind_max, [kind]):
                    continue
                if names is not None and not _may_hold(f.object_min, f.object_max, names):
                    continue
                out.append(str(self.kqi_path / f.path))
        return out

    def _file_index(self, table: DeltaTable) -> dict[tuple[str, str], list[_FileStats]]:
        """The live data files by (freq, period), with their statistics; one per table version.

        Built from the table log once per version: a year of 15-minute partitions is thousands
        of files, and converting all their add actions on every query would cost more than the
        query.
        """
        version = table.version()
        cached = self._index
        if cached is not None and cached[0] == version:
            return cached[1]
        adds = pa.table(table.get_add_actions(flatten=True))
        cols = {c: adds[c].to_pylist() if c in adds.column_names else [None] * adds.num_rows
                for c in ("path", "partition.freq", "partition.period", "min.object_kind",
                          "max.object_kind", "min.object", "max.object")}  # fmt: skip
        index: dict[tuple[str, str], list[_FileStats]] = {}
        rows = zip(cols["path"], cols["min.object_kind"], cols["max.object_kind"],
                   cols["min.object"], cols["max.object"], strict=True)  # fmt: skip
        for freq, period, row in zip(cols["partition.freq"], cols["partition.period"], rows,
                                     strict=True):  # fmt: skip
            index.setdefault((freq, period), []).append(_FileStats(*row))
        self._index = (version, index)
        return index

    def files(self) -> list[dict[str, Any]]:
        """Every file the warehouse counted, from the commit log (oldest first)."""
        out: list[dict[str, Any]] = []
        for commit in reversed(self.table().history()):
            meta = commit.get("cemkit.files")
            if meta:
                for f in json.loads(meta):
                    out.append({**f, "version": commit.get("version")})
        return out

    def retain(self, days: int, *, now: dt.datetime | None = None) -> str:
        """Delete the rows of buckets older than ``days`` days (UTC midnight ``days`` days ago).

        15-minute partitions go whole (a metadata-only delete); the day rows of a month that
        straddles the cutoff are rewritten without the old days.
        """
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        today = (now or dt.datetime.now(dt.UTC)).date()
        cutoff = (today - dt.timedelta(days=days)).isoformat()
        table = self.table()
        removed = 0
        for predicate in (f"freq = '15min' AND period < '{cutoff}'",
                          f"bucket < '{cutoff}T00:00:00Z'"):  # fmt: skip
            metrics = table.delete(predicate)
            removed += int(metrics.get("num_removed_files", 0))
            table = self.table()
        return f"removed {removed} file(s) of buckets before {cutoff}"


class _FileStats(NamedTuple):
    """A data file of the table log and its min/max of ``object_kind`` and ``object``."""

    path: str
    kind_min: str | None
    kind_max: str | None
    object_min: str | None
    object_max: str | None


def _may_hold(lo: str | None, hi: str | None, values: list[str]) -> bool:
    """Whether a file whose min/max statistics are ``lo``/``hi`` may hold one of ``values``.

    Statistics of strings may be truncated prefixes (no file that may hold a value is left out).
    """
    if lo is None or hi is None:
        return True
    return any(v >= lo and v[: len(hi)] <= hi for v in values)


def period_of(bucket: pd.Series, freq: str) -> np.ndarray:
    """The ``period`` partition value of each bucket (see the module docstring)."""
    if freq == "day":
        return bucket.dt.strftime("%Y-%m-01").to_numpy(dtype=object)
    return bucket.dt.strftime("%Y-%m-%d").to_numpy(dtype=object)


def periods(stored: str, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """The ``period`` values of stored ``freq`` rows with buckets in ``[start, end)``."""
    last = end - pd.Timedelta("1us")
    if last < start:
        return []
    days = pd.date_range(start.floor("1D"), last.floor("1D"), freq="1D")
    fmt = "%Y-%m-01" if stored == "day" else "%Y-%m-%d"
    return list(dict.fromkeys(d.strftime(fmt) for d in days))
