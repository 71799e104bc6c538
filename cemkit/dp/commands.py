"""``cemkit release`` (DP release of a run's KQI counters) and ``cemkit ledger show``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``release`` and ``ledger`` sub-commands."""
    p = subparsers.add_parser(
        "release",
        help="publish KQI counters per node group and bucket with differential privacy",
        description="Release noisy KQI counters (and ratios derived from them) per node group "
        "and time bucket of a period, under the policy's `release:` section; every release is "
        "recorded in the privacy ledger first and refused when the budget would be exceeded.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", help="run directory with protected records (cemkit run / protect)")
    p.add_argument("--policy", default="default", help="privacy policy path or name")
    p.add_argument("--model", required=True, help="service model YAML (the public groups)")
    p.add_argument("--start", required=True, help="first instant of the period (UTC)")
    p.add_argument("--end", required=True, help="end of the period, excluded (UTC)")
    p.add_argument(
        "--spend",
        type=float,
        default=None,
        help="ε or ρ spent in each period touched (default: a quarter of the budget)",
    )
    p.add_argument(
        "--level",
        type=int,
        action="append",
        default=None,
        dest="levels",
        help="hierarchy depth to release (repeatable; default: every level)",
    )
    p.add_argument(
        "--freq",
        default="15min",
        choices=("15min", "hour", "day"),
        help="width of the released buckets",
    )
    p.add_argument(
        "--data-set",
        default=None,
        help="data set whose budget is spent (default: the model's name)",
    )
    p.add_argument(
        "--ledger",
        default=None,
        help="privacy ledger (default: privacy-ledger.jsonl next to the run, or $CEMKIT_LEDGER)",
    )
    p.add_argument("--out", required=True, help="directory to write release.parquet into")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    from cemkit.cluster import add_scheduler_option

    add_scheduler_option(p)
    p.set_defaults(func=_cmd_release)

    lp = subparsers.add_parser(
        "ledger",
        help="show the privacy-budget ledger (every DP release and what it spent)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    lsub = lp.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    show = lsub.add_parser("show", help="every release, and what is left per period")
    show.add_argument("ledger", help="the ledger file")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(func=_cmd_ledger_show)


def _cmd_release(args: argparse.Namespace) -> int:
    from cemkit.dp.api import release

    rel = release(args.run, policy=args.policy, model=args.model, start=args.start,
                  end=args.end, spend=args.spend, levels=args.levels, freq=args.freq,
                  data_set=args.data_set, ledger=args.ledger, out=args.out,
                  overwrite=args.overwrite, scheduler=args.scheduler)  # fmt: skip
    spent = ", ".join(f"{p} {v:g}" for p, v in rel.spent.items())
    print(f"{rel.out}: {len(rel.table):,} cells released; {rel.measure} spent: {spent} "
          f"(ledger {rel.ledger}, release {rel.release_id[:12]})")  # fmt: skip
    return 0


def _cmd_ledger_show(args: argparse.Namespace) -> int:
    from cemkit.dp.ledger import Ledger, summary

    book = Ledger(args.ledger)
    rows = summary(book)
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    if not rows:
        print(f"{args.ledger}: no release recorded")
        return 0
    print(f"{args.ledger}: {len(rows)} release(s)")
    totals: dict[tuple[str, str, str], float] = {}
    budgets: dict[tuple[str, str], float] = {}
    for r in rows:
        spend = ", ".join(f"{p}: {v:g}" for p, v in r["spend"].items())
        policy = r["policy"]
        print(f"  {r['when']}  {r['release']}  {r['who']}@{r['host']}  data set "
              f"{r['data_set']}  {r['measure']} {spend}  levels {r['levels']}  policy "
              f"{policy.get('name')} v{policy.get('version')} (key {policy.get('key_id')})  "
              f"{r['status']}")  # fmt: skip
        for p, v in r["spend"].items():
            key = (r["data_set"], r["measure"], p)
            totals[key] = totals.get(key, 0.0) + v
            budgets[(r["data_set"], r["measure"])] = r["budget"]
    print("Spent per period:")
    for (ds, measure, period), v in sorted(totals.items()):
        left = budgets[(ds, measure)] - v
        print(f"  {ds}  {period}: {measure} {v:g} of {budgets[(ds, measure)]:g} "
              f"({max(left, 0):g} left)")  # fmt: skip
    return 0
