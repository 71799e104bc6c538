import json
import subprocess
import sys

import pytest

from cemkit import __version__
from cemkit.cli import main
from tests.browser import render


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("synth", "demo"):
        assert cmd in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: cemkit" in capsys.readouterr().out


def test_synth_command(tmp_path, capsys):
    assert main(["synth", "--records", "1500", "--seed", "2", "--out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["records"] == 1500
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["seed"] == 2 and truth["records"] == 1500


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "cemkit.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"cemkit {__version__}"


def test_demo_writes_a_self_contained_report(tmp_path):
    from cemkit.demo import run_demo

    report = run_demo(tmp_path / "demo", records=8_000, seed=1, scheduler="threads")
    html = report.read_text()
    assert report.name == "index.html"
    assert "vegaEmbed(" in html and "Answer-seizure ratio" in html
    # Offline: no script or stylesheet is fetched from elsewhere.
    assert "<script src=" not in html and "cdn.jsdelivr" not in html
    dom = render(report, "demo-report.png")
    assert dom.count("<svg") >= 3 and "mark-line" in dom, "charts were not drawn offline"
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary == {"records": 8_000, "schema_problems": 0}
