"""Lint a policy (``cemkit policy check P [--data DIR]``), for reviewers and CI.

Findings have a severity:

- ``error`` — the policy does not protect what it must: it cannot be loaded (unknown column,
  action or parameter: the load error names the rule), it keeps a telephone number, direct
  identifier or free text in clear, or passes unnamed columns through (``default: keep``);
- ``warning`` — a weak setting: a kept prefix so long that, in the data, some prefix groups
  hold fewer than k customers (k = the policy's ``report.min_group_size``); a long kept
  prefix without data to check it; a small k; a named column absent from the data;
- ``note`` — worth knowing: columns left to the default, source-specific columns.

:func:`check_policy` returns the findings; the command exits non-zero when there is an error
(or, with ``--strict``, a warning). Findings never quote a value from the data: they give
counts only.

Examples
--------
>>> [f.severity for f in check_policy("default") if f.severity == "error"]
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cemkit.errors import InputError, PolicyError
from cemkit.privacy.explain import PERSONAL, pii_class
from cemkit.privacy.policy import (
    MIN_HIDDEN_DIGITS,
    QUARANTINE_COLUMNS,
    FpeRule,
    GeneralizeRule,
    Policy,
    TokenizeRule,
    load_policy,
)

Severity = Literal["error", "warning", "note"]

#: Kept prefixes longer than this are flagged even without data (country code + NDC rarely
#: need more than 6 digits).
LONG_PREFIX = 6
#: A report-level k below this is flagged.
SMALL_K = 5


@dataclass(frozen=True)
class Finding:
    """One lint finding: where in the policy, how serious, what is wrong and what to do."""

    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity.upper():7} {self.where}: {self.message}"


def _kept_digits(rule: object) -> int:
    if isinstance(rule, TokenizeRule | FpeRule):
        return rule.keep_digits
    if isinstance(rule, GeneralizeRule) and rule.digits is not None:
        return rule.digits
    return 0


def _static(policy: Policy) -> list[Finding]:
    from cemkit.schema import BY_NAME

    found: list[Finding] = []
    if policy.default == "keep":
        found.append(Finding("error", "default", "`default: keep` passes every column the "
                             "policy does not name through unprotected, including columns a "
                             "source adds later; use `default: drop`"))  # fmt: skip
    for where, rule in policy.rules():
        quarantine = where.startswith("quarantine.")
        column = where.split(".", 1)[1]
        pii = pii_class(column, quarantine=quarantine)
        if rule.action == "keep" and pii in PERSONAL:
            found.append(
                Finding(
                    "error",
                    where,
                    f"kept in clear, but the column holds "
                    f"{'free text' if pii == 'free_text' else 'personal data'} "
                    f"(PII class {pii}); tokenize, fpe, scan_text or drop it",
                )
            )
        elif rule.action == "keep" and pii == "source":
            found.append(Finding("warning", where, "source-specific column kept in clear; "
                                 "confirm it holds nothing personal"))  # fmt: skip
        if pii == "source":
            found.append(Finding("note", where, "not a canonical column: only sources that "
                                 "declare it produce it"))  # fmt: skip
        digits = _kept_digits(rule)
        if digits > LONG_PREFIX:
            found.append(Finding("warning", where, f"keeps the first {digits} digits readable "
                                 f"(more than {LONG_PREFIX}): a prefix that long can narrow a "
                                 "number down to a few customers; run `cemkit policy check "
                                 "--data DIR` to measure it"))  # fmt: skip
    unnamed = [c for c in BY_NAME if c not in policy.columns]
    if unnamed:
        verb = "dropped" if policy.default == "drop" else "KEPT"
        found.append(
            Finding(
                "note",
                "columns",
                f"{len(unnamed)} canonical column(s) left to "
                f"the default and therefore {verb}: {', '.join(unnamed)}",
            )
        )
    unnamed_q = [c for c in QUARANTINE_COLUMNS if c not in policy.quarantine]
    if unnamed_q:
        verb = "dropped" if policy.default == "drop" else "KEPT"
        sev: Severity = "error" if policy.default == "keep" and "raw" in unnamed_q else "note"
        found.append(Finding(sev, "quarantine", f"left to the default and therefore {verb}: "
                             f"{', '.join(unnamed_q)}"))  # fmt: skip
    k = policy.report.min_group_size
    if k < SMALL_K:
        found.append(
            Finding(
                "warning",
                "report.min_group_size",
                f"k = {k}: reports may show groups of {k} customers; at least {SMALL_K} is usual",
            )
        )
    return found


def _parquet_files(data: Path) -> list[Path]:
    if not data.exists():
        raise InputError(
            f"data directory {str(data)!r} does not exist",
            hint="give a run directory written by `cemkit load` or `cemkit synth`",
        )
    for folder in (data / "records", data):
        files = sorted(folder.glob("*.parquet"))
        if files:
            return files
    raise InputError(
        f"{data}: no records/*.parquet or *.parquet files",
        hint="give a run directory written by `cemkit load` or `cemkit synth`",
    )


def small_groups(values: object, digits: int, k: int) -> dict[str, int]:
    """Count prefix groups holding fewer than ``k`` distinct numbers (no values returned).

    Parameters
    ----------
    values : pyarrow.Array or ChunkedArray
        The column as read from the data (raw numbers).
    digits : int
        Kept prefix length.
    k : int
        Smallest acceptable group.

    Returns
    -------
    dict
        ``groups``, ``small_groups``, ``numbers`` (distinct numbers with a prefix) and
        ``numbers_in_small`` (distinct numbers in groups under k).

    Examples
    --------
    >>> import pyarrow as pa
    >>> nums = pa.array([f"+4420794{i:05d}" for i in range(30)] + ["+3312345678"])
    >>> small_groups(nums, 4, 10)
    {'groups': 2, 'small_groups': 1, 'numbers': 31, 'numbers_in_small': 1}
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    arr = pc.unique(pc.cast(arr, pa.string()).drop_null())
    pattern = rf"^(?P<p>\+?\d{{{digits}}})\d{{{MIN_HIDDEN_DIGITS},}}$"
    prefix = pc.struct_field(pc.extract_regex(arr, pattern), [0])
    table = pa.table({"p": prefix}).filter(pc.is_valid(prefix))
    if table.num_rows == 0:
        return {"groups": 0, "small_groups": 0, "numbers": 0, "numbers_in_small": 0}
    sizes = table.group_by("p").aggregate([("p", "count")]).column("p_count")
    small = pc.less(sizes, k)
    return {
        "groups": len(sizes),
        "small_groups": int(pc.sum(small).as_py() or 0),
        "numbers": int(pc.sum(sizes).as_py() or 0),
        "numbers_in_small": int(pc.sum(pc.filter(sizes, small)).as_py() or 0),
    }


def _safe_digits(values: object, k: int, longest: int) -> int:
    """The longest kept prefix (≤ longest) at which no group holds fewer than k numbers."""
    for digits in range(longest, 0, -1):
        if small_groups(values, digits, k)["small_groups"] == 0:
            return digits
    return 0


def _source_names(data: Path, files: list[Path]) -> list[str]:
    """Names of the input files of a run: manifest inputs, record id tags, quarantine files."""
    import json

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names: set[str] = set()
    manifest = data / "manifest.json"
    if manifest.is_file():
        try:
            loaded = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}
        for item in [*(loaded.get("inputs") or []),
                     *((loaded.get("load") or {}).get("inputs") or [])]:  # fmt: skip
            if isinstance(item, dict) and item.get("path"):
                names.add(Path(str(item["path"])).name)
    if "record_id" in pq.read_schema(files[0]).names:
        ids = pc.unique(pq.ParquetDataset([str(f) for f in files]).read(
            columns=["record_id"]).column("record_id")).to_pylist()  # fmt: skip
        names |= {i.split(":", 1)[1].rpartition(":")[0] for i in ids if i and i.count(":") >= 2}
    quarantine = sorted((data / "quarantine").glob("*.parquet"))
    if quarantine:
        q = pq.ParquetDataset([str(f) for f in quarantine]).read(columns=["file"])
        names |= {Path(str(f)).name for f in pc.unique(q.column("file")).to_pylist() if f}
    return sorted(names)


def _file_name_findings(data: Path, files: list[Path]) -> list[Finding]:
    from cemkit.privacy.detect import number_runs

    numbered = [n for n in _source_names(data, files) if number_runs(n)]
    if not numbered:
        return []
    return [Finding("warning", "source names", f"{len(numbered)} input file name(s) look like "
                    "telephone or account numbers (e.g. Asterisk per-accountcode files); "
                    "protect tokenizes them in record_id and quarantine.file kept in clear, "
                    "but anything else that shows the file names (listings, logs of other "
                    "tools) shows the numbers: rename the files or keep them apart")]  # fmt: skip


def _with_data(policy: Policy, data: Path) -> list[Finding]:
    import pyarrow.parquet as pq

    files = _parquet_files(data)
    schema = pq.read_schema(files[0])
    present = set(schema.names)
    found: list[Finding] = []
    from cemkit.schema import BY_NAME
    from cemkit.schema_measurements import MEASUREMENT_BY_NAME, is_measurements

    # Policies name the columns of both record kinds; only this kind's missing ones matter.
    mine, theirs = ((MEASUREMENT_BY_NAME, BY_NAME) if is_measurements(present)
                    else (BY_NAME, MEASUREMENT_BY_NAME))  # fmt: skip
    other_kind = set(theirs) - set(mine)
    # a source-specific column a shipped loader declares comes from that source only
    from cemkit.privacy.explain import declared_extensions

    declared = set(declared_extensions())
    for name in policy.columns:
        if name not in present and name not in other_kind and name not in declared:
            found.append(
                Finding(
                    "warning",
                    f"columns.{name}",
                    f"named by the policy but not in "
                    f"the data ({data}); a typo, or a source not loaded here?",
                )
            )
    left = [c for c in schema.names if c not in policy.columns]
    if left:
        verb = "dropped" if policy.default == "drop" else "KEPT unprotected"
        sev: Severity = "error" if policy.default == "keep" else "note"
        found.append(
            Finding(
                sev,
                "columns",
                f"{len(left)} column(s) of the data left to the "
                f"default and therefore {verb}: {', '.join(left)}",
            )
        )
    found += _file_name_findings(data, files)
    k = policy.report.min_group_size
    for name, rule in policy.columns.items():
        digits = _kept_digits(rule)
        if not digits or name not in present:
            continue
        values = pq.ParquetDataset([str(f) for f in files]).read(columns=[name]).column(name)
        stats = small_groups(values, digits, k)
        where = f"columns.{name}"
        if stats["numbers"] == 0:
            found.append(Finding("note", where, "no number in the data is long enough to keep "
                                 "a prefix (already protected?)"))  # fmt: skip
        elif stats["small_groups"]:
            safe = _safe_digits(values, k, digits - 1)
            share = 100.0 * stats["numbers_in_small"] / stats["numbers"]
            fix = (f"keep_digits {safe} or less would leave every group with {k} or more"
                   if safe else "no kept prefix passes; keep none")  # fmt: skip
            found.append(Finding("warning", where, f"keeping {digits} digits leaves "
                                 f"{stats['small_groups']} of {stats['groups']} prefix group(s) "
                                 f"with fewer than k = {k} distinct numbers in the data "
                                 f"({stats['numbers_in_small']} of {stats['numbers']} numbers, "
                                 f"{share:.1f}%): a recipient can narrow those down to a few "
                                 f"customers; {fix}"))  # fmt: skip
        else:
            found.append(Finding("note", where, f"every one of {stats['groups']} prefix group(s) "
                                 f"of {digits} digits holds at least k = {k} numbers in the "
                                 "data"))  # fmt: skip
    return found


#: Digits of a raw E.164 number (a policy that keeps the number keeps all of them).
E164_DIGITS = 15


def kept_number_digits(policy: Policy, column: str) -> int:
    """How many leading digits of ``column`` stay readable under ``policy`` (15: all)."""
    rule = policy.rule_for(column)
    if rule.action == "keep":
        return E164_DIGITS
    return _kept_digits(rule)


def model_fit(policy: Policy | str | Path, model: object) -> list[Finding]:
    """Does the service model fit what the policy keeps? Warnings for groups that cannot fill.

    A model's prefix rules are compared with the leading digits of protected numbers, so a
    prefix longer than the digits the policy keeps readable never matches a protected record:
    its group (and every group under it) stays empty and its records land in a parent or in
    ``(unassigned)``, silently. The model's ``numbers.kept_prefix_digits`` should say what the
    policy keeps.

    Parameters
    ----------
    policy : Policy, str or path
        The policy the records are protected with.
    model : ServiceModel, str or path
        The service model (a loaded model or its YAML file).

    Returns
    -------
    list of Finding

    Examples
    --------
    >>> from cemkit.privacy.policy import POLICY_DIR
    >>> [f.where for f in model_fit("strict", POLICY_DIR.parent / "models" / "example.yaml")][:3]
    ['model.numbers.kept_prefix_digits', 'model.groups.uk', 'model.groups.ie']
    """
    from cemkit.model.spec import ServiceModel, load_model, prefix_digits

    pol = load_policy(policy)
    spec = model if isinstance(model, ServiceModel) else load_model(model)  # type: ignore[arg-type]
    column = spec.numbers.column
    kept = kept_number_digits(pol, column)
    found: list[Finding] = []
    declared = spec.numbers.kept_prefix_digits
    if declared is not None and declared != kept and 0 < kept < E164_DIGITS:
        found.append(Finding("warning", "model.numbers.kept_prefix_digits",
                             f"model {spec.name!r} says protected numbers keep {declared} "
                             f"digit(s); policy {pol.name!r} keeps {kept} of {column}: set "
                             f"kept_prefix_digits: {kept} (or change the policy)"))  # fmt: skip
    if declared is not None and kept == 0:
        found.append(Finding("warning", "model.numbers.kept_prefix_digits",
                             f"model {spec.name!r} says protected numbers keep {declared} "
                             f"digit(s); policy {pol.name!r} keeps none of {column}: only "
                             "groups matched by switch, trunk or attribute can fill"))  # fmt: skip
    for g in spec.groups:
        longest = max((len(prefix_digits(p)) for p in g.match.expanded_prefixes()), default=0)
        if longest > kept:
            what = "no digit" if kept == 0 else f"only {kept} digit(s)"
            found.append(Finding("warning", f"model.groups.{g.name}",
                                 f"matches prefixes of up to {longest} digits, but policy "
                                 f"{pol.name!r} keeps {what} of {column} readable: the group "
                                 "(and any group under it) can never hold a protected record; "
                                 "shorten its prefixes, match it by switch/trunk, or keep more "
                                 "digits"))  # fmt: skip
    return found


#: Share of attempts in no group above which a run warns (the model does not fit the data).
UNASSIGNED_WARN_SHARE = 0.05


def unassigned_share(kqi: object, model: object) -> tuple[int, int]:
    """Attempts in ``(unassigned)`` and all attempts of a KQI table (its first bucket size).

    Each record counts in its own group and again in every ancestor, so the total is the sum
    over the model's top-level groups plus ``(unassigned)``.
    """
    import pandas as pd

    from cemkit.kqi.rollup import UNASSIGNED
    from cemkit.model.spec import ServiceModel, load_model

    spec = model if isinstance(model, ServiceModel) else load_model(model)  # type: ignore[arg-type]
    if not isinstance(kqi, pd.DataFrame) or kqi.empty:
        return 0, 0
    rows = kqi[(kqi["object_kind"] == "group") & (kqi["freq"] == kqi["freq"].iloc[0])]
    per_object = rows.groupby("object")["attempts"].sum()
    roots = [g.name for g in spec.groups if g.parent is None]
    lost = int(per_object.get(UNASSIGNED, 0))
    return lost, lost + int(per_object.reindex(roots).fillna(0).sum())


def warn_fit(policy: Policy | str | Path, model: object, kqi: object | None = None) -> list[str]:
    """Warn (:class:`~cemkit.errors.ResultWarning`) when model and policy or data don't fit.

    Before a run (no ``kqi``): every :func:`model_fit` finding. After it: when more than
    :data:`UNASSIGNED_WARN_SHARE` of the attempts matched no group. Returns the messages.
    """
    import warnings

    from cemkit.errors import ResultWarning

    messages = []
    if kqi is None:
        messages = [str(f) for f in model_fit(policy, model)]
    else:
        lost, total = unassigned_share(kqi, model)
        if total and lost / total > UNASSIGNED_WARN_SHARE:
            messages.append(
                f"{lost} of {total} call attempts ({100.0 * lost / total:.1f}%) match no group "
                "of the model and are counted in '(unassigned)' only: check the model against "
                "the data and the policy (`cemkit policy check POLICY --model MODEL`)"
            )
    for message in messages:
        warnings.warn(ResultWarning(message), stacklevel=3)
    return messages


def check_policy(
    policy: Policy | str | Path,
    data: str | Path | None = None,
    model: str | Path | None = None,
) -> list[Finding]:
    """Lint a policy, optionally against data and a service model; findings, errors first.

    Parameters
    ----------
    policy : Policy, str or path
        A policy, a YAML file or a shipped policy name. A file that cannot be loaded gives
        one ``error`` finding with the load error (which names the rule and the fix).
    data : str or path, optional
        A run directory (``records/*.parquet``) to check the policy against.
    model : str or path, optional
        A service model to check against what the policy keeps (:func:`model_fit`).
    """
    try:
        loaded = load_policy(policy)
    except PolicyError as exc:
        return [Finding("error", str(policy), str(exc))]
    found = _static(loaded)
    if data is not None:
        found += _with_data(loaded, Path(data))
    if model is not None:
        found += model_fit(loaded, model)
    order = {"error": 0, "warning": 1, "note": 2}
    return sorted(found, key=lambda f: order[f.severity])


def format_findings(name: str, findings: list[Finding]) -> str:
    """Findings as text, one per line, with a count line at the end."""
    counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "note")}
    lines = [str(f) for f in findings]
    lines.append(f"policy {name}: {counts['error']} error(s), {counts['warning']} warning(s), "
                 f"{counts['note']} note(s)")  # fmt: skip
    return "\n".join(lines)
