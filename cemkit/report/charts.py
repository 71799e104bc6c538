"""Charts that tell a report's story: ranked dot plots, trends with the incident window, timelines.

Every builder takes an aggregate table (never records) and returns an Altair chart, or — when
there is nothing to draw — a sentence that says so in words (an empty chart is drawn as empty
axes, which a reader cannot tell from a broken report).

Conventions: shares are drawn on a percentage axis zoomed to the data (all groups near 70% would
otherwise sit on one pixel of a 0–100% axis); times are drawn as wall-clock time in one zone
(said in the axis title); one row per alert, so bars never overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from cemkit.report.tables import is_percent_kqi, kqi_header

#: Colours: the reference line, bad points / incident windows, ordinary points.
REFERENCE, BAD, NORMAL, WINDOW = "#555555", "#c62828", "#1f77b4", "#f4c7c3"
#: Vega-Lite time format of time axes.
TIME_AXIS_FORMAT = "%a %d %H:%M"


def nothing_to_draw(what: str) -> Any:
    """A sentence in place of an empty chart."""
    from IPython.display import Markdown

    return Markdown(f"*{what}*")


def wall_time(values: pd.Series, tz: str) -> pd.Series:
    """Timestamps as naive wall-clock times in ``tz`` (drawn on a UTC scale: no browser zone)."""
    return pd.to_datetime(values, utc=True).dt.tz_convert(tz).dt.tz_localize(None)


def _value_axis(indicator: str, title: str | None = None) -> Any:
    import altair as alt

    fmt = ".0%" if is_percent_kqi(indicator) else ",.0f"
    return alt.Axis(format=fmt, title=title or kqi_header(indicator), tickCount=6,
                    labelOverlap=True, grid=True)  # fmt: skip


def _zoomed(values: pd.Series, reference: float | None, indicator: str) -> list[float]:
    lo, hi = float(values.min()), float(values.max())
    if reference is not None:
        lo, hi = min(lo, reference), max(hi, reference)
    pad = max((hi - lo) * 0.15, 0.01 if is_percent_kqi(indicator) else 1.0)
    lo, hi = lo - pad, hi + pad
    if is_percent_kqi(indicator):
        lo, hi = max(0.0, lo), min(1.0, hi)
    return [lo, hi]


def ranked_dots(
    frame: pd.DataFrame,
    indicator: str,
    label: str,
    *,
    reference: float | None = None,
    reference_label: str = "whole network",
    title: str | None = None,
    tooltip: Sequence[str] = (),
    width: int = 560,
) -> Any:
    """One dot per row, ranked worst first, with a reference line (network value or target).

    Rows worse than the reference are drawn red (worse: by the KQI's direction).
    """
    import altair as alt

    from cemkit.kqi.formulas import INDICATORS

    data = frame.dropna(subset=[indicator])
    if data.empty:
        return nothing_to_draw(f"No {kqi_header(indicator).lower()} to draw: no group had "
                               "enough data.")  # fmt: skip
    direction = INDICATORS[indicator].direction if indicator in INDICATORS else 1
    data = data[[label, indicator, *[c for c in tooltip if c not in (label, indicator)]]].copy()
    worse = (data[indicator] - reference) * direction < 0 if reference is not None else False
    labels = {True: "worse than reference", False: "at or better"}
    data["position"] = (
        pd.Series(worse, index=data.index).map(labels) if reference is not None else "value"
    )
    order: Literal["ascending", "descending"] = "ascending" if direction > 0 else "descending"
    x = alt.X(
        f"{indicator}:Q",
        axis=_value_axis(indicator),
        scale=alt.Scale(domain=_zoomed(data[indicator], reference, indicator), zero=False),
    )
    y = alt.Y(f"{label}:N", sort=alt.EncodingSortField(indicator, order=order), title=None)
    fmt = ".1%" if is_percent_kqi(indicator) else ",.1f"
    tips = [alt.Tooltip(f"{label}:N"), alt.Tooltip(f"{indicator}:Q", format=fmt),
            *[alt.Tooltip(c) for c in tooltip if c not in (label, indicator)]]  # fmt: skip
    dots = alt.Chart(data).mark_circle(size=90, opacity=1).encode(
        x=x, y=y, tooltip=tips,
        color=alt.Color("position:N", legend=alt.Legend(title=None, orient="bottom"),
                        scale=alt.Scale(domain=["worse than reference", "at or better"],
                                        range=[BAD, NORMAL])),
    )  # fmt: skip
    height = max(120, 22 * len(data))
    layers = [dots]
    if reference is not None:
        ref = pd.DataFrame({"reference": [reference], "what": [reference_label]})
        rule = (
            alt.Chart(ref)
            .mark_rule(color=REFERENCE, strokeDash=[5, 4], size=2)
            .encode(x="reference:Q", tooltip=["what:N", alt.Tooltip("reference:Q", format=fmt)])
        )
        text = (
            alt.Chart(ref)
            .mark_text(align="left", dx=4, dy=-6, color=REFERENCE)
            .encode(x="reference:Q", y=alt.value(0), text="what:N")
        )
        layers += [rule, text]
    return alt.layer(*layers).properties(
        title=title or f"{kqi_header(indicator)}, worst first", width=width, height=height
    )


def trend_small_multiples(
    series: pd.DataFrame,
    indicator: str,
    group: str,
    *,
    time: str = "bucket",
    windows: pd.DataFrame | None = None,
    tz: str = "UTC",
    columns: int = 2,
    order: Sequence[str] | None = None,
    title: str | None = None,
    width: int = 380,
    height: int = 130,
) -> Any:
    """One small chart per group, same axes, with its alert/incident windows shaded red.

    ``windows`` has ``group``, ``start`` and ``end`` columns (an alerts table does, and so
    does :func:`cemkit.report.summary.incident_windows`); ``order`` gives the panels' order.
    """
    import altair as alt

    data = series.dropna(subset=[indicator])
    if data.empty:
        return nothing_to_draw(f"No {kqi_header(indicator).lower()} per hour to draw.")
    data = data[[group, time, indicator]].copy()
    data[time] = wall_time(data[time], tz)
    domain = _zoomed(data[indicator], None, indicator)
    t0, t1 = data[time].min(), data[time].max()
    charts = []
    names = [n for n in (order or dict.fromkeys(data[group])) if (data[group] == n).any()]
    for name in names:
        part = data[data[group] == name]
        line = alt.Chart(part).mark_line(point=False, color=NORMAL).encode(
            x=alt.X(f"{time}:T", scale=alt.Scale(type="utc", domain=[t0.isoformat(),
                                                                      t1.isoformat()]),
                    axis=alt.Axis(format=TIME_AXIS_FORMAT, title=f"time ({tz})", labelAngle=0,
                                  tickCount=6, labelOverlap=True)),
            y=alt.Y(f"{indicator}:Q", scale=alt.Scale(domain=domain, zero=False),
                    axis=_value_axis(indicator, title=None)),
            tooltip=[alt.Tooltip(f"{time}:T", format="%Y-%m-%d %H:%M"),
                     alt.Tooltip(f"{indicator}:Q",
                                 format=".1%" if is_percent_kqi(indicator) else ",.1f")],
        )  # fmt: skip
        layers: list[Any] = []
        if windows is not None and len(windows):
            w = windows[windows["group"] == name][["start", "end"]].copy()
            if len(w):
                w["start"], w["end"] = wall_time(w["start"], tz), wall_time(w["end"], tz)
                layers.append(alt.Chart(w).mark_rect(color=WINDOW, opacity=0.8).encode(
                    x="start:T", x2="end:T"))  # fmt: skip
        charts.append(alt.layer(*layers, line).properties(title=str(name), width=width,
                                                          height=height))  # fmt: skip
    return alt.concat(*charts, columns=columns).properties(
        title=title or f"{kqi_header(indicator)} per hour (red: alert window)"
    )


def alert_timeline(alerts: pd.DataFrame, *, tz: str = "UTC", width: int = 760) -> Any:
    """One row per alert (group · indicator), a bar from start to end, coloured by severity."""
    import altair as alt

    from cemkit.model.spec import SEVERITIES

    if alerts.empty:
        return nothing_to_draw("No alert was raised in the period.")
    data = alerts[["group", "indicator", "severity", "start", "end"]].copy()
    data["row"] = (
        data["group"].astype(str)
        + " · "
        + data["indicator"].map(lambda i: kqi_header(str(i)).replace(" (%)", ""))
    )
    data["from"], data["to"] = wall_time(data["start"], tz), wall_time(data["end"], tz)
    data = data.drop(columns=["start", "end"])
    order = list(dict.fromkeys(data.sort_values("from")["row"]))
    palette = {"critical": "#b71c1c", "major": "#e65100", "minor": "#f9a825", "warning": "#fdd835"}
    sev = [s for s in SEVERITIES if s in set(data["severity"])][::-1] or list(SEVERITIES)
    return alt.Chart(data).mark_bar(height={"band": 0.7}).encode(
        x=alt.X("from:T", scale=alt.Scale(type="utc"),
                axis=alt.Axis(format=TIME_AXIS_FORMAT, title=f"time ({tz})", labelAngle=0)),
        x2="to:T",
        y=alt.Y("row:N", sort=order, title=None),
        color=alt.Color("severity:N", scale=alt.Scale(
            domain=sev, range=[palette.get(s, "#888") for s in sev])),
        tooltip=["row:N", "severity:N", alt.Tooltip("from:T", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip("to:T", format="%Y-%m-%d %H:%M")],
    ).properties(title="Alerts (one row each)", width=width,
                 height=max(60, 26 * len(order)))  # fmt: skip


def ranked_bars(frame: pd.DataFrame, value: str, label: str, *, title: str, x_title: str,
                reference: float | None = None, reference_label: str = "",
                width: int = 560) -> Any:  # fmt: skip
    """Horizontal bars ranked by value (counts, throughput), with an optional reference line."""
    import altair as alt

    if frame.empty:
        return nothing_to_draw(f"Nothing to draw for {title.lower()}.")
    data = frame[[label, value]].copy()
    bars = alt.Chart(data).mark_bar(color=NORMAL).encode(
        x=alt.X(f"{value}:Q", title=x_title, axis=alt.Axis(format=",.0f", labelOverlap=True)),
        y=alt.Y(f"{label}:N", sort="-x", title=None),
        tooltip=[f"{label}:N", alt.Tooltip(f"{value}:Q", format=",.1f")])  # fmt: skip
    layers = [bars]
    if reference is not None:
        ref = pd.DataFrame({"reference": [reference], "what": [reference_label]})
        layers.append(alt.Chart(ref).mark_rule(color=BAD, strokeDash=[5, 4], size=2).encode(
            x="reference:Q", tooltip=["what:N"]))  # fmt: skip
        layers.append(alt.Chart(ref).mark_text(align="left", dx=4, dy=-6, color=BAD).encode(
            x="reference:Q", y=alt.value(0), text="what:N"))  # fmt: skip
    return alt.layer(*layers).properties(title=title, width=width,
                                         height=max(80, 30 * len(data)))  # fmt: skip
