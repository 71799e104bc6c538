"""The real-time path: wall and CPU time of a warm BatchProcessor per batch, and its stage split.

    PYTHONPATH=$PWD python -m benchmarks.bench_realtime [--size 1000000] [--batches 1000]
                                                       [--calls 200]

Batches of ``--batch-size`` canonical records (raw numbers) are cut from the first Parquet part
of the synthetic world ``bench_pipeline`` caches (``--work``; generated there when missing).
A warm :class:`cemkit.BatchProcessor` (5 batches first) processes ``--batches`` batches; each
call is timed by the wall clock and by the CPU time of the process (``time.process_time``:
every thread's CPU, not the waits for a core, the steadier figure on a shared machine), and its
own stage split (``BatchResult.timings_ms``: protect, correlate, KQIs, alerts) is kept. Reading
``BatchResult.records`` (the pandas frame, built when first read) is timed apart
(``records``). The cyclic garbage collector's runs during the timed batches are counted per
generation with their CPU time (``gc``: a full collection of a warm process is the longest
pause a batch can meet). ``--calls N``: N more batches under cProfile, the function calls it
counts per batch (``calls_per_batch``: the per-call glue a batch pays). A/B: run it with
``PYTHONPATH`` of the other checkout from a directory holding only ``benchmarks`` (python -m
puts the working directory first).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--work", default="/tmp/cemkit-bench/pipeline")
    p.add_argument("--batches", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=4000)
    p.add_argument("--calls", type=int, default=0, metavar="N",
                   help="then N more batches under cProfile: function calls per batch")  # fmt: skip
    args = p.parse_args()
    os.environ.setdefault("CEMKIT_KEY", os.urandom(32).hex())
    import pyarrow.parquet as pq

    import cemkit
    from benchmarks.bench_pipeline import world
    from cemkit import schema

    load_before = os.getloadavg()[0]
    w = world(Path(args.work), args.size)
    first = min((w / "records").glob("*.parquet"))
    frame = schema.conform(pq.read_table(first).to_pandas())
    size = args.batch_size
    chunks = [frame.iloc[i * size : (i + 1) * size].reset_index(drop=True)
              for i in range(min(len(frame) // size, 100))]  # fmt: skip
    proc = cemkit.BatchProcessor("default", model=w / "model.yaml")
    for c in chunks[:5]:
        proc(c)
    collections: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = [0.0]

    def collected(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            collections[info["generation"]].append(time.process_time() - started[0])

    gc.callbacks.append(collected)
    wall: dict[str, list[float]] = {"batch": [], "records": []}
    cpu: dict[str, list[float]] = {"batch": [], "records": []}
    for i in range(args.batches):
        chunk = chunks[i % len(chunks)]
        t0, c0 = time.perf_counter(), time.process_time()
        result = proc(chunk)
        t1, c1 = time.perf_counter(), time.process_time()
        result.records  # noqa: B018 - the frame, built when first read
        wall["records"].append(time.perf_counter() - t1)
        cpu["records"].append(time.process_time() - c1)
        wall["batch"].append(t1 - t0)
        cpu["batch"].append(c1 - c0)
        for name, ms in result.timings_ms.items():
            wall.setdefault(name, []).append(ms / 1e3)

    gc.callbacks.remove(collected)
    calls_per_batch = None
    if args.calls:  # function calls the profiler sees (Python and built-in), per warm batch
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for i in range(args.calls):
            proc(chunks[i % len(chunks)])
        prof.disable()
        stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
        calls_per_batch = round(sum(v[1] for v in stats.values()) / args.calls)

    def q(values: list[float]) -> dict[str, float]:
        ms = np.array(values) * 1e3
        out = {f"p{p}": round(float(np.percentile(ms, p)), 2) for p in (50, 90, 99)}
        return {"min": round(float(ms.min()), 2), **out, "max": round(float(ms.max()), 2)}

    summary = {
        "cemkit": str(Path(cemkit.__file__).parent),
        "batches": args.batches,
        "batch_size": size,
        "load_1min_before": load_before,
        "load_1min": os.getloadavg()[0],
        "wall_ms": {k: q(v) for k, v in wall.items()},
        "cpu_ms": {k: q(v) for k, v in cpu.items()},
        "gc": {
            f"gen{g}": {"runs": len(v), "cpu_ms_max": round(max(v, default=0.0) * 1e3, 2)}
            for g, v in collections.items()
        },
        "gc_frozen": gc.get_freeze_count(),
        "calls_per_batch": calls_per_batch,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
