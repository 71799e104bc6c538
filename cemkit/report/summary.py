"""The executive summary a report opens with: period, volume, KQI tiles, incidents, suppression.

A summary is plain HTML (no JavaScript) so that it reads the same in JupyterLab, in the exported
report and printed to PDF. The notebooks build it from their results; the formatting lives here.

Examples
--------
>>> s = ExecutiveSummary("Usage, 2026-03-02 to 2026-03-09 (UTC)",
...     facts={"records": "60,000"},
...     tiles=[Tile("ASR", 0.62, baseline=0.70, direction=+1, percent=True, versus="normal hours")],
...     findings=["lon-sw1: ASR fell to 31% on 2026-03-04 09:00–12:00 UTC"])
>>> html = s._repr_html_()
>>> "62.0%" in html and "−8.0 pt" in html and "lon-sw1" in html
True
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cemkit.kqi import formulas
from cemkit.kqi.formulas import INDICATORS

_GOOD, _BAD, _FLAT = "#1a7f37", "#c62828", "#555"

_CSS = """
<style>
.cemkit-summary {font-family: system-ui, sans-serif; border: 1px solid #ccc; border-radius: 6px;
  padding: 12px 16px; margin: 8px 0 16px 0; background: #fafafa; text-align: left;}
.cemkit-summary h2 {margin: 0 0 6px 0; font-size: 1.25em;}
.cemkit-summary .facts {color: #333; margin-bottom: 10px; display: flex; flex-wrap: wrap;
  column-gap: 18px; row-gap: 2px;}
.cemkit-tiles {display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 10px;}
.cemkit-tile {border: 1px solid #ddd; border-radius: 6px; background: #fff; padding: 8px 12px;
  min-width: 150px;}
.cemkit-tile .label {font-size: 0.85em; color: #555;}
.cemkit-tile .value {font-size: 1.6em; font-weight: 600;}
.cemkit-tile .change {font-size: 0.85em;}
.cemkit-summary ul {margin: 4px 0 4px 18px; padding: 0;}
.cemkit-summary .section {font-weight: 600; margin-top: 6px;}
.cemkit-summary.ok {border-left: 6px solid #1a7f37;}
.cemkit-summary.bad {border-left: 6px solid #c62828;}
</style>
"""


@dataclass
class Tile:
    """One headline figure with its change against a reference (previous period or baseline).

    ``direction`` is +1 when higher is better, -1 when lower is better (the KQI catalogue's),
    0 when neither: it colours the change green or red.
    """

    label: str
    value: float | None
    baseline: float | None = None
    direction: int = 0
    percent: bool = False
    unit: str = ""
    decimals: int = 1
    versus: str = "baseline"

    @classmethod
    def kqi(cls, name: str, value: float | None, baseline: float | None = None,
            versus: str = "baseline") -> Tile:  # fmt: skip
        """A tile for a KQI of the catalogue (title, unit and direction from it)."""
        ind = INDICATORS[name]
        unit = {"s": " s", "ms": " ms"}.get(ind.unit, "")
        decimals = 0 if ind.unit == "ms" else 1
        return cls(ind.title, value, baseline, ind.direction, ind.is_share, unit, decimals, versus)

    def _fmt(self, v: float) -> str:
        if self.percent:
            return f"{100 * v:,.{self.decimals}f}%"
        return f"{v:,.{self.decimals}f}{self.unit}"

    def value_text(self) -> str:
        """The value as shown."""
        return "–" if self.value is None or self.value != self.value else self._fmt(self.value)

    def change_text(self) -> tuple[str, str]:
        """The change against the reference as shown, and its colour."""
        if self.baseline is None or self.value is None or self.baseline != self.baseline:
            return "", _FLAT
        delta = self.value - self.baseline
        if self.percent:
            text = f"{100 * delta:+.1f} pt"
        else:
            text = f"{delta:+,.{self.decimals}f}{self.unit}"
        text = text.replace("-", "−")
        small = abs(delta) < (0.0005 if self.percent else 10**-self.decimals / 2)
        if small:
            return f"no change vs. {self.versus}", _FLAT
        arrow = "▲" if delta > 0 else "▼"
        good = delta * self.direction > 0
        colour = _FLAT if self.direction == 0 else (_GOOD if good else _BAD)
        return f"{arrow} {text} vs. {self.versus} ({self._fmt(self.baseline)})", colour

    def _repr_html_(self) -> str:
        change, colour = self.change_text()
        return (
            f'<div class="cemkit-tile"><div class="label">{html.escape(self.label)}</div>'
            f'<div class="value">{html.escape(self.value_text())}</div>'
            f'<div class="change" style="color:{colour}">{html.escape(change)}</div></div>'
        )


@dataclass
class ExecutiveSummary:
    """The first thing a report shows: what the period was, and what happened in it.

    Parameters
    ----------
    title : str
        One line: what and when (``Usage 2026-03-02 – 2026-03-08 (UTC)``).
    facts : mapping
        Short labelled facts (period, volume, source, policy).
    tiles : list of Tile
        Headline KQIs with their change.
    findings : list of str
        Incidents found (one line each, worst first); empty says so in words.
    suppressed : list of str
        What was suppressed and why.
    notes : list of str
        Anything else the reader must know (demo key, generated data).
    verdict_bad : bool, optional
        Colour the summary red (something needs attention) or green; default: red when there
        are findings.
    """

    title: str
    facts: dict[str, str] = field(default_factory=dict)
    tiles: Sequence[Tile] = ()
    findings: Sequence[str] = ()
    suppressed: Sequence[str] = ()
    notes: Sequence[str] = ()
    findings_title: str = "Incidents found"
    no_findings: str = "No incident was found in the period."
    verdict_bad: bool | None = None

    def _repr_html_(self) -> str:
        bad = bool(self.findings) if self.verdict_bad is None else self.verdict_bad
        parts = [_CSS, f'<div class="cemkit-summary {"bad" if bad else "ok"}">',
                 f"<h2>{html.escape(self.title)}</h2>"]  # fmt: skip
        if self.facts:
            parts.append('<div class="facts">' + "".join(
                f"<span><b>{html.escape(k)}:</b> {html.escape(v)}</span>"
                for k, v in self.facts.items()) + "</div>")  # fmt: skip
        if self.tiles:
            parts.append('<div class="cemkit-tiles">'
                         + "".join(t._repr_html_() for t in self.tiles) + "</div>")  # fmt: skip
        parts.append(f'<div class="section">{html.escape(self.findings_title)}</div>')
        parts.append(_list(self.findings) if self.findings else
                     f"<div>{html.escape(self.no_findings)}</div>")  # fmt: skip
        if self.suppressed:
            parts.append('<div class="section">Suppressed</div>' + _list(self.suppressed))
        if self.notes:
            parts.append('<div class="section">Notes</div>' + _list(self.notes))
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        lines = [self.title, *(f"{k}: {v}" for k, v in self.facts.items())]
        lines += [f"{t.label}: {t.value_text()} {t.change_text()[0]}" for t in self.tiles]
        lines += [
            self.findings_title + ":",
            *(f"- {f}" for f in self.findings or [self.no_findings]),
        ]
        lines += [f"suppressed: {s}" for s in self.suppressed]
        return "\n".join(lines)


def _list(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def say(text: str) -> object:
    """A sentence shown as a paragraph in the report (e.g. why a chart is not drawn)."""
    from IPython.display import Markdown

    return Markdown(text)


# --- what a usage report summarizes ------------------------------------------------------------
def _roots(groups: Any) -> list[str]:
    return [g.name for g in groups if g.parent is None]


def _lineage(groups: Any) -> dict[str, list[str]]:
    """Each group's ancestors, nearest first."""
    parent = {g.name: g.parent for g in groups}
    out: dict[str, list[str]] = {}
    for name, first in parent.items():
        chain, p = [], first
        while p is not None:
            chain.append(p)
            p = parent.get(p)
        out[name] = chain
    return out


def network_kqis(kqi: pd.DataFrame, groups: Any, *, freq: str = "hour",
                 exclude: pd.DataFrame | None = None) -> pd.Series:  # fmt: skip
    """The network's KQIs: counters of the top-level groups summed, then the catalogue formulas.

    ``exclude`` (an alerts table) leaves out the buckets that overlap an alert window: the
    network in its normal hours, the baseline a period is compared with.
    """
    roots = _roots(groups)
    part = kqi[(kqi["object_kind"] == "group") & (kqi["freq"] == freq) & kqi["object"].isin(roots)]
    if exclude is not None and len(exclude):
        hit = pd.Series(False, index=part.index)
        for a in exclude.itertuples():
            hit |= (part["bucket"] < a.end) & (part["bucket_end"] > a.start)
        part = part[~hit]
    sums = part[list(formulas.COUNTERS)].sum().to_frame().T
    return formulas.indicators(sums).iloc[0]


def incidents(alerts: pd.DataFrame, groups: Any, *, gap: str = "1h") -> list[dict[str, Any]]:
    """Alerts merged into incidents: windows on groups of one lineage less than ``gap`` apart.

    Each incident names its most specific group (the switch rather than its region), the groups
    above it that alerted too, its window and the worst value of each indicator.
    """
    if alerts.empty:
        return []
    lineage = _lineage(groups)
    depth = {g: len(a) for g, a in lineage.items()}
    slack = pd.Timedelta(gap)
    rank = {"warning": 0, "minor": 1, "major": 2, "critical": 3}
    found: list[dict[str, Any]] = []
    for a in alerts.sort_values("start").itertuples():
        g = str(a.group)
        family = {g, *lineage.get(g, [])}
        for inc in found:
            related = any(x in family or g in lineage.get(x, []) for x in inc["groups"])
            if related and a.start <= inc["end"] + slack and a.end >= inc["start"] - slack:
                break
        else:
            inc = {"groups": set(), "start": a.start, "end": a.end, "indicators": {},
                   "severity": str(a.severity)}  # fmt: skip
            found.append(inc)
        inc["groups"].add(g)
        if rank.get(str(a.severity), 0) > rank.get(inc["severity"], 0):
            inc["severity"] = str(a.severity)
        inc["start"], inc["end"] = min(inc["start"], a.start), max(inc["end"], a.end)
        prev = inc["indicators"].get(a.indicator)
        ind = formulas.INDICATORS.get(str(a.indicator))
        worse = prev is None or (ind is not None and (a.value - prev[0]) * ind.direction < 0)
        if worse:
            base = float(a.baseline) if a.baseline == a.baseline else None
            inc["indicators"][str(a.indicator)] = (float(a.value), base)
    for inc in found:
        where = max(inc["groups"], key=lambda x: (depth.get(x, 0), x))
        inc["where"] = where
        inc["also"] = sorted(inc["groups"] - {where}, key=lambda x: depth.get(x, 0), reverse=True)
    return found


#: Order of indicators in an incident's sentence: what a customer notices first.
_ORDER = {n: i for i, n in enumerate(("asr", "ner", "drop_ratio", "pdd_p50_ms", "pdd_p95_ms",
                                      "pdd_mean_ms", "mos", "experience_score"))}  # fmt: skip


def incident_lines(found: list[dict[str, Any]], tz: str = "UTC") -> list[str]:
    """One sentence per incident, for the summary."""
    lines = []
    for inc in found:
        start = pd.Timestamp(inc["start"]).tz_convert(tz)
        end = pd.Timestamp(inc["end"]).tz_convert(tz)
        when = f"{start:%a %d %b %H:%M}–{end:%H:%M} {tz}" if start.date() == end.date() else (
            f"{start:%a %d %b %H:%M} – {end:%a %d %b %H:%M} {tz}")  # fmt: skip
        what = []
        ranked = sorted(inc["indicators"].items(), key=lambda kv: _ORDER.get(kv[0], 99))
        for name, (value, baseline) in ranked:
            ind = formulas.INDICATORS.get(name)
            title = ind.title if ind else name
            share = ind is not None and ind.is_share
            unit = " ms" if name.endswith("_ms") else ""

            def fmt(v: float, share: bool = share, unit: str = unit) -> str:
                return f"{100 * v:.0f}%" if share else f"{v:,.0f}{unit}"

            base = f" (normally {fmt(baseline)})" if baseline is not None else ""
            what.append(f"{title} {fmt(value)}{base}")
        also = f" (also seen on {', '.join(inc['also'])})" if inc["also"] else ""
        lines.append(f"{inc['where']}{also}, {when}, {inc['severity']}: {'; '.join(what)}.")
    return lines


def incident_windows(found: list[dict[str, Any]]) -> pd.DataFrame:
    """The window of each incident on each group it touched (``group``, ``start``, ``end``)."""
    rows = [{"group": g, "start": inc["start"], "end": inc["end"]}
            for inc in found for g in [inc["where"], *inc["also"]]]  # fmt: skip
    return pd.DataFrame(rows, columns=["group", "start", "end"])


# --- what a device-experience report summarizes ------------------------------------------------
def coverage_hole_lines(
    holes: pd.DataFrame,
    *,
    group: str = "cell",
    every: str = "1h",
    tz: str = "UTC",
    rsrp_bad_dbm: float | None = None,
) -> list[str]:
    """One sentence per run of consecutive hole buckets of a group, worst first, for the summary.

    ``holes`` is :func:`cemkit.kqi.coverage.coverage_holes` output (``bucket``, ``coverage_bad``,
    ``coverage_bad_lo``, ``devices``, ``samples`` per group and bucket).

    Examples
    --------
    >>> t = pd.Timestamp("2026-03-02 09:00", tz="UTC")
    >>> h = pd.DataFrame({"cell": ["c1", "c1"], "bucket": [t, t + pd.Timedelta("1h")],
    ...                   "coverage_bad": [0.8, 0.6], "coverage_bad_lo": [0.7, 0.5],
    ...                   "devices": [5, 6], "samples": [100, 120]})
    >>> coverage_hole_lines(h)
    ['c1, Mon 02 Mar 09:00–11:00 UTC (2 hours): up to 80% of samples in bad coverage, 220 samples from up to 6 devices.']
    """  # noqa: E501
    if holes.empty:
        return []
    step = pd.Timedelta(every)
    runs = []
    for name, part in holes.sort_values([group, "bucket"]).groupby(group, observed=True):
        start = prev = None
        rows: list[Any] = []
        for row in part.itertuples(index=False):
            b = pd.Timestamp(row.bucket)
            if prev is not None and b - prev > step:
                runs.append((name, start, prev + step, rows))
                start, rows = None, []
            start = b if start is None else start
            prev = b
            rows.append(row)
        runs.append((name, start, prev + step, rows))
    below = f" (RSRP under {rsrp_bad_dbm:g} dBm)" if rsrp_bad_dbm is not None else ""
    lines = []
    for name, start, end, rows in sorted(runs, key=lambda r: -max(x.coverage_bad for x in r[3])):
        s, e = pd.Timestamp(start).tz_convert(tz), pd.Timestamp(end).tz_convert(tz)
        when = (f"{s:%a %d %b %H:%M}–{e:%H:%M} {tz}" if s.date() == (e - step).date()
                else f"{s:%a %d %b %H:%M} – {e:%a %d %b %H:%M} {tz}")  # fmt: skip
        n = len(rows)
        size = f"{n} {'hour' if every == '1h' else 'bucket'}{'s' if n != 1 else ''}"
        worst = max(x.coverage_bad for x in rows)
        samples = sum(int(x.samples) for x in rows)
        devices = max(int(x.devices) for x in rows)
        lines.append(
            f"{name}, {when} ({size}): up to {100 * worst:.0f}% of samples in bad "
            f"coverage{below}, {samples:,} samples from up to {devices:,} devices."
        )
    return lines
