"""Arrow string arrays as NumPy buffers for Numba kernels, and back again.

Numba kernels take NumPy arrays only: a string column reaches them as its Arrow offsets (int32
for ``string``, int64 for ``large_string``; a kernel compiles for either), its UTF-8 bytes and a
bool validity per row, without a per-row copy. Kernels that write strings return offsets and
bytes, which :func:`from_buffers` wraps as an Arrow array without copying them again. This
module is the one place that does either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def is_arrow_string(dtype: object) -> bool:
    """Whether a pandas dtype holds Arrow strings: its column's Arrow array is read, not copied.

    ``string[pyarrow]``, or an ``ArrowDtype`` of ``string`` / ``large_string``.
    """
    if isinstance(dtype, pd.StringDtype):
        return dtype.storage == "pyarrow"
    if isinstance(dtype, pd.ArrowDtype):
        t = dtype.pyarrow_dtype
        return bool(pa.types.is_string(t) or pa.types.is_large_string(t))
    return False


def arrow_strings_of(values: Any) -> pa.Array | pa.ChunkedArray | None:
    """The Arrow array an Arrow-backed pandas string column holds (no copy), else ``None``.

    ``values``: a Series, an Index or a pandas array.
    """
    array = values.array if isinstance(values, pd.Series | pd.Index) else values
    return pa.array(array) if is_arrow_string(getattr(array, "dtype", None)) else None


def as_string_array(values: Any) -> pa.Array:
    """One Arrow ``string`` or ``large_string`` array of ``values``.

    ``values``: an Arrow array or chunked array, a pandas Series/Index or a sequence; other
    types are cast to ``string``.
    """
    if isinstance(values, pd.Series | pd.Index):
        own = arrow_strings_of(values)  # its own Arrow data (a cast costs ~40 us a call)
        if own is not None:
            arr: Any = own
        else:
            arr = pa.array(values.astype(pd.StringDtype("pyarrow")), from_pandas=True)
    elif isinstance(values, pa.Array | pa.ChunkedArray):
        arr = values
    else:
        arr = pa.array(values, type=pa.string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    return arr


def dictionary_codes(values: pa.Array | pa.ChunkedArray, null: int | None = -1,
                     ) -> tuple[np.ndarray, pa.Array]:  # fmt: skip
    """Int64 codes of ``values`` by one ``dictionary_encode`` (chunks share one dictionary).

    Equal values get equal codes ``0 .. n - 1`` (in order of first appearance); a null gets
    ``null``, or ``n`` (a code of its own) where ``null`` is None. Returns the codes and the
    dictionary: the ``n`` distinct non-null values, value ``i`` the one of code ``i``.
    """
    enc = pc.dictionary_encode(values)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    n = len(enc.dictionary)
    indices = enc.indices.fill_null(n if null is None else null) if enc.null_count else enc.indices
    return indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False), enc.dictionary


def buffers(values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets, bytes and validity (one bool per row) of a string column, without copies.

    The offsets are the array's own (int32 or int64, already shifted by its slice offset: value
    ``i`` is ``data[offsets[i]:offsets[i + 1]]``); a null row's bytes are empty or meaningless
    and its validity is False.
    """
    arr = as_string_array(values)
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    n = len(arr)
    bufs = arr.buffers()
    size = np.dtype(width).itemsize
    offsets = np.frombuffer(bufs[1], dtype=width, count=n + 1, offset=arr.offset * size)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
    if arr.null_count == 0:
        valid = np.ones(n, dtype=bool)
    else:
        valid = np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)
    return offsets, data, valid


def from_buffers(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray | None = None, *,
                 large: bool = False) -> pa.Array:  # fmt: skip
    """An Arrow string array over ``offsets`` (n + 1, from 0) and ``data`` (no copy of the bytes).

    ``string`` when the bytes fit int32 offsets and ``large`` is not asked for, else
    ``large_string``; ``valid`` (bool per row, optional) marks nulls.
    """
    n = offsets.size - 1
    if not large and offsets[-1] < 2**31:
        typ, offsets = pa.string(), offsets.astype(np.int32, copy=False)
    else:
        typ, offsets = pa.large_string(), offsets.astype(np.int64, copy=False)
    validity, null_count = None, 0
    if valid is not None:
        null_count = int(n - np.count_nonzero(valid))
        if null_count:
            validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        typ, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=null_count
    )
