"""Audit trail: what every run did under which policy, and ``cemkit audit DIR`` to read it.

``cemkit protect`` and ``cemkit reveal`` write their manifests themselves
(:mod:`cemkit.privacy.commands`: policy name, version and sha256, key id and fingerprint, the
action applied to each column, counts, time, host, cemkit version, every reveal). Other runs
— KQI computations, reports — record the same facts with :func:`audit_section`, under the key
``"audit"`` of their own manifest (with :class:`cemkit.io.output.RunDir`:
``run.manifest.add_section("audit", audit_section(...))``), so one reader serves all of them;
run directories without a policy (``cemkit load``) are shown as raw data:

>>> from cemkit.privacy.policy import load_policy
>>> section = audit_section("report", load_policy("default"), columns={"a_number": "tokenize"},
...                         counts={"rows": 12, "suppressed_groups": 2})
>>> sorted(section)[:5]
['cemkit_version', 'columns', 'counts', 'finished', 'host']

:func:`read_audit` normalizes either form into an :class:`AuditRecord`; :func:`format_audit`
prints it for a reviewer. Key material is never recorded: only the key id and fingerprint.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cemkit.errors import InputError
from cemkit.privacy.keys import Key
from cemkit.privacy.policy import Policy

MANIFEST = "manifest.json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def audit_section(
    kind: str,
    policy: Policy,
    *,
    key: Key | None = None,
    columns: Mapping[str, str] | None = None,
    counts: Mapping[str, int] | None = None,
    started: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit facts of one run, for ``manifest["audit"]``.

    Parameters
    ----------
    kind : str
        What ran (``"kqi"``, ``"report"``, ...).
    policy : Policy
        The policy the run worked under.
    key : Key, optional
        The key used, if any: only its id and fingerprint are recorded.
    columns : mapping, optional
        Column → action applied (e.g. from :meth:`Policy.rule_for`).
    counts : mapping, optional
        Counts worth auditing: rows in and out, groups suppressed, ...
    started : str, optional
        ISO start time; ``finished`` is now.
    extra : mapping, optional
        Any further JSON-serializable facts (never personal values).
    """
    from cemkit import __version__

    now = _now()
    return {
        "kind": kind,
        "policy": {
            **policy.summary(),
            "description": policy.description,
            "min_group_size": policy.report.min_group_size,
        },
        "key": None if key is None else {"id": key.id, "fingerprint": key.fingerprint},
        "columns": dict(columns or {}),
        "counts": {k: int(v) for k, v in (counts or {}).items()},
        "started": started or now,
        "finished": now,
        "host": socket.gethostname(),
        "user": getpass.getuser(),
        "cemkit_version": __version__,
        **({"extra": dict(extra)} if extra else {}),
    }


@dataclass
class AuditRecord:
    """The audit facts of one run directory, whatever stage wrote it."""

    path: Path
    kind: str
    policy: dict[str, Any]
    key: dict[str, Any] | None
    columns: dict[str, str]
    quarantine_columns: dict[str, str]
    counts: dict[str, Any]
    time: str
    host: str
    cemkit_version: str
    input: dict[str, Any] = field(default_factory=dict)
    reveals: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)


def read_audit(run: str | Path) -> AuditRecord:
    """The audit record of a run directory (its ``manifest.json``)."""
    run = Path(run)
    path = run / MANIFEST if run.is_dir() else run
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{run}: no {MANIFEST}",
                         hint="give a run directory written by cemkit") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: manifest cannot be read ({type(exc).__name__})",
                         hint="the run directory is damaged; re-run the stage") from None
    stages = [str(x) for x in manifest.get("stages") or []]
    nested = [manifest[x]["audit"] for x in stages
              if isinstance(manifest.get(x), dict) and "audit" in manifest[x]]  # fmt: skip
    section = manifest.get("audit") or (nested[0] if nested else None) or manifest
    counts = section.get("counts") or manifest.get("counts") or {}
    if not counts:  # run directories of cemkit.io.output: per-stage totals
        for x in stages:
            stage = manifest.get(x)
            counts.update((stage.get("totals") if isinstance(stage, dict) else None) or {})
    reveals = list(manifest.get("reveals") or [])
    if manifest.get("reveal"):
        reveals.append(manifest["reveal"])
    return AuditRecord(
        path=path.parent,
        kind=str(section.get("kind") or manifest.get("kind") or ", ".join(stages) or "unknown"),
        policy=dict(section.get("policy") or {}),
        key=section.get("key"),
        columns=dict(section.get("columns") or {}),
        quarantine_columns=dict(manifest.get("quarantine_columns") or {}),
        counts=dict(counts),
        time=str(
            section.get("finished") or section.get("created") or manifest.get("created")
            or manifest.get("created_utc") or "not recorded"
        ),
        host=str(section.get("host") or manifest.get("host") or "not recorded"),
        cemkit_version=str(
            section.get("cemkit_version") or manifest.get("cemkit_version")
            or (manifest.get("versions") or {}).get("cemkit") or "not recorded"
        ),
        input=dict(manifest.get("input") or {}),
        reveals=reveals,
        outputs=list(manifest.get("outputs") or []),
    )


def _group(actions: Mapping[str, str]) -> list[str]:
    by_action: dict[str, list[str]] = {}
    for column, action in actions.items():
        by_action.setdefault(action, []).append(column)
    return [f"    {action:<10} {', '.join(cols)}" for action, cols in sorted(by_action.items())]


def verify_outputs(record: AuditRecord) -> list[str]:
    """Outputs whose file is missing or whose sha256 differs from the manifest (paths only)."""
    bad = []
    for out in record.outputs:
        path = record.path / out["path"]
        if not path.exists():
            bad.append(f"{out['path']}: missing")
            continue
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if out.get("sha256") and h.hexdigest() != out["sha256"]:
            bad.append(f"{out['path']}: sha256 differs from the manifest (changed after the run)")
    return bad


def format_audit(record: AuditRecord, *, problems: list[str] | None = None) -> str:
    """The record as text a reviewer reads top to bottom."""
    pol = record.policy
    key = record.key
    lines = [
        f"Run {record.path}  ({record.kind})",
        f"  when            {record.time}",
        f"  host            {record.host}",
        f"  cemkit version  {record.cemkit_version}",
    ]
    if pol:
        lines += [
            f"  policy          {pol.get('name')} version {pol.get('version', '?')}",
            f"  policy sha256   {pol.get('sha256', 'not recorded')}",
        ]
    else:
        lines.append("  policy          NONE recorded: treat the records as raw, unprotected data")
    lines += [
        "  key             "
        + (f"id {key.get('id')}, fingerprint {key.get('fingerprint')}" if key else "none used"),
    ]
    if "min_group_size" in pol:
        lines.append(f"  smallest group  {pol['min_group_size']} customers in reports")
    if record.input:
        lines.append(f"  input           {record.input.get('path', '?')}")
    if record.counts:
        lines.append("  counts          " + ", ".join(f"{k} {v}" for k, v in record.counts.items()))
    if record.columns:
        lines.append("  columns, by action applied:")
        lines += _group(record.columns)
    if record.quarantine_columns:
        lines.append("  quarantine columns, by action applied:")
        lines += _group(record.quarantine_columns)
    if record.outputs:
        rows = sum(int(o.get("rows", 0)) for o in record.outputs)
        lines.append(f"  outputs         {len(record.outputs)} file(s), {rows} row(s), "
                     "each with its sha256 in the manifest")  # fmt: skip
    if record.reveals:
        lines.append(f"  re-identifications ({len(record.reveals)}):")
        for r in record.reveals:
            lines.append(f"    {r.get('time')} by {r.get('by')} on {r.get('host')}: columns "
                         f"{', '.join(r.get('columns') or [])}; reason: {r.get('reason')!r}; "
                         f"output {r.get('out')}")  # fmt: skip
    else:
        lines.append("  re-identifications: none recorded")
    if problems is not None and not record.outputs:
        lines.append("  outputs verified: none listed with a checksum in this manifest")
    elif problems is not None:
        lines.append("  outputs verified: " + ("all match" if not problems else "PROBLEMS"))
        lines += [f"    {p}" for p in problems]
    return "\n".join(lines)


def find_runs(root: str | Path) -> list[Path]:
    """Run directories at or one level under ``root`` (those holding a manifest)."""
    root = Path(root)
    if (root / MANIFEST).exists():
        return [root]
    runs = sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
    if not runs:
        raise InputError(f"{root}: no {MANIFEST} here or one level below",
                         hint="give a run directory written by cemkit (protect, reveal, ...)")
    return runs
