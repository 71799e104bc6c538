"""The pipeline on a real loopback cluster: identical results, worker and client faults, no leaks.

A scheduler and two worker processes run on 127.0.0.1 (tests/loopback_cluster.py); their logs
are kept. Each fault is bounded in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import faults_helpers as fh
import loopback_cluster as loopback
import pytest

import cemkit
from cemkit import synth

pytestmark = pytest.mark.slow

RECORDS = 100_000


@pytest.fixture(scope="module")
def key_env():
    mp = pytest.MonkeyPatch()
    mp.setenv("CEMKIT_KEY", fh.KEY)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("fworld")
    synth.generate(out, records=RECORDS, seed=33, incidents=1)
    return out


@pytest.fixture(scope="module")
def reference(world, key_env, tmp_path_factory):
    """The single-process run (threads, no cluster)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    cemkit.run(world / "formats" / "asterisk" / "Master.csv", out=out, scheduler="threads",
               **fh.run_kwargs(world))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, key_env):
    workdir = tmp_path_factory.mktemp("cluster")
    # Debug logging on the cluster, so a leak would show; except distributed.core and .comm,
    # whose debug lines dump whole messages (task data and graphs) by design: operators who
    # turn them on see the data anyway (see the trust model in cemkit.cluster).
    (workdir / "config").mkdir()
    (workdir / "config" / "logging.yaml").write_text(
        "logging:\n  distributed: debug\n  distributed.core: info\n  distributed.comm: info\n"
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("DASK_CONFIG", str(workdir / "config"))
    c = loopback.start(workdir)
    mp.undo()
    yield c
    c.stop()


CLIENT = (
    "import logging, sys; from cemkit.cli import main; "
    "logging.basicConfig(level=logging.DEBUG, format='%(levelname)s %(name)s: %(message)s'); "
    "sys.exit(main(sys.argv[1:]))"
)


def cemkit_cli(args, log: Path) -> subprocess.Popen:
    """``cemkit ARGS`` in a child process, client logging at DEBUG, stdout+stderr to ``log``."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    fh_log = open(log, "wb")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen([sys.executable, "-c", CLIENT, *args], stdout=fh_log,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip


@pytest.fixture(scope="module")
def cluster_run(world, cluster, tmp_path_factory):
    """``cemkit run`` through the cluster, from a child process whose whole output is kept."""
    base = tmp_path_factory.mktemp("crun")
    out, log = base / "run", base / "client.log"
    proc = cemkit_cli(fh.cli_args(world, out, cluster.address), log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    return out, log


def test_cluster_run_is_identical_to_the_single_process_run(cluster_run, reference):
    fh.assert_same_outputs(cluster_run[0], reference)


def test_no_raw_number_or_key_in_any_log(cluster_run, cluster, world):
    logs = {**cluster.logs(), "client": cluster_run[1].read_text(errors="replace")}
    assert "DEBUG" in logs["client"]  # the client did log at DEBUG level
    assert all(" DEBUG " in t for n, t in logs.items() if n.startswith(("worker-", "sched")))
    assert sum(len(t) for t in logs.values()) > 10_000  # the cluster logs are real
    numbers = fh.number_variants(world)
    assert len(numbers) > 1000
    # the search can fail: a number or the key written into a log is found
    key_bytes = repr(bytes.fromhex(fh.KEY)[10:22])
    planted = {"x": f"call from {sorted(numbers)[5]} done", "y": f"k={fh.KEY[8:40]}",
               "z": f"blob {key_bytes}"}  # fmt: skip
    assert [n for n, _ in fh.find_leaks(planted, numbers, fh.KEY)] == ["x", "y", "z"]
    assert fh.find_leaks(logs, numbers, fh.KEY) == []


def _tmp_parts(out: Path) -> int:
    return sum(1 for _ in out.parent.glob(f".{out.name}.tmp-*/quarantine/*.parquet"))


def _wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _parts(world: Path) -> int:
    from cemkit.io import plan

    kw = fh.run_kwargs(world)
    the_plan = plan(world / "formats" / "asterisk" / "Master.csv", "asterisk", tz=kw["tz"],
                    default_region=kw["default_region"], blocksize=kw["blocksize"])  # fmt: skip
    return len(the_plan.parts)


@pytest.mark.parametrize("when", ["loading", "shuffling"])
def test_worker_killed_mid_run(world, cluster, reference, tmp_path, when):
    """Killed while parts are read and protected, or once all are (correlation shuffles)."""
    out = tmp_path / "run"
    started = 2 if when == "loading" else _parts(world)
    errors: list[BaseException] = []

    def go():
        try:
            cemkit.run(world / "formats" / "asterisk" / "Master.csv", out=out,
                       scheduler=cluster.address, **fh.run_kwargs(world))  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    t = threading.Thread(target=go)
    t.start()
    _wait_for(lambda: _tmp_parts(out) >= started, 120, f"the run did not reach {when}")
    victim = next(n for n in cluster.procs if n.startswith("worker"))
    cluster.kill(victim)
    assert t.is_alive() and not (out / "manifest.json").exists()  # killed mid-run
    cluster.start_worker(f"{victim}-{when}")
    t.join(timeout=300)
    assert not t.is_alive(), "the run did not finish within 5 minutes"
    assert errors == []
    fh.assert_same_outputs(out, reference)


def _tmp_records(out: Path) -> int:
    return sum(1 for _ in out.parent.glob(f".{out.name}.tmp-*/records/*.parquet"))


@pytest.mark.parametrize("when", ["loading", "writing"])
def test_client_killed_mid_run_then_rerun(world, cluster, reference, tmp_path, when):
    """Killed while parts are read, or once correlated records are being written."""
    out = tmp_path / "run"
    proc = cemkit_cli(fh.cli_args(world, out, cluster.address), tmp_path / "client.log")
    reached = (lambda: _tmp_parts(out) >= 2) if when == "loading" else (
        lambda: _tmp_records(out) >= 1)  # fmt: skip
    try:
        _wait_for(reached, 180, f"the run did not reach {when}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # nothing at the target looks complete: only a hidden temporary sibling is left
    assert not out.exists()
    assert list(tmp_path.glob(f".{out.name}.tmp-*"))
    assert not list(tmp_path.rglob("manifest.json"))
    rerun = cemkit_cli(fh.cli_args(world, out, cluster.address), tmp_path / "rerun.log")
    assert rerun.wait(timeout=300) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    fh.assert_same_outputs(out, reference)
