"""Bad input at scale: 1M Asterisk rows, 1% corrupted in every way, loaded and reconciled.

Every good row is loaded, every bad row is quarantined with its reason, and the manifest's
counts add up. The good rows are real synthetic Asterisk rows repeated to reach the size.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from cemkit import synth
from cemkit.cli import main

pytestmark = pytest.mark.slow

ROWS = 1_000_000
EVERY = 100  # one row in EVERY is corrupted

#: How each kind of corruption is made, and what the quarantine must say about it.
KINDS = ("columns", "time", "duration", "quoting", "encoding")
REASONS = {
    "columns": r"expected 18 fields, found 17",
    "time": r"time",
    "duration": r"not a number",
    "quoting": r"quot",
    "encoding": r"UTF-8",
    "truncated": r"expected 18 fields|quot",
}


def corrupt(line: bytes, kind: str) -> bytes:
    if kind == "columns":
        return line[: line.rfind(b",")]
    if kind == "time":
        return re.sub(rb'"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"', b'"2026-13-45 25:61:00"', line, count=1)
    if kind == "duration":
        return re.sub(rb',(\d+),(\d+),("[A-Z ]+",)', rb",x\1,\2,\3", line, count=1)
    if kind == "quoting":  # the closing quote of the fourth field is lost
        return re.sub(rb'^("[^"]*","[^"]*","[^"]*","[^"]*)",', rb"\1,", line, count=1)
    if kind == "encoding":  # a Latin-1 byte in a UTF-8 file
        return b'"\xe9' + line[1:]
    raise AssertionError(kind)


def build(source: Path, target: Path) -> dict[int, str]:
    """Write ROWS lines cycling over ``source``'s rows; return {bad line number: kind}."""
    good = source.read_bytes().splitlines()
    bad: dict[int, str] = {}
    with open(target, "wb") as fh:
        for i in range(ROWS - 1):
            line = good[i % len(good)]
            if i % EVERY == EVERY // 2:
                kind = KINDS[(i // EVERY) % len(KINDS)]
                changed = corrupt(line, kind)
                assert changed != line, kind
                line = changed
                bad[i + 1] = kind
            fh.write(line + b"\n")
        last = good[(ROWS - 1) % len(good)]
        fh.write(last[: len(last) // 2])  # truncated last line, no newline
        bad[ROWS] = "truncated"
    return bad


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    world = base / "world"
    synth.generate(world, records=30_000, seed=8, incidents=0, formats=True)
    truth = json.loads((world / "truth.json").read_text())
    source = base / "Master.csv"
    bad = build(world / "formats" / "asterisk" / "Master.csv", source)
    out = base / "loaded"
    code = main(["load", "asterisk", str(source), "--out", str(out), "--tz", truth["timezone"],
                 "--region", truth["default_region"], "-o", "blocksize=16777216",
                 "--scheduler", "local"])  # fmt: skip
    assert code == 0
    return out, bad


def test_counts_reconcile_in_the_manifest(loaded):
    out, bad = loaded
    manifest = json.loads((out / "manifest.json").read_text())
    totals = manifest["load"]["totals"]
    rows = {k: v for k, v in totals.items() if k.startswith("rows_")}
    assert rows == {"rows_read": ROWS, "rows_quarantined": len(bad),
                    "rows_loaded": ROWS - len(bad), "rows_attached": 0}  # fmt: skip
    assert totals["read_units"]["lines"] == ROWS  # one line per row (no header in cdr_csv)
    assert len(bad) == ROWS // EVERY + 1
    [entry] = manifest["load"]["inputs"]
    assert entry["rows_read"] == ROWS and manifest["load"]["parts"] > 1


def test_every_good_row_loaded(loaded):
    out, bad = loaded
    ids = pd.read_parquet(out / "records", columns=["record_id"])["record_id"]
    lines = ids.str.rsplit(":", n=1).str[1].astype("int64")
    assert lines.is_unique
    assert set(lines) == set(range(1, ROWS + 1)) - set(bad)


def test_every_bad_row_quarantined_with_its_reason(loaded):
    out, bad = loaded
    q = pd.read_parquet(out / "quarantine")
    assert q["line"].is_unique
    assert set(q["line"]) == set(bad)
    q["kind"] = q["line"].map(bad)
    for kind, rows in q.groupby("kind"):
        pattern = REASONS[str(kind)]
        wrong = rows[~rows["reason"].str.contains(pattern)]
        assert wrong.empty, (kind, wrong[["line", "field", "reason"]].head().to_dict("records"))
    assert set(q["kind"]) == {*KINDS, "truncated"}
    assert q["raw"].notna().all() and q["file"].notna().all()
