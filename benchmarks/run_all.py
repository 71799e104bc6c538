"""Run the benchmark suite (``make bench``): every ``bench_*`` module, one after the other.

Each benchmark runs in its own process (so one's memory and JIT caches do not colour the next)
with the sizes below, which finish on a 2-core machine in minutes; pass ``--full`` for the sizes
quoted in ``benchmarks/RESULTS.md``. Each benchmark's output is printed and kept under
``benchmarks/_data/latest/<name>.txt``; the figures go to RESULTS.md by hand, with the machine.

    python -m benchmarks.run_all                  # all, quick sizes
    python -m benchmarks.run_all --only kqi sip   # a few
    python -m benchmarks.run_all --full           # the sizes of RESULTS.md
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

#: name → (quick arguments, full arguments)
SUITE: dict[str, tuple[list[str], list[str]]] = {
    "synth": (["--records", "500000"], ["--records", "10000000"]),
    "load": (["--size", "500000"], ["--size", "5000000"]),
    "privacy": (
        [
            "--size",
            "1000000",
            "--distinct",
            "100000",
            "--baseline-rows",
            "100000",
            "--texts",
            "100000",
            "--presidio-rows",
            "1000",
        ],
        [],
    ),
    "officer": (["--rows", "200000", "--distinct", "50000", "--naive-rows", "10000"], []),
    "asof": (["--size", "500000"], ["--size", "5000000"]),
    "sip": (["--size", "10", "--repeat", "1"], ["--size", "60"]),
    "kqi": (["--customers", "1000000", "--size", "500000"], []),
    "agents": (["--devices", "20", "--repeat", "1"], ["--devices", "60", "--repeat", "3"]),
    "pipeline": (
        ["--size", "300000", "--batches", "100", "--ooc-size", "400000"],
        ["--size", "3000000"],
    ),
}

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--only", nargs="+", choices=sorted(SUITE), help="run only these")
    p.add_argument("--full", action="store_true", help="the sizes quoted in RESULTS.md")
    args = p.parse_args(argv)
    out_dir = HERE / "_data" / "latest"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.only or list(SUITE):
        quick, full = SUITE[name]
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}", *(full if args.full else quick)]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, check=False)
        text = done.stdout + (f"\n[stderr]\n{done.stderr}" if done.returncode else "")
        (out_dir / f"{name}.txt").write_text(text, encoding="utf-8")
        print(done.stdout, flush=True)
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        print(f"== {name}: {status} in {time.perf_counter() - t0:.1f} s\n", flush=True)
        if done.returncode:
            print(done.stderr[-4000:], file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
