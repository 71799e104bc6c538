"""The ``cemkit`` command line.

Each area of cemkit contributes its sub-commands through a ``commands`` module with a
``register(subparsers)`` function; this module assembles them, holds the options every command
spells the same way (``--out``, ``--overwrite``, ``--scheduler``, ``-o/--option KEY=VALUE``,
``--tz``, ``--region``) and maps errors to exit codes in one place (:func:`main`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

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
    "cemkit.pipeline_commands",
    "cemkit.warehouse.commands",
    "cemkit.report.commands",
    "cemkit.dp.commands",
    "cemkit.demo",
)

#: Exit codes: 0 done, 2 usage (argparse, no command), 1 any cemkit error; first match wins.
#: The one place where errors become exit codes (commands raise, they never return codes).
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = ((CemkitError, 1),)


def exit_code(exc: BaseException) -> int:
    """The exit code of an error (see :data:`EXIT_CODES`)."""
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return 1


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults in ``--help`` (and keeps descriptions as written)."""


def add_parser(subparsers: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A sub-command parser with the shared help formatter."""
    kwargs.setdefault("formatter_class", _Formatter)
    return subparsers.add_parser(name, **kwargs)


def add_run_options(p: argparse.ArgumentParser, *, what: str = "run directory") -> None:
    """``--out DIR``, ``--overwrite`` and ``--scheduler``: every command that writes a run."""
    from cemkit.cluster import add_scheduler_option

    p.add_argument("--out", required=True, metavar="DIR", help=f"{what} to create (atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_scheduler_option(p)


def add_input_options(p: argparse.ArgumentParser) -> None:
    """``--tz``, ``--region`` and ``-o/--option KEY=VALUE``: every command that reads sources."""
    p.add_argument("--tz", default="UTC", metavar="ZONE",
                   help="IANA zone of the source's wall-clock times")  # fmt: skip
    p.add_argument("--region", default=None, metavar="CC",
                   help="ISO 3166 region for national-format numbers, e.g. GB")  # fmt: skip
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="format option (VALUE read as JSON when it parses, e.g. columns=18, "
                   "mapping=copenhagen-calls, blocksize=1048576); repeatable")  # fmt: skip


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs → options (values read as JSON when they parse)."""
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="cemkit",
        description="Privacy-aware telecom customer-experience analytics.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"cemkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    real_add = sub.add_parser

    def add_with_defaults(name: str, **kwargs: Any) -> Any:
        kwargs.setdefault("formatter_class", _Formatter)
        return real_add(name, **kwargs)

    sub.add_parser = add_with_defaults  # type: ignore[method-assign]
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
    """Run the command line; returns the exit code (errors → :data:`EXIT_CODES`)."""
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
        return exit_code(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
