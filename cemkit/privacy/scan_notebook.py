"""Check saved notebooks for telephone numbers and e-mail addresses (``cemkit scan-notebook``).

Meant for pre-commit hooks and CI: every text output of every cell (streams, rich displays as
text, HTML, Markdown, JSON, error tracebacks; optionally the cell sources) is searched for
telephone numbers (valid in the numbering plan of an international ``+`` number or of one of
the given regions, or an unbroken 15- or 16-digit identifier:
:func:`cemkit.privacy.detect.tn_spans` with ``strict=True``, the detector the guard and the
policy scanner share) and e-mail addresses.
A finding names the notebook, the cell (number and id) and the output, and how many values of
which kind — never the value itself. Images are not read.

Protected data does not trip it: keyed tokens (``+44#9f3a...``) and masked values
(``[masked TN]``) hold no number; FPE pseudonyms, which look like real numbers on purpose,
do — save notebooks without them.

Examples
--------
>>> nb = {"cells": [{"cell_type": "code", "source": "", "id": "c1", "outputs": [
...     {"output_type": "stream", "name": "stdout", "text": "call +44 20 7946 0958"}]}]}
>>> [str(f) for f in scan_notebook_json(nb, "demo.ipynb")]
['demo.ipynb: cell 1 (id c1), output 1 (stream): 1 telephone number(s)']
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cemkit.errors import InputError
from cemkit.privacy.detect import DEFAULT_REGIONS, tn_spans

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_TAG = re.compile(r"<[^>]*>")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Output MIME types read as text.
TEXT_MIME = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json",
             "application/vnd.dataresource+json", "application/javascript")  # fmt: skip


@dataclass(frozen=True)
class NotebookFinding:
    """Personal data found in one output of one cell (counts only, never the values)."""

    notebook: str
    cell: int
    cell_id: str | None
    where: str
    phone_numbers: int
    emails: int

    def __str__(self) -> str:
        what = []
        if self.phone_numbers:
            what.append(f"{self.phone_numbers} telephone number(s)")
        if self.emails:
            what.append(f"{self.emails} e-mail address(es)")
        cell_id = f" (id {self.cell_id})" if self.cell_id else ""
        return f"{self.notebook}: cell {self.cell}{cell_id}, {self.where}: {', '.join(what)}"


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _texts(cell: dict[str, Any], sources: bool) -> Iterator[tuple[str, str]]:
    if sources:
        yield "source", _as_text(cell.get("source", ""))
    for j, out in enumerate(cell.get("outputs") or [], start=1):
        kind = out.get("output_type", "?")
        if kind == "stream":
            yield f"output {j} (stream)", _as_text(out.get("text", ""))
        elif kind == "error":
            tb = "\n".join(out.get("traceback") or [])
            yield f"output {j} (error)", _ANSI.sub("", f"{out.get('evalue', '')}\n{tb}")
        else:
            for mime, value in (out.get("data") or {}).items():
                if mime in TEXT_MIME or mime.endswith("+json"):
                    text = _as_text(value)
                    if mime == "text/html":
                        text = html.unescape(_TAG.sub(" ", text))
                    yield f"output {j} ({mime})", text


def scan_text(text: str, regions: Sequence[str] = DEFAULT_REGIONS) -> tuple[int, int]:
    """(telephone numbers, e-mail addresses) found in a text."""
    return len(tn_spans(text, regions, strict=True)), len(EMAIL.findall(text))


def scan_notebook_json(
    nb: dict[str, Any],
    name: str,
    *,
    regions: Sequence[str] = DEFAULT_REGIONS,
    sources: bool = False,
) -> list[NotebookFinding]:
    """Findings in a notebook already parsed from JSON (nbformat 4)."""
    found = []
    for i, cell in enumerate(nb.get("cells") or [], start=1):
        for where, text in _texts(cell, sources):
            tns, emails = scan_text(text, regions)
            if tns or emails:
                found.append(NotebookFinding(name, i, cell.get("id"), where, tns, emails))
    return found


def scan_notebook(
    path: str | Path, *, regions: Sequence[str] = DEFAULT_REGIONS, sources: bool = False
) -> list[NotebookFinding]:
    """Findings in a saved ``.ipynb`` file.

    Parameters
    ----------
    path : str or path
        The notebook.
    regions : sequence of str
        Regions whose national number formats count (international numbers always do).
    sources : bool
        Also scan the cells' source code (by default only their saved outputs).
    """
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as a notebook ({type(exc).__name__})",
                         hint="give saved .ipynb files") from None  # fmt: skip
    if not isinstance(nb, dict) or "cells" not in nb:
        raise InputError(f"{path}: not a notebook (no cells)", hint="give saved .ipynb files")
    return scan_notebook_json(nb, str(path), regions=regions, sources=sources)
