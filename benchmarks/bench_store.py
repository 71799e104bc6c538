"""Writing protected records: cemkit's part writer against plain pyarrow ``write_table``.

    PYTHONPATH=$PWD python -m benchmarks.bench_store [--size 1000000] [--repeat 3]

The records are the synthetic world of ``bench_stages`` (cached in --work), loaded and protected
with the default policy. Timed, alternating, best of --repeat: ``cemkit.runs.store.write_part``
(narrow: dictionary-encoded low-cardinality strings, zstd, no statistics of tokens); what
``main`` wrote (``Table.from_pandas`` + ``write_table`` defaults); and the floor, ``write_table``
of the already converted table with each usual compression. Bytes written are reported too.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_pipeline import world
from benchmarks.common import machine, versions


def main() -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cemkit.io.api import plan
    from cemkit.privacy import load_key, load_policy, protect
    from cemkit.runs import store

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--work", default="/tmp/cemkit-bench/pipeline")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    os.environ.setdefault("CEMKIT_KEY", "00" * 32)
    w = world(Path(args.work), args.size)
    files = sorted(str(f) for f in (w / "records").glob("*.parquet"))
    the_plan = plan(files, format="parquet")
    records = pd.concat([the_plan.loader.read_part(x)[0] for x in the_plan.parts],
                        ignore_index=True)  # fmt: skip
    policy = load_policy("default")
    df = protect(records, policy, key=load_key(policy))
    del records
    table = pa.Table.from_pandas(df, preserve_index=False)
    out = Path(tempfile.mkdtemp(prefix="cemkit-bench-store-"))
    target = out / "t.parquet"

    def cemkit_part(token_bits: bool = False) -> None:
        store.TOKEN_BITS = token_bits
        try:
            store.write_part(df, out, 0)
        finally:
            store.TOKEN_BITS = False
        os.replace(out / store.part_name(0), target)

    contenders: dict[str, Any] = {
        "cemkit write_part (narrow)": cemkit_part,
        "cemkit write_part (narrow, token bits)": lambda: cemkit_part(True),
        "main: from_pandas + write_table defaults": lambda: pq.write_table(
            pa.Table.from_pandas(df, preserve_index=False), target
        ),
    }
    for codec in ("snappy", "zstd", "lz4", "none"):
        contenders[f"floor: write_table of the table, {codec}"] = lambda c=codec: pq.write_table(
            table, target, compression=c
        )
    best: dict[str, float] = {}
    size: dict[str, int] = {}
    for _ in range(args.repeat):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
            size[name] = target.stat().st_size
    strings = sum(table[f.name].nbytes for f in table.schema if pa.types.is_large_string(f.type)
                  or pa.types.is_string(f.type))  # fmt: skip
    print(f"# machine: {machine()}; load {os.getloadavg()}")
    print(f"# {versions(('cemkit', 'pandas', 'pyarrow', 'numpy'))}")
    print(f"# {len(df):,} protected records, {len(table.schema)} columns, "
          f"{strings / 2**20:.0f} MiB of strings in memory")  # fmt: skip
    floor = min(v for k, v in best.items() if k.startswith("floor"))
    print("\n| writer | seconds | MiB | x fastest floor |\n|---|---:|---:|---:|")
    for name in contenders:
        print(f"| {name} | {best[name]:.2f} | {size[name] / 2**20:.1f} | "
              f"{best[name] / floor:.2f} |")  # fmt: skip
    # reading back through cemkit's reader (tokens as strings either way), best of --repeat
    files = {bits: out / f"read-{bits}.parquet" for bits in (False, True)}
    for bits, path in files.items():
        cemkit_part(bits)
        os.replace(target, path)
    read: dict[bool, float] = {}
    for _ in range(args.repeat):
        for bits, path in files.items():
            t0 = time.perf_counter()
            store.read_part(str(path))
            read[bits] = min(read.get(bits, float("inf")), time.perf_counter() - t0)
    print("\n| read_part of the file | seconds | MiB |\n|---|---:|---:|")
    for bits, path in files.items():
        name = "token bits" if bits else "strings"
        print(f"| {name} | {read[bits]:.2f} | {path.stat().st_size / 2**20:.1f} |")
        path.unlink()
    target.unlink(missing_ok=True)
    out.rmdir()


if __name__ == "__main__":
    main()
