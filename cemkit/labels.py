"""Label columns carried narrow: pandas categoricals of a few strings, one byte per record.

A run holds its records in memory from the read of each input part to the writer, and its KQI
stage reads them back. A label column (``outcome``, ``record_kind``, ``service``, ``leg``, the
number kinds, ``released_by``, ``rat``, ``source``, and ``node``) holds a handful of distinct
strings; as an Arrow string column it costs ~11-16 bytes a record (offsets and bytes), as a
categorical one byte (int8 codes, the categories once). :func:`narrow` makes them categorical
where a run reads its records (``node``, :data:`PROTECTED`, once protected); the writer stores
them as it stored the strings (:func:`cemkit.runs.store.narrow_table`), and readers give
strings back, so files and what users read are unchanged.

The categories are the column's vocabulary (:data:`VOCABULARIES`) and any other value found,
sorted: sorting by a narrowed column orders rows as sorting its strings did, and partitions of
usual data share one dtype (a concatenation stays categorical).

:func:`label_codes` is the one way consumers test labels: each row's index in a given
vocabulary, from the categorical codes (a lookup over the few categories) or, for an Arrow
string column, by one jitted pass over its bytes.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"outcome": pd.array(["busy", None, "answered"], dtype="string[pyarrow]")})
>>> narrowed = narrow(frame)
>>> narrowed["outcome"].dtype.name, narrowed["outcome"].tolist()[::2]
('category', ['busy', 'answered'])
>>> label_codes(narrowed["outcome"], ("answered", "busy")).tolist()
[1, -1, 0]
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit.arrowstr import arrow_strings_of
from cemkit.schema import CATEGORIES

#: Label columns carried as categoricals, with the values they usually take (their categories
#: in every partition; ``source`` has no fixed set: its categories are the values found).
VOCABULARIES: dict[str, tuple[str, ...]] = {
    **{name: tuple(sorted(values)) for name, values in CATEGORIES.items()},
    "source": (),
}

#: Network-element labels, narrowed once protected: the policy's rule for them (``scan_text``,
#: which codes a device address a probe wrote as its node) reads their text.
PROTECTED: tuple[str, ...] = ("node",)
#: Every label column a reader of a run's records may take narrow.
ALL: tuple[str, ...] = (*VOCABULARIES, *PROTECTED)

_STRING = pd.StringDtype("pyarrow")


@functools.lru_cache(maxsize=256)
def label_dtype(name: str, found: tuple[str, ...] = ()) -> pd.CategoricalDtype:
    """The categorical dtype of label column ``name`` holding the values ``found`` (sorted)."""
    cats = sorted(set(VOCABULARIES.get(name, ())) | set(found))
    return pd.CategoricalDtype(pd.Index(cats, dtype="str"))  # (none found: still of strings)


def narrow_array(name: str, values: Any) -> pd.Categorical | None:
    """A label column (Arrow strings, or an Arrow dictionary) as a categorical; ``None``: as it is.

    The codes come from pyarrow's dictionary encoding (no Python object per row); the
    categories are :func:`label_dtype`'s.
    """
    if isinstance(values, pd.Categorical):  # read as a dictionary: its categories renumbered
        if not pd.api.types.is_string_dtype(values.categories.dtype):
            return None
        distinct = [str(v) for v in values.categories]
        dtype = label_dtype(name, tuple(sorted(set(distinct))))
        # (unordered dtypes of the same categories in another order compare equal: the order
        # is checked too, or a dictionary's own order would stay)
        if values.dtype == dtype and values.categories.equals(dtype.categories):
            return values
        at = np.append(pd.Index(dtype.categories).get_indexer(distinct), -1)
        return pd.Categorical.from_codes(at[values.codes], dtype=dtype, validate=False)
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else arrow_strings_of(values)
    if arr is None:
        return None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not pa.types.is_dictionary(arr.type):
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            return None
        vocabulary = VOCABULARIES.get(name)
        if vocabulary:  # (sorted: the codes are the categories' own) one pass, no hash table
            codes = label_codes(arr, vocabulary)
            unknown = codes < 0
            if arr.null_count:
                unknown &= np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), bool)
            if not unknown.any():
                return pd.Categorical.from_codes(codes, dtype=label_dtype(name), validate=False)
        arr = pc.dictionary_encode(arr)
    elif not (pa.types.is_string(arr.type.value_type)
              or pa.types.is_large_string(arr.type.value_type)):  # fmt: skip
        return None
    distinct = [str(v) for v in arr.dictionary.to_pylist()]
    dtype = label_dtype(name, tuple(sorted(set(distinct))))
    at = pd.Index(dtype.categories).get_indexer(distinct)
    indices = np.asarray(pc.fill_null(arr.indices, -1).to_numpy(zero_copy_only=False))
    codes = np.where(indices >= 0, at[np.maximum(indices, 0)] if len(at) else -1, -1)
    # (pandas keeps the codes in the smallest integer type the categories need)
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def narrow(frame: pd.DataFrame, names: Iterable[str] | None = None) -> pd.DataFrame:
    """``frame`` with its label columns ``names`` (:data:`VOCABULARIES`) as categoricals.

    Other columns are the frame's own arrays; a frame without Arrow string label columns is
    returned as it is.
    """
    narrowed = {}
    for name in VOCABULARIES if names is None else names:
        if name in frame.columns:
            got = narrow_array(name, frame[name].array)
            if got is not None:
                narrowed[name] = pd.Series(got, index=frame.index, name=name, copy=False)
    if not narrowed:
        return frame
    out = frame.copy(deep=False)
    for name, column in narrowed.items():
        out[name] = column
    return out


def widen(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its categorical columns of strings as Arrow strings (what readers give).

    The columns :func:`narrow` made, and the ones correlation took from them
    (``src_term_outcome``, ...).
    """
    wide = [c for c, t in frame.dtypes.items() if isinstance(t, pd.CategoricalDtype)
            and pd.api.types.is_string_dtype(t.categories.dtype)]  # fmt: skip
    if not wide:
        return frame
    return frame.astype(dict.fromkeys(wide, _STRING))


def label_codes(
    values: Any, vocabulary: Sequence[str], rows: np.ndarray | None = None
) -> np.ndarray:
    """Each row's index in ``vocabulary`` (int8; -1: null, or a value not in it).

    ``values``: a Series or array of a label column, categorical (a lookup of its few
    categories, then of the codes) or Arrow strings (pandas' or an Arrow string array: one
    jitted pass over the bytes, :func:`cemkit.kqi._kernels.match_labels`); anything else is
    compared as text. At most 127 values in ``vocabulary``. ``rows`` (int64 positions): the
    indices of those rows only (no take of their values first: a few rows of a column cost a
    few rows' work).
    """
    if len(vocabulary) > 127:
        raise ValueError(f"label_codes takes at most 127 values, got {len(vocabulary)}")
    arr = values.array if isinstance(values, pd.Series) else values
    if isinstance(arr, pd.Categorical):
        lookup = _category_lookup(tuple(arr.categories), tuple(vocabulary))
        # code -1 (null) reads the last slot: -1
        return lookup[arr.codes if rows is None else arr.codes[rows]]
    strings = arr if isinstance(arr, pa.Array | pa.ChunkedArray) else arrow_strings_of(arr)
    if strings is not None:
        from cemkit import arrowstr
        from cemkit.kqi import _kernels  # Numba: imported when labels are read

        offsets, data = _packed(tuple(vocabulary))
        if rows is not None:  # (a chunked column's chunks joined: one array to index)
            return _kernels.match_labels_at(*arrowstr.buffers(strings), rows, offsets, data)
        chunks = strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]
        # chunk by chunk: no copy of the column's bytes into one buffer
        parts = [_kernels.match_labels(*arrowstr.buffers(c), offsets, data) for c in chunks]
        if not parts:
            return np.zeros(0, dtype=np.int8)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    if rows is not None:
        arr = arr[rows]
    index = pd.Index(list(vocabulary), dtype=object)
    found = index.get_indexer(pd.Series(arr, dtype=object).where(pd.notna(arr), None))
    return np.asarray(found, dtype=np.int8)


@functools.lru_cache(maxsize=256)
def _category_lookup(categories: tuple[Any, ...], vocabulary: tuple[str, ...]) -> np.ndarray:
    at = {v: i for i, v in enumerate(vocabulary)}
    lookup = np.array([at.get(str(c), -1) for c in categories] + [-1], dtype=np.int8)
    lookup.flags.writeable = False  # shared by every call
    return lookup


@functools.lru_cache(maxsize=64)
def _packed(vocabulary: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    cand = [str(v).encode("utf-8") for v in vocabulary]
    offsets = np.cumsum([0, *(len(c) for c in cand)]).astype(np.int64)
    data = np.frombuffer(b"".join(cand), dtype=np.uint8) if cand else np.zeros(0, np.uint8)
    return offsets, data


def narrowed_meta(meta: pd.DataFrame, names: Iterable[str] | None = None) -> pd.DataFrame:
    """The (empty) meta of a lazy frame as :func:`narrow` leaves its partitions."""
    names = VOCABULARIES if names is None else names
    dtypes = {name: label_dtype(name) for name in names if name in meta.columns
              and (arrow_strings_of(meta[name].array) is not None
                   or isinstance(meta[name].dtype, pd.CategoricalDtype))}  # fmt: skip
    return meta.astype(dtypes) if dtypes else meta
