"""An unwritable or full output location: a clear OutputError naming it, inputs untouched.

The full and read-only locations are tiny tmpfs mounts (this needs root and mount rights; where
mounting is refused, a path under /proc stands in for the unwritable case and the full-disk
case is skipped).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import faults_helpers as fh
import pytest

import cemkit
from cemkit import synth
from cemkit.errors import OutputError


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("oworld")
    synth.generate(out, records=6_000, seed=4, incidents=0)
    return out


@pytest.fixture(autouse=True)
def key_env(monkeypatch):
    monkeypatch.setenv("CEMKIT_KEY", fh.KEY)


@contextlib.contextmanager
def tmpfs(where: Path, options: str):
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          check=False, capture_output=True)  # fmt: skip
    if done.returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        # lazy: a worker thread still finishing its failed write may hold a file open
        subprocess.run(["umount", "-l", str(where)], check=True)


def _run(world: Path, out: Path, scheduler: str = "sync"):
    return cemkit.run(world / "formats" / "asterisk" / "Master.csv", out=out, scheduler=scheduler,
                      **fh.run_kwargs(world))  # fmt: skip


def cemkit_cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "cemkit.cli", *args], check=False,
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip


def test_full_output_location(world, tmp_path):
    # In a child process: after Dask's to_parquet fails on a full disk, CPython 3.11's ast
    # module is left with a wrong recursion depth (later ast.parse raises SystemError), which
    # would break pytest's assertion rewriting in this process.
    before = fh.checksums(world)
    with tmpfs(tmp_path / "full", "size=256k") as full:
        if full is None:
            pytest.skip("cannot mount a tmpfs here to simulate a full disk")
        out = full / "run"
        done = cemkit_cli(fh.cli_args(world, out, "sync"))
        assert done.returncode == 1, done.stderr
        assert f"cemkit run: error: cannot write the run directory '{out}'" in done.stderr
        assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
        assert not out.exists()
        assert not list(full.iterdir())  # the temporary directory was removed
    assert fh.checksums(world) == before


def test_read_only_output_location(world, tmp_path):
    before = fh.checksums(world)
    with tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        target = (ro if ro is not None else Path("/proc/cemkit-nowhere")) / "run"
        with pytest.raises(OutputError) as err:
            _run(world, target)
        assert str(target) in str(err.value)
    assert fh.checksums(world) == before


def test_command_line_reports_the_location(world, tmp_path):
    before = fh.checksums(world)
    with tmpfs(tmp_path / "full", "size=128k") as full:
        if full is None:
            pytest.skip("cannot mount a tmpfs here to simulate a full disk")
        out = full / "loaded"
        done = cemkit_cli(["load", "asterisk", str(world / "formats" / "asterisk" / "Master.csv"),
                           "--out", str(out), "--scheduler", "sync"])  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert f"cemkit load: error: cannot write the run directory '{out}'" in done.stderr
        assert "Traceback" not in done.stderr
        assert not out.exists()
    assert fh.checksums(world) == before
