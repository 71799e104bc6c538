"""``cemkit run``: the command line of :func:`cemkit.pipeline.run` (no heavy import at help)."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    from cemkit.cli import add_input_options, add_run_options
    from cemkit.io.commands import add_max_quarantine_option

    p = subparsers.add_parser(
        "run",
        help="load, protect, correlate, model and compute KQIs in one pass",
        description="Run the whole pipeline on files of one or more source formats into a run "
        "directory (records/, quarantine/, kqi/, alerts.parquet, manifest.json). Several "
        "sources (--input FORMAT:PATH, repeatable, or --sources FILE) are protected under one "
        "key and correlated together.",
    )
    p.add_argument("inputs", nargs="*", metavar="PATH", help="input files, globs or directories "
                   "of --format")  # fmt: skip
    p.add_argument("--format", default=None, help="source format of PATH (e.g. asterisk)")
    p.add_argument(
        "--input",
        dest="sources",
        action="append",
        default=[],
        metavar="FORMAT:PATH",
        help="a source of another format (repeatable), e.g. sip-pcap:captures/",
    )
    p.add_argument(
        "--sources",
        dest="sources_file",
        default=None,
        metavar="FILE",
        help="YAML file listing sources (format, paths, tz, region, options)",
    )
    p.add_argument("--policy", default="default", help="privacy policy path or name")
    p.add_argument("--model", required=True, help="service model YAML")
    add_input_options(p)
    add_run_options(p)
    add_max_quarantine_option(p)
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from cemkit.cli import parse_options
    from cemkit.pipeline import run
    from cemkit.runs import Source, read_sources_file

    options = {**parse_options(args.option), "max_quarantine": args.max_quarantine}
    sources: list[Source | str] = list(args.sources)
    if args.sources_file:
        sources += read_sources_file(args.sources_file)
    result = run(
        args.inputs or None, format=args.format, sources=sources, policy=args.policy,
        model=args.model, out=args.out, tz=args.tz, default_region=args.region,
        scheduler=args.scheduler, overwrite=args.overwrite,
        command=shlex.join(["cemkit", *sys.argv[1:]]), **options,
    )  # fmt: skip
    load = result.manifest["load"]
    totals = load["totals"]
    line = (
        f"{result.out}: {totals['rows_loaded']} records loaded, "
        f"{totals['rows_quarantined']} quarantined, {len(result.alerts)} alert(s)"
    )
    unmatched = _xdr_only(result)
    if unmatched is not None:
        line += f", {unmatched} xDR-only attempt(s)"
    print(line)
    return 0


def _xdr_only(result: Any) -> int | None:
    """Signaling attempts without a CDR, when the run had both (what correlating them found)."""
    corr = result.manifest.get("correlate", {})
    return corr.get("xdr_only")
