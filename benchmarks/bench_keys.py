"""Correlation with token keys from the codec vs string dictionaries: A/B of two code trees.

    PYTHONPATH=<tree> python -m benchmarks.bench_keys <label> [--protected FILE]

Reads the protected 1M-record world (``--protected``; built once from the ``bench_stages`` world
with ``cemkit.privacy.protect(records, "default")`` when the file is missing), warms the kernels
on 5,000 rows, then times ``stitch`` and the runner's correlate stages (pair, match, signaling,
intents) once, wall and CPU seconds (CPU: the machine is shared, wall times swing with its load),
and prints one JSON line with a digest of the correlated frame: run it with ``PYTHONPATH`` set to
each tree in turn, alternating, and compare (the digests must be equal). ``--repeat N`` times each
step N times and reports the least wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time


def main() -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    from cemkit.correlate import _frames, stitch
    from cemkit.io.convert import to_pandas
    from cemkit.runs.library import correlate_stages
    from cemkit.runs.stages import run_pandas

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("label")
    p.add_argument("--protected", default="/tmp/cemkit-bench/protected-1000000.parquet")
    p.add_argument("--work", default="/tmp/cemkit-bench/pipeline")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time each step this many times, report the least (the machine is shared)",
    )
    args = p.parse_args()
    if not os.path.exists(args.protected):
        _protect_world(args.work, args.protected)
    df = to_pandas(pq.read_table(args.protected))
    run_pandas(stitch(df.iloc[:5000]), correlate_stages()[1:])  # compile, not compared
    res = {}

    def timed(name, fn):
        for _ in range(max(1, args.repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            got = [round(time.perf_counter() - t0, 3), round(time.process_time() - c0, 3)]
            res[name] = (
                got if name not in res else [min(a, b) for a, b in zip(res[name], got, strict=True)]
            )
        return out

    calls = timed("stitch", lambda: stitch(df))
    out = timed("pair+match+signaling+intents", lambda: run_pandas(calls, correlate_stages()[1:]))
    timed(
        "composite_key(service,a,b)",
        lambda: _frames.composite_key([calls[c] for c in ("service", "a_number", "b_number")]),
    )
    digest = hashlib.sha256(pd.util.hash_pandas_object(out, index=True).to_numpy().tobytes())
    print(
        json.dumps(
            {
                "tree": args.label,
                "load": os.getloadavg()[0],
                "rows": len(out),
                "digest": digest.hexdigest()[:16],
                "wall_cpu_s": res,
            }
        )
    )


def _protect_world(work: str, target: str) -> None:
    from pathlib import Path

    import pandas as pd

    from benchmarks.bench_pipeline import world
    from cemkit.io.api import plan
    from cemkit.privacy import load_key, load_policy, protect

    os.environ.setdefault("CEMKIT_KEY", "ab" * 32)
    files = sorted(str(f) for f in (world(Path(work), 1_000_000) / "records").glob("*.parquet"))
    the_plan = plan(files, format="parquet")
    records = pd.concat([the_plan.loader.read_part(x)[0] for x in the_plan.parts],
                        ignore_index=True)  # fmt: skip
    policy = load_policy("default")
    protect(records, policy, key=load_key(policy)).to_parquet(target, index=False)


if __name__ == "__main__":
    main()
