"""A run's KQI sink reads no part back from disk: the write tasks reduce their partitions.

The three ways a run's sink gets its records (each write task's reduction of its partition,
the columns the write tasks kept, the parts read back) give the same tables.
"""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

import cemkit
from cemkit import config, synth
from cemkit.kqi.rollup import PartitionRollup
from cemkit.runs import runner, store


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("sinks") / "world"
    synth.generate(w, records=3000, seed=11)
    return w


@pytest.fixture(scope="module")
def parted(world, tmp_path_factory):
    """The same records in row groups of 700: a run of several partitions (one per group)."""
    w = tmp_path_factory.mktemp("sinks") / "parted"
    (w / "records").mkdir(parents=True)
    (w / "model.yaml").write_bytes((world / "model.yaml").read_bytes())
    (src,) = sorted((world / "records").glob("*.parquet"))
    pq.write_table(pq.read_table(src), w / "records" / src.name, row_group_size=700)
    return w


def _run(world, out, monkeypatch, scheduler="sync", reduced=None):
    reads = []
    read_parts = store.read_parts
    reduce = PartitionRollup.__call__

    def spy(files, *args, **kwargs):
        reads.append(len(files))
        return read_parts(files, *args, **kwargs)

    def counted(self, records):
        if reduced is not None:
            reduced.append(len(records))
        return reduce(self, records)

    monkeypatch.setattr(PartitionRollup, "__call__", counted)

    monkeypatch.setenv("CEMKIT_KEY", "ab" * 32)  # one key for every run compared
    monkeypatch.setattr(store, "read_parts", spy)
    try:
        result = cemkit.run(world / "records", format="parquet", policy="default",
                            model=world / "model.yaml", out=out, scheduler=scheduler,
                            overwrite=True)  # fmt: skip
    finally:
        monkeypatch.setattr(store, "read_parts", read_parts)
    return result, reads


def _tables(result):
    return [result.kqi, result.alerts, result.worst_customers, result.group_sizes]


@pytest.mark.parametrize("records", ["world", "parted"])
def test_the_write_tasks_reduce_their_partitions_and_find_what_reading_the_parts_finds(
        records, request, tmp_path, monkeypatch):  # fmt: skip
    world = request.getfixturevalue(records)
    reduced: list[int] = []
    partial, reads = _run(world, tmp_path / "partial", monkeypatch, reduced=reduced)
    assert reads == []  # nothing read back
    written = [
        len(pd.read_parquet(f)) for f in store.part_files(tmp_path / "partial")]  # fmt: skip
    assert sorted(reduced) == sorted(written)  # each written partition reduced once, whole
    assert len(written) > 1 or records == "world"
    # a sink without the two halves: the columns the write tasks kept, or (over the budget)
    # the parts read back from disk
    monkeypatch.setattr(runner, "_sink_partials", lambda sinks, client: None)
    reduced.clear()
    kept, reads = _run(world, tmp_path / "kept", monkeypatch, reduced=reduced)
    assert reads == [] and reduced == []
    monkeypatch.setattr(config, "SINK_KEEP_BYTES", 0)
    read, reads_back = _run(world, tmp_path / "read", monkeypatch)
    assert reads_back == [len(store.part_files(tmp_path / "read"))]
    for a, b, c in zip(_tables(partial), _tables(kept), _tables(read), strict=True):
        pd.testing.assert_frame_equal(a, c)
        pd.testing.assert_frame_equal(b, c)
    assert partial.manifest["kqi"] == kept.manifest["kqi"] == read.manifest["kqi"]
    # what the sinks kept or reduced is never listed as an output
    assert all(set(o) == {"path", "rows", "sha256"} for o in partial.manifest["kqi"]["outputs"])


def test_a_run_on_threads_keeps_too_and_agrees(world, tmp_path, monkeypatch):
    sync, _ = _run(world, tmp_path / "sync", monkeypatch)
    threads, reads = _run(world, tmp_path / "threads", monkeypatch, scheduler="threads")
    assert reads == []
    for a, b in zip(_tables(sync), _tables(threads), strict=True):
        pd.testing.assert_frame_equal(a, b)
