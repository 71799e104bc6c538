"""Notebook output guard: unit tests, and a real kernel (nbclient) whose saved notebook must
hold none of the raw numbers it tried to display."""

import json
import os
import warnings
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import cemkit
from cemkit.errors import CemkitError, PrivacyWarning
from cemkit.guard import MASK, PROTECTED_ATTR, mask_frame, mask_text, tn_spans
from cemkit.privacy.scan_notebook import scan_notebook

try:  # tests as a package or as top-level modules (both layouts exist)
    from privacy_leaks import number_forms
except ImportError:
    from privacy_leaks import number_forms  # type: ignore[no-redef]

RAW = ["+44 20 7946 0958", "020 7946 0321", "+1 202 555 0173", "+33 1 23 45 67 89"]
RAW_INT = 442079460777
KEY_HEX = bytes(range(32)).hex()


def forms(values):
    out = set()
    for v in values:
        out |= number_forms(str(v), "GB")
    return out


def test_tn_spans_finds_numbers_not_dates_or_small_counts():
    text = "from +44 20 7946 0958 at 2026-11-26 12:00:01, ext 201, 3 calls, id 42"
    assert [text[s:e] for s, e in tn_spans(text)] == ["+44 20 7946 0958"]
    assert tn_spans("(212) 555-0147 or 0049 30 901820") != []
    assert tn_spans("+44#9f3a0c5e1b2d4f60") == []  # a keyed token is not a number
    assert mask_text("call 020 7946 0958.") == f"call {MASK}."


def test_mask_frame_masks_unprotected_columns_index_and_integers():
    df = pd.DataFrame({"caller": RAW, "msisdn": [RAW_INT, 1, 2, 3], "calls": [1, 2, 3, 4]})
    masked, columns = mask_frame(df.set_index("calls"))
    assert columns == ["caller", "msisdn"]
    assert masked["caller"].tolist() == [MASK] * 4
    assert masked["msisdn"].tolist() == [MASK, "1", "2", "3"]
    masked, columns = mask_frame(df.set_index("caller"))
    assert "(index)" in columns and list(masked.index) == [MASK] * 4
    series, columns = mask_frame(df["caller"])
    assert series.tolist() == [MASK] * 4 and columns == ["caller"]
    assert df["caller"].tolist() == RAW  # the frame itself is untouched


def test_protected_columns_are_left_alone():
    df = pd.DataFrame({"a_number": ["+447946095812"], "node": ["+447946095813"]})
    df.attrs[PROTECTED_ATTR] = {"a_number": "fpe", "node": "keep"}
    masked, columns = mask_frame(df)
    assert masked["a_number"].tolist() == ["+447946095812"]  # FPE pseudonym, looks like a TN
    assert masked["node"].tolist() == [MASK] and columns == ["node"]


def test_protect_marks_frames_for_the_guard(monkeypatch):
    from cemkit.privacy.keys import Key

    key = Key.from_material(bytes(range(32)), key_id="cemkit-research-2026")
    df = pd.DataFrame({"a_number": ["+442079460958"], "outcome": ["answered"]},
                      dtype="string[pyarrow]")  # fmt: skip
    out = cemkit.protect(df, "research", key=key)
    assert out.attrs[PROTECTED_ATTR] == {"a_number": "fpe", "outcome": "keep"}
    assert out.head(1).attrs[PROTECTED_ATTR]["a_number"] == "fpe"


def test_only_displayed_rows_are_checked_and_size_is_kept():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        cemkit.guard(shell)
        df = pd.DataFrame({"n": [f"+4420794{i:05d}" for i in range(500)]})
        with pytest.warns(PrivacyWarning, match=r"column\(s\) n of a displayed frame"):
            data, _ = shell.display_formatter.format(df)
        assert "500 rows × 1 columns" in data["text/html"]
        assert "[500 rows x 1 columns]" in data["text/plain"]
        assert "+4420794" not in data["text/html"] + data["text/plain"]
        # Nothing to mask: no warning (warnings are errors in this test suite).
        plain, _ = shell.display_formatter.format(pd.DataFrame({"x": [1, 2]}))
        assert "text/html" in plain
        styled = pd.DataFrame({"n": [f"+4420794{i:05d}" for i in range(100)]}).style
        with pytest.warns(PrivacyWarning):
            data, _ = shell.display_formatter.format(styled)
        assert "+4420794" not in data["text/html"] and "Styling removed" in data["text/html"]
        clean, _ = shell.display_formatter.format(pd.DataFrame({"x": [1]}).style)
        assert "Styling removed" not in clean["text/html"]
        cemkit.unguard()
        data, _ = shell.display_formatter.format(df)
        assert "+442079400000" in data["text/plain"]
    finally:
        cemkit.unguard()
        InteractiveShell.clear_instance()


def test_guard_needs_ipython():
    with pytest.raises(CemkitError, match="needs a running IPython"):
        cemkit.guard()


def _notebook(cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    return nb


def _execute(nb, path: Path) -> str:
    from nbclient import NotebookClient

    env_key = os.environ.get("CEMKIT_KEY")
    os.environ["CEMKIT_KEY"] = KEY_HEX
    try:
        NotebookClient(nb, kernel_name="python3", timeout=120,
                       resources={"metadata": {"path": str(path.parent)}}).execute()  # fmt: skip
    finally:
        if env_key is None:
            os.environ.pop("CEMKIT_KEY", None)
        else:
            os.environ["CEMKIT_KEY"] = env_key
    nbformat.write(nb, str(path))
    return path.read_text()


# The numbers are written reversed in the cell source: the saved notebook must hold none of
# them anywhere, source included.
FRAME = f"""import pandas as pd
rev = lambda values: [v[::-1] for v in values]
df = pd.DataFrame({{"caller": rev({[r[::-1] for r in RAW]!r}),
                   "msisdn": [int("{str(RAW_INT)[::-1]}"[::-1]), 1, 2, 3],
                   "note": rev(["back rang", "{"call me on +44 20 7946 0958"[::-1]}", "", "ok"]),
                   "calls": [3, 1, 4, 1]}})"""


@pytest.mark.slow
def test_guard_in_a_real_kernel_saved_notebook_holds_no_raw_number(tmp_path):
    nb = _notebook([
        "import cemkit\ncemkit.guard()",
        FRAME,
        "df",
        "display(df.set_index('caller'))",
        "df['caller']",
        "pd.DataFrame({'n': [f'+4420794{i:05d}' for i in range(300)]})",
        ("from cemkit.privacy.keys import Key\n"
         "key = Key.from_material(bytes(range(32)), key_id='cemkit-research-2026')\n"
         "records = pd.DataFrame({'a_number': rev(['859064970244+']), 'outcome': ['answered']},\n"
         "                       dtype='string[pyarrow]')\n"
         "cemkit.protect(records, 'research', key=key)"),
    ])  # fmt: skip
    saved = _execute(nb, tmp_path / "guarded.ipynb")
    secrets = forms([*RAW, RAW_INT]) | forms(f"+4420794{i:05d}" for i in range(300))
    leaked = sorted(len(s) for s in secrets if s in saved)
    assert not leaked, f"{len(leaked)} raw number form(s) in the saved notebook"
    outputs = [json.dumps(c.outputs) for c in nb.cells]
    assert MASK in outputs[2] and MASK in outputs[3] and MASK in outputs[4]
    assert "300 rows" in outputs[5]
    assert "PrivacyWarning" in outputs[2] and "caller, msisdn, note" in outputs[2]
    # The FPE column of a protected frame is shown as is (a pseudonym), not masked.
    from cemkit.privacy.keys import Key

    key = Key.from_material(bytes(range(32)), key_id="cemkit-research-2026")
    records = pd.DataFrame({"a_number": ["+442079460958"]}, dtype="string[pyarrow]")
    pseudonym = cemkit.protect(records, "research", key=key)["a_number"][0]
    assert MASK not in outputs[6] and pseudonym in outputs[6]
    assert scan_notebook(tmp_path / "guarded.ipynb") == [
        f for f in scan_notebook(tmp_path / "guarded.ipynb") if f.cell == 7
    ]  # only the FPE pseudonym looks like a TN


@pytest.mark.slow
def test_load_ext_in_a_real_kernel_and_unguarded_control(tmp_path):
    nb = _notebook([FRAME, "df", "%load_ext cemkit", "df", "%unload_ext cemkit\ndf"])
    saved = _execute(nb, tmp_path / "control.ipynb")
    outputs = [json.dumps(c.outputs) for c in nb.cells]
    secrets = forms(RAW)
    assert any(s in outputs[1] for s in secrets)  # without the guard the numbers show
    assert not any(s in outputs[3] for s in secrets) and MASK in outputs[3]
    assert any(s in outputs[4] for s in secrets)  # unloaded again
    assert any(s in saved for s in secrets)
    found = scan_notebook(tmp_path / "control.ipynb")
    assert {f.cell for f in found} == {2, 5}


def test_warnings_name_columns_never_values():
    df = pd.DataFrame({"caller": RAW})
    from cemkit.guard import _warn

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mask_frame(df)
        _warn(["caller"])
    text = " ".join(str(w.message) for w in caught)
    assert "caller" in text and not any(s in text for s in forms(RAW))


def test_small_integers_and_row_numbers_are_not_numbers():
    df = pd.DataFrame({"calls": [4999995, 1234567, 12345678], "msisdn": [RAW_INT, 7, 8]},
                      index=pd.RangeIndex(4_999_990, 4_999_993))  # fmt: skip
    masked, columns = mask_frame(df)
    assert columns == ["msisdn"]
    assert masked["calls"].tolist() == [4999995, 1234567, 12345678]
    assert list(masked.index) == [4_999_990, 4_999_991, 4_999_992]
    # The same digits as text are checked: a 7-digit run is a possible local number.
    assert mask_frame(pd.DataFrame({"s": ["4999995"]}))[1] == ["s"]


# --- issue 16, case 7: what a user prints or renders, and one detector -------------------------

IMSI = "234150999999999"  # 15 digits: no numbering plan knows it, the policy scanner flags it
IMEISV = "3520990012345678"  # 16 digits


def test_guard_masks_scalars_dicts_arrays_html_arrow_and_printed_output(capsys):
    import pyarrow as pa
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    df = pd.DataFrame({"b_number": RAW, "msisdn": [RAW_INT, 1, 2, 3]})
    shown = [df.loc[0, "b_number"], df.loc[0, "msisdn"], df.values, df.to_dict(), df.to_html(),
             pa.table(df), df["b_number"].tolist()]  # fmt: skip
    try:
        import importlib.util

        if importlib.util.find_spec("polars") is not None:  # where installed
            import polars as pl

            shown.append(pl.from_pandas(df))
        cemkit.guard(shell)
        secrets = forms([*RAW, RAW_INT])
        for obj in shown:
            with pytest.warns(PrivacyWarning, match=f"a displayed {type(obj).__name__}"):
                data, _ = shell.display_formatter.format(obj)
            text = json.dumps(data)
            assert MASK in text and not [s for s in secrets if s in text], type(obj).__name__
        with pytest.warns(PrivacyWarning, match="printed output"):
            print(df, df.loc[1, "b_number"], IMSI)
        printed = capsys.readouterr().out
        assert printed.count(MASK) >= 6 and not [s for s in secrets if s in printed]
        assert IMSI not in printed
        # counts are not numbers: no mask, no warning
        data, _ = shell.display_formatter.format(len(df) * 1_000_000)
        assert data["text/plain"] == "4000000"
    finally:
        cemkit.unguard()
        InteractiveShell.clear_instance()
    import sys

    assert type(sys.stdout).__name__ != "_MaskedStream"


def test_one_detector_for_guard_scan_notebook_and_policy_scanner():
    import cemkit.guard as guard_module
    from cemkit.privacy import detect, scan_notebook, scanner
    from cemkit.privacy.scanner import TextScanner

    assert guard_module.tn_spans is detect.tn_spans is scan_notebook.tn_spans
    assert "digit_run_pattern" in scanner.build_analyzer.__code__.co_names
    text = f"imsi {IMSI}, imeisv {IMEISV}"
    policy_found = TextScanner(["PHONE_NUMBER"]).scan_one(text)
    assert len(policy_found) == 2  # the policy scanner flags both...
    assert scan_notebook.scan_text(text) == (2, 0)  # ...and so does scan-notebook now
    assert mask_text(text) == f"imsi {MASK}, imeisv {MASK}"
    # false-positive protections stay: decimals, dates, tokens, compact dates
    for clean in ("0.930032292787944", "2026-11-26 12:00:01", "+44#9f3a0c5e1b2d4f60",
                  "cdr-20261126", "asterisk:Master.csv:17"):  # fmt: skip
        assert tn_spans(clean) == [] and scan_notebook.scan_text(clean) == (0, 0), clean


def test_scan_notebook_finds_15_and_16_digit_numbers(tmp_path, capsys):
    from cemkit.cli import main

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{IMSI}\n{IMEISV}\n")]
    nb.cells = [cell]
    nbformat.write(nb, str(tmp_path / "ids.ipynb"))
    assert main(["scan-notebook", str(tmp_path / "ids.ipynb")]) == 1
    out = capsys.readouterr().out
    assert "2 telephone number(s)" in out and IMSI not in out


@pytest.mark.slow
def test_guard_in_a_real_kernel_covers_print_scalars_and_renderings(tmp_path):
    nb = _notebook([
        "%load_ext cemkit",
        FRAME,
        "print(df)",
        "df.loc[1, 'caller']",
        "df.loc[0, 'msisdn']",
        "df.to_html()",
        "df.values",
        "df.to_dict()",
        "from IPython.display import HTML\nHTML(df.to_html())",
        "import pyarrow as pa\npa.table(df)",
        "print(df['caller'].tolist())",
    ])  # fmt: skip
    saved = _execute(nb, tmp_path / "printed.ipynb")
    secrets = forms([*RAW, RAW_INT])
    leaked = sorted(len(s) for s in secrets if s in saved)
    assert not leaked, f"{len(leaked)} raw number form(s) in the saved notebook"
    outputs = [json.dumps(c.outputs) for c in nb.cells]
    for i in range(2, 11):
        assert MASK in outputs[i], nb.cells[i].source
    assert scan_notebook(tmp_path / "printed.ipynb") == []
