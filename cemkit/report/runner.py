"""Run parameterized notebooks with papermill and export them as offline HTML reports.

``report(notebook, parameters, out_dir)`` executes a notebook (keeping the executed copy), then
exports HTML with the code hidden and the Altair charts drawn. Charts are Vega-Lite outputs in the
notebook; the export turns each into a ``vegaEmbed`` call and inlines the Vega bundle once, so the
report directory is self-contained and opens offline.

Papermill's conventions apply: parameters are checked against the notebook's ``parameters`` cell
(an unknown name is refused, listing the known ones), the kernel runs in the caller's directory (a
relative path given as a parameter means what it means to the caller), and every cell has an
execution timeout. The published report directory holds the executed notebook and its HTML only:
a notebook's working run (record-level data, a generated world) goes to a separate temporary
directory (its ``workdir`` parameter), removed afterwards. A failed notebook is kept beside the
report directory as ``<out>.failed.ipynb`` and reported in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cemkit.errors import CemkitError, InputError
from cemkit.report.html import embed_call, vega_bundle

if TYPE_CHECKING:  # imported where used: ``cemkit --help`` reads DEFAULT_TIMEOUT_S
    import nbformat

#: Where the notebooks shipped with cemkit live (repository checkout / editable install).
NOTEBOOK_DIR = Path(str(resources.files("cemkit.data") / "notebooks"))
_TEMPLATES = Path(str(resources.files("cemkit.data") / "templates"))
_VEGALITE_PREFIX = "application/vnd.vegalite.v"
#: Per-cell execution timeout, seconds (papermill's ``execution_timeout``).
DEFAULT_TIMEOUT_S = 3600
#: The parameter through which a notebook is told where to put its working files.
WORKDIR_PARAMETER = "workdir"
#: Arguments for the kernel: its own log at CRITICAL (no transport warning in reports or terminal,
#: no "KeyboardInterrupt caught" when a failed notebook's kernel is stopped), and no IPython
#: history: a report's cells are not the user's typing, and the history database is shared by
#: every kernel of the user (when it is locked by another, IPython prints its error into the
#: cell that is running, i.e. into the published report).
_KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL", "--HistoryManager.enabled=False"]


class ReportError(CemkitError):
    """A notebook failed while executing (the executed copy is kept for inspection)."""


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


def notebook_parameters(notebook: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """The parameters a notebook declares: name → default (source text) and help (its comment)."""
    import papermill as pm

    found = pm.inspect_notebook(str(resolve_notebook(notebook)))
    return {name: {"default": str(p.get("default", "")), "help": str(p.get("help", ""))}
            for name, p in found.items()}  # fmt: skip


def notebook_help(notebook: str | os.PathLike[str]) -> str:
    """What ``cemkit report NOTEBOOK --help-notebook`` prints: each parameter, default, help."""
    src = resolve_notebook(notebook)
    params = notebook_parameters(src)
    if not params:
        return f"{src.stem}: no parameters (no cell tagged 'parameters')"
    width = max(len(n) for n in params)
    lines = [f"Parameters of {src.stem} (set with -p NAME VALUE, -y YAML or -f FILE):"]
    for name, p in params.items():
        help_text = f"  {p['help']}" if p["help"] else ""
        lines.append(f"  {name:<{width}}  default {p['default']}{help_text}")
    return "\n".join(lines)


def check_parameters(notebook: str | os.PathLike[str], parameters: dict[str, Any]) -> None:
    """Refuse parameters the notebook does not declare (a typo must not mean a default report)."""
    import difflib

    known = notebook_parameters(notebook)
    unknown = [n for n in parameters if n not in known]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(known), n=1)
        if close:
            hints.append(f"{name!r}: did you mean {close[0]!r}?")
    raise InputError(
        f"unknown parameter(s) {', '.join(repr(n) for n in unknown)} for notebook "
        f"{resolve_notebook(notebook).stem}",
        hint=" ".join(hints)
        + (" " if hints else "")
        + f"known: {', '.join(known) or 'none'} (see --help-notebook)",
    )


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def execute(
    notebook: str | os.PathLike[str],
    parameters: dict[str, Any],
    output: str | os.PathLike[str],
    *,
    kernel_name: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    progress: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT_S,
) -> Path:
    """Execute a notebook with papermill, injecting ``parameters``; returns the executed copy.

    Runs in ``cwd`` (default: the caller's directory). Progress of cemkit inside the notebook is
    off (``CEMKIT_PROGRESS=0``): a report carries results, not progress lines. papermill's bar
    of cells (``progress``) is drawn where cemkit's bars are (:func:`cemkit.progress.bars_for`
    stderr: a terminal, not a log file).
    """
    import papermill as pm

    from cemkit import progress as cemkit_progress

    src = resolve_notebook(notebook)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    cell_bar = progress and cemkit_progress.bars_for(sys.stderr)  # (before it is set to 0)
    saved = os.environ.get(cemkit_progress.ENV_VAR)
    os.environ[cemkit_progress.ENV_VAR] = "0"  # the kernel inherits the environment
    try:
        pm.execute_notebook(
            str(src),
            str(out),
            parameters=parameters,
            kernel_name=kernel_name,
            cwd=str(cwd or os.getcwd()),
            progress_bar=cell_bar,
            request_save_on_cell_execute=False,
            execution_timeout=timeout,
            extra_arguments=_KERNEL_ARGS,
        )
    finally:
        if saved is None:
            os.environ.pop(cemkit_progress.ENV_VAR, None)
        else:
            os.environ[cemkit_progress.ENV_VAR] = saved
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
    import nbformat
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
    from cemkit.runs.store import atomic_write_text

    atomic_write_text(out, body)
    return out


def _failure(exc: BaseException, name: str, kept: Path | None) -> ReportError:
    """One line: which cell failed with what, and where the failed notebook is."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        first = str(exc.evalue).splitlines()[0] if exc.evalue else ""
        what = f"cell {exc.exec_count}: {exc.ename}: {first}"
    else:
        what = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    where = f"; the failed notebook is kept at {kept}" if kept else ""
    return ReportError(f"notebook {name} failed in {what}{where}".rstrip())


def report(
    notebook: str | os.PathLike[str],
    parameters: dict[str, Any] | None,
    out_dir: str | os.PathLike[str],
    *,
    kernel_name: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    cwd: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    pdf: bool = False,
) -> dict[str, Path]:
    """Execute a notebook and write ``out_dir/<name>.ipynb`` and ``out_dir/<name>.html``.

    Parameters
    ----------
    notebook : path or name
        A notebook path or the name of a shipped notebook (``02_usage_mining``).
    parameters : dict
        Values for the notebook's parameters; names it does not declare are refused.
    out_dir : path or URL
        The report directory: it receives the executed notebook and its HTML, nothing else. An
        fsspec URL (``s3://bucket/reports/day``) is written once the report is complete, with
        ``storage_options`` for its filesystem.
    overwrite : bool
        Replace an existing report directory (refused otherwise).
    timeout : float, optional
        Execution timeout of each cell, seconds (None: none).
    cwd : path, optional
        Directory the kernel runs in (default: the caller's), against which relative paths
        given as parameters resolve.
    pdf : bool
        Also print the HTML report to ``out_dir/<name>.pdf`` with headless Chromium.

    The directory is built under a temporary name and renamed when complete, so a failed run
    never leaves a report that looks finished; the failed notebook is kept as
    ``<out_dir>.failed.ipynb``. A notebook with a ``workdir`` parameter gets a temporary working
    directory (removed afterwards) unless one is given, which must lie outside ``out_dir``.
    """
    from cemkit.io.paths import is_url, publish

    if is_url(out_dir) and not str(out_dir).startswith("file://"):
        # an fsspec URL (s3://, gs://, memory://): built locally, then copied there complete
        url = str(out_dir).rstrip("/")
        with tempfile.TemporaryDirectory(prefix="cemkit-report-") as local:
            built = report(notebook, parameters, Path(local) / "report", kernel_name=kernel_name,
                           progress=progress, timeout=timeout, cwd=cwd, pdf=pdf)  # fmt: skip
            publish(Path(local) / "report", url, storage_options)
        return {k: f"{url}/{p.name}" for k, p in built.items()}  # type: ignore[misc]
    src = resolve_notebook(notebook)
    params = dict(parameters or {})
    check_parameters(src, params)
    target = Path(str(out_dir).removeprefix("file://"))
    if target.exists() and not overwrite:
        raise InputError(f"report directory {target} already exists",
                         hint="pass --overwrite (overwrite=True) to replace it")  # fmt: skip
    declared = notebook_parameters(src)
    scratch: str | None = None
    if WORKDIR_PARAMETER in declared:
        given = params.get(WORKDIR_PARAMETER)
        if given:
            work = Path(cwd or os.getcwd()) / str(given)
            if _inside(work, target) or _inside(target, work):
                raise InputError(
                    f"workdir {given} is inside the report directory {target}",
                    hint="a report directory holds aggregates only: give a workdir outside it, "
                    "or none (a temporary directory)",
                )
        else:
            scratch = tempfile.mkdtemp(prefix=f"cemkit-{src.stem}-work-")
            params[WORKDIR_PARAMETER] = scratch
    failed = target.with_name(f"{target.name}.failed.ipynb")
    try:
        from cemkit.runs.store import atomic_directory

        with atomic_directory(target) as tmp:
            executed = tmp / f"{src.stem}.ipynb"
            try:
                execute(src, params, executed, kernel_name=kernel_name, cwd=cwd,
                        progress=progress, timeout=timeout)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - any failure: keep the notebook, one line
                kept = None
                if executed.is_file():
                    shutil.copyfile(executed, failed)
                    kept = failed
                raise _failure(exc, src.stem, kept) from None
            export_html(executed, tmp / f"{src.stem}.html")
            if pdf:
                from cemkit.report import browser

                browser.pdf(tmp / f"{src.stem}.html", tmp / f"{src.stem}.pdf")
            failed.unlink(missing_ok=True)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    out = {"notebook": target / f"{src.stem}.ipynb", "html": target / f"{src.stem}.html"}
    if pdf:
        out["pdf"] = target / f"{src.stem}.pdf"
    return out
