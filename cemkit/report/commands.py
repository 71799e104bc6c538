"""``cemkit report``: execute a parameterized notebook and export an offline HTML report."""

from __future__ import annotations

import argparse
import os

from cemkit.cluster import ENV_VAR, add_scheduler_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command."""
    p = subparsers.add_parser(
        "report",
        help="run a parameterized notebook with papermill and export HTML",
        description="Execute NOTEBOOK (a path or a shipped notebook's name) with parameters, "
        "keep the executed notebook and write an offline HTML report with code hidden.",
    )
    p.add_argument("notebook", help="path to an .ipynb or a shipped name, e.g. 02_usage_mining")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="notebook parameter (JSON or text)")  # fmt: skip
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    add_scheduler_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute and export the notebook."""
    from cemkit.report.runner import coerce_parameter, report

    if getattr(args, "scheduler", None):
        # the notebook's kernel inherits the environment: cemkit code in it connects there
        os.environ[ENV_VAR] = args.scheduler
    params = {name: coerce_parameter(value) for name, value in args.parameter}
    paths = report(args.notebook, params, args.out, kernel_name=args.kernel)
    print(f"cemkit report: {paths['html']}")
    return 0
