"""The one enforcement point of privacy rules, called by every path that writes or shows data.

- :func:`enforce_policy` — validate a policy exactly as ``cemkit policy check`` does and refuse
  one with an ERROR finding. :func:`cemkit.protect` (pandas and Dask), ``cemkit protect``,
  ``cemkit run`` / :func:`cemkit.run` and :func:`cemkit.process_batch` all call it (through
  :func:`cemkit.privacy.engine.protect`, which every one of them uses), so no path can protect
  with a policy the reviewer's tool rejects.
- :func:`shipped_status` — whether a policy *named* like a shipped one has the shipped body
  (``cemkit audit`` reports "modified: sha256 differs from the shipped policy").
- :func:`run_key` — the key of a run: the one the policy names, or — for generated worlds only
  (:mod:`cemkit.synth`, marked ``generated`` in their manifest) — a one-off key recorded as
  ``one-off-demo``, never under the policy's key id.
- Protection markers: :func:`protection_marker` (manifest key ``protected`` and the Parquet
  schema metadata key :data:`PARQUET_KEY` of protected outputs), :func:`is_protected`,
  :func:`require_protected` (stages after protect refuse raw input unless ``allow_raw``),
  :func:`refuse_protected` (protect refuses protected input) and :func:`reveal_columns`
  (reveal refuses data it cannot reveal).
- :func:`source_name` — source names are data: number-like runs in file names and paths are
  replaced by keyed tokens before they reach records, quarantine rows or manifests.

Examples
--------
>>> enforce_policy("default").name
'default'
>>> source_name("acct/441632960123.csv", None)
'acct/[number].csv'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cemkit.errors import InputError, KeyMaterialError, PolicyError, PrivacyWarning
from cemkit.privacy.detect import number_runs
from cemkit.privacy.keys import Key
from cemkit.privacy.policy import POLICY_DIR, Policy, load_policy

#: Key id recorded for a one-off key (generated data only): never the policy's key id.
ONE_OFF_KEY_ID = "one-off-demo"
#: ``Key.source`` of a one-off key.
ONE_OFF_SOURCE = "one-off"
#: Manifest key marking a protected run directory (and Parquet schema metadata key).
MARKER = "protected"
PARQUET_KEY = b"cemkit.protected"
#: Manifest key marking a generated world (cemkit.synth).
GENERATED = "generated"
#: What replaces a number in a source name when there is no key to tokenize it with.
NUMBER_MASK = "[number]"
#: Length (hex digits) of the keyed token that replaces a number in a source name.
SOURCE_TOKEN_HEX = 12

_passed: set[str] = set()


def enforce_policy(policy: Policy | str | Path) -> Policy:
    """The policy, loaded and checked as ``cemkit policy check`` does; an ERROR refuses it.

    Raises
    ------
    PolicyError
        The policy cannot be loaded, or ``policy check`` finds an error in it. The message
        names the rules (never a value of any data).
    """
    from cemkit.privacy.check import check_policy

    loaded = load_policy(policy)
    # Keyed by the rules themselves, not the file's sha256: a policy object changed after it
    # was loaded (its dicts are mutable) is checked again.
    body = hashlib.sha256(json.dumps(loaded.model_dump(mode="json"), sort_keys=True).encode())
    if body.hexdigest() in _passed:
        return loaded
    errors = [f for f in check_policy(loaded) if f.severity == "error"]
    if errors:
        listed = "; ".join(f"{f.where}: {f.message}" for f in errors)
        raise PolicyError(
            f"policy {loaded.name!r} (sha256 {loaded.sha256[:12]}...) fails `cemkit policy "
            f"check` with {len(errors)} error(s), so nothing is protected with it: {listed}",
            hint="fix the policy (`cemkit policy check POLICY` lists the findings) and have it "
            "reviewed again",
        )
    _passed.add(body.hexdigest())
    return loaded


def _shipped() -> dict[str, str]:
    out = {}
    for path in sorted(POLICY_DIR.glob("*.yaml")):
        try:
            out[path.stem] = load_policy(path).sha256
        except PolicyError:  # pragma: no cover - shipped policies are tested to load
            continue
    return out


def shipped_status(summary: dict[str, Any]) -> str | None:
    """For a recorded policy (name, sha256): ``"shipped"``, ``"modified: ..."`` or None.

    None when the name is not that of a shipped policy (a site's own policy).
    """
    shipped = _shipped()
    name = summary.get("name")
    if name not in shipped:
        return None
    if summary.get("sha256") == shipped[name]:
        return "shipped"
    return "modified: sha256 differs from the shipped policy"


# --- keys ---------------------------------------------------------------------------------------


def _manifests_above(path: Path) -> Iterable[dict[str, Any]]:
    p = path.resolve()
    for folder in [p, *p.parents][:4]:
        m = folder / "manifest.json"
        if m.is_file():
            try:
                yield json.loads(m.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                return
            return


def is_generated(path: str | Path) -> bool:
    """Whether a path is (in) a world generated by :mod:`cemkit.synth` (as its manifest says)."""
    return any(bool(m.get(GENERATED)) for m in _manifests_above(Path(path)))


def run_key(policy: Policy | str | Path, inputs: Any = None) -> Key | None:
    """The key of a run under ``policy``.

    The policy's key from the source it names; when that source is not set and every input is
    generated data (:func:`is_generated`), a one-off random key with id
    :data:`ONE_OFF_KEY_ID` (pseudonyms will not link to any other run). Otherwise the error of
    the missing key: real data is never protected with a key nobody holds.
    """
    from cemkit.privacy.engine import load_key

    policy = load_policy(policy)
    if policy.key is None or not any(r.needs_key for _, r in policy.rules()):
        return None
    try:
        return load_key(policy)
    except KeyMaterialError:
        paths = [inputs] if isinstance(inputs, str | Path) else list(inputs or [])
        if not paths or not all(is_generated(p) for p in paths):
            raise
    return one_off_key()


def one_off_key() -> Key:
    """A random key for generated data, recorded as ``one-off-demo`` (never shown)."""
    return Key.from_material(secrets.token_bytes(32), key_id=ONE_OFF_KEY_ID, source=ONE_OFF_SOURCE)


def key_record(key: Key | None) -> dict[str, str] | None:
    """What a manifest records of a key: id, fingerprint and whether it was one-off."""
    if key is None:
        return None
    out = {"id": key.id, "fingerprint": key.fingerprint}
    if key.source == ONE_OFF_SOURCE:
        out["one_off"] = "random key for generated data; pseudonyms link to no other run"
    return out


# --- protection markers -------------------------------------------------------------------------


def protection_marker(policy: Policy, key: Key | None) -> dict[str, Any]:
    """The marker of protected outputs (manifest ``protected`` and Parquet metadata)."""
    return {"policy": policy.name, "policy_sha256": policy.sha256,
            "key_id": key.id if key is not None else None}  # fmt: skip


def parquet_metadata(policy: Policy, key: Key | None) -> dict[bytes, bytes]:
    """Schema metadata to write with protected Parquet files."""
    return {PARQUET_KEY: json.dumps(protection_marker(policy, key), sort_keys=True).encode()}


def carried_metadata(source: Any) -> dict[bytes, bytes] | None:
    """Parquet schema metadata that carries the input's protection marker to a stage's output.

    None when the input is not protected (the output then carries no marker either).
    """
    marker = protection_of(source)
    if marker is None:
        return None
    return {PARQUET_KEY: json.dumps(marker, sort_keys=True).encode()}


def _run_dir(path: Path) -> Path:
    return path.parent if path.name in ("records", "quarantine") or path.is_file() else path


def protection_of(source: Any) -> dict[str, Any] | None:
    """The protection marker of a run directory, records directory, Parquet file or frame.

    None for raw data. A run directory is protected when its manifest is marked (or records a
    ``protect`` stage); Parquet files when their schema metadata holds :data:`PARQUET_KEY`; a
    pandas frame when :func:`cemkit.protect` marked it (``attrs["cemkit_protected"]``).
    """
    if not isinstance(source, str | Path):
        meta = getattr(source, "_meta", source)
        attrs = getattr(meta, "attrs", {}) or {}
        return {"columns": attrs["cemkit_protected"]} if attrs.get("cemkit_protected") else None
    path = Path(source)
    for manifest in _manifests_above(_run_dir(path)):
        if MARKER in manifest:  # a dict, or False for raw data (e.g. revealed)
            return dict(manifest[MARKER]) if isinstance(manifest[MARKER], dict) else None
        stages = manifest.get("stages") or []
        if "protect" in stages and "reveal" not in stages:
            return {"policy": (manifest.get("protect") or {}).get("policy", {}).get("name")}
    import pyarrow.parquet as pq

    files = [path] if path.is_file() else sorted(path.glob("*.parquet")) or sorted(
        (path / "records").glob("*.parquet"))  # fmt: skip
    if files:
        try:
            meta = pq.read_schema(files[0]).metadata or {}
        except OSError:
            return None
        if PARQUET_KEY in meta:
            return dict(json.loads(meta[PARQUET_KEY]))
    return None


def is_protected(source: Any) -> bool:
    """Whether ``source`` holds protected records (see :func:`protection_of`)."""
    return protection_of(source) is not None


def require_protected(source: Any, stage: str, *, allow_raw: bool = False) -> bool:
    """Refuse raw input to a stage that comes after protect; returns whether it is protected.

    Generated worlds (:mod:`cemkit.synth`) hold no personal data and pass. With ``allow_raw``
    (a data owner working on their own raw data) raw input passes with a loud
    :class:`~cemkit.errors.PrivacyWarning`; the caller records it.
    """
    if is_protected(source):
        return True
    if isinstance(source, str | Path) and is_generated(source):
        return False
    where = f"input {safe_path(source)!r}" if isinstance(source, str | Path) else "the records"
    if not allow_raw:
        raise InputError(
            f"{stage}: {where} holds records that were never protected (no protection marker "
            "in its manifest or Parquet metadata); its outputs would hold raw numbers",
            hint="run `cemkit protect` first (or `cemkit run`); a data owner working on their "
            "own raw data may pass --allow-raw (allow_raw=True), which is recorded",
        )
    warnings.warn(
        PrivacyWarning(
            f"{stage}: {where} is RAW, unprotected data (allow_raw): its outputs hold raw "
            "numbers and are marked raw; never share them"
        ),
        stacklevel=2,
    )
    return False


def refuse_protected(source: Any) -> None:
    """Protect refuses input that is already protected (its tokens would be tokenized again)."""
    marker = protection_of(source)
    if marker is not None:
        what = f"{safe_path(source)!r} is" if isinstance(source, str | Path) else "the records are"
        by = f" (policy {marker['policy']!r})" if marker.get("policy") else ""
        raise InputError(
            f"{what} already protected{by}; protecting again would tokenize the tokens and "
            "break the links with other outputs",
            hint="give the run written by `cemkit load`, not one written by protect or run",
        )


def reveal_columns(policy: Policy, present: Iterable[str]) -> list[str]:
    """The columns reveal can decrypt: ``fpe`` columns of the policy present in the data.

    Raises
    ------
    PolicyError
        None: tokens and other actions cannot be reversed (nothing to reveal).
    """
    present = list(present)
    fpe = [n for n, r in policy.columns.items() if r.action == "fpe" and n in present]
    if not fpe:
        raise PolicyError(
            f"nothing to reveal: policy {policy.name!r} protects no column of the data with fpe "
            "(tokens and the other actions cannot be reversed)",
            hint="only runs protected with an fpe policy (e.g. research) can be revealed",
        )
    return fpe


# --- source names -------------------------------------------------------------------------------


def _token(key: Key, text: str) -> str:
    digest = hmac.digest(key.derive("source-name"), text.encode("utf-8"), hashlib.sha256)
    return "#" + digest.hex()[:SOURCE_TOKEN_HEX]


def source_name(name: str, key: Key | None) -> str:
    """A file name or path with its number-like runs tokenized (or masked without a key).

    The same number under the same key gives the same token, so record ids stay unique and
    stable; a name with no number-like run is returned as it is.
    """
    runs = number_runs(name)
    for start, end in reversed(runs):
        piece = name[start:end]
        name = name[:start] + (_token(key, piece) if key is not None else NUMBER_MASK) + name[end:]
    return name


def source_names_in_manifest(manifest: dict[str, Any], key: Key | None) -> dict[str, Any]:
    """A copy of a manifest with the input paths (``inputs``, ``load.inputs``) as source names."""

    def paths(items: Any) -> Any:
        if not isinstance(items, list):
            return items
        return [{**i, "path": source_name(str(i["path"]), key)}
                if isinstance(i, dict) and "path" in i else i for i in items]  # fmt: skip

    out = dict(manifest)
    if "inputs" in out:
        out["inputs"] = paths(out["inputs"])
    if isinstance(out.get("load"), dict) and "inputs" in out["load"]:
        out["load"] = {**out["load"], "inputs": paths(out["load"]["inputs"])}
    return out


def safe_path(path: Any) -> str:
    """A path for a message: number-like runs masked (messages have no key)."""
    return source_name(str(path), None)


__all__ = [
    "GENERATED",
    "MARKER",
    "ONE_OFF_KEY_ID",
    "PARQUET_KEY",
    "carried_metadata",
    "enforce_policy",
    "is_generated",
    "is_protected",
    "key_record",
    "one_off_key",
    "parquet_metadata",
    "protection_marker",
    "protection_of",
    "refuse_protected",
    "require_protected",
    "reveal_columns",
    "run_key",
    "safe_path",
    "shipped_status",
    "source_name",
    "source_names_in_manifest",
]
