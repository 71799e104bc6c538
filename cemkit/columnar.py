"""A small batch held as column arrays between the stages of the real-time path.

pandas builds a new Series on every ``frame[name]`` (~15-50 µs) and a frame of a few thousand
rows costs about a millisecond to build: on a micro-batch of 4,000 records that is more than the
work itself. :class:`Columns` holds one batch as ``name → array`` (NumPy arrays and pandas
extension arrays, the arrays a frame holds) with its index; protect → stitch → correlate → KQIs
pass it along, and the pandas frame is built once, when the caller asks for the records.

It answers the read-only part of the frame interface the stage functions use (``columns``,
``index``, ``len``, ``name in``, ``cols[name]`` as a Series, made once per column and kept),
so the very same stage code runs on a frame and on a :class:`Columns`; the results are equal
value for value, dtype for dtype (tests/test_realtime.py compares the bytes written).

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"a": [1, 2], "b": ["x", None]}, index=[5, 7])
>>> cols = Columns.of(frame)
>>> len(cols), list(cols.columns), "a" in cols
(2, ['a', 'b'], True)
>>> cols["a"].tolist()
[1, 2]
>>> cols.frame().equals(frame)
True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd


class Columns:
    """One batch as column arrays (unique names) and an index; see the module docstring.

    Parameters
    ----------
    arrays : mapping of str to array
        Each column's values (a NumPy array or a pandas extension array), all of one length.
    index : pandas.Index
        The rows' labels (what the frame built from it carries).
    codes : mapping of str to int64 array, optional
        Integer codes of pseudonymized columns as protect made them (one dictionary of the
        values of all of them, -1 for null): equal codes are equal values, so a correlator keys
        rows by them instead of re-encoding the token strings. Only columns whose values are
        still the ones coded may carry them (a stage that selects rows selects their codes).
    """

    def __init__(self, arrays: Mapping[str, Any], index: pd.Index,
                 codes: Mapping[str, np.ndarray] | None = None) -> None:  # fmt: skip
        self.arrays = dict(arrays)
        self.index = index
        self.codes = dict(codes or {})
        self._series: dict[str, pd.Series] = {}
        self._columns: pd.Index | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Columns:
        """The columns of a frame (no copy: the frame's own arrays; its names must be unique)."""
        if not frame.columns.is_unique:
            raise ValueError("Columns needs unique column names")
        return cls({str(k): v for k, v in column_arrays(frame).items()}, frame.index)

    @property
    def attrs(self) -> dict[str, Any]:
        """Always empty: the arrays carry no frame's attrs (the protect mark is per frame)."""
        return {}

    @property
    def columns(self) -> pd.Index:
        """The column names, as a frame gives them."""
        if self._columns is None:
            self._columns = pd.Index(list(self.arrays), dtype=object)
        return self._columns

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, name: object) -> bool:
        return name in self.arrays

    def __getitem__(self, name: str) -> pd.Series:
        """Column ``name`` as a Series over the batch's index (made once, then kept)."""
        s = self._series.get(name)
        if s is None:
            s = self._series[name] = _series(self.arrays[name], self.index, name)
        return s

    def _iter_column_arrays(self) -> Iterator[Any]:
        """The arrays in column order (what ``DataFrame._iter_column_arrays`` gives a frame)."""
        return iter(self.arrays.values())

    def frame(self) -> pd.DataFrame:
        """The batch as a pandas frame (built from the arrays, without a copy)."""
        return pd.DataFrame(self.arrays, index=self.index, copy=False)

    def __repr__(self) -> str:
        return f"Columns({len(self)} rows, {len(self.arrays)} columns)"


def column_arrays(frame: pd.DataFrame) -> dict[Any, Any]:
    """Each column's values by name (the names must be unique): ndarrays and extension arrays.

    pandas builds a Series per ``frame[c]`` (~10 µs each, more than the work on a small batch's
    column); its ``_iter_column_arrays`` hands out the arrays it holds. Where a pandas version
    lacks it, the Series' arrays (the same values) are used.
    """
    names = frame.columns.tolist()  # one conversion (iterating Arrow-backed names is slow)
    arrays = getattr(frame, "_iter_column_arrays", None)
    if arrays is None:  # pragma: no cover - pandas without it
        return {c: frame[c].array for c in names}
    return dict(zip(names, arrays(), strict=True))


def _public_series(values: Any, index: pd.Index, name: str) -> pd.Series:
    return pd.Series(values, index=index, name=name, copy=False)


def _internal_series(values: Any, index: pd.Index, name: str) -> pd.Series:
    # the Series pandas' own frame indexing builds (a manager over the array, no validation of
    # values that a frame already holds): ~4x cheaper than the public constructor
    s = pd.Series._from_mgr(SingleBlockManager.from_array(values, index), axes=[index])
    object.__setattr__(s, "_name", name)
    return s


def _pick_series() -> Any:
    """The internal constructor where this pandas has it and it gives the public one's Series."""
    try:
        index = pd.RangeIndex(2)
        for values in (np.arange(2.0), pd.array([1, None], dtype="Int16"),
                       pd.array(["a", None], dtype="string[pyarrow]")):  # fmt: skip
            got = _internal_series(values, index, "x")
            want = _public_series(values, index, "x")
            if not (got.equals(want) and got.name == "x" and got.dtype == want.dtype):
                return _public_series
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - another pandas
        return _public_series
    return _internal_series


try:
    from pandas.core.internals import SingleBlockManager
except ImportError:  # pragma: no cover
    SingleBlockManager = None

_series = _pick_series()


def as_frame(records: Any) -> Any:
    """A :class:`Columns` as its frame; anything else as it is."""
    return records.frame() if isinstance(records, Columns) else records
