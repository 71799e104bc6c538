"""``cemkit kqi INPUT --model M --out DIR``: experience indicators and alerts from records."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cemkit.cluster import add_scheduler_option, resolve
from cemkit.errors import CemkitError
from cemkit.model.spec import BUCKETS


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``kqi`` sub-command to a ``cemkit`` argparse sub-parser set."""
    parser = subparsers.add_parser(
        "kqi",
        help="compute experience indicators per node group and customer, and alerts",
        description=(
            "Read a directory of canonical (pseudonymized) records, put every record in its "
            "most specific node group of the service model, compute KQIs per group and per "
            "modeled customer per time bucket, and raise alerts. Writes DIR/kqi/kqi.parquet, "
            "DIR/kqi/worst_customers.parquet and DIR/alerts.parquet."
        ),
    )
    parser.add_argument("input", metavar="INPUT", help="directory of canonical records")
    parser.add_argument("--model", "-m", required=True, metavar="M", help="service model YAML")
    parser.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--freq", action="append", choices=BUCKETS,
                        help="time bucket(s) to report (repeatable; default: all)")  # fmt: skip
    parser.add_argument("--top", type=int, default=20, help="worst customers to list")
    parser.add_argument("--allow-raw", action="store_true",
                        help="compute on records never protected (data owner only; loud)")
    add_scheduler_option(parser)
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    from cemkit.kqi.api import run

    try:
        done = run(args.input, args.model, args.out,
                   freqs=tuple(args.freq or BUCKETS), top_n=args.top,
                   scheduler=resolve(getattr(args, "scheduler", None)),
                   allow_raw=getattr(args, "allow_raw", False))  # fmt: skip
    except CemkitError as err:
        print(f"cemkit kqi: error: {err}", file=sys.stderr)
        return 2
    res = done.result
    groups = res.table[res.table["object_kind"] == "group"]["object"].nunique()
    print(f"{len(res.table)} KQI rows ({groups} groups, {res.customer_count} customers) -> "
          f"{done.paths['kqi']}")  # fmt: skip
    print(f"{len(done.alerts)} alert(s) -> {done.paths['alerts']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog="cemkit")
    sub = p.add_subparsers(dest="command", required=True)
    register(sub)
    ns = p.parse_args()
    raise SystemExit(ns.func(ns))
