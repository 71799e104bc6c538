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

A stage that selects or gathers rows may leave columns *pending* (:meth:`Columns.pending`: a
source array and the positions to take, not taken yet): a column is gathered when it is read
(``cols[name]``, :meth:`Columns.array`), and every column still pending when all are asked for
(:attr:`Columns.arrays`, :meth:`Columns.frame`), one gather per dtype
(:func:`gather_blocks`). The KQIs of a micro-batch read a third of the correlated columns; the
others are gathered only for a caller that reads the records.

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

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa


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
                 codes: Mapping[str, np.ndarray] | None = None, *,
                 owner: Any = None) -> None:  # fmt: skip
        self._arrays: dict[str, Any] = dict(arrays)  # arrays, or _Take (pending columns)
        self.index = index
        self.codes = dict(codes or {})
        #: What the arrays (and pending columns' sources) belong to, held while they live: a
        #: shallow copy of the caller's frame keeps pandas' copy-on-write watching its blocks
        #: (a change to the caller's frame copies them there; the arrays here stay as read)
        self.owner = owner
        self._series: dict[str, pd.Series] = {}
        self._columns: pd.Index | None = None

    @property
    def arrays(self) -> dict[str, Any]:
        """Every column's array by name (pending columns gathered now, one gather per dtype)."""
        if any(type(v) is _Take for v in self._arrays.values()):
            self._gather([c for c, v in self._arrays.items() if type(v) is _Take])
        return self._arrays

    def gather(self, names: Sequence[str]) -> None:
        """Gather the pending columns among ``names`` now (one gather per dtype), ahead of reads.

        For a reader of several columns (the KQIs): one call per dtype instead of one per column.
        """
        todo = [c for c in names if type(self._arrays.get(c)) is _Take]
        if todo:
            self._gather(todo)

    def array(self, name: str) -> Any:
        """Column ``name``'s array (a pending column is gathered, alone, and kept)."""
        v = self._arrays[name]
        if type(v) is _Take:
            self._gather([name])
            v = self._arrays[name]
        return v

    def source(self, name: str) -> tuple[Any, np.ndarray | None]:
        """Column ``name`` as ``(array, positions)``, taking nothing: ``array[positions]`` is it.

        A column pending as a selection (valid positions) gives its source array and the
        positions; any other column its own array and None. For a reader that only compares a
        label column (``leg == "term"``): compared on the source and the result taken by the
        positions (a small int or bool take), the strings are never gathered.
        """
        v = self._arrays[name]
        if type(v) is _Take and not v.missing:
            return v.base, v.idx
        return self.array(name), None

    def copy(self) -> Columns:
        """A new batch over the same arrays, index and codes (pending columns stay pending).

        No array is copied: a column put on one is not on the other (each holds its own names).
        For a stage whose result keeps every row in order (stitch of a batch of whole records).
        """
        out = Columns(self._arrays, self.index, self.codes, owner=self.owner)
        out._series = dict(self._series)  # (the same arrays over the same index)
        return out

    def put(self, name: str, values: Any) -> None:
        """Set column ``name`` to ``values`` (an array, or a Series, of the batch's length)."""
        self._arrays[name] = values.array if isinstance(values, pd.Series) else values
        self._series.pop(name, None)
        self._columns = None

    __setitem__ = put

    def put_taken(self, name: str, base: Any, idx: np.ndarray) -> None:
        """Set column ``name`` to ``base`` at the valid positions ``idx``, left pending.

        Gathered when read, as a column :meth:`pending` selected (``base`` need not be one of
        this batch's columns: stitch's reduced columns are a column with the groups' values
        after it). Columns put with one ``idx`` are gathered together.
        """
        self._arrays[name] = _Take(base, idx, False)
        self._series.pop(name, None)
        self._columns = None

    def pending(self, names: Sequence[str], idx: np.ndarray,
                missing: bool = False) -> dict[str, Any]:  # fmt: skip
        """Columns ``names`` at positions ``idx`` of this batch, as pending columns (none taken).

        ``missing=False``: ``idx`` are valid positions (a selection: the values and dtypes of
        :func:`~cemkit.correlate._frames.select_arrays`); ``missing=True``: -1 is a missing
        row, with the dtypes of :func:`~cemkit.correlate._frames.take_array`
        ``(..., as_if_missing=True)``. A column pending here is composed (its source at the
        composed positions): one gather, whenever it happens. For a new :class:`Columns`.
        """
        out: dict[str, Any] = {}
        composed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for c in names:
            v = self._arrays[c]
            if type(v) is not _Take:
                out[c] = _Take(v, idx, missing)
                continue
            got = composed.get(id(v.idx))
            if got is None:
                if not missing:
                    at = v.idx[idx]
                elif v.idx.size:
                    at = np.where(idx >= 0, v.idx[np.maximum(idx, 0)], -1)
                else:  # nothing selected before: every row missing
                    at = np.full(idx.size, -1, np.int64)
                got = composed[id(v.idx)] = (v.idx, at)  # (the source's idx kept: its id)
            out[c] = _Take(v.base, got[1], v.missing or missing)
        return out

    def _gather(self, names: list[str]) -> None:
        groups: dict[tuple[int, bool], list[str]] = {}
        for c in names:
            t = self._arrays[c]
            groups.setdefault((id(t.idx), t.missing), []).append(c)
        for cols in groups.values():
            first = self._arrays[cols[0]]
            taken = gather_blocks({c: self._arrays[c].base for c in cols}, cols, first.idx,
                                  missing=first.missing)  # fmt: skip
            self._arrays.update(taken)

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
            self._columns = pd.Index(list(self._arrays), dtype=object)
        return self._columns

    @property
    def names(self) -> list[str]:
        """The column names in order, as a list (what ``list(columns)`` gives, no Index built)."""
        return list(self._arrays)

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, name: object) -> bool:
        return name in self._arrays

    def __getitem__(self, name: str) -> pd.Series:
        """Column ``name`` as a Series over the batch's index (made once, then kept)."""
        s = self._series.get(name)
        if s is None:
            s = self._series[name] = _series(self.array(name), self.index, name)
        return s

    def _iter_column_arrays(self) -> Iterator[Any]:
        """The arrays in column order (what ``DataFrame._iter_column_arrays`` gives a frame)."""
        return iter(self.arrays.values())

    def frame(self) -> pd.DataFrame:
        """The batch as a pandas frame (built from the arrays, without a copy)."""
        return pd.DataFrame(self.arrays, index=self.index, copy=False)

    def __repr__(self) -> str:
        return f"Columns({len(self)} rows, {len(self._arrays)} columns)"


class _Take:
    """A pending column: ``base`` at positions ``idx`` (see :meth:`Columns.pending`)."""

    __slots__ = ("base", "idx", "missing")

    def __init__(self, base: Any, idx: np.ndarray, missing: bool) -> None:
        self.base, self.idx, self.missing = base, idx, missing


def _block_kind(arr: Any) -> tuple[str, Any] | None:
    """How a column is gathered in a block with others of its dtype (None: on its own)."""
    dtype = arr.dtype
    if isinstance(arr, pd.arrays.ArrowStringArray):
        return ("arrow", dtype)
    if isinstance(arr, np.ndarray) and dtype.kind in "iufmM":
        return ("numpy", dtype)
    if isinstance(arr, pd.arrays.IntegerArray | pd.arrays.BooleanArray | pd.arrays.FloatingArray):
        return ("masked", dtype)
    if isinstance(arr, pd.arrays.DatetimeArray) and isinstance(dtype, pd.DatetimeTZDtype):
        return ("datetime", dtype)
    return None


def gather_blocks(arrays: dict[str, Any], names: Sequence[str], idx: np.ndarray,
                   missing: bool) -> dict[str, Any]:  # fmt: skip
    """Each named array at positions ``idx`` (the Arrow string columns by one Arrow call).

    ``missing=False``: ``idx`` are valid, ascending positions (a selection: the values and
    dtypes of :func:`~cemkit.correlate._frames.select_arrays`). ``missing=True``: -1 is a
    missing row, with the dtypes and values of
    :func:`~cemkit.correlate._frames.take_array` ``(..., as_if_missing=True)`` (integers
    become float64 with NaN, datetimes NaT, extension arrays null, Arrow strings null).
    """
    from cemkit.correlate import _kernels  # (they import this module)
    from cemkit.correlate._frames import take_array
    from cemkit.correlate._kernels import NULL_TIME

    if len(names) == 1 and isinstance(arrays[names[0]], pd.arrays.ArrowStringArray):
        arr = arrays[names[0]]  # one string column read alone: its own take, no table
        if missing:
            return {names[0]: take_array(arr, idx, as_if_missing=True)}
        return {names[0]: type(arr)(pa.array(arr).take(pa.array(idx)), dtype=arr.dtype)}
    out: dict[str, Any] = {}
    # each column by the jitted gather of its values (and mask): ~4 µs a column, where a NumPy
    # fancy index of a 2-D block of its dtype cost more than the per-call overhead it saved;
    # only Arrow strings are gathered together (one Arrow call for all of them)
    strings: list[str] = []
    n = next(iter(arrays.values())).shape[0] if arrays else 0
    for c in names:
        arr = arrays[c]
        block_kind = _block_kind(arr) if n else None
        if block_kind is None:
            out[c] = (take_array(arr, idx, as_if_missing=True) if missing
                      else arr.take(idx) if isinstance(arr, np.ndarray)
                      else arr[idx])  # fmt: skip
            continue
        kind, dtype = block_kind
        if kind == "arrow":
            strings.append(c)
        elif kind == "numpy":
            if missing:
                out[c] = take_array(arr, idx, as_if_missing=True)
            else:
                out[c] = arr.take(idx)
        elif kind == "masked":
            values = arr._data
            out[c] = type(arr)(_kernels.gather(values, idx, values.dtype, 0),
                               _kernels.gather(arr._mask, idx, np.bool_, True))  # fmt: skip
        else:  # tz-aware datetimes: their int64 values
            values = _kernels.gather(arr.asi8, idx, np.int64, NULL_TIME)
            # the values are the column's own (validated when it was made): no re-parse
            out[c] = type(arr)._simple_new(values.view(f"datetime64[{dtype.unit}]"), dtype=dtype)
    if strings:
        arrow_idx = pa.array(idx, mask=idx < 0) if missing else pa.array(idx)
        data = [pa.array(arrays[c]) for c in strings]
        # a column the source never fills (IMSI on a PBX): nulls, nothing to take
        for c, d in zip(strings, data, strict=True):
            if d.null_count == len(d):
                out[c] = pd.arrays.ArrowStringArray(pa.nulls(idx.size, d.type),
                                                    dtype=arrays[c].dtype)  # fmt: skip
        some = [(c, d) for c, d in zip(strings, data, strict=True) if c not in out]
        if some:
            table = pa.table([d for _, d in some], names=[str(i) for i in range(len(some))])
            taken = table.take(arrow_idx)
            for (c, _), col in zip(some, taken.columns, strict=True):
                out[c] = pd.arrays.ArrowStringArray(col, dtype=arrays[c].dtype)
    return {c: out[c] for c in names}


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
    return dict(zip(names, _arrays_of(frame), strict=True))


def _arrays_by_column(frame: pd.DataFrame) -> list[Any]:
    return list(frame._iter_column_arrays())


def _arrays_by_block(frame: pd.DataFrame) -> list[Any]:
    # each block's columns at once (what ``_iter_column_arrays`` gives, ~3 µs a column less:
    # it looks the block up per column); a 2-D block's rows are views, as there
    out: list[Any] = [None] * len(frame.columns)
    for blk in frame._mgr.blocks:
        values = blk.values
        if values.ndim == 1:
            out[blk.mgr_locs.as_array[0]] = values
        else:
            for row, at in enumerate(blk.mgr_locs.as_array.tolist()):
                out[at] = values[row]
    return out


def _pick_arrays() -> Any:
    """The block walk where this pandas has the blocks it expects and it gives the same arrays."""
    try:
        frame = pd.DataFrame({"i": [1, 2], "s": pd.array(["a", None], dtype="string[pyarrow]"),
                              "f": [1.0, 2.0], "t": pd.to_datetime([1, 2], utc=True),
                              "j": [3, 4], "u": pd.to_datetime([3, 4], utc=True),
                              "m": pd.array([1, None], dtype="Int16")})  # fmt: skip
        frame["k"] = np.arange(2)  # an unconsolidated block too
        got, want = _arrays_by_block(frame), _arrays_by_column(frame)
        if len(got) != len(want) or not all(
            type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
            and pd.array(a).equals(pd.array(b)) for a, b in zip(got, want, strict=True)
        ):  # fmt: skip
            return _arrays_by_column  # pragma: no cover - another pandas
    except (AttributeError, IndexError, TypeError, ValueError):  # pragma: no cover
        return _arrays_by_column
    return _arrays_by_block


_arrays_of = _pick_arrays()


def column_array(frame: pd.DataFrame, name: Any) -> Any:
    """One column's values (what :func:`column_arrays` gives for it), without reading the others.

    For a reader of a few columns of a wide frame (the alerts read ~15 of a KQI table's 67).
    """
    get = getattr(frame, "_get_column_array", None)
    if get is None or not frame.columns.is_unique:  # pragma: no cover - another pandas
        return frame[name].array
    return get(frame.columns.get_loc(name))


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
    from pandas._libs.internals import BlockPlacement
    from pandas.core.internals import BlockManager, SingleBlockManager
    from pandas.core.internals.blocks import new_block
except ImportError:  # pragma: no cover
    SingleBlockManager = BlockManager = BlockPlacement = new_block = None

_series = _pick_series()


def series(values: Any, name: str) -> pd.Series:
    """``values`` as a Series over a RangeIndex (no copy, no validation: a frame's own arrays)."""
    return _series(values, pd.RangeIndex(len(values)), name)


def frame_of_blocks(blocks: Sequence[Any], columns: Sequence[str]) -> pd.DataFrame:
    """A frame over a RangeIndex from column blocks, in order, without a copy.

    Each block is a 2-D NumPy array (one row per column: ``k`` columns of one dtype) or a 1-D
    array (one column: an extension array, or NumPy). What ``pd.concat`` of one frame per
    block gives (same columns, dtypes, values), built as one block manager: a 60-column table
    of a few hundred rows costs ~50 µs instead of ~0.6 ms.
    """
    # a table's column names are the same every call: their Index inferred once, a new Index
    # object over the same values per frame (a caller may set its name)
    return _frame_of_blocks(blocks, _column_index(tuple(columns)).copy(deep=False))


@functools.lru_cache(maxsize=64)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    return pd.Index(list(names))


def _public_frame(blocks: Sequence[Any], columns: pd.Index) -> pd.DataFrame:
    arrays: list[Any] = []
    for b in blocks:
        arrays.extend(b if isinstance(b, np.ndarray) and b.ndim == 2 else [b])
    n = len(arrays[0]) if arrays else 0
    return pd.DataFrame(dict(zip(range(len(arrays)), arrays, strict=True)), index=pd.RangeIndex(n),
                        copy=False).set_axis(columns, axis=1)  # fmt: skip


def _internal_frame(blocks: Sequence[Any], columns: pd.Index) -> pd.DataFrame:
    made, at, n = [], 0, 0
    for b in blocks:
        values = b
        if not (isinstance(b, np.ndarray) and b.ndim == 2):
            values = b.reshape(1, -1) if isinstance(b, np.ndarray | pd.arrays.DatetimeArray) else b
        k = values.shape[0] if values.ndim == 2 else 1
        n = values.shape[-1]
        made.append(new_block(values, BlockPlacement(slice(at, at + k)), ndim=2))
        at += k
    if at != len(columns):
        raise ValueError(f"{at} columns in the blocks, {len(columns)} names")
    mgr = BlockManager(tuple(made), [columns, pd.RangeIndex(n)])
    return pd.DataFrame._from_mgr(mgr, axes=mgr.axes)


def _pick_frame() -> Any:
    """The block-manager constructor where this pandas has it and it gives the public frame."""
    try:
        blocks = [pd.array(["a", None], dtype="string[pyarrow]"),
                  pd.array(np.array([1, 2], "datetime64[ns]"), dtype="datetime64[ns, UTC]"),
                  np.arange(4, dtype=np.int64).reshape(2, 2), np.arange(2.0)]  # fmt: skip
        columns = pd.Index(["s", "t", "i", "j", "f"])
        got, want = _internal_frame(blocks, columns), _public_frame(blocks, columns)
        pd.testing.assert_frame_equal(got, want)
        pd.testing.assert_index_equal(got.columns, want.columns, exact=True)
    except (AssertionError, AttributeError, TypeError, ValueError):  # pragma: no cover
        return _public_frame
    return _internal_frame


def as_frame(records: Any) -> Any:
    """A :class:`Columns` as its frame; anything else as it is."""
    return records.frame() if isinstance(records, Columns) else records


_frame_of_blocks = _pick_frame()


def array_of(records: Any, name: str) -> Any:
    """Column ``name``'s array of a frame or a :class:`Columns` (a micro-batch's, no Series)."""
    return records.array(name) if isinstance(records, Columns) else records[name].array


def column_names(frame: Any) -> Any:
    """What ``name in`` asks for a column: a frame's columns, or a :class:`Columns` itself.

    (A :class:`Columns`'s ``columns`` Index is built on first use: more than the check costs.)
    """
    return frame if isinstance(frame, Columns) else frame.columns
