"""The operator interface: one operator per action, validated before any data is touched.

Operators execute the rules of :mod:`cemkit.privacy.policy` on one column. They work on the
*distinct* values of a column (:func:`on_distinct`): a column of 10M records with 1M distinct
numbers costs 1M transformations, and the result is expanded back with one ``take``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa

from cemkit.errors import KeyMaterialError, PolicyError
from cemkit.privacy.keys import Key
from cemkit.privacy.policy import Rule

STRING = pd.StringDtype("pyarrow")


def column_kind(dtype: object) -> str:
    """The kind of a pandas dtype: "string", "time", "number" or "other"."""
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "time"
    if pd.api.types.is_string_dtype(dtype) or dtype is np.dtype(object):
        return "string"
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return "number"
    return "other"


def to_arrow(series: pd.Series) -> pa.Array:
    """The column as one Arrow string array (nulls kept)."""
    if series.dtype != STRING:
        series = series.astype(STRING)
    arr = pa.array(series.array)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.string()) if arr.type != pa.string() else arr


def from_arrow(arr: pa.Array, index: pd.Index) -> pd.Series:
    """A pandas string Series (``string[pyarrow]``) over an Arrow array, without copying."""
    if arr.type != pa.large_string() and arr.type != pa.string():
        arr = arr.cast(pa.string())
    # a large_string array is what pandas holds (it casts a string one itself)
    return pd.Series(pd.arrays.ArrowStringArray(arr), index=index, copy=False)


def on_distinct(series: pd.Series, transform: Callable[[pa.Array], pa.Array]) -> pd.Series:
    """Apply ``transform`` to the distinct non-null values of a column and expand the result.

    ``transform`` receives an Arrow string array of distinct values (no nulls) and returns an
    array of the same length (nulls allowed). Nulls in the input stay null. When no value
    changes, the input ``string[pyarrow]`` column itself is returned.
    """
    encoded = to_arrow(series).dictionary_encode()
    mapped = transform(encoded.dictionary)
    if len(mapped) != len(encoded.dictionary):
        raise AssertionError("operator returned a different number of values")  # a bug, not data
    if series.dtype == STRING and mapped.equals(encoded.dictionary):
        return series  # nothing to replace (node names): the column as it came, not a copy
    return from_arrow(mapped.take(encoded.indices), series.index)


class Operator(abc.ABC):
    """Executes one rule on one column.

    Subclasses set :attr:`action` and implement :meth:`apply`. :meth:`validate` runs once,
    when the plan is built from the frame's columns and dtypes, before any value is read.
    """

    action: ClassVar[str]
    #: Column kinds the operator accepts (see :func:`column_kind`); None accepts all.
    kinds: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, rule: Rule, column: str, key: Key | None = None) -> None:
        self.rule = rule
        self.column = column
        self.key = key

    def validate(self, dtype: object) -> None:
        """Check the rule against the column's dtype and the key, before data is touched."""
        kind = column_kind(dtype)
        if self.kinds is not None and kind not in self.kinds:
            raise PolicyError(
                f"column {self.column!r}: action {self.action!r} does not apply to a {kind} "
                f"column (dtype {dtype})",
                hint=f"use it on {' or '.join(self.kinds)} columns, or choose another action",
            )
        if self.rule.needs_key and self.key is None:
            raise KeyMaterialError(
                f"column {self.column!r}: action {self.action!r} needs a key and none was given",
                hint="add `key: {id: ..., env: CEMKIT_KEY}` to the policy and set the variable",
            )

    @abc.abstractmethod
    def apply(self, series: pd.Series) -> pd.Series | None:
        """The protected column, or None to drop it."""

    def apply_frame(self, df: pd.DataFrame) -> pd.Series | None:
        """The protected column, given the whole unprotected frame.

        Operators that read other columns (``grid`` reads the latitude to size longitude
        steps) override it.
        """
        return self.apply(df[self.column])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(column={self.column!r}, rule={self.rule!r})"
