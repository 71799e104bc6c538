"""Correlation stages next to their floor, user CPU seconds: A/B of two code trees.

    PYTHONPATH=<tree> python <this checkout>/benchmarks/bench_correlate.py <label> [--repeat 3]

On the protected 1M-record world of :mod:`benchmarks.bench_keys` (built by it when missing), in
one process with :func:`cemkit.memory.apply` (as ``cemkit run``): after a warm-up on the whole
frame, times ``stitch``, the runner's fused stage after it (pair, match, signaling, intents),
``pair_legs``, ``match`` and ``sessionize(output="records")``, and right after each the floor
(one stable ``argsort`` of an int64 key of the same rows), ``--repeat`` times, and prints one
JSON line with the least user (and user+system) CPU seconds of each and the digest of the fused
stage's frame (as :mod:`benchmarks.bench_keys` computes it: equal digests, equal results). User
seconds: on this VM system time is page faults of the shared host, not the code. Run each tree
in turn, alternating, in the same minutes (the machine is shared).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from typing import Any


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("label")
    p.add_argument("--protected", default="/tmp/cemkit-bench/protected-1000000.parquet")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    from cemkit import memory

    memory.apply()
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from benchmarks.bench_keys import _protect_world
    from cemkit.correlate import match, pair_legs, sessionize, stitch
    from cemkit.correlate._frames import time_ns
    from cemkit.io.convert import to_pandas
    from cemkit.runs.library import correlate_stages
    from cemkit.runs.stages import run_pandas

    if not os.path.exists(args.protected):
        _protect_world("/tmp/cemkit-bench/pipeline", args.protected)
    df = to_pandas(pq.read_table(args.protected))
    calls = stitch(df)  # warm-up on the whole frame (compiles for every shape)
    run_pandas(calls, correlate_stages()[1:])
    sessionize(match(pair_legs(calls)), output="records")
    res: dict[str, list[tuple[float, float]]] = {}

    def timed(name: str, fn: Any) -> Any:
        a = os.times()
        out = fn()
        b = os.times()
        res.setdefault(name, []).append((b.user - a.user, b.system - a.system))
        return out

    def floor(name: str, frame: pd.DataFrame) -> None:
        codes = pd.factorize(frame["a_number"])[0].astype(np.int64) * (1 << 20)
        key = codes + (time_ns(frame["start"]) // 10**9) % (1 << 20)
        timed(f"floor of {name} (argsort {len(frame):,} rows)",
              lambda: np.argsort(key, kind="stable"))  # fmt: skip

    out = None
    for _ in range(max(1, args.repeat)):
        calls = timed("stitch", lambda: stitch(df))
        floor("stitch", df)
        out = timed("runner pair+match+signaling+intents",
                    lambda c=calls: run_pandas(c, correlate_stages()[1:]))  # fmt: skip
        floor("runner, pair legs", calls)
        paired = timed("pair legs", lambda c=calls: pair_legs(c))
        matched = timed("match", lambda p=paired: match(p))
        floor("match", paired)
        timed("sessionize", lambda m=matched: sessionize(m, output="records"))
        floor("sessionize", matched)
    digest = hashlib.sha256(pd.util.hash_pandas_object(out, index=True).to_numpy().tobytes())
    print(json.dumps({
        "tree": args.label, "load": round(os.getloadavg()[0], 1),
        "digest": digest.hexdigest()[:16],
        "user_s": {k: round(min(u for u, _ in v), 3) for k, v in res.items()},
        "user_sys_s": {k: round(min(u + s for u, s in v), 3) for k, v in res.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
