"""Normalizing the distinct values and expanding them equals normalizing every row."""

from __future__ import annotations

import naive
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


# Every byte class the rules tell apart: digits, '+', separators (RE2 \s, . - ( ) /), ASCII
# whitespace the trim strips but RE2's \s does not (\v, FS..US), letters, non-ASCII text and
# Unicode whitespace (trimmed at the ends only).
_CHARS = st.sampled_from(
    list("0123456789+ .-()/\t\n\f\r\v\x1c\x1fAx#*") + ["\u00a0", "\u3000", "é", "١"]
)
_ANY_NUMBER = st.one_of(
    st.none(),
    st.text(alphabet=_CHARS, max_size=20),
    st.tuples(st.sampled_from(["", " ", "+", "0", "00", "000", "+0", "+44", "0044", "07", "011"]),
              st.text(alphabet="0123456789", max_size=16),
              st.text(alphabet=_CHARS, max_size=3)).map("".join),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_ANY_NUMBER, min_size=0, max_size=40),
       region=st.sampled_from([None, "GB", "DE", "US", "FR", "IN", "BR", "AU", "IT"]))  # fmt: skip
def test_the_jitted_rules_equal_the_arrow_passes(values, region):
    # the reference: the rules as a dozen Arrow passes (the implementation before the kernel)
    arr = pa.array(values, pa.string())
    numbers, kinds = _normalize_distinct(arr, region)
    want_numbers, want_kinds = naive.normalize_distinct_arrow(pc.fill_null(arr, ""), region)
    assert numbers.to_pylist() == want_numbers.to_pylist()
    assert kinds.to_pylist() == want_kinds.to_pylist()
    assert numbers.type == pa.string() and kinds.type == pa.string()


def test_the_jitted_rules_on_a_slice_and_large_strings():
    values = ["", "0044 20 7946 0000", None, "020 7946 0000", "\u00a0+441632960961", "100"] * 3
    want = [a.to_pylist() for a in naive.normalize_distinct_arrow(
        pc.fill_null(pa.array(values[5:14], pa.string()), ""), "GB")]  # fmt: skip
    for arr in (pa.array(values, pa.string()).slice(5, 9),
                pa.array(values, pa.large_string()).slice(5, 9)):  # fmt: skip
        assert [a.to_pylist() for a in _normalize_distinct(arr, "GB")] == want


@settings(max_examples=40, deadline=None)
@given(values=st.lists(_NUMBER, min_size=0, max_size=30),
       region=st.sampled_from([None, "GB", "US"]), dictionary=st.booleans())  # fmt: skip
def test_large_results_equal_the_string_ones(values, region, dictionary):
    # what Converter.finish asks for: the pandas string dtype's large_string, cast on the
    # distinct values before the row take, the same values
    arr = pa.array(values, pa.string())
    if dictionary:
        arr = arr.dictionary_encode()
    small = normalize_arrow(arr, region)
    large = normalize_arrow(arr, region, large=True)
    assert [a.type for a in large] == [pa.large_string()] * 2
    assert [a.to_pylist() for a in large] == [a.to_pylist() for a in small]
