"""Command line: ``cemkit protect`` and ``cemkit reveal``.

``cemkit protect INPUT --policy P --out DIR`` reads a run directory written by ``cemkit load``
(:func:`cemkit.io.output.read_records`: ``records/``, ``quarantine/``, ``manifest.json``), applies
the policy with Dask, partition by partition on the workers, and writes a new run directory
(:class:`cemkit.io.output.RunDir`, atomic) whose manifest keeps the load section and adds a
``protect`` section: policy name, version and sha256, key id and fingerprint (never the key), the
action applied to each column, counts and the checksum of every output file.

``cemkit reveal INPUT --policy P --reason TEXT --out DIR`` decrypts the FPE columns of a
protected run for an authorized user holding the key. Each use (who, when, why, which columns,
key id) is recorded in the new run's ``reveal`` section and appended to the ``reveals`` list of the
protected run's manifest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cemkit.cluster import add_scheduler_option, connect
from cemkit.errors import InputError, PolicyError
from cemkit.io.atomic import atomic_write_text
from cemkit.privacy.keys import Key

if TYPE_CHECKING:
    import pandas as pd

    from cemkit.io.output import RunDir
    from cemkit.privacy.policy import Policy

# cemkit.io.output, cemkit.privacy.engine (pandas, Dask, Numba) and the policy models are
# imported inside the functions that use them, so that ``cemkit --help`` does not load them


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _quarantine(run: Path) -> Any:
    """The run's quarantine as a Dask frame, or None when it has none."""
    from cemkit.io.output import QUARANTINE, read_records

    if not any((run / QUARANTINE).glob("*.parquet")):
        return None
    return read_records(run, QUARANTINE)


def _write_part(df: pd.DataFrame, path: str) -> int:
    df.to_parquet(path, index=False)
    return len(df)


def _write_table(ddf: Any, directory: Path) -> list[dict[str, Any]]:
    """Write each partition (on the workers) as ``part-NNNNN.parquet``; rows and sha256 each."""
    import dask

    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"part-{i:05d}.parquet" for i in range(ddf.npartitions)]
    writes = [
        dask.delayed(_write_part, pure=False)(part, str(p))
        for part, p in zip(ddf.to_delayed(), paths, strict=True)
    ]
    rows = dask.compute(*writes)
    return [{"path": f"{directory.name}/{p.name}", "rows": int(n), "sha256": _sha256(p)}
            for p, n in zip(paths, rows, strict=True)]  # fmt: skip


def _actions(columns: list[str], policy: Policy, *, quarantine: bool = False) -> dict[str, str]:
    return {c: policy.rule_for(c, quarantine=quarantine).action for c in columns}


def _key_record(key: Key | None) -> dict[str, str] | None:
    return None if key is None else {"id": key.id, "fingerprint": key.fingerprint}


def _carry_over(upstream: dict[str, Any], run: RunDir, source: Path) -> None:
    """Keep the upstream stages' sections (what was loaded, from which files) in the new run."""
    from cemkit.io.output import MANIFEST

    for name in upstream.get("stages", []):
        if isinstance(upstream.get(name), dict):
            run.manifest.add_section(name, upstream[name])
    if "inputs" in upstream:
        run.manifest.data["inputs"] = upstream["inputs"]
    stages = run.manifest.data.get("stages", [])
    run.manifest.data["stages"] = [*upstream.get("stages", []), *stages]
    run.manifest.data["upstream"] = {"path": str(source),
                                     "manifest_sha256": _sha256(source / MANIFEST)}  # fmt: skip


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

    ``scheduler``: where Dask computes (see :mod:`cemkit.cluster`; default
    ``$CEMKIT_SCHEDULER``, else an embedded local cluster).

    Examples
    --------
    Used by ``cemkit protect``; from Python:
    ``run_protect("runs/load-1", "default", "runs/protected-1")``.
    """
    from cemkit.io.output import RunDir, read_manifest, read_records
    from cemkit.privacy.engine import load_key, plan, protect
    from cemkit.privacy.policy import load_policy

    source, out = Path(input_dir), Path(out)
    policy = load_policy(policy)
    if key is None and any(r.needs_key for _, r in policy.rules()):
        key = load_key(policy)
    upstream = read_manifest(source)
    records = read_records(source)
    quarantine = _quarantine(source)
    # Build and validate both plans before anything is written.
    plan(records._meta.dtypes, policy, key)
    if quarantine is not None:
        plan(quarantine._meta.dtypes, policy, key, quarantine=True)
    with connect(scheduler), RunDir(out, overwrite=overwrite) as run:
        run.manifest.data["stages"] = ["protect"]
        with run.manifest.timed("protect"):
            outputs = _write_table(protect(records, policy, key=key), run.records_dir)
            q_outputs: list[dict[str, Any]] = []
            if quarantine is not None:
                q_outputs = _write_table(protect(quarantine, policy, key=key, quarantine=True),
                                         run.quarantine_dir)  # fmt: skip
        section = {
            "policy": {**policy.summary(), "description": policy.description},
            "key": _key_record(key),
            "columns": _actions(list(records.columns), policy),
            "quarantine_columns": (
                _actions(list(quarantine.columns), policy, quarantine=True)
                if quarantine is not None
                else {}
            ),
            "counts": {
                "records": sum(o["rows"] for o in outputs),
                "quarantine": sum(o["rows"] for o in q_outputs),
            },
            "outputs": outputs + q_outputs,
            "host": socket.gethostname(),
            "time_utc": _now(),
        }
        run.manifest.add_section("protect", section)
        run.manifest.data["reveals"] = []
        _carry_over(upstream, run, source)
    return section


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

    Returns the ``reveal`` section written to both manifests.
    """
    from cemkit.io.output import MANIFEST, RunDir, read_manifest, read_records
    from cemkit.privacy.engine import load_key, reveal
    from cemkit.privacy.policy import load_policy

    source, out = Path(input_dir), Path(out)
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
    records = read_records(source)
    revealed = reveal(records, policy, columns=columns, key=key)
    chosen = columns or [n for n, r in policy.columns.items()
                         if r.action == "fpe" and n in records.columns]  # fmt: skip
    event = {"time_utc": _now(), "by": getpass.getuser(), "host": socket.gethostname(),
             "reason": reason, "columns": chosen, "key": _key_record(key),
             "out": str(out)}  # fmt: skip
    with connect(scheduler), RunDir(out, overwrite=overwrite) as run:
        run.manifest.data["stages"] = ["reveal"]
        with run.manifest.timed("reveal"):
            outputs = _write_table(revealed, run.records_dir)
        run.manifest.add_section("reveal", {**event, "records": sum(o["rows"] for o in outputs),
                                            "outputs": outputs})  # fmt: skip
        _carry_over(upstream, run, source)
    upstream.setdefault("reveals", []).append(event)
    atomic_write_text(source / MANIFEST, json.dumps(upstream, indent=2, sort_keys=True) + "\n")
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
    print(f"revealed {', '.join(event['columns'])} -> {args.out} "
          "(recorded in both run manifests)")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``protect`` and ``reveal`` sub-commands to the ``cemkit`` parser."""
    p = subparsers.add_parser(
        "protect", help="pseudonymize a loaded run by a privacy policy",
        description="Apply a YAML privacy policy to a run directory written by `cemkit load`. "
        "The key is read from the source the policy names (e.g. $CEMKIT_KEY).",
    )  # fmt: skip
    p.add_argument("input", help="run directory written by `cemkit load`")
    p.add_argument("--policy", required=True,
                   help="policy YAML file or shipped policy name (e.g. default)")  # fmt: skip
    p.add_argument("--out", required=True, help="new output run directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_scheduler_option(p)
    p.set_defaults(func=_cmd_protect)

    r = subparsers.add_parser(
        "reveal", help="re-identify FPE-protected numbers (authorized users; recorded)",
        description="Decrypt the fpe columns of a protected run. Needs the key; every use is "
        "recorded with user, time and reason in the manifests.",
    )  # fmt: skip
    r.add_argument("input", help="run directory written by `cemkit protect`")
    r.add_argument("--policy", required=True, help="the policy the run was protected with")
    r.add_argument("--reason", required=True, help="why the numbers are needed (recorded)")
    r.add_argument("--columns", help="comma-separated fpe columns (default: all)")
    r.add_argument("--out", required=True, help="new output run directory")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_scheduler_option(r)
    r.set_defaults(func=_cmd_reveal)


__all__ = ["register", "run_protect", "run_reveal"]
