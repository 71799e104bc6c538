"""A real Dask cluster on loopback: ``dask scheduler`` and two ``dask worker`` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoopbackCluster:
    """Processes of a scheduler and its workers; their logs are kept for leak checks."""

    workdir: Path
    address: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in self.workdir.glob("*.log")}

    def start_worker(self, name: str) -> None:
        bin_dir = Path(sys.executable).parent
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        self.procs[name] = subprocess.Popen(
            [str(bin_dir / "dask"), "worker", self.address, "--name", name, "--nworkers", "1",
             "--nthreads", "1", "--memory-limit", "3GB", "--no-dashboard",
             "--local-directory", str(self.workdir / name)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs.pop(name)
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)


def start(workdir: Path, n_workers: int = 2, timeout: float = 60) -> LoopbackCluster:
    """Start a scheduler on 127.0.0.1 (a free port) and ``n_workers`` workers; wait until ready."""
    bin_dir = Path(sys.executable).parent
    cluster = LoopbackCluster(workdir)
    scheduler_file = workdir / "scheduler.json"
    log = open(workdir / "scheduler.log", "ab")  # noqa: SIM115 - lives with the process
    cluster.procs["scheduler"] = subprocess.Popen(
        [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while not scheduler_file.exists():
        if time.monotonic() > deadline:
            cluster.stop()
            raise TimeoutError("the Dask scheduler did not start: " + str(cluster.logs()))
        time.sleep(0.2)
    time.sleep(0.2)
    cluster.address = json.loads(scheduler_file.read_text())["address"]
    for i in range(n_workers):
        cluster.start_worker(f"worker-{i}")
    from distributed import Client

    with Client(cluster.address, timeout="30s") as client:
        client.wait_for_workers(n_workers, timeout=timeout)
    return cluster
