"""``cemkit report``: execute a parameterized notebook and export an offline HTML report.

Parameters follow papermill's command line: ``-f FILE`` (YAML), then ``-y YAML`` text, then
``-p NAME VALUE`` pairs, each overriding the one before. Relative paths in parameters mean what
they mean in the caller's directory (the notebook runs there).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from cemkit.cluster import ENV_VAR, add_scheduler_option
from cemkit.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command."""
    from cemkit.report.runner import DEFAULT_TIMEOUT_S

    p = subparsers.add_parser(
        "report",
        help="run a parameterized notebook with papermill and export HTML",
        description="Execute NOTEBOOK (a path or a shipped notebook's name) with parameters "
        "and write OUT/<name>.ipynb and OUT/<name>.html (offline, code hidden). OUT holds "
        "those two files only; the notebook's working data goes to a temporary directory. "
        "A failed notebook is kept as OUT.failed.ipynb.",
    )
    p.add_argument("notebook", help="path to an .ipynb or a shipped name, e.g. 02_usage_mining")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"),
                   help="notebook parameter; VALUE is JSON when it parses, else text")  # fmt: skip
    p.add_argument("-y", "--parameters-yaml", action="append", default=[], metavar="YAML",
                   help="parameters as YAML text, e.g. 'records: 20000'")  # fmt: skip
    p.add_argument("-f", "--parameters-file", action="append", default=[], metavar="FILE",
                   help="parameters from a YAML file")  # fmt: skip
    p.add_argument("--out", help="report directory to create (required unless --help-notebook)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report directory")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"execution timeout of each cell (default: {DEFAULT_TIMEOUT_S} s; "
                   "0: none)")  # fmt: skip
    p.add_argument("--pdf", action="store_true",
                   help="also print the report to OUT/<name>.pdf (headless Chromium)")  # fmt: skip
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    p.add_argument("--help-notebook", action="store_true",
                   help="list the notebook's parameters with their defaults, and exit")  # fmt: skip
    add_scheduler_option(p)
    p.set_defaults(func=run)


def _yaml_mapping(text: str, where: str) -> dict[str, Any]:
    import yaml  # here, not at import: ``cemkit --help`` registers this command

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"parameters in {where} are not valid YAML: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"parameters in {where} must be a mapping of name: value")
    return {str(k): v for k, v in value.items()}


def gather_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """Parameters from ``-f`` files, then ``-y`` YAML, then ``-p`` pairs (later ones win)."""
    from cemkit.report.runner import coerce_parameter

    params: dict[str, Any] = {}
    for name in args.parameters_file:
        path = Path(name)
        try:
            text = path.read_text()
        except OSError as exc:
            raise InputError(f"cannot read parameters file {name}: {exc.strerror or exc}") from None
        params.update(_yaml_mapping(text, str(path)))
    for text in args.parameters_yaml:
        params.update(_yaml_mapping(text, "-y"))
    for name, value in args.parameter:
        params[name] = coerce_parameter(value)
    return params


def run(args: argparse.Namespace) -> int:
    """Execute and export the notebook."""
    from cemkit.report.runner import notebook_help, report

    if args.help_notebook:
        print(notebook_help(args.notebook))
        return 0
    if not args.out:
        raise InputError("--out is required", hint="cemkit report NOTEBOOK --out DIR")
    if getattr(args, "scheduler", None):
        # the notebook's kernel inherits the environment: cemkit code in it connects there
        os.environ[ENV_VAR] = args.scheduler
    params = gather_parameters(args)
    if args.pdf:
        from cemkit.report import browser

        if browser.chromium() is None:
            raise InputError("--pdf needs headless Chromium, which is not installed",
                             hint="apt-get install chromium, or leave out --pdf")  # fmt: skip
    paths = report(args.notebook, params, args.out, kernel_name=args.kernel,
                   overwrite=args.overwrite, timeout=args.timeout or None,
                   pdf=args.pdf)  # fmt: skip
    print(f"cemkit report: {paths['html']}")
    if "pdf" in paths:
        print(f"cemkit report: {paths['pdf']}")
    return 0
