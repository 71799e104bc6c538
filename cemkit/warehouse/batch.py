"""Input files → warehouse rows, exactly once.

Each file is processed on its own by :func:`process_file`, the **one** place the warehouse
calls cemkit's pipeline: the file's loader, then the real-time path
(:class:`cemkit.pipeline.BatchProcessor`, one per worker process, kept warm, reloading a changed
policy, key or model; no alerts). A file's rows depend only on its content, never on which
other files shared its micro-batch or worker task, so restarts, batch sizes and the number of
instances cannot change the table. (Calls are correlated within their file: a rotated file is
a time slice of one writer.)

:func:`task_rows` turns processed files into warehouse rows (:func:`file_rows` for one): the
counters are the rollup's (15-minute and day buckets) from its counters-only path
(:func:`cemkit.kqi.rollup.counter_rows`: no KQI table is built), the sketches are built from
the records each row counted, by the codes that path assigned them (the model's
:class:`~cemkit.model.assign.Assigner` and the hierarchy of :mod:`cemkit.kqi.sizes`) and each
record's own counters; the small files of a worker task share one pass.

:func:`ingest_files` counts a micro-batch (a :class:`Batch`): files already in the warehouse are
skipped by content checksum, the rest are split into tasks for the worker processes (several
small files per task, so that they do not pay a round trip each; a large file is a task of its
own), and all their rows are committed at once, each file's policy/key/model fingerprint
checked against the warehouse's.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import multiprocessing
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit import memory
from cemkit.kqi import formulas
from cemkit.kqi.rollup import UNASSIGNED, CounterRows, counter_rows
from cemkit.kqi.sizes import ancestor_index, distinct, expand, hierarchy_of
from cemkit.model.assign import Assigner
from cemkit.pipeline import BatchProcessor
from cemkit.pipeline import processor as pipeline_processor
from cemkit.warehouse import sketches
from cemkit.warehouse.table import KQI_SCHEMA, SKETCH_COLUMNS, Store, period_of

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
    counters: CounterRows  #: the rollup's counters (15-minute and day buckets), no table
    quarantine: pd.DataFrame  #: protected quarantine rows
    assigner: Assigner  #: the compiled model the rollup used
    settings: dict[str, str]  #: :func:`fingerprint` of the policy, key and model applied

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
#: Buckets the warehouse stores, as the rollup computes them.
_FREQS: tuple[str, ...] = ("15min", "day")


def processor(settings: Settings) -> BatchProcessor:
    """The warm :class:`~cemkit.pipeline.BatchProcessor` of this process for ``settings``.

    No alerts (the warehouse stores none) and no KQI table (the warehouse sums the counters
    itself, :func:`cemkit.kqi.rollup.counter_rows`); kept warm per process by
    :func:`cemkit.pipeline.processor`, it notices a changed policy file, key or model file.
    """
    return pipeline_processor(settings.policy, settings.model, (), alerts=False)


def fingerprint(policy: Any, key: Any, assigner: Assigner) -> dict[str, str]:
    """What must be the same for every file of one warehouse: policy, key, model."""
    summary = policy.summary()
    return {
        "cemkit.policy": f"{summary['name']} v{summary['version']} {summary['sha256'][:16]}",
        "cemkit.key": "none" if key is None else f"{key.id} {key.fingerprint}",
        "cemkit.model": assigner.model.name,
    }


def process_file(path: str | os.PathLike[str], settings: Settings, sha256: str) -> FileResult:
    """Load one file, then protect, correlate and roll it up with :func:`processor`.

    Rows the loader sets aside are protected (same policy and key) and returned as the
    quarantine; counts reconcile (``rows_read == rows_loaded + rows_quarantined``).
    """
    from cemkit.io.api import plan
    from cemkit.io.base import Loader
    from cemkit.privacy.engine import protect

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
            records = (parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
                       ) if parts else loader.meta()  # fmt: skip
    proc = processor(settings)
    batch = proc(records)
    pol, key, assigner = batch.policy, batch.key, batch.assigner
    assert pol is not None  # a processor always applies a policy
    quarantine = pd.concat(quarantines, ignore_index=True) if quarantines else None
    n_quarantined = 0 if quarantine is None else len(quarantine)
    protected_q = (protect(quarantine, pol, key=key, quarantine=True)
                   if quarantine is not None and len(quarantine) else pd.DataFrame())  # fmt: skip
    if len(protected_q) and "file" in protected_q.columns:
        protected_q = protected_q.assign(file=Path(path).name)
    return FileResult(Path(path).name, sha256, read, read - n_quarantined, n_quarantined,
                      batch.records, counter_rows(batch.records, assigner, _FREQS), protected_q,
                      assigner,
                      fingerprint(pol, key, assigner))  # fmt: skip


# --- rows ----------------------------------------------------------------------------------------
_NS_STEP: dict[str, int] = {"15min": 15 * 60 * 10**9, "day": 86_400 * 10**9}
_NAT = np.iinfo(np.int64).min

#: Object layout of a compiled model, kept while it lives (a worker reuses its model).
_LAYOUTS: weakref.WeakKeyDictionary[Assigner, _Layout] = weakref.WeakKeyDictionary()


@dataclass
class _Layout:
    """Object codes of one model: groups ``0..G-1``, unassigned ``G``, customers from ``G+1``."""

    names: np.ndarray  #: object name of each code
    kinds: np.ndarray  #: object kind of each code ("group", "customer")
    n_groups: int
    ancestors: tuple[np.ndarray, np.ndarray]  #: :func:`cemkit.kqi.sizes.ancestor_index`


def _layout(assigner: Assigner) -> _Layout:
    found = _LAYOUTS.get(assigner)
    if found is None:
        g, c = list(assigner.group_names), list(assigner.customer_names)
        found = _LAYOUTS[assigner] = _Layout(
            np.array([*g, UNASSIGNED, *c], dtype=object),
            np.array(["group"] * (len(g) + 1) + ["customer"] * len(c), dtype=object),
            len(g),
            ancestor_index(len(g), hierarchy_of(assigner)),
        )
    return found


@dataclass
class _Counted:
    """Which records each object counts: leaf pairs, and those pairs with every ancestor."""

    leaf_row: np.ndarray  #: record of each leaf pair (its own group; its modeled customer)
    leaf_code: np.ndarray  #: object code of each leaf pair
    row: np.ndarray  #: record of each pair, ancestors included
    code: np.ndarray  #: object code of each pair, ancestors included
    start_ns: np.ndarray  #: int64 UTC nanoseconds of each record's start


def _ancestors(codes: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Every object code once for itself and once per ancestor group: (source index, code)."""
    g = layout.n_groups
    is_group = codes <= g
    at = np.flatnonzero(is_group)
    src, anc = expand(np.where(codes[at] == g, -1, codes[at]), g, layout.ancestors)
    rest = np.flatnonzero(~is_group)  # modeled customers: no hierarchy
    return (np.concatenate([at[src], rest]),
            np.concatenate([np.where(anc < 0, g, anc), codes[rest]]))  # fmt: skip


def _counted(counters: CounterRows, layout: _Layout) -> _Counted:
    """Each record once per object it counts for, as the rollup counted it.

    Its group (the unassigned group when none) and every ancestor (the hierarchy as
    :func:`cemkit.kqi.sizes.expand` applies it); its modeled customer (originating legs, as
    :func:`cemkit.kqi.rollup.counter_rows` gives it). Records without a start (the rollup
    counts them nowhere) are left out.
    """
    t, g, cust = counters.start_ns, counters.group, counters.customer
    rows = np.arange(len(g), dtype=np.int64)
    codes = np.where(g < 0, layout.n_groups, g)
    mine = np.flatnonzero(cust >= 0)
    rows = np.concatenate([rows, mine])
    codes = np.concatenate([codes, cust[mine] + layout.n_groups + 1])
    keep = t[rows] != _NAT
    rows, codes = rows[keep], codes[keep]
    src, anc = _ancestors(codes, layout)
    return _Counted(rows, codes, rows[src], anc, t)


def stable_order(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` of non-negative int64 keys, by 16-bit radix passes.

    NumPy sorts 16-bit integers stably by a radix sort (linear) and wider ones by timsort:
    keys below 2**16 take one radix pass, keys below 2**32 two (low half, then high half,
    each stable), 3x faster than timsort on the warehouse's (object, bucket) keys. Wider or
    negative keys fall back to ``np.argsort``. The same order: equal keys keep their order.
    """
    if len(key) == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(key.min()), int(key.max())
    if lo < 0 or hi >= 1 << 32:
        return np.argsort(key, kind="stable")
    if hi < 1 << 16:
        return np.argsort(key.astype(np.uint16), kind="stable")
    order = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    return order[np.argsort((key[order] >> 16).astype(np.uint16), kind="stable")]


def _segments(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order sorting ``key``, and start and end (in that order) of each run of equal keys."""
    order = stable_order(key)
    starts, ends = _runs(key[order])
    return order, starts, ends


def _runs(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of each run of equal values of sorted ``k``."""
    if not len(k):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    return starts, np.r_[starts[1:], len(k)].astype(np.int64)


def _row_of(row_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Row (index into ``row_keys``) of each of ``keys``; every key must be a row's."""
    order = np.argsort(row_keys)
    pos = np.minimum(np.searchsorted(row_keys[order], keys), max(len(row_keys) - 1, 0))
    if len(keys) and not np.array_equal(row_keys[order][pos], keys):
        raise RuntimeError("records counted in a bucket the KQI rollup has no row for")
    return order[pos]


def _kll_column(row_keys: np.ndarray, keys: np.ndarray, values: np.ndarray) -> list[Any]:
    """One KLL sketch per row of the non-NaN ``values`` whose ``keys`` are the row's."""
    out: list[Any] = [None] * len(row_keys)
    has = ~np.isnan(values)
    keys, values = keys[has], values[has].astype(np.float32)
    order, starts, ends = _segments(keys)
    values = values[order]
    for r, s, e in zip(_row_of(row_keys, keys[order][starts]), starts, ends, strict=True):
        out[r] = sketches.kll_of(values[s:e])
    return out


@dataclass
class _LeafSketches:
    """HLL sketches of the distinct customers of each leaf object and 15-minute bucket."""

    code: np.ndarray  #: object code of each sketch
    bucket: np.ndarray  #: 15-minute bucket (ns) of each sketch
    sketches: list[Any]


def _leaf_hlls(counted: _Counted, numbers: np.ndarray, items: np.ndarray) -> _LeafSketches:
    """One sketch per (leaf object, 15-minute bucket), of its distinct ``items[numbers]``.

    Each customer is fed once per leaf cell; ancestors and days are unions of these (cheaper
    than feeding every customer again to every ancestor's and every day's sketch).
    """
    step = _NS_STEP["15min"]
    num = numbers[counted.leaf_row]
    has = num >= 0
    code, num = counted.leaf_code[has], num[has]
    buckets, b = np.unique(counted.start_ns[counted.leaf_row[has]] // step, return_inverse=True)
    n_buckets = max(len(buckets), 1)
    width = len(items) + 1
    pairs = distinct((code * n_buckets + b) * width + num)
    cell, item = pairs // width, pairs % width
    starts = _runs(cell)[0]
    bounds = np.r_[starts, len(cell)] if len(cell) else np.zeros(1, np.int64)
    found = sketches.hll_sketches_of(items[item], bounds)
    cells = cell[starts]
    return _LeafSketches(cells // n_buckets, buckets[cells % n_buckets] * step, found)


def _hll_column(row_keys: np.ndarray, leaves: _LeafSketches, layout: _Layout,
                bucket_index: Any) -> list[Any]:  # fmt: skip
    """One serialized HLL per row: the union of the leaf sketches of its objects and buckets."""
    out: list[Any] = [None] * len(row_keys)
    n_codes = len(layout.names)
    src, anc = _ancestors(leaves.code % n_codes, layout)
    anc = anc + (leaves.code // n_codes)[src] * n_codes  # the same file
    keys = bucket_index(anc, leaves.bucket[src])
    order, starts, ends = _segments(keys)
    keys, src = keys[order], src[order]
    for r, s, e in zip(_row_of(row_keys, keys[starts]), starts, ends, strict=True):
        out[r] = sketches.hll_union_of([leaves.sketches[i] for i in src[s:e]])
    return out


def file_rows(result: FileResult) -> pa.Table:
    """Warehouse rows (:data:`~cemkit.warehouse.table.KQI_SCHEMA`) of one processed file."""
    return task_rows([result])


#: Where the sketches' values are in a record's counters (:data:`formulas.COUNTERS`).
_AT = {c: formulas.COUNTERS.index(c) for c in ("pdd_count", "answered", "conversation_ms")}


def _object_rows(result: FileResult, layout: _Layout) -> list[tuple[str, np.ndarray, np.ndarray,
                                                                      np.ndarray]]:  # fmt: skip
    """The file's counter rows per freq: (freq, object code, bucket ns, sums[C, rows])."""
    out = []
    for (kind, freq), (code, bucket, sums) in result.counters.rows.items():
        obj = (np.where(code < 0, layout.n_groups, code) if kind == "group"
               else code + layout.n_groups + 1)  # fmt: skip
        out.append((freq, obj, bucket, sums))
    return out


def _number_strings(calls: pd.DataFrame, column: str) -> pa.Array:
    """The customer numbers (protected) of ``calls`` as one Arrow string array."""
    if column not in calls.columns:
        return pa.nulls(len(calls), pa.string())
    values = calls[column]
    arrow = getattr(values.array, "_pa_array", None)  # string[pyarrow]: no copy
    if arrow is not None and pa.types.is_string(arrow.type):
        return arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow
    return pa.array(values.astype("string[pyarrow]").array._pa_array.combine_chunks(),
                    pa.string())  # fmt: skip


def task_rows(results: list[FileResult]) -> pa.Table:
    """Warehouse rows of processed files, each row of exactly one file (its ``source``).

    The counters are each file's rollup counters unchanged
    (:func:`cemkit.kqi.rollup.counter_rows`: 15-minute and day buckets, every object); each
    row's sketches are built from the values of the records that row counted (the same
    assignment, the same buckets): KLL of the post-dial delay and of the answered duration,
    HLL of the distinct customers. Everything in NumPy and Arrow over integer codes of (file,
    object, bucket): the files of a worker task share one pass (the per-call costs are paid
    once per task, not once per file), and a file's rows are the same as when it is alone.
    """
    results = [r for r in results if r.counters.rows]
    if not results:
        return KQI_SCHEMA.empty_table()
    if len(results) > 1 and any(r.assigner is not results[0].assigner for r in results):
        return pa.concat_tables([task_rows([r]) for r in results])  # another model mid-task
    assigner = results[0].assigner
    layout = _layout(assigner)
    n_codes = len(layout.names)
    found = [(i, *part) for i, r in enumerate(results) for part in _object_rows(r, layout)]
    row_file = np.concatenate([np.full(len(p[2]), p[0], dtype=np.int64) for p in found])
    row_code = np.concatenate([p[2] for p in found])
    row_bucket = np.concatenate([p[3] for p in found])
    row_freq = np.concatenate([np.full(len(p[2]), p[1], dtype=object) for p in found])
    sums = np.concatenate([p[4] for p in found], axis=1)
    row_obj = row_file * n_codes + row_code  # (file, object)

    sizes = [len(r.calls) for r in results]
    first = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    counted: list[_Counted] = []
    for i, r in enumerate(results):  # each file's pairs, in the task's record and object codes
        pairs = _counted(r.counters, layout)
        counted.append(_Counted(pairs.leaf_row + first[i], pairs.leaf_code + i * n_codes,
                                pairs.row + first[i], pairs.code + i * n_codes,
                                pairs.start_ns))  # fmt: skip
    leaf_row = np.concatenate([c.leaf_row for c in counted])
    leaf_code = np.concatenate([c.leaf_code for c in counted])
    rec_row = np.concatenate([c.row for c in counted])
    obj = np.concatenate([c.code for c in counted])
    start_ns = np.concatenate([r.counters.start_ns for r in results])
    block = np.concatenate([r.counters.block for r in results])
    pdd = np.concatenate([
        pd.to_numeric(r.calls["pdd_ms"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if "pdd_ms" in r.calls.columns else np.full(len(r.calls), np.nan) for r in results
    ])  # fmt: skip
    pdd = np.where(block[:, _AT["pdd_count"]] > 0, np.rint(pdd), np.nan)
    duration = np.where(block[:, _AT["answered"]] > 0,
                        block[:, _AT["conversation_ms"]] / 1000.0, np.nan)  # fmt: skip
    # each file's customers coded in their order of first appearance in that file: a sketch
    # (of one file's cell) is fed its customers in an order that depends on the file only, not
    # on the other files of the task (HLL estimates do)
    col = assigner.model.numbers.column
    codes, dictionaries, base = [], [], 0
    for r in results:
        encoded = pc.dictionary_encode(_number_strings(r.calls, col))
        codes.append(encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
                     if encoded.null_count == 0 else
                     pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64))  # fmt: skip
        codes[-1] = np.where(codes[-1] >= 0, codes[-1] + base, -1)
        dictionaries.append(encoded.dictionary)
        base += len(encoded.dictionary)
    items = np.asarray(pa.concat_arrays(dictionaries).to_numpy(zero_copy_only=False), dtype=object)
    leaves = _leaf_hlls(_Counted(leaf_row, leaf_code, rec_row, obj, start_ns),
                        np.concatenate(codes), items)  # fmt: skip
    t = start_ns[rec_row]
    pdd, duration = pdd[rec_row], duration[rec_row]

    columns: dict[str, list[Any]] = {c: [None] * len(row_obj) for c in SKETCH_COLUMNS}
    periods = np.empty(len(row_obj), dtype=object)
    for freq in _FREQS:
        step = _NS_STEP[freq]
        at = np.flatnonzero(row_freq == freq)
        if not len(at):
            continue
        buckets, inverse = np.unique(row_bucket[at], return_inverse=True)

        def index(objects: np.ndarray, ns: np.ndarray, buckets: np.ndarray = buckets,
                  step: int = step) -> np.ndarray:  # fmt: skip
            """Key of (file and object, bucket of ``ns``): the rows' own buckets, ranked."""
            floor = ns - ns % step
            pos = np.minimum(np.searchsorted(buckets, floor), len(buckets) - 1)
            if len(floor) and not np.array_equal(buckets[pos], floor):
                raise RuntimeError("records counted in a bucket the KQI rollup has no row for")
            return objects * len(buckets) + pos

        row_keys = row_obj[at] * len(buckets) + inverse
        keys = index(obj, t)
        made = {name: _kll_column(row_keys, keys, values)
                for name, values in (("pdd_kll", pdd), ("duration_kll", duration))}  # fmt: skip
        made["customers_hll"] = _hll_column(row_keys, leaves, layout, index)
        for name, blobs in made.items():
            for j, blob in zip(at, blobs, strict=True):
                columns[name][j] = blob
        labels = period_of(pd.Series(pd.to_datetime(buckets, unit="ns", utc=True)), freq)
        periods[at] = labels[inverse]
    shas = np.array([r.sha256 for r in results], dtype=object)
    arrays: dict[str, Any] = {
        "freq": pa.array(row_freq, pa.string()),
        "period": pa.array(periods, pa.string()),
        "bucket": pa.array(row_bucket // 1000, pa.timestamp("us", tz="UTC")),
        "object_kind": pa.array(layout.kinds[row_code], pa.string()),
        "object": pa.array(layout.names[row_code], pa.string()),
    }
    for i, c in enumerate(formulas.COUNTERS):
        arrays[c] = pa.array(sums[i])
    for c in SKETCH_COLUMNS:
        arrays[c] = pa.array(columns[c], pa.binary())
    arrays["source"] = pa.array(shas[row_file], pa.string())
    return pa.table(arrays, schema=KQI_SCHEMA)


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
#: Modules a worker imports before its first task (the forkserver imports them once).
_PRELOAD = ["cemkit.warehouse.batch", "cemkit.io.api", "cemkit.privacy.engine", "cemkit.kqi.rollup"]


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes started from a fresh server process, not forked from this one.

    ``forkserver``: this process may run threads (the file-system watcher, Arrow's pools) that a
    plain fork would copy in an unknown state; the server pre-imports the pipeline once, so a
    worker starts warm. Each worker runs the pipeline's threaded steps on its share of the
    cores (:func:`worker_threads`): with one worker per core, more threads per worker only add
    their hand-offs (10-20 % more CPU per file, measured with 2 workers on 2 cores).
    """
    pool = _POOLS.get(workers)
    if pool is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        pool = _POOLS[workers] = ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_start_worker,
            initargs=(worker_threads(workers), os.getpid()),
        )  # fmt: skip
    return pool


def worker_threads(workers: int) -> int:
    """Threads of a worker's threaded steps (``config.CORRELATE_THREADS``): its share of cores."""
    from cemkit import config

    return max(1, min(int(config.CORRELATE_THREADS), (os.cpu_count() or 1) // max(1, workers)))


def _start_worker(threads: int, owner: int) -> None:
    """In each worker process, before its first task: the threads of :func:`worker_threads`.

    And a watch on the process that owns the pool (``owner``): a worker's task queue holds both
    ends of its pipe, so a worker never sees its owner die; a ``cemkit watch`` killed by a
    scheduler or the OOM killer would leave its workers (and the fork server, which they keep
    alive) running for ever. The worker exits within a second of its owner.
    """
    import threading

    from cemkit import config

    config.CORRELATE_THREADS = threads
    memory.apply()  # the memory a worker frees, it keeps for its next file
    threading.Thread(target=_exit_with, args=(owner,), daemon=True,
                     name="cemkit-owner-watch").start()  # fmt: skip


def _exit_with(owner: int, every_s: float = 0.5) -> None:
    """Exit this process as soon as process ``owner`` is gone (polled every ``every_s`` s)."""
    import time

    while True:
        time.sleep(every_s)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # the id now names another user's process: the owner is gone
            os._exit(0)


#: What a task gives back per file: rows, ledger entry, protected quarantine, fingerprint.
FileRows = tuple[pa.Table, dict[str, Any], pd.DataFrame, dict[str, str]]


#: Records whose sketches a worker builds in one pass: small files share one, a large file has
#: its own (concatenating large frames costs more than the per-call costs it saves).
TASK_RECORDS = 20_000


def _task(files: list[tuple[str, str]], settings: Settings) -> list[FileRows]:
    """Several files in one worker task (one round trip for all).

    Each file goes through the pipeline on its own (:func:`process_file`); their warehouse rows
    are built together (:func:`task_rows`, up to :data:`TASK_RECORDS` records at once).
    """
    out: list[FileRows] = []
    group: list[FileResult] = []

    def flush() -> None:
        rows = task_rows(group)
        for r in group:
            mine = rows.filter(pc.equal(rows["source"], r.sha256))
            out.append((mine, r.ledger_entry(), r.quarantine, r.settings))
        group.clear()

    for path, sha in files:
        result = process_file(path, settings, sha)
        if group and sum(len(r.calls) for r in group) + len(result.calls) > TASK_RECORDS:
            flush()
        group.append(result)
    if group:
        flush()
    return out


#: Bytes of input above which files get tasks of their own (~20K Asterisk records): a task
#: of several large files makes the batch wait for the worker that got it, while the other
#: one idles; one per task, the pool hands the next file to whichever worker is free.
TASK_BYTES = 8 << 20


def _tasks(files: list[tuple[str, str]], n: int) -> list[list[tuple[str, str]]]:
    """``files`` split into tasks of about equal bytes (largest file first).

    ``n`` tasks (one per worker) when the files are small, more when they hold more than
    :data:`TASK_BYTES` per task: at most one file per task.
    """
    sizes = {path: os.path.getsize(path) for path, _ in files}
    wanted = max(n, -(-sum(sizes.values()) // TASK_BYTES))
    bins: list[list[tuple[str, str]]] = [[] for _ in range(min(wanted, len(files)))]
    load = [0] * len(bins)
    for item in sorted(files, key=lambda f: -sizes[f[0]]):
        i = load.index(min(load))
        bins[i].append(item)
        load[i] += sizes[item[0]]
    return bins


def default_workers() -> int:
    """Worker processes for a micro-batch: one per core, at most 2 (KQI building is per file)."""
    return max(1, min(2, os.cpu_count() or 1))


class Batch:
    """A micro-batch under way: its new files handed to the worker processes, not yet committed.

    Created, it checksums the files, drops those the warehouse already counted and submits the
    rest (``background``: always to the workers, so that the caller can go on listing and
    committing other batches; otherwise a single file is processed here). :meth:`commit` waits
    for the rows and counts them in one commit (:func:`ingest_files` is both steps at once).
    """

    def __init__(self, store: Store, paths: list[str], settings: Settings, *, workers: int = 1,
                 background: bool = False) -> None:  # fmt: skip
        self.store = store
        self.report = BatchReport(offered=len(paths))
        by_sha: dict[str, str] = {}
        for p in paths:
            by_sha.setdefault(content_sha256(p), p)
        done = store.ingested(list(by_sha))
        self.todo = [(p, s) for s, p in by_sha.items() if s not in done]
        self.report.skipped = len(paths) - len(self.todo)
        self._futures: list[Future[list[FileRows]]] = []
        self._results: list[FileRows] | None = None
        if not self.todo:
            self._results = []
        elif workers > 1 and (background or len(self.todo) > 1):
            pool = _pool(workers)
            self._futures = [pool.submit(_task, chunk, settings)
                             for chunk in _tasks(self.todo, workers)]  # fmt: skip
        else:
            self._results = _task(self.todo, settings)

    def futures(self) -> list[Future[list[FileRows]]]:
        """The worker tasks still to wait for."""
        return self._futures

    def done(self) -> bool:
        """Whether every file's rows are ready (:meth:`commit` will not wait for workers)."""
        return all(f.done() for f in self._futures)

    def commit(self) -> BatchReport:
        """Check each file's settings against the warehouse and count all new files at once."""
        results = self._results
        if results is None:
            found = {r[1]["sha256"]: r for f in self._futures for r in f.result()}
            results = [found[s] for _, s in self.todo]
        report = self.report
        if not results:
            return report
        for wanted in dict.fromkeys(tuple(r[3].items()) for r in results):
            self.store.check_settings(dict(wanted))
        self.store.commit_quarantine([(r[2], r[1]["sha256"]) for r in results])
        tables, entries = [r[0] for r in results], [r[1] for r in results]
        counted = self.store.commit(pa.concat_tables(tables), entries)
        report.counted = counted
        report.skipped += len(entries) - len(counted)
        report.records = sum(e["rows_loaded"] for e in counted)
        report.quarantined = sum(e["rows_quarantined"] for e in counted)
        return report


def ingest_files(
    store: Store, paths: list[str], settings: Settings, *, workers: int = 1
) -> BatchReport:
    """Count each of ``paths`` into the warehouse once, in one commit (a micro-batch).

    With ``workers`` > 1 and several files to count, the files are split into worker tasks
    (:func:`_tasks`; a file's rows depend only on its content); the commit is one either way.
    Every file's rows are checked against the warehouse's policy, key and model (as the worker
    applied them: a key or policy changed during a long ``watch`` is noticed) before the commit.
    """
    return Batch(store, paths, settings, workers=workers).commit()
