"""The one key encoder (``_frames.key_codes``): token columns coded from their int64 bits.

Keys of pseudonym columns come from :mod:`cemkit.privacy.tokens` (bits and kept prefix) instead
of a dictionary of strings. Checked: the classes of equal keys are those of equal tuples of
strings (hypothesis, against tests/naive.py), with the prefix deciding where it must; and on
records of the real pipeline every correlator's output equals the output of the string encoder
main used (forced here by turning the token path off).
"""

from __future__ import annotations

import naive
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit import schema
from cemkit.correlate import _frames, asof, match, pair_legs, sessionize, stitch
from cemkit.privacy import load_policy, protect, tokens
from cemkit.privacy.keys import Key
from cemkit.privacy.operators.tokenize import tokenize_values
from cemkit.runs.library import correlate_stages
from cemkit.runs.stages import run_pandas

KEY = Key.from_material(b"k" * 32, key_id="cemkit-default-2026")
STRING = pd.StringDtype("pyarrow")


def equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True)


@pytest.fixture
def strings_only(monkeypatch):
    """Key columns encoded as main encoded them: a dictionary of the strings."""
    monkeypatch.setattr(_frames, "_token_codes", lambda arrays, null_is_value: None)


@pytest.fixture(scope="module")
def protected(small_world):
    out, _ = small_world
    records = schema.conform(pd.read_parquet(out / "records"))
    return protect(records, load_policy("default"), key=KEY)


def test_real_records_take_the_token_path(protected):
    for c in ("a_number", "b_number", "call_id"):
        assert tokens.split(pa.array(protected[c].array)) is not None, c
    for c in ("record_id", "service", "node"):
        assert tokens.split(pa.array(protected[c].array)) is None, c
    cols = [protected[c] for c in ("service", "a_number", "b_number")]
    key, size = _frames.composite_key(cols)
    values = list(zip(*(c.tolist() for c in cols), strict=True))
    assert naive.same_classes(key.tolist(), values) and int(key.max()) < size


def test_real_records_correlate_exactly_as_with_string_keys(protected, monkeypatch):
    calls = stitch(protected)
    paired = pair_legs(calls)
    matched = match(paired)
    labelled = sessionize(matched, output="records")
    run = run_pandas(protected, correlate_stages())
    assert (calls["src_partials"] > 1).sum() > 10 and paired["src_paired"].sum() > 100
    monkeypatch.setattr(_frames, "_token_codes", lambda arrays, null_is_value: None)
    equal(calls, stitch(protected))
    equal(paired, pair_legs(calls))
    equal(matched, match(paired))
    equal(labelled, sessionize(matched, output="records"))
    equal(run, run_pandas(protected, correlate_stages()))


def test_same_number_under_two_kept_prefixes_compares_as_the_strings_do():
    numbers = pa.array(["+441632960961", "+441632960962", "+441632960961"])
    four = pd.Series(tokenize_values(numbers, KEY, keep_digits=4), dtype=STRING)
    two = pd.Series(tokenize_values(numbers, KEY, keep_digits=2), dtype=STRING)
    assert four[0] != two[0] and four[0].split("#")[1] == two[0].split("#")[1]
    (k4, k2), _, _ = _frames.key_codes([[four], [two]])
    assert k4[0] == k4[2] != k4[1]
    assert not set(k4.tolist()) & set(k2.tolist())  # equal bits, other prefix: other values
    t = pd.Series(pd.to_datetime(["2026-01-01"] * 3, utc=True))
    left = pd.DataFrame({"a_number": four, "t": t})
    # the right side holds the two-digit tokens of all three and the four-digit one of the first
    right = pd.DataFrame(
        {
            "a_number": pd.concat([two, four[:1]], ignore_index=True),
            "t": pd.concat([t, t[:1]], ignore_index=True),
            "x": [1, 2, 3, 4],
        }
    )
    got = asof(left, right, on="t", by="a_number")
    want = pd.merge_asof(left, right, on="t", by="a_number")
    assert got["x"].fillna(-1).tolist() == want["x"].fillna(-1).tolist() == [4, -1, 4]


HEX = "0123456789abcdef"
prefixes = st.sampled_from(["", "+44", "+4420", "4420"])
hexes = st.sampled_from(["0" * 16, "f" * 16, "0123456789abcdef", "8" + "0" * 15])
token_values = st.one_of(
    st.builds(lambda p, h: f"{p}#{h}", prefixes, hexes),
    st.none(),
    st.just(""),
)
columns = st.lists(st.lists(token_values, min_size=0, max_size=25), min_size=1, max_size=3)


def _frames_of(data, split_at):
    rows = max(len(c) for c in data)
    cols = [pd.Series((c + [None] * rows)[:rows], dtype=STRING) for c in data]
    return [[c.iloc[:split_at] for c in cols], [c.iloc[split_at:] for c in cols]]


@settings(max_examples=150, deadline=None)
@given(columns, st.integers(0, 25), st.lists(st.booleans(), min_size=3, max_size=3),
       st.booleans(), st.booleans())  # fmt: skip
def test_key_classes_are_tuple_classes(data, split_at, flags, dense, broken):
    frames = _frames_of(data, split_at)
    if broken:  # one value that is not a token: that column falls back to the strings
        first = frames[0][0] if len(frames[0][0]) else frames[1][0]
        if len(first):
            first.iloc[0] = "synth:1"
    flags = flags[: len(data)]
    (a, b), base, n = _frames.key_codes(frames, flags, dense=dense)
    codes = np.concatenate([a, b])
    tuples = []
    for i in range(len(codes)):
        row = [pd.concat([f[j] for f in frames], ignore_index=True)[i] for j in range(len(data))]
        row = [None if v is pd.NA else v for v in row]
        null_key = any(v is None and not flags[j] for j, v in enumerate(row))
        tuples.append(None if null_key else tuple(row))
    assert naive.same_classes(codes.tolist(), tuples)
    live = codes[codes >= 0]
    assert ((live >= base) & (live < base + n)).all()
    if dense and len(data) > 1:
        assert sorted(set(live.tolist())) == list(range(n))
    single, size = _frames.composite_key([c for c in frames[0]], flags)
    assert naive.same_classes(single.tolist(), tuples[: len(single)])
    assert (single < size).all()


def test_frames_of_string_and_large_string_share_codes():
    large = pd.ArrowDtype(pa.large_string())
    for values in (["x", "y", None], ["+44#0123456789abcdef", None, "#0123456789abcdef"]):
        a = pd.Series(values, dtype=large)
        b = pd.Series(values[::-1], dtype=STRING)
        (ka, kb), _, _ = _frames.key_codes([[a], [b]])
        assert naive.same_classes(np.concatenate([ka, kb]).tolist(), values + values[::-1])
