import json
import subprocess
import sys

import pytest
from browser import render

from cemkit import __version__
from cemkit.cli import main


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


def test_demo_writes_the_usage_mining_report(tmp_path, monkeypatch):
    from cemkit.demo import run_demo
    from cemkit.privacy.scan_notebook import scan_notebook, scan_text

    monkeypatch.delenv("CEMKIT_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # a relative output directory, as `make demo` gives
    html_path = run_demo("demo", records=8_000, seed=1, scheduler="threads")
    assert html_path.name == "02_usage_mining.html"
    assert (tmp_path / "demo" / "work" / "run" / "manifest.json").is_file()
    html = html_path.read_text()
    assert "vegaEmbed(" in html and "Worst node groups" in html
    # Offline: no script or stylesheet is fetched from elsewhere.
    assert "<script src=" not in html and "cdn.jsdelivr" not in html
    # No telephone number in the saved notebook or the page; none of the world's raw numbers.
    assert scan_notebook(html_path.with_suffix(".ipynb")) == []
    # The page's own text and chart data (the inlined Vega library is code, not data).
    import re

    page = re.sub(
        r"<script[^>]*>.*?</script>",
        lambda m: "" if len(m.group()) > 100_000 else m.group(),
        html,
        flags=re.DOTALL,
    )
    assert scan_text(re.sub(r"<[^>]+>", " ", page)) == (0, 0)  # text and chart data, not tags
    import pandas as pd

    raw = pd.read_parquet(tmp_path / "demo" / "world" / "records", columns=["a_number"])
    numbers = set(raw["a_number"])
    assert not [n for n in numbers if n in html or n.lstrip("+") in html]
    dom = render(html_path, "demo-report.png")
    assert dom.count("<svg") >= 3 and "mark-line" in dom, "charts were not drawn offline"
