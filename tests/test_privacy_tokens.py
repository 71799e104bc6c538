"""The token codec against the slow reference in tests/naive.py (hypothesis), and its layout."""

import naive
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.privacy import tokens

SETTINGS = settings(max_examples=200, deadline=None)

HEX = "0123456789abcdef"
prefixes = st.one_of(
    st.sampled_from(["", "+", "+44", "+4420", "4420", "+1", "0", "+" + "9" * 17, "9" * 17]),
    st.text("0123456789", max_size=18).map(lambda d: "+" + d),  # 18 digits: not a token
)
hexes = st.one_of(
    st.text(HEX, min_size=16, max_size=16),
    st.sampled_from(["0" * 16, "f" * 16, "8" + "0" * 15, "7" + "f" * 15]),
)
tokens_ = st.builds(lambda p, h: f"{p}#{h}", prefixes, hexes)
# strings that are almost tokens, and others cemkit columns hold
others = st.one_of(
    st.builds(lambda p, h: f"{p}#{h.upper()}", prefixes, hexes),
    st.builds(lambda p, h: f"{p}#{h[:15]}", prefixes, hexes),
    st.builds(lambda p, h: f"{p}#{h}0", prefixes, hexes),
    st.builds(lambda p, h: f"{p}{h}", prefixes, hexes),
    st.builds(lambda p, h: f"{p}x#{h}", prefixes, hexes),
    st.sampled_from(["synth:1", "#", "+4420", "٣#0123456789abcdef", "é#0123456789abcdef"]),
    st.text(max_size=20),
)
mostly_tokens = st.lists(st.one_of(tokens_, tokens_, tokens_, st.none(), st.just("")), max_size=60)
anything = st.lists(st.one_of(tokens_, st.none(), st.just(""), others), max_size=30)


def _arrow(values, large, cut):
    arr = pa.array(["pad"] * cut + values, pa.large_string() if large else pa.string())
    return arr.slice(cut)  # an offset into the buffers, as a slice of a column has


@SETTINGS
@given(st.one_of(mostly_tokens, anything), st.booleans(), st.integers(0, 9))
def test_split_equals_reference(values, large, cut):
    expected = naive.token_split(values)
    got = tokens.split(_arrow(values, large, cut))
    if expected is None:
        assert got is None
        return
    assert got is not None
    bits, codes, prefixes = expected
    assert got.bits.dtype == np.int64 and got.bits.tolist() == bits
    assert got.prefix.tolist() == codes
    assert got.prefixes.to_pylist() == prefixes


@SETTINGS
@given(mostly_tokens, st.booleans(), st.integers(0, 9))
def test_join_gives_the_strings_back(values, large, cut):
    codes = tokens.split(_arrow(values, large, cut))
    if codes is None:
        assert naive.token_split(values) is None
        return
    joined = tokens.join(codes)
    assert joined.to_pylist() == values == naive.token_join(*naive.token_split(values))
    assert joined.null_count == sum(v is None for v in values)


@SETTINGS
@given(mostly_tokens, st.integers(0, 13))
def test_factorize_codes_equal_exactly_when_strings_equal(values, part_bits):
    codes = tokens.split(pa.array(values, pa.string()))
    if codes is None:
        return
    got, m = tokens.factorize(codes.bits, codes.prefix)
    assert naive.same_classes(got.tolist(), values)
    assert sorted(set(got[got >= 0].tolist())) == list(range(m))
    # every partitioning of the kernel gives the same classes
    k, m2 = tokens._factorize_kernel(codes.bits.view(np.uint64),
                                     codes.prefix.astype(np.int64), part_bits)  # fmt: skip
    assert m2 == m and naive.same_classes(k.tolist(), values)


def test_same_bits_under_two_prefixes_are_two_values():
    # the same number tokenized with 4 and with 2 digits kept: equal bits, unequal strings
    values = ["+4420#0123456789abcdef", "+44#0123456789abcdef", "+4420#0123456789abcdef"]
    codes = tokens.split(pa.array(values))
    assert codes.bits[0] == codes.bits[1]
    got, m = tokens.factorize(codes.bits, codes.prefix)
    assert m == 2 and got[0] == got[2] != got[1]


def test_large_column_factorizes_over_many_partitions():
    rng = np.random.default_rng(5)
    pool = rng.integers(-(2**63), 2**63 - 1, 30_000, dtype=np.int64)
    bits = pool[rng.integers(0, pool.size, 200_000)]
    tag = rng.integers(0, 3, bits.size)
    got, m = tokens.factorize(bits, tag)
    pairs = bits.astype(object) * 4 + tag  # exact Python ints: the classes to compare with
    assert m == len(set(pairs.tolist()))
    first = {}
    for c, p in zip(got.tolist(), pairs.tolist(), strict=True):
        assert first.setdefault(p, c) == c
    assert len(set(first.values())) == m


@SETTINGS
@given(mostly_tokens)
def test_struct_layout_round_trips_through_parquet(tmp_path_factory, values):
    codes = tokens.split(pa.array(values, pa.string()))
    if codes is None:
        return
    struct = tokens.to_struct(codes)
    assert tokens.is_token_struct(struct.type)
    path = tmp_path_factory.mktemp("tok") / "t.parquet"
    pq.write_table(pa.table({"a_number": struct}), path)
    back = pq.read_table(path).column("a_number")
    assert tokens.is_token_struct(back.type)
    assert tokens.join(tokens.from_struct(back)).to_pylist() == values


def test_not_tokens():
    assert tokens.split(pa.array([None, None], pa.string())) is None
    assert tokens.split(pa.array([1, 2])) is None
    assert tokens.split(pa.array(["+4420#0123456789abcdef", "+4420#0123456789abcdeg"])) is None


def test_docstring_examples():
    import doctest

    result = doctest.testmod(tokens, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
