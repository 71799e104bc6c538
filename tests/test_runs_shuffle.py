"""The runner shuffles in memory only when the run's estimated peak fits in free memory."""

from __future__ import annotations

from types import SimpleNamespace

import dask
import pandas as pd
import psutil
import pytest

from cemkit.runs import runner


@pytest.fixture
def parquet_input(tmp_path):
    path = tmp_path / "records.parquet"
    pd.DataFrame({"a_number": [f"+4420{i:07d}" for i in range(5000)]}).to_parquet(path)
    return path


def free(monkeypatch, nbytes):
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=nbytes))


def test_parquet_is_counted_by_its_rows_not_its_bytes(parquet_input, monkeypatch):
    # a few KB of Parquet hold frames of ~1.6 KB a record: 5,000 records need ~8 MB, which
    # 2 MB of free memory do not hold (counted by the file's bytes they seemed to)
    need = runner.run_memory([str(parquet_input)])
    assert need == 5000 * runner.MEMORY_PER_PARQUET_RECORD
    assert need > 100 * parquet_input.stat().st_size
    free(monkeypatch, 2 * 2**20)
    assert runner.shuffle_config(None, [str(parquet_input)]) == {}  # Dask's disk shuffle
    free(monkeypatch, 64 * 2**20)
    assert runner.shuffle_config(None, [str(parquet_input)]) == {
        "dataframe.shuffle.method": "tasks"
    }


def test_text_inputs_by_bytes_and_explicit_settings_win(tmp_path, monkeypatch):
    csv = tmp_path / "Master.csv"
    csv.write_bytes(b"x" * 100_000)
    assert runner.run_memory([str(csv)]) == 100_000 * runner.MEMORY_PER_INPUT_BYTE
    assert runner.run_memory([str(tmp_path / "gone.csv")]) is None
    free(monkeypatch, 2**30)
    assert runner.shuffle_config(None, [str(csv)]) == {"dataframe.shuffle.method": "tasks"}
    assert runner.shuffle_config(None, [str(tmp_path / "gone.csv")]) == {}
    with dask.config.set({"dataframe.shuffle.method": "disk"}):
        assert runner.shuffle_config(None, [str(csv)]) == {}
