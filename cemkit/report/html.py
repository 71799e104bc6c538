"""Self-contained HTML pages with Altair charts that open offline.

The Vega / Vega-Lite / vega-embed JavaScript is inlined once per page from ``vl-convert-python``
(which ships the bundles), so a report directory can be mailed or archived and still draws its
charts without fetching anything from the internet.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from cemkit.io.atomic import atomic_write_text

Block = Any  #: an Altair chart, a pandas DataFrame or a paragraph of text


@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """The vega-embed JavaScript bundle (Vega and Vega-Lite included), as shipped by vl-convert."""
    import vl_convert as vlc
    from altair.utils._importers import vl_version_for_vl_convert

    return str(vlc.javascript_bundle(vl_version=vl_version_for_vl_convert()))  # type: ignore[call-arg]


def embed_call(div_id: str, spec: dict[str, Any]) -> str:
    """JavaScript that draws a Vega-Lite spec into the element with id ``div_id`` (as SVG)."""
    safe = json.dumps(spec).replace("</", "<\\/")  # a spec must not close the <script>
    return (
        f"vegaEmbed('#{div_id}', {safe}, {{renderer: 'svg', actions: false}}).catch(console.error);"
    )


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #3a6ea5; padding-bottom: .3rem; }
h2 { margin-top: 2rem; color: #3a6ea5; }
table.cemkit { border-collapse: collapse; font-size: .9rem; }
table.cemkit th, table.cemkit td {
  border: 1px solid #ccc; padding: .25rem .6rem; text-align: right;
}
table.cemkit th { background: #eef3f8; }
p.note { color: #555; font-size: .9rem; }
.chart { margin: 1rem 0; }
"""


def render_page(title: str, sections: Sequence[tuple[str, Sequence[Block]]]) -> str:
    """Render a page: a title, then sections of charts, tables and paragraphs.

    Parameters
    ----------
    title : str
        Page title.
    sections : sequence of (heading, blocks)
        Each block is an Altair chart, a pandas DataFrame (rendered as a table) or a string
        (rendered as an escaped paragraph).

    Returns
    -------
    str
        A complete HTML document with the chart library inlined.
    """
    body: list[str] = [f"<h1>{html.escape(title)}</h1>"]
    scripts: list[str] = []
    n_chart = 0
    for heading, blocks in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for block in blocks:
            if isinstance(block, pd.DataFrame):
                body.append(block.to_html(classes="cemkit", border=0, index=False, escape=True))
            elif isinstance(block, str):
                body.append(f'<p class="note">{html.escape(block)}</p>')
            else:
                div = f"chart{n_chart}"
                n_chart += 1
                body.append(f'<div class="chart" id="{div}"></div>')
                scripts.append(embed_call(div, block.to_dict()))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='UTF-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{vega_bundle()}</script></head><body>\n"
        + "\n".join(body)
        + "\n<script type='text/javascript'>\n"
        + "\n".join(scripts)
        + "\n</script></body></html>\n"
    )


def write_page(
    path: str | os.PathLike[str], title: str, sections: Sequence[tuple[str, Sequence[Any]]]
) -> Path:
    """Render a page and write it atomically; returns the path."""
    out = Path(path)
    atomic_write_text(out, render_page(title, sections))
    return out
