"""The measurement record schema: what device agents report (the companion of :mod:`cemkit.schema`).

Usage records (:mod:`cemkit.schema`) describe calls; measurement records describe what an
agent on a smartphone, set-top box or laptop saw at one instant: which cell served it, with
which radio technology, at what radio levels, throughput, latency and loss, whether it was in
use, and where it was. Agents report only while the device is in use, so measurements are
*intermittent*: the KQIs of :mod:`cemkit.kqi.coverage` say how much of each bucket they saw.

Location is personal data as sensitive as a number: ``latitude``/``longitude`` are class
``direct`` and every shipped policy generalizes or drops them. Source-specific columns are kept
under the same ``src_`` prefix as usage records (:func:`cemkit.schema.extension_field`).

Examples
--------
>>> from cemkit import schema_measurements as sm
>>> sm.MEASUREMENT.field("latitude").metadata[b"pii"]
b'direct'
>>> sm.empty_measurements().shape[1] == len(sm.MEASUREMENT)
True
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa

from cemkit.errors import SchemaError
from cemkit.schema import (
    BY_NAME,
    EXTENSION_PREFIX,
    PII,
    STR,
    TS,
    Column,
    _report_rows,
    pandas_dtypes,
)

F64 = pa.float64()

#: Record kind written to ``record_kind`` of every measurement.
MEASUREMENT_KIND = "measurement"

#: Device states: ``active`` while the agent's device moves data, ``idle`` otherwise.
STATES = ("active", "idle")

#: Radio technologies by generation (``radio_tech`` keeps what the agent wrote; KQIs group by
#: ``radio_gen``). Keys are upper case.
RADIO_GENERATIONS: dict[str, str] = {
    "5G": "5G", "NR": "5G", "NR_SA": "5G", "NR_NSA": "5G", "5G NSA": "5G", "5G SA": "5G",
    "LTE": "4G", "LTE+": "4G", "LTE-A": "4G", "4G": "4G", "LTE_CA": "4G",
    "UMTS": "3G", "HSPA": "3G", "HSPA+": "3G", "HSDPA": "3G", "HSUPA": "3G", "WCDMA": "3G",
    "3G": "3G", "EVDO": "3G", "TD-SCDMA": "3G",
    "GSM": "2G", "EDGE": "2G", "GPRS": "2G", "2G": "2G", "CDMA": "2G",
    "WIFI": "wifi", "WLAN": "wifi", "ETHERNET": "fixed", "DSL": "fixed", "FIBRE": "fixed",
}  # fmt: skip
GENERATIONS = ("5G", "4G", "3G", "2G", "wifi", "fixed", "other")

MEASUREMENT_COLUMNS: tuple[Column, ...] = (
    Column("record_id", STR, PII.QUASI,
           "Unique id of the measurement within a run: '<source>:<file tag>:<line>'."),
    Column("source", STR, PII.NONE, "Agent format the record came from (gnettrack, agent, ...)."),
    Column("record_kind", STR, PII.NONE, "Always 'measurement'."),
    Column("device", STR, PII.DIRECT,
           "The measuring device (from the agent, an option or the file name): tokenized like a "
           "number by every shipped policy; linked to a customer by the customer table."),
    Column("session", STR, PII.QUASI,
           "Measurement session (for G-NetTrack: the log file); consecutive samples of one run."),
    Column("time", TS, PII.QUASI, "When the sample was taken, UTC (agents write local time)."),
    Column("operator", STR, PII.NONE, "Network operator the device was attached to (name/PLMN)."),
    Column("cell", STR, PII.QUASI,
           "Serving cell, unique within the operator: '<node>-<cell>' in hexadecimal (the "
           "E-UTRAN/NR cell identity split at the base station) when the agent gives both."),
    Column("node", STR, PII.QUASI, "Serving base station (eNodeB / gNodeB id) or access node."),
    Column("area", STR, PII.QUASI, "Location / tracking area code of the serving cell."),
    Column("radio_tech", STR, PII.NONE, "Radio technology as the agent wrote it (5G, LTE, ...)."),
    Column("radio_gen", STR, PII.NONE, f"Generation of radio_tech: {', '.join(GENERATIONS)}."),
    Column("rsrp_dbm", F64, PII.NONE, "Reference signal received power, dBm (LTE/NR)."),
    Column("rsrq_db", F64, PII.NONE, "Reference signal received quality, dB."),
    Column("snr_db", F64, PII.NONE, "Signal to noise (SINR/RSSNR), dB."),
    Column("cqi", F64, PII.NONE, "Channel quality indicator (0-15)."),
    Column("rssi_dbm", F64, PII.NONE, "Received signal strength, dBm."),
    Column("nr_rsrp_dbm", F64, PII.NONE, "RSRP of the (neighbour / NSA) NR cell, dBm."),
    Column("nr_rsrq_db", F64, PII.NONE, "RSRQ of the (neighbour / NSA) NR cell, dB."),
    Column("dl_kbps", F64, PII.NONE, "Downlink throughput over the sample, kbit/s."),
    Column("ul_kbps", F64, PII.NONE, "Uplink throughput over the sample, kbit/s."),
    Column("latency_ms", F64, PII.NONE, "Mean round-trip latency (ping average), ms."),
    Column("latency_min_ms", F64, PII.NONE, "Minimum round-trip latency, ms."),
    Column("latency_max_ms", F64, PII.NONE, "Maximum round-trip latency, ms."),
    Column("latency_stdev_ms", F64, PII.NONE, "Standard deviation of the round-trip latency, ms."),
    Column("loss_ratio", F64, PII.NONE, "Packet loss of the latency test, ratio 0-1."),
    Column("state", STR, PII.NONE, "active (the device was moving data) or idle."),
    Column("activity", STR, PII.NONE,
           "What the device was doing as the agent says: download, video, video_download, idle."),
    Column("latitude", F64, PII.DIRECT,
           "WGS84 latitude, degrees: a precise position is personal data; policies generalize "
           "it to a grid or drop it."),
    Column("longitude", F64, PII.DIRECT, "WGS84 longitude, degrees (see latitude)."),
    Column("speed_kmh", F64, PII.QUASI,
           "Device speed, km/h (with times it can single out a journey; policies bin it)."),
)  # fmt: skip

#: Columns by name.
MEASUREMENT_BY_NAME: dict[str, Column] = {c.name: c for c in MEASUREMENT_COLUMNS}

#: The measurement Arrow schema (without extension columns).
MEASUREMENT: pa.Schema = pa.schema([c.field() for c in MEASUREMENT_COLUMNS])

#: Columns every measurement must have a value in.
MEASUREMENT_REQUIRED: tuple[str, ...] = ("record_id", "source", "record_kind", "device", "time")

#: Every documented column of either record kind (what policies may name).
ALL_COLUMNS: dict[str, Column] = {**BY_NAME, **MEASUREMENT_BY_NAME}

for _name in set(BY_NAME) & set(MEASUREMENT_BY_NAME):  # shared names mean the same type
    if BY_NAME[_name].type != MEASUREMENT_BY_NAME[_name].type:  # pragma: no cover - a bug
        raise SchemaError(f"column {_name!r} has two types in the two record kinds")


def generation(tech: str | None) -> str | None:
    """The generation of a radio technology name (``None`` stays ``None``)."""
    if tech is None:
        return None
    return RADIO_GENERATIONS.get(tech.strip().upper(), "other")


def measurement_schema(extensions: Iterable[Column] = ()) -> pa.Schema:
    """Measurement schema followed by the given extension columns."""
    return pa.schema([*MEASUREMENT, *(c.field() for c in extensions)])


def empty_measurements(extensions: Iterable[Column] = ()) -> pd.DataFrame:
    """An empty frame with the measurement dtypes (the ``meta`` of Dask graphs)."""
    dtypes = pandas_dtypes(measurement_schema(extensions))
    return pd.DataFrame({n: pd.Series([], dtype=d) for n, d in dtypes.items()})


def is_measurements(columns: Iterable[str]) -> bool:
    """Whether a frame's columns are measurement records (they have ``time`` and ``device``)."""
    cols = set(columns)
    return {"time", "device"} <= cols or {"time", "cell"} <= cols


def validate_measurements(df: pd.DataFrame, extensions: Iterable[Column] = (), *,
                          raise_: bool = True) -> list[str]:  # fmt: skip
    """Check a frame against the measurement schema (like :func:`cemkit.schema.validate`).

    Messages name the column, the number of rows and the first row index, never values of
    personal columns.

    Examples
    --------
    >>> validate_measurements(empty_measurements())
    []
    """
    problems: list[str] = []
    expected = pandas_dtypes(measurement_schema(extensions))
    for name, dtype in expected.items():
        if name not in df.columns:
            problems.append(f"column {name!r} is missing (expected dtype {dtype})")
        elif df[name].dtype != dtype:
            problems.append(f"column {name!r} has dtype {df[name].dtype}, expected {dtype}")
    for name in df.columns:
        if name not in expected and not str(name).startswith(EXTENSION_PREFIX):
            problems.append(f"column {name!r} is not in the measurement schema")
    for name in MEASUREMENT_REQUIRED:
        if name in df.columns:
            _report_rows(problems, df, df[name].isna(), f"column {name!r} is null")
    for name, allowed in (("state", STATES), ("radio_gen", GENERATIONS)):
        if name in df.columns:
            bad = df[name].notna() & ~df[name].isin(allowed)
            _report_rows(problems, df, bad, f"column {name!r} has values outside {list(allowed)}")
    for name in ("dl_kbps", "ul_kbps", "speed_kmh", "latency_ms"):
        if name in df.columns:
            _report_rows(problems, df, df[name] < 0, f"column {name!r} is negative")
    if "loss_ratio" in df.columns:
        bad = (df["loss_ratio"] < 0) | (df["loss_ratio"] > 1)
        _report_rows(problems, df, bad, "column 'loss_ratio' is outside 0-1")
    for name, lim in (("latitude", 90.0), ("longitude", 180.0)):
        if name in df.columns:
            _report_rows(problems, df, df[name].abs() > lim, f"column {name!r} is out of range")
    if problems and raise_:
        raise SchemaError(
            "records do not match the measurement schema:\n  - " + "\n  - ".join(problems),
            hint="see cemkit.schema_measurements.MEASUREMENT_COLUMNS for each column",
        )
    return problems


def describe_measurements(extensions: Iterable[Column] = ()) -> pd.DataFrame:
    """The schema as a table (name, type, PII class, meaning) for docs and notebooks."""
    cols = [*MEASUREMENT_COLUMNS, *extensions]
    return pd.DataFrame({"column": [c.name for c in cols], "type": [str(c.type) for c in cols],
                         "pii": [c.pii.value for c in cols],
                         "meaning": [c.meaning for c in cols]})  # fmt: skip
