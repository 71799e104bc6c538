"""``cemkit correlate``: stitch, pair legs, match xDRs and sessionize a directory of records."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from typing import Any

from cemkit.cluster import add_scheduler_option, connect
from cemkit.errors import InputError, OutputError


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``correlate`` sub-command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "correlate",
        help="stitch partial records, pair call legs, match xDRs to CDRs, group retries",
        description=(
            "Read canonical records (Parquet), stitch partial records, pair orig/term legs, "
            "match signaling xDRs to CDRs and group repeated attempts into intents. Writes "
            "OUT/calls/ (one record per call, src_ columns documented in cemkit.correlate) and "
            "OUT/intents/ (cemkit.correlate.INTENT_COLUMNS), each as Parquet, atomically."
        ),
    )
    p.add_argument("records", help="Parquet file or directory of canonical records")
    p.add_argument("--out", required=True, help="output directory (created; must not exist)")
    p.add_argument("--gap", default="1s", help="stitch: largest end-to-start gap (default 1s)")
    p.add_argument("--pair-tolerance", default="5s", help="pair_legs: start difference (5s)")
    p.add_argument("--match-tolerance", default="5s", help="match: xDR/CDR start difference (5s)")
    p.add_argument("--window", default="120s", help="sessionize: pause between retries (120s)")
    p.add_argument("--partitions", type=int, default=None, help="Dask partitions after shuffle")
    p.add_argument("--allow-raw", action="store_true",
                   help="correlate records never protected (data owner only; loud)")
    add_scheduler_option(p)
    p.set_defaults(func=run)
    return p


def correlate_records(records: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """Calls and intents from records (pandas or Dask), with the options of the command."""
    from cemkit.correlate import match, pair_legs, sessionize, stitch

    n = args.partitions
    calls = stitch(records, gap=args.gap, npartitions=n)
    calls = pair_legs(calls, tolerance=args.pair_tolerance, npartitions=n)
    calls = match(calls, tolerance=args.match_tolerance, npartitions=n)
    intents = sessionize(calls, window=args.window, npartitions=n)
    return calls, intents


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    import dask.dataframe as dd

    if not os.path.exists(args.records):
        raise InputError(
            f"records not found: {args.records}", hint="pass a Parquet file or directory"
        )
    from cemkit.privacy.enforce import carried_metadata, require_protected

    require_protected(args.records, "correlate", allow_raw=getattr(args, "allow_raw", False))
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        raise OutputError(f"output {out} exists", hint="choose a new directory or remove it")
    from cemkit import schema

    raw = dd.read_parquet(args.records)
    records = raw.map_partitions(schema.conform, meta=schema.conform(raw._meta))
    calls, intents = correlate_records(records, args)
    parent = os.path.dirname(out) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".correlate-", dir=parent)
    try:
        with connect(getattr(args, "scheduler", None)):
            marker = carried_metadata(args.records)  # protected in, protected out
            calls.to_parquet(os.path.join(tmp, "calls"), write_index=False,
                             custom_metadata=marker)  # fmt: skip
            intents.to_parquet(os.path.join(tmp, "intents"), write_index=False,
                               custom_metadata=marker)  # fmt: skip
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {out}/calls and {out}/intents")
    return 0
