"""The Examples sections of the public correlators run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["asof", "stitch", "pair_legs", "match", "sessionize", "calls"])
def test_docstring_examples(name):
    module = importlib.import_module(f"cemkit.correlate.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_documented_columns_match_outputs():
    from cemkit.correlate import (
        MATCH_COLUMNS,
        PAIR_COLUMNS,
        RECORD_INTENT_COLUMNS,
        STITCH_COLUMNS,
    )

    for columns in (STITCH_COLUMNS, PAIR_COLUMNS, MATCH_COLUMNS, RECORD_INTENT_COLUMNS):
        assert all(name.startswith("src_") for name in columns)
        assert all(meaning for meaning in columns.values())
