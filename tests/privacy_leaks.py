"""Helpers of the leak tests: build run directories from inputs, list every way a number can be
written, and search every output file (decoded Parquet values, metadata, raw bytes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq

from cemkit import schema
from cemkit.io.base import QUARANTINE_SCHEMA, empty_quarantine

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
STR = pd.StringDtype("pyarrow")
MIN_SEARCH_DIGITS = 7


def write_load_run(run: Path, records: pd.DataFrame, raw_lines: list[str], file: str) -> None:
    """A run directory shaped like `cemkit load` output: records, quarantine, manifest."""
    (run / "records").mkdir(parents=True)
    (run / "quarantine").mkdir()
    records.to_parquet(run / "records" / "part-00000.parquet", index=False)
    q = pd.DataFrame({
        "file": [file] * len(raw_lines), "line": range(1, len(raw_lines) + 1),
        "field": [""] * len(raw_lines),
        "reason": ["leak test: every line quarantined"] * len(raw_lines),
        "raw": raw_lines,
    }).astype(empty_quarantine().dtypes.to_dict())  # fmt: skip
    pq.write_table(pa.Table.from_pandas(q, schema=QUARANTINE_SCHEMA, preserve_index=False),
                   run / "quarantine" / "part-00000.parquet")  # fmt: skip
    (run / "manifest.json").write_text(json.dumps({
        "stages": ["load"], "load": {"format": "test", "totals": {"rows_loaded": len(records)}},
        "inputs": [{"path": file, "size": 0, "sha256": "0" * 64}]}))  # fmt: skip


def canonical(df: pd.DataFrame, source: str, a: str, b: str) -> pd.DataFrame:
    """Canonical records: a/b numbers from two source columns, every source column as src_*."""
    n = len(df)
    out = pd.DataFrame({
        "record_id": [f"{source}:test:{i + 1}" for i in range(n)],
        "source": source, "record_kind": "cdr", "service": "voice", "outcome": "answered",
        "a_number": df[a].astype(str), "b_number": df[b].astype(str),
        "start": pd.Timestamp("2024-01-01", tz="UTC"),
    })  # fmt: skip
    ext = {f"src_{re.sub(r'[^0-9a-z_]', '_', str(c).lower())}": df[c].astype(str).astype(STR)
           for c in df.columns}  # fmt: skip
    return pd.concat([schema.conform(out), pd.DataFrame(ext, index=out.index)], axis=1)


def number_forms(value: str, region: str | None = "US") -> set[str]:
    """Every way a number of at least 7 digits may be written: as given, digits with and
    without '+', E.164, national format (formatted and digits only)."""
    value = str(value).strip()
    digits = re.sub(r"\D", "", value)
    if len(digits) < MIN_SEARCH_DIGITS:
        return set()
    forms = {value, digits, "+" + digits}
    if digits.startswith("00"):
        forms.add("+" + digits[2:])
    for candidate in {value, "+" + digits}:
        try:
            num = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        nat = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
        forms |= {e164, e164.lstrip("+"), nat, re.sub(r"\D", "", nat)}
    return {f for f in forms if len(re.sub(r"\D", "", f)) >= MIN_SEARCH_DIGITS}


def secrets_of(tn_values, texts, region: str | None = "US") -> set[str]:
    """Raw TN forms and e-mail addresses to search for."""
    found: set[str] = set()
    for v in tn_values:
        if v is not None and not pd.isna(v):
            found |= number_forms(v, region)
    for t in texts:
        found |= set(EMAIL.findall(str(t)))
    return found


_TOKEN = re.compile(r"#[0-9a-f]{12,64}")


def output_text(out: Path) -> dict[str, str]:
    """Every output file as searchable text: Parquet decoded (values and metadata), other
    files as they are."""
    texts = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        raw = path.read_bytes().decode("latin-1")
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            cells = [" ".join(map(str, col.to_pylist())) for col in table.columns]
            meta = pq.read_metadata(path).metadata or {}
            raw += "\n".join(cells) + " ".join(v.decode("latin-1") for v in meta.values())
            raw += " ".join(table.column_names)
        # cemkit tokens are HMAC output ('#' + hex): a run of digits inside one is chance, not a
        # leak (a 7-digit secret turns up in ~1 of 10 runs over thousands of tokens otherwise).
        texts[str(path.relative_to(out))] = _TOKEN.sub("#", raw)
    return texts


_NUMBERISH = re.compile(r"[\d+() ./-]*\d[\d+() ./-]*")


def leaks(out: Path, secrets: set[str]) -> list[tuple[str, int]]:
    """(file, length of the leaked value) for every secret found; never the value itself.

    A secret made only of digits and number punctuation can only occur inside a maximal run of
    such characters, so those secrets are searched in the runs (much less text) only.
    """
    numberish = {s for s in secrets if _NUMBERISH.fullmatch(s)}
    others = secrets - numberish
    found = []
    for name, text in output_text(out).items():
        runs = "\n".join(_NUMBERISH.findall(text))
        found += [(name, len(s)) for s in numberish if s in runs]
        found += [(name, len(s)) for s in others if s in text]
    return found
