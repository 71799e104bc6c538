"""Privacy-officer tools benchmark: notebook guard and policy check against what a user would write.

    python -m benchmarks.bench_officer [--rows 1000000] [--distinct 200000] [--naive-rows 50000]

- guard: rendering a displayed frame of ``--rows`` raw numbers through the cemkit guard (which
  checks only the rows pandas shows) vs masking the whole column first with the same detector,
  once per distinct value (``df.n.map({v: mask_text(v) for v in df.n.unique()})``), and then
  rendering it. The baseline is timed on the first ``--naive-rows`` rows and scaled by the
  number of distinct values of the whole column; the rendered texts are compared.
- check: counting distinct numbers per kept prefix (``cemkit policy check --data``, Arrow
  group-by over distinct values) vs pandas ``str.extract`` + ``groupby().nunique()``; the group
  counts are compared.

Figures are rows per second of wall time and the ratio cemkit / baseline.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import pyarrow as pa

from benchmarks.common import machine, versions
from cemkit.guard import MASK, _Guard, mask_text
from cemkit.privacy.check import small_groups
from cemkit.privacy.policy import MIN_HIDDEN_DIGITS


def numbers(rows: int, distinct: int, seed: int = 7) -> pd.Series:
    rng = np.random.default_rng(seed)
    pool = np.array([f"+4420794{n:05d}" if n < 100_000 else f"+1202555{n % 10_000:04d}"
                     for n in rng.integers(0, 200_000, distinct)])  # fmt: skip
    return pd.Series(pool[rng.integers(0, distinct, rows)], dtype="string[pyarrow]")


class _Printer:
    def __init__(self) -> None:
        self.out = ""

    def text(self, s: str) -> None:
        self.out += s


def bench_guard(rows: int, distinct: int, naive_rows: int) -> dict[str, float]:
    df = pd.DataFrame({"n": numbers(rows, distinct), "calls": np.arange(rows)})
    guard = _Guard(ipython=None, regions=("GB", "US", "DE", "FR"))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        guarded = guard.render(df, "plain")
        t_guard = time.perf_counter() - t0
    # Baseline: mask the whole column before displaying it, on its distinct values (what a
    # careful user would write), timed on the first naive_rows rows and scaled by the distinct
    # values of the whole column.
    head = df.iloc[:naive_rows]
    t0 = time.perf_counter()
    distinct_head = head["n"].unique()
    masked = {v: mask_text(v) for v in distinct_head}
    naive_head = head.assign(n=head["n"].map(masked))
    t_naive_head = time.perf_counter() - t0
    t_naive = t_naive_head * df["n"].nunique() / len(distinct_head)
    # Cross-check: the naive masking of the whole frame renders the same text as the guard.
    # (Only the displayed rows matter for the text, so mask those the naive way as well.)
    shown = pd.concat([df.iloc[:5], df.iloc[-5:]])
    naive_full = df.copy()
    naive_full.loc[shown.index, "n"] = shown["n"].map(mask_text)
    assert repr(naive_full) == guarded, "guard and naive masking render different text"
    assert MASK in guarded and "+4420794" not in guarded
    assert (naive_head["n"] == MASK).all()
    return {"guard_s": t_guard, "naive_s": t_naive, "ratio": t_naive / t_guard}


def bench_check(rows: int, distinct: int, digits: int = 6, k: int = 10) -> dict[str, float]:
    values = numbers(rows, distinct)
    arr = pa.array(values.array)
    t0 = time.perf_counter()
    stats = small_groups(arr, digits, k)
    t_cemkit = time.perf_counter() - t0
    t0 = time.perf_counter()
    prefix = values.str.extract(rf"^(\+?\d{{{digits}}})\d{{{MIN_HIDDEN_DIGITS},}}$")[0]
    sizes = values.groupby(prefix).nunique()
    naive = {
        "groups": len(sizes),
        "small_groups": int((sizes < k).sum()),
        "numbers": int(sizes.sum()),
        "numbers_in_small": int(sizes[sizes < k].sum()),
    }
    t_pandas = time.perf_counter() - t0
    assert naive == stats, (naive, stats)
    return {"cemkit_s": t_cemkit, "pandas_s": t_pandas, "ratio": t_pandas / t_cemkit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=200_000)
    parser.add_argument("--naive-rows", type=int, default=50_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"versions: {versions(('cemkit', 'pandas', 'pyarrow', 'phonenumbers'))}")
    g = bench_guard(args.rows, args.distinct, args.naive_rows)
    print(
        f"guard  {args.rows:>9} rows: cemkit {g['guard_s'] * 1e3:8.1f} ms, "
        f"mask column (distinct values) {g['naive_s']:6.2f} s "
        f"(timed on {args.naive_rows} rows, scaled) -> {g['ratio']:,.0f}x; same rendered text"
    )
    c = bench_check(args.rows, args.distinct)
    print(
        f"check  {args.rows:>9} rows: cemkit {c['cemkit_s']:.3f} s "
        f"({args.rows / c['cemkit_s']:,.0f} rows/s), pandas {c['pandas_s']:.3f} s "
        f"({args.rows / c['pandas_s']:,.0f} rows/s) -> {c['ratio']:.1f}x; same group counts"
    )


if __name__ == "__main__":
    main()
