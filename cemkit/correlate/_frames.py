"""Glue between frames and kernels: times and keys to int64 arrays, taking rows, the Dask shuffle.

Nothing here is jitted; the kernels in :mod:`cemkit.correlate._kernels` never see a frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cemkit import arrowstr, config
from cemkit.columnar import Columns, column_arrays
from cemkit.correlate import _kernels
from cemkit.correlate._kernels import NULL_TIME
from cemkit.errors import SchemaError

#: Helper columns of the Dask path (dropped before results are returned).
PART, ROW, BUCKET = "_cemkit_part", "_cemkit_row", "_cemkit_bucket"


def is_dask(obj: object) -> bool:
    """Whether ``obj`` is a Dask DataFrame (without importing Dask when it is not loaded)."""
    return type(obj).__module__.split(".")[0] in {"dask", "dask_expr"} and hasattr(
        obj, "npartitions"
    )


def require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise :class:`SchemaError` naming the columns ``what`` needs and ``df`` lacks."""
    # ``name in df``: a frame's columns (as ``df.columns``), a micro-batch's arrays by name (its
    # ``columns`` Index, rebuilt after each added column, costs more than the check)
    names = df if isinstance(df, Columns) else df.columns
    missing = [c for c in columns if c not in names]
    if missing:
        raise SchemaError(
            f"{what} needs column(s) {missing}, which the records do not have",
            hint="pass canonical records (see cemkit.schema.COLUMNS) or name the columns to use",
        )


def time_kind(s: pd.Series) -> str:
    """'datetime' or 'int' for a usable time column; raise :class:`SchemaError` otherwise."""
    dtype = s.dtype
    if isinstance(dtype, pd.ArrowDtype):
        dtype = dtype.numpy_dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "M"):
        return "datetime"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    raise SchemaError(
        f"column {s.name!r} has dtype {s.dtype}; a time column must hold datetimes or integers",
        hint="convert it with pandas.to_datetime(..., utc=True) first",
    )


def time_zone(s: pd.Series) -> str | None:
    """The time zone of a datetime column (``None`` for naive datetimes and integers)."""
    dtype = s.dtype
    if isinstance(dtype, pd.ArrowDtype):
        tz = getattr(dtype.pyarrow_dtype, "tz", None)
        return None if tz is None else str(tz)
    if isinstance(dtype, pd.DatetimeTZDtype):
        return str(dtype.tz)
    return None


def time_ns(s: pd.Series) -> np.ndarray:
    """A time column as int64 (nanoseconds for datetimes), nulls as :data:`NULL_TIME`."""
    kind = time_kind(s)
    if kind == "datetime":
        if isinstance(s.dtype, pd.ArrowDtype):
            tz = time_zone(s)
            s = s.astype(pd.DatetimeTZDtype("ns", tz) if tz else np.dtype("datetime64[ns]"))
        if s.dt.unit != "ns":
            s = s.dt.as_unit("ns")
        return np.asarray(s.array.asi8, dtype=np.int64)
    if isinstance(s.dtype, np.dtype):
        return s.to_numpy(dtype=np.int64, copy=False)
    return s.to_numpy(dtype=np.int64, na_value=NULL_TIME)


def delta_ns(value: Any, kind: str, name: str) -> int:
    """A tolerance/gap/window as an int64 in the unit of ``kind`` times (-1 for ``None``)."""
    if value is None:
        return -1
    if kind == "datetime":
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = pd.Timedelta(seconds=value)
        td = pd.Timedelta(value)
        ns = int(td.value)
    else:
        if not isinstance(value, int | np.integer) or isinstance(value, bool):
            raise ValueError(
                f"{name} must be an integer for integer times, got {type(value).__name__}"
            )
        ns = int(value)
    if ns < 0:
        raise ValueError(f"{name} must not be negative")
    return ns


def _token_codes(arrays: list[Any], null_is_value: bool) -> tuple[np.ndarray, int] | None:
    """Joint codes of token columns from their int64 bits and kept prefix (``None``: not tokens).

    The prefixes of the frames are renumbered into one dictionary, so a pair (bits, prefix) is
    equal exactly when the strings are: the same number tokenized under two kept prefixes gives
    equal bits but two codes, as its two strings would.
    """
    from cemkit.privacy import tokens

    split = [tokens.split(a) for a in arrays]
    if any(t is None for t in split):
        return None
    parts = [t for t in split if t is not None]
    if len(parts) == 1:
        bits, tag = parts[0].bits, parts[0].prefix
    else:
        joint: dict[str, int] = {}
        tags = []
        for t in parts:
            remap = np.array([joint.setdefault(p, len(joint)) for p in t.prefixes.to_pylist()]
                             + [0], dtype=np.int32)  # fmt: skip
            tags.append(np.where(t.prefix >= 0, remap[np.maximum(t.prefix, 0)], t.prefix))
        bits = np.concatenate([t.bits for t in parts])
        tag = np.concatenate(tags)
    codes, n = tokens.factorize(bits, tag)
    if null_is_value:
        nulls = codes < 0
        if nulls.any():
            codes[nulls] = n
            n += 1
    return codes, n


def _codes(cols: Sequence[pd.Series], null_is_value: bool) -> tuple[list[np.ndarray], int]:
    """Int64 codes of one key column split over several frames, and how many there are.

    Equal values get equal codes (in every frame), nulls -1 or a code of their own. Token
    columns are coded from their int64 bits and prefix (:mod:`cemkit.privacy.tokens`, no string
    hashed); other Arrow-backed strings are dictionary-encoded by pyarrow (no Python object per
    string); anything else by :func:`pandas.factorize`.
    """
    lengths = [len(c) for c in cols]
    if sum(lengths) == 0:
        return [np.empty(0, np.int64) for _ in cols], 0
    arrays = [arrowstr.arrow_strings_of(c) for c in cols]
    codes: np.ndarray | None = None
    if all(a is not None for a in arrays):
        found = _token_codes(arrays, null_is_value)
        if found is not None:
            codes, n = found
        else:
            chunks = [c for a in arrays for c in _chunks(a)]
            if len({c.type for c in chunks}) > 1:  # string and large_string in two frames
                chunks = [c.cast(pa.large_string()) for c in chunks]
            joined = pa.chunked_array(chunks)
            codes, dictionary = arrowstr.dictionary_codes(joined, None if null_is_value else -1)
            n = len(dictionary) + (1 if null_is_value and joined.null_count else 0)
    if codes is None:
        joined_s = cols[0] if len(cols) == 1 else pd.concat(
            [c.reset_index(drop=True) for c in cols], ignore_index=True)  # fmt: skip
        found_codes, uniques = pd.factorize(joined_s, use_na_sentinel=not null_is_value)
        codes, n = np.asarray(found_codes, dtype=np.int64), len(uniques)
    out, pos = [], 0
    for size in lengths:
        out.append(codes[pos : pos + size])
        pos += size
    return out, n


def _chunks(a: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(a.chunks) if isinstance(a, pa.ChunkedArray) else [a]


def key_codes(
    columns: Sequence[Sequence[pd.Series]],
    null_is_value: Sequence[bool] | None = None,
    dense: bool = True,
) -> tuple[list[np.ndarray], int, int]:
    """Int64 key codes of several key columns, shared by several frames: the one key encoder.

    Parameters
    ----------
    columns : sequence of sequences of Series
        ``columns[f]`` lists the key columns of frame ``f`` (the same number for every frame).
    null_is_value : sequence of bool, optional
        Per key column, whether a null is a value of its own (else a null makes the key null:
        code -1).
    dense : bool
        Renumber the combined key densely (what a counting sort by key needs); else the
        columns' codes are combined as mixed-radix digits, renumbered only if their product
        would not fit an int64.

    Returns
    -------
    codes : list of int64 arrays
        One per frame. Equal keys are equal tuples of values; negative codes are null keys.
    key_base, nkeys : int
        Codes lie in ``[key_base, key_base + nkeys)``.
    """
    nframes = len(columns)
    ncols = len(columns[0]) if nframes else 0
    flags = list(null_is_value or [False] * ncols)
    if ncols == 0:
        raise ValueError("key_codes needs at least one key column")
    # one integer column (no nulls) whose range is no wider than the rows: the values are codes
    if ncols == 1:
        cols = [c[0] for c in columns]
        if all(isinstance(c.dtype, np.dtype) and c.dtype.kind in "iu" for c in cols):
            arrays = [c.to_numpy(dtype=np.int64, copy=False) for c in cols]
            nonempty = [a for a in arrays if a.size]
            if not nonempty:
                return arrays, 0, 0
            lo = min(int(a.min()) for a in nonempty)
            hi = max(int(a.max()) for a in nonempty)
            total = sum(a.size for a in arrays)
            if lo >= 0 and hi - lo < total + 1024:  # offsets cost at most 8 bytes a row
                return arrays, lo, hi - lo + 1
    rows = sum(len(frame[0]) for frame in columns)
    encoded = map_threads(lambda j: _codes([frame[j] for frame in columns], flags[j]),
                          list(range(ncols)), rows)  # fmt: skip
    combined: list[np.ndarray] | None = None
    size = 1
    for codes, n in encoded:
        n = max(n, 1)
        if combined is None:
            combined, size = codes, n
            continue
        if size * n >= 2**62:
            combined, size = _densify(combined)
            size = max(size, 1)
        merged = []
        for a, b in zip(combined, codes, strict=True):
            m = a * n + b
            m[(a < 0) | (b < 0)] = -1
            merged.append(m)
        combined, size = merged, size * n
    assert combined is not None
    if dense and ncols > 1:
        combined, size = _densify(combined)
    return combined, 0, size


def column_codes(s: pd.Series, null_is_value: bool = False) -> tuple[np.ndarray, int]:
    """Int64 codes of one column's values and how many there are (nulls: -1, or a code)."""
    (codes,), n = _codes([s], null_is_value)
    return codes, n


def composite_key(
    columns: Sequence[pd.Series], null_is_value: Sequence[bool] | None = None
) -> tuple[np.ndarray, int]:
    """One int64 key of several columns of one frame (not dense), and its upper bound.

    :func:`key_codes` of one frame without the final renumbering: equal keys are equal tuples of
    values; -1 where a column without ``null_is_value`` is null.
    """
    if not columns:
        raise ValueError("composite_key needs at least one key column")
    (key,), base, n = key_codes([list(columns)], null_is_value, dense=False)
    return key, base + n


def key_order(columns: Sequence[pd.Series], time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An exact int64 key of several columns, and the rows grouped by it in (time, row) order.

    The one sort the correlators keyed by parties share: -1 where a column is null (as
    :func:`composite_key`), and on the rows of the order (the only rows the kernels compare)
    equal keys are equal tuples of values; the order is
    :func:`~cemkit.correlate._kernels.grouped_order` of that key and ``time``. Token columns
    enter by their int64 bits and kept prefix (:mod:`cemkit.privacy.tokens`, one parse, no
    hash table), other columns by their codes (:func:`column_codes`); the key is a hash of
    those integers (:func:`~cemkit.correlate._kernels.hash_key`) and is checked on the order
    (:func:`~cemkit.correlate._kernels.runs_agree`): on a hash collision, which a million rows
    meet with a probability of about 10**-8, the key is :func:`composite_key`'s instead.
    """
    key, order, parts = hashed_key_order(columns, time)
    if not _kernels.runs_agree(order, key, parts):  # a hash collision: the exact key instead
        key, _ = composite_key(columns)
        order = _kernels.grouped_order(key, time)
    return key, order


def hashed_key_order(
    columns: Sequence[pd.Series], time: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """:func:`key_order` before the check: the hashed key, its order and what it was hashed from.

    For a caller that checks the key (:func:`~cemkit.correlate._kernels.runs_agree`) in a pass
    over the order of its own.
    """
    key, (order, _, _), parts = hashed_key_sorted(columns, time)
    return key, order, parts


def hashed_key_sorted(
    columns: Sequence[pd.Series], time: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]]:
    """:func:`hashed_key_order` with the key and time in the order as the sort leaves them.

    ``(key, (order, keys, times), parts)``: ``keys``, ``times`` are ``key[order]``,
    ``time[order]`` (:func:`~cemkit.correlate._kernels.grouped_order_gathered`). The parts
    with few distinct values (a label's codes, token prefixes) are packed into one integer
    (:func:`pack_small_parts`): fewer columns to hash and for the check to read.
    """
    n = len(columns[0]) if columns else 0
    found = map_threads(key_parts, list(columns), n)
    parts = pack_small_parts([p for ps, _ in found for p in ps])
    null = np.zeros(n, bool)
    for _, nulls in found:
        null |= nulls
    key = _kernels.hash_key(parts, null)
    return key, _kernels.grouped_order_gathered(key, time), parts


#: Largest product of value ranges :func:`pack_small_parts` packs into one int64.
_PACK_LIMIT = 1 << 62


def pack_small_parts(parts: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """The int64 ``parts`` with the narrow ones packed into one: equal tuples stay equal tuples.

    A part whose values span less than :data:`_PACK_LIMIT` together with the others packed is
    replaced, with them, by ``sum((part - min) * weight)`` (a mixed-radix number: a bijection
    of the tuples of those parts); wide parts (token bits) are kept as they are, first.
    """
    parts = [np.asarray(p, dtype=np.int64) for p in parts]
    if len(parts) < 2 or not parts[0].size:
        return tuple(parts)
    wide: list[np.ndarray] = []
    narrow: list[tuple[np.ndarray, int, int]] = []
    radix = 1
    for p in parts:
        lo, hi = int(p.min()), int(p.max())
        span = hi - lo + 1
        if radix * span < _PACK_LIMIT:
            narrow.append((p, lo, radix))
            radix *= span
        else:
            wide.append(p)
    if len(narrow) < 2:
        return tuple(parts)
    packed = np.zeros(parts[0].size, np.int64)
    for p, lo, weight in narrow:
        packed += (p - lo) * weight
    return (*wide, packed)


def key_parts(s: pd.Series) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Int64 arrays whose values are equal exactly where a key column's are, and its null mask.

    A token column: its bits and kept prefix (one parse); another column: its codes.
    """
    arr = arrowstr.arrow_strings_of(s)
    if arr is not None and _may_be_tokens(arr):
        from cemkit.privacy import tokens

        split = tokens.split(arr)
        if split is not None:
            prefix = np.ascontiguousarray(split.prefix, dtype=np.int64)
            bits = np.ascontiguousarray(split.bits, dtype=np.int64)
            return (bits, prefix), prefix == tokens.NULL
    codes, _ = column_codes(s)
    return (np.ascontiguousarray(codes, dtype=np.int64),), codes < 0


def _may_be_tokens(arr: pa.Array | pa.ChunkedArray) -> bool:
    """False when one of the first values is no token (``service``): no parse of the column."""
    head = arr.slice(0, 16).to_pylist()
    return all(v is None or v == "" or "#" in v for v in head)


def _densify(parts: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Renumber combined codes densely (keeping -1 for null keys)."""
    joined = np.concatenate(parts) if parts else np.empty(0, np.int64)
    valid = joined >= 0
    codes = np.full(joined.size, -1, np.int64)
    codes_valid, uniques = pd.factorize(joined[valid])
    codes[valid] = codes_valid
    out, pos = [], 0
    for p in parts:
        out.append(codes[pos : pos + p.size])
        pos += p.size
    return out, len(uniques)


def take(
    s: pd.Series, idx: np.ndarray, index: pd.Index, threads: int = 1, as_if_missing: bool = False
) -> pd.Series:
    """``s`` at positions ``idx`` (-1: missing), with the dtypes :func:`pandas.merge_asof` gives.

    NumPy integer columns become float64 and booleans object when a row is missing (as pandas'
    ``take_nd`` does); extension arrays keep their dtype with ``NA``. NumPy numbers and
    datetimes are gathered by a jitted loop on ``threads`` threads. ``as_if_missing`` gives the
    dtypes of the missing case even when every row matched (the same dtypes in every partition).
    """
    taken = take_array(s.array, idx, threads, as_if_missing)
    if isinstance(taken, np.ndarray) and taken.dtype == object:
        return pd.Series(taken, index=index, name=s.name, dtype=object)
    return pd.Series(taken, index=index, name=s.name, copy=False)


def take_array(arr: Any, idx: np.ndarray, threads: int = 1, as_if_missing: bool = False,
               arrow_idx: pa.Array | None = None) -> Any:  # fmt: skip
    """:func:`take` of a column's array (``Series.array`` or an ndarray): an ndarray or array.

    The array-level form the one-pass correlators use on small batches (no Series per column).
    ``arrow_idx``: ``idx`` as Arrow indices (nulls for -1), when many columns share one ``idx``.
    """
    missing_any = as_if_missing or (bool(idx.size) and int(idx.min()) < 0)
    if isinstance(arr, pd.arrays.NumpyExtensionArray):
        arr = arr.to_numpy()
    dtype = arr.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iufcmM":
        values = np.asarray(arr)
        if not len(values):  # every row missing (or no rows at all)
            values = np.zeros(1, dtype)
        if dtype.kind in "mM":
            out = _kernels.gather(values.view(np.int64), idx, np.int64, NULL_TIME, threads)
            return out.view(dtype)
        if dtype.kind in "iu" and missing_any:
            return _kernels.gather(values, idx, np.float64, np.nan, threads)
        if dtype.kind in "iu":
            return _kernels.gather(values, idx, dtype, 0, threads)
        return _kernels.gather(values, idx, dtype, np.nan, threads)
    if isinstance(dtype, np.dtype):  # bool, object: pandas' take_nd gives object with NaN
        if not missing_any:
            return np.asarray(arr).take(idx)
        source = np.asarray(arr, dtype=object)
        taken = np.full(idx.size, np.nan, dtype=object)
        ok = idx >= 0
        taken[ok] = source[idx[ok]]
        return taken
    if isinstance(arr, pd.arrays.ArrowStringArray):  # pyarrow's take, -1 as a null index
        data = pa.array(arr)
        if len(data) and data.null_count == len(data):  # nothing to take but nulls
            return pd.arrays.ArrowStringArray(pa.nulls(idx.size, data.type), dtype=arr.dtype)
        indices = arrow_idx
        if indices is None:
            indices = pa.array(idx, mask=idx < 0) if missing_any else pa.array(idx)
        return pd.arrays.ArrowStringArray(data.take(indices), dtype=arr.dtype)
    if not missing_any:
        return arr.take(idx)
    return arr.take(idx, allow_fill=True)


def tag_and_shuffle(ddf: Any, bucket_of: Callable[[pd.DataFrame], Any], npartitions: int) -> Any:
    """Add the row's global position and a key bucket, then shuffle so a key meets in one partition.

    ``bucket_of(frame)`` returns the columns (a Series or DataFrame) whose equal values must end up
    in the same partition, or their hash already (a uint64 array, as :func:`bucket_hash` gives
    it). Their 64-bit hash is the bucket column, which Dask's shuffle maps to a
    partition (so equal keys of two frames shuffled to the same ``npartitions`` meet in one). The
    position (input partition, row) lets each partition restore the input order (see
    :func:`restore_order`), which is what makes results independent of the partitioning.
    """

    def tag(df: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
        number = 0 if partition_info is None else int(partition_info["number"])
        h = bucket_hash(bucket_of(df))
        out = df.copy(deep=False)  # copy-on-write: the new columns never touch ``df``
        out[PART] = np.int64(number)
        out[ROW] = np.arange(len(df), dtype=np.int64)
        # the full 64-bit hash, not ``hash % n``: Dask hashes the bucket column again to pick the
        # partition, and re-hashing only n distinct buckets leaves partitions empty (for n = 3
        # the sizes came out [0, 1/3, 2/3]); many distinct hashes spread evenly
        out[BUCKET] = h.view(np.int64)
        return out

    meta = ddf._meta.assign(
        **{PART: pd.Series([], dtype="int64"), ROW: pd.Series([], dtype="int64"),
           BUCKET: pd.Series([], dtype="int64")}
    )  # fmt: skip
    tagged = ddf.map_partitions(tag, meta=meta)
    return tagged.shuffle(on=BUCKET, npartitions=npartitions)


def bucket_hash(keys: pd.Series | pd.DataFrame | np.ndarray) -> np.ndarray:
    """A 64-bit hash (uint64) of each row's key values, the same in every process.

    Each column is hashed as text (``string[pyarrow]``: a number and its digits hash alike),
    by one jitted pass over its Arrow buffers (:mod:`cemkit.correlate._hash`); nulls hash to
    a value of their own.
    """
    from cemkit import arrowstr
    from cemkit.correlate import _hash

    if isinstance(keys, np.ndarray):  # hashed already (stitch's bucket, over its pieces)
        if keys.dtype != np.uint64:
            raise TypeError(f"a bucket hash must be uint64, got {keys.dtype}")
        return keys
    frame = keys.to_frame() if isinstance(keys, pd.Series) else keys
    into = np.zeros(len(frame), dtype=np.uint64)
    for name in frame.columns:
        column = frame[name]
        values = arrowstr.arrow_strings_of(column)  # Arrow strings as they are, else as text
        _hash.hash_strings(*arrowstr.buffers(column if values is None else values), into)
    return into


def restore_order(df: pd.DataFrame) -> pd.DataFrame:
    """Sort a shuffled partition back into the global input order and drop the helper columns.

    A task shuffle hands a partition its pieces in input order already (each input partition's
    rows split in order, the pieces concatenated by input partition): then nothing is sorted
    (the sort's lexsort cost ~0.1 CPU-s per 1M rows, only to find the order it was given).
    """
    if not _in_input_order(df[PART].to_numpy(), df[ROW].to_numpy()):
        df = df.sort_values([PART, ROW], kind="stable")
    return df.drop(columns=[PART, ROW, BUCKET])


def _in_input_order(part: np.ndarray, row: np.ndarray) -> bool:
    """Whether the (input partition, row) pairs are in ascending order (ties: stable anyway)."""
    if part.size < 2:
        return True
    step = np.diff(part)
    return bool(np.all((step > 0) | ((step == 0) & (np.diff(row) >= 0))))


def parties_key(df: pd.DataFrame) -> pd.DataFrame:
    """The bucket columns of the per-parties correlators: ``a_number`` and ``b_number``."""
    return df[["a_number", "b_number"]]


def without_attrs(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` without ``attrs`` (a shallow copy; the same frame when it has none).

    pandas deep-copies a frame's ``attrs`` into every Series taken from it; the protect mark
    (one entry per column) made that the largest cost of a correlator on a small batch. The
    correlators' results are new frames, which never carried the mark.
    """
    if not records.attrs:
        return records
    out = records.copy(deep=False)
    out.attrs = {}
    return out


def select(records: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """The rows where the bool mask ``keep`` is true, in order (``records[keep]``, faster).

    Each column is filtered on its own and the frame built from the arrays without a copy: for
    Arrow string columns this is pyarrow's ``filter``, several times faster than pandas' block
    ``take`` of a wide frame.
    """
    if not records.columns.is_unique:
        return records[keep]
    return pd.DataFrame(select_columns(records, keep), index=records.index[keep], copy=False)


def select_columns(records: pd.DataFrame, keep: np.ndarray) -> dict[str, Any]:
    """Each column's array at the rows where ``keep`` is true (see :func:`select`)."""
    return select_arrays(column_arrays(records), keep)


def select_arrays(arrays: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """Each array at the rows where the bool mask ``keep`` is true (see :func:`select`)."""
    if keep.all():  # nothing dropped; copied all the same: a caller's frame never shares them
        return {c: a.copy() for c, a in arrays.items()}
    names = list(arrays)
    mask = pa.array(keep)
    # NumPy and masked arrays by a take of the kept positions: the same values as ``arr[keep]``,
    # 5-10x faster (a boolean index of a masked array indexes its data and mask one by one)
    rows = np.flatnonzero(keep)

    def one(c: str) -> Any:
        arr = arrays[c]
        if isinstance(arr, pd.arrays.ArrowStringArray):  # pyarrow's filter, no pandas indexing
            data = pa.array(arr)
            if data.null_count == len(data):  # a column the source never fills (IMSI on a PBX)
                return pd.arrays.ArrowStringArray(pa.nulls(rows.size, data.type), dtype=arr.dtype)
            return pd.arrays.ArrowStringArray(data.filter(mask), dtype=arr.dtype)
        return arr.take(rows)

    taken = map_threads(one, names, keep.size)
    return dict(zip(names, taken, strict=True))


def take_arrays(arrays: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """Each array at the valid positions ``rows`` (the values and dtypes of :func:`select_arrays`).

    For rows that are not a plain selection (some taken out of order or twice).
    """
    names = list(arrays)

    def one(c: str) -> Any:
        arr = arrays[c]
        if isinstance(arr, pd.arrays.ArrowStringArray):  # pyarrow's take, no pandas indexing
            data = pa.array(arr)
            if data.null_count == len(data):
                return pd.arrays.ArrowStringArray(pa.nulls(rows.size, data.type), dtype=arr.dtype)
            return pd.arrays.ArrowStringArray(data.take(pa.array(rows)), dtype=arr.dtype)
        return arr.take(rows)

    return dict(zip(names, map_threads(one, names, rows.size), strict=True))


def fill_nulls(values: Any, fill: Any) -> Any:
    """``values`` with its nulls taken from ``fill`` (same length), on arrays.

    ``Series(values).fillna(Series(fill).astype(values.dtype))``: float64 ndarrays by one
    ``np.where``, other arrays through pandas.
    """
    if isinstance(values, pd.arrays.NumpyExtensionArray):
        values = values.to_numpy()
    if isinstance(fill, pd.arrays.NumpyExtensionArray):
        fill = fill.to_numpy()
    if (isinstance(values, np.ndarray) and values.dtype.kind == "f"
            and isinstance(fill, np.ndarray) and fill.dtype.kind in "fiu"):  # fmt: skip
        return np.where(np.isnan(values), fill.astype(values.dtype, copy=False), values)
    series = pd.Series(values, copy=False)
    return series.fillna(pd.Series(fill, copy=False).astype(series.dtype)).array


def equals(values: pd.Series, value: str) -> np.ndarray:
    """``as_bool(values == value)`` (nulls are False); one Arrow pass for Arrow-backed strings."""
    return equals_any(values, (value,))[0]


def equals_any(values: pd.Series, candidates: Sequence[str]) -> list[np.ndarray]:
    """:func:`equals` of each (distinct) candidate; one pass over Arrow-backed strings for all."""
    arr = values.array
    if isinstance(arr, pd.arrays.ArrowStringArray | pd.Categorical):
        # the index of the candidate each row equals: a categorical's codes looked up, Arrow
        # strings by the jitted label matcher (no copy of the strings, no Arrow boolean array)
        from cemkit.labels import label_codes

        found = label_codes(arr, tuple(candidates))
        return [found == i for i in range(len(candidates))]
    return [as_bool(values == c) for c in candidates]


#: Rows below which column-parallel work is not worth a thread hand-off.
_THREAD_MIN_ROWS = 100_000


def map_threads(fn: Callable[[Any], Any], items: Sequence[Any], rows: int) -> list[Any]:
    """``[fn(x) for x in items]``, on ``config.CORRELATE_THREADS`` threads for large frames.

    For per-column work that releases the GIL (pyarrow filters and dictionary encodings, NumPy
    takes); ``fn`` must not submit work to the pool itself.
    """
    threads = max(1, int(config.CORRELATE_THREADS))
    if threads == 1 or len(items) < 2 or rows < _THREAD_MIN_ROWS:
        return [fn(x) for x in items]
    return list(_kernels._pool(threads).map(fn, items))


def absorb(
    records: pd.DataFrame,
    partner: np.ndarray,
    keeper: np.ndarray,
    prefix: str,
    columns: Sequence[str],
) -> pd.DataFrame:
    """Merge each matched pair of rows into the ``keeper`` row of the pair.

    The keeper row gets the partner's ``columns`` under ``prefix``; matched non-keeper rows are
    dropped; every other row passes through with nulls in the added columns. Row order is kept.
    """
    matched = partner >= 0
    absorbed = matched & ~keeper
    kept = np.flatnonzero(~absorbed)
    idx = np.where(matched[kept] & keeper[kept], partner[kept], -1)
    names = [c for c in columns if c in records.columns]
    if records.columns.is_unique and not any(prefix + c in records.columns for c in names):
        # on arrays: each column filtered or taken once (the partner's columns with one Arrow
        # index shared), one frame built at the end (no concat of two frames)
        arrays = column_arrays(records)
        out_arrays = select_arrays(arrays, ~absorbed)
        arrow_idx = pa.array(idx, mask=idx < 0)
        taken = map_threads(lambda c: take_array(arrays[c], idx, as_if_missing=True,
                                                 arrow_idx=arrow_idx), names, idx.size)  # fmt: skip
        out_arrays.update(zip([prefix + c for c in names], taken, strict=True))
        return pd.DataFrame(out_arrays, index=records.index[kept], copy=False)
    out = select(records, ~absorbed)
    added = {}
    for c in columns:
        if c in records.columns:
            # as_if_missing: the same dtypes whether or not every kept row has a partner
            added[prefix + c] = take(records[c], idx, out.index, as_if_missing=True)
    return pd.concat([out, pd.DataFrame(added, index=out.index)], axis=1)


def as_bool(values: pd.Series) -> np.ndarray:
    """A boolean/categorical condition as a plain NumPy bool array (nulls are False)."""
    return values.fillna(False).to_numpy(dtype=bool)
