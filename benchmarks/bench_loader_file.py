"""Loader CPU per rotated Asterisk CSV file, as a warehouse worker reads it (one part, 1 thread).

    PYTHONPATH=<checkout> python -m benchmarks.bench_loader_file [REPS] [FILE ...]

Plans and reads each file (``cemkit.io.api.plan`` then ``loader.read_part``, as
``cemkit.warehouse.batch.process_file`` does), warm, and prints the CPU seconds per file (mean,
median, min over REPS rounds of the files). Default files: /tmp/p6/f0..f2.csv (166,666 records
each). For an A/B, run it with PYTHONPATH set to each checkout in the same minute; the machine is
shared, so compare medians and minima of runs close in time. ``ARROW_DEFAULT_MEMORY_POOL=system``
removes most of the run-to-run spread (see RESULTS.md, branch ``load``).
"""

from __future__ import annotations

import statistics
import sys
import time

from cemkit import synth
from cemkit.io.api import plan


def load(path: str) -> int:
    """Records of one file, read as a warehouse worker reads it."""
    the_plan = plan(path, "asterisk", tz=synth.DEFAULT_TIMEZONE,
                    default_region=synth.DEFAULT_REGION)  # fmt: skip
    return sum(len(the_plan.loader.read_part(part)[0]) for part in the_plan.parts)


def main(argv: list[str]) -> None:
    reps = int(argv[0]) if argv else 3
    files = argv[1:] or [f"/tmp/p6/f{k}.csv" for k in range(3)]
    load(files[0])  # warm: imports, Numba caches
    cpu = []
    for _ in range(reps):
        for path in files:
            start = time.process_time()
            load(path)
            cpu.append(time.process_time() - start)
    print(f"loader CPU s per file: mean {statistics.mean(cpu):.3f} "
          f"median {statistics.median(cpu):.3f} min {min(cpu):.3f} ({len(cpu)} reads)")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
