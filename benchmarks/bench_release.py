"""DP release of every node group × 15-minute bucket of a month: cemkit against OpenDP per cell.

Records: ``--size`` protected-looking voice CDRs (subscriber pseudonyms ``+44NN#hex``, a switch,
an outcome, a start uniform over March 2026) under the synthetic world's service model. Both
contenders apply the same policy bounds (``policies/default.yaml``, ``release:``) and draw the
same noise from OpenDP; they differ in how they get there:

* **cemkit**: ``cemkit.release`` — Numba contribution bounding on integer codes, one ``bincount``
  per level and counter, one OpenDP measurement call per counter vector;
* **baseline** (what a user would write with the library): pandas for the bounding (sample
  ``max_cells`` cells per subscriber, ``head(max_records)`` per subscriber and cell, a groupby per
  level), then OpenDP's scalar measurement once per cell and counter.

Counts before noise are cross-checked (same cells, same totals per level). Usage::

    python -m benchmarks.bench_release --size 10000000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import machine, peak_rss_mib, versions

MODEL = """\
name: bench-world
version: 1
numbers: {column: a_number}
groups:
  - {name: GB, match: {prefixes: ["+44"]}}
  - {name: London, parent: GB, match: {prefixes: ["+4420"]}}
  - {name: Manchester, parent: GB, match: {prefixes: ["+44161"]}}
  - {name: Birmingham, parent: GB, match: {prefixes: ["+44121"]}}
  - {name: DE, match: {prefixes: ["+49"]}}
  - {name: Berlin, parent: DE, match: {prefixes: ["+4930"]}}
  - {name: Munich, parent: DE, match: {prefixes: ["+4989"]}}
  - {name: FR, match: {prefixes: ["+33"]}}
  - {name: Paris, parent: FR, match: {prefixes: ["+331"]}}
"""
PREFIXES = ["+4420", "+44161", "+44121", "+4430", "+4930", "+4989", "+4940", "+331", "+334"]
START, END = "2026-03-01", "2026-04-01"


def records(n: int, subscribers: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sub = rng.zipf(1.3, n) % subscribers  # heavy users exist: bounding matters
    prefix = np.array(PREFIXES)[np.arange(subscribers) % len(PREFIXES)]
    token = np.char.add(np.char.add(prefix, "#"), np.char.mod("%012x", np.arange(subscribers)))
    t0 = pd.Timestamp(START, tz="UTC").value
    span = pd.Timestamp(END, tz="UTC").value - t0
    start = pd.to_datetime(t0 + rng.integers(0, span, n), utc=True)
    outcome = np.array(["answered", "busy", "no_answer", "failed"])[
        rng.choice(4, n, p=[0.7, 0.1, 0.12, 0.08])
    ]
    return pd.DataFrame({
        "a_number": pd.array(token[sub], dtype="string[pyarrow]"),
        "start": start,
        "service": "voice",
        "record_kind": "cdr",
        "outcome": pd.array(outcome, dtype="string[pyarrow]"),
        "billsec_s": np.where(outcome == "answered", rng.exponential(90, n), 0.0),
        "cause_q850": pd.array(np.where(rng.random(n) < 0.03, 41, 16), dtype="Int16"),
    })  # fmt: skip


def baseline(frame: pd.DataFrame, spec, model, seed: int) -> tuple[dict, float]:
    """pandas bounding + OpenDP scalar noise per cell (the library used cell by cell)."""
    import opendp.prelude as dp

    from cemkit.dp.api import UNASSIGNED, _ancestor_at, _levels
    from cemkit.kqi import formulas
    from cemkit.model.assign import GROUP_COLUMN, Assigner

    dp.enable_features("contrib")
    t0 = pd.Timestamp(START, tz="UTC")
    assigner = Assigner(model)
    df = assigner.assign(frame)
    names = [*assigner.group_names, UNASSIGNED]
    codes = np.asarray(df[GROUP_COLUMN].cat.codes, dtype=np.int64)
    df = pd.DataFrame({
        "unit": df["a_number"], "group": np.where(codes < 0, len(names) - 1, codes),
        "bucket": ((pd.to_datetime(df["start"], utc=True) - t0) // pd.Timedelta("15min")),
    })  # fmt: skip
    counters = formulas.contributions(frame)
    wanted = spec.counters()
    for name in wanted:
        df[name] = counters[name].to_numpy()
    b = spec.bounds
    n_buckets = int((pd.Timestamp(END, tz="UTC") - t0) / pd.Timedelta("15min"))
    truth, noisy_calls = {}, 0
    scale = float(b.max_cells * b.max_records) / (0.25 / (3 * len(wanted)))
    meas = dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)
    t_noise = 0.0
    for depth in sorted(_levels(model, names)):
        anc = _ancestor_at(model, names, depth)[df["group"].to_numpy()]
        lv = df.assign(cell=anc * n_buckets + df["bucket"].to_numpy())[anc >= 0]
        cells = lv[["unit", "cell"]].drop_duplicates()
        cells = cells.sample(frac=1.0, random_state=seed).groupby("unit").head(b.max_cells)
        lv = lv.merge(cells, on=["unit", "cell"])
        lv = (
            lv.sample(frac=1.0, random_state=seed + 1).groupby(["unit", "cell"]).head(b.max_records)
        )
        sums = lv.groupby("cell")[wanted].sum()
        level_groups = [c for c in range(len(names)) if _ancestor_at(model, names, depth)[c] == c]
        all_cells = pd.Index(
            [g * n_buckets + k for g in level_groups for k in range(n_buckets)], name="cell"
        )
        sums = sums.reindex(all_cells, fill_value=0)
        truth[depth] = {name: int(sums[name].sum()) for name in wanted}
        t1 = time.perf_counter()
        for name in wanted:
            for value in sums[name].to_numpy():
                meas(int(value))
                noisy_calls += 1
        t_noise += time.perf_counter() - t1
    return {"truth": truth, "calls": noisy_calls}, t_noise


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--size", type=int, default=10_000_000)
    p.add_argument("--subscribers", type=int, default=500_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", default="/tmp/cemkit-bench/release")
    args = p.parse_args()

    import cemkit
    from cemkit.dp import api
    from cemkit.model.spec import ServiceModel
    from cemkit.privacy.policy import load_policy

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ledger = work / "ledger.jsonl"
    ledger.unlink(missing_ok=True)
    policy = load_policy("default")
    spec = policy.release
    model = ServiceModel.from_yaml_text(MODEL)
    t = time.perf_counter()
    frame = records(args.size, args.subscribers, args.seed)
    t_gen = time.perf_counter() - t

    # warm the kernels on a small slice (compile time is not the release's)
    cemkit.release(frame.iloc[:1000], policy=policy, model=model, start=START, end=END,
                   ledger=work / "warm.jsonl", spend=0.01)  # fmt: skip
    t = time.perf_counter()
    rel = cemkit.release(frame, policy=policy, model=model, start=START, end=END, ledger=ledger,
                         spend=0.25, bounding_seed=args.seed)  # fmt: skip
    t_cemkit = time.perf_counter() - t
    t0, t1 = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC")
    prep = api.prepare(frame, spec, model, t0, t1)
    n_buckets = int((t1 - t0) / api.FREQS["15min"])
    ours = api.bounded_sums(prep, spec, model, n_buckets, seed=args.seed)

    t = time.perf_counter()
    base, t_base_noise = baseline(frame, spec, model, args.seed)
    t_base = time.perf_counter() - t
    for depth, totals in base["truth"].items():
        for name, total in totals.items():
            mine = int(ours[depth]["sums"][name].sum())
            # both keep every subscriber's bound; the random choice differs, the totals may too
            # (only where a subscriber exceeds a bound): compare within the heavy users' share
            tolerance = max(0.03 * total, 5 * total**0.5)
            assert abs(mine - total) <= tolerance, (depth, name, mine, total)

    cells = len(rel.table)
    print(f"# DP release: {args.size:,} records, {args.subscribers:,} subscribers, month of "
          f"15-min buckets, {cells:,} cells x {len(spec.counters())} counters")  # fmt: skip
    print(f"machine: {machine()}")
    print(f"versions: {versions(('cemkit', 'pandas', 'numpy', 'numba', 'opendp'))}")
    print(f"records generated in {t_gen:.1f} s")
    print("| contender | seconds | records/s | of which noise (s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    print(f"| cemkit.release | {t_cemkit:.2f} | {args.size / t_cemkit:,.0f} | - | 1.00 |")
    print(
        f"| pandas bounding + OpenDP per cell ({base['calls']:,} calls) | {t_base:.2f} | "
        f"{args.size / t_base:,.0f} | {t_base_noise:.2f} | {t_base / t_cemkit:.2f}x slower |"
    )
    print(f"peak RSS {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
