"""`cemkit scan-notebook`: findings name notebook and cell, never the value; exit codes."""

import nbformat
import pytest

from cemkit.cli import main
from cemkit.privacy.scan_notebook import scan_notebook, scan_text

TN = "+44 20 7946 0958"
EMAIL = "ann.smith@example.org"


def notebook(path, outputs, source="x = 1"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = outputs
    nb.cells = [nbformat.v4.new_markdown_cell("# clean"), cell]
    nbformat.write(nb, str(path))
    return path


def stream(text):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def rich(data):
    return nbformat.v4.new_output("execute_result", data=data, execution_count=1)


@pytest.mark.parametrize("output", [
    stream(f"calling {TN}\n"),
    stream("national 020 7946 0958"),
    rich({"text/plain": "a_number\n0  +12025550173"}),
    rich({"text/html": "<table><tr><td>+33&nbsp;1 23 45 67 89</td></tr></table>"}),
    nbformat.v4.new_output("error", ename="ValueError", evalue=f"bad number {TN}",
                           traceback=[f"\x1b[31mValueError\x1b[0m: bad number {TN}"]),
])  # fmt: skip
def test_finds_numbers_in_every_kind_of_output(tmp_path, output, capsys):
    path = notebook(tmp_path / "nb.ipynb", [output])
    assert main(["scan-notebook", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"{path}: cell 2 (id " in captured.out and "telephone number(s)" in captured.out
    for value in ("7946", "0958", "2025550173", "23 45 67"):
        assert value not in captured.out + captured.err  # never the value


def test_finds_emails_and_counts(tmp_path, capsys):
    path = notebook(tmp_path / "nb.ipynb", [stream(f"{EMAIL}, {TN} and {TN}")])
    assert main(["scan-notebook", str(path)]) == 1
    out = capsys.readouterr().out
    assert "2 telephone number(s), 1 e-mail address(es)" in out and "example.org" not in out


def test_clean_and_protected_outputs_pass(tmp_path, capsys):
    clean = notebook(tmp_path / "clean.ipynb", [
        stream("3 calls at 2026-11-26 12:00:01, ext 201, record asterisk:Master.csv:17\n"),
        rich({"text/plain": "+44#9f3a0c5e1b2d4f60  [masked TN]  <PHONE_NUMBER>",
              "image/png": "iVBORw0KGgo" + "1234567890" * 5}),
    ], source=f"# a number in the source only: {TN}")  # fmt: skip
    assert main(["scan-notebook", str(clean)]) == 0
    assert capsys.readouterr().out == ""
    assert scan_notebook(clean, sources=True)[0].where == "source"


def test_several_notebooks_and_unreadable_ones(tmp_path, capsys):
    good = notebook(tmp_path / "good.ipynb", [stream("fine")])
    bad = notebook(tmp_path / "bad.ipynb", [stream(TN)])
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert main(["scan-notebook", str(good), str(bad)]) == 1
    assert "bad.ipynb: cell 2" in capsys.readouterr().out
    assert main(["scan-notebook", str(good), str(broken)]) == 2
    assert "cannot be read as a notebook" in capsys.readouterr().err


def test_regions_decide_which_national_formats_count():
    assert scan_text("020 7946 0958", ["GB"]) == (1, 0)
    assert scan_text("020 7946 0958", ["US"]) == (0, 0)
    assert scan_text("+1 202 555 0173", ["DE"]) == (1, 0)  # international always counts
