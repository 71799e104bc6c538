"""Compaction: one row per object and bucket in each partition, merged, then a checkpoint."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import CommitProperties, WriterProperties, write_deltalake

from cemkit.kqi import formulas
from cemkit.warehouse import sketches
from cemkit.warehouse.table import KQI_SCHEMA, MAX_RETRIES, Store, _is_conflict

_KEYS = ["freq", "period", "object_kind", "object", "bucket"]
#: Rows per Parquet row group of compacted files: rows are sorted by object, so a report on a
#: few objects reads only the row groups that hold them (min/max statistics).
ROW_GROUP_ROWS = 8192
_MERGE = {"pdd_kll": sketches.merge_kll, "duration_kll": sketches.merge_kll,
          "customers_hll": sketches.merge_hll}  # fmt: skip


def _merged(frame: pd.DataFrame) -> pa.Table:
    counters = list(formulas.COUNTERS)
    groups = frame.groupby(_KEYS, sort=True, dropna=False)
    out = groups[counters].sum().reset_index()
    single = (groups.size() == 1).to_numpy()
    firsts = groups[list(_MERGE)].first()  # a key's only row keeps its sketches as they are
    for col, fn in _MERGE.items():
        values = np.empty(len(out), dtype=object)
        kept = firsts[col].to_numpy(dtype=object)[single]
        values[single] = [v if isinstance(v, bytes) else None for v in kept]
        many = np.flatnonzero(~single)
        if len(many):
            lists = groups[col].agg(list).to_numpy(dtype=object)
            values[many] = [fn(list(lists[i])) for i in many]
        out[col] = values
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
                                commit_properties=props, writer_properties=WriterProperties(
                                    max_row_group_size=ROW_GROUP_ROWS))  # fmt: skip
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
