"""The real-time path stage by stage: wall and CPU time of each stage of a warm BatchProcessor.

    PYTHONPATH=$PWD python -m benchmarks.bench_realtime [--size 1000000] [--batches 300]

Batches of ``--batch-size`` canonical records (raw numbers) are cut from the first Parquet part
of the synthetic world ``bench_pipeline`` caches (``--work``; generated there when missing).
A warm :class:`cemkit.BatchProcessor` (5 batches first) runs its stage list on each batch one
stage at a time: protect, stitch, the fused parties stage (pair legs, match, signaling, intents),
then the whole call (KQIs and alerts included). Each is timed by the wall clock and by the CPU
time of the process (``time.process_time``: every thread's CPU, not the waits for a core, the
steadier figure on a shared machine). A/B: run it with ``PYTHONPATH`` of the other checkout
from a directory holding only ``benchmarks`` (python -m puts the working directory first).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--work", default="/tmp/cemkit-bench/pipeline")
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=4000)
    args = p.parse_args()
    os.environ.setdefault("CEMKIT_KEY", os.urandom(32).hex())
    import pyarrow.parquet as pq

    import cemkit
    from benchmarks.bench_pipeline import world
    from cemkit import schema
    from cemkit.runs.stages import run_pandas

    w = world(Path(args.work), args.size)
    first = min((w / "records").glob("*.parquet"))
    frame = schema.conform(pq.read_table(first).to_pandas())
    size = args.batch_size
    chunks = [frame.iloc[i * size : (i + 1) * size].reset_index(drop=True)
              for i in range(min(len(frame) // size, 100))]  # fmt: skip
    proc = cemkit.BatchProcessor("default", model=w / "model.yaml")
    for c in chunks[:5]:
        proc(c)
    proc._refresh()
    stages = proc._stages
    parts = {"protect": stages[:1], "stitch": stages[1:2], "parties": stages[2:]}
    wall: dict[str, list[float]] = {k: [] for k in [*parts, "batch"]}
    cpu: dict[str, list[float]] = {k: [] for k in [*parts, "batch"]}
    for i in range(args.batches):
        df = chunks[i % len(chunks)]
        for name, sts in parts.items():
            t0, c0 = time.perf_counter(), time.process_time()
            df = run_pandas(df, sts)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        proc(chunks[i % len(chunks)])
        wall["batch"].append(time.perf_counter() - t0)
        cpu["batch"].append(time.process_time() - c0)

    def q(values: list[float]) -> dict[str, float]:
        ms = np.array(values) * 1e3
        return {"p50": round(float(np.percentile(ms, 50)), 2),
                "p99": round(float(np.percentile(ms, 99)), 2)}  # fmt: skip

    result = {
        "cemkit": str(Path(cemkit.__file__).parent),
        "batches": args.batches,
        "batch_size": size,
        "load_1min": os.getloadavg()[0],
        "wall_ms": {k: q(v) for k, v in wall.items()},
        "cpu_ms": {k: q(v) for k, v in cpu.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
