"""A run's KQI sink reads the columns the write tasks kept, not the parts read back from disk."""

from __future__ import annotations

import pandas as pd
import pytest

import cemkit
from cemkit import config, synth
from cemkit.runs import store


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("sinks") / "world"
    synth.generate(w, records=3000, seed=11)
    return w


def _run(world, out, monkeypatch, scheduler="sync"):
    reads = []
    read_parts = store.read_parts

    def spy(files, *args, **kwargs):
        reads.append(len(files))
        return read_parts(files, *args, **kwargs)

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


def test_the_sink_reads_no_part_back_and_finds_what_reading_them_finds(world, tmp_path,
                                                                       monkeypatch):  # fmt: skip
    kept, reads = _run(world, tmp_path / "kept", monkeypatch)
    assert reads == []  # the sink's columns came from the write tasks
    monkeypatch.setattr(config, "SINK_KEEP_BYTES", 0)  # over the budget: read back
    read, reads_back = _run(world, tmp_path / "read", monkeypatch)
    assert reads_back == [len(store.part_files(tmp_path / "read"))]
    for a, b in zip(_tables(kept), _tables(read), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert kept.manifest["kqi"] == read.manifest["kqi"]
    # the kept frames are never listed as outputs
    assert all(set(o) == {"path", "rows", "sha256"} for o in kept.manifest["kqi"]["outputs"])


def test_a_run_on_threads_keeps_too_and_agrees(world, tmp_path, monkeypatch):
    sync, _ = _run(world, tmp_path / "sync", monkeypatch)
    threads, reads = _run(world, tmp_path / "threads", monkeypatch, scheduler="threads")
    assert reads == []
    for a, b in zip(_tables(sync), _tables(threads), strict=True):
        pd.testing.assert_frame_equal(a, b)
