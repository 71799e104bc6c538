"""The protect stage alone, warm: CPU per warehouse file and per 4,000-record micro-batch.

    PYTHONPATH=<checkout> python -m benchmarks.bench_protect --file F.csv [--file ...]
        [--reps 2] [--batches 300] [--work /tmp/cemkit-bench/pipeline] [--size 2000000]

What a warehouse worker and the real-time path pay for protect (the default policy), timed
with ``time.process_time`` around the protect stage's ``Protector.columns`` (every thread's
CPU; the machine is shared, so CPU, not wall, compares): over each Asterisk ``--file``
(loaded first, not timed; ``--reps`` passes), and over ``--batches`` consecutive 4,000-record
batches of the synthetic world's canonical records (the ``microbatch`` contender of
``bench_pipeline``; warm, 5 batches first). A/B: run it with ``PYTHONPATH`` on each checkout in
the same minutes.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_pipeline import world
from benchmarks.common import machine, versions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", action="append", default=[], help="an Asterisk Master.csv")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cemkit-bench/pipeline"))
    ap.add_argument("--size", type=int, default=2_000_000)
    args = ap.parse_args()
    os.environ.setdefault("CEMKIT_KEY", "5e" * 32)
    import pyarrow.parquet as pq

    import cemkit
    from cemkit import config, schema, synth
    from cemkit.io.api import plan
    from cemkit.privacy import _hmac
    from cemkit.warehouse.batch import Settings, processor

    config.CORRELATE_THREADS = 1  # a warehouse worker: one thread
    w = world(args.work, args.size)
    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    print(f"# {machine()}; load {load} (shared machine); {versions()}")
    print(f"# cemkit at {cemkit.__file__}; HMAC backend "
          f"{getattr(_hmac, 'backend', lambda: 'numba')()}")  # fmt: skip
    if args.file:
        s = Settings("asterisk", "default", str(w / "model.yaml"), synth.DEFAULT_TIMEZONE,
                     synth.DEFAULT_REGION)  # fmt: skip

        def load_file(path: str) -> pd.DataFrame:
            p = plan(path, "asterisk", tz=s.tz, default_region=s.default_region)
            parts = [p.loader.read_part(x)[0] for x in p.parts]
            frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
            return frame if schema.conformed(frame) else schema.conform(frame)

        frames = [load_file(f) for f in args.file]
        proc = processor(s)
        proc(frames[0].head(5000))
        protect = proc._stages[0].fn
        protect.columns(frames[0])
        cpu = []
        for _ in range(args.reps):
            for frame in frames:
                c0 = time.process_time()
                protect.columns(frame)
                cpu.append(time.process_time() - c0)
        n = sum(len(f) for f in frames) / len(frames)
        print(
            f"protect per file ({n:,.0f} records, 1 thread): CPU median {np.median(cpu):.3f} s, "
            f"min {min(cpu):.3f} s over {len(cpu)} ({np.median(cpu) / n * 1e9:.0f} ns/record)"
        )
    config.CORRELATE_THREADS = int(os.environ.get("CEMKIT_CORRELATE_THREADS", "2"))
    files = sorted((w / "records").glob("*.parquet"))
    frame = schema.conform(pq.read_table(files[0]).to_pandas(types_mapper=None))
    size = 4000
    chunks = [frame.iloc[i * size : (i + 1) * size].reset_index(drop=True)
              for i in range(min(len(frame) // size, 100))]  # fmt: skip
    from cemkit.pipeline import BatchProcessor

    bp = BatchProcessor(model=w / "model.yaml")
    for c in chunks[:5]:
        bp(c)
    protect = bp._stages[0].fn
    cpu, wall = [], []
    for i in range(args.batches):
        c = chunks[i % len(chunks)]
        t0, c0 = time.perf_counter(), time.process_time()
        protect.columns(c)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    ms_cpu, ms_wall = np.array(cpu) * 1e3, np.array(wall) * 1e3
    print(
        f"protect per 4,000-record batch ({args.batches} warm, {protect.threads} threads): "
        f"CPU p50 {np.percentile(ms_cpu, 50):.2f} / p99 {np.percentile(ms_cpu, 99):.2f} ms; "
        f"wall p50 {np.percentile(ms_wall, 50):.2f} / p99 {np.percentile(ms_wall, 99):.2f} ms"
    )


if __name__ == "__main__":
    main()
