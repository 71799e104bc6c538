"""How many distinct customers stand behind each node group: the basis of report-level k.

A report must not show a group that hides fewer than k customers (the policy's minimum group
size, :mod:`cemkit.privacy.suppress`). Counts are exact: each customer is counted once in its
group and once in every ancestor group, however many records or nodes it has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cemkit.model.assign import Assigner
from cemkit.model.spec import ServiceModel

#: Label of records that no group rule matched.
UNASSIGNED = "(unassigned)"


def _pairs(part: pd.DataFrame, assigner: Assigner, column: str) -> pd.DataFrame:
    """(group code, customer) pairs of a partition, the group and each of its ancestors."""
    codes = assigner.group_codes(part[column], part.get("node"))
    chains = [[i, *assigner._chain_index[i]] for i in range(len(assigner.group_names))]
    depth = max((len(c) for c in chains), default=1)
    lookup = np.full((len(chains) + 1, depth), -2, dtype=np.int64)  # row -1 → unassigned
    for i, chain in enumerate(chains):
        lookup[i, : len(chain)] = chain
    lookup[-1, 0] = -1
    customers = part[column].astype("string[pyarrow]").to_numpy()
    rows = [pd.DataFrame({"code": lookup[codes, d], "customer": customers}) for d in range(depth)]
    out = pd.concat(rows, ignore_index=True)
    out = out[(out["code"] > -2) & pd.notna(out["customer"])]
    return out.drop_duplicates()


def group_sizes(records: Any, model: ServiceModel | Assigner) -> pd.DataFrame:
    """Distinct customers per node group (ancestors included), for pandas or Dask records.

    Returns
    -------
    pandas.DataFrame
        Columns ``group`` and ``customers``; records no rule matched count under
        ``(unassigned)``.
    """
    assigner = model if isinstance(model, Assigner) else Assigner(model)
    column = assigner.model.numbers.column
    cols = [c for c in (column, "node") if c in records.columns]
    if hasattr(records, "map_partitions"):
        meta = pd.DataFrame({"code": pd.Series([], dtype="int64"),
                             "customer": pd.Series([], dtype="string[pyarrow]")})  # fmt: skip
        pairs = records[cols].map_partitions(_pairs, assigner, column, meta=meta)
        counts = pairs.drop_duplicates(split_out=max(1, records.npartitions // 8))
        sizes = counts.groupby("code").size().compute()
    else:
        sizes = _pairs(records[cols], assigner, column).groupby("code").size()
    names = np.array([*assigner.group_names, UNASSIGNED], dtype=object)
    idx = sizes.index.to_numpy()
    return pd.DataFrame(
        {"group": names[np.where(idx < 0, len(names) - 1, idx)],
         "customers": sizes.to_numpy().astype("int64")}
    ).sort_values("group", ignore_index=True)  # fmt: skip
