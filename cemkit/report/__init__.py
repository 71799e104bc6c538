"""Reports: Altair chart builders, self-contained HTML pages, papermill notebook runs."""

from __future__ import annotations

from typing import Any

#: Mime type the notebook outputs carry charts under. JupyterLab draws it natively, and nbformat
#: stores it as JSON (Altair 6's own ``application/vnd.vegalite.v6.json`` fails nbformat's
#: validation, which expects ``+json`` for JSON outputs, so papermill cannot save it).
CHART_MIMETYPE = "application/vnd.vegalite.v5+json"


def _renderer(spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {CHART_MIMETYPE: spec, "text/plain": "<cemkit chart>"}


def setup_notebook() -> None:
    """Prepare a notebook session for cemkit reports.

    Altair charts are emitted as Vega-Lite outputs, drawn natively by JupyterLab and turned into
    offline charts by the report exporter (Altair's default HTML output would fetch its
    JavaScript from a CDN at view time).
    """
    import altair as alt

    if "cemkit" not in alt.renderers.names():
        alt.renderers.register("cemkit", _renderer)
    alt.renderers.enable("cemkit")
