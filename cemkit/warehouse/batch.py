"""Input files → warehouse rows, exactly once.

Each file is processed on its own by :func:`process_file`, the **one** place the warehouse
calls cemkit's pipeline (load → protect → correlate → KQI rollup); point it at the stage runner
when there is one. A file's rows depend only on its content, never on which other files shared
its micro-batch, so restarts, batch sizes and the number of instances cannot change the table.
(Calls are correlated within their file: a rotated file is a time slice of one writer.)

:func:`file_rows` turns one file's result into warehouse rows: the counters come unchanged from
:func:`cemkit.kqi.rollup` (15-minute buckets; day rows are their sums), the sketches from the
correlated records the rollup read, assigned to the same objects by the same
:class:`~cemkit.model.assign.Assigner`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cemkit.kqi import formulas
from cemkit.model.assign import CUSTOMER_OBJECT_COLUMN, GROUP_COLUMN, Assigner
from cemkit.model.spec import load_model
from cemkit.warehouse import sketches
from cemkit.warehouse.table import KQI_SCHEMA, SKETCH_COLUMNS, Store, period_of

#: Label of records no group rule matched (as in :mod:`cemkit.kqi.rollup`).
UNASSIGNED = "(unassigned)"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Settings:
    """How files are read and processed (the ``cemkit run`` options that matter)."""

    format: str
    policy: str = "default"
    model: str = ""
    tz: str = "UTC"
    default_region: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileResult:
    """One input file through the pipeline."""

    name: str
    sha256: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    calls: pd.DataFrame  #: protected, correlated records
    kqi: pd.DataFrame  #: rollup table, 15-minute buckets
    quarantine: pd.DataFrame  #: protected quarantine rows

    def ledger_entry(self) -> dict[str, Any]:
        """What the commit log records about this file (no path: file names may hold data)."""
        return {"sha256": self.sha256, "rows_read": self.rows_read,
                "rows_loaded": self.rows_loaded, "rows_quarantined": self.rows_quarantined,
                "calls": len(self.calls)}  # fmt: skip


# --- input files ---------------------------------------------------------------------------------
def content_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's content, decompressed when gzip (a gzipped copy counts as the same)."""
    h = hashlib.sha256()
    with _open_bytes(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _open_bytes(path: str | os.PathLike[str]) -> Any:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")


@contextlib.contextmanager
def readable(path: str | os.PathLike[str]) -> Iterator[str]:
    """A path the loaders can read: the file itself, or its gzip content in a temporary file.

    The one place the warehouse decompresses (by content, not by name); replace it with the
    loaders' own decompression when they have it.
    """
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic != _GZIP_MAGIC:
        yield os.fspath(path)
        return
    with tempfile.TemporaryDirectory(prefix="cemkit-watch-") as tmp:
        name = Path(path).name
        target = Path(tmp) / name.removesuffix(".gz")
        with gzip.open(path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield str(target)


# --- the pipeline (one function) ---------------------------------------------------------------
@lru_cache(maxsize=8)
def _policy_and_key(policy: str) -> tuple[Any, Any]:
    from cemkit.privacy.engine import load_key
    from cemkit.privacy.policy import load_policy

    pol = load_policy(policy)
    key = load_key(pol) if any(r.needs_key for _, r in pol.rules()) else None
    return pol, key


@lru_cache(maxsize=8)
def assigner_for(model: str) -> Assigner:
    """The compiled service model (cached by path)."""
    return Assigner(load_model(model))


def process_file(path: str | os.PathLike[str], settings: Settings, sha256: str) -> FileResult:
    """Load, protect, correlate and roll up one file with cemkit's own pipeline functions.

    Rows the loader sets aside are protected and returned as the quarantine; counts reconcile
    (``rows_read == rows_loaded + rows_quarantined``).
    """
    from cemkit.io.api import plan
    from cemkit.io.base import Loader
    from cemkit.privacy.engine import protect

    pol, key = _policy_and_key(settings.policy)
    with readable(path) as local:
        the_plan = plan(local, settings.format, tz=settings.tz,
                        default_region=settings.default_region, **settings.options)  # fmt: skip
        loader = the_plan.loader
        parts, quarantines, read = [], [], 0
        for part in the_plan.parts:
            records, quarantine = loader.read_part(part)
            read += loader.rows_read(part, records, quarantine)
            parts.append(records)
            quarantines.append(quarantine)
        if type(loader).finish is not Loader.finish:  # formats that combine parts (CUCM)
            records = the_plan.records().compute(scheduler="sync")
        else:
            records = pd.concat(parts, ignore_index=True) if parts else loader.meta()
    quarantine = pd.concat(quarantines, ignore_index=True) if quarantines else None
    n_quarantined = 0 if quarantine is None else len(quarantine)
    protected_q = (protect(quarantine, pol, key=key, quarantine=True)
                   if quarantine is not None and len(quarantine) else pd.DataFrame())  # fmt: skip
    if len(protected_q) and "file" in protected_q.columns:
        protected_q = protected_q.assign(file=Path(path).name)
    calls, kqi = _counted(records, settings)
    return FileResult(Path(path).name, sha256, read, read - n_quarantined, n_quarantined,
                      calls, kqi, protected_q)  # fmt: skip


@lru_cache(maxsize=8)
def _stages(policy: str) -> list[Any]:
    """Protect and correlate stages: the stage list of :class:`cemkit.pipeline.BatchProcessor`."""
    from cemkit.io.base import empty_quarantine
    from cemkit.runs.library import correlate_stages, protect_stages
    from cemkit.schema import empty_frame

    pol, key = _policy_and_key(policy)
    return [*protect_stages(pol, key, empty_frame(), empty_quarantine()), *correlate_stages()]


def _counted(records: pd.DataFrame, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Protected, correlated records and their 15-minute KQI counters.

    What :func:`cemkit.pipeline.process_batch` does, through the same runner library stages and
    :func:`cemkit.kqi.rollup.rollup`, without what the warehouse does not store (alerts, which
    are for the live view and would be most of a batch's KQI time).
    """
    from cemkit.kqi.rollup import rollup
    from cemkit.runs.stages import run_pandas

    stages = _stages(settings.policy)
    protected = run_pandas(records, stages[:1])
    calls = run_pandas(protected, stages[1:])
    result = rollup(calls, assigner_for(settings.model), freqs=("15min",), rank_customers=False)
    return calls, result.table


# --- rows ----------------------------------------------------------------------------------------
_NS_15MIN = 15 * 60 * 10**9
_NS_DAY = 86_400 * 10**9


@dataclass
class _Objects:
    """Each record once per object it counts for (integer codes; names in ``names``)."""

    obj: np.ndarray  #: int64 index into names/kinds
    row: np.ndarray  #: int64 record position
    names: np.ndarray  #: object names
    kinds: np.ndarray  #: object kinds ("group", "customer")
    start_ns: np.ndarray  #: int64 UTC nanoseconds of each record's start


def _objects(calls: pd.DataFrame, assigner: Assigner) -> _Objects:
    """Each record once per object it counts for: its group and every ancestor; its customer.

    Same assignment as :func:`cemkit.kqi.rollup.rollup`: groups count every record, modeled
    customers their originating legs only.
    """
    n_groups = len(assigner.group_names)
    names = np.array([*assigner.group_names, UNASSIGNED, *assigner.customer_names], dtype=object)
    kinds = np.array(["group"] * (n_groups + 1) + ["customer"] * len(assigner.customer_names),
                     dtype=object)  # fmt: skip
    if calls.empty:
        empty = np.zeros(0, dtype=np.int64)
        return _Objects(empty, empty, names, kinds, empty)
    col = assigner.model.numbers.column
    wanted = [c for c in ("start", "node", "leg", col) if c in calls.columns]
    assigned = assigner.assign(calls[wanted])  # only what the rules read: a narrow copy
    start = pd.to_datetime(assigned["start"], utc=True).dt.tz_localize(None)
    start_ns = start.to_numpy().astype("datetime64[ns]").view(np.int64)
    codes = np.asarray(assigned[GROUP_COLUMN].cat.codes, dtype=np.int64)
    chains = [[i, *assigner._chain_index[i]] for i in range(n_groups)]
    depth = max((len(c) for c in chains), default=1)
    lookup = np.full((n_groups + 1, depth), -1, dtype=np.int64)
    for i, chain in enumerate(chains):
        lookup[i, : len(chain)] = chain
    lookup[n_groups, 0] = n_groups  # unassigned
    rows = np.arange(len(assigned), dtype=np.int64)
    per_row = lookup[np.where(codes < 0, n_groups, codes)]  # [records, depth]
    keep = per_row >= 0
    objs, recs = [per_row[keep]], [np.broadcast_to(rows[:, None], per_row.shape)[keep]]
    if assigner.customer_names:
        cust = np.asarray(assigned[CUSTOMER_OBJECT_COLUMN].cat.codes, dtype=np.int64)
        orig = (assigned["leg"] != "term").fillna(True).to_numpy(dtype=bool) if (
            "leg" in assigned.columns) else np.ones(len(assigned), dtype=bool)  # fmt: skip
        mine = orig & (cust >= 0)
        objs.append(cust[mine] + n_groups + 1)
        recs.append(rows[mine])
    return _Objects(np.concatenate(objs), np.concatenate(recs), names, kinds, start_ns)


def _groups(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order that sorts ``key``, and the start and end (in that order) of each run of equal keys."""
    order = np.argsort(key, kind="stable")
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if len(k) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(k)].astype(np.int64)
    return order, starts, ends


def _kll_column(gid: np.ndarray, values: np.ndarray, n: int) -> list[bytes | None]:
    """One KLL sketch per group ``0..n-1`` of the non-NaN ``values`` (``gid``: their groups)."""
    has = ~np.isnan(values)
    g, v = gid[has], values[has]
    order = np.argsort(g, kind="stable")
    g, v = g[order], v[order]
    bounds = np.searchsorted(g, np.arange(n + 1))
    return [sketches.kll_of(v[bounds[i] : bounds[i + 1]]) for i in range(n)]


def _hll_column(gid: np.ndarray, codes: np.ndarray, items: np.ndarray, n: int) -> list[Any]:
    """One HLL sketch per group ``0..n-1`` of the distinct ``items[codes]`` (codes >= 0)."""
    has = codes >= 0
    pairs = np.unique(gid[has] * (len(items) + 1) + codes[has])  # distinct (group, item)
    g, c = pairs // (len(items) + 1), pairs % (len(items) + 1)
    bounds = np.searchsorted(g, np.arange(n + 1))
    return [sketches.hll_of(items[c[bounds[i] : bounds[i + 1]]]) for i in range(n)]


def _sketch_rows(calls: pd.DataFrame, assigner: Assigner) -> dict[str, pd.DataFrame]:
    """Sketches per (object_kind, object, bucket), for each stored freq (``15min``, ``day``).

    Vectorized: records are grouped once per freq with NumPy (integer object codes and
    bucket nanoseconds), and each sketch is fed its group's values as one array (KLL's batch
    update) or its group's *distinct* customers (HLL; duplicates change nothing in the sketch).
    """
    keys = ["object_kind", "object", "bucket"]
    objs = _objects(calls, assigner)
    if not len(objs.obj):
        empty = pd.DataFrame(columns=[*keys, *SKETCH_COLUMNS])
        return {"15min": empty, "day": empty}
    contrib = formulas.contributions(calls)
    pdd = pd.to_numeric(calls["pdd_ms"], errors="coerce").to_numpy(dtype=float, na_value=np.nan) \
        if "pdd_ms" in calls.columns else np.full(len(calls), np.nan)  # fmt: skip
    pdd = np.where(contrib["pdd_count"].to_numpy() > 0, np.rint(pdd), np.nan)
    answered = contrib["answered"].to_numpy() > 0
    duration = np.where(answered, contrib["conversation_ms"].to_numpy() / 1000.0, np.nan)
    col = assigner.model.numbers.column
    if col in calls.columns:
        number_codes, items = pd.factorize(calls[col].astype("string[pyarrow]"))
        items = np.asarray(items, dtype=object)
    else:
        number_codes, items = np.full(len(calls), -1, dtype=np.int64), np.zeros(0, dtype=object)
    r = objs.row
    out = {}
    for freq, step in (("15min", _NS_15MIN), ("day", _NS_DAY)):
        bucket_ns = objs.start_ns[r] - objs.start_ns[r] % step
        buckets, b_idx = np.unique(bucket_ns, return_inverse=True)
        key = objs.obj * len(buckets) + b_idx
        order, starts, _ = _groups(key)
        gid = np.empty(len(key), dtype=np.int64)
        gid[order] = np.cumsum(np.r_[True, np.diff(key[order]) != 0]) - 1
        first = order[starts]
        frame = pd.DataFrame({
            "object_kind": objs.kinds[objs.obj[first]],
            "object": objs.names[objs.obj[first]],
            "bucket": pd.to_datetime(bucket_ns[first], unit="ns", utc=True),
        })  # fmt: skip
        n = len(starts)
        frame["pdd_kll"] = _kll_column(gid, pdd[r], n)
        frame["duration_kll"] = _kll_column(gid, duration[r], n)
        frame["customers_hll"] = _hll_column(gid, np.asarray(number_codes)[r], items, n)
        out[freq] = frame
    return out


def file_rows(result: FileResult, assigner: Assigner) -> pa.Table:
    """Warehouse rows (:data:`~cemkit.warehouse.table.KQI_SCHEMA`) of one processed file."""
    keys = ["object_kind", "object", "bucket"]
    counters = list(formulas.COUNTERS)
    kqi = result.kqi
    base = kqi.loc[kqi["freq"] == "15min", keys + counters].copy()
    base["object_kind"] = base["object_kind"].astype(object)
    base["object"] = base["object"].astype(object)
    base["bucket"] = pd.to_datetime(base["bucket"], utc=True)
    day = base.assign(bucket=base["bucket"].dt.floor("1D"))
    day = day.groupby(keys, sort=True, as_index=False)[counters].sum()
    frames = []
    all_sketches = _sketch_rows(result.calls, assigner)
    for freq, sums in (("15min", base), ("day", day)):
        sk = all_sketches[freq]
        if len(sk):
            sk["bucket"] = pd.to_datetime(sk["bucket"], utc=True)
            sk["object_kind"] = sk["object_kind"].astype(object)
            sk["object"] = sk["object"].astype(object)
        merged = sums.merge(sk, on=keys, how="left") if len(sums) else sums
        for c in SKETCH_COLUMNS:
            if c not in merged.columns:
                merged[c] = None
        merged.insert(0, "freq", freq)
        merged.insert(1, "period", period_of(merged["bucket"], freq) if len(merged) else [])
        frames.append(merged)
    rows = pd.concat(frames, ignore_index=True)
    rows["source"] = result.sha256
    for c in SKETCH_COLUMNS:
        rows[c] = rows[c].astype(object).where(rows[c].notna(), None)
    return pa.Table.from_pandas(rows[KQI_SCHEMA.names], schema=KQI_SCHEMA, preserve_index=False)


def fingerprint(settings: Settings) -> dict[str, str]:
    """What must be the same for every file of one warehouse: policy, key, model."""
    pol, key = _policy_and_key(settings.policy)
    summary = pol.summary()
    return {
        "cemkit.policy": f"{summary['name']} v{summary['version']} {summary['sha256'][:16]}",
        "cemkit.key": "none" if key is None else f"{key.id} {key.fingerprint}",
        "cemkit.model": assigner_for(settings.model).model.name,
    }


# --- a micro-batch -------------------------------------------------------------------------------
@dataclass
class BatchReport:
    """What one call of :func:`ingest_files` did."""

    offered: int = 0
    skipped: int = 0  #: already in the warehouse (or twice in this batch)
    counted: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    quarantined: int = 0


#: Worker processes kept per count (one pool per process; the watcher reuses it batch after batch).
_POOLS: dict[int, ProcessPoolExecutor] = {}


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes started from a fresh server process, not forked from this one.

    ``forkserver``: this process may run threads (the file-system watcher, Arrow's pools) that a
    plain fork would copy in an unknown state; the server pre-imports the pipeline once, so a
    worker starts warm.
    """
    pool = _POOLS.get(workers)
    if pool is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["cemkit.warehouse.batch"])
        pool = _POOLS[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    return pool


def _file_work(path: str, settings: Settings, sha: str) -> tuple[pa.Table, dict[str, Any], Any]:
    """One file's warehouse rows, ledger entry and protected quarantine (runs in a worker)."""
    result = process_file(path, settings, sha)
    return file_rows(result, assigner_for(settings.model)), result.ledger_entry(), result.quarantine


def default_workers() -> int:
    """Worker processes for a micro-batch: one per core, at most 2 (KQI building is per file)."""
    return max(1, min(2, os.cpu_count() or 1))


def ingest_files(
    store: Store, paths: list[str], settings: Settings, *, workers: int = 1
) -> BatchReport:
    """Count each of ``paths`` into the warehouse once, in one commit (a micro-batch).

    With ``workers`` > 1 and several files to count, the files are processed side by side in
    worker processes (a file's rows depend only on its content); the commit is one either way.
    """
    report = BatchReport(offered=len(paths))
    by_sha: dict[str, str] = {}
    for p in paths:
        by_sha.setdefault(content_sha256(p), p)
    done = store.ingested(list(by_sha))
    todo = {s: p for s, p in by_sha.items() if s not in done}
    report.skipped = len(paths) - len(todo)
    if not todo:
        return report
    store.check_settings(fingerprint(settings))
    if workers > 1 and len(todo) > 1:
        pool = _pool(min(workers, len(todo)))
        futures = [pool.submit(_file_work, p, settings, sha) for sha, p in todo.items()]
        results = [f.result() for f in futures]
    else:
        results = [_file_work(p, settings, sha) for sha, p in todo.items()]
    tables, entries = [], []
    for (rows, entry, quarantine), sha in zip(results, todo, strict=True):
        store.commit_quarantine(quarantine, sha)
        tables.append(rows)
        entries.append(entry)
    counted = store.commit(pa.concat_tables(tables), entries)
    report.counted = counted
    report.skipped += len(entries) - len(counted)
    report.records = sum(e["rows_loaded"] for e in counted)
    report.quarantined = sum(e["rows_quarantined"] for e in counted)
    return report
