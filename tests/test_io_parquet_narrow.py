"""A run reads canonical Parquet's label columns narrow, from their dictionary pages.

The records are what narrowing the strings gave (same values, same categories in the same
order, same quarantine), without the strings being made or hashed again (cemkit.labels).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cemkit
from cemkit import labels
from cemkit.io.api import plan
from cemkit.runs import runner

KEY = "3d6a9c2f5b8e1d4a7c0f3b6e9a2d5c8f1b4e7a0d3c6f9b2e5a8d1c4f7b0e3a6d"


def _as_strings_narrowed(loader, part):
    records, quarantine = loader.read_part(part)  # the strings, as cemkit.load gives them
    return labels.narrow(records), quarantine


def _same(got, want):
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    for c in got.columns:  # (an unordered dtype equals one of its categories in another order)
        if isinstance(got[c].dtype, pd.CategoricalDtype):
            assert list(got[c].cat.categories) == list(want[c].cat.categories), c


@pytest.fixture(scope="module")
def run_records(small_world, tmp_path_factory):
    """The records a run wrote (labels stored dictionary-encoded, no Arrow schema)."""
    world, _ = small_world
    out = tmp_path_factory.mktemp("run") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CEMKIT_KEY", KEY)
        cemkit.run(world / "records", format="parquet", policy="default",
                   model=world / "model.yaml", out=out, scheduler="sync")  # fmt: skip
    return out / "records"


@pytest.mark.parametrize("which", ["synthetic world", "a run's records"])
def test_parquet_labels_read_narrow_equal_their_strings_narrowed(small_world, run_records,
                                                                 which):  # fmt: skip
    path = small_world[0] / "records" if which == "synthetic world" else run_records
    p = plan(str(path), "parquet")
    for part in p.parts:
        got, got_q = p.loader.read_part_narrow(part)
        want, want_q = _as_strings_narrowed(p.loader, part)
        assert isinstance(got["outcome"].dtype, pd.CategoricalDtype)
        _same(got, want)
        pd.testing.assert_frame_equal(got_q, want_q)
    # cemkit.load (read_part) still gives the strings
    assert p.loader.read_part(p.parts[0])[0]["outcome"].dtype == pd.StringDtype("pyarrow")


def test_a_runs_read_makes_no_label_strings(small_world, monkeypatch, tmp_path):
    # the read of a part as a run does it: no label column is matched as strings (the
    # narrowing of Arrow strings goes through label_codes), and the same records come out
    p = plan(str(small_world[0] / "records"), "parquet")
    want, _ = _as_strings_narrowed(p.loader, p.parts[0])
    calls = []
    real = labels.label_codes

    def spy(values, vocabulary):
        if not isinstance(getattr(values, "array", values), pd.Categorical):
            calls.append(vocabulary)
        return real(values, vocabulary)

    monkeypatch.setattr(labels, "label_codes", spy)
    got, counts = runner._read_part(p.loader, p.parts[0], 0, [], False, str(tmp_path), None,
                                    None)  # fmt: skip
    assert calls == []
    _same(got, labels.narrow(want, labels.PROTECTED))  # (node: once protected; none here)
    assert counts["rows_loaded"] == len(want)


def test_values_only_quarantined_rows_held_are_no_categories(small_world, tmp_path):
    # a service outside the schema's values and a source only a row without a record id holds:
    # both rows quarantined, neither value a category of the records kept (as from strings)
    table = pq.read_table(small_world[0] / "records").slice(0, 300)
    frame = table.to_pandas()
    frame.loc[3, "service"] = "telepathy"
    frame.loc[7, "source"] = "lonely-probe"
    frame.loc[7, "record_id"] = None
    # released_by stored as an Arrow dictionary whose values are in another order than sorted
    order = ["network", "caller", "callee"]
    frame["released_by"] = pd.Categorical(frame["released_by"], categories=order)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "x.parquet",
                   row_group_size=120)  # fmt: skip
    p = plan(str(tmp_path / "x.parquet"), "parquet")
    assert len(p.parts) == 3
    for part in p.parts:
        got, got_q = p.loader.read_part_narrow(part)
        want, want_q = _as_strings_narrowed(p.loader, part)
        _same(got, want)
        pd.testing.assert_frame_equal(got_q, want_q)
        assert "telepathy" not in got["service"].cat.categories
        assert "lonely-probe" not in got["source"].cat.categories
        assert list(got["released_by"].cat.categories) == sorted(order)
    quarantined = pd.concat([p.loader.read_part_narrow(x)[1] for x in p.parts])
    assert sorted(quarantined["field"]) == ["record_id", "service"]


@settings(max_examples=60, deadline=None)
@given(
    st.permutations(list(labels.VOCABULARIES["outcome"])),
    st.lists(st.integers(-1, len(labels.VOCABULARIES["outcome"]) - 1), max_size=40),
)
def test_a_categorical_in_another_order_is_narrowed_to_the_sorted_categories(order, codes):
    values = pd.Categorical.from_codes(codes, categories=order)
    got = labels.narrow_array("outcome", values)
    assert list(got.categories) == sorted(order)
    assert list(got) == list(values)  # the same values (nulls where -1)
