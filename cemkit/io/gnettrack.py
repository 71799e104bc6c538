"""The ``gnettrack`` format: G-NetTrack Pro (Android network monitor) measurement logs.

One file per measurement session, a header line, one row per sample (several rows may share
one second). Fields are comma separated in exported CSV files and tab separated in the app's
own ``.txt`` logs: the separator is read from the header line. Columns are found by name, in any
order; ``-`` means "not measured". Files without the NR columns (``NRxRSRP``, ``NRxRSRQ``, older
app versions or LTE-only devices) load with those columns null. Columns this loader does not
know are kept as ``src_<name>`` text (PII class free_text, so a policy must name them to keep
them). Times are device wall-clock ``YYYY.MM.DD_HH.MM.SS``: give ``tz`` (e.g.
``"Europe/Dublin"``).

The device is not named inside the file: it comes from the ``device`` option, else from the
file name (``device_from="file"``: the name before the ``_YYYY.MM.DD_HH.MM.SS`` stamp G-NetTrack
appends, or the ``device`` group of ``device_pattern``) or from the folder the device uploads
to (``device_from="folder"``).

Examples
--------
>>> import cemkit
>>> m = cemkit.load("agent-gnettrack/", format="gnettrack",
...                 tz="Europe/Dublin")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from cemkit.errors import FormatError, InputError
from cemkit.io.agent_base import MeasurementLoader
from cemkit.io.base import registry
from cemkit.io.convert import Converter
from cemkit.io.delimited import Layout
from cemkit.schema import PII, Column, extension_field
from cemkit.schema_measurements import (
    MEASUREMENT_KIND,
    RADIO_GENERATIONS,
)

#: The app's time stamp form (device local time).
TIME_FORMAT = "%Y.%m.%d_%H.%M.%S"

#: Measurement column → header names that carry it (upper case; first found wins). The first
#: name is the one of the app's CSV export; the others are names of the app's own logs.
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "time": ("TIMESTAMP",),
    "longitude": ("LONGITUDE",),
    "latitude": ("LATITUDE",),
    "speed_kmh": ("SPEED",),
    "operator": ("OPERATORNAME", "OPERATOR"),
    "radio_tech": ("NETWORKMODE", "NETWORKTECH"),
    "rsrp_dbm": ("RSRP", "LEVEL"),
    "rsrq_db": ("RSRQ", "QUAL"),
    "snr_db": ("SNR",),
    "cqi": ("CQI",),
    "rssi_dbm": ("RSSI", "LTERSSI"),
    "dl_kbps": ("DL_BITRATE",),
    "ul_kbps": ("UL_BITRATE",),
    "state": ("STATE",),
    "latency_ms": ("PINGAVG",),
    "latency_min_ms": ("PINGMIN",),
    "latency_max_ms": ("PINGMAX",),
    "latency_stdev_ms": ("PINGSTDEV",),
    "loss_ratio": ("PINGLOSS",),
    "node": ("NODEHEX", "NODE"),
    "area": ("LACHEX", "LAC", "TAC"),
    "nr_rsrp_dbm": ("NRXRSRP",),
    "nr_rsrq_db": ("NRXRSRQ",),
    "cell": ("RAWCELLID", "CGI"),
    "src_cell_local": ("CELLID",),
    "src_cellhex": ("CELLHEX",),
}

#: Known source-specific columns.
KNOWN_EXTENSIONS: tuple[Column, ...] = (
    extension_field("src_cell_local", pa.string(), PII.NONE,
                    "Cell id within its base station (G-NetTrack CellID)."),
    extension_field("src_cellhex", pa.string(), PII.NONE, "CellID in hexadecimal."),
    extension_field("src_rawcellid", pa.string(), PII.NONE,
                    "Cell identity as the app writes it (RAWCELLID / CGI)."),
)  # fmt: skip

#: State letters → (state, activity). D = downloading, I = idle, V = video, VD = video with a
#: download running; U = uploading (app's upload test).
STATES: dict[str, tuple[str, str]] = {
    "D": ("active", "download"), "U": ("active", "upload"), "V": ("active", "video"),
    "VD": ("active", "video_download"), "I": ("idle", "idle"),
}  # fmt: skip

#: Values that are signed numbers (radio levels); the others must not be negative.
_SIGNED = {"rsrp_dbm", "rsrq_db", "snr_db", "rssi_dbm", "nr_rsrp_dbm", "nr_rsrq_db",
           "longitude", "latitude"}  # fmt: skip
_NUMBERS = ("longitude", "latitude", "speed_kmh", "rsrp_dbm", "rsrq_db", "snr_db", "cqi",
            "rssi_dbm", "nr_rsrp_dbm", "nr_rsrq_db", "dl_kbps", "ul_kbps", "latency_ms",
            "latency_min_ms", "latency_max_ms", "latency_stdev_ms")  # fmt: skip
_RANGES = {"latitude": (-90.0, 90.0), "longitude": (-180.0, 180.0), "cqi": (0.0, 15.0)}

#: G-NetTrack appends ``_YYYY.MM.DD_HH.MM.SS`` to the log name it is given.
DEFAULT_DEVICE_PATTERN = r"^(?P<device>.+?)_\d{4}\.\d{2}\.\d{2}_\d{2}\.\d{2}\.\d{2}$"


def sniff_delimiter(header: str) -> str:
    """The field separator of a header line: tab, semicolon or comma (the most frequent)."""
    counts = {d: header.count(d) for d in ("\t", ";", ",")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _ext_name(header: str) -> str:
    name = re.sub(r"[^0-9a-z]+", "_", header.strip().lower()).strip("_") or "column"
    return f"src_{name}"


@registry.register
class GNetTrackLoader(MeasurementLoader):
    """G-NetTrack Pro measurement logs (CSV export or tab-separated app log)."""

    name = "gnettrack"
    description = "G-NetTrack Pro device agent logs (per-second radio/throughput measurements)"
    options: ClassVar[dict[str, Any]] = {
        "device": None,  # the device id of every file (else from the file name / folder)
        "device_from": "file",  # "file" or "folder"
        "device_pattern": DEFAULT_DEVICE_PATTERN,  # regex with a `device` group (file stem)
        "keep_extra": True,  # keep unknown columns as src_<name> text
    }

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if self.opts["device_from"] not in ("file", "folder"):
            raise FormatError(f"device_from must be 'file' or 'folder', not "
                              f"{self.opts['device_from']!r}")  # fmt: skip
        try:
            self._pattern = re.compile(str(self.opts["device_pattern"]))
        except re.error as exc:
            raise FormatError(f"device_pattern is not a regular expression: {exc}") from None
        if "device" not in self._pattern.groupindex:
            raise FormatError("device_pattern needs a named group (?P<device>...)")
        self._extra: dict[str, Column] = {}

    # -- schema ---------------------------------------------------------------------------
    def extension_columns(self) -> tuple[Column, ...]:
        """Known ``src_`` columns, then unknown header columns seen in the planned files."""
        return (*KNOWN_EXTENSIONS, *self._extra.values())

    # -- layout -----------------------------------------------------------------------------
    def layout(self, path: str) -> Layout:
        """Header names, separator, and which header carries which measurement column."""
        with open(path, "rb") as fh:
            first = fh.readline().decode(str(self.opts["encoding"]), "replace")
        first = first.lstrip("\ufeff").strip("\r\n")
        delimiter = sniff_delimiter(first)
        try:
            names = [c.strip() for c in next(csv.reader([first], delimiter=delimiter))]
        except (csv.Error, StopIteration):
            names = []
        upper = {n.upper(): n for n in reversed(names)}
        if "TIMESTAMP" not in upper:
            raise InputError(
                f"input file {path!r} has no Timestamp column: not a G-NetTrack log",
                hint=f"its first line has {len(names)} field(s); G-NetTrack logs start with a "
                "header line naming Timestamp, Longitude, Latitude, ...",
            )
        found: dict[str, str] = {}
        for col, aliases in SOURCE_COLUMNS.items():
            for a in aliases:
                if a in upper:
                    found[col] = upper[a]
                    break
        used = set(found.values())
        extra = [n for n in names if n not in used and n]
        if self.opts["keep_extra"]:
            for n in extra:
                ext = _ext_name(n)
                if ext not in self._extra and ext not in {c.name for c in KNOWN_EXTENSIONS}:
                    self._extra[ext] = extension_field(
                        ext, pa.string(), PII.FREE_TEXT, f"G-NetTrack column {n!r}, as written"
                    )
        info = (("found", tuple(found.items())), ("extra", tuple(extra)),
                ("device", self._device(path)))  # fmt: skip
        # Columns named twice get a suffix so that the parser keeps both.
        unique = [n if names.index(n) == i else f"{n}#{i}" for i, n in enumerate(names)]
        return Layout(tuple(unique), header_lines=1, delimiter=delimiter, info=info)

    def _device(self, path: str) -> str:
        if self.opts["device"] is not None:
            return str(self.opts["device"])
        if self.opts["device_from"] == "folder":
            return os.path.basename(os.path.dirname(os.path.abspath(path))) or "unknown"
        stem = os.path.splitext(os.path.basename(path))[0]
        m = self._pattern.match(stem)
        return m.group("device") if m else stem

    # -- conversion -------------------------------------------------------------------------
    def convert(self, conv: Converter, layout: Layout) -> Mapping[str, object]:
        """G-NetTrack fields → measurement columns."""
        info = dict(layout.info)
        found: dict[str, str] = dict(info["found"])

        seen: dict[str, pa.Array] = {}

        def text(col: str) -> pa.Array:
            """The field as text; empty and ``-`` (not measured) as null."""
            if col not in found:
                return pa.nulls(conv.n, pa.string())
            if col not in seen:
                arr = pc.utf8_trim(conv.raw(found[col]), " \t")
                missing = pc.or_(pc.equal(arr, "-"), pc.equal(arr, ""))
                if pc.any(missing).as_py():
                    arr = pc.if_else(missing, pa.scalar(None, pa.string()), arr)
                seen[col] = arr
            return seen[col]

        cols: dict[str, object] = {"record_kind": MEASUREMENT_KIND, "device": info["device"],
                                   "session": conv.tag.rsplit(".", 1)[0]}  # fmt: skip
        stamp = text("time")
        conv.flag(pc.is_null(stamp).to_numpy(zero_copy_only=False),
                  found["time"], "time stamp is empty")  # fmt: skip
        parsed = pc.strptime(stamp, format=TIME_FORMAT, unit="s", error_is_null=True)
        conv._flag_failed(stamp, parsed, found["time"],
                          "time not in G-NetTrack's form YYYY.MM.DD_HH.MM.SS")  # fmt: skip
        if self.tz.upper() != "UTC":
            parsed = pc.assume_timezone(parsed, timezone=self.tz, ambiguous="earliest",
                                        nonexistent="earliest")  # fmt: skip
        cols["time"] = parsed
        for col in _NUMBERS:
            field = found.get(col, col)
            num = conv.number(field, arr=text(col), allow_negative=col in _SIGNED, field=field)
            if col in _RANGES:
                lo, hi = _RANGES[col]
                out = pc.fill_null(pc.or_(pc.less(num, lo), pc.greater(num, hi)), False)
                conv.flag(out.to_numpy(zero_copy_only=False), field,
                          f"outside the range {lo:g} to {hi:g}")  # fmt: skip
            cols[col] = num
        # Position 0,0 is how the app writes "no GPS fix yet", not a place in the Atlantic.
        no_fix = pc.fill_null(pc.and_(pc.equal(cols["latitude"], 0.0),
                                      pc.equal(cols["longitude"], 0.0)), False)  # fmt: skip
        if pc.any(no_fix).as_py():
            for c in ("latitude", "longitude"):
                cols[c] = pc.if_else(no_fix, pa.scalar(None, pa.float64()), cols[c])
        field = found.get("loss_ratio", "PINGLOSS")
        loss = conv.number(field, arr=text("loss_ratio"), field=field)
        over = pc.fill_null(pc.greater(loss, 100.0), False).to_numpy(zero_copy_only=False)
        conv.flag(over, field, "packet loss above 100 %")
        cols["loss_ratio"] = pc.divide(loss, 100.0)
        tech = text("radio_tech")
        cols["radio_tech"] = tech
        cols["radio_gen"] = conv.lookup(tech, RADIO_GENERATIONS, pa.string(),
                                        field=found.get("radio_tech", "NetworkMode"),
                                        strict=False, default="other")  # fmt: skip
        state = text("state")
        cols["state"] = conv.lookup(state, {k: v[0] for k, v in STATES.items()}, pa.string(),
                                    field="State", strict=False)  # fmt: skip
        activity = conv.lookup(state, {k: v[1] for k, v in STATES.items()}, pa.string(),
                               field="State", strict=False)  # fmt: skip
        cols["activity"] = pc.coalesce(activity, pc.utf8_lower(state))
        for col in ("operator", "node", "area", "src_cell_local", "src_cellhex"):
            cols[col] = text(col)
        # The base station and its cell number name a cell (``A81B-C``; the same cell as the
        # E-UTRAN cell identity 0xA81B0C in RAWCELLID): no long digit run that reads like a
        # telephone number, and the same form whether or not the log has RAWCELLID.
        cell = text("cell")
        if "node" in found and "src_cellhex" in found:
            local = pc.binary_join_element_wise(text("node"), text("src_cellhex"), "-")
            cell = pc.coalesce(local, cell)
        elif "cell" not in found and "node" in found and "src_cell_local" in found:
            # The app's own logs name the base station (Node) and its cell (CellID) only.
            cell = pc.binary_join_element_wise(text("node"), text("src_cell_local"), "-")
        cols["src_rawcellid"] = text("cell")
        cols["cell"] = cell
        ext_names = {c.name for c in KNOWN_EXTENSIONS}
        for n in info["extra"]:
            ext = _ext_name(n)
            if ext in self._extra and ext not in ext_names:
                cols[ext] = conv.text(n)
        return cols


__all__ = ["TIME_FORMAT", "GNetTrackLoader", "sniff_delimiter"]
