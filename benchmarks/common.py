"""Helpers shared by the benchmarks: machine description, versions, peak memory, timing."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import time
from collections.abc import Callable, Iterable
from typing import Any


def machine() -> str:
    """CPU model and core count of this machine."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def versions(
    packages: Iterable[str] = ("cemkit", "pandas", "pyarrow", "dask", "numba", "numpy"),
) -> str:
    """Installed versions of the packages a benchmark depends on."""
    found = []
    for name in packages:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return f"Python {platform.python_version()}; " + ", ".join(found)


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children), MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def timed(fn: Callable[[], Any], repeat: int = 1,
          clock: Callable[[], float] = time.perf_counter) -> tuple[float, Any]:  # fmt: skip
    """Best time of ``repeat`` runs of ``fn`` by ``clock`` (wall; ``time.process_time``: CPU)
    and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = clock()
        result = fn()
        best = min(best, clock() - t0)
    return best, result
