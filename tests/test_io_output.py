"""Run directories: atomic, manifest with sections, read back; the ``cemkit load`` command."""

from __future__ import annotations

import hashlib
import json

import dask.dataframe as dd
import pandas as pd
import pytest

from cemkit import schema
from cemkit.cli import main
from cemkit.errors import InputError, OutputError
from cemkit.io import read_records, write_run
from cemkit.io.output import RunDir, read_manifest

LINE = (
    '"","2001","+15550100","ctx","clid","SIP/a","SIP/b","Dial","x",'
    '"2024-07-01 12:00:00","2024-07-01 12:00:05","2024-07-01 12:01:05",65,60,'
    '"ANSWERED","BILLING","1.{i}",""'
)


def _frame(n=5):
    return schema.conform(pd.DataFrame({
        "record_id": [f"r{i}" for i in range(n)], "source": "t", "record_kind": "cdr",
        "service": "voice", "outcome": "answered",
        "start": pd.to_datetime(range(n), unit="s", utc=True), "cause_q850": list(range(n)),
    }))  # fmt: skip


def test_write_run_and_read_back(tmp_path):
    df = _frame()
    out = write_run(tmp_path / "run", dd.from_pandas(df, npartitions=2),
                    sections={"protect": {"key_id": "k1"}})  # fmt: skip
    m = read_manifest(out)
    assert m["protect"] == {"key_id": "k1"} and "versions" in m
    assert "write_records" in m["timings_s"]
    back = read_records(out).compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(back, df)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_crash_leaves_nothing_that_looks_complete(tmp_path):
    with pytest.raises(RuntimeError), RunDir(tmp_path / "run") as run:
        (run.records_dir / "part-00000.parquet").write_bytes(b"half")
        raise RuntimeError("worker died")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="not a complete run"):
        read_records(tmp_path)


def test_existing_directory_needs_overwrite(tmp_path):
    write_run(tmp_path / "run", _frame(2))
    with pytest.raises(OutputError, match="already exists"):
        write_run(tmp_path / "run", _frame(3))
    write_run(tmp_path / "run", _frame(3), overwrite=True)
    assert len(read_records(tmp_path / "run").compute()) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_manifest_sections_are_merged_not_clobbered(tmp_path):
    with RunDir(tmp_path / "run") as run:
        run.manifest.section("kqi")["indicators"] = ["asr"]
        run.manifest.add_section("kqi", {"groups": 3})
        with pytest.raises(OutputError):
            run.manifest.section("manifest_version")
    assert read_manifest(tmp_path / "run")["kqi"] == {"indicators": ["asr"], "groups": 3}


def test_cli_load(tmp_path, capsys):
    src = tmp_path / "Master.csv"
    src.write_text("\n".join([LINE.format(i=i) for i in range(4)] + ["bad line"]) + "\n")
    rc = main(["load", "asterisk", str(src), "--out", str(tmp_path / "run"),
               "--tz", "America/New_York", "--region", "US", "-o", "columns=18"])  # fmt: skip
    assert rc == 0
    assert "4 records loaded, 1 quarantined of 5 rows" in capsys.readouterr().out
    m = json.loads((tmp_path / "run/manifest.json").read_text())
    f = m["load"]["inputs"][0]
    assert f["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert f["size"] == src.stat().st_size
    assert (f["rows_read"], f["rows_loaded"], f["rows_quarantined"]) == (5, 4, 1)
    assert m["load"]["tz"] == "America/New_York" and m["load"]["options"]["columns"] == 18
    rec = read_records(tmp_path / "run").compute()
    assert len(rec) == 4 and set(rec.b_number) == {"+15550100"}
    q = read_records(tmp_path / "run", "quarantine").compute()
    assert list(q.raw) == ["bad line"] and list(q.line) == [5]


def test_cli_errors_exit_1(tmp_path, capsys):
    assert main(["load", "astrisk", "x", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "known: " in err and "asterisk, " in err
    assert main(["load", "asterisk", str(tmp_path / "missing.csv"), "--out",
                 str(tmp_path / "o")]) == 1  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_wired_into_the_cemkit_command(tmp_path, capsys):
    from cemkit.cli import main as cemkit_main

    src = tmp_path / "Master.csv"
    src.write_text(LINE.format(i=1) + "\n")
    assert cemkit_main(["load", "asterisk", str(src), "--out", str(tmp_path / "run"),
                        "--scheduler", "processes"]) == 0  # fmt: skip
    assert "1 records loaded" in capsys.readouterr().out
    assert cemkit_main(["load", "asterisk", str(src), "--out", str(tmp_path / "run")]) == 1
    assert "already exists" in capsys.readouterr().err
