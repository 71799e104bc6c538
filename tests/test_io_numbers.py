"""The vectorized national-number fast path agrees with phonenumbers on every value."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.numbers import _national_plan, _parse_one, normalize

REGIONS = ["GB", "DE", "US", "FR", "NL", "IN", "DK", "IT", "AU", "BR"]


def _reference(value: str, region: str) -> tuple[str, str]:
    parsed = _parse_one(value, region)
    return (parsed, "e164") if parsed is not None else (value, "unparsed")


@settings(max_examples=60, deadline=None)
@given(
    region=st.sampled_from(REGIONS),
    values=st.lists(
        st.tuples(st.sampled_from(["0", "1", "01", "9", "011", "0800", "07"]),
                  st.text(alphabet="0123456789", min_size=6, max_size=13)),
        min_size=1, max_size=40,
    ),
)  # fmt: skip
def test_fast_path_matches_phonenumbers(region, values):
    raw = [p + d for p, d in values]
    e164, kind = normalize(pd.Series(raw, dtype="string[pyarrow]"), region)
    for value, got, got_kind in zip(raw, e164, kind, strict=True):
        if value.startswith("00"):  # international form: not the national fast path
            continue
        assert (got, got_kind) == _reference(value, region), value


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [("02079460000", "GB", "+442079460000"), ("03012345678", "DE", "+493012345678"),
     ("12125550123", "US", "+12125550123"), ("0142685300", "FR", "+33142685300")],
)  # fmt: skip
def test_fast_path_is_taken(value, region, expected, monkeypatch):
    from cemkit import numbers

    assert _national_plan(region) is not None

    def boom(*args):
        raise AssertionError("slow path used")

    monkeypatch.setattr(numbers, "_parse_one", boom)
    e164, kind = normalize(pd.Series([value], dtype="string[pyarrow]"), region)
    assert (e164[0], kind[0]) == (expected, "e164")
