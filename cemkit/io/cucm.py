"""Cisco CUCM CDR and CMR flat files.

Line 1 holds the column names (quoted on 12.x/14, unquoted before), line 2 their SQL types;
the column count grows by release, so fields are found by name. A file is a CDR file when its
header has ``dateTimeOrigination``, a CMR file when it has ``varVQMetrics``. Times are epoch
seconds UTC; ``dateTimeConnect = 0`` means unanswered.

CMR rows are not records of their own: their voice-quality metrics are attached to the CDR of
the same call (``globalCallID_callManagerId`` + ``globalCallID_callId``): ``mos`` is the lowest
MLQK any endpoint measured (the worse side of the call), ``loss_ratio`` the packets lost over
packets expected across endpoints, ``jitter_ms`` the highest jitter. The CDR partitions are kept
as they are; the (much smaller) per-call metric table is built once and joined to each.

Examples
--------
>>> import cemkit
>>> ddf = cemkit.load(["cdr/", "cmr/"], format="cucm", default_region="US")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit.errors import InputError
from cemkit.io.base import Part, empty_quarantine, registry, with_read_units
from cemkit.io.convert import Converter, quarantine_frame, to_pandas
from cemkit.io.csvblock import parse_block
from cemkit.io.delimited import DelimitedLoader, Layout
from cemkit.io.textfile import open_input
from cemkit.outcomes import outcomes_from_q850_array
from cemkit.schema import PII, extension_field

EXTENSIONS = (
    extension_field("src_orig_device", pa.string(), PII.QUASI, "CUCM origDeviceName."),
    extension_field("src_dest_device", pa.string(), PII.QUASI, "CUCM destDeviceName."),
    extension_field("src_final_called_number", pa.string(), PII.TN,
                    "CUCM finalCalledPartyNumber (after forwarding), as written."),
    extension_field("src_orig_cause", pa.int64(), PII.NONE, "CUCM origCause_value (Q.850 or own)."),
    extension_field("src_dest_cause", pa.int64(), PII.NONE, "CUCM destCause_value (Q.850 or own)."),
    extension_field("src_orig_ip", pa.string(), PII.DIRECT, "Calling device IPv4 address."),
    extension_field("src_dest_ip", pa.string(), PII.DIRECT, "Called device IPv4 address."),
    extension_field("src_concealment_ratio", pa.float64(), PII.NONE,
                    "Highest CMR cumulative concealment ratio (CCR) of the call."),
)  # fmt: skip

_METRICS_META = pd.DataFrame(
    {
        "call_id": pd.Series([], dtype=pd.StringDtype("pyarrow")),
        "mos": pd.Series([], dtype="float64"),
        "lost": pd.Series([], dtype="float64"),
        "received": pd.Series([], dtype="float64"),
        "jitter_ms": pd.Series([], dtype="float64"),
        "ccr": pd.Series([], dtype="float64"),
    }
)


def _header(path: str) -> list[str]:
    with open_input(path) as fh:
        first = fh.readline().decode("utf-8", errors="replace").strip("\r\n")
    try:
        return [c.strip() for c in next(csv.reader([first]))]
    except (csv.Error, StopIteration):
        return []


def _ipv4(values: pa.Array) -> pa.Array:
    """CUCM signed 32-bit little-endian integers → dotted quads (0 / null → null)."""
    ints = pc.fill_null(values, 0).to_numpy(zero_copy_only=False).astype(np.int64) & 0xFFFFFFFF
    octets = [(ints >> s) & 0xFF for s in (0, 8, 16, 24)]
    text = pd.Series(octets[0].astype(str))
    for o in octets[1:]:
        text = text + "." + o.astype(str)
    out = text.to_numpy(dtype=object)
    out[ints == 0] = None
    return pa.array(out, pa.string())


def _metric(arr: pa.Array, key: str) -> pa.Array:
    """A ``KEY=value`` number out of varVQMetrics text (null when absent)."""
    found = pc.extract_regex(pc.fill_null(arr, ""), rf"(?:^|;)\s*{key}=(?P<v>[-+0-9.eE]+)")
    vals = pc.struct_field(found, [0])
    return pc.cast(vals, pa.float64())


@registry.register
class CucmLoader(DelimitedLoader):
    """Cisco CUCM CDR + CMR flat files."""

    name = "cucm"
    description = "Cisco CUCM CDR and CMR flat files (MOS from CMRs attached to CDRs)"
    extensions = EXTENSIONS
    options: ClassVar[dict[str, Any]] = {"node": None}

    def layout(self, path: str) -> Layout:
        """Column names from line 1; kind from which key columns are there."""
        names = _header(path)
        if "dateTimeOrigination" in names:
            kind = "cdr"
        elif "varVQMetrics" in names:
            kind = "cmr"
        else:
            raise InputError(
                f"input file {path!r} is not a CUCM CDR or CMR file",
                hint="expected a first line of column names with dateTimeOrigination (CDR) "
                "or varVQMetrics (CMR)",
            )
        return Layout(tuple(names), header_lines=2, info=(("kind", kind),))

    def _kind(self, path: str) -> str:
        return dict(self._file(path)[1].info).get("kind", "cdr")

    # -- CDR ------------------------------------------------------------------------------------
    def convert(self, conv: Converter, layout: Layout) -> Mapping[str, object]:
        """CDR columns → canonical columns."""
        rtype = conv.integer("cdrRecordType", pa.int64())
        conv.flag(pc.fill_null(pc.not_equal(rtype, 1), True).to_numpy(zero_copy_only=False),
                  "cdrRecordType", "not a CDR row (cdrRecordType is not 1)")  # fmt: skip
        start = conv.epoch("dateTimeOrigination", "s", zero_is_null=True)
        conv.flag(pc.is_null(start).to_numpy(zero_copy_only=False), "dateTimeOrigination",
                  "origination time is empty or 0")  # fmt: skip
        answer = conv.epoch("dateTimeConnect", "s", zero_is_null=True)
        end = conv.epoch("dateTimeDisconnect", "s", zero_is_null=True)
        orig_cause = conv.integer("origCause_value", pa.int64())
        dest_cause = conv.integer("destCause_value", pa.int64())
        oc = pc.fill_null(orig_cause, 0)
        dc = pc.fill_null(dest_cause, 0)
        cause = pc.if_else(pc.not_equal(oc, 0), oc, dc)
        q850 = pc.if_else(pc.and_(pc.greater(cause, 0), pc.less_equal(cause, 127)), cause,
                          pa.scalar(None, pa.int64()))  # fmt: skip
        released_by = pc.if_else(
            pc.not_equal(oc, 0), pa.scalar("caller"),
            pc.if_else(pc.not_equal(dc, 0), pa.scalar("callee"), pa.scalar(None, pa.string())),
        )  # fmt: skip
        answered = pc.is_valid(answer)
        outcome = outcomes_from_q850_array(
            pd.Series(q850.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)),
            pd.Series(answered.to_numpy(zero_copy_only=False)),
        )
        duration = pc.divide(pc.cast(pc.subtract(end, start), pa.int64()), 1e9)
        call_id = pc.binary_join_element_wise(
            conv.raw("globalCallID_callManagerId"), conv.raw("globalCallID_callId"), "-"
        )
        node = self.opts["node"]
        return {
            "record_kind": "cdr",
            "service": "voice",
            "a_number": conv.text("callingPartyNumber"),
            "b_number": conv.text("originalCalledPartyNumber"),
            "start": start,
            "answer": answer,
            "end": end,
            "duration_s": duration,
            "billsec_s": conv.number("duration"),
            "outcome": pa.array(outcome.to_numpy(), pa.string()),
            "cause_q850": q850,
            "released_by": released_by,
            "call_id": call_id,
            "node": node if node is not None else conv.text("globalCallId_ClusterID"),
            "src_orig_device": conv.text("origDeviceName"),
            "src_dest_device": conv.text("destDeviceName"),
            "src_final_called_number": conv.text("finalCalledPartyNumber"),
            "src_orig_cause": orig_cause,
            "src_dest_cause": dest_cause,
            "src_orig_ip": _ipv4(conv.integer("origIpAddr", pa.int64())),
            "src_dest_ip": _ipv4(conv.integer("destIpAddr", pa.int64())),
        }

    # -- CMR ------------------------------------------------------------------------------------
    def read_part(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """CDR parts give records; CMR parts give only their quarantine (metrics are joined)."""
        if self._kind(part.path) != "cmr":
            return super().read_part(part)
        _, quarantine = self._read_cmr(part)
        return self.meta(), quarantine

    def rows_read(self, part: Part, records: pd.DataFrame, quarantine: pd.DataFrame) -> int:
        """CMR rows count as read (and attached to the CDRs' metrics) line by line."""
        if self._kind(part.path) != "cmr":
            return super().rows_read(part, records, quarantine)
        info, _ = self._file(part.path)
        if part.start < info.data_start or info.size == 0:
            return len(quarantine)
        return self.read_units(part, records, quarantine)["data_lines"]  # lines read once

    def rows_attached(self, part: Part, records: pd.DataFrame, quarantine: pd.DataFrame) -> int:
        """CMR rows not quarantined are attached to CDRs (no record of their own)."""
        if self._kind(part.path) != "cmr":
            return 0
        return self.rows_read(part, records, quarantine) - len(quarantine)

    def _read_cmr(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        info, layout = self._file(part.path)
        if info.size == 0 or part.start < info.data_start:
            return _METRICS_META.copy(), super().read_part(part)[1]
        read = self.read_raw(part)
        data, nlines = self.transcode(read)
        at_eof = part.stop < 0 or part.stop >= info.size
        block = parse_block(data, list(layout.columns), part.first_line, at_eof=at_eof,
                            lines=nlines)  # fmt: skip
        units = self.line_units(part, info, read.lines)
        if block.table.num_rows == 0:
            empty = quarantine_frame(part.path, block.quarantine)
            return _METRICS_META.copy(), with_read_units(empty, units)
        conv = Converter(block, part.path, info.tag, self.name)
        vq = conv.text("varVQMetrics")
        mos = _metric(vq, "MLQK")
        cols = {
            "call_id": pc.binary_join_element_wise(
                conv.raw("globalCallID_callManagerId"), conv.raw("globalCallID_callId"), "-"
            ),
            "mos": pc.if_else(pc.greater(mos, 0), mos, pa.scalar(None, pa.float64())),
            "lost": conv.number("numberPacketsLost"),
            "received": conv.number("numberPacketsReceived"),
            "jitter_ms": conv.number("jitter"),
            "ccr": _metric(vq, "CCR"),
        }
        conv.flag(pc.is_null(conv.text("globalCallID_callId")).to_numpy(zero_copy_only=False),
                  "globalCallID_callId", "CMR without a call id")  # fmt: skip
        keep = pa.array(~conv.bad)
        table = pa.table({k: v.filter(keep) for k, v in cols.items()})
        q = block.quarantine
        if conv.bad.any():
            lines = block.lines[conv.bad]
            for ln, f, r, raw in zip(lines, conv.bad_field[conv.bad], conv.bad_reason[conv.bad],
                                     block.raw_lines(lines), strict=True):  # fmt: skip
                q.add(int(ln), str(f), str(r), raw)
        return to_pandas(table), with_read_units(quarantine_frame(part.path, q), units)

    def _metrics(self, part: Part) -> pd.DataFrame:
        return self._read_cmr(part)[0]

    def finish(self, records: Any, parts: Sequence[Part]) -> Any:
        """Attach per-call CMR metrics to the CDR partitions (lazy; one small metrics task)."""
        cmr_parts = [p for p in parts if self._kind(p.path) == "cmr"]
        if not cmr_parts:
            return records
        per_part = [dask.delayed(self._metrics, pure=True)(p) for p in cmr_parts]
        table = dask.delayed(_aggregate, pure=True)(per_part)
        return records.map_partitions(_attach, table, meta=records._meta,
                                      enforce_metadata=False)  # fmt: skip


def _aggregate(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-call metrics: worst MOS, pooled loss ratio, highest jitter and concealment."""
    df = pd.concat([_METRICS_META, *frames], ignore_index=True)
    if df.empty:
        return pd.DataFrame(columns=["mos", "loss_ratio", "jitter_ms", "ccr"])
    g = df.groupby("call_id", sort=True)
    out = g.agg(mos=("mos", "min"), lost=("lost", "sum"), received=("received", "sum"),
                jitter_ms=("jitter_ms", "max"), ccr=("ccr", "max"))  # fmt: skip
    expected = out["lost"] + out["received"]
    out["loss_ratio"] = (out["lost"] / expected).where(expected > 0)
    return out[["mos", "loss_ratio", "jitter_ms", "ccr"]]


def _attach(records: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    if records.empty or metrics.empty:
        return records
    out = records.copy()
    m = metrics.reindex(out["call_id"].astype(object).to_numpy())
    for col, src in (("mos", "mos"), ("loss_ratio", "loss_ratio"), ("jitter_ms", "jitter_ms"),
                     ("src_concealment_ratio", "ccr")):  # fmt: skip
        vals = m[src].to_numpy(dtype="float64")
        out[col] = np.where(np.isnan(vals), out[col].to_numpy(dtype="float64"), vals)
    return out


def empty_metrics() -> pd.DataFrame:
    """An empty per-call metrics frame."""
    return _METRICS_META.copy()


__all__ = ["CucmLoader", "empty_quarantine"]
