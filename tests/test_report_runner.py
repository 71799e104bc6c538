import json

import nbformat
import pytest

from cemkit.cli import main
from cemkit.errors import InputError
from cemkit.report import runner
from tests.browser import render


def make_notebook(path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("rows = 3\ntitle = 'default'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A tiny report"),
        params,
        nbformat.v4.new_code_cell(
            "import altair as alt, pandas as pd, cemkit.report\n"
            "cemkit.report.setup_notebook()\n"
            "df = pd.DataFrame({'x': range(rows), 'y': [i * i for i in range(rows)]})\n"
            "print(f'{title}: {len(df)} rows')\n"
            "alt.Chart(df).mark_line().encode(x='x:Q', y='y:Q').properties(title=title)"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))
    return path


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


def test_html_is_offline_with_code_hidden(executed_report):
    _, paths = executed_report
    html = paths["html"].read_text()
    assert "vegaEmbed('#cemkit-chart-0'" in html
    assert "df = pd.DataFrame" not in html  # code hidden
    assert "five rows: 5 rows" in html
    for remote in (
        '<script src="http',
        "<script src='http",
        "cdn.jsdelivr",
        "unpkg.com",
        "cdnjs.cloudflare",
    ):
        assert remote not in html, remote


def test_html_charts_draw_in_a_browser_without_network(executed_report):
    _, paths = executed_report
    dom = render(paths["html"], "tiny-report.png")
    assert "cemkit-chart-0" in dom
    assert "<svg" in dom and "mark-line" in dom, "the chart was not drawn"


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


def test_failed_notebook_leaves_no_report(tmp_path):
    nb = make_notebook(tmp_path / "tiny.ipynb")
    import papermill

    with pytest.raises(papermill.PapermillExecutionError):
        runner.report(nb, {"rows": "not a number"}, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.ipynb"]
