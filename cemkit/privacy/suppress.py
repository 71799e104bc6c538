"""Report-level protection: no aggregate row may stand for fewer than k customers.

A policy sets ``report: {min_group_size: k}`` (default
:data:`~cemkit.privacy.policy.DEFAULT_MIN_GROUP_SIZE`). Every aggregate cemkit reports — KQI
tables, rankings, charts — passes through :func:`suppress_small_groups` with the column that
holds the number of *distinct customers* behind each row. Rows under k are

- ``"mask"`` (default): kept, with every value except the group labels blanked, so the reader
  sees that a group exists but learns nothing about it;
- ``"drop"``: removed;
- ``"merge"``: summed into one row labelled ``(other groups)``; if even that row stands for
  fewer than k customers, it is masked too.

The result always says so: a boolean flag column (``suppressed``), a sentence in
:attr:`Suppression.note` (put it under the table or chart) and the same sentence in the
frame's ``attrs["cemkit_suppression"]``.

Examples
--------
>>> import pandas as pd
>>> kqi = pd.DataFrame({"node": ["lon-sw1", "lon-sw2", "man-sw1"],
...                     "customers": [120, 4, 37], "asr": [0.61, 0.25, 0.58]})
>>> result = suppress_small_groups(kqi, "customers", k=10, group_columns=["node"])
>>> result.frame["asr"].tolist()
[0.61, nan, 0.58]
>>> result.note
'1 of 3 group(s) stood for fewer than 10 customers and are masked (values hidden).'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cemkit.errors import SchemaError
from cemkit.privacy.policy import DEFAULT_MIN_GROUP_SIZE, Policy, load_policy

#: Name of the flag column added to every suppressed frame.
FLAG = "suppressed"
#: Key of the note in ``DataFrame.attrs``.
ATTRS_KEY = "cemkit_suppression"
#: Label of the merged row in ``how="merge"``.
OTHER_LABEL = "(other groups)"

How = Literal["mask", "drop", "merge"]


@dataclass(frozen=True)
class Suppression:
    """What :func:`suppress_small_groups` returns: the safe frame and what was done to it."""

    frame: pd.DataFrame
    note: str
    k: int
    groups: int
    suppressed_groups: int
    how: str

    def _repr_html_(self) -> str:
        """Notebook display: the table with the note under it."""
        import html

        return f"{self.frame.to_html()}\n<p><em>{html.escape(self.note)}</em></p>"


def min_group_size(policy: Policy | str | Path | None = None, k: int | None = None) -> int:
    """The k to enforce: an explicit ``k``, else the policy's ``report.min_group_size``.

    Without either, :data:`~cemkit.privacy.policy.DEFAULT_MIN_GROUP_SIZE`. An explicit ``k``
    smaller than the policy's is refused: a report cannot weaken the policy.

    Examples
    --------
    >>> min_group_size("strict"), min_group_size()
    (20, 10)
    """
    floor = load_policy(policy).report.min_group_size if policy is not None else None
    if k is None:
        return floor if floor is not None else DEFAULT_MIN_GROUP_SIZE
    if k < 2:
        raise ValueError(f"k must be at least 2 (got {k})")
    if floor is not None and k < floor:
        raise ValueError(
            f"k={k} is below the policy's report.min_group_size={floor}; "
            "a report may raise k but never lower it"
        )
    return k


def suppress_small_groups(
    frame: Any,
    count_column: str,
    *,
    policy: Policy | str | Path | None = None,
    k: int | None = None,
    how: How = "mask",
    group_columns: Sequence[str] | None = None,
    sum_columns: Sequence[str] | None = None,
) -> Suppression:
    """Suppress or merge the rows of an aggregate that stand for fewer than k customers.

    Parameters
    ----------
    frame : pandas.DataFrame or dask.dataframe.DataFrame
        An aggregate: one row per group (node group, prefix, hour, ...). A Dask frame is
        computed (aggregates are small).
    count_column : str
        Column with the number of distinct customers behind each row.
    policy : Policy, str or path, optional
        Policy whose ``report.min_group_size`` is the k to enforce.
    k : int, optional
        Explicit k; may raise the policy's k, never lower it.
    how : {"mask", "drop", "merge"}
        What to do with small groups (see the module documentation).
    group_columns : sequence of str, optional
        Label columns left visible when masking and set to ``(other groups)`` when merging;
        by default the index is the label and every column is a value.
    sum_columns : sequence of str, optional
        For ``how="merge"``: columns summed into the merged row (counts, e.g. calls). The
        count column is always summed; other value columns are left empty in the merged row,
        since ratios and means cannot be added up. Summing distinct-customer counts is exact
        when the groups hold disjoint customers (node groups, prefixes) and an upper bound
        otherwise; use disjoint groups with ``merge``.

    Returns
    -------
    Suppression
        ``frame`` with a boolean ``suppressed`` column and ``attrs["cemkit_suppression"]``,
        the ``note`` to show with it, ``k`` and counts of groups.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"prefix": ["+4420", "+4416", "+4411"], "customers": [50, 3, 2],
    ...                   "calls": [900, 20, 7]})
    >>> r = suppress_small_groups(t, "customers", k=10, how="merge", group_columns=["prefix"],
    ...                           sum_columns=["calls"])
    >>> r.frame[["prefix", "customers", "calls", "suppressed"]].values.tolist()
    [['+4420', 50, 900, False], ['(other groups)', <NA>, <NA>, True]]
    """
    if how not in ("mask", "drop", "merge"):
        raise ValueError(f"how must be 'mask', 'drop' or 'merge', not {how!r}")
    if type(frame).__module__.startswith("dask"):
        frame = frame.compute()
    if count_column not in frame.columns:
        raise SchemaError(
            f"aggregate has no column {count_column!r} with the number of customers per row",
            hint=f"columns are: {', '.join(map(str, frame.columns))}",
        )
    k = min_group_size(policy, k)
    labels = list(group_columns or [])
    missing = [c for c in [*labels, *(sum_columns or [])] if c not in frame.columns]
    if missing:
        raise SchemaError(f"aggregate has no column(s) {', '.join(missing)}",
                          hint="name existing label and sum columns")  # fmt: skip
    counts = pd.to_numeric(frame[count_column], errors="coerce")
    # A row with an unknown count is treated as small: never show what cannot be checked.
    small = (counts.isna() | (counts < k)).to_numpy(dtype=bool)
    n_small, n_groups = int(small.sum()), len(frame)
    values = [c for c in frame.columns if c not in labels and c != FLAG]

    if how == "drop":
        out = frame.loc[~small].copy()
        out[FLAG] = False
        done = "removed"
    elif how == "mask":
        out = _mask(frame, small, values)
        done = "masked (values hidden)"
    else:
        out = _merge(frame, small, counts, k, labels, values, count_column, sum_columns or [])
        done = "merged into one row '(other groups)'"
    if n_small:
        note = (f"{n_small} of {n_groups} group(s) stood for fewer than {k} customers and are "
                f"{done}.")  # fmt: skip
        if how == "merge" and bool(out[FLAG].iloc[-1]) and _masked_other(out, count_column):
            note += f" Together they still stood for fewer than {k}, so that row is masked."
    else:
        note = f"Every group stands for at least {k} customers; nothing suppressed."
    out.attrs = {**frame.attrs, ATTRS_KEY: note}
    return Suppression(frame=out, note=note, k=k, groups=n_groups, suppressed_groups=n_small,
                       how=how)  # fmt: skip


def _nullable(series: pd.Series) -> pd.Series:
    """The column in a dtype that can hold missing values without changing its meaning."""
    if pd.api.types.is_bool_dtype(series.dtype) and not isinstance(series.dtype, pd.ArrowDtype):
        return series.astype("boolean")
    if pd.api.types.is_integer_dtype(series.dtype) and isinstance(series.dtype, np.dtype):
        prefix = "UInt" if series.dtype.kind == "u" else "Int"
        return series.astype(f"{prefix}{series.dtype.itemsize * 8}")
    return series


def _mask(frame: pd.DataFrame, small: np.ndarray, values: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for c in values:
        col = _nullable(out[c])
        col = col.where(~small) if col.dtype != object else col.mask(small, None)
        out[c] = col
    out[FLAG] = small
    return out


def _masked_other(out: pd.DataFrame, count_column: str) -> bool:
    return bool(pd.isna(out[count_column].iloc[-1]))


def _merge(
    frame: pd.DataFrame,
    small: np.ndarray,
    counts: pd.Series,
    k: int,
    labels: list[str],
    values: list[str],
    count_column: str,
    sum_columns: Sequence[str],
) -> pd.DataFrame:
    big = frame.loc[~small].copy()
    big[FLAG] = False
    if not small.any():
        return big
    rest = frame.loc[small]
    other: dict[str, Any] = {c: OTHER_LABEL for c in labels}
    summed = {count_column, *sum_columns}
    total = counts[small].sum(min_count=1)
    show = bool(pd.notna(total) and total >= k)
    for c in values:
        other[c] = rest[c].sum(min_count=1) if (c in summed and show) else None
    other[FLAG] = True
    row = pd.DataFrame([other], index=[OTHER_LABEL] if not labels else [len(frame)])
    out = pd.concat(
        [
            big.astype({c: _nullable(big[c]).dtype for c in values}),
            row.astype({c: _nullable(big[c]).dtype for c in values}, errors="ignore"),
        ]
    )
    if labels:
        out = out.reset_index(drop=True)
    return out
