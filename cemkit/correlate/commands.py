"""``cemkit correlate RUN --out DIR``: the correlation stages over any run directory."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``correlate`` sub-command to an argparse ``subparsers`` object."""
    from cemkit.cli import add_run_options
    from cemkit.config import CORRELATE_DEFAULTS as D

    p = subparsers.add_parser(
        "correlate",
        help="stitch partial records, pair call legs, match xDRs to CDRs, label retries",
        description=(
            "Read a run directory (or RUN/records) of protected records, stitch partial "
            "records, pair orig/term legs, match signaling xDRs to CDRs (filling a matched "
            "CDR's PDD, SIP status and MOS from its xDR) and label repeated attempts as intents "
            "(src_intent_id, src_attempt columns). Writes a run directory: what `cemkit run` "
            "writes under records/."
        ),
    )
    p.add_argument("input", metavar="RUN", help="run directory (or RUN/records)")
    p.add_argument("--gap", default=D["gap"], help="stitch: largest end-to-start gap")
    p.add_argument("--pair-tolerance", default=D["pair_tolerance"],
                   help="pair_legs: largest start difference")  # fmt: skip
    p.add_argument("--match-tolerance", default=D["match_tolerance"],
                   help="match: largest xDR/CDR start difference")  # fmt: skip
    p.add_argument("--window", default=D["window"], help="intents: largest pause between retries")
    p.add_argument("--partitions", type=int, default=None,
                   help="Dask partitions after the shuffle (default: the input's)")  # fmt: skip
    p.add_argument(
        "--allow-raw",
        action="store_true",
        help="correlate records never protected (a data owner's own raw data; loud)",
    )
    add_run_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    from cemkit.runs import execute
    from cemkit.runs.library import correlate_stages

    stages = correlate_stages(
        gap=args.gap,
        pair_tolerance=args.pair_tolerance,
        match_tolerance=args.match_tolerance,
        window=args.window,
    )
    done = execute(stages, args.out, run=args.input, overwrite=args.overwrite,
                   scheduler=args.scheduler, allow_raw=args.allow_raw)  # fmt: skip
    sec = done.manifest["correlate"]
    print(
        f"{args.out}: {sec['counts']['records']} call(s) and attempt(s) from "
        f"{sec['records_in']} record(s), {sec['xdr_only']} xDR-only"
    )
    return 0
