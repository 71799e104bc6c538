"""``cemkit watch`` and ``cemkit warehouse show|retain|compact``."""

from __future__ import annotations

import argparse
import json
import signal
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``watch`` and ``warehouse`` sub-commands."""
    p = subparsers.add_parser(
        "watch",
        help="follow a landing directory and count every file into a KQI warehouse, once",
        description="Follow DIR (new, rotated and gzip files), run each file through load, "
        "protect, correlate and KQIs, and append its counters and sketches to the warehouse in "
        "micro-batches, each file exactly once (by content checksum). Prints progress and lag "
        "(age of the oldest file not yet counted) after every micro-batch.",
    )
    p.add_argument("directory", metavar="DIR", help="landing directory to follow")
    p.add_argument("--into", required=True, metavar="WAREHOUSE", help="warehouse directory")
    p.add_argument("--format", required=True, help="source format (e.g. asterisk)")
    p.add_argument("--policy", default="default", help="privacy policy path or name")
    p.add_argument("--model", required=True, help="service model YAML")
    p.add_argument("--tz", default="UTC", help="zone of the source's local times")
    p.add_argument("--region", default=None, help="default region for national numbers")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="format option, as for `cemkit load`")  # fmt: skip
    p.add_argument("--once", action="store_true", help="count what is there, then exit")
    p.add_argument("--batch", type=int, default=8, help="files per micro-batch (commit)")
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds a file must stay unchanged before it is taken")  # fmt: skip
    p.add_argument("--poll", type=float, default=2.0,
                   help="seconds between listings when no file-system event comes")  # fmt: skip
    p.add_argument("--pattern", default="*", help="file names to take (glob)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes counting the files of a micro-batch side by side "
                   "(default: one per core, at most 2)")  # fmt: skip
    p.set_defaults(func=_cmd_watch)

    w = subparsers.add_parser(
        "warehouse",
        help="inspect and maintain a KQI warehouse (show, retain, compact)",
        description="Inspect and maintain a KQI warehouse written by `cemkit watch`.",
    )
    sub = w.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("show", help="version, files counted, rows, period covered")
    s.add_argument("path", metavar="WAREHOUSE")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_cmd_show)
    r = sub.add_parser("retain", help="drop the partitions older than N days")
    r.add_argument("path", metavar="WAREHOUSE")
    r.add_argument("--days", type=int, required=True, help="days of buckets to keep")
    r.set_defaults(func=_cmd_retain)
    c = sub.add_parser("compact", help="merge rows per object and bucket, checkpoint")
    c.add_argument("path", metavar="WAREHOUSE")
    c.add_argument("--vacuum", action="store_true",
                   help="also delete data files no table version references")  # fmt: skip
    c.set_defaults(func=_cmd_compact)


def _cmd_watch(args: argparse.Namespace) -> int:
    from cemkit.cli import parse_options
    from cemkit.warehouse.batch import Settings, default_workers
    from cemkit.warehouse.query import Warehouse
    from cemkit.warehouse.watch import Watcher

    settings = Settings(args.format, args.policy, args.model, args.tz, args.region,
                        parse_options(args.option))  # fmt: skip
    wh = Warehouse.create(args.into)
    watcher = Watcher(args.directory, wh.store, settings, batch=args.batch, settle=args.settle,
                      poll=args.poll, pattern=args.pattern,
                      workers=args.workers or default_workers())  # fmt: skip
    previous = signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    try:
        progress = watcher.run(once=args.once)
    except KeyboardInterrupt:
        progress = watcher.progress
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"{args.into}: {progress.files_counted} file(s) counted, "
          f"{progress.files_skipped} already counted, {progress.files_failed} failed, "
          f"{progress.records} records")  # fmt: skip
    return 1 if progress.files_failed else 0


def _cmd_show(args: argparse.Namespace) -> int:
    from cemkit.warehouse.query import open as open_warehouse

    info = open_warehouse(args.path).show()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:>12}: {v}")
    return 0


def _cmd_retain(args: argparse.Namespace) -> int:
    from cemkit.warehouse.query import open as open_warehouse

    print(f"{args.path}: {open_warehouse(args.path).retain(args.days)}")
    return 0


def _cmd_compact(args: argparse.Namespace) -> int:
    from cemkit.warehouse.query import open as open_warehouse

    print(f"{args.path}: {open_warehouse(args.path).compact(vacuum=args.vacuum)}")
    return 0
