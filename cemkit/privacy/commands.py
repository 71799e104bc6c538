"""Command line: ``cemkit protect`` and ``cemkit reveal``.

``cemkit protect INPUT --policy P --out DIR`` reads a run directory written by ``cemkit load``
(``INPUT/records/*.parquet``, optionally ``INPUT/quarantine/*.parquet``, ``INPUT/manifest.json``),
applies the policy with Dask, partition by partition, and writes ``DIR/records/``,
``DIR/quarantine/`` and ``DIR/manifest.json`` (policy name, version and sha256, key id and
fingerprint, the action applied to each column, counts — never the key). The output directory
appears only when complete.

``cemkit reveal INPUT --policy P --reason TEXT --out DIR`` decrypts the FPE columns of a
protected run for an authorized user holding the key; the use (who, when, why, which columns)
is recorded in the new run's manifest and appended to the protected run's manifest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pandas as pd

from cemkit import schema
from cemkit.cluster import add_scheduler_option, connect
from cemkit.errors import InputError, OutputError, PolicyError
from cemkit.io.atomic import atomic_directory, atomic_write_text
from cemkit.io.base import QUARANTINE_SCHEMA
from cemkit.privacy.engine import load_key, plan, protect, reveal
from cemkit.privacy.keys import Key
from cemkit.privacy.policy import Policy, load_policy

MANIFEST = "manifest.json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _conform_records(df: pd.DataFrame) -> pd.DataFrame:
    return schema.conform(df)


def _conform_quarantine(df: pd.DataFrame) -> pd.DataFrame:
    dtypes = schema.pandas_dtypes(QUARANTINE_SCHEMA)
    return df.astype({n: d for n, d in dtypes.items() if n in df.columns})


def _read_table(run: Path, name: str, *, required: bool) -> Any:
    """Lazy Dask frame of ``run/name/*.parquet`` in cemkit dtypes, or None when absent."""
    import dask.dataframe as dd

    files = sorted((run / name).glob("*.parquet"))
    if not files:
        if required:
            raise InputError(
                f"{run}: no {name}/*.parquet files",
                hint="INPUT must be a run directory written by `cemkit load`",
            )
        return None
    ddf = dd.read_parquet([str(f) for f in files])
    conform = _conform_records if name == "records" else _conform_quarantine
    return ddf.map_partitions(conform, meta=conform(ddf._meta))


def _write_part(df: pd.DataFrame, path: str) -> int:
    df.to_parquet(path, index=False)
    return len(df)


def _write_table(ddf: Any, out: Path) -> list[dict[str, Any]]:
    """Write each partition to ``out/part-NNNNN.parquet``; return rows per file."""
    import dask

    out.mkdir(parents=True)
    paths = [out / f"part-{i:05d}.parquet" for i in range(ddf.npartitions)]
    writes = [
        dask.delayed(_write_part)(part, str(p))
        for part, p in zip(ddf.to_delayed(), paths, strict=True)
    ]
    rows = dask.compute(*writes)
    return [{"path": f"{out.name}/{p.name}", "rows": int(n), "sha256": _sha256(p)}
            for p, n in zip(paths, rows, strict=True)]  # fmt: skip


def _check_new(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"output directory {str(out)!r} exists and is not empty",
                          hint="choose a new --out directory")  # fmt: skip


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def _input_manifest(run: Path) -> tuple[dict[str, Any], str | None]:
    path = run / MANIFEST
    if not path.exists():
        return {}, None
    try:
        return json.loads(path.read_text()), _sha256(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{path}: manifest cannot be read ({type(exc).__name__})",
            hint="re-run `cemkit load` to rewrite the run directory",
        ) from None


def _actions(columns: list[str], policy: Policy, *, quarantine: bool = False) -> dict[str, str]:
    return {c: policy.rule_for(c, quarantine=quarantine).action for c in columns}


def _common(policy: Policy, key: Key | None) -> dict[str, Any]:
    from cemkit import __version__

    return {
        "cemkit_version": __version__,
        "created": _now(),
        "host": socket.gethostname(),
        "policy": {**policy.summary(), "description": policy.description},
        "key": None if key is None else {"id": key.id, "fingerprint": key.fingerprint},
    }


def run_protect(
    input_dir: str | Path,
    policy: Policy | str | Path,
    out: str | Path,
    *,
    key: Key | None = None,
    scheduler: Any = None,
) -> dict[str, Any]:
    """Protect a run directory into ``out``; returns the manifest written.

    ``scheduler``: where Dask computes (see :mod:`cemkit.cluster`; default
    ``$CEMKIT_SCHEDULER``, else an embedded local cluster).

    Examples
    --------
    Used by ``cemkit protect``; from Python:
    ``run_protect("runs/load-1", "default", "runs/protected-1")``.
    """
    run, out = Path(input_dir), Path(out)
    policy = load_policy(policy)
    if key is None and any(r.needs_key for _, r in policy.rules()):
        key = load_key(policy)
    upstream, upstream_sha = _input_manifest(run)
    records = _read_table(run, "records", required=True)
    quarantine = _read_table(run, "quarantine", required=False)
    # Build and validate both plans before writing anything.
    plan(records._meta.dtypes, policy, key)
    if quarantine is not None:
        plan(quarantine._meta.dtypes, policy, key, quarantine=True)
    _check_new(out)
    with connect(scheduler), atomic_directory(out) as tmp:
        outputs = _write_table(protect(records, policy, key=key), tmp / "records")
        q_outputs: list[dict[str, Any]] = []
        if quarantine is not None:
            q_outputs = _write_table(protect(quarantine, policy, key=key, quarantine=True),
                                     tmp / "quarantine")  # fmt: skip
        manifest = {
            "kind": "protect",
            **_common(policy, key),
            "input": {
                "path": str(run),
                "manifest_sha256": upstream_sha,
                "run_kind": upstream.get("kind"),
            },
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
            "reveals": [],
        }
        _write_json(tmp / MANIFEST, manifest)
    return manifest


def run_reveal(
    input_dir: str | Path,
    policy: Policy | str | Path,
    out: str | Path,
    *,
    reason: str,
    columns: list[str] | None = None,
    key: Key | None = None,
    scheduler: Any = None,
) -> dict[str, Any]:
    """Decrypt the FPE columns of a protected run into ``out``, recording who, when and why."""
    run, out = Path(input_dir), Path(out)
    policy = load_policy(policy)
    if not reason.strip():
        raise PolicyError("a reason is required to reveal numbers",
                          hint="say why, e.g. --reason 'fraud case 2024-117'")  # fmt: skip
    upstream, _ = _input_manifest(run)
    if upstream.get("kind") != "protect":
        raise InputError(f"{run} is not a run written by `cemkit protect`",
                         hint="reveal works on protected runs only")  # fmt: skip
    recorded = upstream.get("policy") or {}
    if recorded.get("sha256") != policy.sha256:
        raise PolicyError(
            f"{run} was protected with policy {recorded.get('name')!r} "
            f"(sha256 {str(recorded.get('sha256'))[:12]}...), not with the policy given",
            hint="pass the exact policy file the run was protected with",
        )
    key = key if key is not None else load_key(policy)
    records = _read_table(run, "records", required=True)
    revealed = reveal(records, policy, columns=columns, key=key)
    chosen = columns or [n for n, r in policy.columns.items()
                         if r.action == "fpe" and n in records.columns]  # fmt: skip
    event = {"time": _now(), "by": getpass.getuser(), "host": socket.gethostname(),
             "reason": reason, "columns": chosen,
             "key": {"id": key.id, "fingerprint": key.fingerprint} if key else None,
             "out": str(out)}  # fmt: skip
    _check_new(out)
    with connect(scheduler), atomic_directory(out) as tmp:
        outputs = _write_table(revealed, tmp / "records")
        manifest = {"kind": "reveal", **_common(policy, key),
                    "input": {"path": str(run)}, "reveal": event,
                    "counts": {"records": sum(o["rows"] for o in outputs)},
                    "outputs": outputs}  # fmt: skip
        _write_json(tmp / MANIFEST, manifest)
    upstream.setdefault("reveals", []).append(event)
    _write_json(run / MANIFEST, upstream)
    return manifest


def _cmd_protect(args: argparse.Namespace) -> int:
    manifest = run_protect(args.input, args.policy, args.out, scheduler=args.scheduler)
    c, pol = manifest["counts"], manifest["policy"]
    key_id = manifest["key"]["id"] if manifest["key"] else "none"
    print(f"protected {c['records']} record(s) and {c['quarantine']} quarantined row(s) with "
          f"policy {pol['name']} v{pol['version']} (key {key_id}) -> {args.out}")  # fmt: skip
    return 0


def _cmd_reveal(args: argparse.Namespace) -> int:
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    manifest = run_reveal(args.input, args.policy, args.out, reason=args.reason, columns=columns,
                          scheduler=args.scheduler)  # fmt: skip
    print(f"revealed {', '.join(manifest['reveal']['columns'])} in "
          f"{manifest['counts']['records']} record(s) -> {args.out} (recorded in both manifests)")
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
    p.add_argument("--out", required=True, help="new output directory")
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
    r.add_argument("--out", required=True, help="new output directory")
    add_scheduler_option(r)
    r.set_defaults(func=_cmd_reveal)
