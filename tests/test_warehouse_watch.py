"""Done-when of the warehouse: `cemkit watch` killed and restarted, and two concurrent instances,
each give the table of one `cemkit run` over the distinct files.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from warehouse_helpers import KEY, REGION, TZ, gzip_copy, rotated_files

import cemkit
from cemkit import warehouse
from cemkit.kqi import formulas

pytestmark = pytest.mark.slow

KEYS = ["object_kind", "object", "bucket"]
COUNTERS = list(formulas.COUNTERS)
PERIOD = ("2026-03-01", "2026-04-01")
N_FILES = 20


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory):
    """20 rotated Asterisk files and one `cemkit run` over them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CEMKIT_KEY", KEY)
        out = tmp_path_factory.mktemp("wh-rotated")
        files = rotated_files(out, N_FILES, records=150)
        ref = cemkit.run([str(f) for f in files], format="asterisk", policy="default",
                         model=str(out / "model.yaml"), out=str(out / "run"), tz=TZ,
                         default_region=REGION, scheduler="sync")  # fmt: skip
        yield out, files, _norm(ref.kqi[ref.kqi["freq"] == "15min"])


def _norm(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame[KEYS + COUNTERS].astype({"object_kind": object, "object": object})
    f = f.assign(bucket=pd.to_datetime(f["bucket"], utc=True).astype("datetime64[us, UTC]"))
    return f.sort_values(KEYS).reset_index(drop=True).astype(dict.fromkeys(COUNTERS, "int64"))


def _watch(landing: Path, wh: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CEMKIT_KEY": KEY,
           "PYTHONPATH": str(Path(cemkit.__file__).parents[1])}  # fmt: skip
    argv = [sys.executable, "-m", "cemkit.cli", "watch", str(landing), "--into", str(wh),
            "--format", "asterisk", "--model", str(out / "model.yaml"), "--tz", TZ,
            "--region", REGION, "--settle", "0", "--poll", "0.2", "--batch", "2",
            *extra]  # fmt: skip
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _offer(files: list[Path], landing: Path, *, gz: frozenset[int] = frozenset()) -> None:
    for i, f in enumerate(files):
        if i in gz:
            gzip_copy(f, landing / (f.name + ".gz"))
        else:
            shutil.copy(f, landing / f.name)


def test_watch_killed_and_restarted_equals_one_run(rotated, tmp_path):
    out, files, ref = rotated
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    landing.mkdir()
    _offer(files[5:15], landing, gz=frozenset({2, 4}))  # files 7 and 9 arrive compressed
    shutil.copy(files[5], landing / "Master-05-again.csv")  # offered twice
    proc = _watch(landing, wh, out)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # wait for two micro-batch commits, then kill -9
            if (
                DeltaTable.is_deltatable(str(wh / "kqi"))
                and DeltaTable(str(wh / "kqi")).version() >= 2
            ):
                break
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.05)
        else:
            pytest.fail("watch committed nothing in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    counted = len(warehouse.open(wh).files())
    assert 0 < counted < 10
    # more files land meanwhile: the next ones, late ones (earlier days), repeats, gzip repeats
    _offer(files[15:], landing)
    _offer(files[:5], landing, gz=frozenset({1}))
    gzip_copy(files[10], landing / "Master-10-again.csv.gz")
    shutil.copy(files[16], landing / "Master-16-copy.csv")
    done = _watch(landing, wh, out, "--once")
    stdout, stderr = done.communicate(timeout=240)
    assert done.returncode == 0, stderr
    assert "lag" in stdout
    wh_ = warehouse.open(wh)
    assert len(wh_.files()) == N_FILES
    assert wh_.files()["sha256"].is_unique
    pd.testing.assert_frame_equal(_norm(wh_.counters(*PERIOD, freq="15min")), ref)


def test_two_concurrent_instances_equal_one_run(rotated, tmp_path):
    out, files, ref = rotated
    wh = tmp_path / "wh"
    dirs = [tmp_path / "switch-a", tmp_path / "switch-b"]
    for i, d in enumerate(dirs):
        d.mkdir()
        _offer(files[i::2], d, gz=frozenset({0}))
    procs = [_watch(d, wh, out, "--once") for d in dirs]
    for p in procs:
        _, stderr = p.communicate(timeout=240)
        assert p.returncode == 0, stderr
    wh_ = warehouse.open(wh)
    assert len(wh_.files()) == N_FILES
    pd.testing.assert_frame_equal(_norm(wh_.counters(*PERIOD, freq="15min")), ref)
