"""``cemkit synth``: write a synthetic world with ground truth."""

from __future__ import annotations

import argparse
import json
import time

from cemkit.progress import step


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` sub-command."""
    p = subparsers.add_parser(
        "synth",
        help="generate a synthetic workload with ground truth",
        description="Generate canonical records, source-format files and truth.json.",
    )
    p.add_argument("--records", type=int, default=100_000, help="number of records (exact)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--incidents", type=int, default=2, help="incidents to inject (0: clean)")
    p.add_argument("--days", type=int, default=7, help="length of the observed period")
    p.add_argument("--no-formats", action="store_true", help="skip the source-format files")
    p.add_argument(
        "--agents",
        type=int,
        default=0,
        metavar="DEVICES",
        help="also write G-NetTrack logs of DEVICES devices (formats/gnettrack/), "
        "with a coverage incident unless --incidents 0",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the world described by the arguments."""
    from cemkit import synth

    t0 = time.perf_counter()
    with step(f"generating {args.records:,} records"):
        truth = synth.generate(
            args.out,
            records=args.records,
            seed=args.seed,
            incidents=args.incidents,
            days=args.days,
            formats=not args.no_formats,
        )
    if args.agents:
        from cemkit.synth_agents import generate_agents

        with step(f"writing agent logs of {args.agents} devices"):
            generate_agents(args.out, devices=args.agents, seed=args.seed, days=args.days,
                            incident=args.incidents > 0)  # fmt: skip
    elapsed = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "out": args.out,
                "records": truth["records"],
                "seconds": round(elapsed, 2),
                "records_per_s": round(truth["records"] / elapsed),
            }
        )
    )
    return 0
