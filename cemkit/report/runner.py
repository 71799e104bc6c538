"""Run parameterized notebooks with papermill and export them as offline HTML reports.

``report(notebook, parameters, out_dir)`` executes a notebook (keeping the executed copy), then
exports HTML with the code hidden and the Altair charts drawn. Charts are Vega-Lite outputs in the
notebook; the export turns each into a ``vegaEmbed`` call and inlines the Vega bundle once, so the
report directory is self-contained and opens offline.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import nbformat

from cemkit.errors import InputError
from cemkit.io.atomic import atomic_directory, atomic_write_text
from cemkit.report.html import embed_call, vega_bundle

#: Where the notebooks shipped with cemkit live (repository checkout / editable install).
NOTEBOOK_DIR = Path(str(resources.files("cemkit.data") / "notebooks"))
_TEMPLATES = Path(str(resources.files("cemkit.data") / "templates"))
_VEGALITE_PREFIX = "application/vnd.vegalite.v"


def resolve_notebook(name: str | os.PathLike[str]) -> Path:
    """A notebook path, or the name of a shipped notebook (``02_usage_mining``)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (NOTEBOOK_DIR / path, NOTEBOOK_DIR / f"{path}.ipynb"):
        if candidate.is_file():
            return candidate
    shipped = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    raise InputError(
        f"notebook {str(name)!r} not found",
        hint=f"give a path to an .ipynb file or one of: {', '.join(shipped) or 'none shipped'}",
    )


def coerce_parameter(value: str) -> Any:
    """Command-line parameter text → Python value (JSON when it parses, else the string)."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def execute(
    notebook: str | os.PathLike[str],
    parameters: dict[str, Any],
    output: str | os.PathLike[str],
    *,
    kernel_name: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Execute a notebook with papermill, injecting ``parameters``; returns the executed copy."""
    import papermill as pm

    src = resolve_notebook(notebook)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(src),
        str(out),
        parameters=parameters,
        kernel_name=kernel_name,
        cwd=str(cwd) if cwd else None,
        progress_bar=progress,
        request_save_on_cell_execute=False,
    )
    return out


def _embed_charts(nb: nbformat.NotebookNode) -> int:
    """Replace Vega-Lite outputs by HTML that draws them with the inlined bundle."""
    n = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            mime = next((m for m in data if m.startswith(_VEGALITE_PREFIX)), None)
            if mime is None:
                continue
            spec = data[mime]
            spec_dict = spec if isinstance(spec, dict) else json.loads(spec)
            div = f"cemkit-chart-{n}"
            data["text/html"] = (
                f'<div class="cemkit-chart" id="{div}"></div>'
                f'<script type="text/javascript">{embed_call(div, spec_dict)}</script>'
            )
            for key in [k for k in data if k != "text/html"]:
                del data[key]
            n += 1
    return n


def export_html(executed: str | os.PathLike[str], output: str | os.PathLike[str]) -> Path:
    """Export an executed notebook as an offline HTML report with code cells hidden."""
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    charts = _embed_charts(nb)
    exporter = HTMLExporter(
        template_name="cemkit", extra_template_basedirs=[str(_TEMPLATES)], exclude_input=True,
        exclude_input_prompt=True, exclude_output_prompt=True,
    )  # fmt: skip
    resources = {"cemkit_vega_bundle": vega_bundle() if charts else ""}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    out = Path(output)
    atomic_write_text(out, body)
    return out


def report(
    notebook: str | os.PathLike[str],
    parameters: dict[str, Any] | None,
    out_dir: str | os.PathLike[str],
    *,
    kernel_name: str | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Execute a notebook and write ``out_dir/<name>.ipynb`` and ``out_dir/<name>.html``.

    The directory is built under a temporary name and renamed when complete, so a failed run
    never leaves a report that looks finished.
    """
    src = resolve_notebook(notebook)
    target = Path(out_dir)
    with atomic_directory(target) as tmp:
        executed = execute(src, parameters or {}, tmp / f"{src.stem}.ipynb",
                           kernel_name=kernel_name, cwd=tmp, progress=progress)  # fmt: skip
        export_html(executed, tmp / f"{src.stem}.html")
    return {"notebook": target / f"{src.stem}.ipynb", "html": target / f"{src.stem}.html"}
