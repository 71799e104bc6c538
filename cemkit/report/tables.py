r"""Tables formatted for people: no index, percentages, thousands separators, one time zone.

Every table a report shows goes through :func:`people_table`, so that all reports read the same:
shares as percentages, counts with thousands separators, timestamps in one stated zone (said once,
in the column header), missing values as a dash and units in the headers.

Examples
--------
>>> import pandas as pd
>>> t = people_table(pd.DataFrame({"group": ["a"], "attempts": [12345], "asr": [0.6789]}),
...                  percent=["asr"], counts=["attempts"])
>>> html = t.to_html()
>>> "12,345" in html, ">67.9<" in html, "Answer seizure ratio (%)" in html, "row_heading" in html
(True, True, True, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from cemkit.kqi.formulas import INDICATORS

#: Shown for missing values (NaN, None, NaT).
MISSING = "–"
#: How timestamps are written (the zone is given once, in the header).
TIME_FORMAT = "%Y-%m-%d %H:%M"

#: Unit suffix of each KQI unit, for headers.
_UNIT_SUFFIX = {"s": " (s)", "ms": " (ms)", "MOS": " (1–4.5)", "score": " (0–100)"}

_CSS = [
    {"selector": "", "props": "border-collapse: collapse; font-size: 0.92em; margin: 0.4em 0;"},
    {"selector": "th", "props": "text-align: left; padding: 4px 10px; "
     "border-bottom: 2px solid #555; background: #f4f4f4;"},
    {"selector": "td", "props": "padding: 3px 10px; border-bottom: 1px solid #ddd;"},
    {"selector": "td.num, th.num", "props": "text-align: right;"},
]  # fmt: skip


def kqi_header(name: str) -> str:
    """A column header for a KQI: its title with its unit (``ASR (%)``, ``PDD p95 (ms)``).

    Examples
    --------
    >>> kqi_header("asr"), kqi_header("pdd_p95_ms"), kqi_header("rows")
    ('Answer seizure ratio (%)', 'Post-dial delay, 95th percentile (ms)', 'rows')
    """
    ind = INDICATORS.get(name)
    if ind is None:
        return name
    if ind.is_share:
        return f"{ind.title} (%)"
    return ind.title + _UNIT_SUFFIX.get(ind.unit, "")


def kqi_text(name: str, value: float | None) -> str:
    """A KQI value as a reader reads it (``27.3%``, ``2,996 ms``).

    Examples
    --------
    >>> kqi_text("asr", 0.2734), kqi_text("pdd_p50_ms", 2996.0), kqi_text("asr", None)
    ('27.3%', '2,996 ms', '–')
    """
    if value is None or pd.isna(value):
        return MISSING
    ind = INDICATORS.get(name)
    if ind is not None and ind.is_share:
        return f"{100 * value:,.1f}%"
    unit = {"s": " s", "ms": " ms"}.get(ind.unit, "") if ind is not None else ""
    return f"{value:,.0f}{unit}" if unit == " ms" else f"{value:,.1f}{unit}"


def is_percent_kqi(name: str) -> bool:
    """True for KQIs shown as percentages (the shares)."""
    ind = INDICATORS.get(name)
    return ind is not None and ind.is_share


def people_table(
    frame: pd.DataFrame,
    *,
    percent: Iterable[str] = (),
    counts: Iterable[str] = (),
    decimals: Mapping[str, int] | None = None,
    tz: str = "UTC",
    rename: Mapping[str, str] | None = None,
    kqi_headers: bool = True,
    caption: str | None = None,
) -> Any:
    """A styled table for a report: no index, formatted numbers, timestamps in ``tz``.

    Parameters
    ----------
    frame : DataFrame
        The table (its index is dropped from the display).
    percent : columns
        Shares in [0, 1], shown as percentages with one decimal. KQI shares are found by name
        when ``kqi_headers`` is true.
    counts : columns
        Integers, shown with thousands separators. Integer columns are found by dtype too.
    decimals : mapping
        Decimals of other numeric columns (default: 1).
    tz : str
        The one zone every timestamp is shown in; the header says it (``start (UTC)``).
    rename : mapping
        Header text of columns (applied after the KQI headers).
    kqi_headers : bool
        Name KQI columns by their catalogue title and unit.
    caption : str, optional
        A caption above the table.

    Returns
    -------
    pandas.io.formats.style.Styler
        Displayed as HTML in a notebook and in the exported report.
    """
    df = frame.reset_index(drop=True).copy()
    percent = set(percent) | (
        {c for c in df.columns if is_percent_kqi(c)} if kqi_headers else set()
    )
    counts = set(counts)
    decimals = dict(decimals or {})
    headers: dict[str, str] = {}
    formats: dict[str, Any] = {}
    for col in df.columns:
        series = df[col]
        header = kqi_header(col) if kqi_headers else col
        if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
            series
        ):
            values = pd.to_datetime(series, utc=True).dt.tz_convert(tz)
            df[col] = values.dt.strftime(TIME_FORMAT).astype(object).where(values.notna(), None)
            header = f"{header} ({tz})"
        elif col in percent:
            if header.endswith(" (%)"):
                pass
            elif "%" not in header:
                header = f"{header} (%)"
            formats[col] = lambda v: MISSING if pd.isna(v) else f"{100 * v:,.1f}"
        elif col in counts or pd.api.types.is_integer_dtype(series):
            formats[col] = lambda v: MISSING if pd.isna(v) else f"{v:,.0f}"
        elif pd.api.types.is_float_dtype(series):
            d = decimals.get(col, 1)
            formats[col] = lambda v, d=d: MISSING if pd.isna(v) else f"{v:,.{d}f}"
        elif pd.api.types.is_bool_dtype(series):
            formats[col] = lambda v: MISSING if pd.isna(v) else ("yes" if v else "no")
        headers[col] = (rename or {}).get(col, header)
    numeric = [c for c in formats if c in df.columns and pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c])]  # fmt: skip
    df = df.rename(columns=headers)
    styler = df.style.hide(axis="index").format(
        {headers[c]: f for c, f in formats.items()}, na_rep=MISSING
    )
    styler = styler.set_table_styles(_CSS, overwrite=True)
    for col in df.columns:
        align = "right" if col in {headers[c] for c in numeric} else "left"
        styler = styler.set_properties(subset=[col], **{"text-align": align})
    if caption:
        styler = styler.set_caption(caption)
    return styler


def glossary(names: Iterable[str] | None = None) -> Any:
    """The glossary of a report, generated from the KQI catalogue (:data:`INDICATORS`).

    Parameters
    ----------
    names : KQI names, optional
        The indicators the report shows (default: every indicator of the catalogue).

    Examples
    --------
    >>> "RFC 6076" in glossary(["seer"]).to_html()
    True
    """
    wanted = list(names) if names is not None else list(INDICATORS)
    unknown = [n for n in wanted if n not in INDICATORS]
    if unknown:
        raise KeyError(f"not in the KQI catalogue: {', '.join(unknown)}; known: "
                       f"{', '.join(INDICATORS)}")  # fmt: skip
    rows = []
    for n in wanted:
        ind = INDICATORS[n]
        unit = "%" if ind.is_share else {"ratio": "", "count": "count"}.get(ind.unit, ind.unit)
        rows.append({"KQI": ind.title, "short name": n, "unit": unit,
                     "better when": "higher" if ind.direction > 0 else "lower",
                     "definition": ind.definition, "standard": ind.source})  # fmt: skip
    return people_table(pd.DataFrame(rows), kqi_headers=False)
