"""Where the CPU of one ``cemkit.run`` goes: each stage, and everything outside the stages.

    python -m benchmarks.bench_outside [--size 1000000] [--work /tmp/cemkit-bench/pipeline]

One process runs ``cemkit.run`` over the Parquet world of ``benchmarks.bench_pipeline`` (the call
its ``cemkit-parquet-default`` child makes, default scheduler) with cemkit's functions wrapped:
each region's process CPU (user + system, every thread) and wall seconds, *exclusive* of the
regions called inside it. Imports (first ones only) and the garbage collector's collections are
counted on their own. On a shared machine compare the CPU column, same-minute runs of two trees
(``PYTHONPATH=<tree>``), not wall seconds.
"""

from __future__ import annotations

import argparse
import builtins
import functools
import gc
import importlib
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.bench_pipeline import world

#: (module, attribute, label): what is timed. The stage functions are timed per stage name.
REGIONS = [
    ("cemkit.pipeline", "load_model", "setup: model"),
    ("cemkit.pipeline", "policy_and_key", "setup: policy check, key"),
    ("cemkit.pipeline", "_protect_for_sources", "setup: protect stage (policy plan)"),
    ("cemkit.runs.runner", "Source.plan", "setup: input plan"),
    ("cemkit.runs.runner", "load_sources", "graph: build"),
    ("dask", "compute", "glue: Dask scheduling, runner tasks"),
    ("cemkit.runs.runner", "_read_part", "glue: read task (counts, quarantine)"),
    ("cemkit.io.parquet", "ParquetLoader.read_part", "stage: load Parquet"),
    ("cemkit.runs.store", "write_part", "stage: write records (+ quarantine)"),
    ("cemkit.runs.runner", "_WritePart.__call__", "glue: write task"),
    ("cemkit.runs.store", "read_part", "glue: sink reads records back"),
    ("cemkit.kqi.api", "compute", "stage: KQIs (run's sink)"),
    ("cemkit.runs.store", "RunWriter.write_table", "glue: KQI tables written"),
    ("cemkit.runs.store", "RunWriter.__exit__", "glue: manifest, rename"),
    ("cemkit.pipeline", "execute", "glue: runner (reconcile, manifest)"),
    ("cemkit", "run", "glue: cemkit.run"),
]


class Clock:
    """Exclusive CPU / wall per label; nested labels are subtracted from their caller."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)

    @staticmethod
    def now() -> tuple[float, float]:
        t = os.times()
        return time.perf_counter(), t.user + t.system

    def wrap(self, label: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if any(s[0] == label for s in self.stack):  # recursion: counted once
                return fn(*args, **kwargs)
            w0, c0 = self.now()
            self.stack.append([label, 0.0, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                w1, c1 = self.now()
                _, inner_w, inner_c = self.stack.pop()
                self.add(label, w1 - w0, c1 - c0, inner_w, inner_c)

        return timed

    def add(self, label: str, dw: float, dc: float, inner_w: float = 0.0,
            inner_c: float = 0.0) -> None:  # fmt: skip
        self.wall[label] += dw - inner_w
        self.cpu[label] += dc - inner_c
        if self.stack:
            self.stack[-1][1] += dw
            self.stack[-1][2] += dc


def patch(clock: Clock, module: str, attr: str, label: str) -> None:
    obj: Any = importlib.import_module(module)
    *path, name = attr.split(".")
    for p in path:
        obj = getattr(obj, p)
    setattr(obj, name, clock.wrap(label, getattr(obj, name)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--work", default="/tmp/cemkit-bench/pipeline")
    p.add_argument("--out", default=None, help="run directory (default: WORK/out/outside)")
    args = p.parse_args()
    os.environ.setdefault("CEMKIT_KEY", "00" * 32)
    w = world(Path(args.work), args.size)
    out = Path(args.out or Path(args.work) / "out" / "outside")
    clock = Clock()
    real_import = builtins.__import__
    depth = [0]

    def counted_import(*a: Any, **k: Any) -> Any:  # the outermost import that loads modules
        if depth[0]:
            return real_import(*a, **k)
        known = len(sys.modules)
        w0, c0 = clock.now()
        depth[0] = 1
        try:
            return real_import(*a, **k)
        finally:
            depth[0] = 0
            if len(sys.modules) != known:
                w1, c1 = clock.now()
                clock.add("imports", w1 - w0, c1 - c0)

    import cemkit
    import cemkit.pipeline
    from cemkit.runs import stages

    for module, attr, label in REGIONS:
        patch(clock, module, attr, label)

    def run_pandas(df: Any, steps: Any) -> Any:
        for s in steps:
            df = clock.wrap(f"stage: {s.name}", s.fn)(df)
        return df

    stages.run_pandas = run_pandas
    gc_cpu = [0.0, 0.0]

    def collected(phase: str, info: dict[str, Any]) -> None:
        c = os.times()
        if phase == "start":
            gc_cpu[1] = c.user + c.system
        else:
            gc_cpu[0] += c.user + c.system - gc_cpu[1]

    gc.callbacks.append(collected)
    builtins.__import__ = counted_import
    w0, c0 = clock.now()
    cemkit.run(w / "records", format="parquet", policy="default", model=w / "model.yaml",
               out=out, overwrite=True)  # fmt: skip
    w1, c1 = clock.now()
    builtins.__import__ = real_import
    gc.callbacks.remove(collected)
    rows = sorted(clock.cpu, key=lambda k: (not k.startswith("stage"), -clock.cpu[k]))
    print("| region | CPU s | wall s |\n|---|---:|---:|")
    for k in rows:
        print(f"| {k} | {clock.cpu[k]:.2f} | {clock.wall[k]:.2f} |")
    stage = sum(v for k, v in clock.cpu.items() if k.startswith("stage"))
    print(f"| **stages** | {stage:.2f} | |\n| **outside the stages** | {c1 - c0 - stage:.2f} | |")
    print(f"| **cemkit.run** | {c1 - c0:.2f} | {w1 - w0:.2f} |")
    print(f"| (of which garbage collection) | {gc_cpu[0]:.2f} | |")
    print("RESULT " + json.dumps({"cpu": dict(clock.cpu), "wall": dict(clock.wall),
                                  "run_cpu": c1 - c0, "run_wall": w1 - w0, "gc_cpu": gc_cpu[0],
                                  "load": os.getloadavg()}))  # fmt: skip


if __name__ == "__main__":
    main()
