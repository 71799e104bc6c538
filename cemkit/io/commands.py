"""``cemkit load FORMAT PATH... --out DIR``: sources → a run directory of canonical records."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``load`` sub-command to a ``cemkit`` argparse sub-parsers object."""
    from cemkit.cli import add_input_options, add_run_options

    p = subparsers.add_parser(
        "load",
        help="load CDR/xDR files into canonical Parquet with a quarantine and a manifest",
        description=(
            "Load usage records of one source format into DIR/records/ (canonical Parquet), "
            "set unreadable rows aside in DIR/quarantine/ and write DIR/manifest.json with "
            "input checksums and per-file row counts. The directory appears only when complete."
        ),
    )
    p.add_argument(
        "format",
        help="asterisk, freeswitch, cucm, generic, parquet, sip-pcap, "
        "3gpp-cdr, gnettrack, agent; auto: detect it from the files' content",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, globs or directories")
    add_input_options(p)
    add_run_options(p)
    add_max_quarantine_option(p)
    p.set_defaults(func=run)
    return p


def add_max_quarantine_option(p: argparse.ArgumentParser) -> None:
    """``--max-quarantine SHARE``: fail when more of a file's rows are quarantined (0.5)."""
    from cemkit.config import DEFAULT_MAX_QUARANTINE

    p.add_argument("--max-quarantine", type=float, default=DEFAULT_MAX_QUARANTINE,
                   metavar="SHARE", help="fail when more than this share of a file's rows is "
                   f"quarantined (default {DEFAULT_MAX_QUARANTINE}; 1 never fails)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Execute ``cemkit load`` (errors propagate to :func:`cemkit.cli.main`)."""
    from cemkit.cli import parse_options
    from cemkit.runs import Source, execute

    options = {**parse_options(args.option), "max_quarantine": args.max_quarantine}
    source = Source(args.format, list(args.paths), tz=args.tz, default_region=args.region,
                    options=options)  # fmt: skip
    done = execute([], args.out, sources=[source], overwrite=args.overwrite,
                   scheduler=args.scheduler,
                   command=shlex.join(["cemkit", "load", *sys.argv[2:]]))  # fmt: skip
    section = done.manifest["load"]
    t = section["totals"]
    attached = f", {t['rows_attached']} attached to records" if t.get("rows_attached") else ""
    print(f"{args.out}: {t['rows_loaded']} records loaded, {t['rows_quarantined']} quarantined"
          f"{attached} of {t['rows_read']} rows read from {len(section['inputs'])} "
          "file(s)")  # fmt: skip
    if t.get("read_units_reconciled"):  # what was read, in the format's own units
        print(f"read: {t['read_units_reconciled']}")
    return 0
