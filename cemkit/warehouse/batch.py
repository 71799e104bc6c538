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
import os
import shutil
import tempfile
from collections.abc import Iterator
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
    from cemkit.pipeline import process_batch
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
    batch = process_batch(records, policy=settings.policy, model=settings.model,
                          freqs=("15min",))  # fmt: skip
    return FileResult(Path(path).name, sha256, read, read - n_quarantined, n_quarantined,
                      batch.records, batch.kqi, protected_q)  # fmt: skip


# --- rows ----------------------------------------------------------------------------------------
def _objects(calls: pd.DataFrame, assigner: Assigner) -> pd.DataFrame:
    """Each record once per object it counts for: its group and every ancestor; its customer.

    Same assignment as :func:`cemkit.kqi.rollup.rollup`: groups count every record, modeled
    customers their originating legs only.
    """
    if calls.empty:
        return pd.DataFrame(columns=["object_kind", "object", "bucket", "row"])
    assigned = assigner.assign(calls)
    start = pd.to_datetime(assigned["start"], utc=True)
    bucket = start.dt.floor("15min").to_numpy()
    names = np.array([*assigner.group_names, UNASSIGNED], dtype=object)
    codes = np.asarray(assigned[GROUP_COLUMN].cat.codes, dtype=np.int64)
    chains = [[i, *assigner._chain_index[i]] for i in range(len(assigner.group_names))]
    frames = []
    rows = np.arange(len(assigned))
    depth = max((len(c) for c in chains), default=1)
    lookup = np.full((len(chains) + 1, depth), -2, dtype=np.int64)
    for i, chain in enumerate(chains):
        lookup[i, : len(chain)] = chain
    lookup[-1, 0] = len(names) - 1  # unassigned
    for d in range(depth):
        obj = lookup[np.where(codes < 0, len(chains), codes), d]
        keep = obj > -2
        frames.append(pd.DataFrame({"object_kind": "group", "object": names[obj[keep]],
                                    "bucket": bucket[keep], "row": rows[keep]}))  # fmt: skip
    if assigner.customer_names:
        cust = np.asarray(assigned[CUSTOMER_OBJECT_COLUMN].cat.codes, dtype=np.int64)
        orig = (assigned["leg"] != "term").fillna(True).to_numpy(dtype=bool) if (
            "leg" in assigned.columns) else np.ones(len(assigned), dtype=bool)  # fmt: skip
        keep = orig & (cust >= 0)
        cnames = np.array(assigner.customer_names, dtype=object)
        frames.append(pd.DataFrame({"object_kind": "customer", "object": cnames[cust[keep]],
                                    "bucket": bucket[keep], "row": rows[keep]}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _sketch_rows(calls: pd.DataFrame, assigner: Assigner) -> dict[str, pd.DataFrame]:
    """Sketches per (object_kind, object, bucket), for each stored freq (``15min``, ``day``)."""
    keys = ["object_kind", "object", "bucket"]
    objs = _objects(calls, assigner)
    if objs.empty:
        empty = pd.DataFrame(columns=[*keys, *SKETCH_COLUMNS])
        return {"15min": empty, "day": empty}
    contrib = formulas.contributions(calls)
    pdd = pd.to_numeric(calls["pdd_ms"], errors="coerce").to_numpy(dtype=float, na_value=np.nan) \
        if "pdd_ms" in calls.columns else np.full(len(calls), np.nan)  # fmt: skip
    pdd = np.where(contrib["pdd_count"].to_numpy() > 0, np.rint(pdd), np.nan)
    answered = contrib["answered"].to_numpy() > 0
    duration = np.where(answered, contrib["conversation_ms"].to_numpy() / 1000.0, np.nan)
    col = assigner.model.numbers.column
    numbers = calls[col].astype("string[pyarrow]").to_numpy(dtype=object, na_value=None) \
        if col in calls.columns else np.full(len(calls), None, dtype=object)  # fmt: skip
    r = objs["row"].to_numpy()
    out = {}
    for freq in ("15min", "day"):
        bucket = pd.to_datetime(objs["bucket"], utc=True)
        frame = objs.assign(bucket=bucket.dt.floor("1D") if freq == "day" else bucket)
        gid = frame.groupby(keys, sort=True).ngroup().to_numpy()
        order = np.argsort(gid, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(gid[order]) != 0])
        ends = np.r_[starts[1:], len(order)]
        first = frame.iloc[order[starts]][keys].reset_index(drop=True)
        rows_sorted = r[order]
        p_sorted, d_sorted, n_sorted = pdd[rows_sorted], duration[rows_sorted], numbers[rows_sorted]
        pdd_sk, dur_sk, cust_sk = [], [], []
        for lo, hi in zip(starts, ends, strict=True):
            p, d, n = p_sorted[lo:hi], d_sorted[lo:hi], n_sorted[lo:hi]
            pdd_sk.append(sketches.kll_of(p[~np.isnan(p)]))
            dur_sk.append(sketches.kll_of(d[~np.isnan(d)]))
            cust_sk.append(sketches.hll_of({x for x in n if x is not None}))
        first["pdd_kll"], first["duration_kll"], first["customers_hll"] = pdd_sk, dur_sk, cust_sk
        out[freq] = first
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


def ingest_files(store: Store, paths: list[str], settings: Settings) -> BatchReport:
    """Count each of ``paths`` into the warehouse once, in one commit (a micro-batch)."""
    report = BatchReport(offered=len(paths))
    by_sha: dict[str, str] = {}
    for p in paths:
        by_sha.setdefault(content_sha256(p), p)
    done = store.ingested(list(by_sha))
    todo = {s: p for s, p in by_sha.items() if s not in done}
    report.skipped = len(paths) - len(todo)
    if not todo:
        return report
    assigner = assigner_for(settings.model)
    store.check_settings(fingerprint(settings))
    tables, entries = [], []
    for sha, p in todo.items():
        result = process_file(p, settings, sha)
        store.commit_quarantine(result.quarantine, sha)
        tables.append(file_rows(result, assigner))
        entries.append(result.ledger_entry())
    counted = store.commit(pa.concat_tables(tables), entries)
    report.counted = counted
    report.skipped += len(entries) - len(counted)
    report.records = sum(e["rows_loaded"] for e in counted)
    report.quarantined = sum(e["rows_quarantined"] for e in counted)
    return report
