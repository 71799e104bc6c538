"""The record columns the KQI formulas read, taken once from a frame as NumPy arrays.

:func:`cemkit.kqi.formulas.contribution_block` computes every counter column-wise from these
arrays: a string column is dictionary-encoded once and each test against it is a lookup in its
few distinct values, a numeric column is one conversion to float64 (or int64 where a float
could lose digits). No pandas operation runs per counter.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"service": ["voice", None, "sms"], "pdd_ms": [1.5, None, 2]})
>>> cols = RecordColumns(frame)
>>> cols.is_in("service", {"voice"}).tolist(), cols.floats("pdd_ms").tolist()
([True, False, False], [1.5, nan, 2.0])
>>> cols.is_in("leg", {"term"}).tolist()  # a missing column is all null
[False, False, False]
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cemkit import arrowstr
from cemkit.columnar import Columns, column_names
from cemkit.labels import label_codes

#: Masked arrays whose values convert to float64 by their data and mask.
_MASKED_NUMBERS = (pd.arrays.IntegerArray, pd.arrays.FloatingArray)


def _label_column(dtype: object) -> bool:
    """Arrow strings or a categorical: :func:`cemkit.labels.label_codes` reads it."""
    return arrowstr.is_arrow_string(dtype) or isinstance(dtype, pd.CategoricalDtype)


def _numeric(dtype: object) -> bool:
    return bool(pd.api.types.is_numeric_dtype(dtype)) and not isinstance(dtype, pd.CategoricalDtype)


class RecordColumns:
    """Columns of one frame as NumPy arrays, each converted once (missing columns: all null).

    Parameters
    ----------
    frame : pandas.DataFrame
        Records.
    vocabulary : mapping of str to sequence of str, optional
        Per label column, every value :meth:`is_in` will be asked about: the column is then
        coded against those few strings (:func:`cemkit.labels.label_codes`: a categorical by its
        codes, Arrow strings by one jitted pass over their bytes) instead of being encoded.
    """

    def __init__(self, frame: pd.DataFrame,
                 vocabulary: Mapping[str, Sequence[str]] | None = None) -> None:  # fmt: skip
        self.frame = frame
        # ``name in``: a frame's columns, a micro-batch's arrays (no Index built for a check)
        self._names: Any = column_names(frame)
        self.n = len(frame)
        self.vocabulary = vocabulary or {}
        self._closed: set[str] = set()  # label columns encoded over their vocabulary only
        self._labels: dict[str, tuple[np.ndarray, list[object]]] = {}
        self._floats: dict[str, np.ndarray] = {}

    def has(self, name: str) -> bool:
        """The frame has column ``name``."""
        return name in self._names

    def _array(self, name: str) -> Any:
        """Column ``name``'s array (None when missing), without a Series where none is made."""
        if isinstance(self.frame, Columns):
            return self.frame.array(name) if name in self.frame else None
        return self.frame[name].array if self.has(name) else None

    def floats(self, name: str) -> np.ndarray:
        """``name`` as float64, NaN for null or non-numeric values (``pd.to_numeric`` coerced)."""
        got = self._floats.get(name)
        if got is not None:
            return got
        arr = self._array(name)
        if not self.has(name):
            out = np.full(self.n, np.nan)
        elif isinstance(arr, _MASKED_NUMBERS):  # Int16, Float64, ...: no pandas conversion
            out = arr._data.astype(np.float64)
            out[arr._mask] = np.nan
        else:
            s = self.frame[name]
            if isinstance(s.dtype, np.dtype) and s.dtype == np.float64:
                out = s.to_numpy()
            elif _numeric(s.dtype):
                out = s.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                num = pd.to_numeric(s, errors="coerce")
                out = num.to_numpy(dtype=np.float64, na_value=np.nan)
        out = _writable(np.asarray(out, dtype=np.float64))
        self._floats[name] = out
        return out

    def ints(self, name: str) -> np.ndarray:
        """``name`` as int64 with 0 for null (exact for integer columns beyond 2**53)."""
        if not self.has(name):
            return np.zeros(self.n, dtype=np.int64)
        arr = self._array(name)
        if isinstance(arr, pd.arrays.IntegerArray):
            out = arr._data.astype(np.int64)
            out[arr._mask] = 0
            return out
        s = self.frame[name]
        if pd.api.types.is_integer_dtype(s.dtype):
            return _writable(np.asarray(s.to_numpy(dtype=np.int64, na_value=0), dtype=np.int64))
        num = pd.to_numeric(s, errors="coerce").astype("Int64")
        return _writable(np.asarray(num.fillna(0).to_numpy(dtype=np.int64), dtype=np.int64))

    def _source(self, name: str) -> tuple[Any, np.ndarray | None]:
        """Column ``name``, or its source and positions where a :class:`Columns` left it pending.

        The real-time path: a label column matched on its source rows (its codes then taken)
        is never gathered (:meth:`cemkit.columnar.Columns.source`).
        """
        if isinstance(self.frame, Columns):
            values, at = self.frame.source(name)
            if at is not None:  # the source's array: label_codes reads it as a Series's
                return values, at
        return self.frame[name], None

    def labels(self, name: str) -> tuple[np.ndarray, list[object]]:
        """Codes (int64, -1 for null) and distinct values of a label column (dictionary-encoded)."""
        got = self._labels.get(name)
        if got is not None:
            return got
        column, at = self._source(name) if self.has(name) else (None, None)
        if column is None:
            got = (np.full(self.n, -1, dtype=np.int64), [])
        elif name in self.vocabulary and _label_column(column.dtype):
            vocabulary: list[object] = list(self.vocabulary[name])
            codes = label_codes(column, self.vocabulary[name])
            # matched on the source rows: the codes of the rows taken
            got = (codes if at is None else codes[at], vocabulary)
            self._closed.add(name)
        else:
            got = _encode(self.frame[name])
        self._labels[name] = got
        return got

    def is_in(self, name: str, values: Collection[object]) -> np.ndarray:
        """Rows whose ``name`` is one of ``values`` (null: False)."""
        return self.bits(name, [values]) != 0

    def bits(self, name: str, sets: Sequence[Collection[object]]) -> np.ndarray:
        """One uint8 per row: bit k set when its ``name`` is in ``sets[k]`` (null: none).

        Up to 8 sets; every value must be in the column's vocabulary, when it has one.
        """
        if len(sets) > 8:
            raise ValueError(f"at most 8 sets of values per column, got {len(sets)}")
        codes, distinct = self.labels(name)
        if name in self._closed:  # a fixed vocabulary: its lookup table is built once
            lookup = _closed_lookup(name, tuple(distinct), tuple(frozenset(v) for v in sets))
        else:
            lookup = _lookup(distinct, sets)
        return lookup[codes]

    def bools(self, name: str) -> np.ndarray:
        """A boolean column (null: False)."""
        if not self.has(name):
            return np.zeros(self.n, dtype=bool)
        s = self.frame[name]
        return _writable(
            np.asarray(s.fillna(False).to_numpy(dtype=bool, na_value=False), dtype=bool)
        )


def _lookup(distinct: Sequence[object], sets: Sequence[Collection[object]]) -> np.ndarray:
    lookup = np.zeros(len(distinct) + 1, dtype=np.uint8)  # the last slot: null (code -1)
    for k, values in enumerate(sets):
        lookup[:-1] |= np.array([v in values for v in distinct], dtype=np.uint8) << k
    return lookup


@functools.lru_cache(maxsize=64)
def _closed_lookup(name: str, vocabulary: tuple[object, ...],
                   sets: tuple[frozenset[object], ...]) -> np.ndarray:  # fmt: skip
    unknown = {str(v) for vs in sets for v in vs} - {str(v) for v in vocabulary}
    if unknown:
        raise ValueError(f"{sorted(unknown)} not in the vocabulary of {name!r}")
    lookup = _lookup(vocabulary, sets)
    lookup.flags.writeable = False  # shared by every call
    return lookup


def _writable(a: np.ndarray) -> np.ndarray:
    # one array type for the kernels: Numba compiles read-only arrays as another type
    return a if a.flags.writeable else a.copy()


def _encode(s: pd.Series) -> tuple[np.ndarray, list[object]]:
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = np.asarray(s.cat.codes.to_numpy(), dtype=np.int64)
        return codes, list(s.cat.categories)
    if arrowstr.is_arrow_string(s.dtype) and len(s):
        codes, dictionary = arrowstr.dictionary_codes(pa.array(s.array))
        return codes, dictionary.to_pylist()
    codes, uniques = pd.factorize(s)
    return np.asarray(codes, dtype=np.int64), list(uniques)
