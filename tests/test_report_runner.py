import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from browser import render

from cemkit.cli import main
from cemkit.errors import InputError
from cemkit.report import runner

REPO = Path(__file__).resolve().parents[1]


def make_notebook(path, body=None):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        "rows = 3        # rows of the table\ntitle = 'default'\n"
        "source = None  # a text file to read\nworkdir = None  # working files\nsleep = 0"
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A tiny report"),
        params,
        nbformat.v4.new_code_cell(
            body
            or "import time, altair as alt, pandas as pd, cemkit.report\n"
            "from pathlib import Path\n"
            "cemkit.report.setup_notebook()\n"
            "time.sleep(sleep)\n"
            "if workdir:\n"
            "    Path(workdir, 'records.parquet').write_text('record-level data')\n"
            "if source:\n"
            "    print('source says', Path(source).read_text())\n"
            "df = pd.DataFrame({'x': range(rows), 'y': [i * i for i in range(rows)]})\n"
            "print(f'{title}: {len(df)} rows')\n"
            "alt.Chart(df).mark_line().encode(x='x:Q', y='y:Q').properties(title=title)"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, str(path))
    return path


def cemkit_cli(*args, cwd):
    """Run the real command in a child process; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "cemkit.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def executed_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    nb = make_notebook(tmp / "tiny.ipynb")
    paths = runner.report(nb, {"rows": 5, "title": "five rows"}, tmp / "out", progress=False)
    return tmp, paths


def test_parameters_are_injected_and_notebook_kept(executed_report):
    _, paths = executed_report
    nb = nbformat.read(str(paths["notebook"]), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "rows = 5" in injected[0].source
    text = json.dumps(nb.cells[-1].outputs)
    assert "five rows: 5 rows" in text


def test_report_directory_holds_the_report_only(executed_report):
    """#16 case 6: the working data goes to a temporary directory, never into the report."""
    _, paths = executed_report
    out = paths["html"].parent
    assert sorted(p.name for p in out.iterdir()) == ["tiny.html", "tiny.ipynb"]
    nb = nbformat.read(str(paths["notebook"]), as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    workdir = injected.source.split("workdir = ")[1].split("\n")[0].strip("\"'")
    assert not Path(workdir).exists(), "the temporary working directory was not removed"
    assert not _inside(Path(workdir), out)


def _inside(path, directory):
    return str(path.resolve()).startswith(str(directory.resolve()))


def test_workdir_inside_the_report_directory_is_refused(tmp_path):
    nb = make_notebook(tmp_path / "tiny.ipynb")
    with pytest.raises(InputError, match="inside the report directory"):
        runner.report(nb, {"workdir": str(tmp_path / "r" / "work")}, tmp_path / "r",
                      progress=False)  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_html_is_offline_with_code_hidden(executed_report):
    _, paths = executed_report
    html = paths["html"].read_text()
    assert "vegaEmbed('#cemkit-chart-0'" in html
    assert "df = pd.DataFrame" not in html  # code hidden
    assert "five rows: 5 rows" in html
    for remote in ('<script src="http', "<script src='http", "cdn.jsdelivr", "unpkg.com",
                   "cdnjs.cloudflare"):  # fmt: skip
        assert remote not in html, remote


def test_html_charts_draw_in_a_browser_without_network(executed_report):
    _, paths = executed_report
    dom = render(paths["html"], "tiny-report.png")
    assert "cemkit-chart-0" in dom
    assert "<svg" in dom and "mark-line" in dom, "the chart was not drawn"


def test_parameters_from_yaml_file_and_pairs_and_paths_from_the_callers_directory(
    tmp_path, monkeypatch, capsys
):
    nb = make_notebook(tmp_path / "tiny.ipynb")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "note.txt").write_text("hello from the caller")
    (tmp_path / "params.yaml").write_text("rows: 4\ntitle: from file\n")
    monkeypatch.chdir(tmp_path)
    rc = main(["report", "tiny.ipynb", "-f", "params.yaml", "-y", "title: from yaml",
               "-p", "source", "data/note.txt", "--out", "r"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    nb = nbformat.read(str(tmp_path / "r" / "tiny.ipynb"), as_version=4)
    text = json.dumps(nb.cells[-1].outputs)
    assert "source says hello from the caller" in text  # relative path: the caller's directory
    assert "from yaml: 4 rows" in text  # -y overrides -f; rows from -f


def test_help_notebook_lists_parameters(capsys):
    assert main(["report", "02_usage_mining", "--help-notebook"]) == 0
    out = capsys.readouterr().out
    assert "records" in out and "default 100_000" in out and "options" in out
    assert "loader options" in out


def test_unknown_parameter_is_refused(tmp_path, capsys):
    nb = make_notebook(tmp_path / "tiny.ipynb")
    rc = main(["report", str(nb), "-p", "rwos", "2", "--out", str(tmp_path / "r")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "unknown parameter(s) 'rwos'" in err and "did you mean 'rows'" in err
    assert not (tmp_path / "r").exists()


def test_existing_report_needs_overwrite(tmp_path, capsys):
    nb = make_notebook(tmp_path / "tiny.ipynb")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "old.txt").write_text("old")
    assert main(["report", str(nb), "--out", str(tmp_path / "r")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "r" / "old.txt").is_file()
    assert main(["report", str(nb), "--out", str(tmp_path / "r"), "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["tiny.html", "tiny.ipynb"]


def test_report_command_and_errors(tmp_path, capsys):
    nb = make_notebook(tmp_path / "tiny.ipynb")
    rc = main(
        ["report", str(nb), "-p", "rows", "2", "-p", "title", "cli", "--out", str(tmp_path / "r")]
    )
    assert rc == 0
    assert (tmp_path / "r" / "tiny.html").is_file()
    assert main(["report", "no_such_notebook", "--out", str(tmp_path / "x")]) == 1
    assert "notebook 'no_such_notebook' not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(InputError):
        runner.resolve_notebook("missing.ipynb")


def test_failure_is_one_line_and_the_failed_notebook_is_kept(tmp_path):
    make_notebook(tmp_path / "tiny.ipynb")
    rc, _, err = cemkit_cli("report", "tiny.ipynb", "-p", "rows", '"not a number"',
                              "--out", "bad", cwd=tmp_path)  # fmt: skip
    assert rc == 1
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    assert errors[0].startswith("cemkit report: error: notebook tiny failed in cell")
    assert "TypeError" in errors[0] and "bad.failed.ipynb" in errors[0]
    assert "Traceback" not in err
    assert not (tmp_path / "bad").exists()
    kept = nbformat.read(str(tmp_path / "bad.failed.ipynb"), as_version=4)
    assert any(o.get("output_type") == "error" for c in kept.cells for o in c.get("outputs", []))


def test_a_cell_that_runs_too_long_times_out(tmp_path):
    make_notebook(tmp_path / "tiny.ipynb")
    rc, _, err = cemkit_cli("report", "tiny.ipynb", "-p", "sleep", "60", "--timeout", "3",
                            "--out", "slow", cwd=tmp_path)  # fmt: skip
    assert rc == 1
    assert "cemkit report: error: notebook tiny failed" in err and "Timeout" in err, err
    assert not (tmp_path / "slow").exists()


def test_report_command_is_quiet(tmp_path):
    """No kernel transport warning, no library log lines: what the command did.

    stderr is a pipe here (a scheduler's log): papermill's bar of cells is not drawn in it.
    """
    make_notebook(tmp_path / "tiny.ipynb")
    rc, out, err = cemkit_cli("report", "tiny.ipynb", "--out", "r", cwd=tmp_path)
    assert rc == 0, err
    assert out.strip() == "cemkit report: r/tiny.html"
    assert "Kernel is running over TCP" not in err and "[IPKernelApp]" not in err
    assert " INFO " not in err and "WARNING" not in err, err
    assert "Executing" not in err and "cell/s" not in err and "\r" not in err, err


def test_pdf_is_printed_by_the_headless_browser(tmp_path, capsys):
    from browser import chromium

    chromium()
    nb = make_notebook(tmp_path / "tiny.ipynb")
    assert main(["report", str(nb), "--out", str(tmp_path / "r"), "--pdf"]) == 0
    pdf = tmp_path / "r" / "tiny.pdf"
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5_000
    assert str(pdf) in capsys.readouterr().out
