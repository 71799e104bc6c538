"""``cemkit kqi RUN --model M --out DIR``: experience indicators and alerts from records."""

from __future__ import annotations

import argparse
from typing import Any

from cemkit.model.buckets import BUCKETS  # not .spec: --help must not import pydantic


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``kqi`` sub-command to a ``cemkit`` argparse sub-parser set."""
    from cemkit.cli import add_run_options

    parser = subparsers.add_parser(
        "kqi",
        help="compute experience indicators per node group and customer, and alerts",
        description=(
            "Read a run directory (or RUN/records) of correlated, protected records, put every "
            "record in its most specific node group of the service model, compute KQIs per "
            "group and per modeled customer per time bucket, and raise alerts. Writes a run "
            "directory with kqi/kqi.parquet, kqi/worst_customers.parquet, "
            "kqi/group_sizes.parquet and alerts.parquet."
        ),
    )
    parser.add_argument("input", metavar="RUN", help="run directory (or RUN/records)")
    parser.add_argument("--model", required=True, metavar="M", help="service model YAML")
    parser.add_argument("--freq", action="append", choices=BUCKETS,
                        help="time bucket(s) to report (repeatable; default: all)")  # fmt: skip
    parser.add_argument("--top", type=int, default=20, help="worst customers to list")
    parser.add_argument("--allow-raw", action="store_true",
                        help="compute on records never protected (a data owner's own raw data; "
                        "loud)")  # fmt: skip
    add_run_options(parser)
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    from cemkit.model.spec import load_model
    from cemkit.runs import execute
    from cemkit.runs.library import kqi_sink

    sink = kqi_sink(load_model(args.model), freqs=tuple(args.freq or BUCKETS), top_n=args.top)
    done = execute([], args.out, run=args.input, sinks=[sink], write_records=False,
                   overwrite=args.overwrite, scheduler=args.scheduler,
                   allow_raw=args.allow_raw)  # fmt: skip
    k = done.results["kqi"]
    res = k.result
    groups = res.table[res.table["object_kind"] == "group"]["object"].nunique()
    print(f"{len(res.table)} KQI rows ({groups} groups, {res.customer_count} customers), "
          f"{len(k.alerts)} alert(s) -> {args.out}")  # fmt: skip
    return 0
