"""Arrow string buffers for kernels and back (cemkit.arrowstr), against pyarrow's own view."""

from __future__ import annotations

import itertools

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


def test_arrow_strings_of_reads_only_arrow_backed_string_columns():
    """The one predicate and getter every stage uses: Arrow strings read as they are, no copy."""
    own = pa.array(["a", None], pa.large_string())
    for s in (pd.Series(["a", None], dtype="string[pyarrow]"),
              pd.Series(pd.arrays.ArrowExtensionArray(own))):  # fmt: skip
        assert arrowstr.is_arrow_string(s.dtype)
        got = arrowstr.arrow_strings_of(s)
        assert got is not None and got.to_pylist() == ["a", None]
    got = arrowstr.arrow_strings_of(pd.Series(pd.arrays.ArrowExtensionArray(own)))
    got = got.chunk(0) if isinstance(got, pa.ChunkedArray) else got
    assert got.buffers()[2].address == own.buffers()[2].address
    for s in (pd.Series(["a"], dtype=object), pd.Series([1, 2]), pd.Series(["x"], dtype="category"),
              pd.Series(pd.arrays.ArrowExtensionArray(pa.array([1, 2])))):  # fmt: skip
        assert not arrowstr.is_arrow_string(s.dtype)
        assert arrowstr.arrow_strings_of(s) is None


@settings(max_examples=150, deadline=None)
@given(values, st.lists(st.integers(0, 30), max_size=3), st.booleans(), st.booleans())
def test_dictionary_codes_against_first_appearance(vals, cuts, large, own_null):
    """Codes by first appearance across chunks, nulls -1 or a code of their own (n)."""
    typ = pa.large_string() if large else pa.string()
    bounds = [0, *sorted(min(c, len(vals)) for c in cuts), len(vals)]
    chunked = pa.chunked_array(
        [pa.array(vals[a:b], typ) for a, b in itertools.pairwise(bounds)], typ
    )
    seen: dict[str, int] = {}
    for v in vals:
        if v is not None:
            seen.setdefault(v, len(seen))
    null = len(seen) if own_null else -1
    want = [null if v is None else seen[v] for v in vals]
    for given_values in (chunked, pa.array(vals, typ)):
        codes, dictionary = arrowstr.dictionary_codes(given_values, None if own_null else -1)
        assert codes.dtype == np.int64
        assert codes.tolist() == want
        assert dictionary.to_pylist() == list(seen)
