"""As-of join: for each left row, the right row with the same key nearest in time.

The result equals :func:`pandas.merge_asof` on the same data, but the inputs need not be sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cemkit import config
from cemkit.correlate import _frames, _kernels
from cemkit.errors import SchemaError

_DIRECTIONS = {
    "backward": _kernels.BACKWARD,
    "forward": _kernels.FORWARD,
    "nearest": _kernels.NEAREST,
}


def _by_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def asof_positions(
    left: pd.DataFrame,
    right: pd.DataFrame,
    on: str,
    by: str | Sequence[str] | None = None,
    tolerance: Any = None,
    direction: str = "backward",
    allow_exact_matches: bool = True,
    threads: int | None = None,
) -> np.ndarray:
    """Position in ``right`` of each left row's as-of match (-1 where there is none).

    Same parameters as :func:`asof`; returns the int64 positions instead of a joined frame.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(_DIRECTIONS)}, got {direction!r}")
    keys = _by_list(by)
    _frames.require(left, [on, *keys], "asof (left)")
    _frames.require(right, [on, *keys], "asof (right)")
    lkind = _frames.time_kind(left[on])
    rkind = _frames.time_kind(right[on])
    if lkind != rkind:
        raise SchemaError(
            f"asof: column {on!r} holds {lkind}s on the left and {rkind}s on the right",
            hint="give both sides the same kind of time",
        )
    ltz, rtz = _frames.time_zone(left[on]), _frames.time_zone(right[on])
    if ltz != rtz:
        raise SchemaError(
            f"asof: column {on!r} is in time zone {ltz} on the left and {rtz} on the right",
            hint="convert both to the same zone (cemkit records are UTC) with .dt.tz_convert",
        )
    tol = _frames.delta_ns(tolerance, lkind, "tolerance")
    lt = _frames.time_ns(left[on])
    rt = _frames.time_ns(right[on])
    if keys:
        (lk, rk), base, nkeys = _frames.key_codes(
            [[left[k] for k in keys], [right[k] for k in keys]]
        )
    else:
        lk = np.zeros(len(left), np.int64)
        rk = np.zeros(len(right), np.int64)
        base, nkeys = 0, 1
    return _kernels.asof_indices(
        lk, lt, rk, rt, base, nkeys, tol, _DIRECTIONS[direction], bool(allow_exact_matches),
        config_threads() if threads is None else threads,
    )  # fmt: skip


def config_threads() -> int:
    """Threads the asof kernel uses (``cemkit.config.CORRELATE_THREADS``)."""
    return max(1, int(config.CORRELATE_THREADS))


def _assemble(
    left: pd.DataFrame,
    right: pd.DataFrame,
    idx: np.ndarray,
    on: str,
    keys: list[str],
    suffixes: tuple[str, str],
    threads: int = 1,
    as_if_missing: bool = False,
) -> pd.DataFrame:
    rcols = [c for c in right.columns if c not in {on, *keys}]
    overlap = set(rcols) & set(left.columns)
    # a shallow copy: with pandas' copy-on-write the left columns are not copied
    out = left.copy(deep=False)
    if overlap:
        out = out.rename(columns={c: f"{c}{suffixes[0]}" for c in overlap})
    for c in rcols:
        name = f"{c}{suffixes[1]}" if c in overlap else c
        out[name] = _frames.take(right[c], idx, left.index, threads, as_if_missing)
    return out


def asof(
    left: Any,
    right: Any,
    on: str,
    by: str | Sequence[str] | None = None,
    tolerance: Any = None,
    direction: str = "backward",
    allow_exact_matches: bool = True,
    suffixes: tuple[str, str] = ("_x", "_y"),
    npartitions: int | None = None,
) -> Any:
    """Join each left row with the right row of the same key nearest in time.

    For pandas frames the result equals
    ``pandas.merge_asof(left, right, on=on, by=by, tolerance=tolerance, direction=direction,
    allow_exact_matches=allow_exact_matches, suffixes=suffixes)`` computed on both frames sorted
    stably by ``on``, with the rows put back in ``left``'s order and ``left``'s index. Neither input
    needs to be sorted. Ties are resolved as pandas does: among right rows at the same time with
    the same key, ``backward`` takes the last one in ``right``'s row order and ``forward`` the
    first one; ``nearest`` takes the backward match when it is as near as the forward one.

    Differences from pandas (where pandas raises): null times on either side never match; a null
    in a ``by`` column never matches; ``by`` columns may mix strings and integers per side as long
    as equal keys are equal values.

    Parameters
    ----------
    left, right : pandas.DataFrame or dask.dataframe.DataFrame
        Frames to join (both pandas or both Dask).
    on : str
        Time column (datetimes or integers) present in both frames.
    by : str or list of str, optional
        Key columns present in both frames (e.g. pseudonymized ``a_number``); rows match only
        within the same key. Strings or integers; they are factorized to integers.
    tolerance : pandas.Timedelta, str, int or None
        Largest time distance accepted, inclusive (seconds when a number is given for datetimes;
        an integer for integer times). ``None``: no limit.
    direction : {"backward", "forward", "nearest"}
        Search the latest right row at or before the left time, the earliest at or after, or the
        nearest of the two.
    allow_exact_matches : bool
        Whether a right row at exactly the left time matches.
    suffixes : (str, str)
        Appended to column names present on both sides (other than ``on`` and ``by``).
    npartitions : int, optional
        Dask only: number of partitions after the shuffle by key (default: the larger input's).

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        ``left``'s columns, then ``right``'s columns other than ``on`` and ``by``. For Dask
        inputs (which need ``by``), each output partition holds the left rows of some keys, in
        their input order, and right integer/boolean columns are always float64/object (the
        dtypes pandas gives when a row is unmatched), so every partition has the same dtypes.

    Examples
    --------
    >>> import pandas as pd
    >>> from cemkit.correlate import asof
    >>> calls = pd.DataFrame({"tn": ["x", "y", "x"], "t": [5, 3, 9]})
    >>> probes = pd.DataFrame({"tn": ["x", "x", "y"], "t": [8, 1, 4], "mos": [4.1, 3.0, 2.5]})
    >>> asof(calls, probes, on="t", by="tn")
      tn  t  mos
    0  x  5  3.0
    1  y  3  NaN
    2  x  9  4.1
    """
    keys = _by_list(by)
    if _frames.is_dask(left) or _frames.is_dask(right):
        return _asof_dask(
            left, right, on, keys, tolerance, direction, allow_exact_matches, suffixes, npartitions
        )
    idx = asof_positions(left, right, on, keys, tolerance, direction, allow_exact_matches)
    return _assemble(left, right, idx, on, keys, suffixes, config_threads())


def _asof_partition(
    lp: pd.DataFrame, rp: pd.DataFrame, on: str, keys: list[str], tolerance: Any,
    direction: str, allow_exact: bool, suffixes: tuple[str, str],
) -> pd.DataFrame:  # fmt: skip
    lp = _frames.restore_order(lp)
    rp = _frames.restore_order(rp)
    idx = asof_positions(lp, rp, on, keys, tolerance, direction, allow_exact, threads=1)
    return _assemble(lp, rp, idx, on, keys, suffixes, as_if_missing=True)


def _asof_dask(
    left: Any, right: Any, on: str, keys: list[str], tolerance: Any, direction: str,
    allow_exact: bool, suffixes: tuple[str, str], npartitions: int | None,
) -> Any:  # fmt: skip
    import dask.dataframe as dd

    if not (_frames.is_dask(left) and _frames.is_dask(right)):
        left = left if _frames.is_dask(left) else dd.from_pandas(left, npartitions=1)
        right = right if _frames.is_dask(right) else dd.from_pandas(right, npartitions=1)
    if not keys:
        raise ValueError("asof on Dask frames needs `by` keys to partition on")
    n = npartitions or max(left.npartitions, right.npartitions)
    lsh = _frames.tag_and_shuffle(left, lambda df: df[keys], n)
    rsh = _frames.tag_and_shuffle(right, lambda df: df[keys], n)
    meta = _asof_partition(
        lsh._meta, rsh._meta, on, keys, tolerance, direction, allow_exact, suffixes
    )
    return dd.map_partitions(
        _asof_partition, lsh, rsh, on, keys, tolerance, direction, allow_exact, suffixes,
        meta=meta, align_dataframes=False, enforce_metadata=False,
    )  # fmt: skip
