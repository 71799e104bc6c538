"""Command line for privacy officers: ``policy explain|check|diff``, ``audit``, ``scan-notebook``.

Exit codes: 0 when all is well; 1 when ``policy check`` finds an error (or a warning with
``--strict``), when ``audit --verify`` finds a changed output, or when ``scan-notebook`` finds
personal data; 2 when a notebook cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cemkit.errors import InputError


def _write(text: str, out: str | None) -> None:
    if out:
        from cemkit.io.atomic import atomic_write_text

        atomic_write_text(Path(out), text)
    else:
        sys.stdout.write(text)


def _cmd_explain(args: argparse.Namespace) -> int:
    from cemkit.privacy.explain import explain_html, explain_markdown
    from cemkit.privacy.policy import load_policy

    policy = load_policy(args.policy)
    fmt = args.format
    if fmt is None:
        fmt = "html" if args.out and args.out.endswith((".html", ".htm")) else "md"
    _write(explain_html(policy) if fmt == "html" else explain_markdown(policy), args.out)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from cemkit.privacy.check import check_policy, format_findings

    failing = {"error", "warning"} if args.strict else {"error"}
    failed = False
    for policy in args.policies:
        findings = check_policy(policy, args.data, args.model)
        print(format_findings(str(policy), findings))
        failed = failed or any(f.severity in failing for f in findings)
    return 1 if failed else 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from cemkit.privacy.diff import format_diff

    _write(format_diff(args.old, args.new), args.out)
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from cemkit.privacy.audit import find_runs, format_audit, read_audit, verify_outputs

    failed = False
    blocks = []
    for run in find_runs(args.dir):
        record = read_audit(run)
        problems = verify_outputs(record) if args.verify else None
        # Nothing listed with a checksum: nothing was verified, which is not a pass.
        failed = failed or bool(problems) or (args.verify and not record.outputs)
        blocks.append(format_audit(record, problems=problems))
    print("\n\n".join(blocks))
    return 1 if failed else 0


def _cmd_scan_notebook(args: argparse.Namespace) -> int:
    from cemkit.privacy.scan_notebook import scan_notebook

    regions = [r.strip().upper() for r in args.regions.split(",") if r.strip()]
    findings, unreadable = [], 0
    for nb in args.notebooks:
        try:
            findings += scan_notebook(nb, regions=regions, sources=args.sources)
        except InputError as exc:
            print(f"cemkit scan-notebook: error: {exc}", file=sys.stderr)
            unreadable += 1
    for f in findings:
        print(f)
    if findings:
        print(f"{len(findings)} output(s) with personal data in "
              f"{len({f.notebook for f in findings})} notebook(s); clear the outputs "
              "(jupyter nbconvert --clear-output) or protect the data before saving",
              file=sys.stderr)  # fmt: skip
        return 1
    return 2 if unreadable else 0


def register(subparsers: Any) -> None:
    """Add ``policy`` (explain/check/diff), ``audit`` and ``scan-notebook`` to ``cemkit``."""
    p = subparsers.add_parser(
        "policy", help="explain, check or compare privacy policies (for reviewers)",
        description="Tools for reviewing YAML privacy policies. POLICY is a YAML file or a "
        "shipped policy name (default, strict, research).",
    )  # fmt: skip
    sub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    e = sub.add_parser("explain", help="render a policy as a document (Markdown or HTML)")
    e.add_argument("policy", help="policy YAML file or shipped policy name")
    e.add_argument("--format", choices=("md", "html"),
                   help="output format (default: from --out's suffix, else md)")  # fmt: skip
    e.add_argument("--out", help="write to this file instead of standard output")
    e.set_defaults(func=_cmd_explain)

    c = sub.add_parser("check", help="lint a policy; non-zero exit on errors (for CI)")
    c.add_argument(
        "policies",
        nargs="+",
        metavar="policy",
        help="policy YAML file(s) or shipped policy name(s)",
    )
    c.add_argument("--data", help="run directory (records/*.parquet) to check the policy against")
    c.add_argument("--model", help="service model YAML to check against what the policy keeps")
    c.add_argument("--strict", action="store_true", help="warnings fail too")
    c.set_defaults(func=_cmd_check)

    d = sub.add_parser("diff", help="what changed between two policies, in plain words")
    d.add_argument("old", help="the policy as reviewed before")
    d.add_argument("new", help="the policy proposed")
    d.add_argument("--out", help="write to this file instead of standard output")
    d.set_defaults(func=_cmd_diff)

    a = subparsers.add_parser(
        "audit", help="print the audit trail of run directories",
        description="Print what a run did under which policy: policy name, version and sha256, "
        "key id, columns and actions, counts, time, host, cemkit version, re-identifications.",
    )  # fmt: skip
    a.add_argument("dir", help="a run directory, or a directory of run directories")
    a.add_argument(
        "--verify",
        action="store_true",
        help="recompute the sha256 of every output; non-zero exit on a mismatch",
    )
    a.set_defaults(func=_cmd_audit)

    s = subparsers.add_parser(
        "scan-notebook", help="check saved notebooks for telephone numbers and e-mail addresses",
        description="For pre-commit hooks: non-zero exit when a saved output holds a telephone "
        "number or e-mail address; names the notebook and cell, never the value.",
    )  # fmt: skip
    s.add_argument("notebooks", nargs="+", metavar="NB.ipynb")
    s.add_argument(
        "--regions",
        default="GB,US,DE,FR",
        help="regions whose national number formats count (default: GB,US,DE,FR)",
    )
    s.add_argument("--sources", action="store_true", help="scan cell sources too")
    s.set_defaults(func=_cmd_scan_notebook)
