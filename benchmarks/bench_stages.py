"""Each pipeline stage's seconds next to its measured floor on the same data (one process).

    python -m benchmarks.bench_stages [--size 1000000] [--work /tmp/cemkit-bench/pipeline]

On the synthetic world of ``benchmarks.bench_pipeline`` (``--size`` records, seed 1), one
process, no Dask (a pandas frame is one partition of the same stages ``cemkit run`` runs):

| stage | cemkit call | floor (the least any implementation must do) |
|---|---|---|
| load CSV | Asterisk, FreeSWITCH loaders: ``read_part`` of every part | ``pyarrow.csv.read_csv`` |
| load Parquet | the loader's ``read_part_narrow`` (a run's read) | ``pyarrow.parquet.read_table`` |
| protect | ``cemkit.privacy.protect`` (default) | HMAC on distinct values of tokenized columns |
| stitch, pair, match, sessionize | each correlator (pandas) | one ``argsort`` of an int64 key |
| KQIs | ``cemkit.kqi.rollup`` (alone; as the run's sink) | one ``bincount`` (group x bucket) |
| write | Parquet write of the correlated records | ``pyarrow.parquet.write_table`` of them |

The floors are real work on the same rows (not estimates), so "x floor" says how far a stage
is from what its data costs at the least. Each is timed once (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_pipeline import REGION, TZ, csv_path, world
from benchmarks.common import machine, versions


def _t(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


#: User CPU seconds of the last :func:`_tc` call (kernel time on this VM is mostly page faults).
_last_user = [0.0]


def _tc(fn: Any) -> tuple[float, float, Any]:
    """Wall and CPU seconds (all threads of the process) of ``fn()``: on a shared machine the
    CPU seconds are the steadier figure (wall time waits for a core). The user seconds alone
    are left in ``_last_user``."""
    u0, c0, t0 = os.times().user, time.process_time(), time.perf_counter()
    out = fn()
    _last_user[0] = os.times().user - u0
    return time.perf_counter() - t0, time.process_time() - c0, out


def stages(w: Path, only_load: bool = False, upto_protect: bool = False) -> list[dict[str, Any]]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from cemkit import labels
    from cemkit.correlate import match, pair_legs, sessionize, stitch
    from cemkit.correlate._frames import time_ns
    from cemkit.io.api import plan
    from cemkit.kqi.rollup import rollup
    from cemkit.model.assign import Assigner
    from cemkit.model.spec import load_model
    from cemkit.privacy import load_key, load_policy, protect
    from cemkit.privacy._hmac import hmac_hex

    rows: list[dict[str, Any]] = []

    def add(stage: str, n: int, secs: float, floor_name: str, floor_s: float,
            cpu: tuple[float, float] | None = None,
            user: tuple[float, float] | None = None) -> None:  # fmt: skip
        ratio = secs / floor_s if floor_s else None
        rows.append({"stage": stage, "rows": n, "seconds": secs, "floor": floor_name,
                     "floor_seconds": floor_s, "x_floor": ratio})  # fmt: skip
        extra = ""
        if cpu is not None:  # (stage, floor) CPU seconds
            rows[-1].update(cpu_seconds=cpu[0], floor_cpu_seconds=cpu[1],
                            x_floor_cpu=cpu[0] / cpu[1] if cpu[1] else None)  # fmt: skip
            extra = f"; CPU {cpu[0]:.2f} s, floor {cpu[1]:.2f} s, x{cpu[0] / cpu[1]:.1f}"
        if user is not None:  # (stage, floor) user CPU seconds
            rows[-1].update(user_seconds=user[0], floor_user_seconds=user[1])
            extra += f"; user {user[0]:.2f} s, floor {user[1]:.2f} s"
            extra += f", x{user[0] / user[1]:.1f}" if user[1] else ""
        print(f"# {stage}: {secs:.2f} s (floor {floor_name} {floor_s:.3f} s{extra})", flush=True)

    def load_all(paths: list[str], fmt: str, narrow: bool = False, **kw: Any) -> pd.DataFrame:
        the_plan = plan(paths, format=fmt, **kw)
        read = the_plan.loader.read_part
        if narrow:  # as a run reads: label columns narrow (cemkit.labels)
            read = getattr(the_plan.loader, "read_part_narrow", None) or (
                lambda p: (labels.narrow(the_plan.loader.read_part(p)[0]), None)
            )  # (a tree before read_part_narrow: the read, then narrow, as its runner did)
        return pd.concat([read(p)[0] for p in the_plan.parts], ignore_index=True)

    headerless = pacsv.ReadOptions(autogenerate_column_names=True)
    for fmt in ("asterisk", "freeswitch"):
        csv = str(csv_path(w).parent.parent / fmt / "Master.csv")
        if fmt != "asterisk" and not Path(csv).exists():
            continue
        # the loader's kernels loaded from Numba's cache first (a process does it once; the
        # floor has nothing to load): its first 2,000 lines read once, untimed
        head = Path(os.environ.get("TMPDIR", "/tmp")) / f"cemkit-stages-{os.getpid()}-{fmt}.csv"
        with open(csv, "rb") as src:
            head.write_bytes(b"".join(src.readline() for _ in range(2000)))
        load_all([str(head)], fmt, tz=TZ, default_region=REGION)
        head.unlink()
        secs, cpu, csv_records = _tc(
            lambda f=fmt, c=csv: load_all([c], f, tz=TZ, default_region=REGION)
        )
        user = _last_user[0]
        floor, floor_cpu, _ = _tc(lambda c=csv: pacsv.read_csv(c, read_options=headerless))
        add(f"load CSV ({fmt})", len(csv_records), secs, "pyarrow.csv.read_csv", floor,
            (cpu, floor_cpu), (user, _last_user[0]))  # fmt: skip
        del csv_records
    if only_load:
        return rows

    files = sorted(str(p) for p in (w / "records").glob("*.parquet"))
    secs, cpu, records = _tc(lambda: load_all(files, "parquet", narrow=True))
    user = _last_user[0]
    floor, floor_cpu, _ = _tc(lambda: pa.concat_tables([pq.read_table(f) for f in files]))
    add("load Parquet (labels narrow, as a run reads)", len(records), secs,
        "pyarrow.parquet.read_table", floor, (cpu, floor_cpu), (user, _last_user[0]))  # fmt: skip

    policy = load_policy("default")
    key = load_key(policy)
    protect(records.head(4000), policy, key=key)  # compiled first (the floor's kernel is too)
    secs, cpu, protected = _tc(lambda: protect(records, policy, key=key))
    user = _last_user[0]
    # every column the policy tokenizes (numbers, call ids, ...): the distinct values of all of
    # them hashed once is the least any implementation of the policy must do
    from cemkit.privacy.policy import TokenizeRule

    rules = policy.columns.items()
    tokenized = [n for n, r in rules if isinstance(r, TokenizeRule) and n in records]
    values = pa.chunked_array(
        [pa.array(records[c].dropna().astype(str), type=pa.string()) for c in tokenized]
    )
    distinct = values.unique()
    hmac_hex(distinct.slice(0, 8), key.derive("tokenize"), 16)  # compiled for these types first
    floor, floor_cpu, _ = _tc(lambda: hmac_hex(distinct, key.derive("tokenize"), 16))
    add("protect", len(records), secs, "HMAC kernel on the distinct tokenized values", floor,
        (cpu, floor_cpu), (user, _last_user[0]))  # fmt: skip
    if upto_protect:
        return rows

    def one_sort(df: pd.DataFrame) -> tuple[float, float]:
        """Wall and CPU seconds of one stable argsort of an int64 (party, second) key."""
        codes = pd.factorize(df["a_number"])[0].astype(np.int64) * (1 << 20)
        t = time_ns(df["start"])
        key_ = codes + (t // 10**9) % (1 << 20)
        wall, cpu, _ = _tc(lambda: np.argsort(key_, kind="stable"))
        return wall, cpu

    def correlated(stage: str, n: int, fn: Any, df: pd.DataFrame) -> Any:
        # the stage, then its floor on the same rows, in the same minute (CPU: steadier)
        secs, cpu, out = _tc(fn)
        floor, floor_cpu = one_sort(df)
        add(stage, n, secs, "one argsort (int64 key)", floor, (cpu, floor_cpu))
        return out

    calls = correlated("stitch", len(protected), lambda: stitch(protected), protected)
    paired = correlated("pair legs", len(calls), lambda: pair_legs(calls), calls)
    matched = correlated("match xDR-CDR", len(paired), lambda: match(paired), paired)
    labelled = correlated("sessionize", len(matched),
                          lambda: sessionize(matched, output="records"), matched)  # fmt: skip
    # what the runner runs after stitch: pair, match, signaling, intents (one stage on branches
    # that fuse them: one key, one sort, one gather)
    from cemkit.runs.library import correlate_stages
    from cemkit.runs.stages import run_pandas

    correlated("pair+match+signaling+intents (runner)", len(calls),
               lambda: run_pandas(calls, correlate_stages()[1:]), calls)  # fmt: skip

    assigner = Assigner(load_model(w / "model.yaml"))
    rollup(labelled.iloc[:1000], assigner, sizes=True)  # compiled (or loaded from cache) first
    secs, cpu, _ = _tc(lambda: rollup(labelled, assigner, rank_customers=False))
    node = pd.factorize(labelled["node"])[0]
    bucket = time_ns(labelled["start"]) // (15 * 60 * 10**9)
    bucket = bucket - bucket.min()
    cell = node.astype(np.int64) * (int(bucket.max()) + 1) + bucket
    answered = (labelled["outcome"] == "answered").to_numpy()
    floor, floor_cpu, _ = _tc(lambda: (np.bincount(cell), np.bincount(cell, weights=answered)))
    add("KQIs (rollup)", len(labelled), secs, "bincount (node x 15 min)", floor, (cpu, floor_cpu))
    # what `cemkit run`'s KQI sink computes: also the worst customers and the group sizes
    secs, cpu, _ = _tc(lambda: rollup(labelled, assigner, sizes=True,
                                      intents_within_partitions=True))  # fmt: skip
    add("KQIs (run's sink: + worst customers, group sizes)", len(labelled), secs,
        "bincount (node x 15 min)", floor, (cpu, floor_cpu))  # fmt: skip

    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"cemkit-stages-{os.getpid()}.parquet"
    secs, _ = _t(lambda: labelled.to_parquet(out, index=False))
    table = pa.Table.from_pandas(labelled, preserve_index=False)
    floor, _ = _t(lambda: pq.write_table(table, out))
    add("write records (Parquet)", len(labelled), secs, "pyarrow write_table of the table",
        floor)  # fmt: skip
    out.unlink(missing_ok=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--work", default="/tmp/cemkit-bench/pipeline")
    p.add_argument("--only-load", action="store_true",
                   help="the CSV load rows alone (Asterisk, FreeSWITCH), e.g. for an A/B: "
                        "python benchmarks/bench_stages.py, PYTHONPATH=<checkout>")  # fmt: skip
    p.add_argument(
        "--upto-protect",
        action="store_true",
        help="the load and protect rows alone (stops after protect)",
    )
    args = p.parse_args()
    if "CEMKIT_KEY" not in os.environ:
        import secrets

        os.environ["CEMKIT_KEY"] = secrets.token_hex(32)
    try:  # the allocators as `cemkit run` sets them (freed memory kept: fewer page faults)
        from cemkit import memory

        memory.apply()
    except ImportError:  # a checkout from before cemkit.memory
        pass
    w = world(Path(args.work), args.size)
    print(f"# machine: {machine()}; load {os.getloadavg()}")
    print(f"# {versions(('cemkit', 'pandas', 'pyarrow', 'numba', 'numpy'))}")
    rows = stages(w, only_load=args.only_load, upto_protect=args.upto_protect)
    print("\n| stage | rows | seconds | floor | floor s | x floor | CPU s | floor CPU s | x CPU "
          "| user s | floor user s |")  # fmt: skip
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cpu = (f"{r['cpu_seconds']:.2f} | {r['floor_cpu_seconds']:.2f} | {r['x_floor_cpu']:.1f}"
               if "cpu_seconds" in r else " | | ")  # fmt: skip
        cpu += (f" | {r['user_seconds']:.2f} | {r['floor_user_seconds']:.2f}"
                if "user_seconds" in r else " | | ")  # fmt: skip
        print(f"| {r['stage']} | {r['rows']:,} | {r['seconds']:.2f} | {r['floor']} | "
              f"{r['floor_seconds']:.3f} | {r['x_floor']:.1f} | {cpu} |")  # fmt: skip
    name = ("stages-load.json" if args.only_load
            else "stages-protect.json" if args.upto_protect else "stages.json")  # fmt: skip
    (Path(args.work) / name).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
