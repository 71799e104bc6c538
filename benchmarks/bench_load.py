"""Loading Asterisk cdr_csv: cemkit (Dask) vs pandas.read_csv vs pyarrow.csv (1 thread, all cores).

    python -m benchmarks.bench_load [--size 5000000] [--workers 2] [--file PATH] [--repeat N]
        [--contenders NAME,NAME]

``pyarrow.csv (threads)`` is the floor of the stage table (``bench_stages``): every ratio to it
is "× floor". The script may be run as a file (``python benchmarks/bench_load.py``) with
``PYTHONPATH`` naming another checkout, for an A/B of two versions of cemkit in the same minute.

Every contender reads the same synthetic Master.csv (18 columns, local London time, GB national
numbers as a GB PBX writes them) into the same types: text as ``string[pyarrow]``, the three
times as ``datetime64[ns, UTC]`` (converted from Europe/London), durations as float64. cemkit
does more on top (E.164 normalization of both numbers, outcome mapping, record ids, quarantine
checks). Each contender runs in its own process; peak memory is the highest resident set size of
that process and its children (sampled every 20 ms). cemkit is measured without gathering the
records to the client: each worker reduces its partitions to the cross-check figures (rows,
duration sum, first/last start), which must equal the baselines' figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

import cemkit
from cemkit.io.asterisk import LAYOUTS, TIME_FORMAT

COLUMNS = list(LAYOUTS[18])
TIMES = ["start", "answer", "end"]
NUMBERS = ["duration", "billsec"]
TZ = "Europe/London"
REGION = "GB"


# -- data -------------------------------------------------------------------------------------
def generate(path: Path, rows: int, seed: int = 7, chunk: int = 1_000_000) -> None:
    """Write ``rows`` synthetic cdr_csv lines (vectorized, in chunks)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    t0 = pd.Timestamp("2026-03-02", tz="UTC").value // 10**9
    with open(tmp, "wb") as fh:
        for first in range(0, rows, chunk):
            n = min(chunk, rows - first)
            seq = np.arange(first, first + n)
            kind = rng.random(n)
            subs = rng.integers(0, 3_000_000, n)
            a = np.where(kind < 0.6, "0207" + pd.Series(subs % 10**7).astype(str).str.zfill(7),
                         np.where(kind < 0.8, "01614" + pd.Series(subs % 10**6).astype(str)
                                  .str.zfill(6), "00493" + pd.Series(subs).astype(str)
                                  .str.zfill(9)))  # fmt: skip
            b_subs = rng.integers(0, 3_000_000, n)
            b = np.where(rng.random(n) < 0.1, (200 + b_subs % 800).astype(str),
                         "0207" + pd.Series(b_subs % 10**7).astype(str).str.zfill(7))  # fmt: skip
            start = t0 + np.sort(rng.integers(0, 30 * 86400, n))
            answered = rng.random(n) < 0.7
            ring = rng.integers(1, 20, n)
            talk = np.where(answered, rng.lognormal(4, 1, n).astype(np.int64), 0)
            end = start + ring + talk
            disp = np.where(answered, "ANSWERED",
                            rng.choice(["NO ANSWER", "BUSY", "FAILED"], n))  # fmt: skip

            def local(epoch: np.ndarray) -> pa.Array:
                ts = pa.array(epoch, pa.timestamp("s", tz="UTC"))
                return pc.strftime(pc.cast(ts, pa.timestamp("s", tz=TZ)), format=TIME_FORMAT)

            seq_s = pd.Series(seq).astype(str)
            table = pa.table({
                "accountcode": pa.array([""] * n), "src": a, "dst": b,
                "dcontext": pa.array(["from-internal"] * n),
                "clid": pa.array('"Caller" <' + pd.Series(a) + ">"),
                "channel": pa.array("SIP/lon-sw1-" + seq_s.str.zfill(8)),
                "dstchannel": pa.array(np.where(answered, "SIP/trunk-" + seq_s, "")),
                "lastapp": pa.array(["Dial"] * n), "lastdata": pa.array("SIP/trunk/" + b + ",60"),
                "start": local(start),
                "answer": pc.if_else(pa.array(answered), local(start + ring),
                                     pa.scalar(None, pa.string())),
                "end": local(end), "duration": pa.array(end - start),
                "billsec": pa.array(talk.astype(np.int64)), "disposition": pa.array(disp),
                "amaflags": pa.array(["DOCUMENTATION"] * n),
                "uniqueid": pa.array(pd.Series(start).astype(str) + "." + seq_s),
                "userfield": pa.array([""] * n),
            })  # fmt: skip
            pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False))
    os.replace(tmp, path)


# -- contenders -------------------------------------------------------------------------------
def _figures(rows: int, duration_sum: float, first: pd.Timestamp, last: pd.Timestamp) -> dict:
    return {"rows": int(rows), "duration_sum": float(duration_sum),
            "first_start": str(first), "last_start": str(last)}  # fmt: skip


def run_pandas(path: str, workers: int) -> dict:
    text = {c: "string[pyarrow]" for c in COLUMNS if c not in TIMES + NUMBERS}
    df = pd.read_csv(path, header=None, names=COLUMNS, dtype={**text, "duration": "float64",
                     "billsec": "float64"}, keep_default_na=False, na_values={t: [""] for t in
                     TIMES})  # fmt: skip
    for c in TIMES:
        df[c] = (pd.to_datetime(df[c], format=TIME_FORMAT)
                 .dt.tz_localize(TZ, ambiguous=True, nonexistent="shift_forward")
                 .dt.tz_convert("UTC").astype("datetime64[ns, UTC]"))  # fmt: skip
    return _figures(len(df), df.duration.sum(), df.start.min(), df.start.max())


def run_pyarrow(path: str, workers: int, threads: bool = False) -> dict:
    types = {c: pa.string() for c in COLUMNS}
    types.update({c: pa.timestamp("s") for c in TIMES})
    types.update({c: pa.float64() for c in NUMBERS})
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=COLUMNS, use_threads=threads),
        convert_options=pacsv.ConvertOptions(
            column_types=types, timestamp_parsers=[TIME_FORMAT], strings_can_be_null=False
        ),
    )
    for c in TIMES:
        i = table.schema.get_field_index(c)
        utc = pc.assume_timezone(table.column(c), timezone=TZ, ambiguous="earliest",
                                 nonexistent="earliest")  # fmt: skip
        table = table.set_column(i, c, utc.cast(pa.timestamp("ns", tz="UTC")))
    df = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    return _figures(len(df), df.duration.sum(), df.start.min(), df.start.max())


def _partition_figures(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"rows": [len(df)], "duration_sum": [df.duration_s.sum()],
                         "first": [df.start.min()], "last": [df.start.max()]})  # fmt: skip


def _cemkit(path: str) -> dict:
    import cemkit

    ddf = cemkit.load(path, format="asterisk", tz=TZ, default_region=REGION)
    meta = _partition_figures(ddf._meta)
    parts = ddf.map_partitions(_partition_figures, meta=meta).compute()
    return {**_figures(parts.rows.sum(), parts.duration_sum.sum(), parts["first"].min(),
                       parts["last"].max()), "partitions": ddf.npartitions}  # fmt: skip


def run_pyarrow_threads(path: str, workers: int) -> dict:
    return run_pyarrow(path, workers, threads=True)


def run_cemkit_sync(path: str, workers: int) -> dict:
    import dask

    with dask.config.set(scheduler="sync"):  # the one-machine default of cemkit's commands
        return _cemkit(path)


def run_cemkit(path: str, workers: int) -> dict:
    import dask

    with dask.config.set(scheduler="threads", num_workers=workers):
        return _cemkit(path)


def run_cemkit_cluster(path: str, workers: int) -> dict:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):  # fmt: skip
        t0 = time.perf_counter()
        out = _cemkit(path)
        out["seconds_inside"] = time.perf_counter() - t0  # without cluster start-up
        return out


CONTENDERS = {
    "pandas.read_csv": run_pandas,
    "pyarrow.csv (1 thread)": run_pyarrow,
    "pyarrow.csv (threads)": run_pyarrow_threads,
    "cemkit.load (sync)": run_cemkit_sync,
    "cemkit.load (threads)": run_cemkit,
    "cemkit.load (LocalCluster)": run_cemkit_cluster,
}


# -- measuring --------------------------------------------------------------------------------
def _tree_rss() -> int:
    import psutil

    me = psutil.Process()
    total = 0
    for p in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def measure(name: str, path: str, workers: int) -> dict:
    """Run one contender in this process and report time, peak memory and figures."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss())
            time.sleep(0.02)

    # Imports are not part of anyone's loading time.
    import dask.dataframe  # noqa: F401
    import distributed  # noqa: F401

    import cemkit.io  # noqa: F401
    from cemkit.io.base import registry

    registry.names()  # the format modules (and what they import)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    figures = CONTENDERS[name](path, workers)
    seconds = time.perf_counter() - t0
    done.set()
    th.join()
    return {"name": name, "seconds": seconds, "peak_rss_mb": peak[0] / 2**20, **figures}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=5_000_000, help="rows (default 5M)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--file", default=None, help="cached input (generated when absent)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per contender (best is kept)")
    ap.add_argument("--contenders", default=None,
                    help="comma-separated contenders (default: all; pandas and both pyarrow "
                    "runs are always measured: the ratios need them)")  # fmt: skip
    ap.add_argument("--only", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    path = Path(args.file or f"/tmp/cemkit-bench/asterisk-{args.size}.csv")
    if args.only:  # child process: one contender
        print(json.dumps(measure(args.only, str(path), args.workers)))
        return 0
    if not path.exists():
        t0 = time.perf_counter()
        generate(path, args.size)
        print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)  # fmt: skip
    baselines = ["pandas.read_csv", "pyarrow.csv (1 thread)", "pyarrow.csv (threads)"]
    chosen = args.contenders.split(",") if args.contenders else list(CONTENDERS)
    unknown = sorted(set(chosen) - set(CONTENDERS))
    if unknown:
        raise SystemExit(f"unknown contender(s) {unknown}; known: {list(CONTENDERS)}")
    names = baselines + [n for n in CONTENDERS if n in chosen and n not in baselines]
    results = []
    for name in names:
        best = None
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--only", name, "--file",
                 str(path), "--workers", str(args.workers), "--size", str(args.size)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            best = r if best is None or r["seconds"] < best["seconds"] else best
        assert best is not None
        results.append(best)
        print(f"{name:28s} {best['seconds']:7.2f} s  peak {best['peak_rss_mb']:7.0f} MiB",
              file=sys.stderr)  # fmt: skip
    ref = results[0]
    for r in results[1:]:
        for key in ("rows", "duration_sum", "first_start", "last_start"):
            if r[key] != ref[key]:
                raise SystemExit(f"cross-check failed: {r['name']} {key}={r[key]!r}, "
                                 f"pandas {ref[key]!r}")  # fmt: skip
    pyarrow_s = results[1]["seconds"]
    floor_s = results[2]["seconds"]
    pandas_s = results[0]["seconds"]
    lines = [
        (
            f"rows: {ref['rows']:,}; file: {path.stat().st_size / 2**20:.0f} MiB; "
            f"workers: {args.workers}; machine: {os.cpu_count()} CPUs, {platform.processor()}, "
            f"load average {os.getloadavg()[0]:.1f}; cemkit from {os.path.dirname(cemkit.__file__)}"
        ),
        "",
        "| contender | seconds | rows/s | vs pandas | vs pyarrow 1-thread | × floor | peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['seconds']:.2f} | {r['rows'] / r['seconds']:,.0f} | "
            f"{pandas_s / r['seconds']:.2f}x | {pyarrow_s / r['seconds']:.2f}x | "
            f"{r['seconds'] / floor_s:.2f} | {r['peak_rss_mb']:.0f} |"
        )
    cluster = results[-1]
    if "seconds_inside" in cluster:
        lines.append("")
        lines.append(f"LocalCluster time without cluster start-up: "
                     f"{cluster['seconds_inside']:.2f} s "
                     f"({pyarrow_s / cluster['seconds_inside']:.2f}x pyarrow 1-thread); "
                     f"cemkit partitions: {cluster.get('partitions')}")  # fmt: skip
    lines.append("")
    lines.append("cross-check: rows, duration sum, first and last start equal in every contender")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
