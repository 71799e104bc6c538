"""Arrow string buffers for kernels and back (cemkit.arrowstr), against pyarrow's own view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit import arrowstr

values = st.lists(st.one_of(st.none(), st.text(max_size=6)), max_size=30)


def _decoded(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray) -> list[str | None]:
    n = offsets.size - 1
    return [bytes(data[offsets[i] : offsets[i + 1]]).decode() if valid[i] else None
            for i in range(n)]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(values, st.integers(0, 5), st.integers(0, 5), st.booleans())
def test_buffers_of_slices_and_large_strings(vals, head, tail, large):
    arr = pa.array(vals, type=pa.large_string() if large else pa.string())
    sliced = arr.slice(min(head, len(arr)), max(0, len(arr) - head - tail))
    offsets, data, valid = arrowstr.buffers(sliced)
    assert offsets.dtype == (np.int64 if large else np.int32)
    assert _decoded(offsets, data, valid) == sliced.to_pylist()


@settings(max_examples=150, deadline=None)
@given(values, st.booleans())
def test_from_buffers_round_trip(vals, large):
    arr = pa.array(vals, type=pa.string())
    offsets, data, valid = arrowstr.buffers(arr)
    offsets = offsets - offsets[0]
    back = arrowstr.from_buffers(offsets, data, valid, large=large)
    assert back.type == (pa.large_string() if large else pa.string())
    assert back.null_count == arr.null_count
    assert back.to_pylist() == vals


def test_other_inputs():
    s = pd.Series(["+441", None, "x"], dtype="string[pyarrow]")
    chunked = pa.chunked_array([["a", None], ["bc"]])
    assert _decoded(*arrowstr.buffers(s)) == ["+441", None, "x"]
    assert _decoded(*arrowstr.buffers(chunked)) == ["a", None, "bc"]
    assert _decoded(*arrowstr.buffers(pa.array([1, None, 30]))) == ["1", None, "30"]
    assert _decoded(*arrowstr.buffers(pa.array([], pa.string()))) == []
