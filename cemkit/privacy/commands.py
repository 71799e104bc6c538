"""Command line: ``cemkit protect`` and ``cemkit reveal`` (orchestration only: the runner writes).

``cemkit protect RUN --policy P --out DIR`` reads any run directory (or ``RUN/records``), applies
the policy partition by partition on the workers, and writes a new run directory whose manifest
keeps the upstream sections and adds a ``protect`` section: policy name, version and sha256, key
id and fingerprint (never the key), the action applied to each column, counts, and (under
``outputs``) the checksum of every file written.

``cemkit reveal RUN --policy P --reason TEXT --out DIR`` decrypts the FPE columns of a protected
run for an authorized user holding the key. Each use (who, when, why, which columns, key id) is
recorded in the new run's ``reveal`` section and appended to the protected run's append-only
``reveals.jsonl``; the protected run's manifest is sealed and never rewritten.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import getpass
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cemkit.errors import InputError, PolicyError

if TYPE_CHECKING:  # heavy modules load when a command runs, not for `cemkit --help`
    import pandas as pd

    from cemkit.privacy.keys import Key
    from cemkit.privacy.policy import Policy


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_protect(
    input_dir: str | Path,
    policy: Policy | str | Path,
    out: str | Path,
    *,
    key: Key | None = None,
    scheduler: Any = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Protect a run directory into ``out``; returns the manifest's ``protect`` section.

    Examples
    --------
    Used by ``cemkit protect``; from Python:
    ``run_protect("runs/load-1", "default", "runs/protected-1")``.
    """
    from cemkit.runs import QUARANTINE, execute, read_records
    from cemkit.runs.library import policy_and_key, protect_stages
    from cemkit.runs.store import part_files, run_root

    root = run_root(input_dir)
    pol, key = policy_and_key(policy, key, root)
    records = read_records(root)
    q_meta = read_records(root, QUARANTINE)._meta if part_files(root, QUARANTINE) else None
    stages = protect_stages(pol, key, records._meta, q_meta)  # refuses before anything is written
    done = execute(stages, out, run=root, overwrite=overwrite, scheduler=scheduler, key=key)
    section: dict[str, Any] = done.manifest["protect"]
    section.setdefault("quarantine_columns", {})
    return section


def _reveal(df: pd.DataFrame, policy: Policy, columns: list[str] | None, key: Key) -> pd.DataFrame:
    from cemkit.privacy.engine import reveal

    return reveal(df, policy, columns=columns, key=key)


def run_reveal(
    input_dir: str | Path,
    policy: Policy | str | Path,
    out: str | Path,
    *,
    reason: str,
    columns: list[str] | None = None,
    key: Key | None = None,
    scheduler: Any = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Decrypt the FPE columns of a protected run into ``out``, recording who, when and why.

    The event goes into the new run's ``reveal`` section and is appended to the protected run's
    ``reveals.jsonl`` (its manifest stays as sealed). Returns the event.
    """
    from cemkit.privacy.engine import load_key
    from cemkit.runs import Stage, append_reveal, execute, read_manifest, read_records
    from cemkit.runs.store import run_root

    source = run_root(input_dir)
    from cemkit.privacy.policy import load_policy

    policy = load_policy(policy)
    if not reason.strip():
        raise PolicyError("a reason is required to reveal numbers",
                          hint="say why, e.g. --reason 'fraud case 2024-117'")  # fmt: skip
    upstream = read_manifest(source)
    recorded = upstream.get("protect")
    if not isinstance(recorded, dict):
        raise InputError(f"{source} is not a run written by `cemkit protect`",
                         hint="reveal works on protected runs only")  # fmt: skip
    if recorded.get("policy", {}).get("sha256") != policy.sha256:
        name = recorded.get("policy", {}).get("name")
        raise PolicyError(
            f"{source} was protected with policy {name!r} "
            f"(sha256 {str(recorded.get('policy', {}).get('sha256'))[:12]}...), "
            "not with the policy given",
            hint="pass the exact policy file the run was protected with",
        )
    key = key if key is not None else load_key(policy)
    if key is None:
        raise PolicyError(f"policy {policy.name!r} names no key", hint="nothing can be revealed")
    meta = read_records(source)._meta
    from cemkit.privacy.enforce import reveal_columns

    reveal_columns(policy, meta.columns)  # refuses (nothing recorded) when nothing can be
    chosen = columns or [n for n, r in policy.columns.items()
                         if r.action == "fpe" and n in meta.columns]  # fmt: skip
    _reveal(meta, policy, columns, key)  # refuses unknown or non-fpe columns before writing
    event = {"time_utc": _now(), "by": getpass.getuser(), "host": socket.gethostname(),
             "reason": reason, "columns": chosen,
             "key": {"id": key.id, "fingerprint": key.fingerprint},
             "input": str(source), "out": str(out)}  # fmt: skip
    stage = Stage("reveal", functools.partial(_reveal, policy=policy, columns=columns, key=key),
                  settings=event)  # fmt: skip
    # logged first: an attempt that fails half-way is still on record
    append_reveal(source, event)
    execute([stage], out, run=source, overwrite=overwrite, scheduler=scheduler, key=key)
    return event


def _cmd_protect(args: argparse.Namespace) -> int:
    section = run_protect(args.input, args.policy, args.out, scheduler=args.scheduler,
                          overwrite=args.overwrite)  # fmt: skip
    c, pol = section["counts"], section["policy"]
    key_id = section["key"]["id"] if section["key"] else "none"
    print(f"protected {c['records']} record(s) and {c['quarantine']} quarantined row(s) with "
          f"policy {pol['name']} v{pol['version']} (key {key_id}) -> {args.out}")  # fmt: skip
    return 0


def _cmd_reveal(args: argparse.Namespace) -> int:
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    event = run_reveal(args.input, args.policy, args.out, reason=args.reason, columns=columns,
                       scheduler=args.scheduler, overwrite=args.overwrite)  # fmt: skip
    print(
        f"revealed {', '.join(event['columns'])} -> {args.out} "
        f"(recorded in its manifest and in {args.input}/reveals.jsonl)"
    )
    return 0


def register(subparsers: Any) -> None:
    """Add the ``protect`` and ``reveal`` sub-commands to the ``cemkit`` parser."""
    from cemkit.cli import add_run_options

    p = subparsers.add_parser(
        "protect", help="pseudonymize a loaded run by a privacy policy",
        description="Apply a YAML privacy policy to a run directory (or RUN/records). "
        "The key is read from the source the policy names (e.g. $CEMKIT_KEY).",
    )  # fmt: skip
    p.add_argument("input", metavar="RUN", help="run directory written by `cemkit load`")
    p.add_argument("--policy", default="default",
                   help="policy YAML file or shipped policy name")  # fmt: skip
    add_run_options(p)
    p.set_defaults(func=_cmd_protect)

    r = subparsers.add_parser(
        "reveal", help="re-identify FPE-protected numbers (authorized users; recorded)",
        description="Decrypt the fpe columns of a protected run into a new run. Needs the key; "
        "every use is recorded with user, time and reason in the new run's manifest and in "
        "the protected run's append-only reveals.jsonl.",
    )  # fmt: skip
    r.add_argument("input", metavar="RUN", help="run directory written by `cemkit protect`")
    r.add_argument("--policy", required=True, help="the policy the run was protected with")
    r.add_argument("--reason", required=True, help="why the numbers are needed (recorded)")
    r.add_argument("--columns", help="comma-separated fpe columns (default: all)")
    add_run_options(r)
    r.set_defaults(func=_cmd_reveal)


__all__ = ["register", "run_protect", "run_reveal"]
