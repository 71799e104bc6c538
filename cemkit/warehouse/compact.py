"""Compaction: one row per object and bucket in each partition, merged, then a checkpoint."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
from deltalake import CommitProperties, write_deltalake

from cemkit.kqi import formulas
from cemkit.warehouse import sketches
from cemkit.warehouse.table import KQI_SCHEMA, MAX_RETRIES, Store, _is_conflict

_KEYS = ["freq", "period", "bucket", "object_kind", "object"]
_MERGE = {"pdd_kll": sketches.merge_kll, "duration_kll": sketches.merge_kll,
          "customers_hll": sketches.merge_hll}  # fmt: skip


def _merged(frame: pd.DataFrame) -> pa.Table:
    counters = list(formulas.COUNTERS)
    groups = frame.groupby(_KEYS, sort=True, dropna=False)
    out = groups[counters].sum().reset_index()
    for col, fn in _MERGE.items():
        out[col] = [fn(list(v)) for v in groups[col].agg(list)]
    out["source"] = None
    return pa.Table.from_pandas(out[KQI_SCHEMA.names], schema=KQI_SCHEMA, preserve_index=False)


def compact(store: Store, *, vacuum: bool = False, min_files: int = 2) -> str:
    """Rewrite each partition of ``min_files`` data files or more (see ``Warehouse.compact``)."""
    table = store.table()
    adds = pa.table(table.get_add_actions(flatten=True)).to_pandas()
    if adds.empty:
        return "nothing to compact"
    part_cols = [c for c in adds.columns if c.startswith("partition.")]
    counts = adds.groupby(part_cols).size()
    todo = [dict(zip(["freq", "period"], (k if isinstance(k, tuple) else (k,)), strict=False))
            for k, n in counts.items() if n >= min_files]  # fmt: skip
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
            frame = ds.to_table().to_pandas()
            if frame.empty:
                break
            rows = _merged(frame)
            props = CommitProperties(custom_metadata={"cemkit.compacted": predicate})
            try:
                write_deltalake(table, rows, mode="overwrite", predicate=predicate,
                                commit_properties=props)  # fmt: skip
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
