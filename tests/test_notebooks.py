"""Every shipped notebook runs with papermill at small parameters and its report reads well.

A report opens with an executive summary, has no stderr output (progress lines, warnings), shows
tables without index, NaN or ``+00:00``, draws its charts offline, leaks no number, and its
report directory holds the executed notebook and the HTML page only (#16 case 6). 02_usage_mining
also runs at its default parameters (slow): the injected incident is found.
"""

import json
import re

import nbformat
import pandas as pd
import pytest
from browser import render

from cemkit.privacy.scan_notebook import scan_notebook, scan_text
from cemkit.report import charts, runner

CASES = {
    "00_policy_review": ({"records": 3_000}, ["Policy default, version 1", "raw numbers found",
                                              "kept prefix"], 1),
    "01_customer_modeling": ({"customers": 20_000}, ["one object per customer", "node groups",
                                                     "Customers each node group stands for"], 2),
    "02_usage_mining": ({"records": 20_000, "days": 1, "incidents": 0},
                        ["better when", "Answer seizure ratio", "ITU-T E.411", "normal hours"], 2),
    "03_throughput_benchmark": ({"size": 6_000, "batches": 3},
                                ["records/s", "DuckDB, Asterisk CSV", "p99", "the brief"], 2),
    "04_device_experience": ({"devices": 30},
                             ["1 hole bucket(s) in 1 cell(s)", "time seen by agents",
                              "suppressed", "one device per row", "pseudonymous code"], 2),
}  # fmt: skip


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            for value in out.get("data", {}).values():
                parts.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(parts)


def html_outputs(nb) -> str:
    return "\n".join(o["data"]["text/html"] for c in nb.cells for o in c.get("outputs", [])
                     if "text/html" in o.get("data", {}))  # fmt: skip


def vegalite_specs(nb) -> list[dict]:
    return [v for c in nb.cells for o in c.get("outputs", [])
            for k, v in o.get("data", {}).items()
            if k.startswith("application/vnd.vegalite")]  # fmt: skip


@pytest.fixture(scope="module", params=sorted(CASES))
def executed(request, tmp_path_factory):
    name = request.param
    params, expected, charts_min = CASES[name]
    tmp = tmp_path_factory.mktemp(name)
    mp = pytest.MonkeyPatch()
    mp.delenv("CEMKIT_KEY", raising=False)
    try:
        paths = runner.report(name, params, tmp / "r", progress=False)
    finally:
        mp.undo()
    return name, paths, expected, charts_min


def test_notebook_runs_and_its_report_is_safe(executed):
    name, paths, expected, charts_min = executed
    nb = nbformat.read(str(paths["notebook"]), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = outputs_text(nb)
    for phrase in expected:
        assert phrase in text, phrase
    assert len(vegalite_specs(nb)) >= charts_min
    assert scan_notebook(paths["notebook"]) == []
    html = paths["html"].read_text()
    page = re.sub(
        r"<script[^>]*>.*?</script>",
        lambda m: "" if len(m.group()) > 100_000 else m.group(),
        html,
        flags=re.DOTALL,
    )
    assert scan_text(re.sub(r"<[^>]+>", " ", page)) == (0, 0)
    dom = render(paths["html"], f"{name}.png")
    assert dom.count("<svg") >= charts_min


def test_report_directory_holds_aggregates_only(executed):
    """#16 case 6: no working run, no generated world, no record-level Parquet in the report."""
    name, paths, _, _ = executed
    out = paths["html"].parent
    assert sorted(p.name for p in out.rglob("*")) == [f"{name}.html", f"{name}.ipynb"]
    assert not list(out.parent.glob("*.failed.ipynb"))


def test_report_reads_well(executed):
    _, paths, _, _ = executed
    nb = nbformat.read(str(paths["notebook"]), as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    streams = [o for o in outputs if o.get("output_type") == "stream"]
    assert [o for o in streams if o["name"] == "stderr"] == [], "stderr in the report"
    assert not [o for o in streams if o["text"].startswith("#")], "progress lines in the report"
    first = next(o for c in nb.cells for o in c.get("outputs", []))
    assert "cemkit-summary" in first.get("data", {}).get("text/html", ""), "no summary first"
    html = html_outputs(nb)
    assert "row_heading" not in html, "a table shows its index"
    assert ">nan<" not in html.lower() and "+00:00" not in html
    assert "Warning" not in outputs_text(nb)


def test_usage_report_charts_are_readable(executed):
    name, paths, _, _ = executed
    if name != "02_usage_mining":
        pytest.skip("usage report only")
    nb = nbformat.read(str(paths["notebook"]), as_version=4)
    text = outputs_text(nb)
    dots = next(s for s in vegalite_specs(nb) if "per node group, worst first" in json.dumps(s))
    x = next(layer["encoding"]["x"] for layer in dots["layer"] if "x" in layer["encoding"])
    assert x["axis"]["format"] == ".0%"  # not 0.000.05
    low, high = x["scale"]["domain"]
    assert low > 0 and high - low < 0.6, "the ASR axis is not zoomed to the data"
    # this world has no incident: said in words, no empty timeline drawn
    assert "No alert was raised in the period." in text
    assert "Synthetic data: a generated world of 20,000 records over 1 days" in text


def test_empty_data_is_said_in_words():
    empty = pd.DataFrame(columns=["group", "indicator", "severity", "start", "end"])
    said = charts.alert_timeline(empty)
    assert "No alert was raised" in said.data
    said = charts.ranked_dots(pd.DataFrame({"g": ["a"], "asr": [float("nan")]}), "asr", "g")
    assert "no group had enough data" in said.data


@pytest.mark.slow
def test_usage_report_at_default_parameters_finds_the_incident(tmp_path, monkeypatch):
    monkeypatch.delenv("CEMKIT_KEY", raising=False)
    paths = runner.report("02_usage_mining", {}, tmp_path / "r", progress=False)
    nb = nbformat.read(str(paths["notebook"]), as_version=4)
    text = outputs_text(nb)
    assert re.search(r"Injected incident on \S+ \([^)]*\): found by the alerts", text), text
    assert "NOT found" not in text
    assert "Incidents found" in text and "1 incident(s) found" in text
    worst = next(c for c in nb.cells if "worst_min_attempts" in c.source)
    table = worst.outputs[0]["data"]["text/html"]
    attempts = [int(v.replace(",", "")) for v in re.findall(r'col3" >([\d,]+)<', table)]
    assert attempts and min(attempts) >= 20, attempts
    assert sorted(p.name for p in paths["html"].parent.iterdir()) == [
        "02_usage_mining.html", "02_usage_mining.ipynb"]  # fmt: skip


@pytest.mark.slow
def test_usage_report_text_matches_the_input_given(tmp_path, monkeypatch, small_world):
    world, truth = small_world
    monkeypatch.delenv("CEMKIT_KEY", raising=False)
    monkeypatch.chdir(world)  # relative paths: the caller's directory
    params = {"input": "formats/asterisk/Master.csv", "format": "asterisk",
              "model": "model.yaml", "tz": truth["timezone"], "region": truth["default_region"],
              "options": {"blocksize": 65_536}}  # fmt: skip
    paths = runner.report("02_usage_mining", params, tmp_path / "r", progress=False)
    text = outputs_text(nbformat.read(str(paths["notebook"]), as_version=4))
    assert "asterisk files" in text
    assert "generated" not in text.lower() and "Injected" not in text
    # loader options reach the loader: a wrong one is refused by it, naming it
    bad = {**params, "options": {"blocksize": 65_536, "no_such_option": 1}}
    with pytest.raises(runner.ReportError, match="no_such_option"):
        runner.report("02_usage_mining", bad, tmp_path / "bad", progress=False)
    assert (tmp_path / "bad.failed.ipynb").is_file() and not (tmp_path / "bad").exists()


def test_usage_report_publishes_a_dp_version(tmp_path, monkeypatch):
    """#22: with dp=True the tables are the DP release's, the first screen says so, the
    ledger records the spend, and exact-record sections are left out."""
    monkeypatch.delenv("CEMKIT_KEY", raising=False)
    ledger = tmp_path / "ledger.jsonl"
    params = {"records": 20_000, "days": 1, "incidents": 0, "dp": True, "dp_spend": 1.0,
              "ledger": str(ledger)}  # fmt: skip
    paths = runner.report("02_usage_mining", params, tmp_path / "r", progress=False)
    nb = nbformat.read(str(paths["notebook"]), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    summary_html = outputs[0].get("data", {}).get("text/html", "")
    before = [(o.get("output_type"), o.get("name"), str(o.get("text", o.get("data", "")))[:500])
              for o in outputs[:3]]  # fmt: skip
    assert "published with differential privacy" in summary_html, before
    assert "Published with differential privacy" in summary_html
    text = outputs_text(nb)
    assert "Not part of the differentially private release" in text
    assert "95 % intervals from the noise" in json.dumps(vegalite_specs(nb))
    events = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [e["event"] for e in events] == ["reserve", "commit"]
    assert scan_notebook(paths["notebook"]) == []
