"""As-of join benchmark: cemkit.correlate.asof vs pandas merge_asof, polars join_asof, DuckDB.

    python -m benchmarks.bench_asof [--size N] [--keys K] [--threads T] [--repeat R]

Left and right each hold N rows with K distinct integer keys, unsorted, datetime64[ns] times
uniform over one day, and a float value column. Each engine runs in its own subprocess (so peak
memory is its own): it builds its native input from the same seeded data *before* the clock starts,
then the timed part is everything a user would do from there — sorting (pandas needs it, polars
needs sorted `on`), the join and a materialized result. Peak memory is the process' peak RSS during
the timed part above its RSS just before it (Linux VmHWM, reset through /proc/self/clear_refs).

Semantics are the same for every engine: for each left row, the right row with the same key and
the latest time <= the left time (``backward``), or the nearest one (``nearest``; ties to the
backward row; DuckDB has no nearest ASOF join, so it runs the backward and the forward ASOF join
and picks per row, as a DuckDB user would). Results are cross-checked: the matched right value of
every left row must be equal across engines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ENGINES = ("cemkit", "pandas", "polars", "duckdb")
DAY_NS = 86_400 * 10**9


def make_data(n: int, keys: int, seed: int = 7, key_type: str = "int"):
    """Left and right columns as NumPy arrays (left has a row id for cross-checking).

    ``key_type="str"`` gives string keys (``"tok-<n>"``, like pseudonymized numbers).
    """
    rng = np.random.default_rng(seed)
    left = {
        "key": rng.integers(0, keys, n, dtype=np.int64),
        "t": rng.integers(0, DAY_NS, n, dtype=np.int64).view("datetime64[ns]"),
        "lid": np.arange(n, dtype=np.int64),
    }
    right = {
        "key": rng.integers(0, keys, n, dtype=np.int64),
        "t": rng.integers(0, DAY_NS, n, dtype=np.int64).view("datetime64[ns]"),
        "rval": rng.random(n),
    }
    if key_type == "str":
        for side in (left, right):
            side["key"] = np.char.add("tok-", side["key"].astype(str)).astype(object)
    return left, right


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def run_engine(
    engine: str, direction: str, n: int, keys: int, threads: int, out: str, key_type: str = "int"
) -> dict:
    """Run one engine once in this process; save the matched right values (by left row id)."""
    import gc

    left, right = make_data(n, keys, key_type=key_type)
    if engine in ("cemkit", "pandas"):
        import pandas as pd

        ldf, rdf = pd.DataFrame(left), pd.DataFrame(right)
        if key_type == "str":
            ldf["key"] = ldf["key"].astype("string[pyarrow]")
            rdf["key"] = rdf["key"].astype("string[pyarrow]")
        if engine == "cemkit":
            from cemkit.correlate import asof

            asof(ldf.iloc[:1000], rdf.iloc[:1000], on="t", by="key", direction=direction)  # jit

            def job():
                return asof(ldf, rdf, on="t", by="key", direction=direction)
        else:

            def job():
                ls = ldf.sort_values("t")
                rs = rdf.sort_values("t")
                return pd.merge_asof(ls, rs, on="t", by="key", direction=direction)

        def values(res):
            res = res.sort_values("lid")
            return res["rval"].to_numpy(dtype=np.float64, na_value=np.nan)
    elif engine == "polars":
        import polars as pl

        ldf, rdf = pl.DataFrame(left), pl.DataFrame(right)

        def job():
            return ldf.sort("t").join_asof(rdf.sort("t"), on="t", by="key", strategy=direction)

        def values(res):
            return res.sort("lid")["rval"].to_numpy().astype(np.float64)
    else:
        import duckdb
        import pyarrow as pa

        con = duckdb.connect()
        con.execute(f"SET threads={threads}")
        lt, rt = pa.table(left), pa.table(right)
        con.register("l", lt)
        con.register("r", rt)
        backward = "SELECT l.lid, r.rval FROM l ASOF LEFT JOIN r ON l.key = r.key AND l.t >= r.t"
        nearest = """
            WITH b AS (SELECT l.lid, l.t, r.t AS bt, r.rval AS bv
                       FROM l ASOF LEFT JOIN r ON l.key = r.key AND l.t >= r.t),
                 f AS (SELECT l.lid, r.t AS ft, r.rval AS fv
                       FROM l ASOF LEFT JOIN r ON l.key = r.key AND l.t <= r.t)
            SELECT b.lid,
                   CASE WHEN bt IS NULL THEN fv WHEN ft IS NULL THEN bv
                        WHEN (b.t - bt) <= (ft - b.t) THEN bv ELSE fv END AS rval
            FROM b JOIN f USING (lid)
        """
        sql = backward if direction == "backward" else nearest

        def job():
            return con.execute(sql).to_arrow_table()

        def values(res):
            res = res.sort_by("lid")
            return res["rval"].to_numpy(zero_copy_only=False).astype(np.float64)

    del left, right
    gc.collect()
    rss0 = _status("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    res = job()
    elapsed = time.perf_counter() - t0
    peak = _status("VmHWM") - rss0
    vals = values(res)
    np.save(out, vals)
    return {"engine": engine, "direction": direction, "seconds": elapsed, "peak_bytes": peak}


def versions() -> dict:
    import duckdb
    import numba
    import pandas
    import polars

    import cemkit

    return {
        "python": platform.python_version(), "cemkit": cemkit.__version__,
        "numba": numba.__version__, "pandas": pandas.__version__,
        "polars": polars.__version__, "duckdb": duckdb.__version__,
    }  # fmt: skip


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=1_000_000, help="rows per side")
    p.add_argument("--keys", type=int, default=None, help="distinct keys (default size/5)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1, help="runs per engine (best time kept)")
    p.add_argument("--directions", nargs="+", default=["backward", "nearest"])
    p.add_argument("--engines", nargs="+", default=list(ENGINES))
    p.add_argument("--key-type", choices=["int", "str"], default="int", help="key column type")
    p.add_argument(
        "--worker", nargs=3, metavar=("ENGINE", "DIRECTION", "OUT"), help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    keys = args.keys or max(1, args.size // 5)
    if args.worker:
        engine, direction, out = args.worker
        res = run_engine(engine, direction, args.size, keys, args.threads, out, args.key_type)
        print(json.dumps(res))
        return 0
    threads = str(args.threads)
    env = dict(os.environ, POLARS_MAX_THREADS=threads, CEMKIT_CORRELATE_THREADS=threads,
               NUMBA_NUM_THREADS=threads)  # fmt: skip
    print(f"# asof {args.size:,} x {args.size:,} rows, {keys:,} {args.key_type} keys, "
          f"{args.threads} threads")  # fmt: skip
    print(f"# machine: {os.cpu_count()} cpus, {cpu_model()}; {json.dumps(versions())}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for direction in args.directions:
            results = {}
            for engine in args.engines:
                best = None
                for r in range(args.repeat):
                    out = os.path.join(tmp, f"{engine}-{direction}-{r}.npy")
                    cmd = [sys.executable, "-m", "benchmarks.bench_asof", "--size", str(args.size),
                           "--keys", str(keys), "--threads", str(args.threads),
                           "--key-type", args.key_type,
                           "--worker", engine, direction, out]  # fmt: skip
                    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                    if proc.returncode:
                        print(proc.stderr, file=sys.stderr)
                        raise SystemExit(f"{engine} failed")
                    res = json.loads(proc.stdout.strip().splitlines()[-1])
                    res["out"] = out
                    if best is None or res["seconds"] < best["seconds"]:
                        best = res
                results[engine] = best
            ref = np.load(results[args.engines[0]]["out"])
            checks = {}
            for engine, res in results.items():
                vals = np.load(res["out"])
                same = vals.shape == ref.shape and np.array_equal(vals, ref, equal_nan=True)
                checks[engine] = same
                ok &= same
            fastest_other = min(
                (r["seconds"] for e, r in results.items() if e != "cemkit"), default=float("nan")
            )
            print(f"\n## {direction}  (matched: {int(np.isfinite(ref).sum()):,} of {ref.size:,})")
            print("| engine | seconds | peak MB | cross-check | speed-up of cemkit |")
            print("|---|---:|---:|---|---:|")
            for engine, res in results.items():
                ratio = res["seconds"] / results["cemkit"]["seconds"] if "cemkit" in results else 1
                print(f"| {engine} | {res['seconds']:.3f} | {res['peak_bytes'] / 2**20:,.0f} | "
                      f"{'same' if checks[engine] else 'DIFFERENT'} | {ratio:.2f}x |")  # fmt: skip
            if "cemkit" in results:
                print(f"cemkit vs fastest other: "
                      f"{fastest_other / results['cemkit']['seconds']:.2f}x")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
