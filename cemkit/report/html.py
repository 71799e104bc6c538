"""Offline charts for cemkit reports: the inlined Vega bundle and the call that draws a chart.

Reports inline the Vega / Vega-Lite / vega-embed JavaScript shipped by ``vl-convert-python``, so
a report directory still draws its charts without fetching anything from the internet.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any


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
