"""Inputs and outputs as fsspec URLs (memory:// and file:// here; s3:// needs s3fs)."""

import importlib.util
import os

import fsspec
import nbformat
import pandas as pd
import pytest

import cemkit
from cemkit.errors import InputError
from cemkit.io import paths


@pytest.fixture
def memory_world(small_world):
    """The small world's Asterisk CSV and canonical Parquet, copied to fsspec's memory store."""
    world, truth = small_world
    fs = fsspec.filesystem("memory")
    csv = world / "formats" / "asterisk" / "Master.csv"
    fs.pipe("/cdr-bucket/pbx1/Master.csv", csv.read_bytes())
    for f in sorted((world / "records").glob("*.parquet")):
        fs.pipe(f"/cdr-bucket/records/{f.name}", f.read_bytes())
    yield world, truth
    fs.rm("/cdr-bucket", recursive=True)


def _load(source, truth, **kw):
    return cemkit.load(source, format="asterisk", tz=truth["timezone"],
                       default_region=truth["default_region"], **kw).compute()  # fmt: skip


def test_url_glob_loads_the_same_records_as_the_local_file(memory_world, tmp_path):
    world, truth = memory_world
    local_copy = tmp_path / "pbx1" / "Master.csv"
    local_copy.parent.mkdir()
    local_copy.write_bytes((world / "formats" / "asterisk" / "Master.csv").read_bytes())
    local = _load(str(local_copy), truth)
    remote = _load("memory://cdr-bucket/pbx1/*.csv", truth, storage_options={})
    assert len(remote) == len(local) > 0
    pd.testing.assert_frame_equal(remote.reset_index(drop=True), local.reset_index(drop=True))


def test_file_urls_are_local_paths(memory_world):
    world, truth = memory_world
    csv = world / "formats" / "asterisk" / "Master.csv"
    assert paths.stage([f"file://{csv}"]) == [str(csv)]
    assert len(_load(f"file://{csv}", truth)) == len(_load(str(csv), truth))


def test_missing_url_and_unknown_filesystem_are_clear_errors(memory_world):
    with pytest.raises(InputError, match="matches no file"):
        paths.stage(["memory://cdr-bucket/none/*.csv"])
    with pytest.raises(InputError, match="does not exist"):
        paths.stage(["memory://cdr-bucket/pbx1/Missing.csv"])
    with pytest.raises(InputError, match="unknown filesystem"):
        paths.stage(["nosuchfs://bucket/x.csv"])


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_s3_without_s3fs_says_what_to_install():
    with pytest.raises(InputError, match="s3fs"):
        paths.stage(["s3://bucket/cdr/*.csv"], {"anon": True})


def test_run_reads_a_url_directory(memory_world, tmp_path, monkeypatch):
    world, _ = memory_world
    monkeypatch.setenv("CEMKIT_KEY", "ab" * 32)
    result = cemkit.run("memory://cdr-bucket/records", format="parquet", policy="default",
                        model=world / "model.yaml", out=tmp_path / "run",
                        scheduler="sync")  # fmt: skip
    assert result.manifest["load"]["totals"]["rows_read"] == 20_000


def test_report_written_to_a_url(tmp_path):
    from test_report_runner import make_notebook

    from cemkit.report import runner

    nb = make_notebook(tmp_path / "tiny.ipynb")
    out = runner.report(nb, {"rows": 2}, "memory://reports/day1", progress=False)
    assert out["html"] == "memory://reports/day1/tiny.html"
    fs = fsspec.filesystem("memory")
    assert sorted(os.path.basename(p) for p in fs.ls("/reports/day1", detail=False)) == [
        "tiny.html", "tiny.ipynb"]  # fmt: skip
    executed = nbformat.reads(fs.cat("/reports/day1/tiny.ipynb").decode(), as_version=4)
    assert "default: 2 rows" in str(executed.cells[-1].outputs)
    fs.rm("/reports", recursive=True)


@pytest.fixture
def s3_emulator():
    """A local S3 emulator (moto's server) started by the test, with a bucket of CDRs."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {"key": "testing", "secret": "testing",
               "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}",
                                 "region_name": "eu-west-1"}}  # fmt: skip
    try:
        yield options
    finally:
        server.stop()


def test_s3_inputs_through_a_local_object_store(s3_emulator, small_world):
    import s3fs

    world, truth = small_world
    fs = s3fs.S3FileSystem(**s3_emulator)
    fs.mkdir("cdr-bucket")
    fs.put_file(str(world / "formats" / "asterisk" / "Master.csv"), "cdr-bucket/pbx1/Master.csv")
    remote = _load("s3://cdr-bucket/pbx1/*.csv", truth, storage_options=s3_emulator)
    local = _load(str(world / "formats" / "asterisk" / "Master.csv"), truth)
    assert len(remote) == len(local) > 0
    assert (remote["outcome"].value_counts() == local["outcome"].value_counts()).all()
    with pytest.raises(InputError, match="matches no file"):
        paths.stage(["s3://cdr-bucket/none/*.csv"], s3_emulator)
