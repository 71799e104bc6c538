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


def _key_ranks(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Integer codes of a key column that sort like its values (strings by UTF-8 bytes)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_timestamp(col.type) or pa.types.is_integer(col.type):
        return np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False))
    enc = pc.dictionary_encode(col)  # hashing: the few distinct values are sorted, not the rows
    values = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    rank = np.empty(len(values), dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(len(values))
    return rank[np.asarray(enc.indices.to_numpy(zero_copy_only=False))]


def _order_and_starts(rows: pa.Table) -> tuple[np.ndarray | None, np.ndarray]:
    """Row order by :data:`SORT_KEYS` (None when already in order) and each key's first row.

    ``starts`` index the sorted rows. Rows that come from a writer (ingest, compaction) are
    already sorted, so the order is checked in one vectorized pass before anything is sorted.
    """
    n = rows.num_rows
    ranks = [_key_ranks(rows[k]) for k in SORT_KEYS]

    def scan(keys: list[np.ndarray]) -> tuple[bool, np.ndarray]:
        equal = np.ones(n - 1, dtype=bool)  # adjacent rows equal on the keys seen so far
        decreasing = np.zeros(n - 1, dtype=bool)
        for key in keys:
            step = np.diff(key)
            decreasing |= equal & (step < 0)
            equal &= step == 0
        return not decreasing.any(), equal

    in_order, equal = scan(ranks)
    order = None
    if not in_order:
        order = np.lexsort(ranks[::-1])  # last key = primary
        _, equal = scan([r[order] for r in ranks])
    return order, np.flatnonzero(np.r_[True, ~equal])


def merged(rows: pa.Table) -> pa.Table:
    """One row per (freq, period, object_kind, object, bucket): counters summed, sketches merged.

    The result is sorted by :data:`~cemkit.warehouse.table.SORT_KEYS` (row-group statistics
    then prune a report on a few objects). A key's only row keeps its sketches as they are.
    """
    rows = rows.cast(KQI_SCHEMA)
    if rows.num_rows == 0:
        return rows
    order, starts = _order_and_starts(rows)
    if order is not None:
        rows = rows.take(pa.array(order))
    n = rows.num_rows
    no_source = pa.nulls(len(starts), pa.string())
    if len(starts) == n:  # every key once: the rows as they are, sorted
        return rows.set_column(rows.schema.get_field_index("source"), "source", no_source)
    sizes = np.diff(np.r_[starts, n])
    take = pa.array(starts)
    out: dict[str, Any] = {k: rows[k].take(take) for k in SORT_KEYS}
    for c in formulas.COUNTERS:
        out[c] = pa.array(np.add.reduceat(rows[c].to_numpy().astype(np.int64), starts))
    many = np.flatnonzero(sizes > 1)
    for col, fn in _MERGE.items():
        values = rows[col].take(take).to_pylist()
        for i in many:
            lo = int(starts[i])
            values[i] = fn(rows[col].slice(lo, int(sizes[i])).to_pylist())
        out[col] = pa.array(values, pa.binary())
    out["source"] = no_source
    return pa.table({c: out[c] for c in KQI_SCHEMA.names}).cast(KQI_SCHEMA)


def compact(store: Store, *, vacuum: bool = False, min_files: int = 2) -> str:
    """Rewrite each partition of ``min_files`` data files or more (see ``Warehouse.compact``)."""
    store.ensure_stats_columns()
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
