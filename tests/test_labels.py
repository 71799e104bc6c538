"""Label columns carried narrow (cemkit.labels): same values, same files, codes by one helper."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cemkit
from cemkit import labels, synth
from cemkit.runs import store

KEY = "5c2e8b1f4a7d0c3e6b9f2a5d8c1e4b7a0d3f6c9e2b5a8d1f4c7e0b3a6d9f2c5e"
OUTCOMES = ["answered", "busy", "no_answer", "failed", None]
STRING = pd.StringDtype("pyarrow")

values = st.lists(st.sampled_from(OUTCOMES + ["other", ""]), max_size=60)


def _reference_codes(items: list[object], vocabulary: list[str]) -> list[int]:
    """The slow, obvious answer: the index of each value in the vocabulary, else -1."""
    return [vocabulary.index(v) if v in vocabulary else -1 for v in items]


@settings(max_examples=80, deadline=None)
@given(values, st.lists(st.sampled_from(["answered", "busy", "other", ""]), unique=True))
def test_label_codes_equal_the_reference(items, vocabulary):
    want = _reference_codes(items, vocabulary)
    strings = pd.Series(items, dtype=STRING)
    narrowed = labels.narrow(pd.DataFrame({"outcome": strings}))["outcome"]
    assert labels.label_codes(strings, vocabulary).tolist() == want
    assert labels.label_codes(narrowed, vocabulary).tolist() == want
    assert labels.label_codes(pd.Series(items, dtype=object), vocabulary).tolist() == want


@settings(max_examples=60, deadline=None)
@given(values, values)
def test_narrow_keeps_values_and_widen_gives_the_strings_back(outcomes, sources):
    n = min(len(outcomes), len(sources))
    frame = pd.DataFrame({"outcome": pd.Series(outcomes[:n], dtype=STRING),
                          "source": pd.Series(sources[:n], dtype=STRING),
                          "a_number": pd.Series(sources[:n], dtype=STRING)})  # fmt: skip
    narrowed = labels.narrow(frame)
    assert isinstance(narrowed["outcome"].dtype, pd.CategoricalDtype)
    assert isinstance(narrowed["source"].dtype, pd.CategoricalDtype)
    assert narrowed["a_number"].dtype == STRING  # not a label: as it was
    # categories sorted (sorting by the column orders rows as its strings did), vocabulary first
    cats = list(narrowed["outcome"].cat.categories)
    assert cats == sorted(cats) and set(labels.VOCABULARIES["outcome"]) <= set(cats)
    pd.testing.assert_frame_equal(labels.widen(narrowed), frame)
    assert frame["outcome"].dtype == STRING  # the input frame untouched


def _file_bytes(df: pd.DataFrame, tmp: Path, name: str) -> bytes:
    (tmp / name).mkdir()
    written = store.write_part(df, tmp / name, 0)
    return (tmp / name / written["file"]).read_bytes()


@pytest.mark.parametrize("n", [0, 1, 7, 40, 25_000])
def test_a_narrowed_frame_is_written_as_its_strings_byte_for_byte(tmp_path, n):
    rng = np.random.default_rng(n)
    picks = rng.integers(0, len(OUTCOMES), n)
    frame = pd.DataFrame({
        "record_id": pd.Series([f"r{i}" for i in range(n)], dtype=STRING),
        "outcome": pd.Series([OUTCOMES[i] for i in picks], dtype=STRING),
        "leg": pd.Series(["term" if i % 3 else "orig" for i in range(n)], dtype=STRING),
        "source": pd.Series(["asterisk"] * n, dtype=STRING),
        "duration_s": rng.random(n),
    })  # fmt: skip
    # the term leg first: the dictionary follows the order values first appear in
    narrowed = labels.narrow(frame)
    assert isinstance(narrowed["leg"].dtype, pd.CategoricalDtype)
    want = _file_bytes(frame, tmp_path, "strings")
    assert _file_bytes(narrowed, tmp_path, "narrowed") == want
    # pandas' own reader gives the strings back, not categoricals
    back = pd.read_parquet(io.BytesIO(want))
    assert not any(isinstance(t, pd.CategoricalDtype) for t in back.dtypes)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=30),
    st.lists(st.tuples(st.integers(0, 20_000), st.sampled_from(["other", "", "busy"])), max_size=5),
    st.integers(0, 20_030),
)
def test_labels_as_written_equal_the_strings_dictionary_encoded(head, late, n):
    # the writer's dictionary of a categorical label column is the strings' own (values in the
    # order they first appear), also for values first seen after the sampled head
    items = [head[i % len(head)] for i in range(n)]
    for at, value in late:
        if at < n:
            items[at] = value
    strings = pa.array(items, pa.string())
    narrowed = labels.narrow(pd.DataFrame({"outcome": pd.Series(items, dtype=STRING)}))
    column = pa.chunked_array([pa.array(narrowed["outcome"])])
    got, low = store._labels_as_written(column)
    if not low:  # many distinct values in the head: written as strings
        assert got.cast(pa.string()).equals(strings)
        return
    want = strings.dictionary_encode()
    assert got.dictionary.equals(want.dictionary)
    assert got.indices.is_valid().equals(want.indices.is_valid())
    assert got.indices.fill_null(0).equals(want.indices.cast(pa.int32()).fill_null(0))


def test_read_part_narrow_reads_the_dictionary_pages_as_categoricals(tmp_path):
    frame = pd.DataFrame({"outcome": pd.Series(["busy", None, "answered"] * 10, dtype=STRING),
                          "b_number": pd.Series(["x"] * 30, dtype=STRING)})  # fmt: skip
    store.write_part(frame, tmp_path, 0)
    path = str(tmp_path / store.part_name(0))
    plain = store.read_part(path)
    narrowed = store.read_part(path, narrow=True)
    assert plain["outcome"].dtype == STRING
    assert narrowed["outcome"].dtype == labels.label_dtype("outcome")
    pd.testing.assert_frame_equal(labels.widen(narrowed), plain)
    assert store.read_part(path, ["outcome"], narrow=True)["outcome"].tolist()[:3] == [
        "busy", np.nan, "answered"]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("lworld")
    synth.generate(out, records=6_000, seed=5, incidents=1)
    return out


@pytest.fixture(scope="module")
def split_world(world, tmp_path_factory):
    """The world's records in three files: three partitions, shuffled by call and by parties."""
    out = tmp_path_factory.mktemp("lsplit")
    (out / "records").mkdir()
    table = pq.read_table(world / "records")
    third = -(-len(table) // 3)
    for i in range(3):
        pq.write_table(table.slice(i * third, third), out / "records" / f"part-{i}.parquet")
    for name in ("model.yaml", "manifest.json", "truth.json"):
        (out / name).write_bytes((world / name).read_bytes())
    return out


def _run(world: Path, out: Path) -> cemkit.pipeline.RunResult:
    return cemkit.run(world / "records", format="parquet", policy="default",
                      model=world / "model.yaml", out=out, scheduler="sync")  # fmt: skip


def _digests(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*.parquet"))}  # fmt: skip


@pytest.mark.parametrize("which", ["one part", "three parts"])
def test_a_run_carries_labels_narrow_and_writes_what_strings_did(
    world, split_world, which, tmp_path, monkeypatch
):
    """cemkit.run: the stages see categoricals; every file is the one string labels wrote."""
    world = world if which == "one part" else split_world
    monkeypatch.setenv("CEMKIT_KEY", KEY)
    seen: list[dict[str, object]] = []
    from cemkit.runs import library

    real = library._stitch

    def spy(df, gap):
        seen.append(dict(df.dtypes))
        return real(df, gap)

    monkeypatch.setattr(library, "_stitch", spy)
    narrow_run = _run(world, tmp_path / "narrow")
    assert narrow_run.manifest["load"]["parts"] == (1 if which == "one part" else 3)
    assert seen and all(isinstance(d["outcome"], pd.CategoricalDtype) for d in seen)
    assert all(isinstance(d["record_kind"], pd.CategoricalDtype) for d in seen)
    assert all(isinstance(d["node"], pd.CategoricalDtype) for d in seen)  # once protected
    # the same run with the labels left as strings (what the code before cemkit.labels did)
    for name, empty in (("VOCABULARIES", {}), ("PROTECTED", ()), ("ALL", ())):
        monkeypatch.setattr(labels, name, empty)
    seen.clear()
    wide_run = _run(world, tmp_path / "wide")
    assert seen and all(d["outcome"] == STRING for d in seen)
    assert _digests(narrow_run.out) == _digests(wide_run.out)
    pd.testing.assert_frame_equal(narrow_run.kqi, wide_run.kqi)
    pd.testing.assert_frame_equal(narrow_run.alerts, wide_run.alerts)
    for key in ("load", "correlate", "kqi"):
        a, b = narrow_run.manifest[key], wide_run.manifest[key]
        assert a.get("counts") == b.get("counts") and a.get("matches") == b.get("matches")
    # what users read back: strings, as before
    records = store.read_records(narrow_run.out).compute()
    assert records["outcome"].dtype == STRING and records["src_term_outcome"].dtype == STRING
    assert pq.read_schema(narrow_run.out / "records" / "part-00000.parquet").field(
        "outcome").type == pa.string()  # fmt: skip


def test_kqi_counters_and_correlation_read_narrow_labels_as_strings(world):
    """The consumers give the same answers on categoricals as on the strings they stand for."""
    from cemkit.correlate import _frames
    from cemkit.kqi import formulas
    from cemkit.runs.library import correlate_stages
    from cemkit.runs.stages import run_pandas

    records = store.read_part(str(world / "records" / "part-00000.parquet"))
    narrowed = labels.narrow(records, labels.ALL)
    assert isinstance(narrowed["node"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(formulas.contributions(narrowed),
                                  formulas.contributions(records))  # fmt: skip
    for got, want in zip(_frames.equals_any(narrowed["record_kind"], ("cdr", "xdr", "nope")),
                         _frames.equals_any(records["record_kind"], ("cdr", "xdr", "nope")),
                         strict=True):  # fmt: skip
        assert got.tolist() == want.tolist()
    correlated = run_pandas(narrowed, correlate_stages())
    pd.testing.assert_frame_equal(labels.widen(correlated),
                                  run_pandas(records, correlate_stages()))  # fmt: skip


def test_arrow_strings_gives_the_arrow_array_of_a_string_column():
    """Series and arrays of Arrow strings: their Arrow array (no cast); anything else converted."""
    from cemkit import arrowstr

    s = pd.Series(["a", None, "b"], dtype="string[pyarrow]")
    for values in (s, s.array):
        got = arrowstr.as_string_array(values)
        assert isinstance(got, pa.Array | pa.ChunkedArray)
        assert got.to_pylist() == ["a", None, "b"]
    own = pa.array(s.array)
    own = own.chunk(0) if isinstance(own, pa.ChunkedArray) else own
    assert arrowstr.as_string_array(s).buffers()[2].address == own.buffers()[2].address  # no copy
    objects = pd.Series(["a", "b"], dtype=object)
    assert arrowstr.as_string_array(objects).to_pylist() == ["a", "b"]
