"""Manifest counts say what was read and where it went: records = what records/ holds."""

import json

import pandas as pd
import pytest

from cemkit.cli import main

pytestmark = pytest.mark.samples


@pytest.mark.filterwarnings("ignore::cemkit.errors.ResultWarning")  # lab numbers
def test_cucm_cmr_rows_are_attached_not_loaded(samples_dir, tmp_path, capsys):
    out = tmp_path / "run"
    files = [str(samples_dir / "cucm" / n) for n in ("cdr.txt", "cmr.txt")]
    assert main(["load", "cucm", *files, "--out", str(out), "--region", "US",
                 "--scheduler", "sync"]) == 0  # fmt: skip
    records = pd.read_parquet(out / "records")
    totals = json.loads((out / "manifest.json").read_text())["load"]["totals"]
    assert totals["rows_loaded"] == len(records) == 3  # 3 CDRs
    assert totals["rows_attached"] == 2  # 2 CMRs, joined to their CDRs as quality metrics
    assert totals["rows_read"] == (totals["rows_loaded"] + totals["rows_quarantined"]
                                   + totals["rows_attached"])  # fmt: skip
    assert "3 records loaded, 0 quarantined, 2 attached to records of 5 rows read" in (
        capsys.readouterr().out
    )
