"""The usage-mining notebook reads its KQIs from a warehouse (#21), through `cemkit report`.

The warehouse is built by `cemkit watch --once` from synthetic rotated files; the report reads
the period's KQIs with `cemkit.warehouse.open(path).kqi(...)` (k applied by the query), shows
the warehouse's numbers, and no raw number appears in the notebook or the page.
"""

from __future__ import annotations

import re
import shutil

import nbformat
import pandas as pd
import pytest
from test_notebooks import outputs_text
from warehouse_helpers import KEY, REGION, TZ, rotated_files

from cemkit import warehouse
from cemkit.cli import main
from cemkit.model.spec import load_model
from cemkit.privacy.scan_notebook import scan_notebook, scan_text

pytestmark = pytest.mark.slow  # two notebook executions


def _raw_numbers(files) -> set[str]:
    numbers = set()
    for f in files:
        for line in f.read_text().splitlines():
            fields = [x.strip('"') for x in line.split('","')]
            numbers.update(x.lstrip("0") for x in fields[1:3] if x.isdigit() and len(x) >= 8)
    return numbers


def test_usage_report_reads_a_warehouse_built_by_watch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CEMKIT_KEY", KEY)
    files = rotated_files(tmp_path, 2, records=400)
    landing, wh_dir = tmp_path / "landing", tmp_path / "wh"
    landing.mkdir()
    for f in files:
        shutil.copy(f, landing / f.name)
    assert main(["watch", str(landing), "--into", str(wh_dir), "--format", "asterisk",
                 "--model", str(tmp_path / "model.yaml"), "--tz", TZ, "--region", REGION,
                 "--once", "--settle", "0", "--workers", "1"]) == 0  # fmt: skip
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["report", "02_usage_mining", "--out", str(out),
                 "-p", "warehouse", str(wh_dir), "-p", "model", str(tmp_path / "model.yaml"),
                 "-p", "start", "2026-03-02", "-p", "end", "2026-03-04",
                 "-p", "k", "12"]) == 0  # fmt: skip
    nb = nbformat.read(str(out / "02_usage_mining.ipynb"), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = outputs_text(nb)
    assert "KQIs from the warehouse" in text and "KQI warehouse (2 files counted)" in text
    assert "Not kept in a warehouse" in text
    # the call attempts shown are the warehouse's, for the period
    wh = warehouse.open(wh_dir)
    roots = [g.name for g in load_model(tmp_path / "model.yaml").groups if g.parent is None]
    sums = wh.counters("2026-03-02", "2026-03-04", groups=roots)
    total = int(sums["attempts"].sum())
    assert total > 0 and f"{total:,}" in text
    # k applied at query time: the report says which groups it masked, at k = 12
    assert "fewer than 12 customers" in text or "at least 12 customers" in text
    # no raw identifier anywhere in what the report publishes
    assert scan_notebook(out / "02_usage_mining.ipynb") == []
    html = (out / "02_usage_mining.html").read_text()
    page = re.sub(r"<script[^>]*>.*?</script>",
                  lambda m: "" if len(m.group()) > 100_000 else m.group(), html,
                  flags=re.DOTALL)  # fmt: skip
    assert scan_text(re.sub(r"<[^>]+>", " ", page)) == (0, 0)
    raw = _raw_numbers(files)
    assert raw
    published = text + html
    assert not [n for n in raw if n in published]
    assert sorted(p.name for p in out.iterdir()) == ["02_usage_mining.html",
                                                     "02_usage_mining.ipynb"]  # fmt: skip


def test_usage_report_with_a_warehouse_refuses_dp(tmp_path, monkeypatch):
    from cemkit.report import runner

    monkeypatch.setenv("CEMKIT_KEY", KEY)
    files = rotated_files(tmp_path, 1, records=200)
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    warehouse.ingest([str(files[0])], tmp_path / "wh", format="asterisk",
                     model=tmp_path / "model.yaml", tz=TZ, default_region=REGION)  # fmt: skip
    assert wh.show()["files"] == 1
    params = {"warehouse": str(tmp_path / "wh"), "model": str(tmp_path / "model.yaml"),
              "dp": True}  # fmt: skip
    with pytest.raises(runner.ReportError, match="not a DP release"):
        runner.report("02_usage_mining", params, tmp_path / "r", progress=False)
    assert pd.Timestamp(wh.show()["last_day"]) == pd.Timestamp("2026-03-02")
