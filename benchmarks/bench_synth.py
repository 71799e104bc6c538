"""Throughput of the synthetic workload generator (records/s and peak memory).

Run: ``python -m benchmarks.bench_synth --records 10000000``. The generator runs in a child
process so that its peak memory is measured alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

from benchmarks.common import machine, peak_rss_mib, versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "cemkit.cli", "synth", "--records", str(args.records),
             "--seed", str(args.seed), "--out", out],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        elapsed = time.perf_counter() - t0
    result = {
        "records": args.records,
        "seconds": round(elapsed, 2),
        "records_per_s": round(args.records / elapsed),
        "peak_rss_mib": round(peak_rss_mib(children=True)),
        "machine": machine(),
        "versions": versions(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
