"""Normalizing the distinct values and expanding them equals normalizing every row."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.numbers import _normalize_distinct, normalize_arrow

_NUMBER = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "100", "+441632960961", "01632 960961", "0044 1632 960961",
                     "(020) 7946-0000", "+0123", "abc", "0800 123456"]),
    st.tuples(st.sampled_from(["", "+", "0", "00", "+44", "07"]),
              st.text(alphabet="0123456789 -.", min_size=0, max_size=14)).map("".join),
)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(values=st.lists(_NUMBER, min_size=0, max_size=60),
       region=st.sampled_from([None, "GB", "DE", "US"]))  # fmt: skip
def test_distinct_values_give_the_per_row_result(values, region):
    arr = pa.array(values, pa.string())
    numbers, kinds = normalize_arrow(arr, region)
    # the reference: every row through the same rules, no deduplication
    want_numbers, want_kinds = _normalize_distinct(pc.fill_null(arr, ""), region)
    assert numbers.to_pylist() == want_numbers.to_pylist()
    assert kinds.to_pylist() == want_kinds.to_pylist()
    assert numbers.type == pa.string() and kinds.type == pa.string()
