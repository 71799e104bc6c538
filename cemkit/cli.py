"""The ``cemkit`` command line.

Each area of cemkit contributes its sub-commands through a ``commands`` module with a
``register(subparsers)`` function; this module only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cemkit import __version__
from cemkit.errors import CemkitError

#: Modules that add sub-commands (``register(subparsers)``), in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "cemkit.synth_commands",
    "cemkit.io.commands",
    "cemkit.io.sip.commands",
    "cemkit.privacy.commands",
    "cemkit.privacy.officer_commands",
    "cemkit.correlate.commands",
    "cemkit.kqi.commands",
    "cemkit.pipeline",
    "cemkit.warehouse.commands",
    "cemkit.report.commands",
    "cemkit.dp.commands",
    "cemkit.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="cemkit",
        description="Privacy-aware telecom customer-experience analytics.",
    )
    parser.add_argument("--version", action="version", version=f"cemkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                # that area is not part of this build
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CemkitError as exc:
        print(f"cemkit {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
