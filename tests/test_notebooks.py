"""Every shipped notebook runs with papermill at small parameters and its report is safe.

(02_usage_mining runs in tests/test_cli.py::test_demo_writes_the_usage_mining_report, the
report ``cemkit demo`` ends with.)
"""

import json
import re

import nbformat
import pytest
from browser import render

from cemkit.privacy.scan_notebook import scan_notebook, scan_text
from cemkit.report import runner

CASES = {
    "00_policy_review": ({"records": 3_000}, ["raw numbers found", "a_number", "kept prefix"], 1),
    "01_customer_modeling": ({"customers": 20_000}, ["one object per customer", "customers"], 2),
    "03_throughput_benchmark": ({"size": 6_000, "batches": 3},
                                ["records/s", "DuckDB, Asterisk CSV", "p99"], 2),
    "04_device_experience": ({"devices": 30},
                             ["1 hole bucket(s) in 1 cell(s)", "seen_share", "suppressed"], 2),
}


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            for value in out.get("data", {}).values():
                parts.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs_and_its_report_is_safe(name, tmp_path, monkeypatch):
    params, expected, charts = CASES[name]
    monkeypatch.delenv("CEMKIT_KEY", raising=False)
    paths = runner.report(name, {**params, "workdir": str(tmp_path / "work")}, tmp_path / "r",
                          progress=False)
    nb = nbformat.read(str(paths["notebook"]), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = outputs_text(nb)
    for phrase in expected:
        assert phrase in text, phrase
    chart_outputs = text.count('"$schema": "https://vega.github.io/schema/vega-lite')
    assert chart_outputs >= charts
    assert scan_notebook(paths["notebook"]) == []
    html = paths["html"].read_text()
    page = re.sub(r"<script[^>]*>.*?</script>",
                  lambda m: "" if len(m.group()) > 100_000 else m.group(), html, flags=re.DOTALL)
    assert scan_text(re.sub(r"<[^>]+>", " ", page)) == (0, 0)
    dom = render(paths["html"], f"{name}.png")
    assert dom.count("<svg") >= charts


def test_policy_review_finds_no_leak(tmp_path, monkeypatch):
    monkeypatch.delenv("CEMKIT_KEY", raising=False)
    paths = runner.report("00_policy_review", {"records": 2_000, "workdir": str(tmp_path / "w")},
                          tmp_path / "r", progress=False)
    nb = nbformat.read(str(paths["notebook"]), as_version=4)
    scan_cell = next(c for c in nb.cells if "exact_leaks" in c.source)
    table = scan_cell.outputs[0]["data"]["text/plain"]
    assert re.search(r"raw numbers found.*\n\s*0\s+\d+\s+0\s+0\s+0", table, re.DOTALL) or (
        " 0 " in table), table
