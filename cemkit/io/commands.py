"""``cemkit load FORMAT PATH... --out DIR [--tz ZONE] [--region CC]``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from cemkit.cluster import add_scheduler_option, connect
from cemkit.errors import CemkitError


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``load`` sub-command to a ``cemkit`` argparse sub-parsers object."""
    p = subparsers.add_parser(
        "load",
        help="load CDR/xDR files into canonical Parquet with a quarantine and a manifest",
        description=(
            "Load usage records of one source format into DIR/records/ (canonical Parquet), "
            "set unreadable rows aside in DIR/quarantine/ and write DIR/manifest.json with "
            "input checksums and per-file row counts. The directory appears only when complete."
        ),
    )
    p.add_argument("format", help="asterisk, freeswitch, cucm, generic, parquet, ...; auto: "
                   "detect it from the files' content")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, globs or directories")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory to create")
    p.add_argument("--tz", default="UTC", metavar="ZONE",
                   help="IANA zone of the source's wall-clock times (default UTC)")
    p.add_argument("--region", default=None, metavar="CC",
                   help="ISO 3166 region for national-format numbers, e.g. GB")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="format option (VALUE read as JSON when it parses, e.g. columns=18, "
                        "mapping=copenhagen-calls, template='[\"a\",\"b\"]'); repeatable")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    add_max_quarantine_option(p)
    add_scheduler_option(p)
    p.set_defaults(func=run)
    return p


def add_max_quarantine_option(p: argparse.ArgumentParser) -> None:
    """``--max-quarantine SHARE``: fail when more of a file's rows are quarantined (0.5)."""
    from cemkit.io.api import DEFAULT_MAX_QUARANTINE

    p.add_argument("--max-quarantine", type=float, default=DEFAULT_MAX_QUARANTINE,
                   metavar="SHARE", help="fail when more than this share of a file's rows is "
                   f"quarantined (default {DEFAULT_MAX_QUARANTINE}; 1 never fails)")  # fmt: skip


def _options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CemkitError(f"option {pair!r} is not KEY=VALUE", hint="e.g. -o columns=18")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    """Execute ``cemkit load`` (cemkit errors propagate to the command line, which reports them)."""
    from cemkit.io.api import plan
    from cemkit.io.run import load_to_dir

    the_plan = plan(args.paths, args.format, tz=args.tz, default_region=args.region,
                    max_quarantine=args.max_quarantine, **_options(args.option))  # fmt: skip
    with connect(getattr(args, "scheduler", None)):
        command = shlex.join(["cemkit", "load", *sys.argv[2:]])
        section = load_to_dir(the_plan, args.out, overwrite=args.overwrite, command=command)
    t = section["totals"]
    attached = f", {t['rows_attached']} attached to records" if t.get("rows_attached") else ""
    print(f"{args.out}: {t['rows_loaded']} records loaded, {t['rows_quarantined']} quarantined"
          f"{attached} of {t['rows_read']} rows read from {len(section['inputs'])} "
          "file(s)")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command alone (``python -m cemkit.io.commands load ...``)."""
    parser = argparse.ArgumentParser(prog="cemkit")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CemkitError as exc:
        print(f"cemkit {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
