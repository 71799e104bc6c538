"""Mergeable sketches stored per warehouse row (Apache DataSketches).

Two kinds, both from the maintained ``datasketches`` library, both serialized to bytes per row so
that any roll-up (hour, day, month, a set of node groups) is a merge of stored sketches:

* **KLL** quantile sketches (:data:`KLL_K` = 200) for the post-dial delay (ms) and the call
  duration of answered attempts (s). Error bound: a returned quantile's *rank* is within
  ``epsilon = kll_floats_sketch.get_normalized_rank_error(200, False)`` (about 1.33 %) of the
  requested rank, with 99 % confidence, whatever the merges; a sketch of at most ``K`` values is
  exact (it returns one of the values, the "inclusive" nearest-rank quantile, not numpy's
  linear interpolation).
* **HLL** distinct-count sketches (:data:`HLL_LG_K` = 12) of the customers (pseudonymized
  numbers) behind a row, for report-level k-suppression. Small sets are counted exactly (list
  and set modes); the suppression uses the sketch's lower bound at 2 standard deviations, so an
  estimate error can only suppress more, never less.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import datasketches as ds
import numpy as np

#: KLL accuracy parameter (the library's default): normalized rank error ~1.33 %.
KLL_K = 200
#: HLL log2 of the number of buckets: relative standard error ~1.6 % in estimation mode.
HLL_LG_K = 12
#: Standard deviations of the HLL lower bound used for k-suppression.
HLL_BOUND_STDDEVS = 2


def rank_error() -> float:
    """Normalized rank error (single quantile, 99 % confidence) of the stored KLL sketches."""
    return float(ds.kll_floats_sketch.get_normalized_rank_error(KLL_K, False))


def kll_of(values: np.ndarray) -> bytes | None:
    """A serialized KLL sketch of ``values`` (None when there are none)."""
    if len(values) == 0:
        return None
    sk = ds.kll_floats_sketch(KLL_K)
    sk.update(np.ascontiguousarray(values, dtype=np.float32))
    return bytes(sk.serialize())


def hll_of(items: Iterable[str]) -> bytes | None:
    """A serialized HLL sketch of distinct ``items`` (None when there are none)."""
    sk = ds.hll_sketch(HLL_LG_K)
    empty = True
    for item in items:
        sk.update(item)
        empty = False
    return None if empty else bytes(sk.serialize_compact())


def hll_sketches_of(items: Sequence[str], bounds: np.ndarray) -> list[Any]:
    """HLL sketches (unserialized) of ``items[bounds[i]:bounds[i + 1]]``, each non-empty.

    For building many sketches that are then serialized (:func:`hll_union_of`) alone or
    merged: a sketch is built once however many rows it goes into.
    """
    out = []
    listed = items.tolist() if isinstance(items, np.ndarray) else list(items)
    for lo, hi in itertools.pairwise(np.asarray(bounds).tolist()):
        sk = ds.hll_sketch(HLL_LG_K)
        # map, not a Python loop: the update calls are ~20 % of a file's sketches
        collections.deque(map(sk.update, listed[lo:hi]), maxlen=0)
        out.append(sk)
    return out


def hll_union_of(parts: Sequence[Any]) -> bytes:
    """Serialized union of unserialized HLL sketches (of :func:`hll_sketches_of`).

    A union of sketches is the sketch of the union of their items (registers merged by max);
    small sets stay exact.
    """
    if len(parts) == 1:
        return bytes(parts[0].serialize_compact())
    union = ds.hll_union(HLL_LG_K)
    for sk in parts:
        union.update(sk)
    return bytes(union.get_result().serialize_compact())


def _merged_kll(blobs: Iterable[bytes | None]) -> Any:
    """Serialized KLL sketches deserialized and merged into one (None when all are None)."""
    out = None
    for blob in blobs:
        if blob is None:
            continue
        sk = ds.kll_floats_sketch.deserialize(blob)
        if out is None:
            out = sk
        else:
            out.merge(sk)
    return out


def merge_kll(blobs: Iterable[bytes | None]) -> bytes | None:
    """Merge serialized KLL sketches into one (None when all are None)."""
    out = _merged_kll(blobs)
    return None if out is None else bytes(out.serialize())


def merge_hll(blobs: Iterable[bytes | None]) -> bytes | None:
    """Merge serialized HLL sketches into one (None when all are None)."""
    union = ds.hll_union(HLL_LG_K)
    empty = True
    for blob in blobs:
        if blob is not None:
            union.update(ds.hll_sketch.deserialize(blob))
            empty = False
    if empty:
        return None
    return bytes(union.get_result().serialize_compact())


def kll_quantiles(blobs: Iterable[bytes | None], qs: Iterable[float]) -> list[float]:
    """Quantiles of the merge of serialized KLL sketches (NaN without data)."""
    qs = list(qs)
    merged = None
    for blob in blobs:
        if blob is None:
            continue
        sk = ds.kll_floats_sketch.deserialize(blob)
        if merged is None:
            merged = sk
        else:
            merged.merge(sk)
    if merged is None or merged.is_empty():
        return [float("nan")] * len(qs)
    return [float(merged.get_quantile(q)) for q in qs]


def hll_count(blobs: Iterable[bytes | None]) -> int:
    """Distinct items of the union of serialized HLL sketches: a lower bound (see module)."""
    blobs = [b for b in blobs if b is not None]
    if len(blobs) == 1:  # nothing to merge (a union of one sketch gives the same estimate)
        one = ds.hll_sketch.deserialize(blobs[0])
        return int(np.floor(one.get_lower_bound(HLL_BOUND_STDDEVS) + 1e-9))
    union = ds.hll_union(HLL_LG_K)
    empty = True
    for blob in blobs:
        if blob is not None:
            union.update(ds.hll_sketch.deserialize(blob))
            empty = False
    if empty:
        return 0
    result = union.get_result()
    return int(np.floor(result.get_lower_bound(HLL_BOUND_STDDEVS) + 1e-9))


def kll_quantile_rows(rows: Sequence[Sequence[bytes]], qs: Sequence[float]) -> np.ndarray:
    """Quantiles ``qs`` of each row's merged KLL sketches: float64 ``[len(rows), len(qs)]``.

    Each row's sketches are deserialized and merged once for all ``qs`` (NaN without data).
    """
    out = np.full((len(rows), len(qs)), np.nan)
    if not qs:
        return out
    for i, blobs in enumerate(rows):
        merged = _merged_kll(blobs)
        if merged is not None and not merged.is_empty():
            out[i] = [merged.get_quantile(q) for q in qs]
    return out
