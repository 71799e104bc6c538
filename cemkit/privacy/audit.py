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
    from cemkit.privacy.enforce import key_record

    now = _now()
    return {
        "kind": kind,
        "policy": {
            **policy.summary(),
            "description": policy.description,
            "min_group_size": policy.report.min_group_size,
        },
        "key": key_record(key),
        "columns": dict(columns or {}),
        "counts": {k: int(v) for k, v in (counts or {}).items()},
        "started": started or now,
        "finished": now,
        "host": socket.gethostname(),
        "user": getpass.getuser(),
        "cemkit_version": __version__,
        **({"extra": dict(extra)} if extra else {}),
    }


def _output_files(run: Path) -> list[dict[str, Any]]:
    """Every data file under a run directory: path, rows (Parquet) and sha256."""
    import pyarrow.parquet as pq

    out = []
    for path in sorted(p for p in run.rglob("*") if p.is_file() and p.name != MANIFEST):
        if any(part.startswith(".") for part in path.relative_to(run).parts):
            continue
        with path.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        entry: dict[str, Any] = {"path": path.relative_to(run).as_posix(), "sha256": digest}
        if path.suffix == ".parquet":
            entry["rows"] = pq.read_metadata(path).num_rows
        out.append(entry)
    return out


def protect_facts(
    policy: Policy,
    key: Key | None,
    columns: list[str],
    *,
    quarantine_columns: list[str] | None = None,
    counts: Mapping[str, int] | None = None,
    run: str | Path | None = None,
) -> dict[str, Any]:
    """The ``protect`` section of a run that protected records (``cemkit run``, stage runners).

    The same facts as ``cemkit protect`` records: policy, key id and fingerprint, the action
    applied to every input column and quarantine column, counts, host, time, and — when the
    run directory being written is given — every output file with its sha256, so that
    ``cemkit audit --verify`` can check them.
    """
    from cemkit.io.base import QUARANTINE_SCHEMA
    from cemkit.privacy.enforce import key_record

    q_columns = quarantine_columns if quarantine_columns is not None else QUARANTINE_SCHEMA.names
    section: dict[str, Any] = {
        "policy": {**policy.summary(), "description": policy.description},
        "key": key_record(key),
        "columns": {c: policy.rule_for(c).action for c in columns},
        "quarantine_columns": {c: policy.rule_for(c, quarantine=True).action for c in q_columns},
        "counts": {k: int(v) for k, v in (counts or {}).items()},
        "host": socket.gethostname(),
        "time_utc": _now(),
    }
    if run is not None:
        section["outputs"] = _output_files(Path(run))
    return section


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
    #: The manifest's protection marker (:mod:`cemkit.privacy.enforce`): a dict, False, None.
    protected: Any = None
    #: Whether the run is a generated world (:mod:`cemkit.synth`).
    generated: bool = False


def read_audit(run: str | Path) -> AuditRecord:
    """The audit record of a run directory (its ``manifest.json``)."""
    run = Path(run)
    path = run / MANIFEST if run.is_dir() else run
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{run}: no {MANIFEST}", hint="give a run directory written by cemkit"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{path}: manifest cannot be read ({type(exc).__name__})",
            hint="the run directory is damaged; re-run the stage",
        ) from None
    return _record(path.parent, manifest)


def _first(sections: list[dict[str, Any]], *names: str, kind: type | None = None) -> Any:
    """The first value under any of ``names`` in the sections (latest stage first)."""
    for section in sections:
        for name in names:
            value = section.get(name)
            if value in (None, "", {}, []) or (kind is not None and not isinstance(value, kind)):
                continue
            return value
    return None


def _record(run: Path, manifest: dict[str, Any]) -> AuditRecord:
    # Two layouts: run directories of cemkit.io.output (``stages`` and one section per stage:
    # load, protect, reveal, ... with an optional ``audit`` section of other stages), and flat
    # manifests (``kind`` and the facts at the top level).
    stages = [str(x) for x in manifest.get("stages") or []]
    per_stage = [manifest[x] for x in reversed(stages) if isinstance(manifest.get(x), dict)]
    sections: list[dict[str, Any]] = []
    if isinstance(manifest.get("audit"), dict):
        sections.append(manifest["audit"])
    for stage in per_stage:
        if isinstance(stage.get("audit"), dict):
            sections.append(stage["audit"])
        sections.append(stage)
    sections.append(manifest)
    last = per_stage[0] if per_stage else sections[0]
    counts = _first([last], "counts", kind=dict) or {}
    if not counts and "records" in last and isinstance(last["records"], int):
        counts = {"records": last["records"]}
    if not counts:
        counts = _first([last], "totals", kind=dict) or {}
    if not counts:  # e.g. `cemkit run`: the last stage (kqi) counts nothing per record
        counts = _first(per_stage, "counts", kind=dict) or {}
    from cemkit.runs.store import read_reveal_log

    # re-identifications: the run's append-only log (manifests are sealed), older manifests' list
    reveals = list(manifest.get("reveals") or []) + read_reveal_log(run)
    if stages and stages[-1] == "reveal" and isinstance(manifest.get("reveal"), dict):
        reveals.append({k: v for k, v in manifest["reveal"].items() if k != "outputs"})
    elif not stages and isinstance(manifest.get("reveal"), dict):
        reveals.append(manifest["reveal"])
    upstream = manifest.get("upstream") or manifest.get("input") or {}
    return AuditRecord(
        path=run,
        kind=str(
            manifest.get("kind")
            or (stages[-1] if stages else None)
            or _first(sections, "kind")
            or "unknown"
        ),
        policy=dict(_first(sections, "policy", kind=dict) or {}),
        key=_first(sections, "key", kind=dict),
        columns=dict(_first(sections, "columns", kind=dict) or {}),
        quarantine_columns=dict(_first(sections, "quarantine_columns", kind=dict) or {}),
        counts=dict(counts),
        time=str(
            _first(sections, "finished", "time_utc", "created", "created_utc") or "not recorded"
        ),
        host=str(_first(sections, "host") or "not recorded"),
        cemkit_version=str(
            _first(sections, "cemkit_version")
            or (manifest.get("versions") or {}).get("cemkit")
            or "not recorded"
        ),
        input=dict(upstream) if isinstance(upstream, dict) else {},
        reveals=reveals,
        outputs=list(_first(per_stage or [last], "outputs") or []),
        protected=manifest.get("protected"),
        generated=bool(manifest.get("generated")),
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
        from cemkit.privacy.enforce import shipped_status

        status = shipped_status(pol)
        lines += [
            f"  policy          {pol.get('name')} version {pol.get('version', '?')}"
            + (f"  ({status})" if status and status != "shipped" else ""),
            f"  policy sha256   {pol.get('sha256', 'not recorded')}",
        ]
        if status and status != "shipped":
            lines.append(f"  WARNING         policy named {pol.get('name')!r} is {status}")
    else:
        lines.append("  policy          NONE recorded: treat the records as raw, unprotected data")
    if record.generated:
        lines.append("  data            generated by cemkit.synth (no person behind it)")
    elif isinstance(record.protected, dict):
        lines.append(f"  protected       yes: marked in the manifest and the Parquet metadata "
                     f"(policy {record.protected.get('policy')})")  # fmt: skip
    elif record.protected is False:
        lines.append("  protected       NO: raw numbers (e.g. revealed); never share these files")
    lines += [
        "  key             "
        + (f"id {key.get('id')}, fingerprint {key.get('fingerprint')}" if key else "none used")
        + (" (one-off key for generated data)" if key and key.get("one_off") else ""),
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
            when = r.get("time_utc") or r.get("time")
            lines.append(f"    {when} by {r.get('by')} on {r.get('host')}: columns "
                         f"{', '.join(r.get('columns') or [])}; reason: {r.get('reason')!r}; "
                         f"output {r.get('out')}")  # fmt: skip
    else:
        lines.append("  re-identifications: none recorded")
    if problems is not None and not record.outputs:
        lines.append("  outputs verified: NOT VERIFIED, none listed with a checksum in this "
                     "manifest")  # fmt: skip
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
        raise InputError(
            f"{root}: no {MANIFEST} here or one level below",
            hint="give a run directory written by cemkit (protect, reveal, ...)",
        )
    return runs
