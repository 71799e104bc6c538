"""Rich notebook displays of cemkit results: a run, its manifest, a KQI table.

``RunResult._repr_html_`` calls :func:`run_result_html`; :func:`manifest` and :func:`kqi_table`
wrap a manifest (a dict) and a KQI frame for display. Everything shown is what the run already
holds in aggregate (counts, policy, key id, KQIs): never a record.

Examples
--------
>>> m = {"created_utc": "2026-03-02T10:00:00Z", "load": {"totals": {"rows_read": 10,
...      "rows_loaded": 9, "rows_quarantined": 1}}, "protect": {"policy": {"name": "default",
...      "version": 1}, "key": {"id": "k1"}}, "inputs": [{"path": "a.csv"}]}
>>> html = manifest(m)._repr_html_()
>>> "9" in html and "default" in html and "k1" in html
True
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from cemkit.report.tables import people_table

_CSS = (
    "<style>.cemkit-display{font-family:system-ui,sans-serif;text-align:left}"
    ".cemkit-display table.facts td{padding:2px 10px 2px 0;text-align:left;border:0}"
    ".cemkit-display h4{margin:4px 0}</style>"
)


def _facts(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    return f'<table class="facts">{cells}</table>'


def manifest_facts(m: dict[str, Any]) -> list[tuple[str, str]]:
    """The facts of a run manifest a reader looks for first."""
    totals = (m.get("load") or {}).get("totals") or {}
    protect = m.get("protect") or {}
    policy = protect.get("policy") or {}
    key = protect.get("key") or {}
    rows: list[tuple[str, str]] = []
    if m.get("created_utc"):
        rows.append(("created (UTC)", str(m["created_utc"])))
    if totals:
        counts = (f"{totals.get('rows_read', 0):,} read, {totals.get('rows_loaded', 0):,} loaded, "
                  f"{totals.get('rows_quarantined', 0):,} quarantined")  # fmt: skip
        rows.append(("records", counts))
    if policy:
        rows.append(("policy", f"{policy.get('name')} version {policy.get('version')}"))
    rows.append(("key id", str(key.get("id")) if key else "none"))
    inputs = m.get("inputs") or []
    if inputs:
        rows.append(("inputs", f"{len(inputs):,} file(s)"))
    timings = m.get("timings_s") or {}
    if timings:
        total = sum(float(v) for v in timings.values() if isinstance(v, int | float))
        rows.append(("time", f"{total:,.1f} s"))
    return rows


class _Html:
    def __init__(self, body: str, text: str) -> None:
        self._body, self._text = body, text

    def _repr_html_(self) -> str:
        return self._body

    def __repr__(self) -> str:
        return self._text


def manifest(m: dict[str, Any]) -> _Html:
    """A run manifest for display: its main facts as a small table."""
    facts = manifest_facts(m)
    body = f'{_CSS}<div class="cemkit-display"><h4>cemkit run manifest</h4>{_facts(facts)}</div>'
    return _Html(body, "\n".join(f"{k}: {v}" for k, v in facts))


def kqi_table(frame: pd.DataFrame, *, tz: str = "UTC", rows: int = 20) -> Any:
    """A KQI table for display: headline indicators per object and bucket, for people."""
    wanted = ("object_kind", "object", "freq", "bucket", "attempts", "asr", "ner", "drop_ratio",
              "pdd_mean_ms", "experience_score")  # fmt: skip
    cols = [c for c in wanted if c in frame.columns]
    shown = frame[cols].head(rows)
    caption = f"{len(frame):,} KQI rows" + (f", first {rows} shown" if len(frame) > rows else "")
    return people_table(shown, tz=tz, caption=caption)


def run_result_html(result: Any) -> str:
    """HTML of a :class:`cemkit.pipeline.RunResult`: where, what was counted, alerts, KQIs."""
    facts = [("run directory", str(result.out)), *manifest_facts(result.manifest)]
    alerts = result.alerts
    facts.append(("alerts", f"{len(alerts):,}"))
    parts = [_CSS, '<div class="cemkit-display"><h4>cemkit run</h4>', _facts(facts)]
    if len(alerts):
        cols = [c for c in ("group", "indicator", "severity", "start", "end") if c in alerts]
        parts.append(people_table(alerts[cols].head(10), caption="Alerts").to_html())
    kqi = result.kqi
    if len(kqi) and "freq" in kqi.columns:
        day = kqi[kqi["freq"] == "day"]
        parts.append(kqi_table(day if len(day) else kqi, rows=10).to_html())
    parts.append("</div>")
    return "".join(parts)
