"""Compaction: one row per object and bucket in each partition, merged, then a checkpoint."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties

from cemkit.kqi import formulas
from cemkit.warehouse import sketches
from cemkit.warehouse.table import (
    KQI_SCHEMA,
    MAX_RETRIES,
    SORT_KEYS,
    Store,
    _is_conflict,
    write_rows,
)

_MERGE = {"pdd_kll": sketches.merge_kll, "duration_kll": sketches.merge_kll,
          "customers_hll": sketches.merge_hll}  # fmt: skip


def merged(rows: pa.Table) -> pa.Table:
    """One row per (freq, period, object_kind, object, bucket): counters summed, sketches merged.

    The result is sorted by :data:`~cemkit.warehouse.table.SORT_KEYS` (row-group statistics
    then prune a report on a few objects). A key's only row keeps its sketches as they are.
    """
    if rows.num_rows == 0:
        return rows.cast(KQI_SCHEMA)
    rows = rows.sort_by([(k, "ascending") for k in SORT_KEYS])
    n = rows.num_rows
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in SORT_KEYS:
        col = rows[key]
        change[1:] |= pc.not_equal(col.slice(1), col.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(change)
    sizes = np.diff(np.r_[starts, n])
    out: dict[str, Any] = {k: rows[k].take(pa.array(starts)) for k in SORT_KEYS}
    for c in formulas.COUNTERS:
        out[c] = pa.array(np.add.reduceat(rows[c].to_numpy().astype(np.int64), starts))
    many = np.flatnonzero(sizes > 1)
    for col, fn in _MERGE.items():
        first = rows[col].take(pa.array(starts))
        if not len(many):
            out[col] = first
            continue
        values = first.to_pylist()
        for i in many:
            lo = int(starts[i])
            values[i] = fn(rows[col].slice(lo, int(sizes[i])).to_pylist())
        out[col] = pa.array(values, pa.binary())
    out["source"] = pa.nulls(len(starts), pa.string())
    return pa.table({c: out[c] for c in KQI_SCHEMA.names}).cast(KQI_SCHEMA)


def compact(store: Store, *, vacuum: bool = False, min_files: int = 2) -> str:
    """Rewrite each partition of ``min_files`` data files or more (see ``Warehouse.compact``)."""
    table = store.table()
    adds = pa.table(table.get_add_actions(flatten=True)).to_pandas()
    if adds.empty:
        return "nothing to compact"
    part_cols = [c for c in adds.columns if c.startswith("partition.")]
    # a compacted file has no source (null in every row); a compacted partition may span
    # several files (TARGET_FILE_SIZE) and counts as one write, each ingested file as one
    if "null_count.source" in adds.columns:
        compacted = adds["null_count.source"].fillna(-1).to_numpy() == adds["num_records"]
    else:
        compacted = np.zeros(len(adds), dtype=bool)
    adds = adds.assign(_ingested=~compacted, _compacted=compacted)
    per = adds.groupby(part_cols)[["_ingested", "_compacted"]].sum()
    writes = per["_ingested"] + (per["_compacted"] > 0)
    todo = [dict(zip(["freq", "period"], (k if isinstance(k, tuple) else (k,)), strict=False))
            for k, n in writes.items() if n >= min_files]  # fmt: skip
    done, skipped = 0, 0
    for part in todo:
        predicate = f"freq = '{part['freq']}' AND period = '{part['period']}'"
        for _ in range(MAX_RETRIES):
            table = store.table()
            ds = table.to_pyarrow_dataset(
                file_pruning_predicate=[
                    ("freq", "=", part["freq"]),
                    ("period", "=", part["period"]),
                ]
            )
            frame = ds.to_table()
            if frame.num_rows == 0:
                break
            rows = merged(frame)
            props = CommitProperties(custom_metadata={"cemkit.compacted": predicate})
            try:
                write_rows(
                    table, rows, mode="overwrite", predicate=predicate, commit_properties=props
                )
                done += 1
                break
            except Exception as err:
                if not _is_conflict(err):
                    raise
        else:
            skipped += 1
    table = store.table()
    table.create_checkpoint()
    msg = f"compacted {done} partition(s)" + (f", {skipped} left (busy)" if skipped else "")
    if vacuum:
        removed: Any = table.vacuum(retention_hours=0, dry_run=False,
                                    enforce_retention_duration=False)  # fmt: skip
        msg += f", vacuumed {len(removed)} unreferenced file(s)"
    return msg
